"""Schedule-Free AdamW and SGD: the gradient point y and the evaluation point x, K trials at
once, against the references (``test_optim_parity`` holds every form's y to them too).

- torch semantics: facebookresearch/schedule_free (``schedulefree`` 1.4.1, a test dependency),
  ``AdamWScheduleFree`` and ``SGDScheduleFree``, x read through their ``eval()`` (and
  ``train()`` back) after every step. Ours: the engine's hook ``optim.evaluation_weights``
  on the batched kernel's state, the wrapper's own ``eval()``/``train()``.
- keras semantics of AdamW: ``keras.optimizers.ScheduleFreeAdamW``, which evaluates with its
  variables (y); keras's own ``schedule_free_adamw_test.py`` cases as properties (it has no
  golden numbers).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest
import torch
from _keras import ARRAY_WARNING, keras
from torch import Tensor

from optsweep.optim import (
    create,
    evaluation_weights,
    inplace,
    resolve,
    stack_hyperparameters,
)

schedulefree = pytest.importorskip("schedulefree")

pytestmark = pytest.mark.filterwarnings(ARRAY_WARNING)

F64 = torch.float64
SHAPES = ((4, 3), (5,), (2, 1, 3))
STEPS = 40


def start() -> list[Tensor]:
    gen = torch.Generator().manual_seed(5)
    return [torch.randn(s, generator=gen, dtype=F64) for s in SHAPES]


def gradient(params: list[Tensor], t: int) -> list[Tensor]:
    """∇ of Σ (θ − 0.3)² at θ plus a seeded noise ξₜ."""
    gen = torch.Generator().manual_seed(200 + t)
    return [2 * (p - 0.3) + 0.5 * torch.randn(p.shape, generator=gen, dtype=F64) for p in params]


def reference(name: str, params: list[Tensor], v: Mapping[str, Any]) -> Any:
    """schedulefree's ``AdamWScheduleFree`` or ``SGDScheduleFree`` for resolved values."""
    common = {
        "lr": v["learning_rate"],
        "weight_decay": v["weight_decay"] or 0.0,
        "warmup_steps": v["warmup_steps"],
        "r": v["r"],
        "weight_lr_power": v["weight_lr_power"],
    }
    if name == "schedule_free_adamw":
        return schedulefree.AdamWScheduleFree(
            params, betas=(v["beta_1"], v["beta_2"]), eps=v["epsilon"], **common
        )
    return schedulefree.SGDScheduleFree(params, momentum=v["momentum"], **common)


def run_reference(name: str, v: dict[str, Any]) -> list[tuple[list[Tensor], list[Tensor]]]:
    """(y, x) after every step: the reference stepped in train mode, x read in eval mode."""
    params = [p.clone().requires_grad_(True) for p in start()]
    opt = reference(name, params, v)
    out = []
    for t in range(STEPS):
        opt.train()
        for p, g in zip(params, gradient([p.detach() for p in params], t), strict=True):
            p.grad = g
        opt.step()
        y = [p.detach().clone() for p in params]
        opt.eval()
        out.append((y, [p.detach().clone() for p in params]))
    return out


# K trials that differ in every continuous hyperparameter
TRIALS = {
    "schedule_free_adamw": [
        {"learning_rate": 0.01},
        {"learning_rate": 0.02, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.1},
        {"learning_rate": 0.005, "warmup_steps": 10, "r": 1.0, "weight_lr_power": 0.0},
    ],
    "schedule_free_sgd": [
        {"learning_rate": 0.05},
        {"learning_rate": 0.1, "momentum": 0.5, "weight_decay": 0.1},
        {"learning_rate": 0.02, "warmup_steps": 10, "r": 0.5, "weight_lr_power": 1.0},
    ],
}


@pytest.mark.parametrize("name", list(TRIALS))
def test_trials_with_their_own_hyperparameters_follow_the_reference_at_y_and_x(name: str) -> None:
    trials = [resolve(name, "torch", t) for t in TRIALS[name]]
    kernel = inplace(name, "torch", trials[0])
    hp = stack_hyperparameters(name, trials)
    params = [torch.stack([p] * len(trials)) for p in start()]
    state = kernel.init(params)
    want = [run_reference(name, v) for v in trials]
    for t in range(STEPS):
        rows = [gradient([p[k] for p in params], t) for k in range(len(trials))]
        kernel.update_(
            [torch.stack([r[i] for r in rows]) for i in range(len(params))], state, params, hp
        )
        x = evaluation_weights(state, params)
        for k in range(len(trials)):
            y_ref, x_ref = want[k][t]
            for ours, ref in zip(params, y_ref, strict=True):
                torch.testing.assert_close(ours[k], ref, rtol=1e-9, atol=1e-12)
            for ours, ref in zip(x, x_ref, strict=True):
                torch.testing.assert_close(ours[k], ref, rtol=1e-9, atol=1e-12)
    assert not torch.allclose(x[0][0], params[0][0])  # x is not y


