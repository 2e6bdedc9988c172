"""Propensity on public data: the automatic procedure against the published peers' ROC-AUC.

Peers (shared/data/SOURCES.md): bank marketing without ``duration``, 5-fold stratified CV,
logistic regression 0.791, HistGradientBoosting 0.804, LightGBM 0.802; Telco churn, logistic
regression 0.845. The same procedure runs on both: no per-data-set settings.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from mercato.models.metrics import classification_report
from mercato.models.propensity import PropensityModel, evaluate, model_from_dict, read_table
from tests_support import data_dir_or_skip


@pytest.mark.realdata
@pytest.mark.slow
def test_bank_marketing_without_duration():
    root = data_dir_or_skip("bank_marketing.csv.gz")
    frame = read_table(root / "bank_marketing.csv.gz")
    assert frame.shape == (41188, 21)  # the ';' separator was found
    res = evaluate(frame, "y", exclude=["duration"], cv=5, where="bank_marketing.csv.gz")
    s = res.summary
    assert s["positive"] == "yes" and s["evaluated_rows"] == 41188
    assert s["metrics"]["roc_auc"] >= 0.80
    assert s["fold_roc_auc_mean"] >= 0.80
    # every row has an out-of-fold probability, and the metrics follow from them
    pred = res.predictions
    assert len(pred) == 41188 and pred.p.between(0, 1).all()
    assert classification_report(pred.y, pred.p)["roc_auc"] == pytest.approx(
        s["metrics"]["roc_auc"]
    )
    # calibrated: the mean probability is the base rate, the top decile lifts at least 4x
    assert abs(s["metrics"]["mean_predicted"] - s["metrics"]["base_rate"]) < 0.01
    assert res.table.lift.iloc[0] > 4.0
    assert "duration" not in s["features"] and len(s["features"]) == 19


@pytest.mark.realdata
@pytest.mark.slow
def test_telco_churn():
    root = data_dir_or_skip("telco_churn.csv.gz")
    frame = read_table(root / "telco_churn.csv.gz")
    res = evaluate(frame, "Churn", exclude=["customerID"], cv=5, where="telco_churn.csv.gz")
    s = res.summary
    assert s["positive"] == "Yes" and s["evaluated_rows"] == 7043
    assert s["metrics"]["roc_auc"] >= 0.845
    # the blank TotalCharges of new customers are missing values, said in a note
    assert any("'TotalCharges': text read as numbers; 11 values" in n for n in res.notes)


@pytest.mark.realdata
def test_telco_model_saves_and_loads_with_identical_predictions():
    root = data_dir_or_skip("telco_churn.csv.gz")
    frame = read_table(root / "telco_churn.csv.gz")
    y = (frame.pop("Churn") == "Yes").astype(int).to_numpy()
    ids = frame.pop("customerID")
    model = PropensityModel(time_budget=10).fit(frame, y, ids=ids)
    again = model_from_dict(json.loads(json.dumps(model.to_dict())))
    assert np.array_equal(again.predict_proba(frame), model.predict_proba(frame))
    assert model.customers_ == 7043 and model.customers_fingerprint_.startswith("sha256:")
