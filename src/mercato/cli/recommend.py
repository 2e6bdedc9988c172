"""``mercato recommend ...``: personalised recommendations and their evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
    else:
        inter, _, where = _interactions(from_, user, item, rating, time, workspace, half_life)
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


def _interactions(
    from_: Path | None, user: str | None, item: str | None, rating: str | None, time: str | None,
    workspace: Path | None, half_life: float | None,
) -> tuple[Any, Any, str]:  # fmt: skip
    """Interactions from a file or the workspace, the workspace (or None) and a name."""
    from mercato.errors import DataError
    from mercato.recommend import interactions as ri

    if from_ is not None:
        if user is None or item is None:
            raise DataError("--from needs --user and --item (the column names)")
        return ri.from_file(from_, user=user, item=item, rating=rating, time=time), None, from_.name
    from mercato.workspace import Workspace

    ws = Workspace.open(workspace)
    with ws.warehouse() as wh:
        return ri.from_warehouse(wh, half_life_days=half_life), ws, f"workspace {ws.path.name}"


@app.command("build")
def build_cmd(
    model: Annotated[
        str, typer.Option(help="popularity, itemknn, ease, als, bpr or nmf.")
    ] = "ease",
    from_: Annotated[
        Path | None, typer.Option("--from", help="An interactions file (default: the workspace).")
    ] = None,
    user: Annotated[str | None, typer.Option(help="The user column of --from.")] = None,
    item: Annotated[str | None, typer.Option(help="The item column of --from.")] = None,
    rating: Annotated[str | None, typer.Option(help="A rating or weight column.")] = None,
    time: Annotated[str | None, typer.Option(help="A time column.")] = None,
    half_life: Annotated[
        float | None, typer.Option(help="Workspace: weights halve every this many days.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="The index folder (default: <workspace>/serving/recommender-<model>)."),
    ] = None,
    segment_by: Annotated[
        str | None,
        typer.Option(
            help="Segments for cold start and 'popular in your segment': workspace: rfm "
            "(default) or a customers column (country...); --from: a column of the file "
            "(each user's latest value). 'none': no segments."
        ),
    ] = None,
    no_tune: Annotated[bool, typer.Option("--no-tune", help="Default settings.")] = False,
    time_budget: Annotated[float, typer.Option(help="Seconds of tuning.")] = 60.0,
    workspace: WorkspaceOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Choose a recommender's settings on validation, measure it on held-out interactions,
    fit it on all of them and write the serving index (memory-mapped, loadable by any worker);
    in a workspace it is also saved in the model registry with its training customers."""
    from mercato.errors import DataError
    from mercato.recommend.flow import build, default_folder

    o = Output(json_, quiet)
    inter, ws, where = _interactions(from_, user, item, rating, time, workspace, half_life)
    segments, by, registry = None, segment_by or "rfm", None
    if ws is not None:
        from mercato.models.registry import ModelRegistry
        from mercato.recommend.interactions import segments_from_warehouse

        registry = ModelRegistry(ws)
        if by != "none":
            with ws.warehouse() as wh:
                if by != "rfm" or (wh.has_table("orders") and wh.has_table("order_lines")):
                    segments = segments_from_warehouse(wh, by)
    elif segment_by not in (None, "none") and from_ is not None:
        import pandas as pd

        from mercato.models.propensity import read_table

        frame = read_table(from_)
        if segment_by not in frame.columns:
            raise DataError(f"{from_.name} has no column {segment_by!r}", file=str(from_),
                            column=segment_by)  # fmt: skip
        if time is not None and time in frame.columns:
            t = frame[time]
            order = pd.to_datetime(t, errors="coerce", utc=True) if t.dtype == object else t
            frame = frame.assign(_order=order).sort_values("_order", kind="stable")
        last = frame.dropna(subset=[segment_by]).groupby(frame[user].astype(str)).last()
        segments = last[segment_by].astype(str)
    if out is None:
        if ws is None:
            raise DataError("--from needs --out (the index folder)")
        out = default_folder(ws, model)
    with o.progress("building", 1) as update:
        _, summary = build(
            inter, out, kind=model, tune=not no_tune, time_budget=time_budget,
            progress=lambda d, t, desc: update(d, total=t, description=desc),
            segments=segments, segment_by=by, registry=registry,
        )  # fmt: skip
    h = summary["held_out"]
    k = summary["k"]
    o.print(
        f"[bold]{model}[/] on {where}: {summary['users']:,} users x {summary['items']:,} items; "
        f"held out: NDCG@{k} {_fmt(h.get(f'ndcg@{k}'))}, recall@{k} "
        f"{_fmt(h.get(f'recall@{k}'))}, hit rate {_fmt(h.get(f'hit_rate@{k}'))}; settings "
        f"{h.get('settings')}"
    )
    extra = []
    if summary["segments"]:
        extra.append(f"{len(summary['segments'])} segments by {summary['segment_by']}")
    if summary["new_items"]:
        extra.append(f"{summary['new_items']:,} new items scored from stand-ins")
    reg = summary.get("registry")
    if reg:
        extra.append(f"registry {reg['name']} v{reg['version']}")
    o.print(f"index: {out}" + (f" ({'; '.join(extra)})" if extra else ""))
    o.result(summary)


