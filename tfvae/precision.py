"""Reduced-precision ONNX graphs for an export bundle: float16 weights, or int8 weights.

`tfvae.export.export_model(..., weights=...)` converts each ONNX network it has checked
in float32 with `convert`, then measures the converted network against the Keras model
and records that parity in the manifest. The graphs stay plain ONNX with float32 inputs
and outputs, so `tfvae.runtime.Sampler` serves them unchanged.

    "float32"   the exported graph as it is (the default)
    "float16"   every float32 weight stored as float16 and cast back to float32 in the
                graph: half the file size; onnxruntime folds the casts when it loads the
                graph, so it computes in float32 from the rounded weights, at the speed
                of float32
    "int8"      onnxruntime's dynamic quantization (`quantize_dynamic`): the weights of
                the MatMul and Gemm nodes in 8 bits with one scale and zero point per
                matrix, their inputs likewise, quantized at each call from their own
                range. A quarter of the weights' bytes and integer matmuls, faster at
                small batches; convolutions stay float32. The weights are unsigned
                (uint8): signed ones saturate the u8 x s8 products of CPUs without
                AVX-512 VNNI (an error of 0.9 on a 6x5 affine map, against 0.07), and
                with 7 bits to avoid that, they doubled the error on the digits. A
                scale per column was a little more accurate but as slow as float32 at
                batch 1 (benchmarks/README.md)

Example:
    >>> convert(Path("export/digits/decoder.onnx"), "int8")   # rewrites the file
"""

import logging
import os
import tempfile
from pathlib import Path

from tfvae import validation

PRECISIONS = ("float32", "float16", "int8")
# What each precision records in the manifest as its method.
METHODS = {
    "float32": "as exported",
    "float16": "float16 weights, cast to float32 in the graph",
    "int8": "onnxruntime quantize_dynamic: uint8 MatMul/Gemm weights, one scale per "
    "matrix; uint8 inputs quantized per call",
}


def check(precision: str, argument: str = "precision") -> str:
    """`precision` if it is one of `PRECISIONS`; else a ValueError naming `argument` and
    them."""
    return validation.one_of(precision, PRECISIONS, argument)


def convert(path: Path, precision: str) -> None:
    """Rewrites the ONNX model at `path` in `precision` (atomically: a reader sees the
    old file or the new one).

    Args:
        path: an ONNX model with float32 weights.
        precision: one of `PRECISIONS`; "float32" leaves the file as it is.
    """
    precision = check(precision)
    if precision == "float32":
        return
    path = Path(path)
    handle, temporary = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
    os.close(handle)
    try:
        if precision == "float16":
            _float16_weights(path, Path(temporary))
        else:
            _int8_weights(path, Path(temporary))
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def _float16_weights(source: Path, target: Path) -> None:
    """Stores each float32 initializer as float16, cast back to float32 by a Cast node."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    casts = []
    for initializer in graph.initializer:
        if initializer.data_type != onnx.TensorProto.FLOAT:
            continue
        weights = numpy_helper.to_array(initializer)
        name = initializer.name
        initializer.CopyFrom(numpy_helper.from_array(weights.astype(np.float16), f"{name}_fp16"))
        casts.append(helper.make_node("Cast", [f"{name}_fp16"], [name], to=onnx.TensorProto.FLOAT))
    nodes = [*casts, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))


class _WithoutPreprocessingAdvice(logging.Filter):
    """Drops onnxruntime's advice to pre-process before quantizing: these graphs are
    small MLPs and convnets, already optimized by tf2onnx."""

    def filter(self, record):
        return "Please consider to run pre-processing" not in record.getMessage()


def _int8_weights(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    advice = _WithoutPreprocessingAdvice()
    logging.getLogger().addFilter(advice)
    try:
        quantize_dynamic(
            str(source),
            str(target),
            op_types_to_quantize=["MatMul", "Gemm"],
            per_channel=False,
            weight_type=QuantType.QUInt8,
        )
    finally:
        logging.getLogger().removeFilter(advice)
