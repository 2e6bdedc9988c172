"""Marketing KPIs over time (day, week, month) and by channel, campaign or country.

Definitions (all computed in the engine):

- **revenue**: net amount of the period's orders (returns and cancellations subtract);
- **orders**: completed orders; **customers**: distinct customers with a completed order;
- **new customers**: customers whose first completed order falls in the period (by channel or
  country: whose first order was in that channel or country); **returning**: per period the rest
  of the period's customers, per channel or country the customers with a later order there;
  **repeat rate** = returning / customers;
- **average order value** = revenue of completed orders / orders;
- **sessions**, **converting sessions** (a session with a ``purchase`` event) and **conversion
  rate** = converting / sessions, from events;
- **click-through**: ``ad_click`` / ``ad_impression``; e-mail **open rate** ``email_open`` /
  ``email_send`` and **click rate** ``email_click`` / ``email_send``;
- by campaign: **cost** (the campaign's cost), **conversions** (``purchase`` events carrying the
  campaign id, the shop's own tracking), their **revenue**, **cost per acquisition** = cost /
  conversions and **return on ad spend** = revenue / cost, where cost is known;
- by channel: orders, revenue and customers by ``orders.channel``, with cost from the channel's
  campaigns, so CPA = cost / orders and ROAS = revenue / cost where cost is known.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mercato.analytics.base import AnalysisResult
from mercato.analytics.rfm import order_amounts
from mercato.errors import DataError

FREQS = {"day": "D", "week": "W", "month": "M"}
DIMENSIONS = ("channel", "campaign", "country")


def _safe_div(a: pd.Series, b: pd.Series) -> pd.Series:
    a = pd.to_numeric(a, errors="coerce").astype(float)
    b = pd.to_numeric(b, errors="coerce").astype(float)
    return (a / b.where(b != 0)).astype(float)


def kpis(warehouse: Any, *, freq: str = "month", by: str | None = None) -> AnalysisResult:
    """KPIs per period (``freq``: day, week, month) or per ``by`` (channel, campaign, country).

    Examples
    --------
    >>> from mercato.data.warehouse import Warehouse
    >>> wh = Warehouse("duckdb://:memory:")
    >>> _ = wh.ensure_tables()
    >>> kpis(wh).notes
    ['no orders in the data: revenue KPIs are empty']
    """
    if freq not in FREQS:
        raise DataError(f"unknown period {freq!r}", expected="day, week or month")
    if by is not None and by not in DIMENSIONS:
        raise DataError(f"cannot break KPIs down by {by!r}", expected=", ".join(DIMENSIONS))
    if by == "campaign":
        return _by_campaign(warehouse)
    o = order_amounts(warehouse)
    notes: list[str] = []
    n_orders = int(o.count().execute())
    if n_orders == 0:
        notes.append("no orders in the data: revenue KPIs are empty")
    completed = o.status == "completed"
    first = (
        o.filter(completed & o.customer_id.notnull())
        .group_by("customer_id")
        .aggregate(first_ts=o.ts.min())
    )
    key = by if by else "period"
    unit = FREQS[freq]
    if by:
        o = o.mutate(key=o[by].fill_null("(unknown)"))
    else:
        o = o.mutate(key=o.ts.truncate(unit))
    j = o.left_join(first, "customer_id")
    if by:
        is_new = j.ts == j.first_ts
    else:
        is_new = j.first_ts.truncate(unit) == j.key
    comp = j.status == "completed"
    agg = j.group_by("key").aggregate(
        revenue=j.amount.sum(),
        orders=comp.ifelse(1, 0).sum(),
        completed_revenue=j.amount.sum(where=comp),
        customers=j.customer_id.nunique(where=comp),
        new_customers=j.customer_id.nunique(where=comp & is_new),
        repeat_customers=j.customer_id.nunique(where=comp & ~is_new),
        guest_orders=(comp & j.customer_id.isnull()).ifelse(1, 0).sum(),
    )
    table = (
        agg.execute()
        if n_orders
        else pd.DataFrame(
            columns=[
                "key",
                "revenue",
                "orders",
                "completed_revenue",
                "customers",
                "new_customers",
                "repeat_customers",
                "guest_orders",
            ]
        )
    )
    if by:  # a customer can both start and come back within one channel or country
        table["returning_customers"] = table.pop("repeat_customers")
    else:  # in a period a customer is either new (first order in it) or returning
        table.pop("repeat_customers")
        table["returning_customers"] = table.customers - table.new_customers
    table["aov"] = _safe_div(table.completed_revenue, table.orders)
    table["repeat_rate"] = _safe_div(table.returning_customers, table.customers)
    ev = _event_kpis(warehouse, by, unit)
    if ev is not None and len(ev):
        table = table.merge(ev, on="key", how="outer")
    if by == "channel":
        cost = _channel_cost(warehouse)
        if cost is not None:
            table = table.merge(cost, on="key", how="left")
            table["cpa"] = _safe_div(table.cost, table.orders)
            table["roas"] = _safe_div(table.revenue, table.cost)
        else:
            notes.append("no campaign cost data: CPA and ROAS are not computed")
    table = table.rename(columns={"key": key}).sort_values(key).reset_index(drop=True)
    for c in (
        "orders",
        "customers",
        "new_customers",
        "returning_customers",
        "guest_orders",
        "sessions",
        "converting_sessions",
    ):
        if c in table:
            table[c] = table[c].fillna(0).astype(int)
    if "guest_orders" in table and table.guest_orders.sum():
        notes.append(
            f"{int(table.guest_orders.sum()):,} guest orders count in revenue and orders but "
            "not in customers"
        )
    summary = {
        "by": by or freq,
        "revenue": float(table.revenue.fillna(0).sum()) if "revenue" in table else 0.0,
        "orders": int(table.orders.sum()) if "orders" in table else 0,
        "periods": len(table),
    }
    if "sessions" in table and table.sessions.sum():
        summary["conversion_rate"] = float(table.converting_sessions.sum() / table.sessions.sum())
    return AnalysisResult("kpis", table, summary, notes)


def _event_kpis(warehouse: Any, by: str | None, unit: str) -> pd.DataFrame | None:
    if by == "country":
        return None  # events carry no country; the customer's country would need a join
    e = warehouse.table("events")
    if int(e.count().execute()) == 0:
        return None
    e = e.mutate(key=e.channel.fill_null("(unknown)") if by == "channel" else e.ts.truncate(unit))
    t = e.event_type
    sess = e.filter(e.session_id.notnull())
    s = sess.group_by(["key", "session_id"]).aggregate(
        bought=(sess.event_type == "purchase").ifelse(1, 0).max()
    )
    sessions = (
        s.group_by("key")
        .aggregate(sessions=s.count(), converting_sessions=s.bought.sum())
        .execute()
    )
    counts = (
        e.group_by("key")
        .aggregate(
            ad_impressions=(t == "ad_impression").ifelse(1, 0).sum(),
            ad_clicks=(t == "ad_click").ifelse(1, 0).sum(),
            email_sends=(t == "email_send").ifelse(1, 0).sum(),
            email_opens=(t == "email_open").ifelse(1, 0).sum(),
            email_clicks=(t == "email_click").ifelse(1, 0).sum(),
        )
        .execute()
    )
    out = counts.merge(sessions, on="key", how="outer")
    out["conversion_rate"] = _safe_div(out.converting_sessions, out.sessions)
    out["ctr"] = _safe_div(out.ad_clicks, out.ad_impressions)
    out["email_open_rate"] = _safe_div(out.email_opens, out.email_sends)
    out["email_click_rate"] = _safe_div(out.email_clicks, out.email_sends)
    return out


def _channel_cost(warehouse: Any) -> pd.DataFrame | None:
    c = warehouse.table("campaigns")
    cost = c.filter(c.cost.notnull()).group_by(key=c.channel).aggregate(cost=c.cost.sum())
    df = cost.execute()
    return df if len(df) else None


def _by_campaign(warehouse: Any) -> AnalysisResult:
    c = warehouse.table("campaigns")
    e = warehouse.table("events")
    ce = e.filter(e.campaign_id.notnull())
    t = ce.event_type
    ev = ce.group_by("campaign_id").aggregate(
        impressions=(t == "ad_impression").ifelse(1, 0).sum(),
        clicks=(t.isin(["ad_click", "email_click", "social_click", "sms_click"]))
        .ifelse(1, 0)
        .sum(),
        sends=(t == "email_send").ifelse(1, 0).sum(),
        opens=(t == "email_open").ifelse(1, 0).sum(),
        conversions=(t == "purchase").ifelse(1, 0).sum(),
        revenue=ce.value.sum(where=t == "purchase"),
    )
    j = c.left_join(ev, c.campaign_id == ev.campaign_id).select(
        c.campaign_id,
        c.name,
        c.channel,
        c.start_ts,
        c.end_ts,
        c.cost,
        ev.impressions,
        ev.clicks,
        ev.sends,
        ev.opens,
        ev.conversions,
        ev.revenue,
    )
    table = j.order_by("campaign_id").execute()
    notes = []
    if table.empty:
        notes.append("no campaigns in the data")
    for col in ("impressions", "clicks", "sends", "opens", "conversions"):
        table[col] = table[col].fillna(0).astype(int)
    table["revenue"] = table["revenue"].fillna(0.0)
    table["ctr"] = _safe_div(table.clicks, table.impressions)
    table["cpa"] = _safe_div(table.cost, table.conversions)
    table["roas"] = _safe_div(table.revenue, table.cost)
    no_cost = int(table.cost.isna().sum()) if len(table) else 0
    if no_cost:
        notes.append(f"{no_cost:,} campaigns have no cost: their CPA and ROAS are empty")
    notes.append("conversions are purchase events carrying the campaign id (the shop's tracking)")
    summary = {
        "by": "campaign",
        "campaigns": len(table),
        "cost": float(table.cost.fillna(0).sum()),
        "conversions": int(table.conversions.sum()),
        "revenue": float(table.revenue.sum()),
    }
    return AnalysisResult("kpis", table, summary, notes)
