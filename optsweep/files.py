"""Results files written whole or not at all, and one writer of a results folder at a time.

`replacing` writes one file into a temporary sibling and renames it over; `folder_lock`
makes the writers of a folder (several workers finishing the same sweep, a report rebuilt
while a run ends) take turns, so that the folder ends as one writer left it, never a mix.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# The lock file every writer of a results folder holds an exclusive flock on.
LOCK_NAME = ".optsweep.lock"


@contextmanager
def replacing(path: Path, *, keep_suffix: bool = False) -> Iterator[Path]:
    """A temporary path next to ``path``, renamed over it when the block ends without error
    and removed otherwise: a run stopped while writing leaves the previous file, never half
    of one (``os.replace`` within one folder is atomic). ``keep_suffix`` ends the temporary
    name with the file's own suffix, for writers that read the format off it."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if keep_suffix:
        temporary = temporary.with_name(temporary.name + path.suffix)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on the results folder ``folder`` (created when absent).

    An ``flock`` on ``folder/.optsweep.lock``: other processes, and other threads of this
    one, wait in their own ``folder_lock`` until this block ends. The kernel drops the lock
    when the holder dies, so a killed writer never leaves the folder locked. Not reentrant:
    a block must not take the same folder's lock again.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / LOCK_NAME).open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
