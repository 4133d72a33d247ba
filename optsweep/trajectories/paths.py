"""The paths themselves, as data: which trajectories (`TrajectorySpec`), run with the sweep's
own update rules (`run_trajectories`, `trace`), and measured (`PathMetrics`); and the
command line's text for them (`parse_point`, `parse_learning_rate`, `parse_list`)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from optsweep.config import SweepSpec, expand
from optsweep.functions import DEFAULT_FUNCTIONS, FUNCTIONS, TestFunction, value_and_grad
from optsweep.optim import build, evaluation_weights, registry, stack_hyperparameters
from optsweep.values import fmt

DEFAULT_OPTIMIZERS = (
    "sgd",
    "momentum",
    "nesterov",
    "adagrad",
    "rmsprop",
    "adadelta",
    "adam",
    "nadam",
)
"""``optsweep trajectories`` without a config or ``--optimizers``: the documents' classic set."""


LearningRate = float | Literal["auto"] | None
"""None: each trial's own rate; ``"auto"``: the function's suggestion; a number: that rate."""


REGION_MARGIN = 3.0
"""A path ends when it leaves the drawn window grown this many times about its centre."""


@dataclass(frozen=True)
class TrajectorySpec:
    """One optimizer setting to trace.

    Attributes:
        optimizer: registry name.
        semantics: ``torch`` or ``keras``.
        hyperparameters: canonical, resolved (``registry.resolve``): defaults filled in.
        given: the parameters the config gave (canonical name -> value), shown in the label.
        display: canonical name -> name as written in the YAML (``lr``).
        block: index of the config's optimizer block (-1 without a config).
        grid: this trial's values of its block's grid axes (canonical name -> value).
    """

    optimizer: str
    semantics: str
    hyperparameters: dict[str, Any]
    given: dict[str, Any] = field(default_factory=dict)
    display: dict[str, str] = field(default_factory=dict)
    block: int = -1
    grid: dict[str, Any] = field(default_factory=dict)

    @property
    def learning_rate(self) -> float:
        return float(self.hyperparameters["learning_rate"])

    @property
    def label(self) -> str:
        """``momentum/keras lr=0.4 momentum=0.9``: the rate first, then what the config gave."""
        lr_name = self.display.get("learning_rate", "lr")
        parts = [f"{self.optimizer}/{self.semantics}", f"{lr_name}={fmt(self.learning_rate)}"]
        parts += [
            f"{self.display.get(name, name)}={fmt(value)}"
            for name, value in self.given.items()
            if name != "learning_rate"
        ]
        return " ".join(parts)

    def identity(self) -> str:
        """What makes two specs the same run (for de-duplication)."""
        return json.dumps(
            [self.optimizer, self.semantics, sorted(self.hyperparameters.items())], default=str
        )


def specs_from_sweep(spec: SweepSpec) -> list[TrajectorySpec]:
    """One spec per grid point of the sweep (its first seed: paths do not depend on seeds)."""
    first_seed = spec.train.seeds[0]
    out = []
    for trial in expand(spec):
        if trial.seed != first_seed:
            continue
        block = spec.optimizers[trial.block]
        out.append(
            TrajectorySpec(
                optimizer=trial.optimizer,
                semantics=trial.semantics,
                hyperparameters=dict(trial.hyperparameters),
                given=dict(trial.params),
                display=dict(block.display),
                block=trial.block,
                grid={name: trial.params[name] for name in block.grid},
            )
        )
    return out


def specs_from_names(
    names: Iterable[str], semantics: Sequence[str] = ("torch",)
) -> list[TrajectorySpec]:
    """Each optimizer at its defaults, under each of ``semantics``.

    A name may carry its semantics, ``adam/keras``, which then replaces ``semantics`` for it;
    ``all`` stands for every optimizer of the registry.

    Raises:
        ValueError: an unknown optimizer or semantics, naming the valid ones.
    """
    out: list[TrajectorySpec] = []
    for raw in names:
        name, _, sem = raw.strip().partition("/")
        if not name:
            continue
        chosen = [sem] if sem else list(semantics)
        expanded = list(registry.OPTIMIZERS) if name == "all" else [name]
        for optimizer in expanded:
            if optimizer not in registry.OPTIMIZERS:
                raise ValueError(
                    f"unknown optimizer {optimizer!r}; choose from "
                    f"{', '.join(registry.OPTIMIZERS)} (or all), optionally as NAME/keras"
                )
            for s in chosen:
                if s not in registry.SEMANTICS:
                    raise ValueError(f"unknown semantics {s!r} in {raw!r}; use torch or keras")
                hp = registry.resolve(optimizer, s, {})
                out.append(TrajectorySpec(optimizer, s, hp))
    return _unique(out)


