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
  lgae train --config configs/gnnae_pl.yaml --nproc 2         # data-parallel on 2 processes (DDP)
  torchrun --standalone --nproc_per_node 2 -m lgae train --config configs/gnnae_pl.yaml   # the same

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
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="distributed data-parallel training on N processes (torchrun with DDP: gloo on CPU, nccl on "
        "GPUs); the global batch trainer.batch_size is split across them",
    )
    p.set_defaults(func=run)


def _relaunch_argv(args) -> list[str]:
    """The ``lgae train`` arguments each torchrun worker gets (everything but ``--nproc``)."""
    argv = ["train", "--config", str(args.config), *args.overrides]
    if args.seeds:
        argv += ["--seeds", str(args.seeds)]
    if args.restart:
        argv.append("--restart")
    if args.run_dir:
        argv += ["--run-dir", str(args.run_dir)]
    return argv


def run(args) -> int:
    from . import distributed
    from .config import load_config
    from .run import train, train_seeds
    from .trainer import TrainingError

    if getattr(args, "nproc", 1) < 1:
        print(f"lgae train: error: --nproc must be >= 1, got {args.nproc}", file=sys.stderr)
        return 2
    if getattr(args, "nproc", 1) > 1 and distributed.env_world_size() <= 1:
        try:
            load_config(args.config, args.overrides)  # fail here, once, on a bad config
        except (ConfigError, FileNotFoundError) as e:
            print(f"lgae train: error: {e}", file=sys.stderr)
            return 2
        from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

        try:
            return distributed.launch(args.nproc, _relaunch_argv(args))
        except ChildFailedError as e:
            print(f"lgae train: error: a training process failed:\n{e}", file=sys.stderr)
            return 1
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO
            if distributed.context().is_main or distributed.env_world_size() <= 1
            else logging.WARNING,
            format="%(message)s",
            stream=sys.stderr,
        )
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
    finally:
        main = distributed.context().is_main
        distributed.destroy()
    if main:
        for d in dirs:
            print(d)
    return 0
