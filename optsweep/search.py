"""`optsweep search`: Optuna explores the space a sweep file describes, from any number of workers.

The space is the YAML's: a grid list becomes a categorical choice, a range
``{low: 1.0e-5, high: 1.0e-1, log: true}`` a float (or int) distribution, fixed values stay
fixed. With several optimizer blocks the optimizer itself is a categorical parameter
``optimizer`` and each block keeps its own conditional space, its parameters named
``<block>.<name>``; with one block they keep their YAML names.

Trials are asked ``search.batch`` at a time (TPE with a constant liar, so the pending ones
are not suggested again), grouped by what can share a batched update, trained together once
per seed of ``train.seeds`` (one batch per seed, as grids do), and pruned after each epoch by
the configured pruner. The value told to Optuna is the mean final metric over the seeds; the
intermediate value of an epoch the mean over the seeds (with several seeds the pruner decides
while the last seed trains, once the others' epochs are known). The study lives next to the
grid's, under ``results/<name>-search/`` and the study name ``<name>-search``.

Many workers, one study (Optuna's RDB storage on PostgreSQL is the distributed engine):
- **One budget**, stored in the study (user attribute ``budget``). Counting it and asking new
  trials happen under the study's advisory lock (`study.study_lock`), so workers starting at
  once never ask more than ``budget`` trials with an outcome: complete, pruned, diverged,
  failed, invalid combination, or a copied repeat (`COUNTED`). A trial failed as
  ``interrupted`` does not count: its point is enqueued again and asked by the next worker.
- **Faults as in grids**: a worker's trials carry heartbeats (`study.Heartbeat`); any worker
  reaps the trials of a dead or stalled one (`study.reap_stale`) and enqueues their points; a
  stalled worker's late result is dropped (`study.finish`). Ctrl-C and SIGTERM hand back only
  this worker's own trials (`_hand_back`).
- **No point trained twice**: a suggestion that repeats a configuration (the same optimizer
  block and parameters, whatever the seed) is never trained again. It copies the earlier
  result, records ``duplicate_of`` and counts; while the earlier trial is still training, the
  repeat waits for it (user attribute ``waits_for``), and trains the point itself only if the
  earlier one is interrupted.
- **Samplers**: worker number *i* of a study (the order in which they joined) seeds its
  sampler with ``search.seed`` for *i* = 0 and a seed derived from it otherwise, so workers
  do not suggest the same first points while one process stays reproducible; QMC keeps one
  seed everywhere (Optuna's QMC sampler needs it and counts its samples in the study).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import statistics
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)
from optuna.trial import FrozenTrial, Trial, TrialState

from optsweep import interrupts
from optsweep import optuna_private as private
from optsweep import study as studies
from optsweep.config import (
    OptimizerBlock,
    SearchSpec,
    SweepSpec,
    TrialSpec,
    configuration_key,
    fmt,
    label_of,
    make_trial,
)
from optsweep.config.schema import RESULT, TRIALS, meaning_record
from optsweep.data import Dataset
from optsweep.engine import TrialOutcome, train_batch
from optsweep.progress import Finished, Progress
from optsweep.report import write_results
from optsweep.runner import (
    Interrupted,
    RunResult,
    Workbench,
    file_digest,
    outcome_attrs,
    prepare,
    user_model_file,
    write_config,
)

# Outcomes that use up the search budget (an interrupted trial does not).
COUNTED = ("complete", "pruned", "diverged", "failed", "invalid")
# User attributes of a trial that describe its own run, not its configuration's result.
OWN_ATTRS = ("key", "status", "worker", "waits_for", "duplicate_of", "retry_of")
T = TypeVar("T")


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
    """What makes two searches the same: space, fixed values, data, model, training.

    The ``data:`` settings enter only where they differ from their defaults, so that a
    search begun before the section existed (its trials had the defaults) is the same one.
    """
    data = meaning_record(spec.data)
    record = {
        "dataset": spec.dataset,
        **({"dataset.sha256": file_digest(spec.files)} if spec.files is not None else {}),
        **({"model.sha256": file_digest(source)} if (source := user_model_file(spec)) else {}),
        "subset": [spec.subset_train, spec.subset_test],
        "model": dataclasses.asdict(spec.model),
        "train": meaning_record(spec.train, (RESULT, TRIALS)),
        "metric": [spec.search.metric, spec.search.validation_size],
        **({"data": data} if data else {}),
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


def suggest_point(trial: Trial, space: list[BlockSpace]) -> tuple[OptimizerBlock, dict[str, Any]]:
    """Ask the sampler for a point of the space: its block and canonical parameters."""
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
    return chosen.block, params


def suggest(trial: Trial, space: list[BlockSpace], seed: int) -> TrialSpec:
    """Ask the sampler for a point of the space; the trial it describes with ``seed``.

    Raises:
        ValueError: the registry's message when the point is an invalid combination.
    """
    return make_trial(*suggest_point(trial, space), seed)


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


def sampler_seed(search: SearchSpec, worker: int) -> int:
    """The seed of the sampler of the study's ``worker``-th worker (0: the first to join).

    The first worker uses ``search.seed`` itself, so one process is reproducible from it;
    the others get distinct seeds derived from it, so their random startup points differ.
    QMC keeps ``search.seed`` in every worker: its scrambled sequence must be one sequence,
    whose position Optuna keeps in the study.
    """
    if worker == 0 or search.sampler == "qmc":
        return search.seed
    return (search.seed + 1_000_003 * worker) % 2**32


def make_sampler(
    search: SearchSpec, space: list[BlockSpace], worker: int = 0
) -> optuna.samplers.BaseSampler:
    """The configured sampler, seeded for the study's ``worker``-th worker (`sampler_seed`)."""
    seed = sampler_seed(search, worker)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if search.sampler == "tpe":
            return optuna.samplers.TPESampler(
                seed=seed, multivariate=True, group=True, constant_liar=True
            )
        if search.sampler == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        if search.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if search.sampler == "qmc":
            return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    if len(space) != 1 or not all(
        isinstance(d, CategoricalDistribution) for d in space[0].distributions.values()
    ):
        raise SearchError(
            "sampler grid needs one optimizer block whose grid entries are all lists; "
            "use tpe, random, qmc or cmaes for ranges or several blocks"
        )
    grid = {name: list(d.choices) for name, d in space[0].distributions.items()}
    return optuna.samplers.GridSampler(grid, seed=seed)


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


