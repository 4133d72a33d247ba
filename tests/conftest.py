"""Shared fixtures: tiny sweeps on the bundled mnist-mini data, real datasets when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def real_data_dir() -> Path | None:
    """The published datasets: $OPTSWEEP_TEST_DATA, ../shared/datasets or /work/shared/datasets."""
    candidates = [
        os.environ.get("OPTSWEEP_TEST_DATA"),
        REPO.parent / "shared" / "datasets",
        "/work/shared/datasets",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "mnist").is_dir():
            return Path(candidate)
    return None


@pytest.fixture
def write_yaml(tmp_path: Path):
    """Write a YAML text to a file in tmp_path and return its path."""

    def write(text: str, name: str = "sweep.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


TINY_SWEEP = """\
name: tiny
dataset: mnist-mini
subset: {{train: {train}, test: {test}}}
model: {model}
train: {{epochs: {epochs}, batch_size: 64, seeds: [0], log_every: 2, trials_per_batch: {k}}}
optimizers:
{optimizers}
"""


@pytest.fixture
def tiny_sweep(write_yaml):
    """A small sweep file on mnist-mini: a few hundred images, 1–2 epochs."""

    def make(
        optimizers: str,
        *,
        train: int = 512,
        test: int = 256,
        epochs: int = 2,
        model: str = "mlp",
        k: int = 32,
    ) -> Path:
        text = TINY_SWEEP.format(
            optimizers=optimizers, train=train, test=test, epochs=epochs, model=model, k=k
        )
        return write_yaml(text)

    return make
