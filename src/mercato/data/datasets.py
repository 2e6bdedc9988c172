"""The public data sets: where to get them, and how each one fills the warehouse.

Mercato never ships these files. A user downloads them into one folder and points
``MERCATO_DATA_DIR`` at it (or passes ``data_dir``); :func:`list_datasets` says which are there and
:func:`dataset_path` says, for a missing one, where to download it and under which name to save it.

:func:`load_dataset` reads a file, reshapes it into the data model (:mod:`mercato.data.schema`)
with vectorised DuckDB SQL in an in-process connection (never a Python loop per row), then hands
the tables to :mod:`mercato.data.ingest`, which checks every value and commits all the tables of
one data set in a single transaction. The ingest keys make a second load add nothing. Data sets
read by the prediction, CLV, uplift and attribution work also get a *raw* copy of the file's own
columns, typed, in a table ``ds_<name>`` (replaced on each load).

How each file becomes the data model:

``online-retail``
    ``orders`` (one per InvoiceNo; ``cancelled`` when it starts with ``C``), ``order_lines``
    (``line_no`` numbers the lines of an invoice in file order, so exact duplicate lines stay
    distinct rows), ``customers`` (most frequent country, first invoice date) and ``products``
    (most frequent description; price = median unit price of lines with positive quantity and
    positive price). Two bad-debt adjustment lines with a negative unit price cannot be order
    lines (``unit_price`` is at least 0): they are rejected and counted, and so are the invoices
    left without any line.
``cdnow`` / ``cdnow-sample``
    one order with one ``CD`` line per transaction row (``unit_price`` = value / number of CDs);
    customer and order ids are prefixed ``cdnow-`` / ``cdnow-sample-`` so that both can live in
    one warehouse; ``ds_cdnow`` / ``ds_cdnow_sample`` keep the original ids.
``hillstrom``
    ``customers`` ``hillstrom-<row>``; one campaign ``hillstrom-email``; its exposures (Mens or
    Womens e-mail: ``treatment`` with that variant; No E-Mail: ``control``) on 2008-03-01; a
    ``page_view`` per visit and a ``purchase`` (value = spend) per conversion. The file has no
    dates: event times are spread deterministically over the two weeks after the send, so
    re-loading gives the same events.
``bank-marketing`` / ``telco-churn``
    ``customers`` (``bank-<row>`` / ``customerID``) with their attributes as JSON, and the
    raw table.
``attribution-paths`` / ``attribution-journeys``
    raw tables only.

Examples
--------
>>> [d["name"] for d in list_datasets("/nonexistent")][:2]
['online-retail', 'cdnow']
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from mercato.data.ingest import ArrowSource, StagedLoad, stage, staged_loads
from mercato.data.warehouse import Warehouse
from mercato.errors import DataError, DatasetNotFoundError

ENV_VAR = "MERCATO_DATA_DIR"

#: ``progress(stage_name, steps_done, steps_total)``
DatasetProgress = Callable[[str, int, int], None]

#: Hillstrom's file has no dates: the e-mails are taken as sent at this time (March 2008, the
#: month the challenge was published), and visits and purchases follow within two weeks.
HILLSTROM_SENT = "2008-03-01 00:00:00"
HILLSTROM_CAMPAIGN = "hillstrom-email"


@dataclass(frozen=True)
class DatasetInfo:
    """One public data set: its file, size, the tables it fills and where to get it.

    ``how`` says how to turn what the ``url`` offers into ``file``.
    """

    name: str
    file: str
    description: str
    rows: int
    tables: tuple[str, ...]
    url: str
    licence: str
    how: str = ""

    @property
    def raw_table(self) -> str | None:
        """The name of the raw copy (``ds_`` + name with ``-`` as ``_``), or None."""
        raw = "ds_" + self.name.replace("-", "_")
        return raw if raw in self.tables else None


_MODEL_SALES = ("customers", "orders", "order_lines", "products")

DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in (
        DatasetInfo(
            name="online-retail",
            file="online_retail.csv.gz",
            description="UCI Online Retail: every line of a UK online gift shop's invoices, "
            "2010-12-01 to 2011-12-09, with cancellations and guest orders.",
            rows=541_909,
            tables=_MODEL_SALES,
            url="https://archive.ics.uci.edu/dataset/352/online+retail",
            licence="CC BY 4.0",
            how="the download is 'Online Retail.xlsx': save its sheet as CSV (UTF-8) with the "
            "header InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,"
            "Country as online_retail.csv (or gzip it to online_retail.csv.gz)",
        ),
        DatasetInfo(
            name="cdnow",
            file="cdnow_master.txt",
            description="CDNOW full cohort (Fader, Hardie & Lee): customer, date, CDs, dollars "
            "of every purchase, 1997-01 to 1998-06.",
            rows=69_659,
            tables=(*_MODEL_SALES, "ds_cdnow"),
            url="https://github.com/CamDavidsonPilon/lifetimes/blob/master/lifetimes/datasets/"
            "CDNOW_master.txt",
            licence="data publicly distributed by B. Hardie (also shipped in lifetimes, MIT)",
            how="save CDNOW_master.txt as cdnow_master.txt (the same file is on "
            "https://www.brucehardie.com/datasets/)",
        ),
        DatasetInfo(
            name="cdnow-sample",
            file="cdnow_sample.txt",
            description="CDNOW 1/10 sample used by Fader, Hardie & Lee (2005) for BG/NBD.",
            rows=6_919,
            tables=(*_MODEL_SALES, "ds_cdnow_sample"),
            url="https://github.com/CamDavidsonPilon/lifetimes/blob/master/lifetimes/datasets/"
            "CDNOW_sample.txt",
            licence="data publicly distributed by B. Hardie (also shipped in lifetimes, MIT)",
            how="save CDNOW_sample.txt as cdnow_sample.txt (the same file is on "
            "https://www.brucehardie.com/datasets/)",
        ),
        DatasetInfo(
            name="hillstrom",
            file="hillstrom.csv.gz",
            description="MineThatData e-mail test (2008): Mens e-mail, Womens e-mail or none, "
            "randomised; visits, conversions and spend over two weeks.",
            rows=64_000,
            tables=(
                "customers",
                "campaigns",
                "campaign_exposures",
                "events",
                "ds_hillstrom",
            ),
            url="https://blog.minethatdata.com/2008/03/minethatdata-e-mail-analytics-and-data.html",
            licence="released publicly by its author for the challenge",
            how="save the CSV linked from that post (Kevin_Hillstrom_MineThatData_E-Mail"
            "Analytics_DataMiningChallenge_2008.03.20.csv) as hillstrom.csv or hillstrom.csv.gz",
        ),
        DatasetInfo(
            name="bank-marketing",
            file="bank_marketing.csv.gz",
            description="UCI Bank Marketing (Moro, Cortez & Rita 2014): phone campaigns of a "
            "Portuguese bank; target y (term deposit).",
            rows=41_188,
            tables=("customers", "ds_bank_marketing"),
            url="https://archive.ics.uci.edu/dataset/222/bank+marketing",
            licence="CC BY 4.0",
            how="save bank-additional/bank-additional-full.csv (inside bank-additional.zip) as "
            "bank_marketing.csv or bank_marketing.csv.gz",
        ),
        DatasetInfo(
            name="telco-churn",
            file="telco_churn.csv.gz",
            description="IBM Telco Customer Churn sample: one row per customer; target Churn.",
            rows=7_043,
            tables=("customers", "ds_telco_churn"),
            url="https://www.kaggle.com/datasets/blastchar/telco-customer-churn",
            licence="IBM sample data set",
            how="save WA_Fn-UseC_-Telco-Customer-Churn.csv as telco_churn.csv or "
            "telco_churn.csv.gz (IBM's copy: github.com/IBM/telco-customer-churn-on-icp4d)",
        ),
        DatasetInfo(
            name="attribution-paths",
            file="attribution_paths.csv",
            description="Multi-channel conversion paths with conversions, value and nulls "
            "(ChannelAttribution's example data).",
            rows=10_000,
            tables=("ds_attribution_paths",),
            url="https://github.com/DavideAltomare/ChannelAttribution/blob/master/python/src/"
            "cypack/data/Data.csv",
            licence="data shipped with a GPL-3 package: used as data only",
            how="save Data.csv as attribution_paths.csv",
        ),
        DatasetInfo(
            name="attribution-journeys",
            file="attribution_journeys.json",
            description="Converting journeys as lists of channel ids 1-20 (shapley-attribution-"
            "model sample).",
            rows=2_392,
            tables=("ds_attribution_journeys",),
            url="https://github.com/ianchute/shapley-attribution-model-zhao-naive/blob/master/"
            "data/sample.json",
            licence="MIT",
            how="save sample.json as attribution_journeys.json",
        ),
    )
}


@dataclass
class DatasetLoadReport:
    """What :func:`load_dataset` did.

    ``tables`` maps each data-model table to ``{inserted, already_present, rejected}``;
    ``counts`` holds what was found in the file (all integers); ``rejected`` maps a reason to
    the number of rows it kept out; ``notes`` are remarks for the user.
    """

    name: str
    file: str
    seconds: float = 0.0
    tables: dict[str, dict[str, int]] = field(default_factory=dict)
    raw_table: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


# -- where the files are -------------------------------------------------------------------


def data_dir(explicit: str | Path | None = None) -> Path | None:
    """The folder of the data set files: ``explicit``, else ``$MERCATO_DATA_DIR``, else None.

    Examples
    --------
    >>> data_dir("/srv/data")
    PosixPath('/srv/data')
    """
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_VAR, "").strip()
    return Path(env).expanduser() if env else None


def get_dataset(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` called ``name``; :class:`DataError` listing the known names.

    Examples
    --------
    >>> get_dataset("hillstrom").rows
    64000
    """
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(
            f"unknown data set {name!r}",
            expected=f"one of {', '.join(DATASETS)}",
            hint="`mercato datasets list` shows them",
        ) from None


