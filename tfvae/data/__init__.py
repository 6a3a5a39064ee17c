"""Training data: named datasets and user files as numpy arrays, and the tf.data pipeline.

`load` and the IDX reader need only numpy (and scikit-learn/Pillow for digits and PNG
folders): `from tfvae.data import load` does not import TensorFlow. `make_dataset` and
`BINARIZATIONS` are loaded lazily from `tfvae.data.pipeline`, which does.

Downloads go through `tfvae.data.sources.fetch_url(url) -> bytes`; replace that module
attribute (e.g. with pytest's monkeypatch) to simulate the network.

Example:

>>> from tfvae.data import load, make_dataset
>>> x, y = load("digits")                       # x: (1500, 8, 8, 1) uint8 counts 0..16
>>> dataset = make_dataset(x / 16.0, batch_size=100, binarize="dynamic")
"""

import importlib

from tfvae.data.idx import IDXFormatError, read_idx
from tfvae.data.sources import (
    DATASETS,
    ChecksumError,
    DatasetNotFoundError,
    keras_cache_dir,
    load,
    register_dataset,
)

# Public name -> module that defines it, imported on first access (they import TensorFlow).
_LAZY_ATTRIBUTES = {
    "BINARIZATIONS": "tfvae.data.pipeline",
    "make_dataset": "tfvae.data.pipeline",
    "preprocess": "tfvae.data.pipeline",
}

__all__ = [
    "BINARIZATIONS",
    "DATASETS",
    "ChecksumError",
    "DatasetNotFoundError",
    "IDXFormatError",
    "keras_cache_dir",
    "load",
    "make_dataset",
    "preprocess",
    "read_idx",
    "register_dataset",
]


def __getattr__(name: str):
    if name in _LAZY_ATTRIBUTES:
        return getattr(importlib.import_module(_LAZY_ATTRIBUTES[name]), name)
    raise AttributeError(f"module 'tfvae.data' has no attribute {name!r}")


def __dir__():
    return __all__
