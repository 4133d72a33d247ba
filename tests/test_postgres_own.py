"""Your own model file and your own ``.npz`` on a PostgreSQL study: two `optsweep worker`s
train the grid and one `optsweep search --workers 2` spends its budget, as on the built-ins.

The workers' results must equal a local `optsweep run` of the same file, trial for trial:
a worker imports the model file from the path the study stored, and a trial's result does
not depend on the process that trained it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import optuna
import pytest
from _postgres import postgres  # noqa: F401  (the session fixture)
from _workers import Fleet, load
from test_own_data import write_npz

from optsweep import study as studies
from optsweep.search import COUNTED

NET = """\
from torch import nn


class SmallCNN(nn.Module):
    def __init__(self, width: int = 4, classes: int = 3):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(4 * width, classes),
        )

    def forward(self, x):
        return self.body(x)
"""
SWEEP = """\
name: {name}
dataset: {{files: data/mine.npz}}
model: {{module: net.py:SmallCNN, args: {{width: 4}}}}
train: {{epochs: 2, batch_size: 16, seeds: [0, 1], trials_per_batch: {k}, device: cpu}}
search: {{trials: 6, batch: 2, sampler: random, seed: 3}}
optimizers:
  - name: momentum
    grid: {{lr: [0.1, 0.03], momentum: [0.9]}}
  - name: adam
    grid: {{lr: {lr}}}
"""


@pytest.fixture
def project(tmp_path: Path):
    """A folder holding a model file, an .npz under data/, and a sweep file of each kind."""
    folder = tmp_path / "project"
    write_npz(folder / "data" / "mine.npz")
    (folder / "net.py").write_text(NET)

    def sweep(name: str, *, k: int = 4, lr: str = "[0.01, 0.001]") -> Path:
        path = folder / f"{name}.yaml"
        path.write_text(SWEEP.format(name=name, k=k, lr=lr))
        return path

    return sweep


def values(study: optuna.Study) -> dict[str, float]:
    """Each complete trial's last test loss."""
    return {
        t.user_attrs["key"]: t.user_attrs["epochs"][-1]["test_loss"]
        for t in study.get_trials(deepcopy=False)
        if studies.status_of(t) == "complete"
    }


def test_two_workers_train_a_model_file_on_an_npz_as_a_local_run_does(
    postgres,  # noqa: F811
    project,
    tmp_path: Path,
) -> None:
    config = project("own")
    url = postgres.database()
    logs = tmp_path / "logs"
    logs.mkdir()
    fleet = Fleet(url, config, "own", logs)
    init = subprocess.run(fleet.command("init", str(config), "--storage", url), text=True)
    assert init.returncode == 0
    fleet.start(), fleet.start()
    try:
        assert fleet.wait(timeout=300) == [0, 0], fleet.stderr()
    finally:
        fleet.close()
    remote = values(load(url, "own"))
    assert len(remote) == 8  # 4 configurations x 2 seeds

    # The same file run here in one process, in one thread as the workers run (threads change
    # the order of float sums): the same result for every trial. (Results across K are equal
    # to float tolerance: test_user_models.)
    local = project("own-local")
    out = tmp_path / "local"
    run = ["run", str(local), "--out", str(out), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    assert subprocess.run(fleet.command(*run), env=env, timeout=300).returncode == 0
    here = values(optuna.load_study(study_name="own-local", storage=f"sqlite:///{out}/study.db"))
    assert here.keys() == remote.keys()
    assert here == pytest.approx(remote, rel=1e-6)


def test_a_search_with_two_workers_spends_its_budget_on_a_model_file(
    postgres,  # noqa: F811
    project,
    tmp_path: Path,
) -> None:
    config = project("own-search", lr="{low: 1.0e-4, high: 1.0e-2, log: true}")
    url = postgres.database()
    command = ["search", str(config), "--storage", url, "--out", str(tmp_path / "o")]
    result = subprocess.run(
        Fleet(url, config, "", tmp_path).command(*command, "--workers", "2", "--quiet"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    study = load(url, "own-search-search")
    statuses = [studies.status_of(t) for t in study.get_trials(deepcopy=False)]
    assert sum(s in COUNTED for s in statuses) == 6, statuses  # the budget, pruned ones too
    assert "complete" in statuses
    assert (tmp_path / "o" / "report.html").exists()
