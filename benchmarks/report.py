"""What every benchmark shares: the machine's description, a printed table, JSON results.

Results go to `benchmarks/results/NAME.json`, written atomically.
"""

import json
import os
import platform
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
REPOSITORY = Path(__file__).resolve().parent.parent


def machine() -> dict:
    """The CPU, core count and library versions the numbers were measured with."""
    import numpy as np

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for module in ("tensorflow", "keras", "onnxruntime", "tf2onnx"):
        if module in sys.modules:
            versions[module] = sys.modules[module].__version__
    return {"cpu": cpu, "cores": os.cpu_count(), **versions}


def command() -> str:
    """The command line that ran this benchmark, from the repository root."""
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(REPOSITORY)
    except ValueError:
        pass
    return " ".join([".venv/bin/python", str(script), *sys.argv[1:]])


def take_turns(setups: list, rounds: int, measure) -> None:
    """Calls `measure(setup)` for every setup, `rounds` times, every other round in
    reverse order: the machine's drift spreads over all setups and none always goes
    first."""
    for round_ in range(rounds):
        for setup in setups if round_ % 2 == 0 else setups[::-1]:
            measure(setup)


def paired_ratio(numerators, denominators) -> float:
    """The median over rounds of `numerators[r] / denominators[r]`, two setups' values
    measured in the same round (`take_turns`). On this shared machine whole windows move
    by up to 2x; the ratio of two medians would carry that, the paired ratio cancels it."""
    import numpy as np

    return float(np.median(np.divide(numerators, denominators)))


def print_table(rows: list[dict], columns: list[str]) -> None:
    """Prints `rows` as an aligned text table of `columns`."""
    cells = [[_format(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(column), *(len(row[i]) for row in cells)) for i, column in enumerate(columns)]
    print("  ".join(column.rjust(width) for column, width in zip(columns, widths, strict=True)))
    for row in cells:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def write_results(name: str, results, path: Path | None = None) -> Path:
    """Writes `results` as JSON to `path` (default `results/NAME.json`), atomically."""
    from tfvae import atomic

    path = path or RESULTS / f"{name}.json"
    atomic.write_text(path, json.dumps(results, indent=2) + "\n")
    return path


def read_results(name: str, path: Path | None = None):
    """The JSON results written before, or None."""
    path = path or RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None
