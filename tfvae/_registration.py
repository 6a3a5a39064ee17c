"""Registers tfvae's Keras classes as soon as Keras is loaded, without importing Keras.

`keras.saving.load_model("model.keras")` looks tfvae's classes up by their registered
names (`tfvae>VAE`, ...), so the modules that define them must have been imported
first. `import tfvae` stays lazy (so that `import tfvae.runtime` never imports
TensorFlow), hence:

    - if Keras and TensorFlow are already loaded, `register_now_or_on_import` imports
      `tfvae.model` and `tfvae.semi_supervised` (which import every module with a
      registered class) at once;
    - otherwise it puts a one-shot finder first on `sys.meta_path`. When the import of
      `keras` or `tensorflow` is found, the finder wraps that module's loader's
      `exec_module`; when the last of the two finishes executing (each imports the
      other, and TensorFlow imports Keras at the end of its own `__init__`), it
      imports them and removes itself.

Nothing is registered when Keras runs on another backend, and the hook never raises: a
failure to register is a warning, and `keras.saving.load_model` then reports the class it
could not find.

    >>> import tfvae, keras                       # either order works
    >>> vae = keras.saving.load_model("model.keras")
"""

import importlib
import sys
import warnings

_WATCHED = ("keras", "tensorflow")
# The modules whose imports register every Keras class of tfvae.
_KERAS_MODULES = ("tfvae.model", "tfvae.semi_supervised")


def _loaded(name: str, just_executed: str | None) -> bool:
    """Is module `name` imported and done executing?"""
    if name == just_executed:  # its spec is still marked initializing until we return
        return True
    module = sys.modules.get(name)
    spec = getattr(module, "__spec__", None)
    return module is not None and not getattr(spec, "_initializing", False)


def _register_if_ready(just_executed: str | None = None) -> bool:
    """Imports `_KERAS_MODULES` once Keras and TensorFlow are loaded.

    Returns:
        True when nothing is left to wait for: registered, or Keras runs on another
        backend, or registering failed (with a warning). False while Keras or
        TensorFlow is still loading or not imported.
    """
    if not all(_loaded(name, just_executed) for name in _WATCHED):
        return False
    try:
        if sys.modules["keras"].backend.backend() == "tensorflow":
            for module in _KERAS_MODULES:
                importlib.import_module(module)
    except Exception as error:  # noqa: BLE001 (an import hook must not break `import keras`)
        warnings.warn(
            f"tfvae could not register its Keras classes ({error!r}); "
            "keras.saving.load_model will not find tfvae's classes until "
            "`import tfvae.model` succeeds.",
            RuntimeWarning,
            stacklevel=2,
        )
    return True


class _RegisterOnKerasImport:
    """A `sys.meta_path` finder that registers tfvae's classes after Keras loads.

    It finds nothing itself: for `keras` and `tensorflow` it asks the finders after it
    for the module's spec and wraps that spec's (per-module) loader's `exec_module`.
    """

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _WATCHED:
            return None
        spec = self._spec_from_other_finders(fullname, path, target)
        loader = getattr(spec, "loader", None)
        if isinstance(loader, type) or not hasattr(loader, "exec_module"):
            return None  # not a per-module loader object: let the import go on untouched
        exec_module = loader.exec_module

        def exec_then_register(module):
            try:
                exec_module(module)
            finally:
                del loader.exec_module  # back to the loader's own method
            if _register_if_ready(just_executed=fullname) and self in sys.meta_path:
                sys.meta_path.remove(self)

        try:
            loader.exec_module = exec_then_register
        except AttributeError:  # a loader with __slots__
            return None
        return spec

    def _spec_from_other_finders(self, fullname, path, target):
        for finder in list(sys.meta_path):
            find_spec = getattr(finder, "find_spec", None)
            if finder is self or find_spec is None:
                continue
            spec = find_spec(fullname, path, target)
            if spec is not None:
                return spec
        return None


def register_now_or_on_import() -> None:
    """Registers tfvae's Keras classes now if Keras is loaded, else right after it loads.

    Imports neither Keras nor TensorFlow itself. Safe to call more than once.
    """
    if _register_if_ready():
        return
    if not any(isinstance(finder, _RegisterOnKerasImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterOnKerasImport())
