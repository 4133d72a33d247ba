"""Pictures of a sweep, drawn from `TrialRecord`s with matplotlib (Agg, files only)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from optsweep.files import replacing
from optsweep.records import TrialRecord, ranked
from optsweep.stats import ConfigSummary
from optsweep.values import fmt


def solver_colours(records: Sequence[TrialRecord]) -> dict[str, str]:
    """One colour per ``optimizer/semantics`` for every picture of one report (matplotlib's
    cycle, best optimizer first), so an optimizer keeps its colour from picture to picture."""
    names = dict.fromkeys(f"{r.optimizer}/{r.semantics}" for r in ranked(records))
    return {name: f"C{i % MAX_COLOURS}" for i, name in enumerate(names)}


def _colour(colours: Mapping[str, str], name: str, i: int) -> str:
    return colours.get(name, f"C{i % MAX_COLOURS}")


CURVES = ("train_loss.png", "test_accuracy.png", "best_per_optimizer.png")


def plot_curves(
    records: Sequence[TrialRecord],
    folder: Path,
    colours: Mapping[str, str] | None = None,
    pictures: Sequence[str] = CURVES,
) -> list[Path]:
    """train_loss.png, test_accuracy.png and, with several optimizers (or conventions),
    best_per_optimizer.png, those of them in ``pictures``; returns the paths.

    Every trial is drawn in the colour of its optimizer (several optimizers) or of its value
    of the parameter that takes the most values (one optimizer), with a legend; the best trial
    is drawn thick, in black.
    """
    plt = pyplot()
    folder.mkdir(parents=True, exist_ok=True)
    done = [r for r in ranked(records) if r.epochs or r.steps]
    if not done:
        return []
    best = done[0] if done[0].status == "complete" else None
    written = []
    others = [r for r in done if r is not best]
    groups = colour_groups(others)
    colours = solver_colours(records) if colours is None else colours

    def accuracy_curve(r: TrialRecord) -> tuple[list[int], list[float]]:
        return [e["epoch"] for e in r.epochs], [e["test_accuracy"] for e in r.epochs]

    def loss_curve(r: TrialRecord) -> tuple[list[int], list[float]]:
        return r.steps, r.step_losses

    for curve, name, labels, title, where in (
        (
            loss_curve,
            "train_loss.png",
            ("step", "train loss"),
            "Train loss per step",
            "upper right",
        ),
        (
            accuracy_curve,
            "test_accuracy.png",
            ("epoch", "test accuracy"),
            "Test accuracy per epoch",
            "lower right",
        ),
    ):
        if name not in pictures:
            continue
        fig, ax = plt.subplots(figsize=(8, 5))
        markers = 4 if curve is accuracy_curve else 0
        for i, (label, members) in enumerate(groups.items()):
            colour = _colour(colours, label, i) if len(groups) > 1 else "0.6"
            _lines(ax, [curve(r) for r in members], colour, label, lw=0.7, marker_size=markers)
        if best is not None:
            ax.plot(
                *curve(best),
                color="black",
                lw=1.8,
                marker="o" if markers else None,
                ms=2,
                label=f"best: {best.label}",
            )
        ax.set(xlabel=labels[0], ylabel=labels[1], title=title)
        if curve is loss_curve:
            ax.set_yscale("log")
        else:
            ax.xaxis.get_major_locator().set_params(integer=True)  # epochs: 1, 2, 3
            last = max((len(r.epochs) for r in done), default=1)
            ax.set_xlim(0.5, last + 0.5)  # one epoch: a point at 1, not an axis 0.96-1.04
        ax.legend(fontsize=7, loc=where, ncols=2 if len(groups) > 8 else 1)
        written.append(save_figure(fig, folder / name))

    best_of: dict[str, TrialRecord] = {}
    for r in done:
        if r.status == "complete":
            best_of.setdefault(f"{r.optimizer}/{r.semantics}", r)
    # with one optimizer the best trial is already drawn above
    if len(best_of) > 1 and "best_per_optimizer.png" in pictures:
        fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
        for i, (name, r) in enumerate(best_of.items()):
            left.plot(r.steps, r.step_losses, lw=1, color=_colour(colours, name, i), label=name)
            right.plot(
                [e["epoch"] for e in r.epochs],
                [e["test_accuracy"] for e in r.epochs],
                marker="o",
                color=_colour(colours, name, i),
                label=f"{name} ({r.final_test_accuracy:.4f})",
            )
        left.set(xlabel="step", ylabel="train loss", yscale="log", title="Best trial per optimizer")
        right.set(xlabel="epoch", ylabel="test accuracy", title="Best trial per optimizer")
        right.xaxis.get_major_locator().set_params(integer=True)
        left.legend(fontsize=7)
        right.legend(fontsize=7)
        written.append(save_figure(fig, folder / "best_per_optimizer.png"))
    return written


MAX_COLOURS = 10  # matplotlib's default cycle: more groups than this would repeat colours


def colour_groups(records: Sequence[TrialRecord]) -> dict[str, list[TrialRecord]]:
    """Records by legend entry: by optimizer (``adam/keras``) when there are several, else by
    the value of the parameter that takes the most values (``lr=0.001``, at most
    `MAX_COLOURS` of them), else one group ``other trials``."""
    by_optimizer: dict[str, list[TrialRecord]] = {}
    for r in records:
        by_optimizer.setdefault(f"{r.optimizer}/{r.semantics}", []).append(r)
    if len(by_optimizer) > 1:
        return by_optimizer
    counts: dict[str, set[str]] = {}
    for r in records:
        for name, value in r.params.items():
            counts.setdefault(name, set()).add(fmt(value))
    candidates = [n for n, values in counts.items() if 1 < len(values) <= MAX_COLOURS]
    if not candidates:
        return {"other trials": list(records)} if records else {}
    name = max(candidates, key=lambda n: len(counts[n]))
    values = sorted({r.params.get(name) for r in records}, key=_order)
    return {f"{name}={fmt(v)}": [r for r in records if r.params.get(name) == v] for v in values}


def _lines(
    ax: Any,
    curves: Sequence[tuple[Sequence[float], Sequence[float]]],
    colour: str,
    label: str,
    *,
    lw: float,
    marker_size: float = 0,
) -> None:
    """Curves of one colour as one LineCollection (a Line2D per trial cost ~1 ms apiece) and
    one scatter for their points, with one legend entry."""
    from matplotlib.collections import LineCollection

    curves = [(x, y) for x, y in curves if len(x)]
    if not curves:
        return
    ax.add_collection(
        LineCollection(
            [np.column_stack(c) for c in curves], colors=colour, lw=lw, alpha=0.6, label=label
        )
    )
    if marker_size:
        ax.scatter(
            np.concatenate([x for x, _ in curves]),
            np.concatenate([y for _, y in curves]),
            s=marker_size,
            color=colour,
            alpha=0.6,
        )
    ax.autoscale_view()


# Fixed margins for the pictures every run draws: tight_layout measured 0.64 s of the 3.0 s
# report of a 160-trial sweep here (it lays every tick label out again), fixed margins ~0.
MARGINS = {"left": 0.09, "right": 0.98, "top": 0.92, "bottom": 0.11, "wspace": 0.22}


def save_figure(fig: Any, path: Path, layout: str = "fixed") -> Path:
    """Write ``fig`` as PNG; ``layout``: ``fixed`` margins, ``tight``, or ``as is`` (the
    figure's own margins or layout engine, e.g. constrained)."""
    if layout == "fixed":
        fig.subplots_adjust(**MARGINS)
    elif layout == "tight":
        fig.tight_layout()
    with replacing(path) as temporary:
        fig.savefig(temporary, dpi=110, format="png")
    pyplot().close(fig)
    return path


# ── over seeds and over the grid (from stats.ConfigSummary) ───────────────────────────


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_mean_curves(summaries: Sequence[ConfigSummary], path: Path, top: int = 8) -> Path | None:
    """Mean test accuracy per epoch of the best ``top`` configurations, a band of ±1 std."""
    shown = [s for s in summaries if s.curves][:top]
    if not shown:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 5))
    for i, s in enumerate(shown):
        curves = np.array(
            [c for c in s.curves.values() if len(c) == max(map(len, s.curves.values()))]
        )
        epochs = np.arange(1, curves.shape[1] + 1)
        mean, std = curves.mean(axis=0), curves.std(axis=0, ddof=1) if len(curves) > 1 else 0
        ax.plot(
            epochs,
            mean,
            marker="o",
            ms=3,
            color=f"C{i}",
            label=f"{summary_label(s)} (n={len(curves)})",
        )
        ax.fill_between(epochs, mean - std, mean + std, color=f"C{i}", alpha=0.15)
    ax.set(
        xlabel="epoch", ylabel="test accuracy", title="Mean test accuracy over seeds (band: ±1 std)"
    )
    ax.legend(fontsize=7, loc="lower right")
    return save_figure(fig, path)


