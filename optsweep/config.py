"""Sweep configuration: a YAML file becomes a validated `SweepSpec`, then a list of `TrialSpec`.

One sweep per file::

    name: adam                    # names results/<name>/
    dataset: mnist
    subset: {train: null, test: null}
    data: {normalize: standard, drop_last: false}   # the data protocol
    model: mlp                    # or {name: mlp, hidden: [256, 128], init: torch}
    train: {epochs: 3, batch_size: 128, seeds: [0], device: auto}
    schedule: {type: cosine, T_max: 3, eta_min: 0.0}
    max_trials: 10000
    optimizers:
      - name: adam
        semantics: keras
        learning_rate: 0.001      # fixed values, keras or torch names
        grid:                     # lists: cartesian product within the block
          beta_1: [0.9, 0.85]
          amsgrad: [true, false]

`load_sweep` collects *every* problem and raises one `ConfigError`; each `Problem` prints as
one line ``file:line: key.path: message`` saying what is wrong and what would be valid. What a
parameter is called, its default and its valid range come from `optsweep.optim.registry`;
this module only knows the shape of the file.

YAML is read by PyYAML's safe loader with these deliberate departures from YAML 1.1, because
each 1.1 rule silently changes what a sweep file means:

- ``1e-3``, ``1E-5``, ``5e+2`` are floats (1.1 reads them as strings), as are ``1.0e3``, ``.5``.
- Only ``true``/``false`` (any case) are booleans; ``yes``/``no``/``on``/``off``/``y``/``n``
  stay strings, so ``amsgrad: no`` is reported ("write true or false") and ``name: no`` is 'no'.
- An integer with a leading zero (``0755``, ``010``) is an **error** (1.1 reads it as octal,
  a reader expects decimal); write ``755``, or ``0o755`` if octal is really meant.
- ``12:30`` (1.1 base 60) and dates stay strings; ``.inf``/``.nan`` are floats but are
  rejected wherever a hyperparameter or a schedule value is expected.
- A key given twice in one mapping is an error naming both lines (1.1 keeps the last one).
- Merge keys (``<<: *defaults``) and anchors work as usual; other tags (``!!python/...``,
  ``!!binary``, ``!!set``...) are rejected.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import itertools
import json
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import yaml

from optsweep.catalog import DATASET_SIZES, DATASETS, MODELS, NORMALIZATIONS, TARGET_ACCURACY
from optsweep.optim import registry
from optsweep.optim.schedules import SCHEDULE_FIELDS, SCHEDULE_KINDS, UNITS, ScheduleSpec

SCHEDULE_PREFIX = "schedule."
"""Grid names of schedule values (``schedule.warmup_steps``), beside the optimizer's."""

__all__ = [
    "ConfigError",
    "DataSpec",
    "ModelSpec",
    "OptimizerBlock",
    "Override",
    "Problem",
    "RangeSpec",
    "ReportSpec",
    "SearchSpec",
    "SweepSpec",
    "Target",
    "TrainSpec",
    "TrialSpec",
    "expand",
    "fmt",
    "identity",
    "label_of",
    "load_sweep",
    "make_trial",
    "parse_override",
    "parse_target",
    "target_of",
    "trial_label",
]

KeyPath = tuple[str | int, ...]
"""Where a value sits in the tree: ``("optimizers", 0, "grid", "beta_1")``."""

OVERRIDE_FILE = "--set"
"""What `Problem.file` says for a value that came from a command-line override."""

DEVICES_TEXT = "auto, cpu, cuda or cuda:N"
PRECISIONS = ("fp32", "bf16", "fp16")
# How each `ScheduleSpec` field is written: an integer >= n (None: null allowed too), a number,
# a list of integers or numbers, a boolean, or one of some words.
_SCHEDULE_INTS: dict[str, tuple[int, bool]] = {
    "T_max": (1, True),
    "T_0": (1, False),
    "T_mult": (1, False),
    "step_size": (1, False),
    "warmup_steps": (0, False),
    "total_steps": (2, True),
    "decay_steps": (1, True),
}
_SCHEDULE_LISTS = {"milestones": "integers", "boundaries": "integers", "values": "numbers"}
_SCHEDULE_BOOLS = ("three_phase", "staircase")
_SCHEDULE_WORDS = {"anneal_strategy": ("cos", "linear"), "unit": UNITS}

BLOCK_KEYS = ("name", "semantics", "schedule", "grid")
"""Keys of an optimizer block that are not parameters of the optimizer."""

_MAX_NODES = 200_000  # alias expansion guard ("billion laughs")
_MAX_DEPTH = 64  # nesting a sweep file never needs, checked before PyYAML recurses into it
_MAX_INT = 10**9  # no count in a sweep file is larger (images, steps, trials)
_MAX_EPOCHS = 100_000


