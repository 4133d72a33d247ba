"""Results files written whole or not at all: into a temporary sibling, then renamed over."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary path next to ``path``, renamed over it when the block ends without error
    and removed otherwise: a run stopped while writing leaves the previous file, never half
    of one (``os.replace`` within one folder is atomic)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
