"""Results from the study alone: trials.csv, history.csv, table.md, curves/*.png.

Data first: `collect` turns the study's trials into `TrialRecord`s (plain data, tested
without pixels); the writers and plots only draw those records.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial
from rich.table import Table

from optsweep.study import final_trials, status_of

# Columns every row of trials.csv has, around the grid's parameter columns.
LEADING_COLUMNS = ("trial", "optimizer", "semantics", "seed")
METRIC_COLUMNS = (
    "status",
    "final_test_accuracy",
    "best_test_accuracy",
    "final_test_loss",
    "final_train_loss",
    "seconds",
)


@dataclass(frozen=True)
class TrialRecord:
    """One grid point's outcome, as read back from the study."""

    trial: int
    optimizer: str
    semantics: str
    seed: int
    params: dict[str, Any]
    status: str
    epochs: list[dict[str, float]] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)
    seconds: float = math.nan

    @property
    def final_test_accuracy(self) -> float:
        return self.epochs[-1]["test_accuracy"] if self.epochs else math.nan

    @property
    def best_test_accuracy(self) -> float:
        return max((e["test_accuracy"] for e in self.epochs), default=math.nan)

    @property
    def final_test_loss(self) -> float:
        return self.epochs[-1]["test_loss"] if self.epochs else math.nan

    @property
    def final_train_loss(self) -> float:
        return self.epochs[-1]["train_loss"] if self.epochs else math.nan

    @property
    def label(self) -> str:
        return trial_label(self.optimizer, self.semantics, self.params, self.seed)

    def row(self) -> dict[str, Any]:
        """The trials.csv row (parameters under their YAML names)."""
        return {
            "trial": self.trial,
            "optimizer": self.optimizer,
            "semantics": self.semantics,
            "seed": self.seed,
            **self.params,
            **{name: getattr(self, name) for name in METRIC_COLUMNS},
        }


def trial_label(optimizer: str, semantics: str, params: Mapping[str, Any], seed: int) -> str:
    """``adam/keras learning_rate=0.001 beta_1=0.9 seed=0``: one trial on one line."""
    return " ".join(
        [f"{optimizer}/{semantics}", *(f"{k}={_fmt(v)}" for k, v in params.items()), f"seed={seed}"]
    )


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def record_of(frozen: FrozenTrial) -> TrialRecord:
    """A `TrialRecord` from a finished (or failed) Optuna trial."""
    attrs = frozen.user_attrs
    params = {k: v for k, v in frozen.params.items() if k not in ("optimizer", "semantics")}
    return TrialRecord(
        trial=frozen.number,
        optimizer=frozen.params.get("optimizer", "?"),
        semantics=frozen.params.get("semantics", "?"),
        seed=int(attrs.get("seed", -1)),
        params=params,
        status=status_of(frozen),
        epochs=list(attrs.get("epochs", [])),
        steps=list(attrs.get("steps", [])),
        step_losses=list(attrs.get("step_losses", [])),
        seconds=float(attrs.get("seconds", math.nan)),
    )


def collect(study: optuna.Study) -> list[TrialRecord]:
    """One record per grid point (its final attempt), in trial order."""
    return [record_of(t) for t in final_trials(study)]


def ranked(records: Sequence[TrialRecord]) -> list[TrialRecord]:
    """Completed trials by final test accuracy, best first; the others after, by status."""

    def key(r: TrialRecord) -> tuple[int, float, int]:
        done = r.status == "complete" and not math.isnan(r.final_test_accuracy)
        return (0 if done else 1, -r.final_test_accuracy if done else 0.0, r.trial)

    return sorted(records, key=key)


def varying_params(records: Sequence[TrialRecord]) -> list[str]:
    """Parameter names in first-seen order (the grid's columns)."""
    names: dict[str, None] = {}
    for r in records:
        names.update(dict.fromkeys(r.params))
    return list(names)


# ── files ─────────────────────────────────────────────────────────────────────────────


def write_trials_csv(records: Sequence[TrialRecord], path: Path) -> None:
    """One row per trial: identity, parameters under their YAML names, metrics."""
    columns = [*LEADING_COLUMNS, *varying_params(records), *METRIC_COLUMNS]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        for r in records:
            writer.writerow(r.row())