# ───────────────────────────── public records ─────────────────────────────


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a sweep, printed as one line ``file:line: key: message``.

    Attributes:
        file: the config file as given on the command line, or ``--set`` for an override.
        line: 1-based line in ``file``; None where there is none (unreadable file, ``--set``).
        key: key path such as ``optimizers[0].grid.beta_1``; "" for the file as a whole.
        message: what is wrong and what would be valid.
    """

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        text = f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"
        return text.replace("\r", "\\r").replace("\n", "\\n")  # one line, whatever the input


class ConfigError(Exception):
    """Every problem found in a sweep file and its overrides; ``str()`` is one line each.

    Attributes:
        problems: the problems, in file order (overrides last).
    """

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class Override:
    """One ``--set key.path=value`` from the command line.

    Attributes:
        path: the key path; list indices are ints (``optimizers[0]`` and ``optimizers.0``
            both give ``("optimizers", 0)``).
        text: the value as typed, parsed with the same YAML rules as the file.
        source: the whole argument, for messages.
    """

    path: KeyPath
    text: str
    source: str


@dataclass(frozen=True)
class ModelSpec:
    """The model every trial trains.

    Attributes:
        name: one of `MODELS` (``logreg``, ``mlp``, ``cnn``, ``2c2d``, ``3c3d``).
        options: keyword options for the model builder (``{"hidden": [256, 128]}``), checked
            by the builder, not here.
    """

    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataSpec:
    """How the dataset's pixels and batches reach the model (the ``data:`` section).

    The defaults are what optsweep did before the section existed; DeepOBS's (Fashion-)MNIST
    protocol is ``{normalize: unit, drop_last: true}``.

    Attributes:
        normalize: ``standard`` (default): ``(x / 255 - mean) / std`` per channel, with the
            training set's mean and std; ``unit``: ``x / 255`` only.
        drop_last: leave out each epoch's last, partial batch, as a DataLoader with
            ``drop_last=True`` does (default false: it is trained on).
    """

    normalize: str = "standard"
    drop_last: bool = False


@dataclass(frozen=True)
class TrainSpec:
    """How each trial trains; shared by every trial of the sweep.

    Attributes:
        epochs: passes over the training set, >= 1 (default 3).
        batch_size: training batch size, >= 1 (default 128).
        seeds: distinct seeds >= 0, each grid point runs once per seed (default ``(0,)``).
        device: ``auto`` (cuda when available), ``cpu``, ``cuda`` or ``cuda:N`` (default auto).
        eval_batch_size: batch size for evaluation, >= 1 (default 1000).
        log_every: the history keeps the mean training loss of each window of this many
            steps, >= 1 (default 10).
        trials_per_batch: K trials trained together; None lets the engine choose (default).
        precision: ``fp32`` (default), ``bf16`` or ``fp16``.
    """

    epochs: int = 3
    batch_size: int = 128
    seeds: tuple[int, ...] = (0,)
    device: str = "auto"
    eval_batch_size: int = 1000
    log_every: int = 10
    trials_per_batch: int | None = None
    precision: str = "fp32"


@dataclass(frozen=True)
class RangeSpec:
    """A search range written in a grid: ``{low: 1.0e-5, high: 1.0e-1, log: true}``.

    Attributes:
        low: smallest value (inclusive).
        high: largest value (inclusive).
        log: sample on a log scale (low must be > 0).
        step: grid step for int or float ranges; None for continuous floats (ints: 1).
        kind: ``float`` or ``int``, from the parameter's registry kind.
    """

    low: float
    high: float
    log: bool = False
    step: float | None = None
    kind: str = "float"


SAMPLERS = ("tpe", "cmaes", "random", "qmc", "grid")
PRUNERS = ("median", "hyperband", "successive_halving", "none")
METRICS = ("test", "validation")


@dataclass(frozen=True)
class SearchSpec:
    """How ``optsweep search`` explores the space (the ``search:`` section).

    Attributes:
        trials: how many trials in total (re-running continues up to it) (default 30).
        sampler: ``tpe`` (default), ``cmaes``, ``random``, ``qmc`` or ``grid``.
        pruner: ``median`` (default), ``hyperband``, ``successive_halving`` or ``none``.
        seed: the sampler's seed: the same config and seed give the same suggestions
            (default 0).
        metric: ``test`` (default): prune and rank on the test set; ``validation``: hold out
            the last ``validation_size`` training images and use them instead.
        validation_size: images held out for ``metric: validation`` (default 5000).
        batch: trials asked from the sampler and trained together at a time (default 8).
    """

    trials: int = 30
    sampler: str = "tpe"
    pruner: str = "median"
    seed: int = 0
    metric: str = "test"
    validation_size: int = 5000
    batch: int = 8


# What a target can be set on: the epoch metrics, and whether a trial reaches it at or above
# the value (accuracy) or at or below it (losses).
DEFAULT_TARGET_ACCURACY = 0.9  # a dataset `TARGET_ACCURACY` does not name
TARGET_METRICS: dict[str, str] = {"test_accuracy": "max", "test_loss": "min", "train_loss": "min"}


@dataclass(frozen=True)
class Target:
    """Speed to target's target: the first epoch whose ``metric`` is at least (accuracy) or at
    most (losses) ``value``.

    Attributes:
        metric: one of `TARGET_METRICS` (default ``test_accuracy``).
        value: the level to reach.
    """

    metric: str
    value: float

    def reached(self, epoch: Mapping[str, float]) -> bool:
        """Whether an epoch's metrics reach the target (a missing or NaN metric does not)."""
        got = epoch.get(self.metric, math.nan)
        if TARGET_METRICS[self.metric] == "max":
            return got >= self.value
        return got <= self.value

    def text(self) -> str:
        """``test_accuracy ≥ 0.97``."""
        sign = "≥" if TARGET_METRICS[self.metric] == "max" else "≤"
        return f"{self.metric} {sign} {fmt(self.value)}"


@dataclass(frozen=True)
class ReportSpec:
    """The ``report:`` section: how results are read, never what a trial trains (changing it
    keeps every trial of a study).

    Attributes:
        target: speed to target's target; written ``target: 0.97`` (test accuracy) or
            ``target: {metric: test_loss, value: 0.1}``; default: test accuracy at the
            dataset's `TARGET_ACCURACY`.
    """

    target: Target


def target_of(raw: Mapping[str, Any]) -> Target:
    """The target of a sweep's plain mapping (as a study stores it), defaults filled in, read
    by the same check as the file (`_check_report`).

    A study whose stored config has no ``report:`` section (written before there was one)
    gets the dataset's default.
    """
    dataset = raw.get("dataset")
    checked = _check_report(_Report("<stored config>"), raw.get("report"), str(dataset))
    if isinstance(checked, ReportSpec):
        return checked.target
    return Target("test_accuracy", TARGET_ACCURACY.get(str(dataset), DEFAULT_TARGET_ACCURACY))


def parse_target(text: str) -> Target:
    """A target as the command line writes it: ``0.98`` (test accuracy) or ``METRIC=VALUE``.

    Raises:
        ValueError: saying what would be valid.
    """
    metric, _, value = text.rpartition("=")
    metric = metric.strip() or "test_accuracy"
    if metric not in TARGET_METRICS:
        raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(TARGET_METRICS)}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"expected a number after the metric, got {value!r}") from None
    if not math.isfinite(number) or number < 0 or (metric == "test_accuracy" and number > 1):
        raise ValueError(f"expected a {metric} value >= 0 (accuracy <= 1), got {value}")
    return Target(metric, number)


