"""``mercato analyze ...``: customer analytics and attribution."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mercato.cli.common import JsonOpt, Output, QuietOpt, WorkspaceOpt

app = typer.Typer(
    help="Analyse the warehouse: attribution, RFM, cohorts, KPIs, funnels.", no_args_is_help=True
)


def _show(o: Output, result: Any, columns: list[str] | None = None, title: str = "") -> None:
    table = result.table
    cols = columns or list(table.columns)
    rows = []
    for rec in table[cols].to_dict("records"):
        rows.append([_fmt(rec[c]) for c in cols])
    o.table(title or result.name, cols, rows)
    for note in result.notes:
        o.print(f"[dim]- {note}[/]")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 10 else f"{v:,.3f}"
    if isinstance(v, int):
        return f"{v:,}"
    return "" if v is None else str(v)


@app.command("attribution")
def attribution(
    from_: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="A paths file (path;total_conversions;...;total_null) or a "
            "JSON list of journeys; default: touchpoints and orders in the warehouse.",
        ),
    ] = None,
    order: Annotated[int, typer.Option(help="Markov chain order (1-6).")] = 1,
    no_nulls: Annotated[bool, typer.Option(help="Ignore non-converting paths.")] = False,
    lookback_days: Annotated[
        float,
        typer.Option(help="Touches older than this before an order are left out (warehouse only)."),
    ] = 30.0,
    half_life: Annotated[
        float, typer.Option(help="Time-decay half-life (days; touches for files).")
    ] = 7.0,
    channels: Annotated[
        str | None, typer.Option(help="Comma-separated known channels: any other is an error.")
    ] = None,
    truth: Annotated[
        Path | None,
        typer.Option(help="A synthetic shop's truth/ folder: compare with the true effects."),
    ] = None,
    workspace: WorkspaceOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Channel attribution: heuristics, exact Markov removal effects, simplified Shapley."""
    from mercato.analytics import attribution as attr

    o = Output(json_, quiet)
    decay = None
    notes: list[str] = []
    if from_ is not None:
        if from_.suffix.lower() == ".json":
            paths = attr.read_journeys_json(from_)
        else:
            paths = attr.read_paths_file(from_)
    else:
        from mercato.workspace import Workspace

        ws = Workspace.open(workspace)
        with ws.warehouse() as wh:
            paths, decay, notes = attr.paths_from_warehouse(wh, lookback_days=lookback_days)
    known = [c.strip() for c in channels.split(",")] if channels else None
    result = attr.attribute(
        paths,
        order=order,
        include_nulls=not no_nulls,
        half_life=half_life,
        time_decay=decay,
        known_channels=known,
        notes=notes,
    )
    s = result.summary
    o.print(
        f"{s['paths']:,} paths, {s['total_conversions']:,.0f} conversions, "
        f"{s['total_nulls']:,.0f} nulls; P(conversion) = {s['conversion_probability']:.5f} "
        f"(Markov order {order}, exact)"
    )
    _show(
        o,
        result,
        [
            "channel",
            "first_touch",
            "last_touch",
            "linear",
            "position_based",
            "time_decay",
            "markov",
            "removal_effect",
            "shapley",
        ],
        "Attributed conversions",
    )
    payload = result.to_dict()
    if truth is not None:
        cmp = attr.compare_with_truth(result, truth)
        payload["truth"] = cmp
        o.print(cmp["explanation"])
    o.result(payload)
