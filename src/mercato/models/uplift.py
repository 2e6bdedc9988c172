"""Uplift modelling: who is moved by a campaign, and by which treatment.

A randomised campaign assigns customers to a control group and one or more treatments (for
example a Mens and a Womens e-mail against no e-mail). An uplift model estimates, for each
customer and treatment, the *incremental* effect ``tau_t(x) = E[Y | x, t] - E[Y | x, control]``
of the treatment on an outcome ``Y`` (a visit, a conversion: binary; spend: continuous).

Learners (each over LightGBM; several treatments are handled as one sub-model per treatment
against the same control, and :meth:`predict` returns one uplift column per treatment):

- :class:`TLearner` -- two models: ``mu_t(x)`` fitted on the treated rows and ``mu_c(x)`` on the
  control rows; ``tau_t(x) = mu_t(x) - mu_c(x)``.
- :class:`SLearner` -- one model ``mu(x, w)`` on treated and control rows with the treatment
  indicator ``w`` as a feature; ``tau(x) = mu(x, 1) - mu(x, 0)``.
- :class:`XLearner` -- Kunzel, Sekhon, Bickel & Yu (2019): the T-learner's models impute
  individual effects ``D1 = Y - mu_c(x)`` on the treated and ``D0 = mu_t(x) - Y`` on the control
  rows; regressions ``tau_1``, ``tau_0`` of these are mixed with the propensity ``e(x)``:
  ``tau(x) = e(x) tau_0(x) + (1 - e(x)) tau_1(x)``. ``e`` is the known assignment share of the
  treatment (default) or a logistic regression on the features (``propensity="logistic"``).
- :class:`ClassTransformation` -- binary outcome: Jaskowski & Jaroszewicz (2012),
  ``Z = Y W + (1 - Y)(1 - W)`` with treated rows weighted ``0.5 / p`` and control rows
  ``0.5 / (1 - p)`` (``p`` the treated share) so that the groups weigh the same, which their
  identity ``tau(x) = 2 P(Z = 1 | x) - 1`` requires; continuous outcome: the transformed outcome
  of Athey & Imbens (2015), ``Y* = Y (W - p) / (p (1 - p))`` with ``E[Y* | x] = tau(x)``,
  fitted by least squares.

Features: numbers (and booleans) are used as they are (missing values stay missing:
LightGBM sends them down the side that fits best); text or categorical columns are encoded with
the levels seen at fit time, in sorted order, as LightGBM categorical features. A level not seen
at fit time, and a missing value, are *missing* at prediction time.

Metrics (vectorised numpy, the definitions of scikit-uplift 0.5): :func:`uplift_at_k`,
:func:`qini_curve`, :func:`qini_auc_score`, :func:`uplift_curve`, :func:`uplift_auc_score`, and
:func:`balance_check` (group sizes, sample-ratio mismatch, standardised mean differences).

:func:`evaluate` compares learners on a held-out part of an experiment; :func:`target` turns a
model into a contact plan under a budget; :func:`frame_from_warehouse` builds the experiment
from the warehouse's ``campaign_exposures``; :func:`write_scores` writes ``customer_uplift``.

Models save to JSON (:meth:`TLearner.to_dict`, :func:`model_from_dict`) with LightGBM's text
format inside: never pickle. A saved model predicts without any training-time object.
"""

from __future__ import annotations

import abc
import inspect
import json
import math
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import pandas as pd

from mercato.analytics.base import AnalysisResult
from mercato.errors import DataError, NotFittedError
from mercato.models._common import ParamsMixin
from mercato.models._common import fingerprint as _fingerprint
from mercato.models._common import listing as _listing
from mercato.models._common import plain as _plain

__all__ = [
    "LEARNERS",
    "ClassTransformation",
    "SLearner",
    "TLearner",
    "UpliftEvaluation",
    "XLearner",
    "balance_check",
    "check_plan",
    "compare_with_truth",
    "evaluate",
    "features_from_warehouse",
    "fit_best",
    "frame_from_warehouse",
    "model_from_dict",
    "outcome_kind",
    "parse_shares",
    "perfect_qini_curve",
    "perfect_uplift_curve",
    "qini_auc_score",
    "qini_curve",
    "read_experiment_file",
    "save_model",
    "target",
    "uplift_at_k",
    "uplift_auc_score",
    "uplift_curve",
    "write_scores",
]

FloatArray = npt.NDArray[np.float64]

#: the version of the JSON layout written by ``to_dict``
FORMAT = "mercato.uplift/1"
#: the warehouse table of per-customer scores written by :func:`write_scores`
SCORES_TABLE = "customer_uplift"
#: smallest group (treatment or control rows) a model is fitted on
MIN_GROUP_ROWS = 30
#: below this many rows, or below this share of the other group, a group is flagged as small
WARN_GROUP_ROWS = 100
WARN_GROUP_RATIO = 0.1
#: |standardised mean difference| above which a feature is flagged as unbalanced
SMD_THRESHOLD = 0.1
#: LightGBM fits (and predicts) on fewer rows than this with one thread: on small data thread
#: synchronisation costs more than it saves (measured: Hillstrom's 15,000-row fits take 8 s with
#: one thread against 12 s with two); the results are the same (deterministic mode)
THREADS_FROM_ROWS = 50_000
#: p-value of the sample-ratio-mismatch chi-square test below which the split is flagged
SRM_ALPHA = 0.001
#: p-value below which a column that differs between treated and control rows is taken for an
#: outcome of the campaign and left out of the default features
POST_TREATMENT_ALPHA = 0.001
#: a column whose non-zero rows have a non-zero outcome this often is taken for an outcome
IMPLIES_SHARE = 0.99
#: propensities are clipped to [CLIP, 1 - CLIP]
PROPENSITY_CLIP = 0.01
#: web events that make a visit (``frame_from_warehouse(outcome="visit")``)
VISIT_EVENTS = ("page_view", "view", "search", "add_to_cart", "begin_checkout", "purchase", "login")
#: e-mail engagement events (a pre-exposure feature)
EMAIL_EVENTS = ("email_open", "email_click")


# -- metrics --------------------------------------------------------------------------------


def _arrays(y: Any, uplift: Any, w: Any) -> tuple[FloatArray, FloatArray, FloatArray]:
    """y, uplift and a 0/1 treatment indicator as float arrays of one length, or DataError."""
    ya = np.asarray(y, dtype=float).ravel()
    ua = np.asarray(uplift, dtype=float).ravel()
    wa = np.asarray(w, dtype=float).ravel()
    if not (len(ya) == len(ua) == len(wa)):
        raise DataError(
            f"y, uplift and treatment have different lengths ({len(ya)}, {len(ua)}, {len(wa)})"
        )
    if len(ya) == 0:
        raise DataError("no rows to score")
    for name, arr in (("y", ya), ("uplift", ua), ("treatment", wa)):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise DataError(
                f"{int(bad.sum()):,} values are not finite numbers",
                column=name,
                row=int(np.flatnonzero(bad)[0]),
                expected="finite numbers",
            )
    if not np.isin(wa, (0.0, 1.0)).all():
        raise DataError("the treatment indicator must be 0 (control) or 1 (treated)", column="w")
    if wa.min() == wa.max():
        raise DataError(
            "the rows hold only " + ("treated" if wa[0] == 1 else "control") + " rows",
            column="w",
            hint="uplift metrics compare treated and control rows: both are needed",
        )
    return ya, ua, wa


