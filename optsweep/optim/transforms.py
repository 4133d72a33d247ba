"""Stages composed around any update rule: loss scale, clipping, weight decay, accumulation.

Each function returns a :class:`~optsweep.optim.base.Stage`. "Per trial" matters in the
batched form: with K trials stacked on the leading axis, a norm is taken over every axis
except the trial axis, so one trial's gradients never clip another's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .base import (
    EmptyState,
    HyperParams,
    Params,
    Stage,
    expand,
    tree_where,
    trial_ndim,
    zeros_like_all,
)

__all__ = [
    "accumulate_gradients",
    "add_weight_decay",
    "clip_by_global_norm",
    "clip_by_global_norm_coefficient",
    "clip_by_norm",
    "clip_by_norm_coefficients",
    "clip_by_value",
    "decay_weights",
    "unscale_loss",
]

# torch.nn.utils.clip_grad_norm_ divides by (norm + 1e-6).
TORCH_CLIP_EPS = 1e-6


def _init_empty(params: Sequence[Tensor]) -> EmptyState:
    return EmptyState()


def _grad_stage(fn: Any) -> Stage:
    """A stateless stage that maps the gradients with ``fn(grads, params, hp)``."""

    def update(
        grads: Sequence[Tensor], state: EmptyState, params: Sequence[Tensor], hp: HyperParams
    ) -> tuple[Params, Params, EmptyState]:
        return fn(list(grads), list(params), hp), list(params), state

    return Stage(_init_empty, update)


def _sum_sq(g: Tensor, trial_axes: int) -> Tensor:
    """Sum of squares over every axis except the leading ``trial_axes``."""
    return torch.sum(g * g, dim=tuple(range(trial_axes, g.ndim)))


def _norm(g: Tensor, trial_axes: int) -> Tensor:
    """L2 norm over every axis except the leading ``trial_axes`` (torch.linalg.vector_norm)."""
    dims = tuple(range(trial_axes, g.ndim))
    return torch.linalg.vector_norm(g, dim=dims) if dims else g.abs()


def unscale_loss(scale: float) -> Stage:
    """Divide gradients by ``loss_scale_factor`` (the caller multiplied the loss by it).

    g ← g / s
    """
    return _grad_stage(lambda grads, params, hp: [g / scale for g in grads])


def clip_by_norm_coefficients(
    grads: Sequence[Tensor], max_norm: float, *, keras: bool, trial_axes: int
) -> list[Tensor]:
    """Per trial, the factor each tensor's gradient is multiplied by (``clip_by_norm``)."""
    coefficients = []
    for g in grads:
        norm = _norm(g, trial_axes)
        if keras:
            coefficients.append(max_norm / torch.clamp(norm, min=max_norm))
        else:
            coefficients.append(torch.clamp(max_norm / (norm + TORCH_CLIP_EPS), max=1.0))
    return coefficients


def clip_by_global_norm_coefficient(
    grads: Sequence[Tensor], max_norm: float, *, keras: bool, trial_axes: int
) -> Tensor:
    """Per trial, the factor all gradients are multiplied by (``clip_by_global_norm``)."""
    if keras:
        norm = torch.sqrt(sum(_sum_sq(g, trial_axes) for g in grads))
        scale = max_norm * torch.minimum(1.0 / norm, torch.full_like(norm, 1.0 / max_norm))
        return scale + (norm - norm)  # NaN/inf norms poison the step, as in keras
    norms = torch.stack([_norm(g, trial_axes) for g in grads], dim=-1)
    norm = torch.linalg.vector_norm(norms, dim=-1)
    return torch.clamp(max_norm / (norm + TORCH_CLIP_EPS), max=1.0)


def clip_by_norm(max_norm: float, *, keras: bool) -> Stage:
    """Clip each parameter tensor's gradient (per trial) to L2 norm ``max_norm``.

    keras (``clipnorm``): g ← g · c / max(‖g‖, c).
    torch (``clip_grad_norm_`` on each tensor alone): g ← g · min(1, c / (‖g‖ + 1e-6)).
    """

    def fn(grads: Params, params: Params, hp: HyperParams) -> Params:
        k = trial_ndim(hp)
        coefficients = clip_by_norm_coefficients(grads, max_norm, keras=keras, trial_axes=k)
        return [g * expand(c, g) for g, c in zip(grads, coefficients, strict=True)]

    return _grad_stage(fn)


