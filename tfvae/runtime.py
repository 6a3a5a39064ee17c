"""Run an exported VAE with numpy and onnxruntime only: no TensorFlow, no Keras.

    >>> from tfvae.runtime import Sampler
    >>> sampler = Sampler.load("export/digits")
    >>> x = sampler.sample(64, seed=0)             # (64, *data_shape) float32
    >>> loc, scale = sampler.encode(x)
    >>> scores = sampler.log_likelihood(x, num_samples=1000)   # (64,) nats

The bundle is a folder written by `tfvae.export.export_model` (see `tfvae.bundle`).
`Sampler.load` checks the manifest's checksum and every file's SHA-256 before it opens a
session, so a missing or altered file is refused with its name. z ~ p(z), x ~ p(x|z) and
the densities of the scores are computed in numpy by the families the manifest names
(`tfvae.likelihoods`, `tfvae.prior_families`, `tfvae.posteriors`: their numpy side),
from the parameters the ONNX networks compute.

Inputs are checked at every public call: z, x and conditions must be finite, and x must
lie in the likelihood's support as the manifest records it; a ValueError names the
argument. This module and everything it imports need only numpy and onnxruntime:
`import tfvae.runtime` works without TensorFlow and under any `KERAS_BACKEND`.
"""

import math
from pathlib import Path

import numpy as np

from tfvae import likelihoods, npmath, posteriors, prior_families, support, validation
from tfvae.bundle import BundleError, verified_manifest
from tfvae.interpolation import latent_path

__all__ = ["BundleError", "Sampler", "in_support"]

in_support = support.contains  # public here since bundles first recorded their support


def _family(registry, entry: dict, manifest_path: Path, **config):
    """The family a manifest entry names, built with `config`; a BundleError if unknown."""
    try:
        return registry.class_of(entry["family"])(**config)
    except ValueError as error:
        raise BundleError(
            manifest_path,
            f"{error}. A family registered by your own code must be imported before Sampler.load.",
        ) from None


def _network(session):
    """An ONNX session as a function of z `(n, D)` float32 -> its named outputs."""
    names = [output.name for output in session.get_outputs()]
    return lambda z: dict(zip(names, session.run(None, {"z": z}), strict=True))


def _prior(entry: dict, sessions: dict, manifest_path: Path) -> tuple:
    """`(family, parameters)` of the prior a manifest entry describes: its parameters as
    float64 arrays, or for a family with latents of its own (`has_latents`) what
    `tfvae.prior_families.Hierarchical` reads: the networks of its layer (from
    `sessions`, by component name), the families, and p(u), recursively.

    Raises:
        BundleError: the entry names an unknown family or a network the bundle lacks.
    """
    family = _family(prior_families.registry, entry, manifest_path)
    params = {
        name: np.asarray(value, dtype=np.float64) for name, value in entry["parameters"].items()
    }
    if not family.has_latents:
        return family, params
    networks = {}
    for role, component in entry["networks"].items():  # {"decoder": "decoder_2", ...}
        if component not in sessions:
            raise BundleError(manifest_path, f"the prior's {role} {component!r} is missing")
        networks[role] = _network(sessions[component])
    if "decoder" not in networks:
        raise BundleError(manifest_path, "the hierarchical prior has no decoder")
    return family, {
        **params,
        **networks,
        "upper_dim": int(entry["upper_dim"]),
        "conditional": _family(posteriors.registry, entry["conditional"], manifest_path),
        "posterior": _family(posteriors.registry, entry["posterior"], manifest_path),
        "prior": _prior(entry["prior"], sessions, manifest_path),
    }


