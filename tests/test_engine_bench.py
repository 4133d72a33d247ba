"""`make bench`'s logic runs end to end on the bundled mnist-mini (correctness only, no timing)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from _keras import ARRAY_WARNING, keras

BENCH = Path(__file__).resolve().parents[1] / "bench" / "throughput.py"


@pytest.mark.filterwarnings(ARRAY_WARNING)
def test_bench_quick_runs_every_peer_and_prints_the_table(capsys, monkeypatch, tmp_path):
    pytest.importorskip("torchvision")
    spec = importlib.util.spec_from_file_location("throughput", BENCH)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "throughput", bench)  # dataclasses look their module up
    spec.loader.exec_module(bench)
    sweep_file = tmp_path / "two.yaml"  # --sweep: a file of the case's model, data, batch size
    sweep_file.write_text(
        "name: two\ndataset: mnist-mini\nmodel: mlp\nsubset: {train: 256, test: 100}\n"
        "train: {epochs: 3, batch_size: 128}\n"
        "optimizers: [{name: adam, grid: {learning_rate: [0.01, 0.001]}}]\n"
    )
    rows = bench.main(
        [
            "--quick",
            "--mini",
            "--models",
            "mlp",
            "--trials",
            "4",
            "--steps",
            "5",
            "--train-subset",
            "640",
            "--sweep",
            str(sweep_file),
        ]
    )
    row, from_file = rows
    assert list(row.peers) == ["conventional", "plain", "ensemble", "keras"]
    measured = {name: p.rate for name, p in row.peers.items() if not isinstance(p.rate, str)}
    assert all(rate > 0 for rate in measured.values())
    # other processes' share of the CPUs during each measurement (NaN off Linux)
    assert not any(p.others < 0 for p in row.peers.values()) and not row.sweep.others < 0
    assert ("keras" in measured) == (keras is not None)
    # 4 trials waiting: optsweep trains them as one batch, and the batches are part of the run
    sweep = row.sweep
    assert sweep.trials_per_batch == 4 and sweep.best_accuracy > 0.5 and sweep.stopped == 0
    assert sweep.trial_samples_per_s > 0
    assert 0 < sweep.engine_seconds < sweep.seconds
    assert sweep.outside_seconds == pytest.approx(sweep.seconds - sweep.engine_seconds)
    # the file ran for one epoch of its subset, beside the same peers
    assert from_file.peers is row.peers and from_file.sweep.trials == 2
    assert from_file.sweep.images == 256 and from_file.sweep.engine_seconds > 0
    out = capsys.readouterr().out
    assert "### mlp mnist-mini B=128 fp32" in out
    assert "| `torch.func` ensemble of 4 " in out and "Outside the batches: " in out
    assert "| others' CPU |" in out
    assert f"optsweep runs `{sweep_file}` with `--set train.epochs=1` (2 trials)" in out


def test_headroom_splits_a_lane_step_into_its_parts(capsys, monkeypatch):
    """bench/headroom.py: the step, its GEMMs and its update, each timed and positive, and the
    parts no longer than the step they come from (correctness only, no timing goal)."""
    path = BENCH.parent / "headroom.py"
    spec = importlib.util.spec_from_file_location("headroom", path)
    headroom = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "headroom", headroom)  # dataclasses look their module up
    spec.loader.exec_module(headroom)
    threads = torch.get_num_threads()
    try:
        [split] = headroom.main(["--quick"])
    finally:
        torch.set_num_threads(threads)
    assert split.trials == 4
    assert 0 < split.forward_backward < split.step and 0 < split.update < split.step
    mlp_weights = 784 * 128 + 128 + 128 * 10 + 10
    assert split.flops == 6 * mlp_weights * 128 * 4 and split.update_bytes == 28 * mlp_weights * 4
    out = capsys.readouterr().out
    assert "| K | step (ms) |" in out and "GFLOP/s = " in out and "GB/s = " in out


def test_study_writes_times_both_ways_on_a_grid(capsys, monkeypatch):
    """bench/study_writes.py: both ways write a grid's trials and are timed (no timing goal)."""
    spec = importlib.util.spec_from_file_location("study_writes", BENCH.parent / "study_writes.py")
    study_writes = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "study_writes", study_writes)
    spec.loader.exec_module(study_writes)
    seconds = study_writes.main(["--quick", "--sweep", str(BENCH.parents[1] / "configs/adam.yaml")])
    assert set(seconds) == {"optsweep", "optuna"} and min(seconds.values()) > 0
    out = capsys.readouterr().out
    assert "8 grid points of" in out and "| optsweep, one transaction a batch |" in out
