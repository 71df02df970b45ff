"""Export a trained model as a self-contained anomaly scorer: TorchScript (coffea) or ONNX (onnxruntime).

The exported module's forward is ``(p4[B, N, 4], mask[B, N]) -> score[B]``: raw 4-momenta ``(E, px, py, pz)``
in GeV and a bool mask (True = real particle) in, the model's anomaly score (``model.anomaly_score``, or
another entry of ``model.scores`` with ``score=``) out as float32. All preprocessing (momentum scale,
featurisation, jet images, canonical frames) is inside: the file needs ``torch`` (TorchScript) or
``onnxruntime`` (ONNX) and nothing from lgae::

    import torch
    scorer = torch.jit.load("runs/lgae/export/score.pt")
    score = scorer(p4, mask)                      # p4 float32/float64 (B, N, 4), mask bool (B, N)

    import onnxruntime as ort
    sess = ort.InferenceSession("runs/lgae/export/score.onnx")
    score = sess.run(["score"], {"p4": p4.astype("float32"), "mask": mask})[0]

coffea's ``coffea.ml_tools.torch_wrapper`` loads the TorchScript file; override its ``prepare_awkward`` to
return ``(p4, mask)`` padded to ``N`` particles.

How: the model is traced (``torch.jit.trace``) on synthetic massive jets (so that no data-dependent branch
is skipped, e.g. the massive-particle path of the Gram matrix) and the trace is then compared with the eager
model on *other* jets with a different batch size and multiplicities. When a model's code bakes the trace's
batch size into the graph (broadcast slice assignments do), the export falls back to tracing at a fixed batch
of ``chunk`` jets wrapped in a small TorchScript loop that pads the input to whole chunks (repeating the last
jet) and drops the padding from the result; the metadata records ``"batching": "chunked"``. Scores that cannot
be traced at all (the Hungarian score solves the assignment with scipy on the host) raise :class:`ExportError`
naming the score and the alternatives.

The file carries its metadata (model name and config, score, ``n_particles``, lgae and torch versions, the
export check's maximal relative difference): TorchScript in the extra file ``lgae_export.json``
(``torch.jit.load(path, _extra_files={"lgae_export.json": ""})``), ONNX in ``metadata_props``; a copy is
written next to it as ``FILE.json``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "EXPORT_FORMATS",
    "ExportError",
    "ExportResult",
    "ScoreModule",
    "example_jets",
    "export_model",
    "export_run",
    "load_exported",
]

log = logging.getLogger("lgae.export")

EXPORT_FORMATS = ("torchscript", "onnx")
#: file suffix per format
SUFFIX = {"torchscript": ".pt", "onnx": ".onnx"}
#: name of the metadata entry inside a TorchScript archive
META_NAME = "lgae_export.json"
#: ONNX opset used by the (TorchScript-based) ONNX exporter
ONNX_OPSET = 17
#: tolerance of the export check: max |exported - eager| / max(|eager|, tiny) over the check jets
CHECK_RTOL = 1e-5


class ExportError(RuntimeError):
    """A model (or one of its scores) cannot be exported; the message says why and what to do instead."""


@dataclass
class ExportResult:
    """What :func:`export_model` wrote and how well the export reproduces the eager model."""

    path: Path
    format: str
    max_rel_diff: float
    batching: str
    metadata: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------------------
# the exported computation


class ScoreModule(nn.Module):
    """``(p4, mask) -> score (B,) float32``: a model's anomaly score with its preprocessing.

    Parameters
    ----------
    model : JetAutoencoder
        A model in eval mode.
    score : str
        ``"default"`` (``model.anomaly_score``) or another key of ``model.scores``.
    """

    def __init__(self, model: nn.Module, score: str = "default"):
        super().__init__()
        self.model = model.eval()
        self.score = score
        ref = next((p for p in model.parameters() if p.is_floating_point()), None)
        self.dtype = ref.dtype if ref is not None else torch.get_default_dtype()

    def forward(self, p4: Tensor, mask: Tensor) -> Tensor:
        p4 = p4.to(self.dtype)
        mask = mask.to(torch.bool)
        with torch.no_grad():
            if self.score == "default":
                s = self.model.anomaly_score(p4, mask)
            else:
                s = self.model.scores(p4, mask)[self.score]
        return s.to(torch.float32)


class _Chunked(nn.Module):
    """Run a fixed-batch traced scorer over any batch: pad to whole chunks with copies of the last jet."""

    def __init__(self, inner: torch.jit.ScriptModule, chunk: int):
        super().__init__()
        self.inner = inner
        self.chunk = chunk

    def forward(self, p4: Tensor, mask: Tensor) -> Tensor:
        n = p4.shape[0]
        c = self.chunk
        n_chunks = (n + c - 1) // c
        pad = n_chunks * c - n
        if pad > 0:
            p4 = torch.cat([p4, p4[n - 1 :].expand(pad, p4.shape[1], p4.shape[2])], 0)
            mask = torch.cat([mask, mask[n - 1 :].expand(pad, mask.shape[1])], 0)
        out: list[Tensor] = []
        for i in range(n_chunks):
            out.append(self.inner(p4[i * c : (i + 1) * c], mask[i * c : (i + 1) * c]))
        return torch.cat(out, 0)[:n]


def example_jets(
    batch: int, n_particles: int, seed: int = 0, mass: float = 0.14, dtype: torch.dtype = torch.float64
) -> tuple[Tensor, Tensor]:
    """Synthetic ~1 TeV jets ``(p4 (batch, n, 4), mask (batch, n))``: 2..n massive constituents, pT-ordered.

    Used to trace and check exports (no data files needed); ``mass`` > 0 keeps every massive-particle code
    path in the trace.
    """
    g = torch.Generator().manual_seed(seed)
    n = n_particles
    n_real = torch.randint(min(2, n), n + 1, (batch,), generator=g)
    mask = torch.arange(n)[None] < n_real[:, None]
    z = torch.rand(batch, n, generator=g, dtype=torch.float64).pow(4) * mask
    z = z / z.sum(1, keepdim=True)
    z, order = z.sort(1, descending=True)
    mask = mask.gather(1, order)
    pt = 1000.0 * z
    eta = (
        0.1 * torch.randn(batch, n, generator=g, dtype=torch.float64)
        + 2 * torch.rand(batch, 1, generator=g)
        - 1
    )
    phi = (
        0.1 * torch.randn(batch, n, generator=g, dtype=torch.float64)
        + 6 * torch.rand(batch, 1, generator=g)
        - 3
    )
    px, py, pz = pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta)
    e = torch.sqrt(px**2 + py**2 + pz**2 + mass**2)
    p4 = torch.stack([e, px, py, pz], -1) * mask[..., None]
    return p4.to(dtype), mask


# ------------------------------------------------------------------------------------------------------------
# tracing


def _trace(module: nn.Module, p4: Tensor, mask: Tensor) -> torch.jit.ScriptModule:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        traced = torch.jit.trace(module, (p4, mask), check_trace=False)  # deprecation notices are recorded
    notes = sorted(
        {f"{w.filename}:{w.lineno}" for w in caught if issubclass(w.category, torch.jit.TracerWarning)}
    )
    if notes:
        log.debug("tracer warnings (data-dependent Python values) at %s", ", ".join(notes))
    return traced


def _rel_diff(a: Tensor, b: Tensor) -> float:
    """max |a - b| / max(|b|, 1e-30), elementwise; inf when shapes differ or values are not finite in one."""
    a, b = a.detach().double().reshape(-1), b.detach().double().reshape(-1)
    if a.shape != b.shape:
        return math.inf
    both_nan = torch.isnan(a) & torch.isnan(b)
    d = (a - b).abs() / b.abs().clamp_min(1e-30)
    d = torch.where(both_nan | (a == b), torch.zeros_like(d), d)
    return float(d.max()) if d.numel() else 0.0


def _eager(module: ScoreModule, p4: Tensor, mask: Tensor) -> Tensor:
    with torch.no_grad():
        return module(p4, mask)


def _traced_scorer(module: ScoreModule, n_particles: int, chunk: int, seed: int):
    """Trace ``module``; returns ``(scripted scorer, batching, max rel diff on held-back jets)``."""
    trace_p4, trace_mask = example_jets(chunk, n_particles, seed=seed)
    check_p4, check_mask = example_jets(chunk + 5, n_particles, seed=seed + 1)
    try:
        traced = _trace(module, trace_p4, trace_mask)
    except Exception as err:
        raise ExportError(_untraceable(module, err)) from err
    ref = _eager(module, check_p4, check_mask)
    try:
        with torch.no_grad():
            diff = _rel_diff(traced(check_p4, check_mask), ref)
    except Exception as err:  # the trace baked the batch size in
        log.debug("trace fails at another batch size (%s: %s)", type(err).__name__, str(err)[:200])
        diff = math.inf
    if diff <= CHECK_RTOL:
        return traced, "dynamic", diff
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        chunked = torch.jit.script(_Chunked(traced, chunk))
    with torch.no_grad():
        diff = _rel_diff(chunked(check_p4, check_mask), ref)
    if not diff <= CHECK_RTOL:
        raise ExportError(
            f"the traced {module.model.name!r} score {module.score!r} differs from the eager model by "
            f"{diff:.3g} "
            "(relative) on held-back jets: its forward has data-dependent Python control flow that tracing "
            "cannot capture"
        )
    return chunked, "chunked", diff


def _untraceable(module: ScoreModule, err: Exception) -> str:
    name = getattr(module.model, "name", type(module.model).__name__)
    text = f"{type(err).__name__}: {err}"
    hint = ""
    if "numpy" in text.lower() or "scipy" in text.lower() or "can't convert" in text.lower():
        hint = " (the computation leaves torch, e.g. scipy's Hungarian assignment: a trace cannot record it)"
    return (
        f"cannot trace the {name!r} score {module.score!r}{hint}: {text[:300]}. "
        f"Export another score (--score NAME; the model offers: {', '.join(_score_names(module.model))})"
    )


def _score_names(model) -> list[str]:
    try:
        p4, mask = example_jets(2, getattr(model, "n_particles", None) or 8, seed=0)
        with torch.no_grad():
            return sorted(model.scores(p4, mask))
    except Exception:
        return ["default"]


# ------------------------------------------------------------------------------------------------------------
# ONNX


def _onnx_symbolics() -> None:
    """Symbolics for aten ops the TorchScript-based ONNX exporter lacks (idempotent)."""
    from torch.onnx import JitScalarType, register_custom_op_symbolic
    from torch.onnx import symbolic_helper as sh

    def hypot(g, a, b):
        return g.op("Sqrt", g.op("Add", g.op("Mul", a, a), g.op("Mul", b, b)))

    def asinh(g, x):
        return g.op("Asinh", x)

    def addcdiv(g, x, t1, t2, value):
        q = g.op("Div", t1, t2)
        v = sh._maybe_get_const(value, "f")
        if not isinstance(v, (int, float)) or v != 1:
            q = g.op("Mul", q, value)
        return g.op("Add", x, q)

    def eye(g, *args):
        # as the built-in one, but EyeLike runs on float (onnxruntime has no bool EyeLike), then Cast
        if len(args) == 5:
            n, dtype = args[0], args[1]
            m = n
        else:
            n, m, dtype = args[0], args[1], args[2]
        shape = g.op("Concat", sh._unsqueeze_helper(g, n, [0]), sh._unsqueeze_helper(g, m, [0]), axis_i=0)
        zero = g.op("ConstantOfShape", shape, value_t=torch.tensor([0.0], dtype=torch.float32))
        out = g.op("EyeLike", zero)
        code = sh._maybe_get_const(dtype, "i")
        if sh._is_none(dtype) or not isinstance(code, int):
            return out
        return g.op("Cast", out, to_i=JitScalarType(code).onnx_type())

    def atan2(g, y, x):
        # torch.atan2 without the NaN that the built-in symbolic (Atan(y / x)) gives at x = y = 0
        dtype = JitScalarType.from_value(y, JitScalarType.FLOAT).dtype()

        def const(v):
            return g.op("Constant", value_t=torch.tensor(v, dtype=dtype))

        zero = const(0.0)
        x_zero = g.op("Equal", x, zero)
        base = g.op("Atan", g.op("Div", y, g.op("Where", x_zero, const(1.0), x)))
        y_neg = g.op("Less", y, zero)
        shift = g.op("Where", y_neg, const(-math.pi), const(math.pi))
        res = g.op("Where", g.op("Less", x, zero), g.op("Add", base, shift), base)
        on_axis = g.op("Where", y_neg, const(-math.pi / 2), const(math.pi / 2))
        on_axis = g.op("Where", g.op("Equal", y, zero), zero, on_axis)
        return g.op("Where", x_zero, on_axis, res)

    def cdist(g, x1, x2, p, compute_mode):
        # difference-based ||x1_i - x2_j||_p, as torch.cdist(compute_mode="donot_use_mm_for_euclid_dist"):
        # the built-in symbolic evaluates pairwise_distance with its eps (||x1 - x2 + 1e-6||^(1 / (p +
        # 1e-6))), a relative error of ~1e-6 that the stable Gram matrix cannot afford
        if sh._maybe_get_const(p, "f") != 2:
            raise RuntimeError("cdist: only the Euclidean distance (p = 2) is exported")
        d = g.op(
            "Sub", sh._unsqueeze_helper(g, x1, [-2]), sh._unsqueeze_helper(g, x2, [-3])
        )  # (..., P, R, D)
        axes = g.op("Constant", value_t=torch.tensor([-1], dtype=torch.int64))
        return g.op("Sqrt", g.op("ReduceSum", g.op("Mul", d, d), axes, keepdims_i=0))

    def real(g, x):
        # x.real of a real tensor is x (e.g. ``s.real.dtype`` guards in code that also runs complex); ONNX has
        # no complex tensors, so a complex model fails elsewhere with the exporter's own message
        return x

    def triu_indices(g, row, col, offset, *rest):
        # NonZero(j - i >= offset) over the (row, col) grid: (2, K) int64 in row-major order, as torch's
        def scalar(v):
            c = sh._maybe_get_const(v, "i")
            if isinstance(c, int):
                return g.op("Constant", value_t=torch.tensor(c, dtype=torch.int64))
            return g.op("Cast", sh._squeeze_helper(g, v, [0]) if sh._get_tensor_rank(v) == 1 else v, to_i=7)

        zero = g.op("Constant", value_t=torch.tensor(0, dtype=torch.int64))
        one = g.op("Constant", value_t=torch.tensor(1, dtype=torch.int64))
        i = g.op("Range", zero, scalar(row), one)
        j = g.op("Range", zero, scalar(col), one)
        diff = g.op("Sub", sh._unsqueeze_helper(g, j, [0]), sh._unsqueeze_helper(g, i, [1]))
        return g.op("NonZero", g.op("GreaterOrEqual", diff, scalar(offset)))

    table = (
        ("aten::triu_indices", triu_indices),
        ("aten::real", real),
        ("aten::cdist", cdist),
        ("aten::atan2", atan2),
        ("aten::hypot", hypot),
        ("aten::asinh", asinh),
        ("aten::addcdiv", addcdiv),
        ("aten::eye", eye),
    )
    for name, fn in table:
        register_custom_op_symbolic(name, fn, 9)


def _export_onnx(scorer, n_particles: int, chunk: int, batching: str) -> bytes:
    _onnx_symbolics()
    p4, mask = example_jets(chunk, n_particles, seed=0, dtype=torch.float32)
    f = io.BytesIO()
    dynamic = {"p4": {0: "batch"}, "mask": {0: "batch"}, "score": {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            scorer,
            (p4, mask),
            f,
            dynamo=False,
            input_names=["p4", "mask"],
            output_names=["score"],
            dynamic_axes=dynamic,
            opset_version=ONNX_OPSET,
            do_constant_folding=True,
        )
    return f.getvalue()


#: view ops through which the TorchScript-based ONNX exporter carries in-place writes back to the base tensor
_ONNX_WRITABLE_VIEWS = frozenset({"aten::slice", "aten::select"})
#: ops whose output aliases their first input
_ALIASING = frozenset(
    {
        "aten::slice", "aten::select", "aten::diagonal", "aten::view", "aten::reshape", "aten::transpose",
        "aten::t", "aten::permute", "aten::unsqueeze", "aten::squeeze", "aten::narrow", "aten::expand",
        "aten::as_strided", "aten::unfold", "aten::flatten", "aten::unflatten", "aten::view_as",
        "aten::expand_as", "aten::movedim", "aten::alias",
    }
)  # fmt: skip


def _dropped_inplace_writes(scorer) -> list[str]:
    """In-place ops that the ONNX exporter silently drops: ops run only for their effect on a view made by
    anything but slicing and selecting (e.g. ``x.diagonal().zero_()``), as ``"op on view at file:line"``."""
    try:
        graph = scorer.inlined_graph
    except Exception:  # not a TorchScript module
        return []
    found: list[str] = []

    def visit(block):
        for node in block.nodes():
            for sub in node.blocks():
                visit(sub)
            kind = node.kind()
            if not kind.startswith("aten::") or not kind.endswith("_") or kind.endswith("__"):
                continue
            if any(out.uses() for out in node.outputs()):  # its result is used: converted out of place
                continue
            views, src = [], next(iter(node.inputs()), None)
            while src is not None:
                k = src.node().kind()
                if k in _ALIASING:
                    views.append(k)
                elif not (k.startswith("aten::") and k.endswith("_") and not k.endswith("__")):
                    break
                src = next(iter(src.node().inputs()), None)
            bad = [v for v in views if v not in _ONNX_WRITABLE_VIEWS]
            if bad:
                where = node.sourceRange().strip().splitlines()
                found.append(f"{kind} on {bad[0]} at {where[0] if where else '?'}")

    visit(graph)
    return sorted(set(found))


def _onnx_with_metadata(blob: bytes, meta: Mapping) -> bytes:
    try:
        import onnx
    except ImportError:  # metadata stays in the side-car JSON
        return blob
    proto = onnx.load_from_string(blob)
    del proto.metadata_props[:]
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = str(k), v if isinstance(v, str) else json.dumps(v)
    return proto.SerializeToString()


def _run_onnx(blob: bytes, p4: Tensor, mask: Tensor) -> Tensor | None:
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(blob, opts, providers=["CPUExecutionProvider"])
    out = sess.run(["score"], {"p4": p4.to(torch.float32).numpy(), "mask": mask.numpy()})[0]
    return torch.from_numpy(out)


# ------------------------------------------------------------------------------------------------------------
# public entry points


def export_model(
    model: nn.Module,
    path: str | os.PathLike,
    format: str = "torchscript",
    *,
    n_particles: int | None = None,
    score: str = "default",
    chunk: int = 64,
    seed: int = 0,
    metadata: Mapping | None = None,
) -> ExportResult:
    """Export ``model``'s anomaly score as a self-contained TorchScript or ONNX file.

    Parameters
    ----------
    model : JetAutoencoder
        The model (its dtype and device are kept; export happens on CPU).
    path : path
        Output file (parent directories are created; written atomically).
    format : {"torchscript", "onnx"}
    n_particles : int, optional
        Particle slots ``N`` of the inputs (default: ``model.n_particles``, else 30).
    score : str
        ``"default"`` or another key of ``model.scores``.
    chunk : int
        Batch size of the trace (and of the chunks when the model needs fixed batches).
    metadata : mapping, optional
        Extra JSON-serialisable entries for the file's metadata.

    Returns
    -------
    ExportResult
        With ``max_rel_diff``: the largest relative difference between the exported file and the eager model
        on held-back synthetic jets (at most :data:`CHECK_RTOL`, else :class:`ExportError`).
    """
    from .. import __version__

    if format not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}, got {format!r}")
    if getattr(model, "input_kind", "jets") != "jets":
        raise ExportError(
            f"model {getattr(model, 'name', '?')!r} consumes flat features, not jets; only jet models export "
            "to the (p4, mask) -> score interface"
        )
    path = Path(path)
    model = model.to("cpu").eval()
    n = int(n_particles or getattr(model, "n_particles", None) or 30)
    module = ScoreModule(model, score)
    if score != "default":
        names = _score_names(model)
        if score not in names:
            raise ExportError(f"model {model.name!r} has no score {score!r} (it offers: {', '.join(names)})")
    scorer, batching, diff = _traced_scorer(module, n, chunk, seed)
    meta = {
        "format": format,
        "model": getattr(model, "name", type(model).__name__),
        "score": score,
        "n_particles": n,
        "inputs": {
            "p4": f"(B, {n}, 4) (E, px, py, pz) in GeV, "
            + ("float32" if format == "onnx" else "any float dtype"),
            "mask": f"(B, {n}) bool, True = real particle",
        },
        "output": "score (B,) float32, higher = more anomalous",
        "compute_dtype": str(module.dtype).replace("torch.", ""),
        "batching": batching if batching == "dynamic" else f"chunked by {chunk} (pads with the last jet)",
        "lgae_version": __version__,
        "torch_version": str(torch.__version__),
        **dict(metadata or {}),
    }
    check_p4, check_mask = example_jets(2 * chunk + 3, n, seed=seed + 2)
    if format == "onnx":  # the file's p4 is float32: compare with the eager model on the same inputs
        check_p4 = check_p4.to(torch.float32)
    ref = _eager(module, check_p4, check_mask)
    if format == "torchscript":
        buf = io.BytesIO()
        meta["check_max_rel_diff"] = diff
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.save(scorer, buf, _extra_files={META_NAME: json.dumps(meta)})
            blob = buf.getvalue()
            loaded = torch.jit.load(io.BytesIO(blob))
        with torch.no_grad():
            final = _rel_diff(loaded(check_p4, check_mask), ref)
    else:
        try:
            blob = _export_onnx(scorer, n, chunk, batching)
        except Exception as err:
            hint = ""
            if "complex" in str(err).lower():
                hint = (
                    "; the model computes with complex numbers (complex weights, maxdim > 2): ONNX has none"
                )
            raise ExportError(
                f"ONNX export of {meta['model']!r} failed ({type(err).__name__}: {str(err)[:300]}){hint}; "
                "the TorchScript export (--format torchscript) may still work"
            ) from err
        try:
            out = _run_onnx(blob, check_p4, check_mask)
        except Exception as err:
            raise ExportError(
                f"onnxruntime cannot run the ONNX file of {meta['model']!r} ({type(err).__name__}: "
                f"{str(err)[:300]}); the TorchScript export (--format torchscript) may still work"
            ) from err
        final = diff if out is None else _rel_diff(out, ref)
        if out is None:
            log.warning("onnxruntime is not installed: the ONNX file was not checked")
        meta["check_max_rel_diff"] = final
        blob = _onnx_with_metadata(blob, meta)
    if not final <= CHECK_RTOL:
        why = ""
        dropped = _dropped_inplace_writes(scorer) if format == "onnx" else []
        if dropped:
            why = (
                "; the ONNX exporter drops in-place writes through views other than slices: "
                + "; ".join(dropped[:3])
                + " (write out of place, e.g. masked_fill, at least under torch.jit.is_tracing())"
            )
        raise ExportError(
            f"the exported {format} file of {meta['model']!r} differs from the eager model by {final:.3g} "
            f"(relative; tolerance {CHECK_RTOL}){why}"
        )
    meta["check_max_rel_diff"] = max(diff, final)
    from ..train.checkpoint import atomic_write_bytes, atomic_write_text

    atomic_write_bytes(path, blob)
    atomic_write_text(Path(f"{path}.json"), json.dumps(meta, indent=2) + "\n")
    return ExportResult(
        path=path, format=format, max_rel_diff=meta["check_max_rel_diff"], batching=batching, metadata=meta
    )


def export_run(
    run_dir: str | os.PathLike,
    format: str = "torchscript",
    out: str | os.PathLike | None = None,
    *,
    which: str = "best",
    score: str = "default",
    chunk: int = 64,
) -> ExportResult:
    """Export the model of a run directory (``lgae export RUN_DIR``).

    ``out`` defaults to ``RUN_DIR/export/score.pt`` (TorchScript) or ``score.onnx``. The metadata records the
    run directory, the checkpoint and the model config.
    """
    from ..train import load_run

    if format not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}, got {format!r}")
    run_dir = Path(run_dir)
    model, config = load_run(run_dir, which=which, device="cpu")
    n = (config.get("data") or {}).get("n_particles") or getattr(model, "n_particles", None)
    out = Path(out) if out is not None else run_dir / "export" / f"score{SUFFIX[format]}"
    meta = {"run_dir": str(run_dir), "checkpoint": which, "model_config": config.get("model", {})}
    return export_model(model, out, format, n_particles=n, score=score, chunk=chunk, metadata=meta)


def load_exported(path: str | os.PathLike):
    """Load an exported file: ``(callable (p4, mask) -> score tensor, metadata dict)``.

    TorchScript needs only torch; ONNX needs onnxruntime (the callable takes and returns torch tensors).
    """
    path = Path(path)
    if path.suffix == ".onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        meta = {}
        with contextlib.suppress(Exception):
            meta = {k: _maybe_json(v) for k, v in sess.get_modelmeta().custom_metadata_map.items()}

        def run(p4: Tensor, mask: Tensor) -> Tensor:
            feed = {
                "p4": torch.as_tensor(p4).to(torch.float32).numpy(),
                "mask": torch.as_tensor(mask).numpy(),
            }
            return torch.from_numpy(sess.run(["score"], feed)[0])

        return run, meta
    extra = {META_NAME: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return module, json.loads(extra[META_NAME] or "{}")


def _maybe_json(v: str) -> Any:
    try:
        return json.loads(v)
    except (TypeError, ValueError):
        return v
