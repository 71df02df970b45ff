"""Named, invertible transforms of jets ``(p4, mask) -> x`` with ``forward``, ``inverse`` and ``state_dict``.

Every transform works on torch tensors ``p4 (..., N, 4)`` as ``(E, px, py, pz)`` with ``mask (..., N)`` bool,
batched or not, and leaves padded slots at 0. ``transform(p4, mask)`` is ``transform.forward(p4, mask)``;
``transform.inverse(x, mask, **context)`` maps back to 4-momenta where that is possible (see each class);
``transform.state_dict()`` returns ``{"name": ..., **params}`` and :func:`from_state_dict` rebuilds it, so a
run directory can record the preprocessing.

.. important::
   Lorentz-equivariant models must see **raw 4-momenta**: the only admissible preprocessing is a *global*
   momentum scale (:class:`MomentumScale`, e.g. GeV -> TeV), which commutes with every Lorentz transformation.
   Per-component standardisation (subtracting a mean or dividing E and p by different numbers), relative
   coordinates or images break equivariance; they are for the non-equivariant baselines only.

>>> t = Compose([MomentumScale(1e-3), Massless()])
>>> t.state_dict()
{'name': 'compose', 'transforms': [{'name': 'momentum_scale', 'scale': 0.001}, {'name': 'massless'}]}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from ..nn.features import from_relative_coordinates, jet_image, jet_p4, pt_eta_phi, relative_coordinates

_REGISTRY: dict[str, type] = {}


def register(cls):
    """Class decorator adding a transform to the registry under ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


class Transform:
    """Base class: subclasses set ``name`` and implement :meth:`forward` (and :meth:`inverse`, if any)."""

    name = "transform"

    def forward(self, p4: Tensor, mask: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def inverse(self, x: Tensor, mask: Tensor, **context) -> Tensor:
        raise NotImplementedError(f"transform {self.name!r} is not invertible")

    def __call__(self, p4: Tensor, mask: Tensor) -> Tensor:
        return self.forward(p4, mask)

    def params(self) -> dict:
        """Constructor arguments (JSON-serialisable)."""
        return {}

    def state_dict(self) -> dict:
        return {"name": self.name, **self.params()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


def _zero_padding(x: Tensor, mask: Tensor) -> Tensor:
    return x * mask[..., None].to(x.dtype)


@register
class MomentumScale(Transform):
    """Multiply every 4-momentum component by ``scale`` (default 1e-3: GeV -> TeV). Exactly invertible.

    The one preprocessing that keeps Lorentz equivariance (a global scale commutes with every Lorentz matrix).
    """

    name = "momentum_scale"

    def __init__(self, scale: float = 1e-3):
        if not scale or scale != scale:
            raise ValueError(f"scale must be a non-zero number, got {scale!r}")
        self.scale = float(scale)

    def forward(self, p4, mask):
        return p4 * self.scale

    def inverse(self, x, mask, **context):
        return x / self.scale

    def params(self):
        return {"scale": self.scale}


@register
class Massless(Transform):
    """Set each particle's energy to ``|p|`` (massless particles), as LGAE did with JetNet inputs.

    Not invertible for masses: :meth:`inverse` returns its input unchanged (directions and 3-momenta are kept)
    unless the original energies are passed as ``inverse(x, mask, energy=E)``, which restores them exactly.
    """

    name = "massless"

    def forward(self, p4, mask):
        e = torch.linalg.vector_norm(p4[..., 1:], dim=-1, keepdim=True)
        return _zero_padding(torch.cat([e, p4[..., 1:]], dim=-1), mask)

    def inverse(self, x, mask, energy: Tensor | None = None, **context):
        if energy is None:
            return x
        return torch.cat([energy[..., None].to(x.dtype) * mask[..., None].to(x.dtype), x[..., 1:]], dim=-1)


def jet_axis(p4: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """``{"jet_pt", "jet_eta", "jet_phi"}`` of the summed constituents (for RelativeCoordinates.inverse)."""
    pt, eta, phi = pt_eta_phi(jet_p4(p4, mask))
    return {"jet_pt": pt, "jet_eta": eta, "jet_phi": phi}


@register
class RelativeCoordinates(Transform):
    """``(pT_rel, eta_rel, phi_rel)`` of each particle with respect to the jet axis, shape ``(..., N, 3)``.

    Wraps :func:`lgae.nn.features.relative_coordinates`. The inverse needs the jet's pT, eta and phi (get them
    with :func:`jet_axis` *before* the forward transform) and returns *massless* 4-momenta:
    ``inverse(x, mask, jet_pt=..., jet_eta=..., jet_phi=...)``.
    """

    name = "relative_coordinates"

    def forward(self, p4, mask):
        return relative_coordinates(p4, mask)

    def inverse(self, x, mask, jet_pt=None, jet_eta=None, jet_phi=None, **context):
        if jet_pt is None or jet_eta is None or jet_phi is None:
            raise ValueError("RelativeCoordinates.inverse needs jet_pt, jet_eta and jet_phi (see jet_axis())")
        return _zero_padding(from_relative_coordinates(x, jet_pt, jet_eta, jet_phi), mask)


@register
class JetImage(Transform):
    """Jet image of pT fractions in ``(eta_rel, phi_rel)``, ``(..., n_pixels, n_pixels)``; not invertible.

    Wraps :func:`lgae.nn.features.jet_image` (pixels over ``[-half_width, half_width)``).
    """

    name = "jet_image"

    def __init__(self, n_pixels: int = 40, half_width: float = 0.8):
        self.n_pixels, self.half_width = int(n_pixels), float(half_width)

    def forward(self, p4, mask):
        return jet_image(p4, mask, n_pixels=self.n_pixels, half_width=self.half_width)

    def params(self):
        return {"n_pixels": self.n_pixels, "half_width": self.half_width}


@register
class Compose(Transform):
    """Apply transforms in order; the inverse applies their inverses in reverse (``**context`` to each)."""

    name = "compose"

    def __init__(self, transforms: Sequence[Transform | Mapping | str]):
        self.transforms = [_build(t) for t in transforms]

    def forward(self, p4, mask):
        for t in self.transforms:
            p4 = t.forward(p4, mask)
        return p4

    def inverse(self, x, mask, **context):
        for t in reversed(self.transforms):
            x = t.inverse(x, mask, **context)
        return x

    def params(self):
        return {"transforms": [t.state_dict() for t in self.transforms]}

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


def available_transforms() -> list[str]:
    return sorted(_REGISTRY)


def get_transform(name: str, **kwargs) -> Transform:
    """Build a registered transform by name: ``get_transform("momentum_scale", scale=1e-3)``."""
    if name not in _REGISTRY:
        from .._validate import closest

        hint = closest(name, _REGISTRY)
        raise ValueError(
            f"unknown transform {name!r}"
            + (f"; did you mean {hint!r}?" if hint else "")
            + f" (available: {', '.join(available_transforms())})"
        )
    return _REGISTRY[name](**kwargs)


def from_state_dict(state: Mapping) -> Transform:
    """Inverse of :meth:`Transform.state_dict`."""
    state = dict(state)
    return get_transform(state.pop("name"), **state)


def _build(t) -> Transform:
    if isinstance(t, Transform):
        return t
    if isinstance(t, str):
        return get_transform(t)
    if isinstance(t, Mapping):
        return from_state_dict(t)
    raise TypeError(f"cannot build a transform from {t!r}")
