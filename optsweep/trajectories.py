"""See the optimizers move: their paths on classic 2-D test functions (``optsweep trajectories``).

The optimizers are the sweep's own update rules (`optsweep.optim.build`), run on one 2-D
point per trial: the K trials of a batch are a ``(K, 2)`` parameter tensor, and one
``update`` call per step moves all of them with per-trial hyperparameters, exactly as the
engine does for a model. The gradient is autograd's on the test function
(`optsweep.functions`).

Compute and draw are separate:

- compute (pure data): `specs_from_sweep` / `specs_from_names` → `TrajectorySpec`;
  `with_learning_rate` applies ``--lr`` / ``--lr-scale``; `run_trajectories` → `Trajectory`
  (the path as arrays) with its `PathMetrics` (`measure`); `trace` does it for several
  functions → `TrajectoryRun`; `table_rows`, `grid_panels` (the small-multiples layout);
- draw and write (matplotlib imported lazily): `draw_paths` (PNG), `animate_paths` (GIF),
  `draw_grid` (small multiples of one block's grid), `rich_table`, `write_tables`, and
  `write_trajectories`, which writes a whole folder.

Learning rates: a config's rates are tuned for a network, not for a 2-D function whose
gradients may be 1000 times larger (Rosenbrock) or smaller. ``learning_rate="auto"`` takes
each function's suggested rate for the optimizer's family
(`TestFunction.suggested_learning_rate`), a number sets every trial's rate, and
``lr_scale`` multiplies whatever rate results. Seeds are irrelevant (nothing is random) and
schedules are not applied (the rate is constant along a path).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from rich.table import Table

from optsweep.config import SweepSpec, expand
from optsweep.functions import DEFAULT_FUNCTIONS, FUNCTIONS, TestFunction, value_and_grad
from optsweep.optim import build, registry, stack_hyperparameters
from optsweep.values import fmt

__all__ = [
    "DEFAULT_OPTIMIZERS",
    "PathMetrics",
    "Trajectory",
    "TrajectoryRun",
    "TrajectorySpec",
    "animate_paths",
    "contour_data",
    "draw_grid",
    "draw_paths",
    "grid_panels",
    "measure",
    "parse_learning_rate",
    "parse_list",
    "parse_point",
    "rich_table",
    "run_trajectories",
    "specs_from_names",
    "specs_from_sweep",
    "table_rows",
    "trace",
    "with_learning_rate",
    "write_tables",
    "write_trajectories",
]

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
"""``optsweep trajectories`` without a config or ``--optimizers``: the seeds' classic set."""

LearningRate = float | Literal["auto"] | None
"""None: each trial's own rate; ``"auto"``: the function's suggestion; a number: that rate."""

REGION_MARGIN = 3.0
"""A path ends when it leaves the drawn window grown this many times about its centre."""


# ═══════════════════════════════════ compute ═══════════════════════════════════


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
        points[step], losses[step] = params, loss
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
    points[steps], losses[steps] = params, loss

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


# ─────────────────────────────────── table ───────────────────────────────────


def table_header(function: TestFunction) -> list[str]:
    """The table's columns; ``minimum`` only where the function has several."""
    header = ["optimizer", "status", "steps to tol", "final loss", "final distance"]
    if len(function.minima) > 1:
        header.append("minimum")
    return [*header, "overshoot", "max rise"]


def table_rows(function: TestFunction, trajectories: Sequence[Trajectory]) -> list[list[str]]:
    """The table's cells (`table_header`), one row per trajectory in the given order."""
    rows = []
    for t in trajectories:
        m = t.metrics
        status = m.status if m.stopped_step is None else f"{m.status} @{m.stopped_step}"
        row = [
            t.label,
            status,
            "—" if m.steps_to_tolerance is None else str(m.steps_to_tolerance),
            f"{m.final_loss:.3g}",
            "—" if m.final_distance is None else f"{m.final_distance:.3g}",
        ]
        if len(function.minima) > 1:
            x, y = m.nearest_minimum or (math.nan, math.nan)
            row.append(f"({x:.3g}, {y:.3g})")
        rows.append([*row, f"{m.overshoot:.3g}", f"{m.max_rise:.3g}"])
    return rows


def _table_note(
    function: TestFunction,
    steps: int,
    start: tuple[float, float],
    trajectories: Sequence[Trajectory] = (),
) -> str:
    if function.minima:
        goal = f"within {function.tolerance:g} of a minimum, staying there"
    else:
        goal = f"f ≤ {function.escape_loss:g} (left the saddle)"
    note = f"{steps} steps from ({start[0]:g}, {start[1]:g}); steps to tol: first step {goal}"
    if any(t.metrics.stopped_step is not None for t in trajectories):
        note += "; @N: stopped at step N (outside 3× the window, or not finite)"
    return note


