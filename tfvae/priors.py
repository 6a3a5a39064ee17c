"""Prior families p(z). Priors are Keras layers so that learnable ones train and save.

The model builds its prior with `prior.build((latent_dim,))`. Each layer class derives
from its family in `tfvae.prior_families`, which owns its name, its exported parameters'
names and its numpy sampler (what the ONNX runtime needs).

Families (`prior=` name):
    - `"standard_normal"`: N(0, I), the default; KL to a Gaussian posterior is analytic.
    - `"mixture"`: a learnable mixture of diagonal Gaussians (`tfd.MixtureSameFamily`);
      the KL has no closed form and is estimated by Monte Carlo.
    - `"hierarchical"`: p(z) = integral p(z|u) p(u) du with latents u one layer up and
      their own inference network q(u|z): a VAE over z, which makes the model a
      hierarchy p(x|z1) p(z1|z2) p(z2) (`Hierarchical`, `hierarchy`).
"""

import math

import tfvae._backend  # noqa: F401

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import dtypes, networks, posteriors, prior_families, random, validation
from tfvae.registry import Registry

tfd = tfp.distributions


class Prior(keras.layers.Layer):
    """Base class of the priors: a layer whose `distribution()` is p(z), event `(latent_dim,)`."""

    def build(self, input_shape):
        self.latent_dim = validation.positive_int(input_shape[-1], "latent_dim")

    def distribution(self) -> tfd.Distribution:
        """p(z), with batch shape `()` and event shape `(latent_dim,)`."""
        raise NotImplementedError

    def log_prob(self, z, seed, training=False) -> tf.Tensor:
        """log p(z) of z `(..., latent_dim)`: `z.shape[:-1]` nats.

        A prior with latents of its own (`has_latents`) returns a one-draw importance
        estimate, drawn from the `(2,)` stateless `seed`, whose exponential is unbiased
        for p(z); the others ignore `seed` and `training`.
        """
        return self.distribution().log_prob(z)

    @property
    def upper_dims(self) -> tuple[int, ...]:
        """The sizes of the latent layers above z, nearest first: () for a flat prior."""
        return ()

    def parameters(self) -> dict[str, np.ndarray]:
        """The prior's constrained parameters as arrays, named as `param_names`, for the
        manifest and the runtime."""
        return {}

    def marginals(self) -> tfd.Distribution | None:
        """p(z_d) of each dimension, batch `(latent_dim,)`, when p factorizes over
        dimensions (so per-dimension KLs sum to the KL); else None."""
        return None

    def sample(self, num_samples, seed) -> tf.Tensor:
        """Draws `(num_samples, latent_dim)` latents from a stateless `(2,)` seed."""
        return self.distribution().sample(num_samples, seed=tf.cast(seed, tf.int32))


registry = Registry("prior", Prior)


@registry.register(prior_families.StandardNormal.family)
class StandardNormal(prior_families.StandardNormal, Prior):
    """The standard normal prior N(0, I)."""

    def distribution(self):
        zeros = tf.zeros([self.latent_dim], dtypes.log_prob_dtype(self.compute_dtype))
        return tfd.MultivariateNormalDiag(loc=zeros, scale_diag=tf.ones_like(zeros))

    def sample(self, num_samples, seed):
        dtype = dtypes.log_prob_dtype(self.compute_dtype)
        return random.standard_normal([num_samples, self.latent_dim], seed, dtype=dtype)

    def marginals(self):
        zeros = tf.zeros([self.latent_dim], dtypes.log_prob_dtype(self.compute_dtype))
        return tfd.Normal(loc=zeros, scale=tf.ones_like(zeros))


