"""RMSprop, optionally centered, with momentum (Tieleman & Hinton, 2012; Graves, 2013).

v ← ρ v + (1 − ρ) g²;  centered: ḡ ← ρ ḡ + (1 − ρ) g, v̄ = v − ḡ² (else v̄ = v)
torch: b ← μ b + g / (√v̄ + ε);  θ ← θ − η b
keras: b ← μ b + η g / √(v̄ + ε);  θ ← θ − b          (μ = 0 gives the plain rule exactly)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from ..base import HyperParams, Kernel, rows, scratch, step_counter, zeros_like_all
from ..lazy import torch
from ..parameters import (
    OptimizerInfo,
    ParamInfo,
    epsilon,
    flag,
    learning_rate,
    momentum,
    with_common_knobs,
)

if TYPE_CHECKING:
    from torch import Tensor


class RMSpropState(NamedTuple):
    """``square_avg``: v; ``grad_avg``: ḡ (centered only); ``momentum_buffer``: b."""

    step: Tensor
    square_avg: list[Tensor]
    grad_avg: list[Tensor]
    momentum_buffer: list[Tensor]


def rmsprop_kernel(*, centered: bool, keras: bool) -> Kernel:
    """RMSprop (the module docstring's rule), one scratch tensor per step."""

    def init(params: Sequence[Tensor]) -> RMSpropState:
        return RMSpropState(
            step_counter(params),
            zeros_like_all(params),
            zeros_like_all(params) if centered else [],
            zeros_like_all(params),
        )

    def update_(
        grads: Sequence[Tensor], state: RMSpropState, params: Sequence[Tensor], hp: HyperParams
    ) -> None:
        lr, rho, eps, mu = hp["learning_rate"], hp["rho"], hp["epsilon"], hp["momentum"]
        state.step.add_(1)
        coefs = torch.stack([1 - rho, eps, mu, lr if keras else -lr]).to(params[0])
        buffer = scratch(params)
        avgs = state.grad_avg if centered else [None] * len(params)
        for g, p, v, gbar, b in zip(
            grads, params, state.square_avg, avgs, state.momentum_buffer, strict=True
        ):
            w, e, m, eta = rows(coefs, p)
            denom = buffer(p)
            v.lerp_(torch.mul(g, g, out=denom), w)
            if gbar is not None:
                gbar.lerp_(g, w)
            if keras:
                torch.add(v, e, out=denom)
                if gbar is not None:
                    denom.addcmul_(gbar, gbar, value=-1)
                b.mul_(m).addcdiv_(g.mul_(eta), denom.sqrt_())
                p.sub_(b)
            else:
                if gbar is not None:
                    torch.addcmul(v, gbar, gbar, value=-1, out=denom).sqrt_()
                else:
                    torch.sqrt(v, out=denom)
                b.mul_(m).addcdiv_(g, denom.add_(e))
                p.addcmul_(b, eta)

    return Kernel(init, update_)


RMSPROP = OptimizerInfo(
    name="rmsprop",
    params=with_common_knobs(
        learning_rate(1e-2, 1e-3),
        ParamInfo(
            "rho",
            "float",
            "decay of the mean square v (torch calls it alpha)",
            0.99,
            0.9,
            aliases=("alpha",),
            low=0.0,
            high=1.0,
            high_open=True,
        ),
        epsilon(1e-8, 1e-7, "ε: torch adds it after the root, keras inside it"),
        momentum(0.0, "μ of the momentum buffer over the normalised steps (0: none)"),
        flag("centered", "subtract the squared running mean of g (Graves, 2013)"),
    ),
    summary="divide by a running root mean square of the gradients",
    reference="Tieleman & Hinton, 2012 (lecture 6.5); Graves, 2013 (centered)",
    update_rule={
        "torch": (
            "v ← ρ v + (1−ρ) g²;  [ḡ ← ρ ḡ + (1−ρ) g;  v̄ = v − ḡ²];  "
            "b ← μ b + g / (√v̄ + ε);  θ ← θ − η b"
        ),
        "keras": (
            "v ← ρ v + (1−ρ) g²;  [ḡ ← ρ ḡ + (1−ρ) g;  v̄ = v − ḡ²];  "
            "b ← μ b + η g / √(v̄ + ε);  θ ← θ − b"
        ),
    },
    differences=(
        "ε after the root (torch, 1e-8) vs inside it (keras, 1e-7); ρ 0.99 (torch 'alpha') "
        "vs 0.9; η 1e-2 vs 1e-3; with momentum, keras puts η inside the buffer."
    ),
    kernel=lambda v, keras: rmsprop_kernel(centered=v["centered"], keras=keras),
)

OPTIMIZERS = (RMSPROP,)
