"""A model from the user's code (``model: {module: FILE.py:NAME, args}``), K trials at once
through torch.func: equal to a plain PyTorch loop, independent of K, refused in one line."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from optsweep import engine
from optsweep.cli import app
from optsweep.config import ConfigError, expand, load_sweep
from optsweep.data import load_dataset
from optsweep.engine import train_batch
from optsweep.models import build_model

runner = CliRunner()
NET = """\
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, hidden=16, classes=10):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(7), nn.Flatten(),
            nn.Linear(4 * 49, hidden), nn.ReLU(), nn.Linear(hidden, classes),
        )

    def forward(self, x):
        return self.body(x)


def with_batchnorm(hidden=16):
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
        nn.LazyLinear(hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, 10),
    )


class Branching(nn.Module):
    # data-dependent control flow: vmap refuses it, its trials train one after another

    def __init__(self, hidden=16):
        super().__init__()
        self.first = nn.Linear(784, hidden)
        self.last = nn.Linear(hidden, 10)

    def forward(self, x):
        h = self.first(x.flatten(1))
        if h.mean() > 0:
            h = h.relu()
        return self.last(h)


def wrong_output():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 3))


def with_dropout():
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10)
    )


def branching_with_dropout():
    return nn.Sequential(nn.Dropout(0.2), Branching())


def not_a_module():
    return 3
"""
SWEEP = """\
name: mine
dataset: mnist-mini
subset: {train: 256, test: 128}
model: {module: models/net.py:Net, args: {hidden: 12}}
train: {epochs: 2, batch_size: 64}
optimizers:
  - name: sgd
    grid: {lr: [0.1, 0.05, 1.0e+30, 0.01]}
"""


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "net.py").write_text(NET)
    (tmp_path / "sweep.yaml").write_text(SWEEP)
    return tmp_path / "sweep.yaml"


def build(spec):
    data = load_dataset("mnist-mini", None, "cpu", spec.subset_train, spec.subset_test)
    return data, build_model(
        spec.model.name, data.input_shape, data.num_classes, **spec.model.options
    )


def load_net_file(sweep: Path, name: str):
    import importlib.util

    loader = importlib.util.spec_from_file_location(name, sweep.parent / "models" / "net.py")
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    return module


def plain_module(sweep: Path, name: str, seed: int, data) -> torch.nn.Module:
    """The module as the loop a user writes makes it: under the trial's seed, a lazy layer
    materialised by a first image, in train mode."""
    module = load_net_file(sweep, f"net_{name}")
    torch.manual_seed(seed)
    net = getattr(module, name)(hidden=12)
    with torch.no_grad():
        net.eval()(data.train_x[:1])
    return net.train()


def plain_epoch(net: torch.nn.Module, opt, data, order: torch.Generator) -> None:
    """One epoch of that loop in the engine's batch order (batch 64)."""
    perm = torch.randperm(len(data.train_y), generator=order)
    for start in range(0, len(perm), 64):
        idx = perm[start : start + 64]
        opt.zero_grad()
        F.cross_entropy(net(data.train_x[idx]), data.train_y[idx]).backward()
        opt.step()


# A plain nn.Module, one with BatchNorm (running statistics per trial, a lazy layer), one vmap
# refuses (data-dependent control flow: trained trial by trial).
MODULES = ["Net", "with_batchnorm", "Branching"]


@pytest.mark.parametrize("name", MODULES)
def test_a_trial_equals_a_plain_pytorch_loop(sweep: Path, name: str) -> None:
    sweep.write_text(SWEEP.replace("net.py:Net", f"net.py:{name}"))
    spec = load_sweep(sweep)
    data, model = build(spec)
    trial = expand(spec)[0]  # sgd lr 0.1, seed 0
    (ours,) = train_batch(data, model, [trial], spec.train, device=torch.device("cpu"))
    # the loop a user writes: the module under the trial's seed (a lazy layer materialised by
    # a first image), the engine's batch order, evaluation in eval mode
    net = plain_module(sweep, name, trial.seed, data)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    order = torch.Generator().manual_seed(trial.seed)
    for epoch in range(spec.train.epochs):
        plain_epoch(net, opt, data, order)
        with torch.no_grad():
            test_loss = F.cross_entropy(net.eval()(data.test_x), data.test_y).item()
        net.train()
        assert math.isclose(ours.epochs[epoch].test_loss, test_loss, rel_tol=1e-5)


