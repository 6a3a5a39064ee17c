"""The data recipes and the input transformation of the training workflow."""

import json
import math

import keras
import numpy as np
import pytest

from tests.helpers import tree_snapshot
from tfvae import data, outputs, semi_supervised, workflow


@pytest.mark.parametrize(
    "x, likelihood, scale, binarize",
    [
        (np.array([[0, 1], [1, 0]], dtype=np.uint8), "bernoulli", None, None),
        (np.array([[0, 255], [17, 3]], dtype=np.uint8), "bernoulli", 255.0, "dynamic"),
        (np.array([[0, 12], [3, 7]], dtype=np.int64), "binomial", None, None),
        (np.array([[0, 16], [3, 7]], dtype=np.uint8), "binomial", None, None),
        (np.array([[0.0, 0.5], [1.0, 0.2]], dtype=np.float32), "continuous_bernoulli", None, None),
        (
            np.array([[-1.5, 0.5], [3.0, 0.2]], dtype=np.float32),
            "gaussian_learned_scale",
            None,
            None,
        ),
    ],
)
def test_recipe_for_user_data_follows_the_values(x, likelihood, scale, binarize):
    recipe = workflow.recipe_for("my_file.npy", x)
    assert (recipe.likelihood, recipe.scale, recipe.binarize) == (likelihood, scale, binarize)


def test_named_datasets_have_their_own_recipe():
    x = np.zeros((2, 8, 8, 1), dtype=np.uint8)
    assert workflow.recipe_for("digits", x).likelihood == "binomial"
    assert workflow.recipe_for("digits", x).likelihood_config == {"total_count": 16}
    assert workflow.recipe_for("mnist", x).binarize == "dynamic"


def test_model_input_scales_and_binarizes_reproducibly():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(400, 5), dtype=np.uint8)
    grey = workflow.model_input(x, workflow.Recipe(likelihood="bernoulli", scale=255.0))
    np.testing.assert_allclose(grey, x / 255.0, rtol=1e-6)
    recipe = workflow.Recipe(likelihood="bernoulli", scale=255.0, binarize="dynamic")
    binary = workflow.model_input(x, recipe, seed=3)
    np.testing.assert_array_equal(binary, workflow.model_input(x, recipe, seed=3))
    assert set(np.unique(binary)) <= {0.0, 1.0}
    # Pixel frequencies follow the intensities: 2000 draws, 4 standard errors.
    assert abs(binary.mean() - grey.mean()) < 4 * 0.5 / np.sqrt(binary.size)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": -1}, "batch_size"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"architecture": "rnn"}, r"architecture to be one of \['mlp', 'conv'\]"),
        ({"likelihood": "poisson"}, r"likelihood to be one of \['bernoulli'"),
        ({"num_samples": 0}, "num_samples"),
        ({"lr_schedule": "step"}, r"lr_schedule to be one of \['constant', 'cosine'\]"),
        ({"objective": "vae"}, r"objective to be one of \['elbo', 'iwae'\]"),
        ({"activation": "swoosh"}, r"activation to be the name of a Keras activation"),
        ({"hidden": (8, 0)}, r"hidden to be a sequence of positive layer widths"),
        ({"seed": -1}, r"seed to be an integer in \[0, 2147483647\]"),
        ({"seed": 2**31}, r"Received: seed=2147483648"),
        ({"kl_warmup_epochs": 2, "kl_cycles": 3}, "at most one KL schedule"),
    ],
)
def test_train_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        workflow.TrainConfig(**kwargs)


def test_resolve_fills_only_the_unset_fields():
    config = workflow.TrainConfig(latent_dim=3).resolve(workflow.RECIPES["digits"])
    assert config.latent_dim == 3
    assert config.likelihood == "binomial"
    assert config.hidden == workflow.RECIPES["digits"].hidden
    assert config.out == "saved_models/digits"


def test_integer_counts_are_binomial_out_of_their_maximum():
    recipe = workflow.recipe_for("counts.npy", np.array([[0, 12], [3, 7]], dtype=np.int64))
    assert recipe.likelihood_config == {"total_count": 12} and recipe.data_range == (0.0, 12.0)


