"""Propensity from the workspace: point-in-time features -> model -> registry -> scores and reasons.

:func:`train` builds a training set from several cutoffs (``mercato.features``), keeps the
latest cutoff apart to measure the model on a period it has not seen (the honest number a
marketer can expect), then fits :class:`~mercato.models.propensity.PropensityModel` on every
cutoff for use. :func:`save` puts the model in the registry with the features' spec, so that
:func:`score` builds exactly the same columns for every customer as of any day and writes the
score with each customer's top reasons to the warehouse table ``customer_propensity``.

Labels: ``purchase`` (a completed order within the horizon), ``churn`` (none, for customers who
bought before), ``spend`` (the amount). Customers who objected to profiling are neither trained
on nor scored (the feature builder leaves them out).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mercato.errors import DataError

__all__ = [
    "SCORES_TABLE",
    "TrainRun",
    "check_truth",
    "compare_with_truth",
    "default_cutoffs",
    "save",
    "score",
    "train",
    "truth_window_end",
]

SCORES_TABLE = "customer_propensity"
Progress = Callable[[str], None]


@dataclass
class TrainRun:
    """A trained propensity model, how it did on the held-out latest cutoff, and its features."""

    model: Any
    label: str
    horizon_days: int
    cutoffs: list[str]
    spec: dict[str, Any]
    holdout: dict[str, Any]
    rows: int
    customers: list[str]
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        from mercato.models._common import plain

        m = self.model
        return plain(
            {
                "label": self.label,
                "horizon_days": self.horizon_days,
                "cutoffs": self.cutoffs,
                "rows": self.rows,
                "customers": len(set(self.customers)),
                "features": len(m.features_),
                "chosen": m.chosen_,
                "reason": m.choice_reason_,
                "calibration": getattr(m, "calibration_", None),
                "holdout": self.holdout,
            }
        )


def default_cutoffs(warehouse: Any, horizon_days: int, count: int = 3) -> list[str]:
    """``count`` cutoffs ``horizon_days`` apart, the last one a horizon before the data end."""
    t = warehouse.table("orders")
    last = t.ts.max().execute()
    if last is None or pd.isna(last):
        raise DataError("no orders in the warehouse: a propensity model needs purchases")
    end = pd.Timestamp(last).normalize() + pd.Timedelta(days=1)
    latest = end - pd.Timedelta(days=horizon_days)
    return [
        (latest - pd.Timedelta(days=horizon_days * i)).date().isoformat()
        for i in reversed(range(count))
    ]


def _task(label: str) -> str:
    if label not in ("purchase", "churn", "spend"):
        raise DataError(
            f"unknown label {label!r}", column="label", expected="purchase, churn or spend"
        )
    return "regression" if label == "spend" else "classification"


def train(
    warehouse: Any,
    *,
    label: str = "purchase",
    horizon_days: int = 30,
    cutoffs: Sequence[Any] | None = None,
    time_budget: float = 60.0,
    seed: int = 0,
    progress: Progress | None = None,
) -> TrainRun:
    """Train a propensity model on stacked cutoffs; measure it on the latest one first.

    With ``n`` cutoffs the model is first fitted on the ``n - 1`` earliest and measured on the
    latest (customers as of that day, labels from the horizon after it); then refitted on all
    ``n`` for use. The model's own validation inside each fit is time-based (the latest
    cutoff of its training rows).
    """
    from mercato.features import build_training_set
    from mercato.models import metrics as mx
    from mercato.models.propensity import PropensityModel

    step = progress or (lambda _s: None)
    task = _task(label)
    if not isinstance(horizon_days, int | np.integer) or horizon_days < 1:
        raise DataError(
            "the horizon must be a whole number of days >= 1",
            column="horizon_days",
            value=horizon_days,
        )
    cuts = [
        str(pd.Timestamp(c).date()) for c in (cutoffs or default_cutoffs(warehouse, horizon_days))
    ]
    if len(cuts) < 2:
        raise DataError(
            "at least two cutoffs are needed: the latest one measures the model",
            column="cutoffs",
            value=",".join(cuts),
        )
    step(f"building features at {len(cuts)} cutoffs")
    ts = build_training_set(warehouse, cuts, label=label, horizon_days=int(horizon_days))
    frame = ts.frame
    frame_cut = frame["cutoff"].astype(str).str[:10]
    latest = cuts[-1]
    past = frame_cut != latest
    if not past.any() or past.all():
        raise DataError("no rows at the earlier cutoffs or at the latest one", column="cutoffs")
    X, y = ts.X, ts.y
    time = pd.to_datetime(frame["cutoff"])

    def fit(mask: Any) -> Any:
        model = PropensityModel(
            task=task,
            time_budget=time_budget,
            validation="time",
            time_col="_cutoff",
            seed=seed,
        )
        Xm = X[mask].assign(_cutoff=time[mask].to_numpy())
        return model.fit(Xm, y[mask].to_numpy(), ids=frame.loc[mask, "customer_id"].to_numpy())

    step(f"measuring on the latest cutoff ({latest})")
    first = fit(past)
    held = ~past
    Xh = X[held].assign(_cutoff=time[held].to_numpy())
    if task == "classification":
        p = first.predict_proba(Xh)[:, 1]
        report = mx.classification_report(y[held].to_numpy(), p)
    else:
        report = mx.regression_report(y[held].to_numpy(), first.predict(Xh))
    holdout = {
        "cutoff": latest,
        "rows": int(held.sum()),
        "trained_on": [c for c in cuts if c != latest],
        "chosen": first.chosen_,
        "metrics": report,
    }
    yh = y[held].to_numpy()
    if task != "classification" or 0 < yh.sum() < len(yh):
        from mercato.models import importance as gi

        step("what drives the model (shuffling features on the latest cutoff)")
        imp, dep = gi.drivers(
            first, Xh, yh, groups=gi.feature_groups(X[held], seed=seed), seed=seed
        )
        holdout["importance"] = imp.to_dict("records")
        holdout["dependence"] = dep.astype(object).where(dep.notna(), None).to_dict("records")
    step("fitting on every cutoff")
    model = fit(frame_cut.notna())
    return TrainRun(
        model=model,
        label=label,
        horizon_days=int(horizon_days),
        cutoffs=cuts,
        spec=ts.spec(),
        holdout=holdout,
        rows=len(frame),
        customers=frame["customer_id"].astype(str).tolist(),
        notes=list(ts.notes) + list(model.notes_),
    )


def save(ws: Any, run: TrainRun, *, name: str | None = None) -> str:
    """Save the model with its features' spec; returns the reference ``name@vN``."""
    from mercato.models._common import plain
    from mercato.models.registry import ModelRegistry

    reg_name = name or f"propensity-{run.label}-{run.horizon_days}d"
    mv = ModelRegistry(ws).save(
        run.model,
        name=reg_name,
        kind="propensity",
        metrics=plain(run.holdout["metrics"]),
        params={"label": run.label, "horizon_days": run.horizon_days, "chosen": run.model.chosen_},
        data_window={"cutoffs": run.cutoffs, "holdout_cutoff": run.holdout["cutoff"]},
        customers=run.customers,
        notes=run.notes,
        documents={
            "features.json": plain(run.spec),
            "evaluation.json": plain({"summary": run.summary(), "leaderboard": _board(run)}),
        },
    )
    return f"{reg_name}@v{mv.version}"


