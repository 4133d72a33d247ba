"""Sweeps end to end on tiny real data: results files, divergence, resume, K-invariance."""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import pytest
import torch

from optsweep import engine
from optsweep import study as studies
from optsweep.config import DataSpec, expand, load_sweep
from optsweep.data import load_dataset
from optsweep.engine import train_batch
from optsweep.models import build_model
from optsweep.progress import QuietProgress
from optsweep.runner import MEANING, Interrupted, prepare, run_sweep

TWO_OPTIMIZERS = """\
  - name: sgd
    grid: {learning_rate: [0.1, 1.0e+10]}
  - name: adam
    semantics: keras
    grid: {learning_rate: [0.001, 0.01]}
"""


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_sweep_writes_every_file_and_records_divergence(tiny_sweep, tmp_path):
    spec = load_sweep(tiny_sweep(TWO_OPTIMIZERS))
    result = run_sweep(spec, QuietProgress(), out=tmp_path / "out")
    folder = result.folder
    for name in (
        "study.db",
        "config.yaml",
        "trials.csv",
        "history.csv",
        "table.md",
        "curves/train_loss.png",
        "curves/test_accuracy.png",
        "curves/best_per_optimizer.png",
    ):
        assert (folder / name).is_file(), name
    rows = read_csv(folder / "trials.csv")
    assert len(rows) == 4
    status = {(r["optimizer"], float(r["learning_rate"])): r["status"] for r in rows}
    assert status == {
        ("sgd", 0.1): "complete",
        ("sgd", 1e10): "diverged",
        ("adam", 0.001): "complete",
        ("adam", 0.01): "complete",
    }
    complete = [r for r in rows if r["status"] == "complete"]
    assert all(float(r["final_test_accuracy"]) > 0.5 for r in complete)
    history = read_csv(folder / "history.csv")
    assert {r["kind"] for r in history} == {"epoch", "step"}
    table = (folder / "table.md").read_text()
    assert table.index("adam") < table.index("diverged")


def test_rerun_trains_nothing_and_keeps_results(tiny_sweep, tmp_path):
    spec = load_sweep(tiny_sweep(TWO_OPTIMIZERS, epochs=1))
    first = run_sweep(spec, QuietProgress(), out=tmp_path / "out")
    again = run_sweep(spec, QuietProgress(), out=tmp_path / "out")
    assert (first.trained, again.trained) == (4, 0)
    assert [(r.trial, r.final_test_accuracy) for r in first.records] == [
        (r.trial, r.final_test_accuracy) for r in again.records
    ]


class StopAfterFirstBatch(QuietProgress):
    """Raises KeyboardInterrupt (a Ctrl-C) once the first batch has been told."""

    def finished(self, trials) -> None:
        raise KeyboardInterrupt


def test_interrupted_sweep_resumes_without_retraining(tiny_sweep, tmp_path):
    spec = load_sweep(tiny_sweep(TWO_OPTIMIZERS, epochs=1, k=1))
    with pytest.raises(Interrupted) as stopped:
        run_sweep(spec, StopAfterFirstBatch(), out=tmp_path / "out")
    assert (stopped.value.done, stopped.value.total) == (1, 4)
    resumed = run_sweep(spec, QuietProgress(), out=tmp_path / "out")
    assert resumed.trained == 3
    assert sorted(r.status for r in resumed.records) == ["complete"] * 3 + ["diverged"]


def test_trials_left_running_by_a_killed_run_are_retrained(tiny_sweep, tmp_path):
    spec = load_sweep(tiny_sweep(TWO_OPTIMIZERS, epochs=1))
    folder = tmp_path / "out"
    folder.mkdir()
    study = studies.open_study(spec.name, studies.sqlite_url(folder))
    studies.store_config(study, spec)  # as run_sweep and init do, before the grid
    studies.sync_grid(study, expand(spec))
    claimed = studies.pop_batch(study, {t.key: t for t in expand(spec)}, 2)
    assert len(claimed) == 2  # claimed, then the process "dies": they stay RUNNING
    result = run_sweep(spec, QuietProgress(), out=folder)
    assert result.trained == 4
    states = [studies.status_of(t) for t in study.get_trials()]
    assert states.count("interrupted") == 2
    assert len(result.records) == 4


@pytest.mark.parametrize(
    ("limit", "compatible", "claimed"),
    [(32, 40, 20), (32, 100, 32), (32, 10, 8), (32, 5, 5), (4, 40, 4), (16, 17, 9)],
)
def test_a_worker_on_a_shared_storage_claims_at_most_half(limit, compatible, claimed):
    assert min(studies.claim_limit(limit, compatible), compatible) == claimed


def test_pop_batch_shares_what_waits_with_other_workers(tiny_sweep, tmp_path):
    rates = [round(0.001 * (i + 1), 4) for i in range(20)]
    spec = load_sweep(tiny_sweep(f"  - name: adam\n    grid: {{learning_rate: {rates}}}\n"))
    specs = {t.key: t for t in expand(spec)}
    study = studies.open_study(spec.name, studies.sqlite_url(tmp_path))
    studies.sync_grid(study, list(specs.values()))
    sizes = [len(studies.pop_batch(study, specs, 32, share=True)) for _ in range(4)]
    assert sizes == [10, 8, 2, 0]  # half of 20, then the floor of 8, then what is left