# ─────────────────────────── the study: budget, workers ───────────────────────────


def open_search_study(
    spec: SweepSpec,
    space: list[BlockSpace],
    storage: str,
    *,
    new: bool = False,
    trials: int | None = None,
    liveness: studies.Liveness | None = None,
) -> optuna.Study:
    """Create or join the search study; refuse a different space unless ``new``.

    The budget is ``trials`` (else ``search.trials``), written into the study when it is
    created; a larger one raises it, a smaller ``--trials`` is refused (a worker joining
    later reads it from the study).

    Raises:
        SearchError: another space, a lower budget, or ``new`` while workers are live.
    """
    name = study_name(spec)
    backend = studies.open_storage(storage, liveness)
    if new and name in optuna.get_all_study_names(backend):
        old = optuna.load_study(study_name=name, storage=backend)
        live = studies.live_workers(old, within=(liveness or studies.Liveness()).grace)
        if live:
            raise SearchError(
                f"--new would delete study {name} under {len(live)} live worker(s) "
                f"({', '.join(sorted(live))}); stop them first or give the sweep another name"
            )
        optuna.delete_study(study_name=name, storage=backend)
    study = studies.open_study(name, storage, liveness)
    studies.refuse_foreign(study, storage)
    wanted = fingerprint(spec, space)
    requested = trials if trials is not None else spec.search.trials
    with studies.study_lock(study):
        found = study.user_attrs.get("search_space")
        if found is not None and found != wanted:
            raise SearchError(
                f"study {name} in {studies.redact(storage)} searched a different space (or "
                "data, model, training); add --new to start it over, or give the sweep another "
                "name"
            )
        budget = study.user_attrs.get("budget")
        if budget is not None and trials is not None and trials < budget:
            raise SearchError(
                f"study {name} has a budget of {budget} trials; --trials {trials} would lower "
                f"it: give --trials {budget} or more (or --new to start over)"
            )
        if budget is None or requested > budget:
            study.set_user_attr("budget", requested)
        if found is None:
            study.set_user_attr("search_space", wanted)
            study.set_user_attr("mode", "search")
        studies.store_config(study, spec)
    return study


