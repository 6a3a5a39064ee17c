"""The jobs behind the command line: train a VAE on a dataset, evaluate it, draw samples
and pictures of its latent space.

A trained model lives in one folder (default `saved_models/<dataset>/`):

    model.keras           the Keras model (weights, optimizer state, config)
    config.json           the run configuration and the data recipe it resolved to
    history.json          per-epoch metrics from `fit`
    samples.png           E[x|z] for 64 draws z from the prior
    reconstructions.png   test images beside their reconstructions

The folder is written atomically: a failed run leaves the previous one as it was. A new
run replaces only a model folder that tfvae wrote, keeping its SavedModel version folders
(`1/`, `2/`, ...); it refuses any other folder before training (see `tfvae.outputs`).
"""

import dataclasses
import json
import math
import os
import sys
from pathlib import Path

import tfvae._backend  # noqa: F401

import keras
import numpy as np

from tfvae import (
    atomic,
    checkpoints,
    data,
    distribute,
    latent,
    likelihoods,
    networks,
    objectives,
    outputs,
    plots,
    priors,
    schedules,
    semi_supervised,
    validation,
)
from tfvae.callbacks import LatentDiagnostics, TensorBoardImages
from tfvae.config import ARCHITECTURES as ARCHITECTURES
from tfvae.config import LEARNING_RATE_SCHEDULES as LEARNING_RATE_SCHEDULES
from tfvae.config import MASKS, PLOT_KINDS, XLA, TrainConfig, upgraded
from tfvae.data.sources import SPLITS
from tfvae.model import VAE

