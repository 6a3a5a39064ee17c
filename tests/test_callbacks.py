"""The training callbacks: what reaches History, and TensorBoard records read back."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import tfvae
from tfvae import callbacks, inference, workflow

DATA_RANGE = (0.0, 16.0)  # digit counts, as the digits recipe shows them
RECIPE = workflow.Recipe(
    likelihood="binomial", likelihood_config={"total_count": 16}, data_range=DATA_RANGE
)


@pytest.fixture(scope="module")
def digits():
    x, _ = tfvae.data.load("digits", split="train")
    return x[:300].astype("float32")


def _tiny_vae(prior="standard_normal"):
    vae = tfvae.VAE(
        tfvae.networks.mlp_encoder((16,), seed=0),
        tfvae.networks.mlp_decoder((16,), seed=1),
        latent_dim=3,
        likelihood=tfvae.likelihoods.Binomial(total_count=16),
        prior=prior,
        seed=0,
    )
    vae.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
    return vae


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    """A tiny VAE fitted 4 epochs with images every epoch (in `logs`) and every 3rd (in
    `every_3`), and diagnostics every 2nd."""
    folder = tmp_path_factory.mktemp("callbacks")
    vae = _tiny_vae()
    options = {"x": digits[:100], "n": 10, "seed": 3, "data_range": DATA_RANGE}
    diagnostics = callbacks.LatentDiagnostics(digits[:100], every=2)
    history = vae.fit(
        digits,
        batch_size=100,
        epochs=4,
        verbose=0,
        callbacks=[
            callbacks.TensorBoardImages(folder / "logs", reconstructions=6, **options),
            callbacks.TensorBoardImages(folder / "every_3", every=3, **options),
            diagnostics,
        ],
    )
    return vae, folder, history, diagnostics


def _records(folder):
    """{tag: {step: (value, plugin name)}} of every event file in `folder`."""
    records = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name or None
                records.setdefault(value.tag, {})[event.step] = (
                    tf.make_ndarray(value.tensor),
                    plugin,
                )
    return records


def _png(path) -> np.ndarray:
    """A PNG file's pixels as `(height, width, channels)` uint8."""
    pixels = np.asarray(Image.open(path))
    return pixels[..., None] if pixels.ndim == 2 else pixels


def _image(record) -> np.ndarray:
    """The pixels of a `tf.summary.image`-format record: [width, height, PNG]."""
    tensor, plugin = record
    assert plugin == "images"
    width, height, png = tensor
    pixels = tf.io.decode_png(png).numpy()
    assert pixels.shape[:2] == (int(height), int(width))
    return pixels


@pytest.mark.slow
def test_tensorboard_images_are_the_pictures_workflow_draws(trained, digits, tmp_path):
    vae, folder, _, _ = trained
    records = _records(folder / "logs" / callbacks.IMAGES_RUN)
    assert sorted(records) == [
        "kl_per_dimension/z00",
        "kl_per_dimension/z01",
        "kl_per_dimension/z02",
        "reconstructions",
        "samples",
    ]
    assert all(sorted(steps) == [0, 1, 2, 3] for steps in records.values())  # the epochs

    # The last epoch's pictures are the PNGs that workflow writes for the trained model.
    samples = _image(records["samples"][3])
    workflow.write_samples(vae, RECIPE, tmp_path / "samples.png", n=10, seed=3, mean=True)
    np.testing.assert_array_equal(samples, _png(tmp_path / "samples.png"))
    reconstructions = _image(records["reconstructions"][3])
    workflow.write_reconstructions(vae, RECIPE, digits[:6], tmp_path / "reconstructions.png")
    np.testing.assert_array_equal(reconstructions, _png(tmp_path / "reconstructions.png"))
    # Which are tfvae.plots grids: 8x8 digits at zoom 7 with 7 pixels of padding; 10
    # samples in 3 rows of 4, 6 pairs in 2 rows of 8.
    expected = tfvae.plots.image_grid(
        np.asarray(vae.sample(10, seed=3, mean=True)), data_range=DATA_RANGE, padding=7, zoom=7
    )
    np.testing.assert_array_equal(samples, expected)
    assert samples.shape == (7 * (3 * 9 + 1), 7 * (4 * 9 + 1), 1)
    assert reconstructions.shape == (7 * (2 * 9 + 1), 7 * (8 * 9 + 1), 1)
    # Epoch 0's samples were drawn by the model of then: the same z, other pixels.
    assert not np.array_equal(_image(records["samples"][0]), samples)

    # The KL scalars are latent_diagnostics' of the same x.
    kl = inference.latent_diagnostics(vae, digits[:100])["kl_per_dimension"]
    for d in range(3):
        value, plugin = records[f"kl_per_dimension/z{d:02d}"][3]
        assert plugin == "scalars"
        assert float(value) == pytest.approx(kl[d], rel=1e-6)


