"""Customer clusters: planted groups recovered on both engines, bad input, the synthetic shop."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mercato.analytics.segments import (
    CLUSTERS_TABLE,
    FEATURE_NAMES,
    NON_BUYERS_NAME,
    cluster_customers,
    customer_features,
)
from mercato.data.ingest import ingest_folder, ingest_frame
from mercato.data.warehouse import Warehouse
from mercato.errors import DataError

END = pd.Timestamp("2024-06-30")

#: group -> (orders per customer, unit price, days between orders, sign-up days before END)
GROUPS = {
    "once": (1, 10.0, 0, 200),
    "regular": (5, 60.0, 20, 400),
    "vip": (20, 400.0, 5, 900),
}


def planted_shop(warehouse, per_group=12, non_buyers=2):
    """Three well-separated groups of customers, plus customers who never bought."""
    customers, orders, lines = [], [], []
    truth = {}
    for g, (n_orders, price, every, signup) in GROUPS.items():
        for i in range(per_group):
            cid = f"{g}-{i:02d}"
            truth[cid] = g
            customers.append((cid, END - pd.Timedelta(days=signup + i)))
            # the once-buyers last bought ~5 months ago, the others in the last weeks
            last = END - pd.Timedelta(days=(150 if g == "once" else 2) + i % 3)
            for j in range(n_orders):
                oid = f"{cid}-{j}"
                orders.append((oid, cid, last - pd.Timedelta(days=every * j), "completed"))
                lines.append((oid, 1, "P1", 1, price * (1 + 0.02 * (i % 5))))
    for i in range(non_buyers):
        customers.append((f"nb-{i}", END - pd.Timedelta(days=30 + i)))
    ingest_frame(
        warehouse, "customers", pd.DataFrame(customers, columns=["customer_id", "created_at"])
    )
    ingest_frame(
        warehouse,
        "orders",
        pd.DataFrame(orders, columns=["order_id", "customer_id", "ts", "status"]),
    )
    ingest_frame(
        warehouse,
        "order_lines",
        pd.DataFrame(
            lines, columns=["order_id", "line_no", "product_id", "quantity", "unit_price"]
        ),
    )
    return truth


def test_features_are_computed_in_the_engine(warehouse):
    planted_shop(warehouse, per_group=2, non_buyers=1)
    f = customer_features(warehouse).execute().set_index("customer_id")
    assert list(f.columns) == list(FEATURE_NAMES)
    assert len(f) == 7
    vip = f.loc["vip-00"]
    assert vip.frequency == 20 and vip.monetary == pytest.approx(8000.0)
    assert vip.avg_order_value == pytest.approx(400.0)
    # as_of is the day after the last order (END - 2 days for vip-00 / regular-00)
    assert vip.recency_days == pytest.approx(1.0)
    assert vip.tenure_days == pytest.approx(899.0)
    nb = f.loc["nb-0"]
    assert (nb.frequency, nb.monetary, nb.avg_order_value) == (0, 0.0, 0.0)
    assert nb.recency_days == pytest.approx(nb.tenure_days) == pytest.approx(29.0)
    assert f.site_events.eq(0).all() and f.categories.eq(0).all()  # no events, no products


def test_planted_groups_are_recovered(warehouse):
    truth = planted_shop(warehouse)
    res = cluster_customers(warehouse, seed=3)
    s = res.summary
    assert s["k"] == 3, s["silhouette"]
    assert s["silhouette"]["3"] == max(v for v in s["silhouette"].values() if v is not None)
    assert s["reason"].startswith("k=3 has the highest mean silhouette")
    assert (s["customers"], s["clustered"], s["non_buyers"]) == (38, 36, 2)
    # constant features (no events, no products) are left out and said so
    assert "site_events" not in s["features"] and "frequency" in s["features"]
    assert any("same value" in n and "categories" in n for n in res.notes)

    got = warehouse.table(CLUSTERS_TABLE).execute().set_index("customer_id")
    assert len(got) == 38 and list(got.columns) == ["cluster", "cluster_name"]
    pairs = {(truth[c], int(got.loc[c, "cluster"])) for c in truth}
    assert len(pairs) == 3  # each planted group in exactly one cluster, each cluster one group
    # clusters are numbered by revenue per customer: the VIPs first
    assert dict(pairs) == {"vip": 0, "regular": 1, "once": 2}
    assert set(got.loc[["nb-0", "nb-1"], "cluster"]) == {3}
    assert set(got.loc[["nb-0", "nb-1"], "cluster_name"]) == {NON_BUYERS_NAME}

    t = res.table.set_index("cluster")
    assert t.customers.tolist() == [12, 12, 12, 2]
    assert t.customer_share.sum() == pytest.approx(1.0)
    assert t.revenue_share.sum() == pytest.approx(1.0)
    jitter = sum(1 + 0.02 * (i % 5) for i in range(12))
    revenue = {g: n * p * jitter for g, (n, p, _, _) in GROUPS.items()}
    assert t.loc[0, "revenue"] == pytest.approx(revenue["vip"])
    assert t.loc[0, "revenue_share"] == pytest.approx(revenue["vip"] / sum(revenue.values()))
    assert t.loc[0, "avg_frequency"] == 20 and t.loc[2, "avg_frequency"] == 1
    assert "frequent buyers" in t.loc[0, "name"].lower()
    assert t.loc[2, "description"].startswith("Long inactive, low spenders, small baskets")
    assert t.loc[0, "name"] != t.loc[1, "name"] != t.loc[2, "name"]
    assert t.loc[3, "name"] == NON_BUYERS_NAME
    assert "of customers" in t.loc[0, "description"] and "of revenue" in t.loc[0, "description"]
    json.dumps(res.to_dict())


def test_same_seed_same_clusters(warehouse):
    planted_shop(warehouse, per_group=10, non_buyers=0)
    a = cluster_customers(warehouse, seed=7, sample=20)  # choose k on a sample of 20
    first = warehouse.table(CLUSTERS_TABLE).execute().sort_values("customer_id")
    b = cluster_customers(warehouse, seed=7, sample=20)
    second = warehouse.table(CLUSTERS_TABLE).execute().sort_values("customer_id")
    assert a.summary["sample_size"] == 20
    pd.testing.assert_frame_equal(a.table, b.table)
    assert a.summary["silhouette"] == b.summary["silhouette"]
    pd.testing.assert_frame_equal(first.reset_index(drop=True), second.reset_index(drop=True))


def test_bad_input_is_a_clear_error(warehouse):
    with pytest.raises(DataError, match="no orders of known customers"):
        cluster_customers(warehouse)
    with pytest.raises(DataError, match="k_min"):
        cluster_customers(warehouse, k_min=1)
    planted_shop(warehouse, per_group=1, non_buyers=0)  # 3 buyers
    with pytest.raises(DataError, match="3 customers with a completed order"):
        cluster_customers(warehouse, write=False)
    assert not warehouse.has_table(CLUSTERS_TABLE)


def test_constant_features_and_small_data(warehouse):
    rows = [(f"O{i}", f"c{i}", "2024-01-01", "completed") for i in range(6)]
    ingest_frame(
        warehouse, "orders", pd.DataFrame(rows, columns=["order_id", "customer_id", "ts", "status"])
    )
    lines = pd.DataFrame(
        {
            "order_id": [r[0] for r in rows],
            "line_no": 1,
            "product_id": "P",
            "quantity": 1,
            "unit_price": 5.0,
        }
    )
    ingest_frame(warehouse, "order_lines", lines)
    with pytest.raises(DataError, match="same value for all 6 customers"):
        cluster_customers(warehouse)

    # two groups of 5: k_max is lowered to what 10 customers support, k=2 is found
    more = [(f"O{i}", f"c{i}", "2024-01-01", "completed") for i in range(6, 10)]
    ingest_frame(
        warehouse, "orders", pd.DataFrame(more, columns=["order_id", "customer_id", "ts", "status"])
    )
    ingest_frame(
        warehouse,
        "order_lines",
        pd.DataFrame(
            {
                "order_id": [r[0] for r in more],
                "line_no": 1,
                "product_id": "P",
                "quantity": 1,
                "unit_price": [500.0, 510.0, 520.0, 530.0],
            }
        ),
    )
    ingest_frame(
        warehouse,
        "order_lines",
        pd.DataFrame(
            {
                "order_id": ["O5"],
                "line_no": 2,
                "product_id": "P",
                "quantity": 1,
                "unit_price": 500.0,
            }
        ),
    )
    res = cluster_customers(warehouse, write=False)
    assert res.summary["k"] == 2
    assert sorted(res.table.customers) == [5, 5]
    assert any("k_max lowered from 8 to 5" in n for n in res.notes)


def test_clusters_of_the_synthetic_shop(tmp_path):
    from mercato.data.synth import generate_shop

    generate_shop(tmp_path / "shop", customers=2000, days=120, seed=1)
    orders = pd.read_parquet(tmp_path / "shop" / "orders")
    buyers = orders[orders.status == "completed"].customer_id.dropna().nunique()
    with Warehouse(f"duckdb://{tmp_path / 'wh.duckdb'}") as wh:
        wh.ensure_tables()
        ingest_folder(wh, tmp_path / "shop")
        res = cluster_customers(wh, seed=0)
        assigned = wh.table(CLUSTERS_TABLE).execute()
    s = res.summary
    assert (s["customers"], s["clustered"], s["non_buyers"]) == (2000, buyers, 2000 - buyers)
    assert 2 <= s["k"] <= 8 and len(res.table) == s["k"] + 1
    assert set(s["features"]) == set(FEATURE_NAMES)  # the shop has data for every feature
    assert len(assigned) == 2000 and assigned.customer_id.is_unique
    assert res.table.customers.sum() == 2000
    assert res.table.revenue_share.sum() == pytest.approx(1.0)
    per_customer = res.table.revenue / res.table.customers
    assert per_customer.iloc[: s["k"]].is_monotonic_decreasing
    assert res.table.name.is_unique
    assert res.table.name.iloc[-1] == NON_BUYERS_NAME
