"""SIGTERM handled as Ctrl-C, and neither lost.

The handler raises ``KeyboardInterrupt`` where the program is. When that is inside a garbage
collector's callback (a SQLAlchemy weakref finaliser, seen in the SIGTERM test), Python prints
"Exception ignored" and carries on: the stop would be lost. So the handler also records it,
and the training loop calls ``check`` at its read-backs, which raises it again there.
"""

from __future__ import annotations

import signal

__all__ = ["check", "handle_stops"]

_requested = False


def _interrupt(signum: int, frame: object) -> None:
    global _requested
    _requested = True
    raise KeyboardInterrupt


def handle_stops() -> None:
    """SIGTERM (batch schedulers, Kubernetes, ``kill``) raises KeyboardInterrupt as Ctrl-C does,
    and both are recorded for ``check``."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)


def check() -> None:
    """Raise KeyboardInterrupt when a stop arrived and was swallowed on its way."""
    if _requested:
        raise KeyboardInterrupt
