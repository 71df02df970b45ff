"""Featurisation of jets as pure tensor functions (used by the models and wrapped as named transforms in
lgae.data).

All functions take ``p4 (..., N, 4)`` as ``(E, px, py, pz)`` and ``mask (..., N)`` bool, and leave padded
slots at 0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def wrap_phi(phi: Tensor) -> Tensor:
    """Wrap angles to ``[-pi, pi)``."""
    return torch.remainder(phi + math.pi, 2 * math.pi) - math.pi


def pt_eta_phi(p4: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Transverse momentum, pseudorapidity and azimuth of 4-vectors ``(..., 4)`` (eta = 0 where pT = 0)."""
    px, py, pz = p4[..., 1], p4[..., 2], p4[..., 3]
    pt = torch.hypot(px, py)
    safe = torch.where(pt > 0, pt, torch.ones_like(pt))
    eta = torch.where(pt > 0, torch.asinh(pz / safe), torch.zeros_like(pt))
    phi = torch.atan2(py, px)
    return pt, eta, phi


def jet_p4(p4: Tensor, mask: Tensor | None = None) -> Tensor:
    """Sum of the constituents' 4-momenta, ``(..., 4)``."""
    if mask is not None:
        p4 = p4 * mask[..., None].to(p4.dtype)
    return p4.sum(-2)


def relative_coordinates(p4: Tensor, mask: Tensor) -> Tensor:
    """Particle coordinates relative to the jet axis: ``(pT_rel, eta_rel, phi_rel)``, shape ``(..., N, 3)``.

    ``pT_rel = pT / pT_jet``, ``eta_rel = eta - eta_jet``, ``phi_rel = wrap(phi - phi_jet)``; padded slots
    are 0.
    """
    jet = jet_p4(p4, mask)
    jpt, jeta, jphi = pt_eta_phi(jet)
    pt, eta, phi = pt_eta_phi(p4)
    m = mask.to(p4.dtype)
    safe_jpt = torch.where(jpt > 0, jpt, torch.ones_like(jpt))
    rel = torch.stack(
        [pt / safe_jpt[..., None], eta - jeta[..., None], wrap_phi(phi - jphi[..., None])], dim=-1
    )
    return rel * m[..., None]


def from_relative_coordinates(rel: Tensor, jet_pt: Tensor, jet_eta: Tensor, jet_phi: Tensor) -> Tensor:
    """Inverse of :func:`relative_coordinates` for massless particles: ``(..., N, 3) -> (..., N, 4)``."""
    pt = rel[..., 0] * jet_pt[..., None]
    eta = rel[..., 1] + jet_eta[..., None]
    phi = rel[..., 2] + jet_phi[..., None]
    px, py, pz = pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta)
    e = torch.sqrt(px**2 + py**2 + pz**2)
    return torch.stack([e, px, py, pz], dim=-1)


def jet_image(p4: Tensor, mask: Tensor, n_pixels: int = 40, half_width: float = 0.8) -> Tensor:
    """Jet images of ``pT_rel`` in ``(eta_rel, phi_rel)``, shape ``(..., n_pixels, n_pixels)``.

    Pixel ``[i, j]`` covers ``eta_rel`` bin ``i`` and ``phi_rel`` bin ``j`` of ``[-half_width, half_width)``;
    particles outside the window are dropped. Each image sums to ``sum_i pT_i / pT_jet`` over the particles
    inside the window (about 1; the vector sum pT_jet is at most the scalar sum).
    """
    rel = relative_coordinates(p4, mask)
    batch_shape = rel.shape[:-2]
    rel = rel.reshape(-1, rel.shape[-2], 3)
    m = mask.reshape(-1, mask.shape[-1])
    scale = n_pixels / (2 * half_width)
    ie = torch.floor((rel[..., 1] + half_width) * scale).long()
    ip = torch.floor((rel[..., 2] + half_width) * scale).long()
    inside = m & (ie >= 0) & (ie < n_pixels) & (ip >= 0) & (ip < n_pixels)
    flat = ie.clamp(0, n_pixels - 1) * n_pixels + ip.clamp(0, n_pixels - 1)
    weights = torch.where(inside, rel[..., 0], torch.zeros_like(rel[..., 0]))
    img = torch.zeros(rel.shape[0], n_pixels * n_pixels, dtype=rel.dtype, device=rel.device)
    img.scatter_add_(1, flat, weights)
    return img.reshape(*batch_shape, n_pixels, n_pixels)
