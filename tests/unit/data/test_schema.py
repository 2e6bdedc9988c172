from __future__ import annotations

import pytest

from mercato.data.schema import TABLES, Column, get_table, person_tables
from mercato.errors import DataError


def test_every_table_has_key_columns_and_a_description():
    for spec in TABLES.values():
        assert spec.description
        assert set(spec.key) <= set(spec.column_names)
        for k in spec.key:
            assert spec.column(k).required, f"{spec.name}.{k} is a key and must be required"
        if spec.time_column:
            assert spec.time_column in spec.column_names


def test_every_person_is_findable():
    names = {t.name for t in person_tables()}
    assert names == {
        "customers",
        "consents",
        "orders",
        "order_lines",
        "events",
        "campaign_exposures",
        "touchpoints",
    }
    for spec in person_tables():
        if spec.person:
            assert spec.person in spec.column_names
        else:
            parent, col = spec.person_via
            assert col in spec.column_names and TABLES[parent].person
    assert set(TABLES["customers"].pii_columns) == {"email", "phone", "name"}
    assert "anonymous_id" in TABLES["events"].pii_columns


def test_unknown_names_are_clear():
    with pytest.raises(DataError, match="unknown table 'nope'"):
        get_table("nope")
    with pytest.raises(DataError, match="has no column 'x'"):
        get_table("orders").column("x")
    with pytest.raises(ValueError, match="unknown dtype"):
        Column("a", "decimal")


def test_data_model_doc_is_true():
    from pathlib import Path

    from mercato.data.schema import schema_markdown

    doc = (Path(__file__).parents[3] / "docs" / "data-model.md").read_text()
    assert doc.rstrip().endswith(schema_markdown().rstrip()), (
        "docs/data-model.md is out of date: regenerate its Tables section from schema_markdown()"
    )
