"""A grid run again with a changed config: refused when it changes what a trial means.

Data, subset, model and training settings are stored in the study when it is created; a run
that changes one is refused with one line naming it, unless ``--new`` starts the study over.
Seeds and the grid itself only add or remove grid points: the tables then show the file's
current grid and say how many other trials the study holds.
"""

from __future__ import annotations

import csv
import shutil
import sqlite3
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from optsweep import study as studies
from optsweep.cli import app
from optsweep.config import load_sweep
from optsweep.progress import QuietProgress
from optsweep.runner import MEANING, ConfigChangedError, check_same_meaning, run_sweep

cli = CliRunner()

BASE = """\
name: tiny
dataset: mnist-mini
subset: {train: 256, test: 128}
model: {name: mlp, hidden: [32]}
train: {epochs: 1, batch_size: 64, seeds: [0], log_every: 2, trials_per_batch: 8}
optimizers:
  - name: sgd
    grid: {learning_rate: [0.1, 0.01]}
  - name: adam
    grid: {learning_rate: [0.001]}
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A folder with BASE and its results: 3 trials, 1 epoch (trained once per module)."""
    folder = tmp_path_factory.mktemp("trained")
    (folder / "sweep.yaml").write_text(BASE)
    result = run_sweep(load_sweep(folder / "sweep.yaml"), QuietProgress(), out=folder / "out")
    assert result.trained == 3
    return folder


@pytest.fixture
def sweep(trained, tmp_path) -> Path:
    """A private copy of the trained folder; returns its sweep.yaml (results in ./out)."""
    shutil.copytree(trained, tmp_path, dirs_exist_ok=True)
    return tmp_path / "sweep.yaml"


def rows(folder: Path, name: str = "trials.csv") -> list[dict[str, str]]:
    with (folder / name).open() as f:
        return list(csv.DictReader(f))


def grid_study(folder: Path):
    return studies.load_study(studies.sqlite_url(folder), "tiny")


@pytest.mark.parametrize(
    ("override", "said"),
    [
        ("dataset=fashion-mnist", "dataset = mnist-mini, this config says fashion-mnist"),
        ("subset.train=128", "subset.train = 256, this config says 128"),
        ("subset.test=null", "subset.test = 128, this config says null"),
        ("model.hidden=[16]", "model.hidden = [32], this config says [16]"),
        ("model=logreg", "model.name = mlp, this config says logreg"),
        ("train.epochs=2", "train.epochs = 1, this config says 2"),
        ("train.batch_size=32", "train.batch_size = 64, this config says 32"),
        ("train.precision=bf16", "train.precision = fp32, this config says bf16"),
        ("data.normalize=unit", "data.normalize = standard, this config says unit"),
        ("data.drop_last=true", "data.drop_last = false, this config says true"),
        ("model.init=keras", "model.init = torch, this config says keras"),
    ],
    ids=["dataset", "subset-train", "subset-test", "model-option", "model", "epochs",
         "batch-size", "precision", "normalize", "drop-last", "init"],
)  # fmt: skip
def test_a_change_of_meaning_is_refused_naming_it(sweep, override, said):
    folder = sweep.parent / "out"
    study = grid_study(folder)
    stored = study.user_attrs[MEANING]
    spec = load_sweep(sweep, [override])
    with pytest.raises(ConfigChangedError) as refused:
        check_same_meaning(study, spec, studies.sqlite_url(folder))
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"study tiny in {folder / 'study.db'} was trained with {said}; ")
    assert message.endswith("add --new to start the study over, or give another --out or name")
    assert grid_study(folder).user_attrs[MEANING] == stored  # the record stays the first one


def test_run_refuses_in_one_line_and_leaves_the_folder_alone(sweep):
    folder = sweep.parent / "out"
    before = {name: (folder / name).read_text() for name in ("config.yaml", "trials.csv")}
    result = cli.invoke(app, ["run", str(sweep), "--out", str(folder), "--set", "train.epochs=2"])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines() == [
        f"error: study tiny in {folder / 'study.db'} was trained with train.epochs = 1, this "
        "config says 2; add --new to start the study over, or give another --out or name"
    ]
    assert {name: (folder / name).read_text() for name in before} == before
    assert len(grid_study(folder).get_trials()) == 3  # nothing enqueued, nothing trained


@pytest.mark.parametrize(
    ("overrides", "new_points"),
    [
        (["train.device=cpu"], 0),
        (["train.log_every=5"], 0),
        (["train.trials_per_batch=2"], 0),
        (["train.eval_batch_size=100"], 0),
        (["model.hidden=32"], 0),  # the same widths, written as one int
        (["data={normalize: standard, drop_last: false}", "model.init=torch"], 0),  # defaults
        (["train.seeds=[0, 1]"], 3),  # seed 1's points are new grid points
    ],
    ids=["device", "log-every", "trials-per-batch", "eval-batch-size", "same-model",
         "defaults-written", "seeds"],
)  # fmt: skip
def test_changes_that_keep_the_meaning_reuse_the_results(sweep, overrides, new_points):
    folder = sweep.parent / "out"
    result = run_sweep(load_sweep(sweep, overrides), QuietProgress(), out=folder)
    assert result.trained == new_points
    assert len(rows(folder)) == 3 + new_points


