"""What drives a model overall: grouped permutation importance and partial dependence.

**Permutation importance** (Breiman; Fisher, Rudin and Dominici's model reliance): shuffle a
feature's values across the rows and measure how much the model's score on held-out rows
drops (ROC-AUC for a classifier, R² for a regression). Shuffling one of two strongly
correlated features leaves the other to carry the signal, so both look unimportant; features
are therefore **grouped** first (hierarchical clustering of the absolute Spearman correlation,
average linkage, a group when |rho| >= 0.7) and a group's columns are shuffled together (the
same permutation of rows, so the group keeps its inner structure and loses only its link to
the target and to the other features).

**Partial dependence** (Friedman): the model's mean prediction when a feature is set to each
value of a grid (quantiles of a number, the commonest levels of a category, and "missing" when
the feature has missing values) for every row of a sample, the other features as they are.

Both read a fitted :class:`~mercato.models.propensity.PropensityModel` (or anything with
``predict_proba``/``predict`` on a DataFrame) and rows it did not train on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mercato.errors import DataError

__all__ = [
    "drivers",
    "feature_groups",
    "partial_dependence",
    "permutation_importance",
    "pool",
    "short_name",
    "top_features",
]

#: features with an absolute Spearman correlation at least this strong share a group
GROUP_CORRELATION = 0.7
MISSING = "missing"


def _numeric(s: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s))


def _as_number(s: pd.Series) -> pd.Series | None:
    """The column as floats: numbers, booleans, and text that reads as numbers (at least 95%
    of its values, as the preprocessing reads it); ``None`` for anything else."""
    if _numeric(s):
        return s.astype(float)
    if pd.api.types.is_datetime64_any_dtype(s):
        return None
    text = s.astype("string").str.strip().replace("", pd.NA)
    number = pd.to_numeric(text, errors="coerce")
    given = int(text.notna().sum())
    if given and number.notna().sum() >= 0.95 * given:
        return number.astype(float)
    return None


def _constant(col: pd.Series, value: Any) -> Any:
    """``value`` for every row of ``col``, in the column's own dtype where it fits."""
    missing = value is None or (isinstance(value, float) and np.isnan(value))
    try:
        return pd.Series(
            pd.array([pd.NA if missing else value] * len(col), dtype=col.dtype), index=col.index
        )
    except (TypeError, ValueError):
        return np.nan if missing else value


def feature_groups(
    X: pd.DataFrame,
    threshold: float = GROUP_CORRELATION,
    *,
    max_rows: int = 5000,
    seed: int = 0,
) -> list[list[str]]:
    """Groups of strongly correlated numeric features (``|Spearman rho| >= threshold``, average
    linkage); every other feature is a group of its own. Order: as the columns."""
    if not 0 < threshold <= 1:
        raise DataError("the grouping threshold must be in (0, 1]", column="threshold")
    cols = [str(c) for c in X.columns]
    sample = X if len(X) <= max_rows else X.sample(max_rows, random_state=seed)
    values: dict[str, pd.Series] = {}
    for c in cols:
        v = _as_number(sample[c])
        if v is not None and v.nunique(dropna=True) > 1:
            values[c] = v
    numeric = list(values)
    label: dict[str, int] = {}
    if len(numeric) >= 2:
        from scipy.cluster.hierarchy import fcluster, linkage
        from scipy.spatial.distance import squareform

        frame = pd.DataFrame(values)
        # at least 30 rows in common: two sparse columns sharing a few rows are not a group
        rho = frame.corr(method="spearman", min_periods=30).abs().fillna(0.0).to_numpy().copy()
        np.fill_diagonal(rho, 1.0)
        dist = np.clip(1.0 - rho, 0.0, None)
        dist = (dist + dist.T) / 2
        tree = linkage(squareform(dist, checks=False), method="average")
        for c, g in zip(
            numeric, fcluster(tree, t=1.0 - threshold, criterion="distance"), strict=True
        ):
            label[c] = int(g)
    groups: dict[Any, list[str]] = {}
    for c in cols:
        key = ("n", label[c]) if c in label else ("c", c)
        groups.setdefault(key, []).append(c)
    return list(groups.values())


def _predict(model: Any, X: pd.DataFrame, classification: bool) -> np.ndarray:
    if classification:
        return np.asarray(model.predict_proba(X)[:, 1], dtype=float)
    return np.asarray(model.predict(X), dtype=float)


def _is_classifier(model: Any) -> bool:
    return getattr(model, "task", "classification") == "classification"


def _score(y: np.ndarray, p: np.ndarray, classification: bool) -> float:
    if classification:
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(y, p))
    from sklearn.metrics import r2_score

    return float(r2_score(y, p))


