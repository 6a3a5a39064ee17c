"""Tests for tfvae.likelihoods: log densities and means against scipy and numpy closed forms."""

import functools
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import special, stats

from tests import helpers
from tfvae import likelihoods

BATCH = 3
DATA_SHAPE = (4, 4, 1)
EVENT_NDIMS = len(DATA_SHAPE)
KNOWN_NAMES = {
    "bernoulli",
    "binomial",
    "categorical",
    "continuous_bernoulli",
    "gaussian",
    "gaussian_learned_scale",
}


def all_likelihoods():
    return [
        likelihoods.Bernoulli(),
        likelihoods.ContinuousBernoulli(),
        likelihoods.Gaussian(scale=0.5),
        likelihoods.GaussianLearnedScale(min_scale=0.01),
        likelihoods.Binomial(total_count=16),
    ]


def raw_parameters(rng, lik, low=-3.0, high=3.0):
    """Random decoder outputs `(batch, *data_shape, num_params)` as float32 numpy."""
    shape = (BATCH, *DATA_SHAPE, lik.num_params)
    return rng.uniform(low, high, size=shape).astype(np.float32)


def model_log_prob(lik, raw, x):
    """log p(x) per example through the public API, as float64 numpy."""
    dist = lik.distribution(lik.parameters(tf.constant(raw)), event_ndims=EVENT_NDIMS)
    return dist.log_prob(tf.constant(x, dtype=tf.float32)).numpy().astype(np.float64)


def per_example_sum(elementwise):
    return elementwise.reshape(BATCH, -1).sum(axis=1)


def continuous_bernoulli_log_norm(p):
    """log C(p), C(p) = 2 artanh(1 - 2p) / (1 - 2p), in float64; a series near p = 1/2."""
    u = 1.0 - 2.0 * p
    near = np.abs(u) < 1e-2
    u_far = np.where(near, 0.5, u)
    exact = np.log(2.0 * np.arctanh(u_far) / u_far)
    # artanh(u) / u = 1 + u^2/3 + u^4/5 + ...; the next term is below 1e-21 for |u| < 1e-2.
    series = np.log(2.0) + np.log1p(u**2 / 3 + u**4 / 5 + u**6 / 7 + u**8 / 9)
    return np.where(near, series, exact)


# ----------------------------------------------------------------------- log_prob


def test_bernoulli_log_prob_matches_scipy(rng):
    lik = likelihoods.Bernoulli()
    raw = raw_parameters(rng, lik)
    x = rng.integers(0, 2, size=(BATCH, *DATA_SHAPE)).astype(np.float32)
    p = special.expit(raw[..., 0].astype(np.float64))

    expected = per_example_sum(stats.bernoulli.logpmf(x, p))

    np.testing.assert_allclose(model_log_prob(lik, raw, x), expected, rtol=1e-4)


def test_continuous_bernoulli_log_prob_matches_closed_form(rng):
    lik = likelihoods.ContinuousBernoulli()
    # Logits of magnitude >= 0.5 keep p away from 1/2.
    raw = raw_parameters(rng, lik, 0.5, 4.0) * rng.choice([-1.0, 1.0], size=(BATCH, *DATA_SHAPE, 1))
    raw = raw.astype(np.float32)
    x = rng.uniform(0.0, 1.0, size=(BATCH, *DATA_SHAPE))
    x[0, 0, 0, 0], x[0, 0, 1, 0] = 0.0, 1.0  # the endpoints belong to the support
    x = x.astype(np.float32)
    p = special.expit(raw[..., 0].astype(np.float64))
    xd = x.astype(np.float64)

    elementwise = continuous_bernoulli_log_norm(p) + xd * np.log(p) + (1 - xd) * np.log1p(-p)

    np.testing.assert_allclose(model_log_prob(lik, raw, x), per_example_sum(elementwise), rtol=1e-4)


def test_continuous_bernoulli_log_prob_near_half(rng):
    lik = likelihoods.ContinuousBernoulli()
    raw = raw_parameters(rng, lik, -1e-2, 1e-2)
    raw[0] = 0.0  # p = 1/2 exactly, where C = 2 and the density is uniform
    x = rng.uniform(0.0, 1.0, size=(BATCH, *DATA_SHAPE)).astype(np.float32)
    p = special.expit(raw[..., 0].astype(np.float64))
    xd = x.astype(np.float64)

    elementwise = continuous_bernoulli_log_norm(p) + xd * np.log(p) + (1 - xd) * np.log1p(-p)
    got = model_log_prob(lik, raw, x)

    # The sums are close to 0 (the density is nearly uniform), hence an absolute tolerance.
    np.testing.assert_allclose(got, per_example_sum(elementwise), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got[0], 0.0, atol=1e-5)  # log C(1/2) + log(1/2) = 0


def test_gaussian_fixed_scale_log_prob_matches_scipy(rng):
    lik = likelihoods.Gaussian(scale=0.5)
    raw = raw_parameters(rng, lik)
    x = rng.normal(size=(BATCH, *DATA_SHAPE)).astype(np.float32)

    expected = per_example_sum(stats.norm.logpdf(x, loc=raw[..., 0], scale=0.5))

    np.testing.assert_allclose(model_log_prob(lik, raw, x), expected, rtol=1e-4)


