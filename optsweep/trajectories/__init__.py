"""See the optimizers move: their paths on classic 2-D test functions (``optsweep trajectories``).

The optimizers are the sweep's own update rules (`optsweep.optim.build`), run on one 2-D
point per trial: the K trials of a batch are a ``(K, 2)`` parameter tensor, and one
``update`` call per step moves all of them with per-trial hyperparameters, exactly as the
engine does for a model. The gradient is autograd's on the test function
(`optsweep.functions`).

Data first, drawn second, written last, one module each:

- `paths` (pure data): `specs_from_sweep` / `specs_from_names` → `TrajectorySpec`;
  `with_learning_rate` applies ``--lr`` / ``--lr-scale``; `run_trajectories` → `Trajectory`
  (the path as arrays) with its `PathMetrics` (`measure`); `trace` does it for several
  functions → `TrajectoryRun`;
- `tables`: `table_rows`, drawn by `rich_table`, written by `write_tables`;
- `drawing` (matplotlib, through `optsweep.plots`): `draw_paths` (PNG), `animate_paths`
  (GIF), `grid_panels` laid out and drawn by `draw_grid` (small multiples of one block's grid);
- here: `write_trajectories`, which writes a whole folder, every file whole or not at all.

Learning rates: a config's rates are tuned for a network, not for a 2-D function whose
gradients may be 1000 times larger (Rosenbrock) or smaller. ``learning_rate="auto"`` takes
each function's suggested rate for the optimizer's family
(`TestFunction.suggested_learning_rate`), a number sets every trial's rate, and
``lr_scale`` multiplies whatever rate results. Seeds are irrelevant (nothing is random) and
schedules are not applied (the rate is constant along a path).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from optsweep.files import replacing
from optsweep.functions import FUNCTIONS

from .drawing import (
    animate_paths,
    common_label,
    contour_data,
    draw_grid,
    draw_paths,
    figure_title,
    grid_groups,
    grid_panels,
)
from .paths import (
    DEFAULT_OPTIMIZERS,
    PathMetrics,
    Trajectory,
    TrajectoryRun,
    TrajectorySpec,
    measure,
    parse_learning_rate,
    parse_list,
    parse_point,
    run_trajectories,
    specs_from_names,
    specs_from_sweep,
    trace,
    with_learning_rate,
)
from .tables import rich_table, table_rows, write_tables

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
            for suffix, members in grid_groups(trajectories, force=bool(grid)):
                figure = out / f"{name}-{suffix}.png"
                title = f"{common_label(members)} on {figure_title(function, **where)}"
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
    with replacing(settings_path) as temporary:
        temporary.write_text(json.dumps(settings, indent=2) + "\n")
    written.append(settings_path)
    return written
