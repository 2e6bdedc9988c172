"""``mercato init``, ``mercato tables`` and ``mercato schema``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mercato.cli.common import JsonOpt, Output, QuietOpt, WorkspaceOpt, human_int
from mercato.data.schema import TABLES, get_table
from mercato.data.summary import summarize_tables
from mercato.workspace import Workspace


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("tables")(tables)
    app.command("schema")(schema)


def init(
    workspace: WorkspaceOpt = None,
    warehouse_url: Annotated[
        str | None,
        typer.Option(help="Warehouse URL, e.g. postgresql://user@host:5432/db?schema=mercato."),
    ] = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Create the workspace folder (owner-only) with its settings and an empty warehouse."""
    out = Output(json_, quiet)
    ws = Workspace.init(workspace, warehouse_url=warehouse_url)
    info = ws.describe()
    out.print(f"[green]Workspace ready[/] at {info['workspace']} (mode {info['mode']})")
    out.print(f"Warehouse: {info['warehouse']}")
    out.print(
        "Next: [bold]mercato synth --out shop --load[/] or [bold]mercato ingest TABLE FILE[/]"
    )
    out.result(info)


def tables(workspace: WorkspaceOpt = None, json_: JsonOpt = False, quiet: QuietOpt = False):
    """Summarise every table of the warehouse: rows, time span, people, missing values."""
    out = Output(json_, quiet)
    ws = Workspace.open(workspace)
    with ws.warehouse() as wh:
        summary = summarize_tables(wh)
    out.table(
        "Warehouse tables",
        ["table", "rows", "people", "from", "to", "personal data"],
        [
            [
                s["table"],
                human_int(s["rows"]),
                human_int(s["people"]) if "people" in s else "",
                (s.get("first") or "")[:10],
                (s.get("last") or "")[:10],
                "yes" if s["holds_person"] else "no",
            ]
            for s in summary
        ],
    )
    out.result({"tables": summary})


def schema(
    table: Annotated[str | None, typer.Argument(help="One table; all when omitted.")] = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Show the marketing data model: tables, columns, keys, personal data."""
    out = Output(json_, quiet)
    specs = [get_table(table)] if table else list(TABLES.values())
    payload = []
    for spec in specs:
        cols: list[dict[str, Any]] = [
            {
                "name": c.name,
                "type": c.dtype,
                "required": c.required,
                "pii": c.pii,
                "sensitive": c.sensitive,
                "choices": list(c.choices) if c.choices else None,
                "description": c.description,
            }
            for c in spec.columns
        ]
        payload.append(
            {
                "table": spec.name,
                "description": spec.description,
                "key": list(spec.key),
                "person": spec.person,
                "person_via": list(spec.person_via) if spec.person_via else None,
                "columns": cols,
            }
        )
        out.table(
            f"{spec.name} (key: {', '.join(spec.key)}) - {spec.description}",
            ["column", "type", "required", "personal", "notes"],
            [
                [
                    c["name"],
                    c["type"],
                    "yes" if c["required"] else "",
                    "PII" if c["pii"] else ("sensitive" if c["sensitive"] else ""),
                    ", ".join(c["choices"]) if c["choices"] else c["description"],
                ]
                for c in cols
            ],
        )
    out.result({"tables": payload})
