"""The data YAML: how a ROOT file's branches map onto jets (``config=`` of :func:`lgae.data.load_jets`).

Every key is optional; the defaults read weaver / JetClass files unchanged::

    tree: tree            # the TTree (or RNTuple) to read; default: the only one in the file
    branches:             # logical name -> branch name in the file (defaults shown)
      px: part_px
      py: part_py
      pz: part_pz
      energy: part_energy
      jet_pt: jet_pt      # jet-level branches are optional: a missing one is computed from ALL constituents
      jet_eta: jet_eta
      jet_phi: jet_phi
      jet_energy: jet_energy
      jet_mass: jet_mass
      jet_nparticles: jet_nparticles
    selection: "(jet_pt > 500) & (abs(jet_eta) < 2)"  # restricted expression (lgae.data.expr), a bool per jet
    new_variables:        # name -> restricted expression, evaluated in order before the selection; per-jet
      part_pt: hypot(part_px, part_py)  # results go to jets.jet[name], per-particle ones to jets.part[name]
    observers: [jet_sdmass]  # extra per-jet branches copied into jets.jet
    labels: auto          # auto | none | BRANCH | [ONE_HOT_BRANCH, ...] | {type: simple, value: [...]}
    entry_start: 0        # per-file entry range (before the selection)
    entry_stop: 100000
    on_nonfinite: fail    # fail | drop: what to do with jets whose momenta contain NaN or inf
    step_size: 100000     # entries per chunk read from the file (bounds the memory of one read)

``labels: auto`` uses an integer branch ``label`` when present, otherwise the one-hot branches of
:data:`ONE_HOT_LABELS` that exist, with the class index being the position in that tuple
(``label_QCD`` -> 0, ``label_Tbqq`` -> 1, ``label_Wqq`` -> 2, ``label_Zqq`` -> 3, then the other JetClass
classes); a jet with none of the present one-hot flags set gets -1. A list of one-hot branches uses the list
order instead. Names in expressions are the *file's* branch names (``jet_pt``, ``part_px``) or earlier
``new_variables``; a jet-level name of ``branches`` that the file lacks (e.g. ``jet_pt``) is available too,
computed from the constituents.

weaver's data-config keys that concern network inputs (``inputs``, ``preprocess``, ``weights``,
``test_time_selection``, ``monitor_variables``) are accepted and ignored with a warning, so a weaver YAML
reads unchanged; ``treename`` is an alias of ``tree``. Any other unknown key raises
:class:`lgae._validate.ConfigError` naming the closest valid key.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Mapping
from pathlib import Path

from .._validate import ConfigError, check_keys
from .expr import parse

#: logical branch name -> default branch name in the file (weaver / JetClass conventions)
BRANCH_DEFAULTS: dict[str, str] = {
    "px": "part_px",
    "py": "part_py",
    "pz": "part_pz",
    "energy": "part_energy",
    "jet_pt": "jet_pt",
    "jet_eta": "jet_eta",
    "jet_phi": "jet_phi",
    "jet_energy": "jet_energy",
    "jet_mass": "jet_mass",
    "jet_nparticles": "jet_nparticles",
}

#: particle-level logical names (required) and jet-level ones (computed from the constituents when absent)
PARTICLE_KEYS = ("px", "py", "pz", "energy")
JET_KEYS = ("jet_pt", "jet_eta", "jet_phi", "jet_energy", "jet_mass", "jet_nparticles")

#: integer label branch looked for by ``labels: auto``
LABEL_BRANCH = "label"
#: one-hot label branches looked for by ``labels: auto``; the class index is the position in this tuple
ONE_HOT_LABELS = (
    "label_QCD",
    "label_Tbqq",
    "label_Wqq",
    "label_Zqq",
    "label_Hbb",
    "label_Hcc",
    "label_Hgg",
    "label_H4q",
    "label_Hqql",
    "label_Tbl",
)

READER_DEFAULTS: dict = {
    "tree": None,
    "branches": {},
    "selection": None,
    "new_variables": {},
    "observers": [],
    "labels": "auto",
    "entry_start": None,
    "entry_stop": None,
    "on_nonfinite": "fail",
    "step_size": 100_000,
}

#: weaver keys accepted and ignored (they configure network inputs, which lgae models build themselves)
WEAVER_IGNORED = ("inputs", "preprocess", "weights", "test_time_selection", "monitor_variables")
_ALIASES = {"treename": "tree"}


def load_reader_config(config: str | os.PathLike | Mapping | None, where: str = "data config") -> dict:
    """Validate a data YAML (path) or dict and return it complete with defaults, in a canonical form.

    The result is JSON-serialisable and equal for equal meanings (it keys the cache), e.g. ``labels`` is
    always ``"auto"``, ``None``, a branch name or a list of one-hot branch names.

    Raises
    ------
    ConfigError
        Unknown key (naming the closest valid one), wrong type, or an expression outside the whitelist.
    FileNotFoundError
        ``config`` names a YAML file that does not exist.
    """
    if config is None:
        given: dict = {}
    elif isinstance(config, (str, os.PathLike)):
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"data config {str(path)!r} does not exist")
        import yaml

        try:
            given = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
        where = f"{where} {path}"
        if not isinstance(given, Mapping):
            raise ConfigError(f"{path}: the data config must be a mapping, got {type(given).__name__}")
    elif isinstance(config, Mapping):
        given = dict(config)
    else:
        raise ConfigError(f"{where} must be a path or a mapping, got {type(config).__name__}")

    given = copy.deepcopy(dict(given))
    for alias, key in _ALIASES.items():
        if alias in given:
            if key in given:
                raise ConfigError(f"{where}: give only one of {alias!r} and {key!r}")
            given[key] = given.pop(alias)
    ignored = [k for k in WEAVER_IGNORED if k in given]
    if ignored:
        warnings.warn(
            f"{where}: ignoring weaver key(s) {', '.join(ignored)}: lgae models take raw 4-momenta and "
            "build their own inputs",
            stacklevel=2,
        )
        for k in ignored:
            given.pop(k)
    check_keys(given, READER_DEFAULTS, where)
    cfg = {
        **copy.deepcopy(READER_DEFAULTS),
        **{k: v for k, v in given.items() if v is not None or k == "labels"},
    }

    branches = cfg["branches"] or {}
    if not isinstance(branches, Mapping):
        raise ConfigError(f"{where}: 'branches' must map logical names to branch names, got {branches!r}")
    check_keys(branches, BRANCH_DEFAULTS, f"{where}: branches")
    for key, name in branches.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}: branches.{key} must be a branch name, got {name!r}")
    cfg["branches"] = {**BRANCH_DEFAULTS, **branches}

    for key in ("tree", "selection"):
        if cfg[key] is not None and not isinstance(cfg[key], str):
            raise ConfigError(f"{where}: {key!r} must be a string, got {cfg[key]!r}")
    if cfg["selection"] is not None:
        _check_expr(cfg["selection"], f"{where}: selection")

    new_vars = cfg["new_variables"] or {}
    if not isinstance(new_vars, Mapping):
        raise ConfigError(f"{where}: 'new_variables' must map names to expressions, got {new_vars!r}")
    for name, source in new_vars.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError(f"{where}: new variable name {name!r} is not a valid identifier")
        _check_expr(source, f"{where}: new_variables.{name}")
    cfg["new_variables"] = {str(k): str(v) for k, v in new_vars.items()}

    observers = cfg["observers"] or []
    if isinstance(observers, str):
        observers = [observers]
    if not all(isinstance(o, str) for o in observers):
        raise ConfigError(f"{where}: 'observers' must be a list of branch names, got {observers!r}")
    cfg["observers"] = list(observers)

    cfg["labels"] = _normalise_labels(cfg["labels"], where)

    for key in ("entry_start", "entry_stop"):
        value = cfg[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ConfigError(f"{where}: {key!r} must be a non-negative integer, got {value!r}")
    if (
        cfg["entry_start"] is not None
        and cfg["entry_stop"] is not None
        and cfg["entry_stop"] < cfg["entry_start"]
    ):
        raise ConfigError(f"{where}: entry_stop ({cfg['entry_stop']}) < entry_start ({cfg['entry_start']})")
    if cfg["on_nonfinite"] not in ("fail", "drop"):
        raise ConfigError(f"{where}: 'on_nonfinite' must be 'fail' or 'drop', got {cfg['on_nonfinite']!r}")
    step = cfg["step_size"]
    if isinstance(step, bool) or not isinstance(step, int) or step <= 0:
        raise ConfigError(f"{where}: 'step_size' must be a positive number of entries, got {step!r}")
    return cfg


def _check_expr(source, where: str) -> None:
    try:
        parse(source)
    except ValueError as err:
        raise ConfigError(f"{where}: {err}") from None


def _normalise_labels(labels, where: str):
    if labels is None or labels is False or (isinstance(labels, str) and labels.lower() in ("none", "false")):
        return None
    if isinstance(labels, str):
        return "auto" if labels.lower() == "auto" else labels
    if isinstance(labels, Mapping):
        check_keys(labels, ("type", "value"), f"{where}: labels", required=("value",))
        kind = labels.get("type", "simple")
        if kind != "simple":
            raise ConfigError(
                f"{where}: labels type {kind!r} is not supported (use 'simple' with a list of one-hot "
                "branches, or a single integer branch name)"
            )
        labels = labels["value"]
        if isinstance(labels, str):
            labels = [labels]
    if isinstance(labels, (list, tuple)) and labels and all(isinstance(x, str) for x in labels):
        return list(labels)
    raise ConfigError(
        f"{where}: 'labels' must be 'auto', none, a branch name or a list of one-hot branch names, "
        f"got {labels!r}"
    )