def permutation_importance(
    model: Any,
    X: pd.DataFrame,
    y: Any,
    *,
    groups: Sequence[Sequence[str]] | str | None = "auto",
    repeats: int = 3,
    max_rows: int = 20_000,
    seed: int = 0,
) -> pd.DataFrame:
    """How much the model's held-out score drops when each group of features is shuffled.

    Parameters
    ----------
    model : fitted model
        A :class:`PropensityModel` (classification: ROC-AUC; regression: R²).
    X, y : held-out rows and their targets (0/1 or amounts)
    groups : "auto", None or list of lists of column names
        ``"auto"``: :func:`feature_groups`; ``None``: every feature alone.
    repeats : int
        Shuffles per group (the mean and standard deviation are reported).
    max_rows : int
        A sample of at most this many rows (stratified by nothing: random, with ``seed``).

    Returns
    -------
    DataFrame
        One row per group, most important first: ``group`` (its name: the features joined
        with ``" + "``), ``features`` (count), ``importance`` (mean drop of the score),
        ``sd``, ``share`` (of the positive drops) and ``metric``; ``attrs["baseline"]`` holds
        the unshuffled score.
    """
    if not isinstance(X, pd.DataFrame):
        raise DataError("X must be a pandas DataFrame of features", value=type(X).__name__)
    yv = np.asarray(y, dtype=float)
    if len(yv) != len(X):
        raise DataError(f"X has {len(X)} rows and y {len(yv)}", column="y")
    if not isinstance(repeats, int) or repeats < 1:
        raise DataError("repeats must be a whole number >= 1", column="repeats", value=repeats)
    classification = _is_classifier(model)
    if classification and len(np.unique(yv)) < 2:
        raise DataError("permutation importance needs held-out rows of both classes", column="y")
    rng = np.random.default_rng(seed)
    if len(X) > max_rows:
        take = np.sort(rng.choice(len(X), max_rows, replace=False))
        X, yv = X.iloc[take], yv[take]
    X = X.reset_index(drop=True)
    if groups == "auto":
        parts = feature_groups(X, seed=seed)
    elif groups is None:
        parts = [[str(c)] for c in X.columns]
    elif isinstance(groups, str):
        raise DataError("groups must be 'auto', None or a list of lists of columns")
    else:
        parts = [[str(c) for c in g] for g in groups]
        missing = [c for g in parts for c in g if c not in X.columns]
        if missing:
            raise DataError(f"no feature {missing[0]!r} in X", column=missing[0])
    baseline = _score(yv, _predict(model, X, classification), classification)
    rows = []
    n = len(X)
    for g in parts:
        drops = []
        for _ in range(repeats):
            order = rng.permutation(n)
            shuffled = X.copy()
            for c in g:  # the column's own dtype kept (nullable booleans, categories...)
                shuffled[c] = pd.Series(X[c].array.take(order), index=X.index)
            drops.append(
                baseline - _score(yv, _predict(model, shuffled, classification), classification)
            )
        rows.append(
            {
                "group": " + ".join(g),
                "features": len(g),
                "importance": float(np.mean(drops)),
                "sd": float(np.std(drops, ddof=1)) if repeats > 1 else float("nan"),
            }
        )
    out = pd.DataFrame(rows).sort_values("importance", ascending=False, kind="stable")
    positive = out["importance"].clip(lower=0).sum()
    out["share"] = out["importance"].clip(lower=0) / positive if positive > 0 else 0.0
    out["metric"] = "roc_auc" if classification else "r2"
    out = out.reset_index(drop=True)
    out.attrs["baseline"] = baseline
    out.attrs["rows"] = n
    return out


