"""SIGTERM handled as Ctrl-C, and not lost.

The handler raises ``KeyboardInterrupt`` where the program is. When that is inside a garbage
collector's callback (a SQLAlchemy weakref finaliser, seen in the SIGTERM test), Python prints
"Exception ignored" and carries on: the stop would be lost. So the handler also records it,
and the training loop calls ``check`` at its read-backs, which raises it again there.
"""

from __future__ import annotations

import signal

__all__ = ["check", "handle_sigterm"]

_requested = False


def _interrupt(signum: int, frame: object) -> None:
    global _requested
    _requested = True
    raise KeyboardInterrupt


def handle_sigterm() -> None:
    """SIGTERM (batch schedulers, Kubernetes, ``kill``) raises KeyboardInterrupt, as Ctrl-C."""
    signal.signal(signal.SIGTERM, _interrupt)


def check() -> None:
    """Raise KeyboardInterrupt when a SIGTERM arrived and was swallowed on its way."""
    if _requested:
        raise KeyboardInterrupt
