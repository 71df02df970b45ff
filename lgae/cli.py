"""The ``lgae`` console script: one subcommand per task, each defined next to the code it drives."""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that add subcommands; each exposes ``register(subparsers)`` and sets ``func`` on its parsers.
# Imported lazily so that ``lgae --help`` stays fast and an optional extra (pythia8mc) is only needed where
# used.
_COMMAND_MODULES = (
    "lgae.data.cli",
    "lgae.train.cli",
    "lgae.eval.cli",
    "lgae.eval.symmetry_cli",
    "lgae.eval.export_cli",
)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="lgae", description="Lorentz-group equivariant autoencoders for anomaly detection on jets."
    )
    parser.add_argument("--version", action="version", version=f"lgae {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .allocator import tune_allocator

    tune_allocator()  # reuse freed heap memory: no page faults on every step's temporaries
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
