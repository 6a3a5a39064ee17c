"""What a trained VAE answers about data: log p(x), missing values, better posteriors.

    - `log_likelihood`: the importance-weighted estimate of log p(x) (Burda et al., 2015),
      chunked over the samples so memory stays bounded.
    - `evaluate`: ELBO, reconstruction, KL and the estimated negative log-likelihood of a
      data set, in nats and in bits per dimension.
    - `latent_diagnostics`: per-dimension KL and active units (Burda et al., 2015), to
      see posterior collapse.
    - `refine_posterior`: per-point variational inference started from the encoder's
      q(z|x), which measures the amortization gap (Cremer et al., 2018).
    - `impute`: fills missing entries by pseudo-Gibbs sampling (Rezende et al., 2014) or
      Metropolis-within-Gibbs (Mattei and Frellsen, 2018).

`tfvae.VAE` exposes the first, third and fourth as methods. Each computation runs as one
`tf.function` from the model's cache (`VAE.compiled_function`), compiled with XLA unless
the model was compiled with `jit_compile=False`.
"""

import math

import tfvae._backend  # noqa: F401

import keras
import numpy as np
import tensorflow as tf

from tfvae import conditions, random, validation
from tfvae.config import IMPUTATION_METHODS


def _seed(model, seed) -> tf.Tensor:
    """`seed` as a `(2,)` stateless seed; the model's next evaluation seed when None."""
    return model.next_evaluation_seed() if seed is None else random.as_seed(seed)


def _as_input(model, x) -> tf.Tensor:
    """x as a float32 tensor, with the model built for its data shape."""
    x = tf.cast(tf.convert_to_tensor(x), tf.float32)
    if not model.built:
        model.build(tuple(x.shape))
    return x


# --------------------------------------------------------------------------- log p(x)


def log_likelihood(
    model, x, num_samples=5000, chunk_size=500, seed=None, condition=None
) -> tf.Tensor:
    """Importance-weighted estimate of log p(x) per example, in nats.

    Mathematical details: log p(x) ~ log (1/k) sum_k p(x|z_k) p(z_k) / q(z_k|x) with
    z_k ~ q(z|x). Its expectation is the IWAE bound, below log p(x) and rising to it as k
    grows. The k samples are drawn in chunks of `chunk_size` and combined with a running
    `reduce_logsumexp`, so memory grows with `chunk_size`, not k.

    Args:
        model: a built `tfvae.VAE`.
        x: `(batch_size, *data_shape)` data in the likelihood's support.
        num_samples: the number k of importance samples.
        chunk_size: samples drawn at once (memory: chunk_size x batch_size x data size).
        seed: int or `(2,)` stateless seed; None draws from the model's evaluation stream.
        condition: the condition y of a conditional model, `(batch_size,
            *condition_shape)`: the estimate is then of log p(x|y).

    Returns:
        `(batch_size,)` float32 estimates of log p(x).
    """
    num_samples = validation.positive_int(num_samples, "num_samples")
    chunk_size = min(validation.positive_int(chunk_size, "chunk_size"), num_samples)
    model.likelihood.check_support(x)
    x = _as_input(model, x)
    estimate = model.compiled_function(
        ("log_likelihood", num_samples, chunk_size),
        lambda: _log_likelihood_function(model, num_samples, chunk_size),
    )
    return estimate(x, _seed(model, seed), conditions.as_tensor(condition))


def _log_likelihood_function(model, num_samples, chunk_size):
    full_chunks, remainder = divmod(num_samples, chunk_size)

    def chunk_logsumexp(x, params, size, seed, condition):  # [B]: over `size` log-weights
        terms = model.latent_terms_given(x, params, size, seed, condition=condition)
        return tf.reduce_logsumexp(terms.log_weights, axis=0)

    def estimate(x, seed, condition):
        params = model.posterior_parameters(x, condition)  # the encoder runs once
        total = tf.fill([tf.shape(x)[0]], -np.inf)  # [B], log of the running sum
        for i in tf.range(full_chunks):
            chunk_seed = tf.random.experimental.stateless_fold_in(seed, i)
            chunk = chunk_logsumexp(x, params, chunk_size, chunk_seed, condition)
            total = tf.reduce_logsumexp(tf.stack([total, chunk]), axis=0)
        if remainder:
            last_seed = tf.random.experimental.stateless_fold_in(seed, full_chunks)
            chunk = chunk_logsumexp(x, params, remainder, last_seed, condition)
            total = tf.reduce_logsumexp(tf.stack([total, chunk]), axis=0)
        return total - math.log(num_samples)

    return estimate


