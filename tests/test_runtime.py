"""The onnxruntime Sampler.

The fast tests run `Sampler` on an in-memory stand-in for an exported bundle
(`stand_in`): numpy sessions with the exported networks' inputs, outputs, shapes and
dtypes, and the manifest that the runtime reads, built from the families' numpy side;
nothing is trained or exported. Their references are independent of the runtime: scipy
distributions, closed forms, and the exact answers of a linear-Gaussian model. The tests
marked slow train and export real models: files on disk, checksums, agreement with
Keras, the runtime-only install, and the stand-in against a real export
(`test_the_stand_in_has_the_exported_manifest_and_outputs`).
"""

import json
import math
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit, logsumexp

import tfvae
from tests import helpers
from tests.test_export import LIKELIHOODS, _data, _export, trained_vae
from tests.test_priors import TwoLayerLinearGaussian
from tfvae import export, likelihoods, posteriors, prior_families
from tfvae.bundle import FORMAT_VERSION, file_digests, write_manifest
from tfvae.interpolation import latent_path
from tfvae.runtime import BundleError, Sampler

N = 10_000

# ============================================== a numpy stand-in for an exported bundle


class StandInSession:
    """A stand-in for the `onnxruntime.InferenceSession` of an exported network.

    `run(output_names, feeds)` refuses what onnxruntime refuses (feeds named other than
    the graph's inputs, a dtype other than float32, a shape other than `(batch, *shape)`
    with one batch for every input), then returns `function`'s outputs as float32, in
    the order of `output_names`, or of `get_outputs()` when None.

    Args:
        inputs: `{input name: shape of one example}`, e.g. `{"z": (latent_dim,)}`.
        outputs: the output names, in the session's order.
        function: `(**inputs as float64) -> {output name: (batch, ...) array}`.

    Attributes:
        batches: the batch size of every run, in order.
    """

    def __init__(self, inputs: dict, outputs: list, function):
        self.inputs = {name: tuple(shape) for name, shape in inputs.items()}
        self.outputs = list(outputs)
        self.function = function
        self.batches = []

    def get_outputs(self):
        return [types.SimpleNamespace(name=name) for name in self.outputs]

    def run(self, output_names, feeds):
        if set(feeds) != set(self.inputs):
            raise ValueError(f"Feeds {sorted(feeds)}; the inputs are {sorted(self.inputs)}")
        for name, value in feeds.items():
            shape = self.inputs[name]
            if not isinstance(value, np.ndarray) or value.dtype != np.float32:
                raise ValueError(f"Feed {name!r} is not a float32 array: {value!r}")
            if value.shape[1:] != shape:
                raise ValueError(f"Feed {name!r} of shape {value.shape}, not (n, *{shape})")
        batches = {len(value) for value in feeds.values()}
        if len(batches) != 1:
            raise ValueError(f"Feeds of different batch sizes {batches}")
        self.batches.append(batches.pop())
        computed = self.function(
            **{name: value.astype(np.float64) for name, value in feeds.items()}
        )
        return [
            np.asarray(computed[name], dtype=np.float32) for name in output_names or self.outputs
        ]

    def named(self, **feeds) -> dict:
        """`{output name: float32 output}` for float32 `feeds`, straight from the session."""
        feeds = {name: np.asarray(value, dtype=np.float32) for name, value in feeds.items()}
        return dict(zip(self.outputs, self.run(None, feeds), strict=True))


def _family_mean(likelihood, params) -> np.ndarray:
    """E[x|z] of each data value from the family's named parameters, by closed forms."""
    name = likelihood.family
    if name in ("gaussian", "gaussian_learned_scale"):
        return params["loc"]
    if name == "categorical":
        logits = params["logits"]
        probabilities = np.exp(logits - logsumexp(logits, axis=-1, keepdims=True))
        return probabilities @ np.arange(likelihood.num_levels)
    logits = params["logits"]
    if name == "bernoulli":
        return expit(logits)
    if name == "binomial":
        return likelihood.total_count * expit(logits)
    # The continuous Bernoulli: E[x] = 1 / (1 - exp(-l)) - 1 / l, 1/2 + l/12 near l = 0.
    small = np.abs(logits) < 1e-3
    safe = np.where(small, 1.0, logits)
    return np.where(small, 0.5 + logits / 12.0, -1.0 / np.expm1(-safe) - 1.0 / safe)


def stand_in_manifest(
    likelihood, posterior, latent_dim, data_shape, prior="standard_normal", prior_parameters=None,
    condition_shape=None,
) -> dict:  # fmt: skip
    """The manifest entries that the runtime reads, as `export._manifest` writes them,
    from the families' own numpy-side methods (names, parameters, constants, support)."""
    prior_class = prior_families.registry.class_of(prior)
    prior_parameters = {k: np.asarray(v).tolist() for k, v in (prior_parameters or {}).items()}
    assert set(prior_parameters) == set(prior_class.param_names)
    conditional = [] if condition_shape is None else ["condition"]
    return {
        "latent_dim": latent_dim,
        "condition_shape": None if condition_shape is None else list(condition_shape),
        "data": {"shape": list(data_shape), "dtype": "float32"},
        "likelihood": {
            "family": likelihoods.registry.name_of(likelihood),
            "parameters": list(likelihood.param_names),
            "constants": likelihood.constants(),
            "support": likelihood.support_bounds(),
        },
        "prior": {"family": prior, "parameters": prior_parameters},
        "posterior": {
            "family": posteriors.registry.name_of(posterior),
            "parameters": list(posterior.param_names),
        },
        "onnx": {
            "decoder": {
                "file": "decoder.onnx",
                "inputs": ["z", *conditional],
                "outputs": sorted([*likelihood.param_names, "mean"]),
            },
            "encoder": {
                "file": "encoder.onnx",
                "inputs": ["x", *conditional],
                "outputs": sorted(posterior.param_names),
            },
        },
    }


def stand_in(
    likelihood, data_shape, decoder, encoder=None, posterior="diagonal_normal",
    prior="standard_normal", prior_parameters=None, condition_shape=None,
) -> types.SimpleNamespace:  # fmt: skip
    """A Sampler on stand-in sessions whose networks are affine maps.

    Args:
        likelihood: a `tfvae.likelihoods` family (with its constants).
        data_shape: the shape of one x; it has V values.
        decoder: `(weights (latent_dim, V k), bias (V k,)[, condition weights (C, V k)])`
            with k = `likelihood.num_params` (a categorical's num_levels) and C the size
            of one condition: raw = z @ weights + bias [+ y @ condition weights], laid out
            `(n, *data_shape, k)`. Outputs: the family's parameters (constrained as
            `Likelihood.parameters` does: a learned scale is softplus + min_scale), each
            `(n, *data_shape)` (a categorical's logits `(n, *data_shape, num_levels)`),
            and `mean` `(n, *data_shape)`.
        encoder: `(weights (V, latent_dim), bias (latent_dim,), spread[, condition
            weights (C, latent_dim)])`, or None for a decoder-only bundle: loc = x @
            weights + bias [+ y @ condition weights], `(n, latent_dim)`, and for every
            x the same `spread`: `scale` `(latent_dim,)` standard deviations
            (diagonal_normal) or `scale_tril` `(latent_dim, latent_dim)` lower
            triangular (full_covariance), broadcast to `(n, latent_dim[, latent_dim])`.
        posterior, prior, prior_parameters, condition_shape: as in the manifest.

    Returns:
        `.sampler` (the Sampler), `.decoder` and `.encoder` (the `StandInSession`s), and
        `.weights` (`{"decoder": decoder, "encoder": encoder}`).
    """
    posterior = posteriors.get(posterior)
    latent_dim = np.shape(decoder[0])[0]
    manifest = stand_in_manifest(
        likelihood, posterior, latent_dim, data_shape, prior, prior_parameters, condition_shape
    )
    conditional = {} if condition_shape is None else {"condition": condition_shape}

    def affine(value, weights, bias, condition_weights=None, condition=None):
        out = value.reshape(len(value), -1) @ weights + bias
        if condition is not None:
            out = out + condition.reshape(len(value), -1) @ condition_weights
        return out

    def decode(z, condition=None):
        raw = affine(z, *decoder, condition=condition).reshape(len(z), *data_shape, -1)
        if likelihood.family == "categorical":
            params = {"logits": raw}
        else:
            params = {name: raw[..., i] for i, name in enumerate(likelihood.param_names)}
        if likelihood.family == "gaussian_learned_scale":
            params["scale"] = np.logaddexp(0.0, params["scale"]) + likelihood.min_scale
        return {**params, "mean": _family_mean(likelihood, params)}

    def encode(x, condition=None):
        weights, bias, spread, *condition_weights = encoder
        loc = affine(x, weights, bias, *condition_weights, condition=condition)
        spread = np.broadcast_to(spread, (len(x), *np.shape(spread)))
        return {"loc": loc, posterior.scale_name: spread}

    # The sessions' output order is not the manifest's sorted one: names matter, not order.
    entries = manifest["onnx"]
    decoder_session = StandInSession(
        {"z": (latent_dim,), **conditional}, entries["decoder"]["outputs"][::-1], decode
    )
    encoder_session = None
    if encoder is None:
        del entries["encoder"]
    else:
        encoder_session = StandInSession(
            {"x": tuple(data_shape), **conditional}, entries["encoder"]["outputs"][::-1], encode
        )
    return types.SimpleNamespace(
        sampler=Sampler(manifest, decoder_session, encoder_session),
        decoder=decoder_session,
        encoder=encoder_session,
        weights={"decoder": decoder, "encoder": encoder},
    )


# Every registered family, with constants other than their defaults where they have any.
FAMILIES = {
    "bernoulli": likelihoods.Bernoulli(),
    "binomial": likelihoods.Binomial(total_count=5),
    "categorical": likelihoods.Categorical(num_levels=5),
    "continuous_bernoulli": likelihoods.ContinuousBernoulli(),
    "gaussian": likelihoods.Gaussian(scale=0.5),
    "gaussian_learned_scale": likelihoods.GaussianLearnedScale(min_scale=0.01),
}
DATA_SHAPE, VALUES, LATENT_DIM = (4, 6, 1), 24, 3
MIXTURE = {  # well-separated component means: a draw that ignores them is far off
    "logits": [0.0, 0.7, -0.5],
    "locs": [[-4.0, 2.0, 0.0], [0.0, -3.0, 3.0], [4.0, 4.0, -3.0]],
    "scales": [[0.5, 1.0, 0.7], [1.0, 0.4, 0.6], [0.8, 0.6, 1.2]],
}


def family_stand_in(likelihood, posterior="diagonal_normal", seed=0, **kwargs):
    """A stand-in of `likelihood` on `DATA_SHAPE` x and `LATENT_DIM` z, with random
    networks: at z ~ N(0, I) the decoder's raw values spread over about [-4, 4]."""
    rng = np.random.default_rng(seed)
    width = VALUES * likelihood.num_params
    decoder = rng.normal(0.0, 0.4, (LATENT_DIM, width)), rng.uniform(-3.0, 3.0, width)
    spread = {
        "diagonal_normal": np.array([0.5, 0.8, 1.2]),
        "full_covariance": np.array([[0.5, 0.0, 0.0], [0.3, 0.8, 0.0], [-0.2, 0.4, 1.2]]),
    }[posterior]
    encoder = rng.normal(0.0, 0.1, (VALUES, LATENT_DIM)), rng.normal(size=LATENT_DIM), spread
    return stand_in(likelihood, DATA_SHAPE, decoder, encoder, posterior, **kwargs)


