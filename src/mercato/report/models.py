"""Report sections for the models of the registry: what was fitted, how well it predicts.

Sections read what the model commands saved (the registry's manifests and evaluation
documents, the warehouse's score tables): building the report never refits a model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mercato.data.warehouse import Warehouse
from mercato.errors import MercatoError
from mercato.models.importance import short_name
from mercato.models.registry import ModelRegistry
from mercato.report.build import ReportTable, Section
from mercato.report.charts import LineChart, Series
from mercato.workspace import Workspace

__all__ = ["SECTIONS", "clv_section", "propensity_section", "uplift_section"]


def _g(v: Any, digits: int = 4) -> Any:
    if isinstance(v, float):
        return float(f"{v:.{digits}g}")
    return v


def _sig(v: Any) -> str:
    return "" if v is None else f"{v:.4g}"


def clv_section(ws: Workspace, wh: Warehouse) -> Section | None:
    """The newest ``clv`` model: parameters with intervals, holdout check, CLV by decile."""
    reg = ModelRegistry(ws)
    try:
        mv = reg.get("clv")
        ev = reg.document("clv", "evaluation.json")
    except MercatoError:
        return None
    if not ev:
        return None
    s = ev["summary"]
    params = [  # four significant digits (the table's number format would show two decimals)
        [k, *(_sig(p[c]) for c in ("value", "se", "lower_95", "upper_95"))]
        for k, p in {**s["parameters"], **(s.get("spend_parameters") or {})}.items()
    ]
    tables = [
        ReportTable(
            f"Parameters ({s['model_class']} and Gamma-Gamma spend, fitted on all the data)",
            ["parameter", "value", "std. error", "95% low", "95% high"],
            params,
        )
    ]
    charts: list[LineChart] = []
    intro = (
        f"{s['model_class']} fitted on {s['customers']:,} customers ({s['repeat_customers']:,} "
        f"repeat buyers), purchases from {s['first_day']} to {s['observation_end']}; model "
        f"clv v{mv.version}. "
    )
    if "clv_total" in s:
        intro += (
            f"Expected {s['horizon_months']}-month value (discounted at "
            f"{s['discount_rate_monthly']:.1%} a month): {s['clv_total']:,.0f} in total, "
            f"{s['clv_mean']:,.2f} per customer on average (median {s['clv_median']:,.2f})."
        )
    holdout = ev.get("holdout")
    if holdout:
        h = holdout["summary"]
        intro += (
            f" Checked on the days after {s['calibration_end']}: correlation of predicted and "
            f"actual repeat purchases per customer {h['correlation']:.3f}; "
            f"{h['predicted_total']:,.0f} predicted vs {h['actual_total']:,.0f} actual."
        )
        rows = holdout["rows"]
        tables.append(
            ReportTable(
                "Holdout: mean repeat purchases per customer by calibration frequency",
                ["frequency", "customers", "actual", "predicted"],
                [
                    [r["frequency"], r["customers"], _g(r["actual"]), _g(r["predicted"])]
                    for r in rows
                ],
            )
        )
        xs = list(range(len(rows)))
        charts.append(
            LineChart(
                "Holdout: predicted vs actual repeat purchases by calibration frequency",
                "repeat purchases in the calibration period",
                "mean repeat purchases in the holdout",
                [
                    Series("actual", xs, [r["actual"] for r in rows]),
                    Series("predicted", xs, [r["predicted"] for r in rows], dashed=True),
                ],
                x_labels={float(i): str(r["frequency"]) for i, r in enumerate(rows)},
            )
        )
    tracking = ev.get("tracking")
    if tracking:
        xs = [r["period"] for r in tracking]
        cal_periods = [r["period"] for r in tracking if r["calibration"]]
        charts.append(
            LineChart(
                "Cumulative repeat purchases of the cohort: actual vs model",
                f"period ({s['time_unit_days']:g} days)",
                "cumulative repeat purchases",
                [
                    Series("actual", xs, [r["actual_cumulative"] for r in tracking]),
                    Series("model", xs, [r["expected_cumulative"] for r in tracking], dashed=True),
                ],
                marker_x=float(max(cal_periods)) if cal_periods else None,
                marker_label="calibration end",
            )
        )
    deciles = ev.get("deciles") or []
    if deciles:
        what = "CLV" if "clv_total" in s else "expected purchases"
        tables.append(
            ReportTable(
                f"Customers by {what} decile (1 = most valuable)",
                ["decile", "customers", f"mean {what}", "share of the total"],
                [
                    [r["decile"], r["customers"], _g(r["mean"]), f"{r['share']:.1%}"]
                    for r in deciles
                ],
            )
        )
    if wh.has_table("customer_clv"):
        intro += f" Per-customer scores: table customer_clv ({wh.count('customer_clv'):,} rows)."
    return Section(
        id="clv",
        title="Customer lifetime value",
        intro=intro,
        tables=tables,
        charts=charts,
        notes=list(ev.get("notes") or []),
    )


def uplift_section(ws: Workspace, wh: Warehouse) -> Section | None:
    """Every uplift model (newest version): learners on the held-out part, Qini, truth, plan."""
    reg = ModelRegistry(ws)
    versions = [v for v in reg.latest() if v.kind == "uplift"]
    if not versions:
        return None
    tables: list[ReportTable] = []
    charts: list[LineChart] = []
    notes: list[str] = []
    intro_parts = []
    for mv in versions:
        window = mv.manifest.get("data_window") or {}
        learner = (mv.manifest.get("params") or {}).get("learner")
        intro_parts.append(
            f"{mv.name} v{mv.version}: campaign {window.get('campaign')}, outcome "
            f"{window.get('outcome')}, learner {learner}, trained on "
            f"{mv.manifest.get('customers') or 0:,} exposed customers."
        )
        ev = reg.document(mv.name, "evaluation.json", mv.version)
        if ev:
            s = ev["summary"]
            tables.append(
                ReportTable(
                    f"{mv.name}: learners on the held-out {s['test_size']:.0%} "
                    f"({s['test_rows']:,} rows, seed {s['seed']}); the chosen one is marked",
                    ["learner", "treatment", f"uplift@{s['k']:.0%}", "Qini AUC", "uplift AUC"],
                    [
                        [
                            r["name"] + (" (chosen)" if r["best"] else ""),
                            r["treatment"],
                            _sig(r["uplift_at_k"]),
                            _sig(r["qini_auc"]),
                            _sig(r["uplift_auc"]),
                        ]
                        for r in ev["rows"]
                    ],
                )
            )
            bal = s.get("balance") or {}
            flagged = bal.get("flagged") or []
            notes.append(
                f"{mv.name}: treatment and control "
                + ("are balanced" if bal.get("balanced") else "are NOT balanced")
                + f" ({len(flagged)} feature(s) with |SMD| > {bal.get('smd_threshold', 0.1)})"
                + (
                    f"; sample-ratio test p = {bal['srm']['p_value']:.3g}"
                    if isinstance(bal.get("srm"), dict) and "p_value" in bal["srm"]
                    else ""
                )
                + "."
            )
            for treatment, curve in (ev.get("qini") or {}).items():
                x, y = curve["x"], curve["y"]
                if len(x) < 2:
                    continue
                charts.append(
                    LineChart(
                        f"{mv.name}: Qini curve of {treatment} on the held-out rows",
                        "customers targeted (best predicted uplift first)",
                        "incremental outcomes",
                        [
                            Series("model", x, y),
                            Series("random", [x[0], x[-1]], [y[0], y[-1]], dashed=True),
                        ],
                    )
                )
            for treatment, t in (ev.get("truth") or {}).items():
                notes.append(
                    f"{mv.name}, {treatment}, against the synthetic shop's true effects "
                    f"({t['customers']:,} held-out customers): correlation {t['pearson']:.3f}; "
                    f"targeting the top {t['k']:.0%} captures {t['oracle_share_captured']:.0%} "
                    f"of the oracle's incremental conversions (random: {t['random_share']:.0%})."
                )
        plan = reg.document(mv.name, "plan.json", mv.version)
        if plan:
            p = plan["summary"]
            what = "conversions" if p.get("objective") == "conversions" else "revenue"
            tables.append(
                ReportTable(
                    f"{mv.name}: contact plan (cost {p['contact_cost']:g} a contact, value "
                    f"{p['value']:g})",
                    ["treatment", "contacts", f"expected incremental {what}"],
                    [
                        [t, v["contacts"], _sig(v[f"expected_incremental_{what}"])]
                        for t, v in p["per_treatment"].items()
                    ],
                )
            )
            notes.append(f"{mv.name}: the plan stopped because {p['stopped_by']}.")
    if wh.has_table("customer_uplift"):
        intro_parts.append(
            f"Per-customer uplift: table customer_uplift ({wh.count('customer_uplift'):,} rows)."
        )
    return Section(
        id="uplift",
        title="Campaign uplift",
        intro=" ".join(intro_parts),
        tables=tables,
        charts=charts,
        notes=notes,
    )


def propensity_section(ws: Workspace, wh: Warehouse) -> Section | None:
    """Every propensity model (newest version): the choice, the held-out cutoff, the scores."""
    reg = ModelRegistry(ws)
    versions = [v for v in reg.latest() if v.kind == "propensity"]
    if not versions:
        return None
    tables: list[ReportTable] = []
    charts: list[LineChart] = []
    intro: list[str] = []
    notes: list[str] = []
    for mv in versions:
        ev = reg.document(mv.name, "evaluation.json", mv.version) or {}
        s = ev.get("summary") or {}
        h = s.get("holdout") or {}
        m = h.get("metrics") or {}
        intro.append(
            f"{mv.name} v{mv.version}: {s.get('label')} within {s.get('horizon_days')} days; "
            f"{s.get('chosen')} chosen on {s.get('rows', 0):,} rows (cutoffs "
            f"{', '.join(s.get('cutoffs') or [])}), {s.get('features')} features."
        )
        if s.get("reason"):
            notes.append(f"{mv.name}: {s['reason']}")
        keys = [
            ("roc_auc", "ROC-AUC"),
            ("pr_auc", "PR-AUC"),
            ("brier", "Brier"),
            ("log_loss", "log-loss"),
            ("base_rate", "base rate"),
            ("mae", "MAE"),
            ("rmse", "RMSE"),
            ("r2", "R²"),
        ]
        rows = [[label, _sig(m[k])] for k, label in keys if isinstance(m.get(k), int | float)]
        if rows:
            tables.append(
                ReportTable(
                    f"{mv.name}: measured on the latest cutoff ({h.get('cutoff')}, "
                    f"{h.get('rows', 0):,} customers) after training on the earlier ones",
                    ["metric", "value"],
                    rows,
                )
            )
        board = ev.get("leaderboard") or []
        if board:
            cols = [
                c
                for c in ("candidate", "settings", "roc_auc", "rmse", "brier", "status", "chosen")
                if c in board[0]
            ]
            tables.append(
                ReportTable(
                    f"{mv.name}: the candidates on validation",
                    cols,
                    [[_sig(r.get(c)) if isinstance(r.get(c), float) else r.get(c) for c in cols]
                     for r in board[:12]],
                )
            )  # fmt: skip
        imp = h.get("importance") or []
        if imp:
            metric = "ROC-AUC" if imp[0].get("metric") == "roc_auc" else "R²"
            tables.append(
                ReportTable(
                    f"{mv.name}: what drives it (drop of the latest cutoff's {metric} when a "
                    "group of correlated features is shuffled)",
                    ["features", "importance", "sd", "share"],
                    [[short_name(r["group"], 4), _sig(r["importance"]), _sig(r.get("sd")),
                      f"{r['share']:.1%}"] for r in imp[:10]],
                )
            )  # fmt: skip
        for feature, points in _by_feature(h.get("dependence") or []).items():
            numeric = [p for p in points if p.get("kind") == "numeric" and p.get("x") is not None]
            if len(numeric) >= 2:
                charts.append(
                    LineChart(
                        f"{mv.name}: partial dependence on {feature}",
                        feature,
                        "mean prediction",
                        [Series("prediction", [p["x"] for p in numeric],
                                [p["prediction"] for p in numeric])],
                    )
                )  # fmt: skip
            else:
                tables.append(
                    ReportTable(
                        f"{mv.name}: partial dependence on {feature}",
                        ["value", "mean prediction", "share of customers"],
                        [[p["value"], _sig(p["prediction"]), f"{p['share']:.1%}"]
                         for p in points],
                    )
                )  # fmt: skip
    if wh.has_table("customer_propensity"):
        t = wh.table("customer_propensity")
        n = wh.count("customer_propensity")
        intro.append(f"Scores with reasons: table customer_propensity ({n:,} customers).")
        top = t.order_by(t.score.desc()).limit(5).execute()
        cols = [c for c in ("score", "reason_1", "reason_2", "reason_3") if c in top.columns]
        tables.append(
            ReportTable(
                "The five highest scores and their reasons (customer ids left out)",
                cols,
                [
                    [_sig(r[c]) if c == "score" else r[c] for c in cols]
                    for r in top.to_dict("records")
                ],
            )
        )
    return Section(
        id="propensity",
        title="Propensity",
        intro=" ".join(intro),
        tables=tables,
        notes=notes,
        charts=charts,
    )


def _by_feature(points: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for p in points:
        out.setdefault(str(p.get("feature")), []).append(p)
    return out


def recommend_section(ws: Workspace, wh: Warehouse) -> Section | None:
    """Every serving index of the workspace: the model, its settings, held-out metrics."""
    from mercato.recommend.flow import read_evaluation

    root = ws.path / "serving"
    folders = sorted(p for p in root.glob("recommender-*") if p.is_dir()) if root.exists() else []
    docs: list[tuple[Any, dict[str, Any]]] = []
    for p in folders:
        d = read_evaluation(p)
        if d:
            docs.append((p, d))
    if not docs:
        return None
    tables: list[ReportTable] = []
    intro: list[str] = []
    notes: list[str] = []
    for folder, d in docs:
        k = d.get("k", 10)
        h = d.get("held_out") or {}
        intro.append(
            f"{d.get('model')}: {d.get('users', 0):,} customers x {d.get('items', 0):,} items "
            f"({d.get('interactions', 0):,} interactions); settings chosen on a validation "
            f"part: {h.get('settings') or '-'}; serving index in {folder.name}"
            + (
                f" (model registry: {d['registry']['name']} v{d['registry']['version']})"
                if d.get("registry")
                else ""
            )
            + "."
        )
        if d.get("segments"):
            intro.append(
                f"Cold start and 'popular in your segment' use {len(d['segments'])} segments "
                f"by {d.get('segment_by')}."
            )
        if d.get("new_items"):
            intro.append(
                f"{d['new_items']:,} catalogue items nobody has touched yet are scored from "
                "known items of their category nearest in price."
            )
        keys = [(f"precision@{k}", f"precision@{k}"), (f"recall@{k}", f"recall@{k}"),
                (f"ndcg@{k}", f"NDCG@{k}"), (f"map@{k}", f"MAP@{k}"),
                (f"hit_rate@{k}", "hit rate"), (f"mrr@{k}", "MRR"), ("coverage", "coverage"),
                ("novelty", "novelty")]  # fmt: skip
        tables.append(
            ReportTable(
                f"{d.get('model')}: measured on held-out interactions ({d.get('split')} split)",
                ["metric", "value"],
                [
                    [label, _sig(h[key])]
                    for key, label in keys
                    if isinstance(h.get(key), int | float)
                ],
            )
        )
        notes.extend(str(n) for n in (d.get("notes") or [])[:4])
    return Section(id="recommend", title="Recommendations", intro=" ".join(intro),
                   tables=tables, notes=notes)  # fmt: skip


SECTIONS: list[Callable[[Workspace, Warehouse], Section | None]] = [
    clv_section,
    uplift_section,
    propensity_section,
    recommend_section,
]
