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
    if isinstance(v, float) and v != v:  # NaN: not computable (e.g. no cost data)
        return ""
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
        attr.MODEL_COLUMNS,
        "Attributed conversions",
    )
    payload = result.to_dict()
    if truth is not None:
        cmp = attr.compare_with_truth(result, truth)
        payload["truth"] = cmp
        o.print(cmp["explanation"])
    o.result(payload)


def _open_wh(workspace: Path | None):
    from mercato.workspace import Workspace

    return Workspace.open(workspace).warehouse()


@app.command("rfm")
def rfm_cmd(
    as_of: Annotated[
        str | None, typer.Option(help="Reference date (default: the day after the last order).")
    ] = None,
    no_write: Annotated[bool, typer.Option(help="Do not write customer_rfm.")] = False,
    workspace: WorkspaceOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """RFM scores and named segments; per-customer scores go to the table customer_rfm."""
    from mercato.analytics.rfm import rfm

    o = Output(json_, quiet)
    with _open_wh(workspace) as wh:
        result = rfm(wh, as_of=as_of, write=not no_write)
    o.print(f"{result.summary['customers']:,} customers scored as of {result.summary['as_of']}")
    _show(o, result, title="RFM segments")
    o.result(result.to_dict())


@app.command("cohorts")
def cohorts_cmd(
    max_months: Annotated[int, typer.Option(help="Months since first purchase to show.")] = 24,
    workspace: WorkspaceOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Acquisition-month cohorts: retention and revenue by months since first purchase."""
    from mercato.analytics.cohorts import cohorts

    o = Output(json_, quiet)
    with _open_wh(workspace) as wh:
        result = cohorts(wh, max_months=max_months)
    t = result.table
    if len(t):
        pivot = t.pivot(index="cohort", columns="month", values="retention")
        cols = [str(c) for c in pivot.columns[:13]]
        o.table(
            "Retention by acquisition month (columns: months since first purchase)",
            ["cohort", "customers", *cols],
            [
                [idx, f"{int(t[(t.cohort == idx) & (t.month == 0)].cohort_size.iloc[0]):,}"]
                + ["" if pd_isna(v) else f"{v:.0%}" for v in row.values[:13]]
                for idx, row in pivot.iterrows()
            ],
        )
    for note in result.notes:
        o.print(f"[dim]- {note}[/]")
    o.result(result.to_dict())


def pd_isna(v: Any) -> bool:
    import pandas as pd

    return bool(pd.isna(v))


@app.command("kpis")
def kpis_cmd(
    freq: Annotated[str, typer.Option(help="day, week or month.")] = "month",
    by: Annotated[str | None, typer.Option(help="channel, campaign or country.")] = None,
    workspace: WorkspaceOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """KPIs over time or by channel, campaign or country (revenue, AOV, CTR, CPA, ROAS...)."""
    from mercato.analytics.kpis import kpis

    o = Output(json_, quiet)
    with _open_wh(workspace) as wh:
        result = kpis(wh, freq=freq, by=by)
    key = by or "period"
    wanted = {
        "campaign": [
            "campaign_id",
            "channel",
            "cost",
            "impressions",
            "clicks",
            "ctr",
            "conversions",
            "revenue",
            "cpa",
            "roas",
        ],
        "channel": [
            "channel",
            "revenue",
            "orders",
            "customers",
            "aov",
            "conversion_rate",
            "cost",
            "cpa",
            "roas",
        ],
    }.get(
        by or "",
        [
            key,
            "revenue",
            "orders",
            "customers",
            "new_customers",
            "aov",
            "repeat_rate",
            "conversion_rate",
            "ctr",
            "email_open_rate",
        ],
    )
    cols = [c for c in wanted if c in result.table.columns]
    _show(o, result, cols, f"KPIs by {by or freq}")
    o.result(result.to_dict())


@app.command("funnel")
def funnel_cmd(
    steps: Annotated[
        str,
        typer.Argument(
            help="Comma-separated event types, in order, e.g. view,add_to_cart,purchase."
        ),
    ],
    window_hours: Annotated[float, typer.Option(help="Time allowed from the first step.")] = 168.0,
    per_session: Annotated[bool, typer.Option(help="Count sessions instead of people.")] = False,
    by: Annotated[str | None, typer.Option(help="channel, country, segment or cluster.")] = None,
    workspace: WorkspaceOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """A funnel over any ordered event types, with conversion and drop-off per step."""
    from mercato.analytics.funnels import funnel

    o = Output(json_, quiet)
    with _open_wh(workspace) as wh:
        result = funnel(
            wh,
            [s.strip() for s in steps.split(",") if s.strip()],
            window_hours=window_hours,
            per_session=per_session,
            by=by,
        )
    s = result.summary
    if s["conversion"] is not None:
        o.print(
            f"{s['entered']:,} entered, {s['completed']:,} completed "
            f"({s['conversion']:.1%}) within {window_hours:g} hours"
        )
    _show(o, result, title="Funnel")
    o.result(result.to_dict())


@app.command("profile")
def profile_cmd(
    tables: Annotated[
        str | None, typer.Option(help="Comma-separated tables (default: every model table).")
    ] = None,
    workspace: WorkspaceOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Data profile: types, missing, distinct, ranges, outliers, duplicate keys, coverage,
    references between tables, and the issues found."""
    from mercato.analytics.profile import profile

    o = Output(json_, quiet)
    names = [t.strip() for t in tables.split(",")] if tables else None
    with _open_wh(workspace) as wh:
        result = profile(wh, names)
    rows = result.summary.get("rows") or {}
    o.table(
        "Tables",
        ["table", "rows"],
        [[t, _fmt(n) if n is not None else "absent"] for t, n in rows.items()],
    )
    _show(
        o,
        result,
        ["table", "column", "type", "missing", "distinct", "min", "max", "mean", "outliers"],
        "Columns",
    )
    issues = result.summary.get("issues") or []
    o.print(f"[bold]{len(issues)} issue(s) found[/]" if issues else "[green]No issues found[/]")
    for issue in issues:
        o.print(f"  - {issue}")
    o.result(result.to_dict())


@app.command("clusters")
def clusters_cmd(
    k_min: Annotated[int, typer.Option(help="Fewest clusters to try.")] = 2,
    k_max: Annotated[int, typer.Option(help="Most clusters to try.")] = 8,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    sample: Annotated[int, typer.Option(help="Customers used to choose k (silhouette).")] = 20_000,
    no_write: Annotated[bool, typer.Option(help="Do not write customer_clusters.")] = False,
    workspace: WorkspaceOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Behavioural customer clusters, the number chosen automatically, each explained."""
    from mercato.analytics.segments import cluster_customers

    o = Output(json_, quiet)
    with _open_wh(workspace) as wh, o.progress("clustering", None):
        result = cluster_customers(
            wh, k_min=k_min, k_max=k_max, seed=seed, sample=sample, write=not no_write
        )
    o.print(f"k = {result.summary['k']}: {result.summary.get('reason', '')}")
    _show(
        o,
        result,
        ["cluster", "name", "customers", "customer_share", "revenue_share", "description"],
        "Clusters",
    )
    o.result(result.to_dict())
