"""Equivariance test kit: measure and assert ``f(Lambda p) == Lambda f(p)`` for models and plain functions.

Transforms are drawn and applied in float64 (:func:`lgae.so31.random_lorentz`); only the transformed *inputs*
are cast to the model's dtype. Errors are per-jet max-abs relative deviations (``lgae.md`` §6.2):

* 4-vector outputs ``(B, ..., 4)``:  ``e_J = max |f(Lambda p) - Lambda f(p)| / max |Lambda f(p)|`` over jet
  ``J``;
* invariant outputs ``(B, ...)``:    ``e_J = max |f(Lambda p) - f(p)| / max |f(p)|``.

Non-finite outputs count as an infinite error. What is an output, and of which kind:

* an object with ``.p4`` and ``.latent`` (``lgae.models.base.ModelOutput``): ``"p4"`` is a 4-vector output
  (skipped when None); each tensor ``latent[name]`` becomes ``"latent.<name>"``, a 4-vector output when its
  last dimension is 4 and ``"vector"`` is in its name, an invariant otherwise;
* a dict of tensors: each entry by the same rule (``"p4"`` or a name containing ``"vector"`` with last dim 4
  -> vector);
* a tensor: one output ``"out"``, a 4-vector when its last dimension is 4.

``kinds`` overrides the rule: a dict ``{name: "vector" | "scalar" | "skip"}``, or one of those strings for all
outputs.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from lgae.so31 import apply_lorentz, lorentz_matrix, random_lorentz

__all__ = [
    "equivariance_error",
    "assert_equivariant",
    "assert_invariant",
    "EquivarianceReport",
    "measure",
    "adam_steps",
]

_KINDS = ("vector", "scalar", "skip")
DEFAULT_TOL = 1e-8


@dataclass
class EquivarianceReport:
    """Raw result of :func:`measure`.

    Attributes
    ----------
    kinds : dict name -> "vector" | "scalar"
        The kind each checked output was treated as.
    diff : dict name -> Tensor (T, B)
        Per-transform, per-jet ``max |f(Lambda p) - Lambda f(p)|`` (float64; inf where non-finite).
    scale : dict name -> Tensor (T, B)
        Per-transform, per-jet ``max |Lambda f(p)|`` (vectors) or ``max |f(p)|`` (scalars).
    angles, rapidity : Tensor (T, 3)
        The transforms used.
    """

    kinds: dict
    diff: dict
    scale: dict
    angles: Tensor
    rapidity: Tensor

    def relative(self, atol: float = 0.0) -> dict:
        """Per-jet relative errors ``diff / scale`` ``(T, B)`` (``atol`` added to the scale), inf for ``x /
        0``.
        """
        out = {}
        for name, d in self.diff.items():
            s = self.scale[name] + atol
            rel = torch.where(s > 0, d / torch.where(s > 0, s, torch.ones_like(s)), d * math.inf)
            # d * inf is nan exactly where d == 0 and the scale is 0: no error
            out[name] = torch.nan_to_num(rel, nan=0.0, posinf=math.inf)
        return out

    def worst(self) -> dict:
        return {name: float(e.max()) if e.numel() else 0.0 for name, e in self.relative().items()}

    def describe(self, t: int) -> str:
        a, w = self.angles[t].tolist(), self.rapidity[t]
        eta = float(torch.linalg.vector_norm(w))
        axis = (w / eta).tolist() if eta > 0 else [0.0, 0.0, 0.0]
        return (
            f"transform {t} of {len(self.angles)}: rapidity {eta:.4g} (gamma {math.cosh(eta):.4g}) along "
            f"({axis[0]:.3f}, {axis[1]:.3f}, {axis[2]:.3f}), ZYZ angles ({a[0]:.3f}, {a[1]:.3f}, {a[2]:.3f})"
        )


def _outputs(out) -> dict:
    """Name -> tensor for the output forms described in the module docstring."""
    if isinstance(out, Tensor):
        return {"out": out}
    if hasattr(out, "p4") and hasattr(out, "latent"):
        named = {} if out.p4 is None else {"p4": out.p4}
        for key, value in (out.latent or {}).items():
            if isinstance(value, Tensor):
                named[f"latent.{key}"] = value
        return named
    if isinstance(out, Mapping):
        return {str(k): v for k, v in out.items() if isinstance(v, Tensor)}
    raise TypeError(
        f"cannot read the model output of type {type(out).__name__}: expected a ModelOutput-like object "
        "(.p4, .latent), a dict of tensors, or a tensor"
    )


def _default_kind(name: str, x: Tensor) -> str:
    last = name.rsplit(".", 1)[-1].lower()
    is4 = x.ndim >= 1 and x.shape[-1] == 4
    if is4 and (name in ("p4", "out") or "vector" in last):
        return "vector"
    return "scalar"


def _resolve_kinds(named: dict, kinds) -> dict:
    if kinds is None:
        kinds = {}
    if isinstance(kinds, str):
        kinds = {name: kinds for name in named}
    unknown = [k for k in kinds if k not in named]
    if unknown:
        raise ValueError(f"kinds names {unknown} are not outputs of the model; outputs are {sorted(named)}")
    resolved = {}
    for name, x in named.items():
        kind = kinds.get(name, _default_kind(name, x))
        if kind not in _KINDS:
            raise ValueError(f"kind of output {name!r} must be one of {_KINDS}; got {kind!r}")
        if kind == "vector" and (x.ndim < 1 or x.shape[-1] != 4):
            raise ValueError(
                f"output {name!r} declared a 4-vector but has shape {tuple(x.shape)} (last dim != 4)"
            )
        if kind != "skip":
            resolved[name] = kind
    return resolved


def _model_dtype(model, p4: Tensor, dtype) -> torch.dtype:
    if dtype is not None:
        return dtype
    if isinstance(model, torch.nn.Module):
        for t in list(model.parameters()) + list(model.buffers()):
            if t.is_floating_point():
                return t.dtype
    return p4.dtype if p4.is_floating_point() else torch.float64


@contextlib.contextmanager
def _deterministic_calls(model, device: torch.device):
    """Eval mode (restored afterwards), TF32 off, and the caller's RNG state untouched."""
    was_training = isinstance(model, torch.nn.Module) and model.training
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        if was_training:
            model.eval()
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
        if was_training:
            model.train(True)


