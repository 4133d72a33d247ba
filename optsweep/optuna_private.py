"""Every private part of Optuna that optsweep uses, behind one door.

Optuna's public API has no ids for a study's or trial's rows, no claim of an enqueued trial
by id, no write of many trials in one transaction, and no list of stale trials without
failing them; optsweep's workers need all four (`optsweep.study`). Each of Optuna's public
calls is a transaction of its own after a full read of the trial: on SQLite a grid point's
enqueue, claim, epoch and result took 6, 10, 1 and 9 ms that way (160 points: 4.2 s);
the writes below take a batch of trials in one. Each private symbol is named in
`PRIVATE_SYMBOLS` and checked by ``tests/test_optuna_private.py``: an Optuna upgrade that
moves one fails there, and nowhere else. Covered: Optuna 5.0 (``pyproject.toml``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import optuna
import sqlalchemy
from optuna.distributions import (
    BaseDistribution,
    check_distribution_compatibility,
    distribution_to_json,
    json_to_distribution,
)
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial, Trial, TrialState
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

# (module, attribute) of every private name used below, for the test.
PRIVATE_SYMBOLS = (
    ("optuna.study.study", "Study._storage"),
    ("optuna.study.study", "Study._study_id"),
    ("optuna.trial._trial", "Trial._trial_id"),
    ("optuna.trial._frozen", "FrozenTrial._trial_id"),
    ("optuna.storages._cached_storage", "_CachedStorage._backend"),
    ("optuna.storages._heartbeat", "is_heartbeat_enabled"),
    ("optuna.storages._rdb.models", "StudyModel"),
    ("optuna.storages._rdb.models", "TrialModel"),
    ("optuna.storages._rdb.models", "TrialUserAttributeModel"),
    ("optuna.storages._rdb.models", "TrialSystemAttributeModel"),
    ("optuna.storages._rdb.models", "TrialParamModel"),
    ("optuna.storages._rdb.models", "TrialValueModel.value_to_stored_repr"),
    ("optuna.storages._rdb.models", "TrialIntermediateValueModel"),
    (
        "optuna.storages._rdb.models",
        "TrialIntermediateValueModel.intermediate_value_to_stored_repr",
    ),
    ("optuna.storages._rdb.models", "TrialHeartbeatModel"),
    ("optuna.storages._rdb.storage", "_create_scoped_session"),
    ("optuna.storages._rdb.storage", "RDBStorage._get_stale_trial_ids"),
)

# The RDB storage's tables, for optsweep's few hand-written queries.
TRIALS: sqlalchemy.Table = models.TrialModel.__table__
TRIAL_USER_ATTRS: sqlalchemy.Table = models.TrialUserAttributeModel.__table__
TRIAL_SYSTEM_ATTRS: sqlalchemy.Table = models.TrialSystemAttributeModel.__table__
TRIAL_HEARTBEATS: sqlalchemy.Table = models.TrialHeartbeatModel.__table__


def storage(study: optuna.Study) -> BaseStorage:
    """The study's storage as Optuna wraps it (with its per-process cache)."""
    return study._storage


def study_id(study: optuna.Study) -> int:
    """The study's row id in its storage."""
    return study._study_id


def trial_id(trial: Trial | FrozenTrial) -> int:
    """The trial's row id in its storage (unique across studies, unlike ``number``)."""
    return trial._trial_id


def backend(study: optuna.Study) -> BaseStorage:
    """The storage under Optuna's cache wrapper (an `RDBStorage` for SQL databases)."""
    wrapped = storage(study)
    return getattr(wrapped, "_backend", wrapped)


def rdb(study: optuna.Study) -> RDBStorage | None:
    """The study's SQL storage, or None for another kind (in-memory, journal file)."""
    found = backend(study)
    return found if isinstance(found, RDBStorage) else None


def heartbeats_on(study: optuna.Study) -> bool:
    """Whether the storage records heartbeats (an RDB storage with ``heartbeat_interval``)."""
    return is_heartbeat_enabled(storage(study))


def stale_trial_ids(study: optuna.Study) -> list[int]:
    """RUNNING trials whose heartbeat is older than the grace period, without failing them
    (``optuna.storages.fail_stale_trials`` fails them but says neither which nor why)."""
    return list(storage(study)._get_stale_trial_ids(study_id(study)))


def trial_of(study: optuna.Study, trial_id: int) -> Trial:
    """A `Trial` handle for a trial this worker claimed by id (as ``Study.ask`` builds one)."""
    return Trial(study, trial_id)


@contextmanager
def one_transaction(study: optuna.Study) -> Iterator[Any]:
    """A session of the study's RDB storage, committed once at the end."""
    found = rdb(study)
    assert found is not None
    with _create_scoped_session(found.scoped_session) as session:
        yield session


# A batch's rows of ``trial_id, key, value``: user attributes, system attributes.
AttrRows = Iterable[tuple[int, str, Any]]

_UPSERTS = {"sqlite": sqlite_dialect.insert, "postgresql": pg_dialect.insert}


def _dialect(executor: Any) -> str:
    """The database's dialect name, from a connection or an ORM session."""
    return (getattr(executor, "dialect", None) or executor.get_bind().dialect).name