def test_tensorboard_images_every_third_epoch(trained):
    _, folder, _, _ = trained
    records = _records(folder / "every_3" / callbacks.IMAGES_RUN)
    assert all(sorted(steps) == [2] for steps in records.values())  # epoch 3 of 4 only
    assert len(records) == 5


def test_tensorboard_images_without_a_factorizing_prior(digits, tmp_path):
    """A mixture prior has no per-dimension KL: pictures only."""
    vae = _tiny_vae(prior="mixture")
    vae.build((None, 8, 8, 1))
    images = callbacks.TensorBoardImages(tmp_path, digits[:20], n=4, data_range=DATA_RANGE)
    images.set_model(vae)
    images.on_train_begin()
    images.on_epoch_end(0)
    images.on_train_end()
    records = _records(tmp_path / callbacks.IMAGES_RUN)
    assert {tag: sorted(steps) for tag, steps in records.items()} == {
        "samples": [0],
        "reconstructions": [0],
    }


def test_latent_diagnostics_puts_active_units_into_history(trained, digits):
    vae, _, history, diagnostics = trained
    assert diagnostics.history["epoch"] == [1, 3]
    assert history.history["active_units"] == diagnostics.history["active_units"]
    final = inference.latent_diagnostics(vae, digits[:100])
    assert diagnostics.history["active_units"][-1] == final["active_units"]
    np.testing.assert_allclose(
        diagnostics.history["kl_per_dimension"][-1], final["kl_per_dimension"]
    )
    np.testing.assert_allclose(
        diagnostics.history["posterior_mean_variance"][-1], final["posterior_mean_variance"]
    )
    assert len(diagnostics.history["kl_per_dimension"][0]) == 3
    # The KLs changed between epochs 1 and 3: each entry is its own epoch's.
    assert diagnostics.history["kl_per_dimension"][0] != diagnostics.history["kl_per_dimension"][1]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"x": np.zeros((4, 8, 8))}, r"Expected x to be images of shape"),
        ({"every": 0}, "Expected every to be a positive integer"),
        ({"n": 0}, "Expected n to be a positive integer"),
        ({"data_range": (1.0, 0.0)}, r"Expected data_range to be a pair \(low, high\)"),
        ({"data_range": "ab"}, r"Expected data_range to be a pair \(low, high\)"),
        ({"seed": "zero"}, "seed"),
    ],
)
def test_tensorboard_images_checks_its_arguments(tmp_path, kwargs, message):
    arguments = {"log_dir": tmp_path, "x": np.zeros((4, 8, 8, 1)), **kwargs}
    with pytest.raises(ValueError, match=message):
        callbacks.TensorBoardImages(**arguments)


def test_latent_diagnostics_checks_its_arguments():
    with pytest.raises(ValueError, match="Expected every to be a positive integer"):
        callbacks.LatentDiagnostics(np.zeros((4, 8, 8, 1)), every=0)
    with pytest.raises(ValueError, match="Expected threshold to be"):
        callbacks.LatentDiagnostics(np.zeros((4, 8, 8, 1)), threshold=-0.1)
