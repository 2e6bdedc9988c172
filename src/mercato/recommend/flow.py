"""From interactions to a serving index: choose the settings, measure, fit on everything, build.

:func:`build` runs the evaluation of one model (settings tuned on a validation part, measured
once on a held-out part: the number to expect), refits it with those settings on every
interaction and writes the serving index with an ``evaluation.json`` beside it (what the
report reads). :func:`default_folder` is where a workspace keeps it. Given a
:class:`~mercato.models.registry.ModelRegistry`, the index is also saved as the next version
of ``recommender-<kind>``: its files linked, checksummed, with the training customers hashed
(so erasure finds every index a customer's data went into) and the held-out metrics.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mercato.errors import DataError
from mercato.recommend.evaluate import evaluate
from mercato.recommend.interactions import Interactions
from mercato.recommend.models import MODELS, make_model
from mercato.recommend.serving import ServingIndex

__all__ = ["EVALUATION", "build", "default_folder", "read_evaluation"]

EVALUATION = "evaluation.json"
Progress = Callable[[int, int, str], None]


def default_folder(workspace: Any, kind: str) -> Path:
    """``<workspace>/serving/recommender-<kind>``."""
    return Path(workspace.path) / "serving" / f"recommender-{kind}"


def build(
    inter: Interactions,
    folder: str | Path,
    *,
    kind: str = "ease",
    tune: bool = True,
    k: int = 10,
    seed: int = 42,
    time_budget: float = 60.0,
    progress: Progress | None = None,
    segments: Any = None,
    segment_by: str = "segment",
    registry: Any = None,
) -> tuple[ServingIndex, dict[str, Any]]:
    """The serving index of ``kind`` for ``inter`` and a summary (settings, held-out metrics).

    ``segments`` (customer id -> label, see :meth:`ServingIndex.build`) give cold-start lists
    and "popular in your segment"; ``registry`` records the index as a model version."""
    if kind not in MODELS:
        raise DataError(
            f"unknown model {kind!r}", column="model", hint="one of " + ", ".join(MODELS)
        )
    notes: list[str] = []
    try:
        res = evaluate(inter, models=[kind], k=k, seed=seed, tune=tune, time_budget=time_budget,
                       progress=progress)  # fmt: skip
        settings = res.chosen.get(kind, {})
        row = res.table.set_index("model").loc[kind].to_dict()
        split, notes = res.summary.get("split"), list(res.notes)
    except DataError as exc:  # too little data to hold any out: built, not measured
        if "no test user" not in exc.message:
            raise
        settings, row, split = {}, {}, None
        notes = [f"not measured: {exc.message}; default settings"]
    model = make_model(kind, **settings).fit(inter.matrix())
    name = f"recommender-{kind}"
    index = ServingIndex.build(model, inter, folder, name=name, segments=segments,
                               segment_by=segment_by)  # fmt: skip
    held_out = {key: (float(v) if isinstance(v, int | float) else v) for key, v in row.items()}
    summary: dict[str, Any] = {
        "model": kind,
        "settings": settings,
        "users": inter.n_users,
        "items": inter.n_items,
        "interactions": len(inter),
        "held_out": held_out,
        "split": split,
        "k": k,
        "notes": notes,
        "folder": str(Path(folder)),
        "new_items": int(index.meta.get("new_items", 0)),
        "segments": index.segments,
        "segment_by": index.meta.get("segment_by"),
        "registry": None,
    }
    if registry is not None:
        times = inter.frame["ts"]
        window = {"start": str(times.min()), "end": str(times.max())} if times.notna().any() else {}
        metrics = {k: v for k, v in held_out.items()
                   if isinstance(v, float) and math.isfinite(v)}  # fmt: skip
        mv = registry.save_folder(
            folder, name=name, kind="recommender", fmt=index.meta["format"], model=kind,
            metrics=metrics, params=settings, data_window=window,
            customers=inter.users.to_list(), notes=notes,
            documents={"evaluation.json": _finite({k: v for k, v in summary.items()
                                                   if k != "registry"})},
        )  # fmt: skip
        summary["registry"] = {"name": name, "version": mv.version}
    Path(folder, EVALUATION).write_text(json.dumps(summary, default=str))
    return index, summary


def _finite(v: Any) -> Any:
    """Plain JSON: NaN and infinities as null (the registry refuses them)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): _finite(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_finite(x) for x in v]
    if isinstance(v, str | int | bool) or v is None:
        return v
    return str(v)


def read_evaluation(folder: str | Path) -> dict[str, Any] | None:
    """The summary :func:`build` wrote next to an index (None if there is none)."""
    p = Path(folder, EVALUATION)
    return json.loads(p.read_text()) if p.exists() else None
