"""CI smoke runs: every trial of a config a few steps on shipped data, JUnit XML, exit codes."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from test_data import EMNIST_NAMES, fake_mnist, write_cifar100, write_idx, write_mnist
from typer.testing import CliRunner

from optsweep import runner as runner_module
from optsweep.ci import junit_xml, smoke_overrides
from optsweep.cli import app
from optsweep.config import expand, load_sweep
from optsweep.data import SMOKE_DATA_DIR
from optsweep.records import TrialRecord

REPO = Path(__file__).resolve().parents[1]
cli = CliRunner()


@pytest.mark.parametrize(
    ("dataset", "batch_size", "steps", "expected"),
    [
        ("mnist", 128, 6, {"train.epochs=2", "train.batch_size=128", "subset.train=384"}),
        ("mnist", 256, 6, {"train.batch_size=170", "subset.train=510"}),  # 512 images shipped
        ("cifar10", 128, 6, {"train.batch_size=128", "subset.train=384", "subset.test=64"}),
        ("fashion-mnist", 64, 1, {"train.epochs=1", "subset.train=64"}),
        ("mnist", 32, 9, {"train.epochs=2", "subset.train=160"}),  # 5 steps an epoch
    ],
)
def test_smoke_overrides(tmp_path, dataset, batch_size, steps, expected):
    path = tmp_path / "s.yaml"
    path.write_text(
        f"name: s\ndataset: {dataset}\ntrain: {{batch_size: {batch_size}}}\noptimizers: [sgd]\n"
    )
    overrides = smoke_overrides(load_sweep(path), steps)
    assert expected <= set(overrides) and "name=s-smoke" in overrides
    assert load_sweep(path, overrides).name == "s-smoke"


def run_smoke(config: Path, tmp_path: Path, *extra: str):
    junit = tmp_path / "smoke.xml"
    args = ["run", str(config), "--smoke", "--junit", str(junit), "--out", str(tmp_path / "o")]
    return cli.invoke(app, [*args, "-q", *extra]), junit


@pytest.mark.parametrize(
    "extra",
    [[], ["--set", "dataset=cifar10", "--set", "model=3c3d"]],
    ids=["mnist", "cifar10-3c3d"],
)
def test_a_smoke_run_trains_every_trial_on_shipped_data(tmp_path, extra):
    config = REPO / "configs" / "sgd.yaml"
    result, junit = run_smoke(config, tmp_path, "--data-dir", str(SMOKE_DATA_DIR), *extra)
    assert result.exit_code == 0, result.output
    assert f"--data-dir {SMOKE_DATA_DIR}" in result.stderr  # said which data it used
    result, junit = run_smoke(config, tmp_path / "shipped", *extra)
    assert result.exit_code == 0, result.output
    assert "the data shipped in optsweep" in result.stderr
    suite = ET.parse(junit).getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == len(expand(load_sweep(config))) == int(suite.get("tests"))
    assert suite.get("failures") == "0"
    assert all("status: complete" in c.find("system-out").text for c in cases)


def record(status: str, error: str | None = None) -> TrialRecord:
    epochs = [{"test_accuracy": 0.5}] if status != "failed" else []
    return TrialRecord(0, "adam", "torch", 1, {"lr": 0.1}, status, epochs, error=error)


def test_junit_reports_failed_and_optionally_diverged_trials():
    records = [record("complete"), record("failed", "RuntimeError: boom"), record("diverged")]
    plain = ET.fromstring(junit_xml(records, "t")).find("testsuite")
    assert plain.get("tests") == "3" and plain.get("failures") == "1"
    failure = plain.findall("testcase")[1].find("failure")
    assert failure.get("message") == "RuntimeError: boom" and failure.get("type") == "failed"
    assert plain.findall("testcase")[0].get("name") == "adam/torch lr=0.1 seed=1"
    strict = ET.fromstring(junit_xml(records, "t", fail_on_diverged=True)).find("testsuite")
    assert strict.get("failures") == "2"
    assert strict.findall("testcase")[2].find("failure").get("type") == "diverged"
    assert not math.isnan(float(strict.get("time")))


def test_a_failed_trial_exits_1_with_its_message_in_the_junit_file(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(runner_module, "train_batch", broken)
    result, junit = run_smoke(REPO / "configs" / "nadam.yaml", tmp_path)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == "error: 2 of 2 trials failed"
    failures = ET.parse(junit).getroot().iter("failure")
    assert {f.get("message") for f in failures} == {"RuntimeError: boom"}


@pytest.mark.parametrize(
    ("seconds", "trials_in_batch", "case_time"),
    [(32.0, 32, "1.000"), (3.0, None, "3.000"), (float("nan"), None, "0.000")],
)
def test_junit_time_is_each_trials_share_of_its_batch(seconds, trials_in_batch, case_time):
    import dataclasses

    one = dataclasses.replace(record("complete"), seconds=seconds, trials_in_batch=trials_in_batch)
    suite = ET.fromstring(junit_xml([one, one], "t")).find("testsuite")
    assert suite.find("testcase").get("time") == case_time
    assert float(suite.get("time")) == pytest.approx(2 * float(case_time))


# ---------------------------------------------- the newer models and data sets as smoke runs

NEW_SWEEP = """\
name: new
dataset: {dataset}
data: {data}
model: {model}
train: {{batch_size: 16}}
optimizers:
  - name: adam
    grid: {{lr: [0.01, 0.001]}}
  - name: momentum
    grid: {{lr: [0.1]}}
