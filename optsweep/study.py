"""The Optuna study behind every sweep: enqueue grid points once, pop them in batches, record.

A sweep is an Optuna study (SQLite file ``results/<name>/study.db`` by default). Each grid
point is enqueued as a WAITING trial carrying its grid key; workers pop WAITING trials that
share a batch key (the structural part of a trial: optimizer, semantics, flags, seed,
schedule) so that they can be trained together. Popping uses the storage's conditional
WAITING → RUNNING transition, the same primitive ``Study.ask`` uses, so it is as atomic as the
storage makes it (atomic on PostgreSQL; not across processes on SQLite).

Many workers, one study (PostgreSQL): the grid is enqueued under a PostgreSQL advisory lock,
so that at any moment a grid point has at most one *live* (WAITING or RUNNING) trial, and none
once it is done. A worker records an Optuna heartbeat for a trial *before* claiming it and
then every `Liveness.heartbeat` seconds while training it (`Heartbeat`); any worker fails a
RUNNING trial whose heartbeat is older than `Liveness.grace` (`reap_stale`, Optuna's
stale-trial rule) and enqueues its grid point again. A stalled worker that comes back finds
its trial FAIL: telling it is refused by the storage's row lock, and `finish` drops the
result. Workers retry storage calls while the database is unreachable (`retrying`).
SQLite is for one process: there a RUNNING trial found at start was left by a killed run.

Trial outcomes (user attribute ``status``):
- ``complete``: Optuna COMPLETE, value = final test accuracy.
- ``diverged``: Optuna FAIL; the loss turned non-finite. A result, never retried, never "best".
- ``failed`` / ``interrupted``: Optuna FAIL; retried by the next run.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import socket
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import optuna
import sqlalchemy
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.exceptions import StorageInternalError, UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, Trial, TrialState
from sqlalchemy.dialects import postgresql as pg_dialect

from optsweep import interrupts
from optsweep import optuna_private as private
from optsweep.config import SweepSpec, TrialSpec, structure_key, trains_beside_others
from optsweep.optim.registry import OPTIMIZERS, SEMANTICS

# Statuses after which a grid point is done and never trained again.
FINAL_STATUSES = ("complete", "diverged")
# Databases whose storage several worker processes may share (atomic pop, heartbeats, locks).
SHARED_DIALECTS = ("postgresql",)
# First key of optsweep's PostgreSQL advisory locks (the second is the study id, 0 for setup).
LOCK_CLASS = zlib.crc32(b"optsweep") & 0x7FFFFFFF

log = logging.getLogger("optsweep")
T = TypeVar("T")


def worker_id() -> str:
    """Who claimed a trial (its user attribute ``worker``): ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    """SQLite studies: write-ahead log and fsync at checkpoints only (on each connection of
    the study's own engine, `open_storage`).

    Optuna commits every user attribute on its own; with SQLite's defaults each commit waits
    for an fsync. WAL with ``synchronous=NORMAL`` still survives a killed process (only an
    OS crash can lose the last commits) and halved the time to tell 32 trials with 10
    attributes each (0.86 s → 0.48 s, measured here).
    """
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@dataclass(frozen=True)
class Liveness:
    """How workers sharing a PostgreSQL study notice that one of them died.

    Attributes:
        heartbeat: seconds between two heartbeats of a claimed trial (Optuna's
            ``heartbeat_interval``).
        grace: a RUNNING trial without a heartbeat for this long is failed as ``interrupted``
            and its grid point enqueued again (Optuna's ``grace_period``); make it several
            heartbeats long.
        poll: seconds an idle worker waits before looking again for work and stale trials.
        patience: seconds a worker keeps retrying while the database is unreachable.
    """

    heartbeat: int = 10
    grace: int = 60
    poll: float = 2.0
    patience: float = 600.0


class StorageError(Exception):
    """A storage URL that cannot be used; ``str()`` is one line saying why."""


def sqlite_url(results_dir: Path) -> str:
    """The default storage: ``results/<name>/study.db``."""
    return f"sqlite:///{(results_dir / 'study.db').resolve()}"


