"""Parity of every optimizer with an independent implementation, 100 steps in float64.

Oracles: ``torch.optim`` for torch semantics (rtol 1e-9), Keras 3 on its torch backend
for keras semantics, and a plain float64 transcription of the formula for what no
library ships (nadamax, and nadam without its momentum schedule). Where only one library
defines an optimizer, the other convention's oracle is its reference in that world:
lucidrains/lion-pytorch (``lion_pytorch.Lion``, a test dependency) for torch's Lion,
konstmish/prodigy (``prodigyopt.Prodigy``, a test dependency) for Prodigy and a float64
transcription of apple/ml-ademamix's step (``ReferenceAdEMAMix``) for AdEMAMix (both
semantics: keras's with keras's clipping by hand, each reference's own decoupled decay),
jettify/pytorch-optimizer (``torch_optimizer.Lamb``, a test dependency) for torch's LAMB, a
float64 transcription of TF Addons' ``RectifiedAdam`` (tf.keras; TensorFlow is not a
dependency) for keras's RAdam, and for keras's Rprop and ASGD (no tf.keras library ships
them) torch.optim's class with keras's clipping and decoupled decay done by hand; for torch's
FTRL (torch ships none) keras's ``Ftrl`` with torch's clipping and coupled L2 done by hand.
SOAP's oracle is a transcription of nikhilvyas/SOAP (``ReferenceSOAP`` in
``test_optim_soap``) in both semantics; Schedule-Free's are facebookresearch/schedule_free's
classes (``schedulefree`` 1.4.1, a test dependency) for torch's AdamW and SGD and keras's SGD
(keras's knobs by hand), keras's ``ScheduleFreeAdamW`` for keras's AdamW; their evaluation
point x is held to the same oracles in ``test_optim_schedule_free``.

Every case runs in every form an optimizer has (``FORMS``): the K-batched kernel the engine
runs (two stacked trials), torch's fused kernel per trial where the family has one, the pure
interface (``build``, one trial) and the ``torch.optim`` wrapper (``create``).

The gradient is that of a fixed quadratic plus a seeded noise sequence, evaluated at
each implementation's own parameters, so the trajectories must agree step by step.

Keras keeps the learning rate in a float32 variable. Our side is fed that float32 value
(as a float64 number), and keras's decoupled weight decay factor 1 − λη, which keras
computes in float32, is fed as the λ that reproduces it; the remaining deviation is
float64 rounding (see ``KERAS_RTOL``). Measured on 100 steps, max relative deviation:
adam η=0.01 2.4e-5 fed float64 η, 6.4e-14 fed fl32(η); adamw λ=0.1 2.2e-4 with fl32(η)
alone, 7.1e-14 with the decay factor too. Keras's clipping by norm is float32 throughout
(``KERAS_CLIP_RTOL``), ~1e-5 relative after 100 steps.

Print the table of deviations: ``python tests/test_optim_parity.py``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported anywhere
try:
    import keras
except ImportError:  # pragma: no cover - keras is a test dependency
    keras = None

try:
    import lion_pytorch
except ImportError:  # pragma: no cover - lion-pytorch is a test dependency
    lion_pytorch = None
try:
    import torch_optimizer
except ImportError:  # pragma: no cover - torch-optimizer is a test dependency
    torch_optimizer = None
try:
    import prodigyopt
except ImportError:  # pragma: no cover - prodigyopt is a test dependency
    prodigyopt = None
try:
    import schedulefree
except ImportError:  # pragma: no cover - schedulefree is a test dependency
    schedulefree = None
from test_optim_soap import ReferenceSOAP, default_dtype, reference_kwargs

from optsweep.optim import (
    OPTIMIZERS,
    SEMANTICS,
    build,
    create,
    inplace,
    resolve,
    stack_hyperparameters,
)
from optsweep.optim.parameters import DYNAMIC_LOSS_SCALE_KNOBS, EMA_KNOBS
from optsweep.optim.registry import COMMON_KNOBS
from optsweep.optim.schedules import ScheduleSpec, learning_rate_at

F64 = torch.float64
STEPS = 100
SHAPES = ((3, 4), (5,), (2, 1, 3))
TORCH_RTOL = 1e-9
ATOL = 1e-12
# Keras with η (and the decay factor) fed as float32: float64 rounding only.
KERAS_RTOL = 1e-9
# Keras clips by norm in float32: on the torch backend ops.maximum / ops.minimum of a
# 0-d float64 norm and a Python float return float32, so the clip factor carries float32
# rounding (~6e-8 relative per step) that no float64 implementation can reproduce.
KERAS_CLIP_RTOL, KERAS_CLIP_ATOL = 2e-5, 1e-7
# Keras's Adafactor is float32 in places on the torch backend: ``ops.mean`` computes a float64
# tensor in float32 (``result_type(float64, "float32")`` is float32) and ``ops.power`` takes the
# Python float β₂ decay as float32; its RMS of θ and of the update, its row and column means
# carry float32 rounding. Measured, 50 steps: 1e-9 to 1e-7 absolute; the same tolerance.
# Keras's Lamb multiplies by the Python floats 1 − β₁ and 1 − β₂, made float32 the same way
# (its bias corrections use β's cast to float64): 5e-10 to 3e-8 absolute in 50 steps.
# Keras's Muon the same: Python-float a, b, c, μ − 1, rms_rate and 1 − β's in float32.
KERAS_FLOAT32_OPS = {"adafactor", "lamb", "muon"}
# keras's Ftrl's own knobs, by the names its class and optsweep share
FTRL_KNOBS = (
    "learning_rate_power",
    "initial_accumulator_value",
    "l1_regularization_strength",
    "l2_regularization_strength",
    "l2_shrinkage_regularization_strength",
    "beta",
)
# torch's Muon orthogonalises in bfloat16 with addmm, matrix by matrix: the batched kernel's
# baddbmm differs from it in the last bfloat16 bit now and then, and such a flip moves one
# element's step by 2⁻⁸ of it (measured over the cases: up to 4.3e-4 absolute in 100 steps at
# η 0.01). Its single-trial forms (pure, wrapper: addmm per matrix) are bit for bit torch's
# and keep TORCH_RTOL; the batched form is held to this.
MUON_BATCHED_ATOL = 2e-3

# keras on torch calls numpy on tensors without copy=; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


# ---------------------------------------------------------------------------------------------
# The problem: a quadratic with a seeded noise sequence
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """g_t(θ) = d ⊙ (θ − c) + ξ_t for every tensor, ξ_t a fixed seeded sequence."""

    theta0: tuple[Tensor, ...]
    centers: tuple[Tensor, ...]
    curvature: tuple[Tensor, ...]
    noise: tuple[tuple[Tensor, ...], ...]

    def grad(self, t: int, params: list[Tensor]) -> list[Tensor]:
        return [
            d * (p - c) + n
            for p, c, d, n in zip(params, self.centers, self.curvature, self.noise[t], strict=True)
        ]


def make_problem(seed: int = 0, steps: int = STEPS, scale: float = 1.0) -> Problem:
    gen = torch.Generator().manual_seed(seed)

    def randn(shape: tuple[int, ...]) -> Tensor:
        return torch.randn(shape, generator=gen, dtype=F64)

    return Problem(
        theta0=tuple(scale * randn(s) for s in SHAPES),
        centers=tuple(randn(s) for s in SHAPES),
        curvature=tuple(0.2 + 2 * torch.rand(s, generator=gen, dtype=F64) for s in SHAPES),
        noise=tuple(tuple(0.3 * randn(s) for s in SHAPES) for _ in range(steps)),
    )


PROBLEM = make_problem()


def flat(params: list[Tensor]) -> Tensor:
    return torch.cat([p.detach().reshape(-1) for p in params])


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------


# Optimizers one library defines: the other convention's oracle (see the module docstring).
# torch's Lion is lion_pytorch's, built where torch.optim's classes are (``_torch_optimizer``).
REFERENCE_ORACLES = {
    ("radam", "keras"): "tfa",
    ("rprop", "keras"): "torch-rule",
    ("asgd", "keras"): "torch-rule",
    ("ftrl", "torch"): "keras-rule",
    ("prodigy", "keras"): "torch-rule",
    ("ademamix", "keras"): "torch-rule",
    ("soap", "keras"): "torch-rule",
    ("schedule_free_sgd", "keras"): "torch-rule",
}


@dataclass(frozen=True)
class Case:
    """One optimizer × semantics × hyperparameters, and the oracle that checks it."""

    optimizer: str
    semantics: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    # "torch", "keras", "formula", "tfa", "torch-rule" or "keras-rule"; default: the
    # semantics' library
    oracle: str = ""
    schedule: ScheduleSpec | None = None  # learning rate per step ("epoch" = step here)

    @property
    def id(self) -> str:
        parts = [self.optimizer, self.semantics]
        parts += [f"{k}={_short(v)}" for k, v in self.kwargs.items()]
        if self.schedule is not None:
            parts.append(self.schedule.kind)
        return "-".join(parts)

    @property
    def oracle_name(self) -> str:
        default = REFERENCE_ORACLES.get((self.optimizer, self.semantics), self.semantics)
        return self.oracle or default


def _short(v: Any) -> str:
    if isinstance(v, tuple):
        return ",".join(_short(x) for x in v)
    return f"{v:g}" if isinstance(v, float) else str(v)


LRS = (0.01, 0.001, 0.0001, 0.00001)  # seed 002: every optimizer


def _seed_grid_cases(semantics: str) -> list[Case]:
    """Every value of seed 002's grids, each at least once, cycling through the lrs."""
    cases: list[Case] = []
    # Nesterov SGD, momentum ("rho" in the notes) 0.1 ... 0.999, clipnorm 1 on some.
    for i, mu in enumerate((0.1, 0.25, 0.5, 0.75, 0.9, 0.999)):
        kw: dict[str, Any] = {"learning_rate": LRS[i % 4] * 10, "momentum": mu}
        if i % 2:
            kw["clipnorm"] = 1.0
        cases.append(Case("nesterov", semantics, kw))
    for i, iav in enumerate((0.1, 0.05, 0.25)):
        cases.append(
            Case(
                "adagrad",
                semantics,
                {"learning_rate": LRS[i], "epsilon": 1e-7, "initial_accumulator_value": iav},
            )
        )
    for i, rho in enumerate((0.9, 0.75, 0.5, 0.25, 0.1)):
        for centered in (False, True):
            kw = {"learning_rate": LRS[i % 4], "rho": rho, "epsilon": 1e-7, "momentum": 0.0}
            kw["centered"] = centered
            cases.append(Case("rmsprop", semantics, kw))
    betas = [(b1, b2) for b1 in (0.9, 0.85, 0.8, 0.75, 0.5) for b2 in (0.999, 0.999999, 0.95, 0.9)]
    for i, (b1, b2) in enumerate(betas):
        kw = {"learning_rate": LRS[i % 4] * 10, "beta_1": b1, "beta_2": b2, "epsilon": 1e-7}
        kw["amsgrad"] = bool(i % 2)
        if i % 5 == 0:
            kw["clipnorm"] = 1.0
        cases.append(Case("adam", semantics, kw))
    return cases


