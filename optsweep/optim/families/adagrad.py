"""AdaGrad, in torch's and keras's conventions (Duchi et al., 2011).

s ← s + g² (s₀ = ``initial_accumulator_value``);  η̃ = η/(1 + (t − 1)·lr_decay)
torch: θ ← θ − η̃ g / (√s + ε)
keras: θ ← θ − η̃ g / √(s + ε)   (torch's lr_decay applies too when set; default 0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from ..base import HyperParams, Kernel, rows, scratch, step_counter, zeros_like_all
from ..lazy import torch
from ..parameters import OptimizerInfo, ParamInfo, epsilon, learning_rate, with_common_knobs

if TYPE_CHECKING:
    from torch import Tensor


class AdagradState(NamedTuple):
    """``sum``: s, the running sum of squared gradients (s₀ is added on the first step)."""

    step: Tensor
    sum: list[Tensor]


def _init(params: Sequence[Tensor]) -> AdagradState:
    return AdagradState(step_counter(params), zeros_like_all(params))


def adagrad_kernel(*, keras: bool) -> Kernel:
    """AdaGrad (the module docstring's rule), one scratch tensor per step."""

    def update_(
        grads: Sequence[Tensor], state: AdagradState, params: Sequence[Tensor], hp: HyperParams
    ) -> None:
        first = state.step == 0
        clr = hp["learning_rate"] / (1 + state.step * hp["lr_decay"])
        # reading the counter on a CPU costs nothing and spares a pass on every later step;
        # on another device it would wait for the device, so s₀·[t = 1] is added every step
        add_s0 = bool(first.any()) if params[0].device.type == "cpu" else True
        state.step.add_(1)
        coefs = torch.stack([hp["initial_accumulator_value"] * first, hp["epsilon"], -clr])
        coefs = coefs.to(params[0])
        buffer = scratch(params)
        for g, p, s in zip(grads, params, state.sum, strict=True):
            s0, eps, neg_lr = rows(coefs, p)
            s.addcmul_(g, g)
            if add_s0:
                s.add_(s0)  # s is 0 before the first step: s + g² + s₀ is s₀ + g²
            denom = buffer(p)
            if keras:
                torch.add(s, eps, out=denom).sqrt_()
            else:
                torch.sqrt(s, out=denom).add_(eps)
            p.addcmul_(g.div_(denom), neg_lr)

    return Kernel(_init, update_)


ADAGRAD = OptimizerInfo(
    name="adagrad",
    params=with_common_knobs(
        learning_rate(1e-2, 1e-3),
        epsilon(1e-10, 1e-7, "ε: torch adds it after the root, keras inside it"),
        ParamInfo(
            "initial_accumulator_value",
            "float",
            "s₀, starting value of the sum of squared gradients",
            0.0,
            0.1,
            low=0.0,
        ),
        ParamInfo(
            "lr_decay",
            "float",
            "torch's η/(1 + (t − 1)·lr_decay) (keras has none, default 0)",
            0.0,
            0.0,
            low=0.0,
        ),
    ),
    summary="per-coordinate rates from the sum of squared gradients",
    reference="Duchi et al., 2011",
    update_rule={
        "torch": "s ← s + g²;  θ ← θ − η/(1 + (t−1)·lr_decay) · g / (√s + ε)",
        "keras": "s ← s + g²;  θ ← θ − η g / √(s + ε)",
    },
    differences=(
        "ε after the root (torch, 1e-10) vs inside it (keras, 1e-7); s₀ 0 (torch) vs 0.1 "
        "(keras); η 1e-2 (torch) vs 1e-3 (keras). Document 002 writes ε outside the root while "
        "tf.keras puts it inside."
    ),
    kernel=lambda v, keras: adagrad_kernel(keras=keras),
)

OPTIMIZERS = (ADAGRAD,)
