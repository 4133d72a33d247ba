"""Bad input of every kind, through the command line: one clear line, a non-zero exit, and
earlier results left as they were. Plus: NaN and ±inf never become a "best" value.
"""

from __future__ import annotations

import collections
import contextlib
import gzip
import math
import os
import pickle
import re
import shutil
import sqlite3
import struct
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from typer.testing import CliRunner

from optsweep import optuna_private as private
from optsweep import study as studies
from optsweep.cli import app
from optsweep.config import expand, load_sweep

runner = CliRunner()

GOOD = """\
name: x
dataset: mnist-mini
subset: {train: 128, test: 64}
train: {epochs: 1, batch_size: 64}
optimizers:
  - name: sgd
    grid: {learning_rate: [0.1, 0.01]}
"""
URLS = "postgresql://USER:PASSWORD@HOST:PORT/DB or sqlite:///PATH/study.db"

# (id, file text or None for GOOD, extra arguments, the exact line on stderr)
CASES = [
    (
        "yaml-syntax",
        "name: x\ndataset: [mnist\n",
        [],
        "{file}:3: YAML syntax error: while parsing a flow sequence; expected ',' or ']', but "
        "got '<stream end>' (the construct began at line 2)",
    ),
    (
        "unknown-key",
        GOOD.replace("train: {epochs", "trian: {epochs"),
        [],
        "{file}:4: trian: unknown key 'trian'; did you mean 'train'? valid keys: name, dataset, "
        "subset, data, model, train, schedule, max_trials, search, report, optimizers",
    ),
    (
        "wrong-type",
        GOOD.replace("epochs: 1", "epochs: two"),
        [],
        "{file}:4: train.epochs: expected an integer >= 1, got the string 'two'",
    ),
    (
        "out-of-range",
        GOOD.replace("[0.1, 0.01]", "[-0.1]"),
        [],
        "{file}:7: optimizers[0].grid.learning_rate[0]: learning_rate = -0.1 is out of range; "
        "valid: learning_rate > 0",
    ),
    (
        "empty-grid",
        GOOD.replace("[0.1, 0.01]", "[]"),
        [],
        "{file}:7: optimizers[0].grid.learning_rate: empty list; give at least one value",
    ),
    (
        "grid-over-max-trials",
        GOOD + "max_trials: 1\n",
        [],
        "{file}:8: max_trials: the sweep has 2 trials (2 grid points [optimizers[0]: 2] x 1 "
        "seeds), more than max_trials = 1; shrink the grid or raise max_trials",
    ),
    (
        "empty-file",
        "",
        [],
        "{file}:1: the file is empty; expected a mapping with name, dataset, optimizers",
    ),
    (
        "malformed-storage-url",
        None,
        ["--storage", "nonsense"],
        f"error: malformed storage URL 'nonsense'; expected {URLS}",
    ),
    (
        "unknown-database",
        None,
        ["--storage", "mongodb://host/db"],
        "error: unsupported storage URL mongodb://host/db: 'mongodb' is not a database "
        f"optsweep knows; use {URLS}",
    ),
    (
        "unreachable-storage",  # nothing listens on port 1; the password is not printed
        None,
        ["--storage", "postgresql://me:secret@127.0.0.1:1/sweeps"],
        "error: cannot open the storage postgresql://me:***@127.0.0.1:1/sweeps: connection to "
        'server at "127.0.0.1", port 1 failed: Connection refused',
    ),
    (
        "several-workers-on-sqlite",
        None,
        ["--workers", "3"],
        "error: 3 workers need a shared storage, not SQLite: SQLite cannot hand each waiting "
        "trial to exactly one process (some trials would train twice); give --storage "
        "postgresql://USER@HOST/DB, or train in one process",
    ),
    (
        "grace-not-longer-than-heartbeat",
        None,
        ["--heartbeat", "5", "--grace", "5"],
        "error: --grace 5 must be longer than --heartbeat 5 (several heartbeats, or live trials "
        "get retrained)",
    ),
    (
        "unwritable-results-folder",  # a regular file stands where a folder is needed
        None,
        ["--out", "{tmp}/a-file/out"],
        "error: cannot create the results folder {tmp}/a-file/out: Not a directory",
    ),
    (
        "unopenable-study-file",
        None,
        ["--out", "{tmp}/taken"],
        "error: cannot open the storage sqlite:///{tmp}/taken/study.db: unable to open database "
        "file",
    ),
]


