"""Training throughput of `VAE.fit`, with and without XLA, against the matmul peak.

For each model (the MLP VAE 784-500-500-50 and the conv VAE, 50 latents, Bernoulli
likelihood, Adam), batch size and `jit_compile`, a Keras `fit` runs on dynamically
binarized MNIST through `tfvae.data.make_dataset`, the pipeline users train with. After
a warm-up that compiles the step (its time reported apart), the configurations take turns
in timed windows of `--window-seconds`, `--rounds` times (`report.take_turns`); a
configuration's rate is its median window, and the XLA speedup the median of the
ratios of windows of one round (`report.paired_ratio`).

Achieved GFLOP/s = examples/s x matmul FLOPs per example, counted exactly from the
traced forward and backward graph (`flops.py`). The matmul peak is measured in the same
run (`peak.py`).

    .venv/bin/python benchmarks/train_throughput.py
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import flops
import keras
import numpy as np
import peak
import report

import tfvae
from tfvae import compiled, data, networks

MODELS = ("mlp_784-500-500-50", "conv_32-64")
BATCH_SIZES = (100, 1000)
LATENT_DIM = 50


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=list(BATCH_SIZES))
    parser.add_argument("--rounds", type=int, default=10, help="timed windows per setup (10)")
    parser.add_argument("--window-seconds", type=float, default=1.5, help="per window (1.5)")
    parser.add_argument("--data-dir", default=str(report.REPOSITORY.parent / "shared/data/mnist"))
    parser.add_argument(
        "--peak-sizes", nargs="+", type=int, default=list(peak.SIZES), help="matmul n for the peak"
    )
    parser.add_argument("--out", help="JSON file (default results/train_throughput.json)")
    return parser.parse_args(argv)


def mnist_images(data_dir) -> tuple[np.ndarray, str]:
    """The 60,000 MNIST training images, or as many random grey images if absent."""
    try:
        return data.load("mnist", split="train", data_dir=data_dir)[0], "mnist"
    except data.DatasetNotFoundError:
        rng = np.random.default_rng(0)
        return rng.integers(0, 256, (60000, 28, 28, 1), dtype=np.uint8), "random"


def mlp_sizes(model_name: str) -> tuple[tuple[int, ...], int]:
    """The hidden widths and the latent size of an MLP named like "mlp_784-500-500-50"."""
    sizes = [int(size) for size in model_name.removeprefix("mlp_").split("-")]
    return tuple(sizes[1:-1]), sizes[-1]


def build(model_name: str, jit_compile, dtype_policy: str = "float32") -> tfvae.VAE:
    """The benchmark's VAE, an MLP named by its sizes ("mlp_784-500-500-50") or the conv
    VAE ("conv_32-64", 50 latents); its networks compute in `dtype_policy`'s dtype (e.g.
    "mixed_bfloat16"), its log-probabilities in float32 whatever the policy."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(dtype_policy)
    try:
        if model_name.startswith("mlp"):
            hidden, latent_dim = mlp_sizes(model_name)
            encoder = networks.mlp_encoder(hidden=hidden, seed=0)
            decoder = networks.mlp_decoder(hidden=hidden, seed=1)
        else:
            encoder, decoder = networks.conv_encoder(seed=0), networks.conv_decoder(seed=1)
            latent_dim = LATENT_DIM
        model = tfvae.VAE(encoder, decoder, latent_dim=latent_dim, likelihood="bernoulli", seed=0)
    finally:
        keras.config.set_dtype_policy(previous)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit_compile)
    return model


class StepClock(keras.callbacks.Callback):
    """The wall time when `fit` starts and at the end of every training batch (on CPU a
    batch has finished when its end is recorded; a GPU may still be running it, so
    windows end when `fit` returns, after its logs are read back)."""

    def on_train_begin(self, logs=None):
        self.start, self.ends = time.perf_counter(), []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())


