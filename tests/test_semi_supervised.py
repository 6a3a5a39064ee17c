"""The semi-supervised VAE M2: its bound against the exact conditional linear-Gaussian
model, and on the digits, its classifier against one trained on the labels alone."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import special, stats

import tfvae
from tests.test_model import (
    CONDITION_DIM,
    SIGMA,
    ConditionalLinearGaussian,
    FixedAffine,
)
from tfvae import semi_supervised
from tfvae.semi_supervised import UNLABELLED, SemiSupervisedVAE

K = CONDITION_DIM  # labels of the linear model


class ExactM2(ConditionalLinearGaussian):
    """The conditional linear-Gaussian model with a uniform label: log p(x|y) =
    log N(x; b + V y, C) with C = W W^T + sigma^2 I shares C across labels, so
    p(y|x) = softmax_k((x - b)^T C^-1 V_k - V_k^T C^-1 V_k / 2) is linear in x: the exact
    q(y|x) is an affine classifier."""

    def log_conditional(self, x):
        """`(n, K)` log p(x|y = k)."""
        covariance = self.W @ self.W.T + SIGMA**2 * np.eye(len(self.b))
        return np.stack(
            [
                stats.multivariate_normal(self.b + self.V[:, k], covariance).logpdf(x)
                for k in range(K)
            ],
            axis=-1,
        )

    def exact_classifier(self, scale=1.0):
        """Logits `scale` times the exact p(y|x)'s (scale 0: uniform q(y|x))."""
        covariance = self.W @ self.W.T + SIGMA**2 * np.eye(len(self.b))
        gain = np.linalg.solve(covariance, self.V)  # C^-1 V, [D, K]
        bias = -self.b @ gain - 0.5 * np.einsum("dk,dk->k", self.V, gain)
        return FixedAffine(scale * gain, scale * bias)

    def m2(self, classifier_scale=1.0, **kwargs):
        vae = self.exact_vae()
        return SemiSupervisedVAE(
            vae.encoder,
            vae.decoder,
            self.exact_classifier(classifier_scale),
            latent_dim=vae.latent_dim,
            num_classes=K,
            likelihood=vae.likelihood,
            posterior="full_covariance",
            kl="mc",  # every draw's log-weight is exact; an analytic KL is not per draw
            seed=0,
            **kwargs,
        )


@pytest.fixture(scope="module")
def exact():
    model = ExactM2()
    x, y = model.data(12)
    return model, x, np.argmax(y, axis=-1)


def test_an_unlabelled_bound_with_the_exact_classifier_is_log_p_x(exact):
    model, x, _ = exact
    vae = model.m2()
    terms = vae.label_terms(x, np.full(len(x), UNLABELLED), tf.constant([1, 2]))
    log_p_x = special.logsumexp(model.log_conditional(x), axis=-1) - np.log(K)
    np.testing.assert_allclose(terms["elbo"].numpy(), log_p_x, atol=1e-3)
    np.testing.assert_allclose(terms["loss"].numpy(), -log_p_x, atol=1e-3)
    np.testing.assert_array_equal(terms["classification"].numpy(), 0.0)
    # Summing the label out by importance sampling gives the same log p(x).
    np.testing.assert_allclose(vae.log_likelihood(x, 16, seed=0).numpy(), log_p_x, atol=1e-3)


@pytest.mark.parametrize("scale", [0.0, 0.5])
def test_an_unlabelled_bound_is_the_expected_bound_plus_the_entropy(exact, scale):
    """U(x) = sum_y q(y|x) (log p(x|y) + log p(y)) + H(q), below log p(x) by
    KL(q(y|x) || p(y|x)), for a classifier off the exact one."""
    model, x, _ = exact
    vae = model.m2(classifier_scale=scale)
    terms = vae.label_terms(x, np.full(len(x), UNLABELLED), tf.constant([1, 2]))
    log_q = special.log_softmax(vae.label_logits(x).numpy().astype(np.float64), axis=-1)
    log_joint = model.log_conditional(x) - np.log(K)
    expected = np.sum(np.exp(log_q) * (log_joint - log_q), axis=-1)
    np.testing.assert_allclose(terms["elbo"].numpy(), expected, atol=1e-3)
    gap = special.logsumexp(log_joint, axis=-1) - expected
    assert np.all(gap > 1e-3)


