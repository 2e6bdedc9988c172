"""Propensity models: who will buy, churn, answer a campaign (and how much they will spend).

:class:`PropensityModel` is a scikit-learn-style estimator that chooses its own algorithm. The
same automatic procedure runs for every data set (no per-data-set settings):

1. **Preprocessing** (:class:`Preprocessor`, JSON state): numbers (median imputation, a
   missing indicator where values were missing, clipping to the 0.1-99.9 % range and scaling for
   the linear model; LightGBM sees the raw numbers and its own missing-value handling), text and
   categories (the frequent levels one-hot for the linear model and LightGBM's native
   categorical codes; rare levels and levels unseen at fit time go to one "other" bucket,
   missing values to a "missing" bucket), booleans (0/1), dates (days since 1970-01-01, UTC),
   text that is almost only numbers (numbers; the rest missing). Constant and all-missing
   columns are dropped, and identifier-like text (almost every value distinct) is refused, each
   with a note.
2. **Candidates**: a dummy baseline (the base rate, or the mean), a regularised linear model
   (logistic regression; ridge for regression), LightGBM, and any scikit-learn estimator passed
   in ``candidates`` (fitted on the linear model's design matrix).
3. **Validation** on the training data only: with ``time_col``, the latest part (about 20 %
   of the rows, by whole time values); otherwise stratified (3-fold cross-validation below
   20,000 rows, a 20 % hold-out above). On more than 200,000 rows the search runs on a
   stratified sample of 200,000 rows.
4. **Tuning within the time budget**: a small data-size-aware list of LightGBM settings
   (leaves, rows per leaf, L2, feature share; early stopping on the validation part) and of
   the linear model's penalty ``C``, tried in turn, the first setting of every candidate
   always and the others while the budget lasts (the leaderboard says which were skipped).
5. **Class imbalance**: when the rarer class is under 25 % of the rows, balanced class weights
   are one more setting of both the linear model and LightGBM (chosen on validation like any
   other setting); the probabilities are calibrated afterwards.
6. **Choice**: the highest validation ROC-AUC (regression: the lowest mean squared error);
   a simpler candidate (dummy < linear < user estimators < LightGBM) whose score is within one
   standard error of the best (DeLong's paired standard error of the AUC difference; for
   regression, of the paired squared-error difference) is preferred. The leaderboard and
   :attr:`PropensityModel.choice_reason_` say why.
7. **Refit** of the chosen setting on every training row (LightGBM with the early-stopping
   rounds scaled by the square root of the ratio of rows).
8. **Calibration** (classification): none, Platt scaling or isotonic regression, chosen by
   5-fold cross-validated log-loss on the validation predictions (``calibrate="auto"``).

:func:`evaluate` runs the whole procedure inside each fold of an outer cross-validation and
measures the out-of-fold predictions (see :mod:`mercato.models.metrics`). Models save to JSON
(:meth:`PropensityModel.to_dict`, :func:`model_from_dict`): LightGBM's text format, linear
coefficients, the calibrator's parameters. Loading never unpickles.
"""

from __future__ import annotations

import abc
import math
import os
import re
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator

from mercato.analytics.base import AnalysisResult
from mercato.errors import DataError, MercatoError, NotFittedError
from mercato.models import metrics as mx
from mercato.models._common import fingerprint as _fingerprint
from mercato.models._common import listing as _listing
from mercato.models._common import plain as _plain

__all__ = [
    "FORMAT",
    "PropensityEvaluation",
    "PropensityModel",
    "Preprocessor",
    "binary_target",
    "evaluate",
    "model_from_dict",
    "read_table",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Progress = Callable[[int, int, str], None]

#: the version of the JSON layout written by ``to_dict``
FORMAT = "mercato.propensity/1"
BUILTIN = ("dummy", "logistic", "lightgbm")
#: the search runs on a sample of this many rows at most
SEARCH_ROWS = 200_000
#: medians and quantiles are computed on a sample of this many rows at most
STATS_ROWS = 200_000
#: below this many training rows the search validates by 3-fold cross-validation
KFOLD_BELOW = 20_000
INNER_FOLDS = 3
#: the validation share of a hold-out (stratified or the latest rows by time)
VALIDATION_SHARE = 0.2
#: LightGBM uses one thread below this many rows (thread synchronisation costs more than it
#: saves on small data; the numbers are the same, LightGBM runs in deterministic mode)
THREADS_FROM_ROWS = 50_000
#: fewest rows, and fewest rows of each class, a model is fitted on
MIN_ROWS = 20
MIN_CLASS_ROWS = 3
#: a rarer class below this share of rows makes class weights a candidate setting
IMBALANCE_SHARE = 0.25
#: categories: at most this many levels are kept, each with at least this many rows and
#: this share of the rows; the rest share the "other" bucket
MAX_LEVELS = 100
MIN_LEVEL_ROWS = 5
MIN_LEVEL_SHARE = 0.001
#: a text column with at least this many distinct values making up at least this share of
#: its non-missing values is an identifier, not a feature
ID_MIN_LEVELS = 50
ID_SHARE = 0.9
#: a text column of which at least this share of values are numbers is read as numbers
NUMERIC_TEXT_SHARE = 0.95
#: numbers are clipped to these quantiles for the linear model
CLIP_QUANTILES = (0.001, 0.999)
#: default search budget of :class:`PropensityModel`, and per fold of :func:`evaluate`
DEFAULT_TIME_BUDGET = 60.0
DEFAULT_FOLD_BUDGET = 15.0
#: LightGBM: the learning rate by training rows (up to 100,000, up to 500,000, more), and
#: rounds without improvement before early stopping (2.5 / learning rate, at least 20)
LEARNING_RATES = ((100_000, 0.05), (500_000, 0.1), (math.inf, 0.2))
MAX_ROUNDS = 3000
#: the refit on every row uses the early-stopping rounds times sqrt(rows / search rows), at
#: most this factor
MAX_ROUNDS_SCALE = 1.5
#: smallest data set :func:`evaluate` accepts
MIN_EVALUATE_ROWS = 50
#: isotonic calibration needs this many validation rows of each class (Platt: MIN_CLASS_ROWS)
ISOTONIC_MIN_CLASS = 50
#: isotonic probabilities stay inside [EPS, 1 - EPS] (so that the log-loss stays finite)
EPS = 1e-4

#: target values taken for the positive class, whatever their frequency
POSITIVE_WORDS = ("1", "1.0", "yes", "y", "true", "t", "positive", "pos")
ISO_DATE = re.compile(
    r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$"
)
_RANK = {"dummy": 0, "logistic": 1, "user": 2, "lightgbm": 3}
_NAMES = {"dummy": "the dummy baseline", "logistic": "logistic regression", "lightgbm": "LightGBM"}


# -- small helpers ----------------------------------------------------------------------------


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def _threads(rows: int, n_jobs: int | None) -> int:
    if rows < THREADS_FROM_ROWS:
        return 1
    return int(n_jobs or os.cpu_count() or 1)


def _sigmoid(z: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -700, 700))), dtype=float)


def _logit(p: FloatArray) -> FloatArray:
    q = np.clip(p, 1e-12, 1 - 1e-12)
    return np.asarray(np.log(q / (1 - q)), dtype=float)


def _as_text(s: pd.Series) -> pd.Series:
    return (
        s
        if pd.api.types.is_string_dtype(s) and not pd.api.types.is_object_dtype(s)
        else (s.astype("string"))
    )


