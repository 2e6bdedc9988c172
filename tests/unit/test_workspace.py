from __future__ import annotations

import os
import sqlite3
import stat

import pytest

from mercato.data.schema import TABLES
from mercato.errors import WorkspaceError
from mercato.workspace import Workspace, log_load, read_loads


def test_init_creates_owner_only_layout(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    names = sorted(p.name for p in ws.path.iterdir())
    assert names == [
        "audit",
        "mercato.toml",
        "models",
        "online.db",
        "rejects",
        "reports",
        "warehouse.duckdb",
    ]
    for dirpath, dirnames, filenames in os.walk(ws.path):
        for d in dirnames:
            assert stat.S_IMODE(os.stat(os.path.join(dirpath, d)).st_mode) == 0o700
        for f in filenames:
            assert stat.S_IMODE(os.stat(os.path.join(dirpath, f)).st_mode) == 0o600
    assert stat.S_IMODE(ws.path.stat().st_mode) == 0o700
    con = sqlite3.connect(ws.path / "online.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with ws.warehouse() as wh:
        assert wh.counts() == dict.fromkeys(TABLES, 0)


def test_init_is_idempotent_and_keeps_data(tmp_path):
    import pandas as pd

    from mercato.data.ingest import ingest_frame

    ws = Workspace.init(tmp_path / "ws")
    with ws.warehouse() as wh:
        ingest_frame(wh, "products", pd.DataFrame({"product_id": ["P1"]}))
    ws2 = Workspace.init(tmp_path / "ws")
    with ws2.warehouse() as wh:
        assert wh.count("products") == 1


def test_open_missing_workspace_says_what_to_run(tmp_path):
    with pytest.raises(WorkspaceError) as err:
        Workspace.open(tmp_path / "nowhere")
    assert "mercato init" in err.value.hint


def test_init_on_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(WorkspaceError, match="not a folder"):
        Workspace.init(tmp_path / "f")


def test_load_log_round_trip(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    log_load(ws, "ingest", {"table": "products", "inserted": 3})
    (ws.path / "audit" / "loads.jsonl").open("a").write("not json\n")
    log_load(ws, "ingest", {"table": "events", "inserted": 5})
    assert [r["table"] for r in read_loads(ws)] == ["products", "events"]
    assert stat.S_IMODE((ws.path / "audit" / "loads.jsonl").stat().st_mode) == 0o600
