"""``mercato datasets list`` and ``mercato datasets load NAME``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mercato.cli.common import JsonOpt, Output, QuietOpt, WorkspaceOpt, human_int
from mercato.data.datasets import list_datasets, load_dataset
from mercato.workspace import Workspace, log_load

app = typer.Typer(help="Public data sets (from MERCATO_DATA_DIR).", no_args_is_help=True)

DataDirOpt = Annotated[
    Path | None,
    typer.Option(help="Folder of the data set files (default: $MERCATO_DATA_DIR)."),
]


@app.command("list")
def list_(
    data_dir: DataDirOpt = None,
    workspace: WorkspaceOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """List the public data sets Mercato can load, and whether each file is present."""
    o = Output(json_, quiet)
    items = list_datasets(data_dir)
    o.table(
        "Public data sets",
        ["name", "present", "rows", "tables", "file / where to get it"],
        [
            [
                d["name"],
                "yes" if d["present"] else "no",
                human_int(d.get("rows")),
                ", ".join(d.get("tables") or []),
                d["path"] if d["present"] else f"{d['file']}: {d['url']}",
            ]
            for d in items
        ],
    )
    o.result({"datasets": items})


@app.command("load")
def load(
    name: Annotated[str, typer.Argument(help="Data set name, e.g. online-retail.")],
    data_dir: DataDirOpt = None,
    workspace: WorkspaceOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Load a public data set into the workspace's warehouse (atomic, idempotent)."""
    o = Output(json_, quiet)
    ws = Workspace.open(workspace)
    with ws.warehouse() as wh, o.progress(f"load {name}", None) as update:
        report = load_dataset(
            wh,
            name,
            data_dir=data_dir or ws.settings.data_dir,
            progress=lambda stage, done, total: update(done, total=total, description=stage),
        )
    payload = report.to_dict()
    log_load(ws, "dataset", payload)
    tables = payload.get("tables") or {}
    o.table(
        f"{name} loaded in {payload.get('seconds', 0):.1f} s",
        ["table", "inserted", "already present", "rejected"],
        [
            [
                t,
                human_int(v.get("inserted")),
                human_int(v.get("already_present")),
                human_int(v.get("rejected")),
            ]
            for t, v in tables.items()
        ],
    )
    counts = payload.get("counts") or {}
    if counts:
        o.table("What was found", ["item", "count"], [[k, human_int(v)] for k, v in counts.items()])
    o.result(payload)