def _days(s: pd.Series) -> FloatArray:
    """Dates and times as days since 1970-01-01 (UTC; naive times are taken as UTC)."""
    if pd.api.types.is_datetime64_any_dtype(s):
        ts = s.dt.tz_convert("UTC") if getattr(s.dt, "tz", None) is not None else s
        ts = ts if getattr(ts.dt, "tz", None) is None else ts.dt.tz_localize(None)
    else:
        ts = pd.to_datetime(_as_text(s), errors="coerce", utc=True, format="ISO8601")
        ts = ts.dt.tz_localize(None)
    delta = (ts - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
    return np.asarray(delta.to_numpy(dtype=float, na_value=np.nan), dtype=float)


# -- preprocessing ---------------------------------------------------------------------------


@dataclass
class _Column:
    """How one input column becomes features (the JSON state of the preprocessing)."""

    name: str
    kind: str  # "numeric" | "categorical"
    source: str  # number, bool, datetime, text-number, text-datetime, text
    has_missing: bool = False
    # numeric
    median: float = math.nan
    lo: float = math.nan
    hi: float = math.nan
    mean: float = math.nan
    std: float = 1.0
    # categorical: the frequent levels (codes 0..k-1); code k = "other" (rare or unseen)
    levels: list[str] = field(default_factory=list)
    has_other: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.kind == "numeric":
            d.pop("levels")
            d.pop("has_other")
        else:
            for k in ("median", "lo", "hi", "mean", "std"):
                d.pop(k)
        return _plain(d)  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> _Column:
        c = cls(str(d["name"]), str(d["kind"]), str(d["source"]), bool(d.get("has_missing")))
        if c.kind == "numeric":
            c.median, c.lo, c.hi = _num(d["median"]), _num(d["lo"]), _num(d["hi"])
            c.mean, c.std = _num(d["mean"]), _num(d["std"])
        else:
            c.levels = [str(v) for v in d["levels"]]
            c.has_other = bool(d.get("has_other"))
        return c


class Preprocessor:
    """Mercato's own preprocessing: fitted on a frame, applied the same way at predict time.

    ``tree_matrix(frame)`` gives LightGBM's input (raw numbers with NaN for missing values,
    categories as codes ``0..k-1`` of the frequent levels, ``k`` for "other", NaN for
    missing); ``linear_matrix(frame)`` the linear model's (numbers imputed with the median,
    clipped to the training 0.1-99.9 % quantiles and standardised, plus a 0/1 missing
    indicator where the training data had missing values; one-hot columns of the frequent
    levels, "other" and "missing"). A level not seen at fit time goes to the "other" bucket
    (all one-hot columns 0 when the training data had no rare level). ``notes`` say which
    columns were dropped or converted, and why.

    Examples
    --------
    >>> frame = pd.DataFrame({"x": [1.0, None, 3.0, 4.0], "c": ["a", "b", "a", "a"],
    ...                       "k": [1, 1, 1, 1]})
    >>> prep = Preprocessor.fit(frame, min_level_rows=1)
    >>> prep.features, prep.dropped
    (['x', 'c'], {'k': 'constant (every value is 1)'})
    >>> prep.tree_matrix(pd.DataFrame({"x": [2.0], "c": ["zzz"]})).tolist()
    [[2.0, 2.0]]
    """

    def __init__(self, columns: list[_Column], dropped: dict[str, str], notes: list[str]) -> None:
        self.columns = columns
        self.dropped = dropped
        self.notes = notes

    # -- fit ----------------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        frame: pd.DataFrame,
        *,
        seed: int = 0,
        min_level_rows: int | None = None,
    ) -> Preprocessor:
        """Learn the encoding of every column of ``frame`` (which holds features only)."""
        n = len(frame)
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(n, STATS_ROWS, replace=False)) if n > STATS_ROWS else None
        min_rows = (
            int(min_level_rows)
            if min_level_rows is not None
            else max(MIN_LEVEL_ROWS, math.ceil(MIN_LEVEL_SHARE * n))
        )
        columns: list[_Column] = []
        dropped: dict[str, str] = {}
        notes: list[str] = []
        for name in frame.columns:
            s = frame[name]
            label = str(name)
            nonnull = int(s.notna().sum())
            if nonnull == 0:
                dropped[label] = "every value is missing"
                continue
            if pd.api.types.is_bool_dtype(s):
                col = cls._numeric(
                    label, "bool", s.astype(float).to_numpy(dtype=float, na_value=np.nan), sample
                )
            elif pd.api.types.is_numeric_dtype(s):
                vals = np.array(s.to_numpy(dtype=float, na_value=np.nan), dtype=float)
                vals[~np.isfinite(vals)] = np.nan
                col = cls._numeric(label, "number", vals, sample)
            elif pd.api.types.is_datetime64_any_dtype(s):
                col = cls._numeric(label, "datetime", _days(s), sample)
                notes.append(f"column {label!r}: dates converted to days since 1970-01-01")
            else:
                text = _as_text(s)
                probe = text.dropna()
                probe = probe.iloc[:10_000] if len(probe) > 10_000 else probe
                as_num = pd.to_numeric(probe.str.strip(), errors="coerce")
                if as_num.notna().mean() >= NUMERIC_TEXT_SHARE:
                    vals = np.array(
                        pd.to_numeric(text.str.strip(), errors="coerce").to_numpy(
                            dtype=float, na_value=np.nan
                        ),
                        dtype=float,
                    )
                    bad = np.isnan(vals) & text.notna().to_numpy()
                    examples = _listing(sorted(set(text[bad].iloc[:1000].map(repr)))[:3], 3)
                    notes.append(
                        f"column {label!r}: text read as numbers"
                        + (
                            f"; {int(bad.sum()):,} values that are not numbers (such as "
                            f"{examples}) are taken as missing"
                            if bad.any()
                            else ""
                        )
                    )
                    vals[~np.isfinite(vals)] = np.nan
                    col = cls._numeric(label, "text-number", vals, sample)
                elif probe.map(lambda v: bool(ISO_DATE.match(str(v)))).all():
                    col = cls._numeric(label, "text-datetime", _days(text), sample)
                    notes.append(
                        f"column {label!r}: ISO dates converted to days since 1970-01-01 (UTC)"
                    )
                else:
                    counts = text.value_counts(dropna=True)
                    if len(counts) >= ID_MIN_LEVELS and len(counts) >= ID_SHARE * nonnull:
                        dropped[label] = (
                            f"identifier-like: {len(counts):,} distinct values in "
                            f"{nonnull:,} rows, not a feature"
                        )
                        continue
                    col = cls._categorical(label, counts, nonnull < n, min_rows)
            if col is None:
                dropped[label] = cls._constant_reason(s)
                continue
            columns.append(col)
        for name, why in dropped.items():
            notes.append(f"column {name!r} dropped: {why}")
        return cls(columns, dropped, notes)

    @staticmethod
    def _constant_reason(s: pd.Series) -> str:
        vals = pd.unique(s.dropna())
        if len(vals) == 1:
            return f"constant (every value is {vals[0]})"
        return "no level has enough rows to be learned from"

    @staticmethod
    def _numeric(
        name: str, source: str, vals: FloatArray, sample: IntArray | None
    ) -> _Column | None:
        miss = np.isnan(vals)
        has_missing = bool(miss.any())
        present = vals[~miss]
        if len(present) == 0:
            return None
        if present.min() == present.max() and not has_missing:
            return None
        sv = vals[sample] if sample is not None else vals
        sv = sv[~np.isnan(sv)]
        if len(sv) == 0:
            sv = present
        median = float(np.median(sv))
        lo, hi = (float(q) for q in np.quantile(sv, CLIP_QUANTILES))
        clipped = np.clip(np.where(np.isnan(vals), median, vals), lo, hi)
        sc = clipped[sample] if sample is not None else clipped
        mean, std = float(sc.mean()), float(sc.std())
        return _Column(
            name,
            "numeric",
            source,
            has_missing,
            median=median,
            lo=lo,
            hi=hi,
            mean=mean,
            std=std if std > 0 else 1.0,
        )

    @staticmethod
    def _categorical(
        name: str, counts: pd.Series, has_missing: bool, min_rows: int
    ) -> _Column | None:
        keep = counts[counts >= min_rows]
        keep = keep.sort_values(ascending=False, kind="stable").iloc[:MAX_LEVELS]
        levels = sorted(map(str, keep.index), key=lambda v: (-int(keep[v]), v))
        has_other = len(keep) < len(counts)
        buckets = len(levels) + int(has_other) + int(has_missing)
        if buckets < 2:
            return None
        return _Column(name, "categorical", "text", has_missing, levels=levels, has_other=has_other)

    # -- transform ------------------------------------------------------------------------------

    @property
    def features(self) -> list[str]:
        """The input columns the model uses."""
        return [c.name for c in self.columns]

    @property
    def categorical_indices(self) -> list[int]:
        """Positions of the categorical columns in :meth:`tree_matrix`."""
        return [i for i, c in enumerate(self.columns) if c.kind == "categorical"]

    @property
    def linear_names(self) -> list[str]:
        """Names of the columns of :meth:`linear_matrix`."""
        names: list[str] = []
        for c in self.columns:
            if c.kind == "numeric":
                names.append(c.name)
                if c.has_missing:
                    names.append(f"{c.name}=missing")
            else:
                names.extend(f"{c.name}={v}" for v in c.levels)
                if c.has_other:
                    names.append(f"{c.name}=other")
                if c.has_missing:
                    names.append(f"{c.name}=missing")
        return names

    def _check(self, frame: pd.DataFrame) -> None:
        if not isinstance(frame, pd.DataFrame):
            raise DataError("X must be a pandas DataFrame", value=type(frame).__name__)
        have = {str(c) for c in frame.columns}
        missing = [c.name for c in self.columns if c.name not in have]
        if missing:
            raise DataError(
                f"the data has no column {missing[0]!r}, a feature of the model",
                column=missing[0],
                hint=f"the model's features: {_listing(self.features, 30)}",
            )

    def _series(self, frame: pd.DataFrame, name: str) -> pd.Series:
        if name in frame.columns:
            return frame[name]
        for c in frame.columns:
            if str(c) == name:
                return frame[c]
        raise DataError("no such column", column=name)  # pragma: no cover (checked above)

    def _values(self, c: _Column, s: pd.Series) -> FloatArray:
        """A numeric column's values as floats (NaN for missing)."""
        if c.source in ("datetime", "text-datetime"):
            return _days(s)
        if pd.api.types.is_bool_dtype(s):
            return np.asarray(s.astype(float).to_numpy(dtype=float, na_value=np.nan))
        if pd.api.types.is_numeric_dtype(s):
            vals = np.array(s.to_numpy(dtype=float, na_value=np.nan), dtype=float)
        else:
            text = _as_text(s).str.strip()
            vals = np.array(
                pd.to_numeric(text, errors="coerce").to_numpy(dtype=float, na_value=np.nan),
                dtype=float,
            )
            if c.source != "text-number":
                bad = np.isnan(vals) & s.notna().to_numpy()
                if bad.any():
                    first = int(np.flatnonzero(bad)[0])
                    raise DataError(
                        f"{int(bad.sum()):,} values are not numbers",
                        row=first,
                        column=c.name,
                        value=s.iloc[first],
                        expected="a number (the model was fitted on numbers)",
                    )
        vals[~np.isfinite(vals)] = np.nan
        return vals

    def _codes(self, c: _Column, s: pd.Series) -> FloatArray:
        """A categorical column as codes: 0..k-1 the levels, k "other", NaN missing."""
        text = _as_text(s)
        codes = pd.Index(c.levels, dtype="string").get_indexer(text).astype(float)
        miss = text.isna().to_numpy()
        codes[codes < 0] = len(c.levels)  # rare at fit time or never seen: "other"
        codes[miss] = np.nan
        return codes

    def tree_matrix(self, frame: pd.DataFrame) -> FloatArray:
        """LightGBM's input: raw numbers (NaN missing) and category codes."""
        self._check(frame)
        out = np.empty((len(frame), len(self.columns)), dtype=float)
        for j, c in enumerate(self.columns):
            s = self._series(frame, c.name)
            out[:, j] = self._values(c, s) if c.kind == "numeric" else self._codes(c, s)
        return out

    def linear_matrix(self, frame: pd.DataFrame) -> FloatArray:
        """The linear model's input: imputed, clipped, standardised numbers and one-hots."""
        self._check(frame)
        n = len(frame)
        width = len(self.linear_names)
        out = np.zeros((n, width), dtype=float)
        j = 0
        for c in self.columns:
            s = self._series(frame, c.name)
            if c.kind == "numeric":
                v = self._values(c, s)
                miss = np.isnan(v)
                v = np.where(miss, c.median, v)
                np.clip(v, c.lo, c.hi, out=v)
                out[:, j] = (v - c.mean) / c.std
                j += 1
                if c.has_missing:
                    out[:, j] = miss
                    j += 1
            else:
                codes = self._codes(c, s)
                k = len(c.levels)
                valid = ~np.isnan(codes)
                rows = np.flatnonzero(valid)
                cols = codes[valid].astype(np.int64)
                keep = cols < k
                out[rows[keep], j + cols[keep]] = 1.0
                j += k
                if c.has_other:
                    out[rows[~keep], j] = 1.0
                    j += 1
                if c.has_missing:
                    out[~valid, j] = 1.0
                    j += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": [c.to_dict() for c in self.columns],
            "dropped": dict(self.dropped),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessor:
        return cls(
            [_Column.from_dict(c) for c in data["columns"]],
            {str(k): str(v) for k, v in dict(data.get("dropped") or {}).items()},
            [str(v) for v in data.get("notes") or []],
        )


# -- fitted models ----------------------------------------------------------------------------


