"""Adam, AMSGrad and AdamW, in torch's and keras's conventions.

m ← β₁ m + (1 − β₁) g;  v ← β₂ v + (1 − β₂) g²;  AMSGrad: v ← v̂max ← max(v̂max, v)
torch: θ ← θ − η/(1 − β₁ᵗ) · m / (√v/√(1 − β₂ᵗ) + ε)
keras: θ ← θ − η √(1 − β₂ᵗ)/(1 − β₁ᵗ) · m / (√v + ε)   ("epsilon hat")
AdamW decays θ ← θ(1 − ηλ) first (``build``'s decoupled weight decay).
            (Kingma & Ba, 2015; Reddi et al., 2018 (AMSGrad); Loshchilov & Hutter, 2019)

Two forms of the same update. The K-batched one below: per-trial coefficients once per step,
then 7 passes over memory per tensor and no allocation (measured on 2 AVX-512 cores, 32-trial
784-128-10 MLP, batch 64: forward+backward 6 ms, this update 2.4-3.0 ms inside a training step).
On a CPU, torch's own fused kernel (``torch._fused_adam_``, one pass, vectorised) called once
per trial on that trial's slices, with the trial's hyperparameters as scalars (keras's ε̂ maps
to ε/√(1 − β₂ᵗ)): 1.6-2.3 ms against 2.9-3.0 ms in the same step (one fused call over all K
at once, were the learning rates equal, would take 1.2-1.4 ms; the rest is the cost of 32
calls). On CUDA the batched form stays: 32 launches per tensor would cost more than they save.

Tried and not kept (same machine and model): ``torch.compile`` of the batched update took
1.2-1.8 ms in the step but compiling cost 9 s (cold cache) or 2.9 s (warm), more than it saves
in an epoch (~1 s); the 7 passes in cache-sized chunks of trials were slower (4.0-5.0 ms).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from ..base import HyperParams, Kernel, UpdateFn, rows, step_counter, zeros_like_all
from ..lazy import torch
from ..parameters import (
    BETA_1,
    BETA_2,
    DECOUPLED_WEIGHT_DECAY,
    OptimizerInfo,
    ParamInfo,
    epsilon,
    flag,
    learning_rate,
    with_common_knobs,
)

if TYPE_CHECKING:
    from torch import Tensor


class AdamState(NamedTuple):
    """``exp_avg``: m; ``exp_avg_sq``: v; ``max_exp_avg_sq``: max of v (AMSGrad only)."""

    step: Tensor
    exp_avg: list[Tensor]
    exp_avg_sq: list[Tensor]
    max_exp_avg_sq: list[Tensor]


def adam_kernel(*, amsgrad: bool, keras: bool) -> Kernel:
    """Adam / AMSGrad (the module docstring's rule), K-batched, 7 passes per tensor."""

    def init(params: Sequence[Tensor]) -> AdamState:
        return AdamState(
            step_counter(params),
            zeros_like_all(params),
            zeros_like_all(params),
            zeros_like_all(params) if amsgrad else [],
        )

    def update_(
        grads: Sequence[Tensor], state: AdamState, params: Sequence[Tensor], hp: HyperParams
    ) -> None:
        lr, b1, b2, eps = hp["learning_rate"], hp["beta_1"], hp["beta_2"], hp["epsilon"]
        state.step.add_(1)
        t = state.step
        bc1, bc2 = 1 - b1**t, 1 - b2**t
        # θ ← θ − step · m / (√v · scale + ε) = θ − (step/scale) · m / (√v + ε/scale)
        if keras:
            step, scale = lr * torch.sqrt(bc2) / bc1, torch.ones_like(bc2)
        else:
            step, scale = lr / bc1, 1 / torch.sqrt(bc2)
        coefs = torch.stack([1 - b1, 1 - b2, eps / scale, -step / scale]).to(params[0])
        maxes = state.max_exp_avg_sq if amsgrad else [None] * len(params)
        for g, p, m, v, vmax in zip(
            grads, params, state.exp_avg, state.exp_avg_sq, maxes, strict=True
        ):
            w1, w2, e, neg_step = rows(coefs, p)
            m.lerp_(g, w1)
            v.lerp_(g.mul_(g), w2)
            if vmax is not None:
                torch.maximum(vmax, v, out=vmax)
            denom = torch.sqrt(vmax if vmax is not None else v, out=g)  # g is scratch now
            # ε/scale as one broadcast add_: addcmul(ε, √v, scale) with two (K, 1, 1) operands
            # took 0.74 ms over 3.3M floats against 0.08 ms (2 AVX-512 cores)
            denom.add_(e)
            p.addcmul_(torch.div(m, denom, out=denom), neg_step)

    return Kernel(init, update_)


def _slices(group: Sequence[Tensor]) -> list[list[Tensor]]:
    """``[k][i]``: trial k's slice of ``group[i]`` (one ``unbind`` per tensor)."""
    return [list(trial) for trial in zip(*(t.unbind(0) for t in group), strict=True)]


def adam_fused_per_trial(*, amsgrad: bool, keras: bool, decoupled: bool) -> UpdateFn:
    """Adam / AMSGrad as torch's fused CPU kernel, one call per trial, weight decay included:
    coupled (g + λθ, ``_fused_adam_``) or decoupled (θ(1 − ηλ), ``_fused_adamw_``). The state
    is :func:`adam_kernel`'s."""
    kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_
    cache: dict[str, tuple[tuple[int, ...], list[list[Tensor]]]] = {}

    def by_trial(name: str, group: Sequence[Tensor]) -> list[list[Tensor]]:
        """``[k][i]``: trial k's slice of ``group[i]``. Kept while the tensors stay the same
        (params and state are updated in place; rows leaving the batch make new tensors):
        slicing every tensor anew took 0.3 ms of each 32-trial MLP step."""
        key = tuple(t.data_ptr() for t in group)
        entry = cache.get(name)
        if entry is None or entry[0] != key:  # a local entry: safe when threads share the rule
            entry = cache[name] = key, _slices(group)
        return entry[1]

    def update_(
        grads: Sequence[Tensor], state: AdamState, params: Sequence[Tensor], hp: HyperParams
    ) -> None:
        state.step.add_(1)
        k = len(params[0])
        # one counter for the batch, or one per trial (dynamic loss scaling skips trials)
        names = ("learning_rate", "beta_1", "beta_2", "epsilon", "weight_decay")
        columns = [state.step.expand(k).tolist(), *(hp[n].expand(k).tolist() for n in names)]
        scalars = zip(*columns, strict=True)
        step_lists: dict[int, list[Tensor]] = {}  # one per distinct count (usually one)
        maxes = by_trial("vmax", state.max_exp_avg_sq) if amsgrad else [[]] * k
        for (t, lr, b1, b2, eps, wd), p, g, m, v, vmax in zip(
            scalars,
            by_trial("params", params),
            _slices(grads),
            by_trial("m", state.exp_avg),
            by_trial("v", state.exp_avg_sq),
            maxes,
            strict=True,
        ):
            if keras:
                eps = eps / math.sqrt(1 - b2**t)
            if t not in step_lists:  # the kernel reads float32 step tensors
                step_lists[t] = [torch.tensor(float(t))] * len(p)
            kernel(
                p, g, m, v, vmax, step_lists[t],
                lr=lr, beta1=b1, beta2=b2, weight_decay=wd, eps=eps,
                amsgrad=amsgrad, maximize=False,
            )  # fmt: skip

    return update_


# ---------------------------------------------------------------------------------------------
# Definitions
# ---------------------------------------------------------------------------------------------

_ADAM_DIFF = (
    "torch: θ ← θ − η/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε), ε 1e-8; keras: θ ← θ − η√(1−β₂ᵗ)/(1−β₁ᵗ)"
    " · m / (√v + ε) ('epsilon hat', ε effectively scaled by √(1−β₂ᵗ)), ε 1e-7."
)
_AMSGRAD = flag("amsgrad", "normalise by the running maximum of v (AMSGrad)")
_ADAM_RULES = {
    "torch": "m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  θ ← θ − η m̂ / (√v̂ + ε)",
    "keras": "m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  θ ← θ − η √(1−β₂ᵗ)/(1−β₁ᵗ) · m / (√v + ε)",
}


def _moments() -> list[ParamInfo]:
    return [
        learning_rate(1e-3, 1e-3),
        BETA_1,
        BETA_2,
        epsilon(1e-8, 1e-7, "ε added to √v (torch: to the bias-corrected √v̂)"),
    ]


def _amsgrad_on(values: Mapping[str, Any]) -> bool:
    return bool(values.get("amsgrad", True))  # optimizer 'amsgrad' has no flag: always on


def _kernel(values: Mapping[str, Any], keras: bool) -> Kernel:
    return adam_kernel(amsgrad=_amsgrad_on(values), keras=keras)


def _fused(values: Mapping[str, Any], keras: bool, decoupled: bool) -> UpdateFn:
    return adam_fused_per_trial(amsgrad=_amsgrad_on(values), keras=keras, decoupled=decoupled)


ADAM = OptimizerInfo(
    name="adam",
    params=with_common_knobs(*_moments(), _AMSGRAD, DECOUPLED_WEIGHT_DECAY),
    summary="adaptive moment estimation",
    reference="Kingma & Ba, 2015",
    update_rule=_ADAM_RULES,
    differences=_ADAM_DIFF,
    kernel=_kernel,
    fused=_fused,
)

AMSGRAD = OptimizerInfo(
    name="amsgrad",
    params=with_common_knobs(*_moments(), DECOUPLED_WEIGHT_DECAY),
    summary="Adam normalised by the running maximum of v",
    reference="Reddi et al., 2018",
    update_rule={
        "torch": (
            "m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  vmax ← max(vmax, v);  "
            "θ ← θ − η/(1−β₁ᵗ) · m / (√vmax/√(1−β₂ᵗ) + ε)"
        ),
        "keras": (
            "m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  vmax ← max(vmax, v);  "
            "θ ← θ − η √(1−β₂ᵗ)/(1−β₁ᵗ) · m / (√vmax + ε)"
        ),
    },
    differences=_ADAM_DIFF,
    kernel=_kernel,
    fused=_fused,
    hints={"amsgrad": "it is always on for optimizer 'amsgrad'."},
)

_ADAMW_PARAMS = with_common_knobs(*_moments(), _AMSGRAD)
_ADAMW_PARAMS["weight_decay"] = ParamInfo(
    "weight_decay",
    "float",
    "λ of the decoupled decay θ ← θ − ηλθ (both semantics)",
    1e-2,
    4e-3,
    low=0.0,
    neutral=0.0,
)

ADAMW = OptimizerInfo(
    name="adamw",
    params=_ADAMW_PARAMS,
    summary="Adam with decoupled weight decay",
    reference="Loshchilov & Hutter, 2019",
    update_rule={k: "θ ← θ − η λ θ;  then " + v for k, v in _ADAM_RULES.items()},
    differences=_ADAM_DIFF + " Decay λ default: torch 1e-2, keras 0.004.",
    kernel=_kernel,
    fused=_fused,
    decoupled_decay=True,
    hints={"decoupled_weight_decay": "it is always on for optimizer 'adamw'."},
)

OPTIMIZERS = (ADAM, AMSGRAD, ADAMW)
