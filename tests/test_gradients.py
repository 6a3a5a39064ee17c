"""The training loss's gradients against central finite differences, in float64.

A loss whose value is right can still have the wrong gradient (a `stop_gradient` in the
wrong place, a term that leaks into the wrong network), so each objective's gradient with
respect to every trainable variable (encoder, decoder, and a learnable prior's) is compared
with central differences of the same loss: a tiny float64 model, fixed posterior noise (a
fixed stateless seed), the loss path of the training step (`_per_example_metrics`, mean
over the batch, as in `VAE._loss_and_gradients`).

Relative error of an entry: |analytic - numeric| / max(|analytic|, |numeric|, 1e-3); the
floor keeps entries near 0 from dividing by nothing (their error is then absolute, at
most 1e-9). With step h = 1e-5 in float64 the difference's rounding error is about
1e-16 * |loss| / h ~ 1e-10 and its truncation error h^2 |third derivative| / 6 ~ 1e-11,
so a correct gradient lands below 1e-7 (measured: at most 6e-8, per case below) and the
tolerance is 1e-6; a dropped or leaked term is off by O(1) (a `stop_gradient` on z gives
errors of about 1).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvae

DTYPE = "float64"
DATA_DIM, LATENT_DIM, HIDDEN, BATCH = 6, 3, (5,), 4
STEP = 1e-5  # the central difference's h: about the optimal eps^(1/3) for float64
ENTRIES_PER_VARIABLE = 20  # entries of each variable checked one by one (all if fewer)
FLOOR = 1e-3  # the relative error's denominator floor
TOLERANCE = 1e-6  # max relative error; measured values are in each case's comment
SEED = tf.constant([7, 11], dtype=tf.int64)  # the fixed posterior noise


def _data(likelihood):
    rng = np.random.default_rng(0)
    if likelihood == "bernoulli":
        return tf.constant((rng.random((BATCH, DATA_DIM)) < 0.4).astype(np.float64))
    return tf.constant(rng.normal(size=(BATCH, DATA_DIM)))


@pytest.fixture(autouse=True)
def float64_layers():
    """Every layer made in these tests computes in float64: the networks' Dense sublayers
    and a prior named by a string take the global dtype policy."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(DTYPE)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _vae(likelihood="bernoulli", **kwargs):
    """A float64 VAE with smooth (tanh) networks, so no difference crosses a kink."""
    vae = tfvae.VAE(
        tfvae.networks.mlp_encoder(HIDDEN, activation="tanh", seed=1),
        tfvae.networks.mlp_decoder(HIDDEN, activation="tanh", seed=2),
        latent_dim=LATENT_DIM,
        likelihood=likelihood,
        seed=0,
        **kwargs,
    )
    vae.build((None, DATA_DIM))
    return vae


def _mean_loss(vae, x, beta):
    """The training step's loss: the mean over the batch of the per-example loss."""
    per_example = vae._per_example_metrics(x, SEED, True, None, beta)["loss"]  # [B]
    return tf.reduce_mean(per_example)


def _central_difference(loss, variables, directions):
    """(loss(theta + h d) - loss(theta - h d)) / 2h, restoring the variables after."""
    originals = [v.numpy() for v in variables]

    def loss_at(t):
        for v, original, d in zip(variables, originals, directions, strict=True):
            v.assign(original + t * d)
        return float(loss())

    try:
        return (loss_at(STEP) - loss_at(-STEP)) / (2 * STEP)
    finally:
        for v, original in zip(variables, originals, strict=True):
            v.assign(original)


def _relative_error(analytic, numeric):
    return abs(analytic - numeric) / max(abs(analytic), abs(numeric), FLOOR)


def _max_gradient_errors(vae, x, beta=1.0):
    """{variable path or "random direction": max relative error} over checked entries."""
    variables = vae.trainable_variables
    assert all(v.dtype == DTYPE for v in variables)
    with tf.GradientTape() as tape:
        loss_value = _mean_loss(vae, x, beta)
    assert loss_value.dtype == tf.float64
    gradients = [np.asarray(g) for g in tape.gradient(loss_value, variables)]
    loss = tf.function(lambda: _mean_loss(vae, x, beta))
    rng = np.random.default_rng(1)
    errors = {}
    for variable, gradient in zip(variables, gradients, strict=True):
        size = int(np.prod(variable.shape))
        chosen = rng.choice(size, min(size, ENTRIES_PER_VARIABLE), replace=False)
        worst = 0.0
        for index in chosen:
            direction = np.zeros(size)
            direction[index] = 1.0
            direction = direction.reshape(variable.shape)
            numeric = _central_difference(loss, [variable], [direction])
            worst = max(worst, _relative_error(gradient.ravel()[index], numeric))
        errors[variable.path] = worst
    # One random direction through the whole parameter vector, every entry at once.
    directions = [rng.normal(size=v.shape) for v in variables]
    norm = np.sqrt(sum(np.sum(d**2) for d in directions))
    directions = [d / norm for d in directions]
    analytic = sum(float(np.sum(g * d)) for g, d in zip(gradients, directions, strict=True))
    numeric = _central_difference(loss, variables, directions)
    errors["random direction"] = _relative_error(analytic, numeric)
    # Some gradient must be far from 0, or the comparison would be vacuous.
    assert max(np.abs(g).max() for g in gradients) > 1e-2
    return errors