def _board(run: TrainRun) -> list[dict[str, Any]]:
    from mercato.models._common import plain

    board = getattr(run.model, "leaderboard_", None)
    return [] if board is None else plain(board.to_dict("records"))


def score(
    ws: Any,
    warehouse: Any,
    *,
    name: str,
    version: int | None = None,
    as_of: Any = None,
    top: int = 3,
    method: str = "auto",
    write: bool = True,
    progress: Progress | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Score every customer as of ``as_of`` (default: the day after the last order) with reasons.

    Returns the scores (``customer_id``, ``score``, ``reason_1``..., ``contribution_1``...) and a
    summary; writes them to ``customer_propensity`` unless ``write=False``. ``method`` is the
    explanation method (:func:`mercato.models.explain.explain`): by default TreeSHAP for up to
    5,000 customers, path attributions beyond.
    """
    import ibis

    from mercato.features import build_features
    from mercato.models.explain import explain, reasons
    from mercato.models.registry import ModelRegistry

    step = progress or (lambda _s: None)
    reg = ModelRegistry(ws)
    mv = reg.get(name, version)
    if mv.kind != "propensity":
        raise DataError(f"{name!r} is a {mv.kind} model, not a propensity model", column="name")
    model = reg.load(name, mv.version)
    spec = reg.document(name, "features.json", mv.version)
    if spec is None:
        raise DataError(f"{name!r} v{mv.version} has no features spec: train it with Mercato")
    cutoff = as_of or default_cutoffs(warehouse, 1, 1)[0]
    cutoff = pd.Timestamp(cutoff) if as_of else pd.Timestamp(cutoff) + pd.Timedelta(days=1)
    step(f"building features as of {cutoff.date()}")
    fs = build_features(warehouse, cutoff, spec=spec)
    X = fs.X.assign(_cutoff=cutoff)
    step("scoring and explaining")
    e = explain(model, X, method=method)
    s = model.from_raw(e.raw)  # the same pass gives the score and its reasons
    why = reasons(e, X, top=top).reset_index(drop=True)
    why = why[[c for c in why.columns if c.startswith("reason_") or c.startswith("contribution_")]]
    out = pd.concat(
        [
            pd.DataFrame(
                {"customer_id": fs.frame["customer_id"].astype(str).to_numpy(), "score": s}
            ),
            why,
        ],
        axis=1,
    )
    ref = f"{name}@v{mv.version}"
    summary = {
        "model": ref,
        "label": (mv.manifest.get("params") or {}).get("label"),
        "horizon_days": (mv.manifest.get("params") or {}).get("horizon_days"),
        "as_of": str(cutoff.date()),
        "customers": len(out),
        "mean_score": float(np.mean(s)) if len(s) else None,
        "explanations": e.method,
        "notes": list(fs.notes),
    }
    if write:
        table = out.assign(
            model=ref,
            as_of=cutoff.to_pydatetime(),
            scored_at=dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0),
        )
        warehouse.create_table_from(SCORES_TABLE, ibis.memtable(table))
        summary["table"] = SCORES_TABLE
    return out, summary


def _truth_folder(truth: Any) -> Path:
    folder = Path(truth)
    if (folder / "truth").is_dir():
        folder = folder / "truth"
    if not (folder / "customers.parquet").exists() or not (folder / "meta.json").exists():
        raise DataError(
            "no synthetic-shop truth here (truth/customers.parquet and truth/meta.json)",
            file=str(folder),
        )
    return folder


def truth_window_end(truth: Any) -> str:
    """The day the synthetic shop's window ends (the truth's hold-out starts), ISO."""
    meta = json.loads((_truth_folder(truth) / "meta.json").read_text())
    return str(pd.Timestamp(meta["window"]["end"]).date())


def check_truth(
    truth: Any, *, label: Any = "purchase", horizon_days: Any = 90, as_of: Any = None
) -> Path:
    """That a synthetic shop's truth can judge these scores (before scoring anything):
    a 90-day purchase or churn label, as of the window's end, a truth with the true
    probabilities. Returns the truth's ``customers.parquet``."""
    import pyarrow.parquet as pq

    folder = _truth_folder(truth)
    path = folder / "customers.parquet"
    meta = json.loads((folder / "meta.json").read_text())
    end = pd.Timestamp(meta["window"]["end"]).normalize()
    days = int(meta.get("holdout", {}).get("days", 90))
    if label not in ("purchase", "churn"):
        raise DataError(
            f"the truth knows purchases and churn, not {label!r}", column="label", value=label
        )
    if horizon_days is None or int(horizon_days) != days:
        raise DataError(
            f"the truth covers {days} days after the window; the model predicts {horizon_days}",
            column="horizon_days",
            value=horizon_days,
            hint=f"train with --horizon {days}",
        )
    if as_of is not None and pd.Timestamp(as_of).normalize() != end:
        raise DataError(
            f"the truth is as of the window's end ({end.date()}); these scores are as of "
            f"{pd.Timestamp(as_of).date()}",
            column="as_of",
            value=str(as_of),
            hint=f"score with --as-of {end.date()}",
        )
    wanted = ["customer_id", "p_purchase_next_90d", "purchases_next_90d"]
    lacking = [c for c in wanted if c not in pq.read_schema(path).names]
    if lacking:
        raise DataError(
            f"this truth has no {lacking[0]!r} column: it was made by an older Mercato",
            file=str(path),
            column=lacking[0],
            hint="generate the shop again (mercato synth)",
        )
    return path


