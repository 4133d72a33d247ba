"""Adafactor: a second moment factored into row and column means for every tensor of two or
more axes (over its last two), no first moment, a relative step (Shazeer & Stern, 2018).

wₜ = t^c (c = ``beta_2_decay`` ≤ 0: 1 − β₂ₜ);  ρₜ = min(η, 1/√t);  αₜ = max(ε₂, RMS(θ)) ρₜ
factored: R ← R + wₜ(mean₋₁(x) − R);  C ← C + wₜ(mean₋₂(x) − C);  V = R C / mean(R)
otherwise: V ← V + wₜ(x − V)
u = g/√V;  θ ← θ − αₜ u / max(1, RMS(u)/d)

The two libraries differ (``torch.optim.Adafactor``, ``keras.optimizers.Adafactor``):
- torch: x = g²; V is clamped to ε₁² and mean(R) to ε₁ (ε₁ default: the dtype's machine ε);
  RMS(θ) is taken *before* the decoupled decay θ ← θ(1 − ηλ);
- keras: x = g² + ε₁ (ε₁ 1e-30), no clamp; the decay (keras's, before every rule) comes first,
  so RMS(θ) is of the decayed θ. keras's ``relative_step`` flag changes nothing for a
  constant η (ρₜ = min(η, 1/√t) either way) and is not taken.
So the kernel applies ``weight_decay`` itself (``own_weight_decay``). Trials are factored
each on its own: R and C carry the trial axis, every mean and RMS is per trial.

State follows torch's names (``row_var`` (…, R, 1), ``col_var`` (…, 1, C), ``variance``),
allocated on the first update, when the trial axis is known (``init`` cannot tell a stack of K
vectors from one matrix): before it each is a 0-d zero, which the unused ones stay.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from ..base import HyperParams, Kernel, per_trial, rows, step_counter
from ..lazy import torch
from ..parameters import OptimizerInfo, ParamInfo, learning_rate, with_common_knobs

if TYPE_CHECKING:
    from torch import Tensor


class AdafactorState(NamedTuple):
    """``row_var``: R and ``col_var``: C for factored tensors; ``variance``: V for the others
    (the other entries are 0-d zeros)."""

    step: Tensor
    row_var: list[Tensor]
    col_var: list[Tensor]
    variance: list[Tensor]


def _init(params: Sequence[Tensor]) -> AdafactorState:
    def placeholders() -> list[Tensor]:
        return [p.new_zeros(()) for p in params]

    return AdafactorState(step_counter(params), placeholders(), placeholders(), placeholders())


def _allocate(state: AdafactorState, i: int, p: Tensor, factored: bool) -> None:
    """Trial-shaped state for ``p`` on its first update (a Python shape check: no sync). The
    placeholder may have become per-trial, (K,) (``transforms.dynamic_loss_scale``)."""

    def zeros(shape: tuple[int, ...], placeholder: Tensor) -> Tensor:
        extra = (1,) * (len(shape) - placeholder.ndim)
        return p.new_zeros(shape) + placeholder.reshape(placeholder.shape + extra)

    if factored:
        row_shape, col_shape = (*p.shape[:-1], 1), (*p.shape[:-2], 1, p.shape[-1])
        if state.row_var[i].shape != row_shape:
            state.row_var[i] = zeros(row_shape, state.row_var[i])
            state.col_var[i] = zeros(col_shape, state.col_var[i])
    elif state.variance[i].shape != p.shape:
        state.variance[i] = zeros(tuple(p.shape), state.variance[i])


def _rms(x: Tensor, trial_axes: int, *, keras: bool) -> Tensor:
    """Per trial, √(mean x²) over every other axis, kept for broadcasting (torch: ‖x‖/√n)."""
    dims = tuple(range(trial_axes, x.ndim))
    if not dims:  # a scalar per trial (torch reduces every axis for dim=())
        return x.abs()
    n = math.prod(x.shape[trial_axes:])
    if keras:
        return torch.sqrt(torch.mean(x * x, dim=dims, keepdim=True))
    return torch.linalg.vector_norm(x, dim=dims, keepdim=True) / n**0.5


def adafactor_kernel(*, keras: bool, epsilon_1: float | None) -> Kernel:
    """Adafactor (the module docstring's rule) in one convention; ``epsilon_1`` None is the
    parameters' machine ε (torch's default)."""

    def update_(
        grads: Sequence[Tensor], state: AdafactorState, params: Sequence[Tensor], hp: HyperParams
    ) -> None:
        lr, wd = hp["learning_rate"], hp["weight_decay"]
        trial_axes = lr.ndim
        state.step.add_(1)
        t = state.step.to(lr.dtype)
        rho = torch.minimum(lr, 1 / torch.sqrt(t))
        coefs = torch.stack([t ** hp["beta_2_decay"], rho, hp["epsilon_2"], 1 - lr * wd])
        coefs = coefs.to(params[0])
        for i, (g, p) in enumerate(zip(grads, params, strict=True)):
            w, rho_, eps2, shrink = rows(coefs, p)
            eps1 = torch.finfo(p.dtype).eps if epsilon_1 is None else epsilon_1
            factored = p.ndim - trial_axes >= 2
            _allocate(state, i, p, factored)
            if keras:
                p.mul_(shrink)
            alpha = torch.maximum(eps2, _rms(p, trial_axes, keras=keras)) * rho_
            if not keras:
                p.mul_(shrink)
            x = g * g
            if keras:
                x.add_(eps1)
            if factored:
                r, c = state.row_var[i], state.col_var[i]
                r.lerp_(x.mean(dim=-1, keepdim=True), w)
                c.lerp_(x.mean(dim=-2, keepdim=True), w)
                r_mean = r.mean(dim=-2, keepdim=True)
                if not keras:
                    r_mean = r_mean.clamp(min=eps1)
                v = torch.matmul(r, c).div_(r_mean) if not keras else (r / r_mean) * c
            else:
                v = state.variance[i]
                v.lerp_(x, w)
            u = g / torch.sqrt(v) if keras else v.clamp(min=eps1 * eps1).rsqrt_().mul_(g)
            d = per_trial(hp["clip_threshold"], p)
            denom = torch.clamp(_rms(u, trial_axes, keras=keras) / d, min=1)
            p.sub_(u.mul_(alpha / denom))

    return Kernel(_init, update_)


# ---------------------------------------------------------------------------------------------
# Definitions
# ---------------------------------------------------------------------------------------------


def _kernel(values: Mapping[str, Any], keras: bool) -> Kernel:
    return adafactor_kernel(keras=keras, epsilon_1=values["epsilon_1"])


_PARAMS = with_common_knobs(
    learning_rate(1e-2, 1e-3),
    ParamInfo(
        "beta_2_decay",
        "float",
        "c in 1 − β₂ₜ = t^c, the weight of this step's squared gradient",
        -0.8,
        -0.8,
        aliases=("beta2_decay",),
        high=0.0,
    ),
    ParamInfo(
        "epsilon_1",
        "float",
        "ε₁: torch clamps V to ε₁² (null: the dtype's machine ε); keras adds it to g²",
        None,
        1e-30,
        structural=True,
        low=0.0,
        optional=True,
    ),
    ParamInfo(
        "epsilon_2",
        "float",
        "ε₂, the least RMS(θ) the step is relative to",
        1e-3,
        1e-3,
        low=0.0,
    ),
    ParamInfo(
        "clip_threshold",
        "float",
        "d: the update u is scaled down to RMS(u) ≤ d (torch requires d ≥ 1)",
        1.0,
        1.0,
        aliases=("d",),
        low=0.0,
        low_open=True,
    ),
)
_PARAMS["weight_decay"] = ParamInfo(
    "weight_decay",
    "float",
    "λ of the decoupled decay θ ← θ − ηλθ (both libraries; torch after reading RMS(θ))",
    0.0,
    None,
    low=0.0,
    optional=True,
    neutral=0.0,
)

ADAFACTOR = OptimizerInfo(
    name="adafactor",
    params=_PARAMS,
    summary="factored second moment, relative step, no momentum",
    reference="Shazeer & Stern, 2018",
    update_rule={
        "torch": (
            "αₜ = max(ε₂, RMS(θ))·min(η, 1/√t);  θ ← θ(1−ηλ);  R, C ← lerp(·, means of g², t^c);"
            "  V = max(RC/max(mean R, ε₁), ε₁²);  u = g/√V;  θ ← θ − αₜ u/max(1, RMS(u)/d)"
        ),
        "keras": (
            "θ ← θ(1−ηλ);  αₜ = max(ε₂, RMS(θ))·min(η, 1/√t);  R, C ← lerp(·, means of g²+ε₁, "
            "t^c);  V = RC/mean R;  u = g/√V;  θ ← θ − αₜ u/max(1, RMS(u)/d)"
        ),
    },
    differences=(
        "torch: ε₁ (default the dtype's ε) clamps V and mean R, η 1e-2, RMS(θ) read before the "
        "decay; keras: ε₁ 1e-30 added to g², η 1e-3, RMS(θ) of the decayed θ. Both factor every "
        "tensor of ≥ 2 axes over its last two; weight decay is decoupled in both."
    ),
    kernel=_kernel,
    decoupled_decay=True,
    own_weight_decay=True,
)

OPTIMIZERS = (ADAFACTOR,)