def family_data(likelihood, n, seed=0) -> np.ndarray:
    """`(n, *DATA_SHAPE)` float32 x in the family's support, spread over it."""
    rng = np.random.default_rng(seed)
    shape = (n, *DATA_SHAPE)
    name = likelihood.family
    if name in ("bernoulli", "binomial", "categorical"):
        top = {"bernoulli": 1, "binomial": 5, "categorical": 4}[name]
        return rng.integers(0, top + 1, shape).astype(np.float32)
    if name == "continuous_bernoulli":
        return rng.random(shape).astype(np.float32)
    return rng.normal(0.0, 2.0, shape).astype(np.float32)


class LinearGaussian:
    """z ~ p(z), x | z, y ~ N(W z + b + V y, s^2 I), with x of 5 values, z of 2 and y of 2.

    With the standard normal prior, log p(x|y) = log N(x; b + V y, W W^T + s^2 I) and the
    exact posterior is p(z|x, y) = N(A (x - b - V y), S), S = (I + W^T W / s^2)^-1,
    A = S W^T / s^2. With `diagonal`, W's columns are orthogonal: S is diagonal, and the
    exact posterior a diagonal normal. With the mixture prior sum_k pi_k N(mu_k, D_k),
    p(x) = sum_k pi_k N(x; W mu_k + b, W D_k W^T + s^2 I).
    """

    SCALE = 0.7
    MIXTURE = {
        "logits": [0.0, 0.7, -0.5],
        "locs": [[-3.0, 1.5], [0.0, -2.5], [3.0, 3.0]],
        "scales": [[0.5, 1.0], [1.0, 0.4], [0.8, 0.6]],
    }

    def __init__(self, diagonal=False, conditional=False, seed=0):
        rng = np.random.default_rng(seed)
        if diagonal:
            self.W = np.linalg.qr(rng.normal(size=(5, 2)))[0] * [1.5, 0.6]
        else:
            self.W = rng.normal(size=(5, 2))
        self.b = rng.normal(size=5)
        self.V = rng.normal(size=(5, 2)) if conditional else None
        self.S = np.linalg.inv(np.eye(2) + self.W.T @ self.W / self.SCALE**2)
        self.A = self.S @ self.W.T / self.SCALE**2
        self.diagonal = diagonal

    def offset(self, y=None):
        return self.b if y is None else self.b + np.asarray(y, dtype=np.float64) @ self.V.T

    def data(self, n, y=None, seed=1):
        rng = np.random.default_rng(seed)
        z = rng.normal(size=(n, 2))
        noise = self.SCALE * rng.normal(size=(n, 5))
        return (z @ self.W.T + self.offset(y) + noise).astype(np.float32)

    def log_marginal(self, x, y=None, prior="standard_normal"):
        x = np.asarray(x, dtype=np.float64)
        if prior == "mixture":
            p = {k: np.asarray(v) for k, v in self.MIXTURE.items()}
            terms = [
                stats.multivariate_normal(
                    self.W @ loc + self.b, self.W @ np.diag(scale**2) @ self.W.T + self._noise()
                ).logpdf(x)
                for loc, scale in zip(p["locs"], p["scales"], strict=True)
            ]
            log_weights = p["logits"] - logsumexp(p["logits"])
            return logsumexp(np.array(terms) + log_weights[:, None], axis=0)
        centred = x - self.offset(y)
        return stats.multivariate_normal(np.zeros(5), self.W @ self.W.T + self._noise()).logpdf(
            centred
        )

    def _noise(self):
        return self.SCALE**2 * np.eye(5)

    def posterior_spread(self, stretch=1.0):
        """The encoder's spread for q = N(., stretch^2 S): scale or scale_tril."""
        if self.diagonal:
            return stretch * np.sqrt(np.diag(self.S))
        return stretch * np.linalg.cholesky(self.S)

    def stand_in(self, shift=(0.0, 0.0), stretch=1.0, encoder=True, **kwargs):
        """The model on stand-in sessions, with q(z|x, y) = N(A (x - b - V y) + shift,
        stretch^2 S): the exact posterior by default (for the standard normal prior)."""
        decoder = self.W.T, self.b, *([] if self.V is None else [self.V.T])
        conditional = [] if self.V is None else [-(self.A @ self.V).T]
        if encoder:
            encoder = self.A.T, np.asarray(shift) - self.A @ self.b, self.posterior_spread(stretch)
            encoder = (*encoder, *conditional)
        else:
            encoder = None
        return stand_in(
            likelihoods.Gaussian(scale=self.SCALE),
            (5,),
            decoder,
            encoder,
            "diagonal_normal" if self.diagonal else "full_covariance",
            condition_shape=None if self.V is None else (2,),
            **kwargs,
        )


def _posterior_log_prob(z, loc, spread):
    """log q(z) `(L, n)` of z `(L, n, D)` under N(loc, spread spread^T) (or diag spread^2)."""
    covariance = np.diag(spread**2) if spread.ndim == 1 else spread @ spread.T
    return stats.multivariate_normal(np.zeros(len(covariance)), covariance).logpdf(z - loc)


# ============================================================== fast: the stand-in


def test_every_registered_family_has_a_stand_in():
    assert sorted(FAMILIES) == likelihoods.registry.names()
    for name, family in FAMILIES.items():
        assert likelihoods.registry.name_of(family) == name


