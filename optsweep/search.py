"""`optsweep search`: Optuna explores the space a sweep file describes.

The space is the YAML's: a grid list becomes a categorical choice, a range
``{low: 1.0e-5, high: 1.0e-1, log: true}`` a float (or int) distribution, fixed values stay
fixed. With several optimizer blocks the optimizer itself is a categorical parameter
``optimizer`` and each block keeps its own conditional space, its parameters named
``<block>.<name>``; with one block they keep their YAML names.

Trials are asked ``search.batch`` at a time (TPE with a constant liar, so the pending ones
are not suggested again), grouped by what can share a batched update, trained together, and
pruned after each epoch by the configured pruner. The study lives next to the grid's, under
``results/<name>-search/`` and the study name ``<name>-search``.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)
from optuna.trial import FrozenTrial, Trial, TrialState

from optsweep import study as studies
from optsweep.config import OptimizerBlock, SearchSpec, SweepSpec, TrialSpec, make_trial
from optsweep.data import Dataset
from optsweep.progress import Progress
from optsweep.report import write_results
from optsweep.runner import Interrupted, RunResult, prepare, train_claimed, write_config

# Outcomes that use up the search budget (an interrupted trial does not).
COUNTED = ("complete", "pruned", "diverged", "failed")


class SearchError(Exception):
    """A search that cannot start; the message is one line for the user."""


@dataclass(frozen=True)
class BlockSpace:
    """One optimizer block's conditional space.

    Attributes:
        block: the block.
        label: its value of the ``optimizer`` choice (``adam``, ``adam/keras``, ``adam#2``).
        distributions: Optuna parameter name → distribution.
        names: Optuna parameter name → the canonical names it sets (several for a linked
            grid such as ``betas``, whose choices are JSON lists).
    """

    block: OptimizerBlock
    label: str
    distributions: dict[str, BaseDistribution]
    names: dict[str, tuple[str, ...]]


def _labels(blocks: tuple[OptimizerBlock, ...]) -> list[str]:
    """Short unique labels: the optimizer's name, else name/semantics, else name#index."""
    names = [b.name for b in blocks]
    with_semantics = [f"{b.name}/{b.semantics}" for b in blocks]
    return [
        n if names.count(n) == 1 else s if with_semantics.count(s) == 1 else f"{b.name}#{b.index}"
        for b, n, s in zip(blocks, names, with_semantics, strict=True)
    ]


def build_space(spec: SweepSpec) -> list[BlockSpace]:
    """Each block's distributions, named as in the YAML (prefixed when there are several)."""
    spaces = []
    several = len(spec.optimizers) > 1
    for block, label in zip(spec.optimizers, _labels(spec.optimizers), strict=True):
        distributions: dict[str, BaseDistribution] = {}
        names: dict[str, tuple[str, ...]] = {}
        linked = {name: group for group in block.linked for name in group}
        for name, values in block.grid.items():
            group = linked.get(name, (name,))
            if group[0] != name:
                continue  # a linked group is one choice, listed under its first name
            written = block.display[name] if len(group) == 1 else "+".join(group)
            optuna_name = f"{label}.{written}" if several else written
            if len(group) == 1:
                distributions[optuna_name] = CategoricalDistribution(values)
            else:
                rows = zip(*(block.grid[g] for g in group), strict=True)
                distributions[optuna_name] = CategoricalDistribution(
                    [json.dumps(list(row)) for row in rows]
                )
            names[optuna_name] = group
        for name, found in block.ranges.items():
            written = block.display[name]
            optuna_name = f"{label}.{written}" if several else written
            if found.kind == "int":
                distributions[optuna_name] = IntDistribution(
                    int(found.low), int(found.high), log=found.log, step=int(found.step or 1)
                )
            else:
                distributions[optuna_name] = FloatDistribution(
                    found.low, found.high, log=found.log, step=found.step
                )
            names[optuna_name] = (name,)
        spaces.append(BlockSpace(block, label, distributions, names))
    return spaces


def fingerprint(spec: SweepSpec, space: list[BlockSpace]) -> str:
    """What makes two searches the same: space, fixed values, data, model, training."""
    record = {
        "dataset": spec.dataset,
        "subset": [spec.subset_train, spec.subset_test],
        "model": dataclasses.asdict(spec.model),
        "train": {
            k: v
            for k, v in dataclasses.asdict(spec.train).items()
            if k not in ("device", "eval_batch_size", "log_every", "trials_per_batch")
        },
        "metric": [spec.search.metric, spec.search.validation_size],
        "blocks": [
            {
                "label": s.label,
                "semantics": s.block.semantics,
                "fixed": s.block.fixed,
                "schedule": repr(s.block.schedule),
                "space": {n: distribution_to_json(d) for n, d in s.distributions.items()},
            }
            for s in space
        ],
    }
    return json.dumps(record, sort_keys=True, default=str)


def suggest(trial: Trial, space: list[BlockSpace], seed: int) -> TrialSpec:
    """Ask the sampler for a point of the space; the trial it describes.

    Raises:
        ValueError: the registry's message when the point is an invalid combination.
    """
    chosen = space[0]
    if len(space) > 1:
        label = trial.suggest_categorical("optimizer", [s.label for s in space])
        chosen = next(s for s in space if s.label == label)
    params: dict[str, Any] = {}
    for name, distribution in chosen.distributions.items():
        value = _suggest(trial, name, distribution)
        group = chosen.names[name]
        parts = json.loads(value) if len(group) > 1 else [value]
        params.update(zip(group, parts, strict=True))
    return make_trial(chosen.block, params, seed)


def _suggest(trial: Trial, name: str, distribution: BaseDistribution) -> Any:
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    assert isinstance(distribution, FloatDistribution)
    return trial.suggest_float(
        name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
    )


def make_sampler(search: SearchSpec, space: list[BlockSpace]) -> optuna.samplers.BaseSampler:
    """The configured sampler, seeded."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if search.sampler == "tpe":
            return optuna.samplers.TPESampler(
                seed=search.seed, multivariate=True, group=True, constant_liar=True
            )
        if search.sampler == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=search.seed, warn_independent_sampling=False)
        if search.sampler == "random":
            return optuna.samplers.RandomSampler(seed=search.seed)
        if search.sampler == "qmc":
            return optuna.samplers.QMCSampler(seed=search.seed, warn_independent_sampling=False)
    if len(space) != 1 or not all(
        isinstance(d, CategoricalDistribution) for d in space[0].distributions.values()
    ):
        raise SearchError(
            "sampler grid needs one optimizer block whose grid entries are all lists; "
            "use tpe, random, qmc or cmaes for ranges or several blocks"
        )
    grid = {name: list(d.choices) for name, d in space[0].distributions.items()}
    return optuna.samplers.GridSampler(grid, seed=search.seed)


def make_pruner(search: SearchSpec, epochs: int) -> optuna.pruners.BasePruner:
    """The configured pruner over per-epoch accuracy."""
    if search.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    if search.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1))
    if search.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1)
    return optuna.pruners.NopPruner()


def hold_out_validation(dataset: Dataset, size: int) -> Dataset:
    """Train on all but the last ``size`` training images and evaluate on those."""
    n = dataset.train_x.shape[0]
    if not 0 < size < n:
        raise SearchError(f"search.validation_size = {size} must be below the {n} training images")
    return dataclasses.replace(
        dataset,
        train_x=dataset.train_x[: n - size],
        train_y=dataset.train_y[: n - size],
        test_x=dataset.train_x[n - size :],
        test_y=dataset.train_y[n - size :],
    )


def study_name(spec: SweepSpec) -> str:
    """``<name>-search``: kept apart from the grid's study of the same file."""
    return f"{spec.name}-search"


def _count(study: optuna.Study) -> int:
    return sum(studies.status_of(t) in COUNTED for t in study.get_trials(deepcopy=False))


def _fail_interrupted(study: optuna.Study) -> None:
    """RUNNING trials left by a killed search (one process owns a SQLite study)."""
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        studies.fail_trial(study, frozen._trial_id, "interrupted")


def open_search_study(
    spec: SweepSpec, space: list[BlockSpace], storage: str, *, new: bool
) -> optuna.Study:
    """Create or resume the search study; refuse a different space unless ``new``."""
    name = study_name(spec)
    backend = studies.open_storage(storage)
    if new and name in optuna.get_all_study_names(backend):
        optuna.delete_study(study_name=name, storage=backend)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=name,
        storage=backend,
        direction="maximize",
        sampler=make_sampler(spec.search, space),
        pruner=make_pruner(spec.search, spec.train.epochs),
        load_if_exists=True,
    )
    wanted = fingerprint(spec, space)
    found = study.user_attrs.get("search_space")
    if found is not None and found != wanted:
        raise SearchError(
            f"study {name} in {studies.redact(storage)} searched a different space (or data, "
            "model, training); add --new to start it over, or give the sweep another name"
        )
    study.set_user_attr("search_space", wanted)
    study.set_user_attr("mode", "search")
    studies.store_config(study, spec)
    return study