def _generator(seed) -> np.random.Generator:
    """A numpy generator from a seed in tfvae's one range (`tfvae.validation.seed`) or
    None (fresh entropy); a generator passes through, so one call can hand its stream to
    another."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(validation.seed(seed, optional=True))


class Sampler:
    """An exported VAE run by onnxruntime. Build it with `Sampler.load(bundle_dir)`.

    Attributes:
        manifest: the bundle's manifest (dict).
        latent_dim: size of z (z1 in a hierarchy).
        latent_dims: the sizes of every layer of latents, z1 first: `(latent_dim,)` for a
            flat prior, `(100, 50)` for two layers.
        data_shape: shape of one x, e.g. `(28, 28, 1)`.
        condition_shape: shape of one condition y of a conditional model, else None.
        likelihood: the likelihood family the manifest names, with its constants.
        prior: the prior family (numpy side) the manifest names.
        posterior: the posterior family the manifest names.
        weights: the precision of the networks' weights, "float32", "float16" or "int8"
            (`tfvae.precision`); the manifest records their error against Keras.

    Raises:
        BundleError: the manifest names a family this process does not know.
    """

    def __init__(self, manifest: dict, decoder, encoder=None, bundle_dir=".", networks=None):
        manifest_path = Path(bundle_dir) / "manifest.json"
        self.manifest = manifest
        self.likelihood = _family(
            likelihoods.registry,
            manifest["likelihood"],
            manifest_path,
            **manifest["likelihood"]["constants"],
        )
        # As arrays once: every chunk of a log-likelihood estimate reads them. A hierarchy's
        # networks above z1 are the `networks` sessions named in its entry.
        self.prior, self._prior_parameters = _prior(
            manifest["prior"], networks or {}, manifest_path
        )
        self.posterior = _family(posteriors.registry, manifest["posterior"], manifest_path)
        self.latent_dim = int(manifest["latent_dim"])
        self.latent_dims, entry = (self.latent_dim,), manifest["prior"]
        while "upper_dim" in entry:
            self.latent_dims, entry = (*self.latent_dims, int(entry["upper_dim"])), entry["prior"]
        self.data_shape = tuple(manifest["data"]["shape"])
        condition_shape = manifest.get("condition_shape")
        self.condition_shape = None if condition_shape is None else tuple(condition_shape)
        self.weights = manifest.get("weights", {"precision": "float32"})["precision"]
        self._decoder = decoder
        self._encoder = encoder
        # Output names, read once: batch-1 decoding takes tens of microseconds.
        self._decoder_outputs = [output.name for output in decoder.get_outputs()]
        self._encoder_outputs = [output.name for output in encoder.get_outputs()] if encoder else []

    @classmethod
    def load(
        cls, bundle_dir, providers=None, threads: int | None = None, spinning: bool | None = None
    ) -> "Sampler":
        """Verifies a bundle's files and opens its ONNX sessions.

        For many small calls (batch 1 to a few), `threads=1` saves the hand-off to a
        thread pool, and suits a server that runs one sampler per core; large batches
        want every core (the default). `spinning=False` lets idle threads sleep rather
        than spin between calls: less CPU burnt while waiting, a slower wake-up. See
        benchmarks/README.md for the measured latencies.

        Args:
            bundle_dir: a folder written by `tfvae.export.export_model`.
            providers: onnxruntime execution providers (default: CPU).
            threads: intra-op threads of each session (default: onnxruntime's choice,
                one per physical core).
            spinning: whether idle intra-op threads spin waiting for work (default:
                onnxruntime's choice, which spins).

        Raises:
            BundleError: a file is missing or altered, or the manifest is unreadable or of
                an unknown format; the message names the file.
        """
        import onnxruntime

        bundle = Path(bundle_dir)
        manifest = verified_manifest(bundle)
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = validation.positive_int(threads, "threads")
        if spinning is not None:
            options.add_session_config_entry(
                "session.intra_op.allow_spinning", "1" if spinning else "0"
            )
        providers = providers or ["CPUExecutionProvider"]
        sessions = {
            component: onnxruntime.InferenceSession(
                str(bundle / entry["file"]), sess_options=options, providers=providers
            )
            for component, entry in manifest["onnx"].items()
        }
        if "decoder" not in sessions:
            raise BundleError(bundle / "manifest.json", "the bundle has no decoder")
        return cls(manifest, sessions["decoder"], sessions.get("encoder"), bundle, sessions)

    # ----------------------------------------------------------------------- decoding

    def _checked_z(self, z) -> np.ndarray:
        z = np.asarray(z, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"Expected z of shape (batch_size, latent_dim={self.latent_dim}). "
                f"Received: z.shape={z.shape}"
            )
        support.check_finite(z, "z")
        return z

    def _check_x(self, x: np.ndarray, argument: str) -> None:
        """Raises a ValueError naming `argument` unless `x` is finite and in the support."""
        support.check_finite(x, argument)
        bounds = self.manifest["likelihood"].get("support")  # absent from older bundles
        if bounds is not None:
            support.check(x, bounds, argument, self.manifest["likelihood"]["family"])

    def _feeds(self, name: str, value: np.ndarray, condition) -> dict[str, np.ndarray]:
        """ONNX inputs: `name`, and `condition` broadcast to `(n, *condition_shape)`."""
        if self.condition_shape is None:
            if condition is not None:
                raise ValueError("This bundle's model is not conditional; it takes no condition.")
            return {name: value}
        if condition is None:
            raise ValueError(
                f"This bundle's model is conditional: pass condition=, of shape "
                f"{self.condition_shape} or (n, *{self.condition_shape})."
            )
        condition = np.asarray(condition, dtype=np.float32)
        support.check_finite(condition, "condition")
        batch_shape = (len(value), *self.condition_shape)
        if condition.shape == self.condition_shape:  # one condition for the whole batch
            condition = np.broadcast_to(condition, batch_shape)
        if condition.shape != batch_shape:
            raise ValueError(
                f"Expected a condition of shape {self.condition_shape} or "
                f"(n, *{self.condition_shape}) with n={len(value)}. "
                f"Received: condition.shape={condition.shape}"
            )
        return {name: value, "condition": np.ascontiguousarray(condition)}

    def decode(self, z, condition=None) -> dict[str, np.ndarray]:
        """Likelihood parameters and `mean`, each `(n, *data_shape)`, for z `(n, latent_dim)`
        (and the condition, for a conditional model).

        Raises:
            ValueError: z or the condition has the wrong shape or a NaN or infinity.
        """
        feeds = self._feeds("z", self._checked_z(z), condition)
        return dict(zip(self._decoder_outputs, self._decoder.run(None, feeds), strict=True))

    def mean(self, z, condition=None) -> np.ndarray:
        """E[x|z], `(n, *data_shape)`."""
        return self.decode(z, condition)["mean"]

    def sample_latents(self, n: int, seed=None, temperature: float = 1.0) -> np.ndarray:
        """Draws z ~ p(z), `(n, latent_dim)` float32; `temperature` scales its spread.

        In a hierarchy, every layer is drawn from the top down, z_K ~ p(z_K), then each
        z_{k-1} ~ p(z_{k-1}|z_k) in numpy from the parameters its ONNX decoder computes;
        `temperature` scales the spread of every layer.
        """
        n = validation.positive_int(n, "n")
        temperature = validation.positive_float(temperature, "temperature")
        rng = _generator(seed)
        z = self.prior.numpy_sample(n, self.latent_dim, self._prior_parameters, temperature, rng)
        return z.astype(np.float32)

    def sample(
        self, n: int, seed=None, mean: bool = False, temperature: float = 1.0, condition=None
    ):
        """Draws x ~ p(x|z), z ~ p(z): `(n, *data_shape)` float32 (E[x|z] when `mean`).

        Args:
            n: number of samples.
            seed: an integer in [0, 2**31 - 1] or None; the same seed gives the same
                samples.
            mean: return E[x|z] instead of a draw.
            temperature: multiplies the prior's standard deviations.
            condition: for a conditional model, one condition for all samples or one per
                sample.
        """
        rng = _generator(seed)
        z = self.sample_latents(n, seed=rng, temperature=temperature)
        if mean:
            return self.mean(z, condition)
        return self.sample_given(z, seed=rng, condition=condition)

    def sample_given(self, z, seed=None, condition=None) -> np.ndarray:
        """Draws x ~ p(x|z) for given z `(n, latent_dim)`: `(n, *data_shape)` float32.

        The likelihood family the manifest names draws from the parameters the ONNX
        decoder computes (`numpy_sample`).
        """
        rng = _generator(seed)
        return self.likelihood.numpy_sample(self.decode(z, condition), rng)

    # ----------------------------------------------------------------------- encoding

    def encode(self, x, condition=None) -> tuple[np.ndarray, np.ndarray]:
        """The posterior's location `(n, latent_dim)` and scale for x `(n, *data_shape)`.

        The scale is `(n, latent_dim)` standard deviations for a diagonal posterior and
        the `(n, latent_dim, latent_dim)` Cholesky factor for a full-covariance one.

        Raises:
            ValueError: the bundle has no encoder; or x or the condition has the wrong
                shape or a NaN or infinity; or x lies outside the likelihood's support
                (e.g. 0.5 for a binomial, 1.5 for a Bernoulli).
        """
        return self._encode(self._checked_x(x), condition)

    def _checked_x(self, x) -> np.ndarray:
        """x as float32 `(n, *data_shape)`, finite and in the support, for the encoder."""
        self._require_encoder()
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != self.data_shape:
            raise ValueError(
                f"Expected x of shape (batch_size, *{self.data_shape}). Received: x.shape={x.shape}"
            )
        self._check_x(x, "x")
        return x

    def _require_encoder(self) -> None:
        if self._encoder is None:
            raise ValueError(
                "This bundle has no encoder: export with components=('decoder', 'encoder')."
            )

    def _encode(self, x: np.ndarray, condition) -> tuple[np.ndarray, np.ndarray]:
        """`encode` without the checks of x."""
        params = self._posterior_parameters(x, condition)
        return params["loc"], params[self.posterior.scale_name]

    def _posterior_parameters(self, x: np.ndarray, condition) -> dict[str, np.ndarray]:
        """The encoder's named outputs for checked x."""
        feeds = self._feeds("x", x, condition)
        return dict(zip(self._encoder_outputs, self._encoder.run(None, feeds), strict=True))

    def reconstruct(self, x, condition=None) -> np.ndarray:
        """E[x|z] at the posterior mean of each x: `(n, *data_shape)`."""
        loc, _ = self.encode(x, condition)
        return self.mean(loc, condition)

    def interpolate(
        self, x_a, x_b, steps: int = 8, method: str = "linear", condition=None
    ) -> np.ndarray:
        """E[x|z] along a path between two inputs' posterior means (one condition for both
        and for the path, for a conditional model); see `tfvae.interpolation.latent_path`.

        Returns:
            `(steps, *data_shape)`, from the reconstruction of `x_a` to that of `x_b`.

        Raises:
            ValueError: as `encode`, naming `x_a` or `x_b`.
        """
        self._require_encoder()
        ends = {"x_a": np.asarray(x_a, dtype=np.float32), "x_b": np.asarray(x_b, dtype=np.float32)}
        for argument, x in ends.items():
            if x.shape != self.data_shape:
                raise ValueError(
                    f"Expected {argument} of shape {self.data_shape}. "
                    f"Received: {argument}.shape={x.shape}"
                )
            self._check_x(x, argument)
        loc, _ = self._encode(np.stack(list(ends.values())), condition)
        path = latent_path(loc[0], loc[1], steps, method).astype(np.float32)
        return self.mean(path, condition)

    # ------------------------------------------------------------------------ scoring

    def log_likelihood(
        self, x, num_samples: int = 5000, chunk_size: int = 100, seed=None, condition=None
    ) -> np.ndarray:
        """Importance-weighted estimate of log p(x) per example (log p(x|y) given y), nats.

        Mathematical details: log p(x) ~ log (1/k) sum_k p(x|z_k) p(z_k) / q(z_k|x) with
        z_k ~ q(z|x), the estimate `tfvae.VAE.log_likelihood` computes, here in numpy
        around the two ONNX sessions: the encoder runs once, the decoder on `chunk_size`
        latents per example at a time, combined by a running log-sum-exp. Its
        expectation is the IWAE bound, below log p(x) and rising to it as k grows. Low
        values flag unlikely inputs (anomaly scores).

        Args:
            x: `(n, *data_shape)` data in the likelihood's support.
            num_samples: the number k of importance samples.
            chunk_size: latents per example decoded at once (memory: chunk_size x n x
                the data size).
            seed: an integer in [0, 2**31 - 1] or None; the same seed gives the same
                estimates.
            condition: for a conditional model, one condition or one per example.

        Returns:
            `(n,)` float64 estimates of log p(x).

        Raises:
            ValueError: the bundle has no encoder; or x or the condition is malformed, not
                finite, or (x) outside the likelihood's support.
        """
        num_samples = validation.positive_int(num_samples, "num_samples")
        chunk_size = min(validation.positive_int(chunk_size, "chunk_size"), num_samples)
        x = self._checked_x(x)
        params = self._posterior_parameters(x, condition)
        rng = _generator(seed)
        total = np.full(len(x), -np.inf)  # log of the running sum of the weights
        for start in range(0, num_samples, chunk_size):
            size = min(chunk_size, num_samples - start)
            log_weights = self._log_weights(x, params, size, rng, condition)  # [L, n]
            total = np.logaddexp(total, npmath.logsumexp(log_weights, axis=0))
        return total - math.log(num_samples)

    def elbo(self, x, num_samples: int = 100, seed=None, condition=None) -> np.ndarray:
        """Monte Carlo ELBO per example, nats: the mean over `num_samples` draws z ~ q(z|x)
        of log p(x|z) + log p(z) - log q(z|x), a lower bound on log p(x).

        Args:
            x: `(n, *data_shape)` data in the likelihood's support.
            num_samples: latent draws per example (the estimate's noise falls as
                1/sqrt(num_samples)).
            seed: an integer in [0, 2**31 - 1] or None.
            condition: for a conditional model, one condition or one per example.

        Returns:
            `(n,)` float64 ELBO estimates.
        """
        num_samples = validation.positive_int(num_samples, "num_samples")
        x = self._checked_x(x)
        params = self._posterior_parameters(x, condition)
        rng = _generator(seed)
        return self._log_weights(x, params, num_samples, rng, condition).mean(axis=0)

    def log_weights(self, x, z, condition=None, seed=None) -> np.ndarray:
        """Importance log-weights log p(x|z) + log p(z) - log q(z|x) at given latents.

        The building block of `log_likelihood` and `elbo`, for estimators of your own
        (or latents shared with another implementation). In a hierarchy, log p(z1) is
        the one-draw estimate of `tfvae.prior_families.Hierarchical`, so that these are
        the two-layer model's weights p(x|z1) p(z1|z2) p(z2) / (q(z1|x) q(z2|z1)) with
        z2 ~ q(z2|z1) drawn from `seed`.

        Args:
            x: `(n, *data_shape)` data in the likelihood's support.
            z: `(L, n, latent_dim)` latents, L per example.
            condition: for a conditional model, one condition or one per example.
            seed: an integer in [0, 2**31 - 1] or None, for the draws of a hierarchy's
                upper latents (flat priors draw nothing).

        Returns:
            `(L, n)` float64 nats.
        """
        x = self._checked_x(x)
        z = np.asarray(z, dtype=np.float64)
        if z.ndim != 3 or z.shape[1:] != (len(x), self.latent_dim):
            raise ValueError(
                f"Expected z of shape (L, n={len(x)}, latent_dim={self.latent_dim}). "
                f"Received: z.shape={z.shape}"
            )
        support.check_finite(z, "z")
        params = self._posterior_parameters(x, condition)
        return self._log_weights_at(x, params, z, condition, _generator(seed))

    def _log_weights(self, x, params, num_samples, rng, condition) -> np.ndarray:
        """`(num_samples, n)` log-weights at z ~ q(z|x), given the encoder's `params`."""
        z = self.posterior.numpy_sample(params, num_samples, rng)  # [L, n, D] float64
        return self._log_weights_at(x, params, z, condition, rng)

    def _log_weights_at(self, x, params, z, condition, rng) -> np.ndarray:
        num_samples, n = z.shape[:2]
        if condition is not None:  # one per example, repeated for each of the L latents
            condition = np.asarray(condition, dtype=np.float32)
            if condition.shape == self.condition_shape:
                condition = np.broadcast_to(condition, (n, *self.condition_shape))
            condition = np.tile(condition, (num_samples, *[1] * (condition.ndim - 1)))
        decoded = self.decode(z.reshape(-1, self.latent_dim).astype(np.float32), condition)
        decoded = {
            name: value.reshape(num_samples, n, *value.shape[1:]) for name, value in decoded.items()
        }
        log_likelihood = self.likelihood.numpy_log_prob(x.astype(np.float64), decoded)
        log_likelihood = log_likelihood.reshape(num_samples, n, -1).sum(axis=-1)  # [L, n]
        log_prior = self.prior.numpy_log_prob(z, self._prior_parameters, rng)
        return log_likelihood + log_prior - self.posterior.numpy_log_prob(z, params)