def _flag_and_knob_cases(semantics: str) -> list[Case]:
    """Defaults of every optimizer, every flag, every knob."""
    sem = semantics
    cases = [Case(name, sem) for name in _LIBRARY_OPTIMIZERS]
    cases += [
        Case("momentum", sem, {"learning_rate": 0.05, "momentum": 0.9}),
        Case("momentum", sem, {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True}),
        Case("sgd", sem, {"learning_rate": 0.05, "weight_decay": 0.1}),
        Case("momentum", sem, {"learning_rate": 0.05, "weight_decay": 0.05}),
        Case("rmsprop", sem, {"momentum": 0.9, "centered": True, "weight_decay": 0.01}),
        Case("rmsprop", sem, {"momentum": 0.5, "global_clipnorm": 1.0}),
        Case("adagrad", sem, {"learning_rate": 0.1, "clipvalue": 0.5, "weight_decay": 0.01}),
        Case("adadelta", sem, {"learning_rate": 1.0, "rho": 0.9, "weight_decay": 0.01}),
        Case("adam", sem, {"learning_rate": 0.01, "weight_decay": 0.01, "global_clipnorm": 0.5}),
        Case("amsgrad", sem, {"learning_rate": 0.01, "clipvalue": 0.2}),
        Case("adamax", sem, {"learning_rate": 0.01, "weight_decay": 0.01, "clipnorm": 0.5}),
        Case("nadam", sem, {"learning_rate": 0.01, "weight_decay": 0.01}),
        Case("adamw", sem, {"learning_rate": 0.01, "amsgrad": True, "clipnorm": 1.0}),
        Case("adamw", sem, {"learning_rate": 0.01, "weight_decay": 0.1}),
        Case("adam", sem, {"learning_rate": 0.01, "gradient_accumulation_steps": 3}),
        Case("momentum", sem, {"learning_rate": 0.05, "gradient_accumulation_steps": 2}),
        Case(
            "nadam",
            sem,
            {"learning_rate": 0.01, "gradient_accumulation_steps": 4, "global_clipnorm": 0.5},
        ),
        Case(
            "rmsprop",
            sem,
            {"learning_rate": 0.01, "loss_scale_factor": 1024.0, "weight_decay": 0.01},
        ),
        Case("adam", sem, {"learning_rate": 0.01, "loss_scale_factor": 128.0}),
        Case("adam", sem, {"learning_rate": 0.05}, schedule=ScheduleSpec("cosine", T_max=STEPS)),
    ]
    cases += _radam_cases(sem) + _lion_cases(sem) + _rprop_cases(sem) + _asgd_cases(sem)
    cases += _adafactor_cases(sem) + _lamb_cases(sem) + _muon_cases(sem)
    cases += _ftrl_cases(sem) + _prodigy_cases(sem) + _ademamix_cases(sem)
    cases += _soap_cases(sem) + _schedule_free_cases(sem)
    if semantics == "torch":  # torch-only parameters
        cases += [
            Case("momentum", sem, {"learning_rate": 0.05, "momentum": 0.9, "dampening": 0.5}),
            Case("momentum", sem, {"learning_rate": 0.05, "momentum": 0.0, "dampening": 0.5}),
            Case("adagrad", sem, {"learning_rate": 0.1, "lr_decay": 0.01}),
            Case("adagrad", sem, {"initial_accumulator_value": 0.1}),
            Case("nadam", sem, {"momentum_decay": 0.01}),
            # seed 000: NAdam lr 0.002, betas (0.9, 0.999), eps 1e-8 with CosineAnnealingLR.
            Case(
                "nadam",
                sem,
                {"lr": 0.002, "betas": (0.9, 0.999), "eps": 1e-8},
                schedule=ScheduleSpec("cosine", T_max=50, eta_min=0.0),
            ),
            Case(
                "sgd",
                sem,
                {"lr": 0.1},
                schedule=ScheduleSpec("cosine_warm_restarts", T_0=10, T_mult=2, eta_min=0.001),
            ),
        ]
    return cases


def _radam_cases(sem: str) -> list[Case]:
    """torch's optim_db inputs for RAdam (``optim_inputs_func_radam``, CPU: default, lr 2e-3,
    eps 1e-6, weight_decay 0.1, with decoupled_weight_decay; its maximize case is in
    test_optim_create), then the knobs and a β₂ small enough to rectify from step 6 on."""
    cases = [
        Case("radam", sem, {"learning_rate": 2e-3}),
        Case("radam", sem, {"epsilon": 1e-6}),
        Case("radam", sem, {"learning_rate": 0.01, "weight_decay": 0.1}),
        Case("radam", sem, {"learning_rate": 0.01, "beta_1": 0.5, "beta_2": 0.9}),
        Case("radam", sem, {"learning_rate": 0.01, "beta_2": 0.99, "epsilon": 0.0}),
        Case("radam", sem, {"learning_rate": 0.01, "beta_2": 0.95, "clipnorm": 0.5}),
        Case(
            "radam",
            sem,
            {"learning_rate": 0.01, "beta_2": 0.9, "gradient_accumulation_steps": 2},
        ),
    ]
    if sem == "torch":
        cases.append(
            Case(
                "radam",
                sem,
                {"learning_rate": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True},
            )
        )
    return cases


def _lion_cases(sem: str) -> list[Case]:
    """Lion's rates are AdamW's / 3-10 (its authors); every knob once."""
    return [
        Case("lion", sem, {"learning_rate": 1e-3}),
        Case("lion", sem, {"learning_rate": 3e-3, "weight_decay": 0.3}),
        Case("lion", sem, {"learning_rate": 3e-3, "beta_1": 0.95, "beta_2": 0.98}),
        Case("lion", sem, {"learning_rate": 3e-3, "beta_1": 1.0, "beta_2": 0.5}),
        Case("lion", sem, {"learning_rate": 3e-3, "clipvalue": 0.2, "weight_decay": 0.01}),
        Case("lion", sem, {"learning_rate": 3e-3, "global_clipnorm": 0.5}),
        Case("lion", sem, {"learning_rate": 3e-3, "gradient_accumulation_steps": 3}),
    ]


def _rprop_cases(sem: str) -> list[Case]:
    """optim_db's Rprop inputs (lr 2e-4, etas (0.5, 1.5), step_sizes (2e-6, 100); maximize is
    in test_optim_create), Δ clamped at both ends, and the knobs."""
    return [
        Case("rprop", sem, {"learning_rate": 2e-4}),
        Case("rprop", sem, {"etas": (0.5, 1.5)}),
        Case("rprop", sem, {"step_sizes": (2e-6, 100.0)}),
        Case("rprop", sem, {"learning_rate": 0.1, "step_sizes": (0.01, 0.2), "etas": (0.3, 2.0)}),
        Case("rprop", sem, {"weight_decay": 0.1}),
        Case("rprop", sem, {"clipvalue": 0.2, "gradient_accumulation_steps": 2}),
        Case("rprop", sem, {"global_clipnorm": 0.5}),
    ]