@pytest.mark.parametrize(
    ("text", "extra", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_run_refuses_bad_input_with_one_line(tmp_path, text, extra, expected):
    config = tmp_path / "sweep.yaml"
    config.write_text(GOOD if text is None else text)
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "taken" / "study.db").mkdir(parents=True)  # a folder where the study goes
    args = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    out = [] if "--out" in args else ["--out", str(tmp_path / "out")]
    result = runner.invoke(app, ["run", str(config), *out, *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    expected = expected.replace("{file}", str(config)).replace("{tmp}", str(tmp_path))
    assert result.stderr.strip().splitlines() == [expected]
    assert not (tmp_path / "out").exists()  # a refused command leaves no folder behind


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["worker", "--storage", "sqlite:///x/study.db"],
            "error: optsweep worker needs a shared storage, not sqlite:///x/study.db: only "
            "PostgreSQL hands each waiting trial to exactly one of several processes; on SQLite "
            "train in one process with optsweep run CONFIG",
        ),
        (
            ["worker", "--storage", "postgres//host/db"],
            f"error: malformed storage URL 'postgres//host/db'; expected {URLS}",
        ),
        (
            ["init", "{config}", "--storage", "postgresql://127.0.0.1:1/db"],
            "error: cannot open the storage postgresql://127.0.0.1:1/db: connection to server "
            'at "127.0.0.1", port 1 failed: Connection refused',
        ),
        (
            ["report", "{tmp}"],
            "error: {tmp}: no study.db here; give --storage URL for a remote study",
        ),
    ],
    ids=["worker-on-sqlite", "worker-malformed-url", "init-unreachable", "report-no-study"],
)
def test_other_commands_refuse_bad_input_with_one_line(tmp_path, args, expected):
    config = tmp_path / "sweep.yaml"
    config.write_text(GOOD)
    args = [a.replace("{config}", str(config)).replace("{tmp}", str(tmp_path)) for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [expected.replace("{tmp}", str(tmp_path))]


def test_missing_data_is_one_line_and_trains_nothing(tmp_path):
    config = tmp_path / "sweep.yaml"
    config.write_text(GOOD.replace("mnist-mini", "fashion-mnist"))
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["run", str(config), "--out", str(out), "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: fashion-mnist: data not found: looked for ")
    assert f"in {tmp_path}/fashion-mnist or " in line


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full to fill the disk")
def test_full_disk_is_one_line_and_keeps_earlier_results(tmp_path):
    config = tmp_path / "sweep.yaml"
    config.write_text(GOOD)
    out = tmp_path / "out"
    first = runner.invoke(app, ["run", str(config), "--out", str(out), "--quiet"])
    assert first.exit_code == 0, first.output
    trials_csv = (out / "trials.csv").read_text()
    study = optuna.load_study(study_name="x", storage=studies.sqlite_url(out))
    values = [t.value for t in study.get_trials()]
    # The disk fills up while the results are written again: history.csv is written into a
    # temporary sibling first (optsweep.files), here a link to /dev/full, where every write
    # fails with ENOSPC, as on a full disk. (CliRunner runs in this process: same pid.)
    history = (out / "history.csv").read_text()
    (out / f".history.csv.{os.getpid()}.tmp").symlink_to("/dev/full")
    again = runner.invoke(app, ["run", str(config), "--out", str(out), "--quiet"])
    assert again.exit_code == 2
    assert again.stderr.strip().splitlines() == [
        "error: disk full while writing the results; finished trials are kept in the study: "
        "free some space and run the same command again"
    ]
    assert (out / "trials.csv").read_text() == trials_csv
    assert (out / "history.csv").read_text() == history  # the previous file, whole
    assert not list(out.glob(".*.tmp"))  # the temporary file is gone: space freed
    assert [t.value for t in study.get_trials()] == values
    report = runner.invoke(app, ["report", str(out)])
    assert report.exit_code == 0, report.output
    assert (out / "trials.csv").read_text() == trials_csv


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_diverged_never_best(tmp_path, value, write_yaml):
    spec = load_sweep(write_yaml(GOOD))
    trials = expand(spec)
    study = studies.open_study("x", studies.sqlite_url(tmp_path))
    studies.sync_grid(study, trials)
    (bad, _), (good, _) = studies.pop_batch(study, {t.key: t for t in trials}, 2)
    outcomes = [(bad, "complete", value, {}), (good, "complete", 0.25, {})]
    assert studies.finish_batch(study, outcomes) == [True, True]
    frozen = study.get_trials()
    assert [studies.status_of(t) for t in frozen] == ["diverged", "complete"]
    assert frozen[0].state == optuna.trial.TrialState.FAIL  # no value a sampler could read
    assert private.trial_id(study.best_trial) == good
    assert study.best_value == 0.25


def test_unreachable_storage_leaves_earlier_results_alone(tmp_path):
    config = tmp_path / "sweep.yaml"
    config.write_text(GOOD)
    out = tmp_path / "out"
    assert runner.invoke(app, ["run", str(config), "--out", str(out), "--quiet"]).exit_code == 0

    def results() -> tuple[dict[str, bytes], list[tuple]]:
        """The folder's files, and the study's trials (SQLite may fold its write-ahead log
        into study.db whenever the last connection closes: same trials, other bytes)."""
        files = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
        study = optuna.load_study(study_name="x", storage=studies.sqlite_url(out))
        trials = [(t.number, t.state, t.values, t.params) for t in study.trials]
        return {k: v for k, v in files.items() if not k.startswith("study.db")}, trials

    before = results()
    bad = ["--storage", "postgresql://127.0.0.1:1/db"]
    result = runner.invoke(app, ["run", str(config), "--out", str(out), *bad])
    assert result.exit_code == 2
    assert results() == before


# ------------------------------------------------------------------- bad files and surroundings

SMOKE = Path(__file__).resolve().parents[1] / "optsweep" / "datasets" / "smoke"
ON_SMOKE_MNIST = GOOD.replace("mnist-mini", "mnist")
ON_SMOKE_CIFAR = GOOD.replace("mnist-mini", "cifar10").replace("test: 64", "test: 32")


def _gunzipped(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes())


def _cut_short(folder: Path) -> None:
    path = folder / "mnist" / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:5000])


