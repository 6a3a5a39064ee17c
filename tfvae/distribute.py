"""Training on several devices and machines: the `tf.distribute` strategies tfvae uses.

`tfvae train --distribute KIND` (`TrainConfig.distribute`) picks one (`strategy`):

    none           the default strategy: one device.
    mirrored       `tf.distribute.MirroredStrategy`: every local GPU (the CPU when there
                   is none), one replica each.
    multi-worker   `tf.distribute.MultiWorkerMirroredStrategy`: one process per machine,
                   each reading the cluster and its own place in it from the TF_CONFIG
                   environment variable, all-reducing gradients over gRPC.

Whatever the strategy, `--batch-size` is the global batch: each step takes one batch of
that size, split evenly over the replicas, and its gradient is the mean over the whole
batch, as on one device, so the learning rate means what it means there. Each replica
draws its own noise (`replica_seed`). Under a multi-replica strategy, each XLA-compiled
step compiles the per-replica loss and gradients (`tfvae.VAE.compile`).

With several workers, each worker's input pipeline keeps its share of every global batch
(tf.data's DATA auto-sharding of the in-memory arrays), only the chief (`is_chief`)
writes the model folder, the checkpoints and the TensorBoard logs, and every worker reads
the chief's checkpoint to resume, so `--out` must be on storage that all workers see.

Keras 3's `fit` fails under MultiWorkerMirroredStrategy on every model whose step returns
scalar logs ("Invalid reduction dimension 0 for input with 0 dimensions":
tensorflow/tensorflow#72388, keras-team/keras#20585): `step_logs` is tfvae's way round it,
so `tfvae.VAE.fit`, `evaluate` and `predict` work there unchanged.

Example:
    >>> from tfvae import distribute
    >>> strategy = distribute.strategy("none")
    >>> distribute.is_chief(strategy), strategy.num_replicas_in_sync
    (True, 1)
"""

import contextlib
import functools
import json
import os
import socket

import tfvae._backend  # noqa: F401

import tensorflow as tf

from tfvae import validation
from tfvae.config import DISTRIBUTE


class WorkerLostError(ConnectionError):
    """A worker of a multi-worker run stopped, so the others cannot go on.

    Restarting every worker with the same command resumes the run from its last
    checkpoint.
    """


@functools.cache
def strategy(kind: str) -> tf.distribute.Strategy:
    """The strategy `kind` names (see the module docstring), created once per process.

    A multi-worker strategy must be created before TensorFlow runs its first operation,
    at the start of the program, with TF_CONFIG set.

    Args:
        kind: "none", "mirrored" or "multi-worker".

    Raises:
        ValueError: for another `kind`, a missing or malformed TF_CONFIG, or a
            multi-worker strategy asked for after TensorFlow has started.
    """
    validation.one_of(kind, DISTRIBUTE, "distribute")
    if kind == "none":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    check_tf_config(os.environ.get("TF_CONFIG"))
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as error:  # "Collective ops must be configured at program startup"
        raise ValueError(
            "Expected the multi-worker strategy to be created before TensorFlow runs any "
            "operation, at the start of the program. Received a request after TensorFlow "
            f"started ({error})"
        ) from error


