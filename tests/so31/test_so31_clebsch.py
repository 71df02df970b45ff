import itertools
import math
from fractions import Fraction

import pytest
import torch
from sympy import Rational
from sympy.physics.quantum.cg import CG

from lgae.so31 import (
    Irrep,
    basis_matrix,
    canonical_index,
    cg,
    cg_outputs,
    invariant_form,
    random_lorentz,
    rep_matrix_sl2c,
    sl2c_matrix,
    su2_cg,
)

SMALL = [Irrep(k, n) for k in range(3) for n in range(3)]  # max(k, n) <= 2
UP_TO_4 = [Irrep(k, n) for k in range(5) for n in range(5)]  # max(k, n) <= 4


# -------------------------------------------------------------------------------------------------- SU(2)


@pytest.mark.parametrize("tj1, tj2", [(a, b) for a in range(5) for b in range(5)] + [(6, 5), (8, 8)])
def test_su2_cg_matches_sympy(tj1, tj2):
    """Every coefficient <j1 m1; j2 m2 | j m> for j1, j2 <= 2 (and a few larger) equals sympy's to 1
    ulp-ish.
    """
    for tj in range(abs(tj1 - tj2), tj1 + tj2 + 1, 2):
        c = su2_cg(Fraction(tj1, 2), Fraction(tj2, 2), Fraction(tj, 2))
        assert c.shape == (tj1 + 1, tj2 + 1, tj + 1) and c.dtype == torch.float64
        ref = torch.zeros_like(c)
        for a1, a2 in itertools.product(range(tj1 + 1), range(tj2 + 1)):
            tm1, tm2 = 2 * a1 - tj1, 2 * a2 - tj2
            if abs(tm1 + tm2) <= tj:
                h = lambda x: Rational(x, 2)  # noqa: E731
                ref[a1, a2, (tm1 + tm2 + tj) // 2] = float(
                    CG(h(tj1), h(tm1), h(tj2), h(tm2), h(tj), h(tm1 + tm2)).doit()
                )
        torch.testing.assert_close(c, ref, rtol=0, atol=1e-15)


def test_su2_cg_golden_values_and_spin_formats():
    # lgae.md §2.1 test values
    # (entries are sign * sqrt(exact rational), correctly rounded: compare with sqrt of the rational)
    assert su2_cg(0.5, 0.5, 0)[1, 0, 0].item() == math.sqrt(1 / 2)
    assert su2_cg(1, 1, 0)[1, 1, 0].item() == -math.sqrt(1 / 3)
    assert su2_cg(1, 1, 2)[2, 0, 2].item() == math.sqrt(1 / 6)
    assert torch.equal(su2_cg("1/2", Fraction(1, 2), 1), su2_cg(0.5, 0.5, 1))
    assert torch.count_nonzero(su2_cg(1, 1, 3)) == 0  # not in 1 x 1
    c = su2_cg(1, 1, 2)
    c[:] = 7  # a copy: the cache is not affected
    assert su2_cg(1, 1, 2)[2, 0, 2] == pytest.approx(1 / math.sqrt(6))


@pytest.mark.parametrize("bad", [0.3, -1, "a", True, 1 + 1j])
def test_su2_cg_bad_spin(bad):
    with pytest.raises(ValueError, match="half-integer"):
        su2_cg(bad, 1, 1)


def test_su2_cg_orthogonal():
    for tj1, tj2 in [(1, 1), (2, 3), (4, 4)]:
        cols = [
            su2_cg(tj1 / 2, tj2 / 2, tj / 2).reshape((tj1 + 1) * (tj2 + 1), -1)
            for tj in range(abs(tj1 - tj2), tj1 + tj2 + 1, 2)
        ]
        m = torch.cat(cols, 1)
        torch.testing.assert_close(m.T @ m, torch.eye(m.shape[0], dtype=torch.float64), rtol=0, atol=1e-14)


# ------------------------------------------------------------------------------------------ basis, metric


@pytest.mark.parametrize("r", UP_TO_4)
def test_basis_matrix_orthogonal_and_indexing(r):
    B = basis_matrix(r)
    assert B.shape == (r.dim, r.dim)
    torch.testing.assert_close(B.T @ B, torch.eye(r.dim, dtype=torch.float64), rtol=0, atol=1e-14)
    # column iota(l, m) is the CG <k/2 .; n/2 . | l m>
    for tl in r.spins:
        for tm in range(-tl, tl + 1, 2):
            col = canonical_index(r, Fraction(tl, 2), Fraction(tm, 2))
            ref = su2_cg(Fraction(r.k, 2), Fraction(r.n, 2), Fraction(tl, 2))[:, :, (tl + tm) // 2].reshape(
                -1
            )
            torch.testing.assert_close(B[:, col], ref, rtol=0, atol=0)


