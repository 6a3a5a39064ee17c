"""The gradient estimators against the closed forms of a linear-Gaussian toy.

The toy: x in R^3, z in R^2, p(x|z) = N(x; W z + b, s^2 I) (a linear decoder and the
Gaussian likelihood with fixed scale s), p(z) = N(0, I), and q = N(mu, diag(sigma^2))
whose parameters are the encoder's own weights (`raw`: mu, then the softplus-inverse of
sigma less the floor). With f(z) = log p(x|z), r = x - W mu - b:

    E_q[f] = -3/2 log(2 pi s^2) - (||r||^2 + sum_j sigma_j^2 ||W_j||^2) / (2 s^2)
    d E_q[f] / d mu = W^T r / s^2,   d E_q[f] / d sigma_j = -sigma_j ||W_j||^2 / s^2

(W_j the j-th column), and the KL to N(0, I) has d/d mu = mu, d/d sigma = sigma - 1/sigma.
The loss is -E_q[f] + KL, its gradient with respect to `raw` by the chain rule through
softplus. One draw of an estimator is one example's gradient: the encoder holds one row of
parameters per example (all equal), so one backward pass gives N independent draws.

The estimators' exact variances come from their per-draw formulas (reparameterization:
-grad_z f(z) dz/d(mu, sigma); score function: (l(z) - b) grad log q(z), l = -f) integrated
against N(0, I) by Gauss-Hermite quadrature, exact for these polynomial integrands.
"""

from typing import NamedTuple

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import special

import tfvae
from tfvae import estimators

D, N_DATA = 2, 3
S = 0.5  # the likelihood's scale
W = np.array([[1.0, -0.5], [0.3, 0.8], [-0.7, 0.4]])  # [N_DATA, D]
B = np.array([0.1, -0.2, 0.3])
X = np.array([1.5, -1.0, 0.5])
MU = np.array([0.4, -0.3])
SIGMA = np.array([0.6, 0.9])
MIN_SCALE = 1e-4
DRAWS = 10_000


@pytest.fixture(autouse=True)
def float64_layers():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


class PerExampleParameters(keras.layers.Layer):
    """An encoder that ignores x: row i of its weight is example i's raw parameters."""

    def __init__(self, rows, raw, **kwargs):
        super().__init__(**kwargs)
        self.raw = self.add_weight(
            shape=(rows, len(raw)), initializer=keras.initializers.Constant(np.tile(raw, (rows, 1)))
        )

    def call(self, x):
        return self.raw[: tf.shape(x)[0]]


def _raw():
    """The encoder's raw parameters for (MU, SIGMA): sigma = softplus(raw) + MIN_SCALE."""
    return np.concatenate([MU, np.log(np.expm1(SIGMA - MIN_SCALE))])


def _toy(gradient_estimator, objective="elbo", num_samples=1, rows=DRAWS):
    decoder = keras.layers.Dense(
        N_DATA,
        kernel_initializer=keras.initializers.Constant(W.T),
        bias_initializer=keras.initializers.Constant(B),
    )
    vae = tfvae.VAE(
        PerExampleParameters(rows, _raw()),
        decoder,
        latent_dim=D,
        likelihood=tfvae.likelihoods.Gaussian(scale=S),
        objective=objective,
        num_samples=num_samples,
        gradient_estimator=gradient_estimator,
        seed=0,
    )
    vae.build((None, N_DATA))
    return vae


def _per_example_gradients(vae, seed=(3, 4), rows=DRAWS):
    """`(rows, 2 D)` gradients of each example's surrogate with respect to `raw`."""
    x = tf.constant(np.tile(X, (rows, 1)))
    with tf.GradientTape() as tape:
        _, surrogate = vae.surrogate(x, tf.constant(seed, tf.int64), beta=1.0)
        encoder_loss = surrogate.loss if surrogate.encoder_loss is None else surrogate.encoder_loss
        total = tf.reduce_sum(encoder_loss)
    return tape.gradient(total, vae.encoder.raw).numpy(), surrogate


def _exact_loss_gradient():
    """d(-E_q[f] + KL)/d raw, closed form."""
    r = X - W @ MU - B
    column_norms = np.sum(W**2, axis=0)  # ||W_j||^2
    grad_mu = -(W.T @ r) / S**2 + MU
    grad_sigma = SIGMA * column_norms / S**2 + SIGMA - 1.0 / SIGMA
    dsigma_draw = special.expit(_raw()[D:])  # softplus' = sigmoid
    return np.concatenate([grad_mu, grad_sigma * dsigma_draw])