def test_decode_names_every_output_of_the_decoder():
    """The session returns its outputs in an order of its own; the runtime names them."""
    made = family_stand_in(FAMILIES["gaussian_learned_scale"])
    weights, bias = made.weights["decoder"]
    z = np.random.default_rng(1).normal(size=(7, LATENT_DIM)).astype(np.float32)
    raw = (z @ weights + bias).reshape(7, *DATA_SHAPE, 2)

    decoded = made.sampler.decode(z)

    assert made.decoder.outputs == ["scale", "mean", "loc"]  # not the manifest's order
    assert sorted(decoded) == ["loc", "mean", "scale"]
    for value in decoded.values():
        assert value.dtype == np.float32 and value.shape == (7, *DATA_SHAPE)
    np.testing.assert_allclose(decoded["loc"], raw[..., 0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(decoded["scale"], np.logaddexp(0.0, raw[..., 1]) + 0.01, rtol=1e-5)
    np.testing.assert_array_equal(decoded["mean"], decoded["loc"])
    np.testing.assert_array_equal(made.sampler.mean(z), decoded["mean"])


class _DroppingSession(StandInSession):
    """A session that names every output but returns one fewer (a mismatched graph)."""

    def run(self, output_names, feeds):
        return super().run(output_names, feeds)[:-1]


def test_a_session_returning_fewer_outputs_than_it_names_is_an_error():
    """Never a silently incomplete set of parameters: every named output must come back."""
    made = family_stand_in(FAMILIES["gaussian"])
    sessions = {
        name: _DroppingSession(session.inputs, session.outputs, session.function)
        for name, session in (("decoder", made.decoder), ("encoder", made.encoder))
    }
    z = np.zeros((2, LATENT_DIM), dtype=np.float32)
    x = family_data(FAMILIES["gaussian"], 2)

    with pytest.raises(ValueError, match=r"shorter"):
        Sampler(made.sampler.manifest, sessions["decoder"], made.encoder).decode(z)
    with pytest.raises(ValueError, match=r"shorter"):
        Sampler(made.sampler.manifest, made.decoder, sessions["encoder"]).encode(x)


# ----------------------------------------------------------- draws, by distribution

DRAWS = 4000


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_draws_follow_the_decoded_parameters(name):
    """x ~ p(x|z) at one z: each of the 24 values against the distribution that its
    decoded parameters give (chi-squared or KS, `helpers.draw_reference`, which also
    checks that discrete draws lie in the support), and the pooled variance."""
    family = FAMILIES[name]
    made = family_stand_in(family)
    z = np.random.default_rng(5).normal(size=(1, LATENT_DIM))

    draws = made.sampler.sample_given(np.repeat(z, DRAWS, axis=0), seed=6)

    assert draws.shape == (DRAWS, *DATA_SHAPE) and draws.dtype == np.float32
    draws = draws.reshape(DRAWS, VALUES).astype(np.float64)
    assert np.all(np.isfinite(draws))
    if name == "continuous_bernoulli":
        assert draws.min() >= 0.0 and draws.max() <= 1.0
    params = {
        key: value.reshape(VALUES, *value.shape[1 + len(DATA_SHAPE) :])
        for key, value in made.decoder.named(z=z).items()
    }
    p_values, draw_variances, variances = [], [], []
    for index in range(VALUES):
        p_value, variance = helpers.draw_reference(family, params, index)
        p_values.append(p_value(draws[:, index]))
        draw_variances.append(draws[:, index].var())
        variances.append(variance)
    # 24 tests: the smallest p-value falls below 1e-4 by chance with probability < 0.003.
    assert min(p_values) > 1e-4, (min(p_values), int(np.argmin(p_values)))
    # A sampler that drops, squares or doubles a scale is off by far more than 3%.
    assert sum(draw_variances) / sum(variances) == pytest.approx(1.0, abs=0.03)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
@pytest.mark.parametrize("prior", ["standard_normal", "mixture"])
def test_prior_draws_follow_the_manifest_prior(prior, temperature):
    """z ~ p(z) per dimension against the prior's CDF at the temperature (KS), and its
    variance; the mixture's component means are far apart, so ignoring them shows."""
    parameters = MIXTURE if prior == "mixture" else None
    made = family_stand_in(FAMILIES["gaussian"], prior=prior, prior_parameters=parameters)

    z = made.sampler.sample_latents(20_000, seed=3, temperature=temperature)

    assert z.shape == (20_000, LATENT_DIM) and z.dtype == np.float32
    for dimension in range(LATENT_DIM):
        if prior == "mixture":
            cdf, variance = helpers.mixture_marginal(MIXTURE, dimension, temperature)
        else:
            cdf, variance = stats.norm(0, temperature).cdf, temperature**2
        column = z[:, dimension].astype(np.float64)
        assert stats.kstest(column, cdf).pvalue > 1e-3
        assert column.var() == pytest.approx(variance, rel=0.05)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_sample_draws_x_from_the_model_at_the_temperature(temperature):
    """The linear-Gaussian model: x ~ N(b, T^2 W W^T + s^2 I), so whitened x is N(0, I)
    (KS and variance per coordinate); with mean=True, x = W z + b with z ~ N(0, T^2 I)."""
    model = LinearGaussian()
    sampler = model.stand_in().sampler
    covariance = temperature**2 * model.W @ model.W.T + model.SCALE**2 * np.eye(5)

    x = sampler.sample(20_000, seed=0, temperature=temperature).astype(np.float64)
    means = sampler.sample(20_000, seed=1, temperature=temperature, mean=True)

    assert x.shape == means.shape == (20_000, 5)
    white = np.linalg.solve(np.linalg.cholesky(covariance), (x - model.b).T).T
    for column in white.T:
        assert stats.kstest(column, "norm").pvalue > 1e-3
        assert column.var() == pytest.approx(1.0, rel=0.05)
    z = np.linalg.lstsq(model.W, (means - model.b).T, rcond=None)[0].T
    np.testing.assert_allclose(z @ model.W.T + model.b, means, atol=1e-4)  # no noise added
    for column in z.T:
        assert stats.kstest(column, stats.norm(0, temperature).cdf).pvalue > 1e-3
        assert column.var() == pytest.approx(temperature**2, rel=0.05)


def test_sample_draws_the_noise_of_x_independently_of_its_latents():
    """x = W z + b + s eps with eps independent of z: a seed starts one stream for z and
    then x, never two copies of the same stream (eps would repeat z's numbers)."""
    model = LinearGaussian()
    sampler = model.stand_in().sampler
    n = 2000

    means = sampler.sample(n, seed=5, mean=True).astype(np.float64)  # the same latents
    x = sampler.sample(n, seed=5).astype(np.float64)

    z = np.linalg.lstsq(model.W, (means - model.b).T, rcond=None)[0].T
    noise = (x - means) / model.SCALE
    assert noise.std() == pytest.approx(1.0, rel=0.05)
    # The first numbers of the noise against the latents': a repeated stream gives r = 1.
    assert abs(np.corrcoef(noise.ravel()[: z.size], z.ravel())[0, 1]) < 0.1


# ------------------------------------------------------------------------- scoring


def _log_prob(family, x, params) -> np.ndarray:
    """log p(x|params) of each value, by scipy and closed forms."""
    name = family.family
    if name == "gaussian":
        return stats.norm.logpdf(x, params["loc"], family.scale)
    if name == "gaussian_learned_scale":
        return stats.norm.logpdf(x, params["loc"], params["scale"])
    logits = params["logits"].astype(np.float64)
    if name == "bernoulli":
        return stats.bernoulli.logpmf(x, expit(logits))
    if name == "binomial":
        return stats.binom.logpmf(x, family.total_count, expit(logits))
    if name == "categorical":
        log_probs = logits - logsumexp(logits, axis=-1, keepdims=True)
        return np.take_along_axis(log_probs, x[..., None].astype(int), axis=-1)[..., 0]
    # The continuous Bernoulli: p(x|l) = l exp(l x) / (exp(l) - 1).
    return logits * x + np.log(logits / np.expm1(logits))


@pytest.mark.parametrize("posterior", ["diagonal_normal", "full_covariance"])
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_log_weights_are_the_log_joint_less_the_log_posterior(name, posterior):
    """At any z: log p(x|z) + log p(z) - log q(z|x), by scipy from the sessions' outputs."""
    family = FAMILIES[name]
    made = family_stand_in(family, posterior)
    x = family_data(family, 4)
    z = 1.5 * np.random.default_rng(2).normal(size=(3, 4, LATENT_DIM))

    ours = made.sampler.log_weights(x, z)

    assert ours.shape == (3, 4) and ours.dtype == np.float64
    decoded = made.decoder.named(z=z.reshape(12, LATENT_DIM))  # z[l, i] is row 4 l + i
    log_likelihood = _log_prob(family, np.tile(x, (3, 1, 1, 1)), decoded)
    log_likelihood = log_likelihood.reshape(3, 4, -1).sum(axis=-1)
    encoded = made.encoder.named(x=x)
    spread = encoded[made.sampler.posterior.scale_name][0].astype(np.float64)
    log_q = _posterior_log_prob(z, encoded["loc"], spread)
    expected = log_likelihood + stats.norm.logpdf(z).sum(axis=-1) - log_q
    np.testing.assert_allclose(ours, expected, rtol=1e-7, atol=1e-6)


@pytest.mark.parametrize("prior", ["standard_normal", "mixture"])
def test_log_weights_use_the_manifest_prior(prior):
    """The linear model at any z: log N(x; W z + b, s^2 I) + log p(z) - log q(z|x)."""
    model = LinearGaussian()
    kwargs = {"prior": "mixture", "prior_parameters": model.MIXTURE} if prior == "mixture" else {}
    made = model.stand_in(shift=(0.4, -0.3), stretch=1.5, **kwargs)
    x = model.data(4)
    z = 2.0 * np.random.default_rng(3).normal(size=(5, 4, 2))

    ours = made.sampler.log_weights(x, z)

    log_likelihood = stats.norm.logpdf(x, z @ model.W.T + model.b, model.SCALE).sum(axis=-1)
    if prior == "mixture":
        p = {key: np.asarray(value) for key, value in model.MIXTURE.items()}
        components = [
            stats.multivariate_normal(loc, np.diag(scale**2)).logpdf(z)
            for loc, scale in zip(p["locs"], p["scales"], strict=True)
        ]
        log_weights = p["logits"] - logsumexp(p["logits"])
        log_prior = logsumexp(np.stack(components, axis=-1) + log_weights, axis=-1)
    else:
        log_prior = stats.multivariate_normal(np.zeros(2)).logpdf(z)
    loc = (x - model.b) @ model.A.T + [0.4, -0.3]
    log_q = _posterior_log_prob(z, loc, model.posterior_spread(1.5))
    np.testing.assert_allclose(ours, log_likelihood + log_prior - log_q, atol=1e-4)


@pytest.mark.parametrize("conditional", [False, True], ids=["unconditional", "conditional"])
@pytest.mark.parametrize("diagonal", [True, False], ids=["diagonal_normal", "full_covariance"])
def test_scores_are_exact_with_the_exact_posterior(diagonal, conditional):
    """With q(z|x) the exact posterior every importance weight is p(x): the ELBO, the
    estimate with any chunk size (dividing 50 or not) and the log-weights at any z are
    log p(x) up to float32 rounding, whatever the noise."""
    rng = np.random.default_rng(4)
    model = LinearGaussian(diagonal, conditional)
    y = rng.normal(size=(6, 2)) if conditional else None
    x = model.data(6, y)
    exact = model.log_marginal(x, y)
    sampler = model.stand_in().sampler
    given = {} if y is None else {"condition": y}

    np.testing.assert_allclose(sampler.elbo(x, num_samples=3, seed=0, **given), exact, atol=1e-4)
    for chunk_size in (1, 7, 50, 64):
        estimate = sampler.log_likelihood(x, 50, chunk_size=chunk_size, seed=1, **given)
        np.testing.assert_allclose(estimate, exact, atol=1e-4)
    far = 3.0 * rng.normal(size=(4, 6, 2))
    np.testing.assert_allclose(
        sampler.log_weights(x, far, **given), np.broadcast_to(exact, (4, 6)), atol=1e-4
    )
    if conditional:  # one condition for every example
        x = model.data(6, np.broadcast_to(y[0], (6, 2)))
        exact = model.log_marginal(x, np.broadcast_to(y[0], (6, 2)))
        assert np.all(np.abs(model.log_marginal(x, y) - exact)[1:] > 0.1)  # y matters
        estimate = sampler.log_likelihood(x, 10, chunk_size=3, seed=2, condition=y[0])
        np.testing.assert_allclose(estimate, exact, atol=1e-4)
        np.testing.assert_allclose(sampler.elbo(x, 3, seed=2, condition=y[0]), exact, atol=1e-4)


@pytest.mark.parametrize("diagonal", [True, False], ids=["diagonal_normal", "full_covariance"])
def test_elbo_matches_the_closed_form_of_an_imperfect_posterior(diagonal):
    """ELBO = log p(x) - KL(q || p(z|x)). For q = N(m + shift, stretch^2 S) and the exact
    posterior N(m, S) of d dimensions, KL = (stretch^2 d + c'c - d - 2 d log stretch) / 2
    with c = L^-1 shift (S = L L^T), for every x; one log-weight's variance is
    stretch^2 c'c + (1 - stretch^2)^2 d / 2, whence the Monte Carlo tolerance."""
    model = LinearGaussian(diagonal)
    shift, stretch, d, num_samples = np.array([0.4, -0.3]), 1.5, 2, 20_000
    c = np.linalg.solve(np.linalg.cholesky(model.S), shift)
    kl = 0.5 * (stretch**2 * d + c @ c - d - 2 * d * np.log(stretch))
    standard_error = np.sqrt((stretch**2 * c @ c + (1 - stretch**2) ** 2 * d / 2) / num_samples)
    x = model.data(8)
    exact = model.log_marginal(x)
    sampler = model.stand_in(shift, stretch).sampler

    ours = sampler.elbo(x, num_samples=num_samples, seed=0)

    assert ours.shape == (8,) and ours.dtype == np.float64
    np.testing.assert_allclose(ours, exact - kl, atol=5 * standard_error)
    assert np.all(ours < sampler.log_likelihood(x, num_samples=2000, seed=1))


@pytest.mark.parametrize("prior", ["standard_normal", "mixture"])
def test_log_likelihood_approaches_the_log_marginal_as_num_samples_grows(prior):
    """An imperfect q, wider than the posterior (the weights have a finite variance): with
    20,000 samples the estimate is within 0.06 nats of the exact log p(x) (the mixture
    prior's too), and far nearer than with 10."""
    model = LinearGaussian()
    kwargs = {"prior": "mixture", "prior_parameters": model.MIXTURE} if prior == "mixture" else {}
    sampler = model.stand_in(shift=(0.4, -0.3), stretch=1.5, **kwargs).sampler
    x = sampler.sample(8, seed=7)
    exact = model.log_marginal(x, prior=prior)

    errors = {k: sampler.log_likelihood(x, k, seed=k) - exact for k in (10, 20_000)}

    assert errors[20_000].shape == (8,) and errors[20_000].dtype == np.float64
    assert np.max(np.abs(errors[20_000])) < 0.06, errors[20_000]
    rms = {k: np.sqrt(np.mean(error**2)) for k, error in errors.items()}
    assert rms[20_000] < rms[10] / 4, rms


@pytest.mark.parametrize("chunk_size", [1, 7, 10, 50, 64])
def test_log_likelihood_decodes_every_sample_once_in_chunks(chunk_size):
    """The decoder sees at most chunk_size latents per example at a time (the memory
    bound), and all num_samples of them, each once. The posterior draws its noise chunk
    after chunk from one stream, so the latents, and the estimate up to rounding, do not
    depend on the chunk size."""
    model = LinearGaussian()
    made = model.stand_in(shift=(0.4, -0.3), stretch=1.5)
    x = model.data(4)
    whole = made.sampler.log_likelihood(x, num_samples=50, chunk_size=50, seed=0)
    made.decoder.batches.clear()

    chunked = made.sampler.log_likelihood(x, num_samples=50, chunk_size=chunk_size, seed=0)

    assert sum(made.decoder.batches) == 50 * 4
    assert all(batch % 4 == 0 for batch in made.decoder.batches)
    assert max(made.decoder.batches) <= 4 * chunk_size
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-9)
    assert np.ptp(whole) > 0.1  # the examples' estimates differ: nothing is mixed up


# ---------------------------------------------------------- encoding and decoding


@pytest.mark.parametrize("diagonal", [True, False], ids=["diagonal_normal", "full_covariance"])
def test_encode_reconstruct_and_interpolate_follow_the_posterior_means(diagonal):
    """The linear model: the posterior mean is A (x - b) + shift; the reconstruction its
    image W m + b; the path the images of `latent_path` between two means."""
    model = LinearGaussian(diagonal)
    sampler = model.stand_in(shift=(0.4, -0.3), stretch=1.5).sampler
    x = model.data(3)
    means = (x - model.b) @ model.A.T + [0.4, -0.3]
    spread = model.posterior_spread(1.5)

    loc, scale = sampler.encode(x)

    assert loc.dtype == scale.dtype == np.float32
    np.testing.assert_allclose(loc, means, atol=1e-5)
    assert scale.shape == (3, *spread.shape)
    np.testing.assert_allclose(scale, np.broadcast_to(spread, scale.shape), rtol=1e-6)
    np.testing.assert_allclose(sampler.reconstruct(x), means @ model.W.T + model.b, atol=1e-5)
    for method in ("linear", "spherical"):
        path = sampler.interpolate(x[0], x[1], steps=5, method=method)
        expected = latent_path(means[0], means[1], 5, method) @ model.W.T + model.b
        np.testing.assert_allclose(path, expected, atol=1e-5)
    halfway = (means[0] + means[1]) / 2 @ model.W.T + model.b
    np.testing.assert_allclose(sampler.interpolate(x[0], x[1], steps=3)[1], halfway, atol=1e-5)
    assert sampler.interpolate(x[0], x[2]).shape == (8, 5)


def test_interpolate_takes_ends_of_any_float_dtype_or_lists():
    """The networks take float32: float64 arrays and nested lists are converted."""
    model = LinearGaussian()
    sampler = model.stand_in().sampler
    x = model.data(2)
    expected = sampler.interpolate(x[0], x[1], steps=4)

    for x_a, x_b in [(x[0].astype(np.float64), x[1]), (x[0], x[1].tolist())]:
        path = sampler.interpolate(x_a, x_b, steps=4)
        assert path.dtype == np.float32
        np.testing.assert_allclose(path, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("n", [1, 4096])
def test_every_call_returns_its_documented_shape(n):
    family = FAMILIES["categorical"]
    made = family_stand_in(family, "full_covariance")
    sampler = made.sampler
    x = family_data(family, n)
    z = np.random.default_rng(0).normal(size=(n, LATENT_DIM))

    assert sampler.latent_dim == LATENT_DIM and sampler.data_shape == DATA_SHAPE
    assert sampler.sample(n, seed=0).shape == (n, *DATA_SHAPE)
    assert sampler.sample(n, seed=0, mean=True).shape == (n, *DATA_SHAPE)
    assert sampler.sample_latents(n, seed=0).shape == (n, LATENT_DIM)
    assert sampler.sample_given(z, seed=0).shape == (n, *DATA_SHAPE)
    assert sampler.decode(z)["logits"].shape == (n, *DATA_SHAPE, 5)
    np.testing.assert_array_equal(sampler.mean(z), made.decoder.named(z=z)["mean"])
    loc, scale_tril = sampler.encode(x)
    assert loc.shape == (n, LATENT_DIM) and scale_tril.shape == (n, LATENT_DIM, LATENT_DIM)
    assert sampler.reconstruct(x).shape == (n, *DATA_SHAPE)
    assert sampler.interpolate(x[0], x[-1], steps=4).shape == (4, *DATA_SHAPE)
    for scores in (sampler.log_likelihood(x, 3, seed=0), sampler.elbo(x, 2, seed=0)):
        assert scores.shape == (n,) and scores.dtype == np.float64 and np.isfinite(scores).all()
    assert sampler.log_weights(x, np.zeros((2, n, LATENT_DIM))).shape == (2, n)


def _seeded_calls(sampler, x, z):
    return {
        "sample": lambda seed: sampler.sample(6, seed=seed),
        "sample_latents": lambda seed: sampler.sample_latents(6, seed=seed),
        "sample_given": lambda seed: sampler.sample_given(z, seed=seed),
        "log_likelihood": lambda seed: sampler.log_likelihood(x, 20, chunk_size=7, seed=seed),
        "elbo": lambda seed: sampler.elbo(x, 20, seed=seed),
    }


def test_the_same_seed_gives_the_same_draws_and_scores():
    model = LinearGaussian()
    sampler = model.stand_in(shift=(0.4, -0.3), stretch=1.5).sampler
    z = np.random.default_rng(0).normal(size=(6, 2))

    for name, call in _seeded_calls(sampler, model.data(3), z).items():
        np.testing.assert_array_equal(call(3), call(3), err_msg=name)
        assert np.all(call(3) != call(4)), name
        assert not np.array_equal(call(None), call(None)), name  # fresh entropy
    for temperature in (1.0, 0.5):
        a, b = (sampler.sample(4, seed=3, mean=True, temperature=temperature) for _ in "ab")
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("seed", [-1, 2**31, 1.5, True])
def test_seeds_share_the_one_range_of_tfvae(seed):
    model = LinearGaussian()
    sampler = model.stand_in().sampler
    calls = _seeded_calls(sampler, model.data(3), np.zeros((6, 2)))

    for name, call in calls.items():
        with pytest.raises(
            ValueError, match=r"Expected seed to be an integer in \[0, 2147483647\]"
        ):
            call(seed)
        assert np.isfinite(call(2**31 - 1)).all(), name


def test_counts_temperatures_and_sample_numbers_are_checked():
    model = LinearGaussian()
    sampler = model.stand_in().sampler
    x = model.data(2)

    for call in (lambda: sampler.sample(0), lambda: sampler.sample_latents(0)):
        with pytest.raises(ValueError, match=r"Expected n to be a positive integer"):
            call()
    for temperature in (0.0, -1.0, np.nan):
        with pytest.raises(ValueError, match=r"Expected temperature to be a finite number > 0"):
            sampler.sample_latents(2, temperature=temperature)
        with pytest.raises(ValueError, match=r"Expected temperature to be a finite number > 0"):
            sampler.sample(2, temperature=temperature)
    with pytest.raises(ValueError, match=r"Expected num_samples to be a positive integer"):
        sampler.log_likelihood(x, num_samples=0)
    with pytest.raises(ValueError, match=r"Expected num_samples to be a positive integer"):
        sampler.elbo(x, num_samples=0)
    with pytest.raises(ValueError, match=r"Expected chunk_size to be a positive integer"):
        sampler.log_likelihood(x, num_samples=4, chunk_size=0)


# --------------------------------------------------------------------- input checks


@pytest.mark.parametrize("shape", [(5, 2), (5, 4), (3,), (2, 3, 1)])
def test_wrong_z_shape_names_the_latent_size(shape):
    sampler = family_stand_in(FAMILIES["bernoulli"]).sampler
    for call in (sampler.decode, sampler.mean, sampler.sample_given):
        with pytest.raises(ValueError, match=r"z of shape \(batch_size, latent_dim=3\)"):
            call(np.zeros(shape))


@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 3), (2, 2, 2), (2, 2, 3, 1)])
def test_wrong_latents_of_the_log_weights_name_their_shape(shape):
    sampler = family_stand_in(FAMILIES["bernoulli"]).sampler
    x = family_data(FAMILIES["bernoulli"], 2)
    with pytest.raises(ValueError, match=r"z of shape \(L, n=2, latent_dim=3\)"):
        sampler.log_weights(x, np.zeros(shape))