def storage_url(url: str) -> str:
    """The URL checked for syntax, ``postgres://`` spelled ``postgresql://`` as SQLAlchemy wants.

    Raises:
        StorageError: a malformed URL or an unknown kind of database.
    """
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise StorageError(
            f"malformed storage URL {url!r}; expected postgresql://USER:PASSWORD@HOST:PORT/DB "
            "or sqlite:///PATH/study.db"
        ) from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql", "mysql"):
        raise StorageError(
            f"unsupported storage URL {redact(url)}: {parsed.get_backend_name()!r} is not a "
            "database optsweep knows; use postgresql://USER:PASSWORD@HOST:PORT/DB or "
            "sqlite:///PATH/study.db"
        )
    if parsed.drivername == "postgresql" and not _importable("psycopg"):
        # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; the [postgres] extra and
        # most machines have psycopg2.
        url = "postgresql+psycopg2" + url[len("postgresql") :]
    return url


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def redact(url: str) -> str:
    """The URL with its password hidden, for messages."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def is_shared(url: str) -> bool:
    """Whether several worker processes may share this storage (PostgreSQL)."""
    return sqlalchemy.engine.make_url(storage_url(url)).get_backend_name() in SHARED_DIALECTS


def _reason(error: BaseException) -> str:
    """The first line of the innermost cause: what the database driver said."""
    while error.__cause__ is not None or getattr(error, "orig", None) is not None:
        error = getattr(error, "orig", None) or error.__cause__  # type: ignore[assignment]
    text = str(error).strip().splitlines()
    return text[0].strip() if text else type(error).__name__


# PostgreSQL error classes no wait cures (SQLSTATE): insufficient resources (disk full, out
# of memory) but too many connections, which frees itself; system I/O errors; permissions.
_PG_LASTING = ("53", "58", "42501")
_PG_PASSING = ("53300",)


def _cannot(verb: str, storage: str, error: BaseException) -> str:
    remedy = lasting_cause(error)
    return f"cannot {verb} the storage {redact(storage)}: {_reason(error)}" + (
        f"; {remedy}" if remedy else ""
    )


def is_transient(error: BaseException) -> bool:
    """A lost or refused database connection (worth retrying), not a bad request, nor a
    condition that waiting does not cure (`lasting_cause`)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)):
            return lasting_cause(seen) is None
        if isinstance(seen, sqlalchemy.exc.DBAPIError) and seen.connection_invalidated:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def lasting_cause(error: BaseException) -> str | None:
    """What to do about a storage error that retrying cannot cure ("" when the database's own
    words say it all), or None for one that may pass (a lost connection, a busy file).

    SQLite reports a full disk, a read-only file, a corrupt page and a missing folder with the
    same `OperationalError` class as a lost PostgreSQL connection; only a busy SQLite file
    ("database is locked") passes with time. PostgreSQL says which by its SQLSTATE code.
    """
    import sqlite3

    seen: BaseException | None = error
    while seen is not None:
        orig = getattr(seen, "orig", None)
        if isinstance(orig, sqlite3.Error):
            text = str(orig).lower()
            if "locked" in text:
                return None
            return _remedy(text)
        code = getattr(orig, "pgcode", None)
        if isinstance(code, str):
            lasting = code.startswith(_PG_LASTING) and code not in _PG_PASSING
            return _remedy(str(orig).lower()) if lasting else None
        seen = seen.__cause__ or seen.__context__
    return None


def _remedy(text: str) -> str:
    if "full" in text or "no space" in text:
        return "free some space, then run the same command again: finished trials are kept"
    if "readonly" in text or "read-only" in text or "permission" in text:
        return "make the storage writable, then run the same command again"
    if "malformed" in text or "not a database" in text or "corrupt" in text:
        return "the database file is damaged: restore it from a copy, or move it away to start over"
    return ""  # lasting, with nothing more specific to say than the database's own words


def retrying(call: Callable[..., T], *args: Any, patience: float, **kwargs: Any) -> T:
    """``call(*args, **kwargs)``, retried with backoff while the database is unreachable.

    Only lost or refused connections are retried (a PostgreSQL restart, a network cut), for
    up to ``patience`` seconds; any other error, or the last one, is raised.
    """
    deadline = time.monotonic() + patience
    delay = 0.25
    while True:
        try:
            return call(*args, **kwargs)
        except Exception as error:
            if not is_transient(error) or time.monotonic() > deadline:
                raise
            log.warning("storage unreachable (%s); retrying in %.1f s", _reason(error), delay)
            time.sleep(delay)
            delay = min(2 * delay, 5.0)


@contextmanager
def _setup_lock(url: str) -> Iterator[None]:
    """Serialise table and study creation among processes starting at once (PostgreSQL)."""
    if sqlalchemy.engine.make_url(url).get_backend_name() not in SHARED_DIALECTS:
        yield
        return
    engine = sqlalchemy.create_engine(
        url, poolclass=sqlalchemy.pool.NullPool, connect_args={"connect_timeout": 10}
    )
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:a, 0)"), {"a": LOCK_CLASS})
            connection.commit()
            yield  # the lock ends with the connection
    finally:
        engine.dispose()


def open_storage(url: str, liveness: Liveness | None = None) -> RDBStorage:
    """Optuna's RDB storage for ``url``; on PostgreSQL with heartbeats and pre-pinged pools.

    Raises:
        StorageError: malformed, unsupported or unreachable.
    """
    given, url = url, storage_url(url)
    liveness = liveness or Liveness()
    options: dict[str, Any] = {}
    if sqlalchemy.engine.make_url(url).get_backend_name() in SHARED_DIALECTS:
        options = {
            "engine_kwargs": {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}},
            "heartbeat_interval": liveness.heartbeat,
            "grace_period": liveness.grace,
        }
    try:
        with _setup_lock(url), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = RDBStorage(url, **options)
        if storage.engine.dialect.name == "sqlite":
            sqlalchemy.event.listen(storage.engine, "connect", _sqlite_pragmas)
            storage.engine.dispose()  # the connections Optuna opened so far had no pragmas
        return storage
    except ImportError:
        raise StorageError(
            f"cannot open the storage {redact(given)}: its database driver is not installed "
            "(for PostgreSQL: pip install 'optsweep[postgres]')"
        ) from None
    except (sqlalchemy.exc.SQLAlchemyError, StorageInternalError) as error:
        raise StorageError(_cannot("open", given, error)) from None


