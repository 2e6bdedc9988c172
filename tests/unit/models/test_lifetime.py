"""CLV end to end: run_clv on files and on the warehouse (both engines), scores, consent, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mercato.cli.main import main
from mercato.data.ingest import ingest_frame
from mercato.errors import DataError
from mercato.models.lifetime import SCORE_COLUMNS, read_transactions, run_clv, write_scores
from tests_support import data_dir_or_skip

CDNOW_NAMES = "id,cohort,date,cds,value"


def _shop(rng: np.random.Generator, customers: int = 300) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Orders and lines of a small shop in 2024: Poisson buyers who may stop, random baskets."""
    rows = []
    start = pd.Timestamp("2024-01-01")
    for c in range(customers):
        first = int(rng.integers(0, 120))
        rate = rng.gamma(1.0, 1 / 30)  # purchases a day
        life = int(rng.exponential(400))
        day = first
        while day < min(365, first + life):
            rows.append((f"c{c}", start + pd.Timedelta(days=day, hours=int(rng.integers(8, 20)))))
            day += max(1, int(rng.exponential(1 / max(rate, 1e-3))))
    orders = pd.DataFrame(rows, columns=["customer_id", "ts"])
    orders["order_id"] = [f"o{i}" for i in range(len(orders))]
    orders["status"] = "completed"
    lines = pd.DataFrame(
        {
            "order_id": orders["order_id"],
            "line_no": 1,
            "product_id": "p1",
            "quantity": 1,
            "unit_price": np.round(rng.gamma(4.0, 10.0, len(orders)), 2),
        }
    )
    return orders, lines


def _load(wh, orders, lines):
    ingest_frame(wh, "orders", orders)
    ingest_frame(wh, "order_lines", lines)


def test_warehouse_run_scores_and_writes(warehouse, rng):
    orders, lines = _shop(rng)
    _load(warehouse, orders, lines)
    run = run_clv(warehouse, calibration_end="2024-09-30")
    s = run.summary
    last = orders["ts"].max().normalize()
    assert s["holdout_days"] == (last - pd.Timestamp("2024-09-30")).days
    assert run.holdout is not None and run.tracking is not None
    assert s["customers"] == orders["customer_id"].nunique()
    assert set(s["parameters"]) == {"r", "alpha", "a", "b"}
    for p in s["parameters"].values():  # every parameter has an interval around it
        assert p["se"] > 0 and p["lower_95"] < p["value"] < p["upper_95"]
    scores = run.scores
    assert list(scores.columns) == list(SCORE_COLUMNS)
    assert scores["p_alive"].between(0, 1).all()
    assert (scores["expected_purchases"] >= 0).all() and (scores["clv"] >= 0).all()
    # a customer who buys more often is worth more, other things equal
    assert scores["clv"].corr(scores["frequency"], method="spearman") > 0.5
    assert -1 <= s["holdout"]["correlation"] <= 1
    n = write_scores(warehouse, run, model_ref="clv@v1")
    back = warehouse.table("customer_clv").execute()
    assert n == len(back) == len(scores)
    assert set(back["model"]) == {"clv@v1"} and set(back["horizon_months"]) == {12}
    merged = back.set_index("customer_id")["clv"].sort_index()
    expected = scores.set_index("customer_id")["clv"].sort_index()
    np.testing.assert_allclose(merged.to_numpy(), expected.to_numpy(), rtol=1e-9)


def test_objection_to_profiling_is_respected(warehouse, rng):
    orders, lines = _shop(rng, 120)
    _load(warehouse, orders, lines)
    who = orders["customer_id"].iloc[0]
    ingest_frame(
        warehouse,
        "consents",
        pd.DataFrame(
            {
                "customer_id": [who, who],
                "purpose": ["profiling", "profiling"],
                "granted": [True, False],
                "ts": ["2024-01-01", "2024-03-01"],
            }
        ),
    )
    run = run_clv(warehouse)
    assert who not in set(run.scores["customer_id"])
    assert any("1 customers who objected to profiling" in n for n in run.notes)


def test_bad_input_has_clear_messages(rng):
    tx = pd.DataFrame(
        {"customer": ["a", "b", "c"], "date": ["2024-01-01", "2024-02-01", "2024-03-01"]}
    )
    with pytest.raises(DataError, match="bought only once") as e:
        run_clv(tx, value_col=None)
    assert "frequency" in str(e.value)
    with pytest.raises(DataError, match="horizon") as e:
        run_clv(tx, horizon_months=0)
    assert "horizon_months" in str(e.value)
    with pytest.raises(DataError, match="unknown CLV model"):
        run_clv(tx, model="magic")
    with pytest.raises(DataError, match="after the last day"):
        run_clv(tx, calibration_end="2030-01-01")
    with pytest.raises(DataError, match="cannot be read") as e:
        run_clv(tx.assign(date=["2024-01-01", "soon", "2024-03-01"]))
    assert "row 2" in str(e.value) and "soon" in str(e.value)