@registry.register(prior_families.Mixture.family)
class Mixture(prior_families.Mixture, Prior):
    """A learnable mixture of `num_components` diagonal Gaussians.

    Mathematical details: p(z) = sum_k pi_k N(z; mu_k, diag(sigma_k^2)) with
    pi = softmax(logits) and sigma = softplus(raw_scale) + min_scale; the component
    means start as draws from N(0, I) and the scales at 1 (to float32 rounding).

    Args:
        num_components: the number of mixture components K (>= 1).
        min_scale: floor on the component standard deviations (> 0).
        seed: seed for the initial component means.
    """

    def __init__(self, num_components: int = 10, min_scale: float = 1e-3, seed=None, **kwargs):
        self.num_components = validation.positive_int(num_components, "num_components")
        self.min_scale = validation.positive_float(min_scale, "min_scale")
        if self.min_scale >= 1.0:
            raise ValueError(
                "Expected min_scale < 1: the component scales start at 1. "
                f"Received: min_scale={min_scale!r}"
            )
        self.seed = validation.optional_seed(seed)
        super().__init__(**kwargs)

    def build(self, input_shape):
        super().build(input_shape)
        shape = (self.num_components, self.latent_dim)
        self.logits = self.add_weight(
            shape=(self.num_components,), initializer="zeros", name="logits"
        )
        self.locs = self.add_weight(
            shape=shape,
            # N(0, I), as documented: Keras's RandomNormal defaults to stddev=0.05.
            initializer=keras.initializers.RandomNormal(stddev=1.0, seed=self.seed),
            name="locs",
        )
        self.raw_scales = self.add_weight(
            shape=shape,
            # softplus(raw) + min_scale = 1 at initialization.
            initializer=keras.initializers.Constant(math.log(math.expm1(1.0 - self.min_scale))),
            name="raw_scales",
        )

    def _scales(self) -> tf.Tensor:
        return tf.math.softplus(dtypes.at_least_float32(self.raw_scales)) + self.min_scale

    def distribution(self):
        return tfd.MixtureSameFamily(
            mixture_distribution=tfd.Categorical(logits=dtypes.at_least_float32(self.logits)),
            components_distribution=tfd.MultivariateNormalDiag(
                loc=dtypes.at_least_float32(self.locs), scale_diag=self._scales()
            ),
        )

    def parameters(self):
        """`logits` `(K,)`, `locs` `(K, latent_dim)` and `scales` `(K, latent_dim)`."""
        return {
            "logits": np.asarray(self.logits, dtype=np.float32),
            "locs": np.asarray(self.locs, dtype=np.float32),
            "scales": np.asarray(self._scales()),
        }

    def get_config(self):
        config = super().get_config()
        config.update(num_components=self.num_components, min_scale=self.min_scale, seed=self.seed)
        return config


