"""Data profile on crafted data with known answers (both engines) and on the synthetic shop."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pytest

from mercato.analytics.profile import ISSUE_KINDS, PROFILE_COLUMNS, profile, profile_table
from mercato.data.ingest import ingest_folder, ingest_frame
from mercato.data.schema import TABLES
from mercato.data.warehouse import Warehouse


def _frame(warehouse, table, rows, columns):
    ingest_frame(warehouse, table, pd.DataFrame(rows, columns=columns))


def dirty_shop(warehouse):
    """Small tables with known problems (see the assertions)."""
    _frame(
        warehouse,
        "customers",
        [
            ("c1", "2023-12-01", "GB", "a@example.com", 1980),
            ("c2", None, None, "b@example.com", None),
            ("c3", "2023-12-03", None, "c@example.com", 1990),
        ],
        ["customer_id", "created_at", "country", "email", "birth_year"],
    )
    _frame(
        warehouse,
        "products",
        [("P1", "A", 10.0), ("P2", "B", 20.0)],
        ["product_id", "category", "price"],
    )
    _frame(
        warehouse,
        "orders",
        [
            ("O1", "c1", "2024-01-01 10:00", "completed"),
            ("O2", "c2", "2024-01-02 10:00", "completed"),
            ("O3", "c9", "2024-01-10 10:00", "completed"),  # unknown customer
            ("O4", None, "2024-01-10 11:00", "returned"),  # a guest: not an unknown customer
        ],
        ["order_id", "customer_id", "ts", "status"],
    )
    # Duplicate keys cannot come through ingestion (it deduplicates): write them directly.
    ts = pa.array(
        [
            pd.Timestamp("2024-01-01 10:00"),
            pd.Timestamp("2024-01-02 10:00"),
            pd.Timestamp("2024-01-02 10:00"),
        ],
        pa.timestamp("us"),
    )
    warehouse.append_arrow(
        "orders",
        [
            pa.table(
                {
                    "order_id": ["O1", "O2", "O2"],
                    "customer_id": ["c1", "c2", "c2"],
                    "ts": ts,
                    "status": ["completed"] * 3,
                }
            )
        ],
    )
    _frame(
        warehouse,
        "order_lines",
        [
            ("O1", 1, "P1", 1, 1.0),
            ("O1", 2, "P9", 1, 2.0),  # unknown product
            ("O2", 1, "P2", 2, 3.0),
            ("O8", 1, "P1", 1, 4.0),  # unknown order
            ("O9", 1, "P2", 1, 100.0),  # unknown order; an outlier price
        ],
        ["order_id", "line_no", "product_id", "quantity", "unit_price"],
    )
    _frame(
        warehouse,
        "events",
        [
            ("e1", "c1", None, "2024-01-01", "view", "P1", None),
            ("e2", "c7", None, "2024-01-01", "view", "P1", None),  # unknown customer
            ("e3", None, "anon1", "2024-01-02", "view", "P5", None),  # unknown product
            ("e4", "c1", None, "2024-01-02", "email_open", None, "K9"),  # unknown campaign
        ],
        [
            "event_id",
            "customer_id",
            "anonymous_id",
            "ts",
            "event_type",
            "product_id",
            "campaign_id",
        ],
    )
    _frame(warehouse, "campaigns", [("K1", "email")], ["campaign_id", "channel"])
    _frame(
        warehouse,
        "campaign_exposures",
        [("K1", "c1", "treatment", "2024-01-01"), ("K2", "c2", "control", "2024-01-01")],
        ["campaign_id", "customer_id", "group", "ts"],
    )
    _frame(
        warehouse,
        "touchpoints",
        [
            ("t1", "c1", None, "2024-01-01", "email"),
            ("t2", "c8", None, "2024-01-01", "ads"),  # unknown customer
            ("t3", None, "anon1", "2024-01-01", "seo"),
        ],
        ["touchpoint_id", "customer_id", "anonymous_id", "ts", "channel"],
    )


def test_profile_counts_missing_duplicates_and_unknown_references(warehouse):
    dirty_shop(warehouse)
    res = profile(warehouse)
    s = res.summary
    assert s["rows"] == {
        "customers": 3,
        "consents": 0,
        "products": 2,
        "orders": 7,
        "order_lines": 5,
        "events": 4,
        "campaigns": 1,
        "campaign_exposures": 2,
        "touchpoints": 3,
    }
    assert s["absent"] == []
    col = res.table.set_index(["table", "column"])
    assert list(res.table.columns) == list(PROFILE_COLUMNS)
    assert col.loc[("customers", "country"), "missing"] == 2
    assert col.loc[("customers", "country"), "missing_share"] == pytest.approx(2 / 3)
    assert col.loc[("customers", "birth_year"), "missing"] == 1
    assert col.loc[("orders", "customer_id"), "missing"] == 1
    assert col.loc[("orders", "order_id"), "distinct"] == 4
    # unit_price 1, 2, 3, 4, 100: quartiles 2 and 4, fences -1 and 7: one outlier
    price = col.loc[("order_lines", "unit_price")]
    assert (price["min"], price["max"]) == (1.0, 100.0)
    assert price["mean"] == pytest.approx(22.0)
    assert (price["p25"], price["p50"], price["p75"]) == pytest.approx((2.0, 3.0, 4.0))
    assert price["p99"] == pytest.approx(4.0 + 0.96 * 96.0)  # linear interpolation
    assert price["outliers"] == 1
    assert col.loc[("order_lines", "quantity"), "outliers"] == 1  # IQR 0: the single 2
    assert col.loc[("orders", "status"), "top_values"] == [
        {"value": "completed", "count": 6},
        {"value": "returned", "count": 1},
    ]
    assert col.loc[("customers", "email"), "top_values"] is None  # personal data: not shown

    orders = s["tables"]["orders"]
    assert (orders["duplicate_keys"], orders["duplicate_key_rows"]) == (2, 5)
    assert orders["coverage"]["days"] == 3
    assert orders["coverage"]["longest_gap_days"] == 7
    assert (orders["coverage"]["gap_from"], orders["coverage"]["gap_to"]) == (
        "2024-01-03",
        "2024-01-09",
    )
    refs = {
        (t, r["column"]): (r["unknown_rows"], r["unknown_values"])
        for t, v in s["tables"].items()
        for r in v.get("references", [])
    }
    assert refs[("order_lines", "order_id")] == (2, 2)
    assert refs[("order_lines", "product_id")] == (1, 1)
    assert refs[("orders", "customer_id")] == (1, 1)
    assert refs[("events", "customer_id")] == (1, 1)
    assert refs[("events", "product_id")] == (1, 1)
    assert refs[("events", "campaign_id")] == (1, 1)
    assert refs[("campaign_exposures", "campaign_id")] == (1, 1)
    assert refs[("campaign_exposures", "customer_id")] == (0, 0)
    assert refs[("touchpoints", "customer_id")] == (1, 1)

    issues = s["issues"]
    assert issues[0] == "5 orders share their key (order_id) with another row (2 duplicated keys)"
    for text in (
        "2 order lines refer to unknown orders (2 distinct order_id not in orders)",
        "1 order line refers to an unknown product (1 distinct product_id not in products)",
        "1 order refers to an unknown customer (1 distinct customer_id not in customers)",
        "1 event refers to an unknown campaign (1 distinct campaign_id not in campaigns)",
        "1 exposure refers to an unknown campaign (1 distinct campaign_id not in campaigns)",
        "1 touchpoint refers to an unknown customer (1 distinct customer_id not in customers)",
        "orders.channel is missing in every row (7 orders)",
        "consents is empty",
    ):
        assert text in issues
    assert len(issues) == len(s["issue_kinds"])
    ranks = [ISSUE_KINDS.index(k) for k in s["issue_kinds"]]
    assert ranks == sorted(ranks)  # most serious first
    assert not any("date" in i and "orders" in i for i in issues)  # a sparse table: no gap issue
    json.dumps(res.to_dict())  # plain values all the way down


def test_a_gap_in_a_dense_table_is_an_issue(warehouse):
    days = ["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-10"]
    rows = [(f"e{d}-{i}", "c1", d, "view") for d in days for i in range(25)]
    _frame(warehouse, "events", rows, ["event_id", "customer_id", "ts", "event_type"])
    res = profile_table(warehouse, "events")
    cov = res.summary["coverage"]
    assert (cov["days"], cov["span_days"], cov["longest_gap_days"]) == (4, 10, 6)
    gaps = [
        text
        for kind, text in zip(res.summary["issue_kinds"], res.summary["issues"], strict=True)
        if kind == "date_gap"
    ]
    assert len(gaps) == 1 and gaps[0].startswith(
        "events has no rows on 6 consecutive days (2024-03-04 to 2024-03-09)"
    )


def test_empty_and_absent_tables_give_notes_not_errors(warehouse):
    res = profile(warehouse)
    assert set(res.summary["rows"].values()) == {0}
    assert res.summary["issues"] == [f"{name} is empty" for name in TABLES]
    assert len(res.table) == sum(len(t.columns) for t in TABLES.values())
    assert res.table.missing.eq(0).all() and res.table.missing_share.isna().all()

    warehouse.drop_table("products")
    res = profile(warehouse, ["orders", "products", "order_lines"])
    assert res.summary["absent"] == ["products"]
    assert res.summary["rows"]["products"] is None
    assert any("absent from the warehouse: products" in n for n in res.notes)

    _frame(
        warehouse,
        "order_lines",
        [("O1", 1, "P1", 1, 2.0)],
        ["order_id", "line_no", "product_id", "quantity", "unit_price"],
    )
    res = profile_table(warehouse, "order_lines")
    assert any("product_id not checked" in n for n in res.notes)
    refs = res.summary["references"]
    assert refs == [
        {
            "column": "order_id",
            "refers_to": "orders.order_id",
            "unknown_rows": 1,
            "unknown_values": 1,
        }
    ]
    assert res.summary["issues"] == [
        "1 order line refers to an unknown order (1 distinct order_id not in orders); "
        "the orders table is empty"
    ]

    missing = profile_table(warehouse, "no_such_table")
    assert missing.summary["present"] is False and missing.table.empty
    assert "no table 'no_such_table'" in missing.notes[0]


def test_profile_of_the_synthetic_shop(tmp_path):
    from mercato.data.synth import generate_shop

    shop = generate_shop(tmp_path / "shop", customers=2000, days=120, seed=1)
    with Warehouse(f"duckdb://{tmp_path / 'wh.duckdb'}") as wh:
        wh.ensure_tables()
        ingest_folder(wh, tmp_path / "shop")
        res = profile(wh)
    s = res.summary
    assert s["rows"] == shop.rows
    assert s["issues"] == []  # the generator writes consistent data
    for name, spec in TABLES.items():
        t = s["tables"][name]
        assert t["duplicate_keys"] == 0
        assert all(r["unknown_rows"] == 0 for r in t.get("references", []))
        if spec.time_column and name not in (
            "customers",
            "consents",
            "products",
            "campaigns",
            "campaign_exposures",
        ):
            assert t["coverage"]["days"] == 120 and t["coverage"]["longest_gap_days"] == 0
    col = res.table.set_index(["table", "column"])
    assert col.loc[("orders", "order_id"), "distinct"] == shop.rows["orders"]
    statuses = {d["value"] for d in col.loc[("orders", "status"), "top_values"]}
    assert statuses <= {"completed", "returned", "cancelled", "pending"}
    assert col.loc[("order_lines", "unit_price"), "min"] > 0
