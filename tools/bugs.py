"""Named bugs: one-line wrong versions of tfvae that the fast tests must catch.

Each is a slip a tired engineer could make and that an earlier version of the suite let
through (issue 16). `tools/mutate.py --bugs` applies each to a copy of the package (never
to the working tree) and runs its module's fast tests; every bug must be caught.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Bug:
    """Replace `old` (which must occur exactly once in `path`) with `new`.

    Attributes:
        name: a short name.
        module: the core module whose test files must catch it (a `mutate.CORE` key).
        path: the file, relative to the repository root.
        old: the correct text.
        new: the wrong text.
    """

    name: str
    module: str
    path: str
    old: str
    new: str


BUGS = (
    Bug(
        "the loss ignores the KL weight",
        "model",
        "tfvae/model.py",
        '"loss": self.objective.loss(terms, beta),',
        '"loss": self.objective.loss(terms, 1.0),',
    ),
    Bug(
        "a gradient path cut, every value unchanged",
        "posteriors",
        "tfvae/posteriors.py",
        'return params["loc"] + params["scale"] * noise',
        'return params["loc"] + tf.stop_gradient(params["scale"]) * noise',
    ),
    Bug(
        "log p(x) drops the last chunk's samples when the chunk size does not divide k",
        "inference",
        "tfvae/inference.py",
        "        if remainder:\n",
        "        if False:\n",
    ),
    Bug(
        "runtime Gaussian draws with the variance as their spread",
        "likelihoods",
        "tfvae/likelihoods/gaussian_learned_scale.py",
        'loc + params["scale"] * rng.standard_normal(loc.shape)',
        'loc + params["scale"] ** 2 * rng.standard_normal(loc.shape)',
    ),
    Bug(
        "runtime mixture-prior draws ignore the component means",
        "priors",
        "tfvae/prior_families.py",
        "return locs[components] + temperature * scales[components] * noise",
        "return temperature * scales[components] * noise",
    ),
    Bug(
        "the convolutional encoder without its nonlinearity",
        "networks",
        "tfvae/networks.py",
        'padding="same",\n                activation=self.activation,\n'
        "                kernel_initializer=self._initializer(i),",
        'padding="same",\n                kernel_initializer=self._initializer(i),',
    ),
)
