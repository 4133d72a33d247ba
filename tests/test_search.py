"""Search mode: space translation, seeded suggestions, pruning, resume, refusal of a new space."""

from __future__ import annotations

import collections
import dataclasses
import json
import math

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from optsweep.config import ConfigError, load_sweep
from optsweep.progress import QuietProgress
from optsweep.search import (
    SearchError,
    build_space,
    fingerprint,
    make_sampler,
    run_search,
    suggest,
)

HEAD = "name: s\ndataset: mnist-mini\noptimizers:\n"


@pytest.mark.parametrize(
    ("blocks", "expected"),
    [
        (
            "  - name: adam\n    grid: {learning_rate: [0.1, 0.01], amsgrad: [true, false]}\n",
            {
                "learning_rate": CategoricalDistribution([0.1, 0.01]),
                "amsgrad": CategoricalDistribution([True, False]),
            },
        ),
        (
            "  - name: adam\n    grid: {lr: {low: 1.0e-5, high: 0.1, log: true}}\n",
            {"lr": FloatDistribution(1e-5, 0.1, log=True)},
        ),
        (
            "  - name: sgd\n    grid: {learning_rate: {low: 0.01, high: 0.5, step: 0.01}}\n",
            {"learning_rate": FloatDistribution(0.01, 0.5, step=0.01)},
        ),
        (
            "  - name: sgd\n    gradient_accumulation_steps: 2\n"
            "    grid: {learning_rate: [0.1]}\n"
            "  - name: adam\n    grid: {gradient_accumulation_steps: {low: 1, high: 4}}\n",
            {
                "optimizer": CategoricalDistribution(["sgd", "adam"]),
                "sgd.learning_rate": CategoricalDistribution([0.1]),
                "adam.gradient_accumulation_steps": IntDistribution(1, 4),
            },
        ),
        (
            "  - name: adam\n    grid: {betas: [[0.9, 0.999], [0.8, 0.99]]}\n",
            {"beta_1+beta_2": CategoricalDistribution(["[0.9, 0.999]", "[0.8, 0.99]"])},
        ),
    ],
    ids=["lists", "log-range", "stepped-range", "two-blocks", "linked-betas"],
)
def test_yaml_grid_becomes_optuna_space(write_yaml, blocks, expected):
    spec = load_sweep(write_yaml(HEAD + blocks), search=True)
    space = build_space(spec)
    found = {n: d for s in space for n, d in s.distributions.items()}
    if len(space) > 1:
        found["optimizer"] = CategoricalDistribution([s.label for s in space])
    assert found == expected


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ("{learning_rate: {low: 0.1, high: 0.01}}", "low (0.1) must be below high (0.01)"),
        ("{learning_rate: {low: 0.0, high: 0.1, log: true}}", "learning_rate"),
        ("{amsgrad: {low: 0, high: 1}}", "amsgrad is true or false: give a list"),
        ("{learning_rate: {low: 0.1}}", "required key missing; add high"),
        ("{learning_rate: {low: 0.01, high: 0.1, lg: true}}", "did you mean 'log'"),
    ],
    ids=["low-above-high", "log-nonpositive", "bool-range", "missing-high", "typo"],
)
def test_bad_ranges_are_one_line_each(write_yaml, grid, message):
    with pytest.raises(ConfigError) as error:
        load_sweep(write_yaml(HEAD + f"  - name: adam\n    grid: {grid}\n"), search=True)
    assert len(error.value.problems) == 1
    assert message in str(error.value)


def test_run_refuses_ranges(write_yaml):
    path = write_yaml(HEAD + "  - name: adam\n    grid: {lr: {low: 0.001, high: 0.1}}\n")
    with pytest.raises(ConfigError, match=r"a range \{low, high\} is for optsweep search"):
        load_sweep(path)


@pytest.mark.parametrize("sampler", ["tpe", "random", "qmc", "cmaes"])
def test_same_seed_same_suggestions(write_yaml, sampler):
    spec = load_sweep(
        write_yaml(
            f"name: s\ndataset: mnist-mini\nsearch: {{sampler: {sampler}, seed: 7}}\noptimizers:\n"
            "  - name: adam\n    grid: {lr: {low: 1.0e-5, high: 0.1, log: true}, "
            "beta_1: {low: 0.5, high: 0.95}}\n"
        ),
        search=True,
    )

    def sequence() -> list[tuple[float, float]]:
        space = build_space(spec)
        study = optuna.create_study(direction="maximize", sampler=make_sampler(spec.search, space))
        points = []
        for i in range(12):
            trial = study.ask()
            t = suggest(trial, space, seed=0)
            study.tell(trial, math.sin(i))  # a fixed, deterministic objective
            points.append((t.params["learning_rate"], t.params["beta_1"]))
        return points

    first, second = sequence(), sequence()
    assert first == second
    assert len(set(first)) > 1


