"""What an optimizer is as data: its parameters, their defaults per convention and ranges.

Torch-free: the command line lists, describes and validates optimizers without importing
torch. Each family module (``families/``) builds its :class:`OptimizerInfo` records from the
factories here; ``registry`` collects them and resolves what a user wrote.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from optsweep.values import fmt

if TYPE_CHECKING:
    from .base import Kernel, UpdateFn

Semantics = Literal["torch", "keras"]
SEMANTICS: tuple[Semantics, ...] = ("torch", "keras")
Kind = Literal["float", "int", "bool"]
# a family's update for an optimizer's structural values and the convention (keras: True)
KernelFactory = Callable[[Mapping[str, Any], bool], "Kernel"]
# torch's fused CPU kernel called per trial: (structural values, keras, decoupled decay)
FusedFactory = Callable[[Mapping[str, Any], bool, bool], "UpdateFn"]
# floats of state per trial beyond the copies of the parameters, for the parameters' shapes
StateFloats = Callable[[Mapping[str, Any], Sequence[tuple[int, ...]]], int]

__all__ = [
    "BETA_1",
    "BETA_2",
    "BETA_2_INF",
    "CLIP_KNOBS",
    "COMMON_KNOBS",
    "DECOUPLED_WEIGHT_DECAY",
    "DYNAMIC_LOSS_SCALE_KNOBS",
    "EMA_KNOBS",
    "SEMANTICS",
    "OptimizerInfo",
    "ParamInfo",
    "Semantics",
    "beta",
    "check_semantics",
    "epsilon",
    "flag",
    "learning_rate",
    "momentum",
    "momentum_decay",
    "with_common_knobs",
]

# ---------------------------------------------------------------------------------------------
# Parameter and optimizer records
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamInfo:
    """One hyperparameter of one optimizer.

    Args:
        name: canonical (keras-style) name.
        kind: ``"float"``, ``"int"`` or ``"bool"``.
        doc: one line for humans.
        torch_default: default under torch semantics (``None`` = off/absent).
        keras_default: default under keras semantics (``None`` = off/absent).
        aliases: other names accepted for it (torch's ``lr``, ``eps``, ``alpha``...).
        structural: True when trials differing in it cannot share one batched update
            (flags, integers, knobs whose presence changes the computation). Structural
            values are read by ``build``; the others are tensors supplied at update time.
        low, high: bounds of the valid range (``None`` = unbounded).
        low_open, high_open: whether that bound is excluded.
        optional: whether ``None`` (off) is accepted.
        neutral: for an optional continuous knob, the value that computes exactly the
            same as ``None`` (used when ``None`` must become a tensor of a batch).
    """

    name: str
    kind: Kind
    doc: str
    torch_default: Any
    keras_default: Any
    aliases: tuple[str, ...] = ()
    structural: bool = False
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    optional: bool = False
    neutral: float | None = None

    def default(self, semantics: Semantics) -> Any:
        """The default value under ``semantics`` (``None`` = off/absent)."""
        check_semantics(semantics)
        return self.torch_default if semantics == "torch" else self.keras_default

    @property
    def valid(self) -> str:
        """Human text of the valid range, e.g. ``"0 <= beta_1 < 1"``."""
        if self.kind == "bool":
            text = f"{self.name} is true or false"
        elif self.low is not None and self.high is None:
            text = f"{self.name} {'>' if self.low_open else '>='} {fmt(self.low)}"
        else:
            left = "" if self.low is None else f"{fmt(self.low)} {'<' if self.low_open else '<='} "
            right = (
                "" if self.high is None else f" {'<' if self.high_open else '<='} {fmt(self.high)}"
            )
            text = f"{left}{self.name}{right}"
        if self.kind == "int":
            text += " (an integer)"
        if self.optional:
            text += ", or null (off)"
        return text

    def check(self, value: Any) -> str | None:
        """``None`` when ``value`` is valid, else a message naming the value and the range."""
        if value is None:
            return None if self.optional else f"{self.name} must be set; valid: {self.valid}"
        if self.kind == "bool":
            if isinstance(value, bool):
                return None
            return f"{self.name} = {value!r} is not a boolean; valid: {self.valid}"
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return f"{self.name} = {value!r} is not a number; valid: {self.valid}"
        if self.kind == "int" and not float(value).is_integer():
            return f"{self.name} = {value!r} is not an integer; valid: {self.valid}"
        x = float(value)
        if not math.isfinite(x):
            return f"{self.name} = {value!r} is not finite; valid: {self.valid}"
        too_low = self.low is not None and (x <= self.low if self.low_open else x < self.low)
        too_high = self.high is not None and (x >= self.high if self.high_open else x > self.high)
        if too_low or too_high:
            return f"{self.name} = {value!r} is out of range; valid: {self.valid}"
        return None

    def coerce(self, value: Any) -> Any:
        """The checked ``value`` as the Python type of ``kind``."""
        if value is None:
            return None
        if self.kind == "bool":
            return bool(value)
        if self.kind == "int":
            return int(value)
        return float(value)


@dataclass(frozen=True)
class OptimizerInfo:
    """One optimizer of the registry.

    Args:
        name: registry name (``"adam"``).
        params: its own parameters followed by the common knobs, by canonical name.
        summary: one line.
        reference: the paper(s).
        update_rule: the update, per semantics, in plain text.
        differences: what differs between torch and keras semantics.
        kernel: the family's in-place update for the structural values and convention
            (``families/``): what the engine, the pure interface and the wrapper all run.
        fused: torch's fused CPU kernel called once per trial, where the family uses one.
        decoupled_decay: ``weight_decay`` decays θ ← θ − ηλθ in both conventions (AdamW, and
            the rules whose reference decays so: Lion), never as torch's coupled g + λθ.
        own_weight_decay: the kernel applies ``weight_decay`` itself, where the library decays
            in the middle of its rule (torch's Adafactor reads θ before decaying it).
        hints: extra "did you mean" advice for names people use by mistake
            (``{"rho": "momentum"}`` for SGD momentum, which the seeds call rho).
        state_copies: copies of the parameters the rule's state holds, where more than the
            three ``build.state_slots`` assumes (Prodigy: θ₀, s, m, v).
        state_floats: floats of state per trial that are not copies of the parameters, for
            the parameters' shapes (SOAP's per-axis factors and eigenbases, 2·d² an axis).
        refuses: common knobs the rule cannot take, each with why (SOAP: dynamic loss
            scaling); ``registry.resolve`` refuses them when set.
        evaluates_elsewhere: the rule answers at another point than where it takes gradients
            (Schedule-Free's x), as its state says (``transforms.evaluates_elsewhere``): its
            trials train in batches of their own, never beside other rules' trials.
    """

    name: str
    params: dict[str, ParamInfo]
    summary: str
    reference: str
    update_rule: dict[str, str]
    differences: str
    kernel: KernelFactory
    fused: FusedFactory | None = None
    decoupled_decay: bool = False
    own_weight_decay: bool = False
    hints: dict[str, str] = field(default_factory=dict)
    state_copies: int = 3
    state_floats: StateFloats | None = None
    refuses: dict[str, str] = field(default_factory=dict)
    evaluates_elsewhere: bool = False

    def defaults(self, semantics: Semantics) -> dict[str, Any]:
        """Every parameter's default under ``semantics``."""
        return {name: p.default(semantics) for name, p in self.params.items()}

    @property
    def own_params(self) -> dict[str, ParamInfo]:
        """The optimizer's own parameters, without the common knobs."""
        return {k: v for k, v in self.params.items() if k not in COMMON_KNOBS}


def check_semantics(semantics: str) -> None:
    """Raise ``ValueError`` unless ``semantics`` is ``"torch"`` or ``"keras"``."""
    if semantics not in SEMANTICS:
        raise ValueError(f"semantics = {semantics!r} is invalid; valid: 'torch' or 'keras'")


# ---------------------------------------------------------------------------------------------
# Parameter factories (defaults differ per optimizer, so each optimizer gets its own records)
# ---------------------------------------------------------------------------------------------


def learning_rate(torch: float, keras: float) -> ParamInfo:
    return ParamInfo(
        "learning_rate",
        "float",
        "step size η (the rate at this step; schedules are applied by the caller)",
        torch,
        keras,
        aliases=("lr",),
        low=0.0,
        low_open=True,
    )


def epsilon(torch: float, keras: float, doc: str) -> ParamInfo:
    return ParamInfo("epsilon", "float", doc, torch, keras, aliases=("eps",), low=0.0)


def beta(index: int, default: float, doc: str) -> ParamInfo:
    return ParamInfo(
        f"beta_{index}",
        "float",
        doc,
        default,
        default,
        aliases=(f"beta{index}",),
        low=0.0,
        high=1.0,
        high_open=True,
    )


def flag(name: str, doc: str, default: bool = False) -> ParamInfo:
    return ParamInfo(name, "bool", doc, default, default, structural=True)


def momentum(default: float, doc: str) -> ParamInfo:
    return ParamInfo("momentum", "float", doc, default, default, low=0.0, high=1.0)


def optional_positive(name: str, doc: str, aliases: tuple[str, ...] = ()) -> ParamInfo:
    """A knob that is off (None) by default in both conventions and > 0 when set; each one
    changes the update's structure (clipping, loss unscaling)."""
    return ParamInfo(
        name,
        "float",
        doc,
        None,
        None,
        aliases=aliases,
        structural=True,
        low=0.0,
        low_open=True,
        optional=True,
    )


def momentum_decay(doc: str) -> ParamInfo:
    return ParamInfo("momentum_decay", "float", doc, 4e-3, 1.0, low=0.0)


# Shared by more than one family.
BETA_1 = beta(1, 0.9, "decay of the first-moment EMA m")
BETA_2 = beta(2, 0.999, "decay of the second-moment EMA v")
BETA_2_INF = beta(2, 0.999, "decay of the infinity-norm u")
DECOUPLED_WEIGHT_DECAY = ParamInfo(
    "decoupled_weight_decay",
    "bool",
    "torch: decay θ ← θ − ηλθ instead of adding λθ to g (torch's Adam and NAdam flag); "
    "keras always decouples",
    False,
    True,
    structural=True,
)

# The knobs every optimizer has (document 002's keras keyword arguments).
_COMMON: tuple[ParamInfo, ...] = (
    ParamInfo(
        "weight_decay",
        "float",
        "λ: torch adds λθ to g (coupled L2) except in adamw; keras decays θ ← θ − ηλθ",
        0.0,
        None,
        low=0.0,
        optional=True,
        neutral=0.0,
    ),
    optional_positive(
        "clipnorm",
        "clip each parameter tensor's gradient to this L2 norm",
    ),
    optional_positive(
        "global_clipnorm",
        "clip all gradients of a trial together to this L2 norm (torch's clip_grad_norm_)",
        aliases=("max_grad_norm",),
    ),
    optional_positive(
        "clipvalue",
        "clip gradients elementwise to [−clipvalue, clipvalue]",
    ),
    ParamInfo(
        "gradient_accumulation_steps",
        "int",
        "average gradients over N calls and update on every N-th (1 or null: every call)",
        None,
        None,
        structural=True,
        low=1.0,
        optional=True,
    ),
    optional_positive(
        "loss_scale_factor",
        "the caller multiplied the loss by this; gradients are divided by it",
    ),
    ParamInfo(
        "use_ema",
        "bool",
        "keep an exponential moving average of the weights and evaluate with it (keras)",
        False,
        False,
        structural=True,
    ),
    ParamInfo(
        "ema_momentum",
        "float",
        "μ of the weights' average: a ← μ a + (1 − μ) θ after every step (a₁ = θ₁)",
        0.99,
        0.99,
        low=0.0,
        high=1.0,
    ),
    ParamInfo(
        "ema_overwrite_frequency",
        "int",
        "every N steps, the weights are overwritten with their average (null: never)",
        None,
        None,
        structural=True,
        low=1.0,
        optional=True,
    ),
    ParamInfo(
        "dynamic_loss_scale",
        "bool",
        "scale the loss per trial, halving the scale and skipping the step when gradients "
        "overflow, doubling it after dynamic_growth_steps good steps (keras "
        "LossScaleOptimizer, torch GradScaler)",
        False,
        False,
        structural=True,
    ),
    ParamInfo(
        "initial_scale",
        "float",
        "the dynamic loss scale to start from (torch GradScaler 2^16, keras 2^15)",
        65536.0,
        32768.0,
        structural=True,
        low=0.0,
        low_open=True,
    ),
    ParamInfo(
        "dynamic_growth_steps",
        "int",
        "good steps after which the dynamic loss scale doubles",
        2000,
        2000,
        structural=True,
        low=1.0,
    ),
)
COMMON_KNOBS: tuple[str, ...] = tuple(p.name for p in _COMMON)
CLIP_KNOBS: tuple[str, ...] = ("clipnorm", "global_clipnorm", "clipvalue")
EMA_KNOBS: tuple[str, ...] = ("use_ema", "ema_momentum", "ema_overwrite_frequency")
DYNAMIC_LOSS_SCALE_KNOBS: tuple[str, ...] = (
    "dynamic_loss_scale",
    "initial_scale",
    "dynamic_growth_steps",
)


def with_common_knobs(*own: ParamInfo) -> dict[str, ParamInfo]:
    """An optimizer's parameters: its own, then the knobs every optimizer has."""
    return {p.name: p for p in (*own, *_COMMON)}
