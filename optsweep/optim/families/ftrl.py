"""FTRL-Proximal, follow the regularized leader (McMahan et al., 2013), as Keras computes it.

n₀ = ``initial_accumulator_value``, z₀ = 0;  p = ``learning_rate_power`` (≤ 0)
ĝ = g + 2 λ_sh θ;  n' = n + g²
z ← z + ĝ − (n'^(−p) − n^(−p))/η · θ
θ ← (clip(z, −λ₁, λ₁) − z) / (n'^(−p)/η + 2 (λ₂ + β/(2η)));  n ← n'
(λ₁, λ₂, λ_sh: ``l1_``, ``l2_``, ``l2_shrinkage_regularization_strength``; β: ``beta``.)

``keras.optimizers.Ftrl``, term by term as its ``update_step`` forms them. torch ships no
FTRL: torch semantics are the same rule and defaults with torch's conventions for the knobs
every optimizer has (``weight_decay`` is coupled L2, λθ added to g before the rule, and
reaches n as well as z; torch's clipping), as rprop and asgd take torch's rule with keras's
knobs. θ is not stepped but recomputed from z every step: keras's decoupled decay
θ(1 − ηλ) only changes the σθ term.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from ..base import HyperParams, Kernel, rows, step_counter, zeros_like_all
from ..lazy import torch
from ..parameters import OptimizerInfo, ParamInfo, learning_rate, with_common_knobs

if TYPE_CHECKING:
    from torch import Tensor


class FtrlState(NamedTuple):
    """``accumulator``: n, the sum of squared gradients (n₀ is added on the first step);
    ``linear``: z (keras's names)."""

    step: Tensor
    accumulator: list[Tensor]
    linear: list[Tensor]


def _init(params: Sequence[Tensor]) -> FtrlState:
    return FtrlState(step_counter(params), zeros_like_all(params), zeros_like_all(params))


def _update_(
    grads: Sequence[Tensor], state: FtrlState, params: Sequence[Tensor], hp: HyperParams
) -> None:
    """FTRL (the module docstring's rule), K-batched, keras's order of operations."""
    lr, l1 = hp["learning_rate"], hp["l1_regularization_strength"]
    first = state.step == 0
    # as adagrad: on a CPU reading the counter is free and spares a pass on later steps
    add_n0 = bool(first.any()) if params[0].device.type == "cpu" else True
    state.step.add_(1)
    l2 = hp["l2_regularization_strength"] + hp["beta"] / (2.0 * lr)
    coefs = torch.stack(
        [
            hp["initial_accumulator_value"] * first,
            -hp["learning_rate_power"],
            2 * hp["l2_shrinkage_regularization_strength"],
            lr,
            2 * l2,
            -l1,
            l1,
        ]
    ).to(params[0])
    # p = −0.5 (the default) for every trial, read on a CPU (it waits for nothing there): n^½
    # as sqrt took 0.6 ms against 9.5 ms for pow by a per-trial tensor (3.2M floats), and is
    # correctly rounded (pow by a number is not elementwise the same in SIMD and tail lanes)
    root = False
    if params[0].device.type == "cpu":
        root = bool((hp["learning_rate_power"] == -0.5).all())

    def power_of(x: Tensor, power: Tensor) -> Tensor:
        return torch.sqrt(x) if root else torch.pow(x, power)

    for g, p, n, z in zip(grads, params, state.accumulator, state.linear, strict=True):
        n0, power, shrink, lr_, l2x2, low, high = rows(coefs, p)
        if add_n0:
            n.add_(n0)  # n is 0 before the first step
        new_n = torch.addcmul(n, g, g)
        new_pow = power_of(new_n, power)
        sigma_theta = (new_pow - power_of(n, power)).div_(lr_).mul_(p)
        z.add_(g.addcmul_(shrink, p).sub_(sigma_theta))  # z + (ĝ − σθ), as keras adds
        quadratic = new_pow.div_(lr_).add_(l2x2)
        p.copy_(torch.clamp(z, min=low, max=high).sub_(z).div_(quadratic))
        n.copy_(new_n)


# ---------------------------------------------------------------------------------------------
# Definitions
# ---------------------------------------------------------------------------------------------


def _non_negative(name: str, doc: str, default: float) -> ParamInfo:
    return ParamInfo(name, "float", doc, default, default, low=0.0)


FTRL = OptimizerInfo(
    name="ftrl",
    params=with_common_knobs(
        learning_rate(1e-3, 1e-3),
        ParamInfo(
            "learning_rate_power",
            "float",
            "p: the per-coordinate rate is η/n^(−p) (−0.5: AdaGrad's 1/√n; 0: a fixed rate)",
            -0.5,
            -0.5,
            high=0.0,
        ),
        _non_negative(
            "initial_accumulator_value", "n₀, the starting value of the sum of squares n", 0.1
        ),
        _non_negative(
            "l1_regularization_strength",
            "λ₁: coordinates with |z| ≤ λ₁ are set to exactly 0 (sparsity)",
            0.0,
        ),
        _non_negative(
            "l2_regularization_strength",
            "λ₂, the stabilising L2 term in FTRL's denominator",
            0.0,
        ),
        _non_negative(
            "l2_shrinkage_regularization_strength",
            "λ_sh: 2λ_sh θ is added to the gradient z sums (an L2 penalty on the loss)",
            0.0,
        ),
        _non_negative("beta", "β of the paper: adds β/(2η) to λ₂", 0.0),
    ),
    summary="follow the regularized leader (FTRL-Proximal) with L1/L2 regularisation",
    reference="McMahan et al., 2013",
    update_rule={
        "torch": (
            "n' = n + g²;  z ← z + g + 2λ_sh θ − (n'^(−p) − n^(−p))/η · θ;  "
            "θ ← (clip(z, ±λ₁) − z)/(n'^(−p)/η + 2λ₂ + β/η);  n ← n'  (g includes λθ)"
        ),
        "keras": (
            "n' = n + g²;  z ← z + g + 2λ_sh θ − (n'^(−p) − n^(−p))/η · θ;  "
            "θ ← (clip(z, ±λ₁) − z)/(n'^(−p)/η + 2λ₂ + β/η);  n ← n'"
        ),
    },
    differences=(
        "torch ships no FTRL: torch semantics are keras.optimizers.Ftrl's rule and defaults "
        "with torch's knobs (weight_decay as coupled L2 added to g, torch clipping); keras "
        "semantics decay θ(1 − ηλ) before the rule. θ is recomputed from z each step, so "
        "weight_decay acts through the σθ term only; l2_shrinkage_regularization_strength is "
        "the penalty to use."
    ),
    kernel=lambda v, keras: Kernel(_init, _update_),
)

OPTIMIZERS = (FTRL,)
