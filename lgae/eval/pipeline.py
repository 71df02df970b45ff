"""``lgae run``: the end-to-end job -- generate jets, train every model, evaluate, compare, write the report.

Steps (each one skipped when its output already exists and matches):

1. **Generate** the Pythia 8 + FastJet samples of the ``generate.samples`` section with
   :func:`lgae.data.pythia.generate_jets` into ``<work>/data/<sample>.root`` (a file whose metadata records
   the same process, size, seed and settings is reused).
2. **Train** every model config of ``models`` (the LGAE and the baselines) with the one shared trainer
   (:func:`lgae.train.train`), for every seed, with ``data.train`` set to the training sample and the
   ``trainer`` overrides of the pipeline (epochs, batch size, ...); ``time_budget_s`` stops a model's training
   after the epoch that would overrun it. Run directories: ``<work>/runs/<config name>/seed<k>``. A run whose
   ``run.json`` exists and whose saved config equals the one requested is not retrained.
3. **Evaluate** each run (:func:`lgae.eval.evaluate.evaluate_run`) on the test samples: background QCD,
   signals top, W, Z.
4. **Inverse task** for the configs listed under ``inverse.models``: train on top jets, evaluate with
   background = top, signal = QCD (Finke et al. 2021: an autoencoder that only flags "complex" jets fails this
   direction).
5. **Compare** all runs into ``<out>/report.md``, ``report.json`` and ROC overlays.

The pipeline's own YAML (``configs/pipeline.yaml``; ``configs/pipeline_full.yaml`` for the paper-scale
comparison) is validated with :func:`lgae._validate.check_keys` before anything runs; it may start with
``defaults: [file]`` like a run config.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .._validate import ConfigError, check_keys

PIPELINE_KEYS = (
    "work",
    "out",
    "seeds",
    "device",
    "generate",
    "models",
    "trainer",
    "data",
    "time_budget_s",
    "evaluate",
    "inverse",
)
GENERATE_KEYS = (
    "workers",
    "mpi",
    "isr",
    "pt_min",
    "pt_max",
    "eta_max",
    "pthat_min",
    "n_constituents",
    "chunk_size",
    "samples",
)
SAMPLE_KEYS = ("process", "n_jets", "seed")
EVAL_KEYS = ("train", "background", "signals", "n_boot", "batch_size", "max_jets", "recon_jets", "workers")
INVERSE_KEYS = ("models", "train", "background", "signals")
#: generate_jets arguments that must match a file's metadata for it to be reused
_GEN_MATCH = (
    "process",
    "n_jets",
    "seed",
    "mpi",
    "isr",
    "pt_min",
    "pt_max",
    "eta_max",
    "pthat_min",
    "n_constituents",
    "chunk_size",
)


# ------------------------------------------------------------------------------------------------------------
# configuration
# ------------------------------------------------------------------------------------------------------------


def repo_root() -> Path:
    """The checkout the package lives in (for an editable install), else the current directory."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "configs").is_dir() else Path.cwd()


def default_config_path(full: bool = False) -> Path:
    name = "pipeline_full.yaml" if full else "pipeline.yaml"
    for base in (Path.cwd(), repo_root()):
        p = base / "configs" / name
        if p.is_file():
            return p
    raise ConfigError(f"configs/{name} not found in {Path.cwd()} or {repo_root()}; give --config PATH")


def _read(path: Path, chain: tuple = ()) -> dict:
    from ..train.config import deep_merge

    path = Path(path)
    if path.resolve() in chain:
        raise ConfigError(f"{path}: cyclic 'defaults'")
    if not path.is_file():
        raise ConfigError(f"pipeline config not found: {path}")
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: a pipeline config must be a mapping")
    defaults = cfg.pop("defaults", None) or []
    if isinstance(defaults, str):
        defaults = [defaults]
    merged: dict = {}
    for d in defaults:
        merged = deep_merge(merged, _read(path.parent / d, (*chain, path.resolve())))
    out = deep_merge(merged, cfg)
    out.setdefault("_base_dir", str(path.parent.resolve()))
    if "models" in cfg:  # model paths are relative to the file that lists them
        out["_models_dir"] = str(path.parent.resolve())
    return out


