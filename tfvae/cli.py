"""The `tfvae` command line: each subcommand parses its options and calls one function.

    tfvae train [--dataset digits] [--epochs N] ... [--out saved_models/NAME] [--export]
    tfvae evaluate saved_models/NAME [--dataset NAME] [--split test]
    tfvae export saved_models/NAME [--name NAME]
    tfvae sample (saved_models/NAME | --bundle export/NAME) -n 64 [--seed 0] [--out PNG]
    tfvae plot saved_models/NAME --kind KIND [--out PNG] [-n 64] [--steps 8] [--grid 20]
    tfvae impute saved_models/NAME [--mask bottom-half] [--method ...] [--out impute.png]

Building the parser imports neither TensorFlow nor Keras; a subcommand imports what it
needs when it runs, and `tfvae sample --bundle` never imports TensorFlow.
"""

import argparse
import json
import os
import sys

# The names of `tfvae.likelihoods.registry`, spelled out so that `--help` does not import
# TensorFlow; tests/test_cli.py checks that they agree.
LIKELIHOOD_NAMES = (
    "bernoulli",
    "binomial",
    "continuous_bernoulli",
    "gaussian",
    "gaussian_learned_scale",
)
# The kinds of `tfvae.workflow.plot`, spelled out so that `--help` does not import TensorFlow.
PLOT_KINDS = ("samples", "reconstructions", "interpolation", "manifold", "latent-scatter")
MASKS = ("bottom-half", "right-half", "random-half")  # tfvae.workflow.MASKS
IMPUTATION_METHODS = ("metropolis_within_gibbs", "pseudo_gibbs")  # tfvae.inference's
OBJECTIVE_NAMES = ("elbo", "iwae")  # tfvae.objectives.registry's
LEARNING_RATE_SCHEDULES = ("constant", "cosine")  # tfvae.workflow's


def _hidden_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        sizes = ()
        text = None
    if text is None or any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(
            "expected comma-separated positive layer widths such as 500,500 (or '' for a "
            "single linear layer)"
        )
    return sizes


