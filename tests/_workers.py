"""Worker processes against a PostgreSQL study, and the checks every fault test ends with."""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from _postgres import wait_for
from optuna.trial import TrialState

from optsweep import study as studies
from optsweep.config import expand, load_sweep

# 48 grid points (24 per seed), one of which diverges per seed; on 1,024 images a batch of 4
# trains in about a quarter of a second (measured, one thread), so kills land before, during
# and after training. (A 32-wide MLP trained in 15 ms: once the study's writes got faster,
# the sweep could end before the kills.)
KILLS_SWEEP = """\
name: {name}
dataset: mnist-mini
subset: {{train: {train}, test: 128}}
model: {{name: mlp, hidden: [512, 512]}}
train: {{epochs: 1, batch_size: 64, seeds: [0, 1], log_every: 4, trials_per_batch: 4, device: cpu}}
optimizers:
  - name: sgd
    grid:
      learning_rate: [0.3, 0.1, 0.03, 0.01, 0.003, 0.001, 1.0e+10, 0.0003, 0.0001, 0.2, 0.05,
                      0.02]
  - name: adam
    grid:
      learning_rate: [0.03, 0.01, 0.003, 0.001, 0.0003, 0.0001, 0.02, 0.005, 0.002, 0.0005,
                      0.0002, 0.00005]
"""

HEARTBEAT, GRACE = 1, 3


@dataclass
class Fleet:
    """Worker processes of one sweep; their stdout/stderr go to files under ``logs``."""

    url: str
    config: Path
    name: str
    logs: Path
    procs: list[subprocess.Popen] = field(default_factory=list)
    started: int = 0
    killed: int = 0

    @property
    def keys(self) -> set[str]:
        return {t.key for t in expand(load_sweep(self.config))}

    def command(self, *extra: str) -> list[str]:
        return [sys.executable, "-m", "optsweep", *extra]

    def start(self) -> subprocess.Popen:
        """One more `optsweep worker`."""
        self.started += 1
        name = self.logs / f"worker{self.started}"
        proc = subprocess.Popen(
            self.command(
                "worker",
                "--storage",
                self.url,
                "--study",
                self.name,
                "--heartbeat",
                str(HEARTBEAT),
                "--grace",
                str(GRACE),
                "--quiet",
            ),
            stdout=name.with_suffix(".out").open("w"),
            stderr=name.with_suffix(".err").open("w"),
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen, sig: int = signal.SIGKILL) -> bool:
        """SIGKILL a worker (True when it was still running)."""
        if proc.poll() is not None:
            return False
        proc.send_signal(sig)
        proc.wait()
        self.killed += 1
        return True

    def live(self) -> list[subprocess.Popen]:
        return [p for p in self.procs if p.poll() is None]

    def wait(self, timeout: float) -> list[int]:
        """Wait for every worker to end; their exit codes (killed ones excluded)."""
        codes = []
        for proc in self.procs:
            code = proc.wait(timeout=timeout)
            if code != -signal.SIGKILL:
                codes.append(code)
        return codes

    def stderr(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.logs.glob("worker*.err")))

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def load(url: str, name: str) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=studies.storage_url(url))


def finals(url: str, name: str) -> int:
    """How many grid points are done (complete or diverged) so far."""
    return len(studies.done_keys(load(url, name)))


@dataclass(frozen=True)
class Tally:
    """What the study holds at the end of a fault test."""

    trials: int
    complete: int
    diverged: int
    interrupted: int
    duplicates: int  # grid points with more than one final (complete/diverged) trial
    lost: int  # grid points without a final trial
    left: int  # trials still WAITING or RUNNING
    outside: int  # trials whose key is not a grid point


def tally(url: str, name: str, keys: set[str]) -> Tally:
    trials = load(url, name).get_trials(deepcopy=False)
    status = collections.Counter(studies.status_of(t) for t in trials)
    final = collections.Counter(
        t.user_attrs.get("key") for t in trials if studies.status_of(t) in studies.FINAL_STATUSES
    )
    return Tally(
        trials=len(trials),
        complete=status["complete"],
        diverged=status["diverged"],
        interrupted=status["interrupted"],
        duplicates=sum(1 for n in final.values() if n > 1),
        lost=sum(1 for k in keys if final[k] == 0),
        left=status["waiting"] + status["running"],
        outside=sum(1 for t in trials if t.user_attrs.get("key") not in keys),
    )


def assert_exactly_once(result: Tally, points: int = 48) -> None:
    """One final trial per grid point, none left running or waiting, none outside the grid."""
    assert (result.duplicates, result.lost, result.left, result.outside) == (0, 0, 0, 0), result
    assert result.complete + result.diverged == points, result


def completed(url: str, name: str) -> dict[int, tuple[float, list]]:
    """Trial number → (value, epochs) of every COMPLETE trial."""
    return {
        t.number: (t.value, t.user_attrs["epochs"])
        for t in load(url, name).get_trials(deepcopy=False)
        if t.state == optuna.trial.TrialState.COMPLETE
    }


def kill_and_restart(fleet: Fleet, *, kills: int, seed: int) -> tuple[Tally, int]:
    """3 workers; SIGKILL one ``kills`` times and start another; let them finish.

    Every other kill waits until a worker holds RUNNING trials and kills that one a random
    0-0.3 s later (mid-batch); the others come at a random moment (start-up, claiming,
    telling, idling).
    """
    rng = random.Random(seed)
    for _ in range(3):
        fleet.start()
    study = load(fleet.url, fleet.name)
    done = 0
    deadline = time.monotonic() + 150
    while done < kills and time.monotonic() < deadline:
        if len(studies.done_keys(study)) >= len(fleet.keys):
            break
        if done % 2 == 0:
            owners = wait_for(lambda: running_owners(study, fleet), timeout=30, interval=0.05)
            if not owners:
                continue
            time.sleep(rng.uniform(0.0, 0.3))
            victim = rng.choice(owners)
        else:
            time.sleep(rng.uniform(0.2, 2.0))
            victim = rng.choice(fleet.live())
        done += fleet.kill(victim)
        fleet.start()
    assert fleet.wait(timeout=180) == [0] * (fleet.started - done)
    result = tally(fleet.url, fleet.name, fleet.keys)
    dropped = fleet.stderr().count("result dropped")
    print(f"\n{done} SIGKILLs, {fleet.started} workers, {dropped} results dropped; {result}")
    return result, done


def running_owners(study, fleet: Fleet) -> list[subprocess.Popen]:
    """Live workers that hold a RUNNING trial now."""
    pids = {
        t.user_attrs.get("worker", ":").rsplit(":", 1)[1]
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    }
    return [p for p in fleet.live() if str(p.pid) in pids]
