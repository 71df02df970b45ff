"""Tiny registered test models and synthetic data for the trainer tests (no ROOT files, no data layer)."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

from lgae.models import JetAutoencoder, ModelOutput
from lgae.nn.losses import masked_mse

JET_MODEL = "test-mlp-ae"
FEATURE_MODEL = "test-feature-ae"


class TinyJetAE(JetAutoencoder):
    """MLP autoencoder on flat ``(B, N*4)`` 4-momenta; optional dropout, latent noise and host-RNG jitter.

    ``host_rng`` draws from NumPy's and Python's global generators in every training step, so a resumed run
    only matches an uninterrupted one if those states are restored too.
    """

    name = JET_MODEL
    input_kind = "jets"

    def __init__(
        self,
        n_particles: int = 4,
        tau: int = 3,
        hidden: int = 16,
        dropout: float = 0.0,
        noise: float = 0.0,
        host_rng: bool = False,
    ):
        super().__init__()
        d = 4 * n_particles
        self.n_particles, self.tau, self.noise, self.host_rng = n_particles, tau, noise, host_rng
        self.enc = nn.Sequential(nn.Linear(d, hidden), nn.Tanh(), nn.Dropout(dropout), nn.Linear(hidden, tau))
        self.dec = nn.Sequential(nn.Linear(tau, hidden), nn.Tanh(), nn.Linear(hidden, d))

    def forward(self, p4, mask=None):
        p4 = self._cast(p4)
        z = self.enc(p4.flatten(1))
        if self.training and self.noise:
            z = z + self.noise * torch.randn_like(z)
        rec = self.dec(z).view_as(p4)
        if mask is not None:
            rec = rec * mask[..., None].to(rec.dtype)
        return ModelOutput(p4=rec, latent={"z": z}, recon=rec, target=p4)

    def loss_per_jet(self, p4, mask=None, out=None):
        out = out if out is not None else self(p4, mask)
        loss = masked_mse(out.p4, self._cast(p4), mask)
        if self.training and self.host_rng:
            loss = loss * (1.0 + 1e-3 * float(np.random.rand()) + 1e-3 * random.random())
        return loss

    def latent_dim(self):
        return self.tau

    def input_dim(self):
        return 4 * self.n_particles


class TinyFeatureAE(JetAutoencoder):
    """Linear autoencoder on flat features ``x (B, n_features)`` (the toy-data path)."""

    name = FEATURE_MODEL
    input_kind = "features"

    def __init__(self, n_features: int = 2, tau: int = 1):
        super().__init__()
        self.n_features = n_features
        self.enc, self.dec = nn.Linear(n_features, tau), nn.Linear(tau, n_features)

    def forward(self, x, mask=None):
        z = self.enc(self._cast(x))
        return ModelOutput(p4=None, latent={"z": z}, recon=self.dec(z), target=x)

    def loss_per_jet(self, x, mask=None, out=None):
        out = out if out is not None else self(x)
        return masked_mse(out.recon, self._cast(x))

    def latent_dim(self):
        return self.enc.out_features


#: registered only while a tests/train test runs (autouse fixture in conftest.py), so that other test
#: directories looping over the registry never meet them
TEST_MODELS = {JET_MODEL: TinyJetAE, FEATURE_MODEL: TinyFeatureAE}


def make_jets(n: int, n_particles: int = 4, seed: int = 0, noise: float = 0.05):
    """Learnable synthetic jets: 4-momenta on a 2-dimensional manifold plus noise, with random padding."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(2, n_particles * 4, generator=torch.Generator().manual_seed(1234))
    z = torch.randn(n, 2, generator=g)
    p4 = (z @ w).view(n, n_particles, 4) + noise * torch.randn(n, n_particles, 4, generator=g)
    counts = torch.randint(1, n_particles + 1, (n,), generator=g)
    mask = torch.arange(n_particles)[None, :] < counts[:, None]
    return p4 * mask[..., None], mask


def base_config(tmp_path, **trainer):
    """A run config dict for the tiny jet model on fake data."""
    return {
        "name": "tiny",
        "data": {"train": "fake.root", "n_particles": 4},
        "model": {"name": JET_MODEL, "tau": 2, "hidden": 8},
        "trainer": {
            "epochs": 3,
            "batch_size": 32,
            "lr": 1e-2,
            "progress": False,
            "num_threads": 1,
            "out": str(tmp_path / "run"),
            **trainer,
        },
    }


def make_physical_jets(n: int, n_particles: int = 10, seed: int = 0):
    """Synthetic jets with physical 4-momenta (E = |p|, O(10) GeV, collimated along x) for the real models."""
    g = torch.Generator().manual_seed(seed)
    p3 = torch.randn(n, n_particles, 3, generator=g) * torch.tensor([5.0, 2.0, 2.0]) + torch.tensor(
        [30.0, 0, 0]
    )
    p3 = p3 * torch.rand(n, n_particles, 1, generator=g).add(0.1)
    counts = torch.randint(2, n_particles + 1, (n,), generator=g)
    mask = torch.arange(n_particles)[None, :] < counts[:, None]
    p4 = torch.cat([p3.norm(dim=-1, keepdim=True), p3], -1).double()
    return p4 * mask[..., None], mask
