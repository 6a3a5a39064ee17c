"""A model's compiled functions: each built once per static arguments, XLA as the user chose.

The inference utilities (`tfvae.inference`) run whole computations (thousands of
importance samples, an optimization loop, a Markov chain) as one `tf.function`. A model
owns a `CompiledFunctions` cache of them (`VAE.compiled_function`), so that a function is
traced once per model and per static arguments, and compiled with XLA or not as
`model.compile(jit_compile=...)` says (`resolve_jit_compile`). The model empties the cache
when it is compiled again, so a new choice applies to the next call.

Example:

>>> functions = CompiledFunctions(jit_compile=False)
>>> square = functions.get(("square",), lambda: lambda x: x * x)
>>> float(square(tf.constant(3.0)))
9.0
>>> functions.get(("square",), lambda: None) is square  # built once per key
True
"""

import tfvae._backend  # noqa: F401

import tensorflow as tf


def resolve_jit_compile(jit_compile) -> bool:
    """Whether the inference functions use XLA, given `compile(jit_compile=...)`.

    `True` compiles them with XLA and `False` does not. `"auto"` (also the choice of a
    model that was never compiled) compiles them with XLA too, as before there was a
    choice: unlike Keras's train step, whose `"auto"` turns XLA off on CPU, they are pure
    functions of their inputs (no variable updates, no host callbacks) that XLA compiles on
    every device, and `tfvae.random` makes their noise the same with and without it.

    Other values count as Keras counts them: true ones as True, false ones as False
    (`"auto"` is a true string, so truth alone decides).
    """
    return bool(jit_compile)


class CompiledFunctions:
    """`tf.function`s keyed by their static arguments, all compiled with one XLA choice.

    Args:
        jit_compile: whether the functions are compiled with XLA.
    """

    def __init__(self, jit_compile: bool = True):
        self._jit_compile = bool(jit_compile)
        self._functions = {}

    @property
    def jit_compile(self) -> bool:
        """Whether the functions are compiled with XLA."""
        return self._jit_compile

    def get(self, key, build):
        """The function for `key`: `tf.function(build(), jit_compile=self.jit_compile)`,
        built on the first request for `key` and kept.

        Args:
            key: a hashable tuple of everything `build` bakes into the function (its name
                and static arguments, such as a number of samples).
            build: called without arguments, returns the Python function to trace.
        """
        if key not in self._functions:
            self._functions[key] = tf.function(build(), jit_compile=self._jit_compile)
        return self._functions[key]

    def reset(self, jit_compile: bool) -> None:
        """Forgets every function; the next ones are compiled with `jit_compile`."""
        self._jit_compile = bool(jit_compile)
        self._functions.clear()

    def __len__(self) -> int:
        return len(self._functions)
