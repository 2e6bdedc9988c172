"""Ingestion: validation, error messages, atomicity, idempotence, on both warehouse engines."""

from __future__ import annotations

import gzip
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mercato.data import ingest as ingest_mod
from mercato.data.ingest import (
    Mapping,
    escape_formula,
    ingest_file,
    ingest_folder,
    ingest_frame,
)
from mercato.data.warehouse import STAGING_PREFIX, Warehouse
from mercato.errors import DataError

EVENTS_HEADER = "event_id,customer_id,anonymous_id,ts,event_type,product_id,value,properties\n"


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        text = text.encode("utf-8")
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text))
    else:
        path.write_bytes(text)
    return path


def staging_tables(wh: Warehouse) -> list[str]:
    return [t for t in wh.list_tables() if t.startswith(STAGING_PREFIX)]


# -- happy paths -----------------------------------------------------------------------------


def test_csv_types_quotes_and_timezones(warehouse, tmp_path):
    f = write(
        tmp_path / "ev.csv",
        EVENTS_HEADER
        + 'E1,C1,,2024-01-01 10:00:00,view,P1,1.5,"{""q"": ""red, blue""}"\n'
        + 'E2,,A9,2024-01-02T10:00:00+02:00,SEARCH,,,"{""q"": ""two\\nlines""}"\n',
    )
    rep = ingest_file(warehouse, "events", f)
    assert (rep.rows_read, rep.inserted, rep.rejected) == (2, 2, 0)
    df = warehouse.table("events").order_by("event_id").execute()
    assert list(df.event_id) == ["E1", "E2"]
    assert df.loc[0, "properties"] == '{"q": "red, blue"}'
    assert df.loc[1, "properties"] == '{"q": "two\\nlines"}'
    assert df.loc[1, "event_type"] == "search"  # choices are normalised to lower case
    assert pd.Timestamp(df.loc[1, "ts"]) == pd.Timestamp("2024-01-02 08:00:00")  # UTC
    assert df.loc[0, "value"] == 1.5 and pd.isna(df.loc[1, "value"])
    assert pd.isna(df.loc[1, "customer_id"]) and df.loc[1, "anonymous_id"] == "A9"


def test_semicolon_gzip_and_booleans(warehouse, tmp_path):
    f = write(
        tmp_path / "products.csv.gz",
        "product_id;name;price;in_stock\nP1;Mug;4.5;yes\n"
        'P2;"Pot; large\nand heavy";10;0\nP3;Cup;;\n',
    )
    rep = ingest_file(warehouse, "products", f)
    assert rep.inserted == 3
    df = warehouse.table("products").order_by("product_id").execute()
    assert df.name.tolist() == ["Mug", "Pot; large\nand heavy", "Cup"]  # quoted newline kept
    assert df.in_stock.tolist()[:2] == [True, False] and pd.isna(df.in_stock.tolist()[2])


def test_reingest_adds_nothing(warehouse, tmp_path):
    f = write(
        tmp_path / "lines.csv",
        "order_id,line_no,product_id,quantity,unit_price\n"
        "O1,1,P1,2,3.5\nO1,2,P2,1,1.0\nC1,1,P1,-2,3.5\n",
    )
    first = ingest_file(warehouse, "order_lines", f)
    second = ingest_file(warehouse, "order_lines", f)
    assert first.inserted == 3
    assert (second.inserted, second.already_present) == (0, 3)
    assert warehouse.count("order_lines") == 3
    total = warehouse.table("order_lines").quantity.sum().execute()
    assert total == 1  # the return is a negative line


def test_parquet_typed_and_tz_aware(warehouse, tmp_path):
    ts = pd.to_datetime(["2024-03-01 12:00:00+01:00", "2024-03-02 00:00:00+01:00"]).tz_convert(
        "Europe/Paris"
    )
    df = pd.DataFrame({"customer_id": ["C1", "C2"], "created_at": ts, "birth_year": [1980, None]})
    path = tmp_path / "c.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
    rep = ingest_file(warehouse, "customers", path)
    assert rep.inserted == 2
    out = warehouse.table("customers").order_by("customer_id").execute()
    assert pd.Timestamp(out.created_at[0]) == pd.Timestamp("2024-03-01 11:00:00")
    assert out.birth_year[0] == 1980


