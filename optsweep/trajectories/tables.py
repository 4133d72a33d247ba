"""The paths as tables: rows from the data (`table_rows`), drawn in the terminal
(`rich_table`), written whole as ``table.csv`` and ``table.md`` (`write_tables`)."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

from rich.table import Table

from optsweep.files import replacing
from optsweep.functions import FUNCTIONS, TestFunction

from .paths import Trajectory, TrajectoryRun


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
    with replacing(csv_path) as temporary, temporary.open("w", newline="") as handle:
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
    with replacing(md_path) as temporary:
        temporary.write_text("\n".join(lines))
    return csv_path, md_path