def _wrong_magic(folder: Path) -> None:
    path = folder / "mnist" / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x09\x01" + _gunzipped(path)[4:]))


def _fewer_labels(folder: Path) -> None:
    path = folder / "mnist" / "train-labels-idx1-ubyte.gz"
    data = _gunzipped(path)
    n = struct.unpack(">I", data[4:8])[0] - 12
    path.write_bytes(gzip.compress(data[:4] + struct.pack(">I", n) + data[8 : 8 + n]))


def _empty(folder: Path) -> None:
    (folder / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"")


def _foreign_global(folder: Path) -> None:
    # a batch whose pickle names a function: refused before anything in it could run
    path = folder / "cifar-10" / "cifar-10-batches-py" / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": os.system, "labels": [0]}, protocol=2))


@pytest.mark.parametrize(
    ("damage", "text", "expected"),
    [
        (_cut_short, ON_SMOKE_MNIST, r".*/train-images-idx3-ubyte\.gz: corrupt gzip file .*"),
        (
            _wrong_magic,
            ON_SMOKE_MNIST,
            r".*/train-labels-idx1-ubyte\.gz: IDX element type 0x09 is not 0x08 .*",
        ),
        (_fewer_labels, ON_SMOKE_MNIST, r".*: 512 images but .* has 500 labels"),
        (
            _empty,
            ON_SMOKE_MNIST,
            r".*t10k-labels-idx1-ubyte\.gz: not an IDX file \(the file is empty\)",
        ),
        (
            _foreign_global,
            ON_SMOKE_CIFAR,
            r".*data_batch_1: not a CIFAR-10 pickle \(global posix\.system is not allowed .*\)",
        ),
    ],
    ids=["gzip-cut-short", "idx-wrong-magic", "fewer-labels", "empty-file", "pickle-global"],
)
def test_a_damaged_data_file_is_one_line_and_leaves_nothing(tmp_path, damage, text, expected):
    data = tmp_path / "data"
    shutil.copytree(SMOKE, data)
    damage(data)
    config = tmp_path / "sweep.yaml"
    config.write_text(text)
    out = tmp_path / "results" / "x"
    result = runner.invoke(app, ["run", str(config), "--out", str(out), "--data-dir", str(data)])
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert re.fullmatch("error: " + expected, line), line
    assert not (tmp_path / "results").exists()  # a refused command leaves no folder behind


def test_a_refused_search_leaves_no_folder(tmp_path):
    config = tmp_path / "sweep.yaml"
    config.write_text(GOOD)
    out = tmp_path / "results" / "x-search"
    bad = ["--storage", "postgresql://127.0.0.1:1/db"]
    result = runner.invoke(app, ["search", str(config), "--out", str(out), *bad])
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "results").exists()


@contextlib.contextmanager
def sqlite_pages(limit: int):
    """Every SQLite database this process opens holds at most ``limit`` pages of 512 bytes:
    past them SQLite says "database or disk is full", as on a full disk."""

    def cap(connection, _record) -> None:
        if isinstance(connection, sqlite3.Connection):
            connection.execute("PRAGMA page_size = 512")
            connection.execute(f"PRAGMA max_page_count = {limit}")

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "connect", cap)
    try:
        yield
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "connect", cap)


