"""RFM: recency, frequency and monetary scores and named segments, computed in the engine.

- **Recency**: days from the customer's last completed order to ``as_of`` (default: the day after
  the last order in the data).
- **Frequency**: number of completed orders.
- **Monetary**: net revenue of the customer's orders (returns and cancellations, negative
  lines, are subtracted).
- **Scores** 1-5 by quintile of the rank (``percent_rank``): ties share a score, so a value held by
  many customers (one order) is not split arbitrarily. 5 is best: most recent, most frequent,
  highest spend.
- **Segments** from R and FM = round((F + M) / 2):

  ======  ==================  ==================  ================  ================  =========
  R \\ FM  5                   4                   3                 2                 1
  ======  ==================  ==================  ================  ================  =========
  5       Champions           Champions           Potential loyal.  Potential loyal.  New
  4       Champions           Loyal               Potential loyal.  Potential loyal.  Promising
  3       Loyal               Loyal               Need attention    About to sleep    About to sleep
  2       Cannot lose them    At risk             At risk           Hibernating       Hibernating
  1       Cannot lose them    Cannot lose them    At risk           Lost              Lost
  ======  ==================  ==================  ================  ================  =========

Guest orders (no customer id) cannot be scored; they are counted in the notes.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mercato.analytics.base import AnalysisResult
from mercato.errors import DataError

SEGMENTS = (
    "Champions",
    "Loyal",
    "Potential loyalists",
    "New",
    "Promising",
    "Need attention",
    "About to sleep",
    "At risk",
    "Cannot lose them",
    "Hibernating",
    "Lost",
)

#: (R, FM) -> segment; each row lists FM = 5, 4, 3, 2, 1 (the table in the module docstring)
_ROWS = {
    5: ("Champions", "Champions", "Potential loyalists", "Potential loyalists", "New"),
    4: ("Champions", "Loyal", "Potential loyalists", "Potential loyalists", "Promising"),
    3: ("Loyal", "Loyal", "Need attention", "About to sleep", "About to sleep"),
    2: ("Cannot lose them", "At risk", "At risk", "Hibernating", "Hibernating"),
    1: ("Cannot lose them", "Cannot lose them", "At risk", "Lost", "Lost"),
}
GRID: dict[tuple[int, int], str] = {
    (r, fm): name
    for r, names in _ROWS.items()
    for fm, name in zip((5, 4, 3, 2, 1), names, strict=True)
}

RFM_TABLE = "customer_rfm"


def order_amounts(warehouse: Any, purpose: str | None = None):
    """Orders with their net amount (sum of quantity x unit price of their lines), an Ibis table.

    ``purpose``: only orders of customers who may be used for it (and guest orders)."""
    orders = warehouse.table("orders")
    if purpose is not None:
        from mercato.data.consent import allowed

        orders, _ = allowed(warehouse, orders, purpose)
    lines = warehouse.table("order_lines")
    amount = lines.group_by("order_id").aggregate(
        amount=(lines.quantity * lines.unit_price).sum(), line_count=lines.count()
    )
    j = orders.left_join(amount, "order_id")
    return j.select(
        "order_id",
        "customer_id",
        "ts",
        "status",
        "channel",
        "country",
        amount=j.amount.fill_null(0.0),
    )


def _score(col, ascending: bool):
    import ibis

    key = col if ascending else col.desc()
    pr = ibis.percent_rank().over(order_by=key)
    return (pr * 5).floor().cast("int64").clip(upper=4) + 1


def rfm_expr(warehouse: Any, as_of: Any = None, purpose: str | None = None):
    """The per-customer RFM table as an Ibis expression (nothing is executed here).

    ``purpose``: scored among the customers who may be used for it only (the others' orders
    do not move anyone's ranks)."""
    import ibis

    o = order_amounts(warehouse, purpose)
    known = o.filter(o.customer_id.notnull())
    completed = known.status == "completed"
    per = known.group_by("customer_id").aggregate(
        frequency=completed.ifelse(1, 0).sum(),
        last_order=known.ts.max(where=completed),
        first_order=known.ts.min(where=completed),
        monetary=known.amount.sum(),
    )
    per = per.filter(per.frequency > 0)
    if as_of is None:
        # the last order in the data, guest orders included (as the summary reports it)
        as_of_expr = o.ts.max().as_scalar() + ibis.interval(days=1)
    else:
        as_of_expr = ibis.literal(pd.Timestamp(as_of).to_pydatetime())
    per = per.mutate(
        recency_days=(as_of_expr.epoch_seconds() - per.last_order.epoch_seconds()) / 86400.0,
    )
    per = per.mutate(
        r=_score(per.recency_days, ascending=False),
        f=_score(per.frequency, ascending=True),
        # rounded: a float sum's last digits depend on summation order, and equal spends must
        # share a score
        m=_score(per.monetary.round(6), ascending=True),
    )
    per = per.mutate(fm=((per.f + per.m) / 2.0).round().cast("int64"))
    cases = [((per.r == r) & (per.fm == fm), name) for (r, fm), name in GRID.items()]
    seg = ibis.cases(*cases, else_=ibis.null("string"))
    per = per.mutate(
        segment=seg, rfm_code=per.r.cast("string") + per.f.cast("string") + per.m.cast("string")
    )
    return per.select(
        "customer_id",
        "recency_days",
        "frequency",
        "monetary",
        "first_order",
        "last_order",
        "r",
        "f",
        "m",
        "rfm_code",
        "segment",
    )


def rfm(warehouse: Any, *, as_of: Any = None, write: bool = True) -> AnalysisResult:
    """RFM segments with counts and revenue shares; per-customer scores written back.

    The per-customer table goes to the warehouse table ``customer_rfm`` (replaced on each run);
    it holds a person, so erasure finds it (``mercato.data.schema.DERIVED``).

    Examples
    --------
    >>> from mercato.data.warehouse import Warehouse
    >>> import pandas as pd
    >>> from mercato.data.ingest import ingest_frame
    >>> wh = Warehouse("duckdb://:memory:")
    >>> _ = ingest_frame(wh, "orders", pd.DataFrame({"order_id": ["1", "2"],
    ...     "customer_id": ["a", "b"], "ts": ["2024-01-01", "2024-03-01"],
    ...     "status": "completed"}))
    >>> _ = ingest_frame(wh, "order_lines", pd.DataFrame({"order_id": ["1", "2"],
    ...     "line_no": 1, "product_id": "p", "quantity": 1, "unit_price": [5.0, 9.0]}))
    >>> rfm(wh, write=False).summary["customers"]
    2
    """
    o = order_amounts(warehouse)
    stats = (
        o.aggregate(
            orders=o.count(),
            guest_orders=o.customer_id.isnull().ifelse(1, 0).sum(),
            guest_revenue=o.amount.sum(where=o.customer_id.isnull()),
            revenue=o.amount.sum(),
            non_completed=(o.status != "completed").ifelse(1, 0).sum(),
            last=o.ts.max(),
        )
        .execute()
        .iloc[0]
    )
    if int(stats["orders"]) == 0:
        raise DataError(
            "no orders in the warehouse: RFM needs purchases",
            hint="load orders and order_lines (mercato ingest, datasets load or synth --load)",
        )
    per = rfm_expr(warehouse, as_of)
    if write:
        warehouse.create_table_from(RFM_TABLE, per)
        per = warehouse.table(RFM_TABLE)
    seg = (
        per.group_by("segment")
        .aggregate(
            customers=per.count(),
            revenue=per.monetary.sum(),
            avg_recency_days=per.recency_days.mean(),
            avg_frequency=per.frequency.mean(),
            avg_monetary=per.monetary.mean(),
        )
        .execute()
    )
    customers = int(seg.customers.sum())
    if customers == 0:
        raise DataError("no customer has a completed order: nothing to score")
    seg = seg.set_index("segment").reindex(list(SEGMENTS)).fillna({"customers": 0, "revenue": 0.0})
    seg["customers"] = seg["customers"].astype(int)
    total_rev = float(seg.revenue.sum())
    seg["customer_share"] = seg.customers / customers
    seg["revenue_share"] = seg.revenue / total_rev if total_rev else 0.0
    seg = seg.reset_index()[
        [
            "segment",
            "customers",
            "customer_share",
            "revenue",
            "revenue_share",
            "avg_recency_days",
            "avg_frequency",
            "avg_monetary",
        ]
    ]
    notes = []
    if int(stats["guest_orders"]):
        notes.append(
            f"{int(stats['guest_orders']):,} guest orders without a customer id "
            f"({float(stats['guest_revenue'] or 0):,.2f} revenue) cannot be scored and are left out"
        )
    if int(stats["non_completed"]):
        notes.append(
            f"{int(stats['non_completed']):,} cancellation/return documents are not counted as "
            "orders; their negative amounts reduce the customers' monetary value"
        )
    summary = {
        "customers": customers,
        "as_of": str(
            pd.Timestamp(as_of)
            if as_of is not None
            else pd.Timestamp(stats["last"]) + pd.Timedelta(days=1)
        ),
        "revenue": total_rev,
        "written_to": RFM_TABLE if write else None,
    }
    return AnalysisResult("rfm", seg, summary, notes)
