"""Blocks x grid points x seeds into `TrialSpec` s, and the stable keys that name them."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from optsweep.optim import registry
from optsweep.optim.schedules import ScheduleSpec
from optsweep.values import fmt

from .problems import Report
from .specs import SCHEDULE_PREFIX, OptimizerBlock, SweepSpec, TrainSpec, TrialSpec


def check_size(
    report: Report,
    tree: dict[str, Any],
    blocks: list[OptimizerBlock],
    train: TrainSpec,
    max_trials: int,
) -> bool:
    """The sweep must not have more trials than ``max_trials``."""
    sizes = [block.size() for block in blocks]
    total = sum(sizes) * len(train.seeds)
    if total <= max_trials:
        return True
    parts = ", ".join(f"optimizers[{b.index}]: {n}" for b, n in zip(blocks, sizes, strict=True))
    report.add(
        ("max_trials",) if "max_trials" in tree else ("optimizers",),
        f"the sweep has {total} trials ({sum(sizes)} grid points [{parts}] x "
        f"{len(train.seeds)} seeds), more than max_trials = {max_trials}; shrink the grid or "
        f"raise max_trials",
    )
    return False


def trials(
    blocks: Sequence[OptimizerBlock], seeds: Sequence[int], report: Report | None
) -> list[TrialSpec]:
    """Expand blocks x seeds (seed outermost), resolving each grid point once.

    ``registry.resolve`` errors (cross-parameter rules) go to ``report``, the first failing
    point of each block with a count of the others; without a report they propagate.
    """
    resolved = [[_resolve(block, point, report) for point in block.points()] for block in blocks]
    if report is not None:
        _report_unresolved(report, blocks, resolved)
    trials: list[TrialSpec] = []
    for seed in seeds:
        for block, points in zip(blocks, resolved, strict=True):
            for params, hyperparameters in points:
                if isinstance(hyperparameters, ValueError):
                    continue
                trials.append(_trial(block, params, hyperparameters, seed))
    return trials


def split_schedule(
    block: OptimizerBlock, params: Mapping[str, Any]
) -> tuple[dict[str, Any], ScheduleSpec | None]:
    """A point's optimizer parameters, and the block's schedule with the point's
    ``schedule.<key>`` values in it."""
    own = {k: v for k, v in params.items() if not k.startswith(SCHEDULE_PREFIX)}
    chosen = {k[len(SCHEDULE_PREFIX) :]: v for k, v in params.items() if k not in own}
    if not chosen or block.schedule is None:
        return own, block.schedule
    lists = {k: tuple(v) for k, v in chosen.items() if isinstance(v, list)}
    return own, dataclasses.replace(block.schedule, **{**chosen, **lists})


def _trial(
    block: OptimizerBlock, params: dict[str, Any], hyperparameters: dict[str, Any], seed: int
) -> TrialSpec:
    own, schedule = split_schedule(block, params)
    return TrialSpec(
        optimizer=block.name,
        semantics=block.semantics,
        params=dict(params),
        hyperparameters=dict(hyperparameters),
        display={name: block.display[name] for name in params},
        seed=seed,
        schedule=schedule,
        block=block.index,
        key=_trial_key(block, own, schedule, seed),
    )


def make_trial(block: OptimizerBlock, params: Mapping[str, Any], seed: int) -> TrialSpec:
    """The trial of ``block`` at ``params`` (canonical names; fixed values are added).

    Raises:
        ValueError: the registry's message when the combination is invalid.
    """
    given = {**block.fixed, **params}
    own, _ = split_schedule(block, given)
    return _trial(block, given, registry.resolve(block.name, block.semantics, own), seed)


def configuration_key(block: OptimizerBlock, params: Mapping[str, Any]) -> str:
    """The key of ``block`` at ``params`` over every seed: a trial's key without its seed
    (what a search trains once per seed, and what makes two suggestions the same)."""
    own, schedule = split_schedule(block, {**block.fixed, **params})
    return _trial_key(block, own, schedule, None)


def _resolve(
    block: OptimizerBlock, point: dict[str, Any], report: Report | None
) -> tuple[dict[str, Any], dict[str, Any] | ValueError]:
    """A grid point's given params and ``registry.resolve`` of them (or its ValueError)."""
    params = {**block.fixed, **point}
    try:
        return params, registry.resolve(
            block.name, block.semantics, split_schedule(block, params)[0]
        )
    except ValueError as error:
        if report is None:
            raise
        return params, error


