"""Tests of tfvae.VAE against exact references: a linear-Gaussian model, XLA vs not."""

import json
import os
import re
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

import tfvae
from tfvae.validation import MAX_SEED

# ---------------------------------------------------------------------------------------
# A linear-Gaussian model: z ~ N(0, I), x | z ~ N(W z + b, sigma^2 I), so that
# log p(x) = log N(x; b, W W^T + sigma^2 I) and p(z|x) = N(A (x - b), S) with
# S = (I + W^T W / sigma^2)^-1 and A = S W^T / sigma^2, all exact in numpy.
# ---------------------------------------------------------------------------------------
DATA_DIM, LATENT_DIM, SIGMA = 5, 2, 0.7


def gaussian_layer(loc_matrix, loc_offset, covariance, name, diagonal=False):
    """A Dense layer u -> the raw parameters of N(loc_matrix u + loc_offset, covariance):
    "full_covariance" parameters (loc, then the raw Cholesky factor), or "diagonal_normal"
    ones (loc, then the raw standard deviations) for a diagonal covariance."""
    out_dim, in_dim = np.shape(loc_matrix)
    min_scale = 1e-4  # the families' default floor, added after the softplus
    if diagonal:
        raw_spread = np.log(np.expm1(np.sqrt(np.diag(covariance)) - min_scale))
    else:
        # FullCovariance's layout: [loc | raw diagonal | strictly lower entries, by rows].
        cholesky = np.linalg.cholesky(covariance)
        rows, cols = np.tril_indices(out_dim, k=-1)
        raw_diagonal = np.log(np.expm1(np.diag(cholesky) - min_scale))  # softplus inverse
        raw_spread = np.concatenate([raw_diagonal, cholesky[rows, cols]])
    width = out_dim + raw_spread.size
    kernel = np.zeros((in_dim, width))
    kernel[:, :out_dim] = np.transpose(loc_matrix)
    layer = keras.layers.Dense(width, name=name)
    layer.build((None, in_dim))
    layer.set_weights([kernel, np.concatenate([loc_offset, raw_spread])])
    return layer


class LinearGaussian:
    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.W = rng.normal(size=(DATA_DIM, LATENT_DIM))
        self.b = rng.normal(size=DATA_DIM)
        self.S = np.linalg.inv(np.eye(LATENT_DIM) + self.W.T @ self.W / SIGMA**2)
        self.A = self.S @ self.W.T / SIGMA**2

    def data(self, n, seed=1):
        rng = np.random.default_rng(seed)
        z = rng.normal(size=(n, LATENT_DIM))
        return (z @ self.W.T + self.b + SIGMA * rng.normal(size=(n, DATA_DIM))).astype("float32")

    def log_marginal(self, x):
        cov = self.W @ self.W.T + SIGMA**2 * np.eye(DATA_DIM)
        return stats.multivariate_normal(self.b, cov).logpdf(x)

    def decoder(self):
        layer = keras.layers.Dense(DATA_DIM, name="linear_decoder")
        layer.build((None, LATENT_DIM))
        layer.set_weights([self.W.T, self.b])
        return layer

    def posterior_covariance(self, stretch=1.0):
        cholesky = stretch * np.linalg.cholesky(self.S)
        return cholesky @ cholesky.T

    def exact_encoder(self, shift=0.0, stretch=1.0):
        """A Dense layer outputting full-covariance parameters of
        q(z|x) = N(A (x - b) + shift, stretch^2 S): the exact posterior by default."""
        return gaussian_layer(
            self.A, -self.A @ self.b + shift, stretch**2 * self.S, "exact_encoder"
        )

    def near_deterministic_vae(self, **kwargs):
        """Diagonal posterior at loc = A (x - b) with its scale at the 1e-4 floor."""
        kernel = np.concatenate([self.A.T, np.zeros((DATA_DIM, LATENT_DIM))], axis=1)
        bias = np.concatenate([-self.A @ self.b, np.full(LATENT_DIM, -30.0)])
        encoder = keras.layers.Dense(2 * LATENT_DIM, name="point_encoder")
        encoder.build((None, DATA_DIM))
        encoder.set_weights([kernel, bias])
        return tfvae.VAE(
            encoder,
            self.decoder(),
            latent_dim=LATENT_DIM,
            likelihood=tfvae.likelihoods.Gaussian(scale=SIGMA),
            **kwargs,
        )

    def exact_vae(self, shift=0.0, stretch=1.0, **kwargs):
        return tfvae.VAE(
            self.exact_encoder(shift, stretch),
            self.decoder(),
            latent_dim=LATENT_DIM,
            likelihood=tfvae.likelihoods.Gaussian(scale=SIGMA),
            posterior="full_covariance",
            **kwargs,
        )


CONDITION_DIM = 3


class FixedAffine(keras.layers.Layer):
    """x @ kernel + bias with fixed weights; with a condition y, [x, y] @ kernel + bias:
    the network a conditional VAE calls as network(x, condition=y)."""

    def __init__(self, kernel, bias, **kwargs):
        super().__init__(**kwargs)
        self.kernel = np.asarray(kernel, "float32")
        self.bias = np.asarray(bias, "float32")

    def call(self, inputs, condition=None):
        if condition is not None:
            inputs = tf.concat([inputs, condition], axis=-1)
        return tf.matmul(inputs, self.kernel) + self.bias


class ConditionalLinearGaussian(LinearGaussian):
    """x | z, y ~ N(W z + V y + b, sigma^2 I): for each one-hot y, the linear-Gaussian
    model with bias b + V y, so log p(x|y) = log N(x; b + V y, W W^T + sigma^2 I) and
    p(z|x, y) = N(A (x - b - V y), S)."""

    def __init__(self, seed=0):
        super().__init__(seed)
        self.V = np.random.default_rng(seed + 1).normal(size=(DATA_DIM, CONDITION_DIM))

    def data(self, n, seed=1):
        """(x, y): n examples and their one-hot conditions, float32."""
        y = np.eye(CONDITION_DIM)[np.random.default_rng(seed + 1).integers(CONDITION_DIM, size=n)]
        x = super().data(n, seed) + y @ self.V.T
        return x.astype("float32"), y.astype("float32")

    def log_marginal(self, x, y):
        return super().log_marginal(x - y @ self.V.T)

    def exact_vae(self, **kwargs):
        """The exact posterior, full covariance, and the exact decoder, both FixedAffine."""
        kernel, bias = self.exact_encoder().get_weights()
        condition_rows = np.zeros((CONDITION_DIM, kernel.shape[1]))
        condition_rows[:, :LATENT_DIM] = -(self.A @ self.V).T  # loc = A (x - b - V y)
        return tfvae.VAE(
            FixedAffine(np.concatenate([kernel, condition_rows]), bias),
            FixedAffine(np.concatenate([self.W.T, self.V.T]), self.b),
            latent_dim=LATENT_DIM,
            likelihood=tfvae.likelihoods.Gaussian(scale=SIGMA),
            posterior="full_covariance",
            condition_shape=(CONDITION_DIM,),
            **kwargs,
        )


def test_elbo_with_exact_posterior_equals_log_marginal():
    model = LinearGaussian()
    x = model.data(64)
    vae = model.exact_vae(kl="mc", num_samples=3, seed=0)
    elbo = vae.elbo_terms(x)["elbo"].numpy()
    np.testing.assert_allclose(elbo, model.log_marginal(x), atol=1e-3)


def _gaussian_kl(m1, s1, m0, s0):
    """KL(N(m1, s1) || N(m0, s0)) for mean vectors `(n, d)` and covariances `(d, d)`."""
    s0_inv = np.linalg.inv(s0)
    d = m0 - m1
    return 0.5 * (
        np.trace(s0_inv @ s1)
        + np.einsum("ni,ij,nj->n", d, s0_inv, d)
        - len(s0)
        + np.log(np.linalg.det(s0) / np.linalg.det(s1))
    )


def test_elbo_gap_is_the_kl_to_the_exact_posterior():
    """ELBO(q) = log p(x) - KL(q(z|x) || p(z|x)), every term in numpy."""
    model = LinearGaussian()
    x = model.data(16)
    shift, stretch = np.array([0.4, -0.3]), 1.5
    vae = model.exact_vae(shift, stretch, num_samples=20000, seed=0)
    elbo = vae.elbo_terms(x)["elbo"].numpy()
    exact_loc = (x - model.b) @ model.A.T
    gap = _gaussian_kl(exact_loc + shift, model.posterior_covariance(stretch), exact_loc, model.S)
    assert gap.min() > 0.3  # a gap the test can see
    # Monte Carlo error of the reconstruction term with 20,000 draws: about 0.01 nats.
    np.testing.assert_allclose(elbo, model.log_marginal(x) - gap, atol=0.05)


