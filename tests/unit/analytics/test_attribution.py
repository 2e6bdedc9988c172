"""Attribution: the published reference numbers, exactly, and the warehouse path builder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mercato.analytics.attribution import (
    Paths,
    attribute,
    heuristics,
    markov,
    paths_from_warehouse,
    read_journeys_json,
    read_paths_file,
    shapley_simplified,
)
from mercato.data.ingest import ingest_frame
from mercato.errors import DataError
from tests_support import data_dir_or_skip

REFERENCE_MARKOV = {
    "alpha": 5344.95,
    "iota": 3884.61,
    "eta": 3340.85,
    "beta": 2527.35,
    "theta": 1971.91,
    "lambda": 1282.85,
    "epsilon": 599.57,
}


@pytest.mark.realdata
def test_channelattribution_reference_numbers():
    p = read_paths_file(data_dir_or_skip("attribution_paths.csv") / "attribution_paths.csv")
    r = attribute(p)
    t = r.table.set_index("channel")
    for ch, expected in REFERENCE_MARKOV.items():
        assert t.loc[ch, "markov"] == pytest.approx(expected, rel=5e-3)
        assert round(t.loc[ch, "markov"], 2) == expected  # exact to the cent, in fact
    assert t.loc["alpha", "first_touch"] == 6308
    assert t.loc["alpha", "last_touch"] == 8447
    assert round(t.loc["alpha", "linear"], 2) == 7574.72
    assert r.summary["conversion_probability"] == pytest.approx(0.22385, abs=5e-6)
    for model in (
        "first_touch",
        "last_touch",
        "linear",
        "position_based",
        "time_decay",
        "markov",
        "shapley",
    ):
        assert t[model].sum() == pytest.approx(19785)


@pytest.mark.realdata
def test_shapley_reference_numbers():
    j = read_journeys_json(
        data_dir_or_skip("attribution_journeys.json") / "attribution_journeys.json"
    )
    s = shapley_simplified(j)["shapley"]
    assert s.sum() == pytest.approx(2392)
    expected = {
        "20": 489.91,
        "4": 248.21,
        "10": 209.82,
        "13": 201.28,
        "9": 189.29,
        "16": 154.71,
        "3": 118.34,
    }
    for ch, v in expected.items():
        assert round(s[ch], 2) == v


def test_markov_by_hand():
    # start->a (2), a->b (1), a->null (1), b->conv (1) ; start->b (1), b->conv
    p = Paths.from_lists([["a", "b"], ["a"], ["b"]], [1, 0, 1], nulls=[0, 1, 0])
    r = markov(p)
    # P(conv) = 2/3 * (1/2 * 1) + 1/3 * 1 = 2/3
    assert r.conversion_probability == pytest.approx(2 / 3)
    # without a: only start->b path converts: 1/3 -> effect 1/2; without b: 0 -> effect 1
    assert r.removal_effects == pytest.approx({"a": 0.5, "b": 1.0})


def test_higher_order_states_and_loops():
    p = Paths.from_lists([["a", "a", "b"], ["b", "a"], ["a"]], [3, 1, 0], nulls=[1, 2, 5])
    r1, r2 = markov(p, order=1), markov(p, order=2)
    assert r2.states > r1.states
    for r in (r1, r2):
        assert 0 < r.conversion_probability < 1
        assert all(0 <= v <= 1 for v in r.removal_effects.values())


def test_heuristics_position_based_and_decay():
    p = Paths.from_lists([["a", "b", "c", "d"], ["x"], ["y", "z"]], [10, 1, 2])
    h = heuristics(p, half_life=1.0)
    assert h.loc["a", "position_based"] == pytest.approx(4.0)
    assert h.loc["b", "position_based"] == pytest.approx(1.0)
    assert h.loc["x", "position_based"] == 1.0 and h.loc["y", "position_based"] == 1.0
    # decay with half-life 1 touch: weights 1/8, 1/4, 1/2, 1 of 15/8
    assert h.loc["d", "time_decay"] == pytest.approx(10 * 8 / 15)


def test_bad_path_files(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text("path;total_conversions\na > ;1\n")
    with pytest.raises(DataError, match="empty channel"):
        read_paths_file(f)
    f.write_text("path;total_conversions\na > b;-1\n")
    with pytest.raises(DataError) as err:
        read_paths_file(f)
    assert err.value.line == 2 and err.value.column == "total_conversions"
    f.write_text("route;conv\na;1\n")
    with pytest.raises(DataError, match="missing column 'path'"):
        read_paths_file(f)
    f.write_text("path;total_conversions;total_null\na;0;4\n")
    with pytest.raises(DataError, match="no conversions"):
        attribute(read_paths_file(f))
    f.write_text("path;total_conversions\na > zz;1\n")
    with pytest.raises(DataError, match="not known: zz"):
        attribute(read_paths_file(f), known_channels=["a", "b"])
    g = tmp_path / "j.json"
    g.write_text(json.dumps({"not": "a list"}))
    with pytest.raises(DataError, match="JSON list"):
        read_journeys_json(g)


def test_paths_from_warehouse(warehouse):
    ts = pd.Timestamp("2024-01-01")
    touch = pd.DataFrame(
        {
            "touchpoint_id": [f"T{i}" for i in range(6)],
            "customer_id": ["c1", "c1", "c1", "c2", "c2", None],
            "ts": [
                ts,
                ts + pd.Timedelta(days=1),
                ts + pd.Timedelta(days=10),
                ts,
                ts + pd.Timedelta(days=40),
                ts,
            ],
            "channel": ["email", "ads", "seo", "ads", "email", "social"],
            "anonymous_id": [None, None, None, None, None, "A1"],
        }
    )
    orders = pd.DataFrame(
        {
            "order_id": ["O1", "O2"],
            "customer_id": ["c1", "c2"],
            "ts": [ts + pd.Timedelta(days=2), ts + pd.Timedelta(days=41)],
            "status": "completed",
        }
    )
    lines = pd.DataFrame(
        {
            "order_id": ["O1", "O2"],
            "line_no": 1,
            "product_id": "p",
            "quantity": 1,
            "unit_price": [10.0, 20.0],
        }
    )
    ingest_frame(warehouse, "touchpoints", touch)
    ingest_frame(warehouse, "orders", orders)
    ingest_frame(warehouse, "order_lines", lines)
    paths, decay, notes = paths_from_warehouse(warehouse, lookback_days=30)
    got = {
        " > ".join(
            paths.channels[c] for c in paths.flat[paths.offsets[i] : paths.offsets[i + 1]]
        ): (paths.conversions[i], paths.value[i], paths.nulls[i])
        for i in range(paths.n_paths)
    }
    # c1: email, ads -> O1 (10.0); seo after -> null; c2: ads is 41 days old -> dropped,
    # email -> O2 (20.0); the anonymous social touch is left out
    assert got == {"email > ads": (1, 10.0, 0), "seo": (0, 0.0, 1), "email": (1, 20.0, 0)}
    assert any("without a customer id" in n for n in notes)
    assert any("lookback" in n for n in notes)
    assert sum(decay.values()) == pytest.approx(2.0)
    w_ads, w_email = 0.5 ** (1 / 7), 0.5 ** (2 / 7)  # 1 and 2 days before O1, half-life 7
    assert decay["ads"] == pytest.approx(w_ads / (w_ads + w_email))
    assert decay["email"] == pytest.approx(1 + w_email / (w_ads + w_email))
    r = attribute(paths, time_decay=decay)
    assert np.isclose(r.table.markov.sum(), 2.0)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_attribution_against_the_synthetic_truth(tmp_path, seed):
    from mercato.analytics.attribution import compare_with_truth
    from mercato.data.ingest import ingest_folder
    from mercato.data.synth import generate_shop
    from mercato.data.warehouse import Warehouse

    generate_shop(tmp_path, customers=3000, days=365, seed=seed)
    wh = Warehouse("duckdb://:memory:")
    wh.ensure_tables()
    ingest_folder(wh, tmp_path)
    paths, decay, notes = paths_from_warehouse(wh)
    cmp = compare_with_truth(attribute(paths, time_decay=decay, notes=notes), tmp_path / "truth")
    # the ranking follows the true incremental effects closely...
    assert cmp["spearman_markov"] >= 0.9
    # ...and where it does not, the comparison names the channels and says why
    if not cmp["agree"]:
        assert all(ch in cmp["explanation"] for ch in cmp["disagreeing_channels"])
        assert "baseline purchases" in cmp["explanation"]
    assert 0 < cmp["truly_caused_share"] < 1
