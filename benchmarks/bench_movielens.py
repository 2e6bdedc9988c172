"""Benchmark: top-10 accuracy on MovieLens 100k, Mercato vs Microsoft Recommenders' protocol.

The claim: on MovieLens 100k, split once with Recommenders' own ``python_stratified_split``
(75% of each user's ratings to training, seed 42) and measured at k = 10 with every held-out
rating relevant, ``mercato recommend evaluate`` (all its models, settings tuned on a validation
part of the training file) reaches an NDCG@10 at least as high as Recommenders' SAR and
cornac's BPR run on the same files in the same run, and as the published numbers of that
protocol (Recommenders README: SAR 0.3825, BPR 0.4420, LightGCN 0.4198, BiVAE 0.4751); and
Mercato's own metrics agree with Recommenders' ``python_evaluation`` on the same top-10 file.

The data: MovieLens 100k (``ml-100k.inter``, 100,000 ratings) as shipped inside the
MIT-licensed RecBole 1.2.1 wheel on PyPI. Without ``--ratings``, the script fetches that wheel
with ``pip download --no-deps recbole==1.2.1`` into ``--cache`` (default
``~/.cache/mercato-bench``), extracts the file there and checks its sha256; nothing is copied
into the repository. ``--ratings FILE`` uses a file you have instead: RecBole's ``.inter``,
MovieLens' tab-separated ``u.data``, or a CSV with a header, its first four columns being
user, item, rating and time (epoch seconds).

The peers, never dependencies of Mercato, run in their own virtualenv
(``<cache>/peer-venv-movielens``, created and pip-installed on the first run: recommenders
1.2.1, cornac 2.2.2 and numpy < 2, about 1.4 GB; see ``PEER_REQUIREMENTS`` for why these) with
that venv's interpreter, each in a fresh process:

1. **split**: ``python_stratified_split(data, ratio=0.75, col_user, col_item, seed=42)``
   written to ``train.csv`` / ``test.csv`` (user, item, rating, timestamp);
2. **SAR** (``recommenders.models.sar.SAR``; similarity_type="jaccard",
   time_decay_coefficient=30, timedecay_formula=True, Recommenders' column names), then
   ``recommend_k_items(test, top_k=10, remove_seen=True)``, as their benchmark notebook;
3. **BPR** (``cornac.models.BPR(k=200, max_iter=100, learning_rate=0.01, lambda_reg=0.001,
   seed=123)`` on ``cornac.data.Dataset.from_uir(train)``), ranked with Recommenders'
   ``predict_ranking(..., remove_seen=True)`` and ``get_top_k_items``, as their notebooks;
4. **Mercato** on the same files: ``mercato recommend evaluate --train train.csv --test
   test.csv --user user --item item --rating rating --time timestamp --k 10 --json --output
   mercato_top10.csv``; and with its own split of the whole file (``--from ratings.csv
   --split stratified --by user --test-size 0.25 --seed 42``);
5. **check**: Recommenders' ``ndcg_at_k``, ``precision_at_k``, ``recall_at_k``, ``map_at_k``
   and ``map`` score Mercato's ``--output`` file (the list order kept: prediction = k + 1 -
   rank) against ``test.csv``, beside the numbers Mercato printed; and Mercato's
   ``ranking_metrics`` score the SAR and BPR lists beside Recommenders' numbers.

Metrics (every model): ``ndcg@10``, ``precision@10``, ``recall@10``, ``map@10`` (average
precision over min(relevant, 10): Recommenders 1.2's ``map_at_k``) and
``map_recommenders@10`` (over the number of relevant items: Recommenders' ``map``, and its
``map_at_k`` up to 1.1, the MAP of the published table). Seconds are wall seconds of each
contender's process (imports and file reading included; Mercato's include tuning six models).

Prints one JSON object (the last line of stdout), and readable lines on stderr.

Full run (the first also fetches the data and installs the peers, a few minutes)::

    .venv/bin/python benchmarks/bench_movielens.py

Mercato only, on a file of yours (what the test suite runs, on a synthetic file)::

    .venv/bin/python benchmarks/bench_movielens.py --ratings ratings.csv --skip-peers
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import machine, run_spec, run_spec_child  # noqa: E402
from _harness import peer_python as _peer_python

CLAIM = (
    "MovieLens 100k, Recommenders' python_stratified_split (0.75, seed 42), k=10: Mercato's "
    "best NDCG@10 at least that of Recommenders' SAR and cornac's BPR on the same split in the "
    "same run, and of the published anchors (SAR 0.3825, BPR 0.4420, LightGCN 0.4198, BiVAE "
    "0.4751); Mercato's metrics agree with Recommenders' python_evaluation on the same lists"
)

RECBOLE_REQUIREMENT = "recbole==1.2.1"
RECBOLE_MEMBER = "recbole/dataset_example/ml-100k/ml-100k.inter"
ML100K_INTER_SHA256 = "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff"
#: sha256 of the ratings as sorted "user\titem\trating\ttimestamp" lines: the same whatever
#: the file's format (RecBole's .inter, MovieLens' u.data, a CSV)
ML100K_FINGERPRINT = "f7dde5dc55b648d848645090e8e50b34bbf9b56abd8c305bcae44ee5de7a1f06"

# recommenders 1.2.1's SAR still calls np.NaN (gone in numpy 2), so numpy < 2; cornac 2.3+ needs
# numpy 2 (and 2.3.0's wheel a newer libstdc++ than Debian 12's): 2.2.2 is the last that fits
PEER_REQUIREMENTS = ["recommenders==1.2.1", "cornac==2.2.2", "numpy<2"]
PEER_VERSIONS = ("recommenders", "cornac", "numpy", "pandas", "scipy")

SPLIT_RATIO = 0.75
SPLIT_SEED = 42
SAR_PARAMS: dict[str, Any] = {
    "similarity_type": "jaccard",
    "time_decay_coefficient": 30,
    "time_now": None,
    "timedecay_formula": True,
}
BPR_PARAMS: dict[str, Any] = {
    "k": 200,
    "max_iter": 100,
    "learning_rate": 0.01,
    "lambda_reg": 0.001,
    "seed": 123,
    "verbose": False,
}

#: Recommenders README, "Algorithm Comparison" (MovieLens 100k, python_stratified_split 0.75,
#: k=10; its MAP divides by the number of relevant items: map_recommenders@10 here)
ANCHORS: dict[str, dict[str, float]] = {
    "SAR": {"map_recommenders@10": 0.110591, "ndcg@10": 0.382461,
            "precision@10": 0.330753, "recall@10": 0.176385},
    "BPR": {"map_recommenders@10": 0.132478, "ndcg@10": 0.441997,
            "precision@10": 0.388229, "recall@10": 0.212522},
    "LightGCN": {"map_recommenders@10": 0.088526, "ndcg@10": 0.419846,
                 "precision@10": 0.379626, "recall@10": 0.144336},
    "BiVAE": {"map_recommenders@10": 0.146126, "ndcg@10": 0.475077,
              "precision@10": 0.411771, "recall@10": 0.219145},
}  # fmt: skip
ANCHOR_SOURCE = (
    "Microsoft Recommenders README, Algorithm Comparison table (MovieLens 100k, "
    "python_stratified_split ratio 0.75, k=10)"
)

COLUMNS = ("user", "item", "rating", "timestamp")


# -- data --------------------------------------------------------------------------------------


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mercato-bench"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_movielens(cache: Path) -> Path:
    """``ml-100k.inter`` from the RecBole wheel (downloaded once into ``cache``), checked."""
    target = cache / "ml-100k" / "ml-100k.inter"
    if target.exists() and sha256_file(target) == ML100K_INTER_SHA256:
        return target
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    found = sorted(wheels.glob("recbole-1.2.1-*.whl"))
    if not found:
        print(f"downloading the {RECBOLE_REQUIREMENT} wheel (MovieLens 100k inside)...",
              file=sys.stderr)  # fmt: skip
        res = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
             RECBOLE_REQUIREMENT, "-d", str(wheels)],
            stdout=sys.stderr, stderr=subprocess.PIPE, text=True, check=False,
        )  # fmt: skip
        found = sorted(wheels.glob("recbole-1.2.1-*.whl"))
        if res.returncode != 0 or not found:
            raise SystemExit(
                f"could not download {RECBOLE_REQUIREMENT} from the package index "
                f"({res.stderr.strip()[-1000:]}); give a MovieLens 100k file with --ratings"
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(found[0]) as z:
        data = z.read(RECBOLE_MEMBER)
    if hashlib.sha256(data).hexdigest() != ML100K_INTER_SHA256:
        raise SystemExit(f"{found[0]}: {RECBOLE_MEMBER} is not the expected file (sha256)")
    target.write_bytes(data)
    return target


def read_ratings(path: Path) -> Any:
    """A ratings file as a frame of user, item (strings), rating (float), timestamp (int)."""
    import pandas as pd

    with open(path, encoding="utf-8") as f:
        first = f.readline()
    tab = "\t" in first
    header = any(c.isalpha() for c in first)
    df = pd.read_csv(path, sep="\t" if tab else ",", header=0 if header else None,
                     dtype=str, keep_default_na=False)  # fmt: skip
    if df.shape[1] < 4:
        raise SystemExit(f"{path}: needs four columns (user, item, rating, time)")
    df = df.iloc[:, :4]
    df.columns = list(COLUMNS)
    try:
        df["rating"] = pd.to_numeric(df["rating"]).astype(float)
        df["timestamp"] = pd.to_numeric(df["timestamp"]).astype("int64")
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"{path}: rating and time must be numbers ({exc})") from exc
    return df


def fingerprint(df: Any) -> str:
    lines = sorted(
        f"{u}\t{i}\t{r:g}\t{t}"
        for u, i, r, t in zip(df["user"], df["item"], df["rating"], df["timestamp"], strict=True)
    )
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def local_stratified_split(df: Any, ratio: float, seed: int) -> tuple[Any, Any]:
    """Each user's ratings shuffled with ``seed``, the first ``round(ratio x n)`` to training
    (the rule of Recommenders' split, not its random stream): used when the peers are off."""
    import numpy as np

    rng = np.random.default_rng(seed)
    s = df.iloc[rng.permutation(len(df))]
    pos = s.groupby("user", sort=False).cumcount().to_numpy()
    size = s.groupby("user", sort=False)["user"].transform("size").to_numpy()
    to_train = pos < np.maximum(1, np.round(ratio * size))
    return s[to_train].sort_index(), s[~to_train].sort_index()


# -- children (each runs in a fresh process; the peers' in the peer venv) ----------------------


def _theirs() -> dict[str, str]:
    from recommenders.utils.constants import (
        DEFAULT_ITEM_COL,
        DEFAULT_RATING_COL,
        DEFAULT_TIMESTAMP_COL,
        DEFAULT_USER_COL,
    )

    return {"user": DEFAULT_USER_COL, "item": DEFAULT_ITEM_COL,
            "rating": DEFAULT_RATING_COL, "timestamp": DEFAULT_TIMESTAMP_COL}  # fmt: skip


def _read_split(spec: dict[str, Any], rename: dict[str, str] | None = None) -> tuple[Any, Any]:
    import pandas as pd

    train = pd.read_csv(spec["train"])
    test = pd.read_csv(spec["test"])
    if rename:
        train, test = train.rename(columns=rename), test.rename(columns=rename)
    return train, test


def _peer_metrics(test: Any, top: Any, k: int) -> dict[str, Any]:
    """Recommenders' python_evaluation on a top-k frame (their column names)."""
    from recommenders.evaluation import python_evaluation as pe
    from recommenders.utils.constants import DEFAULT_PREDICTION_COL

    c = _theirs()
    cols = {"col_user": c["user"], "col_item": c["item"], "col_rating": c["rating"],
            "col_prediction": DEFAULT_PREDICTION_COL, "k": k}  # fmt: skip
    users = len(set(test[c["user"]]) & set(top[c["user"]]))
    return {
        "users": users,
        f"ndcg@{k}": float(pe.ndcg_at_k(test, top, **cols)),
        f"precision@{k}": float(pe.precision_at_k(test, top, **cols)),
        f"recall@{k}": float(pe.recall_at_k(test, top, **cols)),
        f"map@{k}": float(pe.map_at_k(test, top, **cols)),
        f"map_recommenders@{k}": float(pe.map(test, top, **cols)),
    }


def _write_list(top: Any, path: str, k: int) -> None:
    """A top-k frame (their columns) as user, item, rank (best first)."""
    from recommenders.utils.constants import DEFAULT_PREDICTION_COL

    c = _theirs()
    t = top.sort_values([c["user"], DEFAULT_PREDICTION_COL], ascending=[True, False],
                        kind="stable")  # fmt: skip
    t = t.assign(rank=t.groupby(c["user"], sort=False).cumcount() + 1)
    t = t[t["rank"] <= k]
    t[[c["user"], c["item"], "rank"]].set_axis(["user", "item", "rank"], axis=1).to_csv(
        path, index=False
    )


def child_split(spec: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd
    from recommenders.datasets.python_splitters import python_stratified_split

    c = _theirs()
    data = pd.read_csv(spec["ratings"]).rename(columns=c)
    t0 = time.perf_counter()
    train, test = python_stratified_split(data, ratio=spec["ratio"], col_user=c["user"],
                                          col_item=c["item"], seed=spec["seed"])  # fmt: skip
    seconds = time.perf_counter() - t0
    back = {v: k for k, v in c.items()}
    train.rename(columns=back)[list(COLUMNS)].to_csv(spec["train"], index=False)
    test.rename(columns=back)[list(COLUMNS)].to_csv(spec["test"], index=False)
    return {"train_rows": len(train), "test_rows": len(test), "split_seconds": round(seconds, 2)}


def child_sar(spec: dict[str, Any]) -> dict[str, Any]:
    from recommenders.models.sar import SAR

    c = _theirs()
    k = spec["k"]
    train, test = _read_split(spec, c)
    model = SAR(col_user=c["user"], col_item=c["item"], col_rating=c["rating"],
                col_timestamp=c["timestamp"], **SAR_PARAMS)  # fmt: skip
    t0 = time.perf_counter()
    model.fit(train)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    top = model.recommend_k_items(test, top_k=k, remove_seen=True)
    rec_s = time.perf_counter() - t0
    _write_list(top, spec["list"], k)
    return {**_peer_metrics(test, top, k), "fit_seconds": round(fit_s, 2),
            "recommend_seconds": round(rec_s, 2)}  # fmt: skip


def child_bpr(spec: dict[str, Any]) -> dict[str, Any]:
    import cornac
    from recommenders.evaluation.python_evaluation import get_top_k_items
    from recommenders.models.cornac.cornac_utils import predict_ranking
    from recommenders.utils.constants import DEFAULT_PREDICTION_COL

    c = _theirs()
    k = spec["k"]
    train, test = _read_split(spec, c)
    t0 = time.perf_counter()
    data = cornac.data.Dataset.from_uir(
        train[[c["user"], c["item"], c["rating"]]].itertuples(index=False), seed=SPLIT_SEED
    )
    model = cornac.models.BPR(**BPR_PARAMS)
    model.fit(data)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    scored = predict_ranking(model, train, usercol=c["user"], itemcol=c["item"],
                             predcol=DEFAULT_PREDICTION_COL, remove_seen=True)  # fmt: skip
    top = get_top_k_items(scored, col_user=c["user"], col_rating=DEFAULT_PREDICTION_COL, k=k)
    top = top.drop(columns="rank")
    rec_s = time.perf_counter() - t0
    _write_list(top, spec["list"], k)
    return {**_peer_metrics(test, top, k), "fit_seconds": round(fit_s, 2),
            "recommend_seconds": round(rec_s, 2)}  # fmt: skip


def child_score(spec: dict[str, Any]) -> dict[str, Any]:
    """Recommenders' metrics on a list file (user, item, rank): prediction = k + 1 - rank."""
    import pandas as pd
    from recommenders.utils.constants import DEFAULT_PREDICTION_COL

    c = _theirs()
    k = spec["k"]
    test = pd.read_csv(spec["test"]).rename(columns=c)
    lst = pd.read_csv(spec["list"])
    top = pd.DataFrame({c["user"]: lst["user"], c["item"]: lst["item"],
                        DEFAULT_PREDICTION_COL: (k + 1 - lst["rank"]).astype(float)})  # fmt: skip
    return _peer_metrics(test, top, k)


def child_mercato_score(spec: dict[str, Any]) -> dict[str, Any]:
    """Mercato's ``ranking_metrics`` on list files (user, item, rank) against the test file."""
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    from mercato.recommend.metrics import ranking_metrics

    k = spec["k"]
    test = pd.read_csv(spec["test"], dtype={"user": str, "item": str})
    out: dict[str, Any] = {}
    for name, path in spec["lists"].items():
        lst = pd.read_csv(path, dtype={"user": str, "item": str})
        users = sorted(set(lst["user"]) & set(test["user"]))
        upos = {u: j for j, u in enumerate(users)}
        items = sorted(set(test["item"]) | set(lst["item"]))
        ipos = {v: j for j, v in enumerate(items)}
        t = test[test["user"].isin(upos)]
        rel = sp.csr_matrix(
            (np.ones(len(t)), ([upos[u] for u in t["user"]], [ipos[v] for v in t["item"]])),
            shape=(len(users), len(items)),
        )
        rel.sum_duplicates()
        rel.data[:] = 1
        recs = np.full((len(users), k), -1, dtype=np.int64)
        lst = lst[lst["user"].isin(upos) & (lst["rank"] <= k)]
        for u, v, r in zip(lst["user"], lst["item"], lst["rank"], strict=True):
            recs[upos[u], int(r) - 1] = ipos[v]
        m = ranking_metrics(recs, rel, k)
        out[name] = {"users": m["users"], **{f"{n}@{k}": m[n] for n in
                     ("ndcg", "precision", "recall", "map", "map_recommenders")}}  # fmt: skip
    return out


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "split": child_split,
    "sar": child_sar,
    "bpr": child_bpr,
    "score": child_score,
    "mercato_score": child_mercato_score,
}


def run(
    python: str, which: str, spec: dict[str, Any], tmp: Path, timeout: float | None = None
) -> dict[str, Any]:
    """One child with ``python`` in a fresh process; its wall ``seconds`` added."""
    out = run_spec(__file__, python, which, spec, tmp, timeout)
    if "did_not_finish_s" in out:
        return {"error": f"did not finish in {timeout:g} s"}
    if "process_seconds" in out:
        out["seconds"] = out.pop("process_seconds")
    return out


# -- Mercato through its command line ----------------------------------------------------------


def mercato_command() -> list[str]:
    exe = Path(sys.executable).parent / "mercato"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("mercato")
    if found is None:
        raise SystemExit("the mercato command is not installed beside this Python")
    return [found]


def run_mercato(args: list[str], cwd: Path, k: int) -> dict[str, Any]:
    cmd = [*mercato_command(), "recommend", "evaluate", *args, "--json"]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=cwd)
    wall = time.perf_counter() - t0
    shown = ["mercato", *cmd[1:]]
    if res.returncode != 0:
        return {"command": shown, "error": f"exit {res.returncode}: {res.stderr[-3000:]}"}
    d = json.loads(res.stdout)
    s = d["summary"]
    keep = (f"ndcg@{k}", f"precision@{k}", f"recall@{k}", f"map@{k}", f"map_recommenders@{k}")
    models = {
        r["model"]: {"users": r["users"], **{m: r[m] for m in keep},
                     "settings": r["settings"], "fit_seconds": r["fit_seconds"]}
        for r in d["rows"]
    }  # fmt: skip
    return {
        "command": shown,
        "seconds": round(wall, 2),
        "evaluate_seconds": s["seconds"],
        "best": s["best"],
        "split": {key: s[key] for key in ("split", "test_size", "seed", "by", "train_users",
                  "train_items", "train_interactions", "test_users", "test_interactions")},
        "models": models,
        "notes": d.get("notes", []),
    }  # fmt: skip


