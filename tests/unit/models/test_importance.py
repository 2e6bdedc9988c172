"""Grouped permutation importance and partial dependence find what truly drives a model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mercato.errors import DataError
from mercato.models import importance as gi
from mercato.models.propensity import PropensityModel


@pytest.fixture(scope="module")
def fitted() -> tuple[PropensityModel, pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 8000
    a = rng.normal(size=n)
    X = pd.DataFrame(
        {
            "a": a,
            "a_copy": a + rng.normal(0, 0.1, n),  # a near-duplicate of a
            "b": rng.normal(size=n),
            "noise": rng.normal(size=n),
            "country": rng.choice(["FR", "DE", "IT"], n),
        }
    )
    X.loc[rng.random(n) < 0.1, "b"] = np.nan
    z = a + 0.5 * np.nan_to_num(X["b"].to_numpy(), nan=1.0) + (X["country"] == "FR") * 0.8
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    model = PropensityModel(candidates=("lightgbm",), time_budget=10).fit(X.iloc[:6000], y[:6000])
    return model, X.iloc[6000:], y[6000:]


def test_correlated_features_are_grouped_and_ranked_together(fitted):
    model, X, y = fitted
    assert gi.feature_groups(X) == [["a", "a_copy"], ["b"], ["noise"], ["country"]]
    imp = gi.permutation_importance(model, X, y)
    assert list(imp["group"])[:3] == ["a + a_copy", "b", "country"]
    assert imp.attrs["baseline"] > 0.75 and (imp["metric"] == "roc_auc").all()
    noise = imp.set_index("group").loc["noise", "importance"]
    assert abs(noise) < 0.005
    assert imp["share"].sum() == pytest.approx(1.0)
    # alone, the copy looks unimportant and a carries less than the pair: why we group
    alone = gi.permutation_importance(model, X, y, groups=None).set_index("group")
    pair = imp.set_index("group").loc["a + a_copy", "importance"]
    assert alone.loc["a_copy", "importance"] < 0.2 * pair
    assert alone.loc["a", "importance"] < pair


def test_partial_dependence_follows_the_true_effects(fitted):
    model, X, _ = fitted
    dep = gi.partial_dependence(model, X, ["a", "country", "b"], grid=8)
    a = dep[dep.feature == "a"]
    assert (a["kind"] == "numeric").all() and len(a) == 8
    assert np.all(np.diff(a["prediction"].to_numpy()) > -0.02)  # rises with a
    assert a["prediction"].iloc[-1] - a["prediction"].iloc[0] > 0.4
    c = dep[dep.feature == "country"].set_index("value")["prediction"]
    assert c["FR"] > c["DE"] + 0.05 and c["FR"] > c["IT"] + 0.05
    b = dep[dep.feature == "b"].set_index("value")
    assert "missing" in b.index  # b has missing values: a point of its own
    assert b["share"].between(0, 1).all()
    # a common grid for several models
    same = gi.partial_dependence(model, X.iloc[:500], ["a"], grid=8, grid_from=X)
    np.testing.assert_allclose(same["x"], a["x"])


def test_pool_and_drivers(fitted):
    model, X, y = fitted
    imp, dep = gi.drivers(model, X, y, top=2)
    assert set(dep["feature"]) == {"a", "b"}
    halves = [X.iloc[:1000], X.iloc[1000:]]
    parts = [
        gi.permutation_importance(model, h, y[i * 1000 : i * 1000 + len(h)])
        for i, h in enumerate(halves)
    ]
    deps = [gi.partial_dependence(model, h, ["a"], grid=5, grid_from=X) for h in halves]
    pooled, pdep = gi.pool(parts, deps)
    assert pooled.attrs["models"] == 2 and pooled["group"].iloc[0] == "a + a_copy"
    assert (pdep["models"] == 2).all() and len(pdep) == 5


def test_regression_uses_r2(fitted):
    _, X, _ = fitted
    rng = np.random.default_rng(1)
    amount = 10 * X["a"].to_numpy() + rng.normal(0, 1, len(X))
    model = PropensityModel(task="regression", candidates=("lightgbm",), time_budget=5)
    model.fit(X.iloc[:1500], amount[:1500])
    imp = gi.permutation_importance(model, X.iloc[1500:], amount[1500:])
    assert imp["metric"].iloc[0] == "r2" and imp["group"].iloc[0] == "a + a_copy"


def test_bad_input(fitted):
    model, X, y = fitted
    with pytest.raises(DataError, match="both classes"):
        gi.permutation_importance(model, X, np.zeros(len(X)))
    with pytest.raises(DataError, match="repeats"):
        gi.permutation_importance(model, X, y, repeats=0)
    with pytest.raises(DataError, match="rows"):
        gi.permutation_importance(model, X, y[:10])
    with pytest.raises(DataError, match="no feature 'zzz'"):
        gi.permutation_importance(model, X, y, groups=[["zzz"]])
    with pytest.raises(DataError, match="no feature 'zzz'"):
        gi.partial_dependence(model, X, ["zzz"])
    with pytest.raises(DataError, match="grid"):
        gi.partial_dependence(model, X, ["a"], grid=1)
    with pytest.raises(DataError, match="threshold"):
        gi.feature_groups(X, threshold=0)


def test_text_that_reads_as_numbers_is_grouped_and_gridded_as_numbers():
    rng = np.random.default_rng(2)
    n = 3000
    tenure = rng.integers(1, 72, n)
    X = pd.DataFrame(
        {
            "tenure": tenure,
            "total": [f"{t * 60 + rng.normal(0, 20):.2f}" for t in tenure],  # text, like Telco
            "other": rng.normal(size=n),
        }
    )
    X.loc[:4, "total"] = " "  # a few blanks, read as missing
    assert gi.feature_groups(X) == [["tenure", "total"], ["other"]]
    y = (rng.random(n) < 1 / (1 + np.exp(-(2 - tenure / 20)))).astype(int)
    model = PropensityModel(candidates=("lightgbm",), time_budget=5).fit(X, y)
    dep = gi.partial_dependence(model, X, ["total"], grid=5)
    assert (dep["kind"] == "numeric").all() and len(dep) == 6 and dep["value"].iloc[-1] == "missing"
    assert dep["x"].iloc[:5].is_monotonic_increasing


def test_nullable_booleans_keep_their_dtype_and_sparse_columns_are_not_grouped():
    rng = np.random.default_rng(4)
    n = 2000
    flag = pd.array(rng.random(n) < 0.4, dtype="boolean")
    flag[rng.random(n) < 0.1] = pd.NA
    X = pd.DataFrame({"flag": flag, "x": rng.normal(size=n)})
    # two unrelated columns, missing almost everywhere, that share 3 rows
    s1, s2 = np.full(n, np.nan), np.full(n, np.nan)
    s1[:3], s2[:3] = [1, 2, 3], [10, 20, 30]
    s1[3:40], s2[40:80] = rng.normal(size=37), rng.normal(size=40)
    X["sparse1"], X["sparse2"] = s1, s2
    assert ["sparse1", "sparse2"] not in gi.feature_groups(X)
    y = (rng.random(n) < np.where(flag.fillna(False), 0.7, 0.3)).astype(int)
    model = PropensityModel(candidates=("lightgbm",), time_budget=5).fit(X.iloc[:1500], y[:1500])
    imp = gi.permutation_importance(model, X.iloc[1500:], y[1500:])
    assert imp["group"].iloc[0] == "flag"
    dep = gi.partial_dependence(model, X.iloc[1500:], ["flag"])
    assert set(dep["value"]) == {"True", "False", "missing"}
