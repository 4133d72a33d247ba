"""The weights' moving average (keras ``use_ema``), against Keras 3, per trial, and in a sweep.

a ← μ a + (1 − μ) θ after every update (a₁ = θ₁); every ``ema_overwrite_frequency`` updates
θ ← a; a sweep evaluates with a swapped in (keras's ``SwapEMAWeights``), trains with θ.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from _keras import ARRAY_WARNING, keras
from torch import Tensor

from optsweep.config import expand, load_sweep
from optsweep.data import load_dataset
from optsweep.engine import train_batch
from optsweep.models import build_model
from optsweep.optim import create, inplace, resolve, stack_hyperparameters

pytestmark = pytest.mark.filterwarnings(ARRAY_WARNING)

F64 = torch.float64
STEPS = 12
LR = 2.0**-5  # exact in keras's float32 learning-rate variable


def start() -> list[Tensor]:
    gen = torch.Generator().manual_seed(3)
    return [torch.randn(2, 3, generator=gen, dtype=F64), torch.randn(5, generator=gen, dtype=F64)]


def grads_at(params: list[Tensor], t: int) -> list[Tensor]:
    return [2 * (p - 0.5) + 0.2 * torch.cos(p * (t + 1)) for p in params]


def run_ours(optimizer: str, settings: dict) -> tuple[Tensor, Tensor]:
    """(weights, averages) after each call, through the torch.optim wrapper."""
    params = [p.clone().requires_grad_(True) for p in start()]
    opt = create(params, optimizer, semantics="keras", learning_rate=LR, **settings)
    weights, averages = [], []
    for t in range(STEPS):
        for p, g in zip(params, grads_at([p.detach() for p in params], t), strict=True):
            p.grad = g
        opt.step()
        weights.append(torch.cat([p.detach().flatten() for p in params]))
        averages.append(torch.cat([opt.state[p]["average"].flatten() for p in params]))
    return torch.stack(weights), torch.stack(averages)


def run_keras(optimizer: str, settings: dict) -> tuple[Tensor, Tensor]:
    variables = [keras.Variable(p.numpy(), dtype="float64") for p in start()]
    cls = {"adam": keras.optimizers.Adam, "momentum": keras.optimizers.SGD}[optimizer]
    extra = {"momentum": 0.9} if optimizer == "momentum" else {}
    opt = cls(learning_rate=LR, **extra, **settings)
    opt.build(variables)
    weights, averages = [], []
    for t in range(STEPS):
        current = [v.value.detach() for v in variables]
        opt.apply_gradients(zip(grads_at(current, t), variables, strict=True))
        weights.append(torch.cat([v.value.detach().flatten() for v in variables]))
        average = opt._model_variables_moving_average
        averages.append(
            torch.cat([torch.as_tensor(np.asarray(a.value)).flatten() for a in average])
        )
    return torch.stack(weights), torch.stack(averages)


KERAS_CASES = [
    ("adam", {"use_ema": True}),
    ("adam", {"use_ema": True, "ema_momentum": 0.8}),
    ("adam", {"use_ema": True, "ema_momentum": 0.5, "ema_overwrite_frequency": 4}),
    ("momentum", {"use_ema": True, "ema_momentum": 0.9, "gradient_accumulation_steps": 2}),
    ("momentum", {"use_ema": True, "ema_overwrite_frequency": 3, "gradient_accumulation_steps": 2}),
]


@pytest.mark.parametrize(
    ("optimizer", "settings"), KERAS_CASES, ids=[f"{o}-{s}" for o, s in KERAS_CASES]
)
def test_follows_keras(optimizer: str, settings: dict) -> None:
    if keras is None:
        pytest.skip("keras is not installed")
    # keras's μ acts as a float32 (μ = 0.5 matches to rounding either way; 0.99 differs by
    # ~1e-7 relative unless fed fl32(0.99)), as its learning rate does (test_optim_parity)
    mu = float(np.float32(settings.get("ema_momentum", 0.99)))
    ours, our_average = run_ours(optimizer, {**settings, "ema_momentum": mu})
    ref, ref_average = run_keras(optimizer, settings)
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(our_average, ref_average, rtol=1e-9, atol=1e-12)
    assert not torch.equal(our_average[-1], ours[-1]) or settings.get("ema_overwrite_frequency")


def test_trials_with_their_own_momentum_follow_their_own_runs() -> None:
    trials = [
        resolve("adam", "keras", {"lr": LR, "use_ema": True, "ema_momentum": mu})
        for mu in (0.5, 0.9)
    ]
    kernel = inplace("adam", "keras", trials[0], kernels="batched")
    hp = stack_hyperparameters("adam", trials)
    params = [torch.stack([p, p]) for p in start()]
    state = kernel.init(params)
    for t in range(STEPS):
        rows = [grads_at([p[k] for p in params], t) for k in range(2)]
        grads = [torch.stack([rows[0][i], rows[1][i]]) for i in range(len(params))]
        kernel.update_(grads, state, params, hp)
    for k, mu in enumerate((0.5, 0.9)):
        _, average = run_ours("adam", {"use_ema": True, "ema_momentum": mu})
        got = torch.cat([a[k].flatten() for a in state.average])
        torch.testing.assert_close(got, average[-1], rtol=1e-9, atol=1e-12)


SWEEP = """\
name: t
dataset: mnist-mini
subset: {{train: 256, test: 128}}
model: mlp
train: {{epochs: 2, batch_size: 64, log_every: 1}}
optimizers:
  - name: adam
    semantics: keras
    grid: {{learning_rate: [0.01, 0.001]}}
{extra}"""


@pytest.mark.parametrize(
    ("extra", "same_evaluation"),
    [("    use_ema: true\n    ema_momentum: 0.0\n", True), ("    use_ema: true\n", False)],
    ids=["momentum-0", "momentum-0.99"],
)
def test_a_sweep_trains_with_the_weights_and_evaluates_with_their_average(
    write_yaml, extra: str, same_evaluation: bool
) -> None:
    data = load_dataset("mnist-mini", None, torch.device("cpu"), 256, 128)
    net = build_model("mlp", data.input_shape, data.num_classes)
    outcomes = []
    for text in (SWEEP.format(extra=""), SWEEP.format(extra=extra)):
        spec = load_sweep(write_yaml(text))
        train = dataclasses.replace(spec.train)
        outcomes.append(train_batch(data, net, expand(spec), train, device=torch.device("cpu")))
    for plain, averaged in zip(*outcomes, strict=True):
        assert plain.step_losses == pytest.approx(averaged.step_losses, rel=1e-6)  # trained alike
        same = [a.test_loss == pytest.approx(b.test_loss, rel=1e-6)
                for a, b in zip(plain.epochs, averaged.epochs, strict=True)]  # fmt: skip
        assert all(same) if same_evaluation else not any(same)