@pytest.mark.parametrize(
    "likelihood, scale, binarize, total_count",
    [
        ("bernoulli", 16.0, "dynamic", None),
        ("continuous_bernoulli", 16.0, None, None),
        ("gaussian", 16.0, None, None),
        ("gaussian_learned_scale", 16.0, None, None),
        ("binomial", None, None, 16),
    ],
)
def test_choosing_a_likelihood_rescales_the_digits_for_it(likelihood, scale, binarize, total_count):
    x, _ = data.load("digits", split="test")
    recipe = workflow.recipe_for("digits", x, likelihood)
    total_count = recipe.likelihood_config.get("total_count")
    assert (recipe.likelihood, recipe.scale, recipe.binarize, total_count) == (
        likelihood,
        scale,
        binarize,
        total_count,
    )
    model_x = workflow.model_input(x, recipe)
    if likelihood == "binomial":
        assert model_x.max() == 16 and np.all(model_x == np.round(model_x))
    else:
        assert 0.0 <= model_x.min() and model_x.max() <= 1.0


def test_binomial_needs_counts():
    for x in ([[-0.1, 2.5]], [[0.25, 0.75]]):  # real values, intensities: no count of trials
        with pytest.raises(ValueError, match="Expected counts or binarized data"):
            workflow.recipe_for("floats.npy", np.array(x, dtype=np.float32), "binomial")
    binarized = workflow.recipe_for("mnist", np.zeros((1, 2), np.uint8), "binomial")
    assert binarized.likelihood_config == {"total_count": 1}
    assert binarized.binarize == "dynamic"


def test_empty_hidden_means_a_single_linear_layer():
    config = workflow.TrainConfig(hidden=()).resolve(workflow.RECIPES["digits"])
    assert config.hidden == ()


def test_build_model_passes_the_objective_and_activation_on():
    config = workflow.TrainConfig(
        objective="iwae", num_samples=3, activation="tanh", hidden=(4,)
    ).resolve(workflow.RECIPES["digits"])
    model = workflow.build_model(config, workflow.RECIPES["digits"])
    model.build((None, 8, 8, 1))
    assert (model.objective.family, model.num_samples) == ("iwae", 3)
    for network in (model.encoder, model.decoder):
        assert network.hidden_layers[0].activation is keras.activations.tanh


def test_build_model_stacks_the_latent_dims_with_their_own_seeds():
    config = workflow.TrainConfig(latent_dims=(6, 4, 2), activation="elu", hidden=(4,), seed=7)
    recipe = workflow.RECIPES["digits"]
    model = workflow.build_model(config.resolve(recipe), recipe)
    model.build((None, 8, 8, 1))
    assert model.latent_dims == (6, 4, 2)
    layers = [model.prior_layer, model.prior_layer.prior]
    # Every network has its own seed: encoder 7, decoder 8, (M2's classifier 9,) then two
    # per layer above z1.
    seeds = [model.encoder.seed, model.decoder.seed]
    seeds += [network.seed for layer in layers for network in (layer.encoder, layer.decoder)]
    assert seeds == [7, 8, 10, 11, 12, 13]
    assert all(
        layer.encoder.hidden_layers[0].activation is keras.activations.elu for layer in layers
    )


@pytest.mark.parametrize("seed, decoder_seed", [(0, 1), (41, 42), (2**31 - 2, 2**31 - 1)])
def test_the_decoder_is_seeded_after_the_encoder(seed, decoder_seed):
    """Seed s gives the decoder s + 1, as every run before the wrap-around did."""
    config = _tiny("unused", seed=seed).resolve(workflow.RECIPES["digits"])
    model = workflow.build_model(config, workflow.RECIPES["digits"])
    assert (model.encoder.seed, model.decoder.seed) == (seed, decoder_seed)