def test_grid_sampler_needs_lists(write_yaml):
    spec = load_sweep(
        write_yaml(
            "name: s\ndataset: mnist-mini\nsearch: {sampler: grid}\noptimizers:\n"
            "  - name: adam\n    grid: {lr: {low: 0.001, high: 0.1}}\n"
        ),
        search=True,
    )
    with pytest.raises(SearchError, match="sampler grid needs one optimizer block"):
        make_sampler(spec.search, build_space(spec))


def dashboard_trials(storage: str) -> dict[int, dict]:
    """The trials as optuna-dashboard's own API serves them (its WSGI app, no server)."""
    import json
    from wsgiref.util import setup_testing_defaults

    import optuna_dashboard

    app = optuna_dashboard.wsgi(storage)

    def get(path: str) -> dict:
        environ: dict = {}
        setup_testing_defaults(environ)
        environ["PATH_INFO"] = path
        status = []
        body = b"".join(app(environ, lambda s, h, e=None: status.append(s)))
        assert status == ["200 OK"], status
        return json.loads(body)

    (study,) = get("/api/studies")["study_summaries"]
    return {t["number"]: t for t in get(f"/api/studies/{study['study_id']}")["trials"]}


SEARCH = """\
name: tiny
dataset: mnist-mini
subset: {{train: 512, test: 256}}
train: {{epochs: 3, batch_size: 64, seeds: [0]}}
search: {{trials: {trials}, batch: 4, sampler: tpe, pruner: median, seed: 1}}
optimizers:
  - name: momentum
    grid: {{lr: {{low: 1.0e-4, high: 0.5, log: true}}, momentum: {{low: 0.0, high: 0.9}}}}
"""


@pytest.mark.parametrize(
    ("overrides", "data"),
    [
        ([], None),  # what a search begun before data: existed stored
        (["data.normalize=standard", "data.drop_last=false"], None),  # the defaults, written
        (["data.normalize=unit"], {"normalize": "unit"}),
        (["data={normalize: unit, drop_last: true}"], {"normalize": "unit", "drop_last": True}),
    ],
    ids=["absent", "defaults", "unit", "deepobs"],
)
def test_the_data_protocol_enters_the_fingerprint_only_off_its_defaults(
    write_yaml, overrides, data
):
    path = write_yaml(SEARCH.format(trials=4))
    spec = load_sweep(path, overrides, search=True)
    record = json.loads(fingerprint(spec, build_space(spec)))
    assert record.get("data") == data
    plain = load_sweep(path, search=True)
    same = fingerprint(plain, build_space(plain)) == fingerprint(spec, build_space(spec))
    assert same is (data is None)


def test_search_prunes_resumes_and_refuses_another_space(write_yaml, tmp_path):
    out = tmp_path / "search"
    spec = load_sweep(write_yaml(SEARCH.format(trials=14)), search=True)
    first = run_search(spec, QuietProgress(), out=out)
    statuses = [r.status for r in first.records]
    assert len(statuses) == 14
    assert statuses.count("pruned") >= 1
    assert statuses.count("complete") >= 5
    pruned = next(r for r in first.records if r.status == "pruned")
    assert len(pruned.epochs) < 3  # stopped early, with the epochs it reached
    assert (out / "curves" / "optimization_history.png").is_file()
    assert not (out / "curves" / "param_importances.png").exists()  # under 20 completed

    again = run_search(spec, QuietProgress(), out=out)
    assert again.trained == 0 and len(again.records) == 14

    more = run_search(spec, QuietProgress(), out=out, trials=16)
    assert len(more.records) == 16

    study = optuna.load_study(study_name="tiny-search", storage=first.storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert set(complete[0].params) == {"lr", "momentum"}
    assert sorted(complete[0].intermediate_values) == [1, 2, 3]
    assert {"status", "seeds", "runs", "seconds", "epochs"} <= set(complete[0].user_attrs)
    shown = dashboard_trials(first.storage)
    assert {p["name"] for p in shown[complete[0].number]["params"]} == {"lr", "momentum"}
    assert [v["step"] for v in shown[complete[0].number]["intermediate_values"]] == [1, 2, 3]

    changed = load_sweep(write_yaml(SEARCH.format(trials=14).replace("0.9}", "0.5}")), search=True)
    with pytest.raises(SearchError, match="searched a different space"):
        run_search(changed, QuietProgress(), out=out)
    restarted = run_search(changed, QuietProgress(), out=out, trials=4, new=True)
    assert len(restarted.records) == 4
    assert (out / "report.html").is_file()
    assert (out / "curves" / "optimization_history.png").is_file()


ONE_POINT = """\
name: one
dataset: mnist-mini
subset: {{train: 256, test: 128}}
train: {{epochs: 2, batch_size: 64, seeds: {seeds}}}
search: {{trials: {trials}, batch: {batch}, sampler: random, pruner: none, seed: 3}}
optimizers:
{blocks}
"""


def search_file(write_yaml, blocks: str, *, trials: int, batch: int = 4, seeds: str = "[0]"):
    text = ONE_POINT.format(blocks=blocks, trials=trials, batch=batch, seeds=seeds)
    return load_sweep(write_yaml(text), search=True)


def trials_of(result) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name="one-search", storage=result.storage)
    return sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)


