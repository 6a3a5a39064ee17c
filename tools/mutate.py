"""Mutation testing of tfvae's core modules against their own fast tests.

    .venv/bin/python tools/mutate.py                    # every core module
    .venv/bin/python tools/mutate.py objectives runtime --time-limit 600
    .venv/bin/python tools/mutate.py --bugs             # the named bugs of tools/bugs.py
    .venv/bin/python tools/mutate.py model --with-slow --only "VAE.compile::" \
        --tests tests/test_model.py::test_xla_compiles_what_it_should

Each mutant (see `tools/mutants.py`) is one small wrong change to one module. It is
*killed* when a fast test of the module's own test files fails, or runs past its time
limit, with the change in place; it *survives* when they all pass. A module's score is
killed / (mutants - known equivalents); `tools/equivalent_mutants.txt` lists, with its
reason, each survivor whose change cannot change behaviour.

How it stays fast and safe:
- Only the fast subset runs (`-m "not slow"`, see tests/README.md), with `-x`: a mutant
  stops at its first failing test. The tests that killed earlier mutants of the same
  function run first, then those that killed any mutant, then the rest, quickest first.
  `--with-slow --only TEXT` (with `--tests NODE`) runs slow tests too, to check that a
  survivor of the fast tests is killed by a slow one.
- The working tree is never modified. Each mutant runs in a forked child that copies the
  `tfvae` package into a temporary folder beside links to the rest of the tree, writes
  the mutated file there, puts that folder first on `sys.path` and `PYTHONPATH`, and
  runs the tests from it, so that the tests' subprocesses import the mutated copy too.
  The children copy a snapshot of the package and the tests taken when the run starts,
  so editing either during a run changes nothing; pytest's "no test found" (codes 4, 5)
  is an error, not a kill.
- TensorFlow is imported once, in the parent, before forking, so a mutant costs its
  tests, not TensorFlow's start-up. `--jobs` children run at once, one TensorFlow thread
  each.

Results: a table on stdout, and JSON (`--out`, default `tools/mutation.json`) with each
survivor's key, line and change; tests/README.md reports the scores.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import glob
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bugs import BUGS  # noqa: E402
from mutants import Mutant, mutants_of  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TREE = ROOT  # what the children copy and link: a snapshot of ROOT once main() starts
EQUIVALENTS = os.path.join(ROOT, "tools", "equivalent_mutants.txt")
FAST = "not slow"

#: Each core module: its source files, and the test files that own it.
GRADIENTS = "tests/test_gradients.py"  # the training loss's gradients: every family's
CORE = {
    "objectives": (["tfvae/objectives.py"], ["tests/test_objectives.py", GRADIENTS]),
    "posteriors": (["tfvae/posteriors.py"], ["tests/test_posteriors.py", GRADIENTS]),
    "priors": (
        ["tfvae/priors.py", "tfvae/prior_families.py"],
        ["tests/test_priors.py", "tests/test_prior_families.py", GRADIENTS],
    ),
    "likelihoods": (["tfvae/likelihoods/*.py"], ["tests/test_likelihoods.py"]),
    "runtime": (["tfvae/runtime.py"], ["tests/test_runtime.py"]),
    "model": (["tfvae/model.py"], ["tests/test_model.py", GRADIENTS]),
    "inference": (["tfvae/inference.py"], ["tests/test_inference.py"]),
    "networks": (["tfvae/networks.py"], ["tests/test_networks.py"]),
    "estimators": (
        ["tfvae/estimators.py", "tfvae/baselines.py"],
        ["tests/test_estimators.py", "tests/test_baselines.py"],
    ),
}


@dataclasses.dataclass
class Outcome:
    """What happened to one mutant: "killed", "timeout", "survived", "equivalent" or
    "error 4" or "error 5" (pytest found no test to run), or "error" (this tool failed in
    the child); errors do not count as killed."""

    mutant: Mutant
    status: str
    seconds: float = 0.0
    detail: str = ""  # the killing test, the equivalence's reason, or the log


# Running tests in a forked child ------------------------------------------------------


def _prepare_parent():
    """Imports what every test imports, once, so that forked children start warm."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras  # noqa: F401
    import numpy  # noqa: F401
    import pytest  # noqa: F401
    import scipy.stats  # noqa: F401
    import tensorflow  # noqa: F401
    import tensorflow_probability  # noqa: F401