def test_dataframe_errors_name_rows(warehouse):
    df = pd.DataFrame({"product_id": ["P1", "P2", "P3"], "price": ["1.0", "cheap", "-2"]})
    with pytest.raises(DataError) as err:
        ingest_frame(warehouse, "products", df, source_name="catalogue")
    e = err.value
    assert e.file == "catalogue" and e.column == "price" and e.value == "cheap"
    assert [p["row"] for p in e.problems] == [2, 3]
    assert "below the minimum" in e.problems[1]["reason"]
    assert warehouse.count("products") == 0


def test_mapping_renames_formats_and_defaults(warehouse, tmp_path):
    m = write(
        tmp_path / "map.toml",
        '[columns]\nInvoiceNo = "order_id"\nCustomerID = "customer_id"\nWhen = "ts"\n'
        '[formats]\nts = "%m/%d/%Y %H:%M"\n[defaults]\ncurrency = "GBP"\nstatus = "completed"\n'
        '[csv]\ndelimiter = "|"\n',
    )
    f = write(tmp_path / "o.csv", "InvoiceNo|CustomerID|When\n536365|17850|12/1/2010 8:26\n")
    rep = ingest_file(warehouse, "orders", f, mapping=m)
    assert rep.inserted == 1
    row = warehouse.table("orders").execute().iloc[0]
    assert row.order_id == "536365" and row.currency == "GBP" and row.status == "completed"
    assert pd.Timestamp(row.ts) == pd.Timestamp("2010-12-01 08:26")


def test_mapping_to_unknown_column_is_refused(warehouse, tmp_path):
    m = write(tmp_path / "map.toml", '[columns]\nfoo = "nope"\n')
    f = write(tmp_path / "p.csv", "foo\n1\n")
    with pytest.raises(DataError, match="nope"):
        ingest_file(warehouse, "products", f, mapping=m)


# -- bad input -------------------------------------------------------------------------------


def test_missing_required_column(warehouse, tmp_path):
    f = write(tmp_path / "ev.csv", "event_id,ts\nE1,2024-01-01\n")
    with pytest.raises(DataError) as err:
        ingest_file(warehouse, "events", f)
    assert "event_type" in str(err.value) and "ev.csv" in str(err.value)
    assert err.value.line == 1


def test_extra_column_fails_unless_ignored(warehouse, tmp_path):
    f = write(tmp_path / "p.csv", "product_id,colour\nP1,red\n")
    with pytest.raises(DataError, match="colour"):
        ingest_file(warehouse, "products", f)
    assert warehouse.count("products") == 0
    assert ingest_file(warehouse, "products", f, ignore_extra=True).inserted == 1


def test_wrong_type_names_file_line_column_value(warehouse, tmp_path):
    f = write(
        tmp_path / "lines.csv",
        "order_id,line_no,product_id,quantity,unit_price\nO1,1,P1,2,3.5\nO1,2,P2,two,1.0\n",
    )
    with pytest.raises(DataError) as err:
        ingest_file(warehouse, "order_lines", f)
    e = err.value
    assert (e.file, e.line, e.column, e.value) == (str(f), 3, "quantity", "two")
    assert "lines.csv, line 3, column 'quantity'" in str(e)
    assert "whole number" in str(e)
    assert warehouse.count("order_lines") == 0
    assert staging_tables(warehouse) == []


def test_unparsable_date(warehouse, tmp_path):
    f = write(tmp_path / "ev.csv", EVENTS_HEADER + "E1,C1,,31/02/2024 25:00,view,,,\n")
    with pytest.raises(DataError) as err:
        ingest_file(warehouse, "events", f)
    assert err.value.column == "ts" and err.value.line == 2
    assert "date-time" in str(err.value)


def test_duplicate_keys_in_file(warehouse, tmp_path):
    f = write(
        tmp_path / "ev.csv",
        EVENTS_HEADER + "E1,C1,,2024-01-01,view,,,\nE2,C1,,2024-01-01,view,,,\n"
        "E1,C2,,2024-01-02,purchase,,,\n",
    )
    with pytest.raises(DataError) as err:
        ingest_file(warehouse, "events", f)
    assert "duplicate key event_id='E1'" in str(err.value) and err.value.line == 2
    assert warehouse.count("events") == 0
    rejects = tmp_path / "rej.csv"
    rep = ingest_file(warehouse, "events", f, skip_bad_rows=True, rejects_path=rejects)
    assert (rep.inserted, rep.duplicates_in_source) == (2, 1)
    kept = warehouse.table("events").filter(lambda t: t.event_id == "E1").execute()
    assert kept.customer_id.tolist() == ["C1"]  # the first row of a key wins
    text = rejects.read_text()
    assert "duplicate key in source" in text and ",4," not in text.split("\n")[0]


