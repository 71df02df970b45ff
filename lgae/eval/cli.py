"""Subcommands ``lgae evaluate``, ``lgae compare``, ``lgae latent`` and ``lgae run``."""

from __future__ import annotations

import argparse
import sys

EVALUATE_EPILOG = """\
examples:
  lgae evaluate runs/lgae_mix --background data/qcd_test.root --signal data/top_test.root --signal data/w.root
  lgae evaluate runs/vae/seed0 --background qcd=data/qcd_test.root --signal top=data/t.root --score chamfer

FILE: a ROOT jet file (or glob), or a YAML sample file: {out: FILE, process: top, n_jets: N, seed: S}
generates FILE when missing; {files: FILE_OR_GLOB, name: NAME, reader: {...}} reads other branch names.
Files are read with the run's own data config, i.e. the preprocessing used in training.
A sample is named by NAME= when given, else by the file's labels or metadata (the generator's process), else
its stem. The primary score is the model's "default" one unless --score names another: choose it before
looking at results. AUCs are never flipped; eps_s at eps_b is interpolated on the ROC and flagged unresolved
when n_bkg * eps_b < 10. Writes metrics.json, scores.npz and PNG plots into RUN_DIR.
"""

COMPARE_EPILOG = """\
examples:
  lgae compare runs/lgae_mix/seed* runs/vae/seed* runs/cnnae --out report/

Runs with the same config name (and task) but different seeds are grouped: mean +- std over seeds.
Every run must have been evaluated first (lgae evaluate).
Writes OUT/report.md, OUT/report.json and OUT/roc_*.png.
"""

RUN_EPILOG = """\
examples:
  lgae run                       # the default job (~15 min on a 2-core laptop): report/report.md
  lgae run --full                # paper-scale comparison: more jets, more epochs, 5 seeds (hours; use a GPU)
  lgae run --models lgae_mix,vae --seeds 0,1 --work runs/mine --out report_mine

Generates Pythia jets (QCD to train on; QCD, top, W, Z to test), trains the LGAE (Mix and Min-Max) and every
baseline with the shared trainer, evaluates each, runs the inverse task (train on top, detect QCD), compares.
Existing samples and finished runs with the same settings are reused: an interrupted job can simply be rerun.
"""


def register(subparsers) -> None:
    """Add ``evaluate``, ``compare``, ``latent`` and ``run`` to the ``lgae`` sub-parsers."""
    fmt = argparse.RawDescriptionHelpFormatter

    p = subparsers.add_parser(
        "evaluate",
        help="anomaly-detection metrics and plots of a trained run",
        description="Score background and signal jets with a trained run; write "
        "metrics.json, scores.npz and plots into the run directory.",
        epilog=EVALUATE_EPILOG,
        formatter_class=fmt,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by lgae train")
    p.add_argument(
        "--background",
        "-b",
        metavar="[NAME=]FILE",
        help="background jets (default: the run config's evaluate.background)",
    )
    p.add_argument(
        "--signal",
        "-s",
        action="append",
        default=[],
        metavar="[NAME=]FILE",
        help="signal jets; repeat for several signals (default: evaluate.signals)",
    )
    p.add_argument(
        "--score", default=None, metavar="NAME", help="primary score (default: the model's 'default')"
    )
    p.add_argument("--max-jets", type=int, default=None, metavar="N", help="use at most N jets of each file")
    p.add_argument(
        "--batch-size", type=int, default=None, metavar="N", help="scoring batch size (default 512)"
    )
    p.add_argument(
        "--n-boot",
        type=int,
        default=None,
        metavar="N",
        help="bootstrap resamplings for the primary score's uncertainties (default 200; 0: binomial)",
    )
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="score in N single-threaded worker processes (CPU; default: one per core from 20,000 jets, "
        "else 1)",
    )
    p.add_argument("--no-plots", action="store_true", help="metrics only")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_evaluate)

    p = subparsers.add_parser(
        "compare",
        help="side-by-side report of evaluated runs",
        description="Table (mean +- std over seeds) and ROC overlays of evaluated runs.",
        epilog=COMPARE_EPILOG,
        formatter_class=fmt,
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="evaluated run directories")
    p.add_argument("--out", "-o", default="report", help="output folder (default report/)")
    p.add_argument("--no-plots", action="store_true", help="tables only")
    p.set_defaults(func=cmd_compare)

    p = subparsers.add_parser(
        "latent",
        help="latent-space analysis of a trained run",
        description="PCA of the latents; per-direction relevance (Gaussian latents); Lorentz "
        "invariants of the latent 4-vectors (LGAE) and how they separate the classes.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--background", "-b", required=True, metavar="[NAME=]FILE")
    p.add_argument("--signal", "-s", action="append", default=[], metavar="[NAME=]FILE", required=True)
    p.add_argument("--max-jets", type=int, default=5000, metavar="N", help="jets per file (default 5000)")
    p.add_argument("--batch-size", type=int, default=512, metavar="N")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=cmd_latent)

    p = subparsers.add_parser(
        "run",
        help="the end-to-end job: generate, train every model, evaluate, report",
        description="Generate Pythia jets, train the LGAE and every baseline with the shared "
        "trainer, evaluate, run the inverse task and write the comparison report.",
        epilog=RUN_EPILOG,
        formatter_class=fmt,
    )
    p.add_argument("--config", "-c", default=None, help="pipeline YAML (default configs/pipeline.yaml)")
    p.add_argument("--full", action="store_true", help="paper-scale job (configs/pipeline_full.yaml)")
    p.add_argument("--out", "-o", default=None, help="report folder (default report/)")
    p.add_argument("--work", "-w", default=None, help="data and run directories (default runs/pipeline)")
    p.add_argument("--seeds", default=None, help="seeds, e.g. 0,1,2 or 0-4 (default from the config)")
    p.add_argument(
        "--models",
        default=None,
        help="comma-separated model configs to run (default: all), e.g. lgae_mix,vae",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_run)


