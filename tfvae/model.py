"""The variational autoencoder: a subclassed Keras model over TFP distributions.

The encoder and decoder are Keras layers that return tensors (distribution parameters);
the model turns them into `tfd` distributions through its families: q(z|x) through a
posterior (`tfvae.posteriors`), p(x|z) through a likelihood (`tfvae.likelihoods`), and
p(z) is a prior layer (`tfvae.priors`). `train_step` and `test_step` optimize and report
the objective (`tfvae.objectives`) from one function, `_latent_terms`.

Example:
    >>> import keras, tfvae
    >>> vae = tfvae.VAE(
    ...     tfvae.networks.mlp_encoder(), tfvae.networks.mlp_decoder(), latent_dim=50,
    ...     likelihood="bernoulli", seed=0)
    >>> vae.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    >>> vae.fit(dataset, epochs=10)   # batches of x with values in [0, 1]
    >>> x_new = vae.sample(16)
"""

import math

import tfvae._backend  # noqa: F401

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import (
    compiled,
    conditions,
    data_checks,
    distribute,
    dtypes,
    estimators,
    inference,
    likelihoods,
    networks,
    objectives,
    posteriors,
    priors,
    random,
    schedules,
    validation,
)
from tfvae.estimators import Surrogate
from tfvae.objectives import LatentTerms

tfd = tfp.distributions

# The families' modules import without Keras; the model saves them, so Keras must know them.
for _families in (
    likelihoods.registry,
    posteriors.registry,
    objectives.registry,
    estimators.registry,
):
    _families.register_with_keras()

METRIC_NAMES = ("loss", "elbo", "reconstruction", "kl")


