"""The serving index answers like the model, applies the rules, and loads from arrays alone."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from mercato.errors import DataError, MercatoError
from mercato.recommend.interactions import IdMap, Interactions, from_frame
from mercato.recommend.models import make_model
from mercato.recommend.serving import FAST_K, FORMAT, Rules, ServingIndex


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
    assert got[0].reason.startswith("often chosen with i00")
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


def _with_new_items(inter):
    """The catalogue gains two items nobody touched: one in cat1 priced like i040, one in a
    category of its own."""
    extra = pd.DataFrame({"product_id": ["n-cat1", "n-lonely"], "category": ["cat1", "catX"],
                          "price": [40.2, 7.0], "in_stock": [True, True]})  # fmt: skip
    out = from_frame(inter.frame.rename(columns={"user": "u", "item": "i"}), user="u", item="i")
    out.item_info = pd.concat([inter.item_info, extra], ignore_index=True)
    return out


def test_new_items_stand_in_for_their_category_and_price(inter, tmp_path):
    inter2 = _with_new_items(inter)
    model = make_model("ease", l2=20.0).fit(inter2.matrix())
    index = ServingIndex.build(model, inter2, tmp_path / "idx")
    assert index.meta["new_items"] == 2 and len(index.items) == len(inter.items) + 2
    new = index.items.get("n-cat1")
    stand = [index.items.ids[j] for j in index.stand_ins[new - index.n_known]]
    assert stand[0] == "i040" and all(30 <= int(s[1:]) < 60 for s in stand)  # cat1, near 40
    # a cat1 customer may be offered the new cat1 item, with a reason that says so
    cat1_users = [u for u in inter.users.ids if int(u[1:]) % 4 == 1]
    offered = [r for u in cat1_users for r in index.recommend(u, k=10) if r.item == "n-cat1"]
    assert offered and offered[0].reason == "new in cat1, like i040"
    # the stored lists and the full scoring agree on it
    full = ServingIndex.load(tmp_path / "idx")
    full.top_items = None
    for u in cat1_users[:20]:
        assert [r.item for r in index.recommend(u, k=10, rules=Rules())] == [
            r.item for r in full.recommend(u, k=10, rules=Rules())
        ]
    # a visitor who viewed the new item gets cat1 items (its stand-ins' neighbours)
    got = index.recommend("visitor", recent=["n-cat1"], k=5)
    assert "n-cat1" not in {r.item for r in got}
    assert sum(30 <= int(r.item[1:]) < 60 for r in got if r.item[0] == "i") >= 4
    similar = index.similar_items("n-cat1", k=5)
    assert len(similar) == 5 and sum(30 <= int(r.item[1:]) < 60 for r in similar) >= 4
    with pytest.raises(DataError, match="no such item"):
        index.similar_items("nope")


def test_segments_cold_start_and_reasons(inter, tmp_path):
    model = make_model("ease", l2=20.0).fit(inter.matrix())
    # segment = taste group; u0..: group u % 4
    segments = {u: f"group{int(u[1:]) % 4}" for u in inter.users.ids}
    segments["u0"] = "tiny"  # a segment of one customer is dropped
    index = ServingIndex.build(model, inter, tmp_path / "idx", segments=segments,
                               segment_by="taste")  # fmt: skip
    assert index.segments == ["group0", "group1", "group2", "group3"]
    assert index.meta["segment_by"] == "taste"
    assert index.segment_of("u5") == "group1" and index.segment_of("u0") is None
    # a visitor in context group2: popular in group2 (items 60..89)
    cold = index.recommend("visitor", k=5, segment="group2")
    assert all(60 <= int(r.item[1:]) < 90 for r in cold)
    assert cold[0].reason == "popular in your segment (group2)"
    # an unknown segment: popular overall
    assert index.recommend("visitor", k=3, segment="nope")[0].reason == "popular now"
    # known customers: a second reason when the item is popular in their segment
    recs = index.recommend("u5", k=10)
    assert any(len(r.reasons) == 2 and r.reasons[1] == "popular in your segment (group1)"
               for r in recs)  # fmt: skip
    assert all(r.reasons[0] == r.reason for r in recs)
    # refused personalisation: overall popularity, the segment not used
    refused = index.recommend("u5", k=5, personalised=False, segment="group2")
    assert [r.item for r in refused] == [r.item for r in index.recommend(None, k=5)]


def test_diversity_spreads_the_list(inter, tmp_path):
    for kind in ("ease", "als"):
        params = {"als": {"factors": 8, "iterations": 10}}.get(kind, {"l2": 20.0})
        model = make_model(kind, **params).fit(inter.matrix())
        index = ServingIndex.build(model, inter, tmp_path / kind)

        def spread(recs, index=index):
            idx = [index.items.get(r.item) for r in recs]
            S = index.item_vectors[idx] @ index.item_vectors[idx].T
            return float(S[np.triu_indices(len(idx), 1)].mean())

        full = ServingIndex.load(tmp_path / kind)
        full.top_items = None
        for u in inter.users.ids[:10]:
            plain = index.recommend(u, k=10)
            assert [r.item for r in index.recommend(u, k=10, rules=Rules(diversity=0.0))] == [
                r.item for r in plain
            ]
            diverse = index.recommend(u, k=10, rules=Rules(diversity=0.7))
            assert len(diverse) == 10 and spread(diverse) < spread(plain)
            assert diverse[0].item == plain[0].item  # the best item still leads
            again = full.recommend(u, k=10, rules=Rules(diversity=0.7))
            assert [r.item for r in diverse] == [r.item for r in again]
    with pytest.raises(DataError, match="diversity"):
        index.recommend("u1", rules=Rules(diversity=1.5))


def test_registry_keeps_folder_models(inter, tmp_path):
    from mercato.models.registry import ModelRegistry

    reg = ModelRegistry(tmp_path / "models")
    with pytest.raises(DataError, match="no such folder"):
        reg.save_folder(tmp_path / "nowhere", name="r", kind="recommender",
                        fmt=FORMAT)  # fmt: skip
    model = make_model("ease", l2=20.0).fit(inter.matrix())
    ServingIndex.build(model, inter, tmp_path / "idx")
    with pytest.raises(DataError, match="cannot load models of format"):
        reg.save_folder(tmp_path / "idx", name="r", kind="recommender", fmt="nobody/1")
    assert not (tmp_path / "models" / "r").exists() or not list(
        (tmp_path / "models" / "r").glob("v*")
    )
    mv = reg.save_folder(tmp_path / "idx", name="r", kind="recommender", fmt=FORMAT,
                         customers=inter.users.to_list())  # fmt: skip
    files = mv.manifest["files"]
    assert "artifact/index.json" in files and "customers.npy" in files
    # linked, not copied: the same inode as the serving folder's file
    assert (mv.path / "artifact" / "index.json").stat().st_ino == (
        tmp_path / "idx" / "index.json"
    ).stat().st_ino
    loaded = reg.load("r")
    assert [r.item for r in loaded.recommend("u1", k=5)] == [
        r.item for r in ServingIndex.load(tmp_path / "idx").recommend("u1", k=5)
    ]
    assert reg.trained_on("r", "u1") and not reg.trained_on("r", "stranger")
    from mercato.models.clv import GammaGammaFitter

    g = GammaGammaFitter().fit([1, 2, 3, 1, 4, 2], [10.0, 12.0, 9.0, 30.0, 11.0, 14.0])
    reg.save(g, name="spend", kind="clv-spend")
    with pytest.raises(DataError, match="not a folder"):
        reg.artifact_folder("spend")


def test_an_answer_reads_as_a_sequence_of_recommendations():
    from mercato.recommend.serving import Recommendations

    recs = Recommendations(["a", "b", "c"], [3.0, 2.0, 1.0], ["r1", "r2", "r3"],
                           "popular in your segment (x)", 0b010)  # fmt: skip
    assert len(recs) == 3 and [r.item for r in recs] == ["a", "b", "c"]
    assert recs[1].rank == 2 and recs[1].reasons == ("r2", "popular in your segment (x)")
    assert recs[-1].item == "c" and recs[-1].reasons == ("r3",)
    assert [r.rank for r in recs[1:]] == [2, 3]
    assert recs.to_dicts()[1] == {"item": "b", "rank": 2, "score": 2.0, "reason": "r2",
                                  "reasons": ["r2", "popular in your segment (x)"]}  # fmt: skip
    with pytest.raises(IndexError):
        recs[3]
    assert list(Recommendations([], [], [])) == []


def test_exclude_only_what_was_bought(inter, tmp_path):
    # u0 bought its items; it also viewed the most popular items of the other groups
    frame = inter.frame.assign(bought=True)
    top = inter.frame["item"].value_counts().index[:40]
    views = pd.DataFrame({"user": "u0", "item": [i for i in top if int(i[1:]) >= 30][:8],
                          "weight": 1.0, "ts": pd.NaT, "bought": False})  # fmt: skip
    rows = pd.concat([frame, views], ignore_index=True)
    from mercato.recommend.interactions import Interactions

    inter2 = Interactions.build(rows, item_info=inter.item_info)
    assert inter2.bought_matrix() is not None
    model = make_model("ease", l2=20.0).fit(inter2.matrix())
    index = ServingIndex.build(model, inter2, tmp_path / "idx")
    viewed = set(views["item"])
    bought = set(frame.loc[frame.user == "u0", "item"])
    default = index.recommend("u0", k=20, rules=Rules(in_stock_only=False))
    assert not {r.item for r in default} & (viewed | bought)
    only_bought = index.recommend("u0", k=20, rules=Rules(in_stock_only=False, exclude="bought"))
    got = {r.item for r in only_bought}
    assert got & viewed and not got & bought  # viewed items may come back, bought ones never
    # an index from a file without event types: every interaction counts as bought
    plain = ServingIndex.build(model, Interactions.build(rows.drop(columns="bought")),
                               tmp_path / "plain")  # fmt: skip
    assert plain.bought is None
    same = plain.recommend("u0", k=20, rules=Rules(in_stock_only=False, exclude="bought"))
    assert not {r.item for r in same} & (viewed | bought)
    with pytest.raises(DataError, match="exclude"):
        index.recommend("u0", rules=Rules(exclude="everything"))


def _one_category_favourite(tmp_path):
    """600 items in 3 categories; every customer's 100 best unseen items are in c0."""
    rng = np.random.default_rng(3)
    rows = []
    for u in range(200):
        for i in rng.choice(200, 12, replace=False):  # c0 = items 0..199, heavily used
            rows.append((f"u{u}", f"i{i:03d}"))
        rows.append((f"u{u}", f"i{200 + int(rng.integers(0, 400)):03d}"))
    inter = from_frame(pd.DataFrame(rows, columns=["u", "i"]), user="u", item="i")
    ids = inter.items.to_list()
    inter.item_info = pd.DataFrame({"product_id": ids,
                                    "category": [f"c{int(v[1:]) // 200}" for v in ids],
                                    "price": 1.0, "in_stock": True})  # fmt: skip
    model = make_model("ease", l2=50.0).fit(inter.matrix())
    stored = ServingIndex.build(model, inter, tmp_path / "idx")
    full = ServingIndex.load(tmp_path / "idx")
    full.top_items = None
    return stored, full


