"""A plain MLP variational autoencoder (Gaussian latent, N(0, I) prior), on jets or on flat feature vectors.

Loss per example::

    recon + beta * KL,   recon = mean over the (valid) input numbers of ((x_hat - x) / std)^2,
                         KL    = sum over the latent_dim directions of KL(N(mu_i, sigma_i^2) || N(0, 1))

Normalisation matters for what ``beta`` means: with the reconstruction error *averaged* over the D input
numbers and the KL *summed* over latent directions, this loss is 1/D times the "summed squared error +
beta_eff * KL" loss of the linear-Gaussian toy theory (``symmetry_vae.md``) with ``beta_eff = beta * D``; a
direction with data variance ``lambda`` (in standardised units) stays active iff ``lambda > beta_eff / 2``.
``reduction="sum"`` uses the summed squared error instead, for which ``beta_eff = beta``.

Two input modes (``input_kind``):

* ``"jets"`` (default): ``model(p4, mask)``; the input is the flattened relative coordinates
  ``(pT_rel, eta_rel, phi_rel)`` of ``n_particles`` slots (truncated to the first ``n_particles`` or
  zero-padded; padded slots are 0), D = 3 * n_particles. The reconstruction error runs over the valid slots
  only and the reconstruction is zeroed at padded slots. ``out.p4`` rebuilds massless 4-momenta (GeV) from the
  reconstruction and the input jet's ``(pT, eta, phi)``.
* ``"features"``: ``model(x)`` with ``x (B, n_features)``; ``out.p4`` is None.

Optional standardisation: ``feature_mean`` / ``feature_std`` (lists of length D, stored as buffers)
standardise the input before the encoder and define the units of the reconstruction error;
``out.recon``/``out.target`` stay in the input's units. The toy generators already standardise, so the
default (None) is no standardisation.

Sampling: in train mode the decoder sees ``z = mu + sigma * eps`` (reparameterisation); in eval mode
``z = mu``, so evaluation and scores are deterministic. ``out.latent`` holds ``"mu"``, ``"logvar"`` and
``"z"``, each ``(B, latent_dim)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .._validate import ConfigError
from ..nn.features import from_relative_coordinates
from ..nn.losses import kl_divergence
from ._prep import clean_jets, relative_features
from .base import JetAutoencoder, ModelOutput
from .registry import register

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "linear": nn.Identity,
}


def _mlp(sizes: Sequence[int], activation: str) -> nn.Sequential:
    """Linear layers through ``sizes`` with ``activation`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(_ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


@register("vae")
class VAE(JetAutoencoder):
    """MLP VAE with a diagonal-Gaussian posterior and a standard-normal prior.

    The keyword arguments are the YAML ``model:`` keys.

    Parameters
    ----------
    input_kind : {"jets", "features"}
        What ``forward`` consumes (see the module docstring).
    n_particles : int
        Jets mode: particle slots (D = 3 * n_particles).
    n_features : int or None
        Features mode: D (may be left out when ``feature_mean`` is given).
    latent_dim : int
        Number of Gaussian latent directions.
    hidden : list of int
        Encoder hidden widths; the decoder uses them reversed. ``[]`` with ``activation: linear`` is the
        linear-Gaussian VAE of the toy theory.
    activation : {"relu", "elu", "tanh", "leaky_relu", "gelu", "silu", "linear"}
    beta : float
        Weight of the KL term (see the normalisation note above).
    reduction : {"mean", "sum"}
        Reconstruction error averaged (default) or summed over the input numbers.
    feature_mean, feature_std : list of float or None
        Standardisation of the D input numbers (both or neither).
    """

    def __init__(
        self,
        input_kind: str = "jets",
        n_particles: int = 30,
        n_features: int | None = None,
        latent_dim: int = 8,
        hidden: Sequence[int] = (64, 64),
        activation: str = "relu",
        beta: float = 1.0,
        reduction: str = "mean",
        feature_mean: Sequence[float] | None = None,
        feature_std: Sequence[float] | None = None,
    ):
        super().__init__()
        where = "model (vae)"
        if input_kind not in ("jets", "features"):
            raise ConfigError(f"{where}: input_kind must be 'jets' or 'features', got {input_kind!r}")
        if activation not in _ACTIVATIONS:
            raise ConfigError(
                f"{where}: unknown activation {activation!r} (choose from {', '.join(_ACTIVATIONS)})"
            )
        if reduction not in ("mean", "sum"):
            raise ConfigError(f"{where}: reduction must be 'mean' or 'sum', got {reduction!r}")
        if (feature_mean is None) != (feature_std is None):
            raise ConfigError(f"{where}: give both feature_mean and feature_std, or neither")
        self.input_kind = input_kind
        if input_kind == "jets":
            if n_particles is None or int(n_particles) < 1:
                raise ConfigError(f"{where}: n_particles must be >= 1 in jets mode, got {n_particles}")
            self.n_particles = int(n_particles)
            dim = 3 * self.n_particles
        else:
            if n_features is None and feature_mean is not None:
                n_features = len(feature_mean)
            if n_features is None or int(n_features) < 1:
                raise ConfigError(
                    f"{where}: features mode needs n_features (the length of each input vector)"
                )
            self.n_particles = None
            dim = int(n_features)
        if int(latent_dim) < 1:
            raise ConfigError(f"{where}: latent_dim must be >= 1, got {latent_dim}")
        if float(beta) < 0:
            raise ConfigError(f"{where}: beta must be >= 0, got {beta}")
        self._dim = dim
        self._latent_dim = int(latent_dim)
        self.beta = float(beta)
        self.reduction = reduction
        hidden = [int(h) for h in hidden]
        dtype = torch.get_default_dtype()
        if feature_mean is not None:
            mean = torch.as_tensor(feature_mean, dtype=dtype).flatten()
            std = torch.as_tensor(feature_std, dtype=dtype).flatten()
            if mean.numel() != dim or std.numel() != dim:
                raise ConfigError(
                    f"{where}: feature_mean/feature_std need {dim} entries (the input size), "
                    f"got {mean.numel()} and {std.numel()}"
                )
            if not bool((std > 0).all()):
                raise ConfigError(f"{where}: feature_std must be positive")
        else:
            mean, std = torch.zeros(dim, dtype=dtype), torch.ones(dim, dtype=dtype)
        self.register_buffer("feature_mean", mean)
        self.register_buffer("feature_std", std)
        self.encoder = _mlp([dim, *hidden, 2 * self._latent_dim], activation)
        self.decoder = _mlp([self._latent_dim, *reversed(hidden), dim], activation)

    # -- pieces ----------------------------------------------------------------------------------------------
    def encode(self, x_std: Tensor) -> tuple[Tensor, Tensor]:
        """Standardised input ``(B, D)`` -> ``(mu, logvar)``, each ``(B, latent_dim)``."""
        mu, logvar = self.encoder(x_std).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        """Latent ``(B, latent_dim)`` -> standardised reconstruction ``(B, D)``."""
        return self.decoder(z)

    def _inputs(self, x: Tensor, mask: Tensor | None):
        ref = next(self.parameters())
        if self.input_kind == "features":
            if x.dim() != 2 or x.shape[-1] != self._dim:
                raise ValueError(
                    f"vae (features mode) expects x of shape (B, {self._dim}); got {tuple(x.shape)}"
                )
            return x.to(device=ref.device, dtype=ref.dtype), None, None
        p4, mask = clean_jets(x, mask, ref.device)
        rel, mask, axis = relative_features(p4, mask, self.n_particles)
        return rel.to(ref.dtype), mask, axis

    def forward(self, x: Tensor, mask: Tensor | None = None) -> ModelOutput:
        """Jets: ``x`` = p4 ``(B, N, 4)`` in GeV with ``mask (B, N)``; features: ``x (B, D)``, no mask."""
        target, mask, axis = self._inputs(x, mask)
        flat = target.reshape(target.shape[0], -1)
        mu, logvar = self.encode((flat - self.feature_mean) / self.feature_std)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training else mu
        recon = (self.decode(z) * self.feature_std + self.feature_mean).reshape(target.shape)
        p4 = None
        extras: dict = {}
        if mask is not None:
            recon = recon * mask[..., None].to(recon.dtype)
            p4 = from_relative_coordinates(recon.to(axis[0].dtype), *axis) * mask[..., None].to(axis[0].dtype)
            extras["mask"] = mask
            extras["input_mask"] = mask
        return ModelOutput(
            p4=p4, latent={"mu": mu, "logvar": logvar, "z": z}, recon=recon, target=target, extras=extras
        )

    def _terms(self, out: ModelOutput) -> tuple[Tensor, Tensor]:
        """Per-example reconstruction error and KL, each ``(B,)``."""
        std = self.feature_std.reshape(out.target.shape[1:])
        se = ((out.recon - out.target) / std).pow(2)
        mask = out.extras.get("mask")
        if mask is None:
            rec = se.sum(-1)
            count = torch.full_like(rec, se.shape[-1])
        else:
            m = mask.to(se.dtype)
            rec = (se.sum(-1) * m).sum(-1)
            count = m.sum(-1) * se.shape[-1]
        if self.reduction == "mean":
            rec = rec / count.clamp_min(1)
        return rec, kl_divergence(out.latent["mu"], out.latent["logvar"])

    # -- interface -------------------------------------------------------------------------------------------
    def loss_per_jet(self, x: Tensor, mask: Tensor | None = None, out: ModelOutput | None = None) -> Tensor:
        """``recon + beta * KL`` per example (``(B,)``)."""
        if out is None:
            out = self(x, mask)
        rec, kl = self._terms(out)
        return rec + self.beta * kl

    def scores(self, x: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """``"default"`` = the loss ``recon + beta * KL``; ``"recon"`` and ``"kl"`` separately."""
        out = self(x, mask)
        rec, kl = self._terms(out)
        return {"default": rec + self.beta * kl, "recon": rec, "kl": kl}

    def latent_dim(self) -> int:
        return self._latent_dim

    def input_dim(self) -> int:
        return self._dim
