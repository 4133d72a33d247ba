"""Optimizer blocks and learning-rate schedules: what each parameter is called, its default
and its valid range come from `optsweep.optim.registry`; this module only knows the shape."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from optsweep.optim import registry
from optsweep.optim.schedules import SCHEDULE_FIELDS, SCHEDULE_KINDS, UNITS, ScheduleSpec

from .problems import (
    BAD,
    Bad,
    KeyPath,
    Report,
    check_choice,
    check_mapping,
    check_named,
    describe,
    did_you_mean,
    has_bad,
    is_int,
    is_number,
    quote_hint,
)
from .reader import YAML11_BOOLS
from .schema import Flag, Integer, Kind, Number, Numbers, OneOf, Setting, Written
from .specs import SCHEDULE_PREFIX, OptimizerBlock, RangeSpec

SCHEDULE_KEYS: dict[str, Kind] = {
    "unit": OneOf(UNITS, "unit"),
    "T_max": Integer(1, nullable=True),
    "T_0": Integer(1),
    "T_mult": Integer(1),
    "step_size": Integer(1),
    "warmup_steps": Integer(0),
    "total_steps": Integer(2, nullable=True),
    "decay_steps": Integer(1, nullable=True),
    "milestones": Numbers(integers=True),
    "boundaries": Numbers(integers=True),
    "values": Numbers(integers=False),
    "three_phase": Flag(),
    "staircase": Flag(),
    "anneal_strategy": OneOf(("cos", "linear"), "anneal_strategy"),
}
"""How each `ScheduleSpec` field is written; any other (gamma, eta_min...) is a number >= 0.
Types are checked here, ranges and what each kind requires by ``ScheduleSpec``."""
SCHEDULE_NUMBER = Number(0.0)


BLOCK: dict[str, Setting] = {
    "name": Setting(
        Written("see `optsweep optimizers`: " + ", ".join(f"`{n}`" for n in registry.OPTIMIZERS)),
        "the optimizer",
        default_text="required",
    ),
    "semantics": Setting(
        OneOf(tuple(registry.SEMANTICS)),
        "whose update rule and defaults",
        default_text="`torch`",
        note="`torch.optim` or tf.keras / Keras 3",
    ),
    "schedule": Setting(
        Written("as `schedule`"),
        "this block's schedule (null: constant)",
        default_text="the sweep's",
    ),
    "grid": Setting(
        Written("non-empty list, no repeats"),
        "a list of values per parameter; the block's trials are the cartesian product of its lists",
        default_text="—",
    ),
}
"""The keys of an optimizer block that are not parameters of its optimizer."""
BLOCK_KEYS = tuple(BLOCK)
"""Keys of an optimizer block that are not parameters of the optimizer."""


_RANGE_KEYS = ("low", "high", "log", "step")


class _Schedule(NamedTuple):
    """A schedule as written: its spec (the first value of each list) and the lists, as grid
    axes named ``schedule.<key>``."""

    spec: ScheduleSpec | None
    grid: dict[str, list[Any]]


NO_SCHEDULE = _Schedule(None, {})


def check_schedule(report: Report, path: KeyPath, value: Any) -> _Schedule | Bad:
    """``null``, a type name, or ``{type: ..., unit: epoch | step, <its keys>}``; constant
    becomes None. A list for a key that takes one value is a grid axis, crossed with the
    block's grid. Types of values are checked here, their ranges by ``ScheduleSpec``."""
    if value is None:
        return NO_SCHEDULE
    example = "{type: cosine, T_max: 3, eta_min: 0.0}"
    named = check_named(report, path, value, "type", SCHEDULE_KINDS, "schedule type", example)
    if named is BAD:
        return BAD
    kind, value = named
    before = len(report.problems)
    keys = ("unit", *SCHEDULE_FIELDS[kind])
    check_mapping(report, path, value, ("type", *keys))
    got: dict[str, Any] = {}
    grid: dict[str, list[Any]] = {}
    for key in (k for k in keys if k in value):
        where, written = (*path, key), value[key]
        if isinstance(written, list) and (
            not isinstance(SCHEDULE_KEYS.get(key), Numbers) or _is_grid(written)
        ):
            items = [_schedule_value(report, (*where, j), key, v) for j, v in enumerate(written)]
            if not items or len(set(map(repr, items))) < len(items):
                report.add(where, f"expected a list of distinct values, got {describe(written)}")
            grid[f"{SCHEDULE_PREFIX}{key}"] = items
            got[key] = items[0] if items else BAD
        else:
            got[key] = _schedule_value(report, where, key, written)
    if len(report.problems) > before or BAD in got.values() or has_bad(grid):
        return BAD
    if kind == "constant":
        return NO_SCHEDULE
    try:
        combos = itertools.product(*grid.values())
        for combo in combos:  # every point of the grid is a valid schedule
            chosen = {name[len(SCHEDULE_PREFIX) :]: v for name, v in zip(grid, combo, strict=True)}
            ScheduleSpec(kind, **{**got, **chosen})
        return _Schedule(ScheduleSpec(kind, **got), grid)
    except ValueError as error:  # a range, a required key, a list out of order
        return report.add(path, str(error))


