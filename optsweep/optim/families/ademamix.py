"""AdEMAMix: Adam with a second, slow momentum mixed into its numerator (Pagliardini et al.,
2024), as the reference apple/ml-ademamix (``pytorch/ademamix.py``) computes it.

m₁ ← β₁ m₁ + (1 − β₁) g;  m₂ ← β₃ₜ m₂ + (1 − β₃ₜ) g;  v ← β₂ v + (1 − β₂) g²
u = (m₁/(1 − β₁ᵗ) + αₜ m₂)/(√v/√(1 − β₂ᵗ) + ε) + λθ;  θ ← θ − η u
Warmups (the reference's schedulers, off by default): for t < T_α, αₜ = (t/T_α) α; for t < T_β₃,
β₃ₜ = f⁻¹((1 − t/T_β₃) f(β₁) + (t/T_β₃) f(β₃)), f(β) = ln ½/ln(β + 1e-8) − 1 (the half-life
in steps, interpolated linearly), f⁻¹(h) = ½^(1/(h + 1)). m₂ never bias-corrected.

Neither torch nor keras ships AdEMAMix: torch semantics are the reference (its decay λθ is
AdamW's, decoupled, inside the step); keras semantics the same rule and defaults with keras's
knobs (keras's clipping; weight decay decoupled as keras decays, θ − ηλθ). The reference's
``betas`` triple is written ``betas`` (β₁, β₂) and ``beta_3``; its ``alpha_warmup`` and
``beta3_warmup`` are ``alpha_warmup`` and ``beta_3_warmup`` (pytorch-optimizer's single
``t_alpha_beta3`` is both at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from ..base import HyperParams, Kernel, rows, step_counter, zeros_like_all
from ..lazy import torch
from ..parameters import BETA_1, BETA_2, OptimizerInfo, ParamInfo, learning_rate, with_common_knobs

if TYPE_CHECKING:
    from torch import Tensor


class AdEMAMixState(NamedTuple):
    """The reference's names: ``exp_avg_fast`` m₁, ``exp_avg_slow`` m₂, ``exp_avg_sq`` v."""

    step: Tensor
    exp_avg_fast: list[Tensor]
    exp_avg_slow: list[Tensor]
    exp_avg_sq: list[Tensor]


def _init(params: Sequence[Tensor]) -> AdEMAMixState:
    return AdEMAMixState(
        step_counter(params), zeros_like_all(params), zeros_like_all(params), zeros_like_all(params)
    )


def _half_life(beta: Tensor) -> Tensor:
    """The reference's f: ln ½/ln(β + 1e-8) − 1."""
    return torch.log(torch.full_like(beta, 0.5)) / torch.log(beta + 1e-8) - 1


def _warmed_up(t: Tensor, hp: HyperParams) -> tuple[Tensor, Tensor]:
    """(αₜ, β₃ₜ) per trial; a warmup of 0 steps is off (the reference's None)."""
    alpha, beta_3 = hp["alpha"], hp["beta_3"]
    t_alpha, t_beta = hp["alpha_warmup"], hp["beta_3_warmup"]
    a = t / torch.where(t_alpha > 0, t_alpha, 1)
    alpha_t = torch.where(t < t_alpha, a * alpha, alpha)
    a = t / torch.where(t_beta > 0, t_beta, 1)
    mixed = (1.0 - a) * _half_life(hp["beta_1"]) + a * _half_life(beta_3)
    beta_3_t = torch.where(t < t_beta, torch.pow(0.5, 1 / (mixed + 1)), beta_3)
    return alpha_t, beta_3_t