def budget_of(study: optuna.Study) -> int:
    """The study's budget: how many trials with an outcome the search ends with."""
    return int(study.user_attrs["budget"])


def _join(study: optuna.Study) -> int:
    """This worker's number among those that joined the study (always 0 on SQLite)."""
    if not studies.shared(study):
        return 0
    with studies.study_lock(study):
        joined = int(study.user_attrs.get("workers_joined", 0))
        study.set_user_attr("workers_joined", joined + 1)
    return joined


# ─────────────────────────── one worker ───────────────────────────


@dataclass
class Asked:
    """A trial this worker holds: a configuration to train once per seed, or to copy.

    Attributes:
        trial: the Optuna trial.
        key: the configuration's key, the same for every seed (`config.configuration_key`).
        identity: optimizer, semantics and parameters under their YAML names.
        specs: the configuration with each seed of ``train.seeds``; empty when invalid.
        error: the registry's message for an invalid combination.
        waits_for: trial id of the trial training the same configuration.
    """

    trial: Trial
    key: str
    identity: dict[str, Any]
    specs: list[TrialSpec]
    error: str | None = None
    waits_for: int | None = None

    @property
    def trial_id(self) -> int:
        return private.trial_id(self.trial)

    @property
    def label(self) -> str:
        """The configuration on one line, as `records.trial_label` writes it, seedless."""
        optimizer, semantics = self.identity["optimizer"], self.identity["semantics"]
        params = [f"{k}={fmt(v)}" for k, v in self.identity["params"].items()]
        return " ".join([f"{optimizer}/{semantics}", *params])


@dataclass
class Plan:
    """What one look at the study decided for this worker."""

    train: list[Asked] = field(default_factory=list)
    pending: list[Asked] = field(default_factory=list)
    told: list[tuple[str, str, float]] = field(default_factory=list)  # label, status, value
    outcomes: int = 0
    done: bool = False


def run_search(
    spec: SweepSpec,
    progress: Progress,
    *,
    trials: int | None = None,
    out: Path | None = None,
    storage: str | None = None,
    new: bool = False,
    liveness: studies.Liveness | None = None,
) -> RunResult:
    """Search until the study holds its budget of trials with an outcome; write the results.

    On a shared storage this process is one worker among any number (`search_worker`).
    """
    folder = out if out is not None else Path("results") / study_name(spec)
    folder.mkdir(parents=True, exist_ok=True)
    storage = storage or studies.sqlite_url(folder)
    space = build_space(spec)
    study = open_search_study(spec, space, storage, new=new, trials=trials, liveness=liveness)
    write_config(spec, folder)
    return search_worker(study, spec, progress, folder=folder, liveness=liveness)