def validate_pipeline_config(cfg: Mapping) -> dict:
    """Check every section's keys and types; returns a resolved copy (sample names, model paths)."""
    cfg = copy.deepcopy(dict(cfg))
    private = {k: cfg.pop(k) for k in list(cfg) if k.startswith("_")}
    check_keys(cfg, PIPELINE_KEYS, where="pipeline", required=("generate", "models", "evaluate"))
    gen = cfg["generate"]
    if not isinstance(gen, Mapping):
        raise ConfigError("pipeline.generate must be a mapping")
    check_keys(gen, GENERATE_KEYS, where="pipeline.generate", required=("samples",))
    samples = gen["samples"]
    if not isinstance(samples, Mapping) or not samples:
        raise ConfigError("pipeline.generate.samples must map sample names to {process, n_jets, seed}")
    for name, s in samples.items():
        if not isinstance(s, Mapping):
            raise ConfigError(f"pipeline.generate.samples.{name} must be a mapping")
        check_keys(s, SAMPLE_KEYS, where=f"pipeline.generate.samples.{name}", required=SAMPLE_KEYS)
        if s["process"] not in ("qcd", "top", "w", "z"):
            raise ConfigError(
                f"pipeline.generate.samples.{name}.process: expected qcd, top, w or z, got {s['process']!r}"
            )
        for k in ("n_jets", "seed"):
            if isinstance(s[k], bool) or not isinstance(s[k], int) or s[k] < (1 if k == "n_jets" else 0):
                raise ConfigError(f"pipeline.generate.samples.{name}.{k}: expected an integer, got {s[k]!r}")
    models = cfg["models"]
    if isinstance(models, str):
        models = [models]
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise ConfigError("pipeline.models must be a list of model config files")
    base = Path(private.get("_models_dir") or private.get("_base_dir") or ".")
    resolved = []
    for m in models:
        p = Path(m)
        if not p.is_absolute():
            p = base / p if (base / p).is_file() or not p.is_file() else p
        if not p.is_file():
            raise ConfigError(f"pipeline.models: model config {m!r} not found (looked in {base})")
        resolved.append(str(p))
    cfg["models"] = resolved

    def sample_ref(value, where):
        if value not in samples:
            raise ConfigError(
                f"{where}: {value!r} is not a sample of generate.samples ({', '.join(samples)})"
            )

    ev = cfg["evaluate"]
    if not isinstance(ev, Mapping):
        raise ConfigError("pipeline.evaluate must be a mapping")
    check_keys(ev, EVAL_KEYS, where="pipeline.evaluate", required=("train", "background", "signals"))
    sample_ref(ev["train"], "pipeline.evaluate.train")
    sample_ref(ev["background"], "pipeline.evaluate.background")
    if isinstance(ev["signals"], str):
        ev["signals"] = [ev["signals"]]
    for s in ev["signals"]:
        sample_ref(s, "pipeline.evaluate.signals")
    w = ev.get("workers")
    if w is not None and (isinstance(w, bool) or not isinstance(w, int) or w < 1):
        raise ConfigError(f"pipeline.evaluate.workers: expected a positive integer or null (auto), got {w!r}")
    inv = cfg.get("inverse")
    if inv:
        check_keys(
            inv, INVERSE_KEYS, where="pipeline.inverse", required=("models", "train", "background", "signals")
        )
        if isinstance(inv["models"], str):
            inv["models"] = [inv["models"]]
        stems = [Path(m).stem for m in resolved]
        for m in inv["models"]:
            if m not in stems:
                raise ConfigError(
                    f"pipeline.inverse.models: {m!r} is not one of the models ({', '.join(stems)})"
                )
        sample_ref(inv["train"], "pipeline.inverse.train")
        sample_ref(inv["background"], "pipeline.inverse.background")
        if isinstance(inv["signals"], str):
            inv["signals"] = [inv["signals"]]
        for s in inv["signals"]:
            sample_ref(s, "pipeline.inverse.signals")
    for section in ("trainer", "data"):
        if cfg.get(section) is not None and not isinstance(cfg[section], Mapping):
            raise ConfigError(f"pipeline.{section} must be a mapping of {section} keys")
    if cfg.get("trainer"):
        from ..train.config import TrainerConfig

        check_keys(cfg["trainer"], TrainerConfig.keys(), where="pipeline.trainer")
    tb = cfg.get("time_budget_s")
    if tb is not None and (isinstance(tb, bool) or not isinstance(tb, (int, float)) or tb <= 0):
        raise ConfigError(
            f"pipeline.time_budget_s: expected a positive number of seconds or null, got {tb!r}"
        )
    from ..train import parse_seeds

    cfg["seeds"] = parse_seeds(
        cfg.get("seeds", [0]) if not isinstance(cfg.get("seeds"), int) else [cfg["seeds"]]
    )
    cfg.setdefault("work", "runs/pipeline")
    cfg.setdefault("out", "report")
    cfg.setdefault("device", "auto")
    return cfg


