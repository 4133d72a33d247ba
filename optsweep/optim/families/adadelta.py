"""AdaDelta (Zeiler, 2012): the same rule in torch and keras; only the defaults differ.

v ← ρ v + (1 − ρ) g²;  Δ = √(u + ε)/√(v + ε) · g;  u ← ρ u + (1 − ρ) Δ²;  θ ← θ − η Δ
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from ..base import HyperParams, Kernel, rows, scratch, step_counter, zeros_like_all
from ..lazy import torch
from ..parameters import OptimizerInfo, ParamInfo, epsilon, learning_rate, with_common_knobs

if TYPE_CHECKING:
    from torch import Tensor


class AdadeltaState(NamedTuple):
    """``square_avg``: v, running mean of g²; ``acc_delta``: u, running mean of Δ²."""

    step: Tensor
    square_avg: list[Tensor]
    acc_delta: list[Tensor]


def _init(params: Sequence[Tensor]) -> AdadeltaState:
    return AdadeltaState(step_counter(params), zeros_like_all(params), zeros_like_all(params))


def _update_(
    grads: Sequence[Tensor], state: AdadeltaState, params: Sequence[Tensor], hp: HyperParams
) -> None:
    state.step.add_(1)
    coefs = torch.stack([1 - hp["rho"], hp["epsilon"], -hp["learning_rate"]]).to(params[0])
    buffer = scratch(params)
    for g, p, v, u in zip(grads, params, state.square_avg, state.acc_delta, strict=True):
        w, e, neg_lr = rows(coefs, p)
        buf = buffer(p)
        v.lerp_(torch.mul(g, g, out=buf), w)
        g.div_(torch.add(v, e, out=buf).sqrt_())
        delta = g.mul_(torch.add(u, e, out=buf).sqrt_())
        u.lerp_(torch.mul(delta, delta, out=buf), w)
        p.addcmul_(delta, neg_lr)


def _kernel(values: Mapping[str, Any], keras: bool) -> Kernel:
    return Kernel(_init, _update_)


_RULE = "v ← ρ v + (1−ρ) g²;  Δ = √(u + ε)/√(v + ε) · g;  u ← ρ u + (1−ρ) Δ²;  θ ← θ − η Δ"

ADADELTA = OptimizerInfo(
    name="adadelta",
    params=with_common_knobs(
        learning_rate(1.0, 1e-3),
        ParamInfo("rho", "float", "decay of both running averages", 0.9, 0.95, low=0.0, high=1.0),
        epsilon(1e-6, 1e-7, "ε inside both roots"),
    ),
    summary="step sizes from the ratio of running RMS of updates and of gradients",
    reference="Zeiler, 2012",
    update_rule=dict.fromkeys(("torch", "keras"), _RULE),
    differences="same rule; defaults η 1.0, ρ 0.9, ε 1e-6 (torch) vs 1e-3, 0.95, 1e-7 (keras).",
    kernel=_kernel,
)

OPTIMIZERS = (ADADELTA,)
