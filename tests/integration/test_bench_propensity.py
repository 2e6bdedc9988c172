"""A tiny run of benchmarks/bench_propensity.py, so it keeps working (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "bench_propensity.py"


def test_bench_propensity_small_run():
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--rows", "4000", "--time-budget", "3"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["benchmark"] == "propensity" and out["rows"] == 4000 and out["features"] == 60
    m = out["mercato"]
    assert m["max_explanation_error"] < 1e-6 and " = " in m["example_reason"]
    # the signal is real: both beat chance, neither beats the true probabilities by much
    for who in ("mercato", "sklearn_hgb_defaults"):
        assert 0.55 < out[who]["test_auc"] <= out["true_probability_auc"] + 0.02
    assert set(out["meets_claim"]) == {"train_under_180_s", "score_with_reasons_under_20_s"}