def partial_dependence(
    model: Any,
    X: pd.DataFrame,
    features: Sequence[str],
    *,
    grid: int = 20,
    max_rows: int = 2000,
    seed: int = 0,
    grid_from: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The model's mean prediction with each feature set to each grid value, row by row.

    The grid comes from ``grid_from`` (default ``X``): pass the whole data to put the curves
    of several models (the folds of a cross-validation) on the same points.

    Returns
    -------
    DataFrame
        ``feature``, ``kind`` ("numeric" or "category"), ``value`` (the grid value as text for
        a category or "missing"; see ``x``), ``x`` (the number, NaN for a category or
        "missing"), ``prediction`` (mean probability or amount) and ``share`` (for a number:
        of the rows with a value, those at or below this grid point; for a level or
        "missing": of all rows).
    """
    if not isinstance(X, pd.DataFrame):
        raise DataError("X must be a pandas DataFrame of features", value=type(X).__name__)
    if not isinstance(grid, int) or grid < 2:
        raise DataError("the grid needs at least 2 points", column="grid", value=grid)
    classification = _is_classifier(model)
    rng = np.random.default_rng(seed)
    sample = X
    if len(X) > max_rows:
        sample = X.iloc[np.sort(rng.choice(len(X), max_rows, replace=False))]
    sample = sample.reset_index(drop=True)
    out: list[dict[str, Any]] = []
    for f in features:
        if f not in X.columns:
            raise DataError(f"no feature {f!r} in X", column=f)
        col = (X if grid_from is None else grid_from)[f]
        points: list[tuple[str, float, Any, float]] = []  # label, x, value to set, share
        as_number = _as_number(col)
        if as_number is not None and as_number.nunique(dropna=True) > 2:
            v = as_number.to_numpy(dtype=float, na_value=np.nan)
            ok = v[~np.isnan(v)]
            qs: Any = np.unique(np.quantile(ok, np.linspace(0.025, 0.975, grid))) if len(ok) else []
            for q in qs:
                points.append((f"{q:.6g}", float(q), q, float(np.mean(ok <= q))))
            kind = "numeric"
        else:
            counts = col.astype("string").fillna(MISSING).value_counts()
            for level, c in counts.head(grid).items():
                if level == MISSING:
                    continue
                raw = col[col.astype("string") == level].iloc[0]
                points.append((str(level), float("nan"), raw, float(c / len(col))))
            kind = "category"
        gaps = col.isna() if as_number is None or kind == "category" else as_number.isna()
        if gaps.any():
            points.append((MISSING, float("nan"), np.nan, float(gaps.mean())))
        if not points:
            continue
        frames = []
        for _, _, value, _ in points:
            part = sample.copy()
            part[f] = _constant(sample[f], value)
            frames.append(part)
        pred = _predict(model, pd.concat(frames, ignore_index=True), classification)
        means = pred.reshape(len(points), len(sample)).mean(axis=1)
        for (label, x, _, share), m in zip(points, means, strict=True):
            out.append(
                {
                    "feature": f,
                    "kind": kind,
                    "value": label,
                    "x": x,
                    "prediction": float(m),
                    "share": share,
                }
            )
    return pd.DataFrame(out, columns=["feature", "kind", "value", "x", "prediction", "share"])


def short_name(group: str, shown: int = 3) -> str:
    """A group's name for a table: its first ``shown`` features and how many more."""
    parts = str(group).split(" + ")
    if len(parts) <= shown:
        return str(group)
    return " + ".join(parts[:shown]) + f" (+{len(parts) - shown} more)"


def top_features(importance: pd.DataFrame, top: int = 5) -> list[str]:
    """The first feature of each of the ``top`` most important groups (importance > 0)."""
    live = importance[importance["importance"] > 0]
    return [str(g).split(" + ")[0] for g in live["group"].head(top)]


def drivers(
    model: Any,
    X: pd.DataFrame,
    y: Any,
    *,
    groups: Sequence[Sequence[str]] | str | None = "auto",
    top: int = 5,
    repeats: int = 3,
    seed: int = 0,
    grid_from: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Grouped permutation importance on held-out rows and the partial dependence of the
    ``top`` most important features: ``(importance, dependence)``."""
    imp = permutation_importance(model, X, y, groups=groups, repeats=repeats, seed=seed)
    dep = partial_dependence(model, X, top_features(imp, top), seed=seed, grid_from=grid_from)
    return imp, dep


def pool(
    importances: Sequence[pd.DataFrame], dependences: Sequence[pd.DataFrame] = ()
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Several models' results (the folds of a cross-validation) as one: the mean importance
    per group (``sd`` across the models), the mean partial dependence per grid point."""
    if not importances:
        return pd.DataFrame(), pd.DataFrame()
    allimp = pd.concat(importances, ignore_index=True)
    imp = (
        allimp.groupby("group", sort=False)
        .agg(features=("features", "first"), importance=("importance", "mean"),
             sd=("importance", "std"), metric=("metric", "first"))
        .reset_index()
        .sort_values("importance", ascending=False, kind="stable")
        .reset_index(drop=True)
    )  # fmt: skip
    positive = imp["importance"].clip(lower=0).sum()
    imp["share"] = imp["importance"].clip(lower=0) / positive if positive > 0 else 0.0
    imp = imp[["group", "features", "importance", "sd", "share", "metric"]]
    imp.attrs["models"] = len(importances)
    deps = [d for d in dependences if not d.empty]
    if not deps:
        return imp, pd.DataFrame()
    alldep = pd.concat(deps, ignore_index=True)
    dep = (
        alldep.groupby(["feature", "kind", "value"], sort=False, dropna=False)
        .agg(x=("x", "first"), prediction=("prediction", "mean"), share=("share", "first"),
             models=("prediction", "size"))
        .reset_index()
    )  # fmt: skip
    keep = top_features(imp, len(dep["feature"].unique()))
    dep = dep[dep["feature"].isin(keep)]
    return imp, dep.reset_index(drop=True)
