"""SIGTERM (batch schedulers, Kubernetes, `kill`) stops a run or a search as Ctrl-C does:
exit 130, its trials handed back as interrupted, none left RUNNING; the same command resumes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from optsweep import study as studies

SLOW = """\
name: term
dataset: mnist-mini
subset: {{train: 1024, test: 128}}
model: {{name: mlp, hidden: [256]}}
train: {{epochs: 20, batch_size: 16, seeds: [0], trials_per_batch: 2, device: cpu}}
search: {{trials: 4, batch: 2, sampler: random, pruner: none}}
optimizers:
  - name: sgd
    grid: {{learning_rate: [0.1, 0.05, 0.02, 0.01]}}
"""


def running(folder: Path, name: str) -> int:
    """RUNNING trials of the study, read without writing: optuna.load_study would create
    Optuna's tables while the run creates them too (a race its storage reports)."""
    path = folder / "study.db"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            (count,) = db.execute(
                "SELECT count(*) FROM trials JOIN studies USING (study_id)"
                " WHERE studies.study_name = ? AND trials.state = 'RUNNING'",
                (name,),
            ).fetchone()
        return count
    except sqlite3.Error:  # not created yet, or being written
        return 0


@pytest.mark.parametrize(
    ("command", "name", "folder"),
    [(["run"], "term", "run"), (["search"], "term-search", "search")],
    ids=["run", "search"],
)
def test_sigterm_hands_back_the_trials_and_the_same_command_resumes(
    write_yaml, tmp_path, command, name, folder
):
    config = write_yaml(SLOW.format())
    out = tmp_path / folder
    line = [sys.executable, "-m", "optsweep", *command, str(config), "--out", str(out), "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(line, env=env, stderr=subprocess.PIPE, text=True)
    url = studies.sqlite_url(out)
    deadline = time.monotonic() + 120
    while not running(out, name) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted:" in stderr and "Traceback" not in stderr
    trials = optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)
    statuses = [studies.status_of(t) for t in trials]
    assert "running" not in statuses and "interrupted" in statuses
    again = subprocess.run(line, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    finished = optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)
    done = [t for t in finished if studies.status_of(t) == "complete"]
    assert len(done) == 4


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_sigterm_swallowed_on_its_way_is_raised_again(monkeypatch):
    """Python ignores an exception raised in a garbage collector's callback (the SIGTERM test
    once lost its stop that way); the recorded request raises at the next check."""
    import gc
    import weakref

    from optsweep import interrupts

    monkeypatch.setattr(interrupts, "_requested", False)
    interrupts.check()  # nothing requested: nothing raised

    class Held:
        pass

    held = Held()
    weakref.finalize(held, interrupts._interrupt, signal.SIGTERM, None)
    del held
    gc.collect()  # the finaliser raised KeyboardInterrupt; Python printed and dropped it
    with pytest.raises(KeyboardInterrupt):
        interrupts.check()


@pytest.mark.parametrize(
    ("raised", "requested", "printed"),
    [
        (KeyboardInterrupt, True, False),  # a stop swallowed in a finaliser: raised again later
        (KeyboardInterrupt, False, True),  # not one of ours
        (ValueError, True, True),
    ],
    ids=["recorded stop", "unrecorded interrupt", "another error"],
)
def test_python_reports_every_exception_it_swallows_but_a_recorded_stop(
    monkeypatch, capsys, raised, requested, printed
):
    import gc

    from optsweep import interrupts

    monkeypatch.setattr(interrupts, "_requested", requested)
    monkeypatch.setattr(sys, "unraisablehook", interrupts._unraisable)

    class Finalised:
        def __del__(self):
            raise raised("in a finaliser")

    Finalised()
    gc.collect()
    said = capsys.readouterr().err
    assert ("Traceback" in said and "in a finaliser" in said) is printed, said


def test_a_stop_in_a_held_block_is_raised_when_it_ends(monkeypatch):
    from optsweep import interrupts

    monkeypatch.setattr(interrupts, "_requested", False)
    done = []
    with pytest.raises(KeyboardInterrupt), interrupts.held():
        interrupts._interrupt(signal.SIGTERM, None)  # deferred, not raised here
        done.append("the block ran to its end")
    assert done == ["the block ran to its end"]
