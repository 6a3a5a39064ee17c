"""A local cluster for the multi-worker tests: worker processes on 127.0.0.1, on free
ports, each with its own TF_CONFIG (`tfvae.distribute.local_cluster`).

Every wait is bounded, and leaving the `with` block kills whatever still runs (each
worker leads its own process group, so its children go too).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tfvae import distribute


class LocalCluster:
    """Starts `num_workers` processes running `command` (a list of arguments after the
    Python interpreter) in `cwd`, worker i with the TF_CONFIG of task i; worker 0 is the
    chief. Their output goes to `cwd/worker<i>.log`.

    Example:
        with LocalCluster(["-m", "tfvae.cli", "train", ...], tmp_path) as cluster:
            assert cluster.wait(timeout=120) == [0, 0]
    """

    def __init__(self, command, cwd, num_workers=2):
        self.cwd = Path(cwd)
        self.processes = []
        for index, tf_config in enumerate(distribute.local_cluster(num_workers)):
            env = dict(os.environ, TF_CONFIG=json.dumps(tf_config), TF_CPP_MIN_LOG_LEVEL="2")
            with open(self.log(index), "w") as log:
                self.processes.append(
                    subprocess.Popen(
                        [sys.executable, *command],
                        cwd=cwd,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )

    def log(self, index) -> Path:
        return self.cwd / f"worker{index}.log"

    def output(self, index) -> str:
        return self.log(index).read_text()

    def wait(self, timeout, workers=None) -> list[int]:
        """The exit codes of `workers` (default all), waiting at most `timeout` seconds in
        all; raises TimeoutError, with their output, if one is still running."""
        deadline = time.monotonic() + timeout
        codes = []
        for index in range(len(self.processes)) if workers is None else workers:
            try:
                codes.append(self.processes[index].wait(max(deadline - time.monotonic(), 0)))
            except subprocess.TimeoutExpired:
                raise TimeoutError(
                    f"worker {index} still running after {timeout} s:\n"
                    + self.output(index)[-3000:]
                ) from None
        return codes

    def kill(self, index) -> None:
        """SIGKILLs worker `index` and its children."""
        process = self.processes[index]
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:  # the worker and its children are gone already
            pass
        process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        for index in range(len(self.processes)):
            self.kill(index)
