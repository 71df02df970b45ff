"""Stable invariants and the canonical frame (lgae.nn.invariants)."""

import pytest
import torch

from lgae.nn.invariants import (
    _det_sign,
    _det_sign_unrolled,
    canonical_frame,
    gram_matrix,
    particle_mass2,
    psi,
)
from lgae.so31 import apply_lorentz, lorentz_matrix, random_lorentz, stable_dot

ETA = torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=torch.float64)


def _offdiag_valid(mask):
    n = mask.shape[1]
    return mask[:, :, None] & mask[:, None, :] & ~torch.eye(n, dtype=torch.bool)


@pytest.mark.parametrize("massless", [True, False])
def test_gram_matches_so31_stable_dot(jets, massless):
    p, mask = jets(64, massless=massless)
    P, m2 = gram_matrix(p, mask)
    ref = stable_dot(p[:, :, None], p[:, None, :], massless=massless)
    sel = _offdiag_valid(mask)
    rel = ((P - ref).abs() / ref.abs())[sel]
    assert rel.max() < 1e-12
    assert torch.equal(torch.diagonal(P, dim1=1, dim2=2), m2)
    assert (P[~(mask[:, :, None] & mask[:, None, :])] == 0).all()
    assert torch.allclose(P, P.transpose(1, 2), rtol=0, atol=0)


def test_gram_beats_naive_product_for_collinear_light_like_pairs():
    theta = torch.tensor([1e-3, 1e-5, 1e-7], dtype=torch.float64)
    a = torch.stack(
        [torch.ones_like(theta), torch.zeros_like(theta), torch.zeros_like(theta), torch.ones_like(theta)], -1
    )
    b = torch.stack([torch.ones_like(theta), torch.sin(theta), torch.zeros_like(theta), torch.cos(theta)], -1)
    p = torch.stack([a, b], 1)  # (3, 2, 4)
    P, _ = gram_matrix(p, massless=True)
    exact = 1 - torch.cos(theta)  # = 2 sin^2(theta/2), accurate in float64
    exact = 2 * torch.sin(theta / 2) ** 2
    assert torch.allclose(P[:, 0, 1], exact, rtol=1e-12, atol=0)


def test_particle_mass2_snaps_rounding_noise_only():
    p = torch.tensor(
        [[1.0, 0.0, 0.0, 1.0], [1.0 + 1e-15, 0.0, 0.0, 1.0], [1.0 + 1e-6, 0.0, 0.0, 1.0]], dtype=torch.float64
    )
    m2 = particle_mass2(p)
    assert m2[0] == 0 and m2[1] == 0 and m2[2] > 0
    p32 = p.float()
    assert (
        particle_mass2(p32.double(), eps=torch.finfo(torch.float32).eps)[2] == 0
    )  # below float32 resolution


def test_psi():
    z = torch.tensor([-3.0, 0.0, 2.0])
    assert torch.allclose(psi(z), torch.sign(z) * torch.log1p(z.abs()))
    c = torch.tensor([3 + 4j])
    assert torch.allclose(psi(c).abs(), torch.log1p(torch.tensor([5.0])))
    assert torch.allclose(psi(c) / psi(c).abs(), c / c.abs())


def _check_frame(fr, p, mask):
    e = fr.vectors  # (B, 4, 4) rows e_a, lab components
    g = torch.einsum("bam,m,bcm->bac", e, ETA, e)
    # pivots with a small residual (few, nearly collinear constituents) cost some digits in the lab components
    assert torch.allclose(g, torch.diag(ETA).expand_as(g), atol=1e-7)
    assert (torch.linalg.det(e) > 0).all()
    assert (e[:, 0, 0] > 0).all()  # orthochronous
    assert torch.allclose(fr.to_lab(fr.x), p * mask[..., None], rtol=0, atol=1e-9 * p.abs().max())
    assert (fr.x[~mask] == 0).all()


