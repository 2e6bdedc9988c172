"""Uplift end to end: the synthetic shop against its truth, the CLI, and Hillstrom (real data)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mercato.cli.main import app, main
from mercato.data.ingest import ingest_folder
from mercato.data.synth import generate_shop
from mercato.models.registry import ModelRegistry
from mercato.models.uplift import (
    SCORES_TABLE,
    compare_with_truth,
    evaluate,
    features_from_warehouse,
    frame_from_warehouse,
    read_experiment_file,
)
from mercato.workspace import Workspace
from tests_support import data_dir_or_skip

runner = CliRunner()


def invoke_json(*args: str) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"--json must print exactly one line, got: {result.stdout!r}"
    return json.loads(lines[0])


# -- the synthetic shop ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A workspace holding a 4,000-customer synthetic shop (its RCT: ~1,300 customers)."""
    root = tmp_path_factory.mktemp("uplift")
    generate_shop(root / "shop", customers=4000, days=180, seed=3)
    ws = Workspace.init(root / "ws")
    with ws.warehouse() as wh:
        ingest_folder(wh, root / "shop")
    return ws, root / "shop"


def test_synthetic_shop_estimates_track_the_true_effects(shop):
    ws, folder = shop
    with ws.warehouse() as wh:
        frame = frame_from_warehouse(wh, "CAMP-EMAIL-RCT", "conversion")
    truth = pd.read_parquet(folder / "truth" / "uplift.parquet")
    assert len(frame) == len(truth) and set(frame.customer_id) == set(truth.customer_id)
    assert set(frame.treatment) == {"control", "email_v1"}
    # the frame's outcome is the truth's realised outcome
    merged = frame.merge(truth, on="customer_id")
    assert (merged.conversion == merged.converted.astype(int)).mean() > 0.99
    res = evaluate(
        frame, "treatment", None, "control", "conversion", frame.attrs["features"],
        id_col="customer_id",
    )  # fmt: skip
    p = res.predictions
    for code in res.summary["learners"]:
        cmp = compare_with_truth(p[["customer_id", f"{code}:email_v1"]], truth)
        # measured (661 held-out customers, seed 3): correlations 0.25-0.35, top 30% captures
        # 54-62% of the oracle's incremental conversions against 39% for random targeting
        assert cmp["customers"] == res.summary["test_rows"]
        assert cmp["pearson"] > 0.1, (code, cmp)
        assert cmp["oracle_share_captured"] > cmp["random_share"] + 0.05, (code, cmp)


def test_cli_evaluate_and_target_on_the_workspace(shop, tmp_path):
    ws, folder = shop
    out = tmp_path / "held_out.csv"
    payload = invoke_json(
        "uplift", "evaluate", "-w", str(ws.path), "--outcome", "conversion",
        "--learners", "t,s", "--truth", str(folder / "truth"), "--output", str(out),
        "--expected-shares", "equal",
    )  # fmt: skip
    s = payload["summary"]
    assert s["control"] == "control" and s["treatments"] == ["email_v1"]
    assert len(payload["rows"]) == 2 and s["best_learner"] in ("t", "s")
    assert not s["balance"]["srm"]["mismatch"]
    assert set(payload["truth"]) == {"t:email_v1", "s:email_v1"}
    assert all(v["pearson"] > 0.1 for v in payload["truth"].values())
    held = pd.read_csv(out)
    assert len(held) == s["test_rows"] and {"customer_id", "t:email_v1"} <= set(held.columns)

    plan_file = tmp_path / "plan.csv"
    payload = invoke_json(
        "uplift", "target", "-w", str(ws.path), "--learners", "t,s", "--budget", "20",
        "--cost", "0.1", "--value", "30", "--output", str(plan_file),
    )  # fmt: skip
    summary = payload["summary"]
    assert summary["contacts"] == 200 and summary["spend"] == pytest.approx(20.0)
    assert summary["stopped_by"] == "budget"
    plan = pd.read_csv(plan_file)
    assert len(plan) == 200 and plan.net_value.is_monotonic_decreasing
    saved = payload["saved"]
    assert saved["table"] == SCORES_TABLE and saved["model"].endswith("@v1")
    reg = ModelRegistry(ws)
    name = saved["model"].split("@")[0]
    model = reg.load(name)
    assert model.code == payload["learner"]
    # trained on the test's participants; the plan also reaches customers outside the test
    rct = set(pd.read_parquet(folder / "truth" / "uplift.parquet").customer_id)
    inside = [c for c in plan.customer_id if c in rct]
    outside = [c for c in plan.customer_id if c not in rct]
    assert inside and reg.trained_on(name, inside[0])
    assert not outside or not reg.trained_on(name, outside[0])
    with ws.warehouse() as wh:
        scores = wh.table(SCORES_TABLE).execute()
        population = features_from_warehouse(wh, purpose="email")
    # every customer who may be e-mailed is scored, by the registered model
    assert len(scores) == saved["rows"] == len(population)
    assert set(scores.model) == {saved["model"]}
    again = model.predict(population)["email_v1"].to_numpy()
    mine = scores.set_index("customer_id").loc[population.customer_id, "uplift"].to_numpy()
    np.testing.assert_allclose(mine, again)
    # the plan contacts only customers with e-mail consent
    assert set(plan.customer_id) <= set(population.customer_id)


