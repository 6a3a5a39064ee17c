"""Decoder latency and throughput: onnxruntime against three TensorFlow paths.

The decoders of two MLP VAEs with 50 latents and a Bernoulli likelihood, 784-500-500-50
(as in train_throughput.py) and 784-200-200-50 (as in mnist_nll.py), with seeded weights
(speed does not depend on their values), map z to E[x|z] through:

    runtime.Sampler.decode        the exported ONNX decoder in onnxruntime (numpy in/out),
                                  with onnxruntime's default threads and with 1 thread
    runtime.Sampler.sample        the same plus numpy draws of z and of x ~ p(x|z)
    SavedModel signature          `decode` of the exported SavedModel, via tf.saved_model.load
    tf.function(model.decode)     `model.decode(z).mean()` traced once
    model.predict                 a Keras model around `model.decode`, `predict(z)`

Each path gets numpy z and returns numpy arrays. Batch 1: the p50 and p99 of
`--calls` single calls after a warm-up. Batch 1024: the median of `--repeats` calls,
as samples/s and GFLOP/s of the decoder's matmuls (`flops.py`) against the matmul peak
measured in the same run (`peak.py`).

    .venv/bin/python benchmarks/sampling.py
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import flops
import keras
import numpy as np
import peak
import report
import tensorflow as tf

import tfvae
from tfvae import export, networks, runtime

LATENT_DIM = 50
MODELS = {"mlp_784-500-500-50": (500, 500), "mlp_784-200-200-50": (200, 200)}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--calls", type=int, default=5000, help="batch-1 calls per path")
    parser.add_argument("--repeats", type=int, default=30, help="batch-1024 calls per path")
    parser.add_argument("--predict-calls", type=int, default=300, help="model.predict's")
    parser.add_argument(
        "--peak-sizes", nargs="+", type=int, default=list(peak.SIZES), help="matmul n for the peak"
    )
    parser.add_argument("--out", help="JSON file (default results/sampling.json)")
    return parser.parse_args(argv)


class DecoderMean(keras.Model):
    """z `(batch, latent_dim)` -> E[x|z] `(batch, 28, 28, 1)`, so `predict` can decode."""

    def __init__(self, vae: tfvae.VAE):
        super().__init__()
        self.vae = vae

    def call(self, z):
        return self.vae.decode(z).mean()


def latency_us(decode, z: np.ndarray, calls: int) -> dict:
    """p50 and p99 wall time of `decode(z)` in microseconds, after 100 warm-up calls."""
    for _ in range(100):
        decode(z)
    times = np.empty(calls)
    for i in range(calls):
        start = time.perf_counter_ns()
        decode(z)
        times[i] = time.perf_counter_ns() - start
    return {"p50_us": np.percentile(times, 50) / 1e3, "p99_us": np.percentile(times, 99) / 1e3}


def samples_per_s(decode, z: np.ndarray, repeats: int) -> float:
    """Decoded samples per second at batch `len(z)`, from the median of `repeats` calls."""
    decode(z)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        decode(z)
        times.append(time.perf_counter() - start)
    return len(z) / statistics.median(times)


def decoders(model: tfvae.VAE, bundle: Path, saved_model: Path) -> dict:
    """Each path as a function of numpy z that returns numpy E[x|z] (and more)."""
    sampler = runtime.Sampler.load(bundle)
    sampler_1_thread = runtime.Sampler.load(bundle, threads=1)
    signature = tf.saved_model.load(str(saved_model)).signatures["decode"]
    traced = tf.function(lambda z: model.decode(z).mean())
    keras_decoder = DecoderMean(model)
    return {
        "runtime.Sampler.decode": sampler.decode,
        "runtime.Sampler.decode (1 thread)": sampler_1_thread.decode,
        "runtime.Sampler.sample": lambda z: sampler.sample(len(z), seed=0),
        "SavedModel signature": lambda z: {
            key: value.numpy() for key, value in signature(z=tf.constant(z)).items()
        },
        "tf.function(model.decode)": lambda z: traced(tf.constant(z)).numpy(),
        "model.predict": lambda z: keras_decoder.predict(z, batch_size=len(z), verbose=0),
    }


def measure(name: str, hidden: tuple[int, ...], args) -> list[dict]:
    """One row per path for the decoder of the MLP VAE `name`."""
    model = tfvae.VAE(
        networks.mlp_encoder(hidden=hidden, seed=0),
        networks.mlp_decoder(hidden=hidden, seed=1),
        latent_dim=LATENT_DIM,
        likelihood="bernoulli",
        seed=0,
    )
    model.build((None, 28, 28, 1))
    rng = np.random.default_rng(0)
    z1 = rng.standard_normal((1, LATENT_DIM), dtype=np.float32)
    z1024 = rng.standard_normal((1024, LATENT_DIM), dtype=np.float32)
    flops_per_sample = flops.function_flops(lambda z: model.decode(z).mean(), z1024) / 1024
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        export.export_model(
            model, out_dir=folder / "bundle", saved_model_dir=folder / "saved", name=name
        )
        for path, decode in decoders(model, folder / "bundle", folder / "saved" / "1").items():
            calls = args.predict_calls if path == "model.predict" else args.calls
            rate = samples_per_s(decode, z1024, args.repeats)
            rows.append(
                {
                    "model": name,
                    "path": path,
                    **latency_us(decode, z1, calls),
                    "batch_1024_samples_per_s": rate,
                    "batch_1024_gflops_per_s": rate * flops_per_sample / 1e9,
                    "mflop_per_sample": flops_per_sample / 1e6,
                }
            )
    savedmodel_p50 = next(r["p50_us"] for r in rows if r["path"] == "SavedModel signature")
    for row in rows:
        row["speedup_vs_savedmodel_p50"] = savedmodel_p50 / row["p50_us"]
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    peaks = [peak.matmul_peak(args.peak_sizes)]
    rows = [row for name in args.models for row in measure(name, MODELS[name], args)]
    peaks.append(peak.matmul_peak(args.peak_sizes))
    best = peak.best_of(peaks)
    for row in rows:
        row.update(best)
        fraction = row["batch_1024_gflops_per_s"] / best["matmul_peak_gflops"]
        row["batch_1024_peak_fraction"] = fraction
    columns = ["model", "path", "p50_us", "p99_us", "speedup_vs_savedmodel_p50"]
    report.print_table(rows, [*columns, "batch_1024_samples_per_s", "batch_1024_peak_fraction"])
    print(f"matmul peak: {best} (GFLOP/s; before and after: {peaks})")
    results = {
        "command": report.command(),
        "machine": report.machine(),
        "peaks": peaks,
        "rows": rows,
    }
    path = Path(args.out) if args.out else None
    print(f"Wrote {report.write_results('sampling', results, path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