def rich_table(
    function: TestFunction,
    trajectories: Sequence[Trajectory],
    steps: int,
    start: tuple[float, float],
) -> Table:
    """The table for the terminal, one row per trajectory."""
    table = Table(
        title=f"{function.name}: {function.formula}",
        caption=_table_note(function, steps, start, trajectories),
    )
    for name in table_header(function):
        table.add_column(name, justify="left" if name in ("optimizer", "status") else "right")
    for row in table_rows(function, trajectories):
        table.add_row(*row)
    return table


CSV_COLUMNS = (
    "function",
    "optimizer",
    "semantics",
    "label",
    "learning_rate",
    "status",
    "steps_to_tolerance",
    "final_loss",
    "final_distance",
    "nearest_minimum_x",
    "nearest_minimum_y",
    "overshoot",
    "max_rise",
    "stopped_step",
    "steps",
    "start_x",
    "start_y",
)


def write_tables(run: TrajectoryRun, folder: Path) -> tuple[Path, Path]:
    """``table.csv`` (every function, a row per trajectory) and ``table.md``; their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = folder / "table.csv", folder / "table.md"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for name, trajectories in run.results.items():
            for t in trajectories:
                m = t.metrics
                minimum = m.nearest_minimum or (None, None)
                writer.writerow(
                    [
                        name,
                        t.spec.optimizer,
                        t.spec.semantics,
                        t.label,
                        repr(t.spec.learning_rate),
                        m.status,
                        m.steps_to_tolerance,
                        repr(m.final_loss),
                        None if m.final_distance is None else repr(m.final_distance),
                        *minimum,
                        repr(m.overshoot),
                        repr(m.max_rise),
                        m.stopped_step,
                        len(t.path) - 1,
                        repr(float(t.path[0, 0])),
                        repr(float(t.path[0, 1])),
                    ]
                )
    lines = ["# Trajectories", ""]
    for name, trajectories in run.results.items():
        function = FUNCTIONS[name]
        note = _table_note(function, run.steps[name], run.start[name], trajectories)
        header = table_header(function)
        lines += [f"## {name}: {function.formula}", "", note, ""]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        lines += ["| " + " | ".join(row) + " |" for row in table_rows(function, trajectories)]
        lines.append("")
    md_path.write_text("\n".join(lines))
    return csv_path, md_path


# ─────────────────────────────── command-line text ───────────────────────────────


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


# ═══════════════════════════════════ draw ═══════════════════════════════════


def contour_data(
    function: TestFunction, resolution: int = 200
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``X, Y, Z`` on the function's window and the contour levels (log-spaced if it says so)."""
    xs = torch.linspace(*function.xlim, resolution, dtype=torch.float64)
    ys = torch.linspace(*function.ylim, resolution, dtype=torch.float64)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    z = function.fn(grid_x, grid_y).numpy()
    if function.log_levels:
        top = float(z.max())
        low = max(float(z.min()), top * 1e-6, 1e-12)
        levels = np.logspace(math.log10(low), math.log10(top), 24)
    else:
        levels = np.linspace(float(z.min()), float(z.max()), 24)
    return grid_x.numpy(), grid_y.numpy(), z, levels


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(n: int) -> list[Any]:
    plt = _pyplot()
    if n <= 10:
        return [f"C{i}" for i in range(n)]
    return list(plt.get_cmap("turbo")(np.linspace(0.05, 0.95, n)))


def _landscape(
    ax: Any, function: TestFunction, data: tuple[np.ndarray, ...], *, fill: bool
) -> None:
    """Contours, the minima (stars), saddle points (crosses), the window."""
    from matplotlib.colors import LogNorm

    x, y, z, levels = data
    norm = LogNorm(vmin=levels[0], vmax=levels[-1]) if function.log_levels else None
    if fill:
        ax.contourf(x, y, z, levels=levels, norm=norm, cmap="Greys_r", alpha=0.35, extend="both")
    ax.contour(x, y, z, levels=levels, norm=norm, cmap="viridis", linewidths=0.6, alpha=0.8)
    for points, marker, size, label in (
        (function.minima, "*", 13, "minimum"),
        (function.saddle_points, "X", 10, "saddle point"),
    ):
        for i, (px, py) in enumerate(points):
            ax.plot(
                px, py, marker, color="crimson", ms=size, mec="white", mew=0.8, zorder=5,
                label=label if i == 0 else None,
            )  # fmt: skip
    ax.set_xlim(function.xlim)
    ax.set_ylim(function.ylim)


def _title(function: TestFunction, steps: int, start: tuple[float, float]) -> str:
    return (
        f"{function.name}: f = {function.formula}, {steps} steps from ({start[0]:g}, {start[1]:g})"
    )