@pytest.mark.parametrize("name", list(TRIALS))
def test_the_wrappers_eval_and_train_are_the_references(name: str) -> None:
    values = resolve(name, "torch", TRIALS[name][1])
    ours = [p.clone().requires_grad_(True) for p in start()]
    opt = create(ours, name, **values)
    want = run_reference(name, values)
    for t in range(STEPS):
        opt.train()
        for p, g in zip(ours, gradient([p.detach() for p in ours], t), strict=True):
            p.grad = g
        opt.step()
        y_ref, x_ref = want[t]
        for a, b in zip(ours, y_ref, strict=True):
            torch.testing.assert_close(a.detach(), b, rtol=1e-9, atol=1e-12)
        opt.eval()
        for a, b in zip(ours, x_ref, strict=True):
            torch.testing.assert_close(a.detach(), b, rtol=1e-9, atol=1e-12)
    assert opt.param_groups[0]["train_mode"] is False
    with pytest.raises(RuntimeError, match=rf"{name}: step\(\) in eval mode"):
        opt.step()


def test_eval_mode_survives_a_state_dict_round_trip() -> None:
    """Saved in eval mode (as the reference advises), loaded, and trained on: the same run."""
    params = [p.clone().requires_grad_(True) for p in start()]
    opt = create(params, "schedule_free_adamw", lr=0.01)
    for t in range(5):
        for p, g in zip(params, gradient([p.detach() for p in params], t), strict=True):
            p.grad = g
        opt.step()
    opt.eval()
    saved, saved_x = copy.deepcopy(opt.state_dict()), [p.detach().clone() for p in params]
    resumed = [x.clone().requires_grad_(True) for x in saved_x]
    opt2 = create(resumed, "schedule_free_adamw", lr=0.01)
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]["train_mode"] is False
    for o, ps in ((opt, params), (opt2, resumed)):
        o.train()
        for t in range(5, 8):
            for p, g in zip(ps, gradient([p.detach() for p in ps], t), strict=True):
                p.grad = g
            o.step()
    for a, b in zip(params, resumed, strict=True):
        assert torch.equal(a, b)


def test_other_rules_evaluate_where_they_train() -> None:
    params = [p.clone().requires_grad_(True) for p in start()]
    opt = create(params, "adam", lr=0.01)
    for p, g in zip(params, gradient(start(), 0), strict=True):
        p.grad = g
    opt.step()
    before = [p.detach().clone() for p in params]
    opt.eval()
    assert all(torch.equal(p, q) for p, q in zip(params, before, strict=True))
    opt.step()  # nothing to refuse: the two points are one
    opt.train()


def test_the_weights_average_wins_over_x() -> None:
    """With use_ema the average (of y, keras's variables) is evaluated, as for every rule."""
    values = resolve("schedule_free_adamw", "torch", {"use_ema": True, "learning_rate": 0.01})
    kernel = inplace("schedule_free_adamw", "torch", values)
    params = [torch.stack([p, p]) for p in start()]
    state = kernel.init(params)
    hp = stack_hyperparameters("schedule_free_adamw", [values, values])
    for t in range(3):
        kernel.update_([torch.stack([g, g]) for g in gradient(start(), t)], state, params, hp)
    assert evaluation_weights(state, params) is state.average


def test_accumulation_and_a_dynamic_scale_keep_x_per_trial() -> None:
    """x through the stages' state (accumulation, dynamic loss scaling), and a trial whose
    step overflowed keeps its y, z and x."""
    values = resolve(
        "schedule_free_adamw",
        "torch",
        {"learning_rate": 0.01, "dynamic_loss_scale": True, "initial_scale": 4.0},
    )
    kernel = inplace("schedule_free_adamw", "torch", values)
    params = [torch.stack([p, p]) for p in start()]
    state = kernel.init(params)
    hp = stack_hyperparameters("schedule_free_adamw", [values, values])
    for t in range(3):
        kernel.update_([4 * torch.stack([g, g]) for g in gradient(start(), t)], state, params, hp)
    x_before = [x.clone() for x in evaluation_weights(state, params)]
    y_before = [p.clone() for p in params]
    grads = [4 * torch.stack([g, g]) for g in gradient(start(), 3)]
    grads[0][1, 0, 0] = torch.inf
    kernel.update_(grads, state, params, hp)
    x_after = evaluation_weights(state, params)
    assert torch.equal(params[0][1], y_before[0][1]) and torch.equal(x_after[0][1], x_before[0][1])
    assert not torch.equal(x_after[0][0], x_before[0][0])
    assert state.inner.step.tolist() == [4, 3]


# ---------------------------------------------------------------------------------------------
# keras semantics: keras's ScheduleFreeAdamW
# ---------------------------------------------------------------------------------------------

KERAS_TRIALS = [
    {"learning_rate": 0.01},
    {"learning_rate": 0.02, "beta_1": 0.8, "beta_2": 0.95, "epsilon": 1e-6},
    {"learning_rate": 0.005, "weight_decay": 0.1},
]


