"""Exported scorers (TorchScript, ONNX) reproduce the eager models' anomaly scores, without lgae installed."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lgae.eval.export import (
    CHECK_RTOL,
    ExportError,
    example_jets,
    export_model,
    export_run,
    load_exported,
)
from lgae.models import available_models, build_model, model_class

torch.set_num_threads(1)
N = 8

#: small configs for the registered models (anything else is built with its defaults and n_particles = N)
SMALL = {
    "lgae": {
        "encoder_channels": [2, 2],
        "decoder_channels": [2, 2],
        "mlp_width": 2,
        "mlp_depth": 1,
        "n_basis": 4,
    },
    "vae": {"hidden": [16]},
    "gnnae-jl": {"node_sizes": [4, 4], "edge_sizes": [[8], [8]]},
    "gnnae-pl": {"node_sizes": [4, 4], "edge_sizes": [[8], [8]]},
    "cnnae": {"n_pixels": 8, "channels": 4, "latent_dim": 4},
}
#: ONNX exports that fail for a structural reason: case -> (model, config overrides, what the ExportError
#: says); tested to fail with that clear error. Every registered jet model's default config exports.
ONNX_LIMITS = {
    # onnxruntime has no complex arithmetic; the TorchScript export of these works
    "lgae-complex-weights": ("lgae", {"complex_weights": True}, "complex numbers"),
    "lgae-maxdim3": ("lgae", {"maxdim": 3}, "complex numbers"),
}


def small_model(name: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    cfg = {**SMALL.get(name, {}), **overrides}
    if "n_particles" in inspect.signature(model_class(name).__init__).parameters:
        cfg["n_particles"] = N
    return build_model(name, **cfg).eval()


def eager(model, p4, mask):
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        return model.anomaly_score(p4.to(dtype), mask).float()


def rel(a, b):
    a, b = a.detach(), b.detach()
    return float(((a.double() - b.double()).abs() / b.double().abs().clamp_min(1e-30)).max())


JET_MODELS = [n for n in available_models() if getattr(model_class(n), "input_kind", "jets") == "jets"]


@pytest.mark.parametrize("name", JET_MODELS)
def test_torchscript_matches_eager(name, tmp_path):
    model = small_model(name)
    res = export_model(model, tmp_path / "m.pt", "torchscript", n_particles=N, chunk=16)
    assert res.max_rel_diff <= CHECK_RTOL
    loaded, meta = load_exported(tmp_path / "m.pt")
    assert meta["model"] == name and meta["n_particles"] == N and meta["score"] == "default"
    p4, mask = example_jets(37, N, seed=123)  # held back: neither the trace nor the export check saw them
    for dtype in (torch.float32, torch.float64):
        got = loaded(p4.to(dtype), mask)
        assert got.shape == (37,) and got.dtype == torch.float32
        assert rel(got, eager(model, p4.to(dtype), mask)) <= CHECK_RTOL
    assert json.loads((tmp_path / "m.pt.json").read_text())["batching"] == meta["batching"]


@pytest.mark.parametrize("name", JET_MODELS)
def test_onnx_runs_under_onnxruntime_and_matches_eager(name, tmp_path):
    model = small_model(name)
    res = export_model(model, tmp_path / "m.onnx", "onnx", n_particles=N, chunk=16)
    assert res.max_rel_diff <= CHECK_RTOL
    run, meta = load_exported(tmp_path / "m.onnx")
    assert meta["model"] == name and meta["inputs"]["mask"].startswith(f"(B, {N}) bool")
    p4, mask = example_jets(29, N, seed=321)
    got = run(p4, mask)
    assert got.shape == (29,)
    assert rel(got, eager(model, p4.float(), mask)) <= CHECK_RTOL


def test_lgae_onnx_edge_cases(tmp_path):
    """The LGAE's ONNX file (canonical frame in float64 inside) on jets of 0..4 constituents, massless and
    boosted ones, and a batch of one."""
    from lgae.so31 import apply_lorentz, lorentz_matrix, random_lorentz

    model = small_model("lgae")
    export_model(model, tmp_path / "m.onnx", "onnx", n_particles=N, chunk=16)
    run, meta = load_exported(tmp_path / "m.onnx")
    assert meta["batching"] == "dynamic"
    p4, mask = example_jets(40, N, seed=5)
    mask[:20] &= torch.arange(N) < (torch.arange(20) % 5)[:, None]  # the leading 0..4 constituents
    p4[30:], mask[30:] = example_jets(10, N, seed=6, mass=0.0)  # massless constituents
    p4 = p4 * mask[..., None]
    ang, rap = random_lorentz((40,), max_rapidity=3.0, seed=2)
    boosted = apply_lorentz(lorentz_matrix(ang, rap)[:, None], p4) * mask[..., None]
    for x in (p4, boosted):
        want, got = eager(model, x.float(), mask), run(x, mask)
        # scores are finite (a lone massless constituent is scaled by its energy) and agree
        ok = torch.isfinite(want)
        assert ok.sum() >= 35 and torch.equal(torch.isfinite(got), ok)
        assert rel(got[ok], want[ok]) <= CHECK_RTOL
        assert rel(run(x[2:3], mask[2:3]), want[2:3]) <= CHECK_RTOL  # a batch of one


@pytest.mark.parametrize("config", ["lgae_mix", "lgae_minmax"])
def test_shipped_lgae_configs_export_to_onnx(config, tmp_path):
    from lgae.train.config import load_config

    section = dict(load_config(Path(__file__).parents[2] / "configs" / f"{config}.yaml")["model"])
    name = section.pop("name")
    section["n_particles"] = 30
    torch.manual_seed(0)
    model = build_model(name, **section).eval()
    res = export_model(model, tmp_path / "m.onnx", "onnx", n_particles=30, chunk=16)
    assert res.max_rel_diff <= CHECK_RTOL and res.batching == "dynamic"
    run, _ = load_exported(tmp_path / "m.onnx")
    p4, mask = example_jets(50, 30, seed=11)
    assert rel(run(p4, mask), eager(model, p4.float(), mask)) <= CHECK_RTOL


LOAD_SNIPPET = r"""
import sys
sys.modules["lgae"] = None  # `import lgae` now fails: the files must not need it
import torch
p4, mask = torch.load(sys.argv[1], weights_only=True)
for path in sys.argv[2:]:
    if path.endswith(".onnx"):
        import onnxruntime as ort
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        out = torch.from_numpy(sess.run(["score"], {"p4": p4.float().numpy(), "mask": mask.numpy()})[0])
    else:
        out = torch.jit.load(path)(p4, mask)
    torch.save(out, path + ".out")
