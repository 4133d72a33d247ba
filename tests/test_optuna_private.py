"""Optuna's private API, as optsweep uses it: every symbol of `optuna_private` still there.

An Optuna upgrade that renames or moves one of them fails here, in one named case, rather
than somewhere in a worker. Instance attributes are checked on a real study and trial.
"""

from __future__ import annotations

import importlib

import optuna
import pytest
import sqlalchemy

from optsweep import optuna_private as private
from optsweep import study as studies


@pytest.fixture(scope="module")
def instances(tmp_path_factory):
    """A real SQLite study, a trial asked from it and the trial frozen, by class name."""
    url = studies.sqlite_url(tmp_path_factory.mktemp("private"))
    study = optuna.create_study(storage=url, study_name="p")
    trial = study.ask()
    frozen = study.trials[0]
    return {
        "Study": study,
        "Trial": trial,
        "FrozenTrial": frozen,
        "_CachedStorage": study._storage,
        "RDBStorage": study._storage._backend,
    }


@pytest.mark.parametrize(
    ("module", "name"), private.PRIVATE_SYMBOLS, ids=[n for _, n in private.PRIVATE_SYMBOLS]
)
def test_private_symbol_exists(instances, module, name):
    owner, _, attribute = name.rpartition(".")
    found = importlib.import_module(module)
    if owner:
        cls = getattr(found, owner)
        assert type(instances[owner]) is cls
        assert hasattr(instances[owner], attribute), f"{module}.{name} is gone"
    else:
        assert hasattr(found, attribute), f"{module}.{name} is gone"


def test_the_door_reads_what_optuna_holds(instances):
    study, trial = instances["Study"], instances["Trial"]
    assert private.study_id(study) == study._study_id
    assert private.trial_id(trial) == private.trial_id(study.trials[0])
    assert private.rdb(study) is instances["RDBStorage"]
    assert not private.heartbeats_on(study)  # SQLite: optsweep opens it without heartbeats
    assert {"trial_id", "study_id", "state"} <= set(private.TRIALS.c.keys())
    assert {"trial_id", "key", "value_json"} <= set(private.TRIAL_USER_ATTRS.c.keys())
    assert {"trial_id", "heartbeat"} <= set(private.TRIAL_HEARTBEATS.c.keys())


def test_sqlite_pragmas_are_on_the_studys_own_engine_only(tmp_path):
    storage = studies.open_storage(studies.sqlite_url(tmp_path))
    with storage.engine.connect() as connection:
        mode = connection.execute(sqlalchemy.text("PRAGMA journal_mode")).scalar()
        sync = connection.execute(sqlalchemy.text("PRAGMA synchronous")).scalar()
    assert (mode, sync) == ("wal", 1)  # 1 = NORMAL
    other = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'other.db'}")
    with other.connect() as connection:  # an engine optsweep did not open is left alone
        assert connection.execute(sqlalchemy.text("PRAGMA journal_mode")).scalar() == "delete"