@pytest.mark.parametrize(
    ("block", "status", "batch"),
    [
        ("  - name: sgd\n    grid: {learning_rate: [0.1]}\n", "complete", 4),  # in one batch
        ("  - name: sgd\n    grid: {learning_rate: [0.1]}\n", "complete", 1),  # across batches
        ("  - name: sgd\n    grid: {learning_rate: [1.0e+10]}\n", "diverged", 4),
        ("  - name: sgd\n    grid: {learning_rate: [1.0e+10]}\n", "diverged", 1),
    ],
    ids=["complete-one-batch", "complete-across-batches", "diverged-one-batch", "diverged-later"],
)
def test_a_repeated_point_copies_the_first_result_and_counts(
    write_yaml, tmp_path, block, status, batch
):
    # One point in the space: every suggestion after the first repeats it.
    spec = search_file(write_yaml, block, trials=4, batch=batch)
    result = run_search(spec, QuietProgress(), out=tmp_path / "out")
    assert result.trained == 1  # trained once, never again
    trials = trials_of(result)
    assert [t.user_attrs["status"] for t in trials] == [status] * 4
    assert [t.user_attrs.get("duplicate_of") for t in trials] == [None, 0, 0, 0]
    assert len({t.value for t in trials}) == 1
    assert {r.status for r in result.records} == {status}
    rows = (tmp_path / "out" / "trials.csv").read_text().splitlines()
    assert rows[0].split(",")[:5] == ["trial", "optimizer", "semantics", "seed", "learning_rate"]
    assert rows[0].endswith(",duplicate_of") and rows[2].endswith(",0") and len(rows) == 5


def test_invalid_combinations_count_and_keep_the_columns(write_yaml, tmp_path):
    # torch's Nesterov refuses momentum 0: half the points are invalid combinations.
    block = (
        "  - name: nesterov\n    grid: {lr: [0.05], momentum: {low: 0.0, high: 0.9, step: 0.9}}\n"
    )
    spec = search_file(write_yaml, block, trials=6, batch=6)
    result = run_search(spec, QuietProgress(), out=tmp_path / "out")
    statuses = [t.user_attrs["status"] for t in trials_of(result)]
    assert len(statuses) == 6 and "invalid" in statuses and "complete" in statuses
    invalid = next(r for r in result.records if r.status == "invalid")
    assert (invalid.optimizer, invalid.semantics) == ("nesterov", "torch")
    assert invalid.params == {"lr": 0.05, "momentum": 0.0}
    header = (tmp_path / "out" / "trials.csv").read_text().splitlines()[0].split(",")
    assert header[:6] == ["trial", "optimizer", "semantics", "seed", "lr", "momentum"]


