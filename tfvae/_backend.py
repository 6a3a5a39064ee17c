"""Keras on its TensorFlow backend, selected before anything imports Keras or TensorFlow.

tfvae builds TensorFlow Probability distributions inside Keras models, so its training
side needs Keras's TensorFlow backend. `import tfvae._backend` makes sure of it: when
`KERAS_BACKEND` is unset it sets it to "tensorflow" (overriding a `keras.json` that
names another backend), and when a user chose another backend it raises an error that
says how to fix it.

Every tfvae module that imports Keras, TensorFlow or TensorFlow Probability at its top
imports this module first (ruff's isort section "tfvae-backend" keeps it first;
tests/test_backend.py checks that each such module does). The numpy side (`tfvae`,
`tfvae.runtime`, the probability families' numpy layer, `tfvae.plots`) never imports it,
so `import tfvae.runtime` leaves `KERAS_BACKEND` alone and works under any backend.
"""

import os
import sys

_REQUIRED_BACKEND = "tensorflow"


def ensure_tensorflow_backend() -> None:
    """Selects the TensorFlow backend for Keras, or raises if another was chosen.

    Raises:
        RuntimeError: if `KERAS_BACKEND` names another backend, or Keras was already
            imported with another backend.
    """
    chosen = os.environ.setdefault("KERAS_BACKEND", _REQUIRED_BACKEND)
    if chosen != _REQUIRED_BACKEND:
        raise RuntimeError(
            "tfvae needs Keras on the TensorFlow backend to train, evaluate or export "
            f"models. Received: KERAS_BACKEND={chosen!r}. Unset KERAS_BACKEND or set it to "
            "'tensorflow' (tfvae.runtime, the ONNX sampler, works under any backend)."
        )
    keras = sys.modules.get("keras")
    if keras is not None and keras.backend.backend() != _REQUIRED_BACKEND:
        raise RuntimeError(
            "tfvae needs Keras on the TensorFlow backend, but Keras was already imported "
            f"with backend={keras.backend.backend()!r}. Import tfvae's training modules "
            "first or set KERAS_BACKEND=tensorflow."
        )


ensure_tensorflow_backend()