def _asgd_cases(sem: str) -> list[Case]:
    """optim_db's ASGD inputs (lambd 0.1, lr 0.02, t0 100, weight_decay 0.1; maximize is in
    test_optim_create), and the knobs."""
    return [
        Case("asgd", sem, {"lambd": 0.1}),
        Case("asgd", sem, {"learning_rate": 0.02}),
        Case("asgd", sem, {"t0": 100.0}),
        Case("asgd", sem, {"t0": 10.0, "lambd": 0.5, "alpha": 0.5, "learning_rate": 0.05}),
        Case("asgd", sem, {"weight_decay": 0.1}),
        Case("asgd", sem, {"clipnorm": 0.5, "gradient_accumulation_steps": 3}),
        Case("asgd", sem, {"global_clipnorm": 0.5, "loss_scale_factor": 64.0}),
    ]


def _adafactor_cases(sem: str) -> list[Case]:
    """optim_db's Adafactor inputs (weight_decay 0.1 with lr 0.01, beta2_decay −1, d 1.5;
    maximize is in test_optim_create), ε's of both, and the knobs. SHAPES factor (3, 4) and
    (2, 1, 3) over their last two axes and keep (5,) whole."""
    return [
        Case("adafactor", sem, {"learning_rate": 0.01, "weight_decay": 0.1}),
        Case("adafactor", sem, {"beta_2_decay": -1.0}),
        Case("adafactor", sem, {"clip_threshold": 1.5, "learning_rate": 0.05}),
        Case("adafactor", sem, {"epsilon_1": 1e-3, "epsilon_2": 0.5, "learning_rate": 0.05}),
        Case("adafactor", sem, {"learning_rate": 0.1, "beta_2_decay": -0.5}),
        Case("adafactor", sem, {"learning_rate": 0.05, "clipnorm": 0.5}),
        Case("adafactor", sem, {"learning_rate": 0.05, "gradient_accumulation_steps": 2}),
    ]


def _lamb_cases(sem: str) -> list[Case]:
    """Every parameter and knob; the trust ratio makes η a step relative to ‖θ‖."""
    cases = [
        Case("lamb", sem, {"learning_rate": 0.01}),
        Case("lamb", sem, {"learning_rate": 0.01, "weight_decay": 0.1}),
        Case("lamb", sem, {"learning_rate": 0.02, "beta_1": 0.8, "beta_2": 0.95}),
        Case("lamb", sem, {"learning_rate": 0.01, "epsilon": 1e-3, "clipnorm": 0.5}),
        Case("lamb", sem, {"learning_rate": 0.01, "gradient_accumulation_steps": 2}),
    ]
    if sem == "torch":
        cases += [
            Case("lamb", sem, {"learning_rate": 0.01, "debias": True, "clamp_value": 1.0}),
            Case("lamb", sem, {"learning_rate": 0.01, "clamp_value": 0.5, "weight_decay": 0.3}),
        ]
    return cases


def _muon_cases(sem: str) -> list[Case]:
    """optim_db's Muon inputs (lr 0.01, weight_decay 0.2, momentum 0.8, ns_steps 6,
    ns_coefficients (3.4, −4.7, 2.0), adjust_lr_fn match_rms_adamw = rms_rate 0.2; its
    spectral_unclamped is not supported), the AdamW half's knobs, and the common ones. SHAPES
    hold a matrix (3, 4), a vector (5,) and a 3-axis tensor (2, 1, 3): torch flattens it to
    (2, 3) for Muon, keras steps it with AdamW."""
    return [
        Case("muon", sem, {"learning_rate": 0.01}),
        Case("muon", sem, {"learning_rate": 0.01, "weight_decay": 0.2}),
        Case("muon", sem, {"learning_rate": 0.01, "momentum": 0.8, "nesterov": False}),
        Case("muon", sem, {"learning_rate": 0.01, "ns_steps": 6}),
        Case(
            "muon",
            sem,
            {"learning_rate": 0.01, "muon_a": 3.4, "muon_b": -4.7, "muon_c": 2.0},
        ),
        Case("muon", sem, {"learning_rate": 0.01, "rms_rate": 0.2}),
        Case(
            "muon",
            sem,
            {
                "learning_rate": 0.01,
                "adam_beta_1": 0.8,
                "adam_beta_2": 0.95,
                "epsilon": 1e-6,
                "adam_weight_decay": 0.1,
                "adam_lr_ratio": 0.5,
            },
        ),
        Case("muon", sem, {"learning_rate": 0.01, "clipnorm": 0.5}),
        Case("muon", sem, {"learning_rate": 0.01, "gradient_accumulation_steps": 2}),
    ]


def _ftrl_cases(sem: str) -> list[Case]:
    """keras's ftrl_test.py settings (test_config, test_correctness_with_golden), a fixed rate
    (p = 0), sparsity (λ₁), n₀ = 0, and the knobs. FTRL recomputes θ from z: its first step
    pulls θ₀ towards 0 at a small η, so most cases take η 0.1."""
    return [
        Case(
            "ftrl",
            sem,
            {
                "learning_rate": 0.05,
                "learning_rate_power": -0.2,
                "initial_accumulator_value": 0.4,
                "l1_regularization_strength": 0.05,
                "l2_regularization_strength": 0.15,
                "l2_shrinkage_regularization_strength": 0.01,
                "beta": 0.3,
            },
        ),
        Case("ftrl", sem, {"learning_rate": 0.1}),
        Case("ftrl", sem, {"learning_rate": 0.05, "learning_rate_power": 0.0}),
        Case("ftrl", sem, {"learning_rate": 0.1, "l1_regularization_strength": 0.5}),
        Case("ftrl", sem, {"learning_rate": 0.1, "initial_accumulator_value": 0.0, "beta": 1.0}),
        Case("ftrl", sem, {"learning_rate": 0.1, "weight_decay": 0.1}),
        Case("ftrl", sem, {"learning_rate": 0.1, "clipnorm": 0.5}),
        Case("ftrl", sem, {"learning_rate": 0.1, "global_clipnorm": 0.5}),
        Case(
            "ftrl",
            sem,
            {"learning_rate": 0.1, "clipvalue": 0.2, "gradient_accumulation_steps": 2},
        ),
        Case("ftrl", sem, {"learning_rate": 0.1, "loss_scale_factor": 64.0}),
        Case(
            "ftrl",
            sem,
            {"learning_rate": 0.1},
            schedule=ScheduleSpec("cosine", T_max=STEPS, eta_min=0.01),
        ),
    ]


def _prodigy_cases(sem: str) -> list[Case]:
    """Every parameter and flag of the reference, and the knobs (η is d's multiplier: 1).
    Prodigy's d grows until its steps overshoot, and then a rounding of 1e-16 (the order of a
    dot product's sum) grows ~10× per 8 steps: gradients clipped hard (clipvalue 0.2) make
    its path sensitive enough to leave 1e-9 within 100 steps (measured 6e-6), so the clipping
    cases clip gently enough to hold it to ~1e-11 (clipvalue 0.5, global_clipnorm 1)."""
    cases = [
        Case("prodigy", sem, {"weight_decay": 0.1}),
        Case("prodigy", sem, {"use_bias_correction": True}),
        Case("prodigy", sem, {"safeguard_warmup": True, "use_bias_correction": True}),
        Case("prodigy", sem, {"beta_1": 0.0, "growth_rate": 1.02, "d0": 1e-3}),
        Case("prodigy", sem, {"beta_3": 0.9, "d_coef": 0.5, "d0": 1e-3, "learning_rate": 0.5}),
        Case("prodigy", sem, {"betas": (0.8, 0.95), "epsilon": 1e-4}),
        Case("prodigy", sem, {"clipnorm": 0.5}),
        Case("prodigy", sem, {"global_clipnorm": 1.0, "weight_decay": 0.01}),
        Case("prodigy", sem, {"clipvalue": 0.5, "gradient_accumulation_steps": 2}),
        Case("prodigy", sem, {"loss_scale_factor": 64.0}),
        Case("prodigy", sem, {}, schedule=ScheduleSpec("cosine", T_max=STEPS)),
    ]
    if sem == "torch":
        cases.append(Case("prodigy", sem, {"weight_decay": 0.1, "decoupled_weight_decay": False}))
    return cases


def _ademamix_cases(sem: str) -> list[Case]:
    """Every parameter, both warmups (ending within the 100 steps and beyond them), β₁ = 0
    (the reference's m₁ = g), and the knobs."""
    return [
        Case("ademamix", sem, {"learning_rate": 0.01}),
        Case("ademamix", sem, {"learning_rate": 0.01, "weight_decay": 0.1}),
        Case("ademamix", sem, {"learning_rate": 0.01, "alpha": 5.0, "beta_3": 0.999}),
        Case(
            "ademamix",
            sem,
            {"learning_rate": 0.01, "alpha_warmup": 50, "beta_3_warmup": 50, "alpha": 8.0},
        ),
        Case("ademamix", sem, {"learning_rate": 0.01, "beta_3_warmup": 150, "beta_3": 0.999}),
        Case("ademamix", sem, {"learning_rate": 0.01, "alpha_warmup": 30}),
        Case("ademamix", sem, {"learning_rate": 0.01, "beta_1": 0.0}),
        Case("ademamix", sem, {"learning_rate": 0.01, "betas": (0.8, 0.95), "epsilon": 1e-6}),
        Case("ademamix", sem, {"learning_rate": 0.01, "clipnorm": 0.5}),
        Case("ademamix", sem, {"learning_rate": 0.01, "global_clipnorm": 0.5}),
        Case(
            "ademamix",
            sem,
            {"learning_rate": 0.01, "clipvalue": 0.2, "gradient_accumulation_steps": 2},
        ),
        Case("ademamix", sem, {"learning_rate": 0.01, "loss_scale_factor": 64.0}),
        Case(
            "ademamix",
            sem,
            {"learning_rate": 0.01, "beta_3_warmup": 40},
            schedule=ScheduleSpec("cosine", T_max=STEPS),
        ),
    ]