@dataclass(frozen=True)
class OptimizerBlock:
    """One entry of ``optimizers:``: an optimizer, fixed values and a grid.

    All parameter names are canonical registry names (``learning_rate``, ``beta_1``...).

    Attributes:
        name: registry name of the optimizer (``adam``).
        semantics: ``torch`` or ``keras``.
        fixed: parameter -> value, the same for every grid point.
        grid: parameter -> list of values; the block's points are their cartesian product,
            except for `linked` names.
        display: parameter -> the name written in the YAML (``lr``); a name that stood for
            several parameters (``betas``) displays as the canonical names.
        schedule: the learning-rate schedule in force (this block's, else the sweep's);
            None for a constant rate.
        index: position in ``optimizers:``.
        linked: groups of grid names whose lists go together item by item instead of being
            crossed; written as one name holding tuples (``betas: [[0.9, 0.999], [0.8, 0.99]]``
            gives ``(("beta_1", "beta_2"),)``). A consumer that ignores it sees a superset.
        ranges: parameter -> search range, for names whose grid entry is ``{low, high}``
            (only ``optsweep search`` accepts them; ``run`` needs lists).
    """

    name: str
    semantics: str
    fixed: dict[str, Any]
    grid: dict[str, list[Any]]
    display: dict[str, str]
    schedule: ScheduleSpec | None
    index: int
    linked: tuple[tuple[str, ...], ...] = ()
    ranges: dict[str, RangeSpec] = field(default_factory=dict)

    def points(self) -> Iterator[dict[str, Any]]:
        """Yield each grid point (grid values only), in YAML order, last name fastest."""
        axes = _grid_axes(self.grid, self.linked)
        for combo in itertools.product(*(values for _, values in axes)):
            point: dict[str, Any] = {}
            for (names, _), item in zip(axes, combo, strict=True):
                point.update(zip(names, item, strict=True))
            yield point

    def size(self) -> int:
        """Number of grid points of this block (1 without a grid)."""
        return math.prod(len(values) for _, values in _grid_axes(self.grid, self.linked))


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep file.

    Attributes:
        name: sweep name, ``[A-Za-z0-9_.-]+``; results go to ``results/<name>/``.
        dataset: one of `DATASETS`.
        subset_train: train on the first N training images only; None for all.
        subset_test: evaluate on the first N test images only; None for all.
        model: the model (default ``mlp``).
        train: training settings (every key has a default, see `TrainSpec`).
        optimizers: the optimizer blocks, in file order.
        max_trials: the largest number of trials the sweep may have (default 10000).
        source: the file it was read from.
        raw: the plain mapping as read, with overrides applied (write it as config.yaml;
            loading that file again gives the same sweep).
        search: the ``search:`` section (defaults when absent).
        data: the ``data:`` section (defaults when absent).
        report: the ``report:`` section (the dataset's default target when absent).
    """

    name: str
    dataset: str
    subset_train: int | None
    subset_test: int | None
    model: ModelSpec
    train: TrainSpec
    optimizers: tuple[OptimizerBlock, ...]
    max_trials: int
    source: Path
    raw: dict[str, Any]
    search: SearchSpec = field(default_factory=SearchSpec)
    data: DataSpec = field(default_factory=DataSpec)
    report: ReportSpec = field(
        default_factory=lambda: ReportSpec(Target("test_accuracy", DEFAULT_TARGET_ACCURACY))
    )


@dataclass(frozen=True)
class TrialSpec:
    """One training run: an optimizer at one grid point with one seed.

    Attributes:
        optimizer: registry name.
        semantics: ``torch`` or ``keras``.
        params: canonical name -> value, only what the YAML gave (fixed + this grid point).
        hyperparameters: ``registry.resolve`` of ``params``: defaults filled in, validated.
        display: canonical name -> name as written in the YAML, for ``params``.
        seed: the seed.
        schedule: learning-rate schedule, None for constant.
        block: index of the optimizer block it came from.
        key: stable id of the grid point: canonical JSON of optimizer, semantics, given
            params, schedule and seed; the same across runs and processes.
    """

    optimizer: str
    semantics: str
    params: dict[str, Any]
    hyperparameters: dict[str, Any]
    display: dict[str, str]
    seed: int
    schedule: ScheduleSpec | None
    block: int
    key: str


# ───────────────────────────── YAML reading ─────────────────────────────

_TAG = "tag:yaml.org,2002:"
_INT_RE = r"[-+]?(?:[0-9][0-9_]*|0x[0-9a-fA-F_]+|0o[0-7_]+|0b[01_]+)"
_FLOAT_RE = (
    r"[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
)
_LEADING_ZERO = re.compile(r"[-+]?0[0-9]+")
_YAML11_BOOLS = frozenset({"yes", "no", "on", "off", "y", "n"})


class _Loader(yaml.SafeLoader):
    """SafeLoader whose implicit types are YAML 1.2-like (see the module docstring)."""

    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, re.Pattern[str]]]]] = {}


for _tag, _regexp, _first in (
    ("bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    ("int", _INT_RE, "-+0123456789"),
    ("float", _FLOAT_RE, "-+0123456789."),
    ("null", r"~|null|Null|NULL|", ["~", "n", "N", ""]),
    ("merge", r"<<", "<"),
):
    _Loader.add_implicit_resolver(_TAG + _tag, re.compile(f"^(?:{_regexp})$"), list(_first))


class _Bad:
    """Stands in for a value already reported as a problem, so it is not reported twice."""

    def __repr__(self) -> str:
        return "<bad>"


BAD = _Bad()


class _Report:
    """Problems found so far, and the file and line of every key path."""

    def __init__(self, file: str, search: bool = False) -> None:
        self.file = file
        self.search = search  # ranges allowed (optsweep search), not only lists
        self.origins: dict[KeyPath, tuple[str, int | None]] = {(): (file, 1)}
        self.problems: list[Problem] = []

    def where(self, path: KeyPath) -> tuple[str, int | None]:
        """File and line of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.origins:
                return self.origins[path[:end]]
        return self.file, None

    def line(self, path: KeyPath) -> int | None:
        """Line of ``path`` (or its nearest ancestor)."""
        return self.where(path)[1]

    def place(self, path: KeyPath) -> str:
        """``line 12``, or ``--set`` for a value from an override, for messages."""
        file, line = self.where(path)
        return f"line {line}" if line is not None else file

    def add(self, path: KeyPath, message: str) -> _Bad:
        """Record a problem at ``path``; returns `BAD` for the caller to return."""
        file, line = self.where(path)
        self.problems.append(Problem(file, line, format_path(path), message))
        return BAD

    def add_at(self, file: str, line: int | None, message: str) -> None:
        """Record a problem about the file as a whole."""
        self.problems.append(Problem(file, line, "", message))

    def forget(self, path: KeyPath) -> None:
        """Drop the origins of ``path`` and everything under it (before replacing it)."""
        n = len(path)
        for key in [k for k in self.origins if k[:n] == path and k]:
            del self.origins[key]


def format_path(path: KeyPath) -> str:
    """``("optimizers", 0, "grid", "beta_1")`` -> ``optimizers[0].grid.beta_1``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class _Builder:
    """Turns composed YAML nodes into plain Python values, recording each path's line."""

    def __init__(self, report: _Report, file: str, with_lines: bool) -> None:
        self.report = report
        self.file = file
        self.with_lines = with_lines
        self.nodes = 0
        self.stack: set[int] = set()

    def line(self, node: yaml.Node) -> int | None:
        return node.start_mark.line + 1 if self.with_lines else None

    def origin(self, path: KeyPath, node: yaml.Node) -> None:
        self.report.origins[path] = (self.file, self.line(node))

    def problem(self, node: yaml.Node, path: KeyPath, message: str) -> None:
        """A problem at ``node``'s own line (without recording it as ``path``'s origin)."""
        self.report.problems.append(Problem(self.file, self.line(node), format_path(path), message))

    def build(self, node: yaml.Node, path: KeyPath) -> Any:
        self.nodes += 1
        if self.nodes > _MAX_NODES:
            if self.nodes == _MAX_NODES + 1:
                self.report.add(path, f"more than {_MAX_NODES} values (aliases expanding?)")
            return BAD
        if id(node) in self.stack:
            return self.report.add(path, "an alias refers to itself; write the value out")
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        self.stack.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode) and node.tag == _TAG + "seq":
                return [self.item(child, (*path, i)) for i, child in enumerate(node.value)]
            if isinstance(node, yaml.MappingNode) and node.tag == _TAG + "map":
                return self.mapping(node, path)
            return self.report.add(path, f"unsupported YAML tag {_short_tag(node.tag)}")
        finally:
            self.stack.discard(id(node))

    def item(self, node: yaml.Node, path: KeyPath) -> Any:
        self.origin(path, node)
        return self.build(node, path)

    def mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                merged.extend(self.merge_pairs(value_node, path))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(key_node, path, "a key must be a plain name, not a list or mapping")
                continue
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in first_line:
                message = (
                    f"duplicate key '{key}' (first at line {first_line[key]}, again at line "
                    f"{line}); YAML would silently keep the last: keep one"
                )
                self.problem(key_node, (*path, key), message)
                continue
            first_line[key] = line
            self.origin((*path, key), key_node)
            result[key] = self.build(value_node, (*path, key))
        for key_node, value_node in merged:
            key = str(key_node.value)
            if key not in result:
                self.origin((*path, key), key_node)
                result[key] = self.build(value_node, (*path, key))
        return result

    def merge_pairs(self, node: yaml.Node, path: KeyPath) -> list[tuple[yaml.Node, yaml.Node]]:
        """The key/value pairs a ``<<:`` merge brings in (earlier sources win)."""
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        pairs: list[tuple[yaml.Node, yaml.Node]] = []
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                self.problem(source, path, "<< must merge a mapping or a list of mappings")
                continue
            pairs.extend(p for p in source.value if isinstance(p[0], yaml.ScalarNode))
        return pairs

    def scalar(self, node: yaml.ScalarNode, path: KeyPath) -> Any:
        tag, text = node.tag, node.value
        if tag == _TAG + "str":
            return text
        if tag == _TAG + "null":
            return None
        if tag == _TAG + "bool":
            if text.lower() in ("true", "false"):
                return text.lower() == "true"
            return self.report.add(path, f"!!bool accepts true or false, got {text!r}")
        if tag == _TAG + "int":
            return self.integer(text, path)
        if tag == _TAG + "float":
            return self.real(text, path)
        return self.report.add(path, f"unsupported YAML tag {_short_tag(tag)} on {text!r}")

    def integer(self, text: str, path: KeyPath) -> int | _Bad:
        digits = text.replace("_", "")
        if _LEADING_ZERO.fullmatch(digits):
            sign = digits[0] if digits[0] in "+-" else ""
            plain = digits.lstrip("+-").lstrip("0") or "0"
            octal = f" or {sign}0o{plain} (octal)" if set(plain) <= set("01234567") else ""
            return self.report.add(
                path,
                f"{text} has a leading zero, which YAML 1.1 reads as octal; write "
                f"{sign}{plain} (decimal){octal}",
            )
        try:
            return int(digits, 0)
        except ValueError:
            return self.report.add(path, f"cannot read {text!r} as an integer")

    def real(self, text: str, path: KeyPath) -> float | _Bad:
        lowered = text.replace("_", "").lower()
        specials = {".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf, ".nan": math.nan}
        if lowered in specials:
            return specials[lowered]
        try:
            return float(lowered)
        except ValueError:
            return self.report.add(path, f"cannot read {text!r} as a number")


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_TAG) :] if tag.startswith(_TAG) else tag


