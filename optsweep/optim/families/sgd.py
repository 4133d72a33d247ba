"""SGD, heavy-ball momentum and Nesterov momentum, in torch's and keras's conventions.

Plain SGD:  θ ← θ − η g                                      (Robbins & Monro, 1951)
torch:  b ← μ b + c g (c = 1 on the first step or where μ = 0, else 1 − d);
        θ ← θ − η b, or θ ← θ − η (g + μ b) (Nesterov)
keras:  v ← μ v − η (1 − d) g;  θ ← θ + v, or θ ← θ − η g + μ v (Nesterov)
                                   (Polyak, 1964; Nesterov, 1983; Sutskever et al., 2013)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from ..base import HyperParams, Kernel, per_trial, rows, step_counter, zeros_like_all
from ..lazy import torch
from ..parameters import OptimizerInfo, ParamInfo, flag, learning_rate, momentum, with_common_knobs

if TYPE_CHECKING:
    from torch import Tensor


class SGDState(NamedTuple):
    """Plain SGD keeps no state."""


def _sgd_init(params: Sequence[Tensor]) -> SGDState:
    return SGDState()


def _sgd_update_(
    grads: Sequence[Tensor], state: SGDState, params: Sequence[Tensor], hp: HyperParams
) -> None:
    lr = hp["learning_rate"]
    for g, p in zip(grads, params, strict=True):
        p.addcmul_(g, per_trial(-lr, p))


class MomentumState(NamedTuple):
    """``step``: updates so far; ``momentum_buffer``: torch's b, or keras's velocity v."""

    step: Tensor
    momentum_buffer: list[Tensor]


def _momentum_init(params: Sequence[Tensor]) -> MomentumState:
    return MomentumState(step_counter(params), zeros_like_all(params))


def momentum_kernel(*, nesterov: bool, keras: bool) -> Kernel:
    """SGD with heavy-ball or Nesterov momentum (the module docstring's rule)."""

    def update_(
        grads: Sequence[Tensor], state: MomentumState, params: Sequence[Tensor], hp: HyperParams
    ) -> None:
        lr, mu, damp = hp["learning_rate"], hp["momentum"], hp["dampening"]
        if keras:
            c = -lr * (1 - damp)
        else:
            # torch copies g into the buffer on the first step and skips momentum when μ = 0
            first = (state.step == 0) | (mu == 0)
            c = torch.where(first, torch.ones_like(damp), 1 - damp)
        state.step.add_(1)
        coefs = torch.stack([mu, c, -lr]).to(params[0])
        for g, p, b in zip(grads, params, state.momentum_buffer, strict=True):
            m, c_, neg_lr = rows(coefs, p)
            b.mul_(m).addcmul_(g, c_)
            if keras and nesterov:
                p.addcmul_(g, neg_lr).addcmul_(b, m)
            elif keras:
                p.add_(b)
            elif nesterov:
                p.addcmul_(g.addcmul_(b, m), neg_lr)
            else:
                p.addcmul_(b, neg_lr)

    return Kernel(_momentum_init, update_)


# ---------------------------------------------------------------------------------------------
# Definitions
# ---------------------------------------------------------------------------------------------

_DAMPENING = ParamInfo(
    "dampening",
    "float",
    "scale (1 − dampening) on g entering the buffer (torch; keras has none, default 0)",
    0.0,
    0.0,
    low=0.0,
    high=1.0,
)
_SGD_MOMENTUM_DIFF = (
    "torch keeps b ← μb + (1 − dampening)g (b₁ = g) and steps −ηb, so η stays outside the "
    "buffer; keras keeps v ← μv − ηg and steps +v, so η enters the buffer (same path while η "
    "is constant). Defaults: torch lr 1e-3, keras 0.01. The library default momentum is 0 "
    "(plain SGD); optsweep's momentum optimizers default to 0.9. Document 003's SGDM code "
    "re-zeroes its velocity on every call; here the buffer persists."
)


def _plain(values: Mapping[str, Any], keras: bool) -> Kernel:
    return Kernel(_sgd_init, _sgd_update_)


SGD = OptimizerInfo(
    name="sgd",
    params=with_common_knobs(learning_rate(1e-3, 0.01)),
    summary="plain stochastic gradient descent",
    reference="Robbins & Monro, 1951",
    update_rule={"torch": "θ ← θ − η g", "keras": "θ ← θ − η g"},
    differences="same rule; default η: torch 1e-3, keras 0.01.",
    kernel=_plain,
    hints={
        "momentum": "use optimizer 'momentum' (or 'nesterov') for SGD with momentum.",
        "nesterov": "use optimizer 'nesterov'.",
        "rho": "use optimizer 'momentum' (the seeds call SGD momentum rho).",
        "dampening": "use optimizer 'momentum'.",
    },
)

_MOMENTUM_HINTS = {
    "rho": "did you mean 'momentum'? The seeds call SGD momentum rho.",
    "beta": "did you mean 'momentum'?",
}
_MU = momentum(0.9, "μ, decay of the momentum buffer (the seeds call it rho)")

MOMENTUM = OptimizerInfo(
    name="momentum",
    params=with_common_knobs(
        learning_rate(1e-3, 0.01),
        _MU,
        _DAMPENING,
        flag("nesterov", "use the Nesterov form (same as optimizer 'nesterov')"),
    ),
    summary="SGD with heavy-ball momentum",
    reference="Polyak, 1964",
    update_rule={
        "torch": "b ← μ b + (1 − dampening) g (b₁ = g);  θ ← θ − η b",
        "keras": "v ← μ v − η g;  θ ← θ + v",
    },
    differences=_SGD_MOMENTUM_DIFF,
    kernel=lambda v, keras: momentum_kernel(nesterov=v["nesterov"], keras=keras),
    hints=_MOMENTUM_HINTS,
)

NESTEROV = OptimizerInfo(
    name="nesterov",
    params=with_common_knobs(learning_rate(1e-3, 0.01), _MU, _DAMPENING),
    summary="SGD with Nesterov momentum (NAG, the 'modified' form: no look-ahead gradient)",
    reference="Nesterov, 1983; Sutskever et al., 2013",
    update_rule={
        "torch": "b ← μ b + (1 − dampening) g (b₁ = g);  θ ← θ − η (g + μ b)",
        "keras": "v ← μ v − η g;  θ ← θ + μ v − η g",
    },
    differences=_SGD_MOMENTUM_DIFF + " torch requires dampening = 0 and momentum > 0 for Nesterov.",
    kernel=lambda v, keras: momentum_kernel(nesterov=True, keras=keras),
    hints={**_MOMENTUM_HINTS, "nesterov": "it is always on for optimizer 'nesterov'."},
)

OPTIMIZERS = (SGD, MOMENTUM, NESTEROV)
