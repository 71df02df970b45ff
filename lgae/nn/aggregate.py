"""Aggregation of per-particle equivariant features into a per-jet latent (``lgae.md`` §4.8).

All aggregators take scalars ``s (B, N, tau_s)`` and Cartesian 4-vectors ``v (B, N, tau_v, 4)`` (real, or
complex with complex weights) and a node mask, and return ``(scalars (B, n_s), vectors (B, n_v, 4))`` in the
same number type.

* :class:`SoftMinMax` (default for ``"minmax"``): continuous, permutation-invariant and Lorentz-equivariant.
  For each channel it takes the softmax-weighted averages ``sum_i softmax(+-k_i / T) v_i`` of the vectors with
  invariant keys ``k_i = psi(<v_i, v_i>)`` (``key="mass"``) or learned from the node scalars
  (``key="learned"``), and likewise soft max/min of the scalars. ``T -> 0`` recovers the reference's
  arg-max/arg-min selection, whose jumps on near-ties break equivariance numerically (``lgae.md`` §6.2).
  Complex features are handled part by part, like the reference.
* :class:`HardMinMax`: the reference (``faithful``): arg-min/arg-max of ``m^2`` over *all* slots, Re and Im
  parts separately; scalars: componentwise min, and for "max" the value of largest square (quirk Q5).
* :class:`MixAggregation`: a linear map over ``(particle slot, channel)`` per irrep (the paper's "Mix");
  equivariant but tied to the slot order (not permutation invariant).
* :class:`SumAggregation`: masked sum or mean.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .invariants import psi
from .layers import minkowski, minkowski_axis

__all__ = ["SoftMinMax", "HardMinMax", "MixAggregation", "SumAggregation", "build_aggregation"]


def _parts(x: Tensor) -> list[Tensor]:
    return [x.real, x.imag] if x.is_complex() else [x]


def _join(parts: list[Tensor]) -> Tensor:
    return torch.complex(parts[0], parts[1]) if len(parts) == 2 else parts[0]


class SoftMinMax(nn.Module):
    """Soft (softmax-weighted) min and max over valid particles; outputs ``2 tau_s`` scalars and ``2 tau_v``
    vectors (max block first, then min).

    Parameters
    ----------
    tau_s, tau_v : int
        Channels in.
    temperature : float
        Initial softmax temperature (learnable per channel, kept positive through its log).
    key : str
        ``"mass"``: ``psi(m^2)`` of each vector channel; ``"learned"``: a linear map of the node scalars (real
        parts).
    learn_temperature : bool
        Train the temperatures.
    """

    def __init__(
        self,
        tau_s: int,
        tau_v: int,
        temperature: float = 0.1,
        key: str = "mass",
        learn_temperature: bool = True,
    ):
        super().__init__()
        if key not in ("mass", "learned"):
            raise ValueError(f"minmax key must be 'mass' or 'learned'; got {key!r}")
        self.key = key
        lt = torch.full((tau_s + tau_v,), math.log(temperature))
        self.log_t = nn.Parameter(lt) if learn_temperature else nn.Parameter(lt, requires_grad=False)
        self.tau_s, self.tau_v = tau_s, tau_v
        if key == "learned":
            self.key_map = nn.Linear(tau_s, tau_v)

    def forward(self, s: Tensor, v: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Particle-major ``s (B, N, tau_s)``, ``v (B, N, tau_v, 4)`` -> ``(B, 2 tau_s)``, ``(B, 2 tau_v,
        4)``: :meth:`forward_cm` on permuted views."""
        return self.forward_cm(s.permute(2, 0, 1), v.permute(2, 3, 0, 1), mask)

    @staticmethod
    def _softsel_cm(values: Tensor, keys: Tensor, t: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Softmax(+k/T)- and softmax(-k/T)-weighted sums over the particles of channel-major ``values (C,
        [4,] B, N)`` with keys ``(C, B, N)``, along the contiguous particle axis. Both selections come from
        one softmax over ``(+k, -k)`` stacked in front; padded slots get the most negative logit and a zero
        weight (a jet with no valid slot gives zeros)."""
        neg = torch.finfo(keys.dtype).min
        k = keys / t[:, None, None]
        w = torch.softmax(torch.stack([k, -k]).masked_fill(~mask, neg), dim=-1) * mask  # (2, C, B, N)
        if values.dim() == 4:
            w = w[:, :, None]
        sel = (w * values).sum(-1)  # (2, C, [4,] B)
        return sel[0], sel[1]

    def forward_cm(self, s: Tensor, v: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Channel-major scalars ``s (tau_s, B, N)`` and component-major vectors ``v (tau_v, 4, B, N)`` (the
        LGAE fast path's layout) -> ``(B, 2 tau_s)``, ``(B, 2 tau_v, 4)``."""
        mask = mask.bool()
        t = self.log_t.exp()
        ts, tv = t[: self.tau_s], t[self.tau_s :]
        smax, smin = [], []
        for part in _parts(s):
            hi, lo = self._softsel_cm(part, part, ts, mask)
            smax.append(hi.T)
            smin.append(lo.T)
        vmax, vmin = [], []
        for part in _parts(v):
            if self.key == "mass":
                keys = psi(minkowski_axis(part, part, 1))
            else:
                sr = (s.real if s.is_complex() else s).to(self.key_map.weight.dtype)
                keys = torch.addmm(
                    self.key_map.bias[:, None], self.key_map.weight, sr.reshape(sr.shape[0], -1)
                )
                keys = keys.view(-1, *sr.shape[1:]).to(part.dtype)
            hi, lo = self._softsel_cm(part, keys, tv, mask)
            vmax.append(hi.permute(2, 0, 1))
            vmin.append(lo.permute(2, 0, 1))
        scal = torch.cat([_join(smax), _join(smin)], -1)
        vec = torch.cat([_join(vmax), _join(vmin)], -2)
        return scal, vec


class HardMinMax(nn.Module):
    """The reference Min-Max (quirks Q5/Q6): arg-min/arg-max of ``m^2`` over all slots (no mask), per channel
    and per real/imaginary part; scalar min componentwise, scalar "max" = value with the largest square."""

    def forward(self, s: Tensor, v: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        smax, smin = [], []
        for part in _parts(s):
            smin.append(part.min(1).values)
            idx = (part * part).argmax(1, keepdim=True)
            smax.append(part.gather(1, idx)[:, 0])
        vmax, vmin = [], []
        for part in _parts(v):
            m2 = minkowski(part, part)  # (B, N, C)
            for sel, out in ((m2.argmax(1), vmax), (m2.argmin(1), vmin)):
                idx = sel[:, None, :, None].expand(-1, 1, -1, 4)
                out.append(part.gather(1, idx)[:, 0])
        return torch.cat([_join(smax), _join(smin)], -1), torch.cat([_join(vmax), _join(vmin)], -2)


class MixAggregation(nn.Module):
    """The paper's "Mix": per irrep a linear map ``C^(N tau_in) -> C^(tau_out)`` over (slot, channel),
    particle-major."""

    def __init__(
        self,
        n_particles: int,
        tau_s_in: int,
        tau_v_in: int,
        tau_s: int,
        tau_v: int,
        complex_weights: bool = False,
    ):
        super().__init__()
        nc = 2 if complex_weights else 1
        self.complex_weights = complex_weights
        self.ws = nn.Parameter(
            torch.randn(nc, tau_s, n_particles * tau_s_in) / math.sqrt(n_particles * tau_s_in * nc)
        )
        self.wv = nn.Parameter(
            torch.randn(nc, tau_v, n_particles * tau_v_in) / math.sqrt(n_particles * tau_v_in * nc)
        )

    def _w(self, w: Tensor) -> Tensor:
        return torch.complex(w[0], w[1]) if self.complex_weights else w[0]

    def forward(self, s: Tensor, v: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        B = s.shape[0]
        ws, wv = self._w(self.ws).to(s.dtype), self._w(self.wv).to(v.dtype)
        scal = s.reshape(B, -1) @ ws.transpose(0, 1)
        vec = torch.einsum("ok,bkm->bom", wv, v.reshape(B, -1, 4))
        return scal, vec


class SumAggregation(nn.Module):
    """Masked sum (``mean=False``) or mean over particles."""

    def __init__(self, mean: bool = False):
        super().__init__()
        self.mean = mean

    def forward(self, s: Tensor, v: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        m = mask.to(s.real.dtype)
        scal = (s * m[..., None]).sum(1)
        vec = (v * m[..., None, None]).sum(1)
        if self.mean:
            n = m.sum(1).clamp_min(1.0)
            scal, vec = scal / n[:, None], vec / n[:, None, None]
        return scal, vec


def build_aggregation(
    kind: str,
    *,
    n_particles: int,
    tau_s_in: int,
    tau_v_in: int,
    tau_s: int,
    tau_v: int,
    complex_weights: bool,
    faithful: bool,
    temperature: float,
    key: str,
):
    """Aggregator and the number of (complex if complex_weights) latent scalars / vectors it outputs."""
    if kind == "minmax":
        if tau_s_in != tau_s or tau_v_in != tau_v:
            raise ValueError("minmax aggregates the latent channels as they are (tau_in == tau_out)")
        mod = HardMinMax() if faithful else SoftMinMax(tau_s, tau_v, temperature=temperature, key=key)
        return mod, 2 * tau_s, 2 * tau_v
    if kind == "mix":
        return MixAggregation(n_particles, tau_s_in, tau_v_in, tau_s, tau_v, complex_weights), tau_s, tau_v
    if kind in ("sum", "mean"):
        if tau_s_in != tau_s or tau_v_in != tau_v:
            raise ValueError(f"{kind} aggregates the latent channels as they are (tau_in == tau_out)")
        return SumAggregation(mean=kind == "mean"), tau_s, tau_v
    raise ValueError(f"unknown aggregation {kind!r}; choose from 'minmax', 'mix', 'sum', 'mean'")
