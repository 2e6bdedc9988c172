"""``mercato uplift ...``: campaign uplift models, their evaluation and a contact plan."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from mercato.cli.common import JsonOpt, Output, QuietOpt, WorkspaceOpt

app = typer.Typer(
    help="Uplift modelling: who is moved by a campaign, and by which treatment.",
    no_args_is_help=True,
)

FromOpt = Annotated[
    Path | None,
    typer.Option(
        "--from",
        help="An experiment file (CSV, .csv.gz), one row per customer; default: the "
        "workspace's campaign exposures.",
    ),
]
TreatmentOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--treatment",
        help="COL=VALUE of a treatment group (repeatable; default: every group but the control).",
    ),
]
ControlOpt = Annotated[
    str | None, typer.Option("--control", help="COL=VALUE of the control group (with --from).")
]
TargetOpt = Annotated[
    str | None, typer.Option("--target", help="Outcome column of --from: 0/1 or a number.")
]
CampaignOpt = Annotated[
    str | None,
    typer.Option(help="Workspace campaign id (default: the only campaign with exposures)."),
]
OutcomeOpt = Annotated[str, typer.Option(help="Workspace outcome: visit, conversion or spend.")]
WindowOpt = Annotated[
    float, typer.Option(help="Days after the exposure in which the outcome counts.")
]
FeaturesOpt = Annotated[
    str | None,
    typer.Option(help="Comma-separated feature columns (default: every other column of --from)."),
]
ExcludeOpt = Annotated[
    str | None, typer.Option(help="Comma-separated columns of --from to leave out.")
]
IdOpt = Annotated[str | None, typer.Option("--id-col", help="Customer id column of --from.")]
LearnersOpt = Annotated[str, typer.Option(help="Comma-separated learners: t, s, x, ct.")]
SeedOpt = Annotated[
    int,
    typer.Option(
        help="Seed of the training/held-out and validation splits (LightGBM's own seed is "
        "fixed: random_state 0)."
    ),
]


@dataclass
class _Input:
    frame: Any
    treatment_col: str
    treatments: list[str] | None
    control: str
    target: str
    features: list[str] | None
    id_col: str | None
    where: str
    campaign: str | None = None
    channel: str | None = None


def _split_list(text: str | None) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()] if text else []


def _read_input(
    from_: Path | None,
    treatment: list[str] | None,
    control: str | None,
    target: str | None,
    campaign: str | None,
    outcome: str,
    window_days: float,
    features: str | None,
    exclude: str | None,
    id_col: str | None,
    wh: Any,
) -> _Input:
    from mercato.errors import DataError
    from mercato.models import uplift as up

    if from_ is not None:
        if campaign is not None:
            raise DataError(
                "--campaign names a campaign of the workspace: it cannot be used with --from",
                hint="leave out --from to use the workspace's campaign exposures",
            )
        if not control or not target:
            raise DataError(
                "--from needs --control COL=VALUE and --target COL",
                hint="e.g. --treatment 'segment=Womens E-Mail' --control 'segment=No E-Mail' "
                "--target visit",
            )
        frame, col, treats, ctrl = up.read_experiment_file(from_, treatment or [], control, target)
        feats = _split_list(features) or None
        drop = set(_split_list(exclude))
        for c in drop:
            if c not in frame.columns:
                raise DataError(
                    f"--exclude: {from_.name} has no column {c!r}", file=str(from_), column=c
                )
        if id_col and id_col not in frame.columns:
            raise DataError(
                f"--id-col: {from_.name} has no column {id_col!r}", file=str(from_), column=id_col
            )
        if drop:
            frame = frame.drop(columns=sorted(drop))
        return _Input(frame, col, treats or None, ctrl, target, feats, id_col, from_.name)
    if wh is None:
        raise DataError("no input: pass --from FILE, or use a workspace")
    if treatment or control or target:
        raise DataError(
            "--treatment, --control and --target describe a --from file",
            hint="for the workspace use --campaign ID --outcome visit|conversion|spend",
        )
    cid, channel = _campaign(wh, campaign)
    frame = up.frame_from_warehouse(wh, cid, outcome, window_days)
    feats = _split_list(features) or list(frame.attrs["features"])
    drop = set(_split_list(exclude))
    unknown = sorted((drop | set(feats)) - set(frame.attrs["features"]))
    if unknown:
        raise DataError(
            f"no workspace feature {unknown[0]!r}",
            hint=f"the features: {', '.join(frame.attrs['features'])}",
        )
    return _Input(
        frame,
        "treatment",
        None,
        "control",
        outcome,
        [f for f in feats if f not in drop],
        "customer_id",
        f"campaign {cid}",
        cid,
        channel,
    )


def _contact_purpose(purpose: str | None, channel: str | None) -> tuple[str | None, list[str]]:
    """The consent purpose a contact plan must respect, and notes.

    ``--purpose`` when given (any consent purpose); else the campaign's channel when it is an
    opt-in contact purpose (email, sms, push, ads). Otherwise only objections to profiling
    apply, and a note says so.
    """
    from mercato.data.consent import OPT_IN
    from mercato.data.schema import CONSENT_PURPOSES
    from mercato.errors import DataError

    if purpose is not None:
        if purpose not in CONSENT_PURPOSES:
            raise DataError(
                f"unknown consent purpose {purpose!r}",
                value=purpose,
                expected=", ".join(CONSENT_PURPOSES),
            )
        return purpose, []
    if channel in OPT_IN:
        return channel, []
    what = f"the campaign's channel {channel!r} is" if channel else "the campaign has no channel"
    return None, [
        f"{what} not a contact consent purpose ({', '.join(OPT_IN)}): the plan leaves out only "
        "customers who objected to profiling; pass --purpose to keep only those who granted "
        "the contact"
    ]


def _campaign(wh: Any, campaign: str | None) -> tuple[str, str | None]:
    from mercato.errors import DataError

    e = wh.table("campaign_exposures")
    known = e.group_by("campaign_id").aggregate(n=e.count()).order_by("campaign_id").execute()
    if campaign is None:
        if len(known) == 1:
            campaign = str(known.campaign_id.iloc[0])
        else:
            listing = ", ".join(f"{r.campaign_id} ({int(r.n):,})" for r in known.itertuples())
            raise DataError(
                "name the campaign (--campaign ID)"
                if len(known)
                else "no campaign exposures in the warehouse",
                hint=f"campaigns with exposures: {listing}"
                if listing
                else "load campaign_exposures (mercato ingest, datasets load hillstrom, synth)",
            )
    channel = None
    if wh.has_table("campaigns"):
        c = wh.table("campaigns")
        rows = c.filter(c.campaign_id == campaign).select("channel").limit(1).execute()
        if len(rows):
            channel = rows.channel.iloc[0]
    return str(campaign), None if channel is None else str(channel)


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _open(workspace: Path | None, needed: bool):
    """The workspace and its warehouse (or None, None when reading a file)."""
    if not needed:
        return None, None
    from mercato.workspace import Workspace

    ws = Workspace.open(workspace)
    return ws, ws.warehouse()


@app.command("evaluate")
def evaluate_cmd(
    from_: FromOpt = None,
    treatment: TreatmentOpt = None,
    control: ControlOpt = None,
    target: TargetOpt = None,
    campaign: CampaignOpt = None,
    outcome: OutcomeOpt = "conversion",
    window_days: WindowOpt = 14.0,
    features: FeaturesOpt = None,
    exclude: ExcludeOpt = None,
    id_col: IdOpt = None,
    test_size: Annotated[float, typer.Option(help="Held-out share of the rows.")] = 0.5,
    seed: SeedOpt = 42,
    learners: LearnersOpt = "t,s,x,ct",
    k: Annotated[float, typer.Option(help="Share targeted for uplift@k.")] = 0.3,
    expected_shares: Annotated[
        str | None,
        typer.Option(help="Expected group shares for the sample-ratio test: 'equal' or G=S,G=S."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Write the held-out rows' predicted uplift to this CSV.")
    ] = None,
    truth: Annotated[
        Path | None,
        typer.Option(help="A synthetic shop's truth/ folder: compare with the true effects."),
    ] = None,
    workspace: WorkspaceOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Fit every learner on a training part; print its metrics on the held-out part.

    The best learner is chosen by Qini AUC on a validation part of the training rows.
    """
    from mercato.models import uplift as up

    o = Output(json_, quiet)
    ws, wh = _open(workspace, from_ is None)
    try:
        inp = _read_input(
            from_,
            treatment,
            control,
            target,
            campaign,
            outcome,
            window_days,
            features,
            exclude,
            id_col,
            wh,
        )
        with o.progress("uplift", None) as update:
            shares = None
            if expected_shares:
                labels = [str(v) for v in up._labels_of(inp.frame[inp.treatment_col])]
                treats = inp.treatments or [v for v in labels if v != str(inp.control)]
                groups = [str(inp.control), *map(str, treats)]
                shares = up.parse_shares(expected_shares, groups)
            result = up.evaluate(
                inp.frame,
                inp.treatment_col,
                inp.treatments,
                inp.control,
                inp.target,
                inp.features,
                test_size=test_size,
                seed=seed,
                learners=learners,
                id_col=inp.id_col,
                k=k,
                expected_shares=shares,
                where=inp.where,
                progress=lambda d, t, desc: update(d, total=t, description=desc),
            )
    finally:
        if wh is not None:
            wh.close()
    payload = result.to_dict()
    payload["input"] = inp.where
    notes = list(inp.frame.attrs.get("notes", [])) if hasattr(inp.frame, "attrs") else []
    if notes:
        payload["notes"] = notes + payload["notes"]
    if truth is not None:
        cmp = {}
        idc = inp.id_col or "customer_id"
        for code in result.summary["learners"]:
            for t in result.summary["treatments"]:
                col = f"{code}:{t}"
                pred = result.predictions[[idc, col]] if idc in result.predictions else None
                if pred is None:
                    from mercato.errors import DataError

                    raise DataError("--truth needs customer ids (--id-col)")
                cmp[col] = up.compare_with_truth(pred, truth, k=k, uplift_col=col, id_col=idc)
        payload["truth"] = up._plain(cmp)
    if output is not None:
        result.predictions.to_csv(output, index=False)
        payload["output"] = str(output)
    _show_evaluation(o, result, payload)
    o.result(payload)


