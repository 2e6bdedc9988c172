"""The model registry: versions, integrity, customers trained on, no pickle."""

from __future__ import annotations

import json
import stat

import numpy as np
import pytest

from mercato.errors import DataError, MercatoError
from mercato.models.clv import BetaGeoFitter, GammaGammaFitter
from mercato.models.registry import ModelRegistry


@pytest.fixture
def spend_model() -> GammaGammaFitter:
    return GammaGammaFitter().fit([1, 2, 3, 1, 4, 2], [10.0, 12.0, 9.0, 30.0, 11.0, 14.0])


def test_save_load_versions(tmp_path, spend_model):
    reg = ModelRegistry(tmp_path)
    v1 = reg.save(
        spend_model,
        name="spend",
        kind="clv-spend",
        metrics={"ll": 1.5},
        data_window={"start": "2024-01-01", "end": "2024-06-30"},
        customers=[f"c{i}" for i in range(6)],
    )
    v2 = reg.save(spend_model, name="spend", kind="clv-spend")
    assert (v1.version, v2.version) == (1, 2)
    assert [v.version for v in reg.versions("spend")] == [1, 2]
    assert reg.names() == ["spend"]
    assert reg.get("spend").version == 2
    loaded = reg.load("spend", 1)
    assert isinstance(loaded, GammaGammaFitter)
    assert loaded.params_ == spend_model.params_
    m = reg.get("spend", 1).manifest
    assert m["kind"] == "clv-spend" and m["customers"] == 6 and m["metrics"] == {"ll": 1.5}
    assert m["data_window"]["end"] == "2024-06-30"
    # files are the owner's only, and the registry holds no pickle
    for f in v1.path.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert sorted(p.name for p in v1.path.iterdir()) == [
        "customers.npy",
        "manifest.json",
        "model.json",
    ]
    np.load(v1.path / "customers.npy", allow_pickle=False)
    assert "salt" not in v1.to_dict()


def test_trained_on_and_models_trained_on(tmp_path, spend_model):
    reg = ModelRegistry(tmp_path)
    reg.save(spend_model, name="a", kind="clv-spend", customers=["x", "y"])
    reg.save(spend_model, name="b", kind="clv-spend", customers=["y", "z"])
    reg.save(spend_model, name="c", kind="clv-spend")  # did not record customers
    assert reg.trained_on("a", "x") and not reg.trained_on("a", "z")
    assert [(v.name, v.version) for v in reg.models_trained_on("y")] == [("a", 1), ("b", 1)]
    assert reg.models_trained_on("nobody") == []
    with pytest.raises(MercatoError, match="did not record its customers"):
        reg.trained_on("c", "x")
    # the ids themselves are not stored: only keyed 64-bit hashes
    stored = np.load(reg.get("a").path / "customers.npy", allow_pickle=False)
    assert stored.dtype == np.uint64 and len(stored) == 2


def test_tampered_model_is_refused(tmp_path, spend_model):
    reg = ModelRegistry(tmp_path)
    v = reg.save(spend_model, name="spend", kind="clv-spend")
    path = v.path / "model.json"
    data = json.loads(path.read_text())
    data["params"]["p"] = 99.0
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="does not match its manifest"):
        reg.load("spend")


def test_bad_names_and_missing_models(tmp_path, spend_model):
    reg = ModelRegistry(tmp_path)
    with pytest.raises(DataError, match="invalid model name"):
        reg.save(spend_model, name="../evil", kind="x")
    with pytest.raises(MercatoError, match="no model named 'nope'"):
        reg.load("nope")
    reg.save(spend_model, name="spend", kind="clv-spend")
    with pytest.raises(MercatoError, match="has no version 7"):
        reg.get("spend", 7)
    assert reg.delete("spend") == [1]
    assert reg.names() == []


def test_unknown_format_is_refused(tmp_path):
    class Odd:
        def to_dict(self) -> dict[str, str]:
            return {"format": "somebody.else/1"}

    with pytest.raises(DataError, match="cannot load models of format"):
        ModelRegistry(tmp_path).save(Odd(), name="odd", kind="x")
    assert not (tmp_path / "odd").exists()  # nothing written for a model it cannot load


def test_transaction_model_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.poisson(2, 300).astype(float)
    T = rng.uniform(20, 40, 300)
    tx = np.where(x > 0, T * rng.uniform(0.2, 1, 300), 0.0)
    m = BetaGeoFitter().fit(x, tx, T)
    reg = ModelRegistry(tmp_path)
    reg.save(m, name="bgnbd", kind="clv")
    again = reg.load("bgnbd")
    assert (
        again.predict(10, x[:5], tx[:5], T[:5]).tolist()
        == m.predict(10, x[:5], tx[:5], T[:5]).tolist()
    )
