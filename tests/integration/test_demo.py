"""`mercato demo` end to end on a small shop, twice (the second run adds nothing)."""

from __future__ import annotations

from pathlib import Path

from mercato.demo import STEPS, run_demo


def test_demo_runs_every_step_and_is_idempotent(tmp_path):
    ws = tmp_path / "demo"
    first = run_demo(ws, customers=500, days=90, seed=2)
    assert list(first["steps"]) == [name for name, _ in STEPS]
    loaded = first["steps"]["load it into the warehouse"]["inserted"]
    assert loaded["customers"] == 500 and loaded["events"] > 1000 and loaded["orders"] > 0
    rows = {t["table"]: t["rows"] for t in first["steps"]["summarise the tables"]["tables"]}
    assert rows["customers"] == 500 and rows["events"] == loaded["events"]
    report = Path(first["steps"]["write the report"]["report"])
    html = report.read_text()
    assert f"{rows['events']:,}" in html
    rec = first["steps"][next(n for n, _ in STEPS if n.startswith("recommendations"))]
    if "skipped" not in rec:  # a 500-customer shop may be too small: then it says why
        assert rec["example"] and "Recommendations" in html
        assert rec["registry"]["name"] == "recommender-ease"
        assert f"model registry: recommender-ease v{rec['registry']['version']}" in html
        assert len(rec["visitor"]) == 3 and len(rec["example_diverse"]) == 3
        if rec["visitor_segment"]:
            assert "popular in your segment" in rec["visitor"][0]["reason"]
    second = run_demo(ws, customers=500, days=90, seed=2)
    again = second["steps"]["load it into the warehouse"]
    assert sum(again["inserted"].values()) == 0
    assert again["already_present"] == sum(loaded.values())
    assert (ws / "warehouse.duckdb").stat().st_mode & 0o777 == 0o600
