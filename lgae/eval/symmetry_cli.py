"""``lgae discover``: symmetry discovery with the plain VAE on toy datasets (:mod:`lgae.eval.symmetry`)."""

from __future__ import annotations

import argparse
import sys

EPILOG = """\
examples:
  lgae discover                                   # plane, circle, annulus, ee_mumu, pp_dimuon x seeds 0-4
  lgae discover --quick --out runs/discover_quick # fewer events and epochs (a few minutes)
  lgae discover --datasets plane,circle --seeds 0,1,2 model.beta=0.02

Each dataset trains lgae's `vae` with the shared trainer from configs/symmetry/<dataset>.yaml (one run per
seed in OUT/runs/<dataset>/seed<k>/, reused when it already finished) and measures the relevance of its latent
directions on the held-out split. Writes OUT/summary.md, OUT/summary.json and PNG figures. See
docs/symmetry.md.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "discover",
        help="symmetry discovery: train the plain VAE on toy datasets and count relevant latent directions",
        description="Train the VAE on each toy dataset and seed, measure per-direction relevance and the "
        "local "
        "(intrinsic) dimension, compare with the expected intrinsic dimension.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--datasets",
        default=None,
        help="comma-separated toy datasets with a configs/symmetry/<name>.yaml "
        "(default: plane,circle,annulus,ee_mumu,pp_dimuon)",
    )
    p.add_argument("--seeds", default="0,1,2,3,4", help="seeds, e.g. 0,1,2 or 0-4 (default 0-4)")
    p.add_argument("--out", default="runs/discover", help="output directory (default runs/discover)")
    p.add_argument("--quick", action="store_true", help="fewer events and epochs (a smoke-scale study)")
    p.add_argument(
        "--config-dir", default=None, help="directory of the dataset configs (default configs/symmetry)"
    )
    p.add_argument("--restart", action="store_true", help="retrain runs that already exist in OUT/runs")
    p.add_argument("--no-plots", action="store_true", help="summary only")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key.sub=value",
        help="dotted overrides applied to every dataset's config (e.g. trainer.epochs=10)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from .._validate import ConfigError
    from ..train import parse_seeds
    from .symmetry import DEFAULT_DATASETS, discover

    try:
        datasets = [d for d in (args.datasets or ",".join(DEFAULT_DATASETS)).replace(" ", "").split(",") if d]
        if not datasets:
            raise ConfigError("--datasets: no dataset given")
        seeds = parse_seeds(args.seeds)
        command = " ".join(
            [
                "lgae discover",
                f"--datasets {','.join(datasets)}",
                f"--seeds {args.seeds}",
                f"--out {args.out}",
                *(["--quick"] if args.quick else []),
                *args.overrides,
            ]
        )
        discover(
            datasets,
            seeds,
            args.out,
            quick=args.quick,
            cdir=args.config_dir,
            overrides=args.overrides,
            resume=not args.restart,
            plots=not args.no_plots,
            command=command,
        )
    except (ConfigError, FileNotFoundError) as e:
        print(f"lgae discover: error: {e}", file=sys.stderr)
        return 2
    return 0