def open_study(name: str, storage: str, liveness: Liveness | None = None) -> optuna.Study:
    """Create or load the study ``name`` (maximising final test accuracy)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    backend = open_storage(storage, liveness)
    try:
        with _setup_lock(backend.url):
            return optuna.create_study(
                study_name=name, storage=backend, direction="maximize", load_if_exists=True
            )
    except (sqlalchemy.exc.SQLAlchemyError, StorageInternalError) as error:
        raise StorageError(_cannot("open", storage, error)) from None


def refuse_foreign(study: optuna.Study, storage: str, *, empty_too: bool = False) -> None:
    """Refuse a study optsweep did not write: no optsweep config, and a trial without the key
    every optsweep trial carries (or, with ``empty_too``, no trial at all). A study optsweep
    creates stores its config before its first trial.

    Raises:
        StorageError: one line naming the study and the way out.
    """
    if "config" in study.user_attrs:
        return
    trials = study.get_trials(deepcopy=False)
    if all("key" in t.user_attrs for t in trials) and (trials or not empty_too):
        return
    raise StorageError(
        f"study {study.study_name} in {redact(storage)} was not written by optsweep (it holds "
        "no optsweep config); optsweep reads and trains only its own studies: give another "
        "results folder (--out), sweep name or --storage"
    )


def load_study(storage: str, name: str | None, liveness: Liveness | None = None) -> optuna.Study:
    """An existing study; ``name`` may be left out when the storage holds only one.

    Raises:
        StorageError: no such study (the message lists those there are).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    backend = open_storage(storage, liveness)
    try:
        names = [s.study_name for s in backend.get_all_studies()]
    except (sqlalchemy.exc.SQLAlchemyError, StorageInternalError) as error:
        raise StorageError(_cannot("read", storage, error)) from None
    if name is None and len(names) == 1:
        name = names[0]
    if name not in names:
        there = ", ".join(sorted(names)) or "none"
        what = f"no study {name!r}" if name else "several studies"
        raise StorageError(
            f"{redact(storage)}: {what}; choose one with --study (studies there: {there})"
        )
    return optuna.load_study(study_name=name, storage=backend)


def heartbeats_on(study: optuna.Study) -> bool:
    """Whether the study's storage records heartbeats (PostgreSQL as optsweep opens it)."""
    return private.heartbeats_on(study)


def storage_of(study: optuna.Study) -> str:
    """The URL of the study's storage (password included: for the caller's own use)."""
    backend = private.backend(study)
    return str(backend.url) if isinstance(backend, RDBStorage) else repr(backend)


# Workers that joined a study on a shared storage and when each was last seen: optsweep's own
# table in the study's database (Optuna keeps no list of workers). A worker between two
# batches holds no RUNNING trial, so heartbeats alone cannot tell that it is still there.
_WORKERS = sqlalchemy.Table(
    "optsweep_workers",
    sqlalchemy.MetaData(),
    sqlalchemy.Column("study_id", sqlalchemy.Integer, primary_key=True),
    sqlalchemy.Column("worker", sqlalchemy.String(255), primary_key=True),
    sqlalchemy.Column("seen", sqlalchemy.DateTime, nullable=False),
)


def mark_alive(study: optuna.Study) -> None:
    """Record that this worker is working on the study now (shared storage only)."""
    if not shared(study):
        return
    engine = private.backend(study).engine
    row = {
        "study_id": private.study_id(study),
        "worker": worker_id(),
        "seen": sqlalchemy.func.now(),
    }
    insert = pg_dialect.insert(_WORKERS).values(row)
    upsert = insert.on_conflict_do_update(
        index_elements=[_WORKERS.c.study_id, _WORKERS.c.worker], set_={"seen": row["seen"]}
    )
    with engine.begin() as connection:
        _WORKERS.create(connection, checkfirst=True)
        connection.execute(upsert)


def mark_gone(study: optuna.Study) -> None:
    """This worker has left the study (best effort: a killed one simply stops being seen)."""
    if not shared(study):
        return
    delete = _WORKERS.delete().where(
        _WORKERS.c.study_id == private.study_id(study), _WORKERS.c.worker == worker_id()
    )
    try:
        with private.backend(study).engine.begin() as connection:
            connection.execute(delete)
    except sqlalchemy.exc.SQLAlchemyError as error:
        log.debug("not marked gone: %s", _reason(error))


def live_workers(study: optuna.Study, within: float) -> set[str]:
    """Other workers (``host:pid``) seen on the study in the last ``within`` seconds, or
    holding RUNNING trials whose heartbeats are fresh (shared storage; none on SQLite)."""
    if not private.heartbeats_on(study):
        return set()
    stale = set(private.stale_trial_ids(study))
    live = {
        str(t.user_attrs.get("worker", "?"))
        for t in private.storage(study).get_all_trials(
            private.study_id(study), deepcopy=False, states=(TrialState.RUNNING,)
        )
        if private.trial_id(t) not in stale
    }
    recent = sqlalchemy.literal_column(f"now() - interval '{float(within)} seconds'")
    query = sqlalchemy.select(_WORKERS.c.worker).where(
        _WORKERS.c.study_id == private.study_id(study), _WORKERS.c.seen > recent
    )
    with private.backend(study).engine.connect() as connection:
        if sqlalchemy.inspect(connection).has_table(_WORKERS.name):
            live |= set(connection.execute(query).scalars())
    return live - {worker_id()}