def _soap_cases(sem: str) -> list[Case]:
    """Every parameter and flag of the reference, and the knobs. SHAPES give a matrix (3, 4)
    two factors, the vector (5,) one with precondition_1d, (2, 1, 3) three (or one of 6 merged);
    a frequency of 3 refreshes the eigenbases 33 times in the 100 steps. Clipping by value is
    gentle (1.0): clipped at 0.2 most first-step entries of (2, 1, 3) are ±0.2 and its 3 × 3
    factor has a repeated eigenvalue, whose eigenvectors any basis of their plane is: the
    reference's then is what rounding picks (an off-diagonal 0 there that a product of another
    order leaves at 1.7e-19 picks another; measured 0.8 apart after 100 steps; at 0.5 with
    accumulation, nearly repeated: 2.8e-9 relative; at 1.0: 1e-15)."""
    return [
        Case("soap", sem),
        Case("soap", sem, {"learning_rate": 0.01}),
        Case("soap", sem, {"learning_rate": 0.01, "betas": (0.9, 0.99), "weight_decay": 0.1}),
        Case("soap", sem, {"learning_rate": 0.01, "shampoo_beta": 0.8, "epsilon": 1e-6}),
        Case("soap", sem, {"learning_rate": 0.01, "precondition_frequency": 3}),
        Case("soap", sem, {"learning_rate": 0.01, "merge_dims": True, "precondition_frequency": 4}),
        Case(
            "soap",
            sem,
            {"learning_rate": 0.01, "precondition_1d": True, "precondition_frequency": 5},
        ),
        Case("soap", sem, {"learning_rate": 0.01, "normalize_grads": True}),
        Case("soap", sem, {"learning_rate": 0.01, "correct_bias": False}),
        Case("soap", sem, {"learning_rate": 0.01, "max_precond_dim": 3, "merge_dims": True}),
        Case("soap", sem, {"learning_rate": 0.01, "clipnorm": 0.5}),
        Case("soap", sem, {"learning_rate": 0.01, "global_clipnorm": 0.5}),
        Case(
            "soap",
            sem,
            {"learning_rate": 0.01, "clipvalue": 1.0, "gradient_accumulation_steps": 2},
        ),
        Case("soap", sem, {"learning_rate": 0.01, "loss_scale_factor": 64.0}),
        Case("soap", sem, {"learning_rate": 0.01}, schedule=ScheduleSpec("cosine", T_max=STEPS)),
    ]


def _schedule_free_cases(sem: str) -> list[Case]:
    """Every parameter of the references and the knobs; keras's ScheduleFreeAdamW has no r and
    no weight_lr_power (its averaging is theirs at 0), so those cases are torch's."""
    cases = []
    for name, beta in (("schedule_free_adamw", "beta_1"), ("schedule_free_sgd", "momentum")):
        lr = 0.01 if name == "schedule_free_adamw" else 0.05
        cases += [
            Case(name, sem),
            Case(name, sem, {"learning_rate": lr, beta: 0.8}),
            Case(name, sem, {"learning_rate": lr, "weight_decay": 0.1}),
            Case(name, sem, {"learning_rate": lr, "warmup_steps": 20}),
            Case(name, sem, {"learning_rate": lr, "clipnorm": 0.5}),
            Case(name, sem, {"learning_rate": lr, "global_clipnorm": 0.5}),
            Case(
                name,
                sem,
                {"learning_rate": lr, "clipvalue": 0.2, "gradient_accumulation_steps": 2},
            ),
            Case(name, sem, {"learning_rate": lr, "loss_scale_factor": 64.0}),
            Case(
                name,
                sem,
                {"learning_rate": lr, "warmup_steps": 10},
                schedule=ScheduleSpec("cosine", T_max=STEPS),
            ),
        ]
        if sem == "torch" or name == "schedule_free_sgd":
            cases += [
                Case(name, sem, {"learning_rate": lr, "r": 1.0, "warmup_steps": 5}),
                Case(name, sem, {"learning_rate": lr, "weight_lr_power": 0.0, "r": 0.5}),
            ]
    cases += [
        Case("schedule_free_adamw", sem, {"learning_rate": 0.01, "beta_2": 0.95, "epsilon": 1e-6}),
    ]
    return cases


def _formula_cases() -> list[Case]:
    """What no library ships: checked against the float64 transcription below."""
    cases = []
    for sem in ("torch", "keras"):
        cases += [
            Case("nadamax", sem, oracle="formula"),
            Case("nadamax", sem, {"learning_rate": 0.01, "beta_1": 0.8}, oracle="formula"),
            Case("nadamax", sem, {"momentum_schedule": False}, oracle="formula"),
            Case("nadam", sem, {"momentum_schedule": False}, oracle="formula"),
            Case(
                "nadam",
                sem,
                {"learning_rate": 0.01, "beta_2": 0.95, "momentum_schedule": False},
                oracle="formula",
            ),
            Case("nadamax", sem, {"momentum_decay": 0.1}, oracle="formula"),
        ]
    return cases


# Everything but nadamax, which no library ships (radam's keras oracle and lion's torch oracle
# are references outside the two libraries: REFERENCE_ORACLES).
_LIBRARY_OPTIMIZERS = tuple(name for name in OPTIMIZERS if name != "nadamax")

CASES: list[Case] = [
    *_seed_grid_cases("torch"),
    *_flag_and_knob_cases("torch"),
    *_seed_grid_cases("keras"),
    *_flag_and_knob_cases("keras"),
    *_formula_cases(),
]


# ---------------------------------------------------------------------------------------------
# Our side
# ---------------------------------------------------------------------------------------------


def _lr_sequence(case: Case, base_lr: float) -> list[float]:
    if case.schedule is None:
        return [base_lr] * STEPS
    base = torch.tensor(base_lr, dtype=F64)
    return [float(learning_rate_at(case.schedule, base, t, STEPS)) for t in range(STEPS)]


def forms_of(optimizer: str) -> tuple[str, ...]:
    """The forms an optimizer runs in: the engine's kernels, the pure interface, the wrapper."""
    fused = ("per_trial",) if OPTIMIZERS[optimizer].fused is not None else ()
    return ("batched", *fused, "pure", "wrapper")


FORMS = ("batched", "per_trial", "pure", "wrapper")
TRIALS = 2  # the kernels run two stacked copies of the case: both rows must follow the oracle


def run_ours(
    case: Case,
    problem: Problem = PROBLEM,
    *,
    form: str = "pure",
    lr_map: Callable[[float], float] = float,
    wd_map: Callable[[float, float], float] | None = None,
) -> Tensor:
    """Our trajectory, ``(STEPS, n)``; ``lr_map``/``wd_map`` model the oracle's float32."""
    values = resolve(case.optimizer, case.semantics, case.kwargs)
    scale = values["loss_scale_factor"] or 1.0
    params = [p.clone() for p in problem.theta0]
    step = _stepper(case, values, form, params)
    traj = []
    for t, lr in enumerate(_lr_sequence(case, values["learning_rate"])):
        lr = lr_map(lr)
        wd = values["weight_decay"]
        if wd_map is not None and wd is not None:
            wd = wd_map(wd, lr)
        params = step([scale * g for g in problem.grad(t, params)], lr, wd)
        traj.append(flat(params))
    return torch.stack(traj)


Step = Callable[[list[Tensor], float, float | None], list[Tensor]]


def _stepper(case: Case, values: dict[str, Any], form: str, theta0: list[Tensor]) -> Step:
    """``step(grads, lr, weight_decay) -> params`` of one trial, in ``form``."""
    name, semantics = case.optimizer, case.semantics
    if form == "wrapper":
        leaves = [p.clone().requires_grad_(True) for p in theta0]
        opt = create(leaves, name, semantics=semantics, **values)

        def step_wrapper(grads: list[Tensor], lr: float, wd: float | None) -> list[Tensor]:
            opt.param_groups[0].update(lr=lr, weight_decay=wd)
            for p, g in zip(leaves, grads, strict=True):
                p.grad = g
            with default_dtype(F64):
                opt.step()
            return [p.detach() for p in leaves]

        return step_wrapper
    hp = stack_hyperparameters(name, [values] * TRIALS)
    if form == "pure":
        rule = build(name, semantics, values)
        hp = {k: v[0] for k, v in hp.items()}
        state = [rule.init(theta0)]
        current = [list(theta0)]

        def step_pure(grads: list[Tensor], lr: float, wd: float | None) -> list[Tensor]:
            hp["learning_rate"] = torch.tensor(lr, dtype=F64)
            hp["weight_decay"] = torch.tensor(wd or 0.0, dtype=F64)
            current[0], state[0] = rule.update(grads, state[0], current[0], hp)
            return current[0]

        return step_pure
    kernel = inplace(name, semantics, values, kernels=form)  # type: ignore[arg-type]
    stacked = [torch.stack([p] * TRIALS) for p in theta0]
    kernel_state = kernel.init(stacked)

    def step_kernel(grads: list[Tensor], lr: float, wd: float | None) -> list[Tensor]:
        hp["learning_rate"] = torch.full((TRIALS,), lr, dtype=F64)
        hp["weight_decay"] = torch.full((TRIALS,), wd or 0.0, dtype=F64)
        kernel.update_([torch.stack([g] * TRIALS) for g in grads], kernel_state, stacked, hp)
        torch.testing.assert_close(stacked[0][0], stacked[0][1], rtol=0, atol=0)
        return [p[0].clone() for p in stacked]

    return step_kernel


