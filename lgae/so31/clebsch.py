"""Clebsch–Gordan coefficients of SU(2) and SL(2,C), the canonical ``(k, n)`` basis, and the invariant form.

Conventions (``docs``: ``shared/design/lgae.md`` §1.2, §2):

* SU(2): Condon–Shortley phases; tensors are indexed by ``j + m`` (``m`` ascending). ``su2_cg(j1, j2, j)[a1,
  a2, a]`` is ``<j1, a1 - j1; j2, a2 - j2 | j, a - j>``. Values come from Racah's closed form evaluated in
  exact rational arithmetic (``fractions``) and are rounded once to float64 (each entry is ``sign * sqrt(exact
  rational)``).
* Canonical basis of ``(k, n)``: the concatenation of rotation-spin blocks ``l = |k-n|/2, ..., (k+n)/2``
  (ascending), ``m`` ascending inside a block; position ``iota(l, m) = l^2 - l_min^2 + l + m``.
  ``basis_matrix((k, n))`` is the real orthogonal matrix ``B[(a, b), iota]`` (row ``a * (n + 1) + b``) from
  the product basis ``|k/2, a - k/2> (x) |n/2, b - n/2>`` to the canonical basis.
* SL(2,C): ``cg(r1, r2, r)[iota, iota1, iota2]`` couples the holomorphic spins ``k1/2 x k2/2 -> k/2`` and the
  antiholomorphic ones ``n1/2 x n2/2 -> n/2`` with SU(2) CGs and changes every space to its canonical basis.
  The values are real (returned as complex128). ``z = einsum("cij,i,j->c", C, x, y)`` transforms in ``r`` when
  ``x`` and ``y`` transform in ``r1`` and ``r2``: ``D_r C[:, i, j] == sum_ab C[:, a, b] D_r1[a, i] D_r2[b,
  j]``.
* **Normalisation**: for fixed ``(r1, r2)``, stacking ``cg(r1, r2, r).reshape(r.dim, -1)`` over all ``r in
  cg_outputs(r1, r2)`` gives a square real *orthogonal* ``(d1 d2) x (d1 d2)`` matrix (the LGN normalisation).
  Hence ``(0,0) x X -> X`` is the identity and ``(1,1) x (1,1) -> (0,0)`` is ``g / 2`` with ``g`` the
  invariant form, i.e. ``<p, q> / 2`` on 4-vectors.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from functools import cache

import torch
from torch import Tensor

from .irreps import Irrep

__all__ = [
    "su2_cg",
    "basis_matrix",
    "cg",
    "cg_outputs",
    "invariant_form",
    "canonical_index",
]


# --------------------------------------------------------------------------------------------------------
# SU(2)


def _twice(j, what: str = "spin") -> int:
    """``2 j`` as an int for a (half-)integer spin given as int, float, Fraction or ``"1/2"``."""
    try:
        tj = Fraction(j) * 2
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{what} must be a non-negative integer or half-integer; got {j!r}") from None
    if isinstance(j, bool) or tj.denominator != 1 or tj < 0:
        raise ValueError(f"{what} must be a non-negative integer or half-integer; got {j!r}")
    return int(tj)


def _cg_exact(tj1: int, tm1: int, tj2: int, tm2: int, tj: int, tm: int) -> tuple[int, Fraction]:
    """Exact ``<j1 m1; j2 m2 | j m>`` as ``(sign, value**2)``, arguments doubled (Racah's formula)."""
    if tm != tm1 + tm2 or abs(tm1) > tj1 or abs(tm2) > tj2 or abs(tm) > tj:
        return 0, Fraction(0)
    if not (abs(tj1 - tj2) <= tj <= tj1 + tj2) or (tj1 + tj2 + tj) % 2:
        return 0, Fraction(0)
    if (tj1 + tm1) % 2 or (tj2 + tm2) % 2 or (tj + tm) % 2:
        return 0, Fraction(0)
    f = math.factorial
    h = lambda x: x // 2  # noqa: E731  (exact: every argument below is even)
    pre = Fraction(
        (tj + 1) * f(h(tj + tj1 - tj2)) * f(h(tj - tj1 + tj2)) * f(h(tj1 + tj2 - tj)),
        f(h(tj1 + tj2 + tj) + 1),
    )
    pre *= (
        f(h(tj + tm)) * f(h(tj - tm)) * f(h(tj1 - tm1)) * f(h(tj1 + tm1)) * f(h(tj2 - tm2)) * f(h(tj2 + tm2))
    )
    total = Fraction(0)
    for s in range(0, h(tj1 + tj2 - tj) + 1):
        args = (
            h(tj1 + tj2 - tj) - s,
            h(tj1 - tm1) - s,
            h(tj2 + tm2) - s,
            h(tj - tj2 + tm1) + s,
            h(tj - tj1 - tm2) + s,
        )
        if min(args) < 0:
            continue
        den = f(s)
        for a in args:
            den *= f(a)
        total += Fraction((-1) ** s, den)
    if total == 0:
        return 0, Fraction(0)
    return (1 if total > 0 else -1), pre * total * total


@cache
def _su2_cg_cached(tj1: int, tj2: int, tj: int) -> Tensor:
    out = torch.zeros(tj1 + 1, tj2 + 1, tj + 1, dtype=torch.float64)
    if not (abs(tj1 - tj2) <= tj <= tj1 + tj2) or (tj1 + tj2 + tj) % 2:
        return out
    for a1 in range(tj1 + 1):
        for a2 in range(tj2 + 1):
            tm1, tm2 = 2 * a1 - tj1, 2 * a2 - tj2
            tm = tm1 + tm2
            if abs(tm) > tj:
                continue
            sign, sq = _cg_exact(tj1, tm1, tj2, tm2, tj, tm)
            if sign:
                out[a1, a2, (tm + tj) // 2] = sign * math.sqrt(sq)
    return out


def su2_cg(j1, j2, j) -> Tensor:
    """SU(2) Clebsch–Gordan tensor ``(2j1+1, 2j2+1, 2j+1)`` float64, indexed by ``j + m``.

    ``su2_cg(j1, j2, j)[a1, a2, a] = <j1, a1 - j1; j2, a2 - j2 | j, a - j>`` (Condon–Shortley). Spins may be
    ints, half-integer floats, ``Fraction`` or strings like ``"1/2"``. All zeros when ``j`` is not in ``j1 x
    j2``. Cached; a copy is returned.
    """
    return _su2_cg_cached(_twice(j1, "j1"), _twice(j2, "j2"), _twice(j, "j")).clone()


# --------------------------------------------------------------------------------------------------------
# canonical basis of (k, n)


def canonical_index(irrep, l, m) -> int:  # noqa: E741
    """Position ``iota(l, m) = l^2 - l_min^2 + l + m`` of rotation state ``|l, m>`` in the canonical basis."""
    r = Irrep(irrep)
    tl, tm = _twice(l, "l"), round(2 * Fraction(m))
    if tl not in r.spins or abs(tm) > tl or (tl + tm) % 2:
        raise ValueError(f"(l, m) = ({l}, {m}) is not a state of irrep {r} (spins 2l in {r.spins})")
    tl0 = r.spins[0]
    return (tl * tl - tl0 * tl0) // 4 + (tl + tm) // 2


@cache
def _basis_cached(k: int, n: int) -> Tensor:
    d = (k + 1) * (n + 1)
    out = torch.zeros(d, d, dtype=torch.float64)
    col = 0
    for tl in Irrep(k, n).spins:
        c = _su2_cg_cached(k, n, tl)  # (k+1, n+1, tl+1)
        out[:, col : col + tl + 1] = c.reshape(d, tl + 1)
        col += tl + 1
    return out


def basis_matrix(irrep) -> Tensor:
    """Real orthogonal ``B_(k,n)`` of shape ``(dim, dim)``, float64: rows ``a * (n+1) + b`` of the product
    basis ``|k/2, a - k/2> (x) |n/2, b - n/2>``, columns the canonical index ``iota(l, m)``. Cached; a copy is
    returned.
    """
    r = Irrep(irrep)
    return _basis_cached(r.k, r.n).clone()


@cache
def _metric_cached(k: int, n: int) -> Tensor:
    r = Irrep(k, n)
    g = torch.zeros(r.dim, r.dim, dtype=torch.float64)
    for tl in r.spins:
        for tm in range(-tl, tl + 1, 2):
            i = canonical_index(r, Fraction(tl, 2), Fraction(tm, 2))
            j = canonical_index(r, Fraction(tl, 2), Fraction(-tm, 2))
            g[i, j] = (-1) ** ((tl + tm) // 2)
    return g


def invariant_form(irrep) -> Tensor:
    """The invariant bilinear form ``g`` on ``(k, n)`` (real ``(dim, dim)`` float64): ``D^T g D == g`` for
    every group element, ``g[iota(l,m), iota(l',m')] = delta_{ll'} delta_{m,-m'} (-1)^(l+m)``. Symmetric when
    ``k + n`` is even. On ``(1, 1)``: ``to_irrep(p) @ g @ to_irrep(q) == <p, q>``.
    """
    r = Irrep(irrep)
    return _metric_cached(r.k, r.n).clone()


# --------------------------------------------------------------------------------------------------------
# SL(2,C)


def _allowed(a1: int, a2: int, a: int) -> bool:
    return abs(a1 - a2) <= a <= a1 + a2 and (a1 + a2 + a) % 2 == 0


def cg_outputs(r1, r2, maxdim: int | None = None) -> list[Irrep]:
    """The irreps in ``r1 x r2`` (each appears once), sorted. ``maxdim`` is LGN's *exclusive* bound on both
    labels: only outputs with ``max(k, n) <= maxdim - 1`` are kept (``maxdim=2`` keeps scalars, spinors and
    4-vectors).
    """
    r1, r2 = Irrep(r1), Irrep(r2)
    if maxdim is not None and (isinstance(maxdim, bool) or not isinstance(maxdim, int) or maxdim < 1):
        raise ValueError(f"maxdim must be an integer >= 1 (an exclusive bound on k and n); got {maxdim!r}")
    ks = range(abs(r1.k - r2.k), r1.k + r2.k + 1, 2)
    ns = range(abs(r1.n - r2.n), r1.n + r2.n + 1, 2)
    return [Irrep(k, n) for k in ks for n in ns if maxdim is None or max(k, n) < maxdim]


def _triangle(ta: int, tb: int, tc: int) -> bool:
    return abs(ta - tb) <= tc <= ta + tb and (ta + tb + tc) % 2 == 0


@cache
def _delta2(ta: int, tb: int, tc: int) -> Fraction:
    """Squared triangle coefficient ``(a+b-c)! (a-b+c)! (-a+b+c)! / (a+b+c+1)!`` (doubled arguments)."""
    f = math.factorial
    return Fraction(
        f((ta + tb - tc) // 2) * f((ta - tb + tc) // 2) * f((tb + tc - ta) // 2), f((ta + tb + tc) // 2 + 1)
    )


@cache
def _racah_sum(ta: int, tb: int, tc: int, td: int, te: int, tf: int) -> Fraction:
    """The rational sum of Racah's formula: ``{a b c; d e f} = D(abc) D(aef) D(dbf) D(dec) * sum`` (doubled
    args).
    """
    f = math.factorial
    lo = max(ta + tb + tc, ta + te + tf, td + tb + tf, td + te + tc) // 2
    hi = min(ta + tb + td + te, tb + tc + te + tf, tc + ta + tf + td) // 2
    total = Fraction(0)
    for t in range(lo, hi + 1):
        den = (
            f(t - (ta + tb + tc) // 2)
            * f(t - (ta + te + tf) // 2)
            * f(t - (td + tb + tf) // 2)
            * f(t - (td + te + tc) // 2)
            * f((ta + tb + td + te) // 2 - t)
            * f((tb + tc + te + tf) // 2 - t)
            * f((tc + ta + tf + td) // 2 - t)
        )
        total += Fraction((-1) ** t * f(t + 1), den)
    return total


@cache
def _ninej_exact(j1: int, j2: int, j3: int, j4: int, j5: int, j6: int, j7: int, j8: int, j9: int):
    """Exact Wigner 9j symbol ``{j1 j2 j3; j4 j5 j6; j7 j8 j9}`` as ``(sign, value**2)`` (doubled arguments).

    ``9j = sum_x (-1)^(2x) (2x+1) {j1 j4 j7; j8 j9 x} {j2 j5 j8; j4 x j6} {j3 j6 j9; x j1 j2}``; the triangle
    coefficients that depend on ``x`` appear squared, the rest factor out as ``sqrt(common)``.
    """
    triads = [(j1, j2, j3), (j4, j5, j6), (j7, j8, j9), (j1, j4, j7), (j2, j5, j8), (j3, j6, j9)]
    if not all(_triangle(*t) for t in triads):
        return 0, Fraction(0)
    cnum = cden = 1
    for t in [(j1, j4, j7), (j8, j9, j7), (j2, j5, j8), (j4, j5, j6), (j3, j6, j9), (j3, j1, j2)]:
        d = _delta2(*t)
        cnum, cden = cnum * d.numerator, cden * d.denominator
    lo, hi = max(abs(j1 - j9), abs(j4 - j8), abs(j2 - j6)), min(j1 + j9, j4 + j8, j2 + j6)
    total = Fraction(0)
    for x in range(lo, hi + 1, 2):
        if not (_triangle(j1, j9, x) and _triangle(j8, j4, x) and _triangle(j2, x, j6)):
            continue
        # multiply numerators and denominators as integers and normalise once (Fraction products are slow)
        num, den = (-1) ** x * (x + 1), 1
        for factor in (
            _delta2(j1, j9, x),
            _delta2(j8, j4, x),
            _delta2(j2, x, j6),
            _racah_sum(j1, j4, j7, j8, j9, x),
            _racah_sum(j2, j5, j8, j4, x, j6),
            _racah_sum(j3, j6, j9, x, j1, j2),
        ):
            num *= factor.numerator
            den *= factor.denominator
        total += Fraction(num, den)
    if total == 0:
        return 0, Fraction(0)
    return (1 if total > 0 else -1), Fraction(cnum * total.numerator**2, cden * total.denominator**2)


@cache
def _su2_cg_nonzero(tj1: int, tj2: int, tj: int) -> tuple:
    """The nonzero exact SU(2) CGs as ``((a, a1, a2), sign, value**2)`` (indices ``j + m``)."""
    out = []
    for a1 in range(tj1 + 1):
        for a2 in range(tj2 + 1):
            tm1, tm2 = 2 * a1 - tj1, 2 * a2 - tj2
            if abs(tm1 + tm2) <= tj:
                sg, q = _cg_exact(tj1, tm1, tj2, tm2, tj, tm1 + tm2)
                if sg:
                    out.append((((tm1 + tm2 + tj) // 2, a1, a2), sg, q))
    return tuple(out)


def _block_offsets(r: Irrep) -> dict[int, int]:
    """Start of each spin block ``2l -> iota(l, -l)`` in the canonical basis."""
    out, start = {}, 0
    for tl in r.spins:
        out[tl] = start
        start += tl + 1
    return out


@cache
def _cg_cached(r1: Irrep, r2: Irrep, r: Irrep) -> Tensor:
    """The SL(2,C) CG tensor, float64.

    Equal to the contraction of lgae.md §2.2 (``B1 B2 c^{k} c^{n} B``), evaluated through its closed form: in
    rotation blocks ``(l1, l2 -> l)`` it is the SU(2) CG ``<l1 m1; l2 m2 | l m>`` times the recoupling
    coefficient ``sqrt((2 l1 + 1)(2 l2 + 1)(k + 1)(n + 1)) {k1/2 n1/2 l1; k2/2 n2/2 l2; k/2 n/2 l}`` (a 9j
    symbol). Both are exact ``sign * sqrt(rational)``, so every entry is ``sign * sqrt(exact rational)``
    rounded once (correct to half an ulp, up to the last rounding of ``math.sqrt``), and structural zeros are
    exact zeros.
    """
    out = torch.zeros(r.dim, r1.dim, r2.dim, dtype=torch.float64)
    if not (_allowed(r1.k, r2.k, r.k) and _allowed(r1.n, r2.n, r.n)):
        return out
    o1, o2, o = _block_offsets(r1), _block_offsets(r2), _block_offsets(r)
    for tl1, tl2, tl in itertools.product(r1.spins, r2.spins, r.spins):
        if not _triangle(tl1, tl2, tl):
            continue
        sg, q = _ninej_exact(r1.k, r1.n, tl1, r2.k, r2.n, tl2, r.k, r.n, tl)
        if not sg:
            continue
        q_r = q * (tl1 + 1) * (tl2 + 1) * (r.k + 1) * (r.n + 1)
        for (a, a1, a2), sg_cg, q_cg in _su2_cg_nonzero(tl1, tl2, tl):
            out[o[tl] + a, o1[tl1] + a1, o2[tl2] + a2] = sg * sg_cg * math.sqrt(q_r * q_cg)
    return out


def cg(r1, r2, r) -> Tensor:
    """SL(2,C) Clebsch–Gordan tensor ``(r.dim, r1.dim, r2.dim)`` complex128 (real values) in the canonical
    bases.

    ``z[c] = sum_ij C[c, i, j] x[i] y[j]`` maps ``x in r1``, ``y in r2`` to ``z in r``: ``D_r C[:, i, j] ==
    sum_ab C[:, a, b] D_r1[a, i] D_r2[b, j]``. All zeros when ``r`` is not in ``r1 x r2``. Normalised so that
    the stacked maps over :func:`cg_outputs` form an orthogonal matrix (module docstring). Cached per ``(r1,
    r2, r)``; a fresh copy is returned (safe to modify).
    """
    r1, r2, r = Irrep(r1), Irrep(r2), Irrep(r)
    return _cg_cached(r1, r2, r).to(torch.complex128)