def shared(study: optuna.Study) -> bool:
    """Whether the study lives where several workers may share it."""
    backend = private.backend(study)
    return isinstance(backend, RDBStorage) and backend.engine.dialect.name in SHARED_DIALECTS


@contextmanager
def study_lock(study: optuna.Study) -> Iterator[None]:
    """Only one process at a time changes what this study holds to do (PostgreSQL): enqueues
    grid points, or (a search) counts the budget and asks new trials.

    A session-level advisory lock on its own connection; a killed holder's lock ends with its
    connection. Elsewhere (SQLite, one process) it does nothing.
    """
    if not shared(study):
        yield
        return
    key = {"a": LOCK_CLASS, "b": private.study_id(study)}
    with private.backend(study).engine.connect() as connection:
        connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:a, :b)"), key)
        connection.commit()
        try:
            yield
        finally:
            try:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:a, :b)"), key)
                connection.commit()
            except sqlalchemy.exc.SQLAlchemyError:
                connection.invalidate()  # closing the connection releases the lock


def batch_key(trial: TrialSpec) -> str:
    """What trials must share to be trained together in one batch: the seed and the schedule
    (the batches' order, the initial weights, the learning rate's curve). A trial that cannot
    train beside other rules (`trains_beside_others`) shares its structure too
    (`structure_key`); the others batch across optimizers, each rule updating its rows.
    """
    shared: dict[str, Any] = {"schedule": repr(trial.schedule), "seed": trial.seed}
    if not trains_beside_others(trial):
        shared["structure"] = structure_key(trial)
    return json.dumps(shared, sort_keys=True)


@dataclass(frozen=True)
class SyncReport:
    """What `sync_grid` found and did."""

    total: int
    done: int
    enqueued: int
    requeued: int


def status_of(trial: FrozenTrial) -> str:
    """complete, diverged, pruned, failed, interrupted, duplicate, running or waiting."""
    if trial.state == TrialState.COMPLETE:
        return "complete"
    if trial.state == TrialState.WAITING:
        return "waiting"
    if trial.state == TrialState.RUNNING:
        return "running"
    return str(trial.user_attrs.get("status", "failed"))


def sync_grid(
    study: optuna.Study,
    trials: Sequence[TrialSpec],
    *,
    exclusive: bool | None = None,
    retry_failed: bool = True,
) -> SyncReport:
    """Enqueue every grid point that is neither done nor live (waiting or running).

    With ``exclusive`` (the default on SQLite: one process), a RUNNING trial found here was
    left behind by a killed run: it is marked ``interrupted`` and its grid point enqueued
    again. On a shared storage a RUNNING trial belongs to a live worker, or will be reaped by
    `reap_stale` when its heartbeats stop; the whole check-and-enqueue runs under `study_lock`,
    so workers starting at once enqueue each point once. Without ``retry_failed`` only points
    never enqueued or whose latest trial was ``interrupted`` are enqueued (what workers do
    mid-sweep; a ``failed`` point is retried by the next run, not in a loop). Points are
    enqueued sorted by batch key, so that consecutive waiting trials train together, in one
    transaction (what ``Study.enqueue_trial`` writes, for every point at once).
    """
    if exclusive is None:
        exclusive = not shared(study)
    with study_lock(study):
        done: set[str] = set()
        live: set[str] = set()
        latest: dict[str, tuple[int, str]] = {}
        requeued = 0
        for frozen in study.get_trials(deepcopy=False):
            key = frozen.user_attrs.get("key")
            status = status_of(frozen)
            if status == "running" and exclusive:
                fail_trial(study, private.trial_id(frozen), "interrupted")
                status = "interrupted"
                requeued += 1
            if status in FINAL_STATUSES:
                done.add(key)
            elif status in ("waiting", "running"):
                live.add(key)
            elif frozen.number >= latest.get(key, (-1, ""))[0]:
                latest[key] = (frozen.number, status)
        todo = [
            t
            for t in trials
            if t.key not in done
            and t.key not in live
            and (retry_failed or latest.get(t.key, (0, "interrupted"))[1] == "interrupted")
        ]
        if todo:  # a worker's top-up mostly finds nothing: no lock on the study's row then
            with private.one_transaction(study) as session:
                private.add_waiting_trials(
                    session,
                    private.study_id(study),
                    [
                        (
                            {"key": t.key, "batch_key": batch_key(t), "seed": t.seed},
                            {"fixed_params": grid_params(t)},
                        )
                        for t in sorted(todo, key=batch_key)
                    ],
                )
    return SyncReport(
        total=len(trials),
        done=sum(1 for t in trials if t.key in done),
        enqueued=len(todo),
        requeued=requeued,
    )


def store_config(study: optuna.Study, spec: SweepSpec) -> None:
    """Keep the resolved config in the study, so reports and workers need only the storage."""
    study.set_user_attr("config", spec.raw)


# A worker on a shared storage claims at most half of the waiting trials of a batch key, and
# never fewer than this many (when that many wait).
CLAIM_FLOOR = 8


def claim_limit(limit: int, compatible: int) -> int:
    """How many of ``compatible`` waiting trials a worker on a shared storage claims at once.

    At most half (at least ``CLAIM_FLOOR``): workers starting together then all get trials,
    instead of the first one claiming every trial its K allows while the others wait.
    """
    return min(limit, max(CLAIM_FLOOR, math.ceil(compatible / 2)))


