"""A tiny run of benchmarks/bench_clv.py, so it keeps working (no timing is asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests_support import data_dir_or_skip

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "bench_clv.py"
CUSTOMERS = 20_000


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    """One Mercato-only run: CDNOW (when MERCATO_DATA_DIR has it) and a small population."""
    args = ["--sizes", str(CUSTOMERS), "--skip-peer", "--repeat", "1"]
    data_dir = os.environ.get("MERCATO_DATA_DIR")
    if data_dir:
        args += ["--data-dir", data_dir]
    res = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def test_bench_clv_shape_and_recovery(report: dict[str, Any]):
    assert report["benchmark"] == "clv" and report["peer"] is None
    assert report["machine"]["cpus"] >= 1
    assert report["summary_lines"]
    scale = report["scale"]
    (row,) = scale["sizes"]
    assert row["customers"] == CUSTOMERS
    assert 0 < row["repeat_buyers"] < CUSTOMERS
    assert 0 < row["distinct_frequency_recency_T"] <= CUSTOMERS
    m = row["mercato"]
    assert set(m["stages"]) == {"bgnbd_fit", "gamma_gamma_fit", "clv_12_months"}
    assert m["seconds"] >= 0 and m["peak_rss_mb"] > 0
    assert m["converged"] is True and m["clv_finite"] is True and m["clv_total"] > 0
    assert "lifetimes" not in row and "ratio_peer_over_mercato" not in row
    # the simulated parameters come back (fixed seed: deterministic, not a flaky check)
    rec = row["recovery"]
    assert set(rec["true"]) == {"r", "alpha", "a", "b", "p", "q", "v"}
    for name, z in rec["z"].items():
        assert z is not None and abs(z) < 3, (name, z, m["params"], m["standard_errors"])
    assert rec["max_abs_rel_error"] < 0.2
    assert abs(rec["rel_error"]["r"]) < 0.05 and abs(rec["rel_error"]["alpha"]) < 0.05


def test_bench_clv_cdnow_matches_published(report: dict[str, Any]):
    data_dir_or_skip("cdnow_sample.txt")
    cd = report["cdnow"]
    assert cd["customers"] == 2357 and cd["repeat_buyers"] == 946
    bg = cd["tasks"]["bgnbd_fit"]
    params = bg["params"]["mercato"]
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    assert {k: round(params[k], 3) for k in published} == published
    assert bg["converged_mercato"] is True
    assert round(bg["log_likelihood"]["mercato"], 1) == -9582.4
    assert bg["mercato_matches_published"] is True
    for task in ("summary", "bgnbd_fit", "pareto_nbd_fit", "gamma_gamma_fit", "clv_12_months"):
        assert cd["tasks"][task]["mercato"]["seconds"] >= 0
        assert "lifetimes" not in cd["tasks"][task]