# -- files -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mail_file(tmp_path_factory):
    """A small Hillstrom-like file: the Womens e-mail lifts visits of recent customers."""
    rng = np.random.default_rng(4)
    n = 3000
    recency = rng.integers(1, 13, n)
    segment = rng.choice(["Mens E-Mail", "Womens E-Mail", "No E-Mail"], n)
    p = 0.1 + 0.15 * ((segment == "Womens E-Mail") & (recency < 6))
    visit = (rng.random(n) < p).astype(int)
    frame = pd.DataFrame(
        {
            "recency": recency,
            "channel": rng.choice(["Web", "Phone"], n),
            "segment": segment,
            "visit": visit,
            "spend": visit * rng.gamma(2.0, 30.0, n) * (rng.random(n) < 0.3),
        }
    )
    path = tmp_path_factory.mktemp("mail") / "mail.csv.gz"
    frame.to_csv(path, index=False)
    return path


def test_cli_evaluate_from_a_file(mail_file, tmp_path):
    out = tmp_path / "pred.csv"
    payload = invoke_json(
        "uplift", "evaluate", "--from", str(mail_file), "--treatment", "segment=Womens E-Mail",
        "--control", "segment=No E-Mail", "--target", "visit", "--exclude", "spend",
        "--learners", "t,x", "--test-size", "0.5", "--seed", "42", "--output", str(out),
    )  # fmt: skip
    s = payload["summary"]
    assert s["features"] == ["recency", "channel"] and s["test_rows"] == len(pd.read_csv(out))
    assert s["treatments"] == ["Womens E-Mail"] and s["control"] == "No E-Mail"
    rows = {r["learner"]: r for r in payload["rows"]}
    assert rows["t"]["uplift_at_k"] > 0.1 and rows["x"]["qini_auc"] > 0.1


def test_cli_target_from_a_file(mail_file):
    payload = invoke_json(
        "uplift", "target", "--from", str(mail_file), "--control", "segment=No E-Mail",
        "--target", "visit", "--exclude", "spend", "--learner", "t", "--max-contacts", "50",
    )  # fmt: skip
    assert payload["learner"] == "t" and payload["summary"]["contacts"] == 50
    assert set(payload["summary"]["per_treatment"]) == {"Mens E-Mail", "Womens E-Mail"}
    assert payload["top"][0]["rank"] == 1 and "row" not in payload["top"][0]


def test_cli_bad_input_is_a_clear_error(mail_file, capsys):
    args = ["uplift", "evaluate", "--from", str(mail_file), "--control", "segment=No E-Mail"]
    code = main([*args, "--treatment", "segment=Kids E-Mail", "--target", "visit", "--json"])
    err = json.loads(capsys.readouterr().out)
    assert code == 1 and err["ok"] is False and err["error"] == "DataError"
    assert (
        "--treatment segment=Kids E-Mail: no row of mail.csv.gz has segment = 'Kids E-Mail'; "
        "values: Mens E-Mail, No E-Mail, Womens E-Mail"
    ) in err["message"]
    code = main([*args, "--target", "channel", "--json"])
    err = json.loads(capsys.readouterr().out)
    assert code == 1 and "target 'channel' is neither 0/1 nor a number" in err["message"]
    code = main([*args, "--target", "visits", "--json"])
    err = json.loads(capsys.readouterr().out)
    assert "mail.csv.gz has no column 'visits'; its columns: recency" in err["message"]
    code = main(["uplift", "evaluate", "--from", str(mail_file), "--target", "visit"])
    assert code == 1 and "--from needs --control" in capsys.readouterr().err


# -- Hillstrom (real data) -------------------------------------------------------------------


@pytest.fixture(scope="module")
def hillstrom():
    folder = data_dir_or_skip("hillstrom.csv.gz")
    return folder / "hillstrom.csv.gz"