def _fail(cmd: str, exc: BaseException) -> int:
    print(f"lgae {cmd}: error: {exc}", file=sys.stderr)
    return 2


def cmd_evaluate(args) -> int:
    from .._validate import ConfigError
    from .evaluate import evaluate_run

    try:
        r = evaluate_run(
            args.run_dir,
            args.background,
            args.signal or None,
            score=args.score,
            max_jets=args.max_jets,
            batch_size=args.batch_size,
            n_boot=args.n_boot,
            device=args.device,
            plots=not args.no_plots,
            progress=not args.quiet,
            workers=args.workers,
        )
    except (FileNotFoundError, ValueError, ConfigError, TypeError) as e:
        return _fail("evaluate", e)
    print(_summary(r))
    return 0


def _summary(r) -> str:
    lines = [
        f"{r['run_dir']}: score '{r['primary_score']}', background {r['background']} ({r['n_bkg']} jets)"
    ]
    rows = [*r["per_signal"].items()] + ([("combined", r["combined"])] if len(r["per_signal"]) > 1 else [])
    for name, m in rows:
        eps = "  ".join(
            f"eps_s({float(k):g})={v['eps_s']:.4f}±{v['err']:.4f}{'' if v['resolved'] else ' (unresolved)'}"
            for k, v in m["eps_s"].items()
        )
        lines.append(f"  {name:>10}: AUC {m['auc']:.4f}±{m['auc_err']:.4f}  {eps}")
    base = (r.get("baselines") or {}).get("jet_mass")
    if base:
        lines.append(f"  jet-mass baseline: combined AUC {base['combined']['auc']:.4f}")
    lines.append(f"  wrote {r['run_dir']}/metrics.json, scores.npz" + (", plots" if r.get("plots") else ""))
    return "\n".join(lines)


def cmd_compare(args) -> int:
    from .report import compare

    try:
        compare(args.run_dirs, args.out, plots=not args.no_plots)
    except (FileNotFoundError, ValueError) as e:
        return _fail("compare", e)
    print(f"wrote {args.out}/report.md and report.json")
    return 0


def cmd_latent(args) -> int:
    from .._validate import ConfigError
    from .latent import latent_run

    try:
        r = latent_run(
            args.run_dir,
            args.background,
            args.signal,
            max_jets=args.max_jets,
            batch_size=args.batch_size,
            device=args.device,
            plots=not args.no_plots,
            progress=not args.quiet,
        )
    except (FileNotFoundError, ValueError, ConfigError) as e:
        return _fail("latent", e)
    print(
        f"wrote {args.run_dir}/latent.json"
        + (f" and {len(r.get('plots', []))} plots" if r.get("plots") else "")
    )
    return 0


def cmd_run(args) -> int:
    from .._validate import ConfigError
    from .pipeline import load_pipeline_config, run_pipeline

    try:
        cfg = load_pipeline_config(args.config, full=args.full)
        seeds = None
        if args.seeds:
            from ..train import parse_seeds

            seeds = parse_seeds(args.seeds)
        models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
        rep = run_pipeline(
            cfg, out=args.out, work=args.work, seeds=seeds, models=models, progress=not args.quiet
        )
    except ConfigError as e:
        return _fail("run", e)
    out = args.out or cfg["out"]
    print(f"report: {out}/report.md ({rep['n_runs']} runs, {rep['pipeline']['total_s'] / 60:.1f} min)")
    return 0
