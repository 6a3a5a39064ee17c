"""The options users choose: the training run's configuration, and the names the other
jobs accept.

`TrainConfig` is the one declaration of every training option. Each field carries, in
its `dataclasses.field` metadata, how it appears on the command line (`Option`: help,
flag, metavar, choices); `tfvae.cli` derives the `tfvae train` options from the fields
(type from the annotation, default from the field's default), so a new option is one new
field. Choices are callables read when the parser is built and when a config is checked,
so a likelihood registered later is listed by `--help` and accepted.

This module imports neither TensorFlow nor Keras (the registries it reads are numpy-only);
the command line builds its parser from it without loading them. Constructing a
`TrainConfig` checks `activation` against Keras, which imports Keras then.

Example:
    >>> import dataclasses
    >>> from tfvae.config import OPTION, TrainConfig
    >>> dataclasses.fields(TrainConfig)[0].metadata[OPTION].help
    'digits (embedded), mnist, fashion_mnist, or a .npy/.npz file or folder of PNG images'
"""

import dataclasses
import numbers
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tfvae import estimators, likelihoods, objectives, validation
from tfvae._lazy import LazyModule

keras = LazyModule("keras")  # imported by the first TrainConfig, not by this module

ARCHITECTURES = ("mlp", "conv")
LEARNING_RATE_SCHEDULES = ("constant", "cosine")

# The names the other jobs accept, declared here so that the command line lists them
# without importing the TensorFlow modules that use them.
PLOT_KINDS = ("samples", "reconstructions", "interpolation", "manifold", "latent-scatter")
MASKS = ("bottom-half", "right-half", "random-half")  # tfvae.workflow.missing_mask
IMPUTATION_METHODS = ("metropolis_within_gibbs", "pseudo_gibbs")  # tfvae.inference.impute
DISTRIBUTE = ("none", "mirrored", "multi-worker")  # tfvae.distribute.strategy
# `--xla` choices and the `VAE.compile(jit_compile=...)` value each one means.
XLA = {"auto": "auto", "on": True, "off": False}

# The metadata key under which a field declares its command-line option.
OPTION = "tfvae.option"


@dataclasses.dataclass(frozen=True)
class Option:
    """How a configuration field appears on the command line.

    The option's type is the field's annotation (`int`, `float`, `str`, `bool`,
    `tuple[int, ...]`, each optionally `| None`) and its default is the field's default.

    Attributes:
        help: the option's help text; the default is appended unless it is None.
        flag: the option string (default: `--` and the field name with dashes). A `bool`
            field is a switch: its flag sets True when the default is False, and False
            when the default is True (default `--no-` and the name).
        metavar: the value's name in the help (default: argparse's).
        choices: the accepted values, or a callable returning them, read when the parser
            is built and when a config is checked (`likelihoods.registry.names`).
        exclusive: the name of a group of options of which at most one may be given.
        switches: more flags, each setting the field to a value without an argument,
            `{flag: value}` (`{"--no-xla": "off"}`); they exclude the main flag.
    """

    help: str
    flag: str | None = None
    metavar: str | None = None
    choices: Sequence[str] | Callable[[], Sequence[str]] | None = None
    exclusive: str | None = None
    switches: Mapping[str, object] = dataclasses.field(default_factory=dict)

    def names(self) -> list[str] | None:
        """The accepted values now, or None when any value of the type is accepted."""
        if self.choices is None:
            return None
        return list(self.choices() if callable(self.choices) else self.choices)