def check_tf_config(text: str | None) -> dict:
    """TF_CONFIG parsed, once it names a cluster of workers and this process's task in it.

    Args:
        text: the TF_CONFIG environment variable's value, or None when it is unset.

    Returns:
        `{"cluster": {"worker": ["host:port", ...], ...}, "task": {"type", "index"}}`.

    Raises:
        ValueError: naming what is missing or malformed.
    """
    example = (
        '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
        '"task": {"type": "worker", "index": 0}}'
    )
    if not text:
        raise ValueError(
            f"Expected the TF_CONFIG environment variable for --distribute multi-worker, "
            f"such as {example}. Received: TF_CONFIG unset"
        )
    try:
        config = json.loads(text)
        tasks = config["cluster"][config["task"]["type"]]
        index = config["task"]["index"]
        valid = isinstance(tasks, list) and isinstance(index, int) and 0 <= index < len(tasks)
    except (ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        raise ValueError(
            f"Expected TF_CONFIG to be JSON such as {example}, whose task type is a job of "
            f"the cluster and whose index is in range. Received: TF_CONFIG={text!r}"
        )
    return config


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files: always, but on the other workers of a
    multi-worker run."""
    return strategy.extended.should_checkpoint


def in_multi_worker_mode(strategy: tf.distribute.Strategy) -> bool:
    """Whether `strategy` all-reduces across several processes (Keras's own test)."""
    return (
        isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        and strategy.extended._in_multi_worker_mode()
    )


def replica_seed(seed: tf.Tensor) -> tf.Tensor:
    """`seed`, a `(2,)` stateless seed, made distinct for each replica of a multi-replica
    strategy (folded with the replica's index among all replicas of all workers), and
    unchanged elsewhere."""
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        seed = tf.random.experimental.stateless_fold_in(seed, context.replica_id_in_sync_group)
    return seed


def step_logs(logs: dict) -> dict:
    """A train or test step's `{name: scalar}` logs as Keras can reduce them across workers.

    Keras 3 reduces a step's per-replica logs under MultiWorkerMirroredStrategy with
    `strategy.reduce("MEAN", value, axis=0)`, which fails on a scalar
    (tensorflow/tensorflow#72388, keras-team/keras#20585). There each log gets a leading
    axis of one element, which that reduction averages away, so the reduced logs are the
    replicas' mean, as under MirroredStrategy; elsewhere they are returned as they are.
    """
    if not in_multi_worker_mode(tf.distribute.get_strategy()):
        return logs
    return {name: tf.reshape(value, [1]) for name, value in logs.items()}


def check_global_batch(batch_size: int, strategy: tf.distribute.Strategy) -> None:
    """Raises ValueError unless the global `batch_size` splits evenly over the replicas."""
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(
            f"Expected batch_size, the global batch, to be a multiple of the {replicas} "
            f"replicas it is split over. Received: batch_size={batch_size}"
        )


def check_agreement(strategy: tf.distribute.Strategy, value: int, what: str) -> None:
    """Raises ValueError on every worker of a multi-worker run unless all hold `value`.

    Args:
        strategy: the run's strategy; outside multi-worker mode there is nothing to check.
        value: this worker's integer, such as the epoch it resumes after.
        what: what `value` is, for the message.
    """
    if not in_multi_worker_mode(strategy):
        return
    mine = tf.constant([value], tf.int64)
    values = strategy.gather(strategy.run(lambda: mine), axis=0).numpy().tolist()
    if len(set(values)) > 1:
        raise ValueError(
            f"Expected every worker to see the same {what}. Received, replica by replica: "
            f"{values}. Put --out on storage that all workers share."
        )


def sharded_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with tf.data's DATA auto-sharding: under a multi-worker strategy, each
    worker keeps its share of every global batch (in-memory arrays have no files to
    shard by, which AUTO would try first)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


# What a collective op raises on the survivors when a worker stops: its peer resets or
# refuses the connection, or the collective is aborted.
_PEER_LOST = (
    tf.errors.UnavailableError,
    tf.errors.CancelledError,
    tf.errors.DeadlineExceededError,
    tf.errors.AbortedError,
)


@contextlib.contextmanager
def reporting_lost_workers(strategy: tf.distribute.Strategy, checkpoint):
    """Turns the error a multi-worker run's collectives raise when another worker stops
    into a `WorkerLostError` that says how to resume from `checkpoint` (a folder)."""
    try:
        yield
    except _PEER_LOST as error:
        if not in_multi_worker_mode(strategy):
            raise
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise WorkerLostError(
            "Expected every worker of the multi-worker run to keep running. Received: "
            f"{type(error).__name__} from the cross-worker all-reduce ({reason}). The "
            f"checkpoint {checkpoint} keeps the finished epochs: restart every worker "
            "with the same command to resume."
        ) from error


def local_cluster(num_workers: int, host: str = "127.0.0.1") -> list[dict]:
    """TF_CONFIGs of a cluster of `num_workers` workers on this machine, on free ports.

    Args:
        num_workers: the number of workers, each a process.
        host: the address they listen on.

    Returns:
        One TF_CONFIG dict per worker, worker 0 (the chief) first; set
        `os.environ["TF_CONFIG"] = json.dumps(tf_config)` in each before it starts.
    """
    validation.positive_int(num_workers, "num_workers")
    workers = [f"{host}:{port}" for port in _free_ports(host, num_workers)]
    return [
        {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        for index in range(num_workers)
    ]


def _free_ports(host: str, count: int) -> list[int]:
    """`count` distinct ports that nothing listens on now (held open together, so the
    system hands out different ones)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
