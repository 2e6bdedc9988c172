"""Ingestion: files and frames into the warehouse, validated, atomic and idempotent.

A load runs in two phases:

1. **stage**: the source is read as a stream of Arrow batches (CSV of any delimiter, quoted fields,
   gzip; Parquet; a DataFrame or Arrow table), columns are renamed by the mapping, every value is
   parsed and checked against the data model (:mod:`mercato.data.schema`) inside an in-process
   DuckDB, and the good rows are appended to a staging table in the warehouse. Nothing is held in
   memory beyond one batch, so a 10M-row file streams.
2. **commit**: duplicate keys inside the source are found in the staging table, then one
   ``INSERT ... SELECT`` per table adds the rows whose key is not in the warehouse yet, all inside
   one transaction. Re-ingesting the same file adds nothing.

By default a source with any bad row is rejected whole and the warehouse is left unchanged; the
error names the file, line, column, value and what was expected. With ``skip_bad_rows=True`` bad
rows go to a rejects CSV with their reasons (cells that a spreadsheet would run as a formula are
escaped there) and the rest is loaded.
"""

from __future__ import annotations

import abc
import contextlib
import csv
import gzip
import io
import os
import time
import tomllib
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mercato.data.schema import Column, Table, get_table
from mercato.data.warehouse import Warehouse
from mercato.errors import DataError

Progress = Callable[[int, int], None]  # (units done, units total)

TRUE_WORDS = ("true", "t", "1", "yes", "y")
FALSE_WORDS = ("false", "f", "0", "no", "n")
EXPECTED = {
    "string": "text",
    "int64": "a whole number",
    "float64": "a number",
    "bool": "true/false (also 1/0, yes/no)",
    "timestamp": "a date-time such as 2024-05-31 14:05:00 or 2024-05-31T14:05:00+02:00",
    "json": "a JSON object or array",
}
FORMULA_START = r"^[=+\-@\t\r]"


# -- mapping ---------------------------------------------------------------------------------


@dataclass
class Mapping:
    """How a source's columns become the data model's.

    A mapping file (TOML)::

        [columns]          # source name = model name
        InvoiceNo = "order_id"
        [formats]          # model column = strptime format, for dates not in ISO 8601
        ts = "%m/%d/%Y %H:%M"
        [defaults]         # model column = constant for a column the source lacks
        currency = "GBP"
        [csv]
        delimiter = ";"
        encoding = "latin-1"
        [options]
        extra = "ignore"   # what to do with source columns the model lacks: error | ignore
    """

    columns: dict[str, str] = field(default_factory=dict)
    formats: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    delimiter: str | None = None
    encoding: str | None = None
    extra: str = "error"

    @classmethod
    def from_file(cls, path: str | Path) -> Mapping:
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError("mapping file not found", file=str(path)) from None
        except OSError as exc:
            raise DataError(f"cannot read the mapping file: {exc}", file=str(path)) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"not a valid TOML mapping: {exc}", file=str(path)) from None
        known = {"columns", "formats", "defaults", "csv", "options"}
        unknown = set(raw) - known
        if unknown:
            raise DataError(
                f"unknown sections {sorted(unknown)} in the mapping",
                file=str(path),
                expected=f"sections among {sorted(known)}",
            )
        csv_opts = raw.get("csv", {})
        opts = raw.get("options", {})
        return cls(
            columns={str(k): str(v) for k, v in raw.get("columns", {}).items()},
            formats={str(k): str(v) for k, v in raw.get("formats", {}).items()},
            defaults=dict(raw.get("defaults", {})),
            delimiter=csv_opts.get("delimiter"),
            encoding=csv_opts.get("encoding"),
            extra=str(opts.get("extra", "error")),
        )

    def validate(self, spec: Table, source: str) -> None:
        names = set(spec.column_names)
        for src, dst in self.columns.items():
            if dst not in names:
                raise DataError(
                    f"the mapping sends column {src!r} to {dst!r}, which table {spec.name!r} "
                    "does not have",
                    file=source,
                    expected=f"one of {spec.column_names}",
                )
        for section in (self.formats, self.defaults):
            for col in section:
                spec.column(col)
        if self.extra not in ("error", "ignore"):
            raise DataError(
                f"options.extra is {self.extra!r}", file=source, expected="'error' or 'ignore'"
            )


# -- report ----------------------------------------------------------------------------------


@dataclass
class IngestReport:
    """What a load did: rows read, inserted, already present, rejected and why."""

    table: str
    source: str
    rows_read: int = 0
    inserted: int = 0
    already_present: int = 0
    duplicates_in_source: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    rejects_file: str | None = None
    seconds: float = 0.0
    dry_run: bool = False  # True: checked only, nothing was inserted

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- sources ---------------------------------------------------------------------------------


@dataclass
class _Batch:
    data: pa.RecordBatch  # source column names; CSV: all strings
    first_row: int  # 0-based index of the batch's first data row in the source
    bad_utf8: dict[str, np.ndarray] = field(default_factory=dict)  # column -> row mask
    lines: np.ndarray | None = None  # explicit line of each row, where rows were skipped
    malformed: list[tuple[int, str, str]] = field(default_factory=list)  # line, reason, text


class _Source(abc.ABC):
    """A stream of batches from one file or frame, with progress in bytes or rows."""

    label = "row"  # how a position is named in messages
    first_line = 1  # the number of the first data row in messages

    def __init__(self, name: str):
        self.name = name
        self.total = 0
        self.done = 0
        self.columns: list[str] = []

    @abc.abstractmethod
    def batches(self) -> Iterator[_Batch]:
        """The source's rows, batch after batch."""

    def close(self) -> None:  # noqa: B027 - a source with nothing to release keeps this
        """Release the files the source holds."""