def test_gaussian_learned_scale_log_prob_matches_scipy(rng):
    lik = likelihoods.GaussianLearnedScale(min_scale=0.01)
    raw = raw_parameters(rng, lik)
    x = rng.normal(size=(BATCH, *DATA_SHAPE)).astype(np.float32)
    raw64 = raw.astype(np.float64)
    scale = np.logaddexp(0.0, raw64[..., 1]) + 0.01  # softplus + floor

    expected = per_example_sum(stats.norm.logpdf(x, loc=raw64[..., 0], scale=scale))

    np.testing.assert_allclose(model_log_prob(lik, raw, x), expected, rtol=1e-4)


def test_binomial_log_prob_matches_scipy(rng):
    lik = likelihoods.Binomial(total_count=16)
    raw = raw_parameters(rng, lik)
    x = rng.integers(0, 17, size=(BATCH, *DATA_SHAPE))
    x[0, 0, :2, 0] = [0, 16]  # both ends of the support
    p = special.expit(raw[..., 0].astype(np.float64))

    expected = per_example_sum(stats.binom.logpmf(x, 16, p))

    np.testing.assert_allclose(model_log_prob(lik, raw, x.astype(np.float32)), expected, rtol=1e-4)


@pytest.mark.parametrize("lik", all_likelihoods(), ids=lambda lik: lik.family)
def test_log_prob_is_the_same_under_tf_function_and_xla(rng, lik):
    raw = tf.constant(raw_parameters(rng, lik))
    x = tf.constant(rng.integers(0, 2, size=(BATCH, *DATA_SHAPE)).astype(np.float32))

    def log_prob(raw, x):
        return lik.distribution(lik.parameters(raw), event_ndims=EVENT_NDIMS).log_prob(x)

    eager = log_prob(raw, x).numpy()
    graph = tf.function(log_prob)(raw, x).numpy()
    xla = tf.function(log_prob, jit_compile=True)(raw, x).numpy()

    assert eager.shape == (BATCH,) and np.all(np.isfinite(eager))
    np.testing.assert_allclose(graph, eager, rtol=1e-5)
    np.testing.assert_allclose(xla, eager, rtol=1e-4)


# ---------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    ("lik", "names"),
    [
        (likelihoods.Bernoulli(), ("logits",)),
        (likelihoods.ContinuousBernoulli(), ("logits",)),
        (likelihoods.Gaussian(), ("loc",)),
        (likelihoods.GaussianLearnedScale(), ("loc", "scale")),
        (likelihoods.Binomial(), ("logits",)),
    ],
    ids=lambda value: getattr(value, "name", None),
)
def test_parameters_have_the_declared_names_and_shapes(rng, lik, names):
    assert lik.param_names == names
    assert lik.num_params == len(names)
    raw = raw_parameters(rng, lik)

    params = lik.parameters(tf.constant(raw))

    assert list(params) == list(names)
    for value in params.values():
        assert value.shape == (BATCH, *DATA_SHAPE)
        assert value.dtype == tf.float32


def test_unconstrained_parameters_are_the_raw_slices(rng):
    lik = likelihoods.GaussianLearnedScale(min_scale=0.01)
    raw = raw_parameters(rng, lik)

    params = lik.parameters(tf.constant(raw))

    np.testing.assert_array_equal(params["loc"].numpy(), raw[..., 0])
    np.testing.assert_allclose(
        params["scale"].numpy(), np.logaddexp(0.0, raw[..., 1].astype(np.float64)) + 0.01, rtol=1e-6
    )


def test_learned_scale_respects_its_floor():
    lik = likelihoods.GaussianLearnedScale(min_scale=0.25)
    raw = np.full((1, *DATA_SHAPE, 2), -80.0, dtype=np.float32)

    scale = lik.parameters(tf.constant(raw))["scale"].numpy()

    np.testing.assert_allclose(scale, 0.25, rtol=1e-6)


# ------------------------------------------------------------------------- support


def assert_support_error(lik, x, low, high):
    with pytest.raises(ValueError) as info:
        lik.check_support(x)
    message = str(info.value)
    assert repr(lik.family) in message
    assert re.search(r"\bx\b", message)
    assert f"[{low}, {high}]" in message
    return message


@pytest.mark.parametrize("cls", [likelihoods.Bernoulli, likelihoods.ContinuousBernoulli])
def test_unit_interval_likelihoods_reject_grey_levels(cls):
    x = np.array([[0.0, 17.0], [128.0, 255.0]], dtype=np.float32)

    message = assert_support_error(cls(), x, "0", "255")

    assert "3 of 4" in message
    assert "255" in message and "[0, 1]" in message


@pytest.mark.parametrize("cls", [likelihoods.Bernoulli, likelihoods.ContinuousBernoulli])
def test_unit_interval_likelihoods_reject_negative_values(cls):
    x = np.array([-0.5, 0.0, 0.5, 1.0], dtype=np.float32)

    message = assert_support_error(cls(), x, "-0.5", "1")

    assert "1 of 4" in message


def test_binomial_rejects_non_integers():
    x = np.array([0.0, 3.5, 16.0], dtype=np.float32)

    message = assert_support_error(likelihoods.Binomial(total_count=16), x, "0", "16")

    assert "1 of 3" in message and "16" in message


def test_binomial_rejects_counts_above_total_count():
    x = np.array([0.0, 8.0, 17.0, 255.0], dtype=np.float32)

    message = assert_support_error(likelihoods.Binomial(total_count=16), x, "0", "255")

    assert "2 of 4" in message


def test_support_error_uses_the_argument_name():
    expected = r"Expected validation_data in the support .* reals in \[0, 1\].*range over \[0, 2\]"
    with pytest.raises(ValueError, match=expected):
        likelihoods.Bernoulli().check_support(np.array([0.0, 2.0]), argument="validation_data")