def _candidates(folder: Path, info: DatasetInfo) -> list[Path]:
    """The file itself, then the same file gzipped or not."""
    names = [info.file]
    names.append(info.file[:-3] if info.file.endswith(".gz") else info.file + ".gz")
    return [folder / n for n in names]


def _find(folder: Path | None, info: DatasetInfo) -> Path | None:
    if folder is None:
        return None
    for p in _candidates(folder, info):
        if p.is_file():
            return p
    return None


def list_datasets(data_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Every known data set, and whether its file is in the data folder.

    Parameters
    ----------
    data_dir : str or Path, optional
        The folder of the files; default ``$MERCATO_DATA_DIR``.

    Returns
    -------
    list of dict
        ``name, file, present, path, rows, tables, description, url, licence`` per data set;
        ``path`` is where the file is (or would be), None when no folder is set.

    Examples
    --------
    >>> items = list_datasets("/nonexistent")
    >>> items[0]["name"], items[0]["present"]
    ('online-retail', False)
    """
    folder = _resolve_dir(data_dir)
    out = []
    for info in DATASETS.values():
        found = _find(folder, info)
        path = found or (folder / info.file if folder is not None else None)
        out.append(
            {
                "name": info.name,
                "file": info.file,
                "present": found is not None,
                "path": str(path) if path is not None else None,
                "rows": info.rows,
                "tables": list(info.tables),
                "description": info.description,
                "url": info.url,
                "licence": info.licence,
            }
        )
    return out


def _resolve_dir(explicit: str | Path | None) -> Path | None:
    return data_dir(explicit)


def dataset_path(name: str, data_dir: str | Path | None = None) -> Path:
    """The file of data set ``name``; a clear error saying where to get it when it is missing.

    ``online_retail.csv`` is accepted for ``online_retail.csv.gz`` and the other way round.

    Parameters
    ----------
    name : str
        A key of :data:`DATASETS`.
    data_dir : str or Path, optional
        The folder of the files; default ``$MERCATO_DATA_DIR``.

    Raises
    ------
    DataError
        ``name`` is not a known data set.
    DatasetNotFoundError
        No folder is set, or the file is not in it; the message names the file, the folder,
        the download address and ``MERCATO_DATA_DIR``.

    Examples
    --------
    >>> try:
    ...     dataset_path("cdnow", "/nonexistent")
    ... except DatasetNotFoundError as exc:
    ...     "cdnow_master.txt" in str(exc)
    True
    """
    info = get_dataset(name)
    folder = _resolve_dir(data_dir)
    found = _find(folder, info)
    if found is not None:
        return found
    how = f"; {info.how}" if info.how else ""
    if folder is None:
        message = (
            f"the data set {name!r} needs the file {info.file}, and no data folder is set: "
            f"download it from {info.url} into a folder of your choice{how}"
        )
    elif not folder.is_dir():
        message = (
            f"the data set {name!r} needs the file {info.file} in {folder}, which is not a "
            f"folder: create it and download the file from {info.url} into it{how}"
        )
    else:
        message = (
            f"the data set {name!r} needs the file {info.file}, which is not in {folder}: "
            f"download it from {info.url} into that folder{how}"
        )
    raise DatasetNotFoundError(
        message,
        hint=f"then set {ENV_VAR} to that folder (or pass --data-dir); licence: {info.licence}",
    )


# -- loading -------------------------------------------------------------------------------


class _Context:
    """What a loader needs: the warehouse, the file, a DuckDB for the reshaping, the report."""

    def __init__(
        self,
        warehouse: Warehouse,
        info: DatasetInfo,
        path: Path,
        report: DatasetLoadReport,
        progress: DatasetProgress | None,
        total_steps: int,
    ):
        self.warehouse = warehouse
        self.info = info
        self.path = path
        self.report = report
        self.progress = progress
        self.total = total_steps
        self.done = 0
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")

    def step(self, name: str) -> None:
        """Report that ``name`` starts (``done`` steps are finished)."""
        if self.progress is not None:
            self.progress(name, min(self.done, self.total), self.total)
        self.done += 1

    def arrow(self, sql: str) -> pa.Table:
        res = self.con.execute(sql)
        fetch = getattr(res, "to_arrow_table", None) or res.fetch_arrow_table
        return fetch()

    def scalar_row(self, sql: str) -> dict[str, Any]:
        res = self.con.execute(sql)
        names = [d[0] for d in res.description]
        row = res.fetchone()
        return dict(zip(names, row or [None] * len(names), strict=True))

    def count(self, key: str, value: Any) -> None:
        self.report.counts[key] = int(value or 0)

    def reject(self, reason: str, n: int) -> None:
        if n:
            self.report.rejected[reason] = self.report.rejected.get(reason, 0) + int(n)

    def check_rows(self, n: int) -> None:
        if n != self.info.rows:
            self.report.notes.append(
                f"the file has {n:,} rows where SOURCES lists {self.info.rows:,}: "
                "another version of the data set?"
            )

    def commit(self, frames: dict[str, pa.Table], rejected: dict[str, int] | None = None) -> None:
        """Check and stage every table, then commit them together (or nothing)."""
        rejected = rejected or {}
        loads: dict[str, StagedLoad] = {}
        with staged_loads(self.warehouse) as staged:
            for table, data in frames.items():
                self.step(f"checking {table}")
                source = ArrowSource(f"{self.path.name} ({table})", data)
                load = stage(self.warehouse, table, source)
                staged.append(load)
                loads[table] = load
            self.step("committing")
        for table, load in loads.items():
            r = load.report
            self.report.tables[table] = {
                "inserted": int(r.inserted),
                "already_present": int(r.already_present),
                "rejected": int(r.rejected) + int(rejected.get(table, 0)),
            }

    def raw(self, data: pa.Table) -> None:
        name = self.info.raw_table
        assert name is not None
        self.step(f"writing {name}")
        self.warehouse.create_raw_table(name, data)
        self.report.raw_table = name
        self.count("raw_rows", data.num_rows)

    def close(self) -> None:
        self.con.close()


def load_dataset(
    warehouse: Warehouse,
    name: str,
    data_dir: str | Path | None = None,
    progress: DatasetProgress | None = None,
) -> DatasetLoadReport:
    """Load public data set ``name`` into the warehouse; loading it again adds nothing.

    Parameters
    ----------
    warehouse : Warehouse
        Where to load (DuckDB or PostgreSQL).
    name : str
        A key of :data:`DATASETS`.
    data_dir : str or Path, optional
        The folder of the files; default ``$MERCATO_DATA_DIR``.
    progress : callable, optional
        Called as ``progress(stage_name, steps_done, steps_total)`` between steps.

    Returns
    -------
    DatasetLoadReport
        Rows inserted, already present and rejected per table, what was found in the file,
        and the raw table written (if any). ``to_dict()`` gives JSON.

    Raises
    ------
    DatasetNotFoundError
        The file is missing (the message says where to download it).
    DataError
        Unknown name, or a file that does not have the expected shape.

    Examples
    --------
    >>> wh = Warehouse("duckdb://:memory:")
    >>> report = load_dataset(wh, "cdnow-sample")  # doctest: +SKIP
    >>> report.tables["orders"]["inserted"]  # doctest: +SKIP
    6919
    """
    info = get_dataset(name)
    path = dataset_path(name, data_dir)
    loader, steps = _LOADERS[name]
    started = time.perf_counter()
    report = DatasetLoadReport(name=name, file=str(path))
    ctx = _Context(warehouse, info, path, report, progress, steps)
    try:
        loader(ctx)
    finally:
        ctx.close()
    report.seconds = round(time.perf_counter() - started, 3)
    if progress is not None:
        progress("done", steps, steps)
    return report


# -- reading files -------------------------------------------------------------------------


def _open_text(path: Path, encoding: str):
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding=encoding, errors="replace", newline="")
    return open(path, encoding=encoding, errors="replace", newline="")


def _header(path: Path, delimiter: str) -> list[str]:
    try:
        with _open_text(path, "utf-8-sig") as fh:
            first = fh.readline()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read the file: {exc}", file=str(path)) from None
    row = next(csv.reader(io.StringIO(first), delimiter=delimiter), [])
    header = [h.strip().lstrip("\ufeff") for h in row]
    if not any(header):
        raise DataError("the file is empty or has no header", file=str(path), line=1)
    return header


def _read_csv_text(ctx: _Context, delimiter: str, expected: dict[str, str]) -> dict[str, str]:
    """Read the CSV as text columns into DuckDB view ``src`` with ``_row`` = 1-based data row.

    ``expected`` maps a column name (matched case-insensitively) to its DuckDB type; returns
    the map from expected name to the file's own spelling. Columns the file adds are kept as
    text. A missing column raises :class:`DataError`.
    """
    path = ctx.path
    header = _header(path, delimiter)
    by_lower = {h.lower(): h for h in header}
    missing = [c for c in expected if c.lower() not in by_lower]
    if missing:
        raise DataError(
            f"the header lacks the columns {missing}: not the {ctx.info.name} file?",
            file=str(path),
            line=1,
            expected=f"columns {list(expected)} separated by {delimiter!r}",
            hint=f"get the file from {ctx.info.url}",
        )
    names = [f"c{i}" for i in range(len(header))]  # the header may repeat or be odd
    table = None
    for encoding in ("utf8", "cp1252"):
        try:
            table = pacsv.read_csv(
                str(path),
                read_options=pacsv.ReadOptions(
                    column_names=names, skip_rows=1, encoding=encoding, block_size=16 << 20
                ),
                parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(
                    column_types={n: pa.string() for n in names},
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
            break
        except pa.ArrowInvalid as exc:
            if encoding == "utf8" and "utf8" in str(exc).lower().replace("-", ""):
                ctx.report.notes.append("the file is not UTF-8: read as Windows-1252")
                continue
            raise DataError(f"cannot parse the CSV: {exc}", file=str(path)) from None
        except (OSError, EOFError) as exc:
            raise DataError(f"cannot read the file: {exc}", file=str(path)) from None
    assert table is not None
    table = table.rename_columns(header)
    table = table.append_column("_row", pa.array(np.arange(1, table.num_rows + 1)))
    ctx.con.register("src_arrow", table)
    ctx.con.execute("CREATE OR REPLACE TEMP TABLE src AS SELECT * FROM src_arrow")
    ctx.con.unregister("src_arrow")
    return {c: by_lower[c.lower()] for c in expected}


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _s(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_TYPE_WORDS = {
    "BIGINT": "not a whole number",
    "DOUBLE": "not a number",
    "BOOLEAN": "not yes/no",
    "VARCHAR": "",
}


def _typed(
    ctx: _Context,
    expected: dict[str, str],
    spelling: dict[str, str],
    *,
    rename: dict[str, str] | None = None,
) -> tuple[str, list[str]]:
    """Turn ``src`` into typed temp table ``typed`` (plus ``_row``), rejecting bad rows.

    Blank cells become NULL and are counted as ``blank_<column>``; a row with a cell that is
    not of its column's type is rejected with the reason. Returns the name of the table and the
    output column names, in the file's order.
    """
    rename = rename or {}
    described = ctx.con.execute("SELECT * FROM src LIMIT 0").description
    header = [c[0] for c in described if c[0] != "_row"]
    types = {spelling[c]: t for c, t in expected.items()}
    selects, reason_cases, aggs, outs = [], [], [], []
    for i, col in enumerate(header):
        out = rename.get(col, col)
        outs.append(out)
        dtype = types.get(col, "VARCHAR")
        cell = f"trim({_q(col)})"
        blank = f"({cell} = '')"
        if dtype == "VARCHAR":
            value = f"NULLIF({_q(col)}, '')"
        else:
            value = f"TRY_CAST(NULLIF({cell}, '') AS {dtype})"
            reason = f"{col}: {_TYPE_WORDS[dtype]}"
            reason_cases.append(f"WHEN NOT {blank} AND {value} IS NULL THEN {_s(reason)}")
        aggs.append(f"count(*) FILTER (WHERE {blank}) AS {_q(f'blank{i}')}")
        selects.append(f"{value} AS {_q(out)}")
    reject = f"CASE {' '.join(reason_cases)} END" if reason_cases else "NULL"
    ctx.con.execute(
        f"CREATE OR REPLACE TEMP TABLE typed AS SELECT _row, {reject} AS _reject, "
        f"{', '.join(selects)} FROM src"
    )
    stats = ctx.scalar_row(f"SELECT count(*) AS n, {', '.join(aggs)} FROM src")
    ctx.check_rows(int(stats["n"]))
    ctx.count("rows", stats["n"])
    for i, col in enumerate(header):
        blanks = int(stats.get(f"blank{i}") or 0)
        if blanks:
            ctx.count(f"blank_{rename.get(col, col)}", blanks)
    reasons = ctx.con.execute(
        "SELECT _reject, count(*), min(_row) FROM typed WHERE _reject IS NOT NULL "
        "GROUP BY 1 ORDER BY 1"
    ).fetchall()
    for reason, n, first in reasons:
        ctx.reject(reason, n)
        ctx.report.notes.append(f"{n:,} rows rejected ({reason}), the first at line {first + 1}")
    ctx.count("rows_rejected", sum(n for _, n, _ in reasons))
    ctx.con.execute("DELETE FROM typed WHERE _reject IS NOT NULL")
    return "typed", outs


def _select_cols(cols: list[str]) -> str:
    return ", ".join(_q(c) for c in cols)


# -- online retail -------------------------------------------------------------------------

_RETAIL_COLUMNS = {
    "InvoiceNo": "VARCHAR",
    "StockCode": "VARCHAR",
    "Description": "VARCHAR",
    "Quantity": "VARCHAR",
    "InvoiceDate": "VARCHAR",
    "UnitPrice": "VARCHAR",
    "CustomerID": "VARCHAR",
    "Country": "VARCHAR",
}
_NEGATIVE_PRICE = "order_lines: UnitPrice below 0 (bad-debt adjustment; unit_price must be >= 0)"
_EMPTY_INVOICE = "orders: every line of the invoice was rejected"


def _load_online_retail(ctx: _Context) -> None:
    ctx.step(f"reading {ctx.path.name}")
    s = {k: _q(v) for k, v in _read_csv_text(ctx, ",", _RETAIL_COLUMNS).items()}
    ctx.step("reshaping")
    cell = {k: f"NULLIF(trim({v}), '')" for k, v in s.items()}
    ts_formats = ("%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%Y-%m-%d %H:%M")
    ts = ", ".join(
        [f"TRY_CAST({cell['InvoiceDate']} AS TIMESTAMP)"]
        + [f"try_strptime({cell['InvoiceDate']}, {_s(f)})" for f in ts_formats]
    )
    qty_d = f"TRY_CAST({cell['Quantity']} AS DOUBLE)"
    cust = cell["CustomerID"]
    ctx.con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE lines AS
        SELECT *,
            CASE
                WHEN invoice IS NULL THEN 'order_lines: InvoiceNo is blank'
                WHEN stock_code IS NULL THEN 'order_lines: StockCode is blank'
                WHEN quantity IS NULL THEN 'order_lines: Quantity is not a whole number'
                WHEN ts IS NULL THEN 'order_lines: InvoiceDate is not a date-time'
                WHEN unit_price IS NULL THEN 'order_lines: UnitPrice is not a number'
                WHEN unit_price < 0 THEN {_s(_NEGATIVE_PRICE)}
            END AS reject,
            row_number() OVER (PARTITION BY invoice ORDER BY _row) AS line_no
        FROM (
            SELECT _row,
                {cell["InvoiceNo"]} AS invoice,
                {cell["StockCode"]} AS stock_code,
                {cell["Description"]} AS description,
                CASE WHEN {qty_d} = round({qty_d}) THEN CAST({qty_d} AS BIGINT) END AS quantity,
                coalesce({ts}) AS ts,
                TRY_CAST({cell["UnitPrice"]} AS DOUBLE) AS unit_price,
                CASE WHEN regexp_full_match({cust}, '[0-9]+\\.0*')
                     THEN regexp_replace({cust}, '\\.0*$', '') ELSE {cust} END AS customer_id,
                {cell["Country"]} AS country,
                {cell["CustomerID"]} IS NULL AS no_customer,
                starts_with(coalesce({cell["InvoiceNo"]}, ''), 'C') AS cancellation
            FROM src
        )
        """
    )
    stats = ctx.scalar_row(
        """
        SELECT count(*) AS lines,
            count(*) FILTER (WHERE reject IS NULL) AS lines_accepted,
            count(*) FILTER (WHERE reject IS NOT NULL) AS lines_rejected,
            count(*) FILTER (WHERE no_customer) AS lines_without_customer,
            count(*) FILTER (WHERE cancellation) AS cancellation_lines,
            count(DISTINCT invoice) FILTER (WHERE cancellation) AS cancelled_invoices,
            count(*) FILTER (WHERE quantity < 0 AND NOT cancellation)
                AS negative_quantity_not_cancellation,
            count(*) FILTER (WHERE unit_price <= 0) AS unit_price_zero_or_negative,
            count(*) FILTER (WHERE unit_price < 0) AS unit_price_negative,
            count(DISTINCT invoice) FILTER (WHERE starts_with(invoice, 'A'))
                AS adjustment_invoices,
            count(*) FILTER (WHERE description IS NULL) AS lines_without_description,
            count(DISTINCT invoice) AS invoices,
            count(DISTINCT country) AS countries
        FROM lines
        """
    )
    every = ", ".join(s.values())
    dup = ctx.scalar_row(f"SELECT count(*) - count(DISTINCT ({every})) AS n FROM src")
    reasons = ctx.con.execute(
        "SELECT reject, count(*) FROM lines WHERE reject IS NOT NULL GROUP BY 1 ORDER BY 1"
    ).fetchall()
    for reason, n in reasons:
        ctx.reject(reason, n)
    ctx.check_rows(int(stats["lines"]))

    orders = ctx.arrow(
        """
        SELECT invoice AS order_id, min(customer_id) AS customer_id, min(ts) AS ts,
            'web' AS channel, arg_min(country, _row) AS country,
            CASE WHEN starts_with(invoice, 'C') THEN 'cancelled' ELSE 'completed' END AS status,
            'GBP' AS currency
        FROM lines WHERE reject IS NULL
        GROUP BY invoice ORDER BY min(_row)
        """
    )
    empty_invoices = int(
        ctx.scalar_row(
            """
            SELECT count(*) AS n FROM (
                SELECT invoice FROM lines WHERE invoice IS NOT NULL
                GROUP BY invoice HAVING count(*) FILTER (WHERE reject IS NULL) = 0
            )
            """
        )["n"]
    )
    ctx.reject(_EMPTY_INVOICE, empty_invoices)
    order_lines = ctx.arrow(
        """
        SELECT invoice AS order_id, line_no, stock_code AS product_id, quantity, unit_price
        FROM lines WHERE reject IS NULL ORDER BY _row
        """
    )
    customers = ctx.arrow(
        """
        WITH ok AS (SELECT * FROM lines WHERE reject IS NULL AND customer_id IS NOT NULL),
        by_country AS (
            SELECT customer_id, country, count(*) AS n, min(_row) AS first
            FROM ok WHERE country IS NOT NULL GROUP BY ALL
        ),
        top AS (
            SELECT customer_id, country FROM by_country
            QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY n DESC, first) = 1
        )
        SELECT c.customer_id, c.created_at, top.country
        FROM (SELECT customer_id, min(ts) AS created_at, min(_row) AS first
              FROM ok GROUP BY customer_id) AS c
        LEFT JOIN top USING (customer_id)
        ORDER BY c.first
        """
    )
    products = ctx.arrow(
        """
        WITH ok AS (SELECT * FROM lines WHERE reject IS NULL),
        by_name AS (
            SELECT stock_code, description, count(*) AS n, min(_row) AS first
            FROM ok WHERE description IS NOT NULL GROUP BY ALL
        ),
        names AS (
            SELECT stock_code, description FROM by_name
            QUALIFY row_number() OVER (PARTITION BY stock_code ORDER BY n DESC, first) = 1
        ),
        prices AS (
            SELECT stock_code,
                median(unit_price) FILTER (WHERE quantity > 0 AND unit_price > 0) AS price,
                min(_row) AS first
            FROM ok GROUP BY stock_code
        )
        SELECT p.stock_code AS product_id, names.description AS name,
            CAST(NULL AS VARCHAR) AS category, p.price, TRUE AS in_stock
        FROM prices AS p LEFT JOIN names USING (stock_code)
        ORDER BY p.first
        """
    )
    for key in (
        "lines",
        "lines_accepted",
        "lines_rejected",
        "lines_without_customer",
        "cancellation_lines",
        "cancelled_invoices",
        "negative_quantity_not_cancellation",
        "unit_price_zero_or_negative",
        "unit_price_negative",
        "adjustment_invoices",
        "lines_without_description",
    ):
        ctx.count(key, stats[key])
    ctx.count("exact_duplicate_lines", dup["n"])
    ctx.count("invoices", stats["invoices"])
    ctx.count("orders", orders.num_rows)
    ctx.count("orders_rejected", empty_invoices)
    ctx.count("customers", customers.num_rows)
    ctx.count("products", products.num_rows)
    ctx.count("products_without_price", products.column("price").null_count)
    ctx.count("countries", stats["countries"])
    if dup["n"]:
        ctx.report.notes.append(
            f"{int(dup['n']):,} lines repeat an earlier line exactly; line_no keeps them as "
            "distinct order lines, as in the file"
        )
    ctx.commit(
        {
            "customers": customers,
            "products": products,
            "orders": orders,
            "order_lines": order_lines,
        },
        rejected={"order_lines": int(stats["lines_rejected"]), "orders": empty_invoices},
    )


