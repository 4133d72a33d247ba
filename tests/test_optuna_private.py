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
    if owner in instances:
        cls = getattr(found, owner)
        assert type(instances[owner]) is cls
        assert hasattr(instances[owner], attribute), f"{module}.{name} is gone"
    elif owner:  # a class's own attribute (a model's classmethod)
        assert hasattr(getattr(found, owner), attribute), f"{module}.{name} is gone"
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


def _read_back(trial: optuna.trial.FrozenTrial) -> tuple:
    """What a reader of the study sees of a trial, its ids and times aside."""
    return (
        trial.number,
        trial.state,
        trial.values,
        trial.params,
        trial.distributions,
        trial.user_attrs,
        trial.system_attrs,
        trial.intermediate_values,
        trial.datetime_start is not None,
        trial.datetime_complete is not None,
    )


@pytest.mark.parametrize(
    ("status", "value"), [("complete", 0.75), ("diverged", None), ("failed", None)]
)
def test_batched_writes_read_back_as_optunas_own_calls(tmp_path, tiny_sweep, status, value):
    """A grid point enqueued, claimed, reported and finished by the batched writes reads
    back as the same trial written by Optuna's public calls one at a time."""
    from optsweep.config import expand, load_sweep

    spec = load_sweep(tiny_sweep("  - name: adam\n    grid: {learning_rate: [0.01, 0.1]}\n"))
    trials = expand(spec)
    attrs = {"epochs": [{"epoch": 1}], "seconds": 1.5}
    mine = studies.open_study("mine", studies.sqlite_url(tmp_path))
    studies.sync_grid(mine, trials)
    claimed = studies.pop_batch(mine, {t.key: t for t in trials}, 2)
    studies.report_epochs(mine, {i: 0.5 for i, _ in claimed}, 1)
    studies.finish_batch(mine, [(i, status, value, attrs) for i, _ in claimed])

    theirs = optuna.create_study(study_name="theirs", storage=studies.sqlite_url(tmp_path))
    for trial in sorted(trials, key=studies.batch_key):
        theirs.enqueue_trial(
            studies.grid_params(trial),
            user_attrs={
                "key": trial.key,
                "batch_key": studies.batch_key(trial),
                "seed": trial.seed,
            },
        )
    storage = private.storage(theirs)
    for (_, spec_), asked in zip(claimed, [theirs.ask(), theirs.ask()], strict=True):
        storage.set_trial_user_attr(private.trial_id(asked), "worker", studies.worker_id())
        for name, internal, distribution in studies._params(spec_):
            storage.set_trial_param(private.trial_id(asked), name, internal, distribution)
        asked.report(0.5, step=1)
        for name, stored in {**attrs, "status": status}.items():
            storage.set_trial_user_attr(private.trial_id(asked), name, stored)
        state = {"complete": "COMPLETE"}.get(status, "FAIL")
        theirs.tell(
            asked,
            value if state == "COMPLETE" else None,
            state=getattr(optuna.trial.TrialState, state),
        )
    assert [_read_back(t) for t in mine.get_trials()] == [
        _read_back(t) for t in theirs.get_trials()
    ]


def test_a_claims_age_is_read_in_utc_whatever_the_local_zone(tmp_path, tiny_sweep, monkeypatch):
    """Optuna 5 stores a trial's start as naive UTC: a trial claimed now is not older than a
    minute in a zone nine hours ahead of UTC (reaping a live worker's trial otherwise)."""
    import time

    from optsweep.config import expand, load_sweep

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        spec = load_sweep(tiny_sweep("  - name: sgd\n    grid: {learning_rate: [0.1]}\n"))
        study = studies.open_study("zone", studies.sqlite_url(tmp_path))
        studies.sync_grid(study, expand(spec))
        [(trial_id, _)] = studies.pop_batch(study, {t.key: t for t in expand(spec)}, 1)
        assert studies._unbeaten_trial_ids(study, 60) == []
        assert studies._unbeaten_trial_ids(study, -1) == [trial_id]
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
