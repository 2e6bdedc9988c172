"""``mercato synth``: a synthetic shop with known ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mercato.cli.common import JsonOpt, Output, QuietOpt, WorkspaceOpt, human_int
from mercato.data.ingest import ingest_folder
from mercato.data.synth import generate_shop
from mercato.workspace import Workspace, log_load


def register(app: typer.Typer) -> None:
    app.command("synth")(synth)


def synth(
    out: Annotated[Path, typer.Option(help="Folder to write the shop into.")] = Path("shop"),
    customers: Annotated[int, typer.Option(help="Number of customers.")] = 10_000,
    days: Annotated[int, typer.Option(help="Days of history.")] = 365,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same shop.")] = 0,
    start: Annotated[
        str, typer.Option(help="First day of the history (YYYY-MM-DD).")
    ] = "2025-01-01",
    load: Annotated[
        bool, typer.Option(help="Also load the shop into the workspace's warehouse.")
    ] = False,
    workspace: WorkspaceOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Write a synthetic shop in the data model, with its ground truth in OUT/truth/."""
    o = Output(json_, quiet)
    ws = Workspace.open(workspace) if load else None  # fail before the long work
    with o.progress("synthesise", customers) as update:
        summary = generate_shop(
            out,
            customers=customers,
            days=days,
            seed=seed,
            start=start,
            progress=lambda stage, done, total: update(done, total=total, description=stage),
        )
    result = summary.to_dict()
    o.print(
        f"[green]Shop written[/] to {out}: {human_int(summary.customers)} customers, "
        f"{human_int(summary.events)} events in {summary.seconds:.1f} s; truth in {out}/truth/"
    )
    if ws is not None:
        with ws.warehouse() as wh, o.progress("load", None) as update:
            reports = ingest_folder(
                wh,
                out,
                batch_rows=ws.settings.ingest_batch_rows,
                progress=lambda name, done, total: update(done, total=total, description=name),
            )
        log_load(
            ws, "synth", {"source": str(out.resolve()), "reports": [r.to_dict() for r in reports]}
        )
        o.table(
            "Loaded",
            ["table", "read", "inserted", "already present"],
            [
                [
                    r.table,
                    human_int(r.rows_read),
                    human_int(r.inserted),
                    human_int(r.already_present),
                ]
                for r in reports
            ],
        )
        result["loaded"] = [r.to_dict() for r in reports]
    o.result(result)