# -- CDNOW ---------------------------------------------------------------------------------


def _load_cdnow(ctx: _Context) -> None:
    sample = ctx.info.name == "cdnow-sample"
    prefix = "cdnow-sample-" if sample else "cdnow-"
    fields = 5 if sample else 4
    ctx.step(f"reading {ctx.path.name}")
    try:
        table = pacsv.read_csv(
            str(ctx.path),
            read_options=pacsv.ReadOptions(column_names=["line"]),
            parse_options=pacsv.ParseOptions(delimiter="\x1f", quote_char=False, escape_char=False),
            convert_options=pacsv.ConvertOptions(column_types={"line": pa.string()}),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read the file: {exc}", file=str(ctx.path)) from None
    first = table.column("line")[0].as_py() if table.num_rows else ""
    header = bool(first.split()) and not first.split()[0].isdigit()
    if header:
        table = table.slice(1)
    table = table.append_column("_row", pa.array(np.arange(1, table.num_rows + 1)))
    offset = 1 if header else 0
    ctx.con.register("src_arrow", table)
    ctx.step("reshaping")
    k = 3 if sample else 2  # position of the date
    ctx.con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE tx AS
        SELECT _row, customer_id, date, quantity, value,
            CASE
                WHEN n <> {fields} THEN 'line: not {fields} fields'
                WHEN date IS NULL THEN 'date: not a date YYYYMMDD'
                WHEN quantity IS NULL THEN 'number of CDs: not a whole number'
                WHEN value IS NULL THEN 'dollar value: not a number'
                WHEN quantity <= 0 THEN 'number of CDs: 0 or less (no unit price)'
                WHEN value < 0 THEN 'dollar value: below 0'
            END AS reject
        FROM (
            SELECT _row, len(p) AS n, p[1] AS customer_id,
                CAST(try_strptime(p[{k}], '%Y%m%d') AS DATE) AS date,
                TRY_CAST(p[{k + 1}] AS BIGINT) AS quantity,
                TRY_CAST(p[{k + 2}] AS DOUBLE) AS value
            FROM (SELECT _row, string_split_regex(trim(line), '\\s+') AS p
                  FROM src_arrow WHERE trim(line) <> '')
        )
        """
    )
    ctx.con.unregister("src_arrow")
    stats = ctx.scalar_row(
        """
        SELECT count(*) AS rows,
            count(*) FILTER (WHERE reject IS NOT NULL) AS rows_rejected,
            count(DISTINCT customer_id) FILTER (WHERE reject IS NULL) AS customers,
            count(*) FILTER (WHERE reject IS NULL AND value = 0) AS zero_value_rows,
            coalesce(sum(quantity) FILTER (WHERE reject IS NULL), 0) AS cds,
            count(*) FILTER (WHERE k > 1) AS same_day_repeat_rows
        FROM (SELECT *, row_number() OVER (PARTITION BY customer_id, date ORDER BY _row) AS k
              FROM tx)
        """
    )
    for reason, n, line in ctx.con.execute(
        "SELECT reject, count(*), min(_row) FROM tx WHERE reject IS NOT NULL GROUP BY 1"
    ).fetchall():
        ctx.reject(reason, n)
        ctx.report.notes.append(f"{n:,} rows rejected ({reason}), first at line {line + offset}")
    ctx.check_rows(int(stats["rows"]))
    raw = ctx.arrow(
        "SELECT customer_id, date, quantity, value FROM tx "
        "WHERE reject IS NULL OR reject = 'number of CDs: 0 or less (no unit price)' ORDER BY _row"
    )
    p = _s(prefix)
    customers = ctx.arrow(
        f"""
        SELECT {p} || customer_id AS customer_id, CAST(min(date) AS TIMESTAMP) AS created_at
        FROM tx WHERE reject IS NULL GROUP BY customer_id ORDER BY min(_row)
        """
    )
    orders = ctx.arrow(
        f"""
        SELECT {p} || CAST(_row AS VARCHAR) AS order_id, {p} || customer_id AS customer_id,
            CAST(date AS TIMESTAMP) AS ts, 'web' AS channel, 'completed' AS status,
            'USD' AS currency
        FROM tx WHERE reject IS NULL ORDER BY _row
        """
    )
    order_lines = ctx.arrow(
        f"""
        SELECT {p} || CAST(_row AS VARCHAR) AS order_id, CAST(1 AS BIGINT) AS line_no,
            'CD' AS product_id, quantity, value / quantity AS unit_price
        FROM tx WHERE reject IS NULL ORDER BY _row
        """
    )
    products = ctx.arrow(
        """
        SELECT 'CD' AS product_id, 'Compact disc' AS name, 'music' AS category,
            median(value / quantity) FILTER (WHERE value > 0) AS price, TRUE AS in_stock
        FROM tx WHERE reject IS NULL
        """
    )
    for key in ("rows", "rows_rejected", "customers", "zero_value_rows", "cds"):
        ctx.count(key, stats[key])
    ctx.count("same_day_repeat_rows", stats["same_day_repeat_rows"])
    ctx.count("orders", orders.num_rows)
    if stats["zero_value_rows"]:
        ctx.report.notes.append(
            f"{int(stats['zero_value_rows']):,} purchases have a dollar value of 0: loaded with "
            "unit_price 0"
        )
    other = "cdnow" if sample else "cdnow-sample"
    ctx.report.notes.append(
        f"customer and order ids are prefixed {prefix!r} in the data-model tables: the sample "
        f"and the full cohort share customers, and loading both {ctx.info.name} and {other} "
        f"into one warehouse would otherwise mix them; {ctx.info.raw_table} keeps the original "
        "ids"
    )
    ctx.commit(
        {
            "customers": customers,
            "products": products,
            "orders": orders,
            "order_lines": order_lines,
        },
        rejected={
            "orders": int(stats["rows_rejected"]),
            "order_lines": int(stats["rows_rejected"]),
        },
    )
    ctx.raw(raw)


# -- Hillstrom -----------------------------------------------------------------------------

_HILLSTROM_COLUMNS = {
    "recency": "BIGINT",
    "history_segment": "VARCHAR",
    "history": "DOUBLE",
    "mens": "BIGINT",
    "womens": "BIGINT",
    "zip_code": "VARCHAR",
    "newbie": "BIGINT",
    "channel": "VARCHAR",
    "segment": "VARCHAR",
    "visit": "BIGINT",
    "conversion": "BIGINT",
    "spend": "DOUBLE",
}
_HILLSTROM_ATTRIBUTES = (
    "recency",
    "history_segment",
    "history",
    "mens",
    "womens",
    "zip_code",
    "newbie",
    "channel",
)


def _json_of(cols: list[str] | tuple[str, ...]) -> str:
    pairs = ", ".join(f"{_q(c)} := {_q(c)}" for c in cols)
    return f"CAST(to_json(struct_pack({pairs})) AS VARCHAR)"


def _load_hillstrom(ctx: _Context) -> None:
    ctx.step(f"reading {ctx.path.name}")
    spelling = _read_csv_text(ctx, ",", _HILLSTROM_COLUMNS)
    ctx.step("reshaping")
    canon = {v: k for k, v in spelling.items()}
    _typed(ctx, _HILLSTROM_COLUMNS, spelling, rename=canon)
    segment_reason = "segment: not Mens E-Mail, Womens E-Mail or No E-Mail"
    ctx.con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE h AS
        SELECT *, 'hillstrom-' || CAST(_row AS VARCHAR) AS customer_id,
            CASE segment WHEN 'Mens E-Mail' THEN 'mens' WHEN 'Womens E-Mail' THEN 'womens' END
                AS variant,
            segment = 'No E-Mail' AS control,
            TIMESTAMP {_s(HILLSTROM_SENT)} + to_minutes(CAST(60 + (_row * 7919) % 18660 AS BIGINT))
                AS visit_ts
        FROM typed
        """
    )
    bad_segment = int(
        ctx.scalar_row(
            "SELECT count(*) AS n FROM h WHERE variant IS NULL AND NOT coalesce(control, FALSE)"
        )["n"]
    )
    ctx.reject(segment_reason, bad_segment)
    ctx.con.execute("DELETE FROM h WHERE variant IS NULL AND NOT coalesce(control, FALSE)")
    raw = ctx.arrow(
        f"SELECT customer_id, {_select_cols(list(_HILLSTROM_COLUMNS))} FROM h ORDER BY _row"
    )
    customers = ctx.arrow(
        f"SELECT customer_id, {_json_of(_HILLSTROM_ATTRIBUTES)} AS attributes FROM h ORDER BY _row"
    )
    campaigns = ctx.arrow(
        f"""
        SELECT {_s(HILLSTROM_CAMPAIGN)} AS campaign_id,
            'MineThatData e-mail test (Mens / Womens e-mail)' AS name, 'email' AS channel,
            TIMESTAMP {_s(HILLSTROM_SENT)} AS start_ts,
            TIMESTAMP {_s(HILLSTROM_SENT)} + INTERVAL 14 DAY AS end_ts,
            'visit' AS objective
        """
    )
    exposures = ctx.arrow(
        f"""
        SELECT {_s(HILLSTROM_CAMPAIGN)} AS campaign_id, customer_id,
            CASE WHEN control THEN 'control' ELSE 'treatment' END AS "group", variant,
            TIMESTAMP {_s(HILLSTROM_SENT)} AS ts
        FROM h ORDER BY _row
        """
    )
    treated = (
        f"CASE WHEN control THEN NULL ELSE 'email' END AS channel, "
        f"CASE WHEN control THEN NULL ELSE {_s(HILLSTROM_CAMPAIGN)} END AS campaign_id"
    )
    events = ctx.arrow(
        f"""
        SELECT event_id, customer_id, ts, event_type, channel, campaign_id, value FROM (
            SELECT _row, 0 AS k, customer_id || '-visit' AS event_id, customer_id,
                visit_ts AS ts, 'page_view' AS event_type, {treated},
                CAST(NULL AS DOUBLE) AS value
            FROM h WHERE visit = 1
            UNION ALL
            SELECT _row, 1 AS k, customer_id || '-purchase', customer_id,
                visit_ts + INTERVAL 30 MINUTE, 'purchase', {treated}, spend
            FROM h WHERE conversion = 1
        ) ORDER BY _row, k
        """
    )
    stats = ctx.scalar_row(
        """
        SELECT count(*) FILTER (WHERE variant = 'mens') AS mens_email,
            count(*) FILTER (WHERE variant = 'womens') AS womens_email,
            count(*) FILTER (WHERE control) AS no_email,
            count(*) FILTER (WHERE visit = 1) AS visits,
            count(*) FILTER (WHERE conversion = 1) AS conversions,
            count(*) FILTER (WHERE conversion = 1 AND coalesce(visit, 0) = 0)
                AS conversions_without_visit
        FROM h
        """
    )
    ctx.count("customers", customers.num_rows)
    for key, value in stats.items():
        ctx.count(key, value)
    ctx.count("events", events.num_rows)
    ctx.report.notes.append(
        f"the file has no dates: e-mails are taken as sent on {HILLSTROM_SENT[:10]}; visits are "
        "spread deterministically from 1 hour to 13 days after the send, and purchases follow "
        "their visit by 30 minutes"
    )
    ctx.commit(
        {
            "customers": customers,
            "campaigns": campaigns,
            "campaign_exposures": exposures,
            "events": events,
        },
        rejected={
            "customers": bad_segment + ctx.report.counts["rows_rejected"],
            "campaign_exposures": bad_segment + ctx.report.counts["rows_rejected"],
        },
    )
    ctx.raw(raw)


