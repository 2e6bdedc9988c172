"""A tiny run of benchmarks/bench_analytics.py, so it keeps working (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "bench_analytics.py"


def test_bench_analytics_tiny(tmp_path: Path):
    res = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--customers",
            "2000",
            "--days",
            "60",
            "--workdir",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["benchmark"] == "analytics"
    assert out["sizes"]["customers"] == 2000 and out["sizes"]["events"] > 0
    for who in ("mercato", "pandas"):
        assert set(out[who]["steps"]) >= {"profile", "kpis", "rfm", "cohorts", "funnel"}
        assert out[who]["seconds"] > 0 and out[who]["peak_rss_mb"] > 0
    assert out["pandas"]["imports_duckdb_or_polars"] is False
    assert out["load"]["seconds"] > 0
    assert out["speedup"] > 0 and out["memory_ratio"] > 0
    assert out["agree"] is True, out["mismatches"]
