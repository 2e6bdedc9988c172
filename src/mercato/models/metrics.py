"""Evaluation of predictions: what a data scientist checks and what a marketer needs.

Classification (a probability per customer, a 0/1 outcome):

- :func:`classification_report` -- accuracy, precision, recall and F1 at a threshold (0.5 by
  default), ROC-AUC, PR-AUC (average precision), Brier score, log-loss and the base rate; with a
  contact cost and a conversion value, the same numbers at the profit-maximising threshold.
- :func:`lift_table` -- customers ranked by score and cut into ``bins`` groups of equal size
  (deciles): positives, rate, lift over the base rate, cumulative share of the positives reached
  (the gains curve).
- :func:`calibration_curve` -- mean predicted probability against the observed rate per bin.
- :func:`profit_threshold` -- the threshold that maximises ``sum over contacted (value * y -
  cost)``, with the profit curve.

Regression (a predicted amount, such as spend): :func:`regression_report` (MAE, RMSE, R²) and
:func:`decile_table`.

The scores come from scikit-learn where it has them (``roc_auc_score``,
``average_precision_score``, ``brier_score_loss``, ``log_loss``,
``precision_recall_fscore_support``, ``mean_absolute_error``...); the tables are a sort and
cumulative sums. Ties in the ranking are broken by row order (a stable sort), so equal scores
may fall in two neighbouring deciles.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from mercato.errors import DataError

__all__ = [
    "calibration_curve",
    "classification_report",
    "decile_table",
    "lift_table",
    "profit_threshold",
    "regression_report",
    "threshold_metrics",
]

FloatArray = npt.NDArray[np.float64]

#: points kept in the profit curve returned by :func:`profit_threshold`
CURVE_POINTS = 101


def _arrays(y: Any, p: Any, *, binary: bool = True, what: str = "p") -> tuple[FloatArray, ...]:
    yv = np.asarray(y, dtype=float).reshape(-1)
    pv = np.asarray(p, dtype=float).reshape(-1)
    if len(yv) != len(pv):
        raise DataError(f"y and {what} have different lengths ({len(yv):,} and {len(pv):,})")
    if len(yv) == 0:
        raise DataError("no rows to evaluate")
    bad = ~np.isfinite(yv)
    if bad.any():
        raise DataError(
            f"{int(bad.sum()):,} outcomes are missing", row=int(np.flatnonzero(bad)[0]), column="y"
        )
    bad = ~np.isfinite(pv)
    if bad.any():
        raise DataError(
            f"{int(bad.sum()):,} predictions are missing",
            row=int(np.flatnonzero(bad)[0]),
            column=what,
        )
    if binary:
        odd = (yv != 0) & (yv != 1)
        if odd.any():
            first = int(np.flatnonzero(odd)[0])
            raise DataError(
                "the outcome must be 0/1", row=first, column="y", value=yv[first], expected="0 or 1"
            )
        out = (pv < 0) | (pv > 1)
        if out.any():
            first = int(np.flatnonzero(out)[0])
            raise DataError(
                "probabilities must lie in [0, 1]",
                row=first,
                column=what,
                value=pv[first],
                expected="a probability",
            )
    return yv, pv


def _order(p: FloatArray) -> npt.NDArray[np.intp]:
    """Row positions by decreasing score; ties keep the row order."""
    return np.argsort(-p, kind="stable")


def threshold_metrics(y: Any, p: Any, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of "predicted positive when ``p >= threshold``".

    Also the share of customers predicted positive (``contacted_share``). Precision is 0 when
    no customer is predicted positive.

    Examples
    --------
    >>> m = threshold_metrics([1, 0, 1, 0], [0.9, 0.6, 0.4, 0.1])
    >>> m["accuracy"], m["precision"], m["recall"]
    (0.5, 0.5, 0.5)
    """
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    yv, pv = _arrays(y, p)
    pred = (pv >= threshold).astype(float)
    prec, rec, f1, _ = precision_recall_fscore_support(
        yv, pred, average="binary", pos_label=1.0, zero_division=0.0
    )
    return {
        "threshold": float(threshold),
        "accuracy": float(accuracy_score(yv, pred)),
        "precision": float(prec),
        "recall": float(rec),
        "f1": float(f1),
        "contacted_share": float(pred.mean()),
    }


