"""Runs: config -> data -> model -> :class:`~lgae.train.trainer.Trainer`, several seeds, rebuilding a model.

``train(config)`` validates the whole config before anything runs, builds the datasets with
``lgae.data.build_datasets(config["data"], seed)``, seeds torch/NumPy/Python, builds the model with
``lgae.models.build_model(**config["model"])`` and trains it into the run directory (``trainer.out``, by
default ``runs/<name>``). Model keys the data determine are filled in when the model accepts them and the
config leaves them out, null or ``auto`` (see :data:`~lgae.train.config.AUTO_MODEL_KEYS`): ``n_particles``
from the jets' particle slots, and ``n_features`` (or ``input_dim`` / ``in_dim`` / ``n_inputs``) from flat
feature data such as the toy sets. The saved ``config.yaml`` holds the filled-in values, so :func:`load_run`
rebuilds the model without the data.

Several seeds (``train_seeds`` / ``lgae train --seeds 0,1,2``) train one run per seed into ``<out>/seed<k>/``;
each seed sets ``trainer.seed`` and so the model initialisation, the train/validation split and the data
order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from .._validate import ConfigError
from .checkpoint import load_checkpoint, seed_everything
from .config import AUTO_MODEL_KEYS, resolve_config
from .trainer import Trainer, as_model_inputs

__all__ = ["train", "train_seeds", "load_run", "parse_seeds"]


def _split_bundle(bundle: Any) -> tuple[Any, Any, dict]:
    """``(train, val, info)`` from what ``build_datasets`` returns (attributes, a mapping or a tuple)."""
    if isinstance(bundle, Mapping):
        return bundle["train"], bundle["val"], dict(bundle.get("info") or {})
    if isinstance(bundle, tuple) and len(bundle) in (2, 3):
        return bundle[0], bundle[1], dict(bundle[2] if len(bundle) == 3 else {})
    return bundle.train, bundle.val, dict(getattr(bundle, "info", None) or {})


def _fill_model_from_data(model_cfg: dict, kind: str, tensors: tuple) -> None:
    from ..models.registry import model_config_keys

    accepted = model_config_keys(model_cfg["name"])
    size = int(tensors[0].shape[1]) if tensors[0].dim() >= 2 else None
    for key in AUTO_MODEL_KEYS.get(kind, ()):
        value = kind if key == "input_kind" else size
        if key in accepted and model_cfg.get(key) in (None, "auto") and value is not None:
            model_cfg[key] = value


def train(
    config: Mapping | str | Path,
    run_dir: str | Path | None = None,
    resume: bool = True,
    *,
    overrides: Iterable[str] = (),
    callbacks: Iterable[Callable] = (),
) -> Path:
    """Train one model from a run config; returns the run directory.

    Parameters
    ----------
    config : mapping or path
        A config dict (as in a YAML file, without ``defaults``) or a YAML path; validated before anything
        runs.
    run_dir : path, optional
        Overrides ``trainer.out``.
    resume : bool
        Continue an interrupted run found in ``run_dir`` (same config); False starts afresh.
    overrides : iterable of str
        Dotted ``key.sub=value`` overrides.
    callbacks : iterable of ``fn(epoch, trainer)``
        Passed to :class:`Trainer`.
    """
    cfg = resolve_config(config, overrides)
    seed = cfg["trainer"]["seed"]
    run_dir = Path(run_dir if run_dir is not None else cfg["trainer"]["out"])

    from ..data import build_datasets
    from ..models import build_model
    from . import distributed as ddp_utils

    # inside torchrun: join the process group (a no-op in a single process)
    ctx = ddp_utils.init_from_env(cfg["trainer"]["device"])
    if cfg["data"].get("stream"):
        from ..data.stream import build_stream_datasets

        data_cfg = cfg["data"]
        if data_cfg.get("generate") is not None and not Path(data_cfg["train"]).exists():
            if ctx.is_main:
                from ..data.bundle import _generate

                _generate(out=str(data_cfg["train"]), **data_cfg["generate"])
            ddp_utils.barrier()
        train_stream, val_data, info = build_stream_datasets(
            data_cfg, seed, cfg["trainer"]["batch_size"], ctx.rank, ctx.world
        )
        val_t = as_model_inputs(val_data)
        kind = "jets"
        _fill_model_from_data(cfg["model"], kind, val_t)
        train_t = train_stream
    else:
        data_cfg = {k: v for k, v in cfg["data"].items() if k != "stream"}
        if "stream" in _data_defaults():
            data_cfg = cfg["data"]
        train_data, val_data, info = _split_bundle(build_datasets(data_cfg, seed))
        train_t, val_t = as_model_inputs(train_data), as_model_inputs(val_data)
        kind = info.get("input_kind") or (
            "jets" if len(train_t) == 2 or train_t[0].dim() == 3 else "features"
        )
        _fill_model_from_data(cfg["model"], kind, train_t)

    seed_everything(seed)
    model = build_model(**cfg["model"])
    wanted = getattr(model, "input_kind", "jets")
    if wanted != kind:
        raise ConfigError(
            f"model {cfg['model']['name']!r} consumes {wanted} but the data section gives {kind} "
            "(toy feature sets suit the 'vae'; jets suit every model)"
        )
    Trainer(
        model, train_t, val_t, cfg["trainer"], run_dir, callbacks=callbacks, run_config=cfg, resume=resume
    ).fit()
    return run_dir


def _data_defaults() -> dict:
    from ..data import DATA_DEFAULTS

    return DATA_DEFAULTS


def parse_seeds(text: str | Iterable[int]) -> list[int]:
    """``"0,1,2"`` or ``"0-4"`` (inclusive range) or an iterable of ints -> list of distinct seeds."""
    if not isinstance(text, str):
        seeds = [int(s) for s in text]
    else:
        seeds = []
        for part in text.replace(" ", "").split(","):
            if not part:
                continue
            try:
                if "-" in part:
                    lo, hi = part.split("-", 1)
                    seeds.extend(range(int(lo), int(hi) + 1))
                else:
                    seeds.append(int(part))
            except ValueError:
                raise ConfigError(f"--seeds: cannot read {part!r} (use e.g. 0,1,2 or 0-4)") from None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds: expected distinct non-negative integers, got {text!r}")
    return seeds


def train_seeds(
    config: Mapping | str | Path,
    seeds: Iterable[int] | str,
    run_dir: str | Path | None = None,
    resume: bool = True,
    *,
    overrides: Iterable[str] = (),
    callbacks: Iterable[Callable] = (),
) -> list[Path]:
    """Train one run per seed into ``<run_dir or trainer.out>/seed<k>/``; returns the run directories.

    Every seed's config is validated before the first run starts.
    """
    seeds = parse_seeds(seeds)
    overrides = list(overrides)
    configs = [resolve_config(config, [*overrides, f"trainer.seed={s}"]) for s in seeds]
    base = Path(run_dir if run_dir is not None else configs[0]["trainer"]["out"])
    out = []
    for s, cfg in zip(seeds, configs):
        cfg["trainer"]["out"] = str(base / f"seed{s}")
        out.append(train(cfg, cfg["trainer"]["out"], resume=resume, callbacks=callbacks))
    return out


def load_run(run_dir: str | Path, which: str = "best", device: Any = "cpu"):
    """Rebuild a trained model from a run directory.

    Parameters
    ----------
    run_dir : path
        A directory written by :func:`train` (``config.yaml`` and ``checkpoints/``).
    which : {"best", "last"} or a path to a checkpoint file
    device : str or torch.device

    Returns
    -------
    (model, config)
        The model in eval mode on ``device`` in the run's dtype, and the resolved config (a dict).
    """
    import torch

    from ..models import build_model

    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no config.yaml)")
    config = yaml.safe_load(cfg_path.read_text())
    if which in ("best", "last"):
        ckpt = run_dir / "checkpoints" / f"{which}.pt"
        if not ckpt.is_file():
            raise FileNotFoundError(f"{ckpt} not found: has {run_dir} finished at least one epoch?")
    else:
        ckpt = Path(which)
    state = load_checkpoint(ckpt, map_location="cpu")
    model = build_model(**config["model"])
    dtype = (config.get("trainer") or {}).get("dtype", "auto")
    if dtype != "auto":
        model.to(dtype=getattr(torch, dtype))
    model.load_state_dict(state["model"])
    return model.to(device).eval(), config
