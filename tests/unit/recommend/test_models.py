"""Every recommender honours the same contract (DESIGN.md's estimator contract)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from mercato.errors import DataError, NotFittedError
from mercato.recommend.models import MODELS, make_model, model_from_state, top_k

FAST = {
    "popularity": {},
    "itemknn": {"neighbours": 30},
    "ease": {"l2": 20.0},
    "als": {"factors": 8, "iterations": 8},
    "bpr": {"factors": 8, "iterations": 60, "learning_rate": 0.05},
    "nmf": {"components": 6, "iterations": 150},
}


def clustered(n_users: int = 300, n_items: int = 120, seed: int = 0) -> sp.csr_matrix:
    """Users in 4 taste groups, each group buying mostly from its quarter of the catalogue."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 4, n_users)
    rows, cols = [], []
    for u in range(n_users):
        own = np.arange(group[u] * n_items // 4, (group[u] + 1) * n_items // 4)
        picks = np.concatenate([rng.choice(own, 8, replace=False), rng.integers(0, n_items, 2)])
        rows += [u] * len(picks)
        cols += list(picks)
    X = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))
    X.sum_duplicates()
    return X


@pytest.fixture(scope="module")
def data() -> sp.csr_matrix:
    return clustered()


@pytest.mark.parametrize("kind", list(MODELS))
def test_contract(kind, data):
    X = data
    model = make_model(kind, **FAST[kind])
    with pytest.raises(NotFittedError):
        model.recommend(X[:2], 5)
    assert model.fit(X) is model and model.n_users == 300 and model.n_items == 120
    ids, scores = model.recommend(X[:50], 10, users=np.arange(50))
    assert ids.shape == scores.shape == (50, 10)
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first
    # the user's own items are never recommended, unless asked
    for r in range(50):
        assert not set(ids[r]) & set(X[r].indices)
    keep, _ = model.recommend(X[:5], 10, users=np.arange(5), exclude_seen=False)
    assert keep.shape == (5, 10)
    # filtered items never appear, and the list stays full while candidates remain
    banned = np.arange(0, 60)
    f_ids, _ = model.recommend(X[:20], 10, users=np.arange(20), filter_items=banned)
    assert (f_ids >= 60).all()
    # an unknown user scored from their items alone (fold-in), no retraining
    cold, _ = model.recommend(X[:20], 10)
    assert cold.shape == (20, 10) and (cold >= 0).all()
    sim, s_scores = model.similar_items(3, 5)
    assert len(sim) == 5 and 3 not in sim
    # state round trip: JSON parameters + arrays, identical scores
    meta, arrays = model.to_state()
    again = model_from_state(
        json.loads(json.dumps(meta)), {k: np.array(v) for k, v in arrays.items()}
    )
    np.testing.assert_allclose(
        again.scores(X[:30], np.arange(30)),
        model.scores(X[:30], np.arange(30)),
        rtol=1e-5,
        atol=1e-6,
    )
    # bad input is named
    with pytest.raises(DataError, match="k must be"):
        model.recommend(X[:2], 0)
    with pytest.raises(DataError, match="item columns"):
        model.recommend(sp.csr_matrix((2, 7)), 3)
    with pytest.raises(DataError, match="outside"):
        model.scores(X[:1], [999])


@pytest.mark.parametrize("kind", ["itemknn", "ease", "als", "bpr", "nmf"])
def test_personal_models_find_the_taste_groups(kind, data):
    """Hold one item out per user: personal models beat popularity by far."""
    rng = np.random.default_rng(1)
    X = data.tolil(copy=True)
    held = []
    for u in range(X.shape[0]):
        items = X.rows[u]
        j = items[rng.integers(len(items))]
        held.append(j)
        X[u, j] = 0
    train = sp.csr_matrix(X)
    train.eliminate_zeros()

    def hit_rate(model):
        ids, _ = model.recommend(train, 10, users=np.arange(train.shape[0]))
        return np.mean([held[u] in ids[u] for u in range(len(held))])

    pop = hit_rate(make_model("popularity").fit(train))
    mine = hit_rate(make_model(kind, **FAST[kind]).fit(train))
    assert mine > pop + 0.15, (kind, mine, pop)


def test_als_fold_in_matches_the_trained_user_vectors(data):
    model = make_model("als", factors=8, iterations=15, regularization=0.05).fit(data)
    known, _ = model.recommend(data[:40], 5, users=np.arange(40))
    folded, _ = model.recommend(data[:40], 5)
    assert np.mean(known[:, 0] == folded[:, 0]) > 0.9


def test_popularity_per_segment():
    X = clustered(400, 40)
    seg = np.where(np.arange(400) < 200, "a", "b")
    X = X.tolil()
    X[:200, 0] = 1  # item 0 is everyone's in segment a
    X[200:, 1] = 1  # item 1 in segment b
    X = sp.csr_matrix(X)
    model = make_model("popularity").fit(X, segments=seg)
    empty = sp.csr_matrix((2, 40), dtype=np.float32)
    ids, _ = model.recommend(empty, 1, segments=["a", "b"])
    assert list(ids[:, 0]) == [0, 1]
    unknown, _ = model.recommend(empty[:1], 1, segments=["zzz"])
    assert unknown[0, 0] in (0, 1)


def test_top_k_pads_and_orders():
    s = np.array([[0.1, -np.inf, 0.5, 0.3], [-np.inf] * 4], dtype=np.float32)
    ids, vals = top_k(s, 3)
    assert ids.tolist() == [[2, 3, 0], [-1, -1, -1]]
    ids, _ = top_k(s, 6)
    assert ids.shape == (2, 6) and ids[0, 3] == -1


def test_bad_settings_and_unknown_models():
    with pytest.raises(DataError, match="unknown model 'svd'"):
        make_model("svd")
    with pytest.raises(DataError, match="unknown setting 'depth'"):
        make_model("ease", depth=3)
    with pytest.raises(DataError, match="no interactions"):
        make_model("ease").fit(sp.csr_matrix((3, 3)))
    with pytest.raises(DataError, match="l2"):
        make_model("ease", l2=0).fit(clustered(40, 40))
    with pytest.raises(DataError, match="scaling"):
        make_model("als", scaling="cubic").fit(clustered(40, 40))
    logged = make_model("als", factors=4, iterations=3, scaling="log").fit(clustered(40, 40) * 50)
    assert logged.recommend(clustered(40, 40)[:3] * 50, 5)[0].shape == (3, 5)


def test_ease_is_the_closed_form():
    X = sp.random(300, 80, density=0.1, random_state=1, format="csr", dtype=np.float32)
    X.data[:] = 1
    model = make_model("ease", l2=10.0).fit(X)
    G = (X.T @ X).toarray().astype(float) + 10 * np.eye(80)
    P = np.linalg.inv(G)
    B = P / -np.diag(P)
    np.fill_diagonal(B, 0)
    np.testing.assert_allclose(model.B, B, atol=1e-6)
