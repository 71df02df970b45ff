#!/usr/bin/env python
"""Lorentz-equivariance errors of the shipped LGAE configurations on generated jets (the table of the LGAE
issue), with :func:`lgae.testing.equivariance_error`.

For each configuration (``configs/lgae_mix.yaml``, ``configs/lgae_minmax.yaml`` and the min-max model with
``maxdim: 3``, which adds rank-2 tensors and runs the general Clebsch-Gordan path) it measures, per jet, the
max-abs relative deviation of every output (reconstructed 4-momenta ``p4``, latent 4-vectors, latent scalars)
under random rotations and boosts, and reports the median and the worst jet:

* float64, rapidity up to ``--rapidity`` (default 10, gamma ~ 1.1e4), eval mode, then train mode after
  ``--steps`` Adam steps (fresh weights, then trained ones);
* float32, rapidity up to ``--rapidity32`` (default 1).

Scalars are also reported against the scale of that output over the whole sample (``abs/scale``: the
per-jet absolute deviation divided by the sample's median ``max |f(p)|``), which separates rounding noise from
the relative error of a latent scalar that happens to be near zero for one jet.

Inputs: ``--data FILE.root`` (weaver branches; default: ``--n-jets`` QCD jets generated with Pythia 8 into
``--data`` when it does not exist), massless-ified (``E = |p|``, as the LGAE paper did) so that the inputs
carry their invariants exactly; momenta are not rescaled (the model scales them itself).

Example::

    python scripts/equivariance.py --n-jets 1000 --out equivariance.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lgae.allocator import tune_allocator  # noqa: E402
from lgae.models import build_model  # noqa: E402
from lgae.testing import adam_steps, measure  # noqa: E402
from lgae.train.config import load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "mix": (ROOT / "configs/lgae_mix.yaml", {}),
    "minmax": (ROOT / "configs/lgae_minmax.yaml", {}),
    "minmax-maxdim3": (ROOT / "configs/lgae_minmax.yaml", {"maxdim": 3}),
}


def load_massless_jets(path: Path, n_jets: int, seed: int, n_particles: int = 30):
    """``n_jets`` jets from ``path`` (generated first when missing), massless-ified, float64."""
    from lgae.data import load_jets

    if not path.exists():
        from lgae.data.pythia import generate_jets

        path.parent.mkdir(parents=True, exist_ok=True)
        generate_jets("qcd", n_jets, seed, path)
    jets = load_jets(str(path), n_particles=n_particles)
    p = torch.as_tensor(jets.p4[:n_jets], dtype=torch.float64).clone()
    mask = torch.as_tensor(jets.mask[:n_jets]).bool()
    p[..., 0] = p[..., 1:].norm(dim=-1)
    return p * mask[..., None], mask


def _model(name: str, dtype: str, seed: int):
    path, extra = CONFIGS[name]
    cfg = dict(load_config(path)["model"])
    cfg.pop("name", None)
    cfg.update(extra, dtype=dtype, seed=seed)
    return build_model("lgae", **cfg)


def _summary(report) -> dict:
    rel = report.relative()
    out = {}
    for name, e in rel.items():
        row = {"median": float(e.median()), "worst": float(e.max())}
        if report.kinds[name] == "scalar":
            scale = report.scale[name].median()
            row["abs_over_scale_worst"] = float((report.diff[name] / scale).max())
        out[name] = row
    return out


def run(args) -> dict:
    p, mask = load_massless_jets(Path(args.data), args.n_jets, args.seed)
    print(f"{len(p)} massless-ified jets from {args.data}", flush=True)
    results = []
    for name in args.configs:
        cases = [
            ("float64", args.rapidity, "eval", 0),
            ("float64", args.rapidity, "train", args.steps),
            ("float32", args.rapidity32, "eval", 0),
        ]
        for dtype, rap, mode, steps in cases:
            torch.manual_seed(0)
            model = _model(name, dtype, seed=0)
            t0 = time.perf_counter()
            if steps:
                adam_steps(model, p[: args.train_jets], mask[: args.train_jets], steps)
            if mode == "train":  # a plain callable keeps the train mode (lgae.testing evaluates modules)
                model.train()
                fn, kw = model.forward, {"dtype": getattr(torch, dtype)}
            else:
                fn, kw = model, {}
            report = measure(fn, p, mask, max_rapidity=rap, n_transforms=args.transforms, seed=1, **kw)
            row = {
                "config": name,
                "dtype": dtype,
                "max_rapidity": rap,
                "mode": mode,
                "adam_steps": steps,
                "errors": _summary(report),
                "seconds": round(time.perf_counter() - t0, 1),
            }
            results.append(row)
            _print_row(row)
    return {"n_jets": len(p), "transforms": args.transforms, "rows": results}


def _print_row(row: dict):
    cells = []
    for name, e in row["errors"].items():
        cell = f"{name} {e['median']:.1e}/{e['worst']:.1e}"
        if "abs_over_scale_worst" in e:
            cell += f" (abs/scale {e['abs_over_scale_worst']:.1e})"
        cells.append(cell)
    print(
        f"{row['config']:<15} {row['dtype']:<8} y<={row['max_rapidity']:<4g} {row['mode']:<5} "
        f"steps {row['adam_steps']:<2d} | median/worst: " + "; ".join(cells),
        flush=True,
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/equivariance_qcd.root", help="jets (generated when missing)")
    ap.add_argument("--n-jets", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=7, help="generator seed when --data is generated")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--rapidity", type=float, default=10.0, help="float64 stress: max rapidity")
    ap.add_argument("--rapidity32", type=float, default=1.0, help="float32: max rapidity")
    ap.add_argument("--transforms", type=int, default=4, help="random transforms per case")
    ap.add_argument("--steps", type=int, default=5, help="Adam steps before the train-mode case")
    ap.add_argument("--train-jets", type=int, default=256, help="jets of those Adam steps")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    tune_allocator()
    result = run(args)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