def classification_report(
    y: Any,
    p: Any,
    *,
    threshold: float | None = None,
    contact_cost: float | None = None,
    value: float | None = None,
) -> dict[str, Any]:
    """Every headline number of a probability forecast of a 0/1 outcome.

    Parameters
    ----------
    y : array-like of 0/1
        Outcomes.
    p : array-like of float
        Predicted probabilities of 1.
    threshold : float, optional
        Where accuracy, precision, recall and F1 are measured (default 0.5).
    contact_cost, value : float, optional
        Cost of contacting a customer and value of a conversion: when both are given, the
        report adds ``at_profit_threshold`` (the same numbers at :func:`profit_threshold`'s
        threshold, with the profit).

    Returns
    -------
    dict
        ``rows``, ``positives``, ``base_rate``, ``roc_auc``, ``pr_auc`` (average precision),
        ``brier``, ``log_loss``, ``mean_predicted``, then ``threshold``, ``accuracy``,
        ``precision``, ``recall``, ``f1``, ``contacted_share``; ROC-AUC and PR-AUC are NaN when
        ``y`` holds one class.

    Examples
    --------
    >>> r = classification_report([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> r["roc_auc"], r["accuracy"]
    (0.75, 0.75)
    """
    from sklearn.metrics import (
        average_precision_score,
        brier_score_loss,
        log_loss,
        roc_auc_score,
    )

    yv, pv = _arrays(y, p)
    both = 0 < yv.sum() < len(yv)
    out: dict[str, Any] = {
        "rows": len(yv),
        "positives": int(yv.sum()),
        "base_rate": float(yv.mean()),
        "mean_predicted": float(pv.mean()),
        "roc_auc": float(roc_auc_score(yv, pv)) if both else math.nan,
        "pr_auc": float(average_precision_score(yv, pv)) if both else math.nan,
        "brier": float(brier_score_loss(yv, pv, pos_label=1.0)),
        "log_loss": float(log_loss(yv, np.clip(pv, 1e-15, 1 - 1e-15), labels=[0.0, 1.0])),
    }
    out.update(threshold_metrics(yv, pv, 0.5 if threshold is None else float(threshold)))
    if contact_cost is not None and value is not None:
        best = profit_threshold(yv, pv, contact_cost, value)
        at = threshold_metrics(yv, pv, best["threshold"])
        at.update(
            {
                "profit": best["profit"],
                "contacted": best["contacted"],
                "positives_reached": best["positives_reached"],
                "profit_contact_all": best["profit_contact_all"],
                "break_even_probability": best["break_even_probability"],
            }
        )
        out["at_profit_threshold"] = at
    elif (contact_cost is None) != (value is None):
        raise DataError(
            "the profit threshold needs both the contact cost and the conversion value",
            expected="both contact_cost and value",
        )
    return out


def lift_table(y: Any, p: Any, bins: int = 10) -> pd.DataFrame:
    """Customers ranked by score and cut into ``bins`` equal groups (deciles by default).

    Returns
    -------
    DataFrame
        One row per group, best scores first: ``decile`` (1 = highest scores), ``customers``,
        ``positives``, ``rate`` (positives / customers), ``lift`` (rate / overall rate),
        ``cumulative_customers_share``, ``cumulative_positives``, ``cumulative_gain`` (share of
        all positives found in this and the better groups), ``cumulative_lift`` and the scores'
        ``min_score``, ``mean_score``, ``max_score``.

    Examples
    --------
    >>> t = lift_table([1, 1, 0, 0, 1, 0, 0, 0, 0, 0], [.9, .8, .7, .6, .5, .4, .3, .2, .1, 0],
    ...                bins=5)
    >>> t["positives"].tolist(), t["lift"].round(2).tolist()
    ([2, 0, 1, 0, 0], [3.33, 0.0, 1.67, 0.0, 0.0])
    """
    yv, pv = _arrays(y, p)
    return _ranked_table(yv, pv, bins, binary=True)


