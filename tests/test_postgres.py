"""Many workers on one PostgreSQL study: atomic pops, killed and stalled workers, restarts.

A real PostgreSQL server is started for the session (`_postgres.postgres`); every test gets
its own database. The fault tests end with the same check (`_workers.assert_exactly_once`):
exactly one final trial per grid point, none left running, none outside the grid.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _postgres import postgres, wait_for  # noqa: F401  (the session fixture)
from _workers import (
    GRACE,
    HEARTBEAT,
    KILLS_SWEEP,
    Fleet,
    assert_exactly_once,
    completed,
    finals,
    kill_and_restart,
    load,
    tally,
)

from optsweep import optuna_private as private
from optsweep import study as studies
from optsweep.config import expand, load_sweep
from optsweep.progress import QuietProgress
from optsweep.runner import run_sweep

TESTS = Path(__file__).resolve().parent
LIVENESS = studies.Liveness(heartbeat=HEARTBEAT, grace=GRACE)

# 200 grid points: 10 rates x 10 momenta x 2 seeds (two batch keys).
POP_SWEEP = """\
name: pop
dataset: mnist-mini
train: {seeds: [0, 1]}
optimizers:
  - name: momentum
    grid:
      learning_rate: [0.1, 0.09, 0.08, 0.07, 0.06, 0.05, 0.04, 0.03, 0.02, 0.01]
      momentum: [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05]
