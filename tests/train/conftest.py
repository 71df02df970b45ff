"""Fixtures for the trainer tests; the test models and data makers live in train_helpers.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from train_helpers import TEST_MODELS, make_jets

import lgae.data
from lgae.models import registry


@pytest.fixture(autouse=True)
def test_models(monkeypatch):
    """Register the tiny test models for the duration of each test."""
    for name, cls in TEST_MODELS.items():
        monkeypatch.setitem(registry._REGISTRY, name, cls)


@pytest.fixture
def jets():
    """(train, val) tuples of (p4, mask)."""
    return make_jets(256, seed=0), make_jets(64, seed=1)


@pytest.fixture
def fake_data(monkeypatch):
    """Replace lgae.data's entry points by synthetic data so that train(config) runs without files.

    ``data.kind: features`` gives a flat 3-feature set; anything else gives jets with ``data.n_particles``
    slots. Returns the list of (data config, seed) calls made.
    """
    calls = []

    def build_datasets(data, seed):
        calls.append((dict(data), seed))
        n_val = 64
        if data.get("kind") == "features":
            g = torch.Generator().manual_seed(seed)
            x = torch.randn(320, 1, generator=g) @ torch.tensor([[1.0, -2.0, 0.5]])
            return SimpleNamespace(train=(x[n_val:],), val=(x[:n_val],), info={"input_kind": "features"})
        n = data.get("n_particles", 4)
        train, val = make_jets(256, n, seed=seed), make_jets(n_val, n, seed=seed + 100)
        return SimpleNamespace(train=train, val=val, info={"input_kind": "jets", "n_particles": n})

    def validate_data_config(data):
        return dict(data)

    monkeypatch.setattr(lgae.data, "build_datasets", build_datasets, raising=False)
    monkeypatch.setattr(lgae.data, "validate_data_config", validate_data_config, raising=False)
    return calls
