"""The propensity estimator: model choice on simulated data with a known signal, calibration,
preprocessing, JSON, bad input, nested evaluation and the CLI."""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import brier_score_loss, r2_score, roc_auc_score
from sklearn.tree import DecisionTreeClassifier

from mercato.cli.main import main
from mercato.errors import DataError, MercatoError, NotFittedError
from mercato.models.metrics import classification_report
from mercato.models.propensity import (
    FORMAT,
    Preprocessor,
    PropensityModel,
    _delong,
    binary_target,
    evaluate,
    model_from_dict,
    read_table,
)

# -- simulated customers with a known signal ---------------------------------------------------


def simulate(n, kind, seed, base=-1.0):
    """Features and a 0/1 outcome whose log-odds are linear or not in the features."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "x2": rng.normal(size=n),
            "x3": rng.uniform(-2, 2, n),
            "seg": rng.choice(["a", "b", "c"], n),
            "noise": rng.normal(size=n),
        }
    )
    if kind == "linear":
        z = base + 1.0 * X.x1 - 0.7 * X.x2 + 0.5 * (X.seg == "a")
    else:
        z = base + 2.0 * np.sin(2 * X.x3) + 1.5 * (X.x1 * X.x2 > 0) - 1.0 * (X.x1**2 > 1.5)
    p = 1 / (1 + np.exp(-z.to_numpy(dtype=float)))
    y = (rng.random(n) < p).astype(int)
    return X, y, p


@pytest.fixture(scope="module")
def nonlinear():
    X, y, _ = simulate(3000, "nonlinear", 0)
    Xt, yt, pt = simulate(3000, "nonlinear", 100)
    model = PropensityModel(time_budget=20, seed=0).fit(X, y)
    return model, X, y, Xt, yt, pt


@pytest.fixture(scope="module")
def linear_small():
    X, y, _ = simulate(600, "linear", 1)
    Xt, yt, pt = simulate(3000, "linear", 101)
    model = PropensityModel(time_budget=20, seed=0).fit(X, y)
    return model, X, y, Xt, yt, pt


def best_of(model, candidate):
    lb = model.leaderboard_
    return lb[(lb.candidate == candidate) & (lb.status == "ok")]["roc_auc"].max()


# -- model choice -------------------------------------------------------------------------------


def test_lightgbm_is_chosen_when_the_signal_is_not_linear(nonlinear):
    model, _, _, Xt, yt, pt = nonlinear
    assert model.chosen_ == "lightgbm"
    # by a wide margin on validation: a linear model cannot draw sin(2 x3) or x1 * x2 > 0
    assert best_of(model, "lightgbm") > best_of(model, "logistic") + 0.1
    assert best_of(model, "dummy") == pytest.approx(0.5)
    p = model.predict_proba(Xt)[:, 1]
    # close to the best possible ranking (the true probabilities')
    assert roc_auc_score(yt, p) > roc_auc_score(yt, pt) - 0.05
    assert "LightGBM" in model.choice_reason_ and "validation ROC-AUC" in model.choice_reason_
    assert "dummy baseline 0.500" in model.choice_reason_


def test_logistic_is_chosen_for_a_linear_signal_on_little_data(linear_small):
    model, _, _, Xt, yt, pt = linear_small
    assert model.chosen_ == "logistic"
    assert best_of(model, "logistic") > best_of(model, "lightgbm")
    p = model.predict_proba(Xt)[:, 1]
    assert roc_auc_score(yt, p) > roc_auc_score(yt, pt) - 0.02
    # a linear model of a linear truth: calibrated without help
    assert abs(p.mean() - yt.mean()) < 0.03
    assert model.choice_reason_.startswith("logistic regression")


def test_leaderboard_lists_every_setting_with_one_chosen(nonlinear):
    model = nonlinear[0]
    lb = model.leaderboard_
    assert list(lb.columns) == [
        "candidate",
        "settings",
        "roc_auc",
        "pr_auc",
        "log_loss",
        "brier",
        "se_vs_best",
        "fit_seconds",
        "status",
        "chosen",
        "reason",
    ]
    assert set(lb.candidate) == {"dummy", "logistic", "lightgbm"}
    assert lb.chosen.sum() == 1
    chosen = lb[lb.chosen].iloc[0]
    assert chosen.reason == model.choice_reason_
    assert "rounds=" in chosen.settings and "num_leaves=" in chosen.settings
    assert (lb[lb.status == "ok"].fit_seconds >= 0).all()
    # the chosen row has the best ROC-AUC of its candidate
    assert chosen.roc_auc == best_of(model, "lightgbm")
    assert lb[lb.candidate == "logistic"].settings.str.contains("C=").all()
    assert any(n.startswith("validation: 3-fold stratified") for n in model.notes_)


def test_a_simpler_model_within_one_standard_error_is_kept():
    # the log-odds are linear and the data small: LightGBM cannot be clearly better
    X, y, _ = simulate(400, "linear", 7)
    model = PropensityModel(time_budget=10, seed=0).fit(X, y)
    lb = model.leaderboard_
    lgb = lb[(lb.candidate == "lightgbm") & lb.reason.str.startswith("best")]
    assert model.chosen_ == "logistic"
    if best_of(model, "lightgbm") > best_of(model, "logistic"):  # then only within one SE
        assert best_of(model, "lightgbm") - best_of(model, "logistic") <= lgb.se_vs_best.iloc[0]
        assert "within one standard error" in model.choice_reason_


def test_no_signal_gives_flat_calibrated_probabilities():
    # pure noise: whatever wins the search by chance, its calibrated probabilities stay
    # close to the base rate, and it ranks new customers no better than chance
    rng = np.random.default_rng(3)

    def noise(n):
        X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.choice(["u", "v"], n)})
        return X, (rng.random(n) < 0.3).astype(int)

    X, y = noise(500)
    Xt, yt = noise(5000)
    model = PropensityModel(time_budget=5, seed=0).fit(X, y)
    p = model.predict_proba(Xt)[:, 1]
    assert abs(p.mean() - y.mean()) < 0.05 and p.std() < 0.1
    assert abs(roc_auc_score(yt, p) - 0.5) < 0.05
    lb = model.leaderboard_
    assert lb[lb.candidate != "dummy"].roc_auc.max() < 0.65


def test_calibration_improves_the_brier_score_on_imbalanced_data():
    X, y, _ = simulate(4000, "nonlinear", 5, base=-3.5)
    Xt, yt, _ = simulate(4000, "nonlinear", 6, base=-3.5)
    assert 0.03 < y.mean() < 0.15
    raw = PropensityModel(time_budget=10, class_weight="balanced", calibrate="none", seed=0).fit(
        X, y
    )
    cal = PropensityModel(time_budget=10, class_weight="balanced", calibrate="auto", seed=0).fit(
        X, y
    )
    p_raw, p_cal = raw.predict_proba(Xt)[:, 1], cal.predict_proba(Xt)[:, 1]
    # balanced class weights push probabilities up; calibration brings them back
    assert p_raw.mean() > 2 * yt.mean()
    assert abs(p_cal.mean() - yt.mean()) < 0.02
    assert brier_score_loss(yt, p_cal) < 0.8 * brier_score_loss(yt, p_raw)
    assert cal.calibrator_.method in ("platt", "isotonic")
    assert "log-loss" in cal.calibration_["reason"]
    assert raw.calibrator_.method == "none"
    # calibration is monotone: the ranking (ROC-AUC) barely moves
    assert abs(roc_auc_score(yt, p_cal) - roc_auc_score(yt, p_raw)) < 0.01
    assert (
        cal.leaderboard_.settings.str.contains("class_weight=balanced").all()
        or (cal.leaderboard_.candidate == "dummy").any()
    )


# -- JSON -------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["nonlinear", "linear_small"])
def test_json_round_trip_gives_identical_predictions(which, request):
    model, X, *_ = request.getfixturevalue(which)
    data = json.loads(json.dumps(model.to_dict(), allow_nan=False))
    assert data["format"] == FORMAT == "mercato.propensity/1"
    assert data["estimator"]["kind"] == model.chosen_
    again = model_from_dict(data)
    Xn = X.copy()
    Xn.loc[:5, "seg"] = ["zzz", None, "a", "b", "c", "new"]
    Xn.loc[:3, "x1"] = np.nan
    assert np.array_equal(again.predict_proba(Xn), model.predict_proba(Xn))
    assert np.array_equal(again.predict(Xn), model.predict(Xn))
    assert again.chosen_ == model.chosen_ and again.choice_reason_ == model.choice_reason_
    assert again.leaderboard_.shape == model.leaderboard_.shape
    assert again.get_params()["candidates"] == ("dummy", "logistic", "lightgbm")
    with pytest.raises(DataError, match="not a saved propensity model"):
        model_from_dict({"format": "mercato.uplift/1"})


def test_the_registry_saves_and_loads_it(tmp_path, monkeypatch, linear_small):
    from mercato.models import registry

    # the registration line of registry.LOADERS, as the registry will hold it
    monkeypatch.setitem(
        registry.LOADERS, "mercato.propensity", "mercato.models.propensity:model_from_dict"
    )
    model, X, *_ = linear_small
    reg = registry.ModelRegistry(tmp_path)
    version = reg.save(model, name="buyers", kind="propensity", customers=range(len(X)))
    assert version.manifest["model"] == "propensity:logistic"
    loaded = reg.load("buyers")
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert reg.trained_on("buyers", 5)


def test_a_user_estimator_may_be_chosen_but_not_saved():
    X, y, _ = simulate(800, "nonlinear", 2)
    tree = DecisionTreeClassifier(max_depth=4, random_state=0)
    model = PropensityModel(candidates=("dummy", tree), time_budget=5).fit(X, y)
    assert model.chosen_ == "DecisionTreeClassifier"
    assert model.predict_proba(X).shape == (800, 2)
    with pytest.raises(MercatoError, match="pickle"):
        model.to_dict()

    class Broken(DecisionTreeClassifier):
        def fit(self, X, y, **kw):
            raise RuntimeError("boom")

    model = PropensityModel(candidates=("dummy", "logistic", Broken()), time_budget=5).fit(X, y)
    row = model.leaderboard_[model.leaderboard_.candidate == "Broken"].iloc[0]
    assert row.status.startswith("failed: RuntimeError: boom") and not row.chosen
    with pytest.raises(DataError, match="not a scikit-learn estimator"):
        PropensityModel(candidates=("dummy", object())).fit(X, y)


# -- preprocessing ------------------------------------------------------------------------------


def test_unseen_and_rare_categories_share_the_other_bucket(nonlinear):
    model, X, *_ = nonlinear
    rows = X.iloc[:50].copy()
    a, b = rows.copy(), rows.copy()
    a["seg"], b["seg"] = "never-seen", "also-new"
    pa, pb = model.predict_proba(a)[:, 1], model.predict_proba(b)[:, 1]
    assert np.isfinite(pa).all() and np.array_equal(pa, pb)
    # a level rare at fit time goes to the same bucket as an unseen one
    rng = np.random.default_rng(0)
    Xr = pd.DataFrame({"x": rng.normal(size=400), "c": rng.choice(["a", "b"], 400)})
    Xr.loc[:2, "c"] = "rare"  # 3 rows: fewer than the 5 a level needs
    prep = Preprocessor.fit(Xr)
    col = prep.columns[1]
    assert col.levels == ["a", "b"] or col.levels == ["b", "a"]
    assert col.has_other
    probe = pd.DataFrame({"x": [0.0, 0.0, 0.0], "c": ["rare", "unseen", None]})
    tree = prep.tree_matrix(probe)
    assert tree[0, 1] == tree[1, 1] == 2 and math.isnan(tree[2, 1])
    lin = pd.DataFrame(prep.linear_matrix(probe), columns=prep.linear_names)
    assert lin["c=other"].tolist() == [1.0, 1.0, 0.0]
    assert lin[["c=a", "c=b"]].to_numpy().sum() == 0


def test_constant_missing_identifier_date_and_text_number_columns():
    rng = np.random.default_rng(0)
    n = 300
    X = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "const": 7,
            "empty": np.nan,
            "empty_text": pd.Series([None] * n, dtype="string"),
            "cust_id": [f"C{i:05d}" for i in range(n)],
            "signup": pd.date_range("2024-01-01", periods=n, freq="D"),
            "iso": [f"2024-02-{1 + i % 28:02d}" for i in range(n)],
            "charges": [" " if i % 50 == 0 else f"{i * 1.5:.2f}" for i in range(n)],
            "flag": rng.random(n) < 0.5,
        }
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-X.x.to_numpy()))).astype(int)
    model = PropensityModel(time_budget=5).fit(X, y)
    assert model.prep_.dropped == {
        "const": "constant (every value is 7)",
        "empty": "every value is missing",
        "empty_text": "every value is missing",
        "cust_id": "identifier-like: 300 distinct values in 300 rows, not a feature",
    }
    assert model.features_ == ["x", "signup", "iso", "charges", "flag"]
    kinds = {c.name: c.source for c in model.prep_.columns}
    assert kinds == {
        "x": "number",
        "signup": "datetime",
        "iso": "text-datetime",
        "charges": "text-number",
        "flag": "bool",
    }
    notes = " | ".join(model.notes_)
    assert "column 'const' dropped: constant" in notes
    assert "column 'cust_id' dropped: identifier-like" in notes
    assert "6 values that are not numbers (such as ' ') are taken as missing" in notes
    assert "days since 1970-01-01" in notes
    tree = model.prep_.tree_matrix(X.iloc[:2])
    assert tree[0, 1] == (pd.Timestamp("2024-01-01") - pd.Timestamp("1970-01-01")).days
    assert math.isnan(tree[0, 3]) and tree[1, 3] == 1.5
    # at predict time a dropped column may be absent; a used one may not
    model.predict_proba(X.drop(columns=["const", "empty", "cust_id"]))
    with pytest.raises(DataError, match="no column 'charges'"):
        model.predict_proba(X.drop(columns=["charges"]))
    bad = X.iloc[:3].copy()
    bad["x"] = ["1.0", "oops", "2"]
    with pytest.raises(DataError, match="not numbers") as err:
        model.predict_proba(bad)
    assert err.value.column == "x" and err.value.row == 1


def test_no_usable_feature_is_a_clear_error():
    X = pd.DataFrame({"k": [1] * 50, "e": [np.nan] * 50})
    y = [0, 1] * 25
    with pytest.raises(DataError, match="no usable feature: k: constant"):
        PropensityModel().fit(X, y)


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("y", "match"),
    [
        ([1] * 60, "one class only"),
        ([0, 1, 2] * 20, "3 classes"),
        ([0] * 58 + [1, 1], "only 2 rows of the class 1"),
        ([0, 1] * 29 + [None, 1], "target values are missing"),
        ([0, 1] * 20, "different lengths"),
    ],
)
def test_bad_targets_name_the_problem(y, match):
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=60)})
    with pytest.raises(DataError, match=match):
        PropensityModel().fit(X, y)


def test_tiny_data_and_bad_settings():
    X = pd.DataFrame({"x": np.arange(10.0)})
    with pytest.raises(DataError, match="only 10 rows"):
        PropensityModel().fit(X, [0, 1] * 5)
    X = pd.DataFrame({"x": np.arange(40.0)})
    y = [0, 1] * 20
    for kwargs, match in [
        ({"task": "ranking"}, "unknown task"),
        ({"candidates": ("dummy", "xgboost")}, "unknown candidate"),
        ({"calibrate": "beta"}, "unknown calibrate"),
        ({"time_budget": 0}, "time_budget"),
        ({"validation": "time"}, "needs a time column"),
        ({"time_col": "when"}, "no time column 'when'"),
    ]:
        with pytest.raises(DataError, match=match):
            PropensityModel(**kwargs).fit(X, y)
    with pytest.raises(DataError, match="DataFrame"):
        PropensityModel().fit([[1.0]] * 40, y)
    with pytest.raises(NotFittedError):
        PropensityModel().predict_proba(X)


def test_tiny_but_valid_data_fits():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=30), "c": rng.choice(["a", "b"], 30)})
    y = (X.x > 0).astype(int).to_numpy()
    model = PropensityModel(time_budget=5).fit(X, y)
    p = model.predict_proba(X)[:, 1]
    assert np.isfinite(p).all() and roc_auc_score(y, p) > 0.8


# -- scikit-learn protocol, time validation, budget, regression ---------------------------------


def test_sklearn_protocol_and_determinism(linear_small):
    model, X, y, *_ = linear_small
    params = model.get_params()
    assert set(params) == {
        "task",
        "candidates",
        "time_budget",
        "validation",
        "time_col",
        "class_weight",
        "calibrate",
        "seed",
        "n_jobs",
    }
    copy = clone(model)
    assert not hasattr(copy, "model_") and copy.get_params() == params
    assert copy.set_params(seed=0, time_budget=20) is copy
    again = copy.fit(X, y)
    assert np.array_equal(again.predict_proba(X), model.predict_proba(X))
    labels = model.predict(X)
    assert set(np.unique(labels)) <= {0, 1}
    assert np.array_equal(labels, (model.predict_proba(X)[:, 1] >= 0.5).astype(int))
    assert model.classes_ == [0, 1]


def test_text_labels_become_classes():
    X, y, _ = simulate(300, "linear", 4)
    labels = np.where(y == 1, "buyer", "browser")
    model = PropensityModel(time_budget=5).fit(X, labels)
    assert model.classes_ == ["browser", "buyer"]
    assert set(model.predict(X)) <= {"browser", "buyer"}


def test_time_based_validation_holds_out_the_latest_rows():
    X, y, _ = simulate(2000, "nonlinear", 8)
    X["cutoff"] = np.repeat(pd.date_range("2024-01-01", periods=5, freq="MS"), 400)
    model = PropensityModel(time_col="cutoff", time_budget=10).fit(X, y)
    assert "cutoff" not in model.features_
    note = next(n for n in model.notes_ if n.startswith("validation"))
    assert "time-based: the 400 rows from cutoff" in note and "1,600 earlier rows" in note
    # one time value only: stratified instead, said in the note
    X["cutoff"] = pd.Timestamp("2024-01-01")
    model = PropensityModel(time_col="cutoff", time_budget=5).fit(X, y)
    note = next(n for n in model.notes_ if n.startswith("validation"))
    assert "cannot split" in note and "stratified" in note


def test_the_time_budget_stops_the_search_and_says_so():
    X, y, _ = simulate(1500, "nonlinear", 9)
    model = PropensityModel(time_budget=1e-6).fit(X, y)
    lb = model.leaderboard_
    ran = lb[lb.status == "ok"]
    assert sorted(ran.candidate) == ["dummy", "lightgbm", "logistic"]  # the first of each
    skipped = lb[lb.status.str.startswith("skipped: time budget")]
    assert len(skipped) == len(lb) - 3
    assert any(f"{len(skipped)} of {len(lb)} settings were not tried" in n for n in model.notes_)


def test_ids_give_a_fingerprint():
    X, y, _ = simulate(300, "linear", 10)
    ids = [f"c{i}" for i in range(300)]
    a = PropensityModel(time_budget=3).fit(X, y, ids=ids)
    b = PropensityModel(time_budget=3).fit(X.iloc[::-1], y[::-1], ids=ids[::-1])
    assert a.customers_ == 300 and a.customers_fingerprint_.startswith("sha256:")
    assert a.customers_fingerprint_ == b.customers_fingerprint_
    assert a.to_dict()["customers_fingerprint"] == a.customers_fingerprint_


def test_regression_task_predicts_amounts():
    rng = np.random.default_rng(11)
    n = 2000

    def spend(n, rng):
        X = pd.DataFrame({"visits": rng.poisson(3, n), "tier": rng.choice(["g", "s", "b"], n)})
        mu = 20 + 8 * X.visits + 30 * (X.tier == "g") + 10 * np.sin(X.visits)
        return X, (mu + rng.normal(0, 5, n)).to_numpy()

    X, y = spend(n, rng)
    Xt, yt = spend(n, rng)
    model = PropensityModel(task="regression", time_budget=10).fit(X, y)
    assert model.chosen_ in ("lightgbm", "linear")
    assert set(model.leaderboard_.candidate) == {"dummy", "linear", "lightgbm"}
    assert {"rmse", "mae", "r2"} <= set(model.leaderboard_.columns)
    pred = model.predict(Xt)
    assert r2_score(yt, pred) > 0.8
    assert "validation RMSE" in model.choice_reason_
    again = model_from_dict(json.loads(json.dumps(model.to_dict())))
    assert np.array_equal(again.predict(Xt), pred)
    with pytest.raises(DataError, match="predict_proba is for classification"):
        model.predict_proba(Xt)
    with pytest.raises(DataError, match="numbers for a regression"):
        PropensityModel(task="regression").fit(X, ["a"] * n)


def test_delong_matches_a_brute_force_computation(rng):
    y = (rng.random(60) < 0.4).astype(float)
    a = y + rng.normal(0, 1, 60)
    b = y + rng.normal(0, 1.5, 60)
    aucs, cov = _delong(y, [a, b])
    pos, neg = y == 1, y == 0

    def psi(s):
        return (s[pos][:, None] > s[neg][None, :]) + 0.5 * (s[pos][:, None] == s[neg][None, :])

    pa, pb = psi(a), psi(b)
    assert aucs[0] == pytest.approx(pa.mean()) and aucs[1] == pytest.approx(roc_auc_score(y, b))
    v10 = np.stack([pa.mean(axis=1), pb.mean(axis=1)])  # per positive
    v01 = np.stack([pa.mean(axis=0), pb.mean(axis=0)])  # per negative
    ref = np.cov(v10) / pos.sum() + np.cov(v01) / neg.sum()
    assert cov == pytest.approx(ref)


# -- targets and files --------------------------------------------------------------------------


def test_binary_target_rules():
    y, pos, neg, note = binary_target(["no", "yes", "no"])
    assert y.tolist() == [0, 1, 0] and (pos, neg) == ("yes", "no") and "reads as yes" in note
    y, pos, _, note = binary_target(["stay", "leave", "stay", "stay"])
    assert pos == "leave" and "the rarer value, 1 of 4 rows" in note
    y, pos, _, _ = binary_target([True, False, False])
    assert pos == "True" and y.tolist() == [1, 0, 0]
    y, pos, _, _ = binary_target([0, 1, 1, 1])
    assert pos == "1"
    y, pos, neg, note = binary_target(["a", "b", "c", "a"], positive="a")
    assert y.tolist() == [1, 0, 0, 1] and "against other values (b, c)" in note
    with pytest.raises(DataError, match="3 values"):
        binary_target(["a", "b", "c"])
    with pytest.raises(DataError, match="no row has y = 'maybe'"):
        binary_target(["a", "b"], positive="maybe")
    with pytest.raises(DataError, match="one class only"):
        binary_target(["a", "a"])


def test_read_table_detects_the_separator_gzip_and_parquet(tmp_path):
    frame = pd.DataFrame({"a": [1, 2], "b": ["x;y", "z"], "c": [0.5, 1.5]})
    semi = tmp_path / "t.csv.gz"
    with gzip.open(semi, "wt") as fh:
        frame.to_csv(fh, sep=";", index=False)
    comma = tmp_path / "t.csv"
    frame.to_csv(comma, index=False)
    pq = tmp_path / "t.parquet"
    frame.to_parquet(pq)
    for path in (semi, comma, pq):
        got = read_table(path)
        assert got["a"].tolist() == [1, 2] and got["b"].tolist() == ["x;y", "z"], path
    with pytest.raises(DataError, match="no such file"):
        read_table(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="no rows"):
        read_table(tmp_path / "empty.csv")


# -- evaluate -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shop_frame():
    X, y, _ = simulate(600, "nonlinear", 12)
    frame = X.copy()
    frame.insert(0, "customer", [f"c{i}" for i in range(600)])
    frame["answered"] = np.where(y == 1, "yes", "no")
    frame.loc[5, "answered"] = None
    return frame


def test_evaluate_gives_an_honest_prediction_for_every_row(shop_frame):
    res = evaluate(shop_frame, "answered", exclude=["customer"], cv=3, time_budget=5)
    pred = res.predictions
    assert len(pred) == 599 and sorted(pred.fold.unique()) == [1, 2, 3]
    assert 6 not in pred.row.tolist() and pred.row.iloc[0] == 1  # row 6 had no target
    assert set(pred.target) == {"yes", "no"}
    assert (pred.y == (pred.target == "yes")).all()
    # anyone can recompute the metrics from the predictions
    m = res.summary["metrics"]
    again = classification_report(pred.y, pred.p)
    assert m["roc_auc"] == pytest.approx(again["roc_auc"]) and m["roc_auc"] > 0.7
    assert m["brier"] == pytest.approx(again["brier"])
    assert res.summary["positive"] == "yes" and res.summary["chosen"] == {"lightgbm": 3}
    assert res.folds.roc_auc.mean() == pytest.approx(res.summary["fold_roc_auc_mean"])
    assert set(res.leaderboard.fold) == {1, 2, 3} and res.leaderboard.chosen.sum() == 3
    assert len(res.table) == 10 and res.table.positives.sum() == pred.y.sum()
    assert res.notes[0].startswith("target 'answered': positive class 'yes'")
    assert any("1 rows without a 'answered' value were left out" in n for n in res.notes)
    assert "left out as asked: customer" in res.notes
    out = json.loads(json.dumps(res.to_dict()))
    assert out["summary"]["metrics"]["roc_auc"] == pytest.approx(m["roc_auc"])
    assert len(out["folds"]) == 3 and out["leaderboard"] and out["calibration"]


def test_evaluate_with_a_profit_and_forward_chaining_by_time(shop_frame):
    frame = shop_frame.copy()
    frame["week"] = np.repeat(np.arange(6), 100)
    res = evaluate(
        frame,
        "answered",
        exclude=["customer"],
        cv=3,
        time_col="week",
        contact_cost=1.0,
        value=4.0,
        time_budget=5,
    )
    pred = res.predictions
    # blocks of weeks {0,1}, {2}, {3}, {4,5}... cut into 4 blocks: the first gets no prediction
    assert pred.fold.min() == 1 and len(pred) < 599
    first_week = frame.loc[pred.row - 1, "week"]
    assert first_week.min() >= 2
    assert (frame.loc[pred.row[pred.fold == 3] - 1, "week"] >= 4).all()
    assert "forward chaining" in res.summary["folds"]
    at = res.summary["metrics"]["at_profit_threshold"]
    assert at["profit"] >= 0 and at["break_even_probability"] == 0.25
    assert res.profit_curve is not None and len(res.profit_curve) > 5
    assert any("first time block" in n for n in res.notes)


def test_evaluate_regression():
    rng = np.random.default_rng(13)
    n = 300
    frame = pd.DataFrame({"visits": rng.poisson(3, n), "tier": rng.choice(["g", "s"], n)})
    frame["spend"] = 10 + 5 * frame.visits + 20 * (frame.tier == "g") + rng.normal(0, 3, n)
    res = evaluate(frame, "spend", cv=3, time_budget=5)
    assert res.summary["task"] == "regression"
    assert res.summary["metrics"]["r2"] > 0.8
    assert list(res.table.columns)[:4] == ["decile", "customers", "mean_predicted", "mean_actual"]


@pytest.mark.parametrize(
    ("kwargs", "match", "column"),
    [
        ({"target": "bought"}, "no target column 'bought'; the columns: customer, x1", "bought"),
        ({"exclude": ["nope"]}, "--exclude: no column 'nope'", "nope"),
        ({"time_col": "when"}, "--time-col: no column 'when'", "when"),
        ({"positive": "maybe"}, "no row has answered = 'maybe'", "answered"),
        ({"cv": 1}, "at least 2", None),
        ({"contact_cost": 1.0}, "both", None),
    ],
)
def test_evaluate_bad_arguments(shop_frame, kwargs, match, column):
    args = {"target": "answered", **kwargs}
    with pytest.raises(DataError, match=match) as err:
        evaluate(shop_frame, time_budget=5, where="shop.csv", **args)
    if column:  # a problem of the data names the file and the column
        assert err.value.file == "shop.csv" and err.value.column == column


def test_evaluate_bad_data():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=100), "y": ["no"] * 100})
    with pytest.raises(DataError, match="one class only"):
        evaluate(frame, "y")
    frame.loc[:2, "y"] = "yes"
    with pytest.raises(DataError, match="only 3 rows of the class 'yes': too few for 5-fold"):
        evaluate(frame, "y")
    with pytest.raises(DataError, match="only 30 rows with a target"):
        evaluate(frame.iloc[:30], "y")


# -- the command --------------------------------------------------------------------------------


def test_cli_evaluate_json_and_output(tmp_path, capsys, shop_frame):
    path = tmp_path / "shop.csv.gz"
    with gzip.open(path, "wt") as fh:
        shop_frame.to_csv(fh, sep=";", index=False)
    out = tmp_path / "oof.csv"
    code = main(
        [
            "predict",
            "evaluate",
            "--from",
            str(path),
            "--target",
            "answered",
            "--exclude",
            "customer",
            "--cv",
            "3",
            "--time-budget",
            "5",
            "--cost",
            "1",
            "--value",
            "5",
            "--output",
            str(out),
            "--json",
        ]
    )
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert code == 0 and len(lines) == 1
    payload = json.loads(lines[0])
    assert payload["ok"] and payload["summary"]["metrics"]["roc_auc"] > 0.7
    assert payload["summary"]["metrics"]["at_profit_threshold"]["profit"] > 0
    assert len(payload["rows"]) == 10 and payload["output"] == str(out)
    oof = pd.read_csv(out)
    assert list(oof.columns) == ["row", "target", "y", "p", "fold"] and len(oof) == 599
    again = classification_report(oof.y, oof.p)
    assert again["roc_auc"] == pytest.approx(payload["summary"]["metrics"]["roc_auc"])


def test_cli_errors_name_file_and_column(tmp_path, capsys, shop_frame):
    path = tmp_path / "shop.csv"
    shop_frame.to_csv(path, index=False)
    code = main(["predict", "evaluate", "--from", str(path), "--target", "bought", "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 1 and not payload["ok"]
    assert payload["column"] == "bought" and payload["file"] == "shop.csv"
    assert "the columns: customer, x1, x2" in payload["message"]
    code = main(
        ["predict", "evaluate", "--from", str(path), "--target", "answered", "--exclude", "zzz"]
    )
    err = capsys.readouterr().err
    assert code == 1 and "--exclude: no column 'zzz'" in err and "Traceback" not in err
