"""Named, invertible jet transforms (lgae.data.transforms)."""

from __future__ import annotations

import math

import pytest
import torch

from lgae.data.transforms import (
    Compose,
    JetImage,
    Massless,
    MomentumScale,
    RelativeCoordinates,
    available_transforms,
    from_state_dict,
    get_transform,
    jet_axis,
)


@pytest.fixture
def jets():
    """A batch of massive jets around a common axis, with padding."""
    g = torch.Generator().manual_seed(0)
    b, n = 6, 10
    pt = 50 * torch.rand(b, n, generator=g, dtype=torch.float64) + 1
    eta = 0.3 * torch.randn(b, n, generator=g, dtype=torch.float64) + 0.5
    phi = 0.3 * torch.randn(b, n, generator=g, dtype=torch.float64) - 1.0
    px, py, pz = pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta)
    e = torch.sqrt(px**2 + py**2 + pz**2 + 0.3**2)
    mask = torch.arange(n)[None, :] < torch.tensor([10, 7, 3, 1, 10, 5])[:, None]
    p4 = torch.stack([e, px, py, pz], dim=-1) * mask[..., None]
    return p4, mask


def boost_z(rapidity):
    c, s = math.cosh(rapidity), math.sinh(rapidity)
    return torch.tensor([[c, 0, 0, s], [0, 1, 0, 0], [0, 0, 1, 0], [s, 0, 0, c]], dtype=torch.float64)


def test_momentum_scale_exact_inverse_and_commutes_with_boosts(jets):
    p4, mask = jets
    t = MomentumScale()  # GeV -> TeV
    assert t.scale == 1e-3
    torch.testing.assert_close(t(p4, mask), p4 * 1e-3)
    torch.testing.assert_close(t.inverse(t(p4, mask), mask), p4, rtol=1e-15, atol=0)
    lam = boost_z(2.0)
    torch.testing.assert_close(t(p4 @ lam.T, mask), t(p4, mask) @ lam.T)
    with pytest.raises(ValueError):
        MomentumScale(0)


def test_massless(jets):
    p4, mask = jets
    t = Massless()
    out = t(p4, mask)
    torch.testing.assert_close(out[..., 0], torch.linalg.vector_norm(p4[..., 1:], dim=-1))
    torch.testing.assert_close(out[..., 1:], p4[..., 1:])
    m2 = out[..., 0] ** 2 - (out[..., 1:] ** 2).sum(-1)
    assert m2.abs().max() < 1e-9
    assert torch.all(out[~mask] == 0)
    torch.testing.assert_close(t.inverse(out, mask), out)  # not invertible without the energies ...
    torch.testing.assert_close(t.inverse(out, mask, energy=p4[..., 0]), p4)  # ... exact with them


def test_relative_coordinates_round_trip(jets):
    p4, mask = jets
    p4 = Massless()(p4, mask)  # the inverse returns massless particles
    t = RelativeCoordinates()
    rel = t(p4, mask)
    assert rel.shape == (*mask.shape, 3)
    assert torch.all(rel[~mask] == 0)
    back = t.inverse(rel, mask, **jet_axis(p4, mask))
    torch.testing.assert_close(back, p4, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="jet_pt"):
        t.inverse(rel, mask)


def test_jet_image(jets):
    p4, mask = jets
    t = JetImage(n_pixels=16, half_width=4.0)  # wide enough to hold every particle
    img = t(p4, mask)
    assert img.shape == (6, 16, 16) and torch.all(img >= 0)
    torch.testing.assert_close(img.sum((-1, -2)), RelativeCoordinates()(p4, mask)[..., 0].sum(-1))
    assert t.state_dict() == {"name": "jet_image", "n_pixels": 16, "half_width": 4.0}
    with pytest.raises(NotImplementedError, match="not invertible"):
        t.inverse(img, mask)


def test_compose_registry_state_dict(jets):
    p4, mask = jets
    t = Compose([MomentumScale(1e-2), "massless"])
    out = t(p4, mask)
    torch.testing.assert_close(out, Massless()(p4 * 1e-2, mask))
    state = t.state_dict()
    assert state == {
        "name": "compose",
        "transforms": [{"name": "momentum_scale", "scale": 0.01}, {"name": "massless"}],
    }
    rebuilt = from_state_dict(state)
    torch.testing.assert_close(rebuilt(p4, mask), out)
    # inverse applies the inverses in reverse order; the energies restore the masses exactly
    torch.testing.assert_close(t.inverse(out, mask, energy=p4[..., 0] * 1e-2), p4)
    assert {"momentum_scale", "massless", "relative_coordinates", "jet_image", "compose"} <= set(
        available_transforms()
    )
    assert get_transform("momentum_scale", scale=2.0).scale == 2.0
    with pytest.raises(ValueError, match="did you mean 'massless'"):
        get_transform("masless")
