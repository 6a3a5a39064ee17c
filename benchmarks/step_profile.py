"""Where a training step's time goes, with and without XLA: the loss-and-gradient
computation alone against a whole Keras `fit` step on constant data.

For the MLP VAE 784-500-500-50 of train_throughput.py, at each batch size: the median
time of `VAE._loss_and_gradients` (forward, backward) as its own `tf.function`, and the
median time between batch ends of `fit` on one constant batch repeated (which adds the
Adam update, the metrics and Keras's loop, but no input pipeline). train_throughput.py's
rows, on the real pipeline, then show what the pipeline costs.

    .venv/bin/python benchmarks/step_profile.py
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import report
import tensorflow as tf
import train_throughput


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[100, 1000])
    parser.add_argument("--calls", type=int, default=100, help="calls per timing (100)")
    parser.add_argument("--out", help="JSON file (default results/step_profile.json)")
    return parser.parse_args(argv)


def median_ms(function, calls: int, repeats: int = 5) -> float:
    """Median over `repeats` of the mean time of `calls` calls, in milliseconds."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            function()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times) * 1e3


def profile(batch_size: int, jit_compile: bool, calls: int) -> dict:
    model = train_throughput.build("mlp_784-500-500-50", jit_compile)
    model.build((None, 28, 28, 1))
    rng = np.random.default_rng(0)
    x = tf.constant((rng.random((batch_size, 28, 28, 1)) < 0.5).astype(np.float32))
    seed = tf.constant([1, 2], tf.int32)
    loss_and_gradients = tf.function(
        lambda x: model._loss_and_gradients(x, None, None, seed, model.current_beta()),
        jit_compile=jit_compile,
    )
    constant = tf.data.Dataset.from_tensors(x).repeat()
    model.fit(constant, steps_per_epoch=3, verbose=0)  # compiles the step
    clock = train_throughput.StepClock()
    model.fit(constant, steps_per_epoch=calls + 1, callbacks=[clock], verbose=0)
    step_ms = np.median(np.diff(clock.ends)) * 1e3  # between batch ends: no fit set-up
    return {
        "batch_size": batch_size,
        "jit_compile": jit_compile,
        "loss_and_gradients_ms": median_ms(lambda: loss_and_gradients(x), calls),
        "fit_step_constant_data_ms": float(step_ms),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    rows = [
        profile(batch_size, jit_compile, args.calls)
        for batch_size in args.batch_sizes
        for jit_compile in (True, False)
    ]
    for row in rows:
        row["outside_loss_and_gradients_ms"] = (
            row["fit_step_constant_data_ms"] - row["loss_and_gradients_ms"]
        )
    columns = ["batch_size", "jit_compile", "loss_and_gradients_ms", "fit_step_constant_data_ms"]
    report.print_table(rows, [*columns, "outside_loss_and_gradients_ms"])
    context = {"command": report.command(), "machine": report.machine()}
    path = Path(args.out) if args.out else None
    print(f"Wrote {report.write_results('step_profile', [{**r, **context} for r in rows], path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