def _unique(specs: Iterable[TrajectorySpec]) -> list[TrajectorySpec]:
    seen: set[str] = set()
    out = []
    for spec in specs:
        if spec.identity() not in seen:
            seen.add(spec.identity())
            out.append(spec)
    return out


def with_learning_rate(
    specs: Sequence[TrajectorySpec],
    function: TestFunction,
    learning_rate: LearningRate = None,
    lr_scale: float = 1.0,
) -> list[TrajectorySpec]:
    """The specs with the rate for ``function``: their own, ``"auto"`` or a number, × scale.

    Specs that become identical (a grid over the rate, replaced by one rate) are kept once;
    a fixed rate drops ``learning_rate`` from the grid axes.

    Raises:
        ValueError: the resulting rate is invalid for an optimizer (``registry.resolve``).
    """
    out = []
    for spec in specs:
        if learning_rate is None:
            lr = spec.learning_rate
        elif learning_rate == "auto":
            lr = function.suggested_learning_rate(spec.optimizer, spec.semantics)
        else:
            lr = float(learning_rate)
        lr *= lr_scale
        hp = registry.resolve(
            spec.optimizer, spec.semantics, {**spec.hyperparameters, "learning_rate": lr}
        )
        given, grid = spec.given, spec.grid
        if learning_rate is not None:
            given = {k: v for k, v in given.items() if k != "learning_rate"}
            grid = {k: v for k, v in grid.items() if k != "learning_rate"}
        out.append(replace(spec, hyperparameters=hp, given=given, grid=grid))
    return _unique(out)


@dataclass(frozen=True)
class PathMetrics:
    """What a path did, measured from its points.

    Attributes:
        status: ``converged`` (ends within tolerance of a minimum), ``unfinished`` (finite,
            not there yet), ``diverged`` (non-finite, or left the window grown
            `REGION_MARGIN` times); on a function without minima ``escaped`` (f went below
            its `escape_loss`) or ``stuck``.
        final_loss: f at the last point.
        final_distance: distance from the last point to the nearest minimum (None without
            minima).
        nearest_minimum: that minimum.
        steps_to_tolerance: the first step from which the path stays within tolerance of
            that minimum to its end (without minima: the first step with f ≤ escape_loss);
            None if never.
        overshoot: how far the path went past the reference point (the nearest minimum, or
            the saddle point) along the line from the start through it: the largest
            ``max(0, −(p − m)·u)``, u the unit vector from m towards the start.
        max_rise: the largest increase of f above its best value so far.
        stopped_step: the step whose update left the region or was non-finite (the path ends
            just before it); None if it ran every step.
    """

    status: str
    final_loss: float
    final_distance: float | None
    nearest_minimum: tuple[float, float] | None
    steps_to_tolerance: int | None
    overshoot: float
    max_rise: float
    stopped_step: int | None = None


@dataclass(frozen=True)
class Trajectory:
    """One optimizer's path on one function.

    Attributes:
        spec: the setting (its rate already the one used).
        function: the test function's name.
        path: ``(n + 1, 2)`` float64, the start and the point after each step taken.
        losses: ``(n + 1,)`` f along the path.
        metrics: `measure` of the path.
    """

    spec: TrajectorySpec
    function: str
    path: np.ndarray
    losses: np.ndarray
    metrics: PathMetrics

    @property
    def label(self) -> str:
        return self.spec.label