class _CsvSource(_Source):
    label = "line"
    first_line = 2  # line 1 is the header

    def __init__(
        self,
        path: Path,
        *,
        delimiter: str | None,
        encoding: str | None,
        block_size: int,
    ):
        super().__init__(str(path))
        self.path = path
        self.compressed = path.suffix.lower() in (".gz", ".gzip")
        self.encoding = _check_encoding(encoding, self.name)
        self.total = path.stat().st_size
        head = self._head()
        if not head.strip():
            raise DataError("the file is empty", file=self.name, expected="a header line")
        if "\n" not in head and "\r" in head:
            raise DataError(
                "the file uses old Mac line endings (CR only)",
                file=self.name,
                expected="lines ending in LF or CRLF",
            )
        self.delimiter = _check_delimiter(delimiter, self.name) or _sniff_delimiter(head)
        try:
            header_line = next(csv.reader(io.StringIO(head), delimiter=self.delimiter), [])
        except csv.Error as exc:
            raise DataError(f"cannot read the header: {exc}", file=self.name, line=1) from None
        header = [h.strip() for h in header_line]
        if not header or not any(header):
            raise DataError("no header line", file=self.name, line=1)
        dupes = [h for h, n in Counter(header).items() if n > 1]
        if dupes:
            raise DataError(f"the header repeats columns {dupes}", file=self.name, line=1)
        if "" in header:
            raise DataError(
                f"column {header.index('') + 1} of the header has no name",
                file=self.name,
                line=1,
            )
        self.columns = header
        # a quoted header cell may span lines: data starts after the header's last line
        self.first_line = 2 + sum(h.count("\n") for h in header_line)
        self.block_size = block_size

    def _head(self) -> str:
        """The start of the file, long enough to hold the whole header record."""
        opener = gzip.open if self.compressed else open
        try:
            with opener(self.path, "rb") as fh:
                raw = fh.read(65536)
                while raw and b"\n" not in raw and len(raw) < self.block_size_limit:
                    more = fh.read(1 << 20)
                    if not more:
                        break
                    raw += more
        except (OSError, EOFError) as exc:
            raise DataError(f"cannot read the file: {exc}", file=self.name) from None
        encoding = self.encoding or "utf-8"
        if encoding.replace("-", "").lower() in ("utf8", "utf8sig"):
            encoding = "utf-8-sig"  # a byte-order mark is not part of the first column's name
        return raw.decode(encoding, errors="replace")

    block_size_limit = 64 << 20

    def batches(self) -> Iterator[_Batch]:
        raw = pa.OSFile(str(self.path), "rb")
        stream = pa.CompressedInputStream(raw, "gzip") if self.compressed else raw
        header_lines = self.first_line - 1
        read = pacsv.ReadOptions(
            block_size=self.block_size,
            column_names=self.columns,
            skip_rows=1,
            encoding=self.encoding or "utf8",
            use_threads=False,  # keeps the line numbers of malformed rows
        )
        parse = pacsv.ParseOptions(delimiter=self.delimiter, newlines_in_values=True)
        conv = pacsv.ConvertOptions(
            column_types={c: pa.binary() for c in self.columns},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        )
        # Rows of the wrong shape are skipped by the parser and reported here with their
        # physical line. The parser may report them a block early (read-ahead), so every good
        # row's line is computed from all skipped rows seen so far, by position, not by arrival.
        pending: list[tuple[int, str, str]] = []
        q_at: list[int] = []  # skipped row's line as if earlier skipped rows were absent
        q_lines: list[int] = [0]  # cumulative lines taken by skipped rows
        seen: list[int] = []

        def on_invalid(bad_row: Any) -> str:
            text = bad_row.text or ""
            number = bad_row.number
            if number is None:  # pragma: no cover - only with threads
                number = -1
            seen.append(number)
            pending.append(
                (
                    number,
                    f"has {bad_row.actual_columns} fields (expected {bad_row.expected_columns})",
                    text[:200],
                )
            )
            q_at.append(number - q_lines[-1])
            q_lines.append(q_lines[-1] + 1 + text.count("\n"))
            return "skip"

        parse.invalid_row_handler = on_invalid
        row = 0
        extra_lines = 0  # newlines inside quoted fields of good rows so far
        try:
            reader = pacsv.open_csv(
                stream, read_options=read, parse_options=parse, convert_options=conv
            )
            for batch in reader:
                decoded, bad = _decode_utf8(batch)
                n = batch.num_rows
                inner = np.zeros(n, dtype=np.int64)
                for col in decoded.columns:
                    if col.null_count < len(col):
                        counts = pc.count_substring(col, "\n").fill_null(0)
                        inner += np.asarray(counts.to_numpy(zero_copy_only=False), np.int64)
                before = extra_lines + np.concatenate([[0], np.cumsum(inner)[:-1]])
                line0 = header_lines + 1 + row + np.arange(n, dtype=np.int64) + before
                if q_at:
                    qa = np.asarray(q_at, dtype=np.int64)
                    ql = np.asarray(q_lines, dtype=np.int64)
                    lines = line0 + ql[np.searchsorted(qa, line0, side="right")]
                else:
                    lines = line0
                extra_lines += int(inner.sum())
                malformed = list(pending)
                pending.clear()
                yield _Batch(decoded, row, bad, lines, malformed)
                row += n
                self.done = raw.tell()
            if pending:  # malformed rows after the last good one
                empty = pa.RecordBatch.from_arrays(
                    [pa.array([], pa.string()) for _ in self.columns], names=self.columns
                )
                yield _Batch(empty, row, {}, np.zeros(0, np.int64), list(pending))
                pending.clear()
        except pa.ArrowInvalid as exc:
            text = str(exc)
            if "straddling" in text or "block" in text:
                text = (
                    f"a field is larger than the reader's block of {self.block_size:,} bytes "
                    "(setting ingest_max_field_bytes)"
                )
            raise DataError(
                f"cannot parse the CSV after data row {row:,}: {text}",
                file=self.name,
                line=row + header_lines + 1,
            ) from None
        except (OSError, EOFError) as exc:
            raise DataError(f"cannot read the file: {exc}", file=self.name) from None
        finally:
            raw.close()