# ---------------------------------------------------------------------------------------------
# Oracle 1: torch.optim
# ---------------------------------------------------------------------------------------------


def _torch_optimizer(name: str, params: list[Tensor], v: Mapping[str, Any]) -> Any:
    lr, wd = v["learning_rate"], v["weight_decay"]
    o = torch.optim
    if name == "sgd":
        return o.SGD(params, lr=lr, weight_decay=wd)
    if name in ("momentum", "nesterov"):
        nesterov = name == "nesterov" or v["nesterov"]
        return o.SGD(
            params,
            lr=lr,
            momentum=v["momentum"],
            dampening=v["dampening"],
            nesterov=nesterov,
            weight_decay=wd,
        )
    if name == "adagrad":
        return o.Adagrad(
            params,
            lr=lr,
            lr_decay=v["lr_decay"],
            weight_decay=wd,
            initial_accumulator_value=v["initial_accumulator_value"],
            eps=v["epsilon"],
        )
    if name == "rmsprop":
        return o.RMSprop(
            params,
            lr=lr,
            alpha=v["rho"],
            eps=v["epsilon"],
            weight_decay=wd,
            momentum=v["momentum"],
            centered=v["centered"],
        )
    if name == "adadelta":
        return o.Adadelta(params, lr=lr, rho=v["rho"], eps=v["epsilon"], weight_decay=wd)
    if name == "rprop":
        assert wd == 0.0  # no weight_decay argument: run_torch decays by hand
        return o.Rprop(
            params,
            lr=lr,
            etas=(v["eta_minus"], v["eta_plus"]),
            step_sizes=(v["step_size_min"], v["step_size_max"]),
        )
    if name == "asgd":
        return o.ASGD(
            params, lr=lr, lambd=v["lambd"], alpha=v["alpha"], t0=v["t0"], weight_decay=wd
        )
    if name == "adafactor":
        return o.Adafactor(
            params,
            lr=lr,
            beta2_decay=v["beta_2_decay"],
            eps=(v["epsilon_1"], v["epsilon_2"]),
            d=v["clip_threshold"],
            weight_decay=wd,
        )
    if name == "muon":
        return MuonWithAdamW(params, {**v, "weight_decay": wd})
    if name.startswith("schedule_free"):  # torch has none: the reference's classes
        return schedule_free_reference(name, params, {**v, "weight_decay": wd})
    betas = (v["beta_1"], v["beta_2"])
    if name in ("adam", "amsgrad"):
        amsgrad = name == "amsgrad" or v["amsgrad"]
        return o.Adam(
            params, lr=lr, betas=betas, eps=v["epsilon"], weight_decay=wd, amsgrad=amsgrad
        )
    if name == "adamw":
        return o.AdamW(
            params, lr=lr, betas=betas, eps=v["epsilon"], weight_decay=wd, amsgrad=v["amsgrad"]
        )
    if name == "adamax":
        return o.Adamax(params, lr=lr, betas=betas, eps=v["epsilon"], weight_decay=wd)
    if name == "nadam":
        return o.NAdam(
            params,
            lr=lr,
            betas=betas,
            eps=v["epsilon"],
            weight_decay=wd,
            momentum_decay=v["momentum_decay"],
        )
    if name == "radam":
        return o.RAdam(
            params,
            lr=lr,
            betas=betas,
            eps=v["epsilon"],
            weight_decay=wd,
            decoupled_weight_decay=v["decoupled_weight_decay"],
        )
    if name == "lamb":  # torch has none: the reference implementation's class
        return torch_optimizer.Lamb(
            params,
            lr=lr,
            betas=betas,
            eps=v["epsilon"],
            weight_decay=wd,
            clamp_value=v["clamp_value"],
            debias=v["debias"],
        )
    if name == "ademamix":  # torch has none: the reference's step, transcribed
        return ReferenceAdEMAMix(
            params,
            lr=lr,
            betas=(v["beta_1"], v["beta_2"], v["beta_3"]),
            alpha=v["alpha"],
            beta3_warmup=v["beta_3_warmup"],
            alpha_warmup=v["alpha_warmup"],
            eps=v["epsilon"],
            weight_decay=wd or 0.0,
        )
    if name == "prodigy":  # torch has none: the reference implementation's class
        return prodigyopt.Prodigy(
            params,
            lr=lr,
            betas=betas,
            beta3=v["beta_3"],
            eps=v["epsilon"],
            weight_decay=wd or 0.0,
            decouple=v["decoupled_weight_decay"],
            use_bias_correction=v["use_bias_correction"],
            safeguard_warmup=v["safeguard_warmup"],
            d0=v["d0"],
            d_coef=v["d_coef"],
            growth_rate=math.inf if v["growth_rate"] is None else v["growth_rate"],
        )
    if name == "lion":  # torch has none: the reference implementation's class
        return lion_pytorch.Lion(params, lr=lr, betas=betas, weight_decay=wd)
    if name == "soap":  # torch has none: the reference's class, transcribed
        return ReferenceSOAP(params, **reference_kwargs({**v, "weight_decay": wd}))
    raise KeyError(name)


def schedule_free_reference(name: str, params: list[Tensor], v: Mapping[str, Any]) -> Any:
    """schedulefree's ``AdamWScheduleFree`` or ``SGDScheduleFree`` for resolved values, put in
    train mode (the reference refuses a step before ``train()``)."""
    from test_optim_schedule_free import reference  # it skips its module without schedulefree

    opt = reference(name, params, v)
    opt.train()
    # the reference makes z from θ at its first step; keras's knobs decay θ before that step by
    # hand, where keras (ScheduleFreeAdamW) and optsweep make z from θ₀: made here, as it would
    for p in params:
        opt.state[p]["z"] = p.detach().clone()
        if name == "schedule_free_adamw":
            opt.state[p]["exp_avg_sq"] = torch.zeros_like(p)
    return opt


class ReferenceAdEMAMix(torch.optim.Optimizer):
    """apple/ml-ademamix's ``AdEMAMix.step`` (pytorch/ademamix.py, e732715), transcribed
    operation by operation with the reference's Python-float scalars (no package ships it):

        t ← t + 1;  αₜ = (1 − t/T_α)·0 + (t/T_α)·α for t < T_α, else α
        β₃ₜ = ½^(1/((1 − a) f(β₁) + a f(β₃) + 1)), a = t/T_β₃, for t < T_β₃, else β₃
        f(β) = ln ½/ln(β + 1e-8) − 1
        m₁ ← m₁β₁ + (1 − β₁)g (β₁ = 0: m₁ = g);  m₂ ← m₂β₃ₜ + (1 − β₃ₜ)g
        v ← vβ₂ + (1 − β₂)g·g;  d = √v/√(1 − β₂ᵗ) + ε
        u = (m₁/(1 − β₁ᵗ) + αₜ m₂)/d;  u ← u + λθ;  θ ← θ + (−η u)
    """

    def __init__(
        self,
        params: list[Tensor],
        lr: float,
        betas: tuple[float, float, float],
        alpha: float,
        beta3_warmup: int | None,
        alpha_warmup: int | None,
        eps: float,
        weight_decay: float,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "alpha": alpha,
            "beta3_warmup": beta3_warmup,
            "alpha_warmup": alpha_warmup,
            "eps": eps,
            "weight_decay": weight_decay,
        }
        super().__init__(params, defaults)

    @staticmethod
    def _half_life(beta: float) -> float:
        return math.log(0.5) / math.log(beta + 1e-8) - 1

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            lr, lam, eps = group["lr"], group["weight_decay"], group["eps"]
            b1, b2, b3_end = group["betas"]
            t_alpha, t_beta = group["alpha_warmup"], group["beta3_warmup"]
            for p in group["params"]:
                g = p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    for name in ("fast", "slow", "sq"):
                        state[name] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                bc1, bc2 = 1 - b1**t, 1 - b2**t
                alpha = group["alpha"]
                if t_alpha is not None and t < t_alpha:
                    a = t / float(t_alpha)
                    alpha = (1.0 - a) * 0 + a * alpha
                b3 = b3_end
                if t_beta is not None and t < t_beta:
                    a = t / float(t_beta)
                    mixed = (1.0 - a) * self._half_life(b1) + a * self._half_life(b3_end)
                    b3 = math.pow(0.5, 1 / (mixed + 1))
                fast = state["fast"].mul_(b1).add_(g, alpha=1 - b1) if b1 != 0.0 else g
                state["slow"].mul_(b3).add_(g, alpha=1 - b3)
                state["sq"].mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (state["sq"].sqrt() / math.sqrt(bc2)).add_(eps)
                update = (fast.div(bc1) + alpha * state["slow"]) / denom
                update.add_(p, alpha=lam)
                p.add_(-lr * update)