@keras.saving.register_keras_serializable(package="tfvae")
class VAE(keras.Model):
    """A variational autoencoder trained on the ELBO (or the IWAE bound) with `fit`.

    Args:
        encoder: Keras layer mapping x `(batch_size, *data_shape)` to the posterior's raw
            parameters `(batch_size, posterior.param_size(latent_dim))`. A
            `tfvae.networks` network is sized automatically.
        decoder: Keras layer mapping z `(batch_size, latent_dim)` to the likelihood's raw
            parameters, `prod(data_shape) * likelihood.num_params` values per example in
            the layout `(batch_size, *data_shape, num_params)`. A `tfvae.networks`
            network is sized automatically.
        latent_dim: size of z, a positive integer.
        likelihood: p(x|z): a name from `tfvae.likelihoods.registry` or an instance.
        prior: p(z): a name from `tfvae.priors.registry` or an instance.
        posterior: q(z|x): a name from `tfvae.posteriors.registry` or an instance.
        kl: `"analytic"` uses the closed-form KL where TFP registers one and Monte Carlo
            otherwise; `"mc"` always uses Monte Carlo over the step's latent samples.
        num_samples: latent samples L per example in each step.
        beta: weight of the KL term in the `"elbo"` objective (1 is the ELBO): a number
            >= 0, or a schedule of the optimizer step (a `tfvae.schedules` name, instance
            or config, e.g. `tfvae.schedules.LinearWarmup(steps=5000)`). It is state:
            assigning `vae.beta` later takes effect at the next step (see `beta`).
        objective: `"elbo"` or `"iwae"` (a name from `tfvae.objectives.registry`), or an
            instance such as `tfvae.objectives.ELBO(free_bits=0.5)`.
        seed: integer seed of the model's two `keras.random.SeedGenerator`s (training
            noise; evaluation and sampling noise); None draws one.
        condition_shape: shape of a condition y (e.g. `(10,)` for one-hot labels) that
            enters both networks as `condition=` (a conditional VAE, p(x|z, y) q(z|x, y));
            None for an unconditional model. Train with `fit((x, y))`.
        gradient_estimator: how `fit` estimates the objective's gradient through z ~ q:
            `"reparameterization"`, `"score_function"` (`"elbo"` objective) or `"dreg"`
            (`"iwae"` objective), a name from `tfvae.estimators.registry`, or an instance
            such as `tfvae.estimators.ScoreFunction(baseline="nvil")`. A score-function
            baseline is a layer of the model (`gradient_baseline`), saved with it.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Raises:
        ValueError: for an invalid argument; the message names it, what was expected
            and what was received.
    """

    def __init__(
        self,
        encoder,
        decoder,
        latent_dim,
        likelihood="bernoulli",
        prior="standard_normal",
        posterior="diagonal_normal",
        kl="analytic",
        num_samples=1,
        beta=1.0,
        objective="elbo",
        seed=None,
        condition_shape=None,
        gradient_estimator="reparameterization",
        **kwargs,
    ):
        networks.check_layer(encoder, "encoder")
        networks.check_layer(decoder, "decoder")
        latent_dim = validation.positive_int(latent_dim, "latent_dim")
        kl = validation.one_of(kl, ("analytic", "mc"), "kl")
        num_samples = validation.positive_int(num_samples, "num_samples")
        seed = validation.seed(seed, optional=True)
        condition_shape = conditions.checked_shape(condition_shape)
        likelihood = likelihoods.get(likelihood)
        prior = priors.get(prior)
        posterior = posteriors.get(posterior)
        objective = objectives.get(objective)
        beta_schedule, beta_value = _checked_beta(beta, objective)
        gradient_estimator = estimators.get(gradient_estimator)
        gradient_estimator.check(objective, kl)
        _check_estimator_for_prior(gradient_estimator, prior)
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.latent_dim = latent_dim
        self.likelihood = likelihood
        self.prior_layer = prior
        self.posterior = posterior
        self.kl = kl
        self.num_samples = num_samples
        self.objective = objective
        self.gradient_estimator = gradient_estimator
        self.gradient_baseline = gradient_estimator.make_baseline(seed)
        # The KL weight is a variable the compiled step reads (a Python float would be
        # frozen at trace time), or a schedule of optimizer.iterations; saved either way.
        self._beta_schedule = beta_schedule
        self._beta_weight = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(beta_value),
            trainable=False,
            name="beta",
        )
        self.seed = seed
        self.condition_shape = condition_shape
        # Two streams: training noise, and noise for evaluation and sampling, so that
        # validation or a call to `sample` never shifts the training sequence.
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.evaluation_seed_generator = keras.random.SeedGenerator(seed)
        self.data_shape = None
        self._trackers = [keras.metrics.Mean(name=name) for name in METRIC_NAMES]
        self._xla_per_replica = False
        self._requested_jit_compile = "auto"
        self._compiled_functions = compiled.CompiledFunctions(
            compiled.resolve_jit_compile(self._requested_jit_compile, self)
        )

    # ----------------------------------------------------------------------- building

    def build(self, input_shape):
        """Sizes and builds the networks and the prior for data of `input_shape[1:]`.

        A conditional model also accepts the shapes of its `(x, condition)` inputs.
        """
        if self.condition_shape is not None and isinstance(input_shape[0], tuple | list):
            input_shape = input_shape[0]  # the shapes of (x, condition)
        data_shape = tuple(input_shape[1:])
        if not data_shape or any(size is None for size in data_shape):
            raise ValueError(
                "Expected x of shape (batch_size, *data_shape) with a known data shape. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        self.data_shape = tuple(int(size) for size in data_shape)
        condition_size = math.prod(self.condition_shape) if self.condition_shape else 0
        if isinstance(self.encoder, networks.SizedNetwork):
            self.encoder.set_target_shape((self.posterior.param_size(self.latent_dim),))
            self.encoder.set_condition_size(condition_size)
        if isinstance(self.decoder, networks.SizedNetwork):
            self.decoder.set_target_shape((*self.data_shape, self.likelihood.num_params))
            self.decoder.set_condition_size(condition_size)
        if not self.encoder.built:
            self.encoder.build((None, *self.data_shape))
        if not self.decoder.built:
            self.decoder.build((None, self.latent_dim))
        if self.gradient_baseline is not None and not self.gradient_baseline.built:
            self.gradient_baseline.build((None, *self.data_shape))
        if not self.prior_layer.built:
            self.prior_layer.build((self.latent_dim,))
        elif self.prior_layer.latent_dim != self.latent_dim:
            raise ValueError(
                f"Expected a prior over latent_dim={self.latent_dim} dimensions. Received a "
                f"prior built for {self.prior_layer.latent_dim}: {self.prior_layer.name}"
            )
        self._apply_jit_compile()  # "auto" can see the layers the networks built

    @property
    def prior(self) -> tfd.Distribution:
        """p(z), event shape `(latent_dim,)`; a ValueError for a hierarchical prior, which
        has no closed-form density (`prior_layer.log_prob` estimates it)."""
        return self.prior_layer.distribution()

    @property
    def latent_dims(self) -> tuple[int, ...]:
        """The sizes of the latent layers, z (z1) first: `(latent_dim,)` for a flat prior,
        `(100, 50)` for `prior=tfvae.priors.Hierarchical(50)` over 100 latents."""
        return (self.latent_dim, *self.prior_layer.upper_dims)

    # ------------------------------------------------------------------ KL weight

    @property
    def beta(self):
        """The KL weight: a float, or the `tfvae.schedules.BetaSchedule` in use.

        Assigning a number (>= 0) or a schedule takes effect at the next training step,
        also from a callback in the middle of `fit` and under XLA or a distribution
        strategy: a number is written to a variable the compiled step reads; a new
        schedule makes Keras trace the step again. `current_beta()` gives the value.

        Raises:
            ValueError: for a negative or non-finite number, an unknown schedule, or beta
                other than 1 with an objective that does not weight the KL (IWAE).
        """
        if self._beta_schedule is not None:
            return self._beta_schedule
        return float(self._beta_weight.numpy())

    @beta.setter
    def beta(self, value):
        schedule, constant = _checked_beta(value, self.objective)
        if schedule is None:
            self._beta_weight.assign(constant)
        if schedule != self._beta_schedule:
            self._beta_schedule = schedule
            self._retrace_compiled_steps()

    def current_beta(self) -> tf.Tensor:
        """The KL weight of the next training step, a float32 scalar tensor."""
        if self._beta_schedule is None:
            return tf.convert_to_tensor(self._beta_weight)
        optimizer = getattr(self, "optimizer", None)  # Keras sets it in compile
        step = optimizer.iterations if optimizer is not None else 0
        return tf.cast(self._beta_schedule(step), tf.float32)

    def _retrace_compiled_steps(self) -> None:
        """Rebuilds the compiled train and test steps that Keras made, so the next call
        traces them again (`fit` reads `train_function` before every step)."""
        if getattr(self, "train_function", None) is not None:
            self.make_train_function(force=True)
        if getattr(self, "test_function", None) is not None:
            self.make_test_function(force=True)

    # ----------------------------------------------------------- distributions

    def posterior_raw(self, x, condition=None, training=False) -> tf.Tensor:
        """The encoder's raw outputs for x, `(batch_size, posterior.param_size(latent_dim))`."""
        if not self.built:  # train/test steps reach here without going through __call__.
            shape = tuple(x.shape)
            if self.condition_shape is not None:  # Keras saves signatures from these shapes
                shape = (shape, (shape[0], *self.condition_shape))
            self.build(shape)
        condition = self._checked_condition(condition, x.shape[0])
        raw = conditions.call(self.encoder, x, condition, self.condition_shape, training)
        width = self.posterior.param_size(self.latent_dim)
        self._check_width(
            raw,
            width,
            f"the encoder to output {width} values per example for posterior "
            f"{self.posterior.family!r} with latent_dim={self.latent_dim}",
        )
        return tf.reshape(raw, [-1, width])

    def posterior_parameters(self, x, condition=None, training=False) -> dict[str, tf.Tensor]:
        """The posterior's named parameters for x `(batch_size, *data_shape)`."""
        raw = self.posterior_raw(x, condition, training=training)
        return self.posterior.parameters(raw, self.latent_dim)

    def encode(self, x, condition=None, training=False) -> tfd.Distribution:
        """q(z|x) (q(z|x, y) with a condition): batch `(batch_size,)`, event `(latent_dim,)`."""
        return self.posterior.distribution(
            self.posterior_parameters(x, condition, training=training)
        )

    def likelihood_parameters(self, z, condition=None, training=False) -> dict[str, tf.Tensor]:
        """The likelihood's named parameters, each `(*z.shape[:-1], *data_shape)`."""
        self._require_built("decode")
        z = tf.cast(tf.convert_to_tensor(z), dtypes.log_prob_dtype(self.decoder.compute_dtype))
        if z.shape.rank is not None and (
            z.shape.rank < 1 or z.shape[-1] not in (None, self.latent_dim)
        ):
            raise ValueError(
                f"Expected z of shape (..., latent_dim={self.latent_dim}). "
                f"Received: z.shape={tuple(z.shape)}"
            )
        leading_shape = tf.shape(z)[:-1]
        batch_size = z.shape[-2] if z.shape.rank is not None and z.shape.rank >= 2 else None
        condition = self._checked_condition(condition, batch_size)
        if condition is not None:  # [B, *condition_shape] -> [prod(leading_shape), C]
            condition = conditions.broadcast(condition, self.condition_shape, leading_shape)
        z_rows = tf.reshape(z, [-1, self.latent_dim])  # [prod(leading_shape), D]
        raw = conditions.call(self.decoder, z_rows, condition, self.condition_shape, training)
        num_params = self.likelihood.num_params
        width = math.prod(self.data_shape) * num_params
        self._check_width(
            raw,
            width,
            f"the decoder to output {width} values per example (data shape "
            f"{self.data_shape} x {num_params} parameter(s) of likelihood "
            f"{self.likelihood.family!r})",
        )
        params_shape = [*self.data_shape, num_params]
        if z.shape.rank is not None and z.shape.rank >= 2 and None not in z.shape[1:-1]:
            # A constant shape: exported decoders then hold one Reshape, not a chain.
            raw = tf.reshape(raw, [-1, *z.shape[1:-1], *params_shape])
        else:
            raw = tf.reshape(raw, tf.concat([leading_shape, params_shape], 0))
        return self.likelihood.parameters(raw)

    def decode(self, z, condition=None, training=False) -> tfd.Distribution:
        """p(x|z) (p(x|z, y)) for z `(..., latent_dim)`: batch `z.shape[:-1]`, event the
        data shape; a condition `(batch_size, *condition_shape)` broadcasts over z's
        leading axes."""
        return self.likelihood.distribution(
            self.likelihood_parameters(z, condition, training=training),
            event_ndims=len(self.data_shape),
        )

    @staticmethod
    def _check_width(raw, width: int, expectation: str) -> None:
        received = raw.shape[1:]
        if received.is_fully_defined() and math.prod(received) != width:
            raise ValueError(
                f"Expected {expectation}. Received an output of shape {tuple(raw.shape)} "
                f"({math.prod(received)} values per example)."
            )

    def _checked_condition(self, condition, batch_size=None):
        """The condition as `(batch_size, *condition_shape)` floats; see `conditions.check`."""
        dtype = dtypes.log_prob_dtype(self.compute_dtype)
        return conditions.check(condition, self.condition_shape, batch_size, dtype)

    def _require_built(self, action: str) -> None:
        if self.data_shape is None:
            raise ValueError(
                f"Cannot {action} before the model knows its data shape: call it on a "
                "batch of x, fit it, or build it with model.build((None, *data_shape))."
            )

    # ------------------------------------------------------------------ the ELBO

    def _latent_terms(
        self, x, num_samples, seed, training=False, condition=None, estimator=None
    ) -> LatentTerms:
        """Log densities at `num_samples` latents per example.

        Args:
            x: `(batch_size, *data_shape)` float data in the likelihood's support.
            num_samples: the number L of latents per example.
            seed: `(2,)` integer stateless seed of the posterior noise.
            training: passed to the encoder and decoder.
            condition: the condition y of a conditional model.
            estimator: the gradient estimator the terms are differentiated for (see
                `latent_terms_given`).

        Returns:
            `LatentTerms` with `(L, batch_size)` log densities and the `(batch_size,)` KL.
        """
        x = tf.cast(x, dtypes.log_prob_dtype(self.encoder.compute_dtype))
        params = self.posterior_parameters(x, condition, training=training)
        return self.latent_terms_given(x, params, num_samples, seed, training, condition, estimator)

    def latent_terms_given(
        self, x, params, num_samples, seed, training=False, condition=None, estimator=None
    ) -> LatentTerms:
        """`LatentTerms` for x under a given posterior, its named `params` (batch `B`).

        The training step passes the encoder's parameters; inference utilities pass
        their own (refined per point, or reused across chunks of samples). The values do
        not depend on `estimator` (a `tfvae.estimators.GradientEstimator`, default
        reparameterization), only their gradients: z is held constant for one that is
        not `reparameterized`, and log q(z|x) sees constant parameters for one that
        `stops_posterior_in_log_q`.
        """
        estimator = estimator or _REPARAMETERIZATION
        q = self.posterior.distribution(params)
        x = tf.cast(x, q.dtype)  # float32, or float64 for an encoder computing in float64
        z = self.posterior_samples(params, num_samples, seed)  # [L, B, D]
        if not estimator.reparameterized:
            z = tf.stop_gradient(z)
        log_likelihood = self.decode(z, condition, training=training).log_prob(x)  # [L, B]
        # An estimate for a prior with latents of its own: then its seed is the step's.
        log_prior = self.prior_layer.log_prob(z, seed, training)  # [L, B]
        q_of_z = q
        if estimator.stops_posterior_in_log_q:
            q_of_z = self.posterior.distribution(tf.nest.map_structure(tf.stop_gradient, params))
        log_posterior = q_of_z.log_prob(z)  # [L, B]
        analytic = self.kl == "analytic" and not self.prior_layer.has_latents
        kl = self._analytic_kl(q, self.prior) if analytic else None
        kl_is_analytic = kl is not None
        if kl is None:
            kl = tf.reduce_mean(log_posterior - log_prior, axis=0)
        kl_per_dimension = self.kl_per_dimension(params, z)
        if kl_per_dimension is None and self.objective.needs_kl_per_dimension:
            raise ValueError(
                f"The objective {self.objective!r} needs per-dimension KLs, so a posterior "
                "and prior that factorize over latent dimensions. Received: posterior="
                f"{self.posterior.family!r}, prior={self.prior_layer.family!r}"
            )
        return LatentTerms(
            log_likelihood, log_prior, log_posterior, kl, kl_per_dimension, kl_is_analytic
        )

    def posterior_samples(self, params, num_samples, seed) -> tf.Tensor:
        """`(num_samples, batch_size, latent_dim)` reparameterized z ~ q(z|x) under the
        posterior's named `params`, from a `(2,)` stateless seed."""
        loc = params["loc"]  # [B, D], float32 (float64 for a float64 encoder)
        noise = random.standard_normal(
            [num_samples, tf.shape(loc)[0], self.latent_dim], seed, dtype=loc.dtype
        )
        return self.posterior.reparameterize(params, noise)

    def kl_per_dimension(self, params, z):
        """`(batch_size, latent_dim)` KL(q(z_d|x) || p(z_d)), or None if q or p does not
        factorize; analytic (with `kl="analytic"`) or the Monte Carlo mean over z
        `(L, batch_size, latent_dim)` drawn from q, like the model's `kl`."""
        q_marginals = self.posterior.marginals(params)  # batch [B, D]
        p_marginals = self.prior_layer.marginals()  # batch [D]
        if q_marginals is None or p_marginals is None:
            return None
        kl = self._analytic_kl(q_marginals, p_marginals) if self.kl == "analytic" else None
        if kl is None:
            kl = tf.reduce_mean(q_marginals.log_prob(z) - p_marginals.log_prob(z), axis=0)
        return kl

    @staticmethod
    def _analytic_kl(q, p):
        try:
            return tfd.kl_divergence(q, p)
        except NotImplementedError:
            return None

    def elbo_terms(
        self, x, num_samples=None, seed=None, training=False, condition=None
    ) -> dict[str, tf.Tensor]:
        """Per-example ELBO, reconstruction E_q[log p(x|z)] and KL, in nats.

        Args:
            x: `(batch_size, *data_shape)` data in the likelihood's support.
            num_samples: Monte Carlo samples L (default: the model's `num_samples`).
            seed: int or `(2,)` stateless seed; None draws from the model's evaluation
                stream.
            training: passed to the networks.

        Returns:
            A dict with `elbo`, `reconstruction` and `kl`, each `(batch_size,)`, and
            `kl_per_dimension` `(batch_size, latent_dim)` when q and p factorize over
            latent dimensions (see `LatentTerms`).
        """
        num_samples = self.num_samples if num_samples is None else num_samples
        num_samples = validation.positive_int(num_samples, "num_samples")
        if tf.executing_eagerly():  # Inside a tf.function the caller checks its data.
            self.likelihood.check_support(x)
        seed = self._seed_or_next(seed)
        terms = self._latent_terms(x, num_samples, seed, training, condition)
        result = {"elbo": terms.elbo, "reconstruction": terms.reconstruction, "kl": terms.kl}
        if terms.kl_per_dimension is not None:
            result["kl_per_dimension"] = terms.kl_per_dimension
        return result

    def _per_example_metrics(self, x, seed, training, condition, beta) -> dict[str, tf.Tensor]:
        terms = self._latent_terms(x, self.num_samples, seed, training, condition)
        return self._metrics_of(terms, beta)

    def _metrics_of(self, terms: LatentTerms, beta) -> dict[str, tf.Tensor]:
        return {
            "loss": self.objective.loss(terms, beta),
            "elbo": terms.elbo,
            "reconstruction": terms.reconstruction,
            "kl": terms.kl,
        }

    def surrogate(
        self,
        x,
        seed,
        beta=None,
        condition=None,
        estimator=None,
        baseline=None,
        num_samples=None,
    ) -> tuple[dict[str, tf.Tensor], Surrogate]:
        """The training step's metrics and the surrogate losses it differentiates.

        Args:
            x: `(batch_size, *data_shape)` data in the likelihood's support.
            seed: `(2,)` stateless seed of the posterior noise.
            beta: the KL weight (default: `current_beta()`).
            condition: the condition y of a conditional model.
            estimator: a `tfvae.estimators` name or instance; default the model's own
                `gradient_estimator`, with its `gradient_baseline`.
            baseline: the baseline layer of a given `estimator` (see
                `GradientEstimator.make_baseline`), or None.
            num_samples: latent samples L per example (default: the model's).

        Returns:
            `(metrics, surrogate)`: the per-example `loss` (the objective's), `elbo`,
            `reconstruction` and `kl`, each `(batch_size,)`, and the estimator's
            `tfvae.estimators.Surrogate`. The networks run with `training=True`.
        """
        if estimator is None:
            estimator, baseline = self.gradient_estimator, self.gradient_baseline
        else:
            estimator = estimators.get(estimator)
            estimator.check(self.objective, self.kl)
        beta = self.current_beta() if beta is None else beta
        num_samples = self.num_samples if num_samples is None else num_samples
        terms = self._latent_terms(x, num_samples, seed, True, condition, estimator)
        baseline_values = None if baseline is None else baseline(x)  # [B]
        surrogate = estimator.surrogate(self.objective, terms, beta, baseline_values)
        return self._metrics_of(terms, beta), surrogate

    def surrogate_gradients(self, tape, loss, encoder_loss=None) -> list:
        """Gradients of a `Surrogate`'s scalar losses for `trainable_variables`, in order:
        `encoder_loss`'s for the encoder's variables when it is given, `loss`'s for all
        others (all of them without it)."""
        variables = self.trainable_variables
        if encoder_loss is None:
            return tape.gradient(loss, variables)
        encoder_ids = {id(variable) for variable in self.encoder.trainable_variables}
        groups = (
            (encoder_loss, [v for v in variables if id(v) in encoder_ids]),
            (loss, [v for v in variables if id(v) not in encoder_ids]),
        )
        by_id = {}
        for target, group in groups:
            by_id.update(zip(map(id, group), tape.gradient(target, group), strict=True))
        return [by_id[id(variable)] for variable in variables]

    # ------------------------------------------------------------ Keras integration

    def call(self, inputs, training=False):
        """The reconstruction mean E[x | z = posterior mean], shaped like x.

        `inputs` is x, or `(x, condition)` for a conditional model.
        """
        x, condition = conditions.split_inputs(inputs, self.condition_shape)
        z = self.encode(x, condition, training=training).mean()
        return self.decode(z, condition, training=training).mean()

    def compile(self, optimizer="adam", jit_compile="auto", **kwargs):
        """Configures training; see `keras.Model.compile`.

        `jit_compile=True` compiles the train and test steps with XLA, `False` does not,
        and `"auto"` (the default) takes the path measured faster for the device and the
        networks: XLA on a GPU, and on a CPU unless the networks have convolutions
        (`tfvae.compiled.auto_jit_compile`; Keras's own `"auto"` never uses XLA on a CPU).
        Under a multi-replica `tf.distribute` strategy, XLA cannot compile the whole step
        (the optimizer updates variables on several devices), so the per-replica loss and
        gradient computation is compiled instead. The choice also applies to the
        inference functions (see `compiled_function`).
        """
        for argument in ("loss", "metrics", "weighted_metrics", "loss_weights"):
            if kwargs.get(argument) is not None:
                raise ValueError(
                    f"A VAE's loss and metrics are its objective's (loss, elbo, "
                    f"reconstruction, kl); it takes no {argument}. Received: "
                    f"{argument}={kwargs[argument]!r}"
                )
        self._requested_jit_compile = jit_compile
        super().compile(optimizer=optimizer, jit_compile=False, **kwargs)
        self._compiled_functions.reset(self._apply_jit_compile(force=True))

    def _apply_jit_compile(self, force: bool = False) -> bool:
        """Applies `compile(jit_compile=...)` to the model as it is now; returns whether
        it uses XLA.

        `"auto"` reads the networks' layers, which a network may create only when it is
        built (`ConvEncoder`), so `build` applies the choice again; what it changes (the
        train and test steps, the inference functions) is rebuilt on its next use.
        `run_eagerly=True` runs the steps eagerly whatever the choice.
        """
        xla = compiled.resolve_jit_compile(self._requested_jit_compile, self)
        if xla != self._compiled_functions.jit_compile:
            self._compiled_functions.reset(xla)
        if not self.compiled:
            return xla
        graph = not self.run_eagerly
        per_replica = xla and graph and self.distribute_strategy.num_replicas_in_sync > 1
        whole_step = xla and graph and not per_replica
        if force or (per_replica, whole_step) != (self._xla_per_replica, self.jit_compile):
            self._xla_per_replica, self.jit_compile = per_replica, whole_step
            self._compiled_loss_and_gradients = (
                tf.function(self._loss_and_gradients, jit_compile=True)
                if per_replica
                else self._loss_and_gradients
            )
            self.train_function = self.test_function = self.predict_function = None
        return xla

    def get_compile_config(self):
        config = super().get_compile_config()
        if config:
            config["jit_compile"] = self._requested_jit_compile
        return config

    def compile_from_config(self, config):
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    _SEED_STATES = ("seed_generator", "evaluation_seed_generator")

    def _random_streams(self) -> dict:
        return {name: getattr(self, name) for name in self._SEED_STATES}

    def save_own_variables(self, store):
        """Saves the random streams' states too, so a reloaded model continues them."""
        super().save_own_variables(store)
        random.save_states(store, self._random_streams())

    def load_own_variables(self, store):
        """Loads what `save_own_variables` saved; a file written before the streams'
        states were saved leaves them as they are."""
        super().load_own_variables(random.load_states(store, self._random_streams()))

    @property
    def metrics(self):
        return list(self._trackers)

    def next_evaluation_seed(self) -> tf.Tensor:
        """The next `(2,)` stateless seed of the evaluation stream (it advances the stream).

        The stream of evaluation, sampling and inference, never of training: calling it
        does not shift the training noise, and its seeds differ from training's even when
        both streams start from the same `seed`.
        """
        return tf.random.experimental.stateless_fold_in(self.evaluation_seed_generator.next(), 1)

    def _seed_or_next(self, seed) -> tf.Tensor:
        """`seed` as a `(2,)` stateless seed; the evaluation stream's next when None."""
        return self.next_evaluation_seed() if seed is None else random.as_seed(seed)

    def _loss_and_gradients(self, x, condition, sample_weight, seed, beta):
        """Per-replica forward and backward pass: (per-example metrics, gradients).

        The metrics hold the estimator's `learning_signal` too when it has one.
        """
        split = self.gradient_estimator.separates_encoder_loss
        with tf.GradientTape(persistent=split) as tape:
            per_example, surrogate = self.surrogate(x, seed, beta, condition)
            replicas = tf.distribute.get_replica_context().num_replicas_in_sync

            def step_loss(losses):  # [B] -> the scalar the optimizer's gradient is of
                if sample_weight is not None:
                    losses = losses * tf.cast(tf.reshape(sample_weight, [-1]), losses.dtype)
                # Keras's convention: sum(w * loss) / batch_size, so the gradient does not
                # depend on how the weights are normalized; the `loss` metric is the
                # weighted mean sum(w * loss) / sum(w). Divided by the replicas: the
                # optimizer sums them.
                return self.optimizer.scale_loss(tf.reduce_mean(losses) / replicas)

            loss = step_loss(surrogate.loss)
            encoder_loss = step_loss(surrogate.encoder_loss) if split else None
        gradients = self.surrogate_gradients(tape, loss, encoder_loss)
        if surrogate.learning_signal is not None:
            per_example["learning_signal"] = surrogate.learning_signal
        return per_example, gradients

    def train_step(self, data):
        x, condition, sample_weight = conditions.unpack(data, self.condition_shape is not None)
        beta = self.current_beta()
        per_example, gradients = self._compiled_loss_and_gradients(
            x, condition, sample_weight, distribute.replica_seed(self.seed_generator.next()), beta
        )
        self.optimizer.apply(gradients, self.trainable_variables)
        if self.gradient_baseline is not None:  # after the step: b must not see its own z
            self.gradient_baseline.update(per_example["learning_signal"], sample_weight)
        return distribute.step_logs(
            {**self._update_metrics(per_example, sample_weight), "beta": beta}
        )

    def test_step(self, data):
        x, condition, sample_weight = conditions.unpack(data, self.condition_shape is not None)
        seed = distribute.replica_seed(self.next_evaluation_seed())
        per_example = self._per_example_metrics(x, seed, False, condition, self.current_beta())
        return distribute.step_logs(self._update_metrics(per_example, sample_weight))

    def _update_metrics(self, per_example, sample_weight):
        for tracker in self._trackers:
            tracker.update_state(per_example[tracker.name], sample_weight=sample_weight)
        return {tracker.name: tracker.result() for tracker in self._trackers}

    def fit(self, x=None, *args, validation_data=None, **kwargs):
        """`keras.Model.fit`, after checking that the data are not empty and lie in the
        likelihood's support (`tfvae.data_checks`)."""
        return super().fit(
            data_checks.checked(x, "x", self.likelihood),
            *args,
            validation_data=data_checks.checked(
                validation_data, "validation_data", self.likelihood
            ),
            **kwargs,
        )

    def evaluate(self, x=None, *args, **kwargs):
        """`keras.Model.evaluate`, after checking that the data are not empty and lie in
        the likelihood's support (`tfvae.data_checks`)."""
        return super().evaluate(data_checks.checked(x, "x", self.likelihood), *args, **kwargs)

    # ------------------------------------------------------------------ inference

    def compiled_function(self, key, build):
        """The model's `tf.function` for `key`, built by `build()` on first use and kept.

        The inference utilities run their computations through this cache, so that each is
        traced once per model and static arguments. It is compiled with XLA as
        `compile(jit_compile=...)` says (`tfvae.compiled.resolve_jit_compile`; before
        `compile`, as `"auto"` does). `compile` empties the cache, so a new choice applies
        to the next call.

        Args:
            key: a hashable tuple naming the function and every static argument that
                `build` bakes into it, e.g. `("log_likelihood", num_samples, chunk_size)`.
            build: called without arguments, returns the Python function to trace; it
                may call the model's methods.

        Returns:
            The `tf.function`.

        Example:

        >>> double = vae.compiled_function(("double",), lambda: lambda x: 2.0 * x)
        >>> double(tf.ones(3))
        """
        return self._compiled_functions.get(key, build)

    def log_likelihood(
        self, x, num_samples=5000, chunk_size=500, seed=None, condition=None
    ) -> tf.Tensor:
        """Importance-weighted estimate of log p(x) (log p(x|y)), `(batch_size,)` nats.

        See `tfvae.inference.log_likelihood`.
        """
        return inference.log_likelihood(self, x, num_samples, chunk_size, seed, condition)

    def refine_posterior(self, x, steps=100, learning_rate=0.05, **kwargs) -> dict:
        """Per-point posteriors refined from the encoder's; ELBO before and after.

        See `tfvae.inference.refine_posterior`.
        """
        return inference.refine_posterior(self, x, steps, learning_rate, **kwargs)

    def impute(
        self, x, mask, method="metropolis_within_gibbs", steps=100, seed=None, condition=None
    ) -> tf.Tensor:
        """x with its entries where `mask` is True filled in by MCMC through the model.

        See `tfvae.inference.impute`.
        """
        return inference.impute(self, x, mask, method, steps, seed, condition)

    # ----------------------------------------------------------------- generating

    def sample(self, n, seed=None, mean=False, condition=None) -> tf.Tensor:
        """Draws `(n, *data_shape)` samples x ~ p(x|z), z ~ p(z) (x ~ p(x|z, y) given y).

        Args:
            n: number of samples, a positive integer.
            seed: int or `(2,)` stateless seed; None draws from the model's evaluation
                stream.
            mean: return E[x|z] instead of a draw from p(x|z).
            condition: for a conditional model, one condition `condition_shape` for all
                samples or one per sample, `(n, *condition_shape)`.
        """
        self._require_built("sample")
        n = validation.positive_int(n, "n")
        z_seed, x_seed = random.split(self._seed_or_next(seed))
        condition = conditions.repeat(condition, self.condition_shape, n)
        p_x = self.decode(self.prior_layer.sample(n, z_seed), condition)
        return p_x.mean() if mean else p_x.sample(seed=tf.cast(x_seed, tf.int32))

    # -------------------------------------------------------------- serialization

    def get_config(self):
        config = super().get_config()
        serialize = keras.saving.serialize_keras_object
        config.update(
            encoder=serialize(self.encoder),
            decoder=serialize(self.decoder),
            latent_dim=self.latent_dim,
            likelihood=serialize(self.likelihood),
            prior=serialize(self.prior_layer),
            posterior=serialize(self.posterior),
            kl=self.kl,
            num_samples=self.num_samples,
            beta=self.beta if self._beta_schedule is None else serialize(self._beta_schedule),
            objective=serialize(self.objective),
            seed=self.seed,
            condition_shape=None if self.condition_shape is None else list(self.condition_shape),
            gradient_estimator=serialize(self.gradient_estimator),
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "decoder"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


_REPARAMETERIZATION = estimators.Reparameterization()


def _check_estimator_for_prior(estimator, prior) -> None:
    """Refuses a gradient estimator that would ignore the latents inside a hierarchical
    prior: only the reparameterization gradient differentiates through all of them."""
    if prior.has_latents and not isinstance(estimator, estimators.Reparameterization):
        raise ValueError(
            "A prior with latents of its own (a hierarchy) is trained with "
            "gradient_estimator='reparameterization', which differentiates through every "
            f"layer of latents. Received: gradient_estimator={estimator.family!r}, "
            f"prior={prior.family!r}"
        )


def _checked_beta(beta, objective) -> tuple[schedules.BetaSchedule | None, float]:
    """(schedule, constant) for a `beta` argument: a schedule and 0, or None and a number.

    Raises:
        ValueError: for a negative or non-finite number, an unknown schedule, or beta
            other than 1 with an objective that does not weight the KL.
    """
    if isinstance(beta, str | dict | schedules.BetaSchedule):
        schedule, constant = schedules.get(beta), 0.0
    else:
        schedule, constant = None, validation.non_negative_float(beta, "beta")
    if not objective.uses_beta and (schedule is not None or constant != 1.0):
        raise ValueError(
            f"The {objective.family!r} objective does not weight the KL, so it needs "
            f"beta=1. Received: beta={beta!r}"
        )
    return schedule, constant
