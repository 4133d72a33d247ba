"""Optimizers in torch's and keras's conventions: one module per family, one dispatcher.

- ``families/``: each family's definitions (``OptimizerInfo``), state and in-place kernel.
- ``registry``: every optimizer, its parameters, defaults per semantics, ``resolve``.
- ``inplace(optimizer, semantics, params) -> Kernel``: ``init(params) -> state`` and
  ``update_(grads, state, params, hp)``, in place, batched over a leading trial axis when
  ``hp`` holds ``(K,)`` tensors; loss unscaling, accumulation, clipping and decay included.
- ``build(optimizer, semantics, params) -> Transformation``: the same, pure (derived).
- ``create(params, name, *, semantics="torch", **hyperparameters)``: the same rule as a
  ``torch.optim.Optimizer``.
- ``schedules``: learning-rate schedules (``ScheduleSpec``, ``learning_rate_at``).

Importing this package, ``registry`` or ``parameters`` does not import torch; the kernels and
the wrapper import it when they first run (``lazy``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Kernel, Transformation
from .build import (
    build,
    current_loss_scale,
    decoupled_weight_decay,
    evaluates_elsewhere,
    evaluation_weights,
    inplace,
    stack_hyperparameters,
    state_slots,
)
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

if TYPE_CHECKING:
    from .schedules import ScheduleSpec, learning_rate_at
    from .torch_optimizer import SweepOptimizer, create

# torch.optim.Optimizer must be imported to subclass it: the wrapper loads on first use
_LAZY = {
    "SweepOptimizer": "torch_optimizer",
    "create": "torch_optimizer",
    "ScheduleSpec": "schedules",
    "learning_rate_at": "schedules",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "OPTIMIZERS",
    "SEMANTICS",
    "Kernel",
    "OptimizerInfo",
    "ParamInfo",
    "ScheduleSpec",
    "Semantics",
    "SweepOptimizer",
    "Transformation",
    "UnknownParameterError",
    "build",
    "create",
    "current_loss_scale",
    "decoupled_weight_decay",
    "evaluates_elsewhere",
    "evaluation_weights",
    "inplace",
    "learning_rate_at",
    "resolve",
    "resolve_name",
    "stack_hyperparameters",
    "state_slots",
]
