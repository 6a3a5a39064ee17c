"""The run configuration and the `tfvae train` options derived from its fields."""

import argparse
import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from tfvae import cli, config, likelihoods, objectives, workflow
from tfvae.config import TrainConfig

# The flags of `tfvae train` as the README and earlier releases spell them.
TRAIN_FLAGS = {
    "--dataset",
    "--data-dir",
    "--epochs",
    "--batch-size",
    "--latent-dim",
    "--latent-dims",
    "--likelihood",
    "--architecture",
    "--conditional",
    "--labels-per-class",
    "--alpha",
    "--hidden",
    "--lr",
    "--lr-schedule",
    "--objective",
    "--num-samples",
    "--gradient-estimator",
    "--activation",
    "--beta",
    "--kl-warmup-epochs",
    "--kl-cycles",
    "--free-bits",
    "--seed",
    "--out",
    "--tensorboard",
    "--xla",
    "--distribute",
}


def _train_parser() -> argparse.ArgumentParser:
    parser = cli.build_parser()
    (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices["train"]


def _actions(parser) -> dict:
    return {action.dest: action for action in parser._actions}


def _parse(*argv) -> TrainConfig:
    return cli.config_from(cli.build_parser().parse_args(["train", *argv]))


def test_importing_config_loads_neither_tensorflow_nor_keras():
    code = (
        "import sys, tfvae.config, tfvae.cli\n"
        "tfvae.cli.build_parser()\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_field_is_one_option_with_the_documented_flag():
    flags = {}  # the first option of each field; `switches` follow it
    for action in _train_parser()._actions:
        if action.dest in {f.name for f in dataclasses.fields(TrainConfig)}:
            flags.setdefault(action.dest, action.option_strings[0])
    assert set(flags) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(flags.values()) == TRAIN_FLAGS
    assert flags["learning_rate"] == "--lr" and flags["jit_compile"] == "--xla"
    other = {s for a in _train_parser()._actions for s in a.option_strings} - TRAIN_FLAGS
    assert other == {"-h", "--help", "--restart", "--export", "--no-xla"}


@pytest.mark.parametrize(
    "argv, expected", [([], "auto"), (["--xla", "on"], "on"), (["--no-xla"], "off")]
)
def test_xla_is_auto_unless_chosen_and_no_xla_is_off(argv, expected):
    assert _parse(*argv).jit_compile == expected


@pytest.mark.parametrize("xla, jit_compile", [("auto", "auto"), ("on", True), ("off", False)])
def test_the_xla_choice_reaches_the_models_compile(xla, jit_compile):
    config = TrainConfig(jit_compile=xla, hidden=(4,), latent_dim=2, likelihood="bernoulli")
    recipe = workflow.recipe_for("x.npy", np.zeros((2, 3), np.int64))
    model = workflow.build_model(config.resolve(recipe), recipe)
    assert model.get_compile_config()["jit_compile"] == jit_compile


def test_xla_and_no_xla_exclude_each_other(capsys):
    with pytest.raises(SystemExit):
        _parse("--xla", "on", "--no-xla")
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize("saved, expected", [(True, "on"), (False, "off"), ("auto", "auto")])
def test_a_config_saved_before_auto_keeps_its_choice(saved, expected):
    """config.json of tfvae 0.1 recorded jit_compile as a boolean."""
    fields = config.upgraded({"jit_compile": saved, "epochs": 3})
    assert fields == {"jit_compile": expected, "epochs": 3}
    assert TrainConfig(**fields).jit_compile == expected


def test_jit_compile_takes_a_boolean_and_refuses_other_values_by_name():
    assert (
        TrainConfig(jit_compile=True).jit_compile,
        TrainConfig(jit_compile=False).jit_compile,
    ) == (
        "on",
        "off",
    )
    with pytest.raises(ValueError, match=r"jit_compile to be one of \['auto', 'on', 'off'\]"):
        TrainConfig(jit_compile="yes")


def test_no_options_give_the_default_config():
    assert _parse() == TrainConfig()
    # The defaults of earlier releases' command line.
    parsed = _parse()
    assert (parsed.dataset, parsed.batch_size, parsed.learning_rate) == ("digits", 100, 1e-3)
    assert (parsed.lr_schedule, parsed.objective, parsed.seed) == ("constant", "elbo", 0)
    assert parsed.jit_compile == "auto" and parsed.hidden is None and parsed.epochs is None


def test_values_are_parsed_by_the_field_type():
    parsed = _parse(
        *("--epochs", "3", "--lr", "0.01", "--hidden", "4,5", "--beta", "0.5"),
        *("--likelihood", "bernoulli", "--tensorboard", "logs", "--no-xla"),
    )
    assert (parsed.epochs, parsed.learning_rate, parsed.hidden, parsed.beta) == (
        3,
        0.01,
        (4, 5),
        0.5,
    )
    assert (parsed.likelihood, parsed.tensorboard, parsed.jit_compile) == (
        "bernoulli",
        "logs",
        "off",
    )
    assert _parse("--hidden", "").hidden == ()


def test_help_shows_defaults_and_declared_metavars(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # help lines rewrapped
    assert "--batch-size BATCH_SIZE examples per step (100)" in text
    assert "--lr LR Adam learning rate (0.001)" in text
    assert "--kl-warmup-epochs E | --kl-cycles M" in text
    assert "--xla {auto,on,off} compile the train step with XLA: auto takes" in text
    assert "--no-xla the same as --xla off" in text


def test_choices_are_the_registries_names():
    actions = _actions(_train_parser())
    assert actions["likelihood"].choices == likelihoods.registry.names()
    assert actions["objective"].choices == objectives.registry.names()
    assert actions["architecture"].choices == ["mlp", "conv"]
    assert actions["lr_schedule"].choices == ["constant", "cosine"]


def test_a_likelihood_registered_later_is_listed_and_accepted(monkeypatch, capsys):
    monkeypatch.setitem(likelihoods.registry._classes, "my_family", likelihoods.Bernoulli)
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    assert "my_family" in capsys.readouterr().out
    assert _parse("--likelihood", "my_family").likelihood == "my_family"
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"likelihood to be one of \['bernoulli'"):
        TrainConfig(likelihood="my_family")


def test_one_kl_schedule_at_a_time():
    with pytest.raises(SystemExit):
        _parse("--kl-warmup-epochs", "2", "--kl-cycles", "3")


@dataclasses.dataclass(frozen=True)
class _Extended(TrainConfig):
    warmup_steps: int = config.option(5, "steps of learning-rate warm-up", metavar="N")
    widths: tuple[int, ...] = config.option((2, 3), "some widths")
    verbose_plots: bool = config.option(False, "draw more pictures")
    family: str | None = config.option(None, "a family", choices=likelihoods.registry.names)
    fast_path: bool = config.option(True, "take the slow path")


def test_a_field_added_to_a_derived_config_is_a_new_option():
    parser = argparse.ArgumentParser()
    cli.add_options(parser, _Extended)
    default = cli.config_from(parser.parse_args([]), _Extended)
    assert default == _Extended()
    assert (default.warmup_steps, default.widths, default.verbose_plots) == (5, (2, 3), False)
    argv = ["--warmup-steps", "7", "--widths", "8", "--verbose-plots", "--family", "gaussian"]
    parsed = cli.config_from(parser.parse_args([*argv, "--no-xla", "--no-fast-path"]), _Extended)
    assert (parsed.warmup_steps, parsed.widths, parsed.verbose_plots) == (7, (8,), True)
    assert (parsed.family, parsed.jit_compile, parsed.fast_path) == ("gaussian", "off", False)
    assert default.fast_path is True
    with pytest.raises(SystemExit):
        parser.parse_args(["--family", "poisson"])


def test_a_field_without_an_option_is_refused():
    @dataclasses.dataclass(frozen=True)
    class Undeclared(TrainConfig):
        secret: int = 3

    with pytest.raises(TypeError, match="field 'secret' without one"):
        cli.add_options(argparse.ArgumentParser(), Undeclared)


def test_the_workflow_names_are_the_configs():
    assert workflow.TrainConfig is TrainConfig
    assert workflow.LEARNING_RATE_SCHEDULES is config.LEARNING_RATE_SCHEDULES
    assert workflow.ARCHITECTURES is config.ARCHITECTURES


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"likelihood": "poisson"}, r"likelihood to be one of \['bernoulli', 'binomial'"),
        ({"objective": "vae"}, r"objective to be one of \['elbo', 'iwae'\]"),
        ({"hidden": [4, 0]}, "hidden to be a sequence of positive layer widths"),
        ({"hidden": "500"}, "hidden to be a sequence of positive layer widths"),
        (
            {"latent_dims": ()},
            r"latent_dims to be positive latent sizes.*Received: latent_dims=\(\)",
        ),
        ({"latent_dims": (100, 0)}, r"latent_dims to be positive latent sizes"),
        ({"latent_dims": (8, 4), "latent_dim": 6}, r"latent_dim to be the first of latent_dims"),
        ({"conditional": True, "labels_per_class": 3}, r"one of conditional .* labels_per_class"),
        ({"labels_per_class": 0}, r"labels_per_class to be a positive integer"),
        ({"labels_per_class": 3, "alpha": -1.0}, r"Received: alpha=-1"),
        (
            {"labels_per_class": 3, "gradient_estimator": "score_function"},
            r"gradient_estimator='reparameterization' with labels_per_class",
        ),
        ({"seed": None}, r"seed to be an integer in \[0, 2147483647\]\. Received: seed=None"),
        ({"activation": "swoosh"}, r"Keras activation .* Received: activation='swoosh'"),
    ],
)
def test_bad_values_are_refused_by_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_latent_dims_parse_and_resolve_the_size_of_z1():
    config = _parse("--latent-dims", "100,50")
    assert config.latent_dims == (100, 50) and config.latent_dim is None
    assert config.resolve(workflow.RECIPES["mnist"]).latent_dim == 100
    assert TrainConfig(latent_dims=[8, 4], latent_dim=8).latent_dims == (8, 4)  # config.json


def test_resolve_names_the_model_folder_after_the_dataset_file():
    recipe = workflow.RECIPES["mnist"]
    assert TrainConfig(dataset="data/images.npz").resolve(recipe).out == "saved_models/images"
    assert TrainConfig(dataset="digits", out="run").resolve(recipe).out == "run"
