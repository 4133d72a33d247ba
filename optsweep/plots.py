"""Pictures of a sweep, drawn from `TrialRecord`s with matplotlib (Agg, files only)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from optsweep.config import fmt
from optsweep.files import replacing
from optsweep.records import TrialRecord, ranked
from optsweep.stats import ConfigSummary


def plot_curves(records: Sequence[TrialRecord], folder: Path) -> list[Path]:
    """train_loss.png, test_accuracy.png and, with several optimizers (or conventions),
    best_per_optimizer.png; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    done = [r for r in ranked(records) if r.epochs or r.steps]
    if not done:
        return []
    best = done[0] if done[0].status == "complete" else None
    written = []

    # the other trials as one artist each figure: a Line2D per trial cost ~1 ms apiece
    others = [r for r in done if r is not best]
    fig, ax = plt.subplots(figsize=(8, 5))
    _grey_lines(ax, [(r.steps, r.step_losses) for r in others], lw=0.6, alpha=0.6)
    if best is not None:
        ax.plot(best.steps, best.step_losses, color="C3", lw=1.5, label=f"best: {best.label}")
        ax.legend(fontsize=7, loc="upper right")
    ax.set(xlabel="step", ylabel="train loss", yscale="log", title="Train loss per step")
    written.append(_save(fig, folder / "train_loss.png"))

    def accuracy_curve(r: TrialRecord) -> tuple[list[int], list[float]]:
        return [e["epoch"] for e in r.epochs], [e["test_accuracy"] for e in r.epochs]

    fig, ax = plt.subplots(figsize=(8, 5))
    _grey_lines(ax, [accuracy_curve(r) for r in others], lw=0.7, alpha=0.6, marker_size=4)
    if best is not None:
        ax.plot(
            *accuracy_curve(best), marker="o", ms=2, color="C3", lw=2, label=f"best: {best.label}"
        )
        ax.legend(fontsize=7, loc="lower right")
    ax.set(xlabel="epoch", ylabel="test accuracy", title="Test accuracy per epoch")
    written.append(_save(fig, folder / "test_accuracy.png"))

    best_of: dict[str, TrialRecord] = {}
    for r in done:
        if r.status == "complete":
            best_of.setdefault(f"{r.optimizer}/{r.semantics}", r)
    if len(best_of) > 1:  # with one optimizer the best trial is already drawn above
        fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
        for i, (name, r) in enumerate(best_of.items()):
            left.plot(r.steps, r.step_losses, lw=1, color=f"C{i % 10}", label=name)
            right.plot(
                [e["epoch"] for e in r.epochs],
                [e["test_accuracy"] for e in r.epochs],
                marker="o",
                color=f"C{i % 10}",
                label=f"{name} ({r.final_test_accuracy:.4f})",
            )
        left.set(xlabel="step", ylabel="train loss", yscale="log", title="Best trial per optimizer")
        right.set(xlabel="epoch", ylabel="test accuracy", title="Best trial per optimizer")
        left.legend(fontsize=7)
        right.legend(fontsize=7)
        written.append(_save(fig, folder / "best_per_optimizer.png"))
    return written


def _grey_lines(
    ax: Any,
    curves: Sequence[tuple[Sequence[float], Sequence[float]]],
    *,
    lw: float,
    alpha: float,
    marker_size: float = 0,
) -> None:
    """Curves drawn in grey as one LineCollection (and one scatter for their points)."""
    from matplotlib.collections import LineCollection

    curves = [(x, y) for x, y in curves if len(x)]
    if not curves:
        return
    ax.add_collection(
        LineCollection([np.column_stack(c) for c in curves], colors="0.6", lw=lw, alpha=alpha)
    )
    if marker_size:
        ax.scatter(
            np.concatenate([x for x, _ in curves]),
            np.concatenate([y for _, y in curves]),
            s=marker_size,
            color="0.6",
            alpha=alpha,
        )
    ax.autoscale_view()


# Fixed margins for the pictures every run draws: tight_layout measured 0.64 s of the 3.0 s
# report of a 160-trial sweep here (it lays every tick label out again), fixed margins ~0.
MARGINS = {"left": 0.09, "right": 0.98, "top": 0.92, "bottom": 0.11, "wspace": 0.22}


def _save(fig: Any, path: Path, layout: str = "fixed") -> Path:
    """Write ``fig`` as PNG; ``layout``: ``fixed`` margins, ``tight``, or ``as is`` (the
    figure's own margins or layout engine, e.g. constrained)."""
    if layout == "fixed":
        fig.subplots_adjust(**MARGINS)
    elif layout == "tight":
        fig.tight_layout()
    with replacing(path) as temporary:
        fig.savefig(temporary, dpi=110, format="png")
    _pyplot().close(fig)
    return path


# ── over seeds and over the grid (from stats.ConfigSummary) ───────────────────────────


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_mean_curves(summaries: Sequence[ConfigSummary], path: Path, top: int = 8) -> Path | None:
    """Mean test accuracy per epoch of the best ``top`` configurations, a band of ±1 std."""
    shown = [s for s in summaries if s.curves][:top]
    if not shown:
        return None
    plt = _pyplot()
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
    return _save(fig, path)


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
        plt = _pyplot()
        fig, axes = plt.subplots(
            1,
            len(panels),
            figsize=(3.2 * len(panels) + 1.5, 3.8),
            squeeze=False,
            sharey=True,
            layout="constrained",
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
            image, ax=axes[0].tolist(), label="final test accuracy (best, mean over seeds)"
        )
        fig.suptitle(f"{title}: {y} × {x}", fontsize=10)
        name = f"heatmap_{title.replace('/', '_')}_{x}_{y}.png"
        written.append(_save(fig, folder / name, layout="as is"))
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
    plt = _pyplot()
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
    return _save(fig, path, layout="as is")


def plot_search(study: Any, folder: Path) -> list[Path]:
    """Optuna's optimization history and parameter importances (searches)."""
    import warnings

    import optuna
    from optuna.visualization import matplotlib as optuna_plots

    _pyplot()
    written = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # PED-ANOVA and the legend warn of short searches (few trials per regime, one
        # parameter): the pictures are still right, the warnings only clutter the terminal
        warnings.simplefilter("ignore", UserWarning)
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if complete:
            ax = optuna_plots.plot_optimization_history(study)
            written.append(_save(ax.figure, folder / "optimization_history.png", layout="tight"))
        try:
            ax = optuna_plots.plot_param_importances(study)
            written.append(_save(ax.figure, folder / "param_importances.png", layout="tight"))
        except (ValueError, RuntimeError):  # fewer than two trials or no varying parameter
            pass
    return written