# -- the report --------------------------------------------------------------------------------


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a is not None and b else None


def metric_rows(k: int) -> tuple[str, ...]:
    return (f"ndcg@{k}", f"precision@{k}", f"recall@{k}", f"map@{k}", f"map_recommenders@{k}")


def diffs(a: dict[str, Any], b: dict[str, Any], k: int) -> dict[str, float]:
    return {m: abs(a[m] - b[m]) for m in metric_rows(k) if m in a and m in b}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--ratings", type=Path, help="a ratings file (default: fetch MovieLens 100k)")
    ap.add_argument("--cache", type=Path, default=default_cache(),
                    help="where the data and the peers' venv are kept")  # fmt: skip
    ap.add_argument("--peer-venv", type=Path, help="default: <cache>/peer-venv-movielens")
    ap.add_argument("--skip-peers", action="store_true", help="run only Mercato")
    ap.add_argument("--peer-timeout", type=float, default=1200.0, help="seconds per peer run")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--models", help="Mercato's models (default: all)")
    ap.add_argument("--time-budget", type=float, help="Mercato's tuning seconds per model")
    ap.add_argument("--keep", type=Path, help="keep the split and the top-k files here")
    ap.add_argument("--child")
    ap.add_argument("--spec")
    ap.add_argument("--result")
    a = ap.parse_args()
    if a.child:
        run_spec_child(CHILDREN, a.child, a.spec, a.result)
        return
    k = a.k
    source = Path(a.ratings) if a.ratings else fetch_movielens(a.cache)
    if not source.exists():
        raise SystemExit(f"{source}: no such file")
    df = read_ratings(source)
    fp = fingerprint(df)
    report: dict[str, Any] = {
        "benchmark": "movielens",
        "claim": CLAIM,
        "machine": machine(),
        "load_before": [round(v, 2) for v in os.getloadavg()],
        "data": {
            "file": str(source),
            "from": "--ratings" if a.ratings else f"{RECBOLE_REQUIREMENT} wheel: {RECBOLE_MEMBER}",
            "sha256": sha256_file(source),
            "is_movielens_100k": fp == ML100K_FINGERPRINT,
            "rows": len(df),
            "users": int(df["user"].nunique()),
            "items": int(df["item"].nunique()),
        },
    }
    # the peers' venv
    peer_py: str | None = None
    if a.skip_peers:
        report["peers"] = {"skipped": "--skip-peers"}
    else:
        venv = a.peer_venv or a.cache / "peer-venv-movielens"
        try:
            t0 = time.perf_counter()
            peer_py, versions = _peer_python(venv, PEER_REQUIREMENTS, list(PEER_VERSIONS),
                                             note=" (about 1.4 GB, a minute or two)")  # fmt: skip
            report["peers"] = {"installed": True, "venv": str(venv), "versions": versions,
                               "requirements": PEER_REQUIREMENTS,
                               "ready_seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
        except (SystemExit, subprocess.CalledProcessError) as exc:
            report["peers"] = {"installed": False, "venv": str(venv),
                               "requirements": PEER_REQUIREMENTS,
                               "error": str(exc)[-2000:]}  # fmt: skip
            print(f"the peers did not install: {exc}; Mercato only", file=sys.stderr)

    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="bench-movielens-"))
    work.mkdir(parents=True, exist_ok=True)
    files = {n: str(work / f"{n}.csv") for n in ("ratings", "train", "test")}
    lists = {n: str(work / f"{n}_top{k}.csv") for n in ("mercato", "sar", "bpr")}
    contenders: dict[str, Any] = {}
    checks: dict[str, Any] = {}
    try:
        df.to_csv(files["ratings"], index=False)
        if peer_py:
            print("split (Recommenders' python_stratified_split)...", file=sys.stderr)
            sp = run(peer_py, "split", {**files, "ratio": SPLIT_RATIO, "seed": SPLIT_SEED}, work,
                     a.peer_timeout)  # fmt: skip
            if "error" in sp:
                raise SystemExit(f"Recommenders' split failed: {sp['error']}")
            made_by = (f"recommenders.datasets.python_splitters.python_stratified_split(ratio="
                       f"{SPLIT_RATIO}, seed={SPLIT_SEED}) in the peers' venv")  # fmt: skip
        else:
            train, test = local_stratified_split(df, SPLIT_RATIO, SPLIT_SEED)
            train.to_csv(files["train"], index=False)
            test.to_csv(files["test"], index=False)
            sp = {"train_rows": len(train), "test_rows": len(test)}
            made_by = "this script's per-user stratified split (the peers were not run)"
        report["protocol"] = {
            "split_made_by": made_by,
            "train_rows": sp["train_rows"],
            "test_rows": sp["test_rows"],
            "k": k,
            "relevance": "every held-out rating is relevant (binary); the user's training "
            "items are not recommended",
        }
        if peer_py:
            base = {"train": files["train"], "test": files["test"], "k": k}
            print("Recommenders' SAR...", file=sys.stderr)
            sar = run(peer_py, "sar", {**base, "list": lists["sar"]}, work, a.peer_timeout)
            contenders["recommenders_sar"] = {"params": dict(SAR_PARAMS), **sar}
            print("cornac's BPR...", file=sys.stderr)
            bpr = run(peer_py, "bpr", {**base, "list": lists["bpr"]}, work, a.peer_timeout)
            contenders["cornac_bpr"] = {"params": dict(BPR_PARAMS), **bpr}
        extra: list[str] = []
        if a.models:
            extra += ["--models", a.models]
        if a.time_budget is not None:
            extra += ["--time-budget", str(a.time_budget)]
        cols = ["--user", "user", "--item", "item", "--rating", "rating", "--time", "timestamp"]
        print("Mercato on the same split...", file=sys.stderr)
        contenders["mercato"] = run_mercato(
            ["--train", "train.csv", "--test", "test.csv", *cols, "--k", str(k), *extra,
             "--output", Path(lists["mercato"]).name], work, k,
        )  # fmt: skip
        print("Mercato with its own split...", file=sys.stderr)
        contenders["mercato_own_split"] = run_mercato(
            ["--from", "ratings.csv", *cols, "--split", "stratified", "--by", "user",
             "--test-size", str(round(1 - SPLIT_RATIO, 4)), "--seed", str(SPLIT_SEED),
             "--k", str(k), *extra], work, k,
        )  # fmt: skip
        m = contenders["mercato"]
        if "error" in m:
            raise SystemExit(f"Mercato failed: {m['error']}")
        reported = m["models"][m["best"]]
        if peer_py:
            print("Recommenders' metrics on Mercato's top-k file...", file=sys.stderr)
            theirs = run(peer_py, "score", {"test": files["test"], "list": lists["mercato"],
                                            "k": k}, work, a.peer_timeout)  # fmt: skip
            theirs.pop("seconds", None)
            checks["recommenders_on_mercato_list"] = {
                "model": m["best"],
                "recommenders": theirs,
                "mercato_reported": {key: reported[key] for key in ("users", *metric_rows(k))},
                "abs_diff": diffs(theirs, reported, k) if "error" not in theirs else None,
            }
            peer_lists = {n: lists[n] for n, c in (("sar", "recommenders_sar"),
                          ("bpr", "cornac_bpr")) if "error" not in contenders[c]}  # fmt: skip
            if peer_lists:
                ours = run(sys.executable, "mercato_score",
                           {"test": files["test"], "lists": peer_lists, "k": k}, work)  # fmt: skip
                for n, c in (("sar", "recommenders_sar"), ("bpr", "cornac_bpr")):
                    if n in peer_lists and "error" not in ours:
                        checks[f"mercato_on_{c}_list"] = {
                            "mercato": ours[n],
                            "recommenders_reported": {key: contenders[c][key]
                                                      for key in ("users", *metric_rows(k))},
                            "abs_diff": diffs(ours[n], contenders[c], k),
                        }  # fmt: skip
                    elif n in peer_lists:
                        checks[f"mercato_on_{c}_list"] = {"error": ours["error"]}
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)

    report["load_after"] = [round(v, 2) for v in os.getloadavg()]
    report["contenders"] = contenders
    report["metric_check"] = checks
    report["anchors"] = {"source": ANCHOR_SOURCE, "models": ANCHORS}
    nd = f"ndcg@{k}"
    best = reported[nd]
    own = contenders["mercato_own_split"]
    own_best = own["models"][own["best"]][nd] if "error" not in own else None
    anchored = k == 10 and report["data"]["is_movielens_100k"]
    report["ratios"] = {
        "mercato_best": m["best"],
        "mercato_best_is": f"the highest test {nd} of Mercato's models (each one's settings "
        "chosen on a validation part of the training file)",
        f"mercato_best_{nd}": best,
        "vs_measured": {c: ratio(best, contenders[c].get(nd))
                        for c in ("recommenders_sar", "cornac_bpr") if c in contenders},
        "vs_anchors": {n: ratio(best, v[nd]) for n, v in ANCHORS.items()} if anchored else None,
        "own_split_best": own.get("best"),
        f"own_split_best_{nd}": own_best,
        "own_split_vs_anchors": ({n: ratio(own_best, v[nd]) for n, v in ANCHORS.items()}
                                 if anchored else None),
    }  # fmt: skip
    lines = summary_lines(report, k)
    report["summary_lines"] = lines
    print("\n".join(lines), file=sys.stderr)
    print(json.dumps(report))