def test_gaussian_rejects_infinity():
    x = np.array([0.0, 1.5, np.inf], dtype=np.float32)

    message = assert_support_error(likelihoods.Gaussian(), x, "0", "inf")

    assert "1 of 3" in message


@pytest.mark.parametrize("cls", [likelihoods.Gaussian, likelihoods.GaussianLearnedScale])
def test_gaussians_reject_nan(cls):
    x = np.array([0.0, np.nan, -2.0], dtype=np.float32)

    with pytest.raises(ValueError) as info:
        cls().check_support(x)

    message = str(info.value)
    assert repr(cls.family) in message and "x" in message and "finite" in message
    assert "1 of 3" in message and "1 NaN" in message
    assert "the values range over [-2, 0]" in message


@pytest.mark.parametrize(
    ("lik", "x"),
    [
        (likelihoods.Bernoulli(), np.array([0.0, 1.0, 1.0, 0.0])),
        (likelihoods.ContinuousBernoulli(), np.array([0.0, 0.25, 0.999, 1.0])),
        (likelihoods.Gaussian(), np.array([-1e6, 0.0, 3.25, 1e6])),
        (likelihoods.GaussianLearnedScale(), np.array([-2.0, 0.0, 2.0])),
        (likelihoods.Binomial(total_count=16), np.array([0.0, 1.0, 15.0, 16.0])),
    ],
    ids=lambda value: getattr(value, "name", None),
)
def test_in_support_data_passes_silently(lik, x):
    assert lik.check_support(x) is None
    assert lik.check_support(tf.constant(x, dtype=tf.float32)) is None


MIXED = np.array(
    [-1.0, -0.0, 0.0, 0.3, 1.0, 1.5, 2.0, 16.0, 16.5, 17.0, 255.0, np.inf, -np.inf, np.nan]
)


@pytest.mark.parametrize(
    ("lik", "predicate"),
    [
        (likelihoods.Bernoulli(), lambda x: (x >= 0) & (x <= 1)),
        (likelihoods.ContinuousBernoulli(), lambda x: (x >= 0) & (x <= 1)),
        (likelihoods.Gaussian(), np.isfinite),
        (likelihoods.GaussianLearnedScale(), np.isfinite),
        (
            likelihoods.Binomial(total_count=16),
            lambda x: np.isfinite(x) & (x >= 0) & (x <= 16) & (np.mod(x, 1) == 0),
        ),
    ],
    ids=lambda value: getattr(value, "name", None),
)
def test_in_support_agrees_with_numpy_elementwise(lik, predicate):
    with np.errstate(invalid="ignore"):
        expected = predicate(MIXED)

    got = lik.in_support(tf.constant(MIXED, dtype=tf.float32)).numpy()

    np.testing.assert_array_equal(got, expected)


# ---------------------------------------------------------------------------- mean


def test_bernoulli_mean_is_sigmoid(rng):
    lik = likelihoods.Bernoulli()
    raw = raw_parameters(rng, lik)
    mean = lik.distribution(lik.parameters(raw), EVENT_NDIMS).mean().numpy()
    np.testing.assert_allclose(mean, special.expit(raw[..., 0].astype(np.float64)), rtol=1e-5)


def test_binomial_mean_is_n_sigmoid(rng):
    lik = likelihoods.Binomial(total_count=16)
    raw = raw_parameters(rng, lik)
    mean = lik.distribution(lik.parameters(raw), EVENT_NDIMS).mean().numpy()
    np.testing.assert_allclose(mean, 16 * special.expit(raw[..., 0].astype(np.float64)), rtol=1e-5)


@pytest.mark.parametrize(
    "lik", [likelihoods.Gaussian(scale=0.5), likelihoods.GaussianLearnedScale()], ids=str
)
def test_gaussian_mean_is_loc(rng, lik):
    raw = raw_parameters(rng, lik)
    mean = lik.distribution(lik.parameters(raw), EVENT_NDIMS).mean().numpy()
    np.testing.assert_array_equal(mean, raw[..., 0])


def test_continuous_bernoulli_mean_matches_closed_form(rng):
    lik = likelihoods.ContinuousBernoulli()
    raw = raw_parameters(rng, lik, 0.5, 4.0) * rng.choice([-1.0, 1.0], size=(BATCH, *DATA_SHAPE, 1))
    raw = raw.astype(np.float32)
    p = special.expit(raw[..., 0].astype(np.float64))

    expected = p / (2 * p - 1) + 1 / (2 * np.arctanh(1 - 2 * p))
    mean = lik.distribution(lik.parameters(raw), EVENT_NDIMS).mean().numpy()

    np.testing.assert_allclose(mean, expected, rtol=1e-4)
    # The mean lies strictly between 1/2 and p.
    assert np.all((mean - 0.5) * (p - 0.5) > 0) and np.all(np.abs(mean - 0.5) < np.abs(p - 0.5))


# -------------------------------------------------------------------- constructors


@pytest.mark.parametrize(
    ("make", "argument", "value"),
    [
        (lambda: likelihoods.Gaussian(scale=0), "scale", "0"),
        (lambda: likelihoods.Gaussian(scale=-1), "scale", "-1"),
        (lambda: likelihoods.Gaussian(scale=float("nan")), "scale", "nan"),
        (lambda: likelihoods.Binomial(total_count=0), "total_count", "0"),
        (lambda: likelihoods.Binomial(total_count=2.5), "total_count", "2.5"),
        (lambda: likelihoods.Binomial(total_count=True), "total_count", "True"),
        (lambda: likelihoods.GaussianLearnedScale(min_scale=0), "min_scale", "0"),
    ],
)
def test_constructors_reject_invalid_arguments(make, argument, value):
    with pytest.raises(ValueError) as info:
        make()
    message = str(info.value)
    assert f"Expected {argument} " in message
    assert f"Received: {argument}={value}" in message