def option(default, help: str, **kwargs):
    """A dataclass field with `default` and its command-line declaration.

    Args:
        default: the field's default (an immutable value).
        help: the option's help text.
        **kwargs: the other `Option` attributes (`flag`, `metavar`, `choices`,
            `exclusive`).

    Returns:
        A `dataclasses.field` whose metadata holds the `Option` under `OPTION`.

    Example:
        >>> @dataclasses.dataclass(frozen=True)
        ... class MyConfig(TrainConfig):
        ...     warmup_steps: int = option(0, "steps of learning-rate warm-up")
    """
    return dataclasses.field(default=default, metadata={OPTION: Option(help, **kwargs)})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run. Fields left None take the dataset recipe's default.

    `objective` and `num_samples` are `tfvae.VAE`'s (e.g. `"iwae"` with 5 samples);
    `activation` is the hidden layers' (MLP and conv); `lr_schedule="cosine"` decays the
    Adam learning rate from `learning_rate` to 0 along a half cosine over all steps.

    The KL weight of the `"elbo"` objective is `beta`, reached by a linear warm-up over
    the first `kl_warmup_epochs` epochs, or by `kl_cycles` cyclical ramps over the run
    (`tfvae.schedules`); `free_bits` is the free-bits floor in nats per latent dimension
    (`tfvae.objectives.ELBO`).

    Every field declares its `tfvae train` option (`Option`); the choices of
    `likelihood`, `objective`, `architecture` and `lr_schedule` are checked against
    those declarations, so against the registries for the first two.

    Raises:
        ValueError: for a value out of range or not among the choices, an unknown
            Keras activation, two KL schedules, or KL options with an objective other
            than `"elbo"`.

    Example:
        >>> TrainConfig(epochs=5, likelihood="bernoulli", hidden=(64,)).batch_size
        100
    """

    dataset: str = option(
        "digits",
        "digits (embedded), mnist, fashion_mnist, or a .npy/.npz file or folder of PNG images",
    )
    data_dir: str | None = option(
        None, "folder with the dataset's files (else $TFVAE_DATA_DIR, the Keras cache)"
    )
    epochs: int | None = option(None, "passes over the training set")
    batch_size: int = option(100, "examples per step")
    latent_dim: int | None = option(None, "size of the latent z")
    latent_dims: tuple[int, ...] | None = option(
        None,
        "a hierarchy of latents, z1 first: 100,50 is p(x|z1) p(z1|z2) p(z2) with z1 of 100 "
        "and z2 of 50 (Burda et al. 2015); the first is --latent-dim",
        metavar="DIMS",
    )
    likelihood: str | None = option(None, "p(x|z) family", choices=likelihoods.registry.names)
    architecture: str | None = option(None, "encoder/decoder kind", choices=ARCHITECTURES)
    conditional: bool = option(
        False,
        "condition both networks on the one-hot label: p(x|z, y) q(z|x, y) (Sohn et al. 2015)",
    )
    labels_per_class: int | None = option(
        None,
        "semi-supervised M2 (Kingma et al. 2014): keep N labels of each class, the rest "
        "unlabelled, and train a classifier q(y|x) with the model",
        metavar="N",
    )
    alpha: float = option(
        200.0, "weight of M2's classification loss on labelled examples (--labels-per-class)"
    )
    hidden: tuple[int, ...] | None = option(
        None,
        "MLP hidden layer widths, e.g. 500,500 ('' for a single linear layer)",
        metavar="WIDTHS",
    )
    learning_rate: float = option(1e-3, "Adam learning rate", flag="--lr")
    lr_schedule: str = option(
        "constant",
        "constant, or cosine decay to 0 over all steps",
        choices=LEARNING_RATE_SCHEDULES,
    )
    objective: str = option("elbo", "training bound", choices=objectives.registry.names)
    num_samples: int = option(1, "latent samples per example and step")
    gradient_estimator: str = option(
        "reparameterization",
        "how the gradient through z ~ q(z|x) is estimated: score_function needs the elbo "
        "objective, dreg the iwae one",
        choices=estimators.registry.names,
    )
    activation: str = option("relu", "hidden activation, a Keras activation name")
    beta: float = option(1.0, "KL weight of the elbo objective")
    kl_warmup_epochs: int | None = option(
        None,
        "raise the KL weight linearly from 0 to --beta over the first E epochs",
        metavar="E",
        exclusive="kl_schedule",
    )
    kl_cycles: int | None = option(
        None,
        "cyclical KL annealing: M cycles over the run, each rising from 0 to --beta over "
        "its first half (Fu et al. 2019)",
        metavar="M",
        exclusive="kl_schedule",
    )
    free_bits: float = option(
        0.0,
        "free bits: a floor on each latent dimension's batch-mean KL, 0 for none",
        metavar="NATS",
    )
    seed: int = option(0, f"seed of weights, noise and data, in [0, {validation.MAX_SEED}]")
    out: str | None = option(
        None,
        "output folder (saved_models/<dataset>); must be new, empty, or a model folder "
        "tfvae wrote, which is replaced (its SavedModel versions are kept)",
    )
    tensorboard: str | None = option(None, "write TensorBoard logs to DIR", metavar="DIR")
    jit_compile: str = option(
        "auto",
        "compile the train step with XLA: auto takes the faster path for the device and the "
        "networks (XLA on a GPU; on a CPU, for the MLP and not the conv nets)",
        flag="--xla",
        choices=tuple(XLA),
        switches={"--no-xla": "off"},
    )
    distribute: str = option(
        "none",
        "train on one device, on every local GPU (mirrored), or on the workers TF_CONFIG "
        "names (multi-worker); --batch-size is the global batch",
        choices=DISTRIBUTE,
    )

    def __post_init__(self):
        object.__setattr__(self, "jit_compile", xla_choice(self.jit_compile))
        for name in ("epochs", "latent_dim", "kl_warmup_epochs", "kl_cycles", "labels_per_class"):
            if getattr(self, name) is not None:
                validation.positive_int(getattr(self, name), name)
        validation.positive_int(self.batch_size, "batch_size")
        validation.positive_int(self.num_samples, "num_samples")
        validation.positive_float(self.learning_rate, "learning_rate")
        validation.non_negative_float(self.beta, "beta")
        validation.non_negative_float(self.free_bits, "free_bits")
        validation.non_negative_float(self.alpha, "alpha")
        if self.labels_per_class is not None and self.gradient_estimator != "reparameterization":
            raise ValueError(
                "Expected gradient_estimator='reparameterization' with labels_per_class: M2 "
                "sums the label out through the reparameterized bound. Received: "
                f"gradient_estimator={self.gradient_estimator!r}"
            )
        if self.conditional and self.labels_per_class is not None:
            raise ValueError(
                "Expected one of conditional (every label known) and labels_per_class (M2, "
                f"some labels known). Received: conditional=True, "
                f"labels_per_class={self.labels_per_class}"
            )
        validation.seed(self.seed, "seed")
        if self.hidden is not None:
            _check_widths(self.hidden)
        if self.latent_dims is not None:
            _check_latent_dims(self.latent_dims, self.latent_dim)
            object.__setattr__(self, "latent_dims", tuple(self.latent_dims))  # JSON: a list
        for field in dataclasses.fields(self):
            declared = field.metadata.get(OPTION)
            value = getattr(self, field.name)
            if declared is not None and declared.choices is not None and value is not None:
                validation.one_of(value, declared.names(), field.name)
        if self.kl_warmup_epochs is not None and self.kl_cycles is not None:
            raise ValueError(
                "Expected at most one KL schedule. Received: "
                f"kl_warmup_epochs={self.kl_warmup_epochs}, kl_cycles={self.kl_cycles}"
            )
        kl_options = {"beta": self.beta != 1.0, "free_bits": self.free_bits > 0}
        kl_options.update(kl_warmup_epochs=self.kl_warmup_epochs, kl_cycles=self.kl_cycles)
        used = [name for name, value in kl_options.items() if value]
        if self.objective != "elbo" and used:
            raise ValueError(
                f"Expected objective='elbo' with the KL options {used}: the "
                f"{self.objective!r} objective does not weight the KL. Received: "
                f"objective={self.objective!r}"
            )
        _check_activation(self.activation)
        objective = objectives.ELBO(self.free_bits) if self.objective == "elbo" else None
        estimators.get(self.gradient_estimator).check(
            objective or objectives.get(self.objective), "analytic"
        )

    def resolve(self, recipe) -> "TrainConfig":
        """This config with every None field filled in from `recipe` (a
        `tfvae.workflow.Recipe`), and `out` the folder `tfvae.workflow.train` writes."""
        return dataclasses.replace(
            self,
            epochs=self.epochs or recipe.epochs,
            latent_dim=self.latent_dim or (self.latent_dims or [recipe.latent_dim])[0],
            likelihood=self.likelihood or recipe.likelihood,
            architecture=self.architecture or recipe.architecture,
            hidden=tuple(self.hidden if self.hidden is not None else recipe.hidden),
            out=str(self.out_path()),
        )

    def out_path(self) -> Path:
        """The model folder: `out`, else `saved_models/<dataset name>`."""
        return Path(self.out or Path("saved_models") / Path(self.dataset).stem)


def xla_choice(jit_compile) -> str:
    """`jit_compile` as an `--xla` choice: "auto", "on" and "off" stay; a boolean (what
    tfvae 0.1 saved, and what Python callers may pass) becomes "on" or "off"."""
    if isinstance(jit_compile, bool):
        return "on" if jit_compile else "off"
    return jit_compile


def upgraded(fields: dict) -> dict:
    """`TrainConfig` fields as an earlier tfvae saved them (a model folder's config.json,
    a checkpoint's run), in today's form (`xla_choice`)."""
    if "jit_compile" not in fields:
        return fields
    return {**fields, "jit_compile": xla_choice(fields["jit_compile"])}


def _check_widths(hidden) -> None:
    widths = hidden if isinstance(hidden, tuple | list) else [None]
    if not all(
        isinstance(width, numbers.Integral) and not isinstance(width, bool) and width >= 1
        for width in widths
    ):
        raise ValueError(
            "Expected hidden to be a sequence of positive layer widths such as (500, 500), "
            f"or () for a single linear layer. Received: hidden={hidden!r}"
        )


def _check_latent_dims(latent_dims, latent_dim) -> None:
    """Raises ValueError unless `latent_dims` is a non-empty sequence of sizes whose first
    is `latent_dim` (when that is given)."""
    sizes = latent_dims if isinstance(latent_dims, tuple | list) else []
    if not sizes or not all(
        isinstance(size, numbers.Integral) and not isinstance(size, bool) and size >= 1
        for size in sizes
    ):
        raise ValueError(
            "Expected latent_dims to be positive latent sizes, z1 first, such as (100, 50). "
            f"Received: latent_dims={latent_dims!r}"
        )
    if latent_dim is not None and latent_dim != sizes[0]:
        raise ValueError(
            "Expected latent_dim to be the first of latent_dims, the size of z1. Received: "
            f"latent_dim={latent_dim}, latent_dims={tuple(latent_dims)}"
        )


def _check_activation(name) -> None:
    """Raises ValueError unless Keras knows the activation `name` (imports Keras)."""
    try:
        keras.activations.get(name)
    except (ValueError, TypeError) as error:
        raise ValueError(
            "Expected activation to be the name of a Keras activation such as 'relu', "
            f"'tanh' or 'gelu'. Received: activation={name!r}"
        ) from error