def _per_jet_max(x: Tensor) -> Tensor:
    x = x.reshape(x.shape[0], -1) if x.ndim >= 1 else x.reshape(1, 1)
    if x.shape[1] == 0:
        return torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    return torch.nan_to_num(x.abs(), nan=math.inf).amax(1)


def measure(
    model: Callable,
    p4: Tensor,
    mask: Tensor | None = None,
    max_rapidity: float = 10.0,
    n_transforms: int = 8,
    seed: int = 0,
    rotate: bool = True,
    kinds=None,
    transforms: tuple | None = None,
    dtype: torch.dtype | None = None,
) -> EquivarianceReport:
    """Run ``model(p4, mask)`` and ``model(Lambda p4, mask)`` for each transform; return the raw per-jet
    numbers.

    ``transforms=(angles, rapidity)`` ``(T, 3)`` each overrides the random draw (``max_rapidity``,
    ``n_transforms``, ``seed``, ``rotate``). ``dtype`` overrides the input dtype (default: the model's first
    floating parameter or buffer, else ``p4.dtype``). See :func:`equivariance_error` for the rest.
    """
    p4 = torch.as_tensor(p4)
    if p4.ndim < 2 or p4.shape[-1] != 4:
        raise ValueError(f"p4 must have shape (B, ..., 4); got {tuple(p4.shape)}")
    if transforms is None:
        if n_transforms < 1:
            raise ValueError(f"n_transforms must be >= 1; got {n_transforms}")
        angles, rapidity = random_lorentz(
            (n_transforms,), max_rapidity=max_rapidity, seed=seed, rotate=rotate, boost=max_rapidity > 0
        )
    else:
        angles, rapidity = (torch.as_tensor(t, dtype=torch.float64).reshape(-1, 3).cpu() for t in transforms)
        if len(angles) != len(rapidity):
            raise ValueError(f"transforms: {len(angles)} angle triples but {len(rapidity)} rapidity vectors")
    device = p4.device
    L = lorentz_matrix(angles.to(device), rapidity.to(device))  # (T, 4, 4) float64
    in_dtype = _model_dtype(model, p4, dtype)
    p64 = p4.to(torch.float64)
    seed_calls = int(seed)

    def call(x: Tensor) -> dict:
        torch.manual_seed(seed_calls)  # identical noise in every call for models that sample
        return _outputs(model(x.to(in_dtype), mask))

    diff: dict = {}
    scale: dict = {}
    with _deterministic_calls(model, device):
        ref = call(p4)
        resolved = _resolve_kinds(ref, kinds)
        ref64 = {
            name: ref[name].to(torch.float64 if not ref[name].is_complex() else torch.complex128)
            for name in resolved
        }
        for name in resolved:
            diff[name], scale[name] = [], []
        for t in range(len(L)):
            got = call(apply_lorentz(L[t], p64))
            missing = [name for name in resolved if name not in got]
            if missing:
                raise ValueError(
                    f"the model's outputs changed between calls: {missing} missing after transform {t}"
                )
            for name, kind in resolved.items():
                expect = apply_lorentz(L[t], ref64[name]) if kind == "vector" else ref64[name]
                g = got[name].to(expect.dtype)
                if g.shape != expect.shape:
                    raise ValueError(
                        f"output {name!r} has shape {tuple(g.shape)} after transform {t} "
                        f"but {tuple(expect.shape)} without it"
                    )
                diff[name].append(_per_jet_max(g - expect))
                scale[name].append(_per_jet_max(expect))
    return EquivarianceReport(
        kinds=resolved,
        diff={k: torch.stack(v).cpu() for k, v in diff.items()},
        scale={k: torch.stack(v).cpu() for k, v in scale.items()},
        angles=angles.cpu(),
        rapidity=rapidity.cpu(),
    )


