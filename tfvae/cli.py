"""The `tfvae` command line: each subcommand parses its options and calls one function.

    tfvae train [--dataset digits] [--epochs N] ... [--out saved_models/NAME] [--export]
    tfvae evaluate saved_models/NAME [--dataset NAME] [--split test]
    tfvae export saved_models/NAME [--name NAME]
    tfvae sample (saved_models/NAME | --bundle export/NAME) -n 64 [--seed 0] [--out PNG]
    tfvae plot saved_models/NAME --kind KIND [--out PNG] [-n 64] [--steps 8] [--grid 20]
    tfvae impute saved_models/NAME [--mask bottom-half] [--method ...] [--out impute.png]
    tfvae score --bundle export/NAME DATA [--num-samples 1000] [--elbo-samples 100]
    tfvae gradients saved_models/NAME [--samples 1,2,5,10,20,50] [--out gradients.png]

The options of `tfvae train` are derived from the fields of `tfvae.config.TrainConfig`
(`add_options`), and every list of choices is read from the library's one declaration
of it (registries, `tfvae.config`, `tfvae.data`). Building the parser imports neither
TensorFlow nor Keras; a subcommand imports what it needs when it runs, and
`tfvae sample --bundle` and `tfvae score` never import TensorFlow.
"""

import argparse
import dataclasses
import json
import os
import sys
import types
import typing
import zipfile
from pathlib import Path

import tfvae
from tfvae import config as config_lib
from tfvae.config import OPTION, TrainConfig
from tfvae.data.sources import SPLITS
from tfvae.precision import PRECISIONS

_PACKAGE_DIR = Path(__file__).resolve().parent


