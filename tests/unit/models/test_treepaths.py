"""Path attributions walk LightGBM's trees exactly as LightGBM does, and add up exactly."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from mercato.models.treepaths import TreePaths, top_k


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.column_stack(
        [
            rng.normal(size=n),
            rng.normal(size=n),
            rng.integers(0, 12, n).astype(float),  # categorical
            rng.poisson(0.7, n).astype(float),  # many exact zeros
            rng.normal(size=n),
        ]
    )
    X[rng.random(n) < 0.15, 1] = np.nan
    X[rng.random(n) < 0.1, 2] = np.nan
    z = X[:, 0] + np.nan_to_num(X[:, 1], nan=1.5) + (np.nan_to_num(X[:, 2]) % 3 == 0) - X[:, 3]
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(float)
    return X, y


def _edge_rows(X: np.ndarray) -> np.ndarray:
    """Rows the training data never had: NaN everywhere, unseen/negative/huge categories,
    values at +-1e-36 and exactly at a split."""
    base = X[:40].copy()
    base[0, :] = np.nan
    base[1, 2] = 57.0  # a category never seen
    base[2, 2] = -3.0
    base[3, 2] = 1e12
    base[4, 2] = 4.7  # truncated like LightGBM
    base[5, 3] = 1e-36
    base[6, 3] = -1e-36
    base[7, 0] = np.inf
    base[8, 0] = -np.inf
    return base


@pytest.mark.parametrize(
    "params",
    [
        {"num_leaves": 31},
        {"num_leaves": 15, "zero_as_missing": True},
        {"num_leaves": 7, "use_missing": False},
        {"num_leaves": 63, "min_data_in_leaf": 5, "max_cat_to_onehot": 32},
    ],
)
def test_walk_matches_lightgbm_routing_and_adds_up(params):
    X, y = _data(6000)
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "num_threads": 1, "seed": 1, **params},
        lgb.Dataset(X, y, categorical_feature=[2]),
        num_boost_round=40,
    )
    paths = TreePaths.from_booster(booster)
    rows = np.vstack([_data(3000, seed=7)[0], _edge_rows(X)])
    contrib, raw, routing = paths.explain(rows)
    assert routing == "walk"
    # the raw score LightGBM computes, row by row (same leaves => same sum)
    np.testing.assert_allclose(raw, booster.predict(rows, raw_score=True), rtol=0, atol=1e-12)
    assert np.max(np.abs(paths.bias + contrib.sum(axis=1) - raw)) < 1e-9
    # the bias is the trees' count-weighted expected value: the same as TreeSHAP's
    shap = booster.predict(rows[:5], pred_contrib=True)
    assert paths.bias == pytest.approx(shap[0, -1], abs=1e-9)
    # routing from LightGBM's own leaves gives the same attribution
    leaves = booster.predict(rows, pred_leaf=True)
    c2, r2 = paths.explain_leaves(leaves)
    np.testing.assert_allclose(c2, contrib, atol=1e-12)
    np.testing.assert_allclose(r2, raw, atol=1e-12)


def test_features_never_split_on_get_nothing_and_regression_works():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3000, 4))
    y = 3 * X[:, 0] + rng.normal(size=3000)
    booster = lgb.train(
        {"objective": "regression", "verbose": -1, "num_threads": 1},
        lgb.Dataset(X, y),
        num_boost_round=30,
    )
    paths = TreePaths.from_booster(booster)
    contrib, raw, _ = paths.explain(X[:500], booster)
    np.testing.assert_allclose(raw, booster.predict(X[:500]), atol=1e-9)
    assert np.abs(contrib[:, 0]).mean() > 5 * np.abs(contrib[:, 1:]).mean()
    # the top reason agrees with TreeSHAP's for a model this clear
    shap = booster.predict(X[:500], pred_contrib=True)[:, :-1]
    agree = np.mean(np.argmax(np.abs(shap), 1) == np.argmax(np.abs(contrib), 1))
    assert agree > 0.9


def test_constant_model_is_all_bias():
    X = np.random.default_rng(0).normal(size=(200, 3))
    booster = lgb.train(
        {"objective": "regression", "verbose": -1, "min_data_in_leaf": 500},
        lgb.Dataset(X, np.ones(200)),
        num_boost_round=3,
    )
    paths = TreePaths.from_booster(booster)
    contrib, raw, _ = paths.explain(X, booster)
    assert np.all(contrib == 0)
    np.testing.assert_allclose(raw, booster.predict(X), atol=1e-12)


def test_a_wrong_matrix_is_refused():
    X, y = _data(500)
    booster = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(X, y), 5)
    paths = TreePaths.from_booster(booster)
    with pytest.raises(ValueError, match="shape"):
        paths.explain(X[:, :3])
    with pytest.raises(ValueError, match="trees"):
        paths.explain_leaves(np.zeros((3, 2)))


def test_top_k_is_argsort_by_magnitude_with_stable_ties():
    rng = np.random.default_rng(5)
    v = np.round(rng.normal(size=(2000, 9)), 1)  # many ties
    v[:50] = 0.0
    v[50:60, 3:] = 0.0
    idx, val = top_k(v, 4)
    order = np.argsort(-np.abs(v), axis=1, kind="stable")[:, :4]
    taken = np.take_along_axis(v, order, axis=1)
    live = taken != 0
    assert np.array_equal(np.where(live, order, -1), idx)
    assert np.array_equal(np.where(live, taken, 0.0), val)
    assert top_k(v, 20)[0].shape == (2000, 9)


def test_models_it_cannot_explain_are_refused():
    X, y = _data(600)
    linear = lgb.train({"objective": "regression", "linear_tree": True, "verbose": -1},
                       lgb.Dataset(X[:, [0, 3, 4]], y), 5)  # fmt: skip
    with pytest.raises(ValueError, match="linear trees"):
        TreePaths.from_booster(linear)
    labels = (X[:, 0] > 0).astype(int) + (X[:, 3] > 1)
    multi = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1},
                      lgb.Dataset(X, labels), 3)  # fmt: skip
    with pytest.raises(ValueError, match="multiclass"):
        TreePaths.from_booster(multi)
