"""Dynamic loss scaling per trial, against keras's LossScaleOptimizer and torch's GradScaler.

The gradients fed are the true ones times the current scale, with infinities injected at some
steps: there the step must be skipped (parameters and state as they were) and the scale
halved; after ``dynamic_growth_steps`` good steps it doubles.
"""

from __future__ import annotations

import pytest
import torch
from _keras import ARRAY_WARNING, keras
from torch import Tensor

from optsweep.optim import create, current_loss_scale, inplace, resolve, stack_hyperparameters

pytestmark = pytest.mark.filterwarnings(ARRAY_WARNING)

F64 = torch.float64
STEPS = 14
OVERFLOWS = {2, 3, 7}  # steps whose gradients hold an infinity
LR = 2.0**-6  # exact in keras's float32 learning-rate variable
SETTINGS = {"dynamic_loss_scale": True, "initial_scale": 8.0, "dynamic_growth_steps": 3}


def start() -> list[Tensor]:
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(3, 2, generator=gen, dtype=F64), torch.randn(4, generator=gen, dtype=F64)]


def true_grads(params: list[Tensor], t: int) -> list[Tensor]:
    return [2 * (p - 0.5) + 0.1 * torch.sin(p * (t + 1)) for p in params]


def scaled(grads: list[Tensor], scale: float, t: int, overflows: set[int]) -> list[Tensor]:
    out = [g * scale for g in grads]
    if t in overflows:
        out[0] = out[0].clone()
        out[0][0, 0] = float("inf")
    return out


def run_wrapper(semantics: str, overflows: set[int] = OVERFLOWS) -> tuple[Tensor, list[float]]:
    """Our trajectory and the scale before each step (the torch.optim wrapper)."""
    params = [p.clone().requires_grad_(True) for p in start()]
    opt = create(params, "adam", semantics=semantics, lr=LR, **SETTINGS)
    traj, scales = [], []
    for t in range(STEPS):
        scale = float(opt.scale_loss(torch.tensor(1.0, dtype=F64)))
        scales.append(scale)
        grads = scaled(true_grads([p.detach() for p in params], t), scale, t, overflows)
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        opt.step()
        traj.append(torch.cat([p.detach().flatten() for p in params]))
    return torch.stack(traj), scales


def run_keras() -> tuple[Tensor, list[float]]:
    variables = [keras.Variable(p.numpy(), dtype="float64") for p in start()]
    inner = keras.optimizers.Adam(learning_rate=LR)
    opt = keras.optimizers.LossScaleOptimizer(inner, initial_scale=8.0, dynamic_growth_steps=3)
    opt.build(variables)
    traj, scales = [], []
    for t in range(STEPS):
        scale = float(opt.dynamic_scale.numpy())
        scales.append(scale)
        current = [v.value.detach() for v in variables]
        opt.apply(scaled(true_grads(current, t), scale, t, OVERFLOWS), variables)
        traj.append(torch.cat([v.value.detach().flatten() for v in variables]))
    return torch.stack(traj), scales


def run_grad_scaler() -> tuple[Tensor, list[float]]:
    params = [p.clone().requires_grad_(True) for p in start()]
    opt = torch.optim.Adam(params, lr=LR)
    scaler = torch.amp.GradScaler("cpu", init_scale=8.0, growth_interval=3)
    traj, scales = [], []
    for t in range(STEPS):
        scale = float(scaler.scale(torch.tensor(1.0)))  # as scaler.scale(loss).backward() would
        scales.append(scale)
        grads = scaled(true_grads([p.detach() for p in params], t), scale, t, OVERFLOWS)
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        scaler.step(opt)
        scaler.update()
        traj.append(torch.cat([p.detach().flatten() for p in params]))
    return torch.stack(traj), scales