def test_rules_that_reach_past_the_stored_list_score_in_full(tmp_path):
    stored, full = _one_category_favourite(tmp_path)
    cases = (Rules(max_per_category=1), Rules(max_per_category=1, diversity=0.1),
             Rules(diversity=0.5), Rules(boost={}),)  # fmt: skip
    for u in ("u0", "u1", "u7"):
        cats = [stored.category[stored.items.get(r.item)] for r in
                stored.recommend(u, k=3, rules=Rules(max_per_category=1))]  # fmt: skip
        assert sorted(cats) == ["c0", "c1", "c2"]
        for rules in cases:
            for k in (3, 25):
                a = [r.item for r in stored.recommend(u, k=k, rules=rules)]
                b = [r.item for r in full.recommend(u, k=k, rules=rules)]
                assert a == b, (u, k, rules)
        # a demotion below items beyond the stored 100
        first = stored.recommend(u, k=1)[0].item
        demoted = Rules(boost={first: -5.0})
        a = [r.item for r in stored.recommend(u, k=100, rules=demoted)]
        assert a == [r.item for r in full.recommend(u, k=100, rules=demoted)]
        assert first not in a


def test_popularity_index_and_new_item_events_give_true_reasons(inter, tmp_path):
    pop = make_model("popularity").fit(inter.matrix())
    index = ServingIndex.build(pop, inter, tmp_path / "pop")
    got = index.recommend("visitor", recent=["i001"], k=3)
    assert {r.reason for r in got} == {"popular now"}
    inter2 = _with_new_items(inter)
    model = make_model("ease", l2=20.0).fit(inter2.matrix())
    index = ServingIndex.build(model, inter2, tmp_path / "idx")
    new = index.items.get("n-cat1") - index.n_known
    stand = {index.items.ids[j] for j in index.stand_ins[new]}
    got = index.recommend("visitor", recent=["n-cat1"], k=10)
    assert "n-cat1" not in {r.item for r in got}
    # its stand-ins were not touched: they may be offered, for the item that was
    offered = index.recommend("visitor", recent=["n-cat1"], k=5, rules=Rules(allow=list(stand)))
    assert {r.item for r in offered} == stand
    assert all(r.reason == "often chosen with n-cat1 (cat1)" for r in offered)


