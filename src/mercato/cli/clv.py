"""``mercato clv ...``: customer lifetime value (BG/NBD, Pareto/NBD, Gamma-Gamma)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mercato.cli.common import JsonOpt, Output, QuietOpt, WorkspaceOpt

app = typer.Typer(
    help="Customer lifetime value: fit, check on a holdout, score every customer.",
    no_args_is_help=True,
)

DEFAULT_NAME = "clv"  # registry name of the transaction model (mercato.models.lifetime)


@app.command("run")
def run_cmd(
    from_: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="A transactions file (CSV/TSV/space-separated, .gz, Parquet); "
            "default: the workspace's completed orders.",
        ),
    ] = None,
    customer: Annotated[str, typer.Option(help="Customer id column of --from.")] = "customer",
    date: Annotated[str, typer.Option(help="Date column of --from.")] = "date",
    value: Annotated[
        str | None, typer.Option(help="Value column of --from (none: no spend, no CLV).")
    ] = None,
    names: Annotated[
        str | None,
        typer.Option(help="Comma-separated column names of a --from file without a header."),
    ] = None,
    date_format: Annotated[
        str | None, typer.Option(help="strftime format of the dates (e.g. %Y%m%d).")
    ] = None,
    calibration_end: Annotated[
        str | None,
        typer.Option(
            help="Last day of the calibration period; later days check the model "
            "(default: the last day, no holdout)."
        ),
    ] = None,
    observation_end: Annotated[
        str | None, typer.Option(help="Last day used (default: the last purchase day).")
    ] = None,
    model: Annotated[str, typer.Option(help="bgnbd, mbgnbd or pareto.")] = "bgnbd",
    horizon: Annotated[int, typer.Option(help="CLV horizon in months (>= 1).")] = 12,
    discount: Annotated[float, typer.Option(help="Monthly discount rate of the CLV.")] = 0.01,
    output: Annotated[
        Path | None, typer.Option(help="Write every customer's scores to this CSV file.")
    ] = None,
    name: Annotated[
        str, typer.Option(help="Registry name of the models (workspace runs).")
    ] = DEFAULT_NAME,
    no_write: Annotated[
        bool, typer.Option(help="Workspace runs: do not write customer_clv nor save models.")
    ] = False,
    workspace: WorkspaceOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Fit the CLV models, check them on a holdout, score every customer.

    From the workspace the scores go to the table customer_clv and the models to the registry
    (``mercato models list``); from a file, scores go to --output only.
    """
    from mercato.models.lifetime import read_transactions, run_clv, save_run

    o = Output(json_, quiet)
    steps = 6
    with o.progress("CLV", steps) as update:
        done = {"n": 0}

        def progress(step: str) -> None:
            update(done["n"], description=step)
            done["n"] += 1

        if from_ is not None:
            tx = read_transactions(
                from_,
                customer=customer,
                date=date,
                value=value,
                names=[n.strip() for n in names.split(",")] if names else None,
            )
            run = run_clv(
                tx,
                calibration_end=calibration_end,
                observation_end=observation_end,
                model=model,
                horizon_months=horizon,
                discount_rate_monthly=discount,
                value_col="value" if value else None,
                date_format=date_format,
                progress=progress,
            )
            saved: dict[str, Any] = {}
        else:
            from mercato.workspace import Workspace

            ws = Workspace.open(workspace)
            with ws.warehouse() as wh:
                run = run_clv(
                    wh,
                    calibration_end=calibration_end,
                    observation_end=observation_end,
                    model=model,
                    horizon_months=horizon,
                    discount_rate_monthly=discount,
                    progress=progress,
                )
                saved = {} if no_write else save_run(ws, wh, run, name=name)
        update(steps)
    if output is not None:
        run.scores.to_csv(output, index=False)
    _show(o, run, saved, output)
    o.result({**run.to_dict(), "saved": saved, "output": str(output) if output else None})


def _show(o: Output, run: Any, saved: dict[str, Any], output: Path | None) -> None:
    s = run.summary
    o.print(
        f"[bold]{s['model_class']}[/] on {s['customers']:,} customers "
        f"({s['repeat_customers']:,} repeat buyers), {s['first_day']} to {s['observation_end']}"
    )
    rows = [
        [k, f"{p['value']:.4g}", _g(p["se"]), f"{_g(p['lower_95'])} to {_g(p['upper_95'])}"]
        for k, p in s["parameters"].items()
    ]
    rows += [
        [k, f"{p['value']:.4g}", _g(p["se"]), f"{_g(p['lower_95'])} to {_g(p['upper_95'])}"]
        for k, p in (s.get("spend_parameters") or {}).items()
    ]
    o.table("Parameters (all data)", ["parameter", "value", "std. error", "95% interval"], rows)
    if run.holdout is not None:
        h = s["holdout"]
        cal = ", ".join(f"{k}={v:.4g}" for k, v in s["calibration_parameters"].items())
        o.print(
            f"Calibration fit (to {s['calibration_end']}): {cal}, log-likelihood "
            f"{s['calibration_log_likelihood']:,.2f}"
        )
        o.print(
            f"Holdout (after {s['calibration_end']} to {s['observation_end']}): correlation "
            f"{h['correlation']:.3f}, predicted {h['predicted_total']:,.0f} vs actual "
            f"{h['actual_total']:,.0f} repeat purchases"
        )
        t = run.holdout.table
        o.table(
            "Holdout repeat purchases by calibration frequency",
            ["frequency", "customers", "actual", "predicted"],
            [
                [
                    r["frequency"],
                    f"{r['customers']:,}",
                    f"{r['actual']:.2f}",
                    f"{r['predicted']:.2f}",
                ]
                for r in t.to_dict("records")
            ],
        )
    if "clv_total" in s:
        o.print(
            f"{s['horizon_months']}-month CLV: total {s['clv_total']:,.0f}, mean "
            f"{s['clv_mean']:,.2f}, median {s['clv_median']:,.2f}"
        )
        d = run.deciles()
        o.table(
            "Customers by CLV decile",
            ["decile", "customers", "mean CLV", "share of CLV"],
            [
                [
                    int(r["decile"]),
                    f"{int(r['customers']):,}",
                    f"{r['mean']:,.2f}",
                    f"{r['share']:.1%}",
                ]
                for r in d.to_dict("records")
            ],
        )
    for note in run.notes:
        o.print(f"[dim]- {note}[/]")
    if saved:
        o.print(
            f"Saved {saved['model']}"
            + (f" and {saved['spend_model']}" if "spend_model" in saved else "")
            + f"; {saved['rows']:,} scores in {saved['table']}"
        )
    if output is not None:
        o.print(f"Scores written to {output}")


def _g(v: Any) -> str:
    return "" if v is None else f"{v:.4g}"