def _check_encoding(encoding: str | None, name: str) -> str | None:
    if encoding is None:
        return None
    import codecs

    try:
        codecs.lookup(encoding)
    except LookupError:
        raise DataError(
            f"unknown text encoding {encoding!r}",
            file=name,
            expected="an encoding such as utf-8, latin-1, cp1252",
        ) from None
    return encoding


def _check_delimiter(delimiter: str | None, name: str) -> str | None:
    if delimiter is None:
        return None
    named = {
        "\\t": "\t",
        "tab": "\t",
        "\\s": " ",
        "space": " ",
        "comma": ",",
        "semicolon": ";",
        "pipe": "|",
    }
    delimiter = named.get(delimiter.lower(), delimiter)
    if len(delimiter) != 1 or delimiter in ('"', "\n", "\r"):
        raise DataError(
            f"invalid delimiter {delimiter!r}",
            file=name,
            expected="one character, or tab / comma / semicolon / pipe",
        )
    return delimiter


class _ParquetSource(_Source):
    """One Parquet file, or a folder of Parquet parts read in name order as one source."""

    def __init__(self, path: Path, batch_rows: int):
        super().__init__(str(path))
        paths = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
        if not paths:
            raise DataError("the folder holds no .parquet files", file=self.name)
        self.files = []
        try:
            for p in paths:
                self.files.append(pq.ParquetFile(str(p)))
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"not a readable Parquet file: {exc}", file=str(p)) from None
        self.columns = list(self.files[0].schema_arrow.names)
        for p, f in zip(paths, self.files, strict=True):
            if list(f.schema_arrow.names) != self.columns:
                raise DataError(
                    f"its columns {f.schema_arrow.names} differ from the first part's "
                    f"{self.columns}",
                    file=str(p),
                )
        self.total = sum(f.metadata.num_rows for f in self.files)
        self.batch_rows = batch_rows

    def batches(self) -> Iterator[_Batch]:
        row = 0
        for f in self.files:
            for batch in f.iter_batches(batch_size=self.batch_rows):
                yield _Batch(batch, row)
                row += batch.num_rows
                self.done = row

    def close(self) -> None:
        for f in self.files:
            f.close()


class ArrowSource(_Source):
    """A DataFrame, Arrow table or RecordBatchReader as a source; rows are named ``row N``."""

    def __init__(self, name: str, data: Any, batch_rows: int = 250_000):
        super().__init__(name)
        if isinstance(data, pa.RecordBatchReader):
            self.reader: Any = data
            self.columns = list(data.schema.names)
        else:
            if not isinstance(data, pa.Table | pa.RecordBatch):
                try:
                    data = pa.Table.from_pandas(data, preserve_index=False)
                except Exception as exc:
                    raise DataError(
                        f"cannot turn the {type(data).__name__} into Arrow: {exc}",
                        file=name,
                        expected="a pandas DataFrame, a pyarrow Table or a RecordBatchReader",
                    ) from None
            if isinstance(data, pa.RecordBatch):
                data = pa.Table.from_batches([data])
            self.total = data.num_rows
            self.columns = list(data.schema.names)
            self.reader = data.to_batches(max_chunksize=batch_rows)

    def batches(self) -> Iterator[_Batch]:
        row = 0
        for batch in self.reader:
            yield _Batch(batch, row)
            row += batch.num_rows
            self.done = row


def _sniff_delimiter(head: str) -> str:
    lines = head.splitlines()
    sample = "\n".join(lines[: min(len(lines), 20)])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _decode_utf8(batch: pa.RecordBatch) -> tuple[pa.RecordBatch, dict[str, np.ndarray]]:
    """Binary columns to text; rows whose bytes are not UTF-8 become null and are flagged."""
    arrays, bad = [], {}
    for name, arr in zip(batch.schema.names, batch.columns, strict=True):
        try:
            arrays.append(arr.cast(pa.string()))
        except pa.ArrowInvalid:
            values = arr.to_pylist()
            mask = np.zeros(len(values), dtype=bool)
            fixed: list[str | None] = []
            for i, v in enumerate(values):
                try:
                    fixed.append(None if v is None else v.decode("utf-8"))
                except UnicodeDecodeError:
                    mask[i] = True
                    fixed.append(None)
            arrays.append(pa.array(fixed, pa.string()))
            bad[name] = mask
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names), bad


def open_source(
    path: str | Path,
    *,
    mapping: Mapping | None = None,
    delimiter: str | None = None,
    encoding: str | None = None,
    batch_rows: int = 250_000,
    max_field_bytes: int = 1_048_576,
    block_bytes: int | None = None,
) -> _Source:
    """A batch stream over a CSV (plain or gzip) or Parquet file (or a folder of parts).

    CSV is read in blocks of ``block_bytes`` (default: 16 MiB or 4 x the largest field allowed),
    so memory holds one block whatever the file's size.
    """
    path = Path(path)
    if not path.exists():
        raise DataError("no such file", file=str(path))
    mapping = mapping or Mapping()
    name = path.name.lower()
    if path.is_dir() or name.endswith((".parquet", ".pq")):
        return _ParquetSource(path, batch_rows)
    if path.stat().st_size == 0:
        raise DataError("the file is empty", file=str(path), expected="a header line")
    block = block_bytes or max(16 << 20, 4 * max_field_bytes)
    return _CsvSource(
        path,
        delimiter=delimiter or mapping.delimiter,
        encoding=encoding or mapping.encoding,
        block_size=block,
    )


