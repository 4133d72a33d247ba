"""One results folder written by several processes at once ends whole, and none of them fails.

Workers finishing the same sweep (a shared filesystem, several `optsweep run --storage URL
--out DIR`) each rebuild the folder: `report.write_results` and `runner.write_config` take
the folder's lock (`files.folder_lock`), so they write one after the other.
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image

from optsweep.config import load_sweep
from optsweep.files import LOCK_NAME, folder_lock
from optsweep.progress import QuietProgress
from optsweep.runner import run_sweep

SWEEP = """\
name: shared
dataset: mnist-mini
subset: {train: 256, test: 128}
model: {name: mlp, hidden: [16]}
train: {epochs: 2, batch_size: 64, seeds: [0, 1], log_every: 2, trials_per_batch: 8}
optimizers:
  - name: sgd
    grid: {learning_rate: [0.1, 0.01]}
  - name: adam
    grid: {learning_rate: [0.01, 0.001], beta_1: [0.9, 0.8]}
"""

# One writer: waits for the start signal, then rebuilds the folder ROUNDS times, as a worker
# finishing the sweep does (config.yaml, then every results file from the study). Each titles
# its tables with its own index, so that a folder left by one writer is told from a mix.
WRITER = """\
import sys, time
from pathlib import Path
from optsweep.config import load_sweep
from optsweep.report import write_results
from optsweep.runner import write_config
from optsweep.study import load_study, sqlite_url

config, folder, index, rounds = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
spec = load_sweep(config)
study = load_study(sqlite_url(folder), "shared")
(folder.parent / f"ready-{index}").touch()
while not (folder.parent / "go").exists():
    time.sleep(0.01)
for _ in range(int(rounds)):
    write_config(spec, folder)
    write_results(study, folder, f"writer {index}")
"""

WRITERS, ROUNDS = 3, 1


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_writers_at_once_leave_a_whole_folder_and_never_fail(tmp_path):
    config = tmp_path / "sweep.yaml"
    config.write_text(SWEEP)
    folder = tmp_path / "out"
    result = run_sweep(load_sweep(config), QuietProgress(), out=folder)
    assert result.trained == 12
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    writers = [
        subprocess.Popen(
            [sys.executable, str(script), str(config), str(folder), str(i), str(ROUNDS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(WRITERS)
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < WRITERS and time.monotonic() < deadline:
        assert all(w.poll() is None for w in writers), [w.communicate()[0] for w in writers]
        time.sleep(0.05)
    (tmp_path / "go").touch()  # all at once, each several rounds: their writes overlap
    outputs = [w.communicate(timeout=300)[0] for w in writers]
    assert [w.returncode for w in writers] == [0] * WRITERS, outputs

    rows = read_csv(folder / "trials.csv")
    assert len(rows) == 12 and {r["status"] for r in rows} <= {"complete", "diverged"}
    assert {r["trial"] for r in read_csv(folder / "history.csv")} == {r["trial"] for r in rows}
    table = (folder / "table.md").read_text()
    assert table.rstrip().endswith("unranked.")
    assert yaml.safe_load((folder / "config.yaml").read_text())["name"] == "shared"
    page = (folder / "report.html").read_text()
    assert page.endswith("</html>\n")
    (writer,) = re.findall(r"^# (writer \d)$", table, re.MULTILINE)
    assert re.findall(r"<h1>(writer \d)</h1>", page) == [writer]  # one writer's folder
    pictures = sorted(p.stem for p in (folder / "curves").glob("*.png"))
    assert "train_loss" in pictures and "mean_test_accuracy" in pictures
    assert sorted(re.findall(r'<img alt="([^"]+)"', page)) == pictures  # the same set
    for picture in (folder / "curves").glob("*.png"):
        with Image.open(picture) as image:
            image.load()  # decodes every pixel: a truncated file raises here
    leftovers = [p.name for p in folder.rglob(".*") if p.name != LOCK_NAME]
    assert leftovers == []  # no temporary file left behind


def test_the_folder_lock_makes_other_processes_wait(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from optsweep.files import folder_lock\n"
            "with folder_lock(Path(sys.argv[1])):\n"
            "    print('held', flush=True); time.sleep(1.5)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "held\n"
    start = time.monotonic()
    with folder_lock(tmp_path):
        waited = time.monotonic() - start
    holder.wait()
    assert waited > 1.0  # until the holder's block ended, 1.5 s after it said so


@pytest.mark.parametrize("missing", [True, False], ids=["folder-absent", "folder-present"])
def test_the_folder_lock_creates_the_folder_and_only_its_lock_file(tmp_path, missing):
    folder = tmp_path / "a" / "b"
    if not missing:
        folder.mkdir(parents=True)
    with folder_lock(folder):
        pass
    assert [p.name for p in folder.iterdir()] == [LOCK_NAME]
