"""Benchmark: first-order Markov attribution on 1,000,000 paths, Mercato vs ChannelAttribution.

Mercato solves the absorbing chain exactly (one sparse linear solve per channel removed);
ChannelAttribution (GPL-3, https://pypi.org/project/ChannelAttribution/) estimates the same
removal effects by simulating journeys. It is never a dependency of Mercato: this script installs
it into its own virtualenv (``benchmarks/.peer-venv``, gitignored) and runs it there with that
venv's interpreter. Its code is only called, never copied.

Each contender runs in a fresh process and is timed from reading the paths file to the
per-channel conversions (wall seconds; interpreter start-up and imports are not timed, but count
in the peak RSS). The file is generated in a child process too, so the parent stays small and
its peak RSS, which Linux carries over fork + exec, cannot inflate the contenders' numbers.

- ``mercato_markov``: ``read_paths_file`` + ``markov(order=1)`` + conversions shared by removal
  effects;
- ``mercato_all_models``: ``read_paths_file`` + ``attribute`` (heuristics, Markov, Shapley);
- ``channelattribution_markov``: ``pandas.read_csv`` + ``markov_model(order=1)`` with its default
  simulation settings (``nsim_start=1e5``, ``conv_par=0.05``, ``ncore=1``, ``seed=0``);
- ``channelattribution_heuristics``: ``pandas.read_csv`` + ``heuristic_models``.

Both run on a generated file in ChannelAttribution's format (``path;total_conversions;
total_conversion_value;total_null``, deterministic seed) and on the reference file
``$MERCATO_DATA_DIR/attribution_paths.csv`` (if present), whose exact conversions are published
in issue 3. Prints one JSON object: sizes, each contender's seconds and peak memory, the speed
ratio (peer seconds / ours) and the per-channel differences between the two.

Full comparison (first run creates the peer's venv and compiles ChannelAttribution, ~1 minute)::

    MERCATO_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_attribution.py

Smoke run, Mercato only (what the test suite runs)::

    .venv/bin/python benchmarks/bench_attribution.py --paths 2000 --skip-peer
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _harness import machine, measure  # noqa: E402
from _harness import peer_python as _peer_python

HERE = Path(__file__).resolve().parent
PEER_VENV = HERE / ".peer-venv"
# ChannelAttribution 2.2.5 imports matplotlib at import time without declaring it
PEER_REQUIREMENTS = ["ChannelAttribution", "matplotlib"]

# Exact first-order conversions (with nulls) of the reference file, published in issue 3
PUBLISHED = {
    "alpha": 5344.95,
    "iota": 3884.61,
    "eta": 3340.85,
    "beta": 2527.35,
    "theta": 1971.91,
    "lambda": 1282.85,
    "epsilon": 599.57,
}

# name, share of first touches, share of later touches, effect on conversion (log-odds)
CHANNELS = [
    ("paid_search", 0.16, 0.12, 0.90),
    ("organic_search", 0.14, 0.12, 0.70),
    ("direct", 0.08, 0.12, 1.10),
    ("email", 0.06, 0.10, 0.80),
    ("display", 0.12, 0.08, 0.10),
    ("social_paid", 0.10, 0.08, 0.20),
    ("social_organic", 0.07, 0.06, 0.15),
    ("retargeting", 0.01, 0.07, 0.60),
    ("affiliate", 0.04, 0.04, 0.50),
    ("referral", 0.04, 0.04, 0.40),
    ("video", 0.05, 0.04, 0.05),
    ("push", 0.02, 0.03, 0.30),
    ("sms", 0.02, 0.03, 0.45),
    ("podcast", 0.03, 0.02, 0.10),
    ("comparison_site", 0.04, 0.03, 0.55),
    ("influencer", 0.02, 0.02, 0.00),
]


# -- data ------------------------------------------------------------------------------------


def _journeys(rng: Any, n: int) -> Any:
    """``n`` simulated journeys aggregated by path (pyarrow table, one row per distinct path)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    names = pa.array([c[0] for c in CHANNELS])
    first_p = np.array([c[1] for c in CHANNELS])
    later_p = np.array([c[2] for c in CHANNELS])
    effect = np.array([c[3] for c in CHANNELS])
    # lengths 1..10, geometric-ish (mean about 2.8)
    lengths = np.minimum(rng.geometric(0.36, n), 10)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    is_first = np.zeros(total, dtype=bool)
    is_first[offsets[:-1]] = True
    draws = rng.choice(len(CHANNELS), total, p=later_p / later_p.sum())
    draws[is_first] = rng.choice(len(CHANNELS), n, p=first_p / first_p.sum())
    # a fifth of later touches repeat the previous channel (e.g. direct > direct)
    fresh = is_first | (rng.random(total) >= 0.2)
    source = np.maximum.accumulate(np.where(fresh, np.arange(total), 0))
    codes = draws[source]
    # conversion: each distinct channel on the path adds its effect; longer paths convert more
    mask = np.bitwise_or.reduceat(np.left_shift(1, codes), offsets[:-1])
    logit = -3.4 + 0.12 * (lengths - 1)
    for c in range(len(CHANNELS)):
        logit = logit + effect[c] * ((mask >> c) & 1)
    converted = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    value = np.where(converted, np.round(rng.lognormal(4.0, 0.6, n), 2), 0.0)
    lists = pa.ListArray.from_arrays(pa.array(offsets), names.take(pa.array(codes)))
    t = pa.table(
        {
            "path": pc.binary_join(lists, " > "),
            "total_conversions": pa.array(converted.astype(np.int64)),
            "total_conversion_value": pa.array(value),
            "total_null": pa.array((~converted).astype(np.int64)),
        }
    )
    return _aggregate(t)