# Test examples per encoder pass of the per-epoch latent diagnostics: a test set up to this
# size is one batch, so one compiled shape.
_DIAGNOSTICS_BATCH = 10_000


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How a dataset is modelled: the likelihood and how raw x becomes model input.

    Attributes:
        likelihood: a `tfvae.likelihoods` name.
        likelihood_config: the likelihood's constructor arguments, e.g.
            `{"total_count": 16}` for the binomial digits.
        full_scale: the raw value shown as white when raw values are integers: the
            largest count (16 for the digits, 1 for binary data), 255 for grey levels;
            None for real values, intensities in [0, 1] included.
        scale: raw x is divided by this (None: used as is).
        binarize: training-time binarization (`tfvae.data.make_dataset`); evaluation
            uses `"static"` binarization with a fixed seed when this is set.
        data_range: model-input values shown as black and white in pictures.
        architecture, hidden, latent_dim, epochs: network and training defaults.
    """

    likelihood: str
    likelihood_config: dict = dataclasses.field(default_factory=dict)
    full_scale: float | None = None
    scale: float | None = None
    binarize: str | None = None
    data_range: tuple[float, float] = (0.0, 1.0)
    architecture: str = "mlp"
    hidden: tuple[int, ...] = (500, 500)
    latent_dim: int = 50
    epochs: int = 20

    @classmethod
    def from_dict(cls, fields: dict) -> "Recipe":
        """The recipe a `config.json` records, also as written before `likelihood_config`
        (a `total_count` field) existed."""
        fields = {
            **fields,
            "data_range": tuple(fields["data_range"]),
            "hidden": tuple(fields["hidden"]),
        }
        if "total_count" in fields:  # config.json written by tfvae before 2026-11-21
            total_count = fields.pop("total_count")
            fields["full_scale"] = total_count or fields.get("scale")
            fields["likelihood_config"] = {"total_count": total_count} if total_count else {}
        return cls(**fields)


# Measured with `tfvae train` on this project's 2-core CPU machine; see README.md.
RECIPES = {
    "digits": Recipe(
        likelihood="binomial",
        likelihood_config={"total_count": 16},
        full_scale=16.0,
        data_range=(0.0, 16.0),
        hidden=(256, 256),
        latent_dim=8,
        epochs=100,
    ),
    "mnist": Recipe(likelihood="bernoulli", full_scale=255.0, scale=255.0, binarize="dynamic"),
    "fashion_mnist": Recipe(
        likelihood="bernoulli", full_scale=255.0, scale=255.0, binarize="dynamic"
    ),
}


def recipe_for(dataset: str, x: np.ndarray, likelihood: str | None = None) -> Recipe:
    """How to model `dataset` (raw values `x`), with `likelihood` if one is chosen.

    A named dataset has its own recipe; a user's data gets one from its values: 0/1
    integers are Bernoulli; uint8 grey levels above 16 are intensities x / 255, binarized
    dynamically; other non-negative integers are binomial counts out of their maximum;
    floats in [0, 1] are continuous Bernoulli; other values Gaussian with learned scale.
    Choosing another likelihood rescales the same data for it (e.g. digits counts / 16
    as Bernoulli intensities).
    """
    recipe = RECIPES.get(dataset) or _recipe_from_values(x)
    if likelihood is None or likelihood == recipe.likelihood:
        return recipe
    family = likelihoods.registry.class_of(likelihood, "likelihood")
    changes = {"likelihood_config": {}, **family.adapt_recipe(recipe)}
    return dataclasses.replace(recipe, likelihood=likelihood, **changes)


def _recipe_from_values(x: np.ndarray) -> Recipe:
    low, high = float(np.min(x)), float(np.max(x))
    if np.issubdtype(x.dtype, np.integer) and low >= 0:
        if high <= 1:
            return Recipe(likelihood="bernoulli", full_scale=1.0)
        if x.dtype == np.uint8 and high > 16:
            return Recipe(likelihood="bernoulli", full_scale=255.0, scale=255.0, binarize="dynamic")
        counts = {"likelihood_config": {"total_count": int(high)}, "full_scale": high}
        return Recipe(likelihood="binomial", data_range=(0.0, high), **counts)
    if low >= 0 and high <= 1:
        return Recipe(likelihood="continuous_bernoulli")  # not counts: no full scale
    return Recipe(likelihood="gaussian_learned_scale", data_range=(low, high))


def model_input(x: np.ndarray, recipe: Recipe, seed: int = 0) -> np.ndarray:
    """Raw x as float32 model input, binarized once with `seed` if the recipe binarizes."""
    return data.preprocess(x, scale=recipe.scale, binarize=recipe.binarize, seed=seed)


def build_model(
    config: TrainConfig, recipe: Recipe, steps: int | None = None, num_classes: int | None = None
) -> VAE:
    """A VAE for `config` (resolved) and its data `recipe`, compiled for training.

    `steps` is the number of training steps, which a `"cosine"` learning rate and the
    KL schedules need; `num_classes` the number of labels, which a conditional model and
    M2 need (`config.conditional`, `config.labels_per_class`). The encoder's weights are
    seeded with `config.seed`, the decoder's with the next seed (`seed + 1`, and 0 after
    `tfvae.validation.MAX_SEED`), M2's classifier with `seed + 2`, and the networks of
    the latent layers above z1 with the seeds after these.
    """
    labelled = config.conditional or config.labels_per_class is not None
    if labelled and (num_classes is None or num_classes < 2):
        raise ValueError(
            "Expected labelled data with at least 2 classes for conditional or "
            f"labels_per_class. Received: num_classes={num_classes}"
        )
    likelihood = likelihoods.registry.class_of(config.likelihood)(**recipe.likelihood_config)
    encoder_options = {"activation": config.activation, "seed": config.seed}
    decoder_options = {
        "activation": config.activation,
        "seed": validation.offset_seed(config.seed, 1),
    }
    if config.architecture == "conv":
        encoder = networks.conv_encoder(**encoder_options)
        decoder = networks.conv_decoder(**decoder_options)
    else:
        encoder = networks.mlp_encoder(hidden=config.hidden, **encoder_options)
        decoder = networks.mlp_decoder(hidden=config.hidden, **decoder_options)
    needs_steps = config.lr_schedule == "cosine" or config.kl_warmup_epochs or config.kl_cycles
    if needs_steps and steps is None:
        raise ValueError(
            "Expected the number of training steps for lr_schedule='cosine' and the KL "
            "schedules. Received: steps=None"
        )
    beta = config.beta
    if config.kl_warmup_epochs:
        warmup_steps = config.kl_warmup_epochs * steps // config.epochs
        beta = schedules.LinearWarmup(steps=max(warmup_steps, 1), end=config.beta)
    elif config.kl_cycles:
        period = math.ceil(steps / config.kl_cycles)
        beta = schedules.Cyclical(period=period, cycles=config.kl_cycles, end=config.beta)
    objective = config.objective
    if config.free_bits > 0:
        objective = objectives.ELBO(free_bits=config.free_bits)
    prior = priors.hierarchy(
        (config.latent_dims or ())[1:], config.activation, validation.offset_seed(config.seed, 3)
    )
    options = {
        "latent_dim": config.latent_dim,
        "prior": prior,
        "likelihood": likelihood,
        "objective": objective,
        "num_samples": config.num_samples,
        "beta": beta,
        "seed": config.seed,
    }
    if config.labels_per_class is not None:
        classifier = networks.mlp_encoder(
            hidden=config.hidden,
            activation=config.activation,
            seed=validation.offset_seed(config.seed, 2),
        )
        model = semi_supervised.SemiSupervisedVAE(
            encoder, decoder, classifier, num_classes=num_classes, alpha=config.alpha, **options
        )
    else:
        condition_shape = (num_classes,) if config.conditional else None
        model = VAE(
            encoder,
            decoder,
            condition_shape=condition_shape,
            gradient_estimator=config.gradient_estimator,
            **options,
        )
    learning_rate = config.learning_rate
    if config.lr_schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, steps)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate), jit_compile=XLA[config.jit_compile]
    )
    return model


def train(
    config: TrainConfig,
    verbose: int | None = None,
    restart: bool = False,
    callbacks=(),
    strategy=None,
) -> Path:
    """Trains a VAE as `config` says and writes its folder (see the module docstring).

    The run checkpoints after every epoch into `OUT.checkpoint/` (`tfvae.checkpoints`),
    never touching the model folder until the run ends. Called again with the same
    config after a kill, it resumes after the last checkpointed epoch and says so; the
    checkpoint is deleted once the model folder is written.

    Under a distribution strategy (`config.distribute`, see `tfvae.distribute`), the
    model is built under it, each epoch drops its last partial batch when there are
    several replicas (`config.batch_size` is the global batch, split evenly), and only
    the chief writes the checkpoints and the model folder; every worker reads the
    checkpoint to resume.

    Args:
        config: the run; None fields take the dataset recipe's defaults.
        verbose: Keras verbosity (default: a progress bar on a terminal, one line per
            epoch otherwise); 0 also silences the resume message.
        restart: discard a checkpoint left by an earlier run and start again.
        callbacks: more Keras callbacks for `fit`, after tfvae's own.
        strategy: a `tf.distribute.Strategy` to train under instead of the one
            `config.distribute` names (e.g. a MirroredStrategy over chosen devices).

    Returns:
        The model folder, `config.out` or `saved_models/<dataset>` (written by the chief
        only).

    Raises:
        tfvae.outputs.OutputRefusedError: before training, when that folder or its
            checkpoint folder holds anything tfvae did not write (see `check_out`).
        tfvae.checkpoints.CheckpointMismatchError: when a checkpoint of another
            configuration is there (and `restart` is False).
        tfvae.distribute.WorkerLostError: when another worker of a multi-worker run stops.
    """
    # First: a multi-worker strategy must exist before TensorFlow runs any operation.
    strategy = strategy or distribute.strategy(config.distribute)
    chief = distribute.is_chief(strategy)
    out = check_out(config)  # before the data loads and the training starts
    checkpoint = outputs.check_destination(
        checkpoints.folder_for(out), outputs.CHECKPOINT, "checkpoint", _inputs(config)
    )
    x_train, y_train = data.load(config.dataset, split="train", data_dir=config.data_dir)
    x_test, y_test = data.load(config.dataset, split="test", data_dir=config.data_dir)
    labels = Labels.of_run(config, y_train, y_test)
    x_train, y_train = labels.training_examples(x_train)
    recipe = recipe_for(config.dataset, x_train, config.likelihood)
    config = config.resolve(recipe)
    options = {**dataclasses.asdict(config), "recipe": dataclasses.asdict(recipe)}
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    distribute.check_global_batch(config.batch_size, strategy)
    whole_batches = strategy.num_replicas_in_sync > 1  # replicas split batches evenly
    steps_per_epoch = _steps_per_epoch(len(x_train), config.batch_size, whole_batches)
    if restart and chief:
        checkpoints.discard(checkpoint)
    with strategy.scope():
        resumed = None if restart else checkpoints.resume(checkpoint, options, upgraded)
        if resumed is None:
            model = build_model(config, recipe, config.epochs * steps_per_epoch, labels.num_classes)
        else:
            model = resumed.model
    distribute.check_agreement(strategy, resumed.epochs_done if resumed else 0, "checkpoint")
    validation_x = model_input(x_test, recipe)
    test_condition, test_targets = label_inputs(model, y_test)
    diagnostics = LatentDiagnostics(
        validation_x,
        batch_size=min(len(validation_x), _DIAGNOSTICS_BATCH),
        condition=test_condition,
    )
    if resumed is None:
        initial_epoch, history = 0, None
    else:
        initial_epoch, history = resumed.epochs_done, resumed.history
        diagnostics.history = resumed.latent
        if verbose:
            print(
                f"Resuming from {checkpoint} after epoch {initial_epoch} of {config.epochs} "
                "(--restart starts again)",
                flush=True,
            )
    # Endless and addressable by epoch, so a resumed run continues the data's sequence.
    dataset = data.make_dataset(
        x_train,
        y_train,
        batch_size=config.batch_size,
        seed=config.seed,
        binarize=recipe.binarize,
        scale=recipe.scale,
        repeat=True,
        initial_epoch=initial_epoch,
        drop_remainder=whole_batches,
    )
    saver = checkpoints.Checkpoint(checkpoint, options, history, diagnostics.history)
    run_callbacks = [diagnostics, saver]  # the diagnostics add active_units to the logs
    if config.tensorboard and chief:
        run_callbacks.append(keras.callbacks.TensorBoard(log_dir=config.tensorboard))
    if config.tensorboard and chief and labels.num_classes is None:  # unconditional only
        run_callbacks += [
            TensorBoardImages(
                config.tensorboard,
                validation_x,
                seed=config.seed,
                data_range=recipe.data_range,
                batch_size=config.batch_size,
            ),
        ]
    with distribute.reporting_lost_workers(strategy, checkpoint):
        model.fit(
            distribute.sharded_by_data(dataset),
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch,
            validation_data=(validation_x, test_targets),
            callbacks=[*run_callbacks, *callbacks],
            shuffle=False,  # make_dataset shuffles, every epoch anew.
            verbose=verbose,
        )
    if not chief:
        return out
    with outputs.directory(out, outputs.MODEL, "out", _inputs(config)) as staging:
        model.save(staging / "model.keras")
        run = {
            "format": outputs.MODEL.format,
            "config": dataclasses.asdict(config),
            "recipe": dataclasses.asdict(recipe),
        }
        (staging / "config.json").write_text(json.dumps(run, indent=2) + "\n")
        history = {**saver.history, "latent": diagnostics.history}
        (staging / "history.json").write_text(json.dumps(history, indent=2) + "\n")
        write_samples(model, recipe, staging / "samples.png", seed=config.seed, mean=True)
        reconstructions = staging / "reconstructions.png"
        write_reconstructions(model, recipe, validation_x[:32], reconstructions, y_test[:32])
    checkpoints.discard(checkpoint)
    return out


@dataclasses.dataclass(frozen=True)
class Labels:
    """How a run uses the data's labels: not at all, as the condition of a conditional
    VAE (one-hot), or as M2's partly known labels (`tfvae.semi_supervised`).

    Attributes:
        num_classes: the number of labels, or None for an unconditional model.
        train: the training labels as the model takes them, or None.
        order: the training examples of an epoch (M2: labelled ones repeated so that a
            tenth of each batch is labelled, `semi_supervised.mixed_order`), or None.

    The labels of other splits reach the model through `label_inputs`.
    """

    num_classes: int | None = None
    train: np.ndarray | None = None
    order: np.ndarray | None = None

    @classmethod
    def of_run(cls, config: TrainConfig, y_train, y_test) -> "Labels":
        """The labels of `config`'s run, from the dataset's integer labels."""
        if not config.conditional and config.labels_per_class is None:
            return cls()
        num_classes = int(max(np.max(y_train), np.max(y_test))) + 1
        if config.conditional:
            return cls(num_classes, np.eye(num_classes, dtype=np.float32)[y_train])
        kept = semi_supervised.keep_labels(y_train, config.labels_per_class, config.seed)
        return cls(num_classes, kept, semi_supervised.mixed_order(kept))

    def training_examples(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """`(x, labels)` of one training epoch, in `order` when there is one."""
        if self.order is None:
            return x, self.train
        return x[self.order], self.train[self.order]


def label_inputs(model: VAE, y) -> tuple[np.ndarray | None, np.ndarray | None]:
    """`(condition, targets)` of a split's integer labels `y` for `model`: the one-hot
    labels its networks take, and the labels `fit` and `evaluate` pair with x (one-hot
    for a conditional VAE, the integers for M2, whose metrics then include its
    classifier's accuracy); `(None, None)` for an unconditional model.

    Raises:
        ValueError: when `y` is None, or a label is outside the model's 0..K-1 (data of
            other labels).
    """
    if model.condition_shape is None:
        return None, None
    num_classes = model.condition_shape[0]
    if y is None:
        raise ValueError(f"Expected the data's labels: this model takes one of {num_classes}.")
    y = np.asarray(y)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(
            f"Expected the data's labels in 0..{num_classes - 1}: this model was trained on "
            f"{num_classes} labels. Received: labels from {y.min()} to {y.max()}"
        )
    condition = np.eye(num_classes, dtype=np.float32)[y]
    m2 = isinstance(model, semi_supervised.SemiSupervisedVAE)
    return condition, (np.asarray(y, np.int64) if m2 else condition)


def _steps_per_epoch(examples: int, batch_size: int, whole_batches: bool) -> int:
    """Batches per epoch: the last one partial, or dropped when `whole_batches`."""
    if whole_batches and examples < batch_size:
        raise ValueError(
            f"Expected at least one whole global batch of training examples. Received: "
            f"batch_size={batch_size} with {examples} examples"
        )
    return examples // batch_size if whole_batches else math.ceil(examples / batch_size)


def check_out(config: TrainConfig) -> Path:
    """The model folder `train` writes for `config`, once `tfvae.outputs` accepts it.

    It is `config.out`, else `saved_models/<dataset name>`: absent, empty, or a model
    folder that tfvae wrote; neither the data nor the TensorBoard folder may be inside it.

    Raises:
        tfvae.outputs.OutputRefusedError: otherwise.
    """
    return outputs.check_destination(config.out_path(), outputs.MODEL, "out", _inputs(config))


def _inputs(config: TrainConfig) -> dict:
    """The folders and files a run reads or writes outside its model folder."""
    inputs = {"data_dir": config.data_dir, "tensorboard": config.tensorboard}
    if config.dataset not in data.DATASETS and os.path.lexists(config.dataset):
        inputs["dataset"] = config.dataset  # a user's file or folder of images
    return {name: path for name, path in inputs.items() if path}


def load(model_dir) -> tuple[VAE, Recipe, TrainConfig]:
    """Loads a folder written by `train`: the model, its data recipe and its config."""
    model_dir = Path(model_dir)
    for name in ("model.keras", "config.json"):
        if not (model_dir / name).is_file():
            raise FileNotFoundError(
                f"Expected a model folder written by 'tfvae train' with {name}. "
                f"Received: {model_dir}"
            )
    run = json.loads((model_dir / "config.json").read_text())
    recipe = Recipe.from_dict(run["recipe"])
    fields = upgraded(run["config"])
    config = TrainConfig(**{**fields, "hidden": tuple(fields["hidden"])})
    model = keras.saving.load_model(model_dir / "model.keras")
    return model, recipe, config


def evaluate(
    model_dir,
    dataset=None,
    split="test",
    data_dir=None,
    batch_size=100,
    num_samples=None,
    refine_steps=None,
) -> dict:
    """Mean per-example ELBO, reconstruction and KL (nats) of a trained model on a split.

    The split is binarized once with a fixed seed when the model's recipe binarizes.
    Defaults: the dataset and data folder the model was trained on. A model of labels
    is evaluated at the split's labels: a conditional model's bounds are of log p(x|y),
    M2's of log p(x, y), with its classifier's `accuracy` and `classification` loss.

    Args:
        num_samples: also estimate the negative log-likelihood with this many importance
            samples (`nll` in nats, `bits_per_dim`; see `tfvae.inference.evaluate`).
        refine_steps: also refine every test point's posterior for this many steps and
            report `elbo_refined` and `amortization_gap` (their mean difference, nats).

    The result also has `kl_per_dimension`, `posterior_mean_variance`, `active_units`
    and `active_dimensions` (`tfvae.inference.latent_diagnostics`), lists as JSON arrays.
    """
    from tfvae import inference

    if refine_steps is not None:
        validation.positive_int(refine_steps, "refine_steps")
    if num_samples is not None:
        validation.positive_int(num_samples, "num_samples")
    model, recipe, config = load(model_dir)
    x, y = data.load(dataset or config.dataset, split=split, data_dir=data_dir or config.data_dir)
    x = model_input(x, recipe)
    condition, targets = label_inputs(model, y)
    if num_samples is not None:
        result = inference.evaluate(
            model, x, num_samples, batch_size=batch_size, verbose=0, condition=condition
        )
    else:
        metrics = model.evaluate(x, targets, batch_size=batch_size, verbose=0, return_dict=True)
        result = {"examples": len(x), **{k: float(v) for k, v in metrics.items() if k != "loss"}}
        result.update(
            inference.latent_diagnostics(model, x, batch_size=batch_size, condition=condition)
        )
    if refine_steps is not None:
        gains, refined = [], []
        for start in range(0, len(x), batch_size):
            refinement = model.refine_posterior(
                x[start : start + batch_size], refine_steps, seed=start
            )
            refined.append(refinement["elbo_after"].numpy())
            gains.append((refinement["elbo_after"] - refinement["elbo_before"]).numpy())
        result["elbo_refined"] = float(np.mean(np.concatenate(refined)))
        result["amortization_gap"] = float(np.mean(np.concatenate(gains)))
    return result


def export(model_dir, name=None, out_dir=None, saved_model_dir=None, **kwargs) -> Path:
    """Exports a trained model folder as an ONNX bundle and a SavedModel.

    Defaults: NAME is the model folder's name; the bundle goes to `export/NAME/` and the
    SavedModel to `saved_models/NAME/VERSION/`. The encoder's parity is checked on the
    test split. Other keyword arguments go to `tfvae.export.export_model`.
    """
    from tfvae import export as export_lib

    model, recipe, config = load(model_dir)
    x_test, _ = data.load(config.dataset, split="test", data_dir=config.data_dir)
    return export_lib.export_model(
        model,
        out_dir=out_dir,
        saved_model_dir=saved_model_dir,
        x_reference=model_input(x_test, recipe),
        data_range=recipe.data_range,
        name=name or Path(model_dir).name,
        **kwargs,
    )


def write_samples(model: VAE, recipe: Recipe, path, n=64, seed=0, mean=False) -> Path:
    """Writes a PNG grid of `n` draws x ~ p(x|z), z ~ p(z) (or E[x|z] when `mean`); a
    model of K labels draws sample i at label i mod K."""
    labels = None if model.condition_shape is None else np.arange(n) % model.condition_shape[0]
    condition, _ = label_inputs(model, labels)
    samples = np.asarray(model.sample(n, seed=seed, mean=mean, condition=condition))
    return plots.save_image_grid(path, samples, data_range=recipe.data_range)


def write_reconstructions(model: VAE, recipe: Recipe, x, path, labels=None) -> Path:
    """Writes images `x` beside their reconstruction means, pairs in rows of 4, as a PNG;
    a model of the labels reconstructs each at its integer label in `labels`.

    It calls the model, not `predict`: under a multi-worker strategy `predict` is a
    collective that every worker must join, and only the chief writes pictures."""
    condition, _ = label_inputs(model, labels)
    reconstructions = np.asarray(model(x if condition is None else (x, condition)))
    pairs = plots.interleave(x, reconstructions)
    return plots.save_image_grid(
        path, pairs, data_range=recipe.data_range, columns=plots.RECONSTRUCTION_COLUMNS
    )


def plot(
    model_dir,
    kind: str,
    out,
    n: int = 64,
    seed: int = 0,
    steps: int = 8,
    grid: int = 20,
    dataset: str | None = None,
    data_dir: str | None = None,
    split: str = "test",
) -> Path:
    """Writes one picture of a trained model folder as a PNG.

    Image grids are `plots.save_image_grid`'s: each H x W image is shown at zoom
    Z = `plots.default_zoom(H)` (7 for 8x8 digits, 2 for 28x28 MNIST) with Z pixels of
    black padding around cells, so a grid of R rows and C columns is
    Z * (R * (H + 1) + 1) by Z * (C * (W + 1) + 1) pixels, grey or RGB like the data.

    Kinds, and the size of the PNG:
        - `"samples"`: E[x|z] for `n` draws z ~ p(z) with `seed`, in the smallest square
          grid that holds them: C = ceil(sqrt(n)), R = ceil(n / C).
        - `"reconstructions"`: the first `n` images of the split beside their
          reconstructions, pairs in rows of 4: C = 8, R = ceil(2 n / 8).
        - `"interpolation"`: E[x|z] along the path between the posterior means of the
          split's first image and the first one with another label (the second image if
          all labels are equal), linear in the first row and spherical in the second:
          R = 2, C = `steps` (see `tfvae.latent.interpolate`).
        - `"manifold"`: E[x|z] on a `grid` x `grid` grid of standard normal quantiles,
          z_1 to the right and z_2 upwards (`tfvae.latent.manifold`; latent_dim 2 and a
          standard normal prior only): R = C = `grid`.
        - `"latent-scatter"`: the posterior means of the whole split (first two latent
          dimensions) as 3x3 squares coloured by label on white
          (`tfvae.latent.latent_scatter`): 256 x 256 RGB pixels.

    A model of the labels (`--conditional`, `--labels-per-class`) draws samples at label
    i mod K for sample i, and reconstructs each image at its own label; the latent-space
    kinds, which encode or decode without a label, are refused for it.

    Args:
        model_dir: a folder written by `train`.
        kind: one of the kinds above.
        out: the PNG file to write (parent folders are created).
        n: number of samples or of reconstructed images.
        seed: the seed of the samples' prior draws.
        steps: pictures per interpolation row, >= 2.
        grid: manifold cells per side, >= 2.
        dataset, data_dir: the data of the reconstructions, interpolation and scatter
            (default: the training data); it goes through the model's recipe, binarized
            once with a fixed seed when the recipe binarizes.
        split: `"train"` or `"test"`.

    Returns:
        The path written.

    Raises:
        ValueError: for an unknown kind or bad sizes; for `"manifold"` on a model that
            is not 2-D with a standard normal prior; for `"latent-scatter"` on a 1-D one;
            for a latent-space kind on a model of the labels.
        FileNotFoundError: when `model_dir` is not a model folder.
    """
    validation.one_of(kind, PLOT_KINDS, "kind")
    n = validation.positive_int(n, "n")
    validation.one_of(split, SPLITS, "split")
    model, recipe, config = load(model_dir)
    if kind not in ("samples", "reconstructions"):
        _refuse_label_models(model, f"plot kind={kind!r}", "kind 'samples' or 'reconstructions'")
    if kind == "samples":
        return write_samples(model, recipe, out, n=n, seed=seed, mean=True)
    if kind == "manifold":
        cells = latent.manifold(model, grid=grid)  # [G, G, *data_shape]
        images = cells.reshape(-1, *cells.shape[2:])
        return plots.save_image_grid(out, images, data_range=recipe.data_range, columns=grid)
    x, labels = data.load(
        dataset or config.dataset, split=split, data_dir=data_dir or config.data_dir
    )
    x = model_input(x, recipe)
    if kind == "reconstructions":
        return write_reconstructions(model, recipe, x[:n], out, labels[:n])
    if kind == "latent-scatter":
        return plots.save_png(out, latent.latent_scatter(model, x, labels))
    if len(x) < 2:
        raise ValueError(f"Expected at least 2 images to interpolate. Received: {len(x)}")
    other = np.flatnonzero(labels != labels[0])
    second = int(other[0]) if other.size else 1
    rows = [latent.interpolate(model, x[0], x[second], steps, method) for method in latent.METHODS]
    images = np.concatenate(rows)  # [2 * steps, *data_shape]: linear, then spherical
    return plots.save_image_grid(out, images, data_range=recipe.data_range, columns=steps)


def _refuse_label_models(model: VAE, what: str, expected: str) -> None:
    """Raises for a model of the labels (conditional or M2), which `what` cannot take."""
    if model.condition_shape is not None:
        raise ValueError(
            f"{what} takes no label, so it needs a model trained without labels. Expected "
            f"{expected}. Received: a model of {model.condition_shape[0]} labels "
            "(trained with --conditional or --labels-per-class)."
        )


def missing_mask(shape, kind: str, seed: int = 0) -> np.ndarray:
    """A boolean mask `shape` = `(n, height, width, channels)`, True where missing.

    `bottom-half` and `right-half` hide those halves of every image; `random-half` hides
    a random half of the pixels of each image (seeded).
    """
    validation.one_of(kind, MASKS, "mask")
    mask = np.zeros(shape, dtype=bool)
    if kind == "bottom-half":
        mask[:, shape[1] // 2 :] = True
    elif kind == "right-half":
        mask[:, :, shape[2] // 2 :] = True
    else:
        mask = np.random.default_rng(seed).random(shape) < 0.5
    return mask


def impute(
    model_dir,
    out,
    n=16,
    mask="bottom-half",
    method="metropolis_within_gibbs",
    steps=100,
    seed=0,
    dataset=None,
    data_dir=None,
    split="test",
) -> Path:
    """Fills in the missing part of `n` images of a split and draws before and after.

    Writes a PNG grid of three rows of `n` images: the originals, the inputs with their
    missing entries shown as the middle of the data range, and the completed images
    (`tfvae.inference.impute`). A model of the labels completes each image at its label.
    """
    model, recipe, config = load(model_dir)
    n = validation.positive_int(n, "n")
    x, y = data.load(dataset or config.dataset, split=split, data_dir=data_dir or config.data_dir)
    x = model_input(x[:n], recipe)
    condition, _ = label_inputs(model, y[:n])
    missing = missing_mask(x.shape, mask, seed)
    completed = np.asarray(
        model.impute(x, missing, method=method, steps=steps, seed=seed, condition=condition)
    )
    middle = np.float32(sum(recipe.data_range) / 2)
    rows = np.concatenate([x, np.where(missing, middle, x), completed])
    return plots.save_image_grid(out, rows, data_range=recipe.data_range, columns=len(x))


def gradients(
    model_dir,
    out,
    estimators=None,
    samples=(1, 2, 5, 10, 20, 50),
    num_draws: int = 100,
    batch_size: int = 100,
    seed: int = 0,
    dataset: str | None = None,
    data_dir: str | None = None,
    split: str = "train",
) -> dict:
    """Measures the gradient estimators of a trained model and draws variance against L.

    On the first `batch_size` examples of the split (through the model's recipe),
    `tfvae.diagnostics.variance_by_samples` draws each estimator's gradient `num_draws`
    times at each number of latent samples L in `samples`. `out` (a PNG) gets the
    encoder's gradient variance (the trace of its covariance) against L on log-log axes,
    one line per estimator (`plots.log_log_chart`); `out` with the suffix `.json` gets
    the plotted values and every statistic, which this function also returns:
    `{"png", "json", "series": {name: {"num_samples": [...], "encoder_variance": [...]}},
    "statistics": {name: [EstimatorStatistics.as_dict() per L]}}`.

    Args:
        model_dir: a folder written by `train`.
        out: the PNG file to write.
        estimators: names from `tfvae.estimators.registry` (default: those that suit the
            model's objective).
        samples, num_draws, seed: as `variance_by_samples`.
        batch_size: the examples of the measured batch.
        dataset, data_dir, split: the data (default: the training data's train split).

    Raises:
        ValueError: for bad arguments (named), an estimator that does not suit the
            model's objective, a split with fewer than `batch_size` examples, or a model
            of the labels (the estimators are measured without a condition).
        FileNotFoundError: when `model_dir` is not a model folder.
    """
    from tfvae import diagnostics

    batch_size = validation.positive_int(batch_size, "batch_size")
    validation.one_of(split, SPLITS, "split")
    model, recipe, config = load(model_dir)
    _refuse_label_models(
        model,
        "gradients",
        "a folder of `tfvae train` run without --conditional and --labels-per-class",
    )
    x, _ = data.load(dataset or config.dataset, split=split, data_dir=data_dir or config.data_dir)
    if len(x) < batch_size:
        raise ValueError(
            f"Expected at least batch_size={batch_size} examples in the {split} split. "
            f"Received: {len(x)}"
        )
    x = model_input(x[:batch_size], recipe, seed=seed)
    measured = diagnostics.variance_by_samples(model, x, samples, estimators, num_draws, seed)
    series = {
        name: {
            "num_samples": [s.num_samples for s in runs],
            "encoder_variance": [s.encoder.variance for s in runs],
        }
        for name, runs in measured.items()
    }
    image, _ = plots.log_log_chart(
        {name: (v["num_samples"], v["encoder_variance"]) for name, v in series.items()},
        x_label="latent samples L per example",
        y_label="encoder gradient variance (trace of the covariance)",
    )
    png = plots.save_png(out, image)
    result = {
        "png": str(png),
        "json": str(png.with_suffix(".json")),
        "series": series,
        "statistics": {name: [s.as_dict() for s in runs] for name, runs in measured.items()},
    }
    atomic.write_text(result["json"], json.dumps(result, indent=2))
    return result
