"""NAdam and NAdaMax: Nesterov momentum on Adam (second moment v) or AdaMax (infinity norm u).

μₜ = β₁(1 − ½·0.96^(t·ψ)) (torch ψ = 4e-3; keras's schedule is ψ = 1; no schedule: μₜ = β₁)
m ← β₁ m + (1 − β₁) g;  m̂ = μₜ₊₁ m / (1 − Π₁..ₜ₊₁ μ) + (1 − μₜ) g / (1 − Π₁..ₜ μ)
NAdam:   v ← β₂ v + (1 − β₂) g²;  θ ← θ − η m̂ / (√(v/(1 − β₂ᵗ)) + ε)
NAdaMax: torch u ← max(β₂u, |g| + ε), θ ← θ − η m̂ / u;
         keras u ← max(β₂u, |g|),     θ ← θ − η m̂ / (u + ε)
                                                                            (Dozat, 2016)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from ..base import HyperParams, Kernel, rows, scratch, step_counter, zeros_like_all
from ..lazy import torch
from ..parameters import (
    BETA_1,
    BETA_2,
    BETA_2_INF,
    DECOUPLED_WEIGHT_DECAY,
    OptimizerInfo,
    epsilon,
    flag,
    learning_rate,
    momentum_decay,
    with_common_knobs,
)

if TYPE_CHECKING:
    from torch import Tensor


class NesterovAdamState(NamedTuple):
    """``mu_product``: Π₁..ₜ μ (shape follows ``hp`` after the first update);
    ``exp_avg``: m; ``exp_avg_sq``: v (NAdam) or ``exp_inf``: u (NAdaMax)."""

    step: Tensor
    mu_product: Tensor
    exp_avg: list[Tensor]
    exp_avg_sq: list[Tensor]
    exp_inf: list[Tensor]


def _mu(beta_1: Tensor, t: Tensor, psi: Tensor, *, schedule: bool) -> Tensor:
    """Dozat's momentum schedule μₜ = β₁(1 − ½·0.96^(t·ψ)), or μₜ = β₁ without it."""
    if not schedule:
        return beta_1
    return beta_1 * (1.0 - 0.5 * (0.96 ** (t * psi)))


def nesterov_adam_kernel(*, infinity_norm: bool, schedule: bool, keras: bool) -> Kernel:
    """NAdam or NAdaMax (the module docstring's rule), one scratch tensor per step.

    Args:
        infinity_norm: NAdaMax instead of NAdam.
        schedule: Dozat's momentum schedule; False gives document 000's plain form μₜ = β₁.
        keras: keras's ε placement (NAdaMax).
    """

    def init(params: Sequence[Tensor]) -> NesterovAdamState:
        device = params[0].device if params else None
        scalar_dtype = torch.float32 if device is not None and device.type == "mps" else None
        return NesterovAdamState(
            step_counter(params),
            torch.ones((), dtype=scalar_dtype or torch.float64, device=device),
            zeros_like_all(params),
            [] if infinity_norm else zeros_like_all(params),
            zeros_like_all(params) if infinity_norm else [],
        )

    def update_(
        grads: Sequence[Tensor],
        state: NesterovAdamState,
        params: Sequence[Tensor],
        hp: HyperParams,
    ) -> None:
        lr, b1, b2, eps = hp["learning_rate"], hp["beta_1"], hp["beta_2"], hp["epsilon"]
        psi = hp["momentum_decay"]
        state.step.add_(1)
        t = state.step
        mu = _mu(b1, t, psi, schedule=schedule)
        mu_next = _mu(b1, t + 1, psi, schedule=schedule)
        mu_product = state.mu_product * mu
        # resized: the product is () before the first step and (K,) after it
        state.mu_product.resize_(mu_product.shape).copy_(mu_product)
        coef_g = (1 - mu) / (1 - mu_product)
        coef_m = mu_next / (1 - mu_product * mu_next)
        if infinity_norm:
            scale, second = torch.ones_like(b2), b2
        else:
            # √(v/(1 − β₂ᵗ)) + ε = (√v + ε√(1 − β₂ᵗ)) / √(1 − β₂ᵗ): one pass less
            scale, second = torch.sqrt(1 - b2**t), 1 - b2
        coefs = torch.stack(
            [1 - b1, second, eps * scale, -lr * coef_g * scale, -lr * coef_m * scale]
        ).to(params[0])
        buffer = scratch(params)
        seconds = state.exp_inf if infinity_norm else state.exp_avg_sq
        for g, p, m, s in zip(grads, params, state.exp_avg, seconds, strict=True):
            w1, beta_or_w2, e, a_g, a_m = rows(coefs, p)
            buf = buffer(p)
            m.lerp_(g, w1)
            if infinity_norm:
                torch.abs(g, out=buf)
                if not keras:
                    buf.add_(e)
                torch.maximum(s.mul_(beta_or_w2), buf, out=s)
                denom = torch.add(s, e, out=buf) if keras else s
            else:
                s.lerp_(torch.mul(g, g, out=buf), beta_or_w2)
                denom = torch.sqrt(s, out=buf).add_(e)
            step = g.mul_(a_g).addcmul_(m, a_m)  # −η m̂ (NAdam: times √(1 − β₂ᵗ))
            p.add_(step.div_(denom))

    return Kernel(init, update_)


