"""The Optuna study behind every sweep: enqueue grid points once, pop them in batches, record.

A sweep is an Optuna study (SQLite file ``results/<name>/study.db`` by default). Each grid
point is enqueued as a WAITING trial carrying its grid key; workers pop WAITING trials that
share a batch key (the structural part of a trial: optimizer, semantics, flags, seed,
schedule) so that they can be trained together. Popping uses the storage's conditional
WAITING → RUNNING transition, the same primitive ``Study.ask`` uses, so it is as atomic as the
storage makes it (atomic on PostgreSQL; not across processes on SQLite).

Trial outcomes (user attribute ``status``):
- ``complete``: Optuna COMPLETE, value = final test accuracy.
- ``diverged``: Optuna FAIL; the loss turned non-finite. A result, never retried, never "best".
- ``failed`` / ``interrupted``: Optuna FAIL; retried by the next run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, Trial, TrialState

from optsweep.config import SweepSpec, TrialSpec
from optsweep.optim.registry import OPTIMIZERS, SEMANTICS

# Statuses after which a grid point is done and never trained again.
FINAL_STATUSES = ("complete", "diverged")


def sqlite_url(results_dir: Path) -> str:
    """The default storage: ``results/<name>/study.db``."""
    return f"sqlite:///{(results_dir / 'study.db').resolve()}"


def open_study(name: str, storage: str) -> optuna.Study:
    """Create or load the study ``name`` (maximising final test accuracy)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=name, storage=storage, direction="maximize", load_if_exists=True
    )


def batch_key(trial: TrialSpec) -> str:
    """What trials must share to be trained together in one batched update.

    Continuous hyperparameters (learning rate, betas, epsilon…) may differ; everything that
    changes the computation (flags, integer knobs, the presence of an optional knob, the
    schedule, the seed) may not.
    """
    info = OPTIMIZERS[trial.optimizer]
    structural = {
        name: value
        for name, value in sorted(trial.hyperparameters.items())
        if info.params[name].structural or value is None
    }
    return json.dumps(
        {
            "optimizer": trial.optimizer,
            "semantics": trial.semantics,
            "structural": structural,
            "schedule": repr(trial.schedule),
            "seed": trial.seed,
        },
        sort_keys=True,
        default=str,
    )


@dataclass(frozen=True)
class SyncReport:
    """What `sync_grid` found and did."""

    total: int
    done: int
    enqueued: int
    requeued: int


def _status(trial: FrozenTrial) -> str:
    if trial.state == TrialState.COMPLETE:
        return "complete"
    if trial.state == TrialState.WAITING:
        return "waiting"
    if trial.state == TrialState.RUNNING:
        return "running"
    return str(trial.user_attrs.get("status", "failed"))


def sync_grid(study: optuna.Study, trials: Sequence[TrialSpec]) -> SyncReport:
    """Enqueue every grid point that is neither done nor waiting; fail stale RUNNING trials.

    Called by a single process before it trains (one worker on SQLite), so a RUNNING trial
    found here was left behind by a killed run: it is marked ``interrupted`` and its grid
    point is enqueued again. Points are enqueued sorted by batch key, so that consecutive
    waiting trials can be trained together.
    """
    done: set[str] = set()
    waiting: set[str] = set()
    requeued = 0
    for frozen in study.get_trials(deepcopy=False):
        key = frozen.user_attrs.get("key")
        status = _status(frozen)
        if status in FINAL_STATUSES:
            done.add(key)
        elif status == "waiting":
            waiting.add(key)
        elif status == "running":
            study._storage.set_trial_user_attr(frozen._trial_id, "status", "interrupted")
            study._storage.set_trial_state_values(frozen._trial_id, state=TrialState.FAIL)
            requeued += 1
    todo = [t for t in trials if t.key not in done and t.key not in waiting]
    for trial in sorted(todo, key=batch_key):
        study.enqueue_trial(
            grid_params(trial),
            user_attrs={"key": trial.key, "batch_key": batch_key(trial), "seed": trial.seed},
            skip_if_exists=False,
        )
    return SyncReport(
        total=len(trials),
        done=sum(1 for t in trials if t.key in done),
        enqueued=len(todo),
        requeued=requeued,
    )


def store_config(study: optuna.Study, spec: SweepSpec) -> None:
    """Keep the resolved config in the study, so reports and workers need only the storage."""
    study.set_user_attr("config", spec.raw)