def test_canonical_index_layout():
    # lgae.md §1.2: (1,1) = (0,0), (1,-1), (1,0), (1,1)
    r = Irrep(1, 1)
    assert [canonical_index(r, *lm) for lm in [(0, 0), (1, -1), (1, 0), (1, 1)]] == [0, 1, 2, 3]
    assert canonical_index((3, 1), 2, -2) == 3  # l_min = 1 takes 0..2
    with pytest.raises(ValueError, match="not a state"):
        canonical_index((1, 1), 2, 0)


def test_invariant_form_on_vectors():
    g = invariant_form((1, 1))
    ref = torch.tensor([[1, 0, 0, 0], [0, 0, 0, 1], [0, 0, -1, 0], [0, 1, 0, 0]], dtype=torch.float64)
    assert torch.equal(g, ref)
    assert torch.equal(invariant_form((2, 1)), -invariant_form((2, 1)).T)  # k + n odd: antisymmetric


# --------------------------------------------------------------------------------------------- SL(2,C) CG


def test_cg_outputs_selection_rules():
    assert cg_outputs((1, 1), (1, 1)) == [Irrep(0, 0), Irrep(0, 2), Irrep(2, 0), Irrep(2, 2)]
    assert cg_outputs((1, 1), (1, 1), maxdim=2) == [Irrep(0, 0)]  # maxdim is an exclusive bound
    assert cg_outputs((1, 1), (1, 1), maxdim=3) == cg_outputs((1, 1), (1, 1))
    assert cg_outputs((2, 1), (1, 0)) == [Irrep(1, 1), Irrep(3, 1)]
    assert cg_outputs((0, 0), (3, 2)) == [Irrep(3, 2)]
    with pytest.raises(ValueError, match="maxdim"):
        cg_outputs((1, 1), (1, 1), maxdim=0)


def test_cg_shape_dtype_zeros_and_copy():
    C = cg(Irrep(1, 1), (2, 0), "(1,1)")
    assert C.shape == (4, 4, 3) and C.dtype == torch.complex128
    assert torch.count_nonzero(C) > 0 and torch.count_nonzero(C.imag) == 0
    assert torch.count_nonzero(cg((1, 1), (1, 1), (1, 1))) == 0  # not in (1,1) x (1,1)
    assert cg((1, 1), (1, 1), (4, 4)).shape == (25, 4, 4)
    C[:] = 0
    assert torch.count_nonzero(cg((1, 1), (2, 0), (1, 1))) > 0  # the cache was not modified


@pytest.mark.parametrize("r1, r2", list(itertools.product(SMALL, SMALL)))
def test_cg_stacked_is_orthogonal(r1, r2):
    """Normalisation: the stacked maps r1 x r2 -> sum of its irreps form a square orthogonal matrix (err
    ~1e-16).
    """
    M = torch.cat([cg(r1, r2, r).real.reshape(r.dim, -1) for r in cg_outputs(r1, r2)], 0)
    d = r1.dim * r2.dim
    assert M.shape == (d, d)
    torch.testing.assert_close(M @ M.T, torch.eye(d, dtype=torch.float64), rtol=0, atol=1e-14)


def test_cg_special_values():
    # (0,0) x X -> X and X x (0,0) -> X are the identity
    for r in UP_TO_4[:12]:
        eye = torch.eye(r.dim, dtype=torch.complex128)
        torch.testing.assert_close(cg((0, 0), r, r)[:, 0, :], eye, rtol=0, atol=1e-15)
        torch.testing.assert_close(cg(r, (0, 0), r)[:, :, 0], eye, rtol=0, atol=1e-15)
    # (1,1) x (1,1) -> (0,0) is g / 2, i.e. <p, q> / 2 on 4-vectors
    torch.testing.assert_close(cg((1, 1), (1, 1), (0, 0))[0].real, invariant_form((1, 1)) / 2, rtol=0, atol=0)
    # (1,0) x (0,1) -> (1,1) is the basis change B_(1,1) itself
    torch.testing.assert_close(
        cg((1, 0), (0, 1), (1, 1)).real, basis_matrix((1, 1)).T.reshape(4, 2, 2), rtol=0, atol=1e-16
    )
    # symmetry in the two inputs: (0,0), (2,2) symmetric; (2,0), (0,2) antisymmetric
    for r, sign in [((0, 0), 1), ((2, 2), 1), ((2, 0), -1), ((0, 2), -1)]:
        C = cg((1, 1), (1, 1), r)
        torch.testing.assert_close(C, sign * C.transpose(1, 2), rtol=0, atol=1e-16)