def test_new_starts_the_study_over(sweep):
    folder = sweep.parent / "out"
    args = ["run", str(sweep), "--out", str(folder), "--set", "train.epochs=2", "--quiet"]
    result = cli.invoke(app, [*args, "--new"])
    assert result.exit_code == 0, result.output
    study = grid_study(folder)
    assert len(study.get_trials()) == 3  # only the new study's trials
    assert study.user_attrs[MEANING]["train.epochs"] == 2
    assert yaml.safe_load((folder / "config.yaml").read_text())["train"]["epochs"] == 2
    epochs = {r["trial"]: int(r["epoch"]) for r in rows(folder, "history.csv") if r["epoch"]}
    assert sorted(epochs.values()) == [2, 2, 2]  # every trial trained 2 epochs, none kept
    again = cli.invoke(app, args)  # the same change without --new is no change now
    assert again.exit_code == 0, again.output
    assert len(grid_study(folder).get_trials()) == 3


def test_removed_grid_points_leave_the_tables_and_are_counted(sweep):
    folder = sweep.parent / "out"
    fewer = load_sweep(sweep, ["optimizers[0].grid.learning_rate=[0.1]"])
    result = run_sweep(fewer, QuietProgress(), out=folder)
    assert result.trained == 0
    assert sorted((r["optimizer"], r["learning_rate"]) for r in rows(folder)) == [
        ("adam", "0.001"),
        ("sgd", "0.1"),
    ]
    assert {r["trial"] for r in rows(folder, "history.csv")} == {r["trial"] for r in rows(folder)}
    line = "The study also holds 1 trial of a grid point no longer in the file."
    assert line in (folder / "table.md").read_text()
    assert line in (folder / "report.html").read_text()
    rebuilt = cli.invoke(app, ["report", str(folder)])  # from the study alone: the same
    assert rebuilt.exit_code == 0, rebuilt.output
    assert len(rows(folder)) == 2 and line in (folder / "table.md").read_text()
    back = run_sweep(load_sweep(sweep), QuietProgress(), out=folder)  # the point comes back
    assert back.trained == 0 and len(rows(folder)) == 3
    assert "also holds" not in (folder / "table.md").read_text()


def test_a_study_from_before_the_record_is_accepted_and_recorded(sweep):
    folder = sweep.parent / "out"
    with sqlite3.connect(folder / "study.db") as db:  # as optsweep left studies until now
        gone = db.execute(
            "DELETE FROM study_user_attributes WHERE key IN (?, 'grid_keys')", (MEANING,)
        ).rowcount
    assert gone == 2
    assert MEANING not in grid_study(folder).user_attrs
    result = run_sweep(load_sweep(sweep, ["train.epochs=2"]), QuietProgress(), out=folder)
    assert result.trained == 0  # unknown meaning: its results are kept
    assert grid_study(folder).user_attrs[MEANING]["train.epochs"] == 2
    with pytest.raises(ConfigChangedError, match=r"train\.epochs = 2, this config says 1"):
        run_sweep(load_sweep(sweep), QuietProgress(), out=folder)


# What optsweep recorded before data: and model.init existed: the same keys without them.
ADDED_LATER = ("data.normalize", "data.drop_last", "model.init")


def as_recorded_before(folder: Path) -> dict:
    """Rewrite the study's meaning as an optsweep without the data protocol stored it."""
    study = grid_study(folder)
    meaning = {k: v for k, v in study.user_attrs[MEANING].items() if k not in ADDED_LATER}
    assert len(meaning) == len(study.user_attrs[MEANING]) - len(ADDED_LATER)
    study.set_user_attr(MEANING, meaning)
    return meaning


def test_a_study_from_before_the_data_protocol_resumes_at_the_defaults(sweep):
    folder = sweep.parent / "out"
    as_recorded_before(folder)
    result = run_sweep(load_sweep(sweep), QuietProgress(), out=folder)
    assert result.trained == 0  # its trials were standardised, torch-initialised: the same
    stored = grid_study(folder).user_attrs[MEANING]
    assert {k: stored[k] for k in ADDED_LATER} == {
        "data.normalize": "standard",
        "data.drop_last": False,
        "model.init": "torch",
    }


@pytest.mark.parametrize(
    ("override", "said"),
    [
        ("data.normalize=unit", "data.normalize = standard, this config says unit"),
        ("data.drop_last=true", "data.drop_last = false, this config says true"),
        ("model.init=keras", "model.init = torch, this config says keras"),
    ],
    ids=["normalize", "drop-last", "init"],
)
def test_a_study_from_before_the_data_protocol_refuses_a_change(sweep, override, said):
    folder = sweep.parent / "out"
    before = as_recorded_before(folder)
    result = cli.invoke(app, ["run", str(sweep), "--out", str(folder), "--set", override])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines() == [
        f"error: study tiny in {folder / 'study.db'} was trained with {said}; add --new to "
        "start the study over, or give another --out or name"
    ]
    assert grid_study(folder).user_attrs[MEANING] == before
