"""Likelihood families p(x|z): how decoder outputs become a distribution over data.

One class per family, one file per class; `base.Likelihood` says what a family owns
(its name, parameters, support, constants, numpy sampler and density, and its TensorFlow
distribution). Importing this package imports numpy only; the TensorFlow methods import
TensorFlow on first use. `registry.names()` lists the families (`likelihood=` names),
and each file's docstring describes its family.

A new family is a new file holding one registered subclass of `Likelihood`, and one
line below that imports it.
"""

from tfvae.likelihoods.base import Likelihood as Likelihood
from tfvae.likelihoods.base import registry as registry
from tfvae.likelihoods.bernoulli import Bernoulli as Bernoulli
from tfvae.likelihoods.binomial import Binomial as Binomial
from tfvae.likelihoods.categorical import Categorical as Categorical
from tfvae.likelihoods.continuous_bernoulli import ContinuousBernoulli as ContinuousBernoulli
from tfvae.likelihoods.gaussian import Gaussian as Gaussian
from tfvae.likelihoods.gaussian_learned_scale import GaussianLearnedScale as GaussianLearnedScale


def get(identifier) -> Likelihood:
    """Resolves a likelihood name, instance or serialized config (see `Registry.get`)."""
    return registry.get(identifier)
