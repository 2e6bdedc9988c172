"""Helpers shared by tests: skip with a reason, or fail in CI where nothing may be skipped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PG_URL = os.environ.get("MERCATO_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_ALL = os.environ.get("MERCATO_TEST_REQUIRE_ALL") == "1"


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason``; in CI (MERCATO_TEST_REQUIRE_ALL=1) a missing service fails."""
    if REQUIRE_ALL:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


_PG_PROBLEM: list[str | None] = []


def pg_problem() -> str | None:
    """Why PostgreSQL can't be used, or None when it can (probed once per session)."""
    if not _PG_PROBLEM:
        try:
            import psycopg

            with psycopg.connect(PG_URL.split("?")[0], connect_timeout=3):
                _PG_PROBLEM.append(None)
        except Exception as exc:  # any reason the server can't be used
            _PG_PROBLEM.append(f"PostgreSQL at {PG_URL} is not reachable: {exc}")
    return _PG_PROBLEM[0]


def data_dir_or_skip(*files: str) -> Path:
    """The public data sets folder holding ``files``, or skip (fail in CI) saying why."""
    root = os.environ.get("MERCATO_DATA_DIR")
    if not root:
        skip_or_fail("MERCATO_DATA_DIR is not set (point it at the public data sets folder)")
    for name in files:
        if not (Path(root) / name).exists():
            skip_or_fail(f"{Path(root) / name} is missing (SOURCES.md says where to get it)")
    return Path(root)
