"""Customer lifetime value: BG/NBD, MBG/NBD, Pareto/NBD and Gamma-Gamma, by maximum likelihood.

The models of the "buy till you die" literature, written from the papers:

- :class:`BetaGeoFitter` -- BG/NBD, Fader, Hardie & Lee (2005), "Counting your customers the
  easy way", *Marketing Science* 24(2).
- :class:`ModifiedBetaGeoFitter` -- MBG/NBD, Batislam, Denizel & Filiztekin (2007), *IJRM* 24(3):
  a customer may also drop out right after the first purchase.
- :class:`ParetoNBDFitter` -- Pareto/NBD, Schmittlein, Morrison & Colombo (1987), with the
  likelihood of Fader & Hardie (2005), "A note on deriving the Pareto/NBD model and related
  expressions".
- :class:`GammaGammaFitter` -- spend per transaction, Fader, Hardie & Lee (2005), "RFM and CLV:
  using iso-value curves for customer base analysis", *JMR* 42(4).

Inputs are per-customer summaries (:func:`rfm_summary`, :func:`summary_from_warehouse`):

- ``frequency`` x: repeat purchases, i.e. purchase *days* after the first one (several
  transactions on one day count once, as in the literature);
- ``recency`` t_x: time from the first purchase to the last repeat purchase (0 without one);
- ``T``: time from the first purchase to the end of the calibration period;
- ``monetary_value``: mean value of the repeat purchase days (for Gamma-Gamma).

Time is measured in days / ``time_unit_days`` (default 7: weeks as days/7, not calendar-week
buckets, which move the CDNOW results). Likelihoods are the papers' own (not on rescaled time),
computed in log space and vectorised over customers; identical customers are fitted once with
a weight. Parameters are estimated on the log scale with L-BFGS-B from several starts and
polished with Nelder-Mead when the gradient is not small; standard errors come from the observed
information (numerical Hessian of the negative log-likelihood in the natural parameters).

Models save to JSON (:meth:`BetaGeoFitter.to_dict`, :func:`model_from_dict`): never pickle.
"""

from __future__ import annotations

import abc
import contextlib
import inspect
import math
import warnings
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import optimize, special

from mercato.analytics.base import AnalysisResult
from mercato.errors import DataError, NotFittedError
from mercato.models._common import ParamsMixin
from mercato.models._common import fingerprint as _fingerprint
from mercato.models._common import plain as _plain

__all__ = [
    "BetaGeoFitter",
    "GammaGammaFitter",
    "discounted_expected_purchases",
    "ModifiedBetaGeoFitter",
    "ParetoNBDFitter",
    "holdout_evaluation",
    "model_from_dict",
    "purchase_days",
    "rfm_summary",
    "summary_from_warehouse",
    "tracking_cumulative",
]

FloatArray = npt.NDArray[np.float64]
Data = dict[str, Any]  # the columns a likelihood reads (and lookups it caches)

#: the version of the JSON layout written by ``to_dict``
FORMAT = "mercato.clv/1"
#: days in an average month (CLV sums expected purchases month by month)
DAYS_PER_MONTH = 365.25 / 12
_BIG = 1e20  # objective value where the likelihood is not finite (keeps the optimiser finite)
_LOG_BOUND = 12.0  # parameters are searched in [exp(-12), exp(12)]
_SEARCH_ROWS = 50_000  # above this many distinct rows, starts are tried on a random subset
_COLUMNS = ("x", "tx", "T", "m")  # the data columns of the likelihoods (other keys: caches)


# -- summaries -----------------------------------------------------------------------------


def _day(value: Any, name: str) -> pd.Timestamp:
    """A date argument as a naive timestamp at midnight."""
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise DataError(f"{name} is not a date", value=value, expected="a date") from None
    if ts is pd.NaT or pd.isna(ts):
        raise DataError(f"{name} is not a date", value=value, expected="a date")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.normalize()


def _dates(values: pd.Series, column: str, date_format: str | None) -> pd.Series:
    """A column of dates, normalised to days (time of day dropped), or DataError."""
    n = len(values)
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        if (
            pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
        ) and not date_format:
            raise DataError(
                "dates are numbers: pass date_format (for example '%Y%m%d')",
                column=column,
                value=values.iloc[0] if n else None,
                expected="dates",
            )
        src = values.astype(str).where(values.notna()) if date_format else values
        # ISO 8601 text with or without a time of day; other spellings one by one
        parsed = pd.to_datetime(src, errors="coerce", format=date_format or "ISO8601")
        retry = (parsed.isna() & values.notna()).to_numpy()
        if not date_format and retry.any():
            parsed = parsed.copy()
            parsed[retry] = pd.to_datetime(src[retry], errors="coerce", format="mixed")
    bad = parsed.isna().to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{int(bad.sum()):,} of {n:,} rows have no valid date",
            column=column,
            row=first + 1,
            value=values.iloc[first],
            expected="a date" + (f" in the format {date_format!r}" if date_format else ""),
        )
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.dt.normalize()