def _aggregate(t: Any) -> Any:
    cols = ("total_conversions", "total_conversion_value", "total_null")
    import pyarrow as pa

    g = t.group_by("path", use_threads=False).aggregate([(c, "sum") for c in cols])
    return pa.table({"path": g["path"], **{c: g[f"{c}_sum"] for c in cols}})


def make_paths_file(path: Path, n_paths: int, seed: int = 7) -> dict[str, Any]:
    """Simulate journeys until ``n_paths`` distinct paths exist, keep ``n_paths`` of them.

    Journeys follow channel-switching with repeats (self-loops); each channel raises the odds of
    converting by its own amount. Deterministic for a seed.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    agg = None
    journeys = 0
    batch = max(n_paths, 1000)
    while agg is None or agg.num_rows < n_paths:
        new = _journeys(rng, batch)
        journeys += batch
        agg = new if agg is None else _aggregate(pa.concat_tables([agg, new]))
    agg = agg.sort_by("path")  # group order is not a contract; sort before sampling
    keep = np.sort(rng.choice(agg.num_rows, n_paths, replace=False))
    agg = agg.take(pa.array(keep))
    agg = agg.set_column(
        2,
        "total_conversion_value",
        pa.array(np.round(agg["total_conversion_value"].to_numpy(), 2)),
    )
    with path.open("wb") as f:
        f.write((";".join(agg.column_names) + "\n").encode())
        opts = pacsv.WriteOptions(
            include_header=False, delimiter=";", quoting_style="none", batch_size=65536
        )
        pacsv.write_csv(agg, f, opts)
    conv = agg["total_conversions"].to_numpy()
    nulls = agg["total_null"].to_numpy()
    return {
        "paths": agg.num_rows,
        "journeys_simulated": journeys,
        "journeys_kept": int(conv.sum() + nulls.sum()),
        "conversions": int(conv.sum()),
        "channels": len(CHANNELS),
        "file_mb": round(path.stat().st_size / 2**20, 1),
        "seed": seed,
    }


# -- contenders (each runs in its own process) -------------------------------------------------


def child(which: str, paths_file: str, result_file: str, n_paths: int, seed: int) -> None:
    if which == "generate":
        # in a child too: the parent stays small, so it cannot lift the children's peak RSS
        # (ru_maxrss survives fork + exec on Linux)
        sizes = make_paths_file(Path(paths_file), n_paths, seed)
        Path(result_file).write_text(json.dumps(sizes))
        return
    if which == "mercato_markov":
        import pandas as pd

        from mercato.analytics.attribution import markov, read_paths_file

        def go() -> dict[str, Any]:
            p = read_paths_file(paths_file)
            m = markov(p, order=1)
            re = pd.Series(m.removal_effects)
            conv = p.total_conversions() * re / re.sum()
            return {
                "markov": {k: float(v) for k, v in conv.items()},
                "states": m.states,
                "paths": p.n_paths,
            }

    elif which == "mercato_all_models":
        from mercato.analytics.attribution import attribute, read_paths_file

        def go() -> dict[str, Any]:
            p = read_paths_file(paths_file)
            t = attribute(p, order=1).table.set_index("channel")
            return {
                m: {k: float(v) for k, v in t[m].items()}
                for m in ("markov", "first_touch", "last_touch", "linear", "shapley")
            }

    elif which == "channelattribution_markov":
        import pandas as pd
        from ChannelAttribution import markov_model

        def go() -> dict[str, Any]:
            df = pd.read_csv(paths_file, sep=";")
            r = markov_model(
                df,
                var_path="path",
                var_conv="total_conversions",
                var_value="total_conversion_value",
                var_null="total_null",
                order=1,
                flg_pro=False,  # only the advertising banner; simulation settings are defaults
            )
            r = r["result"] if isinstance(r, dict) else r
            return {
                "markov": dict(zip(r.channel_name, r.total_conversions.astype(float), strict=True))
            }

    elif which == "channelattribution_heuristics":
        import pandas as pd
        from ChannelAttribution import heuristic_models

        def go() -> dict[str, Any]:
            df = pd.read_csv(paths_file, sep=";")
            h = heuristic_models(
                df, "path", "total_conversions", var_value="total_conversion_value", flg_pro=False
            )
            return {
                ours: dict(zip(h.channel_name, h[theirs].astype(float), strict=True))
                for ours, theirs in (
                    ("first_touch", "first_touch_conversions"),
                    ("last_touch", "last_touch_conversions"),
                    ("linear", "linear_touch_conversions"),
                )
            }

    else:
        raise SystemExit(f"unknown contender {which}")
    out = measure(go)
    Path(result_file).write_text(json.dumps(out))


def run(python: str, which: str, paths_file: Path, tmp: Path, *extra: str) -> dict[str, Any]:
    """Run one contender with ``python`` in a fresh process; its result comes back in a file.

    (A file, not stdout: ChannelAttribution prints banners and progress from C++.)
    """
    result = tmp / f"{which}-{paths_file.stem}.json"
    res = subprocess.run(
        [python, __file__, "--child", which, "--file", str(paths_file), "--result", str(result)]
        + list(extra),
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0 or not result.exists():
        raise SystemExit(f"{which} failed:\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}")
    out = json.loads(result.read_text())
    skip = ("***", "Version:")  # the peer's banner
    log = [ln.strip() for ln in res.stdout.splitlines() if ln.strip() and not ln.startswith(skip)]
    if log:
        out["log"] = log[-4:]
    return out


# -- the peer's environment --------------------------------------------------------------------


def peer_python(venv: Path) -> tuple[str, str]:
    """The peer venv's interpreter (creating the venv and installing the peer if needed)."""
    py, found = _peer_python(
        venv, PEER_REQUIREMENTS, ["ChannelAttribution"], note=" (compiles C++)"
    )
    return py, found["ChannelAttribution"]