def _log_f(z):
    """log N(x; W z + b, S^2 I) for z `(..., D)`."""
    residual = X - (z @ W.T + B)
    return -0.5 * np.sum(residual**2, axis=-1) / S**2 - N_DATA * np.log(S * np.sqrt(2 * np.pi))


def _draw_formulas(eps, baseline=0.0):
    """Per-draw loss gradients w.r.t. raw of both estimators at noise eps `(..., D)`:
    (reparameterization, score function with constant baseline)."""
    z = MU + SIGMA * eps
    grad_z_f = ((X - (z @ W.T + B)) @ W) / S**2  # [..., D]
    kl_grad = np.concatenate([MU, SIGMA - 1.0 / SIGMA])
    reparameterization = np.concatenate([-grad_z_f, -grad_z_f * eps], axis=-1) + kl_grad
    signal = (-_log_f(z) - baseline)[..., None]  # l - b
    score = np.concatenate([eps / SIGMA, (eps**2 - 1.0) / SIGMA], axis=-1)
    score_function = signal * score + kl_grad
    chain = np.concatenate([np.ones(D), special.expit(_raw()[D:])])
    return reparameterization * chain, score_function * chain


class Moments(NamedTuple):
    mean: np.ndarray  # [2 D] the estimator's mean, coordinate by coordinate
    variance: np.ndarray  # [2 D] its variance
    variance_error: np.ndarray  # [2 D] the standard error of a DRAWS-draw sample variance
    total_error: float  # the same for the sum of the coordinates' sample variances


def _exact_moments(baseline=0.0, nodes=12):
    """`Moments` of both estimators (reparameterization, score function), by Gauss-Hermite
    quadrature over eps ~ N(0, I_2): exact for polynomials of degree < 2 nodes = 24, and
    the fourth central moments of the score function are of degree 16. The sample
    variance's standard error is sqrt((mu_4 - sigma^4) / DRAWS)."""
    points, weights = np.polynomial.hermite_e.hermegauss(nodes)
    weights = weights / weights.sum()
    grid = np.stack(np.meshgrid(points, points, indexing="ij"), axis=-1).reshape(-1, D)
    grid_weights = np.outer(weights, weights).reshape(-1)
    moments = []
    for values in _draw_formulas(grid, baseline):
        mean = grid_weights @ values
        squares = (values - mean) ** 2  # [G, 2 D]
        variance = grid_weights @ squares
        spread = grid_weights @ (squares - variance) ** 2
        total = squares.sum(axis=1)
        total_spread = grid_weights @ (total - variance.sum()) ** 2
        moments.append(
            Moments(mean, variance, np.sqrt(spread / DRAWS), float(np.sqrt(total_spread / DRAWS)))
        )
    return moments


def test_the_quadrature_reproduces_the_closed_form_gradient():
    """The reference itself: both per-draw formulas average to the closed form."""
    reparameterization, score_function = _exact_moments()
    np.testing.assert_allclose(reparameterization.mean, _exact_loss_gradient(), rtol=1e-10)
    np.testing.assert_allclose(score_function.mean, _exact_loss_gradient(), rtol=1e-10)


@pytest.mark.parametrize(
    "estimator",
    ["reparameterization", estimators.ScoreFunction(baseline="none"), "score_function"],
    ids=["reparameterization", "score_function-no-baseline", "score_function-moving-average"],
)
def test_each_estimator_is_unbiased_within_four_standard_errors(estimator):
    vae = _toy(estimator)
    if vae.gradient_baseline is not None:  # a moving average warmed up on the signal
        for step in range(20):
            _, surrogate = _per_example_gradients(vae, seed=(100 + step, 0))
            vae.gradient_baseline.update(surrogate.learning_signal)
    draws, _ = _per_example_gradients(vae)
    mean = draws.mean(axis=0)
    standard_error = draws.std(axis=0, ddof=1) / np.sqrt(DRAWS)
    exact = _exact_loss_gradient()
    np.testing.assert_array_less(np.abs(mean - exact), 4 * standard_error)


