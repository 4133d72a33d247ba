"""The results folder's pictures, drawn by helper processes forked before the heavy imports.

matplotlib lays out and rasterises in the interpreter, one core at a time, and importing
pyplot costs about as much as drawing a picture. A command that ends with a results folder
starts its painters first (`painting`): the first, forked while the process holds little more
than the command line, imports pyplot and draws a throwaway figure on the other core, at the
lowest priority, while this process imports torch; then it forks the second, warm, and both
wait, idle, until the pictures are wanted. `draw` hands each idle painter the next drawing, so
the folder waits only for the drawing itself, split over the cores, and this process never
imports matplotlib at all.

Linux only, with two cores or more: a forked child of a process that loaded Apple's
frameworks (torch's MPS) may abort, and elsewhere there is no fork; there, or when a painter
fails, the pictures are drawn in this process. A painter ends when the process that started
it closes its end of the pipe, by `stop` or by dying (even by SIGKILL): it never outlives it.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # multiprocessing is imported when painters start, not with the command line
    from multiprocessing.connection import Connection

# A drawing is picklable (a module-level function, or a `functools.partial` of one, with
# picklable arguments: it crosses a pipe) and returns the pictures it wrote, None for one
# that had nothing to show.
Drawing = Callable[[], Sequence[Path | None]]
PAINTERS = 2  # this machine's two cores; a third would only wait for one of them


@dataclass
class Painter:
    connection: Connection
    process: Any = None  # the first painter's Process; the others are its children


_started: list[Painter] = []


def can_paint() -> bool:
    """Whether helper processes may draw here (see the module's docstring)."""
    return sys.platform == "linux" and (os.cpu_count() or 1) >= 2


def start(count: int = PAINTERS) -> list[Painter]:
    """``count`` painters started now (none where `can_paint` says no): the first forked
    from this process, the others forked by the first once it is warm, so that one warm-up
    (1.2-1.5 s of CPU, measured, mostly imports) serves them all."""
    if not can_paint():
        return []
    from multiprocessing import get_context

    context = get_context("fork")
    pipes = [context.Pipe() for _ in range(count)]
    mine = [end for end, _ in pipes]
    theirs = [end for _, end in pipes]
    # every end this process holds must close in the painters, or a painter would keep
    # a pipe open and never see its end
    held = [p.connection for p in _started] + mine
    first = context.Process(target=_paint, args=(theirs[0], theirs[1:], held), daemon=True)
    first.start()
    for end in theirs:
        end.close()
    return [Painter(mine[0], first), *(Painter(end) for end in mine[1:])]


def stop(painters: Sequence[Painter]) -> None:
    """Each painter ended: an idle one ends on its pipe's closing (the first after reaping
    the others); the first still warming up (a command that failed early) is terminated
    rather than waited for."""
    for painter in painters:
        painter.connection.close()
    for painter in painters:
        if painter.process is not None:
            painter.process.terminate()  # ignored once it is warm
            painter.process.join()


@contextmanager
def painting(wanted: bool = True) -> Iterator[None]:
    """Painters warm for every `draw` inside (none unless ``wanted``), stopped at the end."""
    painters = start() if wanted else []
    _started.extend(painters)
    try:
        yield
    finally:
        for painter in painters:
            _started.remove(painter)
        stop(painters)


def draw(drawings: Sequence[Drawing]) -> list[list[Path | None]]:
    """Each drawing's pictures, in the drawings' order (put the longest first: each idle
    painter takes the next one). Without warm painters, painters are started for this call;
    a drawing whose painter fails or dies is drawn here."""
    if len(drawings) < 2 or not can_paint():
        return [list(drawing()) for drawing in drawings]
    own = [] if _started else start()
    try:
        done = _drawn_by(_started or own, drawings)
    finally:
        stop(own)
    return [done[i] if i in done else list(drawing()) for i, drawing in enumerate(drawings)]


def _drawn_by(painters: Sequence[Painter], drawings: Sequence[Drawing]) -> dict[int, list]:
    """The pictures of each drawing a painter drew, by index; those it could not are absent."""
    from multiprocessing.connection import wait

    waiting = list(enumerate(drawings))
    busy: dict[Connection, int] = {}
    idle = [p for p in painters if p.process is None or p.process.is_alive()]
    done: dict[int, list] = {}
    while waiting or busy:
        while waiting and idle:
            painter = idle.pop()
            index, drawing = waiting.pop(0)
            try:
                painter.connection.send(drawing)
            except OSError:  # it died: its drawing is drawn by this process, after
                continue
            busy[painter.connection] = index
        if not busy:
            break
        for connection in wait(list(busy)):
            index = busy.pop(connection)
            try:
                outcome, pictures = connection.recv()
            except (EOFError, OSError):  # it died while drawing
                continue
            if outcome == "drawn":
                done[index] = [p and Path(p) for p in pictures]
            idle.extend(p for p in painters if p.connection is connection)
    return done


def _paint(connection: Connection, others: Sequence[Connection], held: Sequence[Connection]):
    """The first painter's life: warm up, start the ``others`` (forked warm), then draw what
    arrives until the pipe closes, and reap them."""
    for end in held:
        end.close()
    # Ctrl-C reaches the whole process group: stopping is the parent's to decide
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # the lowest priority: warming up must not slow the process down, which imports and
    # trains on every core it has; the painters draw when it waits for them, on idle cores
    os.nice(19)
    try:
        _warm_up()
    except Exception:  # the parent draws, and says what fails
        return
    # warm, a painter ends when its pipe closes: `stop`'s SIGTERM is for one warming up
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    children = []
    for index, end in enumerate(others):
        child = os.fork()  # multiprocessing forbids a daemonic process children of its own
        if child == 0:
            try:
                _draw_until_closed(end, [connection, *others[:index], *others[index + 1 :]])
            finally:
                os._exit(0)
        children.append(child)
    for end in others:
        end.close()
    _draw_until_closed(connection, [])
    for child in children:
        os.waitpid(child, 0)


def _draw_until_closed(connection: Connection, held: Sequence[Connection]) -> None:
    """Draw each drawing that arrives, answer with its pictures, until the pipe closes."""
    for end in held:
        end.close()
    while True:
        try:
            drawing = connection.recv()
        except EOFError:
            return
        try:
            answer = ("drawn", [p and str(p) for p in drawing()])
        except Exception as error:  # the parent draws it again and so raises it itself
            answer = ("failed", repr(error))
        try:
            connection.send(answer)
        except OSError:  # the parent stopped waiting (interrupted, or gone)
            return


def _warm_up() -> None:
    """pyplot imported and a first figure drawn as the pictures are (a log axis, whose tick
    labels load mathtext, a legend, a colour bar, a title), so that the first picture costs
    what the others do: after a warm-up without them, the quickstart's train_loss.png took
    0.37 s drawn first and 0.16 s drawn again; after this one, 0.19 s first."""
    import io

    from optsweep.plots import pyplot

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 5))
    left.plot([1, 2, 3], [1.0, 0.1, 0.01], marker="o", label="warm")
    left.set(xlabel="step", ylabel="loss", yscale="log", title="warm")
    left.legend(fontsize=7)
    right.imshow([[0.0, 1.0], [1.0, 0.0]])
    fig.colorbar(right.images[0], ax=right)
    fig.savefig(io.BytesIO(), dpi=110, format="png")
    plt.close(fig)