def test_empty_file_and_header_only(warehouse, tmp_path):
    with pytest.raises(DataError, match="empty"):
        ingest_file(warehouse, "products", write(tmp_path / "e.csv", ""))
    rep = ingest_file(warehouse, "products", write(tmp_path / "h.csv", "product_id,name\n"))
    assert (rep.rows_read, rep.inserted) == (0, 0)


def test_non_utf8_bytes(warehouse, tmp_path):
    f = write(tmp_path / "p.csv", b"product_id,name\nP1,Mug\nP2,Caf\xe9 cup\n")
    with pytest.raises(DataError) as err:
        ingest_file(warehouse, "products", f)
    assert err.value.line == 3 and err.value.column == "name"
    assert "UTF-8" in str(err.value)
    assert warehouse.count("products") == 0
    rep = ingest_file(warehouse, "products", f, encoding="latin-1")
    assert rep.inserted == 2
    names = set(warehouse.table("products").name.execute())
    assert "Café cup" in names


def test_ten_megabyte_field(warehouse, tmp_path):
    big = "x" * (10 * 1024 * 1024)
    f = write(tmp_path / "p.csv", f"product_id,description\nP1,short\nP2,{big}\n")
    with pytest.raises(DataError) as err:
        ingest_file(warehouse, "products", f)
    assert err.value.line == 3 and err.value.column == "description"
    assert "too long" in str(err.value)
    assert warehouse.count("products") == 0
    rep = ingest_file(warehouse, "products", f, max_field_bytes=16 * 1024 * 1024)
    assert rep.inserted == 2
    length = warehouse.table("products").description.length().max().execute()
    assert length == len(big)


def test_formula_cells_are_stored_verbatim_and_escaped_on_export(warehouse, tmp_path):
    payload = '=HYPERLINK("http://evil.example","click")'
    f = write(
        tmp_path / "p.csv",
        "product_id,name,price\n"
        f'P1,"{payload.replace(chr(34), chr(34) * 2)}",1\n'
        f'P2,"{payload.replace(chr(34), chr(34) * 2)}",oops\n',
    )
    rejects = tmp_path / "rejects.csv"
    rep = ingest_file(warehouse, "products", f, skip_bad_rows=True, rejects_path=rejects)
    assert (rep.inserted, rep.rejected) == (1, 1)
    stored = warehouse.table("products").name.execute().tolist()
    assert stored == [payload]  # data is kept as given, never evaluated
    rows = pd.read_csv(rejects, dtype=str)
    assert rows.loc[0, "name"] == "'" + payload  # a spreadsheet shows it as text
    assert rows.loc[0, "line"] == "3" and "price" in rows.loc[0, "reasons"]
    assert escape_formula(pa.array(["+1", "@x", "-2", "ok"])).to_pylist() == [
        "'+1",
        "'@x",
        "'-2",
        "ok",
    ]


def test_events_need_a_person_or_visitor(warehouse, tmp_path):
    f = write(tmp_path / "ev.csv", EVENTS_HEADER + "E1,,,2024-01-01,view,,,\n")
    with pytest.raises(DataError, match="needs customer_id or anonymous_id"):
        ingest_file(warehouse, "events", f)


def test_choices_are_enforced(warehouse, tmp_path):
    f = write(tmp_path / "ev.csv", EVENTS_HEADER + "E1,C1,,2024-01-01,teleport,,,\n")
    with pytest.raises(DataError) as err:
        ingest_file(warehouse, "events", f)
    assert err.value.column == "event_type" and "add_to_cart" in str(err.value)


def test_skip_bad_rows_counts_reasons(warehouse, tmp_path):
    f = write(
        tmp_path / "lines.csv",
        "order_id,line_no,product_id,quantity,unit_price\n"
        "O1,1,P1,2,3.5\nO1,2,P2,x,1\nO1,3,,1,1\nO1,4,P4,1,-1\n",
    )
    rep = ingest_file(warehouse, "order_lines", f, skip_bad_rows=True)
    assert (rep.inserted, rep.rejected) == (1, 3)
    assert rep.reasons == {
        "quantity: not a whole number": 1,
        "product_id: missing value": 1,
        "unit_price: below the minimum": 1,
    }
    assert Path(rep.rejects_file).exists()


