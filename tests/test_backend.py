"""tfvae selects Keras's TensorFlow backend, refuses another, imports lazily, and registers
its Keras classes as soon as Keras is loaded."""

import os
import subprocess
import sys

import pytest


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


def test_importing_the_runtime_alone_loads_neither_tensorflow_nor_keras():
    result = _run(
        "import tfvae.runtime, sys\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """One tiny saved model per architecture, with a batch and the model's output on it."""
    import keras
    import numpy as np

    import tfvae

    folder = tmp_path_factory.mktemp("saved")
    x = (np.random.default_rng(0).random((4, 8, 8, 1)) < 0.3).astype("float32")
    networks = {
        "mlp": (tfvae.networks.mlp_encoder((16,)), tfvae.networks.mlp_decoder((16,))),
        "conv": (tfvae.networks.conv_encoder((4, 8)), tfvae.networks.conv_decoder((8, 4))),
    }
    for architecture, (encoder, decoder) in networks.items():
        keras.utils.set_random_seed(0)
        vae = tfvae.VAE(encoder, decoder, latent_dim=3, seed=0)
        np.save(folder / f"{architecture}_y.npy", vae(x).numpy())  # builds it, too
        vae.save(folder / f"{architecture}.keras")
    np.save(folder / "x.npy", x)
    return folder


@pytest.mark.parametrize(
    "imports",
    [
        "import keras, tfvae",
        "import tfvae, keras",
        "import tfvae, tensorflow\nimport keras",  # TensorFlow imports Keras itself
    ],
)
def test_load_model_finds_tfvae_classes_after_importing_tfvae_and_keras(saved_models, imports):
    """`keras.saving.load_model` restores both architectures, whichever is imported first."""
    code = (
        f"{imports}\n"
        "import sys\n"
        "import numpy as np\n"
        f"folder = {str(saved_models)!r}\n"
        "x = np.load(f'{folder}/x.npy')\n"
        "for architecture in ('mlp', 'conv'):\n"
        "    model = keras.saving.load_model(f'{folder}/{architecture}.keras')\n"
        "    assert type(model).__name__ == 'VAE', type(model)\n"
        "    expected = np.load(f'{folder}/{architecture}_y.npy')\n"
        "    np.testing.assert_array_equal(np.asarray(model(x)), expected)\n"
        "finders = [type(finder).__name__ for finder in sys.meta_path]\n"
        "assert '_RegisterOnKerasImport' not in finders, finders  # the hook removed itself\n"
    )
    result = _run(code, PYTHONWARNINGS="error::RuntimeWarning")
    assert result.returncode == 0, result.stderr[-3000:]
