"""``mercato ingest TABLE FILE``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from mercato.cli.common import JsonOpt, Output, QuietOpt, WorkspaceOpt, human_int
from mercato.data.ingest import ingest_file
from mercato.workspace import Workspace, log_load


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)


def ingest(
    table: Annotated[str, typer.Argument(help="Data-model table: customers, events, orders...")],
    file: Annotated[Path, typer.Argument(help="CSV (any delimiter, .gz too) or Parquet file.")],
    mapping: Annotated[
        Path | None, typer.Option(help="TOML mapping of source columns to model columns.")
    ] = None,
    skip_bad_rows: Annotated[
        bool, typer.Option(help="Load the good rows; write bad ones to a rejects file.")
    ] = False,
    rejects: Annotated[
        Path | None, typer.Option(help="Where bad rows go (default: workspace rejects/).")
    ] = None,
    delimiter: Annotated[str | None, typer.Option(help="CSV delimiter (default: sniffed).")] = None,
    encoding: Annotated[str | None, typer.Option(help="Text encoding (default UTF-8).")] = None,
    ignore_extra: Annotated[
        bool, typer.Option(help="Drop source columns the data model lacks instead of failing.")
    ] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Validate only: report what would load, load nothing.")
    ] = False,
    workspace: WorkspaceOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Load FILE into TABLE: validated, all-or-nothing, and idempotent on re-ingest."""
    out = Output(json_, quiet)
    ws = Workspace.open(workspace)
    s = ws.settings
    if skip_bad_rows and rejects is None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        rejects = ws.path / "rejects" / f"{table}-{Path(file).name}-{stamp}.csv"
    with ws.warehouse() as wh, out.progress(f"ingest {Path(file).name}", None) as update:
        report = ingest_file(
            wh,
            table,
            file,
            mapping=mapping,
            skip_bad_rows=skip_bad_rows,
            rejects_path=rejects,
            delimiter=delimiter,
            encoding=encoding,
            ignore_extra=ignore_extra,
            dry_run=check,
            batch_rows=s.ingest_batch_rows,
            max_field_bytes=s.ingest_max_field_bytes,
            max_problems=s.ingest_max_problems,
            progress=lambda done, total: update(done, total=total),
        )
    if not check:
        log_load(ws, "ingest", report.to_dict())
    verb = "would insert" if check else "inserted"
    out.print(
        f"[green]{report.table}[/]: read {human_int(report.rows_read)} rows, {verb} "
        f"{human_int(report.inserted)}, already present {human_int(report.already_present)}, "
        f"rejected {human_int(report.rejected + report.duplicates_in_source)} "
        f"in {report.seconds:.1f} s"
    )
    for reason, n in report.reasons.items():
        out.print(f"  {human_int(n)} x {reason}")
    if report.rejects_file:
        out.print(f"Rejected rows and their reasons: {report.rejects_file}")
    out.result(report.to_dict())