@pytest.mark.parametrize(
    ("model", "train", "data"),
    [
        ("mlp", 2048, DataSpec()),
        ("cnn", 256, DataSpec()),
        ("cnn", 256, DataSpec(crop_padding=2, flip=True)),  # augmented alike whatever K
    ],
    ids=["mlp", "cnn", "cnn-augmented"],
)
def test_results_do_not_depend_on_how_many_trials_train_together(tiny_sweep, model, train, data):
    # lr 1e30 diverges in the first steps and leaves the batch; the others must not notice.
    # On 2+ cores the 6 trials train as lanes of 3 in threads (engine.lanes_for).
    rates = "[0.01, 1.0e+30, 0.001, 0.0001, 0.003, 0.0003]"
    spec = load_sweep(
        tiny_sweep(
            f"  - name: adam\n    grid: {{learning_rate: {rates}}}\n",
            train=train,
            test=128,
            epochs=2,
            model=model,
        )
    )
    trials = expand(spec)
    images = load_dataset("mnist-mini", None, torch.device("cpu"), train, 128)
    net = build_model(model, images.input_shape, images.num_classes)
    cpu = torch.device("cpu")
    together = train_batch(images, net, trials, spec.train, device=cpu, data=data)
    assert [t.status for t in together] == ["complete", "diverged"] + ["complete"] * 4
    for trial, joint in zip(trials, together, strict=True):
        (alone,) = train_batch(images, net, [trial], spec.train, device=cpu, data=data)
        assert alone.status == joint.status and alone.stopped_step == joint.stopped_step
        for a, b in zip(alone.epochs, joint.epochs, strict=True):
            assert math.isclose(a.test_loss, b.test_loss, rel_tol=1e-4)
            assert math.isclose(a.train_loss, b.train_loss, rel_tol=1e-4)
        assert alone.step_losses == pytest.approx(joint.step_losses, rel=1e-4)


@pytest.mark.parametrize("check_every", [3, 50])
def test_step_history_is_the_mean_of_each_window(tiny_sweep, monkeypatch, check_every):
    # losses are read back every CHECK_EVERY steps: the history must not depend on it
    monkeypatch.setattr(engine, "CHECK_EVERY", check_every)
    spec = load_sweep(tiny_sweep("  - name: sgd\n    grid: {learning_rate: [0.1]}\n", epochs=1))
    (trial,) = expand(spec)
    data = load_dataset("mnist-mini", None, torch.device("cpu"), 512, 128)
    net = build_model("mlp", data.input_shape, data.num_classes)
    (windowed,) = train_batch(data, net, [trial], spec.train, device=torch.device("cpu"))
    every_step = dataclasses.replace(spec.train, log_every=1)
    (single,) = train_batch(data, net, [trial], every_step, device=torch.device("cpu"))
    assert windowed.steps == list(range(2, 9, 2))  # 512 images / 64 per batch = 8 steps
    pairs = zip(single.step_losses[0::2], single.step_losses[1::2], strict=True)
    assert windowed.step_losses == pytest.approx([(a + b) / 2 for a, b in pairs], rel=1e-6)


ONE_SGD = "  - name: sgd\n    grid: {learning_rate: [0.05]}\n"


@pytest.mark.parametrize(
    ("model", "overrides", "meaning"),
    [
        ("mlp", ["data.normalize=unit"], {"data.normalize": "unit"}),
        ("2c2d", ["data.normalize=unit"], {"data.normalize": "unit"}),
        ("mlp", ["model.init=keras"], {"model.init": "keras"}),
        ("mlp", ["data.drop_last=true"], {"data.drop_last": True}),  # 300 = 4 x 64 + 44
        ("mlp", ["train.label_smoothing=0.2"], {"train.label_smoothing": 0.2}),
        (
            "mlp",
            ["data.crop_padding=2", "data.flip=true"],
            {"data.crop_padding": 2, "data.flip": True},
        ),
    ],
    ids=[
        "mlp-unit",
        "2c2d-unit",
        "mlp-keras-init",
        "mlp-drop-last",
        "mlp-label-smoothing",
        "mlp-augmented",
    ],
)
def test_each_protocol_setting_changes_what_a_trial_trains(
    tiny_sweep, tmp_path, model, overrides, meaning
):
    path = tiny_sweep(ONE_SGD, train=300, test=128, epochs=1, model=model, k=1)
    default, changed = load_sweep(path), load_sweep(path, overrides)
    pixels = prepare(changed).dataset.train_x
    unit = changed.data.normalize == "unit"
    assert (pixels.min().item() >= 0 and pixels.max().item() <= 1) is unit
    base = run_sweep(default, QuietProgress(), out=tmp_path / "default")
    other = run_sweep(changed, QuietProgress(), out=tmp_path / "changed")
    (a,), (b,) = base.records, other.records
    assert a.status == b.status == "complete"
    assert a.final_test_loss != b.final_test_loss
    steps = 4 if changed.data.drop_last else 5
    assert len(a.step_losses) == 5 // 2 and b.steps[-1] == steps - steps % 2  # log_every 2
    stored = studies.load_study(other.storage, "tiny").user_attrs[MEANING]
    assert {k: stored[k] for k in meaning} == meaning