def test_each_draw_matches_the_estimators_formula():
    """Draw by draw, not only on average: the library's gradients equal the formulas at
    the noise it drew (z recovered from the terms' latent through q's parameters)."""
    vae = _toy(estimators.ScoreFunction(baseline="none"), rows=50)
    draws, _ = _per_example_gradients(vae, rows=50)
    noise = tfvae.random.standard_normal([1, 50, D], tf.constant((3, 4), tf.int64), tf.float64)
    _, expected = _draw_formulas(noise.numpy()[0])
    np.testing.assert_allclose(draws, expected, rtol=1e-9, atol=1e-9)
    vae = _toy("reparameterization", rows=50)
    draws, _ = _per_example_gradients(vae, rows=50)
    expected, _ = _draw_formulas(noise.numpy()[0])
    np.testing.assert_allclose(draws, expected, rtol=1e-9, atol=1e-9)


def _assert_variances_match(draws, moments):
    """Each coordinate's sample variance, and their sum, within 4 standard errors of the
    exact values."""
    measured = draws.var(axis=0, ddof=1)
    np.testing.assert_array_less(np.abs(measured - moments.variance), 4 * moments.variance_error)
    assert abs(measured.sum() - moments.variance.sum()) < 4 * moments.total_error
    return measured.sum()


def test_the_score_function_variance_exceeds_the_pathwise_one_by_the_closed_form_factor():
    """Total variance (the trace over mu and sigma) without a baseline: the quadrature
    gives 54.6 for reparameterization and 866.4 for the score function, a factor of 15.9
    for this toy. Both measured totals (10^4 draws) lie within 4 standard errors of theirs,
    coordinates too, so the measured factor is the closed forms' up to that noise
    (measured: 14.6, 777.3 against 53.1)."""
    reparameterization, score_function = _exact_moments()
    factor = score_function.variance.sum() / reparameterization.variance.sum()
    assert factor == pytest.approx(15.88, rel=1e-3), factor
    rep_draws, _ = _per_example_gradients(_toy("reparameterization"))
    sf_draws, _ = _per_example_gradients(_toy(estimators.ScoreFunction(baseline="none")))
    measured = _assert_variances_match(sf_draws, score_function) / _assert_variances_match(
        rep_draws, reparameterization
    )
    assert measured > 10


def test_the_moving_average_baseline_reduces_the_variance_as_the_closed_form_says():
    """After 20 steps the moving average sits near E[l] = 6.6 nats (within 0.1, against
    10^6 numpy draws); the score-function variance with it matches the quadrature's at
    that constant baseline within 4 standard errors, and is lower than without a baseline
    by the factor the quadrature gives at that baseline: 2.7 (measured: 2.9)."""
    vae = _toy("score_function")
    for step in range(20):
        _, surrogate = _per_example_gradients(vae, seed=(100 + step, 0))
        vae.gradient_baseline.update(surrogate.learning_signal)
    baseline = float(vae.gradient_baseline.running_average())
    expected_signal = -np.mean(
        _log_f(MU + SIGMA * np.random.default_rng(0).normal(size=(10**6, D)))
    )
    assert baseline == pytest.approx(expected_signal, abs=0.1)
    _, with_baseline = _exact_moments(baseline)
    _, without = _exact_moments()
    factor = without.variance.sum() / with_baseline.variance.sum()
    assert factor == pytest.approx(2.71, rel=0.02), factor
    draws, _ = _per_example_gradients(vae)
    unbaselined, _ = _per_example_gradients(_toy(estimators.ScoreFunction(baseline="none")))
    measured = _assert_variances_match(unbaselined, without) / _assert_variances_match(
        draws, with_baseline
    )
    assert measured > 2


@pytest.mark.parametrize("num_samples", [1, 5])
def test_dreg_has_the_expectation_of_the_iwae_gradient(num_samples):
    """Paired draws on the same noise: the mean of DReG's encoder gradient minus the plain
    (reparameterized) IWAE gradient lies within 4 standard errors of 0; for k = 1 both
    also average to the closed-form ELBO gradient (IWAE with one sample is the ELBO with
    a Monte Carlo KL, whose expectation is the analytic KL)."""
    dreg, _ = _per_example_gradients(_toy("dreg", "iwae", num_samples))
    naive, _ = _per_example_gradients(_toy("reparameterization", "iwae", num_samples))
    difference = dreg - naive
    standard_error = difference.std(axis=0, ddof=1) / np.sqrt(DRAWS)
    np.testing.assert_array_less(np.abs(difference.mean(axis=0)), 4 * standard_error)
    assert np.all(standard_error > 0)  # the two are different estimators
    if num_samples == 1:
        exact = _exact_loss_gradient()
        standard_error = dreg.std(axis=0, ddof=1) / np.sqrt(DRAWS)
        np.testing.assert_array_less(np.abs(dreg.mean(axis=0) - exact), 4 * standard_error)


