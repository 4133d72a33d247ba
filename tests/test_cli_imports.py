"""Commands that neither train, store nor draw answer without importing torch, Optuna or
matplotlib (each costs seconds); their timings are figures in ``make bench``, not tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "optuna", "matplotlib", "sqlalchemy")
# The heavy modules are read by an exit handler: `cli.main` ends the process once they ran
PROBE = """\
import atexit, json, runpy, sys
sys.argv = ["optsweep", *json.loads(sys.argv[1])]
atexit.register(lambda: print(json.dumps({"heavy": [m for m in HEAVY if m in sys.modules]})))
runpy.run_module("optsweep", run_name="__main__")
"""

COMMANDS = [
    ["--help"],
    ["run", "--help"],
    ["search", "--help"],
    ["compare", "--help"],
    ["validate", "configs/adam.yaml", "configs/quickstart.yaml"],
    ["validate", "configs/adam.yaml", "--search"],
    ["optimizers"],
    ["optimizers", "rmsprop"],
    ["run", "configs/adam.yaml", "--dry-run"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_answers_without_heavy_imports(command: list[str]) -> None:
    code = f"HEAVY = {HEAVY!r}\n" + PROBE
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(command)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["heavy"] == []


def test_help_reads_no_sweep_file_machinery() -> None:
    """``--help`` answers without the config package and the optimizer registry behind it."""
    code = 'HEAVY = ("optsweep.config", "optsweep.optim.registry")\n' + PROBE
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(["--help"])],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1])["heavy"] == []


def test_the_probe_sees_heavy_imports() -> None:
    """Not vacuous: after ``import torch`` the same probe reports it."""
    probe = PROBE.replace('runpy.run_module("optsweep", run_name="__main__")', "import torch")
    seen = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n" + probe, "[]"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "torch" in json.loads(seen.stdout.strip().splitlines()[-1])["heavy"]
