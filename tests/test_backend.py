"""tfvae selects Keras's TensorFlow backend, refuses another, and imports lazily."""

import os
import subprocess
import sys


def _run(code: str, **environment):
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env.update(environment)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def test_an_unset_backend_becomes_tensorflow():
    result = _run("import os, tfvae; print(os.environ['KERAS_BACKEND'])")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "tensorflow"


def test_another_backend_is_a_clear_error():
    result = _run("import tfvae", KERAS_BACKEND="jax")
    assert result.returncode != 0
    assert "tfvae needs Keras on the TensorFlow backend" in result.stderr
    assert "KERAS_BACKEND='jax'" in result.stderr


def test_importing_tfvae_and_its_runtime_loads_no_tensorflow():
    code = (
        "import sys, tfvae, tfvae.runtime, tfvae.plots, tfvae.atomic\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        "assert 'VAE' in tfvae.__all__ and 'runtime' in dir(tfvae)\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
