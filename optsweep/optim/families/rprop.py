"""Rprop, resilient backpropagation: a step size per weight, grown while the gradient keeps its
sign and shrunk when it flips; the gradient's size is never used (Riedmiller & Braun, 1993).

s = sign(g · g_prev);  Δ ← clamp(Δ · (η₊ if s > 0, η₋ if s < 0, 1 if s = 0), Δmin, Δmax)
where s < 0: g ← 0 (the step after a flip is skipped, and the next one counts as s = 0)
θ ← θ − sign(g) · Δ;  g_prev ← g
Δ starts at the learning rate η (torch: ``state["step_size"] = full_like(grad, lr)``), which is
read on the first step only, as torch reads it.

torch.optim.Rprop (the iRprop⁻ variant). Keras ships none: keras semantics are the same rule
with keras's conventions for the knobs every optimizer has (decoupled weight decay θ(1 − ηλ),
keras's clipping); torch's Rprop itself has no weight decay, so torch semantics add λθ to g.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from ..base import HyperParams, Kernel, rows, step_counter, zeros_like_all
from ..lazy import torch
from ..parameters import OptimizerInfo, ParamInfo, learning_rate, with_common_knobs

if TYPE_CHECKING:
    from torch import Tensor


class RpropState(NamedTuple):
    """``prev``: the last gradient (zeroed where its sign had flipped); ``step_size``: Δ."""

    step: Tensor
    prev: list[Tensor]
    step_size: list[Tensor]


def _init(params: Sequence[Tensor]) -> RpropState:
    return RpropState(step_counter(params), zeros_like_all(params), zeros_like_all(params))


def _update_(
    grads: Sequence[Tensor], state: RpropState, params: Sequence[Tensor], hp: HyperParams
) -> None:
    """Rprop (the module docstring's rule), K-batched; ``prev`` holds the sign s meanwhile."""
    lr = hp["learning_rate"]
    first = torch.zeros_like(lr) + (state.step == 0).to(lr.dtype)  # Δ ← η on a trial's 1st step
    state.step.add_(1)
    coefs = torch.stack(
        [
            first * lr,
            1 - first,
            hp["eta_minus"],
            hp["eta_plus"],
            hp["step_size_min"],
            hp["step_size_max"],
        ]
    ).to(params[0])
    for g, p, prev, delta in zip(grads, params, state.prev, state.step_size, strict=True):
        start, keep, eta_minus, eta_plus, low, high = rows(coefs, p)
        delta.mul_(keep).add_(start)
        s = prev.mul_(g).sign_()
        flipped = s < 0
        factor = torch.where(s > 0, eta_plus, torch.where(flipped, eta_minus, torch.ones_like(s)))
        torch.clamp(delta.mul_(factor), min=low, max=high, out=delta)
        g.masked_fill_(flipped, 0)
        p.addcmul_(torch.sign(g), delta, value=-1)
        prev.copy_(g)


# ---------------------------------------------------------------------------------------------
# Definitions
# ---------------------------------------------------------------------------------------------

RPROP = OptimizerInfo(
    name="rprop",
    params=with_common_knobs(
        learning_rate(1e-2, 1e-2),
        ParamInfo(
            "eta_minus",
            "float",
            "η₋, the factor a step size shrinks by when its gradient changes sign",
            0.5,
            0.5,
            aliases=("etaminus",),
            low=0.0,
            low_open=True,
            high=1.0,
            high_open=True,
        ),
        ParamInfo(
            "eta_plus",
            "float",
            "η₊, the factor a step size grows by while its gradient keeps its sign",
            1.2,
            1.2,
            aliases=("etaplus",),
            low=1.0,
            low_open=True,
        ),
        ParamInfo(
            "step_size_min",
            "float",
            "Δmin, the smallest step size",
            1e-6,
            1e-6,
            low=0.0,
        ),
        ParamInfo(
            "step_size_max",
            "float",
            "Δmax, the largest step size",
            50.0,
            50.0,
            low=0.0,
            low_open=True,
        ),
    ),
    summary="a step size per weight, grown while the gradient keeps its sign (iRprop⁻)",
    reference="Riedmiller & Braun, 1993",
    update_rule={
        "torch": (
            "s = sign(g·g_prev);  Δ ← clamp(Δ·(η₊ | η₋ | 1), Δmin, Δmax), Δ₀ = η;  "
            "g ← 0 where s < 0;  θ ← θ − sign(g) Δ;  g_prev ← g"
        ),
        "keras": (
            "s = sign(g·g_prev);  Δ ← clamp(Δ·(η₊ | η₋ | 1), Δmin, Δmax), Δ₀ = η;  "
            "g ← 0 where s < 0;  θ ← θ − sign(g) Δ;  g_prev ← g"
        ),
    },
    differences=(
        "Keras ships no Rprop: keras semantics are torch's rule with keras's knobs (decoupled "
        "weight decay, keras clipping). η is read on the first step only (Δ₀ = η): a schedule "
        "does not change Rprop's steps, in torch as here. Full-batch by design: minibatch "
        "noise flips signs and shrinks Δ."
    ),
    kernel=lambda v, keras: Kernel(_init, _update_),
)

OPTIMIZERS = (RPROP,)
