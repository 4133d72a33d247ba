"""LAMB: Adam's direction, its length set per tensor by the trust ratio ‖θ‖/‖u‖
(You et al., 2020).

m ← β₁ m + (1 − β₁) g;  v ← β₂ v + (1 − β₂) g²
torch:  u = m/(√v + ε) + λθ;  r = min(‖θ‖, c)/‖u‖;  θ ← θ − η s r u
        (s = √(1 − β₂ᵗ)/(1 − β₁ᵗ) with ``debias``, else 1)
keras:  θ ← θ(1 − ηλ);  u = m̂/(√v̂ + ε);  r = min(‖θ‖, c)/‖u‖;  θ ← θ − η r u
        (c = ∞ and ``debias`` true: keras's; false: m and √v + ε uncorrected)
r = 1 where either norm is 0. Norms are per tensor and per trial.

keras semantics follow ``keras.optimizers.Lamb`` (bias-corrected, ε 1e-7, keras's decoupled
decay before the rule, ‖θ‖ unclamped). torch has no LAMB; torch semantics follow the PyTorch
implementation most used with it, ``torch_optimizer.Lamb`` (jettify/pytorch-optimizer 0.3.0,
from cybertronai/pytorch-lamb): the paper's v3 without bias correction (``debias`` false), ε
1e-6, λθ added to the update inside the trust ratio as the paper does, ‖θ‖ clamped to
``clamp_value`` 10; its ``adam`` flag (r = 1) is not taken. So the kernel decays itself
(``own_weight_decay``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from ..base import HyperParams, Kernel, per_trial, rows, step_counter, zeros_like_all
from ..lazy import torch
from ..parameters import (
    BETA_1,
    BETA_2,
    OptimizerInfo,
    ParamInfo,
    epsilon,
    flag,
    learning_rate,
    with_common_knobs,
)

if TYPE_CHECKING:
    from torch import Tensor


class LambState(NamedTuple):
    """``exp_avg``: m; ``exp_avg_sq``: v."""

    step: Tensor
    exp_avg: list[Tensor]
    exp_avg_sq: list[Tensor]


def _init(params: Sequence[Tensor]) -> LambState:
    return LambState(step_counter(params), zeros_like_all(params), zeros_like_all(params))


def _norm(x: Tensor, trial_axes: int) -> Tensor:
    """‖x‖ per trial, kept for broadcasting."""
    dims = tuple(range(trial_axes, x.ndim))
    return torch.linalg.vector_norm(x, dim=dims, keepdim=True) if dims else x.abs()


def lamb_kernel(*, keras: bool, debias: bool) -> Kernel:
    """LAMB (the module docstring's rule) in one convention, K-batched."""

    def update_(
        grads: Sequence[Tensor], state: LambState, params: Sequence[Tensor], hp: HyperParams
    ) -> None:
        lr, b1, b2, eps = hp["learning_rate"], hp["beta_1"], hp["beta_2"], hp["epsilon"]
        wd, clamp = hp["weight_decay"], hp["clamp_value"]
        trial_axes = lr.ndim
        state.step.add_(1)
        t = state.step
        bc1, bc2 = 1 - b1**t, 1 - b2**t
        if keras and debias:  # u = (m/bc1)/(√v/√bc2 + ε) = (√bc2/bc1)·m/(√v + ε√bc2)
            scale, e = torch.sqrt(bc2) / bc1, eps * torch.sqrt(bc2)
        elif debias:  # torch: the step, not u, is scaled (λθ joins u unscaled)
            scale, e = torch.sqrt(bc2) / bc1, eps
        else:
            scale, e = torch.ones_like(bc2), eps
        coefs = torch.stack([1 - b1, 1 - b2, e, scale, wd, 1 - lr * wd, clamp])
        coefs = coefs.to(params[0])
        for g, p, m, v in zip(grads, params, state.exp_avg, state.exp_avg_sq, strict=True):
            w1, w2, e_, scale_, wd_, shrink, clamp_ = rows(coefs, p)
            m.lerp_(g, w1)
            v.lerp_(g.mul_(g), w2)
            u = torch.sqrt(v, out=g).add_(e_)  # g is scratch from here
            torch.div(m, u, out=u)
            if keras:
                u.mul_(scale_)
                p.mul_(shrink)
            else:
                u.addcmul_(p, wd_)
            weight_norm = torch.minimum(_norm(p, trial_axes), clamp_)  # c = ∞: keras's
            update_norm = _norm(u, trial_axes)
            usable = (weight_norm > 0) & (update_norm > 0)
            ratio = torch.where(usable, weight_norm / update_norm, torch.ones_like(weight_norm))
            step = -per_trial(lr, p) * ratio
            if not keras:
                step = step * scale_
            p.addcmul_(u, step)

    return Kernel(_init, update_)


# ---------------------------------------------------------------------------------------------
# Definitions
# ---------------------------------------------------------------------------------------------


def _kernel(values: Mapping[str, Any], keras: bool) -> Kernel:
    return lamb_kernel(keras=keras, debias=values["debias"])


_PARAMS = with_common_knobs(
    learning_rate(1e-3, 1e-3),
    BETA_1,
    BETA_2,
    epsilon(1e-6, 1e-7, "ε added to √v (keras: to the bias-corrected √v̂)"),
    ParamInfo(
        "clamp_value",
        "float",
        "c, the largest ‖θ‖ the trust ratio uses (torch_optimizer's; keras: null, no clamp)",
        10.0,
        None,
        low=0.0,
        optional=True,
        neutral=math.inf,
    ),
    flag("debias", "bias-correct m and v"),
)
_PARAMS["debias"] = ParamInfo(  # defaults differ: a flag() has one
    "debias",
    "bool",
    "bias-correct m and v (keras always does; torch_optimizer's default: no, as paper v3)",
    False,
    True,
    structural=True,
)
_PARAMS["weight_decay"] = ParamInfo(
    "weight_decay",
    "float",
    "λ: torch adds λθ to the update inside the trust ratio; keras decays θ ← θ − ηλθ first",
    0.0,
    None,
    low=0.0,
    optional=True,
    neutral=0.0,
)

LAMB = OptimizerInfo(
    name="lamb",
    params=_PARAMS,
    summary="Adam's direction scaled per tensor by the trust ratio ‖θ‖/‖u‖",
    reference="You et al., 2020",
    update_rule={
        "torch": (
            "m, v as Adam;  u = m/(√v + ε) + λθ;  r = min(‖θ‖, c)/‖u‖;  θ ← θ − η r u "
            "(debias: × √(1−β₂ᵗ)/(1−β₁ᵗ))"
        ),
        "keras": "θ ← θ(1 − ηλ);  m, v as Adam;  u = m̂/(√v̂ + ε);  r = ‖θ‖/‖u‖;  θ ← θ − η r u",
    },
    differences=(
        "torch has no LAMB: torch semantics are torch_optimizer.Lamb's (no bias correction, ε "
        "1e-6, λθ inside the trust ratio, ‖θ‖ clamped to 10); keras: bias-corrected, ε 1e-7, "
        "decoupled decay before the rule, no clamp. r = 1 where ‖θ‖ or ‖u‖ is 0."
    ),
    kernel=_kernel,
    own_weight_decay=True,
)

OPTIMIZERS = (LAMB,)
