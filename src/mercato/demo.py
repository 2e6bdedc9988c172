"""``mercato demo``: the whole pipeline on the built-in synthetic shop.

Later capabilities add their step to :data:`STEPS`; each step takes the demo context and returns
a small dict for the summary.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mercato.data.ingest import ingest_folder
from mercato.data.summary import summarize_tables
from mercato.data.synth import generate_shop
from mercato.report.build import build_report
from mercato.workspace import Workspace, log_load

DEMO_WORKSPACE = "mercato-demo"


@dataclass
class DemoContext:
    workspace: Workspace
    shop: Path
    customers: int
    days: int
    seed: int
    progress: Callable[[str, int, int], None] | None = None
    results: dict[str, Any] = field(default_factory=dict)


def _synth(ctx: DemoContext) -> dict[str, Any]:
    summary = generate_shop(
        ctx.shop,
        customers=ctx.customers,
        days=ctx.days,
        seed=ctx.seed,
        progress=ctx.progress,
    )
    return summary.to_dict()


def _load(ctx: DemoContext) -> dict[str, Any]:
    with ctx.workspace.warehouse() as wh:
        reports = ingest_folder(wh, ctx.shop, progress=ctx.progress)
    payload = {"source": str(ctx.shop.resolve()), "reports": [r.to_dict() for r in reports]}
    log_load(ctx.workspace, "synth", payload)
    return {
        "inserted": {r.table: r.inserted for r in reports},
        "already_present": sum(r.already_present for r in reports),
    }


def _tables(ctx: DemoContext) -> dict[str, Any]:
    with ctx.workspace.warehouse() as wh:
        return {"tables": summarize_tables(wh)}


def _analyse(ctx: DemoContext) -> dict[str, Any]:
    from mercato.analytics import attribution as attr
    from mercato.analytics.cohorts import cohorts
    from mercato.analytics.funnels import funnel
    from mercato.analytics.kpis import kpis
    from mercato.analytics.profile import profile
    from mercato.analytics.rfm import rfm
    from mercato.analytics.segments import cluster_customers

    with ctx.workspace.warehouse() as wh:
        p = profile(wh)
        k = kpis(wh, freq="month")
        r = rfm(wh)  # writes customer_rfm
        cl = cluster_customers(wh, seed=ctx.seed)  # writes customer_clusters
        c = cohorts(wh)
        f = funnel(wh, ["view", "add_to_cart", "begin_checkout", "purchase"], per_session=True)
        paths, decay, notes = attr.paths_from_warehouse(wh)
        a = attr.attribute(paths, time_decay=decay, notes=notes)
    truth = attr.compare_with_truth(a, ctx.shop / "truth")
    top = r.table.sort_values("revenue", ascending=False).iloc[0]
    return {
        "data_issues": len(p.summary.get("issues") or []),
        "clusters": [str(n) for n in cl.table.name],
        "revenue": k.summary["revenue"],
        "orders": k.summary["orders"],
        "top_segment": f"{top.segment} ({top.revenue_share:.0%} of revenue)",
        "month_1_retention": c.summary["month_1_retention"],
        "funnel_conversion": f.summary["conversion"],
        "attribution_matches_truth": truth["agree"],
        "attribution": truth["explanation"],
    }


def _clv(ctx: DemoContext) -> dict[str, Any]:
    import pandas as pd

    from mercato.models.lifetime import run_clv, save_run

    with ctx.workspace.warehouse() as wh:
        last = wh.table("orders").ts.max().execute()
        # keep the last quarter of the history to check the model on
        cal_end = (last - pd.Timedelta(days=max(ctx.days // 4, 1))).date().isoformat()
        run = run_clv(wh, calibration_end=cal_end)
        saved = save_run(ctx.workspace, wh, run)
    s = run.summary
    return {
        "model": saved["model"],
        "customers": s["customers"],
        "holdout_correlation": (s.get("holdout") or {}).get("correlation"),
        "clv_12_months_total": s.get("clv_total"),
        "top_decile_share": float(run.deciles()["share"].iloc[0]),
    }


def _uplift(ctx: DemoContext) -> dict[str, Any]:
    from mercato.errors import DataError

    try:
        return _uplift_step(ctx)
    except DataError as exc:  # a shop too small for an uplift model: say so, go on
        return {"skipped": exc.message}


def _uplift_step(ctx: DemoContext) -> dict[str, Any]:
    from mercato.models import uplift as up

    with ctx.workspace.warehouse() as wh:
        e = wh.table("campaign_exposures")
        counts = e.group_by("campaign_id").aggregate(n=e.count()).execute()
        cid = str(counts.sort_values(["n", "campaign_id"], ascending=[False, True]).iloc[0, 0])
        frame = up.frame_from_warehouse(wh, cid, "conversion")
        features = list(frame.attrs["features"])
        args = (frame, "treatment", None, "control", "conversion", features)
        where = f"campaign {cid}"
        ev = up.evaluate(*args, id_col="customer_id", seed=ctx.seed, where=where)
        best = ev.summary["best_learner"]
        truth = {}
        for col in [c for c in ev.predictions.columns if c.startswith(f"{best}:")]:
            pred = ev.predictions[["customer_id", col]]
            truth[col.split(":", 1)[1]] = up.compare_with_truth(
                pred, ctx.shop / "truth", uplift_col=col
            )
        model, validation, notes = up.fit_best(*args, id_col="customer_id", seed=ctx.seed)
        population = up.features_from_warehouse(wh, purpose="email")
        plan, plan_summary = up.target(model, population, contact_cost=0.05, value=1.0)
        evaluation = {
            "summary": ev.summary,
            "rows": ev.records(),
            "notes": ev.notes,
            "qini": _qini_points(ev, best),
            "truth": truth,
        }
        saved = up.save_model(
            ctx.workspace,
            wh,
            model,
            population,
            training=frame,
            campaign=cid,
            outcome="conversion",
            validation=validation,
            notes=notes,
            documents={
                "evaluation.json": up._plain(evaluation),
                "plan.json": up._plain({"summary": plan_summary}),
            },
        )
    first = next(iter(truth.values()), {})
    return {
        "campaign": cid,
        "model": saved["model"],
        "best_learner": best,
        "qini_auc": next((r["qini_auc"] for r in ev.records() if r["best"]), None),
        "truth_correlation": first.get("pearson"),
        "share_of_oracle_top_30": first.get("oracle_share_captured"),
        "contacts": plan_summary["contacts"],
    }


def _propensity(ctx: DemoContext) -> dict[str, Any]:
    from mercato.errors import DataError
    from mercato.models import propensity_flow as pf

    try:
        with ctx.workspace.warehouse() as wh:
            run = pf.train(wh, label="purchase", horizon_days=30, time_budget=10, seed=ctx.seed)
            ref = pf.save(ctx.workspace, run)
            scores, summary = pf.score(ctx.workspace, wh, name=ref.split("@")[0])
    except DataError as exc:  # a shop too short or too small: say so, go on
        return {"skipped": exc.message}
    s = run.summary()
    return {
        "model": ref,
        "chosen": s["chosen"],
        "holdout_roc_auc": s["holdout"]["metrics"].get("roc_auc"),
        "customers_scored": summary["customers"],
        "top_driver": (s["holdout"].get("importance") or [{}])[0].get("group"),
        "top_reason": str(scores.nlargest(1, "score")["reason_1"].iloc[0]) if len(scores) else None,
    }


def _recommend(ctx: DemoContext) -> dict[str, Any]:
    from mercato.errors import DataError
    from mercato.models.registry import ModelRegistry
    from mercato.recommend import interactions as ri
    from mercato.recommend.flow import build, default_folder
    from mercato.recommend.serving import Rules

    try:
        with ctx.workspace.warehouse() as wh:
            inter = ri.from_warehouse(wh)
            buyer = str(wh.table("orders").customer_id.max().execute())
            segments = ri.segments_from_warehouse(wh, "rfm")
        index, summary = build(
            inter, default_folder(ctx.workspace, "ease"), kind="ease", time_budget=15,
            seed=ctx.seed, segments=segments, segment_by="rfm",
            registry=ModelRegistry(ctx.workspace),
        )  # fmt: skip
    except DataError as exc:  # a shop too small to split: say so, go on
        return {"skipped": exc.message}
    first = index.recommend(buyer, k=3)
    diverse = index.recommend(buyer, k=3, rules=Rules(diversity=0.5))
    seg = index.segments[0] if index.segments else None
    visitor = index.recommend("a-visitor", k=3, segment=seg)
    return {
        "model": "ease",
        "ndcg_at_10": summary["held_out"].get("ndcg@10"),
        "hit_rate_at_10": summary["held_out"].get("hit_rate@10"),
        "customers": summary["users"],
        "items": summary["items"],
        "registry": summary["registry"],
        "example_customer": buyer,
        "example": [r.to_dict() for r in first],
        "example_diverse": [r.item for r in diverse],
        "visitor_segment": seg,
        "visitor": [r.to_dict() for r in visitor],
    }


def _qini_points(ev: Any, learner: str, points: int = 50) -> dict[str, Any]:
    """The held-out Qini curve of a learner (each treatment), thinned to about ``points``."""
    import numpy as np

    from mercato.models.uplift import qini_curve

    p = ev.predictions
    out: dict[str, Any] = {}
    control = ev.summary["control"]
    for col in [c for c in p.columns if c.startswith(f"{learner}:")]:
        treatment = col.split(":", 1)[1]
        rows = p[p["group"].isin([treatment, control])]
        w = (rows["group"] == treatment).to_numpy(dtype=float)
        x, y = qini_curve(rows[ev.summary["target"]].to_numpy(dtype=float), rows[col], w)
        keep = np.unique(np.linspace(0, len(x) - 1, min(points, len(x))).astype(int))
        out[treatment] = {"x": x[keep].tolist(), "y": y[keep].tolist(), "n": int(len(rows))}
    return out


def _report(ctx: DemoContext) -> dict[str, Any]:
    return {"report": str(build_report(ctx.workspace))}


ANALYSE = "analyse: profile, KPIs, RFM, clusters, cohorts, funnel, attribution"

STEPS: list[tuple[str, Callable[[DemoContext], dict[str, Any]]]] = [
    ("synthesise the shop", _synth),
    ("load it into the warehouse", _load),
    ("summarise the tables", _tables),
    (ANALYSE, _analyse),
    ("customer lifetime value: BG/NBD + Gamma-Gamma, holdout check, scores", _clv),
    ("uplift: learners compared on the e-mail test, true effects, contact plan", _uplift),
    (
        "propensity: 30-day purchase model, measured on the latest cutoff, scores with reasons",
        _propensity,
    ),
    ("recommendations: EASE tuned and measured, serving index, one customer's list", _recommend),
    ("write the report", _report),
]


def run_demo(
    workspace: str | Path | None = None,
    *,
    customers: int = 5_000,
    days: int = 365,
    seed: int = 7,
    progress: Callable[[str, int, int], None] | None = None,
    on_step: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Build a workspace from a small synthetic shop and run every capability on it.

    Examples
    --------
    >>> import tempfile
    >>> out = run_demo(tempfile.mkdtemp() + "/demo", customers=300, days=60)
    >>> out["steps"]["load it into the warehouse"]["inserted"]["customers"]
    300
    """
    started = time.perf_counter()
    ws = Workspace.init(workspace or DEMO_WORKSPACE)
    ctx = DemoContext(ws, ws.path / "demo-shop", customers, days, seed, progress)
    steps: dict[str, Any] = {}
    for name, step in STEPS:
        t0 = time.perf_counter()
        result = step(ctx)
        result["seconds"] = round(time.perf_counter() - t0, 2)
        steps[name] = result
        if on_step:
            on_step(name, result)
    ws.secure()
    example = next(
        (v.get("example_customer") for v in steps.values() if v.get("example_customer")),
        "C0000001",
    )
    return {
        "workspace": str(ws.path.resolve()),
        "steps": steps,
        "seconds": round(time.perf_counter() - started, 2),
        "next": [
            f"mercato tables --workspace {ws.path}",
            "mercato schema events",
            f"mercato ingest customers my_customers.csv --workspace {ws.path}",
            f"mercato analyze rfm --workspace {ws.path}",
            f"mercato analyze attribution --workspace {ws.path} --truth {ctx.shop / 'truth'}",
            f"mercato analyze funnel view,add_to_cart,purchase --by channel -w {ws.path}",
            f"mercato clv run --workspace {ws.path} --horizon 6",
            f"mercato uplift evaluate --workspace {ws.path} --truth {ctx.shop / 'truth'}",
            f"mercato recommend evaluate --workspace {ws.path} --truth {ctx.shop / 'truth'}",
            f"mercato recommend user {example} --workspace {ws.path}",
            f"mercato models list --workspace {ws.path}",
            "mercato datasets list",
            f"mercato datasets load online-retail --workspace {ws.path}",
        ],
    }