def _yaml_error_message(error: yaml.YAMLError) -> tuple[int | None, str]:
    """Line and one-line text of a PyYAML error."""
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        text = "; ".join(p for p in (error.context, error.problem) if p)
        start = error.context_mark
        if start is not None and mark is not None and start.line != mark.line:
            text += f" (the construct began at line {start.line + 1})"
        if "'\\t'" in text:
            text += "; indent with spaces, not tabs"
        return (mark.line + 1 if mark else None), f"YAML syntax error: {text}"
    return None, f"YAML syntax error: {error}"


def _too_deep(text: str) -> int | None:
    """The line where ``text`` nests deeper than ``_MAX_DEPTH``, or None (read as a stream of
    events, which does not recurse; syntax errors are left to the composer)."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > _MAX_DEPTH:
                    return event.start_mark.line + 1
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        return None
    return None


def _compose(text: str, report: _Report, file: str, path: KeyPath, with_lines: bool) -> Any:
    """Parse YAML text into plain values (BAD on a syntax error, already reported)."""
    deep = _too_deep(text)
    if deep is not None:
        message = f"nested more than {_MAX_DEPTH} levels deep; a sweep file needs a few"
        if with_lines:
            report.add_at(file, deep, message)
        else:
            report.add(path, message)
        return BAD
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as error:
        line, message = _yaml_error_message(error)
        if with_lines:
            report.add_at(file, line, message)
        else:
            report.add(path, message)
        return BAD
    if node is None:
        return None
    if with_lines:
        report.origins[path] = (file, node.start_mark.line + 1)
    try:
        return _Builder(report, file, with_lines).build(node, path)
    except RecursionError:  # aliases nesting one another past what the text shows
        return report.add(path, f"values nested more than {_MAX_DEPTH} levels deep (aliases?)")


def _read(path: Path, report: _Report) -> Any:
    """The file's top-level mapping as plain values, or BAD (already reported)."""
    file = report.file
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        report.add_at(file, None, f"cannot read the file: not UTF-8 text ({error.reason})")
        return BAD
    except OSError as error:
        reason = error.strerror or str(error)
        report.add_at(file, None, f"cannot read the file: {reason}")
        return BAD
    tree = _compose(text, report, file, (), with_lines=True)
    if tree is BAD:
        return BAD
    if tree is None:
        report.add_at(
            file, 1, "the file is empty; expected a mapping with name, dataset, optimizers"
        )
        return BAD
    if not isinstance(tree, dict):
        report.add_at(
            file,
            report.line(()),
            f"expected a mapping (name: ..., dataset: ..., optimizers: [...]) at the top "
            f"level, got {_describe(tree)}",
        )
        return BAD
    return tree


# ───────────────────────────── overrides ─────────────────────────────

_NAME_SEGMENT = re.compile(r"[^.\[\]\s=]+")


def parse_override(text: str) -> Override:
    """Parse ``key.path=value`` (``optimizers[0].grid.learning_rate=[0.1]`` or ``a.0.b=1``).

    The value is kept as text and parsed with the file's YAML rules when applied.
    Raises `ConfigError` (one problem, file ``--set``) when the text is not ``path=value``.
    """
    key, sep, value = text.partition("=")
    path = _parse_key_path(key.strip())
    if not sep or path is None:
        problem = Problem(
            OVERRIDE_FILE,
            None,
            "",
            f"{text!r} is not key.path=value (e.g. train.epochs=2, "
            f"optimizers[0].grid.learning_rate=[0.1])",
        )
        raise ConfigError([problem])
    return Override(path, value.strip(), text)


def _parse_key_path(key: str) -> KeyPath | None:
    """``a.b[0].c`` or ``a.b.0.c`` -> ``("a", "b", 0, "c")``; None if malformed."""
    parts: list[str | int] = []
    pos = 0
    while pos < len(key):
        if key[pos] == "[":
            end = key.find("]", pos)
            if end < 0 or not key[pos + 1 : end].isdigit():
                return None
            parts.append(int(key[pos + 1 : end]))
            pos = end + 1
        else:
            if parts:
                if key[pos] != ".":
                    return None
                pos += 1
            match = _NAME_SEGMENT.match(key, pos)
            if not match:
                return None
            segment = match.group()
            parts.append(int(segment) if segment.isdigit() else segment)
            pos = match.end()
    return tuple(parts) or None


def _apply_override(tree: dict[str, Any], override: Override, report: _Report) -> None:
    """Set one override in ``tree`` (creating missing mappings), recording it as ``--set``."""
    where: KeyPath = ()
    container: Any = tree
    for i, part in enumerate(override.path):
        last = i == len(override.path) - 1
        if isinstance(container, list):
            if not isinstance(part, int):
                _override_problem(report, override, f"{format_path(where)} is a list: use [N]")
                return
            if part >= len(container):
                valid = f"0..{len(container) - 1}" if container else "it is empty"
                _override_problem(
                    report,
                    override,
                    f"{format_path(where)} has {len(container)} items; index {part} is out of "
                    f"range ({valid})",
                )
                return
            key: str | int = part
            if not last:
                _spell_out(container, key, (*where, key))
        elif isinstance(container, dict):
            key = str(part)
            if not last:
                _spell_out(container, key, (*where, key))
            if not last and not isinstance(container.get(key), dict | list):
                if key in container and container[key] is not None:
                    _override_problem(
                        report,
                        override,
                        f"{format_path((*where, key))} is {_describe(container[key])}, "
                        f"not a mapping",
                    )
                    return
                container[key] = {}
                report.origins[(*where, key)] = (OVERRIDE_FILE, None)
        else:
            _override_problem(report, override, f"{format_path(where)} is not a mapping")
            return
        where = (*where, key)
        if last:
            report.forget(where)
            report.origins[where] = (OVERRIDE_FILE, None)
            container[key] = _compose(override.text, report, OVERRIDE_FILE, where, with_lines=False)
        else:
            container = container[key]