def rfm_summary(
    transactions: pd.DataFrame,
    *,
    customer_col: str,
    date_col: str,
    value_col: str | None = None,
    calibration_end: Any,
    observation_end: Any = None,
    time_unit_days: float = 7.0,
    date_format: str | None = None,
) -> pd.DataFrame:
    """Per-customer frequency, recency, T (and spend, holdout counts) from transactions.

    Transactions of one customer on one day are one purchase (their values are added). The
    calibration period ends with the day ``calibration_end`` (included); customers whose first
    purchase comes later are left out (counted in ``result.attrs["notes"]``). Times are in
    days / ``time_unit_days``.

    Parameters
    ----------
    transactions : DataFrame
        One row per transaction.
    customer_col, date_col : str
        Columns of the customer id and the date (datetime-like or text; numbers such as
        ``19970101`` need ``date_format``).
    value_col : str, optional
        Column of the transaction value; gives ``monetary_value``.
    calibration_end : date-like
        Last day of the calibration period.
    observation_end : date-like, optional
        Last day of the holdout period; adds ``frequency_holdout`` and ``duration_holdout``.
    time_unit_days : float, default 7
        Length of the time unit in days (7: weeks as days/7).
    date_format : str, optional
        ``strftime`` format of the dates, passed to :func:`pandas.to_datetime`.

    Returns
    -------
    DataFrame
        Indexed by customer id (sorted), with columns ``frequency`` (repeat purchase days),
        ``recency`` (first to last purchase), ``T`` (first purchase to calibration end),
        ``monetary_value`` (mean value of the repeat purchase days, 0 without one; only with
        ``value_col``) and, with ``observation_end``, ``frequency_holdout`` (purchase days after
        the calibration end) and ``duration_holdout`` (length of the holdout period).

    Raises
    ------
    DataError
        A missing column, no rows, a missing customer id, a bad date or value, or an
        ``observation_end`` not after ``calibration_end``.

    Examples
    --------
    >>> tx = pd.DataFrame({"c": ["a", "a", "a", "b"],
    ...     "d": ["2024-01-01", "2024-01-01", "2024-01-15", "2024-01-08"],
    ...     "v": [5.0, 5.0, 20.0, 7.0]})
    >>> s = rfm_summary(tx, customer_col="c", date_col="d", value_col="v",
    ...     calibration_end="2024-01-29")
    >>> s.loc["a"].tolist()
    [1.0, 2.0, 4.0, 20.0]
    """
    if not isinstance(transactions, pd.DataFrame):
        raise DataError("transactions must be a pandas DataFrame", value=type(transactions))
    cols = [customer_col, date_col] + ([value_col] if value_col else [])
    for col in cols:
        if col not in transactions.columns:
            raise DataError(
                "no such column in the transactions",
                column=col,
                hint=f"its columns: {', '.join(map(str, transactions.columns))}",
            )
    if not (math.isfinite(time_unit_days) and time_unit_days > 0):
        raise DataError(
            "time_unit_days must be a positive number of days",
            value=time_unit_days,
            expected="> 0",
        )
    n = len(transactions)
    if n == 0:
        raise DataError("no transactions: a summary needs at least one purchase")
    ids = transactions[customer_col]
    null = ids.isna().to_numpy()
    if null.any():
        raise DataError(
            f"{int(null.sum()):,} of {n:,} rows have no customer id",
            column=customer_col,
            row=int(np.flatnonzero(null)[0]) + 1,
            hint="drop guest transactions first; they cannot be attributed to a customer",
        )
    day = _dates(transactions[date_col], date_col, date_format)
    cal = _day(calibration_end, "calibration_end")
    obs = None if observation_end is None else _day(observation_end, "observation_end")
    if obs is not None and obs <= cal:
        raise DataError(
            "observation_end must be after calibration_end",
            value=str(obs.date()),
            expected=f"a day after {cal.date()}",
        )
    end = obs if obs is not None else cal
    frame = pd.DataFrame({"customer": ids.to_numpy(), "day": day.to_numpy()})
    if value_col:
        vals = pd.to_numeric(transactions[value_col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(vals)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{int(bad.sum()):,} of {n:,} rows have no valid value",
                column=value_col,
                row=first + 1,
                value=transactions[value_col].iloc[first],
                expected="a finite number",
            )
        frame["value"] = vals
    else:
        frame["value"] = 0.0
    notes: list[str] = []
    after = int((frame["day"] > end).sum())
    if after:
        notes.append(f"{after:,} transactions after {end.date()} are not used")
    frame = frame[frame["day"] <= end]
    same_day = len(frame)
    daily = frame.groupby(["customer", "day"], sort=True, observed=True)["value"].sum()
    daily = daily.reset_index()
    same_day -= len(daily)
    if same_day:
        notes.append(
            f"{same_day:,} transactions on a day the customer already bought on were merged "
            "into that day's purchase"
        )
    first_day = daily.groupby("customer", sort=False)["day"].transform("min")
    late = first_day > cal
    n_late = int(daily.loc[late, "customer"].nunique())
    if n_late:
        notes.append(
            f"{n_late:,} customers whose first purchase is after the calibration end "
            f"({cal.date()}) are left out"
        )
    daily = daily[~late]
    first_day = first_day[~late]
    if daily.empty:
        raise DataError(
            f"no purchase on or before the calibration end ({cal.date()})",
            column=date_col,
            hint="choose a later calibration_end",
        )
    unit = pd.Timedelta(days=time_unit_days)
    in_cal = (daily["day"] <= cal).to_numpy()
    calib = daily[in_cal]
    g = calib.groupby("customer", sort=True)
    n_days = g.size()
    first = g["day"].min()
    last = g["day"].max()
    freq = (n_days - 1).astype(np.int64)
    out = pd.DataFrame(index=n_days.index)
    out["frequency"] = freq.astype(float)
    out["recency"] = ((last - first) / unit).astype(float)
    out["T"] = ((cal - first) / unit).astype(float)
    if value_col:
        repeat = calib["value"].where(calib["day"] != first_day[in_cal], 0.0)
        total = repeat.groupby(calib["customer"], sort=True).sum().reindex(out.index)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(freq.to_numpy() > 0, total.to_numpy() / freq.to_numpy(), 0.0)
        out["monetary_value"] = mean
    if obs is not None:
        hold = daily.loc[~in_cal, "customer"]
        counts = hold.groupby(hold, sort=False).size().reindex(out.index, fill_value=0)
        out["frequency_holdout"] = counts.to_numpy(dtype=float)
        out["duration_holdout"] = float((obs - cal) / unit)
    out.index.name = customer_col
    out.attrs["notes"] = notes
    return out


def purchase_days(warehouse: Any, end: Any) -> tuple[pd.DataFrame, list[str]]:
    """Each known customer's completed purchases per day up to ``end`` (included), from the engine.

    Order amounts (sum of quantity x unit price of the order's lines) are added per customer
    and day in the engine; guest orders (no customer id), orders that are not ``completed``
    (cancellations, returns) and customers who objected to profiling
    (:func:`mercato.data.consent.allowed`) are left out, and the notes say how many.

    Returns
    -------
    (DataFrame, list of str)
        Columns ``customer_id``, ``day``, ``value`` and ``orders``; notes on what was left out.

    Raises
    ------
    DataError
        No orders, or no completed order of a known customer up to ``end``.
    """
    import ibis

    from mercato.analytics.rfm import order_amounts
    from mercato.data.consent import allowed

    end = _day(end, "end")
    limit = ibis.literal((end + pd.Timedelta(days=1)).to_pydatetime())
    o = order_amounts(warehouse)
    stats = (
        o.aggregate(
            orders=o.count(),
            guest=(o.customer_id.isnull() & (o.status == "completed")).ifelse(1, 0).sum(),
            other=(o.status != "completed").ifelse(1, 0).sum(),
            later=(o.ts >= limit).ifelse(1, 0).sum(),
        )
        .execute()
        .iloc[0]
    )
    counts = {key: _count(stats[key]) for key in ("orders", "guest", "other", "later")}
    if counts["orders"] == 0:
        raise DataError(
            "no orders in the warehouse: CLV needs purchases",
            hint="load orders and order_lines (mercato ingest, datasets load or synth --load)",
        )
    o, objected = allowed(warehouse, o, "profiling")
    n_objected = _count(objected.execute())
    keep = o.filter(o.customer_id.notnull(), o.status == "completed", o.ts < limit)
    per = keep.group_by(["customer_id", keep.ts.date().name("day")]).aggregate(
        value=keep.amount.sum(), orders=keep.count()
    )
    df = per.execute()
    if df.empty:
        raise DataError(
            f"no completed order of a known customer on or before {end.date()}",
            hint="load orders and order_lines (mercato ingest, datasets load or synth --load)",
        )
    notes: list[str] = []
    if n_objected:
        notes.append(f"{n_objected:,} customers who objected to profiling (consents) are left out")
    if counts["guest"]:
        notes.append(f"{counts['guest']:,} guest orders without a customer id are left out")
    if counts["other"]:
        notes.append(
            f"{counts['other']:,} orders that are not completed (cancellations, returns) "
            "are not purchases here"
        )
    if counts["later"]:
        notes.append(f"{counts['later']:,} orders after {end.date()} are not used")
    same_day = int(df["orders"].sum()) - len(df)
    if same_day:
        notes.append(
            f"{same_day:,} orders on a day the customer already ordered on were merged into "
            "that day's purchase (purchases are counted by day)"
        )
    return df, notes


def summary_from_warehouse(
    warehouse: Any,
    calibration_end: Any,
    observation_end: Any = None,
    *,
    time_unit_days: float = 7.0,
) -> tuple[pd.DataFrame, list[str]]:
    """The :func:`rfm_summary` of the warehouse's completed orders, and notes on what was left out.

    Order amounts (sum of quantity x unit price of the order's lines) are added per customer
    and day in the engine; guest orders (no customer id) and orders that are not
    ``completed`` (cancellations, returns) are not purchases here.

    Parameters
    ----------
    warehouse : Warehouse
        The warehouse holding ``orders`` and ``order_lines``.
    calibration_end, observation_end : date-like
        As in :func:`rfm_summary`.
    time_unit_days : float, default 7
        Length of the time unit in days.

    Returns
    -------
    (DataFrame, list of str)
        The summary (index ``customer_id``) and notes that say what was excluded.

    Raises
    ------
    DataError
        No completed order of a known customer up to the end of the period.

    Examples
    --------
    >>> from mercato.data.warehouse import Warehouse
    >>> from mercato.data.ingest import ingest_frame
    >>> wh = Warehouse("duckdb://:memory:")
    >>> _ = ingest_frame(wh, "orders", pd.DataFrame({"order_id": ["1", "2", "3"],
    ...     "customer_id": ["a", "a", None], "ts": ["2024-01-01", "2024-01-15", "2024-01-02"],
    ...     "status": "completed"}))
    >>> _ = ingest_frame(wh, "order_lines", pd.DataFrame({"order_id": ["1", "2", "3"],
    ...     "line_no": 1, "product_id": "p", "quantity": 1, "unit_price": [5.0, 9.0, 1.0]}))
    >>> s, notes = summary_from_warehouse(wh, "2024-01-29")
    >>> s.loc["a", ["frequency", "recency", "T", "monetary_value"]].tolist()
    [1.0, 2.0, 4.0, 9.0]
    """
    cal = _day(calibration_end, "calibration_end")
    obs = None if observation_end is None else _day(observation_end, "observation_end")
    df, notes = purchase_days(warehouse, obs if obs is not None else cal)
    summary = rfm_summary(
        df,
        customer_col="customer_id",
        date_col="day",
        value_col="value",
        calibration_end=cal,
        observation_end=obs,
        time_unit_days=time_unit_days,
    )
    notes.extend(n for n in summary.attrs.get("notes", []) if "merged" not in n)
    nonpos = int(((summary["frequency"] > 0) & (summary["monetary_value"] <= 0)).sum())
    if nonpos:
        notes.append(
            f"{nonpos:,} repeat buyers have a mean repeat spend of 0 or less: Gamma-Gamma "
            "cannot use them"
        )
    summary.attrs["notes"] = notes
    return summary, notes


def _count(value: Any) -> int:
    """An aggregate count from the engine (NULL/NaN on no rows) as an int."""
    return 0 if value is None or pd.isna(value) else int(value)


# -- numerics ------------------------------------------------------------------------------


def _log1mexp(d: FloatArray) -> FloatArray:
    """log(1 - exp(d)) for d <= 0 (-inf at d >= 0), accurate near 0 and far below."""
    d = np.minimum(d, 0.0)
    with np.errstate(divide="ignore"):
        return np.where(d < -math.log(2.0), np.log1p(-np.exp(d)), np.log(-np.expm1(d)))


def _log_hyp2f1_1(b: FloatArray, c: FloatArray, z: FloatArray) -> FloatArray:
    """log 2F1(1, b; c; z) for b, c > 0 and 0 <= z < 1 (all series terms are positive).

    scipy's ``hyp2f1`` first; where it does not return a finite value >= 1, the series is
    summed directly (every term positive, so no cancellation).
    """
    b, c, z = np.broadcast_arrays(
        np.asarray(b, dtype=float), np.asarray(c, dtype=float), np.asarray(z, dtype=float)
    )
    with np.errstate(all="ignore"):
        val = np.asarray(special.hyp2f1(1.0, b, c, z), dtype=float)
    bad = ~np.isfinite(val) | (val < 1.0 - 1e-12)
    if bad.any():
        val = val.copy()
        val[bad] = _series_hyp2f1_1(b[bad], c[bad], z[bad])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(val)


def _series_hyp2f1_1(
    b: FloatArray, c: FloatArray, z: FloatArray, max_terms: int = 200_000
) -> FloatArray:
    total = np.ones_like(z)
    term = np.ones_like(z)
    active = np.ones(z.shape, dtype=bool)
    for n in range(max_terms):
        term = term * (b + n) / (c + n) * z
        total = total + term
        if n % 64 == 63:
            active = term > 1e-17 * total
            if not active.any():
                return total
    total[active] = np.nan  # did not converge: the caller sees a non-finite likelihood
    return total


def _pow_hyp2f1(
    z: FloatArray,
    c: FloatArray,
    euler: tuple[Any, Any, Any],
    direct: tuple[Any, Any, Any],
) -> FloatArray:
    """(1-z)**P * 2F1(A, B; C; z), by its Euler transform, else directly; NaN (warned) if neither.

    ``euler`` and ``direct`` are (A, B, P) of two equal forms of the same quantity.
    """
    z, c = np.broadcast_arrays(np.asarray(z, dtype=float), np.asarray(c, dtype=float))
    log1mz = np.log1p(-z)
    with np.errstate(all="ignore"):
        a1, b1, p1 = euler
        val = np.exp(p1 * log1mz) * special.hyp2f1(a1, b1, c, z)
        val = np.asarray(np.broadcast_to(val, z.shape), dtype=float).copy()
        bad = ~np.isfinite(val)
        if bad.any():
            a2, b2, p2 = (np.broadcast_to(np.asarray(v, dtype=float), z.shape) for v in direct)
            val[bad] = np.exp(p2[bad] * log1mz[bad]) * special.hyp2f1(
                a2[bad], b2[bad], c[bad], z[bad]
            )
    if not np.isfinite(val).all():
        warnings.warn(
            "the hypergeometric function did not converge for "
            f"{int((~np.isfinite(val)).sum()):,} customers; their prediction is NaN",
            RuntimeWarning,
            stacklevel=3,
        )
    return val


class _NoInformation(Exception):
    """The observed information does not give standard errors (optimum at a bound)."""


def _one_blas_thread() -> Any:
    """BLAS limited to one thread: L-BFGS-B's tiny matrix products are ~100x slower with
    OpenBLAS threads than without (measured: 3 ms vs 30 us per iteration)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(1, "blas")


def _hessian(
    fun: Callable[[FloatArray], float],
    grad: Callable[[FloatArray], FloatArray] | None,
    x: FloatArray,
) -> FloatArray:
    """Central-difference Hessian at ``x`` (of the gradient when known, else of ``fun``)."""
    k = len(x)
    h = 1e-4 * np.maximum(np.abs(x), 1e-3)
    hess = np.empty((k, k))
    if grad is not None:
        for j in range(k):
            e = np.zeros(k)
            e[j] = h[j]
            hess[:, j] = (grad(x + e) - grad(x - e)) / (2 * h[j])
        return (hess + hess.T) / 2
    f0 = fun(x)
    for i in range(k):
        ei = np.zeros(k)
        ei[i] = h[i]
        hess[i, i] = (fun(x + ei) - 2 * f0 + fun(x - ei)) / h[i] ** 2
        for j in range(i + 1, k):
            ej = np.zeros(k)
            ej[j] = h[j]
            hess[i, j] = hess[j, i] = (
                fun(x + ei + ej) - fun(x + ei - ej) - fun(x - ei + ej) + fun(x - ei - ej)
            ) / (4 * h[i] * h[j])
    return hess


# -- likelihoods (per customer, natural parameters) -----------------------------------------


def _distinct_x(data: Data) -> tuple[FloatArray, Any]:
    """The distinct frequencies and each row's position among them (cached in ``data``).

    Every special function of the BG/NBD and Gamma-Gamma likelihoods that depends on the
    frequency only is evaluated once per distinct value: a few hundred instead of millions.
    """
    if "xu" not in data:
        xu, xi = np.unique(data["x"], return_inverse=True)
        data["xu"], data["xi"] = xu, np.ravel(xi)
    return data["xu"], data["xi"]


def _geo_parts(params: FloatArray, data: Data, modified: bool) -> dict[str, Any]:
    """BG/NBD (MBG/NBD) log-likelihood pieces: L = exp(base) (exp(t1) + exp(t2)).

    BG/NBD (FHL 2005, eq. 6): t1 = log B(a, b+x)/B(a, b) - (r+x) log(alpha+T) and, for x > 0,
    t2 = log B(a+1, b+x-1)/B(a, b) - (r+x) log(alpha+t_x). MBG/NBD: b+x+1 and b+x, and t2
    for every customer. base = log Gamma(r+x)/Gamma(r) + r log alpha.
    """
    r, alpha, a, b = params
    x, tx, T = data["x"], data["tx"], data["T"]
    xu, xi = _distinct_x(data)
    k1, k2 = (1.0, 0.0) if modified else (0.0, -1.0)
    has2 = np.ones(xu.shape, dtype=bool) if modified else xu > 0
    lb_ab = special.betaln(a, b)
    b2 = np.where(has2, b + xu + k2, 1.0)
    c1 = special.betaln(a, b + xu + k1) - lb_ab
    c2 = np.where(has2, special.betaln(a + 1, b2) - lb_ab, -np.inf)
    base = special.gammaln(r + xu) - special.gammaln(r) + r * math.log(alpha)
    rx = r + x
    log_t = np.log(alpha + T)
    log_tx = np.log(alpha + tx)
    t1 = c1[xi] - rx * log_t
    t2 = c2[xi] - rx * log_tx
    lse = np.logaddexp(t1, t2)
    return {
        "ll": base[xi] + lse,
        "t1": t1,
        "t2": t2,
        "lse": lse,
        "b2": b2,
        "xu": xu,
        "xi": xi,
        "log_t": log_t,
        "log_tx": log_tx,
        "k1": k1,
    }


def _geo_ll(params: FloatArray, data: Data, modified: bool) -> FloatArray:
    ll: FloatArray = _geo_parts(params, data, modified)["ll"]
    return ll


def _geo_ll_grad(params: FloatArray, data: Data, modified: bool) -> tuple[FloatArray, FloatArray]:
    """Per-customer log-likelihood and its gradient (4 x n) in the natural parameters."""
    r, alpha, a, b = params
    x, tx, T = data["x"], data["tx"], data["T"]
    pt = _geo_parts(params, data, modified)
    xu, xi, b2, k1 = pt["xu"], pt["xi"], pt["b2"], pt["k1"]
    w1 = np.exp(pt["t1"] - pt["lse"])
    w2 = np.exp(pt["t2"] - pt["lse"])
    psi = special.digamma
    psi_ab = psi(a + b)
    psi_abx = psi(a + b + xu + k1)
    psi_a1b2 = psi(a + 1 + b2)
    rx = r + x
    d_r = (psi(r + xu) - psi(r) + math.log(alpha))[xi] - w1 * pt["log_t"] - w2 * pt["log_tx"]
    d_alpha = r / alpha - rx * (w1 / (alpha + T) + w2 / (alpha + tx))
    d_a = w1 * (psi_ab - psi_abx)[xi] + w2 * (1.0 / a - psi_a1b2 + psi_ab)[xi]
    d_b = (
        w1 * (psi(b + xu + k1) - psi_abx - psi(b) + psi_ab)[xi]
        + w2 * (psi(b2) - psi_a1b2 - psi(b) + psi_ab)[xi]
    )
    return pt["ll"], np.vstack([d_r, d_alpha, d_a, d_b])


def _pareto_terms(
    params: FloatArray, x: FloatArray, tx: FloatArray, T: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Pareto/NBD log-likelihood pieces (Fader & Hardie 2005 note, eq. 22), in log space.

    L = exp(base) * [exp(t1) + exp(t2)] with t2 = log(s / (r+s+x)) + log A0. A0 is the
    difference of two hypergeometric terms; each is written with the Euler transform as
    2F1(1, .; .; z) (positive series) and taken with the larger of alpha and beta.
    """
    r, alpha, s, beta = params
    rx = r + x
    big_a = rx + s
    if alpha >= beta:

        def log_term(y: FloatArray) -> FloatArray:
            z = (alpha - beta) / (alpha + y)
            return -s * np.log(beta + y) - rx * np.log(alpha + y) + _log_hyp2f1_1(rx, big_a + 1, z)

    else:

        def log_term(y: FloatArray) -> FloatArray:
            z = (beta - alpha) / (beta + y)
            return (
                (1 - rx) * np.log(alpha + y)
                - (s + 1) * np.log(beta + y)
                + _log_hyp2f1_1(s + 1, big_a + 1, z)
            )

    l_tx = log_term(tx)
    l_T = log_term(T)
    log_a0 = l_tx + _log1mexp(l_T - l_tx)
    t1 = -rx * np.log(alpha + T) - s * np.log(beta + T)
    t2 = math.log(s) - np.log(big_a) + log_a0
    base = special.gammaln(rx) - special.gammaln(r) + r * math.log(alpha) + s * math.log(beta)
    return base, t1, t2


def _pareto_ll(params: FloatArray, data: Data) -> FloatArray:
    base, t1, t2 = _pareto_terms(params, data["x"], data["tx"], data["T"])
    return base + np.logaddexp(t1, t2)


def _gg_ll_grad(
    params: FloatArray, data: Data, grad: bool = True
) -> tuple[FloatArray, FloatArray | None]:
    """Gamma-Gamma log density of the mean spend m of x transactions, and its gradient.

    log f = log Gamma(px+q) - log Gamma(px) - log Gamma(q) + q log v + px log x
    + (px-1) log m - (px+q) log(v + x m)   (FHL 2005 "RFM and CLV", with the Jacobian of m).
    """
    p, q, v = params
    x, m = data["x"], data["m"]
    xu, xi = _distinct_x(data)
    if "log_m" not in data:
        data["log_m"] = np.log(m)
    log_m = data["log_m"]
    pxu = p * xu
    px = p * x
    log_vm = np.log(v + x * m)
    base = special.gammaln(pxu + q) - special.gammaln(pxu) + pxu * np.log(xu)
    ll = base[xi] - special.gammaln(q) + q * math.log(v) + (px - 1) * log_m - (px + q) * log_vm
    if not grad:
        return ll, None
    psi = special.digamma
    psi_pq = psi(pxu + q)
    d_p = x * ((psi_pq - psi(pxu) + np.log(xu))[xi] + log_m - log_vm)
    d_q = psi_pq[xi] - psi(q) + math.log(v) - log_vm
    d_v = q / v - (px + q) / (v + x * m)
    return ll, np.vstack([d_p, d_q, d_v])


def _unique_rows(cols: list[FloatArray]) -> tuple[list[FloatArray], Any]:
    """The distinct rows of equal-length columns (sorted) and each row's position among them."""
    order = np.lexsort(cols[::-1])
    ordered = [c[order] for c in cols]
    new = np.zeros(len(order), dtype=bool)
    new[:1] = True
    for c in ordered:
        new[1:] |= c[1:] != c[:-1]
    inverse = np.empty(len(order), dtype=np.intp)
    inverse[order] = np.cumsum(new) - 1
    return [c[new] for c in ordered], inverse


def _dedupe(cols: list[FloatArray], w: FloatArray) -> tuple[list[FloatArray], FloatArray]:
    """Identical rows merged, their weights added (rows sorted by the columns)."""
    uniq, inverse = _unique_rows(cols)
    weights = np.bincount(inverse, weights=w, minlength=len(uniq[0]))
    return uniq, np.asarray(weights, dtype=float)


# -- inputs --------------------------------------------------------------------------------


def _float_array(values: Any, name: str) -> FloatArray:
    if isinstance(values, pd.Series | pd.Index):
        values = values.to_numpy()
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise DataError("not numbers", column=name, expected="numbers") from None


def _first_bad(mask: Any, name: str, what: str, n: int, expected: str) -> DataError:
    flat = np.asarray(mask).ravel()
    first = int(np.flatnonzero(flat)[0]) if flat.any() else 0
    return DataError(
        f"{int(flat.sum()):,} of {n:,} rows {what}",
        column=name,
        row=first + 1,
        expected=expected,
    )


def _check_rft(x: FloatArray, tx: FloatArray, T: FloatArray) -> None:
    """Frequency/recency/T must describe customers: DataError naming the column otherwise."""
    n = int(x.size)
    if n == 0:
        raise DataError("no customers: the summary is empty", column="frequency")
    for name, arr in (("frequency", x), ("recency", tx), ("T", T)):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise _first_bad(bad, name, "are not finite numbers", n, "a finite number")
        if (arr < 0).any():
            raise _first_bad(arr < 0, name, "are negative", n, ">= 0")
    if (x != np.round(x)).any():
        raise _first_bad(x != np.round(x), "frequency", "are not whole numbers", n, "a count")
    over = tx > T * (1 + 1e-12) + 1e-12
    if over.any():
        raise _first_bad(over, "recency", "have recency greater than T", n, "recency <= T")
    stray = (x == 0) & (tx > 0)
    if stray.any():
        raise _first_bad(
            stray,
            "recency",
            "have frequency 0 but recency > 0 (recency is the time of the last repeat purchase)",
            n,
            "recency 0 when frequency is 0",
        )


def _columns(frame: pd.DataFrame, names: Iterable[str]) -> list[FloatArray]:
    out = []
    for name in names:
        if name not in frame.columns:
            raise DataError(
                "the summary has no such column",
                column=name,
                hint="build it with rfm_summary() or summary_from_warehouse()",
            )
        out.append(_float_array(frame[name], name))
    return out


def _horizon(t: Any, name: str = "t") -> FloatArray:
    arr = _float_array(t, name)
    bad = ~np.isfinite(arr) | (arr <= 0)
    if bad.any():
        raise DataError(
            f"the horizon must be a positive time ({int(bad.sum()):,} values are not)",
            column=name,
            value=np.ravel(arr)[np.flatnonzero(np.ravel(bad))[0]],
            expected="> 0",
        )
    return arr


def _like(*values: Any) -> Any:
    """The first pandas Series among the inputs (its index labels the output), else None."""
    for v in values:
        if isinstance(v, pd.Series):
            return v
    return None


def _wrap(values: FloatArray, like: Any) -> Any:
    if like is not None and np.shape(values) == (len(like),):
        return pd.Series(values, index=like.index)
    if np.ndim(values) == 0:
        return float(values)
    return values


def _nan(v: Any) -> float:
    return math.nan if v is None else float(v)


# -- estimators ----------------------------------------------------------------------------


class _Model(ParamsMixin, abc.ABC):
    """What the CLV models share: parameters, maximum likelihood, uncertainty, JSON."""

    _param_names: ClassVar[tuple[str, ...]] = ()
    _label: ClassVar[str] = ""
    _has_grad: ClassVar[bool] = False

    # learned state (set by fit or from_dict)
    params_: dict[str, float]
    log_likelihood_: float
    standard_errors_: dict[str, float]
    covariance_: FloatArray
    n_customers_: float
    customers_fingerprint_: str | None
    converged_: bool
    notes_: list[str]

    def __init__(
        self, *, penalizer_coef: float = 0.0, n_starts: int = 3, random_state: int | None = 0
    ) -> None:
        self.penalizer_coef = penalizer_coef
        self.n_starts = n_starts
        self.random_state = random_state

    # scikit-learn's estimator protocol (so that sklearn.base.clone works)
    @classmethod
    def _init_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def _check_fitted(self) -> None:
        if not hasattr(self, "params_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet",
                hint="call fit() first, or load a saved model with from_dict()",
            )

    def _params_array(self) -> FloatArray:
        return np.array([self.params_[k] for k in self._param_names], dtype=float)

    # provided by the models
    @abc.abstractmethod
    def _ll(self, params: FloatArray, data: Data) -> FloatArray:
        """Per-customer log-likelihood at ``params``."""

    def _ll_grad(self, params: FloatArray, data: Data) -> tuple[FloatArray, FloatArray]:
        """Log-likelihood and its gradient; called only when ``_has_grad`` is True."""
        raise TypeError(f"{type(self).__name__} has no analytic gradient (_has_grad is False)")

    @abc.abstractmethod
    def _start(self, data: Data, w: FloatArray) -> FloatArray:
        """Starting parameters for the optimiser."""

    def _validate_init(self) -> None:
        pen = self.penalizer_coef
        if not (isinstance(pen, int | float) and math.isfinite(pen) and pen >= 0):
            raise DataError("penalizer_coef must be >= 0", value=pen, expected=">= 0")
        if not (isinstance(self.n_starts, int | np.integer) and self.n_starts >= 1):
            raise DataError("n_starts must be a whole number >= 1", value=self.n_starts)

    def _wsum(self, params: FloatArray, data: Data, w: FloatArray) -> tuple[float, Any]:
        """Weighted sum of the log-likelihood and of its gradient (None without one)."""
        with np.errstate(all="ignore"):
            if self._has_grad:
                ll, g = self._ll_grad(params, data)
                return float(np.dot(w, ll)), g @ w
            return float(np.dot(w, self._ll(params, data))), None

    def _total_nll(self, data: Data, w: FloatArray) -> Callable[[FloatArray], float]:
        """The penalised negative log-likelihood (sum) in the natural parameters."""
        n = float(w.sum())
        pen = float(self.penalizer_coef)

        def total_nll(p: FloatArray) -> float:
            val = -self._wsum(p, data, w)[0] + n * pen * float(np.sum(p**2))
            return val if math.isfinite(val) else _BIG * max(n, 1.0)

        return total_nll

    def _objective(
        self, data: Data, w: FloatArray
    ) -> Callable[[FloatArray], tuple[float, FloatArray]]:
        """Mean penalised negative log-likelihood and its gradient, in the log-parameters."""
        k = len(self._param_names)
        n = float(w.sum())
        pen = float(self.penalizer_coef)
        total_nll = self._total_nll(data, w)

        def objective(theta: FloatArray) -> tuple[float, FloatArray]:
            p = np.exp(theta)
            if self._has_grad:
                ll, g = self._wsum(p, data, w)
                val = -ll / n + pen * float(np.sum(p**2))
                grad = (-g / n + 2 * pen * p) * p
                if not (math.isfinite(val) and np.isfinite(grad).all()):
                    return _BIG, np.zeros(k)
                return val, grad
            val = total_nll(p) / n
            h = 1e-6
            grad = np.empty(k)
            for i in range(k):
                e = np.zeros(k)
                e[i] = h
                up, down = total_nll(np.exp(theta + e)), total_nll(np.exp(theta - e))
                grad[i] = (up - down) / (2 * h * n)
            if not np.isfinite(grad).all():
                grad = np.zeros(k)
            return val, grad

        return objective

    def _fit_ml(self, data: Data, w: FloatArray, ids: Any) -> None:
        """Maximise the weighted log-likelihood; set the learned state."""
        self._validate_init()
        with _one_blas_thread():
            self._optimise(data, w, ids)

    def _optimise(self, data: Data, w: FloatArray, ids: Any) -> None:
        k = len(self._param_names)
        n = float(w.sum())
        pen = float(self.penalizer_coef)
        rng = np.random.default_rng(self.random_state)
        objective = self._objective(data, w)
        search, search_w = data, w
        if len(w) > _SEARCH_ROWS:
            # many distinct customers: look for the optimum from every start on a random
            # subset, then finish on all customers from the best point found
            idx = np.sort(rng.choice(len(w), _SEARCH_ROWS, replace=False))
            search = {key: v[idx] for key, v in data.items() if key in _COLUMNS}
            search_w = w[idx]
        search_objective = self._objective(search, search_w) if search is not data else objective
        start = np.log(self._start(search, search_w))
        starts = [start] + [start + rng.normal(0.0, 1.0, k) for _ in range(int(self.n_starts) - 1)]
        bounds = [(-_LOG_BOUND, _LOG_BOUND)] * k
        loose = {"maxiter": 1000, "ftol": 1e-11, "gtol": 1e-7}
        tight = {"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-10}

        def lbfgsb(fun: Any, x0: FloatArray, opts: dict[str, Any]) -> Any:
            x0 = np.clip(x0, -_LOG_BOUND, _LOG_BOUND)
            return optimize.minimize(
                fun, x0, jac=True, method="L-BFGS-B", bounds=bounds, options=opts
            )

        def gradient_norm(theta: FloatArray) -> float:
            """Largest gradient component that is not held by a bound (projected gradient)."""
            g = objective(theta)[1].copy()
            g[(theta <= -_LOG_BOUND + 1e-8) & (g > 0)] = 0.0
            g[(theta >= _LOG_BOUND - 1e-8) & (g < 0)] = 0.0
            return float(np.max(np.abs(g)))

        # every start to a loose optimum, then the best one polished on all customers
        best = None
        for s0 in starts:
            res = lbfgsb(search_objective, np.clip(s0, -_LOG_BOUND + 1, _LOG_BOUND - 1), loose)
            if best is None or res.fun < best.fun:
                best = res
        assert best is not None
        if search is not data or self._has_grad:
            # (a numerical gradient is too noisy for the tight tolerances: its loose optimum
            # on all customers is final unless the gradient says otherwise)
            polished = lbfgsb(objective, best.x, tight)
            if polished.fun <= best.fun or search is not data:
                best = polished
        gnorm = gradient_norm(np.clip(best.x, -_LOG_BOUND, _LOG_BOUND))
        if gnorm > 1e-6:
            total_nll = self._total_nll(data, w)
            nm = optimize.minimize(
                lambda th: total_nll(np.exp(np.clip(th, -_LOG_BOUND, _LOG_BOUND))) / n,
                best.x,
                method="Nelder-Mead",
                options={"xatol": 1e-10, "fatol": 1e-14, "maxfev": 1000 * k},
            )
            res = lbfgsb(objective, nm.x, tight)
            for cand in (nm, res):
                if cand.fun < best.fun:
                    best = cand
            gnorm = gradient_norm(np.clip(best.x, -_LOG_BOUND, _LOG_BOUND))
        theta = np.clip(best.x, -_LOG_BOUND, _LOG_BOUND)
        params = np.exp(theta)
        notes: list[str] = []
        at_bound = np.abs(theta) >= _LOG_BOUND - 1e-6
        if at_bound.any():
            names = ", ".join(np.array(self._param_names)[at_bound])
            notes.append(
                f"{names} reached the edge of the search range: the data do not pin "
                "them down (try more customers or penalizer_coef > 0)"
            )
        self.converged_ = bool(gnorm < 1e-4 and not at_bound.any())
        if not self.converged_ and not at_bound.any():
            notes.append(f"the optimiser stopped with gradient {gnorm:.2g}: check the fit")
        self.params_ = {name: float(v) for name, v in zip(self._param_names, params, strict=True)}
        with np.errstate(all="ignore"):
            self.log_likelihood_ = float(np.dot(w, self._ll(params, data)))

        def total_grad(p: FloatArray) -> FloatArray:
            grad: FloatArray = -self._wsum(p, data, w)[1] + 2 * n * pen * p
            return grad

        se = np.full(k, np.nan)
        cov = np.full((k, k), np.nan)
        try:
            if at_bound.any():
                raise _NoInformation("a parameter is at the edge of the search range")
            hess = _hessian(
                self._total_nll(data, w), total_grad if self._has_grad else None, params
            )
            if not np.isfinite(hess).all():
                raise np.linalg.LinAlgError("not finite")
            np.linalg.cholesky(hess)
            cov = np.linalg.inv(hess)
            se = np.sqrt(np.diag(cov))
        except _NoInformation:
            notes.append("standard errors are not available for an optimum at the edge")
        except np.linalg.LinAlgError:
            notes.append(
                "the observed information (Hessian of the negative log-likelihood) is not "
                "positive definite at the optimum: standard errors are not available"
            )
        if pen > 0:
            notes.append(
                f"fitted with penalizer_coef={pen}: estimates and standard errors are of the "
                "penalised likelihood"
            )
        self.standard_errors_ = {
            name: float(v) for name, v in zip(self._param_names, se, strict=True)
        }
        self.covariance_ = cov
        self.n_customers_ = float(n) if n != round(n) else int(round(n))
        self.customers_fingerprint_ = _fingerprint(ids) if ids is not None else None
        self.notes_ = notes

    def confidence_intervals_(self, alpha: float = 0.05, *, scale: str = "natural") -> pd.DataFrame:
        """Wald confidence intervals of the parameters from the observed information.

        Parameters
        ----------
        alpha : float, default 0.05
            1 - confidence level.
        scale : {"natural", "log"}
            ``natural``: estimate +/- z * se; ``log``: on the log of the (positive) parameter,
            by the delta method, so the interval stays above 0.

        Returns
        -------
        DataFrame
            Indexed by parameter, columns ``estimate``, ``standard_error``, ``lower``, ``upper``.

        Examples
        --------
        >>> m = GammaGammaFitter().fit([1, 2, 3, 1, 4, 2], [10.0, 12.0, 9.0, 30.0, 11.0, 14.0])
        >>> list(m.confidence_intervals_().columns)
        ['estimate', 'standard_error', 'lower', 'upper']
        """
        self._check_fitted()
        if not 0 < alpha < 1:
            raise DataError("alpha must be between 0 and 1", value=alpha, expected="0 < alpha < 1")
        if scale not in ("natural", "log"):
            raise DataError("scale must be 'natural' or 'log'", value=scale)
        z = float(special.ndtri(1 - alpha / 2))
        est = self._params_array()
        se = np.array([self.standard_errors_[k] for k in self._param_names])
        if scale == "natural":
            lower, upper = est - z * se, est + z * se
        else:
            lower, upper = est * np.exp(-z * se / est), est * np.exp(z * se / est)
        return pd.DataFrame(
            {"estimate": est, "standard_error": se, "lower": lower, "upper": upper},
            index=pd.Index(self._param_names, name="parameter"),
        )

    def summary(self) -> dict[str, Any]:
        """Parameters, log-likelihood, standard errors and notes as a JSON-friendly dict."""
        self._check_fitted()
        return _plain(
            {
                "model": self._label,
                "params": self.params_,
                "log_likelihood": self.log_likelihood_,
                "standard_errors": self.standard_errors_,
                "n_customers": self.n_customers_,
                "notes": self.notes_,
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """Everything needed to predict again, as plain JSON types (no pickle).

        Returns
        -------
        dict
            ``format``, ``model`` (class name), ``init_params``, ``params``,
            ``log_likelihood``, ``standard_errors``, ``covariance``, ``n_customers``,
            ``customers_fingerprint`` (sha256 of the sorted ids of the customers it was
            fitted on, when they were known), ``converged`` and ``notes``.

        Examples
        --------
        >>> import json
        >>> m = GammaGammaFitter().fit([1, 2, 3, 1, 4, 2], [10.0, 12.0, 9.0, 30.0, 11.0, 14.0])
        >>> m2 = GammaGammaFitter.from_dict(json.loads(json.dumps(m.to_dict())))
        >>> m2.params_ == m.params_
        True
        """
        self._check_fitted()
        return {
            "format": FORMAT,
            "model": type(self).__name__,
            "init_params": _plain(self.get_params()),
            "params": _plain(self.params_),
            "log_likelihood": _plain(self.log_likelihood_),
            "standard_errors": _plain(self.standard_errors_),
            "covariance": _plain(np.asarray(self.covariance_).tolist()),
            "n_customers": _plain(self.n_customers_),
            "customers_fingerprint": self.customers_fingerprint_,
            "converged": bool(self.converged_),
            "notes": list(self.notes_),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """A fitted model from :meth:`to_dict` output; DataError if it is not one of this class.

        Examples
        --------
        >>> m = GammaGammaFitter.from_dict({"model": "GammaGammaFitter",
        ...     "params": {"p": 6.25, "q": 3.74, "v": 15.44}})
        >>> round(m.conditional_expected_average_profit(), 2)
        35.22
        """
        if not isinstance(data, dict):
            raise DataError("a saved model must be a JSON object", value=type(data))
        name = data.get("model")
        if name != cls.__name__:
            raise DataError(
                f"this artifact holds a {name!r} model, not a {cls.__name__}",
                hint="use mercato.models.clv.model_from_dict() to load any CLV model",
            )
        fmt = data.get("format", FORMAT)
        if fmt != FORMAT:
            raise DataError(f"unknown artifact format {fmt!r}", expected=FORMAT)
        params = data.get("params") or {}
        values = {}
        for key in cls._param_names:
            v = params.get(key)
            if v is None or not isinstance(v, int | float) or not (math.isfinite(v) and v > 0):
                raise DataError(
                    "the saved model lacks a valid parameter",
                    column=key,
                    value=v,
                    expected="a positive number",
                )
            values[key] = float(v)
        init = {k: v for k, v in (data.get("init_params") or {}).items() if k in cls._init_names()}
        model = cls(**init)
        k = len(cls._param_names)
        model.params_ = values
        model.log_likelihood_ = _nan(data.get("log_likelihood"))
        se = data.get("standard_errors") or {}
        model.standard_errors_ = {key: _nan(se.get(key)) for key in cls._param_names}
        cov = data.get("covariance")
        model.covariance_ = (
            np.array([[_nan(v) for v in row] for row in cov], dtype=float)
            if cov
            else np.full((k, k), np.nan)
        )
        n = data.get("n_customers")
        model.n_customers_ = n if n is not None else math.nan
        model.customers_fingerprint_ = data.get("customers_fingerprint")
        model.converged_ = bool(data.get("converged", True))
        model.notes_ = list(data.get("notes") or [])
        return model


class _TransactionModel(_Model):
    """Models of the purchase count: fit on frequency, recency and T."""

    def _inputs(
        self, frequency: Any, recency: Any, T: Any, *, fit: bool
    ) -> tuple[FloatArray, FloatArray, FloatArray, Any]:
        ids = None
        if isinstance(frequency, pd.DataFrame):
            if recency is not None or T is not None:
                raise DataError("pass either a summary frame or frequency, recency and T arrays")
            frame = frequency
            x, tx, t_end = _columns(frame, ("frequency", "recency", "T"))
            ids = frame.index
        else:
            if recency is None or T is None:
                raise DataError(
                    "recency and T are needed with frequency (or pass a summary frame)",
                    column="recency" if recency is None else "T",
                )
            x = _float_array(frequency, "frequency")
            tx = _float_array(recency, "recency")
            t_end = _float_array(T, "T")
        if fit:
            x, tx, t_end = (np.ravel(v) for v in (x, tx, t_end))
            if not (len(x) == len(tx) == len(t_end)):
                raise DataError(
                    f"frequency, recency and T have different lengths "
                    f"({len(x)}, {len(tx)}, {len(t_end)})"
                )
        else:
            try:
                x, tx, t_end = np.broadcast_arrays(x, tx, t_end)
            except ValueError:
                raise DataError(
                    "frequency, recency and T have shapes that do not match",
                    value=(np.shape(x), np.shape(tx), np.shape(t_end)),
                ) from None
        _check_rft(x, tx, t_end)
        return x, tx, t_end, ids

    def fit(
        self, frequency: Any, recency: Any = None, T: Any = None, *, weights: Any = None
    ) -> Any:
        """Fit by maximum likelihood; returns self.

        Parameters
        ----------
        frequency : array-like or DataFrame
            Repeat purchases per customer, or a summary frame with columns ``frequency``,
            ``recency`` and ``T`` (its index, the customer ids, is fingerprinted).
        recency, T : array-like
            Time of the last repeat purchase and of the calibration end, since the first
            purchase (omit with a summary frame).
        weights : array-like, optional
            How many customers each row stands for (for pre-aggregated data).

        Returns
        -------
        self

        Raises
        ------
        DataError
            Empty input, non-finite or negative values, a fractional frequency, recency
            greater than T, recency without a repeat purchase, or no repeat purchase at all.
        """
        x, tx, t_end, ids = self._inputs(frequency, recency, T, fit=True)
        if weights is None:
            w = np.ones(len(x))
        else:
            w = np.ravel(_float_array(weights, "weights"))
            if len(w) != len(x):
                raise DataError(
                    f"weights has {len(w)} values for {len(x)} customers", column="weights"
                )
            bad = ~np.isfinite(w) | (w < 0)
            if bad.any():
                raise _first_bad(bad, "weights", "are negative or not finite", len(w), ">= 0")
        if not (x[w > 0] > 0).any():
            raise DataError(
                f"no customer has a repeat purchase (frequency > 0) among {len(x):,}: "
                f"{self._label} cannot be fitted",
                column="frequency",
                hint="use a longer calibration period or more customers",
            )
        (xd, txd, td), wd = _dedupe([x, tx, t_end], w)
        keep = wd > 0
        data = {"x": xd[keep], "tx": txd[keep], "T": td[keep]}
        wu = wd[keep]
        self._fit_ml(data, wu, ids)
        return self

    def _start(self, data: Data, w: FloatArray) -> FloatArray:
        rate = float(np.dot(w, data["x"]) / max(np.dot(w, data["T"]), 1e-9))
        rate = min(max(rate, 1e-4), 1e4)
        return np.array([1.0, 1.0 / rate, 1.0, 1.0])

    def log_likelihood(
        self, frequency: Any, recency: Any = None, T: Any = None, *, params: Any = None
    ) -> float:
        """The model's log-likelihood of the data (sum over customers), as in the paper.

        Parameters
        ----------
        frequency, recency, T
            As in :meth:`fit`.
        params : dict, optional
            Parameters to evaluate at; default the fitted ones.

        Examples
        --------
        >>> m = BetaGeoFitter.from_dict({"model": "BetaGeoFitter",
        ...     "params": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}})
        >>> round(m.log_likelihood([0, 2], [0.0, 30.43], [38.86, 38.86]), 3)
        -10.013
        """
        if params is None:
            self._check_fitted()
            p = self._params_array()
        else:
            p = np.array([float(params[k]) for k in self._param_names])
        x, tx, t_end, _ = self._inputs(frequency, recency, T, fit=True)
        with np.errstate(all="ignore"):
            return float(np.sum(self._ll(p, {"x": x, "tx": tx, "T": t_end})))

    def predict(self, t: Any, frequency: Any, recency: Any = None, T: Any = None) -> Any:
        """Alias of :meth:`conditional_expected_number_of_purchases_up_to_time`."""
        return self.conditional_expected_number_of_purchases_up_to_time(t, frequency, recency, T)

    def conditional_expected_number_of_purchases_up_to_time(
        self, t: Any, frequency: Any, recency: Any = None, T: Any = None
    ) -> Any:
        """Expected purchases in the next ``t`` time units of a customer with (x, t_x, T).

        Parameters
        ----------
        t : float or array-like
            Horizon (> 0), in the summary's time unit; broadcast against the customers.
        frequency, recency, T : array-like, or a summary frame as ``frequency``
            The customers' history.

        Returns
        -------
        float, ndarray or Series
            A Series (indexed like the input) when a Series or frame was given.

        Examples
        --------
        >>> m = BetaGeoFitter.from_dict({"model": "BetaGeoFitter",
        ...     "params": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}})
        >>> round(m.conditional_expected_number_of_purchases_up_to_time(39, 2, 30.43, 38.86), 3)
        1.226
        """
        self._check_fitted()
        like = _like(frequency, recency, T)
        if isinstance(frequency, pd.DataFrame):
            like = frequency["frequency"]
        horizon = _horizon(t)
        x, tx, t_end, _ = self._inputs(frequency, recency, T, fit=False)
        try:
            horizon, x, tx, t_end = np.broadcast_arrays(horizon, x, tx, t_end)
        except ValueError:
            raise DataError("the horizon t does not match the customers' shape") from None
        return _wrap(self._conditional(horizon, x, tx, t_end), like)

    def conditional_probability_alive(
        self, frequency: Any, recency: Any = None, T: Any = None
    ) -> Any:
        """Probability that a customer with (x, t_x, T) is still active at T.

        Examples
        --------
        >>> m = BetaGeoFitter.from_dict({"model": "BetaGeoFitter",
        ...     "params": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}})
        >>> float(m.conditional_probability_alive(0, 0.0, 38.86))
        1.0
        """
        self._check_fitted()
        like = _like(frequency, recency, T)
        if isinstance(frequency, pd.DataFrame):
            like = frequency["frequency"]
        x, tx, t_end, _ = self._inputs(frequency, recency, T, fit=False)
        return _wrap(self._p_alive(x, tx, t_end), like)

    def expected_number_of_purchases_up_to_time(self, t: Any) -> Any:
        """Expected repeat purchases in (0, t] of a new, randomly chosen customer.

        Examples
        --------
        >>> m = BetaGeoFitter.from_dict({"model": "BetaGeoFitter",
        ...     "params": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}})
        >>> round(m.expected_number_of_purchases_up_to_time(39), 3)
        1.197
        """
        self._check_fitted()
        like = _like(t)
        return _wrap(self._unconditional(_horizon(t)), like)

    @abc.abstractmethod
    def _conditional(self, t: FloatArray, x: FloatArray, tx: FloatArray, T: FloatArray) -> Any:
        """Expected purchases in ``t`` given a customer's history."""

    @abc.abstractmethod
    def _p_alive(self, x: FloatArray, tx: FloatArray, T: FloatArray) -> FloatArray:
        """Probability that the customer is still active."""

    @abc.abstractmethod
    def _unconditional(self, t: FloatArray) -> FloatArray:
        """Expected purchases in ``t`` for a new customer."""


class _GeoModel(_TransactionModel):
    _modified: ClassVar[bool] = False
    _param_names = ("r", "alpha", "a", "b")
    _has_grad = True

    def _ll(self, params: FloatArray, data: Data) -> FloatArray:
        return _geo_ll(params, data, self._modified)

    def _ll_grad(self, params: FloatArray, data: Data) -> tuple[FloatArray, FloatArray]:
        return _geo_ll_grad(params, data, self._modified)

    def _log_odds_dead(self, x: FloatArray, tx: FloatArray, T: FloatArray) -> FloatArray:
        r, alpha, a, b = self._params_array()
        with np.errstate(all="ignore"):
            if self._modified:
                odds = np.log(a) - np.log(b + x)
            else:
                odds = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)), -np.inf)
            return odds + (r + x) * (np.log(alpha + T) - np.log(alpha + tx))

    def _p_alive(self, x: FloatArray, tx: FloatArray, T: FloatArray) -> FloatArray:
        return np.asarray(special.expit(-self._log_odds_dead(x, tx, T)), dtype=float)

    def _at_a(self, fun: Callable[[float], FloatArray], a: float) -> FloatArray:
        """``fun(a)``; at a == 1 (a removable singularity) the mean of a = 1 -/+ 1e-6."""
        if abs(a - 1.0) < 1e-7:
            return (fun(1.0 - 1e-6) + fun(1.0 + 1e-6)) / 2
        return fun(a)

    def _conditional(self, t: FloatArray, x: FloatArray, tx: FloatArray, T: FloatArray) -> Any:
        r, alpha, a0, b = self._params_array()
        z = t / (alpha + T + t)
        k = 1.0 if self._modified else 0.0

        def expected(a: float) -> FloatArray:
            # E[Y(t) | alive] = (a+b+x-1+k)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x)
            #                    2F1(r+x, b+x+k; a+b+x-1+k; z)]   (FHL 2005 eq. 10; MBG: k=1)
            c = a + b + x - 1 + k
            h = _pow_hyp2f1(z, c, (a + b - 1 + k - r, a - 1, a - 1), (r + x, b + x + k, r + x))
            return c / (a - 1) * (1 - h)

        return self._at_a(expected, a0) * self._p_alive(x, tx, T)

    def _unconditional(self, t: FloatArray) -> FloatArray:
        r, alpha, a0, b = self._params_array()
        z = t / (alpha + t)
        k = 1.0 if self._modified else 0.0

        def expected(a: float) -> FloatArray:
            c = a + b - 1 + k
            h = _pow_hyp2f1(z, c, (a + b - 1 + k - r, a - 1, a - 1), (r, b + k, r))
            lead = b if self._modified else a + b - 1
            return lead / (a - 1) * (1 - h)

        return self._at_a(expected, a0)


class BetaGeoFitter(_GeoModel):
    """BG/NBD (Fader, Hardie & Lee 2005): Poisson purchases, dropout after any purchase.

    Purchase rates are Gamma(r, alpha) across customers; after each purchase a customer
    drops out with probability p, Beta(a, b) across customers.

    Parameters
    ----------
    penalizer_coef : float, default 0
        L2 penalty on the parameters (per customer); 0 is plain maximum likelihood.
    n_starts : int, default 3
        Starting points of the optimiser (the first from the data, the others around it).
    random_state : int, optional
        Seed of the extra starting points.

    Attributes
    ----------
    params_ : dict
        ``r``, ``alpha``, ``a``, ``b``.
    log_likelihood_ : float
        The paper's log-likelihood at the estimate (sum over customers).
    standard_errors_ : dict
        From the observed information; NaN (with a note) when it is not positive definite.
    covariance_ : ndarray
        Inverse observed information.
    n_customers_ : int
        Customers fitted on.
    customers_fingerprint_ : str or None
        sha256 of their sorted ids (when fitted on a summary frame).
    converged_ : bool
    notes_ : list of str

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.poisson(1.0, 300).astype(float)
    >>> T = np.full(300, 30.0)
    >>> tx = np.where(x > 0, rng.uniform(0, 30, 300), 0.0)
    >>> m = BetaGeoFitter().fit(x, tx, T)
    >>> sorted(m.params_)
    ['a', 'alpha', 'b', 'r']
    """

    _label = "BG/NBD"


class ModifiedBetaGeoFitter(_GeoModel):
    """MBG/NBD (Batislam, Denizel & Filiztekin 2007): BG/NBD with dropout also at time 0.

    A customer may be gone right after the first purchase, so customers without a repeat
    purchase are not all alive. Parameters, attributes and methods as :class:`BetaGeoFitter`.

    Examples
    --------
    >>> m = ModifiedBetaGeoFitter.from_dict({"model": "ModifiedBetaGeoFitter",
    ...     "params": {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}})
    >>> float(m.conditional_probability_alive(0, 0.0, 38.0)) < 1
    True
    """

    _label = "MBG/NBD"
    _modified = True


class ParetoNBDFitter(_TransactionModel):
    """Pareto/NBD (Schmittlein, Morrison & Colombo 1987): Poisson purchases, exponential lifetime.

    Purchase rates are Gamma(r, alpha) and dropout rates Gamma(s, beta) across customers.
    The likelihood is Fader & Hardie's (2005) form; its hypergeometric terms are computed in
    log space with the larger of alpha and beta (alpha == beta included). Parameters,
    attributes and methods as :class:`BetaGeoFitter`, with ``params_`` ``r``, ``alpha``, ``s``,
    ``beta``.

    Examples
    --------
    >>> m = ParetoNBDFitter.from_dict({"model": "ParetoNBDFitter",
    ...     "params": {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}})
    >>> round(float(m.conditional_probability_alive(2, 30.43, 38.86)), 3)
    0.869
    """

    _label = "Pareto/NBD"
    _param_names = ("r", "alpha", "s", "beta")

    def _ll(self, params: FloatArray, data: Data) -> FloatArray:
        return _pareto_ll(params, data)

    def _start(self, data: Data, w: FloatArray) -> FloatArray:
        r, alpha, _, _ = super()._start(data, w)
        mean_t = float(np.dot(w, data["T"]) / w.sum())
        return np.array([r, alpha, 1.0, max(mean_t, 1e-3)])

    def _p_alive(self, x: FloatArray, tx: FloatArray, T: FloatArray) -> FloatArray:
        with np.errstate(all="ignore"):
            _, t1, t2 = _pareto_terms(self._params_array(), x, tx, T)
        return np.asarray(special.expit(t1 - t2), dtype=float)

    def _conditional(self, t: FloatArray, x: FloatArray, tx: FloatArray, T: FloatArray) -> Any:
        r, alpha, s, beta = self._params_array()
        # E[Y(t) | alive] = (r+x)(beta+T) / ((alpha+T)(s-1)) [1 - ((beta+T)/(beta+T+t))^(s-1)]
        log_ratio = np.log(beta + T) - np.log(beta + T + t)
        return (
            self._p_alive(x, tx, T)
            * (r + x)
            * (beta + T)
            / (alpha + T)
            * _one_minus_pow_over(s - 1, log_ratio)
        )

    def _unconditional(self, t: FloatArray) -> FloatArray:
        r, alpha, s, beta = self._params_array()
        log_ratio = np.log(beta) - np.log(beta + t)
        return r * beta / alpha * _one_minus_pow_over(s - 1, log_ratio)


def _one_minus_pow_over(e: float, log_ratio: FloatArray) -> FloatArray:
    """(1 - ratio**e) / e, and its limit -log(ratio) at e == 0."""
    if abs(e) < 1e-10:
        return -log_ratio
    return -np.expm1(e * log_ratio) / e


class GammaGammaFitter(_Model):
    """Gamma-Gamma model of spend per transaction (Fader, Hardie & Lee 2005, "RFM and CLV").

    Spend per transaction is Gamma(p, nu) for a customer, nu is Gamma(q, v) across customers;
    spend is assumed independent of the purchase process. Fitted on repeat buyers with the
    mean value of their repeat purchases.

    Parameters
    ----------
    penalizer_coef, n_starts, random_state
        As in :class:`BetaGeoFitter`.

    Attributes
    ----------
    params_ : dict
        ``p``, ``q``, ``v`` (the paper's gamma).
    log_likelihood_, standard_errors_, covariance_, n_customers_, customers_fingerprint_
        As in :class:`BetaGeoFitter` (customers: the repeat buyers used).
    n_excluded_ : int
        Customers left out for having no repeat purchase.

    Examples
    --------
    >>> m = GammaGammaFitter().fit([1, 2, 3, 1, 4, 2], [10.0, 12.0, 9.0, 30.0, 11.0, 14.0])
    >>> m.conditional_expected_average_profit(2, 12.0) > 0
    True
    """

    _label = "Gamma-Gamma"
    _param_names = ("p", "q", "v")
    _has_grad = True
    n_excluded_: int

    def _ll(self, params: FloatArray, data: Data) -> FloatArray:
        return _gg_ll_grad(params, data, grad=False)[0]

    def _ll_grad(self, params: FloatArray, data: Data) -> tuple[FloatArray, FloatArray]:
        ll, g = _gg_ll_grad(params, data)
        assert g is not None
        return ll, g

    def _start(self, data: Data, w: FloatArray) -> FloatArray:
        mean = float(np.dot(w, data["m"]) / w.sum())
        return np.array([1.0, 2.0, max(mean, 1e-6)])

    @staticmethod
    def _inputs(frequency: Any, monetary_value: Any) -> tuple[FloatArray, FloatArray, Any]:
        ids = None
        if isinstance(frequency, pd.DataFrame):
            if monetary_value is not None:
                raise DataError("pass either a summary frame or frequency and monetary_value")
            x, m = _columns(frequency, ("frequency", "monetary_value"))
            ids = frequency.index
        else:
            if monetary_value is None:
                raise DataError("monetary_value is needed with frequency", column="monetary_value")
            x = _float_array(frequency, "frequency")
            m = _float_array(monetary_value, "monetary_value")
        return x, m, ids

    @staticmethod
    def _check(x: FloatArray, m: FloatArray) -> None:
        n = int(x.size)
        if n == 0:
            raise DataError("no customers: the summary is empty", column="frequency")
        bad = ~np.isfinite(x) | (x < 0) | (x != np.round(x))
        if bad.any():
            raise _first_bad(bad, "frequency", "are not whole numbers >= 0", n, "a count")
        rep = x > 0
        bad = rep & ~np.isfinite(m)
        if bad.any():
            raise _first_bad(bad, "monetary_value", "are not finite numbers", n, "a number")
        bad = rep & (m <= 0)
        if bad.any():
            raise _first_bad(
                bad,
                "monetary_value",
                "are repeat buyers with a mean spend of 0 or less",
                n,
                "> 0 (leave out customers whose repeat purchases were free or refunded)",
            )

    def fit(self, frequency: Any, monetary_value: Any = None, *, weights: Any = None) -> Any:
        """Fit on the repeat buyers (frequency > 0); returns self.

        Parameters
        ----------
        frequency : array-like or DataFrame
            Repeat purchases per customer, or a summary frame with ``frequency`` and
            ``monetary_value`` (customers with frequency 0 are skipped and counted).
        monetary_value : array-like
            Mean value of each customer's repeat purchases.
        weights : array-like, optional
            How many customers each row stands for.

        Raises
        ------
        DataError
            No repeat buyer, a repeat buyer with non-positive or non-finite mean spend, a bad
            frequency, or mismatched lengths.
        """
        x, m, ids = self._inputs(frequency, monetary_value)
        x, m = np.ravel(x), np.ravel(m)
        if len(x) != len(m):
            raise DataError(
                f"frequency and monetary_value have different lengths ({len(x)}, {len(m)})"
            )
        self._check(x, m)
        w = np.ones(len(x)) if weights is None else np.ravel(_float_array(weights, "weights"))
        if len(w) != len(x) or not (np.isfinite(w) & (w >= 0)).all():
            raise DataError("weights must be one number >= 0 per customer", column="weights")
        rep = (x > 0) & (w > 0)
        if not rep.any():
            raise DataError(
                f"no repeat buyer (frequency > 0) among {len(x):,} customers: Gamma-Gamma "
                "needs the spend of repeat purchases",
                column="frequency",
                hint="use a longer calibration period",
            )
        (xd, md), wd = _dedupe([x[rep], m[rep]], w[rep])
        self._fit_ml({"x": xd, "m": md}, wd, None if ids is None else ids[rep])
        self.n_excluded_ = int((~rep).sum())
        if self.n_excluded_:
            self.notes_.insert(
                0, f"{self.n_excluded_:,} customers without a repeat purchase are not used"
            )
        if rep.sum() > 2 and np.std(x[rep]) > 0 and np.std(m[rep]) > 0:
            corr = float(np.corrcoef(x[rep], m[rep])[0, 1])
            if abs(corr) > 0.3:
                self.notes_.append(
                    f"frequency and spend are correlated ({corr:.2f}) among repeat buyers: "
                    "the model assumes they are independent"
                )
        return self

    def log_likelihood(
        self, frequency: Any, monetary_value: Any = None, *, params: Any = None
    ) -> float:
        """Log-likelihood of the repeat buyers' mean spend (sum), at ``params`` or the fit.

        Examples
        --------
        >>> m = GammaGammaFitter.from_dict({"model": "GammaGammaFitter",
        ...     "params": {"p": 6.25, "q": 3.74, "v": 15.44}})
        >>> round(m.log_likelihood([1, 3], [20.0, 35.0]), 3)
        -7.658
        """
        if params is None:
            self._check_fitted()
            p = self._params_array()
        else:
            p = np.array([float(params[k]) for k in self._param_names])
        x, m, _ = self._inputs(frequency, monetary_value)
        x, m = np.ravel(x), np.ravel(m)
        self._check(x, m)
        rep = x > 0
        with np.errstate(all="ignore"):
            return float(np.sum(self._ll(p, {"x": x[rep], "m": m[rep]})))

    def conditional_expected_average_profit(
        self, frequency: Any = None, monetary_value: Any = None
    ) -> Any:
        """Expected spend per future transaction of a customer with x repeat purchases of mean m.

        ``(v + x m) p / (p x + q - 1)``; with no arguments, the population mean
        ``p v / (q - 1)`` (infinite when q <= 1).

        Examples
        --------
        >>> m = GammaGammaFitter.from_dict({"model": "GammaGammaFitter",
        ...     "params": {"p": 6.25, "q": 3.74, "v": 15.44}})
        >>> round(m.conditional_expected_average_profit(2, 25.0), 2)
        26.84
        """
        self._check_fitted()
        p, q, v = self._params_array()
        if frequency is None and monetary_value is None:
            return float(p * v / (q - 1)) if q > 1 else math.inf
        like = _like(frequency, monetary_value)
        if isinstance(frequency, pd.DataFrame):
            like = frequency["frequency"]
        x, m, _ = self._inputs(frequency, monetary_value)
        try:
            x, m = np.broadcast_arrays(x, m)
        except ValueError:
            raise DataError("frequency and monetary_value have shapes that do not match") from None
        self._check(x, m)
        m = np.where(x > 0, m, 0.0)
        den = p * x + q - 1
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(den > 0, (v + x * m) * p / den, np.inf)
        return _wrap(out, like)

    def customer_lifetime_value(
        self,
        transaction_model: Any,
        frequency: Any,
        recency: Any = None,
        T: Any = None,
        monetary_value: Any = None,
        *,
        time_months: int = 12,
        discount_rate_monthly: float = 0.01,
        freq_days: float = 7.0,
    ) -> Any:
        """Discounted value of each customer's purchases over the next ``time_months`` months.

        CLV = sum over months k = 1..n of E[spend] x (E[purchases by month k] - E[by month
        k-1]) / (1 + d)^k, months of 365.25/12 days, purchases from the fitted
        ``transaction_model`` and spend from :meth:`conditional_expected_average_profit`.

        Parameters
        ----------
        transaction_model : BetaGeoFitter, ModifiedBetaGeoFitter or ParetoNBDFitter
            Fitted on the same time unit as the summary.
        frequency, recency, T, monetary_value : array-like, or a summary frame as frequency
            The customers.
        time_months : int, default 12
            Horizon in months (> 0).
        discount_rate_monthly : float, default 0.01
            Monthly discount rate (>= 0).
        freq_days : float, default 7
            Days in the transaction model's time unit.

        Examples
        --------
        >>> bg = BetaGeoFitter.from_dict({"model": "BetaGeoFitter",
        ...     "params": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}})
        >>> gg = GammaGammaFitter.from_dict({"model": "GammaGammaFitter",
        ...     "params": {"p": 6.25, "q": 3.74, "v": 15.44}})
        >>> round(float(gg.customer_lifetime_value(bg, 2, 30.43, 38.86, 25.0)), 2)
        39.51
        """
        self._check_fitted()
        _check_transaction_model(transaction_model)
        if isinstance(frequency, pd.DataFrame):
            frame = frequency
            if monetary_value is None and "monetary_value" in frame:
                monetary_value = frame["monetary_value"]
            frequency, recency, T = frame["frequency"], frame["recency"], frame["T"]
        if monetary_value is None:
            raise DataError("monetary_value is needed for CLV", column="monetary_value")
        like = _like(frequency, recency, T, monetary_value)
        spend = np.asarray(self.conditional_expected_average_profit(frequency, monetary_value))
        discounted = discounted_expected_purchases(
            transaction_model,
            frequency,
            recency,
            T,
            time_months=time_months,
            discount_rate_monthly=discount_rate_monthly,
            freq_days=freq_days,
        )
        total = spend * np.asarray(discounted)
        return _wrap(total, like)


def discounted_expected_purchases(
    transaction_model: Any,
    frequency: Any,
    recency: Any = None,
    T: Any = None,
    *,
    time_months: int = 12,
    discount_rate_monthly: float = 0.01,
    freq_days: float = 7.0,
) -> Any:
    """Each customer's expected purchases month by month over ``time_months``, discounted.

    The sum over months k = 1..n of (E[purchases by month k] - E[by month k-1]) / (1 + d)^k:
    multiplied by the expected spend per purchase it gives the discounted CLV
    (:meth:`GammaGammaFitter.customer_lifetime_value`).

    Examples
    --------
    >>> bg = BetaGeoFitter.from_dict({"model": "BetaGeoFitter",
    ...     "params": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}})
    >>> round(float(discounted_expected_purchases(bg, 2, 30.43, 38.86)), 4)
    1.1393
    """
    _check_transaction_model(transaction_model)
    if not (isinstance(time_months, int | np.integer) and time_months > 0):
        raise DataError(
            "time_months must be a whole number of months > 0",
            column="time_months",
            value=time_months,
            expected="> 0",
        )
    if not (math.isfinite(discount_rate_monthly) and discount_rate_monthly >= 0):
        raise DataError(
            "discount_rate_monthly must be >= 0",
            column="discount_rate_monthly",
            value=discount_rate_monthly,
        )
    if not (math.isfinite(freq_days) and freq_days > 0):
        raise DataError("freq_days must be > 0", column="freq_days", value=freq_days)
    like = _like(frequency, recency, T)
    month = DAYS_PER_MONTH / freq_days
    x, tx, t_end, _ = transaction_model._inputs(frequency, recency, T, fit=False)
    shape = np.broadcast_shapes(x.shape, tx.shape, t_end.shape)
    # purchases depend on (x, t_x, T) only: computed once per distinct customer history
    (xu, txu, tu), inverse = _unique_rows(
        [np.ravel(np.broadcast_to(v, shape)) for v in (x, tx, t_end)]
    )
    discounted = np.zeros(len(xu))
    previous = np.zeros(len(xu))
    for k in range(1, int(time_months) + 1):
        now = transaction_model._conditional(np.full(len(xu), k * month), xu, txu, tu)
        discounted += (now - previous) / (1 + discount_rate_monthly) ** k
        previous = now
    return _wrap(discounted[inverse].reshape(shape), like)


def _check_transaction_model(model: Any) -> None:
    if not isinstance(model, _TransactionModel):
        raise DataError(
            "a BG/NBD, MBG/NBD or Pareto/NBD model is needed here",
            value=type(model).__name__,
        )
    model._check_fitted()


MODELS: dict[str, type[_Model]] = {
    cls.__name__: cls
    for cls in (BetaGeoFitter, ModifiedBetaGeoFitter, ParetoNBDFitter, GammaGammaFitter)
}


def model_from_dict(data: dict[str, Any]) -> Any:
    """Any CLV model from its :meth:`~BetaGeoFitter.to_dict` output (JSON; no code is run).

    Examples
    --------
    >>> m = model_from_dict({"model": "ParetoNBDFitter",
    ...     "params": {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}})
    >>> type(m).__name__
    'ParetoNBDFitter'
    """
    name = data.get("model") if isinstance(data, dict) else None
    if name not in MODELS:
        raise DataError("not a saved CLV model", value=name, expected=" or ".join(sorted(MODELS)))
    return MODELS[str(name)].from_dict(data)


# -- evaluation ----------------------------------------------------------------------------


def holdout_evaluation(model: Any, summary: pd.DataFrame) -> AnalysisResult:
    """Predicted vs actual repeat purchases in the holdout period.

    Parameters
    ----------
    model : BetaGeoFitter, ModifiedBetaGeoFitter or ParetoNBDFitter
        Fitted on the calibration part of ``summary``.
    summary : DataFrame
        From :func:`rfm_summary` with ``observation_end`` (``frequency_holdout`` and
        ``duration_holdout`` are needed).

    Returns
    -------
    AnalysisResult
        ``table``: by calibration frequency (0..6, "7+"): customers, mean actual and mean
        predicted holdout purchases (and totals). ``summary``: ``correlation`` (Pearson, per
        customer), ``mae``, ``rmse``, ``actual_total``, ``predicted_total``, ``customers``.

    Examples
    --------
    >>> bg = BetaGeoFitter.from_dict({"model": "BetaGeoFitter",
    ...     "params": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}})
    >>> s = pd.DataFrame({"frequency": [0.0, 2.0, 5.0], "recency": [0.0, 30.0, 35.0],
    ...     "T": [38.0, 38.0, 38.0], "frequency_holdout": [0.0, 1.0, 3.0],
    ...     "duration_holdout": 39.0})
    >>> r = holdout_evaluation(bg, s)
    >>> r.summary["correlation"] > 0.9
    True
    """
    _check_transaction_model(model)
    for col in ("frequency_holdout", "duration_holdout"):
        if col not in summary.columns:
            raise DataError(
                "the summary has no holdout column",
                column=col,
                hint="build it with rfm_summary(..., observation_end=...)",
            )
    x, tx, t_end = _columns(summary, ("frequency", "recency", "T"))
    actual = _float_array(summary["frequency_holdout"], "frequency_holdout")
    duration = _horizon(summary["duration_holdout"], "duration_holdout")
    predicted = np.asarray(
        model.conditional_expected_number_of_purchases_up_to_time(duration, x, tx, t_end)
    )
    err = predicted - actual
    corr = (
        float(np.corrcoef(predicted, actual)[0, 1])
        if len(x) > 1 and np.std(predicted) > 0 and np.std(actual) > 0
        else math.nan
    )
    labels = [str(i) for i in range(7)] + ["7+"]
    bucket = pd.Categorical(
        np.array(labels, dtype=object)[np.minimum(x, 7).astype(int)], categories=labels
    )
    frame = pd.DataFrame({"frequency": bucket, "actual": actual, "predicted": predicted})
    table = frame.groupby("frequency", observed=False).agg(
        customers=("actual", "size"),
        actual=("actual", "mean"),
        predicted=("predicted", "mean"),
        actual_total=("actual", "sum"),
        predicted_total=("predicted", "sum"),
    )
    table = table.reset_index()
    table["frequency"] = table["frequency"].astype(str)
    label = getattr(model, "_label", type(model).__name__)
    summary_out = {
        "model": label,
        "customers": len(x),
        "correlation": corr,
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "actual_total": float(actual.sum()),
        "predicted_total": float(predicted.sum()),
        "holdout_length": float(np.median(duration)),
    }
    notes = [
        f"{label} predictions of repeat purchases in the holdout period, compared per customer "
        "and by calibration-period frequency"
    ]
    return AnalysisResult("clv_holdout", table, summary_out, notes)


def tracking_cumulative(
    model: Any,
    transactions: pd.DataFrame,
    *,
    customer_col: str,
    date_col: str,
    calibration_end: Any,
    observation_end: Any,
    time_unit_days: float = 7.0,
    date_format: str | None = None,
) -> pd.DataFrame:
    """Expected vs actual cumulative repeat purchases of the cohort, period by period.

    The data of the standard tracking plot: periods of ``time_unit_days`` counted from the
    first purchase day in the data; the cohort is the customers whose first purchase is on or
    before ``calibration_end``; expected values are the model's unconditional expectation for
    each customer from their first purchase day.

    Returns
    -------
    DataFrame
        ``period`` (1, 2, ...), ``end`` (last day of the period), ``actual``, ``expected``
        (repeat purchases in the period), ``actual_cumulative``, ``expected_cumulative`` and
        ``calibration`` (True for periods that end on or before ``calibration_end``).

    Examples
    --------
    >>> bg = BetaGeoFitter.from_dict({"model": "BetaGeoFitter",
    ...     "params": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}})
    >>> tx = pd.DataFrame({"c": ["a", "a", "b"],
    ...     "d": pd.to_datetime(["2024-01-01", "2024-01-20", "2024-01-03"])})
    >>> t = tracking_cumulative(bg, tx, customer_col="c", date_col="d",
    ...     calibration_end="2024-01-14", observation_end="2024-01-28")
    >>> t.actual_cumulative.tolist()
    [0.0, 0.0, 1.0, 1.0]
    """
    _check_transaction_model(model)
    summary = rfm_summary(
        transactions,
        customer_col=customer_col,
        date_col=date_col,
        calibration_end=calibration_end,
        observation_end=observation_end,
        time_unit_days=time_unit_days,
        date_format=date_format,
    )
    cal = _day(calibration_end, "calibration_end")
    obs = _day(observation_end, "observation_end")
    day = _dates(transactions[date_col], date_col, date_format)
    frame = pd.DataFrame({"customer": transactions[customer_col].to_numpy(), "day": day})
    frame = frame[frame["customer"].isin(summary.index) & (frame["day"] <= obs)]
    frame = frame.drop_duplicates()
    first = frame.groupby("customer")["day"].transform("min")
    start = first.min()
    unit = float(time_unit_days)
    first_idx = ((first - start).dt.days).to_numpy(dtype=float)
    day_idx = ((frame["day"] - start).dt.days).to_numpy(dtype=float)
    obs_idx = float((obs - start).days)
    n_periods = int(math.floor(obs_idx / unit)) + 1
    periods = np.arange(1, n_periods + 1)
    end_idx = np.minimum(np.ceil(periods * unit) - 1, obs_idx)
    repeat = day_idx > first_idx
    period_of = np.floor(day_idx[repeat] / unit).astype(int)
    actual = np.bincount(period_of, minlength=n_periods)[:n_periods].astype(float)
    cust_first = frame.loc[~repeat].drop_duplicates("customer")
    f_days = ((cust_first["day"] - start).dt.days).to_numpy(dtype=float)
    uniq, counts = np.unique(f_days, return_counts=True)
    elapsed = (end_idx[None, :] - uniq[:, None]) / unit
    expected_cum = np.zeros(n_periods)
    pos = elapsed > 0
    if pos.any():
        vals = np.zeros_like(elapsed)
        vals[pos] = model._unconditional(elapsed[pos])
        expected_cum = counts @ vals
    expected = np.diff(np.concatenate([[0.0], expected_cum]))
    ends = start + pd.to_timedelta(end_idx, unit="D")
    return pd.DataFrame(
        {
            "period": periods,
            "end": ends,
            "actual": actual,
            "expected": expected,
            "actual_cumulative": np.cumsum(actual),
            "expected_cumulative": expected_cum,
            "calibration": ends <= cal,
        }
    )
