"""GNNAE baselines: fully connected message-passing autoencoders on particles (Hao et al., MPGAN-style).

Two registered models share the message-passing code:

* ``gnnae-jl`` — jet-level latent: the encoder's per-particle outputs are mean-pooled over the valid particles
  into one vector of ``latent_dim`` numbers; a linear map turns it back into ``n_particles`` initial node
  states that the decoder's message passing turns into particles. Trained with the (squared) Chamfer distance.
* ``gnnae-pl`` — particle-level latent: ``latent_node_dim`` numbers per particle (the PGAE of Tsan et al.);
  the decoder maps each back to a node state. Trained with the slot-aligned MSE.

Both work on relative coordinates ``(pT_rel, eta_rel, phi_rel)``
(:func:`lgae.nn.features.relative_coordinates`), optionally multiplied by ``feature_scale``;
``out.recon``/``out.target`` are in *unscaled* relative coordinates, losses and scores in scaled ones.
``out.p4`` rebuilds massless 4-momenta (GeV) from the reconstruction and the input jet's ``(pT, eta, phi)``
(:func:`lgae.nn.features.from_relative_coordinates`).

One message-passing layer (dissertation of R. Kansal, App. 6, eqs. for the GNNAE; code
``zichunhao/gnn-jet-autoencoder: models/graphnet.py``)::

    m_i      = AGG_{j valid, j != i}  f_e([h_i, h_j, d_ij]),   d_ij = |h_i - h_j|^2
    h_i'     = f_n([h_i, m_i])

with LeakyReLU(negative_slope) after every linear layer of ``f_e`` and ``f_n``. Default sizes are the paper's:
node widths (30, 15, 8) and edge MLPs (50, 40, 30), (30, 30, 30), (16, 20, 30), three layers in encoder and
decoder.

Deliberate differences from the reference code ("clean" semantics, documented):

* padded particles are masked: they send no message, receive none, and their states are zeroed after each
  layer (the reference lets the zero-padded slots of JetNet take part and includes the self-edge ``j = i``);
* the input ``(pT_rel, eta_rel, phi_rel)`` is embedded by a linear layer into the first node width (the
  reference zero-pads the 3 features to 30);
* the *last* linear layer of the encoder and of the decoder has no activation (the reference applies LeakyReLU
  to the latent and to the reconstructed coordinates too);
* the Chamfer loss runs over valid particles only, per jet ``0.5 * (mean_i min_j + mean_j min_i)`` of squared
  distances (:func:`lgae.nn.losses.chamfer_distance`), not over all 30 zero-padded slots summed over the
  batch.

``decoder_mask`` (``gnnae-jl`` only) decides which of the ``n_particles`` output slots are real: ``"input"``
(default) — the input jet's mask, so the decoder emits as many particles as the jet has, its padded slots are
zero and never free parameters (the multiplicity is thereby given to the decoder); ``"none"`` — all
``n_particles`` output slots are real and the Chamfer distance compares the jet's valid particles with all of
them (the multiplicity must then be encoded in the latent, duplicates cost nothing).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .._validate import ConfigError
from ..nn.features import from_relative_coordinates
from ..nn.losses import chamfer_distance, masked_mse
from ._prep import clean_jets, relative_features
from .base import JetAutoencoder, ModelOutput
from .registry import register

#: the paper's node widths and edge-MLP sizes (3 message-passing layers)
PAPER_NODE_SIZES = (30, 15, 8)
PAPER_EDGE_SIZES = ((50, 40, 30), (30, 30, 30), (16, 20, 30))


class MessagePassing(nn.Module):
    """One fully connected message-passing layer on masked particle sets.

    Parameters
    ----------
    in_dim, out_dim : int
        Node state width before and after the layer.
    edge_sizes : sequence of int
        Widths of the edge MLP ``f_e`` (its input is ``2 * in_dim + 1``); the message width is
        ``edge_sizes[-1]``.
    negative_slope : float
        LeakyReLU slope.
    aggregation : {"sum", "mean"}
        How messages from the valid neighbours ``j != i`` are combined.
    out_activation : bool
        Apply LeakyReLU to the layer output (False for the last layer of a network).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        edge_sizes: Sequence[int],
        negative_slope: float = 0.2,
        aggregation: str = "mean",
        out_activation: bool = True,
    ):
        super().__init__()
        edge_sizes = [int(e) for e in edge_sizes]
        if not edge_sizes:
            raise ConfigError("each message-passing layer needs at least one edge-MLP width")
        self.aggregation = aggregation
        act = lambda: nn.LeakyReLU(negative_slope)  # noqa: E731
        # first edge layer on [h_i, h_j, d_ij], split so that it costs O(N) instead of O(N^2) matrix products;
        # identical to nn.Linear(2 * in_dim + 1, edge_sizes[0]) on the concatenation
        self.edge_i = nn.Linear(in_dim, edge_sizes[0])
        self.edge_j = nn.Linear(in_dim, edge_sizes[0], bias=False)
        self.edge_d = nn.Linear(1, edge_sizes[0], bias=False)
        layers: list[nn.Module] = [act()]
        for a, b in zip(edge_sizes[:-1], edge_sizes[1:]):
            layers += [nn.Linear(a, b), act()]
        self.edge_mlp = nn.Sequential(*layers)
        node: list[nn.Module] = [
            nn.Linear(in_dim + edge_sizes[-1], in_dim),
            act(),
            nn.Linear(in_dim, out_dim),
        ]
        if out_activation:
            node.append(act())
        self.node_mlp = nn.Sequential(*node)

    def forward(self, h: Tensor, mask: Tensor, pair: Tensor | None = None) -> Tensor:
        """``h (B, N, in_dim)`` with zeros at padded slots, ``mask (B, N)`` bool -> ``(B, N, out_dim)``.

        ``pair`` (optional, ``(B, N, N)`` float, see :func:`pair_weights`) avoids recomputing the edge mask
        per layer.
        """
        if pair is None:
            pair = pair_weights(mask, h.dtype)
        sq = h.pow(2).sum(-1)
        # squared distances via the Gram matrix: O(N^2) memory instead of O(N^2 F); clamped against round-off
        d = (sq[:, :, None] + sq[:, None, :] - 2 * h @ h.transpose(1, 2)).clamp_min(0)
        d = d[..., None]  # (B, N, N, 1)
        a = (self.edge_i(h)[:, :, None, :] + self.edge_j(h)[:, None, :, :]).add_(d * self.edge_d.weight[:, 0])
        e = self.edge_mlp(a)  # (B, N, N, E): message from j to i
        m = torch.matmul(pair[:, :, None, :], e).squeeze(2)  # sum over valid j != i, (B, N, E)
        if self.aggregation == "mean":
            m = m / pair.sum(2, keepdim=True).clamp_min(1)
        out = self.node_mlp(torch.cat([h, m], -1))
        return out * mask[..., None].to(out.dtype)


