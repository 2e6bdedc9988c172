from __future__ import annotations

import pytest

from mercato.config import Settings
from mercato.errors import ConfigError


def test_defaults_resolve_to_workspace_duckdb(tmp_path, monkeypatch):
    monkeypatch.delenv("MERCATO_HOME", raising=False)
    monkeypatch.delenv("MERCATO_WAREHOUSE_URL", raising=False)
    s = Settings.load(tmp_path / "ws")
    assert s.workspace == tmp_path / "ws"
    assert s.warehouse_url_resolved() == f"duckdb://{(tmp_path / 'ws' / 'warehouse.duckdb')}"


def test_precedence_file_env_override(tmp_path, monkeypatch):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "mercato.toml").write_text(
        'mercato_version = "0.1.0"\n[warehouse]\nurl = "duckdb:///from/file"\n'
        "[ingest]\nbatch_rows = 5000\n"
    )
    monkeypatch.delenv("MERCATO_WAREHOUSE_URL", raising=False)
    assert Settings.load(ws).warehouse_url == "duckdb:///from/file"
    assert Settings.load(ws).ingest_batch_rows == 5000
    monkeypatch.setenv("MERCATO_WAREHOUSE_URL", "duckdb:///from/env")
    assert Settings.load(ws).warehouse_url == "duckdb:///from/env"
    assert Settings.load(ws, warehouse_url="duckdb:///kw").warehouse_url == "duckdb:///kw"


def test_home_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MERCATO_HOME", str(tmp_path / "home"))
    assert Settings.load().workspace == tmp_path / "home"


def test_bad_toml_and_unknown_keys(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "mercato.toml").write_text("[warehouse\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Settings.load(ws)
    (ws / "mercato.toml").write_text("[warehouse]\nulr = 'x'\n")
    with pytest.raises(ConfigError, match="unknown settings: warehouse_ulr"):
        Settings.load(ws)
    (ws / "mercato.toml").write_text("[ingest]\nbatch_rows = 3\n")
    with pytest.raises(ConfigError, match="ingest_batch_rows"):
        Settings.load(ws)


def test_public_surface_resolves():
    import mercato

    assert not [name for name in mercato.__all__ if not hasattr(mercato, name)]
    with pytest.raises(AttributeError):
        mercato.not_a_thing  # noqa: B018