def test_frame_is_a_proper_orthonormal_rest_frame(jets):
    p, mask = jets(128)
    fr = canonical_frame(p, mask)
    _check_frame(fr, p, mask)
    jet = (fr.x * mask[..., None]).sum(1)  # jet at rest: spatial momentum 0
    assert jet[:, 1:].abs().max() < 1e-10 * jet[:, 0].abs().max()
    assert torch.allclose(fr.to_frame(fr.to_lab(fr.x)), fr.x, atol=1e-9)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_frame_of_degenerate_jets(n):
    # jets whose momenta span fewer than 4 dimensions get completed with lab axes; still a valid frame
    p = torch.zeros(2, 6, 4, dtype=torch.float64)
    dirs = torch.tensor(
        [[0.1, 0.0, 1.0], [0.0, 0.1, 1.0], [-0.1, 0.0, 1.0], [0.0, -0.1, 1.0]], dtype=torch.float64
    )
    for i in range(n):
        v = dirs[i] * (100.0 / (i + 1))
        p[:, i] = torch.cat([v.norm().view(1), v])
    p[1, :n] = p[1, :n] * 2.0
    mask = torch.arange(6)[None].expand(2, -1) < n
    fr = canonical_frame(p, mask)
    _check_frame(fr, p, mask)


def test_frame_components_are_invariants(jets):
    # rest-frame energies and momenta are invariants computed from the stable Gram matrix; the spatial axes
    # can differ between frames (pivot near-ties, lab-axis completions of jets spanning < 4 dimensions),
    # harmlessly
    p, mask = jets(64)
    ang, rap = random_lorentz((64,), max_rapidity=8.0, seed=1)
    L = lorentz_matrix(ang, rap)
    x0 = canonical_frame(p, mask).x
    x1 = canonical_frame(apply_lorentz(L[:, None], p), mask).x
    for f in (lambda x: x[..., 0], lambda x: x[..., 1:].norm(dim=-1)):
        a, b = f(x0), f(x1)
        err = (a - b).abs().max(1).values / a.abs().max(1).values
        assert err.median() < 1e-12 and err.max() < 1e-9


@pytest.mark.parametrize("det_sign", [_det_sign, _det_sign_unrolled], ids=["eager", "unrolled"])
@pytest.mark.parametrize("rapidity", [1.0, 10.0, 14.0])
def test_det_sign_of_boosted_frames(rapidity, det_sign):
    # the frame's orientation test (LU sign, export-friendly) on Lorentz matrices with entries up to
    # cosh(14) ~ 6e5, rows permuted and reflected: exact, where a cofactor expansion (terms ~gamma^4) errs by
    # ~0.2 at rapidity 10 and gets ~8% of the signs wrong at rapidity 14
    n = 4000
    g = torch.Generator().manual_seed(int(rapidity))
    L = lorentz_matrix(*random_lorentz((n,), max_rapidity=rapidity, generator=g))
    perm = torch.argsort(torch.rand(n, 4, generator=g), 1)
    reflect = torch.rand(n, generator=g) < 0.5
    flip = torch.ones(n, 4, 1, dtype=torch.float64)
    flip[reflect, 0] = -1.0  # reflect the first row
    A = L.gather(1, perm[..., None].expand(-1, -1, 4)) * flip
    inversions = sum((perm[:, i] > perm[:, j]).long() for i in range(4) for j in range(i + 1, 4))
    want = torch.where((inversions % 2 == 1) ^ reflect, -1.0, 1.0).double()  # det L = +1
    assert torch.equal(det_sign(A), want)
    assert torch.equal(det_sign(A), torch.where(torch.linalg.det(A) < 0, -1.0, 1.0).double())


@pytest.mark.parametrize("det_sign", [_det_sign, _det_sign_unrolled], ids=["eager", "unrolled"])
def test_det_sign_of_general_and_singular_matrices(det_sign):
    A = torch.randn(5000, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(det_sign(A), torch.where(torch.linalg.det(A) < 0, -1.0, 1.0).double())
    S = torch.zeros(3, 4, 4, dtype=torch.float64)
    S[1, 0, 0] = -1.0  # rank one
    S[2] = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 0.0], dtype=torch.float64))
    assert torch.equal(det_sign(S), torch.ones(3, dtype=torch.float64))  # det 0 is not negative
    nan = torch.full((2, 4, 4), float("nan"), dtype=torch.float64)
    assert torch.equal(det_sign(nan), torch.ones(2, dtype=torch.float64))


def test_frame_matches_across_batch_sizes(jets):
    # built from gathers and concatenations (no batch-size-dependent writes, so it exports with a dynamic
    # batch): each jet's frame does not depend on the batch it is in
    p, mask = jets(64, 12, seed=9, nmin=1, massless=False)
    fr = canonical_frame(p, mask)
    for sl in (slice(0, 1), slice(3, 10), slice(10, 64)):
        part = canonical_frame(p[sl], mask[sl])
        assert torch.equal(part.x, fr.x[sl]) and torch.equal(part.vectors, fr.vectors[sl])
