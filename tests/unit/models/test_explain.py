"""Explanations add up to the raw score, for every kind of model, also after a JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mercato.errors import DataError
from mercato.models.explain import explain, reasons
from mercato.models.propensity import PropensityModel, model_from_dict


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 12_000
    X = pd.DataFrame(
        {
            "orders_90d": rng.poisson(2, n).astype(float),
            "recency_days": rng.exponential(40, n),
            "country": rng.choice(["FR", "DE", "IT", "ES"], n, p=[0.4, 0.3, 0.2, 0.1]),
        }
    )
    X.loc[rng.random(n) < 0.1, "recency_days"] = np.nan
    z = (
        0.6 * X.orders_90d
        - 0.02 * np.nan_to_num(X.recency_days, nan=60)
        - 0.5
        + (X.country == "FR") * 0.5
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    spend = np.maximum(0, 20 * X.orders_90d + rng.normal(0, 5, n))
    return X, y, spend


@pytest.mark.parametrize(
    ("candidate", "method"),
    [("lightgbm", "treeshap"), ("lightgbm", "path"), ("logistic", "auto"), ("dummy", "auto")],
)
def test_contributions_add_up_to_the_raw_score(data, candidate, method):
    X, y, _ = data
    model = PropensityModel(candidates=(candidate,), time_budget=10).fit(X, y)
    sample = X.iloc[:10_000]
    e = explain(model, sample, method=method)
    assert e.method == (method if candidate == "lightgbm" else "exact")
    assert e.check(atol=1e-6) < 1e-6  # 10,000 rows
    # the raw score is the model's own (before calibration), in log-odds
    p = model._raw(sample)
    np.testing.assert_allclose(1 / (1 + np.exp(-e.raw)), p, rtol=1e-9, atol=1e-12)
    assert list(e.contributions.columns) == ["orders_90d", "recency_days", "country"]
    # scoring from the explanation's raw score gives predict_proba's probabilities
    np.testing.assert_allclose(
        model.from_raw(e.raw), model.predict_proba(sample)[:, 1], rtol=1e-9, atol=1e-12
    )
    # a web worker explains from the saved JSON alone, identically
    again = model_from_dict(json.loads(json.dumps(model.to_dict())))
    np.testing.assert_allclose(
        explain(again, sample, method=method).contributions, e.contributions, atol=1e-12
    )


def test_auto_uses_treeshap_for_few_rows_and_paths_for_many(data):
    X, y, _ = data
    model = PropensityModel(candidates=("lightgbm",), time_budget=10).fit(X, y)
    few, many = explain(model, X.iloc[:100]), explain(model, X.iloc[:6000])
    assert (few.method, many.method) == ("treeshap", "path")
    # same bias, same raw score; the two methods mostly agree on the top reason
    np.testing.assert_allclose(few.bias, many.bias[:100], atol=1e-9)
    np.testing.assert_allclose(few.raw, many.raw[:100], atol=1e-9)
    shap = explain(model, X.iloc[:2000], method="treeshap").contributions.abs().idxmax(axis=1)
    path = many.contributions.iloc[:2000].abs().idxmax(axis=1)
    assert (shap == path).mean() > 0.7
    with pytest.raises(DataError, match="method"):
        explain(model, X.iloc[:5], method="lime")


def test_signal_shows_in_the_reasons(data):
    X, y, _ = data
    model = PropensityModel(candidates=("lightgbm",), time_budget=10).fit(X, y)
    e = explain(model, X.iloc[:2000])
    mean_abs = e.contributions.abs().mean()
    assert mean_abs.idxmax() == "orders_90d"
    r = reasons(e, X.iloc[:2000], top=2)
    assert list(r.columns) == ["reason_1", "contribution_1", "reason_2", "contribution_2"]
    assert (r["contribution_1"].abs() >= r["contribution_2"].abs()).all()
    first = r.iloc[0]
    feature = first["reason_1"].split(" = ")[0]
    assert feature in X.columns and f"({first['contribution_1']:+.2f})" in first["reason_1"]
    missing = X.index[X["recency_days"].isna()][:200]
    texts = reasons(explain(model, X.loc[missing]), X.loc[missing], top=3)
    assert texts.apply(
        lambda row: any("recency_days = missing" in str(v) for v in row), axis=1
    ).any()


def test_regression_and_unseen_levels(data):
    X, _, spend = data
    model = PropensityModel(task="regression", candidates=("lightgbm",), time_budget=10)
    model.fit(X, spend)
    new = X.iloc[:50].assign(country="PT")  # a level never seen in training
    e = explain(model, new)
    e.check()
    np.testing.assert_allclose(e.raw, model.predict(new), rtol=1e-9, atol=1e-9)
    assert e.space == "amount"


def test_bad_input(data):
    X, y, _ = data
    model = PropensityModel(candidates=("logistic",), time_budget=5).fit(X, y)
    with pytest.raises(DataError, match="orders_90d"):
        explain(model, X.drop(columns="orders_90d"))
    with pytest.raises(DataError, match="top"):
        reasons(explain(model, X.iloc[:5]), X.iloc[:5], top=0)


def test_no_rows_give_an_empty_explanation(data):
    X, y, _ = data
    model = PropensityModel(candidates=("lightgbm",), time_budget=5).fit(X, y)
    for method in ("auto", "treeshap", "path"):
        e = explain(model, X.iloc[:0], method=method)
        assert e.contributions.shape == (0, 3) and len(e.raw) == 0
        assert reasons(e, X.iloc[:0]).empty
