"""RAdam, Adam with its adaptive step rectified while the variance estimate is short.

m ← β₁ m + (1 − β₁) g;  v ← β₂ v + (1 − β₂) g²
ρ∞ = 2/(1 − β₂) − 1;  ρₜ = ρ∞ − 2t β₂ᵗ/(1 − β₂ᵗ)
rₜ = √((ρₜ − 4)(ρₜ − 2) ρ∞ / ((ρ∞ − 4)(ρ∞ − 2) ρₜ))
torch (``torch.optim.RAdam``), ρₜ > 5:  θ ← θ − η rₜ/(1 − β₁ᵗ) · m · √(1 − β₂ᵗ)/(√v + ε)
keras (TF Addons' ``RectifiedAdam``), ρₜ ≥ 5:  θ ← θ − η rₜ/(1 − β₁ᵗ) · m / (√(v/(1 − β₂ᵗ)) + ε)
otherwise (both):  θ ← θ − η/(1 − β₁ᵗ) · m                    (Liu et al., 2020)

Keras 3 ships no RAdam; the keras convention is the tf.keras one of TF Addons
(``tfa.optimizers.RectifiedAdam``, tensorflow/addons 010a5b4): ε 1e-7 added to the
bias-corrected √v̂, the threshold ρₜ ≥ 5, decoupled weight decay (its ``var_t += λ var``
before ``var −= η var_t``); its ``amsgrad``, ``sma_threshold`` and warm-up schedule
(``total_steps``) are not taken: torch has none of them.

One kernel for both branches: per trial, the step divides m by √v·s + e, where adaptive trials
have (s, e) = (1, ε) (torch) or (1/√(1 − β₂ᵗ), ε) (keras) and the others (0, 1), so a trial
that is not yet rectified never computes √v + ε (ε = 0 and v = 0 would give 0/0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from ..base import HyperParams, Kernel, rows, step_counter, zeros_like_all
from ..lazy import torch
from ..parameters import (
    BETA_1,
    BETA_2,
    DECOUPLED_WEIGHT_DECAY,
    OptimizerInfo,
    epsilon,
    learning_rate,
    with_common_knobs,
)

if TYPE_CHECKING:
    from torch import Tensor

# ρₜ above which the step is rectified (torch: ρₜ > 5; TF Addons: ρₜ ≥ sma_threshold = 5)
RHO_THRESHOLD = 5.0


class RAdamState(NamedTuple):
    """``exp_avg``: m; ``exp_avg_sq``: v."""

    step: Tensor
    exp_avg: list[Tensor]
    exp_avg_sq: list[Tensor]


def _init(params: Sequence[Tensor]) -> RAdamState:
    return RAdamState(step_counter(params), zeros_like_all(params), zeros_like_all(params))


def radam_coefficients(
    hp: HyperParams, t: Tensor, *, keras: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per trial (1 − β₁, s, e, −c): the step is θ ← θ − c · m / (√v·s + e)."""
    lr, b1, b2, eps = hp["learning_rate"], hp["beta_1"], hp["beta_2"], hp["epsilon"]
    bc1, bc2 = 1 - b1**t, 1 - b2**t
    rho_inf = 2 / (1 - b2) - 1
    rho_t = rho_inf - 2 * t * b2**t / bc2
    rect = torch.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
    adaptive = rho_t >= RHO_THRESHOLD if keras else rho_t > RHO_THRESHOLD
    one, zero = torch.ones_like(rect), torch.zeros_like(rect)
    if keras:
        scale, step = 1 / torch.sqrt(bc2), lr * rect / bc1
    else:
        scale, step = one, lr * rect * torch.sqrt(bc2) / bc1
    s = torch.where(adaptive, scale, zero)
    e = torch.where(adaptive, eps * one, one)
    c = torch.where(adaptive, step, lr / bc1)  # where, not a product: rect is NaN for ρₜ < 4
    return 1 - b1, s, e, -c


def radam_kernel(*, keras: bool) -> Kernel:
    """RAdam (the module docstring's rule), K-batched; g is the scratch tensor."""

    def update_(
        grads: Sequence[Tensor], state: RAdamState, params: Sequence[Tensor], hp: HyperParams
    ) -> None:
        state.step.add_(1)
        w1, s, e, neg_c = radam_coefficients(hp, state.step, keras=keras)
        coefs = torch.stack([w1, 1 - hp["beta_2"], s, e, neg_c]).to(params[0])
        for g, p, m, v in zip(grads, params, state.exp_avg, state.exp_avg_sq, strict=True):
            w1_, w2, s_, e_, neg_c_ = rows(coefs, p)
            m.lerp_(g, w1_)
            v.lerp_(g.mul_(g), w2)
            denom = torch.sqrt(v, out=g).mul_(s_).add_(e_)  # g is scratch from here
            p.addcmul_(torch.div(m, denom, out=denom), neg_c_)

    return Kernel(_init, update_)


# ---------------------------------------------------------------------------------------------
# Definitions
# ---------------------------------------------------------------------------------------------

RADAM = OptimizerInfo(
    name="radam",
    params=with_common_knobs(
        learning_rate(1e-3, 1e-3),
        BETA_1,
        BETA_2,
        epsilon(1e-8, 1e-7, "ε: torch adds it to √v, keras (TF Addons) to the bias-corrected √v̂"),
        DECOUPLED_WEIGHT_DECAY,
    ),
    summary="Adam with the adaptive step rectified while few squared gradients are averaged",
    reference="Liu et al., 2020",
    update_rule={
        "torch": (
            "m, v as Adam;  ρₜ = ρ∞ − 2tβ₂ᵗ/(1−β₂ᵗ);  ρₜ > 5: θ ← θ − η rₜ/(1−β₁ᵗ) · m √(1−β₂ᵗ)"
            " / (√v + ε);  else θ ← θ − η/(1−β₁ᵗ) · m"
        ),
        "keras": (
            "m, v as Adam;  ρₜ = ρ∞ − 2tβ₂ᵗ/(1−β₂ᵗ);  ρₜ ≥ 5: θ ← θ − η rₜ/(1−β₁ᵗ) · m / "
            "(√(v/(1−β₂ᵗ)) + ε);  else θ ← θ − η/(1−β₁ᵗ) · m"
        ),
    },
    differences=(
        "Keras ships no RAdam: keras semantics follow TF Addons' RectifiedAdam (tf.keras): ε "
        "1e-7 added to √v̂ where torch adds 1e-8 to √v (scaled by √(1−β₂ᵗ) after), rectified "
        "from ρₜ ≥ 5 where torch needs ρₜ > 5, weight decay decoupled. "
        "rₜ = √((ρₜ−4)(ρₜ−2)ρ∞ / ((ρ∞−4)(ρ∞−2)ρₜ)), ρ∞ = 2/(1−β₂) − 1."
    ),
    kernel=lambda v, keras: radam_kernel(keras=keras),
)

OPTIMIZERS = (RADAM,)
