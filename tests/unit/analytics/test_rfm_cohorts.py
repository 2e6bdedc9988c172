"""RFM and cohorts on crafted data whose answers are known, on both engines."""

from __future__ import annotations

import pandas as pd
import pytest

from mercato.analytics.cohorts import cohorts
from mercato.analytics.rfm import GRID, SEGMENTS, rfm
from mercato.data.ingest import ingest_frame
from mercato.errors import DataError


def shop(warehouse, n=50):
    rows, lines = [], []
    base = pd.Timestamp("2024-01-01")
    k = 0
    for i in range(n):
        # customer i: i % 5 + 1 orders, the last one i days before the end
        for j in range(i % 5 + 1):
            oid = f"O{k}"
            rows.append((oid, f"C{i:02d}", base + pd.Timedelta(days=200 - i - 10 * j), "completed"))
            lines.append((oid, 1, "P1", 1, float(10 + i)))
            k += 1
    rows.append(("G1", None, base + pd.Timedelta(days=5), "completed"))  # a guest order
    lines.append(("G1", 1, "P1", 1, 99.0))
    rows.append(("R1", "C00", base + pd.Timedelta(days=201), "returned"))
    lines.append(("R1", 1, "P1", -1, 10.0))
    ingest_frame(
        warehouse, "orders", pd.DataFrame(rows, columns=["order_id", "customer_id", "ts", "status"])
    )
    ingest_frame(
        warehouse,
        "order_lines",
        pd.DataFrame(
            lines, columns=["order_id", "line_no", "product_id", "quantity", "unit_price"]
        ),
    )


def test_grid_covers_every_cell_and_segment():
    assert len(GRID) == 25 and set(GRID.values()) == set(SEGMENTS)


def test_rfm_scores_and_segments(warehouse):
    shop(warehouse)
    r = rfm(warehouse)
    assert r.summary["customers"] == 50
    assert r.table.customers.sum() == 50
    assert r.table.revenue_share.sum() == pytest.approx(1.0)
    assert any("guest orders" in n for n in r.notes)
    per = warehouse.table("customer_rfm").execute().set_index("customer_id")
    assert per.loc["C04", "frequency"] == 5 and per.loc["C00", "frequency"] == 1
    assert per.loc["C00", "monetary"] == pytest.approx(0.0)  # bought 10, returned 10
    assert per.loc["C00", "r"] == 5  # most recent
    assert per.loc["C49", "r"] == 1
    # frequency ties share a score: every one-order customer has the same F
    assert per[per.frequency == 1].f.nunique() == 1
    assert set(per.segment) <= set(SEGMENTS)
    assert per.loc["C49", "segment"] in ("Lost", "Hibernating", "At risk", "Cannot lose them")


def test_rfm_without_orders_is_a_clear_error(warehouse):
    with pytest.raises(DataError, match="no orders"):
        rfm(warehouse)


def test_cohorts_by_hand(warehouse):
    orders = pd.DataFrame(
        {
            "order_id": ["1", "2", "3", "4", "5"],
            "customer_id": ["a", "a", "b", "c", "a"],
            "ts": ["2024-01-05", "2024-02-07", "2024-01-20", "2024-02-01", "2024-04-02"],
            "status": "completed",
        }
    )
    lines = pd.DataFrame(
        {
            "order_id": list("12345"),
            "line_no": 1,
            "product_id": "p",
            "quantity": 1,
            "unit_price": [1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    ingest_frame(warehouse, "orders", orders)
    ingest_frame(warehouse, "order_lines", lines)
    t = cohorts(warehouse).table.set_index(["cohort", "month"])
    assert t.loc[("2024-01", 0), "cohort_size"] == 2
    assert t.loc[("2024-01", 1), "retention"] == pytest.approx(0.5)
    assert t.loc[("2024-01", 2), "active"] == 0  # filled gap
    assert t.loc[("2024-01", 3), "revenue"] == pytest.approx(5.0)
    assert t.loc[("2024-01", 3), "cumulative_revenue_per_customer"] == pytest.approx(11 / 2)
    assert t.loc[("2024-02", 0), "cohort_size"] == 1
    assert ("2024-02", 3) not in t.index  # past the data's last month


def test_cohorts_empty(warehouse):
    r = cohorts(warehouse)
    assert r.table.empty and "no customer" in r.notes[0]


def test_equal_spend_shares_a_score_and_as_of_counts_guests(warehouse):
    orders = pd.DataFrame(
        {
            "order_id": ["1", "2", "3", "4", "5", "G"],
            "customer_id": ["a", "b", "c", "d", "e", None],
            "ts": [
                "2024-01-01",
                "2024-01-02",
                "2024-01-03",
                "2024-01-04",
                "2024-01-05",
                "2024-03-01",
            ],
            "status": "completed",
        }
    )
    lines = pd.DataFrame(
        {
            "order_id": ["1", "1", "2", "3", "4", "5", "G"],
            "line_no": [1, 2, 1, 1, 1, 1, 1],
            "product_id": "p",
            "quantity": 1,
            "unit_price": [0.1, 0.2, 0.3, 0.3, 5.0, 9.0, 1.0],  # a: 0.1 + 0.2, b and c: 0.3
        }
    )
    ingest_frame(warehouse, "orders", orders)
    ingest_frame(warehouse, "order_lines", lines)
    r = rfm(warehouse)
    per = warehouse.table("customer_rfm").execute().set_index("customer_id")
    assert per.loc["a", "m"] == per.loc["b", "m"] == per.loc["c", "m"]
    assert r.summary["as_of"].startswith("2024-03-02")
    assert per.loc["e", "recency_days"] == pytest.approx(57.0)  # 2024-01-05 to 2024-03-02