def _batches(data, batch_size, condition=None, conditional=False):
    """Yields (x, condition) batches from an array x (with an array `condition`), or from a
    tf.data dataset of x or (x, y, ...) batches whose y is the condition when
    `conditional` (None for unconditional models)."""
    if isinstance(data, tf.data.Dataset):
        for element in data:
            if not isinstance(element, tuple):
                element = (element,)  # x; a dataset of (x,) tuples yields (x,) already
            if not isinstance(element[0], tf.Tensor):
                raise TypeError(
                    "Expected dataset elements x, (x,) or (x, y, ...) with x a tensor. "
                    f"Received elements whose first part is {type(element[0]).__name__}"
                )
            y = element[1] if conditional and len(element) > 1 else None
            yield element[0], y
        return
    data = np.asarray(data)
    for start in range(0, len(data), batch_size):
        stop = start + batch_size
        y = None if condition is None else np.asarray(condition)[start:stop]
        yield data[start:stop].astype(np.float32), y


def evaluate(
    model,
    data,
    num_samples=5000,
    batch_size=100,
    chunk_size=500,
    seed=0,
    verbose=1,
    condition=None,
) -> dict:
    """ELBO, reconstruction, KL and estimated negative log-likelihood of a data set.

    Args:
        model: a built `tfvae.VAE`.
        data: an array `(n, *data_shape)`, or a `tf.data.Dataset` of x or (x, ...)
            batches, in the likelihood's support.
        num_samples: importance samples k per example for the log-likelihood.
        batch_size: examples per batch (arrays only).
        chunk_size: samples drawn at once (see `log_likelihood`).
        seed: seed of the evaluation; batch i uses it folded with i.
        verbose: 1 shows a progress bar.
        condition: for a conditional model, the conditions of an array `data`
            (a dataset's batches carry theirs as y).

    Returns:
        A dict of means over examples: `elbo`, `reconstruction`, `kl`, `nll` (nats), and
        `bits_per_dim` = nll / (number of data dimensions x ln 2), plus `examples`. The
        NLL is an importance-weighted estimate, above the true -log p(x) in expectation
        and approaching it as `num_samples` grows. For discrete data (binarized pixels,
        counts) it estimates a code length; for continuous data it is a density and not
        comparable with those. Also `latent_diagnostics`'s keys (`kl_per_dimension`,
        `posterior_mean_variance`, `active_units`, `active_dimensions`), from a second
        pass of the encoder over the data.
    """
    seed = random.as_seed(seed)
    progress = keras.utils.Progbar(None, verbose=verbose, unit_name="batch")
    sums = {"elbo": 0.0, "reconstruction": 0.0, "kl": 0.0, "nll": 0.0}
    examples = 0
    conditional = model.condition_shape is not None
    elbo_terms = model.compiled_function(
        ("elbo_terms",),
        lambda: lambda x, seed, y: model.elbo_terms(x, seed=seed, condition=y),
    )
    for index, (x, y) in enumerate(_batches(data, batch_size, condition, conditional)):
        batch_seed = tf.random.experimental.stateless_fold_in(seed, index)
        elbo_seed, nll_seed = random.split(batch_seed)
        log_p = log_likelihood(model, x, num_samples, chunk_size, nll_seed, condition=y)
        terms = elbo_terms(_as_input(model, x), elbo_seed, conditions.as_tensor(y))
        for key in ("elbo", "reconstruction", "kl"):
            sums[key] += float(tf.reduce_sum(terms[key]))
        sums["nll"] -= float(tf.reduce_sum(log_p))
        examples += int(tf.shape(x)[0])
        progress.update(index + 1, [("nll", sums["nll"] / examples)])
    if examples == 0:
        raise ValueError("Expected data with at least one example. Received: no examples")
    result = {key: total / examples for key, total in sums.items()}
    result["bits_per_dim"] = result["nll"] / (math.prod(model.data_shape) * math.log(2.0))
    result["examples"] = examples
    result.update(latent_diagnostics(model, data, batch_size, seed=seed, condition=condition))
    return result


# ------------------------------------------------------------- posterior collapse


