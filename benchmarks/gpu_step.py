"""The training step on a GPU: XLA against non-XLA, mixed precision against float32, the
achieved FLOP/s against the matmul peak, and onnxruntime's CUDA decoding against its CPU's.

The MLP VAE (784-500-500-50) and the conv VAE train with `fit` on dynamically binarized
MNIST at batch 100 and 1000, with and without XLA, with their networks in float32 and in
"mixed_bfloat16" (bfloat16 compute and float32 variables; tfvae keeps log-probabilities
in float32). The configurations take turns in timed windows (`train_throughput.FitSetup`);
each window ends when `fit` returns, so a GPU has finished its steps. Achieved GFLOP/s
are compared with the matmul peak of the compute dtype (float32 or bfloat16), measured
in the same run before and after the windows.

Decoding: the MLP decoder's ONNX bundle (`tfvae.export`) served by `runtime.Sampler`
with each execution provider onnxruntime has here (CUDA where installed, and CPU): p50
latency at batch 1 and samples/s at batch 1000.

Without a GPU it measures the same on the CPU, which the JSON's `device` says.

    .venv/bin/python benchmarks/gpu_step.py
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime
import peak
import report
import sampling
import tensorflow as tf
import train_throughput

from tfvae import export, runtime

POLICIES = ("float32", "mixed_bfloat16")
PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", nargs="+", choices=train_throughput.MODELS, default=train_throughput.MODELS
    )
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[100, 1000])
    parser.add_argument("--policies", nargs="+", choices=POLICIES, default=list(POLICIES))
    parser.add_argument("--rounds", type=int, default=3, help="timed windows per setup (3)")
    parser.add_argument("--window-seconds", type=float, default=2.0, help="per window (2)")
    parser.add_argument("--data-dir", default=str(report.REPOSITORY.parent / "shared/data/mnist"))
    parser.add_argument("--peak-sizes", nargs="+", type=int, default=[2048, 4096, 8192])
    parser.add_argument("--decode-calls", type=int, default=1000, help="batch-1 calls (1000)")
    parser.add_argument("--out", help="JSON file (default results/gpu_step.json)")
    return parser.parse_args(argv)


def matmul_peaks(sizes) -> dict:
    """The best TensorFlow matmul GFLOP/s in float32 and in bfloat16, on its device."""
    return {
        dtype: max(peak.tensorflow_gflops(n, dtype=dtype) for n in sizes)
        for dtype in ("float32", "bfloat16")
    }


def training_rows(args, images) -> tuple[list[dict], dict]:
    setups = [
        train_throughput.tfvae_setup(name, batch_size, jit_compile, images, policy)
        for name in args.models
        for batch_size in args.batch_sizes
        for policy in args.policies
        for jit_compile in (True, False)
    ]
    for setup in setups:
        setup.warm_up()
    before = matmul_peaks(args.peak_sizes)
    report.take_turns(setups, args.rounds, lambda setup: setup.measure(args.window_seconds))
    after = matmul_peaks(args.peak_sizes)
    peaks = {dtype: max(before[dtype], after[dtype]) for dtype in before}
    rows = []
    for setup in setups:
        dtype = "bfloat16" if setup.model.dtype_policy.compute_dtype == "bfloat16" else "float32"
        row = setup.result({"matmul_peak_gflops": peaks[dtype], "peak_dtype": dtype})
        rows.append({"dtype_policy": "float32", **row})
    rates = {_key(r): r["window_rates"] for r in rows}
    for row in rows:
        key, own = _key(row), row["window_rates"]
        if row["jit_compile"]:
            row["xla_speedup"] = report.paired_ratio(own, rates[(*key[:2], key[2], False)])
        if row["dtype_policy"] != "float32" and (*key[:2], "float32", key[3]) in rates:
            row["mixed_speedup"] = report.paired_ratio(own, rates[(*key[:2], "float32", key[3])])
    return rows, {"before": before, "after": after, "best": peaks}


def _key(row) -> tuple:
    return row["model"], row["batch_size"], row["dtype_policy"], row["jit_compile"]


def decoding_rows(args) -> list[dict]:
    """Batch-1 latency and batch-1000 throughput of the MLP decoder per ORT provider."""
    model = train_throughput.build("mlp_784-500-500-50", jit_compile=True)
    model.build((None, 28, 28, 1))
    rng = np.random.default_rng(0)
    z1 = rng.standard_normal((1, train_throughput.LATENT_DIM), dtype=np.float32)
    z1000 = rng.standard_normal((1000, train_throughput.LATENT_DIM), dtype=np.float32)
    available = onnxruntime.get_available_providers()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        bundle = Path(folder) / "bundle"
        export.export_model(model, out_dir=bundle, saved_model_dir=Path(folder) / "saved")
        for provider in PROVIDERS:
            if provider not in available:
                rows.append({"provider": provider, "available": False})
                continue
            decode = runtime.Sampler.load(bundle, providers=[provider]).decode
            rows.append(
                {
                    "provider": provider,
                    "available": True,
                    **sampling.latency_us(decode, z1, args.decode_calls),
                    "batch_1000_samples_per_s": sampling.samples_per_s(decode, z1000, 5),
                }
            )
    cpu = next(r for r in rows if r["provider"] == "CPUExecutionProvider")
    for row in rows:
        if row["available"]:
            row["p50_speedup_vs_cpu"] = cpu["p50_us"] / row["p50_us"]
            row["throughput_vs_cpu"] = (
                row["batch_1000_samples_per_s"] / cpu["batch_1000_samples_per_s"]
            )
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    gpus = tf.config.list_physical_devices("GPU")
    device = (
        tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
        if gpus
        else "CPU (no GPU)"
    )
    images, source = train_throughput.mnist_images(args.data_dir)
    training, peaks = training_rows(args, images)
    columns = ["model", "batch_size", "dtype_policy", "jit_compile", "examples_per_s"]
    columns += ["gflops_per_s", "peak_fraction", "xla_speedup", "mixed_speedup"]
    report.print_table(training, columns)
    print(f"matmul peaks (GFLOP/s): {peaks}")
    decoding = decoding_rows(args)
    report.print_table(
        decoding, ["provider", "available", "p50_us", "p99_us", "p50_speedup_vs_cpu"]
    )
    results = {
        "device": device,
        "command": report.command(),
        "data": source,
        "machine": report.machine(),
        "matmul_peaks": peaks,
        "training": training,
        "decoding": decoding,
    }
    path = Path(args.out) if args.out else None
    print(f"Wrote {report.write_results('gpu_step', results, path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
