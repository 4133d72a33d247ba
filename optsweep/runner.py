"""`optsweep run`: a SweepSpec becomes trained trials in its study and a results folder.

The flow is the architecture's: expand the grid, enqueue what is not done yet, pop batches
of compatible waiting trials, train each batch together, tell the study, and rebuild the
results folder from the study. Re-running the same command resumes: completed and diverged
grid points are never trained again; interrupted or failed ones are.

A study's trials mean what its data, model and training settings made them; a later run
whose file changes one of those is refused (`check_same_meaning`) rather than handed the old
results, unless ``--new`` starts the study over (`start_over`). Optimizer blocks, their
fixed values, grids and schedules, and seeds are part of each trial's key: changing them
adds or removes grid points, and the tables show the file's current grid.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import subprocess
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import optuna
import torch
import yaml

import optsweep
from optsweep import study as studies
from optsweep.catalog import USER_MODEL
from optsweep.config import (
    DataSpec,
    SweepSpec,
    TrainSpec,
    TrialSpec,
    expand,
    fmt,
    identity,
    label_of,
)
from optsweep.config.schema import meaning_keys, new_defaults
from optsweep.data import Dataset, load_dataset, load_npz
from optsweep.engine import (
    EpochMetrics,
    TrialOutcome,
    choose_trials_per_batch,
    heaviest_trial,
    resolve_device,
    train_batch,
)
from optsweep.files import folder_lock, replacing
from optsweep.models import BatchedModel, build_model, resolved_options
from optsweep.progress import Finished, Progress
from optsweep.records import GRID_KEYS, TrialRecord
from optsweep.report import write_results

# At most this many per-step losses are stored per trial (evenly thinned).
MAX_STEP_POINTS = 1000


class Interrupted(Exception):
    """Ctrl-C: the running trials were marked interrupted; the next run retrains them."""

    def __init__(self, done: int, total: int) -> None:
        super().__init__(f"{done} of {total} trials done")
        self.done, self.total = done, total


class ConfigChangedError(Exception):
    """The config changes what the study's trials mean (data, model or training settings)."""


# The study user attribute recording what the study's trials mean (`trial_meaning`).
MEANING = "trial_meaning"


@dataclass(frozen=True)
class RunResult:
    """Where the results went and what they are."""

    folder: Path
    storage: str
    records: list[TrialRecord]
    trained: int


def results_folder(spec: SweepSpec, out: Path | None) -> Path:
    """``--out DIR`` is the sweep's folder; by default ``results/<name>``."""
    return out if out is not None else Path("results") / spec.name


