"""The machine's float32 matmul peak, as TensorFlow and onnxruntime achieve it.

Large square matmuls (C = A B with n x n matrices, 2 n^3 FLOPs) run back to back; the
peak is the best rate over sizes and repeats. Benchmarks compare their achieved GFLOP/s
with this peak measured in the same run, since the machine is shared and its speed
drifts.
"""

import time

import numpy as np

SIZES = (1024, 2048, 4096)


def _best_seconds(run, repeats: int) -> float:
    run()  # warm-up: allocation, kernel selection
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def tensorflow_gflops(n: int, repeats: int = 5, dtype: str = "float32") -> float:
    """GFLOP/s of TensorFlow's eager `tf.matmul` of two n x n matrices of `dtype`, on its
    default device (a GPU when there is one). The product's sum is read back, so a GPU
    has finished the matmul when the call returns; the sum's n^2 additions are not
    counted."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a = tf.cast(rng.standard_normal((n, n), dtype=np.float32), dtype)
    b = tf.cast(rng.standard_normal((n, n), dtype=np.float32), dtype)
    return 2 * n**3 / _best_seconds(lambda: tf.reduce_sum(tf.matmul(a, b)).numpy(), repeats) / 1e9


def onnxruntime_gflops(n: int, repeats: int = 5) -> float:
    """GFLOP/s of onnxruntime's float32 MatMul of two n x n matrices."""
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "matmul",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [n, n]) for name in "ab"],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    rng = np.random.default_rng(0)
    feeds = {name: rng.standard_normal((n, n), dtype=np.float32) for name in "ab"}
    return 2 * n**3 / _best_seconds(lambda: session.run(None, feeds), repeats) / 1e9


def matmul_peak(sizes=SIZES, repeats: int = 5) -> dict:
    """The best GFLOP/s of each library over `sizes`, and the better of the two."""
    rates = {
        "tensorflow_gflops": max(tensorflow_gflops(n, repeats) for n in sizes),
        "onnxruntime_gflops": max(onnxruntime_gflops(n, repeats) for n in sizes),
    }
    return {**rates, "matmul_peak_gflops": max(rates.values()), "sizes": list(sizes)}


def best_of(measurements: list[dict]) -> dict:
    """The best rate of each library over several `matmul_peak` results (taken before and
    after a benchmark), as `{tensorflow,onnxruntime,matmul}_peak_gflops`."""
    best = {
        f"{library}_peak_gflops": max(m[f"{library}_gflops"] for m in measurements)
        for library in ("tensorflow", "onnxruntime")
    }
    return {**best, "matmul_peak_gflops": max(best.values())}