def load_pipeline_config(path: str | os.PathLike | None = None, full: bool = False) -> dict:
    """Read and validate a pipeline YAML (default: ``configs/pipeline.yaml``, or ``pipeline_full.yaml``)."""
    path = Path(path) if path else default_config_path(full)
    return validate_pipeline_config(_read(path))


# ------------------------------------------------------------------------------------------------------------
# steps
# ------------------------------------------------------------------------------------------------------------


def _log(msg: str) -> None:
    print(f"[lgae run] {msg}", file=sys.stderr, flush=True)


def _gen_args(cfg: Mapping, spec: Mapping) -> dict:
    from ..data.pythia import DEFAULT_CHUNK_SIZE

    gen = cfg["generate"]
    args = {
        "process": spec["process"],
        "n_jets": int(spec["n_jets"]),
        "seed": int(spec["seed"]),
        "mpi": bool(gen.get("mpi", False)),
        "isr": bool(gen.get("isr", True)),
        "pt_min": float(gen.get("pt_min", 800.0)),
        "pt_max": float(gen.get("pt_max", 1200.0)),
        "eta_max": float(gen.get("eta_max", 2.5)),
        "pthat_min": gen.get("pthat_min"),
        "n_constituents": int(gen.get("n_constituents", 30)),
        "chunk_size": int(gen.get("chunk_size") or DEFAULT_CHUNK_SIZE),
    }
    return args


def _matches(path: Path, args: Mapping) -> bool:
    from ..data.pythia import read_metadata

    try:
        meta = read_metadata(path)
    except Exception:  # noqa: BLE001 - unreadable file: regenerate
        return False
    have = meta.get("args") or {}
    for k in _GEN_MATCH:
        a, b = have.get(k), args.get(k)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
            if float(a) != float(b):
                return False
        elif a != b:
            return False
    return True


def generate_samples(
    cfg: Mapping, data_dir: Path, progress: bool = True, log: Callable = _log
) -> dict[str, Path]:
    """Generate (or reuse) every sample; returns ``{sample name: path}``."""
    from ..data.pythia import generate_jets

    data_dir.mkdir(parents=True, exist_ok=True)
    gen = cfg["generate"]
    paths = {}
    for name, spec in gen["samples"].items():
        path = data_dir / f"{name}.root"
        args = _gen_args(cfg, spec)
        if path.is_file() and _matches(path, args):
            log(f"data: {path} exists with the same settings, reused")
        else:
            log(f"data: generating {args['n_jets']} {args['process']} jets -> {path}")
            t0 = time.perf_counter()
            generate_jets(out=path, workers=gen.get("workers"), progress=progress, **args)
            log(f"data: {path.name} done in {time.perf_counter() - t0:.0f} s")
        paths[name] = path
    return paths


