"""Customer lifetime value from end to end: summary, fit, holdout check, scores, warehouse.

:func:`run_clv` is what ``mercato clv run`` and the demo call. From transactions (the
workspace's completed orders, or any file of customer / date / value rows) it:

1. builds the per-customer summary (frequency, recency, T, spend; time in days / 7);
2. when the data go past ``calibration_end``, fits the transaction model (BG/NBD by default)
   on the calibration period and checks it on the rest (the holdout): predicted vs actual
   repeat purchases by calibration frequency, per-customer correlation and errors, and the
   cumulative tracking curve;
3. fits the models used for scoring on all the data up to the end of the period (so scores
   use every purchase), with standard errors and 95% intervals for every parameter;
4. scores every customer: expected purchases over the horizon, P(alive), expected spend per
   purchase (Gamma-Gamma) and the discounted CLV.

:func:`write_scores` puts the scores in the warehouse table ``customer_clv`` (one row per
customer, replaced on each run), where segments, the report and the real-time service read
them; the models go to the registry with the customers they were trained on.

Fallbacks, each stated in the notes:

- repeat buyers whose mean repeat spend is 0 or less (free or refunded orders) are left out of
  the Gamma-Gamma fit; like one-time buyers, their expected spend is the population's mean;
- with fewer than :data:`MIN_SPEND_CUSTOMERS` repeat buyers with a positive spend, or no
  values at all, no spend model is fitted: expected purchases and P(alive) only, no CLV.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mercato.analytics.base import AnalysisResult
from mercato.errors import DataError
from mercato.models.clv import (
    DAYS_PER_MONTH,
    BetaGeoFitter,
    GammaGammaFitter,
    ModifiedBetaGeoFitter,
    ParetoNBDFitter,
    discounted_expected_purchases,
    holdout_evaluation,
    purchase_days,
    rfm_summary,
    tracking_cumulative,
)

__all__ = [
    "MIN_SPEND_CUSTOMERS",
    "SCORE_COLUMNS",
    "SCORES_TABLE",
    "TRANSACTION_MODELS",
    "ClvRun",
    "read_transactions",
    "run_clv",
    "save_run",
    "write_scores",
]

#: The transaction models by the name the CLI takes.
TRANSACTION_MODELS: dict[str, type] = {
    "bgnbd": BetaGeoFitter,
    "mbgnbd": ModifiedBetaGeoFitter,
    "pareto": ParetoNBDFitter,
}
#: The warehouse table of per-customer scores.
SCORES_TABLE = "customer_clv"
#: Fewest repeat buyers with a positive spend to fit Gamma-Gamma.
MIN_SPEND_CUSTOMERS = 10
#: The columns of the scores (and of ``customer_clv``, with ``model``, ``scored_at``).
SCORE_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "frequency",
    "recency",
    "T",
    "monetary_value",
    "expected_purchases",
    "p_alive",
    "expected_spend",
    "clv",
)

Progress = Callable[[str], None]


@dataclass
class ClvRun:
    """Everything one CLV run produced.

    ``scores`` has :data:`SCORE_COLUMNS` (one row per customer; ``expected_spend`` and ``clv``
    are NaN without a spend model). ``holdout`` and ``tracking`` exist when the data go past
    the calibration end. ``summary`` holds the headline numbers (JSON-ready) and ``notes``
    say, in words, what was left out or assumed.
    """

    model: Any
    spend_model: Any | None
    scores: pd.DataFrame
    summary: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    holdout: AnalysisResult | None = None
    tracking: pd.DataFrame | None = None
    calibration_model: Any | None = None

    def deciles(self) -> pd.DataFrame:
        """Customers by CLV decile (1 = highest): customers, mean CLV, share of total CLV."""
        col = "clv" if self.spend_model is not None else "expected_purchases"
        s = self.scores[col].to_numpy(dtype=float)
        n = len(s)
        if n == 0:
            return pd.DataFrame(columns=["decile", "customers", "mean", "share"])
        order = np.argsort(-s, kind="stable")
        decile = np.empty(n, dtype=int)
        decile[order] = np.arange(n) * 10 // n + 1
        frame = pd.DataFrame({"decile": decile, "v": s})
        g = frame.groupby("decile")["v"].agg(["size", "mean", "sum"]).reset_index()
        total = float(np.nansum(s)) or 1.0
        return pd.DataFrame(
            {
                "decile": g["decile"],
                "customers": g["size"],
                "mean": g["mean"],
                "share": g["sum"] / total,
            }
        )

    def to_dict(self, top: int = 10) -> dict[str, Any]:
        """JSON-ready: summary, notes, holdout table, tracking curve, deciles, top customers."""
        col = "clv" if self.spend_model is not None else "expected_purchases"
        best = self.scores.nlargest(top, col) if len(self.scores) and top else self.scores[:0]
        out: dict[str, Any] = {
            "analysis": "clv",
            "summary": self.summary,
            "notes": self.notes,
            "deciles": _records(self.deciles()),
            "top_customers": _records(best),
        }
        if self.holdout is not None:
            out["holdout"] = {"summary": self.holdout.summary, "rows": self.holdout.records()}
        if self.tracking is not None:
            out["tracking"] = _records(self.tracking)
        return out


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return AnalysisResult("rows", frame).records()


def _check_horizon(horizon_months: Any, discount_rate_monthly: Any) -> None:
    if (
        not isinstance(horizon_months, int | np.integer)
        or isinstance(horizon_months, bool)
        or horizon_months <= 0
    ):
        raise DataError(
            "the CLV horizon must be a whole number of months above zero",
            column="horizon_months",
            value=horizon_months,
            expected="an integer >= 1 (for example 12)",
        )
    if not (isinstance(discount_rate_monthly, int | float) and 0 <= discount_rate_monthly < 1):
        raise DataError(
            "the monthly discount rate must be in [0, 1)",
            column="discount_rate_monthly",
            value=discount_rate_monthly,
            expected="for example 0.01 (1% a month)",
        )


def read_transactions(
    path: str | Path,
    *,
    customer: str,
    date: str,
    value: str | None = None,
    names: list[str] | None = None,
    date_format: str | None = None,
) -> pd.DataFrame:
    """Read a transactions file (CSV, TSV, whitespace-separated text, gzip, or Parquet).

    The delimiter is detected (comma, semicolon, tab, ``|`` or runs of spaces); ``names`` gives
    the columns of a file without a header (e.g. CDNOW's ``id cohort date cds value``).

    Returns
    -------
    DataFrame
        Columns ``customer``, ``date`` and ``value`` (when asked), in file order; the
        customer id is text.

    Raises
    ------
    DataError
        An unreadable file, or a named column that is not in it (the message lists its columns).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError("no such file", file=str(p))
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(p)
        else:
            frame = pd.read_csv(
                p,
                sep=_sniff(p),
                engine="python" if _sniff(p) == r"\s+" else "c",
                header=None if names else "infer",
                names=names,
                dtype=str,
                skipinitialspace=True,
                keep_default_na=True,
            )
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read the transactions: {exc}", file=str(p)) from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    wanted = {"customer": customer, "date": date} | ({"value": value} if value else {})
    for what, col in wanted.items():
        if col not in frame.columns:
            raise DataError(
                f"the {what} column is not in the file",
                file=str(p),
                column=col,
                hint=f"its columns: {', '.join(frame.columns)}"
                + ("" if names else " (a file without a header needs --names)"),
            )
    out = pd.DataFrame(
        {"customer": frame[customer].astype("string").str.strip(), "date": frame[date]}
    )
    if value:
        raw = frame[value]
        num = pd.to_numeric(raw, errors="coerce")
        bad = num.isna() & raw.notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{int(bad.sum()):,} values are not numbers",
                file=str(p),
                row=i + 1,
                column=value,
                value=raw.iloc[i],
                expected="a number",
            )
        out["value"] = num.astype(float)
    out.attrs["date_format"] = date_format
    return out


