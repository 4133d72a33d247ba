"""What runs around every kernel, in place: loss unscaling (static or dynamic), the weights'
moving average, accumulation, clipping, maximize, weight decay.

"Per trial" matters in the batched form: with K trials stacked on the leading axis, a norm is
taken over every axis except the trial axis, so one trial's gradients never clip another's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from .base import HyperParams, Kernel, clone_state, per_trial, zeros_like_all
from .lazy import torch

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "AccumulationState",
    "EMAState",
    "LossScaleState",
    "accumulate_gradients",
    "clip_by_global_norm_coefficient",
    "clip_by_norm_coefficients",
    "current_loss_scale",
    "decay_weights_",
    "dynamic_loss_scale",
    "evaluation_weights",
    "gradient_stages",
    "rule_state",
    "weights_average",
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


class EMAState(NamedTuple):
    """``ema_calls``: calls so far (keras's ``_iterations``); ``average``: a, one tensor per
    parameter; ``inner``: the state of what it wraps."""

    ema_calls: Tensor
    average: list[Tensor]
    inner: Any


def weights_average(inner: Kernel, overwrite_every: int | None, accumulation: int) -> Kernel:
    """An exponential moving average of the weights after every call (keras ``use_ema``).

    a ← μ a + (1 − μ) θ, with μ = 0 on the first update (so a₁ = θ₁) and μ = ``ema_momentum``
    after it; every ``overwrite_every`` updates, θ ← a. Updates are counted as keras counts
    ``iterations``: calls // ``accumulation``. Both choices are made on the device.
    """

    def init(params: Sequence[Tensor]) -> EMAState:
        device = params[0].device if params else None
        calls = torch.zeros((), dtype=torch.int64, device=device)
        return EMAState(calls, [p.detach().clone() for p in params], inner.init(params))

    def update_(
        grads: Sequence[Tensor], state: EMAState, params: Sequence[Tensor], hp: HyperParams
    ) -> None:
        inner.update_(grads, state.inner, params, hp)
        updates = torch.div(state.ema_calls, accumulation, rounding_mode="floor")
        mu = torch.where(updates != 0, hp["ema_momentum"], 0.0)
        overwrite = None
        if overwrite_every is not None:
            overwrite = (updates + 1) % overwrite_every == 0
        for a, p in zip(state.average, params, strict=True):
            a.lerp_(p, per_trial(1 - mu, a))
            if overwrite is not None:
                mask = overwrite.reshape(overwrite.shape + (1,) * (p.ndim - overwrite.ndim))
                p.copy_(torch.where(mask, a, p))
        state.ema_calls.add_(1)

    return Kernel(init, update_)


def _find(state: Any, kind: type) -> Any:
    """The first ``kind`` state along the ``inner`` fields of a state, or None."""
    while isinstance(state, tuple) and hasattr(state, "_fields"):
        if isinstance(state, kind):
            return state
        state = getattr(state, "inner", None)
    return None


def rule_state(state: Any) -> Any:
    """The family's own state at the end of the ``inner`` fields (what the kernel keeps)."""
    while isinstance(state, tuple) and hasattr(state, "inner"):
        state = state.inner
    return state


def evaluation_weights(state: Any, params: Sequence[Tensor]) -> Sequence[Tensor]:
    """The weights to evaluate: their moving average with ``use_ema`` (keras's
    ``SwapEMAWeights`` callback swaps it in for evaluation); else where the rule evaluates, if
    its state says (``evaluation_weights(params)``: Schedule-Free's x, computed from the
    gradient point y that ``params`` hold and the state, new tensors); else the weights."""
    ema = _find(state, EMAState)
    if ema is not None:
        return ema.average
    point = getattr(rule_state(state), "evaluation_weights", None)
    return params if point is None else point(params)


def evaluates_elsewhere(state: Any) -> bool:
    """Whether the rule itself evaluates at another point than the gradient point (Schedule-
    Free's x), not an EMA of the weights: a model's BatchNorm statistics, gathered at the
    gradient point, are then recomputed at that point before it is evaluated."""
    return _find(state, EMAState) is None and hasattr(rule_state(state), "evaluation_weights")


class LossScaleState(NamedTuple):
    """``loss_scale``: s, per trial (the caller multiplies the loss by it); ``good_steps``:
    finite steps since s last changed; ``inner``: the kernel's state, its counters per trial."""

    loss_scale: Tensor
    good_steps: Tensor
    inner: Any


def _finite_per_trial(grads: Sequence[Tensor], trial_axes: int) -> Tensor:
    """Whether every gradient of a trial is finite: ``(K,)`` (or ``()``) booleans."""
    finite = None
    for g in grads:
        ok = torch.isfinite(g).flatten(trial_axes).all(-1) if g.ndim > trial_axes else g.isfinite()
        finite = ok if finite is None else finite & ok
    return finite


def _per_trial_counters_(state: Any, shape: tuple[int, ...]) -> None:
    """0-d tensors of a state tree (step counters, products) made ``shape``, in place: trials
    that skip a step must keep their own count."""
    if isinstance(state, torch.Tensor):
        if state.ndim == 0 and shape:
            value = state.clone()
            state.resize_(shape).copy_(value.expand(shape))
    elif isinstance(state, (list, tuple)):
        for leaf in state:
            _per_trial_counters_(leaf, shape)


def _keep_where_(finite: Tensor, new: Any, old: Any) -> None:
    """``new`` ← ``old`` for the trials that are not ``finite``, leaf by leaf, in place. A leaf
    allocated by this update (Adafactor's factored moments, Muon's AdamW v) was a per-trial
    placeholder."""
    if isinstance(new, torch.Tensor):
        if old.shape != new.shape:
            old = old.reshape(old.shape + (1,) * (new.ndim - old.ndim))
        mask = finite.reshape(finite.shape + (1,) * (new.ndim - finite.ndim))
        new.copy_(torch.where(mask, new, old))
    elif isinstance(new, (list, tuple)):
        for n, o in zip(new, old, strict=True):
            _keep_where_(finite, n, o)


def dynamic_loss_scale(inner: Kernel, initial_scale: float, growth_steps: int) -> Kernel:
    """Dynamic loss scaling per trial (keras ``LossScaleOptimizer``, torch ``GradScaler``).

    The caller multiplies each trial's loss by its s (``state.loss_scale``). Then, per trial:
    g ← g / s; finite g: the inner update, then s ← 2s after ``growth_steps`` finite steps in a
    row; any non-finite g: no update (parameters and state as they were), s ← s/2. The skip is
    a selection on the device (the inner update runs on zeros for those trials and is thrown
    away), so nothing waits for it; it costs a copy of the parameters and state a step.
    """

    def init(params: Sequence[Tensor]) -> LossScaleState:
        device = params[0].device if params else None
        scale = torch.full((), initial_scale, dtype=torch.float32, device=device)
        good = torch.zeros((), dtype=torch.int64, device=device)
        return LossScaleState(scale, good, inner.init(params))

    def update_(
        grads: Sequence[Tensor], state: LossScaleState, params: Sequence[Tensor], hp: HyperParams
    ) -> None:
        trials = tuple(hp["learning_rate"].shape)
        if state.loss_scale.shape != trials:  # the first update of these trials
            _per_trial_counters_(state, trials)
        trial_axes = len(trials)
        for g in grads:
            g.div_(per_trial(state.loss_scale, g))
        finite = _finite_per_trial(grads, trial_axes)
        for g in grads:
            g.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
        params_before, state_before = [p.clone() for p in params], clone_state(state.inner)
        inner.update_(grads, state.inner, params, hp)
        _keep_where_(finite, list(params), params_before)
        _keep_where_(finite, state.inner, state_before)
        good = torch.where(finite, state.good_steps + 1, 0)
        grow = good >= growth_steps
        scale = state.loss_scale
        scale.copy_(torch.where(finite, torch.where(grow, scale * 2, scale), scale * 0.5))
        state.good_steps.copy_(torch.where(grow, 0, good))

    return Kernel(init, update_)


def current_loss_scale(state: Any) -> Tensor | None:
    """The per-trial loss scale of a state with dynamic loss scaling, else None."""
    found = _find(state, LossScaleState)
    return None if found is None else found.loss_scale