def equivariance_error(
    model: Callable,
    p4: Tensor,
    mask: Tensor | None = None,
    max_rapidity: float = 10.0,
    n_transforms: int = 8,
    seed: int = 0,
    rotate: bool = True,
    per_jet: bool = False,
    kinds=None,
    transforms: tuple | None = None,
    dtype: torch.dtype | None = None,
):
    """Worst per-jet relative equivariance error of each output of ``model(p4, mask)``.

    Parameters
    ----------
    model : callable
        ``model(p4, mask)`` returning a ``ModelOutput``-like object, a dict of tensors or a tensor (module
        docstring). ``nn.Module`` models are run in eval mode (restored afterwards) under ``torch.no_grad``;
        the global RNG is reseeded with ``seed`` before every call (so sampling models draw the same noise)
        and restored afterwards.
    p4 : Tensor (B, N, 4)
        Input 4-momenta; transforms are applied in float64 and the results cast to the model's dtype.
    mask : Tensor (B, N) bool or None
        Passed through unchanged.
    max_rapidity : float
        Transforms have a random boost axis and a rapidity norm uniform in ``[0, max_rapidity]`` (0: no
        boost).
    n_transforms, seed : int
        Number of random transforms and the seed of their draw.
    rotate : bool
        Include a Haar-random rotation in each transform.
    per_jet : bool
        Also return the per-jet errors.
    kinds : dict or str, optional
        Output kinds override (module docstring).
    transforms : (angles, rapidity), optional
        Explicit transforms ``(T, 3)`` each, instead of the random draw.

    Returns
    -------
    dict name -> float
        ``max`` over transforms and jets of the per-jet relative error, e.g. ``{"p4": ..., "latent.vectors":
        ..., "latent.scalars": ...}``; ``max(d.values())`` is the headline.
    (dict, dict name -> Tensor (T, B)) when ``per_jet=True``
        The same plus the per-transform, per-jet errors (take medians over them).
    """
    report = measure(
        model,
        p4,
        mask,
        max_rapidity=max_rapidity,
        n_transforms=n_transforms,
        seed=seed,
        rotate=rotate,
        kinds=kinds,
        transforms=transforms,
        dtype=dtype,
    )
    worst = report.worst()
    return (worst, report.relative()) if per_jet else worst


