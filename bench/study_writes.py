"""The study's writes for a grid: optsweep's batched transactions against Optuna's own calls.

For every grid point of a sweep file (default ``configs/adam.yaml``, 160 points), both ways
do what a run does to its SQLite study, one batch of ``--batch`` trials at a time: enqueue
every point, claim a batch (WAITING → RUNNING with its worker and parameters), report one
epoch, and store each trial's outcome with its curves (1,000 logged losses). optsweep's way is
`optsweep.study` (``sync_grid``, ``pop_batch``, ``report_epochs``, ``finish_batch``: one
transaction per batch); Optuna's is its public API, one call and commit per write
(``enqueue_trial``, ``ask``, ``set_trial_param``, ``set_trial_user_attr``, ``report``,
``tell``), which writes the same trials (``tests/test_optuna_private.py``). Both run in
turn, ``--repeats`` times, in fresh folders; the best time of each counts.

    python bench/study_writes.py                 # make bench
    python bench/study_writes.py --quick         # a smoke run: 8 points
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import optuna

from optsweep import optuna_private as private
from optsweep import study as studies
from optsweep.config import TrialSpec, expand, identity, load_sweep

optuna.logging.set_verbosity(optuna.logging.WARNING)


def outcome(trial: TrialSpec) -> dict:
    """What a finished trial stores: its identity and curves, as the runner writes them."""
    return {
        **identity(trial),
        "epochs": [{"epoch": 1, "train_loss": 0.3, "test_loss": 0.25, "test_accuracy": 0.9}],
        "steps": list(range(1, 1001)),
        "step_losses": [0.5] * 1000,
        "seconds": 1.0,
        "stopped_step": None,
        "trials_in_batch": 32,
    }


def batched(folder: Path, trials: Sequence[TrialSpec], batch: int) -> None:
    """optsweep's writes: each batch in one transaction."""
    study = studies.open_study("grid", studies.sqlite_url(folder))
    studies.sync_grid(study, trials)
    specs = {t.key: t for t in trials}
    while claimed := studies.pop_batch(study, specs, batch):
        studies.report_epochs(study, {i: 0.9 for i, _ in claimed}, 1)
        studies.finish_batch(study, [(i, "complete", 0.9, outcome(t)) for i, t in claimed])


def one_call_each(folder: Path, trials: Sequence[TrialSpec], batch: int) -> None:
    """Optuna's public calls: one transaction per write."""
    study = optuna.create_study(study_name="grid", storage=studies.sqlite_url(folder))
    ordered = sorted(trials, key=studies.batch_key)
    for trial in ordered:
        study.enqueue_trial(
            studies.grid_params(trial),
            user_attrs={
                "key": trial.key,
                "batch_key": studies.batch_key(trial),
                "seed": trial.seed,
            },
        )
    storage = private.storage(study)
    for start in range(0, len(ordered), batch):
        asked = [(study.ask(), t) for t in ordered[start : start + batch]]
        for trial, spec in asked:
            trial_id = private.trial_id(trial)
            storage.set_trial_user_attr(trial_id, "worker", studies.worker_id())
            for name, internal, distribution in studies._params(spec):
                storage.set_trial_param(trial_id, name, internal, distribution)
        for trial, _ in asked:
            trial.report(0.9, step=1)
        for trial, spec in asked:
            for name, value in {**outcome(spec), "status": "complete"}.items():
                storage.set_trial_user_attr(private.trial_id(trial), name, value)
            study.tell(trial, 0.9)


def best_seconds(
    write: Callable[[Path, Sequence[TrialSpec], int], None], *args: object, repeats: int
) -> float:
    best = float("inf")
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            write(Path(folder), *args)
            best = min(best, time.perf_counter() - start)
    return best


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", type=Path, default=Path("configs/adam.yaml"))
    parser.add_argument("--batch", type=int, default=32, help="trials claimed at once (K)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="the first 8 points, once")
    args = parser.parse_args(argv)
    trials = expand(load_sweep(args.sweep))
    if args.quick:
        trials, args.repeats = trials[:8], 1
    seconds = {
        "optsweep": best_seconds(batched, trials, args.batch, repeats=args.repeats),
        "optuna": best_seconds(one_call_each, trials, args.batch, repeats=args.repeats),
    }
    print(
        f"{len(trials)} grid points of {args.sweep}, batches of {args.batch}, SQLite, best of "
        f"{args.repeats}: enqueue, claim, report one epoch, finish"
    )
    print(f"| Optuna's public calls, one transaction a write | {seconds['optuna']:.2f} s |")
    print(
        f"| optsweep, one transaction a batch | {seconds['optsweep']:.2f} s "
        f"({seconds['optuna'] / seconds['optsweep']:.1f}x faster) |"
    )
    return seconds


if __name__ == "__main__":
    main()
