"""The one dispatcher: an optimizer of the registry as an in-place kernel with its stages, and
the pure interface derived from it.

Order of the stages (keras's order, and what a torch user does by hand):

1. ``loss_scale_factor``: g ← g / s; or ``dynamic_loss_scale``: g ← g / s per trial, the
   step skipped for a trial whose gradients overflowed (``transforms.dynamic_loss_scale``);
2. ``use_ema``: the weights' moving average after every call, of everything below;
   ``gradient_accumulation_steps`` N > 1 wraps everything below, which then runs on the
   mean gradient of every N-th call;
3. clipping (``clipnorm`` per tensor, ``global_clipnorm`` per trial, ``clipvalue``), then
   g ← −g under ``maximize`` (the torch.optim wrapper's keyword);
4. weight decay: torch semantics adds λθ to g (coupled L2) except adamw, lion
   (``OptimizerInfo.decoupled_decay``) and ``decoupled_weight_decay``; those and every keras
   optimizer decay θ ← θ(1 − ηλ) first (a kernel with ``own_weight_decay`` decays itself);
5. the family's kernel (``families/``), or, on a CPU and where the family has one, torch's
   fused kernel called once per trial (weight decay included).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from .base import HyperParams, Kernel, Params, Transformation, clone_state
from .lazy import torch
from .registry import Semantics, optimizer_info, resolve
from .transforms import (
    accumulate_gradients,
    current_loss_scale,
    decay_weights_,
    dynamic_loss_scale,
    evaluates_elsewhere,
    evaluation_weights,
    gradient_stages,
    weights_average,
)

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "Kernels",
    "build",
    "current_loss_scale",
    "decoupled_weight_decay",
    "evaluates_elsewhere",
    "evaluation_weights",
    "inplace",
    "stack_hyperparameters",
    "state_slots",
]

Kernels = Literal["auto", "batched", "per_trial"]
KERNELS: tuple[Kernels, ...] = ("auto", "batched", "per_trial")


def decoupled_weight_decay(optimizer: str, semantics: Semantics, values: Mapping[str, Any]) -> bool:
    """Whether ``weight_decay`` is decoupled (θ ← θ − ηλθ) rather than coupled L2 (g + λθ)."""
    if semantics == "keras" or optimizer_info(optimizer).decoupled_decay:
        return True
    return bool(values.get("decoupled_weight_decay"))


def inplace(
    optimizer: str,
    semantics: Semantics,
    params: Mapping[str, Any],
    kernels: Kernels = "auto",
    *,
    maximize: bool = False,
) -> Kernel:
    """The optimizer, stages included, as a :class:`~optsweep.optim.base.Kernel`.

    ``update_(grads, state, params, hp)`` overwrites ``params`` and ``state`` and uses
    ``grads`` as scratch space. ``kernels`` picks the form where a family has two: ``auto``
    (torch's fused kernel per trial on a CPU, K-batched elsewhere), ``batched`` or
    ``per_trial`` (the fused kernel wherever it runs, K-batched ``hp`` only).
    """
    if kernels not in KERNELS:
        raise ValueError(f"kernels = {kernels!r}; valid: {', '.join(KERNELS)}")
    values = resolve(optimizer, semantics, params)
    info = optimizer_info(optimizer)
    keras = semantics == "keras"
    rule = info.kernel(values, keras)
    decoupled = decoupled_weight_decay(optimizer, semantics, values)
    fused = info.fused(values, keras, decoupled) if info.fused and kernels != "batched" else None
    clip_and_sign = gradient_stages(values, keras, maximize=maximize)
    own_decay = info.own_weight_decay  # the kernel decays where its library does
    # whether any trial of ``hp`` decays: read once per hp mapping (a host sync on a device),
    # the engine's lanes keep theirs; decaying by λ = 0 would compute the same, a pass later
    decays: list[tuple[Any, bool]] = []

    def inner_(grads: Sequence[Tensor], state: Any, params: Sequence[Tensor], hp: Any) -> None:
        trial_axes = hp["learning_rate"].ndim
        clip_and_sign(list(grads), trial_axes)
        on_cpu = params[0].device.type == "cpu"
        if fused is not None and trial_axes == 1 and (on_cpu or kernels == "per_trial"):
            fused(grads, state, params, hp)
            return
        if not own_decay:
            if not decays or decays[0][0] is not hp:
                decays[:] = [(hp, bool(hp["weight_decay"].ne(0).any()))]
            if decays[0][1]:
                decay_weights_(grads, params, hp, decoupled)
        rule.update_(grads, state, params, hp)

    kernel = Kernel(rule.init, inner_)
    steps = values["gradient_accumulation_steps"] or 1
    if steps > 1:
        kernel = accumulate_gradients(kernel, steps)
    if values["use_ema"]:
        kernel = weights_average(kernel, values["ema_overwrite_frequency"], steps)
    if values["dynamic_loss_scale"]:
        kernel = dynamic_loss_scale(kernel, values["initial_scale"], values["dynamic_growth_steps"])
    scale = values["loss_scale_factor"]

    def update_(grads: Sequence[Tensor], state: Any, params: Sequence[Tensor], hp: Any) -> None:
        # scratch must own its memory (autograd may hand back an expanded gradient)
        grads = [g if g.is_contiguous() else g.contiguous() for g in grads]
        if scale is not None:
            for g in grads:
                g.div_(scale)
        kernel.update_(grads, state, params, hp)

    return Kernel(kernel.init, update_)


def build(
    optimizer: str, semantics: Semantics, params: Mapping[str, Any], *, maximize: bool = False
) -> Transformation:
    """The optimizer as a pure :class:`~optsweep.optim.base.Transformation`, derived from
    :func:`inplace` (copy, update in place, return): inputs are never modified.

    Args:
        optimizer: registry name.
        semantics: ``"torch"`` or ``"keras"``.
        params: the canonical dictionary from :func:`~optsweep.optim.registry.resolve`
            (partial dictionaries are resolved again). Structural values (flags, clipping,
            accumulation, loss scale) are read here; continuous ones are ignored here and
            must be supplied to ``update`` in ``hp`` under ``Transformation.hyperparameters``.
        maximize: ascend instead of descend (torch.optim's ``maximize``).
    """
    kernel = inplace(optimizer, semantics, params, "batched", maximize=maximize)
    names = tuple(name for name, p in optimizer_info(optimizer).params.items() if not p.structural)

    def update(
        grads: Sequence[Tensor], state: Any, params: Sequence[Tensor], hp: HyperParams
    ) -> tuple[Params, Any]:
        missing = [name for name in names if name not in hp]
        if missing:
            raise KeyError(f"{optimizer}: hp lacks {', '.join(missing)}")
        device = params[0].device if params else None
        hp_ = {name: _as_tensor(hp[name], device) for name in names}
        new_params, new_state = [p.clone() for p in params], clone_state(state)
        kernel.update_([g.clone() for g in grads], new_state, new_params, hp_)
        return new_params, new_state

    return Transformation(
        init=kernel.init,
        update=update,
        hyperparameters=names,
        name=optimizer,
        semantics=semantics,
    )


def _as_tensor(value: Any, device: Any) -> Tensor:
    if isinstance(value, torch.Tensor):
        return value if device is None or value.device == device else value.to(device)
    return torch.tensor(value, dtype=torch.float64, device=device)


def stack_hyperparameters(
    optimizer: str,
    trials: Sequence[Mapping[str, Any]],
    *,
    dtype: Any = None,
    device: Any = None,
) -> dict[str, Tensor]:
    """``hp`` for K trials: each continuous hyperparameter as a ``(K,)`` tensor.

    ``trials`` are canonical dictionaries (from ``resolve``); an optional knob that is
    ``None`` (off) becomes its exactly neutral value (weight decay 0).

    Use float64 (the default) for exact bias corrections even with float32 parameters:
    coefficients are cast to each parameter's dtype only where they meet it.
    """
    info = optimizer_info(optimizer)
    out: dict[str, Tensor] = {}
    for name, p in info.params.items():
        if p.structural:
            continue
        column = [trial.get(name) for trial in trials]
        column = [p.neutral if v is None else v for v in column]
        if any(v is None for v in column):
            raise ValueError(f"{optimizer}: {name} is missing for some trials")
        out[name] = torch.tensor(column, dtype=dtype or torch.float64, device=device)
    return out


def state_slots(
    values: Mapping[str, Any],
    optimizer: str | None = None,
    shapes: Sequence[tuple[int, ...]] | None = None,
) -> int:
    """Copies of the parameters an optimizer's state and step hold at most, for a memory
    estimate: three for the rules (Adam with AMSGrad, centered RMSprop), or the optimizer's
    own count where it is named and holds more (Prodigy's four), one for the weights'
    average, four for the copy a dynamically scaled step keeps to skip a trial.

    ``shapes``: one trial's parameter shapes (``[tuple(p.shape) for p in model.init(0)]``),
    for the rules whose state is not copies of the parameters (SOAP's factors and eigenbases,
    2·d² floats per axis of size d): those floats are counted as whole copies, rounded up.
    Without shapes such state is not counted."""
    rule = 3
    if optimizer is not None:
        info = optimizer_info(optimizer)
        rule = max(3, info.state_copies)
        if shapes is not None and info.state_floats is not None:
            size = sum(math.prod(s) for s in shapes)
            rule += -(-info.state_floats(values, shapes) // max(size, 1))
    slots = rule + (1 if values.get("use_ema") else 0)
    if values.get("dynamic_loss_scale"):
        slots += 1 + slots
    return slots