def _assert_gradients_match(vae, x, beta=1.0, expected_variables=8):
    errors = _max_gradient_errors(vae, x, beta)
    assert len(errors) == expected_variables + 1  # every trainable variable, and a direction
    worst = max(errors.values())
    assert worst < TOLERANCE, errors
    return worst


# Each case's comment gives the max relative error measured on an x86-64 CPU.
@pytest.mark.parametrize(
    "beta",
    [
        1.0,  # measured max relative error: 5.5e-8
        0.3,  # 6.0e-8
        2.0,  # 3.4e-8
    ],
)
def test_elbo_gradient_matches_finite_differences(beta):
    vae = _vae(num_samples=2, beta=beta)
    _assert_gradients_match(vae, _data("bernoulli"), beta)


@pytest.mark.parametrize(
    "posterior",
    [
        "diagonal_normal",  # measured max relative error: 3.7e-8
        "full_covariance",  # 8.0e-9 (no per-dimension KL: IWAE must not ask for one)
    ],
)
def test_iwae_gradient_matches_finite_differences(posterior):
    vae = _vae(objective="iwae", posterior=posterior, num_samples=4)
    _assert_gradients_match(vae, _data("bernoulli"))


def test_free_bits_gradient_matches_finite_differences():
    # measured max relative error: 2.1e-8 (batch KLs 0.18, 0.44, 0.31: lambda 0.25)
    x = _data("bernoulli")
    batch_kl = np.mean(_vae().elbo_terms(x, seed=SEED)["kl_per_dimension"].numpy(), axis=0)
    # lambda between two dimensions' batch KLs: some are clamped (no KL gradient), some not.
    ordered = np.sort(batch_kl)
    gaps = np.diff(ordered)
    widest = int(np.argmax(gaps))
    free_bits = float(ordered[widest] + gaps[widest] / 2)
    clamped = batch_kl < free_bits
    assert clamped.any() and not clamped.all(), batch_kl
    # Far from the kink of max(KL_d, lambda) compared with what a step of 1e-6 moves it.
    assert np.min(np.abs(batch_kl - free_bits)) > 1e-4, (batch_kl, free_bits)
    vae = _vae(objective=tfvae.objectives.ELBO(free_bits=free_bits), num_samples=2)
    _assert_gradients_match(vae, x)


def test_mixture_prior_gradient_matches_finite_differences():
    # measured max relative error: 4.2e-8. The prior's logits, locs and raw scales are
    # checked too (8 network variables + 3 prior variables).
    prior = tfvae.priors.Mixture(num_components=2, seed=3)
    vae = _vae(prior=prior, kl="mc", num_samples=2)
    prior_paths = {v.path for v in prior.trainable_variables}
    assert len(prior_paths) == 3
    assert prior_paths <= {v.path for v in vae.trainable_variables}
    _assert_gradients_match(vae, _data("bernoulli"), expected_variables=11)


def test_full_covariance_posterior_gradient_matches_finite_differences():
    # measured max relative error: 3.8e-9. Also a second likelihood family.
    vae = _vae(posterior="full_covariance", likelihood="gaussian_learned_scale", num_samples=2)
    _assert_gradients_match(vae, _data("gaussian"))


@pytest.mark.parametrize(
    "objective",
    [
        "elbo",  # measured max relative error: 1.2e-8
        "iwae",  # 5.5e-8
    ],
)
def test_hierarchical_prior_gradient_matches_finite_differences(objective):
    # The networks of p(z1|z2) and q(z2|z1) are checked too (8 + 8 variables), through
    # the noise of both layers of latents.
    prior = tfvae.priors.Hierarchical(
        2,
        decoder=tfvae.networks.mlp_decoder(HIDDEN, activation="tanh", seed=3),
        encoder=tfvae.networks.mlp_encoder(HIDDEN, activation="tanh", seed=4),
    )
    vae = _vae(prior=prior, objective=objective, num_samples=3)
    assert len(prior.trainable_variables) == 8
    _assert_gradients_match(vae, _data("bernoulli"), expected_variables=16)
