"""tfvae against the VAEs users would otherwise write: the keras-io example and PyTorch's.

**keras-io** (keras.io/examples/generative/vae, Keras 3): a subclassed `keras.Model`
with a hand-written `train_step`, a `Sampling` layer, binary cross-entropy on the
decoder's sigmoid output plus the analytic KL, and three `Mean` trackers. Re-implemented
here as written, with the MLP 784-500-500-50 of train_throughput.py in place of its
convnet. It and tfvae's `VAE` (Bernoulli likelihood from logits, analytic KL) train with
`fit` and Adam(1e-3) on one binarized copy of the MNIST training images, the same
`tf.data` batches, at batch 100 and 1000, with and without XLA.

**PyTorch** (github.com/pytorch/examples, vae/main.py), when torch is installed: the
784-400-20 MLP, batch 128, eager, `loss.item()` every step as the example does, against
tfvae's VAE of the same sizes with and without XLA, on the same binarized images.

All configurations take turns in short timed windows (`train_throughput.Setup`), many
rounds, every other round in reverse order; each reports its median window, and each
ratio is the median of the ratios of paired windows (one round, one after the other),
which cancels the shared machine's drift. Achieved GFLOP/s
counts the matmuls of tfvae's step (`flops.py`), which the peers' steps share: the same
layers, and no gradient for the data.

    .venv/bin/python benchmarks/peers.py
"""

import argparse
import functools
import sys
import time
from pathlib import Path

import flops
import keras
import numpy as np
import peak
import report
import tensorflow as tf
import train_throughput
from keras import ops

KERAS_MODEL = "mlp_784-500-500-50"
TORCH_MODEL = "mlp_784-400-20"
TORCH_BATCH = 128


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[100, 1000])
    parser.add_argument("--torch-batch-size", type=int, default=TORCH_BATCH)
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    parser.add_argument("--rounds", type=int, default=20, help="timed windows per setup (20)")
    parser.add_argument("--window-seconds", type=float, default=1.0, help="per window (1)")
    parser.add_argument("--data-dir", default=str(report.REPOSITORY.parent / "shared/data/mnist"))
    parser.add_argument(
        "--peak-sizes", nargs="+", type=int, default=list(peak.SIZES), help="matmul n for the peak"
    )
    parser.add_argument("--out", help="JSON file (default results/peers.json)")
    return parser.parse_args(argv)


# ------------------------------------------------------------------ the keras-io example


class Sampling(keras.layers.Layer):
    """Uses (z_mean, z_log_var) to sample z, the vector encoding a digit."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(1337)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        batch = ops.shape(z_mean)[0]
        dim = ops.shape(z_mean)[1]
        epsilon = keras.random.normal(shape=(batch, dim), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon


class KerasIoVAE(keras.Model):
    """The keras-io example's model, as written there."""

    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

    @property
    def metrics(self):
        return [self.total_loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker]

    def train_step(self, data):
        with tf.GradientTape() as tape:
            z_mean, z_log_var, z = self.encoder(data)
            reconstruction = self.decoder(z)
            reconstruction_loss = ops.mean(
                ops.sum(keras.losses.binary_crossentropy(data, reconstruction), axis=(1, 2))
            )
            kl_loss = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
            kl_loss = ops.mean(ops.sum(kl_loss, axis=1))
            total_loss = reconstruction_loss + kl_loss
        grads = tape.gradient(total_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))  # noqa: B905
        self.total_loss_tracker.update_state(total_loss)
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.kl_loss_tracker.update_state(kl_loss)
        return {
            "loss": self.total_loss_tracker.result(),
            "reconstruction_loss": self.reconstruction_loss_tracker.result(),
            "kl_loss": self.kl_loss_tracker.result(),
        }