# -- validation ------------------------------------------------------------------------------


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


class _Validator:
    """Parses and checks batches against one table of the data model, inside DuckDB."""

    def __init__(self, spec: Table, mapping: Mapping, source: _Source, max_field_bytes: int):
        self.spec = spec
        self.mapping = mapping
        self.source = source
        self.max_field_bytes = max_field_bytes
        mapping.validate(spec, source.name)
        model = set(spec.column_names)
        self.rename: dict[str, str] = {}
        extra = []
        for col in source.columns:
            target = mapping.columns.get(col, col if col in model else None)
            if target is None:
                extra.append(col)
            else:
                if target in self.rename.values():
                    raise DataError(
                        f"two source columns map to {target!r}",
                        file=source.name,
                        column=col,
                    )
                self.rename[col] = target
        self.inverse = {v: k for k, v in self.rename.items()}
        present = set(self.rename.values())
        missing = [
            c.name
            for c in spec.columns
            if c.required and c.name not in present and c.name not in mapping.defaults
        ]
        if missing:
            raise DataError(
                f"missing required columns {missing} for table {spec.name!r}",
                file=source.name,
                line=1 if source.label == "line" else None,
                expected=f"columns {spec.column_names}",
                hint="rename them in the file or map them with --mapping (section [columns])",
            )
        if extra and mapping.extra == "error":
            raise DataError(
                f"columns {extra} are not in table {spec.name!r}",
                file=source.name,
                line=1 if source.label == "line" else None,
                expected=f"columns among {spec.column_names}",
                hint="map them to model columns with --mapping, or pass --ignore-extra",
            )
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")

    def close(self) -> None:
        self.con.close()

    def _column_sql(
        self, col: Column, arrow_type: pa.DataType | None
    ) -> tuple[str, list[tuple[str, str]]]:
        """SQL for the parsed value of ``col`` and a list of (condition, reason) checks."""
        src = self.inverse.get(col.name)
        checks: list[tuple[str, str]] = []
        if src is None:
            default = self.mapping.defaults.get(col.name)
            raw = f"CAST({_lit(default)} AS VARCHAR)" if default is not None else "NULL"
            is_text = True
        else:
            raw = _q(src)
            is_text = arrow_type is not None and (
                pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
            )
            if is_text:
                checks.append(
                    (
                        f"strlen({raw}) > {self.max_field_bytes}",
                        f"too long (expected at most {self.max_field_bytes:,} bytes; "
                        "setting ingest_max_field_bytes)",
                    )
                )
                checks.append(
                    (
                        f"contains({raw}, chr(0))",
                        "contains a NUL byte (expected text without control character 0)",
                    )
                )
        blank = f"NULLIF(trim({raw}), '')" if is_text else raw
        dt = col.dtype
        fmt = self.mapping.formats.get(col.name)
        if dt in ("string", "json"):
            if is_text:
                value = f"CASE WHEN trim({raw}) = '' THEN NULL ELSE {raw} END"
            else:
                value = f"CAST({raw} AS VARCHAR)"
            if col.choices or col.name == "channel":
                value = f"lower(trim({value}))"
            elif col.name.endswith("_id") or col.name in self.spec.key:
                value = f"trim({value})"  # ids: ' C1' and 'C1 ' are the same customer as 'C1'
            if dt == "json":
                checks.append(
                    (
                        f"{value} IS NOT NULL AND NOT (coalesce(json_valid({value}), FALSE) "
                        f"AND json_type({value}) IN ('OBJECT', 'ARRAY'))",
                        f"not valid JSON (expected {EXPECTED['json']})",
                    )
                )
        elif dt == "int64":
            if is_text:  # digits only (a trailing .0 allowed): no 0x10, 1_000 or 1e3
                ok = f"regexp_full_match({blank}, '[+-]?[0-9]+(\\.0+)?')"
                value = f"CASE WHEN {ok} THEN TRY_CAST({blank} AS BIGINT) END"
            else:
                value = f"TRY_CAST({raw} AS BIGINT)"
            checks.append(
                (
                    f"{blank} IS NOT NULL AND ({value} IS NULL OR "
                    f"TRY_CAST({blank} AS DOUBLE) <> {value})",
                    "not a whole number",
                )
            )
        elif dt == "float64":
            if is_text:  # plain decimal or scientific notation: no 1_000.5, 0x1p3, inf, nan
                ok = (
                    f"regexp_full_match({blank}, "
                    "'[+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][+-]?[0-9]+)?')"
                )
                value = f"CASE WHEN {ok} THEN TRY_CAST({blank} AS DOUBLE) END"
            else:
                value = f"TRY_CAST({raw} AS DOUBLE)"
            checks.append(
                (
                    f"{blank} IS NOT NULL AND ({value} IS NULL OR NOT isfinite({value}))",
                    "not a finite number",
                )
            )
        elif dt == "bool":
            if is_text:
                low = f"lower({blank})"
                value = (
                    f"CASE WHEN {low} IN {TRUE_WORDS} THEN TRUE "
                    f"WHEN {low} IN {FALSE_WORDS} THEN FALSE ELSE NULL END"
                )
            else:
                value = f"TRY_CAST({raw} AS BOOLEAN)"
            checks.append(
                (
                    f"{blank} IS NOT NULL AND {value} IS NULL",
                    f"not a boolean (expected {EXPECTED['bool']})",
                )
            )
        elif dt == "timestamp":
            if fmt and is_text:
                value = f"try_strptime({blank}, {_lit(fmt)})"
                expected = f"a date-time in the format {fmt}"
            elif is_text:
                # with the session in UTC, an offset is converted and a naive time kept as UTC;
                # words DuckDB would accept (epoch, infinity) are not dates here
                value = (
                    f"CASE WHEN regexp_matches({blank}, '^[0-9]{{4}}-') THEN "
                    f"coalesce(CAST(TRY_CAST({blank} AS TIMESTAMPTZ) AS TIMESTAMP), "
                    f"TRY_CAST({blank} AS TIMESTAMP)) END"
                )
                expected = EXPECTED["timestamp"]
            elif arrow_type is not None and pa.types.is_timestamp(arrow_type) and arrow_type.tz:
                value = f"CAST({raw} AS TIMESTAMP)"  # session time zone is UTC
                expected = EXPECTED["timestamp"]
            else:
                value = f"TRY_CAST({raw} AS TIMESTAMP)"
                expected = EXPECTED["timestamp"]
            checks.append(
                (
                    f"{blank} IS NOT NULL AND {value} IS NULL",
                    f"not a date-time (expected {expected})",
                )
            )
            checks.append(
                (
                    f"{value} IS NOT NULL AND (NOT isfinite({value}) OR year({value}) < 1800 "
                    f"OR year({value}) > 2200)",
                    "outside the supported dates (expected a year from 1800 to 2200)",
                )
            )
        else:  # pragma: no cover - schema forbids
            raise AssertionError(dt)
        if col.required:
            checks.append((f"{value} IS NULL", "missing value (required)"))
        if col.choices:
            allowed = ", ".join(_lit(c) for c in col.choices)
            checks.append(
                (
                    f"{value} IS NOT NULL AND {value} NOT IN ({allowed})",
                    f"not an allowed value (expected one of {', '.join(col.choices)})",
                )
            )
        if col.minimum is not None:
            checks.append(
                (
                    f"{value} IS NOT NULL AND {value} < {col.minimum!r}",
                    f"below the minimum (expected at least {col.minimum:g})",
                )
            )
        return value, checks

    def convert(self, batch: _Batch) -> tuple[pa.Table, np.ndarray, dict[int, list[str]]]:
        """The typed rows (with ``_line``), a mask of bad rows, and each row's reasons."""
        data = batch.data
        types = dict(zip(data.schema.names, data.schema.types, strict=True))
        n = data.num_rows
        line0 = self.source.first_line + batch.first_row
        selects, err_cols = [], []
        for col in self.spec.columns:
            src = self.inverse.get(col.name)
            value, checks = self._column_sql(col, types.get(src) if src else None)
            selects.append(f"CAST({value} AS {_duck_type(col)}) AS {_q(col.name)}")
            if checks:
                cases = " ".join(f"WHEN {cond} THEN {_lit(reason)}" for cond, reason in checks)
                err_cols.append(col.name)
                selects.append(f"CASE {cases} ELSE NULL END AS {_q('__err_' + col.name)}")
        if self.spec.anonymous and self.spec.person:
            p, a = self.spec.person, self.spec.anonymous
            pv = self.inverse.get(p)
            av = self.inverse.get(a)
            pe = f"NULLIF(trim(CAST({_q(pv)} AS VARCHAR)), '')" if pv else "NULL"
            ae = f"NULLIF(trim(CAST({_q(av)} AS VARCHAR)), '')" if av else "NULL"
            selects.append(
                f"CASE WHEN {pe} IS NULL AND {ae} IS NULL THEN "
                f"'needs {p} or {a}' ELSE NULL END AS {_q('__err_' + p + '|' + a)}"
            )
            err_cols.append(f"{p}|{a}")
        view = f"b_{uuid.uuid4().hex[:8]}"
        self.con.register(view, data)
        try:
            res = self.con.execute(f"SELECT {', '.join(selects)} FROM {_q(view)}")
            out = res.to_arrow_table() if hasattr(res, "to_arrow_table") else res.arrow()
        except duckdb.Error as exc:
            raise DataError(
                f"cannot convert rows {line0}-{line0 + n - 1}: {exc}", file=self.source.name
            ) from None
        finally:
            self.con.unregister(view)
        reasons: defaultdict[int, list[str]] = defaultdict(list)  # only bad rows get an entry
        bad = np.zeros(n, dtype=bool)
        for name, mask in batch.bad_utf8.items():
            target = self.rename.get(name, name)
            for i in np.flatnonzero(mask).tolist():
                reasons[i].append(
                    f"{target}: not valid UTF-8 (expected UTF-8 text; pass --encoding otherwise)"
                )
            bad |= mask
        for name in err_cols:
            errs = out.column("__err_" + name)
            if errs.null_count == n:
                continue
            valid = np.asarray(pc.is_valid(errs).to_numpy(zero_copy_only=False), dtype=bool)
            idx = np.flatnonzero(valid)
            texts = errs.take(pa.array(idx)).to_pylist()
            for i, text in zip(idx.tolist(), texts, strict=True):
                reasons[i].append(f"{name}: {text}")
            bad |= valid
        typed = out.select(self.spec.column_names)
        numbers = batch.lines if batch.lines is not None else np.arange(line0, line0 + n)
        typed = typed.append_column("_line", pa.array(numbers, pa.int64()))
        return typed, bad, reasons


