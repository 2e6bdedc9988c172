"""``mercato predict ...``: propensity models (who will buy, churn, answer) and their evaluation."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from mercato.cli.common import JsonOpt, Output, QuietOpt

app = typer.Typer(
    help="Propensity models: who will buy, churn or answer a campaign, and how well we can tell.",
    no_args_is_help=True,
)


def _split_list(text: str | None) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()] if text else []


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


@app.command("evaluate")
def evaluate_cmd(
    from_: Annotated[
        Path,
        typer.Option(
            "--from",
            help="A table, one row per customer: CSV (',' or ';' separated, maybe .gz) or Parquet.",
        ),
    ],
    target: Annotated[str, typer.Option(help="The column to predict: two classes (or an amount).")],
    exclude: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated columns to leave out (identifiers, values known only after "
            "the fact)."
        ),
    ] = None,
    cv: Annotated[int, typer.Option(help="Folds of the outer cross-validation.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the folds and of every model.")] = 42,
    positive: Annotated[
        str | None,
        typer.Option(
            help="The positive class (default: the value that reads as yes, else the rarer one)."
        ),
    ] = None,
    time_col: Annotated[
        str | None,
        typer.Option(
            "--time-col",
            help="A time column: forward-chaining folds and time-based validation.",
        ),
    ] = None,
    cost: Annotated[
        float | None, typer.Option("--cost", help="Cost of contacting one customer.")
    ] = None,
    value: Annotated[float | None, typer.Option("--value", help="Value of one conversion.")] = None,
    time_budget: Annotated[
        float, typer.Option("--time-budget", help="Seconds of model search per fold.")
    ] = 15.0,
    output: Annotated[
        Path | None,
        typer.Option(
            help="Write every row's out-of-fold prediction (row, target, y, p, fold) to this CSV."
        ),
    ] = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Evaluate the automatic propensity procedure on a table by nested cross-validation.

    In each fold the whole procedure (model choice among a dummy baseline, logistic
    regression and LightGBM, tuning, calibration) runs on the training folds only; the
    held-out fold is predicted. The metrics are those of the out-of-fold predictions of every
    row.
    """
    from mercato.models import propensity as pm

    o = Output(json_, quiet)
    frame = pm.read_table(from_)
    with o.progress("evaluating", cv) as update:
        result = pm.evaluate(
            frame,
            target,
            exclude=_split_list(exclude),
            cv=cv,
            seed=seed,
            positive=positive,
            time_col=time_col,
            contact_cost=cost,
            value=value,
            time_budget=time_budget,
            where=from_.name,
            progress=lambda d, t, desc: update(d, total=t, description=desc),
        )
    payload = result.to_dict()
    payload["input"] = str(from_)
    if output is not None:
        result.predictions.to_csv(output, index=False)
        payload["output"] = str(output)
    _show(o, result, from_, output)
    o.result(payload)


def _show(o: Output, result: Any, path: Path, output: Path | None) -> None:
    s = result.summary
    m = s["metrics"]
    head = (
        f"[bold]{path.name}[/]: {s['evaluated_rows']:,} rows evaluated ({s['rows']:,} read); "
        f"target {s['target']}"
    )
    if s["task"] == "classification":
        head += f" (positive {s['positive']!r}, {m['base_rate']:.1%})"
    else:
        head += " (an amount)"
    o.print(head + f"; {s['folds']}; {s['seconds']:.0f} s")
    if s["task"] == "classification":
        rows = [
            [
                "ROC-AUC",
                _fmt(m["roc_auc"]),
                f"per fold {s['fold_roc_auc_mean']:.4f} ± {_fmt(s['fold_roc_auc_sd'])}",
            ],
            ["PR-AUC (average precision)", _fmt(m["pr_auc"]), f"base rate {m['base_rate']:.4f}"],
            ["Brier score", _fmt(m["brier"]), ""],
            ["log-loss", _fmt(m["log_loss"]), f"mean predicted {m['mean_predicted']:.4f}"],
        ]
        for label, r in [
            (f"at {m['threshold']:g}", m),
            ("at the profit threshold", m.get("at_profit_threshold")),
        ]:
            if not r:
                continue
            rows.append(
                [
                    f"accuracy / precision / recall / F1 {label}",
                    f"{r['accuracy']:.4f} / {r['precision']:.4f} / {r['recall']:.4f} / "
                    f"{r['f1']:.4f}",
                    f"threshold {r['threshold']:.4f}, contacted {r['contacted_share']:.1%}",
                ]
            )
        best = m.get("at_profit_threshold")
        if best:
            rows.append(
                [
                    "profit at that threshold",
                    _fmt(best["profit"], 2),
                    f"contacting everyone: {best['profit_contact_all']:.2f}; break-even "
                    f"probability {best['break_even_probability']:.4f}",
                ]
            )
        o.table("Out-of-fold metrics", ["metric", "value", ""], rows)
    else:
        o.table(
            "Out-of-fold metrics",
            ["metric", "value", ""],
            [
                [
                    "RMSE",
                    _fmt(m["rmse"]),
                    f"per fold {s['fold_rmse_mean']:.4f} ± {_fmt(s['fold_rmse_sd'])}",
                ],
                ["MAE", _fmt(m["mae"]), ""],
                ["R²", _fmt(m["r2"]), f"mean actual {m['mean_actual']:.4f}"],
            ],
        )
    metric = "roc_auc" if s["task"] == "classification" else "rmse"
    o.table(
        "Chosen model per fold (chosen on the training folds only)",
        ["fold", "chosen", "calibration", metric.replace("_", "-").upper(), "seconds", "why"],
        [
            [
                r["fold"],
                r["chosen"],
                r["calibration"],
                _fmt(r[metric]),
                _fmt(r["seconds"], 1),
                r["reason"],
            ]
            for r in result.folds.to_dict("records")
        ],
    )
    if s["task"] == "classification":
        o.table(
            "Lift by decile (1 = highest scores)",
            ["decile", "customers", "positives", "rate", "lift", "cumulative gain", "scores"],
            [
                [
                    r["decile"],
                    f"{r['customers']:,}",
                    f"{r['positives']:,}",
                    f"{r['rate']:.3f}",
                    f"{r['lift']:.2f}",
                    f"{r['cumulative_gain']:.1%}",
                    f"{r['min_score']:.3f}-{r['max_score']:.3f}",
                ]
                for r in result.records()
            ],
        )
        o.table(
            "Calibration (bins of equal size)",
            ["bin", "customers", "mean predicted", "observed rate"],
            [
                [
                    r["bin"],
                    f"{r['customers']:,}",
                    f"{r['mean_predicted']:.4f}",
                    f"{r['observed_rate']:.4f}",
                ]
                for r in result.calibration.to_dict("records")
            ],
        )
    else:
        o.table(
            "By decile of the prediction (1 = highest)",
            ["decile", "customers", "mean predicted", "mean actual", "cumulative share"],
            [
                [
                    r["decile"],
                    f"{r['customers']:,}",
                    f"{r['mean_predicted']:.4g}",
                    f"{r['mean_actual']:.4g}",
                    f"{r['cumulative_share']:.1%}",
                ]
                for r in result.records()
            ],
        )
    for note in result.notes:
        o.print(f"- {note}")
    if output is not None:
        o.print(f"out-of-fold predictions of every row: {output}")
