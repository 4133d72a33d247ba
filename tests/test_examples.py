"""The examples/ folder: each config validates, and trains as a smoke run (a model from a
file, a user's .npz, augmentation)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from optsweep.cli import app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CONFIGS = sorted(EXAMPLES.glob("*.yaml"))
runner = CliRunner()


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    """A copy of examples/ with a small digits.npz, as make_digits_npz.py writes it."""
    folder = tmp_path / "examples"
    shutil.copytree(EXAMPLES, folder, ignore=shutil.ignore_patterns("*.npz", "__pycache__"))
    rng = np.random.default_rng(0)
    np.savez(
        folder / "digits.npz",
        x_train=rng.integers(0, 256, (256, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, 256).astype(np.uint8),
        x_test=rng.integers(0, 256, (64, 28, 28), dtype=np.uint8),
        y_test=rng.integers(0, 10, 64).astype(np.uint8),
    )
    return folder


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_example_trains_as_a_smoke_run(examples: Path, tmp_path: Path, config: Path):
    copy = examples / config.name
    assert runner.invoke(app, ["validate", str(copy)]).exit_code == 0
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["run", str(copy), "--smoke", "--smoke-steps", "2", "--out", str(out), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert (out / "trials.csv").read_text().count(",complete,") >= 2