# -- bank marketing, telco churn -----------------------------------------------------------

_BANK_COLUMNS = {
    "age": "BIGINT",
    "job": "VARCHAR",
    "marital": "VARCHAR",
    "education": "VARCHAR",
    "default": "VARCHAR",
    "housing": "VARCHAR",
    "loan": "VARCHAR",
    "contact": "VARCHAR",
    "month": "VARCHAR",
    "day_of_week": "VARCHAR",
    "duration": "BIGINT",
    "campaign": "BIGINT",
    "pdays": "BIGINT",
    "previous": "BIGINT",
    "poutcome": "VARCHAR",
    "emp.var.rate": "DOUBLE",
    "cons.price.idx": "DOUBLE",
    "cons.conf.idx": "DOUBLE",
    "euribor3m": "DOUBLE",
    "nr.employed": "DOUBLE",
    "y": "BOOLEAN",
}
_BANK_CLIENT = ("age", "job", "marital", "education", "default", "housing", "loan")

_TELCO_COLUMNS = {
    "customerID": "VARCHAR",
    "gender": "VARCHAR",
    "SeniorCitizen": "BIGINT",
    "Partner": "BOOLEAN",
    "Dependents": "BOOLEAN",
    "tenure": "BIGINT",
    "PhoneService": "BOOLEAN",
    "MultipleLines": "VARCHAR",
    "InternetService": "VARCHAR",
    "OnlineSecurity": "VARCHAR",
    "OnlineBackup": "VARCHAR",
    "DeviceProtection": "VARCHAR",
    "TechSupport": "VARCHAR",
    "StreamingTV": "VARCHAR",
    "StreamingMovies": "VARCHAR",
    "Contract": "VARCHAR",
    "PaperlessBilling": "BOOLEAN",
    "PaymentMethod": "VARCHAR",
    "MonthlyCharges": "DOUBLE",
    "TotalCharges": "DOUBLE",
    "Churn": "BOOLEAN",
}


