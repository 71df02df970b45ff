"""Fixtures for the evaluator tests: synthetic jets, tiny registered models of different kinds, run dirs.

The models are deliberately unlike each other (one reconstructs 4-momenta and has a Gaussian latent with
several scores, the other has no ``out.p4`` and a plain latent) so that the tests catch any special-casing in
the evaluator.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from torch import nn

import lgae.data
from lgae.models import JetAutoencoder, ModelOutput, registry

RECON_MODEL = "test-eval-recon"
IMAGE_MODEL = "test-eval-noprecon"
VECTOR_MODEL = "test-eval-vectors"
MASSES = {"qcd": 50.0, "top": 175.0, "w": 80.0, "z": 91.0}


def make_jets(n: int, kind: str, seed: int = 0, n_particles: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Toy ~1 TeV jets whose angular spread (hence mass) depends on the class."""
    rng = np.random.default_rng(seed)
    npart = rng.integers(4, n_particles + 1, n)
    mask = np.arange(n_particles)[None] < npart[:, None]
    pt = rng.exponential(1.0, (n, n_particles)) * mask
    pt = -np.sort(-pt, axis=1)
    pt = pt / pt.sum(1, keepdims=True) * 1000.0
    spread = np.abs(MASSES[kind] + rng.normal(0, 15, (n, 1))) / 1000.0
    eta = rng.normal(0, 1, (n, n_particles)) * spread
    phi = rng.normal(0, 1, (n, n_particles)) * spread
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    e = np.sqrt(px**2 + py**2 + pz**2)
    p4 = np.stack([e, px, py, pz], -1) * mask[..., None]
    return p4, mask


def _jet_mass(p4, mask):
    j = (p4 * mask[..., None]).sum(-2)
    return (j[..., 0] ** 2 - (j[..., 1:] ** 2).sum(-1)).clamp_min(0).sqrt()


class ReconModel(JetAutoencoder):
    """Reconstructs 4-momenta (scaled), Gaussian latent; default score = jet mass / 100, plus alternatives."""

    name = RECON_MODEL
    input_kind = "jets"

    def __init__(self, n_particles: int = 12, scale: float = 0.95):
        super().__init__()
        self.n_particles = n_particles
        self.scale = nn.Parameter(torch.tensor(float(scale)))
        self.lin = nn.Linear(4, 3)

    def forward(self, p4, mask=None):
        p4 = self._cast(p4)
        jet = (p4 * mask[..., None]).sum(1) / 1000.0
        mu = self.lin(jet)
        return ModelOutput(p4=p4 * self.scale, latent={"mu": mu, "logvar": torch.full_like(mu, -1.0)})

    def loss_per_jet(self, p4, mask=None, out=None):
        return _jet_mass(self._cast(p4), mask) / 100.0

    def scores(self, p4, mask=None):
        d = self.loss_per_jet(p4, mask)
        return {"default": d, "inverted": -d, "multiplicity": mask.sum(1).to(d.dtype)}

    def latent_dim(self):
        return 3

    def input_dim(self):
        return 4 * self.n_particles


class NoReconModel(JetAutoencoder):
    """No 4-momentum output (like an image model); a single, weak score."""

    name = IMAGE_MODEL
    input_kind = "jets"

    def __init__(self, n_particles: int = 12, width: int = 5):
        super().__init__()
        self.enc = nn.Linear(4 * n_particles, width)

    def forward(self, p4, mask=None):
        z = self.enc(self._cast(p4).flatten(1) / 1000.0)
        return ModelOutput(p4=None, latent={"z": z}, recon=z, target=z)

    def loss_per_jet(self, p4, mask=None, out=None):
        p4 = self._cast(p4)
        return p4[:, 0, 0] / 1000.0 + 0.01 * self(p4, mask).latent["z"].pow(2).sum(-1)

    def latent_dim(self):
        return self.enc.out_features


