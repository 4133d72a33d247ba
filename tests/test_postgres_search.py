"""Many search workers on one PostgreSQL study: one budget, kills, stalls, joins, restarts.

Every test ends with the same check (`assert_search_budget`): exactly the budget of trials
with an outcome, none left RUNNING or WAITING, no configuration trained twice (a repeated
suggestion copies the first result and points at it), every copy pointing at a trial with
the same configuration and outcome.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from _postgres import postgres, wait_for  # noqa: F401  (the session fixture)
from _workers import GRACE, HEARTBEAT, Fleet, load, running_owners

from optsweep import optuna_private as private
from optsweep import study as studies
from optsweep.search import COUNTED

# A mixed space: a list (sgd, one rate diverges) that the sampler repeats, and a range; two
# seeds, so each configuration trains as two batches. A batch of 4 trains for ~0.4 s in one
# thread (2 epochs), so kills land before, during and after training.
SEARCH_SWEEP = """\
name: {name}
dataset: mnist-mini
subset: {{train: {train}, test: 128}}
model: {{name: mlp, hidden: [512, 512]}}
train: {{epochs: 2, batch_size: 64, seeds: [0, 1], log_every: 4, device: cpu}}
search: {{trials: {trials}, batch: 4, sampler: {sampler}, pruner: median, seed: 5}}
optimizers:
  - name: sgd
    grid: {{learning_rate: [0.3, 0.1, 0.03, 0.01, 1.0e+10]}}
  - name: adam
    grid: {{learning_rate: {{low: 1.0e-4, high: 3.0e-2, log: true}}}}
"""
BUDGET = 24


@dataclass
class SearchFleet(Fleet):
    """`optsweep search` processes (or `optsweep worker`s joining) on one study."""

    out: Path | None = None
    trials: int = BUDGET

    def liveness(self) -> list[str]:
        return ["--heartbeat", str(HEARTBEAT), "--grace", str(GRACE), "--quiet"]

    def start(self, *, join: bool = False, workers: int = 1) -> subprocess.Popen:
        self.started += 1
        log = self.logs / f"worker{self.started}"
        if join:
            args = ["worker", "--storage", self.url, "--study", self.name]
        else:
            args = ["search", str(self.config), "--storage", self.url, "--out", str(self.out)]
            args += ["--trials", str(self.trials), "--workers", str(workers)]
        proc = subprocess.Popen(
            self.command(*args, *self.liveness()),
            stdout=log.with_suffix(".out").open("w"),
            stderr=log.with_suffix(".err").open("w"),
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        self.procs.append(proc)
        return proc


def kill_searches(fleet: SearchFleet, *, kills: int, seed: int) -> int:
    """3 searches; SIGKILL one that holds RUNNING trials ``kills`` times (a random 0-0.3 s
    later), restarting the same command each time; let them finish. How many kills landed."""
    rng = random.Random(seed)
    for _ in range(3):
        fleet.start()
    study = study_when_created(fleet)
    done = 0
    while done < kills:
        owners = wait_for(lambda: running_owners(study, fleet), timeout=60, interval=0.05)
        if not owners:
            break  # the search ended first
        time.sleep(rng.uniform(0.0, 0.3))
        done += fleet.kill(rng.choice(owners))
        fleet.start()
    assert fleet.wait(timeout=300) == [0] * (fleet.started - done), fleet.stderr()
    return done


@pytest.fixture
def search_fleet(postgres, write_yaml, tmp_path):  # noqa: F811
    fleets: list[SearchFleet] = []

    def make(
        name: str = "hunt", sampler: str = "tpe", trials: int = BUDGET, train: int = 512
    ) -> SearchFleet:
        text = SEARCH_SWEEP.format(name=name, trials=trials, sampler=sampler, train=train)
        config = write_yaml(text, name=f"{name}.yaml")
        logs = tmp_path / f"{name}-logs"
        logs.mkdir()
        fleet = SearchFleet(postgres.database(), config, f"{name}-search", logs, trials=trials)
        fleet.out = tmp_path / f"{name}-results"
        fleets.append(fleet)
        return fleet

    yield make
    for fleet in fleets:
        fleet.close()


@dataclass(frozen=True)
class SearchTally:
    outcomes: int  # trials that count toward the budget
    statuses: dict[str, int]
    copies: int  # repeated suggestions told the earlier result
    trained_twice: int  # configurations with two trained (not copied) results
    bad_copies: int  # copies whose source has another configuration or outcome
    left: int  # RUNNING or WAITING trials


def search_tally(url: str, name: str) -> SearchTally:
    trials = {t.number: t for t in load(url, name).get_trials(deepcopy=False)}
    status = collections.Counter(studies.status_of(t) for t in trials.values())
    counted = [t for t in trials.values() if studies.status_of(t) in COUNTED]
    copies = [t for t in counted if t.user_attrs.get("duplicate_of") is not None]
    trained = collections.Counter(
        t.user_attrs["key"]
        for t in counted
        if t.user_attrs.get("duplicate_of") is None and studies.status_of(t) != "invalid"
    )
    bad = 0
    for copy in copies:
        source = trials[copy.user_attrs["duplicate_of"]]
        same = source.user_attrs["key"] == copy.user_attrs["key"]
        if not same or studies.status_of(source) != studies.status_of(copy):
            bad += 1
    return SearchTally(
        outcomes=len(counted),
        statuses=dict(status),
        copies=len(copies),
        trained_twice=sum(1 for n in trained.values() if n > 1),
        bad_copies=bad,
        left=status["running"] + status["waiting"],
    )


def study_when_created(fleet: SearchFleet) -> optuna.Study:
    """The fleet's study, once its first process has created it."""
    url = studies.storage_url(fleet.url)
    assert wait_for(lambda: fleet.name in optuna.get_all_study_names(url), timeout=60)
    return load(fleet.url, fleet.name)