def _digits_vae(gradient_estimator, objective="elbo", num_samples=1):
    vae = tfvae.VAE(
        tfvae.networks.mlp_encoder((16,), seed=1),
        tfvae.networks.mlp_decoder((16,), seed=2),
        latent_dim=3,
        objective=objective,
        num_samples=num_samples,
        gradient_estimator=gradient_estimator,
        seed=0,
    )
    vae.build((None, 8, 8))
    return vae


def _gradients(vae, x, seed=(5, 6)):
    split = vae.gradient_estimator.separates_encoder_loss
    with tf.GradientTape(persistent=split) as tape:
        _, surrogate = vae.surrogate(x, tf.constant(seed, tf.int64))
        losses = [None if loss is None else tf.reduce_mean(loss) for loss in surrogate[:2]]
    return vae.surrogate_gradients(tape, *losses)


def test_dreg_differs_from_the_iwae_gradient_only_in_the_encoder():
    """Same weights, same noise: the decoder's gradients are the IWAE loss's exactly, the
    encoder's are not."""
    x = tf.constant(np.random.default_rng(0).random((16, 8, 8)).round())
    dreg, naive = _digits_vae("dreg", "iwae", 4), _digits_vae("reparameterization", "iwae", 4)
    naive.set_weights(dreg.get_weights())
    encoder = {id(v) for v in dreg.encoder.trainable_variables}
    for variable, a, b in zip(
        dreg.trainable_variables, _gradients(dreg, x), _gradients(naive, x), strict=True
    ):
        if id(variable) in encoder:
            assert not np.allclose(a, b, rtol=1e-3), variable.path
        else:
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=variable.path)


def test_the_score_function_leaves_the_decoder_gradient_as_it_is():
    """z held constant changes nothing for the decoder: its gradients equal the
    reparameterization estimator's on the same noise."""
    x = tf.constant(np.random.default_rng(1).random((16, 8, 8)).round())
    score, pathwise = _digits_vae("score_function"), _digits_vae("reparameterization")
    pathwise.set_weights(score.get_weights()[: len(pathwise.get_weights())])
    decoder = {id(v) for v in score.decoder.trainable_variables}
    for variable, a, b in zip(
        score.trainable_variables, _gradients(score, x), _gradients(pathwise, x), strict=True
    ):
        if id(variable) in decoder:
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=variable.path)


def test_the_nvil_baseline_learns_only_from_its_own_loss():
    """The learned baseline's gradient is that of mean_l (l_l - b(x))^2 over the batch,
    checked against a finite difference of that loss along its output bias; the encoder's
    gradient does not change when b(x) is shifted by a constant."""
    vae = _digits_vae(estimators.ScoreFunction(baseline="nvil", hidden_units=8))
    x = tf.constant(np.random.default_rng(2).random((16, 8, 8)).round())
    bias = vae.gradient_baseline.output_layer.bias
    gradients = dict(zip(map(id, vae.trainable_variables), _gradients(vae, x), strict=True))

    def baseline_loss(shift):
        bias.assign(np.array([shift]))
        _, surrogate = vae.surrogate(x, tf.constant((5, 6), tf.int64))
        signal = surrogate.learning_signal  # L = 1: the per-sample signal
        return float(tf.reduce_mean(tf.square(signal - vae.gradient_baseline(x))))

    h = 1e-4
    numeric = (baseline_loss(h) - baseline_loss(-h)) / (2 * h)
    bias.assign(np.zeros(1))
    assert float(gradients[id(bias)][0]) == pytest.approx(numeric, rel=1e-6)


def test_suitable_lists_the_estimators_of_each_objective():
    both = ["reparameterization", "score_function"]
    assert estimators.suitable(tfvae.objectives.ELBO()) == both
    assert estimators.suitable(tfvae.objectives.ELBO(), "mc") == both
    assert estimators.suitable(tfvae.objectives.IWAE()) == ["dreg", "reparameterization"]
    free_bits = tfvae.objectives.ELBO(free_bits=0.5)
    assert estimators.suitable(free_bits, "analytic") == both
    assert estimators.suitable(free_bits, "mc") == ["reparameterization"]


