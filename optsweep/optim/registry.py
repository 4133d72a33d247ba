"""The optimizer registry: every optimizer, its parameters and their defaults, as data.

Each optimizer exists in two conventions (``semantics``): ``"torch"`` follows
``torch.optim`` (update rule and defaults), ``"keras"`` follows ``tf.keras`` /
Keras 3. Parameters have one canonical, keras-style name (``learning_rate``,
``beta_1``, ``epsilon``, ``rho``...) and accept torch's names as aliases (``lr``,
``betas``, ``eps``, ``alpha``).

``resolve`` turns what a user wrote into the full canonical dictionary that
``optsweep.optim.build`` and ``optsweep.optim.create`` consume: aliases mapped,
defaults of the chosen semantics filled in, every value checked.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Semantics = Literal["torch", "keras"]
SEMANTICS: tuple[Semantics, ...] = ("torch", "keras")
Kind = Literal["float", "int", "bool"]

__all__ = [
    "COMMON_KNOBS",
    "OPTIMIZERS",
    "SEMANTICS",
    "OptimizerInfo",
    "ParamInfo",
    "Semantics",
    "UnknownParameterError",
    "check_semantics",
    "resolve",
    "resolve_name",
]


class UnknownParameterError(ValueError):
    """An optimizer was given a parameter it does not have."""


# ---------------------------------------------------------------------------------------------
# Parameter and optimizer records
# ---------------------------------------------------------------------------------------------


def _fmt(x: float) -> str:
    return f"{x:g}"


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
            text = f"{self.name} {'>' if self.low_open else '>='} {_fmt(self.low)}"
        else:
            left = "" if self.low is None else f"{_fmt(self.low)} {'<' if self.low_open else '<='} "
            right = (
                "" if self.high is None else f" {'<' if self.high_open else '<='} {_fmt(self.high)}"
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
        hints: extra "did you mean" advice for names people use by mistake
            (``{"rho": "momentum"}`` for SGD momentum, which the seeds call rho).
    """

    name: str
    params: dict[str, ParamInfo]
    summary: str
    reference: str
    update_rule: dict[str, str]
    differences: str
    hints: dict[str, str] = field(default_factory=dict)

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


def _learning_rate(torch: float, keras: float) -> ParamInfo:
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


def _epsilon(torch: float, keras: float, doc: str) -> ParamInfo:
    return ParamInfo("epsilon", "float", doc, torch, keras, aliases=("eps",), low=0.0)


def _beta(index: int, default: float, doc: str) -> ParamInfo:
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


def _flag(name: str, doc: str, default: bool = False) -> ParamInfo:
    return ParamInfo(name, "bool", doc, default, default, structural=True)


def _momentum(default: float, doc: str) -> ParamInfo:
    return ParamInfo("momentum", "float", doc, default, default, low=0.0, high=1.0)


def _momentum_decay(doc: str) -> ParamInfo:
    return ParamInfo("momentum_decay", "float", doc, 4e-3, 1.0, low=0.0)


_BETA_1 = _beta(1, 0.9, "decay of the first-moment EMA m")
_BETA_2 = _beta(2, 0.999, "decay of the second-moment EMA v")
_BETA_2_INF = _beta(2, 0.999, "decay of the infinity-norm u")
_AMSGRAD = _flag("amsgrad", "normalise by the running maximum of v (AMSGrad)")
_MOMENTUM_SCHEDULE = _flag(
    "momentum_schedule",
    "Dozat's schedule μₜ = β₁(1 − ½·0.96^(t·ψ)); false gives the seed's plain form μₜ = β₁",
    default=True,
)
_DAMPENING = ParamInfo(
    "dampening",
    "float",
    "scale (1 − dampening) on g entering the buffer (torch; keras has none, default 0)",
    0.0,
    0.0,
    low=0.0,
    high=1.0,
)

