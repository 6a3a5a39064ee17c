"""Small helpers shared by the tests: family parameters, reference distributions of draws,
trees of user files, and IDX files."""

import hashlib
import struct

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


def tree_snapshot(folder) -> dict:
    """Every entry under `folder`: a file's SHA-256, a link's target, or "folder"."""
    entries = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            entries[key] = f"-> {path.readlink()}"
        elif path.is_file():
            entries[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            entries[key] = "folder"
    return entries


def user_files(folder):
    """Makes `folder` with a user's files in it (notes.txt, sub/thesis.tex); returns it."""
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("my notes")
    (folder / "sub").mkdir()
    (folder / "sub" / "thesis.tex").write_text(r"\chapter{One}")
    return folder


# ------------------------------------------------ draws against their distribution


def sigmoid(logits):
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


def chi_square_pvalue(draws, values, probabilities):
    """Pearson's chi-squared test of integer draws against a pmf on `values`, with
    adjacent cells pooled until each expects at least 5 draws."""
    from scipy import stats

    observed = np.array([np.count_nonzero(draws == v) for v in values], dtype=float)
    assert observed.sum() == len(draws), "a draw fell outside the support"
    expected = probabilities * len(draws)
    cells_observed, cells_expected, o, e = [], [], 0.0, 0.0
    for count, mean in zip(observed, expected, strict=True):
        o, e = o + count, e + mean
        if e >= 5:
            cells_observed.append(o)
            cells_expected.append(e)
            o = e = 0.0
    if cells_expected:
        cells_observed[-1] += o
        cells_expected[-1] += e
    if len(cells_expected) < 2:  # (nearly) all the mass in one cell: nothing to test
        return 1.0
    cells_expected = np.array(cells_expected) * sum(cells_observed) / sum(cells_expected)
    return stats.chisquare(cells_observed, cells_expected).pvalue


def continuous_bernoulli_cdf(x, logit):
    """The continuous Bernoulli's CDF, closed form (Loaiza-Ganem and Cunningham 2019)."""
    lam = sigmoid(logit)
    if abs(logit) < 1e-4:
        return x
    return (lam**x * (1 - lam) ** (1 - x) + lam - 1) / (2 * lam - 1)


def draw_reference(family, params, index):
    """(p-value function of one value's draws, their variance) under p(x|z), from the
    family's named `params` at flat `index`, by scipy and closed forms: an independent
    check of `family.numpy_sample`.

    Args:
        family: a `tfvae.likelihoods` family (its constants: scale, total_count, levels).
        params: {name: array}, each `(num_values, *event)` over the flattened values.
        index: which value.
    """
    from scipy import stats

    from tfvae import likelihoods

    name = likelihoods.registry.name_of(family)
    if name in ("gaussian", "gaussian_learned_scale"):
        loc = float(params["loc"][index])
        scale = family.scale if name == "gaussian" else float(params["scale"][index])
        return (lambda d: stats.kstest(d, stats.norm(loc, scale).cdf).pvalue), scale**2
    if name == "continuous_bernoulli":
        logit = float(params["logits"][index])
        grid = np.linspace(0, 1, 20001)
        density = np.gradient(continuous_bernoulli_cdf(grid, logit), grid)
        mean = np.trapezoid(grid * density, grid)
        variance = np.trapezoid(grid**2 * density, grid) - mean**2
        return (lambda d: stats.kstest(d, lambda x: continuous_bernoulli_cdf(x, logit)).pvalue), (
            variance
        )
    if name == "categorical":
        logits = np.asarray(params["logits"][index], dtype=np.float64)
        probabilities = np.exp(logits - logits.max())
        probabilities /= probabilities.sum()
        values = np.arange(len(probabilities))
    else:  # bernoulli and binomial: binomial pmfs of their trials
        trials = 1 if name == "bernoulli" else family.total_count
        values = np.arange(trials + 1)
        probabilities = stats.binom(trials, sigmoid(params["logits"][index])).pmf(values)
    mean = np.sum(values * probabilities)
    variance = np.sum(values**2 * probabilities) - mean**2
    return (lambda d: chi_square_pvalue(d, values, probabilities)), variance


def mixture_marginal(params, dimension, temperature):
    """(CDF, variance) of one dimension of a mixture prior at `temperature`, from its
    `logits` (K,), `locs` and `scales` (K, latent_dim), by scipy's normal CDFs."""
    from scipy import stats

    weights = np.exp(np.asarray(params["logits"]) - np.max(params["logits"]))
    weights /= weights.sum()
    locs = np.asarray(params["locs"])[:, dimension]
    scales = temperature * np.asarray(params["scales"])[:, dimension]
    mean = np.sum(weights * locs)
    variance = np.sum(weights * (scales**2 + locs**2)) - mean**2

    def cdf(z):
        return np.sum(weights * stats.norm(locs, scales).cdf(np.asarray(z)[..., None]), axis=-1)

    return cdf, variance


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """An IDX file written independently of the reader: header, dims, big-endian data."""
    header = struct.pack(">HBB", 0, type_code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()
