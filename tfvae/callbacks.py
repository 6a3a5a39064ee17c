"""Keras callbacks for VAE training: what the latent space and the pictures do per epoch.

    - `LatentDiagnostics`: active units (Burda et al., 2015) in the epoch logs, so in
      `History`, TensorBoard and the progress bar; per-dimension KLs kept per epoch.
    - `TensorBoardImages`: prior samples, reconstructions and per-dimension KLs as
      TensorBoard image and scalar summaries, drawn as `tfvae.workflow` draws its PNGs.

Both are ordinary `keras.callbacks.Callback`s: `vae.fit(x, callbacks=[...])`. Put
`LatentDiagnostics` before `keras.callbacks.TensorBoard` in the list for TensorBoard to
see `active_units` (Keras passes one `logs` dict along the list, in order).
"""

from pathlib import Path

import tfvae._backend  # noqa: F401

import keras
import numpy as np
import tensorflow as tf

from tfvae import inference, plots, random, validation

# The folder, inside `log_dir`, of `TensorBoardImages`'s event file. Keras's TensorBoard
# callback writes to `log_dir/train` and `log_dir/validation`; TensorBoard by default
# polls only the newest event file of a folder for new data, so a second writer in
# `train` would stall one of the two. `images` shows in TensorBoard as a run of its own.
IMAGES_RUN = "images"


class LatentDiagnostics(keras.callbacks.Callback):
    """Counts active latent units at the end of every `every`-th epoch.

    Runs `tfvae.inference.latent_diagnostics` on `x` and puts `active_units` (an int)
    into the epoch's `logs`, so it lands in `History.history["active_units"]`, Keras's
    TensorBoard scalars (`epoch_active_units`) and the progress bar. With `every` > 1 it
    is there only on the epochs diagnosed, as Keras's `validation_freq` does with `val_`
    metrics. `history` keeps, per diagnosed epoch, everything the diagnostics report,
    for the caller to save (e.g. next to `history.json`).

    Args:
        x: data to diagnose, an array `(n, *data_shape)` or a `tf.data.Dataset` (see
            `latent_diagnostics`), in the likelihood's support.
        every: diagnose at the end of epochs every, 2 every, ... (1-based), >= 1.
        batch_size: examples per batch (arrays only).
        threshold: the variance of the posterior mean above which a unit is active.
        seed: seed of the latent samples of a Monte Carlo KL.
        condition: for a conditional model, the conditions of an array `x`.

    Attributes:
        history: a dict of lists, one entry per diagnosed epoch: `epoch` (0-based, as
            Keras counts), `active_units`, `active_dimensions`, `kl_per_dimension` (a
            list of `latent_dim` floats, or None) and `posterior_mean_variance`.

    Example:

    >>> diagnostics = tfvae.callbacks.LatentDiagnostics(x_test[:1000], every=5)
    >>> history = vae.fit(x_train, epochs=20, callbacks=[diagnostics])
    >>> history.history["active_units"], diagnostics.history["kl_per_dimension"]
    """

    def __init__(self, x, every=1, batch_size=100, threshold=0.01, seed=0, condition=None):
        every = validation.positive_int(every, "every")
        batch_size = validation.positive_int(batch_size, "batch_size")
        threshold = validation.non_negative_float(threshold, "threshold")
        random.as_seed(seed)  # fails now on a bad seed, not after the first epoch
        super().__init__()
        self.x = x
        self.every = every
        self.batch_size = batch_size
        self.threshold = threshold
        self.seed = seed
        self.condition = condition
        self.history = {
            key: []
            for key in (
                "epoch",
                "active_units",
                "active_dimensions",
                "kl_per_dimension",
                "posterior_mean_variance",
            )
        }

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        diagnostics = inference.latent_diagnostics(
            self.model,
            self.x,
            batch_size=self.batch_size,
            threshold=self.threshold,
            seed=self.seed,
            condition=self.condition,
        )
        self.history["epoch"].append(epoch)
        for key, value in diagnostics.items():
            self.history[key].append(value)
        if logs is not None:
            logs["active_units"] = diagnostics["active_units"]


