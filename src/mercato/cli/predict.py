"""``mercato predict ...``: propensity models (who will buy, churn, answer) and their evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mercato.cli.common import JsonOpt, Output, QuietOpt, WorkspaceOpt
from mercato.cli.common import fmt as _fmt

app = typer.Typer(
    help="Propensity models: who will buy, churn or answer a campaign, and how well we can tell.",
    no_args_is_help=True,
)


def _split_list(text: str | None) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()] if text else []


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
    _drivers(o, result.importance, result.dependence)
    for note in result.notes:
        o.print(f"- {note}")
    if output is not None:
        o.print(f"out-of-fold predictions of every row: {output}")


def _drivers(o: Output, importance: Any, dependence: Any, top: int = 10) -> None:
    """The global importance table and, per top feature, its partial dependence in a line."""
    from mercato.models.importance import short_name

    if importance is None or len(importance) == 0:
        return
    rows = importance.to_dict("records") if hasattr(importance, "to_dict") else importance
    metric = "ROC-AUC" if rows[0].get("metric") == "roc_auc" else "R²"
    o.table(
        f"What drives the model (drop of held-out {metric} when shuffled)",
        ["features (correlated ones together)", "importance", "sd", "share"],
        [
            [
                short_name(r["group"]),
                f"{r['importance']:+.4f}",
                _fmt(r.get("sd")),
                f"{r['share']:.1%}",
            ]
            for r in rows[:top]
        ],
    )
    deps = dependence.to_dict("records") if hasattr(dependence, "to_dict") else dependence or []
    by: dict[str, list[str]] = {}
    for r in deps:
        by.setdefault(str(r["feature"]), []).append(f"{r['value']}: {r['prediction']:.3g}")
    for feature, points in by.items():
        shown = points if len(points) <= 7 else points[:3] + ["..."] + points[-3:]
        o.print(f"[dim]partial dependence of {feature}: {'; '.join(shown)}[/]")


@app.command("audit")
def audit_cmd(
    from_: Annotated[
        Path,
        typer.Option("--from", help="A table, one row per customer (CSV, maybe .gz, or Parquet)."),
    ],
    target: Annotated[str, typer.Option(help="The column to predict (two classes).")],
    sensitive: Annotated[
        str,
        typer.Option(
            help="Comma-separated sensitive columns (gender, age...): left out of the features "
            "and audited."
        ),
    ],
    exclude: Annotated[
        str | None, typer.Option(help="Comma-separated columns to leave out as well.")
    ] = None,
    top_share: Annotated[
        float | None,
        typer.Option(help="Who is selected: the top share of scores (default 0.2)."),
    ] = None,
    threshold: Annotated[
        float | None, typer.Option(help="Who is selected: a probability at or above this.")
    ] = None,
    cv: Annotated[int, typer.Option(help="Folds of the outer cross-validation.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the folds, models and bootstrap.")] = 42,
    positive: Annotated[str | None, typer.Option(help="The positive class.")] = None,
    time_budget: Annotated[
        float, typer.Option("--time-budget", help="Seconds of model search per fold.")
    ] = 15.0,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples of the intervals.")] = 1000,
    min_group: Annotated[
        int, typer.Option(help="Smaller groups are shown but left out of the ratios.")
    ] = 30,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Fairness audit of the targeting the automatic model would do, per sensitive group.

    The model never sees the sensitive columns; its out-of-fold scores select the top share
    (or those above a threshold); per group: selection rate, true and false positive rates and
    precision with bootstrap 95% intervals, the demographic-parity ratio, the equalised-odds
    difference and the four-fifths flag; then which features stand in for each sensitive column.
    """
    from mercato.errors import DataError
    from mercato.models import propensity as pm
    from mercato.models.fairness import audit, proxy_check

    o = Output(json_, quiet)
    if top_share is not None and threshold is not None:
        raise DataError("give --top-share or --threshold, not both", column="--threshold")
    frame = pm.read_table(from_)
    names = _split_list(sensitive)
    if not names:
        raise DataError("--sensitive needs at least one column", column="--sensitive")
    for c in [*names, *_split_list(exclude)]:
        if c not in frame.columns:
            raise DataError(
                f"{from_.name} has no column {c!r}",
                file=str(from_),
                column=c,
                hint=f"its columns: {', '.join(map(str, frame.columns))}",
            )
    with o.progress("evaluating", cv) as update:
        result = pm.evaluate(
            frame,
            target,
            exclude=[*names, *_split_list(exclude)],
            cv=cv,
            seed=seed,
            positive=positive,
            time_budget=time_budget,
            where=from_.name,
            progress=lambda d, t, desc: update(d, total=t, description=desc),
        )
    if result.summary.get("task", "classification") != "classification":
        raise DataError("an audit needs a target with two classes", column=target)
    pred = result.predictions
    positions = pred["row"].to_numpy() - 1
    share = 0.2 if top_share is None and threshold is None else top_share
    features = frame.drop(columns=[target, *names, *_split_list(exclude)], errors="ignore")
    audits: dict[str, Any] = {}
    for col in names:
        groups = frame[col].iloc[positions].reset_index(drop=True)
        a = audit(
            pred["y"],
            pred["p"],
            groups,
            top_share=share,
            threshold=threshold,
            n_boot=n_boot,
            seed=seed,
            min_group=min_group,
            column=col,
        )
        p = proxy_check(features.iloc[positions].reset_index(drop=True), groups, column=col)
        audits[col] = {"audit": a.to_dict(), "proxies": p.to_dict()}
        _show_audit(o, a, p)
    o.result(
        {
            "input": str(from_),
            "roc_auc": result.summary["metrics"].get("roc_auc"),
            "selection": {"top_share": share, "threshold": threshold},
            "audits": audits,
        }
    )