class _Fitted(abc.ABC):
    """A fitted candidate: predicts from the encoded matrices."""

    uses: ClassVar[str] = ""  # "tree" | "linear" | ""

    @abc.abstractmethod
    def predict(self, X: FloatArray, n_jobs: int | None = None) -> FloatArray:
        """Predictions (probabilities or amounts) from the encoded matrix."""

    @abc.abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The fitted state as plain JSON."""


class _Constant(_Fitted):
    def __init__(self, value: float) -> None:
        self.value = float(value)

    def predict(self, X: FloatArray, n_jobs: int | None = None) -> FloatArray:
        return np.full(len(X), self.value)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "dummy", "value": self.value}


class _Linear(_Fitted):
    uses = "linear"

    def __init__(self, coef: Any, intercept: float, link: str) -> None:
        self.coef = np.asarray(coef, dtype=float)
        self.intercept = float(intercept)
        self.link = link

    def predict(self, X: FloatArray, n_jobs: int | None = None) -> FloatArray:
        z = X @ self.coef + self.intercept
        return _sigmoid(z) if self.link == "logit" else np.asarray(z, dtype=float)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "logistic" if self.link == "logit" else "linear",
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
            "link": self.link,
        }


class _Booster(_Fitted):
    uses = "tree"

    def __init__(self, text: str) -> None:
        import lightgbm

        self.text = text
        self.booster = lightgbm.Booster(model_str=text)
        self._paths: Any = None

    def predict(self, X: FloatArray, n_jobs: int | None = None) -> FloatArray:
        threads = _threads(len(X), n_jobs)
        return np.asarray(self.booster.predict(X, num_threads=threads), dtype=float)

    def paths(self) -> Any:
        """The trees as :class:`~mercato.models.treepaths.TreePaths` (built once)."""
        if self._paths is None:
            from mercato.models.treepaths import TreePaths

            self._paths = TreePaths.from_booster(self.booster)
        return self._paths

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "lightgbm", "booster": self.text}


class _User(_Fitted):
    uses = "linear"

    def __init__(self, estimator: Any, name: str, classification: bool) -> None:
        self.estimator = estimator
        self.name = name
        self.classification = classification

    def predict(self, X: FloatArray, n_jobs: int | None = None) -> FloatArray:
        if self.classification:
            proba = np.asarray(self.estimator.predict_proba(X), dtype=float)
            classes = list(getattr(self.estimator, "classes_", [0, 1]))
            col = classes.index(1) if 1 in classes else proba.shape[1] - 1
            return np.asarray(proba[:, col], dtype=float)
        return np.asarray(self.estimator.predict(X), dtype=float)

    def to_dict(self) -> dict[str, Any]:
        raise MercatoError(
            f"the chosen model is a scikit-learn estimator you passed ({self.name}): it "
            "cannot be saved without pickle, which Mercato never loads",
            hint="fit again without it in candidates (dummy, logistic, lightgbm save to JSON)",
        )


def _fitted_from_dict(d: Mapping[str, Any]) -> _Fitted:
    kind = d.get("kind")
    if kind == "dummy":
        return _Constant(float(d["value"]))
    if kind in ("logistic", "linear"):
        return _Linear(d["coef"], float(d["intercept"]), str(d["link"]))
    if kind == "lightgbm":
        return _Booster(str(d["booster"]))
    raise DataError("unknown model kind in the saved model", value=kind)


@dataclass
class _Calibrator:
    """Probability calibration: none, Platt (logistic on the logit) or isotonic (a step map)."""

    method: str = "none"
    a: float = 1.0
    b: float = 0.0
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)

    def apply(self, p: FloatArray) -> FloatArray:
        if self.method == "platt":
            return _sigmoid(self.a * _logit(p) + self.b)
        if self.method == "isotonic":
            return np.asarray(np.interp(p, self.x, self.y), dtype=float)
        return p

    @classmethod
    def fit(cls, method: str, p: FloatArray, y: FloatArray) -> _Calibrator:
        if method == "platt":
            from sklearn.linear_model import LogisticRegression

            lr = LogisticRegression(C=1e6, max_iter=1000)
            lr.fit(_logit(p).reshape(-1, 1), y)
            return cls("platt", a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))
        if method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            iso = IsotonicRegression(y_min=EPS, y_max=1 - EPS, out_of_bounds="clip")
            iso.fit(p, y)
            return cls(
                "isotonic",
                x=[float(v) for v in iso.X_thresholds_],
                y=[float(v) for v in iso.y_thresholds_],
            )
        return cls("none")

    def to_dict(self) -> dict[str, Any]:
        if self.method == "platt":
            return {"method": "platt", "a": self.a, "b": self.b}
        if self.method == "isotonic":
            return {"method": "isotonic", "x": self.x, "y": self.y}
        return {"method": "none"}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> _Calibrator:
        return cls(
            str(d.get("method", "none")),
            a=float(d.get("a", 1.0)),
            b=float(d.get("b", 0.0)),
            x=[float(v) for v in d.get("x") or []],
            y=[float(v) for v in d.get("y") or []],
        )


def _choose_calibration(
    method: str | bool, p: FloatArray, y: FloatArray, seed: int
) -> tuple[_Calibrator, dict[str, float], str]:
    """The calibrator to use (fitted on all of ``p``), the cross-validated log-loss of each
    option considered, and a sentence saying why."""
    if method is False or method in ("none", None):
        return _Calibrator(), {}, "no calibration (calibrate='none')"
    counts = min(int(y.sum()), int(len(y) - y.sum()))
    if method in ("platt", "isotonic"):
        need = ISOTONIC_MIN_CLASS if method == "isotonic" else MIN_CLASS_ROWS
        if counts < need:
            return (
                _Calibrator(),
                {},
                f"no calibration: {method} needs {need} validation rows of each class",
            )
        return _Calibrator.fit(str(method), p, y), {}, f"{method} (as asked)"
    options = ["none"]
    if counts >= max(MIN_CLASS_ROWS, 5):
        options.append("platt")
    if counts >= ISOTONIC_MIN_CLASS:
        options.append("isotonic")
    if len(options) == 1:
        return _Calibrator(), {}, "no calibration: too few validation rows of a class"
    from sklearn.model_selection import StratifiedKFold

    k = min(5, counts)
    losses = dict.fromkeys(options, 0.0)
    for fit_i, test_i in StratifiedKFold(k, shuffle=True, random_state=seed).split(p, y):
        for opt in options:
            cal = _Calibrator.fit(opt, p[fit_i], y[fit_i])
            q = np.clip(cal.apply(p[test_i]), 1e-15, 1 - 1e-15)
            yt = y[test_i]
            losses[opt] -= float(np.sum(yt * np.log(q) + (1 - yt) * np.log(1 - q)))
    losses = {k2: v / len(y) for k2, v in losses.items()}
    best = min(options, key=lambda o: (losses[o], options.index(o)))
    text = ", ".join(f"{o} {losses[o]:.4f}" for o in options)
    return (
        _Calibrator.fit(best, p, y),
        losses,
        f"{best}: lowest {k}-fold cross-validated log-loss on the validation predictions ({text})",
    )


# -- the search -------------------------------------------------------------------------------


@dataclass
class _Trial:
    family: str  # dummy | logistic | lightgbm | user
    candidate: str  # the name shown in the leaderboard
    settings: dict[str, Any]
    estimator: Any = None  # user estimators
    status: str = "pending"
    metrics: dict[str, float] = field(default_factory=dict)
    pred: FloatArray | None = None
    rounds: list[int] = field(default_factory=list)
    seconds: float = 0.0
    reason: str = ""
    se: float = math.nan

    @property
    def score(self) -> float:
        """Higher is better: ROC-AUC, or minus the mean squared error."""
        if "roc_auc" in self.metrics:
            return self.metrics["roc_auc"]
        return -self.metrics["mse"]

    def settings_text(self) -> str:
        parts = [f"{k}={v}" for k, v in self.settings.items() if v is not None]
        if self.rounds:
            parts.append(f"rounds={int(round(float(np.mean(self.rounds))))}")
        return ", ".join(parts)


def _delong(y: FloatArray, preds: Sequence[FloatArray]) -> tuple[FloatArray, FloatArray]:
    """AUCs of several scores of the same rows and their covariance (DeLong et al. 1988)."""
    from scipy.stats import rankdata

    pos = y == 1
    m, n = int(pos.sum()), int((~pos).sum())
    k = len(preds)
    aucs = np.zeros(k)
    v01 = np.zeros((k, m))
    v10 = np.zeros((k, n))
    for i, p in enumerate(preds):
        tz = rankdata(p)
        tx = rankdata(p[pos])
        ty = rankdata(p[~pos])
        aucs[i] = (tz[pos].sum() - m * (m + 1) / 2) / (m * n)
        v01[i] = (tz[pos] - tx) / n
        v10[i] = 1.0 - (tz[~pos] - ty) / m
    cov = np.atleast_2d(np.cov(v01)) / m + np.atleast_2d(np.cov(v10)) / n
    return aucs, cov


def _se_difference(y: FloatArray, a: FloatArray, b: FloatArray, classification: bool) -> float:
    """Standard error of the paired difference of two candidates' validation scores."""
    if classification:
        _, cov = _delong(y, [a, b])
        var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    else:
        d = (y - a) ** 2 - (y - b) ** 2
        var = float(np.var(d, ddof=1)) / len(d) if len(d) > 1 else 0.0
    return float(math.sqrt(max(var, 0.0)))


def _val_metrics(y: FloatArray, p: FloatArray, classification: bool) -> dict[str, float]:
    if classification:
        from sklearn.metrics import (
            average_precision_score,
            brier_score_loss,
            log_loss,
            roc_auc_score,
        )

        return {
            "roc_auc": float(roc_auc_score(y, p)),
            "pr_auc": float(average_precision_score(y, p)),
            "log_loss": float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0.0, 1.0])),
            "brier": float(brier_score_loss(y, p, pos_label=1.0)),
        }
    err = y - p
    mse = float(np.mean(err**2))
    tot = float(np.var(y))
    return {
        "mse": mse,
        "rmse": math.sqrt(mse),
        "mae": float(np.mean(np.abs(err))),
        "r2": 1 - mse / tot if tot > 0 else math.nan,
    }


def _learning_rate(rows: int) -> float:
    return next(lr for limit, lr in LEARNING_RATES if rows <= limit)


