"""One batched update of K trials equals K single-trial updates, for every optimizer.

Trials differ in every continuous hyperparameter at once; structural knobs that reduce
over tensors (clipping per trial, accumulation, loss scale) are exercised too. Also: the
update is pure, keeps the parameters' dtype, and ``stack_hyperparameters`` fills neutral
values for knobs that are off.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import torch
from torch import Tensor

from optsweep.optim import OPTIMIZERS, SEMANTICS, build, resolve, stack_hyperparameters

F64 = torch.float64
K = 3
STEPS = 12
SHAPES = ((4, 3), (6,), (2, 1, 2))

# Three values per continuous hyperparameter ("default" is the semantics' default).
VARIANTS: dict[str, tuple[Any, ...]] = {
    "learning_rate": ("default", 0.03, 0.002),
    "beta_1": ("default", 0.8, 0.5),
    "beta_2": ("default", 0.95, 0.9),
    "epsilon": ("default", 1e-3, 1e-6),
    "rho": ("default", 0.5, 0.75),
    "momentum": ("default", 0.5, 0.25),
    "dampening": ("default", 0.1, 0.5),
    "initial_accumulator_value": ("default", 0.05, 0.25),
    "lr_decay": ("default", 0.01, 0.1),
    "momentum_decay": ("default", 0.01, 0.5),
    "weight_decay": ("default", 0.01, 0.1),
    "eta_minus": ("default", 0.3, 0.7),
    "eta_plus": ("default", 1.5, 1.1),
    "step_size_min": ("default", 1e-3, 1e-4),
    "step_size_max": ("default", 0.05, 1.0),
    "lambd": ("default", 0.1, 0.01),
    "alpha": ("default", 0.5, 1.0),
    "t0": ("default", 3.0, 6.0),
    "beta_2_decay": ("default", -0.5, -1.0),
    "epsilon_2": ("default", 1e-2, 1e-4),
    "clip_threshold": ("default", 1.5, 2.0),
    "clamp_value": ("default", 5.0, 1.0),
    "adam_beta_1": ("default", 0.8, 0.5),
    "adam_beta_2": ("default", 0.95, 0.9),
    "adam_weight_decay": ("default", 0.1, 0.0),
    "adam_lr_ratio": ("default", 0.5, 2.0),
    "learning_rate_power": ("default", -0.2, 0.0),
    "l1_regularization_strength": ("default", 0.05, 0.5),
    "l2_regularization_strength": ("default", 0.15, 0.0),
    "l2_shrinkage_regularization_strength": ("default", 0.01, 0.1),
    "beta": ("default", 0.3, 1.0),
    "beta_3": ("default", 0.9, 0.5),
    "d0": ("default", 1e-3, 1e-2),
    "d_coef": ("default", 0.5, 2.0),
    "growth_rate": ("default", 1.02, 1.5),
    "alpha_warmup": ("default", 5, 20),
    "beta_3_warmup": ("default", 8, 4),
    "shampoo_beta": ("default", 0.8, 0.99),
    "warmup_steps": ("default", 5, 20),
    "r": ("default", 1.0, 0.5),
    "weight_lr_power": ("default", 0.0, 1.0),
}

STRUCTURES: dict[str, dict[str, Any]] = {
    "plain": {},
    "global_clipnorm": {"global_clipnorm": 0.5},
    "clipnorm+accumulate": {"clipnorm": 0.3, "gradient_accumulation_steps": 2},
    "clipvalue+loss_scale": {"clipvalue": 0.2, "loss_scale_factor": 8.0},
}


def trial_values(optimizer: str, semantics: str, structure: Mapping[str, Any]) -> list[dict]:
    """K resolved trials differing in every continuous hyperparameter."""
    info = OPTIMIZERS[optimizer]
    trials = []
    for k in range(K):
        given: dict[str, Any] = dict(structure)
        for name, p in info.params.items():
            if p.structural or name not in VARIANTS:
                continue
            value = VARIANTS[name][k]
            if value != "default" and p.check(value) is None:
                given[name] = value
        try:
            trials.append(resolve(optimizer, semantics, given))
        except ValueError:  # e.g. torch's Nesterov with dampening: keep the default there
            given.pop("dampening", None)
            trials.append(resolve(optimizer, semantics, given))
    return trials


def grads_for(params: list[Tensor], t: int) -> list[Tensor]:
    """A deterministic, parameter-dependent gradient: ∇ of Σ (p − 0.3)² cos-modulated."""
    return [2 * (p - 0.3) + 0.5 * torch.cos(p * (t + 1)) for p in params]


def initial(seed: int = 0) -> list[Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=F64) for s in SHAPES]


CASES = [
    pytest.param(o, s, name, id=f"{o}-{s}-{name}")
    for o in OPTIMIZERS
    for s in SEMANTICS
    for name in STRUCTURES
]


@pytest.mark.parametrize(("optimizer", "semantics", "structure"), CASES)
def test_batched_equals_separate(optimizer: str, semantics: str, structure: str) -> None:
    trials = trial_values(optimizer, semantics, STRUCTURES[structure])
    rule = build(optimizer, semantics, trials[0])
    hp = stack_hyperparameters(optimizer, trials)
    assert all(v.shape == (K,) for v in hp.values())

    theta = initial()
    # Trials start from different points too.
    batched = [torch.stack([p + 0.1 * k for k in range(K)]) for p in theta]
    state = rule.init(batched)
    # torch's Muon orthogonalises in bfloat16, where one unstacked trial takes torch's addmm and
    # a stack baddbmm, which differ in the last bit now and then: its singles are stacks of one
    stack = (optimizer, semantics) == ("muon", "torch")
    singles = [[(p + 0.1 * k)[None] if stack else p + 0.1 * k for p in theta] for k in range(K)]
    single_states = [rule.init(s) for s in singles]
    for t in range(STEPS):
        batched, state = rule.update(grads_for(batched, t), state, batched, hp)
        for k in range(K):
            hp_k = {name: v[k : k + 1] if stack else v[k] for name, v in hp.items()}
            singles[k], single_states[k] = rule.update(
                grads_for(singles[k], t), single_states[k], singles[k], hp_k
            )
    for k in range(K):
        for b, s in zip(batched, singles[k], strict=True):
            torch.testing.assert_close(b[k], s[0] if stack else s, rtol=1e-12, atol=1e-14)
    # The trials really differ (else the test proves nothing).
    assert not torch.allclose(batched[0][0], batched[0][1])


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_update_is_pure_and_keeps_dtype(optimizer: str) -> None:
    values = resolve(optimizer, "torch", {"global_clipnorm": 1.0})
    rule = build(optimizer, "torch", values)
    hp = stack_hyperparameters(optimizer, [values, values])  # float64 coefficients
    params = [torch.randn(2, 5), torch.randn(2, 3, 2)]  # float32 parameters, K = 2
    grads = [torch.randn_like(p) for p in params]
    state = rule.init(params)
    snapshot = [t.clone() for t in (*params, *grads)]
    for _ in range(2):
        new_params, state = rule.update(grads, state, params, hp)
    assert all(torch.equal(a, b) for a, b in zip((*params, *grads), snapshot, strict=True))
    assert all(p.dtype == torch.float32 for p in new_params)
    assert all(p.shape == q.shape for p, q in zip(params, new_params, strict=True))


def test_neutral_values_for_knobs_that_are_off() -> None:
    off = resolve("adam", "keras", {})
    on = resolve("adam", "keras", {"weight_decay": 0.1})
    assert off["weight_decay"] is None
    hp = stack_hyperparameters("adam", [off, on])
    assert hp["weight_decay"].tolist() == [0.0, 0.1]
    assert set(hp) == set(build("adam", "keras", off).hyperparameters)


def test_missing_hyperparameter_is_named() -> None:
    rule = build("adam", "torch", {})
    params = [torch.zeros(3)]
    with pytest.raises(KeyError, match="beta_1"):
        rule.update([torch.ones(3)], rule.init(params), params, {"learning_rate": 0.1})


@pytest.mark.parametrize("semantics", SEMANTICS)
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_a_scalar_parameter_stays_per_trial(optimizer: str, semantics: str) -> None:
    """A 0-d parameter stacked to (K,): per-tensor reductions (Adafactor's RMS, LAMB's norms)
    must not reduce over the trial axis (``dim=()`` reduces every axis in torch)."""
    trials = trial_values(optimizer, semantics, {})
    rule = build(optimizer, semantics, trials[0])
    hp = stack_hyperparameters(optimizer, trials)
    batched = [torch.tensor([0.5, -1.0, 2.0], dtype=F64), torch.ones(K, 3, dtype=F64)]
    state = rule.init(batched)
    singles = [[batched[0][k].clone(), batched[1][k].clone()] for k in range(K)]
    single_states = [rule.init(s) for s in singles]
    for t in range(STEPS):
        batched, state = rule.update(grads_for(batched, t), state, batched, hp)
        for k in range(K):
            hp_k = {name: v[k] for name, v in hp.items()}
            singles[k], single_states[k] = rule.update(
                grads_for(singles[k], t), single_states[k], singles[k], hp_k
            )
    for k in range(K):
        for b, s in zip(batched, singles[k], strict=True):
            torch.testing.assert_close(b[k], s, rtol=1e-12, atol=1e-14)