def search_worker(
    study: optuna.Study,
    spec: SweepSpec,
    progress: Progress,
    *,
    folder: Path | None,
    liveness: studies.Liveness | None = None,
) -> RunResult:
    """One worker of a search: ask, train and tell until the budget is met; results to
    ``folder`` (None: leave them to others).

    Each round (`_plan`, under the study lock): reap dead workers' trials, settle the repeats
    this worker waits on, and ask as many new trials as the budget leaves. With nothing to
    train the worker waits while others' trials run. Storage calls are retried while the
    database is unreachable.
    """
    liveness = liveness or studies.Liveness()
    space = build_space(spec)
    budget = budget_of(study)
    study.sampler = make_sampler(spec.search, space, _join(study))
    study.pruner = make_pruner(spec.search, spec.train.epochs)
    shared = studies.shared(study)
    beating = studies.heartbeats_on(study)

    def again(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return studies.retrying(call, *args, patience=liveness.patience, **kwargs)

    if not shared:  # one process owns a SQLite study: RUNNING trials are a killed run's
        _hand_back(study, [private.trial_id(t) for t in _running(study)], own=False)
    holding = studies.Heartbeat(study, [], liveness.heartbeat)
    bench: Workbench | None = None
    pending: list[Asked] = []
    trained = 0
    try:
        progress.start(budget, again(_plan, study, space, spec, budget, [], holding, 0).outcomes)
        with holding if beating else contextlib.nullcontext():
            while True:
                plan = again(_plan, study, space, spec, budget, pending, holding, spec.search.batch)
                pending = plan.pending
                progress.finished([Finished(*told) for told in plan.told])
                if plan.train:
                    if bench is None:
                        bench = _workbench(spec)
                    for group in _compatible_groups(plan.train):
                        trained += _train(study, group, bench, spec, progress, holding)
                elif plan.done and not pending:
                    break
                elif not plan.told:
                    time.sleep(liveness.poll)  # others' trials are running: wait for them
    except KeyboardInterrupt:
        progress.stop(interrupted=True)
        _hand_back(study, holding.trial_ids)
        outcomes = _tally(study.get_trials(deepcopy=False))[0]
        if folder is not None:
            write_results(study, folder, study_name(spec))
        raise Interrupted(outcomes, budget) from None
    finally:
        studies.mark_gone(study)
    progress.stop()
    again(_retire_waiting, study)
    records = write_results(study, folder, study_name(spec)) if folder is not None else []
    storage = studies.storage_of(study)
    return RunResult(folder or Path("."), storage, records, trained)


def _workbench(spec: SweepSpec) -> Workbench:
    bench = prepare(spec)
    if spec.search.metric == "validation":
        held_out = hold_out_validation(bench.dataset, spec.search.validation_size)
        bench = dataclasses.replace(bench, dataset=held_out)
    return bench


def _running(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))


def _tally(trials: Sequence[FrozenTrial]) -> tuple[int, int]:
    """(trials with an outcome, RUNNING trials)."""
    outcomes = sum(studies.status_of(t) in COUNTED for t in trials)
    return outcomes, sum(t.state == TrialState.RUNNING for t in trials)


def _plan(
    study: optuna.Study,
    space: list[BlockSpace],
    spec: SweepSpec,
    budget: int,
    pending: list[Asked],
    holding: studies.Heartbeat,
    want: int,
) -> Plan:
    """Under the study lock: reap, settle pending repeats, ask up to ``want`` new trials."""
    plan = Plan()
    with studies.study_lock(study):
        studies.mark_alive(study)
        _requeue(study, studies.reap_stale(study))
        # Held beyond the pending repeats: asked by an attempt of this round that the database
        # cut short (`again` retries the whole round). Never trained, they would stay RUNNING
        # under this worker's heartbeat while every worker waited on them: handed back.
        waits = {asked.trial_id for asked in pending}
        orphans = [i for i in holding.trial_ids if i not in waits]
        _handed_back(study, orphans, own=True)
        for trial_id in orphans:
            holding.discard(trial_id)
        trials = study.get_trials(deepcopy=False)
        by_id = {private.trial_id(t): t for t in trials}
        for asked in pending:
            mine = by_id.get(asked.trial_id)
            if mine is None or mine.state != TrialState.RUNNING:  # reaped: this worker stalled
                holding.discard(asked.trial_id)
                continue
            trainer = by_id.get(asked.waits_for) if asked.waits_for is not None else None
            if trainer is not None and trainer.state == TrialState.RUNNING:
                plan.pending.append(asked)
            else:
                _decide(study, asked, trials, plan, holding)
        outcomes, running = _tally(trials)
        plan.outcomes = outcomes + len(plan.told)
        running -= len(plan.told)
        if plan.outcomes >= budget:
            plan.done = True
            return plan
        turns = _turns(trials, space, spec)
        for _ in range(max(0, min(want - len(plan.train), budget - plan.outcomes - running))):
            asked = _ask(study, space, spec, holding, turns)
            if asked.error is not None:
                _tell(study, asked, "invalid", None, {**asked.identity, "error": asked.error})
                holding.discard(asked.trial_id)
                plan.told.append((asked.label, "invalid", math.nan))
            else:
                _decide(study, asked, trials, plan, holding)
        plan.outcomes = outcomes + len(plan.told)
    return plan


