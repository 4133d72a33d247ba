"""Schedule-Free AdamW and SGD: no schedule, an average instead (Defazio et al., 2024), as the
reference facebookresearch/schedule_free computes them (``schedulefree`` 1.4.1:
``AdamWScheduleFree``, ``SGDScheduleFree``, the train/eval versions).

Three sequences: z takes the steps, x is their weighted average (where the method evaluates),
y = (1 − β) z + β x is where the gradient is taken and what the parameters hold in training.
Per trial, k the updates before this one:
ηₖ = η·min(1, (k + 1)/T) (T = ``warmup_steps``; 0: no warmup);  η_max ← max(η_max, ηₖ)
wₖ = (k + 1)^r · η_max^p (p = ``weight_lr_power``);  W ← W + wₖ;  c = wₖ/W (0 while W = 0)
AdamW: v ← β₂v + (1 − β₂)g²;  d = g/(√(v/(1 − β₂ᵏ⁺¹)) + ε) + λy;   SGD: d = g (+ λy, torch)
y ← (1 − c) y + c z + ηₖ(β(1 − c) − 1) d;  z ← z − ηₖ d
x = (y − (1 − β) z)/β, recovered when asked (the reference's ``eval()``): not stored.
β is β₁ (AdamW) or ``momentum`` (SGD), in (0, 1).

Torch semantics are the reference (torch ships neither): its weight decay λy is added to the
AdamW step after the Adam normalisation, and to SGD's gradient. Keras semantics of AdamW are
``keras.optimizers.ScheduleFreeAdamW`` (keras 3.15) as it runs on its torch backend, which
differs from the reference three ways:
- uniform averaging, c = 1/(k + 1): r = 0 and p = 0, its defaults here (keras has neither knob);
- keras's decay of y before the step, y ← y(1 − ηλ) at the rate without warmup (z not decayed);
- x recovered with the z just stepped: its ``momentum_old`` is the tensor its next line steps
  in place (on keras's other backends it would be the z before the step), which makes its
  y ← (1 − β)z + β((1 − c)x + cz) collapse to y ← (1 − c)y + cz: y is the running average of
  the z's, the gradient taken there, and keras evaluates with its variables, y: so does
  optsweep (x = y; no interpolation with momentum is left to undo).
Keras ships no Schedule-Free SGD: its keras semantics are the reference with keras's knobs:
clipping, and keras's decay of y before the step.

Evaluation at x: the state says where (``evaluation_weights``), so the engine evaluates at x
as it evaluates at the weights' average with ``use_ema`` (with ``use_ema`` the average of y
wins); the ``torch.optim`` wrapper's ``eval()`` puts x into the parameters and ``train()`` y
back, as the reference's do.

State: per trial k (``step``), W (``weight_sum``), η_max (``lr_max``) and the β of the last
update (``interpolation``, to recover x; 1 before the first: x = y); per tensor z and (AdamW) v.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from ..base import HyperParams, Kernel, per_trial, rows, step_counter, zeros_like_all
from ..lazy import torch
from ..parameters import BETA_2, OptimizerInfo, ParamInfo, learning_rate, with_common_knobs

if TYPE_CHECKING:
    from torch import Tensor


class ScheduleFreeState(NamedTuple):
    """The reference's names: ``k`` as ``step``, ``weight_sum``, ``lr_max`` (per trial, 0-d
    until the first update), ``z`` and ``exp_avg_sq`` v (AdamW; empty for SGD) per tensor;
    ``interpolation``: the β (β₁, momentum) y was last formed with."""

    step: Tensor
    weight_sum: Tensor
    lr_max: Tensor
    interpolation: Tensor
    z: list[Tensor]
    exp_avg_sq: list[Tensor]

    def evaluation_weights(self, params: Sequence[Tensor]) -> list[Tensor]:
        """x = y + (1 − 1/β)(z − y) for the y that ``params`` hold (new tensors)."""
        return [
            torch.lerp(y, z, per_trial(1 - 1 / self.interpolation, y)) for y, z in self._zs(params)
        ]

    def training_weights(self, weights: Sequence[Tensor]) -> list[Tensor]:
        """y = x + (1 − β)(z − x) for the x that ``weights`` hold (new tensors)."""
        return [
            torch.lerp(x, z, per_trial(1 - self.interpolation, x)) for x, z in self._zs(weights)
        ]

    def _zs(self, params: Sequence[Tensor]) -> list[tuple[Tensor, Tensor]]:
        return list(zip(params, self.z, strict=True))


def _scalar(params: Sequence[Tensor], value: float) -> Tensor:
    device = params[0].device if params else None
    dtype = torch.float32 if device is not None and device.type == "mps" else torch.float64
    return torch.full((), value, dtype=dtype, device=device)


def _init_adamw(params: Sequence[Tensor]) -> ScheduleFreeState:
    return ScheduleFreeState(
        step_counter(params),
        _scalar(params, 0.0),
        _scalar(params, -1.0),
        _scalar(params, 1.0),
        [p.detach().clone() for p in params],
        zeros_like_all(params),
    )


def _init_sgd(params: Sequence[Tensor]) -> ScheduleFreeState:
    return _init_adamw(params)._replace(exp_avg_sq=[])


def _store(state_leaf: Tensor, value: Tensor) -> None:
    """A per-trial scalar written back (0-d before the first update, then hp's shape)."""
    state_leaf.resize_(value.shape).copy_(value.to(state_leaf.dtype))


def schedule_free_kernel(*, adaptive: bool, decay: str | None, keras_class: bool = False) -> Kernel:
    """Schedule-Free (the module docstring's rule), K-batched: AdamW when ``adaptive``, else
    SGD. ``decay``: ``"rule"`` adds λy to the normalised step (the reference's AdamW),
    ``"keras"`` decays y ← y(1 − ηλ) first (keras's), None: the dispatcher decays (the
    reference's SGD: g + λy; keras semantics: y(1 − ηλ)). ``keras_class``: y as
    ``keras.optimizers.ScheduleFreeAdamW`` on its torch backend moves it, y ← lerp(y, z, c)
    with the z just stepped, evaluated where it is."""
    beta_name = "beta_1" if adaptive else "momentum"

    def update_(
        grads: Sequence[Tensor],
        state: ScheduleFreeState,
        params: Sequence[Tensor],
        hp: HyperParams,
    ) -> None:
        base_lr, beta = hp["learning_rate"], hp[beta_name]
        k = state.step.to(base_lr.dtype)  # updates before this one (per trial when skipped)
        warmup = hp["warmup_steps"]
        lr = base_lr * torch.where(k < warmup, (k + 1) / torch.clamp(warmup, min=1), 1.0)
        lr_max = torch.maximum(lr, state.lr_max)
        weight = (k + 1) ** hp["r"] * lr_max ** hp["weight_lr_power"]
        weight_sum = state.weight_sum + weight
        c = torch.where(weight_sum != 0, weight / torch.where(weight_sum != 0, weight_sum, 1), 0)
        _store(state.lr_max, lr_max)
        _store(state.weight_sum, weight_sum)
        # keras's class is evaluated at y: x = y, the interpolation's β read as 1
        _store(state.interpolation, (1.0 if keras_class else beta) + torch.zeros_like(base_lr))
        state.step.add_(1)
        wd = hp["weight_decay"]
        b2 = hp["beta_2"] if adaptive else torch.zeros_like(base_lr)
        coefs = torch.stack(
            [
                b2,
                1 - b2,
                1 - b2 ** (k + 1),
                hp["epsilon"] if adaptive else torch.zeros_like(base_lr),
                wd,
                1 - base_lr * wd,
                c,
                lr * (beta * (1 - c) - 1),
                -lr,
            ]
        ).to(params[0])
        for i, (g, y, z) in enumerate(zip(grads, params, state.z, strict=True)):
            b2_, w2, bc2, eps, wd_, shrink, c_, y_step, neg_lr = rows(coefs, y)
            if decay == "keras":
                y.mul_(shrink)
            if adaptive:
                v = state.exp_avg_sq[i]
                v.mul_(b2_).addcmul_(g * w2, g)  # (c g) g, as addcmul(g, g, value=c) forms it
                g.div_(v.div(bc2).sqrt_().add_(eps))
            if decay == "rule":
                g.addcmul_(y, wd_)  # at y, after the normalisation
            if keras_class:
                z.addcmul_(g, neg_lr)
                y.lerp_(z, c_)
                continue
            y.lerp_(z, c_)
            y.addcmul_(g, y_step)
            z.addcmul_(g, neg_lr)

    return Kernel(_init_adamw if adaptive else _init_sgd, update_)


# ---------------------------------------------------------------------------------------------
# Definitions
# ---------------------------------------------------------------------------------------------


def _adamw_kernel(values: Mapping[str, Any], keras: bool) -> Kernel:
    return schedule_free_kernel(
        adaptive=True, decay="keras" if keras else "rule", keras_class=keras
    )


def _sgd_kernel(values: Mapping[str, Any], keras: bool) -> Kernel:
    return schedule_free_kernel(adaptive=False, decay=None)


_WARMUP = ParamInfo(
    "warmup_steps",
    "int",
    "T: the rate grows linearly, ηₖ = η(k + 1)/T, over the first T steps (0: none)",
    0,
    0,
    low=0.0,
)
_R = ParamInfo(
    "r",
    "float",
    "r: the average weighs step k by (k + 1)^r (keras: 0, uniform)",
    0.0,
    0.0,
    low=0.0,
)


def _weight_lr_power(keras: float) -> ParamInfo:
    return ParamInfo(
        "weight_lr_power",
        "float",
        "p: the average weighs step k by η_max^p, small while the rate warms up (keras: 0)",
        2.0,
        keras,
        low=0.0,
    )


def _beta(name: str, doc: str, aliases: tuple[str, ...] = ()) -> ParamInfo:
    return ParamInfo(
        name,
        "float",
        doc,
        0.9,
        0.9,
        aliases=aliases,
        low=0.0,
        high=1.0,
        low_open=True,
        high_open=True,
    )


def _weight_decay(doc: str) -> ParamInfo:
    return ParamInfo("weight_decay", "float", doc, 0.0, None, low=0.0, optional=True, neutral=0.0)


_ADAMW_PARAMS = with_common_knobs(
    learning_rate(2.5e-3, 2.5e-3),
    _beta(
        "beta_1",
        "β: y = (1 − β)z + βx interpolates the step z and its average x (keras: cancels out, "
        "no effect, as in keras's class on torch)",
        ("beta1",),
    ),
    BETA_2,
    ParamInfo(
        "epsilon",
        "float",
        "ε added to the bias-corrected √v",
        1e-8,
        1e-8,
        aliases=("eps",),
        low=0.0,
    ),
    _WARMUP,
    _R,
    _weight_lr_power(0.0),
)
_ADAMW_PARAMS["weight_decay"] = _weight_decay(
    "λ: torch adds λy to the normalised step (the reference); keras decays y ← y(1 − ηλ) first"
)
_SGD_PARAMS = with_common_knobs(
    learning_rate(1.0, 1.0),
    _beta("momentum", "β: y = (1 − β)z + βx interpolates the step z and its average x"),
    _WARMUP,
    _R,
    _weight_lr_power(2.0),
)
_SGD_PARAMS["weight_decay"] = _weight_decay(
    "λ: torch adds λy to g (the reference's, at y); keras decays y ← y(1 − ηλ) first"
)

_AVERAGE = (
    "ηₖ = η min(1, (k+1)/T);  c = wₖ/Σw, wₖ = (k+1)^r η_max^p;  y ← (1−c)y + cz + ηₖ(β(1−c) − 1)d;"
    "  z ← z − ηₖd;  evaluate at x = (y − (1−β)z)/β"
)
SCHEDULE_FREE_ADAMW = OptimizerInfo(
    name="schedule_free_adamw",
    evaluates_elsewhere=True,
    params=_ADAMW_PARAMS,
    summary="AdamW without a schedule: steps z, averages x, gradients at y between them",
    reference="Defazio et al., 2024",
    update_rule={
        "torch": f"v ← β₂v + (1−β₂)g²;  d = g/(√(v/(1−β₂ᵏ⁺¹)) + ε) + λy;  {_AVERAGE}",
        "keras": (
            "y ← y(1−ηλ);  v ← β₂v + (1−β₂)g²;  d = g/(√(v/(1−β₂ᵏ⁺¹)) + ε);  ηₖ = η min(1, "
            "(k+1)/T);  z ← z − ηₖd;  y ← (1−c)y + cz, c = 1/(k+1) (r = p = 0);  evaluate at y"
        ),
    },
    differences=(
        "torch: the reference facebookresearch/schedule_free (schedulefree's AdamWScheduleFree): "
        "λy added to the normalised step, averaging weighted by η_max² (p = 2), evaluated at x. "
        "keras: keras.optimizers.ScheduleFreeAdamW on its torch backend: uniform averaging "
        "1/(k+1) (r = 0, p = 0, which keras does not expose), y decayed y(1 − ηλ) before the "
        "step, and x recovered with the z just stepped, which leaves y the running average of "
        "z (y ← (1−c)y + cz): gradients and evaluation both at y."
    ),
    kernel=_adamw_kernel,
    own_weight_decay=True,
)
SCHEDULE_FREE_SGD = OptimizerInfo(
    name="schedule_free_sgd",
    evaluates_elsewhere=True,
    params=_SGD_PARAMS,
    summary="SGD without a schedule: steps z, averages x, gradients at y between them",
    reference="Defazio et al., 2024",
    update_rule={
        "torch": f"d = g + λy;  {_AVERAGE}",
        "keras": f"y ← y(1−ηλ);  d = g;  {_AVERAGE}",
    },
    differences=(
        "Keras ships no Schedule-Free SGD: torch semantics are the reference (schedulefree's "
        "SGDScheduleFree, coupled λy at y), keras semantics the same rule and defaults with "
        "keras's knobs (clipping; y decayed y(1 − ηλ) before the step, as keras's "
        "ScheduleFreeAdamW decays). Both evaluate at x."
    ),
    kernel=_sgd_kernel,
)

OPTIMIZERS = (SCHEDULE_FREE_ADAMW, SCHEDULE_FREE_SGD)