def decile_table(y: Any, pred: Any, bins: int = 10) -> pd.DataFrame:
    """Regression by decile of the prediction: mean predicted against mean actual.

    Returns
    -------
    DataFrame
        ``decile`` (1 = highest predictions), ``customers``, ``mean_predicted``,
        ``mean_actual``, ``sum_actual``, ``cumulative_share`` (share of the total actual amount
        in this and the higher deciles), ``min_predicted``, ``max_predicted``.

    Examples
    --------
    >>> decile_table([5, 1, 3, 0], [4.0, 2.0, 3.0, 1.0], bins=2)["mean_actual"].tolist()
    [4.0, 0.5]
    """
    yv, pv = _arrays(y, pred, binary=False, what="pred")
    return _ranked_table(yv, pv, bins, binary=False)


def _ranked_table(yv: FloatArray, pv: FloatArray, bins: int, *, binary: bool) -> pd.DataFrame:
    if int(bins) < 1:
        raise DataError("bins must be at least 1", value=bins)
    bins = min(int(bins), len(yv))
    order = _order(pv)
    groups = np.array_split(order, bins)
    total = float(yv.sum())
    rate = total / len(yv)
    rows: list[dict[str, Any]] = []
    cum_n = 0
    cum_y = 0.0
    for i, g in enumerate(groups, start=1):
        yy, pp = yv[g], pv[g]
        cum_n += len(g)
        cum_y += float(yy.sum())
        if binary:
            r = float(yy.mean())
            rows.append(
                {
                    "decile": i,
                    "customers": len(g),
                    "positives": int(yy.sum()),
                    "rate": r,
                    "lift": r / rate if rate > 0 else math.nan,
                    "cumulative_customers_share": cum_n / len(yv),
                    "cumulative_positives": int(cum_y),
                    "cumulative_gain": cum_y / total if total > 0 else math.nan,
                    "cumulative_lift": (cum_y / cum_n) / rate if rate > 0 else math.nan,
                    "min_score": float(pp.min()),
                    "mean_score": float(pp.mean()),
                    "max_score": float(pp.max()),
                }
            )
        else:
            rows.append(
                {
                    "decile": i,
                    "customers": len(g),
                    "mean_predicted": float(pp.mean()),
                    "mean_actual": float(yy.mean()),
                    "sum_actual": float(yy.sum()),
                    "cumulative_share": cum_y / total if total != 0 else math.nan,
                    "min_predicted": float(pp.min()),
                    "max_predicted": float(pp.max()),
                }
            )
    return pd.DataFrame(rows)


def calibration_curve(y: Any, p: Any, bins: int = 10, strategy: str = "quantile") -> pd.DataFrame:
    """Mean predicted probability against the observed rate, per bin of the predictions.

    Parameters
    ----------
    bins : int, default 10
    strategy : {"quantile", "uniform"}, default "quantile"
        ``quantile``: bins of (about) equal numbers of customers (edges at the quantiles of
        ``p``; marketing probabilities crowd near 0, so equal-width bins would leave most of
        them empty); ``uniform``: equal-width bins on [0, 1] (as scikit-learn's
        ``calibration_curve(strategy="uniform")``). Empty bins are left out.

    Returns
    -------
    DataFrame
        ``bin``, ``customers``, ``mean_predicted``, ``observed_rate``, ``lower``, ``upper``
        (the bin's edges).

    Examples
    --------
    >>> c = calibration_curve([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9], bins=2, strategy="uniform")
    >>> c["observed_rate"].tolist(), c["mean_predicted"].round(2).tolist()
    ([0.0, 1.0], [0.15, 0.8])
    """
    yv, pv = _arrays(y, p)
    if int(bins) < 1:
        raise DataError("bins must be at least 1", value=bins)
    if strategy == "quantile":
        edges = np.quantile(pv, np.linspace(0, 1, int(bins) + 1))
    elif strategy == "uniform":
        edges = np.linspace(0.0, 1.0, int(bins) + 1)
    else:
        raise DataError("unknown strategy", value=strategy, expected="quantile or uniform")
    # scikit-learn's rule: bin i holds edges[i] <= p < edges[i+1]; the last edge is inclusive
    idx = np.searchsorted(edges[1:-1], pv, side="right")
    rows = []
    for b in range(len(edges) - 1):
        m = idx == b
        if not m.any():
            continue
        rows.append(
            {
                "bin": b + 1,
                "customers": int(m.sum()),
                "mean_predicted": float(pv[m].mean()),
                "observed_rate": float(yv[m].mean()),
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
            }
        )
    return pd.DataFrame(rows)