def test_a_labelled_bound_is_the_conditional_bound_at_its_label(exact):
    model, x, y = exact
    vae = model.m2(classifier_scale=0.5, alpha=7.0)
    labels = y.copy()
    labels[::2] = UNLABELLED  # a mixed batch: each example is scored by its own kind
    terms = {k: v.numpy() for k, v in vae.label_terms(x, labels, tf.constant([3, 4])).items()}
    known = labels != UNLABELLED
    log_p_x_given_y = model.log_conditional(x)[np.arange(len(x)), y]
    np.testing.assert_allclose(
        terms["elbo"][known], (log_p_x_given_y - np.log(K))[known], atol=1e-3
    )
    log_q = special.log_softmax(vae.label_logits(x).numpy().astype(np.float64), axis=-1)
    classification = -log_q[np.arange(len(x)), y]
    np.testing.assert_allclose(terms["classification"][known], classification[known], rtol=1e-5)
    np.testing.assert_allclose(
        terms["loss"][known], (-terms["elbo"] + 7.0 * classification)[known], atol=1e-3
    )
    np.testing.assert_allclose(terms["loss"][~known], -terms["elbo"][~known], atol=1e-3)
    np.testing.assert_allclose(terms["elbo"], terms["reconstruction"] - terms["kl"], atol=1e-4)


def test_classify_takes_the_most_probable_label(exact):
    model, x, _ = exact
    vae = model.m2()
    expected = np.argmax(model.log_conditional(x), axis=-1)  # the exact p(y|x)'s mode
    np.testing.assert_array_equal(vae.classify(x).numpy(), expected)
    probabilities = vae.label_probabilities(x).numpy()
    np.testing.assert_allclose(
        probabilities, special.softmax(model.log_conditional(x), -1), atol=1e-5
    )


def test_keep_labels_keeps_per_class_labels_of_each_class():
    y = np.repeat(np.arange(4), 30)
    kept = semi_supervised.keep_labels(y, per_class=5, seed=3)
    assert np.array_equal(np.bincount(kept[kept != UNLABELLED]), [5, 5, 5, 5])
    np.testing.assert_array_equal(kept[kept != UNLABELLED], y[kept != UNLABELLED])
    assert not np.array_equal(kept, semi_supervised.keep_labels(y, per_class=5, seed=4))
    with pytest.raises(ValueError, match=r"at least per_class=31 .* Received: 30 of class 0"):
        semi_supervised.keep_labels(y, per_class=31)


def test_mixed_dataset_repeats_the_labelled_examples_in_every_epoch():
    labels = np.full(900, UNLABELLED)
    labels[:20] = np.arange(20) % 4
    x = np.arange(900, dtype=np.float32)[:, None]
    batches = list(semi_supervised.mixed_dataset(x, labels, 100, labelled_fraction=0.2))
    seen_x = np.concatenate([b[0].numpy()[:, 0] for b in batches])
    seen_labels = np.concatenate([b[1].numpy() for b in batches])
    # Every unlabelled example once; the 20 labelled ones 11 times (220 of 1100 = 0.2).
    assert np.array_equal(np.sort(seen_x[seen_labels == UNLABELLED]), np.arange(20, 900))
    assert np.array_equal(np.bincount(seen_x[seen_labels != UNLABELLED].astype(int)), [11] * 20)
    for fraction in (0.0, 1.0):
        with pytest.raises(ValueError, match="labelled_fraction in"):
            semi_supervised.mixed_dataset(x, labels, 100, labelled_fraction=fraction)
    with pytest.raises(ValueError, match="0 labelled"):
        semi_supervised.mixed_dataset(x, np.full(900, UNLABELLED), 100)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_classes": 1}, r"num_classes to be at least 2\. Received: num_classes=1"),
        ({"alpha": -1.0}, r"Received: alpha=-1"),
        ({"condition_shape": (3,)}, r"sets condition_shape itself"),
        ({"gradient_estimator": "dreg"}, r"sets gradient_estimator itself"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs, match):
    arguments = {"num_classes": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        SemiSupervisedVAE(
            tfvae.networks.mlp_encoder((4,)),
            tfvae.networks.mlp_decoder((4,)),
            tfvae.networks.mlp_encoder((4,)),
            latent_dim=2,
            **arguments,
        )


# ------------------------------------------------------------------ on the 8x8 digits


def _classifier(width=256):
    """The classifier of both contenders: rescaled counts, one hidden layer."""
    return keras.Sequential(
        [
            keras.layers.Rescaling(1 / 16),
            keras.layers.Flatten(),
            keras.layers.Dense(width, activation="relu"),
            keras.layers.Dense(10),
        ]
    )


@pytest.fixture(scope="module")
def digits_m2():
    x, y = tfvae.data.load("digits", split="train")
    x_test, y_test = tfvae.data.load("digits", split="test")
    x, x_test = x.astype("float32"), x_test.astype("float32")
    labels = semi_supervised.keep_labels(y, per_class=10, seed=0)
    keras.utils.set_random_seed(0)
    vae = SemiSupervisedVAE(
        tfvae.networks.mlp_encoder((256,), seed=0),
        tfvae.networks.mlp_decoder((256,), seed=1),
        _classifier(),
        latent_dim=2,
        num_classes=10,
        alpha=200.0,
        likelihood=tfvae.likelihoods.Binomial(total_count=16),
        seed=0,
    )
    vae.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=True)
    dataset = semi_supervised.mixed_dataset(x, labels, 100, labelled_fraction=0.1, seed=0)
    vae.fit(dataset, epochs=30, shuffle=False, verbose=0)
    return vae, (x, y, labels), (x_test, y_test)