def test_each_configuration_trains_once_per_seed_and_tells_the_mean(write_yaml, tmp_path):
    block = "  - name: adam\n    grid: {lr: [0.01, 0.001, 0.0001]}\n"
    spec = search_file(write_yaml, block, trials=3, batch=3, seeds="[0, 1]")
    result = run_search(spec, QuietProgress(), out=tmp_path / "out")
    for trial in trials_of(result):
        by_seed = trial.user_attrs["value_by_seed"]
        runs = trial.user_attrs["runs"]
        assert [r["seed"] for r in runs] == [0, 1]
        finals = [r["epochs"][-1]["test_accuracy"] for r in runs]
        assert by_seed == {"0": finals[0], "1": finals[1]}
        if trial.user_attrs.get("duplicate_of") is None:
            assert finals[0] != finals[1]  # two real runs, not one copied
        assert trial.value == pytest.approx(sum(finals) / 2)
        means = [sum(r["epochs"][e]["test_accuracy"] for r in runs) / 2 for e in range(2)]
        assert [trial.intermediate_values[e + 1] for e in range(2)] == pytest.approx(means)
    assert sorted(r.seed for r in result.records) == [0, 0, 0, 1, 1, 1]
    table = (tmp_path / "out" / "table.md").read_text()
    assert "## Configurations over seeds" in table and " ± " in table


def test_the_budget_lives_in_the_study(write_yaml, tmp_path):
    block = "  - name: adam\n    grid: {lr: {low: 1.0e-4, high: 0.1, log: true}}\n"
    spec = search_file(write_yaml, block, trials=2, batch=2)
    out = tmp_path / "out"
    first = run_search(spec, QuietProgress(), out=out)
    assert len(first.records) == 2
    with pytest.raises(SearchError, match="has a budget of 2 trials; --trials 1 would lower it"):
        run_search(spec, QuietProgress(), out=out, trials=1)
    assert len(run_search(spec, QuietProgress(), out=out, trials=3).records) == 3
    study = optuna.load_study(study_name="one-search", storage=first.storage)
    assert study.user_attrs["budget"] == 3
    assert run_search(spec, QuietProgress(), out=out).trained == 0  # search.trials 2 < 3: kept


@pytest.mark.parametrize(
    ("sampler", "same_first_points"),
    [("tpe", False), ("random", False), ("cmaes", False), ("qmc", True)],
)
def test_each_worker_seeds_its_sampler_apart_but_the_first_keeps_search_seed(
    write_yaml, sampler, same_first_points
):
    from optsweep.search import sampler_seed

    spec = load_sweep(
        write_yaml(
            f"name: s\ndataset: mnist-mini\nsearch: {{sampler: {sampler}, seed: 7}}\noptimizers:\n"
            "  - name: adam\n    grid: {lr: {low: 1.0e-5, high: 0.1, log: true}, "
            "beta_1: {low: 0.5, high: 0.95}}\n"
        ),
        search=True,
    )
    assert sampler_seed(spec.search, 0) == 7

    def first_points(worker: int) -> list[tuple[float, float]]:
        space = build_space(spec)
        study = optuna.create_study(
            direction="maximize", sampler=make_sampler(spec.search, space, worker)
        )
        points = []
        for _ in range(3):
            trial = study.ask()
            t = suggest(trial, space, seed=0)
            study.tell(trial, 0.5)
            points.append((t.params["learning_rate"], t.params["beta_1"]))
        return points

    assert first_points(0) == first_points(0)  # one process: reproducible from search.seed
    assert (first_points(0) == first_points(1)) is same_first_points
    assert first_points(1) != first_points(2) or same_first_points


THREE = """\
  - name: adam
    grid: {lr: {low: 1.0e-4, high: 1.0e-2, log: true}}
  - name: rmsprop
    grid: {lr: {low: 1.0e-4, high: 1.0e-2, log: true}}
  - name: momentum
    grid: {lr: {low: 1.0e-3, high: 1.0e-1, log: true}}
"""


@pytest.mark.parametrize(
    ("share", "sampler", "trials", "batch", "counts"),
    [
        ("equal", "random", 9, 3, {"adam": 3, "rmsprop": 3, "momentum": 3}),
        ("equal", "tpe", 12, 4, {"adam": 4, "rmsprop": 4, "momentum": 4}),
        ("equal", "random", 7, 2, {"adam": 3, "rmsprop": 2, "momentum": 2}),  # file order first
        ("sampler", "random", 9, 3, None),  # the sampler's choice: not asserted
    ],
)
def test_each_optimizer_gets_its_share_of_the_budget(
    write_yaml, tmp_path, share, sampler, trials, batch, counts
):
    spec = search_file(write_yaml, THREE, trials=trials, batch=batch)
    search = dataclasses.replace(spec.search, share=share, sampler=sampler)
    spec = dataclasses.replace(spec, search=search)
    result = run_search(spec, QuietProgress(), out=tmp_path / "out")
    found = collections.Counter(t.params["optimizer"] for t in trials_of(result))
    assert sum(found.values()) == trials
    if counts is not None:
        assert found == counts