def test_cg_regression_values():
    """A few coefficients of (1,1) x (1,1) frozen as a regression fixture (LGN normalisation; sparsity
    exact).
    """
    s2, s3 = math.sqrt(2), math.sqrt(3)
    expected = {
        (2, 2): (
            {(0, 0, 0): s3 / 2, (0, 1, 3): -1 / (2 * s3), (0, 2, 2): 1 / (2 * s3), (1, 0, 1): 1 / s2},
            19,
        ),
        (2, 0): ({(0, 0, 1): -0.5, (0, 1, 0): 0.5, (1, 1, 3): -0.5, (1, 3, 1): 0.5}, 12),
        (0, 2): ({(0, 0, 1): 0.5, (0, 1, 0): -0.5, (1, 1, 3): -0.5, (1, 3, 1): 0.5}, 12),
        (0, 0): ({(0, 0, 0): 0.5, (0, 1, 3): 0.5, (0, 2, 2): -0.5, (0, 3, 1): 0.5}, 4),
    }
    for r, (values, n_nonzero) in expected.items():
        C = cg((1, 1), (1, 1), r).real
        assert int(torch.count_nonzero(C)) == n_nonzero  # structural zeros are exact zeros
        for idx, v in values.items():
            assert C[idx].item() == pytest.approx(v, rel=0, abs=1e-15), (r, idx)


@pytest.mark.parametrize("r1", SMALL)
def test_cg_equals_the_basis_contraction(r1):
    """cg() (closed form: SU(2) CG x 9j recoupling) equals the contraction of lgae.md §2.2, H = B1 B2 c^(k1 k2
    -> k) c^(n1 n2 -> n) B, evaluated directly in float64 (max diff 2.2e-16).
    """
    for r2 in SMALL:
        for r in cg_outputs(r1, r2):
            ck = su2_cg(r1.k / 2, r2.k / 2, r.k / 2)
            cn = su2_cg(r1.n / 2, r2.n / 2, r.n / 2)
            b1 = basis_matrix(r1).reshape(r1.k + 1, r1.n + 1, r1.dim)
            b2 = basis_matrix(r2).reshape(r2.k + 1, r2.n + 1, r2.dim)
            b = basis_matrix(r).reshape(r.k + 1, r.n + 1, r.dim)
            ref = torch.einsum("pqi,rsj,pra,qsb,abc->cij", b1, b2, ck, cn, b)
            torch.testing.assert_close(cg(r1, r2, r).real, ref, rtol=0, atol=1e-15)


def test_cg_intertwines_all_triples_up_to_4(random_sl2c):
    """D_r C = C (D_r1 x D_r2) for every allowed triple with all labels <= 4 (1764 triples).

    Measured (float64): random rotations 1.8e-15 relative to |C (D1 x D2)| (asserted 1e-12); boosts with
    rapidity 10 (plus a random rotation) and random complex SL(2,C) elements 4e-16 relative to |D_r| + |D_r1|
    |D_r2| (asserted 1e-13). For boosts the entries grow like e^(eta (k+n)/2) and some outputs (e.g. the
    scalar in (4,0) x (0,4)) are O(1) cancellations of e^(4 eta)-sized terms, so only the error relative to
    the norms of the factors is meaningful; it stays at the float64 rounding level.
    """
    rot, _ = random_lorentz((2,), seed=11)
    ang, w = random_lorentz((2,), seed=12)
    w = 10.0 * w / torch.linalg.vector_norm(w, dim=-1, keepdim=True)
    A = torch.cat([sl2c_matrix(rot), sl2c_matrix(ang, w), random_sl2c(2, 0.7, seed=13)])
    D = {r: rep_matrix_sl2c(r, A) for r in UP_TO_4}
    dmax = {r: D[r].abs().amax((-1, -2)) for r in UP_TO_4}
    n_checked = 0
    worst_rot = worst_rest = 0.0
    for r1, r2 in itertools.product(UP_TO_4, UP_TO_4):
        for r in cg_outputs(r1, r2, maxdim=5):
            C = cg(r1, r2, r)
            lhs = torch.einsum("...cd,dij->...cij", D[r], C)
            rhs = torch.einsum("...cib,...bj->...cij", torch.einsum("cab,...ai->...cib", C, D[r1]), D[r2])
            err = (lhs - rhs).abs().amax((-1, -2, -3))
            worst_rot = max(worst_rot, float((err[:2] / rhs[:2].abs().amax((-1, -2, -3))).max()))
            worst_rest = max(worst_rest, float((err[2:] / (dmax[r] + dmax[r1] * dmax[r2])[2:]).max()))
            n_checked += 1
    assert n_checked == 1764
    assert worst_rot <= 1e-12, worst_rot
    assert worst_rest <= 1e-13, worst_rest


@pytest.mark.parametrize("r", [Irrep(k, n) for k in range(4) for n in range(4)])
def test_invariant_form_preserved(r, random_sl2c):
    """D^T g D = g for generic SL(2,C) elements (err <= 1e-13 relative to |D|^2)."""
    A = random_sl2c(4, 1.0, seed=3)
    D = rep_matrix_sl2c(r, A)
    g = invariant_form(r).to(D.dtype)
    err = (D.transpose(-1, -2) @ g @ D - g).abs().amax((-1, -2))
    assert float((err / D.abs().amax((-1, -2)) ** 2).max()) <= 1e-13