def summary_label(s: ConfigSummary) -> str:
    """``adam/keras lr=0.001 beta_1=0.9`` for legends."""
    values = " ".join(f"{k}={fmt(v)}" for k, v in s.params.items())
    return f"{s.optimizer}/{s.semantics} {values}".strip()


def _varying(summaries: Sequence[ConfigSummary]) -> dict[str, list[Any]]:
    """Parameters taking ≥ 2 values across the summaries, with their sorted values."""
    values: dict[str, set[Any]] = {}
    for s in summaries:
        for k, v in s.params.items():
            values.setdefault(k, set()).add(v)
    return {k: sorted(v, key=_order) for k, v in values.items() if len(v) > 1}


def _order(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, (int, float)) else (1, str(value))


def heatmap_data(
    summaries: Sequence[ConfigSummary],
) -> list[tuple[str, str, str | None, dict[Any, np.ndarray], list[Any], list[Any]]]:
    """Per optimizer: (title, x, y, facet, {facet value: grid of best mean acc}, xs, ys).

    The two axes are the varying parameters with the most values (learning rate is the facet
    when a third varies); every other parameter is maximised over, so a cell is the best mean
    final accuracy reachable at that (x, y) pair.
    """
    out = []
    groups: dict[tuple[str, str], list[ConfigSummary]] = {}
    for s in summaries:
        if s.accuracy_by_seed:
            groups.setdefault((s.optimizer, s.semantics), []).append(s)
    for (optimizer, semantics), group in groups.items():
        varying = _varying(group)
        if len(varying) < 2:
            continue
        names = sorted(varying, key=lambda n: -len(varying[n]))
        rate = next((n for n in ("learning_rate", "lr") if n in varying), None)
        facet = rate if rate is not None and len(varying) > 2 else None
        x, y = [n for n in names if n != facet][:2]
        panels: dict[Any, np.ndarray] = {}
        for f in varying[facet] if facet else [None]:
            grid = np.full((len(varying[y]), len(varying[x])), np.nan)
            for s in group:
                if facet and s.params.get(facet) != f:
                    continue
                i, j = varying[y].index(s.params[y]), varying[x].index(s.params[x])
                grid[i, j] = np.fmax(grid[i, j], s.mean)
            panels[f] = grid
        out.append((f"{optimizer}/{semantics}", x, y, facet, panels, varying[x], varying[y]))
    return out


