"""``optsweep.optim.create``: a torch.optim.Optimizer running the same rule.

Its every step meets the oracles in ``test_optim_parity`` (the wrapper is one of the forms
there); here: torch.optim's other keywords (maximize, tensor hyperparameters,
decoupled_weight_decay, implementation flags) against torch.optim, ``state_dict`` round trips,
param groups, torch's lr schedulers, a plain nn.Module loop, keras and torch names.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from _keras import ARRAY_WARNING, keras
from torch import Tensor, nn

from optsweep.optim import (
    OPTIMIZERS,
    SEMANTICS,
    SweepOptimizer,
    create,
    inplace,
    resolve,
    stack_hyperparameters,
)

F64 = torch.float64
SHAPES = ((3, 2), (4,))

# Knobs that add state or reductions, so the round trip covers them.
KNOBS: dict[str, dict[str, Any]] = {
    "plain": {},
    "accumulate+clip": {"gradient_accumulation_steps": 3, "global_clipnorm": 0.5},
    "ema+dynamic-scale": {
        "use_ema": True,
        "ema_overwrite_frequency": 4,
        "dynamic_loss_scale": True,
    },
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
    pytest.param(o, s, k, id=f"{o}-{s}-{k}")
    for o in OPTIMIZERS
    for s in SEMANTICS
    for k in KNOBS
    if not set(OPTIMIZERS[o].refuses) & set(KNOBS[k])  # soap refuses dynamic loss scaling
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


@pytest.fixture
def float64():
    """torch.optim keeps scalar state (NAdam's mu_product) in the default dtype."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    yield
    torch.set_default_dtype(old)


def t(x: float) -> Tensor:
    return torch.tensor(x, dtype=F64)


# torch.optim's keywords beyond the rule's: (our optimizer, torch.optim class, keyword arguments
# both take as written). Every step of ours must equal torch.optim's (float64).
TORCH_KEYWORDS = [
    ("sgd", "SGD", {"lr": 0.05, "maximize": True}),
    ("sgd", "SGD", {"lr": t(0.05), "weight_decay": t(0.01), "foreach": False}),
    ("momentum", "SGD", {"lr": 0.05, "momentum": 0.9, "maximize": True, "foreach": True}),
    ("momentum", "SGD", {"lr": t(0.05), "momentum": 0.9, "nesterov": True, "maximize": True}),
    ("adagrad", "Adagrad", {"lr": 0.1, "lr_decay": 0.01, "maximize": True, "fused": False}),
    ("rmsprop", "RMSprop", {"lr": t(0.01), "alpha": 0.9, "centered": True, "maximize": True}),
    ("rmsprop", "RMSprop", {"lr": 0.01, "momentum": 0.5, "capturable": False}),
    ("adadelta", "Adadelta", {"lr": t(1.0), "weight_decay": 0.01, "maximize": True}),
    ("adam", "Adam", {"lr": t(0.01), "betas": (t(0.8), t(0.99)), "maximize": True}),
    ("adam", "Adam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("adam", "Adam", {"lr": 0.01, "amsgrad": True, "maximize": True, "fused": True}),
    ("adam", "Adam", {"lr": 0.01, "weight_decay": 0.1, "differentiable": False}),
    ("adamw", "AdamW", {"lr": t(0.01), "betas": (t(0.9), t(0.95)), "maximize": True}),
    ("adamax", "Adamax", {"lr": t(0.01), "weight_decay": 0.01, "maximize": True}),
    ("nadam", "NAdam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("nadam", "NAdam", {"lr": t(0.01), "momentum_decay": 0.01, "maximize": True}),
    # optim_db's RAdam inputs with torch's keywords: maximize, tensor lr, decoupled decay
    ("radam", "RAdam", {"lr": 0.01, "weight_decay": 0.1, "maximize": True}),
    ("radam", "RAdam", {"lr": t(0.001), "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("radam", "RAdam", {"lr": 0.01, "betas": (t(0.8), t(0.9)), "foreach": False}),
    ("radam", "RAdam", {"lr": 0.01, "betas": (0.8, 0.9), "foreach": True}),
    # optim_db's Rprop and ASGD inputs with torch's keywords
    ("rprop", "Rprop", {"maximize": True}),
    ("rprop", "Rprop", {"lr": t(0.001), "etas": (0.5, 1.5), "step_sizes": (2e-6, 100)}),
    ("asgd", "ASGD", {"maximize": True, "weight_decay": 0.1}),
    ("asgd", "ASGD", {"lr": t(0.001), "t0": 3, "lambd": 0.1, "foreach": True}),
    # optim_db's Adafactor inputs with torch's keywords
    ("adafactor", "Adafactor", {"weight_decay": 0.1, "maximize": True}),
    ("adafactor", "Adafactor", {"lr": t(0.05), "beta2_decay": -1.0, "foreach": False}),
    ("adafactor", "Adafactor", {"eps": (None, 1e-2), "d": 1.5, "foreach": True}),
]


def test_asgd_average_is_torch_asgd_average(float64) -> None:
    """ASGD's average ax is state, not part of the path: compared with torch's own."""
    kwargs = {"lr": 0.05, "t0": 4, "lambd": 0.1, "alpha": 0.5}
    ours_params, ref_params = make_params(), make_params()
    ours, ref = create(ours_params, "asgd", **kwargs), torch.optim.ASGD(ref_params, **kwargs)
    for step in range(15):
        for params, opt in ((ours_params, ours), (ref_params, ref)):
            set_grads(params, step)
            opt.step()
    for a, b in zip(ours_params, ref_params, strict=True):
        assert not torch.equal(ours.state[a]["ax"], a)  # averaging has begun
        torch.testing.assert_close(ours.state[a]["ax"], ref.state[b]["ax"], rtol=1e-12, atol=0)
        torch.testing.assert_close(ours.state[a]["eta"], ref.state[b]["eta"], rtol=1e-15, atol=0)


def test_prodigy_d_is_the_reference_d_and_kept_per_trial(float64) -> None:
    """Prodigy's d, d_max and d_numerator are state: compared with prodigyopt's (group values)
    in the wrapper's state_dict, and per trial in the batched kernel's state."""
    prodigyopt = pytest.importorskip("prodigyopt")
    kwargs = {"lr": 0.5, "d0": 1e-3, "weight_decay": 0.01, "use_bias_correction": True}
    ours_params, ref_params = make_params(), make_params()
    ours = create(ours_params, "prodigy", **kwargs)
    ref = prodigyopt.Prodigy(ref_params, **kwargs)
    for step in range(15):
        for params, opt in ((ours_params, ours), (ref_params, ref)):
            set_grads(params, step)
            opt.step()
    group = ref.param_groups[0]
    saved = ours.state_dict()["state"]
    for i in range(len(ours_params)):
        for name in ("d", "d_max", "d_numerator"):
            torch.testing.assert_close(
                saved[i][name], torch.tensor(group[name], dtype=F64), rtol=1e-12, atol=0
            )
        assert int(saved[i]["k"]) == group["k"] == 15
    assert group["d"] > 1e-3  # d has grown from d₀

    values = [resolve("prodigy", "torch", {"d0": d0}) for d0 in (1e-3, 1e-2)]
    kernel = inplace("prodigy", "torch", values[0])
    hp = stack_hyperparameters("prodigy", values)
    stacked = [torch.stack([p.detach()] * 2) for p in make_params()]
    state = kernel.init(stacked)
    singles = []
    for k in range(2):
        params = [p.detach().clone() for p in make_params()]
        single_state = kernel.init(params)
        for step in range(10):
            grads = [2 * (p - 0.5) + torch.sin(p * (step + 1)) for p in params]
            kernel.update_(grads, single_state, params, {n: v[k] for n, v in hp.items()})
        singles.append(single_state)
    for step in range(10):
        grads = [2 * (p - 0.5) + torch.sin(p * (step + 1)) for p in stacked]
        kernel.update_(grads, state, stacked, hp)
    assert state.d.shape == (2,)
    for k in range(2):
        torch.testing.assert_close(state.d[k], singles[k].d, rtol=1e-12, atol=0)
    assert state.d[0] != state.d[1]


@pytest.mark.parametrize(
    ("optimizer", "torch_class", "kwargs"),
    TORCH_KEYWORDS,
    ids=[f"{o}-{'-'.join(k)}" for o, _, k in TORCH_KEYWORDS],
)
def test_torch_keywords_step_as_torch_optim(optimizer, torch_class, kwargs, float64) -> None:
    ours_params, ref_params = make_params(), make_params()
    ours = create(ours_params, optimizer, **kwargs)
    ref = getattr(torch.optim, torch_class)(ref_params, **kwargs)
    start = [p.detach().clone() for p in ours_params]
    for step in range(12):
        for params, opt in ((ours_params, ours), (ref_params, ref)):
            set_grads(params, step)
            opt.step()
        for a, b in zip(ours_params, ref_params, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    assert all(not torch.equal(a, b) for a, b in zip(ours_params, start, strict=True))


def test_maximize_ascends_and_leaves_the_gradient() -> None:
    params = make_params()
    opt = create(params, "adam", lr=0.1, maximize=True)
    set_grads(params, 0)
    grads = [p.grad.clone() for p in params]
    before = [p.detach().clone() for p in params]
    opt.step()
    for p, g, b in zip(params, grads, before, strict=True):
        assert torch.equal(p.grad, g)  # the step worked on a copy
        assert torch.all(torch.sign(p.detach() - b) == torch.sign(g))  # with the gradient
    assert opt.param_groups[0]["maximize"] is True


def test_a_tensor_learning_rate_is_read_at_every_step() -> None:
    lr = torch.tensor(0.1, dtype=F64)
    a, b = make_params(), make_params()
    ours, ref = create(a, "sgd", lr=lr), torch.optim.SGD(b, lr=lr)
    for step in range(4):
        if step == 2:
            lr.mul_(0.5)  # in place: both read the new value
        for params, opt in ((a, ours), (b, ref)):
            set_grads(params, step)
            opt.step()
    assert ours.param_groups[0]["lr"] is lr
    for p, q in zip(a, b, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    ("betas", "rtol"),
    [
        ((torch.tensor(0.9, dtype=F64), torch.tensor(0.99, dtype=F64)), 1e-12),
        ((torch.tensor([0.9], dtype=F64), torch.tensor([[0.99]], dtype=F64)), 1e-12),
        # torch's optim_db case: float32 tensors, whose bias corrections torch computes in
        # float32 and optsweep in float64 (1e-7 apart relative, measured; left as is)
        ((torch.tensor([[[0.9]]]), torch.tensor([[0.99]])), 1e-6),
    ],
    ids=["scalars", "shapes", "torch-case-float32"],
)
def test_betas_may_be_any_one_element_tensors(betas: tuple[Tensor, Tensor], rtol: float) -> None:
    a, b = make_params(), make_params()
    ours = create(a, "adam", lr=0.01, betas=betas)
    ref = torch.optim.Adam(b, lr=0.01, betas=betas, foreach=False)
    for step in range(3):
        for params, opt in ((a, ours), (b, ref)):
            set_grads(params, step)
            opt.step()
    for p, q in zip(a, b, strict=True):
        torch.testing.assert_close(p, q, rtol=rtol, atol=0)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"capturable": True}, r"adam: capturable=True: CUDA-graph capture .* not supported"),
        ({"differentiable": True}, r"adam: differentiable=True: autograd through the step"),
        ({"lr": torch.tensor([0.1, 0.2])}, r"learning_rate = a tensor of shape \(2,\)"),
        ({"maximize": "yes"}, r"adam: maximize = 'yes' is not a boolean"),
    ],
    ids=["capturable", "differentiable", "lr-vector", "maximize-word"],
)
def test_what_the_step_cannot_do_is_refused_in_one_line(kwargs, pattern) -> None:
    with pytest.raises(ValueError, match=pattern):
        create(make_params(), "adam", **kwargs)


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


@pytest.mark.filterwarnings(ARRAY_WARNING)
@pytest.mark.parametrize(
    "make_rate",
    [
        lambda k: k.optimizers.schedules.ExponentialDecay(0.01, decay_steps=2, decay_rate=0.5),
        lambda k: k.optimizers.schedules.CosineDecay(0.0, 8, warmup_target=0.02, warmup_steps=3),
        lambda k: lambda: 2.0**-7,
    ],
    ids=["exponential-decay", "warmup-cosine", "callable"],
)
def test_a_keras_schedule_or_callable_rate_steps_as_keras(make_rate) -> None:
    if keras is None:
        pytest.skip("keras is not installed")
    ours_params = make_params()
    ours = create(ours_params, "adam", semantics="keras", learning_rate=make_rate(keras))
    variables = [keras.Variable(p.detach().numpy(), dtype="float64") for p in make_params()]
    ref = keras.optimizers.Adam(learning_rate=make_rate(keras))
    for step in range(12):
        set_grads(ours_params, step)
        ours.step()
        grads = [2 * (v.value.detach() - 0.5) + torch.sin(v.value.detach() * (step + 1))
                 for v in variables]  # fmt: skip
        ref.apply_gradients(zip(grads, variables, strict=True))
        for p, v in zip(ours_params, variables, strict=True):
            torch.testing.assert_close(p.detach(), v.value.detach(), rtol=1e-9, atol=1e-12)
    assert ours.param_groups[0]["iterations"] == 12


def test_only_the_learning_rate_may_be_a_schedule() -> None:
    with pytest.raises(ValueError, match=r"beta_1 = .*only the learning rate may be a schedule"):
        create(make_params(), "adam", beta_1=lambda: 0.9)