@pytest.mark.parametrize(
    ("estimator", "objective"),
    [("score_function", "elbo"), ("dreg", "iwae"), ("reparameterization", "elbo")],
)
def test_each_examples_surrogate_depends_on_its_own_draws_only(estimator, objective):
    """With L = 3 samples per example: every per-example output has shape (rows,), the
    gradient of example 0's surrogate reaches only example 0's parameters, and the
    score function's learning signal is the mean over its samples of -log p(x|z_l),
    computed here in numpy from the same noise (the KL is analytic). Its NVIL term's
    gradient for the baseline's output bias is example 0's own, -2 (signal_0 - b(x_0))."""
    rows, seed = 6, tf.constant((3, 4), tf.int64)
    if estimator == "score_function":
        estimator = estimators.ScoreFunction(baseline="nvil", hidden_units=4)
    vae = _toy(estimator, objective, num_samples=3, rows=rows)
    x = tf.constant(np.tile(X, (rows, 1)))
    with tf.GradientTape(persistent=True) as tape:
        _, surrogate = vae.surrogate(x, seed, beta=1.0)
        first_loss = surrogate.loss[0]
        first = first_loss if surrogate.encoder_loss is None else surrogate.encoder_loss[0]
    for output in surrogate:
        assert output is None or output.shape == (rows,)
    gradient = tape.gradient(first, vae.encoder.raw).numpy()  # [rows, 2 D]
    assert np.all(gradient[0] != 0) and np.all(gradient[1:] == 0)
    if vae.gradient_baseline is not None:
        noise = tfvae.random.standard_normal([3, rows, D], seed, tf.float64).numpy()
        expected = -_log_f(MU + SIGMA * noise).mean(axis=0)  # [rows]
        np.testing.assert_allclose(surrogate.learning_signal, expected, rtol=1e-10)
        bias = vae.gradient_baseline.output_layer.bias
        b_0 = float(vae.gradient_baseline(x[:1])[0])
        own = -2 * (expected[0] - b_0)
        assert float(tape.gradient(first_loss, bias)[0]) == pytest.approx(own, rel=1e-8)


@pytest.mark.parametrize(
    "estimator",
    [estimators.ScoreFunction(baseline="nvil", hidden_units=4), "dreg", "reparameterization"],
    ids=["score_function_nvil", "dreg", "reparameterization"],
)
def test_fit_takes_steps_with_each_estimator(estimator):
    """Two steps of `fit` (no XLA): every trainable variable moves, and a baseline's
    average is updated once per step."""
    objective = "iwae" if estimator == "dreg" else "elbo"
    vae = _digits_vae(estimator, objective, num_samples=2)
    vae.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=False)
    x = np.random.default_rng(3).random((32, 8, 8)).round()
    before = [v.numpy().copy() for v in vae.trainable_variables]
    vae.fit(x, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for variable, initial in zip(vae.trainable_variables, before, strict=True):
        assert not np.array_equal(variable.numpy(), initial), variable.path
    if vae.gradient_baseline is not None:
        assert float(vae.gradient_baseline.steps.numpy()) == 2.0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"gradient_estimator": "dreg"}, "objective='iwae' with gradient_estimator='dreg'"),
        (
            {"gradient_estimator": "score_function", "objective": "iwae"},
            "objective='elbo' with gradient_estimator='score_function'",
        ),
        (
            {
                "gradient_estimator": "score_function",
                "objective": tfvae.objectives.ELBO(free_bits=0.5),
                "kl": "mc",
            },
            "kl='analytic' with free bits",
        ),
        ({"gradient_estimator": "nope"}, "Unknown gradient_estimator 'nope'"),
    ],
)
def test_unsuitable_estimators_are_refused_by_name(arguments, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        tfvae.VAE(tfvae.networks.mlp_encoder(), tfvae.networks.mlp_decoder(), 2, **arguments)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"baseline": "mean"}, "baseline"),
        ({"decay": 1.0}, r"decay in \[0, 1\)"),
        ({"hidden_units": 0}, "hidden_units"),
    ],
)
def test_score_function_settings_are_checked(arguments, message):
    with pytest.raises(ValueError, match=message):
        estimators.ScoreFunction(**arguments)
