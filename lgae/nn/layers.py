"""Equivariant building blocks of the LGAE: radial (Lorentzian-bell) edge functions, scalar MLPs and the
Lorentz message-passing level with a general Clebsch–Gordan path and a closed-form maxdim-2 fast path.

Feature formats
---------------
* **general**: dict ``{Irrep: (B, N, tau, dim)}`` complex canonical components (:mod:`lgae.nn.cg`);
* **fast** (``maxdim = 2`` only): a pair ``(s, v)`` with scalars ``s (tau, B, N)`` and Cartesian 4-vectors ``v
  (tau, 4, B, N)``, channel-major (every mix and radial filter is then one large matrix product) and
  component-major (broadcasts and Minkowski products run along contiguous particle rows), real (real
  weights) or complex (complex weights).
:func:`fast_to_general` / :func:`general_to_fast` convert between them.

Weights. Mixing weights, radial filters and MLPs are real by default (``complex_weights=False``); then every
feature of a maxdim-2 network is real and the fast path runs in real arithmetic. ``complex_weights=True``
gives LGN's complex mixing (weights stored as real ``(2, ...)`` pairs, so parameter counts are in real
numbers, a complex weight counting 2). The scalar MLPs act on ``(Re s, Im s)`` when scalars can be complex
(complex weights, or ``maxdim > 2`` where products of ``(2,0)``/``(0,2)`` features give complex invariants)
and on ``Re s`` otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from lgae.so31 import Irrep, from_irrep, to_irrep

from .cg import SCALAR, VECTOR, CGProduct, irreps_upto
from .invariants import psi

__all__ = [
    "MLP",
    "RadialBasis",
    "EdgeData",
    "LMPLevel",
    "EquivariantLinear",
    "fast_to_general",
    "general_to_fast",
    "metric_diagonal",
    "minkowski",
    "minkowski_axis",
    "shared_radial_filters",
]

_ETA = (1.0, -1.0, -1.0, -1.0)


_ETA_CACHE: dict = {}


def metric_diagonal(dtype: torch.dtype, device) -> Tensor:
    """The metric diagonal as a tensor, made once per dtype and device (a normal tensor even when first
    asked for under ``inference_mode``, so that training can save it for backward)."""
    key = (dtype, torch.device(device))
    eta = _ETA_CACHE.get(key)
    if eta is None:
        with torch.inference_mode(False):
            eta = torch.tensor(_ETA, dtype=dtype, device=device)
        _ETA_CACHE[key] = eta
    return eta


def minkowski(x: Tensor, y: Tensor) -> Tensor:
    """Bilinear Minkowski product over the last axis (no conjugation for complex inputs).

    Computed as ``(x * y) @ eta``: two kernels instead of a product and three strided subtractions (a
    matrix-vector product on the 2-d view: ``matmul`` of the broadcast shape would copy its operand)."""
    p = x * y
    eta = metric_diagonal(p.dtype, p.device)
    if p.is_contiguous():
        return torch.mv(p.view(-1, 4), eta).view(p.shape[:-1])
    return (p * eta).sum(-1)  # strided (broadcast) product: no copy


def minkowski_axis(x: Tensor, y: Tensor, dim: int) -> Tensor:
    """Bilinear Minkowski product over the axis ``dim`` (of size 4) of broadcastable ``x`` and ``y``.

    For component-major features: the reduction over a leading axis runs along the contiguous inner axes
    (a last axis of 4 makes every broadcast and reduction an inner loop of 4, several times slower)."""
    p = x * y
    return p.select(dim, 0) - p.narrow(dim, 1, 3).sum(dim)


def _as(x: Tensor, dtype: torch.dtype) -> Tensor:
    """``x.to(dtype)``, without a tensor call when it is one already."""
    return x if x.dtype == dtype else x.to(dtype)


def _scaled(x: Tensor, k: float) -> Tensor:
    """``k * x``, without a tensor call for ``k = 1`` (CG constants)."""
    return x if k == 1.0 else x * k


def _positions_cm(edge: EdgeData) -> Tensor:
    """The edge positions component-major ``(4, B, N)`` (``edge.pos_cm`` when the caller made it once)."""
    return edge.pos_cm if edge.pos_cm is not None else edge.pos.permute(2, 0, 1)


def fast_to_general(s: Tensor, v: Tensor) -> dict:
    """Fast-format ``s (tau, B, N)``, ``v (tau, 4, B, N)`` -> ``{(0,0): (B, N, tau, 1), (1,1): (B, N, tau,
    4)}`` canonical components (complex)."""
    sc = s if s.is_complex() else s.to(torch.complex128 if s.dtype == torch.float64 else torch.complex64)
    return {SCALAR: sc.permute(1, 2, 0)[..., None], VECTOR: to_irrep(v.permute(2, 3, 0, 1))}


def general_to_fast(feats: dict, real: bool) -> tuple[Tensor, Tensor]:
    """Inverse of :func:`fast_to_general`; ``real=True`` drops the (zero up to rounding) imaginary parts."""
    s = feats[SCALAR][..., 0].permute(2, 0, 1)
    v = from_irrep(feats[VECTOR]).permute(2, 3, 0, 1)
    if real:
        return s.real.contiguous(), v.real.contiguous()
    return s.contiguous(), v.contiguous()


class MLP(nn.Module):
    """``Linear(d_in, h) -> act -> [Linear(h, h) -> act] * (depth - 1) -> Linear(h, d_out)`` (LGN's
    ``CGMLP``)."""

    def __init__(
        self,
        d_in: int,
        d_hidden: int,
        d_out: int,
        depth: int,
        negative_slope: float = 0.01,
        zero_last: bool = False,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        d = d_in
        for _ in range(max(depth, 0)):
            layers += [nn.Linear(d, d_hidden), nn.LeakyReLU(negative_slope)]
            d = d_hidden
        last = nn.Linear(d, d_out)
        if zero_last:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        layers.append(last)
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def forward_cm(self, x: Tensor) -> Tensor:
        """Channel-major ``(d_in, ...)`` -> ``(d_out, ...)``: every layer one ``addmm``, no transposes."""
        shape = x.shape[1:]
        h = x.reshape(x.shape[0], -1)
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                h = torch.addmm(layer.bias[:, None], layer.weight, h)
            elif isinstance(layer, nn.LeakyReLU):  # in place on the fresh addmm output (autograd-safe)
                h = nn.functional.leaky_relu_(h, layer.negative_slope)
            else:
                h = layer(h)
        return h.view(h.shape[0], *shape)


class RadialBasis(nn.Module):
    """Lorentzian bells of invariant edge features: ``phi_k(u) = a_k + b_k / (1 + c_k^2 (u - mu_k)^2)``.

    Channel-first: ``u (F, ...)`` -> ``phi (F * dim_per_feature, ...)``. ``n_functions`` bells per feature
    (LGN: ``2 * num_basis_fn = 20``). ``centered=False`` is the reference form (``mu = 0``, learnable ``a, b,
    c ~ N(0, 1)``, a ``1e-16`` guard; ``lgae.md`` §4.4). ``centered=True`` spreads centres over ``[-span,
    span]`` with widths ``c = n / (2 span)``, ``a = 0, b = 1``: a Lorentzian radial-basis expansion, learnable
    with ``learnable=True`` (its offsets ``a_k`` put the constants in the span, so a bias-free linear map
    still has a per-channel bias).

    ``learnable=False`` (centered only) fixes the bells and appends the constant function (a bell with ``c =
    0``): ``n_functions + 1`` functions per feature, evaluated in place without autograd when ``u`` needs no
    gradient. The basis of the input invariants then costs no backward pass at all (most of the per-edge work
    of a training step); the levels' linear filters carry the learning, as with the fixed radial bases of
    SchNet or e3nn.
    """

    def __init__(
        self,
        n_features: int = 1,
        n_functions: int = 20,
        centered: bool = True,
        span: float = 4.0,
        learnable: bool = True,
    ):
        super().__init__()
        if not (centered or learnable):
            raise ValueError("a fixed radial basis must be centered")
        self.n_features, self.n_functions, self.centered = n_features, n_functions, centered
        self.learnable = learnable
        shape = (n_features, n_functions)
        if not learnable:
            zero = torch.zeros(n_features, 1)
            c = torch.cat([torch.full(shape, n_functions / (2.0 * span)), zero], 1)
            mu = torch.cat([torch.linspace(-span, span, n_functions).repeat(n_features, 1), zero], 1)
            self.register_buffer("c", c)
            self.register_buffer("mu", mu)
            self.width = n_functions / (2.0 * span)  # c of every bell (the buffer keeps checkpoints' layout)
            return
        if centered:
            self.a = nn.Parameter(torch.zeros(shape))
            self.b = nn.Parameter(torch.ones(shape))
            self.c = nn.Parameter(torch.full(shape, n_functions / (2.0 * span)))
            self.mu = nn.Parameter(torch.linspace(-span, span, n_functions).repeat(n_features, 1))
        else:
            self.a = nn.Parameter(torch.randn(shape))
            self.b = nn.Parameter(torch.randn(shape))
            self.c = nn.Parameter(torch.randn(shape))
            self.register_parameter("mu", None)

    @property
    def dim(self) -> int:
        return self.n_features * (self.n_functions + (0 if self.learnable else 1))

    def forward(self, u: Tensor) -> Tensor:
        shape = (self.n_features, -1) + (1,) * (u.dim() - 1)
        u = u[:, None]  # (F, 1, ...): the innermost axes stay contiguous
        if not self.learnable:
            if u.requires_grad or torch.jit.is_tracing():  # out of place (autograd; export drops view writes)
                z = (u - self.mu.view(shape)) * self.c.view(shape)
                return (1.0 / (1.0 + z * z)).flatten(0, 1)
            # without autograd, memory-bound: the bells written in three passes into the result, whose last
            # function per feature is the constant 1 (every fixed bell has the same width c)
            k = self.n_functions
            phi = u.new_empty((self.n_features, k + 1) + u.shape[2:])
            bells = phi[:, :k]
            torch.sub(u, self.mu[:, :k].view((self.n_features, k) + (1,) * (u.dim() - 2)), out=bells)
            one = torch.ones((), dtype=u.dtype, device=u.device)
            torch.addcmul(one, bells, bells, value=self.width**2, out=bells)
            bells.reciprocal_()
            phi[:, k].fill_(1.0)
            return phi.flatten(0, 1)
        a, b, c = self.a.view(shape), self.b.view(shape), self.c.view(shape)
        if self.centered:
            z = (u - self.mu.view(shape)) * c
            phi = torch.addcdiv(a, b, 1.0 + z * z)
        else:
            phi = a + b / (1.0 + c**2 * u * u + 1e-16)
        return phi.flatten(0, 1)


@dataclass
class EdgeData:
    """What a message-passing level needs about the edges ``(i, j)`` of a graph.

    Attributes
    ----------
    pos : Tensor
        ``(B, N, 4)`` Cartesian positions; the edge 4-vector is ``p_ij = pos_i - pos_j`` (real or complex).
    mask : Tensor
        ``(B, N, N)`` bool edge mask.
    u : Tensor, optional
        ``(F, B, N, N)`` real invariant edge features, for levels that own their radial basis.
    phi : Tensor, optional
        ``(K, B, N, N)`` a radial basis shared by the levels of an encoder/decoder (computed once: the edge
        invariants do not change between levels). Levels with ``radial="shared"`` multiply their filters by
        ``mask`` when it is given; with ``mask=None`` they only drop the self-edges ``i = j``, which is exact
        when the features of padded nodes are zero (as in the LGAE, whose levels zero them) and saves a pass
        over all edges.
    mask_before_linear : bool
        Reference quirk Q1 (own-basis levels): the mask multiplies the basis before the radial ``Linear``, so
        masked edges still carry its bias. Otherwise masked edges give exactly 0.
    constant : bool
        Radial filters independent of the edge (one learnable constant per channel): messages reduce to sums
        over neighbours, ``O(N)`` instead of ``O(N^2)``. Every pair of nodes is an edge (``mask`` unused).
    include_self : bool
        With ``constant``: the sums include ``j = i`` (the reference decoder, whose masked edges keep the
        bias).
    rho : Tensor, optional
        ``(n_filters, B, N, N)`` one level's radial filters already evaluated from ``phi`` (masked, divided by
        ``msg_norm``), see :func:`shared_radial_filters`.
    phi_self : Tensor, optional
        ``(K, B, N)`` the shared basis on the self-edges ``(i, i)`` (``phi``'s diagonal). Given with ``phi``
        and no ``mask``, the shared filters keep their self-edges and carry their values there in
        ``rho_self``; the fast path then subtracts the self-edge terms from its neighbour sums (a few
        ``O(N)`` operations instead of zeroing a strided diagonal of every filter).
    rho_self : Tensor, optional
        ``(n_filters, B, N)`` one level's filters on the self-edges, which ``rho`` then includes.
    pos_cm : Tensor, optional
        ``pos`` component-major and contiguous ``(4, B, N)``, made once for the fast path's levels.
    basis : RadialBasis, optional
        The shared basis as a function of ``u``, in place of ``phi``: :func:`shared_radial_filters` then
        evaluates it itself, in chunks of jets without autograd (see :func:`radial_filters_chunked`).
    """

    pos: Tensor
    mask: Tensor | None = None
    u: Tensor | None = None
    phi: Tensor | None = None
    mask_before_linear: bool = False
    constant: bool = False
    include_self: bool = False
    rho: Tensor | None = None
    phi_self: Tensor | None = None
    rho_self: Tensor | None = None
    pos_cm: Tensor | None = None
    basis: nn.Module | None = None


def _keeps_self_edges(edge: EdgeData) -> bool:
    """Shared filters of this edge set keep their self-edges (a shared basis with ``phi_self``, no mask)."""
    return edge.mask is None and edge.phi_self is not None


# edges per chunk of :func:`radial_filters_chunked`: a float32 basis chunk of ~2.7 MB, read back from cache
_CHUNK_EDGES = 1 << 15


def radial_filters_chunked(w: Tensor, basis: nn.Module, u: Tensor, chunk_edges: int | None = None) -> Tensor:
    """``w @ basis(u)`` ``(F, B, N, N)`` for edge invariants ``u (n_features, B, N, N)``, without autograd,
    evaluated in chunks of whole jets of about ``chunk_edges`` edges.

    The product is bound by memory traffic: made whole, the basis (``K x B x N x N``, ~19 MB for 256 jets
    of 30 particles in float32) goes out to memory and is read back; a chunk's basis is read back from cache
    right after it is written (measured ~30 % less time on one thread, the same on two). Same values as
    ``w @ basis(u)`` (each column is the same dot product).
    """
    B = u.shape[1]
    if chunk_edges is None:  # per intra-op thread
        chunk_edges = _CHUNK_EDGES * torch.get_num_threads()
    per_jet = u[0, 0].numel()
    step = max(1, chunk_edges // max(per_jet, 1))
    rho = w.new_empty((w.shape[0],) + tuple(u.shape[1:]))
    flat = rho.view(w.shape[0], -1)
    for b0 in range(0, B, step):
        b1 = min(B, b0 + step)
        phi = basis(u[:, b0:b1].to(w.dtype))
        torch.mm(w, phi.view(phi.shape[0], -1), out=flat[:, b0 * per_jet : b1 * per_jet])
    return rho


def _shared_basis(edge: EdgeData, dtype: torch.dtype) -> Tensor:
    """The shared basis of an edge set: ``edge.phi``, or ``edge.basis`` of ``edge.u``."""
    if edge.phi is not None:
        return edge.phi.to(dtype)
    if edge.basis is not None and edge.u is not None:
        return edge.basis(edge.u.to(dtype))
    raise ValueError("radial='shared' reads a shared radial basis: pass EdgeData(phi=...) or (basis=, u=)")


def _apply_filters(w: Tensor, bias: Tensor | None, phi: Tensor | None, edge: EdgeData) -> Tensor:
    """Radial filters ``w @ phi (+ bias)`` ``(F, B, N, N)`` of a basis ``phi (K, B, N, N)``, masked as
    ``edge`` says. ``phi=None``: ``edge.basis`` of ``edge.u``, in chunks (:func:`radial_filters_chunked`)
    when no gradient is needed, else whole (autograd needs it for ``w``'s gradient; the exporter drops the
    chunks' ``out=`` writes)."""
    grad = torch.is_grad_enabled() and w.requires_grad
    if phi is None and bias is None and not grad and not torch.jit.is_tracing():
        rho = radial_filters_chunked(w, edge.basis, edge.u)
    else:
        phi = _shared_basis(edge, w.dtype) if phi is None else phi
        flat = phi.reshape(phi.shape[0], -1)
        rho = w @ flat if bias is None else torch.addmm(bias[:, None], w, flat)
        rho = rho.view(-1, *phi.shape[1:])
    if _keeps_self_edges(edge):  # the consumer subtracts the self-edge terms
        return rho
    if edge.mask is None:  # shared basis, padded node features zero: drop the self-edges only
        if torch.jit.is_tracing():  # the ONNX exporter drops in-place writes through a diagonal view
            rho = rho.masked_fill(torch.eye(rho.shape[-1], dtype=torch.bool, device=rho.device), 0.0)
        else:
            rho.diagonal(dim1=-2, dim2=-1).zero_()
    elif not edge.mask_before_linear:
        rho = rho * edge.mask.to(rho.dtype)
    return rho


def shared_radial_filters(levels, edge: EdgeData) -> list[EdgeData]:
    """One :class:`EdgeData` per level with its radial filters filled in (``rho``), for levels that read
    the shared basis ``edge.phi`` (``radial="shared"``).

    The filters of all levels come from one matrix product with their stacked weights: the product is
    bound by reading ``phi`` (``K x B x N x N``), so one pass serves every level. The basis is ``edge.phi``,
    or ``edge.basis`` of ``edge.u`` evaluated here (in chunks of jets when no gradient is needed). Other
    levels (and edges without a basis) get ``edge`` unchanged.
    """
    shared = [lvl for lvl in levels if lvl.radial_kind == "shared"]
    has_basis = edge.phi is not None or (edge.basis is not None and edge.u is not None)
    if not has_basis or edge.constant or edge.rho is not None or not shared:
        return [edge] * len(levels)
    w = torch.cat([lvl.radial.weight / lvl.msg_norm for lvl in shared], 0)
    rho = _apply_filters(w, None, None if edge.phi is None else edge.phi.to(w.dtype), edge)
    rho_self = w @ edge.phi_self.to(w.dtype).flatten(1) if _keeps_self_edges(edge) else None
    out, start = [], 0
    for lvl in levels:
        if lvl.radial_kind != "shared":
            out.append(edge)
            continue
        n = lvl.radial.weight.shape[0]
        own_self = None if rho_self is None else rho_self[start : start + n].view(n, *rho.shape[1:-1])
        out.append(replace(edge, rho=rho[start : start + n], rho_self=own_self))
        start += n
    return out


class EquivariantLinear(nn.Module):
    """Per-irrep channel mixing ``out[r] = W_r @ in[r]`` (no bias, real or complex weights).

    ``tau_in`` / ``tau_out``: dict ``{Irrep: int}`` (irreps missing from ``tau_out`` are dropped). Works on
    both feature formats via :meth:`mix` (a single irrep's ``(..., tau_in, d)`` tensor).
    """

    def __init__(
        self, tau_in: dict, tau_out: dict, complex_weights: bool = False, init_scale: dict | None = None
    ):
        super().__init__()
        self.complex_weights = complex_weights
        self.tau_in = {Irrep(r): int(t) for r, t in tau_in.items()}
        self.tau_out = {Irrep(r): int(t) for r, t in tau_out.items() if Irrep(r) in self.tau_in}
        nc = 2 if complex_weights else 1
        self.weights = nn.ParameterDict()
        for r, t_out in self.tau_out.items():
            t_in = self.tau_in[r]
            scale = (init_scale or {}).get(r, 1.0) / math.sqrt(max(t_in, 1))
            if complex_weights:
                scale = scale / math.sqrt(2.0)
            self.weights[_key(r)] = nn.Parameter(torch.randn(nc, t_out, t_in) * scale)

    def weight(self, r: Irrep) -> Tensor:
        w = self.weights[_key(r)]
        return torch.complex(w[0], w[1]) if self.complex_weights else w[0]

    def mix(self, r: Irrep, x: Tensor, channel_dim: int = -2) -> Tensor:
        w = self.weight(r)
        if w.is_complex() and not x.is_complex():
            x = x.to(w.dtype)
        elif x.is_complex() and not w.is_complex():
            w = w.to(x.dtype)
        else:
            w = w.to(x.dtype)
        x = x.movedim(channel_dim, -1)
        y = x @ w.transpose(0, 1)
        return y.movedim(-1, channel_dim)

    def mix_cm(self, r: Irrep, x: Tensor) -> Tensor:
        """Channel-major ``x (tau_in, ...)`` -> ``(tau_out, ...)``: one matrix product."""
        w = self.weight(r)
        if w.is_complex() != x.is_complex():
            x, w = (x.to(w.dtype), w) if w.is_complex() else (x, w.to(x.dtype))
        else:
            w = w.to(x.dtype)
        return (w @ x.reshape(x.shape[0], -1)).view(w.shape[0], *x.shape[1:])

    def forward(self, feats: dict) -> dict:
        return {r: self.mix(r, feats[r]) for r in self.tau_out if r in feats}


def _key(r: Irrep) -> str:
    return f"{r.k}_{r.n}"


class LMPLevel(nn.Module):
    """One Lorentz message-passing level (``lgae.md`` §4.5, closed form §5.2).

    For node features ``F`` and edge features ``E_ij = {(0,0): rho0_ij z0, (1,1): rho1_ij p_ij}`` (``rho`` =
    radial filters of the invariant edge features, one per channel)::

        M_i = sum_j CG(F_j x E_ij),   S_i = CG(F_i x F_i),   F'_i = W [M_i || F_i || S_i]  (per irrep),

    then the scalars go through an MLP (``s <- s + MLP(s)`` with ``residual``; ``s <- MLP(s)`` as in the
    reference). Products are channel-wise and truncated at ``maxdim``; blocks are concatenated in the order
    messages (paths sorted by ``(node irrep, edge irrep)``), identity, self products (sorted) — the weight
    layout shared by :meth:`forward_general` and :meth:`forward_fast` (maxdim 2), which agree to rounding on
    the same weights.

    Parameters
    ----------
    tau_in, tau_out : int
        Channel multiplicity of every irrep at input and output.
    maxdim : int
        Exclusive bound on the irrep labels ``k, n`` (2: scalars and 4-vectors; 3 adds rank-2 tensors).
    irreps_in : list of Irrep, optional
        Irreps present in the input (default: all of :func:`irreps_upto`).
    complex_weights : bool
        Complex mixing/radial weights (LGN) instead of real ones.
    radial : str
        ``"basis"``: the level owns a :class:`RadialBasis` of ``edge.u`` and a ``Linear`` with bias
        (reference); ``"shared"``: a bias-free ``Linear`` of the shared basis ``edge.phi``
        (``n_edge_features * n_basis`` functions; cheapest edge-dependent form); ``"constant"``: one constant
        per channel (``edge.constant``).
    n_edge_features, n_basis : int
        Invariant edge features per edge and bell functions per feature.
    centered_basis : bool
        :class:`RadialBasis` form (False = reference).
    mlp_width, mlp_depth : int
        MLP hidden width is ``mlp_width * (number of real scalar inputs)``; ``depth`` hidden layers.
    residual : bool
        Residual scalar MLP (else the MLP output replaces the scalars, as in the reference).
    squash : bool
        Apply :func:`psi` to the scalar blocks made by products (messages and self products) before mixing;
        keeps the polynomial degree of invariants from compounding over levels.
    msg_norm : float
        Messages are summed over neighbours and divided by this constant.
    z0 : complex
        The ``(0,0)`` zonal function (1; the reference fills ``1 + i``, quirk Q4).
    mask_nodes : bool
        Zero the output features of padded nodes.
    init : str
        ``"clean"``: the mixing starts as the identity on the level's input plus ``N(0, init_gain^2 /
        fan_in)`` weights (a residual-style start that keeps feature scales through depth); ``"reference"``:
        LGN's ``N(0, 1) / max(tau_out, tau_in)``, times 0.1 on ``k = n > 0`` irreps.
    """

    def __init__(
        self,
        tau_in: int,
        tau_out: int,
        maxdim: int = 2,
        irreps_in=None,
        complex_weights: bool = False,
        radial: str = "basis",
        n_edge_features: int = 1,
        n_basis: int = 20,
        centered_basis: bool = True,
        mlp_width: int = 6,
        mlp_depth: int = 6,
        residual: bool = True,
        squash: bool = True,
        msg_norm: float = 1.0,
        z0: complex = 1.0,
        mask_nodes: bool = True,
        init: str = "clean",
        init_gain: float = 0.5,
    ):
        super().__init__()
        self.tau_in, self.tau_out, self.maxdim = tau_in, tau_out, maxdim
        self.complex_weights = complex_weights
        self.residual, self.squash, self.mask_nodes = residual, squash, mask_nodes
        self.msg_norm = float(msg_norm)
        self.z0 = complex(z0)
        self.irreps_in = sorted(Irrep(r) for r in (irreps_in or irreps_upto(maxdim)))
        if SCALAR not in self.irreps_in or VECTOR not in self.irreps_in:
            raise ValueError("LMPLevel needs scalar and vector input features")
        edge_irreps = [SCALAR, VECTOR]
        self.cg_msg = CGProduct(self.irreps_in, edge_irreps, maxdim)
        self.cg_self = CGProduct(self.irreps_in, self.irreps_in, maxdim)
        self.irreps_out = sorted(set(self.cg_msg.paths) | set(self.irreps_in) | set(self.cg_self.paths))
        self.blocks = {
            r: len(self.cg_msg.paths.get(r, [])) + (r in self.irreps_in) + len(self.cg_self.paths.get(r, []))
            for r in self.irreps_out
        }
        # radial filters: one per (edge irrep, channel); complex pairs with complex weights
        if radial not in ("basis", "shared", "constant"):
            raise ValueError(f"radial must be 'basis', 'shared' or 'constant'; got {radial!r}")
        self.radial_kind = radial
        nc = 2 if complex_weights else 1
        n_filters = 2 * tau_in * nc
        self.basis = (
            RadialBasis(n_edge_features, n_basis, centered=centered_basis) if radial == "basis" else None
        )
        if radial == "constant":
            self.radial = None
            self.radial_const = nn.Parameter(torch.empty(n_filters).uniform_(-1.0, 1.0))
        else:
            self.radial = nn.Linear(n_edge_features * n_basis, n_filters, bias=radial == "basis")
        self.mix = EquivariantLinear(
            {r: b * tau_in for r, b in self.blocks.items()},
            {r: tau_out for r in self.irreps_out},
            complex_weights,
            init_scale={r: init_gain for r in self.irreps_out},
        )
        with torch.no_grad():
            for r in self.irreps_out:
                w = self.mix.weights[_key(r)]
                if init == "reference":  # LGN: N(0, 1) / max(tau_out, tau_in), x0.1 for k = n > 0
                    w.normal_().mul_((0.1 if r.k == r.n and r.k > 0 else 1.0) / max(tau_out, w.shape[-1]))
                elif r in self.irreps_in:  # residual-style: identity on the identity block
                    k = len(self.cg_msg.paths.get(r, []))
                    w[0, :, k * tau_in : (k + 1) * tau_in] += torch.eye(tau_out, tau_in)
        self.scalar_parts = 2 if (complex_weights or maxdim > 2) else 1
        d = tau_out * self.scalar_parts
        self.mlp = MLP(d, mlp_width * d, d, mlp_depth, zero_last=residual) if mlp_depth >= 0 else None
        # CG constants of the maxdim-2 closed form, read off the tables (convention-independent)
        if maxdim == 2:
            t = to_irrep(torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64))
            c_vv = self.cg_self.coefficients(VECTOR, VECTOR, SCALAR)[0].to(t.dtype)
            self.k_ss = float(self.cg_self.coefficients(SCALAR, SCALAR, SCALAR)[0, 0, 0])
            self.k_vv = float((t @ c_vv @ t).real)
            self.k_sv = float(self.cg_self.coefficients(SCALAR, VECTOR, VECTOR)[0, 0, 0])
            self.k_vs = float(self.cg_self.coefficients(VECTOR, SCALAR, VECTOR)[0, 0, 0])

    # ----------------------------------------------------------------------------------------------------
    # shared pieces

    def radial_filters(self, edge: EdgeData, keep_self: bool = False) -> tuple[Tensor, Tensor]:
        """``rho0, rho1``: ``(tau_in, B, N, N)`` edge filters, or ``(tau_in,)`` constants for constant edges
        (complex with complex weights), divided by ``msg_norm``; ``rho0`` includes ``z0``. Filters that
        include their self-edges (``edge.rho_self``) get them zeroed unless ``keep_self``."""
        if edge.constant:
            if self.radial_kind == "constant":
                rho = self.radial_const
            elif self.radial_kind == "basis" and edge.mask_before_linear:
                rho = self.radial.bias  # every edge masked before the Linear: the filter is its bias
            else:
                raise ValueError("constant edges need radial='constant' (or an own basis masked first)")
            rho = rho.view(-1, self.tau_in) / self.msg_norm
        elif edge.rho is not None:
            rho = edge.rho.view(-1, self.tau_in, *edge.rho.shape[1:])
            if edge.rho_self is not None and not keep_self:  # drop the self-edges the filters include
                eye = torch.eye(rho.shape[-1], dtype=torch.bool, device=rho.device)
                rho = rho.masked_fill(eye, 0.0)
        else:
            if self.radial_kind == "constant":
                raise ValueError("radial='constant' needs EdgeData(constant=True)")
            w, bias = self.radial.weight / self.msg_norm, self.radial.bias
            if self.basis is not None:
                phi = self.basis(edge.u.to(w.dtype))
                if edge.mask_before_linear:
                    phi = phi * edge.mask.to(phi.dtype)
            else:
                phi = _shared_basis(edge, w.dtype)
            bias = None if bias is None else bias / self.msg_norm
            rho = _apply_filters(w, bias, phi, edge).view(-1, self.tau_in, *phi.shape[1:])
        return self._split_filters(rho)

    def _split_filters(self, rho: Tensor) -> tuple[Tensor, Tensor]:
        """``(n_filters / tau_in, tau_in, ...)`` real filters -> ``rho0`` (with ``z0``), ``rho1``."""
        if self.complex_weights:  # layout (part, edge irrep, channel)
            rho = torch.complex(rho[:2], rho[2:])
        rho0, rho1 = rho[0], rho[1]
        if self.z0 != 1.0:
            rho0 = rho0 * (self.z0 if rho0.is_complex() else self.z0.real)
        return rho0, rho1

    @staticmethod
    def _dense(rho: Tensor, edge: EdgeData, B: int, N: int) -> Tensor:
        """Constant filters ``(tau,)`` -> dense ``(tau, B, N, N)`` (general path)."""
        m = torch.ones(N, N, dtype=torch.bool, device=rho.device)
        if not edge.include_self:
            m = m & ~torch.eye(N, dtype=torch.bool, device=rho.device)
        return (rho[:, None, None, None] * m.to(rho.real.dtype)).expand(-1, B, -1, -1)

    def _scalar_mlp_cm(self, s: Tensor) -> Tensor:
        """Scalar MLP on channel-major ``(tau, B, N)``: on ``(Re s, Im s)`` (or ``Re s``), residual or not."""
        if self.mlp is None:
            return s
        if self.scalar_parts == 2:
            sc = (
                s
                if s.is_complex()
                else s.to(torch.complex128 if s.dtype == torch.float64 else torch.complex64)
            )
            y = self.mlp.forward_cm(torch.cat([sc.real, sc.imag], 0))
            y = torch.complex(y[: self.tau_out], y[self.tau_out :])
            return sc + y if self.residual else y
        y = self.mlp.forward_cm(s.real if s.is_complex() else s)
        if s.is_complex():
            y = y.to(s.dtype)
        return s + y if self.residual else y

    def _sq(self, x: Tensor) -> Tensor:
        return psi(x) if self.squash else x

    # ----------------------------------------------------------------------------------------------------
    # general path

    def forward_general(self, feats: dict, edge: EdgeData, node_mask: Tensor | None = None) -> dict:
        """Features ``{Irrep: (B, N, tau_in, d)}`` complex -> ``{Irrep: (B, N, tau_out, d)}``."""
        rho0, rho1 = self.radial_filters(edge)
        cdt = feats[SCALAR].dtype
        B, N = feats[SCALAR].shape[:2]
        if edge.constant:
            rho0, rho1 = self._dense(rho0, edge, B, N), self._dense(rho1, edge, B, N)
        rho0 = rho0.to(cdt).permute(1, 2, 3, 0)  # (B, N, N, tau)
        rho1 = rho1.to(cdt).permute(1, 2, 3, 0)
        pos = edge.pos
        z1 = to_irrep(pos[:, :, None, :] - pos[:, None, :, :]).to(cdt)  # (B, N, N, 4)
        edges = {SCALAR: rho0[..., None], VECTOR: rho1[..., None] * z1[:, :, :, None, :]}
        msg = self.cg_msg(feats, edges, mode="message")
        slf = self.cg_self(feats, feats, mode="self")
        out = {}
        for r in self.irreps_out:
            blocks = []
            for z in msg.get(r, []):
                blocks.append(self._sq(z) if r == SCALAR else z)
            if r in feats:
                blocks.append(feats[r])
            for z in slf.get(r, []):
                blocks.append(self._sq(z) if r == SCALAR else z)
            out[r] = self.mix.mix(r, torch.cat(blocks, -2))
        s = self._scalar_mlp_cm(out[SCALAR][..., 0].permute(2, 0, 1)).permute(1, 2, 0)
        out[SCALAR] = s[..., None].to(cdt)
        if self.mask_nodes and node_mask is not None:
            m = node_mask.to(out[SCALAR].real.dtype)[:, :, None, None]
            out = {r: x * m for r, x in out.items()}
        return out

    # ----------------------------------------------------------------------------------------------------
    # maxdim-2 fast path

    def forward_fast(self, s: Tensor, v: Tensor, edge: EdgeData, node_mask: Tensor | None = None):
        """Closed form of :meth:`forward_general` for ``maxdim = 2`` on channel-major Cartesian features ``s
        (tau, B, N)``, ``v (tau, 4, B, N)`` (component-major; real, or complex with complex weights);
        returns the same format."""
        if self.maxdim != 2:
            raise ValueError("the fast path exists for maxdim = 2 only")
        rho0, rho1 = self.radial_filters(edge, keep_self=True)
        if self.complex_weights and not s.is_complex():
            cd = torch.complex128 if s.dtype == torch.float64 else torch.complex64
            s, v = s.to(cd), v.to(cd)
        # (conversions and unit scalings skipped when they are no-ops: ~100 tensor calls per level, where the
        # per-call overhead is a sizeable part of an inference step)
        dt = s.dtype
        rho0, rho1 = _as(rho0, dt), _as(rho1, dt)
        tau, B, N = s.shape
        p = _as(_positions_cm(edge), dt)  # (4, B, N)
        w = self.mix.weight(VECTOR)
        w_A, w_Bv = _scaled(w[:, :tau], self.k_sv), _scaled(w[:, tau : 2 * tau], self.k_vs)
        if edge.constant:
            # one constant per channel: every message is a sum over all j (minus j = i) times it. The j = i
            # terms of the p_i - p_j messages vanish, so only a and Bv depend on include_self. The constants
            # of the vector messages go into their mixing weights (columns), not over the messages
            c0, c1 = rho0[:, None, None], rho1[:, None, None]
            S, V = s.sum(2, keepdim=True), v.sum(3, keepdim=True)  # (tau, B, 1), (tau, 4, B, 1)
            SP = (s[:, None] * p).sum(3, keepdim=True)  # sum_j s_j p_j
            VP = minkowski_axis(v, p, 1).sum(2, keepdim=True)  # sum_j <v_j, p_j>
            a = c0 * (S.expand_as(s) if edge.include_self else S - s)
            Bv = V.expand_as(v) if edge.include_self else V - v
            A = p * S[:, None] - SP  # sum_j s_j (p_i - p_j)
            b = (c1 * self.k_vv) * (minkowski_axis(V, p, 1) - VP)  # k_vv sum_j rho1 <v_j, p_i - p_j>
            w_A, w_Bv = w_A * _as(rho1, w.dtype), w_Bv * _as(rho0, w.dtype)
        else:
            # all neighbour sums of a level as two batched matmuls over j, feature-major (rows: s, v, s p,
            # <v, p>) so that building the operands copies whole rows of N; rho^T is a free transposed view
            vp = minkowski_axis(v, p, 1)  # <v_j, p_j>  (tau, B, N)
            sp = (s[:, None] * p).transpose(1, 2)
            f = torch.cat([s[:, :, None], v.transpose(1, 2), sp, vp[:, :, None]], 2).view(tau * B, 10, N)
            r1 = torch.bmm(f, rho1.reshape(tau * B, N, N).transpose(1, 2))
            r0 = torch.bmm(f[:, :5], rho0.reshape(tau * B, N, N).transpose(1, 2))
            if edge.rho_self is not None:  # filters with self-edges: subtract them
                q0, q1 = self._split_filters(edge.rho_self.view(-1, tau, B, N))
                r1 = r1.addcmul_(f, _as(q1, dt).reshape(tau * B, 1, N), value=-1)
                r0 = r0.addcmul_(f[:, :5], _as(q0, dt).reshape(tau * B, 1, N), value=-1)
            r1, r0 = r1.view(tau, B, 10, N), r0.view(tau, B, 5, N)
            a = r0[:, :, 0]
            Bv = r0[:, :, 1:5].transpose(1, 2)  # (tau, 4, B, N)
            A = p * r1[:, None, :, 0] - r1[:, :, 5:9].transpose(1, 2)  # sum_j rho1 s_j (p_i - p_j)
            # sum_j rho1 <v_j, p_i - p_j>
            b = (minkowski_axis(r1[:, :, 1:5], p.transpose(0, 1), 2) - r1[:, :, 9]) * self.k_vv
        # scalars: the product-made blocks (messages a, b and the self products s s, <v, v>, with their CG
        # constants) are squashed together; the weight layout is [a, b, s, s s, <v, v>]
        ss = _scaled(s * s, self.k_ss)
        vv = _scaled(minkowski_axis(v, v, 1), self.k_vv)
        prod = self._sq(torch.cat([_scaled(a, self.k_ss), b, ss, vv], 0)).reshape(4 * tau, -1)
        ws = self.mix.weight(SCALAR)
        s_flat = s.reshape(tau, -1)
        if ws.is_complex() != prod.is_complex():
            prod, s_flat = prod.to(ws.dtype), s_flat.to(ws.dtype)
        ws = _as(ws, prod.dtype)
        # three products on column blocks of the weights, no concatenated (5 tau, B N) operand
        s_out = ws[:, : 2 * tau] @ prod[: 2 * tau]
        s_out = s_out.addmm_(ws[:, 3 * tau :], prod[2 * tau :]).addmm_(ws[:, 2 * tau : 3 * tau], s_flat)
        s_out = s_out.view(-1, B, N)
        # vectors: s v appears in both orderings, so its two weight blocks are merged; the mix is a sum of
        # matrix products (no concatenated copy of the largest operand)
        blocks = [
            (w_A, A),
            (w_Bv, Bv),
            (w[:, 2 * tau : 3 * tau], v),
            (
                _scaled(w[:, 3 * tau : 4 * tau], self.k_sv) + _scaled(w[:, 4 * tau :], self.k_vs),
                s[:, None] * v,
            ),
        ]
        v_out = None
        for wk, xk in blocks:
            if wk.is_complex() != xk.is_complex():
                xk = xk.to(wk.dtype)
            wk, xk = _as(wk, xk.dtype), xk.reshape(tau, -1)
            v_out = wk @ xk if v_out is None else v_out.addmm_(wk, xk)
        v_out = v_out.view(-1, 4, B, N)
        s_out = self._scalar_mlp_cm(s_out)
        if self.mask_nodes and node_mask is not None:
            m = node_mask if node_mask.dtype == s_out.real.dtype else node_mask.to(s_out.real.dtype)
            s_out = s_out * m
            v_out = v_out * m
        return s_out, v_out

    def forward(self, x, edge: EdgeData, node_mask: Tensor | None = None):
        """Dispatch on the feature format: a dict -> general path, a ``(s, v)`` tuple -> fast path."""
        if isinstance(x, dict):
            return self.forward_general(x, edge, node_mask)
        return self.forward_fast(x[0], x[1], edge, node_mask)