def _show_audit(o: Output, a: Any, p: Any) -> None:
    s = a.summary
    how = f"top {s['top_share']:.0%}" if s["top_share"] is not None else f">= {s['threshold']}"
    o.print(
        f"[bold]{s['attribute']}[/]: {s['selected']:,} of {s['rows']:,} selected ({how}); "
        f"demographic-parity ratio {_fmt(s['demographic_parity_ratio'], 3)}, equalised-odds "
        f"difference {_fmt(s['equalized_odds_difference'], 3)}"
        + (" [red]four-fifths rule: FLAGGED[/]" if s["four_fifths_flag"] else "")
    )
    rows = []
    for r in a.table.to_dict("records"):
        rows.append(
            [
                r["group"],
                f"{r['rows']:,}",
                *(
                    f"{_fmt(r[m], 3)} [{_fmt(r.get(m + '_low'), 3)}, {_fmt(r.get(m + '_high'), 3)}]"
                    for m in ("selection_rate", "true_positive_rate", "false_positive_rate")
                ),
                _fmt(r["precision"], 3),
            ]
        )
    o.table(
        f"Per group of {s['attribute']} (95% intervals)",
        ["group", "rows", "selection rate", "TPR", "FPR", "precision"],
        rows,
    )
    top = p.table.head(5)
    o.table(
        f"Features most associated with {s['attribute']}",
        ["feature", "association", "measure", "proxy"],
        [
            [r["feature"], _fmt(r["association"], 3), r["measure"], r["proxy"]]
            for r in top.to_dict("records")
        ],
    )
    for note in [*a.notes, *p.notes]:
        o.print(f"[dim]- {note}[/]")


