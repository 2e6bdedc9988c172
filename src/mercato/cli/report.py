"""``mercato report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mercato.cli.common import JsonOpt, Output, QuietOpt, WorkspaceOpt
from mercato.report.build import build_report
from mercato.workspace import Workspace


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def report(
    out: Annotated[
        Path | None, typer.Option(help="Output file (default: reports/report.html).")
    ] = None,
    workspace: WorkspaceOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Write the offline HTML report of the workspace."""
    o = Output(json_, quiet)
    ws = Workspace.open(workspace)
    path = build_report(ws, out)
    o.print(f"Report written to [bold]{path}[/]")
    o.result({"report": str(path)})