def _show_evaluation(o: Output, result: Any, payload: dict[str, Any]) -> None:
    s = result.summary
    o.print(
        f"[bold]{payload['input']}[/]: {s['rows']:,} rows ({s['train_rows']:,} training, "
        f"{s['test_rows']:,} held out, seed {s['seed']}); target {s['target']} ({s['outcome']}); "
        f"control {s['control']!r}"
    )
    for t, v in s["observed_uplift_test"].items():
        o.print(f"observed uplift on the held-out rows, {t}: {v:.4f}")
    kp = f"{s['k']:.0%}"
    rows = [
        [
            r["name"] + (" *" if r["best"] else ""),
            r["treatment"],
            _fmt(r["uplift_at_k"]),
            _fmt(r["uplift_at_k_by_group"]),
            _fmt(r["qini_auc"]),
            _fmt(r["uplift_auc"]),
            _fmt(r["validation_qini_auc"]),
        ]
        for r in result.records()
    ]
    o.table(
        f"Held-out metrics (* = best by validation Qini AUC: {s['best_learner']})",
        [
            "learner",
            "treatment",
            f"uplift@{kp}",
            f"uplift@{kp} by group",
            "Qini AUC",
            "uplift AUC",
            "validation Qini AUC",
        ],
        rows,
    )
    b = s["balance"]
    o.print(
        "balance: "
        + ", ".join(f"{g['group']} {g['rows']:,} ({g['share']:.1%})" for g in b["groups"])
        + (f"; sample-ratio test p = {b['srm']['p_value']:.3g}" if b.get("srm") else "")
        + ("; no feature with |SMD| > 0.1" if not b["flagged"] else "")
    )
    for name, cmp in (payload.get("truth") or {}).items():
        o.print(
            f"truth, {name}: correlation with the true effect {cmp['pearson']:.3f} "
            f"(Spearman {cmp['spearman']:.3f}); top {cmp['k']:.0%} captures "
            f"{cmp['oracle_share_captured']:.1%} of the oracle's incremental conversions "
            f"(random {cmp['random_share']:.1%})"
        )
    for note in payload["notes"]:
        o.print(f"[dim]- {note}[/]")
    if payload.get("output"):
        o.print(f"held-out predictions written to {payload['output']}")