def _duck_type(col: Column) -> str:
    return {
        "string": "VARCHAR",
        "json": "VARCHAR",
        "int64": "BIGINT",
        "float64": "DOUBLE",
        "bool": "BOOLEAN",
        "timestamp": "TIMESTAMP",
    }[col.dtype]


# -- rejects ---------------------------------------------------------------------------------


def escape_formula(arr: pa.Array) -> pa.Array:
    """Prefix ``'`` to text a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``...).

    Examples
    --------
    >>> escape_formula(pa.array(["=1+1", "ok", None])).to_pylist()
    ["'=1+1", 'ok', None]
    """
    arr = arr.cast(pa.string())
    risky = pc.match_substring_regex(arr, FORMULA_START)
    return pc.if_else(risky, pc.binary_join_element_wise(pa.scalar("'"), arr, ""), arr)


class _RejectsWriter:
    """Bad rows and their reasons, written to ``<path>.partial`` and renamed on commit.

    The file is readable by its owner only (rejected rows may hold personal data); a load that
    fails or is only checked leaves no rejects file behind.
    """

    def __init__(self, path: Path, columns: list[str], label: str):
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        self.columns = columns
        self.label = label
        self.writer: pacsv.CSVWriter | None = None
        self.rows = 0

    def write(self, lines: list[int], reasons: list[str], values: dict[str, list[Any]]) -> None:
        if not lines:
            return
        arrays = [pa.array(lines, pa.int64()), escape_formula(pa.array(reasons, pa.string()))]
        for c in self.columns:
            col = values.get(c)
            arr = pa.array(col if col is not None else [None] * len(lines))
            arrays.append(escape_formula(arr.cast(pa.string())))
        names = [self.label, "reasons", *self.columns]
        table = pa.Table.from_arrays(arrays, names=names)
        if self.writer is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.close(fd)
                self.writer = pacsv.CSVWriter(str(self.partial), table.schema)
            except OSError as exc:
                raise DataError(
                    f"cannot write the rejects file: {exc}", file=str(self.path)
                ) from None
        self.writer.write_table(table)
        self.rows += len(lines)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def finish(self) -> str | None:
        """Publish the file (after a commit); None when no row was rejected."""
        self.close()
        if self.rows and self.partial.exists():
            self.partial.replace(self.path)
            return str(self.path)
        return None

    def abandon(self) -> None:
        """Remove the partial file (after a failure or a dry run)."""
        self.close()
        self.partial.unlink(missing_ok=True)


