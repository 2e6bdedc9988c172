"""KPIs and funnels on crafted data with known answers, on both engines."""

from __future__ import annotations

import pandas as pd
import pytest

from mercato.analytics.funnels import funnel
from mercato.analytics.kpis import kpis
from mercato.data.ingest import ingest_frame
from mercato.errors import DataError


@pytest.fixture
def shop(warehouse):
    orders = pd.DataFrame(
        {
            "order_id": ["1", "2", "3", "4", "5"],
            "customer_id": ["a", "a", "b", None, "b"],
            "ts": ["2024-01-05", "2024-02-07", "2024-01-20", "2024-01-21", "2024-02-10"],
            "status": ["completed", "completed", "completed", "completed", "returned"],
            "channel": ["email", "seo", "email", "seo", "email"],
            "country": "GB",
        }
    )
    lines = pd.DataFrame(
        {
            "order_id": list("12345"),
            "line_no": 1,
            "product_id": "p",
            "quantity": [1, 1, 2, 1, -1],
            "unit_price": 10.0,
        }
    )
    campaigns = pd.DataFrame(
        {"campaign_id": ["K1", "K2"], "channel": ["email", "seo"], "cost": [5.0, None]}
    )
    t0 = pd.Timestamp("2024-01-05 10:00")
    h = pd.Timedelta(hours=1)
    events = pd.DataFrame(
        [
            ("e1", "a", None, "s1", t0, "view", "email", "K1", None),
            ("e2", "a", None, "s1", t0 + h, "add_to_cart", "email", None, None),
            ("e3", "a", None, "s1", t0 + 2 * h, "purchase", "email", "K1", 10.0),
            ("e4", None, "v9", "s2", t0, "view", "seo", None, None),
            ("e5", None, "v9", "s2", t0 + h, "add_to_cart", "seo", None, None),
            ("e6", "b", None, "s3", t0, "view", "email", None, None),
            ("e7", "b", None, "s4", t0 + 9 * 24 * h, "add_to_cart", "email", None, None),
            ("e8", "b", None, "s3", t0 - h, "purchase", "email", None, 5.0),  # before view
            ("e9", "c", None, None, t0, "ad_impression", "ads", "K1", None),
            ("e10", "c", None, None, t0, "ad_click", "ads", "K1", None),
            ("e11", "d", None, None, t0, "ad_impression", "ads", None, None),
        ],
        columns=[
            "event_id",
            "customer_id",
            "anonymous_id",
            "session_id",
            "ts",
            "event_type",
            "channel",
            "campaign_id",
            "value",
        ],
    )
    ingest_frame(warehouse, "orders", orders)
    ingest_frame(warehouse, "order_lines", lines)
    ingest_frame(warehouse, "campaigns", campaigns)
    ingest_frame(warehouse, "events", events)
    return warehouse


def test_monthly_kpis(shop):
    r = kpis(shop, freq="month")
    t = r.table.set_index(r.table.period.astype(str).str[:7])
    jan, feb = t.loc["2024-01"], t.loc["2024-02"]
    assert jan.orders == 3 and jan.revenue == pytest.approx(40.0)
    assert jan.customers == 2 and jan.new_customers == 2 and jan.guest_orders == 1
    assert feb.orders == 1 and feb.revenue == pytest.approx(0.0)  # 10 bought, 10 returned
    assert feb.customers == 1 and feb.returning_customers == 1 and feb.repeat_rate == 1.0
    assert jan.aov == pytest.approx(40.0 / 3)
    assert jan.ctr == pytest.approx(0.5)
    assert jan.sessions == 4 and jan.converting_sessions == 2
    assert any("guest orders" in n for n in r.notes)


def test_channel_and_campaign_kpis(shop):
    t = kpis(shop, by="channel").table.set_index("channel")
    assert t.loc["email", "orders"] == 2 and t.loc["email", "cost"] == 5.0
    assert t.loc["email", "cpa"] == pytest.approx(2.5)
    assert t.loc["email", "roas"] == pytest.approx((10 + 20 - 10) / 5.0)
    c = kpis(shop, by="campaign")
    ct = c.table.set_index("campaign_id")
    assert ct.loc["K1", "conversions"] == 1 and ct.loc["K1", "revenue"] == 10.0
    assert ct.loc["K1", "cpa"] == 5.0 and ct.loc["K1", "roas"] == 2.0
    assert pd.isna(ct.loc["K2", "cpa"]) and any("no cost" in n for n in c.notes)
    with pytest.raises(DataError, match="cannot break KPIs down"):
        kpis(shop, by="weather")


def test_funnel_order_window_and_actors(shop):
    r = funnel(shop, ["view", "add_to_cart", "purchase"], window_hours=48)
    t = r.table.set_index("step")
    # a: view -> cart -> purchase; v9: view -> cart; b: view, cart 9 days later (out of the
    # window), purchase before the view (out of order)
    assert t.loc["view", "actors"] == 3
    assert t.loc["add_to_cart", "actors"] == 2 and t.loc["purchase", "actors"] == 1
    assert t.loc["add_to_cart", "drop_off"] == 1
    assert t.loc["purchase", "conversion_from_first"] == pytest.approx(1 / 3)
    assert t.loc["add_to_cart", "median_hours_from_previous"] == pytest.approx(1.0)
    wide = funnel(shop, ["view", "add_to_cart"], window_hours=24 * 30).table.set_index("step")
    assert wide.loc["add_to_cart", "actors"] == 3
    sessions = funnel(shop, ["view", "add_to_cart"], per_session=True).table.set_index("step")
    assert sessions.loc["view", "actors"] == 3 and sessions.loc["add_to_cart", "actors"] == 2
    by = funnel(shop, ["view", "purchase"], by="channel").table
    assert set(by.group) == {"email", "seo"}


def test_funnel_bad_input(shop):
    r = funnel(shop, ["view", "sms_click"])
    assert r.table.set_index("step").loc["sms_click", "actors"] == 0
    assert "no 'sms_click' events" in r.notes[0]
    with pytest.raises(DataError, match="unknown event types"):
        funnel(shop, ["view", "teleport"])
    with pytest.raises(DataError, match="at least two steps"):
        funnel(shop, ["view"])
    with pytest.raises(DataError, match="customer_rfm"):
        funnel(shop, ["view", "purchase"], by="segment")


def test_empty_warehouse(warehouse):
    assert kpis(warehouse).notes == ["no orders in the data: revenue KPIs are empty"]
    r = funnel(warehouse, ["view", "purchase"])
    assert r.summary["entered"] == 0
