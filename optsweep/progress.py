"""What a sweep shows while it runs: Rich live progress on a terminal, log lines elsewhere.

The runner talks to a `Progress`; which one is chosen by `make_progress`: nothing but errors
with ``--quiet``, plain lines when stdout is not a terminal (CI logs, pipes), and on a
terminal an overall bar with ETA, the running batch with epoch and step, and a live top 5.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichBar
from rich.table import Table


@dataclass(frozen=True)
class Finished:
    """A trial that just finished, as the progress display needs it."""

    label: str
    status: str
    test_accuracy: float


class Progress(Protocol):
    """The events a sweep reports."""

    def start(self, total: int, done: int) -> None: ...
    def batch(self, labels: list[str], epochs: int) -> None: ...
    def step(self, epoch: int, step: int, steps: int) -> None: ...
    def finished(self, trials: list[Finished]) -> None: ...
    def stop(self, interrupted: bool = False) -> None: ...


class QuietProgress:
    """``--quiet``: shows nothing."""

    def start(self, total: int, done: int) -> None: ...
    def batch(self, labels: list[str], epochs: int) -> None: ...
    def step(self, epoch: int, step: int, steps: int) -> None: ...
    def finished(self, trials: list[Finished]) -> None: ...
    def stop(self, interrupted: bool = False) -> None: ...


class LineProgress:
    """One plain line per batch and per finished trial (for logs and pipes); ``brief`` (CI
    smoke runs): per finished trial only one that did not complete."""

    def __init__(self, console: Console, brief: bool = False) -> None:
        self.console = console
        self.brief = brief
        self.total = self.done = 0
        self.started = time.perf_counter()

    def start(self, total: int, done: int) -> None:
        self.total, self.done = total, done
        self.console.print(f"{total} trials, {done} already done, {total - done} to train")

    def batch(self, labels: list[str], epochs: int) -> None:
        if self.brief:
            return
        trials = "1 trial" if len(labels) == 1 else f"{len(labels)} trials together"
        self.console.print(f"training {trials} for {epochs} epoch{'s' if epochs != 1 else ''}")

    def step(self, epoch: int, step: int, steps: int) -> None: ...

    def finished(self, trials: list[Finished]) -> None:
        for t in trials:
            self.done += 1
            if self.brief and t.status == "complete":
                continue
            self.console.print(
                f"[{self.done}/{self.total}] {t.status:9} acc={t.test_accuracy:.4f} {t.label}",
                highlight=False,
            )

    def stop(self, interrupted: bool = False) -> None:
        seconds = time.perf_counter() - self.started
        self.console.print(f"{'stopped after' if interrupted else 'done in'} {seconds:.1f} s")


class RichProgress:
    """Overall bar with ETA, the running batch, and the top 5 so far."""

    def __init__(self, console: Console) -> None:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[dim]elapsed[/dim]"),
            TimeElapsedColumn(),
            TextColumn("[dim]left[/dim]"),
            TimeRemainingColumn(),
        )
        self.overall = RichBar(*columns, console=console)
        self.current = RichBar(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[where]}"),
            console=console,
        )
        self.best: list[Finished] = []
        self.live = Live(self._render(), console=console, refresh_per_second=4)
        self.overall_task = self.overall.add_task("trials", total=None)
        self.current_task = self.current.add_task("waiting", total=None, where="")
        self.epochs = 1

    def _render(self, *, running: bool = True) -> Group:
        top = Table(title="top 5 so far", title_justify="left", expand=False)
        top.add_column("test acc", justify="right")
        top.add_column("trial")
        for t in self.best[:5]:
            top.add_row(f"{t.test_accuracy:.4f}", t.label)
        return Group(self.overall, self.current, top) if running else Group(self.overall, top)

    def start(self, total: int, done: int) -> None:
        self.overall.update(self.overall_task, total=total, completed=done)
        self.live.start()

    def batch(self, labels: list[str], epochs: int) -> None:
        self.epochs = epochs
        first = labels[0] if len(labels) == 1 else f"{labels[0]} (+{len(labels) - 1} more)"
        self.current.reset(self.current_task, total=None, description=first, where="")

    def step(self, epoch: int, step: int, steps: int) -> None:
        self.current.update(
            self.current_task,
            total=self.epochs * steps,
            completed=epoch * steps + step,
            where=f"epoch {epoch + 1}/{self.epochs} step {step}/{steps}",
        )

    def finished(self, trials: list[Finished]) -> None:
        self.overall.advance(self.overall_task, len(trials))
        done = [t for t in trials if t.status == "complete"]
        self.best = sorted(self.best + done, key=lambda t: -t.test_accuracy)[:5]
        self.live.update(self._render())

    def stop(self, interrupted: bool = False) -> None:
        """The last frame stays on screen without the batch bar: no batch is running."""
        self.live.update(self._render(running=False), refresh=True)
        self.live.stop()


def make_progress(console: Console, quiet: bool, brief: bool = False) -> Progress:
    """Quiet, Rich on a terminal, or plain lines (``brief``: only the trials that did not
    complete)."""
    if quiet:
        return QuietProgress()
    if console.is_terminal:
        return RichProgress(console)
    return LineProgress(console, brief)