def test_the_largest_seed_wraps_the_decoders_seed_to_zero():
    config = _tiny("unused", seed=2**31 - 1).resolve(workflow.RECIPES["digits"])
    model = workflow.build_model(config, workflow.RECIPES["digits"])
    assert (model.encoder.seed, model.decoder.seed) == (2**31 - 1, 0)


def test_cosine_schedule_decays_the_learning_rate_to_zero_over_all_steps():
    config = workflow.TrainConfig(learning_rate=0.01, lr_schedule="cosine").resolve(
        workflow.RECIPES["digits"]
    )
    model = workflow.build_model(config, workflow.RECIPES["digits"], steps=40)
    for step in (0, 10, 20, 40):
        model.optimizer.iterations.assign(step)
        expected = 0.01 * 0.5 * (1 + math.cos(math.pi * step / 40))
        assert float(model.optimizer.learning_rate) == pytest.approx(expected, rel=1e-5, abs=1e-9)
    with pytest.raises(ValueError, match="number of training steps"):
        workflow.build_model(config, workflow.RECIPES["digits"])


# Outputs: `train` replaces only a model folder that tfvae wrote, keeps its SavedModel
# versions, and refuses anything else before training (tfvae.outputs).


def _tiny(out, **kwargs):
    options = {"epochs": 1, "hidden": (8,), "latent_dim": 2, "jit_compile": "off"}
    return workflow.TrainConfig(out=str(out), **{**options, **kwargs})