def _spell_out(container: dict[str, Any] | list[Any], key: str | int, path: KeyPath) -> None:
    """A bare name an override reaches into becomes the mapping it is short for:
    ``model: mlp`` is ``{name: mlp}`` (so ``--set model.init=keras`` works), as are
    ``optimizers: [adam]`` entries; ``schedule: cosine`` is ``{type: cosine}``."""
    if path == ("model",) or (len(path) == 2 and path[0] == "optimizers"):
        field_name = "name"
    elif path[-1:] == ("schedule",):
        field_name = "type"
    else:
        return
    value = container.get(key) if isinstance(container, dict) else container[key]
    if isinstance(value, str):
        container[key] = {field_name: value}


def _override_problem(report: _Report, override: Override, message: str) -> None:
    report.problems.append(
        Problem(OVERRIDE_FILE, None, format_path(override.path), f"{message} ({override.source})")
    )


# ───────────────────────────── value checks ─────────────────────────────


def _describe(value: Any) -> str:
    """How a value reads in a message: ``the string '3'``, ``2.5``, ``true``, ``a list [..]``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, float):
        return _format_float(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        text = json.dumps(value, default=str)
        return f"a list {text if len(text) <= 40 else text[:37] + '...'}"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)


def _format_float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    return repr(value)


def _quote_hint(value: Any) -> str:
    """`` (remove the quotes)`` when a string would read as a number."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return ""
        return " (remove the quotes)"
    return ""


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``did you mean 'x'? `` for the closest choice, or ""."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{match[0]}'? " if match else ""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_int(
    report: _Report,
    path: KeyPath,
    value: Any,
    minimum: int,
    *,
    allow_none: bool = False,
    maximum: int = _MAX_INT,
) -> int | _Bad | None:
    """An int from minimum to maximum (bools and floats rejected), or None when allowed."""
    if value is BAD or (value is None and allow_none):
        return value
    expected = f"an integer >= {minimum}" + (" or null" if allow_none else "")
    if not _is_int(value):
        return report.add(path, f"expected {expected}, got {_describe(value)}{_quote_hint(value)}")
    if value < minimum:
        return report.add(path, f"expected {expected}, got {value}")
    if value > maximum:
        shown = f"{value:,}" if value < 10**30 else f"a {len(str(value))}-digit number"
        return report.add(path, f"expected an integer from {minimum} to {maximum:,}, got {shown}")
    return value


def _check_float(report: _Report, path: KeyPath, value: Any, minimum: float) -> float | _Bad:
    """A finite number >= minimum, returned as float."""
    if value is BAD:
        return BAD
    expected = f"a finite number >= {minimum}"
    if not _is_number(value) or not math.isfinite(value) or value < minimum:
        return report.add(path, f"expected {expected}, got {_describe(value)}{_quote_hint(value)}")
    return float(value)


def _check_choice(
    report: _Report, path: KeyPath, value: Any, choices: Sequence[str], what: str
) -> str | _Bad:
    """One of ``choices`` (strings), with did-you-mean."""
    if value is BAD:
        return BAD
    if isinstance(value, str) and value in choices:
        return value
    if isinstance(value, str):
        return report.add(
            path,
            f"unknown {what} {value!r}; {_did_you_mean(value, choices)}valid: {', '.join(choices)}",
        )
    return report.add(path, f"expected {what} ({', '.join(choices)}), got {_describe(value)}")


def _check_named(
    report: _Report,
    path: KeyPath,
    value: Any,
    key: str,
    choices: Sequence[str],
    what: str,
    example: str,
) -> tuple[str, dict[str, Any]] | _Bad:
    """A bare name, or a mapping whose ``key`` is one of ``choices`` (``model: mlp`` or
    ``model: {name: mlp, hidden: [64]}``); returns the name and the mapping."""
    if value is BAD:
        return BAD
    if isinstance(value, str):
        name = _check_choice(report, path, value, choices, what)
        return BAD if name is BAD else (name, {key: name})
    if not isinstance(value, dict):
        return report.add(
            path,
            f"expected {'an' if what[0] in 'aeiou' else 'a'} {what} name "
            f"({', '.join(choices)}) or a mapping {example}, "
            f"got {_describe(value)}",
        )
    if key not in value:
        return report.add(
            (*path, key), f"required key missing; add {key}: one of {', '.join(choices)}"
        )
    name = _check_choice(report, (*path, key), value[key], choices, what)
    return BAD if name is BAD else (name, value)


def _check_mapping(
    report: _Report,
    path: KeyPath,
    value: Any,
    keys: Sequence[str],
    required: Mapping[str, str] | None = None,
    what: str = "a mapping",
) -> dict[str, Any] | _Bad:
    """A mapping whose keys are among ``keys``; ``required`` maps key -> example value."""
    if value is BAD:
        return BAD
    if value is None:
        value = {}
    if not isinstance(value, dict):
        return report.add(path, f"expected {what}, got {_describe(value)}")
    for key in value:
        if key not in keys:
            report.add(
                (*path, key),
                f"unknown key '{key}'; {_did_you_mean(key, keys)}valid keys: {', '.join(keys)}",
            )
    for key, example in (required or {}).items():
        if key not in value:
            report.add((*path, key), f"required key missing; add {key}: {example}")
    return value


# ───────────────────────────── sections ─────────────────────────────

_TOP_KEYS = (
    "name",
    "dataset",
    "subset",
    "data",
    "model",
    "train",
    "schedule",
    "max_trials",
    "search",
    "report",
    "optimizers",
)
_SEARCH_KEYS = tuple(f.name for f in dataclasses.fields(SearchSpec))
_DATA_KEYS = tuple(f.name for f in dataclasses.fields(DataSpec))
_RANGE_KEYS = ("low", "high", "log", "step")
_TRAIN_KEYS = tuple(f.name for f in dataclasses.fields(TrainSpec))
_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
_DEVICE_RE = re.compile(r"auto|cpu|cuda(?::[0-9]+)?")


def _check_name(report: _Report, value: Any) -> str | _Bad:
    path: KeyPath = ("name",)
    if value is BAD:
        return BAD
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value) or set(value) == {"."}:
        hint = " (quote it)" if _is_number(value) or isinstance(value, bool) else ""
        return report.add(
            path,
            f"expected a name of letters, digits, _ . - (it names results/<name>/), got "
            f"{_describe(value)}{hint}",
        )
    return value


def _check_subset(report: _Report, value: Any) -> tuple[int | None, int | None]:
    path: KeyPath = ("subset",)
    subset = _check_mapping(report, path, value, ("train", "test"), what="{train: N, test: N}")
    if subset is BAD:
        return None, None
    train = _check_int(report, (*path, "train"), subset.get("train"), 1, allow_none=True)
    test = _check_int(report, (*path, "test"), subset.get("test"), 1, allow_none=True)
    return (None if train is BAD else train), (None if test is BAD else test)


def _check_sizes_fit(
    report: _Report,
    dataset: str,
    subset_train: int | None,
    subset_test: int | None,
    train: TrainSpec | _Bad,
) -> None:
    """Subsets within the dataset's published splits; a batch within its training images."""
    size = DATASET_SIZES[dataset]
    for split, subset, available in (
        ("train", subset_train, size.train),
        ("test", subset_test, size.test),
    ):
        if subset is not None and subset > available:
            report.add(
                ("subset", split),
                f"{dataset} has {available:,} {split} images; subset.{split} = {subset:,} "
                f"asks for more",
            )
    # against the dataset, not a subset: a quick run on a few images takes them as one batch
    if train is not BAD and train.batch_size > size.train:
        report.add(
            ("train", "batch_size"),
            f"batch_size = {train.batch_size:,} is more than the {size.train:,} training images "
            f"of {dataset}; at most {size.train:,}",
        )