def pop_batch(
    study: optuna.Study, specs: Mapping[str, TrialSpec], limit: int
) -> list[tuple[Trial, TrialSpec]]:
    """Claim up to ``limit`` WAITING trials sharing the batch key of the oldest waiting one.

    Each claim is the storage's conditional WAITING → RUNNING update (as in ``Study.ask``); a
    trial another worker claimed first is skipped. Waiting trials whose key is not in
    ``specs`` (grid points of an older config) are left alone.
    """
    claimed: list[tuple[Trial, TrialSpec]] = []
    wanted: str | None = None
    for frozen in study._storage.get_all_trials(
        study._study_id, deepcopy=False, states=(TrialState.WAITING,)
    ):
        spec = specs.get(frozen.user_attrs.get("key", ""))
        if spec is None or (wanted is not None and frozen.user_attrs.get("batch_key") != wanted):
            continue
        try:
            if not study._storage.set_trial_state_values(
                frozen._trial_id, state=TrialState.RUNNING
            ):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        wanted = frozen.user_attrs.get("batch_key")
        trial = Trial(study, frozen._trial_id)
        _record_params(trial, spec)
        claimed.append((trial, spec))
        if len(claimed) >= limit:
            break
    return claimed


def _point(value: Any) -> BaseDistribution:
    """A one-point distribution holding a grid value.

    Optuna refuses a parameter name whose distribution changes kind or categorical choices
    between trials of a study, so numbers become one-point float/int ranges (compatible
    whatever the value), booleans a fixed (False, True) choice, and strings are recorded
    with their full set of possible values by the caller.
    """
    if isinstance(value, bool):
        return CategoricalDistribution((False, True))
    if isinstance(value, int):
        return IntDistribution(value, value)
    if isinstance(value, float):
        return FloatDistribution(value, value)
    return CategoricalDistribution((value,))


def grid_params(spec: TrialSpec) -> dict[str, Any]:
    """The grid point as Optuna parameters, named as in the YAML."""
    named = {spec.display.get(name, name): value for name, value in spec.params.items()}
    return {"optimizer": spec.optimizer, "semantics": spec.semantics, **named}


def _record_params(trial: Trial, spec: TrialSpec) -> None:
    """Record the enqueued grid point (Optuna's fixed params) as the trial's parameters."""
    for name, value in grid_params(spec).items():
        if name == "optimizer":
            distribution = CategoricalDistribution(tuple(OPTIMIZERS))
        elif name == "semantics":
            distribution = CategoricalDistribution(SEMANTICS)
        else:
            distribution = _point(value)
        trial._suggest(name, distribution)


def report_epoch(trial: Trial, epoch: int, test_accuracy: float) -> None:
    """An intermediate value per epoch (what pruners and the dashboard read)."""
    trial.report(test_accuracy, step=epoch)


def finish(
    study: optuna.Study, trial: Trial, status: str, value: float | None, attrs: Mapping[str, Any]
) -> None:
    """Store the trial's history and outcome; see the module docstring for statuses."""
    for name, attr in attrs.items():
        trial.set_user_attr(name, attr)
    trial.set_user_attr("status", status)
    if status == "complete":
        study.tell(trial, value)
    else:
        study.tell(trial, state=TrialState.FAIL)


def final_trials(study: optuna.Study) -> list[FrozenTrial]:
    """One trial per grid key: its latest final (complete/diverged) one, else its latest."""
    latest: dict[str, FrozenTrial] = {}
    for frozen in study.get_trials(deepcopy=False):
        key = frozen.user_attrs.get("key")
        if key is None or _status(frozen) == "waiting":
            continue
        previous = latest.get(key)
        if previous is None or _rank(frozen) >= _rank(previous):
            latest[key] = frozen
    return sorted(latest.values(), key=lambda t: t.number)


def _rank(trial: FrozenTrial) -> tuple[bool, int]:
    return (_status(trial) in FINAL_STATUSES, trial.number)


def status_of(trial: FrozenTrial) -> str:
    """complete, diverged, failed, interrupted, running or waiting."""
    return _status(trial)


def done_keys(study: optuna.Study) -> set[str]:
    """Grid keys with a final (complete or diverged) trial."""
    return {
        t.user_attrs.get("key")
        for t in study.get_trials(deepcopy=False)
        if _status(t) in FINAL_STATUSES
    }
