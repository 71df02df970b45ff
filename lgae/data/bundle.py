"""From the ``data:`` section of a run config to training and validation tensors: :func:`build_datasets`.

The ``data:`` section (defaults in :data:`DATA_DEFAULTS`)::

    data:
      train: data/qcd.root  # ROOT file, glob, directory or list; or a generator spec {out: FILE, ...}
      val: null             # optional validation files; else `val_fraction` of `train` is split off
      n_particles: 30       # leading particles kept per jet (zero-padded)
      val_fraction: 0.15    # seeded random split when `val` is not given
      max_jets: null        # keep the first max_jets jets of each sample, in file order (after the selection)
      massless: false       # set E = |p| for every particle (as LGAE did with JetNet)
      reader: null          # data config (YAML path or mapping): branches, tree, selection, labels, ...
      generate: null        # {process: qcd, n_jets: 100000, seed: 1, ...}: when `train` does not exist, run
                            #   lgae.data.pythia.generate_jets(out=train, **generate) first
      toy: null             # {name: circle, n: 10000, ...}: a toy dataset instead (lgae.data.toys.make_toy)
      cache: true           # keep a .npz next to each ROOT file so later runs skip the ROOT read
      cache_dir: null       # cache location when the ROOT file's directory is read-only (~/.cache/lgae)

:func:`build_datasets` returns a :class:`DataBundle` whose ``train`` and ``val`` are tuples of tensors ready
for a ``TensorDataset``: ``(p4 float64 (N, n, 4), mask bool (N, n))`` for jets (4-momenta in GeV, raw: models
do their own scaling), ``(x float64 (N, D),)`` for toys; ``info["input_kind"]`` says which ("jets" or
"features").
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from .._validate import ConfigError, check_keys
from .format import load_reader_config
from .reader import DataError, Jets, load_jets

DATA_DEFAULTS: dict = {
    "train": None,
    "val": None,
    "n_particles": 30,
    "val_fraction": 0.15,
    "max_jets": None,
    "massless": False,
    "reader": None,
    "generate": None,
    "toy": None,
    "cache": True,
    "cache_dir": None,
}

#: number of toy samples when ``toy`` gives none
TOY_DEFAULT_N = 10_000


@dataclass
class DataBundle:
    """What :func:`build_datasets` returns.

    Attributes
    ----------
    train, val : tuple of Tensor
        ``(p4, mask)`` for jets (float64, bool) or ``(x,)`` for toy features (float64).
    info : dict
        ``input_kind`` ("jets" | "features"), ``n_train``, ``n_val``, ``n_features`` (4 for jets, D for toys),
        ``n_particles`` (jets), ``sources`` ({"train": [...], "val": [...]}, files read), ``val_from``
        ("split" | "files"), ``massless``, ``units`` ("GeV"), ``label_names``, ``seed``; for toys ``toy`` (the
        name) and ``toy_meta`` (what ``make_toy`` returns besides the array: feature names, ...).
    train_jets, val_jets : Jets or None
        The jets behind ``train``/``val`` (labels, jet-level arrays), None for toys.
    """

    train: tuple
    val: tuple
    info: dict = field(default_factory=dict)
    train_jets: Jets | None = None
    val_jets: Jets | None = None

    @property
    def input_kind(self) -> str:
        return self.info["input_kind"]


def validate_data_config(data_cfg: Mapping | None, *, require_source: bool = True) -> dict:
    """Check the ``data:`` section and return it complete with :data:`DATA_DEFAULTS`.

    Raises :class:`~lgae._validate.ConfigError` for an unknown key (naming the closest valid one), a wrong
    type, a missing ``train`` (unless ``toy`` is given, or ``require_source=False``) or a bad ``reader``.
    """
    if data_cfg is None:
        data_cfg = {}
    if not isinstance(data_cfg, Mapping):
        raise ConfigError(f"section 'data' must be a mapping, got {type(data_cfg).__name__}")
    check_keys(data_cfg, DATA_DEFAULTS, "data")
    cfg = {**DATA_DEFAULTS, **data_cfg}

    if cfg["toy"] is not None and cfg["train"] is not None:
        raise ConfigError("section 'data': give either 'train' (jets) or 'toy', not both")
    if cfg["toy"] is None and cfg["train"] is None and require_source:
        raise ConfigError("section 'data': missing required key 'train' (or 'toy' for a toy dataset)")
    for key in ("train", "val"):
        if cfg[key] is not None:
            _check_source(cfg[key], key)
    n = cfg["n_particles"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"data.n_particles must be a positive integer, got {n!r}")
    frac = cfg["val_fraction"]
    if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 <= frac < 1:
        raise ConfigError(f"data.val_fraction must be a number in [0, 1), got {frac!r}")
    mj = cfg["max_jets"]
    if mj is not None and (isinstance(mj, bool) or not isinstance(mj, int) or mj < 1):
        raise ConfigError(f"data.max_jets must be a positive integer or null, got {mj!r}")
    for key in ("massless", "cache"):
        if not isinstance(cfg[key], bool):
            raise ConfigError(f"data.{key} must be true or false, got {cfg[key]!r}")
    if cfg["cache_dir"] is not None and not isinstance(cfg["cache_dir"], (str, os.PathLike)):
        raise ConfigError(f"data.cache_dir must be a path, got {cfg['cache_dir']!r}")
    if cfg["reader"] is not None:
        try:
            load_reader_config(cfg["reader"], where="data.reader")
        except FileNotFoundError as err:
            raise ConfigError(f"data.reader: {err}") from None
    if cfg["generate"] is not None:
        if not isinstance(cfg["generate"], Mapping):
            raise ConfigError(
                f"data.generate must be a mapping of generator options, got {cfg['generate']!r}"
            )
        if "out" in cfg["generate"]:
            raise ConfigError("data.generate must not set 'out': the generator writes to data.train")
        if not isinstance(cfg["train"], (str, os.PathLike)) or any(c in str(cfg["train"]) for c in "*?["):
            raise ConfigError(f"data.generate needs data.train to be one file path, got {cfg['train']!r}")
    if cfg["toy"] is not None:
        cfg["toy"] = _toy_spec(cfg["toy"])
    return cfg


def _check_source(value, key: str) -> None:
    if isinstance(value, (str, os.PathLike)):
        return
    if isinstance(value, Mapping):
        if "out" not in value:
            raise ConfigError(
                f"data.{key}: a generated-sample spec needs 'out' (the ROOT file to read or write)"
            )
        return
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (str, os.PathLike)) for v in value):
        return
    raise ConfigError(
        f"data.{key} must be a path, a glob, a list of those, or a generator spec; got {value!r}"
    )


def _toy_spec(toy) -> dict:
    if isinstance(toy, str):
        toy = {"name": toy}
    if not isinstance(toy, Mapping) or not isinstance(toy.get("name"), str):
        raise ConfigError(f"data.toy must be a toy name or a mapping with 'name', got {toy!r}")
    toy = dict(toy)
    toy.setdefault("n", TOY_DEFAULT_N)
    if isinstance(toy["n"], bool) or not isinstance(toy["n"], int) or toy["n"] < 2:
        raise ConfigError(f"data.toy.n must be an integer >= 2, got {toy['n']!r}")
    return toy


def prepare_jets(paths_or_spec, data_cfg: Mapping | None = None, *, max_jets: int | None = None) -> Jets:
    """Load jets with the preprocessing of training: reader config, ``n_particles``, ``massless``, cache.

    Parameters
    ----------
    paths_or_spec : path, glob, list, or mapping
        Files to read, or a generated-sample spec ``{"out": FILE, **generator options}``: ``FILE`` is
        generated with :func:`lgae.data.pythia.generate_jets` when it does not exist yet, then read.
    data_cfg : mapping, optional
        The ``data:`` section (:data:`DATA_DEFAULTS`); its ``train``, ``val`` and ``max_jets`` (a training
        sample size, not a preprocessing step) are not used here.
    max_jets : int, optional
        Keep only the first ``max_jets`` jets, in file order.
    """
    cfg = validate_data_config(
        {**(data_cfg or {}), "train": None, "val": None, "toy": None, "generate": None}, require_source=False
    )
    if isinstance(paths_or_spec, Mapping):
        spec = dict(paths_or_spec)
        if "out" not in spec:
            raise ConfigError(f"a generated-sample spec needs 'out' (the ROOT file), got {spec!r}")
        paths_or_spec = spec["out"]
        if not os.path.exists(paths_or_spec):
            _generate(**spec)
    jets = load_jets(
        paths_or_spec,
        n_particles=cfg["n_particles"],
        config=cfg["reader"],
        max_jets=max_jets,
        cache=cfg["cache"],
        cache_dir=cfg["cache_dir"],
    )
    if cfg["massless"]:
        from .transforms import Massless

        p4, mask = jets.to_torch()
        jets = dataclasses.replace(jets, p4=Massless().forward(p4, mask).numpy())
    return jets


def _generate(**kwargs) -> None:
    from .pythia import generate_jets  # lazy: needs the optional pythia8mc / fastjet

    os.makedirs(os.path.dirname(os.path.abspath(kwargs["out"])), exist_ok=True)
    generate_jets(**kwargs)


def _split(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) indices from a seeded permutation; at least one jet on each side when possible."""
    n_val = int(round(val_fraction * n))
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _nonempty(jets: Jets) -> Jets:
    if len(jets) == 0:
        raise DataError(f"{', '.join(jets.source)}: no jets left (check the selection and entry range)")
    return jets