def _check_data(report: _Report, value: Any) -> DataSpec | _Bad:
    """The ``data:`` section: normalize (one of `NORMALIZATIONS`) and drop_last (a bool)."""
    path: KeyPath = ("data",)
    what = f"a mapping {{normalize: {' | '.join(NORMALIZATIONS)}, drop_last: true | false}}"
    section = _check_mapping(report, path, value, _DATA_KEYS, what=what)
    if section is BAD:
        return BAD
    defaults = DataSpec()
    normalize = _check_choice(
        report,
        (*path, "normalize"),
        section.get("normalize", defaults.normalize),
        NORMALIZATIONS,
        "normalize",
    )
    drop_last = section.get("drop_last", defaults.drop_last)
    if not isinstance(drop_last, bool):
        drop_last = report.add(
            (*path, "drop_last"), f"expected true or false, got {_describe(drop_last)}"
        )
    if BAD in (normalize, drop_last):
        return BAD
    return DataSpec(normalize, drop_last)


def _check_full_batch(
    report: _Report, data: DataSpec | _Bad, subset_train: int | None, train: TrainSpec | _Bad
) -> None:
    """With drop_last, a training subset smaller than one batch would train on nothing."""
    if data is BAD or train is BAD or not data.drop_last or subset_train is None:
        return
    if subset_train < train.batch_size:
        report.add(
            ("data", "drop_last"),
            f"subset.train = {subset_train:,} is less than one batch of {train.batch_size:,}: "
            f"every batch would be dropped; set drop_last: false or a batch_size of at most "
            f"{subset_train:,}",
        )


def _check_model(report: _Report, value: Any) -> ModelSpec | _Bad:
    named = _check_named(
        report, ("model",), value, "name", MODELS, "model", "{name: mlp, ...options}"
    )
    if named is BAD:
        return BAD
    name, mapping = named
    return ModelSpec(name, {k: v for k, v in mapping.items() if k != "name"})


def _check_seeds(report: _Report, value: Any) -> tuple[int, ...] | _Bad:
    path: KeyPath = ("train", "seeds")
    if value is BAD:
        return BAD
    if not isinstance(value, list):
        example = value if _is_int(value) and value >= 0 else 0
        return report.add(
            path,
            f"expected a list of distinct integers >= 0, got {_describe(value)}; "
            f"write seeds: [{example}]",
        )
    if not value:
        return report.add(path, "empty list; give at least one seed, e.g. seeds: [0]")
    seeds = [_check_int(report, (*path, i), seed, 0) for i, seed in enumerate(value)]
    if BAD in seeds:
        return BAD
    for i, seed in enumerate(seeds):
        if seed in seeds[:i]:
            return report.add((*path, i), f"seed {seed} is listed twice; seeds must be distinct")
    return tuple(seeds)


def _check_train(report: _Report, value: Any) -> TrainSpec | _Bad:
    path: KeyPath = ("train",)
    train = _check_mapping(report, path, value, _TRAIN_KEYS)
    if train is BAD:
        return BAD
    defaults = TrainSpec()
    got: dict[str, Any] = {}
    for key in ("epochs", "batch_size", "eval_batch_size", "log_every"):
        maximum = _MAX_EPOCHS if key == "epochs" else _MAX_INT
        value = train.get(key, getattr(defaults, key))
        got[key] = _check_int(report, (*path, key), value, 1, maximum=maximum)
    got["trials_per_batch"] = _check_int(
        report, (*path, "trials_per_batch"), train.get("trials_per_batch"), 1, allow_none=True
    )
    got["seeds"] = _check_seeds(report, train.get("seeds", list(defaults.seeds)))
    device = train.get("device", defaults.device)
    if device is not BAD and not (isinstance(device, str) and _DEVICE_RE.fullmatch(device)):
        device = report.add((*path, "device"), f"expected {DEVICES_TEXT}, got {_describe(device)}")
    got["device"] = device
    got["precision"] = _check_choice(
        report,
        (*path, "precision"),
        train.get("precision", defaults.precision),
        PRECISIONS,
        "precision",
    )
    if BAD in got.values():
        return BAD
    return TrainSpec(**got)


class _Schedule(NamedTuple):
    """A schedule as written: its spec (the first value of each list) and the lists, as grid
    axes named ``schedule.<key>``."""

    spec: ScheduleSpec | None
    grid: dict[str, list[Any]]


NO_SCHEDULE = _Schedule(None, {})


def _check_schedule(report: _Report, path: KeyPath, value: Any) -> _Schedule | _Bad:
    """``null``, a type name, or ``{type: ..., unit: epoch | step, <its keys>}``; constant
    becomes None. A list for a key that takes one value is a grid axis, crossed with the
    block's grid. Types of values are checked here, their ranges by ``ScheduleSpec``."""
    if value is None:
        return NO_SCHEDULE
    example = "{type: cosine, T_max: 3, eta_min: 0.0}"
    named = _check_named(report, path, value, "type", SCHEDULE_KINDS, "schedule type", example)
    if named is BAD:
        return BAD
    kind, value = named
    before = len(report.problems)
    keys = ("unit", *SCHEDULE_FIELDS[kind])
    _check_mapping(report, path, value, ("type", *keys))
    got: dict[str, Any] = {}
    grid: dict[str, list[Any]] = {}
    for key in (k for k in keys if k in value):
        where, written = (*path, key), value[key]
        if isinstance(written, list) and (key not in _SCHEDULE_LISTS or _is_grid(written)):
            items = [_schedule_value(report, (*where, j), key, v) for j, v in enumerate(written)]
            if not items or len(set(map(repr, items))) < len(items):
                report.add(where, f"expected a list of distinct values, got {_describe(written)}")
            grid[f"{SCHEDULE_PREFIX}{key}"] = items
            got[key] = items[0] if items else BAD
        else:
            got[key] = _schedule_value(report, where, key, written)
    if len(report.problems) > before or BAD in got.values() or _has_bad(grid):
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


def _schedule_value(report: _Report, path: KeyPath, key: str, value: Any) -> Any:
    """One schedule value, type-checked."""
    if key in _SCHEDULE_INTS:
        minimum, allow_none = _SCHEDULE_INTS[key]
        return _check_int(report, path, value, minimum, allow_none=allow_none)
    if key in _SCHEDULE_WORDS:
        return _check_choice(report, path, value, _SCHEDULE_WORDS[key], key)
    if key in _SCHEDULE_BOOLS:
        if isinstance(value, bool):
            return value
        return report.add(path, f"expected true or false, got {_describe(value)}")
    if key in _SCHEDULE_LISTS:
        of = _SCHEDULE_LISTS[key]
        fits = _is_int if of == "integers" else _is_number
        if not isinstance(value, list) or not all(fits(v) for v in value):
            return report.add(path, f"expected a list of {of}, got {_describe(value)}")
        return tuple(value)
    return _check_float(report, path, value, 0.0)


# ───────────────────────────── optimizer blocks ─────────────────────────────


@dataclass
class _Given:
    """One parameter as written in a block: fixed (``lr: 0.1``) or in the grid."""

    written: str
    canonical: tuple[str, ...]
    value: Any
    path: KeyPath
    in_grid: bool