class _Recorder:
    """A pytest plugin that writes each test's duration and the failed tests to a file."""

    def __init__(self, path):
        self.path = path
        self.durations = collections.Counter()
        self.failed = []

    def pytest_runtest_logreport(self, report):
        self.durations[report.nodeid] += report.duration
        if report.failed and report.nodeid not in self.failed:
            self.failed.append(report.nodeid)

    def pytest_collectreport(self, report):  # a test file that fails to import
        if report.failed:
            self.failed.append(report.nodeid)

    def pytest_sessionfinish(self, session):
        with open(self.path, "w") as f:
            json.dump({"durations": self.durations, "failed": self.failed}, f)


def _fork_pytest(tests, *, files, log, record, marker=FAST):
    """Starts pytest on `tests` in a forked child over a copy of the package; its pid.

    Args:
        tests: pytest arguments: test files or node ids, and options.
        files: {path relative to the root: source} written over the package's copy.
        log: the file that receives the child's output.
        record: the file where the child's `_Recorder` writes its results.
        marker: the `-m` expression that selects the tests; None runs them all.
    """
    pid = os.fork()
    if pid:
        return pid
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.setpgid(0, 0)  # its own process group: a time-out kills its subprocesses too
        overlay = tempfile.mkdtemp(prefix="tfvae-mutant-")
        shutil.copytree(os.path.join(TREE, "tfvae"), os.path.join(overlay, "tfvae"))
        for entry in os.listdir(TREE):  # the rest of the tree, linked: tests, benchmarks...
            if entry != "tfvae":
                os.symlink(os.path.join(TREE, entry), os.path.join(overlay, entry))
        for path, source in files.items():
            with open(os.path.join(overlay, path), "w") as f:
                f.write(source)
        sys.path.insert(0, overlay)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (overlay, os.environ.get("PYTHONPATH")) if p
        )
        import pytest
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        import tfvae  # from the copy: the test modules then find it in sys.modules

        if not tfvae.__file__.startswith(overlay):
            raise RuntimeError(f"tfvae was imported from {tfvae.__file__}, not the copy")
        # Tests run from the copy's root, so that `python -c` and `python -m` in their
        # subprocesses, which put the working folder first, import the mutated package.
        os.chdir(overlay)
        options = ["-q", "-n", "0", "-p", "no:cacheprovider", "--no-header"]
        options += ["-m", marker] if marker else []
        code = pytest.main(options + list(tests), plugins=[_Recorder(record)])
        sys.stdout.flush()
        shutil.rmtree(overlay, ignore_errors=True)
        os._exit(int(code))
    except BaseException as error:  # noqa: BLE001 (whatever happens, the child must exit)
        print(f"mutate: child failed: {error!r}", flush=True)
        os._exit(99)


def _snapshot(work):
    """A copy of the package and the tests, and links to the rest of the tree, in `work`.

    The run reads this copy only, so that editing the package or the tests while it runs
    (renaming a test, say) cannot turn mutants into false kills or survivors.
    """
    tree = os.path.join(work, "tree")
    os.makedirs(tree)
    for entry in os.listdir(ROOT):
        source, target = os.path.join(ROOT, entry), os.path.join(tree, entry)
        if entry in ("tfvae", "tests"):
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            os.symlink(source, target)
    return tree


def _finished(pid):
    """The child's exit code if it has ended, else None."""
    done, status = os.waitpid(pid, os.WNOHANG)
    return os.waitstatus_to_exitcode(status) if done else None


