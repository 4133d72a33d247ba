"""Trials as plain records, read back from the study (the data every report draws).

`collect` turns a study's trials into `TrialRecord`s; tables, statistics and pictures only
read those records, so they are tested without training or pixels.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from optsweep.config import trial_label
from optsweep.optim import registry
from optsweep.study import final_trials, status_of

# Columns every row of trials.csv has, around the grid's parameter columns.
LEADING_COLUMNS = ("trial", "optimizer", "semantics", "seed")
METRIC_COLUMNS = (
    "status",
    "final_test_accuracy",
    "best_test_accuracy",
    "final_test_loss",
    "final_train_loss",
    "seconds",
    "trials_in_batch",
    "seconds_per_trial",
)


@dataclass(frozen=True)
class TrialRecord:
    """One grid point's outcome, as read back from the study."""

    trial: int
    optimizer: str
    semantics: str
    seed: int
    params: dict[str, Any]
    status: str
    epochs: list[dict[str, float]] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)
    seconds: float = math.nan  # wall time of the batch the trial trained in
    trials_in_batch: int | None = None  # how many trials that batch trained (None: not stored)
    duplicate_of: int | None = None  # a search's repeated point: the trial it copies
    error: str | None = None  # a failed trial: what went wrong

    @property
    def final_test_accuracy(self) -> float:
        return self.epochs[-1]["test_accuracy"] if self.epochs else math.nan

    @property
    def best_test_accuracy(self) -> float:
        return max((e["test_accuracy"] for e in self.epochs), default=math.nan)

    @property
    def final_test_loss(self) -> float:
        return self.epochs[-1]["test_loss"] if self.epochs else math.nan

    @property
    def final_train_loss(self) -> float:
        return self.epochs[-1]["train_loss"] if self.epochs else math.nan

    @property
    def seconds_per_trial(self) -> float:
        """The trial's share of its batch's wall time (the batch's seconds over its trials):
        what one trial cost, comparable across batches of different sizes."""
        if not self.trials_in_batch:
            return math.nan
        return self.seconds / self.trials_in_batch

    @property
    def label(self) -> str:
        return trial_label(self.optimizer, self.semantics, self.params, self.seed)

    def row(self) -> dict[str, Any]:
        """The trials.csv row (parameters under their YAML names)."""
        return {
            "trial": self.trial,
            "optimizer": self.optimizer,
            "semantics": self.semantics,
            "seed": self.seed,
            **self.params,
            **{name: getattr(self, name) for name in METRIC_COLUMNS},
            **({} if self.duplicate_of is None else {"duplicate_of": self.duplicate_of}),
        }


def search_records(frozen: FrozenTrial) -> list[TrialRecord]:
    """A search trial's records: one per seed it trained (``runs``), each with the
    configuration's status; one record for a trial that trained nothing (an invalid
    combination) or was written before searches trained several seeds."""
    single = record_of(frozen)
    runs = frozen.user_attrs.get("runs")
    if not runs:
        return [single]
    return [
        dataclasses.replace(
            single,
            seed=int(run["seed"]),
            epochs=list(run.get("epochs", [])),
            steps=list(run.get("steps", [])),
            step_losses=list(run.get("step_losses", [])),
            seconds=float(run.get("seconds", math.nan)),
            trials_in_batch=run.get("trials_in_batch"),
        )
        for run in runs
    ]


def record_of(frozen: FrozenTrial) -> TrialRecord:
    """A `TrialRecord` from a finished (or failed) Optuna trial."""
    attrs = frozen.user_attrs
    params = attrs.get("params") or {
        k: v for k, v in frozen.params.items() if k not in ("optimizer", "semantics")
    }
    return TrialRecord(
        trial=frozen.number,
        optimizer=attrs.get("optimizer", frozen.params.get("optimizer", "?")),
        semantics=attrs.get("semantics", frozen.params.get("semantics", "?")),
        seed=int(attrs.get("seed", (attrs.get("seeds") or [-1])[0])),
        params=params,
        status=status_of(frozen),
        epochs=list(attrs.get("epochs", [])),
        steps=list(attrs.get("steps", [])),
        step_losses=list(attrs.get("step_losses", [])),
        seconds=float(attrs.get("seconds", math.nan)),
        trials_in_batch=attrs.get("trials_in_batch"),
        duplicate_of=attrs.get("duplicate_of"),
        error=attrs.get("error"),
    )


# The study user attribute holding the keys of the grid the file has now (`runner.run_sweep`
# stores it at each sync); results of other grid points stay in the study, out of the tables.
GRID_KEYS = "grid_keys"


def grid_split(study: optuna.Study) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
    """A grid's final trials (one per grid point): those of the file's current grid, others.

    A study that stored no grid keys (written before they were) keeps every point current.
    """
    trials = final_trials(study)
    keys = study.user_attrs.get(GRID_KEYS)
    if not isinstance(keys, list):
        return trials, []
    current = set(keys)
    return (
        [t for t in trials if t.user_attrs.get("key") in current],
        [t for t in trials if t.user_attrs.get("key") not in current],
    )


def outside_grid(study: optuna.Study) -> int:
    """How many grid points with a trial the study holds that the file's grid no longer has."""
    if study.user_attrs.get("mode") == "search":
        return 0
    return len(grid_split(study)[1])


def collect(study: optuna.Study) -> list[TrialRecord]:
    """A grid: one record per grid point of the file's current grid (its final attempt). A
    search: every trial asked."""
    if study.user_attrs.get("mode") == "search":
        return [
            record
            for t in study.get_trials(deepcopy=False)
            if status_of(t) not in ("waiting", "running", "interrupted")
            for record in search_records(t)
        ]
    else:
        trials = grid_split(study)[0]
    return [record_of(t) for t in trials]


def ranked(records: Sequence[TrialRecord]) -> list[TrialRecord]:
    """Completed trials by final test accuracy, best first; the others after, by status."""

    def key(r: TrialRecord) -> tuple[int, float, int]:
        done = r.status == "complete" and not math.isnan(r.final_test_accuracy)
        return (0 if done else 1, -r.final_test_accuracy if done else 0.0, r.trial)

    return sorted(records, key=key)


def resolved_params(
    optimizer: str, semantics: str, params: Mapping[str, Any], names: Sequence[str]
) -> dict[str, tuple[Any, bool]]:
    """Per table column ``names``: a trial's value (``params``: as given in the YAML) and
    whether it is its optimizer's default (not given); a name the optimizer lacks is left out.

    A trial at its optimizer's default learning rate then shows that rate, so a table of
    several optimizers says which rates were compared.
    """
    try:
        canonical = registry.canonicalize(optimizer, params)
        resolved = registry.resolve(optimizer, semantics, canonical)
        written = registry.written_names(optimizer)
    except ValueError:  # a name the registry no longer knows (an older study): what was given
        resolved, written = {}, {}
    out: dict[str, tuple[Any, bool]] = {}
    for name in names:
        if name in params:
            out[name] = (params[name], False)
            continue
        # none: not this optimizer's (sgd has no beta_1); two: a pair name (betas)
        found = written.get(name, ())
        if len(found) == 1 and found[0] in resolved:
            out[name] = (resolved[found[0]], True)
    return out


def varying_params(records: Sequence[TrialRecord]) -> list[str]:
    """Parameter names in first-seen order (the grid's columns)."""
    names: dict[str, None] = {}
    for r in records:
        names.update(dict.fromkeys(r.params))
    return list(names)