"""


def write_kmnist(folder: Path) -> None:
    write_mnist(folder / "KMNIST" / "raw", fake_mnist(64, 64, seed=5))


def write_emnist(folder: Path) -> None:
    rng = np.random.default_rng(6)
    for images, labels in EMNIST_NAMES.values():
        write_idx(folder / "emnist" / images, rng.integers(0, 256, (64, 28, 28), np.uint8), True)
        write_idx(folder / "emnist" / labels, rng.integers(0, 47, 64).astype(np.uint8), True)


def write_cifar100_files(folder: Path) -> None:
    write_cifar100(folder / "cifar-100-python", n=64)


@pytest.mark.parametrize(
    ("dataset", "write", "model", "data"),
    [
        ("kmnist", write_kmnist, "cnn", "{}"),
        ("emnist-balanced", write_emnist, "2c2d", "{}"),
        ("cifar100", write_cifar100_files, "resnet20", "{crop_padding: 4, flip: true}"),
        ("cifar100", write_cifar100_files, "{name: resnet32, init: keras}", "{flip: true}"),
    ],
    ids=["kmnist-cnn", "emnist-2c2d", "cifar100-resnet20-augmented", "cifar100-resnet32-keras"],
)
def test_newer_models_and_data_sets_train_as_smoke_runs(tmp_path, dataset, write, model, data):
    write(tmp_path / "data")  # each set's published files, a few images
    config = tmp_path / "new.yaml"
    config.write_text(NEW_SWEEP.format(dataset=dataset, model=model, data=data))
    extra = ("--smoke-steps", "1", "--data-dir", str(tmp_path / "data"))
    result, junit = run_smoke(config, tmp_path, *extra)
    assert result.exit_code == 0, result.output
    cases = ET.parse(junit).getroot().find("testsuite").findall("testcase")
    assert len(cases) == 3
    assert all("status: complete" in c.find("system-out").text for c in cases)


def test_the_shipped_resnet20_config_trains_as_a_smoke_run(tmp_path):
    config = REPO / "configs" / "cifar10-resnet20.yaml"
    result, junit = run_smoke(config, tmp_path, "--smoke-steps", "1")
    assert result.exit_code == 0, result.output
    cases = ET.parse(junit).getroot().find("testsuite").findall("testcase")
    assert len(cases) == len(expand(load_sweep(config))) == 9
    assert all("status: complete" in c.find("system-out").text for c in cases)


def test_a_smoke_runs_log_is_its_counts_not_an_answer(tmp_path):
    # a few steps answer nothing: no table, no target line, no tuning advice; a log line
    # only for a trial that did not complete
    config = REPO / "configs" / "adam.yaml"
    out = tmp_path / "o"
    result = cli.invoke(
        app, ["run", str(config), "--smoke", "--smoke-steps", "1", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    trials = len(expand(load_sweep(config)))
    lines = result.stdout.strip().splitlines()
    complete = (out / "trials.csv").read_text().count(",complete,")
    assert lines[-1].startswith(f"smoke run: {trials} trials ({complete} complete")
    assert len(lines) <= 3 + (trials - complete)  # start, "done in", counts; the others
    assert not any(w in result.stdout for w in ("best first", "reached", "warning:"))
