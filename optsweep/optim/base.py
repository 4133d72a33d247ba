"""The core types: a stage is a pair of pure functions, a chain composes stages.

A :class:`Stage` is ``init(params) -> state`` and
``update(grads, state, params, hp) -> (grads, params, state)``. Gradient stages
(clipping, loss scale, coupled weight decay) return new gradients; parameter stages
(decoupled weight decay, the update rules) return new parameters. :func:`chain` threads
both through a sequence of stages, optax-style, and :class:`Transformation` is what
``optsweep.optim.build`` hands out: ``update(grads, state, params, hp) -> (params, state)``.

Conventions every stage follows:

- pure: inputs are never modified in place; new tensors are returned;
- no host syncs (no ``.item()``, no Python branches on tensor values), so the whole
  update can be traced by ``torch.compile``;
- ``hp[name]`` is a tensor of shape ``()`` (one trial) or ``(K,)`` (K trials stacked on
  the leading axis of every parameter); :func:`expand` broadcasts it over a tensor;
- state is a ``NamedTuple`` named after the math; a ``list`` field holds one tensor per
  parameter, a ``Tensor`` field is shared by all parameters (step counters).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

Params = list[Tensor]
HyperParams = Mapping[str, Tensor]
InitFn = Callable[[Sequence[Tensor]], Any]
StageUpdateFn = Callable[
    [Sequence[Tensor], Any, Sequence[Tensor], HyperParams], tuple[Params, Params, Any]
]

__all__ = [
    "EmptyState",
    "Stage",
    "Transformation",
    "chain",
    "expand",
    "flatten_state",
    "tree_where",
    "trial_ndim",
    "unflatten_state",
]


class EmptyState(NamedTuple):
    """State of a stateless stage."""


class Stage(NamedTuple):
    """One composable piece: ``init(params) -> state``,
    ``update(grads, state, params, hp) -> (grads, params, state)``."""

    init: InitFn
    update: StageUpdateFn


@dataclass(frozen=True)
class Transformation:
    """A whole optimizer as two pure functions.

    Attributes:
        init: ``init(params) -> state``.
        update: ``update(grads, state, params, hp) -> (new_params, new_state)``; ``hp``
            maps each name of ``hyperparameters`` to a tensor of shape ``()`` or ``(K,)``.
        hyperparameters: the continuous names ``update`` reads from ``hp``.
        name: the optimizer's registry name.
        semantics: ``"torch"`` or ``"keras"``.
    """

    init: Callable[[Sequence[Tensor]], Any]
    update: Callable[[Sequence[Tensor], Any, Sequence[Tensor], HyperParams], tuple[Params, Any]]
    hyperparameters: tuple[str, ...]
    name: str = ""
    semantics: str = "torch"


def chain(*stages: Stage) -> Stage:
    """Compose stages left to right; the state is the tuple of their states."""

    def init(params: Sequence[Tensor]) -> tuple[Any, ...]:
        return tuple(stage.init(params) for stage in stages)

    def update(
        grads: Sequence[Tensor], state: tuple[Any, ...], params: Sequence[Tensor], hp: HyperParams
    ) -> tuple[Params, Params, tuple[Any, ...]]:
        grads, params = list(grads), list(params)
        new_state = []
        for stage, s in zip(stages, state, strict=True):
            grads, params, s = stage.update(grads, s, params, hp)
            new_state.append(s)
        return grads, params, tuple(new_state)

    return Stage(init, update)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def trial_ndim(hp: HyperParams) -> int:
    """Number of leading trial axes: 1 when ``hp`` holds ``(K,)`` tensors, 0 for one trial."""
    return hp["learning_rate"].ndim


def expand(h: Tensor, like: Tensor) -> Tensor:
    """``h`` (shape ``()`` or ``(K,)``) cast to ``like``'s dtype and shaped to broadcast over it."""
    h = h.to(dtype=like.dtype, device=like.device)
    return h.reshape(h.shape + (1,) * (like.ndim - h.ndim))


def step_counter(params: Sequence[Tensor]) -> Tensor:
    """A fresh int64 step counter on the parameters' device."""
    device = params[0].device if params else None
    return torch.zeros((), dtype=torch.int64, device=device)


def zeros_like_all(params: Sequence[Tensor]) -> list[Tensor]:
    return [torch.zeros_like(p) for p in params]


def tree_where(cond: Tensor, new: Any, old: Any) -> Any:
    """Select ``new`` where ``cond`` else ``old``, leaf by leaf, over a state tree."""
    if isinstance(new, Tensor):
        return torch.where(cond, new, old)
    if isinstance(new, list):
        return [tree_where(cond, n, o) for n, o in zip(new, old, strict=True)]
    if isinstance(new, tuple):
        values = [tree_where(cond, n, o) for n, o in zip(new, old, strict=True)]
        return type(new)(*values) if hasattr(new, "_fields") else tuple(values)
    return new


# ---------------------------------------------------------------------------------------------
# State <-> flat per-name dictionary (for torch.optim-style per-parameter state)
# ---------------------------------------------------------------------------------------------


def flatten_state(state: Any) -> dict[str, Tensor | list[Tensor]]:
    """The leaves of a state tree by field name: ``{"step": t, "exp_avg": [...], ...}``.

    Field names are unique across a built optimizer's stages; empty lists are skipped.
    """
    out: dict[str, Tensor | list[Tensor]] = {}

    def walk(node: Any, name: str | None) -> None:
        if isinstance(node, tuple) and hasattr(node, "_fields"):
            for field, value in zip(node._fields, node, strict=True):
                walk(value, field)
        elif isinstance(node, tuple):
            for value in node:
                walk(value, None)
        elif isinstance(node, (Tensor, list)):
            if name is None:
                raise TypeError("state leaves must be fields of a NamedTuple")
            if isinstance(node, list) and not node:
                return
            if name in out:
                raise ValueError(f"state field {name!r} appears twice")
            out[name] = node
        else:
            raise TypeError(f"unexpected state node {type(node).__name__}")

    walk(state, None)
    return out


def unflatten_state(template: Any, leaves: Mapping[str, Tensor | list[Tensor]]) -> Any:
    """Rebuild a state tree shaped like ``template`` from :func:`flatten_state` leaves."""

    def build(node: Any, name: str | None) -> Any:
        if isinstance(node, tuple) and hasattr(node, "_fields"):
            return type(node)(*(build(v, f) for f, v in zip(node._fields, node, strict=True)))
        if isinstance(node, tuple):
            return tuple(build(v, None) for v in node)
        if isinstance(node, list) and not node:
            return []
        return leaves[name]  # type: ignore[index]

    return build(template, None)