def _turns(
    trials: Sequence[FrozenTrial], space: list[BlockSpace], spec: SweepSpec
) -> Counter[str] | None:
    """Trials so far per optimizer label, for ``search.share: equal`` over several optimizers
    (None: the sampler chooses). A trial interrupted is not counted: its point is asked
    again."""
    if len(space) < 2 or spec.search.share != "equal" or spec.search.sampler == "grid":
        return None
    turns: Counter[str] = Counter({s.label: 0 for s in space})
    for t in trials:
        if "optimizer" in t.params and studies.status_of(t) != "interrupted":
            turns[t.params["optimizer"]] += 1
    return turns


def _ask(
    study: optuna.Study,
    space: list[BlockSpace],
    spec: SweepSpec,
    holding: studies.Heartbeat,
    turns: Counter[str] | None = None,
) -> Asked:
    """A new trial (or an enqueued retry) from the sampler, with its configuration; with
    ``turns``, the optimizer with the fewest trials (the first in the file among equals) is
    fixed and the sampler chooses the rest (Optuna's `PartialFixedSampler`)."""
    sampler = study.sampler
    if turns is not None:
        label = min(turns, key=lambda name: turns[name])  # first of the least tried
        with warnings.catch_warnings():  # PartialFixedSampler is experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.sampler = optuna.samplers.PartialFixedSampler({"optimizer": label}, sampler)
    try:
        with warnings.catch_warnings(), interrupts.held():
            # "Heartbeat … supposed to be used with Study.optimize": optsweep beats for its own
            warnings.simplefilter("ignore", UserWarning)
            trial = study.ask()
            holding.add(private.trial_id(trial))  # before Ctrl-C can land: it is handed back
        if studies.heartbeats_on(study):  # before anything else: a worker killed now is reaped
            private.storage(study).record_heartbeat(private.trial_id(trial))
        block, params = suggest_point(trial, space)  # the sampler answers here
    finally:
        study.sampler = sampler
    if turns is not None:
        turns[trial.params["optimizer"]] += 1
    given = {**block.fixed, **params}
    identity = {
        "optimizer": block.name,
        "semantics": block.semantics,
        "params": {block.display.get(k, k): v for k, v in given.items()},
    }
    asked = Asked(trial, configuration_key(block, params), identity, [])
    try:
        asked.specs = [make_trial(block, params, seed) for seed in spec.train.seeds]
    except ValueError as error:
        asked.error = str(error)
    studies.set_user_attrs(
        study,
        private.trial_id(trial),
        {"key": asked.key, "seeds": list(spec.train.seeds), "worker": studies.worker_id()},
    )
    return asked


def _decide(
    study: optuna.Study,
    asked: Asked,
    trials: Sequence[FrozenTrial],
    plan: Plan,
    holding: studies.Heartbeat,
) -> None:
    """Train ``asked``, copy an earlier result of its configuration, or wait for one.

    ``trials`` is the study as read under the lock; ``plan.train`` holds the trials this
    round has decided to train.
    """
    same = [t for t in trials if t.user_attrs.get("key") == asked.key]
    same = [t for t in same if private.trial_id(t) != asked.trial_id]
    finished = sorted((t for t in same if studies.status_of(t) in COUNTED), key=lambda t: t.number)
    if finished:
        first = finished[0]
        status = _copy(study, asked, first)
        holding.discard(asked.trial_id)
        plan.told.append(
            (asked.label, status, first.value if first.value is not None else math.nan)
        )
        return
    training = [a.trial_id for a in plan.train if a.key == asked.key]
    training += [
        private.trial_id(t)
        for t in same
        if t.state == TrialState.RUNNING
        and t.user_attrs.get("waits_for") is None
        and private.trial_id(t) not in {p.trial_id for p in plan.pending}
    ]
    if training:
        asked.waits_for = training[0]
        studies.set_user_attrs(study, asked.trial_id, {"waits_for": asked.waits_for})
        plan.pending.append(asked)
        return
    if asked.waits_for is not None:  # what it waited for was interrupted: train it here
        asked.waits_for = None
        studies.set_user_attrs(study, asked.trial_id, {"waits_for": None})
    plan.train.append(asked)


