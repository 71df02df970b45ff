"""Reconstruction losses used in training, re-exported from :mod:`lgae.nn.losses` (the models import them).

Every distance returns one value per jet, shape ``(B,)``; the trainer averages ``model.loss_per_jet`` over a
batch.
"""

from lgae.nn.losses import (
    chamfer_distance,
    hungarian_distance,
    kl_divergence,
    kl_per_dim,
    masked_mse,
    pairwise_sq_dist,
)

__all__ = [
    "chamfer_distance",
    "hungarian_distance",
    "kl_divergence",
    "kl_per_dim",
    "masked_mse",
    "pairwise_sq_dist",
]