def _train(args) -> int:
    from tfvae import workflow

    config = workflow.TrainConfig(
        dataset=args.dataset,
        data_dir=args.data_dir,
        epochs=args.epochs,
        batch_size=args.batch_size,
        latent_dim=args.latent_dim,
        likelihood=args.likelihood,
        architecture=args.architecture,
        hidden=args.hidden,
        learning_rate=args.lr,
        lr_schedule=args.lr_schedule,
        objective=args.objective,
        num_samples=args.num_samples,
        activation=args.activation,
        beta=args.beta,
        kl_warmup_epochs=args.kl_warmup_epochs,
        kl_cycles=args.kl_cycles,
        free_bits=args.free_bits,
        seed=args.seed,
        out=args.out,
        tensorboard=args.tensorboard,
        jit_compile=not args.no_xla,
    )
    if args.export:  # Refuse the export's folders now, not after an hour of training.
        from tfvae import export

        export.check_destinations(workflow.check_out(config).name)
    out = workflow.train(config, restart=args.restart)
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
    train.add_argument(
        "--dataset",
        default="digits",
        help="digits (embedded, default), mnist, fashion_mnist, or a .npy/.npz file or "
        "folder of PNG images",
    )
    train.add_argument(
        "--data-dir", help="folder with the dataset's files (else $TFVAE_DATA_DIR, the Keras cache)"
    )
    train.add_argument("--epochs", type=int, help="passes over the training set")
    train.add_argument("--batch-size", type=int, default=100, help="examples per step (100)")
    train.add_argument("--latent-dim", type=int, help="size of the latent z")
    train.add_argument("--likelihood", choices=LIKELIHOOD_NAMES, help="p(x|z) family")
    train.add_argument("--architecture", choices=("mlp", "conv"), help="encoder/decoder kind")
    train.add_argument("--hidden", type=_hidden_sizes, help="MLP hidden layer widths, e.g. 500,500")
    train.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (0.001)")
    train.add_argument(
        "--lr-schedule",
        choices=LEARNING_RATE_SCHEDULES,
        default="constant",
        help="constant, or cosine decay to 0 over all steps (constant)",
    )
    train.add_argument(
        "--objective", choices=OBJECTIVE_NAMES, default="elbo", help="training bound (elbo)"
    )
    train.add_argument(
        "--num-samples", type=int, default=1, help="latent samples per example and step (1)"
    )
    train.add_argument("--activation", default="relu", help="hidden activation (relu)")
    train.add_argument(
        "--beta", type=float, default=1.0, help="KL weight of the elbo objective (1.0)"
    )
    kl_schedule = train.add_mutually_exclusive_group()
    kl_schedule.add_argument(
        "--kl-warmup-epochs",
        type=int,
        metavar="E",
        help="raise the KL weight linearly from 0 to --beta over the first E epochs",
    )
    kl_schedule.add_argument(
        "--kl-cycles",
        type=int,
        metavar="M",
        help="cyclical KL annealing: M cycles over the run, each rising from 0 to --beta "
        "over its first half (Fu et al. 2019)",
    )
    train.add_argument(
        "--free-bits",
        type=float,
        default=0.0,
        metavar="NATS",
        help="free bits: a floor on each latent dimension's batch-mean KL (0: off)",
    )
    train.add_argument("--seed", type=int, default=0, help="seed of weights, noise and data (0)")
    train.add_argument(
        "--out",
        help="output folder (saved_models/<dataset>); must be new, empty, or a model folder "
        "tfvae wrote, which is replaced (its SavedModel versions are kept)",
    )
    train.add_argument("--tensorboard", metavar="DIR", help="write TensorBoard logs to DIR")
    train.add_argument(
        "--restart",
        action="store_true",
        help="discard the checkpoint an interrupted run left in OUT.checkpoint/ (without "
        "it, the same command resumes that run)",
    )
    train.add_argument(
        "--no-xla", action="store_true", help="do not compile the train step with XLA"
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
    evaluate.add_argument("--dataset", help="dataset name or file (default: the training one)")
    evaluate.add_argument("--data-dir", help="folder with the dataset's files")
    evaluate.add_argument("--split", choices=("train", "test"), default="test", help="(test)")
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
        "coloured by label (first two latent dimensions, 256x256 pixels).",
    )
    plot.add_argument("model", help="a folder written by 'tfvae train'")
    plot.add_argument("--kind", required=True, choices=PLOT_KINDS, help="the picture to draw")
    plot.add_argument("--out", help="PNG to write (KIND.png)")
    plot.add_argument("-n", type=int, default=64, help="samples or reconstructed images (64)")
    plot.add_argument("--seed", type=int, default=0, help="seed of the samples (0)")
    plot.add_argument("--steps", type=int, default=8, help="pictures per interpolation row (8)")
    plot.add_argument("--grid", type=int, default=20, help="manifold cells per side (20)")
    plot.add_argument("--dataset", help="dataset name or file (default: the training one)")
    plot.add_argument("--data-dir", help="folder with the dataset's files")
    plot.add_argument("--split", choices=("train", "test"), default="test", help="(test)")
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
        "--mask", choices=MASKS, default="bottom-half", help="what is missing (bottom-half)"
    )
    impute.add_argument(
        "--method",
        choices=IMPUTATION_METHODS,
        default="metropolis_within_gibbs",
        help="the Markov chain (metropolis_within_gibbs)",
    )
    impute.add_argument("--steps", type=int, default=100, help="chain steps (100)")
    impute.add_argument("-n", type=int, default=16, help="images (16)")
    impute.add_argument("--seed", type=int, default=0, help="seed of the chain and mask (0)")
    impute.add_argument("--out", default="impute.png", help="PNG to write (impute.png)")
    impute.add_argument("--dataset", help="dataset name or file (default: the training one)")
    impute.add_argument("--data-dir", help="folder with the dataset's files")
    impute.add_argument("--split", choices=("train", "test"), default="test", help="(test)")
    impute.set_defaults(handler=_impute)
    return parser


def main(argv=None) -> int:
    """Runs the command line; returns the process exit code (0 on success)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info logs.
    try:
        return args.handler(args)
    except (ValueError, TypeError, OSError) as error:
        print(f"tfvae {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
