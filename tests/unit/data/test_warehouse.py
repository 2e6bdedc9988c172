from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest

from mercato.data.schema import TABLES
from mercato.data.summary import summarize_tables
from mercato.data.warehouse import Warehouse
from mercato.errors import ConfigError, DataError


def test_tables_are_created_with_the_model_columns(warehouse):
    for name, spec in TABLES.items():
        assert list(warehouse.table(name).schema().names) == spec.column_names
    assert warehouse.ensure_tables() == []  # nothing new the second time


def test_append_arrow_round_trips_nulls_empty_strings_and_times(warehouse):
    t = pa.table(
        {
            "customer_id": ["a", "b", "c"],
            "name": ["", None, 'quote "x", comma'],
            "created_at": pa.array(
                [dt.datetime(2024, 1, 1, 12, 30, 15, 123456), None, dt.datetime(1999, 12, 31)],
                pa.timestamp("us"),
            ),
            "birth_year": pa.array([1980, None, 2001], pa.int64()),
        }
    )
    warehouse.append_arrow("customers", [t])
    df = warehouse.table("customers").order_by("customer_id").execute()
    assert df.name[0] == ""  # an empty string stays empty...
    assert pd.isna(df.name[1])  # ...and a null stays null, on both engines
    assert df.name[2] == 'quote "x", comma'
    assert df.created_at[0].to_pydatetime() == dt.datetime(2024, 1, 1, 12, 30, 15, 123456)
    assert df.birth_year.tolist()[0] == 1980


def test_transaction_rolls_back(warehouse):
    staging = warehouse.create_staging(TABLES["products"])
    warehouse.append_arrow(staging, [pa.table({"product_id": ["P1"], "_line": [2]})])
    with pytest.raises(RuntimeError):
        with warehouse.transaction():
            assert warehouse.insert_new("products", staging, ("product_id",)) == 1
            raise RuntimeError("boom")
    assert warehouse.count("products") == 0
    warehouse.drop_staging()
    assert not [t for t in warehouse.list_tables() if t.startswith("mercato_staging_")]


def test_summary_counts(warehouse):
    warehouse.append_arrow(
        "orders",
        [
            pa.table(
                {
                    "order_id": ["O1", "O2", "O3"],
                    "customer_id": ["C1", "C1", None],
                    "ts": pa.array(
                        [dt.datetime(2024, 1, 1), dt.datetime(2024, 2, 1), dt.datetime(2024, 3, 1)],
                        pa.timestamp("us"),
                    ),
                }
            )
        ],
    )
    orders = next(s for s in summarize_tables(warehouse) if s["table"] == "orders")
    assert orders["rows"] == 3 and orders["people"] == 1
    assert orders["first"].startswith("2024-01-01") and orders["last"].startswith("2024-03-01")
    assert orders["missing"]["customer_id"] == 1


def test_bad_urls_and_missing_tables(tmp_path):
    with pytest.raises(ConfigError, match="unsupported warehouse URL"):
        Warehouse("mysql://x")
    with pytest.raises(ConfigError, match="cannot connect"):
        Warehouse("postgresql://nobody@127.0.0.1:1/none")
    wh = Warehouse("duckdb://:memory:")
    with pytest.raises(DataError, match="mercato init"):
        wh.table("customers")
