"""How fast the command line answers: median wall time of 5 runs per command, side by side
with ``python -c "import typer, rich, yaml"`` (the floor any Typer + Rich + YAML CLI pays),
and the peak memory of each (the largest resident set of the process or of a child it waited
for, its painters); the quickstart trains into a new results folder each run.

    python bench/cli_startup.py                   # make bench
    python bench/cli_startup.py --tree ../other   # another checkout (before/after)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS = 5
COMMANDS = [
    ("python -c 'import typer, rich, yaml'", [sys.executable, "-c", "import typer, rich, yaml"]),
    ("optsweep --help", [sys.executable, "-m", "optsweep", "--help"]),
    ("optsweep run --help", [sys.executable, "-m", "optsweep", "run", "--help"]),
    (
        "optsweep validate configs/adam.yaml",
        [sys.executable, "-m", "optsweep", "validate", "configs/adam.yaml"],
    ),
    ("optsweep optimizers", [sys.executable, "-m", "optsweep", "optimizers"]),
    (
        "optsweep run configs/adam.yaml --dry-run",
        [sys.executable, "-m", "optsweep", "run", "configs/adam.yaml", "--dry-run"],
    ),
    (
        "optsweep run configs/quickstart.yaml (a new folder)",
        [sys.executable, "-m", "optsweep", "run", "configs/quickstart.yaml", "-q", "--out"],
    ),
]


def measured(command: list[str], tree: Path) -> tuple[float, float]:
    """Median wall seconds of ``RUNS`` runs, and the largest peak memory (MB) among them; a
    command ending in ``--out`` gets a new folder each run."""
    times, peaks = [], []
    for _ in range(RUNS):
        with tempfile.TemporaryDirectory() as out:
            line = [*command, str(Path(out) / "results")] if command[-1] == "--out" else command
            start = time.perf_counter()
            process = subprocess.Popen(
                line, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            _, status, usage = os.wait4(process.pid, 0)
            times.append(time.perf_counter() - start)
            process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise SystemExit(f"{' '.join(line)} failed ({process.returncode})")
        peaks.append(usage.ru_maxrss / 1024)  # kilobytes on Linux
    return statistics.median(times), max(peaks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=REPO, help="checkout to run the commands in")
    tree = parser.parse_args().tree.resolve()
    print(f"{tree}\n| command | median of {RUNS} (s) | peak memory (MB) |\n|---|---|---|")
    for label, command in COMMANDS:
        seconds, peak = measured(command, tree)
        print(f"| {label} | {seconds:.3f} | {peak:.0f} |", flush=True)


if __name__ == "__main__":
    main()