def test_valid_constructor_arguments_are_kept():
    assert likelihoods.Gaussian(scale=2).scale == 2.0
    assert likelihoods.Binomial(total_count=np.int64(7)).total_count == 7
    assert likelihoods.GaussianLearnedScale(min_scale=0.5).min_scale == 0.5


# ------------------------------------------------------------------------ registry


def test_registry_lists_the_families():
    assert set(likelihoods.registry.names()) == KNOWN_NAMES


@pytest.mark.parametrize("name", sorted(KNOWN_NAMES))
def test_get_resolves_each_name(name):
    lik = likelihoods.get(name)
    assert isinstance(lik, likelihoods.Likelihood)
    assert lik.family == name


def test_get_unknown_name_lists_every_known_name():
    with pytest.raises(ValueError) as info:
        likelihoods.get("nope")
    message = str(info.value)
    assert "'nope'" in message and "likelihood" in message
    for name in KNOWN_NAMES:
        assert repr(name) in message


def test_get_passes_an_instance_through():
    lik = likelihoods.Gaussian(scale=0.5)
    assert likelihoods.get(lik) is lik


@pytest.mark.parametrize("identifier", [42, None, 1.5, ["bernoulli"]])
def test_get_rejects_other_types(identifier):
    with pytest.raises(TypeError, match=r"likelihood=") as info:
        likelihoods.get(identifier)
    assert repr(identifier) in str(info.value)


@pytest.mark.parametrize("lik", all_likelihoods(), ids=lambda lik: lik.family)
def test_config_round_trip(lik):
    config = lik.get_config()

    restored = type(lik).from_config(config)

    assert type(restored) is type(lik)
    assert restored.get_config() == config
    assert restored is not lik


@pytest.mark.parametrize("lik", all_likelihoods(), ids=lambda lik: lik.family)
def test_keras_serialization_round_trip_through_get(lik):
    serialized = keras.saving.serialize_keras_object(lik)

    restored = likelihoods.get(serialized)

    assert type(restored) is type(lik)
    assert restored.get_config() == lik.get_config()


@pytest.mark.parametrize("name", sorted(likelihoods.registry.names()))
def test_exportable_mean_equals_the_distribution_mean(name):
    """`Likelihood.mean` (ONNX-convertible ops) agrees with TFP's mean, across logits."""
    lik = likelihoods.get(name)
    logits = np.concatenate([np.linspace(-12, 12, 481), [-0.1, -1e-3, 0.0, 1e-7, 0.0999]])
    raw = np.repeat(logits.astype(np.float32)[:, None], lik.num_params, axis=1)
    params = lik.parameters(raw[:, None, :])  # data shape (1,)
    expected = lik.distribution(params, event_ndims=1).mean().numpy()
    np.testing.assert_allclose(lik.mean(params).numpy(), expected, atol=2e-6)


# ------------------------------------------------------------------ the numpy side


def test_continuous_bernoulli_inverse_cdf_matches_the_density():
    """The numpy inverse-CDF draw against the closed-form CDF (KS) and variance."""
    family = likelihoods.ContinuousBernoulli()
    rng = np.random.default_rng(0)
    for logit in (-3.0, -0.2, 1e-6, 2.5):
        draws = family.numpy_sample({"logits": np.full(40_000, logit)}, rng)
        cdf = functools.partial(helpers.continuous_bernoulli_cdf, logit=logit)
        assert stats.kstest(draws, cdf).pvalue > 1e-3
        density = np.exp(family.numpy_log_prob(np.linspace(0, 1, 20001), {"logits": logit}))
        grid = np.linspace(0, 1, 20001)
        mean = np.trapezoid(grid * density, grid)
        variance = np.trapezoid(grid**2 * density, grid) - mean**2
        assert abs(draws.var() / variance - 1) < 0.03


def _spread_parameters(family, count, rng):
    """{name: (count, *event)} float64 parameters over a wide range, for numpy draws."""
    params = {}
    for name in family.param_names:
        if name == "logits" and isinstance(family, likelihoods.Categorical):
            params[name] = rng.normal(scale=1.5, size=(count, family.num_levels))
        elif name == "logits":
            params[name] = np.linspace(-3.0, 3.0, count)
        elif name == "scale":
            params[name] = np.geomspace(0.1, 3.0, count)
        else:
            params[name] = np.linspace(-2.0, 2.0, count)
    return params


@pytest.mark.parametrize(
    "family", [*all_likelihoods(), likelihoods.Categorical(num_levels=5)], ids=repr
)
def test_numpy_draws_follow_each_family(family):
    """`numpy_sample` by distribution: 20,000 draws at each of 12 parameter values, each
    value's draws against scipy or a closed form (chi-squared for counts, KS otherwise),
    and the pooled variance. A sampler that uses the variance for the spread, or drops a
    scale or a total count, fails both."""
    rng = np.random.default_rng(4)
    count, draws_per_value = 12, 20_000
    params = _spread_parameters(family, count, rng)
    many = {
        name: np.broadcast_to(value, (draws_per_value, *value.shape))
        for name, value in params.items()
    }

    draws = family.numpy_sample(many, rng).astype(np.float64)  # [N, 12]

    assert draws.shape == (draws_per_value, count)
    p_values, variances = [], []
    for index in range(count):
        p_value, variance = helpers.draw_reference(family, params, index)
        p_values.append(p_value(draws[:, index]))
        variances.append(variance)
    # 12 tests: the smallest p-value falls below 1e-4 by chance with probability 0.0012.
    assert min(p_values) > 1e-4, (min(p_values), int(np.argmin(p_values)))
    # Pooled over 12 values: the relative standard error is below 1.5% for these families.
    assert draws.var(axis=0).sum() / sum(variances) == pytest.approx(1.0, abs=0.04)


