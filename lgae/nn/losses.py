"""Reconstruction distances between particle sets (batched, masked). Re-exported by :mod:`lgae.train.losses`.

Every function returns one value per jet, shape ``(B,)``; the trainer averages over the batch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def _valid(mask: Tensor | None, x: Tensor) -> Tensor:
    if mask is None:
        return torch.ones(x.shape[:-1], dtype=torch.bool, device=x.device)
    if mask.shape != x.shape[:-1]:
        raise ValueError(
            f"mask shape {tuple(mask.shape)} does not match particles shape {tuple(x.shape[:-1])}"
        )
    return mask.bool()


def pairwise_sq_dist(x: Tensor, y: Tensor) -> Tensor:
    """Squared Euclidean distances ``(B, N, M)`` between ``x (B, N, F)`` and ``y (B, M, F)``.

    Computed from differences (not ``|x|^2 + |y|^2 - 2xy``) so that small distances keep their relative
    precision: one feature at a time, ``d += (x_k - y_k)^2`` over ``(B, N, M)`` planes read from
    component-major copies of the inputs (no ``(B, N, M, F)`` temporary; ~1.5x faster than ``cdist``'s
    difference mode followed by a square, and exact where its square root and square round twice).
    """
    if x.is_complex() or y.is_complex():
        return (x[:, :, None, :] - y[:, None, :, :]).pow(2).sum(-1)
    xc, yc = x.permute(2, 0, 1).contiguous(), y.permute(2, 0, 1).contiguous()  # (F, B, N), (F, B, M)
    d = None
    for k in range(xc.shape[0]):
        t = xc[k, :, :, None] - yc[k, :, None, :]
        d = t * t if d is None else d.addcmul_(t, t)  # in place: autograd keeps t, not d
    if d is None:  # no features: all distances zero
        return x.new_zeros(x.shape[0], x.shape[1], y.shape[1])
    return d


def chamfer_distance(
    x: Tensor, y: Tensor, mask_x: Tensor | None = None, mask_y: Tensor | None = None, squared: bool = True
) -> Tensor:
    """Symmetric Chamfer distance per jet.

    ``0.5 * (mean_{i valid in x} min_{j valid in y} d_ij + mean_{j valid in y} min_{i valid in x} d_ij)``,
    with ``d`` the squared (default) or plain Euclidean distance. Jets with no valid particle on a side give
    0 for that term.

    Parameters
    ----------
    x, y : Tensor
        ``(B, N, F)`` and ``(B, M, F)`` particle features.
    mask_x, mask_y : Tensor, optional
        ``(B, N)`` / ``(B, M)`` bool masks (True = real particle); None means all particles are real.
    squared : bool
        Use squared distances (training) or plain distances (the LGAE paper's evaluation score).
    """
    if x.dim() != 3 or y.dim() != 3 or x.shape[0] != y.shape[0] or x.shape[-1] != y.shape[-1]:
        raise ValueError(
            f"chamfer_distance expects (B, N, F) and (B, M, F); got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    mx, my = _valid(mask_x, x), _valid(mask_y, y)
    d = pairwise_sq_dist(x, y)
    if not squared:
        d = torch.sqrt(d + torch.finfo(d.dtype).tiny)
    big = torch.finfo(d.dtype).max
    # for each x_i the nearest valid y, for each y_j the nearest valid x (no mask pass for an all-valid side)
    d_x = (d if mask_y is None else torch.where(my[:, None, :], d, big)).amin(2)
    d_y = (d if mask_x is None else torch.where(mx[:, :, None], d, big)).amin(1)
    fx, fy = mx.to(d.dtype), my.to(d.dtype)
    term_x = (d_x * fx).nan_to_num(posinf=0.0).sum(1) / fx.sum(1).clamp_min(1)
    term_y = (d_y * fy).nan_to_num(posinf=0.0).sum(1) / fy.sum(1).clamp_min(1)
    empty = (fx.sum(1) == 0) | (fy.sum(1) == 0)
    return torch.where(empty, torch.zeros_like(term_x), 0.5 * (term_x + term_y))


def masked_mse(x: Tensor, y: Tensor, mask: Tensor | None = None) -> Tensor:
    """Slot-aligned mean squared error per jet over valid particles and all features, ``(B,)``."""
    if x.shape != y.shape:
        raise ValueError(f"masked_mse: shapes differ, {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.dim() == 2:  # flat features (B, F)
        return (x - y).pow(2).mean(-1)
    m = _valid(mask, x).to(x.dtype)
    se = (x - y).pow(2).sum(-1) * m
    return se.sum(1) / (m.sum(1).clamp_min(1) * x.shape[-1])


def kl_per_dim(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL divergence of ``N(mu, exp(logvar))`` to ``N(0, 1)`` per latent direction, ``(B, d)``."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0)


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL divergence to the standard normal prior per jet (summed over latent directions), ``(B,)``."""
    return kl_per_dim(mu, logvar).sum(-1)


def hungarian_distance(
    x: Tensor, y: Tensor, mask_x: Tensor | None = None, mask_y: Tensor | None = None
) -> Tensor:
    """Mean squared distance of the optimal one-to-one matching per jet (evaluation only, not differentiable).

    Solved exactly with :func:`scipy.optimize.linear_sum_assignment` on the valid particles of each jet; when
    the two sides have different counts, unmatched particles are left out (rectangular assignment).
    """
    mx, my = _valid(mask_x, x), _valid(mask_y, y)
    d = pairwise_sq_dist(x.detach(), y.detach()).cpu().double().numpy()
    mx_np, my_np = mx.cpu().numpy(), my.cpu().numpy()
    from scipy.optimize import linear_sum_assignment

    out = np.zeros(d.shape[0])
    for b in range(d.shape[0]):
        sub = d[b][np.ix_(mx_np[b], my_np[b])]
        if sub.size == 0:
            continue
        r, c = linear_sum_assignment(sub)
        out[b] = sub[r, c].mean()
    return torch.as_tensor(out, dtype=x.dtype, device=x.device)
