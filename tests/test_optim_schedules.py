"""Learning-rate schedules against torch.optim.lr_scheduler, stepped per epoch."""

from __future__ import annotations

import pytest
import torch

from optsweep.optim.schedules import ScheduleSpec, learning_rate_at

EPOCHS = 60
BASE = 0.1


def torch_rates(spec: ScheduleSpec, epochs: int = EPOCHS) -> list[float]:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=BASE)
    sched = torch.optim.lr_scheduler
    if spec.kind == "cosine":
        t_max = spec.T_max if spec.T_max is not None else epochs
        s = sched.CosineAnnealingLR(opt, T_max=t_max, eta_min=spec.eta_min)
    elif spec.kind == "cosine_warm_restarts":
        s = sched.CosineAnnealingWarmRestarts(
            opt, T_0=spec.T_0, T_mult=spec.T_mult, eta_min=spec.eta_min
        )
    else:
        s = sched.ConstantLR(opt, factor=1.0, total_iters=0)
    rates = []
    for _ in range(epochs):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        s.step()
    return rates


SPECS = [
    pytest.param(ScheduleSpec(), id="constant"),
    pytest.param(ScheduleSpec("cosine", T_max=EPOCHS), id="cosine"),
    pytest.param(ScheduleSpec("cosine", T_max=20, eta_min=0.01), id="cosine-past-T_max"),
    pytest.param(ScheduleSpec("cosine"), id="cosine-T_max-is-epochs"),
    pytest.param(ScheduleSpec("cosine_warm_restarts", T_0=10), id="sgdr"),
    pytest.param(
        ScheduleSpec("cosine_warm_restarts", T_0=5, T_mult=2, eta_min=0.001), id="sgdr-mult"
    ),
]


@pytest.mark.parametrize("spec", SPECS)
def test_matches_torch_scheduler(spec: ScheduleSpec) -> None:
    base = torch.tensor(BASE, dtype=torch.float64)
    ours = [float(learning_rate_at(spec, base, e, EPOCHS)) for e in range(EPOCHS)]
    assert ours[0] == BASE
    torch.testing.assert_close(
        torch.tensor(ours), torch.tensor(torch_rates(spec)), rtol=1e-9, atol=1e-12
    )


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
    ],
)
def test_invalid_specs(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        ScheduleSpec(**kwargs)