def pair_weights(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """``(B, N, N)`` weights of the edges j -> i that carry messages: both particles valid and ``j != i``."""
    eye = torch.eye(mask.shape[1], dtype=torch.bool, device=mask.device)
    return (mask[:, :, None] & mask[:, None, :] & ~eye).to(dtype)


class GraphNet(nn.Module):
    """Stacked :class:`MessagePassing` layers, widths ``node_sizes[0] -> node_sizes[1] -> ... -> out_dim``."""

    def __init__(
        self,
        node_sizes: Sequence[int],
        edge_sizes: Sequence[Sequence[int]],
        out_dim: int,
        negative_slope: float,
        aggregation: str,
    ):
        super().__init__()
        widths = [int(s) for s in node_sizes] + [int(out_dim)]
        self.layers = nn.ModuleList(
            MessagePassing(
                widths[t],
                widths[t + 1],
                edge_sizes[t],
                negative_slope,
                aggregation,
                out_activation=t < len(node_sizes) - 1,
            )
            for t in range(len(node_sizes))
        )

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        pair = pair_weights(mask, h.dtype)
        for layer in self.layers:
            h = layer(h, mask, pair)
        return h


class _GNNAE(JetAutoencoder):
    """Shared featurisation, encoder/decoder message passing and output assembly of the two GNNAEs."""

    level: str = "jet"

    def _setup(
        self,
        n_particles: int,
        node_sizes: Sequence[int],
        edge_sizes: Sequence[Sequence[int]],
        negative_slope: float,
        aggregation: str,
        feature_scale: Sequence[float],
        encoder_out: int,
    ) -> None:
        where = f"model ({self.name})"
        if int(n_particles) < 1:
            raise ConfigError(f"{where}: n_particles must be >= 1, got {n_particles}")
        node_sizes = [int(s) for s in node_sizes]
        edge_sizes = [[int(e) for e in es] for es in edge_sizes]
        if not node_sizes or any(s < 1 for s in node_sizes):
            raise ConfigError(
                f"{where}: node_sizes must be a non-empty list of positive widths, got {node_sizes}"
            )
        if len(edge_sizes) != len(node_sizes):
            raise ConfigError(
                f"{where}: edge_sizes needs one list of widths per message-passing layer "
                f"({len(node_sizes)} = len(node_sizes)), got {len(edge_sizes)}"
            )
        if aggregation not in ("sum", "mean"):
            raise ConfigError(f"{where}: aggregation must be 'sum' or 'mean', got {aggregation!r}")
        feature_scale = [float(s) for s in feature_scale]
        if len(feature_scale) != 3 or any(s <= 0 for s in feature_scale):
            raise ConfigError(f"{where}: feature_scale needs 3 positive numbers (pT_rel, eta_rel, phi_rel)")
        self.n_particles = int(n_particles)
        self.register_buffer("feature_scale", torch.tensor(feature_scale, dtype=torch.get_default_dtype()))
        self.embed = nn.Linear(3, node_sizes[0])
        self.encoder = GraphNet(node_sizes, edge_sizes, encoder_out, negative_slope, aggregation)
        self.decoder = GraphNet(node_sizes, edge_sizes, 3, negative_slope, aggregation)

    # -- pieces ----------------------------------------------------------------------------------------------
    def _featurise(self, p4: Tensor, mask: Tensor | None):
        ref = next(self.parameters())
        p4, mask = clean_jets(p4, mask, ref.device)
        rel, mask, axis = relative_features(p4, mask, self.n_particles)
        return rel.to(ref.dtype), mask, axis

    def encode_nodes(self, x: Tensor, mask: Tensor) -> Tensor:
        """Scaled features ``(B, N, 3)`` -> per-particle encoder outputs ``(B, N, out)``, 0 at padding."""
        h = self.embed(x) * mask[..., None].to(x.dtype)
        return self.encoder(h, mask)

    def _assemble(
        self, rel: Tensor, in_mask: Tensor, axis, recon_scaled: Tensor, out_mask: Tensor, latent, p4_dtype
    ):
        recon = recon_scaled / self.feature_scale
        jpt, jeta, jphi = axis
        p4 = from_relative_coordinates(recon.to(p4_dtype), jpt, jeta, jphi)
        p4 = p4 * out_mask[..., None].to(p4.dtype)
        return ModelOutput(
            p4=p4,
            latent=latent,
            recon=recon,
            target=rel,
            extras={"mask": out_mask, "input_mask": in_mask, "recon_scaled": recon_scaled},
        )

    def _distances(self, out: ModelOutput) -> dict[str, Tensor]:
        s = self.feature_scale
        x, y = out.recon * s, out.target * s
        mo, mi = out.extras["mask"], out.extras["input_mask"]
        d = {
            "chamfer": chamfer_distance(x, y, mo, mi, squared=True),
            "chamfer_euclidean": chamfer_distance(x, y, mo, mi, squared=False),
        }
        if self.level == "particle":
            d["mse"] = masked_mse(x, y, mi)
        return d

    # -- interface -------------------------------------------------------------------------------------------
    def loss_per_jet(self, p4: Tensor, mask: Tensor | None = None, out: ModelOutput | None = None) -> Tensor:
        if out is None:
            out = self(p4, mask)
        s = self.feature_scale
        x, y = out.recon * s, out.target * s
        if self.level == "particle":
            return masked_mse(x, y, out.extras["input_mask"])
        return chamfer_distance(x, y, out.extras["mask"], out.extras["input_mask"], squared=True)

    def scores(self, p4: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """All scores, ``(B,)`` each, higher = more anomalous.

        ``"default"``: the training loss per jet (Chamfer for JL, MSE for PL); ``"chamfer"`` (squared
        distances); ``"chamfer_euclidean"`` (plain distances, as the LGAE paper's evaluation, but over valid
        particles only); for PL also ``"mse"``.
        """
        out = self(p4, mask)
        d = self._distances(out)
        d["default"] = d["mse"] if self.level == "particle" else d["chamfer"]
        return d

    def input_dim(self) -> int:
        return 3 * self.n_particles


@register("gnnae-jl")
class GNNAEJL(_GNNAE):
    """GNNAE with a jet-level latent (mean over the particles' encoder outputs); Chamfer loss.

    The keyword arguments are the YAML ``model:`` keys.

    Parameters
    ----------
    n_particles : int
        Particle slots (input truncated to the first ``n_particles`` or zero-padded; output slots of the
        decoder).
    latent_dim : int
        Size of the jet latent vector (paper: 10, 40, 80).
    node_sizes : list of int
        Node state width entering each message-passing layer (encoder and decoder alike).
    edge_sizes : list of list of int
        Edge-MLP widths of each layer.
    negative_slope : float
        LeakyReLU slope (paper: 0.2).
    aggregation : {"sum", "mean"}
        Message aggregation over neighbours (reference: sum).
    feature_scale : list of 3 floats
        Multipliers of ``(pT_rel, eta_rel, phi_rel)`` before the network and in the loss.
    decoder_mask : {"input", "none"}
        Which output slots are real, see the module docstring.
    """

    level = "jet"

    def __init__(
        self,
        n_particles: int = 30,
        latent_dim: int = 10,
        node_sizes: Sequence[int] = PAPER_NODE_SIZES,
        edge_sizes: Sequence[Sequence[int]] = PAPER_EDGE_SIZES,
        negative_slope: float = 0.2,
        aggregation: str = "mean",
        feature_scale: Sequence[float] = (1.0, 1.0, 1.0),
        decoder_mask: str = "input",
    ):
        super().__init__()
        if int(latent_dim) < 1:
            raise ConfigError(f"model (gnnae-jl): latent_dim must be >= 1, got {latent_dim}")
        if decoder_mask not in ("input", "none"):
            raise ConfigError(
                f"model (gnnae-jl): decoder_mask must be 'input' or 'none', got {decoder_mask!r}"
            )
        self._setup(
            n_particles, node_sizes, edge_sizes, negative_slope, aggregation, feature_scale, int(latent_dim)
        )
        self._latent_dim = int(latent_dim)
        self.decoder_mask = decoder_mask
        self.h0 = int(list(node_sizes)[0])
        self.expand = nn.Linear(self._latent_dim, self.n_particles * self.h0)

    def encode(self, x: Tensor, mask: Tensor) -> Tensor:
        """Scaled features ``(B, N, 3)`` -> jet latent ``(B, latent_dim)`` (mean over valid particles)."""
        h = self.encode_nodes(x, mask)
        m = mask[..., None].to(h.dtype)
        return (h * m).sum(1) / m.sum(1).clamp_min(1)

    def decode(self, z: Tensor, out_mask: Tensor) -> Tensor:
        """Jet latent ``(B, latent_dim)`` -> scaled features ``(B, n_particles, 3)``, 0 at masked slots."""
        h = self.expand(z).view(z.shape[0], self.n_particles, self.h0) * out_mask[..., None].to(z.dtype)
        return self.decoder(h, out_mask)

    def forward(self, p4: Tensor, mask: Tensor | None = None) -> ModelOutput:
        rel, mask, axis = self._featurise(p4, mask)
        z = self.encode(rel * self.feature_scale, mask)
        out_mask = mask if self.decoder_mask == "input" else torch.ones_like(mask)
        recon_scaled = self.decode(z, out_mask)
        return self._assemble(rel, mask, axis, recon_scaled, out_mask, {"z": z}, axis[0].dtype)

    def latent_dim(self) -> int:
        return self._latent_dim


@register("gnnae-pl")
class GNNAEPL(_GNNAE):
    """GNNAE with a particle-level latent (``latent_node_dim`` numbers per particle); slot-aligned MSE loss.

    The keyword arguments are the YAML ``model:`` keys.

    Parameters
    ----------
    n_particles : int
        Particle slots (input truncated to the first ``n_particles`` or zero-padded).
    latent_node_dim : int
        Latent numbers per particle (paper: 2 or 3, i.e. 2x30 / 3x30).
    node_sizes, edge_sizes, negative_slope, aggregation, feature_scale
        As for ``gnnae-jl``.
    """

    level = "particle"

    def __init__(
        self,
        n_particles: int = 30,
        latent_node_dim: int = 2,
        node_sizes: Sequence[int] = PAPER_NODE_SIZES,
        edge_sizes: Sequence[Sequence[int]] = PAPER_EDGE_SIZES,
        negative_slope: float = 0.2,
        aggregation: str = "mean",
        feature_scale: Sequence[float] = (1.0, 1.0, 1.0),
    ):
        super().__init__()
        if int(latent_node_dim) < 1:
            raise ConfigError(f"model (gnnae-pl): latent_node_dim must be >= 1, got {latent_node_dim}")
        self._setup(
            n_particles,
            node_sizes,
            edge_sizes,
            negative_slope,
            aggregation,
            feature_scale,
            int(latent_node_dim),
        )
        self.latent_node_dim = int(latent_node_dim)
        self.expand = nn.Linear(self.latent_node_dim, int(list(node_sizes)[0]))

    def encode(self, x: Tensor, mask: Tensor) -> Tensor:
        """Scaled features ``(B, N, 3)`` -> per-particle latents ``(B, N, latent_node_dim)``, 0 at padding."""
        return self.encode_nodes(x, mask)

    def decode(self, z: Tensor, mask: Tensor) -> Tensor:
        """Per-particle latents -> scaled features ``(B, N, 3)``, zero at padded slots."""
        h = self.expand(z) * mask[..., None].to(z.dtype)
        return self.decoder(h, mask)

    def forward(self, p4: Tensor, mask: Tensor | None = None) -> ModelOutput:
        rel, mask, axis = self._featurise(p4, mask)
        z = self.encode(rel * self.feature_scale, mask)
        recon_scaled = self.decode(z, mask)
        return self._assemble(rel, mask, axis, recon_scaled, mask, {"z": z}, axis[0].dtype)

    def latent_dim(self) -> int:
        return self.latent_node_dim * self.n_particles
