"""Consent where data is read: the latest row wins; opt-in vs opt-out purposes; both engines."""

from __future__ import annotations

import pandas as pd
import pytest

from mercato.data.consent import allowed, objected
from mercato.data.ingest import ingest_frame
from mercato.errors import DataError


@pytest.fixture
def consents(warehouse):
    ingest_frame(
        warehouse,
        "consents",
        pd.DataFrame(
            {
                "customer_id": ["a", "a", "b", "c", "c", "d"],
                "purpose": ["email", "email", "email", "email", "profiling", "profiling"],
                "granted": [True, False, True, False, False, True],
                "ts": [
                    "2024-01-01",
                    "2024-02-01",  # a withdrew later: the latest row wins
                    "2024-01-01",
                    "2024-01-01",
                    "2024-01-01",
                    "2024-01-01",
                ],
            }
        ),
    )
    orders = pd.DataFrame(
        {
            "order_id": ["1", "2", "3", "4", "5", "6"],
            "customer_id": ["a", "b", "c", "d", "e", None],
            "ts": "2024-03-01",
            "status": "completed",
        }
    )
    ingest_frame(warehouse, "orders", orders)
    return warehouse


def _ids(expr) -> list:
    return sorted(expr.execute()["customer_id"].dropna().tolist())


def test_opt_in_needs_a_grant(consents):
    orders = consents.table("orders")
    kept, left_out = allowed(consents, orders, "email")
    assert _ids(kept) == ["b"]  # a withdrew, c refused, d and e never answered
    assert int(left_out.execute()) == 4


def test_opt_out_until_objection(consents):
    orders = consents.table("orders")
    kept, left_out = allowed(consents, orders, "profiling")
    assert _ids(kept) == ["a", "b", "d", "e"]  # only c objected
    assert len(kept.execute()) == 5  # the guest order holds nobody's data: kept
    assert int(left_out.execute()) == 1
    assert _ids(objected(consents, "profiling")) == ["c"]


def test_no_consent_rows_at_all(warehouse):
    ingest_frame(
        warehouse,
        "orders",
        pd.DataFrame(
            {"order_id": ["1"], "customer_id": ["a"], "ts": "2024-03-01", "status": "completed"}
        ),
    )
    orders = warehouse.table("orders")
    kept, left_out = allowed(warehouse, orders, "analytics")
    assert _ids(kept) == ["a"] and int(left_out.execute()) == 0
    kept, left_out = allowed(warehouse, orders, "sms")
    assert _ids(kept) == [] and int(left_out.execute()) == 1


def test_unknown_purpose(consents):
    with pytest.raises(DataError, match="unknown consent purpose 'spam'"):
        allowed(consents, consents.table("orders"), "spam")