def test_importance_weighted_bound_lies_between_the_elbo_and_log_marginal():
    model = LinearGaussian()
    x = model.data(16)
    vae = model.exact_vae(np.array([0.4, -0.3]), 1.5, kl="mc", seed=0)
    terms = vae._latent_terms(x, 5000, tf.constant([1, 2]))
    elbo = terms.elbo.numpy()
    iwae = terms.importance_weighted_bound().numpy()
    exact = model.log_marginal(x)
    assert np.all(elbo < iwae)
    # A lower bound in expectation; one estimate with k = 5000 lies within Monte Carlo
    # noise of log p(x) (measured: |error| < 0.013 nats), while the ELBO's gap is > 0.3.
    np.testing.assert_allclose(iwae, exact, atol=0.05)
    assert np.all(exact - elbo > 0.3)
    # With the exact posterior every importance weight is p(x): the bound is exact.
    exact_terms = model.exact_vae(kl="mc")._latent_terms(x, 7, tf.constant([3, 4]))
    np.testing.assert_allclose(exact_terms.importance_weighted_bound(), exact, atol=1e-3)


def test_elbo_is_below_log_marginal_for_every_example():
    model = LinearGaussian()
    x = model.data(64)
    vae = tfvae.VAE(
        tfvae.networks.mlp_encoder(hidden=(16,)),
        model.decoder(),
        latent_dim=LATENT_DIM,
        likelihood=tfvae.likelihoods.Gaussian(scale=SIGMA),
        num_samples=2000,
        seed=0,
    )
    terms = vae.elbo_terms(x)
    exact = model.log_marginal(x)
    assert np.all(terms["elbo"].numpy() < exact)
    np.testing.assert_allclose(
        terms["elbo"].numpy(), (terms["reconstruction"] - terms["kl"]).numpy(), rtol=1e-6
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "data",
    ["x", "(x,)", "(x, y)", "(x, y, w)"],
)
def test_evaluate_reports_weighted_exact_elbo_for_every_batch_format(data):
    model = LinearGaussian()
    x = model.data(40)
    y = np.arange(40)
    weights = np.where(np.arange(40) % 4 == 0, 3.0, 1.0).astype("float32")
    exact = model.log_marginal(x)
    element = {"x": x, "(x,)": (x,), "(x, y)": (x, y), "(x, y, w)": (x, y, weights)}[data]
    dataset = tf.data.Dataset.from_tensor_slices(element).batch(16)
    vae = model.exact_vae(kl="mc", seed=0)
    vae.compile(jit_compile=True)
    result = vae.evaluate(dataset, verbose=0, return_dict=True)
    expected_weights = weights if data == "(x, y, w)" else np.ones(40)
    expected = np.average(exact, weights=expected_weights)
    assert result["elbo"] == pytest.approx(expected, abs=1e-3)
    assert result["loss"] == pytest.approx(-expected, abs=1e-3)
    assert result["elbo"] == pytest.approx(result["reconstruction"] - result["kl"], abs=1e-3)


# ---------------------------------------------------------------------------------------
# XLA: the same step with and without jit_compile gives the same loss and weights.
# ---------------------------------------------------------------------------------------
def _digit_like_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, 8, 8, 1)) < 0.3).astype("float32")