def _is_grid(value: list[Any]) -> bool:
    """A list of lists for a key that takes a list (``milestones: [[30, 60], [50]]``)."""
    return bool(value) and all(isinstance(v, list) for v in value)


def _schedule_value(report: Report, path: KeyPath, key: str, value: Any) -> Any:
    """One schedule value, type-checked by its declared kind."""
    return SCHEDULE_KEYS.get(key, SCHEDULE_NUMBER).check(report, path, value)


@dataclass
class _Given:
    """One parameter as written in a block: fixed (``lr: 0.1``) or in the grid."""

    written: str
    canonical: tuple[str, ...]
    value: Any
    path: KeyPath
    in_grid: bool


def _check_param(report: Report, path: KeyPath, info: registry.ParamInfo, value: Any) -> Any:
    """One value of one parameter: type from the registry's kind, range from its check."""
    if value is BAD:
        return BAD
    kind = info.kind
    valid = f" (valid: {info.valid})" if info.valid else ""
    if value is None:
        message = info.check(None)
        return None if message is None else report.add(path, message)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        hint = (
            " (YAML 1.1 words yes/no/on/off are not booleans here)"
            if isinstance(value, str) and value.lower() in YAML11_BOOLS
            else ""
        )
        return report.add(
            path, f"expected true or false, got {describe(value)}; write true or false{hint}"
        )
    if kind == "int":
        if not is_int(value):
            return report.add(
                path,
                f"expected an integer{valid}, got {describe(value)}{quote_hint(value)}",
            )
    elif not is_number(value):
        return report.add(
            path, f"expected a number{valid}, got {describe(value)}{quote_hint(value)}"
        )
    elif not math.isfinite(value):
        return report.add(path, f"expected a finite number{valid}, got {describe(value)}")
    message = info.check(value)
    if message:
        return report.add(path, message if info.valid in message else message + valid)
    return float(value) if kind == "float" else value


def _block_givens(
    report: Report, path: KeyPath, block: dict[str, Any], optimizer: str
) -> list[_Given] | Bad:
    """Every parameter the block names (fixed, then grid) with its canonical names."""
    grid = block.get("grid")
    entries = [(k, v, (*path, k), False) for k, v in block.items() if k not in BLOCK_KEYS]
    if grid is BAD:
        return BAD
    if grid is not None and not isinstance(grid, dict):
        report.add(
            (*path, "grid"),
            f"expected a mapping of parameter: [values], got {describe(grid)}",
        )
    elif grid:
        entries += [(k, v, (*path, "grid", k), True) for k, v in grid.items()]
    givens: list[_Given] = []
    for written, value, where, in_grid in entries:
        try:
            canonical = tuple(registry.resolve_name(optimizer, written))
        except registry.UnknownParameterError as error:
            near = "" if in_grid else did_you_mean(written, BLOCK_KEYS)
            message = (
                f"unknown key '{written}'; {near}(block keys: {', '.join(BLOCK_KEYS)}; "
                f"any other key is a parameter of {optimizer})"
                if near
                else str(error)
            )
            report.add(where, message)
            continue
        givens.append(_Given(written, canonical, value, where, in_grid))
    return givens