def _update_(
    grads: Sequence[Tensor], state: AdEMAMixState, params: Sequence[Tensor], hp: HyperParams
) -> None:
    """AdEMAMix (the module docstring's rule), K-batched, in the reference's order."""
    lr, b1, b2 = hp["learning_rate"], hp["beta_1"], hp["beta_2"]
    state.step.add_(1)
    t = state.step.to(lr.dtype)
    alpha_t, b3 = _warmed_up(t, hp)
    coefs = torch.stack(
        [
            b1,
            1 - b1,
            b3,
            1 - b3,
            b2,
            1 - b2,
            torch.sqrt(1 - b2**t),
            1 - b1**t,
            alpha_t,
            hp["epsilon"],
            hp["weight_decay"],
            -lr,
        ]
    ).to(params[0])
    for g, p, m1, m2, v in zip(
        grads, params, state.exp_avg_fast, state.exp_avg_slow, state.exp_avg_sq, strict=True
    ):
        b1_, w1, b3_, w3, b2_, w2, bc2, bc1, alpha_, eps, wd, neg_lr = rows(coefs, p)
        m1.mul_(b1_).addcmul_(g, w1)
        m2.mul_(b3_).addcmul_(g, w3)
        v.mul_(b2_).addcmul_(g * w2, g)  # (c g) g, as addcmul(g, g, value=c) forms it
        denom = v.sqrt().div_(bc2).add_(eps)
        update = (m1 / bc1).addcmul_(m2, alpha_).div_(denom).addcmul_(p, wd)
        p.addcmul_(update, neg_lr)


# ---------------------------------------------------------------------------------------------
# Definitions
# ---------------------------------------------------------------------------------------------


def _warmup(name: str, doc: str, aliases: tuple[str, ...] = ()) -> ParamInfo:
    return ParamInfo(
        name, "int", doc, None, None, aliases=aliases, low=1.0, optional=True, neutral=0.0
    )


_PARAMS = with_common_knobs(
    learning_rate(1e-3, 1e-3),
    BETA_1,
    BETA_2,
    ParamInfo(
        "beta_3",
        "float",
        "decay of the slow momentum m₂ (its half-life ≈ ln ½/ln β₃ steps)",
        0.9999,
        0.9999,
        aliases=("beta3",),
        low=0.0,
        high=1.0,
        high_open=True,
    ),
    ParamInfo(
        "alpha",
        "float",
        "α, the weight of the slow momentum m₂ against the bias-corrected fast one",
        2.0,
        2.0,
        low=0.0,
    ),
    _warmup("alpha_warmup", "T_α: α grows linearly from 0 over these steps (null: off)"),
    _warmup(
        "beta_3_warmup",
        "T_β₃: β₃'s half-life grows linearly from β₁'s over these steps (null: off)",
        aliases=("beta3_warmup",),
    ),
    ParamInfo(
        "epsilon",
        "float",
        "ε added to the bias-corrected √v̂",
        1e-8,
        1e-8,
        aliases=("eps",),
        low=0.0,
    ),
)
_PARAMS["weight_decay"] = ParamInfo(
    "weight_decay",
    "float",
    "λ of the decoupled decay: λθ is added to the step (θ ← θ − ηλθ), both semantics",
    0.0,
    None,
    low=0.0,
    optional=True,
    neutral=0.0,
)

_RULE = (
    "m₁ ← β₁m₁ + (1−β₁)g;  m₂ ← β₃ₜm₂ + (1−β₃ₜ)g;  v ← β₂v + (1−β₂)g²;  "
    "θ ← θ − η[(m₁/(1−β₁ᵗ) + αₜm₂)/(√v/√(1−β₂ᵗ) + ε) + λθ]"
)

ADEMAMIX = OptimizerInfo(
    name="ademamix",
    params=_PARAMS,
    summary="Adam with a slow second momentum mixed into the step",
    reference="Pagliardini et al., 2024",
    update_rule={"torch": _RULE, "keras": _RULE},
    differences=(
        "Neither library ships AdEMAMix: torch semantics are the reference apple/ml-ademamix, "
        "keras semantics the same rule and defaults with keras's knobs (clipping). Weight decay "
        "is decoupled in both. α and β₃ warm up over alpha_warmup and beta_3_warmup steps when "
        "set (the authors warm both up over the whole run for long β₃)."
    ),
    kernel=lambda v, keras: Kernel(_init, _update_),
    decoupled_decay=True,
    own_weight_decay=True,
)

OPTIMIZERS = (ADEMAMIX,)
