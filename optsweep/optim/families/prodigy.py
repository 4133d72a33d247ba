"""Prodigy: Adam whose step size d is estimated as it goes, learning-rate free (Mishchenko &
Defazio, 2024), as the reference konstmish/prodigy computes it (``prodigyopt.Prodigy`` 1.1.2).

Per trial, over all its tensors (θ₀: the parameters at ``init``; k: the steps taken):
bc = √(1 − β₂ᵏ⁺¹)/(1 − β₁ᵏ⁺¹) with ``use_bias_correction``, else 1;  dη = d η bc
r ← β₃ r + (d/d₀) dη ⟨g, θ₀ − θ⟩;  s ← β₃ s + (d/d₀) dη g  (``safeguard_warmup``: (d/d₀) d g)
m ← β₁ m + d (1 − β₁) g;  v ← β₂ v + d² (1 − β₂) g²
d̂ = c r/‖s‖₁;  d ← max(d, d̂) while d = d₀;  d_max ← max(d_max, d̂);  d' = min(d_max, d γ)
θ ← θ − λ dη θ (decoupled);  θ ← θ − dη m/(√v + d' ε)   (β₁ = 0: − dη d' g/(√v + d' ε))
β₃ default √β₂; d starts at d₀; γ (``growth_rate``) default ∞. A step whose ‖s‖₁ is 0 (no
gradient yet) changes nothing but the moments, as the reference returns early.

Torch semantics are the reference (torch ships no Prodigy): ``weight_decay`` decoupled as
above by default, coupled g + λθ with ``decoupled_weight_decay`` false (the reference's
``decouple``). Keras ships none either: keras semantics are the same rule and defaults with
keras's knobs (keras's clipping) and weight decay always decoupled — the reference's
θ − λ dη θ is keras's θ − ηλθ at Prodigy's effective rate dη (keras's own would decay by λη
with η ≈ 1, the multiplier). The reference's ``slice_p`` (statistics on every p-th element)
and ``fsdp_in_use`` are not taken: every element counts, as with slice_p = 1.

State: d, d_max, d_numerator (r) and k per trial (0-d until the first update), θ₀ (``p0``) and
s, m, v per tensor: four copies of the parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from ..base import HyperParams, Kernel, rows, step_counter, zeros_like_all
from ..lazy import torch
from ..parameters import (
    BETA_1,
    BETA_2,
    OptimizerInfo,
    ParamInfo,
    flag,
    learning_rate,
    with_common_knobs,
)

if TYPE_CHECKING:
    from torch import Tensor


class ProdigyState(NamedTuple):
    """The reference's names: ``d``, ``d_max``, ``d_numerator`` and ``k`` (steps taken, the
    bias corrections' count) per trial; ``p0`` (θ₀), ``s``, ``exp_avg`` (m), ``exp_avg_sq``
    (v) per tensor."""

    step: Tensor
    d: Tensor
    d_max: Tensor
    d_numerator: Tensor
    k: Tensor
    p0: list[Tensor]
    s: list[Tensor]
    exp_avg: list[Tensor]
    exp_avg_sq: list[Tensor]


def _scalar(params: Sequence[Tensor]) -> Tensor:
    device = params[0].device if params else None
    dtype = torch.float32 if device is not None and device.type == "mps" else torch.float64
    return torch.zeros((), dtype=dtype, device=device)


def _init(params: Sequence[Tensor]) -> ProdigyState:
    return ProdigyState(
        step_counter(params),
        _scalar(params),
        _scalar(params),
        _scalar(params),
        _scalar(params),
        [p.detach().clone() for p in params],
        zeros_like_all(params),
        zeros_like_all(params),
        zeros_like_all(params),
    )


def _store(state_leaf: Tensor, value: Tensor) -> None:
    """A per-trial scalar written back (0-d before the first update, then hp's shape)."""
    state_leaf.resize_(value.shape).copy_(value)


def _dot(a: Tensor, b: Tensor, trial_axes: int) -> Tensor:
    """⟨a, b⟩ per trial: torch.dot for one trial, as the reference; a batched matrix product
    of (K, 1, n) by (K, n, 1) for K."""
    if trial_axes == 0:
        return torch.dot(a.reshape(-1), b.reshape(-1))
    n = a[0].numel()
    return torch.bmm(a.reshape(-1, 1, n), b.reshape(-1, n, 1)).reshape(a.shape[:trial_axes])


def prodigy_kernel(*, decoupled: bool, bias_correction: bool, safeguard_warmup: bool) -> Kernel:
    """Prodigy (the module docstring's rule), K-batched: every sum per trial."""

    def update_(
        grads: Sequence[Tensor], state: ProdigyState, params: Sequence[Tensor], hp: HyperParams
    ) -> None:
        lr, b1, b2, d0 = hp["learning_rate"], hp["beta_1"], hp["beta_2"], hp["d0"]
        trial_axes = lr.ndim
        b3 = torch.where(hp["beta_3"] < 0, torch.sqrt(b2), hp["beta_3"])  # < 0: None, √β₂
        first = state.step == 0
        d = torch.where(first, d0, state.d) + torch.zeros_like(lr)
        d_max = torch.where(first, d0, state.d_max) + torch.zeros_like(lr)
        k = state.k + torch.zeros_like(lr)
        state.step.add_(1)
        if bias_correction:
            dlr = d * lr * ((1 - b2 ** (k + 1)) ** 0.5 / (1 - b1 ** (k + 1)))
        else:
            dlr = d * lr
        wd = hp["weight_decay"]
        ratio = d / d0
        coupled = torch.zeros_like(wd) if decoupled else wd
        s_weight = ratio * d if safeguard_warmup else ratio * dlr
        coefs = torch.stack([coupled, b1, d * (1 - b1), b2, d * d * (1 - b2), b3, s_weight])
        coefs = coefs.to(params[0])
        numerator = state.d_numerator * b3
        delta = torch.zeros_like(lr)
        denom = torch.zeros_like(lr)

        def per_trial_sum(x: Tensor) -> Tensor:
            return x.reshape(*x.shape[:trial_axes], -1).sum(-1).to(lr.dtype)

        for g, p, p0, s, m, v in zip(
            grads, params, state.p0, state.s, state.exp_avg, state.exp_avg_sq, strict=True
        ):
            wd_, b1_, w1, b2_, w2, b3_, ws = rows(coefs, p)
            if not decoupled:
                g.addcmul_(p, wd_)
            delta = delta + ratio * dlr * _dot(g, p0 - p, trial_axes).to(lr.dtype)
            m.mul_(b1_).addcmul_(g, w1)
            v.mul_(b2_).addcmul_(g * w2, g)  # (c g) g, as addcmul(g, g, value=c) forms it
            s.mul_(b3_).addcmul_(g, ws)
            denom = denom + per_trial_sum(s.abs())

        live = denom > 0  # the reference returns before its step otherwise
        numerator = numerator + delta
        d_hat = hp["d_coef"] * numerator / denom
        new_d = torch.where(d == d0, torch.maximum(d, d_hat), d)
        new_d_max = torch.maximum(d_max, d_hat)
        new_d = torch.minimum(new_d_max, new_d * hp["growth_rate"])
        new_d = torch.where(live, new_d, d)
        _store(state.d, new_d)
        _store(state.d_max, torch.where(live, new_d_max, d_max))
        _store(state.d_numerator, torch.where(live, numerator, state.d_numerator))
        _store(state.k, torch.where(live, k + 1, k))

        on = live.to(lr.dtype)
        decay = -wd * dlr * on if decoupled else torch.zeros_like(wd)
        # β₁ = 0: the reference steps by dη d' g, and m holds d g (d before this step's update)
        momentum_free = torch.where(b1 == 0, new_d / d, torch.ones_like(d))
        step = torch.stack([decay, new_d * hp["epsilon"], -dlr * on * momentum_free])
        step = step.to(params[0])
        for p, m, v in zip(params, state.exp_avg, state.exp_avg_sq, strict=True):
            decay_, d_eps, neg_step = rows(step, p)
            if decoupled:
                p.addcmul_(p, decay_)
            p.addcmul_(m / v.sqrt().add_(d_eps), neg_step)

    return Kernel(_init, update_)


# ---------------------------------------------------------------------------------------------
# Definitions
# ---------------------------------------------------------------------------------------------


def _kernel(values: Mapping[str, Any], keras: bool) -> Kernel:
    return prodigy_kernel(
        decoupled=keras or values["decoupled_weight_decay"],
        bias_correction=values["use_bias_correction"],
        safeguard_warmup=values["safeguard_warmup"],
    )


_PARAMS = with_common_knobs(
    learning_rate(1.0, 1.0),
    BETA_1,
    BETA_2,
    ParamInfo(
        "beta_3",
        "float",
        "decay of the d estimate's sums r and s (null: √β₂)",
        None,
        None,
        aliases=("beta3",),
        low=0.0,
        high=1.0,
        high_open=True,
        optional=True,
        neutral=-1.0,  # the kernel reads a negative β₃ as √β₂
    ),
    ParamInfo(
        "epsilon",
        "float",
        "ε, added to √v as d ε",
        1e-8,
        1e-8,
        aliases=("eps",),
        low=0.0,
        low_open=True,
    ),
    ParamInfo(
        "d0",
        "float",
        "d₀, the initial estimate of the step size d",
        1e-6,
        1e-6,
        low=0.0,
        low_open=True,
    ),
    ParamInfo(
        "d_coef",
        "float",
        "c, the factor of the estimate d̂ (the preferred knob: 0.5-2)",
        1.0,
        1.0,
        low=0.0,
        low_open=True,
    ),
    ParamInfo(
        "growth_rate",
        "float",
        "γ, the most d may grow by in a step (null: unbounded; 1.02 warms up)",
        None,
        None,
        low=1.0,
        optional=True,
        neutral=float("inf"),
    ),
    flag("use_bias_correction", "Adam's bias correction in the effective rate dη"),
    flag("safeguard_warmup", "weigh s by (d/d₀) d instead of (d/d₀) dη (for warmup)"),
    ParamInfo(
        "decoupled_weight_decay",
        "bool",
        "decay θ ← θ − λ dη θ (the reference's decouple, default); false: g + λθ (torch only)",
        True,
        True,
        aliases=("decouple",),
        structural=True,
    ),
)
_PARAMS["weight_decay"] = ParamInfo(
    "weight_decay",
    "float",
    "λ: θ ← θ − λ dη θ at the effective rate dη (coupled g + λθ without "
    "decoupled_weight_decay, torch only)",
    0.0,
    None,
    low=0.0,
    optional=True,
    neutral=0.0,
)

PRODIGY = OptimizerInfo(
    name="prodigy",
    params=_PARAMS,
    summary="Adam with a learning-rate-free step size d (D-adaptation's successor)",
    reference="Mishchenko & Defazio, 2024",
    update_rule={
        "torch": (
            "dη = d·η·bc;  r ← β₃r + (d/d₀)dη⟨g, θ₀−θ⟩;  s ← β₃s + (d/d₀)dη g;  "
            "m ← β₁m + d(1−β₁)g;  v ← β₂v + d²(1−β₂)g²;  d ← min(d_max ← max(d_max, c r/‖s‖₁), "
            "dγ);  θ ← θ − λdηθ − dη m/(√v + dε)"
        ),
        "keras": (
            "dη = d·η·bc;  r ← β₃r + (d/d₀)dη⟨g, θ₀−θ⟩;  s ← β₃s + (d/d₀)dη g;  "
            "m ← β₁m + d(1−β₁)g;  v ← β₂v + d²(1−β₂)g²;  d ← min(d_max ← max(d_max, c r/‖s‖₁), "
            "dγ);  θ ← θ − λdηθ − dη m/(√v + dε)"
        ),
    },
    differences=(
        "Neither library ships Prodigy: torch semantics are the reference konstmish/prodigy "
        "(prodigyopt), keras semantics the same rule with keras's knobs (clipping; weight decay "
        "always decoupled, at the effective rate dη as the reference decays). η is a multiplier "
        "of the estimated d: leave it at 1. slice_p is not taken (every element counts)."
    ),
    kernel=_kernel,
    own_weight_decay=True,
    state_copies=4,
)

OPTIMIZERS = (PRODIGY,)
