"""The synthetic shop: schema, keys, determinism, integrity, and that the data obey their truth."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mercato.data.schema import CONSENT_PURPOSES, EVENT_TYPES, TABLES
from mercato.data.synth import CHANNEL_EFFECTS, TRUTH_FILES, generate_shop
from mercato.errors import DataError, MercatoError

PA_TYPES = {
    "string": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us"),
    "json": pa.string(),
}
SMALL = {"customers": 3000, "days": 365, "seed": 5, "chunk_customers": 1000}
LARGE = {"customers": 20_000, "days": 365, "seed": 11, "chunk_customers": 8000}
EMAIL_EVENTS = ("email_send", "email_open", "email_click")


class Shop:
    """A generated shop with cached readers."""

    def __init__(self, path: Path, summary) -> None:
        self.path = path
        self.summary = summary
        self.manifest = json.loads((path / "manifest.json").read_text())
        self.meta = json.loads((path / "truth" / "meta.json").read_text())
        self.start = pd.Timestamp(self.manifest["window"]["start"])
        self.end = pd.Timestamp(self.manifest["window"]["end"])
        self.days = self.manifest["parameters"]["days"]
        self._cache: dict[str, pd.DataFrame] = {}

    def table(self, name: str) -> pd.DataFrame:
        if name not in self._cache:
            self._cache[name] = pq.read_table(self.path / name).to_pandas()
        return self._cache[name]

    def truth(self, name: str) -> pd.DataFrame:
        return self.table(f"truth/{name}.parquet")

    def days_since_start(self, ts: pd.Series) -> np.ndarray:
        return ((ts - self.start) / pd.Timedelta(days=1)).to_numpy()


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Shop:
    path = tmp_path_factory.mktemp("synth") / "small"
    return Shop(path, generate_shop(path, **SMALL))


@pytest.fixture(scope="module")
def large(tmp_path_factory) -> Shop:
    path = tmp_path_factory.mktemp("synth") / "large"
    return Shop(path, generate_shop(path, **LARGE))


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ---- layout, schema, keys -----------------------------------------------------------------


def test_every_table_is_written_in_parts_with_the_exact_schema(small: Shop) -> None:
    n_chunks = 3
    for name, table in TABLES.items():
        parts = sorted((small.path / name).glob("part-*.parquet"))
        assert len(parts) == (1 if name in ("products", "campaigns") else n_chunks), name
        expected = pa.schema([pa.field(c.name, PA_TYPES[c.dtype]) for c in table.columns])
        for part in parts:
            got = pq.read_schema(part)
            assert got.names == table.column_names, part
            assert [f.type for f in got] == [f.type for f in expected], part
        assert len(small.table(name)) == small.summary.rows[name] > 0, name
    for f in TRUTH_FILES:
        assert (small.path / "truth" / f).is_file()
    assert not (small.path / "truth" / "README.md").exists()


def test_keys_are_unique_across_parts(small: Shop) -> None:
    for name, table in TABLES.items():
        df = small.table(name)
        assert not df.duplicated(list(table.key)).any(), name
        required = [c.name for c in table.columns if c.required]
        assert not df[required].isna().any().any(), name


def test_ids_follow_the_documented_formats(small: Shop) -> None:
    assert small.table("customers").customer_id.str.fullmatch(r"C\d{7}").all()
    assert small.table("products").product_id.str.fullmatch(r"P\d{5}").all()
    assert small.table("orders").order_id.str.fullmatch(r"O\d+").all()
    events = small.table("events")
    assert events.event_id.str.fullmatch(r"E\d+").all()
    web = events[events.session_id.notna()]
    assert web.anonymous_id.notna().all()  # every web event carries the cookie id
    customers = small.table("customers")
    assert customers.email.str.fullmatch(r"[a-z]+\.[a-z]+\d+@example\.(com|org|net)").all()
    assert customers.phone.str.fullmatch(r"\+44 7700 900\d{3}").all()
    attrs = customers.attributes.map(json.loads)
    assert {"loyalty_tier", "acquisition_channel"} <= set(attrs.iloc[0])


def test_manifest_and_summary_agree(small: Shop) -> None:
    m = small.manifest
    assert m["seed"] == SMALL["seed"]
    assert m["parameters"]["customers"] == SMALL["customers"]
    assert m["rows"] == small.summary.rows
    assert small.summary.events == m["rows"]["events"] == len(small.table("events"))
    assert pd.Timestamp(m["window"]["end"]) == small.start + pd.Timedelta(days=365)
    assert pd.Timestamp(m["window"]["holdout_end"]) == small.end + pd.Timedelta(days=90)
    d = small.summary.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["customers"] == SMALL["customers"] and d["seconds"] > 0


def test_same_seed_gives_identical_bytes_and_another_seed_differs(
    small: Shop, tmp_path: Path
) -> None:
    generate_shop(tmp_path / "again", **SMALL)
    assert _digests(tmp_path / "again") == _digests(small.path)
    generate_shop(tmp_path / "other", **{**SMALL, "seed": SMALL["seed"] + 1})
    other = pq.read_table(tmp_path / "other" / "customers").to_pandas()
    assert not other.equals(small.table("customers"))
    assert (
        _digests(tmp_path / "other")["events/part-00000.parquet"]
        != _digests(small.path)["events/part-00000.parquet"]
    )


def test_rerun_replaces_earlier_parts(tmp_path: Path) -> None:
    generate_shop(tmp_path, customers=300, days=30, chunk_customers=100)
    assert len(list((tmp_path / "orders").glob("part-*.parquet"))) == 3
    summary = generate_shop(tmp_path, customers=300, days=30, chunk_customers=300)
    assert len(list((tmp_path / "orders").glob("part-*.parquet"))) == 1
    assert len(pq.read_table(tmp_path / "customers")) == summary.rows["customers"] == 300


def test_progress_reports_every_chunk(tmp_path: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    generate_shop(
        tmp_path, customers=500, days=30, chunk_customers=200, progress=lambda *a: calls.append(a)
    )
    chunks = [c for c in calls if c[0] == "customers"]
    assert [c[1] for c in chunks] == [200, 400, 500]
    assert all(c[2] == 500 for c in chunks)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"customers": 0}, "customers"),
        ({"days": 6}, "days"),
        ({"chunk_customers": 0}, "chunk_customers"),
        ({"start": "not a date"}, "start"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_parameters_name_the_parameter(tmp_path: Path, kwargs: dict, name: str) -> None:
    with pytest.raises(DataError, match=name) as err:
        generate_shop(tmp_path / "shop", **kwargs)
    assert isinstance(err.value, MercatoError)
    assert not (tmp_path / "shop").exists()  # nothing written for a bad call


# ---- integrity and the data window ---------------------------------------------------------


def test_referential_integrity(small: Shop) -> None:
    customers = set(small.table("customers").customer_id)
    products = set(small.table("products").product_id)
    campaigns = set(small.table("campaigns").campaign_id)
    orders = small.table("orders")
    lines = small.table("order_lines")
    events = small.table("events")
    assert set(lines.order_id) <= set(orders.order_id)
    assert set(orders.order_id) == set(lines.order_id)  # no order without lines
    assert set(orders.customer_id) <= customers
    assert set(lines.product_id) <= products
    assert set(events.customer_id.dropna()) <= customers
    assert set(events.product_id.dropna()) <= products
    assert set(events.campaign_id.dropna()) <= campaigns
    assert set(small.table("campaign_exposures").campaign_id) <= campaigns
    assert set(small.table("campaign_exposures").customer_id) <= customers
    tps = small.table("touchpoints")
    assert set(tps.campaign_id.dropna()) <= campaigns
    assert set(tps.customer_id.dropna()) <= customers
    assert set(small.table("consents").customer_id) == customers
    assert set(small.table("consents").purpose) <= set(CONSENT_PURPOSES)
    assert set(events.event_type) <= set(EVENT_TYPES)
    purchases = events[events.event_type == "purchase"]
    purchase_orders = purchases.properties.map(lambda p: json.loads(p)["order_id"])
    completed = orders[orders.status == "completed"]
    assert sorted(purchase_orders) == sorted(completed.order_id)
    values = completed.set_index("order_id").join(
        lines.assign(v=lines.quantity * lines.unit_price).groupby("order_id").v.sum()
    )
    by_order = dict(zip(purchase_orders, purchases.value, strict=True))
    np.testing.assert_allclose(values.v, values.index.map(by_order), atol=0.011)
    truth_orders = small.truth("orders")
    assert set(truth_orders.order_id) == set(orders.order_id)
    assert set(small.truth("customers").customer_id) == customers
    assert set(small.truth("item_preferences").product_id) <= products


def test_everything_happens_inside_the_window(small: Shop) -> None:
    for name, col in [
        ("orders", "ts"),
        ("events", "ts"),
        ("touchpoints", "ts"),
        ("campaign_exposures", "ts"),
    ]:
        ts = small.table(name)[col]
        assert ts.min() >= small.start and ts.max() < small.end, name
    created = small.table("customers").created_at
    assert created.min() >= small.start - pd.Timedelta(days=365)
    assert created.max() < small.end
    assert (created < small.start).mean() == pytest.approx(0.35, abs=0.04)


def test_returns_are_negative_lines_of_earlier_orders(small: Shop) -> None:
    orders = small.table("orders")
    lines = small.table("order_lines").merge(orders[["order_id", "status"]], on="order_id")
    assert (lines[lines.status == "completed"].quantity > 0).all()
    assert (lines[lines.status == "returned"].quantity < 0).all()
    share = (orders.status == "returned").mean()
    assert 0.01 < share < 0.05
    assert (lines.unit_price > 0).all()


# ---- sessions and the funnel ---------------------------------------------------------------


def test_funnel_is_plausible(small: Shop) -> None:
    events = small.table("events")
    web = events[events.session_id.notna()]
    types = web.groupby("session_id").event_type.agg(set)
    has_cart = types.map(lambda s: "add_to_cart" in s)
    bought = types.map(lambda s: "purchase" in s)
    abandonment = (has_cart & ~bought).sum() / has_cart.sum()
    assert 0.55 <= abandonment <= 0.75
    assert (bought <= has_cart).all()  # no purchase without a cart
    sessions_per_purchase = len(types) / bought.sum()
    assert 3.0 <= sessions_per_purchase <= 6.0
    # every purchase session has a view before the purchase
    first_view = web[web.event_type == "view"].groupby("session_id").ts.min()
    purchase_ts = web[web.event_type == "purchase"].set_index("session_id").ts
    assert purchase_ts.index.isin(first_view.index).all()
    assert (first_view.reindex(purchase_ts.index) <= purchase_ts).all()
    # most web events are identified, some only by cookie
    known = web.customer_id.notna().mean()
    assert 0.75 <= known <= 0.92
    searches = web[web.event_type == "search"].properties.map(json.loads)
    assert len(searches) > 0 and searches.map(lambda p: bool(p["query"])).all()
    assert (web.event_type == "remove_from_cart").sum() > 0


def test_nobody_gets_email_without_consent(small: Shop) -> None:
    consents = small.table("consents")
    email = consents[consents.purpose == "email"].sort_values("ts")
    refused_ever = set(email[~email.granted].customer_id)
    assert 0.15 < len(refused_ever) / small.manifest["parameters"]["customers"] < 0.3
    events = small.table("events")
    mails = events[events.event_type.isin(EMAIL_EVENTS)].sort_values("ts")
    assert mails.customer_id.notna().all()
    state = pd.merge_asof(
        mails[["customer_id", "ts"]], email[["customer_id", "ts", "granted"]],
        on="ts", by="customer_id",
    )  # fmt: skip
    assert state.granted.eq(True).all()  # consent granted, and not withdrawn, at each e-mail
    treated = small.table("campaign_exposures")
    assert not set(treated.customer_id) & refused_ever  # refusers are outside the RCT
    withdrawn = email[~email.granted & (email.source == "unsubscribe_link")]
    unsub = events[events.event_type == "unsubscribe"]
    assert set(unsub.customer_id) == set(withdrawn.customer_id)


# ---- the data obey their ground truth ------------------------------------------------------


def test_purchase_counts_follow_the_buy_till_you_die_truth(large: Shop) -> None:
    tc = large.truth("customers")
    lam, p = tc["lambda"].to_numpy(), tc.p_dropout.to_numpy()
    exposure = large.days - large.days_since_start(tc.purchase_start_ts)
    expected = -np.expm1(-lam * p * exposure) / p  # E[N] = (1 - exp(-lambda p t)) / p
    baseline = large.truth("orders").query("cause == 'baseline'")
    realised = baseline.groupby("customer_id").size().reindex(tc.customer_id, fill_value=0)
    realised = realised.to_numpy()
    se = (realised - expected).std() / np.sqrt(len(tc))
    assert abs(realised.mean() - expected.mean()) < 4 * se
    assert realised.mean() == pytest.approx(expected.mean(), rel=0.04)
    # the heterogeneity is right too: per quartile of expected purchases
    quart = pd.qcut(expected, 4, labels=False)
    for q in range(4):
        sel = quart == q
        assert realised[sel].mean() == pytest.approx(expected[sel].mean(), rel=0.1)
    # survival: P(alive at end) = exp(-lambda p t)
    alive = tc.alive_at_end.to_numpy()
    assert alive.mean() == pytest.approx(np.exp(-lam * p * exposure).mean(), abs=0.015)
    dead = ~alive
    assert (tc.death_ts[dead] < large.end).all()
    assert tc.churned.to_numpy()[alive].sum() == 0
    # dead customers order nothing in the hold-out, and never after dying
    assert tc.purchases_next_90d.to_numpy()[dead].sum() == 0
    last = baseline.groupby("customer_id").ts.max()
    deaths = tc.set_index("customer_id").death_ts
    death_of_last = deaths.reindex(last.index)
    assert ((last <= death_of_last) | death_of_last.isna()).all()


def test_holdout_outcomes_match_their_expectations(large: Shop) -> None:
    tc = large.truth("customers")
    for realised, expected in [
        ("purchases_next_90d", "expected_purchases_next_90d"),
        ("value_next_90d", "expected_value_next_90d"),
    ]:
        r, e = tc[realised].to_numpy(float), tc[expected].to_numpy()
        se = (r - e).std() / np.sqrt(len(r))
        assert abs(r.mean() - e.mean()) < 4 * se, realised
        assert r.mean() == pytest.approx(e.mean(), rel=0.06), realised
    # the hold-out is not in the tables
    assert large.table("orders").ts.max() < large.end


def test_true_purchase_probability_is_calibrated_and_below_the_oracle(large: Shop) -> None:
    from sklearn.metrics import roc_auc_score

    tc = large.truth("customers")
    p = tc["p_purchase_next_90d"].to_numpy()
    assert ((p >= 0) & (p <= 1)).all()
    # calibrated: overall and by decile of the probability
    bought = (tc["purchases_next_90d"] > 0).to_numpy()
    se = np.sqrt(p.mean() * (1 - p.mean()) / len(p))
    assert abs(bought.mean() - p.mean()) < 4 * se
    decile = pd.qcut(p, 10, labels=False, duplicates="drop")
    by = pd.DataFrame({"d": decile, "p": p, "y": bought}).groupby("d").mean()
    assert (by["y"] - by["p"]).abs().max() < 0.04, by
    # it ranks well, but not as well as knowing who is still alive (which no data shows)
    auc = roc_auc_score(bought, p)
    oracle = roc_auc_score(bought, tc["expected_purchases_next_90d"])
    assert 0.78 < auc < oracle - 0.03
    # nobody dead is certain to buy, a customer without purchases is alive for sure
    alive = tc["alive_at_end"].to_numpy()
    assert p[~alive].max() < 1 and p[alive].mean() > p[~alive].mean()


def test_order_values_match_spend_mean(large: Shop) -> None:
    orders = large.truth("orders").query("cause != 'return'")
    spend = large.truth("customers").set_index("customer_id").spend_mean
    expected = orders.customer_id.map(spend).to_numpy()
    resid = orders.value.to_numpy() - expected
    assert abs(resid.mean()) < 4 * resid.std() / np.sqrt(len(resid))


def test_randomised_email_campaign_realises_its_uplift(large: Shop) -> None:
    up = large.truth("uplift")
    n = large.manifest["parameters"]["customers"]
    assert 0.3 < len(up) / n < 0.5
    assert (up.group == "treatment").mean() == pytest.approx(0.5, abs=0.03)
    np.testing.assert_allclose(up.p_treatment - up.p_control, up.uplift_true)
    assert (up.uplift_true < 0).any() and (up.uplift_true > 0.05).any()
    # the outcome recomputed from the tables equals the truth's
    rct = large.meta["rct"]
    t0 = pd.Timestamp(rct["assignment_ts"])
    t1 = t0 + pd.Timedelta(days=rct["outcome_days"])
    orders = large.table("orders").query("status == 'completed'")
    in_window = orders[(orders.ts >= t0) & (orders.ts < t1)]
    converted = up.customer_id.isin(set(in_window.customer_id))
    assert (converted.to_numpy() == up.converted.to_numpy()).all()
    # treated - control estimates the mean true uplift
    treat, ctrl = up[up.group == "treatment"], up[up.group == "control"]
    diff = treat.converted.mean() - ctrl.converted.mean()
    se = np.sqrt(treat.converted.var() / len(treat) + ctrl.converted.var() / len(ctrl))
    assert abs(diff - up.uplift_true.mean()) < 3 * se
    assert diff > 2 * se  # the campaign works on average
    # and each arm converts at its true rate
    for arm, col in [(treat, "p_treatment"), (ctrl, "p_control")]:
        r = arm.converted.to_numpy(float) - arm[col].to_numpy()
        assert abs(r.mean()) < 4 * r.std() / np.sqrt(len(r))
    # treated customers got the e-mail, the control group did not
    events = large.table("events")
    rct_mail = events[
        (events.campaign_id == "CAMP-EMAIL-RCT") & (events.event_type == "email_send")
    ]
    sent = set(rct_mail.customer_id)
    assert sent == set(treat.customer_id)


def test_channel_effects_order_attributable_conversions(large: Shop) -> None:
    ch = large.truth("channels").set_index("channel")
    assert dict(ch.true_incremental_effect) == CHANNEL_EFFECTS
    by_effect = ch.sort_values("true_incremental_effect", ascending=False).index.tolist()
    by_conversions = ch.sort_values("attributable_conversions_true", ascending=False).index.tolist()
    assert by_conversions == by_effect
    # per contact, conversions are proportional to the true effect (Poisson z-scores)
    exposure = ch.touchpoints * ch.true_incremental_effect
    expected = exposure * ch.attributable_conversions_true.sum() / exposure.sum()
    z = (ch.attributable_conversions_true - expected) / np.sqrt(expected)
    assert (z.abs() < 4).all(), z.to_dict()
    touchpoints = large.table("touchpoints")
    assert dict(touchpoints.channel.value_counts()) == dict(ch.touchpoints)
    # every caused order follows its touchpoint within 7 days, in the same channel
    caused = large.truth("orders").query("cause == 'touchpoint'")
    assert caused.groupby("cause_channel").size().to_dict() == dict(
        ch.attributable_conversions_true
    )
    tp = caused.merge(
        touchpoints, left_on="touchpoint_id", right_on="touchpoint_id", suffixes=("", "_tp")
    )
    assert len(tp) == len(caused)
    lag = (tp.ts - tp.ts_tp) / pd.Timedelta(days=1)
    assert (lag >= 0).all() and (lag < 7).all()
    assert (tp.cause_channel == tp.channel).all()
    # the campaigns' cost adds up their contacts' cost
    camp = large.table("campaigns").set_index("campaign_id")
    spent = touchpoints.groupby("campaign_id").cost.sum()
    np.testing.assert_allclose(camp.cost.reindex(spent.index), spent, atol=0.01)


def test_item_preferences_drive_purchases(small: Shop) -> None:
    prefs = small.truth("item_preferences")
    per_customer = prefs.groupby("customer_id")
    assert per_customer.size().max() == 20
    assert (per_customer["rank"].min() == 1).all()
    assert per_customer.utility.apply(lambda u: bool((np.diff(u.to_numpy()) <= 0).all())).all()
    assert (prefs.utility <= 0).all()  # log probabilities
    lines = small.table("order_lines").merge(small.table("orders"), on="order_id")
    lines = lines[lines.status == "completed"]
    top = lines.merge(prefs, on=["customer_id", "product_id"], how="left")
    assert top["rank"].notna().mean() > 0.7  # most purchases are among the top 20
    assert (top["rank"] <= 5).mean() > 0.4