def build_datasets(data_cfg: Mapping, seed: int = 0) -> DataBundle:
    """Training and validation tensors for the ``data:`` section (see the module docstring).

    The validation split (when ``val`` is not given) is a permutation seeded with ``seed``, so the same config
    and seed always give the same jets on each side.
    """
    cfg = validate_data_config(data_cfg)
    if cfg["toy"] is not None:
        return _build_toy(cfg, seed)

    train_src = cfg["train"]
    if cfg["generate"] is not None and not os.path.exists(train_src):
        _generate(out=os.fspath(train_src), **cfg["generate"])
    jets = _nonempty(prepare_jets(train_src, cfg, max_jets=cfg["max_jets"]))
    if cfg["val"] is not None:
        train_jets, val_jets = jets, _nonempty(prepare_jets(cfg["val"], cfg, max_jets=cfg["max_jets"]))
        val_from = "files"
    else:
        tr, va = _split(len(jets), cfg["val_fraction"], seed)
        train_jets, val_jets = jets.subset(tr), jets.subset(va)
        val_from = "split"
    info = {
        "input_kind": "jets",
        "n_train": len(train_jets),
        "n_val": len(val_jets),
        "n_features": 4,
        "n_particles": cfg["n_particles"],
        "sources": {"train": list(train_jets.source), "val": list(val_jets.source)},
        "val_from": val_from,
        "massless": cfg["massless"],
        "units": "GeV",
        "label_names": train_jets.label_names,
        "seed": seed,
    }
    return DataBundle(
        train=train_jets.to_torch(),
        val=val_jets.to_torch(),
        info=info,
        train_jets=train_jets,
        val_jets=val_jets,
    )


def _build_toy(cfg: dict, seed: int) -> DataBundle:
    from .toys import make_toy  # lazy: written alongside, imports only what toys need

    spec = dict(cfg["toy"])
    name, n = spec.pop("name"), spec.pop("n")
    toy_seed = spec.pop("seed", seed)
    x, meta = make_toy(name, n, toy_seed, **spec), None
    if isinstance(x, tuple):  # (x, metadata)
        x, meta = x[0], (x[1] if len(x) > 1 else None)
    x = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    if x.ndim == 1:
        x = x[:, None]
    tr, va = _split(len(x), cfg["val_fraction"], seed)
    info = {
        "input_kind": "features",
        "n_train": len(tr),
        "n_val": len(va),
        "n_features": int(x.shape[1]),
        "toy": name,
        "toy_meta": meta,
        "sources": {"train": [f"toy:{name}"], "val": [f"toy:{name}"]},
        "val_from": "split",
        "seed": seed,
    }
    return DataBundle(train=(x[tr],), val=(x[va],), info=info)
