"""Many workers, one sweep: `optsweep init`, `optsweep worker` and `optsweep run --workers N`.

Optuna's RDB storage on PostgreSQL is the distributed engine; this module only wires it up.
`init_sweep` puts the resolved config into the study and enqueues the grid (once, under an
advisory lock, however many processes start at once). `work` is one worker: everything it
needs — the config, the grid or the search's budget, the trials — comes from the storage. On
a grid it pops batches, trains them with a heartbeat, reaps trials of dead workers and stops
when no grid point is left waiting or running (`optsweep.study.claim_batches`); on a search
it asks, trains and tells until the study's budget is met (`optsweep.search.search_worker`).
`run_with_workers` and `search_with_workers` start N local worker processes beside the
calling one.

SQLite stays the storage of one process: popping an enqueued trial is not atomic there (8
processes ran 42–60 of 200 trials twice), and Optuna has no heartbeats for the journal file,
so several workers on SQLite are refused (`check_workers`) rather than rerouted.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import optuna

from optsweep import study as studies
from optsweep.config import SweepSpec, expand, validate
from optsweep.progress import Progress
from optsweep.runner import (
    RunResult,
    check_same_meaning,
    run_sweep,
    store_grid_keys,
    write_config,
)
from optsweep.search import build_space, open_search_study, search_worker, study_name


def check_workers(storage: str | None, workers: int) -> None:
    """Refuse several worker processes on a storage that cannot share a study.

    Raises:
        StorageError: ``workers > 1`` and the storage is not PostgreSQL.
    """
    if workers > 1 and (storage is None or not studies.is_shared(storage)):
        where = "SQLite" if storage is None or storage.startswith("sqlite") else storage
        raise studies.StorageError(
            f"{workers} workers need a shared storage, not {where}: SQLite cannot hand each "
            "waiting trial to exactly one process (some trials would train twice); give "
            "--storage postgresql://USER@HOST/DB, or train in one process"
        )


def spec_from_study(study: optuna.Study, overrides: Sequence[str] = ()) -> SweepSpec:
    """The sweep as `init`/`run` stored it in the study, validated again, with this worker's
    ``overrides`` (its ``--device``, ``--data-dir``: where it trains, not what).

    Raises:
        StorageError: the study holds no optsweep config (not started by optsweep).
        ConfigError: the stored config no longer validates (another optsweep version).
    """
    raw = study.user_attrs.get("config")
    if not isinstance(raw, dict):
        raise studies.StorageError(
            f"study {study.study_name!r} holds no optsweep config; create it with "
            "optsweep init CONFIG --storage URL"
        )
    source = f"study {study.study_name}"
    return validate(raw, source, overrides, search=study.user_attrs.get("mode") == "search")


def init_sweep(
    spec: SweepSpec, storage: str, liveness: studies.Liveness | None = None
) -> studies.SyncReport:
    """Store the resolved config in the study and enqueue the grid points not done yet.

    Raises:
        ConfigChangedError: the study was trained with other data, model or training.
    """
    study = studies.open_study(spec.name, storage, liveness)
    studies.refuse_foreign(study, storage)
    remedy = "give the sweep another name, or start it over with optsweep run --new"
    check_same_meaning(study, spec, storage, remedy=remedy)
    studies.store_config(study, spec)
    trials = expand(spec)
    synced = studies.sync_grid(study, trials)
    store_grid_keys(study, trials)
    return synced


def work(
    storage: str,
    study_name: str | None,
    progress: Progress,
    *,
    overrides: Sequence[str] = (),
    liveness: studies.Liveness | None = None,
    out: Path | None = None,
) -> RunResult:
    """One worker: train grid points of the study until none is waiting or running, or (a
    search study) trials until the study's budget is met.

    ``overrides`` apply to the stored config (``train.device=cpu``); one that changes what
    the trials mean is refused. With ``out`` it also writes the results folder when the sweep
    is done.
    """
    if not studies.is_shared(storage):
        raise studies.StorageError(
            f"optsweep worker needs a shared storage, not {studies.redact(storage)}: only "
            "PostgreSQL hands each waiting trial to exactly one of several processes; on "
            "SQLite train in one process with optsweep run CONFIG"
        )
    liveness = liveness or studies.Liveness()
    study = studies.load_study(storage, study_name, liveness)
    spec = spec_from_study(study, overrides)
    if study.user_attrs.get("mode") == "search":
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
        return studies.retrying(
            search_worker,
            study,
            spec,
            progress,
            patience=liveness.patience,
            folder=out,
            liveness=liveness,
        )
    # Once it has joined, a worker outlives a database restart: a connection lost anywhere in
    # the sweep (not only in the calls that retry on their own) makes it join again; what it
    # had claimed is reaped by the others' grace period and retrained.
    return studies.retrying(
        run_sweep,
        spec,
        progress,
        patience=liveness.patience,
        out=out,
        storage=storage,
        liveness=liveness,
        write=out is not None,
    )


def worker_command(
    storage: str,
    study_name: str,
    *,
    liveness: studies.Liveness | None = None,
) -> list[str]:
    """The command line of one more local worker process."""
    liveness = liveness or studies.Liveness()
    command = [sys.executable, "-m", "optsweep", "worker", "--storage", storage]
    command += ["--study", study_name, "--quiet"]
    command += ["--heartbeat", str(liveness.heartbeat), "--grace", str(liveness.grace)]
    return command


def run_with_workers(
    spec: SweepSpec,
    progress: Progress,
    workers: int,
    *,
    storage: str,
    out: Path | None = None,
    liveness: studies.Liveness | None = None,
) -> RunResult:
    """`run_sweep` here, with ``workers - 1`` more worker processes on this machine."""
    check_workers(storage, workers)
    init_sweep(spec, storage, liveness)
    command = worker_command(storage, spec.name, liveness=liveness)
    with helper_processes(command, workers - 1):
        return run_sweep(
            spec,
            progress,
            out=out,
            storage=storage,
            liveness=liveness,
        )


def search_with_workers(
    spec: SweepSpec,
    progress: Progress,
    workers: int,
    *,
    storage: str,
    trials: int | None = None,
    out: Path | None = None,
    new: bool = False,
    liveness: studies.Liveness | None = None,
) -> RunResult:
    """A search here, with ``workers - 1`` more worker processes on this machine."""
    check_workers(storage, workers)
    folder = out if out is not None else Path("results") / study_name(spec)
    folder.mkdir(parents=True, exist_ok=True)
    study = open_search_study(
        spec, build_space(spec), storage, new=new, trials=trials, liveness=liveness
    )
    write_config(spec, folder)
    command = worker_command(storage, study.study_name, liveness=liveness)
    with helper_processes(command, workers - 1):
        return search_worker(
            study,
            spec,
            progress,
            folder=folder,
            liveness=liveness,
        )


@contextmanager
def helper_processes(command: list[str], n: int) -> Iterator[list[subprocess.Popen]]:
    """``n`` processes running ``command`` while the block runs; waited for at its end.

    When the block ends with an error (Ctrl-C, SIGTERM), the helpers are sent SIGTERM, which
    they handle as Ctrl-C: each hands back its own trials. (A terminal's Ctrl-C reaches them
    already; SIGTERM from a batch scheduler reaches this process alone.)
    """
    helpers = [subprocess.Popen(command) for _ in range(n)]
    try:
        yield helpers
    except BaseException:
        _signal_all(helpers, signal.SIGTERM)
        raise
    finally:
        for helper in helpers:
            helper.wait()


def _signal_all(procs: list[subprocess.Popen], sig: int) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(sig)