class Setup:
    """One configuration and its measurements; `run` is how it trains.

    Args:
        row: what names the configuration in the results (model, batch size, ...).
        flops_per_example: matmul FLOPs of one example's forward and backward pass.
    """

    def __init__(self, row: dict, flops_per_example: float):
        self.row = row
        self.flops_per_example = flops_per_example
        self.rates = []

    def run(self, steps: int) -> list[float]:
        """Trains `steps` steps; returns the start time and each step's end time (s)."""
        raise NotImplementedError

    def warm_up(self, steps: int = 6) -> None:
        """Compiles the step; records the first step's time and a step time estimate."""
        times = self.run(steps)
        self.row["first_step_seconds"] = times[1] - times[0]
        self.step_seconds = (times[-1] - times[2]) / (steps - 2)

    def measure(self, window_seconds: float) -> None:
        """One timed window: examples/s between the first and the last step's end."""
        steps = max(5, round(window_seconds / self.step_seconds))
        ends = self.run(steps)[1:]
        self.rates.append((len(ends) - 1) * self.row["batch_size"] / (ends[-1] - ends[0]))

    def result(self, peaks: dict) -> dict:
        examples_per_s = statistics.median(self.rates)
        gflops_per_s = examples_per_s * self.flops_per_example / 1e9
        return {
            **self.row,
            "examples_per_s": examples_per_s,
            "gflops_per_s": gflops_per_s,
            **peaks,
            "peak_fraction": gflops_per_s / peaks["matmul_peak_gflops"],
            "mflop_per_example": self.flops_per_example / 1e6,
            "window_rates": self.rates,
        }


class FitSetup(Setup):
    """A Keras model trained by `fit` on an endless batched `dataset`."""

    def __init__(self, row: dict, model: keras.Model, dataset, flops_per_example: float):
        super().__init__(row, flops_per_example)
        self.model, self.dataset = model, dataset
        self.clock = StepClock()

    def run(self, steps: int) -> list[float]:
        self.model.fit(
            self.dataset,
            epochs=1,
            steps_per_epoch=steps,
            callbacks=[self.clock],
            verbose=0,
            shuffle=False,  # the dataset is batched already
        )
        return [self.clock.start, *self.clock.ends[:-1], time.perf_counter()]


def tfvae_setup(model_name, batch_size, jit_compile, images, dtype_policy="float32") -> FitSetup:
    """tfvae's VAE `model_name` trained on `images` (uint8) binarized dynamically by
    `tfvae.data.make_dataset`, the pipeline users train with."""
    row = {"model": model_name, "batch_size": batch_size, "jit_compile": jit_compile}
    if dtype_policy != "float32":
        row["dtype_policy"] = dtype_policy
    model = build(model_name, jit_compile, dtype_policy)
    model.build((None, *images.shape[1:]))
    # Whether this is the path `compile()` takes by default here (jit_compile="auto").
    row["default"] = jit_compile == compiled.resolve_jit_compile("auto", model)
    dataset = data.make_dataset(
        images, batch_size=batch_size, seed=0, binarize="dynamic", scale=255.0, drop_remainder=True
    ).repeat()
    x = np.zeros((batch_size, *images.shape[1:]), np.float32)
    return FitSetup(row, model, dataset, flops.train_step_flops(model, x) / batch_size)


def main(argv=None) -> int:
    args = parse_args(argv)
    images, source = mnist_images(args.data_dir)
    setups = [
        tfvae_setup(name, batch_size, jit_compile, images)
        for name in args.models
        for batch_size in args.batch_sizes
        for jit_compile in (True, False)
    ]
    for setup in setups:
        setup.warm_up()
    peaks = [peak.matmul_peak(args.peak_sizes)]
    report.take_turns(setups, args.rounds, lambda setup: setup.measure(args.window_seconds))
    peaks.append(peak.matmul_peak(args.peak_sizes))
    best = peak.best_of(peaks)
    rows = [setup.result(best) for setup in setups]
    rates = {(r["model"], r["batch_size"], r["jit_compile"]): r["window_rates"] for r in rows}
    for row in rows:
        if row["jit_compile"]:
            without_xla = rates[(row["model"], row["batch_size"], False)]
            row["xla_speedup"] = report.paired_ratio(row["window_rates"], without_xla)
    columns = ["model", "batch_size", "jit_compile", "default", "first_step_seconds"]
    columns += ["examples_per_s"]
    report.print_table(rows, [*columns, "gflops_per_s", "peak_fraction", "xla_speedup"])
    print(f"matmul peak: {best} (GFLOP/s; before and after the windows: {peaks})")
    context = {"command": report.command(), "data": source, "machine": report.machine()}
    rows = [{**row, **context} for row in rows]
    path = Path(args.out) if args.out else None
    print(f"Wrote {report.write_results('train_throughput', rows, path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
