"""Exact matmul FLOP counts of a traced TensorFlow computation.

A multiply-add counts as 2 FLOPs. Counted ops, with the shapes the graph fixes:

    MatMul / BatchMatMulV2          2 * batch * m * k * n
    Conv2D                          2 * B * H_out * W_out * kh * kw * C_in * C_out
    Conv2DBackpropInput / Filter    the same count as the Conv2D they differentiate,
                                    read from out_backprop (B, H_out, W_out, C_out)

Convolutions are counted as the dense im2col matmul they are (positions in the zero
padding included), so the count is what a matmul engine executes, not fewer. Everything
else (activations, the likelihood, Adam's update) is not a matmul and is not counted.

Counting the graph the non-XLA step runs, rather than a formula per layer, counts the
gradient ops TensorFlow really executes: ops whose results the outputs do not need are
pruned, so the first layer's backward pass (no gradient with respect to the data) has one
matmul, not two. `tests/test_benchmark_flops.py` checks this count against closed forms.
"""

import math

import tensorflow as tf

_CONVOLUTIONS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")


def _shape(tensor) -> list[int]:
    shape = tensor.shape.as_list()
    if None in shape:
        raise ValueError(
            f"Expected static shapes to count FLOPs; trace with a fixed batch size. "
            f"Received: {tensor.name} of shape {shape}"
        )
    return shape


def op_flops(op) -> int:
    """The matmul FLOPs of one graph operation (0 for an op that is not a matmul)."""
    if op.type == "MatMul":
        a, (m, n) = _shape(op.inputs[0]), _shape(op.outputs[0])
        k = a[0] if op.get_attr("transpose_a") else a[1]
        return 2 * m * k * n
    if op.type in ("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"):
        a, out = _shape(op.inputs[0]), _shape(op.outputs[0])
        k = a[-2] if op.get_attr("adj_x") else a[-1]
        return 2 * math.prod(out) * k
    if op.type in _CONVOLUTIONS:
        if op.type == "Conv2D":
            kernel, out = _shape(op.inputs[1]), _shape(op.outputs[0])
        elif op.type == "Conv2DBackpropInput":
            kernel, out = _shape(op.inputs[1]), _shape(op.inputs[2])
        else:  # Conv2DBackpropFilter: the kernel's shape is its output's.
            kernel, out = _shape(op.outputs[0]), _shape(op.inputs[2])
        if op.get_attr("data_format") != b"NHWC":
            raise ValueError(f"Expected NHWC convolutions. Received: {op.name}")
        return 2 * math.prod(out) * math.prod(kernel[:3])  # out already has C_out
    return 0


def needed_ops(graph, outputs) -> list:
    """The ops of `graph` that `outputs` depend on: what TensorFlow executes.

    A gradient op may compute a result nobody uses (the data's gradient in a
    convolution's backward pass); the runtime prunes it, and so does this count.
    """
    seen, stack = set(), [tensor.op for tensor in outputs]
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        stack.extend(tensor.op for tensor in op.inputs)
        stack.extend(op.control_inputs)
    return [op for op in graph.get_operations() if op.name in seen]


def function_flops(function, *args) -> int:
    """Matmul FLOPs of one call of the Python `function` on tensors shaped like `args`.

    Raises:
        ValueError: if the traced graph calls functions or has control flow, whose
            FLOPs this count cannot see.
    """
    specs = [tf.TensorSpec(arg.shape, arg.dtype) for arg in args]
    concrete = tf.function(function).get_concrete_function(*specs)
    total = 0
    for op in needed_ops(concrete.graph, concrete.outputs):
        if op.type in ("PartitionedCall", "StatefulPartitionedCall", "While", "If"):
            raise ValueError(f"Cannot count FLOPs inside {op.type} {op.name}.")
        total += op_flops(op)
    return total


def train_step_flops(model, x) -> int:
    """Matmul FLOPs of one forward and backward pass of `model` (a built `tfvae.VAE`) on
    a batch shaped like `x`: the computation `train_step` runs before the optimizer."""
    seed = tf.constant([0, 0], tf.int32)
    x = tf.convert_to_tensor(x, tf.float32)
    return function_flops(
        lambda x: model._loss_and_gradients(x, None, None, seed, model.current_beta()), x
    )
