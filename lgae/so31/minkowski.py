"""4-vectors: the map to the ``(1, 1)`` irrep and Minkowski products (metric ``diag(+1, -1, -1, -1)``).

**Basis choice.** ``to_irrep(p) = conj(U) p`` where ``U`` is LGN's ``p_to_rep`` matrix (``lgae.md`` §1.3):

    v = (E, (px + i py)/sqrt2, pz, -(px - i py)/sqrt2)      # canonical (l, m) = (0,0), (1,-1), (1,0), (1,+1)

With this choice the *standard* representation matrices of :func:`lgae.so31.rep_matrix` act on the components:
``rep_matrix((1,1), g) @ to_irrep(p) == to_irrep(lorentz_matrix(g) @ p)`` (LGN instead keeps ``U`` and uses
the complex-conjugate matrices; the real CG tables serve both). ``conj(U)`` is unitary, so ``from_irrep`` is
its conjugate transpose. The invariant form of ``(1, 1)`` reproduces the Minkowski product: ``to_irrep(p) @
invariant_form((1,1)) @ to_irrep(q) == minkowski_dot(p, q)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "to_irrep",
    "from_irrep",
    "to_irrep_matrix",
    "minkowski_dot",
    "minkowski_norm2",
    "mass",
    "stable_dot",
    "pair_mass2",
]

_R2 = 1.0 / math.sqrt(2.0)


def _check4(x: Tensor, name: str) -> Tensor:
    x = torch.as_tensor(x)
    if x.ndim < 1 or x.shape[-1] != 4:
        raise ValueError(f"{name} must have shape (..., 4) (E, px, py, pz); got {tuple(x.shape)}")
    return x


def _complex_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype.is_complex:
        return dtype
    return torch.complex64 if dtype in (torch.float32, torch.float16, torch.bfloat16) else torch.complex128


def to_irrep_matrix(dtype: torch.dtype = torch.complex128, device=None) -> Tensor:
    """The unitary ``4 x 4`` matrix ``conj(U)`` with ``to_irrep(p) == conj(U) @ p``."""
    m = torch.tensor(
        [[1, 0, 0, 0], [0, _R2, 1j * _R2, 0], [0, 0, 0, 1], [0, -_R2, 1j * _R2, 0]], dtype=torch.complex128
    )
    return m.to(dtype=dtype, device=device)


def to_irrep(p4: Tensor) -> Tensor:
    """Cartesian ``(..., 4)`` ``(E, px, py, pz)`` -> canonical ``(1, 1)`` components ``(..., 4)`` (complex).

    Real float64 input gives complex128 (float32 gives complex64). Complex input (complex combinations of
    4-vectors) is mapped by the same linear map.
    """
    p4 = _check4(p4, "p4")
    if not (p4.is_floating_point() or p4.is_complex()):
        p4 = p4.to(torch.get_default_dtype())
    c = p4.to(_complex_dtype(p4.dtype))
    e, px, py, pz = c.unbind(-1)
    ipy = 1j * py
    return torch.stack([e, (px + ipy) * _R2, pz, -(px - ipy) * _R2], -1)


def from_irrep(v: Tensor, real: bool = False) -> Tensor:
    """Inverse of :func:`to_irrep`: canonical ``(1, 1)`` components ``(..., 4)`` -> Cartesian ``(E, px, py,
    pz)``.

    Returns a complex tensor (``from_irrep(to_irrep(p))`` equals real ``p`` up to rounding, with imaginary
    parts of order ``eps * |p|``). With ``real=True`` the real part is returned (float64 for complex128
    input); use it when the components are known to come from a real 4-vector, e.g. an equivariant map of real
    inputs with real weights.
    """
    v = _check4(v, "v")
    if not v.is_complex():
        v = v.to(_complex_dtype(v.dtype if v.is_floating_point() else torch.get_default_dtype()))
    v0, v1, v2, v3 = v.unbind(-1)
    p = torch.stack([v0, (v1 - v3) * _R2, -1j * (v1 + v3) * _R2, v2], -1)
    return p.real if real else p


def minkowski_dot(p: Tensor, q: Tensor) -> Tensor:
    """``p0 q0 - p1 q1 - p2 q2 - p3 q3`` over the last axis (broadcasting; bilinear, no conjugation for
    complex).
    """
    p, q = _check4(p, "p"), _check4(q, "q")
    prod = p * q
    return prod[..., 0] - prod[..., 1] - prod[..., 2] - prod[..., 3]


def minkowski_norm2(p: Tensor) -> Tensor:
    """``m^2 = <p, p>`` (may be negative; not clamped)."""
    return minkowski_dot(p, p)


def mass(p: Tensor) -> Tensor:
    """``sqrt(max(m^2, 0))`` of real 4-vectors."""
    return torch.sqrt(torch.clamp(minkowski_norm2(p), min=0))


def _norm3(x: Tensor) -> Tensor:
    """``|x|`` over the last axis with a finite gradient at 0."""
    sq = (x * x).sum(-1)
    return torch.where(
        sq > 0, torch.sqrt(torch.clamp(sq, min=torch.finfo(x.dtype).tiny)), torch.zeros_like(sq)
    )


def _masses2(e: Tensor, pabs: Tensor, given, massless: bool) -> Tensor:
    """``m^2`` for :func:`stable_dot`: 0, the given value, or ``(E - |p|)(E + |p|)`` from the components."""
    if massless:
        return torch.zeros((), dtype=e.dtype, device=e.device)
    if given is not None:
        return torch.as_tensor(given, dtype=e.dtype, device=e.device)
    return (e - pabs) * (e + pabs)


def stable_dot(p: Tensor, q: Tensor, p_mass2=None, q_mass2=None, massless: bool = False) -> Tensor:
    """Minkowski product ``<p, q>`` of real physical 4-momenta, accurate for nearly collinear, nearly massless
    pairs.

    Uses the exact identity (``theta`` the angle between the 3-momenta, ``P = |p|``, ``Q = |q|``)

        <p, q> = (m_p^2 E_q^2 + m_q^2 P^2) / (E_p E_q + P Q)  +  P Q |p_hat - q_hat|^2 / 2,

    (``E_p E_q - P Q`` rewritten without cancellation, and ``1 - cos theta = |p_hat - q_hat|^2 / 2``). Neither
    term cancels, so the result is accurate to a few ulp *given* accurate masses and directions. The naive
    ``E_p E_q - p.q`` loses ``eps / theta^2`` relative accuracy for light-like pairs at small angle.

    Where the masses come from matters (the main precision knob):

    * ``massless=True`` or ``p_mass2=q_mass2=0``: exact for massless particles (jet constituents treated as
      massless): relative error O(eps) at any angle and any boost, as long as the 3-momenta are accurate.
    * ``p_mass2`` / ``q_mass2`` given (float or tensor broadcastable to ``p[..., 0]``): use the known masses.
    * default: ``m^2 = (E - |p|)(E + |p|)`` from the components (exactly 0 when ``E`` equals ``|p|`` as
      computed here). In general this ``m^2`` carries an absolute error of about ``eps E^2`` (the components
      alone do not define a tiny mass better), so a boosted massless particle gets back an
      ``eps / theta^2``-size error. Pass the masses when they are known.

    The identity needs ``E_p E_q >= 0`` (physical momenta); elsewhere the naive formula is used. Zero vectors
    (padding) give 0. Broadcasts like :func:`minkowski_dot`; ``stable_dot(p, p)`` returns ``m_p^2``.
    """
    p, q = _check4(p, "p"), _check4(q, "q")
    if p.is_complex() or q.is_complex():
        raise ValueError("stable_dot needs real 4-momenta; use minkowski_dot for complex vectors")
    dtype = torch.promote_types(p.dtype, q.dtype)
    p, q = p.to(dtype), q.to(dtype)
    ep, eq = p[..., 0], q[..., 0]
    pv, qv = p[..., 1:], q[..., 1:]
    pa, qa = _norm3(pv), _norm3(qv)
    mp2, mq2 = _masses2(ep, pa, p_mass2, massless), _masses2(eq, qa, q_mass2, massless)
    ph = pv / torch.where(pa > 0, pa, torch.ones_like(pa))[..., None]
    qh = qv / torch.where(qa > 0, qa, torch.ones_like(qa))[..., None]
    d = ph - qh
    angular = pa * qa * 0.5 * (d * d).sum(-1)
    den = ep * eq + pa * qa
    ok = (ep * eq >= 0) & (den > 0)
    radial = (mp2 * eq * eq + mq2 * pa * pa) / torch.where(ok, den, torch.ones_like(den))
    stable = torch.where(ok, radial, torch.zeros_like(radial)) + angular
    naive = ep * eq - (pv * qv).sum(-1)
    return torch.where(ok | (den == 0), stable, naive)


def pair_mass2(p: Tensor, q: Tensor, p_mass2=None, q_mass2=None, massless: bool = False) -> Tensor:
    """Invariant mass squared of the pair, ``(p + q)^2 = m_p^2 + m_q^2 + 2 <p, q>``, with :func:`stable_dot`.

    Masses as in :func:`stable_dot` (``massless=True``: ``2 <p, q>``).
    """
    dot = stable_dot(p, q, p_mass2=p_mass2, q_mass2=q_mass2, massless=massless)
    p, q = torch.as_tensor(p).to(dot.dtype), torch.as_tensor(q).to(dot.dtype)
    mp2 = _masses2(p[..., 0], _norm3(p[..., 1:]), p_mass2, massless)
    mq2 = _masses2(q[..., 0], _norm3(q[..., 1:]), q_mass2, massless)
    return mp2 + mq2 + 2 * dot