def pop_batch(
    study: optuna.Study, specs: Mapping[str, TrialSpec], limit: int, *, share: bool = False
) -> list[tuple[int, TrialSpec]]:
    """Claim up to ``limit`` WAITING trials sharing the batch key of the oldest waiting one
    (with ``share``, up to ``claim_limit`` of them); their ids and grid points.

    The claim is the storage's conditional WAITING → RUNNING update (as in ``Study.ask``),
    for the whole batch in one transaction with each trial's worker and parameters
    (`_claim`); a trial another worker claimed first is skipped, and when every trial of the
    oldest batch key was, the next key's are claimed. Waiting trials whose key is not in
    ``specs`` (grid points of an older config) are left alone. With heartbeats on, a trial's
    heartbeat is recorded *before* it is claimed, so that a worker killed right after a
    claim still leaves a heartbeat to go stale (Optuna never reaps a trial without one).
    """
    waiting = [(i, key, batch) for i, key, batch in _waiting(study) if (key or "") in specs]
    if share and waiting:
        oldest = waiting[0][2]
        limit = claim_limit(limit, sum(batch == oldest for _, _, batch in waiting))
    keys = list(dict.fromkeys(batch for _, _, batch in waiting))  # oldest first
    for wanted in keys:
        candidates = [(i, specs[key or ""]) for i, key, batch in waiting if batch == wanted]
        claimed: list[tuple[int, TrialSpec]] = []
        while candidates and len(claimed) < limit:
            take, candidates = (
                candidates[: limit - len(claimed)],
                candidates[limit - len(claimed) :],
            )
            if private.heartbeats_on(study):
                for trial_id, _ in take:
                    private.storage(study).record_heartbeat(trial_id)
            with interrupts.held():  # a stop mid-claim would leave trials RUNNING
                claimed += _claim(study, take)
        if claimed:
            return claimed
    return []


def _claim(
    study: optuna.Study, candidates: Sequence[tuple[int, TrialSpec]]
) -> list[tuple[int, TrialSpec]]:
    """WAITING → RUNNING for the candidates still waiting, with who claimed each (user
    attribute ``worker``) and its grid point (Optuna's fixed params) as its parameters, in one
    transaction. Optuna's own calls take five commits and a full read of the trial, each
    (~10 ms a trial on SQLite)."""
    with private.one_transaction(study) as session:
        rows = private.locked_trials(session, [i for i, _ in candidates])
        claimed = [(i, spec) for i, spec in candidates if rows[i].state == TrialState.WAITING]
        for trial_id, _ in claimed:
            private.set_state(rows[trial_id], TrialState.RUNNING)
        me = worker_id()
        private.upsert_attrs(
            session, private.TRIAL_USER_ATTRS, [(i, "worker", me) for i, _ in claimed]
        )
        private.add_params(
            session,
            private.study_id(study),
            [(i, *param) for i, spec in claimed for param in _params(spec)],
        )
    return claimed


def _waiting(study: optuna.Study) -> list[tuple[int, str | None, str | None]]:
    """(trial id, key, batch key) of the WAITING trials, oldest first.

    One light query of ids and two attributes: loading whole trials, as ``get_all_trials``
    does, costs a hundred times more on a big grid, at every pop.
    """
    trials = private.TRIALS
    key = private.TRIAL_USER_ATTRS.alias("k")
    batch = private.TRIAL_USER_ATTRS.alias("b")
    query = (
        sqlalchemy.select(trials.c.trial_id, key.c.value_json, batch.c.value_json)
        .select_from(trials)
        .outerjoin(key, (key.c.trial_id == trials.c.trial_id) & (key.c.key == "key"))
        .outerjoin(batch, (batch.c.trial_id == trials.c.trial_id) & (batch.c.key == "batch_key"))
        .where(
            trials.c.study_id == private.study_id(study), trials.c.state == TrialState.WAITING.name
        )
        .order_by(trials.c.trial_id)
    )
    with private.backend(study).engine.connect() as connection:
        rows = connection.execute(query).all()
    return [(i, k and json.loads(k), b and json.loads(b)) for i, k, b in rows]


def _point(value: Any) -> BaseDistribution:
    """A one-point distribution holding a grid value.

    Optuna refuses a parameter name whose distribution changes kind or categorical choices
    between trials of a study, so numbers become one-point float/int ranges (compatible
    whatever the value), booleans a fixed (False, True) choice, and strings are recorded
    with their full set of possible values by the caller.
    """
    if isinstance(value, bool):
        return CategoricalDistribution((False, True))
    if isinstance(value, int):
        return IntDistribution(value, value)
    if isinstance(value, float):
        return FloatDistribution(value, value)
    return CategoricalDistribution((value,))


def grid_params(spec: TrialSpec) -> dict[str, Any]:
    """The grid point as Optuna parameters, named as in the YAML."""
    named = {spec.display.get(name, name): value for name, value in spec.params.items()}
    return {"optimizer": spec.optimizer, "semantics": spec.semantics, **named}