def test_segment_reasons_only_for_items_the_segment_touched(inter, tmp_path):
    model = make_model("ease", l2=20.0).fit(inter.matrix())
    segments = {u: f"g{int(u[1:]) % 4}" for u in inter.users.ids}
    index = ServingIndex.build(model, inter, tmp_path / "idx", segments=segments)
    for j, top in enumerate(index._segment_top):
        assert all(index.segment_popularity[j][i] > 0 for i in top)


def test_bad_request_values_name_the_parameter(inter, tmp_path):
    model = make_model("ease", l2=20.0).fit(inter.matrix())
    index = ServingIndex.build(model, inter, tmp_path / "idx")
    assert len(index.recommend("u1", k=np.int64(3))) == 3
    for bad in (0, -1, 2.5, True):
        with pytest.raises(DataError, match="k must"):
            index.recommend("u1", k=bad)
        with pytest.raises(DataError, match="k must"):
            index.similar_items("i001", k=bad)
    for field in ("deny", "allow", "categories", "rebuy_categories"):
        with pytest.raises(DataError, match=f"{field} is a list of ids"):
            index.recommend("u1", rules=Rules(**{field: "i014"}))
    with pytest.raises(DataError, match="recent is a list"):
        index.recommend("u1", recent="i001")
    a, b = index.recommend("u1", k=5), index.recommend("u1", k=5)
    assert a == b and a == list(b) and a[0].item in a and "nope" not in a


