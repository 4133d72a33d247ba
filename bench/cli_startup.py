"""How fast the command line answers: median wall time of 5 runs per command, side by side
with ``python -c "import typer, rich, yaml"`` (the floor any Typer + Rich + YAML CLI pays).

    python bench/cli_startup.py                   # make bench
    python bench/cli_startup.py --tree ../other   # another checkout (before/after)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
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
]


def median_seconds(command: list[str], tree: Path) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(command, cwd=tree, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=REPO, help="checkout to run the commands in")
    tree = parser.parse_args().tree.resolve()
    print(f"{tree}\n| command | median of {RUNS} (s) |\n|---|---|")
    for label, command in COMMANDS:
        print(f"| {label} | {median_seconds(command, tree):.3f} |", flush=True)


if __name__ == "__main__":
    main()
