"""Splits, tuning on validation, and the honest comparison of recommenders.

Splits (:func:`split`) work on (user, item) pairs, so that a pair is never on both sides
(``time`` cuts events, then drops from the test side the pairs the user already had):

- ``stratified`` (default): per user (``by="user"``, as Microsoft Recommenders'
  ``python_stratified_split``: each user's pairs shuffled with ``seed``, the first
  ``round((1 - test_size) x n)`` to training) or per item (``by="item"``).
- ``random``: pairs shuffled with ``seed``.
- ``leave_last``: each user's latest pair (by its last event) to test, for users with two or
  more pairs; needs times.
- ``time``: events from the ``1 - test_size`` quantile of time on are test; needs times.

:func:`evaluate` keeps the test part apart, carves a validation part out of the training part
with the same split (``seed + 1``), tries each model's settings on it (a small grid sized to
the data, within a time budget per model), refits the best settings on the whole training
part and measures the top ``k`` of every test user who has training history, the user's
training items removed from the candidates. Test items never seen in training stay relevant
(no model can find them; the note says how many). Metrics: :mod:`mercato.recommend.metrics`.
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mercato.analytics.base import AnalysisResult
from mercato.errors import DataError
from mercato.recommend.interactions import IdMap, Interactions
from mercato.recommend.metrics import ranking_metrics
from mercato.recommend.models import BPR, EASE_MAX_ITEMS, MODELS, Recommender, make_model

__all__ = ["SPLITS", "DEFAULT_MODELS", "RecEvaluation", "evaluate", "grid", "split"]

SPLITS = ("stratified", "random", "leave_last", "time")
DEFAULT_MODELS = ("popularity", "itemknn", "ease", "als", "bpr", "nmf")
Progress = Callable[[int, int, str], None]
#: users scored at once (a dense users x items block)
BATCH = 2048


def _pairs(inter: Interactions) -> pd.DataFrame:
    p = inter.pairs()
    if "last_ts" not in p.columns:
        p["first_ts"] = pd.NaT
        p["last_ts"] = pd.NaT
    return p


def _as_interactions(pairs: pd.DataFrame, like: Interactions) -> Interactions:
    f = pairs.rename(columns={"last_ts": "ts"})[["user", "item", "weight", "ts"]]
    return Interactions(f.reset_index(drop=True), like.users, like.items, [], like.item_info)


def split(
    inter: Interactions,
    method: str = "stratified",
    *,
    test_size: float = 0.25,
    seed: int = 42,
    by: str = "user",
    test_from: Any = None,
) -> tuple[Interactions, Interactions, list[str]]:
    """``(train, test, notes)``: see the module's notes. ``test_from`` (a date) sets where the
    ``time`` split cuts (default: the ``1 - test_size`` quantile of the events' times)."""
    if method not in SPLITS:
        raise DataError(f"unknown split {method!r}", column="split", value=method,
                        hint="one of " + ", ".join(SPLITS))  # fmt: skip
    if not (isinstance(test_size, float | int) and 0 < test_size < 1):
        raise DataError("the test size must be a share between 0 and 1", column="test_size",
                        value=test_size)  # fmt: skip
    if by not in ("user", "item"):
        raise DataError("stratify by user or item", column="by", value=by)
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise DataError("the seed must be a whole number >= 0", column="seed", value=seed)
    notes: list[str] = []
    has_time = bool(inter.frame["ts"].notna().all())
    if method in ("leave_last", "time") and not has_time:
        raise DataError(f"the {method} split needs a time for every interaction",
                        column="time", hint="give the time column (--time)")  # fmt: skip
    if test_from is not None and method != "time":
        raise DataError("--test-from goes with the time split", column="test_from")
    if method == "time":
        if test_from is not None:
            try:
                cut = pd.Timestamp(test_from)
                if cut.tzinfo is not None:  # the interactions' times are naive UTC
                    cut = cut.tz_convert("UTC").tz_localize(None)
            except (TypeError, ValueError) as exc:
                raise DataError("--test-from must be a date", column="test_from",
                                value=test_from) from exc  # fmt: skip
            if not inter.frame["ts"].min() < cut <= inter.frame["ts"].max():
                raise DataError(f"--test-from {cut.date()} leaves one side empty",
                                column="test_from", value=str(test_from),
                                hint=f"the data run from {inter.frame['ts'].min().date()} to "
                                f"{inter.frame['ts'].max().date()}")  # fmt: skip
        else:
            cut = inter.frame["ts"].quantile(1 - test_size)
        later = (inter.frame["ts"] >= cut).to_numpy()
        train_p = _pairs(inter.subset(~later))
        test_p = _pairs(inter.subset(later))
        known = test_p.merge(train_p[["user", "item"]], on=["user", "item"], how="left",
                             indicator=True)["_merge"].eq("both").to_numpy()  # fmt: skip
        if known.any():
            notes.append(f"{int(known.sum()):,} test pairs the user already had in training "
                         "were left out of the test")  # fmt: skip
        test_p = test_p[~known]
        notes.append(f"time split at {pd.Timestamp(cut)}: events from then on are the test")
        return _as_interactions(train_p, inter), _as_interactions(test_p, inter), notes
    p = _pairs(inter)
    rng = np.random.default_rng(seed)
    if method == "random":
        test_mask = np.zeros(len(p), dtype=bool)
        test_mask[rng.permutation(len(p))[: int(round(test_size * len(p)))]] = True
        notes.append(f"random split of the pairs, {test_size:.0%} test, seed {seed}")
    elif method == "leave_last":
        order = p.sort_values(["user", "last_ts", "item"], kind="stable")
        last = order.groupby("user").tail(1).index
        many = p.groupby("user")["item"].transform("size") >= 2
        test_mask = np.zeros(len(p), dtype=bool)
        test_mask[np.asarray(last)] = True
        test_mask &= many.to_numpy()
        notes.append("leave-last-out: each user's latest item is the test (users with 2+ items)")
    else:
        key = "user" if by == "user" else "item"
        shuffled = p.iloc[rng.permutation(len(p))]
        pos = shuffled.groupby(key, sort=False).cumcount().to_numpy()
        size = shuffled.groupby(key, sort=False)[key].transform("size").to_numpy()
        to_train = pos < np.round((1 - test_size) * size)
        test_mask = np.zeros(len(p), dtype=bool)
        test_mask[shuffled.index.to_numpy()[~to_train]] = True
        notes.append(
            f"stratified by {key} (as Recommenders' python_stratified_split): "
            f"{1 - test_size:.0%} of each {key}'s pairs to training, seed {seed}"
        )
    return (
        _as_interactions(p[~test_mask], inter),
        _as_interactions(p[test_mask], inter),
        notes,
    )


def grid(kind: str, n_users: int, n_items: int, nnz: int) -> list[dict[str, Any]]:
    """The settings tried for ``kind``, in order (the first is the default)."""
    if kind == "popularity":
        return [{}]
    if kind == "itemknn":
        return [
            {"similarity": "cosine", "neighbours": 100},
            {"similarity": "bm25", "neighbours": 100},
            {"similarity": "cosine", "neighbours": 400},
            {"similarity": "bm25", "neighbours": 400, "k1": 1.2, "b": 0.5},
            {"similarity": "cosine", "neighbours": 30},
        ]
    if kind == "ease":
        return [{"l2": v} for v in (200.0, 50.0, 800.0, 3000.0, 15.0)]
    if kind == "als":
        f = 64 if n_items > 500 else 32
        return [
            {"factors": f, "regularization": 0.05, "alpha": 10.0},
            {"factors": 2 * f, "regularization": 0.1, "alpha": 10.0},
            {"factors": f, "regularization": 0.05, "alpha": 40.0},
            {"factors": f // 2, "regularization": 0.01, "alpha": 2.0},
            {"factors": 2 * f, "regularization": 1.0, "alpha": 40.0},
            {"factors": f, "regularization": 0.05, "alpha": 10.0, "scaling": "log"},
            {"factors": 2 * f, "regularization": 0.1, "alpha": 20.0, "scaling": "log"},
        ]
    if kind == "bpr":
        # iterations is the most tried: evaluate stops each setting early on validation
        return [
            {"factors": 128, "learning_rate": 0.01, "regularization": 0.001, "iterations": 300},
            {"factors": 64, "learning_rate": 0.01, "regularization": 0.01, "iterations": 300},
            {"factors": 200, "learning_rate": 0.005, "regularization": 0.001, "iterations": 300},
            {"factors": 64, "learning_rate": 0.05, "regularization": 0.01, "iterations": 300},
        ]
    if kind == "nmf":
        return [{"components": c} for c in (32, 16, 64)]
    raise DataError(f"unknown model {kind!r}", column="models", value=kind)


@dataclass
class RecEvaluation(AnalysisResult):
    """:func:`evaluate`'s result: ``table`` one row per model (its metrics on the test part,
    the settings chosen on validation, seconds); ``trials`` every setting tried with its
    validation NDCG; ``best`` the name of the model with the highest test NDCG@k;
    ``recommendations`` the best model's top k for every evaluated user (user, item, rank,
    score)."""

    trials: pd.DataFrame = field(default_factory=pd.DataFrame)
    recommendations: pd.DataFrame = field(default_factory=pd.DataFrame)
    models: dict[str, Recommender] = field(default_factory=dict)
    chosen: dict[str, dict[str, Any]] = field(default_factory=dict)


class _Data:
    """A train/test pair as matrices over the training part's ids."""

    def __init__(self, train: Interactions, test: Interactions) -> None:
        users = IdMap.from_list(sorted(train.frame["user"].unique()))
        items = IdMap.from_list(sorted(train.frame["item"].unique()))
        self.users, self.items = users, items
        self.train = Interactions(train.frame, users, items).matrix()
        t = test.frame
        ui = users.indices(t["user"].to_numpy())
        ii = items.indices(t["item"].to_numpy())
        self.unknown_items = int(((ii < 0) & (ui >= 0)).sum())
        self.cold_users = int(t.loc[ui < 0, "user"].nunique())
        warm = ui >= 0
        # relevant items: test pairs of warm users; unseen items get columns past the catalogue
        extra = {
            v: len(items) + j for j, v in enumerate(sorted(t.loc[warm & (ii < 0), "item"].unique()))
        }
        cols = np.where(ii >= 0, ii, [extra.get(v, -1) for v in t["item"].to_numpy()])
        rel = sp.csr_matrix(
            (np.ones(int(warm.sum()), dtype=np.float32), (ui[warm], cols[warm])),
            shape=(len(users), len(items) + len(extra)),
        )
        rel.sum_duplicates()
        self.extra = extra
        self.eval_users = np.flatnonzero(np.diff(rel.indptr) > 0)
        self.relevant = rel[self.eval_users]
        B = self.train.copy()
        B.data[:] = 1
        self.item_users = np.asarray(B.sum(axis=0)).ravel()
        # cold users (no training history): their test items over the training catalogue;
        # items unseen in training get columns past it (relevant, unreachable)
        cold = t.loc[ui < 0, ["user", "item"]].drop_duplicates()
        codes, cold_users = pd.factorize(cold["user"])
        ci = items.indices(cold["item"].to_numpy())
        new_items = sorted(cold.loc[ci < 0, "item"].unique())
        unseen = {v: len(items) + j for j, v in enumerate(new_items)}
        ccols = np.where(ci >= 0, ci, [unseen.get(v, -1) for v in cold["item"].to_numpy()])
        self.cold_relevant = sp.csr_matrix(
            (np.ones(len(cold), dtype=np.float32), (codes, ccols)),
            shape=(len(cold_users), len(items) + len(unseen)),
        )


def _oracle_lists(oracle: pd.DataFrame, d: _Data, k: int) -> tuple[np.ndarray, int]:
    """The oracle's top ``k`` per evaluated user: its ranking by true utility, the user's
    training items removed; also how many users it has fewer than ``k`` items left for."""
    users = np.asarray(d.users.ids)[d.eval_users]
    o = oracle[oracle["user"].isin(set(users))].sort_values(["user", "rank"], kind="stable")
    col = d.items.indices(o["item"].to_numpy())
    col = np.where(col >= 0, col, [d.extra.get(v, -1) for v in o["item"].to_numpy()])
    pos = {u: i for i, u in enumerate(users)}
    out = np.full((len(users), k), -1, dtype=np.int64)
    fill = np.zeros(len(users), dtype=np.int64)
    train = d.train
    for u, c in zip(o["user"].to_numpy(), col, strict=True):
        r = pos[u]
        if fill[r] >= k or c < 0:
            continue
        row = d.eval_users[r]
        if c < train.shape[1]:
            a, b = train.indptr[row], train.indptr[row + 1]
            if c in train.indices[a:b]:
                continue
        out[r, fill[r]] = c
        fill[r] += 1
    return out, int((fill < k).sum())


def _recommend(
    model: Recommender, d: _Data, k: int, users: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    out = np.full((len(users), k), -1, dtype=np.int64)
    val = np.full((len(users), k), -np.inf, dtype=np.float32)
    for a in range(0, len(users), BATCH):
        u = users[a : a + BATCH]
        ids, scores = model.recommend(d.train[u], k, users=u)
        out[a : a + len(u)] = ids
        val[a : a + len(u)] = scores
    return out, val


def _measure(
    model: Recommender, d: _Data, k: int
) -> tuple[dict[str, Any], tuple[np.ndarray, np.ndarray]]:
    recs, scores = _recommend(model, d, k, d.eval_users)
    m = ranking_metrics(recs, d.relevant, k, n_items=len(d.items), item_users=d.item_users,
                        n_train_users=len(d.users))  # fmt: skip
    return m, (recs, scores)


def evaluate(
    inter: Interactions | None = None,
    *,
    train: Interactions | None = None,
    test: Interactions | None = None,
    split_method: str = "stratified",
    test_size: float = 0.25,
    seed: int = 42,
    by: str = "user",
    test_from: Any = None,
    k: int = 10,
    models: Sequence[str] = DEFAULT_MODELS,
    tune: bool = True,
    time_budget: float = 120.0,
    oracle: pd.DataFrame | None = None,
    where: str = "",
    progress: Progress | None = None,
) -> RecEvaluation:
    """Every model's ranking metrics on a test part, settings chosen on validation.

    Give ``inter`` (split here with ``split_method``, ``test_size``, ``seed``, ``by``) or
    ``train`` and ``test`` (a split made elsewhere, same ids). ``oracle`` (``user``, ``item``,
    ``rank``: each user's items by true preference, as a synthetic shop's
    ``truth/item_preferences.parquet``) adds the oracle's row and each model's share of the
    oracle's NDCG@k.
    """
    t0 = _time.perf_counter()
    if not isinstance(k, int | np.integer) or k < 1:
        raise DataError("k must be a whole number >= 1", column="k", value=k)
    names = [str(m).strip().lower() for m in models if str(m).strip()]
    for name in names:
        if name not in MODELS:
            raise DataError(f"unknown model {name!r}", column="models", value=name,
                            hint="models: " + ", ".join(MODELS))  # fmt: skip
    if not names:
        raise DataError("no model to evaluate", column="models")
    notes: list[str] = []
    if train is not None or test is not None:
        if train is None or test is None:
            raise DataError("give both the training and the test interactions")
        train_i, test_i = train, test
        notes.append("the split was given (train and test files)")
        scheme = "given"
    else:
        if inter is None:
            raise DataError("no interactions given")
        train_i, test_i, split_notes = split(inter, split_method, test_size=test_size,
                                             seed=seed, by=by, test_from=test_from)  # fmt: skip
        notes += list(inter.notes) + split_notes
        scheme = split_method
    d = _Data(train_i, test_i)
    if len(d.eval_users) == 0:
        raise DataError("no test user has training history: nothing to evaluate",
                        hint="a smaller test size, or another split")  # fmt: skip
    cold_start: dict[str, Any] | None = None
    if d.cold_users:
        # what the serving index gives them: the most popular training items
        top = np.argsort(-d.item_users, kind="stable")[:k]
        cold_lists = np.tile(top, (d.cold_relevant.shape[0], 1))
        cm = ranking_metrics(cold_lists, d.cold_relevant, k, n_items=len(d.items),
                             item_users=d.item_users, n_train_users=len(d.users))  # fmt: skip
        cold_start = {"users": d.cold_users, "list": "most popular training items"}
        cold_start |= {f"{m}@{k}": cm[m] for m in ("precision", "recall", "ndcg", "hit_rate")}
        notes.append(
            f"{d.cold_users:,} test users without training history are measured apart (cold "
            f"start: the most popular training items, what the serving index gives a customer "
            f"without a segment, stock aside): NDCG@{k} "
            f"{cm['ndcg']:.4f}, hit rate {cm['hit_rate']:.4f}"
        )
    if d.unknown_items:
        notes.append(f"{d.unknown_items:,} test interactions are with items never seen in "
                     "training: they count as relevant, no model can find them")  # fmt: skip
    # validation: the same split inside the training part
    val: _Data | None = None
    if tune:
        vtrain, vtest, _ = split(train_i, "stratified" if scheme == "given" else scheme,
                                 test_size=test_size, seed=seed + 1, by=by)  # fmt: skip
        val = _Data(vtrain, vtest)
        if len(val.eval_users) == 0:
            val = None
            notes.append("too little data for a validation part: default settings used")
    rows: list[dict[str, Any]] = []
    trials: list[dict[str, Any]] = []
    fitted: dict[str, Recommender] = {}
    recs_by: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    chosen_by: dict[str, dict[str, Any]] = {}
    steps = len(names)
    for i, name in enumerate(names):
        if progress is not None:
            progress(i, steps, f"{name}: tuning" if val is not None else name)
        if name == "ease" and len(d.items) > EASE_MAX_ITEMS:
            notes.append(f"ease left out: {len(d.items):,} items (at most {EASE_MAX_ITEMS:,})")
            continue
        settings = grid(name, len(d.users), len(d.items), d.train.nnz)
        chosen = settings[0]
        if val is not None and (len(settings) > 1 or name in STAGED):
            chosen = _tune(name, settings, val, k, time_budget, trials, notes)
        if progress is not None:
            progress(i, steps, f"{name}: fitting")
        tf = _time.perf_counter()
        model = make_model(name, **chosen).fit(d.train)
        fit_s = _time.perf_counter() - tf
        metrics, lists = _measure(model, d, k)
        fitted[name] = model
        chosen_by[name] = dict(chosen)
        recs_by[name] = lists
        named = {(m if m in ("coverage", "novelty", "users") else f"{m}@{k}"): v
                 for m, v in metrics.items()}  # fmt: skip
        rows.append({"model": name, **named, "settings": _settings_text(chosen),
                     "fit_seconds": round(fit_s, 2)})  # fmt: skip
    if progress is not None:
        progress(steps, steps, "done")
    if oracle is not None and rows:
        missing = {"user", "item", "rank"} - set(oracle.columns)
        if missing:
            raise DataError(
                f"the oracle needs user, item and rank columns; missing {sorted(missing)}"
            )
        o_lists, short = _oracle_lists(oracle.astype({"user": str, "item": str}), d, k)
        o_metrics = ranking_metrics(
            o_lists, d.relevant, k, n_items=len(d.items), item_users=d.item_users,
            n_train_users=len(d.users),
        )  # fmt: skip
        rows.append({"model": "oracle",
                     **{(m if m in ("coverage", "novelty", "users") else f"{m}@{k}"): v
                        for m, v in o_metrics.items()},
                     "settings": "true preferences", "fit_seconds": 0.0})  # fmt: skip
        best_o = o_metrics["ndcg"]
        for r in rows:
            r[f"share_of_oracle_ndcg@{k}"] = r[f"ndcg@{k}"] / best_o if best_o > 0 else math.nan
        if short:
            notes.append(f"the oracle has fewer than {k} untried items for {short:,} users "
                         "(its truth lists 20 items per customer)")  # fmt: skip
    table = pd.DataFrame(rows)
    if table.empty:
        raise DataError("no model could be evaluated", hint="; ".join(notes))
    ranked = table[table["model"] != "oracle"]
    best_name = str(ranked.sort_values(f"ndcg@{k}", ascending=False)["model"].iloc[0])
    recs, rec_scores = recs_by[best_name]
    user_ids = np.asarray(d.users.ids)[d.eval_users]
    item_ids = np.asarray(d.items.ids)
    flat = recs.reshape(-1)
    ok = flat >= 0
    out_recs = pd.DataFrame(
        {
            "user": np.repeat(user_ids, recs.shape[1])[ok],
            "item": item_ids[np.where(ok, flat, 0)][ok],
            "rank": np.tile(np.arange(1, recs.shape[1] + 1), len(user_ids))[ok],
            "score": rec_scores.reshape(-1)[ok],
        }
    )
    summary = {
        "input": where or None,
        "split": scheme,
        "test_size": test_size if scheme != "given" else None,
        "seed": seed,
        "by": by if scheme == "stratified" else None,
        "k": k,
        "train_users": len(d.users),
        "train_items": len(d.items),
        "train_interactions": int(d.train.nnz),
        "test_users": int(len(d.eval_users)),
        "test_interactions": int(d.relevant.nnz),
        "best": best_name,
        "tuned": val is not None,
        "cold_start": cold_start,
        "seconds": round(_time.perf_counter() - t0, 2),
    }
    notes.append(
        f"MAP@{k} divides by min(relevant, {k}); map_recommenders@{k} by the number of "
        "relevant items (Microsoft Recommenders' definition)"
    )
    return RecEvaluation(name="recommend", table=table, summary=summary, notes=notes,
                         trials=pd.DataFrame(trials), recommendations=out_recs,
                         models=fitted, chosen=chosen_by)  # fmt: skip


#: models whose iterations are chosen by stopping early on validation: (every, patience)
STAGED = {"bpr": (BPR.STAGE, 3)}
#: models whose one log-scale setting is refined around the grid's best
REFINED = {"ease": "l2"}


def _tune(
    name: str,
    settings: list[dict[str, Any]],
    val: _Data,
    k: int,
    budget: float,
    trials: list[dict[str, Any]],
    notes: list[str],
) -> dict[str, Any]:
    """The setting with the best validation NDCG@k: the grid in order within ``budget``
    seconds; for :data:`STAGED` models each setting's iterations stop when ``patience``
    stages in a row did not improve; for :data:`REFINED` models the best value is then
    refined geometrically (halfway, in log scale, towards each neighbour; twice)."""
    started = _time.perf_counter()
    best, chosen = -math.inf, settings[0]
    seen: set[str] = set()

    def over() -> bool:
        return _time.perf_counter() - started > budget and bool(trials)

    def record(s: dict[str, Any], score: float, seconds: float) -> None:
        nonlocal best, chosen
        seen.add(_settings_text(s))
        trials.append({"model": name, "settings": _settings_text(s), "validation_ndcg": score,
                       "seconds": round(seconds, 2)})  # fmt: skip
        if score > best:
            best, chosen = score, dict(s)

    def trial(s: dict[str, Any]) -> None:
        ts = _time.perf_counter()
        if name in STAGED:
            every, patience = STAGED[name]
            m = make_model(name, **s)
            top, top_it, stale = -math.inf, every, 0
            for done in m.fit_stages(val.train, every, int(s["iterations"])):  # type: ignore[attr-defined]
                score = _measure(m, val, k)[0]["ndcg"]
                if score > top:
                    top, top_it, stale = score, done, 0
                else:
                    stale += 1
                # the budget holds for the first setting too (at least one stage runs)
                if stale >= patience or _time.perf_counter() - started > budget:
                    break
            record({**s, "iterations": top_it}, top, _time.perf_counter() - ts)
            return
        m = make_model(name, **s).fit(val.train)
        record(s, _measure(m, val, k)[0]["ndcg"], _time.perf_counter() - ts)

    for s in settings:
        if over():
            notes.append(f"{name}: the tuning budget ({budget:g} s) ended the search")
            return chosen
        trial(s)
    key = REFINED.get(name)
    if key is not None:
        values = sorted({float(s[key]) for s in settings if key in s})
        for _ in range(2):
            b = float(chosen[key])
            lower = [v for v in values if v < b]
            upper = [v for v in values if v > b]
            near = ([math.sqrt(b * lower[-1])] if lower else []) + (
                [math.sqrt(b * upper[0])] if upper else []
            )
            for v in near:
                s = {**chosen, key: float(f"{v:.3g}")}
                if _settings_text(s) in seen:
                    continue
                if over():
                    notes.append(f"{name}: the tuning budget ({budget:g} s) ended the search")
                    return chosen
                values = sorted({*values, float(s[key])})
                trial(s)
    return chosen


def _settings_text(s: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in s.items()) or "-"
