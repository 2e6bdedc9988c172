"""Point-in-time features: exact values on a hand-built shop, labels, stacking, the spec, no
leakage (both engines), consent, pii, bad input, and a synthetic shop checked against pandas."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from mercato.data.ingest import ingest_folder, ingest_frame
from mercato.data.schema import TABLES
from mercato.data.synth import generate_shop
from mercato.data.warehouse import Warehouse
from mercato.errors import DataError
from mercato.features import FeatureSet, build_features, build_training_set

CUTOFF = "2025-03-01"


def _load(wh, table: str, rows: list[dict]) -> None:
    ingest_frame(wh, table, pd.DataFrame(rows))


def _shop(wh) -> None:
    """A hand-built shop whose every feature at 2025-03-01 is known (see the comments)."""
    _load(wh, "customers", [
        {"customer_id": "a", "created_at": "2024-12-01", "country": "FR", "email": "a@example.com",
         "name": "Ann", "phone": "+447700900001", "birth_year": 1980, "gender": "f",
         "attributes": '{"tier": "gold", "score": 3}'},
        {"customer_id": "b", "created_at": "2025-02-20", "country": "DE",
         "attributes": '{"tier": "silver"}', "birth_year": 1990, "gender": "m"},
        # c signs up after the cutoff: not known at it
        {"customer_id": "c", "created_at": "2025-03-05", "country": "FR"},
        # e objected to profiling: never in a feature set
        {"customer_id": "e", "created_at": "2024-11-01", "country": "ES"},
        # g has no sign-up date: known by its order
        {"customer_id": "g", "created_at": None, "country": "IT"},
    ])  # fmt: skip
    _load(wh, "products", [
        {"product_id": "P1", "category": "Books", "price": 10.0},
        {"product_id": "P2", "category": "Toys", "price": 20.0},
        {"product_id": "P3", "category": "Garden", "price": 5.0},
    ])  # fmt: skip
    _load(wh, "orders", [
        {"order_id": "A1", "customer_id": "a", "ts": "2025-01-10", "status": "completed"},
        {"order_id": "A2", "customer_id": "a", "ts": "2025-02-20", "status": "completed"},
        {"order_id": "A3", "customer_id": "a", "ts": "2025-02-25", "status": "returned"},
        {"order_id": "A4", "customer_id": "a", "ts": "2025-03-01", "status": "completed"},
        {"order_id": "A5", "customer_id": "a", "ts": "2025-03-10", "status": "completed"},
        {"order_id": "B1", "customer_id": "b", "ts": "2025-02-26", "status": "completed"},
        {"order_id": "C1", "customer_id": "c", "ts": "2025-03-10", "status": "completed"},
        {"order_id": "E1", "customer_id": "e", "ts": "2025-02-01", "status": "completed"},
        {"order_id": "G1", "customer_id": "g", "ts": "2025-02-10", "status": "completed"},
        {"order_id": "X1", "customer_id": None, "ts": "2025-02-11", "status": "completed"},
    ])  # fmt: skip
    _load(wh, "order_lines", [
        {"order_id": "A1", "line_no": 1, "product_id": "P1", "quantity": 2, "unit_price": 10.0},
        {"order_id": "A1", "line_no": 2, "product_id": "P2", "quantity": 1, "unit_price": 20.0},
        {"order_id": "A2", "line_no": 1, "product_id": "P2", "quantity": 1, "unit_price": 20.0},
        {"order_id": "A3", "line_no": 1, "product_id": "P2", "quantity": -1, "unit_price": 20.0},
        {"order_id": "A4", "line_no": 1, "product_id": "P3", "quantity": 2, "unit_price": 5.0},
        {"order_id": "A5", "line_no": 1, "product_id": "P1", "quantity": 1, "unit_price": 10.0},
        {"order_id": "B1", "line_no": 1, "product_id": "P3", "quantity": 4, "unit_price": 5.0},
        {"order_id": "C1", "line_no": 1, "product_id": "P1", "quantity": 1, "unit_price": 10.0},
        # e's order would make Garden the top category: objectors do not count
        {"order_id": "E1", "line_no": 1, "product_id": "P3", "quantity": 20, "unit_price": 5.0},
        {"order_id": "G1", "line_no": 1, "product_id": "P1", "quantity": 1, "unit_price": 10.0},
        {"order_id": "X1", "line_no": 1, "product_id": "P2", "quantity": 9, "unit_price": 20.0},
    ])  # fmt: skip
    ev = [
        # a, before the cutoff
        ("a1", "a", "S1", "2025-02-27 10:00", "view", "P1", "seo", None, None),
        ("a2", "a", "S1", "2025-02-27 10:05", "add_to_cart", "P1", "seo", None, 10.0),
        ("a3", "a", "S1", "2025-02-27 10:06", "add_to_cart", "P2", "seo", None, None),
        ("a4", "a", "S2", "2025-02-28 09:00", "remove_from_cart", "P2", "direct", None, None),
        ("a5", "a", "S3", "2025-02-10 12:00", "view", "P2", "email", "CAMP1", None),
        ("a6", "a", None, "2025-02-10 12:01", "email_open", None, "email", "CAMP1", None),
        ("a7", "a", "S4", "2025-01-05 00:00", "search", None, "direct", None, None),
        # a, at and after the cutoff: never features
        ("a8", "a", "S5", "2025-03-01 00:00", "view", "P1", "seo", None, None),
        ("a9", "a", "S6", "2025-03-31 12:00", "view", "P1", "seo", None, None),
        # b: a cart before its order (bought), one after it (open)
        ("b1", "b", "S7", "2025-02-25 10:00", "add_to_cart", "P3", "sem", None, 5.0),
        ("b2", "b", "S7", "2025-02-26 10:00", "begin_checkout", None, "sem", None, None),
        ("b3", "b", "S8", "2025-02-27 10:00", "add_to_cart", "P1", "sem", None, 10.0),
        # d is known only by an event (no customers row)
        ("d1", "d", "S9", "2025-02-25 00:00", "view", "P1", "seo", None, None),
        # e objected: its many events must not make 'ads' a top channel
        *[(f"e{i}", "e", "S10", "2025-02-20", "ad_click", None, "ads", None, None)
          for i in range(5)],
        # an anonymous visitor
        ("v1", None, "S11", "2025-02-20", "view", "P1", "seo", None, None),
    ]  # fmt: skip
    events = pd.DataFrame(
        ev,
        columns=["event_id", "customer_id", "session_id", "ts", "event_type", "product_id",
                 "channel", "campaign_id", "value"],
    )  # fmt: skip
    events["anonymous_id"] = np.where(events.customer_id.isna(), "anon-1", None)
    ingest_frame(wh, "events", events)
    _load(wh, "campaign_exposures", [
        {"campaign_id": "CAMP1", "customer_id": "a", "group": "treatment", "ts": "2025-02-15"},
        {"campaign_id": "CAMP2", "customer_id": "a", "group": "control", "ts": "2025-02-01"},
        {"campaign_id": "CAMP1", "customer_id": "b", "group": "treatment", "ts": "2025-02-28"},
    ])  # fmt: skip
    _load(wh, "consents", [
        {"customer_id": "a", "purpose": "email", "granted": True, "ts": "2024-12-01"},
        {"customer_id": "a", "purpose": "email", "granted": False, "ts": "2025-01-15"},
        {"customer_id": "a", "purpose": "email", "granted": True, "ts": "2025-02-01"},
        {"customer_id": "a", "purpose": "ads", "granted": True, "ts": "2025-03-05"},
        {"customer_id": "b", "purpose": "email", "granted": True, "ts": "2025-02-20"},
        {"customer_id": "e", "purpose": "profiling", "granted": False, "ts": "2025-01-01"},
    ])  # fmt: skip


@pytest.fixture
def shop(warehouse):
    _shop(warehouse)
    return warehouse


@pytest.fixture(scope="module")
def duck(tmp_path_factory):
    """The hand-built shop on DuckDB, shared by the tests that only read it."""
    wh = Warehouse(f"duckdb://{tmp_path_factory.mktemp('features') / 'wh.duckdb'}")
    wh.ensure_tables()
    _shop(wh)
    yield wh
    wh.close()


@pytest.fixture(scope="module")
def base(duck) -> FeatureSet:
    """Features at the cutoff, with the sensitive frame; its spec spares other builds the
    discovery queries."""
    return build_features(duck, CUTOFF, sensitive=True)


def _row(fs: FeatureSet, cid: str) -> pd.Series:
    rows = fs.frame[fs.frame.customer_id == cid]
    assert len(rows) == 1, f"{cid}: {len(rows)} rows"
    return rows.iloc[0]


# -- exact values ----------------------------------------------------------------------------


def test_population_and_exact_features(shop):
    fs = build_features(shop, CUTOFF, label="purchase", horizon_days=14)
    # a, b signed up before the cutoff; d had an event, g an order; c came later; e objected
    assert fs.frame.customer_id.tolist() == ["a", "b", "d", "g"]
    assert any("1 of the 5 customers" in n and "profiling" in n for n in fs.notes), fs.notes
    assert fs.cutoff == pd.Timestamp(CUTOFF) and fs.label == "purchase"
    # the columns found before the cutoff, objectors and the guest order left out
    spec = fs.spec()
    assert spec["categories"] == ["Toys", "Books", "Garden"]  # 40, 30, 20
    assert spec["channels"] == ["seo", "sem", "direct", "email"]  # 4, 3, 2, 2: count, then name
    assert spec["attributes"] == [["score", "number"], ["tier", "string"]]

    a = _row(fs, "a")
    expected_a = {
        "country": "FR", "attr_tier": "gold", "attr_score": 3.0,
        "consent_email": 1, "consent_ads": 0, "consent_sms": 0,
        "tenure_days": 90.0,  # signed up 2024-12-01
        "recency_days": 9.0, "frequency": 2, "monetary": 40.0, "avg_order_value": 30.0,
        "returns": 1, "days_since_first_order": 50.0,
        "orders_7d": 0, "spend_7d": 0.0, "orders_30d": 1, "spend_30d": 20.0,
        "orders_90d": 2, "spend_90d": 60.0, "orders_trend_30d": 0, "spend_trend_30d": -20.0,
        "distinct_categories": 2, "cat_share_toys": 40 / 60, "cat_share_books": 20 / 60,
        "cat_share_garden": 0.0,
        "events_7d": 4, "events_30d": 6, "events_90d": 7,
        "sessions_7d": 2, "sessions_30d": 3, "sessions_90d": 4,
        "active_days_7d": 2, "active_days_30d": 3, "active_days_90d": 4,
        "view_7d": 1, "view_30d": 2, "view_90d": 2, "search_30d": 0, "search_90d": 1,
        "add_to_cart_7d": 2, "begin_checkout_90d": 0, "email_open_30d": 1, "email_click_90d": 0,
        "days_since_event": 15 / 24, "days_since_view": 1 + 14 / 24, "days_since_search": 55.0,
        "days_since_add_to_cart": 1 + (13 * 60 + 54) / 1440,
        "days_since_email_open": 18 + (11 * 60 + 59) / 1440,
        "events_trend_7d": 4,
        "channel_seo_90d": 3, "channel_direct_90d": 2, "channel_email_90d": 2,
        "channel_sem_90d": 0, "campaign_events_90d": 2,
        "campaigns_exposed": 1, "days_since_exposure": 14.0, "campaign_responses": 1,
        "cart_items": 1, "cart_value": 10.0,  # P1 (10) and P2 (catalogue 20) added, P2 removed
        "purchase": 1,  # A4 at the cutoff itself falls in the horizon
    }  # fmt: skip
    for name, value in expected_a.items():
        got = a[name]
        same = got == pytest.approx(value, abs=1e-6) if isinstance(value, float) else got == value
        assert same, (name, got, value)
    assert math.isnan(_row(fs, "a")["days_since_begin_checkout"])

    b = _row(fs, "b")
    assert (b.tenure_days, b.frequency, b.recency_days, b.monetary) == (9.0, 1, 3.0, 20.0)
    assert b.cat_share_garden == 1.0 and b.consent_email == 1 and b.attr_tier == "silver"
    assert math.isnan(b.attr_score)
    assert (b.campaigns_exposed, b.campaign_responses, b.days_since_exposure) == (1, 0, 1.0)
    assert (b.cart_items, b.cart_value) == (1, 10.0)  # the cart before the order was bought
    assert (b.add_to_cart_7d, b.begin_checkout_7d, b.channel_sem_90d) == (2, 1, 3)
    assert b.purchase == 0

    d = _row(fs, "d")  # an event only: no customer row, no orders
    assert pd.isna(d.country) and d.frequency == 0 and d.monetary == 0.0
    assert math.isnan(d.recency_days) and math.isnan(d.avg_order_value)
    assert math.isnan(d.cat_share_toys) and math.isnan(d.days_since_exposure)
    assert d.tenure_days == 4.0 and d.view_7d == 1 and d.cart_items == 0

    g = _row(fs, "g")  # no sign-up date: tenure from its first order
    assert (g.tenure_days, g.frequency, g.cat_share_books) == (19.0, 1, 1.0)
    assert math.isnan(g.days_since_event) and g.events_90d == 0
    # types: counts are integers, recencies floats with NaN, categories text
    assert str(fs.frame["frequency"].dtype) == "int64"
    assert str(fs.frame["recency_days"].dtype) == "float64"
    assert fs.categorical == ["country", "attr_tier"]
    assert str(fs.frame["country"].dtype) == "string"


def test_describe_feature_count_and_no_pii(duck, base):
    fs = base
    desc = fs.describe()
    assert list(desc) == fs.feature_names
    assert desc["orders_30d"] == "completed orders in the 30 days before the cutoff"
    assert "NaN" in desc["recency_days"]
    assert all(isinstance(v, str) and v for v in desc.values())
    assert fs.frame.columns.tolist() == ["customer_id", *fs.feature_names]
    assert fs.label is None and not any(c in fs.frame for c in ("purchase", "churn", "spend"))
    with pytest.raises(DataError, match="no label"):
        _ = fs.y
    # 29 fixed + windows x (6 event types + 5) + categories + channels + attribute keys
    assert len(fs.feature_names) == 29 + 3 * 11 + 3 + 4 + 2

    # columns marked pii or sensitive in the schema are never features, nor their values
    marked = {c.name for t in TABLES.values() for c in t.columns if c.pii or c.sensitive}
    assert marked >= {"email", "phone", "name", "birth_year", "gender", "anonymous_id"}
    assert not marked & set(fs.frame.columns)
    text = set(fs.frame.astype(str).to_numpy().ravel().tolist())
    assert not {"a@example.com", "Ann", "+447700900001", "anon-1", "1980", "f"} & text
    # the sensitive ones come apart, row-aligned, for a fairness audit
    assert fs.sensitive is not None
    assert fs.sensitive.customer_id.tolist() == fs.frame.customer_id.tolist()
    assert fs.sensitive.columns.tolist() == ["customer_id", "birth_year", "gender"]
    assert fs.sensitive.set_index("customer_id").loc["a"].tolist() == [1980, "f"]

    # fewer windows, fewer columns; no sensitive frame unless asked
    small = build_features(duck, CUTOFF, windows=[30])
    assert "orders_30d" in small.feature_names and "orders_7d" not in small.feature_names
    assert len(small.feature_names) == 29 + 11 + 3 + 4 + 2
    assert small.sensitive is None


def test_labels(duck, base):
    spec = base.spec()
    churn = build_features(duck, CUTOFF, label="churn", horizon_days=14, spec=spec)
    # churn is defined only for those who bought before the cutoff (d never did)
    assert dict(zip(churn.frame.customer_id, churn.frame.churn, strict=True)) == {
        "a": 0, "b": 1, "g": 1
    }  # fmt: skip
    assert any("churn is defined" in n and "1 without one" in n for n in churn.notes)
    spend = build_features(duck, CUTOFF, label="spend", horizon_days=14, spec=spec)
    assert dict(zip(spend.frame.customer_id, spend.frame.spend, strict=True)) == {
        "a": 20.0, "b": 0.0, "d": 0.0, "g": 0.0
    }  # fmt: skip
    short = build_features(duck, CUTOFF, label="spend", horizon_days=9, spec=spec)  # A5: day 9
    assert _row(short, "a").spend == 10.0
    assert short.y.tolist() == short.frame.spend.tolist()


def test_training_set_stacks_cutoffs(duck):
    ts = build_training_set(duck, ["2025-03-01", "2025-02-15"], label="purchase", horizon_days=14)
    f = ts.frame
    assert f.columns[:2].tolist() == ["customer_id", "cutoff"]
    got = list(zip(f.cutoff.dt.strftime("%m-%d"), f.customer_id, f.purchase, strict=True))
    assert got == [
        ("02-15", "a", 1), ("02-15", "g", 0),  # b signed up and d came on 02-20 and 02-25
        ("03-01", "a", 1), ("03-01", "b", 0), ("03-01", "d", 0), ("03-01", "g", 0),
    ]  # fmt: skip
    assert ts.cutoffs == [pd.Timestamp("2025-02-15"), pd.Timestamp("2025-03-01")]
    a15 = f[(f.customer_id == "a") & (f.cutoff == "2025-02-15")].iloc[0]
    assert (a15.frequency, a15.orders_30d, a15.returns, a15.tenure_days) == (1, 0, 0, 76.0)
    # the columns were fixed at the earliest cutoff: Books (20 + 10) led Toys (20) then
    assert ts.spec()["categories"] == ["Books", "Toys"]
    # each cutoff's rows are what build_features gives with the same spec
    one = build_features(duck, "2025-03-01", label="purchase", horizon_days=14, spec=ts.spec())
    later = f[f.cutoff == "2025-03-01"].drop(columns="cutoff").reset_index(drop=True)
    pd.testing.assert_frame_equal(later, one.frame)
    assert any(n.startswith("cutoff 2025-02-15:") for n in ts.notes)


def test_spec_round_trip(duck, base):
    spec = json.loads(json.dumps(base.spec()))  # JSON-able
    assert spec["features"] == base.feature_names and spec["windows"] == [7, 30, 90]
    assert spec["categorical"] == base.categorical
    # at another cutoff discovery would choose other columns (Books led Toys on 02-15): the
    # spec fixes them
    other = build_features(duck, "2025-02-15", spec=spec)
    assert other.feature_names == base.feature_names
    assert other.frame.columns.tolist() == ["customer_id", *spec["features"]]
    assert other.spec() == base.spec()
    # a tampered spec is refused
    bad = dict(spec, features=spec["features"][:-1])
    with pytest.raises(DataError, match="spec"):
        build_features(duck, CUTOFF, spec=bad)
    with pytest.raises(DataError, match="windows"):
        build_features(duck, CUTOFF, spec=spec, windows=[30])
    with pytest.raises(DataError, match="spec"):
        build_features(duck, CUTOFF, spec={"windows": [7]})


def test_restrict_customers_and_consent_purpose(duck, base):
    fs = build_features(duck, CUTOFF, customers=["b", "g", "e", "zz"], spec=base.spec())
    assert fs.frame.customer_id.tolist() == ["b", "g"]  # e objected, zz unknown
    # an opt-in purpose keeps only those who granted it (latest row before now)
    mail = build_features(duck, CUTOFF, consent_purpose="email", spec=base.spec())
    assert mail.frame.customer_id.tolist() == ["a", "b"]
    assert any("have not granted 'email'" in n for n in mail.notes)
    with pytest.raises(DataError, match="purpose"):
        build_features(duck, CUTOFF, consent_purpose="spam")


# -- no leakage ------------------------------------------------------------------------------


def test_no_feature_reads_at_or_after_the_cutoff(shop):
    """Features at a cutoff, then data at and after it added or altered: the features stay."""
    before = build_features(shop, CUTOFF, label="purchase", horizon_days=14, sensitive=True)
    at = "2025-03-01 00:00:00"
    _load(shop, "customers", [
        {"customer_id": "h", "created_at": at, "country": "NL", "attributes": '{"new": "x"}'},
    ])  # fmt: skip
    _load(shop, "products", [{"product_id": "P9", "category": "Music", "price": 99.0}])
    _load(shop, "orders", [
        {"order_id": "N1", "customer_id": "b", "ts": at, "status": "completed"},
        {"order_id": "N2", "customer_id": "g", "ts": "2025-03-02", "status": "returned"},
        {"order_id": "N3", "customer_id": "h", "ts": "2025-03-03", "status": "completed"},
        {"order_id": "N4", "customer_id": "d", "ts": "2025-03-01 00:00:00.000001",
         "status": "completed"},
    ])  # fmt: skip
    _load(shop, "order_lines", [
        {"order_id": "N1", "line_no": 1, "product_id": "P9", "quantity": 50, "unit_price": 99.0},
        {"order_id": "N2", "line_no": 1, "product_id": "P1", "quantity": -1, "unit_price": 10.0},
        {"order_id": "N3", "line_no": 1, "product_id": "P9", "quantity": 1, "unit_price": 99.0},
        {"order_id": "N4", "line_no": 1, "product_id": "P9", "quantity": 1, "unit_price": 99.0},
        # a new line on an order placed at the cutoff
        {"order_id": "A4", "line_no": 2, "product_id": "P9", "quantity": 3, "unit_price": 99.0},
    ])  # fmt: skip
    ev = pd.DataFrame(
        [
            (f"n{i}", cid, f"T{i}", ts, et, "P9", ch, camp, 99.0)
            for i, (cid, ts, et, ch, camp) in enumerate([
                ("a", at, "purchase", "ads", None),
                ("a", at, "add_to_cart", "ads", None),
                ("b", "2025-03-02", "email_click", "email", "CAMP1"),
                ("d", at, "view", "ads", None),
                ("g", "2025-03-05", "search", "ads", None),
                ("h", at, "signup", "ads", None),
                ("b", "2025-03-01 00:00:00.000001", "remove_from_cart", "ads", None),
            ])
        ],
        columns=["event_id", "customer_id", "session_id", "ts", "event_type", "product_id",
                 "channel", "campaign_id", "value"],
    )  # fmt: skip
    ingest_frame(shop, "events", ev)
    _load(shop, "campaign_exposures", [
        {"campaign_id": "CAMP9", "customer_id": "a", "group": "treatment", "ts": at},
        {"campaign_id": "CAMP9", "customer_id": "g", "group": "treatment", "ts": "2025-03-02"},
    ])  # fmt: skip
    _load(shop, "consents", [
        {"customer_id": "a", "purpose": "email", "granted": False, "ts": at},
        {"customer_id": "g", "purpose": "ads", "granted": True, "ts": "2025-03-02"},
    ])  # fmt: skip

    after = build_features(shop, CUTOFF, label="purchase", horizon_days=14, sensitive=True)
    assert after.spec() == before.spec()  # the columns found before the cutoff did not move
    feats = ["customer_id", *before.feature_names]
    pd.testing.assert_frame_equal(after.frame[feats], before.frame[feats])
    pd.testing.assert_frame_equal(after.sensitive, before.sensitive)
    # labels may change: b and d bought in the horizon now
    assert _row(after, "b").purchase == 1 and _row(before, "b").purchase == 0
    assert _row(after, "d").purchase == 1

    # An objection is honoured whenever it is made: b's row goes. And the control: an order
    # just before the cutoff does move g's features; a and d stay as they were.
    _load(shop, "consents", [
        {"customer_id": "b", "purpose": "profiling", "granted": False, "ts": "2025-03-20"},
    ])  # fmt: skip
    _load(shop, "orders", [
        {"order_id": "Z1", "customer_id": "g", "ts": "2025-02-28 23:59:59", "status": "completed"},
    ])  # fmt: skip
    moved = build_features(shop, CUTOFF, spec=before.spec())
    assert moved.frame.customer_id.tolist() == ["a", "d", "g"]
    assert _row(moved, "g").frequency == 2 and _row(before, "g").frequency == 1
    same = before.frame.customer_id.isin(["a", "d"])
    pd.testing.assert_frame_equal(
        moved.frame[feats][:2], before.frame[same][feats].reset_index(drop=True)
    )


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("cutoff", [123, 4.5, None, True, "not a date", "", [CUTOFF]])
def test_cutoff_must_be_a_date(duck, cutoff):
    with pytest.raises(DataError, match="cutoff is not a date"):
        build_features(duck, cutoff)


@pytest.mark.parametrize("horizon", [0, -3, 1.5, "7", True, float("nan")])
def test_horizon_must_be_positive_days(duck, horizon):
    with pytest.raises(DataError, match="horizon_days"):
        build_features(duck, CUTOFF, label="purchase", horizon_days=horizon)


def test_bad_arguments_name_the_parameter(duck, base):
    with pytest.raises(DataError, match="needs horizon_days"):
        build_features(duck, CUTOFF, label="purchase")
    with pytest.raises(DataError, match="horizon_days is given without a label"):
        build_features(duck, CUTOFF, horizon_days=7)
    with pytest.raises(DataError, match="unknown label"):
        build_features(duck, CUTOFF, label="clicks", horizon_days=7)
    for windows in ([], [0, 7], [7.5], "30"):
        with pytest.raises(DataError, match="windows"):
            build_features(duck, CUTOFF, windows=windows)
    with pytest.raises(DataError, match="no customer is known before the cutoff 2020-01-01"):
        build_features(duck, "2020-01-01", spec=base.spec())
    with pytest.raises(DataError, match="customers is empty"):
        build_features(duck, CUTOFF, customers=[])
    # the last data are on 2025-03-31: a 30-day horizon from 03-02 still fits (the error is
    # about the next cutoff), 31 days do not
    with pytest.raises(DataError, match=r"cutoff 2025-03-03 \+ horizon_days 30 ends at 2025-04"):
        build_training_set(duck, ["2025-03-03", "2025-03-02"], label="purchase", horizon_days=30)
    with pytest.raises(DataError, match=r"cutoff 2025-03-02 \+ horizon_days 31 ends at"):
        build_features(duck, "2025-03-02", label="purchase", horizon_days=31)
    with pytest.raises(DataError, match="cutoffs"):
        build_training_set(duck, CUTOFF, label="purchase", horizon_days=14)
    with pytest.raises(DataError, match="cutoffs"):
        build_training_set(duck, [], label="purchase", horizon_days=14)
    with pytest.raises(DataError, match="cutoffs holds the same date twice"):
        build_training_set(duck, [CUTOFF, "2025-03-01 00:00"], label="purchase", horizon_days=7)
    with pytest.raises(DataError, match="cutoffs is not a date"):
        build_training_set(duck, [CUTOFF, "soon"], label="purchase", horizon_days=7)


def test_time_zones_and_empty_tables(tmp_path):
    wh = Warehouse(f"duckdb://{tmp_path / 'wh.duckdb'}")
    # only customers and orders were ever loaded: the other tables count as empty
    _load(wh, "customers", [{"customer_id": "a", "created_at": "2025-01-01", "country": "FR"}])
    _load(wh, "orders", [
        {"order_id": "1", "customer_id": "a", "ts": "2025-01-10", "status": "completed"},
    ])  # fmt: skip
    assert not wh.has_table("events")
    # 2025-01-11 01:00 in Paris is 00:00 UTC
    fs = build_features(wh, pd.Timestamp("2025-01-11 01:00", tz="Europe/Paris"))
    assert fs.cutoff == pd.Timestamp("2025-01-11")
    a = _row(fs, "a")
    assert (a.frequency, a.recency_days, a.monetary, a.tenure_days) == (1, 1.0, 0.0, 10.0)
    assert a.events_90d == 0 and math.isnan(a.days_since_event)
    assert fs.spec()["channels"] == [] and fs.spec()["categories"] == []
    wh.close()
    empty = Warehouse("duckdb://:memory:")
    _load(empty, "customers", [{"customer_id": "a", "created_at": "2025-01-01"}])
    with pytest.raises(DataError, match="no orders or events"):
        build_features(empty, CUTOFF, label="purchase", horizon_days=1)
    with pytest.raises(DataError, match="no table 'customers'"):
        build_features(Warehouse("duckdb://:memory:"), CUTOFF)


# -- a synthetic shop, checked against pandas ------------------------------------------------


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("features_synth")
    generate_shop(root / "shop", customers=1000, days=110, seed=7)
    wh = Warehouse(f"duckdb://{root / 'wh.duckdb'}")
    ingest_folder(wh, root / "shop")
    yield wh, root / "shop"
    wh.close()


def test_synthetic_shop_matches_pandas(synth):
    wh, folder = synth
    cutoff = pd.Timestamp("2025-03-15")
    ts = build_training_set(
        wh, ["2025-02-15", cutoff], label="purchase", horizon_days=30, windows=(7, 30, 90)
    )
    assert 40 <= len(ts.feature_names) <= 80
    f = ts.frame[ts.frame.cutoff == cutoff].set_index("customer_id")
    assert f.index.is_unique and len(f) > 400

    orders = pd.read_parquet(folder / "orders")
    lines = pd.read_parquet(folder / "order_lines")
    events = pd.read_parquet(folder / "events")
    customers = pd.read_parquet(folder / "customers")
    amount = (lines.quantity * lines.unit_price).groupby(lines.order_id).sum()
    orders["amount"] = orders.order_id.map(amount).fillna(0.0)
    known = set(customers.customer_id[customers.created_at < cutoff])
    known |= set(orders.customer_id[orders.ts < cutoff].dropna())
    known |= set(events.customer_id[events.ts < cutoff].dropna())
    assert set(f.index) == known  # nobody in the synthetic shop objects to profiling

    done = orders[(orders.status == "completed") & (orders.ts < cutoff)]
    freq = done.groupby("customer_id").size().reindex(f.index, fill_value=0)
    assert (f.frequency == freq).all()
    recent = done[done.ts >= cutoff - pd.Timedelta(days=30)]
    spend = recent.groupby("customer_id").amount.sum().reindex(f.index, fill_value=0.0)
    np.testing.assert_allclose(f.spend_30d, spend, atol=1e-6)
    ev = events[(events.ts < cutoff) & events.customer_id.notna()]
    views = ev[(ev.event_type == "view") & (ev.ts >= cutoff - pd.Timedelta(days=7))]
    assert (f.view_7d == views.groupby("customer_id").size().reindex(f.index, fill_value=0)).all()
    sess = ev[ev.ts >= cutoff - pd.Timedelta(days=30)].groupby("customer_id").session_id.nunique()
    assert (f.sessions_30d == sess.reindex(f.index, fill_value=0)).all()
    days = ev.groupby("customer_id").ts.apply(lambda s: s.dt.normalize().nunique())
    assert (f.active_days_90d == days.reindex(f.index, fill_value=0)).all()  # 120-day shop: < 90
    last = ev.groupby("customer_id").ts.max()
    exp = (cutoff - last).dt.total_seconds() / 86400
    np.testing.assert_allclose(
        f.days_since_event.dropna(), exp.reindex(f.days_since_event.dropna().index)
    )
    # the label: a completed order in the 30 days after the cutoff
    after = orders[(orders.status == "completed") & (orders.ts >= cutoff)
                   & (orders.ts < cutoff + pd.Timedelta(days=30))]  # fmt: skip
    assert (f.purchase == f.index.isin(set(after.customer_id)).astype(int)).all()
    # and it is predictable from the features: buyers before buy again more often
    assert f.purchase[f.frequency > 0].mean() > f.purchase[f.frequency == 0].mean() + 0.05
    # counts are complete, recencies NaN only without history
    counts = [n for n in ts.feature_names if n.endswith("d") and not n.startswith("days_")]
    assert not ts.frame[counts].isna().any().any()
    assert (ts.frame.recency_days.isna() == (ts.frame.frequency == 0)).all()