def test_unknown_table_and_missing_file(warehouse, tmp_path):
    with pytest.raises(DataError, match="unknown table 'nope'"):
        ingest_frame(warehouse, "nope", pd.DataFrame({"a": [1]}))
    with pytest.raises(DataError, match="no such file"):
        ingest_file(warehouse, "products", tmp_path / "absent.csv")


# -- atomicity and streaming ----------------------------------------------------------------


def test_load_failing_midway_leaves_warehouse_unchanged(warehouse, monkeypatch):
    ingest_frame(warehouse, "products", pd.DataFrame({"product_id": ["OLD"]}))
    df = pd.DataFrame({"product_id": [f"P{i}" for i in range(5000)], "price": 1.0})
    real = Warehouse.append_arrow
    calls = {"n": 0}

    def flaky(self, name, batches):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full (simulated)")
        return real(self, name, batches)

    monkeypatch.setattr(Warehouse, "append_arrow", flaky)
    with pytest.raises(OSError, match="simulated"):
        ingest_frame(warehouse, "products", df, batch_rows=1000)
    assert calls["n"] == 3  # two batches had been staged when it failed
    assert warehouse.count("products") == 1
    assert staging_tables(warehouse) == []


def test_multi_table_commit_is_all_or_nothing(warehouse, tmp_path, monkeypatch):
    shop = tmp_path / "shop"
    (shop / "products").mkdir(parents=True)
    (shop / "customers").mkdir()
    pq.write_table(pa.table({"product_id": ["P1", "P2"]}), shop / "products" / "part-0.parquet")
    pq.write_table(pa.table({"customer_id": ["C1"]}), shop / "customers" / "part-0.parquet")
    real = Warehouse.insert_new

    def fail_second(self, target, source, keys):
        if target == "products":
            raise RuntimeError("connection lost (simulated)")
        return real(self, target, source, keys)

    monkeypatch.setattr(Warehouse, "insert_new", fail_second)
    with pytest.raises(RuntimeError, match="simulated"):
        ingest_folder(warehouse, shop)
    assert warehouse.count("customers") == 0  # customers were inserted, then rolled back
    assert warehouse.count("products") == 0
    assert staging_tables(warehouse) == []
    monkeypatch.setattr(Warehouse, "insert_new", real)
    reports = ingest_folder(warehouse, shop)
    assert {r.table: r.inserted for r in reports} == {"customers": 1, "products": 2}


def test_csv_streams_in_blocks(tmp_path):
    rows = 60_000
    body = "".join(
        f"E{i},C{i % 97},,2024-01-01 00:00:{i % 60:02d},view,P{i % 13},,\n" for i in range(rows)
    )
    f = write(tmp_path / "ev.csv", EVENTS_HEADER + body)
    wh = Warehouse("duckdb://:memory:")
    seen = []
    batches = []
    real = ingest_mod._Validator.convert

    def spy(self, batch):
        batches.append(batch.data.num_rows)
        return real(self, batch)

    ingest_mod._Validator.convert = spy
    try:
        rep = ingest_file(
            wh, "events", f, block_bytes=256 * 1024, progress=lambda d, t: seen.append((d, t))
        )
    finally:
        ingest_mod._Validator.convert = real
    assert rep.inserted == rows
    assert len(batches) > 5 and max(batches) < rows / 4  # never the whole file at once
    assert seen[-1][0] == seen[-1][1] == f.stat().st_size


def test_mapping_file_errors(tmp_path):
    with pytest.raises(DataError, match="not a valid TOML"):
        Mapping.from_file(write(tmp_path / "m.toml", "[columns\n"))
    with pytest.raises(DataError, match="unknown sections"):
        Mapping.from_file(write(tmp_path / "m2.toml", "[colums]\n"))
    with pytest.raises(DataError, match="not found"):
        Mapping.from_file(tmp_path / "absent.toml")


def test_timestamps_come_back_naive_utc(warehouse):
    df = pd.DataFrame(
        {
            "campaign_id": ["K1"],
            "channel": ["EMAIL"],
            "start_ts": [datetime(2024, 5, 1, 9, 30)],
            "cost": [120.0],
        }
    )
    ingest_frame(warehouse, "campaigns", df)
    row = warehouse.table("campaigns").execute().iloc[0]
    assert row.channel == "email"
    assert pd.Timestamp(row.start_ts) == pd.Timestamp("2024-05-01 09:30")