def _kill(pid):
    """Kills a child and its process group (the test's own subprocesses), and reaps it."""
    for target in (-pid, pid):
        try:
            os.kill(target, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _run_once(tests, files, work, name, limit, marker=FAST):
    """Runs `tests` in one child and waits: (exit code or None on time-out, record)."""
    record = os.path.join(work, f"{name}.json")
    log = os.path.join(work, f"{name}.log")
    pid = _fork_pytest(tests, files=files, log=log, record=record, marker=marker)
    deadline = time.monotonic() + limit
    while (code := _finished(pid)) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if code is None:
        _kill(pid)
    result = {"durations": {}, "failed": []}
    if os.path.exists(record):
        with open(record) as f:
            result = json.load(f)
    return code, result


# The run ------------------------------------------------------------------------------


def _equivalents():
    """{mutant key: reason} from tools/equivalent_mutants.txt (key, a tab, the reason)."""
    known = {}
    if os.path.exists(EQUIVALENTS):
        with open(EQUIVALENTS) as f:
            for line in f:
                if line.strip() and not line.startswith("#"):
                    key, _, reason = line.rstrip("\n").partition("\t")
                    known[key] = reason.strip()
    return known


def _sources(patterns):
    return sorted(
        os.path.relpath(p, TREE)
        for pattern in patterns
        for p in glob.glob(os.path.join(TREE, pattern))
    )


def run_module(
    name, jobs, deadline, work, equivalents, only=(), sample=None, marker=FAST, tests=()
):
    """Every mutant of core module `name`, against its test files' fast tests.

    Returns:
        (outcomes, complete): a list of `Outcome`s, and False when `deadline` (a
        `time.monotonic()` value) cut the run short. With `only` (strings), only the
        mutants whose key contains one of them run; with `sample` (an int), that many
        mutants chosen uniformly at random (seed 0) run. `marker` selects the tests
        (`-m`; None: the slow ones too); `tests` (files or node ids) replace the
        module's own test files.
    """
    patterns, test_files = CORE[name]
    test_files = list(tests) or test_files
    sources = _sources(patterns)
    code, baseline = _run_once(test_files, {}, work, f"{name}-baseline", 3600, marker)
    if code != 0:
        raise SystemExit(f"mutate: {name}'s tests fail without any mutant: {work}")
    durations = baseline["durations"]
    budget = 30 + 3 * sum(durations.values())  # seconds per mutant
    texts = {path: open(os.path.join(TREE, path)).read() for path in sources}
    queue = [
        m
        for path in sources
        for m in mutants_of(path, texts[path])
        if not only or any(part in m.key for part in only)
    ]
    if sample is not None and sample < len(queue):  # a uniform random subset, in order
        chosen = random.Random(0).sample(range(len(queue)), sample)
        queue = [queue[i] for i in sorted(chosen)]
    killers = collections.Counter()  # test -> mutants it killed
    killers_of = collections.defaultdict(list)  # function -> tests that killed its mutants

    def ordered(mutant):
        first = list(dict.fromkeys(reversed(killers_of[mutant.function])))
        then = sorted(killers, key=lambda t: -killers[t])
        rest = sorted(durations, key=lambda t: (durations[t], t))
        return list(dict.fromkeys(first + then + rest))

    outcomes, running = [], {}
    while (queue and time.monotonic() < deadline) or running:
        while queue and len(running) < jobs and time.monotonic() < deadline:
            mutant = queue.pop(0)
            if mutant.key in equivalents:
                outcomes.append(Outcome(mutant, "equivalent", detail=equivalents[mutant.key]))
                continue
            label = f"{name}-{len(outcomes) + len(running)}"
            record = os.path.join(work, f"{label}.json")
            log = os.path.join(work, f"{label}.log")
            files = {mutant.path: mutant.apply(texts[mutant.path])}
            with open(log, "w") as f:
                f.write(f"mutant: {mutant.key} (line {mutant.line})\n")
            pid = _fork_pytest(
                ["-x", *ordered(mutant)], files=files, log=log, record=record, marker=marker
            )
            running[pid] = (mutant, time.monotonic(), record, log)
        for pid, (mutant, started, record, log) in list(running.items()):
            code = _finished(pid)
            elapsed = time.monotonic() - started
            if code is None and elapsed < budget:
                continue
            del running[pid]
            if code is None:
                _kill(pid)
                outcomes.append(Outcome(mutant, "timeout", elapsed, log))
                continue
            failed = []
            if os.path.exists(record):
                with open(record) as f:
                    failed = json.load(f)["failed"]
            # The same tests pass without the mutant, so a failure of pytest (1: tests
            # failed, 2: collection or import failed, 3: internal error) is the mutant's
            # doing. 4 (a test not found) and 5 (none collected) are not, nor is 99, this
            # tool's own failure in the child: errors, which do not count as killed.
            status = {0: "survived", 4: "error 4", 5: "error 5", 99: "error"}.get(code, "killed")
            outcomes.append(Outcome(mutant, status, elapsed, failed[0] if failed else log))
            for test in failed[:1]:
                killers[test] += 1
                killers_of[mutant.function].append(test)
        time.sleep(0.05)
    return outcomes, not queue


def run_bugs(work):
    """Runs each named bug of tools/bugs.py against its module's fast tests.

    Returns:
        {bug name: the tests that failed (empty: the bug went unnoticed)}.
    """
    caught = {}
    for number, bug in enumerate(BUGS):
        with open(os.path.join(TREE, bug.path)) as f:
            source = f.read()
        if source.count(bug.old) != 1:
            raise SystemExit(f"mutate: bug {bug.name!r} no longer applies to {bug.path}")
        files = {bug.path: source.replace(bug.old, bug.new)}
        _, result = _run_once(CORE[bug.module][1], files, work, f"bug-{number}", 3600)
        caught[bug.name] = result["failed"]
        print(f"{'caught' if result['failed'] else 'MISSED':>6}  {bug.name}", flush=True)
        for test in result["failed"]:
            print(f"        failed: {test}")
    return caught


def score(outcomes):
    """(killed, counted, score): time-outs count as killed; equivalents are not counted."""
    killed = sum(o.status in ("killed", "timeout") for o in outcomes)
    counted = sum(o.status != "equivalent" for o in outcomes)
    return killed, counted, (killed / counted if counted else float("nan"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help=f"any of {', '.join(CORE)} (default: all)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--time-limit", type=float, default=3600, help="seconds in all")
    parser.add_argument("--bugs", action="store_true", help="run tools/bugs.py's bugs only")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="TEXT",
        help="run only the mutants whose key contains TEXT (repeatable); for checking "
        "new tests against survivors. The score then covers those mutants only.",
    )
    parser.add_argument(
        "--sample",
        type=int,
        metavar="N",
        help="run N of each module's mutants, chosen uniformly at random (seed 0): an "
        "unbiased estimate of the score when the whole run would take too long",
    )
    parser.add_argument(
        "--with-slow",
        action="store_true",
        help="run the slow tests of the module's test files too: with --only, to check "
        "that a survivor of the fast tests is killed by a slow one",
    )
    parser.add_argument(
        "--tests",
        action="append",
        default=[],
        metavar="NODE",
        help="run these test files or node ids (repeatable) instead of the module's own",
    )
    parser.add_argument("--out", default=os.path.join(ROOT, "tools", "mutation.json"))
    args = parser.parse_args(argv)
    modules = args.modules or list(CORE)
    unknown = sorted(set(modules) - set(CORE))
    if unknown:
        parser.error(f"unknown modules {unknown}; expected some of {list(CORE)}")
    _prepare_parent()
    work = tempfile.mkdtemp(prefix="tfvae-mutate-")
    print(f"logs: {work}")
    global TREE
    TREE = _snapshot(work)
    if args.bugs:
        return 0 if all(run_bugs(work).values()) else 1
    deadline = time.monotonic() + args.time_limit
    equivalents = _equivalents()
    report = {}
    print(f"{'module':<12} {'mutants':>7} {'killed':>6} {'survived':>8} {'equiv.':>6} "
          f"{'score':>6} {'seconds':>7}")  # fmt: skip
    for name in modules:
        started = time.monotonic()
        outcomes, complete = run_module(
            name,
            args.jobs,
            deadline,
            work,
            equivalents,
            args.only,
            args.sample,
            marker=None if args.with_slow else FAST,
            tests=args.tests,
        )
        killed, counted, value = score(outcomes)
        seconds = time.monotonic() - started
        survivors = [o for o in outcomes if o.status not in ("killed", "timeout", "equivalent")]
        print(f"{name:<12} {len(outcomes):>7} {killed:>6} {len(survivors):>8} "
              f"{len(outcomes) - counted:>6} {value:>6.1%} {seconds:>7.0f}"
              f"{'' if complete else '  (cut short by --time-limit)'}", flush=True)  # fmt: skip
        report[name] = {
            "mutants": len(outcomes),
            "sampled": args.sample,
            "tests": args.tests or ("all" if args.with_slow else "fast"),
            "killed": killed,
            "counted": counted,
            "score": value,
            "seconds": round(seconds, 1),
            "complete": complete,
            "survivors": [
                {"key": o.mutant.key, "line": o.mutant.line, "status": o.status} for o in survivors
            ],
            "equivalent": [
                {"key": o.mutant.key, "reason": o.detail}
                for o in outcomes
                if o.status == "equivalent"
            ],
        }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".partial", "w") as f:
        json.dump(report, f, indent=1)
    os.replace(args.out + ".partial", args.out)  # a reader never sees half a report
    for entry in report.values():
        for survivor in entry["survivors"]:
            print(f"{survivor['status']:>9}  {survivor['key']}  (line {survivor['line']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
