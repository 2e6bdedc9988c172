"""The workspace: one folder holding one deployment.

``mercato.toml`` (settings; never secrets), ``warehouse.duckdb`` (the embedded warehouse),
``online.db`` (the online store: SQLite in WAL mode), ``models/``, ``reports/``, ``audit/`` and
``rejects/``. Everything is created readable by the owner only.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mercato import __version__
from mercato.config import Settings
from mercato.data.warehouse import Warehouse, connect
from mercato.errors import WorkspaceError

SUBDIRS = ("models", "reports", "audit", "rejects")
OWNER_DIR = 0o700
OWNER_FILE = 0o600

TOML_TEMPLATE = """\
# Mercato workspace settings. Secrets (passwords, keys) never go here: use MERCATO_* environment
# variables or a secret file.
mercato_version = "{version}"

[warehouse]
# Ibis URL of the warehouse. Default: the embedded DuckDB file beside this one.
# url = "postgresql://user@127.0.0.1:5432/mercato?schema=mercato"
{url_line}

[ingest]
# batch_rows = 250000
# max_field_bytes = 1048576
"""


@dataclass
class Workspace:
    """An initialised workspace folder.

    Examples
    --------
    >>> import tempfile
    >>> ws = Workspace.init(tempfile.mkdtemp() + "/ws")
    >>> sorted(p.name for p in ws.path.iterdir())  # doctest: +NORMALIZE_WHITESPACE
    ['audit', 'mercato.toml', 'models', 'online.db', 'rejects', 'reports', 'warehouse.duckdb']
    """

    path: Path
    settings: Settings

    @classmethod
    def init(cls, path: str | Path | None = None, *, warehouse_url: str | None = None) -> Workspace:
        """Create (or complete) the workspace at ``path``; existing data is kept."""
        if warehouse_url:
            _check_url_has_no_secret(warehouse_url)
        settings = Settings.load(path)
        root = settings.workspace
        if root.exists() and not root.is_dir():
            raise WorkspaceError(f"{root} exists and is not a folder")
        root.mkdir(parents=True, exist_ok=True, mode=OWNER_DIR)
        os.chmod(root, OWNER_DIR)
        for sub in SUBDIRS:
            (root / sub).mkdir(exist_ok=True, mode=OWNER_DIR)
            os.chmod(root / sub, OWNER_DIR)
        toml = root / "mercato.toml"
        if not toml.exists():
            url_line = f"url = {json.dumps(warehouse_url)}" if warehouse_url else ""
            fd = os.open(toml, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OWNER_FILE)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(TOML_TEMPLATE.format(version=__version__, url_line=url_line))
        elif warehouse_url:
            current = Settings.load(root).warehouse_url_resolved()
            if current != warehouse_url:
                raise WorkspaceError(
                    f"{toml} already names another warehouse ({current})",
                    hint="edit [warehouse] url in mercato.toml, or use another --workspace",
                )
        os.chmod(toml, OWNER_FILE)
        online = root / "online.db"
        con = sqlite3.connect(online)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            con.execute(
                "CREATE TABLE IF NOT EXISTS mercato_meta (key TEXT PRIMARY KEY, value TEXT)"
            )
            con.execute("INSERT OR IGNORE INTO mercato_meta VALUES ('schema_version', '1')")
            con.commit()
        finally:
            con.close()
        ws = cls(root, Settings.load(root, warehouse_url=warehouse_url))
        with ws.warehouse() as wh:
            wh.ensure_tables()
        ws.secure()
        return ws

    @classmethod
    def open(cls, path: str | Path | None = None, **overrides: Any) -> Workspace:
        """An existing workspace; a clear error naming ``mercato init`` if there is none."""
        settings = Settings.load(path, **overrides)
        root = settings.workspace
        if not (root / "mercato.toml").exists():
            raise WorkspaceError(
                f"no Mercato workspace at {root}",
                hint=f"create it with `mercato init --workspace {root}` (or set MERCATO_HOME)",
            )
        return cls(root, settings)

    def warehouse(self) -> Warehouse:
        return connect(self.settings)

    def secure(self) -> None:
        """Make every file and folder in the workspace readable by the owner only."""
        for dirpath, dirnames, filenames in os.walk(self.path):
            for d in dirnames:
                os.chmod(os.path.join(dirpath, d), OWNER_DIR)
            for f in filenames:
                p = os.path.join(dirpath, f)
                if not os.path.islink(p):
                    os.chmod(p, OWNER_FILE)
        os.chmod(self.path, OWNER_DIR)

    def describe(self) -> dict[str, Any]:
        mode = stat.S_IMODE(self.path.stat().st_mode)
        return {
            "workspace": str(self.path.resolve()),
            "mode": oct(mode),
            "warehouse": self.settings.warehouse_url_resolved().split("?")[0]
            if "@" not in self.settings.warehouse_url_resolved()
            else "(configured URL)",
            "folders": list(SUBDIRS),
        }


def _check_url_has_no_secret(url: str) -> None:
    from urllib.parse import urlparse

    if urlparse(url).password:
        raise WorkspaceError(
            "the warehouse URL holds a password, and secrets never go in mercato.toml",
            hint="put the URL in the MERCATO_WAREHOUSE_URL environment variable (or use a "
            ".pgpass file and a URL without the password)",
        )


def log_load(ws: Workspace, kind: str, payload: dict[str, Any]) -> None:
    """Append one load (ingest, data set, synthetic shop) to ``audit/loads.jsonl``."""
    import json
    from datetime import UTC, datetime

    record = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "kind": kind, **payload}
    path = ws.path / "audit" / "loads.jsonl"
    path.parent.mkdir(exist_ok=True, mode=OWNER_DIR)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, default=str) + "\n")
    os.chmod(path, OWNER_FILE)


def read_loads(ws: Workspace, limit: int = 200) -> list[dict[str, Any]]:
    """The most recent loads recorded by :func:`log_load`, newest last."""
    import json

    path = ws.path / "audit" / "loads.jsonl"
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()[-limit:]
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
