"""A user's own arrays: ``dataset: {files: PATH.npz}`` from the file to a refused resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from optsweep.cli import app
from optsweep.config import ConfigError, load_sweep

runner = CliRunner()
SWEEP = """\
name: mine
dataset: {files: data/mine.npz}
train: {epochs: 1, batch_size: 16}
optimizers:
  - name: sgd
    grid: {lr: [0.1, 0.01]}
"""


def write_npz(path: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        x_train=rng.integers(0, 256, (64, 12, 12), dtype=np.uint8),
        y_train=rng.integers(0, 3, 64),
        x_test=rng.integers(0, 256, (20, 12, 12), dtype=np.uint8),
        y_test=rng.integers(0, 3, 20),
    )


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """A sweep file in its own folder, its .npz beside it in data/."""
    folder = tmp_path / "project"
    write_npz(folder / "data" / "mine.npz")
    (folder / "sweep.yaml").write_text(SWEEP)
    return folder / "sweep.yaml"


def test_the_file_is_found_beside_the_config_and_stored_resolved(sweep: Path, monkeypatch) -> None:
    monkeypatch.chdir(sweep.parent.parent)  # not the config's folder
    spec = load_sweep(sweep)
    resolved = str((sweep.parent / "data" / "mine.npz").resolve())
    assert spec.files == resolved and spec.raw["dataset"] == {"files": resolved}
    assert spec.dataset == "data/mine.npz"


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("{files: data/other.npz}", "F:2: dataset.files: no such file: {folder}/data/other.npz"),
        (
            "{files: data/mine.csv}",
            "F:2: dataset.files: expected the path of a .npz file (x_train, y_train, x_test, "
            "y_test, as Keras's datasets), got the string 'data/mine.csv'",
        ),
        (
            "{file: data/mine.npz}",
            "F:2: dataset.file: unknown key 'file'; did you mean 'files'? valid keys: files",
        ),
    ],
    ids=["missing", "not-npz", "key-typo"],
)
def test_a_wrong_file_is_one_line(sweep: Path, written: str, expected: str) -> None:
    sweep.write_text(SWEEP.replace("{files: data/mine.npz}", written))
    with pytest.raises(ConfigError) as error:
        load_sweep(sweep)
    lines = [str(p).replace(str(sweep), "F") for p in error.value.problems]
    assert lines[0] == expected.replace("{folder}", str(sweep.parent))


def test_own_arrays_train_and_an_edited_file_is_refused_on_resume(
    sweep: Path, tmp_path: Path
) -> None:
    out = ["--out", str(tmp_path / "out"), "--quiet"]
    first = runner.invoke(app, ["run", str(sweep), *out])
    assert first.exit_code == 0, first.output
    assert (tmp_path / "out" / "trials.csv").read_text().count("complete") == 2
    write_npz(sweep.parent / "data" / "mine.npz", seed=1)  # the user edits the data
    again = runner.invoke(app, ["run", str(sweep), *out])
    assert again.exit_code == 2
    [line] = again.stderr.strip().splitlines()
    assert "was trained with dataset.sha256 = " in line and "add --new" in line
    fresh = runner.invoke(app, ["run", str(sweep), *out, "--new"])
    assert fresh.exit_code == 0, fresh.output