try:
    import lgae  # noqa: F401
except ImportError:
    print("lgae not importable")
"""


def test_exported_files_load_without_lgae(tmp_path):
    """In a fresh ``python -I`` (no PYTHONPATH, another cwd, ``import lgae`` blocked)."""
    cases = [("gnnae-pl", "torchscript"), ("lgae", "torchscript")]
    if _has_onnxruntime():
        cases += [("gnnae-pl", "onnx"), ("lgae", "onnx")]
    p4, mask = example_jets(21, N, seed=7)
    torch.save((p4, mask), tmp_path / "in.pt")
    paths, want = [], []
    for name, fmt in cases:
        model = small_model(name)
        path = tmp_path / f"{name}.{'onnx' if fmt == 'onnx' else 'pt'}"
        export_model(model, path, fmt, n_particles=N, chunk=16)
        paths.append(str(path))
        want.append(eager(model, p4.float() if fmt == "onnx" else p4, mask))
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-I", "-c", LOAD_SNIPPET, str(tmp_path / "in.pt"), *paths],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "lgae not importable" in proc.stdout
    for path, w in zip(paths, want):
        assert rel(torch.load(path + ".out", weights_only=True), w) <= CHECK_RTOL, path


def test_untraceable_scores_raise_a_clear_error(tmp_path):
    model = small_model("lgae")
    with pytest.raises(ExportError, match="hungarian"):
        export_model(model, tmp_path / "h.pt", n_particles=N, chunk=8, score="hungarian")
    with pytest.raises(ExportError, match="no score 'nope'"):
        export_model(model, tmp_path / "x.pt", n_particles=N, chunk=8, score="nope")
    assert not (tmp_path / "h.pt").exists()
    features = build_model("vae", input_kind="features", n_features=3)
    with pytest.raises(ExportError, match="flat features"):
        export_model(features, tmp_path / "f.pt")


def test_other_scores_export(tmp_path):
    model = small_model("gnnae-jl")
    export_model(model, tmp_path / "c.pt", n_particles=N, chunk=8, score="chamfer_euclidean")
    loaded, meta = load_exported(tmp_path / "c.pt")
    p4, mask = example_jets(10, N, seed=9)
    with torch.no_grad():
        want = model.scores(p4.float(), mask)["chamfer_euclidean"]
    assert meta["score"] == "chamfer_euclidean" and rel(loaded(p4, mask), want) <= CHECK_RTOL


@pytest.fixture
def run_dir(tmp_path):
    """A run directory of a tiny gnnae-pl trained for one short epoch."""
    from lgae.train import Trainer

    model = small_model("gnnae-pl")
    cfg = {
        "name": "gnnae-pl",
        "data": {"n_particles": N},
        "model": {"name": "gnnae-pl", "n_particles": N, **SMALL["gnnae-pl"]},
    }
    train, val = example_jets(64, N, seed=1), example_jets(16, N, seed=2)
    trainer = {"epochs": 1, "batch_size": 32, "progress": False, "num_threads": 1}
    Trainer(model, train, val, trainer, tmp_path / "run", run_config={**cfg, "trainer": trainer}).fit()
    return tmp_path / "run"


def test_lgae_export_cli(run_dir, capsys):
    from lgae.cli import main

    assert main(["export", str(run_dir)]) == 0
    path = run_dir / "export" / "score.pt"
    assert str(path) in capsys.readouterr().out
    loaded, meta = load_exported(path)
    assert meta["run_dir"] == str(run_dir) and meta["checkpoint"] == "best"
    out = run_dir.parent / "s.onnx"
    if _has_onnxruntime():
        assert main(["export", str(run_dir), "--format", "onnx", "--out", str(out), "--which", "last"]) == 0
        run, meta = load_exported(out)
        assert meta["checkpoint"] == "last"
        p4, mask = example_jets(5, N, seed=3)
        assert rel(run(p4, mask), loaded(p4, mask)) <= CHECK_RTOL
    assert main(["export", str(run_dir.parent / "missing")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_export_run_defaults(run_dir):
    res = export_run(run_dir)
    assert res.path == run_dir / "export" / "score.pt" and res.metadata["model_config"]["name"] == "gnnae-pl"


def _has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("case", sorted(ONNX_LIMITS))
def test_onnx_limits_fail_with_a_clear_error(case, tmp_path):
    """Known ONNX limitations are an ExportError naming the problem, and leave no file behind."""
    name, overrides, says = ONNX_LIMITS[case]
    model = small_model(name, **overrides)
    with pytest.raises(ExportError, match=f"(?s)ONNX export.*{says}"):
        export_model(model, tmp_path / "m.onnx", "onnx", n_particles=N, chunk=16)
    assert not (tmp_path / "m.onnx").exists()
    assert export_model(model, tmp_path / "m.pt", n_particles=N, chunk=16).max_rel_diff <= CHECK_RTOL


class _DiagonalWrite(torch.nn.Module):
    """A jet scorer whose in-place write through a diagonal view the ONNX exporter drops."""

    name = "diagonal-write"

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))

    def anomaly_score(self, p4, mask):
        p4 = p4 * mask[..., None]
        g = p4 @ p4.transpose(1, 2) * self.w  # (B, N, N), diagonal |p_i|^2 > 0
        g.diagonal(dim1=-2, dim2=-1).zero_()
        return g.sum((1, 2))


def test_onnx_check_names_a_dropped_inplace_write(tmp_path):
    model = _DiagonalWrite()
    assert export_model(model, tmp_path / "m.pt", n_particles=N, chunk=8).max_rel_diff <= CHECK_RTOL
    with pytest.raises(ExportError, match=r"aten::zero_ on aten::diagonal at .*test_export\.py"):
        export_model(model, tmp_path / "m.onnx", "onnx", n_particles=N, chunk=8)
    assert not (tmp_path / "m.onnx").exists()
