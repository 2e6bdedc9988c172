"""The serving index answers like the model, applies the rules, and loads from arrays alone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from mercato.errors import DataError, MercatoError
from mercato.recommend.interactions import from_frame
from mercato.recommend.models import make_model
from mercato.recommend.serving import Rules, ServingIndex


@pytest.fixture(scope="module")
def inter():
    rng = np.random.default_rng(0)
    rows = []
    for u in range(300):
        g = u % 4
        for i in np.unique(np.concatenate([rng.choice(np.arange(g * 30, g * 30 + 30), 8),
                                           rng.integers(0, 120, 2)])):  # fmt: skip
            rows.append((f"u{u}", f"i{i:03d}"))
    inter = from_frame(pd.DataFrame(rows, columns=["u", "i"]), user="u", item="i")
    ids = inter.items.to_list()
    inter.item_info = pd.DataFrame(
        {
            "product_id": ids,
            "category": [f"cat{int(v[1:]) // 30}" for v in ids],
            "price": [float(int(v[1:])) for v in ids],
            "in_stock": [int(v[1:]) % 17 != 0 for v in ids],
        }
    )
    return inter


@pytest.mark.parametrize("kind", ["ease", "als", "itemknn", "popularity"])
def test_index_answers_like_the_model(kind, inter, tmp_path):
    params = {"als": {"factors": 8, "iterations": 10}, "itemknn": {"neighbours": 30}}.get(kind, {})
    model = make_model(kind, **params).fit(inter.matrix())
    index = ServingIndex.build(model, inter, tmp_path / "idx")
    loaded = ServingIndex.load(tmp_path / "idx")
    X = inter.matrix()
    for u in (0, 5, 77):
        want, _ = model.recommend(X[u], 10, users=[u])
        got = loaded.recommend(inter.users.ids[u], k=10, rules=Rules(in_stock_only=False))
        assert [r.item for r in got] == [inter.items.ids[i] for i in want[0]]
        assert all(r.reason for r in got) and [r.rank for r in got] == list(range(1, 11))
    assert index.meta["arrays"] == loaded.meta["arrays"]


def test_unknown_visitors_and_consent(inter, tmp_path):
    model = make_model("ease", l2=20.0).fit(inter.matrix())
    index = ServingIndex.build(model, inter, tmp_path / "idx")
    recent = ["i001", "i002", "i003"]  # all in the first taste group
    got = index.recommend("someone-new", recent=recent, k=5)
    assert len(got) == 5 and not {r.item for r in got} & set(recent)
    assert sum(int(r.item[1:]) < 30 for r in got) >= 4  # the same taste group
    assert got[0].reason.startswith("because of i00")
    cold = index.recommend("someone-new", k=5)
    assert [r.reason for r in cold] == ["popular now"] * 5
    refused = index.recommend(inter.users.ids[0], recent=recent, k=5, personalised=False)
    pop = index.recommend(None, k=5)
    assert [r.item for r in refused] == [r.item for r in pop]
    assert "not personalised" in refused[0].reason


def test_rules(inter, tmp_path):
    model = make_model("ease", l2=20.0).fit(inter.matrix())
    index = ServingIndex.build(model, inter, tmp_path / "idx")
    user = inter.users.ids[0]
    base = index.recommend(user, k=10)
    assert all(int(r.item[1:]) % 17 != 0 for r in base)  # out of stock left out
    # the default rules' fast path and the general one agree, reasons included
    for u in inter.users.ids[:30]:
        plain = index.recommend(u, k=10)
        general = index.recommend(u, k=10, rules=Rules())
        assert [(x.item, x.reason) for x in plain] == [(x.item, x.reason) for x in general]
        assert [x.score for x in plain] == pytest.approx([x.score for x in general])
    denied = index.recommend(user, k=10, rules=Rules(deny=[base[0].item]))
    assert base[0].item not in {r.item for r in denied} and len(denied) == 10
    allowed = index.recommend(user, k=10, rules=Rules(allow=["i100", "i101", "i102"]))
    assert {r.item for r in allowed} <= {"i100", "i101", "i102"}  # fewer: no more candidates
    cheap = index.recommend(user, k=10, rules=Rules(max_price=40, min_price=5))
    assert all(5 <= float(r.item[1:]) <= 40 for r in cheap) and len(cheap) == 10
    cat = index.recommend(user, k=10, rules=Rules(categories=["cat3"]))
    assert all(90 <= int(r.item[1:]) < 120 for r in cat)
    boosted = index.recommend(user, k=10, rules=Rules(boost={"i118": 10.0}))
    assert boosted[0].item == "i118"
    capped = index.recommend(user, k=10, rules=Rules(max_per_category=2))
    counts = pd.Series([int(r.item[1:]) // 30 for r in capped[:8]]).value_counts()
    # 4 categories x 2 = 8 within the cap; the list is then filled with the best left
    assert len(capped) == 10 and counts.max() <= 2 and len(counts) == 4
    rebuy = index.recommend(user, k=40, rules=Rules(rebuy_categories=["cat0"]))
    seen = set(inter.frame.loc[inter.frame.user == user, "item"])
    assert {r.item for r in rebuy} & {s for s in seen if int(s[1:]) < 30}
    with pytest.raises(DataError, match="k must"):
        index.recommend(user, k=0)


def test_checksums_threads_and_bad_folders(inter, tmp_path):
    model = make_model("als", factors=8, iterations=5).fit(inter.matrix())
    ServingIndex.build(model, inter, tmp_path / "idx")
    index = ServingIndex.load(tmp_path / "idx")
    users = inter.users.ids[:40]
    alone = [[r.item for r in index.recommend(u, k=10)] for u in users]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda u: [r.item for r in index.recommend(u, k=10)], users))
    assert together == alone
    target = tmp_path / "idx" / "model_item_factors.npy"
    arr = np.load(target)
    arr[0, 0] += 1
    np.save(target, arr)
    with pytest.raises(MercatoError, match="checksum"):
        ServingIndex.load(tmp_path / "idx")
    with pytest.raises(DataError, match="no serving index"):
        ServingIndex.load(tmp_path / "nowhere")


def test_stored_lists_and_full_scoring_agree_on_every_rule(inter, tmp_path):
    model = make_model("ease", l2=20.0).fit(inter.matrix())
    stored = ServingIndex.build(model, inter, tmp_path / "idx")
    full = ServingIndex.load(tmp_path / "idx")
    full.top_items = None  # every request scored in full
    cases = (
        Rules(boost={"i005": 0.5, "i100": 0.2}),
        Rules(boost={"i100": 0.2, "i005": 0.5}),
        Rules(max_per_category=2, deny=["i003"]),
        Rules(max_price=60, min_price=5),
    )
    for rules in cases:
        for u in inter.users.ids[:60]:
            a = [(x.item, x.reason) for x in stored.recommend(u, k=10, rules=rules)]
            b = [(x.item, x.reason) for x in full.recommend(u, k=10, rules=rules)]
            assert a == b, (u, rules)
    with pytest.raises(DataError, match="cap per category"):
        stored.recommend(inter.users.ids[0], rules=Rules(max_per_category=0))


def test_rebuilding_leaves_loaded_indexes_working(inter, tmp_path):
    X = inter.matrix()
    ServingIndex.build(make_model("ease", l2=20.0).fit(X), inter, tmp_path / "idx")
    live = ServingIndex.load(tmp_path / "idx")
    before = [r.item for r in live.recommend(inter.users.ids[3], k=5)]
    ServingIndex.build(make_model("itemknn").fit(X), inter, tmp_path / "idx")  # swapped in
    assert [r.item for r in live.recommend(inter.users.ids[3], k=5)] == before
    assert ServingIndex.load(tmp_path / "idx").model.kind == "itemknn"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".idx")]  # nothing left over
    (tmp_path / "idx" / "index.json").write_text("{not json")
    with pytest.raises(MercatoError, match="not readable JSON"):
        ServingIndex.load(tmp_path / "idx")