@pytest.mark.slow
def test_retraining_replaces_the_model_folder_and_keeps_saved_model_versions(tmp_path):
    out = workflow.train(_tiny(tmp_path / "run"), verbose=0)
    assert json.loads((out / "config.json").read_text())["format"] == "tfvae.model"
    workflow.export(out, out_dir=tmp_path / "bundle", saved_model_dir=out)
    versions = tree_snapshot(out / "1")
    assert (out / "1" / "saved_model.pb").is_file()
    model_before = (out / "model.keras").read_bytes()

    assert workflow.train(_tiny(tmp_path / "run", epochs=2, seed=1), verbose=0) == out
    assert sorted(p.name for p in out.iterdir()) == [
        "1",
        "config.json",
        "history.json",
        "model.keras",
        "reconstructions.png",
        "samples.png",
    ]
    assert tree_snapshot(out / "1") == versions
    assert (out / "model.keras").read_bytes() != model_before
    assert len(json.loads((out / "history.json").read_text())["loss"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "run"]  # no staging left


@pytest.mark.slow
def test_train_checks_the_folder_again_before_replacing_it(tmp_path, monkeypatch):
    out = workflow.train(_tiny(tmp_path / "run"), verbose=0)
    real_fit = keras.Model.fit

    def fit_while_a_user_writes(self, *args, **kwargs):
        (out / "notes.txt").write_text("written while training ran")
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", fit_while_a_user_writes)
    before = tree_snapshot(tmp_path)
    with pytest.raises(outputs.OutputRefusedError, match="did not write: notes.txt"):
        workflow.train(_tiny(tmp_path / "run", seed=1), verbose=0)
    after = tree_snapshot(tmp_path)
    assert after.pop("run/notes.txt")
    # The finished run stays in its checkpoint: moving notes.txt away and running the
    # same command again writes the model folder without training again.
    checkpoint = {name: after.pop(name) for name in list(after) if name.startswith("run.")}
    assert set(checkpoint) == {
        "run.checkpoint",
        "run.checkpoint/model.keras",
        "run.checkpoint/state.json",
    }
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "run.checkpoint"]
    monkeypatch.undo()
    (out / "notes.txt").unlink()
    workflow.train(_tiny(tmp_path / "run", seed=1), verbose=0)  # no epoch left to train
    model, _, config = workflow.load(out)
    assert config.seed == 1 and int(model.optimizer.iterations) == 15  # one epoch's steps
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_train_refuses_the_data_folder_and_its_ancestors_before_loading(tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    data_dir.mkdir()  # empty, yet an input
    loads = []
    monkeypatch.setattr(workflow.data, "load", lambda *args, **kwargs: loads.append(args))
    for out in (data_dir, tmp_path):
        with pytest.raises(outputs.OutputRefusedError, match="the input data_dir="):
            workflow.train(_tiny(out, data_dir=str(data_dir)), verbose=0)
    with pytest.raises(outputs.OutputRefusedError, match="the input tensorboard="):
        workflow.train(_tiny(tmp_path / "run", tensorboard=str(tmp_path / "run/logs")))
    assert loads == []
    assert tree_snapshot(tmp_path) == {"data": "folder"}


def test_a_dataset_folder_is_protected_but_a_folder_named_like_a_dataset_is_not(
    tmp_path, monkeypatch
):
    (tmp_path / "images").mkdir()
    config = _tiny(tmp_path, dataset=str(tmp_path / "images"))
    with pytest.raises(outputs.OutputRefusedError, match="holds the input dataset="):
        workflow.check_out(config)
    # `--out digits` twice: the registered dataset "digits" is no path, whatever is there.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "digits").mkdir()
    assert str(workflow.check_out(_tiny("digits", dataset="digits"))) == "digits"


def test_a_config_json_written_before_likelihood_config_still_loads():
    """Model folders of the previous release record the binomial's trials as a recipe
    field `total_count`; loading them gives today's recipe of the digits."""
    old = {
        "likelihood": "binomial",
        "total_count": 16,
        "scale": None,
        "binarize": None,
        "data_range": [0.0, 16.0],
        "architecture": "mlp",
        "hidden": [256, 256],
        "latent_dim": 8,
        "epochs": 100,
    }
    assert workflow.Recipe.from_dict(old) == workflow.RECIPES["digits"]
    mnist = {**old, "likelihood": "bernoulli", "total_count": None, "scale": 255.0}
    recipe = workflow.Recipe.from_dict({**mnist, "binarize": "dynamic", "data_range": [0, 1]})
    assert recipe.likelihood_config == {} and recipe.full_scale == 255.0


def test_the_labels_of_a_run_are_one_hot_or_partly_kept():
    y_train, y_test = np.arange(60) % 3, np.arange(9) % 3
    assert workflow.Labels.of_run(workflow.TrainConfig(), y_train, y_test).num_classes is None
    conditional = workflow.Labels.of_run(workflow.TrainConfig(conditional=True), y_train, y_test)
    np.testing.assert_array_equal(conditional.train, np.eye(3)[y_train])
    m2 = workflow.Labels.of_run(workflow.TrainConfig(labels_per_class=2, seed=4), y_train, y_test)
    x, labels = m2.training_examples(np.arange(60))
    kept = m2.train != semi_supervised.UNLABELLED
    assert np.array_equal(np.bincount(y_train[kept]), [2, 2, 2])
    # Every unlabelled example once, a tenth labelled: 54 and 6 labelled ones repeated.
    assert sorted(x[labels == semi_supervised.UNLABELLED]) == sorted(np.nonzero(~kept)[0])
    assert np.mean(labels != semi_supervised.UNLABELLED) == pytest.approx(0.1, abs=0.01)
    model = workflow.build_model(
        workflow.TrainConfig(labels_per_class=2, hidden=(4,), seed=4).resolve(
            workflow.RECIPES["digits"]
        ),
        workflow.RECIPES["digits"],
        num_classes=3,
    )
    assert (model.num_classes, model.alpha, model.classifier.seed) == (3, 200.0, 6)
    # A split's labels: one-hot for the networks, integers for M2's metrics.
    condition, targets = workflow.label_inputs(model, y_test)
    np.testing.assert_array_equal(condition, np.eye(3)[y_test])
    np.testing.assert_array_equal(targets, y_test)
    with pytest.raises(ValueError, match=r"labels in 0\.\.2: .*Received: labels from 0 to 3"):
        workflow.label_inputs(model, np.array([0, 3]))
    with pytest.raises(ValueError, match=r"at least 2 classes.*Received: num_classes=None"):
        workflow.build_model(
            workflow.TrainConfig(conditional=True).resolve(workflow.RECIPES["digits"]),
            workflow.RECIPES["digits"],
        )