def _load_bank(ctx: _Context) -> None:
    ctx.step(f"reading {ctx.path.name}")
    spelling = _read_csv_text(ctx, ";", _BANK_COLUMNS)
    ctx.step("reshaping")
    # canonical names, with '.' as '_' (emp.var.rate -> emp_var_rate): dots in column names
    # need quoting in every SQL engine and break attribute access in Ibis and pandas
    rename = {v: k.replace(".", "_") for k, v in spelling.items()}
    _, outs = _typed(ctx, _BANK_COLUMNS, spelling, rename=rename)
    ctx.con.execute(
        "CREATE OR REPLACE TEMP TABLE b AS "
        "SELECT 'bank-' || CAST(_row AS VARCHAR) AS customer_id, * FROM typed"
    )
    raw = ctx.arrow(f"SELECT customer_id, {_select_cols(outs)} FROM b ORDER BY _row")
    customers = ctx.arrow(
        f"SELECT customer_id, {_json_of(_BANK_CLIENT)} AS attributes FROM b ORDER BY _row"
    )
    stats = ctx.scalar_row("SELECT count(*) FILTER (WHERE y) AS subscribed FROM b")
    ctx.count("customers", customers.num_rows)
    ctx.count("subscribed", stats["subscribed"])
    ctx.report.notes.append(
        "duration is known only after the call: leave it out of a model meant for targeting; "
        "column names use '_' for '.' (emp_var_rate...); customer_id is bank-<row>"
    )
    ctx.commit({"customers": customers}, rejected={"customers": ctx.report.counts["rows_rejected"]})
    ctx.raw(raw)


