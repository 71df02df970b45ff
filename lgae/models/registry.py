"""Model registry: ``build_model(name, **config)`` builds any registered model from its YAML ``model:``
block."""

from __future__ import annotations

import inspect

from .._validate import ConfigError, check_keys, closest

_REGISTRY: dict[str, type] = {}


def register(name: str):
    """Class decorator registering a :class:`~lgae.models.base.JetAutoencoder` subclass under ``name``."""

    def deco(cls):
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model name {name!r} already registered by {_REGISTRY[name].__name__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def available_models() -> list[str]:
    """Names accepted by :func:`build_model`."""
    return sorted(_REGISTRY)


def model_class(name: str) -> type:
    if name not in _REGISTRY:
        hint = closest(name, _REGISTRY)
        raise ConfigError(
            f"unknown model name {name!r}"
            + (f"; did you mean {hint!r}?" if hint else "")
            + f" (available: {', '.join(available_models())})"
        )
    return _REGISTRY[name]


def model_config_keys(name: str) -> list[str]:
    """The config keys a model accepts (its constructor's keyword parameters)."""
    sig = inspect.signature(model_class(name).__init__)
    return [
        p
        for p, v in sig.parameters.items()
        if p != "self" and v.kind in (v.POSITIONAL_OR_KEYWORD, v.KEYWORD_ONLY)
    ]


def build_model(name: str, **config):
    """Build a registered model.

    Parameters
    ----------
    name : str
        One of :func:`available_models` (``"lgae"``, ``"vae"``, ``"gnnae-jl"``, ``"gnnae-pl"``, ``"cnnae"``).
    **config
        The model's own keys (the YAML ``model:`` block without ``name``). Unknown keys raise
        :class:`~lgae._validate.ConfigError` naming the closest valid key.
    """
    config = dict(config)
    config.pop("name", None)
    cls = model_class(name)
    check_keys(config, model_config_keys(name), where=f"model ({name})")
    return cls(**config)
