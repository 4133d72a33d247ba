"""Report data without training: ranking, CSV columns, Markdown table, pictures exist."""

from __future__ import annotations

import csv
import math

import pytest

from optsweep.files import replacing
from optsweep.plots import plot_curves
from optsweep.records import TrialRecord, ranked
from optsweep.report import table_rows, write_history_csv, write_table_md, write_trials_csv


def record(trial: int, acc: float | None, status: str = "complete", **params) -> TrialRecord:
    epochs = (
        []
        if acc is None
        else [
            {"epoch": 1, "train_loss": 1.0, "test_loss": 0.9, "test_accuracy": acc / 2},
            {"epoch": 2, "train_loss": 0.5, "test_loss": 0.4, "test_accuracy": acc},
        ]
    )
    return TrialRecord(
        trial=trial,
        optimizer=params.pop("optimizer", "adam"),
        semantics="keras",
        seed=0,
        params=params,
        status=status,
        epochs=epochs,
        steps=[2, 4],
        step_losses=[1.0, 0.5],
        seconds=1.5,
    )


RECORDS = [
    record(0, 0.90, learning_rate=0.01, beta_1=0.9),
    record(1, None, "diverged", learning_rate=10.0, beta_1=0.9),
    record(2, 0.95, learning_rate=0.001, beta_1=0.5),
    record(3, 0.93, optimizer="sgd", learning_rate=0.1),
]


@pytest.mark.parametrize(
    ("records", "order"),
    [(RECORDS, [2, 3, 0, 1]), (RECORDS[:2], [0, 1]), ([RECORDS[1]], [1])],
    ids=["mixed", "one-diverged", "only-diverged"],
)
def test_ranking_puts_complete_trials_best_first_and_diverged_last(records, order):
    assert [r.trial for r in ranked(records)] == order


def test_trials_csv_has_yaml_names_as_columns(tmp_path):
    write_trials_csv(RECORDS, tmp_path / "trials.csv")
    with (tmp_path / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "trial",
        "optimizer",
        "semantics",
        "seed",
        "learning_rate",
        "beta_1",
        "status",
        "final_test_accuracy",
        "best_test_accuracy",
        "final_test_loss",
        "final_train_loss",
        "seconds",
    ]
    assert rows[3]["beta_1"] == ""  # sgd has no beta_1
    assert math.isnan(float(rows[1]["final_test_accuracy"]))


def test_history_csv_has_epoch_and_step_rows(tmp_path):
    write_history_csv(RECORDS[:1], tmp_path / "history.csv")
    with (tmp_path / "history.csv").open() as f:
        kinds = [r["kind"] for r in csv.DictReader(f)]
    assert kinds == ["epoch", "epoch", "step", "step"]


def test_markdown_table_is_ranked_with_grid_columns(tmp_path):
    header, rows = table_rows(RECORDS)
    assert header[3:5] == ["learning_rate", "beta_1"]
    assert [row[0] for row in rows] == ["1", "2", "3", "–"]
    write_table_md(RECORDS, tmp_path / "table.md", "demo")
    text = (tmp_path / "table.md").read_text()
    assert text.splitlines()[4].startswith("| 1 | adam | keras | 0.001 | 0.5 |")
    assert "1 diverged" in text


@pytest.mark.parametrize(
    ("optimizers", "pictures"),
    [
        (("adam", "sgd"), ["best_per_optimizer.png", "test_accuracy.png", "train_loss.png"]),
        (("adam",), ["test_accuracy.png", "train_loss.png"]),  # its best is in train_loss
    ],
)
def test_curves_are_drawn(tmp_path, optimizers, pictures):
    records = [r for r in RECORDS if r.optimizer in optimizers]
    paths = plot_curves(records, tmp_path / "curves")
    assert sorted(p.name for p in paths) == pictures
    assert all(p.stat().st_size > 5000 for p in paths)


def test_a_results_file_is_replaced_whole_or_not_at_all(tmp_path):
    path = tmp_path / "table.md"
    path.write_text("old\n")
    with pytest.raises(RuntimeError), replacing(path) as temporary:
        temporary.write_text("half of a ta")
        raise RuntimeError("stopped while writing")
    assert path.read_text() == "old\n"
    assert list(tmp_path.iterdir()) == [path]  # nothing left behind
    with replacing(path) as temporary:
        temporary.write_text("new\n")
    assert path.read_text() == "new\n"
    assert list(tmp_path.iterdir()) == [path]
