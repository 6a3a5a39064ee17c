"""tfvae: variational autoencoders for Keras 3 and TensorFlow Probability.

The public API is loaded lazily: `import tfvae` is cheap, and `import tfvae.runtime`
(numpy + onnxruntime) never imports TensorFlow.
"""

import importlib

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
    "cli",
    "data",
    "export",
    "inference",
    "latent",
    "likelihoods",
    "model",
    "networks",
    "objectives",
    "plots",
    "posteriors",
    "priors",
    "random",
    "runtime",
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
