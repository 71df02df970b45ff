"""The shared trainer drives every registered model: train, resume after a crash, rebuild from a run dir."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from train_helpers import make_physical_jets

import lgae.data
from lgae.models import available_models
from lgae.train import load_run, train

MODELS = [m for m in available_models() if not m.startswith("test-")]


@pytest.fixture
def physical_data(monkeypatch):
    def build_datasets(data, seed):
        n = data["n_particles"]
        train, val = make_physical_jets(64, n, seed), make_physical_jets(32, n, seed + 1000)
        return lgae.data.DataBundle(train=train, val=val, info={"input_kind": "jets"})

    monkeypatch.setattr(lgae.data, "build_datasets", build_datasets)


#: smaller than the defaults where a model's default size would dominate the test time
SMALL = {"cnnae": {"channels": 8}}


def config(tmp_path, model, **trainer):
    return {
        "data": {"train": "fake.root", "n_particles": 8},
        "model": {"name": model, **SMALL.get(model, {})},
        "trainer": {
            "epochs": 2,
            "batch_size": 32,
            "progress": False,
            "num_threads": 1,
            "out": str(tmp_path / "run"),
            **trainer,
        },
    }


@pytest.mark.parametrize("model", MODELS)
def test_every_model_trains_and_rebuilds(tmp_path, physical_data, model):
    run_dir = train(config(tmp_path, model))
    run = json.loads((run_dir / "run.json").read_text())
    assert run["epochs_completed"] == 2 and run["best_val_loss"] is not None
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["model"]["name"] == model
    ref, _ = load_run(run_dir, "last")
    again, _ = load_run(run_dir, "last")
    p4, mask = make_physical_jets(16, 8, seed=5)
    with torch.no_grad():
        assert torch.equal(ref.anomaly_score(p4, mask), again.anomaly_score(p4, mask))
    if model == "lgae":
        assert run["dtype"] == "float64"  # trainer.dtype=auto keeps the LGAE's own precision


def test_real_model_kill_and_resume(tmp_path, physical_data):
    """The VAE samples its latent in training: resuming must restore the RNG state exactly."""
    model = "vae" if "vae" in MODELS else MODELS[0]
    ref = load_run(train(config(tmp_path / "a", model, epochs=4)), "last")[0]

    def crash(epoch, trainer):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config(tmp_path / "b", model, epochs=4), callbacks=[crash])
    resumed = load_run(train(config(tmp_path / "b", model, epochs=4)), "last")[0]
    for (k, a), b in zip(ref.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_toy_features_through_the_real_data_layer(tmp_path):
    """data.toy -> lgae.data.build_datasets -> a feature model (input_kind, n_features from the data)."""
    if "vae" not in MODELS:
        pytest.skip("the VAE is not registered")
    cfg = {
        "data": {"toy": {"name": "circle", "n": 400}},
        "model": {"name": "vae", "latent_dim": 2, "hidden": [16]},
        "trainer": {
            "epochs": 3,
            "batch_size": 64,
            "progress": False,
            "num_threads": 1,
            "out": str(tmp_path / "toy"),
        },
    }
    run_dir = train(cfg)
    model, saved = load_run(run_dir)
    assert saved["model"]["input_kind"] == "features" and saved["model"]["n_features"] == 2
    assert model.input_kind == "features"
