"""``mercato demo``."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from mercato.cli.common import JsonOpt, Output, QuietOpt, WorkspaceOpt, human_int
from mercato.demo import ANALYSE, DEMO_WORKSPACE, run_demo


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    customers: Annotated[int, typer.Option(help="Customers in the demo shop.")] = 5_000,
    days: Annotated[int, typer.Option(help="Days of history.")] = 365,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    workspace: WorkspaceOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run the whole pipeline on a synthetic shop (workspace default: ./mercato-demo)."""
    o = Output(json_, quiet)
    o.print(f"[bold]Mercato demo[/]: a synthetic shop of {customers:,} customers over {days} days")

    def on_step(name: str, result: dict) -> None:
        o.print(f"[green]\u2713[/] {name} ({result['seconds']:.1f} s)")

    with o.progress("demo", None) as update:
        out = run_demo(
            workspace or DEMO_WORKSPACE,
            customers=customers,
            days=days,
            seed=seed,
            progress=lambda stage, done, total: update(done, total=total, description=stage),
            on_step=on_step,
        )
    tables = out["steps"]["summarise the tables"]["tables"]
    o.table(
        "Warehouse",
        ["table", "rows", "people", "from", "to"],
        [
            [
                t["table"],
                human_int(t["rows"]),
                human_int(t.get("people", "")),
                (t.get("first") or "")[:10],
                (t.get("last") or "")[:10],
            ]
            for t in tables
        ],
    )
    a = out["steps"][ANALYSE]
    o.print(f"Data profile: {a['data_issues']} issue(s); clusters: {', '.join(a['clusters'])}.")
    o.print(
        f"Revenue {a['revenue']:,.2f} from {a['orders']:,} orders; top segment {a['top_segment']}; "
        f"{a['month_1_retention']:.0%} of new customers buy again the next month; "
        f"{a['funnel_conversion']:.0%} of sessions with a view end in a purchase."
    )
    o.print(a["attribution"])
    for name, step in out["steps"].items():
        if name.startswith("customer lifetime value"):
            corr = step.get("holdout_correlation")
            o.print(
                f"CLV ({step['model']}): 12-month value {step['clv_12_months_total']:,.0f} for "
                f"{step['customers']:,} customers; the top decile holds "
                f"{step['top_decile_share']:.0%}"
                + (f"; holdout correlation {corr:.2f}." if corr is not None else ".")
            )
        elif name.startswith("propensity"):
            if "skipped" in step:
                o.print(f"Propensity skipped: {step['skipped']}")
            else:
                auc = step.get("holdout_roc_auc")
                o.print(
                    f"Propensity ({step['model']}, {step['chosen']}): ROC-AUC "
                    + (f"{auc:.3f}" if auc is not None else "n/a")
                    + f" on the latest cutoff; {step['customers_scored']:,} customers scored "
                    "with reasons"
                    + (
                        f"; strongest driver: {step['top_driver']}."
                        if step.get("top_driver")
                        else "."
                    )
                )
        elif name.startswith("recommendations"):
            if "skipped" in step:
                o.print(f"Recommendations skipped: {step['skipped']}")
            else:
                ex = step["example"][0] if step["example"] else None
                o.print(
                    f"Recommendations (EASE): NDCG@10 {step['ndcg_at_10']:.3f}, hit rate "
                    f"{step['hit_rate_at_10']:.0%} on held-out interactions"
                    + (
                        f"; for {step['example_customer']}: {ex['item']} ({ex['reason']})."
                        if ex
                        else "."
                    )
                )
        elif name.startswith("uplift"):
            if "skipped" in step:
                o.print(f"Uplift skipped: {step['skipped']}")
            else:
                o.print(
                    f"Uplift ({step['model']}, learner {step['best_learner']}): "
                    f"{step['contacts']:,} customers worth contacting for {step['campaign']}."
                )
    o.print(f"Report: [bold]{out['steps']['write the report']['report']}[/]")
    o.print("Next, try:")
    if shutil.which("mercato") is None:
        bindir = Path(sys.executable).parent
        o.print(f"  source {bindir / 'activate'}   # puts `mercato` on your PATH")
    for cmd in out["next"]:
        o.print(f"  {cmd}")
    o.result(out)
