"""The matmul FLOP count of benchmarks/train_throughput.py, against closed forms."""

import numpy as np
import pytest
import tensorflow as tf

import tfvae
from benchmarks import flops
from tfvae import networks


def _dense_flops(batch, widths):
    """Forward multiply-adds x 2 of a chain of dense layers of (in, out) widths."""
    return sum(2 * batch * fan_in * fan_out for fan_in, fan_out in widths)


@pytest.mark.parametrize("num_samples", [1, 3])
def test_mlp_step_is_three_forward_passes_less_the_data_gradient(num_samples):
    model = tfvae.VAE(
        networks.mlp_encoder(hidden=(20, 30)),
        networks.mlp_decoder(hidden=(30, 20)),
        latent_dim=4,
        num_samples=num_samples,
        objective="iwae",
        seed=0,
    )
    model.compile(optimizer="adam")
    x = np.zeros((6, 7, 7, 1), np.float32)
    model.build(x.shape)
    encoder = _dense_flops(6, [(49, 20), (20, 30), (30, 8)])  # 8 = loc and scale of 4
    decoder = _dense_flops(6 * num_samples, [(4, 30), (30, 20), (20, 49)])
    # Backward: gradients for the weights and the inputs of every layer (2 matmuls),
    # except the first encoder layer, whose input is the data (1 matmul).
    expected = 3 * (encoder + decoder) - 2 * 6 * 49 * 20
    assert flops.train_step_flops(model, x) == expected


def test_conv_step_counts_convolutions_as_im2col_matmuls():
    model = tfvae.VAE(
        networks.conv_encoder(filters=(4, 6)),
        networks.conv_decoder(filters=(6, 4)),
        latent_dim=3,
        seed=0,
    )
    model.compile(optimizer="adam")
    batch = 5
    x = np.zeros((batch, 8, 8, 1), np.float32)
    model.build(x.shape)

    def conv(out_h, out_w, kernel_in, out_c):  # 3x3 kernels, per example
        return 2 * out_h * out_w * out_c * 9 * kernel_in

    encoder_convs = [conv(4, 4, 1, 4), conv(2, 2, 4, 6)]
    encoder_dense = 2 * (2 * 2 * 6) * 6  # flatten -> loc and scale of 3
    decoder_dense = 2 * 3 * (2 * 2 * 6)  # z -> 2x2x6
    # A stride-2 transposed convolution from a small map to a large one costs what the
    # stride-2 convolution from the large to the small map costs.
    decoder_convs = [conv(2, 2, 6, 6), conv(4, 4, 4, 6), conv(8, 8, 4, 1)]
    forward = encoder_convs + [encoder_dense, decoder_dense] + decoder_convs
    expected = batch * (3 * sum(forward) - encoder_convs[0])  # no gradient for the data
    assert flops.train_step_flops(model, x) == expected


def test_transposed_matmul_and_unused_ops():
    a = tf.zeros((5, 3))
    b = tf.zeros((5, 7))

    def function(a, b):
        tf.matmul(a, b, transpose_a=True)  # unused: pruned, not counted
        return tf.matmul(a, b, transpose_a=True) + tf.matmul(b, b, transpose_b=True)[0, 0]

    assert flops.function_flops(function, a, b) == 2 * 3 * 5 * 7 + 2 * 5 * 7 * 5


def test_unknown_batch_size_is_refused():
    concrete = tf.function(lambda a: tf.matmul(a, a, transpose_b=True)).get_concrete_function(
        tf.TensorSpec((None, 3))
    )
    op = next(op for op in concrete.graph.get_operations() if op.type == "MatMul")
    with pytest.raises(ValueError, match="fixed batch size"):
        flops.op_flops(op)
