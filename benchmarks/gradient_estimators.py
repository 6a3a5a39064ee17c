"""The gradient estimators on the digits: their variance, their training runs, DReG's SNR.

One model family throughout: the embedded digits scaled to [0, 1], a continuous
Bernoulli likelihood, MLP encoder and decoder with one hidden layer of 64, 4 latents,
Adam 3e-3, batches of 100, XLA, seeds fixed (as in tests/test_diagnostics.py, longer).

    training     each estimator trains the same initial model for --epochs epochs: test
                 ELBO before and after (nats per image) and seconds per epoch
    variance     at the reparameterization run's final weights, on its first 100
                 training digits: each estimator's encoder-gradient variance (trace of
                 the covariance) and SNR over --draws draws, and its ratio to
                 reparameterization's; the NVIL run is measured at its own weights against
                 its moving average alone
    dreg_snr     a model trained on the IWAE bound (k = 5): the encoder SNR of the plain
                 IWAE gradient and of DReG at each k in --ks

    .venv/bin/python benchmarks/gradient_estimators.py
"""

import argparse
import sys
import time
from pathlib import Path

import keras
import report

import tfvae
from tfvae import data, diagnostics, estimators

ESTIMATORS = {
    "reparameterization": "reparameterization",
    "score_function": "score_function",  # with its moving-average baseline
    "score_function_nvil": estimators.ScoreFunction(baseline="nvil"),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=30, help="training epochs per run")
    parser.add_argument("--draws", type=int, default=200, help="gradient draws per estimate")
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 5, 50], help="IWAE samples")
    parser.add_argument("--out", help="JSON file (default: results/gradient_estimators.json)")
    parser.add_argument(
        "--no-xla", dest="jit_compile", action="store_false", help="compile without XLA"
    )
    return parser.parse_args(argv)


def _model(jit_compile, gradient_estimator, objective="elbo", num_samples=1):
    vae = tfvae.VAE(
        tfvae.networks.mlp_encoder((64,), seed=1),
        tfvae.networks.mlp_decoder((64,), seed=2),
        latent_dim=4,
        likelihood="continuous_bernoulli",
        seed=0,
        gradient_estimator=gradient_estimator,
        objective=objective,
        num_samples=num_samples,
    )
    vae.compile(keras.optimizers.Adam(3e-3), jit_compile=jit_compile)
    return vae


def _train(vae, x_train, x_test, epochs) -> dict:
    before = vae.evaluate(x_test, batch_size=100, verbose=0, return_dict=True)["elbo"]
    start = time.perf_counter()
    vae.fit(x_train, batch_size=100, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    after = vae.evaluate(x_test, batch_size=100, verbose=0, return_dict=True)["elbo"]
    return {"test_elbo_before": before, "test_elbo_after": after, "s_per_epoch": seconds / epochs}


def main(argv=None) -> int:
    args = parse_args(argv)
    x_train, _ = data.load("digits", split="train")
    x_test, _ = data.load("digits", split="test")
    x_train, x_test = (x_train / 16.0).astype("float32"), (x_test / 16.0).astype("float32")
    batch = x_train[:100]

    models, training = {}, []
    for name, estimator in ESTIMATORS.items():
        models[name] = _model(args.jit_compile, estimator)
        training.append({"estimator": name, **_train(models[name], x_train, x_test, args.epochs)})
    print(f"training: {args.epochs} epochs on the digits, test ELBO in nats per image")
    report.print_table(
        training, ["estimator", "test_elbo_before", "test_elbo_after", "s_per_epoch"]
    )

    unbaselined = estimators.ScoreFunction(baseline="none")
    nvil = models["score_function_nvil"]
    measurements = {  # weights -> (estimator, its label)
        "reparameterization run": [
            ("reparameterization", "reparameterization"),
            (unbaselined, "score_function, no baseline"),
            ("score_function", "score_function, moving average"),
        ],
        "NVIL run": [
            ("reparameterization", "reparameterization"),
            ("score_function", "score_function, moving average"),
            (nvil.gradient_estimator, "score_function, NVIL"),
        ],
    }
    variance = []
    for weights, chosen in measurements.items():
        model = models["reparameterization" if weights.startswith("re") else "score_function_nvil"]
        measured = diagnostics.gradient_variance(
            model, batch, [estimator for estimator, _ in chosen], num_draws=args.draws
        )
        reference = measured["reparameterization"].encoder.variance
        for (_, label), statistics in zip(chosen, measured.values(), strict=True):
            variance.append(
                {
                    "weights": weights,
                    "estimator": label,
                    "encoder_variance": statistics.encoder.variance,
                    "encoder_snr": statistics.encoder.snr,
                    "decoder_variance": statistics.decoder.variance,
                    "ratio_to_reparameterization": statistics.encoder.variance / reference,
                }
            )
    print(f"\nvariance: {args.draws} draws on 100 training digits")
    columns = ["weights", "estimator", "encoder_variance", "encoder_snr", "decoder_variance"]
    report.print_table(variance, [*columns, "ratio_to_reparameterization"])

    iwae = _model(args.jit_compile, "reparameterization", "iwae", 5)
    iwae_training = _train(iwae, x_train, x_test, args.epochs)
    dreg_snr = []
    for k in args.ks:
        snr = diagnostics.gradient_variance(
            iwae, batch, ["reparameterization", "dreg"], num_draws=args.draws, num_samples=k
        )
        row = {"k": k, **{f"{n}_encoder_snr": s.encoder.snr for n, s in snr.items()}}
        row["dreg_lead"] = row["dreg_encoder_snr"] / row["reparameterization_encoder_snr"]
        dreg_snr.append(row)
    print(f"\ndreg_snr: IWAE (k = 5) model, {args.draws} draws per k")
    report.print_table(
        dreg_snr, ["k", "reparameterization_encoder_snr", "dreg_encoder_snr", "dreg_lead"]
    )
    results = {
        "command": report.command(),
        "machine": report.machine(),
        "epochs": args.epochs,
        "draws": args.draws,
        "jit_compile": args.jit_compile,
        "training": training,
        "variance": variance,
        "iwae_training": iwae_training,
        "dreg_snr": dreg_snr,
    }
    path = report.write_results("gradient_estimators", results, args.out and Path(args.out))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