@registry.register(prior_families.Hierarchical.family)
class Hierarchical(prior_families.Hierarchical, Prior):
    """p(z) = integral p(z|u) p(u) du: latents u one layer up, with networks of their own.

    A `tfvae.VAE` with this prior is the hierarchical model of Burda et al. (2015),
    p(x|z1) p(z1|z2) p(z2) with q(z1|x) q(z2|z1): z is z1, u is z2. Its importance weights
    and ELBO use the one-draw estimate of log p(z1) (`log_prob`), so that ELBO and IWAE
    training, `log_likelihood` and the KL (a Monte Carlo estimate of KL(q(z1, z2|x) ||
    p(z1, z2))) are those of the two-layer model. A deeper chain nests priors:
    `Hierarchical(50, prior=Hierarchical(25))` (see `hierarchy`). Upper layers take no
    condition. The numpy side is `tfvae.prior_families.Hierarchical`.

    Args:
        upper_dim: the size of u, a positive integer.
        decoder: a Keras layer u `(batch_size, upper_dim)` -> the raw parameters of p(z|u),
            `conditional.param_size(latent_dim)` values (default: an MLP with two hidden
            layers of `2 * upper_dim` tanh units, Burda et al.'s 100-100 for u of 50). A
            `tfvae.networks` network is sized automatically.
        encoder: a Keras layer z `(batch_size, latent_dim)` -> the raw parameters of
            q(u|z), `posterior.param_size(upper_dim)` values (default: the same MLP).
        conditional: the family of p(z|u), a `tfvae.posteriors` name or instance.
        posterior: the family of q(u|z), a `tfvae.posteriors` name or instance.
        prior: p(u), a name or instance of this registry (`Hierarchical` for a deeper
            chain).
        activation: the hidden activation of the default networks.
        seed: seed of the default networks' initializers (the decoder takes `seed + 1`).

    Example:
        >>> vae = tfvae.VAE(tfvae.networks.mlp_encoder((200, 200), "tanh"),
        ...                 tfvae.networks.mlp_decoder((200, 200), "tanh"), latent_dim=100,
        ...                 prior=tfvae.priors.Hierarchical(50), objective="iwae")
    """

    def __init__(
        self,
        upper_dim: int,
        decoder=None,
        encoder=None,
        conditional="diagonal_normal",
        posterior="diagonal_normal",
        prior="standard_normal",
        activation: str = "tanh",
        seed=None,
        **kwargs,
    ):
        self.upper_dim = validation.positive_int(upper_dim, "upper_dim")
        self.seed = validation.optional_seed(seed)
        hidden = (2 * self.upper_dim,) * 2
        if decoder is None:
            decoder_seed = validation.offset_seed(self.seed, 1)
            decoder = networks.mlp_decoder(hidden, activation, seed=decoder_seed)
        if encoder is None:
            encoder = networks.mlp_encoder(hidden, activation, seed=self.seed)
        networks.check_layer(decoder, "decoder")
        networks.check_layer(encoder, "encoder")
        conditional = posteriors.get(conditional)
        posterior = posteriors.get(posterior)
        prior = get(prior)
        super().__init__(**kwargs)
        self.decoder = decoder
        self.encoder = encoder
        self.conditional = conditional
        self.posterior = posterior
        self.prior = prior

    def build(self, input_shape):
        super().build(input_shape)
        if isinstance(self.decoder, networks.SizedNetwork):
            self.decoder.set_target_shape((self.conditional.param_size(self.latent_dim),))
        if isinstance(self.encoder, networks.SizedNetwork):
            self.encoder.set_target_shape((self.posterior.param_size(self.upper_dim),))
        if not self.decoder.built:
            self.decoder.build((None, self.upper_dim))
        if not self.encoder.built:
            self.encoder.build((None, self.latent_dim))
        if not self.prior.built:
            self.prior.build((self.upper_dim,))

    @property
    def upper_dims(self):
        return (self.upper_dim, *self.prior.upper_dims)

    def distribution(self):
        raise ValueError(
            "The hierarchical prior p(z) = integral p(z|u) p(u) du has no closed-form "
            "density, so no tfd.Distribution: use its log_prob, an importance estimate. "
            f"Received: prior={self.name!r}"
        )

    def conditional_parameters(self, u, training=False) -> dict[str, tf.Tensor]:
        """p(z|u)'s named parameters for u `(n, upper_dim)`, each `(n, latent_dim[, ...])`."""
        raw = self.decoder(u, training=training)
        width = self.conditional.param_size(self.latent_dim)
        return self.conditional.parameters(tf.reshape(raw, [-1, width]), self.latent_dim)

    def posterior_parameters(self, z, training=False) -> dict[str, tf.Tensor]:
        """q(u|z)'s named parameters for z `(n, latent_dim)`, each `(n, upper_dim[, ...])`."""
        raw = self.encoder(z, training=training)
        width = self.posterior.param_size(self.upper_dim)
        return self.posterior.parameters(tf.reshape(raw, [-1, width]), self.upper_dim)

    def log_prob(self, z, seed, training=False):
        """log p(z|u) + log p(u) - log q(u|z) at one u ~ q(u|z) per z: `z.shape[:-1]` nats,
        whose exponential is unbiased for p(z) (p(u) estimated the same way when it is
        hierarchical itself)."""
        u_seed, upper_seed = random.split(seed)
        z_rows = tf.reshape(z, [-1, self.latent_dim])  # [N, D]
        params = self.posterior_parameters(z_rows, training)
        noise = random.standard_normal(
            [1, tf.shape(z_rows)[0], self.upper_dim], u_seed, dtype=params["loc"].dtype
        )
        u = self.posterior.reparameterize(params, noise)[0]  # [N, U]
        log_posterior = self.posterior.distribution(params).log_prob(u)  # [N]
        log_upper = self.prior.log_prob(u, upper_seed, training)  # [N]
        conditional = self.conditional.distribution(self.conditional_parameters(u, training))
        log_conditional = conditional.log_prob(tf.cast(z_rows, u.dtype))  # [N]
        return tf.reshape(log_conditional + log_upper - log_posterior, tf.shape(z)[:-1])

    def sample(self, num_samples, seed):
        """Draws u ~ p(u), then z ~ p(z|u): `(num_samples, latent_dim)`."""
        u_seed, z_seed = random.split(seed)
        params = self.conditional_parameters(self.prior.sample(num_samples, u_seed))
        noise = random.standard_normal(
            [1, num_samples, self.latent_dim], z_seed, dtype=params["loc"].dtype
        )
        return self.conditional.reparameterize(params, noise)[0]

    def get_config(self):
        config = super().get_config()
        serialize = keras.saving.serialize_keras_object
        config.update(
            upper_dim=self.upper_dim,
            decoder=serialize(self.decoder),
            encoder=serialize(self.encoder),
            conditional=serialize(self.conditional),
            posterior=serialize(self.posterior),
            prior=serialize(self.prior),
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("decoder", "encoder", "prior"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def hierarchy(upper_dims, activation: str = "tanh", seed=None) -> Prior:
    """The prior of a hierarchy of latents above z, nearest first: `hierarchy((50,))` is
    `Hierarchical(50)`, `hierarchy((50, 25))` is `Hierarchical(50, prior=Hierarchical(25))`,
    and `hierarchy(())` the standard normal. Each layer has the default networks with
    `activation`, seeded from `seed` and the layer's depth.

    Raises:
        ValueError: for a size that is not a positive integer.
    """
    seed = validation.optional_seed(seed)
    prior = StandardNormal()
    for depth, upper_dim in reversed(list(enumerate(upper_dims))):
        layer_seed = validation.offset_seed(seed, 2 * depth)
        prior = Hierarchical(upper_dim, prior=prior, activation=activation, seed=layer_seed)
    return prior


def get(identifier) -> Prior:
    """Resolves a prior name, instance or serialized config (see `Registry.get`)."""
    return registry.get(identifier)
