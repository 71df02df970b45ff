#!/usr/bin/env python
"""A/B speed comparison of a model between the working tree and another git revision, robust to a noisy
machine.

On a shared virtual machine the throughput of one command swings by up to 2x from one minute to the next,
so two separate ``scripts/bench.py`` runs cannot show a 10-20 % change. This script loads both versions side
by side in one process: the revision's ``lgae`` package is extracted with ``git archive`` into a temporary
folder and imported under another name (``lgae_ref``: its absolute ``lgae`` imports are renamed). Both models
get the same config and weights (the reference's ``state_dict`` loaded into the current model), score the same
synthetic jets (those of ``scripts/bench.py``), and are called alternately; the speed-up is the median over
pairs of ``time(ref) / time(current)``, so that the machine's swings, slower than one call, cancel.

Examples::

    python scripts/bench_ab.py --ref 7ff8ff5 --config '{"aggregation": "minmax", "tau_vectors": 8}'
    python scripts/bench_ab.py --ref HEAD~3 --mode train --pairs 40
    python scripts/bench_ab.py --ref main --dtype float64 --out ab.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench import step_function, synthetic_jets  # noqa: E402

from lgae.allocator import tune_allocator  # noqa: E402
from lgae.models import build_model  # noqa: E402

REF_PACKAGE = "lgae_ref"
_IMPORT = re.compile(r"\b(from|import)\s+lgae\b")


def import_revision(rev: str, dest: Path, repo: Path = ROOT):
    """Extract ``lgae/`` at git revision ``rev`` into ``dest/lgae_ref`` and import it as ``lgae_ref``.

    Raises ValueError when ``rev`` is not a revision of ``repo`` (git's message included)."""
    proc = subprocess.run(["git", "-C", str(repo), "archive", rev, "lgae"], capture_output=True)
    if proc.returncode != 0:
        raise ValueError(f"git archive {rev!r} failed: {proc.stderr.decode().strip()}")
    with tarfile.open(fileobj=BytesIO(proc.stdout)) as tar:
        try:
            tar.extractall(dest, filter="data")
        except TypeError:  # Python without extraction filters (the archive is our own repository's)
            tar.extractall(dest)
    pkg = dest / REF_PACKAGE
    (dest / "lgae").rename(pkg)
    for f in pkg.rglob("*.py"):  # absolute imports of the package itself -> the renamed copy
        text = f.read_text()
        text = _IMPORT.sub(lambda m: f"{m.group(1)} {REF_PACKAGE}", text)
        f.write_text(re.sub(r"\blgae\.", f"{REF_PACKAGE}.", text))
    for mod in [m for m in sys.modules if m == REF_PACKAGE or m.startswith(REF_PACKAGE + ".")]:
        del sys.modules[mod]  # a revision imported before in this process
    sys.path.insert(0, str(dest))
    try:
        return importlib.import_module(f"{REF_PACKAGE}.models")
    finally:
        sys.path.remove(str(dest))


def compare(ref_models, name: str, config: dict, dtype: str, mode: str, batch: int, pairs: int, warmup: int):
    """Alternate ``pairs`` calls of the reference and the current model; returns a result dict."""
    torch.manual_seed(0)
    ref = ref_models.build_model(name, **config).to(getattr(torch, dtype))
    cur = build_model(name, **config).to(getattr(torch, dtype))
    try:
        cur.load_state_dict(ref.state_dict())
    except RuntimeError as err:
        raise ValueError(f"the two versions of {name!r} have different parameters: {err}") from None
    p4, mask = synthetic_jets(batch, config.get("n_particles", 30), dtype=getattr(torch, dtype))
    fa, fb = step_function(ref, p4, mask, mode), step_function(cur, p4, mask, mode)
    result = {}
    if mode == "infer":
        with torch.inference_mode():
            a, b = ref.anomaly_score(p4, mask), cur.anomaly_score(p4, mask)
        result["max_rel_score_diff"] = float(((a - b).abs() / a.abs().clamp_min(1e-30)).max())
    for _ in range(warmup):
        fa(), fb()
    ta, tb = [], []
    for _ in range(pairs):
        t = time.perf_counter()
        fa()
        ta.append(time.perf_counter() - t)
        t = time.perf_counter()
        fb()
        tb.append(time.perf_counter() - t)
    result.update(
        ref_ms=1e3 * statistics.median(ta),
        cur_ms=1e3 * statistics.median(tb),
        speedup=statistics.median(a / b for a, b in zip(ta, tb)),
        cur_best_jets_per_s=batch / min(tb),
        ref_best_jets_per_s=batch / min(ta),
    )
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", required=True, help="git revision to compare the working tree with")
    ap.add_argument("--model", default="lgae")
    ap.add_argument("--config", default="{}", help="JSON dict of model config keys (both versions)")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--mode", default="infer", choices=("infer", "train"))
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--pairs", type=int, default=100, help="alternating (reference, current) call pairs")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="write the result as JSON here")
    args = ap.parse_args(argv)
    try:
        config = json.loads(args.config)
    except json.JSONDecodeError as err:
        ap.error(f"--config is not JSON: {err}")
    if not isinstance(config, dict):
        ap.error("--config must be a JSON dict")
    config.setdefault("n_particles", 30)
    tune_allocator()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            ref_models = import_revision(args.ref, Path(tmp))
            res = compare(
                ref_models, args.model, config, args.dtype, args.mode, args.batch, args.pairs, args.warmup
            )
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    res = {"ref": args.ref, "model": args.model, "config": config, "dtype": args.dtype, "mode": args.mode,
           "batch": args.batch, "pairs": args.pairs, "threads": args.threads, **res}  # fmt: skip
    print(
        f"{args.model} {args.mode} {args.dtype}, batch {args.batch}, {args.threads} threads, {args.pairs} "
        f"pairs: {args.ref} {res['ref_ms']:.1f} ms, working tree {res['cur_ms']:.1f} ms (medians); speed-up "
        f"{res['speedup']:.3f}x (median of pair ratios)"
    )
    if "max_rel_score_diff" in res:
        print(f"max relative difference of the anomaly scores: {res['max_rel_score_diff']:.2e}")
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
