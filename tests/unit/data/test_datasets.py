"""Tests of mercato.data.datasets: the registry, the messages, and loading each data set.

Tests marked ``realdata`` read the public files from ``MERCATO_DATA_DIR`` and skip (fail when
``MERCATO_TEST_REQUIRE_ALL=1``) when it is unset or lacks a file. The others build tiny files
in the same shapes, so the reshaping rules are checked everywhere.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from mercato.data import datasets as ds
from mercato.data.datasets import (
    DATASETS,
    DatasetInfo,
    data_dir,
    dataset_path,
    list_datasets,
    load_dataset,
)
from mercato.data.warehouse import Warehouse
from mercato.errors import DataError, DatasetNotFoundError
from tests_support import data_dir_or_skip

NAMES = [
    "online-retail",
    "cdnow",
    "cdnow-sample",
    "hillstrom",
    "bank-marketing",
    "telco-churn",
    "attribution-paths",
    "attribution-journeys",
]


def real_data(name: str) -> Path:
    """The folder holding data set ``name``'s file, or skip saying what is missing."""
    return data_dir_or_skip(DATASETS[name].file)


@pytest.fixture
def wh():
    w = Warehouse("duckdb://:memory:")
    yield w
    w.close()


def table_rows(wh: Warehouse, sql: str) -> list[tuple]:
    return wh.con.con.execute(sql).fetchall()


# -- registry and messages -------------------------------------------------------------------


def test_registry_names_files_and_raw_tables():
    assert list(DATASETS) == NAMES
    for name, info in DATASETS.items():
        assert isinstance(info, DatasetInfo)
        assert info.name == name
        assert info.url.startswith("https://")
        assert info.rows > 0 and info.tables and info.licence
        raw = "ds_" + name.replace("-", "_")
        assert info.raw_table == (raw if name != "online-retail" else None)
    assert DATASETS["online-retail"].tables == ("customers", "orders", "order_lines", "products")
    assert "archive.ics.uci.edu" in DATASETS["online-retail"].url
    assert "archive.ics.uci.edu" in DATASETS["bank-marketing"].url
    assert "minethatdata" in DATASETS["hillstrom"].url
    assert "lifetimes" in DATASETS["cdnow"].url
    assert "ChannelAttribution" in DATASETS["attribution-paths"].url
    assert "shapley-attribution-model" in DATASETS["attribution-journeys"].url


def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("MERCATO_DATA_DIR", str(tmp_path / "env"))
    assert data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert data_dir() == tmp_path / "env"
    monkeypatch.delenv("MERCATO_DATA_DIR")
    assert data_dir() is None


def test_list_datasets_says_what_is_present(tmp_path):
    (tmp_path / "attribution_paths.csv").write_text("path;total_conversions\n")
    (tmp_path / "hillstrom.csv").write_text("recency\n")  # the un-gzipped name also counts
    items = {d["name"]: d for d in list_datasets(tmp_path)}
    assert list(items) == NAMES
    assert items["attribution-paths"]["present"] is True
    assert items["attribution-paths"]["path"] == str(tmp_path / "attribution_paths.csv")
    assert items["hillstrom"]["present"] is True
    assert items["hillstrom"]["path"] == str(tmp_path / "hillstrom.csv")
    assert items["online-retail"]["present"] is False
    assert items["online-retail"]["rows"] == 541_909
    assert set(items["cdnow"]) >= {
        "name",
        "file",
        "present",
        "path",
        "rows",
        "tables",
        "description",
        "url",
    }


