"""Customer analytics on the real Online Retail data: dirty rows handled and stated."""

from __future__ import annotations

import pandas as pd
import pytest

from mercato.analytics.cohorts import cohorts
from mercato.analytics.kpis import kpis
from mercato.analytics.profile import profile
from mercato.analytics.rfm import rfm
from mercato.data.datasets import load_dataset
from mercato.data.ingest import ingest_frame
from mercato.data.warehouse import Warehouse
from tests_support import data_dir_or_skip


@pytest.fixture(scope="module")
def retail(tmp_path_factory):
    folder = data_dir_or_skip("online_retail.csv.gz")
    wh = Warehouse(f"duckdb://{tmp_path_factory.mktemp('retail') / 'wh.duckdb'}")
    wh.ensure_tables()
    load_dataset(wh, "online-retail", folder)
    yield wh
    wh.close()


@pytest.mark.realdata
def test_rfm_on_online_retail(retail):
    r = rfm(retail)
    assert r.summary["customers"] == 4339  # customers with a completed (non-cancelled) invoice
    assert r.table.customers.sum() == 4339
    assert any("3,708 guest orders" in n for n in r.notes)
    assert any("3,836 cancellation" in n for n in r.notes)
    champions = r.table.set_index("segment").loc["Champions"]
    assert champions.revenue_share > 0.3  # the usual concentration of a gift wholesaler


@pytest.mark.realdata
def test_cohorts_kpis_profile_on_online_retail(retail):
    c = cohorts(retail)
    assert c.summary["cohorts"] == 13 and c.summary["customers"] == 4339
    assert c.table[c.table.month == 0].retention.eq(1.0).all()
    k = kpis(retail, by="country")
    uk = k.table.set_index("country").loc["United Kingdom"]
    assert uk.revenue > 0.8 * k.table.revenue.sum()
    p = profile(retail, ["orders", "order_lines"])
    assert p.summary["rows"] == {"orders": 25_898, "order_lines": 541_907}


def test_one_customer_is_not_an_error(warehouse):
    ingest_frame(
        warehouse,
        "orders",
        pd.DataFrame(
            {
                "order_id": ["1"],
                "customer_id": ["solo"],
                "ts": ["2024-05-01"],
                "status": "completed",
            }
        ),
    )
    ingest_frame(
        warehouse,
        "order_lines",
        pd.DataFrame(
            {"order_id": ["1"], "line_no": 1, "product_id": "p", "quantity": 2, "unit_price": 3.0}
        ),
    )
    r = rfm(warehouse)
    assert r.summary["customers"] == 1 and r.table.customers.sum() == 1
    c = cohorts(warehouse)
    assert c.table.cohort_size.tolist() == [1]
    k = kpis(warehouse, by="channel")
    assert k.table.orders.sum() == 1 and any("no campaign cost" in n for n in k.notes)