def _params(spec: TrialSpec) -> list[tuple[str, float, BaseDistribution]]:
    """The grid point as Optuna's parameters: (name, internal value, distribution)."""
    params = []
    for name, value in grid_params(spec).items():
        if name == "optimizer":
            distribution: BaseDistribution = CategoricalDistribution(tuple(OPTIMIZERS))
        elif name == "semantics":
            distribution = CategoricalDistribution(SEMANTICS)
        else:
            distribution = _point(value)
        params.append((name, distribution.to_internal_repr(value), distribution))
    return params


def report_epoch(trial: Trial, epoch: int, test_accuracy: float) -> None:
    """An intermediate value per epoch (what pruners and the dashboard read).

    Best effort: a trial reaped meanwhile (its worker stalled) or a database that is away
    costs this one point of the curve, never the training of the batch.
    """
    try:
        trial.report(test_accuracy, step=epoch)
    except (UpdateFinishedTrialError, StorageInternalError, sqlalchemy.exc.SQLAlchemyError) as e:
        log.debug("trial %d: epoch %d not reported: %s", trial.number, epoch, _reason(e))


def report_epochs(study: optuna.Study, accuracies: Mapping[int, float], epoch: int) -> None:
    """`report_epoch` for a batch of grid trials, by id, in one transaction: the trials
    still RUNNING get their intermediate value. Best effort, as `report_epoch`."""
    try:
        with private.one_transaction(study) as session:
            rows = private.locked_trials(session, accuracies)
            running = {i: v for i, v in accuracies.items() if rows[i].state == TrialState.RUNNING}
            private.add_intermediate_values(session, running, epoch)
    except (StorageInternalError, sqlalchemy.exc.SQLAlchemyError) as e:
        log.debug("epoch %d not reported: %s", epoch, _reason(e))


def final_status(status: str, value: float | None) -> str:
    """A ``complete`` trial whose value is NaN or ±inf is ``diverged``: never ranked, never
    fed to a sampler."""
    if status == "complete" and (value is None or not math.isfinite(value)):
        return "diverged"
    return status


# A claimed trial's outcome: (trial id, status, value, user attributes to store).
Outcome = tuple[int, str, float | None, Mapping[str, Any]]


def finish_batch(
    study: optuna.Study, outcomes: Sequence[Outcome], *, patience: float | None = None
) -> list[bool]:
    """Store a batch of grid trials' histories and outcomes (``complete``, ``diverged``,
    ``failed``, ``interrupted``: see the module docstring) in one transaction.

    Retried while the database is unreachable (``patience`` seconds, default
    `Liveness.patience`). Returns, for each, whether it was kept; a result is dropped, and
    nothing of it written, when the trial was no longer RUNNING (a reaper failed it after its
    worker stalled, and its grid point went to another worker), or when its grid point has a
    COMPLETE trial already (this one is then FAIL ``duplicate``).
    """
    outcomes = [(i, final_status(status, value), value, a) for i, status, value, a in outcomes]
    patience = Liveness().patience if patience is None else patience
    kept = retrying(_finish_batch, study, outcomes, patience=patience)
    for (trial_id, *_), stored in zip(outcomes, kept, strict=True):
        if not stored:
            log.warning("trial id %d: result dropped; its point is trained elsewhere", trial_id)
    return kept


_STATE_OF = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED}


def _finish_batch(study: optuna.Study, outcomes: Sequence[Outcome]) -> list[bool]:
    ids = [trial_id for trial_id, *_ in outcomes]
    with private.one_transaction(study) as session:
        rows = private.locked_trials(session, ids)
        attrs = _attrs_of(session, ids, ("key", "status"))
        live = {i for i in ids if rows[i].state == TrialState.RUNNING}
        completing = {attrs.get((i, "key")) for i, status, *_ in outcomes if status == "complete"}
        elsewhere = _completed_keys(session, study, completing - {None}, other_than=ids)
        kept = []
        for trial_id, status, value, extra in outcomes:
            state = _STATE_OF.get(status, TrialState.FAIL)
            if trial_id not in live:  # reaped; or written by our attempt whose reply was lost
                same = rows[trial_id].state == state
                kept.append(same and attrs.get((trial_id, "status")) == status)
                continue
            duplicate = status == "complete" and attrs.get((trial_id, "key")) in elsewhere
            written = {"status": "duplicate"} if duplicate else {**extra, "status": status}
            private.upsert_attrs(
                session, private.TRIAL_USER_ATTRS, [(trial_id, k, v) for k, v in written.items()]
            )
            if status == "complete" and not duplicate:
                private.add_value(session, trial_id, value)
            private.set_state(rows[trial_id], TrialState.FAIL if duplicate else state)
            kept.append(not duplicate)
    return kept


def _attrs_of(session: Any, ids: Sequence[int], names: Sequence[str]) -> dict[tuple[int, str], Any]:
    """The trials' user attributes ``names``, by (trial id, name)."""
    table = private.TRIAL_USER_ATTRS
    query = sqlalchemy.select(table.c.trial_id, table.c.key, table.c.value_json).where(
        table.c.trial_id.in_(ids), table.c.key.in_(names)
    )
    return {(i, k): json.loads(v) for i, k, v in session.execute(query)}


