"""Group elements of SO+(3,1): 4x4 Lorentz matrices, their SL(2,C) lifts and the matrices ``D^(k,n)``.

A group element is given by ``(angles, rapidity)``:

* ``angles`` ``(..., 3)``: ZYZ Euler angles ``(a, b, c)`` of the rotation ``R = Rz(a) @ Ry(b) @ Rz(c)``
  (active, right-hand rule: ``Rz(t)`` maps ``px -> px cos t - py sin t``);
* ``rapidity`` ``(..., 3)``: the vector ``eta * n`` of a pure boost with rapidity ``eta`` along the unit
  vector ``n`` (``E' = E cosh(eta) + p_n sinh(eta)``);

and the element is ``Lambda = B(rapidity) @ R(angles)`` acting on column 4-vectors ``(E, px, py, pz)``.
``None`` for either part means the identity. Leading batch dimensions of the two parts broadcast against each
other.

Its SL(2,C) lift is ``A = A_B @ A_R`` with ``A_R = exp(-i a s_z/2) exp(-i b s_y/2) exp(-i c s_z/2)`` and ``A_B
= exp(eta n.s/2)`` (``s`` the Pauli matrices, basis ``(up, down)``), so ``X = p^mu s_mu -> A X A^dagger``
(``s_0 = 1``) reproduces ``Lambda`` (``lorentz_from_sl2c``). The spin-``j`` matrices ``D^j(A) = exp(-i w.J)``
use the ascending-``m`` basis with Condon–Shortley phases, and (``lgae.md`` §3.3)

    D^(k,n)(A) = B_(k,n)^T [ D^(k/2)(A) (x) D^(n/2)(A^{-dagger}) ] B_(k,n).

This is an exact homomorphism of SL(2,C). For irreps with ``k + n`` odd (spinors) it is a representation of
the lift only: the sign depends on the Euler angles chosen (``a -> a + 2 pi`` flips it). For ``k + n`` even it
depends on ``Lambda`` alone. In the basis of :func:`lgae.so31.to_irrep`, ``rep_matrix((1,1), g) @ to_irrep(p)
== to_irrep(lorentz_matrix(g) @ p)``.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import cache

import torch
from torch import Tensor

from .clebsch import _basis_cached, _twice
from .irreps import Irrep

__all__ = [
    "rotation_matrix",
    "boost_matrix",
    "lorentz_matrix",
    "sl2c_matrix",
    "lorentz_from_sl2c",
    "spin_matrix",
    "rep_matrix",
    "rep_matrix_sl2c",
    "random_lorentz",
    "apply_lorentz",
]

_F64 = torch.float64
_C128 = torch.complex128


def _as_f64(x, name: str) -> Tensor:
    if isinstance(x, Tensor):
        if x.is_complex():
            raise ValueError(f"{name} must be real; got a complex tensor")
        return x.to(_F64)
    try:
        return torch.as_tensor(x, dtype=_F64)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{name} must be a real array of shape (..., 3); got {x!r} ({exc})") from None


def _params(angles, rapidity) -> tuple[Tensor | None, Tensor | None, torch.Size]:
    """Validate ``(angles, rapidity)``; return float64 tensors (or None) and the broadcast batch shape."""
    parts = {}
    for name, x in (("angles", angles), ("rapidity", rapidity)):
        if x is None:
            parts[name] = None
            continue
        x = _as_f64(x, name)
        if x.ndim == 0 or x.shape[-1] != 3:
            raise ValueError(f"{name} must have shape (..., 3); got {tuple(x.shape)}")
        parts[name] = x
    shapes = [x.shape[:-1] for x in parts.values() if x is not None]
    try:
        batch = torch.broadcast_shapes(*shapes) if shapes else torch.Size([])
    except RuntimeError:
        raise ValueError(
            f"batch shapes of angles {tuple(parts['angles'].shape)} and rapidity "
            f"{tuple(parts['rapidity'].shape)} do not broadcast; give both as (..., 3) with the same "
            "(or broadcastable) leading dimensions"
        ) from None
    if parts["angles"] is not None and parts["rapidity"] is not None:
        dev = {parts["angles"].device, parts["rapidity"].device}
        if len(dev) > 1:
            raise ValueError(f"angles and rapidity are on different devices: {sorted(map(str, dev))}")
    return parts["angles"], parts["rapidity"], batch


def _device(*xs) -> torch.device:
    for x in xs:
        if x is not None:
            return x.device
    return torch.device("cpu")


def _split_rapidity(w: Tensor) -> tuple[Tensor, Tensor]:
    """``(eta, n)`` with ``n`` a unit vector (zero where ``eta == 0``)."""
    eta = torch.linalg.vector_norm(w, dim=-1)
    safe = torch.where(eta > 0, eta, torch.ones_like(eta))
    n = torch.where((eta > 0)[..., None], w / safe[..., None], torch.zeros_like(w))
    return eta, n


# --------------------------------------------------------------------------------------------------------
# 4x4 matrices


def rotation_matrix(angles) -> Tensor:
    """``Rz(a) @ Ry(b) @ Rz(c)`` as ``(..., 3, 3)`` float64 from ZYZ Euler angles ``(..., 3)``."""
    angles, _, _ = _params(angles, None)
    if angles is None:
        raise ValueError("angles must be given")
    ca, cb, cc = torch.cos(angles).unbind(-1)
    sa, sb, sc = torch.sin(angles).unbind(-1)
    rows = [
        [ca * cb * cc - sa * sc, -ca * cb * sc - sa * cc, ca * sb],
        [sa * cb * cc + ca * sc, -sa * cb * sc + ca * cc, sa * sb],
        [-sb * cc, sb * sc, cb],
    ]
    return torch.stack([torch.stack(r, -1) for r in rows], -2)


def boost_matrix(rapidity) -> Tensor:
    """Pure boost ``(..., 4, 4)`` float64 from rapidity vectors ``(..., 3)``.

    ``[[cosh eta, sinh eta n^T], [sinh eta n, 1 + (cosh eta - 1) n n^T]]`` with ``cosh eta - 1`` evaluated as
    ``2 sinh(eta/2)^2`` (no cancellation for small ``eta``); ``eta = 0`` gives the identity exactly.
    """
    _, w, _ = _params(None, rapidity)
    if w is None:
        raise ValueError("rapidity must be given")
    eta, n = _split_rapidity(w)
    ch, sh = torch.cosh(eta), torch.sinh(eta)
    chm1 = 2.0 * torch.sinh(eta / 2) ** 2
    out = torch.zeros(*w.shape[:-1], 4, 4, dtype=_F64, device=w.device)
    out[..., 0, 0] = ch
    out[..., 0, 1:] = sh[..., None] * n
    out[..., 1:, 0] = sh[..., None] * n
    out[..., 1:, 1:] = (
        torch.eye(3, dtype=_F64, device=w.device) + chm1[..., None, None] * n[..., :, None] * n[..., None, :]
    )
    return out


def lorentz_matrix(angles=None, rapidity=None, dtype: torch.dtype = torch.float64) -> Tensor:
    """``Lambda = B(rapidity) @ R(angles)`` as ``(..., 4, 4)``, acting on column 4-vectors ``(E, px, py,
    pz)``.

    Parameters
    ----------
    angles : array-like ``(..., 3)`` or None
        ZYZ Euler angles of the rotation (None: no rotation).
    rapidity : array-like ``(..., 3)`` or None
        Boost axis times rapidity (None: no boost).
    dtype : torch.dtype
        Output dtype; the matrix is always built in float64 and cast at the end.
    """
    angles, rapidity, batch = _params(angles, rapidity)
    dev = _device(angles, rapidity)
    out = torch.eye(4, dtype=_F64, device=dev).expand(*batch, 4, 4).clone()
    if angles is not None:
        out[..., 1:, 1:] = rotation_matrix(angles).expand(*batch, 3, 3)
    if rapidity is not None:
        out = boost_matrix(rapidity) @ out
    return out.to(dtype)


# --------------------------------------------------------------------------------------------------------
# SL(2,C)


def sl2c_matrix(angles=None, rapidity=None) -> Tensor:
    """The SL(2,C) lift ``A = A_B @ A_R`` ``(..., 2, 2)`` complex128 of ``(angles, rapidity)`` (module
    docstring).

    ``A_B = cosh(eta/2) 1 + sinh(eta/2) n.sigma``; its small diagonal entry is obtained from ``det A_B = 1``
    rather than by subtraction, so every entry has a small relative error even at large rapidity.
    """
    angles, rapidity, batch = _params(angles, rapidity)
    dev = _device(angles, rapidity)
    out = torch.eye(2, dtype=_C128, device=dev).expand(*batch, 2, 2).clone()
    if angles is not None:
        a, b, c = angles.unbind(-1)
        cb, sb = torch.cos(b / 2), torch.sin(b / 2)
        ep = torch.polar(torch.ones_like(a), -(a + c) / 2)  # e^{-i(a+c)/2}
        em = torch.polar(torch.ones_like(a), -(a - c) / 2)  # e^{-i(a-c)/2}
        rot = torch.stack(
            [torch.stack([ep * cb, -em * sb], -1), torch.stack([em.conj() * sb, ep.conj() * cb], -1)], -2
        )
        out = rot.expand(*batch, 2, 2).clone()
    if rapidity is not None:
        eta, n = _split_rapidity(rapidity)
        ch, s = torch.cosh(eta / 2), torch.sinh(eta / 2)
        nx, ny, nz = n.unbind(-1)
        big = ch + s * nz.abs()  # >= 1
        small = (1 + s * s * (nx * nx + ny * ny)) / big  # = ch - s |nz| without cancellation
        up = torch.where(nz >= 0, big, small)
        down = torch.where(nz >= 0, small, big)
        off = torch.complex(s * nx, -s * ny)  # s (nx - i ny)
        boost = torch.stack(
            [torch.stack([up.to(_C128), off], -1), torch.stack([off.conj(), down.to(_C128)], -1)], -2
        )
        out = boost @ out
    return out


@cache
def _pauli_cpu() -> Tensor:
    s = torch.zeros(4, 2, 2, dtype=_C128)
    s[0] = torch.eye(2)
    s[1, 0, 1] = s[1, 1, 0] = 1
    s[2, 0, 1], s[2, 1, 0] = -1j, 1j
    s[3, 0, 0], s[3, 1, 1] = 1, -1
    return s


def lorentz_from_sl2c(A: Tensor) -> Tensor:
    """The 4x4 Lorentz matrix ``Lambda(A)^mu_nu = tr(sigma_mu A sigma_nu A^dagger) / 2`` (float64) of ``A
    (..., 2, 2)``.
    """
    A = torch.as_tensor(A).to(_C128)
    s = _pauli_cpu().to(A.device)
    lam = 0.5 * torch.einsum("mij,...jk,nkl,...il->...mn", s, A, s, A.conj())
    return lam.real


@cache
def _spin_terms(tj: int) -> tuple[Tensor, Tensor, Tensor]:
    """Polynomial form of ``D^j(A)``: flat output index, exponents of ``(a, b, c, d)`` and coefficient per
    term.
    """
    idx, exps, coefs = [], [], []
    f = math.factorial
    for i_out in range(tj + 1):  # j + m'
        for i_in in range(tj + 1):  # j + m
            p, q = i_in, tj - i_in  # (j + m, j - m)
            ratio = Fraction(f(i_out) * f(tj - i_out), f(p) * f(q))
            for r in range(p + 1):
                t = i_out - r
                if t < 0 or t > q:
                    continue
                idx.append(i_out * (tj + 1) + i_in)
                exps.append((r, t, p - r, q - t))  # powers of a, b, c, d
                coefs.append(math.comb(p, r) * math.comb(q, t) * math.sqrt(ratio))
    return (
        torch.tensor(idx, dtype=torch.long),
        torch.tensor(exps, dtype=torch.long).T.contiguous(),
        torch.tensor(coefs, dtype=_F64),
    )


def spin_matrix(j, A: Tensor) -> Tensor:
    """Holomorphic spin-``j`` matrix ``D^j(A)`` ``(..., 2j+1, 2j+1)`` complex128 of ``A (..., 2, 2)`` in
    SL(2,C).

    Ascending-``m`` basis, Condon–Shortley phases: ``D^j(exp(-i w.sigma/2)) = exp(-i w.J)``; for a rotation
    this is the Wigner matrix ``D^j_{m'm} = <j m'| exp(-i a Jz) exp(-i b Jy) exp(-i c Jz) |j m>``. Evaluated
    as the exact polynomial in the entries of ``A`` (symmetric tensor power), so it is valid for any complex
    ``A``.
    """
    tj = _twice(j, "j")
    A = torch.as_tensor(A).to(_C128)
    if A.shape[-2:] != (2, 2):
        raise ValueError(f"A must have shape (..., 2, 2); got {tuple(A.shape)}")
    if tj == 0:
        return torch.ones(*A.shape[:-2], 1, 1, dtype=_C128, device=A.device)
    idx, exps, coefs = (t.to(A.device) for t in _spin_terms(tj))
    entries = (A[..., 0, 0], A[..., 0, 1], A[..., 1, 0], A[..., 1, 1])  # a, b, c, d
    vals = coefs.to(_C128)
    for x, e in zip(entries, exps):
        powers = [torch.ones_like(x), x]
        for _ in range(tj - 1):
            powers.append(powers[-1] * x)
        vals = vals * torch.stack(powers, -1)[..., e]
    out = torch.zeros(*A.shape[:-2], (tj + 1) ** 2, dtype=_C128, device=A.device)
    out.index_add_(-1, idx, vals)
    return out.reshape(*A.shape[:-2], tj + 1, tj + 1)


def _inv_dagger(A: Tensor) -> Tensor:
    """``A^{-dagger}`` for ``det A = 1``: ``[[conj d, -conj c], [-conj b, conj a]]``."""
    a, b, c, d = A[..., 0, 0], A[..., 0, 1], A[..., 1, 0], A[..., 1, 1]
    return torch.stack([torch.stack([d.conj(), -c.conj()], -1), torch.stack([-b.conj(), a.conj()], -1)], -2)


def rep_matrix_sl2c(irrep, A: Tensor, dtype: torch.dtype = torch.complex128) -> Tensor:
    """``D^(k,n)(A)`` ``(..., dim, dim)`` for ``A (..., 2, 2)`` in SL(2,C) (``det A = 1`` is assumed, not
    checked).

    ``B^T [D^(k/2)(A) (x) D^(n/2)(A^{-dagger})] B`` in the canonical basis (``lgae.md`` §3.3).
    """
    r = Irrep(irrep)
    A = torch.as_tensor(A).to(_C128)
    dk = spin_matrix(Fraction(r.k, 2), A)
    dn = spin_matrix(Fraction(r.n, 2), _inv_dagger(A))
    batch = A.shape[:-2]
    kron = (dk[..., :, None, :, None] * dn[..., None, :, None, :]).reshape(*batch, r.dim, r.dim)
    B = _basis_cached(r.k, r.n).to(device=A.device, dtype=_C128)
    return (B.T @ kron @ B).to(dtype)


def rep_matrix(irrep, angles=None, rapidity=None, dtype: torch.dtype = torch.complex128) -> Tensor:
    """``D^(k,n)`` ``(..., dim, dim)`` of the group element ``Lambda = B(rapidity) @ R(angles)``.

    Built in complex128 from the SL(2,C) lift (:func:`sl2c_matrix`) and cast to ``dtype`` at the end.
    ``rep_matrix(Irrep(1, 1), a, w) @ to_irrep(p) == to_irrep(lorentz_matrix(a, w) @ p)``.
    """
    return rep_matrix_sl2c(irrep, sl2c_matrix(angles, rapidity), dtype=dtype)


# --------------------------------------------------------------------------------------------------------
# random elements and application


def random_lorentz(
    shape=(),
    max_rapidity: float = 1.0,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    rotate: bool = True,
    boost: bool = True,
    device=None,
) -> tuple[Tensor, Tensor]:
    """Random group elements ``(angles, rapidity)``, each ``(*shape, 3)`` float64.

    The rotation is Haar-uniform (``a, c`` uniform in ``[0, 2 pi)``, ``cos b`` uniform in ``[-1, 1]``); the
    boost axis is uniform on the sphere and the rapidity *norm* is uniform in ``[0, max_rapidity]``.
    ``rotate=False`` / ``boost=False`` give zero angles / zero rapidity. Randomness comes from ``generator``
    if given, else from a fresh generator seeded with ``seed``, else from torch's global RNG.
    """
    if isinstance(shape, int):
        shape = (shape,)
    shape = tuple(shape)
    if not (isinstance(max_rapidity, int | float) and math.isfinite(max_rapidity) and max_rapidity >= 0):
        raise ValueError(f"max_rapidity must be a finite number >= 0; got {max_rapidity!r}")
    if generator is None and seed is not None:
        generator = torch.Generator().manual_seed(int(seed))
    u = torch.rand(*shape, 6, dtype=_F64, generator=generator)
    nrm = torch.randn(*shape, 3, dtype=_F64, generator=generator)
    angles = torch.stack(
        [2 * math.pi * u[..., 0], torch.acos(2 * u[..., 1] - 1), 2 * math.pi * u[..., 2]], -1
    )
    direction = nrm / torch.linalg.vector_norm(nrm, dim=-1, keepdim=True).clamp_min(1e-300)
    rapidity = direction * (max_rapidity * u[..., 3:4])
    if not rotate:
        angles = torch.zeros_like(angles)
    if not boost:
        rapidity = torch.zeros_like(rapidity)
    return angles.to(device), rapidity.to(device)


def apply_lorentz(L: Tensor, p4: Tensor) -> Tensor:
    """``L @ p4`` for 4-vectors ``p4 (..., 4)`` and matrices ``L (..., 4, 4)``.

    Batch dimensions broadcast with the usual right-aligned rule, so one matrix per jet for ``p4 (B, N, 4)``
    is ``L[:, None]`` with ``L (B, 4, 4)``. Computed in the promoted dtype of ``L`` and ``p4`` (float64 if
    either is).
    """
    L, p4 = torch.as_tensor(L), torch.as_tensor(p4)
    if L.ndim < 2 or L.shape[-2:] != (4, 4):
        raise ValueError(f"L must have shape (..., 4, 4); got {tuple(L.shape)}")
    if p4.ndim < 1 or p4.shape[-1] != 4:
        raise ValueError(f"p4 must have shape (..., 4); got {tuple(p4.shape)}")
    try:
        torch.broadcast_shapes(L.shape[:-2], p4.shape[:-1])
    except RuntimeError:
        raise ValueError(
            f"batch shapes of L {tuple(L.shape)} and p4 {tuple(p4.shape)} do not broadcast (right-aligned); "
            "for one matrix per jet use L[:, None]"
        ) from None
    dtype = torch.promote_types(L.dtype, p4.dtype)
    return (L.to(dtype) @ p4.to(dtype)[..., None])[..., 0]