def compare_with_truth(
    scores: pd.DataFrame,
    truth: Any,
    *,
    label: str = "purchase",
    horizon_days: int = 90,
    as_of: Any = None,
) -> dict[str, Any]:
    """Scores against the synthetic shop's truth: ROC-AUC of the scores and of the true
    probabilities (``truth/customers.parquet``, ``p_purchase_next_90d``) on the same customers,
    against what happened in the 90 days after the window (``purchases_next_90d > 0``).

    The truth covers one question: a purchase (or, for ``churn``, none) in the 90 days after
    the window, so the scores must be for that label and horizon, as of the window's end.
    """
    from sklearn.metrics import roc_auc_score

    from mercato.models._common import plain

    path = check_truth(truth, label=label, horizon_days=horizon_days, as_of=as_of)
    if "customer_id" not in scores.columns or "score" not in scores.columns:
        raise DataError("the scores need customer_id and score columns")
    wanted = ["customer_id", "p_purchase_next_90d", "purchases_next_90d"]
    tf = pd.read_parquet(path, columns=wanted)
    d = (
        scores[["customer_id", "score"]]
        .astype({"customer_id": str})
        .merge(tf.astype({"customer_id": str}), on="customer_id", how="inner")
    )
    y = (d["purchases_next_90d"] > 0).to_numpy()
    p_true = d["p_purchase_next_90d"].to_numpy(dtype=float)
    if label == "churn":
        y, p_true = ~y, 1.0 - p_true
    if len(d) == 0 or y.all() or not y.any():
        raise DataError(
            "the scored customers are not in the truth, or all had the same outcome",
            hint="score the shop the truth belongs to",
        )
    model_auc = float(roc_auc_score(y, d["score"].to_numpy(dtype=float)))
    true_auc = float(roc_auc_score(y, p_true))
    return plain(
        {
            "customers": len(d),
            "outcome_rate": float(y.mean()),
            "roc_auc": model_auc,
            "true_probability_roc_auc": true_auc,
            "difference": true_auc - model_auc,
            "within_0_03": abs(true_auc - model_auc) <= 0.03,
            "as_of": truth_window_end(truth),
            "label": label,
        }
    )
