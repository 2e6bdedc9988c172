"""Acquisition cohorts: retention and revenue by months since the first purchase.

A customer's cohort is the calendar month of their first completed order. For every cohort and
every month offset (0 = the acquisition month) the table gives the customers active (with a
completed order in that month), the retention (active / cohort size), the net revenue (returns
subtracted) and the cumulative revenue per cohort customer. Computed in the engine.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mercato.analytics.base import AnalysisResult
from mercato.analytics.rfm import order_amounts
from mercato.errors import DataError

COLUMNS = [
    "cohort",
    "month",
    "cohort_size",
    "active",
    "retention",
    "revenue",
    "orders",
    "revenue_per_customer",
    "cumulative_revenue_per_customer",
]


def _month_index(ts):
    return ts.year() * 12 + ts.month() - 1


def cohorts(warehouse: Any, *, max_months: int = 24) -> AnalysisResult:
    """Customer retention and revenue by acquisition month and months since first purchase.

    Examples
    --------
    >>> from mercato.data.warehouse import Warehouse
    >>> from mercato.data.ingest import ingest_frame
    >>> wh = Warehouse("duckdb://:memory:")
    >>> _ = wh.ensure_tables()
    >>> _ = ingest_frame(wh, "orders", pd.DataFrame({"order_id": ["1", "2", "3"],
    ...     "customer_id": ["a", "a", "b"], "ts": ["2024-01-05", "2024-02-07", "2024-01-20"],
    ...     "status": "completed"}))
    >>> r = cohorts(wh)
    >>> r.table[["cohort", "month", "active", "retention"]].values.tolist()
    [['2024-01', 0, 2, 1.0], ['2024-01', 1, 1, 0.5]]
    """
    if max_months < 1:
        raise DataError(f"max_months is {max_months}", expected="at least 1")
    o = order_amounts(warehouse)
    known = o.filter(o.customer_id.notnull())
    done = known.filter(known.status == "completed")
    first = done.group_by("customer_id").aggregate(first_ts=done.ts.min())
    first = first.mutate(cohort_idx=_month_index(first.first_ts))
    # revenue: every document (returns included) of known customers, by the month it happened
    j = known.inner_join(first, "customer_id")
    j = j.mutate(offset=_month_index(j.ts) - j.cohort_idx)
    j = j.filter((j.offset >= 0) & (j.offset <= max_months))
    act = j.group_by(["cohort_idx", "offset"]).aggregate(
        active=j.customer_id.nunique(where=j.status == "completed"),
        revenue=j.amount.sum(),
        orders=(j.status == "completed").ifelse(1, 0).sum(),
    )
    size = first.group_by("cohort_idx").aggregate(cohort_size=first.count())
    res = act.inner_join(size, "cohort_idx").order_by(["cohort_idx", "offset"]).execute()
    guest = int(o.filter(o.customer_id.isnull()).count().execute())
    notes = []
    if guest:
        notes.append(
            f"{guest:,} guest orders without a customer id have no cohort and are left out"
        )
    if res.empty:
        return AnalysisResult(
            "cohorts",
            pd.DataFrame(columns=COLUMNS),
            {"cohorts": 0, "customers": 0},
            notes + ["no customer has a completed order: there are no cohorts"],
        )
    # fill missing (cohort, month) cells up to the last month observed in the data
    last_idx = int((res.cohort_idx + res.offset).max())
    full = []
    for cohort_idx, size_ in res.groupby("cohort_idx")["cohort_size"].first().items():
        for off in range(0, min(max_months, last_idx - int(cohort_idx)) + 1):
            full.append((int(cohort_idx), off, int(size_)))
    grid = pd.DataFrame(full, columns=["cohort_idx", "offset", "cohort_size"])
    res = grid.merge(res.drop(columns="cohort_size"), on=["cohort_idx", "offset"], how="left")
    res[["active", "orders"]] = res[["active", "orders"]].fillna(0).astype(int)
    res["revenue"] = res["revenue"].fillna(0.0).astype(float)
    res["retention"] = res.active / res.cohort_size
    res["revenue_per_customer"] = res.revenue / res.cohort_size
    res["cumulative_revenue_per_customer"] = res.groupby("cohort_idx")[
        "revenue_per_customer"
    ].cumsum()
    res["cohort"] = [f"{i // 12:04d}-{i % 12 + 1:02d}" for i in res.cohort_idx]
    res = res.rename(columns={"offset": "month"})
    table = res[COLUMNS]
    m1 = table[table.month == 1]
    summary = {
        "cohorts": int(table.cohort.nunique()),
        "customers": int(table[table.month == 0].cohort_size.sum()),
        "month_1_retention": float(m1.active.sum() / m1.cohort_size.sum()) if len(m1) else None,
        "max_months": max_months,
    }
    return AnalysisResult("cohorts", table.reset_index(drop=True), summary, notes)
