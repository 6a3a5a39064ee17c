"""tfvae's training side selects Keras's TensorFlow backend and refuses another; the
runtime imports without TensorFlow under any backend; tfvae registers its Keras classes as
soon as Keras is loaded."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tfvae


def _run(code: str, **environment):
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env.update(environment)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_an_unset_backend_becomes_tensorflow_when_the_training_side_loads():
    result = _run(
        "import os, tfvae\n"
        "print(os.environ.get('KERAS_BACKEND'))\n"
        "import tfvae.model, keras\n"
        "print(os.environ['KERAS_BACKEND'], keras.backend.backend())\n"
    )
    assert result.returncode == 0, result.stderr
    # `import tfvae` alone leaves the environment as it was.
    assert result.stdout.split() == ["None", "tensorflow", "tensorflow"]


@pytest.mark.parametrize("module", ["tfvae.model", "tfvae.networks", "tfvae.workflow"])
def test_another_backend_is_a_clear_error_from_the_training_side(module):
    result = _run(f"import tfvae, tfvae.likelihoods\nimport {module}", KERAS_BACKEND="jax")
    assert result.returncode != 0
    assert "tfvae needs Keras on the TensorFlow backend" in result.stderr
    assert "KERAS_BACKEND='jax'" in result.stderr


@pytest.mark.parametrize("backend", [None, "jax", "torch"])
def test_the_runtime_imports_under_any_backend_without_tensorflow_or_keras(backend):
    environment = {} if backend is None else {"KERAS_BACKEND": backend}
    code = (
        "import os, sys, tfvae, tfvae.runtime, tfvae.plots, tfvae.atomic, tfvae.likelihoods\n"
        "import tfvae.posteriors, tfvae.prior_families, tfvae.objectives\n"
        "loaded = [m for m in ('tensorflow', 'keras', 'tensorflow_probability', 'jax', 'torch')"
        " if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "assert os.environ.get('KERAS_BACKEND') == " + repr(backend) + "\n"
        "assert 'VAE' in tfvae.__all__ and 'runtime' in dir(tfvae)\n"
    )
    result = _run(code, **environment)
    assert result.returncode == 0, result.stderr


def _top_level_imports(path):
    """The modules a file imports at its top level, in order."""
    tree = ast.parse(path.read_text())
    names = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.append(node.module)
    return names


def test_every_module_that_imports_tensorflow_selects_the_backend_first():
    """A tfvae module importing Keras, TensorFlow or TFP at its top must import
    tfvae._backend before them, or `import tfvae.<module>` could load Keras on the
    backend of a `keras.json` and fail later in obscure ways."""
    heavy = ("keras", "tensorflow", "tensorflow_probability", "tf2onnx")
    package = Path(tfvae.__file__).parent
    offenders = []
    for path in sorted(package.rglob("*.py")):
        imports = _top_level_imports(path)
        first_heavy = next(
            (i for i, name in enumerate(imports) if name.split(".")[0] in heavy), None
        )
        if first_heavy is not None and "tfvae._backend" not in imports[:first_heavy]:
            offenders.append(str(path.relative_to(package)))
    assert offenders == []


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


@pytest.mark.slow
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
