"""Report sections of the customer analytics (RFM, cohorts, KPIs, funnel, attribution...)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mercato.analytics.base import AnalysisResult
from mercato.data.warehouse import Warehouse
from mercato.errors import DataError
from mercato.report.build import ReportTable, Section
from mercato.workspace import Workspace, read_loads

FUNNEL_STEPS = ["view", "add_to_cart", "begin_checkout", "purchase"]


def _rows(result: AnalysisResult, columns: list[str]) -> list[list[Any]]:
    cols = [c for c in columns if c in result.table.columns]
    out = []
    for rec in result.table[cols].to_dict("records"):
        out.append([_round(rec[c]) for c in cols])
    return out


def _round(v: Any) -> Any:
    if isinstance(v, float):
        if v != v:
            return None
        return round(v, 3) if abs(v) < 10 else round(v, 1)
    if hasattr(v, "isoformat"):
        return str(v)[:10]
    return v


def _pct(v: Any) -> str:
    return "" if v is None or v != v else f"{v:.1%}"


def _has_orders(wh: Warehouse) -> bool:
    return wh.has_table("orders") and wh.count("orders") > 0


def kpis_section(ws: Workspace, wh: Warehouse) -> Section | None:
    from mercato.analytics.kpis import kpis

    if not _has_orders(wh):
        return None
    monthly = kpis(wh, freq="month")
    channel = kpis(wh, by="channel")
    cols = [
        "period",
        "revenue",
        "orders",
        "customers",
        "new_customers",
        "aov",
        "repeat_rate",
        "conversion_rate",
        "ctr",
        "email_open_rate",
    ]
    ch_cols = ["channel", "revenue", "orders", "customers", "aov", "cost", "cpa", "roas"]
    return Section(
        id="kpis",
        title="KPIs",
        intro=f"Revenue {monthly.summary['revenue']:,.2f} from {monthly.summary['orders']:,} "
        "orders.",
        tables=[
            ReportTable("By month", [c for c in cols if c in monthly.table], _rows(monthly, cols)),
            ReportTable(
                "By channel", [c for c in ch_cols if c in channel.table], _rows(channel, ch_cols)
            ),
        ],
        notes=monthly.notes + channel.notes,
    )


def rfm_section(ws: Workspace, wh: Warehouse) -> Section | None:
    from mercato.analytics.rfm import rfm

    if not _has_orders(wh):
        return None
    r = rfm(wh, write=False)
    rows = [
        [
            rec["segment"],
            rec["customers"],
            _pct(rec["customer_share"]),
            _round(rec["revenue"]),
            _pct(rec["revenue_share"]),
            _round(rec["avg_recency_days"]),
            _round(rec["avg_frequency"]),
            _round(rec["avg_monetary"]),
        ]
        for rec in r.table.to_dict("records")
    ]
    return Section(
        id="rfm",
        title="RFM segments",
        intro=f"{r.summary['customers']:,} customers scored by recency, frequency and monetary "
        f"value (quintiles) as of {str(r.summary['as_of'])[:10]}.",
        tables=[
            ReportTable(
                "Segments",
                [
                    "segment",
                    "customers",
                    "share",
                    "revenue",
                    "revenue share",
                    "recency (days)",
                    "orders",
                    "spend",
                ],
                rows,
            )
        ],
        notes=r.notes,
    )


def cohorts_section(ws: Workspace, wh: Warehouse) -> Section | None:
    from mercato.analytics.cohorts import cohorts

    if not _has_orders(wh):
        return None
    r = cohorts(wh, max_months=12)
    t = r.table
    if t.empty:
        return None
    pivot = t.pivot(index="cohort", columns="month", values="retention")
    sizes = t[t.month == 0].set_index("cohort").cohort_size
    rows = [[idx, int(sizes[idx]), *[_pct(v) for v in row.values]] for idx, row in pivot.iterrows()]
    m1 = r.summary.get("month_1_retention")
    return Section(
        id="cohorts",
        title="Cohorts",
        intro="Share of each acquisition month's customers who bought again N months later"
        + (f"; {m1:.1%} come back in the month after their first purchase." if m1 else "."),
        tables=[
            ReportTable(
                "Retention", ["cohort", "customers", *[str(c) for c in pivot.columns]], rows
            )
        ],
        notes=r.notes,
    )


def funnel_section(ws: Workspace, wh: Warehouse) -> Section | None:
    from mercato.analytics.funnels import funnel

    if not wh.has_table("events") or wh.count("events") == 0:
        return None
    r = funnel(wh, FUNNEL_STEPS, per_session=True)
    rows = [
        [
            rec["step"],
            rec["actors"],
            _pct(rec["conversion_from_previous"]),
            _pct(rec["conversion_from_first"]),
            rec["drop_off"],
        ]
        for rec in r.table.to_dict("records")
    ]
    conv = r.summary.get("conversion")
    return Section(
        id="funnel",
        title="Funnel",
        intro="Sessions from a product view to a purchase"
        + (f": {conv:.1%} of sessions with a view end in a purchase." if conv else "."),
        tables=[
            ReportTable(
                "Steps", ["step", "sessions", "from previous", "from first", "drop-off"], rows
            )
        ],
        notes=r.notes,
    )


def _truth_dir(ws: Workspace) -> Path | None:
    for rec in reversed(read_loads(ws)):
        if rec.get("kind") == "synth" and rec.get("source"):
            truth = Path(rec["source"]) / "truth"
            if (truth / "channels.parquet").exists():
                return truth
    return None


def attribution_section(ws: Workspace, wh: Warehouse) -> Section | None:
    from mercato.analytics import attribution as attr

    if not wh.has_table("touchpoints") or wh.count("touchpoints") == 0:
        return None
    try:
        paths, decay, notes = attr.paths_from_warehouse(wh)
        r = attr.attribute(paths, time_decay=decay, notes=notes)
    except DataError as exc:
        return Section(id="attribution", title="Channel attribution", notes=[exc.message])
    cols = attr.MODEL_COLUMNS
    tables = [ReportTable("Attributed conversions", cols, _rows(r, cols))]
    extra = []
    truth = _truth_dir(ws)
    if truth is not None:
        cmp = attr.compare_with_truth(r, truth)
        tables.append(
            ReportTable(
                "Against the synthetic shop's truth",
                [
                    "channel",
                    "true effect per contact",
                    "truly caused conversions",
                    "true rank",
                    "Markov conversions",
                    "Markov rank",
                ],
                [
                    [
                        c["channel"],
                        c["true_incremental_effect"],
                        c["true_caused_conversions"],
                        c["true_rank"],
                        _round(c["markov_conversions"]),
                        c["markov_rank"],
                    ]
                    for c in cmp["channels"]
                ],
            )
        )
        extra.append(cmp["explanation"])
    s = r.summary
    return Section(
        id="attribution",
        title="Channel attribution",
        intro=f"{s['paths']:,} distinct paths, {s['total_conversions']:,.0f} conversions; "
        f"Markov removal effects solved exactly (P(conversion) = "
        f"{s['conversion_probability']:.4f}).",
        tables=tables,
        notes=extra + r.notes,
    )


def profile_section(ws: Workspace, wh: Warehouse) -> Section | None:
    from mercato.analytics.profile import profile

    r = profile(wh)
    rows = r.summary.get("rows") or {}
    if not any(rows.values()):
        return None
    issues = r.summary.get("issues") or []
    cols = ["table", "column", "type", "missing", "distinct", "min", "max", "mean", "outliers"]
    return Section(
        id="profile",
        title="Data profile",
        intro=(f"{len(issues)} issue(s) found: " + "; ".join(issues))
        if issues
        else "No issues found: keys are unique and every reference between tables resolves.",
        tables=[ReportTable("Columns", cols, _rows(r, cols))],
        notes=r.notes,
    )


def clusters_section(ws: Workspace, wh: Warehouse) -> Section | None:
    from mercato.analytics.segments import cluster_customers

    if not _has_orders(wh):
        return None
    try:
        r = cluster_customers(wh, write=False)
    except DataError as exc:
        return Section(id="clusters", title="Customer clusters", notes=[exc.message])
    rows = [
        [
            rec["name"],
            rec["customers"],
            _pct(rec["customer_share"]),
            _pct(rec["revenue_share"]),
            rec["description"],
        ]
        for rec in r.table.to_dict("records")
    ]
    return Section(
        id="clusters",
        title="Customer clusters",
        intro=f"{r.summary['k']} behavioural clusters, chosen automatically: "
        f"{r.summary.get('reason', '')}",
        tables=[
            ReportTable(
                "Clusters", ["cluster", "customers", "share", "revenue share", "profile"], rows
            )
        ],
        notes=r.notes,
    )


SECTIONS = [
    profile_section,
    kpis_section,
    rfm_section,
    clusters_section,
    cohorts_section,
    funnel_section,
    attribution_section,
]
