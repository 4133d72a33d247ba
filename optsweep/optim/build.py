"""Assemble an optimizer from the registry: loss scale → accumulation(clip → decay → rule).

Order of the stages (keras's order, and what a torch user does by hand):

1. ``loss_scale_factor``: g ← g / s;
2. ``gradient_accumulation_steps`` N > 1 wraps everything below, which then runs on the
   mean gradient of every N-th call;
3. clipping (``clipnorm`` per tensor, ``global_clipnorm`` per trial, ``clipvalue``);
4. weight decay: torch semantics adds λθ to g (coupled L2) except adamw; adamw and every
   keras optimizer decay θ ← θ(1 − ηλ) before the rule (decoupled);
5. the update rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from . import rules
from .base import HyperParams, Params, Stage, Transformation, chain
from .registry import OPTIMIZERS, Semantics, optimizer_info, resolve
from .transforms import (
    accumulate_gradients,
    add_weight_decay,
    clip_by_global_norm,
    clip_by_norm,
    clip_by_value,
    decay_weights,
    unscale_loss,
)

__all__ = ["build", "decoupled_weight_decay", "stack_hyperparameters"]

RuleFactory = Callable[[Mapping[str, Any], bool], Stage]

# Each optimizer's rule, from its structural values and whether keras semantics is on.
RULES: dict[str, RuleFactory] = {
    "sgd": lambda p, keras: rules.sgd(),
    "momentum": lambda p, keras: rules.momentum(nesterov=p["nesterov"], keras=keras),
    "nesterov": lambda p, keras: rules.momentum(nesterov=True, keras=keras),
    "adagrad": lambda p, keras: rules.adagrad(keras=keras),
    "rmsprop": lambda p, keras: rules.rmsprop(centered=p["centered"], keras=keras),
    "adadelta": lambda p, keras: rules.adadelta(),
    "adam": lambda p, keras: rules.adam(amsgrad=p["amsgrad"], keras=keras),
    "amsgrad": lambda p, keras: rules.adam(amsgrad=True, keras=keras),
    "adamax": lambda p, keras: rules.adamax(keras=keras),
    "nadam": lambda p, keras: rules.nesterov_adam(
        infinity_norm=False, schedule=p["momentum_schedule"], keras=keras
    ),
    "nadamax": lambda p, keras: rules.nesterov_adam(
        infinity_norm=True, schedule=p["momentum_schedule"], keras=keras
    ),
    "adamw": lambda p, keras: rules.adam(amsgrad=p["amsgrad"], keras=keras),
}
assert set(RULES) == set(OPTIMIZERS)


def decoupled_weight_decay(optimizer: str, semantics: Semantics) -> bool:
    """Whether ``weight_decay`` is decoupled (θ ← θ − ηλθ) rather than coupled L2 (g + λθ)."""
    return semantics == "keras" or optimizer == "adamw"


def _clip_stage(params: Mapping[str, Any], keras: bool) -> list[Stage]:
    if params["clipnorm"] is not None:
        return [clip_by_norm(params["clipnorm"], keras=keras)]
    if params["global_clipnorm"] is not None:
        return [clip_by_global_norm(params["global_clipnorm"], keras=keras)]
    if params["clipvalue"] is not None:
        return [clip_by_value(params["clipvalue"])]
    return []


def build(optimizer: str, semantics: Semantics, params: Mapping[str, Any]) -> Transformation:
    """The optimizer as a pure :class:`~optsweep.optim.base.Transformation`.

    Args:
        optimizer: registry name.
        semantics: ``"torch"`` or ``"keras"``.
        params: the canonical dictionary from :func:`~optsweep.optim.registry.resolve`
            (partial dictionaries are resolved again). Structural values (flags, clipping,
            accumulation, loss scale) are read here; continuous ones are ignored here and
            must be supplied to ``update`` in ``hp`` under ``Transformation.hyperparameters``.
    """
    values = resolve(optimizer, semantics, params)
    keras = semantics == "keras"
    decay = decay_weights() if decoupled_weight_decay(optimizer, semantics) else add_weight_decay()
    inner = chain(*_clip_stage(values, keras), decay, RULES[optimizer](values, keras))
    steps = values["gradient_accumulation_steps"]
    if steps is not None and steps > 1:
        inner = accumulate_gradients(inner, steps)
    stages = [inner]
    if values["loss_scale_factor"] is not None:
        stages.insert(0, unscale_loss(values["loss_scale_factor"]))
    pipeline = chain(*stages)
    names = tuple(name for name, p in optimizer_info(optimizer).params.items() if not p.structural)

    def update(
        grads: Sequence[Tensor], state: Any, params: Sequence[Tensor], hp: HyperParams
    ) -> tuple[Params, Any]:
        missing = [name for name in names if name not in hp]
        if missing:
            raise KeyError(f"{optimizer}: hp lacks {', '.join(missing)}")
        device = params[0].device if params else None
        hp_ = {name: _as_tensor(hp[name], device) for name in names}
        _, new_params, new_state = pipeline.update(grads, state, params, hp_)
        return new_params, new_state

    return Transformation(
        init=pipeline.init,
        update=update,
        hyperparameters=names,
        name=optimizer,
        semantics=semantics,
    )


def _as_tensor(value: Any, device: torch.device | None) -> Tensor:
    if isinstance(value, Tensor):
        return value if device is None or value.device == device else value.to(device)
    return torch.tensor(value, dtype=torch.float64, device=device)


def stack_hyperparameters(
    optimizer: str,
    trials: Sequence[Mapping[str, Any]],
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
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
        out[name] = torch.tensor(column, dtype=dtype, device=device)
    return out
