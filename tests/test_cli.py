"""The optsweep command through Typer's CliRunner: exit codes and what it prints."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from optsweep.cli import app

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.mark.parametrize("config", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_validate(config):
    result = runner.invoke(app, ["validate", str(config)])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output


def test_adam_config_is_the_seed_grid():
    result = runner.invoke(app, ["run", str(REPO / "configs" / "adam.yaml"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("160 trials")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: x\ndataset: mnist\nmodel: mlp\noptimizers:\n  - name: adamm\n",
            r"sweep\.yaml:5: optimizers\[0\]\.name: .*adam",
        ),
        (
            "name: x\ndataset: mnist\nmodel: mlp\ntrain: {epochs: 0}\n"
            "optimizers:\n  - name: adam\n",
            r"sweep\.yaml:4: train\.epochs: ",
        ),
        ("- just\n- a list\n", r"sweep\.yaml:1: "),
    ],
    ids=["unknown-optimizer", "epochs-zero", "top-level-list"],
)
def test_validate_bad_file_prints_one_line_per_problem(write_yaml, text, expected):
    result = runner.invoke(app, ["validate", str(write_yaml(text))])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert re.search(expected, lines[0]), lines[0]
    assert "Traceback" not in result.output


def test_run_and_report(tiny_sweep, tmp_path):
    config = tiny_sweep("  - name: adam\n    grid: {learning_rate: [0.001, 0.01]}\n", epochs=1)
    out = tmp_path / "res"
    result = runner.invoke(app, ["run", str(config), "--out", str(out), "--set", "train.epochs=2"])
    assert result.exit_code == 0, result.output
    assert "best first" in result.output
    assert (out / "trials.csv").read_text().count("\n") == 3
    (out / "table.md").unlink()
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "table.md").is_file()


def read_rows(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open() as f:
        return list(csv.DictReader(f))


def test_two_optimizers_write_the_benchmark_files_and_the_answer(tiny_sweep, tmp_path):
    """tuning_cost.csv goes from the mean configuration (k = 1) to the best (last k); the
    terminal says each optimizer's best, its speed to target and an edge warning."""
    config = tiny_sweep(
        "  - name: adam\n    grid: {learning_rate: [0.00001, 0.0001, 0.001]}\n"
        "  - name: sgd\n    grid: {learning_rate: [0.01, 0.1]}\n",
        epochs=2,
    )
    out = tmp_path / "res"
    result = runner.invoke(
        app, ["run", str(config), "--out", str(out), "--set", "train.seeds=[0, 1]"]
    )
    assert result.exit_code == 0, result.output
    assert re.search(
        r"best adam/torch: learning_rate=0.001 → 0\.\d+ ± 0\.\d+; test_accuracy ≥ 0\.9: ",
        result.output,
    )
    assert (
        "warning: adam/torch: the best learning_rate 0.001 is the largest value tried"
        in result.output
    )
    trials = read_rows(out / "trials.csv")
    means: dict[tuple[str, str], list[float]] = {}
    for row in trials:
        means.setdefault((row["optimizer"], row["learning_rate"]), []).append(
            float(row["final_test_accuracy"])
        )
    for optimizer in ("adam", "sgd"):
        scores = [sum(v) / len(v) for (o, _), v in means.items() if o == optimizer]
        curve = [r for r in read_rows(out / "tuning_cost.csv") if r["optimizer"] == optimizer]
        assert [int(r["k"]) for r in curve] == list(range(1, len(scores) + 1))
        assert float(curve[0]["expected_best"]) == pytest.approx(sum(scores) / len(scores))
        assert float(curve[-1]["expected_best"]) == pytest.approx(max(scores))
    rates = [
        r["learning_rate"]
        for r in read_rows(out / "lr_sensitivity.csv")
        if r["optimizer"] == "adam"
    ]
    assert rates == ["1e-05", "0.0001", "0.001"]
    assert {"tuning_cost.png", "lr_sensitivity.png"} <= {p.name for p in (out / "curves").iterdir()}
    reached = {r["reached_at_epoch"] for r in trials}
    result = runner.invoke(app, ["report", str(out), "--target", "0.0"])  # every trial: epoch 1
    assert result.exit_code == 0, result.output
    assert {r["reached_at_epoch"] for r in read_rows(out / "trials.csv")} == {"1"} != reached
    assert "test_accuracy ≥ 0: 2 of 2 seeds reached, median epoch 1" in result.output


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("fast", "--target fast: expected a number after the metric, got 'fast'"),
        (
            "accuracy=0.9",
            "--target accuracy=0.9: unknown metric 'accuracy'; valid: test_accuracy, "
            "test_loss, train_loss",
        ),
        ("1.5", "--target 1.5: expected a test_accuracy value >= 0 (accuracy <= 1), got 1.5"),
    ],
)
def test_a_bad_report_target_is_one_line(tmp_path, target, message):
    result = runner.invoke(app, ["report", str(tmp_path), "--target", target])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {message}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "missing/"], "missing: no such folder (a results folder is results/<name>)"),
        (["optimizers", "adamm"], "unknown optimizer 'adamm'; did you mean 'adam'? choose one"),
        (["optimizers", "zzz"], "unknown optimizer 'zzz'; choose one of: sgd, momentum"),
    ],
)
def test_a_wrong_name_is_one_line_that_says_what_to_do(args, message, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert line.startswith(f"error: {message}")


def test_quiet_run_prints_nothing(tiny_sweep, tmp_path):
    config = tiny_sweep("  - name: sgd\n    grid: {learning_rate: [0.1]}\n", epochs=1)
    result = runner.invoke(app, ["run", str(config), "--out", str(tmp_path / "q"), "--quiet"])
    assert result.exit_code == 0
    assert result.output == ""


def test_missing_data_is_one_line(tiny_sweep, tmp_path):
    config = tiny_sweep("  - name: sgd\n    grid: {learning_rate: [0.1]}\n")
    result = runner.invoke(
        app,
        [
            "run",
            str(config),
            "--out",
            str(tmp_path / "m"),
            "--set",
            "dataset=fashion-mnist",
            "--data-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert str(tmp_path) in result.stderr


@pytest.mark.parametrize("args", [["optimizers"], ["optimizers", "adam"]])
def test_optimizers_lists_registry(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "adam" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--device", "cuda:7"],
        ["run", "--set", "train.device=cuda:5"],
        ["search", "--device", "cuda:6", "--trials", "2"],
    ],
    ids=["run-option", "run-config", "search"],
)
def test_a_device_the_machine_lacks_is_one_line_before_anything_is_written(
    tiny_sweep, tmp_path, args
):
    import torch

    if torch.cuda.device_count() > 5:
        pytest.skip("this machine has that GPU")
    config = tiny_sweep("  - name: sgd\n    grid: {learning_rate: [0.1]}\n")
    out = tmp_path / "d"
    result = runner.invoke(app, [args[0], str(config), "--out", str(out), *args[1:]])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert re.fullmatch(r"error: device 'cuda:\d' is not on this machine; it has: cpu.*", line)
    assert not out.exists()


@pytest.mark.parametrize(
    "command",
    ["run", "search", "init", "worker", "report", "compare", "validate", "optimizers", "schema"],
)
def test_help_keeps_its_defaults_and_names_what_options_take(command):
    import re

    text = runner.invoke(app, [command, "--help"]).output
    assert not re.search(r" \.(\s|$)", text)  # a default markup swallowed left " ." behind
    assert "<bool>" not in text  # a flag takes no value
    assert not re.search(r"--[\w-]+ <", text)  # an option names its value (DIR, N, URL…)


LEAVING = """\
import atexit, sys
from optsweep.cli import leave
atexit.register(print, "the exit handler ran")
print("x" * 100_000)
leave({code!r})
"""


@pytest.mark.parametrize(
    ("code", "status", "said"),
    [(None, 0, ""), (0, 0, ""), (3, 3, ""), ("a message", 1, "a message\n")],
)
def test_leave_exits_as_sys_exit_with_handlers_run_and_output_flushed(code, status, said):
    # buffered output, as a pipe gets by default (this machine sets PYTHONUNBUFFERED)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    done = subprocess.run(
        [sys.executable, "-c", LEAVING.format(code=code)], capture_output=True, text=True, env=env
    )
    assert done.returncode == status
    assert done.stdout == "x" * 100_000 + "\nthe exit handler ran\n"
    assert done.stderr == said