def _drop_given_twice(report: Report, givens: list[_Given]) -> list[_Given]:
    """Report a parameter given under two names, or both fixed and in the grid; keep the first."""
    seen: dict[str, _Given] = {}
    kept: list[_Given] = []
    for given in givens:
        clashes: dict[int, tuple[_Given, list[str]]] = {}
        for name in given.canonical:
            if name in seen:
                clashes.setdefault(id(seen[name]), (seen[name], []))[1].append(name)
        if not clashes:
            seen.update(dict.fromkeys(given.canonical, given))
            kept.append(given)
        for first, names in clashes.values():
            a, b = report.place(first.path), report.place(given.path)
            what = " and ".join(names) + (" are" if len(names) > 1 else " is")
            if first.in_grid != given.in_grid:
                report.add(
                    given.path,
                    f"{what} both fixed ({a}) and in the grid ({b}); keep one",
                )
            else:
                report.add(
                    given.path,
                    f"{what} given twice, as '{first.written}' ({a}) and "
                    f"'{given.written}' ({b}); keep one",
                )
    return kept


def _split_value(report: Report, given: _Given, value: Any, path: KeyPath) -> list[Any] | Bad:
    """The value(s) for ``given.canonical``: a written name for n > 1 names takes a list of n."""
    n = len(given.canonical)
    if n == 1 or value is BAD:
        return [value]
    if not isinstance(value, list) or len(value) != n:
        names = ", ".join(given.canonical)
        return report.add(
            path,
            f"{given.written} takes a list of {n} values [{names}], got {describe(value)}"
            + ("; in a grid write a list of such lists" if given.in_grid else ""),
        )
    return value


def _check_block(
    report: Report,
    index: int,
    value: Any,
    default_schedule: _Schedule | Bad,
) -> OptimizerBlock | Bad:
    """One entry of ``optimizers:`` (a mapping, or just the optimizer's name)."""
    path: KeyPath = ("optimizers", index)
    example = "{name: adam, learning_rate: 0.001, grid: {...}}"
    before = len(report.problems)
    named = check_named(
        report, path, value, "name", tuple(registry.OPTIMIZERS), "optimizer", example
    )
    if named is BAD:
        return BAD
    optimizer, value = named
    semantics = check_choice(
        report,
        (*path, "semantics"),
        value.get("semantics", "torch"),
        tuple(registry.SEMANTICS),
        "semantics",
    )
    schedule = (
        check_schedule(report, (*path, "schedule"), value["schedule"])
        if "schedule" in value
        else default_schedule
    )
    if semantics is BAD:
        return BAD
    givens = _block_givens(report, path, value, optimizer)
    if givens is BAD:
        return BAD
    params = registry.OPTIMIZERS[optimizer].params
    fixed: dict[str, Any] = {}
    grid: dict[str, list[Any]] = {}
    display: dict[str, str] = {}
    linked: list[tuple[str, ...]] = []
    ranges: dict[str, RangeSpec] = {}
    for given in _drop_given_twice(report, givens):
        for name in given.canonical:
            display[name] = given.written if len(given.canonical) == 1 else name
        if not given.in_grid:
            parts = _split_value(report, given, given.value, given.path)
            if parts is not BAD:
                for name, part in zip(given.canonical, parts, strict=True):
                    fixed[name] = _check_param(report, given.path, params[name], part)
            continue
        if isinstance(given.value, dict):
            found = _check_range(report, given, params)
            if found is not BAD:
                ranges[given.canonical[0]] = found
            continue
        items = _check_grid_list(report, given)
        columns: list[list[Any]] = [[] for _ in given.canonical]
        for j, item in enumerate([] if items is BAD else items):
            parts = _split_value(report, given, item, (*given.path, j))
            if parts is BAD:
                continue
            for column, name, part in zip(columns, given.canonical, parts, strict=True):
                column.append(_check_param(report, (*given.path, j), params[name], part))
        grid.update(zip(given.canonical, columns, strict=True))
        if len(given.canonical) > 1:
            linked.append(given.canonical)
        _check_grid_distinct(report, given, columns)
    if len(report.problems) > before or schedule is BAD or has_bad(value):
        return BAD
    grid.update(schedule.grid)
    display.update({name: name for name in schedule.grid})
    return OptimizerBlock(
        optimizer, semantics, fixed, grid, display, schedule.spec, index, tuple(linked), ranges
    )


