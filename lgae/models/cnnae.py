"""CNNAE baseline: a convolutional autoencoder on jet images (after Farina, Nakai & Shih; LGAE paper's CNNAE).

Input: ``n_pixels x n_pixels`` images of ``pT_rel`` in ``(eta_rel, phi_rel)`` over
``[-half_width, half_width)`` (:func:`lgae.nn.features.jet_image`; LGAE paper: 40 x 40, R = 0.8),
normalised to sum to 1 (particles outside the window are dropped first; an empty image stays all zero).

Architecture (``zichunhao/cnn-jet-autoencoder: cnnae_ucsd.py``, the Keras model behind the paper's table)::

    Conv(1 -> C, 3x3, stride 2, "same") ReLU -> Conv(C -> C, 3x3, stride 2, "same") ReLU -> Flatten
    -> Linear(C * (n/4)^2 -> latent_dim)                                            [latent, no activation]
    -> Linear(latent_dim -> C * (n/4)^2) ReLU -> reshape (C, n/4, n/4)
    -> ConvT(C -> C, 3x3, stride 2, "same") ReLU -> ConvT(C -> 1, 3x3, stride 2, "same")
    -> softmax over all pixels

with C = 128 and latent_dim = 55 in the paper (about 1.7 M parameters, almost all in the two linear maps).
"Same" padding with stride 2 is ``padding=1`` (+ ``output_padding=1`` for the transposed convolutions); Keras
pads asymmetrically (one pixel at the end) while PyTorch pads both sides, which shifts the sampling grid by
half a pixel and changes nothing else.

Loss and score per jet: the **summed** squared pixel error ``sum_pixels (x_hat - x)^2`` — the reference's
anomaly score, and ``n_pixels^2`` times the pixel-mean MSE that Keras trained on (the same optimum; the sum
keeps the numbers O(0.01-1) for images that sum to 1). ``out.recon``/``out.target`` are the images
``(B, n, n)``; ``out.p4`` is None.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._validate import ConfigError
from ..nn.features import jet_image
from ._prep import clean_jets
from .base import JetAutoencoder, ModelOutput
from .registry import register


@register("cnnae")
class CNNAE(JetAutoencoder):
    """Convolutional jet-image autoencoder.

    The keyword arguments are the YAML ``model:`` keys.

    Parameters
    ----------
    latent_dim : int
        Size of the linear bottleneck (paper: 55).
    channels : int
        Channels of both convolutions (paper: 128).
    n_pixels : int
        Image side (paper: 40); must be divisible by 4.
    half_width : float
        Image window ``[-half_width, half_width)`` in eta_rel and phi_rel (paper: 0.8).
    """

    def __init__(
        self, latent_dim: int = 55, channels: int = 128, n_pixels: int = 40, half_width: float = 0.8
    ):
        super().__init__()
        where = "model (cnnae)"
        if int(n_pixels) < 4 or int(n_pixels) % 4:
            raise ConfigError(f"{where}: n_pixels must be a positive multiple of 4, got {n_pixels}")
        if int(latent_dim) < 1 or int(channels) < 1:
            raise ConfigError(f"{where}: latent_dim and channels must be >= 1")
        if float(half_width) <= 0:
            raise ConfigError(f"{where}: half_width must be > 0, got {half_width}")
        self.n_pixels = int(n_pixels)
        self.half_width = float(half_width)
        self.channels = int(channels)
        self._latent_dim = int(latent_dim)
        c, s = self.channels, self.n_pixels // 4
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(c, c, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(c * s * s, self._latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(self._latent_dim, c * s * s),
            nn.ReLU(),
            nn.Unflatten(1, (c, s, s)),
            nn.ConvTranspose2d(c, c, 3, stride=2, padding=1, output_padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(c, 1, 3, stride=2, padding=1, output_padding=1),
        )

    def images(self, p4: Tensor, mask: Tensor | None = None) -> Tensor:
        """Normalised jet images ``(B, n, n)`` (each sums to 1, or is all zero) in the model's dtype."""
        ref = next(self.parameters())
        p4, mask = clean_jets(p4, mask, ref.device)
        img = jet_image(p4, mask, n_pixels=self.n_pixels, half_width=self.half_width)
        total = img.sum((-2, -1), keepdim=True)
        img = img / torch.where(total > 0, total, torch.ones_like(total))
        return img.to(ref.dtype)

    def encode(self, img: Tensor) -> Tensor:
        """Images ``(B, n, n)`` -> latent ``(B, latent_dim)``."""
        return self.encoder(img[:, None])

    def decode(self, z: Tensor) -> Tensor:
        """Latent -> images ``(B, n, n)`` with a softmax over all pixels (each sums to 1)."""
        logits = self.decoder(z).flatten(1)
        return torch.softmax(logits, dim=-1).view(-1, self.n_pixels, self.n_pixels)

    def forward(self, p4: Tensor, mask: Tensor | None = None) -> ModelOutput:
        img = self.images(p4, mask)
        z = self.encode(img)
        return ModelOutput(p4=None, latent={"z": z}, recon=self.decode(z), target=img)

    def loss_per_jet(self, p4: Tensor, mask: Tensor | None = None, out: ModelOutput | None = None) -> Tensor:
        """Summed squared pixel error per jet."""
        if out is None:
            out = self(p4, mask)
        return (out.recon - out.target).pow(2).flatten(1).sum(-1)

    def scores(self, p4: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """``"default"``: summed squared pixel error (the paper's score); ``"image_mse"``: its pixel mean."""
        out = self(p4, mask)
        sse = (out.recon - out.target).pow(2).flatten(1).sum(-1)
        return {"default": sse, "image_mse": sse / self.n_pixels**2}

    def latent_dim(self) -> int:
        return self._latent_dim

    def input_dim(self) -> int:
        """Pixels per image (the LGAE paper quotes compression against 3 x 30 particle numbers instead)."""
        return self.n_pixels**2
