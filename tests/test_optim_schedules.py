"""Every learning-rate schedule against the library that defines it (torch.optim.lr_scheduler or
keras.optimizers.schedules), count by count."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from _keras import ARRAY_WARNING, keras

from optsweep.optim.schedules import SCHEDULE_KINDS, ScheduleSpec, learning_rate_at

pytestmark = pytest.mark.filterwarnings(ARRAY_WARNING)

EPOCHS = 60
BASE = 0.1


def torch_rates(make: Any, steps: int = EPOCHS) -> list[float]:
    """The rates a ``torch.optim.lr_scheduler`` gives, stepped ``steps`` times."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=BASE)
    scheduler = make(opt)
    rates = []
    for _ in range(steps):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return rates


def keras_rates(make: Any, steps: int = EPOCHS) -> list[float]:
    """The rates a ``keras.optimizers.schedules`` schedule gives at steps 0, 1, …"""
    schedule = make(keras.optimizers.schedules)
    return [float(schedule(t)) for t in range(steps)]


S = torch.optim.lr_scheduler
# (id, our spec, the library's schedule with the same η = BASE, which library)
LIBRARY_CASES = [
    ("constant", ScheduleSpec(), lambda o: S.ConstantLR(o, factor=1.0, total_iters=0), "torch"),
    (
        "cosine",
        ScheduleSpec("cosine", T_max=EPOCHS),
        lambda o: S.CosineAnnealingLR(o, EPOCHS),
        "torch",
    ),
    (
        "cosine-past-T_max",
        ScheduleSpec("cosine", T_max=20, eta_min=0.01),
        lambda o: S.CosineAnnealingLR(o, T_max=20, eta_min=0.01),
        "torch",
    ),
    (
        "cosine-T_max-is-run",
        ScheduleSpec("cosine"),
        lambda o: S.CosineAnnealingLR(o, EPOCHS),
        "torch",
    ),
    (
        "sgdr",
        ScheduleSpec("cosine_warm_restarts", T_0=10),
        lambda o: S.CosineAnnealingWarmRestarts(o, T_0=10),
        "torch",
    ),
    (
        "sgdr-mult",
        ScheduleSpec("cosine_warm_restarts", T_0=5, T_mult=2, eta_min=0.001),
        lambda o: S.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=0.001),
        "torch",
    ),
    ("step", ScheduleSpec("step", step_size=7, gamma=0.5), lambda o: S.StepLR(o, 7, 0.5), "torch"),
    (
        "multistep",
        ScheduleSpec("multistep", milestones=(10, 25, 40), gamma=0.3),
        lambda o: S.MultiStepLR(o, [10, 25, 40], gamma=0.3),
        "torch",
    ),
    (
        "exponential",
        ScheduleSpec("exponential", gamma=0.95),
        lambda o: S.ExponentialLR(o, 0.95),
        "torch",
    ),
    (
        "one-cycle",
        ScheduleSpec("one_cycle"),
        lambda o: S.OneCycleLR(o, max_lr=BASE, total_steps=EPOCHS, cycle_momentum=False),
        "torch",
    ),
    (
        "one-cycle-linear-three-phase",
        ScheduleSpec(
            "one_cycle", total_steps=50, pct_start=0.25, anneal_strategy="linear", three_phase=True
        ),
        lambda o: S.OneCycleLR(
            o,
            max_lr=BASE,
            total_steps=50,
            pct_start=0.25,
            anneal_strategy="linear",
            three_phase=True,
            cycle_momentum=False,
        ),
        "torch-50",
    ),
    (
        "one-cycle-factors",
        ScheduleSpec("one_cycle", div_factor=10.0, final_div_factor=100.0, pct_start=0.4),
        lambda o: S.OneCycleLR(
            o,
            max_lr=BASE,
            total_steps=EPOCHS,
            div_factor=10.0,
            final_div_factor=100.0,
            pct_start=0.4,
            cycle_momentum=False,
        ),
        "torch",
    ),
    (
        "warmup-cosine",
        ScheduleSpec("cosine", T_max=40, warmup_steps=10, eta_min=0.002),
        lambda k: k.CosineDecay(0.0, 40, alpha=0.02, warmup_target=BASE, warmup_steps=10),
        "keras",
    ),
    (
        "warmup-cosine-start",
        ScheduleSpec("cosine", warmup_steps=5, warmup_start=0.1),
        lambda k: k.CosineDecay(BASE * 0.1, EPOCHS - 5, warmup_target=BASE, warmup_steps=5),
        "keras",
    ),
    (
        "polynomial",
        ScheduleSpec("polynomial", decay_steps=40, end_learning_rate=0.001, power=2.0),
        lambda k: k.PolynomialDecay(BASE, 40, end_learning_rate=0.001, power=2.0),
        "keras",
    ),
    (
        "polynomial-defaults",
        ScheduleSpec("polynomial"),
        lambda k: k.PolynomialDecay(BASE, EPOCHS),
        "keras",
    ),
    (
        "inverse-time",
        ScheduleSpec("inverse_time", decay_steps=10, decay_rate=0.5),
        lambda k: k.InverseTimeDecay(BASE, 10, 0.5),
        "keras",
    ),
    (
        "inverse-time-staircase",
        ScheduleSpec("inverse_time", decay_steps=7, decay_rate=2.0, staircase=True),
        lambda k: k.InverseTimeDecay(BASE, 7, 2.0, staircase=True),
        "keras",
    ),
    (
        "piecewise",
        ScheduleSpec("piecewise_constant", boundaries=(10, 30), values=(1.0, 0.5, 0.1)),
        lambda k: k.PiecewiseConstantDecay([10, 30], [BASE, BASE * 0.5, BASE * 0.1]),
        "keras",
    ),
]


