"""``mercato recommend ...``: personalised recommendations and their evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mercato.cli.common import JsonOpt, Output, QuietOpt, WorkspaceOpt
from mercato.cli.common import fmt as _fmt

app = typer.Typer(
    help="Recommendations: which items each customer is likely to want next.",
    no_args_is_help=True,
)


@app.command("evaluate")
def evaluate_cmd(
    from_: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="An interactions or ratings file (CSV, maybe .gz, or Parquet); default: the "
            "workspace's orders and events.",
        ),
    ] = None,
    user: Annotated[str | None, typer.Option(help="The user column of --from/--train.")] = None,
    item: Annotated[str | None, typer.Option(help="The item column of --from/--train.")] = None,
    rating: Annotated[
        str | None, typer.Option(help="A rating or weight column (kept as the weight).")
    ] = None,
    time: Annotated[
        str | None, typer.Option(help="A time column (times or epoch seconds).")
    ] = None,
    train: Annotated[
        Path | None, typer.Option(help="A training file of a split you made (with --test).")
    ] = None,
    test: Annotated[Path | None, typer.Option(help="The test file of that split.")] = None,
    split: Annotated[
        str, typer.Option(help="stratified, random, leave_last or time.")
    ] = "stratified",
    by: Annotated[str, typer.Option(help="Stratify by user or item.")] = "user",
    test_from: Annotated[
        str | None, typer.Option(help="The time split: events from this day on are the test.")
    ] = None,
    test_size: Annotated[float, typer.Option(help="Share of the pairs held out.")] = 0.25,
    seed: Annotated[int, typer.Option(help="Seed of the split.")] = 42,
    k: Annotated[int, typer.Option(help="Length of each list.")] = 10,
    models: Annotated[
        str, typer.Option(help="Comma-separated: popularity,itemknn,ease,als,bpr,nmf.")
    ] = "popularity,itemknn,ease,als,bpr,nmf",
    no_tune: Annotated[
        bool, typer.Option("--no-tune", help="Default settings, no validation search.")
    ] = False,
    time_budget: Annotated[
        float, typer.Option(help="Seconds of tuning per model (on the validation part).")
    ] = 120.0,
    half_life: Annotated[
        float | None,
        typer.Option(help="Workspace: weights halve every this many days (time decay)."),
    ] = None,
    truth: Annotated[
        Path | None,
        typer.Option(
            help="A synthetic shop's truth/ folder: add the oracle (true preferences) and each "
            "model's share of its NDCG."
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            help="Write the best model's top k of every test user (user,item,rank,score)."
        ),
    ] = None,
    workspace: WorkspaceOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Compare recommenders on held-out interactions: precision, recall, NDCG, MAP, hit rate,
    MRR at k, catalogue coverage and novelty; settings tuned on a validation part of the
    training data, never on the test."""
    from mercato.errors import DataError
    from mercato.recommend import interactions as ri
    from mercato.recommend.evaluate import evaluate

    o = Output(json_, quiet)
    names = [m.strip() for m in models.split(",") if m.strip()]
    where = ""
    inter = tr = te = None
    if train is not None or test is not None:
        if train is None or test is None or user is None or item is None:
            raise DataError("--train needs --test, --user and --item")
        tr = ri.from_file(train, user=user, item=item, rating=rating, time=time)
        te = ri.from_file(test, user=user, item=item, rating=rating, time=time)
        where = f"{train.name} / {test.name}"
    elif from_ is not None:
        if user is None or item is None:
            raise DataError("--from needs --user and --item (the column names)")
        inter = ri.from_file(from_, user=user, item=item, rating=rating, time=time)
        where = from_.name
    else:
        from mercato.workspace import Workspace

        ws = Workspace.open(workspace)
        with ws.warehouse() as wh:
            inter = ri.from_warehouse(wh, half_life_days=half_life)
        where = f"workspace {ws.path.name}"
    oracle = None
    if truth is not None:
        import pandas as pd

        prefs = truth / "item_preferences.parquet"
        if not prefs.exists():
            prefs = truth / "truth" / "item_preferences.parquet"
        if not prefs.exists():
            raise DataError("no item preferences here (truth/item_preferences.parquet)",
                            file=str(truth))  # fmt: skip
        oracle = pd.read_parquet(prefs).rename(
            columns={"customer_id": "user", "product_id": "item"}
        )
    with o.progress("evaluating", len(names)) as update:
        result = evaluate(
            inter, train=tr, test=te, split_method=split, test_size=test_size, seed=seed, by=by,
            test_from=test_from, k=k, models=names, tune=not no_tune, time_budget=time_budget,
            oracle=oracle, where=where,
            progress=lambda d, t, desc: update(d, total=t, description=desc),
        )  # fmt: skip
    payload = result.to_dict()
    payload["trials"] = result.trials.to_dict("records")
    if output is not None:
        result.recommendations.to_csv(output, index=False)
        payload["output"] = str(output)
    s = result.summary
    o.print(
        f"[bold]{where}[/]: {s['train_interactions']:,} training pairs ({s['train_users']:,} "
        f"users x {s['train_items']:,} items); {s['test_users']:,} test users, "
        f"{s['test_interactions']:,} held-out pairs; split {s['split']}; {s['seconds']:.0f} s"
    )
    cols = [f"precision@{k}", f"recall@{k}", f"ndcg@{k}", f"map@{k}", f"hit_rate@{k}",
            f"mrr@{k}", "coverage", "novelty"]  # fmt: skip
    if oracle is not None:
        cols.append(f"share_of_oracle_ndcg@{k}")
    o.table(
        f"Every model on the test part (best: {s['best']})",
        ["model", *cols, "settings (chosen on validation)"],
        [[r["model"], *[_fmt(r.get(c)) for c in cols], r["settings"]] for r in result.records()],
    )
    for note in result.notes:
        o.print(f"- {note}")
    if output is not None:
        o.print(f"the best model's lists: {output}")
    o.result(payload)
