"""Tests for tfvae.precision: reduced-precision graphs compute what their rounding allows."""

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from tfvae import precision

RNG = np.random.default_rng(0)
W = RNG.normal(size=(6, 5)).astype(np.float32)
B = RNG.normal(size=5).astype(np.float32)


def _affine(path):
    """y = x @ W + b, with float32 x of shape (n, 6)."""
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xW"]),
        helper.make_node("Add", ["xW", "b"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "affine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 5])],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _run(path, x):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_float32_leaves_the_file_as_it_is(tmp_path):
    path = _affine(tmp_path / "a.onnx")
    before = path.read_bytes()
    precision.convert(path, "float32")
    assert path.read_bytes() == before


def test_float16_weights_compute_in_float32_from_the_rounded_weights(tmp_path):
    path = _affine(tmp_path / "a.onnx")
    size = path.stat().st_size
    precision.convert(path, "float16")
    model = onnx.load(str(path))
    assert {i.data_type for i in model.graph.initializer} == {TensorProto.FLOAT16}
    x = RNG.normal(size=(4, 6)).astype(np.float32)
    w16, b16 = (a.astype(np.float16).astype(np.float64) for a in (W, B))
    np.testing.assert_allclose(
        _run(path, x), x.astype(np.float64) @ w16 + b16, rtol=1e-5, atol=1e-5
    )
    # Not the float32 weights: the rounding shows.
    assert np.max(np.abs(_run(path, x) - (x @ W + B))) > 1e-5
    assert path.stat().st_size < size
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left


def test_int8_error_is_within_the_quantization_bound_and_not_zero(tmp_path):
    """Weights in uint8 with one scale ((max - min) / 255 of W, the range including 0),
    inputs likewise with one scale per call: each product's error is at most
    |x| dW/2 + |W| dx/2 + dW dx/4. Signed weights would exceed it where u8 x s8 products
    saturate (CPUs without AVX-512 VNNI)."""
    path = _affine(tmp_path / "a.onnx")
    precision.convert(path, "int8")
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "DynamicQuantizeLinear" in ops and "MatMul" not in ops
    x = RNG.normal(size=(256, 6)).astype(np.float32)
    exact = x.astype(np.float64) @ W + B
    weight_step = (max(W.max(), 0) - min(W.min(), 0)) / 255
    input_step = (max(x.max(), 0) - min(x.min(), 0)) / 255
    bound = (
        np.abs(x).sum(axis=1, keepdims=True) * weight_step / 2
        + np.abs(W).sum(axis=0) * input_step / 2
        + W.shape[0] * weight_step * input_step / 4
    )  # [256, 5]
    error = np.abs(_run(path, x) - exact)
    assert np.all(error <= bound * 1.01 + 1e-6)
    assert error.max() > 1e-3


def test_an_unknown_precision_is_refused_by_name(tmp_path):
    path = _affine(tmp_path / "a.onnx")
    with pytest.raises(
        ValueError, match=r"precision to be one of \['float32', 'float16', 'int8'\]"
    ):
        precision.convert(path, "bfloat16")