def test_missing_file_names_file_folder_and_download(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        dataset_path("online-retail", tmp_path)
    text = str(err.value)
    assert "online_retail.csv.gz" in text
    assert str(tmp_path) in text
    assert DATASETS["online-retail"].url in text
    assert "MERCATO_DATA_DIR" in text
    with pytest.raises(DatasetNotFoundError, match="cdnow_sample.txt"):
        load_dataset(Warehouse("duckdb://:memory:"), "cdnow-sample", data_dir=tmp_path)


def test_no_data_folder_set(monkeypatch):
    monkeypatch.delenv("MERCATO_DATA_DIR", raising=False)
    with pytest.raises(DatasetNotFoundError) as err:
        dataset_path("telco-churn")
    assert "no data folder is set" in str(err.value)
    assert "MERCATO_DATA_DIR" in str(err.value)
    assert DATASETS["telco-churn"].url in str(err.value)


def test_unknown_name_lists_the_known_ones(tmp_path):
    with pytest.raises(DataError) as err:
        dataset_path("online_retail", tmp_path)
    assert not isinstance(err.value, DatasetNotFoundError)
    for name in NAMES:
        assert name in str(err.value)
    with pytest.raises(DataError, match="unknown data set"):
        load_dataset(Warehouse("duckdb://:memory:"), "nope", data_dir=tmp_path)


# -- tiny files in the real shapes -----------------------------------------------------------

RETAIL = """\
InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536365,85123A,WHITE HANGING HEART,6,12/1/2010 8:26,2.55,17850.0,United Kingdom
536365,71053,WHITE METAL LANTERN,6,12/1/2010 8:26,3.39,17850.0,United Kingdom
536365,71053,WHITE METAL LANTERN,6,12/1/2010 8:26,3.39,17850.0,United Kingdom
C536379,85123A,WHITE HANGING HEART,-1,12/1/2010 9:41,2.55,17850.0,France
536380,85123A,,2,12/1/2010 9:45,2.75,,United Kingdom
536381,22000,damaged,-5,12/2/2010 10:00,0,,United Kingdom
A563186,B,Adjust bad debt,1,8/12/2011 14:51,-11062.06,,United Kingdom
536382,85123A,WHITE HANGING HEART,1,12/3/2010 10:00,2.95,12346,United Kingdom
"""


def test_online_retail_rules_on_a_small_file(tmp_path, wh):
    (tmp_path / "online_retail.csv").write_text(RETAIL)  # plain CSV accepted for the .gz name
    calls: list[tuple[str, int, int]] = []
    report = load_dataset(wh, "online-retail", tmp_path, progress=lambda *a: calls.append(a))
    c = report.counts
    assert c["lines"] == 8 and c["lines_accepted"] == 7 and c["lines_rejected"] == 1
    assert c["lines_without_customer"] == 3
    assert c["cancellation_lines"] == 1 and c["cancelled_invoices"] == 1
    assert c["negative_quantity_not_cancellation"] == 1
    assert c["unit_price_zero_or_negative"] == 2 and c["unit_price_negative"] == 1
    assert c["exact_duplicate_lines"] == 1
    assert c["customers"] == 2 and c["products"] == 3 and c["orders"] == 5
    assert report.rejected == {ds._NEGATIVE_PRICE: 1, ds._EMPTY_INVOICE: 1}
    assert report.tables["order_lines"] == {"inserted": 7, "already_present": 0, "rejected": 1}
    assert report.tables["orders"] == {"inserted": 5, "already_present": 0, "rejected": 1}
    assert report.raw_table is None
    customers = "SELECT customer_id, country, CAST(created_at AS VARCHAR) FROM customers"
    assert table_rows(wh, customers + " ORDER BY 1") == [
        ("12346", "United Kingdom", "2010-12-03 10:00:00"),
        ("17850", "United Kingdom", "2010-12-01 08:26:00"),  # 3 lines UK, 1 France
    ]
    assert table_rows(wh, "SELECT order_id, customer_id, status FROM orders ORDER BY 1") == [
        ("536365", "17850", "completed"),
        ("536380", None, "completed"),
        ("536381", None, "completed"),
        ("536382", "12346", "completed"),
        ("C536379", "17850", "cancelled"),
    ]
    assert table_rows(
        wh, "SELECT line_no, product_id FROM order_lines WHERE order_id = '536365' ORDER BY 1"
    ) == [(1, "85123A"), (2, "71053"), (3, "71053")]
    assert table_rows(wh, "SELECT product_id, name, price FROM products ORDER BY 1") == [
        ("22000", "damaged", None),
        ("71053", "WHITE METAL LANTERN", 3.39),
        ("85123A", "WHITE HANGING HEART", 2.75),
    ]
    # progress: steps from 0 to the end, in order
    assert calls[0][1] == 0 and calls[-1] == ("done", calls[-1][2], calls[-1][2])
    assert [d for _, d, _ in calls] == sorted(d for _, d, _ in calls)
    again = load_dataset(wh, "online-retail", tmp_path)
    assert all(t["inserted"] == 0 for t in again.tables.values())
    assert again.tables["order_lines"]["already_present"] == 7


def test_a_failing_table_loads_nothing(tmp_path, wh, monkeypatch):
    (tmp_path / "online_retail.csv").write_text(RETAIL)
    real_stage = ds.stage

    def failing_stage(warehouse, table, source, **kw):
        if table == "order_lines":
            raise DataError("simulated failure")
        return real_stage(warehouse, table, source, **kw)

    monkeypatch.setattr(ds, "stage", failing_stage)
    with pytest.raises(DataError, match="simulated"):
        load_dataset(wh, "online-retail", tmp_path)
    for table in ("customers", "products", "orders"):
        assert wh.count(table) == 0
    assert not [t for t in wh.list_tables() if t.startswith("mercato_staging_")]


def test_cdnow_sample_rules_on_a_small_file(tmp_path, wh):
    (tmp_path / "cdnow_sample.txt").write_text(
        " 00004 0001 19970101  2   29.33\n"
        " 00004 0001 19970118  2   29.73\n"
        " 00018 0002 19970101  1   14.96\n"
        " 00018 0002 19970101  1    0.00\n"
        " 00021 0003 19970102  0   10.00\n"
    )
    report = load_dataset(wh, "cdnow-sample", tmp_path)
    assert report.counts["rows"] == 5 and report.counts["rows_rejected"] == 1
    assert report.counts["zero_value_rows"] == 1 and report.counts["same_day_repeat_rows"] == 1
    assert report.tables["orders"]["inserted"] == 4
    assert report.raw_table == "ds_cdnow_sample"
    assert any("cdnow-sample-" in n for n in report.notes)
    assert table_rows(wh, "SELECT customer_id FROM customers ORDER BY 1") == [
        ("cdnow-sample-00004",),
        ("cdnow-sample-00018",),
    ]
    assert table_rows(
        wh, "SELECT order_id, quantity, round(unit_price, 3) FROM order_lines ORDER BY order_id"
    ) == [
        ("cdnow-sample-1", 2, 14.665),
        ("cdnow-sample-2", 2, 14.865),
        ("cdnow-sample-3", 1, 14.96),
        ("cdnow-sample-4", 1, 0.0),
    ]
    assert table_rows(wh, "SELECT customer_id, quantity FROM ds_cdnow_sample")[-1] == ("00021", 0)


def test_cdnow_master_with_header(tmp_path, wh):
    (tmp_path / "cdnow_master.txt").write_text(
        " customer_id  date number_of_cds  dollar_value\n 00001 19970101  1   11.77\n"
    )
    report = load_dataset(wh, "cdnow", tmp_path)
    assert report.counts["rows"] == 1
    assert table_rows(wh, "SELECT * FROM ds_cdnow")[0][0] == "00001"
    assert table_rows(wh, "SELECT order_id, customer_id FROM orders") == [
        ("cdnow-1", "cdnow-00001")
    ]
    assert any("another version" in n for n in report.notes)  # 1 row, not 69,659


def test_telco_and_journeys_on_small_files(tmp_path, wh):
    header = (
        "customerID,gender,SeniorCitizen,Partner,Dependents,tenure,PhoneService,MultipleLines,"
        "InternetService,OnlineSecurity,OnlineBackup,DeviceProtection,TechSupport,StreamingTV,"
        "StreamingMovies,Contract,PaperlessBilling,PaymentMethod,MonthlyCharges,TotalCharges,Churn"
    )
    rows = [
        "7590-VHVEG,Female,0,Yes,No,1,No,No phone service,DSL,No,Yes,No,No,No,No,"
        "Month-to-month,Yes,Electronic check,29.85,29.85,No",
        "4472-LVYGI,Female,0,Yes,Yes,0,No,No phone service,DSL,Yes,No,Yes,Yes,Yes,No,"
        "Two year,Yes,Bank transfer (automatic),52.55, ,No",
    ]
    with gzip.open(tmp_path / "telco_churn.csv.gz", "wt") as fh:
        fh.write(header + "\n" + "\n".join(rows) + "\n")
    report = load_dataset(wh, "telco-churn", tmp_path)
    assert report.counts["blank_TotalCharges"] == 1
    assert table_rows(wh, 'SELECT "tenure", "TotalCharges", "Churn" FROM ds_telco_churn') == [
        (1, 29.85, False),
        (0, None, False),
    ]
    attrs = table_rows(wh, "SELECT attributes FROM customers WHERE customer_id = '4472-LVYGI'")
    attrs = json.loads(attrs[0][0])
    assert attrs["Partner"] is True and attrs["tenure"] == 0 and attrs["TotalCharges"] is None

    (tmp_path / "attribution_journeys.json").write_text("[[3, 1], [2], []]")
    report = load_dataset(wh, "attribution-journeys", tmp_path)
    assert report.counts["journeys"] == 3 and report.counts["empty_journeys"] == 1
    assert table_rows(wh, "SELECT * FROM ds_attribution_journeys ORDER BY 1, 2") == [
        (1, 1, 3),
        (1, 2, 1),
        (2, 1, 2),
    ]


def test_a_file_of_the_wrong_shape(tmp_path, wh):
    (tmp_path / "attribution_paths.csv").write_text("a;b\n1;2\n")
    with pytest.raises(DataError, match="lacks the columns"):
        load_dataset(wh, "attribution-paths", tmp_path)
    (tmp_path / "attribution_journeys.json").write_text('{"not": "a list"}')
    with pytest.raises(DataError, match="not a list of journeys"):
        load_dataset(wh, "attribution-journeys", tmp_path)


# -- the real files --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def retail():
    folder = real_data("online-retail")
    w = Warehouse("duckdb://:memory:")
    first = load_dataset(w, "online-retail", folder)
    yield w, first, folder
    w.close()


@pytest.mark.realdata
def test_online_retail_counts(retail):
    w, report, _ = retail
    c = report.counts
    assert c["lines"] == 541_909
    assert c["lines_accepted"] + c["lines_rejected"] == 541_909
    assert c["lines_without_customer"] == 135_080
    assert c["cancellation_lines"] == 9_288 and c["cancelled_invoices"] == 3_836
    assert c["negative_quantity_not_cancellation"] == 1_336
    assert c["unit_price_zero_or_negative"] == 2_517
    assert c["exact_duplicate_lines"] == 5_268
    assert report.rejected == {ds._NEGATIVE_PRICE: 2, ds._EMPTY_INVOICE: 2}
    assert c["customers"] == 4_372 and c["products"] == 4_070 and c["orders"] == 25_898
    assert c["countries"] == 38
    assert w.counts() == {
        "customers": 4_372,
        "products": 4_070,
        "orders": 25_898,
        "order_lines": 541_907,
    }
    assert table_rows(w, "SELECT count(*) FROM orders WHERE status = 'cancelled'") == [(3_836,)]
    assert table_rows(w, "SELECT customer_id FROM orders WHERE order_id = '536365'") == [("17850",)]


@pytest.mark.realdata
def test_online_retail_reload_adds_nothing(retail):
    w, _, folder = retail
    again = load_dataset(w, "online-retail", folder)
    assert {t: v["inserted"] for t, v in again.tables.items()} == {
        "customers": 0,
        "products": 0,
        "orders": 0,
        "order_lines": 0,
    }
    assert again.tables["order_lines"]["already_present"] == 541_907
    assert w.count("order_lines") == 541_907


@pytest.mark.realdata
def test_cdnow_sample_and_master_side_by_side(wh):
    folder = real_data("cdnow-sample")
    report = load_dataset(wh, "cdnow-sample", folder)
    assert report.counts["customers"] == 2_357
    assert report.tables["customers"]["inserted"] == 2_357
    assert report.tables["orders"]["inserted"] == 6_919
    assert wh.count("ds_cdnow_sample") == 6_919
    real_data("cdnow")
    master = load_dataset(wh, "cdnow", folder)
    assert master.tables["customers"]["inserted"] == 23_570
    assert master.tables["orders"]["inserted"] == 69_659
    assert wh.count("customers") == 23_570 + 2_357  # prefixed ids: nothing mixed


@pytest.mark.realdata
def test_hillstrom(wh):
    report = load_dataset(wh, "hillstrom", real_data("hillstrom"))
    assert report.tables["customers"]["inserted"] == 64_000
    assert (report.counts["mens_email"], report.counts["womens_email"]) == (21_307, 21_387)
    assert report.counts["no_email"] == 21_306
    groups = table_rows(
        wh, 'SELECT "group", variant, count(*) FROM campaign_exposures GROUP BY ALL ORDER BY 2'
    )
    assert groups == [
        ("treatment", "mens", 21_307),
        ("treatment", "womens", 21_387),
        ("control", None, 21_306),
    ]
    visits, purchases, spend = table_rows(
        wh,
        "SELECT count(*) FILTER (WHERE event_type = 'page_view'), "
        "count(*) FILTER (WHERE event_type = 'purchase'), sum(value) FROM events",
    )[0]
    raw_spend = table_rows(wh, "SELECT sum(spend) FROM ds_hillstrom")[0][0]
    assert (visits, purchases) == (report.counts["visits"], report.counts["conversions"])
    assert spend == pytest.approx(raw_spend)
    assert table_rows(
        wh,
        "SELECT min(ts) > TIMESTAMP '2008-03-01', max(ts) < TIMESTAMP '2008-03-15' FROM events",
    ) == [(True, True)]


@pytest.mark.realdata
def test_telco_bank_and_attribution(wh):
    telco = load_dataset(wh, "telco-churn", real_data("telco-churn"))
    assert telco.counts["blank_TotalCharges"] == 11
    assert telco.counts["churned"] == 1_869
    assert table_rows(wh, 'SELECT count(*) FROM ds_telco_churn WHERE "TotalCharges" IS NULL') == [
        (11,)
    ]
    bank = load_dataset(wh, "bank-marketing", real_data("bank-marketing"))
    assert bank.counts["rows"] == 41_188 and bank.counts["subscribed"] == 4_640
    assert wh.count("customers") == 7_043 + 41_188
    paths = load_dataset(wh, "attribution-paths", real_data("attribution-paths"))
    assert paths.counts["raw_rows"] == 10_000
    assert (paths.counts["conversions"], paths.counts["nulls"]) == (19_785, 68_602)
    assert paths.counts["channels"] == 12
    journeys = load_dataset(wh, "attribution-journeys", real_data("attribution-journeys"))
    assert journeys.counts["journeys"] == 2_392
    assert table_rows(wh, "SELECT count(DISTINCT journey_id) FROM ds_attribution_journeys") == [
        (2_392,)
    ]


def test_bad_cells_are_rejected_and_counted(tmp_path, wh):
    (tmp_path / "attribution_paths.csv").write_text(
        "path;total_conversions;total_conversion_value;total_null\n"
        "a > b;1;0.5;3\n"
        "b;x;0.1;1\n"
        "a;2;;0\n"
    )
    report = load_dataset(wh, "attribution-paths", tmp_path)
    assert report.counts["rows"] == 3 and report.counts["rows_rejected"] == 1
    assert report.rejected == {"total_conversions: not a whole number": 1}
    assert report.counts["blank_total_conversion_value"] == 1
    assert any("line 3" in n for n in report.notes)
    assert table_rows(wh, "SELECT * FROM ds_attribution_paths") == [
        ("a > b", 1, 0.5, 3),
        ("a", 2, None, 0),
    ]
    assert report.counts["channels"] == 2


@pytest.mark.realdata
@pytest.mark.postgres
def test_cdnow_sample_on_postgres(pg_url):
    folder = real_data("cdnow-sample")
    w = Warehouse(pg_url)
    try:
        first = load_dataset(w, "cdnow-sample", folder)
        assert first.tables["orders"]["inserted"] == 6_919
        again = load_dataset(w, "cdnow-sample", folder)
        assert again.tables["orders"]["inserted"] == 0
        assert w.count("customers") == 2_357 and w.count("ds_cdnow_sample") == 6_919
    finally:
        w.close()