LOGITS = np.array([-4.0, -1.0, -0.05, 0.0, 0.3, 2.0, 7.0])


def _scipy_log_prob(family, x, params):
    """log p(x) of each value from scipy, the independent reference."""
    if isinstance(family, likelihoods.ContinuousBernoulli):
        # Loaiza-Ganem and Cunningham's normalizer C = 2 artanh(1 - 2 lam) / (1 - 2 lam).
        lam = 1 / (1 + np.exp(-params["logits"]))
        half = np.isclose(lam, 0.5)
        safe = np.where(half, 0.25, 1 - 2 * lam)
        normalizer = np.where(half, 2.0, 2 * np.arctanh(safe) / safe)
        return x * np.log(lam) + (1 - x) * np.log1p(-lam) + np.log(normalizer)
    if isinstance(family, likelihoods.Bernoulli):
        lam = 1 / (1 + np.exp(-params["logits"]))
        return stats.bernoulli(lam).logpmf(x)
    if isinstance(family, likelihoods.Binomial):
        lam = 1 / (1 + np.exp(-params["logits"]))
        return stats.binom(family.total_count, lam).logpmf(x)
    if isinstance(family, likelihoods.GaussianLearnedScale):
        return stats.norm(params["loc"], params["scale"]).logpdf(x)
    return stats.norm(params["loc"], family.scale).logpdf(x)


@pytest.mark.parametrize(
    "family, x, params",
    [
        (likelihoods.Bernoulli(), np.array([0, 1, 1, 0, 1, 0, 1.0]), {"logits": LOGITS}),
        (likelihoods.Binomial(5), np.array([0, 1, 5, 2, 3, 4, 5.0]), {"logits": LOGITS}),
        (likelihoods.Gaussian(0.5), np.linspace(-2, 2, 7), {"loc": LOGITS / 3}),
        (
            likelihoods.GaussianLearnedScale(),
            np.linspace(-2, 2, 7),
            {"loc": LOGITS / 3, "scale": np.linspace(0.1, 3, 7)},
        ),
        (likelihoods.ContinuousBernoulli(), np.linspace(0, 1, 7), {"logits": LOGITS}),
    ],
    ids=repr,
)
def test_numpy_log_prob_matches_scipy(family, x, params):
    np.testing.assert_allclose(
        family.numpy_log_prob(x, params), _scipy_log_prob(family, x, params), rtol=1e-6, atol=1e-9
    )


# -------------------------------------------------------------------- categorical


def test_categorical_log_prob_matches_scipy():
    family = likelihoods.Categorical(num_levels=17)
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=2.0, size=(3, 4, 17))
    x = rng.integers(0, 17, size=(3, 4)).astype(np.float32)
    expected = np.take_along_axis(
        special.log_softmax(logits, axis=-1), x[..., None].astype(int), -1
    )
    params = family.parameters(tf.constant(logits, tf.float32))
    keras_log_prob = family.distribution(params, event_ndims=1).log_prob(x).numpy()
    np.testing.assert_allclose(keras_log_prob, expected[..., 0].sum(-1), rtol=1e-5)
    np.testing.assert_allclose(
        family.numpy_log_prob(x, {"logits": logits}), expected[..., 0], rtol=1e-12
    )
    mean = family.mean(params).numpy()
    np.testing.assert_allclose(mean, special.softmax(logits, -1) @ np.arange(17), rtol=1e-5)


def test_categorical_draws_match_keras_draws_level_by_level():
    """numpy draws and TFP's draws from the same logits: a chi-squared test of the two
    samples' counts per level (a 2 x K contingency table) for each of 6 data values."""
    family = likelihoods.Categorical(num_levels=5)
    logits = np.random.default_rng(1).normal(scale=1.5, size=(6, 5))
    n = 20_000
    ours = family.numpy_sample(
        {"logits": np.broadcast_to(logits, (n, 6, 5))}, np.random.default_rng(2)
    )
    params = family.parameters(tf.constant(logits, tf.float32))
    theirs = family.distribution(params, event_ndims=1).sample(n, seed=[3, 4]).numpy()
    for value in range(6):
        table = [np.bincount(draws[:, value].astype(int), minlength=5) for draws in (ours, theirs)]
        assert stats.chi2_contingency(table).pvalue > 1e-3
    probabilities = special.softmax(logits, -1)
    levels = np.arange(5)
    variance = probabilities @ levels**2 - (probabilities @ levels) ** 2
    np.testing.assert_allclose(ours.var(axis=0), variance, rtol=0.05)


@pytest.mark.parametrize("num_levels", [0, 1, 2.5, True])
def test_categorical_needs_two_levels_or_more(num_levels):
    with pytest.raises(ValueError, match="num_levels"):
        likelihoods.Categorical(num_levels=num_levels)


