"""Learning-rate schedules, each following the library that defines it, per epoch or per step.

Every schedule is η_t = floor + (η − floor) · f(t), with f a number the host computes from the
count t alone and floor an absolute rate (``eta_min``, ``end_learning_rate``) or 0: for K
trials with their own η (a ``(K,)`` tensor on the device) the rates stay on the device, two
elementwise operations a step, no host sync. t counts from 0 in the schedule's ``unit``:
epochs (torch's schedulers stepped once an epoch, the default) or optimizer steps (keras's
schedules, torch's stepped every batch). Lengths left ``None`` mean the whole run in that unit.

====================== ============================================ ============================
kind                   η_t                                          follows
====================== ============================================ ============================
constant               η
step                   η γ^⌊t/step_size⌋                            torch ``StepLR``
multistep              η γ^(milestones ≤ t)                         torch ``MultiStepLR``
exponential            η γ^t                                        torch ``ExponentialLR``
cosine                 η_min + (η − η_min) ½(1 + cos(π t/T_max))    torch ``CosineAnnealingLR``
cosine, warmup_steps w linear from ``warmup_start``·η to η over w,   keras ``CosineDecay``
                       then the cosine over T_max, held at its end  (warmup_target η,
                                                                    alpha η_min/η)
cosine_warm_restarts   the cosine within periods T_0, T_0·T_mult…   torch
                                                                    ``CosineAnnealingWarmRestarts``
one_cycle              η/div → η → η/(div·final_div), ``pct_start``  torch ``OneCycleLR``
                       rising, cos or linear, two or three phases   (cycle_momentum=False)
polynomial             end + (η − end)(1 − min(t, D)/D)^power       keras ``PolynomialDecay``
inverse_time           η / (1 + rate · t/D) (staircase: ⌊t/D⌋)      keras ``InverseTimeDecay``
piecewise_constant     η·values[i], i = boundaries < t               keras
                                                                    ``PiecewiseConstantDecay``
====================== ============================================ ============================

Where optsweep departs, so that a schedule composes with a learning-rate grid: one-cycle's peak
is the trial's η (torch's ``max_lr``); piecewise ``values`` are factors of η (keras's absolute
values are η × these); OneCycleLR's momentum cycling is not applied.

References: Loshchilov & Hutter, 2017 (SGDR); Smith & Topin, 2019 (one-cycle); Goyal et al.,
2017 (linear warmup).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

from .lazy import torch

if TYPE_CHECKING:
    from torch import Tensor

ScheduleKind = Literal[
    "constant",
    "step",
    "multistep",
    "exponential",
    "cosine",
    "cosine_warm_restarts",
    "one_cycle",
    "polynomial",
    "inverse_time",
    "piecewise_constant",
]
# Each kind's fields besides ``kind`` and ``unit``.
SCHEDULE_FIELDS: dict[str, tuple[str, ...]] = {
    "constant": (),
    "step": ("step_size", "gamma"),
    "multistep": ("milestones", "gamma"),
    "exponential": ("gamma",),
    "cosine": ("T_max", "eta_min", "warmup_steps", "warmup_start"),
    "cosine_warm_restarts": ("T_0", "T_mult", "eta_min"),
    "one_cycle": (
        "total_steps",
        "pct_start",
        "div_factor",
        "final_div_factor",
        "anneal_strategy",
        "three_phase",
    ),
    "polynomial": ("decay_steps", "end_learning_rate", "power"),
    "inverse_time": ("decay_steps", "decay_rate", "staircase"),
    "piecewise_constant": ("boundaries", "values"),
}
SCHEDULE_KINDS: tuple[str, ...] = tuple(SCHEDULE_FIELDS)
UNITS = ("epoch", "step")
# The fields a schedule had before there were more kinds: always in its record and repr, so
# that trial keys and batch keys of studies written then stay the same.
_FIRST_FIELDS = ("kind", "T_max", "eta_min", "T_0", "T_mult")

__all__ = ["SCHEDULE_FIELDS", "SCHEDULE_KINDS", "UNITS", "ScheduleSpec", "learning_rate_at"]


@dataclass(frozen=True, repr=False)
class ScheduleSpec:
    """A learning-rate schedule (the module docstring's table). Lengths are in ``unit``s.

    Args:
        kind: one of ``SCHEDULE_KINDS``.
        unit: ``"epoch"`` or ``"step"`` (optimizer steps).
        T_max, eta_min, T_0, T_mult: the cosine schedules (torch's names); T_max None = run.
        step_size, gamma, milestones: step, multistep, exponential (torch's names).
        warmup_steps, warmup_start: cosine's linear warmup (keras's ``warmup_steps``; the
            rate starts at ``warmup_start``·η).
        total_steps, pct_start, div_factor, final_div_factor, anneal_strategy, three_phase:
            one-cycle (torch's names; total_steps None = run).
        decay_steps, end_learning_rate, power, decay_rate, staircase: polynomial and
            inverse-time decay (keras's names; decay_steps None = run).
        boundaries, values: piecewise constant (values are factors of η, one more than
            boundaries).
    """

    kind: ScheduleKind = "constant"
    T_max: int | None = None
    eta_min: float = 0.0
    T_0: int = 1
    T_mult: int = 1
    unit: Literal["epoch", "step"] = "epoch"
    step_size: int | None = None
    gamma: float = 0.1
    milestones: tuple[int, ...] = ()
    warmup_steps: int = 0
    warmup_start: float = 0.0
    total_steps: int | None = None
    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    anneal_strategy: Literal["cos", "linear"] = "cos"
    three_phase: bool = False
    decay_steps: int | None = None
    end_learning_rate: float = 1e-4
    power: float = 1.0
    decay_rate: float = 1.0
    staircase: bool = False
    boundaries: tuple[int, ...] = ()
    values: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem is not None:
            raise ValueError(f"schedule {problem}")

    def _problem(self) -> str | None:
        """What is wrong with the fields, or None."""
        if self.kind not in SCHEDULE_KINDS:
            return f"kind = {self.kind!r} is invalid; valid: {', '.join(SCHEDULE_KINDS)}"
        if self.unit not in UNITS:
            return f"unit = {self.unit!r} is invalid; valid: epoch or step"
        integers = {
            "T_max": (self.T_max, 1, True),
            "T_0": (self.T_0, 1, False),
            "T_mult": (self.T_mult, 1, False),
            "step_size": (self.step_size, 1, self.kind != "step"),
            "warmup_steps": (self.warmup_steps, 0, False),
            "total_steps": (self.total_steps, 2, True),
            "decay_steps": (self.decay_steps, 1, True),
        }
        for name, (value, low, none_ok) in integers.items():
            if value is None and none_ok:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                return f"{name} = {value!r} is invalid; valid: integer >= {low}"
        numbers = {
            "eta_min": (self.eta_min, 0.0, False),
            "gamma": (self.gamma, 0.0, True),
            "warmup_start": (self.warmup_start, 0.0, False),
            "div_factor": (self.div_factor, 0.0, True),
            "final_div_factor": (self.final_div_factor, 0.0, True),
            "end_learning_rate": (self.end_learning_rate, 0.0, False),
            "power": (self.power, 0.0, False),
            "decay_rate": (self.decay_rate, 0.0, False),
        }
        for name, (value, low, open_low) in numbers.items():
            bad = isinstance(value, bool) or not isinstance(value, (int, float))
            if bad or not math.isfinite(value) or value < low or (open_low and value == low):
                return f"{name} = {value!r} is invalid; valid: {'>' if open_low else '>='} {low:g}"
        if not 0 < self.pct_start < 1:
            return f"pct_start = {self.pct_start!r} is invalid; valid: 0 < pct_start < 1"
        if self.anneal_strategy not in ("cos", "linear"):
            return f"anneal_strategy = {self.anneal_strategy!r} is invalid; valid: cos or linear"
        for name in ("milestones", "boundaries"):
            steps = getattr(self, name)
            if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in steps):
                return f"{name} = {list(steps)} is invalid; valid: integers >= 0"
            if list(steps) != sorted(set(steps)):
                return f"{name} = {list(steps)} is invalid; valid: increasing integers"
        if self.kind == "multistep" and not self.milestones:
            return "multistep needs milestones, e.g. [30, 80]"
        if self.kind == "piecewise_constant":
            if not self.boundaries or len(self.values) != len(self.boundaries) + 1:
                return (
                    f"piecewise_constant needs boundaries and one value more (factors of the "
                    f"learning rate); got {len(self.boundaries)} boundaries, "
                    f"{len(self.values)} values"
                )
            if any(not math.isfinite(v) or v < 0 for v in self.values):
                return f"values = {list(self.values)} is invalid; valid: finite factors >= 0"
        return None

    def record(self) -> dict[str, Any]:
        """The fields that define the schedule: the first five always, others when not at
        their default (what trial keys hold: studies written before keep their keys)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _FIRST_FIELDS or value != f.default:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def __repr__(self) -> str:
        given = ", ".join(f"{k}={v!r}" for k, v in self.record().items())
        return f"ScheduleSpec({given})"


def _restart_position(t: int, T_0: int, T_mult: int) -> tuple[int, int]:
    """(T_cur, T_i): counts into the current SGDR period and its length."""
    if T_mult == 1:
        return t % T_0, T_0
    start, length = 0, T_0
    while t >= start + length:
        start += length
        length *= T_mult
    return t - start, length


def _half_cosine(fraction: float) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * fraction))


def _one_cycle(spec: ScheduleSpec, t: int, total: int) -> float:
    """OneCycleLR's rate at step t as a factor of the peak (torch's phases, ends included)."""
    total = spec.total_steps or total
    start = 1.0 / spec.div_factor
    end = start / spec.final_div_factor
    rise = spec.pct_start * total - 1
    if spec.three_phase:
        phases = [(rise, start, 1.0), (2 * spec.pct_start * total - 2, 1.0, start)]
        phases.append((total - 1, start, end))
    else:
        phases = [(rise, start, 1.0), (total - 1, 1.0, end)]
    t = min(t, total - 1)
    begin = 0.0
    for i, (last, low, high) in enumerate(phases):
        if t <= last or i == len(phases) - 1:
            pct = (t - begin) / (last - begin)
            if spec.anneal_strategy == "cos":
                return high + (low - high) / 2.0 * (math.cos(math.pi * pct) + 1)
            return (high - low) * pct + low
        begin = last
    raise AssertionError("unreachable")


def factor_and_floor(spec: ScheduleSpec, t: int, total: int) -> tuple[float, float]:
    """(f, floor) with η_t = floor + (η − floor)·f at count ``t`` of ``total`` in the unit."""
    kind = spec.kind
    if kind == "constant":
        return 1.0, 0.0
    if kind == "step":
        return spec.gamma ** (t // spec.step_size), 0.0  # type: ignore[operator]
    if kind == "multistep":
        return spec.gamma ** bisect.bisect_right(spec.milestones, t), 0.0
    if kind == "exponential":
        return spec.gamma**t, 0.0
    if kind == "cosine" and spec.warmup_steps:
        w, length = spec.warmup_steps, spec.T_max or max(total - spec.warmup_steps, 1)
        if t < w:
            return spec.warmup_start + (1 - spec.warmup_start) * t / w, 0.0
        return _half_cosine(min(t - w, length) / length), spec.eta_min
    if kind == "cosine":
        return _half_cosine(t / (spec.T_max or max(total, 1))), spec.eta_min
    if kind == "cosine_warm_restarts":
        t_cur, t_i = _restart_position(t, spec.T_0, spec.T_mult)
        return _half_cosine(t_cur / t_i), spec.eta_min
    if kind == "one_cycle":
        return _one_cycle(spec, t, total), 0.0
    decay_steps = spec.decay_steps or max(total, 1)
    if kind == "polynomial":
        return (1 - min(t, decay_steps) / decay_steps) ** spec.power, spec.end_learning_rate
    if kind == "inverse_time":
        p = t // decay_steps if spec.staircase else t / decay_steps
        return 1.0 / (1.0 + spec.decay_rate * p), 0.0
    # piecewise_constant: values[0] up to and including boundaries[0], and so on
    return spec.values[bisect.bisect_left(spec.boundaries, t)], 0.0


def learning_rate_at(spec: ScheduleSpec, base_lr: Tensor, t: int, total: int) -> Tensor:
    """The rate at count ``t`` (from 0: epoch or step, as ``spec.unit``) of ``total``.

    Args:
        spec: the schedule.
        base_lr: η, any shape (``(K,)`` for K trials), on any device: the result is computed
            there, without reading it back.
        t: the epoch or step about to be trained.
        total: the run's epochs or steps (the default length).
    """
    factor, floor = factor_and_floor(spec, t, total)
    if floor == 0.0:
        return base_lr if factor == 1.0 else base_lr * factor
    eta_min = torch.as_tensor(floor, dtype=base_lr.dtype, device=base_lr.device)
    return eta_min + (base_lr - eta_min) * factor
