"""Modules imported on first use, for code that must import without TensorFlow.

The probability families keep their numpy knowledge (names, parameters, support,
samplers) and their TensorFlow methods in one class. Their modules import TensorFlow
through these proxies, so `import tfvae.likelihoods` (and so `tfvae.runtime`) loads
numpy only; the first attribute read, e.g. `tf.cast` in a TensorFlow method, selects
Keras's TensorFlow backend (`tfvae._backend`) and imports the real module.

    >>> from tfvae._lazy import tf, tfd
    >>> tfd.Normal(0.0, 1.0)  # TensorFlow and TFP are imported here, not before
"""

import importlib
import types


class LazyModule(types.ModuleType):
    """A stand-in for module `name` (or its attribute path) that imports it on first use.

    Args:
        name: the module to import, e.g. "tensorflow".
        attribute: a dotted attribute path inside it, e.g. "distributions".
    """

    def __init__(self, name: str, attribute: str = ""):
        super().__init__(f"{name}.{attribute}" if attribute else name)
        self._module_name = name
        self._attribute = attribute
        self._target = None

    def _load(self):
        if self._target is None:
            importlib.import_module("tfvae._backend")  # before TensorFlow imports Keras
            target = importlib.import_module(self._module_name)
            for part in filter(None, self._attribute.split(".")):
                target = getattr(target, part)
            self._target = target
        return self._target

    def __getattr__(self, name: str):
        return getattr(self._load(), name)


tf = LazyModule("tensorflow")
tfd = LazyModule("tensorflow_probability", "distributions")
