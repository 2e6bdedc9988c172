"""The CLI end to end on a temporary workspace: exit codes, --json, messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mercato.cli.main import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def run_json(capsys, *args: str) -> tuple[int, dict]:
    code, out, _ = run(capsys, *args, "--json")
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, f"--json must print exactly one line, got: {out!r}"
    return code, json.loads(lines[0])


def test_init_json_and_tables(capsys, tmp_path):
    ws = tmp_path / "ws"
    code, payload = run_json(capsys, "init", "--workspace", str(ws))
    assert code == 0 and payload["ok"] and payload["mode"] == "0o700"
    code, payload = run_json(capsys, "tables", "--workspace", str(ws))
    assert code == 0
    assert {t["table"]: t["rows"] for t in payload["tables"]}["events"] == 0


def test_missing_workspace_is_a_clear_error(capsys, tmp_path):
    code, out, err = run(capsys, "tables", "--workspace", str(tmp_path / "none"))
    assert code == 1 and "no Mercato workspace" in err and "mercato init" in err
    assert "Traceback" not in err
    code, payload = run_json(capsys, "tables", "--workspace", str(tmp_path / "none"))
    assert code == 1 and payload["ok"] is False and payload["error"] == "WorkspaceError"


def test_ingest_good_bad_and_again(capsys, tmp_path):
    ws = tmp_path / "ws"
    run(capsys, "init", "-w", str(ws), "--quiet")
    good = tmp_path / "products.csv"
    good.write_text("product_id,name,price\nP1,Mug,4.5\nP2,Pot,10\n")
    code, payload = run_json(capsys, "ingest", "products", str(good), "-w", str(ws), "--check")
    assert code == 0 and payload["inserted"] == 2 and payload["dry_run"] is True
    code, payload = run_json(capsys, "tables", "-w", str(ws))
    assert {t["table"]: t["rows"] for t in payload["tables"]}["products"] == 0  # checked only
    code, payload = run_json(capsys, "ingest", "products", str(good), "-w", str(ws))
    assert code == 0 and payload["inserted"] == 2
    code, payload = run_json(capsys, "ingest", "products", str(good), "-w", str(ws))
    assert code == 0 and payload["inserted"] == 0 and payload["already_present"] == 2

    bad = tmp_path / "bad.csv"
    bad.write_text("product_id,name,price\nP3,Cup,1\nP4,Jar,abc\n")
    code, out, err = run(capsys, "ingest", "products", str(bad), "-w", str(ws))
    assert code == 1
    assert "bad.csv, line 3, column 'price'" in err and "abc" in err
    code, payload = run_json(capsys, "ingest", "products", str(bad), "-w", str(ws))
    assert payload["ok"] is False and payload["line"] == 3 and payload["column"] == "price"
    assert payload["problems"][0]["value"] == "abc"

    code, payload = run_json(
        capsys, "ingest", "products", str(bad), "-w", str(ws), "--skip-bad-rows"
    )
    assert code == 0 and payload["inserted"] == 1 and payload["rejected"] == 1
    rejects = Path(payload["rejects_file"])
    assert rejects.parent == ws / "rejects" and "abc" in rejects.read_text()
    assert oct(rejects.stat().st_mode & 0o777) == "0o600"

    code, payload = run_json(capsys, "tables", "-w", str(ws))
    assert {t["table"]: t["rows"] for t in payload["tables"]}["products"] == 3


def test_unknown_table_and_usage_errors(capsys, tmp_path):
    ws = tmp_path / "ws"
    run(capsys, "init", "-w", str(ws), "--quiet")
    f = tmp_path / "x.csv"
    f.write_text("a\n1\n")
    code, out, err = run(capsys, "ingest", "nope", str(f), "-w", str(ws))
    assert code == 1 and "unknown table 'nope'" in err
    code, out, err = run(capsys, "ingest")
    assert code == 2


def test_schema_command(capsys):
    code, payload = run_json(capsys, "schema", "customers")
    assert code == 0
    cols = {c["name"]: c for c in payload["tables"][0]["columns"]}
    assert cols["email"]["pii"] and cols["gender"]["sensitive"]


def test_synth_load_and_report(capsys, tmp_path):
    ws = tmp_path / "ws"
    run(capsys, "init", "-w", str(ws), "--quiet")
    shop = tmp_path / "shop"
    code, payload = run_json(
        capsys,
        "synth",
        "--customers",
        "400",
        "--days",
        "60",
        "--seed",
        "3",
        "--out",
        str(shop),
        "--load",
        "-w",
        str(ws),
    )
    assert code == 0 and payload["customers"] == 400
    loaded = {r["table"]: r["inserted"] for r in payload["loaded"]}
    assert loaded["customers"] == 400 and loaded["events"] == payload["events"]
    assert (shop / "truth").is_dir()
    code, payload = run_json(capsys, "report", "-w", str(ws))
    html = Path(payload["report"]).read_text()
    assert "Data in the warehouse" in html and "Loads and data quality" in html


def test_synth_bad_parameter(capsys, tmp_path):
    code, out, err = run(capsys, "synth", "--customers", "0", "--out", str(tmp_path / "s"))
    assert code == 1 and "customers" in err


def test_datasets_list_and_missing_file(capsys, tmp_path):
    code, payload = run_json(capsys, "datasets", "list", "--data-dir", str(tmp_path))
    assert code == 0
    names = {d["name"] for d in payload["datasets"]}
    assert {
        "online-retail",
        "cdnow",
        "cdnow-sample",
        "hillstrom",
        "bank-marketing",
        "telco-churn",
        "attribution-paths",
    } <= names
    assert not any(d["present"] for d in payload["datasets"])
    ws = tmp_path / "ws"
    run(capsys, "init", "-w", str(ws), "--quiet")
    code, out, err = run(
        capsys, "datasets", "load", "hillstrom", "--data-dir", str(tmp_path), "-w", str(ws)
    )
    assert code == 1 and "hillstrom.csv.gz" in err and "http" in err


def test_console_script_runs(tmp_path):
    exe = Path(sys.executable).with_name("mercato")
    if not exe.exists():
        pytest.skip("the mercato console script is not installed in this environment")
    res = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=False)
    assert res.returncode == 0 and res.stdout.startswith("mercato ")


def test_report_escapes_data(capsys, tmp_path):
    ws = tmp_path / "ws"
    run(capsys, "init", "-w", str(ws), "--quiet")
    f = tmp_path / "<img src=x onerror=alert(1)>.csv"
    f.write_text("product_id\nP1\n")
    run(capsys, "ingest", "products", str(f), "-w", str(ws), "--quiet")
    code, payload = run_json(capsys, "report", "-w", str(ws))
    html = Path(payload["report"]).read_text()
    assert "<img src=x onerror=alert(1)>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;.csv" in html


@pytest.mark.realdata
def test_dataset_load_shows_in_report(capsys, tmp_path):
    from tests_support import data_dir_or_skip

    data = data_dir_or_skip("cdnow_sample.txt")
    ws = tmp_path / "ws"
    run(capsys, "init", "-w", str(ws), "--quiet")
    code, payload = run_json(
        capsys, "datasets", "load", "cdnow-sample", "--data-dir", str(data), "-w", str(ws)
    )
    assert code == 0 and payload["tables"]["orders"]["inserted"] == 6_919
    code, payload = run_json(capsys, "report", "-w", str(ws))
    html = Path(payload["report"]).read_text()
    assert ">dataset</td>" in html and "6,919" in html


def test_ordinary_mistakes_give_one_json_error(capsys, tmp_path, monkeypatch):
    ws = tmp_path / "ws"
    run(capsys, "init", "-w", str(ws), "--quiet")
    f = tmp_path / "p.csv"
    f.write_text("product_id,name\nP1,Mug\n")
    cases = [
        (["ingest", "products", str(f), "--encoding", "latin-9x"], "unknown text encoding"),
        (["ingest", "products", str(f), "--delimiter", "ab"], "invalid delimiter"),
        (["ingest", "products", str(f), "--mapping", str(tmp_path)], "mapping"),
        (["synth", "--customers", "10", "--days", "30", "--out", "/proc/nope"], "/proc/nope"),
    ]
    for args, needle in cases:
        code, payload = run_json(capsys, *args, "-w", str(ws))
        assert code == 1 and payload["ok"] is False, args
        assert needle in payload["message"], (args, payload)
    monkeypatch.setenv("MERCATO_INGEST_BATCH_ROWS", "abc")
    code, payload = run_json(capsys, "tables", "-w", str(ws))
    assert code == 1 and "ingest_batch_rows" in payload["message"]


def test_rejects_go_to_a_new_folder(capsys, tmp_path):
    ws = tmp_path / "ws"
    run(capsys, "init", "-w", str(ws), "--quiet")
    f = tmp_path / "p.csv"
    f.write_text("product_id,price\nP1,x\n")
    target = tmp_path / "new" / "folder" / "rej.csv"
    code, payload = run_json(
        capsys,
        "ingest",
        "products",
        str(f),
        "--skip-bad-rows",
        "--rejects",
        str(target),
        "-w",
        str(ws),
    )
    assert code == 0 and target.exists()


def test_init_refuses_secrets_and_a_second_warehouse(capsys, tmp_path):
    ws = tmp_path / "ws"
    code, payload = run_json(
        capsys, "init", "-w", str(ws), "--warehouse-url", "postgresql://u:s3cret@127.0.0.1/db"
    )
    assert code == 1 and "password" in payload["message"]
    assert not ws.exists()  # refused before anything was written
    run(capsys, "init", "-w", str(ws), "--quiet")
    code, payload = run_json(
        capsys, "init", "-w", str(ws), "--warehouse-url", "duckdb:///elsewhere.duckdb"
    )
    assert code == 1 and "already names another warehouse" in payload["message"]


def test_analyze_commands_on_a_synthetic_shop(capsys, tmp_path):
    ws = tmp_path / "ws"
    run(capsys, "init", "-w", str(ws), "--quiet")
    shop = tmp_path / "shop"
    run(
        capsys,
        "synth",
        "--customers",
        "600",
        "--days",
        "120",
        "--seed",
        "5",
        "--out",
        str(shop),
        "--load",
        "-w",
        str(ws),
        "--quiet",
    )
    code, payload = run_json(capsys, "analyze", "rfm", "-w", str(ws))
    assert (
        code == 0
        and sum(r["customers"] for r in payload["rows"]) == payload["summary"]["customers"]
    )
    code, payload = run_json(capsys, "analyze", "cohorts", "-w", str(ws))
    assert code == 0 and payload["summary"]["cohorts"] >= 4
    code, payload = run_json(capsys, "analyze", "kpis", "--by", "campaign", "-w", str(ws))
    assert code == 0 and payload["summary"]["campaigns"] > 0
    code, payload = run_json(
        capsys, "analyze", "funnel", "view,add_to_cart,purchase", "--by", "segment", "-w", str(ws)
    )
    assert code == 0 and payload["summary"]["entered"] > 0
    code, payload = run_json(
        capsys, "analyze", "attribution", "-w", str(ws), "--truth", str(shop / "truth")
    )
    assert code == 0 and len(payload["truth"]["channels"]) == 6
    assert sum(r["markov"] for r in payload["rows"]) == pytest.approx(
        payload["summary"]["total_conversions"]
    )
    code, payload = run_json(capsys, "analyze", "funnel", "view", "-w", str(ws))
    assert code == 1 and "at least two steps" in payload["message"]
    code, payload = run_json(capsys, "analyze", "profile", "-w", str(ws))
    assert code == 0 and payload["summary"]["rows"]["customers"] == 600
    code, payload = run_json(capsys, "analyze", "clusters", "--k-max", "4", "-w", str(ws))
    assert code == 0 and 2 <= payload["summary"]["k"] <= 4
    assert all(r["description"] for r in payload["rows"])


@pytest.mark.realdata
def test_analyze_attribution_from_file_matches_reference(capsys):
    from tests_support import data_dir_or_skip

    f = data_dir_or_skip("attribution_paths.csv") / "attribution_paths.csv"
    code, payload = run_json(capsys, "analyze", "attribution", "--from", str(f))
    assert code == 0
    markov = {r["channel"]: round(r["markov"], 2) for r in payload["rows"]}
    assert markov["alpha"] == 5344.95 and markov["epsilon"] == 599.57