@pytest.mark.parametrize(
    ("spec", "make", "library"),
    [pytest.param(*case[1:], id=case[0]) for case in LIBRARY_CASES],
)
def test_matches_the_library_that_defines_it(spec: ScheduleSpec, make, library: str) -> None:
    steps = 50 if library == "torch-50" else EPOCHS
    base = torch.tensor(BASE, dtype=torch.float64)
    ours = torch.tensor([float(learning_rate_at(spec, base, t, EPOCHS)) for t in range(steps)])
    if library.startswith("torch"):
        expected, rtol, atol = torch.tensor(torch_rates(make, steps)), 1e-9, 1e-12
    else:
        if keras is None:
            pytest.skip("keras is not installed")
        # keras computes in float32: ~6e-8 of η
        expected, rtol, atol = torch.tensor(keras_rates(make, steps)), 1e-6, 1e-8
    torch.testing.assert_close(ours, expected.to(ours.dtype), rtol=rtol, atol=atol)
    assert len(set(ours.tolist())) > 1 or spec.kind == "constant"


def test_every_kind_is_matched_against_its_library() -> None:
    assert {case[1].kind for case in LIBRARY_CASES} == set(SCHEDULE_KINDS)


def test_old_schedules_keep_their_keys() -> None:
    """Trial and batch keys of studies written before the other kinds existed."""
    spec = ScheduleSpec("cosine", T_max=3)
    assert repr(spec) == "ScheduleSpec(kind='cosine', T_max=3, eta_min=0.0, T_0=1, T_mult=1)"
    assert spec.record() == {"kind": "cosine", "T_max": 3, "eta_min": 0.0, "T_0": 1, "T_mult": 1}
    assert ScheduleSpec("step", step_size=2, unit="step").record()["unit"] == "step"


def test_batched_base_rates() -> None:
    spec = ScheduleSpec("cosine", T_max=10, eta_min=0.0)
    base = torch.tensor([0.1, 0.01, 0.001], dtype=torch.float64)
    rates = learning_rate_at(spec, base, 5, 10)
    torch.testing.assert_close(rates, base * 0.5)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"kind": "linear"}, "kind = 'linear' is invalid"),
        ({"kind": "cosine", "T_max": 0}, "T_max = 0"),
        ({"kind": "cosine_warm_restarts", "T_0": 0}, "T_0 = 0"),
        ({"kind": "cosine_warm_restarts", "T_mult": 0}, "T_mult = 0"),
        ({"kind": "cosine", "eta_min": -1.0}, "eta_min = -1.0"),
        ({"kind": "step"}, "step_size = None"),
        ({"kind": "multistep"}, "needs milestones"),
        ({"kind": "multistep", "milestones": (5, 3)}, "increasing integers"),
        ({"kind": "one_cycle", "pct_start": 1.0}, "0 < pct_start < 1"),
        ({"kind": "piecewise_constant", "boundaries": (3,), "values": (1.0,)}, "one value more"),
        ({"kind": "cosine", "unit": "batch"}, "unit = 'batch'"),
        ({"kind": "exponential", "gamma": 0.0}, "gamma = 0.0 is invalid; valid: > 0"),
    ],
)
def test_invalid_specs(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        ScheduleSpec(**kwargs)
