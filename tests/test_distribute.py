"""Training on several workers: two local worker processes under MultiWorkerMirroredStrategy
(`tests.cluster.LocalCluster`) train like one process over the same global batches, only
the chief writes, a killed worker stops the other, and both resume; the strategies,
TF_CONFIG checks and per-replica noise of `tfvae.distribute`."""

import json
import textwrap
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tests.cluster import LocalCluster
from tfvae import checkpoints, distribute, workflow

RUN_SECONDS = 240  # each cluster's workers are bounded by this
STOP_SECONDS = 60  # a survivor must stop this soon after its peer is killed

# The run both tests train: the embedded digits, batches of 100 split over two replicas.
OPTIONS = {"dataset": "digits", "hidden": [32], "latent_dim": 4, "batch_size": 100}

# A worker of the Python API test: trains, then saves its own final weights.
_WORKER = textwrap.dedent(
    """
    import json, os, sys
    import keras, numpy as np
    from tfvae import workflow

    class SaveWeights(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
            np.savez(f"weights{index}.npz", *self.model.get_weights())

    workflow.train(workflow.TrainConfig(**json.loads(sys.argv[1])), 0, callbacks=[SaveWeights()])
    """
)


def _weights(path) -> list:
    with np.load(path) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]


@pytest.mark.slow
def test_two_workers_train_like_one_process_and_only_the_chief_writes(tmp_path, mirrored):
    """Two workers (one replica each, per-replica XLA) end with the same weights, bit for
    bit, and with those of one process whose MirroredStrategy splits the same global
    batches over two replicas with the same seed (the same noise: replica r folds its
    index into the seed wherever it runs; measured: equal to float32 rounding, checked
    within 1e-6)."""
    config = {**OPTIONS, "epochs": 2, "out": "model", "distribute": "multi-worker"}
    with LocalCluster(["-c", _WORKER, json.dumps(config)], tmp_path) as cluster:
        codes = cluster.wait(RUN_SECONDS)
        assert codes == [0, 0], cluster.output(0)[-3000:] + cluster.output(1)[-3000:]
    chief, other = _weights(tmp_path / "weights0.npz"), _weights(tmp_path / "weights1.npz")
    for a, b in zip(chief, other, strict=True):
        np.testing.assert_array_equal(a, b)

    reference_out = tmp_path / "reference"
    saved = {}

    class SaveWeights(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            saved["weights"] = self.model.get_weights()

    reference = workflow.TrainConfig(**{**config, "distribute": "none", "out": reference_out})
    workflow.train(reference, 0, callbacks=[SaveWeights()], strategy=mirrored)
    for a, b in zip(chief, saved["weights"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    history = json.loads((tmp_path / "model" / "history.json").read_text())
    assert history["elbo"][-1] > history["elbo"][0] + 5  # trained, not two untouched models

    # Only the chief wrote, and what it wrote reloads and evaluates like the reference.
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith((".log", ".npz"))) == [
        "model",
        "reference",
    ]
    model, _, _ = workflow.load(tmp_path / "model")
    for a, b in zip(model.get_weights(), chief, strict=True):
        np.testing.assert_array_equal(a, b)
    assert workflow.evaluate(tmp_path / "model")["elbo"] > history["val_elbo"][0]


def _epochs_done(folder) -> int:
    try:
        return json.loads((folder / "state.json").read_text())["epochs_done"]
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.slow
def test_a_killed_worker_stops_the_other_and_a_restart_resumes(tmp_path):
    epochs = 3  # killed after the first: the chief is in the second, at the latest
    command = ["-m", "tfvae.cli", "train", "--distribute", "multi-worker", "--no-xla"]
    command += ["--dataset", "digits", "--hidden", "32", "--latent-dim", "4"]
    command += ["--epochs", str(epochs), "--out", "model"]
    checkpoint = checkpoints.folder_for(tmp_path / "model")
    with LocalCluster(command, tmp_path) as cluster:
        deadline = time.monotonic() + RUN_SECONDS
        while _epochs_done(checkpoint) < 1:
            assert cluster.processes[0].poll() is None, cluster.output(0)[-3000:]
            assert time.monotonic() < deadline, "no checkpoint in time"
            time.sleep(0.05)
        cluster.kill(1)
        killed_at = time.monotonic()
        assert cluster.wait(STOP_SECONDS, workers=[0]) == [1]
        stopped_after = time.monotonic() - killed_at
        chief = cluster.output(0)
    print(f"\nthe chief stopped {stopped_after:.1f} s after its peer was killed")
    assert "tfvae train: error: Expected every worker of the multi-worker run" in chief
    assert "restart every worker with the same command to resume" in chief
    # Nothing half-written: no model folder, the last whole checkpoint, which loads.
    done = _epochs_done(checkpoint)
    assert 1 <= done < epochs
    assert not (tmp_path / "model").exists()
    keras.saving.load_model(checkpoint / "model.keras")

    with LocalCluster(command, tmp_path) as cluster:
        assert cluster.wait(RUN_SECONDS) == [0, 0], cluster.output(0)[-3000:]
        chief = cluster.output(0)
    assert f"Resuming from model.checkpoint after epoch {done} of {epochs}" in chief
    history = json.loads((tmp_path / "model" / "history.json").read_text())
    assert len(history["loss"]) == epochs
    assert not checkpoint.exists()
    assert workflow.evaluate(tmp_path / "model")["elbo"] > history["val_elbo"][0]


# ---------------------------------------------------------------------------------------
# The pieces, in this process.
# ---------------------------------------------------------------------------------------
def test_replicas_draw_different_noise(mirrored):
    """Each replica's latents are drawn with the step's seed folded with its index (an
    independent draw from the posterior); one device keeps the seed as it is."""
    model = _small_model()
    x = (np.random.default_rng(0).random((16, 8, 8, 1)) < 0.3).astype("float32")
    seed = tf.constant([3, 4], tf.int64)
    params = model.posterior_parameters(tf.constant(x))

    def latents():  # [1, 16, 2]: the same x on every replica
        return model.posterior_samples(params, 1, distribute.replica_seed(seed))

    per_replica = [t.numpy() for t in mirrored.experimental_local_results(mirrored.run(latents))]
    for replica, z in enumerate(per_replica):
        folded = tf.random.experimental.stateless_fold_in(seed, replica)
        np.testing.assert_array_equal(z, model.posterior_samples(params, 1, folded).numpy())
    assert np.abs(per_replica[0] - per_replica[1]).min() > 0  # every coordinate differs
    np.testing.assert_array_equal(distribute.replica_seed(seed).numpy(), seed.numpy())


def _small_model():
    model = tfvae.VAE(
        tfvae.networks.mlp_encoder((8,)), tfvae.networks.mlp_decoder((8,)), latent_dim=2, seed=0
    )
    model.build((None, 8, 8, 1))
    return model


def test_strategy_names_and_the_chief():
    assert distribute.strategy("none") is tf.distribute.get_strategy()
    assert distribute.is_chief(distribute.strategy("none"))
    assert distribute.strategy("mirrored") is distribute.strategy("mirrored")  # one each
    with pytest.raises(ValueError, match="distribute"):
        distribute.strategy("parameter-server")


@pytest.mark.parametrize(
    "tf_config, expected",
    [
        (None, "TF_CONFIG unset"),
        ("not json", "TF_CONFIG='not json'"),
        ('{"cluster": {"worker": ["a:1"]}}', "task"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}', "index"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "chief"),
    ],
)
def test_a_bad_tf_config_is_refused_with_what_was_received(tf_config, expected):
    with pytest.raises(ValueError, match="Expected") as error:
        distribute.check_tf_config(tf_config)
    assert expected in str(error.value)


def test_local_cluster_gives_each_worker_its_task_on_distinct_ports():
    configs = distribute.local_cluster(3)
    workers = configs[0]["cluster"]["worker"]
    assert len(set(workers)) == 3 and all(w.startswith("127.0.0.1:") for w in workers)
    assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]
    assert all(c["cluster"] == configs[0]["cluster"] for c in configs)
    for config in configs:
        assert distribute.check_tf_config(json.dumps(config)) == config


def test_the_global_batch_must_split_evenly(mirrored):
    distribute.check_global_batch(100, mirrored)
    with pytest.raises(ValueError, match="multiple of the 2 replicas.*batch_size=101"):
        distribute.check_global_batch(101, mirrored)


def test_step_logs_are_unchanged_outside_multi_worker_mode(mirrored):
    logs = {"loss": tf.constant(1.5)}
    assert distribute.step_logs(logs) is logs
    per_replica = mirrored.run(lambda: distribute.step_logs({"loss": tf.constant(1.5)}))
    assert [t.shape for t in mirrored.experimental_local_results(per_replica["loss"])] == [
        (),
        (),
    ]
