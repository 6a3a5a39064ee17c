"""Small helpers shared by the family tests."""

import numpy as np
import tensorflow as tf

BATCH = 3
LATENT_DIM = 4
NUM_MC = 20_000
NUM_SE = 4.0


def softplus(x):
    return np.logaddexp(0.0, np.asarray(x, dtype=np.float64))


def seed(a, b=0):
    return tf.constant([a, b], dtype=tf.int64)


def posterior_params(rng, posterior, batch=BATCH, latent_dim=LATENT_DIM):
    raw = rng.normal(size=(batch, posterior.param_size(latent_dim))).astype(np.float32)
    return raw, posterior.parameters(tf.constant(raw), latent_dim)
