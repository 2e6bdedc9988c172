"""Propensity from the workspace: train on stacked cutoffs, measure on the latest, save, score."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mercato.cli.main import main
from mercato.data.ingest import ingest_folder
from mercato.data.synth import generate_shop
from mercato.errors import DataError
from mercato.models import propensity_flow as pf
from mercato.models.registry import ModelRegistry
from mercato.workspace import Workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    root = tmp_path_factory.mktemp("flow")
    generate_shop(root / "shop", customers=1500, days=150, seed=3)
    w = Workspace.init(root / "ws")
    with w.warehouse() as wh:
        ingest_folder(wh, root / "shop")
    return w


def test_train_measures_on_the_latest_cutoff_then_scores_with_reasons(ws):
    with ws.warehouse() as wh:
        cuts = pf.default_cutoffs(wh, 30)
        assert len(cuts) == 3 and cuts == sorted(cuts)
        run = pf.train(wh, horizon_days=30, time_budget=5)
        s = run.summary()
        assert s["cutoffs"] == cuts and s["holdout"]["cutoff"] == cuts[-1]
        assert s["holdout"]["trained_on"] == cuts[:2]
        # behaviour predicts purchases on the synthetic shop: clearly better than chance
        assert s["holdout"]["metrics"]["roc_auc"] > 0.7
        ref = pf.save(ws, run)
        assert ref == "propensity-purchase-30d@v1"
        reg = ModelRegistry(ws)
        assert reg.get("propensity-purchase-30d").kind == "propensity"
        assert reg.document("propensity-purchase-30d", "features.json")["windows"]
        scores, summary = pf.score(ws, wh, name="propensity-purchase-30d", top=2)
        assert summary["customers"] == len(scores) > 1000
        assert scores["score"].between(0, 1).all()
        assert {"reason_1", "contribution_1", "reason_2", "contribution_2"} <= set(scores.columns)
        assert (scores["contribution_1"].abs() >= scores["contribution_2"].abs()).all()
        back = wh.table("customer_propensity").execute()
        assert len(back) == len(scores) and set(back["model"]) == {ref}
        np.testing.assert_allclose(
            back.set_index("customer_id")["score"].sort_index(),
            scores.set_index("customer_id")["score"].sort_index(),
        )


def test_bad_input(ws):
    with ws.warehouse() as wh:
        with pytest.raises(DataError, match="unknown label"):
            pf.train(wh, label="love")
        with pytest.raises(DataError, match="horizon"):
            pf.train(wh, horizon_days=0)
        with pytest.raises(DataError, match="at least two cutoffs"):
            pf.train(wh, cutoffs=["2025-03-01"])


def test_cli_train_and_score(ws, capsys, tmp_path):
    w = str(ws.path)
    args = ["--horizon", "30", "--time-budget", "5", "--name", "p30", "--json"]
    code = main(["predict", "train", "-w", w, *args])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "p30@v1" and out["holdout"]["metrics"]["roc_auc"] > 0.7
    csv = tmp_path / "scores.csv"
    code = main(["predict", "score", "-w", w, "--name", "p30", "--output", str(csv), "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["table"] == "customer_propensity" and csv.exists() and len(out["top"]) == 5
    code = main(["predict", "score", "-w", w, "--name", "nope"])
    assert code == 1 and "no model named 'nope'" in capsys.readouterr().err
