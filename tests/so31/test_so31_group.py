import math

import numpy as np
import pytest
import torch
import vector

from lgae.so31 import (
    Irrep,
    apply_lorentz,
    boost_matrix,
    invariant_form,
    lorentz_from_sl2c,
    lorentz_matrix,
    random_lorentz,
    rep_matrix,
    rep_matrix_sl2c,
    rotation_matrix,
    sl2c_matrix,
    spin_matrix,
    to_irrep,
    to_irrep_matrix,
)

F64, C128 = torch.float64, torch.complex128
METRIC = torch.diag(torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=F64))
PAULI = torch.tensor([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=C128)
IRREPS_3 = [Irrep(k, n) for k in range(4) for n in range(4)]  # max(k, n) <= 3


def _spin_ops(j: float):
    """Jz, Jy (ascending m, Condon–Shortley) for an independent matrix-exponential reference."""
    ms = torch.arange(-j, j + 1, dtype=F64)
    d = len(ms)
    jp = torch.zeros(d, d, dtype=C128)
    for i in range(d - 1):
        m = ms[i]
        jp[i + 1, i] = math.sqrt(j * (j + 1) - m * (m + 1))
    jz = torch.diag(ms).to(C128)
    jx = (jp + jp.T) / 2
    jy = (jp - jp.T) / 2j
    return jx, jy, jz


def _max_rel(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor | None = None) -> float:
    dims = (-1, -2)
    s = b.abs().amax(dims) if scale is None else scale
    return float(((a - b).abs().amax(dims) / s).max())


# ------------------------------------------------------------------------------------------- 4x4 matrices


def test_simple_elements():
    eta = 0.7
    L = lorentz_matrix(rapidity=[0.0, 0.0, eta])
    p = torch.tensor([3.0, 0.1, 0.2, 1.0], dtype=F64)
    q = L @ p
    assert q[0].item() == pytest.approx(3 * math.cosh(eta) + math.sinh(eta), rel=1e-15)
    assert q[3].item() == pytest.approx(3 * math.sinh(eta) + math.cosh(eta), rel=1e-15)
    R = lorentz_matrix(angles=[0.3, 0.0, 0.0])
    assert (R @ p)[1].item() == pytest.approx(0.1 * math.cos(0.3) - 0.2 * math.sin(0.3), rel=1e-15)
    assert torch.equal(lorentz_matrix(), torch.eye(4, dtype=F64))
    # zero rapidity gives the identity exactly
    assert torch.equal(lorentz_matrix(rapidity=torch.zeros(3)), torch.eye(4, dtype=F64))
    assert torch.equal(boost_matrix(torch.zeros(2, 3)), torch.eye(4, dtype=F64).expand(2, 4, 4))


def test_lorentz_matrix_is_lorentz_and_composes():
    """Lambda^T eta Lambda = eta (rel 1e-15 of cosh^2, rapidity <= 10), det 1, Lambda00 >= 1, Lambda = B R."""
    a, w = random_lorentz((64,), max_rapidity=10.0, seed=1)
    L = lorentz_matrix(a, w)
    assert L.shape == (64, 4, 4) and L.dtype == F64
    scale = L.abs().amax((-1, -2)) ** 2
    assert _max_rel(L.transpose(-1, -2) @ METRIC @ L, METRIC.expand(64, 4, 4), scale) < 1e-15
    assert torch.allclose(torch.linalg.det(L) / scale, 1 / scale, rtol=0, atol=1e-14)
    assert bool((L[:, 0, 0] >= 1).all())
    torch.testing.assert_close(L, lorentz_matrix(rapidity=w) @ lorentz_matrix(angles=a), rtol=0, atol=0)
    R = rotation_matrix(a)
    torch.testing.assert_close(
        R.transpose(-1, -2) @ R, torch.eye(3, dtype=F64).expand(64, 3, 3), rtol=0, atol=1e-15
    )


def test_rotation_matrix_is_zyz():
    a, b, c = 0.4, 1.1, -0.7

    def rz(t):
        return torch.tensor(
            [[math.cos(t), -math.sin(t), 0], [math.sin(t), math.cos(t), 0], [0, 0, 1]], dtype=F64
        )

    def ry(t):
        return torch.tensor(
            [[math.cos(t), 0, math.sin(t)], [0, 1, 0], [-math.sin(t), 0, math.cos(t)]], dtype=F64
        )

    torch.testing.assert_close(rotation_matrix([a, b, c]), rz(a) @ ry(b) @ rz(c), rtol=0, atol=1e-15)


def test_boosts_match_vector_package():
    """Independent check against the `vector` package: boost_beta3 with beta = tanh(eta) n, rapidity up to 10.

    vector works from beta, so it loses ~eps * gamma^2 relative accuracy (1 - beta ~ 2e-9 at eta = 10); we
    agree to within that (measured 1.8e-8 at gamma = 1.1e4, 1e-16 x gamma^2). Our own accuracy is checked
    against mpmath in test_boosts_match_mpmath. Rotations: vector's active rotateZ/rotateY in ZYZ order,
    agreement 1e-15.
    """
    rng = np.random.default_rng(5)
    n = 200
    p = rng.normal(size=(n, 4))
    p[:, 0] = np.abs(p[:, 0]) + np.linalg.norm(p[:, 1:], axis=1)  # timelike, E > 0
    a, w = random_lorentz((n,), max_rapidity=10.0, seed=6)
    eta = torch.linalg.vector_norm(w, dim=-1).numpy()
    beta3 = (w.numpy() / eta[:, None]) * np.tanh(eta)[:, None]
    vecs = vector.array({"px": p[:, 1], "py": p[:, 2], "pz": p[:, 3], "E": p[:, 0]})
    ref = vecs.boost_beta3(vector.array({"x": beta3[:, 0], "y": beta3[:, 1], "z": beta3[:, 2]}))
    ref = np.stack([ref.E, ref.px, ref.py, ref.pz], -1)
    ours = apply_lorentz(lorentz_matrix(rapidity=w), torch.as_tensor(p)).numpy()
    rel = np.abs(ours - ref).max(1) / (np.cosh(eta) * np.abs(p).max(1))
    assert (rel / np.cosh(eta) ** 2).max() < 1e-14
    assert rel[eta < 2].max() < 1e-14
    ang = a.numpy()
    rot = vecs.rotateZ(ang[:, 2]).rotateY(ang[:, 1]).rotateZ(ang[:, 0])  # R = Rz(a) Ry(b) Rz(c) acting on p
    rot = np.stack([rot.E, rot.px, rot.py, rot.pz], -1)
    ours = apply_lorentz(lorentz_matrix(angles=a), torch.as_tensor(p)).numpy()
    assert np.abs(ours - rot).max() < 1e-13


def test_boosts_match_mpmath():
    """Boost matrices vs a 40-digit mpmath evaluation: 6e-16 relative to cosh(eta) at rapidity up to 10
    (asserted 1e-15).
    """
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    _, w = random_lorentz((20,), max_rapidity=10.0, seed=14)
    L = boost_matrix(w)
    worst = 0.0
    for i in range(20):
        wv = [mpmath.mpf(float(x)) for x in w[i]]
        eta = mpmath.sqrt(sum(x * x for x in wv))
        nv = [x / eta for x in wv]
        ref = [[mpmath.cosh(eta)] + [mpmath.sinh(eta) * x for x in nv]]
        for r in range(3):
            ref.append(
                [mpmath.sinh(eta) * nv[r]]
                + [(1 if r == c else 0) + (mpmath.cosh(eta) - 1) * nv[r] * nv[c] for c in range(3)]
            )
        err = max(abs(mpmath.mpf(float(L[i, r, c])) - ref[r][c]) for r in range(4) for c in range(4))
        worst = max(worst, float(err / mpmath.cosh(eta)))
    assert worst < 1e-15, worst


def test_boost_small_rapidity_accuracy():
    """(cosh - 1) is computed as 2 sinh^2(eta/2): the off-diagonal spatial entries (cosh - 1) n_i n_j keep
    full relative accuracy at tiny rapidity (cosh(eta) - 1 in float64 is off by 1e-4 relative at 1e-6).
    """
    eta = 1e-6
    L = boost_matrix([eta / math.sqrt(2), eta / math.sqrt(2), 0.0])
    exact = math.sinh(eta / 2) ** 2  # (cosh - 1) / 2
    assert L[1, 2].item() == pytest.approx(exact, rel=1e-14)
    assert abs((math.cosh(eta) - 1) / 2 - exact) / exact > 1e-6  # the naive form really is worse
    assert L[0, 1].item() == pytest.approx(math.sinh(eta) / math.sqrt(2), rel=1e-15)
    w = torch.tensor([1e-200, 0.0, 0.0], dtype=F64)  # tiny rapidity: finite, identity to rounding
    assert torch.isfinite(boost_matrix(w)).all()


# ------------------------------------------------------------------------------------------- SL(2,C) lift


def test_sl2c_lift_reproduces_lorentz_matrix():
    """Lambda(A) = tr(sigma A sigma A^dagger) / 2 equals lorentz_matrix for the same (angles, rapidity)."""
    a, w = random_lorentz((32,), max_rapidity=5.0, seed=2)
    A = sl2c_matrix(a, w)
    det = A[:, 0, 0] * A[:, 1, 1] - A[:, 0, 1] * A[:, 1, 0]
    torch.testing.assert_close(det, torch.ones(32, dtype=C128), rtol=0, atol=1e-12)
    L = lorentz_matrix(a, w)
    assert _max_rel(lorentz_from_sl2c(A), L) < 1e-14


def test_spin_matrix_matches_matrix_exponential():
    """D^j(exp(-i w.sigma/2)) = exp(-i w.J) for complex w (<= 1e-14 relative), and the Wigner ZYZ form."""
    g = torch.Generator().manual_seed(4)
    w = 0.8 * torch.complex(
        torch.randn(6, 3, generator=g, dtype=F64), torch.randn(6, 3, generator=g, dtype=F64)
    )
    A = torch.linalg.matrix_exp(-0.5j * torch.einsum("...a,aij->...ij", w, PAULI))
    for tj in range(0, 7):
        j = tj / 2
        jx, jy, jz = _spin_ops(j)
        ref = torch.linalg.matrix_exp(
            -1j * (w[:, 0, None, None] * jx + w[:, 1, None, None] * jy + w[:, 2, None, None] * jz)
        )
        assert _max_rel(spin_matrix(j, A), ref) < 1e-13, j
    a = torch.tensor([0.3, 1.2, -2.0], dtype=F64)
    for j in (0.5, 1, 1.5, 2):
        jx, jy, jz = _spin_ops(j)
        ex = lambda t, J: torch.linalg.matrix_exp(-1j * t * J)  # noqa: E731
        ref = ex(a[0], jz) @ ex(a[1], jy) @ ex(a[2], jz)
        assert _max_rel(spin_matrix(j, sl2c_matrix(a)), ref) < 1e-14


# ------------------------------------------------------------------------------------------------ D^(k,n)


def test_vector_irrep_identity():
    """rep_matrix((1,1), g) @ to_irrep(p) == to_irrep(lorentz_matrix(g) @ p) (api.md).

    Measured: 2e-16 relative to |Lambda| |p| for random elements with rapidity up to 10.
    """
    a, w = random_lorentz((64,), max_rapidity=10.0, seed=3)
    p = torch.randn(64, 4, dtype=F64)
    D = rep_matrix(Irrep(1, 1), a, w)
    L = lorentz_matrix(a, w)
    lhs = (D @ to_irrep(p)[..., None])[..., 0]
    rhs = to_irrep((L @ p[..., None])[..., 0])
    scale = L.abs().amax((-1, -2)) * p.abs().amax(-1)
    assert float(((lhs - rhs).abs().amax(-1) / scale).max()) < 1e-15
    U = to_irrep_matrix()
    assert _max_rel(D, U @ L.to(C128) @ U.conj().T, L.abs().amax((-1, -2))) < 1e-15


def test_rep_matrix_split_into_boost_and_rotation():
    """Homomorphism through the API: D(B R) == D(B) D(R) (<= 1e-14 relative to |D(B)| |D(R)|, rapidity <=
    10).
    """
    a, w = random_lorentz((16,), max_rapidity=10.0, seed=7)
    for r in IRREPS_3:
        D = rep_matrix(r, a, w)
        DB, DR = rep_matrix(r, rapidity=w), rep_matrix(r, angles=a)
        scale = DB.abs().amax((-1, -2)) * DR.abs().amax((-1, -2))
        assert _max_rel(D, DB @ DR, scale) < 1e-14, r


@pytest.mark.parametrize("r", IRREPS_3)
def test_rep_matrix_homomorphism(r, random_sl2c):
    """D(A1) D(A2) == D(A1 A2) for generic SL(2,C) elements (<= 1e-13 relative to |D(A1)| |D(A2)|)."""
    A1, A2 = random_sl2c(8, 0.8, seed=8), random_sl2c(8, 0.8, seed=9)
    D1, D2 = rep_matrix_sl2c(r, A1), rep_matrix_sl2c(r, A2)
    scale = D1.abs().amax((-1, -2)) * D2.abs().amax((-1, -2))
    assert _max_rel(D1 @ D2, rep_matrix_sl2c(r, A1 @ A2), scale) < 1e-13
    torch.testing.assert_close(
        rep_matrix_sl2c(r, torch.eye(2, dtype=C128)), torch.eye(r.dim, dtype=C128), rtol=0, atol=1e-15
    )


def test_rotations_are_unitary_and_block_diagonal():
    """For rotations D^(k,n) is unitary and block-diagonal with Wigner blocks D^l (<= 1e-14)."""
    a, _ = random_lorentz((8,), seed=10)
    A = sl2c_matrix(a)
    for r in IRREPS_3:
        D = rep_matrix(r, a)
        torch.testing.assert_close(
            D @ D.conj().transpose(-1, -2), torch.eye(r.dim, dtype=C128).expand_as(D), rtol=0, atol=1e-14
        )
        start = 0
        for tl in r.spins:
            block = D[:, start : start + tl + 1, start : start + tl + 1]
            torch.testing.assert_close(block, spin_matrix(tl / 2, A), rtol=0, atol=1e-14)
            start += tl + 1


def test_invariant_form_preserved_by_rep_matrix():
    a, w = random_lorentz((8,), max_rapidity=3.0, seed=12)
    for r in IRREPS_3:
        D = rep_matrix(r, a, w)
        g = invariant_form(r).to(C128)
        assert _max_rel(D.transpose(-1, -2) @ g @ D, g.expand_as(D), D.abs().amax((-1, -2)) ** 2) < 1e-14, r


def test_spinor_sign_and_tensor_independence_of_angles():
    """a -> a + 2 pi flips the sign of spinor irreps (k + n odd) and leaves tensorial ones unchanged."""
    a = torch.tensor([0.3, 0.4, 0.5], dtype=F64)
    b = a + torch.tensor([2 * math.pi, 0, 0], dtype=F64)
    for r in [Irrep(1, 0), Irrep(2, 1), Irrep(1, 1), Irrep(2, 0)]:
        sign = -1 if (r.k + r.n) % 2 else 1
        torch.testing.assert_close(rep_matrix(r, b), sign * rep_matrix(r, a), rtol=0, atol=1e-14)


def test_shapes_dtypes_and_broadcasting():
    a, w = random_lorentz((2, 3), seed=0)
    assert lorentz_matrix(a, w).shape == (2, 3, 4, 4)
    assert rep_matrix((2, 1), a, w).shape == (2, 3, 6, 6)
    assert lorentz_matrix(a[:1, :1], w).shape == (2, 3, 4, 4)  # broadcastable leading dims
    assert lorentz_matrix(a, w, dtype=torch.float32).dtype == torch.float32
    assert rep_matrix((1, 1), a, w, dtype=torch.complex64).dtype == torch.complex64
    assert rep_matrix((0, 0), a, w).shape == (2, 3, 1, 1)
    assert lorentz_matrix([0.1, 0.2, 0.3], [0.0, 0.0, 1.0]).shape == (4, 4)  # lists accepted
    assert rep_matrix((1, 1)).shape == (4, 4)


@pytest.mark.parametrize(
    "angles, rapidity, match",
    [
        (torch.zeros(2, 3), torch.zeros(3, 3), "do not broadcast"),
        (torch.zeros(2), None, r"shape \(..., 3\)"),
        (None, torch.zeros(4, 2), r"shape \(..., 3\)"),
        (torch.zeros(3, dtype=C128), None, "must be real"),
        ("abc", None, "real array"),
    ],
)
def test_bad_group_parameters(angles, rapidity, match):
    with pytest.raises(ValueError, match=match):
        lorentz_matrix(angles, rapidity)
    with pytest.raises(ValueError, match=match):
        rep_matrix((1, 1), angles, rapidity)


def test_random_lorentz():
    a1, w1 = random_lorentz((1000,), max_rapidity=2.0, seed=3)
    a2, w2 = random_lorentz((1000,), max_rapidity=2.0, seed=3)
    assert torch.equal(a1, a2) and torch.equal(w1, w2)
    assert a1.shape == w1.shape == (1000, 3) and a1.dtype == w1.dtype == F64
    eta = torch.linalg.vector_norm(w1, dim=-1)
    assert float(eta.max()) <= 2.0 and float(eta.max()) > 1.9 and abs(float(eta.mean()) - 1.0) < 0.1
    assert abs(float(torch.cos(a1[:, 1]).mean())) < 0.1  # Haar: cos(beta) uniform
    a, w = random_lorentz(5, rotate=False, seed=1)
    assert torch.equal(a, torch.zeros(5, 3, dtype=F64)) and bool((w != 0).any())
    a, w = random_lorentz(5, boost=False, seed=1)
    assert torch.equal(w, torch.zeros(5, 3, dtype=F64))
    g = torch.Generator().manual_seed(3)
    assert torch.equal(random_lorentz((1000,), max_rapidity=2.0, generator=g)[0], a1)
    assert random_lorentz()[0].shape == (3,)
    with pytest.raises(ValueError, match="max_rapidity"):
        random_lorentz(max_rapidity=-1)


def test_apply_lorentz():
    a, w = random_lorentz((5,), seed=0)
    L = lorentz_matrix(a, w)
    p = torch.randn(5, 7, 4, dtype=F64)
    out = apply_lorentz(L[:, None], p)  # one transform per jet
    torch.testing.assert_close(out[2, 3], L[2] @ p[2, 3])
    assert apply_lorentz(L[0], p).shape == (5, 7, 4)
    assert apply_lorentz(L[0], p.float()).dtype == F64  # promoted
    with pytest.raises(ValueError, match="do not broadcast"):
        apply_lorentz(L, p)
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        apply_lorentz(L, p[..., :3])
