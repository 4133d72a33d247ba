"""optsweep.compare: best configurations, ranks, costs and refusals on made-up records (no
training, no pixels), then `optsweep compare` end to end on three tiny mnist-mini sweeps."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from optsweep.cli import app
from optsweep.compare import (
    CompareError,
    Problem,
    best_rows,
    best_table,
    check_comparable,
    check_folders,
    costs_of,
    labelled,
    problem_of,
    profile_rows,
    profile_taus,
    rank_rows,
    ranks,
    tuning_curves,
)
from optsweep.records import TrialRecord

runner = CliRunner()
inf = math.inf


def run(trial: int, optimizer: str, seed: int, curve: list[float], status="complete", **params):
    """A record whose test accuracy per epoch is ``curve``."""
    epochs = [{"epoch": i + 1, "test_accuracy": a} for i, a in enumerate(curve)]
    return TrialRecord(trial, optimizer, "torch", seed, params, status, epochs)


def problem(
    records: list[TrialRecord],
    folder: str = "res",
    *,
    dataset: str = "mnist",
    model: str = "mlp",
    target: float | dict = 0.9,
    epochs: int | None = 2,
    mode: str | None = None,
) -> Problem:
    """A `Problem` as `read_problem` makes it, from a stored config's keys."""
    config = {"dataset": dataset, "model": model, "report": {"target": target}}
    if epochs is not None:
        config["train"] = {"epochs": epochs}
    return problem_of(Path(folder), config, mode, records)


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ([0.9, 0.8, 0.95], [2, 3, 1]),
        ([0.9, 0.9, 0.8], [1.5, 1.5, 3]),  # ties share the mean of their places
        ([0.5, math.nan, 0.7, math.nan], [2, 3.5, 1, 3.5]),  # never completed: last
        ([0.7], [1]),
    ],
    ids=["order", "tie", "nan-last", "one"],
)
def test_ranks(scores, expected):
    assert ranks(scores) == expected


def test_best_configuration_per_optimizer_and_its_rank_on_each_problem():
    mnist = problem(
        [
            run(0, "adam", 0, [0.8, 0.92], lr=0.01),
            run(1, "adam", 1, [0.8, 0.94], lr=0.01),
            run(2, "adam", 0, [0.95, 0.96], lr=0.001),  # the best: mean 0.95
            run(3, "adam", 1, [0.85, 0.94], lr=0.001),
            run(4, "sgd", 0, [0.5, 0.97], lr=0.1),
            run(5, "sgd", 1, [0.5, math.nan], "diverged", lr=0.1),
        ]
    )
    fashion = problem(
        [run(0, "adam", 0, [0.6, 0.7]), run(1, "sgd", 0, [0.75, 0.8])],
        dataset="fashion-mnist",
        model="2c2d",
        target=0.7,
    )
    best = best_rows([mnist, fashion])
    got = [(b.problem, b.optimizer, b.params, b.mean, b.seeds, b.rank) for b in best]
    assert got == [
        ("mnist mlp", "sgd", {"lr": 0.1}, 0.97, 1, 1),
        ("mnist mlp", "adam", {"lr": 0.001}, pytest.approx(0.95), 2, 2),
        ("fashion-mnist 2c2d", "sgd", {}, 0.8, 1, 1),
        ("fashion-mnist 2c2d", "adam", {}, 0.7, 1, 2),
    ]
    assert math.isnan(best[0].std) and best[1].std == pytest.approx(math.sqrt(2) * 0.01)
    # epochs to 0.9 (mnist) and 0.7 (fashion): sgd's seed 1 diverged, so half missed
    assert math.isnan(best[0].speed.median_epoch)
    assert [b.speed.median_epoch for b in best[1:]] == [1.5, 1, 2]
    assert costs_of(best) == {
        "mnist mlp": {"sgd/torch": inf, "adam/torch": 1.5},
        "fashion-mnist 2c2d": {"sgd/torch": 1, "adam/torch": 2},
    }
    assert rank_rows(best) == [
        {
            "optimizer": "sgd/torch",
            "ranks": {"mnist mlp": 1, "fashion-mnist 2c2d": 1},
            "mean_rank": 1,
        },
        {
            "optimizer": "adam/torch",
            "ranks": {"mnist mlp": 2, "fashion-mnist 2c2d": 2},
            "mean_rank": 2,
        },
    ]


def test_an_optimizer_missing_from_a_problem_is_ranked_over_the_problems_it_ran():
    a = problem([run(0, "adam", 0, [0.9]), run(1, "sgd", 0, [0.8])], "a")
    b = problem([run(0, "sgd", 0, [0.9])], "b", dataset="cifar10", model="3c3d")
    assert rank_rows(best_rows([a, b])) == [
        {"optimizer": "adam/torch", "ranks": {"mnist mlp": 1}, "mean_rank": 1},
        {"optimizer": "sgd/torch", "ranks": {"mnist mlp": 2, "cifar10 3c3d": 1}, "mean_rank": 1.5},
    ]