def test_wrong_x_shape_names_the_data_shape():
    sampler = family_stand_in(FAMILIES["bernoulli"]).sampler
    calls = [
        sampler.encode,
        sampler.reconstruct,
        lambda x: sampler.log_likelihood(x, 2),
        lambda x: sampler.elbo(x, 2),
        lambda x: sampler.log_weights(x, np.zeros((1, 2, 3))),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=r"x of shape \(batch_size, \*\(4, 6, 1\)\)"):
            call(np.zeros((2, 24)))
    for argument in ("x_a", "x_b"):
        ends = {"x_a": np.zeros(DATA_SHAPE), "x_b": np.zeros(DATA_SHAPE), argument: np.zeros(24)}
        with pytest.raises(ValueError, match=rf"Expected {argument} of shape \(4, 6, 1\)"):
            sampler.interpolate(**ends)


def _with_entry(shape, index, value):
    array = np.zeros(shape, dtype=np.float32)
    array[index] = value
    return array


@pytest.mark.parametrize("method", ["decode", "mean", "sample_given"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_z_is_refused_by_name(method, value):
    sampler = family_stand_in(FAMILIES["bernoulli"]).sampler
    z = _with_entry((2, 3), (0, 1), value)
    z[1, 2] = value

    with pytest.raises(ValueError) as info:
        getattr(sampler, method)(z)

    assert str(info.value) == (
        f"Expected z to be finite. Received: z with 2 non-finite entries "
        f"({value:g} at index (0, 1))"
    )
    x = family_data(FAMILIES["bernoulli"], 2)
    # log_weights names the entry of its own z `(L, n, latent_dim)`, not of a reshaped one.
    with pytest.raises(
        ValueError, match=rf"Expected z to be finite.*\({value:g} at index \(0, 0, 1\)\)"
    ):
        sampler.log_weights(x, z.reshape(1, 2, 3))


def _x_calls(sampler, x, argument):
    """Calls the public method that receives `x` as `argument`."""
    other = np.zeros_like(x[0])
    return {
        "x": lambda: sampler.encode(x),
        "x (reconstruct)": lambda: sampler.reconstruct(x),
        "x (log_likelihood)": lambda: sampler.log_likelihood(x, num_samples=2),
        "x (elbo)": lambda: sampler.elbo(x, num_samples=2),
        "x (log_weights)": lambda: sampler.log_weights(x, np.zeros((1, len(x), LATENT_DIM))),
        "x_a": lambda: sampler.interpolate(x[0], other, steps=3),
        "x_b": lambda: sampler.interpolate(other, x[0], steps=3),
    }[argument]


X_ARGUMENTS = ["x", "x (reconstruct)", "x (log_likelihood)", "x (elbo)", "x (log_weights)"]
X_ARGUMENTS += ["x_a", "x_b"]


@pytest.mark.parametrize("argument", X_ARGUMENTS)
@pytest.mark.parametrize("likelihood_name", ["gaussian", "binomial"])
def test_non_finite_x_is_refused_by_name(likelihood_name, argument):
    sampler = family_stand_in(likelihoods.get(likelihood_name)).sampler
    x = _with_entry((2, *DATA_SHAPE), (0, 3, 4, 0), np.nan)
    name = argument.split()[0]

    with pytest.raises(ValueError) as info:
        _x_calls(sampler, x, argument)()

    index = "(0, 3, 4, 0)" if name == "x" else "(3, 4, 0)"
    assert str(info.value) == (
        f"Expected {name} to be finite. Received: {name} with 1 non-finite entries "
        f"(nan at index {index})"
    )


@pytest.mark.parametrize("argument", X_ARGUMENTS)
@pytest.mark.parametrize(
    ("likelihood_name", "value", "support"),
    [
        ("bernoulli", 1.5, "reals in [0, 1]"),
        ("bernoulli", -0.1, "reals in [0, 1]"),
        ("continuous_bernoulli", -0.1, "reals in [0, 1]"),
        ("continuous_bernoulli", 1.01, "reals in [0, 1]"),
        ("binomial", 17.0, "integers in [0, 16]"),
        ("binomial", 2.5, "integers in [0, 16]"),
        ("binomial", -1.0, "integers in [0, 16]"),
        ("categorical", 17.0, "integers in [0, 16]"),
        ("categorical", 0.5, "integers in [0, 16]"),
    ],
)
def test_x_outside_the_support_is_refused_by_name(likelihood_name, value, support, argument):
    sampler = family_stand_in(likelihoods.get(likelihood_name)).sampler
    x = _with_entry((2, *DATA_SHAPE), (0, 0, 5, 0), value)
    name = argument.split()[0]

    with pytest.raises(ValueError) as info:
        _x_calls(sampler, x, argument)()

    assert str(info.value).startswith(
        f"Expected {name} in the support of the {likelihood_name!r} likelihood: {support}. "
        f"Received: {name} with 1 of {x[0].size if name != 'x' else x.size} entries outside "
        f"it ({value:g} at index "
    )


@pytest.mark.parametrize(
    ("likelihood_name", "values"),
    [
        ("bernoulli", [0.0, 0.5, 1.0]),  # grey levels: the cross-entropy objective
        ("continuous_bernoulli", [0.0, 0.25, 1.0]),
        ("binomial", [0.0, 7.0, 16.0]),
        ("categorical", [0.0, 7.0, 16.0]),
        ("gaussian", [-1e6, 0.0, 1e6]),
        ("gaussian_learned_scale", [-3.0, 0.5, 40.0]),
    ],
)
def test_x_in_the_support_passes_every_check(likelihood_name, values):
    sampler = family_stand_in(likelihoods.get(likelihood_name)).sampler
    x = np.resize(np.asarray(values, dtype=np.float32), (2, *DATA_SHAPE))

    for argument in X_ARGUMENTS:
        result = _x_calls(sampler, x, argument)()
        for array in result if isinstance(result, tuple) else (result,):
            assert np.all(~np.isnan(array)), argument


def test_a_manifest_without_a_support_record_checks_finiteness_only():
    """Bundles written before the support was recorded: no support check, still finite."""
    made = family_stand_in(likelihoods.get("binomial"))
    manifest = {**made.sampler.manifest}
    manifest["likelihood"] = {**manifest["likelihood"]}
    del manifest["likelihood"]["support"]
    sampler = Sampler(manifest, made.decoder, made.encoder)

    assert sampler.encode(np.full((1, *DATA_SHAPE), 2.5))[0].shape == (1, LATENT_DIM)
    assert np.isfinite(sampler.log_likelihood(np.full((1, *DATA_SHAPE), 2.0), 3)).all()
    with pytest.raises(ValueError, match=r"Expected x to be finite"):
        sampler.encode(np.full((1, *DATA_SHAPE), np.inf))


@pytest.mark.parametrize("entry", ["likelihood", "prior", "posterior"])
def test_an_unknown_family_is_a_bundle_error_naming_the_manifest(entry, tmp_path):
    made = family_stand_in(FAMILIES["bernoulli"])
    manifest = {**made.sampler.manifest, entry: {**made.sampler.manifest[entry]}}
    manifest[entry]["family"] = "poisson"

    with pytest.raises(BundleError, match=rf"Unknown {entry} 'poisson'.*imported") as info:
        Sampler(manifest, made.decoder, made.encoder, bundle_dir=tmp_path)

    assert info.value.path == tmp_path / "manifest.json"


def test_a_decoder_only_bundle_samples_but_cannot_encode():
    model = LinearGaussian()
    sampler = model.stand_in(encoder=False).sampler
    x = model.data(2)

    assert sampler.sample(3, seed=0).shape == (3, 5)
    calls = [
        lambda: sampler.encode(x),
        lambda: sampler.reconstruct(x),
        lambda: sampler.interpolate(x[0], x[1]),
        lambda: sampler.log_likelihood(x, 2),
        lambda: sampler.elbo(x, 2),
        lambda: sampler.log_weights(x, np.zeros((1, 2, 2))),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=r"This bundle has no encoder"):
            call()


# ------------------------------------------------------------------ conditional models


def test_a_conditional_model_follows_its_condition():
    """E[x|z, y] = W z + b + V y: one condition for all samples, or one per sample."""
    model = LinearGaussian(conditional=True)
    sampler = model.stand_in().sampler
    rng = np.random.default_rng(0)
    z, y = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))

    assert sampler.condition_shape == (2,)
    np.testing.assert_allclose(sampler.mean(z, y), z @ model.W.T + model.offset(y), atol=1e-5)
    np.testing.assert_allclose(
        sampler.mean(z, condition=y[1]), z @ model.W.T + model.offset(y[1]), atol=1e-5
    )
    draws = sampler.sample(20_000, seed=0, condition=y[1]).astype(np.float64)
    np.testing.assert_allclose(draws.mean(axis=0), model.offset(y[1]), atol=0.05)
    means = sampler.sample(4, seed=0, mean=True, condition=y)
    latents = np.linalg.lstsq(model.W, (means - model.offset(y)).T, rcond=None)[0].T
    np.testing.assert_allclose(latents @ model.W.T + model.offset(y), means, atol=1e-4)