def _report_unresolved(
    report: Report,
    blocks: Sequence[OptimizerBlock],
    resolved: Sequence[Sequence[tuple[dict[str, Any], dict[str, Any] | ValueError]]],
) -> None:
    """One problem per block whose grid points the registry rejects."""
    for block, points in zip(blocks, resolved, strict=True):
        failed = [(params, r) for params, r in points if isinstance(r, ValueError)]
        if not failed:
            continue
        params, error = failed[0]
        where = ", ".join(f"{block.display[n]}={json.dumps(params[n])}" for n in block.grid)
        if where:
            where = f" (at grid point {where}"
            where += f", and {len(failed) - 1} more of {len(points)})" if len(failed) > 1 else ")"
        report.add(("optimizers", block.index), f"{error}{where}")


def _trial_key(
    block: OptimizerBlock,
    params: Mapping[str, Any],
    schedule: ScheduleSpec | None,
    seed: int | None,
) -> str:
    """Canonical JSON of what makes a trial: optimizer, semantics, given params, schedule, seed
    (a schedule from a grid and the same one written out give the same key)."""
    record = {
        "optimizer": block.name,
        "semantics": block.semantics,
        "params": dict(sorted(params.items())),
        "schedule": schedule.record() if schedule is not None else None,
        "seed": seed,
    }
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


def check_unique(report: Report, trials: list[TrialSpec]) -> None:
    """Two blocks that produce the same trial would run it twice."""
    first: dict[str, int] = {}
    for trial in trials:
        if trial.key in first and first[trial.key] != trial.block:
            report.add(
                ("optimizers", trial.block),
                f"repeats a trial of optimizers[{first[trial.key]}] ({trial.key}); "
                f"remove one of them",
            )
            return
        first.setdefault(trial.key, trial.block)


def expand(spec: SweepSpec) -> list[TrialSpec]:
    """Every trial of the sweep: for each seed, each block's grid points in file order.

    Seeds are outermost, so the first ``len(trials) / len(seeds)`` trials cover the whole grid
    once. Within a block the grid is a cartesian product with the last grid name varying
    fastest; each trial carries only its own optimizer's parameters.
    """
    return trials(spec.optimizers, spec.train.seeds, report=None)


def trial_label(optimizer: str, semantics: str, params: Mapping[str, Any], seed: int) -> str:
    """``adam/keras learning_rate=0.001 beta_1=0.9 seed=0``: one trial on one line."""
    return " ".join(
        [f"{optimizer}/{semantics}", *(f"{k}={fmt(v)}" for k, v in params.items()), f"seed={seed}"]
    )


def structure_key(spec: TrialSpec) -> str:
    """What trials must share to be updated by one kernel call: the optimizer, its convention
    and its structural values (flags, integer knobs, whether an optional knob is set).
    Continuous hyperparameters (learning rate, betas, epsilon…) may differ."""
    info = registry.OPTIMIZERS[spec.optimizer]
    structural = {
        name: value
        for name, value in sorted(spec.hyperparameters.items())
        if info.params[name].structural or value is None
    }
    return json.dumps(
        {"optimizer": spec.optimizer, "semantics": spec.semantics, "structural": structural},
        sort_keys=True,
        default=str,
    )


def trains_beside_others(spec: TrialSpec) -> bool:
    """Whether the trial can share a batch with trials of other rules (one forward and
    backward for all, each rule updating its own rows): it is evaluated where it takes its
    gradients (no average of the weights, not Schedule-Free's x) and its loss is not scaled."""
    hp = spec.hyperparameters
    return not (
        registry.OPTIMIZERS[spec.optimizer].evaluates_elsewhere
        or hp.get("use_ema")
        or hp.get("dynamic_loss_scale")
        or hp.get("loss_scale_factor") is not None
    )


def identity(spec: TrialSpec) -> dict[str, Any]:
    """What a report needs to name a trial: optimizer, semantics, YAML-named params, seed."""
    params = {spec.display.get(k, k): v for k, v in spec.params.items()}
    return {"optimizer": spec.optimizer, "semantics": spec.semantics, "params": params}


def label_of(spec: TrialSpec) -> str:
    """The trial's one-line label, parameters under their YAML names."""
    return trial_label(spec.optimizer, spec.semantics, identity(spec)["params"], spec.seed)