def plot_heatmaps(summaries: Sequence[ConfigSummary], folder: Path) -> list[Path]:
    """``heatmap_<optimizer>_<x>_<y>.png``: final accuracy over two parameters."""
    written = []
    for title, x, y, facet, panels, xs, ys in heatmap_data(summaries):
        plt = pyplot()
        width, height = 3.2 * len(panels) + 1.5, 3.8
        fig, axes = plt.subplots(
            1, len(panels), figsize=(width, height), squeeze=False, sharey=True
        )
        # margins in inches, for any number of panels: the 160-point grid's heatmap took 0.38-0.46 s
        # with a constrained layout, 0.23-0.24 s with these (medians of five runs, two series each)
        fig.subplots_adjust(
            left=0.85 / width,
            right=1 - 0.1 / width,
            bottom=0.5 / height,
            top=1 - 0.6 / height,
            wspace=0.08,
        )
        vmin = np.nanmin([np.nanmin(g) if not np.all(np.isnan(g)) else 1 for g in panels.values()])
        for ax, (value, grid) in zip(axes[0], panels.items(), strict=True):
            image = ax.imshow(
                grid, vmin=vmin, vmax=1, cmap="viridis", origin="lower", aspect="auto"
            )
            for (i, j), acc in np.ndenumerate(grid):
                if not np.isnan(acc):
                    ax.text(
                        j,
                        i,
                        f"{acc:.3f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if acc < (vmin + 1) / 2 else "black",
                    )
            ax.set_xticks(range(len(xs)), [fmt(v) for v in xs], fontsize=7)
            ax.set_yticks(range(len(ys)), [fmt(v) for v in ys], fontsize=7)
            ax.set(xlabel=x, title=f"{facet}={fmt(value)}" if facet else title)
        axes[0][0].set_ylabel(y)
        fig.colorbar(
            image,
            ax=axes[0].tolist(),
            label="final test accuracy (best, mean over seeds)",
            fraction=0.9 / width,
            pad=0.15 / width,
        )
        fig.suptitle(f"{title}: {y} × {x}", fontsize=10)
        name = f"heatmap_{title.replace('/', '_')}_{x}_{y}.png"
        written.append(save_figure(fig, folder / name, layout="as is"))
    return written