# The knobs every optimizer has (seed 002's keras keyword arguments).
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
    ParamInfo(
        "clipnorm",
        "float",
        "clip each parameter tensor's gradient to this L2 norm",
        None,
        None,
        structural=True,
        low=0.0,
        low_open=True,
        optional=True,
    ),
    ParamInfo(
        "global_clipnorm",
        "float",
        "clip all gradients of a trial together to this L2 norm (torch's clip_grad_norm_)",
        None,
        None,
        aliases=("max_grad_norm",),
        structural=True,
        low=0.0,
        low_open=True,
        optional=True,
    ),
    ParamInfo(
        "clipvalue",
        "float",
        "clip gradients elementwise to [−clipvalue, clipvalue]",
        None,
        None,
        structural=True,
        low=0.0,
        low_open=True,
        optional=True,
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
    ParamInfo(
        "loss_scale_factor",
        "float",
        "the caller multiplied the loss by this; gradients are divided by it",
        None,
        None,
        structural=True,
        low=0.0,
        low_open=True,
        optional=True,
    ),
)
COMMON_KNOBS: tuple[str, ...] = tuple(p.name for p in _COMMON)
CLIP_KNOBS: tuple[str, ...] = ("clipnorm", "global_clipnorm", "clipvalue")


def _params(*own: ParamInfo) -> dict[str, ParamInfo]:
    return {p.name: p for p in (*own, *_COMMON)}


# ---------------------------------------------------------------------------------------------
# The optimizers
# ---------------------------------------------------------------------------------------------

_SGD_MOMENTUM_DIFF = (
    "torch keeps b ← μb + (1 − dampening)g (b₁ = g) and steps −ηb, so η stays outside the "
    "buffer; keras keeps v ← μv − ηg and steps +v, so η enters the buffer (same path while η "
    "is constant). Defaults: torch lr 1e-3, keras 0.01. The library default momentum is 0 "
    "(plain SGD); optsweep's momentum optimizers default to 0.9. Seed 003's SGDM code "
    "re-zeroes its velocity on every call; here the buffer persists."
)
_ADAM_DIFF = (
    "torch: θ ← θ − η/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε), ε 1e-8; keras: θ ← θ − η√(1−β₂ᵗ)/(1−β₁ᵗ)"
    " · m / (√v + ε) ('epsilon hat', ε effectively scaled by √(1−β₂ᵗ)), ε 1e-7."
)


def _sgd() -> OptimizerInfo:
    return OptimizerInfo(
        name="sgd",
        params=_params(_learning_rate(1e-3, 0.01)),
        summary="plain stochastic gradient descent",
        reference="Robbins & Monro, 1951",
        update_rule={"torch": "θ ← θ − η g", "keras": "θ ← θ − η g"},
        differences="same rule; default η: torch 1e-3, keras 0.01.",
        hints={
            "momentum": "use optimizer 'momentum' (or 'nesterov') for SGD with momentum.",
            "nesterov": "use optimizer 'nesterov'.",
            "rho": "use optimizer 'momentum' (the seeds call SGD momentum rho).",
            "dampening": "use optimizer 'momentum'.",
        },
    )


def _momentum_optimizer(nesterov: bool) -> OptimizerInfo:
    own: list[ParamInfo] = [
        _learning_rate(1e-3, 0.01),
        _momentum(0.9, "μ, decay of the momentum buffer (the seeds call it rho)"),
        _DAMPENING,
    ]
    if nesterov:
        rules = {
            "torch": "b ← μ b + (1 − dampening) g (b₁ = g);  θ ← θ − η (g + μ b)",
            "keras": "v ← μ v − η g;  θ ← θ + μ v − η g",
        }
        summary = "SGD with Nesterov momentum (NAG, the 'modified' form: no look-ahead gradient)"
        reference = "Nesterov, 1983; Sutskever et al., 2013"
    else:
        own.append(_flag("nesterov", "use the Nesterov form (same as optimizer 'nesterov')"))
        rules = {
            "torch": "b ← μ b + (1 − dampening) g (b₁ = g);  θ ← θ − η b",
            "keras": "v ← μ v − η g;  θ ← θ + v",
        }
        summary = "SGD with heavy-ball momentum"
        reference = "Polyak, 1964"
    return OptimizerInfo(
        name="nesterov" if nesterov else "momentum",
        params=_params(*own),
        summary=summary,
        reference=reference,
        update_rule=rules,
        differences=_SGD_MOMENTUM_DIFF
        + (" torch requires dampening = 0 and momentum > 0 for Nesterov." if nesterov else ""),
        hints={
            "rho": "did you mean 'momentum'? The seeds call SGD momentum rho.",
            "beta": "did you mean 'momentum'?",
            **({"nesterov": "it is always on for optimizer 'nesterov'."} if nesterov else {}),
        },
    )