def _upsert(
    session: Any,
    table: sqlalchemy.Table,
    rows: list[dict[str, Any]],
    unique: tuple[str, ...],
    replaced: tuple[str, ...],
) -> None:
    """Insert ``rows``, replacing the ``replaced`` columns of a row whose ``unique`` columns
    are taken, in one statement."""
    if not rows:
        return
    insert = _UPSERTS[_dialect(session)](table).values(rows)
    session.execute(
        insert.on_conflict_do_update(
            index_elements=[table.c[name] for name in unique],
            set_={name: insert.excluded[name] for name in replaced},
        )
    )


def upsert_attrs(session: Any, table: sqlalchemy.Table, rows: AttrRows) -> None:
    """Insert or replace ``(trial_id, key, value)`` rows of a trial attribute table in one
    statement (Optuna's ``set_trial_user_attr`` looks the trial up and commits, each)."""
    values = [{"trial_id": t, "key": k, "value_json": json.dumps(v)} for t, k, v in rows]
    _upsert(session, table, values, ("trial_id", "key"), ("value_json",))


def locked_trials(session: Any, trial_ids: Iterable[int]) -> dict[int, models.TrialModel]:
    """The trials' rows, locked for update (PostgreSQL) in id order, so that two workers
    locking overlapping batches cannot deadlock."""
    query = (
        session.query(models.TrialModel)
        .filter(models.TrialModel.trial_id.in_(list(trial_ids)))
        .order_by(models.TrialModel.trial_id)
        .with_for_update()
    )
    return {row.trial_id: row for row in query}


def set_state(row: models.TrialModel, state: TrialState) -> None:
    """A trial row's state and time, as ``RDBStorage.set_trial_state_values`` sets them
    (its datetime setters store UTC)."""
    row.state = state
    if state == TrialState.RUNNING:
        row.datetime_start = datetime.now()
    if state.is_finished():
        row.datetime_complete = datetime.now()


def add_value(session: Any, trial_id: int, value: float) -> None:
    """The trial's (single-objective) value."""
    stored, kind = models.TrialValueModel.value_to_stored_repr(value)
    session.add(
        models.TrialValueModel(trial_id=trial_id, objective=0, value=stored, value_type=kind)
    )


def add_params(
    session: Any, study_id: int, rows: Iterable[tuple[int, str, float, BaseDistribution]]
) -> None:
    """``(trial_id, name, internal value, distribution)`` parameters of RUNNING trials.

    Each distribution is checked against the one the study first recorded for its name, as
    Optuna's ``set_trial_param`` checks it (one query a name, not one a parameter).

    Raises:
        ValueError: a distribution incompatible with the study's for the same name.
    """
    rows = list(rows)
    first: dict[str, BaseDistribution] = {}
    for _, name, _, distribution in rows:
        if name not in first:
            found = (
                session.query(models.TrialParamModel.distribution_json)
                .join(models.TrialModel)
                .filter(models.TrialModel.study_id == study_id)
                .filter(models.TrialParamModel.param_name == name)
                .first()
            )
            first[name] = json_to_distribution(found[0]) if found else distribution
        check_distribution_compatibility(first[name], distribution)
    session.add_all(
        models.TrialParamModel(
            trial_id=trial_id,
            param_name=name,
            param_value=internal,
            distribution_json=distribution_to_json(distribution),
        )
        for trial_id, name, internal, distribution in rows
    )


def add_intermediate_values(session: Any, values: Mapping[int, float], step: int) -> None:
    """One intermediate value (at ``step``) for each trial of ``values``, replacing any."""
    table: sqlalchemy.Table = models.TrialIntermediateValueModel.__table__
    stored = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr
    rows = []
    for trial_id, value in values.items():
        number, kind = stored(value)
        rows.append(
            {
                "trial_id": trial_id,
                "step": step,
                "intermediate_value": number,
                "intermediate_value_type": kind,
            }
        )
    _upsert(
        session,
        table,
        rows,
        ("trial_id", "step"),
        ("intermediate_value", "intermediate_value_type"),
    )


def add_waiting_trials(
    session: Any, study_id: int, templates: Sequence[tuple[dict[str, Any], dict[str, Any]]]
) -> None:
    """WAITING trials, numbered after the study's last, each with its ``(user attributes,
    system attributes)``: what ``Study.enqueue_trial`` writes for one trial, for many.

    The study's row is locked for update while the numbers are counted, as Optuna does.
    """
    models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
    count = (
        session.query(sqlalchemy.func.count(models.TrialModel.trial_id))
        .filter(models.TrialModel.study_id == study_id)
        .scalar()
    )
    rows = [
        models.TrialModel(study_id=study_id, number=count + i, state=TrialState.WAITING)
        for i in range(len(templates))
    ]
    session.add_all(rows)
    session.flush()  # the rows' ids, for their attributes
    paired = list(zip(rows, templates, strict=True))
    upsert_attrs(
        session,
        TRIAL_USER_ATTRS,
        [(r.trial_id, k, v) for r, (u, _) in paired for k, v in u.items()],
    )
    upsert_attrs(
        session,
        TRIAL_SYSTEM_ATTRS,
        [(r.trial_id, k, v) for r, (_, system) in paired for k, v in system.items()],
    )
