"""The shared trainer: configs with defaults and overrides, crash-safe resumable training, run directories.

>>> from lgae.train import load_config, train, load_run
>>> cfg = load_config("configs/lgae.yaml", ["trainer.epochs=2"])     # doctest: +SKIP
>>> run_dir = train(cfg)                                             # doctest: +SKIP
>>> model, cfg = load_run(run_dir)                                   # doctest: +SKIP
"""

from .._validate import ConfigError
from .checkpoint import load_checkpoint, save_checkpoint, seed_everything
from .config import TrainerConfig, apply_overrides, load_config, resolve_config, validate_config
from .run import load_run, parse_seeds, train, train_seeds
from .trainer import LRSchedule, Trainer, TrainingError, as_model_inputs

__all__ = [
    "ConfigError",
    "LRSchedule",
    "Trainer",
    "TrainerConfig",
    "TrainingError",
    "apply_overrides",
    "as_model_inputs",
    "load_checkpoint",
    "load_config",
    "load_run",
    "parse_seeds",
    "resolve_config",
    "save_checkpoint",
    "seed_everything",
    "train",
    "train_seeds",
    "validate_config",
]