def test_non_positive_spend_falls_back_to_the_population_mean(rng):
    orders, lines = _shop(rng, 200)
    tx = orders.merge(lines, on="order_id")[["customer_id", "ts", "unit_price"]]
    tx.columns = ["customer", "date", "value"]
    repeat = tx["customer"].value_counts()
    who = repeat[repeat > 2].index[0]
    tx.loc[tx["customer"] == who, "value"] = 0.0  # free orders only
    run = run_clv(tx)
    assert any("mean repeat spend of 0 or less" in n for n in run.notes)
    row = run.scores.set_index("customer_id").loc[who]
    assert row["expected_spend"] == pytest.approx(run.summary["population_mean_spend"])
    assert row["clv"] > 0


def test_too_few_spenders_gives_purchases_only():
    tx = pd.DataFrame(
        {
            "customer": ["a", "a", "b", "b", "c"],
            "date": ["2024-01-01", "2024-02-01", "2024-01-05", "2024-03-01", "2024-01-09"],
            "value": [5.0, 6.0, 7.0, 8.0, 9.0],
        }
    )
    run = run_clv(tx)
    assert run.spend_model is None and run.scores["clv"].isna().all()
    assert any("no spend model" in n for n in run.notes)
    assert "clv_total" not in run.summary


def test_read_transactions_names_the_columns(tmp_path):
    f = tmp_path / "tx.csv"
    f.write_text("cust;day;amount\na;2024-01-01;3.5\n")
    with pytest.raises(DataError) as e:
        read_transactions(f, customer="customer", date="day")
    msg = str(e.value)
    assert "tx.csv" in msg and "customer" in msg and "cust, day, amount" in msg
    g = tmp_path / "bad.csv"
    g.write_text("c,d,v\na,2024-01-01,3.5\nb,2024-01-02,lots\n")
    with pytest.raises(DataError) as e:
        read_transactions(g, customer="c", date="d", value="v")
    assert "row 2" in str(e.value) and "lots" in str(e.value)
    out = read_transactions(f, customer="cust", date="day", value="amount")
    assert out.to_dict("records") == [{"customer": "a", "date": "2024-01-01", "value": 3.5}]


@pytest.mark.realdata
def test_cdnow_from_the_cli(capsys, tmp_path):
    folder = data_dir_or_skip("cdnow_sample.txt")
    out_csv = tmp_path / "scores.csv"
    code = main(
        [
            "clv",
            "run",
            "--from",
            str(folder / "cdnow_sample.txt"),
            "--names",
            CDNOW_NAMES,
            "--customer",
            "id",
            "--value",
            "value",
            "--date-format",
            "%Y%m%d",
            "--calibration-end",
            "1997-09-30",
            "--output",
            str(out_csv),
            "--json",
        ]
    )
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    s = payload["summary"]
    cal = s["calibration_parameters"]  # the paper's numbers (Fader, Hardie & Lee 2005)
    assert {k: round(v, 3) for k, v in cal.items()} == {
        "r": 0.243,
        "alpha": 4.414,
        "a": 0.793,
        "b": 2.426,
    }
    assert round(s["calibration_log_likelihood"], 1) == -9582.4
    assert round(s["holdout"]["correlation"], 3) >= 0.626
    assert s["customers"] == 2357 and s["holdout_days"] == 273
    assert len(payload["holdout"]["rows"]) == 8 and payload["tracking"]
    scores = pd.read_csv(out_csv)
    assert len(scores) == 2357 and list(scores.columns) == list(SCORE_COLUMNS)


def test_workspace_cli_saves_models_and_scores(capsys, workspace, rng):
    orders, lines = _shop(rng, 150)
    with workspace.warehouse() as wh:
        _load(wh, orders, lines)
    ws = str(workspace.path)
    assert main(["clv", "run", "-w", ws, "--calibration-end", "2024-10-31", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["saved"]["model"] == "clv@v1" and payload["saved"]["spend_model"]
    assert main(["models", "list", "-w", ws, "--json"]) == 0
    models = json.loads(capsys.readouterr().out)["models"]
    assert {m["name"]: m["kind"] for m in models} == {"clv": "clv", "clv-spend": "clv-spend"}
    clv = next(m for m in models if m["name"] == "clv")
    assert clv["customers"] == payload["summary"]["customers"]
    assert clv["data_window"]["calibration_end"] == "2024-10-31"
    assert "holdout_correlation" in clv["metrics"]
    assert main(["models", "show", "clv", "-w", ws, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["versions"] == [1]
    # the report shows the saved evaluation (no refit): parameters, holdout, two charts
    from mercato.report.build import build_report

    html = build_report(workspace).read_text()
    section = html.split('id="clv"')[1].split("</section>")[0]
    assert "Customer lifetime value" in section and section.count("<svg") == 2
    assert "Holdout: mean repeat purchases" in section and "customer_clv" in section
    assert "<script" not in html
    # a horizon of zero is a client mistake: exit 1 with the parameter named, no traceback
    code = main(["clv", "run", "-w", ws, "--horizon", "0", "--json"])
    err = capsys.readouterr()
    assert code == 1 and "horizon_months" in err.out + err.err and "Traceback" not in err.err