@pytest.mark.slow
def test_m2_with_ten_labels_per_class_beats_its_classifier_on_the_labels_alone(digits_m2):
    vae, (x, y, labels), (x_test, y_test) = digits_m2
    keras.utils.set_random_seed(0)
    alone = _classifier()
    alone.compile(
        keras.optimizers.Adam(3e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    labelled = labels != UNLABELLED
    alone.fit(x[labelled], y[labelled], epochs=200, batch_size=100, verbose=0)

    def accuracy(predict, inputs, truth):
        return float(np.mean(np.asarray(predict(inputs)) == truth))

    m2 = {
        "test": accuracy(vae.classify, x_test, y_test),
        "unlabelled": accuracy(vae.classify, x[~labelled], y[~labelled]),
    }
    baseline = {
        "test": accuracy(lambda v: alone.predict(v, verbose=0).argmax(-1), x_test, y_test),
        "unlabelled": accuracy(
            lambda v: alone.predict(v, verbose=0).argmax(-1), x[~labelled], y[~labelled]
        ),
    }
    print(json.dumps({"m2": m2, "labels_alone": baseline}))
    # Measured (x86-64, 2 cores): M2 0.949 test, 0.934 on the 1,400 unlabelled training
    # digits; the classifier on the 100 labels alone 0.923 and 0.904. With the labels of
    # keep_labels(seed=1): 0.956 and 0.952 against 0.906 and 0.902.
    assert m2["test"] > baseline["test"]
    assert m2["unlabelled"] > baseline["unlabelled"] + 0.02  # 1,400 digits: se ~0.007


@pytest.mark.slow
def test_conditional_samples_of_m2_are_recognized_by_an_independent_classifier(digits_m2):
    from sklearn.linear_model import LogisticRegression

    vae, (x, y, _), (x_test, y_test) = digits_m2
    judge = LogisticRegression(max_iter=2000).fit(x.reshape(len(x), -1) / 16, y)  # every label
    assert judge.score(x_test.reshape(len(x_test), -1) / 16, y_test) > 0.9
    wanted = np.repeat(np.arange(10), 100)
    draws = vae.sample(1000, seed=0, condition=np.eye(10, dtype="float32")[wanted]).numpy()
    recognized = float(np.mean(judge.predict(draws.reshape(1000, -1) / 16) == wanted))
    print(json.dumps({"recognized": recognized}))
    assert recognized > 0.8  # chance: 0.1; measured 0.999


@pytest.mark.slow
def test_m2_saves_and_loads_with_identical_outputs(digits_m2, tmp_path):
    vae, (x, _, labels), _ = digits_m2
    vae.save(tmp_path / "m2.keras")
    loaded = keras.saving.load_model(tmp_path / "m2.keras")
    assert isinstance(loaded, SemiSupervisedVAE)
    assert (loaded.num_classes, loaded.alpha) == (10, 200.0)
    np.testing.assert_array_equal(loaded.classify(x[:50]).numpy(), vae.classify(x[:50]).numpy())
    seed = tf.constant([5, 6])
    for key, value in vae.label_terms(x[:20], labels[:20], seed).items():
        np.testing.assert_array_equal(
            loaded.label_terms(x[:20], labels[:20], seed)[key].numpy(), value.numpy()
        )
    np.testing.assert_array_equal(
        loaded.log_likelihood(x[:4], 20, seed=1).numpy(),
        vae.log_likelihood(x[:4], 20, seed=1).numpy(),
    )
