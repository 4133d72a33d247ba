"""SIGTERM handled as Ctrl-C, and neither lost.

The handler raises ``KeyboardInterrupt`` where the program is (or where a ``held`` block
ends). When that is inside a garbage collector's callback (a SQLAlchemy weakref finaliser,
seen in the SIGTERM test), Python prints "Exception ignored" and carries on: the stop would be
lost. So the handler also records it, and the training loop calls ``check`` at its
read-backs, which raises it again there.
"""

from __future__ import annotations

import signal
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


def check() -> None:
    """Raise KeyboardInterrupt when a stop arrived and was swallowed on its way."""
    if _requested:
        raise KeyboardInterrupt
