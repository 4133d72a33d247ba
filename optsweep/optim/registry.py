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
from collections.abc import Mapping, Sequence
from typing import Any

from .families import OPTIMIZERS as _DEFINED
from .parameters import (
    CLIP_KNOBS,
    COMMON_KNOBS,
    SEMANTICS,
    OptimizerInfo,
    ParamInfo,
    Semantics,
    check_semantics,
)

__all__ = [
    "COMMON_KNOBS",
    "OPTIMIZERS",
    "SEMANTICS",
    "OptimizerInfo",
    "ParamInfo",
    "Semantics",
    "UnknownParameterError",
    "check_semantics",
    "optimizer_info",
    "resolve",
    "resolve_name",
    "written_names",
]


class UnknownParameterError(ValueError):
    """An optimizer was given a parameter it does not have."""


OPTIMIZERS: dict[str, OptimizerInfo] = {info.name: info for info in _DEFINED}
assert len(OPTIMIZERS) == len(_DEFINED), "two families define the same optimizer name"

# Keywords of the torch.optim wrapper (``optsweep.optim.create``), not of an optimizer's rule.
WRAPPER_ONLY: dict[str, str] = {
    "maximize": (
        "'maximize' is a keyword of the torch.optim wrapper (optsweep.optim.create); a sweep "
        "minimises its training loss."
    ),
}


# ---------------------------------------------------------------------------------------------
# Name resolution and validation
# ---------------------------------------------------------------------------------------------

# Names written for a pair of canonical parameters (torch's tuples).
_PAIR_ALIASES: dict[str, tuple[str, str]] = {
    "betas": ("beta_1", "beta_2"),
    "etas": ("eta_minus", "eta_plus"),  # torch's Rprop
    "step_sizes": ("step_size_min", "step_size_max"),  # torch's Rprop
    "eps": ("epsilon_1", "epsilon_2"),  # torch's Adafactor (elsewhere eps is epsilon)
}


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


def written_names(optimizer: str) -> dict[str, tuple[str, ...]]:
    """Every name a parameter of ``optimizer`` may be written as, and the canonical names it
    stands for: ``{"learning_rate": ("learning_rate",), "lr": ("learning_rate",), "betas":
    ("beta_1", "beta_2"), ...}``."""
    return _names_of(optimizer_info(optimizer))


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
    elif name in WRAPPER_ONLY:
        hint = WRAPPER_ONLY[name]
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
        first, second = _PAIR_ALIASES[name]
        raise ValueError(f"{optimizer}: {name} = {value!r} must be a pair ({first}, {second})")
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
            names for one parameter, more than one clipping knob, a knob the optimizer
            refuses (``OptimizerInfo.refuses``), or torch's Nesterov without momentum / with
            dampening.
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
    if semantics == "keras" and values.get("decoupled_weight_decay") is False:
        raise ValueError(
            f"{optimizer} (keras semantics): decoupled_weight_decay = false is torch's coupled "
            "L2; keras always decays θ ← θ − ηλθ. Use semantics torch, or leave it out"
        )
    for knob, why in optimizer_info(optimizer).refuses.items():
        if values.get(knob) not in (None, False):
            raise ValueError(f"{optimizer}: {knob} is not supported: {why}")
    if values["dynamic_loss_scale"] and values["loss_scale_factor"] is not None:
        raise ValueError(
            f"{optimizer}: dynamic_loss_scale and loss_scale_factor both scale the loss; "
            "give one (initial_scale sets where the dynamic scale starts)"
        )
    if values["dynamic_loss_scale"] and (values["gradient_accumulation_steps"] or 1) > 1:
        raise ValueError(
            f"{optimizer}: dynamic_loss_scale with gradient_accumulation_steps is not supported "
            "(a trial that overflows mid-accumulation cannot skip alone)"
        )
    if optimizer == "adafactor" and semantics == "torch" and values["clip_threshold"] < 1:
        raise ValueError(
            f"adafactor (torch semantics): clip_threshold = {values['clip_threshold']} is out of "
            "range; valid: clip_threshold >= 1 (torch's Adafactor d; keras accepts any d > 0)"
        )
    nesterov = optimizer == "nesterov" or values.get("nesterov", False)
    torch_nesterov = semantics == "torch" and nesterov and optimizer in ("momentum", "nesterov")
    if torch_nesterov and (values["momentum"] <= 0 or values["dampening"] != 0):
        raise ValueError(
            f"{optimizer} (torch semantics): Nesterov momentum requires momentum > 0 and "
            f"dampening = 0; got momentum={values['momentum']}, "
            f"dampening={values['dampening']}"
        )