def keras_io_vae(model_name: str, jit_compile: bool) -> KerasIoVAE:
    """The example's encoder and decoder, with the MLP sizes of `model_name`."""
    hidden, latent_dim = train_throughput.mlp_sizes(model_name)
    encoder_inputs = keras.Input(shape=(28, 28, 1))
    h = keras.layers.Flatten()(encoder_inputs)
    for width in hidden:
        h = keras.layers.Dense(width, activation="relu")(h)
    z_mean = keras.layers.Dense(latent_dim, name="z_mean")(h)
    z_log_var = keras.layers.Dense(latent_dim, name="z_log_var")(h)
    z = Sampling()([z_mean, z_log_var])
    encoder = keras.Model(encoder_inputs, [z_mean, z_log_var, z], name="encoder")

    latent_inputs = keras.Input(shape=(latent_dim,))
    h = latent_inputs
    for width in reversed(hidden):
        h = keras.layers.Dense(width, activation="relu")(h)
    h = keras.layers.Dense(28 * 28, activation="sigmoid")(h)
    decoder_outputs = keras.layers.Reshape((28, 28, 1))(h)
    decoder = keras.Model(latent_inputs, decoder_outputs, name="decoder")

    model = KerasIoVAE(encoder, decoder)
    model.compile(optimizer=keras.optimizers.Adam(), jit_compile=jit_compile)
    return model


# ------------------------------------------------------------- PyTorch's examples/vae


