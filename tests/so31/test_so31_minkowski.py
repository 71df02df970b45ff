import math

import pytest
import torch

from lgae.so31 import (
    cg,
    from_irrep,
    invariant_form,
    mass,
    minkowski_dot,
    minkowski_norm2,
    pair_mass2,
    stable_dot,
    to_irrep,
    to_irrep_matrix,
)

F64, C128 = torch.float64, torch.complex128
mpmath = pytest.importorskip("mpmath")


def test_to_irrep_components_and_inverse():
    p = torch.tensor([5.0, 1.0, 2.0, 3.0], dtype=F64)
    v = to_irrep(p)
    s = math.sqrt(2)
    ref = torch.tensor([5.0, (1 + 2j) / s, 3.0, -(1 - 2j) / s], dtype=C128)
    torch.testing.assert_close(v, ref, rtol=0, atol=1e-15)
    assert v.dtype == C128 and to_irrep(p.float()).dtype == torch.complex64
    x = torch.randn(3, 5, 4, dtype=F64)
    back = from_irrep(to_irrep(x))
    assert back.dtype == C128
    torch.testing.assert_close(back.real, x, rtol=0, atol=1e-15)
    assert float(back.imag.abs().max()) < 1e-15
    torch.testing.assert_close(from_irrep(to_irrep(x), real=True), x, rtol=0, atol=1e-15)
    assert from_irrep(to_irrep(x), real=True).dtype == F64
    z = torch.randn(7, 4, dtype=C128)  # complex Cartesian features: same linear map
    torch.testing.assert_close(to_irrep(z), z @ to_irrep_matrix().T, rtol=0, atol=1e-15)
    torch.testing.assert_close(from_irrep(to_irrep(z)), z, rtol=0, atol=1e-15)
    U = to_irrep_matrix()
    torch.testing.assert_close(U @ U.conj().T, torch.eye(4, dtype=C128), rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        to_irrep(torch.zeros(3))
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        from_irrep(torch.zeros(2, 5))


def test_invariant_form_and_cg_give_minkowski_product():
    p, q = torch.randn(10, 4, dtype=F64), torch.randn(10, 4, dtype=F64)
    g = invariant_form((1, 1)).to(C128)
    lhs = torch.einsum("...i,ij,...j->...", to_irrep(p), g, to_irrep(q))
    torch.testing.assert_close(lhs, minkowski_dot(p, q).to(C128), rtol=0, atol=1e-14)
    C = cg((1, 1), (1, 1), (0, 0))
    z = torch.einsum("cij,...i,...j->...c", C, to_irrep(p), to_irrep(q))[..., 0]
    torch.testing.assert_close(z, 0.5 * minkowski_dot(p, q).to(C128), rtol=0, atol=1e-14)


def test_minkowski_basics():
    p = torch.tensor([[5.0, 1.0, 2.0, 3.0], [1.0, 2.0, 0.0, 0.0]], dtype=F64)
    torch.testing.assert_close(minkowski_norm2(p), torch.tensor([11.0, -3.0], dtype=F64))  # not clamped
    torch.testing.assert_close(mass(p), torch.tensor([math.sqrt(11.0), 0.0], dtype=F64))
    z = torch.randn(4, 4, dtype=C128)
    w = torch.randn(4, 4, dtype=C128)
    torch.testing.assert_close(minkowski_dot(1j * z, w), 1j * minkowski_dot(z, w))  # bilinear, no conjugation
    assert minkowski_dot(p[:, None], p[None]).shape == (2, 2)  # broadcasting


def _massive(E, theta, phi, m, gamma):
    """High-precision 4-vector of energy E, mass m, direction (theta, phi), then boosted along z with
    gamma.
    """
    E, m, theta, phi, gamma = (mpmath.mpf(x) for x in (E, m, theta, phi, gamma))
    P = mpmath.sqrt(E * E - m * m)
    p = [
        E,
        P * mpmath.sin(theta) * mpmath.cos(phi),
        P * mpmath.sin(theta) * mpmath.sin(phi),
        P * mpmath.cos(theta),
    ]
    bg = mpmath.sqrt(gamma * gamma - 1)
    return [gamma * p[0] + bg * p[3], p[1], p[2], bg * p[0] + gamma * p[3]]


def _mdot(p, q):
    return p[0] * q[0] - p[1] * q[1] - p[2] * q[2] - p[3] * q[3]


CASES = [(1e-2, 1.03e-2, 0.5), (3e-3, 5e-3, 2.0), (0.1, 0.12, 0.3), (1e-4, 3e-4, 1.0), (0.5, 0.9, 3.0)]


@pytest.mark.parametrize("m1, m2", [(0.0, 0.0), (0.1, 0.2), (0.0, 0.13957)])
def test_stable_dot_collinear_boosted_pairs(m1, m2):
    """Nearly collinear pairs boosted with gamma = 1e4 along their direction, rounded to float64; reference:
    the invariant of the exact vectors (50-digit mpmath).

    Measured: stable_dot with the known masses 3e-16 relative (asserted 1e-12); the naive E E' - p.p' is off
    by up to 0.9 (massless) / 6e-7 (massive); stable_dot with masses taken from the components is no better
    than naive (the rounded components define a tiny mass only to eps E^2): pass the masses.
    """
    mpmath.mp.dps = 50
    ps, qs, refs = [], [], []
    for th1, th2, ph2 in CASES:
        p, q = _massive(1.0, th1, 0.1, m1, 1e4), _massive(0.5, th2, ph2, m2, 1e4)
        ps.append([float(x) for x in p])
        qs.append([float(x) for x in q])
        refs.append(_mdot(p, q))
    P, Q = torch.tensor(ps, dtype=F64), torch.tensor(qs, dtype=F64)

    def rel(x):
        return max(float(abs(mpmath.mpf(float(a)) - r) / abs(r)) for a, r in zip(x, refs))

    got = stable_dot(P, Q, p_mass2=m1**2, q_mass2=m2**2)
    assert rel(got) < 1e-12
    if m1 == m2 == 0:
        assert rel(stable_dot(P, Q, massless=True)) < 1e-12
        assert rel(minkowski_dot(P, Q)) > 1e-2  # the naive form shows the problem
        ref_m2 = [2 * r for r in refs]
        got_m2 = pair_mass2(P, Q, massless=True)
        assert max(float(abs(mpmath.mpf(float(a)) - r) / r) for a, r in zip(got_m2, ref_m2)) < 1e-12
    else:
        assert rel(minkowski_dot(P, Q)) > 1e-8
        got_m2 = pair_mass2(P, Q, p_mass2=m1**2, q_mass2=m2**2)
        ref_m2 = [m1**2 + m2**2 + 2 * r for r in refs]
        assert max(float(abs(mpmath.mpf(float(a)) - r) / r) for a, r in zip(got_m2, ref_m2)) < 1e-12


def test_stable_dot_generic_inputs_agree_with_naive():
    """Well-conditioned inputs: stable_dot == minkowski_dot to ~1e-14; self products give m^2; padding gives
    0.
    """
    p = torch.randn(200, 4, dtype=F64)
    p[:, 0] = p[:, 1:].norm(dim=-1) * (1 + torch.rand(200, dtype=F64))  # physical: E > |p|
    q = p.roll(1, 0)
    ref = minkowski_dot(p, q)
    torch.testing.assert_close(stable_dot(p, q), ref, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(stable_dot(p, p), minkowski_norm2(p), rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(pair_mass2(p, q), minkowski_norm2(p + q), rtol=1e-12, atol=1e-12)
    zero = torch.zeros(4, dtype=F64)
    assert stable_dot(zero, p[0]).item() == 0.0 and stable_dot(zero, zero).item() == 0.0
    at_rest = torch.tensor([2.0, 0, 0, 0], dtype=F64)
    assert stable_dot(at_rest, p[0]).item() == pytest.approx(2 * p[0, 0].item(), rel=1e-15)
    neg = p[0] * torch.tensor([-1.0, 1, 1, 1], dtype=F64)  # negative energy: falls back to the naive formula
    assert stable_dot(neg, p[1]).item() == pytest.approx(minkowski_dot(neg, p[1]).item(), rel=1e-14)
    pair = stable_dot(p[:5, None], p[None, :5])  # pairwise (N, N) by broadcasting
    assert pair.shape == (5, 5)
    # finite gradients even at zero vectors (padding)
    x = torch.cat([p[:3], zero[None]]).requires_grad_(True)
    stable_dot(x[:, None], x[None, :]).sum().backward()
    assert torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match="real"):
        stable_dot(p.to(C128), q)
