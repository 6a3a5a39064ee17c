"""Name -> class registries for the families users choose by string.

A family is registered once under a name (`likelihood="bernoulli"`); an instance is
accepted as well, for full control (`tfvae.likelihoods.Gaussian(scale=0.5)`). Registered
classes are also registered with Keras serialization, so a model that holds them saves to
and loads from `.keras` files.
"""

import keras


class Registry:
    """Maps names to the classes of one kind of family (likelihood, prior, ...).

    Args:
        kind: what the families are, as used in error messages (`"likelihood"`).
        base: the base class every registered family derives from.

    Example:
        >>> likelihoods = Registry("likelihood", Likelihood)
        >>> @likelihoods.register("bernoulli")
        ... class Bernoulli(Likelihood): ...
        >>> likelihoods.get("bernoulli")
    """

    def __init__(self, kind: str, base: type):
        self.kind = kind
        self.base = base
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
            return keras.saving.register_keras_serializable(package="tfvae")(cls)

        return decorator

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._classes)

    def get(self, identifier, argument: str | None = None):
        """Returns a family instance for a name, an instance or a serialized config.

        Args:
            identifier: a registered name, an instance of the base class, or a dict
                produced by `keras.saving.serialize_keras_object`.
            argument: the name of the user's argument, for error messages.

        Raises:
            ValueError: for an unknown name (the message lists the known ones).
            TypeError: for any other kind of value.
        """
        argument = argument or self.kind
        if isinstance(identifier, self.base):
            return identifier
        if isinstance(identifier, str):
            if identifier not in self._classes:
                raise ValueError(
                    f"Unknown {self.kind} {identifier!r}. Expected one of "
                    f"{self.names()}. Received: {argument}={identifier!r}"
                )
            return self._classes[identifier]()
        if isinstance(identifier, dict):
            return self.get(keras.saving.deserialize_keras_object(identifier), argument)
        raise TypeError(
            f"Expected {argument} to be one of {self.names()} or a "
            f"{self.base.__name__} instance. Received: {argument}={identifier!r}"
        )
