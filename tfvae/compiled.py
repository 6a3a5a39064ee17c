"""Whether a model's computations use XLA, and its compiled functions.

`resolve_jit_compile` is the one owner of what `model.compile(jit_compile=...)` means for
a VAE: True and False as given, and `"auto"` (the default) the path measured faster for
the device and the networks (`auto_jit_compile`). The train and test steps and the
inference functions all follow it.

The inference utilities (`tfvae.inference`) run whole computations (thousands of
importance samples, an optimization loop, a Markov chain) as one `tf.function`. A model
owns a `CompiledFunctions` cache of them (`VAE.compiled_function`), so that a function is
traced once per model and per static arguments, and compiled with XLA or not as
`resolve_jit_compile` says. The model empties the cache when it is compiled again, so a
new choice applies to the next call.

Example:

>>> functions = CompiledFunctions(jit_compile=False)
>>> square = functions.get(("square",), lambda: lambda x: x * x)
>>> float(square(tf.constant(3.0)))
9.0
>>> functions.get(("square",), lambda: None) is square  # built once per key
True
"""

import tfvae._backend  # noqa: F401

import keras
import tensorflow as tf

# Layers whose XLA CPU kernels (Eigen) were measured slower than TensorFlow's oneDNN ones.
_SLOWER_WITH_XLA_ON_CPU = (
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
    keras.layers.DepthwiseConv1D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv1D,
    keras.layers.SeparableConv2D,
)


def has_accelerator() -> bool:
    """Whether TensorFlow sees a device other than the CPU (a GPU or a TPU)."""
    return any(device.device_type != "CPU" for device in tf.config.list_physical_devices())


def auto_jit_compile(model: keras.Layer, accelerator: bool | None = None) -> bool:
    """What `jit_compile="auto"` resolves to for `model`: the faster path, measured.

    - With a GPU or TPU: XLA, which fuses the step into few kernels.
    - On a CPU: XLA, unless the model has a convolution layer (`keras.layers.Conv2D`,
      `Conv2DTranspose` and the other Conv, DepthwiseConv and SeparableConv layers). On
      this project's CPU benchmark (`benchmarks/train_throughput.py`, 2 cores), XLA
      trained the MLP VAE 1.24-1.27 times faster at batch 100 (at batch 1000, 1.09 and
      0.78 times in two runs), but the conv VAE 0.47-0.91 times as fast: XLA's CPU
      convolutions are slower than TensorFlow's oneDNN kernels.

    Unlike Keras's own `"auto"`, which never uses XLA on a CPU, nor under a
    `tf.distribute` strategy (where tfvae compiles each replica's step instead).

    Args:
        model: a Keras layer or model; its nested layers are inspected.
        accelerator: whether a GPU or TPU runs the model (default: `has_accelerator()`).
    """
    if accelerator is None:
        accelerator = has_accelerator()
    if accelerator:
        return True
    return not any(isinstance(layer, _SLOWER_WITH_XLA_ON_CPU) for layer in model._flatten_layers())


def resolve_jit_compile(jit_compile, model: keras.Layer) -> bool:
    """Whether `model`'s train and test steps and inference functions use XLA, given
    `compile(jit_compile=...)`.

    `"auto"` (also the choice of a model that was never compiled) is `auto_jit_compile`.
    Other values count as Keras counts them: true ones as True, false ones as False.
    The steps and the inference functions follow the same choice, and `tfvae.random`
    makes their noise the same with and without XLA.
    """
    if isinstance(jit_compile, str) and jit_compile == "auto":
        return auto_jit_compile(model)
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