def _override(key: str, value: Any) -> str:
    return f"{key}={json.dumps(value)}"


def run_config(
    cfg: Mapping,
    model_path: str,
    seed: int,
    train_path: Path,
    run_dir: Path,
    task: str,
    background: tuple[str, Path],
    signals: Sequence[tuple[str, Path]],
) -> dict:
    """The resolved run config of one model/seed/task (pipeline overrides applied, validated)."""
    from ..train import load_config

    overrides = [
        _override("data.train", str(train_path)),
        _override("trainer.seed", int(seed)),
        _override("trainer.out", str(run_dir)),
        _override("evaluate.task", task),
        _override("evaluate.background", f"{_sample_labels(cfg)[background[0]]}={background[1]}"),
        _override("evaluate.signals", [f"{_sample_labels(cfg)[n]}={p}" for n, p in signals]),
    ]
    for k, v in (cfg.get("data") or {}).items():
        overrides.append(_override(f"data.{k}", v))
    for k, v in (cfg.get("trainer") or {}).items():
        overrides.append(_override(f"trainer.{k}", v))
    if cfg.get("device") and "device" not in (cfg.get("trainer") or {}):
        overrides.append(_override("trainer.device", cfg["device"]))
    stem = Path(model_path).stem
    name = stem if task == "standard" else f"{stem}_{task}"
    overrides.append(_override("name", name))
    return load_config(model_path, overrides)


def _sample_labels(cfg: Mapping) -> dict[str, str]:
    """Name each sample by its process (``qcd_test`` -> ``qcd``) unless two samples share a process."""
    samples = cfg["generate"]["samples"]
    used = set()
    for section in (cfg.get("evaluate") or {}, cfg.get("inverse") or {}):
        if section:
            used |= {section["background"], *section["signals"]}
    procs = [samples[k]["process"] for k in used]
    return {
        k: (v["process"] if k in used and procs.count(v["process"]) == 1 else k) for k, v in samples.items()
    }


def _same_config(run_dir: Path, config: Mapping) -> bool:
    p = run_dir / "config.yaml"
    if not (
        p.is_file() and (run_dir / "run.json").is_file() and (run_dir / "checkpoints" / "best.pt").is_file()
    ):
        return False
    try:
        saved = yaml.safe_load(p.read_text())
    except yaml.YAMLError:
        return False
    return saved == json.loads(json.dumps(dict(config)))


def train_one(config: Mapping, budget: float | None, log: Callable = _log) -> Path:
    """Train one run (skipped when the run directory already holds this exact, finished run)."""
    from ..train import train
    from ..train.trainer import TimeBudget

    run_dir = Path(config["trainer"]["out"])
    if _same_config(run_dir, config):
        log(f"train: {run_dir} already trained with this config, reused")
        return run_dir
    resume = (run_dir / "config.yaml").is_file() and _config_matches_for_resume(run_dir, config)
    log(
        f"train: {config['name']} (model {config['model']['name']}, seed {config['trainer']['seed']})"
        f" -> {run_dir}" + (f", budget {budget:.0f} s" if budget else "")
    )
    t0 = time.perf_counter()
    train(dict(config), run_dir, resume=resume, callbacks=[TimeBudget(budget)])
    log(f"train: {config['name']} done in {time.perf_counter() - t0:.0f} s")
    return run_dir


def _config_matches_for_resume(run_dir: Path, config: Mapping) -> bool:
    try:
        saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    except yaml.YAMLError:
        return False
    a, b = dict(saved or {}), json.loads(json.dumps(dict(config)))
    for c in (a, b):
        c.get("trainer", {}).pop("epochs", None)
    return a == b