def _completed_keys(
    session: Any, study: optuna.Study, keys: set[str], *, other_than: Sequence[int]
) -> set[str]:
    """The grid points among ``keys`` with a COMPLETE trial besides ``other_than``."""
    if not keys:
        return set()
    trials, attrs = private.TRIALS, private.TRIAL_USER_ATTRS
    query = (
        sqlalchemy.select(attrs.c.value_json)
        .join(trials, attrs.c.trial_id == trials.c.trial_id)
        .where(
            trials.c.study_id == private.study_id(study),
            trials.c.state == TrialState.COMPLETE.name,
            trials.c.trial_id.not_in(other_than),
            attrs.c.key == "key",
            attrs.c.value_json.in_([json.dumps(k) for k in keys]),
        )
    )
    return {json.loads(v) for (v,) in session.execute(query)}


def finish(
    study: optuna.Study,
    trial: Trial,
    status: str,
    value: float | None,
    attrs: Mapping[str, Any],
    *,
    patience: float | None = None,
) -> bool:
    """Store a search trial's history and outcome, told through ``Study.tell`` so that the
    sampler sees it; see the module docstring for statuses and `final_status`.

    Storage calls are retried while the database is unreachable (``patience`` seconds,
    default `Liveness.patience`). Returns False when the result was dropped: the trial was
    no longer RUNNING (a reaper failed it after its worker stalled). Nothing is then written.
    """
    status = final_status(status, value)
    patience = Liveness().patience if patience is None else patience
    kept = retrying(_finish, study, trial, status, value, attrs, patience=patience)
    if not kept:
        log.warning("trial %d: result dropped; its point is trained elsewhere", trial.number)
    return kept


def _finish(
    study: optuna.Study, trial: Trial, status: str, value: float | None, attrs: Mapping[str, Any]
) -> bool:
    frozen = private.storage(study).get_trial(private.trial_id(trial))
    if frozen.state.is_finished():  # reaped; or told by our own attempt whose reply was lost
        return frozen.state == _STATE_OF.get(status, TrialState.FAIL) and (
            frozen.user_attrs.get("status") == status
        )
    try:
        set_user_attrs(study, private.trial_id(trial), {**attrs, "status": status})
        if status == "complete":
            study.tell(trial, value)
        elif status == "pruned":
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, state=TrialState.FAIL)
    except UpdateFinishedTrialError:
        return False
    except ValueError as error:  # "Cannot tell a FAIL trial.": reaped between read and tell
        if "Cannot tell" not in str(error):
            raise
        return False
    return True


def set_user_attrs(study: optuna.Study, trial_id: int, attrs: Mapping[str, Any]) -> None:
    """Every user attribute of a RUNNING trial in one statement and one commit.

    Optuna's ``set_user_attr`` commits each attribute on its own after a lookup of the trial:
    measured on SQLite, a finished trial's 10 attributes took 5.7 ms one by one and 0.9 ms
    as one upsert. The trial row is read ``FOR UPDATE`` first (PostgreSQL), so a reaper
    cannot fail the trial between the check and the write.

    Raises:
        UpdateFinishedTrialError: the trial is no longer RUNNING.
    """
    if private.rdb(study) is None:  # another storage (a search in memory): Optuna's own calls
        for name, value in attrs.items():
            private.storage(study).set_trial_user_attr(trial_id, name, value)
        return
    with private.one_transaction(study) as session:
        row = private.locked_trials(session, [trial_id])[trial_id]
        if row.state != TrialState.RUNNING:
            raise UpdateFinishedTrialError(f"trial {trial_id} is no longer running")
        private.upsert_attrs(
            session, private.TRIAL_USER_ATTRS, [(trial_id, k, v) for k, v in attrs.items()]
        )


def fail_trial(study: optuna.Study, trial_id: int, status: str, error: str | None = None) -> bool:
    """Mark a RUNNING trial FAIL with ``status``; False when it had finished already."""
    try:
        if error is not None:
            private.storage(study).set_trial_user_attr(trial_id, "error", error)
        private.storage(study).set_trial_user_attr(trial_id, "status", status)
        return private.storage(study).set_trial_state_values(trial_id, state=TrialState.FAIL)
    except UpdateFinishedTrialError:
        return False


def hand_back_own(study: optuna.Study) -> int:
    """Fail, as ``interrupted``, the RUNNING trials this process claimed (Ctrl-C, SIGTERM);
    how many. Their grid points are enqueued again by the next sync."""
    running = private.storage(study).get_all_trials(
        private.study_id(study), deepcopy=False, states=(TrialState.RUNNING,)
    )
    me = worker_id()
    return sum(
        fail_trial(study, private.trial_id(t), "interrupted", "its worker was stopped")
        for t in running
        if t.user_attrs.get("worker") == me
    )


def reap_stale(study: optuna.Study) -> list[int]:
    """Fail, as ``interrupted``, the RUNNING trials whose worker is gone; their ids.

    Optuna's stale-trial rule (``fail_stale_trials``) for ask-and-tell workers: no heartbeat
    for the storage's grace period. Optuna never reaps a RUNNING trial that has no heartbeat
    at all, which is what a worker killed between ``Study.ask`` and its first heartbeat
    leaves: such a trial is reaped once it started twice the grace period ago. The owner,
    should it come back, finds its trial FAIL and its result is dropped (`finish`). Does
    nothing without heartbeats (SQLite).
    """
    if not private.heartbeats_on(study):
        return []
    grace = private.backend(study).grace_period
    stale = private.stale_trial_ids(study)
    stale += _unbeaten_trial_ids(study, 2 * grace)
    return [
        trial_id
        for trial_id in stale
        if fail_trial(
            study, trial_id, "interrupted", f"no heartbeat for {grace} s: its worker was lost"
        )
    ]