def test_rows_with_the_wrong_number_of_fields(warehouse, tmp_path):
    f = write(
        tmp_path / "p.csv",
        "product_id,name,price\nP1,Mug,1\nP2,Pot\nP3,Cup,2,extra\nP4,Jar,x\nP5,Bowl,3\n",
    )
    with pytest.raises(DataError) as err:
        ingest_file(warehouse, "products", f)
    e = err.value
    assert e.line == 3 and "has 2 fields (expected 3)" in str(e)
    assert [(p["line"], p["column"]) for p in e.problems] == [
        (3, None),
        (4, None),
        (5, "price"),  # numbering stays right after skipped rows
    ]
    assert warehouse.count("products") == 0
    rejects = tmp_path / "rej.csv"
    rep = ingest_file(warehouse, "products", f, skip_bad_rows=True, rejects_path=rejects)
    assert (rep.rows_read, rep.inserted, rep.rejected) == (5, 2, 3)
    assert rep.reasons["row: wrong number of fields"] == 2
    text = rejects.read_text()
    assert "P3,Cup,2,extra" in text and "has 4 fields" in text


# -- found in review -------------------------------------------------------------------------


def test_every_row_malformed_is_not_a_silent_success(warehouse, tmp_path):
    f = write(tmp_path / "trail.csv", "product_id,name,price\nP1,Mug,1,\nP2,Pot,2,\n")
    with pytest.raises(DataError) as err:
        ingest_file(warehouse, "products", f)
    assert err.value.line == 2 and "has 4 fields (expected 3)" in str(err.value)
    rep = ingest_file(warehouse, "products", f, skip_bad_rows=True, rejects_path=tmp_path / "r")
    assert (rep.rows_read, rep.inserted, rep.rejected) == (2, 0, 2)


def test_header_longer_than_64k(warehouse, tmp_path):
    pad = ",".join(f"extra_{i:05d}" for i in range(7000))
    f = write(tmp_path / "wide.csv", f"product_id,{pad}\nP1," + "," * 6999 + "\n")
    rep = ingest_file(warehouse, "products", f, ignore_extra=True)
    assert rep.inserted == 1


def test_line_numbers_count_physical_lines(warehouse, tmp_path):
    f = write(
        tmp_path / "p.csv",
        'product_id,description,price\nP1,"a\nb\nc",1\nP2,"x",bad\n',
    )
    with pytest.raises(DataError) as err:
        ingest_file(warehouse, "products", f)
    assert err.value.line == 5  # the record starts on line 5: line 2-4 hold P1's description


def test_line_numbers_survive_read_ahead(tmp_path):
    rows = ["product_id,name,price"]
    bad_lines = {}
    for i in range(40_000):
        if i in (100, 15_000, 31_000):
            rows.append(f"P{i},x")  # too few fields
            bad_lines[len(rows)] = "shape"
        elif i == 39_990:
            rows.append(f"P{i},x,notanumber")
            bad_lines[len(rows)] = "price"
        else:
            rows.append(f"P{i},name {i},1.5")
    f = write(tmp_path / "p.csv", "\n".join(rows) + "\n")
    wh = Warehouse("duckdb://:memory:")
    with pytest.raises(DataError) as err:
        ingest_file(wh, "products", f, block_bytes=64 * 1024)
    got = {p["line"]: (p["column"] or "shape") for p in err.value.problems}
    assert got == bad_lines


def test_nul_bytes_and_special_dates_are_rejected(warehouse, tmp_path):
    f = write(tmp_path / "p.csv", b"product_id,name\nP1,a\x00b\n")
    with pytest.raises(DataError, match="NUL byte"):
        ingest_file(warehouse, "products", f)
    for word in ("infinity", "epoch", "-infinity", "1066-10-14"):
        g = write(tmp_path / "o.csv", f"order_id,ts\nO1,{word}\n")
        with pytest.raises(DataError) as err:
            ingest_file(warehouse, "orders", g)
        assert err.value.column == "ts", word
    assert warehouse.count("orders") == 0 and warehouse.count("products") == 0


