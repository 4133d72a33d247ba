"""Longer fault runs (`make soak`; deselected from `make test`): many kills, stalls, restarts.

Each ends with the same check as test_postgres: one final trial per grid point, none left
running, none outside the grid, earlier results unchanged.
"""

from __future__ import annotations

import signal
import time

import pytest
from _postgres import postgres, wait_for  # noqa: F401  (the session fixture)
from _workers import (
    GRACE,
    KILLS_SWEEP,
    Fleet,
    assert_exactly_once,
    completed,
    finals,
    kill_and_restart,
    load,
    running_owners,
    tally,
)

pytestmark = pytest.mark.soak


@pytest.fixture
def make_fleet(postgres, write_yaml, tmp_path):  # noqa: F811
    fleets: list[Fleet] = []

    # 2,048 images: with a batch's study writes one transaction, 1,024 let a sweep end after
    # six of the sixteen kills (seed 1)
    def make(name: str, train: int = 2048) -> Fleet:
        import subprocess

        config = write_yaml(KILLS_SWEEP.format(name=name, train=train), name=f"{name}.yaml")
        logs = tmp_path / name
        logs.mkdir()
        fleet = Fleet(postgres.database(), config, name, logs)
        init = fleet.command("init", str(config), "--storage", fleet.url)
        subprocess.run(init, check=True, capture_output=True)
        fleets.append(fleet)
        return fleet

    yield make
    for fleet in fleets:
        fleet.close()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_many_kills(make_fleet, seed):
    result, kills = kill_and_restart(make_fleet(f"soak{seed}"), kills=16, seed=seed)
    assert kills >= 8
    assert_exactly_once(result)


def test_stalled_workers_come_back_and_their_results_are_dropped(make_fleet):
    fleet = make_fleet("stall")
    for _ in range(3):
        fleet.start()
    study = load(fleet.url, fleet.name)
    stalls = 0
    while stalls < 2 and finals(fleet.url, fleet.name) < 40:
        owners = wait_for(lambda: running_owners(study, fleet), timeout=30, interval=0.05)
        if not owners:
            break
        owners[0].send_signal(signal.SIGSTOP)  # stalled: no heartbeat, no progress
        time.sleep(GRACE + 3)  # others reap its trials and retrain them
        owners[0].send_signal(signal.SIGCONT)  # it comes back with results nobody wants
        stalls += 1
    assert fleet.wait(timeout=240) == [0] * fleet.started
    result = tally(fleet.url, fleet.name, fleet.keys)
    assert_exactly_once(result)
    assert stalls >= 1
    assert fleet.stderr().count("result dropped") >= 1
    print(f"\n{stalls} stalls, {fleet.stderr().count('result dropped')} dropped; {result}")


def test_database_restarts_and_kills_together(make_fleet, postgres):  # noqa: F811
    fleet = make_fleet("restarts")
    for _ in range(3):
        fleet.start()
    for round_ in range(3):
        if not wait_for(lambda n=round_: finals(fleet.url, fleet.name) >= 8 * (n + 1), 120):
            break
        before = completed(fleet.url, fleet.name)
        fleet.kill(fleet.live()[0])
        postgres.stop("immediate" if round_ % 2 else "fast")
        time.sleep(1.0 + round_)
        postgres.start()
        fleet.start()
        after = completed(fleet.url, fleet.name)
        assert {n: after[n] for n in before} == before
    fleet.wait(timeout=300)
    assert_exactly_once(tally(fleet.url, fleet.name, fleet.keys))