def _sniff(path: Path) -> str:
    import gzip

    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        head = [f.readline() for _ in range(5)]
    text = "".join(head)
    for sep in (",", ";", "\t", "|"):
        if sep in text:
            return sep
    return r"\s+"


def run_clv(
    source: Any,
    *,
    calibration_end: Any = None,
    observation_end: Any = None,
    model: str = "bgnbd",
    horizon_months: int = 12,
    discount_rate_monthly: float = 0.01,
    time_unit_days: float = 7.0,
    customer_col: str = "customer",
    date_col: str = "date",
    value_col: str | None = "value",
    date_format: str | None = None,
    progress: Progress | None = None,
) -> ClvRun:
    """Fit, check and score customer lifetime value.

    Parameters
    ----------
    source : Warehouse or DataFrame
        A warehouse (its completed orders) or transactions (one row per purchase, e.g. from
        :func:`read_transactions`).
    calibration_end : date-like, optional
        Last day of the calibration period. Default: the last purchase day (no holdout).
        When the data go past it, the model is checked on the days after it.
    observation_end : date-like, optional
        Last day used (default: the last purchase day).
    model : {"bgnbd", "mbgnbd", "pareto"}
        The transaction model.
    horizon_months : int, default 12
        CLV horizon in months (>= 1).
    discount_rate_monthly : float, default 0.01
        Monthly discount rate of the CLV.
    time_unit_days : float, default 7
        Days per time unit of the models (7: weeks as days / 7).
    customer_col, date_col, value_col : str
        Columns of a transactions frame (``value_col=None``: no spend, no CLV).
    date_format : str, optional
        ``strftime`` format of text dates (``%Y%m%d`` for CDNOW).
    progress : callable, optional
        Called with the name of each step as it starts.

    Returns
    -------
    ClvRun

    Raises
    ------
    DataError
        Unknown model, a horizon of zero, no purchases, or no repeat purchase at all.
    """
    step = progress or (lambda _s: None)
    if model not in TRANSACTION_MODELS:
        raise DataError(
            f"unknown CLV model {model!r}",
            column="model",
            value=model,
            expected=", ".join(TRANSACTION_MODELS),
        )
    _check_horizon(horizon_months, discount_rate_monthly)
    step("reading purchases")
    notes: list[str] = []
    if isinstance(source, pd.DataFrame):
        tx = source
        if value_col is not None and value_col not in tx.columns:
            value_col = None
        dates = _parse_dates(tx, date_col, date_format)
        tx = tx.assign(**{date_col: dates})
        if dates.isna().all():
            raise DataError("no transactions: a CLV needs purchases", column=date_col)
        last_day = dates.max().normalize()
        cust, dcol, vcol = customer_col, date_col, value_col
    else:
        end = observation_end or _last_day(source)
        tx, notes = purchase_days(source, end)
        last_day = pd.Timestamp(tx["day"].max())
        cust, dcol, vcol = "customer_id", "day", "value"
    obs_end = _as_day(observation_end, "observation_end") if observation_end else last_day
    cal_end = _as_day(calibration_end, "calibration_end") if calibration_end else obs_end
    if cal_end > obs_end:
        raise DataError(
            "the calibration end is after the last day of the data",
            column="calibration_end",
            value=str(cal_end.date()),
            expected=f"on or before {obs_end.date()}",
        )
    holdout_days = int((obs_end - cal_end).days)
    kwargs: dict[str, Any] = {
        "customer_col": cust,
        "date_col": dcol,
        "value_col": vcol,
        "time_unit_days": time_unit_days,
    }
    cls = TRANSACTION_MODELS[model]
    calib_model = holdout = tracking = None
    if holdout_days > 0:
        step("fitting on the calibration period")
        calib = rfm_summary(tx, calibration_end=cal_end, observation_end=obs_end, **kwargs)
        _check_repeat(calib, cal_end)
        calib_model = cls().fit(calib)
        step("checking on the holdout period")
        holdout = holdout_evaluation(calib_model, calib)
        tracking = tracking_cumulative(
            calib_model,
            tx,
            customer_col=cust,
            date_col=dcol,
            calibration_end=cal_end,
            observation_end=obs_end,
            time_unit_days=time_unit_days,
        )
    step("fitting on all the data")
    full = rfm_summary(tx, calibration_end=obs_end, **kwargs)
    notes.extend(n for n in full.attrs.get("notes", []) if n not in notes)
    _check_repeat(full, obs_end)
    fitted = cls().fit(full)
    spend_model = None
    n_spend = 0
    if vcol is not None:
        ok = (full["frequency"] > 0) & (full["monetary_value"] > 0)
        nonpos = int(((full["frequency"] > 0) & (full["monetary_value"] <= 0)).sum())
        n_spend = int(ok.sum())
        if nonpos:
            notes.append(
                f"{nonpos:,} repeat buyers have a mean repeat spend of 0 or less (free or "
                "refunded orders): left out of the spend model; their expected spend is the "
                "population mean"
            )
        if n_spend >= MIN_SPEND_CUSTOMERS:
            step("fitting the spend model")
            spend_model = GammaGammaFitter().fit(
                full.loc[ok, "frequency"], full.loc[ok, "monetary_value"]
            )
            corr = _spend_frequency_correlation(full[ok])
            if corr is not None and abs(corr) > 0.3:
                notes.append(
                    f"spend and frequency of repeat buyers are correlated ({corr:+.2f}): "
                    "Gamma-Gamma assumes they are independent, so its CLV may be biased"
                )
        else:
            notes.append(
                f"only {n_spend} repeat buyers with a positive spend (at least "
                f"{MIN_SPEND_CUSTOMERS} needed): no spend model, so no CLV in money; expected "
                "purchases and P(alive) only"
            )
    else:
        notes.append("no purchase values: expected purchases and P(alive) only, no CLV")
    step("scoring customers")
    scores = _score(
        fitted, spend_model, full, horizon_months, discount_rate_monthly, time_unit_days
    )
    summary = _summary(
        model=model,
        fitted=fitted,
        spend_model=spend_model,
        calib_model=calib_model,
        holdout=holdout,
        scores=scores,
        cal_end=cal_end,
        obs_end=obs_end,
        first_day=pd.Timestamp(tx[dcol].min()),
        horizon_months=horizon_months,
        discount_rate_monthly=discount_rate_monthly,
        time_unit_days=time_unit_days,
        n_spend=n_spend,
    )
    return ClvRun(
        model=fitted,
        spend_model=spend_model,
        scores=scores,
        summary=summary,
        notes=notes + [n for n in fitted.notes_ if n not in notes],
        holdout=holdout,
        tracking=tracking,
        calibration_model=calib_model,
    )


