"""ASGD, averaged SGD: SGD with a decaying rate and weight shrinkage, and a running average of
the iterates from step t₀ on (Polyak & Juditsky, 1992; the decay of Bottou, 2012).

ηₜ: η₁ = η;  θ ← θ(1 − λ ηₜ) − ηₜ g
μₜ = 1/max(1, t − 1 − t₀);  ax ← ax + μₜ (θ − ax)      (μ = 1: ax ← θ)
ηₜ₊₁ = η/(1 + λ η t)^α

torch.optim.ASGD, as its single-tensor loop computes it: ηₜ is state (set from the rate of
the step before, so a schedule reaches ASGD one step late, as in torch); ax is kept, not
evaluated (torch leaves swapping the average in to the user). Keras ships none: keras
semantics are the same rule with keras's conventions for the knobs every optimizer has
(decoupled weight decay θ(1 − ηλ) with the rate η, keras clipping).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from ..base import HyperParams, Kernel, rows, step_counter, zeros_like_all
from ..lazy import torch
from ..parameters import OptimizerInfo, ParamInfo, learning_rate, with_common_knobs

if TYPE_CHECKING:
    from torch import Tensor


class ASGDState(NamedTuple):
    """``eta``: ηₜ, this step's rate (shape follows ``hp`` after the first update); ``ax``: the
    average of the iterates."""

    step: Tensor
    eta: Tensor
    ax: list[Tensor]


def _init(params: Sequence[Tensor]) -> ASGDState:
    device = params[0].device if params else None
    dtype = torch.float32 if device is not None and device.type == "mps" else torch.float64
    return ASGDState(
        step_counter(params), torch.zeros((), dtype=dtype, device=device), zeros_like_all(params)
    )


def _update_(
    grads: Sequence[Tensor], state: ASGDState, params: Sequence[Tensor], hp: HyperParams
) -> None:
    """ASGD (the module docstring's rule), K-batched."""
    lr, lambd, alpha, t0 = hp["learning_rate"], hp["lambd"], hp["alpha"], hp["t0"]
    eta = torch.where(state.step == 0, lr, state.eta)  # η₁ = η, as torch's state starts
    state.step.add_(1)
    t = state.step
    mu = 1 / torch.clamp(t - 1 - t0, min=1)
    coefs = torch.stack([1 - lambd * eta, -eta, mu]).to(params[0])
    for g, p, ax in zip(grads, params, state.ax, strict=True):
        shrink, neg_eta, mu_ = rows(coefs, p)
        p.mul_(shrink).addcmul_(g, neg_eta)
        ax.lerp_(p, mu_)  # μ = 1 gives θ exactly (lerp computes θ − (θ − ax)(1 − μ) for μ ≥ ½)
    new_eta = lr / (1 + lambd * lr * t) ** alpha
    # resized: ηₜ is () before the first step and (K,) after it
    state.eta.resize_(new_eta.shape).copy_(new_eta)


# ---------------------------------------------------------------------------------------------
# Definitions
# ---------------------------------------------------------------------------------------------

ASGD = OptimizerInfo(
    name="asgd",
    params=with_common_knobs(
        learning_rate(1e-2, 1e-2),
        ParamInfo(
            "lambd",
            "float",
            "λ of the rate's decay ηₜ = η/(1 + λη(t−1))^α and of the shrinkage θ(1 − ληₜ)",
            1e-4,
            1e-4,
            low=0.0,
        ),
        ParamInfo(
            "alpha",
            "float",
            "α, the power of the rate's decay",
            0.75,
            0.75,
            low=0.0,
        ),
        ParamInfo(
            "t0",
            "float",
            "t₀, the step after which the iterates are averaged",
            1e6,
            1e6,
            low=0.0,
        ),
    ),
    summary="SGD with a decaying rate and a running average of the iterates",
    reference="Polyak & Juditsky, 1992",
    update_rule={
        "torch": (
            "θ ← θ(1 − ληₜ) − ηₜ g;  ax ← ax + (θ − ax)/max(1, t − 1 − t₀);  "
            "ηₜ₊₁ = η/(1 + ληt)^α, η₁ = η"
        ),
        "keras": (
            "θ ← θ(1 − ληₜ) − ηₜ g;  ax ← ax + (θ − ax)/max(1, t − 1 − t₀);  "
            "ηₜ₊₁ = η/(1 + ληt)^α, η₁ = η"
        ),
    },
    differences=(
        "Keras ships no ASGD: keras semantics are torch's rule with keras's knobs (decoupled "
        "weight decay with the rate η, keras clipping). The average ax is state; like torch, "
        "optsweep evaluates the iterate θ, not ax."
    ),
    kernel=lambda v, keras: Kernel(_init, _update_),
)

OPTIMIZERS = (ASGD,)
