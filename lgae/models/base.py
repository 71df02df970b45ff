"""The interface every lgae model implements, so the trainer and the evaluator never special-case a model."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


@dataclass
class ModelOutput:
    """What ``model(p4, mask)`` returns.

    Attributes
    ----------
    p4 : Tensor or None
        Reconstructed 4-momenta ``(B, N_out, 4)`` as ``(E, px, py, pz)`` in the *input's units*
        (particle-level models); None for models that reconstruct something else (e.g. images, toy features).
    latent : dict of str -> Tensor
        Named latent tensors, batch first. The LGAE has ``"scalars"`` ``(B, n_s)`` and ``"vectors"``
        ``(B, tau, 4)``; Gaussian-latent models have ``"mu"`` and ``"logvar"`` ``(B, d)``.
    recon : Tensor or None
        The reconstruction in the model's own feature space (image, relative coordinates, flat features).
    target : Tensor or None
        The model's featurised input that ``recon`` is compared with.
    extras : dict
        Anything else a model wants to expose (e.g. the input mask it used).
    """

    p4: Tensor | None
    latent: dict[str, Tensor]
    recon: Tensor | None = None
    target: Tensor | None = None
    extras: dict = field(default_factory=dict)


class JetAutoencoder(nn.Module):
    """Base class of every registered model.

    Subclasses implement :meth:`forward` and :meth:`loss_per_jet`. Inputs are raw 4-momenta ``p4 (B, N, 4)``
    in the data's units (GeV) and ``mask (B, N)`` bool (True = real particle); all preprocessing (global
    momentum scale, featurisation) happens inside the model and is stored in its buffers/config, so a run
    directory rebuilds it. Toy-feature models (the VAE on toy data) accept ``x (B, D)`` with ``mask=None``.
    """

    #: registry name, set by :func:`lgae.models.registry.register`
    name: str = "base"
    #: kind of input the model consumes: "jets" (p4, mask) or "features" (x,)
    input_kind: str = "jets"

    def forward(self, p4: Tensor, mask: Tensor | None = None) -> ModelOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def loss_per_jet(self, p4: Tensor, mask: Tensor | None = None, out: ModelOutput | None = None) -> Tensor:
        """Training loss of each jet, shape ``(B,)``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def loss(self, p4: Tensor, mask: Tensor | None = None) -> Tensor:
        """Scalar training loss: the mean over the batch of :meth:`loss_per_jet`."""
        return self.loss_per_jet(p4, mask).mean()

    def scores(self, p4: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """All anomaly scores the model offers, each ``(B,)`` with higher = more anomalous.

        The key ``"default"`` is the score :meth:`anomaly_score` returns; subclasses may add alternatives
        (e.g. ``"chamfer"``, ``"mse"``, ``"latent_norm"``).
        """
        return {"default": self.loss_per_jet(p4, mask)}

    @torch.no_grad()
    def anomaly_score(self, p4: Tensor, mask: Tensor | None = None) -> Tensor:
        """Per-jet anomaly score ``(B,)``, higher = more anomalous (default: the reconstruction loss)."""
        return self.scores(p4, mask)["default"]

    def latent_dim(self) -> int:
        """Number of real numbers in one jet's latent representation (for compression ratios)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def input_dim(self) -> int | None:
        """Number of real numbers in one input (e.g. 4 x n_particles), if fixed."""
        return None

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def _cast(self, x: Tensor) -> Tensor:
        """Move/cast an input to this model's parameter dtype and device."""
        ref = next(self.parameters(), None)
        if ref is None:
            return x
        if x.is_floating_point():
            return x.to(device=ref.device, dtype=ref.dtype)
        return x.to(device=ref.device)