def _parse_dates(tx: pd.DataFrame, col: str, date_format: str | None) -> pd.Series:
    if col not in tx.columns:
        raise DataError(
            "no such column in the transactions",
            column=col,
            hint=f"its columns: {', '.join(map(str, tx.columns))}",
        )
    raw = tx[col]
    if pd.api.types.is_datetime64_any_dtype(raw):
        return raw
    parsed = pd.to_datetime(raw, format=date_format, errors="coerce")
    bad = parsed.isna() & raw.notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{int(bad.sum()):,} dates cannot be read",
            row=i + 1,
            column=col,
            value=raw.iloc[i],
            expected=f"a date in the format {date_format}" if date_format else "a date",
            hint=None if date_format else "give the format (e.g. --date-format %Y%m%d)",
        )
    return parsed


def _as_day(value: Any, name: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise DataError("not a date", column=name, value=value, expected="YYYY-MM-DD") from exc
    if ts is pd.NaT or pd.isna(ts):
        raise DataError("not a date", column=name, value=value, expected="YYYY-MM-DD")
    return ts.tz_localize(None).normalize() if ts.tzinfo else ts.normalize()


def _last_day(warehouse: Any) -> pd.Timestamp:
    if not warehouse.has_table("orders") or warehouse.count("orders") == 0:
        raise DataError(
            "no orders in the warehouse: CLV needs purchases",
            hint="load orders and order_lines (mercato ingest, datasets load or synth --load)",
        )
    t = warehouse.table("orders")
    last = t.filter(t.status == "completed").ts.max().execute()
    if last is None or pd.isna(last):
        raise DataError("no completed order in the warehouse: CLV needs purchases")
    return pd.Timestamp(last).normalize()


def _check_repeat(summary: pd.DataFrame, end: pd.Timestamp) -> None:
    if not (summary["frequency"] > 0).any():
        raise DataError(
            f"all {len(summary):,} customers bought only once up to {end.date()}: with no "
            "repeat purchase there is no purchase rate to learn",
            column="frequency",
            hint="use a longer period or a later --calibration-end",
        )


def _spend_frequency_correlation(repeat: pd.DataFrame) -> float | None:
    if len(repeat) < 3:
        return None
    x = repeat["frequency"].to_numpy(dtype=float)
    m = repeat["monetary_value"].to_numpy(dtype=float)
    if np.std(x) == 0 or np.std(m) == 0:
        return None
    return float(np.corrcoef(x, m)[0, 1])


def _score(
    fitted: Any,
    spend_model: Any | None,
    full: pd.DataFrame,
    horizon_months: int,
    discount: float,
    unit_days: float,
) -> pd.DataFrame:
    x = full["frequency"].to_numpy(dtype=float)
    tx = full["recency"].to_numpy(dtype=float)
    T = full["T"].to_numpy(dtype=float)
    horizon = horizon_months * DAYS_PER_MONTH / unit_days
    out = pd.DataFrame({"customer_id": full.index.astype(str)})
    out["frequency"] = x
    out["recency"] = tx
    out["T"] = T
    has_value = "monetary_value" in full.columns
    m = full["monetary_value"].to_numpy(dtype=float) if has_value else np.zeros(len(x))
    out["monetary_value"] = m
    out["expected_purchases"] = np.asarray(
        fitted.conditional_expected_number_of_purchases_up_to_time(horizon, x, tx, T), dtype=float
    )
    out["p_alive"] = np.asarray(fitted.conditional_probability_alive(x, tx, T), dtype=float)
    if spend_model is not None:
        # one-time buyers and repeat buyers without a positive spend: the population's mean
        usable = (x > 0) & (m > 0)
        spend = np.asarray(
            spend_model.conditional_expected_average_profit(
                np.where(usable, x, 0.0), np.where(usable, m, 0.0)
            ),
            dtype=float,
        )
        discounted = discounted_expected_purchases(
            fitted,
            x,
            tx,
            T,
            time_months=horizon_months,
            discount_rate_monthly=discount,
            freq_days=unit_days,
        )
        out["expected_spend"] = spend
        out["clv"] = spend * np.asarray(discounted, dtype=float)
    else:
        out["expected_spend"] = np.nan
        out["clv"] = np.nan
    return out


def _param_table(model: Any) -> dict[str, Any]:
    ci = model.confidence_intervals_()
    out: dict[str, Any] = {}
    for name, value in model.params_.items():
        se = model.standard_errors_.get(name)
        out[name] = {
            "value": value,
            "se": None if se is None or not math.isfinite(se) else se,
            "lower_95": _finite(ci.loc[name, "lower"]) if name in ci.index else None,
            "upper_95": _finite(ci.loc[name, "upper"]) if name in ci.index else None,
        }
    return out


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _summary(
    *,
    model: str,
    fitted: Any,
    spend_model: Any | None,
    calib_model: Any | None,
    holdout: AnalysisResult | None,
    scores: pd.DataFrame,
    cal_end: pd.Timestamp,
    obs_end: pd.Timestamp,
    first_day: pd.Timestamp,
    horizon_months: int,
    discount_rate_monthly: float,
    time_unit_days: float,
    n_spend: int,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model": model,
        "model_class": type(fitted).__name__,
        "customers": len(scores),
        "repeat_customers": int((scores["frequency"] > 0).sum()),
        "spend_customers": n_spend,
        "first_day": str(first_day.date()),
        "calibration_end": str(cal_end.date()),
        "observation_end": str(obs_end.date()),
        "holdout_days": int((obs_end - cal_end).days),
        "time_unit_days": time_unit_days,
        "horizon_months": horizon_months,
        "discount_rate_monthly": discount_rate_monthly,
        "parameters": _param_table(fitted),
        "log_likelihood": _finite(fitted.log_likelihood_),
        "expected_purchases_total": float(scores["expected_purchases"].sum()),
        "p_alive_mean": float(scores["p_alive"].mean()),
    }
    if spend_model is not None:
        out["spend_parameters"] = _param_table(spend_model)
        out["clv_total"] = float(scores["clv"].sum())
        out["clv_mean"] = float(scores["clv"].mean())
        out["clv_median"] = float(scores["clv"].median())
        out["population_mean_spend"] = float(spend_model.conditional_expected_average_profit())
    if calib_model is not None:
        out["calibration_parameters"] = dict(calib_model.params_)
        out["calibration_log_likelihood"] = _finite(calib_model.log_likelihood_)
    if holdout is not None:
        out["holdout"] = {
            k: holdout.summary.get(k)
            for k in ("correlation", "mae", "rmse", "actual_total", "predicted_total")
        }
    return out


def write_scores(warehouse: Any, run: ClvRun, *, model_ref: str | None = None) -> int:
    """Replace the warehouse table ``customer_clv`` with the run's scores; rows written.

    Columns: :data:`SCORE_COLUMNS` plus ``horizon_months``, ``model`` (the registry
    reference, e.g. ``clv@v3``, or the model class) and ``scored_at`` (UTC).
    """
    import ibis

    frame = run.scores.copy()
    frame["horizon_months"] = int(run.summary["horizon_months"])
    frame["model"] = model_ref or run.summary["model_class"]
    frame["scored_at"] = pd.Timestamp(dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0))
    warehouse.create_table_from(SCORES_TABLE, ibis.memtable(frame))
    return len(frame)


