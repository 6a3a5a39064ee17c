"""Tests for tfvae.networks: forward passes against numpy, shapes, arguments, seeds, configs."""

import json
import math
import random as python_random
import re

import keras
import numpy as np
import pytest

from tfvae import networks
from tfvae.model import VAE

BATCH = 4


def relu(x):
    return np.maximum(x, 0.0)


def randomize_weights(rng, layer):
    """Sets every weight (the zero-initialized biases too) to N(0, 1) draws; float64 copies."""
    layer.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in layer.get_weights()])
    return [w.astype(np.float64) for w in layer.get_weights()]


def built(network, input_shape):
    network.build((BATCH, *input_shape))
    return network


# One of each network, sized, with the per-example input shape it takes.
NETWORKS = {
    "mlp": (lambda **kw: networks.MLP(hidden=(6, 5), target_shape=(2, 3), **kw), (3, 4)),
    "conv_encoder": (
        lambda **kw: networks.ConvEncoder(filters=(4, 3), target_shape=(5,), **kw),
        (8, 8, 1),
    ),
    "conv_decoder": (
        lambda **kw: networks.ConvDecoder(filters=(4, 3), target_shape=(8, 8, 1, 2), **kw),
        (5,),
    ),
}


# ------------------------------------------------------------------ MLP forward pass


@pytest.mark.parametrize("target_shape", [(3,), (2, 3), (3, 1, 2)])
def test_mlp_without_hidden_layers_is_one_affine_map(rng, target_shape):
    net = built(networks.MLP(hidden=(), target_shape=target_shape), (2, 5))
    kernel, bias = randomize_weights(rng, net)
    x = rng.normal(size=(BATCH, 2, 5)).astype(np.float32)

    out = net(x).numpy()

    assert kernel.shape == (10, math.prod(target_shape)) and bias.shape == kernel.shape[1:]
    expected = x.reshape(BATCH, -1).astype(np.float64) @ kernel + bias  # [B, prod(target)]
    assert out.shape == (BATCH, *target_shape)
    np.testing.assert_allclose(out, expected.reshape(BATCH, *target_shape), rtol=1e-5, atol=1e-5)


def test_mlp_with_one_hidden_layer_matches_numpy(rng):
    net = built(networks.MLP(hidden=(5,), target_shape=(3,)), (2, 4))
    w1, b1, w2, b2 = randomize_weights(rng, net)
    x = rng.normal(size=(BATCH, 2, 4)).astype(np.float32)

    out = net(x).numpy()

    assert (w1.shape, b1.shape, w2.shape, b2.shape) == ((8, 5), (5,), (5, 3), (3,))
    h = relu(x.reshape(BATCH, -1).astype(np.float64) @ w1 + b1)  # [B, 5]
    assert 0 < np.count_nonzero(h) < h.size  # the activation matters for this input
    np.testing.assert_allclose(out, h @ w2 + b2, rtol=1e-5, atol=1e-5)


