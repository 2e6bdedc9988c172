"""A tiny run of every benchmark script, so they keep working (no timing is asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests_support import data_dir_or_skip

BENCH = Path(__file__).parents[2] / "benchmarks"


def bench(script: str, *args: str, env: dict | None = None) -> dict:
    res = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_bench_ingest_tiny():
    out = bench("bench_ingest.py", "--rows", "3000")
    assert out["mercato"]["rows_in_table"] == out["pandas"]["rows_in_table"] == 3000
    assert out["time_ratio_pandas_over_mercato"] > 0


def test_bench_synth_tiny():
    out = bench("bench_synth.py", "--customers", "300", "--days", "30")
    assert out["mercato"]["customers"] == 300 and out["mercato"]["events"] > 0


@pytest.mark.realdata
@pytest.mark.slow
def test_bench_online_retail():
    data_dir = data_dir_or_skip("online_retail.csv.gz")
    out = bench("bench_online_retail.py", "--data-dir", str(data_dir))
    assert out["mercato"]["counts"]["customers"] == 4372
    assert out["pandas"]["customers"] == 4372


def test_bench_attribution_tiny():
    out = bench("bench_attribution.py", "--paths", "2000", "--skip-peer")
    g = out["generated"]
    assert g["markov_only_equals_all_models"] is True
    assert g["mercato_markov"]["seconds"] >= 0