class VectorModel(ReconModel):
    """LGAE-like latent: 'scalars' (B, 1) and 'vectors' (B, tau, 4) 4-vectors (the leading particles)."""

    name = VECTOR_MODEL

    def __init__(self, n_particles: int = 12, tau: int = 2):
        super().__init__(n_particles)
        self.tau = tau

    def forward(self, p4, mask=None):
        p4 = self._cast(p4)
        v = (p4 * mask[..., None])[:, : self.tau] * self.scale / 1000.0
        s = v[..., 0].sum(-1, keepdim=True)
        return ModelOutput(p4=p4 * self.scale, latent={"scalars": s, "vectors": v})

    def latent_dim(self):
        return 1 + 4 * self.tau


#: registered only while a tests/eval test runs (autouse fixture below), so that other test directories
#: looping over the registry never meet them
TEST_MODELS = {RECON_MODEL: ReconModel, IMAGE_MODEL: NoReconModel, VECTOR_MODEL: VectorModel}


@pytest.fixture(autouse=True)
def one_thread():
    """The machine's cores are shared: one torch thread per test."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def test_models(monkeypatch):
    """Register the tiny test models for the duration of each test."""
    for name, cls in TEST_MODELS.items():
        monkeypatch.setitem(registry._REGISTRY, name, cls)


def make_run_dir(
    path: Path,
    model_name: str,
    name: str | None = None,
    seed: int = 0,
    task: str | None = None,
    n_particles: int = 12,
) -> Path:
    """A run directory as ``lgae train`` leaves it (config.yaml, checkpoints/best.pt, run.json), untrained."""
    from lgae.models import build_model

    path = Path(path)
    (path / "checkpoints").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = build_model(model_name, n_particles=n_particles)
    cfg = {
        "name": name or model_name,
        "data": {"train": "unused.root", "n_particles": n_particles},
        "model": {"name": model_name, "n_particles": n_particles},
        "trainer": {"seed": seed, "dtype": "float32", "out": str(path)},
    }
    if task:
        cfg["evaluate"] = {"task": task}
    (path / "config.yaml").write_text(yaml.safe_dump(cfg))
    torch.save({"format": 1, "model": model.state_dict(), "epoch": 1}, path / "checkpoints" / "best.pt")
    run = {
        "n_params": model.n_params,
        "seed": seed,
        "total_train_time_s": 12.5,
        "mean_train_jets_per_s": 1000.0,
        "epochs_completed": 2,
    }
    (path / "run.json").write_text(json.dumps(run))
    return path


def write_sample(path: Path, kind: str, n: int, seed: int) -> Path:
    p4, mask = make_jets(n, kind, seed)
    np.savez(
        path, p4=p4, mask=mask, sdmass=np.full(n, MASSES[kind]) + np.random.default_rng(seed).normal(0, 5, n)
    )
    return path


@pytest.fixture
def samples(tmp_path):
    """npz "jet files" for qcd (background) and top / w (signals)."""
    d = tmp_path / "data"
    d.mkdir()
    return {
        "qcd": write_sample(d / "qcd_test.npz", "qcd", 600, 1),
        "top": write_sample(d / "top_test.npz", "top", 300, 2),
        "w": write_sample(d / "w_test.npz", "w", 300, 3),
    }


@pytest.fixture
def fake_prepare_jets(monkeypatch):
    """``lgae.data.prepare_jets`` reading the npz files of :func:`write_sample`; records its calls."""
    calls = []

    def prepare_jets(path, data_config, max_jets=None):
        calls.append((str(path), dict(data_config)))
        z = np.load(path)
        n = int(data_config.get("n_particles", z["p4"].shape[1]))
        return SimpleNamespace(
            p4=z["p4"][:, :n], mask=z["mask"][:, :n], label=None, jet={"jet_sdmass": z["sdmass"]}
        )

    monkeypatch.setattr(lgae.data, "prepare_jets", prepare_jets, raising=False)
    return calls


def eval_main(argv) -> int:
    """``lgae <argv>`` with only the evaluator's subcommands registered (independent of other CLI modules)."""
    import argparse

    from lgae.eval import cli

    parser = argparse.ArgumentParser(prog="lgae")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)
