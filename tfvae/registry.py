"""Name -> class registries for the families users choose by string.

A family is registered once under a name (`likelihood="bernoulli"`); an instance is
accepted as well, for full control (`tfvae.likelihoods.Gaussian(scale=0.5)`). The name
is the family's one identity: the export's manifest records it and the ONNX runtime looks
the family up by it, so a subclass must be registered under its own name before it is
exported (`name_of`).

This module imports neither Keras nor TensorFlow, so the numpy side (`tfvae.runtime`)
reads the same registries. Registered classes are registered with Keras serialization as
well (at once when Keras is loaded, else by `register_with_keras`, which tfvae's Keras
side calls), so a model that holds them saves to and loads from `.keras` files.
"""

import sys


class Family:
    """Base of the plain-Python families (likelihoods, posteriors, objectives, KL
    schedules): an instance is its class and its constructor's arguments, `get_config()`.
    """

    family: str = ""  # the registered name, set by the registry

    def get_config(self) -> dict:
        """The constructor's arguments, as plain data."""
        return {}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({arguments})"


class Registry:
    """Maps names to the classes of one kind of family (likelihood, prior, ...).

    Args:
        kind: what the families are, as used in error messages (`"likelihood"`).
        base: the base class every registered family derives from.
        serializable: register the families with Keras serialization (False for the
            numpy side of priors, whose Keras layers are registered instead).

    Example:
        >>> likelihoods = Registry("likelihood", Likelihood)
        >>> @likelihoods.register("bernoulli")
        ... class Bernoulli(Likelihood): ...
        >>> likelihoods.get("bernoulli")
    """

    def __init__(self, kind: str, base: type, serializable: bool = True):
        self.kind = kind
        self.base = base
        self.serializable = serializable
        self._classes: dict[str, type] = {}

    def register(self, name: str):
        """Class decorator registering a family under `name` (and with Keras)."""

        def decorator(cls):
            if name in self._classes:
                raise ValueError(
                    f"A {self.kind} named {name!r} is already registered "
                    f"({self._classes[name].__qualname__})."
                )
            if not issubclass(cls, self.base):
                raise TypeError(
                    f"Expected a subclass of {self.base.__name__} for {self.kind} {name!r}. "
                    f"Received: {cls!r}"
                )
            cls.family = name
            self._classes[name] = cls
            if self.serializable and "keras" in sys.modules:
                _register_with_keras(cls)
            return cls

        return decorator

    def register_with_keras(self) -> None:
        """Registers every family with Keras serialization (Keras must be loaded)."""
        for cls in self._classes.values() if self.serializable else ():
            _register_with_keras(cls)

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._classes)

    def class_of(self, name: str, argument: str | None = None) -> type:
        """The class registered under `name`.

        Raises:
            ValueError: for an unknown name; the message lists the known ones.
        """
        if name not in self._classes:
            raise ValueError(
                f"Unknown {self.kind} {name!r}. Expected one of {self.names()}. "
                f"Received: {argument or self.kind}={name!r}"
            )
        return self._classes[name]

    def name_of(self, family) -> str:
        """The name `family` (an instance or a class) was registered under itself.

        Raises:
            ValueError: for a class that is not registered, such as an unregistered
                subclass of a registered family, which would otherwise pass for its parent.
        """
        cls = family if isinstance(family, type) else type(family)
        name = cls.__dict__.get("family")
        if name is None or self._classes.get(name) is not cls:
            raise ValueError(
                f"Expected a registered {self.kind}. Received: {cls.__qualname__}, which is "
                f"not registered under a name of its own. Register it with "
                f"`@tfvae.{self.kind}s.registry.register('my_name')` so that the manifest "
                "can name it and the runtime can find it."
            )
        return name

    def get(self, identifier, argument: str | None = None):
        """Returns a family instance for a name, an instance or a serialized config.

        Args:
            identifier: a registered name, an instance of the base class, or a dict
                produced by `keras.saving.serialize_keras_object`.
            argument: the name of the user's argument, for error messages (default: the
                registry's kind, e.g. "likelihood").

        Raises:
            ValueError: for an unknown name (the message lists the known ones).
            TypeError: for any other kind of value.
        """
        argument = argument or self.kind
        if isinstance(identifier, self.base):
            return identifier
        if isinstance(identifier, str):
            return self.class_of(identifier, argument)()
        if isinstance(identifier, dict):
            import keras

            self.register_with_keras()
            return self.get(keras.saving.deserialize_keras_object(identifier), argument)
        raise TypeError(
            f"Expected {argument} to be one of {self.names()} or a "
            f"{self.base.__name__} instance. Received: {argument}={identifier!r}"
        )


def _register_with_keras(cls) -> None:
    """Registers `cls` with a loaded Keras; a Keras still importing is done later."""
    saving = getattr(sys.modules.get("keras"), "saving", None)
    if saving is not None:
        saving.register_keras_serializable(package="tfvae")(cls)
