"""Models: the LGAE and the baselines, one file each, built by name from a registry."""

from . import cnnae, gnnae, lgae_model, vae  # noqa: F401  (registers the models)
from .base import JetAutoencoder, ModelOutput
from .registry import available_models, build_model, model_class, model_config_keys, register

__all__ = [
    "JetAutoencoder",
    "ModelOutput",
    "available_models",
    "build_model",
    "model_class",
    "model_config_keys",
    "register",
]
