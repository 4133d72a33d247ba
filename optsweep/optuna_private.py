"""Every private part of Optuna that optsweep uses, behind one door.

Optuna's public API has no ids for a study's or trial's rows, no claim of an enqueued trial
by id, no bulk write of a trial's attributes, and no list of stale trials without failing
them; optsweep's workers need all four (`optsweep.study`). Each private symbol is named in
`PRIVATE_SYMBOLS` and checked by ``tests/test_optuna_private.py``: an Optuna upgrade that
moves one fails there, and nowhere else. Covered: Optuna 5.0 (``pyproject.toml``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import optuna
import sqlalchemy
from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial, Trial

# (module, attribute) of every private name used below, for the test.
PRIVATE_SYMBOLS = (
    ("optuna.study.study", "Study._storage"),
    ("optuna.study.study", "Study._study_id"),
    ("optuna.trial._trial", "Trial._trial_id"),
    ("optuna.trial._frozen", "FrozenTrial._trial_id"),
    ("optuna.storages._cached_storage", "_CachedStorage._backend"),
    ("optuna.storages._heartbeat", "is_heartbeat_enabled"),
    ("optuna.storages._rdb.models", "TrialModel"),
    ("optuna.storages._rdb.models", "TrialUserAttributeModel"),
    ("optuna.storages._rdb.models", "TrialHeartbeatModel"),
    ("optuna.storages._rdb.storage", "_create_scoped_session"),
    ("optuna.storages._rdb.storage", "RDBStorage._get_stale_trial_ids"),
    ("optuna.storages._rdb.storage", "RDBStorage._set_trial_attr_without_commit"),
    ("optuna.storages._rdb.storage", "RDBStorage._set_trial_param_without_commit"),
)

# The RDB storage's tables, for optsweep's few hand-written queries.
TRIALS: sqlalchemy.Table = models.TrialModel.__table__
TRIAL_USER_ATTRS: sqlalchemy.Table = models.TrialUserAttributeModel.__table__
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


def write_claim(
    study: optuna.Study,
    trial_id: int,
    user_attrs: dict[str, Any],
    params: Iterable[tuple[str, float, BaseDistribution]],
) -> None:
    """User attributes and (name, internal value, distribution) parameters of a RUNNING
    trial in one transaction: Optuna's public calls commit each write on its own."""
    found = rdb(study)
    assert found is not None
    with one_transaction(study) as session:
        for name, value in user_attrs.items():
            found._set_trial_attr_without_commit(
                session, models.TrialUserAttributeModel, trial_id, name, value
            )
        for name, internal, distribution in params:
            found._set_trial_param_without_commit(session, trial_id, name, internal, distribution)