class MuonWithAdamW:
    """torch's recipe for a whole model: ``torch.optim.Muon`` on every tensor of ≥ 2 axes, as
    an (out, −1) matrix (Keller Jordan's flattening), ``torch.optim.AdamW`` on the rest."""

    def __init__(self, params: list[Tensor], v: Mapping[str, Any]) -> None:
        self.params = params
        self.views = {
            id(p): p.detach().reshape(p.shape[0], -1).clone().requires_grad_(True)
            for p in params
            if p.ndim >= 2
        }
        coefficients = (v["muon_a"], v["muon_b"], v["muon_c"])
        adjust = {None: "original", 0.2: "match_rms_adamw"}[v["rms_rate"]]
        self.muon = torch.optim.Muon(
            list(self.views.values()),
            lr=v["learning_rate"],
            weight_decay=v["weight_decay"],
            momentum=v["momentum"],
            nesterov=v["nesterov"],
            ns_coefficients=coefficients,
            eps=v["ns_epsilon"],
            ns_steps=v["ns_steps"],
            adjust_lr_fn=adjust,
        )
        self.adamw = torch.optim.AdamW(
            [p for p in params if p.ndim < 2],
            lr=v["learning_rate"] * v["adam_lr_ratio"],
            betas=(v["adam_beta_1"], v["adam_beta_2"]),
            eps=v["epsilon"],
            weight_decay=v["adam_weight_decay"],
        )
        self.param_groups = self.muon.param_groups  # for schedulers (none in the cases)

    def step(self) -> None:
        for p in self.params:
            if id(p) in self.views:
                self.views[id(p)].grad = p.grad.reshape(self.views[id(p)].shape)
        self.muon.step()
        self.adamw.step()
        with torch.no_grad():
            for p in self.params:
                if id(p) in self.views:
                    p.copy_(self.views[id(p)].reshape(p.shape))


def _torch_scheduler(case: Case, opt: Any) -> Any:
    spec = case.schedule
    if spec is None:
        return None
    sched = torch.optim.lr_scheduler
    if spec.kind == "cosine":
        return sched.CosineAnnealingLR(opt, T_max=spec.T_max, eta_min=spec.eta_min)
    return sched.CosineAnnealingWarmRestarts(
        opt, T_0=spec.T_0, T_mult=spec.T_mult, eta_min=spec.eta_min
    )


# torch.optim classes without a weight_decay argument: coupled L2 added to g by hand
NO_WEIGHT_DECAY = {"rprop"}
# references that decay in their own rule in both conventions (keras's too: not by hand)
OWN_DECAY = {"prodigy", "ademamix", "soap"}


def run_torch(case: Case, problem: Problem = PROBLEM, *, keras_knobs: bool = False) -> Tensor:
    """torch.optim, with clipping, accumulation and loss scale done as a torch user does.

    ``keras_knobs``: the case's keras semantics for an optimizer only torch defines: torch's
    class for the rule, keras's conventions around it done by hand (clipping as keras clips,
    decoupled decay θ ← θ(1 − ηλ) before the step)."""
    v = resolve(case.optimizer, case.semantics if keras_knobs else "torch", case.kwargs)
    wd = v["weight_decay"] or 0.0
    by_hand = (keras_knobs and case.optimizer not in OWN_DECAY) or case.optimizer in NO_WEIGHT_DECAY
    params = [p.clone().requires_grad_(True) for p in problem.theta0]
    with default_dtype(F64):
        opt = _torch_optimizer(case.optimizer, params, {**v, "weight_decay": 0.0} if by_hand else v)
    scheduler = _torch_scheduler(case, opt)
    n = v["gradient_accumulation_steps"] or 1
    scale = v["loss_scale_factor"] or 1.0
    acc: list[Tensor] | None = None
    traj = []
    for t in range(STEPS):
        grads = [(scale * g) / scale for g in problem.grad(t, [p.detach() for p in params])]
        acc = grads if acc is None else [a + g for a, g in zip(acc, grads, strict=True)]
        if (t + 1) % n == 0:
            for p, a in zip(params, acc, strict=True):
                p.grad = a / n
            if keras_knobs:
                _keras_clip(params, v)
            else:
                _torch_clip(params, v)
            if by_hand and wd:
                with torch.no_grad():
                    for p in params:
                        if keras_knobs:
                            p.mul_(1 - opt.param_groups[0]["lr"] * wd)
                        else:
                            p.grad = p.grad + wd * p
            with default_dtype(F64):
                opt.step()
            acc = None
        if scheduler is not None:
            scheduler.step()
        traj.append(flat(params))
    return torch.stack(traj)


def _torch_clip(params: list[Tensor], v: Mapping[str, Any]) -> None:
    if v["clipnorm"] is not None:
        for p in params:
            torch.nn.utils.clip_grad_norm_([p], v["clipnorm"])
    if v["global_clipnorm"] is not None:
        torch.nn.utils.clip_grad_norm_(params, v["global_clipnorm"])
    if v["clipvalue"] is not None:
        torch.nn.utils.clip_grad_value_(params, v["clipvalue"])


def _keras_clip(params: list[Tensor], v: Mapping[str, Any]) -> None:
    """keras's ``clip_by_norm`` g·c/max(‖g‖, c) per tensor; ``clip_by_global_norm``
    g·c·min(1/n, 1/c), n = √Σ‖g‖²; ``clipvalue`` elementwise."""
    if v["clipnorm"] is not None:
        c = v["clipnorm"]
        for p in params:
            p.grad = p.grad * (c / max(float(p.grad.norm()), c))
    if v["global_clipnorm"] is not None:
        c = v["global_clipnorm"]
        norm = math.sqrt(sum(float((p.grad * p.grad).sum()) for p in params))
        for p in params:
            p.grad = p.grad * (c * min(1 / norm, 1 / c))
    if v["clipvalue"] is not None:
        for p in params:
            p.grad = p.grad.clamp(-v["clipvalue"], v["clipvalue"])


def run_keras_rule(case: Case, problem: Problem = PROBLEM) -> Tensor:
    """Torch semantics of an optimizer only keras ships: keras's class for the rule on
    float64 variables, torch's conventions around it done by hand (accumulation, loss scale
    and clipping as ``run_torch`` does them, coupled L2 g + λθ)."""
    v = resolve(case.optimizer, "torch", case.kwargs)
    off = {"clipnorm", "global_clipnorm", "clipvalue", "loss_scale_factor"}
    off |= {"gradient_accumulation_steps", "weight_decay"}
    opt = _keras_optimizer(case.optimizer, {k: None if k in off else x for k, x in v.items()})
    variables = [keras.Variable(p.numpy(), dtype="float64") for p in problem.theta0]
    wd = v["weight_decay"] or 0.0
    n = v["gradient_accumulation_steps"] or 1
    scale = v["loss_scale_factor"] or 1.0
    lrs = _lr_sequence(case, v["learning_rate"])
    acc: list[Tensor] | None = None
    traj = []
    for t in range(STEPS):
        theta = [x.value.detach().clone() for x in variables]
        grads = [(scale * g) / scale for g in problem.grad(t, theta)]
        acc = grads if acc is None else [a + g for a, g in zip(acc, grads, strict=True)]
        if (t + 1) % n == 0:
            leaves = [p.requires_grad_(True) for p in theta]
            for p, a in zip(leaves, acc, strict=True):
                p.grad = a / n
            _torch_clip(leaves, v)
            opt.learning_rate = lrs[t]  # the rate of this step, as the scheduler sets it
            grads = [p.grad + wd * p.detach() for p in leaves]
            opt.apply_gradients(zip(grads, variables, strict=True))
            acc = None
        traj.append(flat([x.value for x in variables]))
    return torch.stack(traj)


def run_torch_rule(case: Case, problem: Problem = PROBLEM) -> Tensor:
    """Keras semantics of an optimizer only torch ships (see ``run_torch``)."""
    return run_torch(case, problem, keras_knobs=True)


# ---------------------------------------------------------------------------------------------
# Oracle 2: Keras 3 on the torch backend
# ---------------------------------------------------------------------------------------------