def save_run(ws: Any, wh: Any, run: Any, *, name: str = "clv") -> dict[str, Any]:
    """Save the run's models to the registry and its scores to ``customer_clv``.

    The transaction model is saved as ``name`` (kind ``clv``) with the run's evaluation (what
    the report shows, without customer ids) and the spend model as ``<name>-spend``; returns
    the references (``clv@v3``...), the table and the rows written.
    """
    from mercato.models.registry import ModelRegistry

    reg = ModelRegistry(ws)
    ids = run.scores["customer_id"].tolist()
    window = {
        "first_day": run.summary["first_day"],
        "calibration_end": run.summary["calibration_end"],
        "observation_end": run.summary["observation_end"],
    }
    metrics = {"log_likelihood": run.summary["log_likelihood"]}
    metrics.update({f"holdout_{k}": v for k, v in (run.summary.get("holdout") or {}).items()})
    mv = reg.save(
        run.model,
        name=name,
        kind="clv",
        metrics=metrics,
        params={"model": run.summary["model"], "time_unit_days": run.summary["time_unit_days"]},
        data_window=window,
        customers=ids,
        notes=run.notes,
        # what the report shows: summary, holdout and tracking tables, deciles (no customer ids)
        documents={"evaluation.json": run.to_dict(top=0)},
    )
    out: dict[str, Any] = {"model": f"{name}@v{mv.version}"}
    if run.spend_model is not None:
        sv = reg.save(
            run.spend_model,
            name=f"{name}-spend",
            kind="clv-spend",
            params={"transaction_model": out["model"]},
            data_window=window,
            customers=ids,
        )
        out["spend_model"] = f"{name}-spend@v{sv.version}"
    out["table"] = "customer_clv"
    out["rows"] = write_scores(wh, run, model_ref=out["model"])
    return out
