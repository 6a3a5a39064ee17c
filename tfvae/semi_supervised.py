"""The semi-supervised VAE M2 (Kingma, Rezende, Mohamed and Welling, 2014).

The label y is a latent variable of the model p(x, y, z) = p(x|y, z) p(y) p(z), with p(y)
uniform over `num_classes` labels. Inference is q(y|x) q(z|x, y): a classifier and the
conditional encoder. A labelled example (x, y) is scored by the bound of the conditional
model at its label,

    L(x, y) = E_q(z|x,y)[log p(x|y, z)] + log p(y) - KL(q(z|x, y) || p(z)),

and an unlabelled one by summing y out exactly, enumerating every label:

    U(x) = sum_y q(y|x) L(x, y) + H(q(y|x)).

Training minimizes -L on labelled and -U on unlabelled examples, plus `alpha` times the
classification loss -log q(y|x) on labelled ones, so that q(y|x) learns from the labels
directly and not only through U. The networks are those of a conditional VAE with a
one-hot y of `num_classes` values (`condition=`), so conditional generation
`sample(n, condition=one_hot)` works as in a `tfvae.VAE` with `condition_shape`.

Data: batches `(x, labels)` with integer labels in [0, num_classes), and `UNLABELLED`
(-1) for an example whose label is unknown. `mixed_dataset` builds them so that every
batch holds labelled examples; `keep_labels` picks N labels per class.

Example:
    >>> vae = SemiSupervisedVAE(
    ...     tfvae.networks.mlp_encoder(), tfvae.networks.mlp_decoder(),
    ...     tfvae.networks.mlp_encoder(), latent_dim=50, num_classes=10)
    >>> vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    >>> vae.fit(mixed_dataset(x, keep_labels(y, per_class=10), batch_size=100), epochs=50)
    >>> vae.classify(x_test)  # (n,) labels
"""

import math

import tfvae._backend  # noqa: F401

import keras
import numpy as np
import tensorflow as tf

from tfvae import data, networks, validation
from tfvae.estimators import Surrogate
from tfvae.model import VAE

UNLABELLED = -1  # the label of an example whose label is unknown
# Metrics of the labelled examples of a batch: -log q(y|x) at the label, and whether
# q(y|x)'s most probable label is it.
LABELLED_METRICS = ("classification", "accuracy")


