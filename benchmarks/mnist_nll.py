"""MNIST test negative log-likelihood of a one-stochastic-layer VAE trained here.

The setup of Burda et al. (2015), "Importance Weighted Autoencoders": 784-200-200-50 with
tanh hidden units, a Bernoulli likelihood on dynamically binarized MNIST, Adam, batch
100; the test NLL is estimated with k = 5000 importance samples on the test set
binarized once with a fixed seed. Options change the recipe (objective, samples,
widths, learning-rate schedule) and every run is appended to `results/mnist_nll.json`,
so each attempt is on record, not only the best.

The model is saved to `saved_models/NAME/` and exported to `export/NAME/` (ONNX) and
`saved_models/NAME/1/` (SavedModel); none of these are in git.

    .venv/bin/python benchmarks/mnist_nll.py --epochs 100 --objective iwae --num-samples 5
"""

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import report

DEFAULT_DATA_DIR = report.REPOSITORY.parent / "shared" / "data" / "mnist"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, required=True, help="passes over the 60,000")
    parser.add_argument("--objective", choices=("elbo", "iwae"), default="iwae")
    parser.add_argument("--num-samples", type=int, default=5, help="k during training (5)")
    parser.add_argument("--eval-samples", type=int, default=5000, help="k for the test NLL")
    parser.add_argument("--hidden", default="200,200", help="hidden widths (200,200)")
    parser.add_argument("--latent-dim", type=int, default=50)
    parser.add_argument(
        "--latent-dims", help="a hierarchy, z1 first (100,50: Burda et al.'s two layers)"
    )
    parser.add_argument(
        "--gradient-estimator", default="reparameterization", help="reparameterization or dreg"
    )
    parser.add_argument("--activation", default="tanh")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (0.001)")
    parser.add_argument("--lr-schedule", choices=("constant", "cosine"), default="cosine")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    parser.add_argument("--name", help="model and export name (default from the options)")
    parser.add_argument(
        "--workdir",
        default=str(report.REPOSITORY),
        help="where saved_models/NAME and export/NAME go (the repository)",
    )
    parser.add_argument("--out", help="JSON file to append to (results/mnist_nll.json)")
    parser.add_argument(
        "--evaluate-only",
        action="store_true",
        help="evaluate and export saved_models/NAME, trained before by this script with the "
        "same options, without training again",
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from tfvae import workflow

    hidden = tuple(int(width) for width in args.hidden.split(",") if width)
    latent_dims = tuple(int(size) for size in (args.latent_dims or str(args.latent_dim)).split(","))
    estimator = (
        "" if args.gradient_estimator == "reparameterization" else f"_{args.gradient_estimator}"
    )
    layers = "" if len(latent_dims) == 1 else "_z" + "-".join(map(str, latent_dims))
    name = args.name or (
        f"mnist_{args.objective}{estimator}_k{args.num_samples}_{'-'.join(map(str, hidden))}"
        f"{layers}_{args.epochs}ep"
    )
    workdir = Path(args.workdir)
    out = workdir / "saved_models" / name
    # Beside the model folder, not in it (tfvae replaces only folders holding its own
    # files); read by --evaluate-only.
    timing = out.with_name(f"{name}.train_seconds.json")
    if args.evaluate_only:
        train_seconds = json.loads(timing.read_text()) if timing.is_file() else None
    else:
        config = workflow.TrainConfig(
            dataset="mnist",
            data_dir=args.data_dir,
            epochs=args.epochs,
            batch_size=args.batch_size,
            latent_dims=latent_dims,
            likelihood="bernoulli",
            architecture="mlp",
            hidden=hidden,
            learning_rate=args.lr,
            lr_schedule=args.lr_schedule,
            objective=args.objective,
            num_samples=args.num_samples,
            gradient_estimator=args.gradient_estimator,
            activation=args.activation,
            seed=args.seed,
            out=str(out),
        )
        start = time.perf_counter()
        workflow.train(config, verbose=2)
        train_seconds = time.perf_counter() - start
        timing.write_text(json.dumps(train_seconds))
    start = time.perf_counter()
    metrics = workflow.evaluate(out, num_samples=args.eval_samples)
    eval_seconds = time.perf_counter() - start
    bundle = workflow.export(
        out, out_dir=workdir / "export" / name, saved_model_dir=workdir / "saved_models" / name
    )
    run = {
        "date": datetime.date.today().isoformat(),
        "command": report.command(),
        "name": name,
        "objective": args.objective,
        "num_samples": args.num_samples,
        "hidden": list(hidden),
        "latent_dim": latent_dims[0],
        "latent_dims": list(latent_dims),
        "gradient_estimator": args.gradient_estimator,
        "activation": args.activation,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "lr_schedule": args.lr_schedule,
        "epochs": args.epochs,
        "train_minutes": None if train_seconds is None else train_seconds / 60,
        "eval_samples": args.eval_samples,
        "eval_minutes": eval_seconds / 60,
        "test_nll_nats": metrics["nll"],
        "test_elbo_nats": metrics["elbo"],
        "test_kl_nats": metrics["kl"],
        "model": str(out.relative_to(workdir)),
        "bundle": str(Path(bundle).relative_to(workdir)),
        "machine": report.machine(),
    }
    path = Path(args.out) if args.out else None
    runs = report.read_results("mnist_nll", path) or []
    report.write_results("mnist_nll", [*runs, run], path)
    columns = ["name", "epochs", "train_minutes", "eval_samples", "test_elbo_nats"]
    report.print_table([*runs, run], [*columns, "test_nll_nats"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