def run_pipeline(
    cfg: Mapping,
    out: str | os.PathLike | None = None,
    work: str | os.PathLike | None = None,
    seeds: Sequence[int] | None = None,
    models: Sequence[str] | None = None,
    progress: bool = True,
    log: Callable = _log,
) -> dict:
    """Run the whole job described by a validated pipeline config; returns the comparison report.

    ``out``, ``work``, ``seeds`` and ``models`` (config stems, e.g. ``["lgae_mix", "vae"]``) override the
    config.
    """
    from .evaluate import evaluate_run
    from .report import compare

    t_start = time.perf_counter()
    cfg = copy.deepcopy(dict(cfg))
    work = Path(work or cfg["work"])
    out = Path(out or cfg["out"])
    seeds = list(seeds) if seeds is not None else list(cfg["seeds"])
    model_paths = list(cfg["models"])
    if models:
        stems = {Path(m).stem: m for m in model_paths}
        unknown = [m for m in models if m not in stems]
        if unknown:
            raise ConfigError(f"--models: unknown {unknown}; choose from {', '.join(stems)}")
        model_paths = [stems[m] for m in models]
    budget = cfg.get("time_budget_s")
    ev = cfg["evaluate"]
    inv = cfg.get("inverse") or {}

    log(
        f"work dir {work}, report -> {out}; {len(model_paths)} model(s) x {len(seeds)} seed(s)"
        + (f" + inverse task for {', '.join(inv['models'])}" if inv else "")
    )
    paths = generate_samples(cfg, work / "data", progress=progress, log=log)

    jobs = []  # (config, task)
    for mp in model_paths:
        for seed in seeds:
            stem = Path(mp).stem
            jobs.append(
                (
                    run_config(
                        cfg,
                        mp,
                        seed,
                        paths[ev["train"]],
                        work / "runs" / stem / f"seed{seed}",
                        "standard",
                        (ev["background"], paths[ev["background"]]),
                        [(s, paths[s]) for s in ev["signals"]],
                    ),
                    ev,
                )
            )
    for mp in model_paths:
        if Path(mp).stem not in (inv.get("models") or []):
            continue
        for seed in seeds:
            stem = Path(mp).stem
            jobs.append(
                (
                    run_config(
                        cfg,
                        mp,
                        seed,
                        paths[inv["train"]],
                        work / "runs" / f"{stem}_inverse" / f"seed{seed}",
                        "inverse",
                        (inv["background"], paths[inv["background"]]),
                        [(s, paths[s]) for s in inv["signals"]],
                    ),
                    {**ev, **inv},
                )
            )
    # every config is validated (load_config) above, before the first training starts
    label = _sample_labels(cfg)
    run_dirs = []
    timings = {}
    for i, (config, evc) in enumerate(jobs, 1):
        log(f"[{i}/{len(jobs)}] {config['name']} seed {config['trainer']['seed']}")
        t0 = time.perf_counter()
        run_dir = train_one(config, budget, log=log)
        t1 = time.perf_counter()
        evaluate_run(
            run_dir,
            background=f"{label[evc['background']]}={paths[evc['background']]}",
            signals=[f"{label[s]}={paths[s]}" for s in evc["signals"]],
            max_jets=evc.get("max_jets"),
            batch_size=evc.get("batch_size"),
            n_boot=evc.get("n_boot"),
            recon_jets=evc.get("recon_jets"),
            workers=evc.get("workers"),
            device=cfg.get("device", "auto"),
            progress=progress,
        )
        t2 = time.perf_counter()
        timings[str(run_dir)] = {"train_s": t1 - t0, "evaluate_s": t2 - t1}
        m = json.loads((Path(run_dir) / "metrics.json").read_text())
        c = m["combined"]
        eps = c["eps_s"].get("0.01", {})
        log(
            f"evaluate: {config['name']}: AUC {c['auc']:.3f}, "
            f"eps_s(1e-2) {eps.get('eps_s', float('nan')):.3f}"
            f" ({t2 - t1:.0f} s)"
        )
        run_dirs.append(run_dir)
    report = compare(run_dirs, out)
    total = time.perf_counter() - t_start
    log(f"done in {total / 60:.1f} min: {out / 'report.md'}")
    report["pipeline"] = {"total_s": total, "timings": timings, "work": str(work)}
    return report
