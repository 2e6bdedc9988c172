"""The warehouse: history for batch work, reached through Ibis.

The default is an embedded DuckDB file in the workspace; any URL Ibis understands for a supported
engine works the same (``postgresql://user@host:5432/db?schema=mercato``). This module is the only
place that knows which engine stores a table: modules above ``data/`` use :meth:`Warehouse.table`
and Ibis expressions, never SQL written for one engine.
"""

from __future__ import annotations

import contextlib
import io
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import pyarrow as pa
import pyarrow.csv as pacsv

from mercato.data.schema import TABLES, Table, get_table
from mercato.errors import ConfigError, DataError

STAGING_PREFIX = "mercato_staging_"
SUPPORTED = ("duckdb", "postgresql", "postgres")


class Warehouse:
    """A connection to the warehouse.

    Parameters
    ----------
    url : str
        ``duckdb:///abs/path/warehouse.duckdb``, ``duckdb://:memory:`` or
        ``postgresql://user[:password]@host:port/database[?schema=name]``.

    Examples
    --------
    >>> wh = Warehouse("duckdb://:memory:")
    >>> created = wh.ensure_tables()
    >>> wh.count("customers")
    0
    >>> wh.close()
    """

    def __init__(self, url: str, *, memory_limit: str | None = None, threads: int | None = None):
        self.url = url
        parsed = urlparse(url)
        self.engine = "postgres" if parsed.scheme in ("postgresql", "postgres") else parsed.scheme
        if parsed.scheme not in SUPPORTED:
            raise ConfigError(
                f"unsupported warehouse URL {url!r}",
                hint="use duckdb:///path/to/file.duckdb or postgresql://user@host:5432/db",
            )
        self.schema_name: str | None = None
        try:
            if self.engine == "duckdb":
                self.con = self._connect_duckdb(url, memory_limit, threads)
            else:
                self.con = self._connect_postgres(parsed)
        except ConfigError:
            raise
        except Exception as exc:  # driver errors differ per engine
            raise ConfigError(f"cannot connect to the warehouse {_redact(url)}: {exc}") from exc

    # -- connection ----------------------------------------------------------------------------

    @staticmethod
    def _connect_duckdb(url: str, memory_limit: str | None, threads: int | None):
        import ibis

        path = url[len("duckdb://") :] or ":memory:"
        config: dict[str, Any] = {}
        if memory_limit:
            config["memory_limit"] = memory_limit
        if threads:
            config["threads"] = threads
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        con = ibis.duckdb.connect(path, **config)
        con.raw_sql("SET TimeZone = 'UTC'")
        con.raw_sql("SET enable_progress_bar = false")  # Mercato shows its own progress
        return con

    def _connect_postgres(self, parsed):
        import ibis

        query = parse_qs(parsed.query)
        schema = query.get("schema", [None])[0]
        kwargs: dict[str, Any] = {
            "host": parsed.hostname or "127.0.0.1",
            "port": parsed.port or 5432,
            "user": unquote(parsed.username) if parsed.username else None,
            "password": unquote(parsed.password) if parsed.password else None,
            "database": parsed.path.lstrip("/") or None,
        }
        con = ibis.postgres.connect(**{k: v for k, v in kwargs.items() if v is not None})
        if schema:
            with con.begin() as cur:
                cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{_ident(schema)}"')
                cur.execute(f'SET search_path TO "{_ident(schema)}"')
            con.con.execute(f'SET search_path TO "{_ident(schema)}"')
            self.schema_name = schema
        con.con.execute("SET TIME ZONE 'UTC'")
        return con

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.con.disconnect()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- tables --------------------------------------------------------------------------------

    def list_tables(self) -> list[str]:
        return sorted(self.con.list_tables())

    def has_table(self, name: str) -> bool:
        return name in self.con.list_tables()

    def ensure_tables(self, names: Iterable[str] | None = None) -> list[str]:
        """Create the data model's tables that do not exist yet; return the names created."""
        created = []
        existing = set(self.con.list_tables())
        for name in names or TABLES:
            spec = get_table(name)
            if name not in existing:
                self.con.create_table(name, schema=spec.ibis_schema())
                created.append(name)
            else:
                self._check_columns(spec)
        return created

    def _check_columns(self, spec: Table) -> None:
        have = set(self.con.table(spec.name).schema().names)
        missing = [c for c in spec.column_names if c not in have]
        if missing:
            raise DataError(
                f"warehouse table {spec.name!r} lacks columns {missing} of the data model",
                hint="another version of Mercato made this warehouse; migrate or re-create it",
            )

    def table(self, name: str):
        """The Ibis table expression of ``name``."""
        if not self.has_table(name):
            if name in TABLES:
                raise DataError(
                    f"the warehouse has no table {name!r} yet",
                    hint="run `mercato init` and then `mercato ingest` or `mercato datasets load`",
                )
            raise DataError(f"the warehouse has no table {name!r}")
        return self.con.table(name)

    def count(self, name: str) -> int:
        return int(self.table(name).count().execute())

    def counts(self) -> dict[str, int]:
        return {name: self.count(name) for name in TABLES if self.has_table(name)}

    def drop_table(self, name: str) -> None:
        qualified = (
            f'"{_ident(self.schema_name)}"."{_ident(name)}"'
            if self.schema_name
            else (f'"{_ident(name)}"')
        )
        self.con.raw_sql(f"DROP TABLE IF EXISTS {qualified}")

    def create_raw_table(self, name: str, data: pa.Table, *, overwrite: bool = True) -> int:
        """Store a table outside the data model (a data set's own columns), replacing it.

        The old table is dropped and the new one written in one transaction.
        """
        with self.transaction():
            if overwrite and self.has_table(name):
                self.drop_table(name)
            self.con.create_table(name, schema=_ibis_schema_from_arrow(data.schema))
            self.append_arrow(name, [data])
        return data.num_rows

    def create_table_from(self, name: str, expr: Any) -> None:
        """Write the result of an Ibis expression as table ``name``, replacing it; in the engine."""
        from mercato.data.schema import TABLES

        if name in TABLES:
            raise DataError(f"{name!r} is a data-model table: derived results may not replace it")
        self.con.create_table(name, expr, overwrite=True)

    # -- bulk loading --------------------------------------------------------------------------

    def create_staging(self, spec: Table) -> str:
        """A new empty staging table with the columns of ``spec`` plus ``_line`` (source line)."""
        import ibis

        self.drop_staging(older_than_hours=24.0)
        name = f"{STAGING_PREFIX}{spec.name}_{int(time.time())}_{uuid.uuid4().hex[:8]}"
        schema = ibis.schema({**dict(spec.ibis_schema().items()), "_line": "int64"})
        self.con.create_table(name, schema=schema)
        return name

    def drop_staging(self, older_than_hours: float | None = None) -> list[str]:
        """Drop staging tables left by interrupted loads (all, or those older than the limit).

        A load in progress elsewhere keeps its young staging table.
        """
        dropped = []
        now = time.time()
        for name in self.con.list_tables():
            if not name.startswith(STAGING_PREFIX):
                continue
            if older_than_hours is not None:
                parts = name[len(STAGING_PREFIX) :].rsplit("_", 2)
                try:
                    created = int(parts[-2])
                except (IndexError, ValueError):
                    created = 0  # an older naming scheme: treat as old
                if now - created < older_than_hours * 3600:
                    continue
            self.drop_table(name)
            dropped.append(name)
        return dropped

    def append_arrow(self, name: str, batches: Iterable[pa.RecordBatch | pa.Table]) -> int:
        """Append Arrow data to an existing table quickly (DuckDB: zero copy; PostgreSQL: COPY)."""
        total = 0
        for batch in batches:
            if batch.num_rows == 0:
                continue
            total += batch.num_rows
            try:
                if self.engine == "duckdb":
                    raw = self.con.con
                    view = f"mercato_arrow_{uuid.uuid4().hex[:8]}"
                    raw.register(view, batch)
                    try:
                        cols = ", ".join(_quote(c) for c in batch.schema.names)
                        raw.execute(
                            f"INSERT INTO {_quote(name)} ({cols}) SELECT {cols} FROM {view}"
                        )
                    finally:
                        raw.unregister(view)
                else:
                    self._copy_postgres(name, batch)
            except Exception as exc:
                if _is_driver_error(exc):
                    raise DataError(
                        f"the warehouse ({self.engine}) refused rows for table {name!r}: "
                        f"{str(exc).splitlines()[0]}"
                    ) from exc
                raise
        return total

    def _copy_postgres(self, name: str, batch: pa.RecordBatch | pa.Table) -> None:
        buf = io.BytesIO()
        pacsv.write_csv(batch, buf, write_options=pacsv.WriteOptions(include_header=False))
        cols = ", ".join(_quote(c) for c in batch.schema.names)
        target = f"{_quote(self.schema_name)}.{_quote(name)}" if self.schema_name else _quote(name)
        raw = self.con.con
        in_tx = raw.info.transaction_status != 0  # psycopg: 0 == IDLE
        ctx = contextlib.nullcontext() if in_tx else raw.transaction()
        with ctx, raw.cursor() as cur:
            with cur.copy(f"COPY {target} ({cols}) FROM STDIN (FORMAT csv)") as copy:
                copy.write(buf.getvalue())

    def insert_new(self, target: str, source: Any, keys: tuple[str, ...]) -> int:
        """Insert rows of ``source`` (a table name or expression) whose ``keys`` are new.

        One INSERT ... SELECT statement: it either lands whole or not at all.
        """
        spec = get_table(target)
        if self.engine == "postgres":
            # concurrent loads of one table take turns, so the anti-join sees the other's rows
            self.con.con.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"mercato:{target}",)
            )
        tgt = self.con.table(target)
        src = self.con.table(source) if isinstance(source, str) else source
        before = int(tgt.count().execute())
        new = src.anti_join(tgt, list(keys)).select(spec.column_names)
        self.con.insert(target, new)
        return int(self.con.table(target).count().execute()) - before

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside lands together or not at all."""
        if self.engine == "duckdb":
            raw = self.con.con
            raw.execute("BEGIN TRANSACTION")
            try:
                yield
            except BaseException:
                raw.execute("ROLLBACK")
                raise
            raw.execute("COMMIT")
        else:
            with self.con.con.transaction():
                yield

    def describe(self) -> dict[str, Any]:
        return {"engine": self.engine, "url": _redact(self.url), "schema": self.schema_name}


def _quote(name: str | None) -> str:
    """A quoted SQL identifier (double quotes doubled)."""
    return '"' + str(name).replace('"', '""') + '"'


def _is_driver_error(exc: Exception) -> bool:
    mod = type(exc).__module__ or ""
    return mod.startswith(("psycopg", "duckdb", "_duckdb"))


def _ident(name: str | None) -> str:
    if not name or not all(ch.isalnum() or ch == "_" for ch in name):
        raise ConfigError(f"invalid schema or table name {name!r}: use letters, digits and _")
    return name


def _redact(url: str) -> str:
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(f":{parsed.password}@", ":***@")
    return url


def _ibis_schema_from_arrow(schema: pa.Schema):
    import ibis

    return ibis.Schema.from_pyarrow(schema)


def connect(settings: Any) -> Warehouse:
    """Open the warehouse named by ``settings`` (a :class:`mercato.config.Settings`)."""
    return Warehouse(
        settings.warehouse_url_resolved(),
        memory_limit=settings.duckdb_memory_limit,
        threads=settings.duckdb_threads,
    )