def profit_threshold(y: Any, p: Any, contact_cost: float, value: float) -> dict[str, Any]:
    """The threshold maximising the profit of contacting every customer with ``p >= t``.

    Profit of a threshold = ``sum over contacted customers of (value * y - contact_cost)``:
    a contacted customer who converts brings ``value`` and each contact costs
    ``contact_cost``. Every distinct score is a candidate threshold (customers with equal
    scores are contacted together), as is contacting no one (profit 0).

    Returns
    -------
    dict
        ``threshold``, ``profit``, ``contacted``, ``contacted_share``, ``positives_reached``,
        ``profit_contact_all``, ``break_even_probability`` (``contact_cost / value``: the
        threshold to use on *calibrated* probabilities of new customers, where the outcome is
        not known) and ``curve`` (a DataFrame of up to 101 points: ``threshold``,
        ``contacted``, ``positives``, ``profit``, by share of customers contacted, plus the
        optimum).

    Examples
    --------
    >>> r = profit_threshold([1, 0, 1, 0, 0], [0.9, 0.8, 0.7, 0.2, 0.1], 1.0, 3.0)
    >>> r["threshold"], r["profit"], r["contacted"]
    (0.7, 3.0, 3)
    """
    yv, pv = _arrays(y, p)
    cost, val = float(contact_cost), float(value)
    if not (math.isfinite(cost) and math.isfinite(val)) or cost < 0 or val <= 0:
        raise DataError(
            "the contact cost must be >= 0 and the conversion value > 0",
            value=f"cost {contact_cost}, value {value}",
        )
    order = _order(pv)
    ps, ys = pv[order], yv[order]
    gain = np.cumsum(val * ys - cost)
    positives = np.cumsum(ys)
    # last position of every run of equal scores: a threshold contacts whole runs
    ends = np.flatnonzero(np.r_[ps[1:] != ps[:-1], True])
    profits = gain[ends]
    best_i = int(np.argmax(profits))
    n = len(yv)
    if profits[best_i] > 0:
        end = int(ends[best_i])
        thr, profit, contacted = float(ps[end]), float(profits[best_i]), end + 1
        reached = float(positives[end])
    else:  # contacting no one is best
        thr = float(np.nextafter(ps[0], np.inf))
        profit, contacted, reached = 0.0, 0, 0.0
    picks = np.unique(
        np.r_[np.searchsorted(ends, np.linspace(0, n - 1, CURVE_POINTS).astype(int)), best_i]
    )
    picks = picks[picks < len(ends)]
    curve = pd.DataFrame(
        {
            "threshold": ps[ends[picks]],
            "contacted": ends[picks] + 1,
            "positives": positives[ends[picks]].astype(int),
            "profit": profits[picks],
        }
    )
    return {
        "threshold": thr,
        "profit": profit,
        "contacted": int(contacted),
        "contacted_share": contacted / n,
        "positives_reached": int(reached),
        "profit_contact_all": float(gain[-1]),
        "break_even_probability": cost / val,
        "contact_cost": cost,
        "value": val,
        "curve": curve,
    }


def regression_report(y: Any, pred: Any) -> dict[str, Any]:
    """MAE, RMSE and R² of predicted amounts (scikit-learn's functions), with the means.

    Examples
    --------
    >>> r = regression_report([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
    >>> r["mae"], r["r2"]
    (0.3333333333333333, 0.5)
    """
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    yv, pv = _arrays(y, pred, binary=False, what="pred")
    return {
        "rows": len(yv),
        "mean_actual": float(yv.mean()),
        "mean_predicted": float(pv.mean()),
        "mae": float(mean_absolute_error(yv, pv)),
        "rmse": float(math.sqrt(mean_squared_error(yv, pv))),
        "r2": float(r2_score(yv, pv)) if len(yv) > 1 and np.ptp(yv) > 0 else math.nan,
    }
