"""optsweep.trajectories: paths of the real update rules on 2-D test functions (data, then CLI)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

from optsweep.cli import app
from optsweep.config import load_sweep
from optsweep.functions import FUNCTIONS, value_and_grad
from optsweep.optim import registry
from optsweep.trajectories import (
    TrajectorySpec,
    grid_panels,
    measure,
    parse_learning_rate,
    parse_point,
    rich_table,
    run_trajectories,
    specs_from_names,
    specs_from_sweep,
    trace,
    with_learning_rate,
)

QUADRATIC = FUNCTIONS["quadratic"]

MOMENTUM_GRID = """\
name: traj
dataset: mnist
optimizers:
  - name: momentum
    semantics: keras
    grid:
      learning_rate: [0.01, 0.001]
      momentum: [0.5, 0.9, 0.999]
"""


def by_label(trajectories):
    return {t.label: t for t in trajectories}


# ── the test functions ────────────────────────────────────────────────────────────


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_minima_are_stationary_and_lowest(name):
    function = FUNCTIONS[name]
    for point in function.minima or function.saddle_points:
        _, grad = value_and_grad(function, torch.tensor([point], dtype=torch.float64))
        assert grad.abs().max() < 1e-4, (name, point, grad)
    if function.minima:
        xs = torch.linspace(*function.xlim, 101, dtype=torch.float64)
        ys = torch.linspace(*function.ylim, 101, dtype=torch.float64)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        assert function.fn(gx, gy).min() >= function.minimum_value - 1e-6


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_closed_form_gradient_is_autograds(name):
    function = FUNCTIONS[name]
    (x0, x1), (y0, y1) = function.xlim, function.ylim
    u = torch.rand(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    points = torch.stack([x0 + (x1 - x0) * u[:, 0], y0 + (y1 - y0) * u[:, 1]], dim=1)
    value, grad = value_and_grad(function, points)
    value_ag, grad_ag = value_and_grad(function, points, autograd=True)
    torch.testing.assert_close(value, value_ag)
    torch.testing.assert_close(grad, grad_ag)


def test_rosenbrock_gradient_by_hand():
    _, grad = value_and_grad(
        FUNCTIONS["rosenbrock"], torch.tensor([[-1.2, 1.0]], dtype=torch.float64)
    )
    torch.testing.assert_close(grad, torch.tensor([[-215.6, -88.0]], dtype=torch.float64))


# ── the oracles: what the paths must show ─────────────────────────────────────────


def test_every_optimizer_reaches_the_quadratic_minimum_both_semantics():
    specs = specs_from_names(["all"], ("torch", "keras"))
    assert len(specs) == 2 * len(registry.OPTIMIZERS)
    trajectories = run_trajectories(QUADRATIC, with_learning_rate(specs, QUADRATIC, "auto"))
    failed = {
        t.label: t.metrics.final_distance for t in trajectories if t.metrics.status != "converged"
    }
    assert not failed, failed
    for t in trajectories:
        assert t.metrics.final_distance <= QUADRATIC.tolerance
        assert t.metrics.steps_to_tolerance is not None
        assert len(t.path) == QUADRATIC.steps + 1


def test_heavy_momentum_overshoots_the_valley_more():
    # The seed's momentum list on the long valley, one rate for all: measured from the paths.
    spec = specs_from_names(["momentum/keras"])[0]
    specs = [
        TrajectorySpec(
            spec.optimizer,
            spec.semantics,
            registry.resolve("momentum", "keras", {"momentum": rho}),
            given={"momentum": rho},
            block=0,
            grid={"momentum": rho},
        )
        for rho in (0.1, 0.5, 0.9, 0.999)
    ]
    paths = run_trajectories(QUADRATIC, with_learning_rate(specs, QUADRATIC, 0.4), steps=200)
    overshoot = {t.spec.grid["momentum"]: t.metrics.overshoot for t in paths}
    rise = {t.spec.grid["momentum"]: t.metrics.max_rise for t in paths}
    assert overshoot[0.999] > overshoot[0.5] + 5.0  # swings to the far end of the valley
    assert overshoot[0.5] < 0.05  # overdamped: creeps in from one side
    assert overshoot[0.9] > overshoot[0.5]
    assert rise[0.999] > rise[0.5]
    # Directly from the path: x crosses 0 (the minimum) and reaches past +5.
    heavy = next(t for t in paths if t.spec.grid["momentum"] == 0.999)
    assert heavy.path[:, 0].max() > 5.0
    assert heavy.metrics.status == "unfinished"


def test_adaptive_methods_leave_the_saddle_before_sgd():
    saddle = FUNCTIONS["saddle"]
    specs = with_learning_rate(specs_from_names(["sgd", "adam", "rmsprop"]), saddle, "auto")
    runs = {t.spec.optimizer: t.metrics for t in run_trajectories(saddle, specs)}
    assert all(m.status == "escaped" for m in runs.values())
    assert runs["adam"].steps_to_tolerance < runs["sgd"].steps_to_tolerance
    assert runs["rmsprop"].steps_to_tolerance < runs["sgd"].steps_to_tolerance
    assert all(m.final_distance is None for m in runs.values())


def test_paths_follow_torch_optim_step_for_step():
    function = FUNCTIONS["beale"]
    cases = [
        ("adam", torch.optim.Adam, {"lr": 0.05}),
        ("momentum", torch.optim.SGD, {"lr": 1e-3, "momentum": 0.9}),
        ("rmsprop", torch.optim.RMSprop, {"lr": 0.01}),
    ]
    for name, cls, kwargs in cases:
        spec = specs_from_names([name])[0]
        spec = with_learning_rate([spec], function, kwargs["lr"])[0]
        (ours,) = run_trajectories(function, [spec], steps=40)
        point = torch.tensor(function.start, dtype=torch.float64, requires_grad=True)
        optimizer = cls([point], **kwargs)
        expected = [point.detach().clone()]
        for _ in range(40):
            optimizer.zero_grad()
            function.fn(point[0], point[1]).backward()
            optimizer.step()
            expected.append(point.detach().clone())
        np.testing.assert_allclose(ours.path, torch.stack(expected).numpy(), rtol=1e-9, atol=1e-12)


def test_trials_run_together_as_they_would_alone():
    rosenbrock = FUNCTIONS["rosenbrock"]
    specs = [
        TrajectorySpec("adam", "torch", registry.resolve("adam", "torch", {"lr": lr, "betas": b}))
        for lr, b in ((0.05, (0.9, 0.999)), (0.02, (0.5, 0.9)), (0.1, (0.8, 0.99)))
    ]
    together = run_trajectories(rosenbrock, specs, steps=60)
    for spec, joint in zip(specs, together, strict=True):
        (alone,) = run_trajectories(rosenbrock, [spec], steps=60)
        np.testing.assert_allclose(joint.path, alone.path, rtol=1e-12, atol=0)


def test_a_diverging_path_stops_and_is_recorded():
    rosenbrock = FUNCTIONS["rosenbrock"]
    specs = with_learning_rate(specs_from_names(["sgd", "adam"]), rosenbrock, 0.05)
    runs = {t.spec.optimizer: t for t in run_trajectories(rosenbrock, specs, steps=50)}
    sgd = runs["sgd"]
    assert sgd.metrics.status == "diverged"
    assert sgd.metrics.stopped_step is not None and sgd.metrics.stopped_step <= 50
    assert len(sgd.path) == sgd.metrics.stopped_step
    assert np.isfinite(sgd.path).all() and np.isfinite(sgd.losses).all()
    assert runs["adam"].metrics.stopped_step is None  # the other trial of the call went on


# ── metrics from hand-made paths ──────────────────────────────────────────────────


def test_measure_overshoot_and_steps_to_tolerance():
    losses_of = lambda p: QUADRATIC.fn(torch.from_numpy(p[:, 0]), torch.from_numpy(p[:, 1])).numpy()  # noqa: E731
    path = np.array([[-4.0, 0.0], [-1.0, 0.0], [2.0, 0.0], [0.01, 0.0], [-0.5, 0.0], [0.0, 0.0]])
    m = measure(QUADRATIC, path, losses_of(path))
    assert m.overshoot == pytest.approx(2.0)  # past the minimum, away from the start
    assert m.steps_to_tolerance == 5  # within 0.1 at step 3, left again at 4, back at 5
    assert m.status == "converged" and m.final_distance == 0.0
    assert m.max_rise == pytest.approx(0.15)  # f(2, 0) − f(−1, 0)
    creeping = np.array([[-4.0, 0.0], [-2.0, 0.0], [-1.0, 0.0]])
    m = measure(QUADRATIC, creeping, losses_of(creeping))
    assert (m.overshoot, m.max_rise, m.status, m.steps_to_tolerance) == (
        0.0,
        0.0,
        "unfinished",
        None,
    )


def test_himmelblau_reports_the_minimum_each_path_found():
    himmelblau = FUNCTIONS["himmelblau"]
    path = np.array([[0.0, 0.0], [3.5, -1.8], [3.584428, -1.848126]])
    losses = himmelblau.fn(torch.from_numpy(path[:, 0]), torch.from_numpy(path[:, 1])).numpy()
    m = measure(himmelblau, path, losses)
    assert m.nearest_minimum == pytest.approx((3.584428, -1.848126))
    assert m.status == "converged"


# ── specs: configs, names, rates ──────────────────────────────────────────────────


def test_specs_from_a_config_and_the_rate_policies(write_yaml):
    spec = load_sweep(write_yaml(MOMENTUM_GRID))
    specs = specs_from_sweep(spec)
    assert len(specs) == 6
    assert {s.semantics for s in specs} == {"keras"}
    own = with_learning_rate(specs, QUADRATIC)
    assert sorted({s.learning_rate for s in own}) == [0.001, 0.01]
    scaled = with_learning_rate(specs, QUADRATIC, lr_scale=10)
    assert sorted({s.learning_rate for s in scaled}) == [0.01, 0.1]
    auto = with_learning_rate(specs, QUADRATIC, "auto")  # one rate: the lr grid collapses
    assert len(auto) == 3
    assert {s.learning_rate for s in auto} == {QUADRATIC.suggested_learning_rate("momentum")}
    assert all("learning_rate" not in s.grid for s in auto)
    assert auto[0].label == "momentum/keras learning_rate=0.4 momentum=0.5"
    panels = grid_panels(run_trajectories(QUADRATIC, own, steps=3))
    assert {(p.row, p.column) for p in panels} == {(r, c) for r in range(2) for c in range(3)}
    assert panels[0].title == "learning_rate=0.01, momentum=0.5"


def test_names_and_command_line_text():
    specs = specs_from_names(["adam", "sgd/keras", "adam"], ("torch", "keras"))
    assert [(s.optimizer, s.semantics) for s in specs] == [
        ("adam", "torch"),
        ("adam", "keras"),
        ("sgd", "keras"),
    ]
    with pytest.raises(ValueError, match=r"unknown optimizer 'adamm'.*adam"):
        specs_from_names(["adamm"])
    with pytest.raises(ValueError, match="unknown function 'rosenbrok'"):
        trace(specs, ["rosenbrok"])
    assert parse_point(" -1.5, 2") == (-1.5, 2.0)
    with pytest.raises(ValueError, match="two numbers"):
        parse_point("1")
    assert parse_learning_rate("auto") == "auto"
    assert parse_learning_rate(None) is None
    assert parse_learning_rate("0.02") == 0.02
    with pytest.raises(ValueError, match="positive"):
        parse_learning_rate("-1")


def test_rich_table_lists_every_path():
    run = trace(specs_from_names(["sgd", "adam"]), ["quadratic"], steps=20, learning_rate="auto")
    console = Console(width=140, record=True)
    console.print(rich_table(QUADRATIC, run.results["quadratic"], 20, QUADRATIC.start))
    text = console.export_text()
    assert "sgd/torch lr=0.4" in text and "adam/torch lr=0.2" in text
    assert "steps to tol" in text and "20 steps from (-9, 1.5)" in text


# ── the command ───────────────────────────────────────────────────────────────────

runner = CliRunner()


def test_command_writes_pictures_and_table_from_a_config(write_yaml, tmp_path):
    config = write_yaml(MOMENTUM_GRID)
    out = tmp_path / "out"
    args = ["trajectories", str(config), "--functions", "quadratic", "--lr", "auto"]
    result = runner.invoke(app, [*args, "--steps", "40", "--frames", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "quadratic" in result.output and "momentum/keras learning_rate=0.4" in result.output
    assert (out / "quadratic.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "quadratic.gif").read_bytes()[:6] == b"GIF89a"
    assert (out / "quadratic-grid-0-momentum.png").exists()  # the block's grid, small multiples
    rows = list(csv.DictReader((out / "table.csv").open()))
    assert [r["label"] for r in rows] == [
        f"momentum/keras learning_rate=0.4 momentum={m}" for m in (0.5, 0.9, 0.999)
    ]
    assert "| optimizer | status |" in (out / "table.md").read_text()


def test_command_with_optimizer_names(tmp_path):
    out = tmp_path / "names"
    args = ["trajectories", "--optimizers", "sgd,adam/keras", "--functions", "saddle,beale"]
    args += ["--steps", "10", "--no-gif", "--start", "0.5,0.1", "--out", str(out), "-q"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.output == ""
    assert sorted(p.name for p in out.iterdir()) == [
        "beale.png",
        "saddle.png",
        "settings.json",
        "table.csv",
        "table.md",
    ]
    rows = list(csv.DictReader((out / "table.csv").open()))
    assert {(r["function"], r["optimizer"], r["semantics"]) for r in rows} == {
        (f, o, s) for f in ("saddle", "beale") for o, s in (("sgd", "torch"), ("adam", "keras"))
    }
    assert {(r["start_x"], r["start_y"]) for r in rows} == {("0.5", "0.1")}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--optimizers", "sgd", "CONFIG"], "not both"),
        (["--optimizers", "adamm"], "unknown optimizer 'adamm'"),
        (["--optimizers", "sgd", "--start", "1;2"], "--start '1;2'"),
        (["--optimizers", "sgd", "--functions", "bael"], "unknown function 'bael'"),
        (["--optimizers", "sgd", "--semantics", "tf"], "--semantics 'tf'"),
        (["--optimizers", "sgd", "--lr-scale", "0"], "--lr-scale 0"),
        (["--optimizers", "sgd", "--lr", "fast"], "--lr 'fast'"),
    ],
)
def test_command_errors_are_one_line(args, message, write_yaml, tmp_path):
    args = [str(write_yaml(MOMENTUM_GRID)) if a == "CONFIG" else a for a in args]
    result = runner.invoke(app, ["trajectories", *args, "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not Path(tmp_path / "x").exists()