"""


@pytest.fixture
def fleet(postgres, write_yaml, tmp_path):  # noqa: F811
    """Workers for a fresh 48-point sweep in a fresh database, enqueued by `optsweep init`."""
    config = write_yaml(KILLS_SWEEP.format(name="kills", train=1024))
    url = postgres.database()
    logs = tmp_path / "logs"
    logs.mkdir()
    group = Fleet(url, config, "kills", logs)
    init = subprocess.run(
        group.command("init", str(config), "--storage", url), capture_output=True, text=True
    )
    assert init.returncode == 0, init.stderr
    assert "48 enqueued" in init.stdout
    yield group
    group.close()


def test_init_from_several_processes_at_once_enqueues_each_point_once(
    postgres,  # noqa: F811
    write_yaml,
):
    config = write_yaml(KILLS_SWEEP.format(name="kills", train=256))
    url = postgres.database()  # empty: the processes also race to create Optuna's tables
    command = [sys.executable, "-m", "optsweep", "init", str(config), "--storage", url]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    trials = load(url, "kills").get_trials(deepcopy=False)
    assert len(trials) == 48
    assert len({t.user_attrs["key"] for t in trials}) == 48
    assert sum("48 enqueued" in out for out in outputs) == 1, outputs


def test_pop_hands_each_trial_to_exactly_one_of_8_processes(
    postgres,  # noqa: F811
    write_yaml,
    tmp_path,
):
    config = write_yaml(POP_SWEEP)
    trials = expand(load_sweep(config))
    url = postgres.database()
    rounds = 3
    for round_ in range(rounds):  # every round's study ready before the poppers load them
        study = studies.open_study(f"pop{round_}", url, LIVENESS)
        assert studies.sync_grid(study, trials).enqueued == 200
    poppers = [
        subprocess.Popen(
            [sys.executable, str(TESTS / "_popper.py"), url, str(config), str(tmp_path), *args],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        for args in ([str(rounds), str(limit)] for limit in (1, 2, 3, 5, 8, 8, 13, 32))
    ]
    try:
        assert all(p.stdout.readline().strip() == "ready" for p in poppers)
        for round_ in range(rounds):
            (tmp_path / f"go{round_}").touch()
            popped = [json.loads(p.stdout.readline()) for p in poppers]
            numbers = [n for batch in popped for n in batch]
            assert len(numbers) == 200, f"round {round_}: {len(numbers)} pops of 200"
            assert sorted(numbers) == list(range(200)), f"round {round_}: popped twice"
            assert sum(1 for batch in popped if batch) > 1  # they did compete
    finally:
        for p in poppers:
            p.kill()
            p.wait()


def test_stalled_worker_coming_back_records_nothing(postgres, tiny_sweep):  # noqa: F811
    spec = load_sweep(tiny_sweep("  - name: sgd\n    grid: {learning_rate: [0.1]}\n"))
    trials = expand(spec)
    specs = {t.key: t for t in trials}
    url = postgres.database()
    stalled_worker = studies.open_study(spec.name, url, LIVENESS)
    other_worker = studies.open_study(spec.name, url, LIVENESS)
    studies.sync_grid(stalled_worker, trials)
    [(stalled, stalled_spec)] = studies.pop_batch(stalled_worker, specs, 1)
    # The worker stalls: no heartbeat. After the grace period another worker reaps the
    # trial, enqueues its grid point again, claims and completes it.
    assert wait_for(lambda: studies.reap_stale(other_worker), timeout=3 * GRACE) == [stalled]
    assert studies.sync_grid(other_worker, trials, retry_failed=False).enqueued == 1
    [(fresh, fresh_spec)] = studies.pop_batch(other_worker, specs, 1)
    assert fresh_spec.key == stalled_spec.key
    assert studies.finish_batch(other_worker, [(fresh, "complete", 0.9, {"epochs": []})]) == [True]
    # The stalled worker comes back with its result: refused, dropped, nothing written.
    late = [(stalled, "complete", 0.5, {"epochs": ["late"]})]
    assert studies.finish_batch(stalled_worker, late) == [False]
    by_id = {private.trial_id(t): t for t in load(url, spec.name).get_trials(deepcopy=False)}
    assert by_id[stalled].state.name == "FAIL"
    assert by_id[stalled].user_attrs["status"] == "interrupted"
    assert "epochs" not in by_id[stalled].user_attrs
    assert by_id[fresh].value == 0.9
    # A second trial of a completed grid point (enqueued behind optsweep's back) is not told
    # COMPLETE: finish_batch checks before writing.
    other_worker.enqueue_trial(
        studies.grid_params(fresh_spec),
        user_attrs={"key": fresh_spec.key, "batch_key": studies.batch_key(fresh_spec)},
    )
    [(twin, _)] = studies.pop_batch(other_worker, specs, 2)
    assert studies.finish_batch(other_worker, [(twin, "complete", 0.7, {})]) == [False]
    by_id = {private.trial_id(t): t for t in load(url, spec.name).get_trials(deepcopy=False)}
    assert studies.status_of(by_id[twin]) == "duplicate"
    complete = [t for t in load(url, spec.name).get_trials() if t.state.name == "COMPLETE"]
    assert [t.user_attrs["key"] for t in complete] == [fresh_spec.key]


def test_last_stale_trial_is_reaped_though_no_new_trial_starts(
    postgres,  # noqa: F811
    tiny_sweep,
    tmp_path,
):
    spec = load_sweep(
        tiny_sweep("  - name: sgd\n    grid: {learning_rate: [0.1, 0.2]}\n", train=128, epochs=1)
    )
    url = postgres.database()
    dead = studies.open_study(spec.name, url, LIVENESS)
    studies.sync_grid(dead, expand(spec))
    assert len(studies.pop_batch(dead, {t.key: t for t in expand(spec)}, 1)) == 1  # then dies
    started = time.monotonic()
    result = run_sweep(spec, QuietProgress(), out=tmp_path / "out", storage=url, liveness=LIVENESS)
    assert result.trained == 2  # the waiting one at once, the dead worker's after reaping it
    assert time.monotonic() - started >= GRACE
    statuses = sorted(studies.status_of(t) for t in load(url, spec.name).get_trials())
    assert statuses == ["complete", "complete", "interrupted"]
    assert [r.status for r in result.records] == ["complete", "complete"]


def test_workers_killed_at_random_and_restarted_train_each_point_once(fleet):
    result, kills = kill_and_restart(fleet, kills=6, seed=6)
    assert kills >= 4, "the sweep ended before the workers could be killed"
    assert_exactly_once(result)
    assert result.diverged == 2  # lr=1e10, once per seed: recorded, not retried
    assert result.interrupted >= 1  # some kills did land mid-batch


def test_killing_every_worker_then_resuming_keeps_earlier_results(fleet, tmp_path):
    for _ in range(3):
        fleet.start()
    assert wait_for(lambda: finals(fleet.url, fleet.name) >= 12, timeout=150)
    for proc in fleet.procs:
        fleet.kill(proc)
    before = completed(fleet.url, fleet.name)
    assert before
    # Resume from the coordinating command: `run --storage` with 2 local worker processes.
    out = tmp_path / "results"
    liveness = ["--heartbeat", str(HEARTBEAT), "--grace", str(GRACE)]
    run = ["run", str(fleet.config), "--storage", fleet.url, "--workers", "2", "--quiet"]
    resume = subprocess.run(
        fleet.command(*run, *liveness, "--out", str(out)),
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert resume.returncode == 0, resume.stderr
    after = completed(fleet.url, fleet.name)
    assert {n: after[n] for n in before} == before  # earlier results unchanged
    assert_exactly_once(tally(fleet.url, fleet.name, fleet.keys))
    assert (out / "trials.csv").read_text().count("\n") == 49


def test_database_restart_mid_sweep_loses_and_duplicates_nothing(fleet, postgres):  # noqa: F811
    for _ in range(3):
        fleet.start()
    assert wait_for(lambda: finals(fleet.url, fleet.name) >= 8, timeout=150)
    before = completed(fleet.url, fleet.name)
    postgres.stop("fast")  # every connection is cut; workers get OperationalError
    time.sleep(3.0)  # down for as long as the grace period
    postgres.start()
    assert fleet.wait(timeout=180) == [0, 0, 0]
    assert "storage unreachable" in fleet.stderr()  # they did meet the outage, and retried
    after = completed(fleet.url, fleet.name)
    assert {n: after[n] for n in before} == before
    assert_exactly_once(tally(fleet.url, fleet.name, fleet.keys))


def test_worker_refuses_a_study_it_cannot_find_or_read(postgres, write_yaml):  # noqa: F811
    from typer.testing import CliRunner

    from optsweep.cli import app

    url = postgres.database()
    config = write_yaml(KILLS_SWEEP.format(name="kills", train=256))
    cli = CliRunner()
    assert cli.invoke(app, ["init", str(config), "--storage", url]).exit_code == 0
    studies.open_study("plain", url)  # an Optuna study that optsweep did not create
    cases = {
        ("--study", "nope"): f"error: {url}: no study 'nope'; choose one with --study "
        "(studies there: kills, plain)",
        (): f"error: {url}: several studies; choose one with --study (studies there: kills, plain)",
        ("--study", "plain"): "error: study 'plain' holds no optsweep config; create it with "
        "optsweep init CONFIG --storage URL",
    }
    for args, expected in cases.items():
        result = cli.invoke(app, ["worker", "--storage", url, *args])
        assert result.exit_code == 2, result.output
        assert result.stderr.strip().splitlines() == [expected]
