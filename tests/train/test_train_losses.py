"""The training distances (re-exported by lgae.train.losses) against naive Python-loop references."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import lgae.nn.losses as nn_losses
from lgae.train import losses
from lgae.train.losses import (
    chamfer_distance,
    hungarian_distance,
    kl_divergence,
    kl_per_dim,
    masked_mse,
    pairwise_sq_dist,
)


def random_sets(seed, B=6, N=5, M=4, F=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, N, F, generator=g, dtype=torch.float64)
    y = torch.randn(B, M, F, generator=g, dtype=torch.float64)
    mx = torch.rand(B, N, generator=g) < 0.7
    my = torch.rand(B, M, generator=g) < 0.7
    mx[0], my[0] = True, True  # one fully valid jet
    mx[1] = False  # an empty side
    return x, y, mx, my


def sq(a, b):
    return sum((float(u) - float(v)) ** 2 for u, v in zip(a, b))


def chamfer_ref(x, y, mx, my, squared=True):
    out = []
    for b in range(x.shape[0]):
        xs = [x[b, i] for i in range(x.shape[1]) if mx[b, i]]
        ys = [y[b, j] for j in range(y.shape[1]) if my[b, j]]
        if not xs or not ys:
            out.append(0.0)
            continue
        d = (lambda u, v: sq(u, v)) if squared else (lambda u, v: math.sqrt(sq(u, v)))
        tx = sum(min(d(u, v) for v in ys) for u in xs) / len(xs)
        ty = sum(min(d(u, v) for u in xs) for v in ys) / len(ys)
        out.append(0.5 * (tx + ty))
    return torch.tensor(out, dtype=torch.float64)


def test_reexports_are_the_nn_functions():
    assert set(losses.__all__) == {
        "chamfer_distance",
        "masked_mse",
        "kl_divergence",
        "kl_per_dim",
        "hungarian_distance",
        "pairwise_sq_dist",
    }
    for name in losses.__all__:
        assert getattr(losses, name) is getattr(nn_losses, name)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("squared", [True, False])
def test_chamfer_matches_loop_reference(seed, squared):
    x, y, mx, my = random_sets(seed)
    got = chamfer_distance(x, y, mx, my, squared=squared)
    torch.testing.assert_close(got, chamfer_ref(x, y, mx, my, squared), rtol=1e-12, atol=1e-12)
    # no masks = every particle real
    full = chamfer_distance(x, y, squared=squared)
    ones_x, ones_y = torch.ones(x.shape[:2], dtype=torch.bool), torch.ones(y.shape[:2], dtype=torch.bool)
    torch.testing.assert_close(full, chamfer_ref(x, y, ones_x, ones_y, squared), rtol=1e-12, atol=1e-12)


def test_chamfer_is_symmetric_zero_on_identity_and_has_finite_gradients():
    x, y, mx, my = random_sets(7)
    torch.testing.assert_close(chamfer_distance(x, y, mx, my), chamfer_distance(y, x, my, mx))
    assert torch.all(chamfer_distance(x, x, mx, mx) == 0)
    # padded particles do not matter
    x2 = x.clone()
    x2[~mx] = 1e3
    torch.testing.assert_close(chamfer_distance(x2, y, mx, my), chamfer_distance(x, y, mx, my))
    xr = x.clone().requires_grad_(True)
    chamfer_distance(xr, y, mx, my, squared=False).sum().backward()
    assert torch.isfinite(xr.grad).all()


@pytest.mark.parametrize("seed", range(3))
def test_masked_mse_matches_loop_reference(seed):
    x, _, mx, _ = random_sets(seed)
    y = torch.randn_like(x)
    ref = []
    for b in range(x.shape[0]):
        terms = [
            (float(x[b, i, f]) - float(y[b, i, f])) ** 2
            for i in range(x.shape[1])
            if mx[b, i]
            for f in range(x.shape[2])
        ]
        ref.append(sum(terms) / len(terms) if terms else 0.0)
    torch.testing.assert_close(
        masked_mse(x, y, mx), torch.tensor(ref, dtype=torch.float64), rtol=1e-12, atol=1e-12
    )
    flat = masked_mse(x.flatten(1), y.flatten(1))
    torch.testing.assert_close(flat, ((x - y) ** 2).flatten(1).mean(1))


def test_pairwise_and_kl_match_formulas():
    x, y, _, _ = random_sets(3)
    d = pairwise_sq_dist(x, y)
    for b, i, j in itertools.product(range(2), range(x.shape[1]), range(y.shape[1])):
        assert d[b, i, j].item() == pytest.approx(sq(x[b, i], y[b, j]), rel=1e-12)
    mu, logvar = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    ref = [
        [0.5 * (m**2 + math.exp(lv) - lv - 1) for m, lv in zip(mr.tolist(), lr.tolist())]
        for mr, lr in zip(mu, logvar)
    ]
    torch.testing.assert_close(kl_per_dim(mu, logvar), torch.tensor(ref, dtype=torch.float64))
    torch.testing.assert_close(kl_divergence(mu, logvar), torch.tensor(ref, dtype=torch.float64).sum(1))
    assert torch.all(kl_divergence(torch.zeros(2, 3), torch.zeros(2, 3)) == 0)


def hungarian_ref(x, y, mx, my):
    out = []
    for b in range(x.shape[0]):
        xs = [x[b, i] for i in range(x.shape[1]) if mx[b, i]]
        ys = [y[b, j] for j in range(y.shape[1]) if my[b, j]]
        if not xs or not ys:
            out.append(0.0)
            continue
        small, large = (xs, ys) if len(xs) <= len(ys) else (ys, xs)
        best = min(
            sum(sq(u, large[k]) for u, k in zip(small, perm))
            for perm in itertools.permutations(range(len(large)), len(small))
        )
        out.append(best / len(small))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("seed", range(4))
def test_hungarian_matches_brute_force(seed):
    x, y, mx, my = random_sets(seed, B=5, N=5, M=4)
    torch.testing.assert_close(
        hungarian_distance(x, y, mx, my), hungarian_ref(x, y, mx, my), rtol=1e-12, atol=1e-12
    )
    # a permuted copy is at distance 0, and the optimum never exceeds the slot-aligned pairing
    perm = torch.randperm(5, generator=torch.Generator().manual_seed(seed))
    assert torch.allclose(hungarian_distance(x, x[:, perm]), torch.zeros(5, dtype=torch.float64), atol=1e-12)
    assert torch.all(hungarian_distance(x, x + 0.1) <= masked_mse(x, x + 0.1) * x.shape[-1] + 1e-12)