def _adagrad() -> OptimizerInfo:
    return OptimizerInfo(
        name="adagrad",
        params=_params(
            _learning_rate(1e-2, 1e-3),
            _epsilon(1e-10, 1e-7, "ε: torch adds it after the root, keras inside it"),
            ParamInfo(
                "initial_accumulator_value",
                "float",
                "s₀, starting value of the sum of squared gradients",
                0.0,
                0.1,
                low=0.0,
            ),
            ParamInfo(
                "lr_decay",
                "float",
                "torch's η/(1 + (t − 1)·lr_decay) (keras has none, default 0)",
                0.0,
                0.0,
                low=0.0,
            ),
        ),
        summary="per-coordinate rates from the sum of squared gradients",
        reference="Duchi et al., 2011",
        update_rule={
            "torch": "s ← s + g²;  θ ← θ − η/(1 + (t−1)·lr_decay) · g / (√s + ε)",
            "keras": "s ← s + g²;  θ ← θ − η g / √(s + ε)",
        },
        differences=(
            "ε after the root (torch, 1e-10) vs inside it (keras, 1e-7); s₀ 0 (torch) vs 0.1 "
            "(keras); η 1e-2 (torch) vs 1e-3 (keras). Seed 002 writes ε outside the root while "
            "tf.keras puts it inside."
        ),
    )


def _rmsprop() -> OptimizerInfo:
    return OptimizerInfo(
        name="rmsprop",
        params=_params(
            _learning_rate(1e-2, 1e-3),
            ParamInfo(
                "rho",
                "float",
                "decay of the mean square v (torch calls it alpha)",
                0.99,
                0.9,
                aliases=("alpha",),
                low=0.0,
                high=1.0,
                high_open=True,
            ),
            _epsilon(1e-8, 1e-7, "ε: torch adds it after the root, keras inside it"),
            _momentum(0.0, "μ of the momentum buffer over the normalised steps (0: none)"),
            _flag("centered", "subtract the squared running mean of g (Graves, 2013)"),
        ),
        summary="divide by a running root mean square of the gradients",
        reference="Tieleman & Hinton, 2012 (lecture 6.5); Graves, 2013 (centered)",
        update_rule={
            "torch": (
                "v ← ρ v + (1−ρ) g²;  [ḡ ← ρ ḡ + (1−ρ) g;  v̄ = v − ḡ²];  "
                "b ← μ b + g / (√v̄ + ε);  θ ← θ − η b"
            ),
            "keras": (
                "v ← ρ v + (1−ρ) g²;  [ḡ ← ρ ḡ + (1−ρ) g;  v̄ = v − ḡ²];  "
                "b ← μ b + η g / √(v̄ + ε);  θ ← θ − b"
            ),
        },
        differences=(
            "ε after the root (torch, 1e-8) vs inside it (keras, 1e-7); ρ 0.99 (torch 'alpha') "
            "vs 0.9; η 1e-2 vs 1e-3; with momentum, keras puts η inside the buffer."
        ),
    )


def _adadelta() -> OptimizerInfo:
    return OptimizerInfo(
        name="adadelta",
        params=_params(
            _learning_rate(1.0, 1e-3),
            ParamInfo(
                "rho",
                "float",
                "decay of both running averages",
                0.9,
                0.95,
                low=0.0,
                high=1.0,
            ),
            _epsilon(1e-6, 1e-7, "ε inside both roots"),
        ),
        summary="step sizes from the ratio of running RMS of updates and of gradients",
        reference="Zeiler, 2012",
        update_rule={
            "torch": (
                "v ← ρ v + (1−ρ) g²;  Δ = √(u + ε)/√(v + ε) · g;  u ← ρ u + (1−ρ) Δ²;  θ ← θ − η Δ"
            ),
            "keras": (
                "v ← ρ v + (1−ρ) g²;  Δ = √(u + ε)/√(v + ε) · g;  u ← ρ u + (1−ρ) Δ²;  θ ← θ − η Δ"
            ),
        },
        differences="same rule; defaults η 1.0, ρ 0.9, ε 1e-6 (torch) vs 1e-3, 0.95, 1e-7 (keras).",
    )