def run_search(
    spec: SweepSpec,
    progress: Progress,
    *,
    trials: int | None = None,
    out: Path | None = None,
    storage: str | None = None,
    data_dir: Path | None = None,
    device: str | None = None,
    new: bool = False,
) -> RunResult:
    """Search until the study holds ``trials`` (default ``search.trials``) finished trials."""
    folder = out if out is not None else Path("results") / study_name(spec)
    folder.mkdir(parents=True, exist_ok=True)
    storage = storage or studies.sqlite_url(folder)
    space = build_space(spec)
    study = open_search_study(spec, space, storage, new=new)
    _fail_interrupted(study)
    write_config(spec, folder)
    budget = trials if trials is not None else spec.search.trials
    done = _count(study)
    trained = 0
    if done < budget:
        bench = prepare(spec, data_dir, device)
        if spec.search.metric == "validation":
            held_out = hold_out_validation(bench.dataset, spec.search.validation_size)
            bench = dataclasses.replace(bench, dataset=held_out)
        progress.start(budget, done)
        try:
            while done < budget:
                asked = _ask(study, space, spec, min(spec.search.batch, budget - done))
                for claimed in _compatible_groups(asked):
                    trained += train_claimed(study, claimed, bench, spec, progress, prune=True)
                done = _count(study)
        except KeyboardInterrupt:
            progress.stop()
            _fail_interrupted(study)
            write_results(study, folder, study_name(spec))
            raise Interrupted(_count(study), budget) from None
    else:
        progress.start(budget, done)
    progress.stop()
    records = write_results(study, folder, study_name(spec))
    return RunResult(folder, storage, records, trained)


