"""Shared fixtures: a seeded rng, a temporary workspace, and the warehouse on both engines."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from mercato.data.warehouse import Warehouse
from mercato.workspace import Workspace
from tests_support import PG_URL, pg_problem, skip_or_fail


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace.init(tmp_path / "ws")


@pytest.fixture
def pg_url():
    """A PostgreSQL warehouse URL in a schema of its own, dropped afterwards."""
    problem = pg_problem()
    if problem:
        skip_or_fail(problem)
    schema = f"mercato_test_{uuid.uuid4().hex[:10]}"
    yield f"{PG_URL}?schema={schema}"
    import psycopg

    with psycopg.connect(PG_URL.split("?")[0], autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse(request, tmp_path: Path):
    """The warehouse on each engine: an embedded DuckDB file and the real PostgreSQL server."""
    if request.param == "duckdb":
        wh = Warehouse(f"duckdb://{tmp_path / 'wh.duckdb'}")
    else:
        wh = Warehouse(request.getfixturevalue("pg_url"))
    wh.ensure_tables()
    yield wh
    wh.close()