def _adam(name: str) -> OptimizerInfo:
    own: list[ParamInfo] = [
        _learning_rate(1e-3, 1e-3),
        _BETA_1,
        _BETA_2,
        _epsilon(1e-8, 1e-7, "ε added to √v (torch: to the bias-corrected √v̂)"),
    ]
    rules = {
        "torch": "m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  θ ← θ − η m̂ / (√v̂ + ε)",
        "keras": (
            "m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  θ ← θ − η √(1−β₂ᵗ)/(1−β₁ᵗ) · m / (√v + ε)"
        ),
    }
    summary = "adaptive moment estimation"
    reference = "Kingma & Ba, 2015"
    hints: dict[str, str] = {}
    differences = _ADAM_DIFF
    if name == "amsgrad":
        rules = {
            "torch": (
                "m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  vmax ← max(vmax, v);  "
                "θ ← θ − η/(1−β₁ᵗ) · m / (√vmax/√(1−β₂ᵗ) + ε)"
            ),
            "keras": (
                "m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  vmax ← max(vmax, v);  "
                "θ ← θ − η √(1−β₂ᵗ)/(1−β₁ᵗ) · m / (√vmax + ε)"
            ),
        }
        summary = "Adam normalised by the running maximum of v"
        reference = "Reddi et al., 2018"
        hints = {"amsgrad": "it is always on for optimizer 'amsgrad'."}
    elif name == "adamw":
        own.append(_AMSGRAD)
        rules = {k: "θ ← θ − η λ θ;  then " + v for k, v in rules.items()}
        summary = "Adam with decoupled weight decay"
        reference = "Loshchilov & Hutter, 2019"
        differences = _ADAM_DIFF + " Decay λ default: torch 1e-2, keras 0.004."
    else:
        own.append(_AMSGRAD)
    params = _params(*own)
    if name == "adamw":
        wd = params["weight_decay"]
        params["weight_decay"] = ParamInfo(
            "weight_decay",
            "float",
            "λ of the decoupled decay θ ← θ − ηλθ (both semantics)",
            1e-2,
            4e-3,
            low=0.0,
            neutral=wd.neutral,
        )
    return OptimizerInfo(
        name=name,
        params=params,
        summary=summary,
        reference=reference,
        update_rule=rules,
        differences=differences,
        hints=hints,
    )


def _adamax() -> OptimizerInfo:
    return OptimizerInfo(
        name="adamax",
        params=_params(
            _learning_rate(2e-3, 1e-3),
            _BETA_1,
            _BETA_2_INF,
            _epsilon(1e-8, 1e-7, "ε: torch adds it to |g| inside the max, keras to u"),
        ),
        summary="Adam with the infinity norm",
        reference="Kingma & Ba, 2015 (section 7.1)",
        update_rule={
            "torch": "m ← β₁m + (1−β₁)g;  u ← max(β₂u, |g| + ε);  θ ← θ − η/(1−β₁ᵗ) · m / u",
            "keras": "m ← β₁m + (1−β₁)g;  u ← max(β₂u, |g|);  θ ← θ − η/(1−β₁ᵗ) · m / (u + ε)",
        },
        differences=(
            "ε inside the max (torch, 1e-8) vs added to u (keras, 1e-7); η 2e-3 vs 1e-3. "
            "Seed 001 writes a square root over u, which AdaMax does not have, and its second "
            "moment with v and β where g² and β₂ are meant."
        ),
    )


_NADAM_MHAT = "m̂ = μₜ₊₁ m/(1 − Π₁..ₜ₊₁ μ) + (1 − μₜ) g/(1 − Π₁..ₜ μ)"


