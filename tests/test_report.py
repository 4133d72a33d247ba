"""Report data without training: ranking, CSV columns, Markdown table, pictures exist."""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import subprocess
import sys

import pytest

from optsweep.config import Target
from optsweep.files import replacing
from optsweep.plots import colour_groups, plot_curves, plot_lr_sensitivity, plot_tuning_cost
from optsweep.records import TrialRecord, ranked
from optsweep.report import (
    DefaultValue,
    table_rows,
    write_history_csv,
    write_table_md,
    write_trials_csv,
)


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
        "trials_in_batch",
        "seconds_per_trial",
    ]
    assert rows[3]["beta_1"] == ""  # sgd has no beta_1
    assert math.isnan(float(rows[1]["final_test_accuracy"]))


@pytest.mark.parametrize(
    ("target", "reached"),
    [
        (Target("test_accuracy", 0.45), ["1", "", "1", "1"]),  # epoch 1 is half the final
        (Target("test_accuracy", 0.93), ["", "", "2", "2"]),
        (Target("test_loss", 0.5), ["2", "", "2", "2"]),
    ],
)
def test_trials_csv_says_when_each_trial_reached_the_target(tmp_path, target, reached):
    write_trials_csv(RECORDS, tmp_path / "trials.csv", target)
    with (tmp_path / "trials.csv").open() as f:
        assert [r["reached_at_epoch"] for r in csv.DictReader(f)] == reached


def test_tables_fill_in_each_optimizers_defaults(tmp_path):
    records = [
        record(0, 0.9, optimizer="adam"),  # keras adam at its default rate, 0.001
        record(1, 0.8, optimizer="sgd", learning_rate=0.1),
        record(2, 0.7, optimizer="rmsprop", rho=0.8),
    ]
    header, rows = table_rows(records)
    assert header[3:5] == ["learning_rate", "rho"]
    cells = {row[1]: row[3:5] for row in rows}
    assert cells == {"adam": ["0.001", ""], "sgd": ["0.1", ""], "rmsprop": ["0.001", "0.8"]}
    assert isinstance(cells["adam"][0], DefaultValue) and not isinstance(
        cells["sgd"][0], DefaultValue
    )
    write_trials_csv(records, tmp_path / "trials.csv")
    with (tmp_path / "trials.csv").open() as f:
        assert [r["learning_rate"] for r in csv.DictReader(f)] == ["0.001", "0.1", "0.001"]
    write_table_md(records, tmp_path / "table.md", "demo")
    assert "| 1 | adam | keras | _0.001_ |  |" in (tmp_path / "table.md").read_text()


@pytest.mark.parametrize(
    ("seconds", "trials_in_batch", "shown"),
    [(34.1, 32, "1.07"), (2.0, 1, "2.00"), (3.0, None, "nan")],
)
def test_seconds_column_is_each_trials_share_of_its_batch(seconds, trials_in_batch, shown):
    one = dataclasses.replace(RECORDS[0], seconds=seconds, trials_in_batch=trials_in_batch)
    header, (row,) = table_rows([one])
    assert header[-1] == "s/trial"
    assert row[-1] == shown


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
    lines = text.splitlines()
    assert lines[lines.index("## Trials") + 4].startswith("| 1 | adam | keras | 0.001 | 0.5 |")
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


@pytest.mark.parametrize(
    ("records", "groups"),
    [
        (RECORDS, {"adam/keras": [0, 1, 2], "sgd/keras": [3]}),  # several optimizers
        (
            RECORDS[:3],
            {"learning_rate=0.001": [2], "learning_rate=0.01": [0], "learning_rate=10": [1]},
        ),
        ([RECORDS[0]], {"other trials": [0]}),  # nothing varies
        ([], {}),
    ],
    ids=["by-optimizer", "by-parameter", "one", "none"],
)
def test_curves_are_coloured_by_optimizer_else_by_the_parameter_that_varies(records, groups):
    got = colour_groups(records)
    assert {k: [r.trial for r in v] for k, v in got.items()} == groups


def test_benchmark_pictures_are_drawn_from_their_rows(tmp_path):
    from optsweep.measures import best_so_far, lr_sensitivity, tuning_cost
    from optsweep.stats import summarize

    summaries = summarize(RECORDS)
    paths = [
        plot_tuning_cost(tuning_cost(summaries, draws=50), tmp_path / "tuning_cost.png"),
        plot_tuning_cost(best_so_far(RECORDS), tmp_path / "search.png", search=True),
        plot_lr_sensitivity(lr_sensitivity(summaries), tmp_path / "lr_sensitivity.png"),
    ]
    assert all(p is not None and p.stat().st_size > 5000 for p in paths)
    assert plot_tuning_cost([], tmp_path / "none.png") is None
    assert plot_lr_sensitivity([], tmp_path / "none.png") is None