def latent_diagnostics(model, data, batch_size=100, threshold=0.01, seed=0, condition=None) -> dict:
    """Which latent dimensions a VAE uses: per-dimension KL and active units.

    Mathematical details: a dimension d is active when the posterior mean moves with the
    data, A_d = Cov_x(E_q[z_d | x]) > `threshold` (Burda et al., 2015, section 5.2, who
    take 0.01). A collapsed dimension has q(z_d|x) = p(z_d) for every x: its
    A_d and its KL(q(z_d|x) || p(z_d)) are both 0. When q and p factorize over
    dimensions, the per-dimension KLs sum to the total KL(q(z|x) || p(z)).

    Args:
        model: a built `tfvae.VAE`.
        data: an array `(n, *data_shape)`, or a `tf.data.Dataset` of x, (x,) or (x, y, ...)
            batches (y is the condition of a conditional model).
        batch_size: examples per batch (arrays only).
        threshold: the variance above which a dimension counts as active, >= 0.
        seed: int or `(2,)` seed of the latent samples of a Monte Carlo KL (`kl="mc"`);
            batch i uses it folded with i. An analytic KL does not depend on it.
        condition: for a conditional model, the conditions of an array `data`.

    Returns:
        A dict with `kl_per_dimension` (`latent_dim` floats: the mean over examples of
        KL(q(z_d|x) || p(z_d)) in nats; None when the posterior or the prior does not
        factorize, e.g. a full-covariance posterior or a mixture prior),
        `posterior_mean_variance` (`latent_dim` floats: A_d, the variance over the data,
        1/n not 1/(n-1), of the posterior mean `loc`), `active_units` (the number of
        dimensions with A_d > threshold) and `active_dimensions` (their indices).

    Raises:
        ValueError: for a bad `threshold` or `batch_size`, or data with no example.

    Example:

    >>> diagnostics = tfvae.inference.latent_diagnostics(vae, x_test)
    >>> diagnostics["active_units"], diagnostics["kl_per_dimension"]
    """
    batch_size = validation.positive_int(batch_size, "batch_size")
    threshold = validation.non_negative_float(threshold, "threshold")
    seed = random.as_seed(seed)
    diagnose = model.compiled_function(
        ("latent_diagnostics", model.num_samples),
        lambda: _diagnostics_function(model, model.num_samples),
    )
    conditional = model.condition_shape is not None
    examples = 0
    kl_sum = None
    mean = np.zeros(model.latent_dim)  # running mean and sum of squared deviations
    squares = np.zeros(model.latent_dim)  # of loc, merged per batch (Chan et al., 1979)
    for index, (x, y) in enumerate(_batches(data, batch_size, condition, conditional)):
        model.likelihood.check_support(x)
        x = _as_input(model, x)
        y = conditions.as_tensor(y)
        batch_seed = tf.random.experimental.stateless_fold_in(seed, index)
        loc, kl_per_dimension = diagnose(x, batch_seed, y)
        loc = np.asarray(loc, dtype=np.float64)  # [B, D]
        count = len(loc)
        batch_mean = loc.mean(axis=0)
        delta = batch_mean - mean
        total = examples + count
        mean += delta * count / total
        squares += ((loc - batch_mean) ** 2).sum(axis=0) + delta**2 * examples * count / total
        examples = total
        if kl_per_dimension is not None:
            batch_kl = np.asarray(kl_per_dimension, dtype=np.float64).sum(axis=0)  # [D]
            kl_sum = batch_kl if kl_sum is None else kl_sum + batch_kl
    if examples == 0:
        raise ValueError("Expected data with at least one example. Received: no examples")
    variance = squares / examples
    active = [int(d) for d in np.flatnonzero(variance > threshold)]
    return {
        "kl_per_dimension": None if kl_sum is None else (kl_sum / examples).tolist(),
        "posterior_mean_variance": variance.tolist(),
        "active_units": len(active),
        "active_dimensions": active,
    }


def _diagnostics_function(model, num_samples):
    def diagnose(x, seed, condition):  # ([B, D] posterior means, [B, D] KLs or None)
        params = model.posterior_parameters(x, condition)  # the encoder only
        z = model.posterior_samples(params, num_samples, seed)  # [L, B, D]
        return params["loc"], model.kl_per_dimension(params, z)

    return diagnose


# ------------------------------------------------------------------ amortization gap