def write_history_csv(records: Sequence[TrialRecord], path: Path) -> None:
    """Per trial: a row per epoch (kind=epoch) and per kept step (kind=step)."""
    columns = ["trial", "kind", "epoch", "step", "train_loss", "test_loss", "test_accuracy"]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        for r in records:
            for e in r.epochs:
                writer.writerow({"trial": r.trial, "kind": "epoch", **e})
            for step, loss in zip(r.steps, r.step_losses, strict=True):
                writer.writerow(
                    {"trial": r.trial, "kind": "step", "step": step, "train_loss": loss}
                )


def table_rows(records: Sequence[TrialRecord]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the ranked table (strings), shared by Markdown and Rich."""
    params = varying_params(records)
    header = [
        "rank",
        "optimizer",
        "semantics",
        *params,
        "seed",
        "test acc",
        "best acc",
        "test loss",
        "train loss",
        "status",
        "s",
    ]
    rows = []
    for rank, r in enumerate(ranked(records), start=1):
        rows.append(
            [
                str(rank) if r.status == "complete" else "–",
                r.optimizer,
                r.semantics,
                *(_fmt(r.params[p]) if p in r.params else "" for p in params),
                str(r.seed),
                f"{r.final_test_accuracy:.4f}",
                f"{r.best_test_accuracy:.4f}",
                f"{r.final_test_loss:.4f}",
                f"{r.final_train_loss:.4f}",
                r.status,
                f"{r.seconds:.1f}",
            ]
        )
    return header, rows


def write_table_md(records: Sequence[TrialRecord], path: Path, title: str) -> None:
    """The ranked table as Markdown, best first."""
    header, rows = table_rows(records)
    lines = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    counts = {s: sum(r.status == s for r in records) for s in {r.status for r in records}}
    lines += [
        "",
        "Trials: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ".",
        "Ranked by final test accuracy; diverged trials are listed last, unranked.",
    ]
    path.write_text("\n".join(lines) + "\n")


def rich_table(records: Sequence[TrialRecord], limit: int | None = None, title: str = "") -> Table:
    """The ranked table for the terminal (top ``limit`` rows)."""
    header, rows = table_rows(records)
    table = Table(title=title or None)
    for name in header:
        table.add_column(name, justify="right" if name in ("rank", "seed", "s") else "left")
    for row in rows[:limit]:
        table.add_row(*row)
    return table


# ── pictures ──────────────────────────────────────────────────────────────────────────


def plot_curves(records: Sequence[TrialRecord], folder: Path) -> list[Path]:
    """train_loss.png, test_accuracy.png and best_per_optimizer.png; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    done = [r for r in ranked(records) if r.epochs or r.steps]
    if not done:
        return []
    best = done[0] if done[0].status == "complete" else None
    written = []

    fig, ax = plt.subplots(figsize=(8, 5))
    for r in done:
        if r is not best:
            ax.plot(r.steps, r.step_losses, color="0.7", lw=0.6, alpha=0.6)
    if best is not None:
        ax.plot(best.steps, best.step_losses, color="C3", lw=1.5, label=f"best: {best.label}")
        ax.legend(fontsize=7, loc="upper right")
    ax.set(xlabel="step", ylabel="train loss", yscale="log", title="Train loss per step")
    written.append(_save(fig, folder / "train_loss.png"))

    fig, ax = plt.subplots(figsize=(8, 5))
    for r in done:
        epochs = [e["epoch"] for e in r.epochs]
        accs = [e["test_accuracy"] for e in r.epochs]
        style = (
            {"color": "C3", "lw": 2, "label": f"best: {best.label}"}
            if r is best
            else {"color": "0.6", "lw": 0.7, "alpha": 0.6}
        )
        ax.plot(epochs, accs, marker="o", ms=2, **style)
    if best is not None:
        ax.legend(fontsize=7, loc="lower right")
    ax.set(xlabel="epoch", ylabel="test accuracy", title="Test accuracy per epoch")
    written.append(_save(fig, folder / "test_accuracy.png"))

    best_of: dict[str, TrialRecord] = {}
    for r in done:
        if r.status == "complete":
            best_of.setdefault(f"{r.optimizer}/{r.semantics}", r)
    if best_of:
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


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def write_results(study: optuna.Study, folder: Path, title: str) -> list[TrialRecord]:
    """Every derived file of the results folder, rebuilt from the study."""
    records = collect(study)
    folder.mkdir(parents=True, exist_ok=True)
    write_trials_csv(records, folder / "trials.csv")
    write_history_csv(records, folder / "history.csv")
    write_table_md(records, folder / "table.md", title)
    plot_curves(records, folder / "curves")
    return records