def test_an_optimizer_without_a_completed_trial_is_named_not_ranked_by_a_pruned_one():
    momentum = [run(2 + i, "momentum", 0, [0.3], "pruned", lr=0.1 * (i + 1)) for i in range(2)]
    mnist = problem([run(0, "adam", 0, [0.9, 0.95]), run(1, "rmsprop", 0, [0.8, 0.9]), *momentum])
    best = best_rows([mnist])
    last = best[-1]
    assert (last.optimizer, last.rank, last.params) == ("momentum", 3, {})
    assert last.unfinished == "2 trials, both pruned at epoch 1"
    rows = best_table(best)[1]
    assert rows[-1][2] == "no completed trial (2 trials, both pruned at epoch 1)"


@pytest.mark.parametrize(
    ("costs", "taus"),
    [
        ({"a": {"x": 2, "y": 3}, "b": {"x": 4, "y": 2}}, [1, 1.5, 2, 4]),
        ({"a": {"x": inf, "y": inf}}, [1, 2]),  # nobody reached: the picture still has an axis
        ({"a": {"x": 1, "y": inf}}, [1, 2]),
    ],
    ids=["ratios", "none-reached", "one-reached"],
)
def test_profile_taus_step_at_every_ratio_up_to_twice_the_largest(costs, taus):
    assert profile_taus(costs) == taus


def test_profile_rows_follow_measures_performance_profile():
    rows = profile_rows({"a": {"x": 2, "y": 3}, "b": {"x": 4, "y": 2}})
    assert [(r["optimizer"], r["tau"], r["rho"]) for r in rows if r["tau"] in (1, 2)] == [
        ("x", 1, 0.5),
        ("x", 2, 1.0),
        ("y", 1, 0.5),
        ("y", 2, 1.0),
    ]


def test_tuning_curves_of_a_grid_have_a_band_and_of_a_search_the_best_so_far():
    records = [run(i, "adam", 0, [acc], lr=i) for i, acc in enumerate([0.5, 0.9, 0.7])]
    grid = tuning_curves(problem(records))
    assert [(c.optimizer, c.k) for c in grid] == [("adam/torch", [1, 2, 3])]
    assert grid[0].best == pytest.approx([0.7, 2.5 / 3, 0.9])  # the mean … the best
    assert len(grid[0].low) == len(grid[0].high) == 3
    search = tuning_curves(problem(records, mode="search"))
    assert [(c.k, c.best, c.low) for c in search] == [([1, 2, 3], [0.5, 0.9, 0.9], [])]


def test_folders_sharing_dataset_and_model_are_named_by_folder():
    records = [run(0, "adam", 0, [0.9])]
    problems = [
        problem(records, "x/first"),
        problem(records, "x/second"),
        problem(records, "y/second"),
        problem(records, "z", model="2c2d"),
    ]
    assert [p.label for p in labelled(problems)] == ["first", "x/second", "y/second", "mnist 2c2d"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"target": {"metric": "test_loss", "value": 0.3}},
            "cannot compare different target metrics (report.target): a test_accuracy, "
            "b test_loss, c test_accuracy",
        ),
        (
            {"epochs": 3},
            "cannot compare different numbers of epochs (train.epochs): a 2, b 3, c 2",
        ),
        (
            {"epochs": None},  # not written: the default, 3 epochs
            "cannot compare different numbers of epochs (train.epochs): a 2, b 3, c 2",
        ),
    ],
    ids=["metric", "epochs", "default-epochs"],
)
def test_incomparable_folders_are_refused_in_one_line(changes, message):
    records = [run(0, "adam", 0, [0.9])]
    problems = [problem(records, "a"), problem(records, "b", **changes), problem(records, "c")]
    with pytest.raises(CompareError) as caught:
        check_comparable(problems)
    assert str(caught.value) == message


def test_different_datasets_targets_and_models_are_comparable():
    records = [run(0, "adam", 0, [0.9])]
    check_comparable(
        [problem(records, "a"), problem(records, "b", dataset="cifar10", model="3c3d", target=0.5)]
    )


def test_folders_are_checked_before_any_study_opens(tmp_path):
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "study.db").write_bytes(b"")
    ok, empty, absent = tmp_path / "ok", tmp_path, tmp_path / "absent"
    again = ok / ".." / "ok"
    cases = [
        ([ok], f"compare needs two or more results folders, got 1: {ok}"),
        ([ok, again], f"{ok} and {again} are the same folder: give each once"),
        (
            [ok, empty, absent],
            f"no study.db in {empty}, {absent}: compare reads the study of each results folder "
            "(optsweep run or search writes it)",
        ),
    ]
    for folders, message in cases:
        with pytest.raises(CompareError) as caught:
            check_folders(folders)
        assert str(caught.value) == message