@app.command("target")
def target_cmd(
    from_: FromOpt = None,
    treatment: TreatmentOpt = None,
    control: ControlOpt = None,
    target: TargetOpt = None,
    campaign: CampaignOpt = None,
    outcome: OutcomeOpt = "conversion",
    window_days: WindowOpt = 14.0,
    features: FeaturesOpt = None,
    exclude: ExcludeOpt = None,
    id_col: IdOpt = None,
    budget: Annotated[
        float | None, typer.Option(help="Money to spend on contacts (default: no limit).")
    ] = None,
    cost: Annotated[float, typer.Option(help="Cost of one contact.")] = 0.0,
    value: Annotated[
        float,
        typer.Option(
            help="Value of one incremental conversion (revenue objective on a spend model: "
            "a multiplier such as a margin)."
        ),
    ] = 1.0,
    objective: Annotated[str, typer.Option(help="conversions or revenue.")] = "conversions",
    max_contacts: Annotated[int | None, typer.Option(help="Contact at most this many.")] = None,
    learner: Annotated[
        str | None,
        typer.Option(help="Use this learner (t, s, x, ct) instead of choosing by validation."),
    ] = None,
    learners: LearnersOpt = "t,s,x,ct",
    seed: SeedOpt = 42,
    purpose: Annotated[
        str | None,
        typer.Option(
            help="Workspace: consent purpose of the contact (default: the campaign's channel "
            "when it is email, sms, push or ads)."
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Registry name of the model.")] = None,
    output: Annotated[Path | None, typer.Option(help="Write the contact plan to this CSV.")] = None,
    no_write: Annotated[
        bool, typer.Option(help="Workspace: do not write customer_uplift nor save the model.")
    ] = False,
    workspace: WorkspaceOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Fit the best learner on all rows and plan whom to contact, with which treatment.

    From the workspace every customer (with consent) is scored, the scores go to the table
    customer_uplift and the model to the registry; from a file its rows are scored.
    """
    from mercato.errors import DataError
    from mercato.models import uplift as up

    o = Output(json_, quiet)
    if from_ is not None and purpose is not None:
        raise DataError(
            "--purpose applies consent to the workspace's customers: a --from file holds no "
            "consent, so it would be ignored",
            hint="leave out --purpose, or plan from the workspace (without --from)",
        )
    # settings the plan cannot use fail now, not after the fit
    up.check_plan(
        None,
        budget=budget,
        contact_cost=cost,
        value=value,
        objective=objective,
        max_contacts=max_contacts,
    )
    ws, wh = _open(workspace, from_ is None)
    saved: dict[str, Any] = {}
    try:
        inp = _read_input(
            from_,
            treatment,
            control,
            target,
            campaign,
            outcome,
            window_days,
            features,
            exclude,
            id_col,
            wh,
        )
        contact: str | None = None
        consent_notes: list[str] = []
        if wh is not None:
            contact, consent_notes = _contact_purpose(purpose, inp.channel)
        groups = None if inp.treatments is None else [inp.control, *inp.treatments]
        up.check_plan(
            up.outcome_kind(inp.frame, inp.target, inp.treatment_col, groups, inp.where),
            objective=objective,
        )
        with o.progress("uplift", None) as update:
            model, scores, notes = up.fit_best(
                inp.frame,
                inp.treatment_col,
                inp.treatments,
                inp.control,
                inp.target,
                inp.features,
                learners=learners,
                learner=learner,
                id_col=inp.id_col,
                seed=seed,
                where=inp.where,
                progress=lambda d, t, desc: update(d, total=t, description=desc),
            )
            # what reading the workspace left out (consent, attributes) is said too
            notes = list(inp.frame.attrs.get("notes", [])) + notes
            if wh is not None:
                update(0, total=None, description="scoring the customers")
                population = up.features_from_warehouse(wh, purpose=contact)
                notes = notes + list(population.attrs.get("notes", [])) + consent_notes
                id_name = "customer_id"
            else:
                population = inp.frame
                id_name = inp.id_col or "row"
                if inp.id_col is None:
                    population = population.assign(row=range(len(population)))
            plan, summary = up.target(
                model,
                population,
                budget=budget,
                contact_cost=cost,
                value=value,
                objective=objective,
                max_contacts=max_contacts,
                id_col=id_name,
            )
            if wh is not None and not no_write:
                saved = up.save_model(
                    ws,
                    wh,
                    model,
                    population,
                    training=inp.frame,
                    campaign=inp.campaign,
                    outcome=inp.target,
                    name=name,
                    validation=scores,
                    notes=notes,
                    documents={"plan.json": up._plain({"summary": summary})},
                )
    finally:
        if wh is not None:
            wh.close()
    if output is not None:
        plan.to_csv(output, index=False)
    payload: dict[str, Any] = {
        "input": inp.where,
        "learner": model.code,
        "validation": {c: {t: up._plain(m) for t, m in v.items()} for c, v in scores.items()},
        "summary": up._plain(summary),
        "notes": notes,
        "saved": saved,
        "output": str(output) if output else None,
        "top": up._plain(plan.head(10).to_dict("records")),
    }
    what = "conversions" if objective == "conversions" else "revenue"
    o.print(
        f"[bold]{inp.where}[/]: {up.LEARNERS[model.code].name} fitted on "
        f"{sum(model.group_rows_.values()):,} rows; {summary['candidates']:,} candidates"
    )
    o.table(
        "Contact plan",
        ["contacts", "spend", f"expected incremental {what}", "expected net value", "stopped by"],
        [
            [
                f"{summary['contacts']:,}",
                f"{summary['spend']:,.2f}",
                f"{summary[f'expected_incremental_{what}']:,.2f}",
                f"{summary['expected_net_value']:,.2f}",
                summary["stopped_by"],
            ]
        ],
    )
    o.table(
        "Per treatment",
        ["treatment", "contacts", f"expected incremental {what}"],
        [
            [t, f"{v['contacts']:,}", f"{v[f'expected_incremental_{what}']:,.2f}"]
            for t, v in summary["per_treatment"].items()
        ],
    )
    if saved:
        o.print(
            f"model saved as {saved['model']}; {saved['rows']:,} scores written to {saved['table']}"
        )
    if output is not None:
        o.print(f"plan written to {output}")
    for note in notes:
        o.print(f"[dim]- {note}[/]")
    o.result(payload)
