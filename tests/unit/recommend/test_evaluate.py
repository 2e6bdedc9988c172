"""Splits, metrics and the evaluation of recommenders, from the Python API and the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mercato.cli.main import main
from mercato.errors import DataError
from mercato.recommend.evaluate import evaluate, split
from mercato.recommend.interactions import from_frame
from mercato.recommend.metrics import ranking_metrics


def ratings(n_users: int = 400, n_items: int = 150, seed: int = 0) -> pd.DataFrame:
    """A MovieLens-shaped file: user,item,rating,timestamp, users in four taste groups."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        g = u % 4
        own = np.arange(g * n_items // 4, (g + 1) * n_items // 4)
        items = np.unique(np.concatenate([rng.choice(own, 12, replace=False),
                                          rng.integers(0, n_items, 3)]))  # fmt: skip
        for i in items:
            rows.append((f"u{u}", f"i{i}", int(rng.integers(1, 6)),
                         1_600_000_000 + int(rng.integers(0, 10_000_000))))  # fmt: skip
    return pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])


def test_metrics_by_hand():
    # user 0: relevant {1, 5}; list [5, 2, 1]: hits at ranks 1 and 3
    # user 1: relevant {0, 2, 3, 4}; list [9, 0, 8]: a hit at rank 2
    recs = np.array([[5, 2, 1], [9, 0, 8]])
    rel = sp.csr_matrix((np.ones(6), ([0, 0, 1, 1, 1, 1], [1, 5, 0, 2, 3, 4])), shape=(2, 10))
    m = ranking_metrics(recs, rel, 3, n_items=10)
    assert m["precision"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert m["recall"] == pytest.approx((2 / 2 + 1 / 4) / 2)
    d0 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    d1 = (1 / math.log2(3)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    assert m["ndcg"] == pytest.approx((d0 + d1) / 2)
    ap0 = (1 / 1 + 2 / 3) / 2
    ap1 = (1 / 2) / 3  # divided by min(4, 3)
    assert m["map"] == pytest.approx((ap0 + ap1) / 2)
    assert m["map_recommenders"] == pytest.approx((ap0 + (1 / 2) / 4) / 2)
    assert m["hit_rate"] == 1.0 and m["mrr"] == pytest.approx((1 + 1 / 2) / 2)
    assert m["coverage"] == pytest.approx(6 / 10)  # 5, 2, 1, 9, 0, 8
    # an oracle may name items outside the catalogue: they count as misses, nothing breaks
    wide = ranking_metrics(np.array([[12, 5, 1]]), sp.csr_matrix(rel[0]), 3, n_items=10,
                           item_users=np.ones(10), n_train_users=4)  # fmt: skip
    assert wide["coverage"] == pytest.approx(2 / 10) and np.isfinite(wide["novelty"])


def test_splits():
    inter = from_frame(ratings(), user="user", item="item", rating="rating", time="timestamp")
    pairs = inter.pairs()
    train, test, notes = split(inter, "stratified", test_size=0.25, seed=42)
    per_user = pairs.groupby("user").size()
    got = train.frame.groupby("user").size()
    np.testing.assert_array_equal(got.loc[per_user.index], np.round(0.75 * per_user))
    assert len(train) + len(test) == len(pairs)
    assert not set(zip(train.frame.user, train.frame.item, strict=True)) & set(
        zip(test.frame.user, test.frame.item, strict=True)
    )
    again, _, _ = split(inter, "stratified", test_size=0.25, seed=42)
    assert again.frame.equals(train.frame)  # the seed decides
    by_item, _, _ = split(inter, "stratified", by="item", seed=1)
    assert by_item.frame.groupby("item").size().min() >= 1
    tr, te, _ = split(inter, "leave_last")
    assert te.frame.groupby("user").size().max() == 1
    last = pairs.sort_values("last_ts").groupby("user").tail(1)
    assert set(zip(te.frame.user, te.frame.item, strict=True)) <= set(
        zip(last.user, last.item, strict=True)
    )
    tr, te, _ = split(inter, "time", test_size=0.2)
    assert tr.frame.ts.max() <= te.frame.ts.min()
    tr, te, _ = split(inter, "random", test_size=0.3, seed=3)
    assert len(te) == round(0.3 * len(pairs))
    with pytest.raises(DataError, match="unknown split"):
        split(inter, "loo")
    with pytest.raises(DataError, match="seed"):
        split(inter, "random", seed=-1)
    aware, _, _ = split(inter, "time", test_from="2020-12-01T00:00Z")
    assert aware.frame.ts.max() < pd.Timestamp("2020-12-01")
    with pytest.raises(DataError, match="share"):
        split(inter, "random", test_size=1.5)
    untimed = from_frame(ratings(50), user="user", item="item")
    with pytest.raises(DataError, match="needs a time"):
        split(untimed, "time")


def test_evaluate_ranks_personal_models_above_popularity():
    inter = from_frame(ratings(), user="user", item="item", rating="rating", time="timestamp")
    res = evaluate(inter, models=["popularity", "itemknn", "ease", "als"], k=10, time_budget=20)
    t = res.table.set_index("model")
    assert res.summary["best"] in ("itemknn", "ease", "als")
    assert t.loc["ease", "ndcg@10"] > t.loc["popularity", "ndcg@10"] + 0.1
    assert (t["users"] == res.summary["test_users"]).all()
    assert set(res.trials["model"]) == {"itemknn", "ease", "als"}  # tuned on validation
    recs = res.recommendations
    assert list(recs.columns) == ["user", "item", "rank", "score"]
    assert recs.groupby("user").size().max() == 10


def test_cli_on_a_ratings_file(tmp_path, capsys):
    f = tmp_path / "ratings.csv"
    ratings().to_csv(f, index=False)
    out = tmp_path / "top10.csv"
    code = main(["recommend", "evaluate", "--from", str(f), "--user", "user", "--item", "item",
                 "--rating", "rating", "--time", "timestamp", "--split", "stratified",
                 "--test-size", "0.25", "--seed", "42", "--k", "10",
                 "--models", "popularity,ease", "--output", str(out), "--json"])  # fmt: skip
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    best = payload["summary"]["best"]
    row = next(r for r in payload["rows"] if r["model"] == best)
    # anyone can check the metrics from the lists: precision@10 recomputed from the file
    lists = pd.read_csv(out, dtype={"user": str, "item": str})
    inter = from_frame(ratings(), user="user", item="item", rating="rating", time="timestamp")
    _, test, _ = split(inter, "stratified", test_size=0.25, seed=42)
    held = set(zip(test.frame.user, test.frame.item, strict=True))
    hits = [(u, i) in held for u, i in zip(lists["user"], lists["item"], strict=True)]
    users = lists.user.nunique()
    assert users == row["users"]
    assert sum(hits) / (10 * users) == pytest.approx(row["precision@10"])
    # errors name the problem
    code = main(["recommend", "evaluate", "--from", str(f), "--user", "nobody", "--item", "item"])
    assert code == 1 and "no user column 'nobody'" in capsys.readouterr().err
    code = main(["recommend", "evaluate", "--from", str(f), "--user", "user", "--item", "item",
                 "--models", "svd"])  # fmt: skip
    assert code == 1 and "unknown model 'svd'" in capsys.readouterr().err


def test_given_train_and_test_files(tmp_path, capsys):
    df = ratings(200)
    tr, te = df.iloc[::4], df.drop(df.index[::4])
    tr, te = df.drop(df.index[::4]), df.iloc[::4]
    (tmp_path / "train.csv").write_text(tr.to_csv(index=False))
    (tmp_path / "test.csv").write_text(te.to_csv(index=False))
    code = main(["recommend", "evaluate", "--train", str(tmp_path / "train.csv"),
                 "--test", str(tmp_path / "test.csv"), "--user", "user", "--item", "item",
                 "--models", "popularity,itemknn", "--json"])  # fmt: skip
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["summary"]["split"] == "given"
    assert payload["summary"]["test_interactions"] == len(te)


def test_bpr_stops_early_and_ease_is_refined_on_validation():
    inter = from_frame(ratings(), user="user", item="item", rating="rating", time="timestamp")
    res = evaluate(inter, models=["ease", "bpr"], k=10, time_budget=60)
    trials = res.trials
    # EASE: the five grid values, then values between the best and its neighbours
    ease = trials[trials["model"] == "ease"]
    grid_l2 = {15.0, 50.0, 200.0, 800.0, 3000.0}
    tried = {float(s.split("=")[1]) for s in ease["settings"]}
    refined = tried - grid_l2
    assert grid_l2 <= tried and refined
    best_grid = max(grid_l2, key=lambda v: float(
        ease.loc[ease["settings"] == f"l2={v}", "validation_ndcg"].iloc[0]))  # fmt: skip
    assert all(min(grid_l2) / 2 < v < max(grid_l2) for v in refined)
    assert any(abs(math.log(v / best_grid)) < math.log(4) for v in refined)
    assert res.chosen["ease"]["l2"] == float(
        ease.loc[ease["validation_ndcg"].idxmax(), "settings"].split("=")[1]
    )
    # BPR: each setting's iterations is where validation NDCG peaked, a multiple of 10
    bpr = trials[trials["model"] == "bpr"]
    its = [int(s.rsplit("iterations=", 1)[1]) for s in bpr["settings"]]
    assert all(i % 10 == 0 and 10 <= i <= 300 for i in its)
    assert res.chosen["bpr"]["iterations"] in its


def test_bpr_fit_stages_continues_from_the_last_stage():
    from mercato.recommend.models import make_model

    inter = from_frame(ratings(120, 60), user="user", item="item")
    X = inter.matrix()
    m = make_model("bpr", factors=8, learning_rate=0.05)
    seen = []
    for done in m.fit_stages(X, 5, 15):
        seen.append((done, m.params["iterations"], m.item_factors.copy()))
    assert [s[0] for s in seen] == [5, 10, 15] and [s[1] for s in seen] == [5, 10, 15]
    assert not np.allclose(seen[0][2], seen[2][2])  # it kept learning
    ids, _ = m.recommend(X[:3], 5)
    assert ids.shape == (3, 5)
    with pytest.raises(DataError):
        next(m.fit_stages(X, 0, 10))


def test_cold_users_are_measured_apart_with_popularity():
    df = ratings()
    # 40 users only in the test part (a given split): all their items are test items
    newcomers = df[df["user"].isin([f"u{u}" for u in range(40)])]
    rest = df[~df.index.isin(newcomers.index)]
    inter = from_frame(rest, user="user", item="item")
    train, test, _ = split(inter, "stratified", test_size=0.25, seed=1)
    extra = from_frame(newcomers, user="user", item="item")
    both = pd.concat([test.frame, extra.frame], ignore_index=True)
    test2 = from_frame(both.rename(columns={"user": "u", "item": "i"}), user="u", item="i")
    res = evaluate(train=train, test=test2, models=["popularity"], tune=False)
    cold = res.summary["cold_start"]
    assert cold["users"] == 40 and cold["list"] == "most popular training items"
    # by hand: the 10 most popular training items against each newcomer's items
    counts = train.frame.drop_duplicates(["user", "item"])["item"].value_counts()
    top = list(counts.sort_values(ascending=False, kind="stable").index[:10])
    hits = newcomers.groupby("user")["item"].apply(lambda s: len(set(s) & set(top)) > 0)
    assert cold["hit_rate@10"] == pytest.approx(hits.mean(), abs=0.03)
    assert any("measured apart" in n for n in res.notes)


def test_bpr_staged_is_the_one_shot_fit_and_the_budget_holds():
    from mercato.recommend.models import make_model

    inter = from_frame(ratings(120, 60), user="user", item="item")
    X = inter.matrix()
    one = make_model("bpr", factors=8, learning_rate=0.05, iterations=25).fit(X)
    staged = make_model("bpr", factors=8, learning_rate=0.05)
    done = list(staged.fit_stages(X, 10, 25))
    assert done == [10, 20, 25]
    assert np.array_equal(one.item_factors, staged.item_factors)
    res = evaluate(from_frame(ratings(), user="user", item="item"), models=["bpr"],
                   time_budget=0)  # fmt: skip
    trials = res.trials
    assert len(trials) == 1 and res.chosen["bpr"]["iterations"] == 10  # one stage, then out