def test_categorical_support_and_recipes():
    from tfvae import workflow

    family = likelihoods.Categorical(num_levels=17)
    assert family.num_params == 17 and family.display_range() == (0.0, 16.0)
    family.check_support(np.array([0.0, 16.0, 3.0]))
    for bad in (17.0, 2.5, -1.0):
        with pytest.raises(ValueError, match=r"integers in \[0, 16\]"):
            family.check_support(np.array([bad]))
    digits = workflow.recipe_for("digits", np.zeros((1, 8, 8, 1), np.uint8), "categorical")
    assert digits.likelihood_config == {"num_levels": 17} and digits.scale is None
    mnist = workflow.recipe_for("mnist", np.zeros((1, 28, 28, 1), np.uint8), "categorical")
    assert mnist.likelihood_config == {"num_levels": 2} and mnist.binarize == "dynamic"


# ------------------------------------------------ precision, boundaries and recipes


def _float64_log_prob(family, x, params):
    """log p(x) of each value in float64 from float64 copies of the inputs."""
    x = np.asarray(x, dtype=np.float64)
    params = {name: np.asarray(value, dtype=np.float64) for name, value in params.items()}
    if isinstance(family, likelihoods.Categorical):
        log_probs = special.log_softmax(params["logits"], axis=-1)
        return np.take_along_axis(log_probs, x.astype(int)[..., None], axis=-1)[..., 0]
    if isinstance(family, likelihoods.ContinuousBernoulli):
        logits = params["logits"]  # |l| >= 0.5 below: the closed form is exact in float64
        log_norm = np.log(logits / np.tanh(logits / 2))
        return x * special.log_expit(logits) + (1 - x) * special.log_expit(-logits) + log_norm
    return _scipy_log_prob(family, x, params)


@pytest.mark.parametrize(
    "family",
    [
        likelihoods.Bernoulli(),
        likelihoods.Binomial(16),
        likelihoods.Categorical(5),
        likelihoods.ContinuousBernoulli(),
        likelihoods.Gaussian(0.5),
        likelihoods.GaussianLearnedScale(),
    ],
    ids=repr,
)
def test_numpy_log_prob_is_float64_for_float32_inputs(family):
    """`numpy_log_prob` computes in float64 whatever the inputs' dtype (the ONNX decoder
    returns float32): float32 x and parameters give the float64 answer to ~1e-12."""
    rng = np.random.default_rng(5)
    n = 64
    if isinstance(family, likelihoods.Categorical):
        params = {"logits": rng.normal(scale=2.0, size=(n, 5))}
        x = rng.integers(0, 5, size=n)
    elif isinstance(family, (likelihoods.Gaussian, likelihoods.GaussianLearnedScale)):
        params = {"loc": rng.normal(scale=3.0, size=n), "scale": rng.uniform(0.1, 3.0, n)}
        params = {name: params[name] for name in family.param_names}
        x = rng.normal(scale=5.0, size=n)
    else:
        params = {"logits": rng.uniform(0.5, 4.0, n) * rng.choice([-1.0, 1.0], n)}
        high = getattr(family, "total_count", 1)
        x = rng.integers(0, high + 1, size=n)
        if isinstance(family, likelihoods.ContinuousBernoulli):
            x = rng.uniform(0.0, 1.0, size=n)  # 1 - x rounds in float32, not in float64
    x32 = np.asarray(x, dtype=np.float32)
    params32 = {name: value.astype(np.float32) for name, value in params.items()}

    got = family.numpy_log_prob(x32, params32)

    assert got.dtype == np.float64 and got.shape == (n,)
    np.testing.assert_allclose(
        got, _float64_log_prob(family, x32, params32), rtol=1e-12, atol=1e-13
    )


@pytest.mark.parametrize(
    "family", [likelihoods.Binomial(16), likelihoods.Categorical(17)], ids=repr
)
def test_count_families_read_x_a_hair_off_a_count_as_that_count(family):
    """Counts that went through float arithmetic (e.g. 3 * (1/3) * 3) are a hair off the
    integer: they count as the nearest integer, from below as from above."""
    rng = np.random.default_rng(6)
    counts = np.concatenate([np.arange(17), np.arange(17)]).astype(np.float32)
    x = counts.copy()
    x[:17] = np.nextafter(counts[:17], np.float32(-1))  # just below: 2.9999998 for 3
    x[17:] = np.nextafter(counts[17:], np.float32(99))  # just above
    x[0] = 0.0  # 0 has no neighbour below in the support
    if isinstance(family, likelihoods.Categorical):
        params = {"logits": rng.normal(scale=2.0, size=(34, 17))}
        expected = np.take_along_axis(
            special.log_softmax(params["logits"], -1), counts.astype(int)[:, None], -1
        )[:, 0]
    else:
        params = {"logits": rng.uniform(-2.0, 2.0, 34)}
        expected = stats.binom.logpmf(counts, 16, special.expit(params["logits"]))

    np.testing.assert_allclose(family.numpy_log_prob(x, params), expected, rtol=1e-5, atol=1e-5)


def test_categorical_accepts_two_levels():
    family = likelihoods.Categorical(num_levels=2)
    assert family.num_levels == 2 and family.num_params == 2
    assert family.display_range() == (0.0, 1.0)