def _int_tuple(text: str) -> tuple[int, ...]:
    """Comma-separated integers, e.g. `500,500`; `''` is the empty tuple."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 500,500 (or '' for none), not {text!r}"
        ) from None


# How a field's type (without `| None`) becomes an option's value parser.
_PARSERS = {int: int, float: float, str: str, tuple[int, ...]: _int_tuple}


def _without_none(annotation):
    """`X` for an annotation `X | None` (or `Optional[X]`), else the annotation."""
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):
        rest = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def add_options(parser: argparse.ArgumentParser, config_class: type = TrainConfig) -> None:
    """Adds one option per field of the dataclass `config_class` to `parser`.

    Each field declares its option in its metadata (`tfvae.config.Option`, made by
    `tfvae.config.option`): the value's type is the field's annotation (`int`, `float`,
    `str`, `tuple[int, ...]` as comma-separated integers, each possibly `| None`; a
    `bool` is a switch that flips its default, `--no-NAME` for a default True), the
    default is the field's, choices are read now, options sharing an `exclusive`
    group are mutually exclusive, and each of the option's `switches` is a flag that
    sets a value (`--no-xla` for `--xla off`). The parsed value of field `name` is
    `args.name`; `config_from` builds the config.

    Raises:
        TypeError: for a field without an `Option`, or of a type not listed above.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_options(parser, TrainConfig)
        >>> config_from(parser.parse_args(["--lr", "0.01", "--no-xla"])).jit_compile
        'off'
    """
    hints = typing.get_type_hints(config_class)
    groups = {}
    for field in dataclasses.fields(config_class):
        declared = field.metadata.get(OPTION)
        if declared is None:
            raise TypeError(
                f"Expected every field of {config_class.__name__} to declare its option "
                f"with tfvae.config.option. Received: field {field.name!r} without one"
            )
        kind = _without_none(hints[field.name])
        options = {"dest": field.name, "help": declared.help.replace("%", "%%")}
        if field.default is not dataclasses.MISSING:
            options["default"] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            options["default"] = field.default_factory()
        else:
            options["required"] = True
        switch_off = kind is bool and options.get("default") is True
        name = field.name.replace("_", "-")
        flag = declared.flag or (f"--no-{name}" if switch_off else f"--{name}")
        if kind is bool:
            options["action"] = "store_false" if options.get("default") else "store_true"
        elif kind in _PARSERS:
            options.update(type=_PARSERS[kind], choices=declared.names())
            if options["choices"] is None:  # else argparse shows them: {a,b}
                options["metavar"] = declared.metavar or flag.lstrip("-").replace("-", "_").upper()
            if options.get("default") is not None:
                options["help"] += " (%(default)s)"
        else:
            raise TypeError(
                f"Expected field {field.name!r} of {config_class.__name__} to be one of "
                f"int, float, str, bool, tuple[int, ...] (or None). Received: {kind}"
            )
        target = parser
        if declared.exclusive is not None:
            if declared.exclusive not in groups:
                groups[declared.exclusive] = parser.add_mutually_exclusive_group()
            target = groups[declared.exclusive]
        if declared.switches and declared.exclusive is None:
            target = target.add_mutually_exclusive_group()
        target.add_argument(flag, **options)
        for switch, value in declared.switches.items():
            target.add_argument(
                switch,
                dest=field.name,
                action="store_const",
                const=value,
                help=f"the same as {flag} {value}",
            )


def config_from(args: argparse.Namespace, config_class: type = TrainConfig):
    """The `config_class` instance that options added by `add_options` were parsed into."""
    return config_class(**{f.name: getattr(args, f.name) for f in dataclasses.fields(config_class)})


def _train(args) -> int:
    from tfvae import distribute, workflow

    config = config_from(args, TrainConfig)
    if args.export:  # Refuse the export's folders now, not after an hour of training.
        from tfvae import export

        export.check_destinations(workflow.check_out(config).name)
    out = workflow.train(config, restart=args.restart)
    if not distribute.is_chief(distribute.strategy(config.distribute)):
        print(f"Trained as a worker of the cluster; its chief wrote {out}/")
        return 0
    print(f"Wrote {out}/: model.keras, config.json, history.json, samples.png, reconstructions.png")
    if args.export:
        bundle = workflow.export(out)
        print(f"Exported {bundle}/ (ONNX) and saved_models/{bundle.name}/1/ (SavedModel)")
        png = _sample_bundle(bundle, out / "onnxruntime_samples.png", n=64, seed=args.seed)
        print(f"Drew 64 samples with onnxruntime into {png}")
    return 0


def _export(args) -> int:
    from tfvae import workflow

    bundle = workflow.export(
        args.model,
        name=args.name,
        out_dir=args.out,
        saved_model_dir=args.saved_model_dir,
        version=args.version,
        opset=args.opset,
        atol=args.atol,
        weights=args.weights,
        weights_atol=args.weights_atol,
    )
    print(f"Exported {bundle}/ (ONNX bundle) and the SavedModel, parity checked")
    return 0


def _sample_bundle(bundle, out, n, seed, mean=False, temperature=1.0):
    from tfvae import plots
    from tfvae.runtime import Sampler

    sampler = Sampler.load(bundle)
    samples = sampler.sample(n, seed=seed, mean=mean, temperature=temperature)
    return plots.save_image_grid(out, samples, data_range=sampler.manifest["data"]["range"])


def _evaluate(args) -> int:
    from tfvae import workflow

    result = workflow.evaluate(
        args.model,
        dataset=args.dataset,
        split=args.split,
        data_dir=args.data_dir,
        num_samples=args.num_samples,
        refine_steps=args.refine_steps,
    )
    print(json.dumps(result, indent=2))
    return 0


def _sample(args) -> int:
    if (args.model is None) == (args.bundle is None):
        raise ValueError(
            "Expected either a model folder or --bundle DIR. Received: "
            f"model={args.model!r}, bundle={args.bundle!r}"
        )
    if args.bundle is not None:
        out = _sample_bundle(args.bundle, args.out, args.n, args.seed, args.mean, args.temperature)
    else:
        from tfvae import workflow

        model, recipe, _ = workflow.load(args.model)
        out = workflow.write_samples(
            model, recipe, args.out, n=args.n, seed=args.seed, mean=args.mean
        )
    print(f"Wrote {args.n} samples to {out}")
    return 0


def _plot(args) -> int:
    from tfvae import workflow

    out = workflow.plot(
        args.model,
        args.kind,
        args.out or f"{args.kind}.png",
        n=args.n,
        seed=args.seed,
        steps=args.steps,
        grid=args.grid,
        dataset=args.dataset,
        data_dir=args.data_dir,
        split=args.split,
    )
    print(f"Wrote the {args.kind} picture to {out}")
    return 0


def _impute(args) -> int:
    from tfvae import workflow

    out = workflow.impute(
        args.model,
        args.out,
        n=args.n,
        mask=args.mask,
        method=args.method,
        steps=args.steps,
        seed=args.seed,
        dataset=args.dataset,
        data_dir=args.data_dir,
        split=args.split,
    )
    print(f"Wrote originals, masked inputs and completions to {out}")
    return 0


def _gradients(args) -> int:
    from tfvae import workflow

    result = workflow.gradients(
        args.model,
        args.out,
        estimators=args.estimators,
        samples=args.samples,
        num_draws=args.num_draws,
        batch_size=args.batch_size,
        seed=args.seed,
        dataset=args.dataset,
        data_dir=args.data_dir,
        split=args.split,
    )
    print(
        f"{'estimator':<20} {'L':>4} {'encoder var':>12} {'encoder SNR':>11} "
        f"{'decoder var':>12} {'decoder SNR':>11}"
    )
    for name, runs in result["statistics"].items():
        for run in runs:
            encoder, decoder = run["encoder"], run["decoder"]
            print(
                f"{name:<20} {run['num_samples']:>4} {encoder['variance']:>12.4g} "
                f"{encoder['snr']:>11.4g} {decoder['variance']:>12.4g} {decoder['snr']:>11.4g}"
            )
    print(
        f"Wrote the encoder's gradient variance against L to {result['png']} "
        f"and every statistic to {result['json']}"
    )
    return 0


def _score_data(path, scale: float | None):
    """The examples of DATA, a `.npy` array `(n, *data_shape)` or a `.npz` with `x`,
    divided by `scale` when given."""
    import numpy as np

    path = Path(path)
    expected = (
        "Expected DATA to be a .npy array (n, *data_shape) or a .npz archive with an array 'x'"
    )
    if path.suffix.lower() not in (".npy", ".npz"):
        raise ValueError(f"{expected}. Received: DATA={str(path)!r}")
    if not path.is_file():
        raise FileNotFoundError(f"{expected}. Received: DATA={str(path)!r}, which is not a file")
    arrays = None  # the names in a .npz archive
    try:
        x = np.load(path, allow_pickle=False)
        if isinstance(x, np.lib.npyio.NpzFile):
            with x as archive:
                arrays = archive.files
                x = archive["x"] if "x" in arrays else None
    except (ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"{expected}, readable without pickle. Received: DATA={str(path)!r} ({error})"
        ) from error
    if x is None:
        raise ValueError(f"{expected}. Received: DATA={str(path)!r} with the arrays {arrays}")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool) or x.ndim < 1:
        raise ValueError(
            f"{expected} of numbers. Received: DATA={str(path)!r} holding a {x.dtype} "
            f"array of shape {x.shape}"
        )
    return x if scale is None else x / scale


def _score(args) -> int:
    from tfvae import atomic, validation
    from tfvae.runtime import Sampler

    validation.positive_int(args.num_samples, "num_samples")
    validation.positive_int(args.elbo_samples, "elbo_samples")
    validation.seed(args.seed, "seed")
    if args.scale is not None:
        validation.positive_float(args.scale, "scale")
    x = _score_data(args.data, args.scale)
    sampler = Sampler.load(args.bundle)
    elbo = sampler.elbo(x, num_samples=args.elbo_samples, seed=args.seed)  # [n]
    log_likelihood = sampler.log_likelihood(x, num_samples=args.num_samples, seed=args.seed)
    rows = [
        f"{i},{float(e)!r},{float(ll)!r}"
        for i, (e, ll) in enumerate(zip(elbo, log_likelihood, strict=True))
    ]
    text = "\n".join(["index,elbo,log_likelihood", *rows]) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        out = atomic.write_text(args.out, text)
        print(f"Wrote the scores of {len(rows)} examples to {out}")
    return 0


def _add_data_options(subparser) -> None:
    """`--dataset`, `--data-dir` and `--split`: the data a trained model is run on."""
    subparser.add_argument("--dataset", help="dataset name or file (default: the training one)")
    subparser.add_argument("--data-dir", help="folder with the dataset's files")
    subparser.add_argument("--split", choices=SPLITS, default="test", help="(%(default)s)")


def build_parser() -> argparse.ArgumentParser:
    """The `tfvae` argument parser, with one subparser per subcommand."""
    parser = argparse.ArgumentParser(
        prog="tfvae", description="Train, evaluate and sample variational autoencoders."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="train a VAE and write its folder",
        description="Train a VAE on a dataset and write model.keras, config.json, "
        "history.json, samples.png and reconstructions.png to --out. Options left unset "
        "take the dataset's defaults (digits: binomial likelihood with 16 trials, MLP "
        "256-256, 8 latents, 100 epochs; mnist/fashion_mnist: bernoulli with dynamic "
        "binarization, MLP 500-500, 50 latents, 20 epochs).",
    )
    add_options(train, TrainConfig)
    train.add_argument(
        "--restart",
        action="store_true",
        help="discard the checkpoint an interrupted run left in OUT.checkpoint/ (without "
        "it, the same command resumes that run)",
    )
    train.add_argument(
        "--export",
        action="store_true",
        help="then export to export/NAME (ONNX) and saved_models/NAME/1 (SavedModel) and "
        "draw 64 samples with onnxruntime into --out/onnxruntime_samples.png",
    )
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser(
        "evaluate",
        help="ELBO, reconstruction, KL (and NLL, amortization gap) of a trained model",
        description="Print the mean per-example ELBO, reconstruction log-likelihood and KL "
        "(nats) of a trained model on a dataset split, as JSON; with --num-samples also the "
        "importance-weighted negative log-likelihood, with --refine-steps the amortization "
        "gap.",
    )
    evaluate.add_argument("model", help="a folder written by 'tfvae train'")
    _add_data_options(evaluate)
    evaluate.add_argument(
        "--num-samples",
        type=int,
        metavar="K",
        help="also estimate the negative log-likelihood (nll, bits_per_dim) with K "
        "importance samples (e.g. 5000)",
    )
    evaluate.add_argument(
        "--refine-steps",
        type=int,
        metavar="N",
        help="also refine each point's posterior for N steps: elbo_refined, amortization_gap",
    )
    evaluate.set_defaults(handler=_evaluate)

    export = commands.add_parser(
        "export",
        help="export a trained model to ONNX and a SavedModel",
        description="Export the decoder and encoder of a trained model as an ONNX bundle "
        "(decoder.onnx, encoder.onnx, manifest.json) and a TF Serving SavedModel, after "
        "checking both against the Keras model on random z and on the test split.",
    )
    export.add_argument("model", help="a folder written by 'tfvae train'")
    export.add_argument("--name", help="the export's name (default: the model folder's name)")
    export.add_argument(
        "--out", help="bundle folder (export/NAME); must be new, empty, or a bundle tfvae wrote"
    )
    export.add_argument(
        "--saved-model-dir", help="SavedModel base folder (saved_models/NAME); gets VERSION/"
    )
    export.add_argument("--version", type=int, default=1, help="SavedModel version (1)")
    export.add_argument("--opset", type=int, default=17, help="ONNX opset (17)")
    export.add_argument(
        "--atol", type=float, default=1e-4, help="largest parity error allowed (1e-4)"
    )
    export.add_argument(
        "--weights",
        choices=PRECISIONS,
        default="float32",
        help="precision of the ONNX networks' weights: float16 halves the files, int8 also "
        "decodes small batches faster; the manifest records the error (float32)",
    )
    export.add_argument(
        "--weights-atol",
        type=float,
        default=0.1,
        help="largest error of reduced-precision weights, relative to outputs above 1 (0.1)",
    )
    export.set_defaults(handler=_export)

    sample = commands.add_parser(
        "sample",
        help="draw samples into a PNG",
        description="Draw x ~ p(x|z), z ~ p(z) into a PNG grid, from a trained model "
        "(TensorFlow) or from an exported bundle (--bundle: numpy and onnxruntime only).",
    )
    sample.add_argument("model", nargs="?", help="a folder written by 'tfvae train'")
    sample.add_argument("--bundle", help="a folder written by 'tfvae export' (no TensorFlow)")
    sample.add_argument(
        "--temperature", type=float, default=1.0, help="with --bundle: prior spread (1.0)"
    )
    sample.add_argument("-n", type=int, default=64, help="number of samples (64)")
    sample.add_argument("--seed", type=int, default=0, help="sampling seed (0)")
    sample.add_argument("--out", default="samples.png", help="PNG to write (samples.png)")
    sample.add_argument("--mean", action="store_true", help="show E[x|z] instead of draws")
    sample.set_defaults(handler=_sample)

    plot = commands.add_parser(
        "plot",
        help="draw a picture of a model or its latent space into a PNG",
        description="Draw one picture of a trained model into a PNG: prior samples (E[x|z]), "
        "reconstructions, an interpolation between the posterior means of two images "
        "of different labels (a linear and a spherical row), the 2-D manifold grid of "
        "E[x|z] over normal quantiles (latent_dim 2 only), or a scatter of posterior means "
        "coloured by label (first two latent dimensions, 256x256 pixels). A model of the "
        "labels (--conditional, --labels-per-class) draws samples and reconstructions at "
        "labels; the other kinds need a model trained without them.",
    )
    plot.add_argument("model", help="a folder written by 'tfvae train'")
    plot.add_argument(
        "--kind", required=True, choices=config_lib.PLOT_KINDS, help="the picture to draw"
    )
    plot.add_argument("--out", help="PNG to write (KIND.png)")
    plot.add_argument("-n", type=int, default=64, help="samples or reconstructed images (64)")
    plot.add_argument("--seed", type=int, default=0, help="seed of the samples (0)")
    plot.add_argument("--steps", type=int, default=8, help="pictures per interpolation row (8)")
    plot.add_argument("--grid", type=int, default=20, help="manifold cells per side (20)")
    _add_data_options(plot)
    plot.set_defaults(handler=_plot)

    impute = commands.add_parser(
        "impute",
        help="fill in missing parts of images and draw before and after",
        description="Hide part of each of n images of a split, fill it in by MCMC through "
        "the model, and write a PNG with three rows: originals, masked inputs (missing "
        "entries in mid-grey) and completions.",
    )
    impute.add_argument("model", help="a folder written by 'tfvae train'")
    impute.add_argument(
        "--mask",
        choices=config_lib.MASKS,
        default="bottom-half",
        help="what is missing (bottom-half)",
    )
    impute.add_argument(
        "--method",
        choices=config_lib.IMPUTATION_METHODS,
        default="metropolis_within_gibbs",
        help="the Markov chain (metropolis_within_gibbs)",
    )
    impute.add_argument("--steps", type=int, default=100, help="chain steps (100)")
    impute.add_argument("-n", type=int, default=16, help="images (16)")
    impute.add_argument("--seed", type=int, default=0, help="seed of the chain and mask (0)")
    impute.add_argument("--out", default="impute.png", help="PNG to write (impute.png)")
    _add_data_options(impute)
    impute.set_defaults(handler=_impute)

    score = commands.add_parser(
        "score",
        help="score data under an exported model (numpy and onnxruntime only)",
        description="Print per-example scores of a data file under an exported bundle, as "
        "CSV rows index,elbo,log_likelihood (nats): the Monte Carlo ELBO and the "
        "importance-weighted estimate of log p(x) (tfvae.runtime.Sampler). Low values "
        "flag unlikely inputs. Never imports TensorFlow.",
    )
    score.add_argument("data", metavar="DATA", help="a .npy array (n, *data_shape) or .npz with x")
    score.add_argument(
        "--bundle", required=True, help="a folder written by 'tfvae export' (or --export)"
    )
    score.add_argument(
        "--num-samples",
        type=int,
        default=1000,
        metavar="K",
        help="importance samples of the log-likelihood estimate (%(default)s)",
    )
    score.add_argument(
        "--elbo-samples",
        type=int,
        default=100,
        metavar="L",
        help="latent draws of the ELBO estimate (%(default)s)",
    )
    score.add_argument("--seed", type=int, default=0, help="seed of both estimates (%(default)s)")
    score.add_argument(
        "--scale",
        type=float,
        metavar="S",
        help="divide the values by S first, e.g. 255 for raw MNIST under a Bernoulli bundle",
    )
    score.add_argument("--out", metavar="CSV", help="write the CSV there (default: stdout)")
    score.set_defaults(handler=_score)

    gradients = commands.add_parser(
        "gradients",
        help="measure the gradient estimators' variance and draw it against L",
        description="Draw each gradient estimator's gradient (tfvae.estimators) NUM_DRAWS "
        "times on one batch at the model's weights, for each number of latent samples L, "
        "and print the encoder's and decoder's gradient variance (the trace of the "
        "covariance) and signal-to-noise ratio (||mean|| / sqrt(variance)). Writes the "
        "encoder's variance against L on log-log axes to --out and every number to the "
        "same path with .json.",
    )
    gradients.add_argument("model", help="a folder written by 'tfvae train'")
    gradients.add_argument(
        "--estimators",
        type=lambda text: [part for part in text.split(",") if part],
        metavar="NAMES",
        help="comma-separated estimators (default: every one that suits the model's "
        "objective: reparameterization and score_function for elbo, reparameterization "
        "and dreg for iwae)",
    )
    gradients.add_argument(
        "--samples",
        type=_int_tuple,
        default=(1, 2, 5, 10, 20, 50),
        metavar="L,L,...",
        help="numbers of latent samples per example (1,2,5,10,20,50)",
    )
    gradients.add_argument(
        "--num-draws", type=int, default=100, help="gradient draws per point (%(default)s)"
    )
    gradients.add_argument(
        "--batch-size", type=int, default=100, help="examples in the batch (%(default)s)"
    )
    gradients.add_argument("--seed", type=int, default=0, help="seed of the draws (%(default)s)")
    gradients.add_argument("--out", default="gradients.png", help="PNG to write (%(default)s)")
    gradients.add_argument("--dataset", help="dataset name or file (default: the training one)")
    gradients.add_argument("--data-dir", help="folder with the dataset's files")
    gradients.add_argument("--split", choices=SPLITS, default="train", help="(%(default)s)")
    gradients.set_defaults(handler=_gradients)
    return parser


def _is_user_facing(error: BaseException) -> bool:
    """Whether `error` is a message for the user rather than a bug to show in full.

    It is when it is a `ValueError` or `OSError` raised by tfvae's own code (the
    innermost frame of its traceback is a file of the `tfvae` package: bad arguments,
    missing files, refused outputs, bad bundles), or an `OSError` about a file (it names
    one, e.g. a disk that filled while writing it).
    """
    if isinstance(error, OSError) and error.filename is not None:
        return True
    if not isinstance(error, ValueError | OSError) or error.__traceback__ is None:
        return False
    innermost = error.__traceback__
    while innermost.tb_next is not None:
        innermost = innermost.tb_next
    filename = innermost.tb_frame.f_code.co_filename  # "<string>" for code without a file
    return os.path.isabs(filename) and Path(filename).resolve().is_relative_to(_PACKAGE_DIR)


def main(argv=None) -> int:
    """Runs the command line; returns the process exit code (0 on success).

    Argument errors exit with code 2 (argparse). A user-facing error (`_is_user_facing`:
    a `ValueError` or `OSError` raised by tfvae's own code, or an `OSError` about a file;
    or a training command run on the runtime-only install, which lacks a package of
    `tfvae.TRAINING_PACKAGES`) prints `tfvae <command>: error: <message>` on stderr and
    returns 1. Any other
    exception, such as a `TypeError` or a `ValueError` raised inside TensorFlow, Keras or
    numpy, propagates with its traceback: it is a bug to report, not a message.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info logs.
    try:
        return args.handler(args)
    except ModuleNotFoundError as error:
        if error.name not in tfvae.TRAINING_PACKAGES:
            raise
        print(
            f"tfvae {args.command}: error: this command needs tfvae's training side, and "
            f"{error.name} is not installed. Install it with: pip install 'tfvae[train]'",
            file=sys.stderr,
        )
        return 1
    except (ValueError, OSError) as error:
        if not _is_user_facing(error):
            raise
        print(f"tfvae {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
