"""``lgae export``: write a trained model's anomaly score as a self-contained TorchScript or ONNX file."""

from __future__ import annotations

import argparse
import sys

EPILOG = """\
examples:
  lgae export runs/lgae                                  # runs/lgae/export/score.pt (TorchScript)
  lgae export runs/gnnae_pl --format onnx                # runs/gnnae_pl/export/score.onnx
  lgae export runs/lgae --out lgae_score.pt --which last --score chamfer

The file's forward is (p4[B, N, 4] (E, px, py, pz) GeV, mask[B, N] bool) -> score[B] float32, preprocessing
included; it loads with torch.jit.load (e.g. coffea's torch_wrapper) or onnxruntime, without lgae.
The export is checked against the eager model on held-back synthetic jets (relative difference <= 1e-5).
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a run's anomaly score as TorchScript or ONNX",
        description="Export a trained model as a self-contained (p4, mask) -> score file.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by `lgae train`")
    p.add_argument("--format", "-f", choices=("torchscript", "onnx"), default="torchscript")
    p.add_argument("--out", "-o", help="output file (default RUN_DIR/export/score.pt or score.onnx)")
    p.add_argument("--which", default="best", help="checkpoint: best, last or a path (default best)")
    p.add_argument("--score", default="default", help="which of model.scores to export (default: default)")
    p.add_argument("--chunk", type=int, default=64, help="batch size of the trace (default 64)")
    p.set_defaults(func=run)


def run(args) -> int:
    from .._validate import ConfigError
    from .export import ExportError, export_run

    try:
        res = export_run(
            args.run_dir, args.format, args.out, which=args.which, score=args.score, chunk=args.chunk
        )
    except (ExportError, ConfigError, FileNotFoundError, ValueError) as e:
        print(f"lgae export: error: {e}", file=sys.stderr)
        return 2
    print(
        f"{res.path}  ({res.format}, model {res.metadata['model']!r}, score {res.metadata['score']!r}, "
        f"batching {res.batching}, max relative difference to the eager model {res.max_rel_diff:.2g})"
    )
    return 0