def _copy(study: optuna.Study, asked: Asked, first: FrozenTrial) -> str:
    """Tell a repeated configuration the earlier trial's outcome; that outcome's status."""
    attrs = {k: v for k, v in first.user_attrs.items() if k not in OWN_ATTRS}
    attrs["duplicate_of"] = first.user_attrs.get("duplicate_of", first.number)
    attrs["waits_for"] = None
    for step, value in sorted(first.intermediate_values.items()):
        studies.report_epoch(asked.trial, step, value)
    status = studies.status_of(first)
    _tell(study, asked, status, first.value, attrs)
    return status


def _tell(
    study: optuna.Study, asked: Asked, status: str, value: float | None, attrs: dict[str, Any]
) -> bool:
    return studies.finish(study, asked.trial, status, value, attrs)


def _requeue(study: optuna.Study, trial_ids: Sequence[int]) -> None:
    """Enqueue again the points of interrupted trials, so the budget still ends with them."""
    for trial_id in trial_ids:
        frozen = private.storage(study).get_trial(trial_id)
        if frozen.params:
            study.enqueue_trial(
                frozen.params, user_attrs={"retry_of": frozen.number}, skip_if_exists=False
            )


def _hand_back(study: optuna.Study, trial_ids: Sequence[int], *, own: bool = True) -> None:
    """Trials failed as ``interrupted``, their points enqueued again: this worker's own
    (``own``: recorded as its, since one stopped between ask and suggest has no other
    record), or those a killed run left on a SQLite study."""
    with studies.study_lock(study):
        _handed_back(study, trial_ids, own=own)


def _handed_back(study: optuna.Study, trial_ids: Sequence[int], *, own: bool) -> None:
    """`_hand_back` with the study lock already held (a round of `_plan`)."""
    _requeue(study, [i for i in trial_ids if _fail_interrupted(study, i, own)])


def _fail_interrupted(study: optuna.Study, trial_id: int, own: bool) -> bool:
    if own:
        try:
            private.storage(study).set_trial_user_attr(trial_id, "worker", studies.worker_id())
        except optuna.exceptions.UpdateFinishedTrialError:
            return False
    why = "its worker was stopped" if own else "left running by a killed run"
    return studies.fail_trial(study, trial_id, "interrupted", why)


def _retire_waiting(study: optuna.Study) -> None:
    """Retries left WAITING once the budget is met are not needed: fail them (uncounted)."""
    with studies.study_lock(study):
        for frozen in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            studies.fail_trial(study, private.trial_id(frozen), "interrupted", "the budget was met")


# ─────────────────────────── training ───────────────────────────


