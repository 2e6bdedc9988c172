"""Report sections for the models of the registry: what was fitted, how well it predicts.

Sections read what the model commands saved (the registry's manifests and evaluation
documents, the warehouse's score tables): building the report never refits a model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mercato.data.warehouse import Warehouse
from mercato.errors import MercatoError
from mercato.models.registry import ModelRegistry
from mercato.report.build import ReportTable, Section
from mercato.report.charts import LineChart, Series
from mercato.workspace import Workspace

__all__ = ["SECTIONS", "clv_section"]


def _g(v: Any, digits: int = 4) -> Any:
    if isinstance(v, float):
        return float(f"{v:.{digits}g}")
    return v


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
    params = [
        [k, _g(p["value"]), _g(p["se"]), _g(p["lower_95"]), _g(p["upper_95"])]
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


SECTIONS: list[Callable[[Workspace, Warehouse], Section | None]] = [clv_section]