def test_strict_numbers_json_and_trimmed_ids(warehouse, tmp_path):
    for value in ("0x10", "1_000", "1e3", "12.5"):
        f = write(
            tmp_path / "l.csv",
            f"order_id,line_no,product_id,quantity,unit_price\nO1,1,P1,{value},1\n",
        )
        with pytest.raises(DataError, match="whole number"):
            ingest_file(warehouse, "order_lines", f)
    for value in ("1_000.5", "nan", "inf", "0x1p3"):
        f = write(tmp_path / "p.csv", f"product_id,price\nP1,{value}\n")
        with pytest.raises(DataError, match="finite number"):
            ingest_file(warehouse, "products", f)
    f = write(tmp_path / "p2.csv", "product_id,price\nP1,1.5e2\nP2,-0.5e-1\nP3,007\n")
    with pytest.raises(DataError, match="below the minimum"):
        ingest_file(warehouse, "products", f)  # -0.05 < 0, the rest parse
    f = write(tmp_path / "e.csv", EVENTS_HEADER + "E1,C1,,2024-01-01,view,,,42\n")
    with pytest.raises(DataError, match="JSON"):
        ingest_file(warehouse, "events", f)
    f = write(tmp_path / "c.csv", 'customer_id,country\n"C1 ",UK\n" C1",FR\nC2,DE\n')
    rep = ingest_file(warehouse, "customers", f, skip_bad_rows=True, rejects_path=tmp_path / "r")
    assert rep.inserted == 2 and rep.duplicates_in_source == 1  # ' C1' is 'C1'
    assert sorted(warehouse.table("customers").customer_id.execute()) == ["C1", "C2"]


def test_bom_before_a_quoted_header(warehouse, tmp_path):
    f = write(tmp_path / "p.csv", '\ufeff"product_id","name","price"\n"P1","Mug","1"\n')
    assert ingest_file(warehouse, "products", f).inserted == 1


def test_rejects_file_only_after_a_commit(warehouse, tmp_path, monkeypatch):
    f = write(tmp_path / "p.csv", "product_id,price\nP1,1\nP2,bad\n")
    rejects = tmp_path / "rej.csv"
    rep = ingest_file(
        warehouse, "products", f, skip_bad_rows=True, rejects_path=rejects, dry_run=True
    )
    assert rep.dry_run and rep.inserted == 1 and not rejects.exists()
    assert warehouse.count("products") == 0

    def broken(self, target, source, keys):
        raise RuntimeError("lost (simulated)")

    monkeypatch.setattr(Warehouse, "insert_new", broken)
    with pytest.raises(RuntimeError):
        ingest_file(warehouse, "products", f, skip_bad_rows=True, rejects_path=rejects)
    assert not rejects.exists() and not list(tmp_path.glob("*.partial"))
    monkeypatch.undo()
    rep = ingest_file(warehouse, "products", f, skip_bad_rows=True, rejects_path=rejects)
    assert rep.rejects_file == str(rejects) and oct(rejects.stat().st_mode & 0o777) == "0o600"


def test_dataframe_errors_say_row(warehouse):
    with pytest.raises(DataError) as err:
        ingest_frame(warehouse, "products", pd.DataFrame({"product_id": ["P1"], "price": ["x"]}))
    assert "row 1" in str(err.value) and err.value.row == 1 and err.value.line is None


def test_bad_delimiter_and_encoding(tmp_path):
    f = write(tmp_path / "p.csv", "product_id\tname\nP1\tMug\n")
    wh = Warehouse("duckdb://:memory:")
    assert ingest_file(wh, "products", f, delimiter="\\t").inserted == 1
    with pytest.raises(DataError, match="invalid delimiter"):
        ingest_file(wh, "products", f, delimiter="ab")
    with pytest.raises(DataError, match="unknown text encoding"):
        ingest_file(wh, "products", f, encoding="latin-9x")
    g = write(tmp_path / "mac.csv", "product_id,name\rP1,Mug\r")
    with pytest.raises(DataError, match="old Mac line endings"):
        ingest_file(wh, "products", g)


@pytest.mark.postgres
def test_concurrent_postgres_loads_insert_each_key_once(pg_url):
    import threading

    wh0 = Warehouse(pg_url)
    wh0.ensure_tables()
    df = pd.DataFrame({"product_id": [f"P{i}" for i in range(2000)], "price": 1.0})
    errors = []

    def load():
        try:
            wh = Warehouse(pg_url)
            ingest_frame(wh, "products", df)
            wh.close()
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert wh0.count("products") == 2000
    wh0.close()