# ---------------------------------------------------------------------------------------------
# Definitions
# ---------------------------------------------------------------------------------------------

_MHAT = "m̂ = μₜ₊₁ m/(1 − Π₁..ₜ₊₁ μ) + (1 − μₜ) g/(1 − Π₁..ₜ μ)"
_MOMENTUM_SCHEDULE = flag(
    "momentum_schedule",
    "Dozat's schedule μₜ = β₁(1 − ½·0.96^(t·ψ)); false gives document 000's plain form μₜ = β₁",
    default=True,
)

NADAM = OptimizerInfo(
    name="nadam",
    params=with_common_knobs(
        learning_rate(2e-3, 1e-3),
        BETA_1,
        BETA_2,
        epsilon(1e-8, 1e-7, "ε added to √v̂"),
        momentum_decay("ψ in μₜ = β₁(1 − ½·0.96^(t·ψ)); torch 4e-3, keras's schedule is ψ = 1"),
        _MOMENTUM_SCHEDULE,
        DECOUPLED_WEIGHT_DECAY,
    ),
    summary="Adam with Nesterov momentum",
    reference="Dozat, 2016",
    update_rule={
        "torch": (
            f"μₜ = β₁(1 − ½·0.96^(tψ));  m, v as Adam;  {_MHAT};  θ ← θ − η m̂ / (√(v/(1−β₂ᵗ)) + ε)"
        ),
        "keras": (
            f"μₜ = β₁(1 − ½·0.96ᵗ);  m, v as Adam;  {_MHAT};  θ ← θ − η m̂ / (√(v/(1−β₂ᵗ)) + ε)"
        ),
    },
    differences=(
        "torch's schedule 0.96^(t·ψ) with ψ = momentum_decay 4e-3 vs keras 0.96ᵗ (ψ = 1); "
        "η 2e-3 vs 1e-3; ε 1e-8 vs 1e-7. momentum_schedule false gives document 000's plain "
        "form μₜ = β₁: θ ← θ − η/(√v̂+ε)·(β₁m/(1−β₁^(t+1)) + (1−β₁)g/(1−β₁ᵗ))."
    ),
    kernel=lambda v, keras: nesterov_adam_kernel(
        infinity_norm=False, schedule=v["momentum_schedule"], keras=keras
    ),
)

NADAMAX = OptimizerInfo(
    name="nadamax",
    params=with_common_knobs(
        learning_rate(2e-3, 1e-3),
        BETA_1,
        BETA_2_INF,
        epsilon(1e-8, 1e-7, "ε: torch adds it to |g| inside the max, keras to u"),
        momentum_decay("ψ in μₜ = β₁(1 − ½·0.96^(t·ψ)); torch-style 4e-3, keras-style 1"),
        _MOMENTUM_SCHEDULE,
        DECOUPLED_WEIGHT_DECAY,
    ),
    summary="AdaMax with Nesterov momentum (no library ships it)",
    reference="Dozat, 2016",
    update_rule={
        "torch": f"μₜ = β₁(1 − ½·0.96^(tψ));  u ← max(β₂u, |g| + ε);  {_MHAT};  θ ← θ − η m̂ / u",
        "keras": f"μₜ = β₁(1 − ½·0.96ᵗ);  u ← max(β₂u, |g|);  {_MHAT};  θ ← θ − η m̂ / (u + ε)",
    },
    differences="torch: NAdam's schedule with AdaMax's u (ε inside the max); keras: keras "
    "Nadam's schedule with keras Adamax's u (ε added to u). Checked against a float64 "
    "transcription of the formula.",
    kernel=lambda v, keras: nesterov_adam_kernel(
        infinity_norm=True, schedule=v["momentum_schedule"], keras=keras
    ),
)

OPTIMIZERS = (NADAM, NADAMAX)