# -- comparison --------------------------------------------------------------------------------


def diff(ours: dict[str, float], theirs: dict[str, float]) -> dict[str, Any]:
    """Per-channel relative differences of ``theirs`` against ``ours``."""
    chans = sorted(set(ours) | set(theirs), key=lambda c: -ours.get(c, 0.0))
    total = sum(ours.values())
    rows = []
    for c in chans:
        a, b = ours.get(c, 0.0), theirs.get(c, 0.0)
        rows.append(
            {
                "channel": c,
                "mercato": round(a, 2),
                "channelattribution": round(b, 2),
                "rel_diff": round((b - a) / a, 5) if a else None,
                "share": a / total if total else 0.0,
            }
        )
    rel = [abs(r["rel_diff"]) for r in rows if r["rel_diff"] is not None]
    big = [abs(r["rel_diff"]) for r in rows if r["rel_diff"] is not None and r["share"] >= 0.01]
    for r in rows:
        r["share"] = round(r["share"], 4)
    return {
        "max_abs_rel_diff": round(max(rel), 5) if rel else None,
        "mean_abs_rel_diff": round(sum(rel) / len(rel), 5) if rel else None,
        "max_abs_rel_diff_channels_over_1pct": round(max(big), 5) if big else None,
        # share of all conversions that the two assign to different channels
        "conversions_moved": round(
            sum(abs(ours.get(c, 0.0) - theirs.get(c, 0.0)) for c in chans) / 2 / total, 5
        )
        if total
        else None,
        "channels": rows,
    }


