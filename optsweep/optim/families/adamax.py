"""AdaMax, Adam with the infinity norm (Kingma & Ba, 2015, section 7.1).

m ← β₁ m + (1 − β₁) g
torch: u ← max(β₂ u, |g| + ε);  θ ← θ − η/(1 − β₁ᵗ) · m / u
keras: u ← max(β₂ u, |g|);      θ ← θ − η/(1 − β₁ᵗ) · m / (u + ε)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from ..base import HyperParams, Kernel, rows, step_counter, zeros_like_all
from ..lazy import torch
from ..parameters import (
    BETA_1,
    BETA_2_INF,
    OptimizerInfo,
    epsilon,
    learning_rate,
    with_common_knobs,
)

if TYPE_CHECKING:
    from torch import Tensor


class AdamaxState(NamedTuple):
    """``exp_avg``: m; ``exp_inf``: u, the exponentially weighted infinity norm."""

    step: Tensor
    exp_avg: list[Tensor]
    exp_inf: list[Tensor]


def _init(params: Sequence[Tensor]) -> AdamaxState:
    return AdamaxState(step_counter(params), zeros_like_all(params), zeros_like_all(params))


def adamax_kernel(*, keras: bool) -> Kernel:
    """AdaMax (the module docstring's rule); g is the scratch tensor."""

    def update_(
        grads: Sequence[Tensor], state: AdamaxState, params: Sequence[Tensor], hp: HyperParams
    ) -> None:
        lr, b1, b2, eps = hp["learning_rate"], hp["beta_1"], hp["beta_2"], hp["epsilon"]
        state.step.add_(1)
        coefs = torch.stack([1 - b1, b2, eps, -lr / (1 - b1**state.step)]).to(params[0])
        for g, p, m, u in zip(grads, params, state.exp_avg, state.exp_inf, strict=True):
            w1, beta_2, e, neg_step = rows(coefs, p)
            m.lerp_(g, w1)
            g.abs_()  # g is scratch from here
            if not keras:
                g.add_(e)
            torch.maximum(u.mul_(beta_2), g, out=u)
            denom = torch.add(u, e, out=g) if keras else u
            p.addcmul_(torch.div(m, denom, out=g), neg_step)

    return Kernel(_init, update_)


ADAMAX = OptimizerInfo(
    name="adamax",
    params=with_common_knobs(
        learning_rate(2e-3, 1e-3),
        BETA_1,
        BETA_2_INF,
        epsilon(1e-8, 1e-7, "ε: torch adds it to |g| inside the max, keras to u"),
    ),
    summary="Adam with the infinity norm",
    reference="Kingma & Ba, 2015 (section 7.1)",
    update_rule={
        "torch": "m ← β₁m + (1−β₁)g;  u ← max(β₂u, |g| + ε);  θ ← θ − η/(1−β₁ᵗ) · m / u",
        "keras": "m ← β₁m + (1−β₁)g;  u ← max(β₂u, |g|);  θ ← θ − η/(1−β₁ᵗ) · m / (u + ε)",
    },
    differences=(
        "ε inside the max (torch, 1e-8) vs added to u (keras, 1e-7); η 2e-3 vs 1e-3. "
        "Document 001 writes a square root over u, which AdaMax does not have, and its second "
        "moment with v and β where g² and β₂ are meant."
    ),
    kernel=lambda v, keras: adamax_kernel(keras=keras),
)

OPTIMIZERS = (ADAMAX,)