def _keras_optimizer(name: str, v: Mapping[str, Any]) -> Any:
    o = keras.optimizers
    common = {
        k: v[k]
        for k in (
            "clipnorm",
            "global_clipnorm",
            "clipvalue",
            "loss_scale_factor",
            "gradient_accumulation_steps",
        )
        if v[k] is not None
    }
    if name != "adamw" and v["weight_decay"] is not None:
        common["weight_decay"] = v["weight_decay"]
    lr = v["learning_rate"]
    if name == "sgd":
        return o.SGD(learning_rate=lr, **common)
    if name in ("momentum", "nesterov"):
        nesterov = name == "nesterov" or v["nesterov"]
        return o.SGD(learning_rate=lr, momentum=v["momentum"], nesterov=nesterov, **common)
    if name == "adagrad":
        return o.Adagrad(
            learning_rate=lr,
            initial_accumulator_value=v["initial_accumulator_value"],
            epsilon=v["epsilon"],
            **common,
        )
    if name == "rmsprop":
        return o.RMSprop(
            learning_rate=lr,
            rho=v["rho"],
            momentum=v["momentum"],
            epsilon=v["epsilon"],
            centered=v["centered"],
            **common,
        )
    if name == "adadelta":
        return o.Adadelta(learning_rate=lr, rho=v["rho"], epsilon=v["epsilon"], **common)
    if name == "ftrl":
        return o.Ftrl(
            learning_rate=lr,
            **{k: v[k] for k in FTRL_KNOBS},
            **common,
        )
    if name == "lion":
        return o.Lion(learning_rate=lr, beta_1=v["beta_1"], beta_2=v["beta_2"], **common)
    if name == "schedule_free_adamw":
        assert v["r"] == 0.0 and v["weight_lr_power"] == 0.0  # keras's averaging: 1/(k + 1)
        return o.ScheduleFreeAdamW(
            learning_rate=lr,
            beta_1=v["beta_1"],
            beta_2=v["beta_2"],
            epsilon=v["epsilon"],
            warmup_steps=v["warmup_steps"],
            **common,
        )
    if name == "adafactor":
        return o.Adafactor(
            learning_rate=lr,
            beta_2_decay=v["beta_2_decay"],
            epsilon_1=v["epsilon_1"],
            epsilon_2=v["epsilon_2"],
            clip_threshold=v["clip_threshold"],
            **common,
        )
    if name == "muon":
        muon_kwargs = {
            k: v[k]
            for k in (
                "adam_beta_1",
                "adam_beta_2",
                "adam_weight_decay",
                "epsilon",
                "muon_a",
                "muon_b",
                "muon_c",
                "adam_lr_ratio",
                "momentum",
                "ns_steps",
                "nesterov",
                "rms_rate",
            )
        }
        assert v["ns_epsilon"] == 1e-7  # keras's is fixed
        return o.Muon(learning_rate=lr, exclude_embeddings=False, **muon_kwargs, **common)
    moments = {"beta_1": v["beta_1"], "beta_2": v["beta_2"], "epsilon": v["epsilon"]}
    if name in ("adam", "amsgrad"):
        amsgrad = name == "amsgrad" or v["amsgrad"]
        return o.Adam(learning_rate=lr, amsgrad=amsgrad, **moments, **common)
    if name == "adamw":
        return o.AdamW(
            learning_rate=lr,
            weight_decay=v["weight_decay"],
            amsgrad=v["amsgrad"],
            **moments,
            **common,
        )
    if name == "adamax":
        return o.Adamax(learning_rate=lr, **moments, **common)
    if name == "lamb":
        assert v["debias"] and v["clamp_value"] is None  # keras's Lamb has neither knob
        return o.Lamb(learning_rate=lr, **moments, **common)
    if name == "nadam":
        assert v["momentum_decay"] == 1.0 and v["momentum_schedule"]
        return o.Nadam(learning_rate=lr, **moments, **common)
    raise KeyError(name)


def float32(x: float) -> float:
    """``x`` as keras's float32 learning-rate variable holds it."""
    return float(np.float32(x))


def keras_decay(weight_decay: float, lr: float) -> float:
    """The λ for which our θ·(1 − ηλ) equals keras's θ·fl32(1 − fl32(λ)·fl32(η))."""
    factor = np.float32(1) - np.float32(weight_decay) * np.float32(lr)
    return (1.0 - float(factor)) / lr


def run_keras(case: Case, problem: Problem = PROBLEM) -> Tensor:
    v = resolve(case.optimizer, "keras", case.kwargs)
    variables = [keras.Variable(p.numpy(), dtype="float64") for p in problem.theta0]
    opt = _keras_optimizer(case.optimizer, v)
    scale = v["loss_scale_factor"] or 1.0
    lrs = _lr_sequence(case, v["learning_rate"])
    traj = []
    for t in range(STEPS):
        if case.schedule is not None:
            opt.learning_rate = lrs[t]
        grads = [scale * g for g in problem.grad(t, [x.value.detach() for x in variables])]
        opt.apply_gradients(zip(grads, variables, strict=True))
        traj.append(flat([x.value for x in variables]))
    return torch.stack(traj)


# ---------------------------------------------------------------------------------------------
# Oracle 3: float64 transcription of the formulas (optimizers.md), scalar by scalar
# ---------------------------------------------------------------------------------------------


def run_formula(case: Case, problem: Problem = PROBLEM) -> Tensor:
    """NAdam / NAdaMax exactly as optimizers.md writes them, Python floats for scalars.

    μₜ = β₁(1 − ½·0.96^(tψ)) (no schedule: μₜ = β₁, Πμ = β₁ᵗ as in seed 000);
    m̂ = μₜ₊₁ m/(1 − Π₁..ₜ₊₁ μ) + (1 − μₜ) g/(1 − Π₁..ₜ μ).
    NAdam: θ ← θ − η m̂/(√(v/(1 − β₂ᵗ)) + ε).
    NAdaMax torch: u ← max(β₂u, |g| + ε), θ ← θ − η m̂/u; keras: u ← max(β₂u, |g|),
    θ ← θ − η m̂/(u + ε).
    """
    v = resolve(case.optimizer, case.semantics, case.kwargs)
    lr, b1, b2, eps, psi = (
        v["learning_rate"],
        v["beta_1"],
        v["beta_2"],
        v["epsilon"],
        v["momentum_decay"],
    )
    keras_form = case.semantics == "keras"
    params = [p.clone() for p in problem.theta0]
    m = [torch.zeros_like(p) for p in params]
    s = [torch.zeros_like(p) for p in params]
    product = 1.0
    traj = []
    for t in range(1, STEPS + 1):
        grads = problem.grad(t - 1, params)
        if v["momentum_schedule"]:
            mu_t = b1 * (1 - 0.5 * 0.96 ** (t * psi))
            mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
            product *= mu_t
            product_next = product * mu_next
        else:  # seed 000's plain form
            mu_t = mu_next = b1
            product, product_next = b1**t, b1 ** (t + 1)
        new = []
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            m[i] = b1 * m[i] + (1 - b1) * g
            if case.optimizer == "nadamax":
                if keras_form:
                    s[i] = torch.maximum(b2 * s[i], g.abs())
                    denom = s[i] + eps
                else:
                    s[i] = torch.maximum(b2 * s[i], g.abs() + eps)
                    denom = s[i]
            else:
                s[i] = b2 * s[i] + (1 - b2) * g * g
                denom = torch.sqrt(s[i] / (1 - b2**t)) + eps
            m_hat = mu_next * m[i] / (1 - product_next) + (1 - mu_t) * g / (1 - product)
            new.append(p - lr * m_hat / denom)
        params = new
        traj.append(flat(params))
    return torch.stack(traj)


# ---------------------------------------------------------------------------------------------
# Oracle 4: TF Addons' RectifiedAdam (tf.keras), transcribed
# ---------------------------------------------------------------------------------------------


def run_tfa(case: Case, problem: Problem = PROBLEM) -> Tensor:
    """``tfa.optimizers.RectifiedAdam._resource_apply_dense`` (tensorflow/addons 010a5b4) in
    float64, line by line, with keras's clipping (per tensor ``clipnorm``: g·c/max(‖g‖, c))
    and accumulation (the mean of N gradients, every N-th step) done as keras does:

        sma_inf = 2/(1 − β₂) − 1;  sma_t = sma_inf − 2t β₂ᵗ/(1 − β₂ᵗ)
        m ← β₁m + (1 − β₁)g;  m_corr = m/(1 − β₁ᵗ);  v ← β₂v + (1 − β₂)g²
        v_corr = √(v/(1 − β₂ᵗ))
        r = √((sma_t − 4)/(sma_inf − 4) · (sma_t − 2)/(sma_inf − 2) · sma_inf/sma_t)
        var_t = r m_corr/(v_corr + ε) where sma_t ≥ 5, else m_corr;  var_t += λ var
        var ← var − η var_t
    """
    assert case.optimizer == "radam"
    v = resolve(case.optimizer, "keras", case.kwargs)
    lr, b1, b2, eps = v["learning_rate"], v["beta_1"], v["beta_2"], v["epsilon"]
    wd = v["weight_decay"] or 0.0
    n = v["gradient_accumulation_steps"] or 1
    params = [p.clone() for p in problem.theta0]
    m = [torch.zeros_like(p) for p in params]
    s = [torch.zeros_like(p) for p in params]
    acc: list[Tensor] | None = None
    step = 0
    traj = []
    for t in range(STEPS):
        grads = problem.grad(t, params)
        acc = grads if acc is None else [a + g for a, g in zip(acc, grads, strict=True)]
        if (t + 1) % n == 0:
            grads, acc = [a / n for a in acc], None
            if v["clipnorm"] is not None:
                c = v["clipnorm"]
                grads = [g * c / max(float(g.norm()), c) for g in grads]
            step += 1
            sma_inf = 2.0 / (1.0 - b2) - 1.0
            sma_t = sma_inf - 2.0 * step * b2**step / (1.0 - b2**step)
            new = []
            for i, (p, g) in enumerate(zip(params, grads, strict=True)):
                m[i] = b1 * m[i] + (1.0 - b1) * g
                m_corr = m[i] / (1.0 - b1**step)
                s[i] = b2 * s[i] + (1.0 - b2) * g * g
                v_corr = torch.sqrt(s[i] / (1.0 - b2**step))
                if sma_t >= 5.0:
                    r = math.sqrt(
                        (sma_t - 4.0)
                        / (sma_inf - 4.0)
                        * (sma_t - 2.0)
                        / (sma_inf - 2.0)
                        * sma_inf
                        / sma_t
                    )
                    var_t = r * m_corr / (v_corr + eps)
                else:
                    var_t = m_corr
                new.append(p - lr * (var_t + wd * p))
            params = new
        traj.append(flat(params))
    return torch.stack(traj)


