"""The records a sweep file becomes: `SweepSpec`, its sections and its `TrialSpec` s.

Each section's keys are declared on its dataclass fields (`schema.setting`): type and bounds,
default, help and meaning, once.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optsweep.catalog import NORMALIZATIONS
from optsweep.optim.schedules import ScheduleSpec
from optsweep.values import fmt

from .problems import MAX_EPOCHS
from .schema import (
    NOTHING,
    TRIALS,
    Flag,
    Folder,
    Fraction,
    Integer,
    OneOf,
    Pattern,
    Seeds,
    Written,
    setting,
)

SCHEDULE_PREFIX = "schedule."
"""Grid names of schedule values (``schedule.warmup_steps``), beside the optimizer's."""

PRECISIONS = ("fp32", "bf16", "fp16")
SAMPLERS = ("tpe", "cmaes", "random", "qmc", "grid")
SHARES = ("equal", "sampler")
PRUNERS = ("median", "hyperband", "successive_halving", "none")
METRICS = ("test", "validation")
DEVICE = Pattern(
    r"auto|cpu|cuda(?::[0-9]+)?", "auto, cpu, cuda or cuda:N", "`auto`, `cpu`, `cuda`, `cuda:N`"
)


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
class SubsetSpec:
    """The ``subset:`` section: train and evaluate on the first images only."""

    train: int | None = setting(
        None,
        Integer(1, nullable=True),
        "use only the first N training images",
        default_text="all",
    )
    test: int | None = setting(
        None, Integer(1, nullable=True), "use only the first N test images", default_text="all"
    )


@dataclass(frozen=True)
class DataSpec:
    """How the dataset's pixels and batches reach the model (the ``data:`` section).

    The defaults are what optsweep did before the section existed; DeepOBS's (Fashion-)MNIST
    protocol is ``{normalize: unit, drop_last: true}``.
    """

    normalize: str = setting(
        "standard",
        OneOf(NORMALIZATIONS),
        "how pixels become inputs (see [Data protocols](#data-protocols))",
        default_text="`standard`: `(x/255 − mean) / std` per channel, the training set's",
        note="`unit` is `x/255` only, as DeepOBS's MNIST and Fashion-MNIST",
        new=True,
    )
    drop_last: bool = setting(
        False,
        Flag(),
        "leave each epoch's last, partial batch out, as a DataLoader with `drop_last=True`",
        default_text="false: it is trained on",
        new=True,
    )
    crop_padding: int = setting(
        0,
        Integer(0, 64),
        "random crop after padding each side by this many black pixels, a new crop per image "
        "and step (the CIFAR ResNet protocol: 4)",
        default_text="0: no crop",
        new=True,
    )
    flip: bool = setting(
        False,
        Flag(),
        "mirror each training image left to right with probability ½, drawn per image and step",
        default_text="false",
        new=True,
    )
    dir: str | None = setting(
        None,
        Folder(),
        "the folder of the published files, relative to the working directory "
        "(`--data-dir D` is `--set data.dir=D`)",
        meaning=NOTHING,
        default_text="`$OPTSWEEP_DATA`, else `./data`",
    )


@dataclass(frozen=True)
class TrainSpec:
    """How each trial trains; shared by every trial of the sweep (the ``train:`` section)."""

    epochs: int = setting(3, Integer(1, MAX_EPOCHS), "passes over the training set")
    batch_size: int = setting(128, Integer(1), "training batch size")
    seeds: tuple[int, ...] = setting(
        (0,),
        Seeds(),
        "every grid point runs once per seed; trials with the same seed share initial weights "
        "and batch order",
        meaning=TRIALS,
        default_text="`[0]`",
    )
    device: str = setting(
        "auto",
        DEVICE,
        "where to train (`--device X` is `--set train.device=X`)",
        meaning=NOTHING,
        default_text="`auto` (CUDA when present)",
    )
    eval_batch_size: int = setting(1000, Integer(1), "batch size for the test set", meaning=NOTHING)
    log_every: int = setting(
        10,
        Integer(1),
        "the history keeps the mean train loss of each window of this many steps",
        meaning=NOTHING,
    )
    trials_per_batch: int | None = setting(
        None,
        Integer(1, nullable=True),
        "how many compatible trials train together (results do not depend on it)",
        meaning=NOTHING,
        default_text=(
            "null: within what half the free memory holds, K = 16, 32, 64, … measured "
            "(training step, update included) while doubling gains 3%, and the smallest within "
            "3% of the best rate taken; 8 for conv nets on CPU, which run trial by trial there"
        ),
    )
    label_smoothing: float = setting(
        0.0,
        Fraction(),
        "the training loss's targets: 1 − ε on the label and ε/classes spread over every class, "
        "as `CrossEntropyLoss(label_smoothing=ε)` and Keras's `label_smoothing`; the test loss "
        "stays plain cross-entropy, comparable across sweeps",
        new=True,
    )
    precision: str = setting(
        "fp32",
        OneOf(PRECISIONS),
        "arithmetic precision",
        note=(
            "the forward pass under autocast; parameters, optimizer state and loss stay fp32 "
            "(with `fp16` set a `loss_scale_factor`)"
        ),
    )


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


@dataclass(frozen=True)
class SearchSpec:
    """How ``optsweep search`` explores the space (the ``search:`` section)."""

    trials: int = setting(
        30, Integer(1), "how many trials in total (re-running continues up to it)"
    )
    sampler: str = setting("tpe", OneOf(SAMPLERS), "Optuna's sampler")
    pruner: str = setting("median", OneOf(PRUNERS), "Optuna's pruner, after each epoch")
    seed: int = setting(
        0, Integer(0), "the sampler's seed: the same config and seed give the same suggestions"
    )
    metric: str = setting(
        "test",
        OneOf(METRICS),
        "what trials are pruned and ranked on",
        note="`validation` holds out the last `validation_size` training images",
    )
    validation_size: int = setting(5000, Integer(1), "images held out for `metric: validation`")
    batch: int = setting(8, Integer(1), "trials asked from the sampler and trained together")
    share: str = setting(
        "equal",
        OneOf(SHARES),
        "how the trials divide among several optimizers",
        note="`equal`: the optimizer with the fewest trials goes next, so each gets the same "
        "budget (DeepOBS's and AlgoPerf's protocol), the sampler choosing its parameters; "
        "`sampler`: the sampler chooses the optimizer too (TPE favours the early leader)",
    )


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

    target: Target = setting(
        dataclasses.MISSING,
        Written(
            "a test accuracy 0–1, or `{metric: test_accuracy | test_loss | train_loss, value: V}`",
            {
                "anyOf": [
                    {"type": "number", "minimum": 0, "maximum": 1},
                    {
                        "type": "object",
                        "properties": {
                            "metric": {"enum": ["test_accuracy", "test_loss", "train_loss"]},
                            "value": {"type": "number", "minimum": 0},
                        },
                        "required": ["value"],
                        "additionalProperties": False,
                    },
                ]
            },
        ),
        "speed to target's target (reads results only; see Results)",
        meaning=NOTHING,
        default_text="test accuracy: 0.97 mnist, 0.85 fashion-mnist, 0.5 cifar10, 0.9 mnist-mini",
    )


def dataset_label(written: Any) -> str:
    """How tables name a config's dataset: its name, or a user's file by its file name."""
    if isinstance(written, dict) and isinstance(written.get("files"), str):
        return Path(written["files"]).name
    return str(written if written is not None else "?")


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
    dataset: str  # a name of `DATASETS`, or the .npz file as the config wrote it
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
    files: str | None = None  # a user's .npz, its path resolved against the config's folder


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