def _train(
    study: optuna.Study,
    group: list[Asked],
    bench: Workbench,
    spec: SweepSpec,
    progress: Progress,
    holding: studies.Heartbeat,
) -> int:
    """Train configurations that share a batched update, one batch per seed; tell each.

    A configuration that diverges under one seed is diverged and skips the seeds after it.
    With several seeds the pruner decides while the last seed trains, on the mean over
    seeds of each epoch's metric; the earlier seeds train every epoch.
    """
    seeds = spec.train.seeds
    runs: list[list[TrialOutcome]] = [[] for _ in group]
    errors: dict[int, str] = {}
    alive = list(range(len(group)))
    for index, _seed in enumerate(seeds):
        members = list(alive)
        if not members:
            break
        last = index == len(seeds) - 1
        specs = [group[i].specs[index] for i in members]
        progress.batch([label_of(s) for s in specs], spec.train.epochs)

        def on_epoch(epoch: int, metrics: dict, members=members, index=index, last=last):
            if not last:
                return []
            stop = []
            for row, m in metrics.items():
                i = members[row]
                earlier = [runs[i][k].epochs[epoch - 1].test_accuracy for k in range(index)]
                studies.report_epoch(
                    group[i].trial, epoch, statistics.fmean([*earlier, m.test_accuracy])
                )
                if epoch < spec.train.epochs and _should_prune(group[i].trial):
                    stop.append(row)
            return stop

        try:
            outcomes = train_batch(
                bench.dataset,
                bench.model,
                specs,
                spec.train,
                device=bench.device,
                on_epoch=on_epoch,
                on_step=progress.step,
                data=spec.data,
            )
        except KeyboardInterrupt:
            raise
        except Exception as error:  # one bad batch must not end the search
            for i in members:
                errors[i] = f"{type(error).__name__}: {error}"
                alive.remove(i)
            continue
        for row, outcome in enumerate(outcomes):
            runs[members[row]].append(outcome)
            if outcome.status != "complete":
                alive.remove(members[row])
    finished = []
    for i, asked in enumerate(group):
        status, value = _outcome(runs[i], errors.get(i))
        attrs = _run_attrs(asked, runs[i], seeds, len(group))
        if i in errors:
            attrs["error"] = errors[i]
        _tell(study, asked, status, value, attrs)
        holding.discard(asked.trial_id)
        finished.append(Finished(asked.label, status, value if value is not None else math.nan))
    progress.finished(finished)
    return len(group)


def _should_prune(trial: Trial) -> bool:
    """The pruner's answer; a database that is away answers no (the trial goes on)."""
    try:
        return trial.should_prune()
    except Exception as error:
        if studies.is_transient(error):
            return False
        raise


def _outcome(runs: list[TrialOutcome], error: str | None) -> tuple[str, float | None]:
    """A configuration's status over its seeds, and its value (mean final metric)."""
    if error is not None:
        return "failed", None
    statuses = [r.status for r in runs]
    if "diverged" in statuses:
        return "diverged", None
    if "pruned" in statuses:
        return "pruned", None
    return "complete", statistics.fmean(r.epochs[-1].test_accuracy for r in runs)


def _run_attrs(
    asked: Asked, runs: list[TrialOutcome], seeds: Sequence[int], batch_size: int
) -> dict[str, Any]:
    """A configuration's user attributes: each seed's run, the mean curve, value per seed."""
    per_seed = {
        str(seed): run.epochs[-1].test_accuracy
        for seed, run in zip(seeds, runs, strict=False)
        if run.epochs
    }
    values = list(per_seed.values())
    return {
        **asked.identity,
        "runs": [
            {"seed": seed, "status": run.status, **outcome_attrs(run, batch_size)}
            for seed, run in zip(seeds, runs, strict=False)
        ],
        "epochs": _mean_epochs(runs),
        "value_by_seed": per_seed,
        "value_std": statistics.stdev(values) if len(values) > 1 else None,
        "seconds": round(sum(run.seconds for run in runs), 3),
    }


def _mean_epochs(runs: list[TrialOutcome]) -> list[dict[str, float]]:
    """Per epoch, the mean of each metric over the runs that reached it."""
    longest = max((len(r.epochs) for r in runs), default=0)
    means = []
    for e in range(longest):
        reached = [vars(r.epochs[e]) for r in runs if len(r.epochs) > e]
        means.append(
            {k: statistics.fmean(m[k] for m in reached) for k in reached[0]} | {"epoch": e + 1}
        )
    return means


def _compatible_groups(asked: list[Asked]) -> list[list[Asked]]:
    """Split configurations into groups that can share one batched update (per seed)."""
    groups: dict[str, list[Asked]] = defaultdict(list)
    for one in asked:
        groups[studies.batch_key(one.specs[0])].append(one)
    return list(groups.values())