def _ask(
    study: optuna.Study, space: list[BlockSpace], spec: SweepSpec, n: int
) -> list[tuple[Trial, TrialSpec]]:
    """Ask ``n`` trials to train.

    An invalid combination is told FAIL at once. A point already trained (samplers repeat
    points of categorical spaces) is not trained again: the new trial is told the earlier
    result and points at it with ``duplicate_of``. Both still use up the budget.
    """
    earlier = {
        t.user_attrs["key"]: t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        if "key" in t.user_attrs
    }
    asked: list[tuple[Trial, TrialSpec]] = []
    for _ in range(n):
        trial = study.ask()
        try:
            trial_spec = suggest(trial, space, spec.train.seeds[0])
        except ValueError as error:
            studies.finish(study, trial, "failed", None, {"error": str(error)})
            continue
        trial.set_user_attr("key", trial_spec.key)
        trial.set_user_attr("seed", trial_spec.seed)
        if trial_spec.key in earlier:
            _tell_duplicate(study, trial, earlier[trial_spec.key])
        elif trial_spec.key in {s.key for _, s in asked}:
            studies.finish(study, trial, "failed", None, {"error": "asked twice in one batch"})
        else:
            asked.append((trial, trial_spec))
    return asked


def _tell_duplicate(study: optuna.Study, trial: Trial, first: FrozenTrial) -> None:
    """Copy an earlier trial's outcome to a repeated suggestion of the same point."""
    attrs = {k: v for k, v in first.user_attrs.items() if k not in ("key", "seed", "status")}
    attrs["duplicate_of"] = first.number
    for step, value in first.intermediate_values.items():
        trial.report(value, step)
    status = "complete" if first.state == TrialState.COMPLETE else "pruned"
    studies.finish(study, trial, status, first.value, attrs)


def _compatible_groups(
    asked: list[tuple[Trial, TrialSpec]],
) -> list[list[tuple[Trial, TrialSpec]]]:
    """Split asked trials into groups that can share one batched update."""
    groups: dict[str, list[tuple[Trial, TrialSpec]]] = defaultdict(list)
    for trial, trial_spec in asked:
        groups[studies.batch_key(trial_spec)].append((trial, trial_spec))
    return list(groups.values())