def _load_telco(ctx: _Context) -> None:
    ctx.step(f"reading {ctx.path.name}")
    spelling = _read_csv_text(ctx, ",", _TELCO_COLUMNS)
    ctx.step("reshaping")
    _, outs = _typed(ctx, _TELCO_COLUMNS, spelling)
    cid, gender = spelling["customerID"], spelling["gender"]
    missing_id = int(
        ctx.scalar_row(f"SELECT count(*) AS n FROM typed WHERE {_q(cid)} IS NULL")["n"]
    )
    ctx.reject("customerID: blank", missing_id)
    ctx.con.execute(f"DELETE FROM typed WHERE {_q(cid)} IS NULL")
    raw = ctx.arrow(f"SELECT {_select_cols(outs)} FROM typed ORDER BY _row")
    attrs = [c for c in outs if c not in (cid, gender)]
    customers = ctx.arrow(
        f"SELECT {_q(cid)} AS customer_id, {_q(gender)} AS gender, "
        f"{_json_of(attrs)} AS attributes FROM typed ORDER BY _row"
    )
    churn = spelling["Churn"]
    stats = ctx.scalar_row(f"SELECT count(*) FILTER (WHERE {_q(churn)}) AS churned FROM typed")
    ctx.count("customers", customers.num_rows)
    ctx.count("churned", stats["churned"])
    blank_total = ctx.report.counts.get(f"blank_{spelling['TotalCharges']}", 0)
    if blank_total:
        ctx.report.notes.append(
            f"{blank_total:,} customers have a blank TotalCharges (new customers, tenure 0): "
            "stored as NULL"
        )
    ctx.commit(
        {"customers": customers},
        rejected={"customers": ctx.report.counts["rows_rejected"] + missing_id},
    )
    ctx.raw(raw)