def test_schedule_free_evaluates_at_x_with_batchnorm_recomputed_as_its_authors_loop_does(
    sweep: Path,
) -> None:
    # The reference: schedulefree's AdamWScheduleFree in a plain loop; before evaluating,
    # optimizer.eval() (the weights become x) and BatchNorm's statistics recomputed by training
    # batches forward in train mode, as the package's README advises; then back to training.
    import schedulefree

    sweep.write_text(
        SWEEP.replace("net.py:Net", "net.py:with_batchnorm").replace(
            "  - name: sgd\n    grid: {lr: [0.1, 0.05, 1.0e+30, 0.01]}",
            "  - name: schedule_free_adamw\n    grid: {lr: [0.01]}",
        )
    )
    spec = load_sweep(sweep)
    data, model = build(spec)
    (trial,) = expand(spec)
    (ours,) = train_batch(data, model, [trial], spec.train, device=torch.device("cpu"))
    net = plain_module(sweep, "with_batchnorm", trial.seed, data)
    opt = schedulefree.AdamWScheduleFree(net.parameters(), lr=0.01)
    opt.train()
    order = torch.Generator().manual_seed(trial.seed)
    statistics_batches = min(engine.STATISTICS_BATCHES, 256 // 64)
    for epoch in range(spec.train.epochs):
        plain_epoch(net, opt, data, order)
        opt.eval()
        with torch.no_grad():
            for s in range(statistics_batches):  # train mode at x: BatchNorm's statistics
                net(data.train_x[s * 64 : (s + 1) * 64])
            test_loss = F.cross_entropy(net.eval()(data.test_x), data.test_y).item()
        net.train()
        opt.train()
        # after epoch 1 the reference has gone y -> x -> y in float32 (an ulp off, 3e-8 here),
        # which Adam's normalised steps carry on; optsweep never leaves y
        tolerance = 1e-5 if epoch == 0 else 1e-3
        assert math.isclose(ours.epochs[epoch].test_loss, test_loss, rel_tol=tolerance), epoch


@pytest.mark.parametrize("name", MODULES)
def test_results_do_not_depend_on_k(sweep: Path, name: str) -> None:
    sweep.write_text(SWEEP.replace("net.py:Net", f"net.py:{name}"))
    spec = load_sweep(sweep)
    data, model = build(spec)
    trials = expand(spec)
    cpu = torch.device("cpu")
    together = train_batch(data, model, trials, spec.train, device=cpu)
    assert [t.status for t in together] == ["complete", "complete", "diverged", "complete"]
    for trial, joint in zip(trials, together, strict=True):
        (alone,) = train_batch(data, model, [trial], spec.train, device=cpu)
        assert alone.status == joint.status
        for a, b in zip(alone.epochs, joint.epochs, strict=True):
            assert math.isclose(a.test_loss, b.test_loss, rel_tol=1e-4)


@pytest.mark.parametrize("name", ["with_dropout", "branching_with_dropout"])  # vmap, a loop
def test_dropout_masks_do_not_depend_on_k(sweep: Path, name: str) -> None:
    sweep.write_text(SWEEP.replace("net.py:Net, args: {hidden: 12}", f"net.py:{name}"))
    spec = load_sweep(sweep)
    data, model = build(spec)
    trials = [t for t in expand(spec) if t.params["learning_rate"] < 1]
    cpu = torch.device("cpu")
    together = train_batch(data, model, trials, spec.train, device=cpu)
    for trial, joint in zip(trials, together, strict=True):
        (alone,) = train_batch(data, model, [trial], spec.train, device=cpu)
        assert alone.step_losses == pytest.approx(joint.step_losses, rel=1e-5)
    params = model.init_stacked([0])
    x = data.test_x[:32]
    evaluated = model.forward(params, x)  # eval mode: no dropout, the same twice
    assert torch.equal(evaluated, model.forward(params, x))
    trained = model.forward(params, x, train=True, generator=torch.Generator().manual_seed(3))
    assert not torch.allclose(trained, evaluated)


def test_trials_with_one_seed_start_from_the_modules_own_initialisation(sweep: Path) -> None:
    spec = load_sweep(sweep)
    _, model = build(spec)
    module = load_net_file(sweep, "net2")
    for seed in (0, 7):
        torch.manual_seed(seed)
        reference = [p.detach() for p in module.Net(hidden=12).parameters()]
        for ours, theirs in zip(model.init(seed), reference, strict=True):
            assert torch.equal(ours, theirs)


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        (
            "{module: models/other.py:Net}",
            "F:4: model.module: no such file: {folder}/models/other.py",
        ),
        (
            "{module: Net}",
            "F:4: model.module: expected FILE.py:NAME or package.module:NAME (an nn.Module "
            "class or a function returning one), got the string 'Net'",
        ),
        (
            "{module: models/net.py:Net, arg: {hidden: 3}}",
            "F:4: model.arg: unknown key 'arg'; did you mean 'args'? valid keys: module, args",
        ),
    ],
    ids=["missing-file", "no-name", "key-typo"],
)
def test_a_wrong_reference_is_one_line_and_validating_runs_no_code(
    sweep: Path, written: str, expected: str
) -> None:
    sweep.write_text(SWEEP.replace("{module: models/net.py:Net, args: {hidden: 12}}", written))
    with pytest.raises(ConfigError) as error:
        load_sweep(sweep)
    line = str(error.value.problems[0]).replace(str(sweep), "F")
    assert line == expected.replace("{folder}", str(sweep.parent))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("wrong_output", r"returns \(2, 3\) for images \(2, 1, 28, 28\); expected logits"),
        ("not_a_module", "gave a int, not a torch.nn.Module"),
        ("Missing", "has no 'Missing'"),
    ],
)
def test_what_the_generic_path_cannot_train_is_one_line(sweep: Path, tmp_path, name, expected):
    sweep.write_text(SWEEP.replace("net.py:Net, args: {hidden: 12}", f"net.py:{name}"))
    assert runner.invoke(app, ["validate", str(sweep)]).exit_code == 0  # no code ran
    result = runner.invoke(app, ["run", str(sweep), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: model.module ") and re.search(expected, line)


def test_validate_and_dry_run_say_what_a_run_would_import_and_run_none_of_it(
    sweep: Path, tmp_path: Path
) -> None:
    ran = tmp_path / "ran"
    net = sweep.parent / "models" / "net.py"
    net.write_text(f"open({str(ran)!r}, 'w').close()\n" + NET)  # leaves a trace when imported
    module = f"{net.resolve()}:Net"
    checked = runner.invoke(app, ["validate", str(sweep)])
    assert checked.exit_code == 0, checked.output
    assert f"ok, 4 trials; a run imports {module} (its code runs then, not now)" in checked.stdout
    dry = runner.invoke(app, ["run", str(sweep), "--dry-run"])
    assert dry.exit_code == 0 and f"4 trials; a run imports {module}" in dry.stdout
    assert not ran.exists()
    assert runner.invoke(app, ["run", str(sweep), "--out", str(tmp_path / "out")]).exit_code == 0
    assert ran.exists()  # a run does import it


def test_an_edited_model_file_is_refused_on_resume(sweep: Path, tmp_path: Path) -> None:
    out = ["--out", str(tmp_path / "out"), "--quiet"]
    assert runner.invoke(app, ["run", str(sweep), *out]).exit_code == 0
    net = sweep.parent / "models" / "net.py"
    net.write_text(net.read_text() + "\n# edited\n")
    again = runner.invoke(app, ["run", str(sweep), *out])
    assert again.exit_code == 2
    assert "was trained with model.sha256 = " in again.stderr


def test_batchnorm_statistics_are_each_trials_own(sweep: Path) -> None:
    """Two trials with different learning rates train side by side: each trial's running
    statistics are those it would have alone, and they moved from BatchNorm's initial 0 / 1."""
    sweep.write_text(SWEEP.replace("net.py:Net", "net.py:with_batchnorm"))
    spec = load_sweep(sweep)
    data, model = build(spec)
    names = [b.name for b in model.buffers]
    assert names == [
        "1.running_mean", "1.running_var", "1.num_batches_tracked",
        "6.running_mean", "6.running_var", "6.num_batches_tracked",
    ]  # fmt: skip
    buffers = [b.unsqueeze(0).repeat(2, *[1] * b.ndim) for b in model.init_buffers(0)]
    params = [p.requires_grad_() for p in model.init_stacked([0, 0])]
    model.forward(params, data.train_x[:64], buffers=buffers, train=True)
    assert buffers[2].tolist() == [1, 1] and buffers[2].dtype == torch.int64
    assert not torch.equal(buffers[0][0], torch.zeros(4))
    alone = [b.unsqueeze(0) for b in model.init_buffers(0)]
    model.forward([p[:1] for p in params], data.train_x[:64], buffers=alone, train=True)
    for pair, single in zip(buffers, alone, strict=True):
        assert torch.allclose(pair[1], single[0]) and torch.allclose(pair[0], single[0])


def test_a_module_vmap_refuses_says_so_in_one_line(sweep: Path, caplog) -> None:
    sweep.write_text(SWEEP.replace("net.py:Net", "net.py:Branching"))
    spec = load_sweep(sweep)
    with caplog.at_level("WARNING", logger="optsweep.usermodels"):
        build(spec)
    [record] = caplog.records
    message = record.getMessage()
    assert "\n" not in message and "torch.vmap cannot run it" in message
    assert message.endswith(
        "its trials train one after another (the same results, one trial's speed)"
    )


@pytest.mark.parametrize(
    ("name", "chunk"),
    [("Net", 1), ("with_batchnorm", 1), ("Branching", None), ("with_dropout", None)],
)
def test_a_conv_module_trains_trial_by_trial_on_cpu(
    sweep: Path, name: str, chunk: int | None
) -> None:
    """A module with convolutions runs as the built-in conv nets do on a CPU, a trial at a
    time (twice as fast as under one vmap, measured), in the layout it is given; the others
    run all K at once."""
    args = ", args: {hidden: 12}" if name != "with_dropout" else ""
    sweep.write_text(SWEEP.replace("net.py:Net, args: {hidden: 12}", f"net.py:{name}{args}"))
    spec = load_sweep(sweep)
    data, model = build(spec)
    assert (model.cpu_trial_chunk, model.cpu_channels_last) == (chunk, False)
    trials = expand(spec)[:2]
    outcomes = train_batch(data, model, trials, spec.train, device=torch.device("cpu"))
    assert [o.status for o in outcomes] == ["complete", "complete"]