def test_an_optimizer_keeps_its_colour_from_picture_to_picture(tmp_path, monkeypatch):
    import optsweep.plots as plots
    from optsweep.measures import lr_sensitivity, tuning_cost
    from optsweep.stats import summarize

    drawn = {}

    def keep(fig, path, layout="fixed"):
        drawn[path.name] = {
            line.get_label().split(" (")[0]: line.get_color()
            for ax in fig.axes
            for line in ax.get_lines()
            if not line.get_label().startswith("_")
        }
        return path

    monkeypatch.setattr(plots, "save_figure", keep)
    records = [*RECORDS, record(4, 0.91, optimizer="rmsprop", learning_rate=0.01)]
    colours = plots.solver_colours(records)
    assert list(colours) == ["adam/keras", "sgd/keras", "rmsprop/keras"]  # best first
    summaries = summarize(records)
    plots.plot_curves(records, tmp_path, colours)
    plots.plot_tuning_cost(tuning_cost(summaries, draws=20), tmp_path / "t.png", False, colours)
    plots.plot_lr_sensitivity(lr_sensitivity(summaries), tmp_path / "l.png", colours)
    for picture in ("best_per_optimizer.png", "t.png", "l.png"):
        for name, colour in drawn[picture].items():
            if name in colours:
                assert colour == colours[name], (picture, name)
    assert set(drawn["t.png"]) == set(colours)


@pytest.mark.parametrize(("complete", "drawn"), [(19, False), (20, True)])
def test_importances_are_drawn_from_20_completed_trials_up(tmp_path, complete, drawn):
    import optuna

    from optsweep.plots import MIN_IMPORTANCE_TRIALS, plot_search

    assert MIN_IMPORTANCE_TRIALS == 20
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2 + t.suggest_float("y", 0, 1), complete)
    names = {p.name for p in plot_search(study.trials, study.direction, tmp_path)}
    assert ("param_importances.png" in names) is drawn
    assert "optimization_history.png" in names


def test_a_searchs_pictures_are_drawn_without_a_word_from_optuna(tmp_path):
    """Drawn in a fresh process (as in a painter forked before the command quietened Optuna):
    the in-memory copy of the study is not announced on the terminal."""
    code = (
        "import sys, optuna\n"
        "from pathlib import Path\n"
        "from optsweep.plots import plot_search\n"
        "trials = [optuna.trial.create_trial(params={'x': x}, "
        "distributions={'x': optuna.distributions.FloatDistribution(0, 1)}, value=x) "
        "for x in (0.1, 0.5, 0.9)]\n"
        "print(len(plot_search(trials, optuna.study.StudyDirection.MAXIMIZE, Path(sys.argv[1]))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"  # the optimization history
    assert "study created" not in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("config", "ranged"),
    [
        (
            {"optimizers": [{"name": "adam", "grid": {"lr": {"low": 1e-4, "high": 1e-1}}}]},
            {("adam", "lr")},
        ),
        ({"optimizers": [{"name": "adam", "grid": {"lr": [0.1, 0.01]}}]}, set()),
        ({"optimizers": [{"name": "sgd", "lr": 0.1}]}, set()),
        (None, set()),
    ],
)
def test_a_searchs_ranges_are_not_lists_to_extend(config, ranged):
    from optsweep.report import ranged_names

    assert ranged_names(config) == ranged


@pytest.mark.parametrize(
    ("config", "line"),
    [
        (
            {"dataset": "mnist", "train": {"epochs": 4, "seeds": [0, 1]}},
            "mnist · mlp · 4 epochs · batch 128 · seeds 0, 1 · target test_accuracy ≥ 0.97",
        ),
        (
            {
                "dataset": "fashion-mnist",
                "data": {"normalize": "unit", "drop_last": True},
                "model": {"name": "2c2d", "init": "keras"},
            },
            "fashion-mnist · normalize=unit · drop_last=true · 2c2d (init=keras) · 3 epochs · "
            "batch 128 · seeds 0 · target test_accuracy ≥ 0.97",
        ),
        (None, ""),
    ],
)
def test_the_report_says_its_setting_and_protocol(config, line):
    from optsweep.report import setting_line

    assert setting_line(config, Target("test_accuracy", 0.97) if config else None) == line


# ------------------------------------------------------------ the terminal table, fitted


def varied(r: TrialRecord, i: int) -> TrialRecord:
    """``r`` with losses and seconds of its own (``record`` gives every trial the same)."""
    epochs = [{**e, "train_loss": e["train_loss"] + i / 7, "test_loss": i / 3} for e in r.epochs]
    return dataclasses.replace(r, epochs=epochs, seconds=1.5 + i, trials_in_batch=1)


def wide_records(n: int = 30) -> list[TrialRecord]:
    """A grid over adagrad's and adam's many knobs: wider than 80 columns unfitted."""
    records = []
    for i in range(n):
        if i % 2:
            params = {"learning_rate": 10.0 ** -(i % 5), "initial_accumulator_value": 0.1 * i}
            records.append(varied(record(i, 0.5 + i / 100, optimizer="adagrad", **params), i))
        else:
            params = {"learning_rate": 10.0 ** -(i % 4), "beta_1": 0.8, "epsilon": 1e-7 * i}
            records.append(varied(record(i, 0.5 + i / 100, **params), i))
    return records


