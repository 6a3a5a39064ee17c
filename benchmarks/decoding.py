"""Batch-1 and small-batch decoding: session options and reduced-precision weights against
the float32 bundle with onnxruntime's default options.

Speed: the decoders of sampling.py's two MLP VAEs (784-500-500-50 and 784-200-200-50,
seeded weights: speed does not depend on their values), exported with float32, float16
and int8 weights (`tfvae.precision`) and opened by `runtime.Sampler.load` with the
default options, with one thread, and with one thread that does not spin. For each: p50
and p99 of `Sampler.decode` at batch 1 and 8 (`--calls` calls a round), and samples/s at
batch 1024. The configurations take turns, `--rounds` times, every other round in
reverse order; each reports its median round, and each speedup is the median over
rounds of the ratio to the float32 default in the same round (pairing cancels the
shared machine's drift).

Parity, on the embedded digits: the default digits model (`tfvae train`, binomial,
256-256, 8 latents; `--digits-epochs`) exported at each precision. For each bundle: the
max abs error of E[x|z] against the float32 bundle on 10,000 z ~ p(z), and the test ELBO
and log-likelihood (`Sampler.elbo`, `Sampler.log_likelihood`) with the same seeds, so
that the difference is the precision's.

    .venv/bin/python benchmarks/decoding.py
"""

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import report
import sampling
import train_throughput

from tfvae import data, export, precision, runtime, workflow
from tfvae.config import TrainConfig

OPTIONS = {
    "default": {},
    "1 thread": {"threads": 1},
    "1 thread, no spinning": {"threads": 1, "spinning": False},
}
BATCH_SIZES = (1, 8)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", nargs="+", choices=sampling.MODELS, default=list(sampling.MODELS)
    )
    parser.add_argument("--calls", type=int, default=300, help="calls per round (300)")
    parser.add_argument("--repeats", type=int, default=5, help="batch-1024 calls per round")
    parser.add_argument("--rounds", type=int, default=30, help="turns of every setup (30)")
    parser.add_argument("--digits-epochs", type=int, default=100, help="(the default, 100)")
    parser.add_argument("--eval-samples", type=int, default=1000, help="k of log p(x)")
    parser.add_argument("--out", help="JSON file (default results/decoding.json)")
    return parser.parse_args(argv)


def export_all(model, folder: Path, **kwargs) -> dict[str, Path]:
    """`model` exported once per precision into `folder`: `{precision: bundle}`."""
    return {
        weights: export.export_model(
            model,
            out_dir=folder / weights,
            saved_model_dir=folder / f"saved_{weights}",
            weights=weights,
            **kwargs,
        )
        for weights in precision.PRECISIONS
    }


def speed_rows(args, folder: Path) -> list[dict]:
    rng = np.random.default_rng(0)
    setups = []
    for name in args.models:
        model = train_throughput.build(name, jit_compile=False)
        model.build((None, 28, 28, 1))
        bundles = export_all(model, folder / name, components=("decoder",))
        for weights, bundle in bundles.items():
            for options_name, options in OPTIONS.items():
                row = {"model": name, "weights": weights, "options": options_name}
                setups.append((row, runtime.Sampler.load(bundle, **options).decode, []))
    inputs = {n: rng.standard_normal((n, 50), dtype=np.float32) for n in (*BATCH_SIZES, 1024)}

    def measure(setup) -> None:
        _, decode, rounds = setup
        measured = {}
        for n in BATCH_SIZES:
            latency = sampling.latency_us(decode, inputs[n], args.calls)
            measured.update({f"batch_{n}_{k}": v for k, v in latency.items()})
        measured["batch_1024_samples_per_s"] = sampling.samples_per_s(
            decode, inputs[1024], args.repeats
        )
        rounds.append(measured)

    report.take_turns(setups, args.rounds, measure)
    rows = []
    for row, _, rounds in setups:
        row.update({key: statistics.median(r[key] for r in rounds) for key in rounds[0]})
        row["rounds_batch_1_p50_us"] = [r["batch_1_p50_us"] for r in rounds]
        rows.append((row, rounds))
    for row, rounds in rows:
        base_rounds = next(
            base
            for r, base in rows
            if (r["model"], r["weights"], r["options"]) == (row["model"], "float32", "default")
        )
        for n in BATCH_SIZES:  # a time: the base's over the row's
            key = f"batch_{n}_p50_us"
            row[f"batch_{n}_speedup"] = report.paired_ratio(
                [r[key] for r in base_rounds], [r[key] for r in rounds]
            )
        key = "batch_1024_samples_per_s"
        row["batch_1024_speedup"] = report.paired_ratio(
            [r[key] for r in rounds], [r[key] for r in base_rounds]
        )
    return [row for row, _ in rows]


def parity_rows(args, folder: Path) -> list[dict]:
    config = TrainConfig(epochs=args.digits_epochs, out=str(folder / "digits"))
    workflow.train(config, verbose=0)
    model, recipe, config = workflow.load(folder / "digits")
    x_test, _ = data.load(config.dataset, split="test")
    x = workflow.model_input(x_test, recipe)
    bundles = export_all(model, folder / "bundles", x_reference=x, data_range=recipe.data_range)
    samplers = {weights: runtime.Sampler.load(bundle) for weights, bundle in bundles.items()}
    z = samplers["float32"].sample_latents(10_000, seed=0)
    reference = samplers["float32"].mean(z)
    rows = []
    for weights, sampler in samplers.items():
        manifest = sampler.manifest
        rows.append(
            {
                "weights": weights,
                "decoder_bytes": (bundles[weights] / "decoder.onnx").stat().st_size,
                "encoder_bytes": (bundles[weights] / "encoder.onnx").stat().st_size,
                "max_abs_error_mean_vs_float32": float(np.max(np.abs(sampler.mean(z) - reference))),
                "manifest_max_abs_error": manifest["weights"].get("max_abs_error"),
                "test_elbo_nats": float(np.mean(sampler.elbo(x, num_samples=100, seed=0))),
                "test_log_likelihood_nats": float(
                    np.mean(sampler.log_likelihood(x, num_samples=args.eval_samples, seed=0))
                ),
                "test_examples": len(x),
            }
        )
    for row in rows:
        row["elbo_change_nats"] = row["test_elbo_nats"] - rows[0]["test_elbo_nats"]
        row["log_likelihood_change_nats"] = (
            row["test_log_likelihood_nats"] - rows[0]["test_log_likelihood_nats"]
        )
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        speed = speed_rows(args, Path(folder))
        columns = ["model", "weights", "options", "batch_1_p50_us", "batch_1_p99_us"]
        columns += ["batch_8_p50_us", "batch_1024_samples_per_s", "batch_1_speedup"]
        report.print_table(speed, [*columns, "batch_8_speedup", "batch_1024_speedup"])
        parity = parity_rows(args, Path(folder))
    columns = ["weights", "decoder_bytes", "max_abs_error_mean_vs_float32", "test_elbo_nats"]
    report.print_table(parity, [*columns, "elbo_change_nats", "log_likelihood_change_nats"])
    results = {
        "command": report.command(),
        "machine": report.machine(),
        "speed": speed,
        "parity_on_digits": parity,
    }
    path = Path(args.out) if args.out else None
    print(f"Wrote {report.write_results('decoding', results, path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
