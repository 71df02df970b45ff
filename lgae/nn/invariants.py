"""Lorentz invariants of jets computed stably, and the canonical (jet rest) frame built from them.

Why a frame. An equivariant network evaluated on boosted Cartesian components loses precision: the Minkowski
product of two jet-like vectors computed from components of size ``gamma * E`` carries an absolute error
``eps * gamma^2 E^2`` against a value ``~ m^2``, i.e. a relative error ``eps * gamma^2`` (``~1e-6`` for a 1
TeV jet boosted by rapidity 10). The LGAE therefore

1. computes the Gram matrix ``P_ij = <p_i, p_j>`` of the input momenta with :func:`lgae.so31.stable_dot`
   (accurate to a few ulp for nearly collinear, nearly massless pairs);
2. builds from it an orthonormal, proper, orthochronous tetrad ``e_a = sum_k T_ak p_k`` whose coefficients
   ``T`` are Lorentz *invariants* (``e_0`` = the jet direction ``P_jet / M``, ``e_1..e_3`` by pivoted
   Minkowski Gram–Schmidt on the constituents), so the components ``x_i^a = eta_aa <p_i, e_a>`` of every
   constituent in that frame are invariants computed from ``P`` alone (no boosted component enters);
3. runs the equivariant network on ``x`` (the jet at rest, components ``O(M)``) and maps its 4-vector outputs
   ``y`` back with ``y^a e_a``.

Since the network is Lorentz-equivariant, ``F^-1 g(F p) = g(p)`` for *any* proper orthochronous frame ``F``:
the frame is a numerical device, not a modelling choice, and it leaks no information around the autoencoder's
bottleneck. Its discrete choices (pivots, the fall-back completions for jets whose momenta span fewer than
four dimensions) are therefore harmless: they change the result only at the rounding level.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .losses import pairwise_sq_dist

__all__ = ["gram_matrix", "particle_mass2", "CanonicalFrame", "canonical_frame", "psi"]

_ETA = (1.0, -1.0, -1.0, -1.0)


def psi(z: Tensor) -> Tensor:
    """LorentzNet's squashing ``psi(z) = sign(z) log(1 + |z|)``; for complex ``z`` the modulus is squashed and
    the phase kept (``z log(1 + |z|) / |z|``). An invariant map of scalars, so it keeps equivariance."""
    if z.is_complex():
        a = z.abs()
        return z * (torch.log1p(a) / torch.where(a > 0, a, torch.ones_like(a)))
    if torch.jit.is_tracing():  # ONNX has no copysign
        return torch.sign(z) * torch.log1p(z.abs())
    # copysign(log1p|z|, z) == sign(z) log1p|z| (same values and gradient, z = 0 included), one kernel fewer
    return torch.copysign(torch.log1p(z.abs()), z)


def _norm3(x: Tensor) -> Tensor:
    sq = x * x
    # two additions of strided slices: a reduction over a last axis of 3 runs ~10x slower on CPU
    return torch.sqrt(sq[..., 0] + sq[..., 1] + sq[..., 2])


def particle_mass2(
    p4: Tensor,
    massless: bool = False,
    snap_ulps: float = 8.0,
    eps: float | None = None,
    mass_resolution: float = 1e-6,
) -> Tensor:
    """``m^2 = (E - |p|)(E + |p|)`` of each 4-momentum ``(..., 4)``, without the cancellation of ``E^2 -
    |p|^2``.

    Particles whose mass is not resolved are made exactly massless: ``m^2 = 0`` when ``|E - |p|| <=
    max(snap_ulps * eps, mass_resolution^2 / 2) * E``, i.e. below the rounding noise of components stored with
    machine epsilon ``eps`` (default: that of ``p4``'s dtype), or ``m / E < mass_resolution``. A massless
    particle then stays exactly massless under any frame change; otherwise a boost's rounding gives it a mass
    noise ``~ eps E^2`` (tens of ulps after a rapidity-10 boost) that costs ``eps / theta^2`` relative
    accuracy in its products with collinear partners. The default resolution (``m/E < 1e-6``, e.g. 1 MeV at 1
    TeV) is far below any hadron's ``m/E`` at collider energies. ``massless=True`` returns zeros.
    """
    if massless:
        return torch.zeros_like(p4[..., 0])
    e = p4[..., 0]
    pa = _norm3(p4[..., 1:])
    d = e - pa
    eps = torch.finfo(p4.dtype).eps if eps is None else eps
    tol = max(snap_ulps * eps, 0.5 * mass_resolution**2)
    d = torch.where(d.abs() <= tol * e.abs(), torch.zeros_like(d), d)
    return d * (e + pa)


def gram_matrix(
    p4: Tensor,
    mask: Tensor | None = None,
    massless: bool = False,
    eps: float | None = None,
    mass_resolution: float = 1e-6,
) -> tuple[Tensor, Tensor]:
    """Minkowski Gram matrix ``P_ij = <p_i, p_j>`` ``(B, N, N)`` and masses ``m_i^2`` ``(B, N)``, stably.

    The identity of :func:`lgae.so31.stable_dot` (``E_i E_j - |p_i||p_j|`` rewritten through the masses, and
    ``1 - cos theta = |n_i - n_j|^2 / 2`` from unit-vector differences), batched over all pairs: per-particle
    quantities are computed once, the squared direction differences feature by feature
    (:func:`lgae.nn.losses.pairwise_sq_dist`, exactly symmetric) and the radial term by two rank-2 outer
    products, so nothing of size ``(B, N, N, 3)`` is materialised. Agrees with ``stable_dot`` to a few ulp
    (tested). The diagonal is ``m_i^2``; padded particles (``mask`` False) give
    zero rows and columns. Inputs are physical momenta (``E >= 0``). ``massless``, ``eps`` (the precision the
    momenta were stored in) and ``mass_resolution`` as in :func:`particle_mass2`.
    """
    if p4.dim() != 3 or p4.shape[-1] != 4:
        raise ValueError(f"gram_matrix expects (B, N, 4); got {tuple(p4.shape)}")
    m2 = particle_mass2(p4, massless=massless, eps=eps, mass_resolution=mass_resolution)
    if mask is not None:
        m = mask.to(p4.dtype)
        p4, m2 = p4 * m[..., None], m2 * m
    e = p4[..., 0]
    pa = _norm3(p4[..., 1:])
    unit = p4[..., 1:] / torch.where(pa > 0, pa, torch.ones_like(pa))[..., None]
    half = 0.5 * pa  # scaling by 1/2 is exact: the same values as 0.5 * |n_i - n_j|^2 * |p_i||p_j|
    P = pairwise_sq_dist(unit, unit) * (half[:, :, None] * pa[:, None, :])
    # (compiled code takes this path always: exact for massless inputs too, the added term then being 0 and P
    # symmetric, and no data-dependent graph break)
    if torch.compiler.is_compiling() or bool((m2 != 0).any()):
        # rank-2 outer products; the factors stacked along dim 1 (a last-axis stack of pairs is slow on CPU)
        num = torch.stack([m2, pa * pa], 1).transpose(1, 2) @ torch.stack([e * e, m2], 1)  # m_i^2 E_j^2 + ...
        ep = torch.stack([e, pa], 1)
        den = ep.transpose(1, 2) @ ep  # E_i E_j + |p_i||p_j|
        P = P + num / torch.where(den > 0, den, torch.ones_like(den))
        P = 0.5 * (P + P.transpose(1, 2))
    n = P.shape[-1]
    eye = torch.eye(n, dtype=torch.bool, device=P.device)
    # padded rows and columns are already zero: their momenta and masses were zeroed above
    return torch.where(eye, m2[:, :, None].expand_as(P), P), m2


def _det_sign(A: Tensor) -> Tensor:
    """``-1`` where ``det(A) < 0``, else ``+1`` (also for singular or NaN ``A``), for a batch ``(B, n, n)``.

    The sign of the determinant from Gaussian elimination with partial pivoting (what LAPACK's LU does),
    unrolled over the ``n - 1`` elimination steps with gathers and masks, so that it traces and exports to
    ONNX (``torch.linalg.det`` becomes ONNX's ``Det``, which onnxruntime lacks in float64). Backward stable:
    for a Lorentz frame with entries ``~gamma`` the computed ``|det| = 1`` carries an error ``~n^2 eps
    gamma^2`` (``~1e-7`` at rapidity 10 in float64), far from flipping the sign, where a cofactor expansion
    (terms ``~gamma^4``) errs by ``~0.2`` at rapidity 10 and flips signs beyond.
    """
    if not (torch.jit.is_tracing() or torch.jit.is_scripting()):
        # eager: LAPACK's LU (getrf, the same partial pivoting) in one call instead of ~70 small ops; NaN
        # determinants compare False, so they give +1 as below
        one = torch.ones((), dtype=A.dtype, device=A.device)
        return torch.where(torch.linalg.det(A) < 0, -one, one)
    return _det_sign_unrolled(A)


def _det_sign_unrolled(A: Tensor) -> Tensor:
    """:func:`_det_sign` by elimination unrolled into traceable tensor operations (tracing and export)."""
    B, n, _ = A.shape
    neg = torch.zeros(B, dtype=torch.bool, device=A.device)  # odd number of sign changes so far
    zero = torch.zeros(B, dtype=torch.bool, device=A.device)
    for k in range(n):
        m = n - k
        if m > 1:
            piv = A[:, :, 0].abs().argmax(1)  # (B,)
            rows = torch.arange(m, device=A.device)
            row_p = A.gather(1, piv[:, None, None].expand(B, 1, m))  # (B, 1, m)
            # swap rows 0 and piv (a transposition when piv != 0)
            A = torch.where((rows == piv[:, None])[..., None], A[:, :1], A)
            A = torch.cat([row_p, A[:, 1:]], 1)
            neg = neg ^ (piv != 0)
        d = A[:, 0, 0]
        neg = neg ^ (d < 0)
        zero = zero | (d == 0)
        if m > 1:
            d = torch.where(d == 0, torch.ones_like(d), d)
            A = A[:, 1:, 1:] - (A[:, 1:, :1] / d[:, None, None]) * A[:, :1, 1:]
    flip = neg & ~zero
    one = torch.ones(B, dtype=A.dtype, device=A.device)
    return torch.where(flip, -one, one)


class CanonicalFrame:
    """A per-jet Lorentz frame (the jet rest frame with pivoted axes), see the module docstring.

    Attributes
    ----------
    x : Tensor
        ``(B, N, 4)`` components of the inputs in the frame (padded slots 0).
    vectors : Tensor
        ``(B, 4, 4)``: row ``a`` is the frame vector ``e_a`` in the input's (lab) components.
    gram : Tensor
        ``(B, N, N)`` the stable Gram matrix of the inputs; ``m2`` ``(B, N)`` their masses squared.
    scale : Tensor
        ``(B,)`` the jet mass, or the jet energy (at least the smallest positive float) for jets with no rest
        frame (e.g. one massless constituent): the frame's natural unit.
    """

    def __init__(self, x: Tensor, vectors: Tensor, gram: Tensor, m2: Tensor, scale: Tensor):
        self.x, self.vectors, self.gram, self.m2, self.scale = x, vectors, gram, m2, scale

    def to_lab(self, y: Tensor) -> Tensor:
        """Frame components ``(B, ..., 4)`` (real or complex) -> lab components ``y^a e_a``."""
        e = self.vectors.to(y.real.dtype if y.is_complex() else y.dtype)
        if y.is_complex():
            e = e.to(y.dtype)
        shape = y.shape
        yb = y.reshape(shape[0], -1, 4)
        return (yb @ e).reshape(shape)

    def to_frame(self, p: Tensor) -> Tensor:
        """Lab components ``(B, ..., 4)`` -> frame components ``eta_aa <p, e_a>`` (naive products: for vectors
        that are not among the inputs; inputs are already in :attr:`x`)."""
        e = self.vectors.to(p.dtype)
        shape = p.shape
        pb = p.reshape(shape[0], -1, 4)
        eta = torch.tensor(_ETA, dtype=p.dtype, device=p.device)
        return ((pb * eta) @ e.transpose(-1, -2) * eta).reshape(shape)


@torch.no_grad()
def canonical_frame(
    p4: Tensor,
    mask: Tensor,
    massless: bool = False,
    rel_tol: float = 1e-5,
    gram: tuple | None = None,
    eps: float | None = None,
    mass_resolution: float = 1e-6,
) -> CanonicalFrame:
    """Build the :class:`CanonicalFrame` of each jet (float64 inside; the caller casts ``x`` to its dtype).

    Parameters
    ----------
    p4 : Tensor
        ``(B, N, 4)`` lab 4-momenta.
    mask : Tensor
        ``(B, N)`` bool, True = real particle.
    massless : bool
        Treat the inputs as exactly massless (only correct for massless inputs).
    rel_tol : float
        A constituent becomes a frame pivot only if its momentum outside the span of the previous frame
        vectors exceeds ``rel_tol * M`` (``M`` the jet mass); otherwise the tetrad is completed with lab axes.
    gram : (P, m2), optional
        A precomputed :func:`gram_matrix` (float64).
    eps, mass_resolution : float, optional
        Machine epsilon of the precision ``p4`` was stored in (default: its dtype's) and the mass resolution,
        see :func:`particle_mass2`.
    """
    dt = torch.float64
    eps = torch.finfo(p4.dtype).eps if eps is None else eps
    p = p4.to(dt)
    mask = mask.bool()
    B, N, _ = p.shape
    if gram is None:
        P, m2 = gram_matrix(p, mask, massless=massless, eps=eps, mass_resolution=mass_resolution)
    else:
        P, m2 = (t.to(dt) for t in gram)
    fm = mask.to(dt)
    dev = p.device
    eta = torch.tensor(_ETA, dtype=dt, device=dev)
    # Built from gathers, masks and concatenations, without in-place or advanced-index writes, so that it
    # traces and exports to ONNX (same values as writing into preallocated tensors). Per-frame-vector rows
    # (B, N+4) are stacked along dim 1: a last-axis stack of small rows costs ~10x more.
    # candidates: the N inputs, then the 4 lab axes; extended Gram Q (B, N+4, N+4), symmetric
    pa = p * eta * fm[..., None]  # <p_i, axis_mu> = eta_mu p_i^mu
    Q = torch.cat(
        [torch.cat([P, pa], 2), torch.cat([pa.transpose(1, 2), torch.diag(eta).expand(B, 4, 4)], 2)], 1
    )
    cand_idx = torch.arange(N + 4, device=dev)
    is_axis = cand_idx >= N

    # e0: the jet direction (invariant), or the lab time axis for jets with no rest frame
    M2 = P.sum((1, 2))
    Etot = (p[..., 0] * fm).sum(1)
    ok0 = M2 > (1e-12 * Etot) ** 2
    M = torch.sqrt(torch.where(ok0, M2, torch.ones_like(M2)))
    c0 = torch.cat(
        [
            torch.where(ok0[:, None], fm / M[:, None], torch.zeros_like(fm)),
            torch.where(ok0, torch.zeros_like(M), torch.ones_like(M))[:, None],
            torch.zeros(B, 3, dtype=dt, device=dev),
        ],
        1,
    )
    # frame components of every candidate along e0 (eta_00 = +1): <c_i, P_jet> / M, or <c_i, axis_0>
    x0 = torch.where(ok0[:, None], Q[:, :, :N].sum(-1) / M[:, None], Q[:, :, N])
    cs, xs = [c0], [x0]  # coefficients over the candidates and candidate components, (B, N+4) per vector
    scale = torch.where(ok0, M, Etot.clamp_min(torch.finfo(dt).tiny))
    ok_cand = torch.cat([mask, torch.ones(B, 4, dtype=torch.bool, device=dev)], 1)
    norm2 = torch.cat([P.flatten(1)[:, :: N + 1], eta.expand(B, 4)], 1)  # <c, c> of each candidate: diag(Q)
    # spatial residual of each candidate outside span(e_0..e_{a-1}): |w|^2 = sum_b eta_b x_b^2 - <c, c> >= 0
    res = x0 * x0 - norm2

    not_data = ~(ok_cand & ~is_axis)  # candidates that cannot be data pivots / lab-axis pivots
    not_axis = ~(ok_cand & is_axis)
    min_res = (rel_tol * scale) ** 2
    for a in (1, 2, 3):
        best_data, i_data = res.masked_fill(not_data, -1.0).max(1)
        _, i_axis = res.masked_fill(not_axis, -1.0).max(1)
        use_data = best_data > min_res
        piv = torch.where(use_data, i_data, i_axis)[:, None]  # (B, 1)
        r = torch.sqrt(res.gather(1, piv).clamp_min(torch.finfo(dt).tiny))  # (B, 1)
        # w = candidate_piv - sum_{b<a} x_piv^b e_b ; e_a = w / r
        X = torch.stack(xs, 1)  # (B, a, N+4)
        x_piv = X.gather(2, piv[:, None].expand(B, a, 1))  # (B, a, 1)
        ca = -(x_piv * torch.stack(cs, 1)).sum(1)
        cs.append(torch.where(cand_idx == piv, ca + 1.0, ca) / r)
        # components along e_a (eta_aa = -1): -<c_i, w> / r, where <c_i, w> = Q_i,piv - sum_b x_piv^b
        # <c_i, e_b> and <c_i, e_b> = eta_b x_b: no product with Q (symmetric: its row piv is its column)
        q_piv = Q.gather(1, piv[:, :, None].expand(B, 1, N + 4))[:, 0]
        xa = ((x_piv * eta[:a, None]) * X).sum(1).sub(q_piv).div(r)
        xs.append(xa)
        res = res - xa * xa

    C = torch.stack(cs, 1)  # (B, 4, N+4)
    cand = torch.cat([p * fm[..., None], torch.eye(4, dtype=dt, device=dev).expand(B, 4, 4)], 1)
    vectors = C @ cand  # (B, 4, 4) rows e_a in lab components
    # proper frame: det(vectors) = +1 (the sign of an LU determinant: robust up to huge boosts)
    sgn = _det_sign(vectors)
    vectors = torch.cat([vectors[:, :3], vectors[:, 3:] * sgn[:, None, None]], 1)
    X = torch.stack(xs[:3] + [xs[3] * sgn[:, None]], 1)[:, :, :N]  # (B, 4, N)
    x = (X * fm[:, None]).transpose(1, 2).contiguous()
    return CanonicalFrame(x, vectors, P, m2, scale)
