"""Data profile: ``describe()`` done for marketing data, computed inside the engine.

For every column of a table: its type, missing values (count and share), blank strings, distinct
values, minimum and maximum (numbers and timestamps), mean, standard deviation and the quantiles
p1, p25, p50, p75 and p99 (numbers), outliers (numbers) and the most frequent values of
low-cardinality columns. For the table: duplicate keys, date coverage of its time column and
referential checks against the tables it refers to.

Definitions
-----------
- **Missing**: ``NULL``. An empty string (``''``) is counted separately as **blank**: some
  files write an empty field instead of a missing one.
- **Outliers** use Tukey's fences: a value below ``p25 - 1.5 * IQR`` or above
  ``p75 + 1.5 * IQR`` (``IQR = p75 - p25``) counts. With skewed marketing data (most customers
  buy once, a few buy a lot) many legitimate values fall outside the fences; the count says how
  long the tails are, not that the values are wrong.
- **Top values** are shown for string and boolean columns with at most ``max_categories``
  distinct values, never for columns holding personal data (``pii`` in the data model).
- **Duplicate keys**: rows sharing the table's key (``mercato.data.schema``) with another row;
  ``duplicate_key_rows`` counts every such row, ``duplicate_keys`` the keys concerned.
- **Date coverage** of the table's time column: first and last timestamp, number of distinct
  calendar days (UTC) with at least one row, and the longest gap: the largest number of
  consecutive calendar days without a row between the first and the last day. A gap is listed
  among the issues when it lasts at least :data:`GAP_MIN_DAYS` days and the table's average
  daily rate would have put at least :data:`GAP_MIN_ROWS` rows in it (so a sparse table such as
  ``campaigns`` is not flagged for weeks without a new campaign).
- **Referential checks** (:data:`REFERENCES`): rows whose non-null reference is not found in the
  table it refers to (order lines whose order or product is unknown, orders whose customer is
  unknown, ...).

Every statistic is an Ibis expression run by the warehouse engine: one aggregate query for the
column statistics of a table (the quantiles of a column as one list-valued quantile), one
exact distinct count per column, one for outliers, one for top values, one for duplicate keys,
one for date coverage and one per referential check. Only the small results reach pandas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mercato.analytics.base import AnalysisResult
from mercato.data.schema import TABLES

__all__ = [
    "ISSUE_KINDS",
    "PROFILE_COLUMNS",
    "REFERENCES",
    "Reference",
    "profile",
    "profile_table",
]

QUANTILES: tuple[tuple[str, float], ...] = (
    ("p1", 0.01),
    ("p25", 0.25),
    ("p50", 0.50),
    ("p75", 0.75),
    ("p99", 0.99),
)

#: A gap in a table's time column is reported as an issue when it lasts at least this many days
#: and at least this many rows would have been expected in it at the table's average daily rate.
GAP_MIN_DAYS = 3
GAP_MIN_ROWS = 20

#: The kinds of issue, most serious first (the order of ``summary["issues"]``).
ISSUE_KINDS: tuple[str, ...] = (
    "duplicate_keys",
    "unknown_reference",
    "required_missing",
    "below_minimum",
    "date_gap",
    "column_empty",
    "table_empty",
)

#: The columns of a profile's table, one row per (table, column).
PROFILE_COLUMNS: tuple[str, ...] = (
    "table",
    "column",
    "type",
    "missing",
    "missing_share",
    "blank",
    "distinct",
    "min",
    "max",
    "mean",
    "std",
    *(q for q, _ in QUANTILES),
    "outliers",
    "top_values",
)


@dataclass(frozen=True)
class Reference:
    """A referential check: ``table.column`` must be found in ``refers_to.target``."""

    table: str
    column: str
    refers_to: str
    target: str
    what: str  # the referred thing in words: "order", "customer"...


#: The referential checks of the data model, by child table.
REFERENCES: tuple[Reference, ...] = (
    Reference("order_lines", "order_id", "orders", "order_id", "order"),
    Reference("order_lines", "product_id", "products", "product_id", "product"),
    Reference("orders", "customer_id", "customers", "customer_id", "customer"),
    Reference("events", "customer_id", "customers", "customer_id", "customer"),
    Reference("events", "product_id", "products", "product_id", "product"),
    Reference("events", "campaign_id", "campaigns", "campaign_id", "campaign"),
    Reference("campaign_exposures", "campaign_id", "campaigns", "campaign_id", "campaign"),
    Reference("campaign_exposures", "customer_id", "customers", "customer_id", "customer"),
    Reference("touchpoints", "customer_id", "customers", "customer_id", "customer"),
    Reference("touchpoints", "campaign_id", "campaigns", "campaign_id", "campaign"),
    Reference("consents", "customer_id", "customers", "customer_id", "customer"),
)

#: How a row of each table is called in words (singular, plural).
ROW_WORDS: dict[str, tuple[str, str]] = {
    "customers": ("customer", "customers"),
    "consents": ("consent row", "consent rows"),
    "products": ("product", "products"),
    "orders": ("order", "orders"),
    "order_lines": ("order line", "order lines"),
    "events": ("event", "events"),
    "campaigns": ("campaign", "campaigns"),
    "campaign_exposures": ("exposure", "exposures"),
    "touchpoints": ("touchpoint", "touchpoints"),
}


def _rows_word(table: str, n: int) -> str:
    one, many = ROW_WORDS.get(table, ("row", "rows"))
    return f"{n:,} {one if n == 1 else many}"


def _int(v: Any) -> int:
    if v is None:
        return 0
    try:
        if pd.isna(v):
            return 0
    except (TypeError, ValueError):
        pass
    return int(v)


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) or math.isinf(f) else f


def _plain_scalar(v: Any) -> Any:
    """A JSON-friendly scalar (numbers, ISO strings for timestamps, None for missing)."""
    if v is None:
        return None
    if isinstance(v, pd.Timestamp):
        return None if pd.isna(v) else v.isoformat()
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def _kind(dtype: Any) -> str:
    """``number``, ``time``, ``string``, ``bool`` or ``other`` for an Ibis data type."""
    if dtype.is_boolean():
        return "bool"
    if dtype.is_numeric():
        return "number"
    if dtype.is_timestamp() or dtype.is_date():
        return "time"
    if dtype.is_string():
        return "string"
    return "other"


def _empty_table() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in PROFILE_COLUMNS})


def _day_number(col: Any) -> Any:
    return (col.epoch_seconds() / 86400).floor().cast("int64")


def profile_table(
    warehouse: Any, name: str, *, max_categories: int = 20, top: int = 5
) -> AnalysisResult:
    """Profile one warehouse table: per-column statistics and table-level checks.

    Parameters
    ----------
    warehouse : mercato.data.warehouse.Warehouse
        The warehouse holding the table.
    name : str
        A data-model table (keys, time column, references and personal columns come from
        :mod:`mercato.data.schema`) or any other warehouse table (column statistics only).
    max_categories : int
        String and boolean columns with at most this many distinct values get top values.
    top : int
        How many top values to show.

    Returns
    -------
    AnalysisResult
        ``table``: one row per column (:data:`PROFILE_COLUMNS`); ``summary``: ``table``,
        ``rows``, ``present``, ``duplicate_keys``/``duplicate_key_rows`` (tables with a key),
        ``coverage`` (tables with a time column), ``references``, ``issues`` (plain words) and
        ``issue_kinds`` (:data:`ISSUE_KINDS`, one per issue).
        An absent or empty table gives an empty/short result with a note, never an error.

    Examples
    --------
    >>> import pandas as pd
    >>> from mercato.data.warehouse import Warehouse
    >>> from mercato.data.ingest import ingest_frame
    >>> wh = Warehouse("duckdb://:memory:")
    >>> _ = ingest_frame(wh, "products", pd.DataFrame({"product_id": ["P1", "P2", "P3"],
    ...     "price": [3.0, None, 5.0]}))
    >>> res = profile_table(wh, "products")
    >>> res.summary["rows"], int(res.table.set_index("column").loc["price", "missing"])
    (3, 1)
    """
    spec = TABLES.get(name)
    summary: dict[str, Any] = {
        "table": name,
        "rows": 0,
        "present": True,
        "issues": [],
        "issue_kinds": [],
    }
    notes: list[str] = []
    if not warehouse.has_table(name):
        summary["present"] = False
        summary["rows"] = None
        notes.append(f"the warehouse has no table {name!r}: nothing to profile")
        return AnalysisResult("profile_table", _empty_table(), summary, notes)

    t = warehouse.table(name)
    schema = t.schema()
    issues: list[tuple[str, str]] = []  # (kind, text)
    model_types = {c.name: c.dtype for c in spec.columns} if spec else {}
    pii = set(spec.pii_columns) if spec else set()
    required = {c.name for c in spec.columns if c.required} if spec else set()
    minimum = {c.name: c.minimum for c in spec.columns if c.minimum is not None} if spec else {}
    cols = list(schema.names)
    kinds = {c: _kind(schema[c]) for c in cols}

    # -- 1. one aggregate query: counts, distinct, ranges, moments, quantiles -----------------
    aggs: dict[str, Any] = {"rows": t.count()}
    for i, c in enumerate(cols):
        col = t[c]
        kind = kinds[c]
        aggs[f"c{i}_null"] = col.isnull().sum()
        if kind == "string":
            aggs[f"c{i}_blank"] = (col.length() == 0).sum()  # trimming costs 5x more
        if kind in ("number", "time"):
            aggs[f"c{i}_min"] = col.min()
            aggs[f"c{i}_max"] = col.max()
        if kind == "number":
            fcol = col.cast("float64")
            aggs[f"c{i}_mean"] = fcol.mean()
            aggs[f"c{i}_std"] = fcol.std()
            # one list-valued quantile per column: the engine sorts (or sketches) it once
            aggs[f"c{i}_quantiles"] = fcol.quantile([p for _, p in QUANTILES])
            if c in minimum:
                aggs[f"c{i}_below"] = (col < minimum[c]).sum()
    time_col = spec.time_column if spec and spec.time_column in kinds else None
    if time_col is not None:
        aggs["days"] = _day_number(t[time_col]).nunique()
    stats = t.aggregate(**aggs).execute().iloc[0].to_dict()
    # exact distinct counts one column at a time: each needs a hash table as large as the
    # column's distinct values, and building them all at once multiplies the memory peak
    for i, c in enumerate(cols):
        stats[f"c{i}_nd"] = t[c].nunique().execute()
    rows = _int(stats["rows"])
    summary["rows"] = rows
    summary["columns"] = len(cols)

    records: list[dict[str, Any]] = []
    for i, c in enumerate(cols):
        kind = kinds[c]
        missing = _int(stats[f"c{i}_null"])
        rec: dict[str, Any] = dict.fromkeys(PROFILE_COLUMNS)
        rec.update(
            table=name,
            column=c,
            type=model_types.get(c, str(schema[c])),
            missing=missing,
            missing_share=(missing / rows) if rows else None,
            distinct=_int(stats[f"c{i}_nd"]),
        )
        if kind == "string":
            rec["blank"] = _int(stats[f"c{i}_blank"])
        if kind in ("number", "time"):
            rec["min"] = _plain_scalar(stats[f"c{i}_min"])
            rec["max"] = _plain_scalar(stats[f"c{i}_max"])
        if kind == "number":
            rec["mean"] = _num(stats[f"c{i}_mean"])
            rec["std"] = _num(stats[f"c{i}_std"])
            values = stats[f"c{i}_quantiles"]
            values = [] if values is None else list(values)
            for j, (q, _) in enumerate(QUANTILES):
                rec[q] = _num(values[j]) if j < len(values) else None
        records.append(rec)
        if not rows:
            continue
        if missing == rows:
            issues.append(
                ("column_empty", f"{name}.{c} is missing in every row ({_rows_word(name, rows)})")
            )
        elif missing and c in required:
            _add(
                issues,
                "required_missing",
                f"{name}.{c} is required but missing in {_rows_word(name, missing)} "
                f"({missing / rows:.1%})",
            )
        if c in minimum and _int(stats.get(f"c{i}_below")):
            below = _int(stats[f"c{i}_below"])
            _add(
                issues,
                "below_minimum",
                f"{name}.{c} is below its minimum {minimum[c]:g} in {_rows_word(name, below)}",
            )
    if not rows:
        notes.append("the table is empty: only its columns and types are shown")
        issues.append(("table_empty", f"{name} is empty"))
        return _result(records, summary, notes, issues)

    by_col = {r["column"]: r for r in records}

    # -- 2. outliers (Tukey's fences), one query for all numeric columns ----------------------
    fences: dict[str, tuple[float, float]] = {}
    for c in cols:
        r = by_col[c]
        if kinds[c] == "number" and r["p25"] is not None and r["p75"] is not None:
            iqr = r["p75"] - r["p25"]
            fences[c] = (r["p25"] - 1.5 * iqr, r["p75"] + 1.5 * iqr)
    if fences:
        out_aggs = {
            f"o{i}": ((t[c] < lo) | (t[c] > hi)).sum()
            for i, (c, (lo, hi)) in enumerate(fences.items())
        }
        out = t.aggregate(**out_aggs).execute().iloc[0]
        for i, c in enumerate(fences):
            by_col[c]["outliers"] = _int(out[f"o{i}"])

    # -- 3. top values of low-cardinality columns, one query (a union of small group-bys) -----
    import ibis

    low = [
        c
        for c in cols
        if kinds[c] in ("string", "bool")
        and c not in pii
        and 0 < by_col[c]["distinct"] <= max_categories
        and by_col[c]["distinct"] < rows - by_col[c]["missing"]  # not an identifier
    ]
    if low:
        parts = [
            t.group_by(value=t[c].cast("string"))
            .aggregate(n=t.count())
            .mutate(column=ibis.literal(c))
            .select("column", "value", "n")
            for c in low
        ]
        tops = ibis.union(*parts) if len(parts) > 1 else parts[0]
        tv = tops.execute()
        for c in low:
            sub = tv[tv["column"] == c].copy()
            sub["sort_value"] = sub["value"].fillna("")
            sub = sub.sort_values(["n", "sort_value"], ascending=[False, True]).head(top)
            by_col[c]["top_values"] = [
                {"value": None if pd.isna(v) else str(v), "count": int(n)}
                for v, n in zip(sub["value"], sub["n"], strict=True)
            ]
    if pii:
        notes.append(
            f"values of personal columns ({', '.join(sorted(pii & set(cols)))}) are not shown "
            "among the top values"
        )

    # -- 4. duplicate keys --------------------------------------------------------------------
    if spec and spec.key and all(k in kinds for k in spec.key):
        key = list(spec.key)
        k0 = cols.index(key[0])
        if len(key) == 1 and _int(stats[f"c{k0}_nd"]) == rows - _int(stats[f"c{k0}_null"]):
            dup = {"keys": 0, "rows": 0}  # as many distinct values as rows: no duplicate
        else:
            g = t.group_by(key).aggregate(n=t.count())
            d = g.filter(g.n > 1)
            dup = d.aggregate(keys=d.count(), rows=d.n.sum()).execute().iloc[0]
        summary["duplicate_keys"] = _int(dup["keys"])
        summary["duplicate_key_rows"] = _int(dup["rows"])
        if summary["duplicate_keys"]:
            _add(
                issues,
                "duplicate_keys",
                f"{_rows_word(name, summary['duplicate_key_rows'])} share their key "
                f"({', '.join(key)}) with another row ({summary['duplicate_keys']:,} "
                f"duplicated key{'s' if summary['duplicate_keys'] != 1 else ''})",
            )

    # -- 5. date coverage ---------------------------------------------------------------------
    if time_col is not None:
        summary["coverage"] = _coverage(t, time_col, by_col[time_col], _int(stats["days"]), rows)
        cov = summary["coverage"]
        gap = cov["longest_gap_days"]
        if gap >= GAP_MIN_DAYS and cov["rows_per_day"] * gap >= GAP_MIN_ROWS:
            _add(
                issues,
                "date_gap",
                f"{name} has no rows on {gap} consecutive days ({cov['gap_from']} to "
                f"{cov['gap_to']}) although it averages {cov['rows_per_day']:,.1f} rows a day: "
                "data may be missing (or the business was closed)",
            )

    # -- 6. referential checks ----------------------------------------------------------------
    refs: list[dict[str, Any]] = []
    for ref in REFERENCES:
        if ref.table != name or ref.column not in kinds:
            continue
        if not warehouse.has_table(ref.refers_to):
            notes.append(f"{ref.column} not checked: the warehouse has no table {ref.refers_to!r}")
            continue
        parent = warehouse.table(ref.refers_to)
        child = t.filter(t[ref.column].notnull())
        unknown = child.anti_join(parent, child[ref.column] == parent[ref.target])
        res = unknown.aggregate(rows=unknown.count(), values=unknown[ref.column].nunique())
        r = res.execute().iloc[0]
        n_rows, n_values = _int(r["rows"]), _int(r["values"])
        refs.append(
            {
                "column": ref.column,
                "refers_to": f"{ref.refers_to}.{ref.target}",
                "unknown_rows": n_rows,
                "unknown_values": n_values,
            }
        )
        if n_rows:
            what = f"an unknown {ref.what}" if n_values == 1 else f"unknown {ref.what}s"
            verb = "refers" if n_rows == 1 else "refer"
            text = (
                f"{_rows_word(name, n_rows)} {verb} to {what} "
                f"({n_values:,} distinct {ref.column} not in {ref.refers_to})"
            )
            if warehouse.count(ref.refers_to) == 0:
                text += f"; the {ref.refers_to} table is empty"
            issues.append(("unknown_reference", text))
    if refs:
        summary["references"] = refs
    return _result(records, summary, notes, issues)


def _add(issues: list[tuple[str, str]], kind: str, text: str) -> None:
    issues.append((kind, text))


def _result(
    records: list[dict[str, Any]],
    summary: dict[str, Any],
    notes: list[str],
    issues: list[tuple[str, str]],
) -> AnalysisResult:
    ranked = sorted(issues, key=lambda kt: ISSUE_KINDS.index(kt[0]))
    summary["issues"] = [text for _, text in ranked]
    summary["issue_kinds"] = [kind for kind, _ in ranked]
    return AnalysisResult("profile_table", _frame(records), summary, notes)


def _frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    table = pd.DataFrame(records, columns=list(PROFILE_COLUMNS))
    for c in ("missing", "distinct"):
        table[c] = table[c].astype("int64")
    for c in ("missing_share", "mean", "std", *(q for q, _ in QUANTILES)):
        table[c] = table[c].astype("float64")
    for c in ("blank", "outliers"):  # counts where they apply, None where they do not
        table[c] = pd.Series([r[c] for r in records], dtype=object, index=table.index)
    return table


def _coverage(t: Any, time_col: str, rec: dict[str, Any], days: int, rows: int) -> dict[str, Any]:
    """First/last timestamp, distinct days and the longest run of days without a row."""
    import ibis

    day = _day_number(t[time_col])
    dd = t.select(d=day).filter(lambda s: s.d.notnull()).distinct()
    lagged = dd.mutate(prev=dd.d.lag().over(ibis.window(order_by=dd.d)))
    lagged = lagged.mutate(gap=(lagged.d - lagged.prev - 1).fill_null(0))
    lagged = lagged.mutate(
        first=lagged.d.min().over(ibis.window()), last=lagged.d.max().over(ibis.window())
    )
    row = lagged.order_by([lagged.gap.desc(), lagged.d]).limit(1).execute()
    gap = int(row["gap"].iloc[0]) if len(row) else 0
    span = int(row["last"].iloc[0]) - int(row["first"].iloc[0]) + 1 if len(row) else 0
    out: dict[str, Any] = {
        "column": time_col,
        "first": rec["min"],
        "last": rec["max"],
        "days": days,
        "span_days": span,
        "rows_per_day": rows / span if span else 0.0,
        "longest_gap_days": gap,
        "gap_from": None,
        "gap_to": None,
    }
    if gap > 0:
        end_day = int(row["d"].iloc[0])  # the first day with rows again
        first_empty = pd.Timestamp((end_day - gap) * 86400, unit="s").date()
        last_empty = pd.Timestamp((end_day - 1) * 86400, unit="s").date()
        out["gap_from"] = first_empty.isoformat()
        out["gap_to"] = last_empty.isoformat()
    return out


def profile(
    warehouse: Any,
    tables: list[str] | None = None,
    *,
    max_categories: int = 20,
    top: int = 5,
) -> AnalysisResult:
    """The data profile of every data-model table in the warehouse, as one result.

    Parameters
    ----------
    warehouse : mercato.data.warehouse.Warehouse
        The warehouse to profile.
    tables : list of str, optional
        Which tables (default: every table of the data model; absent ones are named in the
        notes). Other warehouse tables (``customer_rfm``...) may be named too.
    max_categories, top : int
        See :func:`profile_table`.

    Returns
    -------
    AnalysisResult
        One result for all tables (not a dict): ``table`` concatenates the per-column rows of
        every table (column ``table`` says which); ``summary`` holds ``rows`` (rows per table,
        ``None`` when absent), ``issues`` (every problem found, in plain words, most serious
        first) with ``issue_kinds`` (:data:`ISSUE_KINDS`, one per issue), ``tables`` (each
        table's own summary from :func:`profile_table`: duplicate keys, coverage, references)
        and ``absent``.

    Examples
    --------
    >>> import pandas as pd
    >>> from mercato.data.warehouse import Warehouse
    >>> from mercato.data.ingest import ingest_frame
    >>> wh = Warehouse("duckdb://:memory:")
    >>> _ = wh.ensure_tables()
    >>> _ = ingest_frame(wh, "orders", pd.DataFrame({"order_id": ["1"], "customer_id": ["c9"],
    ...     "ts": ["2024-01-01"], "status": "completed"}))
    >>> res = profile(wh)
    >>> res.summary["rows"]["orders"], res.summary["rows"]["customers"]
    (1, 0)
    >>> res.summary["issues"][0].split(" (")[0]
    '1 order refers to an unknown customer'
    """
    names = list(tables) if tables is not None else list(TABLES)
    frames: list[pd.DataFrame] = []
    rows: dict[str, int | None] = {}
    per_table: dict[str, dict[str, Any]] = {}
    issues: list[tuple[str, str]] = []
    notes: list[str] = []
    absent: list[str] = []
    for name in names:
        res = profile_table(warehouse, name, max_categories=max_categories, top=top)
        rows[name] = res.summary["rows"]
        per_table[name] = {k: v for k, v in res.summary.items() if k != "table"}
        if not res.summary["present"]:
            absent.append(name)
            continue
        if len(res.table):
            frames.append(res.table)
        issues.extend(zip(res.summary["issue_kinds"], res.summary["issues"], strict=True))
        notes.extend(f"{name}: {n}" for n in res.notes)
    if absent:
        notes.append(f"absent from the warehouse: {', '.join(absent)}")
    table = pd.concat(frames, ignore_index=True) if frames else _empty_table()
    ranked = sorted(issues, key=lambda kt: ISSUE_KINDS.index(kt[0]))
    summary: dict[str, Any] = {
        "tables_profiled": len(names) - len(absent),
        "rows": rows,
        "issues": [text for _, text in ranked],
        "issue_kinds": [kind for kind, _ in ranked],
        "tables": per_table,
        "absent": absent,
    }
    return AnalysisResult("profile", table, summary, notes)