class TensorBoardImages(keras.callbacks.Callback):
    """Writes prior samples, reconstructions and per-dimension KLs for TensorBoard.

    At the end of every `every`-th epoch (step = the 0-based epoch, as Keras's
    TensorBoard callback counts) it writes, to an event file in `log_dir/images`:

        - image `samples`: E[x|z] for `n` draws z ~ p(z) with `seed`, the pixels of
          `tfvae.workflow.write_samples(..., n=n, seed=seed, mean=True)`;
        - image `reconstructions`: the first `reconstructions` images of `x` beside their
          reconstruction means, pairs in rows of 4, the pixels of
          `tfvae.workflow.write_reconstructions`;
        - scalars `kl_per_dimension/z00`, `z01`, ...: the mean KL(q(z_d|x) || p(z_d))
          over all of `x` (`tfvae.inference.latent_diagnostics`), when q and p factorize.

    Grids are `tfvae.plots`' uint8 arrays, zoomed as `plots.save_image_grid` zooms them,
    stored as PNG (lossless) in TensorBoard's image format. The same seed every epoch
    shows how E[x|z] changes for fixed z. Unconditional image models only.

    Args:
        log_dir: the TensorBoard log folder (the one given to
            `keras.callbacks.TensorBoard`, if any).
        x: `(m, height, width, channels)` model-input images (channels 1 or 3).
        every: write at the end of epochs every, 2 every, ... (1-based), >= 1.
        n: number of prior samples.
        seed: int or `(2,)` seed of the prior draws, the same every epoch.
        data_range: `(low, high)` model-input values shown as black and white (the
            recipe's `data_range`, e.g. `(0, 16)` for digit counts).
        reconstructions: how many images of `x` to reconstruct (at most all of them).
        batch_size: examples per batch of the KL diagnostics.

    Example:

    >>> images = tfvae.callbacks.TensorBoardImages("logs", x_test[:500], every=5)
    >>> vae.fit(x_train, epochs=20, callbacks=[images])
    """

    def __init__(
        self,
        log_dir,
        x,
        every=1,
        n=64,
        seed=0,
        data_range=(0.0, 1.0),
        reconstructions=32,
        batch_size=100,
    ):
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 4 or x.shape[-1] not in (1, 3) or len(x) == 0:
            raise ValueError(
                "Expected x to be images of shape (m, height, width, 1 or 3) with m >= 1. "
                f"Received: x.shape={x.shape}"
            )
        every = validation.positive_int(every, "every")
        n = validation.positive_int(n, "n")
        reconstructions = validation.positive_int(reconstructions, "reconstructions")
        batch_size = validation.positive_int(batch_size, "batch_size")
        random.as_seed(seed)  # fails now on a bad seed, not after the first epoch
        low, high = validation.value_range(data_range, "data_range")
        super().__init__()
        self.log_dir = Path(log_dir)
        self.x = x
        self.every = every
        self.n = n
        self.seed = seed
        self.data_range = (low, high)
        self.reconstructions = min(reconstructions, len(x))
        self.batch_size = batch_size
        self._writer = None

    def on_train_begin(self, logs=None):
        if self.model.condition_shape is not None:
            raise ValueError(
                "Expected an unconditional model for TensorBoardImages. Received: a model "
                f"with condition_shape={self.model.condition_shape}"
            )
        self._writer = tf.summary.create_file_writer(str(self.log_dir / IMAGES_RUN))

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        model = self.model
        samples = np.asarray(model.sample(self.n, seed=self.seed, mean=True))
        x = self.x[: self.reconstructions]
        # The model called, not `predict`, a collective of all workers under a multi-worker
        # strategy: only the chief writes TensorBoard logs.
        pairs = plots.interleave(x, np.asarray(model(x)))
        diagnostics = inference.latent_diagnostics(model, self.x, batch_size=self.batch_size)
        kl_per_dimension = diagnostics["kl_per_dimension"] or []
        digits = max(2, len(str(model.latent_dim - 1)))
        with self._writer.as_default(step=epoch):
            grids = {
                "samples": plots.zoomed_grid(samples, self.data_range),
                "reconstructions": plots.zoomed_grid(
                    pairs, self.data_range, plots.RECONSTRUCTION_COLUMNS
                ),
            }
            for tag, grid in grids.items():
                tf.summary.image(tag, grid[None])  # [1, H, W, C] uint8: pixels as drawn
            for d, kl in enumerate(kl_per_dimension):
                tf.summary.scalar(f"kl_per_dimension/z{d:0{digits}d}", kl)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
