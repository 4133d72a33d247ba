"""Many workers, one sweep: `optsweep init`, `optsweep worker` and `optsweep run --workers N`.

Optuna's RDB storage on PostgreSQL is the distributed engine; this module only wires it up.
`init_sweep` puts the resolved config into the study and enqueues the grid (once, under an
advisory lock, however many processes start at once). `work` is one worker: everything it
needs — the config, the grid, the trials — comes from the storage; it pops batches, trains
them with a heartbeat, reaps trials of dead workers and stops when no grid point is left
waiting or running (`optsweep.study.claim_batches`). `run_with_workers` starts N local
worker processes beside the calling one.

SQLite stays the storage of one process: popping an enqueued trial is not atomic there (8
processes ran 42–60 of 200 trials twice), and Optuna has no heartbeats for the journal file,
so several workers on SQLite are refused (`check_workers`) rather than rerouted.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
import yaml

from optsweep import study as studies
from optsweep.config import SweepSpec, expand, load_sweep
from optsweep.progress import Progress
from optsweep.runner import RunResult, run_sweep


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


def spec_from_study(study: optuna.Study) -> SweepSpec:
    """The sweep as `init`/`run` stored it in the study, validated again by `load_sweep`.

    Raises:
        StorageError: the study holds no optsweep config (not started by optsweep).
        ConfigError: the stored config no longer validates (another optsweep version).
    """
    raw = study.user_attrs.get("config")
    if study.user_attrs.get("mode") == "search":
        raise studies.StorageError(
            f"study {study.study_name!r} is a search (optsweep search); workers train grid "
            "sweeps only, run the search itself on each machine instead"
        )
    if not isinstance(raw, dict):
        raise studies.StorageError(
            f"study {study.study_name!r} holds no optsweep config; create it with "
            "optsweep init CONFIG --storage URL"
        )
    with tempfile.TemporaryDirectory(prefix="optsweep-") as folder:
        path = Path(folder) / f"{study.study_name}.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return load_sweep(path)


def init_sweep(
    spec: SweepSpec, storage: str, liveness: studies.Liveness | None = None
) -> studies.SyncReport:
    """Store the resolved config in the study and enqueue the grid points not done yet."""
    study = studies.open_study(spec.name, storage, liveness)
    studies.store_config(study, spec)
    return studies.sync_grid(study, expand(spec))


def work(
    storage: str,
    study_name: str | None,
    progress: Progress,
    *,
    data_dir: Path | None = None,
    device: str | None = None,
    liveness: studies.Liveness | None = None,
    out: Path | None = None,
) -> RunResult:
    """One worker: train grid points of the study until none is waiting or running.

    With ``out`` it also writes the results folder when the sweep is done.
    """
    if not studies.is_shared(storage):
        raise studies.StorageError(
            f"optsweep worker needs a shared storage, not {studies.redact(storage)}: only "
            "PostgreSQL hands each waiting trial to exactly one of several processes; on "
            "SQLite train in one process with optsweep run CONFIG"
        )
    liveness = liveness or studies.Liveness()
    study = studies.load_study(storage, study_name, liveness)
    spec = spec_from_study(study)
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
        data_dir=data_dir,
        device=device,
        liveness=liveness,
        write=out is not None,
    )


def worker_command(
    storage: str,
    study_name: str,
    *,
    data_dir: Path | None = None,
    device: str | None = None,
    liveness: studies.Liveness | None = None,
) -> list[str]:
    """The command line of one more local worker process."""
    liveness = liveness or studies.Liveness()
    command = [sys.executable, "-m", "optsweep", "worker", "--storage", storage]
    command += ["--study", study_name, "--quiet"]
    command += ["--heartbeat", str(liveness.heartbeat), "--grace", str(liveness.grace)]
    if data_dir is not None:
        command += ["--data-dir", str(data_dir)]
    if device is not None:
        command += ["--device", device]
    return command


def run_with_workers(
    spec: SweepSpec,
    progress: Progress,
    workers: int,
    *,
    storage: str,
    out: Path | None = None,
    data_dir: Path | None = None,
    device: str | None = None,
    liveness: studies.Liveness | None = None,
) -> RunResult:
    """`run_sweep` here, with ``workers - 1`` more worker processes on this machine."""
    check_workers(storage, workers)
    init_sweep(spec, storage, liveness)
    command = worker_command(
        storage, spec.name, data_dir=data_dir, device=device, liveness=liveness
    )
    helpers = [subprocess.Popen(command) for _ in range(workers - 1)]
    try:
        return run_sweep(
            spec,
            progress,
            out=out,
            storage=storage,
            data_dir=data_dir,
            device=device,
            liveness=liveness,
        )
    finally:
        for helper in helpers:  # after a Ctrl-C they got the signal too and are finishing
            helper.wait()