# -- the load --------------------------------------------------------------------------------


@dataclass
class StagedLoad:
    """A source read, checked and staged in the warehouse, waiting for :func:`commit`."""

    spec: Table
    staging: str
    report: IngestReport
    skip_bad_rows: bool
    label: str
    rejects: _RejectsWriter | None
    inverse: dict[str, str]
    started: float


def stage(
    warehouse: Warehouse,
    table: str,
    source: _Source,
    *,
    mapping: Mapping | None = None,
    skip_bad_rows: bool = False,
    rejects_path: str | Path | None = None,
    max_field_bytes: int = 1_048_576,
    max_problems: int = 1_000,
    progress: Progress | None = None,
) -> StagedLoad:
    """Read, check and stage ``source`` for ``table``; raise :class:`DataError` on bad rows."""
    started = time.perf_counter()
    spec = get_table(table)
    warehouse.ensure_tables([spec.name])
    mapping = mapping or Mapping()
    validator = _Validator(spec, mapping, source, max_field_bytes)
    report = IngestReport(table=spec.name, source=source.name)
    rejects = (
        _RejectsWriter(Path(rejects_path), source.columns, source.label)
        if skip_bad_rows and rejects_path
        else None
    )
    staging = warehouse.create_staging(spec)
    problems: list[dict[str, Any]] = []
    reasons_count: Counter[str] = Counter()
    stopped_early = False
    ok = False
    try:
        for batch in source.batches():
            typed, bad, reasons = validator.convert(batch)
            report.rows_read += typed.num_rows + len(batch.malformed)
            for line, why, text in batch.malformed:
                reasons_count["row: wrong number of fields"] += 1
                report.rejected += 1
                if len(problems) < max_problems:
                    problems.append(
                        {source.label: line, "column": None, "reason": why, "value": text}
                    )
                if rejects is not None:
                    rejects.write([line], [f"row: {why}: {text}"], {})
            if bad.any():
                idx = np.flatnonzero(bad).tolist()
                lines = typed.column("_line").take(pa.array(idx, pa.int64())).to_pylist()
                for i, line in zip(idx, lines, strict=True):
                    for r in reasons[i]:
                        reasons_count[r.split(": ", 1)[0] + ": " + _reason_kind(r)] += 1
                    if len(problems) < max_problems:
                        problems.extend(
                            _problem(source, spec, validator, batch, i, line, r) for r in reasons[i]
                        )
                report.rejected += len(idx)
                if rejects is not None:
                    raw = batch.data.take(pa.array(idx, pa.int64()))
                    rejects.write(
                        lines,
                        ["; ".join(reasons[i]) for i in idx],
                        {c: raw.column(c).to_pylist() for c in raw.schema.names},
                    )
                typed = typed.filter(pa.array(~bad))
            if not skip_bad_rows and report.rejected:
                # keep reading only to report more problems; nothing is staged any more
                if len(problems) >= max_problems:
                    stopped_early = True
                    break
                continue
            warehouse.append_arrow(staging, [typed])
            if progress:
                progress(source.done, source.total)
        if report.rejected and not skip_bad_rows:
            problems.sort(key=lambda p: p.get(source.label) or 0)
            first = problems[0]
            counted = (
                f"at least {report.rejected:,} bad rows (reading stopped after "
                f"{len(problems):,} problems)"
                if stopped_early
                else f"{report.rejected:,} bad rows in all"
            )
            raise DataError(
                first["reason"],
                file=source.name,
                line=first.get("line"),
                row=first.get("row"),
                column=first.get("column"),
                value=first.get("value"),
                expected=first.get("expected"),
                problems=problems,
                hint=f"{counted} (listed with --json); nothing was loaded. Fix them, or pass "
                "--skip-bad-rows to load the good rows and write the bad ones to a rejects file",
            )
        report.reasons = dict(reasons_count)
        ok = True
        return StagedLoad(
            spec,
            staging,
            report,
            skip_bad_rows,
            source.label,
            rejects,
            validator.inverse,
            started,
        )
    finally:
        validator.close()
        source.close()
        if not ok:
            if rejects is not None:
                rejects.abandon()
            warehouse.drop_table(staging)