def test_mlp_hidden_activation_is_the_one_asked_for(rng):
    net = built(networks.MLP(hidden=(5,), target_shape=(3,), activation="tanh"), (4,))
    w1, b1, w2, b2 = randomize_weights(rng, net)
    x = rng.normal(size=(BATCH, 4)).astype(np.float32)

    expected = np.tanh(x.astype(np.float64) @ w1 + b1) @ w2 + b2

    np.testing.assert_allclose(net(x).numpy(), expected, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------- conv forward pass

# Keras's "same" padding for a stride-s convolution of an n-pixel side: out = ceil(n / s)
# pixels, pad = max((out - 1) s + k - n, 0) in all, the odd pixel after (TensorFlow's rule).


def same_padding(size, kernel_size, stride):
    """(pad before, pad after, output size) of one side."""
    out = -(-size // stride)
    pad = max((out - 1) * stride + kernel_size - size, 0)
    return pad // 2, pad - pad // 2, out


def conv2d_same(x, kernel, bias, stride):
    """Keras Conv2D(padding="same") in numpy: a cross-correlation.

    x: [B, H, W, C_in]; kernel: [k, k, C_in, C_out]; returns [B, ceil(H/s), ceil(W/s), C_out].
    """
    k = kernel.shape[0]
    top, bottom, out_h = same_padding(x.shape[1], k, stride)
    left, right, out_w = same_padding(x.shape[2], k, stride)
    padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    out = np.zeros((x.shape[0], out_h, out_w, kernel.shape[3]))
    for a in range(k):
        for b in range(k):
            window = padded[:, a : a + stride * out_h : stride, b : b + stride * out_w : stride]
            out += window @ kernel[a, b]  # [B, out_h, out_w, C_in] @ [C_in, C_out]
    return out + bias


def conv2d_transpose_same(x, kernel, bias, stride):
    """Keras Conv2DTranspose(padding="same") in numpy: the adjoint of `conv2d_same`.

    Each input pixel (i, j) adds kernel[a, b] @ x[i, j] at padded position (s i + a, s j + b),
    and the "same" padding of the s*H-pixel output is cropped off.
    x: [B, H, W, C_in]; kernel: [k, k, C_out, C_in]; returns [B, s H, s W, C_out].
    """
    k = kernel.shape[0]
    batch, height, width, _ = x.shape
    out_h, out_w = stride * height, stride * width
    top, bottom, _ = same_padding(out_h, k, stride)
    left, right, _ = same_padding(out_w, k, stride)
    padded = np.zeros((batch, out_h + top + bottom, out_w + left + right, kernel.shape[2]))
    for a in range(k):
        for b in range(k):
            contribution = x @ kernel[a, b].T  # [B, H, W, C_out]
            padded[:, a : a + stride * height : stride, b : b + stride * width : stride] += (
                contribution
            )
    return padded[:, top : top + out_h, left : left + out_w] + bias


def test_conv_encoder_matches_numpy(rng):
    """Two stride-2 convolutions with relu, then a dense layer; 7x6 inputs need padding."""
    net = built(networks.ConvEncoder(filters=(4, 3), target_shape=(5,)), (7, 6, 2))
    k1, b1, k2, b2, w, b = randomize_weights(rng, net)
    x = rng.normal(size=(BATCH, 7, 6, 2)).astype(np.float32)

    out = net(x).numpy()

    assert (k1.shape, k2.shape, w.shape) == ((3, 3, 2, 4), (3, 3, 4, 3), (2 * 2 * 3, 5))
    pre = conv2d_same(x.astype(np.float64), k1, b1, 2)  # [B, 4, 3, 4]
    assert 0 < np.count_nonzero(relu(pre)) < pre.size  # the activation matters here
    h = relu(conv2d_same(relu(pre), k2, b2, 2))  # [B, 2, 2, 3]
    expected = h.reshape(BATCH, -1) @ w + b
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_conv_decoder_matches_numpy(rng):
    """A dense projection, two stride-2 transposed convolutions with relu, a 3x3 output
    convolution; its C * K channels are split as (channel, parameter)."""
    net = built(networks.ConvDecoder(filters=(4, 3), target_shape=(8, 8, 2, 3)), (5,))
    w, b, k1, b1, k2, b2, k3, b3 = randomize_weights(rng, net)
    z = rng.normal(size=(BATCH, 5)).astype(np.float32)

    out = net(z).numpy()

    assert (w.shape, k1.shape, k2.shape, k3.shape) == (
        (5, 2 * 2 * 4), (3, 3, 4, 4), (3, 3, 3, 4), (3, 3, 3, 6)
    )  # fmt: skip
    h = relu(z.astype(np.float64) @ w + b).reshape(BATCH, 2, 2, 4)
    pre = conv2d_transpose_same(h, k1, b1, 2)  # [B, 4, 4, 4]
    assert 0 < np.count_nonzero(relu(pre)) < pre.size
    h = relu(conv2d_transpose_same(relu(pre), k2, b2, 2))  # [B, 8, 8, 3]
    expected = conv2d_same(h, k3, b3, 1).reshape(BATCH, 8, 8, 2, 3)
    assert out.shape == (BATCH, 8, 8, 2, 3)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-3)


# --------------------------------------------------------------------- arguments


@pytest.mark.parametrize("hidden", [500, (0,), "500", (500, -1), (2.5,), (True,), None])
@pytest.mark.parametrize("factory", [networks.mlp_encoder, networks.mlp_decoder])
def test_invalid_hidden_raises_value_error_naming_hidden(factory, hidden):
    with pytest.raises(ValueError, match=r"Expected (each of )?hidden to be .*Received: "):
        factory(hidden=hidden)


@pytest.mark.parametrize("filters", [32, (0, 4), "32"])
@pytest.mark.parametrize("factory", [networks.conv_encoder, networks.conv_decoder])
def test_invalid_filters_raise_value_error_naming_filters(factory, filters):
    with pytest.raises(ValueError, match=r"Expected (each of )?filters to be .*Received: "):
        factory(filters=filters)


@pytest.mark.parametrize("cls", [networks.MLP, networks.ConvEncoder, networks.ConvDecoder])
def test_unknown_activation_fails_at_construction(cls):
    with pytest.raises(ValueError, match=r"no_such_activation"):
        cls(activation="no_such_activation")


@pytest.mark.parametrize(
    ("target_shape", "argument"), [((0,), "target_shape"), ((3, -1), "target_shape")]
)
def test_invalid_target_shape_raises(target_shape, argument):
    with pytest.raises(ValueError, match=rf"Received: {argument}="):
        networks.MLP(target_shape=target_shape)


@pytest.mark.parametrize(
    ("factory", "input_shape"),
    [
        (networks.mlp_encoder, (BATCH, 6)),
        (networks.conv_encoder, (BATCH, 8, 8, 1)),
        (networks.conv_decoder, (BATCH, 3)),
    ],
)
def test_network_without_target_shape_raises_on_build(factory, input_shape):
    net = factory()  # Construction without a target shape is fine: the model sets it.

    with pytest.raises(
        ValueError,
        match=r"has no target_shape\. Pass target_shape=\.\.\. or use it inside tfvae\.VAE",
    ):
        net(np.zeros(input_shape, dtype=np.float32))


def test_set_target_shape_sizes_a_network_only_once():
    net = networks.mlp_decoder(hidden=())
    net.set_target_shape([3])
    net.set_target_shape((3,))  # The same shape again is not a change.

    with pytest.raises(ValueError, match=r"already outputs shape \(3,\); the model needs \(4,\)"):
        net.set_target_shape((4,))
    assert net.target_shape == (3,)
    sized = networks.MLP(hidden=(), target_shape=(2, 2))
    with pytest.raises(ValueError, match=r"already outputs shape \(2, 2\)"):
        sized.set_target_shape((4,))
    with pytest.raises(ValueError, match=r"Received: target_shape=0"):
        networks.mlp_decoder().set_target_shape((0,))


def test_conv_encoder_rejects_inputs_that_are_not_images():
    net = networks.ConvEncoder(target_shape=(3,))

    with pytest.raises(ValueError, match=r"\(batch_size, height, width, channels\)"):
        net(np.zeros((BATCH, 8, 8), dtype=np.float32))


@pytest.mark.parametrize(
    ("filters", "target_shape"),
    [
        ((4, 3), (10, 8, 1, 2)),  # height 10 is not divisible by 4
        ((4, 3), (8, 6, 1, 2)),  # width 6 is not divisible by 4
        ((4,), (7, 8, 1, 1)),  # height 7 is not divisible by 2
        ((4, 3, 2), (12, 12, 1, 1)),  # 12 is not divisible by 8
        ((4, 3), (8, 8, 2)),  # no num_params axis
    ],
)
def test_conv_decoder_rejects_target_shapes_it_cannot_produce(filters, target_shape):
    net = networks.ConvDecoder(filters=filters, target_shape=target_shape)

    message = (
        rf"divisible by {2 ** len(filters)}\. "
        rf"Received: target_shape={re.escape(str(target_shape))}"
    )
    with pytest.raises(ValueError, match=message):
        net(np.zeros((BATCH, 3), dtype=np.float32))


# ------------------------------------------------------------------------ shapes


@pytest.mark.parametrize("size", [28, 8])
@pytest.mark.parametrize("target_shape", [(7,), "image"], ids=["vector", "image"])
def test_conv_encoder_output_shape(rng, size, target_shape):
    target_shape = (size, size, 1, 2) if target_shape == "image" else target_shape
    net = networks.conv_encoder(target_shape=target_shape)
    x = rng.uniform(size=(BATCH, size, size, 1)).astype(np.float32)

    assert net(x).shape == (BATCH, *target_shape)


@pytest.mark.parametrize("target_shape", [(28, 28, 1, 2), (8, 8, 1, 2), (8, 8, 3, 2)])
def test_conv_decoder_output_shape(rng, target_shape):
    net = networks.conv_decoder(target_shape=target_shape)
    z = rng.normal(size=(BATCH, 7)).astype(np.float32)

    out = net(z)

    assert out.shape == (BATCH, *target_shape)
    assert np.all(np.isfinite(out.numpy()))


# ------------------------------------------------------------------------- seeds


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_the_seed_fixes_the_initial_weights(name):
    make, input_shape = NETWORKS[name]

    first = built(make(seed=7), input_shape).get_weights()
    again = built(make(seed=7), input_shape).get_weights()
    other = built(make(seed=8), input_shape).get_weights()

    assert len(first) == len(again) == len(other) > 0
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    kernels = [(a, c) for a, c in zip(first, other, strict=True) if a.ndim > 1]
    assert kernels and all(not np.array_equal(a, c) for a, c in kernels)


def test_each_layer_gets_its_own_seed():
    """Same-shaped kernels of one seeded network are not copies of each other."""
    net = built(networks.MLP(hidden=(6, 6), target_shape=(6,), seed=0), (6,))

    kernels = [w for w in net.get_weights() if w.ndim == 2]

    assert [k.shape for k in kernels] == [(6, 6)] * 3
    for i in range(3):
        for j in range(i):
            assert not np.array_equal(kernels[i], kernels[j])


@pytest.mark.parametrize("seed", [-1, 2**31, 2**70, 1.5])
def test_seeds_outside_the_supported_range_are_rejected_up_front(seed):
    with pytest.raises(
        ValueError, match=rf"seed to be an integer in \[0, 2147483647\].*seed={seed!r}"
    ):
        networks.MLP(hidden=(), target_shape=(2,), seed=seed)


def _unseeded_dense_kernels(build_between=None):
    """Kernels of two unseeded Dense layers built after a global seed, maybe with a build
    in between."""
    keras.utils.set_random_seed(0)
    first = keras.layers.Dense(4)
    first.build((None, 3))
    if build_between is not None:
        build_between()
    second = keras.layers.Dense(4)
    second.build((None, 3))
    return first.kernel.numpy(), second.kernel.numpy()


def _build_every_network(seed):
    for make, input_shape in NETWORKS.values():
        net = make(seed=seed)
        net(np.zeros((BATCH, *input_shape), dtype=np.float32))


def test_seeded_initialization_leaves_the_global_random_state_alone():
    keras.utils.set_random_seed(0)
    numpy_state = np.random.get_state()
    python_state = python_random.getstate()

    _build_every_network(seed=3)

    after = np.random.get_state()
    assert after[0] == numpy_state[0] and after[2:] == numpy_state[2:]
    np.testing.assert_array_equal(after[1], numpy_state[1])
    assert python_random.getstate() == python_state

    baseline = _unseeded_dense_kernels()
    with_seeded = _unseeded_dense_kernels(lambda: _build_every_network(seed=3))
    with_unseeded = _unseeded_dense_kernels(lambda: _build_every_network(seed=None))
    for a, b in zip(baseline, with_seeded, strict=True):
        np.testing.assert_array_equal(a, b)
    # The check is sensitive: unseeded networks do draw from the global state.
    np.testing.assert_array_equal(with_unseeded[0], baseline[0])
    assert not np.array_equal(with_unseeded[1], baseline[1])


# ---------------------------------------------------------------- serialization


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_config_round_trip_restores_the_same_network(rng, name):
    make, input_shape = NETWORKS[name]
    net = built(make(seed=1, activation="tanh"), input_shape)
    weights = randomize_weights(rng, net)
    x = rng.normal(size=(BATCH, *input_shape)).astype(np.float32)
    expected = net(x).numpy()
    config = net.get_config()

    restored = type(net).from_config(config)
    through_json = keras.saving.deserialize_keras_object(
        json.loads(json.dumps(keras.saving.serialize_keras_object(net)))
    )

    assert not restored.built and through_json.built  # Keras saves the build shape.
    built(restored, input_shape)
    for copy in (restored, through_json):
        assert type(copy) is type(net)
        assert copy.get_config() == config
        copy.set_weights([w.astype(np.float32) for w in weights])
        np.testing.assert_array_equal(copy(x).numpy(), expected)


def test_config_records_the_constructor_arguments():
    net = networks.MLP(hidden=(7, 3), target_shape=(2, 5), activation="elu", seed=4, name="enc")

    config = net.get_config()

    assert config["hidden"] == [7, 3]
    assert tuple(config["target_shape"]) == (2, 5)
    assert (config["activation"], config["seed"], config["name"]) == ("elu", 4, "enc")


def test_networks_pass_their_dtype_to_their_layers():
    encoder = networks.mlp_encoder(hidden=(4,), dtype="float64")
    decoder = networks.conv_decoder(dtype="float64")
    VAE(encoder, decoder, latent_dim=2).build((None, 8, 8, 1))
    assert {w.dtype for w in [*encoder.weights, *decoder.weights]} == {"float64"}


# ------------------------------------------------------------------- conditions


def test_mlp_with_a_condition_concatenates_it_to_the_flat_input(rng):
    net = built(networks.MLP(hidden=(5,), target_shape=(3,), condition_size=2), (2, 4))
    w1, b1, w2, b2 = randomize_weights(rng, net)
    x = rng.normal(size=(BATCH, 2, 4)).astype(np.float32)
    y = rng.normal(size=(BATCH, 2)).astype(np.float32)

    out = net(x, condition=y).numpy()

    assert w1.shape == (8 + 2, 5)
    xy = np.concatenate([x.reshape(BATCH, -1), y], axis=-1).astype(np.float64)  # [B, 10]
    np.testing.assert_allclose(out, relu(xy @ w1 + b1) @ w2 + b2, rtol=1e-5, atol=1e-5)


def test_conv_encoder_with_a_condition_concatenates_it_after_the_convolutions(rng):
    net = built(networks.ConvEncoder(filters=(3,), target_shape=(5,), condition_size=2), (4, 4, 1))
    k, bk, w, b = randomize_weights(rng, net)
    x = rng.normal(size=(BATCH, 4, 4, 1)).astype(np.float32)
    y = rng.normal(size=(BATCH, 2)).astype(np.float32)

    out = net(x, condition=y).numpy()

    assert w.shape == (2 * 2 * 3 + 2, 5)
    h = relu(conv2d_same(x.astype(np.float64), k, bk, 2)).reshape(BATCH, -1)  # [B, 12]
    expected = np.concatenate([h, y.astype(np.float64)], axis=-1) @ w + b
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_conv_decoder_with_a_condition_concatenates_it_to_the_latent(rng):
    net = networks.ConvDecoder(filters=(3,), target_shape=(4, 4, 1, 2), condition_size=2)
    w, b, k1, b1, k2, b2 = randomize_weights(rng, built(net, (3,)))
    z = rng.normal(size=(BATCH, 3)).astype(np.float32)
    y = rng.normal(size=(BATCH, 2)).astype(np.float32)

    out = net(z, condition=y).numpy()

    assert w.shape == (3 + 2, 2 * 2 * 3)
    zy = np.concatenate([z, y], axis=-1).astype(np.float64)
    h = relu(zy @ w + b).reshape(BATCH, 2, 2, 3)
    h = relu(conv2d_transpose_same(h, k1, b1, 2))  # [B, 4, 4, 3]
    expected = conv2d_same(h, k2, b2, 1).reshape(BATCH, 4, 4, 1, 2)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_set_condition_size_may_change_only_before_building_an_unconditional_network():
    net = networks.MLP(hidden=(), target_shape=(2,))
    net.set_condition_size(0)
    net.set_condition_size(3)  # unbuilt and unconditional: the model may set it
    net.set_condition_size(3)  # the same width again is not a change
    assert net.condition_size == 3
    with pytest.raises(ValueError, match=r"takes conditions of width 3; the model passes 2"):
        net.set_condition_size(2)

    unconditional = built(networks.MLP(hidden=(), target_shape=(2,)), (3,))
    unconditional.set_condition_size(0)
    with pytest.raises(ValueError, match=r"takes conditions of width 0; the model passes 2"):
        unconditional.set_condition_size(2)
    conditional = built(networks.MLP(hidden=(), target_shape=(2,), condition_size=2), (3,))
    conditional.set_condition_size(2)
    assert conditional.condition_size == 2


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_config_round_trip_keeps_the_condition(rng, name):
    make, input_shape = NETWORKS[name]
    net = built(make(seed=1, condition_size=2), input_shape)
    weights = randomize_weights(rng, net)
    x = rng.normal(size=(BATCH, *input_shape)).astype(np.float32)
    y = rng.normal(size=(BATCH, 2)).astype(np.float32)
    expected = net(x, condition=y).numpy()

    restored = built(type(net).from_config(net.get_config()), input_shape)

    assert restored.condition_size == 2
    restored.set_weights([w.astype(np.float32) for w in weights])
    np.testing.assert_array_equal(restored(x, condition=y).numpy(), expected)


# ------------------------------------------------------------------- factories


def _mlp_tanh_reference(weights, x):
    w1, b1, w2, b2 = weights
    return np.tanh(x @ w1 + b1) @ w2 + b2


def _conv_encoder_tanh_reference(weights, x):
    k, bk, w, b = weights
    return np.tanh(conv2d_same(x, k, bk, 2)).reshape(len(x), -1) @ w + b


def _conv_decoder_tanh_reference(weights, z):
    w, b, k1, b1, k2, b2 = weights
    h = np.tanh(z @ w + b).reshape(len(z), 2, 2, 3)
    h = np.tanh(conv2d_transpose_same(h, k1, b1, 2))
    return conv2d_same(h, k2, b2, 1).reshape(len(z), 4, 4, 1, 1)


FACTORIES = {
    "mlp_encoder": (
        lambda **kw: networks.mlp_encoder(hidden=(5,), target_shape=(3,), **kw),
        "encoder", (4,), _mlp_tanh_reference,
    ),
    "mlp_decoder": (
        lambda **kw: networks.mlp_decoder(hidden=(5,), target_shape=(3,), **kw),
        "decoder", (4,), _mlp_tanh_reference,
    ),
    "conv_encoder": (
        lambda **kw: networks.conv_encoder(filters=(3,), target_shape=(2,), **kw),
        "encoder", (4, 4, 1), _conv_encoder_tanh_reference,
    ),
    "conv_decoder": (
        lambda **kw: networks.conv_decoder(filters=(3,), target_shape=(4, 4, 1, 1), **kw),
        "decoder", (3,), _conv_decoder_tanh_reference,
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_factories_pass_the_activation_through(rng, name):
    make, _, input_shape, reference = FACTORIES[name]
    net = built(make(activation="tanh"), input_shape)
    weights = randomize_weights(rng, net)
    x = rng.normal(size=(BATCH, *input_shape)).astype(np.float32)

    expected = reference(weights, x.astype(np.float64))

    np.testing.assert_allclose(net(x).numpy(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_factories_name_the_network_after_its_role(name):
    make, default_name, _, _ = FACTORIES[name]

    assert make().name == default_name
    assert make(name="custom").name == "custom"


# ---------------------------------------------------------- per-layer seeds


def _kernels(net):
    return [w.numpy().ravel() for w in net.weights if len(w.shape) > 1]


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_distinct_layers_get_independent_initial_weights(name):
    """No two kernels of a seeded network come from the same random stream: a shared seed
    would make their common prefix an affine copy (Glorot draws are scaled uniforms)."""
    make, input_shape = NETWORKS[name]
    kernels = _kernels(built(make(seed=5), input_shape))

    assert len(kernels) > 2
    for i in range(len(kernels)):
        for j in range(i):
            m = min(kernels[i].size, kernels[j].size)
            corr = np.corrcoef(kernels[i][:m], kernels[j][:m])[0, 1]
            assert abs(corr) < 0.99, (i, j)


def test_layers_of_a_deep_network_all_get_their_own_initial_weights():
    """34 same-shaped kernels (33 hidden layers and the output layer) are all different."""
    net = built(networks.MLP(hidden=(2,) * 33, target_shape=(2,), seed=5), (2,))

    kernels = np.stack(_kernels(net))

    assert kernels.shape == (34, 4)
    assert len(np.unique(kernels, axis=0)) == 34


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**31 - 1])
def test_per_layer_seeds_are_valid_seeds(seed):
    net = built(networks.MLP(hidden=(2,) * 4, target_shape=(2,), seed=seed), (3,))

    for layer in [*net.hidden_layers, net.output_layer]:
        layer_seed = layer.kernel_initializer.get_config()["seed"]
        assert isinstance(layer_seed, int) and 0 <= layer_seed <= 2**31 - 1


# ---------------------------------------------------------------- saved names


def test_weight_names_that_saved_models_rely_on_are_stable():
    keras.layers.Dense(2).build((None, 2))  # takes Keras's automatic layer names first
    mlp = built(networks.MLP(hidden=(3, 2), target_shape=(2,), name="mlp_net"), (5,))
    encoder = built(networks.ConvEncoder(filters=(2,), target_shape=(2,), name="enc"), (4, 4, 1))
    decoder = networks.ConvDecoder(filters=(2,), target_shape=(4, 4, 1, 1), name="dec")
    paths = [w.path for w in built(decoder, (3,)).weights]

    assert [w.path for w in mlp.weights] == [
        f"mlp_net/{layer}/{var}"
        for layer in ("dense_0", "dense_1", "output")
        for var in ("kernel", "bias")
    ]
    assert [w.path for w in encoder.weights][-2:] == ["enc/output/kernel", "enc/output/bias"]
    assert paths[:2] == ["dec/project/kernel", "dec/project/bias"]
    assert paths[-2:] == ["dec/output/kernel", "dec/output/bias"]


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_networks_are_registered_under_the_tfvae_package(name):
    make, _ = NETWORKS[name]
    net = make()
    registered = f"tfvae>{type(net).__name__}"

    assert keras.saving.get_registered_name(type(net)) == registered
    assert keras.saving.serialize_keras_object(net)["registered_name"] == registered
    assert keras.saving.get_registered_object(registered) is type(net)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_float64_networks_compute_in_float64(rng, name):
    make, input_shape = NETWORKS[name]
    net = built(make(dtype="float64"), input_shape)
    x = rng.normal(size=(BATCH, *input_shape))

    assert {w.dtype for w in net.weights} == {"float64"}
    assert net(x).dtype == "float64"