def assert_search_budget(fleet: SearchFleet) -> SearchTally:
    """The budget exactly, nothing left or trained twice; `optsweep report` reads it all."""
    budget = fleet.trials
    result = search_tally(fleet.url, fleet.name)
    assert (result.outcomes, result.left, result.trained_twice, result.bad_copies) == (
        budget,
        0,
        0,
        0,
    ), result
    study = optuna.load_study(study_name=fleet.name, storage=studies.storage_url(fleet.url))
    assert study.user_attrs["budget"] == budget
    report = subprocess.run(
        fleet.command("report", str(fleet.out), "--storage", fleet.url, "--study", fleet.name),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0, report.stderr
    rows = (fleet.out / "trials.csv").read_text().splitlines()[1:]
    counted = [t for t in study.get_trials() if studies.status_of(t) in COUNTED]
    assert len(rows) == sum(len(t.user_attrs.get("runs") or [None]) for t in counted)
    assert (fleet.out / "report.html").read_text().rstrip().endswith("</html>")
    return result


def test_three_searches_one_killed_twice_end_with_exactly_the_budget(search_fleet):
    fleet = search_fleet()
    started = time.monotonic()
    kills = kill_searches(fleet, kills=2, seed=11)
    assert kills == 2, "the search ended before the kills"
    result = assert_search_budget(fleet)
    assert result.statuses.get("interrupted", 0) >= 1  # the kills landed on live trials
    print(
        f"\n{kills} SIGKILLs, {fleet.started} processes, {time.monotonic() - started:.1f} s; "
        f"{result}"
    )


@pytest.mark.soak  # `make soak`: keeps `make test` under 10 minutes on 2 cores
def test_workers_option_and_a_joining_worker_share_the_budget(search_fleet):
    # 4x the images: the search outlasts the helpers' start (importing torch, ~5 s here)
    fleet = search_fleet("joined", sampler="random", trials=16, train=2048)
    fleet.start(workers=3)
    study_when_created(fleet)
    fleet.start(join=True)  # `optsweep worker` reads the config and budget from the study
    assert fleet.wait(timeout=300) == [0, 0], fleet.stderr()
    result = assert_search_budget(fleet)
    workers = {t.user_attrs.get("worker") for t in load(fleet.url, fleet.name).get_trials()}
    assert len(workers - {None}) >= 2  # the joining worker or a local helper took part
    assert load(fleet.url, fleet.name).user_attrs["workers_joined"] == 4
    print(f"\n--workers 3 + 1 joining: {len(workers - {None})} workers asked trials; {result}")


@pytest.mark.soak  # `make soak`: keeps `make test` under 10 minutes on 2 cores
def test_sigterm_hands_back_only_its_own_trials(search_fleet):
    fleet = search_fleet("term", trials=12)
    for _ in range(2):
        fleet.start()
    study = study_when_created(fleet)
    victim = wait_for(lambda: running_owners(study, fleet), timeout=60, interval=0.05)[0]
    victim.send_signal(signal.SIGTERM)  # what batch schedulers send before SIGKILL
    assert victim.wait(timeout=60) == 130
    trials = load(fleet.url, fleet.name).get_trials(deepcopy=False)
    mine = [t for t in trials if t.user_attrs.get("worker", "").endswith(f":{victim.pid}")]
    assert mine and all(t.state.name != "RUNNING" for t in mine)
    interrupted = [t for t in trials if studies.status_of(t) == "interrupted"]
    assert interrupted and all(t in mine for t in interrupted)  # the other's trials live on
    [other] = [p for p in fleet.procs if p is not victim]
    assert other.wait(timeout=300) == 0
    assert_search_budget(fleet)


def test_new_is_refused_while_another_worker_is_live(postgres, write_yaml, tmp_path):  # noqa: F811
    from optsweep.config import load_sweep
    from optsweep.search import SearchError, build_space, open_search_study

    url = postgres.database()
    spec = load_sweep(
        write_yaml(SEARCH_SWEEP.format(name="renew", trials=4, sampler="tpe", train=512)),
        search=True,
    )
    space = build_space(spec)
    study = open_search_study(spec, space, url)
    # Another worker between two batches: seen a moment ago, no RUNNING trial.
    row = {"study_id": study._study_id, "worker": "elsewhere:1", "seen": sqlalchemy.func.now()}
    with private.backend(study).engine.begin() as connection:
        studies._WORKERS.create(connection, checkfirst=True)
        connection.execute(studies._WORKERS.insert().values(row))
    with pytest.raises(SearchError, match=r"--new would delete study renew-search under 1 live"):
        open_search_study(spec, space, url, new=True)
    studies.mark_alive(study)  # this process itself does not count
    with private.backend(study).engine.begin() as connection:
        connection.execute(studies._WORKERS.delete().where(studies._WORKERS.c.worker != "x"))
    studies.mark_alive(study)
    fresh = open_search_study(spec, space, url, new=True)
    assert fresh._study_id != study._study_id and fresh.user_attrs["budget"] == 4


# ── longer fault runs: `make soak` ──


@pytest.mark.soak
@pytest.mark.parametrize("seed", [1, 2])
def test_many_kills(search_fleet, seed):
    fleet = search_fleet(f"kills{seed}")
    kills = kill_searches(fleet, kills=6, seed=seed)
    assert kills >= 3
    print(f"\n{kills} SIGKILLs, {fleet.started} processes; {assert_search_budget(fleet)}")


@pytest.mark.soak
def test_stalled_search_comes_back_and_its_results_are_dropped(search_fleet):
    fleet = search_fleet("stall")
    for _ in range(3):
        fleet.start()
    study = study_when_created(fleet)
    stalls = 0
    while stalls < 2:
        owners = wait_for(lambda: running_owners(study, fleet), timeout=60, interval=0.05)
        if not owners:
            break
        owners[0].send_signal(signal.SIGSTOP)  # stalled: no heartbeat, no progress
        time.sleep(3 * GRACE)  # the others reap its trials (a stale trial waits 2x grace)
        owners[0].send_signal(signal.SIGCONT)  # it comes back with results nobody wants
        stalls += 1
    assert fleet.wait(timeout=300) == [0] * fleet.started, fleet.stderr()
    result = assert_search_budget(fleet)
    assert stalls >= 1 and result.statuses.get("interrupted", 0) >= 1
    print(f"\n{stalls} stalls, {fleet.stderr().count('result dropped')} dropped; {result}")


@pytest.mark.soak
def test_database_restart_mid_search(search_fleet, postgres):  # noqa: F811
    fleet = search_fleet("restart")
    for _ in range(3):
        fleet.start()
    study = study_when_created(fleet)
    assert wait_for(lambda: running_owners(study, fleet), timeout=60, interval=0.05)
    time.sleep(1.0)
    postgres.stop("fast")  # every connection is cut
    time.sleep(GRACE)
    postgres.start()
    assert fleet.wait(timeout=300) == [0, 0, 0], fleet.stderr()
    assert "storage unreachable" in fleet.stderr()  # they met the outage and retried
    print(f"\ndatabase restarted once; {assert_search_budget(fleet)}")
