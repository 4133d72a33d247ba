"""The results folder's painters: pictures come back in order, drawn by the helper processes
where they can be, by this process where a painter fails or dies, and no painter outlives the
process that started it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest

from optsweep import painters

PAINTS_HERE = painters.can_paint()


def drawing(folder: Path, name: str, fail_in_painter: bool = False, parent: int = 0):
    """Writes ``name``.png holding the pid that drew it; fails in a painter if asked."""
    if fail_in_painter and os.getpid() != parent:
        raise RuntimeError("fails in the painter")
    path = folder / f"{name}.png"
    path.write_text(str(os.getpid()))
    return [path, None]


def drawer(path: Path) -> int:
    return int(path.read_text())


@pytest.mark.parametrize(
    ("warm", "failing"),
    [(True, ()), (False, ()), (True, ("cost",)), (False, ("curves", "heatmaps"))],
    ids=["warm", "started for the call", "warm, one fails", "started, two fail"],
)
def test_pictures_come_back_in_order_drawn_by_painters_unless_they_fail(tmp_path, warm, failing):
    names = ["curves", "cost", "sensitivity", "heatmaps", "lr"]
    here = os.getpid()
    drawings = [partial(drawing, tmp_path, n, n in failing, here) for n in names]
    with painters.painting(warm):
        pictures = painters.draw(drawings)
    assert pictures == [[tmp_path / f"{n}.png", None] for n in names]
    drawers = {n: drawer(tmp_path / f"{n}.png") for n in names}
    for name in names:
        drawn_here = name in failing or not PAINTS_HERE
        assert (drawers[name] == here) == drawn_here, name


def slow_drawing(folder: Path, name: str) -> list[Path]:
    time.sleep(0.3)  # long enough for each painter to take one
    return drawing(folder, name)[:1]


@pytest.mark.skipif(not PAINTS_HERE, reason="painters need fork and two cores")
def test_drawings_of_dead_painters_are_drawn_here(tmp_path):
    here = os.getpid()
    with painters.painting():
        first = painters.draw([partial(slow_drawing, tmp_path, n) for n in ("a", "b")])
        pids = {drawer(p) for pictures in first for p in pictures}
        assert len(pids) == 2 and here not in pids
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        again = painters.draw([partial(drawing, tmp_path, n) for n in ("c", "d", "e")])
    assert again == [[tmp_path / f"{n}.png", None] for n in "cde"]
    assert {drawer(tmp_path / f"{n}.png") for n in "cde"} == {here}


STARTER = """\
import json, sys, time
from functools import partial
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from optsweep import painters
from test_painters import slow_drawing
folder = Path(sys.argv[1])
with painters.painting():
    drawn = painters.draw([partial(slow_drawing, folder, n) for n in ("a", "b")])
    print(json.dumps([int(p.read_text()) for pictures in drawn for p in pictures]), flush=True)
    time.sleep(600)
"""


def ended(pid: int) -> bool:
    """Gone, or a zombie: a painter orphaned by a SIGKILL is reaped by init, whenever."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not PAINTS_HERE, reason="painters need fork and two cores")
def test_painters_end_when_their_process_is_killed(tmp_path):
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(tmp_path), str(Path(__file__).parent)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        pids = json.loads(starter.stdout.readline())
        assert len(set(pids)) == 2 and starter.pid not in pids
        assert not any(ended(pid) for pid in pids)
    finally:
        starter.kill()
        starter.wait()
    deadline = time.monotonic() + 30
    while not all(ended(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(ended(pid) for pid in pids)