# -- attribution ---------------------------------------------------------------------------

_PATH_COLUMNS = {
    "path": "VARCHAR",
    "total_conversions": "BIGINT",
    "total_conversion_value": "DOUBLE",
    "total_null": "BIGINT",
}


def _load_attribution_paths(ctx: _Context) -> None:
    ctx.step(f"reading {ctx.path.name}")
    spelling = _read_csv_text(ctx, ";", _PATH_COLUMNS)
    ctx.step("reshaping")
    canon = {v: k for k, v in spelling.items()}
    _, outs = _typed(ctx, _PATH_COLUMNS, spelling, rename=canon)
    raw = ctx.arrow(f"SELECT {_select_cols(outs)} FROM typed ORDER BY _row")
    stats = ctx.scalar_row(
        """
        SELECT sum(total_conversions) AS conversions, sum(total_null) AS nulls,
            (SELECT count(DISTINCT trim(ch)) FROM
                (SELECT unnest(string_split(path, '>')) AS ch FROM typed)) AS channels
        FROM typed
        """
    )
    for key, value in stats.items():
        ctx.count(key, value)
    ctx.raw(raw)


def _load_attribution_journeys(ctx: _Context) -> None:
    ctx.step(f"reading {ctx.path.name}")
    try:
        data = json.loads(ctx.path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"not a readable JSON file: {exc}", file=str(ctx.path)) from None
    try:
        journeys = pa.array(data, type=pa.list_(pa.int64()))
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
        raise DataError(
            f"not a list of journeys: {exc}",
            file=str(ctx.path),
            expected="a JSON list of lists of channel ids, e.g. [[3, 1, 20], [4]]",
        ) from None
    ctx.step("reshaping")
    n = len(journeys)
    lengths = np.asarray(
        journeys.value_lengths().fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64
    )
    channel = journeys.flatten()
    journey_id = np.repeat(np.arange(1, n + 1, dtype=np.int64), lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    position = np.arange(len(channel), dtype=np.int64) - starts + 1
    raw = pa.table(
        {"journey_id": journey_id, "position": position, "channel": channel.cast(pa.int64())}
    )
    ctx.check_rows(n)
    ctx.count("journeys", n)
    ctx.count("touches", raw.num_rows)
    ctx.count("empty_journeys", int((lengths == 0).sum()))
    ctx.count("channels", len(np.unique(channel.drop_null().to_numpy())))
    ctx.raw(raw)


_LOADERS: dict[str, tuple[Callable[[_Context], None], int]] = {
    # loader, number of steps (reading, reshaping, one per table checked, committing, raw table)
    "online-retail": (_load_online_retail, 7),
    "cdnow": (_load_cdnow, 8),
    "cdnow-sample": (_load_cdnow, 8),
    "hillstrom": (_load_hillstrom, 8),
    "bank-marketing": (_load_bank, 5),
    "telco-churn": (_load_telco, 5),
    "attribution-paths": (_load_attribution_paths, 3),
    "attribution-journeys": (_load_attribution_journeys, 3),
}