def _small_vae(seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    return tfvae.VAE(
        tfvae.networks.mlp_encoder(hidden=(32,)),
        tfvae.networks.mlp_decoder(hidden=(32,)),
        latent_dim=3,
        seed=seed,
        **kwargs,
    )


# Between them, every argument changed from its default.
CONFIG_CASES = {
    "families": dict(
        seed=7,
        likelihood=tfvae.likelihoods.Gaussian(scale=0.5),
        posterior="full_covariance",
        prior=tfvae.priors.Mixture(num_components=2, seed=1),
        num_samples=3,
        beta=2.5,
        gradient_estimator=tfvae.estimators.ScoreFunction(
            baseline="nvil", decay=0.8, hidden_units=7
        ),
    ),
    "conditional": dict(
        seed=5,
        likelihood=tfvae.likelihoods.Gaussian(scale=0.5),
        kl="mc",
        objective=tfvae.objectives.ELBO(free_bits=0.25),
        beta=tfvae.schedules.LinearWarmup(steps=10, start=0.5, end=2.0),
        condition_shape=(3,),
    ),
}


def _as_stored(config):
    """`config` as a .keras file stores it: through JSON."""
    return json.loads(json.dumps(config))


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_config_round_trip_restores_every_argument(case):
    """Without files: from_config of get_config's JSON gives the same arguments and,
    with the same weights, the same terms."""
    arguments = CONFIG_CASES[case]
    vae = _small_vae(**arguments)
    condition_shape = arguments.get("condition_shape")
    shape = (None, 8, 8, 1)
    if condition_shape is not None:
        shape = (shape, (None, *condition_shape))
    vae.build(shape)
    config = _as_stored(vae.get_config())
    restored = tfvae.VAE.from_config(config)
    for name, value in arguments.items():
        if name in ("likelihood", "prior", "objective", "gradient_estimator"):
            assert _as_stored(restored.get_config()[name]) == config[name], name
        elif name == "posterior":
            assert restored.posterior.family == value
        else:
            assert getattr(restored, name) == value, name
    restored.build(shape)
    restored.set_weights(vae.get_weights())

    assert _as_stored(restored.get_config()) == config
    # .keras files name the class by its registered name, which must not change.
    assert keras.saving.serialize_keras_object(vae)["registered_name"] == "tfvae>VAE"
    x = np.random.default_rng(1).normal(size=(4, 8, 8, 1)).astype("float32")
    condition = None if condition_shape is None else np.eye(3, dtype="float32")[[0, 1, 2, 0]]
    expected = vae.elbo_terms(x, seed=3, condition=condition)
    for name, value in restored.elbo_terms(x, seed=3, condition=condition).items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


def test_a_train_step_applies_the_gradients_to_every_variable():
    """One SGD step moves every trainable variable and counts one iteration."""
    vae = _small_vae(prior=tfvae.priors.Mixture(num_components=2, seed=1))
    vae.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
    vae.build((None, 8, 8, 1))
    before = [v.numpy().copy() for v in vae.trainable_variables]

    vae.train_on_batch(_digit_like_data(32))

    assert int(vae.optimizer.iterations) == 1
    moved = [
        not np.array_equal(b, v.numpy())
        for b, v in zip(before, vae.trainable_variables, strict=True)
    ]
    assert all(moved), [
        v.path for v, m in zip(vae.trainable_variables, moved, strict=True) if not m
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    "family",
    [
        {},
        {"posterior": "full_covariance"},
        {"prior": "mixture"},
        {"num_samples": 4},
        # NVIL's baseline is the moving average plus its network: both baselines' paths.
        {"gradient_estimator": tfvae.estimators.ScoreFunction(baseline="nvil"), "num_samples": 2},
        {"gradient_estimator": "dreg", "objective": "iwae", "num_samples": 4},
        # A config, not an instance: each of the two models needs its own networks.
        {
            "prior": keras.saving.serialize_keras_object(tfvae.priors.Hierarchical(2, seed=1)),
            "objective": "iwae",
            "num_samples": 4,
        },
    ],
    ids=[
        "default",
        "full_covariance",
        "mixture_mc_kl",
        "four_samples",
        "score_function_nvil",
        "dreg",
        "hierarchical",
    ],
)
def test_one_step_with_and_without_xla_agree(family):
    x = _digit_like_data()
    results = {}
    for jit_compile in (False, True):
        vae = _small_vae(**family)
        vae.compile(optimizer=keras.optimizers.SGD(0.05), jit_compile=jit_compile)
        history = vae.fit(x, batch_size=64, epochs=1, shuffle=False, verbose=0)
        results[jit_compile] = (history.history["loss"][0], vae.get_weights())
    loss_plain, weights_plain = results[False]
    loss_xla, weights_xla = results[True]
    assert loss_xla == pytest.approx(loss_plain, rel=1e-5)
    for w_plain, w_xla in zip(weights_plain, weights_xla, strict=True):
        np.testing.assert_allclose(w_xla, w_plain, rtol=1e-5, atol=1e-6)
    # The step changed the weights, so agreement is not agreement of two no-ops.
    initial = _small_vae(**family)
    initial.build((None, 8, 8, 1))
    moved = [np.abs(a - b).max() for a, b in zip(initial.get_weights(), weights_plain, strict=True)]
    assert max(moved) > 1e-3


_XLA_DUMP_SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np, keras, tensorflow as tf, tfvae
    jit_compile, mirrored = sys.argv[1] == "True", sys.argv[2] == "True"
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]) if mirrored else (
        tf.distribute.get_strategy())
    x = (np.random.default_rng(0).random((96, 8, 8, 1)) < 0.3).astype("float32")
    with strategy.scope():
        vae = tfvae.VAE(tfvae.networks.mlp_encoder((8,)), tfvae.networks.mlp_decoder((8,)),
                        latent_dim=2, seed=0)
        vae.compile(jit_compile=jit_compile)
    vae.fit(x, batch_size=32, epochs=1, verbose=0)  # 3 steps, each on other data
    """
)
# HLO instructions that move data between the device and the host in a compiled program.
_HOST_TRANSFERS = re.compile(r"\b(send|recv|send-done|recv-done|infeed|outfeed|custom-call)\(")


@pytest.mark.slow
@pytest.mark.parametrize(
    "jit_compile, mirrored, compiled, programs",
    [
        (True, False, "one_step_on_data", 1),  # the whole Keras step
        (False, False, None, 0),
        (True, True, "loss_and_gradients", 2),  # the loss and its gradients, per replica
    ],
)
def test_xla_compiles_the_step_once_with_no_host_transfers(
    tmp_path, jit_compile, mirrored, compiled, programs
):
    """XLA writes an HLO module for every computation it compiles: the step's is compiled
    once (once per replica's device) across 3 steps on other data of the same shape, and
    its optimized program holds no instruction that moves data to or from the host (the
    ones py_function, host callbacks and outside compilation would bring)."""
    dump = tmp_path / "xla"
    env = dict(os.environ, XLA_FLAGS=f"--xla_dump_to={dump}", TF_CPP_MIN_LOG_LEVEL="3")
    arguments = [str(jit_compile), str(mirrored)]
    subprocess.run([sys.executable, "-c", _XLA_DUMP_SCRIPT, *arguments], check=True, env=env)
    names = [p.name for p in dump.glob("module_*")] if dump.exists() else []
    step_files = [n for n in names if "one_step_on_data" in n or "loss_and_gradients" in n]
    assert all(compiled in name for name in step_files), step_files
    assert len({name.split(".")[0] for name in step_files}) == programs, step_files
    optimized = [n for n in step_files if n.endswith("after_optimizations.txt")]
    assert len(optimized) == programs
    for name in optimized:
        hlo = (dump / name).read_text()
        assert "fusion" in hlo  # an optimized program, read in full
        assert _HOST_TRANSFERS.findall(hlo) == [], name


# ---------------------------------------------------------------------------------------
# fit / evaluate / predict / sample on real data (the embedded 8x8 digits).
# ---------------------------------------------------------------------------------------
def _digits():
    x, _ = tfvae.data.load("digits", split="train")
    return x.astype("float32")


@pytest.mark.slow
def test_fit_raises_the_elbo_on_digits():
    x = _digits()
    vae = tfvae.VAE(
        tfvae.networks.mlp_encoder(hidden=(64,)),
        tfvae.networks.mlp_decoder(hidden=(64,)),
        latent_dim=4,
        likelihood=tfvae.likelihoods.Binomial(total_count=16),
        seed=0,
    )
    vae.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=True)
    before = vae.evaluate(x, batch_size=256, verbose=0, return_dict=True)
    vae.fit(x, batch_size=64, epochs=15, verbose=0)
    after = vae.evaluate(x, batch_size=256, verbose=0, return_dict=True)
    assert set(after) == {"loss", "elbo", "reconstruction", "kl"}
    # Measured: about -540 nats before and -160 after; demand a third of that gain.
    assert after["elbo"] > before["elbo"] + 120, (before, after)
    reconstruction = vae.predict(x[:10], verbose=0)
    assert reconstruction.shape == x[:10].shape
    assert np.all((reconstruction >= 0) & (reconstruction <= 16))
    # A trained model reconstructs better than the per-pixel mean does.
    error = np.mean((reconstruction - x[:10]) ** 2)
    baseline = np.mean((x.mean(axis=0) - x[:10]) ** 2)
    assert error < baseline


def test_sample_is_seeded_data_shaped_and_in_support():
    vae = _small_vae(likelihood=tfvae.likelihoods.Binomial(total_count=16))
    vae.build((None, 8, 8, 1))
    a = vae.sample(50, seed=3).numpy()
    b = vae.sample(50, seed=3).numpy()
    c = vae.sample(50, seed=4).numpy()
    assert a.shape == (50, 8, 8, 1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.all(a == np.round(a)) and a.min() >= 0 and a.max() <= 16
    means = vae.sample(50, seed=3, mean=True).numpy()
    assert np.all((means >= 0) & (means <= 16)) and not np.all(means == np.round(means))


@pytest.mark.slow
def test_analytic_and_monte_carlo_kl_agree_in_the_model():
    x = _digit_like_data(16)
    vae = _small_vae(num_samples=20000)
    analytic = vae.elbo_terms(x, seed=1)["kl"].numpy()
    mc_vae = _small_vae(num_samples=20000, kl="mc")
    mc_vae.build((None, 8, 8, 1))
    mc_vae.set_weights(vae.get_weights())
    monte_carlo = mc_vae.elbo_terms(x, seed=1)["kl"].numpy()
    # The KL is small at initialization; the Monte Carlo error is ~1e-2 with 20,000 draws.
    np.testing.assert_allclose(monte_carlo, analytic, atol=0.05)


# ---------------------------------------------------------------------------------------
# Saving: every family round-trips through .keras bit for bit.
# ---------------------------------------------------------------------------------------
FAMILIES = {
    "bernoulli": {"likelihood": "bernoulli"},
    "continuous_bernoulli": {"likelihood": "continuous_bernoulli"},
    "gaussian": {"likelihood": tfvae.likelihoods.Gaussian(scale=0.5)},
    "gaussian_learned_scale": {"likelihood": "gaussian_learned_scale"},
    "binomial": {"likelihood": tfvae.likelihoods.Binomial(total_count=1)},
    "mixture_prior": {"prior": tfvae.priors.Mixture(num_components=3, seed=1)},
    "full_covariance": {"posterior": "full_covariance"},
    "iwae": {"objective": "iwae", "num_samples": 3},
    "conv": {},
}


@pytest.mark.slow
def test_families_are_saved_under_their_registered_names():
    """The config names each family "tfvae>Class", the name a .keras file finds it by
    whatever module defines it; also when the families' modules were imported before
    Keras (they import without it). In a fresh process: deserializing registers too."""
    script = textwrap.dedent(
        """
        import sys
        import tfvae.likelihoods, tfvae.objectives, tfvae.posteriors
        assert "keras" not in sys.modules
        import tfvae
        vae = tfvae.VAE(tfvae.networks.mlp_encoder(), tfvae.networks.mlp_decoder(), 2)
        config = vae.get_config()
        print([config[key]["registered_name"] for key in ("likelihood", "posterior", "objective")])
        """
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stderr[-2000:]
    expected = ["tfvae>Bernoulli", "tfvae>DiagonalNormal", "tfvae>ELBO"]
    assert result.stdout.strip().splitlines()[-1] == str(expected)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_keras_save_load_round_trip(tmp_path, name):
    x = _digit_like_data(32)
    if name == "conv":
        vae = tfvae.VAE(
            tfvae.networks.conv_encoder(filters=(4, 8)),
            tfvae.networks.conv_decoder(filters=(8, 4)),
            latent_dim=3,
            seed=0,
        )
    else:
        vae = _small_vae(**FAMILIES[name])
    vae.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=True)
    vae.fit(x, batch_size=16, epochs=1, verbose=0)  # moves every weight, the prior's too
    path = tmp_path / "model.keras"
    vae.save(path)
    loaded = keras.saving.load_model(path)

    assert json.dumps(loaded.get_config(), sort_keys=True) == json.dumps(
        vae.get_config(), sort_keys=True
    )
    for mine, theirs in zip(vae.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    for key, value in vae.posterior_parameters(x).items():
        np.testing.assert_array_equal(loaded.posterior_parameters(x)[key].numpy(), value.numpy())
    z = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    for key, value in vae.likelihood_parameters(z).items():
        np.testing.assert_array_equal(loaded.likelihood_parameters(z)[key].numpy(), value.numpy())
    np.testing.assert_array_equal(loaded.sample(4, seed=7).numpy(), vae.sample(4, seed=7).numpy())
    np.testing.assert_array_equal(
        loaded.prior_layer.log_prob(z, tf.constant([1, 2])).numpy(),
        vae.prior_layer.log_prob(z, tf.constant([1, 2])).numpy(),
    )
    # Training resumes from the restored optimizer with the user's jit_compile setting.
    assert loaded.get_compile_config()["jit_compile"] is True
    assert loaded.optimizer.iterations.numpy() == vae.optimizer.iterations.numpy()


# ---------------------------------------------------------------------------------------
# Distribution: per-replica XLA under MirroredStrategy matches the uncompiled step.
# ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_mirrored_strategy_with_per_replica_xla_matches_uncompiled(mirrored):
    x = _digit_like_data(64)
    results = {}
    for jit_compile in (False, True):
        with mirrored.scope():
            vae = _small_vae()
            vae.compile(optimizer=keras.optimizers.SGD(0.05), jit_compile=jit_compile)
        history = vae.fit(x, batch_size=32, epochs=2, shuffle=False, verbose=0)
        results[jit_compile] = (history.history["loss"], vae.get_weights())
        assert vae.jit_compile is False  # Keras never compiles the cross-device update.
    np.testing.assert_allclose(results[True][0], results[False][0], rtol=1e-5)
    for a, b in zip(results[True][1], results[False][1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_mirrored_strategy_gradient_is_the_global_batch_mean(mirrored):
    """Two replicas must take the same step as one device on the whole batch.

    The posterior's scale sits at its 1e-4 floor, so the step hardly depends on the
    noise, which differs between replicas; a loss not divided by the number of replicas
    would take a step twice as long.
    """
    model = LinearGaussian()
    x = model.data(32)
    steps = {}
    for strategy in (tf.distribute.get_strategy(), mirrored):
        with strategy.scope():
            vae = model.near_deterministic_vae(seed=0)
            vae.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=True)
        initial = vae.get_weights()
        vae.fit(x, batch_size=32, epochs=1, shuffle=False, verbose=0)
        steps[strategy is mirrored] = [
            w - w0 for w, w0 in zip(vae.get_weights(), initial, strict=True)
        ]
    for step_mirrored, step_single in zip(steps[True], steps[False], strict=True):
        np.testing.assert_allclose(step_mirrored, step_single, rtol=1e-3, atol=1e-5)
    assert max(np.abs(step).max() for step in steps[False]) > 1e-3


@pytest.mark.slow
def test_mirrored_score_function_steps_and_baseline_match_one_device(mirrored):
    """The moving-average baseline is a variable averaged across replicas: two replicas
    under per-replica XLA end with the same weights and the same average as without XLA,
    the same in both replicas' copies,
    and the average is the decayed mean of the global batches' signals, which one device
    on the whole batches gives up to the replicas' different noise (within 2%)."""
    x = _digit_like_data(64)
    results = {}
    for strategy, jit_compile in ((mirrored, False), (mirrored, True), (None, False)):
        with (strategy or tf.distribute.get_strategy()).scope():
            vae = _small_vae(gradient_estimator="score_function")
            vae.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=jit_compile)
        vae.fit(x, batch_size=32, epochs=2, shuffle=False, verbose=0)
        if strategy is not None:  # each replica's copy holds the one average
            copies = strategy.experimental_local_results(vae.gradient_baseline.average.value)
            assert len(copies) == 2 and float(copies[0]) == float(copies[1])
        results[strategy, jit_compile] = (
            vae.get_weights(),
            float(vae.gradient_baseline.running_average()),
            float(vae.gradient_baseline.steps.numpy()),
        )
    (weights_xla, average_xla, steps_xla) = results[mirrored, True]
    (weights_plain, average_plain, steps_plain) = results[mirrored, False]
    for a, b in zip(weights_xla, weights_plain, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert average_xla == pytest.approx(average_plain, rel=1e-5)
    assert steps_xla == steps_plain == 4.0  # one update per global step, not per replica
    assert average_plain == pytest.approx(results[None, False][1], rel=0.02)


def test_each_replica_draws_its_own_training_noise(mirrored):
    """Each replica's step seed is its own: with one seed, the replicas' halves of the
    global batch would get the same noise. On one device the seed is kept."""
    seed = tf.constant([3, 4])
    per_replica = mirrored.run(tfvae.distribute.replica_seed, args=(seed,))
    seeds = {tuple(s.numpy()) for s in mirrored.experimental_local_results(per_replica)}
    assert len(seeds) == 2 and (3, 4) not in seeds
    np.testing.assert_array_equal(tfvae.distribute.replica_seed(seed), [3, 4])


# ---------------------------------------------------------------------------------------
# Errors name the argument, what was expected and what was received.
# ---------------------------------------------------------------------------------------
def _networks():
    return tfvae.networks.mlp_encoder((8,)), tfvae.networks.mlp_decoder((8,))


@pytest.mark.parametrize("latent_dim", [0, -3, 2.5, True])
def test_bad_latent_dim_is_rejected(latent_dim):
    with pytest.raises(ValueError, match=r"latent_dim.*positive integer.*Received: latent_dim="):
        tfvae.VAE(*_networks(), latent_dim=latent_dim)


@pytest.mark.parametrize(
    "argument, known",
    [
        ("likelihood", ["bernoulli", "binomial", "continuous_bernoulli", "gaussian"]),
        ("prior", ["mixture", "standard_normal"]),
        ("posterior", ["diagonal_normal", "full_covariance"]),
        ("objective", ["elbo", "iwae"]),
    ],
)
def test_unknown_family_lists_the_known_ones(argument, known):
    with pytest.raises(ValueError) as error:
        tfvae.VAE(*_networks(), latent_dim=2, **{argument: "nonexistent"})
    message = str(error.value)
    assert f"{argument}='nonexistent'" in message
    for name in known:
        assert repr(name) in message


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kl": "exact"}, r"kl to be one of \['analytic', 'mc'\]"),
        ({"num_samples": 0}, r"num_samples to be a positive integer"),
        ({"beta": -1.0}, r"beta to be a finite number >= 0"),
        ({"objective": "iwae", "beta": 2.0}, r"needs beta=1"),
        ({"seed": "abc"}, r"seed to be an integer"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tfvae.VAE(*_networks(), latent_dim=2, **kwargs)


def test_encoder_of_the_wrong_width_says_the_width_it_needs():
    vae = tfvae.VAE(keras.layers.Dense(3), tfvae.networks.mlp_decoder((8,)), latent_dim=2)
    with pytest.raises(
        ValueError, match=r"encoder to output 4 values per example.*'diagonal_normal'"
    ):
        vae(_digit_like_data(4))
    full = tfvae.VAE(
        keras.layers.Dense(4),
        tfvae.networks.mlp_decoder((8,)),
        latent_dim=2,
        posterior="full_covariance",
    )
    with pytest.raises(ValueError, match=r"encoder to output 5 values per example"):
        full(_digit_like_data(4))


def test_decoder_of_the_wrong_width_says_the_width_it_needs():
    vae = tfvae.VAE(
        tfvae.networks.mlp_encoder((8,)),
        keras.layers.Dense(64),
        latent_dim=2,
        likelihood="gaussian_learned_scale",
    )
    with pytest.raises(ValueError, match=r"decoder to output 128 values per example"):
        vae(_digit_like_data(4))


SUPPORT = r"Expected x in the support of the 'bernoulli' likelihood: reals in \[0, 1\]"


@pytest.mark.slow
def test_data_outside_the_support_is_a_clear_error():
    vae = _small_vae()
    vae.compile(jit_compile=True)
    grey = np.full((8, 8, 8, 1), 255.0, dtype="float32")
    with pytest.raises(ValueError, match=SUPPORT + r"\. Received: x with .*255"):
        vae.fit(grey, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=SUPPORT):
        vae.evaluate(grey, verbose=0)
    validation_support = SUPPORT.replace("Expected x", "Expected validation_data")
    with pytest.raises(ValueError, match=validation_support):
        vae.fit(grey / 255.0, validation_data=(grey,), epochs=1, verbose=0)
    dataset = tf.data.Dataset.from_tensor_slices(grey).batch(4)
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"Expected x in the support of the bernoulli likelihood: reals in \[0, 1\]",
    ):
        vae.fit(dataset, epochs=1, verbose=0)
    binomial = _small_vae(likelihood=tfvae.likelihoods.Binomial(total_count=16))
    binomial.compile(jit_compile=True)
    with pytest.raises(ValueError, match=r"integers in \[0, 16\]"):
        binomial.fit(_digit_like_data(8) * 0.5, epochs=1, verbose=0)


def test_sampling_before_the_data_shape_is_known_says_how_to_fix_it():
    with pytest.raises(ValueError, match=r"before the model knows its data shape.*build"):
        _small_vae().sample(3)


# ---------------------------------------------------------------------------------------
# Random streams, input types, mixed precision, sample weights.
# ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_random_streams_continue_after_save_and_load(tmp_path):
    x = _digit_like_data(64)
    vae = _small_vae()
    vae.compile(optimizer=keras.optimizers.SGD(0.05), jit_compile=True)
    vae.fit(x, batch_size=32, epochs=1, shuffle=False, verbose=0)
    vae.sample(2)  # moves the evaluation stream
    vae.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(loaded.sample(3).numpy(), vae.sample(3).numpy())
    for model in (vae, loaded):
        model.fit(x, batch_size=32, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(vae.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_validation_and_sampling_do_not_change_the_training_noise():
    x = _digit_like_data(64)
    weights = []
    for validate in (False, True):
        vae = _small_vae()
        vae.compile(optimizer=keras.optimizers.SGD(0.05), jit_compile=True)
        if validate:
            vae.build((None, 8, 8, 1))
            vae.sample(5)
        validation_data = (x[:16],) if validate else None
        vae.fit(
            x, batch_size=32, epochs=2, shuffle=False, validation_data=validation_data, verbose=0
        )
        weights.append(vae.get_weights())
    for a, b in zip(*weights, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_sample_weights_scale_the_step_as_in_keras():
    """sum(w * loss) / batch_size: weights of 2 take the step of a doubled learning rate."""
    x = _digit_like_data(64)
    results = []
    for weight, learning_rate in ((2.0, 0.01), (1.0, 0.02)):
        vae = _small_vae()
        vae.compile(optimizer=keras.optimizers.SGD(learning_rate), jit_compile=True)
        weights = np.full(len(x), weight, dtype="float32")
        dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros(len(x)), weights)).batch(32)
        history = vae.fit(dataset, epochs=1, verbose=0)
        results.append((history.history["loss"], vae.get_weights()))
    # The reported loss is the weighted mean, the same for any uniform weight.
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
    for a, b in zip(results[0][1], results[1][1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_dataset_of_dicts_is_a_clear_type_error():
    vae = _small_vae()
    vae.compile(jit_compile=True)
    dataset = tf.data.Dataset.from_tensor_slices({"x": _digit_like_data(8)}).batch(4)
    with pytest.raises(TypeError, match=r"Expected dataset elements x, \(x,\), \(x, y\)"):
        vae.fit(dataset, epochs=1, verbose=0)


def test_elbo_terms_checks_the_support():
    vae = _small_vae()
    with pytest.raises(ValueError, match=SUPPORT):
        vae.elbo_terms(np.full((2, 8, 8, 1), 255.0))


def test_inputs_of_any_numeric_dtype_are_accepted():
    vae = _small_vae(likelihood=tfvae.likelihoods.Binomial(total_count=16))
    vae.build((None, 8, 8, 1))
    z = np.random.default_rng(0).normal(size=(3, 3))
    np.testing.assert_array_equal(
        vae.decode(tf.constant(z, tf.float64)).mean().numpy(),
        vae.decode(z.astype("float32")).mean().numpy(),
    )
    counts = np.random.default_rng(1).integers(0, 17, size=(4, 8, 8, 1))
    a = vae.elbo_terms(tf.constant(counts, tf.uint8), seed=np.int64(5))["elbo"].numpy()
    b = vae.elbo_terms(counts.astype("float32"), seed=5)["elbo"].numpy()
    np.testing.assert_array_equal(a, b)
    vae.compile(jit_compile=True)
    with pytest.raises(ValueError, match=r"integers in \[0, 16\]"):
        vae.fit(tf.constant(np.full((4, 8, 8, 1), 255, np.uint8)), epochs=1, verbose=0)


@pytest.mark.parametrize("argument", ["loss", "metrics"])
def test_compile_rejects_a_loss_or_metrics(argument):
    value = "mse" if argument == "loss" else ["mae"]
    with pytest.raises(ValueError, match=f"takes no {argument}"):
        _small_vae().compile(**{argument: value})


@pytest.mark.slow
@pytest.mark.parametrize("jit_compile", [False, True])
def test_mixed_precision_trains_with_float32_log_probabilities(jit_compile):
    x = _digit_like_data(128)
    reference = _small_vae()
    reference.build((None, 8, 8, 1))
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        vae = _small_vae()
        vae.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=jit_compile)
        assert isinstance(vae.optimizer, keras.optimizers.LossScaleOptimizer)
        vae.build((None, 8, 8, 1))
        vae.set_weights(reference.get_weights())
        terms = vae.elbo_terms(x, seed=1)
        assert terms["elbo"].dtype == tf.float32
        # float16 layers, float32 densities: within float16 rounding of the float32 model.
        np.testing.assert_allclose(
            terms["elbo"].numpy(), reference.elbo_terms(x, seed=1)["elbo"].numpy(), rtol=2e-2
        )
        history = vae.fit(x, batch_size=32, epochs=5, verbose=0).history
        assert np.all(np.isfinite(history["loss"]))
        assert history["elbo"][-1] > history["elbo"][0] + 1.0
    finally:
        keras.mixed_precision.set_global_policy("float32")


# ---------------------------------------------------------------------------------------
# The KL weight is state: it changes between steps without a recompile.
# ---------------------------------------------------------------------------------------
class _SetBetaAt(keras.callbacks.Callback):
    """Assigns `model.beta = value` when epoch `epoch` begins."""

    def __init__(self, epoch, value):
        super().__init__()
        self.epoch, self.value = epoch, value

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            self.model.beta = self.value


def _assert_loss_is_the_weighted_elbo(history, betas):
    """loss = -(reconstruction - beta_t kl), each epoch, recomputed from the reported terms."""
    reconstruction = np.array(history["reconstruction"])
    kl = np.array(history["kl"])
    assert np.all(kl > 1e-3)  # otherwise beta would not show
    expected = -(reconstruction - np.asarray(betas) * kl)
    np.testing.assert_allclose(history["loss"], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("beta", [0.0, 2.5])
def test_the_loss_weights_the_kl_by_beta(beta):
    """The fast check of the weighting: evaluate's loss against its own reported terms."""
    vae = _small_vae(beta=beta)
    vae.compile(optimizer="adam", jit_compile=False)
    result = vae.evaluate(_digit_like_data(32), batch_size=32, verbose=0, return_dict=True)
    assert result["kl"] > 1e-3  # otherwise beta would not show
    expected = -(result["reconstruction"] - beta * result["kl"])
    np.testing.assert_allclose(result["loss"], expected, rtol=1e-5)


def test_a_number_assigned_to_beta_weights_the_next_step():
    """The fast check of assignment: evaluate's loss against its own reported terms."""
    vae = _small_vae()
    vae.compile(optimizer="adam", jit_compile=False)
    x = _digit_like_data(32)
    vae.evaluate(x, batch_size=32, verbose=0)  # traced with the weight 1
    vae.beta = tfvae.schedules.LinearWarmup(steps=10, start=0.0, end=1.0)
    vae.beta = 2.5  # a number replaces the schedule
    assert vae.beta == 2.5 and float(vae.current_beta()) == 2.5
    result = vae.evaluate(x, batch_size=32, verbose=0, return_dict=True)
    expected = -(result["reconstruction"] - 2.5 * result["kl"])
    np.testing.assert_allclose(result["loss"], expected, rtol=1e-5)


def test_a_schedule_is_read_at_the_optimizers_step():
    schedule = tfvae.schedules.LinearWarmup(steps=10, start=0.0, end=1.0)
    vae = _small_vae(beta=schedule)
    assert float(vae.current_beta()) == 0.0  # before compile: step 0
    vae.compile(optimizer="adam")
    vae.optimizer.iterations.assign(5)
    assert float(vae.current_beta()) == pytest.approx(0.5)


def test_a_schedule_assigned_after_a_train_step_is_the_next_steps_beta():
    """Assigning a schedule retraces the train step Keras already made; the step
    reports the weight it used."""
    vae = _small_vae()
    vae.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=False)
    x = _digit_like_data(16)
    assert vae.train_on_batch(x, return_dict=True)["beta"] == 1.0
    vae.beta = tfvae.schedules.LinearWarmup(steps=10, start=3.0, end=3.0)
    assert vae.train_on_batch(x, return_dict=True)["beta"] == 3.0


@pytest.mark.slow
@pytest.mark.parametrize("use_mirrored", [False, True], ids=["one_device", "mirrored"])
def test_beta_switched_from_zero_to_one_mid_fit_takes_effect(use_mirrored, request):
    strategy = request.getfixturevalue("mirrored") if use_mirrored else tf.distribute.get_strategy()
    x = _digit_like_data(64)
    with strategy.scope():
        vae = _small_vae(beta=0.0)
        vae.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    # One batch per epoch, so each epoch's metrics are one step's.
    history = vae.fit(
        x, batch_size=64, epochs=4, shuffle=False, verbose=0, callbacks=[_SetBetaAt(2, 1.0)]
    ).history
    _assert_loss_is_the_weighted_elbo(history, [0.0, 0.0, 1.0, 1.0])
    np.testing.assert_allclose(history["loss"][:2], -np.array(history["reconstruction"][:2]))
    np.testing.assert_allclose(history["loss"][2:], -np.array(history["elbo"][2:]), rtol=1e-4)
    assert history["beta"] == [0.0, 0.0, 1.0, 1.0]
    assert vae.beta == 1.0
    evaluated = vae.evaluate(x, batch_size=64, verbose=0, return_dict=True)
    np.testing.assert_allclose(evaluated["loss"], -evaluated["elbo"], rtol=1e-4)


@pytest.mark.slow
def test_linear_warmup_weights_each_step_by_its_own_beta():
    warmup_steps = 4
    vae = _small_vae(beta=tfvae.schedules.LinearWarmup(steps=warmup_steps))
    vae.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    history = vae.fit(_digit_like_data(32), batch_size=32, epochs=6, verbose=0).history
    betas = [min(step / warmup_steps, 1.0) for step in range(6)]  # step t trains with t / N
    np.testing.assert_allclose(history["beta"], betas, rtol=1e-6)
    _assert_loss_is_the_weighted_elbo(history, betas)
    assert int(vae.optimizer.iterations) == 6


@pytest.mark.slow
def test_a_schedule_assigned_mid_fit_takes_effect_at_the_next_step():
    vae = _small_vae(beta=1.0)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    schedule = tfvae.schedules.Cyclical(period=2, ramp_fraction=0.5, end=0.5)
    history = vae.fit(
        _digit_like_data(32),
        batch_size=32,
        epochs=4,
        verbose=0,
        callbacks=[_SetBetaAt(1, schedule), _SetBetaAt(3, 0.25)],
    ).history
    # Steps 1 and 2 follow the schedule (t mod 2 = 1: top, 0: bottom), step 3 the constant.
    betas = [1.0, 0.5, 0.0, 0.25]
    np.testing.assert_allclose(history["beta"], betas)
    _assert_loss_is_the_weighted_elbo(history, betas)


@pytest.mark.slow
@pytest.mark.parametrize(
    "beta",
    [0.0, 2.5, tfvae.schedules.LinearWarmup(steps=7, start=0.5), tfvae.schedules.Cyclical(3)],
)
def test_beta_is_saved_with_the_model(tmp_path, beta):
    vae = _small_vae()
    vae.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    vae.fit(_digit_like_data(32), batch_size=16, epochs=1, verbose=0)
    vae.beta = beta  # assigned after construction, as a callback would
    vae.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    assert restored.beta == beta
    assert float(restored.current_beta()) == pytest.approx(float(vae.current_beta()))


@pytest.mark.parametrize(
    "value, match",
    [
        (-0.5, r"beta to be a finite number >= 0. Received: beta=-0.5"),
        (float("nan"), "beta=nan"),
        ("exponential", r"Unknown beta schedule 'exponential'"),
    ],
)
def test_assigning_a_bad_beta_is_rejected_and_keeps_the_old_one(value, match):
    vae = _small_vae(beta=0.5)
    with pytest.raises(ValueError, match=match):
        vae.beta = value
    assert vae.beta == 0.5


def test_iwae_refuses_a_kl_weight():
    vae = _small_vae(objective="iwae")
    for value in (0.5, tfvae.schedules.LinearWarmup(steps=3)):
        with pytest.raises(ValueError, match="'iwae' objective does not weight the KL"):
            vae.beta = value
    vae.beta = 1.0  # allowed


# ---------------------------------------------------------------------------------------
# Per-dimension KL and free bits.
# ---------------------------------------------------------------------------------------
def test_per_dimension_kl_is_the_closed_form_and_sums_to_the_kl():
    x = _digit_like_data(16)
    vae = _small_vae()
    vae(x)
    params = vae.posterior_parameters(x)
    loc, scale = (params[k].numpy().astype(np.float64) for k in ("loc", "scale"))
    terms = vae.elbo_terms(x, seed=0)
    expected = 0.5 * (loc**2 + scale**2 - 1.0 - np.log(scale**2))  # KL(N(mu, s^2) || N(0, 1))
    np.testing.assert_allclose(terms["kl_per_dimension"], expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        np.sum(terms["kl_per_dimension"], axis=1), terms["kl"], rtol=1e-5, atol=1e-6
    )


def test_monte_carlo_per_dimension_kl_sums_to_the_monte_carlo_kl():
    x = _digit_like_data(8)
    vae = _small_vae(kl="mc", num_samples=3)
    vae(x)
    terms = vae.elbo_terms(x, seed=4)
    np.testing.assert_allclose(
        np.sum(terms["kl_per_dimension"], axis=1), terms["kl"], rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("family", [{"posterior": "full_covariance"}, {"prior": "mixture"}])
def test_free_bits_needs_factorized_families(family):
    vae = _small_vae(objective=tfvae.objectives.ELBO(free_bits=0.5), **family)
    vae.compile(optimizer="adam", jit_compile=False)
    with pytest.raises(ValueError, match="needs per-dimension KLs"):
        vae.fit(_digit_like_data(8), batch_size=8, epochs=1, verbose=0)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda vae, empty: vae.fit(empty, epochs=1, verbose=0), r"x to hold at least one example"),
        (lambda vae, empty: vae.evaluate(empty, verbose=0), r"x to hold at least one example"),
        (
            lambda vae, empty: vae.fit(_digit_like_data(8), validation_data=(empty,), verbose=0),
            r"validation_data to hold at least one example",
        ),
        (
            lambda vae, empty: vae.fit(tf.data.Dataset.from_tensor_slices(empty).batch(4)),
            r"x to hold at least one batch. Received: an empty tf.data.Dataset",
        ),
    ],
    ids=["fit", "evaluate", "validation_data", "dataset"],
)
def test_empty_data_is_a_clear_error(call, match):
    vae = _small_vae()
    vae.compile(optimizer="adam", jit_compile=False)
    with pytest.raises(ValueError, match=match):
        call(vae, np.zeros((0, 8, 8, 1), np.float32))


@pytest.mark.slow
def test_keras_backup_and_restore_resumes_weights_optimizer_and_random_streams(tmp_path):
    """An interrupted fit under keras.callbacks.BackupAndRestore, run again, ends where an
    uninterrupted one does: same weights, optimizer step and both random streams."""

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    x = _digit_like_data(64)

    def run(callbacks):
        vae = _small_vae()
        vae.build(x.shape)  # BackupAndRestore needs a built model
        vae.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
        vae.fit(x, batch_size=16, epochs=4, shuffle=False, verbose=0, callbacks=callbacks)
        return vae

    uninterrupted = run([])
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    with pytest.raises(KeyboardInterrupt):
        run([backup, Interrupt()])
    resumed = run([backup])
    assert int(resumed.optimizer.iterations) == int(uninterrupted.optimizer.iterations) == 16
    for name in ("seed_generator", "evaluation_seed_generator"):
        np.testing.assert_array_equal(
            getattr(resumed, name).state.numpy(), getattr(uninterrupted, name).state.numpy()
        )
    for a, b in zip(resumed.get_weights(), uninterrupted.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_store_without_the_random_streams_still_loads():
    """Files written before the streams' states were saved: the model's own variables
    (the KL weight) load, the streams keep their states."""
    vae = _small_vae(beta=0.25)
    vae.build((None, 8, 8, 1))
    vae.sample(1)  # moves the evaluation stream
    store = {}
    vae.save_own_variables(store)
    names = ("seed_generator", "evaluation_seed_generator")
    assert set(names) <= set(store)
    old_file = {key: value for key, value in store.items() if key not in names}
    other = _small_vae(seed=1)
    other.build((None, 8, 8, 1))
    other.set_weights(vae.get_weights())
    streams = {name: getattr(other, name).state.numpy().copy() for name in names}
    other.load_own_variables(old_file)
    assert other.beta == 0.25
    for name, state in streams.items():
        np.testing.assert_array_equal(getattr(other, name).state.numpy(), state)
    other.load_own_variables(store)  # with the states: the streams continue vae's
    np.testing.assert_array_equal(other.sample(2).numpy(), vae.sample(2).numpy())


def test_next_evaluation_seed_advances_the_evaluation_stream_only():
    vae = _small_vae()
    training = vae.seed_generator.state.numpy().copy()
    first, second = vae.next_evaluation_seed(), vae.next_evaluation_seed()
    assert first.shape == (2,) and not np.array_equal(first.numpy(), second.numpy())
    np.testing.assert_array_equal(vae.seed_generator.state.numpy(), training)
    # Distinct from the training stream's seeds, although both streams start from seed 0.
    assert not np.array_equal(first.numpy(), vae.seed_generator.next().numpy())


# ---------------------------------------------------------------------------------------
# Compiled inference functions follow compile(jit_compile=...).
# ---------------------------------------------------------------------------------------
class _HostIdentity(keras.layers.Layer):
    """The identity, computed on the host by numpy: XLA refuses to compile it, so a
    model with it in its decoder shows whether a function was compiled with XLA."""

    def call(self, inputs):
        outputs = tf.numpy_function(lambda a: a, [inputs], inputs.dtype, stateful=False)
        outputs.set_shape(inputs.shape)
        return outputs


def _host_op_vae():
    model = LinearGaussian()
    decoder = keras.Sequential([model.decoder(), _HostIdentity()])
    vae = tfvae.VAE(
        model.exact_encoder(),
        decoder,
        latent_dim=LATENT_DIM,
        likelihood=tfvae.likelihoods.Gaussian(scale=SIGMA),
        posterior="full_covariance",
        seed=0,
    )
    return vae, model.data(4)


@pytest.mark.slow
def test_inference_without_xla_when_compiled_with_jit_compile_false():
    """Fails while inference hard-coded jit_compile=True: XLA refuses the host op."""
    vae, x = _host_op_vae()
    vae.compile(jit_compile=False)
    estimate = vae.log_likelihood(x, num_samples=20, chunk_size=8, seed=0).numpy()
    assert estimate.shape == (4,) and np.all(np.isfinite(estimate))
    vae.refine_posterior(x, steps=2, eval_samples=4, seed=0)
    vae.impute(x, np.zeros(x.shape, bool), steps=2, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("jit_compile", [True, "auto", None], ids=["True", "auto", "never"])
def test_inference_with_xla_when_compiled_with_jit_compile_true_or_auto(jit_compile):
    """True, "auto" and a model never compiled (None here) run inference under XLA."""
    vae, x = _host_op_vae()
    if jit_compile is not None:
        vae.compile(jit_compile=jit_compile)
    with pytest.raises(tf.errors.InvalidArgumentError, match="unsupported operations"):
        vae.log_likelihood(x, num_samples=20, chunk_size=8, seed=0)


def _host_op_images_vae(*layers):
    """A VAE on 8x8 images whose encoder runs a host op first, then `layers`."""
    encoder = keras.Sequential(
        [_HostIdentity(), *layers, keras.layers.Flatten(), keras.layers.Dense(4)]
    )
    return tfvae.VAE(encoder, tfvae.networks.mlp_decoder((8,)), latent_dim=2, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("jit_compile", [None, "auto"], ids=["default", "auto"])
def test_auto_trains_conv_networks_without_xla_on_a_cpu_and_dense_ones_with_it(
    monkeypatch, jit_compile
):
    """The step of a model with a host op runs without XLA and fails under it, so each
    fit shows which path "auto" took (compiled before the model is built, as usual)."""
    monkeypatch.setattr(tfvae.compiled, "has_accelerator", lambda: False)
    x = (np.random.default_rng(0).random((8, 8, 8, 1)) < 0.5).astype(np.float32)
    options = {} if jit_compile is None else {"jit_compile": jit_compile}
    conv = _host_op_images_vae(keras.layers.Conv2D(2, 3, strides=2))
    conv.compile(**options)
    history = conv.fit(x, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1]) and conv.jit_compile is False
    assert np.all(np.isfinite(conv.log_likelihood(x[:2], num_samples=4, chunk_size=4, seed=0)))
    dense = _host_op_images_vae()
    dense.compile(**options)
    with pytest.raises(tf.errors.InvalidArgumentError, match="unsupported operations"):
        dense.fit(x, batch_size=4, epochs=1, verbose=0)


def test_auto_sees_the_convolutions_a_network_creates_when_built(monkeypatch):
    """ConvEncoder and ConvDecoder create their layers in `build`, after `compile`."""
    monkeypatch.setattr(tfvae.compiled, "has_accelerator", lambda: False)
    networks = tfvae.networks
    vae = tfvae.VAE(networks.conv_encoder((4,)), networks.conv_decoder((4,)), latent_dim=2)
    vae.compile()
    vae.build((None, 8, 8, 1))
    assert vae.jit_compile is False and vae._compiled_functions.jit_compile is False


@pytest.mark.slow
def test_auto_takes_xla_for_conv_networks_on_an_accelerator(monkeypatch):
    monkeypatch.setattr(tfvae.compiled, "has_accelerator", lambda: True)
    x = np.zeros((4, 8, 8, 1), np.float32)
    conv = _host_op_images_vae(keras.layers.Conv2D(2, 3, strides=2))
    conv.compile()
    with pytest.raises(tf.errors.InvalidArgumentError, match="unsupported operations"):
        conv.fit(x, batch_size=4, epochs=1, verbose=0)


@pytest.mark.slow
def test_compiling_again_rebuilds_the_inference_functions():
    vae, x = _host_op_vae()
    vae.compile(jit_compile=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match="unsupported operations"):
        vae.log_likelihood(x, num_samples=20, chunk_size=8, seed=0)
    vae.compile(jit_compile=False)  # the cached XLA function must not be reused
    assert np.all(np.isfinite(vae.log_likelihood(x, num_samples=20, chunk_size=8, seed=0)))


def test_compiled_function_builds_once_per_key():
    vae = _small_vae()
    builds = []

    def build():
        builds.append(1)
        return lambda x: 2.0 * x

    double = vae.compiled_function(("double",), build)
    assert vae.compiled_function(("double",), build) is double
    assert builds == [1]
    np.testing.assert_array_equal(double(tf.ones(2)).numpy(), [2.0, 2.0])
    vae.compile(jit_compile=True)
    assert vae.compiled_function(("double",), build) is not double  # compile empties it
    assert builds == [1, 1]


# ---------------------------------------------------------------------------------------
# Integer seeds lie in [0, MAX_SEED] wherever the model takes one.
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [-1, MAX_SEED + 1])
def test_seeds_outside_the_one_range_are_refused(seed):
    """The seed= of sample and elbo_terms fails before the seed ranges were unified:
    they took any |seed| < 2**63, the constructor only [0, MAX_SEED]."""
    in_range = rf"integer in \[0, {MAX_SEED}\]"
    with pytest.raises(ValueError, match=in_range + rf" or None. Received: seed={seed}"):
        tfvae.VAE(*_networks(), latent_dim=2, seed=seed)
    vae = _small_vae()
    vae.build((None, 8, 8, 1))
    pair = r" or a \(2,\) integer tensor"
    with pytest.raises(ValueError, match=in_range + pair + rf". Received: seed={seed}"):
        vae.sample(2, seed=seed)
    with pytest.raises(ValueError, match=in_range + pair):
        vae.elbo_terms(_digit_like_data(2), seed=seed)


def test_the_largest_seed_is_accepted_everywhere():
    vae = tfvae.VAE(*_networks(), latent_dim=2, seed=MAX_SEED)
    vae.build((None, 8, 8, 1))
    assert vae.sample(2, seed=MAX_SEED).shape == (2, 8, 8, 1)
    assert vae.elbo_terms(_digit_like_data(2), seed=MAX_SEED)["elbo"].shape == (2,)


# ---------------------------------------------------------------------------------------
# Conditional models against the exact conditional linear-Gaussian model.
# ---------------------------------------------------------------------------------------
def test_a_conditional_model_builds_from_its_pair_of_shapes_and_is_exact():
    model = ConditionalLinearGaussian()
    x, y = model.data(8)
    vae = model.exact_vae(kl="mc", seed=0)
    vae.build(((None, DATA_DIM), (None, CONDITION_DIM)))  # Keras passes (x, y) shapes
    assert vae.data_shape == (DATA_DIM,)
    # The exact posterior makes every sample's ELBO log p(x|y), whatever the noise.
    elbo = vae.elbo_terms(x, num_samples=3, seed=0, condition=y)["elbo"].numpy()
    np.testing.assert_allclose(elbo, model.log_marginal(x, y), atol=1e-3)
    with pytest.raises(ValueError, match=r"known data shape. Received: input_shape=\(None,\)"):
        model.exact_vae().build((None,))


def test_a_conditional_decoder_gets_its_condition_for_every_latent():
    """z (L, B, D) with conditions (B, C): each row decoded with its own example's y."""
    model = ConditionalLinearGaussian()
    _, y = model.data(4)
    vae = model.exact_vae()
    vae.build(((None, DATA_DIM), (None, CONDITION_DIM)))
    z = np.random.default_rng(0).normal(size=(3, 4, LATENT_DIM)).astype("float32")
    mean = vae.decode(z, condition=y).mean().numpy()
    np.testing.assert_allclose(mean, z @ model.W.T + y @ model.V.T + model.b, atol=1e-5)
    for latents in (z, z[0]):  # (L, B, D) and (B, D)
        with pytest.raises(ValueError, match=r"batch_size=4. Received: condition.shape=\(3, 3\)"):
            vae.decode(latents, condition=y[:3])


def test_tfvae_networks_take_the_flattened_condition():
    """condition_shape (2, 3) reaches the networks as 6 more inputs."""
    vae = tfvae.VAE(
        tfvae.networks.mlp_encoder(hidden=(8,), seed=0),
        tfvae.networks.mlp_decoder(hidden=(8,), seed=1),
        latent_dim=2,
        likelihood=tfvae.likelihoods.Gaussian(scale=1.0),
        condition_shape=(2, 3),
        seed=0,
    )
    x = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")
    y = np.eye(6, dtype="float32")[[0, 1, 2, 5]].reshape(4, 2, 3)
    terms = vae.elbo_terms(x, seed=0, condition=y)
    assert terms["elbo"].shape == (4,)
    assert vae.encoder.hidden_layers[0].kernel.shape == (5 + 6, 8)
    assert vae.decoder.hidden_layers[0].kernel.shape == (2 + 6, 8)
    other = vae.elbo_terms(x, seed=0, condition=y[::-1])["elbo"].numpy()
    assert not np.allclose(other, terms["elbo"].numpy())


# ---------------------------------------------------------------------------------------
# Shapes of z that decode accepts, and the graph it builds.
# ---------------------------------------------------------------------------------------
def test_one_latent_vector_decodes_to_one_example():
    model = LinearGaussian()
    vae = model.exact_vae()
    vae.build((None, DATA_DIM))
    z = np.array([0.5, -1.0], "float32")
    mean = vae.decode(z).mean().numpy()
    assert mean.shape == (DATA_DIM,)
    np.testing.assert_allclose(mean, model.W @ z + model.b, atol=1e-5)


def test_an_unbuilt_model_refuses_to_decode_and_a_built_one_z_of_another_width():
    vae = LinearGaussian().exact_vae()
    with pytest.raises(ValueError, match="Cannot decode before the model knows its data shape"):
        vae.decode(np.zeros((1, LATENT_DIM), "float32"))
    vae.build((None, DATA_DIM))
    with pytest.raises(
        ValueError, match=r"z of shape \(..., latent_dim=2\). Received: z.shape=\(4, 3\)"
    ):
        vae.decode(np.zeros((4, 3), "float32"))


def test_decoding_reshapes_to_constant_shapes():
    """For z (None, D) or (None, B, D), known but for its first axis, the reshapes'
    target shapes are constants, so that exported decoders hold one Reshape each, not a
    chain of Shape, Slice and Concat."""
    model = LinearGaussian()
    vae = model.exact_vae()
    vae.build((None, DATA_DIM))
    for spec in ([None, LATENT_DIM], [None, 4, LATENT_DIM]):
        graph = (
            tf.function(lambda z: vae.likelihood_parameters(z)["loc"])
            .get_concrete_function(tf.TensorSpec(spec, tf.float32))
            .graph
        )
        reshapes = [op for op in graph.get_operations() if op.type == "Reshape"]
        assert reshapes
        targets = [op.inputs[1].op.type for op in reshapes]
        assert targets == ["Const"] * len(reshapes), (spec, targets)
    # With an unknown axis in the middle the shape is computed, and still right.
    decode = tf.function(lambda z: vae.likelihood_parameters(z)["loc"])
    decode = decode.get_concrete_function(tf.TensorSpec([3, None, LATENT_DIM], tf.float32))
    z = np.zeros((3, 4, LATENT_DIM), "float32")
    np.testing.assert_allclose(decode(z), np.broadcast_to(model.b, (3, 4, DATA_DIM)), atol=1e-6)


# ---------------------------------------------------------------------------------------
# `training` reaches the networks: True in the train step only.
# ---------------------------------------------------------------------------------------
class TrainingShift(keras.layers.Layer):
    """Adds `shift` in training only, as dropout or batch normalization change with it."""

    def __init__(self, shift, **kwargs):
        super().__init__(**kwargs)
        self.shift = shift

    def call(self, inputs, training=False):
        return inputs + self.shift if training else inputs


def _shifted_in_training(encoder_shift, decoder_shift):
    """The near-deterministic linear model with `TrainingShift`s after its networks."""
    model = LinearGaussian()
    vae = model.near_deterministic_vae(seed=0)
    vae.encoder = keras.Sequential([vae.encoder, TrainingShift(encoder_shift)])
    vae.decoder = keras.Sequential([vae.decoder, TrainingShift(decoder_shift)])
    vae.build((None, DATA_DIM))
    return model, vae


def test_training_reaches_the_encoder_and_the_decoder():
    model, vae = _shifted_in_training(encoder_shift=0.5, decoder_shift=2.0)
    x = model.data(4)
    loc = (x - model.b) @ model.A.T  # the posterior mean without the shift
    for training, shift in ((False, 0.0), (True, 0.5)):
        params = vae.posterior_parameters(x, training=training)
        np.testing.assert_allclose(params["loc"], loc + shift, atol=1e-5)
    z = loc.astype("float32")
    for training, shift in ((False, 0.0), (True, 2.0)):
        mean = vae.likelihood_parameters(z, training=training)["loc"]
        np.testing.assert_allclose(mean, z @ model.W.T + model.b + shift, atol=1e-5)
    # call: the reconstruction mean through both networks.
    expected = (loc + 0.5) @ model.W.T + model.b + 2.0
    np.testing.assert_allclose(vae(x, training=True), expected, atol=1e-4)
    np.testing.assert_allclose(vae(x), loc @ model.W.T + model.b, atol=1e-4)


def test_the_elbo_encodes_and_decodes_with_the_training_flag():
    """The reconstruction term at given noise, against scipy's Gaussian log density."""
    model, vae = _shifted_in_training(encoder_shift=0.5, decoder_shift=2.0)
    x = model.data(4)
    seed = tfvae.random.as_seed(3)
    terms = vae.elbo_terms(x, num_samples=2, seed=seed, training=True)
    params = vae.posterior_parameters(x, training=True)
    z = vae.posterior_samples(params, 2, seed).numpy()  # [2, 4, D]
    log_density = stats.norm(z @ model.W.T + model.b + 2.0, SIGMA).logpdf(x).sum(-1)
    np.testing.assert_allclose(terms["reconstruction"], log_density.mean(0), rtol=1e-5)


def test_evaluate_runs_the_networks_in_inference_mode():
    model, vae = _shifted_in_training(encoder_shift=0.0, decoder_shift=2.0)
    x = model.data(16)
    vae.compile(jit_compile=False)
    result = vae.evaluate(x, batch_size=16, verbose=0, return_dict=True)
    # Near-deterministic posterior: the reconstruction hardly depends on the noise.
    for training in (False, True):
        terms = vae.elbo_terms(x, seed=0, training=training)
        close = np.isclose(result["reconstruction"], np.mean(terms["reconstruction"]), atol=1e-3)
        assert close == (not training)


# ---------------------------------------------------------------------------------------
# compile: what Keras is told, what is saved, and the step's size.
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("jit_compile", [True, False])
def test_compile_passes_jit_compile_to_keras_on_one_device(jit_compile):
    vae = _small_vae()
    assert not vae.get_compile_config()  # nothing to restore before compile
    vae.compile(jit_compile=jit_compile)
    assert vae.jit_compile is jit_compile
    assert vae.get_compile_config()["jit_compile"] is jit_compile


def test_compile_from_config_restores_the_optimizer_ready_for_its_state():
    """What load_model does: compile from the saved config; the optimizer's variables must
    exist before the file's optimizer state is loaded into them."""
    vae = _small_vae()
    vae.compile(optimizer=keras.optimizers.SGD(0.25, momentum=0.5))
    restored = _small_vae()
    restored.build((None, 8, 8, 1))
    restored.compile_from_config(vae.get_compile_config())
    assert isinstance(restored.optimizer, keras.optimizers.SGD)
    assert restored.optimizer.get_config()["momentum"] == 0.5
    assert restored.optimizer.built and len(restored.optimizer.variables) > 1


def test_a_train_step_is_the_gradient_of_the_weighted_loss_in_training_mode():
    """SGD's step is -lr times the gradient of sum(w * loss) / batch_size (Keras's
    convention: not the sum over examples), with the networks in training mode; the
    `loss` metric is the weighted mean sum(w * loss) / sum(w). The near-deterministic
    posterior makes the loss nearly independent of the noise."""
    model, vae = _shifted_in_training(encoder_shift=0.5, decoder_shift=2.0)
    x = model.data(32)
    weights = np.random.default_rng(1).uniform(0.0, 2.0, size=32).astype("float32")
    with tf.GradientTape() as tape:
        losses = -vae.elbo_terms(x, seed=0, training=True)["elbo"]
        loss = tf.reduce_sum(weights * losses) / 32
    gradients = [g.numpy() for g in tape.gradient(loss, vae.trainable_variables)]
    before = [v.numpy().copy() for v in vae.trainable_variables]
    vae.compile(optimizer=keras.optimizers.SGD(1e-3), jit_compile=False)
    metrics = vae.train_on_batch(x, sample_weight=weights, return_dict=True)
    for b, v, g in zip(before, vae.trainable_variables, gradients, strict=True):
        np.testing.assert_allclose(v.numpy() - b, -1e-3 * g, rtol=1e-3, atol=1e-7)
    weighted_mean = np.sum(weights * losses.numpy()) / np.sum(weights)
    assert metrics["loss"] == pytest.approx(weighted_mean, rel=1e-4)
    # The weighting shows at 10 times the tolerance.
    assert abs(weighted_mean - np.mean(losses)) > 1e-3 * abs(weighted_mean)


def test_an_unconditional_model_ignores_the_labels_that_come_with_the_data():
    """Training and evaluating on (x, labels) are training and evaluating on x."""
    model = LinearGaussian()
    x = model.data(16)
    labels = np.arange(16) % 3
    results = {}
    for data in ((x,), (x, labels)):
        vae = model.near_deterministic_vae(seed=0)
        vae.compile(optimizer=keras.optimizers.SGD(1e-2), jit_compile=False)
        train = vae.train_on_batch(*data, return_dict=True)
        test = vae.test_on_batch(*data, return_dict=True)
        results[len(data)] = train, test, vae.get_weights()
    (train, test, weights), (train_labelled, test_labelled, weights_labelled) = results.values()
    assert train == train_labelled and test == test_labelled
    for w, w_labelled in zip(weights, weights_labelled, strict=True):
        np.testing.assert_array_equal(w, w_labelled)


def test_a_schedule_assigned_after_evaluate_weights_the_next_evaluate():
    """Assigning a schedule retraces the test step Keras already made."""
    model = LinearGaussian()
    x = model.data(16)
    vae = model.exact_vae(seed=0)
    vae.compile(jit_compile=False)
    vae.evaluate(x, batch_size=16, verbose=0)  # traces the step with the constant beta 1
    vae.beta = tfvae.schedules.LinearWarmup(steps=10, start=3.0, end=3.0)
    result = vae.evaluate(x, batch_size=16, verbose=0, return_dict=True)
    expected = -result["reconstruction"] + 3.0 * result["kl"]
    assert result["loss"] == pytest.approx(expected, rel=1e-5)


def test_under_two_replicas_keras_is_told_not_to_compile_the_whole_step():
    """The per-replica loss and gradients are compiled instead (see
    test_xla_compiles_what_it_should); the saved config keeps what the user asked."""
    with tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).scope():
        vae = _small_vae()
        vae.compile(jit_compile=True)
    assert vae.jit_compile is False
    assert vae.get_compile_config()["jit_compile"] is True