# ── end to end: three tiny sweeps on mnist-mini ─────────────────────────────────────────

GRID = (
    "  - name: sgd\n    grid: {learning_rate: [0.1, 0.01]}\n"
    "  - name: adam\n    grid: {learning_rate: [0.01]}\n"
)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """Three results folders of one sweep file (two models, two subsets), one epoch, plus one
    trained for two epochs."""
    root = tmp_path_factory.mktemp("compare")
    config = root / "sweep.yaml"
    config.write_text(
        "name: tiny\ndataset: mnist-mini\nsubset: {train: 256, test: 128}\nmodel: logreg\n"
        "train: {epochs: 1, batch_size: 64, seeds: [0, 1], log_every: 2}\n"
        "report: {target: 0.5}\noptimizers:\n" + GRID
    )
    runs = {
        "logreg": [],
        "mlp": ["model=mlp"],
        "logreg-more": ["subset.train=384"],
        "two-epochs": ["train.epochs=2"],
    }
    out = {}
    for name, overrides in runs.items():
        out[name] = root / name
        sets = [arg for o in overrides for arg in ("--set", o)]
        result = runner.invoke(app, ["run", str(config), "--out", str(out[name]), "-q", *sets])
        assert result.exit_code == 0, result.output
    return out


def test_compare_end_to_end(folders, tmp_path):
    chosen = [folders["logreg"], folders["mlp"], folders["logreg-more"]]
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["compare", *map(str, chosen), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "mean rank" in result.output
    page = (out / "compare.html").read_text()
    assert "http://" not in page and "https://" not in page
    assert page.index('<table class="ranks">') < page.index("<img")
    assert page.count("<img") == 2
    assert {p.name for p in (out / "curves").iterdir()} == {
        "performance_profile.png",
        "tuning_cost.png",
    }
    assert (out / "compare.md").read_text().startswith("# Comparison across problems")
    with (out / "best.csv").open() as f:
        best = list(csv.DictReader(f))
    # logreg and logreg-more share dataset and model: named by folder
    labels = {"logreg": "logreg", "mlp": "mnist-mini mlp", "logreg-more": "logreg-more"}
    assert [r["problem"] for r in best] == [
        labels[n] for n in ["logreg"] * 2 + ["mlp"] * 2 + ["logreg-more"] * 2
    ]
    for name, label in labels.items():
        with (folders[name] / "trials.csv").open() as f:
            trials = list(csv.DictReader(f))
        by_config: dict[tuple[str, float], list[float]] = {}
        for t in trials:
            key = (t["optimizer"], float(t["learning_rate"]))
            by_config.setdefault(key, []).append(float(t["final_test_accuracy"]))
        for row in (r for r in best if r["problem"] == label):
            mine = by_config[(row["optimizer"], json.loads(row["params"])["learning_rate"])]
            assert len(mine) == int(row["seeds"]) == 2
            assert float(row["mean"]) == pytest.approx(sum(mine) / 2)
            means = [sum(v) / 2 for (o, _), v in by_config.items() if o == row["optimizer"]]
            assert float(row["mean"]) == pytest.approx(max(means))  # its best configuration
    with (out / "profile.csv").open() as f:
        assert next(csv.reader(f)) == ["optimizer", "tau", "rho"]


@pytest.mark.parametrize(
    ("target", "unreached"),
    [("0.999", True), ("0.05", False)],  # nobody reaches 99.9% in an epoch; everyone 5%
)
def test_compare_target_replaces_each_folders_and_a_flat_profile_says_why(
    folders, tmp_path, target, unreached
):
    chosen = [str(folders["logreg"]), str(folders["mlp"])]
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["compare", *chosen, "--out", str(out), "--target", target])
    assert result.exit_code == 0, result.output
    note = "No optimizer reached its target on any problem"
    assert (note in " ".join(result.output.split())) is unreached
    assert (note in (out / "compare.html").read_text()) is unreached
    assert f"test_accuracy ≥ {target}" in (out / "compare.md").read_text()


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["logreg"], "compare needs two or more results folders, got 1: {logreg}"),
        (
            ["logreg", "two-epochs"],
            "cannot compare different numbers of epochs (train.epochs): {logreg} 1, {two-epochs} 2",
        ),
        (
            ["logreg", "nowhere"],
            "no study.db in {nowhere}: compare reads the study of each results folder "
            "(optsweep run or search writes it)",
        ),
    ],
    ids=["one", "epochs", "no-study"],
)
def test_compare_refuses_in_one_line_with_exit_code_2(folders, tmp_path, names, message):
    paths = {**{k: str(v) for k, v in folders.items()}, "nowhere": str(tmp_path / "nowhere")}
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["compare", *(paths[n] for n in names), "--out", str(out)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["error: " + message.format(**paths)]
    assert not out.exists()