def _states(folder: Path) -> collections.Counter:
    with contextlib.closing(sqlite3.connect(folder / "study.db")) as db:
        return collections.Counter(s for (s,) in db.execute("SELECT state FROM trials"))


def test_a_full_database_stops_at_once_and_a_later_run_resumes(tmp_path):
    config = tmp_path / "sweep.yaml"
    grid = "[0.1, 0.01, 0.001, 0.0001, 0.2, 0.3, 0.4, 0.5]"
    config.write_text(
        GOOD.replace("batch_size: 64}", "batch_size: 64, trials_per_batch: 1}").replace(
            "[0.1, 0.01]", grid
        )
    )
    out = tmp_path / "out"
    start = time.monotonic()
    with sqlite_pages(70):  # room for the study and a few trials (measured: 3 of 8)
        full = runner.invoke(app, ["run", str(config), "--out", str(out), "--quiet"])
    assert full.exit_code == 2, full.output
    assert full.stderr.strip().splitlines() == [
        "error: the storage failed: database or disk is full; free some space, then run the "
        "same command again: finished trials are kept"
    ]
    assert time.monotonic() - start < 60  # not retried (it was, for minutes)
    done = _states(out)["COMPLETE"]
    assert 0 < done < 8  # trials finished before the disk filled are kept
    again = runner.invoke(app, ["run", str(config), "--out", str(out), "--quiet"])
    assert again.exit_code == 0, again.output
    assert _states(out)["COMPLETE"] == 8


@pytest.mark.parametrize(
    ("storage", "expected"),
    [
        (
            "sqlite:///file:{db}?mode=ro&uri=true",
            "error: cannot open the storage sqlite:///file%3A{db}?mode=ro&uri=true: attempt to "
            "write a readonly database; make the storage writable, then run the same command "
            "again",
        ),
        (
            "corrupt",
            "error: cannot open the storage sqlite:///{db}: file is not a database; the database "
            "file is damaged: restore it from a copy, or move it away to start over",
        ),
    ],
    ids=["read-only", "corrupt"],
)
def test_a_database_waiting_cannot_cure_is_one_line(tmp_path, storage, expected):
    config = tmp_path / "sweep.yaml"
    config.write_text(GOOD)
    out = tmp_path / "out"
    assert runner.invoke(app, ["run", str(config), "--out", str(out), "--quiet"]).exit_code == 0
    db = out / "study.db"
    args = ["--storage", storage.replace("{db}", str(db))]
    if storage == "corrupt":
        db.write_bytes(b"not sqlite at all " * 300)
        args = []
    result = runner.invoke(app, ["run", str(config), "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [expected.replace("{db}", str(db))]


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (sqlite3.OperationalError("database or disk is full"), False),
        (sqlite3.OperationalError("attempt to write a readonly database"), False),
        (sqlite3.DatabaseError("database disk image is malformed"), False),
        (sqlite3.OperationalError("database is locked"), True),
    ],
    ids=["full", "read-only", "malformed", "locked"],
)
def test_only_what_passes_is_retried(error, transient):
    wrapped = sqlalchemy.exc.OperationalError("INSERT ...", {}, error)
    assert studies.is_transient(wrapped) is transient


def _foreign_study(folder: Path, name: str = "x") -> None:
    """An Optuna study optsweep did not write: one float parameter, three trials."""
    folder.mkdir(parents=True)
    study = optuna.create_study(study_name=name, storage=studies.sqlite_url(folder))
    study.optimize(lambda t: t.suggest_float("u", 0, 1) ** 2, n_trials=3)


FOREIGN = (
    "error: study x in sqlite:///{out}/study.db was not written by optsweep (it holds no "
    "optsweep config); optsweep reads and trains only its own studies: give another results "
    "folder (--out), sweep name or --storage"
)


def _own_files(folder: Path) -> list[str]:
    """The folder's files but SQLite's own (a -wal or -shm file while a connection is open)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(("-wal", "-shm")))


@pytest.mark.parametrize(
    ("command", "study"), [("report", "x"), ("run", "x"), ("search", "x-search")]
)
def test_a_study_optsweep_did_not_write_is_refused(tmp_path, command, study):
    out = tmp_path / "out"
    _foreign_study(out, study)
    before = _own_files(out)
    config = tmp_path / "sweep.yaml"
    config.write_text(GOOD)
    args = [command, str(out)] if command == "report" else [command, str(config), "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    expected = FOREIGN.replace("{out}", str(out)).replace("study x in", f"study {study} in")
    assert result.stderr.strip().splitlines() == [expected]
    assert _own_files(out) == before  # nothing written into it
