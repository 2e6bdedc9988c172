"""From interactions to a serving index: choose the settings, measure, fit on everything, build.

:func:`build` runs the evaluation of one model (settings tuned on a validation part, measured
once on a held-out part: the number to expect), refits it with those settings on every
interaction and writes the serving index with an ``evaluation.json`` beside it (what the
report reads). :func:`default_folder` is where a workspace keeps it.
"""

from __future__ import annotations

import json
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
) -> tuple[ServingIndex, dict[str, Any]]:
    """The serving index of ``kind`` for ``inter`` and a summary (settings, held-out metrics)."""
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
    index = ServingIndex.build(model, inter, folder, name=f"recommender-{kind}")
    summary = {
        "model": kind,
        "settings": settings,
        "users": inter.n_users,
        "items": inter.n_items,
        "interactions": len(inter),
        "held_out": {
            key: (float(v) if isinstance(v, int | float) else v) for key, v in row.items()
        },
        "split": split,
        "k": k,
        "notes": notes,
        "folder": str(Path(folder)),
    }
    Path(folder, EVALUATION).write_text(json.dumps(summary, default=str))
    return index, summary


def read_evaluation(folder: str | Path) -> dict[str, Any] | None:
    """The summary :func:`build` wrote next to an index (None if there is none)."""
    p = Path(folder, EVALUATION)
    return json.loads(p.read_text()) if p.exists() else None
