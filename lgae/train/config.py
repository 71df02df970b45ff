"""Run configuration: YAML files with a ``defaults`` list, dotted overrides, validation before any work.

A config has the top-level sections ``data``, ``model``, ``trainer``, optionally ``evaluate`` (a free dict the
evaluator validates) and ``name`` (a string naming the run). A file may start with ``defaults: [base.yaml]``:
those files (paths relative to the file naming them, applied in order, recursively) are deep-merged
*underneath* it, so one change of the shared ``data`` section reaches every model's config.

Overrides are ``key.sub=value`` strings; the value is parsed as YAML (``trainer.epochs=2`` is an int,
``model.tau=[1,2]`` a list, ``data.train=qcd.root`` a string). Files and overrides are read with a safe loader
that also takes ``1e-3`` as a float (plain YAML 1.1 reads it as a string). Every mistake raises
:class:`~lgae._validate.ConfigError` naming the section and, for a misspelt key, the closest valid one.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .._validate import ConfigError, check_keys, closest

__all__ = [
    "ConfigError",
    "SECTIONS",
    "TrainerConfig",
    "apply_overrides",
    "deep_merge",
    "load_config",
    "parse_override",
    "resolve_config",
    "validate_config",
]

#: allowed top-level keys of a run config
SECTIONS = ("name", "data", "model", "trainer", "evaluate")

_OPTIMIZERS = ("adam", "adamw", "sgd")

#: model keys that :func:`lgae.train.train` fills from the data when the model accepts them and the config
#: leaves them out, null or ``auto``: the number of particle slots (jets), the feature count (flat
#: features), and ``input_kind`` ("jets" or "features", for models such as the VAE that take either)
AUTO_MODEL_KEYS = {
    "jets": ("n_particles", "input_kind"),
    "features": ("n_features", "input_dim", "in_dim", "n_inputs", "input_kind"),
}
_AUTO_KEYS = {k for keys in AUTO_MODEL_KEYS.values() for k in keys}

#: each LR schedule and the parameters (``trainer.lr_schedule_params``) it accepts, with their defaults
LR_SCHEDULES: dict[str, dict[str, Any]] = {
    "none": {},
    "cosine": {"eta_min": 0.0},  # cosine from lr to eta_min over the epochs after warm-up
    "step": {"step_size": 30, "gamma": 0.1},  # lr *= gamma every step_size epochs after warm-up
    "plateau": {"factor": 0.5, "patience": 5, "threshold": 1e-4, "min_lr": 0.0},  # on validation loss
}


@dataclass
class TrainerConfig:
    """The ``trainer:`` section. Every key is optional; these are the defaults written to the resolved config.

    Attributes
    ----------
    epochs : int
        Maximum number of epochs.
    batch_size : int
        Training batch size (jets per optimiser step).
    lr : float
        Base learning rate.
    optimizer : {"adam", "adamw", "sgd"}
    weight_decay : float
    betas : list of two floats
        Adam(W) betas; for SGD ``betas[0]`` is the momentum.
    lr_schedule : {"none", "cosine", "step", "plateau"}
        Per-epoch schedule; ``lr_schedule_params`` holds its parameters (see :data:`LR_SCHEDULES`).
    lr_schedule_params : dict
    warmup_epochs : int
        Linear warm-up of the learning rate over the first epochs (epoch ``e < warmup_epochs`` uses
        ``lr * (e + 1) / (warmup_epochs + 1)``); the schedule starts after it.
    patience : int or None
        Early stopping: stop after this many epochs without a validation-loss improvement larger than
        ``min_delta`` (None or 0 disables it).
    min_delta : float
    seed : int
        Seeds model initialisation, the data split, the per-epoch data order, dropout and sampling.
    out : str or None
        Run directory; ``<name>`` is replaced by the run name; None means ``runs/<name>``.
    device : {"auto", "cpu", "cuda"} or a torch device string such as "cuda:1"
    dtype : {"auto", "float32", "float64"}
        Parameter and input dtype; ``auto`` keeps the dtype the model is built with (the LGAE builds itself in
        float64, the baselines in torch's default float32) and casts the inputs to it.
    grad_clip : float or None
        Clip the global gradient norm to this value.
    num_threads : int or None
        ``torch.set_num_threads`` for the run.
    progress : bool
        tqdm progress bars (only shown on a terminal).
    checkpoint_every : int
        Write ``checkpoints/last.pt`` every this many epochs (and always at the end).
    max_steps_per_epoch : int or None
        Cap on optimiser steps per epoch (quick runs).
    time_budget_s : float or None
        Wall-clock budget of the training epochs: stop (cleanly, with checkpoints and history) after the epoch
        that would otherwise take the training past it. None: no budget.
    eval_batch_size : int or None
        Batch size for the validation pass; None means ``max(batch_size, 1024)``.
    deterministic : bool
        ``torch.use_deterministic_algorithms`` (warn-only) and deterministic cuDNN during the run.
    """

    epochs: int = 100
    batch_size: int = 256
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    lr_schedule: str = "none"
    lr_schedule_params: dict = field(default_factory=dict)
    warmup_epochs: int = 0
    patience: int | None = 20
    min_delta: float = 0.0
    seed: int = 0
    out: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    grad_clip: float | None = None
    num_threads: int | None = None
    progress: bool = True
    checkpoint_every: int = 1
    max_steps_per_epoch: int | None = None
    time_budget_s: float | None = None
    eval_batch_size: int | None = None
    deterministic: bool = True

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, d: Mapping | None) -> TrainerConfig:
        """Validate a ``trainer:`` mapping (unknown keys, types, ranges) and fill in the defaults."""
        d = dict(d or {})
        check_keys(d, cls.keys(), where="trainer")
        cfg = cls(**d)
        cfg._check()
        return cfg

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    # -- validation
    def _check(self) -> None:
        def bad(key, msg):
            raise ConfigError(f"trainer.{key}: {msg} (got {getattr(self, key)!r})")

        def integer(key, minimum, optional=False):
            v = getattr(self, key)
            if v is None and optional:
                return
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                bad(key, f"expected an integer >= {minimum}" + (" or null" if optional else ""))

        def number(key, minimum=None, optional=False, positive=False):
            v = getattr(self, key)
            if v is None and optional:
                return
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                bad(key, "expected a finite number" + (" or null" if optional else ""))
            if positive and v <= 0:
                bad(key, "expected a number > 0")
            if minimum is not None and v < minimum:
                bad(key, f"expected a number >= {minimum}")
            setattr(self, key, float(v))

        def choice(key, options):
            v = getattr(self, key)
            if v not in options:
                hint = closest(str(v), options)
                bad(
                    key,
                    f"expected one of {', '.join(options)}" + (f"; did you mean {hint!r}?" if hint else ""),
                )

        def boolean(key):
            if not isinstance(getattr(self, key), bool):
                bad(key, "expected true or false")

        integer("epochs", 0)
        integer("batch_size", 1)
        number("lr", positive=True)
        choice("optimizer", _OPTIMIZERS)
        number("weight_decay", minimum=0)
        betas = self.betas
        if isinstance(betas, tuple):
            betas = list(betas)
        if (
            not isinstance(betas, list)
            or len(betas) != 2
            or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)
        ):
            bad("betas", "expected a list of two numbers in [0, 1)")
        self.betas = [float(b) for b in betas]
        choice("lr_schedule", tuple(LR_SCHEDULES))
        if not isinstance(self.lr_schedule_params, Mapping):
            bad("lr_schedule_params", "expected a mapping")
        params = dict(self.lr_schedule_params)
        check_keys(
            params, LR_SCHEDULES[self.lr_schedule], where=f"trainer.lr_schedule_params ({self.lr_schedule})"
        )
        self.lr_schedule_params = {**LR_SCHEDULES[self.lr_schedule], **params}
        integer("warmup_epochs", 0)
        integer("patience", 0, optional=True)
        number("min_delta", minimum=0)
        integer("seed", 0)
        if self.out is not None and not isinstance(self.out, str):
            bad("out", "expected a path string or null")
        if not isinstance(self.device, str) or not (
            self.device in ("auto", "cpu", "cuda", "mps") or self.device.startswith("cuda:")
        ):
            bad("device", "expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
        choice("dtype", ("auto", "float32", "float64"))
        number("grad_clip", optional=True, positive=True)
        integer("num_threads", 1, optional=True)
        boolean("progress")
        integer("checkpoint_every", 1)
        integer("max_steps_per_epoch", 1, optional=True)
        number("time_budget_s", optional=True, positive=True)
        integer("eval_batch_size", 1, optional=True)
        boolean("deterministic")


# ------------------------------------------------------------------------------------------------------------
# loading, merging, overrides
# ------------------------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-3`` / ``2E5`` as floats (YAML 1.1 wants ``1.0e-3``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _yaml_load(text: str):
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def deep_merge(base: Mapping, over: Mapping) -> dict:
    """Recursively merge ``over`` onto ``base`` (mappings key by key; anything else in ``over`` replaces)."""
    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _read_yaml(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """Read one config file and merge its ``defaults`` underneath it (recursively, cycles rejected)."""
    path = Path(path)
    if path.resolve() in chain:
        raise ConfigError(
            f"{path}: cyclic 'defaults' ({' -> '.join(str(p) for p in (*chain, path.resolve()))})"
        )
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        cfg = _yaml_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections, got {type(cfg).__name__}")
    defaults = cfg.pop("defaults", None) or []
    if isinstance(defaults, str):
        defaults = [defaults]
    if not isinstance(defaults, list) or not all(isinstance(d, str) for d in defaults):
        raise ConfigError(f"{path}: 'defaults' must be a list of config file paths")
    merged: dict = {}
    for d in defaults:
        merged = deep_merge(merged, _read_yaml(path.parent / d, (*chain, path.resolve())))
    return deep_merge(merged, cfg)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``"a.b.c=value"`` into ``(["a", "b", "c"], parsed value)`` (the value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key.sub=value")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if not key.strip() or any(not p for p in parts):
        raise ConfigError(f"override {text!r}: empty key")
    try:
        value = _yaml_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw  # not YAML: keep the literal string
    return parts, value


def apply_overrides(config: Mapping, overrides: Iterable[str]) -> dict:
    """Apply dotted ``key.sub=value`` overrides to a copy of ``config``.

    An unknown top-level section, or a key that neither exists nor is accepted by its section (trainer keys,
    the model's constructor keys), raises :class:`ConfigError` naming the closest valid key. New keys inside
    ``data`` and ``evaluate`` are left to those sections' own validation.
    """
    cfg = copy.deepcopy(dict(config))
    for text in overrides:
        parts, value = parse_override(text)
        if parts[0] not in SECTIONS:
            hint = closest(parts[0], SECTIONS)
            raise ConfigError(
                f"override {text!r}: unknown section {parts[0]!r}"
                + (f"; did you mean {hint!r}?" if hint else "")
            )
        node = cfg
        for depth, p in enumerate(parts[:-1]):
            if node.get(p) is None:
                node[p] = {}
            if not isinstance(node[p], dict):
                raise ConfigError(f"override {text!r}: {'.'.join(parts[: depth + 1])} is not a section")
            node = node[p]
        last = parts[-1]
        if last not in node and len(parts) == 2:
            valid = _section_keys(parts[0], cfg)
            if valid is not None and last not in valid:
                hint = closest(last, valid)
                raise ConfigError(
                    f"override {text!r}: unknown key {last!r} in section '{parts[0]}'"
                    + (f"; did you mean {hint!r}?" if hint else "")
                    + f" (valid keys: {', '.join(sorted(valid))})"
                )
        node[last] = value
    return cfg


def _section_keys(section: str, cfg: Mapping) -> list[str] | None:
    """Keys a section accepts, where the trainer knows them (None: left to the section's own validation)."""
    if section == "trainer":
        return TrainerConfig.keys()
    if section == "model":
        name = (cfg.get("model") or {}).get("name")
        if name is None:
            return None
        from ..models.registry import model_config_keys

        return ["name", *model_config_keys(name)]
    return None


# ------------------------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------------------------


def _validate_data(data: Any) -> dict:
    """The data layer owns its section (keys, defaults, the required ``train`` unless ``toy``).

    ``stream`` (streaming the training files, :mod:`lgae.data.stream`) is checked here as long as the data
    layer's ``DATA_DEFAULTS`` does not list it.
    """
    from ..data import DATA_DEFAULTS, validate_data_config  # lazy: `lgae train --help` stays light

    if not (isinstance(data, Mapping) and "stream" in data):
        return dict(validate_data_config(data))
    from ..data.stream import check_stream_config

    if "stream" in DATA_DEFAULTS:
        return check_stream_config(validate_data_config(data))
    rest = {k: v for k, v in data.items() if k != "stream"}
    return check_stream_config({**validate_data_config(rest), "stream": data["stream"]})


def _validate_model(model: Any) -> dict:
    if not isinstance(model, Mapping):
        raise ConfigError(f"section 'model' must be a mapping, got {type(model).__name__}")
    model = dict(model)
    if not model.get("name"):
        raise ConfigError("missing required key 'name' in section 'model' (the registry name, e.g. 'lgae')")
    from ..models.registry import model_class, model_config_keys

    name = model["name"]
    cls = model_class(name)  # ConfigError naming the closest registered name
    keys = model_config_keys(name)
    check_keys({k: v for k, v in model.items() if k != "name"}, keys, where=f"model ({name})")
    # write out the constructor's defaults: the saved config then rebuilds the same model if a default changes
    resolved = {"name": name}
    params = inspect.signature(cls.__init__).parameters
    for k in keys:
        if k in model:
            resolved[k] = model[k]
        elif k in _AUTO_KEYS:
            continue  # left for lgae.train.train to fill from the data
        elif params[k].default is not inspect.Parameter.empty:
            try:  # plain YAML values only (tuples become lists); anything else stays implicit
                resolved[k] = json.loads(json.dumps(params[k].default))
            except (TypeError, ValueError):
                pass
    empty = inspect.Parameter.empty
    missing = [k for k in keys if params[k].default is empty and k not in model and k not in _AUTO_KEYS]
    if missing:
        raise ConfigError(
            f"missing required key(s) {', '.join(map(repr, missing))} in section 'model ({name})'"
        )
    return resolved


def _fill_n_particles(model: dict, data: Mapping) -> None:
    """Jets are padded to ``data.n_particles`` slots: a model taking ``n_particles`` gets it if left open."""
    n = data.get("n_particles")
    if data.get("toy") or not isinstance(n, int) or model.get("n_particles") not in (None, "auto"):
        return
    from ..models.registry import model_config_keys

    if "n_particles" in model_config_keys(model["name"]):
        model["n_particles"] = n


def validate_config(config: Mapping) -> dict:
    """Validate a whole config and return the resolved copy (trainer and model defaults filled in).

    Raises :class:`ConfigError` before anything runs: unknown section, unknown key (naming the closest),
    missing ``model.name`` / ``data.train`` (unless ``data.toy``), a bad trainer value.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"a config must be a mapping of sections, got {type(config).__name__}")
    for key in config:
        if key not in SECTIONS:
            hint = closest(key, SECTIONS)
            raise ConfigError(
                f"unknown top-level section {key!r}"
                + (f"; did you mean {hint!r}?" if hint else "")
                + f" (valid: {', '.join(SECTIONS)})"
            )
    for section in ("data", "model"):
        if config.get(section) is None:
            raise ConfigError(f"missing section '{section}'")
    out: dict = {}
    name = config.get("name")
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"'name' must be a string, got {name!r}")
    out["data"] = _validate_data(config["data"])
    out["model"] = _validate_model(config["model"])
    _fill_n_particles(out["model"], out["data"])
    trainer = config.get("trainer") or {}
    if not isinstance(trainer, Mapping):
        raise ConfigError(f"section 'trainer' must be a mapping, got {type(trainer).__name__}")
    out["trainer"] = TrainerConfig.from_dict(trainer).to_dict()
    evaluate = config.get("evaluate")
    if evaluate is not None:
        if not isinstance(evaluate, Mapping):
            raise ConfigError(f"section 'evaluate' must be a mapping, got {type(evaluate).__name__}")
        out["evaluate"] = copy.deepcopy(dict(evaluate))
    out["name"] = name or out["model"]["name"]
    if out["trainer"]["out"] is None:
        out["trainer"]["out"] = "runs/<name>"
    out["trainer"]["out"] = out["trainer"]["out"].replace("<name>", out["name"])
    return {k: out[k] for k in SECTIONS if k in out}


def resolve_config(config: Mapping | str | Path, overrides: Iterable[str] = ()) -> dict:
    """A config file path or an already-loaded mapping, with overrides applied, validated and resolved."""
    if isinstance(config, (str, Path)):
        return load_config(config, overrides)
    return validate_config(apply_overrides(config, overrides))


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> dict:
    """Read a run config (with its ``defaults``), apply overrides, validate it and fill in the defaults.

    Parameters
    ----------
    path : str or Path
        The YAML file. When it sets no ``name``, the file's stem names the run (``configs/gnnae_pl.yaml`` ->
        ``runs/gnnae_pl``).
    overrides : iterable of str
        ``key.sub=value`` strings, applied in order after the defaults merge.

    Returns
    -------
    dict
        The resolved config, exactly what a run saves as ``config.yaml``.
    """
    path = Path(path)
    cfg = _read_yaml(path)
    cfg.setdefault("name", path.stem)
    return validate_config(apply_overrides(cfg, overrides))
