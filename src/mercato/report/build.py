"""The HTML report: one self-contained, offline file built from the workspace.

Each section is a function ``(workspace, warehouse) -> Section | None``; later capabilities add
theirs to :data:`SECTIONS`. Every value is HTML-escaped by the template engine, so data can
never inject markup or script into the report.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from mercato import __version__
from mercato.data.schema import TABLES
from mercato.data.summary import summarize_tables
from mercato.data.warehouse import Warehouse
from mercato.workspace import Workspace, read_loads


@dataclass
class ReportTable:
    title: str
    columns: list[str]
    rows: list[list[Any]]


@dataclass
class Section:
    id: str
    title: str
    intro: str = ""
    tables: list[ReportTable] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    charts: list[Any] = field(default_factory=list)  # mercato.report.charts.LineChart


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.2f}"
    return str(v)


def tables_section(ws: Workspace, wh: Warehouse) -> Section:
    summary = summarize_tables(wh)
    rows = [
        [
            s["table"],
            s["rows"],
            s.get("people", ""),
            (s.get("first") or "")[:10],
            (s.get("last") or "")[:10],
            ", ".join(f"{k} {v:,}" for k, v in s["missing"].items()) or "none",
        ]
        for s in summary
    ]
    total = sum(s["rows"] for s in summary)
    return Section(
        id="tables",
        title="Data in the warehouse",
        intro=f"{total:,} rows in {len(summary)} tables ({wh.engine}).",
        tables=[
            ReportTable("Tables", ["table", "rows", "people", "from", "to", "missing values"], rows)
        ],
    )


def loads_section(ws: Workspace, wh: Warehouse) -> Section | None:
    loads = read_loads(ws)
    if not loads:
        return None
    rows = []
    for rec in loads:
        for rep in _load_rows(rec):
            reasons = "; ".join(f"{n:,} {r}" for r, n in (rep.get("reasons") or {}).items())
            rows.append(
                [
                    rec.get("at", "")[:19],
                    rec.get("kind", ""),
                    rep.get("table"),
                    Path(str(rep.get("source", ""))).name,
                    rep.get("rows_read"),
                    rep.get("inserted", 0),
                    rep.get("already_present", 0),
                    rep.get("rejected", 0) + rep.get("duplicates_in_source", 0),
                    reasons,
                ]
            )
    return Section(
        id="loads",
        title="Loads and data quality",
        intro="Every load with what it added, what was already there and what was rejected.",
        tables=[
            ReportTable(
                "Loads",
                [
                    "at",
                    "kind",
                    "table",
                    "source",
                    "read",
                    "inserted",
                    "present",
                    "rejected",
                    "reasons",
                ],
                rows,
            )
        ],
    )


def _load_rows(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per table of a logged load: an ingest, a synthetic shop or a data set."""
    if "reports" in rec:  # several tables loaded together
        return [r for r in rec["reports"] if "table" in r]
    if "table" in rec:  # one ingest
        return [rec]
    tables = rec.get("tables") or {}  # a public data set: {table: {inserted, ...}}
    reasons = rec.get("rejected") or {}
    return [
        {
            "table": t,
            "source": rec.get("file", rec.get("name", "")),
            **v,
            "reasons": reasons if i == 0 else {},
        }
        for i, (t, v) in enumerate(tables.items())
    ]


def privacy_section(ws: Workspace, wh: Warehouse) -> Section:
    rows = []
    for spec in TABLES.values():
        how = spec.person or (
            f"via {spec.person_via[0]}.{spec.person_via[1]}" if spec.person_via else ""
        )
        sensitive = [c.name for c in spec.columns if c.sensitive]
        rows.append(
            [
                spec.name,
                "yes" if spec.holds_person else "no",
                how,
                ", ".join(spec.pii_columns),
                ", ".join(sensitive),
            ]
        )
    return Section(
        id="privacy",
        title="Where people are in the data",
        intro="Every table that holds a person says so: consent checks and erasure find every "
        "trace from this map.",
        tables=[
            ReportTable(
                "Personal data map",
                ["table", "holds a person", "person column", "PII", "sensitive"],
                rows,
            )
        ],
    )


SECTIONS: list[Callable[[Workspace, Warehouse], Section | None]] = [
    tables_section,
    loads_section,
    privacy_section,
]


def build_report(ws: Workspace, out: str | Path | None = None) -> Path:
    """Write the HTML report of workspace ``ws``; returns its path.

    Examples
    --------
    >>> import tempfile
    >>> ws = Workspace.init(tempfile.mkdtemp() + "/ws")
    >>> build_report(ws).name
    'report.html'
    """
    env = Environment(
        loader=PackageLoader("mercato.report", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    env.filters["fmt"] = _fmt
    sections = []
    from mercato.report.analytics import SECTIONS as ANALYTICS
    from mercato.report.models import SECTIONS as MODELS

    with ws.warehouse() as wh:
        for make in [*SECTIONS[:1], *ANALYTICS, *MODELS, *SECTIONS[1:]]:
            section = make(ws, wh)
            if section is not None:
                sections.append(section)
    html = env.get_template("report.html.j2").render(
        sections=sections,
        workspace=str(ws.path.resolve()),
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        version=__version__,
    )
    path = Path(out) if out else ws.path / "reports" / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # owner only: it holds data
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(html)
    tmp.replace(path)
    return path