def sensitivity_data(summaries: Sequence[ConfigSummary]) -> dict[str, dict[Any, list[float]]]:
    """For each varying parameter: value → mean final accuracies of the configurations."""
    done = [s for s in summaries if s.accuracy_by_seed]
    data: dict[str, dict[Any, list[float]]] = {}
    for name, values in _varying(done).items():
        data[name] = {v: [s.mean for s in done if s.params.get(name) == v] for v in values}
    return data


def plot_sensitivity(summaries: Sequence[ConfigSummary], path: Path) -> Path | None:
    """One panel per parameter: every configuration's accuracy at each value, best marked."""
    data = sensitivity_data(summaries)
    if not data:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(
        1, len(data), figsize=(3.2 * len(data) + 0.8, 3.8), squeeze=False, sharey=True
    )
    for ax, (name, by_value) in zip(axes[0], data.items(), strict=True):
        xs = [i for i, accs in enumerate(by_value.values()) for _ in accs]
        ax.scatter(
            xs, [a for accs in by_value.values() for a in accs], s=10, color="0.5", alpha=0.6
        )
        best = [max(a) if a else np.nan for a in by_value.values()]
        ax.plot(range(len(best)), best, color="C3", marker="o", label="best")
        ax.set_xticks(range(len(by_value)), [fmt(v) for v in by_value], fontsize=7, rotation=30)
        ax.set(xlabel=name)
    axes[0][0].legend(fontsize=7)
    axes[0][0].set_ylabel("final test accuracy")
    fig.suptitle("Sensitivity: final accuracy of every configuration at each value", fontsize=10)
    fig.subplots_adjust(left=0.06, right=0.99, top=0.9, bottom=0.2, wspace=0.08)
    return save_figure(fig, path, layout="as is")


# Parameter importances from fewer completed trials than this are noise (an optimizer 9 points
# ahead came out below 0.01 from 12 trials): left out, as the README says.
MIN_IMPORTANCE_TRIALS = 20


def plot_search(trials: Sequence[Any], direction: Any, folder: Path) -> list[Path]:
    """Optuna's optimization history, and parameter importances from `MIN_IMPORTANCE_TRIALS`
    completed trials up (searches), of a search's ``trials`` (`optuna.trial.FrozenTrial`)
    toward its ``direction``: a copy of the study in memory, so that a painter (`painters`)
    can draw them without the study's connection."""
    import warnings

    import optuna
    from optuna.visualization import matplotlib as optuna_plots

    pyplot()
    # a painter forked before the command quietened Optuna would log the copy's creation
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=direction)
    study.add_trials(trials)
    written = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # PED-ANOVA and the legend warn of short searches (few trials per regime, one
        # parameter): the pictures are still right, the warnings only clutter the terminal
        warnings.simplefilter("ignore", UserWarning)
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if complete:
            ax = optuna_plots.plot_optimization_history(study)
            written.append(
                save_figure(ax.figure, folder / "optimization_history.png", layout="tight")
            )
        if len(complete) >= MIN_IMPORTANCE_TRIALS:
            try:
                ax = optuna_plots.plot_param_importances(study)
                ax.set_title(f"Parameter importances ({len(complete)} completed trials)")
                written.append(
                    save_figure(ax.figure, folder / "param_importances.png", layout="tight")
                )
            except (ValueError, RuntimeError):  # no varying parameter
                pass
    return written