def _tol_for(tol, name: str, kind: str) -> float:
    if isinstance(tol, Mapping):
        for key in (name, kind, "default"):
            if key in tol:
                return float(tol[key])
        return DEFAULT_TOL
    return float(tol)


def assert_equivariant(
    model: Callable,
    p4: Tensor,
    mask: Tensor | None = None,
    tol=DEFAULT_TOL,
    atol: float = 0.0,
    **kwargs,
) -> dict:
    """Raise ``AssertionError`` unless every output is equivariant (4-vectors) / invariant (scalars) within
    ``tol``.

    A jet passes when ``max|f(Lambda p) - Lambda f(p)| <= atol + tol * max|Lambda f(p)|`` (per-jet max over
    its entries; scalars compare with ``f(p)``). ``tol`` is a float or a dict keyed by output name, kind
    (``"vector"``, ``"scalar"``) or ``"default"``. Other keyword arguments go to :func:`measure`
    (``max_rapidity``, ``n_transforms``, ``seed``, ``rotate``, ``kinds``, ``transforms``, ``dtype``). Returns
    the worst relative errors when it passes. The message names each failing output, its worst error against
    its tolerance, and the transform and jet.
    """
    report = measure(model, p4, mask, **kwargs)
    if not report.kinds:
        raise AssertionError("the model returned no outputs to check (all skipped or none found)")
    failures = []
    worst = report.worst()
    for name, kind in report.kinds.items():
        t = _tol_for(tol, name, kind)
        d, s = report.diff[name], report.scale[name]
        bad = ~(d <= atol + t * s)
        if bool(bad.any()):
            rel = report.relative(atol)[name]
            flat = int(torch.argmax(torch.where(bad, rel, torch.full_like(rel, -1.0))))
            ti, jet = divmod(flat, rel.shape[1])
            what = (
                "4-vector output, |f(Lambda p) - Lambda f(p)|"
                if kind == "vector"
                else "invariant output, |f(Lambda p) - f(p)|"
            )
            failures.append(
                f"  output {name!r} ({what}): worst per-jet relative error {float(rel[ti, jet]):.3e}"
                + f" > tol {t:.1e}"
                + (f" (atol {atol:.1e})" if atol else "")
                + f"; {int(bad.sum())} of {bad.numel()} (transform, jet) pairs fail; worst at jet {jet}, "
                + report.describe(ti)
                + f"; median error {float(rel.median()):.3e}"
            )
    if failures:
        summary = ", ".join(f"{k}={v:.2e}" for k, v in worst.items())
        raise AssertionError(
            "model is not Lorentz-equivariant within tolerance:\n"
            + "\n".join(failures)
            + f"\n  all outputs: {summary}"
        )
    return worst


def assert_invariant(
    model: Callable, p4: Tensor, mask: Tensor | None = None, tol=DEFAULT_TOL, **kwargs
) -> dict:
    """:func:`assert_equivariant` with every output treated as an invariant (``kinds="scalar"`` unless
    given).
    """
    kwargs.setdefault("kinds", "scalar")
    return assert_equivariant(model, p4, mask, tol=tol, **kwargs)


def adam_steps(model, p4: Tensor, mask: Tensor | None = None, steps: int = 3, lr: float = 1e-2):
    """Take ``steps`` Adam steps on ``model.loss(p4, mask)`` (train mode, left on): symmetry checks of trained
    rather than freshly initialised weights."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        model.loss(p4, mask).backward()
        opt.step()
