"""tfvae: variational autoencoders for Keras 3 and TensorFlow Probability.

The public API is loaded lazily: `import tfvae` is cheap, and `import tfvae.runtime`
(numpy + onnxruntime) never imports TensorFlow. tfvae's Keras classes are registered as
soon as Keras is loaded (see `tfvae._registration`), so `keras.saving.load_model` finds
them after `import tfvae, keras` in either order.
"""

import importlib

from tfvae import _registration
from tfvae._backend import ensure_tensorflow_backend

# Before any submodule imports Keras; this imports neither Keras nor TensorFlow.
ensure_tensorflow_backend()

__version__ = "0.1.0"

# Public name -> module that defines it.
_LAZY_ATTRIBUTES = {
    "VAE": "tfvae.model",
    "evaluate": "tfvae.inference",
}
_LAZY_MODULES = (
    "atomic",
    "callbacks",
    "checkpoints",
    "cli",
    "data",
    "export",
    "inference",
    "latent",
    "likelihoods",
    "model",
    "networks",
    "objectives",
    "outputs",
    "plots",
    "posteriors",
    "priors",
    "random",
    "runtime",
    "schedules",
    "workflow",
)

__all__ = sorted([*_LAZY_ATTRIBUTES, *_LAZY_MODULES, "__version__"])


def __getattr__(name: str):
    if name in _LAZY_ATTRIBUTES:
        return getattr(importlib.import_module(_LAZY_ATTRIBUTES[name]), name)
    if name in _LAZY_MODULES:
        return importlib.import_module(f"tfvae.{name}")
    raise AttributeError(f"module 'tfvae' has no attribute {name!r}")


def __dir__():
    return __all__


# So that `keras.saving.load_model` finds tfvae's classes after `import tfvae` and
# `import keras` in either order; imports neither Keras nor TensorFlow itself.
_registration.register_now_or_on_import()
