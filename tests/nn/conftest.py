"""Fixtures of the lgae.nn tests: synthetic jets."""

import pytest
import torch


def synthetic_jets(batch: int, n: int = 30, seed: int = 0, nmin: int = 3, massless: bool = True):
    """~1 TeV jets of ``nmin..n`` constituents, collinear within ~0.1, pT-ordered, zero-padded; float64."""
    g = torch.Generator().manual_seed(seed)
    n_real = torch.randint(nmin, n + 1, (batch,), generator=g)
    mask = torch.arange(n)[None] < n_real[:, None]
    z = torch.rand(batch, n, generator=g, dtype=torch.float64).pow(3) * mask
    z, order = (z / z.sum(1, keepdim=True)).sort(1, descending=True)
    mask = mask.gather(1, order)
    pt = 1000.0 * z
    eta = (
        0.1 * torch.randn(batch, n, generator=g, dtype=torch.float64)
        + torch.rand(batch, 1, generator=g)
        - 0.5
    )
    phi = 0.1 * torch.randn(batch, n, generator=g, dtype=torch.float64) + 6.0 * torch.rand(
        batch, 1, generator=g
    )
    px, py, pz = pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta)
    e = torch.sqrt(px**2 + py**2 + pz**2 + (0.0 if massless else 0.14**2))
    p = torch.stack([e, px, py, pz], -1)
    return p * mask[..., None], mask


@pytest.fixture
def jets():
    return synthetic_jets