def _conditional_calls(sampler, x, z, condition):
    """Every public call that takes a condition, by name; x and z have 4 rows."""
    return {
        "sample": lambda: sampler.sample(4, seed=0, condition=condition),
        "sample (mean)": lambda: sampler.sample(4, seed=0, mean=True, condition=condition),
        "decode": lambda: sampler.decode(z, condition=condition),
        "mean": lambda: sampler.mean(z, condition=condition),
        "sample_given": lambda: sampler.sample_given(z, seed=0, condition=condition),
        "encode": lambda: sampler.encode(x, condition=condition),
        "reconstruct": lambda: sampler.reconstruct(x, condition=condition),
        "interpolate": lambda: sampler.interpolate(x[0], x[1], steps=3, condition=condition),
        "log_likelihood": lambda: sampler.log_likelihood(x, 3, seed=0, condition=condition),
        "elbo": lambda: sampler.elbo(x, 3, seed=0, condition=condition),
        "log_weights": lambda: sampler.log_weights(x, np.zeros((2, 4, 2)), condition=condition),
    }


def test_a_conditional_model_refuses_a_missing_or_misshapen_condition():
    model = LinearGaussian(conditional=True)
    sampler = model.stand_in().sampler
    x, z = model.data(4, np.zeros((4, 2))), np.zeros((4, 2))

    for call in _conditional_calls(sampler, x, z, None).values():
        with pytest.raises(ValueError, match=r"conditional: pass condition=, of shape \(2,\)"):
            call()
    for condition in (np.zeros(3), np.zeros((3, 2)), np.zeros((4, 2, 1))):
        for call in _conditional_calls(sampler, x, z, condition).values():
            with pytest.raises(ValueError, match=r"Expected a condition of shape \(2,\) or"):
                call()
    unconditional = LinearGaussian().stand_in().sampler
    for call in _conditional_calls(unconditional, x, z, np.zeros(2)).values():
        with pytest.raises(ValueError, match=r"not conditional; it takes no condition"):
            call()


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_condition_is_refused_by_name(value):
    model = LinearGaussian(conditional=True)
    sampler = model.stand_in().sampler
    x, z = model.data(4, np.zeros((4, 2))), np.zeros((4, 2))
    message = (
        rf"Expected condition to be finite\. Received: condition with 1 non-finite .*{value:g}"
    )

    for call in _conditional_calls(sampler, x, z, np.array([1.0, value])).values():
        with pytest.raises(ValueError, match=message):
            call()
    for condition in (np.array([1.0, 0.0]), np.eye(2)[[0, 1, 0, 1]]):  # finite: one or per row
        for name, call in _conditional_calls(sampler, x, z, condition).items():
            if name == "interpolate" and condition.ndim == 2:
                continue  # one condition for both ends and the path
            result = call()
            result = tuple(result.values()) if isinstance(result, dict) else result
            for array in result if isinstance(result, tuple) else (result,):
                assert np.isfinite(array).all(), name


# ----------------------------------------------------------- the support, recorded


MIXED = np.array(
    [-1.0, -0.0, 0.0, 0.3, 1.0, 1.5, 2.0, 4.0, 16.0, 16.5, 17.0, 255.0, np.inf, -np.inf, np.nan]
)


def _families():
    from tfvae import likelihoods

    made = [likelihoods.get(name) for name in likelihoods.registry.names()]
    return [*made, likelihoods.Binomial(total_count=4)]


@pytest.mark.parametrize("likelihood", _families(), ids=repr)
def test_runtime_support_check_agrees_with_the_family(likelihood):
    """The numpy check on the manifest's record and the family's TF `in_support`."""
    import tensorflow as tf

    from tfvae.runtime import in_support

    bounds = json.loads(json.dumps(likelihood.support_bounds()))  # as the manifest has it

    expected = likelihood.in_support(tf.constant(MIXED, dtype=tf.float32)).numpy()

    np.testing.assert_array_equal(in_support(MIXED.astype(np.float32), bounds), expected)
    assert set(bounds) == {"low", "high", "integer"}


def test_every_registered_family_declares_its_support():
    from tfvae import likelihoods

    declared = {
        name: likelihoods.get(name).support_bounds() for name in likelihoods.registry.names()
    }

    assert declared == {
        "bernoulli": {"low": 0.0, "high": 1.0, "integer": False},
        "binomial": {"low": 0.0, "high": 16.0, "integer": True},
        "categorical": {"low": 0.0, "high": 16.0, "integer": True},
        "continuous_bernoulli": {"low": 0.0, "high": 1.0, "integer": False},
        "gaussian": {"low": None, "high": None, "integer": False},
        "gaussian_learned_scale": {"low": None, "high": None, "integer": False},
    }
    texts = {name: likelihoods.get(name).support for name in declared}
    assert texts == {
        "bernoulli": "reals in [0, 1]",
        "binomial": "integers in [0, 16]",
        "categorical": "integers in [0, 16]",
        "continuous_bernoulli": "reals in [0, 1]",
        "gaussian": "finite reals",
        "gaussian_learned_scale": "finite reals",
    }


# ========================================= fast: bundles of tiny ONNX graphs on disk


def _affine_onnx(path, inputs: dict, outputs: dict) -> None:
    """Writes an ONNX graph of float32 inputs `{name: size}` (each `(batch, size)`) whose
    outputs `{name: (bias, {input name: weights (size, width)})}` are affine maps."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, constants = [], []
    for out, (bias, weights) in outputs.items():
        terms = []
        for name, value in weights.items():
            constants.append(numpy_helper.from_array(np.float32(value), f"{out}_{name}_w"))
            nodes.append(helper.make_node("MatMul", [name, f"{out}_{name}_w"], [f"{out}_{name}"]))
            terms.append(f"{out}_{name}")
        constants.append(numpy_helper.from_array(np.float32(bias), f"{out}_b"))
        nodes.append(helper.make_node("Sum", [*terms, f"{out}_b"], [out]))
    graph = helper.make_graph(
        nodes,
        "affine",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, s]) for n, s in inputs.items()],
        [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, len(bias)])
            for name, (bias, _) in outputs.items()
        ],
        constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


SHIFT, STRETCH = np.array([0.4, -0.3]), 1.5


def _write_bundle(folder, model, components=("decoder", "encoder")) -> Path:
    """A bundle of `LinearGaussian(diagonal=True)`'s networks, as the export lays it out:
    the decoder z -> loc = mean = W z + b; the encoder x -> loc = A (x - b) + SHIFT and
    scale = STRETCH sqrt(diag S); the manifest with every file's SHA-256."""
    folder = Path(folder)
    folder.mkdir(exist_ok=True)
    manifest = stand_in_manifest(
        likelihoods.Gaussian(scale=model.SCALE), posteriors.get("diagonal_normal"), 2, (5,)
    )
    networks = {
        "decoder": (
            {"z": 2},
            {"loc": (model.b, {"z": model.W.T}), "mean": (model.b, {"z": model.W.T})},
        ),
        "encoder": (
            {"x": 5},
            {
                "loc": (SHIFT - model.A @ model.b, {"x": model.A.T}),
                "scale": (model.posterior_spread(STRETCH), {"x": np.zeros((5, 2))}),
            },
        ),
    }
    manifest["onnx"] = {name: manifest["onnx"][name] for name in components}
    for name in components:
        _affine_onnx(folder / f"{name}.onnx", *networks[name])
    manifest["files"] = file_digests(folder, [f"{name}.onnx" for name in components])
    write_manifest(folder, manifest)
    return folder