@app.command("train")
def train_cmd(
    label: Annotated[str, typer.Option(help="purchase, churn or spend.")] = "purchase",
    horizon: Annotated[int, typer.Option(help="Days after each cutoff the label looks at.")] = 30,
    cutoffs: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated cutoff days (default: three, a horizon apart, the last a "
            "horizon before the data end). The latest one measures the model."
        ),
    ] = None,
    time_budget: Annotated[
        float, typer.Option("--time-budget", help="Seconds of model search per fit.")
    ] = 60.0,
    seed: Annotated[int, typer.Option(help="Seed of every model.")] = 0,
    name: Annotated[
        str | None,
        typer.Option(help="Registry name (default propensity-<label>-<horizon>d)."),
    ] = None,
    workspace: WorkspaceOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train a propensity model on the workspace: point-in-time features at several cutoffs.

    The model is measured on the latest cutoff after training on the earlier ones, then refitted
    on all of them and saved to the registry with the features' spec.
    """
    from mercato.models import propensity_flow as pf
    from mercato.workspace import Workspace

    o = Output(json_, quiet)
    ws = Workspace.open(workspace)
    with ws.warehouse() as wh, o.progress("training", 4) as update:
        done = {"n": 0}

        def step(text: str) -> None:
            update(done["n"], description=text)
            done["n"] += 1

        run = pf.train(
            wh,
            label=label,
            horizon_days=horizon,
            cutoffs=_split_list(cutoffs) or None,
            time_budget=time_budget,
            seed=seed,
            progress=step,
        )
        ref = pf.save(ws, run, name=name)
    s = run.summary()
    h = s["holdout"]
    m = h["metrics"]
    key = "roc_auc" if "roc_auc" in m else "rmse"
    o.print(
        f"[bold]{ref}[/]: {s['chosen']} on {s['rows']:,} rows ({s['customers']:,} customers, "
        f"cutoffs {', '.join(s['cutoffs'])}); {s['features']} features"
    )
    o.print(f"Why: {s['reason']}")
    o.print(
        f"On the latest cutoff ({h['cutoff']}, {h['rows']:,} customers, trained on the earlier "
        f"ones): {key} {_fmt(m.get(key))}"
        + (
            f", PR-AUC {_fmt(m.get('pr_auc'))}, Brier {_fmt(m.get('brier'))}"
            if key == "roc_auc"
            else ""
        )
    )
    _drivers(o, h.get("importance"), h.get("dependence"))
    for note in run.notes[:8]:
        o.print(f"[dim]- {note}[/]")
    o.result({"model": ref, **s})


@app.command("score")
def score_cmd(
    name: Annotated[
        str, typer.Option(help="The registry name of the model.")
    ] = "propensity-purchase-30d",
    version: Annotated[int | None, typer.Option(help="A version (default: newest).")] = None,
    as_of: Annotated[
        str | None, typer.Option(help="Score as of this day (default: after the last order).")
    ] = None,
    top: Annotated[int, typer.Option(help="Reasons per customer.")] = 3,
    explain_method: Annotated[
        str,
        typer.Option(
            "--explain",
            help="auto (TreeSHAP up to 5,000 customers, path beyond), treeshap or path.",
        ),
    ] = "auto",
    output: Annotated[Path | None, typer.Option(help="Also write the scores to this CSV.")] = None,
    no_write: Annotated[bool, typer.Option(help="Do not write customer_propensity.")] = False,
    truth: Annotated[
        Path | None,
        typer.Option(
            help="A synthetic shop's truth/ folder: compare the ROC-AUC with that of the true "
            "probabilities (scores as of the window's end unless --as-of)."
        ),
    ] = None,
    workspace: WorkspaceOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Score every customer with a saved model; each score comes with its top reasons."""
    from mercato.models import propensity_flow as pf
    from mercato.workspace import Workspace

    o = Output(json_, quiet)
    ws = Workspace.open(workspace)
    if truth is not None:  # judged before anything is scored or written
        from mercato.models.registry import ModelRegistry

        params = ModelRegistry(ws).get(name, version).manifest.get("params") or {}
        if as_of is None:
            as_of = pf.truth_window_end(truth)
        pf.check_truth(
            truth, label=params.get("label"), horizon_days=params.get("horizon_days"), as_of=as_of
        )
    with ws.warehouse() as wh, o.progress("scoring", 3) as update:
        done = {"n": 0}

        def step(text: str) -> None:
            update(done["n"], description=text)
            done["n"] += 1

        scores, summary = pf.score(
            ws, wh, name=name, version=version, as_of=as_of, top=top, method=explain_method,
            write=not no_write, progress=step,
        )  # fmt: skip
    if output is not None:
        scores.to_csv(output, index=False)
        summary["output"] = str(output)
    if truth is not None:
        summary["truth"] = pf.compare_with_truth(
            scores, truth, label=str(summary["label"]), horizon_days=int(summary["horizon_days"]),
            as_of=summary["as_of"],
        )  # fmt: skip
    o.print(
        f"{summary['customers']:,} customers scored with {summary['model']} as of "
        f"{summary['as_of']} (reasons: {summary['explanations']})"
        + (f" -> {summary['table']}" if "table" in summary else "")
    )
    if "truth" in summary:
        t = summary["truth"]
        o.print(
            f"truth: ROC-AUC {t['roc_auc']:.4f} vs {t['true_probability_roc_auc']:.4f} for the "
            f"true probabilities on the same {t['customers']:,} customers (difference "
            f"{t['difference']:+.4f})"
        )
    best = scores.nlargest(5, "score")
    o.table(
        "Highest scores",
        ["customer", "score", "reason 1", "reason 2"],
        [
            [r["customer_id"], _fmt(r["score"], 3), r.get("reason_1", ""), r.get("reason_2", "")]
            for r in best.to_dict("records")
        ],
    )
    o.result({**summary, "top": best.to_dict("records")})
