"""Recommendations: one-user latency of the serving index against implicit, and training time.

The claims (recommendations issue):

1. one customer's top 10 from Mercato's serving index (memory-mapped arrays, business rules
   on: seen items out, stock) with 20,000 items and 64 factors is at least 10x faster than
   ``implicit``'s own ``model.recommend(userid, user_items[userid])`` at p50 and at p99;
2. the training time of EASE and ALS on 100,000 users x 20,000 items x 5,000,000
   interactions (``--train``; EASE needs about 10 GB of memory at that size).

Both are measured in the same run on the same data: a synthetic implicit-feedback matrix
(users with a log-normal number of items drawn from a Zipf-like popularity).

Latency (about a minute)::

    .venv/bin/python benchmarks/bench_recommend.py

Training as well (several minutes)::

    .venv/bin/python benchmarks/bench_recommend.py --train
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import machine  # noqa: E402

CLAIM = (
    "one-user top-10 from the serving index (20,000 items, 64 factors) at least 10x faster "
    "than implicit's model.recommend at p50 and p99; EASE and ALS training time on 100,000 "
    "users x 20,000 items x 5M interactions"
)


def make(users: int, items: int, interactions: int, seed: int = 0) -> sp.csr_matrix:
    """Exactly ``interactions`` distinct (user, item) pairs: users with a log-normal number of
    items, items drawn from a Zipf-like popularity (draws repeated until enough distinct
    pairs, then a uniform sample of them kept)."""
    rng = np.random.default_rng(seed)
    per_user = rng.lognormal(0, 1, users)
    pop = 1.0 / np.arange(1, items + 1) ** 0.8
    pop /= pop.sum()
    draw = interactions
    while True:
        per = np.maximum(1, np.round(per_user / per_user.sum() * draw)).astype(np.int64)
        rows = np.repeat(np.arange(users, dtype=np.int64), per)
        cols = rng.choice(items, len(rows), p=pop)
        keys = np.unique(rows * items + cols)
        if len(keys) >= interactions:
            break
        draw = int(draw * 1.1)
    keys = np.sort(rng.choice(keys, interactions, replace=False))
    X = sp.csr_matrix(
        (np.ones(len(keys), np.float32), (keys // items, keys % items)), shape=(users, items)
    )
    return X


def pct(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 4),
            "p99_ms": round(float(np.percentile(a, 99)), 4),
            "mean_ms": round(float(a.mean()), 4)}  # fmt: skip


def rng_segments(n: int, seed: int) -> np.ndarray:
    return np.asarray([f"segment-{v}" for v in np.random.default_rng(seed).integers(0, 8, n)])


def latency(X: sp.csr_matrix, requests: int, rounds: int, seed: int) -> dict[str, Any]:
    from mercato.recommend.interactions import IdMap, Interactions
    from mercato.recommend.models import make_model
    from mercato.recommend.serving import ServingIndex

    model = make_model("als", factors=64, iterations=5).fit(X)
    n_users, n_items = X.shape
    # the same trained factors in implicit's own model object
    from implicit.cpu.als import AlternatingLeastSquares

    peer = AlternatingLeastSquares(factors=64, iterations=1)
    peer.user_factors = np.asarray(model.user_factors)
    peer.item_factors = np.asarray(model.item_factors)
    coo = X.tocoo()
    frame = pd.DataFrame({"user": coo.row.astype(str), "item": coo.col.astype(str),
                          "weight": coo.data, "ts": pd.NaT})  # fmt: skip
    users = IdMap.from_list([str(i) for i in range(n_users)])
    items = IdMap.from_list([str(i) for i in range(n_items)])
    inter = Interactions(frame, users, items)
    # eight customer segments, so that each answer also says "popular in your segment"
    segments = pd.Series(rng_segments(n_users, seed), index=users.to_list())
    with tempfile.TemporaryDirectory() as tmp:
        ServingIndex.build(model, inter, Path(tmp) / "idx", segments=segments)
        index = ServingIndex.load(Path(tmp) / "idx")
        rng = np.random.default_rng(seed)
        warm = rng.integers(0, n_users, 50)
        for u in warm:  # warm both
            index.recommend(str(u), k=10)
            peer.recommend(int(u), X[int(u)], N=10)
        rows, same = [], 0
        for _ in range(rounds):
            who = rng.integers(0, n_users, requests)
            ours, theirs = [], []
            for u in who:  # interleaved: both see the same machine state
                t = time.perf_counter()
                mine = index.recommend(str(u), k=10)
                ours.append(time.perf_counter() - t)
                t = time.perf_counter()
                ids, _ = peer.recommend(int(u), X[int(u)], N=10)
                theirs.append(time.perf_counter() - t)
                same += [int(r) for r in mine.items] == [int(i) for i in ids]
            rows.append((pct(ours), pct(theirs)))

    # each round's percentiles; the median round stands (a burst of machine noise in one
    # round, which these 2-core shared machines have, does not decide the result)
    def med(side: int, key: str) -> float:
        return round(float(np.median([r[side][key] for r in rows])), 4)

    a = {key: med(0, key) for key in ("p50_ms", "p99_ms", "mean_ms")}
    b = {key: med(1, key) for key in ("p50_ms", "p99_ms", "mean_ms")}
    return {
        "requests_per_round": requests,
        "rounds": rounds,
        "mercato_serving_index": a,
        "implicit_recommend": b,
        "p50_speedup": round(b["p50_ms"] / a["p50_ms"], 1),
        "p99_speedup": round(b["p99_ms"] / a["p99_ms"], 1),
        "per_round": [
            {
                "mercato_p50_ms": x["p50_ms"],
                "mercato_p99_ms": x["p99_ms"],
                "implicit_p50_ms": y["p50_ms"],
                "implicit_p99_ms": y["p99_ms"],
                "p50_speedup": round(y["p50_ms"] / x["p50_ms"], 1),
                "p99_speedup": round(y["p99_ms"] / x["p99_ms"], 1),
            }
            for x, y in rows
        ],  # fmt: skip
        "same_top10_share": round(same / (requests * rounds), 4),
    }


def training(X: sp.csr_matrix) -> dict[str, Any]:
    from mercato.recommend.models import make_model

    out = {}
    for kind, params in (("als", {"factors": 64, "iterations": 15}), ("ease", {"l2": 200.0})):
        t = time.perf_counter()
        make_model(kind, **params).fit(X)
        out[f"{kind}_fit_seconds"] = round(time.perf_counter() - t, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--interactions", type=int, default=5_000_000)
    ap.add_argument("--requests", type=int, default=2000, help="requests per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--train", action="store_true", help="also time EASE and ALS training")
    a = ap.parse_args()
    t = time.perf_counter()
    X = make(a.users, a.items, a.interactions)
    out: dict[str, Any] = {
        "benchmark": "recommend",
        "claim": CLAIM,
        "machine": machine(),
        "users": a.users,
        "items": a.items,
        "interactions": int(X.nnz),
        "data_seconds": round(time.perf_counter() - t, 1),
    }
    out["latency"] = latency(X, a.requests, a.rounds, seed=1)
    if a.train:
        out["training"] = training(X)
    lat = out["latency"]
    out["meets_claim"] = {
        "p50_at_least_10x": lat["p50_speedup"] >= 10,
        "p99_at_least_10x": lat["p99_speedup"] >= 10,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