@pytest.fixture
def opened(monkeypatch):
    """Records the arguments of every `onnxruntime.InferenceSession` opened."""
    import onnxruntime

    real, calls = onnxruntime.InferenceSession, []

    def session(path, sess_options=None, providers=None, **kwargs):
        calls.append(
            types.SimpleNamespace(path=Path(path), options=sess_options, providers=providers)
        )
        return real(path, sess_options=sess_options, providers=providers, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", session)
    return calls


@pytest.mark.parametrize("threads", [None, 1])
def test_load_opens_a_verified_bundle_with_the_threads_and_providers_asked(
    tmp_path, opened, threads
):
    """Each network is opened once, on CPU by default, with `threads` intra-op threads
    (onnxruntime's choice, 0, when None); the sessions compute the bundle's networks."""
    model = LinearGaussian(diagonal=True)
    folder = _write_bundle(tmp_path / "bundle", model)

    sampler = Sampler.load(folder, threads=threads)

    assert sorted(call.path for call in opened) == [
        folder / "decoder.onnx",
        folder / "encoder.onnx",
    ]
    for call in opened:
        assert call.providers == ["CPUExecutionProvider"]
        assert call.options.intra_op_num_threads == (threads or 0)
    z = np.random.default_rng(0).normal(size=(3, 2))
    np.testing.assert_allclose(sampler.mean(z), z @ model.W.T + model.b, atol=1e-5)
    x = model.data(3)
    loc, scale = sampler.encode(x)
    np.testing.assert_allclose(loc, (x - model.b) @ model.A.T + SHIFT, atol=1e-5)
    np.testing.assert_allclose(
        scale, np.broadcast_to(model.posterior_spread(STRETCH), (3, 2)), rtol=1e-6
    )
    assert sampler.manifest["format_version"] == FORMAT_VERSION
    opened.clear()
    Sampler.load(folder, providers=["CPUExecutionProvider"], threads=2)
    assert [call.providers for call in opened] == [["CPUExecutionProvider"]] * 2
    assert [call.options.intra_op_num_threads for call in opened] == [2, 2]


@pytest.mark.parametrize("spinning, entry", [(True, "1"), (False, "0")])
def test_load_lets_idle_threads_spin_or_sleep(tmp_path, opened, spinning, entry):
    folder = _write_bundle(tmp_path / "bundle", LinearGaussian(diagonal=True))
    sampler = Sampler.load(folder, threads=1, spinning=spinning)
    for call in opened:
        assert call.options.get_session_config_entry("session.intra_op.allow_spinning") == entry
        assert call.options.intra_op_num_threads == 1
    assert sampler.mean(np.zeros((1, 2))).shape == (1, 5)


def test_load_refuses_a_thread_count_below_one(tmp_path):
    folder = _write_bundle(tmp_path / "bundle", LinearGaussian(diagonal=True))
    with pytest.raises(ValueError, match="threads"):
        Sampler.load(folder, threads=0)


@pytest.mark.parametrize(
    "name", ["decoder.onnx", "encoder.onnx", "manifest.json", "manifest.sha256"]
)
def test_a_flipped_byte_in_a_written_bundle_is_refused_by_name(tmp_path, opened, name):
    folder = _write_bundle(tmp_path / "bundle", LinearGaussian(diagonal=True))
    path = folder / name
    payload = bytearray(path.read_bytes())
    payload[len(payload) // 2] ^= 0x01
    path.write_bytes(bytes(payload))

    with pytest.raises(BundleError) as info:
        Sampler.load(folder)

    assert info.value.path == (path if name.endswith(".onnx") else folder / "manifest.json")
    assert "altered file" in str(info.value)
    assert opened == []  # refused before any session is opened


def test_a_decoder_only_bundle_loads_and_a_bundle_without_decoder_is_refused(tmp_path):
    model = LinearGaussian(diagonal=True)
    sampler = Sampler.load(_write_bundle(tmp_path / "decoder", model, ["decoder"]))

    z = np.random.default_rng(0).normal(size=(3, 2))
    np.testing.assert_allclose(sampler.mean(z), z @ model.W.T + model.b, atol=1e-5)
    assert sampler.sample(4, seed=0).shape == (4, 5)
    with pytest.raises(ValueError, match=r"This bundle has no encoder"):
        sampler.encode(model.data(2))
    folder = _write_bundle(tmp_path / "encoder", model, ["encoder"])
    with pytest.raises(BundleError, match=r"the bundle has no decoder") as info:
        Sampler.load(folder)
    assert info.value.path == folder / "manifest.json"


# ======================================= a hierarchy of latents: z2 -> z1 -> x, in numpy


def two_layer_stand_in(shift=0.0, upper_shift=0.0, stretch=1.0, **networks):
    """The two-layer linear-Gaussian model of `tests.test_priors` on stand-in sessions:
    the manifest's chain as `export._prior_entry` writes it, and the networks of z2's
    layer, `decoder_2` (p(z1|z2)) and `encoder_2` (q(z2|z1) = N(A2 (z1 - c) +
    upper_shift, stretch^2 S2)); q(z1|x) = N(A1 x + a1 + shift, stretch^2 S1). `networks`
    replaces or removes (None) sessions by name."""
    model = TwoLayerLinearGaussian()
    tril = stretch * np.linalg.cholesky(model.S1)
    encoder = (model.A1.T, model.a1 + shift, tril)
    made = stand_in(
        likelihoods.Gaussian(scale=0.7), (5,), (model.W.T, model.b), encoder, "full_covariance"
    )
    upper_tril = stretch * np.linalg.cholesky(model.S2)
    sessions = {
        "decoder_2": StandInSession(
            {"z": (2,)},
            ["scale", "loc"],
            lambda z: {"loc": z @ model.V.T + model.c, "scale": np.full((len(z), 3), 0.6)},
        ),
        "encoder_2": StandInSession(
            {"z": (3,)},
            ["scale_tril", "loc"],
            lambda z: {
                "loc": (z - model.c) @ model.A2.T + upper_shift,
                "scale_tril": np.broadcast_to(upper_tril, (len(z), 2, 2)),
            },
        ),
    }
    sessions.update(networks)
    manifest = {
        **made.sampler.manifest,
        "prior": {
            "family": "hierarchical",
            "parameters": {},
            "upper_dim": 2,
            "conditional": {"family": "diagonal_normal", "parameters": ["loc", "scale"]},
            "posterior": {"family": "full_covariance", "parameters": ["loc", "scale_tril"]},
            "networks": {"decoder": "decoder_2", "encoder": "encoder_2"},
            "prior": {"family": "standard_normal", "parameters": {}},
        },
    }
    sessions = {name: session for name, session in sessions.items() if session is not None}
    return model, Sampler(manifest, made.decoder, made.encoder, networks=sessions)


def _assert_gaussian_moments(draws, mean, covariance):
    """Sample mean and covariance within NUM_SE standard errors of a Gaussian's."""
    n = len(draws)
    variances = np.diag(covariance)
    assert np.all(np.abs(draws.mean(axis=0) - mean) < helpers.NUM_SE * np.sqrt(variances / n))
    covariance_se = np.sqrt((np.outer(variances, variances) + covariance**2) / n)
    assert np.all(np.abs(np.cov(draws.T) - covariance) < helpers.NUM_SE * covariance_se)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_a_hierarchy_draws_every_layer_from_the_top_down(temperature):
    """z2 ~ N(0, T^2 I), z1 ~ N(V z2 + c, T^2 tau^2 I): z1 ~ N(c, T^2 C1), and x ~ p(x|z1),
    whose marginal at T = 1 is the model's; each against the closed form."""
    model, sampler = two_layer_stand_in()
    assert sampler.latent_dims == (3, 2)
    z1 = sampler.sample_latents(N, seed=0, temperature=temperature).astype(np.float64)
    assert z1.shape == (N, 3)
    _assert_gaussian_moments(z1, model.c, temperature**2 * model.C1)
    if temperature == 1.0:
        x = sampler.sample(N, seed=1).astype(np.float64)
        _assert_gaussian_moments(x, *model.marginal())


def test_a_hierarchy_scores_exactly_with_the_exact_posteriors():
    """With q(z1|x) and q(z2|z1) exact, every two-layer importance weight is p(x), also at
    latents far from the posterior's."""
    model, sampler = two_layer_stand_in()
    x = model.data(6)
    exact = model.log_marginal(x)
    np.testing.assert_allclose(sampler.elbo(x, num_samples=3, seed=0), exact, atol=1e-4)
    np.testing.assert_allclose(
        sampler.log_likelihood(x, 50, chunk_size=7, seed=1), exact, atol=1e-4
    )
    far = 3.0 * np.random.default_rng(2).normal(size=(4, 6, 3))
    weights = sampler.log_weights(x, far, seed=3)
    np.testing.assert_allclose(weights, np.broadcast_to(exact, (4, 6)), atol=1e-4)


def test_a_hierarchy_log_likelihood_approaches_the_log_marginal():
    """Imperfect posteriors at both layers: the ELBO lies below log p(x) and the estimate
    of 5000 samples within 0.1 nats of it; the same seed gives the same scores."""
    model, sampler = two_layer_stand_in(shift=(0.3, -0.2, 0.2), upper_shift=(0.3, 0.3), stretch=1.2)
    x = model.data(8)
    exact = model.log_marginal(x)
    estimate = sampler.log_likelihood(x, 5000, chunk_size=1000, seed=4)
    np.testing.assert_allclose(estimate, exact, atol=0.1)
    elbo = sampler.elbo(x, num_samples=20_000, seed=5)
    assert np.all(elbo < exact - 0.05), exact - elbo
    np.testing.assert_array_equal(
        sampler.log_likelihood(x, 5000, chunk_size=1000, seed=4), estimate
    )


def test_a_hierarchy_names_what_its_bundle_lacks():
    with pytest.raises(BundleError, match="'decoder_2' is missing"):
        two_layer_stand_in(decoder_2=None)
    _, sampler = two_layer_stand_in()
    with pytest.raises(ValueError, match="pass rng="):
        sampler.prior.numpy_log_prob(np.zeros((2, 3)), sampler._prior_parameters)


# ================================== slow: trained and exported models (integration)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """One exported bundle (and its Keras model) per likelihood family."""
    made = {}
    for name in sorted(LIKELIHOODS):
        folder = tmp_path_factory.mktemp(name)
        vae = trained_vae(name)
        made[name] = (vae, _export(vae, folder, name))
    return made


@pytest.mark.slow
@pytest.mark.parametrize("likelihood_name", sorted(LIKELIHOODS))
def test_runtime_samples_match_keras_samples_in_distribution(bundles, likelihood_name):
    """Per-pixel means of 10,000 draws agree within 4 standard errors of the difference."""
    vae, bundle = bundles[likelihood_name]
    ours = Sampler.load(bundle).sample(N, seed=0)
    keras_draws = vae.sample(N, seed=1).numpy()
    assert ours.shape == keras_draws.shape == (N, 8, 8, 1)
    difference = ours.mean(axis=0) - keras_draws.mean(axis=0)
    standard_error = np.sqrt((ours.var(axis=0) + keras_draws.var(axis=0)) / N)
    z_scores = np.abs(difference) / np.maximum(standard_error, 1e-12)
    assert z_scores.max() < 4.5, z_scores.max()  # 64 pixels: max of 64 |z| rarely > 4.5
    # The draws are not the means: each family's noise is present.
    assert np.mean(np.abs(ours - Sampler.load(bundle).sample(N, seed=0, mean=True))) > 1e-3


@pytest.mark.slow
def test_batch_sizes_one_and_4096(bundles):
    vae, bundle = bundles["bernoulli"]
    sampler = Sampler.load(bundle)
    for n in (1, 4096):
        z = np.random.default_rng(n).normal(size=(n, 3)).astype("float32")
        np.testing.assert_allclose(sampler.mean(z), vae.decode(z).mean().numpy(), atol=1e-5)
    assert sampler.sample(4096, seed=0).shape == (4096, 8, 8, 1)


@pytest.mark.slow
def test_reconstruct_and_interpolate_follow_the_posterior_means(bundles):
    vae, bundle = bundles["bernoulli"]
    sampler = Sampler.load(bundle)
    x = _data("bernoulli", n=2, seed=9)
    np.testing.assert_allclose(sampler.reconstruct(x), vae(x).numpy(), atol=1e-5)
    path = sampler.interpolate(x[0], x[1], steps=5)
    assert path.shape == (5, 8, 8, 1)
    np.testing.assert_allclose(path[[0, -1]], vae(x).numpy(), atol=1e-5)
    loc = vae.encode(x).mean().numpy()
    np.testing.assert_allclose(
        path[2], vae.decode(loc.mean(axis=0, keepdims=True)).mean()[0], atol=1e-5
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["decoder.onnx", "encoder.onnx", "manifest.json", "manifest.sha256"]
)
def test_one_flipped_byte_in_any_file_is_refused_by_name(bundles, tmp_path, name):
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(bundles["bernoulli"][1], bundle)
    path = bundle / name
    payload = bytearray(path.read_bytes())
    payload[len(payload) // 2] ^= 0x01
    path.write_bytes(bytes(payload))
    with pytest.raises(BundleError, match=r"manifest\.json" if "manifest" in name else name):
        Sampler.load(bundle)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["decoder.onnx", "manifest.json", "manifest.sha256"])
def test_a_missing_file_is_refused_by_name(bundles, tmp_path, name):
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(bundles["bernoulli"][1], bundle)
    (bundle / name).unlink()
    with pytest.raises(BundleError, match=name.replace(".", r"\.")):
        Sampler.load(bundle)


@pytest.mark.slow
def test_runtime_needs_no_tensorflow(bundles):
    bundle = bundles["binomial"][1]
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["tensorflow"] = None  # any import of TensorFlow now fails
        sys.modules["keras"] = None
        import tfvae.runtime
        sampler = tfvae.runtime.Sampler.load({str(bundle)!r})
        x = sampler.sample(16, seed=0)
        assert x.shape == (16, 8, 8, 1), x.shape
        print(float(x.sum()))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True
    )
    total = float(result.stdout.strip())
    assert total == float(Sampler.load(bundle).sample(16, seed=0).sum())


@pytest.mark.slow
def test_manifest_format_version_is_checked(bundles, tmp_path):
    import hashlib
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(bundles["bernoulli"][1], bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["format_version"] = 99
    text = json.dumps(manifest)
    (bundle / "manifest.json").write_text(text)
    (bundle / "manifest.sha256").write_text(hashlib.sha256(text.encode()).hexdigest())
    with pytest.raises(BundleError, match="format_version 99"):
        Sampler.load(bundle)


@pytest.fixture(scope="module")
def conditional_bundle(tmp_path_factory):
    """A tiny conditional (condition_shape=(2,)) Bernoulli bundle, built by one call."""
    import keras

    import tfvae

    keras.utils.set_random_seed(0)
    vae = tfvae.VAE(
        tfvae.networks.mlp_encoder((8,)),
        tfvae.networks.mlp_decoder((8,)),
        latent_dim=3,
        condition_shape=(2,),
        seed=0,
    )
    x = _data("bernoulli", n=4)
    vae((x, np.eye(2, dtype="float32")[[0, 1, 0, 1]]))
    return _export(vae, tmp_path_factory.mktemp("conditional"), "bernoulli")


@pytest.mark.slow
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_an_exported_conditional_bundle_refuses_a_non_finite_condition(conditional_bundle, value):
    sampler = Sampler.load(conditional_bundle)
    condition = np.array([1.0, value], dtype=np.float32)
    message = (
        rf"Expected condition to be finite\. Received: condition with 1 non-finite .*{value:g}"
    )

    with pytest.raises(ValueError, match=message):
        sampler.sample(4, seed=0, condition=condition)
    with pytest.raises(ValueError, match=message):
        sampler.decode(np.zeros((2, 3)), condition=condition)
    with pytest.raises(ValueError, match=message):
        sampler.encode(_data("bernoulli", n=2), condition=condition)
    # Finite conditions still work, one for all or one per sample.
    assert sampler.sample(4, seed=0, condition=np.array([1.0, 0.0])).shape == (4, 8, 8, 1)
    assert sampler.mean(np.zeros((2, 3)), condition=np.eye(2)).shape == (2, 8, 8, 1)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("likelihood_name", "values"),
    [
        ("bernoulli", [0.0, 0.5, 1.0]),  # grey levels: the cross-entropy objective
        ("continuous_bernoulli", [0.0, 0.25, 1.0]),
        ("binomial", [0.0, 7.0, 16.0]),
        ("gaussian", [-1e6, 0.0, 1e6]),
        ("gaussian_learned_scale", [-3.0, 0.5, 40.0]),
    ],
)
def test_x_in_the_support_passes_every_call(bundles, likelihood_name, values):
    sampler = Sampler.load(bundles[likelihood_name][1])
    x = np.resize(np.asarray(values, dtype=np.float32), (2, 8, 8, 1))

    loc, scale = sampler.encode(x)
    reconstruction = sampler.reconstruct(x)
    path = sampler.interpolate(x[0], x[1], steps=3)

    assert loc.shape == scale.shape == (2, 3) and np.isfinite(loc).all()
    assert reconstruction.shape == (2, 8, 8, 1) and np.isfinite(reconstruction).all()
    assert path.shape == (3, 8, 8, 1) and np.isfinite(path).all()


@pytest.mark.slow
def test_manifest_records_each_family_support(bundles):
    for vae, bundle in bundles.values():
        manifest = json.loads((bundle / "manifest.json").read_text())
        assert manifest["likelihood"]["support"] == vae.likelihood.support_bounds()


@pytest.mark.slow
def test_a_bundle_without_a_support_record_checks_finiteness_only(bundles, tmp_path):
    """Bundles written before the support was recorded: no support check, still finite."""
    import hashlib
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(bundles["binomial"][1], bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    del manifest["likelihood"]["support"]
    text = json.dumps(manifest)
    (bundle / "manifest.json").write_text(text)
    (bundle / "manifest.sha256").write_text(hashlib.sha256(text.encode()).hexdigest())
    sampler = Sampler.load(bundle)

    assert sampler.encode(np.full((1, 8, 8, 1), 2.5))[0].shape == (1, 3)
    with pytest.raises(ValueError, match=r"Expected x to be finite"):
        sampler.encode(np.full((1, 8, 8, 1), np.inf))


@pytest.mark.slow
@pytest.mark.parametrize("likelihood_name", sorted(LIKELIHOODS))
def test_runtime_draws_follow_the_exported_parameters(bundles, likelihood_name):
    """x ~ p(x|z) at one z, every pixel tested against the distribution its exported
    parameters give: chi-squared (discrete) or KS (continuous), and the variance."""
    _, bundle = bundles[likelihood_name]
    sampler = Sampler.load(bundle)
    z = np.repeat(sampler.sample_latents(1, seed=5), DRAWS, axis=0)
    draws = sampler.sample_given(z, seed=6).reshape(DRAWS, -1).astype(np.float64)  # [N, 64]
    params = {
        name: value[0].reshape(64, *value.shape[len(sampler.data_shape) + 1 :])
        for name, value in sampler.decode(z[:1]).items()
    }
    p_values, draw_variances, variances = [], [], []
    for pixel in range(64):
        p_value, variance = helpers.draw_reference(sampler.likelihood, params, pixel)
        p_values.append(p_value(draws[:, pixel]))
        draw_variances.append(draws[:, pixel].var())
        variances.append(variance)
    # 64 tests: the smallest p-value falls below 1e-4 by chance with probability < 0.007.
    assert min(p_values) > 1e-4, (min(p_values), int(np.argmin(p_values)))
    # The pooled variance over 64 pixels x 4000 draws: a sampler that drops or doubles
    # a scale is off by far more than the 3% allowed.
    assert sum(draw_variances) / sum(variances) == pytest.approx(1.0, abs=0.03)


@pytest.fixture(scope="module")
def mixture_bundle(tmp_path_factory):
    vae = trained_vae("gaussian", prior=tfvae.priors.Mixture(num_components=3, seed=2))
    return vae, _export(vae, tmp_path_factory.mktemp("mixture"), "gaussian")


@pytest.mark.slow
@pytest.mark.parametrize("temperature", [1.0, 0.5])
@pytest.mark.parametrize("prior", ["standard_normal", "mixture"])
def test_runtime_prior_draws_follow_the_exported_prior(bundles, mixture_bundle, prior, temperature):
    """z ~ p(z) per dimension against the prior's CDF (KS), and its variance."""
    from scipy import stats

    if prior == "mixture":
        vae, bundle = mixture_bundle
        params = json.loads((bundle / "manifest.json").read_text())["prior"]["parameters"]
        np.testing.assert_allclose(params["locs"], vae.prior_layer.parameters()["locs"])
        assert np.ptp(np.asarray(params["locs"])) > 1.0  # distinct means: dropping them shows
    else:
        bundle = bundles["bernoulli"][1]
    sampler = Sampler.load(bundle)
    z = sampler.sample_latents(20_000, seed=3, temperature=temperature).astype(np.float64)
    assert z.shape == (20_000, 3)
    for dimension in range(3):
        if prior == "mixture":
            cdf, variance = helpers.mixture_marginal(params, dimension, temperature)
        else:
            cdf, variance = stats.norm(0, temperature).cdf, temperature**2
        assert stats.kstest(z[:, dimension], cdf).pvalue > 1e-3
        assert z[:, dimension].var() == pytest.approx(variance, rel=0.05)


def _shared_latent_estimates(vae, sampler, x, num_samples, seed):
    """log p(x) estimates by Keras and by the runtime from the same latents z ~ q(z|x)."""
    from scipy.special import logsumexp

    params = vae.posterior_parameters(x)
    z = vae.posterior_samples(params, num_samples, tfvae.random.as_seed(seed))  # [L, n, D]
    log_weights = vae.latent_terms_given(x, params, num_samples, tfvae.random.as_seed(seed))
    keras_estimate = logsumexp(log_weights.log_weights.numpy(), axis=0) - np.log(num_samples)
    ours = logsumexp(sampler.log_weights(x, z.numpy()), axis=0) - np.log(num_samples)
    return ours, keras_estimate


@pytest.mark.slow
@pytest.mark.parametrize("which", ["binomial", "mixture"])
def test_log_likelihood_agrees_with_the_keras_model_on_shared_latents(
    bundles, mixture_bundle, which
):
    """The runtime's log-weights (numpy densities of the ONNX outputs) against Keras's
    on the same 5000 latents per example: equal to float32 rounding, so the runtime's
    estimate is `VAE.log_likelihood`'s whenever the noise is the same."""
    vae, bundle = mixture_bundle if which == "mixture" else bundles["binomial"]
    sampler = Sampler.load(bundle)
    x = _data("gaussian" if which == "mixture" else "binomial", n=8, seed=3)
    ours, keras_estimate = _shared_latent_estimates(vae, sampler, x, 5000, seed=0)
    np.testing.assert_allclose(ours, keras_estimate, atol=0.01)
    # With independent noise the two differ by Monte Carlo error only; this 1-epoch model's
    # poor encoder makes that error large, so only the estimates' scale is compared here
    # (the linear-Gaussian test below compares them per example).
    independent = sampler.log_likelihood(x, num_samples=5000, seed=1)
    assert np.all(np.abs(independent - keras_estimate) < 0.05 * np.abs(keras_estimate))


@pytest.fixture(scope="module")
def linear_bundle(tmp_path_factory):
    """The exact linear-Gaussian model with an imperfect full-covariance posterior."""
    from tests.test_model import LinearGaussian

    model = LinearGaussian()
    x = model.data(16)
    vae = model.exact_vae(shift=np.array([0.4, -0.3]), stretch=1.5, seed=0)
    vae(x)
    folder = tmp_path_factory.mktemp("linear")
    bundle = export.export_model(
        vae, out_dir=folder / "bundle", saved_model_dir=folder / "saved", x_reference=x
    )
    return model, x, vae, bundle


@pytest.mark.slow
def test_log_likelihood_reaches_the_exact_log_marginal(linear_bundle):
    model, x, vae, bundle = linear_bundle
    exact = model.log_marginal(x)
    ours = Sampler.load(bundle).log_likelihood(x, num_samples=5000, seed=0)
    keras_estimate = vae.log_likelihood(x, num_samples=5000, seed=1).numpy()
    np.testing.assert_allclose(ours, exact, atol=0.1)
    np.testing.assert_allclose(keras_estimate, exact, atol=0.1)
    np.testing.assert_allclose(ours, keras_estimate, atol=0.05)


@pytest.mark.slow
def test_elbo_matches_the_closed_form_of_the_linear_model(linear_bundle):
    """ELBO = log p(x) - KL(q(z|x) || p(z|x)); for q = N(m + shift, stretch^2 S) and the
    exact posterior N(m, S) that KL is (stretch^2 d + shift' S^-1 shift - d
    - 2 d log stretch) / 2, the same for every x."""
    model, x, vae, bundle = linear_bundle
    shift, stretch, d = np.array([0.4, -0.3]), 1.5, 2
    kl = 0.5 * (
        stretch**2 * d + shift @ np.linalg.solve(model.S, shift) - d - 2 * d * np.log(stretch)
    )
    exact = model.log_marginal(x) - kl
    sampler = Sampler.load(bundle)
    ours = sampler.elbo(x, num_samples=20_000, seed=0)
    np.testing.assert_allclose(ours, exact, atol=0.1)
    np.testing.assert_allclose(
        vae.elbo_terms(x, num_samples=20_000, seed=0)["elbo"], exact, atol=0.1
    )
    np.testing.assert_array_equal(ours, sampler.elbo(x, num_samples=20_000, seed=0))
    assert np.all(ours < sampler.log_likelihood(x, num_samples=2000, seed=1))


@pytest.mark.slow
def test_an_unknown_family_is_a_clear_bundle_error(bundles, tmp_path):
    import shutil

    from tfvae import bundle as bundle_format

    folder = tmp_path / "bundle"
    shutil.copytree(bundles["bernoulli"][1], folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["likelihood"]["family"] = "poisson"
    bundle_format.write_manifest(folder, manifest)
    with pytest.raises(
        BundleError, match=r"manifest\.json: Unknown likelihood 'poisson'.*imported"
    ):
        Sampler.load(folder)


REPOSITORY = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_runtime_only_install_loads_verifies_samples_and_scores(bundles, tmp_path):
    """`pip install tfvae` (the base install, as the README documents it for deployment
    hosts) into a fresh virtual environment: no TensorFlow, Keras or TFP is installed,
    and the Sampler still verifies a bundle, refuses an altered one, samples and scores,
    from Python and from the `tfvae` command line."""
    import shutil

    source = tmp_path / "source"  # what a wheel is built from, outside the working tree
    shutil.copytree(
        REPOSITORY / "tfvae", source / "tfvae", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPOSITORY / name, source / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(source)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr[-3000:]

    vae, bundle = bundles["binomial"]
    altered = tmp_path / "altered"
    shutil.copytree(bundle, altered)
    payload = bytearray((altered / "decoder.onnx").read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    (altered / "decoder.onnx").write_bytes(bytes(payload))
    np.save(tmp_path / "x.npy", _data("binomial", n=4, seed=3))
    script = textwrap.dedent(
        f"""
        import importlib.util, sys
        import numpy as np
        missing = [m for m in ("tensorflow", "keras", "tensorflow_probability", "tf2onnx")
                   if importlib.util.find_spec(m) is not None]
        assert missing == [], missing
        from tfvae.runtime import BundleError, Sampler
        try:
            Sampler.load({str(altered)!r})
        except BundleError as error:
            assert "decoder.onnx" in str(error), error
        else:
            raise AssertionError("an altered bundle was loaded")
        sampler = Sampler.load({str(bundle)!r})
        x = sampler.sample(16, seed=0)
        assert x.shape == (16, 8, 8, 1), x.shape
        scores = sampler.log_likelihood(np.load({str(tmp_path / "x.npy")!r}), 200, seed=0)
        print(float(x.sum()), *scores)
        loaded = [m for m in ("tensorflow", "keras") if m in sys.modules]
        assert loaded == [], loaded
        """
    )
    result = subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    total, *scores = (float(value) for value in result.stdout.split())
    here = Sampler.load(bundle)
    assert total == float(here.sample(16, seed=0).sum())
    expected = here.log_likelihood(_data("binomial", n=4, seed=3), 200, seed=0)
    np.testing.assert_allclose(scores, expected, rtol=1e-6)

    tfvae_command = str(venv / "bin" / "tfvae")
    png = tmp_path / "samples.png"
    sample = subprocess.run(
        [tfvae_command, "sample", "--bundle", str(bundle), "-n", "4", "--out", str(png)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert sample.returncode == 0, sample.stderr[-3000:]
    assert png.read_bytes().startswith(b"\x89PNG")
    score = subprocess.run(
        [tfvae_command, "score", "--bundle", str(bundle), str(tmp_path / "x.npy")]
        + ["--num-samples", "200", "--seed", "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert score.returncode == 0, score.stderr[-3000:]
    rows = score.stdout.strip().splitlines()
    assert rows[0] == "index,elbo,log_likelihood" and len(rows) == 5
    np.testing.assert_allclose([float(row.split(",")[2]) for row in rows[1:]], expected, rtol=1e-6)
    train = subprocess.run(
        [tfvae_command, "train", "--epochs", "1"], capture_output=True, text=True, timeout=300
    )
    assert train.returncode == 1, train.stderr[-3000:]
    assert "pip install 'tfvae[train]'" in train.stderr and "Traceback" not in train.stderr


@pytest.mark.slow
def test_categorical_runtime_draws_match_keras_draws_level_by_level(bundles):
    """The runtime's draws and Keras's from the same bundle's model: for each pixel, a
    chi-squared test of the two samples' counts per grey level (a 2 x 17 table)."""
    from scipy import stats

    vae, bundle = bundles["categorical"]
    ours = Sampler.load(bundle).sample(N, seed=0).reshape(N, -1).astype(int)
    theirs = vae.sample(N, seed=1).numpy().reshape(N, -1).astype(int)
    p_values = []
    for pixel in range(64):
        table = np.array([np.bincount(d[:, pixel], minlength=17) for d in (ours, theirs)])
        table = table[:, table.sum(axis=0) > 0]  # levels neither sample drew
        p_values.append(1.0 if table.shape[1] < 2 else stats.chi2_contingency(table).pvalue)
    assert min(p_values) > 1e-4, min(p_values)  # 64 tests at 1e-4: false alarm < 0.7%


@pytest.mark.slow
@pytest.mark.parametrize("likelihood_name", sorted(LIKELIHOODS))
def test_the_stand_in_has_the_exported_manifest_and_outputs(bundles, likelihood_name):
    """The fast tests' stand-in against a real export of the same families: the manifest
    entries that the runtime reads, and the networks' inputs, outputs, shapes and dtypes."""
    import onnxruntime

    _, bundle = bundles[likelihood_name]
    family = likelihoods.get(LIKELIHOODS[likelihood_name])
    manifest = json.loads((bundle / "manifest.json").read_text())
    data_shape = tuple(manifest["data"]["shape"])
    width = math.prod(data_shape) * family.num_params
    rng = np.random.default_rng(0)
    decoder = rng.normal(size=(3, width)), np.zeros(width)
    encoder = rng.normal(size=(math.prod(data_shape), 3)), np.zeros(3), np.ones(3)
    made = stand_in(family, data_shape, decoder, encoder, "diagonal_normal")
    ours = made.sampler.manifest

    for key in ("latent_dim", "condition_shape", "likelihood", "prior", "posterior"):
        assert ours[key] == manifest[key], key
    assert ours["data"]["shape"] == manifest["data"]["shape"]
    feeds = {
        "decoder": {"z": rng.normal(size=(4, 3)).astype(np.float32)},
        "encoder": {"x": _data(likelihood_name, n=4)},
    }
    for component, session in (("decoder", made.decoder), ("encoder", made.encoder)):
        entry = manifest["onnx"][component]
        assert ours["onnx"][component]["inputs"] == entry["inputs"]
        assert ours["onnx"][component]["outputs"] == entry["outputs"]
        exported = onnxruntime.InferenceSession(str(bundle / entry["file"]))
        names = [output.name for output in exported.get_outputs()]
        theirs = dict(zip(names, exported.run(None, feeds[component]), strict=True))
        stand_in_outputs = session.named(**feeds[component])
        assert {k: (v.shape, v.dtype) for k, v in stand_in_outputs.items()} == {
            k: (v.shape, v.dtype) for k, v in theirs.items()
        }


@pytest.mark.slow
def test_two_layer_runtime_samples_match_keras_in_distribution(tmp_path):
    """A trained two-layer model with a learned Gaussian scale, exported: per pixel, the
    means and the variances of 10,000 runtime draws and 10,000 Keras draws agree within
    4.5 standard errors of their difference (se of a variance: sqrt((m4 - s^4) / N))."""
    vae = trained_vae("gaussian_learned_scale", prior=tfvae.priors.hierarchy((2,), seed=0))
    bundle = _export(vae, tmp_path, "gaussian_learned_scale", atol=1e-5)
    ours = Sampler.load(bundle).sample(N, seed=0).astype(np.float64)
    theirs = vae.sample(N, seed=1).numpy().astype(np.float64)

    def variance_and_se(draws):
        centred = draws - draws.mean(axis=0)
        variance = np.mean(centred**2, axis=0)
        return variance, np.sqrt((np.mean(centred**4, axis=0) - variance**2) / N)

    mean_z = np.abs(ours.mean(axis=0) - theirs.mean(axis=0)) / np.sqrt(
        (ours.var(axis=0) + theirs.var(axis=0)) / N
    )
    (var_ours, se_ours), (var_theirs, se_theirs) = variance_and_se(ours), variance_and_se(theirs)
    variance_z = np.abs(var_ours - var_theirs) / np.sqrt(se_ours**2 + se_theirs**2)
    assert mean_z.max() < 4.5 and variance_z.max() < 4.5, (mean_z.max(), variance_z.max())