def _unbeaten_trial_ids(study: optuna.Study, seconds: float) -> list[int]:
    """RUNNING trials with no heartbeat row that started more than ``seconds`` ago."""
    trials, beats = private.TRIALS, private.TRIAL_HEARTBEATS
    query = (
        sqlalchemy.select(trials.c.trial_id, trials.c.datetime_start)
        .outerjoin(beats, beats.c.trial_id == trials.c.trial_id)
        .where(
            trials.c.study_id == private.study_id(study),
            trials.c.state == TrialState.RUNNING.name,
            beats.c.trial_id.is_(None),
        )
    )
    with private.backend(study).engine.connect() as connection:
        rows = connection.execute(query).all()
    # Optuna 5 stores datetime_start as naive UTC (its TrialModel converts local time).
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return [i for i, start in rows if start is not None and (now - start).total_seconds() > seconds]


class Heartbeat:
    """A thread recording the heartbeat of claimed trials every ``interval`` seconds.

    Optuna runs heartbeats only inside ``Study.optimize``; optsweep's workers claim trials
    themselves, so they keep their own. The set of trials may change while it runs (`add`,
    `discard`: a search worker holds trials it trains and trials waiting for another's
    result). A failed beat (database away) is skipped: the worst a missed beat can do is let
    a reaper fail a live trial, whose point is then trained again.
    """

    def __init__(self, study: optuna.Study, trial_ids: Iterable[int], interval: float) -> None:
        self.storage = private.storage(study)
        self._ids = set(trial_ids)
        self._lock = threading.Lock()
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="optsweep-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)

    def add(self, trial_id: int) -> None:
        with self._lock:
            self._ids.add(trial_id)

    def discard(self, trial_id: int) -> None:
        with self._lock:
            self._ids.discard(trial_id)

    @property
    def trial_ids(self) -> list[int]:
        with self._lock:
            return sorted(self._ids)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            for trial_id in self.trial_ids:
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception as error:  # the beat thread must outlive a database restart
                    log.debug("heartbeat skipped: %s", _reason(error))
                    break


def running_keys(study: optuna.Study, specs: Mapping[str, TrialSpec]) -> set[str]:
    """Grid points of ``specs`` being trained right now (by anyone)."""
    running = private.storage(study).get_all_trials(
        private.study_id(study), deepcopy=False, states=(TrialState.RUNNING,)
    )
    return {k for t in running if (k := t.user_attrs.get("key")) in specs}


def claim_batches(
    study: optuna.Study,
    specs: Mapping[str, TrialSpec],
    limit: int,
    liveness: Liveness | None = None,
) -> Iterator[list[tuple[int, TrialSpec]]]:
    """Yield batches of claimed trials until no grid point of ``specs`` is left to train.

    One process (SQLite): pop until nothing waits. Shared storage: each batch is kept alive
    by a `Heartbeat` while the caller trains it (until it asks for the next one); before
    every pop, stale trials are reaped and their points enqueued again; with nothing left to
    pop, the worker waits while other workers' trials run (reaping them if their workers
    die), and ends when none runs and nothing more needs enqueueing. Every storage call is
    retried while the database is unreachable.
    """
    if not private.heartbeats_on(study):
        while claimed := pop_batch(study, specs, limit):
            yield claimed
        return
    liveness = liveness or Liveness()
    trials = list(specs.values())

    def again(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return retrying(call, *args, patience=liveness.patience, **kwargs)

    def top_up() -> int:
        return again(sync_grid, study, trials, exclusive=False, retry_failed=False).enqueued

    try:
        while True:
            again(mark_alive, study)  # so `run --new` elsewhere knows this worker is here
            if again(reap_stale, study):
                top_up()
            claimed = again(pop_batch, study, specs, limit, share=True)
            if claimed:
                ids = [trial_id for trial_id, _ in claimed]
                with Heartbeat(study, ids, liveness.heartbeat):
                    yield claimed
                continue
            if again(running_keys, study, specs):
                time.sleep(liveness.poll)
            elif not top_up():  # catches points left by a reaper or worker that died mid-way
                return
    finally:
        mark_gone(study)


def final_trials(study: optuna.Study) -> list[FrozenTrial]:
    """One trial per grid key: its latest final (complete/diverged) one, else its latest."""
    latest: dict[str, FrozenTrial] = {}
    for frozen in study.get_trials(deepcopy=False):
        key = frozen.user_attrs.get("key")
        if key is None or status_of(frozen) == "waiting":
            continue
        previous = latest.get(key)
        if previous is None or _rank(frozen) >= _rank(previous):
            latest[key] = frozen
    return sorted(latest.values(), key=lambda t: t.number)


def _rank(trial: FrozenTrial) -> tuple[bool, int]:
    return (status_of(trial) in FINAL_STATUSES, trial.number)


def done_keys(study: optuna.Study) -> set[str]:
    """Grid keys with a final (complete or diverged) trial."""
    return {
        t.user_attrs.get("key")
        for t in study.get_trials(deepcopy=False)
        if status_of(t) in FINAL_STATUSES
    }