@keras.saving.register_keras_serializable(package="tfvae")
class SemiSupervisedVAE(VAE):
    """M2: a conditional VAE whose label is observed for some examples and summed out for
    the others, with a classifier q(y|x) trained as part of the model.

    Args:
        encoder: as `tfvae.VAE`'s; it is called with `condition=` the one-hot label
            `(batch_size, num_classes)`.
        decoder: as `tfvae.VAE`'s, with the one-hot label as `condition=`.
        classifier: a Keras layer mapping x `(batch_size, *data_shape)` to the logits of
            q(y|x), `(batch_size, num_classes)`. A `tfvae.networks` network is sized
            automatically.
        latent_dim: the size of z.
        num_classes: the number of labels K (>= 2).
        alpha: the weight of the classification loss -log q(y|x) of a labelled example
            (>= 0), added to its -L(x, y). Kingma et al. weigh it by 0.1 times the
            number of examples per label, for batches drawn at random. With batches in
            which a tenth are labelled (`mixed_dataset`), exploratory runs on the digits
            with 10 labels per class (one hidden layer of 128, not a controlled sweep)
            reached 84% and 90% test accuracy at 10 and 50, 94% at 200 and 500.
        **kwargs: the other arguments of `tfvae.VAE` (likelihood, objective, num_samples,
            beta, seed, ...), except `condition_shape` (the one-hot label's) and
            `gradient_estimator` (reparameterization, through the enumerated labels).

    Raises:
        ValueError: for an invalid argument, named with the value received.
    """

    def __init__(
        self, encoder, decoder, classifier, latent_dim, num_classes, alpha=200.0, **kwargs
    ):
        networks.check_layer(classifier, "classifier", returns="logits")
        num_classes = validation.positive_int(num_classes, "num_classes")
        if num_classes < 2:
            raise ValueError(
                f"Expected num_classes to be at least 2. Received: num_classes={num_classes}"
            )
        alpha = validation.non_negative_float(alpha, "alpha")
        for argument in ("condition_shape", "gradient_estimator"):
            if argument in kwargs:
                raise ValueError(
                    f"A SemiSupervisedVAE sets {argument} itself (the one-hot label; the "
                    f"reparameterization gradient). Received: {argument}={kwargs[argument]!r}"
                )
        super().__init__(encoder, decoder, latent_dim, condition_shape=(num_classes,), **kwargs)
        self.classifier = classifier
        self.num_classes = num_classes
        self.alpha = alpha
        # Over the labelled examples only (`_update_metrics`).
        self._trackers += [keras.metrics.Mean(name=name) for name in LABELLED_METRICS]

    def build(self, input_shape):
        """Builds the networks of `tfvae.VAE.build` and the classifier."""
        super().build(input_shape)
        if isinstance(self.classifier, networks.SizedNetwork):
            self.classifier.set_target_shape((self.num_classes,))
        if not self.classifier.built:
            self.classifier.build((None, *self.data_shape))

    # ------------------------------------------------------------------ the label

    def label_logits(self, x, training=False) -> tf.Tensor:
        """The logits of q(y|x), `(batch_size, num_classes)` float32."""
        if not self.built:
            self.build((None, *x.shape[1:]))
        logits = self.classifier(x, training=training)
        return tf.cast(tf.reshape(logits, [-1, self.num_classes]), tf.float32)

    def label_probabilities(self, x) -> tf.Tensor:
        """q(y|x), `(batch_size, num_classes)`: each row sums to 1."""
        return tf.nn.softmax(self.label_logits(tf.convert_to_tensor(x, tf.float32)))

    def classify(self, x) -> tf.Tensor:
        """The most probable label under q(y|x) of each x `(batch_size, *data_shape)`:
        `(batch_size,)` int32."""
        logits = self.label_logits(tf.convert_to_tensor(x, tf.float32))
        return tf.argmax(logits, axis=-1, output_type=tf.int32)

    # ------------------------------------------------------------------ the bound

    def label_terms(self, x, labels, seed, beta=None, training=False) -> dict[str, tf.Tensor]:
        """Per-example loss and bound of M2 for a batch of labelled and unlabelled x.

        Every example's conditional bound is computed at every label (K times the
        conditional VAE's work), then combined: at its label for a labelled example, in
        expectation under q(y|x) plus its entropy for an unlabelled one.

        Args:
            x: `(batch_size, *data_shape)` data in the likelihood's support.
            labels: `(batch_size,)` integers in [0, num_classes), or `UNLABELLED`.
            seed: `(2,)` stateless seed of the posterior noise.
            beta: the KL weight of z (default: `current_beta()`); the label's KL is not
                weighted.
            training: passed to the networks.

        Returns:
            `loss` (the objective's, plus alpha times the classification loss of a
            labelled example), `elbo` (L(x, y) or U(x)), `reconstruction` and `kl`
            (their parts, with kl = KL over z and y), and `classification` (-log q(y|x)
            at the label, 0 for an unlabelled example), each `(batch_size,)` nats, and
            `accuracy` (1 where q(y|x)'s most probable label is the label, else 0) and
            `labelled` (1 for a labelled example, else 0).
        """
        beta = self.current_beta() if beta is None else beta
        num_classes, batch_size = self.num_classes, tf.shape(x)[0]
        log_q_y = tf.nn.log_softmax(self.label_logits(x, training))  # [B, K]
        # Every example at every label, label-major: row k * B + b is (x_b, y = k).
        x_all = tf.tile(x, [num_classes, *[1] * (len(x.shape) - 1)])  # [K B, ...]
        y_all = tf.one_hot(tf.repeat(tf.range(num_classes), batch_size), num_classes)
        terms = self._latent_terms(x_all, self.num_samples, seed, training, y_all)

        def by_label(values):  # [K B] -> [B, K]
            return tf.transpose(tf.reshape(values, [num_classes, batch_size]))

        loss = by_label(self.objective.loss(terms, beta))  # -bound of log p(x|y), [B, K]
        reconstruction, kl = by_label(terms.reconstruction), by_label(terms.kl)
        labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
        labelled = labels >= 0  # [B]
        observed = tf.one_hot(tf.maximum(labels, 0), num_classes)  # [B, K]
        weights = tf.where(labelled[:, None], observed, tf.exp(log_q_y))  # over y: [B, K]
        # KL(q(y|x) || p(y)) with p(y) = 1/K: log K at a known label, log K - H(q) else.
        q_log_q = tf.reduce_sum(tf.exp(log_q_y) * log_q_y, axis=-1)
        label_kl = math.log(num_classes) + tf.where(labelled, 0.0, q_log_q)  # [B]
        classification = tf.where(labelled, -tf.reduce_sum(observed * log_q_y, axis=-1), 0.0)
        reconstruction = tf.reduce_sum(weights * reconstruction, axis=-1)
        kl = tf.reduce_sum(weights * kl, axis=-1) + label_kl
        return {
            "loss": tf.reduce_sum(weights * loss, axis=-1) + label_kl + self.alpha * classification,
            "elbo": reconstruction - kl,
            "reconstruction": reconstruction,
            "kl": kl,
            "classification": classification,
            "accuracy": tf.cast(
                labelled & (tf.argmax(log_q_y, axis=-1, output_type=tf.int32) == labels), tf.float32
            ),
            "labelled": tf.cast(labelled, tf.float32),
        }

    def surrogate(
        self, x, seed, beta=None, condition=None, estimator=None, baseline=None, num_samples=None
    ):
        """The training step's metrics and loss (`label_terms`, `training=True`); the
        batch's `condition` is its labels. Only the model's own estimator is taken."""
        if estimator is not None or num_samples is not None:
            raise ValueError(
                "A SemiSupervisedVAE is trained by reparameterization with its own "
                f"num_samples. Received: estimator={estimator!r}, num_samples={num_samples!r}"
            )
        metrics = self.label_terms(x, condition, seed, beta, training=True)
        return metrics, Surrogate(loss=metrics["loss"])

    def log_likelihood(
        self, x, num_samples=5000, chunk_size=500, seed=None, condition=None
    ) -> tf.Tensor:
        """Importance-weighted estimate of log p(x), the label summed out exactly:
        log sum_y p(y) p(x|y), each p(x|y) estimated as `tfvae.VAE.log_likelihood` does
        (with the same seed); given one-hot labels `condition`, log p(x|y) instead.
        `(batch_size,)` nats."""
        if condition is not None:
            return super().log_likelihood(x, num_samples, chunk_size, seed, condition)
        seed = self._seed_or_next(seed)
        x = tf.convert_to_tensor(x, tf.float32)
        per_label = [
            super(SemiSupervisedVAE, self).log_likelihood(
                x,
                num_samples,
                chunk_size,
                seed,
                tf.one_hot(tf.fill([tf.shape(x)[0]], k), self.num_classes),
            )
            for k in range(self.num_classes)
        ]
        return tf.reduce_logsumexp(tf.stack(per_label, axis=-1), axis=-1) - math.log(
            self.num_classes
        )

    def _per_example_metrics(self, x, seed, training, condition, beta):
        return self.label_terms(x, condition, seed, beta, training)

    def _update_metrics(self, per_example, sample_weight):
        """The trackers' means; `LABELLED_METRICS` over the labelled examples only."""
        labelled = per_example["labelled"]
        results = {}
        for tracker in self._trackers:
            weight = sample_weight
            if tracker.name in LABELLED_METRICS:
                weight = labelled if sample_weight is None else labelled * sample_weight
            tracker.update_state(per_example[tracker.name], sample_weight=weight)
            results[tracker.name] = tracker.result()
        return results

    def call(self, inputs, training=False):
        """The reconstruction mean at the most probable label and its posterior mean."""
        x = inputs[0] if isinstance(inputs, tuple | list) else inputs
        label = tf.one_hot(tf.argmax(self.label_logits(x, training), axis=-1), self.num_classes)
        z = self.encode(x, label, training=training).mean()
        return self.decode(z, label, training=training).mean()

    # -------------------------------------------------------------- serialization

    def get_config(self):
        config = super().get_config()
        for key in ("condition_shape", "gradient_estimator"):
            del config[key]
        config.update(
            classifier=keras.saving.serialize_keras_object(self.classifier),
            num_classes=self.num_classes,
            alpha=self.alpha,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["classifier"] = keras.saving.deserialize_keras_object(config["classifier"])
        return super().from_config(config)


def keep_labels(labels, per_class: int, seed: int = 0) -> np.ndarray:
    """`labels` with all but `per_class` labels of each class set to `UNLABELLED`.

    Args:
        labels: `(n,)` integer labels in [0, K).
        per_class: labels kept per class, chosen at random with `seed`.
        seed: an integer seed.

    Returns:
        `(n,)` int64 labels, `UNLABELLED` where dropped.

    Raises:
        ValueError: a class has fewer than `per_class` examples.
    """
    labels = np.asarray(labels, dtype=np.int64)
    per_class = validation.positive_int(per_class, "per_class")
    rng = np.random.default_rng(validation.seed(seed))
    kept = np.full_like(labels, UNLABELLED)
    for label in np.unique(labels):
        (members,) = np.nonzero(labels == label)
        if len(members) < per_class:
            raise ValueError(
                f"Expected at least per_class={per_class} examples of each class. "
                f"Received: {len(members)} of class {label}"
            )
        chosen = rng.choice(members, per_class, replace=False)
        kept[chosen] = label
    return kept


def mixed_order(labels, labelled_fraction: float = 0.1) -> np.ndarray:
    """The examples of one epoch in which labelled ones make up about `labelled_fraction`:
    every unlabelled example once, then the labelled ones repeated as often as that takes.

    Args:
        labels: `(n,)` labels, `UNLABELLED` where unknown (see `keep_labels`).
        labelled_fraction: the share of labelled examples, in (0, 1).

    Returns:
        `(m,)` int64 indices into `labels`, unlabelled first (shuffle them per epoch).

    Raises:
        ValueError: for no labelled or no unlabelled examples, or a fraction outside (0, 1).
    """
    labels = np.asarray(labels, dtype=np.int64)
    if not 0.0 < labelled_fraction < 1.0:
        raise ValueError(
            "Expected labelled_fraction in (0, 1). "
            f"Received: labelled_fraction={labelled_fraction!r}"
        )
    labelled = np.nonzero(labels != UNLABELLED)[0]
    unlabelled = np.nonzero(labels == UNLABELLED)[0]
    if not len(labelled) or not len(unlabelled):
        raise ValueError(
            "Expected both labelled and unlabelled examples. Received: "
            f"{len(labelled)} labelled and {len(unlabelled)} unlabelled"
        )
    wanted = labelled_fraction / (1.0 - labelled_fraction) * len(unlabelled)
    repeats = max(1, round(wanted / len(labelled)))
    return np.concatenate([unlabelled, np.tile(labelled, repeats)])


def mixed_dataset(x, labels, batch_size: int, labelled_fraction: float = 0.1, seed: int = 0):
    """A `tf.data.Dataset` of batches `(x, labels)`, shuffled anew every epoch, in which
    labelled examples make up about `labelled_fraction` of each batch (`mixed_order`).

    Args:
        x: `(n, *data_shape)` model input.
        labels: `(n,)` labels, `UNLABELLED` where unknown (see `keep_labels`).
        batch_size: examples per batch.
        labelled_fraction: the share of labelled examples per batch, in (0, 1).
        seed: the shuffle's seed.

    Raises:
        ValueError: as `mixed_order`.
    """
    order = mixed_order(labels, labelled_fraction)
    labels = np.asarray(labels, dtype=np.int64)
    return data.make_dataset(np.asarray(x)[order], labels[order], batch_size=batch_size, seed=seed)