def test_registry_leaves_the_serving_files_mode_alone(inter, tmp_path):
    from mercato.models.registry import ModelRegistry

    model = make_model("ease", l2=20.0).fit(inter.matrix())
    ServingIndex.build(model, inter, tmp_path / "idx")
    target = tmp_path / "idx" / "index.json"
    target.chmod(0o644)
    reg = ModelRegistry(tmp_path / "models")
    reg.save_folder(tmp_path / "idx", name="r", kind="recommender", fmt=FORMAT)
    assert target.stat().st_mode & 0o777 == 0o644 and target.stat().st_nlink == 2


def test_the_request_path_answers_like_full_scoring(inter, tmp_path):
    """Known customers under the default rules are answered straight off the stored lists
    (in stock only, segment marks worked out at load); full scoring gives the same items,
    reasons and scores for every k, with and without a segment in the request."""
    model = make_model("ease", l2=20.0).fit(inter.matrix())
    segments = {u: f"g{int(u[1:]) % 4}" for u in inter.users.ids if u != "u7"}
    index = ServingIndex.build(model, inter, tmp_path / "idx", segments=segments)
    stock = dict(zip(inter.item_info.product_id, inter.item_info.in_stock, strict=True))
    stored = index.top_items[index.top_items >= 0]
    assert len(stored) and all(stock[index.items.ids[i]] for i in stored)
    full = ServingIndex.load(tmp_path / "idx")
    full.top_items = None
    marked = 0
    for u in inter.users.ids[:40]:
        for k in (1, 10, FAST_K, FAST_K + 7):
            for seg in (None, "g2"):
                a = index.recommend(u, k=k, segment=seg)
                b = full.recommend(u, k=k, segment=seg)
                assert [(x.item, x.reasons) for x in a] == [(x.item, x.reasons) for x in b]
                assert a.scores == pytest.approx(b.scores)
                marked += a.also_mask != 0
    assert marked  # the segment marks were exercised
    # u7 has no stored segment: the request's segment decides its marks
    assert index.recommend("u7", k=10, segment="g2") == full.recommend("u7", k=10, segment="g2")
    # out-of-stock items come back only when asked for, from full scoring
    everything = index.recommend("u1", k=40, rules=Rules(in_stock_only=False))
    assert any(not stock[r.item] for r in everything)
    assert everything == full.recommend("u1", k=40, rules=Rules(in_stock_only=False))


def test_an_index_of_another_format_asks_for_a_rebuild(inter, tmp_path):
    ServingIndex.build(make_model("popularity").fit(inter.matrix()), inter, tmp_path / "idx")
    meta = json.loads((tmp_path / "idx" / "index.json").read_text())
    meta["format"] = "mercato.serving/1"
    (tmp_path / "idx" / "index.json").write_text(json.dumps(meta))
    with pytest.raises(MercatoError, match="rebuild it"):
        ServingIndex.load(tmp_path / "idx")


def test_a_known_customer_without_interactions_is_a_cold_start(inter, tmp_path):
    """A customer in the id map with no interactions (all of theirs held out, say) gets the
    popular list of their segment, on the request path and in full scoring alike."""
    users = IdMap.from_list(inter.users.to_list() + ["u-empty"])
    empty = Interactions.build(inter.frame, users=users, items=inter.items,
                               item_info=inter.item_info)  # fmt: skip
    model = make_model("als", factors=8, iterations=5).fit(empty.matrix())
    segments = dict.fromkeys(users.ids, "g1")
    index = ServingIndex.build(model, empty, tmp_path / "idx", segments=segments)
    got = index.recommend("u-empty", k=5)
    assert [r.reason for r in got] == ["popular in your segment (g1)"] * 5
    assert got == index.recommend("a-visitor", k=5, segment="g1")
    full = ServingIndex.load(tmp_path / "idx")
    full.top_items = None
    assert full.recommend("u-empty", k=5) == got