def _save(fig: Any, path: Path, dpi: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def draw_paths(
    function: TestFunction,
    trajectories: Sequence[Trajectory],
    path: Path,
    *,
    steps: int,
    start: tuple[float, float],
    marker_every: int | None = None,
) -> Path:
    """One PNG: the contours, every path (a marker every ``marker_every`` steps, default a
    tenth of the run), the start, the minima, and a legend with each final loss."""
    plt = _pyplot()
    every = marker_every or max(1, steps // 10)
    fig, ax = plt.subplots(figsize=(8.5, 5.5))
    _landscape(ax, function, contour_data(function), fill=True)
    for t, color in zip(trajectories, _colors(len(trajectories)), strict=True):
        m = t.metrics
        note = f"f={m.final_loss:.2g}" + ("" if m.status == "converged" else f", {m.status}")
        ax.plot(
            t.path[:, 0],
            t.path[:, 1],
            "-o",
            color=color,
            lw=1.4,
            ms=3,
            markevery=every,
            label=f"{t.label}  ({note})",
        )
    ax.plot(*start, "o", color="black", ms=6, zorder=6, label="start")
    ax.set(xlabel="x", ylabel="y", title=_title(function, steps, start))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return _save(fig, path)


def animate_paths(
    function: TestFunction,
    trajectories: Sequence[Trajectory],
    path: Path,
    *,
    steps: int,
    start: tuple[float, float],
    frames: int = 40,
    fps: int = 10,
) -> Path:
    """A GIF of the paths growing step by step (``frames`` frames spread over the run)."""
    from matplotlib.animation import PillowWriter

    plt = _pyplot()
    # Constrained layout keeps the legend outside the axes inside every frame.
    fig, ax = plt.subplots(figsize=(8, 4.2), layout="constrained")
    _landscape(ax, function, contour_data(function, 120), fill=False)
    lines, heads = [], []
    for t, color in zip(trajectories, _colors(len(trajectories)), strict=True):
        (line,) = ax.plot([], [], "-", color=color, lw=1.4, label=t.label)
        (head,) = ax.plot([], [], "o", color=color, ms=5)
        lines.append(line)
        heads.append(head)
    ax.plot(*start, "o", color="black", ms=5, zorder=6)
    fig.legend(fontsize=6, loc="outside right upper")
    caption = ax.set_title("")
    frames = max(2, frames)
    marks = np.unique(np.linspace(0, steps, frames).round().astype(int))

    def show(i: int) -> list[Any]:
        step = int(marks[i])
        for t, line, head in zip(trajectories, lines, heads, strict=True):
            shown = t.path[: step + 1]
            line.set_data(shown[:, 0], shown[:, 1])
            head.set_data(shown[-1:, 0], shown[-1:, 1])
        caption.set_text(f"{function.name}: step {step} of {steps}")
        return [*lines, *heads, caption]

    # The writer driven by hand draws each frame once (FuncAnimation.save draws it twice).
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = PillowWriter(fps=fps)
    with writer.saving(fig, str(path), dpi=72):
        for i in range(len(marks)):
            show(i)
            writer.grab_frame()
    plt.close(fig)
    return path


@dataclass(frozen=True)
class GridPanel:
    """One panel of a small-multiples figure: where it goes and what it shows."""

    row: int
    column: int
    title: str
    trajectory: Trajectory


def grid_panels(trajectories: Sequence[Trajectory]) -> list[GridPanel]:
    """Lay out one block's trajectories: rows × columns by its two grid axes, else a near-square
    grid in order. The axes are the grid names whose values differ between the trajectories."""
    axes = [
        name
        for name in dict.fromkeys(k for t in trajectories for k in t.spec.grid)
        if len({json.dumps(t.spec.grid.get(name), default=str) for t in trajectories}) > 1
    ]

    def shown(t: Trajectory, names: Sequence[str]) -> str:
        if not names:
            return t.label
        return ", ".join(f"{t.spec.display.get(n, n)}={fmt(t.spec.grid[n])}" for n in names)

    if len(axes) == 2:
        rows = list(dict.fromkeys(json.dumps(t.spec.grid[axes[0]]) for t in trajectories))
        cols = list(dict.fromkeys(json.dumps(t.spec.grid[axes[1]]) for t in trajectories))
        if len(rows) * len(cols) == len(trajectories):
            return [
                GridPanel(
                    rows.index(json.dumps(t.spec.grid[axes[0]])),
                    cols.index(json.dumps(t.spec.grid[axes[1]])),
                    shown(t, axes),
                    t,
                )
                for t in trajectories
            ]
    ncols = math.ceil(math.sqrt(len(trajectories)))
    return [GridPanel(i // ncols, i % ncols, shown(t, axes), t) for i, t in enumerate(trajectories)]


def draw_grid(
    function: TestFunction,
    trajectories: Sequence[Trajectory],
    path: Path,
    *,
    steps: int,
    start: tuple[float, float],
    title: str = "",
) -> Path:
    """Small multiples: one panel per trajectory (`grid_panels`), with its final loss."""
    plt = _pyplot()
    panels = grid_panels(trajectories)
    nrows = 1 + max(p.row for p in panels)
    ncols = 1 + max(p.column for p in panels)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(2.6 * ncols, 2.2 * nrows + 0.5),
        squeeze=False,
        sharex=True,
        sharey=True,
    )
    data = contour_data(function, 120)
    every = max(1, steps // 10)
    used = set()
    for panel in panels:
        ax = axes[panel.row][panel.column]
        used.add((panel.row, panel.column))
        _landscape(ax, function, data, fill=False)
        t = panel.trajectory
        ax.plot(t.path[:, 0], t.path[:, 1], "-o", color="C3", lw=1.2, ms=2, markevery=every)
        ax.plot(*start, "o", color="black", ms=4)
        m = t.metrics
        ax.set_title(f"{panel.title}\nf={m.final_loss:.2g} {m.status}", fontsize=8)
        ax.tick_params(labelsize=7)
    for r in range(nrows):
        for c in range(ncols):
            if (r, c) not in used:
                axes[r][c].set_visible(False)
    fig.suptitle(title or _title(function, steps, start), fontsize=10)
    fig.tight_layout()
    return _save(fig, path, dpi=90)


def _grid_groups(
    trajectories: Sequence[Trajectory], force: bool
) -> list[tuple[str, list[Trajectory]]]:
    """(file suffix, trajectories) for each small-multiples figure to draw."""
    blocks: dict[int, list[Trajectory]] = {}
    for t in trajectories:
        blocks.setdefault(t.spec.block, []).append(t)
    groups = []
    for block, members in blocks.items():
        varies = any(
            len({json.dumps(t.spec.grid.get(n), default=str) for t in members}) > 1
            for n in members[0].spec.grid
        )
        if block >= 0 and len(members) > 1 and varies:
            first = members[0].spec
            groups.append((f"grid-{block}-{first.optimizer}", members))
    if force and not groups and len(trajectories) > 1:
        groups.append(("grid", list(trajectories)))
    return groups


def _common_label(trajectories: Sequence[Trajectory]) -> str:
    """``momentum/keras lr=0.4 clipnorm=1``: what every trajectory of a grid figure shares."""
    first = trajectories[0].spec
    if any(
        (t.spec.optimizer, t.spec.semantics) != (first.optimizer, first.semantics)
        for t in trajectories
    ):
        return "every optimizer"
    parts = [f"{first.optimizer}/{first.semantics}"]
    for name in ["learning_rate", *(n for n in first.given if n != "learning_rate")]:
        values = {json.dumps(t.spec.hyperparameters.get(name), default=str) for t in trajectories}
        if len(values) == 1:
            shown = first.display.get(name, "lr" if name == "learning_rate" else name)
            parts.append(f"{shown}={fmt(first.hyperparameters[name])}")
    return " ".join(parts)


def write_trajectories(
    run: TrajectoryRun,
    out: Path,
    *,
    grid: bool | None = None,
    gif: bool = True,
    frames: int = 40,
) -> list[Path]:
    """Draw and write everything for ``run`` under ``out``; the files written.

    Per function: ``<function>.png``, ``<function>.gif`` (unless ``gif`` is False), and a
    small-multiples ``<function>-grid-<block>-<optimizer>.png`` per config block with a grid
    (``grid=None``: automatic; True: also one panel per trajectory when no block has a grid;
    False: none). Then ``table.csv``, ``table.md`` and ``settings.json``.
    """
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, trajectories in run.results.items():
        function = FUNCTIONS[name]
        where = {"steps": run.steps[name], "start": run.start[name]}
        written.append(draw_paths(function, trajectories, out / f"{name}.png", **where))
        if gif:
            written.append(
                animate_paths(function, trajectories, out / f"{name}.gif", frames=frames, **where)
            )
        if grid is not False:
            for suffix, members in _grid_groups(trajectories, force=bool(grid)):
                figure = out / f"{name}-{suffix}.png"
                title = f"{_common_label(members)} on {_title(function, **where)}"
                written.append(draw_grid(function, members, figure, title=title, **where))
    written.extend(write_tables(run, out))
    settings = {
        "source": run.source,
        "learning_rate": run.learning_rate,
        "lr_scale": run.lr_scale,
        "functions": {
            name: {"steps": run.steps[name], "start": list(run.start[name])} for name in run.results
        },
        "torch": torch.__version__,
    }
    settings_path = out / "settings.json"
    settings_path.write_text(json.dumps(settings, indent=2) + "\n")
    written.append(settings_path)
    return written