def measure(
    function: TestFunction,
    path: np.ndarray,
    losses: np.ndarray,
    stopped_step: int | None = None,
    stop_reason: str | None = None,
) -> PathMetrics:
    """`PathMetrics` of a path (points ``(n + 1, 2)``, losses ``(n + 1,)``).

    ``stopped_step`` / ``stop_reason`` (``"non-finite"`` or ``"left"``) say whether and why
    the path ended early.
    """
    last = path[-1]
    final_loss = float(losses[-1])
    rise = float(np.max(losses - np.minimum.accumulate(losses)))
    if function.minima:
        minima = np.asarray(function.minima)
        nearest = minima[np.argmin(np.linalg.norm(minima - last, axis=1))]
        distances = np.linalg.norm(path - nearest, axis=1)
        final_distance: float | None = float(distances[-1])
        outside = np.nonzero(distances > function.tolerance)[0]
        if distances[-1] > function.tolerance:
            steps_to = None
        else:
            steps_to = int(outside[-1] + 1) if outside.size else 0
        reference = nearest
        reached = final_distance <= function.tolerance
        status = "converged" if reached else "unfinished"
    else:
        nearest, final_distance = None, None
        below = np.nonzero(losses <= (function.escape_loss or -math.inf))[0]
        steps_to = int(below[0]) if below.size else None
        reference = np.asarray(function.saddle_points[0] if function.saddle_points else (0, 0))
        status = "escaped" if steps_to is not None else "stuck"
    if stopped_step is not None and status not in ("escaped",):
        status = "diverged"
    if stop_reason == "non-finite":
        status = "diverged"
    towards_start = path[0] - reference
    norm = float(np.linalg.norm(towards_start))
    if norm > 0:
        past = -((path - reference) @ (towards_start / norm))
        overshoot = float(max(0.0, past.max()))
    else:
        overshoot = 0.0
    return PathMetrics(
        status=status,
        final_loss=final_loss,
        final_distance=final_distance,
        nearest_minimum=None if nearest is None else (float(nearest[0]), float(nearest[1])),
        steps_to_tolerance=steps_to,
        overshoot=overshoot,
        max_rise=rise,
        stopped_step=stopped_step,
    )


def _batch_key(spec: TrajectorySpec) -> str:
    """Specs with the same key share one batched update (as `optsweep.study.batch_key`)."""
    info = registry.OPTIMIZERS[spec.optimizer]
    structural = {
        name: value
        for name, value in sorted(spec.hyperparameters.items())
        if info.params[name].structural or value is None
    }
    return json.dumps([spec.optimizer, spec.semantics, structural], default=str)


def run_trajectories(
    function: TestFunction,
    specs: Sequence[TrajectorySpec],
    *,
    steps: int | None = None,
    start: tuple[float, float] | None = None,
) -> list[Trajectory]:
    """Run every spec on ``function`` from ``start`` for ``steps`` steps; results in spec order.

    Specs that differ only in continuous hyperparameters run together: one ``(K, 2)``
    parameter, one gradient and one ``update`` call per step. A trial whose update turns
    non-finite or leaves the window grown `REGION_MARGIN` times stops there (its path ends
    at its last good point); the others go on.
    """
    steps = function.steps if steps is None else steps
    start = function.start if start is None else start
    groups: dict[str, list[int]] = {}
    for index, spec in enumerate(specs):
        groups.setdefault(_batch_key(spec), []).append(index)
    out: list[Trajectory | None] = [None] * len(specs)
    for indices in groups.values():
        batch = [specs[i] for i in indices]
        for i, trajectory in zip(indices, _run_batch(function, batch, steps, start), strict=True):
            out[i] = trajectory
    return [t for t in out if t is not None]


def answered(
    function: TestFunction, state: Any, params: Tensor, loss: Tensor
) -> tuple[Tensor, Tensor]:
    """The point a method answers with and its value: where it evaluates (Schedule-Free's
    average x, an EMA's average), which may not be where it takes gradients (y)."""
    (point,) = evaluation_weights(state, [params])
    if point is params:
        return params, loss
    return point, function.fn(point[:, 0], point[:, 1])