@pytest.mark.parametrize("name", sorted(KNOWN_NAMES))
@pytest.mark.parametrize("event_ndims", [1, 2])
def test_distribution_reinterprets_exactly_event_ndims_axes(name, event_ndims):
    """`distribution(params, event_ndims)`: the last `event_ndims` data axes are the
    event, every axis before them (here two) a batch axis."""
    lik = likelihoods.get(name)
    shape = (2, 3, 4, 5)
    raw = np.random.default_rng(7).uniform(-1.0, 1.0, (*shape, lik.num_params))
    dist = lik.distribution(lik.parameters(tf.constant(raw, tf.float32)), event_ndims)

    assert tuple(dist.batch_shape) == shape[: len(shape) - event_ndims]
    assert tuple(dist.event_shape) == shape[len(shape) - event_ndims :]
    x = np.ones(shape, np.float32)
    assert tuple(dist.log_prob(x).shape) == shape[: len(shape) - event_ndims]


# Not the binomial: TFP's binomial sampler takes seconds to trace.
_DRAWN = sorted(KNOWN_NAMES - {"binomial"})


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
@pytest.mark.parametrize("name", _DRAWN)
def test_distribution_samples_and_densities_have_the_parameters_float_dtype(name, dtype):
    """Under float64 parameters (a float64 decoder) draws, densities and means are
    float64; under float32 float32: never an integer dtype, even for counts."""
    lik = likelihoods.get(name)
    raw = np.random.default_rng(8).uniform(-1.0, 1.0, (2, 3, lik.num_params))
    dist = lik.distribution(lik.parameters(tf.constant(raw, dtype)), event_ndims=1)

    draws = dist.sample(seed=[1, 2])

    assert draws.dtype == dtype
    assert dist.log_prob(draws).dtype == dtype
    assert lik.mean(lik.parameters(tf.constant(raw, dtype))).dtype == dtype


class _FixedUniform:
    """A stand-in generator whose `random` returns one value, for inverse-CDF edges."""

    def __init__(self, value):
        self.value = value

    def random(self, shape):
        return np.full(shape, self.value)


def test_categorical_draws_stay_in_the_support_for_the_largest_uniform():
    """`Generator.random` returns values up to 1 - 2**-53, which may exceed the last
    cumulative probability (a float64 rounding of 1): the draw is still the top level."""
    family = likelihoods.Categorical(num_levels=17)
    logits = np.random.default_rng(9).normal(scale=3.0, size=(2000, 17))

    draws = family.numpy_sample({"logits": logits}, _FixedUniform(np.nextafter(1.0, 0.0)))

    np.testing.assert_array_equal(draws, 16.0)


def test_categorical_draws_invert_the_float64_cdf_of_float32_logits():
    """Each draw is the first level whose float64 cumulative probability exceeds u, also
    for float32 logits (whose float32 softmax moves the level boundaries by ~1e-7)."""
    n = 20_000
    u = np.random.default_rng(10).random(n)
    # Two levels, the boundary P(level 0) placed within float32 precision of u.
    first = special.logit(u).astype(np.float32)
    logits = np.stack([first, np.zeros(n, np.float32)], axis=-1)
    p0 = special.expit(first.astype(np.float64))
    expected = (u >= p0).astype(np.float32)

    draws = likelihoods.Categorical(2).numpy_sample({"logits": logits}, np.random.default_rng(10))

    np.testing.assert_array_equal(draws, expected)


def _continuous_bernoulli_inverse_cdf(u, logits):
    """F^-1(u) in float64: the CDF F(x) = (e^(l x) - 1) / (e^l - 1) solved for x."""
    logits = np.asarray(logits, dtype=np.float64)
    return np.log1p(u * np.expm1(logits)) / logits


def test_continuous_bernoulli_draws_invert_the_cdf_in_float64():
    """Draws are F^-1(u) computed in float64, then rounded to float32, also for float32
    logits."""
    n = 4000
    logits = np.random.default_rng(11).uniform(-6.0, 6.0, n).astype(np.float32)
    u = np.random.default_rng(12).random(n)

    draws = likelihoods.ContinuousBernoulli().numpy_sample(
        {"logits": logits}, np.random.default_rng(12)
    )

    np.testing.assert_array_equal(
        draws, _continuous_bernoulli_inverse_cdf(u, logits).astype(np.float32)
    )


def test_continuous_bernoulli_draws_at_the_edge_of_the_small_logit_branch():
    """At |l| = 1e-4 exactly (where x = u stops being used) draws are F^-1(u), which
    differs from u by up to l / 8."""
    logits = np.tile([1e-4, -1e-4], 2000)
    u = np.random.default_rng(13).random(logits.shape)

    draws = likelihoods.ContinuousBernoulli().numpy_sample(
        {"logits": logits}, np.random.default_rng(13)
    )

    np.testing.assert_allclose(
        draws, _continuous_bernoulli_inverse_cdf(u, logits), rtol=0, atol=1e-7
    )


def test_continuous_bernoulli_draws_stay_in_the_unit_interval_for_huge_logits():
    """Logits beyond e^l's float64 range (l > 709.8) still give draws in [0, 1], at the
    end the density piles up on."""
    family = likelihoods.ContinuousBernoulli()
    logits = np.repeat([-800.0, 800.0, 1e4], 1000)

    with np.errstate(over="ignore"):
        draws = family.numpy_sample({"logits": logits}, np.random.default_rng(14))

    assert np.all((draws >= 0.0) & (draws <= 1.0))
    assert np.all(draws[:1000] < 0.05) and np.all(draws[1000:] > 0.95)


def test_continuous_bernoulli_log_prob_near_zero_logits_to_float64_precision():
    """Below |l| = 1e-4 (the series' range) log p(x) is exact to float64 rounding:
    log C(l) = log 2 + l^2/12 - 7 l^4/1440 + ... (log(y / tanh y) with y = l / 2)."""
    logits = np.array([9.99e-5, -9.99e-5, 7e-5, -5e-5, 3e-5, 1e-6, 0.0])
    x = np.linspace(0.0, 1.0, logits.size)
    log_norm = np.log(2.0) + logits**2 / 12 - 7 * logits**4 / 1440
    expected = x * special.log_expit(logits) + (1 - x) * special.log_expit(-logits) + log_norm

    got = likelihoods.ContinuousBernoulli().numpy_log_prob(x, {"logits": logits})

    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-15)


