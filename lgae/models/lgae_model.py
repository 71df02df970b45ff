"""The Lorentz-group equivariant autoencoder (LGAE; Hao, Kansal, Duarte, Chernyavskaya, EPJC 83 (2023)).

Architecture (``shared/design/lgae.md`` §4; the maxdim-2 closed form §5)::

    p (B, N, 4) GeV  -- x p4_scale -->  stable Gram matrix  -->  canonical frame (jet rest frame)
      --> encoder: input mix -> LMP levels (encoder_channels) -> per-node latent head (tau_s, tau_v)
      --> aggregation over particles ("minmax": soft, continuous; "mix": linear over slots; "sum", "mean")
      --> latent {scalars, 4-vectors}
      --> decoder: per-slot linear maps of the latent vectors (+ latent scalars, latent Gram invariants)
          -> LMP levels (decoder_channels) -> one 4-vector per output slot
      --> back to the lab frame and the input units

Every step is Lorentz-equivariant: the frame is a numerical device (``lgae.nn.invariants``) that makes the
float64 model equivariant to ~1e-10 even for boosts of rapidity 10; invariants of the inputs come from
:func:`lgae.so31.stable_dot`. ``faithful=True`` instead reproduces the reference code, quirks Q1–Q6 included
(``lgae.md`` §4.13), with its per-jet max-|component| normalisation (not Lorentz invariant).

Latent layout (``out.latent``): ``"scalars"`` ``(B, n_s)`` real and ``"vectors"`` ``(B, n_v, 4)`` real lab
4-vectors in the input's units. With complex weights the real and imaginary parts are separate entries:
scalars ``[Re..., Im...]`` and vectors ``[Re..., Im...]`` along the channel axis. ``minmax`` doubles both
counts (max block, then min block).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch
from torch import Tensor, nn

from lgae.nn.aggregate import build_aggregation
from lgae.nn.cg import SCALAR, VECTOR
from lgae.nn.invariants import canonical_frame, gram_matrix, psi
from lgae.nn.layers import (
    EdgeData,
    EquivariantLinear,
    LMPLevel,
    RadialBasis,
    fast_to_general,
    general_to_fast,
    metric_diagonal,
    minkowski,
    shared_radial_filters,
)
from lgae.nn.losses import chamfer_distance, hungarian_distance, masked_mse

from .base import JetAutoencoder, ModelOutput
from .registry import register

__all__ = ["LGAE"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _matched_sq_dist(x: Tensor, y: Tensor, mask_y: Tensor) -> Tensor:
    """Hungarian-matched mean squared distance per jet, differentiable in ``x`` and ``y`` (the assignment
    itself is solved exactly on detached values with scipy; every valid target gets one output slot)."""
    from scipy.optimize import linear_sum_assignment

    d = (x[:, :, None, :] - y[:, None, :, :]).pow(2).sum(-1)  # (B, N_out, N)
    dn = d.detach().cpu().double().numpy()
    my = mask_y.cpu().numpy()
    rows, cols, bs = [], [], []
    for b in range(d.shape[0]):
        valid = np.nonzero(my[b])[0]
        if valid.size == 0:
            continue
        r, c = linear_sum_assignment(dn[b][:, valid])
        rows.append(r)
        cols.append(valid[c])
        bs.append(np.full(r.size, b))
    out = torch.zeros(d.shape[0], dtype=d.dtype, device=d.device)
    if not rows:
        return out
    bi = torch.as_tensor(np.concatenate(bs), device=d.device)
    ri = torch.as_tensor(np.concatenate(rows), device=d.device)
    ci = torch.as_tensor(np.concatenate(cols), device=d.device)
    out = out.index_add(0, bi, d[bi, ri, ci])
    return out / mask_y.to(d.dtype).sum(1).clamp_min(1)


@register("lgae")
class LGAE(JetAutoencoder):
    """Lorentz-group equivariant autoencoder on jet constituents ``(E, px, py, pz)``.

    Parameters
    ----------
    n_particles : int
        Input particle slots and output slots (``N``).
    tau_scalars, tau_vectors : int
        Latent channels per node before aggregation (the paper's ``tau``; ``minmax`` doubles the latent
        count).
    encoder_channels, decoder_channels : list of int
        Multiplicities: the first entry is the input mix, each further entry one LMP level (paper: 3 3 4 4 / 4
        4 3 3).
    maxdim : int
        Exclusive bound on irrep labels (2: scalars + 4-vectors, the paper; 3: adds rank-2 tensors).
    impl : str
        ``"auto"`` (fast closed form when ``maxdim == 2``), ``"fast"`` or ``"general"`` (CG tables).
    complex_weights : bool
        Complex mixing weights as in LGN (default: real; every feature then stays real).
    aggregation : str
        ``"minmax"``, ``"mix"``, ``"sum"`` or ``"mean"``.
    loss : str
        Training loss: ``"chamfer"`` (squared), ``"mse"`` (slot-aligned) or ``"hungarian"`` (exact assignment,
        differentiable matched distance).
    loss_frame : str
        ``"lab"`` (reference): distances of ``p4_scale``-scaled lab components; ``"rest"``: of the components
        in the input jet's rest frame (a Lorentz-invariant loss and score).
    loss_scale : str
        Per-jet normalisation of the loss (outside the equivariant network): ``"none"``, ``"jet"`` (jet energy
        in the lab, jet mass in the rest frame) or ``"max"`` (max |component|, the reference's; faithful
        mode).
    n_basis : int
        Lorentzian-bell functions per invariant edge feature (reference: 20). In clean mode one basis is
        shared by all levels of the encoder (and of the decoder), each level with its own linear filters.
    learn_basis : bool
        Learn the bells' offsets, heights, widths and centres (reference, always in faithful mode). Default: a
        fixed bell basis (plus a constant) of the invariants, with learned linear filters per level; the basis
        of the input invariants then needs no backward pass, which is most of the per-edge cost of a training
        step.
    decoder_edges : str
        ``"constant"`` (default): decoder filters are per-channel constants, as the reference decoder's
        effectively are (quirk Q2), so decoder messages cost ``O(N)``; ``"radial"``: bell filters of the
        decoder-node invariants.
    mlp_width, mlp_depth : int
        Scalar MLPs: hidden width ``mlp_width x`` (real scalar channels), ``mlp_depth`` hidden layers.
    residual : bool
        Residual scalar MLPs.
    squash : bool
        ``psi``-squash product-made invariants inside LMP levels (keeps their degree from compounding).
    msg_norm : float
        Neighbour sums are divided by this.
    p4_scale : float
        Global momentum scale: the network sees ``p * p4_scale`` and the loss is computed in these units
        (default 1/10 GeV: constituents of a ~1 TeV jet have rest-frame components O(0.1-1)).
    frame : bool
        Run the network in the canonical (jet rest) frame built from invariants (numerical precision; no
        effect in exact arithmetic).
    massless : bool
        Treat the input particles as exactly massless when computing invariants (only correct for massless
        inputs).
    mass_resolution : float
        Constituents with ``m / E`` below this (or within rounding of ``E = |p|``) count as exactly massless,
        so a boost's rounding noise cannot give them a mass (:func:`lgae.nn.invariants.particle_mass2`).
    temperature : float
        Initial temperature of the soft Min-Max.
    minmax_key : str
        ``"mass"`` (``psi(m^2)`` of each vector channel) or ``"learned"`` (linear in the node scalars).
    latent_gram : bool
        Feed the decoder the invariants ``psi(<L_a, L_b>)`` of the latent vectors besides the latent scalars.
    get_real : str
        Complex weights only: output 4-vectors from ``"real"``, ``"imag"`` or ``"sum"`` (Re + Im) of the
        decoder output.
    faithful : bool
        Reproduce the reference code (quirks Q1–Q6, complex weights, reference init, per-jet max
        normalisation).
    dtype : str
        ``"float64"`` (default, as the paper) or ``"float32"``.
    seed : int, optional
        Seed for the weight initialisation.
    """

    def __init__(
        self,
        n_particles: int = 30,
        tau_scalars: int = 1,
        tau_vectors: int = 2,
        encoder_channels=(3, 3, 4, 4),
        decoder_channels=(4, 4, 3, 3),
        maxdim: int = 2,
        impl: str = "auto",
        complex_weights: bool = False,
        aggregation: str = "mix",
        loss: str | None = None,
        loss_frame: str = "lab",
        loss_scale: str = "none",
        n_basis: int = 20,
        learn_basis: bool = False,
        decoder_edges: str = "constant",
        mlp_width: int = 6,
        mlp_depth: int = 6,
        residual: bool = True,
        squash: bool = True,
        msg_norm: float = 10.0,
        p4_scale: float = 0.1,
        frame: bool = True,
        massless: bool = False,
        mass_resolution: float = 1e-6,
        temperature: float = 0.1,
        minmax_key: str = "mass",
        latent_gram: bool = True,
        get_real: str = "sum",
        faithful: bool = False,
        dtype: str = "float64",
        seed: int | None = None,
    ):
        super().__init__()
        if seed is not None:
            torch.manual_seed(int(seed))
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}; got {dtype!r}")
        if impl not in ("auto", "fast", "general"):
            raise ValueError(f"impl must be 'auto', 'fast' or 'general'; got {impl!r}")
        if impl == "fast" and maxdim != 2:
            raise ValueError(
                "impl='fast' needs maxdim = 2 (the closed form exists for scalars + 4-vectors only)"
            )
        if get_real not in ("real", "imag", "sum"):
            raise ValueError(f"get_real must be 'real', 'imag' or 'sum'; got {get_real!r}")
        encoder_channels, decoder_channels = list(encoder_channels), list(decoder_channels)
        if len(encoder_channels) < 1 or len(decoder_channels) < 1:
            raise ValueError("encoder_channels and decoder_channels need at least one entry (the input mix)")
        if loss is None:
            loss = "chamfer" if aggregation != "mix" else "mse"
        if loss not in ("chamfer", "mse", "hungarian"):
            raise ValueError(f"loss must be 'chamfer', 'mse' or 'hungarian'; got {loss!r}")
        if faithful:
            complex_weights, residual, squash, frame = True, False, False, False
            loss_frame, loss_scale = "lab", "max"
        if loss_frame not in ("lab", "rest"):
            raise ValueError(f"loss_frame must be 'lab' or 'rest'; got {loss_frame!r}")
        if loss_scale not in ("none", "jet", "max"):
            raise ValueError(f"loss_scale must be 'none', 'jet' or 'max'; got {loss_scale!r}")
        if loss_frame == "rest" and not frame:
            raise ValueError("loss_frame='rest' needs the canonical frame (frame=True)")
        self.loss_frame, self.loss_scale = loss_frame, loss_scale
        self.n_particles, self.maxdim, self.faithful = n_particles, maxdim, faithful
        self.fast = impl == "fast" or (impl == "auto" and maxdim == 2)
        self.complex_weights, self.loss_kind, self.aggregation = complex_weights, loss, aggregation
        self.p4_scale, self.mass_resolution = float(p4_scale), float(mass_resolution)
        self.use_frame, self.massless, self.get_real = frame, massless, get_real
        self.latent_gram = latent_gram and not faithful
        self.tau_scalars, self.tau_vectors = tau_scalars, tau_vectors
        if decoder_edges not in ("constant", "radial"):
            raise ValueError(f"decoder_edges must be 'constant' or 'radial'; got {decoder_edges!r}")
        self.decoder_edges = "constant" if faithful else decoder_edges
        learn_basis = learn_basis or faithful
        # clean mode: one radial basis per encoder/decoder, shared by its levels (edge invariants are fixed);
        # levels then read n_basis (+1: the fixed basis carries a constant) functions per invariant feature
        level_kw = dict(
            maxdim=maxdim,
            complex_weights=complex_weights,
            n_basis=n_basis if faithful or learn_basis else n_basis + 1,
            centered_basis=not faithful,
            mlp_width=mlp_width,
            mlp_depth=mlp_depth,
            residual=residual,
            squash=squash,
            msg_norm=1.0 if faithful else msg_norm,
            z0=1 + 1j if faithful else 1.0,
            mask_nodes=not faithful,
            init="reference" if faithful else "clean",
        )
        # ---------------- encoder
        dec_edge_features = 2 if (complex_weights and not faithful) else 1
        self.enc_basis = None if faithful else RadialBasis(1, n_basis, learnable=learn_basis)
        self.dec_basis = (
            RadialBasis(dec_edge_features, n_basis, learnable=learn_basis)
            if self.decoder_edges == "radial" and not faithful
            else None
        )
        enc_radial = "basis" if faithful else "shared"
        dec_radial = "basis" if faithful else ("shared" if self.decoder_edges == "radial" else "constant")
        self.n_in_scalars = 1 if faithful else 3
        self.enc_in = EquivariantLinear(
            {SCALAR: self.n_in_scalars, VECTOR: 1},
            {SCALAR: encoder_channels[0], VECTOR: encoder_channels[0]},
            complex_weights,
        )
        self.encoder = nn.ModuleList()
        irr_in = [SCALAR, VECTOR]
        for t_in, t_out in zip(encoder_channels[:-1], encoder_channels[1:]):
            lvl = LMPLevel(t_in, t_out, irreps_in=irr_in, radial=enc_radial, n_edge_features=1, **level_kw)
            self.encoder.append(lvl)
            irr_in = lvl.irreps_out
        t_lat = encoder_channels[-1]
        self.latent_head = EquivariantLinear(
            {SCALAR: t_lat, VECTOR: t_lat}, {SCALAR: tau_scalars, VECTOR: tau_vectors}, complex_weights
        )
        self.aggregate, self.n_latent_s, self.n_latent_v = build_aggregation(
            aggregation,
            n_particles=n_particles,
            tau_s_in=tau_scalars,
            tau_v_in=tau_vectors,
            tau_s=tau_scalars,
            tau_v=tau_vectors,
            complex_weights=complex_weights,
            faithful=faithful,
            temperature=temperature,
            key=minmax_key,
        )
        # ---------------- decoder
        nc = 2 if complex_weights else 1
        c0 = decoder_channels[0]
        nv, ns = self.n_latent_v, self.n_latent_s
        if faithful:
            self.dec_v0 = nn.Parameter(torch.randn(nc, n_particles, nv) / math.sqrt(nv * nc))
            self.dec_in = EquivariantLinear({SCALAR: 1, VECTOR: 1}, {SCALAR: c0, VECTOR: c0}, complex_weights)
        else:
            n_gram = nv * (nv + 1) // 2 if self.latent_gram else 0
            iu = torch.triu_indices(nv, nv)
            self.register_buffer("_triu_flat", iu[0] * nv + iu[1], persistent=False)  # Gram pairs a <= b
            self.n_dec_feat = ns * nc + n_gram * nc
            self.dec_s0 = nn.Parameter(
                torch.randn(n_particles, c0, max(self.n_dec_feat, 1)) / math.sqrt(max(self.n_dec_feat, 1))
            )
            self.dec_s0_bias = nn.Parameter(torch.randn(n_particles, c0) * 0.1)
            self.dec_v0 = nn.Parameter(torch.randn(nc, n_particles, c0, nv) / math.sqrt(nv * nc))
            self.dec_pos = nn.Parameter(torch.randn(nc, n_particles, nv) / math.sqrt(nv * nc))
        self.decoder = nn.ModuleList()
        irr_in = [SCALAR, VECTOR]
        for t_in, t_out in zip(decoder_channels[:-1], decoder_channels[1:]):
            lvl = LMPLevel(
                t_in,
                t_out,
                irreps_in=irr_in,
                radial=dec_radial,
                n_edge_features=dec_edge_features,
                **level_kw,
            )
            self.decoder.append(lvl)
            irr_in = lvl.irreps_out
        n_out_in = decoder_channels[-1] + (0 if faithful else 1)  # + the slot position (skip connection)
        self.dec_out = EquivariantLinear({VECTOR: n_out_in}, {VECTOR: 1}, complex_weights)
        self.to(_DTYPES[dtype])

    # ----------------------------------------------------------------------------------------------------
    # helpers

    @property
    def dtype(self) -> torch.dtype:
        return self.enc_in.weights["0_0"].dtype

    @staticmethod
    def _self_basis(basis: RadialBasis, u: Tensor) -> Tensor | None:
        """The basis on the self-edges, so that the fast path's levels subtract them instead of zeroing the
        filters' diagonals; None while tracing for export (the exporter loses the rank of a diagonal; the
        levels then zero the diagonals out of place)."""
        # (a contiguous copy: the bells of a strided diagonal view take 3x longer)
        return None if torch.jit.is_tracing() else basis(u.diagonal(0, -2, -1).contiguous())

    def _cw(self, w: Tensor) -> Tensor:
        return torch.complex(w[0], w[1]) if self.complex_weights else w[0]

    def latent_dim(self) -> int:
        nc = 2 if self.complex_weights else 1
        return nc * (self.n_latent_s + 4 * self.n_latent_v)

    def input_dim(self) -> int:
        return 4 * self.n_particles

    def _levels(self, levels, s: Tensor, v: Tensor, edge: EdgeData, node_mask) -> tuple[Tensor, Tensor]:
        """Run LMP levels on channel-major Cartesian ``s (tau, B, N)``, ``v (tau, 4, B, N)``. The general path
        converts to canonical components and back; with real weights it keeps the real parts of the final
        scalars and 4-vectors (equivariant: ``Lambda`` is real); higher irreps (maxdim > 2) live inside the
        levels only."""
        if self.fast and edge.pos_cm is None:  # component-major positions, made once for all levels
            edge = replace(edge, pos_cm=edge.pos.permute(2, 0, 1).contiguous())
        edges = shared_radial_filters(levels, edge)
        if self.fast:
            if node_mask is not None:  # one float mask for every level
                node_mask = node_mask.to(s.real.dtype)
            for lvl, e in zip(levels, edges):
                s, v = lvl.forward_fast(s, v, e, node_mask)
            return s, v
        feats = fast_to_general(s, v)
        for lvl, e in zip(levels, edges):
            feats = lvl.forward_general(feats, e, node_mask)
        return general_to_fast(feats, real=not self.complex_weights)

    def _prepare(self, p4: Tensor, mask: Tensor | None):
        """Scale, normalise and (optionally) move to the canonical frame. Returns a dict of inputs for the
        encoder."""
        if mask is None:
            mask = torch.ones(p4.shape[:-1], dtype=torch.bool, device=p4.device)
        mask = mask.bool()
        dt = self.dtype
        eps = (
            torch.finfo(p4.dtype).eps if p4.is_floating_point() else None
        )  # precision the inputs were stored in
        p = p4.to(torch.float64) * self.p4_scale * mask[..., None]
        if self.faithful:
            sj = p.abs().flatten(1).max(1).values + 1e-16  # per-jet max |component| (not invariant; quirk)
            x = p / sj[:, None, None]
            m2 = minkowski(x, x)
            pij = x[:, :, None] - x[:, None, :]
            d2 = minkowski(pij, pij)
            return dict(mask=mask, x=x.to(dt), m2=m2.to(dt), d2=d2.to(dt), sj=sj, frame=None, p=p, P=None)
        if self.use_frame:
            fr = canonical_frame(
                p, mask, massless=self.massless, eps=eps, mass_resolution=self.mass_resolution
            )
            P, m2, x = fr.gram, fr.m2, fr.x
        else:
            fr = None
            P, m2 = gram_matrix(
                p, mask, massless=self.massless, eps=eps, mass_resolution=self.mass_resolution
            )
            x = p
        d2 = torch.add(m2[:, :, None], m2[:, None, :]).sub_(P, alpha=2)  # (p_i - p_j)^2 from input invariants
        return dict(mask=mask, x=x.to(dt), m2=m2.to(dt), d2=d2.to(dt), P=P, frame=fr, p=p, sj=None)

    # ----------------------------------------------------------------------------------------------------
    # encoder / decoder

    def encode(self, prep: dict) -> tuple[Tensor, Tensor]:
        """Latent ``(scalars (B, n_s), vectors (B, n_v, 4))`` in the network's frame and number type."""
        mask, x, m2, d2 = prep["mask"], prep["x"], prep["m2"], prep["d2"]
        fm = mask.to(x.dtype)
        if self.faithful:
            s_in = torch.sqrt(m2.abs())[None]
            u = torch.sqrt(d2.abs() + 1e-16)[None]
            emask = mask[:, :, None] & mask[:, None, :]
            edge = EdgeData(pos=x, u=u, mask=emask, mask_before_linear=True)
        else:
            pj = (prep["P"].sum(-1)).to(x.dtype)  # <p_i, P_jet> from the stable Gram matrix
            mj2 = pj.sum(-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
            s_in = torch.cat([psi(torch.stack([m2, 2.0 * pj])), (pj / mj2)[None]], 0) * fm
            # no edge mask: padded node features are zero at every level; the levels drop the self-edges
            u = psi(d2)[None]
            # the basis of u is evaluated by the levels' shared filters (in chunks of jets at inference)
            edge = EdgeData(pos=x, u=u, basis=self.enc_basis, phi_self=self._self_basis(self.enc_basis, u))
        s = self.enc_in.mix_cm(SCALAR, s_in)  # channel-major (tau, B, N)
        v = self.enc_in.mix_cm(VECTOR, x.permute(2, 0, 1)[None])  # component-major (tau, 4, B, N)
        s, v = self._levels(self.encoder, s, v, edge, mask)
        s = self.latent_head.mix_cm(SCALAR, s)  # (tau_s, B, N)
        v = self.latent_head.mix_cm(VECTOR, v)  # (tau_v, 4, B, N)
        if hasattr(self.aggregate, "forward_cm"):
            return self.aggregate.forward_cm(s, v, mask)
        return self.aggregate(s.permute(1, 2, 0), v.permute(2, 3, 0, 1), mask)

    def decode(self, ls: Tensor, lv: Tensor) -> Tensor:
        """Latent (network frame) -> output 4-vectors ``(B, N, 4)`` in the network frame (real)."""
        B = lv.shape[0]
        N = self.n_particles
        if self.faithful:
            v0 = torch.einsum("nl,blm->bnm", self._cw(self.dec_v0).to(lv.dtype), lv)  # one channel per slot
            s0 = torch.full(
                (1, B, N), 1 + 1j, dtype=v0.dtype, device=v0.device
            )  # latent scalars ignored (Q3)
            s = self.dec_in.mix_cm(SCALAR, s0)
            v = self.dec_in.mix_cm(VECTOR, v0.permute(2, 0, 1)[None])
            pos = v0
            # every decoder edge is masked before the radial Linear (Q2): filters = its bias, j = i included
            edge = EdgeData(pos=pos, constant=True, include_self=True, mask_before_linear=True)
        else:
            feats = [ls]
            if self.latent_gram:
                G = (lv * metric_diagonal(lv.dtype, lv.device)) @ lv.transpose(1, 2)  # <L_a, L_b>
                feats.append(psi(G.flatten(1).index_select(1, self._triu_flat)))  # a <= b
            f = torch.cat(feats, -1)
            if f.is_complex():
                f = torch.cat([f.real, f.imag], -1)
            f = f.to(self.dtype)
            s = torch.einsum("ncf,bf->cbn", self.dec_s0[..., : f.shape[-1]], f) + self.dec_s0_bias.T[:, None]
            if self.complex_weights:
                s = s.to(lv.dtype)
            # slot vectors and positions made in the levels' layouts by products whose outputs are contiguous
            # there: v (c, 4, B, N) = per-channel (4 B, l) @ (l, N) products, pos_cm (4, B, N) likewise
            lv_t = lv.permute(2, 0, 1).reshape(4 * B, lv.shape[1])  # (4 B, l), component-major
            dv = self._cw(self.dec_v0).to(lv.dtype)  # (N, c, l)
            v = torch.matmul(lv_t, dv.permute(1, 2, 0)).view(dv.shape[1], 4, B, N)
            pos_cm = (lv_t @ self._cw(self.dec_pos).to(lv.dtype).T).view(4, B, N)
            pos = pos_cm.permute(1, 2, 0)  # (B, N, 4) view
            if self.decoder_edges == "constant":
                edge = EdgeData(pos=pos, pos_cm=pos_cm, constant=True)
            else:
                pij = pos[:, :, None] - pos[:, None, :]
                d2 = minkowski(pij, pij)
                u = torch.stack([psi(d2.real), psi(d2.imag)], 0) if d2.is_complex() else psi(d2)[None]
                u = u.to(self.dtype)  # all slots real, no self-edges
                phi_self = self._self_basis(self.dec_basis, u)
                edge = EdgeData(pos=pos, pos_cm=pos_cm, u=u, basis=self.dec_basis, phi_self=phi_self)
        s, v = self._levels(self.decoder, s, v, edge, None)
        if not self.faithful:
            v = torch.cat([v, pos_cm[None].to(v.dtype)], 0)
        out = self.dec_out.mix_cm(VECTOR, v)[0].permute(1, 2, 0).contiguous()  # (B, N, 4)
        if out.is_complex():
            out = {"real": out.real, "imag": out.imag, "sum": out.real + out.imag}[self.get_real]
        return out

    def _latent_public(self, ls: Tensor, lv: Tensor, prep: dict) -> dict:
        if ls.is_complex():
            ls = torch.cat([ls.real, ls.imag], -1)
            lv = torch.cat([lv.real, lv.imag], -2)
        lv = self._to_lab(lv, prep)
        return {"scalars": ls, "vectors": lv}

    def _to_lab(self, y: Tensor, prep: dict) -> Tensor:
        """Network-frame 4-vectors ``(B, K, 4)`` -> lab, input units (GeV)."""
        if self.faithful:
            return y.to(torch.float64) * prep["sj"][:, None, None] / self.p4_scale
        y = y.to(torch.float64)
        if prep["frame"] is not None:
            y = prep["frame"].to_lab(y)
        return y / self.p4_scale

    # ----------------------------------------------------------------------------------------------------
    # public interface

    def forward(self, p4: Tensor, mask: Tensor | None = None) -> ModelOutput:
        return self._forward(p4, mask)

    def _forward(self, p4: Tensor, mask: Tensor | None = None, lab: bool = True) -> ModelOutput:
        """:meth:`forward`; ``lab=False`` leaves out the lab-frame outputs (``p4`` None, no latent), all a
        rest-frame loss or score reads."""
        prep = self._prepare(p4, mask)
        ls, lv = self.encode(prep)
        y = self.decode(ls, lv)
        extras = {"mask": prep["mask"]}
        if prep["frame"] is not None:  # rest-frame output and target, for rest-frame losses and scores
            extras["rest"] = (y, prep["x"], prep["frame"].scale.to(y.dtype))  # jet mass (or energy)
        if not lab:
            return ModelOutput(p4=None, latent={}, extras=extras)
        out_p4 = self._to_lab(y, prep).to(self.dtype)
        latent = self._latent_public(ls, lv, prep)
        latent = {k: t.to(out_p4.dtype) for k, t in latent.items()}
        return ModelOutput(p4=out_p4, latent=latent, extras=extras)

    def _loss_inputs(
        self,
        p4: Tensor,
        mask: Tensor | None,
        out: ModelOutput,
        frame: str | None = None,
        scale: str | None = None,
    ):
        """Reconstruction, target and mask in the loss units.

        ``frame="lab"``: ``p4_scale``-scaled lab components; ``"rest"``: components in the jet rest frame (the
        canonical frame; Euclidean distances there are Lorentz invariants). ``scale``: ``"none"``, ``"jet"``
        (divide by the jet energy in the lab, by the jet mass in the rest frame) or ``"max"`` (per-jet max
        |component| of the target, the reference's normalisation).
        """
        frame, scale = frame or self.loss_frame, scale or self.loss_scale
        if mask is None:
            mask = torch.ones(p4.shape[:-1], dtype=torch.bool, device=p4.device)
        mask = mask.bool()
        dt = self.dtype
        if frame == "rest":
            if "rest" not in out.extras:
                raise ValueError("rest-frame losses need the canonical frame (frame=True, faithful=False)")
            rec, tgt, mj = (t.to(dt) for t in out.extras["rest"])
            tgt = tgt * mask[..., None]
        else:
            tgt = p4.to(dt) * self.p4_scale * mask[..., None]
            rec = out.p4 * self.p4_scale
            mj = None
        if scale == "jet":
            sj = mj if frame == "rest" else tgt[..., 0].sum(1)
        elif scale == "max":
            sj = tgt.abs().flatten(1).max(1).values
        else:
            sj = None
        if sj is not None:
            sj = sj + torch.finfo(dt).tiny
            tgt, rec = tgt / sj[:, None, None], rec / sj[:, None, None]
        return rec, tgt, mask

    def _distance(self, kind: str, rec: Tensor, tgt: Tensor, mask: Tensor) -> Tensor:
        if kind == "chamfer":
            if self.faithful:  # all 30 slots, padding included (reference)
                return chamfer_distance(rec, tgt)
            return chamfer_distance(rec, tgt, None, mask)
        if kind == "mse":
            return masked_mse(rec, tgt, None if self.faithful else mask)
        return _matched_sq_dist(rec, tgt, mask)

    def loss_per_jet(self, p4: Tensor, mask: Tensor | None = None, out: ModelOutput | None = None) -> Tensor:
        if out is None:  # a rest-frame loss needs no lab-frame outputs
            out = self._forward(p4, mask, lab=self.loss_frame != "rest" or not self.use_frame)
        rec, tgt, mask = self._loss_inputs(p4, mask, out)
        return self._distance(self.loss_kind, rec, tgt, mask)

    def anomaly_score(self, p4: Tensor, mask: Tensor | None = None) -> Tensor:
        """The default score (the training loss per jet) without computing the alternatives of
        :meth:`scores`. Runs in ``torch.inference_mode`` (no autograd bookkeeping at all) except while
        tracing for export, which records through ``no_grad``."""
        ctx = torch.no_grad() if torch.jit.is_tracing() else torch.inference_mode()
        with ctx:
            return self.loss_per_jet(p4, mask)

    def scores(self, p4: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """Anomaly scores per jet (higher = more anomalous).

        ``default``: the training loss. Distances of all output slots to the real particles, in the training
        loss's frame and scale: ``chamfer`` (squared), ``chamfer_euclid`` (unsquared, the paper's score),
        ``mse`` (slot-aligned), ``hungarian`` (exact optimal matching, scipy); the same four in the jet rest
        frame scaled by the jet mass (``*_rest``, Lorentz invariant; with the canonical frame) and in the lab
        scaled by the per-jet max |component| (``*_max``, the reference's normalisation). ``latent_mass``:
        invariant mass of the sum of the latent 4-vectors (GeV); ``jet_mass`` (GeV) and ``mass_error`` =
        |reconstructed - input jet mass| (GeV).
        """
        if mask is None:
            mask = torch.ones(p4.shape[:-1], dtype=torch.bool, device=p4.device)
        out = self(p4, mask)
        res = {"default": self.loss_per_jet(p4, mask, out)}
        variants = {"": (None, None), "_max": ("lab", "max")}
        if "rest" in out.extras:
            variants["_rest"] = ("rest", "jet")
        for suffix, (frame, scale) in variants.items():
            rec, tgt, m = self._loss_inputs(p4, mask, out, frame, scale)
            res["chamfer" + suffix] = chamfer_distance(rec, tgt, None, m)
            res["chamfer_euclid" + suffix] = chamfer_distance(rec, tgt, None, m, squared=False)
            res["mse" + suffix] = masked_mse(rec, tgt, m)
            res["hungarian" + suffix] = hungarian_distance(rec, tgt, None, m)
        lv = out.latent["vectors"].to(torch.float64)
        tot = lv.sum(1)
        res["latent_mass"] = torch.sqrt(minkowski(tot, tot).abs())
        P, _ = gram_matrix(
            p4.to(torch.float64),
            mask,
            massless=self.massless,
            eps=torch.finfo(p4.dtype).eps if p4.is_floating_point() else None,
            mass_resolution=self.mass_resolution,
        )
        mj = torch.sqrt(P.sum((1, 2)).clamp_min(0))
        jr = out.p4.to(torch.float64).sum(1)
        mr = torch.sqrt(minkowski(jr, jr).clamp_min(0))
        res["jet_mass"] = mj
        res["mass_error"] = (mr - mj).abs()
        return {k: t.to(out.p4.dtype) for k, t in res.items()}