def _nadam() -> OptimizerInfo:
    return OptimizerInfo(
        name="nadam",
        params=_params(
            _learning_rate(2e-3, 1e-3),
            _BETA_1,
            _BETA_2,
            _epsilon(1e-8, 1e-7, "ε added to √v̂"),
            _momentum_decay(
                "ψ in μₜ = β₁(1 − ½·0.96^(t·ψ)); torch 4e-3, keras's schedule is ψ = 1"
            ),
            _MOMENTUM_SCHEDULE,
        ),
        summary="Adam with Nesterov momentum",
        reference="Dozat, 2016",
        update_rule={
            "torch": (
                f"μₜ = β₁(1 − ½·0.96^(tψ));  m, v as Adam;  {_NADAM_MHAT};  "
                "θ ← θ − η m̂ / (√(v/(1−β₂ᵗ)) + ε)"
            ),
            "keras": (
                f"μₜ = β₁(1 − ½·0.96ᵗ);  m, v as Adam;  {_NADAM_MHAT};  "
                "θ ← θ − η m̂ / (√(v/(1−β₂ᵗ)) + ε)"
            ),
        },
        differences=(
            "torch's schedule 0.96^(t·ψ) with ψ = momentum_decay 4e-3 vs keras 0.96ᵗ (ψ = 1); "
            "η 2e-3 vs 1e-3; ε 1e-8 vs 1e-7. momentum_schedule false gives seed 000's plain "
            "form μₜ = β₁: θ ← θ − η/(√v̂+ε)·(β₁m/(1−β₁^(t+1)) + (1−β₁)g/(1−β₁ᵗ))."
        ),
    )


def _nadamax() -> OptimizerInfo:
    return OptimizerInfo(
        name="nadamax",
        params=_params(
            _learning_rate(2e-3, 1e-3),
            _BETA_1,
            _BETA_2_INF,
            _epsilon(1e-8, 1e-7, "ε: torch adds it to |g| inside the max, keras to u"),
            _momentum_decay("ψ in μₜ = β₁(1 − ½·0.96^(t·ψ)); torch-style 4e-3, keras-style 1"),
            _MOMENTUM_SCHEDULE,
        ),
        summary="AdaMax with Nesterov momentum (no library ships it)",
        reference="Dozat, 2016",
        update_rule={
            "torch": (
                f"μₜ = β₁(1 − ½·0.96^(tψ));  u ← max(β₂u, |g| + ε);  {_NADAM_MHAT};  "
                "θ ← θ − η m̂ / u"
            ),
            "keras": (
                f"μₜ = β₁(1 − ½·0.96ᵗ);  u ← max(β₂u, |g|);  {_NADAM_MHAT};  θ ← θ − η m̂ / (u + ε)"
            ),
        },
        differences="torch: NAdam's schedule with AdaMax's u (ε inside the max); keras: keras "
        "Nadam's schedule with keras Adamax's u (ε added to u). Checked against a float64 "
        "transcription of the formula.",
    )


def _build_registry() -> dict[str, OptimizerInfo]:
    infos = [
        _sgd(),
        _momentum_optimizer(nesterov=False),
        _momentum_optimizer(nesterov=True),
        _adagrad(),
        _rmsprop(),
        _adadelta(),
        _adam("adam"),
        _adam("amsgrad"),
        _adamax(),
        _nadam(),
        _nadamax(),
        _adam("adamw"),
    ]
    return {info.name: info for info in infos}


OPTIMIZERS: dict[str, OptimizerInfo] = _build_registry()


# ---------------------------------------------------------------------------------------------
# Name resolution and validation
# ---------------------------------------------------------------------------------------------

# Names written for a pair of canonical parameters (torch's tuples).
_PAIR_ALIASES: dict[str, tuple[str, str]] = {"betas": ("beta_1", "beta_2")}


def optimizer_info(optimizer: str) -> OptimizerInfo:
    """The registry entry, or ``ValueError`` listing the known optimizers (with a suggestion)."""
    try:
        return OPTIMIZERS[optimizer]
    except KeyError:
        close = difflib.get_close_matches(str(optimizer), OPTIMIZERS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown optimizer {optimizer!r}{hint} Known: {', '.join(OPTIMIZERS)}"
        ) from None