# ---------------------------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deviation:
    max_abs: float
    max_rel: float  # max |ours − oracle| / |oracle| over elements with |oracle| > 1e-6


def deviation(ours: Tensor, ref: Tensor) -> Deviation:
    diff = (ours - ref).abs()
    mask = ref.abs() > 1e-6
    rel = (diff[mask] / ref.abs()[mask]).max() if mask.any() else torch.tensor(0.0)
    return Deviation(float(diff.max()), float(rel))


_ORACLE_RUNS: dict[str, Tensor] = {}  # each oracle's trajectory once per case, for every form


def oracle_trajectory(case: Case) -> Tensor:
    oracles = {
        "torch": run_torch,
        "keras": run_keras,
        "formula": run_formula,
        "tfa": run_tfa,
        "torch-rule": run_torch_rule,
        "keras-rule": run_keras_rule,
    }
    run = oracles[case.oracle_name]
    key = f"{case.oracle_name}:{case.id}"
    if key not in _ORACLE_RUNS:
        _ORACLE_RUNS[key] = run(case)
    return _ORACLE_RUNS[key]


def ftrl_float32(case: Case) -> Case:
    """Keras's Ftrl takes p and λ₁ (ops.power, ops.clip) and 2λ_sh (ops.multiply) as float32
    Python floats: the case with those values, exactly as keras uses them."""
    if case.optimizer != "ftrl":
        return case
    kwargs = dict(case.kwargs)
    for name in ("learning_rate_power", "l1_regularization_strength"):
        if name in kwargs:
            kwargs[name] = float32(kwargs[name])
    shrink = kwargs.get("l2_shrinkage_regularization_strength")
    if shrink is not None:
        kwargs["l2_shrinkage_regularization_strength"] = float32(2 * shrink) / 2
    return replace(case, kwargs=kwargs)


def keras_float32_warmup(case: Case) -> bool:
    """Keras's ScheduleFreeAdamW warms up by ``ops.minimum(t/T, 1.0)``, float32 on the torch
    backend (a Python float operand, as for clipping): η carries float32 rounding while it
    warms up (measured, 100 steps: 4.9e-10 absolute, 3.7e-7 relative)."""
    return case.optimizer == "schedule_free_adamw" and bool(case.kwargs.get("warmup_steps"))


def compare(case: Case, form: str = "pure") -> tuple[Tensor, Tensor, float, float]:
    """(ours in ``form``, oracle, rtol, atol) for a case."""
    ref = oracle_trajectory(case)
    if case.oracle_name == "keras-rule":  # keras's class, torch's knobs in float64 by hand
        return run_ours(ftrl_float32(case), form=form, lr_map=float32), ref, KERAS_RTOL, ATOL
    if case.oracle_name == "keras":
        # keras.ops.clip turns the Python float clipvalue into float32 too.
        kwargs = {k: float32(v) if k == "clipvalue" else v for k, v in case.kwargs.items()}
        if case.optimizer == "adafactor":  # keras's ops.power takes it as float32
            kwargs["beta_2_decay"] = float32(case.kwargs.get("beta_2_decay", -0.8))
        mirrored = ftrl_float32(replace(case, kwargs=kwargs))
        # keras's Muon decays in the variables' dtype (its own _apply_weight_decay)
        wd_map = None if case.optimizer == "muon" else keras_decay
        ours = run_ours(mirrored, form=form, lr_map=float32, wd_map=wd_map)
        clipped = {"clipnorm", "global_clipnorm"} & set(case.kwargs)
        loose = clipped or case.optimizer in KERAS_FLOAT32_OPS or keras_float32_warmup(case)
        if loose:
            return ours, ref, KERAS_CLIP_RTOL, KERAS_CLIP_ATOL
        return ours, ref, KERAS_RTOL, ATOL
    if (case.optimizer, case.semantics, form) == ("muon", "torch", "batched"):
        return run_ours(case, form=form), ref, 0.0, MUON_BATCHED_ATOL
    return run_ours(case, form=form), ref, TORCH_RTOL, ATOL


FORM_CASES = [
    pytest.param(case, form, id=f"{case.id}-{form}")
    for case in CASES
    for form in forms_of(case.optimizer)
]


def missing_oracle(case: Case) -> str | None:
    """The test dependency a case's oracle needs and this environment lacks, if any."""
    if case.oracle_name in ("keras", "keras-rule") and keras is None:
        return "keras"
    if (case.optimizer, case.oracle_name) == ("lion", "torch") and lion_pytorch is None:
        return "lion-pytorch"
    if (case.optimizer, case.oracle_name) == ("lamb", "torch") and torch_optimizer is None:
        return "torch-optimizer"
    if case.optimizer == "prodigy" and prodigyopt is None:
        return "prodigyopt"
    if case.oracle_name in ("torch", "torch-rule") and case.optimizer.startswith("schedule_free"):
        return None if schedulefree is not None else "schedulefree"
    return None


@pytest.mark.parametrize(("case", "form"), FORM_CASES)
def test_parity(case: Case, form: str) -> None:
    missing = missing_oracle(case)
    if missing is not None:
        pytest.skip(f"{missing} is not installed")
    ours, ref, rtol, atol = compare(case, form)
    assert torch.isfinite(ref).all(), "oracle diverged: pick a gentler case"
    assert ref[-1].sub(flat(list(PROBLEM.theta0))).abs().max() > 0, "oracle did not move"
    torch.testing.assert_close(ours, ref, rtol=rtol, atol=atol)


def test_cases_cover_every_optimizer_and_flag() -> None:
    covered = {(c.optimizer, c.semantics) for c in CASES}
    assert covered == {(o, s) for o in OPTIMIZERS for s in SEMANTICS}
    ran = {(p.values[0].optimizer, p.values[1]) for p in FORM_CASES}
    assert ran == {(o, f) for o in OPTIMIZERS for f in forms_of(o)}
    assert set(FORMS) == {f for _, f in ran}
    accumulated = {c.optimizer for c in CASES if c.kwargs.get("gradient_accumulation_steps")}
    assert {o for o in accumulated if OPTIMIZERS[o].fused} and accumulated - {"adam"}
    flags = {(k, v) for c in CASES for k, v in c.kwargs.items() if isinstance(v, bool)}
    for flag in ("nesterov", "centered", "amsgrad", "momentum_schedule"):
        assert {(flag, True), (flag, False)} & flags, flag
    for semantics in SEMANTICS:
        knobs = {k for c in CASES if c.semantics == semantics for k in c.kwargs}
        # dynamic loss scaling needs gradients that overflow: test_optim_loss_scale.py; the
        # weights' average is checked with its own state: test_optim_ema.py
        elsewhere = {*DYNAMIC_LOSS_SCALE_KNOBS, *EMA_KNOBS}
        assert set(COMMON_KNOBS) - elsewhere <= knobs, semantics
    assert {c.schedule.kind for c in CASES if c.schedule} == {"cosine", "cosine_warm_restarts"}


def test_keras_lr_is_float32() -> None:
    """Why ``lr_map=float32``: keras stores η in a float32 variable."""
    if keras is None:
        pytest.skip("keras is not installed")
    opt = keras.optimizers.SGD(learning_rate=0.01)
    assert opt.learning_rate.dtype == "float32"
    assert float(opt.learning_rate.numpy()) == float32(0.01) != 0.01


def deviation_table() -> list[tuple[str, str, str, int, Deviation]]:
    """Max deviation per optimizer × semantics × oracle over all cases and forms."""
    worst: dict[tuple[str, str, str], tuple[int, Deviation]] = {}
    for param in FORM_CASES:
        case, form = param.values
        if missing_oracle(case) is not None:
            continue
        ours, ref, _, _ = compare(case, form)
        d = deviation(ours, ref)
        oracle = case.oracle_name
        if oracle == "keras" and {"clipnorm", "global_clipnorm"} & set(case.kwargs):
            oracle = "keras, clip by norm"
        key = (case.optimizer, case.semantics, oracle)
        n, old = worst.get(key, (0, Deviation(0.0, 0.0)))
        worst[key] = (
            n + 1,
            Deviation(max(old.max_abs, d.max_abs), max(old.max_rel, d.max_rel)),
        )
    return [(*k, n, d) for k, (n, d) in sorted(worst.items())]


if __name__ == "__main__":  # python tests/test_optim_parity.py
    print(
        f"{'optimizer':10} {'semantics':9} {'oracle':20} {'cases':>5} {'max abs':>9} {'max rel':>9}"
    )
    for opt_name, sem, oracle, n, d in deviation_table():
        print(f"{opt_name:10} {sem:9} {oracle:20} {n:5d} {d.max_abs:9.2e} {d.max_rel:9.2e}")