def _continuous_bernoulli_mean(logits):
    """E[x] in float64: 1/2 + 1/(2 tanh(l/2)) - 1/l for |l| >= 0.05 (cancellation below
    1e-14), the series 1/2 + l/12 - l^3/720 + l^5/30240 - l^7/1209600 below."""
    small = np.abs(logits) < 0.05
    safe = np.where(small, 1.0, logits)
    closed = 0.5 + 0.5 / np.tanh(0.5 * safe) - 1.0 / safe
    series = 0.5 + logits / 12 - logits**3 / 720 + logits**5 / 30240 - logits**7 / 1209600
    return np.where(small, series, closed)


def test_continuous_bernoulli_mean_in_float64_meets_its_documented_error():
    """Under float64 logits the exportable mean is within the series' documented 1e-9
    below |l| = 0.1, and exact to float64 rounding from |l| = 0.1 on (the closed form)."""
    family = likelihoods.ContinuousBernoulli()
    series_range = np.array([-0.0999, -0.07, -1e-3, 0.0, 1e-3, 0.05, 0.0999])
    closed_range = np.array([-5.0, -0.5, -0.1, 0.1, 0.2, 1.0, 7.0])

    def mean(logits):
        params = family.parameters(tf.constant(logits[:, None], tf.float64))
        return family.mean(params).numpy()

    expected = _continuous_bernoulli_mean(series_range)
    np.testing.assert_allclose(mean(series_range), expected, rtol=0, atol=1e-9)
    expected = _continuous_bernoulli_mean(closed_range)
    np.testing.assert_allclose(mean(closed_range), expected, rtol=0, atol=1e-13)


def test_continuous_bernoulli_mean_has_finite_gradients_at_zero():
    """d E[x] / dl = 1/12 at l = 0: the closed form's 0/0 must not leak NaN into the
    gradient (tf.where differentiates both branches)."""
    family = likelihoods.ContinuousBernoulli()
    logits = tf.constant([[0.0], [1e-30], [-1e-3], [2.0]], tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        mean = family.mean(family.parameters(logits))
    gradient = tape.gradient(mean, logits).numpy()[:, 0]

    # d/dl (1/2 + 1/(2 tanh(l/2)) - 1/l) = 1/l^2 - 1/(4 sinh^2(l/2)); 1/12 - l^2/240 near 0.
    expected = [1 / 12, 1 / 12, 1 / 12 - 1e-6 / 240, 1 / 4 - 1 / (4 * np.sinh(1.0) ** 2)]
    np.testing.assert_allclose(gradient, expected, rtol=1e-9)


# -------------------------------------------------------------------- adapt_recipe


def _adapted(dataset, likelihood, x=None):
    from tfvae import workflow

    x = np.zeros((1, 8, 8, 1), np.uint8) if x is None else x
    return workflow.recipe_for(dataset, x, likelihood)


@pytest.mark.parametrize("name", ["continuous_bernoulli", "gaussian", "gaussian_learned_scale"])
def test_continuous_families_scale_intensities_and_keep_real_values(name):
    """The digits' counts 0..16 become intensities x / 16 in [0, 1], unbinarized; real
    values are kept as they are, with their own data range."""
    digits = _adapted("digits", name)
    assert digits.scale == 16.0 and digits.data_range == (0.0, 1.0)
    assert digits.binarize is None and digits.likelihood_config == {}

    reals = np.linspace(-3.0, 5.0, 64).reshape(1, 8, 8, 1)
    real = _adapted("my_reals", name, reals)
    assert real.scale is None and real.binarize is None and real.data_range == (-3.0, 5.0)


def test_bernoulli_binarizes_dynamically_unless_the_recipe_binarizes():
    from tfvae import workflow

    digits = _adapted("digits", "bernoulli")
    assert digits.scale == 16.0 and digits.binarize == "dynamic"
    assert digits.data_range == (0.0, 1.0)
    static = workflow.Recipe(likelihood="binomial", full_scale=1.0, binarize="static")
    assert likelihoods.Bernoulli.adapt_recipe(static)["binarize"] == "static"


@pytest.mark.parametrize(
    ("name", "config"),
    [("binomial", "total_count"), ("categorical", "num_levels")],
)
def test_count_families_take_counts_and_binarized_data_and_refuse_the_rest(name, config):
    from tfvae import workflow

    digits = _adapted("continuous_bernoulli_digits", name, np.arange(17, dtype=np.uint8))
    offset = 1 if name == "categorical" else 0
    assert digits.likelihood_config == {config: 16 + offset}
    assert digits.data_range == (0.0, 16.0)
    mnist = _adapted("mnist", name)
    assert mnist.likelihood_config == {config: 1 + offset} and mnist.data_range == (0.0, 1.0)

    family = likelihoods.registry.class_of(name, "likelihood")
    intensities = workflow.Recipe(likelihood="continuous_bernoulli", full_scale=255.0, scale=255.0)
    reals = workflow.Recipe(likelihood="gaussian_learned_scale")
    for recipe in (intensities, reals):
        with pytest.raises(ValueError, match=f"likelihood='{name}'"):
            family.adapt_recipe(recipe)