def _check_range(
    report: Report, given: _Given, params: Mapping[str, registry.ParamInfo]
) -> RangeSpec | Bad:
    """A grid entry ``{low, high, log, step}``: a search distribution (``optsweep search``)."""
    path, name = given.path, given.written
    if not report.search:
        return report.add(
            path,
            f"a range {{low, high}} is for optsweep search (validate --search checks it as "
            f"one); optsweep run needs a list of values, e.g. {name}: [0.01, 0.001]",
        )
    if len(given.canonical) != 1:
        names = " and ".join(given.canonical)
        return report.add(path, f"{name} cannot be a range; give {names} ranges of their own")
    info = params[given.canonical[0]]
    if info.kind == "bool":
        return report.add(path, f"{name} is true or false: give a list, e.g. {name}: [true, false]")
    value = check_mapping(report, path, given.value, _RANGE_KEYS, {"low": "1.0e-5", "high": "0.1"})
    if value is BAD or "low" not in value or "high" not in value:
        return BAD
    low = _check_param(report, (*path, "low"), info, value["low"])
    high = _check_param(report, (*path, "high"), info, value["high"])
    log = value.get("log", False)
    if not isinstance(log, bool):
        return report.add((*path, "log"), f"expected true or false, got {describe(log)}")
    step = value.get("step")
    if step is not None and (not is_number(step) or step <= 0 or log):
        return report.add(
            (*path, "step"), f"expected a number > 0 without log: true, got {describe(step)}"
        )
    if BAD in (low, high):
        return BAD
    if low >= high:
        return report.add(path, f"low ({low}) must be below high ({high})")
    if log and low <= 0:
        return report.add((*path, "low"), f"a log range needs low > 0, got {low}")
    return RangeSpec(low, high, log, step, info.kind)


def _check_grid_list(report: Report, given: _Given) -> list[Any] | Bad:
    """A grid entry must be a non-empty list."""
    value = given.value
    if value is BAD:
        return BAD
    if not isinstance(value, list):
        example = json.dumps(value) if not isinstance(value, dict) else "..."
        return report.add(
            given.path,
            f"a grid entry must be a list of values, got {describe(value)}; write "
            f"{given.written}: [{example}], or move it out of grid to fix it",
        )
    if not value:
        return report.add(given.path, "empty list; give at least one value")
    return value


def _check_grid_distinct(report: Report, given: _Given, columns: list[list[Any]]) -> None:
    """The same value (or tuple) twice in one grid list would run the same trial twice."""
    rows = list(zip(*columns, strict=True))
    for j, row in enumerate(rows):
        if BAD not in row and row in rows[:j]:
            shown = json.dumps(list(row) if len(row) > 1 else row[0])
            report.add((*given.path, j), f"value {shown} is listed twice; each grid value once")
            return


def check_optimizers(
    report: Report, value: Any, default_schedule: _Schedule | Bad
) -> list[OptimizerBlock] | Bad:
    path: KeyPath = ("optimizers",)
    if value is BAD:
        return BAD
    if not isinstance(value, list) or not value:
        return report.add(
            path,
            f"expected a non-empty list of optimizer blocks (- name: adam ...), got "
            f"{describe(value)}",
        )
    blocks = [_check_block(report, i, item, default_schedule) for i, item in enumerate(value)]
    return BAD if BAD in blocks else blocks
