"""A tiny run of benchmarks/bench_recommend.py, so it keeps working (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "bench_recommend.py"


def test_bench_recommend_small_run():
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--users", "2000", "--items", "500",
         "--interactions", "30000", "--requests", "50", "--rounds", "2", "--train"],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["benchmark"] == "recommend" and out["items"] == 500
    lat = out["latency"]
    # the index and implicit give the same lists from the same factors
    assert lat["same_top10_share"] == 1.0 and lat["requests_per_round"] == 50
    assert out["interactions"] == 30000 and len(lat["per_round"]) == 2
    assert set(out["training"]) == {"als_fit_seconds", "ease_fit_seconds"}
