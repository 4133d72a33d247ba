"""Lion, the evolved sign momentum (Chen et al., 2023).

c ← β₁ m + (1 − β₁) g;  θ ← θ − η sign(c);  m ← β₂ m + (1 − β₂) g
Weight decay is decoupled in both conventions, θ ← θ(1 − ηλ) before the step, as the authors'
code decays it.

torch has no Lion. torch semantics follow the PyTorch reference the authors point to,
lucidrains/lion-pytorch (``lion_pytorch.Lion``, the same rule as google/automl's
``lion_pytorch.py``): η 1e-4, betas (0.9, 0.99), λ 0; its ``decoupled_weight_decay`` (λ divided
by the initial η) and Triton kernel are not taken. keras semantics follow
``keras.optimizers.Lion``: η 1e-3, β₁ in (0, 1] (keras refuses β₁ = 0: SignSGD).

The sign makes the step's size η per element whatever g's scale: the authors recommend η 3-10×
below AdamW's and λ 3-10× above it (the same ηλ).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from ..base import HyperParams, Kernel, rows, scratch, step_counter, zeros_like_all
from ..lazy import torch
from ..parameters import OptimizerInfo, ParamInfo, learning_rate, with_common_knobs

if TYPE_CHECKING:
    from torch import Tensor


class LionState(NamedTuple):
    """``exp_avg``: m, the momentum (keras calls it ``momentum``)."""

    step: Tensor
    exp_avg: list[Tensor]


def _init(params: Sequence[Tensor]) -> LionState:
    return LionState(step_counter(params), zeros_like_all(params))


def _update_(
    grads: Sequence[Tensor], state: LionState, params: Sequence[Tensor], hp: HyperParams
) -> None:
    """Lion (the module docstring's rule): 5 passes per tensor, one scratch buffer. The products
    are formed as both references form them (β m + (1 − β) g, not a lerp): only c's sign
    reaches θ, but m carries its rounding from step to step."""
    state.step.add_(1)
    b1, b2 = hp["beta_1"], hp["beta_2"]
    coefs = torch.stack([b1, 1 - b1, b2, 1 - b2, -hp["learning_rate"]]).to(params[0])
    buffer = scratch(params)
    for g, p, m in zip(grads, params, state.exp_avg, strict=True):
        beta_1, w1, beta_2, w2, neg_lr = rows(coefs, p)
        c = torch.mul(m, beta_1, out=buffer(p)).addcmul_(g, w1)
        p.addcmul_(c.sign_(), neg_lr)
        m.mul_(beta_2).addcmul_(g, w2)


# ---------------------------------------------------------------------------------------------
# Definitions
# ---------------------------------------------------------------------------------------------

_PARAMS = with_common_knobs(
    learning_rate(1e-4, 1e-3),
    ParamInfo(
        "beta_1",
        "float",
        "weight of m against g in the direction c whose sign is the step",
        0.9,
        0.9,
        aliases=("beta1",),
        low=0.0,
        low_open=True,
        high=1.0,
    ),
    ParamInfo(
        "beta_2",
        "float",
        "decay of the momentum m",
        0.99,
        0.99,
        aliases=("beta2",),
        low=0.0,
        high=1.0,
    ),
)
_PARAMS["weight_decay"] = ParamInfo(
    "weight_decay",
    "float",
    "λ of the decoupled decay θ ← θ − ηλθ (both semantics, as Lion's authors decay)",
    0.0,
    None,
    low=0.0,
    optional=True,
    neutral=0.0,
)

LION = OptimizerInfo(
    name="lion",
    params=_PARAMS,
    summary="sign of an interpolated momentum (evolved sign momentum)",
    reference="Chen et al., 2023",
    update_rule={
        "torch": "c ← β₁m + (1−β₁)g;  θ ← θ − η sign(c);  m ← β₂m + (1−β₂)g",
        "keras": "c ← β₁m + (1−β₁)g;  θ ← θ − η sign(c);  m ← β₂m + (1−β₂)g",
    },
    differences=(
        "Same rule; torch has no Lion: torch semantics are lucidrains/lion-pytorch's (η 1e-4), "
        "keras semantics keras.optimizers.Lion's (η 1e-3). Weight decay is decoupled in both. "
        "Take η 3-10× below AdamW's and λ 3-10× above it."
    ),
    kernel=lambda v, keras: Kernel(_init, _update_),
    decoupled_decay=True,
)

OPTIMIZERS = (LION,)