def _check_param(report: _Report, path: KeyPath, info: registry.ParamInfo, value: Any) -> Any:
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
            if isinstance(value, str) and value.lower() in _YAML11_BOOLS
            else ""
        )
        return report.add(
            path, f"expected true or false, got {_describe(value)}; write true or false{hint}"
        )
    if kind == "int":
        if not _is_int(value):
            return report.add(
                path,
                f"expected an integer{valid}, got {_describe(value)}{_quote_hint(value)}",
            )
    elif not _is_number(value):
        return report.add(
            path, f"expected a number{valid}, got {_describe(value)}{_quote_hint(value)}"
        )
    elif not math.isfinite(value):
        return report.add(path, f"expected a finite number{valid}, got {_describe(value)}")
    message = info.check(value)
    if message:
        return report.add(path, message if info.valid in message else message + valid)
    return float(value) if kind == "float" else value


def _block_givens(
    report: _Report, path: KeyPath, block: dict[str, Any], optimizer: str
) -> list[_Given] | _Bad:
    """Every parameter the block names (fixed, then grid) with its canonical names."""
    grid = block.get("grid")
    entries = [(k, v, (*path, k), False) for k, v in block.items() if k not in BLOCK_KEYS]
    if grid is BAD:
        return BAD
    if grid is not None and not isinstance(grid, dict):
        report.add(
            (*path, "grid"),
            f"expected a mapping of parameter: [values], got {_describe(grid)}",
        )
    elif grid:
        entries += [(k, v, (*path, "grid", k), True) for k, v in grid.items()]
    givens: list[_Given] = []
    for written, value, where, in_grid in entries:
        try:
            canonical = tuple(registry.resolve_name(optimizer, written))
        except registry.UnknownParameterError as error:
            near = "" if in_grid else _did_you_mean(written, BLOCK_KEYS)
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


def _drop_given_twice(report: _Report, givens: list[_Given]) -> list[_Given]:
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


def _split_value(report: _Report, given: _Given, value: Any, path: KeyPath) -> list[Any] | _Bad:
    """The value(s) for ``given.canonical``: a written name for n > 1 names takes a list of n."""
    n = len(given.canonical)
    if n == 1 or value is BAD:
        return [value]
    if not isinstance(value, list) or len(value) != n:
        names = ", ".join(given.canonical)
        return report.add(
            path,
            f"{given.written} takes a list of {n} values [{names}], got {_describe(value)}"
            + ("; in a grid write a list of such lists" if given.in_grid else ""),
        )
    return value