def max_abs_diff(a: dict[str, float], b: dict[str, float]) -> float:
    return round(max(abs(a.get(c, 0.0) - b.get(c, 0.0)) for c in set(a) | set(b)), 6)


def compare(res: dict[str, dict[str, Any]], peer: bool) -> dict[str, Any]:
    m, a = res["mercato_markov"], res["mercato_all_models"]
    out: dict[str, Any] = {
        "mercato_markov": {k: m[k] for k in ("seconds", "peak_rss_mb", "states")},
        "mercato_all_models": {k: a[k] for k in ("seconds", "peak_rss_mb")},
        "markov_only_equals_all_models": max_abs_diff(m["markov"], a["markov"]) < 1e-6,
    }
    if peer:
        cm, ch = res["channelattribution_markov"], res["channelattribution_heuristics"]
        out["channelattribution_markov"] = {
            k: cm[k] for k in ("seconds", "peak_rss_mb", "log") if k in cm
        }
        out["channelattribution_heuristics"] = {k: ch[k] for k in ("seconds", "peak_rss_mb")}
        out["markov_speed_ratio_peer_over_mercato"] = round(cm["seconds"] / m["seconds"], 2)
        out["markov_memory_ratio_mercato_over_peer"] = round(
            m["peak_rss_mb"] / cm["peak_rss_mb"], 3
        )
        out["peer_markov_over_mercato_all_models"] = round(cm["seconds"] / a["seconds"], 2)
        out["heuristics_max_abs_diff"] = {
            h: max_abs_diff(a[h], ch[h]) for h in ("first_touch", "last_touch", "linear")
        }
        out["markov_difference"] = diff(m["markov"], cm["markov"])
    else:
        conv = m["markov"]
        out["mercato_markov_conversions"] = {
            c: round(v, 2) for c, v in sorted(conv.items(), key=lambda kv: -kv[1])
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--paths", type=int, default=1_000_000, help="rows of the generated file")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--skip-peer", action="store_true", help="run only Mercato")
    ap.add_argument("--peer-venv", type=Path, default=PEER_VENV)
    ap.add_argument("--data-dir", default=os.environ.get("MERCATO_DATA_DIR"))
    ap.add_argument("--child")
    ap.add_argument("--file")
    ap.add_argument("--result")
    a = ap.parse_args()
    if a.child:
        child(a.child, a.file, a.result, a.paths, a.seed)
        return
    if a.paths < 1:
        raise SystemExit("--paths must be at least 1")
    contenders = [(sys.executable, "mercato_markov"), (sys.executable, "mercato_all_models")]
    peer_version = None
    if not a.skip_peer:
        py, peer_version = peer_python(a.peer_venv)
        contenders += [(py, "channelattribution_markov"), (py, "channelattribution_heuristics")]
    reference = Path(a.data_dir) / "attribution_paths.csv" if a.data_dir else None
    tmp = Path(tempfile.mkdtemp(prefix="bench-attribution-"))
    try:
        big = tmp / "paths.csv"
        print(f"generating {a.paths:,} paths...", file=sys.stderr)
        sizes = run(
            sys.executable, "generate", big, tmp, "--paths", str(a.paths), "--seed", str(a.seed)
        )
        res = {}
        for py, who in contenders:
            print(f"{who} on {a.paths:,} paths...", file=sys.stderr)
            res[who] = run(py, who, big, tmp)
        ref_res = {}
        if reference is not None and reference.exists():
            for py, who in contenders:
                ref_res[who] = run(py, who, reference, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    report: dict[str, Any] = {
        "benchmark": "attribution-markov",
        "machine": machine(),
        "peer": None if a.skip_peer else {"package": "ChannelAttribution", "version": peer_version},
        "generated": {**sizes, **compare(res, not a.skip_peer)},
    }
    if ref_res:
        ours = ref_res["mercato_markov"]["markov"]
        published = {
            c: {"published": v, "mercato": round(ours[c], 2), "rel_diff": (ours[c] - v) / v}
            for c, v in PUBLISHED.items()
        }
        report["reference"] = {
            "file": str(reference),
            "paths": ref_res["mercato_markov"].get("paths"),
            "mercato_max_abs_rel_diff_vs_published": round(
                max(abs(p["rel_diff"]) for p in published.values()), 7
            ),
            **compare(ref_res, not a.skip_peer),
        }
    else:
        report["reference"] = {
            "skipped": "set MERCATO_DATA_DIR (or --data-dir) to the folder of attribution_paths.csv"
        }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