def rendered(renderable, width: int) -> list[str]:
    from rich.console import Console

    console = Console(width=width, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text().splitlines()


@pytest.mark.parametrize("width", [80, 100, 120, 200])
def test_the_terminal_table_fits_and_never_cuts_the_answer(width):
    from optsweep.report import fit_table, rich_table

    records = wide_records()
    lines = rendered(rich_table(records, limit=20, title="t", width=width), width)
    assert max(len(line) for line in lines) <= width
    text = "\n".join(lines)
    assert "…" not in text  # nothing cut
    for r in ranked(records)[:20]:  # each shown accuracy whole
        assert f"{r.final_test_accuracy:.4f}" in text
    assert "the top 20 of 30; table.md has them all" in " ".join(text.split())
    # every row shares its semantics, seed and status: folded into one line above
    assert lines[0] == "every row: semantics keras, seed 0, status complete"
    header, rows = table_rows(records)
    assert ("left out to fit" in text) == (fit_table(header, rows[:20], width).dropped != [])
    assert ("left out to fit" in text) == (width < 120)


@pytest.mark.parametrize("gone", range(5))
def test_spare_columns_leave_in_order_as_the_width_shrinks(gone):
    from optsweep.report import SPARE_COLUMNS, fit_table, table_width

    records = [record(0, 0.9, learning_rate=0.1), record(1, 0.8, learning_rate=1)]
    header, rows = table_rows(
        [varied(r, i) for i, r in enumerate(records)], Target("test_accuracy", 0.85)
    )
    wide = fit_table(header, rows, 1000)
    assert wide.folded == ["optimizer adam", "semantics keras", "seed 0", "status complete"]

    def width_without(spares) -> int:
        kept = [i for i, name in enumerate(wide.header) if name not in spares]
        return table_width(
            [wide.header[i] for i in kept], [[r[i] for i in kept] for r in wide.rows]
        )

    exact = width_without(SPARE_COLUMNS[:gone])
    assert fit_table(header, rows, exact).dropped == list(SPARE_COLUMNS[:gone])
    assert fit_table(header, rows, exact - 1).dropped == list(SPARE_COLUMNS[: gone + 1])
    narrowest = fit_table(header, rows, 20)  # all spares gone; the answer stays
    assert narrowest.dropped == list(SPARE_COLUMNS)
    assert narrowest.header == ["rank", "learning_rate", "test acc"]


def test_an_empty_column_leaves_without_a_word():
    from optsweep.report import fit_table

    header, rows = ["rank", "rho", "test acc"], [["1", "", "0.9"], ["2", "", "0.8"]]
    fitted = fit_table(header, rows, 80)
    assert fitted.header == ["rank", "test acc"] and fitted.folded == []


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["pruned", "pruned"], {("momentum", "keras"): "2 trials, both pruned at epoch 2"}),
        (["diverged"], {("momentum", "keras"): "1 trial, diverged"}),
        (["diverged"] * 3, {("momentum", "keras"): "3 trials, all diverged"}),
        (
            ["diverged", "pruned", "diverged"],
            {("momentum", "keras"): "3 trials: 2 diverged, 1 pruned at epoch 2"},
        ),
        (["pruned", "complete"], {}),  # one completed: it is ranked by that one
    ],
)
def test_an_optimizer_without_a_completed_trial_is_named_with_its_trials_fate(
    statuses, expected, tmp_path
):
    from optsweep.report import answer_lines, answer_of, unfinished
    from optsweep.stats import summarize

    theirs = [
        record(10 + i, 0.5, status, optimizer="momentum", learning_rate=0.1 * (i + 1))
        for i, status in enumerate(statuses)
    ]
    records = [record(0, 0.9, learning_rate=0.01), *theirs]
    assert unfinished(records) == expected
    lines = answer_lines(answer_of(records, summarize(records), None))
    assert lines[0].startswith("best adam/keras")
    for (optimizer, semantics), fate in expected.items():
        assert f"{optimizer}/{semantics}: no completed trial ({fate})" in lines
    write_table_md(records, tmp_path / "table.md", "t", summarize(records))
    text = (tmp_path / "table.md").read_text()
    assert all(f"no completed trial ({fate})" in text for fate in expected.values())


@pytest.mark.parametrize(
    ("few", "optimizers", "search", "note"),
    [
        (
            {"a": 3, "b": 3},
            2,
            False,
            "every optimizer has 3 configurations: the band is mostly resampling",
        ),
        ({"a": 2}, 2, False, "few configurations (a 2): the band is mostly resampling"),
        ({"a": 2, "b": 4}, 3, True, "few trials (a 2, b 4)"),
    ],
)
def test_a_tuning_cost_picture_says_when_it_stands_on_few_configurations(
    few, optimizers, search, note
):
    from optsweep.plots import few_note

    assert few_note(few, optimizers, search) == note
