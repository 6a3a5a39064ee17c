"""tfvae: variational autoencoders for Keras 3 and TensorFlow Probability.

The public API is loaded lazily: `import tfvae` is cheap and touches neither Keras nor
`KERAS_BACKEND`, and `import tfvae.runtime` (numpy + onnxruntime) never imports
TensorFlow, under any Keras backend. The training side selects Keras's TensorFlow
backend when it is first imported (`tfvae._backend`). tfvae's Keras classes are
registered as soon as Keras is loaded (see `tfvae._registration`), so
`keras.saving.load_model` finds them after `import tfvae, keras` in either order.

Install: `pip install tfvae` gives the runtime (numpy, onnxruntime, Pillow);
`pip install 'tfvae[train]'` adds TensorFlow, TFP, Keras and tf2onnx for training.
"""

import importlib

from tfvae import _registration

__version__ = "0.1.0"

# Public name -> module that defines it.
_LAZY_ATTRIBUTES = {
    "VAE": "tfvae.model",
    "evaluate": "tfvae.inference",
}
_LAZY_MODULES = (
    "atomic",
    "baselines",
    "bundle",
    "callbacks",
    "checkpoints",
    "cli",
    "compiled",
    "conditions",
    "config",
    "data",
    "data_checks",
    "diagnostics",
    "distribute",
    "estimators",
    "export",
    "inference",
    "interpolation",
    "latent",
    "likelihoods",
    "model",
    "networks",
    "npmath",
    "objectives",
    "outputs",
    "plots",
    "posteriors",
    "prior_families",
    "priors",
    "random",
    "runtime",
    "schedules",
    "semi_supervised",
    "support",
    "validation",
    "workflow",
)

__all__ = sorted([*_LAZY_ATTRIBUTES, *_LAZY_MODULES, "__version__"])


def __getattr__(name: str):
    if name in _LAZY_ATTRIBUTES:
        return getattr(_import(_LAZY_ATTRIBUTES[name]), name)
    if name in _LAZY_MODULES:
        return _import(f"tfvae.{name}")
    raise AttributeError(f"module 'tfvae' has no attribute {name!r}")


# The importable packages of the `train` extra, absent from a runtime-only install.
TRAINING_PACKAGES = ("tensorflow", "tensorflow_probability", "keras", "tf2onnx", "onnx", "sklearn")


def _import(module: str):
    """Imports a tfvae module; without the training extra, says how to install it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name not in TRAINING_PACKAGES:
            raise
        raise ModuleNotFoundError(
            f"{module} needs {error.name}, which the runtime-only install of tfvae lacks. "
            "Install the training side with: pip install 'tfvae[train]'",
            name=error.name,
        ) from error


def __dir__():
    return __all__


# So that `keras.saving.load_model` finds tfvae's classes after `import tfvae` and
# `import keras` in either order; imports neither Keras nor TensorFlow itself.
_registration.register_now_or_on_import()
