"""``lgae train``: train a model from a YAML config with dotted overrides."""

from __future__ import annotations

import argparse
import logging
import sys

from .._validate import ConfigError

EPILOG = """\
examples:
  lgae train --config configs/lgae.yaml
  lgae train --config configs/gnnae_pl.yaml data.train=qcd.root trainer.epochs=2 trainer.out=runs/x
  lgae train --config configs/vae.yaml --seeds 0,1,2          # runs/<name>/seed0, seed1, seed2
  lgae train --config configs/lgae.yaml --restart             # ignore an interrupted run in the run dir

An interrupted run is resumed from <run dir>/checkpoints/last.pt when the config matches.
The run directory is printed when training ends.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model from a YAML config",
        description="Train one model (or one per seed) from a YAML config; writes the run directory.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", "-c", required=True, help="run config YAML (may list `defaults: [base.yaml]`)")
    p.add_argument(
        "overrides", nargs="*", metavar="key.sub=value", help="dotted overrides, values parsed as YAML"
    )
    p.add_argument("--seeds", help="train one run per seed into <out>/seed<k>/, e.g. 0,1,2 or 0-4")
    p.add_argument(
        "--restart", action="store_true", help="start afresh even if the run dir holds an interrupted run"
    )
    p.add_argument("--run-dir", help="run directory (overrides trainer.out)")
    p.set_defaults(func=run)


def run(args) -> int:
    from .config import load_config
    from .run import train, train_seeds
    from .trainer import TrainingError

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        if args.seeds:
            dirs = train_seeds(
                args.config,
                args.seeds,
                run_dir=args.run_dir,
                resume=not args.restart,
                overrides=args.overrides,
            )
        else:
            config = load_config(args.config, args.overrides)
            dirs = [train(config, run_dir=args.run_dir, resume=not args.restart)]
    except (ConfigError, FileNotFoundError) as e:
        print(f"lgae train: error: {e}", file=sys.stderr)
        return 2
    except TrainingError as e:
        print(f"lgae train: error: {e}", file=sys.stderr)
        return 1
    for d in dirs:
        print(d)
    return 0