def _names_of(info: OptimizerInfo) -> dict[str, tuple[str, ...]]:
    names: dict[str, tuple[str, ...]] = {}
    for p in info.params.values():
        names[p.name] = (p.name,)
        for alias in p.aliases:
            names[alias] = (p.name,)
    for alias, pair in _PAIR_ALIASES.items():
        if all(name in info.params for name in pair):
            names[alias] = pair
    return names


def resolve_name(optimizer: str, name: str) -> tuple[str, ...]:
    """Canonical name(s) for a parameter name as written.

    ``resolve_name("adam", "betas") == ("beta_1", "beta_2")``,
    ``resolve_name("adam", "lr") == ("learning_rate",)``.

    Raises:
        UnknownParameterError: the optimizer has no such parameter; the message names
            the optimizer and says "did you mean ...".
    """
    info = optimizer_info(optimizer)
    names = _names_of(info)
    if name in names:
        return names[name]
    if name in info.hints:
        hint = info.hints[name]
    else:
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else "no close match."
    raise UnknownParameterError(
        f"{optimizer}: unknown parameter {name!r}; {hint} "
        f"Valid: {', '.join(info.params)} (torch aliases: "
        f"{', '.join(n for n in names if n not in info.params)})"
    )


def _split_pair(optimizer: str, name: str, value: Any) -> tuple[Any, Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(f"{optimizer}: {name} = {value!r} must be a pair (beta_1, beta_2)")
    return value[0], value[1]


def canonicalize(optimizer: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """Map every name in ``given`` to its canonical name (no defaults, no range checks).

    Raises:
        UnknownParameterError: for an unknown name.
        ValueError: when two names given denote the same parameter (``lr`` and
            ``learning_rate``).
    """
    out: dict[str, Any] = {}
    written: dict[str, str] = {}
    for name, value in given.items():
        canon = resolve_name(optimizer, name)
        values = _split_pair(optimizer, name, value) if len(canon) == 2 else (value,)
        for c, v in zip(canon, values, strict=True):
            if c in written:
                raise ValueError(
                    f"{optimizer}: {written[c]!r} and {name!r} both set {c}; give only one"
                )
            written[c] = name
            out[c] = v
    return out


def resolve(optimizer: str, semantics: Semantics, given: Mapping[str, Any]) -> dict[str, Any]:
    """Canonical names, defaults of ``semantics`` filled in, every value checked.

    Returns:
        ``{canonical_name: value}`` for every parameter of the optimizer (own and common
        knobs); floats as ``float``, flags as ``bool``, integers as ``int``, ``None`` = off.

    Raises:
        UnknownParameterError: a parameter the optimizer does not have ("did you mean").
        ValueError: an invalid value (naming optimizer, parameter and valid range), two
            names for one parameter, more than one clipping knob, or torch's Nesterov
            without momentum / with dampening.
    """
    check_semantics(semantics)
    info = optimizer_info(optimizer)
    values = canonicalize(optimizer, given)
    out: dict[str, Any] = {}
    for name, p in info.params.items():
        value = values.get(name, p.default(semantics))
        problem = p.check(value)
        if problem is not None:
            raise ValueError(f"{optimizer} ({semantics} semantics): {problem}")
        out[name] = p.coerce(value)
    _check_cross(optimizer, semantics, out)
    return out


def _check_cross(optimizer: str, semantics: Semantics, values: Mapping[str, Any]) -> None:
    clips = [k for k in CLIP_KNOBS if values.get(k) is not None]
    if len(clips) > 1:
        raise ValueError(
            f"{optimizer}: at most one of clipnorm, global_clipnorm, clipvalue may be set; "
            f"got {', '.join(f'{k}={values[k]}' for k in clips)}"
        )
    nesterov = optimizer == "nesterov" or values.get("nesterov", False)
    torch_nesterov = semantics == "torch" and nesterov and optimizer in ("momentum", "nesterov")
    if torch_nesterov and (values["momentum"] <= 0 or values["dampening"] != 0):
        raise ValueError(
            f"{optimizer} (torch semantics): Nesterov momentum requires momentum > 0 and "
            f"dampening = 0; got momentum={values['momentum']}, "
            f"dampening={values['dampening']}"
        )
