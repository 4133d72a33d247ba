"""Optimizers as pure update rules, in torch's and keras's conventions.

- ``registry``: every optimizer, its parameters, defaults per semantics, ``resolve``.
- ``build(optimizer, semantics, params) -> Transformation``: ``init(params) -> state`` and
  ``update(grads, state, params, hp) -> (new_params, new_state)``, pure, batched over a
  leading trial axis when ``hp`` holds ``(K,)`` tensors.
- ``create(params, name, *, semantics="torch", **hyperparameters)``: the same rule as a
  ``torch.optim.Optimizer``.
- ``schedules``: learning-rate schedules (``ScheduleSpec``, ``learning_rate_at``).
- ``inplace(optimizer, semantics, params) -> InplaceRule | None``: the same update written in
  place (at most one scratch tensor per step), clipping and loss scaling included; the
  engine's fast path. None where gradient accumulation needs the pure pipeline.
"""

from .base import Transformation
from .build import build, decoupled_weight_decay, stack_hyperparameters
from .inplace import InplaceRule, inplace
from .registry import (
    OPTIMIZERS,
    SEMANTICS,
    OptimizerInfo,
    ParamInfo,
    Semantics,
    UnknownParameterError,
    resolve,
    resolve_name,
)
from .schedules import ScheduleSpec, learning_rate_at
from .torch_optimizer import SweepOptimizer, create

__all__ = [
    "OPTIMIZERS",
    "SEMANTICS",
    "InplaceRule",
    "OptimizerInfo",
    "ParamInfo",
    "ScheduleSpec",
    "Semantics",
    "SweepOptimizer",
    "Transformation",
    "UnknownParameterError",
    "build",
    "create",
    "decoupled_weight_decay",
    "inplace",
    "learning_rate_at",
    "resolve",
    "resolve_name",
    "stack_hyperparameters",
]