@app.command("user")
def user_cmd(
    user_id: Annotated[
        str | None, typer.Argument(help="The customer (unknown ids are fine).")
    ] = None,
    recent: Annotated[
        str | None, typer.Option(help="Comma-separated items the customer just touched.")
    ] = None,
    k: Annotated[int, typer.Option(help="How many items.")] = 10,
    index: Annotated[
        Path | None, typer.Option(help="The index folder (default: the workspace's, --model).")
    ] = None,
    model: Annotated[str, typer.Option(help="Which workspace index (its model).")] = "ease",
    deny: Annotated[str | None, typer.Option(help="Comma-separated items never shown.")] = None,
    allow: Annotated[str | None, typer.Option(help="Comma-separated items, the only ones.")] = None,
    category: Annotated[str | None, typer.Option(help="Comma-separated categories only.")] = None,
    min_price: Annotated[float | None, typer.Option(help="Lowest price.")] = None,
    max_price: Annotated[float | None, typer.Option(help="Highest price.")] = None,
    per_category: Annotated[
        int | None, typer.Option(help="At most this many per category.")
    ] = None,
    boost: Annotated[
        str | None, typer.Option(help="Promoted items: ITEM=AMOUNT,... (share of the top score).")
    ] = None,
    diversity: Annotated[
        float,
        typer.Option(help="MMR weight on dissimilarity, 0 (plain ranking) to 1."),
    ] = 0.0,
    segment: Annotated[
        str | None,
        typer.Option(help="The visitor's segment (context) when the index does not know them."),
    ] = None,
    exclude: Annotated[
        str,
        typer.Option(help="What the customer had that is left out: interacted or bought."),
    ] = "interacted",
    include_out_of_stock: Annotated[bool, typer.Option(help="Also items out of stock.")] = False,
    not_personalised: Annotated[
        bool, typer.Option(help="As for a customer who refused personalisation.")
    ] = False,
    workspace: WorkspaceOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """One customer's recommendations from a serving index, with the business rules and a
    reason for each item."""
    from mercato.errors import DataError
    from mercato.recommend.flow import default_folder
    from mercato.recommend.serving import Rules, ServingIndex

    o = Output(json_, quiet)

    def items(text: str | None) -> list[str]:
        return [v.strip() for v in text.split(",") if v.strip()] if text else []

    refused = False
    if index is None:
        from mercato.data.consent import objected
        from mercato.workspace import Workspace

        ws = Workspace.open(workspace)
        index = default_folder(ws, model)
        if user_id is not None:  # consent as it stands now, not as it stood at build time
            with ws.warehouse() as wh:
                t = objected(wh, "personalisation")
                refused = bool(t.filter(t.customer_id == user_id).count().execute())
    boosts: dict[str, float] = {}
    for part in items(boost):
        name, _, amount = part.partition("=")
        try:
            boosts[name] = float(amount)
        except ValueError as exc:
            raise DataError("--boost wants ITEM=AMOUNT", column="boost", value=part) from exc
    rules = Rules(
        allow=items(allow) or None, deny=items(deny), categories=items(category) or None,
        min_price=min_price, max_price=max_price, in_stock_only=not include_out_of_stock,
        boost=boosts, max_per_category=per_category, diversity=diversity, exclude=exclude,
    )  # fmt: skip
    idx = ServingIndex.load(index)
    personalised = not (not_personalised or refused)
    recs = idx.recommend(user_id, items(recent), k, rules=rules, personalised=personalised,
                         segment=segment)  # fmt: skip
    if refused:
        o.print(f"{user_id} refused personalisation: the list is not personalised")
    o.table(
        f"For {user_id or 'a visitor'}",
        ["rank", "item", "score", "why"],
        [[r.rank, r.item, f"{r.score:.4g}", "; ".join(r.reasons or (r.reason,))] for r in recs],
    )
    o.result(
        {"user": user_id, "index": str(index), "personalised": personalised,
         "items": [r.to_dict() for r in recs]}
    )  # fmt: skip


@app.command("similar")
def similar_cmd(
    item_id: Annotated[str, typer.Argument(help="The item.")],
    k: Annotated[int, typer.Option(help="How many items.")] = 10,
    index: Annotated[
        Path | None, typer.Option(help="The index folder (default: the workspace's, --model).")
    ] = None,
    model: Annotated[str, typer.Option(help="Which workspace index (its model).")] = "ease",
    workspace: WorkspaceOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Items like one item (a new item nobody touched yet: like its stand-ins), in stock."""
    from mercato.errors import DataError
    from mercato.recommend.flow import default_folder
    from mercato.recommend.serving import ServingIndex

    o = Output(json_, quiet)
    if not isinstance(k, int) or k < 1:
        raise DataError("k must be a whole number >= 1", column="k", value=k)
    if index is None:
        from mercato.workspace import Workspace

        index = default_folder(Workspace.open(workspace), model)
    recs = ServingIndex.load(index).similar_items(item_id, k)
    o.table(f"Like {item_id}", ["rank", "item", "cosine"],
            [[r.rank, r.item, f"{r.score:.3f}"] for r in recs])  # fmt: skip
    o.result({"item": item_id, "index": str(index), "items": [r.to_dict() for r in recs]})
