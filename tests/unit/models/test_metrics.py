"""Evaluation metrics: by hand, against scikit-learn, and against brute-force references."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn import calibration as skcal
from sklearn import metrics as skm

from mercato.errors import DataError
from mercato.models.metrics import (
    calibration_curve,
    classification_report,
    decile_table,
    lift_table,
    profit_threshold,
    regression_report,
    threshold_metrics,
)

Y = np.array([1, 0, 1, 1, 0, 0, 1, 0, 0, 0])
P = np.array([0.9, 0.8, 0.7, 0.6, 0.55, 0.4, 0.3, 0.2, 0.1, 0.05])


def test_threshold_metrics_by_hand():
    # p >= 0.5: rows 0-4 -> TP 3 (rows 0, 2, 3), FP 2 (rows 1, 4), FN 1 (row 6), TN 4
    m = threshold_metrics(Y, P)
    assert m["accuracy"] == pytest.approx(7 / 10)
    assert m["precision"] == pytest.approx(3 / 5)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(2 * 0.6 * 0.75 / (0.6 + 0.75))
    assert m["contacted_share"] == pytest.approx(0.5)
    # nobody predicted positive: precision 0, not an error
    none = threshold_metrics(Y, P, threshold=0.95)
    assert none["precision"] == 0.0 and none["recall"] == 0.0 and none["accuracy"] == 0.6


def test_classification_report_by_hand_and_against_sklearn(rng):
    # ROC-AUC by hand: of the 4 x 6 positive-negative pairs, the positive scores higher in
    # 6 (row 0) + 5 (row 2: all but 0.8) + 5 (row 3) + 3 (row 6: above 0.2, 0.1, 0.05) = 19
    r = classification_report(Y, P)
    assert r["roc_auc"] == pytest.approx(19 / 24)
    assert r["base_rate"] == 0.4 and r["positives"] == 4 and r["rows"] == 10
    assert r["brier"] == pytest.approx(np.mean((P - Y) ** 2))
    assert r["log_loss"] == pytest.approx(-np.mean(Y * np.log(P) + (1 - Y) * np.log(1 - P)))
    # average precision: mean of the precision at each positive's rank (1, 2/3, 3/4, 4/7)
    assert r["pr_auc"] == pytest.approx(np.mean([1, 2 / 3, 3 / 4, 4 / 7]))
    y = (rng.random(2000) < 0.2).astype(int)
    p = np.clip(0.2 + 0.3 * (y - 0.2) + rng.normal(0, 0.15, 2000), 0.001, 0.999)
    r = classification_report(y, p, threshold=0.3)
    assert r["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert r["pr_auc"] == pytest.approx(skm.average_precision_score(y, p))
    assert r["brier"] == pytest.approx(skm.brier_score_loss(y, p))
    assert r["log_loss"] == pytest.approx(skm.log_loss(y, p))
    assert r["f1"] == pytest.approx(skm.f1_score(y, p >= 0.3))
    assert r["threshold"] == 0.3


def test_classification_report_one_class_and_profit_part():
    r = classification_report([0, 0, 0], [0.1, 0.2, 0.3])
    assert math.isnan(r["roc_auc"]) and math.isnan(r["pr_auc"])
    r = classification_report(Y, P, contact_cost=1.0, value=3.0)
    best = profit_threshold(Y, P, 1.0, 3.0)
    at = r["at_profit_threshold"]
    assert at["threshold"] == best["threshold"] and at["profit"] == best["profit"]
    assert at["recall"] == pytest.approx(best["positives_reached"] / 4)
    with pytest.raises(DataError, match="both"):
        classification_report(Y, P, contact_cost=1.0)


def test_lift_table_by_hand():
    t = lift_table(Y, P, bins=5)
    assert t["customers"].tolist() == [2, 2, 2, 2, 2]
    assert t["positives"].tolist() == [1, 2, 0, 1, 0]
    assert t["rate"].tolist() == [0.5, 1.0, 0.0, 0.5, 0.0]
    assert t["lift"].tolist() == pytest.approx([1.25, 2.5, 0.0, 1.25, 0.0])
    assert t["cumulative_gain"].tolist() == pytest.approx([0.25, 0.75, 0.75, 1.0, 1.0])
    assert t["cumulative_lift"].tolist() == pytest.approx([1.25, 1.875, 1.25, 1.25, 1.0])
    assert t["max_score"].iloc[0] == 0.9 and t["min_score"].iloc[-1] == 0.05
    # deciles of an uneven count: sizes differ by one at most; order by decreasing score
    rng = np.random.default_rng(0)
    y = (rng.random(1003) < 0.1).astype(int)
    p = rng.random(1003)
    t = lift_table(y, p)
    assert len(t) == 10 and t["customers"].sum() == 1003 and t["customers"].max() == 101
    assert (t["min_score"].to_numpy()[:-1] >= t["max_score"].to_numpy()[1:]).all()
    assert t["cumulative_gain"].iloc[-1] == pytest.approx(1.0)
    assert t["positives"].sum() == y.sum()


def test_calibration_curve_matches_sklearn(rng):
    y = (rng.random(5000) < 0.3).astype(int)
    p = np.clip(rng.beta(2, 5, 5000), 0, 1)
    ours = calibration_curve(y, p, bins=10, strategy="uniform")
    true, pred = skcal.calibration_curve(y, p, n_bins=10, strategy="uniform")
    assert ours["observed_rate"].to_numpy() == pytest.approx(true)
    assert ours["mean_predicted"].to_numpy() == pytest.approx(pred)
    q = calibration_curve(y, p, bins=10)  # quantile bins: equal counts
    true_q, pred_q = skcal.calibration_curve(y, p, n_bins=10, strategy="quantile")
    assert q["observed_rate"].to_numpy() == pytest.approx(true_q)
    assert q["mean_predicted"].to_numpy() == pytest.approx(pred_q)
    assert q["customers"].sum() == 5000 and q["customers"].min() >= 499
    with pytest.raises(DataError, match="strategy"):
        calibration_curve(y, p, strategy="nope")


def test_profit_threshold_by_hand_and_brute_force(rng):
    r = profit_threshold([1, 0, 1, 0, 0], [0.9, 0.8, 0.7, 0.2, 0.1], 1.0, 3.0)
    # contact the top 1: 2; top 2: 1; top 3: 3; top 4: 2; all: 1
    assert (r["threshold"], r["profit"], r["contacted"]) == (0.7, 3.0, 3)
    assert r["positives_reached"] == 2 and r["profit_contact_all"] == 1.0
    assert r["break_even_probability"] == pytest.approx(1 / 3)
    # brute force over every threshold, with ties in the scores
    y = (rng.random(400) < 0.15).astype(int)
    p = np.round(np.clip(0.15 + 0.3 * (y - 0.15) + rng.normal(0, 0.1, 400), 0, 1), 2)
    r = profit_threshold(y, p, 2.0, 10.0)
    best = max((float(np.sum(np.where(p >= t, 10.0 * y - 2.0, 0.0))), -t) for t in np.unique(p))
    assert r["profit"] == pytest.approx(best[0])
    assert r["threshold"] == pytest.approx(-best[1])
    assert r["contacted"] == int((p >= r["threshold"]).sum())
    curve = r["curve"]
    assert len(curve) <= 102 and curve["profit"].max() == pytest.approx(r["profit"])
    # when a contact costs more than any conversion brings, contact no one
    r = profit_threshold([1, 0, 1], [0.9, 0.5, 0.4], 5.0, 4.0)
    assert r["contacted"] == 0 and r["profit"] == 0.0 and r["threshold"] > 0.9
    with pytest.raises(DataError, match="contact cost"):
        profit_threshold([1, 0], [0.5, 0.4], -1.0, 3.0)


def test_regression_report_and_deciles(rng):
    y = rng.gamma(2.0, 50.0, 1000)
    pred = y * 0.8 + rng.normal(0, 20, 1000)
    r = regression_report(y, pred)
    assert r["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert r["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(y, pred)))
    assert r["r2"] == pytest.approx(skm.r2_score(y, pred))
    t = decile_table([5, 1, 3, 0], [4.0, 2.0, 3.0, 1.0], bins=2)
    assert t["mean_actual"].tolist() == [4.0, 0.5]
    assert t["mean_predicted"].tolist() == [3.5, 1.5]
    assert t["cumulative_share"].tolist() == pytest.approx([8 / 9, 1.0])
    t = decile_table(y, pred)
    assert t["mean_actual"].iloc[0] > t["mean_actual"].iloc[-1]


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        ([0, 1], [0.5], "different lengths"),
        ([0, 1, 2], [0.1, 0.2, 0.3], "0/1"),
        ([0, 1], [0.1, 1.2], r"\[0, 1\]"),
        ([0, np.nan], [0.1, 0.2], "outcomes are missing"),
        ([0, 1], [0.1, np.nan], "predictions are missing"),
        ([], [], "no rows"),
    ],
)
def test_bad_inputs_name_the_problem(y, p, match):
    with pytest.raises(DataError, match=match):
        classification_report(y, p)


def test_tables_are_dataframes_with_documented_columns():
    assert isinstance(lift_table(Y, P), pd.DataFrame)
    assert list(lift_table(Y, P).columns)[:6] == [
        "decile",
        "customers",
        "positives",
        "rate",
        "lift",
        "cumulative_customers_share",
    ]
    assert list(calibration_curve(Y, P, bins=2).columns) == [
        "bin",
        "customers",
        "mean_predicted",
        "observed_rate",
        "lower",
        "upper",
    ]
