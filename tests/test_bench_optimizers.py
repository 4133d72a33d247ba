"""`make bench`'s optimizer rows run end to end (correctness of the harness only, no timing)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "optimizers.py"


@pytest.fixture
def bench(monkeypatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_optimizers", BENCH)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_optimizers", module)  # dataclasses look it up
    spec.loader.exec_module(module)
    return module


def test_bench_quick_measures_both_sides_and_prints_the_table(bench, capsys):
    names = ["radam"] + (["lion"] if bench.parity.keras is not None else [])
    rows = bench.main(["--quick", "--trials", "4", "--optimizers", ",".join(names)])
    assert [r.optimizer for r in rows] == names
    assert all(r.ours > 0 and r.theirs > 0 for r in rows)
    out = capsys.readouterr().out
    assert "| optimizer | optsweep batched (trial-steps/s) |" in out
    assert "| radam · torch: torch.optim.RAdam |" in out
    assert "Other processes used at most" in out


def test_bench_refuses_an_unknown_optimizer(bench):
    with pytest.raises(SystemExit):
        bench.parse_args(["--optimizers", "radam,lbfgs"])
