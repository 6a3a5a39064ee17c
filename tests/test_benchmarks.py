"""The benchmark scripts run at toy sizes and write what benchmarks/README.md describes.

These check the scripts' bookkeeping (rows, ratios, units), not speed: speed targets are
measured by running the scripts in full, never asserted in tests.
"""

import gzip
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import idx_bytes

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
MNIST = BENCHMARKS.parent.parent / "shared" / "data" / "mnist"


def run(script: str, *args) -> None:
    """Runs a benchmark's `main` in this process, which has TensorFlow loaded already (a
    process per script cost 11 s of imports each)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    module = __import__(script.removesuffix(".py"))
    assert module.main([*map(str, args)]) == 0


@pytest.mark.slow
def test_train_throughput_rows(tmp_path):
    out = tmp_path / "train.json"
    run(
        "train_throughput.py",
        *("--models", "mlp_784-500-500-50", "--batch-sizes", "16", "--rounds", "3"),
        *("--window-seconds", "0.05", "--peak-sizes", "128", "--out", out),
    )
    rows = json.loads(out.read_text())
    assert [(r["batch_size"], r["jit_compile"]) for r in rows] == [(16, True), (16, False)]
    assert [r["default"] for r in rows] == [True, False]  # an MLP on a CPU: XLA
    # 784-500-500-50: three forward passes less the data's gradient in the first layer.
    widths = [(784, 500), (500, 500), (500, 100), (50, 500), (500, 500), (500, 784)]
    flops = 3 * sum(2 * a * b for a, b in widths) - 2 * 784 * 500
    for row in rows:
        assert row["mflop_per_example"] == pytest.approx(flops / 1e6)
        assert len(row["window_rates"]) == 3
        assert row["gflops_per_s"] == pytest.approx(row["examples_per_s"] * flops / 1e9)
        assert row["matmul_peak_gflops"] == max(
            row["tensorflow_peak_gflops"], row["onnxruntime_peak_gflops"]
        )
        assert row["peak_fraction"] == pytest.approx(
            row["gflops_per_s"] / row["matmul_peak_gflops"]
        )
    paired = np.divide(rows[0]["window_rates"], rows[1]["window_rates"])  # round by round
    assert rows[0]["xla_speedup"] == pytest.approx(np.median(paired))


@pytest.mark.slow
def test_step_profile_rows(tmp_path):
    out = tmp_path / "profile.json"
    run("step_profile.py", "--batch-sizes", "8", "--calls", "3", "--out", out)
    rows = json.loads(out.read_text())
    assert [(r["batch_size"], r["jit_compile"]) for r in rows] == [(8, True), (8, False)]
    for row in rows:
        assert 0 < row["loss_and_gradients_ms"]
        assert row["outside_loss_and_gradients_ms"] == pytest.approx(
            row["fit_step_constant_data_ms"] - row["loss_and_gradients_ms"]
        )


@pytest.mark.slow
def test_sampling_rows(tmp_path):
    out = tmp_path / "sampling.json"
    run(
        "sampling.py",
        *("--models", "mlp_784-200-200-50", "--calls", "30", "--repeats", "2"),
        *("--predict-calls", "3"),
        *("--peak-sizes", "128", "--out", out),
    )
    rows = json.loads(out.read_text())["rows"]
    assert {r["model"] for r in rows} == {"mlp_784-200-200-50"}
    for row in rows:
        assert 0 < row["p50_us"] <= row["p99_us"]
        flops = 2 * (50 * 200 + 200 * 200 + 200 * 784)
        assert row["mflop_per_sample"] == pytest.approx(flops / 1e6)
        assert row["batch_1024_gflops_per_s"] == pytest.approx(
            row["batch_1024_samples_per_s"] * flops / 1e9
        )
    savedmodel = [r for r in rows if r["path"] == "SavedModel signature"]
    assert [r["speedup_vs_savedmodel_p50"] for r in savedmodel] == [1.0]


def _first_examples_of_mnist(folder: Path, train: int, test: int) -> Path:
    """A copy of the first `train` and `test` examples of ../shared MNIST, as IDX files."""
    from tfvae.data import idx

    folder.mkdir()
    for prefix, n in (("train", train), ("t10k", test)):
        for kind, ndim in (("images-idx3", 3), ("labels-idx1", 1)):
            name = f"{prefix}-{kind}-ubyte"
            array = idx.read_idx(MNIST / f"{name}.gz", ndim=ndim, dtype=np.uint8)[:n]
            (folder / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(array)))
    return folder


@pytest.mark.slow
@pytest.mark.skipif(not MNIST.is_dir(), reason="needs MNIST in ../shared/data/mnist")
def test_mnist_nll_appends_a_run_and_saves_the_model(tmp_path):
    out = tmp_path / "nll.json"
    out.write_text(json.dumps([{"name": "an earlier attempt"}]))
    mnist = _first_examples_of_mnist(tmp_path / "mnist", train=2000, test=1000)
    options = (
        *("--epochs", "1", "--batch-size", "500", "--hidden", "32", "--num-samples", "2"),
        *("--eval-samples", "20", "--latent-dims", "4,2"),  # two layers, end to end
        *("--name", "tiny", "--workdir", tmp_path, "--out", out, "--data-dir", mnist),
    )
    run("mnist_nll.py", *options)
    run("mnist_nll.py", *options, "--evaluate-only")
    runs = json.loads(out.read_text())
    assert runs[0] == {"name": "an earlier attempt"} and len(runs) == 3
    run_, again = runs[1], runs[2]
    # --evaluate-only evaluates the same model again, with the training time it took.
    assert again["train_minutes"] == run_["train_minutes"] > 0
    assert again["test_elbo_nats"] == pytest.approx(run_["test_elbo_nats"], abs=0.5)
    assert (run_["epochs"], run_["objective"], run_["eval_samples"]) == (1, "iwae", 20)
    assert (run_["latent_dim"], run_["latent_dims"]) == (4, [4, 2])
    # The k=20 importance-weighted bound is above the ELBO (on average, over 1,000
    # examples), and the NLL below the negative ELBO.
    assert run_["test_nll_nats"] < -run_["test_elbo_nats"]
    assert (tmp_path / "saved_models" / "tiny" / "model.keras").is_file()
    assert (tmp_path / "saved_models" / "tiny" / "1" / "saved_model.pb").is_file()
    assert (tmp_path / "export" / "tiny" / "manifest.json").is_file()


@pytest.mark.slow
def test_gradient_estimators_rows(tmp_path):
    out = tmp_path / "gradients.json"
    run(
        "gradient_estimators.py",
        *("--epochs", "1", "--draws", "2", "--ks", "1", "2", "--no-xla", "--out", out),
    )
    results = json.loads(out.read_text())
    assert [r["estimator"] for r in results["training"]] == [
        "reparameterization",
        "score_function",
        "score_function_nvil",
    ]
    for weights in ("reparameterization run", "NVIL run"):
        rows = [r for r in results["variance"] if r["weights"] == weights]
        assert rows[0]["estimator"] == "reparameterization"
        for row in rows:
            assert row["ratio_to_reparameterization"] == pytest.approx(
                row["encoder_variance"] / rows[0]["encoder_variance"]
            )
    assert [r["k"] for r in results["dreg_snr"]] == [1, 2]
    for row in results["dreg_snr"]:
        assert row["dreg_lead"] == pytest.approx(
            row["dreg_encoder_snr"] / row["reparameterization_encoder_snr"]
        )


@pytest.mark.slow
def test_gpu_step_rows(tmp_path):
    """On this machine without a GPU it measures the CPU, and says so."""
    out = tmp_path / "gpu.json"
    run(
        "gpu_step.py",
        *("--models", "mlp_784-500-500-50", "--batch-sizes", "8", "--rounds", "2"),
        *("--window-seconds", "0.05", "--peak-sizes", "128", "--decode-calls", "20"),
        *("--out", out),
    )
    results = json.loads(out.read_text())
    assert results["device"] == "CPU (no GPU)"
    rows = {(r["dtype_policy"], r["jit_compile"]): r for r in results["training"]}
    assert set(rows) == {(p, j) for p in ("float32", "mixed_bfloat16") for j in (True, False)}
    peaks = results["matmul_peaks"]["best"]
    for (policy, jit_compile), row in rows.items():
        dtype = "bfloat16" if policy == "mixed_bfloat16" else "float32"
        assert (
            row["matmul_peak_gflops"]
            == peaks[dtype]
            == max(
                results["matmul_peaks"]["before"][dtype], results["matmul_peaks"]["after"][dtype]
            )
        )
        assert row["peak_fraction"] == pytest.approx(row["gflops_per_s"] / peaks[dtype])
        if jit_compile:
            paired = np.divide(row["window_rates"], rows[policy, False]["window_rates"])
            assert row["xla_speedup"] == pytest.approx(np.median(paired))
        if policy == "mixed_bfloat16":
            paired = np.divide(row["window_rates"], rows["float32", jit_compile]["window_rates"])
            assert row["mixed_speedup"] == pytest.approx(np.median(paired))
    decoding = {r["provider"]: r for r in results["decoding"]}
    assert decoding["CPUExecutionProvider"]["p50_speedup_vs_cpu"] == 1.0
    assert (
        0 < decoding["CPUExecutionProvider"]["p50_us"] <= decoding["CPUExecutionProvider"]["p99_us"]
    )


@pytest.mark.slow
def test_peers_rows_pair_each_window_with_the_peers(tmp_path):
    out = tmp_path / "peers.json"
    run(
        "peers.py",
        *("--batch-sizes", "8", "--rounds", "3", "--window-seconds", "0.02", "--no-torch"),
        *("--peak-sizes", "64", "--out", out),
    )
    rows = json.loads(out.read_text())
    assert [(r["implementation"], r["jit_compile"]) for r in rows] == [
        ("tfvae", True),
        ("keras-io", True),
        ("tfvae", False),
        ("keras-io", False),
    ]
    for tfvae_row, peer in (rows[0:2], rows[2:4]):
        ratios = np.divide(tfvae_row["window_rates"], peer["window_rates"])
        assert tfvae_row["vs_keras_io"] == pytest.approx(np.median(ratios))
        low, high = tfvae_row["vs_keras_io_quartiles"]
        assert low <= tfvae_row["vs_keras_io"] <= high
        assert len(ratios) == 3 and "vs_keras_io" not in peer
        # The same matmuls: the peer is charged tfvae's count.
        assert peer["mflop_per_example"] == tfvae_row["mflop_per_example"] > 0


@pytest.mark.slow
def test_decoding_rows_pair_rounds_and_measure_each_precision(tmp_path):
    out = tmp_path / "decoding.json"
    run(
        "decoding.py",
        *("--models", "mlp_784-200-200-50", "--calls", "5", "--repeats", "1", "--rounds", "2"),
        *("--digits-epochs", "1", "--eval-samples", "5", "--out", out),
    )
    results = json.loads(out.read_text())
    speed = results["speed"]
    assert [(r["weights"], r["options"]) for r in speed][::3] == [
        ("float32", "default"),
        ("float16", "default"),
        ("int8", "default"),
    ]
    base = speed[0]
    assert base["batch_1_speedup"] == base["batch_8_speedup"] == 1.0
    for row in speed:
        assert 0 < row["batch_1_p50_us"] <= row["batch_1_p99_us"]
        paired = np.divide(base["rounds_batch_1_p50_us"], row["rounds_batch_1_p50_us"])
        assert row["batch_1_speedup"] == pytest.approx(statistics.median(paired))
    parity = {r["weights"]: r for r in results["parity_on_digits"]}
    assert parity["float32"]["max_abs_error_mean_vs_float32"] == 0.0
    assert parity["float32"]["manifest_max_abs_error"] is None
    for weights in ("float16", "int8"):
        row = parity[weights]
        assert row["decoder_bytes"] < parity["float32"]["decoder_bytes"] / 1.9
        assert row["max_abs_error_mean_vs_float32"] > 0
        assert set(row["manifest_max_abs_error"]) == {"decoder", "encoder"}
        assert row["elbo_change_nats"] == pytest.approx(
            row["test_elbo_nats"] - parity["float32"]["test_elbo_nats"]
        )