class TorchSetup(train_throughput.Setup):
    """pytorch/examples vae/main.py: its model, loss and training loop."""

    def __init__(self, row, binarized: np.ndarray, flops_per_example: float):
        import torch
        from torch import nn
        from torch.nn import functional as F

        super().__init__(row, flops_per_example)
        torch.manual_seed(1)
        hidden, latent_dim = train_throughput.mlp_sizes(row["model"])
        (width,) = hidden

        class VAE(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1 = nn.Linear(784, width)
                self.fc21 = nn.Linear(width, latent_dim)
                self.fc22 = nn.Linear(width, latent_dim)
                self.fc3 = nn.Linear(latent_dim, width)
                self.fc4 = nn.Linear(width, 784)

            def encode(self, x):
                h1 = F.relu(self.fc1(x))
                return self.fc21(h1), self.fc22(h1)

            def reparameterize(self, mu, logvar):
                std = torch.exp(0.5 * logvar)
                eps = torch.randn_like(std)
                return mu + eps * std

            def decode(self, z):
                h3 = F.relu(self.fc3(z))
                return torch.sigmoid(self.fc4(h3))

            def forward(self, x):
                mu, logvar = self.encode(x.view(-1, 784))
                z = self.reparameterize(mu, logvar)
                return self.decode(z), mu, logvar

        def loss_function(recon_x, x, mu, logvar):
            BCE = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction="sum")
            KLD = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            return BCE + KLD

        self.model = VAE()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.loss_function = loss_function
        batch_size = row["batch_size"]
        images = torch.from_numpy(binarized.reshape(-1, 784))
        self.batches = list(
            torch.split(images[: len(images) // batch_size * batch_size], batch_size)
        )
        self.next_batch = 0

    def run(self, steps: int) -> list[float]:
        self.model.train()
        times = [time.perf_counter()]
        train_loss = 0.0
        for _ in range(steps):
            data = self.batches[self.next_batch]
            self.next_batch = (self.next_batch + 1) % len(self.batches)
            self.optimizer.zero_grad()
            recon_batch, mu, logvar = self.model(data)
            loss = self.loss_function(recon_batch, data, mu, logvar)
            loss.backward()
            train_loss += loss.item()
            self.optimizer.step()
            times.append(time.perf_counter())
        return times


def torch_version() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.__version__


# ----------------------------------------------------------------------------- the run


def binarized_images(data_dir) -> tuple[np.ndarray, str]:
    """The MNIST training images binarized once, float32 (60000, 28, 28, 1)."""
    images, source = train_throughput.mnist_images(data_dir)
    rng = np.random.default_rng(0)
    return (rng.random(images.shape) < images / 255.0).astype(np.float32), source


def fit_setup(
    implementation, model_name, batch_size, jit_compile, binarized
) -> train_throughput.FitSetup:
    """tfvae's or the keras-io VAE, `fit` on the binarized images in fixed batches."""
    row = {
        "implementation": implementation,
        "model": model_name,
        "batch_size": batch_size,
        "jit_compile": jit_compile,
    }
    if implementation == "tfvae":
        model = train_throughput.build(model_name, jit_compile)
    else:
        model = keras_io_vae(model_name, jit_compile)
    model.build((None, *binarized.shape[1:]))
    dataset = tf.data.Dataset.from_tensor_slices(binarized)
    dataset = dataset.batch(batch_size, drop_remainder=True).repeat().prefetch(2)
    return train_throughput.FitSetup(row, model, dataset, tfvae_flops(model_name, batch_size))


@functools.cache  # one count per model and batch size, shared by its setups
def tfvae_flops(model_name: str, batch_size: int) -> float:
    """Matmul FLOPs per example of tfvae's step for `model_name` (shared by the peers)."""
    model = train_throughput.build(model_name, jit_compile=False)
    model.build((None, 28, 28, 1))
    return flops.train_step_flops(model, np.zeros((batch_size, 28, 28, 1), np.float32)) / batch_size


def setups(args, binarized) -> list[train_throughput.Setup]:
    result = [
        fit_setup(implementation, KERAS_MODEL, batch_size, jit_compile, binarized)
        for batch_size in args.batch_sizes
        for jit_compile in (True, False)
        for implementation in ("tfvae", "keras-io")
    ]
    if torch_version() is not None and not args.no_torch:
        batch_size = args.torch_batch_size
        result += [
            fit_setup("tfvae", TORCH_MODEL, batch_size, jit_compile, binarized)
            for jit_compile in (True, False)
        ]
        row = {"implementation": "pytorch", "model": TORCH_MODEL, "batch_size": batch_size}
        result.append(TorchSetup(row, binarized, tfvae_flops(TORCH_MODEL, batch_size)))
    return result


def add_ratios(rows: list[dict]) -> None:
    """Each tfvae row gets `vs_keras_io` (or `vs_pytorch`): the median over rounds of its
    window's examples/s over the peer's window in the same round (`report.paired_ratio`),
    on the same model and batch size (and `jit_compile`, for keras-io), with the
    quartiles of those ratios."""
    peers = {
        (r["implementation"], r["model"], r["batch_size"], r.get("jit_compile")): r
        for r in rows
        if r["implementation"] != "tfvae"
    }
    for row in rows:
        if row["implementation"] != "tfvae":
            continue
        for name, key in (
            ("keras_io", ("keras-io", row["model"], row["batch_size"], row["jit_compile"])),
            ("pytorch", ("pytorch", row["model"], row["batch_size"], None)),
        ):
            if key in peers:
                own, theirs = row["window_rates"], peers[key]["window_rates"]
                row[f"vs_{name}"] = report.paired_ratio(own, theirs)
                quartiles = np.quantile(np.divide(own, theirs), [0.25, 0.75])
                row[f"vs_{name}_quartiles"] = quartiles.tolist()


def main(argv=None) -> int:
    args = parse_args(argv)
    binarized, source = binarized_images(args.data_dir)
    runs = setups(args, binarized)
    for setup in runs:
        setup.warm_up()
    peaks = [peak.matmul_peak(args.peak_sizes)]
    report.take_turns(runs, args.rounds, lambda setup: setup.measure(args.window_seconds))
    peaks.append(peak.matmul_peak(args.peak_sizes))
    best = peak.best_of(peaks)
    rows = [setup.result(best) for setup in runs]
    add_ratios(rows)
    columns = ["implementation", "model", "batch_size", "jit_compile", "first_step_seconds"]
    columns += ["examples_per_s", "peak_fraction", "vs_keras_io", "vs_pytorch"]
    report.print_table(rows, columns)
    print(f"matmul peak: {best} (GFLOP/s; before and after the windows: {peaks})")
    context = {"command": report.command(), "data": source, "machine": report.machine()}
    context["machine"]["torch"] = torch_version()
    path = Path(args.out) if args.out else None
    print(f"Wrote {report.write_results('peers', [{**r, **context} for r in rows], path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