def test_keras_semantics_follow_keras_loss_scale_optimizer() -> None:
    if keras is None:
        pytest.skip("keras is not installed")
    ours, our_scales = run_wrapper("keras")
    ref, ref_scales = run_keras()
    assert our_scales == ref_scales
    assert ref_scales[:9] == [8.0, 8.0, 8.0, 4.0, 2.0, 2.0, 2.0, 4.0, 2.0]
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-12)
    assert torch.equal(ours[2], ours[1]) and torch.equal(ours[3], ours[1])  # skipped


def test_torch_semantics_follow_grad_scaler() -> None:
    ours, our_scales = run_wrapper("torch")
    ref, ref_scales = run_grad_scaler()
    assert our_scales == ref_scales
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kernels", ["batched", "per_trial"])
def test_a_trial_that_overflows_skips_alone(kernels: str) -> None:
    """Two trials stacked: the first never overflows, the second at OVERFLOWS; each follows
    its own run alone, with its own step count and scale."""
    values = resolve("adam", "torch", {"lr": LR, **SETTINGS})
    kernel = inplace("adam", "torch", values, kernels=kernels)  # type: ignore[arg-type]
    hp = stack_hyperparameters("adam", [values, values])
    params = [torch.stack([p, p]) for p in start()]
    state = kernel.init(params)
    for t in range(STEPS):
        scale = current_loss_scale(state).expand(2).tolist()
        rows = [
            scaled(true_grads([p[k] for p in params], t), scale[k], t, OVERFLOWS if k else set())
            for k in range(2)
        ]
        grads = [torch.stack([rows[0][i], rows[1][i]]) for i in range(len(params))]
        kernel.update_(grads, state, params, hp)
    alone = {k: run_wrapper("torch", OVERFLOWS if k else set())[0][-1] for k in range(2)}
    for k in range(2):
        torch.testing.assert_close(torch.cat([p[k].flatten() for p in params]), alone[k])
    assert state.inner.step.tolist() == [STEPS, STEPS - len(OVERFLOWS)]
    assert current_loss_scale(state).tolist() != [8.0, 8.0]


@pytest.mark.parametrize(
    ("given", "pattern"),
    [
        ({"dynamic_loss_scale": True, "loss_scale_factor": 8.0}, "both scale the loss"),
        ({"dynamic_loss_scale": True, "gradient_accumulation_steps": 2}, "cannot skip alone"),
        ({"initial_scale": 0.0}, r"initial_scale > 0"),
    ],
)
def test_conflicting_settings_are_refused(given: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        resolve("adam", "torch", given)


@pytest.mark.parametrize("semantics", ["torch", "keras"])
@pytest.mark.parametrize("optimizer", ["adafactor", "muon", "prodigy", "schedule_free_adamw"])
def test_a_skipped_first_step_leaves_state_allocated_later_fresh(
    optimizer: str, semantics: str
) -> None:
    """Adafactor's factored moments and Muon's AdamW v are allocated on the first update (the
    trial axis tells their shapes), Prodigy's d starts at d₀ there, Schedule-Free's η_max and
    weight sum too: a trial whose first step overflows keeps them fresh and then follows its own
    run alone (a stack of one: the same bfloat16 path for Muon)."""
    values = resolve(optimizer, semantics, {"learning_rate": LR, **SETTINGS})
    kernel = inplace(optimizer, semantics, values, kernels="batched")
    overflows = [set(), {0, 2}]

    def run(trials: list[int]) -> list[Tensor]:
        hp = stack_hyperparameters(optimizer, [values] * len(trials))
        params = [torch.stack([p] * len(trials)) for p in start()]
        state = kernel.init(params)
        for t in range(STEPS):
            scale = current_loss_scale(state).expand(len(trials)).tolist()
            rows = [
                scaled(true_grads([p[j] for p in params], t), scale[j], t, overflows[k])
                for j, k in enumerate(trials)
            ]
            grads = [torch.stack([r[i] for r in rows]) for i in range(len(params))]
            kernel.update_(grads, state, params, hp)
        return params

    both = run([0, 1])
    for k in range(2):
        alone = run([k])
        for b, a in zip(both, alone, strict=True):
            torch.testing.assert_close(b[k], a[0], rtol=1e-12, atol=1e-14)