# ── what the benchmark papers draw (from optsweep.measures rows) ─────────────────────────


def rows_by_optimizer(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """`optsweep.measures` rows per ``optimizer/semantics``, in first-seen order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(f"{row['optimizer']}/{row['semantics']}", []).append(row)
    return groups


# Below this many configurations (or trials) of an optimizer, a tuning-cost curve is mostly its
# bootstrap band: the picture says so.
FEW_CONFIGURATIONS = 5


def few_note(few: Mapping[str, int], optimizers: int, search: bool) -> str:
    """What a tuning-cost picture says when some optimizers have few configurations (or
    trials): ``every optimizer has 3 configurations: the band is mostly resampling``."""
    what = "trials" if search else "configurations"
    tail = "" if search else ": the band is mostly resampling"
    counts = set(few.values())
    if len(few) == optimizers and len(counts) == 1:
        return f"every optimizer has {counts.pop()} {what}{tail}"
    return f"few {what} ({', '.join(f'{name} {n}' for name, n in few.items())}){tail}"


def plot_tuning_cost(
    rows: Sequence[dict[str, Any]],
    path: Path,
    search: bool = False,
    colours: Mapping[str, str] | None = None,
) -> Path | None:
    """E[best of k configurations] per optimizer with its bootstrap band (grids,
    `measures.tuning_cost`), or the best so far over a search's trials (`measures.best_so_far`)."""
    if not rows:
        return None
    plt = pyplot()
    colours = colours or {}
    fig, ax = plt.subplots(figsize=(8, 5))
    groups = rows_by_optimizer(rows)
    for i, (name, group) in enumerate(groups.items()):
        k = [row["k"] for row in group]
        colour = _colour(colours, name, i)
        if search:
            ax.step(
                k, [row["best_so_far"] for row in group], where="post", color=colour, label=name
            )
            continue
        ax.plot(
            k, [row["expected_best"] for row in group], color=colour, marker="o", ms=2, label=name
        )
        ax.fill_between(
            k,
            [row["low"] for row in group],
            [row["high"] for row in group],
            color=colour,
            alpha=0.15,
        )
    if max(row["k"] for row in rows) > 20:
        ax.set_xscale("log")
    else:
        ax.xaxis.get_major_locator().set_params(integer=True)  # k: 1, 2, 3
    few = {name: len(group) for name, group in groups.items() if len(group) < FEW_CONFIGURATIONS}
    # said above the legend it concerns, where no curve runs
    note = textwrap.fill(few_note(few, len(groups), search), 45) if few else None
    if search:
        ax.set(
            xlabel="trials of the optimizer (in search order)",
            ylabel="best mean final test accuracy so far",
            title="Tuning cost: the best configuration found after k trials",
        )
    else:
        ax.set(
            xlabel="k configurations drawn at random from the grid",
            ylabel="expected best mean final test accuracy",
            title="Tuning cost: expected best of k configurations (band: 5–95% bootstrap)",
        )
    ax.legend(fontsize=7, loc="lower right", title=note, title_fontsize=7)
    return save_figure(fig, path)


def plot_lr_sensitivity(
    rows: Sequence[dict[str, Any]], path: Path, colours: Mapping[str, str] | None = None
) -> Path | None:
    """Final accuracy against the learning rate (log axis), per optimizer, the other
    parameters at its best configuration; band: min to max over seeds; the best marked."""
    if not rows:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, (name, group) in enumerate(rows_by_optimizer(rows).items()):
        rates = [row["learning_rate"] for row in group]
        colour = _colour(colours or {}, name, i)
        ax.plot(rates, [row["mean"] for row in group], marker="o", ms=3, color=colour, label=name)
        ax.fill_between(
            rates,
            [row["low"] for row in group],
            [row["high"] for row in group],
            color=colour,
            alpha=0.15,
        )
        best = next(row for row in group if row["best"])
        ax.plot([best["learning_rate"]], [best["mean"]], marker="*", ms=12, color=colour)
    ax.set_xscale("log")
    ax.set(
        xlabel="learning rate",
        ylabel="final test accuracy (mean over seeds)",
        title="Learning-rate sensitivity: others at each optimizer's best (band: seeds' min–max)",
    )
    ax.legend(fontsize=7)
    return save_figure(fig, path)
