"""`make bench`'s logic runs end to end on the bundled mnist-mini (correctness only, no timing)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "throughput.py"


def test_bench_quick_runs_both_loops_and_prints_the_table(capsys, monkeypatch):
    pytest.importorskip("torchvision")
    spec = importlib.util.spec_from_file_location("throughput", BENCH)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "throughput", bench)  # dataclasses look their module up
    spec.loader.exec_module(bench)
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
        ]
    )
    (row,) = rows
    assert row.conventional > 0 and row.sweep.trial_samples_per_s > 0
    # 4 trials waiting: optsweep trains them as one batch, and the engine is part of the run
    assert row.sweep.trials_per_batch == 4 and row.sweep.best_accuracy > 0.5
    assert 0 < row.sweep.engine_seconds < row.sweep.seconds
    assert "| mlp mnist-mini B=64 fp32 |" in capsys.readouterr().out