def summary_lines(report: dict[str, Any], k: int) -> list[str]:
    nd, pr, rc, mp, mr = metric_rows(k)
    lines = [f"{'contender':<28} {nd:>9} {pr:>13} {rc:>10} {mp:>9} {'map(|R|)':>9} {'seconds':>8}"]

    def row(name: str, r: dict[str, Any], seconds: Any = "") -> None:
        lines.append(f"{name:<28} {r[nd]:>9.4f} {r[pr]:>13.4f} {r[rc]:>10.4f} {r[mp]:>9.4f} "
                     f"{r[mr]:>9.4f} {seconds!s:>8}")  # fmt: skip

    c = report["contenders"]
    for key in ("mercato", "mercato_own_split"):
        m = c.get(key, {})
        if "error" in m:
            lines.append(f"{key}: {m['error'][:300]}")
            continue
        for name, r in m["models"].items():
            star = "*" if name == m["best"] else ""
            row(f"{key}/{name}{star}", r)
        lines.append(f"{key}: {m['seconds']} s in all (tuning and fitting every model)")
    for key in ("recommenders_sar", "cornac_bpr"):
        if key in c:
            if "error" in c[key]:
                lines.append(f"{key}: {c[key]['error'][:300]}")
            else:
                row(key, c[key], c[key]["seconds"])
    if k == 10:
        for name, v in ANCHORS.items():
            lines.append(f"{'published ' + name:<28} {v[nd]:>9.4f} {v[pr]:>13.4f} "
                         f"{v[rc]:>10.4f} {'':>9} {v[mr]:>9.4f}")  # fmt: skip
    for key, chk in report["metric_check"].items():
        if chk.get("abs_diff"):
            lines.append(f"{key}: largest difference {max(chk['abs_diff'].values()):.2e}")
        elif "error" in chk or "error" in chk.get("recommenders", {}):
            lines.append(f"{key}: {chk.get('error') or chk['recommenders']['error']}"[:300])
    return lines


if __name__ == "__main__":
    main()