def _auc(x: FloatArray, y: FloatArray) -> float:
    """Area under a curve by the trapezoidal rule (x increasing), as sklearn.metrics.auc."""
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def _cumulative(
    y: FloatArray, uplift: FloatArray, w: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Cumulative counts at each distinct score, best first (ties enter together).

    Rows are sorted by decreasing score with ``argsort(kind="mergesort")[::-1]`` (as
    scikit-uplift does); returns, at the last row of every run of equal scores, the number of
    rows so far, of treated rows, and the outcome sums of treated and of control rows.
    """
    order = np.argsort(uplift, kind="mergesort")[::-1]
    ys, us, ws = y[order], uplift[order], w[order]
    last = np.r_[np.flatnonzero(np.diff(us)), us.size - 1]
    n_all = (last + 1).astype(float)
    n_t = np.cumsum(ws)[last]
    y_t = np.cumsum(ys * ws)[last]
    y_c = np.cumsum(ys * (1.0 - ws))[last]
    return n_all, n_t, y_t, y_c


def _from_origin(x: FloatArray, v: FloatArray) -> tuple[FloatArray, FloatArray]:
    if x.size == 0 or v[0] != 0 or x[0] != 0:
        return np.r_[0.0, x], np.r_[0.0, v]
    return x, v


def qini_curve(y: Any, uplift: Any, w: Any) -> tuple[FloatArray, FloatArray]:
    """The Qini curve: incremental outcomes among the top-scored rows (Radcliffe 2007).

    At each distinct score threshold, with ``N`` rows above it, ``N_t`` and ``N_c`` of them
    treated and control and ``Y_t``, ``Y_c`` the outcome sums of those::

        qini(N) = Y_t - Y_c * N_t / N_c        (0 where N_c = 0)

    The curve starts at (0, 0).

    Parameters
    ----------
    y : array-like
        Outcomes (0/1 or numbers).
    uplift : array-like
        Predicted uplift (higher = contact first).
    w : array-like
        1 for treated rows, 0 for control rows.

    Returns
    -------
    (ndarray, ndarray)
        Number of rows targeted and the curve's value there.

    Examples
    --------
    >>> x, q = qini_curve([1, 0, 1, 0], [0.4, 0.3, 0.2, 0.1], [1, 1, 0, 0])
    >>> x.tolist(), q.tolist()
    ([0.0, 1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 1.0, -1.0, 0.0])
    """
    ya, ua, wa = _arrays(y, uplift, w)
    n_all, n_t, y_t, y_c = _cumulative(ya, ua, wa)
    n_c = n_all - n_t
    ratio = np.divide(n_t, n_c, out=np.zeros_like(n_t), where=n_c != 0)
    return _from_origin(n_all, y_t - y_c * ratio)


def uplift_curve(y: Any, uplift: Any, w: Any) -> tuple[FloatArray, FloatArray]:
    """The uplift curve: the difference of mean outcomes among the top-scored rows, times N.

    At each distinct score threshold with ``N`` rows above it::

        uplift(N) = (Y_t / N_t - Y_c / N_c) * N      (a mean is 0 where its group is empty)

    The curve starts at (0, 0).

    Examples
    --------
    >>> x, u = uplift_curve([1, 0, 1, 0], [0.4, 0.3, 0.2, 0.1], [1, 1, 0, 0])
    >>> u.tolist()
    [0.0, 1.0, 1.0, -1.5, 0.0]
    """
    ya, ua, wa = _arrays(y, uplift, w)
    n_all, n_t, y_t, y_c = _cumulative(ya, ua, wa)
    n_c = n_all - n_t
    mt = np.divide(y_t, n_t, out=np.zeros_like(y_t), where=n_t != 0)
    mc = np.divide(y_c, n_c, out=np.zeros_like(y_c), where=n_c != 0)
    return _from_origin(n_all, (mt - mc) * n_all)


def _is_binary(y: FloatArray) -> bool:
    return bool(np.isin(y, (0.0, 1.0)).all())


def perfect_qini_curve(
    y: Any, w: Any, negative_effect: bool = True
) -> tuple[FloatArray, FloatArray]:
    """The best possible Qini curve (scikit-uplift's ``perfect_qini_curve``).

    With ``negative_effect`` (default): the Qini curve of the score ``y w - y (1 - w)``
    (treated responders first, control responders last). Without: the three points
    ``(0, 0), (R, R), (n, R)`` with ``R = Y_t - N_t Y_c / N_c`` over all rows.
    """
    ya, wa = np.asarray(y, dtype=float).ravel(), np.asarray(w, dtype=float).ravel()
    if negative_effect:
        return qini_curve(ya, ya * wa - ya * (1.0 - wa), wa)
    ya, _, wa = _arrays(ya, np.zeros_like(ya), wa)
    n_t = wa.sum()
    r = float(ya[wa == 1].sum() - n_t * ya[wa == 0].sum() / (len(wa) - n_t))
    return np.array([0.0, r, float(len(ya))]), np.array([0.0, r, r])


def perfect_uplift_curve(y: Any, w: Any) -> tuple[FloatArray, FloatArray]:
    """The best possible uplift curve.

    Binary outcome (scikit-uplift's ``perfect_uplift_curve``): rows ordered by
    ``2 [y = w] + s`` with ``s = y`` if there are more control responders than treated
    non-responders, else ``s = w``. Continuous outcome (not defined by scikit-uplift): rows
    ordered by ``y w - y (1 - w)``, as the perfect Qini curve.
    """
    ya, wa = np.asarray(y, dtype=float).ravel(), np.asarray(w, dtype=float).ravel()
    if not _is_binary(ya):
        return uplift_curve(ya, ya * wa - ya * (1.0 - wa), wa)
    cr = np.sum((ya == 1) & (wa == 0))
    tn = np.sum((ya == 0) & (wa == 1))
    summand = ya if cr > tn else wa
    return uplift_curve(ya, 2.0 * (ya == wa) + summand, wa)


def _normalised_area(
    actual: tuple[FloatArray, FloatArray], perfect: tuple[FloatArray, FloatArray]
) -> float:
    xp, yp = perfect
    base = _auc(np.array([0.0, xp[-1]]), np.array([0.0, yp[-1]]))
    best = _auc(xp, yp) - base
    if best == 0:
        return math.nan
    return (_auc(*actual) - base) / best


def qini_auc_score(y: Any, uplift: Any, w: Any, negative_effect: bool = True) -> float:
    """Normalised area under the Qini curve (scikit-uplift's ``qini_auc_score``).

    ``(A_model - A_random) / (A_perfect - A_random)``: the area between the model's Qini curve
    and the random line (the straight line from (0, 0) to the perfect curve's end, which is
    the curve's end too), divided by the same area of the perfect curve
    (:func:`perfect_qini_curve`). 1 is a perfect ordering, 0 a random one; it can be negative.
    NaN when the perfect curve has no area.

    Examples
    --------
    >>> round(qini_auc_score([1, 0, 1, 0], [0.4, 0.3, 0.2, 0.1], [1, 1, 0, 0]), 4)
    0.3333
    """
    return _normalised_area(qini_curve(y, uplift, w), perfect_qini_curve(y, w, negative_effect))


def uplift_auc_score(y: Any, uplift: Any, w: Any) -> float:
    """Normalised area under the uplift curve (scikit-uplift's ``uplift_auc_score``).

    ``(A_model - A_random) / (A_perfect - A_random)`` with the uplift curve
    (:func:`uplift_curve`) and its perfect counterpart (:func:`perfect_uplift_curve`).

    Examples
    --------
    >>> round(uplift_auc_score([1, 0, 1, 0], [0.4, 0.3, 0.2, 0.1], [1, 1, 0, 0]), 4)
    0.1111
    """
    return _normalised_area(uplift_curve(y, uplift, w), perfect_uplift_curve(y, w))


def uplift_at_k(y: Any, uplift: Any, w: Any, k: float = 0.3, strategy: str = "overall") -> float:
    """Uplift among the top ``k`` rows by predicted uplift (scikit-uplift's ``uplift_at_k``).

    ``"overall"`` (default): the first ``int(n * k)`` rows of all rows sorted by decreasing
    uplift; the mean outcome of the treated rows among them minus that of the control rows.
    ``"by_group"``: the first ``int(n_t * k)`` treated rows and the first ``int(n_c * k)``
    control rows, each sorted by decreasing uplift. ``k`` is a share in (0, 1) or a number of
    rows (an int; with ``"by_group"`` at most the rows of the smaller group). Ties are broken
    as scikit-uplift does (``argsort(kind="mergesort")[::-1]``). NaN when one group has no row
    in the top.

    Examples
    --------
    >>> uplift_at_k([1, 0, 1, 0], [0.4, 0.3, 0.2, 0.1], [1, 0, 1, 0], k=0.5)
    1.0
    """
    ya, ua, wa = _arrays(y, uplift, w)
    if strategy not in ("overall", "by_group"):
        raise DataError("unknown strategy", value=strategy, expected="'overall' or 'by_group'")
    n = len(ya)
    is_int = isinstance(k, int | np.integer) and not isinstance(k, bool)
    if is_int:
        if not 0 < k < n:
            raise DataError(f"k must be between 1 and {n - 1} rows", value=k)
    elif not (isinstance(k, float | np.floating) and 0 < k < 1):
        raise DataError("k must be a share in (0, 1) or a number of rows", value=k)
    order = np.argsort(ua, kind="mergesort")[::-1]
    ys, ws = ya[order], wa[order]
    if strategy == "overall":
        top = int(k) if is_int else int(n * k)
        yt, wt = ys[:top], ws[:top]
        treated, control = yt[wt == 1], yt[wt == 0]
    else:
        sizes = {"treated": int((wa == 1).sum()), "control": int((wa == 0).sum())}
        if is_int and int(k) > min(sizes.values()):
            group = min(sizes, key=lambda g: sizes[g])
            raise DataError(
                f"by_group takes the first k = {int(k)} rows of each group, but the {group} "
                f"group has {sizes[group]:,} rows",
                value=k,
                expected=f"at most {sizes[group]:,} rows, or a share in (0, 1)",
            )
        n_t = int(k) if is_int else int(sizes["treated"] * k)
        n_c = int(k) if is_int else int(sizes["control"] * k)
        treated, control = ys[ws == 1][:n_t], ys[ws == 0][:n_c]
    if treated.size == 0 or control.size == 0:
        return math.nan
    return float(treated.mean() - control.mean())


def uplift_metrics(y: Any, uplift: Any, w: Any, k: float = 0.3) -> dict[str, float]:
    """uplift@k (both strategies), Qini AUC and uplift AUC of one score, as a dict."""
    return {
        "uplift_at_k": uplift_at_k(y, uplift, w, k, "overall"),
        "uplift_at_k_by_group": uplift_at_k(y, uplift, w, k, "by_group"),
        "qini_auc": qini_auc_score(y, uplift, w),
        "uplift_auc": uplift_auc_score(y, uplift, w),
    }


# -- helpers --------------------------------------------------------------------------------


def _is_numeric(s: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s))


def _text_columns(X: pd.DataFrame, used: Iterable[str] | None = None) -> pd.DataFrame:
    """X with its column names as text (a saved model names its features in JSON, as text).

    A name that appears twice is an error when it is used (``used``: default every column).
    """
    names = [str(c) for c in X.columns]
    check = set(names) if used is None else set(used)
    seen: set[str] = set()
    for name in names:
        if name in seen and name in check:
            raise DataError(
                "a column name appears twice in the features",
                column=name,
                hint="give every feature column its own name",
            )
        seen.add(name)
    if all(isinstance(c, str) for c in X.columns):
        return X
    return X.set_axis(names, axis=1)


# -- features -------------------------------------------------------------------------------


def _looks_like_id(col: pd.Series, distinct: int | None = None) -> bool:
    """A text column with more than 1,000 distinct values in more than half of its rows."""
    vals = col.dropna()
    n = int(vals.astype(str).nunique()) if distinct is None else distinct
    return n > 1000 and n > 0.5 * max(len(vals), 1)


@dataclass
class _Features:
    """Feature encoding shared by fit and predict: numbers as they are, text as level codes."""

    names: list[str]
    kinds: dict[str, str]  # name -> "numeric" | "categorical"
    levels: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def fit(cls, frame: pd.DataFrame, names: Sequence[str], where: str = "") -> _Features:
        kinds: dict[str, str] = {}
        levels: dict[str, list[str]] = {}
        for name in names:
            col = frame[name]
            if _is_numeric(col):
                kinds[name] = "numeric"
                continue
            kinds[name] = "categorical"
            vals = col.dropna().astype(str)
            uniq = sorted(set(vals))
            if _looks_like_id(col, len(uniq)):
                raise DataError(
                    f"{len(uniq):,} distinct values in {len(vals):,} rows: this looks like an "
                    "identifier, not a feature",
                    file=where or None,
                    column=name,
                    hint="leave it out of the features (or name it as the id column)",
                )
            levels[name] = uniq
        return cls(list(names), kinds, levels)

    @property
    def categorical_indices(self) -> list[int]:
        return [i for i, n in enumerate(self.names) if self.kinds[n] == "categorical"]

    def transform(self, frame: pd.DataFrame) -> FloatArray:
        missing = [n for n in self.names if n not in frame.columns]
        if missing:
            raise DataError(
                f"the data has no column {missing[0]!r}, a feature of the model",
                column=missing[0],
                hint=f"the model's features: {_listing(self.names, 30)}",
            )
        out = np.empty((len(frame), len(self.names)), dtype=float)
        for j, name in enumerate(self.names):
            col = frame[name]
            if self.kinds[name] == "numeric":
                if pd.api.types.is_bool_dtype(col):
                    col = col.astype(float)
                vals = np.array(
                    pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
                )
                bad = np.isnan(vals) & col.notna().to_numpy()
                if bad.any():
                    first = int(np.flatnonzero(bad)[0])
                    raise DataError(
                        f"{int(bad.sum()):,} values are not numbers",
                        row=first,
                        column=name,
                        value=col.iloc[first],
                        expected="a number (the model was fitted on numbers)",
                    )
                vals[~np.isfinite(vals)] = np.nan
                out[:, j] = vals
            else:
                txt = col.astype("string")
                txt = txt.where(txt.isin(self.levels[name]))  # unseen levels: missing
                cats = pd.Categorical(txt, categories=self.levels[name])
                codes = cats.codes.astype(float)
                codes[codes < 0] = np.nan  # missing or a level unseen at fit time
                out[:, j] = codes
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"names": self.names, "kinds": self.kinds, "levels": self.levels}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> _Features:
        return cls(
            [str(n) for n in data["names"]],
            dict(data["kinds"]),
            {k: list(v) for k, v in data["levels"].items()},
        )


# -- sub-models -----------------------------------------------------------------------------


class _Sub:
    """One fitted function of the encoded features: a LightGBM booster or a constant."""

    def __init__(self, booster_text: str | None = None, constant: float | None = None) -> None:
        self.booster_text = booster_text
        self.constant = constant
        self._booster: Any = None
        if booster_text is not None:
            import lightgbm

            self._booster = lightgbm.Booster(model_str=booster_text)

    def predict(self, X: FloatArray) -> FloatArray:
        if self._booster is None:
            return np.full(len(X), float(self.constant or 0.0))
        threads = 1 if len(X) < THREADS_FROM_ROWS else 2
        return np.asarray(self._booster.predict(X, num_threads=threads), dtype=float)

    def to_dict(self) -> dict[str, Any]:
        if self.booster_text is not None:
            return {"booster": self.booster_text}
        return {"constant": self.constant}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> _Sub:
        if "booster" in data:
            return cls(booster_text=str(data["booster"]))
        return cls(constant=float(data["constant"]))


def _lgb_params(params: Mapping[str, Any], objective: str) -> dict[str, Any]:
    """LightGBM's native parameters from the learner's keyword arguments."""
    return {
        "objective": objective,
        "learning_rate": params["learning_rate"],
        "num_leaves": params["num_leaves"],
        "max_depth": params["max_depth"],
        "min_data_in_leaf": params["min_child_samples"],
        "bagging_fraction": params["subsample"],
        "bagging_freq": 1 if params["subsample"] < 1 else 0,
        "feature_fraction": params["colsample_bytree"],
        "lambda_l2": params["reg_lambda"],
        "seed": params["random_state"],
        "num_threads": params["n_jobs"],
        "deterministic": True,
        "force_row_wise": True,
        "verbose": -1,
    }


def _fit_sub(
    X: FloatArray,
    y: FloatArray,
    *,
    binary: bool,
    params: Mapping[str, Any],
    categorical: list[int],
    weight: FloatArray | None = None,
    feature_fraction: float | None = None,
) -> _Sub:
    """A LightGBM model of y (a probability for a binary y), or a constant when y is constant."""
    if len(y) == 0:
        return _Sub(constant=0.0)
    if binary and (y.min() == y.max()):
        return _Sub(constant=float(y[0]))
    if not binary and np.ptp(y) == 0:
        return _Sub(constant=float(y[0]))
    import lightgbm

    p = _lgb_params(params, "binary" if binary else "regression")
    if len(y) < THREADS_FROM_ROWS:
        p["num_threads"] = 1
    if feature_fraction is not None:
        p["feature_fraction"] = feature_fraction
    data = lightgbm.Dataset(
        X,
        label=y,
        weight=weight,
        categorical_feature=categorical or "auto",
        free_raw_data=True,
        params={"verbose": -1, "max_bin": 255},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        booster = lightgbm.train(p, data, num_boost_round=int(params["n_estimators"]))
    # predictions always go through the text form, so a saved model predicts the same numbers
    return _Sub(booster_text=booster.model_to_string())


@dataclass
class _Logistic:
    """A logistic regression on standardised numbers and one-hot levels (for propensities)."""

    means: list[float]
    scales: list[float]
    coef: list[float]
    intercept: float
    features: _Features

    @staticmethod
    def _design(
        X: FloatArray, features: _Features, means: FloatArray | None, scales: FloatArray | None
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        cols: list[FloatArray] = []
        num_idx = [i for i, n in enumerate(features.names) if features.kinds[n] == "numeric"]
        num = X[:, num_idx]
        if means is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                means = np.nan_to_num(np.nanmean(num, axis=0)) if num.size else np.zeros(0)
                filled = np.where(np.isnan(num), means, num)
                scales = filled.std(axis=0) if num.size else np.zeros(0)
            scales = np.where(scales > 0, scales, 1.0)
        assert scales is not None
        filled = np.where(np.isnan(num), means, num)
        cols.append((filled - means) / scales)
        for i, name in enumerate(features.names):
            if features.kinds[name] == "categorical":
                codes = X[:, i]
                k = len(features.levels[name])
                onehot = (codes[:, None] == np.arange(k)[None, :]).astype(float)
                cols.append(onehot)
        return np.hstack(cols) if cols else np.zeros((len(X), 0)), means, scales

    @classmethod
    def fit(cls, X: FloatArray, w: FloatArray, features: _Features, seed: int) -> _Logistic:
        from sklearn.linear_model import LogisticRegression

        design, means, scales = cls._design(X, features, None, None)
        lr = LogisticRegression(C=1.0, max_iter=1000, random_state=seed)
        lr.fit(design, w)
        return cls(
            list(map(float, means)),
            list(map(float, scales)),
            list(map(float, lr.coef_.ravel())),
            float(lr.intercept_[0]),
            features,
        )

    def predict(self, X: FloatArray) -> FloatArray:
        design, _, _ = self._design(
            X, self.features, np.asarray(self.means), np.asarray(self.scales)
        )
        z = design @ np.asarray(self.coef) + self.intercept
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=float)

    def to_dict(self) -> dict[str, Any]:
        return {
            "means": self.means,
            "scales": self.scales,
            "coef": self.coef,
            "intercept": self.intercept,
        }


# -- learners -------------------------------------------------------------------------------


def _eq(labels: Any, value: Any) -> npt.NDArray[np.bool_]:
    """Rows whose label equals ``value`` (labels an object array)."""
    arr = np.asarray(labels, dtype=object)
    return np.asarray(arr == value, dtype=bool).reshape(len(arr))


def _labels_of(values: Any) -> list[Any]:
    return sorted(
        {v for v in pd.unique(np.asarray(values, dtype=object)) if not pd.isna(v)}, key=str
    )


class _UpliftLearner(ParamsMixin):  # abstract: ParamsMixin is an abc.ABC
    """What the learners share: inputs, group checks, LightGBM settings, JSON.

    Parameters
    ----------
    n_estimators : int, default 200
        Boosting rounds of every LightGBM model.
    learning_rate : float, default 0.05
    num_leaves : int, default 8
    max_depth : int, default -1
    min_child_samples : int, default 100
        Rows per leaf at least: effects are small, leaves must average many customers.
    subsample : float, default 0.8
        Share of rows per tree (bagging every round when below 1).
    colsample_bytree : float, default 0.8
        Share of features per tree.
    reg_lambda : float, default 1.0
        L2 penalty on leaf values.
    random_state : int, default 0
    n_jobs : int, default 2
        LightGBM threads at most (a fit or prediction on fewer than 50,000 rows uses one:
        :data:`THREADS_FROM_ROWS`; the numbers are the same, LightGBM runs deterministic).
    """

    name: ClassVar[str] = ""
    code: ClassVar[str] = ""

    # learned state
    treatments_: list[Any]
    control_: Any
    features_: _Features
    outcome_: str
    subs_: dict[str, _Sub]
    shares_: dict[str, float]
    group_rows_: dict[str, int]
    customers_: int
    customers_fingerprint_: str | None
    metrics_: dict[str, Any]
    notes_: list[str]

    def __init__(
        self,
        *,
        n_estimators: int = 200,
        learning_rate: float = 0.05,
        num_leaves: int = 8,
        max_depth: int = -1,
        min_child_samples: int = 100,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0,
        random_state: int = 0,
        n_jobs: int = 2,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.random_state = random_state
        self.n_jobs = n_jobs

    # scikit-learn's estimator protocol (so that sklearn.base.clone works)
    @classmethod
    def _init_names(cls) -> list[str]:
        names: list[str] = []
        for klass in cls.__mro__:
            if klass is object:
                continue
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            for p in inspect.signature(init).parameters.values():
                if p.kind not in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) or p.name == "self":
                    continue
                if p.name not in names:
                    names.append(p.name)
        return names

    def _check_fitted(self) -> None:
        if not hasattr(self, "subs_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet",
                hint="call fit() first, or load a saved model with model_from_dict()",
            )

    def _lgb(self) -> dict[str, Any]:
        p = self.get_params()
        for key in ("n_estimators", "num_leaves", "min_child_samples", "n_jobs"):
            if not (isinstance(p[key], int | np.integer) and p[key] >= 1):
                raise DataError(f"{key} must be a positive whole number", value=p[key])
        for key in ("subsample", "colsample_bytree"):
            if not 0 < float(p[key]) <= 1:
                raise DataError(f"{key} must be in (0, 1]", value=p[key])
        if not float(p["learning_rate"]) > 0:
            raise DataError("learning_rate must be positive", value=p["learning_rate"])
        return p

    # -- fit -------------------------------------------------------------------------------

    def fit(
        self,
        X: pd.DataFrame,
        treatment: Any,
        y: Any,
        *,
        control: Any = None,
        treatments: Sequence[Any] | None = None,
        ids: Any = None,
    ) -> _UpliftLearner:
        """Fit one sub-model per treatment against the control.

        Parameters
        ----------
        X : DataFrame
            Features, one row per customer (numbers, booleans, text/categories).
        treatment : array-like
            Each row's group label (``"Womens E-Mail"``, ``"control"``...) or 0/1.
        y : array-like
            Outcome: 0/1 (binary: the models give probabilities) or numbers (continuous).
        control : label, optional
            The control label; default 0 when the labels are 0/1 (or False/True).
        treatments : list of labels, optional
            The treatments, in order; default every other label (sorted). Rows of other
            labels are an error.
        ids : array-like, optional
            Customer ids; their fingerprint and count are saved with the model.

        Returns
        -------
        self
        """
        params = self._lgb()
        if not isinstance(X, pd.DataFrame):
            raise DataError("X must be a pandas DataFrame of features", value=type(X).__name__)
        X = _text_columns(X)
        n = len(X)
        labels = np.asarray(treatment, dtype=object)
        yv = pd.to_numeric(pd.Series(np.asarray(y, dtype=object)), errors="coerce").to_numpy(
            dtype=float, na_value=np.nan
        )
        if len(labels) != n or len(yv) != n:
            raise DataError(
                f"X, treatment and y have different lengths ({n}, {len(labels)}, {len(yv)})"
            )
        bad = ~np.isfinite(yv)
        if bad.any():
            raise DataError(
                f"{int(bad.sum()):,} outcomes are missing or not numbers",
                column="y",
                row=int(np.flatnonzero(bad)[0]),
                expected="0/1 or a number",
            )
        present = _labels_of(labels)
        if control is None:
            if set(map(str, present)) <= {"0", "1", "False", "True"}:
                control = next((v for v in present if str(v) in ("0", "False")), 0)
            else:
                raise DataError(
                    "name the control group (control=...)",
                    column="treatment",
                    hint=f"the groups: {_listing(present)}",
                )
        is_control = _eq(labels, control)
        if not is_control.any():
            raise DataError(
                f"no row has the control label {control!r}",
                column="treatment",
                hint=f"the groups: {_listing(present)}",
            )
        others = [v for v in present if v != control]
        if treatments is None:
            treatments = others
        treatments = list(treatments)
        if not treatments:
            raise DataError(
                "no treated rows: every row is in the control group",
                column="treatment",
                hint=f"the groups: {_listing(present)}",
            )
        for t in treatments:
            if t == control:
                raise DataError(f"{t!r} is both a treatment and the control", column="treatment")
            if t not in others:
                raise DataError(
                    f"no row has the treatment label {t!r}",
                    column="treatment",
                    hint=f"the groups: {_listing(present)}",
                )
        stray = [v for v in others if v not in treatments]
        if stray:
            raise DataError(
                f"rows of groups that are neither a treatment nor the control: {_listing(stray)}",
                column="treatment",
                hint="filter them out, or list them as treatments",
            )
        counts = {str(control): int(is_control.sum())}
        for t in treatments:
            counts[str(t)] = int(_eq(labels, t).sum())
        notes = check_groups(counts, str(control), [str(t) for t in treatments])
        binary = _is_binary(yv)
        feats = _Features.fit(X, list(X.columns))
        Xe = feats.transform(X)
        masks = {t: _eq(labels, t) for t in treatments}
        self.treatments_ = treatments
        self.control_ = control
        self.features_ = feats
        self.outcome_ = "binary" if binary else "continuous"
        self.group_rows_ = counts
        self.notes_ = notes
        self.metrics_ = {}
        self.shares_ = {
            str(t): float(masks[t].sum() / (masks[t].sum() + is_control.sum())) for t in treatments
        }
        self.subs_ = {}
        self._fit(Xe, is_control, masks, yv, binary, params)
        if ids is not None:
            id_index = pd.Index(np.asarray(ids, dtype=object))
            self.customers_ = int(id_index.nunique())
            self.customers_fingerprint_ = _fingerprint(id_index.unique())
        else:
            self.customers_ = n
            self.customers_fingerprint_ = None
        return self

    @abc.abstractmethod
    def _fit(
        self,
        X: FloatArray,
        control: npt.NDArray[np.bool_],
        masks: dict[Any, npt.NDArray[np.bool_]],
        y: FloatArray,
        binary: bool,
        params: dict[str, Any],
    ) -> None:
        """Fit the sub-models of every treatment against the control."""

    # -- predict ---------------------------------------------------------------------------

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        """Predicted uplift per treatment: one column per treatment (named by its label).

        For a binary outcome the uplift is a difference of probabilities; for a continuous one
        a difference of expected outcomes. Rows keep X's index.
        """
        self._check_fitted()
        if not isinstance(X, pd.DataFrame):
            raise DataError("X must be a pandas DataFrame of features", value=type(X).__name__)
        Xe = self.features_.transform(_text_columns(X, self.features_.names))
        if len(Xe) == 0:
            return pd.DataFrame({str(t): [] for t in self.treatments_}, index=X.index, dtype=float)
        out = self._predict(Xe)
        return pd.DataFrame({str(t): out[str(t)] for t in self.treatments_}, index=X.index)

    @abc.abstractmethod
    def _predict(self, X: FloatArray) -> dict[str, FloatArray]:
        """Uplift per treatment (by label) from the encoded matrix."""

    # -- JSON ------------------------------------------------------------------------------

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra(self, data: Mapping[str, Any]) -> None:
        return None

    def to_dict(self) -> dict[str, Any]:
        """The fitted model as a JSON-serialisable dict (boosters in LightGBM's text format)."""
        self._check_fitted()
        return {
            "format": FORMAT,
            "learner": self.code,
            "model": self.name,
            "class": type(self).__name__,
            "params": _plain(self.get_params()),
            "outcome": self.outcome_,
            "control": _plain(self.control_),
            "treatments": _plain(self.treatments_),
            "features": self.features_.to_dict(),
            "shares": self.shares_,
            "group_rows": self.group_rows_,
            "customers": self.customers_,
            "customers_fingerprint": self.customers_fingerprint_,
            "metrics": _plain(self.metrics_),
            "notes": list(self.notes_),
            "submodels": {k: s.to_dict() for k, s in self.subs_.items()},
            "state": self._extra_state(),
            "library": _versions(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> _UpliftLearner:
        """A model saved by :meth:`to_dict`; it predicts the same numbers."""
        if data.get("format") != FORMAT:
            raise DataError(
                "not a saved uplift model", value=data.get("format"), expected=repr(FORMAT)
            )
        names = cls._init_names()
        model = cls(**{k: v for k, v in dict(data.get("params") or {}).items() if k in names})
        model.outcome_ = str(data["outcome"])
        model.control_ = data["control"]
        model.treatments_ = list(data["treatments"])
        model.features_ = _Features.from_dict(data["features"])
        model.shares_ = {str(k): float(v) for k, v in data["shares"].items()}
        model.group_rows_ = {str(k): int(v) for k, v in data["group_rows"].items()}
        model.customers_ = int(data.get("customers") or 0)
        model.customers_fingerprint_ = data.get("customers_fingerprint")
        model.metrics_ = dict(data.get("metrics") or {})
        model.notes_ = list(data.get("notes") or [])
        model.subs_ = {k: _Sub.from_dict(v) for k, v in data["submodels"].items()}
        model._load_extra(data.get("state") or {})
        return model


def _versions() -> dict[str, str]:
    import lightgbm

    from mercato import __version__

    return {"mercato": __version__, "lightgbm": lightgbm.__version__}


class TLearner(_UpliftLearner):
    """Two-model learner: ``tau_t(x) = mu_t(x) - mu_c(x)`` (see the module docstring).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"x": rng.normal(size=2000)})
    >>> w = rng.integers(0, 2, 2000)
    >>> y = (rng.random(2000) < 0.2 + 0.2 * w * (X.x > 0)).astype(int)
    >>> m = TLearner(n_estimators=50).fit(X, w, y)
    >>> u = m.predict(pd.DataFrame({"x": [-1.0, 1.0]}))["1"]
    >>> bool(u.iloc[1] > u.iloc[0])
    True
    """

    name = "T-learner"
    code = "t"

    def _fit(self, X, control, masks, y, binary, params):  # type: ignore[no-untyped-def]
        cat = self.features_.categorical_indices
        self.subs_["control"] = _fit_sub(
            X[control], y[control], binary=binary, params=params, categorical=cat
        )
        for t, m in masks.items():
            self.subs_[f"treated:{t}"] = _fit_sub(
                X[m], y[m], binary=binary, params=params, categorical=cat
            )

    def _predict(self, X: FloatArray) -> dict[str, FloatArray]:
        mu_c = self.subs_["control"].predict(X)
        return {str(t): self.subs_[f"treated:{t}"].predict(X) - mu_c for t in self.treatments_}


class SLearner(_UpliftLearner):
    """Single-model learner: ``tau(x) = mu(x, 1) - mu(x, 0)`` with the treatment as a feature.

    Every tree sees the treatment indicator (it is never dropped by ``colsample_bytree``: the
    feature fraction is 1 for this learner).
    """

    name = "S-learner"
    code = "s"

    def _fit(self, X, control, masks, y, binary, params):  # type: ignore[no-untyped-def]
        cat = self.features_.categorical_indices
        for t, m in masks.items():
            rows = m | control
            Xa = np.column_stack([X[rows], m[rows].astype(float)])
            self.subs_[f"s:{t}"] = _fit_sub(
                Xa, y[rows], binary=binary, params=params, categorical=cat, feature_fraction=1.0
            )

    def _predict(self, X: FloatArray) -> dict[str, FloatArray]:
        ones, zeros = np.ones((len(X), 1)), np.zeros((len(X), 1))
        out = {}
        for t in self.treatments_:
            sub = self.subs_[f"s:{t}"]
            out[str(t)] = sub.predict(np.hstack([X, ones])) - sub.predict(np.hstack([X, zeros]))
        return out


class XLearner(_UpliftLearner):
    """X-learner (Kunzel et al. 2019): imputed effects, two effect models mixed by propensity.

    Parameters
    ----------
    propensity : {"share", "logistic"}, default "share"
        ``"share"``: the treated share of the treatment's rows and the control rows (right for
        a randomised campaign); ``"logistic"``: a logistic regression of the treatment on the
        features (numbers standardised, missing values at the mean; levels one-hot), clipped to
        [0.01, 0.99].
    **kwargs
        LightGBM settings, as for :class:`TLearner`.
    """

    name = "X-learner"
    code = "x"

    logistic_: dict[str, _Logistic]

    def __init__(self, *, propensity: str = "share", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.propensity = propensity

    def _fit(self, X, control, masks, y, binary, params):  # type: ignore[no-untyped-def]
        if self.propensity not in ("share", "logistic"):
            raise DataError(
                "unknown propensity", value=self.propensity, expected="'share' or 'logistic'"
            )
        cat = self.features_.categorical_indices
        mu_c = _fit_sub(X[control], y[control], binary=binary, params=params, categorical=cat)
        self.subs_["control"] = mu_c
        self.logistic_ = {}
        for t, m in masks.items():
            mu_t = _fit_sub(X[m], y[m], binary=binary, params=params, categorical=cat)
            self.subs_[f"treated:{t}"] = mu_t
            d1 = y[m] - mu_c.predict(X[m])
            d0 = mu_t.predict(X[control]) - y[control]
            self.subs_[f"tau1:{t}"] = _fit_sub(
                X[m], d1, binary=False, params=params, categorical=cat
            )
            self.subs_[f"tau0:{t}"] = _fit_sub(
                X[control], d0, binary=False, params=params, categorical=cat
            )
            if self.propensity == "logistic":
                rows = m | control
                self.logistic_[str(t)] = _Logistic.fit(
                    X[rows], m[rows].astype(float), self.features_, int(self.random_state)
                )

    def _e(self, t: str, X: FloatArray) -> FloatArray:
        if self.propensity == "logistic" and t in getattr(self, "logistic_", {}):
            e = self.logistic_[t].predict(X)
        else:
            e = np.full(len(X), self.shares_[t])
        return np.clip(e, PROPENSITY_CLIP, 1.0 - PROPENSITY_CLIP)

    def _predict(self, X: FloatArray) -> dict[str, FloatArray]:
        out = {}
        for t in self.treatments_:
            e = self._e(str(t), X)
            tau0 = self.subs_[f"tau0:{t}"].predict(X)
            tau1 = self.subs_[f"tau1:{t}"].predict(X)
            out[str(t)] = e * tau0 + (1.0 - e) * tau1
        return out

    def _extra_state(self) -> dict[str, Any]:
        return {"logistic": {t: lr.to_dict() for t, lr in getattr(self, "logistic_", {}).items()}}

    def _load_extra(self, data: Mapping[str, Any]) -> None:
        self.logistic_ = {
            t: _Logistic(
                list(v["means"]),
                list(v["scales"]),
                list(v["coef"]),
                float(v["intercept"]),
                self.features_,
            )
            for t, v in dict(data.get("logistic") or {}).items()
        }


class ClassTransformation(_UpliftLearner):
    """Class transformation (binary outcome) or transformed outcome (continuous outcome).

    Binary: a classifier of ``Z = Y W + (1 - Y)(1 - W)`` with treated rows weighted ``0.5 / p``
    and control rows ``0.5 / (1 - p)`` (Jaskowski & Jaroszewicz 2012, with the correction for
    unequal group shares); ``tau(x) = 2 P(Z = 1 | x) - 1``. Continuous: a regression of
    ``Y* = Y (W - p) / (p (1 - p))`` (Athey & Imbens 2015); ``tau(x) = E[Y* | x]``. ``p`` is the
    treated share of the treatment's rows and the control rows.
    """

    name = "class transformation"
    code = "ct"

    def _fit(self, X, control, masks, y, binary, params):  # type: ignore[no-untyped-def]
        cat = self.features_.categorical_indices
        for t, m in masks.items():
            rows = m | control
            wv = m[rows].astype(float)
            yv = y[rows]
            p = self.shares_[str(t)]
            if binary:
                z = yv * wv + (1.0 - yv) * (1.0 - wv)
                weight = np.where(wv == 1, 0.5 / p, 0.5 / (1.0 - p))
                self.subs_[f"ct:{t}"] = _fit_sub(
                    X[rows], z, binary=True, params=params, categorical=cat, weight=weight
                )
            else:
                ystar = yv * (wv - p) / (p * (1.0 - p))
                self.subs_[f"ct:{t}"] = _fit_sub(
                    X[rows], ystar, binary=False, params=params, categorical=cat
                )

    def _predict(self, X: FloatArray) -> dict[str, FloatArray]:
        out = {}
        for t in self.treatments_:
            pz = self.subs_[f"ct:{t}"].predict(X)
            out[str(t)] = 2.0 * pz - 1.0 if self.outcome_ == "binary" else pz
        return out


#: learner codes (``--learners t,s,x,ct``) and their classes
LEARNERS: dict[str, type[_UpliftLearner]] = {
    "t": TLearner,
    "s": SLearner,
    "x": XLearner,
    "ct": ClassTransformation,
}


def model_from_dict(data: Mapping[str, Any]) -> _UpliftLearner:
    """Rebuild a saved uplift model (any learner) from :meth:`TLearner.to_dict`'s dict.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"x": rng.normal(size=500), "c": rng.choice(["a", "b"], 500)})
    >>> w = rng.integers(0, 2, 500)
    >>> y = (rng.random(500) < 0.3).astype(int)
    >>> m = SLearner(n_estimators=20, min_child_samples=20).fit(X, w, y)
    >>> again = model_from_dict(json.loads(json.dumps(m.to_dict())))
    >>> bool((again.predict(X) == m.predict(X)).all().all())
    True
    """
    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
        raise DataError(
            "not a saved uplift model",
            value=data.get("format") if isinstance(data, Mapping) else type(data).__name__,
            expected=repr(FORMAT),
        )
    code = data.get("learner")
    if code not in LEARNERS:
        raise DataError(
            "unknown learner in the saved model", value=code, expected=_listing(LEARNERS)
        )
    return LEARNERS[str(code)].from_dict(data)


def make_learner(code: str, **params: Any) -> _UpliftLearner:
    """A learner from its code (``t``, ``s``, ``x``, ``ct``) with the given settings."""
    key = str(code).strip().lower()
    if key not in LEARNERS:
        raise DataError("unknown learner", value=code, expected=f"one of {', '.join(LEARNERS)}")
    return LEARNERS[key](**params)


# -- groups and balance ---------------------------------------------------------------------


def check_groups(
    counts: Mapping[str, int],
    control: str,
    treatments: Sequence[str],
    *,
    column: str = "treatment",
    where: str = "",
) -> list[str]:
    """Notes on small groups or groups of very different sizes; DataError below
    :data:`MIN_GROUP_ROWS` rows.

    Each treatment is compared with the control: the smaller of the two below
    ``WARN_GROUP_ROWS`` rows, or below ``WARN_GROUP_RATIO`` of the larger, gives a note.
    ``column`` (the group column) and ``where`` (the file) name the data in the error.
    """
    notes: list[str] = []
    nc = int(counts.get(control, 0))
    for t in treatments:
        nt = int(counts.get(t, 0))
        small, large = min(nt, nc), max(nt, nc)
        which = f"treatment {t!r}" if nt <= nc else f"control {control!r}"
        if small < MIN_GROUP_ROWS:
            raise DataError(
                f"{which} has {small:,} rows against {large:,}: at least {MIN_GROUP_ROWS} rows "
                "per group are needed to fit an uplift model",
                file=where or None,
                column=column,
                hint="collect more rows, or merge small treatments",
            )
        if small < WARN_GROUP_RATIO * large:
            notes.append(
                f"groups of very different size: {which} has {small:,} rows against {large:,} "
                f"({small / large:.1%}); its model is uncertain and the metrics noisy"
            )
        elif small < WARN_GROUP_ROWS:
            notes.append(
                f"small group: {which} has {small:,} rows (against {large:,}); its model is "
                "uncertain and the metrics noisy"
            )
    return notes


def parse_shares(text: str | None, groups: Sequence[str]) -> dict[str, float] | None:
    """Expected group shares from ``"equal"`` or ``"A=0.5,B=0.5"`` (normalised to sum 1)."""
    if text is None or not str(text).strip():
        return None
    if str(text).strip().lower() == "equal":
        return {g: 1.0 / len(groups) for g in groups}
    out: dict[str, float] = {}
    for part in str(text).split(","):
        if "=" not in part:
            raise DataError(
                "expected shares are 'equal' or GROUP=SHARE pairs",
                value=text,
                expected="A=0.5,B=0.5",
            )
        key, _, val = part.rpartition("=")
        try:
            share = float(val)
        except ValueError:
            raise DataError("a share is not a number", value=part, expected="GROUP=SHARE") from None
        if key.strip() not in groups:
            raise DataError(
                f"no group {key.strip()!r} in the expected shares' groups",
                hint=f"the groups: {_listing(groups)}",
            )
        out[key.strip()] = share
    total = sum(out.values())
    if set(out) != set(groups) or total <= 0 or any(v < 0 for v in out.values()):
        raise DataError(
            "expected shares must give every group a non-negative share",
            value=text,
            hint=f"the groups: {_listing(groups)}",
        )
    return {k: v / total for k, v in out.items()}


def balance_check(
    X: pd.DataFrame,
    groups: Any,
    control: Any,
    treatments: Sequence[Any] | None = None,
    expected_shares: Mapping[str, float] | None = None,
    *,
    threshold: float = SMD_THRESHOLD,
) -> dict[str, Any]:
    """Are treatment and control comparable? Group sizes, sample-ratio mismatch, SMDs.

    - ``groups``: rows and share of every group; with ``expected_shares`` (group -> share),
      a chi-square goodness-of-fit test of the counts against them (sample-ratio mismatch when
      p < 0.001).
    - ``smd``: for every feature and treatment, the standardised mean difference with the
      control, ``(mean_t - mean_c) / sqrt((var_t + var_c) / 2)`` (missing values left out;
      text features per level, as the share of rows with that level, named ``col=level``);
      |SMD| > ``threshold`` (0.1) is flagged.

    Returns
    -------
    dict
        ``groups``, ``srm`` (or None), ``smd`` (list of rows), ``flagged`` (their names),
        ``balanced`` (no flag and no mismatch).

    Examples
    --------
    >>> X = pd.DataFrame({"age": [20, 30, 40, 50, 20, 30, 40, 50]})
    >>> b = balance_check(X, [1, 1, 1, 1, 0, 0, 0, 0], control=0)
    >>> b["balanced"], b["smd"][0]["smd"]
    (True, 0.0)
    """
    g = pd.Series(np.asarray(groups, dtype=object), index=X.index)
    present = _labels_of(g)
    if treatments is None:
        treatments = [v for v in present if v != control]
    n = len(g)
    counts = {str(v): int((g == v).sum()) for v in [control, *treatments]}
    rows = [
        {
            "group": k,
            "role": "control" if k == str(control) else "treatment",
            "rows": c,
            "share": c / n if n else math.nan,
            "expected_share": None if not expected_shares else expected_shares.get(k),
        }
        for k, c in counts.items()
    ]
    srm = None
    if expected_shares:
        from scipy import stats

        keys = list(counts)
        obs = np.array([counts[k] for k in keys], dtype=float)
        exp_share = np.array([float(expected_shares.get(k, 0.0)) for k in keys])
        exp_share = exp_share / exp_share.sum()
        exp = exp_share * obs.sum()
        ok = exp > 0
        chi2 = float(((obs[ok] - exp[ok]) ** 2 / exp[ok]).sum())
        dof = int(ok.sum() - 1)
        p = float(stats.chi2.sf(chi2, dof)) if dof > 0 else math.nan
        srm = {
            "chi2": chi2,
            "dof": dof,
            "p_value": p,
            "mismatch": bool(p < SRM_ALPHA),
            "alpha": SRM_ALPHA,
        }
    smd_rows: list[dict[str, Any]] = []
    cmask = (g == control).to_numpy()
    for t in treatments:
        tmask = (g == t).to_numpy()
        for name in X.columns:
            col = X[name]
            pieces: list[tuple[str, FloatArray]] = []
            if _is_numeric(col):
                vals = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
                pieces.append((str(name), vals))
            else:
                txt = col.astype("string")
                for level in sorted(set(txt.dropna())):
                    pieces.append(
                        (f"{name}={level}", (txt == level).fillna(False).to_numpy(dtype=float))
                    )
            for label, vals in pieces:
                smd = _smd(vals[tmask], vals[cmask])
                smd_rows.append(
                    {
                        "treatment": str(t),
                        "feature": label,
                        "mean_treatment": _nanmean(vals[tmask]),
                        "mean_control": _nanmean(vals[cmask]),
                        "smd": smd,
                        "flagged": bool(abs(smd) > threshold) if math.isfinite(smd) else False,
                    }
                )
    flagged = [f"{r['feature']} ({r['treatment']})" for r in smd_rows if r["flagged"]]
    return {
        "groups": rows,
        "srm": srm,
        "smd": smd_rows,
        "smd_threshold": threshold,
        "flagged": flagged,
        "balanced": not flagged and not (srm and srm["mismatch"]),
    }


def _nanmean(v: FloatArray) -> float:
    v = v[~np.isnan(v)]
    return float(v.mean()) if v.size else math.nan


def _smd(a: FloatArray, b: FloatArray) -> float:
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if a.size == 0 or b.size == 0:
        return math.nan
    diff = float(a.mean() - b.mean())
    var = (float(a.var(ddof=1)) if a.size > 1 else 0.0) + (
        float(b.var(ddof=1)) if b.size > 1 else 0.0
    )
    sd = math.sqrt(var / 2.0)
    if sd == 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / sd


# -- experiments ----------------------------------------------------------------------------


@dataclass
class _Experiment:
    """Validated inputs of an experiment (the rows of the control and the treatments)."""

    X: pd.DataFrame
    labels: npt.NDArray[Any]  # group label per row (as given)
    y: FloatArray
    treatments: list[Any]
    control: Any
    target: str
    treatment_col: str
    binary: bool
    ids: npt.NDArray[Any] | None
    rows: npt.NDArray[np.int64]  # positions in the input frame
    notes: list[str]
    group_counts: dict[str, int]
    #: the features are still to be chosen by :func:`default_features` (X holds every
    #: candidate column): :func:`_choose_features` does it on the rows a model is fitted on
    auto_features: bool = False
    where: str = ""


def _resolve_label(values: pd.Series, value: Any, column: str, role: str, where: str) -> Any:
    """The label in ``values`` equal to ``value`` (text compared as text), or DataError."""
    present = _labels_of(values)
    for v in present:
        if v == value or str(v) == str(value):
            return v
    raise DataError(
        f"{role} {column}={value}: no row of {where or 'the data'} has {column} = "
        f"{str(value)!r}; values: {_listing(present)}",
        column=column,
    )


def _outcome(values: pd.Series, target: str, where: str) -> FloatArray:
    if pd.api.types.is_bool_dtype(values):
        return values.astype(float).to_numpy()
    if not pd.api.types.is_numeric_dtype(values):
        conv = pd.to_numeric(values, errors="coerce")
        bad = conv.isna() & values.notna()
        if bad.any():
            examples = _listing(sorted(pd.unique(values[bad].astype(str)))[:5], 5)
            raise DataError(
                f"the target {target!r} is neither 0/1 nor a number (values such as {examples})",
                file=where or None,
                column=target,
                expected="0/1 (binary outcome) or a number (continuous outcome)",
            )
        values = conv
    y = values.to_numpy(dtype=float, na_value=np.nan)
    miss = ~np.isfinite(y)
    if miss.all():
        raise DataError("the target has no value", file=where or None, column=target)
    return y


def _z_differs(a: FloatArray, b: FloatArray, alpha: float) -> bool:
    """Two-sample z test of the means of a and b (finite values), p < alpha."""
    from scipy import stats

    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size < 2 or b.size < 2:
        return False
    se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    if se == 0:
        return bool(a.mean() != b.mean() and min(a.size, b.size) >= MIN_GROUP_ROWS)
    return bool(2 * stats.norm.sf(abs((a.mean() - b.mean()) / se)) < alpha)


def _levels_differ(a: pd.Series, b: pd.Series, alpha: float) -> bool:
    """Chi-square test of the level shares (missing a level of its own) of a and b, p < alpha.

    Levels with fewer than 5 rows in both groups together are pooled, so that the test holds.
    """
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return False
    ta = a.astype("string").fillna("\x00missing")
    tb = b.astype("string").fillna("\x00missing")
    table = pd.concat(
        [ta.value_counts().rename("a"), tb.value_counts().rename("b")], axis=1
    ).fillna(0)
    rare = table.sum(axis=1) < 5
    if rare.any():
        pooled = table[rare].sum().rename("\x00rare")
        table = pd.concat([table[~rare], pooled.to_frame().T])
        table = table[table.sum(axis=1) > 0]
    if len(table) < 2:
        return False
    p = float(stats.chi2_contingency(table.to_numpy(dtype=float), correction=False)[1])
    return p < alpha


def _implies_outcome(present: npt.NDArray[np.bool_], hit: npt.NDArray[np.bool_]) -> bool:
    """Do the rows where a column is present (non-zero, or of one level) almost all have an
    outcome, when the outcome is not that common? The mark of a later step of the same
    funnel (a conversion or a spend for a visit), however small the campaign's effect on it."""
    n_in = int(present.sum())
    if n_in < MIN_GROUP_ROWS or len(hit) - n_in < MIN_GROUP_ROWS:
        return False
    return bool(hit[present].mean() >= IMPLIES_SHARE and hit.mean() <= 0.9)


def default_features(
    frame: pd.DataFrame,
    labels: Any,
    control: Any,
    treatments: Sequence[Any],
    exclude: Iterable[str],
    alpha: float = POST_TREATMENT_ALPHA,
    y: Any = None,
) -> tuple[list[str], list[str]]:
    """Every column not excluded, less those that look like outcomes of the campaign.

    In a randomised campaign a customer's attributes before the send are the same in
    distribution in every group. A column that differs between a treatment and the control
    with p < ``alpha`` is taken for an outcome (a visit, a purchase, a spend after the send):
    using it would leak the answer. Numbers: the mean (two-sample z test) or the share of rows
    with a non-zero value (missing counted as zero: an amount left empty when nothing happened)
    differ; text: the shares of its levels differ (chi-square; missing is a level). With the
    outcome ``y``, a column is also taken for an outcome when the rows where it is non-zero
    (text: of one level), at least 30, have a non-zero outcome in 99% of cases or more while
    the outcome is not that common (at most 90% of rows): a later step of the same funnel (a
    conversion or a spend, for a visit), which the test of the groups misses when the
    campaign's effect on it is small. Such columns are left out and named in the notes; pass
    ``features=`` to keep them. A text column that looks like an identifier (see
    :class:`_Features`) is left out too.

    Returns
    -------
    (list of str, list of str)
        The features and notes.
    """
    skip = set(exclude)
    lab = np.asarray(labels, dtype=object)
    cmask = _eq(lab, control)
    tmasks = [_eq(lab, t) for t in treatments]
    hit: npt.NDArray[np.bool_] | None = None
    if y is not None:
        yv = np.asarray(y, dtype=float).ravel()
        hit = np.isfinite(yv) & (yv != 0)
    keep: list[str] = []
    dropped: list[str] = []
    ids: list[str] = []
    for name in frame.columns:
        if name in skip:
            continue
        col = frame[name]
        suspect = False
        if _is_numeric(col):
            vals = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            present = np.isfinite(vals) & (vals != 0)
            for tmask in tmasks:
                for series in (vals, present.astype(float)):
                    if _z_differs(series[tmask], series[cmask], alpha):
                        suspect = True
            if hit is not None and _implies_outcome(present, hit):
                suspect = True
        else:
            if _looks_like_id(col):
                ids.append(str(name))
                continue
            for tmask in tmasks:
                if _levels_differ(col[tmask], col[cmask], alpha):
                    suspect = True
            if hit is not None and not suspect and hit.mean() <= 0.9:
                by_level = (
                    pd.DataFrame({"level": col.astype("string").to_numpy(), "hit": hit})
                    .groupby("level", dropna=True)["hit"]
                    .agg(["size", "mean"])
                )
                n_rows = len(hit)
                suspect = bool(
                    (
                        (by_level["size"] >= MIN_GROUP_ROWS)
                        & (n_rows - by_level["size"] >= MIN_GROUP_ROWS)
                        & (by_level["mean"] >= IMPLIES_SHARE)
                    ).any()
                )
        if suspect:
            dropped.append(str(name))
        else:
            keep.append(str(name))
    notes = []
    if dropped:
        notes.append(
            f"left out of the features: {', '.join(dropped)} (they look like outcomes of the "
            f"campaign: they differ between treated and control rows with p < {alpha:g}, or "
            f"where they are non-zero the outcome almost always is too; name them in the "
            "features to keep them)"
        )
    if ids:
        notes.append(
            f"left out of the features: {', '.join(ids)} (text with a distinct value in most "
            "rows: an identifier, not a feature; name it as the id column)"
        )
    return keep, notes


def _experiment(
    frame: pd.DataFrame,
    treatment_col: str,
    treatments: Sequence[Any] | None,
    control: Any,
    target: str,
    features: Sequence[str] | None,
    id_col: str | None,
    where: str = "",
) -> _Experiment:
    if not isinstance(frame, pd.DataFrame):
        raise DataError("the experiment must be a pandas DataFrame", value=type(frame).__name__)
    cols = list(map(str, frame.columns))
    for role, col in (
        ("treatment column", treatment_col),
        ("target column", target),
        ("id column", id_col),
    ):
        if col is not None and col not in cols:
            raise DataError(
                f"no {role} {col!r}",
                file=where or None,
                column=col,
                hint=f"the columns: {_listing(cols, 40)}",
            )
    if target == treatment_col:
        raise DataError("the target cannot be the treatment column", column=target)
    g = frame[treatment_col]
    ctrl = _resolve_label(g, control, treatment_col, "--control", where)
    present = [v for v in _labels_of(g) if v != ctrl]
    if treatments is None or len(treatments) == 0:
        treats = present
    else:
        treats = []
        for t in treatments:
            lab = _resolve_label(g, t, treatment_col, "--treatment", where)
            if lab == ctrl:
                raise DataError(
                    f"{treatment_col}={t} is both a treatment and the control", column=treatment_col
                )
            if lab not in treats:
                treats.append(lab)
    if not treats:
        raise DataError(
            f"no treatment: every row with a group has {treatment_col} = {ctrl!r}",
            column=treatment_col,
        )
    keep = g.isin([ctrl, *treats]).to_numpy()
    notes: list[str] = []
    no_group = g.isna().to_numpy()
    other = ~keep & ~no_group
    if other.any():
        others = _listing([v for v in _labels_of(g) if v != ctrl and v not in treats])
        notes.append(
            f"{int(other.sum()):,} rows of other groups ({others}) are not part of this comparison"
        )
    if no_group.any():
        notes.append(f"{int(no_group.sum()):,} rows without a {treatment_col} value are left out")
    sub = frame.loc[keep]
    rows = np.flatnonzero(keep).astype(np.int64)
    y = _outcome(sub[target], target, where)
    miss = ~np.isfinite(y)
    if miss.any():
        notes.append(f"{int(miss.sum()):,} rows without a {target} value are left out")
        sub, y, rows = sub.loc[~miss], y[~miss], rows[~miss]
    labels = sub[treatment_col].to_numpy(dtype=object)
    counts = {str(ctrl): int(_eq(labels, ctrl).sum())}
    for t in treats:
        counts[str(t)] = int(_eq(labels, t).sum())
    notes.extend(
        check_groups(counts, str(ctrl), [str(t) for t in treats], column=treatment_col, where=where)
    )
    exclude = {treatment_col, target} | ({id_col} if id_col else set())
    if features is None:
        # chosen later, on the rows a model is fitted on (_choose_features)
        feats = [str(c) for c in sub.columns if str(c) not in exclude]
    else:
        feats = [str(f) for f in features]
        for f in feats:
            if f not in cols:
                raise DataError(
                    f"no feature column {f!r}",
                    file=where or None,
                    column=f,
                    hint=f"the columns: {_listing(cols, 40)}",
                )
            if f in exclude:
                raise DataError(
                    f"{f!r} is the treatment, the target or the id: it cannot be a feature",
                    column=f,
                )
        _Features.fit(sub, feats, where)  # an identifier among the features: say so now
    if not feats:
        raise DataError("no feature left to model the uplift on", file=where or None)
    ids = sub[id_col].to_numpy(dtype=object) if id_col else None
    if ids is not None and pd.Series(ids).duplicated().any():
        dup = pd.Series(ids)[pd.Series(ids).duplicated()].iloc[0]
        raise DataError(
            "a customer appears twice in the experiment",
            file=where or None,
            column=id_col,
            value=dup,
            expected="one row per customer",
        )
    return _Experiment(
        X=sub[feats].reset_index(drop=True),
        labels=labels,
        y=y,
        treatments=treats,
        control=ctrl,
        target=target,
        treatment_col=treatment_col,
        binary=_is_binary(y),
        ids=ids,
        rows=rows,
        notes=notes,
        group_counts=counts,
        auto_features=features is None,
        where=where,
    )


def _choose_features(exp: _Experiment, idx: npt.NDArray[np.int64], notes: list[str]) -> None:
    """Narrow ``exp.X`` to :func:`default_features` computed on the rows ``idx`` only.

    :func:`evaluate` passes the training rows: the held-out rows play no role in choosing
    the features either.
    """
    if not exp.auto_features:
        return
    exclude = {exp.treatment_col, exp.target}
    feats, fnotes = default_features(
        exp.X.iloc[idx], exp.labels[idx], exp.control, exp.treatments, exclude, y=exp.y[idx]
    )
    notes.extend(fnotes)
    if not feats:
        raise DataError("no feature left to model the uplift on", file=exp.where or None)
    exp.X = exp.X[feats]
    exp.auto_features = False


def _strata(exp: _Experiment, idx: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
    """Split strata: the group's code (control 0, treatments 1..) and the outcome.

    Written "code outcome" (``"1 0"``), as scikit-learn writes a two-column ``stratify``, so
    a two-group binary experiment splits exactly as ``train_test_split(..., stratify=
    pd.concat([treatment, target], axis=1))`` with treatment 1/0 does.
    """
    code = {exp.control: 0, **{t: i + 1 for i, t in enumerate(exp.treatments)}}
    labels = exp.labels[idx]
    y = exp.y[idx]
    yk = y.astype(int).astype(str) if exp.binary else np.where(y > 0, "1", "0")
    return np.array([f"{code[v]} {o}" for v, o in zip(labels, yk, strict=True)], dtype=object)


def _split(
    exp: _Experiment, idx: npt.NDArray[np.int64], test_size: float, seed: int, notes: list[str]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    from sklearn.model_selection import train_test_split

    if not 0 < test_size < 1:
        raise DataError("test_size must be a share in (0, 1)", value=test_size)
    strata = _strata(exp, idx)
    try:
        a, b = train_test_split(idx, test_size=test_size, random_state=seed, stratify=strata)
    except ValueError:
        code = np.array([s.split(" ")[0] for s in strata], dtype=object)
        notes.append(
            "some group x outcome cells are too small to stratify on: the split is stratified "
            "by group only"
        )
        a, b = train_test_split(idx, test_size=test_size, random_state=seed, stratify=code)
    return np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)


def _check_part(
    exp: _Experiment,
    idx: npt.NDArray[np.int64],
    params: Mapping[str, Any],
    part: str,
    hint: str,
    notes: list[str],
) -> None:
    """Enough rows of every group in the part of the data a model is fitted on?

    DataError (naming the part, the group and its rows in the whole data) below
    :data:`MIN_GROUP_ROWS`; a note when a group has fewer than twice ``min_child_samples``
    rows: the trees can then hardly split and the uplift comes out (nearly) the same for all.
    """
    labels = exp.labels[idx]
    sizes = {str(g): int(_eq(labels, g).sum()) for g in [exp.control, *exp.treatments]}
    group = min(sizes, key=lambda g: sizes[g])
    small = sizes[group]
    role = "control" if group == str(exp.control) else "treatment"
    if small < MIN_GROUP_ROWS:
        raise DataError(
            f"the {part} holds {small:,} rows of {role} {group!r} ({exp.group_counts[group]:,} "
            f"in the data): at least {MIN_GROUP_ROWS} rows per group are needed to fit a model",
            file=exp.where or None,
            column=exp.treatment_col,
            hint=hint,
        )
    leaf = int(params.get("min_child_samples", 100))
    if small < 2 * leaf:
        note = (
            f"{role} {group!r} has {small:,} rows to fit on, fewer than twice min_child_samples "
            f"({leaf}): the trees can hardly split and the predicted uplift is nearly the same "
            "for everyone (collect more rows, or lower min_child_samples)"
        )
        if not any(
            n.startswith(f"{role} {group!r} has ") and "min_child_samples" in n for n in notes
        ):
            notes.append(note)


def _fit_on(
    exp: _Experiment, idx: npt.NDArray[np.int64], code: str, params: Mapping[str, Any]
) -> _UpliftLearner:
    model = make_learner(code, **dict(params))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(
            exp.X.iloc[idx].reset_index(drop=True),
            exp.labels[idx],
            exp.y[idx],
            control=exp.control,
            treatments=exp.treatments,
            ids=None if exp.ids is None else exp.ids[idx],
        )
    return model


def _score_pairs(
    exp: _Experiment, idx: npt.NDArray[np.int64], pred: pd.DataFrame, k: float
) -> dict[str, dict[str, float]]:
    """Metrics of each treatment's uplift on that treatment's and the control's rows."""
    labels = exp.labels[idx]
    y = exp.y[idx]
    cmask = _eq(labels, exp.control)
    out = {}
    for t in exp.treatments:
        tmask = _eq(labels, t)
        rows = tmask | cmask
        u = pred[str(t)].to_numpy()[rows]
        out[str(t)] = uplift_metrics(y[rows], u, tmask[rows].astype(float), k)
        out[str(t)]["rows"] = int(rows.sum())
        out[str(t)]["observed_uplift"] = float(y[tmask].mean() - y[cmask].mean())
        out[str(t)]["mean_predicted_uplift"] = float(u.mean())
    return out


def _select(
    exp: _Experiment,
    idx: npt.NDArray[np.int64],
    learners: Sequence[str],
    params: Mapping[str, Any],
    seed: int,
    validation_size: float,
    k: float,
    notes: list[str],
    tick: Callable[[str], None],
) -> tuple[str, dict[str, dict[str, dict[str, float]]]]:
    """The learner with the best mean Qini AUC over treatments on a validation part of idx."""
    fit_idx, val_idx = _split(exp, idx, validation_size, seed, notes)
    _check_part(
        exp,
        fit_idx,
        params,
        f"part left to fit on after the {validation_size:.0%} validation part that chooses the "
        "learner",
        "name a single learner (no choice, no validation part), or collect more rows",
        notes,
    )
    scores: dict[str, dict[str, dict[str, float]]] = {}
    for code in learners:
        tick(f"selecting: {LEARNERS[code].name}")
        model = _fit_on(exp, fit_idx, code, params)
        pred = model.predict(exp.X.iloc[val_idx].reset_index(drop=True))
        scores[code] = _score_pairs(exp, val_idx, pred, k)

    def mean_qini(code: str) -> float:
        vals = [s["qini_auc"] for s in scores[code].values() if math.isfinite(s["qini_auc"])]
        return float(np.mean(vals)) if vals else -math.inf

    best = max(learners, key=mean_qini)
    return best, scores


@dataclass
class UpliftEvaluation(AnalysisResult):
    """:func:`evaluate`'s result: an :class:`AnalysisResult` plus the held-out predictions.

    ``predictions`` has one row per held-out row: ``row`` (position in the input frame), the
    id (when given), the group, the outcome, and one column ``"<learner>:<treatment>"`` of
    predicted uplift per learner and treatment. ``models`` are the learners fitted on the
    training part.
    """

    predictions: pd.DataFrame = field(default_factory=pd.DataFrame)
    models: dict[str, _UpliftLearner] = field(default_factory=dict)


def _learner_codes(learners: Sequence[str] | str) -> list[str]:
    if isinstance(learners, str):
        learners = learners.split(",")
    codes = []
    for code in learners:
        key = str(code).strip().lower()
        if not key:
            continue
        if key not in LEARNERS:
            raise DataError(
                "unknown learner", value=code, expected=f"some of {', '.join(LEARNERS)}"
            )
        if key not in codes:
            codes.append(key)
    if not codes:
        raise DataError("no learner given", expected=f"some of {', '.join(LEARNERS)}")
    return codes


def evaluate(
    frame: pd.DataFrame,
    treatment_col: str,
    treatments: Sequence[Any] | None,
    control: Any,
    target: str,
    features: Sequence[str] | None = None,
    *,
    test_size: float = 0.5,
    seed: int = 42,
    learners: Sequence[str] | str = ("t", "s", "x", "ct"),
    id_col: str | None = None,
    params: Mapping[str, Any] | None = None,
    k: float = 0.3,
    validation_size: float = 0.3,
    expected_shares: Mapping[str, float] | None = None,
    where: str = "",
    progress: Callable[[int, int, str], None] | None = None,
) -> UpliftEvaluation:
    """Fit every learner on a training part and measure it on the held-out part.

    1. The rows of the control and the treatments are split (``test_size``, ``seed``) with
       scikit-learn's ``train_test_split``, stratified by group x outcome (x "outcome > 0" for
       a continuous outcome).
    2. The default features (:func:`default_features`, when ``features`` is None) are chosen
       on the *training* part; the best learner by its mean Qini AUC over the treatments on a
       validation part (``validation_size``) of the training part, each learner fitted on the
       rest of the training part. The held-out part plays no role in either choice.
    3. Every learner is fitted on the whole training part; uplift@k (``"overall"`` strategy
       and ``"by_group"``), Qini AUC and uplift AUC are measured on the held-out rows of each
       treatment and the control.

    Parameters
    ----------
    frame : DataFrame
        One row per customer.
    treatment_col : str
        Column of the group labels.
    treatments : list of labels, optional
        Treatments to compare with the control (default: every other group).
    control : label
        The control group's label.
    target : str
        Outcome column: 0/1 or numbers.
    features : list of str, optional
        Default: every other column (but the id) that does not look like an outcome of the
        campaign (:func:`default_features`).
    test_size, seed : float, int
        The held-out share and the split's seed.
    learners : codes, default ("t", "s", "x", "ct")
    id_col : str, optional
        Customer id column (kept with the predictions).
    params : dict, optional
        LightGBM settings for every learner (see :class:`TLearner`).
    k : float, default 0.3
        Share for uplift@k.
    validation_size : float, default 0.3
        Share of the training part used to choose the best learner.
    expected_shares : dict, optional
        Expected share of every group, for the sample-ratio-mismatch test.
    where : str
        The data's name (a file) for messages.
    progress : callable, optional
        ``progress(done, total, description)``.

    Returns
    -------
    UpliftEvaluation
        ``table``: one row per (learner, treatment) with the held-out metrics and the
        validation Qini AUC; ``summary``: sizes, outcome type, best learner, balance check,
        observed average effects; ``predictions``: the held-out rows' predicted uplift.
    """
    codes = _learner_codes(learners)
    exp = _experiment(frame, treatment_col, treatments, control, target, features, id_col, where)
    params = dict(params or {})
    notes = list(exp.notes)
    total = 2 * len(codes) + 1
    done = [0]

    def tick(desc: str) -> None:
        if progress is not None:
            progress(done[0], total, desc)
        done[0] += 1

    all_idx = np.arange(len(exp.y), dtype=np.int64)
    # the split needs only the groups and the outcome; the features are chosen on its
    # training part, so that the held-out rows play no role in any choice
    train, test = _split(exp, all_idx, test_size, seed, notes)
    _choose_features(exp, train, notes)
    _check_part(
        exp,
        train,
        params,
        f"training part ({1 - test_size:.0%} of the rows)",
        "use a smaller --test-size (test_size), or collect more rows",
        notes,
    )
    tick("balance check")
    balance = balance_check(
        exp.X,
        np.array([str(v) for v in exp.labels], dtype=object),
        str(exp.control),
        [str(t) for t in exp.treatments],
        expected_shares,
    )
    if balance["srm"] and balance["srm"]["mismatch"]:
        notes.append(
            f"sample-ratio mismatch: the group sizes differ from the expected shares "
            f"(chi-square p = {balance['srm']['p_value']:.2g}); check the assignment"
        )
    if balance["flagged"]:
        notes.append(
            f"features unbalanced between a treatment and the control (|SMD| > {SMD_THRESHOLD}): "
            + _listing(balance["flagged"], 8)
        )
    if len(codes) > 1:
        best, val_scores = _select(exp, train, codes, params, seed, validation_size, k, notes, tick)
    else:  # nothing to choose between
        best, val_scores = codes[0], {codes[0]: {}}
        done[0] += 1
    table_rows: list[dict[str, Any]] = []
    pred_cols: dict[str, Any] = {"row": exp.rows[test]}
    if exp.ids is not None and id_col:
        pred_cols[id_col] = exp.ids[test]
    pred_cols["group"] = exp.labels[test]
    pred_cols[target] = exp.y[test]
    models: dict[str, _UpliftLearner] = {}
    for code in codes:
        tick(f"fitting: {LEARNERS[code].name}")
        model = _fit_on(exp, train, code, params)
        pred = model.predict(exp.X.iloc[test].reset_index(drop=True))
        scores = _score_pairs(exp, test, pred, k)
        model.metrics_ = {"held_out": scores, "validation": val_scores[code], "k": k}
        models[code] = model
        for t in exp.treatments:
            s = scores[str(t)]
            table_rows.append(
                {
                    "learner": code,
                    "name": LEARNERS[code].name,
                    "treatment": str(t),
                    "test_rows": s["rows"],
                    "uplift_at_k": s["uplift_at_k"],
                    "uplift_at_k_by_group": s["uplift_at_k_by_group"],
                    "qini_auc": s["qini_auc"],
                    "uplift_auc": s["uplift_auc"],
                    "validation_qini_auc": val_scores[code]
                    .get(str(t), {})
                    .get("qini_auc", math.nan),
                    "mean_predicted_uplift": s["mean_predicted_uplift"],
                    "best": code == best,
                }
            )
            pred_cols[f"{code}:{t}"] = pred[str(t)].to_numpy()
    tick("done")
    test_obs = _score_pairs(
        exp, test, pd.DataFrame({str(t): np.zeros(len(test)) for t in exp.treatments}), k
    )
    summary: dict[str, Any] = {
        "rows": int(len(exp.y)),
        "train_rows": int(len(train)),
        "test_rows": int(len(test)),
        "test_size": test_size,
        "seed": seed,
        "target": target,
        "outcome": "binary" if exp.binary else "continuous",
        "treatment_column": treatment_col,
        "control": str(exp.control),
        "treatments": [str(t) for t in exp.treatments],
        "group_rows": exp.group_counts,
        "features": list(exp.X.columns),
        "learners": codes,
        "k": k,
        "strategy": "overall",
        "best_learner": best,
        "selection": (
            f"mean Qini AUC over treatments on a {validation_size:.0%} validation part of the "
            f"training rows (seed {seed}); the held-out rows play no role"
        ),
        "observed_uplift_test": {t: s["observed_uplift"] for t, s in test_obs.items()},
        "balance": _plain(balance),
        "params": _plain({**make_learner("t", **params).get_params()}),
        "split": "stratified by group x outcome"
        if not any("stratified by group only" in n for n in notes)
        else "stratified by group",
    }
    return UpliftEvaluation(
        name="uplift",
        table=pd.DataFrame(table_rows),
        summary=summary,
        notes=notes,
        predictions=pd.DataFrame(pred_cols),
        models=models,
    )


def fit_best(
    frame: pd.DataFrame,
    treatment_col: str,
    treatments: Sequence[Any] | None,
    control: Any,
    target: str,
    features: Sequence[str] | None = None,
    *,
    learners: Sequence[str] | str = ("t", "s", "x", "ct"),
    learner: str | None = None,
    id_col: str | None = None,
    params: Mapping[str, Any] | None = None,
    seed: int = 42,
    validation_size: float = 0.3,
    k: float = 0.3,
    where: str = "",
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[_UpliftLearner, dict[str, Any], list[str]]:
    """Choose a learner on a validation split and fit it on *all* rows.

    With ``learner`` given, that learner is fitted without a choice. Returns the model, the
    validation scores per learner and treatment (``{code: {treatment: metrics}}``) and notes.
    """
    codes = _learner_codes([learner] if learner else learners)
    exp = _experiment(frame, treatment_col, treatments, control, target, features, id_col, where)
    params = dict(params or {})
    notes = list(exp.notes)
    all_idx = np.arange(len(exp.y), dtype=np.int64)
    total = len(codes) + 1
    done = [0]

    def tick(desc: str) -> None:
        if progress is not None:
            progress(done[0], total, desc)
        done[0] += 1

    _choose_features(exp, all_idx, notes)
    _check_part(exp, all_idx, params, "data", "collect more rows", notes)
    scores: dict[str, Any] = {}
    best = codes[0]
    if len(codes) > 1:
        best, scores = _select(exp, all_idx, codes, params, seed, validation_size, k, notes, tick)
    tick(f"fitting: {LEARNERS[best].name}")
    model = _fit_on(exp, all_idx, best, params)
    model.metrics_ = {"validation": scores.get(best, {}), "k": k, "selected_from": codes}
    model.notes_ = notes
    return model, scores, notes


# -- targeting ------------------------------------------------------------------------------


def check_plan(
    outcome: str | None,
    *,
    budget: float | None = None,
    contact_cost: float = 0.0,
    value: float = 1.0,
    objective: str = "conversions",
    max_contacts: int | None = None,
) -> None:
    """DataError for settings :func:`target` cannot use (call it before a long fit).

    ``outcome``: ``"binary"`` or ``"continuous"`` (the model's outcome type), or None when
    not known yet.
    """
    if objective not in ("conversions", "revenue"):
        raise DataError("unknown objective", value=objective, expected="'conversions' or 'revenue'")
    if objective == "conversions" and outcome == "continuous":
        raise DataError(
            "the model predicts a continuous outcome (spend): it cannot count conversions",
            hint="use objective='revenue', or a model of a 0/1 outcome",
        )
    for name, v in (("contact_cost", contact_cost), ("value", value)):
        if not (math.isfinite(float(v)) and float(v) >= 0):
            raise DataError(f"{name} must be a number >= 0", value=v)
    if budget is not None and not (math.isfinite(float(budget)) and float(budget) >= 0):
        raise DataError("budget must be an amount >= 0", value=budget)
    if max_contacts is not None and int(max_contacts) < 0:
        raise DataError("max_contacts must be >= 0", value=max_contacts)


def outcome_kind(
    frame: pd.DataFrame,
    target: str,
    treatment_col: str,
    groups: Sequence[Any] | None = None,
    where: str = "",
) -> str:
    """``"binary"`` when every value of the target is 0/1 (missing ones aside) on the rows of
    ``groups`` (default: every row with a group), as the model will see it; else
    ``"continuous"``. DataError for a target that is not a number."""
    g = frame[treatment_col]
    rows = g.notna() if groups is None else g.isin(list(groups))
    y = _outcome(frame.loc[rows, target], target, where)
    return "binary" if _is_binary(y[np.isfinite(y)]) else "continuous"


def target(
    model: _UpliftLearner,
    frame: pd.DataFrame,
    *,
    budget: float | None = None,
    contact_cost: float = 0.0,
    value: float = 1.0,
    objective: str = "conversions",
    max_contacts: int | None = None,
    id_col: str = "customer_id",
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Whom to contact, with which treatment, to maximise the incremental outcome.

    For each customer the treatment with the highest predicted uplift is chosen; its expected
    net value is ``uplift * value - contact_cost``. Customers with a positive net value are
    contacted, best first, until the budget (``contacts * contact_cost <= budget``) or
    ``max_contacts`` runs out.

    ``objective="conversions"`` needs a model of a binary outcome: the uplift is incremental
    conversions and ``value`` the value of one conversion. ``objective="revenue"``: with a
    model of a continuous outcome (spend) the uplift is incremental revenue and ``value`` a
    multiplier (a margin, default 1); with a binary model, ``value`` is the revenue of one
    conversion.

    Returns
    -------
    (DataFrame, dict)
        The plan (contacted customers, best first): ``customer_id``, ``treatment``, ``uplift``,
        ``expected_incremental`` (conversions or revenue), ``net_value``, ``rank`` (1 = first);
        and a summary: ``candidates``, ``contacts``, ``spend``, the expected incremental
        conversions or revenue, ``expected_net_value``, ``per_treatment``, ``stopped_by``.
    """
    model._check_fitted()
    check_plan(
        model.outcome_,
        budget=budget,
        contact_cost=contact_cost,
        value=value,
        objective=objective,
        max_contacts=max_contacts,
    )
    if id_col not in frame.columns:
        raise DataError(
            f"no customer id column {id_col!r}",
            column=id_col,
            hint=f"the columns: {_listing(map(str, frame.columns), 40)}",
        )
    pred = model.predict(frame)
    names = [str(t) for t in model.treatments_]
    U = pred[names].to_numpy(dtype=float)
    n = len(frame)
    best_j = np.argmax(U, axis=1) if n else np.zeros(0, dtype=int)
    best_u = U[np.arange(n), best_j] if n else np.zeros(0)
    net = best_u * float(value) - float(contact_cost)
    positive = net > 0
    order = np.argsort(-net, kind="mergesort")
    order = order[positive[order]]
    limit = len(order)
    stopped = "no customer left with a positive expected net value"
    if budget is not None and contact_cost > 0:
        by_budget = int(math.floor(float(budget) / float(contact_cost) + 1e-9))
        if by_budget < limit:
            limit, stopped = by_budget, "budget"
    if max_contacts is not None and int(max_contacts) < limit:
        limit, stopped = int(max_contacts), "max_contacts"
    chosen = order[:limit]
    incremental = best_u[chosen] * (
        float(value) if objective == "revenue" and model.outcome_ == "binary" else 1.0
    )
    plan = pd.DataFrame(
        {
            "customer_id": frame[id_col].to_numpy(dtype=object)[chosen],
            "treatment": np.array(names, dtype=object)[best_j[chosen]] if n else [],
            "uplift": best_u[chosen],
            "expected_incremental": incremental,
            "net_value": net[chosen],
            "rank": np.arange(1, limit + 1),
        }
    )
    what = "conversions" if objective == "conversions" else "revenue"
    per_treatment = {
        t: {
            "contacts": int((plan.treatment == t).sum()),
            f"expected_incremental_{what}": float(
                plan.expected_incremental[plan.treatment == t].sum()
            ),
        }
        for t in names
    }
    summary = {
        "objective": objective,
        "candidates": n,
        "positive_net_value": int(positive.sum()),
        "contacts": int(limit),
        "spend": float(limit * float(contact_cost)),
        "budget": budget,
        "contact_cost": float(contact_cost),
        "value": float(value),
        f"expected_incremental_{what}": float(incremental.sum()),
        "expected_value": float((best_u[chosen] * float(value)).sum()),
        "expected_net_value": float(net[chosen].sum()),
        "per_treatment": per_treatment,
        "stopped_by": stopped,
        "learner": model.code,
    }
    return plan, summary


# -- files ----------------------------------------------------------------------------------


def _col_value(spec: str, option: str) -> tuple[str, str]:
    if "=" not in str(spec):
        raise DataError(
            f"{option} needs COLUMN=VALUE", value=spec, expected="for example segment=No E-Mail"
        )
    col, _, val = str(spec).partition("=")
    return col.strip(), val.strip()


def _located(err: DataError, file: str, column: str) -> DataError:
    """``err`` with its file and column set (for ``--json``) when its message already names
    them in the user's words."""
    err.file, err.column = file, column
    return err


def read_experiment_file(
    path: str | Path,
    treatment: Sequence[str],
    control: str,
    target: str,
) -> tuple[pd.DataFrame, str, list[str], str]:
    """Read a CSV (or .csv.gz) experiment and check ``--treatment``/``--control``/``--target``.

    ``treatment`` holds ``COL=VALUE`` specs (all on one column), ``control`` one ``COL=VALUE``.
    A column or value that does not exist is a DataError naming the file, the column and the
    values that exist.

    Returns
    -------
    (DataFrame, str, list of str, str)
        The rows, the treatment column, the treatment labels and the control label.
    """
    p = Path(path)
    if not p.exists():
        raise DataError("no such file", file=str(p))
    try:
        frame = pd.read_csv(p, low_memory=False)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, EOFError) as exc:
        raise DataError(f"cannot read the file as CSV: {exc}", file=str(p)) from None
    except OSError as exc:  # a folder, a damaged .gz, no permission
        reason = exc.strerror or str(exc)
        raise DataError(f"cannot read the file: {reason}", file=str(p)) from None
    ccol, cval = _col_value(control, "--control")
    specs = [_col_value(s, "--treatment") for s in treatment]
    name = p.name
    cols = list(map(str, frame.columns))
    for col in [ccol, *(c for c, _ in specs), target]:
        if col not in cols:
            raise _located(
                DataError(f"{name} has no column {col!r}; its columns: {_listing(cols, 40)}"),
                str(p),
                col,
            )
    for col, _ in specs:
        if col != ccol:
            raise DataError(
                f"--treatment {col}=... and --control {ccol}=... name different columns: "
                "treatments and control are values of one column",
                file=str(p),
            )
    g = frame[ccol]
    present = _labels_of(g)
    for role, val in [("--control", cval), *(("--treatment", v) for _, v in specs)]:
        if not any(str(v) == val for v in present):
            raise _located(
                DataError(
                    f"{role} {ccol}={val}: no row of {name} has {ccol} = {val!r}; "
                    f"values: {_listing(present)}"
                ),
                str(p),
                ccol,
            )
    if not _is_numeric(frame[target]):
        _outcome(frame[target], target, name)  # raises the clear error for text targets
    frame[ccol] = g.astype("string").astype(object).where(g.notna(), None)
    return frame, ccol, [v for _, v in specs], cval


# -- the warehouse --------------------------------------------------------------------------


def _attr_keys(warehouse: Any, limit: int = 20, sample: int = 2000) -> dict[str, str]:
    """Scalar keys of ``customers.attributes`` present in most rows: key -> "numeric"|"text"."""
    c = warehouse.table("customers")
    vals = c.filter(c.attributes.notnull()).select("attributes").limit(sample).execute()
    seen: dict[str, list[Any]] = {}
    n = 0
    for raw in vals["attributes"]:
        try:
            obj = json.loads(raw) if isinstance(raw, str) else raw
        except (TypeError, ValueError):
            continue
        if not isinstance(obj, dict):
            continue
        n += 1
        for key, v in obj.items():
            if isinstance(v, str | int | float | bool) and re.fullmatch(r"[A-Za-z0-9_]+", key):
                seen.setdefault(key, []).append(v)
    out: dict[str, str] = {}
    for key, values in seen.items():
        if len(values) < 0.5 * n:
            continue
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        out[key] = "numeric" if numeric else "text"
        if len(out) >= limit:
            break
    return out


def _features_at(
    warehouse: Any, ref: Any, include_sensitive: bool = False
) -> tuple[Any, list[str]]:
    """Per-customer features as of each row's ``ref_ts`` (an Ibis table), computed in the engine.

    ``ref`` has ``customer_id`` and ``ref_ts``. Everything is strictly before ``ref_ts``:
    recency, frequency, monetary, orders in the last 90 days (completed orders), web events in
    the last 30 days, e-mail opens/clicks in the last 90 days; and the customer's tenure,
    country and scalar ``attributes``. Sensitive columns (birth year, gender) only with
    ``include_sensitive`` (as ``age`` and ``gender``).
    """
    import ibis

    from mercato.analytics.rfm import order_amounts

    o = order_amounts(warehouse)
    o = o.filter(o.customer_id.notnull(), o.status == "completed")
    r = ref.select(rid=ref.customer_id, ref_ts=ref.ref_ts)
    jo = r.join(o, r.rid == o.customer_id).filter(o.ts < r.ref_ts)
    recent = jo.ts >= jo.ref_ts - ibis.interval(days=90)
    per_o = jo.group_by("rid").aggregate(
        frequency=jo.count(),
        monetary=jo.amount.sum(),
        last_order=jo.ts.max(),
        orders_90d=recent.ifelse(1, 0).sum(),
    )
    ev = warehouse.table("events")
    ev = ev.filter(ev.customer_id.notnull())
    je = r.join(ev, r.rid == ev.customer_id).filter(
        ev.ts < r.ref_ts, ev.ts >= r.ref_ts - ibis.interval(days=90)
    )
    web = je.event_type.isin(VISIT_EVENTS) & (je.ts >= je.ref_ts - ibis.interval(days=30))
    per_e = je.group_by("rid").aggregate(
        web_events_30d=web.ifelse(1, 0).sum(),
        email_engagement_90d=je.event_type.isin(EMAIL_EVENTS).ifelse(1, 0).sum(),
    )
    c = warehouse.table("customers")
    keys = _attr_keys(warehouse)
    attr_cols: dict[str, Any] = {}
    for key, kind in keys.items():
        value = c.attributes.cast("json")[key]
        attr_cols[f"attr_{key}"] = value.float if kind == "numeric" else value.str
    cust_cols: dict[str, Any] = {
        "cid": c.customer_id,
        "country": c.country,
        "created_at": c.created_at,
    }
    if include_sensitive:
        cust_cols["birth_year"] = c.birth_year
        cust_cols["gender"] = c.gender
    cust = c.select(**cust_cols, **attr_cols)
    base = _attach(r, per_o, "rid")
    base = _attach(base, per_e, "rid")
    base = _attach(base, cust, "cid")
    day = 86400.0
    cols: dict[str, Any] = {
        "customer_id": base.rid,
        "ref_ts": base.ref_ts,
        "recency_days": (base.ref_ts.epoch_seconds() - base.last_order.epoch_seconds()) / day,
        "frequency": base.frequency.fill_null(0),
        "monetary": base.monetary.fill_null(0.0),
        "orders_90d": base.orders_90d.fill_null(0),
        "web_events_30d": base.web_events_30d.fill_null(0),
        "email_engagement_90d": base.email_engagement_90d.fill_null(0),
        "tenure_days": (base.ref_ts.epoch_seconds() - base.created_at.epoch_seconds()) / day,
        "country": base.country,
    }
    if include_sensitive:
        cols["age"] = base.ref_ts.year() - base.birth_year
        cols["gender"] = base.gender
    for name in attr_cols:
        cols[name] = base[name]
    features = [k for k in cols if k not in ("customer_id", "ref_ts")]
    return base.select(**cols), features


def _attach(base: Any, other: Any, key: str) -> Any:
    """``base`` left-joined on ``base.rid == other[key]``, without ``other``'s key column."""
    k = other.rename(_key=key)
    return base.left_join(k, base.rid == k._key).drop("_key")


def _exposures(warehouse: Any, campaign_id: str) -> Any:
    e = warehouse.table("campaign_exposures")
    e = e.filter(e.campaign_id == campaign_id)
    import ibis

    label = ibis.cases(
        (e.group == "control", ibis.literal("control")),
        else_=e.variant.fill_null("treatment"),
    )
    return e.select(customer_id=e.customer_id, ref_ts=e.ts, treatment=label)


def frame_from_warehouse(
    warehouse: Any,
    campaign_id: str,
    outcome: str = "conversion",
    window_days: float = 14.0,
    *,
    include_sensitive: bool = False,
) -> pd.DataFrame:
    """One row per exposed customer of a campaign: group, pre-exposure features and outcome.

    Computed in the engine with Ibis. The group (column ``treatment``) is the exposure's
    ``variant`` for the treatment group (``"treatment"`` without one) and ``"control"``.
    Features are as of the exposure time (only what happened before it; see
    :func:`features_from_warehouse`), except the customers' ``attributes`` (and country),
    which the warehouse keeps as of today: an attribute that differs between treated and
    control customers (as :func:`default_features` tests) is left out of
    ``attrs["features"]``. The outcome, in ``[ts, ts + window_days)``:

    - ``conversion``: 1 if the customer has a completed order or a ``purchase`` event;
    - ``visit``: 1 if the customer has a web event (page view, product view, search, cart,
      checkout, purchase, login);
    - ``spend``: the amount of the completed orders (or, for a customer without orders in the
      window, the value of the ``purchase`` events: a data set loaded as events only).

    Returns
    -------
    DataFrame
        ``customer_id``, ``treatment``, the outcome column (named as ``outcome``), the
        features; ``attrs["notes"]`` and ``attrs["features"]``.

    Raises
    ------
    DataError
        An unknown outcome, or a campaign without exposures (the message lists those there).
    """
    import ibis

    from mercato.analytics.rfm import order_amounts

    if outcome not in ("conversion", "visit", "spend"):
        raise DataError("unknown outcome", value=outcome, expected="conversion, visit or spend")
    if not (math.isfinite(float(window_days)) and float(window_days) > 0):
        raise DataError("window_days must be a positive number of days", value=window_days)
    from mercato.data.consent import objected

    e = _exposures(warehouse, campaign_id)
    n = int(e.count().execute())
    if n == 0:
        allx = warehouse.table("campaign_exposures")
        known = allx.group_by("campaign_id").aggregate(n=allx.count()).execute()
        listing = ", ".join(f"{r.campaign_id} ({int(r.n):,})" for r in known.itertuples())
        raise DataError(
            f"campaign {campaign_id!r} has no exposures in the warehouse",
            hint=f"campaigns with exposures: {listing}"
            if listing
            else "load campaign_exposures first",
        )
    # consent where the data is read: an objector's orders and events are not even aggregated
    # (consent.allowed's anti-join, referenced by several joins below, trips Ibis' compiler)
    no = objected(warehouse, "profiling")
    e = e.filter(~e.customer_id.isin(no.customer_id))
    n_objected = n - int(e.count().execute())
    feats, names = _features_at(warehouse, e, include_sensitive)
    window = ibis.interval(seconds=int(round(float(window_days) * 86400)))
    r = e.select(rid=e.customer_id, ref_ts=e.ref_ts)
    o = order_amounts(warehouse)
    o = o.filter(o.customer_id.notnull(), o.status == "completed")
    jo = r.join(o, r.rid == o.customer_id).filter(o.ts >= r.ref_ts, o.ts < r.ref_ts + window)
    per_o = jo.group_by("rid").aggregate(orders=jo.count(), amount=jo.amount.sum())
    ev = warehouse.table("events")
    ev = ev.filter(ev.customer_id.notnull())
    je = r.join(ev, r.rid == ev.customer_id).filter(ev.ts >= r.ref_ts, ev.ts < r.ref_ts + window)
    is_p = je.event_type == "purchase"
    per_e = je.group_by("rid").aggregate(
        visits=je.event_type.isin(VISIT_EVENTS).ifelse(1, 0).sum(),
        purchases=is_p.ifelse(1, 0).sum(),
        purchase_value=is_p.ifelse(je.value.fill_null(0.0), 0.0).sum(),
    )
    base = e.select(rid=e.customer_id, treatment=e.treatment)
    base = _attach(base, per_o, "rid")
    base = _attach(base, per_e, "rid")
    orders = base.orders.fill_null(0)
    purchases = base.purchases.fill_null(0)
    if outcome == "conversion":
        y = ((orders > 0) | (purchases > 0)).ifelse(1, 0)
    elif outcome == "visit":
        y = (base.visits.fill_null(0) > 0).ifelse(1, 0)
    else:
        y = (orders > 0).ifelse(base.amount.fill_null(0.0), base.purchase_value.fill_null(0.0))
    out = base.select(rid=base.rid, treatment=base.treatment, **{outcome: y})
    out = _attach(out, feats.rename(fid="customer_id").drop("ref_ts"), "fid")
    out = out.rename(customer_id="rid")
    df = out.order_by("customer_id").execute()
    notes: list[str] = []
    if n_objected:
        notes.append(
            f"{n_objected:,} exposed customers who objected to profiling (consents) are left out"
        )
    last = _last_ts(warehouse)
    end = e.ref_ts.max().execute()
    if last is not None and end is not None:
        cutoff = pd.Timestamp(end) + pd.Timedelta(days=float(window_days))
        if cutoff > pd.Timestamp(last):
            notes.append(
                f"the outcome window of the last exposures ends {cutoff:%Y-%m-%d}, after the "
                f"last data ({pd.Timestamp(last):%Y-%m-%d}): their outcomes may be incomplete"
            )
    for col in df.columns:
        if col.startswith("attr_") and df[col].dtype == object:
            df[col] = df[col].astype("string")
    df["treatment"] = df["treatment"].astype(object)
    # customers.attributes hold today's values, not those at the exposure: an attribute that
    # differs between the groups was changed by the campaign (an outcome): leave it out
    attrs = [c for c in names if c.startswith("attr_")]
    if attrs and len(df):
        labels = df["treatment"].to_numpy(dtype=object)
        groups = [g for g in _labels_of(labels) if g != "control"]
        if groups and _eq(labels, "control").any():
            kept, _ = default_features(df[attrs], labels, "control", groups, (), y=df[outcome])
            moved = [c for c in attrs if c not in kept]
            if moved:
                names = [c for c in names if c not in moved]
                notes.append(
                    f"left out of the features: {', '.join(moved)} (customers' attributes are "
                    "today's values, not those at the exposure, and these look like outcomes "
                    "of the campaign, as default_features tests: they differ between treated "
                    "and control customers, or go with the outcome; name them to keep them)"
                )
    df.attrs["notes"] = notes
    df.attrs["features"] = names
    return df


def _last_ts(warehouse: Any) -> Any:
    values = []
    for name in ("orders", "events"):
        t = warehouse.table(name)
        v = t.ts.max().execute()
        if v is not None and not pd.isna(v):
            values.append(pd.Timestamp(v))
    return max(values) if values else None


def features_from_warehouse(
    warehouse: Any,
    as_of: Any = None,
    *,
    include_sensitive: bool = False,
    purpose: str | None = None,
) -> pd.DataFrame:
    """The features of every customer as of ``as_of`` (default: after the last order/event).

    The same features as :func:`frame_from_warehouse` (so a campaign's model can score the
    whole customer base): ``recency_days`` (days since the last completed order; missing
    without one), ``frequency``, ``monetary``, ``orders_90d``, ``web_events_30d``,
    ``email_engagement_90d``, ``tenure_days``, ``country`` and the scalar keys of the
    customers' ``attributes`` (``attr_<key>``).

    Customers who objected to profiling are left out; with ``purpose`` (a contact purpose
    such as ``"email"``), so are those who may not be contacted for it (opt-in purposes need
    a grant). ``attrs["notes"]`` says how many.
    """
    import ibis

    from mercato.data.consent import allowed

    if as_of is None:
        last = _last_ts(warehouse)
        ts = (last if last is not None else pd.Timestamp.now(tz=None)) + pd.Timedelta(seconds=1)
    else:
        ts = pd.Timestamp(as_of)
    c = warehouse.table("customers")
    notes: list[str] = []
    # consent where the data is read: customers left out are not even aggregated (filtered by
    # isin: allowed()'s semi-join itself, nested in the joins below, fails on PostgreSQL)
    ids = c.select("customer_id")
    before = int(ids.count().execute())
    for why, what in (("profiling", "who objected to profiling"), (purpose, "without consent to")):
        if not why:
            continue
        kept, _ = allowed(warehouse, ids, why)
        ids = ids.filter(ids.customer_id.isin(kept.customer_id))
        after = int(ids.count().execute())
        if after < before:
            label = what if why == "profiling" else f"{what} {why}"
            notes.append(f"{before - after:,} customers {label} are not scored")
        before = after
    ref = ids.select(customer_id=ids.customer_id, ref_ts=ibis.literal(ts.to_pydatetime()))
    feats, names = _features_at(warehouse, ref, include_sensitive)
    df = feats.drop("ref_ts").order_by("customer_id").execute()
    for col in df.columns:
        if col.startswith("attr_") and df[col].dtype == object:
            df[col] = df[col].astype("string")
    df.attrs["features"] = names
    df.attrs["as_of"] = ts.isoformat()
    df.attrs["notes"] = notes
    return df


def write_scores(
    warehouse: Any,
    predictions: pd.DataFrame,
    model_version: str,
    *,
    id_col: str = "customer_id",
    scored_at: datetime | None = None,
) -> int:
    """Write the ``customer_uplift`` table (replacing it): one row per customer and treatment.

    ``predictions`` holds ``id_col`` and one column of uplift per treatment (as
    :meth:`TLearner.predict` returns, with the id column added). Columns: ``customer_id``,
    ``treatment``, ``uplift``, ``model`` (``model_version``), ``scored_at`` (UTC, naive).
    Returns the rows written.
    """
    import pyarrow as pa

    if id_col not in predictions.columns:
        raise DataError(f"the predictions have no column {id_col!r}", column=id_col)
    treat_cols = [c for c in predictions.columns if c != id_col]
    if not treat_cols:
        raise DataError("the predictions have no uplift column")
    long = predictions.melt(
        id_vars=[id_col], value_vars=treat_cols, var_name="treatment", value_name="uplift"
    )
    when = scored_at or datetime.now(UTC).replace(tzinfo=None)
    table = pa.table(
        {
            "customer_id": pa.array(long[id_col].astype(str).tolist(), pa.string()),
            "treatment": pa.array(long["treatment"].astype(str).tolist(), pa.string()),
            "uplift": pa.array(long["uplift"].to_numpy(dtype=float), pa.float64()),
            "model": pa.array([str(model_version)] * len(long), pa.string()),
            "scored_at": pa.array([when] * len(long), pa.timestamp("us")),
        }
    )
    return int(warehouse.create_raw_table(SCORES_TABLE, table))


# -- synthetic truth ------------------------------------------------------------------------


def compare_with_truth(
    predictions: pd.DataFrame | pd.Series,
    truth: str | Path | pd.DataFrame,
    *,
    k: float = 0.3,
    uplift_col: str | None = None,
    id_col: str = "customer_id",
) -> dict[str, Any]:
    """Estimated against true per-customer effects (the synthetic shop's ``truth/uplift``).

    Returns the Pearson and Spearman correlations of estimated and true effects, and the
    share of the oracle's incremental conversions captured by targeting the top ``k`` by
    estimated uplift: ``sum(true effect of the top k by estimate) / sum(true effect of the
    top k by true effect)`` (random targeting captures about ``k * sum(all) / oracle``).

    Parameters
    ----------
    predictions : DataFrame or Series
        A Series of uplift indexed by customer id, or a DataFrame with ``id_col`` and an
        uplift column (``uplift_col``, default the only other numeric column).
    truth : path or DataFrame
        A synthetic shop's ``truth`` folder, its ``uplift.parquet``, or a frame with
        ``customer_id`` and ``uplift_true``.
    """
    if isinstance(truth, str | Path):
        p = Path(truth)
        if p.is_dir():
            p = (
                p / "uplift.parquet"
                if (p / "uplift.parquet").exists()
                else p / "truth" / "uplift.parquet"
            )
        if not p.exists():
            raise DataError(
                "no uplift truth here (a synthetic shop's truth/uplift.parquet)", file=str(p)
            )
        tf = pd.read_parquet(p, columns=["customer_id", "uplift_true"])
    else:
        tf = truth
    if isinstance(predictions, pd.Series):
        est = predictions.astype(float)
        est.index = est.index.astype(str)
    else:
        if id_col not in predictions.columns:
            raise DataError(f"the predictions have no column {id_col!r}", column=id_col)
        col = uplift_col
        if col is None:
            numeric = [
                c for c in predictions.columns if c != id_col and _is_numeric(predictions[c])
            ]
            if len(numeric) != 1:
                raise DataError(
                    "name the uplift column (uplift_col=...)",
                    hint=f"numeric columns: {_listing(numeric)}",
                )
            col = numeric[0]
        est = pd.Series(
            predictions[col].to_numpy(dtype=float), index=predictions[id_col].astype(str)
        )
    true = pd.Series(tf["uplift_true"].to_numpy(dtype=float), index=tf["customer_id"].astype(str))
    both = pd.concat([est.rename("est"), true.rename("true")], axis=1, join="inner").dropna()
    if len(both) < 3:
        raise DataError(
            f"only {len(both)} customers are both predicted and in the truth",
            hint="score the campaign's exposed customers",
        )
    from scipy import stats

    e, t = both["est"].to_numpy(), both["true"].to_numpy()
    top = max(1, int(len(both) * k))
    by_est = np.argsort(-e, kind="mergesort")[:top]
    by_true = np.argsort(-t, kind="mergesort")[:top]
    oracle = float(t[by_true].sum())
    captured = float(t[by_est].sum())
    varies = e.std() > 0 and t.std() > 0  # a correlation needs both to vary
    return {
        "customers": int(len(both)),
        "k": k,
        "pearson": float(np.corrcoef(e, t)[0, 1]) if varies else math.nan,
        "spearman": float(stats.spearmanr(e, t).statistic) if varies else math.nan,
        "mean_estimated": float(e.mean()),
        "mean_true": float(t.mean()),
        "oracle_incremental_top_k": oracle,
        "captured_incremental_top_k": captured,
        "oracle_share_captured": captured / oracle if oracle > 0 else math.nan,
        "random_share": (k * float(t.sum())) / oracle if oracle > 0 else math.nan,
    }


def save_model(
    ws: Any,
    warehouse: Any,
    model: _UpliftLearner,
    population: pd.DataFrame,
    *,
    training: pd.DataFrame,
    campaign: str | None,
    outcome: str,
    name: str | None = None,
    validation: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
    documents: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Save a fitted model to the registry and score ``population`` into ``customer_uplift``.

    The registry name defaults to ``uplift-<campaign>-<outcome>``; the manifest records the
    learner, its validation scores, the campaign and the customers of ``training``.
    ``documents`` (JSON) are kept beside the model (the report reads ``evaluation.json`` and
    ``plan.json``). Returns the model reference (``name@vN``), the table and the rows written.
    """
    from mercato.models.registry import ModelRegistry

    reg_name = name or re.sub(r"[^A-Za-z0-9_.-]", "-", f"uplift-{campaign}-{outcome}")[:64]
    mv = ModelRegistry(ws).save(
        model,
        name=reg_name,
        kind="uplift",
        metrics=_plain({"validation": (validation or {}).get(model.code, {})}),
        params=_plain({"learner": model.code, **model.get_params()}),
        data_window={
            "campaign": campaign,
            "outcome": outcome,
            "trained": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        customers=training["customer_id"].astype(str).tolist(),
        notes=list(notes),
        documents=dict(documents or {}),
    )
    ref = f"{reg_name}@v{mv.version}"
    pred = model.predict(population)
    pred.insert(0, "customer_id", population["customer_id"].to_numpy())
    rows = write_scores(warehouse, pred, ref)
    return {"model": ref, "table": SCORES_TABLE, "rows": rows}