def refine_posterior(
    model,
    x,
    steps=100,
    learning_rate=0.05,
    num_samples=8,
    eval_samples=1000,
    seed=None,
    condition=None,
) -> dict:
    """Optimizes each point's own posterior, starting from the encoder's q(z|x).

    Per-point (non-amortized) variational inference: the posterior's raw parameters for
    each x are optimized by Adam on that point's ELBO (`num_samples` fresh latent
    samples a step). A point keeps its refined posterior only where its ELBO, estimated
    on `eval_samples` samples shared by before and after, is higher. The reported ELBOs
    are estimated again on `eval_samples` independent samples (shared by before and
    after), so the selection does not bias them; where the encoder's posterior was kept,
    before and after are equal. The mean increase is the amortization gap closed.

    Args:
        model: a built `tfvae.VAE`.
        x: `(batch_size, *data_shape)` data in the likelihood's support.
        steps: optimization steps (>= 1).
        learning_rate: Adam's step size on the raw (unconstrained) parameters.
        num_samples: Monte Carlo samples per step.
        eval_samples: samples of the before/after scores.
        seed: int or `(2,)` stateless seed; None draws from the evaluation stream.
        condition: the condition y of a conditional model.

    Returns:
        A dict with `elbo_before`, `elbo_after` (`(batch_size,)` nats, independent of the
        selection), `refined` (`(batch_size,)` bool: the refined posterior was kept) and
        `params` (the kept posterior parameters, named as the posterior's).
    """
    steps = validation.positive_int(steps, "steps")
    learning_rate = validation.positive_float(learning_rate, "learning_rate")
    num_samples = validation.positive_int(num_samples, "num_samples")
    eval_samples = validation.positive_int(eval_samples, "eval_samples")
    model.likelihood.check_support(x)
    x = _as_input(model, x)
    refine = model.compiled_function(
        ("refine_posterior", steps, learning_rate, num_samples, eval_samples),
        lambda: _refine_function(model, steps, learning_rate, num_samples, eval_samples),
    )
    elbo_before, elbo_after, refined, raw = refine(
        x, _seed(model, seed), conditions.as_tensor(condition)
    )
    params = model.posterior.parameters(raw, model.latent_dim)
    return {
        "elbo_before": elbo_before,
        "elbo_after": elbo_after,
        "refined": refined,
        "params": params,
    }


def _refine_function(model, steps, learning_rate, num_samples, eval_samples):
    beta1, beta2, epsilon = 0.9, 0.999, 1e-8

    def refine(x, seed, condition):
        def elbo(raw, size, seed):  # [B]
            params = model.posterior.parameters(raw, model.latent_dim)
            return model.latent_terms_given(x, params, size, seed, condition=condition).elbo

        raw0 = model.posterior_raw(x, condition)  # [B, P]
        train_seed, select_seed, report_seed = random.split(seed, 3)

        def step(i, raw, m, v):  # Adam on each point's raw parameters
            with tf.GradientTape() as tape:
                tape.watch(raw)
                step_seed = tf.random.experimental.stateless_fold_in(train_seed, i)
                loss = -tf.reduce_sum(elbo(raw, num_samples, step_seed))
            gradient = tape.gradient(loss, raw)
            m = beta1 * m + (1 - beta1) * gradient
            v = beta2 * v + (1 - beta2) * gradient**2
            t = tf.cast(i + 1, tf.float32)
            update = (m / (1 - beta1**t)) / (tf.sqrt(v / (1 - beta2**t)) + epsilon)
            return i + 1, raw - learning_rate * update, m, v

        zeros = tf.zeros_like(raw0)
        _, raw, _, _ = tf.while_loop(
            lambda i, *_: i < steps, step, (tf.constant(0), raw0, zeros, zeros)
        )
        refined = elbo(raw, eval_samples, select_seed) > elbo(raw0, eval_samples, select_seed)
        kept = tf.where(refined[:, None], raw, raw0)
        before = elbo(raw0, eval_samples, report_seed)
        after = tf.where(refined, elbo(kept, eval_samples, report_seed), before)
        return before, after, refined, kept

    return refine


# ---------------------------------------------------------------------------- imputing