def provenance() -> dict[str, Any]:
    """Versions, git revision and time, written next to the resolved config."""
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(optsweep.__file__).parent,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        revision = "unknown"
    return {
        "optsweep": optsweep.__version__,
        "git_revision": revision,
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "optuna": optuna.__version__,
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_config(spec: SweepSpec, folder: Path) -> None:
    """``config.yaml``: the resolved config (after --set) and its provenance.

    Under the folder's lock, as the results files (`report.write_results`)."""
    text = yaml.safe_dump({**spec.raw, "provenance": provenance()}, sort_keys=False)
    with folder_lock(folder), replacing(folder / "config.yaml") as temporary:
        temporary.write_text(text)


def trial_meaning(spec: SweepSpec) -> dict[str, Any]:
    """What every trial of the sweep shares that changes its result, by YAML key path.

    Dataset, subset, the data protocol (``data:``, defaults filled in), model (name and
    options, defaults filled in: ``model: mlp`` and ``{name: mlp, hidden: [128]}`` mean the
    same) and the training settings declared to change a trial's result (not where or in
    what chunks it runs, nor the seeds: each trial's key holds its seed). Values as the study
    gives them back (lists, not tuples).
    """
    try:
        options = resolved_options(spec.model.name, spec.model.options)
    except ValueError:  # a bad option fails when the model is built, with its own message
        options = dict(spec.model.options)
    train = dataclasses.asdict(spec.train)
    record = {
        # A user's file by its name and bytes, not its path: a stored config holds the path
        # resolved, the file as written may be relative, and a moved file means the same.
        "dataset": spec.dataset if spec.files is None else Path(spec.files).name,
        **({"dataset.sha256": file_digest(spec.files)} if spec.files is not None else {}),
        "subset.train": spec.subset_train,
        "subset.test": spec.subset_test,
        **{f"data.{name}": getattr(spec.data, name) for name in meaning_keys(DataSpec)},
        "model.name": spec.model.name,
        **{f"model.{name}": value for name, value in options.items()},
        **({"model.sha256": file_digest(source)} if (source := user_model_file(spec)) else {}),
        **{f"train.{name}": train[name] for name in meaning_keys(TrainSpec)},
    }
    return json.loads(json.dumps(record, default=str))


def user_model_file(spec: SweepSpec) -> str | None:
    """The file of a user's module (``FILE.py:NAME``), whose edits change what trials mean."""
    if spec.model.name != USER_MODEL:
        return None
    where = str(spec.model.options["module"]).rpartition(":")[0]
    return where if where.endswith(".py") else None


def file_digest(path: str) -> str:
    """SHA-256 of a file's bytes: a user's data, edited, changes what its trials mean."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def meaning_before(spec: SweepSpec) -> dict[str, Any]:
    """The settings optsweep added to `trial_meaning` after studies began storing it, at the
    value every trial had before: a stored meaning that lacks one was trained with it.

    So an older study resumes with a config that leaves them at their defaults, and is
    refused with one that changes them (``data.normalize: unit`` on a standardised study).
    """
    return {
        **{f"data.{name}": value for name, value in new_defaults(DataSpec).items()},
        **{f"train.{name}": value for name, value in new_defaults(TrainSpec).items()},
        **(
            {"model.init": resolved_options(spec.model.name, {})["init"]}
            if spec.model.name != USER_MODEL
            else {}
        ),
    }


def _where(storage: str) -> str:
    """The storage as a user named it: a SQLite file's path, else the redacted URL."""
    prefix = "sqlite:///"
    if not storage.startswith(prefix):
        return studies.redact(storage)
    path = Path(storage[len(prefix) :])
    return str(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)


def check_same_meaning(
    study: optuna.Study, spec: SweepSpec, storage: str, *, remedy: str | None = None
) -> None:
    """Refuse a config that changes what the study's trials mean; else record its meaning.

    The meaning (`trial_meaning`) is stored in the study's ``trial_meaning`` attribute the
    first time; a study without it (created before optsweep recorded it) takes this
    config's. A setting the stored meaning lacks is compared at its value from before it
    was recorded (`meaning_before`); others only one side records (another optsweep
    version) are not compared.
    ``remedy`` ends the message (default: ``--new``, or another results folder or name).
    Under the study's lock, so two runs of different configs starting one PostgreSQL study
    at once cannot both pass.

    Raises:
        ConfigChangedError: one line naming each setting that changed, old and new value.
    """
    with studies.study_lock(study):
        _check_same_meaning(study, spec, storage, remedy)


def _check_same_meaning(
    study: optuna.Study, spec: SweepSpec, storage: str, remedy: str | None
) -> None:
    wanted = trial_meaning(spec)
    stored = study.user_attrs.get(MEANING)
    if isinstance(stored, dict):
        found = {**meaning_before(spec), **stored}
        changed = [
            f"{path} = {fmt(found[path])}, this config says {fmt(value)}"
            for path, value in wanted.items()
            if path in found and found[path] != value
        ]
        if changed:
            if remedy is None:
                other = "name" if studies.is_shared(storage) else "--out or name"
                remedy = f"add --new to start the study over, or give another {other}"
            raise ConfigChangedError(
                f"study {study.study_name} in {_where(storage)} was trained with "
                + ", and with ".join(changed)
                + f"; {remedy}"
            )
    if stored != wanted:
        study.set_user_attr(MEANING, wanted)


def store_grid_keys(study: optuna.Study, trials: list[TrialSpec]) -> None:
    """Record the file's current grid in the study: its tables show those points only."""
    keys = [t.key for t in trials]
    if study.user_attrs.get(GRID_KEYS) != keys:
        study.set_user_attr(GRID_KEYS, keys)


def start_over(name: str, storage: str, liveness: studies.Liveness | None = None) -> bool:
    """``--new``: delete the study ``name`` from ``storage`` when there is one.

    Returns whether a study was deleted. Raises `StorageError` when the storage cannot be
    opened, or while other workers are live on the study (it would be deleted under them).
    """
    liveness = liveness or studies.Liveness()
    backend = studies.open_storage(storage, liveness)
    if name not in optuna.get_all_study_names(backend):
        return False
    live = studies.live_workers(optuna.load_study(study_name=name, storage=backend), liveness.grace)
    if live:
        raise studies.StorageError(
            f"--new would delete study {name} under {len(live)} live worker(s) "
            f"({', '.join(sorted(live))}); stop them first or give the sweep another name"
        )
    optuna.delete_study(study_name=name, storage=backend)
    return True


def _thin(steps: list[int], losses: list[float]) -> tuple[list[int], list[float]]:
    stride = max(1, -(-len(steps) // MAX_STEP_POINTS))  # no steps: diverged at once
    return steps[::stride], losses[::stride]


def outcome_attrs(outcome: TrialOutcome, batch_size: int) -> dict[str, Any]:
    """A trained trial's curves and times, as stored in the study's user attributes."""
    steps, losses = _thin(outcome.steps, outcome.step_losses)
    return {
        "epochs": [vars(e) for e in outcome.epochs],
        "steps": steps,
        "step_losses": losses,
        "seconds": round(outcome.seconds, 3),
        "stopped_step": outcome.stopped_step,
        "trials_in_batch": batch_size,
    }


def run_sweep(
    spec: SweepSpec,
    progress: Progress,
    *,
    out: Path | None = None,
    storage: str | None = None,
    liveness: studies.Liveness | None = None,
    write: bool = True,
) -> RunResult:
    """Train every grid point of ``spec`` that is not done yet; rebuild the results folder.

    On a shared storage (PostgreSQL) this process is one worker among any number: it returns
    once no grid point is waiting or running anywhere. ``write=False`` (a worker without
    ``--out``) leaves the results folder alone.

    Raises:
        ConfigChangedError: the study's trials were trained with other data, model or
            training settings (`check_same_meaning`); nothing is stored or written then.
    """
    folder = results_folder(spec, out)
    if write:
        folder.mkdir(parents=True, exist_ok=True)
    storage = storage or studies.sqlite_url(folder)
    workbench = prepare_in_background(spec)
    study = studies.open_study(spec.name, storage, liveness)
    studies.refuse_foreign(study, storage)
    check_same_meaning(study, spec, storage)  # before anything of this config is stored
    trials = expand(spec)
    studies.store_config(study, spec)  # first: a worker joining needs only the storage
    synced = studies.sync_grid(study, trials)
    store_grid_keys(study, trials)
    if write:
        write_config(spec, folder)
    specs = {t.key: t for t in trials}

    trained = 0
    if synced.done == synced.total:
        progress.start(synced.total, synced.done)
    else:
        bench = workbench.result()
        limit = spec.train.trials_per_batch or choose_trials_per_batch(
            bench.model,
            bench.dataset,
            spec.train,
            bench.device,
            waiting=synced.total - synced.done,
            template=heaviest_trial(bench.model, trials),
        )
        progress.start(synced.total, synced.done)
        try:
            for claimed in studies.claim_batches(study, specs, limit, liveness):
                trained += train_claimed(study, claimed, bench, spec, progress)
        except KeyboardInterrupt:
            progress.stop(interrupted=True)
            studies.hand_back_own(study)  # also those claimed but not yet training
            if write:
                write_results(study, folder, spec.name)
            done = len(studies.done_keys(study) & specs.keys())
            raise Interrupted(done, synced.total) from None
    progress.stop()
    records = write_results(study, folder, spec.name) if write else []
    return RunResult(folder, storage, records, trained)


@dataclass(frozen=True)
class Workbench:
    """What every batch of a sweep trains with: the device, the data on it, the model."""

    device: torch.device
    dataset: Dataset
    model: BatchedModel


def prepare(spec: SweepSpec) -> Workbench:
    """Decode the dataset (from ``data.dir``, or the user's .npz) once onto the device
    (``train.device``)."""
    target = resolve_device(spec.train.device)
    subsets = (spec.subset_train, spec.subset_test)
    if spec.files is not None:
        dataset = load_npz(spec.files, target, *subsets, normalize=spec.data.normalize)
    else:
        dataset = load_dataset(
            spec.dataset, spec.data.dir, target, *subsets, normalize=spec.data.normalize
        )
    model = build_model(
        spec.model.name, dataset.input_shape, dataset.num_classes, **spec.model.options
    )
    return Workbench(target, dataset, model)


def prepare_in_background(spec: SweepSpec) -> Future[Workbench]:
    """``prepare`` in a thread, so that the data decodes while the study opens and syncs.

    Inflating MNIST's gzip files and converting them run outside the GIL; opening a new
    SQLite study (Optuna creates its tables and Alembic stamps them) is Python. Measured on
    2 cores: 0.44 s and 0.47 s one after the other. The result (or the data error) is
    raised where ``.result()`` is called; a sweep with nothing left to train never calls it.
    """
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="optsweep-data")
    future = pool.submit(prepare, spec)
    pool.shutdown(wait=False)  # the thread ends with its one task
    return future


def train_claimed(
    study: optuna.Study,
    claimed: list[tuple[int, TrialSpec]],
    bench: Workbench,
    spec: SweepSpec,
    progress: Progress,
) -> int:
    """Train one batch of claimed trials (by id) and tell the study how each ended: every
    epoch's test accuracies, and the outcomes, each in one transaction for the batch."""
    ids = [i for i, _ in claimed]
    specs = [s for _, s in claimed]
    progress.batch([label_of(s) for s in specs], spec.train.epochs)

    def on_epoch(epoch: int, metrics: Mapping[int, EpochMetrics]) -> list[int]:
        accuracies = {ids[index]: m.test_accuracy for index, m in metrics.items()}
        studies.report_epochs(study, accuracies, epoch)
        return []  # a grid trains every point to the end

    try:
        outcomes = train_batch(
            bench.dataset,
            bench.model,
            specs,
            spec.train,
            device=bench.device,
            on_epoch=on_epoch,
            on_step=progress.step,
            data=spec.data,
        )
    except KeyboardInterrupt:
        studies.finish_batch(study, [(i, "interrupted", None, {}) for i in ids])
        raise
    except Exception as error:  # one bad batch must not end the sweep; it is retried next run
        reason = {"error": f"{type(error).__name__}: {error}"}
        studies.finish_batch(study, [(i, "failed", None, reason) for i in ids])
        progress.finished([Finished(label_of(s), "failed", float("nan")) for s in specs])
        return 0
    told = []
    for trial_id, trial_spec, outcome in zip(ids, specs, outcomes, strict=True):
        accuracy = outcome.epochs[-1].test_accuracy if outcome.epochs else float("nan")
        attrs = {**identity(trial_spec), **outcome_attrs(outcome, len(specs))}
        told.append((trial_id, outcome.status, accuracy, attrs))
    studies.finish_batch(study, told)
    progress.finished(
        [Finished(label_of(s), status, a) for s, (_, status, a, _) in zip(specs, told, strict=True)]
    )
    return len(specs)
