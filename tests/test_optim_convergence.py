"""Every optimizer, at its documented defaults, reduces a quadratic and Rosenbrock.

Defaults are small for some (keras Adadelta's η = 0.001 barely moves), so the claim is
"reduces", not "solves"; a second table checks that a reasonable rate gets close. The
one exception is a property of the problem: keras's SGD default η = 0.01 is too large
for Rosenbrock's valley, and those cases are expected to diverge.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from optsweep.optim import OPTIMIZERS, SEMANTICS, build, resolve, stack_hyperparameters

F64 = torch.float64
STEPS = 300
CURVATURE = torch.tensor([1.0, 4.0, 0.5], dtype=F64)
CENTER = torch.tensor([1.0, -2.0, 0.5], dtype=F64)


def quadratic(x: Tensor) -> Tensor:
    return 0.5 * (CURVATURE * (x - CENTER) ** 2).sum()


def rosenbrock(x: Tensor) -> Tensor:
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2


PROBLEMS: dict[str, tuple[Callable[[Tensor], Tensor], Tensor]] = {
    "quadratic": (quadratic, torch.zeros(3, dtype=F64)),
    "rosenbrock": (rosenbrock, torch.tensor([-0.5, 0.5], dtype=F64)),
}


def minimize(optimizer: str, semantics: str, problem: str, **given: float) -> tuple[float, float]:
    """(f at start, f at the end) after STEPS updates."""
    f, x0 = PROBLEMS[problem]
    values = resolve(optimizer, semantics, given)
    rule = build(optimizer, semantics, values)
    hp = {k: v[0] for k, v in stack_hyperparameters(optimizer, [values]).items()}
    params = [x0.clone()]
    state = rule.init(params)
    for _ in range(STEPS):
        x = params[0].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(f(x), x)
        params, state = rule.update([grad], state, params, hp)
    return float(f(x0)), float(f(params[0]))


# Keras's SGD default η = 0.01 exceeds 2/λmax of Rosenbrock's Hessian near its valley
# (λmax ≈ 1000 at the minimum): gradient descent must diverge there, momentum or not.
DIVERGE = pytest.mark.xfail(strict=True, reason="η = 0.01 > 2/λmax ≈ 2e-3: must diverge")
EXPECTED_TO_DIVERGE = {(o, "keras", "rosenbrock") for o in ("sgd", "momentum", "nesterov")}
# ASGD's default η = 0.01 (both conventions: torch's) too, its decay 1/(1 + 1e-4·ηt)^0.75 slow
EXPECTED_TO_DIVERGE |= {("asgd", s, "rosenbrock") for s in ("torch", "keras")}
# Schedule-Free SGD's default η = 1 (schedulefree's) is far above it too: z takes SGD's steps
DIVERGE_SF = pytest.mark.xfail(strict=True, reason="η = 1 > 2/λmax ≈ 2e-3: must diverge")
EXPECTED_SF = {("schedule_free_sgd", s, "rosenbrock") for s in ("torch", "keras")}
XFAILS = {key: DIVERGE for key in EXPECTED_TO_DIVERGE} | {key: DIVERGE_SF for key in EXPECTED_SF}

CASES = [
    pytest.param(o, s, p, id=f"{o}-{s}-{p}", marks=[XFAILS[o, s, p]] if (o, s, p) in XFAILS else [])
    for o in OPTIMIZERS
    for s in SEMANTICS
    for p in PROBLEMS
]


@pytest.mark.parametrize(("optimizer", "semantics", "problem"), CASES)
def test_defaults_reduce(optimizer: str, semantics: str, problem: str) -> None:
    start, end = minimize(optimizer, semantics, problem)
    assert end < start


# A rate that suits each rule on the quadratic (adaptive rules move ~η per step).
GOOD_RATES = {
    "sgd": 0.2,
    "momentum": 0.05,
    "nesterov": 0.05,
    "adagrad": 0.5,
    "rmsprop": 0.01,
    "adadelta": 1.0,
    "adam": 0.05,
    "amsgrad": 0.05,
    "adamax": 0.05,
    "nadam": 0.05,
    "nadamax": 0.05,
    "adamw": 0.05,
    "radam": 0.05,
    "rprop": 0.01,  # Δ₀ only: Rprop adapts its own steps
    "asgd": 0.2,
    "adafactor": 0.1,  # its step is relative: ρₜ·max(ε₂, RMS(θ))
    "lamb": 0.05,
    "lion": 0.02,  # a sign step of η per element; at 0.01 β₂ = 0.99 still swings at step 300
    "muon": 0.05,  # these problems are vectors: the AdamW half
    "ftrl": 0.5,
    "ademamix": 0.05,
    "prodigy": 1.0,  # η multiplies the estimated d: the reference's advice is to leave it at 1
    "soap": 0.05,  # a 3-vector has no factor: Adam (β's 0.95) with its first step skipped
    "schedule_free_adamw": 0.05,
    "schedule_free_sgd": 0.2,
}


@pytest.mark.parametrize("semantics", SEMANTICS)
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_tuned_rate_solves_quadratic(optimizer: str, semantics: str) -> None:
    kwargs = {"learning_rate": GOOD_RATES[optimizer]}
    if optimizer == "adamw":
        kwargs["weight_decay"] = 0.0
    if optimizer == "adadelta":
        kwargs["epsilon"] = 1e-3  # AdaDelta's first steps are ~√ε: start it moving
    start, end = minimize(optimizer, semantics, "quadratic", **kwargs)
    assert end < 1e-2 * start
