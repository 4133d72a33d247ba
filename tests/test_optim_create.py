"""``optsweep.optim.create``: a torch.optim.Optimizer running the same rule.

It steps exactly like ``build``'s rule, round-trips ``state_dict``, works with param
groups, torch's lr schedulers and a plain nn.Module loop, and accepts keras or torch
names for the same hyperparameter.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from optsweep.optim import (
    OPTIMIZERS,
    SEMANTICS,
    SweepOptimizer,
    build,
    create,
    resolve,
    stack_hyperparameters,
)

F64 = torch.float64
SHAPES = ((3, 2), (4,))

# Knobs that add state or reductions, so the round trip covers them.
KNOBS: dict[str, dict[str, Any]] = {
    "plain": {},
    "accumulate+clip": {"gradient_accumulation_steps": 3, "global_clipnorm": 0.5},
}


def make_params(dtype: torch.dtype = F64) -> list[Tensor]:
    gen = torch.Generator().manual_seed(1)
    return [torch.randn(s, generator=gen, dtype=dtype).requires_grad_(True) for s in SHAPES]


def set_grads(params: list[Tensor], t: int) -> None:
    for p in params:
        p.grad = 2 * (p.detach() - 0.5) + torch.sin(p.detach() * (t + 1))


def run(opt: torch.optim.Optimizer, params: list[Tensor], start: int, steps: int) -> None:
    for t in range(start, start + steps):
        set_grads(params, t)
        opt.step()


CASES = [
    pytest.param(o, s, k, id=f"{o}-{s}-{k}") for o in OPTIMIZERS for s in SEMANTICS for k in KNOBS
]


@pytest.mark.parametrize(("optimizer", "semantics", "knobs"), CASES)
def test_state_dict_round_trip(optimizer: str, semantics: str, knobs: str) -> None:
    kwargs = {"learning_rate": 0.01, **KNOBS[knobs]}
    params = make_params()
    opt = create(params, optimizer, semantics=semantics, **kwargs)
    run(opt, params, 0, 5)
    saved_state = copy.deepcopy(opt.state_dict())
    saved_params = [p.detach().clone() for p in params]
    run(opt, params, 5, 7)

    resumed = [p.clone().requires_grad_(True) for p in saved_params]
    opt2 = create(resumed, optimizer, semantics=semantics, **kwargs)
    opt2.load_state_dict(saved_state)
    run(opt2, resumed, 5, 7)
    for a, b in zip(params, resumed, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("semantics", SEMANTICS)
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_create_steps_like_the_rule(optimizer: str, semantics: str) -> None:
    values = resolve(optimizer, semantics, {"learning_rate": 0.02})
    params = make_params()
    opt = create(params, optimizer, semantics=semantics, lr=0.02)
    rule = build(optimizer, semantics, values)
    hp = {k: v[0] for k, v in stack_hyperparameters(optimizer, [values]).items()}
    ours = [p.detach().clone() for p in params]
    state = rule.init(ours)
    for t in range(8):
        set_grads(params, t)
        opt.step()
        grads = [2 * (p - 0.5) + torch.sin(p * (t + 1)) for p in ours]
        ours, state = rule.update(grads, state, ours, hp)
    for a, b in zip(params, ours, strict=True):
        assert torch.equal(a.detach(), b)


def test_float32_round_trip_keeps_scalar_state_exact() -> None:
    """torch casts loaded state to the parameter dtype; counters and products must not be."""
    params = make_params(torch.float32)
    opt = create(params, "nadam", semantics="keras", gradient_accumulation_steps=2)
    run(opt, params, 0, 5)
    saved = copy.deepcopy(opt.state_dict())
    opt2 = create(
        [p.detach().clone().requires_grad_(True) for p in params],
        "nadam",
        semantics="keras",
        gradient_accumulation_steps=2,
    )
    opt2.load_state_dict(saved)
    state = opt2.state[opt2.param_groups[0]["params"][0]]
    assert state["mini_step"].dtype == torch.int64
    assert state["step"].dtype == torch.int64
    assert state["mu_product"].dtype == torch.float64
    assert state["exp_avg"].dtype == torch.float32


def test_plain_pytorch_loop_with_scheduler_and_groups() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    x = torch.randn(64, 4)
    y = x.sum(dim=1, keepdim=True).sin()
    opt = create(
        [
            {"params": model[0].parameters(), "lr": 0.01},
            {"params": model[2].parameters(), "learning_rate": 0.005, "betas": (0.8, 0.99)},
        ],
        "adam",
        semantics="keras",
        epsilon=1e-6,
    )
    assert isinstance(opt, torch.optim.Optimizer)
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.005]
    assert opt.param_groups[1]["beta_1"] == 0.8 and opt.param_groups[0]["beta_1"] == 0.9
    assert all(g["epsilon"] == 1e-6 for g in opt.param_groups)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)
    first = None
    for _ in range(100):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        scheduler.step()
        first = float(loss.detach()) if first is None else first
    assert float(loss.detach()) < 0.5 * first
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_matches_torch_adam_in_a_module_loop() -> None:
    torch.manual_seed(0)
    a = nn.Linear(5, 3).double()
    b = copy.deepcopy(a)
    x = torch.randn(16, 5, dtype=F64)
    ours = create(a.parameters(), "adam", lr=0.01, betas=(0.8, 0.99), weight_decay=0.01)
    ref = torch.optim.Adam(b.parameters(), lr=0.01, betas=(0.8, 0.99), weight_decay=0.01)
    for _ in range(30):
        for model, opt in ((a, ours), (b, ref)):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-12)


def test_keras_and_torch_names_are_the_same_parameter() -> None:
    p1, p2 = make_params(), make_params()
    o1 = create(p1, "rmsprop", alpha=0.9, eps=1e-6, lr=0.01)
    o2 = create(p2, "rmsprop", rho=0.9, epsilon=1e-6, learning_rate=0.01)
    run(o1, p1, 0, 5)
    run(o2, p2, 0, 5)
    assert all(torch.equal(a, b) for a, b in zip(p1, p2, strict=True))


def test_param_group_overrides_are_validated() -> None:
    with pytest.raises(ValueError, match=r"adam.*beta_1.*0 <= beta_1 < 1"):
        create([{"params": make_params(), "beta_1": 1.5}], "adam")
    with pytest.raises(ValueError, match=r"adam: unknown parameter 'momentum'"):
        create([{"params": make_params(), "momentum": 0.9}], "adam")


def test_is_a_sweep_optimizer_with_readable_state() -> None:
    params = make_params()
    opt = create(params, "adam", amsgrad=True)
    run(opt, params, 0, 2)
    assert isinstance(opt, SweepOptimizer)
    assert set(opt.state[params[0]]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert int(opt.state[params[0]]["step"]) == 2
