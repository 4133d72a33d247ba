"""The libraries' own golden values, ported as table cases and run through ``create``.

Keras's ``keras/src/optimizers/*_test.py`` check single steps and short trajectories against
fixed numbers; each case here is one of those tests, named after it, with the same inputs,
tolerances and float32 variables (keras's default). torch's ``optim_db`` has no golden values
(its RAdam inputs are parity cases in ``test_optim_parity`` and ``test_optim_create``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

from optsweep.optim import create
from optsweep.optim.families.muon import newton_schulz


@dataclass(frozen=True)
class Golden:
    """One keras test: ``steps`` gradients applied in order to ``start`` (a fresh optimizer
    for every step when ``fresh``), the variable after each step against ``expected``."""

    source: str
    optimizer: str
    kwargs: dict[str, Any]
    start: Sequence[Any]
    grads: Sequence[Sequence[Any]]
    expected: Sequence[Sequence[Any]]
    tol: float
    fresh: bool = False


# keras's ftrl_test.py::test_correctness_with_golden table
# fmt: off
FTRL_GOLDEN = [
    [0.0] * 10,
    [-0.0034, -0.0077, -0.0118, -0.0157, -0.0194, -0.023, -0.0263, -0.0294, -0.0325, -0.0354],
    [-0.0078, -0.0162, -0.0242, -0.0317, -0.0387, -0.0454, -0.0516, -0.0575, -0.0631, -0.0685],
    [-0.0121, -0.0246, -0.0363, -0.0472, -0.0573, -0.0668, -0.0757, -0.0842, -0.0922, -0.0999],
    [-0.0164, -0.0328, -0.0481, -0.0623, -0.0753, -0.0875, -0.099, -0.1098, -0.1201, -0.1299],
]
# fmt: on

GOLDENS = [
    Golden(
        "lion_test.py::test_single_step",
        "lion",
        {"learning_rate": 0.5},
        [1.0, 2.0, 3.0, 4.0],
        [[1.0, 6.0, 7.0, 2.0]],
        [[0.5, 1.5, 2.5, 3.5]],
        1e-4,
    ),
    # three optimizers, each decaying var1 once (the exclusions of the keras test are keras's
    # variable API, not the rule): 2 · (1 − 0.004)³
    Golden(
        "lion_test.py::test_weight_decay",
        "lion",
        {"learning_rate": 1.0, "weight_decay": 0.004},
        [2.0],
        [[0.0]] * 3,
        [[1.992], [1.984032], [1.9760959]],
        1e-6,
        fresh=True,
    ),
    Golden(
        "lion_test.py::test_correctness_with_golden",
        "lion",
        {},
        [1.0] * 10,
        [[0.01] * 10] + [np.arange(0.1, 1.1, 0.1).tolist()] * 4,
        [[0.999] * 10, [0.998] * 10, [0.997] * 10, [0.996] * 10, [0.995] * 10],
        5e-4,
    ),
    Golden(
        "lamb_test.py::test_single_step",
        "lamb",
        {"learning_rate": 0.5},
        [1.0, 2.0, 3.0, 4.0],
        [[1.0, 6.0, 7.0, 2.0]],
        [[-0.3693, 0.6306, 1.6306, 2.6306]],
        1e-4,
    ),
    Golden(
        "lamb_test.py::test_weight_decay",
        "lamb",
        {"learning_rate": 1.0, "weight_decay": 0.004},
        [2.0],
        [[0.0]] * 3,
        [[1.992], [1.984032], [1.9760959]],
        1e-6,
        fresh=True,
    ),
    Golden(
        "lamb_test.py::test_correctness_with_golden",
        "lamb",
        {},
        [1.0] * 10,
        [[0.01] * 10] + [np.arange(0.1, 1.1, 0.1).tolist()] * 4,
        [[0.999] * 10, [0.9982] * 10, [0.9974] * 10, [0.9965] * 10, [0.9955] * 10],
        5e-4,
    ),
    # update_step called alone in keras's test: no decay there, none here
    Golden(
        "muon_test.py::test_adamw_single_step",
        "muon",
        {"learning_rate": 0.5, "adam_weight_decay": 0.0},
        [1.0, 2.0, 3.0, 4.0],
        [[1.0, 6.0, 7.0, 2.0]],
        [[0.5, 1.5, 2.5, 3.5]],
        1e-4,
    ),
    Golden(
        "muon_test.py::test_muon_single_step",
        "muon",
        {"learning_rate": 0.5, "weight_decay": 0.0},
        [[1.0, 2.0], [3.0, 4.0]],
        [[[1.0, 6.0], [7.0, 2.0]]],
        [[[0.988775, 1.887053], [2.873428, 3.97035]]],
        1e-2,
    ),
    # _apply_weight_decay alone in keras's tests: here a step with a zero gradient, whose
    # Muon and AdamW updates are 0
    Golden(
        "muon_test.py::test_muon_weight_decay",
        "muon",
        {"learning_rate": 1.0, "weight_decay": 0.01},
        [[1.0, 2.0], [3.0, 4.0]],
        [[[0.0, 0.0], [0.0, 0.0]]],
        [[[0.99, 1.98], [2.97, 3.96]]],
        1e-4,
    ),
    Golden(
        "muon_test.py::test_adamw_weight_decay",
        "muon",
        {"learning_rate": 1.0, "adam_weight_decay": 0.01},
        [2.0],
        [[0.0]],
        [[1.98]],
        1e-4,
    ),
    Golden(
        "ftrl_test.py::test_single_step",
        "ftrl",
        {"learning_rate": 0.5},
        [1.0, 2.0, 3.0, 4.0],
        [[1.0, 6.0, 7.0, 2.0]],
        [[0.2218, 1.3954, 2.3651, 2.8814]],
        1e-4,
    ),
    # keras checks x before each of the five later steps: here after each of the five first
    Golden(
        "ftrl_test.py::test_correctness_with_golden",
        "ftrl",
        {
            "learning_rate": 0.05,
            "learning_rate_power": -0.2,
            "initial_accumulator_value": 0.4,
            "l1_regularization_strength": 0.05,
            "l2_regularization_strength": 0.15,
            "l2_shrinkage_regularization_strength": 0.01,
            "beta": 0.3,
        },
        [1.0] * 10,
        [[0.01] * 10] + [np.arange(0.1, 1.1, 0.1).tolist()] * 4,
        FTRL_GOLDEN,
        5e-4,
    ),
    # keras passes relative_step=False too, which changes nothing for a constant η
    Golden(
        "adafactor_test.py::test_correctness_with_golden",
        "adafactor",
        {
            "learning_rate": 0.5,
            "beta_2_decay": -0.65,
            "epsilon_1": 1e-15,
            "epsilon_2": 1e-4,
            "clip_threshold": 0.9,
        },
        [1.0] * 10,
        [[0.01] * 10] + [np.arange(0.1, 1.1, 0.1).tolist()] * 4,
        [
            [0.55] * 10,
            [0.3031, 0.3026, 0.3025, 0.3024, 0.3024, 0.3024, 0.3024, 0.3024, 0.3024, 0.3024],
            [0.1671, 0.1665, 0.1663, 0.1663, 0.1663, 0.1663, 0.1663, 0.1663, 0.1663, 0.1663],
            [0.0923, 0.0916, 0.0915, 0.0914, 0.0914, 0.0914, 0.0914, 0.0914, 0.0914, 0.0914],
            [0.0554, 0.0548, 0.0546, 0.0546, 0.0546, 0.0546, 0.0546, 0.0545, 0.0545, 0.0545],
        ],
        5e-4,
    ),
]


@pytest.mark.parametrize("golden", GOLDENS, ids=[g.source for g in GOLDENS])
def test_keras_goldens(golden: Golden) -> None:
    x = torch.tensor(golden.start, dtype=torch.float32, requires_grad=True)
    opt = create([x], golden.optimizer, semantics="keras", **golden.kwargs)
    for grad, expected in zip(golden.grads, golden.expected, strict=True):
        if golden.fresh:
            opt = create([x], golden.optimizer, semantics="keras", **golden.kwargs)
        x.grad = torch.tensor(grad, dtype=torch.float32)
        opt.step()
        want = torch.tensor(expected, dtype=torch.float32)
        torch.testing.assert_close(x.detach(), want, rtol=golden.tol, atol=golden.tol)


def test_keras_newton_schulz_golden() -> None:
    """keras's muon_test.py::test_Newton_Schulz: five steps of keras's iteration."""
    x = torch.tensor([[[0.2499, 0.9105], [0.2655, 0.8824]]])
    want = torch.tensor([[[-0.4422, 0.6457], [0.7285, 0.2968]]])
    out = newton_schulz(x, (3.4445, -4.7750, 2.0315), 5, 1e-7, keras=True)
    torch.testing.assert_close(out, want, rtol=1e-3, atol=1e-3)
    # torch's (bfloat16) iteration lands near the same matrix
    torch.testing.assert_close(
        newton_schulz(x, (3.4445, -4.7750, 2.0315), 5, 1e-7, keras=False).float(),
        want,
        rtol=0,
        atol=2e-2,
    )