def _check_block(
    report: _Report,
    index: int,
    value: Any,
    default_schedule: _Schedule | _Bad,
) -> OptimizerBlock | _Bad:
    """One entry of ``optimizers:`` (a mapping, or just the optimizer's name)."""
    path: KeyPath = ("optimizers", index)
    example = "{name: adam, learning_rate: 0.001, grid: {...}}"
    before = len(report.problems)
    named = _check_named(
        report, path, value, "name", tuple(registry.OPTIMIZERS), "optimizer", example
    )
    if named is BAD:
        return BAD
    optimizer, value = named
    semantics = _check_choice(
        report,
        (*path, "semantics"),
        value.get("semantics", "torch"),
        tuple(registry.SEMANTICS),
        "semantics",
    )
    schedule = (
        _check_schedule(report, (*path, "schedule"), value["schedule"])
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
    if len(report.problems) > before or schedule is BAD or _has_bad(value):
        return BAD
    grid.update(schedule.grid)
    display.update({name: name for name in schedule.grid})
    return OptimizerBlock(
        optimizer, semantics, fixed, grid, display, schedule.spec, index, tuple(linked), ranges
    )


def _check_range(
    report: _Report, given: _Given, params: Mapping[str, registry.ParamInfo]
) -> RangeSpec | _Bad:
    """A grid entry ``{low, high, log, step}``: a search distribution (``optsweep search``)."""
    path, name = given.path, given.written
    if not report.search:
        return report.add(
            path,
            f"a range {{low, high}} is for optsweep search; optsweep run needs a list of "
            f"values, e.g. {name}: [0.01, 0.001]",
        )
    if len(given.canonical) != 1:
        names = " and ".join(given.canonical)
        return report.add(path, f"{name} cannot be a range; give {names} ranges of their own")
    info = params[given.canonical[0]]
    if info.kind == "bool":
        return report.add(path, f"{name} is true or false: give a list, e.g. {name}: [true, false]")
    value = _check_mapping(report, path, given.value, _RANGE_KEYS, {"low": "1.0e-5", "high": "0.1"})
    if value is BAD or "low" not in value or "high" not in value:
        return BAD
    low = _check_param(report, (*path, "low"), info, value["low"])
    high = _check_param(report, (*path, "high"), info, value["high"])
    log = value.get("log", False)
    if not isinstance(log, bool):
        return report.add((*path, "log"), f"expected true or false, got {_describe(log)}")
    step = value.get("step")
    if step is not None and (not _is_number(step) or step <= 0 or log):
        return report.add(
            (*path, "step"), f"expected a number > 0 without log: true, got {_describe(step)}"
        )
    if BAD in (low, high):
        return BAD
    if low >= high:
        return report.add(path, f"low ({low}) must be below high ({high})")
    if log and low <= 0:
        return report.add((*path, "low"), f"a log range needs low > 0, got {low}")
    return RangeSpec(low, high, log, step, info.kind)


def _has_bad(value: Any) -> bool:
    """Whether a value already reported as a problem sits anywhere in ``value``."""
    if isinstance(value, dict):
        return any(_has_bad(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_bad(v) for v in value)
    return value is BAD


def _check_grid_list(report: _Report, given: _Given) -> list[Any] | _Bad:
    """A grid entry must be a non-empty list."""
    value = given.value
    if value is BAD:
        return BAD
    if not isinstance(value, list):
        example = json.dumps(value) if not isinstance(value, dict) else "..."
        return report.add(
            given.path,
            f"a grid entry must be a list of values, got {_describe(value)}; write "
            f"{given.written}: [{example}], or move it out of grid to fix it",
        )
    if not value:
        return report.add(given.path, "empty list; give at least one value")
    return value


def _check_grid_distinct(report: _Report, given: _Given, columns: list[list[Any]]) -> None:
    """The same value (or tuple) twice in one grid list would run the same trial twice."""
    rows = list(zip(*columns, strict=True))
    for j, row in enumerate(rows):
        if BAD not in row and row in rows[:j]:
            shown = json.dumps(list(row) if len(row) > 1 else row[0])
            report.add((*given.path, j), f"value {shown} is listed twice; each grid value once")
            return


def _grid_axes(
    grid: Mapping[str, list[Any]], linked: Sequence[tuple[str, ...]]
) -> list[tuple[tuple[str, ...], list[tuple[Any, ...]]]]:
    """The block's axes: one per grid name, or one per linked group (tuples zipped)."""
    group_of = {name: group for group in linked for name in group}
    axes: list[tuple[tuple[str, ...], list[tuple[Any, ...]]]] = []
    done: set[str] = set()
    for name in grid:
        if name in done:
            continue
        group = group_of.get(name, (name,))
        done.update(group)
        axes.append((group, list(zip(*(grid[g] for g in group), strict=True))))
    return axes


# ───────────────────────────── whole sweep ─────────────────────────────


def _check_optimizers(
    report: _Report, value: Any, default_schedule: _Schedule | _Bad
) -> list[OptimizerBlock] | _Bad:
    path: KeyPath = ("optimizers",)
    if value is BAD:
        return BAD
    if not isinstance(value, list) or not value:
        return report.add(
            path,
            f"expected a non-empty list of optimizer blocks (- name: adam ...), got "
            f"{_describe(value)}",
        )
    blocks = [_check_block(report, i, item, default_schedule) for i, item in enumerate(value)]
    return BAD if BAD in blocks else blocks


def _check_size(
    report: _Report,
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


def _trials(
    blocks: Sequence[OptimizerBlock], seeds: Sequence[int], report: _Report | None
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
    block: OptimizerBlock, point: dict[str, Any], report: _Report | None
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
    report: _Report,
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


def _check_unique(report: _Report, trials: list[TrialSpec]) -> None:
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


def _check_sweep(report: _Report, tree: dict[str, Any], source: Path) -> SweepSpec | None:
    """Validate the whole tree; None when a problem was reported."""
    required = {"name": "<sweep name>", "dataset": f"one of {', '.join(DATASETS)}"}
    required["optimizers"] = "[{name: adam, learning_rate: 0.001}]"
    _check_mapping(report, (), tree, _TOP_KEYS, required)
    name = _check_name(report, tree["name"]) if "name" in tree else BAD
    dataset = (
        _check_choice(report, ("dataset",), tree["dataset"], DATASETS, "dataset")
        if "dataset" in tree
        else BAD
    )
    subset_train, subset_test = _check_subset(report, tree.get("subset"))
    data = _check_data(report, tree.get("data"))
    model = _check_model(report, tree.get("model", "mlp"))
    train = _check_train(report, tree.get("train"))
    _check_full_batch(report, data, subset_train, train)
    if dataset is not BAD:
        _check_sizes_fit(report, dataset, subset_train, subset_test, train)
    schedule = _check_schedule(report, ("schedule",), tree.get("schedule"))
    max_trials = _check_int(report, ("max_trials",), tree.get("max_trials", 10000), 1)
    blocks = (
        _check_optimizers(report, tree["optimizers"], schedule) if "optimizers" in tree else BAD
    )
    search = _check_search(report, tree.get("search"))
    report_spec = _check_report(report, tree.get("report"), dataset)
    if (
        not report.search
        and BAD not in (train, max_trials, blocks)
        and _check_size(report, tree, blocks, train, max_trials)
    ):
        _check_unique(report, _trials(blocks, train.seeds, report))
    if report.problems or BAD in (
        name,
        dataset,
        data,
        model,
        train,
        max_trials,
        blocks,
        search,
        report_spec,
    ):
        return None
    return SweepSpec(
        name=name,
        dataset=dataset,
        subset_train=subset_train,
        subset_test=subset_test,
        model=model,
        train=train,
        optimizers=tuple(blocks),
        max_trials=max_trials,
        source=source,
        raw=copy.deepcopy(tree),
        search=search,
        data=data,
        report=report_spec,
    )


def _check_search(report: _Report, value: Any) -> SearchSpec | _Bad:
    """The ``search:`` section: trials, sampler, pruner, seed, metric, validation_size, batch."""
    path: KeyPath = ("search",)
    section = _check_mapping(report, path, value, _SEARCH_KEYS)
    if section is BAD:
        return BAD
    defaults = SearchSpec()
    got: dict[str, Any] = {}
    for key, minimum in (("trials", 1), ("seed", 0), ("validation_size", 1), ("batch", 1)):
        got[key] = _check_int(
            report, (*path, key), section.get(key, getattr(defaults, key)), minimum
        )
    for key, choices in (("sampler", SAMPLERS), ("pruner", PRUNERS), ("metric", METRICS)):
        got[key] = _check_choice(
            report, (*path, key), section.get(key, getattr(defaults, key)), choices, key
        )
    return BAD if BAD in got.values() else SearchSpec(**got)


def _check_report(report: _Report, value: Any, dataset: str | _Bad) -> ReportSpec | _Bad:
    """The ``report:`` section: ``target: 0.97`` or ``target: {metric: M, value: V}``."""
    path: KeyPath = ("report",)
    section = _check_mapping(report, path, value, ("target",))
    if section is BAD:
        return BAD
    written = section.get("target")
    metric: Any = "test_accuracy"
    where = (*path, "target")
    if isinstance(written, dict):
        _check_mapping(report, where, written, ("metric", "value"), {"value": "0.97"})
        metric = _check_choice(
            report,
            (*where, "metric"),
            written.get("metric", metric),
            tuple(TARGET_METRICS),
            "metric",
        )
        where, written = (*where, "value"), written.get("value", BAD)
    elif written is None:
        written = (
            TARGET_ACCURACY.get(dataset, DEFAULT_TARGET_ACCURACY)
            if isinstance(dataset, str)
            else BAD
        )
    elif not _is_number(written):
        written = report.add(
            where,
            "expected a test accuracy (0.97) or {metric: test_loss, value: 0.1}, "
            f"got {_describe(written)}{_quote_hint(written)}",
        )
    value = _check_float(report, where, written, 0.0)
    if metric == "test_accuracy" and isinstance(value, float) and value > 1:
        value = report.add(where, f"expected an accuracy from 0 to 1, got {fmt(value)}")
    if BAD in (metric, value):
        return BAD
    return ReportSpec(Target(metric, value))


def load_sweep(
    path: str | os.PathLike[str],
    overrides: Iterable[str | Override] = (),
    *,
    search: bool = False,
) -> SweepSpec:
    """Read, override and validate a sweep file.

    Args:
        path: the YAML file.
        overrides: ``--set`` arguments (``"train.epochs=2"``) or parsed `Override` s, applied
            in order to the tree before validation.
        search: read it for ``optsweep search``: grid entries may be ranges ``{low, high}``
            and the grid's size is not capped (the budget is ``search.trials``).

    Raises:
        ConfigError: with every problem found, one line each; never another exception for
            bad input.
    """
    source = Path(path)
    report = _Report(str(path), search=search)
    parsed: list[Override] = []
    for item in overrides:
        try:
            parsed.append(item if isinstance(item, Override) else parse_override(item))
        except ConfigError as error:
            report.problems.extend(error.problems)
    tree = _read(source, report)
    spec = None
    if tree is not BAD:
        for override in parsed:
            _apply_override(tree, override, report)
        spec = _check_sweep(report, tree, source)
    if report.problems or spec is None:
        problems = sorted(report.problems, key=lambda p: (p.file == OVERRIDE_FILE, p.line or 0))
        raise ConfigError(problems)
    return spec


def expand(spec: SweepSpec) -> list[TrialSpec]:
    """Every trial of the sweep: for each seed, each block's grid points in file order.

    Seeds are outermost, so the first ``len(trials) / len(seeds)`` trials cover the whole grid
    once. Within a block the grid is a cartesian product with the last grid name varying
    fastest; each trial carries only its own optimizer's parameters.
    """
    return _trials(spec.optimizers, spec.train.seeds, report=None)


def trial_label(optimizer: str, semantics: str, params: Mapping[str, Any], seed: int) -> str:
    """``adam/keras learning_rate=0.001 beta_1=0.9 seed=0``: one trial on one line."""
    return " ".join(
        [f"{optimizer}/{semantics}", *(f"{k}={fmt(v)}" for k, v in params.items()), f"seed={seed}"]
    )


def fmt(value: Any) -> str:
    """A parameter value for tables and labels (floats in %g)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def identity(spec: TrialSpec) -> dict[str, Any]:
    """What a report needs to name a trial: optimizer, semantics, YAML-named params, seed."""
    params = {spec.display.get(k, k): v for k, v in spec.params.items()}
    return {"optimizer": spec.optimizer, "semantics": spec.semantics, "params": params}


def label_of(spec: TrialSpec) -> str:
    """The trial's one-line label, parameters under their YAML names."""
    return trial_label(spec.optimizer, spec.semantics, identity(spec)["params"], spec.seed)
