"""A tiny run of benchmarks/bench_movielens.py, so it keeps working (no timing is asserted).

Mercato only (``--skip-peers``), on a synthetic ratings file made here: no network, no
MovieLens, no peers' venv.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "bench_movielens.py"
MODELS = ("popularity", "itemknn", "ease")


def ratings_file(path: Path, users: int = 300, items: int = 80, seed: int = 0) -> int:
    """Ratings of users with a taste over items of a Zipf-like popularity (u<n>, i<n> ids)."""
    rng = np.random.default_rng(seed)
    taste, feature = rng.normal(size=(users, 3)), rng.normal(size=(items, 3))
    log_pop = -0.7 * np.log(np.arange(1, items + 1))
    rows = []
    for u in range(users):
        s = taste[u] @ feature.T + 1.5 * log_pop
        p = np.exp(s - s.max())
        for i in rng.choice(items, int(rng.integers(6, 25)), replace=False, p=p / p.sum()):
            rating = int(np.clip(round(3 + taste[u] @ feature[i] / 2 + rng.normal()), 1, 5))
            rows.append((f"u{u}", f"i{i}", rating, 880_000_000 + int(rng.integers(0, 10**7))))
    pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"]).to_csv(path, index=False)
    return len(rows)


def test_bench_movielens_small_run(tmp_path):
    rows = ratings_file(tmp_path / "ratings.csv")
    keep = tmp_path / "files"
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--ratings", str(tmp_path / "ratings.csv"),
         "--skip-peers", "--models", ",".join(MODELS), "--time-budget", "5",
         "--keep", str(keep)],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["benchmark"] == "movielens"
    data = out["data"]
    assert data["rows"] == rows and data["users"] == 300 and not data["is_movielens_100k"]
    assert out["peers"] == {"skipped": "--skip-peers"}
    proto = out["protocol"]
    assert proto["k"] == 10 and proto["train_rows"] + proto["test_rows"] == rows
    # each user keeps about 75% of the ratings in training
    assert 0.70 < proto["train_rows"] / rows < 0.80
    metrics = ("ndcg@10", "precision@10", "recall@10", "map@10", "map_recommenders@10")
    for key in ("mercato", "mercato_own_split"):
        m = out["contenders"][key]
        assert "error" not in m, m.get("error")
        assert set(m["models"]) == set(MODELS) and m["best"] in MODELS
        for r in m["models"].values():
            assert all(0.0 <= r[x] <= 1.0 for x in metrics)
            assert r["users"] == 300
        best = m["models"][m["best"]]["ndcg@10"]
        assert best == max(r["ndcg@10"] for r in m["models"].values())
        # a personal model beats the most popular items on data with tastes
        assert best > m["models"]["popularity"]["ndcg@10"]
    given = out["contenders"]["mercato"]
    assert given["split"]["split"] == "given"
    assert given["split"]["train_interactions"] == proto["train_rows"]
    assert given["command"][:3] == ["mercato", "recommend", "evaluate"]
    assert out["contenders"]["mercato_own_split"]["split"]["split"] == "stratified"
    # no peer, no check, no published anchor for data that is not MovieLens 100k
    assert "recommenders_sar" not in out["contenders"] and out["metric_check"] == {}
    assert out["ratios"]["vs_measured"] == {} and out["ratios"]["vs_anchors"] is None
    assert out["ratios"]["mercato_best_ndcg@10"] == given["models"][given["best"]]["ndcg@10"]
    assert set(out["anchors"]["models"]) == {"SAR", "BPR", "LightGCN", "BiVAE"}
    # the split and Mercato's top-10 file (user, item, rank, score) are kept with --keep
    train = pd.read_csv(keep / "train.csv")
    test = pd.read_csv(keep / "test.csv")
    assert list(train.columns) == ["user", "item", "rating", "timestamp"]
    assert not set(zip(train["user"], train["item"], strict=True)) & set(
        zip(test["user"], test["item"], strict=True)
    )
    top = pd.read_csv(keep / "mercato_top10.csv")
    assert list(top.columns) == ["user", "item", "rank", "score"]
    assert top.groupby("user")["rank"].max().max() <= 10 and top["user"].nunique() == 300
    seen = set(zip(train["user"], train["item"], strict=True))
    assert not seen & set(zip(top["user"], top["item"], strict=True))


def test_read_ratings_formats(tmp_path):
    """RecBole's .inter, MovieLens' u.data and a CSV give the same frame (and fingerprint)."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import bench_movielens as bench
    finally:
        sys.path.remove(str(SCRIPT.parent))
    rows = [("196", "242", 3, 881250949), ("186", "302", 3, 891717742), ("22", "377", 1, 8)]
    (tmp_path / "a.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        + "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows)
    )
    (tmp_path / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows))
    (tmp_path / "r.csv").write_text(
        "userId,movieId,rating,time\n" + "".join(f"{u},{i},{r}.0,{t}\n" for u, i, r, t in rows)
    )
    frames = [bench.read_ratings(tmp_path / n) for n in ("a.inter", "u.data", "r.csv")]
    for f in frames:
        assert list(f.columns) == ["user", "item", "rating", "timestamp"]
        assert f["user"].tolist() == ["196", "186", "22"] and f["rating"].tolist() == [3, 3, 1]
        assert f["timestamp"].tolist() == [881250949, 891717742, 8]
    assert len({bench.fingerprint(f) for f in frames}) == 1
    assert bench.fingerprint(frames[0]) != bench.ML100K_FINGERPRINT
