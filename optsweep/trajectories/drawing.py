"""The paths drawn (matplotlib, through `optsweep.plots`): on the function's contours
(`draw_paths`), growing step by step (`animate_paths`, a GIF), and as small multiples of one
block's grid (`grid_panels` lays them out, `draw_grid` draws them); each file written whole."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from optsweep.files import replacing
from optsweep.functions import TestFunction
from optsweep.plots import pyplot
from optsweep.values import fmt

from .paths import Trajectory


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


def _colors(n: int) -> list[Any]:
    plt = pyplot()
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


def figure_title(function: TestFunction, steps: int, start: tuple[float, float]) -> str:
    return (
        f"{function.name}: f = {function.formula}, {steps} steps from ({start[0]:g}, {start[1]:g})"
    )


def _save(fig: Any, path: Path, dpi: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as temporary:
        fig.savefig(temporary, dpi=dpi, bbox_inches="tight", format="png")
    pyplot().close(fig)
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
    plt = pyplot()
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
    ax.set(xlabel="x", ylabel="y", title=figure_title(function, steps, start))
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

    plt = pyplot()
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
    # the temporary file keeps .gif: Pillow reads the format off the name
    with (
        replacing(path, keep_suffix=True) as temporary,
        writer.saving(fig, str(temporary), dpi=72),
    ):
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
    plt = pyplot()
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
    fig.suptitle(title or figure_title(function, steps, start), fontsize=10)
    fig.tight_layout()
    return _save(fig, path, dpi=90)


def grid_groups(
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


def common_label(trajectories: Sequence[Trajectory]) -> str:
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
