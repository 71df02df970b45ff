"""Input handling shared by the baseline models (private): masks, padding to a fixed slot count, jet axes.

Every baseline consumes raw ``p4 (B, N, 4)`` in GeV plus ``mask (B, N)`` and featurises internally; these
helpers make that featurisation blind to whatever sits in padded slots (zeros, garbage, even NaN).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..nn.features import jet_p4, pt_eta_phi, relative_coordinates


def clean_jets(p4: Tensor, mask: Tensor | None, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """Validate ``(p4, mask)``, move them to ``device`` and zero the padded slots.

    ``mask=None`` means "infer it": a slot is a real particle when any of its four components is non-zero
    (the data layer zero-pads). The input's floating dtype is kept (featurise in float64 when the data is
    float64).
    """
    if p4.dim() != 3 or p4.shape[-1] != 4:
        raise ValueError(f"expected p4 of shape (B, N, 4); got {tuple(p4.shape)}")
    if device is not None:
        p4 = p4.to(device)
    if not p4.is_floating_point():
        p4 = p4.to(torch.get_default_dtype())
    if mask is None:
        mask = (p4 != 0).any(-1)
    if mask.shape != p4.shape[:-1]:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match p4 shape {tuple(p4.shape)}")
    mask = mask.to(device=p4.device).bool()
    p4 = torch.where(mask[..., None], p4, torch.zeros_like(p4))
    return p4, mask


def fit_slots(x: Tensor, mask: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """Truncate (keep the first ``n``, pT-ordered) or zero-pad ``x (B, N, F)`` and ``mask (B, N)`` to n."""
    N = x.shape[1]
    if N == n:
        return x, mask
    if N > n:
        return x[:, :n], mask[:, :n]
    pad_x = x.new_zeros(x.shape[0], n - N, x.shape[2])
    pad_m = mask.new_zeros(mask.shape[0], n - N)
    return torch.cat([x, pad_x], 1), torch.cat([mask, pad_m], 1)


def jet_axis(p4: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(pT, eta, phi)`` of the jet (sum of the valid constituents), each ``(B,)``."""
    return pt_eta_phi(jet_p4(p4, mask))


def relative_features(
    p4: Tensor, mask: Tensor, n: int
) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor, Tensor]]:
    """Relative coordinates ``(pT_rel, eta_rel, phi_rel)`` of the first ``n`` slots plus the jet axis.

    The jet axis is computed from *all* valid input particles before truncation, so the coordinates are
    relative to
    the physical jet. Returns ``(rel (B, n, 3), mask (B, n), (jet_pt, jet_eta, jet_phi))`` in the input's
    dtype.
    """
    rel = relative_coordinates(p4, mask)
    axis = jet_axis(p4, mask)
    rel, mask = fit_slots(rel, mask, n)
    return rel, mask, axis