def keras_lr(x: float) -> float:
    return float(torch.tensor(x, dtype=torch.float32))  # keras keeps η in a float32 variable


@pytest.mark.skipif(keras is None, reason="keras is not installed")
def test_keras_trials_follow_keras_and_are_evaluated_at_y() -> None:
    """keras on its torch backend steps z, then y ← lerp(y, z, 1/(k + 1)) (its momentum_old is
    the variable it has just stepped), decays y first, and evaluates with y."""
    given = [{**t, "learning_rate": keras_lr(t["learning_rate"])} for t in KERAS_TRIALS]
    trials = [resolve("schedule_free_adamw", "keras", t) for t in given]
    for v in trials:  # keras computes 1 − λη in float32: the λ that reproduces its factor
        if v["weight_decay"]:
            factor = torch.tensor(1.0, dtype=torch.float32) - torch.tensor(
                v["weight_decay"], dtype=torch.float32
            ) * torch.tensor(v["learning_rate"], dtype=torch.float32)
            v["weight_decay"] = (1.0 - float(factor)) / v["learning_rate"]
    kernel = inplace("schedule_free_adamw", "keras", trials[0])
    hp = stack_hyperparameters("schedule_free_adamw", trials)
    params = [torch.stack([p] * len(trials)) for p in start()]
    state = kernel.init(params)
    variables = [
        [keras.Variable(p.numpy(), dtype="float64") for p in start()] for _ in KERAS_TRIALS
    ]
    opts = [keras.optimizers.ScheduleFreeAdamW(**t) for t in KERAS_TRIALS]
    for t in range(STEPS):
        rows = [gradient([p[k] for p in params], t) for k in range(len(trials))]
        kernel.update_(
            [torch.stack([r[i] for r in rows]) for i in range(len(params))], state, params, hp
        )
        for k, (opt, vs) in enumerate(zip(opts, variables, strict=True)):
            grads = gradient([v.value.detach() for v in vs], t)
            opt.apply_gradients(zip(grads, vs, strict=True))
            for ours, v in zip(params, vs, strict=True):
                torch.testing.assert_close(ours[k], v.value.detach(), rtol=1e-9, atol=1e-12)
    for x, y in zip(evaluation_weights(state, params), params, strict=True):
        assert torch.equal(x, y)


@pytest.mark.skipif(keras is None, reason="keras is not installed")
def test_keras_tests_as_properties() -> None:
    """keras's schedule_free_adamw_test.py: test_single_step (it moves), test_warmup (a smaller
    first step), test_multiple_steps (a positive gradient lowers every weight), and
    test_weight_decay's zero gradient, whose first step leaves y at z = θ₀ (c = 1)."""
    x = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    opt = create([x], "schedule_free_adamw", semantics="keras", learning_rate=0.5)
    x.grad = torch.tensor([1.0, 6.0, 7.0, 2.0])
    opt.step()
    assert not torch.allclose(x.detach(), torch.tensor([1.0, 2.0, 3.0, 4.0]), rtol=1e-4, atol=1e-4)

    moved = []
    for warmup in (0, 10):
        w = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
        opt = create([w], "schedule_free_adamw", semantics="keras", lr=0.5, warmup_steps=warmup)
        w.grad = torch.ones(3)
        opt.step()
        moved.append((w.detach() - torch.tensor([1.0, 2.0, 3.0])).abs())
    assert (moved[1] < moved[0]).all()

    w = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    opt = create([w], "schedule_free_adamw", semantics="keras", lr=0.01)
    for _ in range(10):
        w.grad = torch.full((3,), 0.1)
        opt.step()
    assert (w.detach() < torch.tensor([1.0, 2.0, 3.0])).all()

    w = torch.tensor(2.0, requires_grad=True)
    opt = create([w], "schedule_free_adamw", semantics="keras", lr=1.0, weight_decay=0.004)
    w.grad = torch.tensor(0.0)
    opt.step()
    variable = keras.Variable(2.0)
    keras.optimizers.ScheduleFreeAdamW(learning_rate=1.0, weight_decay=0.004).apply_gradients(
        [(torch.tensor(0.0), variable)]
    )
    assert float(w.detach()) == float(variable.numpy()) == 2.0


@pytest.mark.parametrize(
    ("optimizer", "given", "elsewhere"),
    [
        ("adam", {}, False),
        ("adam", {"use_ema": True}, False),  # an average of the weights, not the rule's point
        ("schedule_free_adamw", {}, True),
        ("schedule_free_sgd", {}, True),
        ("schedule_free_adamw", {"use_ema": True}, False),  # the EMA is what is evaluated
    ],
)
def test_which_rules_evaluate_elsewhere(optimizer, given, elsewhere):
    from optsweep import optim
    from optsweep.optim import registry

    hp = registry.resolve(optimizer, "torch", given)
    state = optim.build(optimizer, "torch", hp).init([torch.zeros(2, 3)])
    assert optim.evaluates_elsewhere(state) is elsewhere
