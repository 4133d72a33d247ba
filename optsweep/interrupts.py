"""SIGTERM handled as Ctrl-C, and neither lost.

The handler raises ``KeyboardInterrupt`` where the program is (or where a ``held`` block
ends). When that is inside a garbage collector's callback (a SQLAlchemy weakref finaliser,
seen in the SIGTERM test), Python prints "Exception ignored" and a traceback, and carries on:
the stop would be lost. So the handler also records it, and the training loop calls ``check``
at its read-backs, which raises it again there; and what Python would print of a recorded stop
it swallowed is left out (`_unraisable`): the stop is not lost, nothing went wrong.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["check", "handle_stops", "held"]

_requested = False
_held = 0  # depth of held() blocks


def _interrupt(signum: int, frame: object) -> None:
    global _requested
    _requested = True
    if not _held:
        raise KeyboardInterrupt


@contextmanager
def held() -> Iterator[None]:
    """A stop (SIGTERM, Ctrl-C) arriving in the block is raised when it ends: for steps that
    must not be cut in two (a trial asked and recorded as this worker's). Python runs signal
    handlers in the main thread whichever thread the OS picks, so masking signals there would
    not do; the handler itself defers."""
    global _held
    _held += 1
    try:
        yield
    finally:
        _held -= 1
    check()


def handle_stops() -> None:
    """SIGTERM (batch schedulers, Kubernetes, ``kill``) raises KeyboardInterrupt as Ctrl-C does,
    and both are recorded for ``check``."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    sys.unraisablehook = _unraisable


def _unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    """Python's report of an exception it could not raise (in a finaliser), but for a stop
    this module recorded: it is raised again at the next ``check``, not an error."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt) and _requested:
        return
    sys.__unraisablehook__(unraisable)


def check() -> None:
    """Raise KeyboardInterrupt when a stop arrived and was swallowed on its way."""
    if _requested:
        raise KeyboardInterrupt
