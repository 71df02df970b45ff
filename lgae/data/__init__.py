"""Jets from ROOT files: reader, torch dataset, transforms and the training-data bundle.

>>> from lgae.data import load_jets                                   # doctest: +SKIP
>>> jets = load_jets("qcd.root", n_particles=30)                      # doctest: +SKIP
>>> jets.p4.shape, jets.mask.shape                                    # doctest: +SKIP
((100000, 30, 4), (100000, 30))

Names are imported on first use, so ``import lgae.data`` (and ``lgae --help``) stays fast.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "load_jets": "reader",
    "Jets": "reader",
    "DataError": "reader",
    "DataWarning": "reader",
    "resolve_paths": "reader",
    "write_jets_root": "reader",
    "JetDataset": "dataset",
    "split_indices": "dataset",
    "build_datasets": "bundle",
    "prepare_jets": "bundle",
    "DataBundle": "bundle",
    "DATA_DEFAULTS": "bundle",
    "validate_data_config": "bundle",
    "load_reader_config": "format",
    "READER_DEFAULTS": "format",
    "Transform": "transforms",
    "MomentumScale": "transforms",
    "Massless": "transforms",
    "RelativeCoordinates": "transforms",
    "JetImage": "transforms",
    "Compose": "transforms",
    "get_transform": "transforms",
    "from_state_dict": "transforms",
    "jet_axis": "transforms",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