def _reason_kind(reason: str) -> str:
    text = reason.split(": ", 1)[-1]
    return text.split(" (", 1)[0]


def _problem(source, spec, validator, batch, i, line, reason) -> dict[str, Any]:
    column, _, text = reason.partition(": ")
    src = validator.inverse.get(column, column)
    value = None
    if src in batch.data.schema.names:
        value = batch.data.column(src)[int(i)].as_py()
        if isinstance(value, str) and len(value) > 200:
            value = value[:200] + f"... ({len(value):,} characters)"
    expected = None
    col = next((c for c in spec.columns if c.name == column), None)
    if col is not None:
        expected = EXPECTED.get(col.dtype)
        if col.choices:
            expected = f"one of {', '.join(col.choices)}"
    out = {source.label: int(line), "column": src, "reason": text, "value": value}
    if expected:
        out["expected"] = expected
    return out


def _duplicates(warehouse: Warehouse, load: StagedLoad, limit: int = 100):
    import ibis

    keys = list(load.spec.key)
    st = warehouse.con.table(load.staging)
    dup = st.group_by(keys).aggregate(n=st.count(), first=st["_line"].min()).filter(ibis._.n > 1)
    count = int(dup.count().execute())
    sample = dup.order_by("first").limit(limit).execute() if count else None
    return count, sample


def commit(
    warehouse: Warehouse, loads: list[StagedLoad], *, dry_run: bool = False
) -> list[IngestReport]:
    """Add the staged rows whose keys are new, all loads in one transaction.

    With ``dry_run`` nothing is inserted: ``inserted`` counts the rows that would be.
    """
    import ibis

    try:
        sources = []
        for load in loads:
            keys = list(load.spec.key)
            st = warehouse.con.table(load.staging)
            count, sample = _duplicates(warehouse, load)
            if count and not load.skip_bad_rows:
                row = sample.iloc[0]
                key_text = ", ".join(f"{k}={row[k]!r}" for k in keys)
                raise DataError(
                    f"duplicate key {key_text}: {int(row['n'])} rows share it, the first at "
                    f"{load.label} {int(row['first'])}",
                    file=load.report.source,
                    line=int(row["first"]),
                    column=load.inverse.get(keys[0], keys[0]),
                    hint=f"{count:,} keys repeat inside the source; nothing was loaded. Pass "
                    "--skip-bad-rows to keep the first row of each key",
                )
            rn = ibis.row_number().over(group_by=keys, order_by=st["_line"])
            if count:
                ranked = st.mutate(_rn=rn)
                extra = ranked.filter(ranked["_rn"] > 0)
                load.report.duplicates_in_source = int(extra.count().execute())
                load.report.reasons["duplicate key in source"] = load.report.duplicates_in_source
                if load.rejects is not None:
                    _write_duplicate_rejects(load, extra)
                source_expr = ranked.filter(ranked["_rn"] == 0).drop("_rn")
            else:
                source_expr = st
            sources.append((load, source_expr))
        with warehouse.transaction():
            for load, expr in sources:
                staged = int(expr.count().execute())
                if dry_run:
                    target = warehouse.con.table(load.spec.name)
                    new = expr.anti_join(target, list(load.spec.key))
                    load.report.inserted = int(new.count().execute())
                else:
                    load.report.inserted = warehouse.insert_new(load.spec.name, expr, load.spec.key)
                load.report.already_present = staged - load.report.inserted
                load.report.dry_run = dry_run
        for load in loads:
            if load.rejects is not None:
                if dry_run:
                    load.rejects.abandon()
                else:
                    load.report.rejects_file = load.rejects.finish()
            load.report.seconds = round(time.perf_counter() - load.started, 3)
        return [load.report for load in loads]
    finally:
        for load in loads:
            if load.rejects is not None:
                load.rejects.abandon()  # no-op after finish(): the file has been renamed
            warehouse.drop_table(load.staging)


def _write_duplicate_rejects(load: StagedLoad, extra) -> None:
    assert load.rejects is not None
    for chunk in extra.to_pyarrow_batches(chunk_size=100_000):
        lines = chunk.column("_line").to_pylist()
        values = {
            load.inverse.get(name, name): chunk.column(name).to_pylist()
            for name in load.spec.column_names
        }
        load.rejects.write(lines, ["duplicate key in source"] * len(lines), values)


def discard(warehouse: Warehouse, loads: list[StagedLoad]) -> None:
    """Drop staged loads without committing them."""
    for load in loads:
        if load.rejects is not None:
            load.rejects.abandon()
        warehouse.drop_table(load.staging)


# -- public entry points ---------------------------------------------------------------------