def impute(
    model, x, mask, method="metropolis_within_gibbs", steps=100, seed=None, condition=None
) -> tf.Tensor:
    """Fills the missing entries of x by Markov chain Monte Carlo through the VAE.

    Mathematical details: the chain's state is the completed x (and, for
    Metropolis-within-Gibbs, a latent z). Each step draws z' ~ q(z|x_t); pseudo-Gibbs
    (Rezende et al., 2014) accepts it always, Metropolis-within-Gibbs (Mattei and
    Frellsen, 2018) with probability min(1, p(x_t|z') p(z') q(z_t|x_t) /
    (p(x_t|z_t) p(z_t) q(z'|x_t))), which makes p(z, x_missing | x_observed) its
    stationary distribution. Then x_missing ~ p(x_missing|z). The observed entries
    never change. The chain starts from missing entries drawn from p(x|z=0). With a
    hierarchical prior, p(z) is the one-draw estimate of `tfvae.priors.Hierarchical`,
    drawn for each proposal and kept with the state: a pseudo-marginal chain (Andrieu
    and Roberts, 2009), whose target is still the exact one.

    Args:
        model: a built `tfvae.VAE`.
        x: `(batch_size, *data_shape)` data; missing entries may hold any value.
        mask: boolean, shaped like x, True where an entry is missing.
        method: "metropolis_within_gibbs" (exact target, the default) or "pseudo_gibbs"
            (cheaper, but biased when the encoder is not the exact posterior).
        steps: Markov chain steps (>= 1).
        seed: int or `(2,)` stateless seed; None draws from the evaluation stream.
        condition: the condition y of a conditional model.

    Returns:
        The completed x, `(batch_size, *data_shape)` float32: observed entries as given,
        missing ones the average of E[x_missing | z_t] over the second half of the chain
        (a Rao-Blackwellized estimate of E[x_missing | x_observed]).
    """
    validation.one_of(method, IMPUTATION_METHODS, "method")
    steps = validation.positive_int(steps, "steps")
    x = _as_input(model, x)
    mask = tf.convert_to_tensor(mask)
    if mask.dtype != tf.bool or mask.shape != x.shape:
        raise ValueError(
            f"Expected mask to be a boolean array shaped like x {tuple(x.shape)}. "
            f"Received: mask with dtype {mask.dtype.name} and shape {tuple(mask.shape)}"
        )
    start_seed, chain_seed = random.split(_seed(model, seed))
    condition = conditions.as_tensor(condition)
    start = model.decode(tf.zeros([tf.shape(x)[0], model.latent_dim]), condition)
    x0 = tf.where(mask, start.sample(seed=tf.cast(start_seed, tf.int32)), x)
    model.likelihood.check_support(x0)
    chain = model.compiled_function(
        ("impute", method, steps), lambda: _impute_function(model, method, steps)
    )
    return chain(x0, mask, chain_seed, condition)


def _impute_function(model, method, steps):
    metropolis = method == "metropolis_within_gibbs"
    burn_in = steps // 2

    def chain(x0, mask, seed, condition):
        def joint_minus_proposal(x, z, log_prior, q):  # [B]: log p(x|z) p(z) / q(z|x)
            log_joint = model.decode(z, condition).log_prob(x) + log_prior
            return log_joint - q.log_prob(z)

        def step(i, x, z, log_prior, total):
            proposal_seed, accept_seed, x_seed, prior_seed = random.split(
                tf.random.experimental.stateless_fold_in(seed, i), 4
            )
            params = model.posterior_parameters(x, condition)
            q = model.posterior.distribution(params)
            noise = random.standard_normal([tf.shape(x)[0], model.latent_dim], proposal_seed)
            proposal = model.posterior.reparameterize(params, noise[None])[0]  # [B, D]
            if metropolis:
                proposal_log_prior = model.prior_layer.log_prob(proposal, prior_seed)  # [B]
                log_ratio = joint_minus_proposal(
                    x, proposal, proposal_log_prior, q
                ) - joint_minus_proposal(x, z, log_prior, q)
                uniform = tf.random.stateless_uniform(tf.shape(log_ratio), accept_seed)
                accept = tf.math.log(uniform) < log_ratio  # [B]
                z = tf.where(accept[:, None], proposal, z)
                log_prior = tf.where(accept, proposal_log_prior, log_prior)
            else:
                z = proposal
            p_x = model.decode(z, condition)  # one decode for the draw and the average
            draw = p_x.sample(seed=tf.cast(x_seed, tf.int32))
            kept = tf.cast(i + 1 > burn_in, tf.float32)  # average after the burn-in
            return i + 1, tf.where(mask, draw, x), z, log_prior, total + kept * p_x.mean()

        z0 = model.encode(x0, condition).mean()
        # The estimate kept with the state: redrawn only when a proposal is accepted.
        start_seed = tf.random.experimental.stateless_fold_in(seed, steps)  # not a step's
        log_prior0 = model.prior_layer.log_prob(z0, start_seed)
        _, x, _, _, total = tf.while_loop(
            lambda i, *_: i < steps,
            step,
            (tf.constant(0), x0, z0, log_prior0, tf.zeros_like(x0)),
        )
        return tf.where(mask, total / float(steps - burn_in), x)

    return chain
