"""What runs around every kernel, in place: loss unscaling, accumulation, clipping, maximize,
weight decay.

"Per trial" matters in the batched form: with K trials stacked on the leading axis, a norm is
taken over every axis except the trial axis, so one trial's gradients never clip another's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from .base import HyperParams, Kernel, per_trial, zeros_like_all
from .lazy import torch

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "AccumulationState",
    "accumulate_gradients",
    "clip_by_global_norm_coefficient",
    "clip_by_norm_coefficients",
    "decay_weights_",
    "gradient_stages",
]

# torch.nn.utils.clip_grad_norm_ divides by (norm + 1e-6).
TORCH_CLIP_EPS = 1e-6


def _sum_sq(g: Tensor, trial_axes: int) -> Tensor:
    """Sum of squares over every axis except the leading ``trial_axes``."""
    return torch.sum(g * g, dim=tuple(range(trial_axes, g.ndim)))


def _norm(g: Tensor, trial_axes: int) -> Tensor:
    """L2 norm over every axis except the leading ``trial_axes`` (torch.linalg.vector_norm)."""
    dims = tuple(range(trial_axes, g.ndim))
    return torch.linalg.vector_norm(g, dim=dims) if dims else g.abs()


def clip_by_norm_coefficients(
    grads: Sequence[Tensor], max_norm: float, *, keras: bool, trial_axes: int
) -> list[Tensor]:
    """Per trial, the factor each tensor's gradient is multiplied by.

    keras (``clipnorm``): c / max(‖g‖, c).
    torch (``clip_grad_norm_`` on each tensor alone): min(1, c / (‖g‖ + 1e-6)).
    """
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
    """Per trial, the factor all gradients are multiplied by.

    keras (``global_clipnorm``): n = √Σ‖g‖²;  c · min(1/n, 1/c).
    torch (``clip_grad_norm_``): n = ‖(‖g₁‖, ‖g₂‖, …)‖;  min(1, c / (n + 1e-6)).
    """
    if keras:
        norm = torch.sqrt(sum(_sum_sq(g, trial_axes) for g in grads))
        scale = max_norm * torch.minimum(1.0 / norm, torch.full_like(norm, 1.0 / max_norm))
        return scale + (norm - norm)  # NaN/inf norms poison the step, as in keras
    norms = torch.stack([_norm(g, trial_axes) for g in grads], dim=-1)
    norm = torch.linalg.vector_norm(norms, dim=-1)
    return torch.clamp(max_norm / (norm + TORCH_CLIP_EPS), max=1.0)


def gradient_stages(
    values: Mapping[str, Any], keras: bool, *, maximize: bool
) -> Callable[[list[Tensor], int], None]:
    """``apply(grads, trial_axes)``: the one clipping knob that is set, then g ← −g under
    ``maximize`` (torch.optim's order; clipping is symmetric in the sign), in place.

    g ← g · c_i (``clipnorm``, per tensor), g ← g · c (``global_clipnorm``, per trial),
    g ← clamp(g, −c, c) (``clipvalue``).
    """
    clipnorm, global_clipnorm = values["clipnorm"], values["global_clipnorm"]
    clipvalue = values["clipvalue"]

    def apply(grads: list[Tensor], trial_axes: int) -> None:
        if clipnorm is not None:
            coefficients = clip_by_norm_coefficients(
                grads, clipnorm, keras=keras, trial_axes=trial_axes
            )
            for g, c in zip(grads, coefficients, strict=True):
                g.mul_(per_trial(c, g))
        elif global_clipnorm is not None:
            c = clip_by_global_norm_coefficient(
                grads, global_clipnorm, keras=keras, trial_axes=trial_axes
            )
            for g in grads:
                g.mul_(per_trial(c, g))
        elif clipvalue is not None:
            for g in grads:
                g.clamp_(-clipvalue, clipvalue)
        if maximize:
            for g in grads:
                g.neg_()

    return apply


def decay_weights_(
    grads: Sequence[Tensor], params: Sequence[Tensor], hp: HyperParams, decoupled: bool
) -> None:
    """Weight decay in place: θ ← θ(1 − ηλ) (decoupled: AdamW, keras) or g ← g + λθ (coupled
    L2, torch's classic ``weight_decay``). References: Loshchilov & Hutter, 2019."""
    wd = hp["weight_decay"]
    if decoupled:
        factor = 1 - hp["learning_rate"] * wd
        for p in params:
            p.mul_(per_trial(factor, p))
    else:
        for g, p in zip(grads, params, strict=True):
            g.addcmul_(p, per_trial(wd, p))


class AccumulationState(NamedTuple):
    """``mini_step``: calls since the last update (a CPU counter: reading it never waits for
    the device); ``acc_grads``: their gradient sum; ``inner``: the kernel's state."""

    mini_step: Tensor
    acc_grads: list[Tensor]
    inner: Any


def accumulate_gradients(inner: Kernel, steps: int) -> Kernel:
    """Run ``inner`` on every ``steps``-th call, on the mean of the gradients since the last
    (keras's ``gradient_accumulation_steps``).

    a ← a + g;  on every N-th call: θ, s ← inner(a / N, s, θ);  a ← 0.
    """

    def init(params: Sequence[Tensor]) -> AccumulationState:
        counter = torch.zeros((), dtype=torch.int64)
        return AccumulationState(counter, zeros_like_all(params), inner.init(params))

    def update_(
        grads: Sequence[Tensor],
        state: AccumulationState,
        params: Sequence[Tensor],
        hp: HyperParams,
    ) -> None:
        for a, g in zip(state.acc_grads, grads, strict=True):
            a.add_(g)
        state.mini_step.add_(1)
        if int(state.mini_step) < steps:
            return
        state.mini_step.zero_()
        for a in state.acc_grads:
            a.div_(steps)
        inner.update_(state.acc_grads, state.inner, params, hp)  # a is scratch there
        for a in state.acc_grads:
            a.zero_()

    return Kernel(init, update_)