def ingest_file(
    warehouse: Warehouse,
    table: str,
    path: str | Path,
    *,
    mapping: Mapping | str | Path | None = None,
    skip_bad_rows: bool = False,
    rejects_path: str | Path | None = None,
    delimiter: str | None = None,
    encoding: str | None = None,
    ignore_extra: bool = False,
    batch_rows: int = 250_000,
    max_field_bytes: int = 1_048_576,
    max_problems: int = 1_000,
    block_bytes: int | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> IngestReport:
    """Load a CSV (any delimiter, quoted fields, gzip) or Parquet file into ``table``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from mercato.data.warehouse import Warehouse
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "p.csv").write_text("product_id,name,price\\nP1,Mug,4.5\\n")
    >>> wh = Warehouse("duckdb://:memory:")
    >>> ingest_file(wh, "products", d / "p.csv").inserted
    1
    >>> ingest_file(wh, "products", d / "p.csv").inserted
    0
    """
    if not isinstance(mapping, Mapping):
        mapping = Mapping.from_file(mapping) if mapping else Mapping()
    if ignore_extra:
        mapping.extra = "ignore"
    source = open_source(
        path,
        mapping=mapping,
        delimiter=delimiter,
        encoding=encoding,
        batch_rows=batch_rows,
        max_field_bytes=max_field_bytes,
        block_bytes=block_bytes,
    )
    if skip_bad_rows and rejects_path is None and not dry_run:
        rejects_path = Path(path).with_name(Path(path).name + ".rejects.csv")
    load = stage(
        warehouse,
        table,
        source,
        mapping=mapping,
        skip_bad_rows=skip_bad_rows,
        rejects_path=rejects_path,
        max_field_bytes=max_field_bytes,
        max_problems=max_problems,
        progress=progress,
    )
    return commit(warehouse, [load], dry_run=dry_run)[0]


def ingest_frame(
    warehouse: Warehouse,
    table: str,
    data: Any,
    *,
    mapping: Mapping | None = None,
    skip_bad_rows: bool = False,
    rejects_path: str | Path | None = None,
    ignore_extra: bool = False,
    source_name: str = "<dataframe>",
    batch_rows: int = 250_000,
    max_field_bytes: int = 1_048_576,
    max_problems: int = 1_000,
) -> IngestReport:
    """Load a pandas DataFrame, a pyarrow Table or a RecordBatchReader into ``table``.

    Rows are named by their 1-based position (``row N``) in errors.

    Examples
    --------
    >>> import pandas as pd
    >>> from mercato.data.warehouse import Warehouse
    >>> wh = Warehouse("duckdb://:memory:")
    >>> df = pd.DataFrame({"product_id": ["P1", "P2"], "price": [3.0, 4.0]})
    >>> ingest_frame(wh, "products", df).inserted
    2
    """
    mapping = mapping or Mapping()
    if ignore_extra:
        mapping.extra = "ignore"
    source = ArrowSource(source_name, data, batch_rows)
    load = stage(
        warehouse,
        table,
        source,
        mapping=mapping,
        skip_bad_rows=skip_bad_rows,
        rejects_path=rejects_path,
        max_field_bytes=max_field_bytes,
        max_problems=max_problems,
    )
    return commit(warehouse, [load])[0]


@contextlib.contextmanager
def staged_loads(warehouse: Warehouse) -> Iterator[list[StagedLoad]]:
    """Collect several staged loads and commit them together (or none on error).

    Examples
    --------
    >>> from mercato.data.warehouse import Warehouse
    >>> import pyarrow as pa
    >>> wh = Warehouse("duckdb://:memory:")
    >>> with staged_loads(wh) as loads:
    ...     loads.append(stage(wh, "products", ArrowSource("x", pa.table({"product_id": ["P"]}),
    ...                  10)))
    >>> wh.count("products")
    1
    """
    loads: list[StagedLoad] = []
    try:
        yield loads
    except BaseException:
        discard(warehouse, loads)
        raise
    commit(warehouse, loads)  # fills each load's report in place


def ingest_folder(
    warehouse: Warehouse,
    folder: str | Path,
    *,
    tables: list[str] | None = None,
    skip_bad_rows: bool = False,
    rejects_dir: str | Path | None = None,
    batch_rows: int = 250_000,
    max_field_bytes: int = 1_048_576,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[IngestReport]:
    """Load a folder laid out as the data model (``<folder>/<table>/*.parquet`` or
    ``<folder>/<table>.csv``/``.csv.gz``/``.parquet``), every table in one transaction.

    The synthetic shop (:func:`mercato.data.synth.generate_shop`) writes this layout.
    """
    from mercato.data.schema import TABLES

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("no such folder", file=str(folder))
    found: list[tuple[str, Path]] = []
    for name in tables or list(TABLES):
        for candidate in (
            folder / name,
            folder / f"{name}.parquet",
            folder / f"{name}.csv",
            folder / f"{name}.csv.gz",
        ):
            if candidate.exists():
                found.append((name, candidate))
                break
        else:
            if tables:
                raise DataError(f"no data for table {name!r} in the folder", file=str(folder))
    if not found:
        raise DataError(
            "the folder holds no data-model tables",
            file=str(folder),
            expected=f"sub-folders or files named after tables: {', '.join(TABLES)}",
        )
    with staged_loads(warehouse) as loads:
        for i, (name, path) in enumerate(found):
            if progress:
                progress(name, i, len(found))
            source = open_source(path, batch_rows=batch_rows, max_field_bytes=max_field_bytes)
            rejects = Path(rejects_dir) / f"{name}.rejects.csv" if rejects_dir else None
            loads.append(
                stage(
                    warehouse,
                    name,
                    source,
                    skip_bad_rows=skip_bad_rows,
                    rejects_path=rejects,
                    max_field_bytes=max_field_bytes,
                )
            )
        if progress:
            progress("commit", len(found), len(found))
    return [load.report for load in loads]