@pytest.mark.realdata
def test_hillstrom_womens_visit_reaches_the_peers(hillstrom):
    frame, col, treats, ctrl = read_experiment_file(
        hillstrom, ["segment=Womens E-Mail"], "segment=No E-Mail", "visit"
    )
    res = evaluate(
        frame, col, treats, ctrl, "visit", test_size=0.5, seed=42,
        expected_shares={"No E-Mail": 0.5, "Womens E-Mail": 0.5}, where="hillstrom.csv.gz",
    )  # fmt: skip
    s = res.summary
    assert s["features"] == [
        "recency", "history_segment", "history", "mens", "womens", "zip_code", "newbie",
        "channel",
    ]  # fmt: skip
    assert any("left out of the features: conversion, spend" in n for n in res.notes)
    assert (s["train_rows"], s["test_rows"]) == (21346, 21347)
    assert s["observed_uplift_test"]["Womens E-Mail"] == pytest.approx(0.0452, abs=0.001)
    assert s["balance"]["balanced"] and not s["balance"]["srm"]["mismatch"]
    t = res.table.set_index("learner")
    best = t.loc[s["best_learner"]]
    print("\nHillstrom, Womens E-Mail vs No E-Mail, visit, 50/50 split seed 42 (held out):")
    print(res.table[["learner", "uplift_at_k", "qini_auc", "uplift_auc", "best"]].to_string())
    # public peers: uplift@30% 0.058-0.069; Qini AUC 0.015-0.058 (SOURCES.md).
    # measured: S-learner (chosen on the validation part of the training rows) 0.0797,
    # Qini AUC 0.068; T 0.075, X 0.074, class transformation 0.065
    assert best["uplift_at_k"] >= 0.069
    assert best["qini_auc"] > 0.03
    assert (t.uplift_at_k > s["observed_uplift_test"]["Womens E-Mail"]).all()


@pytest.mark.realdata
@pytest.mark.parametrize("target", ["visit", "conversion", "spend"])
def test_hillstrom_both_e_mails_each_outcome(hillstrom, target):
    frame, col, treats, ctrl = read_experiment_file(
        hillstrom, ["segment=Womens E-Mail", "segment=Mens E-Mail"], "segment=No E-Mail", target
    )
    res = evaluate(frame, col, treats, ctrl, target, learners="s", seed=42)
    s = res.summary
    assert s["outcome"] == ("continuous" if target == "spend" else "binary")
    assert s["group_rows"] == {"No E-Mail": 21306, "Womens E-Mail": 21387, "Mens E-Mail": 21307}
    assert len(s["features"]) == 8  # the other two outcomes are left out
    print(f"\nHillstrom, {target}, S-learner, held out:")
    print(res.table[["treatment", "uplift_at_k", "qini_auc", "uplift_auc"]].to_string())
    obs = s["observed_uplift_test"]
    # average effects of the whole file (SOURCES.md), on the held-out half
    known = {"visit": (0.0452, 0.0766, 0.01), "conversion": (0.0031, 0.0068, 0.003)}
    if target in known:
        womens, mens, tol = known[target]
        assert obs["Womens E-Mail"] == pytest.approx(womens, abs=tol)
        assert obs["Mens E-Mail"] == pytest.approx(mens, abs=tol)
    assert res.predictions.shape[0] == s["test_rows"]


def test_cli_file_input_refuses_workspace_options_and_checks_the_plan_first(
    mail_file, capsys, monkeypatch
):
    import mercato.models.uplift as up

    args = ["uplift", "target", "--from", str(mail_file), "--control", "segment=No E-Mail",
            "--target", "visit", "--json"]  # fmt: skip
    # consent applies to the workspace's customers: with a file it would be silently ignored
    code = main([*args, "--purpose", "email"])
    err = json.loads(capsys.readouterr().out)
    assert code == 1 and "--purpose" in err["message"] and "workspace" in err["message"]
    code = main([*args, "--campaign", "CAMP-1"])
    err = json.loads(capsys.readouterr().out)
    assert code == 1 and "--campaign" in err["message"] and "--from" in err["message"]

    def no_fit(*a, **k):
        raise AssertionError("fitted before checking the plan's settings")

    monkeypatch.setattr(up, "fit_best", no_fit)
    code = main([*args, "--objective", "profit"])
    err = json.loads(capsys.readouterr().out)
    assert code == 1 and "unknown objective" in err["message"]
    code = main([*args, "--budget", "-5"])
    assert code == 1 and "budget" in json.loads(capsys.readouterr().out)["message"]
    code = main([*args[:-3], "--target", "spend", "--json"])
    err = json.loads(capsys.readouterr().out)
    assert code == 1 and "cannot count conversions" in err["message"]


def test_cli_contact_purpose_of_a_campaign():
    from mercato.cli.uplift import _contact_purpose

    assert _contact_purpose(None, "email") == ("email", [])
    assert _contact_purpose("sms", "email") == ("sms", [])
    purpose, notes = _contact_purpose(None, "social")
    assert purpose is None and "social" in notes[0] and "--purpose" in notes[0]
    purpose, notes = _contact_purpose(None, None)
    assert purpose is None and "--purpose" in notes[0]
    from mercato.errors import DataError

    with pytest.raises(DataError, match="unknown consent purpose"):
        _contact_purpose("mail", "email")
