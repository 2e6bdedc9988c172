"""A short summary of every table in the warehouse, computed inside the engine through Ibis."""

from __future__ import annotations

from typing import Any

from mercato.data.schema import TABLES
from mercato.data.warehouse import Warehouse


def summarize_tables(warehouse: Warehouse) -> list[dict[str, Any]]:
    """Rows, time span, distinct people and missing values of each data-model table.

    One aggregate query per table, run by the warehouse engine; only the small result is fetched.

    Examples
    --------
    >>> wh = Warehouse("duckdb://:memory:")
    >>> _ = wh.ensure_tables()
    >>> summarize_tables(wh)[0]["table"], summarize_tables(wh)[0]["rows"]
    ('customers', 0)
    """
    out: list[dict[str, Any]] = []
    for name, spec in TABLES.items():
        if not warehouse.has_table(name):
            continue
        t = warehouse.table(name)
        aggs: dict[str, Any] = {"rows": t.count()}
        if spec.time_column:
            aggs["first"] = t[spec.time_column].min()
            aggs["last"] = t[spec.time_column].max()
        if spec.person:
            aggs["people"] = t[spec.person].nunique()
        for col in spec.columns:
            aggs[f"null__{col.name}"] = t[col.name].isnull().sum()
        row = t.aggregate(**aggs).execute().iloc[0].to_dict()
        rows = int(row["rows"])
        missing = {
            c.name: int(row[f"null__{c.name}"] or 0)
            for c in spec.columns
            if rows and int(row[f"null__{c.name}"] or 0)
        }
        item: dict[str, Any] = {
            "table": name,
            "rows": rows,
            "columns": len(spec.columns),
            "holds_person": spec.holds_person,
            "pii_columns": spec.pii_columns,
            "missing": missing,
        }
        if spec.time_column:
            item["first"] = _iso(row.get("first"))
            item["last"] = _iso(row.get("last"))
        if spec.person:
            item["people"] = int(row.get("people") or 0)
        out.append(item)
    return out


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
