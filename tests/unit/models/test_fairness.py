"""Fairness audit and proxy check: exact per-group rates, intervals, flags, proxies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mercato.errors import DataError
from mercato.models.fairness import audit, proxy_check, sensitive_groups


def _two_groups() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # group a: 100 rows, 40 positives; selected: 30 positives + 10 negatives
    # group b: 100 rows, 40 positives; selected: 12 positives + 3 negatives
    y = np.r_[np.ones(40), np.zeros(60), np.ones(40), np.zeros(60)].astype(int)
    sel = np.zeros(200)
    sel[:30] = 1
    sel[40:50] = 1
    sel[100:112] = 1
    sel[140:143] = 1
    g = np.array(["a"] * 100 + ["b"] * 100)
    return y, sel, g


def test_exact_group_rates_and_flags():
    y, sel, g = _two_groups()
    r = audit(y, sel, g, n_boot=0)
    t = r.table.set_index("group")
    assert t.loc["a", "selection_rate"] == pytest.approx(0.40)
    assert t.loc["b", "selection_rate"] == pytest.approx(0.15)
    assert t.loc["a", "true_positive_rate"] == pytest.approx(30 / 40)
    assert t.loc["b", "false_positive_rate"] == pytest.approx(3 / 60)
    assert t.loc["a", "precision"] == pytest.approx(30 / 40)
    assert t.loc["b", "precision"] == pytest.approx(12 / 15)
    assert t.loc["a", "rows"] == 100 and t.loc["b", "selected"] == 15
    s = r.summary
    assert s["demographic_parity_ratio"] == pytest.approx(0.15 / 0.40)
    # TPR gap 0.75 - 0.30 = 0.45; FPR gap 10/60 - 3/60
    assert s["equalized_odds_difference"] == pytest.approx(0.45)
    assert s["four_fifths_flag"] and s["lowest_group"] == "b" and s["highest_group"] == "a"
    assert any("four-fifths rule: b is selected at 15.0%" in n for n in r.notes)


def test_parity_passes_and_bootstrap_intervals_hold_the_estimate():
    rng = np.random.default_rng(0)
    n = 4000
    g = rng.choice(["f", "m"], n)
    y = rng.binomial(1, 0.3, n)
    score = rng.random(n)
    r = audit(y, score, g, top_share=0.25, n_boot=100, seed=1)
    assert r.summary["selected"] == 1000 and not r.summary["four_fifths_flag"]
    assert r.summary["demographic_parity_ratio"] > 0.8
    for row in r.table.to_dict("records"):
        for m in ("selection_rate", "true_positive_rate", "precision"):
            assert row[f"{m}_low"] <= row[m] <= row[f"{m}_high"]
            assert row[f"{m}_high"] - row[f"{m}_low"] < 0.1


def test_small_groups_missing_values_and_numeric_bands():
    y, sel, g = _two_groups()
    g = g.astype(object)
    g[:5] = None  # five rows without the attribute
    g[195:] = "c"  # a group of five
    r = audit(y, sel, g, n_boot=0, min_group=30)
    groups = set(r.table["group"])
    assert {"(missing)", "c"} <= groups
    assert set(r.summary["small_groups"]) == {"(missing)", "c"}
    assert any("not used in the ratios" in n for n in r.notes)
    years = pd.Series(np.arange(1950, 2000).repeat(4))
    bands = sensitive_groups(years, column="birth_year")
    assert bands.nunique() == 5 and bands.value_counts().min() == 40


def test_bad_input_names_the_problem():
    with pytest.raises(DataError, match="0/1"):
        audit([0, 2, 1], [0.1, 0.2, 0.3], ["a", "b", "a"])
    with pytest.raises(DataError, match="differ in length"):
        audit([0, 1], [0.1, 0.2, 0.3], ["a", "b"])
    with pytest.raises(DataError, match="values for"):
        audit([0, 1, 1], [0.1, 0.2, 0.3], ["a", "b"], column="gender")
    with pytest.raises(DataError, match="top_share"):
        audit([0, 1], [0.1, 0.2], ["a", "b"], top_share=1.5)


def test_proxy_check_finds_the_stand_in():
    rng = np.random.default_rng(3)
    n = 3000
    gender = rng.choice(["f", "m"], n)
    features = pd.DataFrame(
        {
            # bought mostly from the women's range: a proxy
            "womens_share": np.where(gender == "f", rng.beta(8, 2, n), rng.beta(2, 8, n)),
            "frequency": rng.poisson(3, n),
            "country": rng.choice(["FR", "DE", "IT"], n),
        }
    )
    r = proxy_check(features, gender, column="gender")
    assert r.summary["proxies"] == ["womens_share"]
    assert r.table.iloc[0]["feature"] == "womens_share" and r.table.iloc[0]["association"] > 0.6
    assert r.summary["joint_auc"] > 0.9
    assert any("womens_share is strongly associated with gender" in n for n in r.notes)
    clean = proxy_check(features.drop(columns="womens_share"), gender, column="gender")
    assert clean.summary["proxies"] == [] and clean.summary["joint_auc"] < 0.6


def test_bootstrap_intervals_agree_with_fairlearns_row_bootstrap():
    from fairlearn.metrics import MetricFrame

    from mercato.models.fairness import METRICS

    rng = np.random.default_rng(5)
    n = 600
    g = rng.choice(["a", "b"], n, p=[0.7, 0.3])
    y = rng.binomial(1, 0.4, n)
    sel = rng.binomial(1, np.where(g == "a", 0.5, 0.3))
    ours = audit(y, sel, g, n_boot=150, seed=2).table.set_index("group")
    mf = MetricFrame(
        metrics=METRICS,
        y_true=y,
        y_pred=sel,
        sensitive_features=g,
        n_boot=150,
        ci_quantiles=[0.025, 0.975],
        random_state=2,
    )
    low, high = mf.by_group_ci
    for m in ("selection_rate", "true_positive_rate", "precision"):
        for grp in ("a", "b"):
            assert ours.loc[grp, f"{m}_low"] == pytest.approx(low.loc[grp, m], abs=0.035)
            assert ours.loc[grp, f"{m}_high"] == pytest.approx(high.loc[grp, m], abs=0.035)


def test_proxy_check_is_not_fooled_by_many_levels_or_numbers_as_text():
    rng = np.random.default_rng(9)
    n = 2000
    gender = rng.choice(["f", "m"], n)
    features = pd.DataFrame(
        {
            "total_charges": [f"{v:.2f}" if v > 5 else " " for v in rng.gamma(2, 500, n)],
            "customer_ref": [f"C{i:05d}" for i in range(n)],  # an identifier: all distinct
        }
    )
    r = proxy_check(features, gender, column="gender")
    assert r.summary["proxies"] == []
    t = r.table.set_index("feature")
    assert t.loc["total_charges", "measure"] == "correlation ratio"
    assert t.loc["customer_ref", "association"] < 0.1


def test_audit_cli(tmp_path, capsys):
    import json

    from mercato.cli.main import main

    rng = np.random.default_rng(4)
    n = 600
    gender = rng.choice(["f", "m"], n)
    x = rng.normal(size=n) + (gender == "f") * 1.5  # a proxy of gender that drives the target
    y = np.where(rng.random(n) < 1 / (1 + np.exp(-2 * x)), "yes", "no")
    f = tmp_path / "people.csv"
    pd.DataFrame(
        {"id": range(n), "x": x, "noise": rng.normal(size=n), "gender": gender, "y": y}
    ).to_csv(f, index=False)
    code = main(
        [
            "predict", "audit", "--from", str(f), "--target", "y", "--sensitive", "gender",
            "--exclude", "id", "--cv", "2", "--time-budget", "2", "--n-boot", "50", "--json",
        ]
    )  # fmt: skip
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    a = out["audits"]["gender"]
    assert a["audit"]["summary"]["four_fifths_flag"] is True
    assert a["proxies"]["summary"]["proxies"] == ["x"]
    assert {r["group"] for r in a["audit"]["rows"]} == {"f", "m"}
    code = main(["predict", "audit", "--from", str(f), "--target", "y", "--sensitive", "sex"])
    err = capsys.readouterr().err
    assert code == 1 and "no column 'sex'" in err and "gender" in err