def _lgb_grid(n_fit: int, imbalanced: bool, rows: int) -> list[dict[str, Any]]:
    """LightGBM settings in the order they are tried; sizes follow the number of rows
    (``n_fit`` those a setting is fitted on in the search, ``rows`` the training rows)."""
    m = int(np.clip(n_fit / 1000, 10, 200))
    lr = _learning_rate(rows)
    grid: list[dict[str, Any]] = [
        {"num_leaves": 15, "min_child_samples": m, "lambda_l2": 1.0, "feature_fraction": 0.8},
        {"num_leaves": 31, "min_child_samples": m, "lambda_l2": 1.0, "feature_fraction": 0.8},
        {"num_leaves": 7, "min_child_samples": 2 * m, "lambda_l2": 10.0, "feature_fraction": 0.8},
        {"num_leaves": 63, "min_child_samples": 2 * m, "lambda_l2": 10.0, "feature_fraction": 0.6},
        {"num_leaves": 15, "min_child_samples": 4 * m, "lambda_l2": 30.0, "feature_fraction": 0.5},
        {
            "num_leaves": 31,
            "min_child_samples": max(5, m // 2),
            "lambda_l2": 0.0,
            "feature_fraction": 0.9,
        },
    ]
    if n_fit < 2000:
        grid = [g for g in grid if g["num_leaves"] <= 15] + [
            {"num_leaves": 4, "min_child_samples": 5, "lambda_l2": 1.0, "feature_fraction": 1.0}
        ]
    for g in grid:
        g["learning_rate"] = lr
        g["class_weight"] = None
    if imbalanced:
        grid.insert(2, {**grid[0], "class_weight": "balanced"})
    return grid


def _linear_grid(classification: bool, imbalanced: bool) -> list[dict[str, Any]]:
    if not classification:
        return [{"alpha": a} for a in (1.0, 10.0, 100.0, 0.1)]
    grid: list[dict[str, Any]] = [{"C": c, "class_weight": None} for c in (1.0, 0.1, 0.01)]
    if imbalanced:
        grid.insert(1, {"C": 1.0, "class_weight": "balanced"})
    return grid


def _lgb_params(
    settings: Mapping[str, Any], classification: bool, pos_weight: float, threads: int, seed: int
) -> dict[str, Any]:
    p = {
        "objective": "binary" if classification else "regression",
        "metric": "auc" if classification else "l2",
        "learning_rate": settings["learning_rate"],
        "num_leaves": settings["num_leaves"],
        "min_data_in_leaf": settings["min_child_samples"],
        "lambda_l2": settings["lambda_l2"],
        "feature_fraction": settings["feature_fraction"],
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "seed": seed,
        "num_threads": threads,
        "deterministic": True,
        "force_row_wise": True,
        "verbose": -1,
    }
    if classification and settings.get("class_weight") == "balanced":
        p["scale_pos_weight"] = pos_weight
    return p


class _Search:
    """One run of the candidates over a validation plan (the search sample's rows)."""

    def __init__(
        self,
        tree: FloatArray | None,
        linear: FloatArray | None,
        y: FloatArray,
        splits: list[tuple[IntArray, IntArray]],
        categorical: list[int],
        classification: bool,
        seed: int,
        n_jobs: int | None,
    ) -> None:
        self.tree = tree
        self.linear = linear
        self.y = y
        self.splits = splits
        self.categorical = categorical
        self.classification = classification
        self.seed = seed
        self.n_jobs = n_jobs
        self.val = np.concatenate([v for _, v in splits])
        self.y_val = y[self.val]
        self._full: Any = None  # LightGBM's binned search sample, shared by every setting

    def run(self, trial: _Trial) -> None:
        t0 = time.perf_counter()
        preds: list[FloatArray] = []
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if trial.family == "lightgbm":
                    preds = self._lightgbm(trial)
                else:
                    for fit_i, val_i in self.splits:
                        preds.append(self._one(trial, fit_i, val_i))
        except MercatoError:
            raise
        except Exception as exc:  # a user estimator (or a degenerate split) failed
            trial.status = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
            trial.seconds = time.perf_counter() - t0
            return
        trial.pred = np.concatenate(preds)
        trial.metrics = _val_metrics(self.y_val, trial.pred, self.classification)
        trial.status = "ok"
        trial.seconds = time.perf_counter() - t0

    def _one(self, trial: _Trial, fit_i: IntArray, val_i: IntArray) -> FloatArray:
        y = self.y
        if trial.family == "dummy":
            # the base rate of the whole search sample: the same constant in every split
            # (so that its ROC-AUC is exactly 0.5)
            return np.full(len(val_i), float(y.mean()))
        if trial.family == "logistic":
            assert self.linear is not None
            fitted = _fit_linear(
                self.linear[fit_i], y[fit_i], trial.settings, self.classification, self.seed
            )
            return fitted.predict(self.linear[val_i])
        if trial.family == "user":
            assert self.linear is not None
            from sklearn.base import clone

            est = clone(trial.estimator)
            est.fit(self.linear[fit_i], y[fit_i])
            return _User(est, trial.candidate, self.classification).predict(self.linear[val_i])
        raise AssertionError(trial.family)  # pragma: no cover (LightGBM runs in _lightgbm)

    def _lightgbm(self, trial: _Trial) -> list[FloatArray]:
        """Every split at once, as ``lightgbm.cv``: early stopping on the mean validation
        metric over the splits, so that all splits stop at the same round (one number chosen
        on all validation rows, not one per split)."""
        import lightgbm

        assert self.tree is not None
        if self._full is None:
            self._full = lightgbm.Dataset(
                self.tree,
                label=self.y,
                categorical_feature=self.categorical or "auto",
                params={"verbose": -1, "max_bin": 255, "feature_pre_filter": False},
                free_raw_data=False,
            )
        y = self.y
        pos_weight = float((len(y) - y.sum()) / max(y.sum(), 1)) if self.classification else 1.0
        n_fit = int(np.mean([len(f) for f, _ in self.splits]))
        params = _lgb_params(
            trial.settings, self.classification, pos_weight, _threads(n_fit, self.n_jobs), self.seed
        )
        result = lightgbm.cv(
            params,
            self._full,
            num_boost_round=MAX_ROUNDS,
            folds=[(f, v) for f, v in self.splits],
            callbacks=[lightgbm.early_stopping(_patience(params["learning_rate"]), verbose=False)],
            return_cvbooster=True,
        )
        cvb: Any = result["cvbooster"]
        best = max(1, int(cvb.best_iteration))
        trial.rounds = [best]
        return [
            np.asarray(
                booster.predict(
                    self.tree[v], num_iteration=best, num_threads=_threads(len(v), self.n_jobs)
                ),
                dtype=float,
            )
            for booster, (_, v) in zip(cvb.boosters, self.splits, strict=True)
        ]


def _patience(learning_rate: float) -> int:
    return max(20, int(round(2.5 / learning_rate)))


def _fit_linear(
    X: FloatArray, y: FloatArray, settings: Mapping[str, Any], classification: bool, seed: int
) -> _Linear:
    if classification:
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(
            C=float(settings["C"]),
            class_weight=settings.get("class_weight"),
            max_iter=1000,
            random_state=seed,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lr.fit(X, y)
        return _Linear(lr.coef_.ravel(), float(lr.intercept_[0]), "logit")
    from sklearn.linear_model import Ridge

    ridge = Ridge(alpha=float(settings["alpha"]))
    ridge.fit(X, y)
    return _Linear(np.ravel(ridge.coef_), float(ridge.intercept_), "identity")


# -- the estimator ----------------------------------------------------------------------------


class PropensityModel(BaseEstimator):  # type: ignore[misc]
    """A propensity (or spend) model that chooses its algorithm on validation data.

    Parameters
    ----------
    task : {"classification", "regression"}, default "classification"
        A 0/1 outcome (probabilities) or an amount.
    candidates : sequence, default ("dummy", "logistic", "lightgbm")
        The built-in candidates to compare, and any scikit-learn estimators (classifiers with
        ``predict_proba``, or regressors) to compare with them; those are fitted on the linear
        model's design matrix (imputed, scaled numbers and one-hot levels). A model whose
        chosen candidate is such an estimator predicts but cannot be saved (no pickle).
        ``"linear"`` is another name of ``"logistic"`` (ridge regression for a regression).
    time_budget : float or None, default 60
        Seconds for the search (preprocessing and the final refit come on top). The first
        setting of every candidate always runs; the others while the budget lasts.
    validation : {"time", "stratified"}, default "stratified"
        How the search validates; ``"time"`` (or a ``time_col``) holds out the latest rows.
    time_col : str, optional
        A column of ``X`` giving each row's time (a date, or a cutoff of a stacked training
        set): validation on the latest ~20 % of rows. It is not used as a feature.
    class_weight : {"auto", "balanced", None}, default "auto"
        ``"auto"``: balanced class weights are a candidate setting when the rarer class is
        under 25 % of the rows; ``"balanced"``: always; None: never.
    calibrate : {"auto", "platt", "isotonic", "none"}, default "auto"
        Probability calibration on the validation predictions (``"auto"``: the lowest
        cross-validated log-loss among none, Platt and isotonic).
    seed : int, default 0
    n_jobs : int, optional
        LightGBM threads on 50,000 rows or more (default: every core; fewer rows use one).

    Attributes
    ----------
    leaderboard_ : DataFrame
        Every setting tried: candidate, settings, validation metrics, standard error of the
        difference from the best, fit seconds, status, chosen, reason.
    choice_reason_ : str
    chosen_ : str
        ``dummy``, ``logistic`` (``linear``), ``lightgbm`` or the user estimator's name.
    classes_ : ndarray
        The two labels (classification); probabilities are of ``classes_[1]``.
    features_ : list of str
        The input columns the model uses.
    notes_ : list of str
        Dropped and converted columns, the validation, the budget.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"x": rng.normal(size=2000), "c": rng.choice(["a", "b"], 2000)})
    >>> y = (rng.random(2000) < 1 / (1 + np.exp(-2 * X.x))).astype(int)
    >>> m = PropensityModel(time_budget=10).fit(X, y)
    >>> m.chosen_
    'logistic'
    >>> bool(m.predict_proba(X)[:, 1][X.x.argmax()] > 0.9)
    True
    """

    def __init__(
        self,
        task: str = "classification",
        candidates: Sequence[Any] = BUILTIN,
        time_budget: float | None = DEFAULT_TIME_BUDGET,
        validation: str = "stratified",
        time_col: str | None = None,
        class_weight: str | None = "auto",
        calibrate: str | bool = "auto",
        seed: int = 0,
        n_jobs: int | None = None,
    ) -> None:
        self.task = task
        self.candidates = candidates
        self.time_budget = time_budget
        self.validation = validation
        self.time_col = time_col
        self.class_weight = class_weight
        self.calibrate = calibrate
        self.seed = seed
        self.n_jobs = n_jobs

    # -- checks ---------------------------------------------------------------------------------

    def _check_params(self) -> None:
        if self.task not in ("classification", "regression"):
            raise DataError(
                "unknown task", value=self.task, expected="classification or regression"
            )
        if self.validation not in ("time", "stratified"):
            raise DataError(
                "unknown validation", value=self.validation, expected="time or stratified"
            )
        if self.class_weight not in ("auto", "balanced", None):
            raise DataError(
                "unknown class_weight", value=self.class_weight, expected="auto, balanced or None"
            )
        if self.calibrate not in ("auto", "platt", "isotonic", "none", True, False, None):
            raise DataError(
                "unknown calibrate", value=self.calibrate, expected="auto, platt, isotonic or none"
            )
        if self.time_budget is not None and not float(self.time_budget) > 0:
            raise DataError(
                "time_budget must be a positive number of seconds", value=self.time_budget
            )

    def _families(self) -> list[tuple[str, str, Any]]:
        """(family, name, estimator) of every candidate, in the given order."""
        out: list[tuple[str, str, Any]] = []
        names: set[str] = set()
        cands = [self.candidates] if isinstance(self.candidates, str) else self.candidates
        for c in cands:
            if isinstance(c, str):
                key = c.strip().lower()
                key = "logistic" if key == "linear" else key
                if key not in BUILTIN:
                    raise DataError(
                        "unknown candidate",
                        value=c,
                        expected="dummy, logistic, lightgbm or an estimator",
                    )
                if key not in names:
                    out.append((key, key, None))
                    names.add(key)
                continue
            need = "predict_proba" if self.task == "classification" else "predict"
            if not (hasattr(c, "fit") and hasattr(c, need) and hasattr(c, "get_params")):
                raise DataError(
                    f"candidate {type(c).__name__} is not a scikit-learn estimator with "
                    f"fit and {need}",
                    value=repr(c)[:60],
                )
            name = type(c).__name__
            base, i = name, 2
            while name in names:
                name, i = f"{base}_{i}", i + 1
            names.add(name)
            out.append(("user", name, c))
        if not out:
            raise DataError("no candidate given", expected="some of dummy, logistic, lightgbm")
        return out

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet",
                hint="call fit() first, or load a saved model with model_from_dict()",
            )

    # -- fit ------------------------------------------------------------------------------------

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        ids: Any = None,
        progress: Progress | None = None,
    ) -> PropensityModel:
        """Choose, tune and fit the model (see the module documentation for the procedure).

        Parameters
        ----------
        X : DataFrame
            Features, one row per customer (numbers, booleans, text, dates); ``time_col``
            (if any) among them.
        y : array-like
            Two classes (0/1, booleans or two labels) or, for regression, numbers.
        ids : array-like, optional
            Customer ids: their count and a fingerprint are saved with the model.
        progress : callable, optional
            ``progress(done, total, description)`` after every setting tried.

        Returns
        -------
        self
        """
        t_start = time.perf_counter()
        self._check_params()
        families = self._families()
        classification = self.task == "classification"
        if isinstance(X, np.ndarray):
            X = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
        if not isinstance(X, pd.DataFrame):
            raise DataError("X must be a pandas DataFrame of features", value=type(X).__name__)
        if X.columns.duplicated().any():
            dup = X.columns[X.columns.duplicated()][0]
            raise DataError("two columns have the same name", column=str(dup))
        n = len(X)
        yv, classes = self._target(y, n, classification)
        id_arr = None if ids is None else np.asarray(ids, dtype=object).reshape(-1)
        if id_arr is not None and len(id_arr) != n:
            raise DataError(f"ids and X have different lengths ({len(id_arr):,} and {n:,})")
        notes: list[str] = []
        times: FloatArray | None = None
        features = X
        if self.time_col is not None:
            if self.time_col not in X.columns:
                raise DataError(
                    f"no time column {self.time_col!r}",
                    column=self.time_col,
                    hint=f"the columns: {_listing(map(str, X.columns), 30)}",
                )
            tcol = X[self.time_col]
            self._time_is_days = not pd.api.types.is_numeric_dtype(
                tcol
            ) or pd.api.types.is_datetime64_any_dtype(tcol)
            times = (
                _days(tcol)
                if self._time_is_days
                else np.asarray(tcol.to_numpy(dtype=float, na_value=np.nan), dtype=float)
            )
            if np.isnan(times).any():
                first = int(np.flatnonzero(np.isnan(times))[0])
                raise DataError(
                    "the time column has missing or unreadable values",
                    column=self.time_col,
                    row=first,
                    value=tcol.iloc[first],
                )
            features = X.drop(columns=[self.time_col])
        if n < MIN_ROWS:
            raise DataError(
                f"only {n} rows: too few to choose and fit a model",
                expected=f"at least {MIN_ROWS} rows",
            )
        if classification:
            minority = int(min(yv.sum(), n - yv.sum()))
            if minority < MIN_CLASS_ROWS:
                rare = classes[1] if yv.sum() < n - yv.sum() else classes[0]
                raise DataError(
                    f"only {minority} rows of the class {rare!r}: too few to validate a model",
                    column="y",
                    expected=f"at least {MIN_CLASS_ROWS} rows of each class",
                )
        prep = Preprocessor.fit(features, seed=self.seed)
        notes.extend(prep.notes)
        if not prep.columns:
            raise DataError(
                "no usable feature: " + "; ".join(f"{k}: {v}" for k, v in prep.dropped.items()),
                hint="pass columns with information about the customers",
            )
        rng = np.random.default_rng(self.seed)
        # the search sample
        if n > SEARCH_ROWS:
            search = self._sample(yv, SEARCH_ROWS, classification, rng)
            notes.append(
                f"the search ran on a sample of {SEARCH_ROWS:,} of the {n:,} rows; the chosen "
                "setting was then fitted on every row"
            )
        else:
            search = np.arange(n)
        ys = yv[search]
        ts = times[search] if times is not None else None
        splits, how = self._plan(ys, ts, classification, rng)
        notes.append(f"validation: {how}")
        kinds = {f for f, _, _ in families}
        Xs = features.iloc[search] if len(search) < n else features
        tree = prep.tree_matrix(Xs) if "lightgbm" in kinds else None
        linear = prep.linear_matrix(Xs) if kinds & {"logistic", "user"} else None
        imbalanced = classification and (
            self.class_weight == "balanced"
            or (self.class_weight == "auto" and min(yv.mean(), 1 - yv.mean()) < IMBALANCE_SHARE)
        )
        trials = self._trials(families, splits, classification, imbalanced, n)
        from threadpoolctl import threadpool_limits

        # BLAS threads (the linear models): one on small data, where a second thread
        # mostly waits (and a busy machine makes it much slower)
        with threadpool_limits(limits=_threads(n, self.n_jobs), user_api="blas"):
            engine = _Search(
                tree,
                linear,
                ys,
                splits,
                prep.categorical_indices,
                classification,
                self.seed,
                self.n_jobs,
            )
            budget = math.inf if self.time_budget is None else float(self.time_budget)
            t0 = time.perf_counter()
            last: dict[str, float] = {}
            skipped = 0
            for i, trial in enumerate(trials):
                first = all(
                    t.family != trial.family or t.candidate != trial.candidate for t in trials[:i]
                )
                elapsed = time.perf_counter() - t0
                if not first and elapsed + last.get(trial.family, 0.0) > budget:
                    trial.status = f"skipped: time budget ({budget:g} s) spent"
                    skipped += 1
                else:
                    engine.run(trial)
                    last[trial.family] = trial.seconds
                if progress is not None:
                    progress(i + 1, len(trials), f"{trial.candidate} {trial.settings_text()}")
            if skipped:
                notes.append(
                    f"the search stopped at the time budget ({budget:g} s): {skipped} of "
                    f"{len(trials)} settings were not tried"
                )
            ok = [t for t in trials if t.status == "ok"]
            if not ok:
                raise DataError(
                    "every candidate failed: "
                    + "; ".join(f"{t.candidate}: {t.status}" for t in trials),
                )
            chosen, reason = self._choose(ok, engine.y_val, classification)
            self.search_seconds_ = time.perf_counter() - t0
            # the refit on every row
            t1 = time.perf_counter()
            self.model_ = self._refit(chosen, prep, features, yv, len(splits[0][0]), classification)
            self.refit_seconds_ = time.perf_counter() - t1
        if classification and chosen.family != "dummy":
            assert chosen.pred is not None
            cal, losses, cal_reason = _choose_calibration(
                True if self.calibrate is True else (self.calibrate or "none"),
                chosen.pred,
                engine.y_val,
                self.seed,
            )
        else:
            cal, losses, cal_reason = _Calibrator(), {}, "no calibration"
        self.calibrator_ = cal
        self.calibration_ = {"method": cal.method, "reason": cal_reason, "log_loss": losses}
        self.prep_ = prep
        self.classes_ = classes
        self.features_ = prep.features
        self.n_features_in_ = X.shape[1]
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        self.chosen_ = (
            chosen.candidate
            if chosen.family != "logistic"
            else ("logistic" if classification else "linear")
        )
        self.chosen_settings_ = dict(chosen.settings)
        self.choice_reason_ = reason
        self.validation_ = {"how": how, "rows": len(engine.y_val), **chosen.metrics}
        self.leaderboard_ = self._leaderboard(trials, chosen, classification)
        self.trained_rows_ = n
        self.notes_ = notes
        self.fit_seconds_ = time.perf_counter() - t_start
        if id_arr is not None:
            self.customers_ = int(pd.Index(id_arr).nunique())
            self.customers_fingerprint_: str | None = _fingerprint(id_arr)
        else:
            self.customers_ = n
            self.customers_fingerprint_ = None
        return self

    def _target(self, y: Any, n: int, classification: bool) -> tuple[FloatArray, list[Any]]:
        arr = np.asarray(y, dtype=object).reshape(-1)
        if len(arr) != n:
            raise DataError(f"X and y have different lengths ({n:,} and {len(arr):,})")
        miss = pd.isna(pd.Series(arr)).to_numpy()
        if miss.any():
            raise DataError(
                f"{int(miss.sum()):,} target values are missing",
                row=int(np.flatnonzero(miss)[0]),
                column="y",
                hint="drop those rows (evaluate() does, with a note)",
            )
        if not classification:
            vals = pd.to_numeric(pd.Series(arr), errors="coerce").to_numpy(
                dtype=float, na_value=np.nan
            )
            bad = ~np.isfinite(vals)
            if bad.any():
                first = int(np.flatnonzero(bad)[0])
                raise DataError(
                    "the target must be numbers for a regression",
                    row=first,
                    column="y",
                    value=arr[first],
                    expected="a number",
                )
            if n and np.ptp(vals) == 0:
                raise DataError(
                    "the target is constant: nothing to predict", column="y", value=vals[0]
                )
            return vals, []
        labels = pd.unique(arr)
        if len(labels) < 2:
            raise DataError(
                "the target has one class only: nothing to tell apart",
                column="y",
                value=labels[0] if len(labels) else None,
                expected="two classes",
            )
        if len(labels) > 2:
            raise DataError(
                f"the target has {len(labels)} classes; a propensity model needs two",
                column="y",
                hint=f"values: {_listing(sorted(map(str, labels)))}; pick the positive one "
                "(evaluate(positive=...), --positive) or use task='regression' for amounts",
            )
        try:
            classes = sorted(labels)
        except TypeError:
            classes = sorted(labels, key=str)
        classes = [_plain(c) for c in classes]
        yv = np.asarray(arr == classes[1], dtype=float)
        if all(isinstance(c, int | float) and not isinstance(c, bool) for c in classes) and (
            classes == [0, 1]
        ):
            classes = [0, 1]  # 0.0/1.0 read from a file: the usual labels
        return yv, classes

    @staticmethod
    def _sample(
        y: FloatArray, size: int, classification: bool, rng: np.random.Generator
    ) -> IntArray:
        if classification:
            from sklearn.model_selection import train_test_split

            idx, _ = train_test_split(
                np.arange(len(y)),
                train_size=size,
                stratify=y,
                random_state=int(rng.integers(2**31)),
            )
            return np.sort(np.asarray(idx, dtype=np.int64))
        return np.sort(rng.choice(len(y), size, replace=False)).astype(np.int64)

    def _shown_time(self, t: float) -> str:
        """A time value as the user wrote it: a day for dates, the number otherwise."""
        if getattr(self, "_time_is_days", False):
            return str((pd.Timestamp("1970-01-01") + pd.Timedelta(days=t)).date())
        return f"{t:g}"

    def _plan(
        self,
        y: FloatArray,
        times: FloatArray | None,
        classification: bool,
        rng: np.random.Generator,
    ) -> tuple[list[tuple[IntArray, IntArray]], str]:
        n = len(y)
        if times is not None or self.validation == "time":
            if times is None:
                raise DataError("validation='time' needs a time column (time_col=...)")
            uniq = np.unique(times)
            if len(uniq) >= 2:
                # the latest whole time values holding about VALIDATION_SHARE of the rows
                cut = float(np.quantile(times, 1 - VALIDATION_SHARE, method="higher"))
                if cut <= uniq[0]:
                    cut = float(uniq[1])
                val = np.flatnonzero(times >= cut)
                fit = np.flatnonzero(times < cut)
                ok = len(fit) >= MIN_CLASS_ROWS and len(val) >= MIN_CLASS_ROWS
                if classification:
                    ok = ok and 0 < y[val].sum() < len(val) and 0 < y[fit].sum() < len(fit)
                if ok:
                    return [(fit, val)], (
                        f"time-based: the {len(val):,} rows from {self.time_col} >= "
                        f"{self._shown_time(cut)} "
                        f"(the latest {len(val) / n:.0%}) validate settings fitted on the "
                        f"{len(fit):,} earlier rows"
                    )
            how = "stratified" if classification else "random"
            fallback = (
                f"the time column {self.time_col!r} cannot split the rows into an earlier "
                f"and a later part with both classes; {how} validation instead"
            )
        else:
            fallback = ""
        seed = int(rng.integers(2**31))
        if n < KFOLD_BELOW:
            from sklearn.model_selection import KFold, StratifiedKFold

            if classification:
                k = int(min(INNER_FOLDS, y.sum(), n - y.sum()))
                folds = StratifiedKFold(k, shuffle=True, random_state=seed).split(y, y)
            else:
                k = INNER_FOLDS
                folds = KFold(k, shuffle=True, random_state=seed).split(y)
            splits = [(np.asarray(a, np.int64), np.asarray(b, np.int64)) for a, b in folds]
            how = (
                f"{k}-fold {'stratified ' if classification else ''}cross-validation on the "
                f"{n:,} training rows"
            )
        else:
            from sklearn.model_selection import train_test_split

            fit, val = train_test_split(
                np.arange(n),
                test_size=VALIDATION_SHARE,
                random_state=seed,
                stratify=y if classification else None,
            )
            splits = [(np.sort(fit).astype(np.int64), np.sort(val).astype(np.int64))]
            how = (
                f"a {'stratified ' if classification else ''}hold-out of {len(val):,} of the "
                f"{n:,} training rows"
            )
        return splits, (fallback + ": " + how if fallback else how)

    def _trials(
        self,
        families: list[tuple[str, str, Any]],
        splits: list[tuple[IntArray, IntArray]],
        classification: bool,
        imbalanced: bool,
        n_rows: int,
    ) -> list[_Trial]:
        n_fit = int(np.mean([len(f) for f, _ in splits]))
        queues: dict[str, list[_Trial]] = {}
        firsts: list[_Trial] = []
        for fam, name, est in families:
            if fam == "dummy":
                grid: list[dict[str, Any]] = [{}]
            elif fam == "logistic":
                grid = _linear_grid(classification, imbalanced)
                if self.class_weight == "balanced" and classification:
                    grid = [
                        {**g, "class_weight": "balanced"}
                        for g in grid
                        if g.get("class_weight") is None
                    ]
            elif fam == "lightgbm":
                grid = _lgb_grid(n_fit, imbalanced, n_rows)
                if self.class_weight == "balanced" and classification:
                    grid = [
                        {**g, "class_weight": "balanced"}
                        for g in grid
                        if g.get("class_weight") is None
                    ]
            else:
                grid = [{}]
            shown = name if fam != "logistic" or classification else "linear"
            trials = [_Trial(fam, shown, dict(g), estimator=est) for g in grid]
            firsts.append(trials[0])
            queues[name] = trials[1:]
        # the rest interleaved: two LightGBM settings for each linear one
        rest: list[_Trial] = []
        lgb = queues.get("lightgbm", [])
        lin = queues.get("logistic", [])
        while lgb or lin:
            rest.extend(lgb[:2])
            lgb = lgb[2:]
            rest.extend(lin[:1])
            lin = lin[1:]
        return firsts + rest

    def _choose(
        self, ok: list[_Trial], y_val: FloatArray, classification: bool
    ) -> tuple[_Trial, str]:
        metric = "ROC-AUC" if classification else "RMSE"

        def shown(t: _Trial) -> str:
            v = t.metrics["roc_auc"] if classification else t.metrics["rmse"]
            return f"{v:.3f}" if classification else f"{v:.4g}"

        best_of: dict[str, _Trial] = {}
        for t in ok:
            if t.candidate not in best_of or t.score > best_of[t.candidate].score:
                best_of[t.candidate] = t
        overall = max(best_of.values(), key=lambda t: t.score)
        order = sorted(best_of.values(), key=lambda t: (_RANK[t.family], -t.score))
        assert overall.pred is not None
        for t in best_of.values():
            if t is overall:
                continue
            assert t.pred is not None
            t.se = _se_difference(y_val, overall.pred, t.pred, classification)
        chosen = overall
        for t in order:
            if t is overall:
                break
            gap = overall.score - t.score  # >= 0
            if gap <= t.se:
                chosen = t
                break

        def name(t: _Trial) -> str:
            if t.family == "logistic":
                return "logistic regression" if classification else "ridge regression"
            return _NAMES.get(t.family, t.candidate)

        def diff(t: _Trial, ref: _Trial) -> float:
            if classification:
                return t.metrics["roc_auc"] - ref.metrics["roc_auc"]
            return t.metrics["rmse"] - ref.metrics["rmse"]

        def se_of(t: _Trial) -> float:
            # regression: the MSE difference's standard error in RMSE units (delta method)
            if classification or not t.se == t.se:
                return t.se
            return t.se / (2 * max(overall.metrics["rmse"], 1e-300))

        others = [t for t in order if t is not chosen]
        text = f"{name(chosen)} ({chosen.settings_text() or 'no settings'}): validation {metric} "
        text += shown(chosen)
        parts: list[str] = []
        if chosen is overall:
            for t in others:
                if t.family == "dummy":
                    continue
                se = se_of(t)
                d = diff(chosen, t)
                parts.append(
                    f"vs {name(t)} {shown(t)} ({d:+.4f}, "
                    + ("larger" if abs(d) > se else "not larger")
                    + f" than the {se:.4f} standard error of the difference)"
                )
        else:
            d = diff(overall, chosen)
            parts.append(
                f"{name(overall)} scored {shown(overall)} ({d:+.4f}), within one standard "
                f"error of the difference ({se_of(chosen):.4f}): the simpler model is kept"
            )
            for t in others:
                if t is overall or t.family == "dummy":
                    continue
                parts.append(f"{name(t)} {shown(t)}")
        dummy = next((t for t in ok if t.family == "dummy"), None)
        if parts:
            text += " " + "; ".join(parts)
        if dummy is not None and chosen is not dummy:
            text += f"; the dummy baseline {shown(dummy)}"
        if chosen.family == "dummy":
            text = (
                f"the dummy baseline: no candidate beats it by more than one standard error "
                f"(validation {metric}: " + ", ".join(f"{name(t)} {shown(t)}" for t in order) + ")"
            )
        chosen.reason = text
        for t in best_of.values():
            if t is chosen:
                continue
            d = diff(t, chosen)
            t.reason = f"best {t.candidate} setting: {d:+.4f} vs the chosen" + (
                f" (standard error {se_of(t):.4f})" if t.se == t.se else ""
            )
        return chosen, text

    def _refit(
        self,
        chosen: _Trial,
        prep: Preprocessor,
        features: pd.DataFrame,
        y: FloatArray,
        n_fit: int,
        classification: bool,
    ) -> _Fitted:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if chosen.family == "dummy":
                return _Constant(float(y.mean()))
            if chosen.family == "logistic":
                return _fit_linear(
                    prep.linear_matrix(features), y, chosen.settings, classification, self.seed
                )
            if chosen.family == "user":
                from sklearn.base import clone

                est = clone(chosen.estimator)
                est.fit(prep.linear_matrix(features), y)
                return _User(est, chosen.candidate, classification)
            import lightgbm

            scale = min(math.sqrt(len(y) / max(n_fit, 1)), MAX_ROUNDS_SCALE)
            rounds = max(1, int(round(float(np.mean(chosen.rounds)) * scale)))
            chosen.settings["refit_rounds"] = rounds
            pos_weight = float((len(y) - y.sum()) / max(y.sum(), 1)) if classification else 1.0
            params = _lgb_params(
                chosen.settings,
                classification,
                pos_weight,
                _threads(len(y), self.n_jobs),
                self.seed,
            )
            data = lightgbm.Dataset(
                prep.tree_matrix(features),
                label=y,
                categorical_feature=prep.categorical_indices or "auto",
                params={"verbose": -1, "max_bin": 255},
            )
            booster = lightgbm.train(params, data, num_boost_round=rounds)
            # predictions always go through the text form, so a saved model predicts the same
            return _Booster(booster.model_to_string())

    @staticmethod
    def _leaderboard(trials: list[_Trial], chosen: _Trial, classification: bool) -> pd.DataFrame:
        cols = (
            ["roc_auc", "pr_auc", "log_loss", "brier"] if classification else ["rmse", "mae", "r2"]
        )
        rows = []
        for t in trials:
            row: dict[str, Any] = {"candidate": t.candidate, "settings": t.settings_text()}
            for c in cols:
                row[c] = t.metrics.get(c, math.nan)
            row["se_vs_best"] = t.se
            row["fit_seconds"] = round(t.seconds, 3)
            row["status"] = t.status
            row["chosen"] = t is chosen
            row["reason"] = t.reason
            rows.append(row)
        return pd.DataFrame(rows)

    # -- predict --------------------------------------------------------------------------------

    def _raw(self, X: Any) -> FloatArray:
        self._check_fitted()
        if isinstance(X, np.ndarray):
            X = pd.DataFrame(X, columns=list(self.feature_names_in_)[: X.shape[1]])
        if not isinstance(X, pd.DataFrame):
            raise DataError("X must be a pandas DataFrame of features", value=type(X).__name__)
        if len(X) == 0:
            return np.zeros(0)
        uses = self.model_.uses
        if uses == "tree":
            M = self.prep_.tree_matrix(X)
        elif uses == "linear":
            M = self.prep_.linear_matrix(X)
        else:
            self.prep_._check(X)
            M = np.zeros((len(X), 0))
        return self.model_.predict(M, self.n_jobs)

    def from_raw(self, raw: Any) -> FloatArray:
        """The model's output from its raw scores (``Explanation.raw``): calibrated
        probabilities of ``classes_[1]`` for a classifier, amounts for a regression. Scoring
        with reasons uses it to predict and explain in one pass."""
        self._check_fitted()
        z = np.asarray(raw, dtype=float)
        if self.task != "classification":
            return z
        if isinstance(self.model_, _Constant):
            return np.full(len(z), self.calibrator_.apply(np.array([self.model_.value]))[0])
        return self.calibrator_.apply(_sigmoid(z))

    def predict_proba(self, X: Any) -> FloatArray:
        """Probabilities of ``classes_[0]`` and ``classes_[1]`` (calibrated), one row per row.

        Levels unseen at fit time go to the "other" bucket, missing values to the "missing"
        one; a missing feature column is a :class:`DataError`.
        """
        if self.task != "classification":
            raise DataError("predict_proba is for classification; use predict for amounts")
        p = self.calibrator_.apply(self._raw(X)) if hasattr(self, "model_") else self._raw(X)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> npt.NDArray[Any]:
        """Classification: the label of the likelier class (probability >= 0.5); regression:
        the predicted amount."""
        if self.task == "classification":
            p = self.predict_proba(X)[:, 1]
            return np.where(p >= 0.5, self.classes_[1], self.classes_[0])
        return self._raw(X)

    # -- JSON -----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The fitted model as plain JSON (format ``mercato.propensity/1``)."""
        self._check_fitted()
        model = self.model_.to_dict()  # raises for a user estimator
        params = self.get_params()
        params["candidates"] = [
            c if isinstance(c, str) else type(c).__name__
            for c in (
                [params["candidates"]]
                if isinstance(params["candidates"], str)
                else params["candidates"]
            )
        ]
        lb = self.leaderboard_.astype(object).where(self.leaderboard_.notna(), None)
        return {
            "format": FORMAT,
            "model": f"propensity:{self.chosen_}",
            "task": self.task,
            "params": _plain(params),
            "classes": _plain(self.classes_),
            "chosen": self.chosen_,
            "chosen_settings": _plain(self.chosen_settings_),
            "choice_reason": self.choice_reason_,
            "preprocessing": self.prep_.to_dict(),
            "features": list(self.features_),
            "feature_names_in": [str(v) for v in self.feature_names_in_],
            "estimator": model,
            "calibrator": self.calibrator_.to_dict(),
            "calibration": _plain(self.calibration_),
            "validation": _plain(self.validation_),
            "leaderboard": _plain(lb.to_dict("records")),
            "notes": list(self.notes_),
            "trained_rows": self.trained_rows_,
            "customers": self.customers_,
            "customers_fingerprint": self.customers_fingerprint_,
            "seconds": _plain(
                {
                    "fit": self.fit_seconds_,
                    "search": self.search_seconds_,
                    "refit": self.refit_seconds_,
                }
            ),
            "library": _versions(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PropensityModel:
        """A model saved by :meth:`to_dict`; it predicts the same numbers."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise DataError(
                "not a saved propensity model",
                value=data.get("format") if isinstance(data, Mapping) else type(data).__name__,
                expected=repr(FORMAT),
            )
        params = dict(data.get("params") or {})
        m = cls(
            **{k: v for k, v in params.items() if k in cls._get_param_names() and k != "candidates"}
        )
        m.candidates = tuple(c for c in params.get("candidates", BUILTIN) if c in BUILTIN)
        m.prep_ = Preprocessor.from_dict(data["preprocessing"])
        m.model_ = _fitted_from_dict(data["estimator"])
        m.calibrator_ = _Calibrator.from_dict(data.get("calibrator") or {})
        m.calibration_ = dict(data.get("calibration") or {})
        m.classes_ = list(data.get("classes") or [])
        m.features_ = list(data["features"])
        m.feature_names_in_ = np.asarray(data.get("feature_names_in") or m.features_, dtype=object)
        m.n_features_in_ = len(m.feature_names_in_)
        m.chosen_ = str(data["chosen"])
        m.chosen_settings_ = dict(data.get("chosen_settings") or {})
        m.choice_reason_ = str(data.get("choice_reason", ""))
        m.validation_ = dict(data.get("validation") or {})
        m.leaderboard_ = pd.DataFrame(list(data.get("leaderboard") or []))
        m.notes_ = list(data.get("notes") or [])
        m.trained_rows_ = int(data.get("trained_rows") or 0)
        m.customers_ = int(data.get("customers") or 0)
        m.customers_fingerprint_ = data.get("customers_fingerprint")
        secs = dict(data.get("seconds") or {})
        m.fit_seconds_ = _num(secs.get("fit"))
        m.search_seconds_ = _num(secs.get("search"))
        m.refit_seconds_ = _num(secs.get("refit"))
        return m


def _versions() -> dict[str, str]:
    import lightgbm
    import sklearn

    from mercato import __version__

    return {
        "mercato": __version__,
        "lightgbm": lightgbm.__version__,
        "scikit-learn": sklearn.__version__,
    }


def model_from_dict(data: Mapping[str, Any]) -> PropensityModel:
    """Rebuild a saved propensity model from :meth:`PropensityModel.to_dict`'s dict.

    Examples
    --------
    >>> import json
    >>> rng = np.random.default_rng(1)
    >>> X = pd.DataFrame({"x": rng.normal(size=300), "c": rng.choice(["a", "b"], 300)})
    >>> y = (rng.random(300) < 0.3).astype(int)
    >>> m = PropensityModel(time_budget=5).fit(X, y)
    >>> again = model_from_dict(json.loads(json.dumps(m.to_dict())))
    >>> bool((again.predict_proba(X) == m.predict_proba(X)).all())
    True
    """
    return PropensityModel.from_dict(data)


# -- targets and files ------------------------------------------------------------------------


def binary_target(
    values: Any, positive: Any = None, *, column: str = "y", where: str = ""
) -> tuple[FloatArray, str, str, str]:
    """A two-class target as 0/1, with the positive class and a sentence saying why.

    The positive class is ``positive`` when given (compared as text; with more than two
    values the others are all negative); otherwise the value that reads as yes (``1``,
    ``yes``, ``y``, ``true``, ``t``, ``positive``, ``pos``, any case) when exactly one does,
    else the rarer value (on a tie, the last in sorted order). Missing values must have been
    dropped before.

    Returns
    -------
    (ndarray, str, str, str)
        0/1 per row, the positive label, the negative label(s), the note.

    Examples
    --------
    >>> y, pos, neg, note = binary_target(["no", "yes", "no"])
    >>> y.tolist(), pos, note
    ([0.0, 1.0, 0.0], 'yes', "target 'y': positive class 'yes' (the value that reads as yes), \
negative 'no'")
    """
    s = pd.Series(np.asarray(values, dtype=object))
    text = s.map(lambda v: str(v).strip())
    if pd.api.types.is_bool_dtype(pd.Series(values)):
        text = pd.Series(values).map(lambda v: "True" if v else "False")
    counts = text.value_counts()
    labels = sorted(counts.index, key=str)
    where_ = where or None
    if len(labels) < 2 and positive is None:
        raise DataError(
            "the target has one class only: nothing to tell apart",
            file=where_,
            column=column,
            value=labels[0] if labels else None,
            expected="two classes",
        )
    if positive is not None:
        want = str(positive).strip()
        if want not in counts.index:
            raise DataError(
                f"no row has {column} = {want!r}",
                file=where_,
                column=column,
                hint=f"the values: {_listing(labels)}",
            )
        pos = want
        why = "as asked"
        if len(labels) < 2:
            raise DataError(
                "the target has one class only: nothing to tell apart",
                file=where_,
                column=column,
                value=pos,
                expected="two classes",
            )
    elif len(labels) > 2:
        raise DataError(
            f"the target has {len(labels)} values; a propensity model predicts one class "
            "against the rest",
            file=where_,
            column=column,
            hint=f"name the positive value (--positive / positive=): {_listing(labels)}",
        )
    else:
        yes = [v for v in labels if v.lower() in POSITIVE_WORDS]
        if len(yes) == 1:
            pos, why = yes[0], "the value that reads as yes"
        else:
            a, b = labels
            pos = a if counts[a] < counts[b] else b
            why = f"the rarer value, {int(counts[pos]):,} of {len(text):,} rows"
    negs = [v for v in labels if v != pos]
    neg = negs[0] if len(negs) == 1 else "other values (" + _listing(negs, 5) + ")"
    y = (text == pos).to_numpy(dtype=float)
    note = f"target {column!r}: positive class {pos!r} ({why}), negative {neg!r}"
    if len(negs) > 1:
        note = f"target {column!r}: positive class {pos!r} ({why}) against {neg}"
    return y, pos, neg, note


def _sniff_delimiter(first_line: str) -> str:
    """The most frequent of , ; tab | in the header (outside double quotes)."""
    outside = re.sub(r'"[^"]*"', "", first_line)
    counts = {d: outside.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV (``,`` ``;`` tab or ``|`` separated, found from the header; gzip or not)
    or a Parquet file.

    Raises
    ------
    DataError
        The file is missing, unreadable or has no rows (the message names the file).
    """
    import gzip

    p = Path(path)
    if not p.exists():
        raise DataError("no such file", file=str(p))
    name = p.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            frame = pd.read_parquet(p)
        else:
            with p.open("rb") as fh:
                magic = fh.read(2)
            opener: Any = gzip.open if magic == b"\x1f\x8b" else open
            with opener(p, "rt", encoding="utf-8", errors="replace") as fh:
                first = fh.readline()
            sep = _sniff_delimiter(first)
            frame = pd.read_csv(
                p,
                sep=sep,
                low_memory=False,
                compression="gzip" if magic == b"\x1f\x8b" else None,
            )
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read the file: {exc}", file=str(p)) from None
    except Exception as exc:  # pyarrow's errors for a broken Parquet file
        raise DataError(f"cannot read the file: {type(exc).__name__}: {exc}", file=str(p)) from None
    if len(frame) == 0:
        raise DataError("the file has no rows", file=str(p))
    frame.columns = [str(c) for c in frame.columns]
    return frame


# -- evaluation -------------------------------------------------------------------------------


@dataclass
class PropensityEvaluation(AnalysisResult):
    """:func:`evaluate`'s result.

    ``table`` is the lift table (regression: the decile table) of the out-of-fold
    predictions; ``summary["metrics"]`` the pooled metrics; ``folds`` one row per outer fold
    (rows, chosen candidate, its reason, ROC-AUC or RMSE); ``leaderboard`` every fold's
    leaderboard (with a ``fold`` column); ``calibration`` the calibration curve;
    ``profit_curve`` the profit by threshold (with a contact cost and a value);
    ``predictions`` one row per evaluated row: ``row`` (1 = the first data row of the input),
    ``target`` (the value as given), ``y`` (0/1 or the amount), ``p`` (the out-of-fold
    probability or prediction) and ``fold`` (1..cv); ``importance`` the grouped permutation
    importance pooled over the folds and ``dependence`` the partial dependence of the most
    important features (:mod:`mercato.models.importance`).
    """

    predictions: pd.DataFrame = field(default_factory=pd.DataFrame)
    folds: pd.DataFrame = field(default_factory=pd.DataFrame)
    leaderboard: pd.DataFrame = field(default_factory=pd.DataFrame)
    calibration: pd.DataFrame = field(default_factory=pd.DataFrame)
    profit_curve: pd.DataFrame | None = None
    importance: pd.DataFrame = field(default_factory=pd.DataFrame)
    dependence: pd.DataFrame = field(default_factory=pd.DataFrame)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["summary"] = _plain(self.summary)

        def recs(df: pd.DataFrame | None) -> list[dict[str, Any]]:
            if df is None or df.empty:
                return []
            return _plain(df.astype(object).where(df.notna(), None).to_dict("records"))  # type: ignore[no-any-return]

        out["folds"] = recs(self.folds)
        out["leaderboard"] = recs(self.leaderboard)
        out["calibration"] = recs(self.calibration)
        if self.profit_curve is not None:
            out["profit_curve"] = recs(self.profit_curve)
        out["importance"] = recs(self.importance)
        out["dependence"] = recs(self.dependence)
        return out


def _time_values(s: pd.Series) -> FloatArray:
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        return np.asarray(s.to_numpy(dtype=float, na_value=np.nan), dtype=float)
    return _days(s)


def evaluate(
    frame: pd.DataFrame,
    target: str,
    *,
    exclude: Sequence[str] = (),
    cv: int = 5,
    seed: int = 42,
    positive: Any = None,
    time_col: str | None = None,
    contact_cost: float | None = None,
    value: float | None = None,
    task: str | None = None,
    time_budget: float | None = DEFAULT_FOLD_BUDGET,
    candidates: Sequence[Any] = BUILTIN,
    where: str = "",
    importance: bool = True,
    progress: Progress | None = None,
) -> PropensityEvaluation:
    """Out-of-fold predictions of every row by the whole automatic procedure, and their metrics.

    The rows are split into ``cv`` folds (stratified by the target, shuffled with ``seed``;
    with ``time_col``, forward chaining: the distinct times are cut into ``cv + 1`` blocks in
    order and fold ``k`` trains on the blocks before block ``k`` and predicts block ``k``, so
    the first block gets no prediction). In each fold a :class:`PropensityModel` runs its whole
    procedure -- model choice, tuning, calibration -- on the training folds only (nested:
    the fold it predicts plays no part in any choice), then predicts the held-out fold.

    Parameters
    ----------
    frame : DataFrame
        One row per customer: the target, the features, maybe a time column.
    target : str
        The column to predict: two classes, or (``task="regression"``, or numbers with more
        than two values) an amount. Rows without a target are left out with a note.
    exclude : list of str
        Columns not to use as features (identifiers, values known only afterwards).
    cv : int, default 5
    seed : int, default 42
        Seed of the folds and of every model.
    positive : value, optional
        The positive class (see :func:`binary_target` for the default choice).
    time_col : str, optional
        Forward-chaining folds, and time-based validation inside each fold.
    contact_cost, value : float, optional
        With both: the profit-maximising threshold and the profit curve.
    task : {"classification", "regression"}, optional
        Default: regression for a numeric target with more than two values and no
        ``positive``, classification otherwise.
    time_budget : float, default 15
        The search budget of each fold's model, in seconds.
    candidates : sequence
        As :class:`PropensityModel`'s.
    where : str
        The data's name (a file) for messages.
    importance : bool, default True
        Each fold's model is also measured on its held-out fold with every group of
        correlated features shuffled (:mod:`mercato.models.importance`), and the partial
        dependence of the most important features is drawn on the same grid for every fold;
        the folds' results are pooled.
    progress : callable, optional
        ``progress(done, total, description)``.

    Returns
    -------
    PropensityEvaluation
    """
    t_start = time.perf_counter()
    where_ = where or None
    columns = [str(c) for c in frame.columns]
    if target not in columns:
        raise DataError(
            f"no target column {target!r}; the columns: {_listing(columns, 60)}",
            file=where_,
            column=target,
        )
    excluded = [str(c) for c in exclude]
    for c in excluded:
        if c not in columns:
            raise DataError(
                f"--exclude: no column {c!r}; the columns: {_listing(columns, 60)}",
                file=where_,
                column=c,
            )
    if time_col is not None and time_col not in columns:
        raise DataError(
            f"--time-col: no column {time_col!r}; the columns: {_listing(columns, 60)}",
            file=where_,
            column=time_col,
        )
    if time_col == target:
        raise DataError("the time column cannot be the target", column=target)
    if not isinstance(cv, int | np.integer) or cv < 2:
        raise DataError("cv must be a whole number of folds, at least 2", value=cv)
    if (contact_cost is None) != (value is None):
        raise DataError(
            "the profit threshold needs both the contact cost and the conversion value",
            expected="both --cost and --value (contact_cost and value)",
        )
    if contact_cost is not None and value is not None:
        if not (contact_cost >= 0 and value > 0):
            raise DataError(
                "the contact cost must be >= 0 and the conversion value > 0",
                value=f"cost {contact_cost}, value {value}",
            )
    notes: list[str] = []
    values = frame[target]
    keep = values.notna().to_numpy()
    if not keep.any():
        raise DataError("the target has no value", file=where_, column=target)
    if not keep.all():
        notes.append(f"{int((~keep).sum()):,} rows without a {target!r} value were left out")
    rows = np.flatnonzero(keep)
    yvals = values[keep].reset_index(drop=True)
    if task is None:
        numeric = pd.api.types.is_numeric_dtype(yvals) and not pd.api.types.is_bool_dtype(yvals)
        task = (
            "regression"
            if numeric and positive is None and yvals.nunique() > 2
            else "classification"
        )
    if task not in ("classification", "regression"):
        raise DataError("unknown task", value=task, expected="classification or regression")
    classification = task == "classification"
    pos_label: str | None = None
    neg_label: str | None = None
    if classification:
        y, pos_label, neg_label, note = binary_target(
            yvals, positive, column=target, where=where or ""
        )
        notes.insert(0, note)
    else:
        conv = pd.to_numeric(yvals, errors="coerce")
        bad = conv.isna().to_numpy()
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise DataError(
                "the target must be numbers for a regression",
                file=where_,
                column=target,
                row=int(rows[first]),
                value=yvals.iloc[first],
            )
        y = conv.to_numpy(dtype=float)
        if np.ptp(y) == 0:
            raise DataError(
                "the target is constant: nothing to predict", file=where_, column=target, value=y[0]
            )
        notes.insert(0, f"target {target!r}: an amount (regression)")
    n = len(y)
    if n < MIN_EVALUATE_ROWS:
        raise DataError(
            f"only {n} rows with a target: too few to evaluate a model",
            file=where_,
            column=target,
            expected=f"at least {MIN_EVALUATE_ROWS} rows",
        )
    if classification:
        minority = int(min(y.sum(), n - y.sum()))
        need = max(cv, MIN_CLASS_ROWS + 2)
        if minority < need:
            rare = pos_label if y.sum() <= n - y.sum() else neg_label
            raise DataError(
                f"only {minority} rows of the class {rare!r}: too few for {cv}-fold "
                "cross-validation",
                file=where_,
                column=target,
                expected=f"at least {need} rows of each class",
                hint="use fewer folds (--cv) or more data",
            )
    feats = [c for c in frame.columns if str(c) != target and str(c) not in excluded]
    X = frame.loc[keep, feats].reset_index(drop=True)
    if excluded:
        notes.append(f"left out as asked: {_listing(excluded)}")
    # what the preprocessing does with each column, said once for the whole data (each
    # fold's model learns its own encoding from its training rows)
    notes.extend(Preprocessor.fit(X.drop(columns=[time_col]) if time_col else X, seed=seed).notes)
    # the outer folds
    if time_col is not None:
        tv = _time_values(X[time_col])
        if np.isnan(tv).any():
            first = int(np.flatnonzero(np.isnan(tv))[0])
            raise DataError(
                "the time column has missing or unreadable values",
                file=where_,
                column=time_col,
                row=int(rows[first]),
                value=X[time_col].iloc[first],
            )
        uniq = np.unique(tv)
        if len(uniq) < cv + 1:
            raise DataError(
                f"the time column has {len(uniq)} distinct values: too few for {cv} "
                "forward-chaining folds",
                file=where_,
                column=time_col,
                expected=f"at least {cv + 1} distinct times (or a smaller --cv)",
            )
        blocks = np.array_split(uniq, cv + 1)
        block_of = np.searchsorted(np.array([b[0] for b in blocks]), tv, side="right") - 1
        folds = [
            (np.flatnonzero(block_of < k), np.flatnonzero(block_of == k)) for k in range(1, cv + 1)
        ]
        scheme = (
            f"forward chaining by {time_col!r}: {cv + 1} blocks of time; fold k trains on the "
            "blocks before block k"
        )
        unscored = int((block_of == 0).sum())
        last = float(blocks[0][-1])
        numeric_time = pd.api.types.is_numeric_dtype(X[time_col]) and not (
            pd.api.types.is_bool_dtype(X[time_col])
        )
        shown = (
            f"{last:g}"
            if numeric_time
            else str((pd.Timestamp("1970-01-01") + pd.Timedelta(days=last)).date())
        )
        notes.append(
            f"the {unscored:,} rows of the first time block (up to {time_col} = {shown}) "
            "train every fold but get no prediction"
        )
    else:
        from sklearn.model_selection import KFold, StratifiedKFold

        splitter: Any = (
            StratifiedKFold(cv, shuffle=True, random_state=seed)
            if classification
            else KFold(cv, shuffle=True, random_state=seed)
        )
        folds = [
            (np.asarray(a), np.asarray(b))
            for a, b in splitter.split(np.zeros(n), y if classification else None)
        ]
        scheme = f"{'stratified ' if classification else ''}{cv}-fold, shuffled (seed {seed})"
    oof = np.full(n, np.nan)
    fold_id = np.zeros(n, dtype=np.int64)
    fold_rows: list[dict[str, Any]] = []
    boards: list[pd.DataFrame] = []
    fold_notes: list[str] = []
    features_used: list[str] = []
    fitted: list[tuple[PropensityModel, IntArray]] = []
    importances: list[pd.DataFrame] = []
    groups: list[list[str]] = []
    if importance:
        from mercato.models import importance as gi

        groups = gi.feature_groups(X.drop(columns=[time_col]) if time_col else X, seed=seed)
    for k, (train, test) in enumerate(folds, start=1):
        if classification and not 0 < y[train].sum() < len(train):
            raise DataError(
                f"fold {k}: the training rows hold one class only",
                file=where_,
                column=target,
                hint="use fewer folds, or check the time column",
            )
        t0 = time.perf_counter()

        def inner(done: int, total: int, desc: str, k: int = k) -> None:
            if progress is not None:
                progress(k - 1, len(folds), f"fold {k}/{len(folds)}: {desc}")

        if progress is not None:
            progress(k - 1, len(folds), f"fold {k}/{len(folds)}")
        model = PropensityModel(
            task=task,
            candidates=candidates,
            time_budget=time_budget,
            validation="time" if time_col else "stratified",
            time_col=time_col,
            seed=seed,
        )
        model.fit(X.iloc[train], y[train], progress=inner)
        if classification:
            pred = model.predict_proba(X.iloc[test])[:, 1]
        else:
            pred = model.predict(X.iloc[test]).astype(float)
        oof[test] = pred
        fold_id[test] = k
        if importance and (not classification or 0 < y[test].sum() < len(test)):
            if progress is not None:
                progress(k - 1, len(folds), f"fold {k}/{len(folds)}: shuffling features")
            importances.append(
                gi.permutation_importance(model, X.iloc[test], y[test], groups=groups, seed=seed)
            )
            fitted.append((model, test))
        seconds = time.perf_counter() - t0
        row: dict[str, Any] = {
            "fold": k,
            "train_rows": len(train),
            "test_rows": len(test),
            "chosen": model.chosen_,
            "calibration": model.calibrator_.method,
        }
        if classification:
            yt = y[test]
            row["positives"] = int(yt.sum())
            row["roc_auc"] = (
                float(mx.classification_report(yt, pred)["roc_auc"])
                if 0 < yt.sum() < len(yt)
                else math.nan
            )
        else:
            rep = mx.regression_report(y[test], pred)
            row["rmse"], row["r2"] = rep["rmse"], rep["r2"]
        row["seconds"] = round(seconds, 2)
        row["reason"] = model.choice_reason_
        fold_rows.append(row)
        board = model.leaderboard_.copy()
        board.insert(0, "fold", k)
        boards.append(board)
        if not features_used:
            features_used = list(model.features_)
        for note in model.notes_:
            if note.startswith("validation:"):
                if k == 1:
                    fold_notes.append(f"inside each fold, {note}")
                continue
            if note.startswith("the search stopped"):
                fold_notes.append(f"fold {k}: {note}")
                continue
            if note.startswith("column ") or note in fold_notes:
                continue  # the columns' notes come from the whole data, below
            fold_notes.append(note)
    imp_table, dep_table = pd.DataFrame(), pd.DataFrame()
    if importances:
        if progress is not None:
            progress(len(folds) - 1, len(folds), "partial dependence")
        imp_table, _ = gi.pool(importances)
        top = gi.top_features(imp_table, 6)
        deps = [
            gi.partial_dependence(m, X.iloc[test], top, seed=seed, grid_from=X)
            for m, test in fitted
        ]
        imp_table, dep_table = gi.pool(importances, deps)
    if progress is not None:
        progress(len(folds), len(folds), "done")
    scored = fold_id > 0
    ys, ps = y[scored], oof[scored]
    folds_df = pd.DataFrame(fold_rows)
    summary: dict[str, Any] = {
        "input": where or None,
        "rows": len(frame),
        "evaluated_rows": int(scored.sum()),
        "target": target,
        "task": task,
        "cv": cv,
        "folds": scheme,
        "seed": seed,
        "time_budget_per_fold": time_budget,
        "features": features_used,
        "excluded": excluded,
        "chosen": {str(k2): int(v) for k2, v in folds_df["chosen"].value_counts().items()},
    }
    calibration = pd.DataFrame()
    profit_curve = None
    if classification:
        report = mx.classification_report(ys, ps, contact_cost=contact_cost, value=value)
        summary["positive"] = pos_label
        summary["negative"] = neg_label
        summary["metrics"] = report
        aucs = folds_df["roc_auc"].to_numpy(dtype=float)
        summary["fold_roc_auc_mean"] = float(np.nanmean(aucs))
        summary["fold_roc_auc_sd"] = float(np.nanstd(aucs, ddof=1)) if len(aucs) > 1 else math.nan
        table = mx.lift_table(ys, ps)
        calibration = mx.calibration_curve(ys, ps)
        if contact_cost is not None and value is not None:
            profit_curve = mx.profit_threshold(ys, ps, contact_cost, value)["curve"]
    else:
        summary["metrics"] = mx.regression_report(ys, ps)
        rm = folds_df["rmse"].to_numpy(dtype=float)
        summary["fold_rmse_mean"] = float(np.mean(rm))
        summary["fold_rmse_sd"] = float(np.std(rm, ddof=1)) if len(rm) > 1 else math.nan
        table = mx.decile_table(ys, ps)
    summary["seconds"] = round(time.perf_counter() - t_start, 2)
    predictions = pd.DataFrame(
        {
            "row": rows[scored] + 1,
            "target": yvals[scored].to_numpy(),
            "y": ys,
            "p": ps,
            "fold": fold_id[scored],
        }
    )
    if not imp_table.empty:
        fold_notes.append(
            "global importance: the drop of each fold's held-out "
            + ("ROC-AUC" if classification else "R²")
            + " when a group of features is shuffled (features with |Spearman rho| >= "
            f"{gi.GROUP_CORRELATION:g} shuffled together), averaged over the folds"
        )
    return PropensityEvaluation(
        name="propensity",
        table=table,
        summary=summary,
        notes=notes + fold_notes,
        importance=imp_table,
        dependence=dep_table,
        predictions=predictions,
        folds=folds_df,
        leaderboard=pd.concat(boards, ignore_index=True),
        calibration=calibration,
        profit_curve=profit_curve,
    )
