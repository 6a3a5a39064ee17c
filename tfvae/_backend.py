"""Makes sure Keras runs on the TensorFlow backend before anything imports it.

tfvae builds TensorFlow Probability distributions inside Keras models, so Keras must
use its TensorFlow backend. When `KERAS_BACKEND` is unset we set it; when a user chose
another backend we refuse with an error that says how to fix it.
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
            "tfvae needs Keras on the TensorFlow backend. Received: "
            f"KERAS_BACKEND={chosen!r}. Unset KERAS_BACKEND or set it to 'tensorflow'."
        )
    keras = sys.modules.get("keras")
    if keras is not None and keras.backend.backend() != _REQUIRED_BACKEND:
        raise RuntimeError(
            "tfvae needs Keras on the TensorFlow backend, but Keras was already imported "
            f"with backend={keras.backend.backend()!r}. Import tfvae first or set "
            "KERAS_BACKEND=tensorflow."
        )