def _run_batch(
    function: TestFunction,
    specs: Sequence[TrajectorySpec],
    steps: int,
    start: tuple[float, float],
) -> list[Trajectory]:
    first = specs[0]
    transformation = build(first.optimizer, first.semantics, first.hyperparameters)
    hp = stack_hyperparameters(first.optimizer, [s.hyperparameters for s in specs])
    # The update unscales gradients by loss_scale_factor; our loss is the function itself.
    grad_scale = first.hyperparameters.get("loss_scale_factor") or 1.0
    k = len(specs)
    (x0, x1), (y0, y1) = function.region(REGION_MARGIN)
    low = torch.tensor([x0, y0], dtype=torch.float64)
    high = torch.tensor([x1, y1], dtype=torch.float64)

    params = torch.tensor([start] * k, dtype=torch.float64)
    state = transformation.init([params])
    points = torch.empty(steps + 1, k, 2, dtype=torch.float64)
    losses = torch.empty(steps + 1, k, dtype=torch.float64)
    alive = torch.ones(k, dtype=torch.bool)
    stopped = torch.full((k,), -1, dtype=torch.int64)  # step whose update failed
    non_finite = torch.zeros(k, dtype=torch.bool)
    for step in range(steps):
        loss, grad = value_and_grad(function, params)
        points[step], losses[step] = answered(function, state, params, loss)
        (new,), state = transformation.update([grad * grad_scale], state, [params], hp)
        finite = torch.isfinite(new).all(dim=1)
        inside = ((new >= low) & (new <= high)).all(dim=1)
        ok = finite & inside
        failing = alive & ~ok
        stopped = torch.where(failing, step + 1, stopped)
        non_finite |= failing & ~finite
        alive &= ok
        params = torch.where(alive[:, None], new, params)
    loss, _ = value_and_grad(function, params)
    points[steps], losses[steps] = answered(function, state, params, loss)

    out = []
    all_points, all_losses = points.numpy(), losses.numpy()
    for j, spec in enumerate(specs):
        stop = int(stopped[j])
        end = steps + 1 if stop < 0 else stop  # the path keeps points 0 .. stop − 1
        path, path_losses = all_points[:end, j].copy(), all_losses[:end, j].copy()
        metrics = measure(
            function,
            path,
            path_losses,
            stopped_step=None if stop < 0 else stop,
            stop_reason=None if stop < 0 else ("non-finite" if non_finite[j] else "left"),
        )
        out.append(Trajectory(spec, function.name, path, path_losses, metrics))
    return out


@dataclass(frozen=True)
class TrajectoryRun:
    """Every function's trajectories, and how they were run.

    Attributes:
        results: function name -> its trajectories, in spec order.
        steps: function name -> steps run.
        start: function name -> start point.
        learning_rate: the ``--lr`` policy (None: each trial's own; ``"auto"``; a number).
        lr_scale: the factor applied on top.
        source: the config file, or None for ``--optimizers``.
    """

    results: dict[str, list[Trajectory]]
    steps: dict[str, int]
    start: dict[str, tuple[float, float]]
    learning_rate: LearningRate = None
    lr_scale: float = 1.0
    source: str | None = None


def trace(
    specs: Sequence[TrajectorySpec],
    functions: Iterable[str] = DEFAULT_FUNCTIONS,
    *,
    steps: int | None = None,
    start: tuple[float, float] | None = None,
    learning_rate: LearningRate = None,
    lr_scale: float = 1.0,
    source: str | None = None,
) -> TrajectoryRun:
    """Run ``specs`` on each named function (`with_learning_rate`, then `run_trajectories`).

    Raises:
        ValueError: an unknown function name, or a rate the registry rejects.
    """
    names = list(functions)
    unknown = [name for name in names if name not in FUNCTIONS]
    if unknown:
        raise ValueError(
            f"unknown function {', '.join(map(repr, unknown))}; choose from {', '.join(FUNCTIONS)}"
        )
    results, used_steps, used_start = {}, {}, {}
    for name in names:
        function = FUNCTIONS[name]
        used_steps[name] = function.steps if steps is None else steps
        used_start[name] = function.start if start is None else start
        rated = with_learning_rate(specs, function, learning_rate, lr_scale)
        results[name] = run_trajectories(
            function, rated, steps=used_steps[name], start=used_start[name]
        )
    return TrajectoryRun(results, used_steps, used_start, learning_rate, lr_scale, source)


def parse_point(text: str) -> tuple[float, float]:
    """``"-1.5,2"`` -> ``(-1.5, 2.0)``; ValueError saying what is expected."""
    parts = text.replace(" ", "").split(",")
    try:
        x, y = (float(p) for p in parts)
    except ValueError:
        raise ValueError(f"--start {text!r}: expected two numbers x,y such as -1.5,2") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ValueError(f"--start {text!r}: expected finite numbers")
    return x, y


def parse_learning_rate(text: str | None) -> LearningRate:
    """``--lr``: None (keep each trial's), ``auto``, or a positive number."""
    if text is None or text == "config":
        return None
    if text == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"--lr {text!r}: expected auto, config or a number such as 0.01") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"--lr {text!r}: expected a positive number")
    return value


def parse_list(text: str | None, default: Sequence[str], every: Iterable[str]) -> list[str]:
    """A comma-separated list; None gives ``default``, ``all`` gives ``every``."""
    if text is None:
        return list(default)
    names = [part.strip() for part in text.split(",") if part.strip()]
    return list(every) if names == ["all"] else names