def clip_by_global_norm(max_norm: float, *, keras: bool) -> Stage:
    """Clip all gradients of a trial together to L2 norm ``max_norm``.

    keras (``global_clipnorm``): n = √Σ‖g‖²;  g ← g · c · min(1/n, 1/c).
    torch (``clip_grad_norm_``): n = ‖(‖g₁‖, ‖g₂‖, …)‖;  g ← g · min(1, c / (n + 1e-6)).
    """

    def fn(grads: Params, params: Params, hp: HyperParams) -> Params:
        k = trial_ndim(hp)
        scale = clip_by_global_norm_coefficient(grads, max_norm, keras=keras, trial_axes=k)
        return [g * expand(scale, g) for g in grads]

    return _grad_stage(fn)


def clip_by_value(limit: float) -> Stage:
    """Clip gradients elementwise: g ← clamp(g, −c, c) (keras ``clipvalue``,
    torch ``clip_grad_value_``)."""
    return _grad_stage(lambda grads, params, hp: [torch.clamp(g, -limit, limit) for g in grads])


def add_weight_decay() -> Stage:
    """Coupled L2 weight decay, torch's ``weight_decay`` for classic optimizers.

    g ← g + λ θ        (λ = ``hp["weight_decay"]``)
    """

    def fn(grads: Params, params: Params, hp: HyperParams) -> Params:
        wd = hp["weight_decay"]
        return [g + expand(wd, p) * p for g, p in zip(grads, params, strict=True)]

    return _grad_stage(fn)


def decay_weights() -> Stage:
    """Decoupled weight decay (AdamW; keras's ``weight_decay`` for every optimizer).

    θ ← θ · (1 − η λ)

    References: Loshchilov & Hutter, 2019.
    """

    def update(
        grads: Sequence[Tensor], state: EmptyState, params: Sequence[Tensor], hp: HyperParams
    ) -> tuple[Params, Params, EmptyState]:
        factor = 1 - hp["learning_rate"] * hp["weight_decay"]
        return list(grads), [p * expand(factor, p) for p in params], state

    return Stage(_init_empty, update)


class AccumulationState(NamedTuple):
    """``mini_step``: calls since the last update; ``acc_grads``: their gradient sum."""

    mini_step: Tensor
    acc_grads: list[Tensor]
    inner: Any


def accumulate_gradients(inner: Stage, steps: int) -> Stage:
    """Run ``inner`` every ``steps``-th call on the mean of the gradients since the last.

    a ← a + g;  on every N-th call: θ, s ← inner(a / N, s, θ);  a ← 0.

    The inner update is computed on every call and selected with ``torch.where``, so no
    Python branch depends on a tensor value (keras's ``gradient_accumulation_steps``).
    """

    def init(params: Sequence[Tensor]) -> AccumulationState:
        device = params[0].device if params else None
        return AccumulationState(
            torch.zeros((), dtype=torch.int64, device=device),
            zeros_like_all(params),
            inner.init(params),
        )

    def update(
        grads: Sequence[Tensor],
        state: AccumulationState,
        params: Sequence[Tensor],
        hp: HyperParams,
    ) -> tuple[Params, Params, AccumulationState]:
        acc = [a + g for a, g in zip(state.acc_grads, grads, strict=True)]
        is_update = state.mini_step == steps - 1
        mean = [a / steps for a in acc]
        _, new_params, new_inner = inner.update(mean, state.inner, params, hp)
        params_out = [torch.where(is_update, n, p) for n, p in zip(new_params, params, strict=True)]
        new_state = AccumulationState(
            torch.where(is_update, torch.zeros_like(state.mini_step), state.mini_step + 1),
            [torch.where(is_update, torch.zeros_like(a), a) for a in acc],
            tree_where(is_update, new_inner, state.inner),
        )
        return list(grads), params_out, new_state

    return Stage(init, update)
