"""Classic 2-D test functions for watching optimizers move (``optsweep trajectories``).

Each :class:`TestFunction` is data: the formula as a torch function of ``(x, y)`` (elementwise,
so it evaluates K trials' points, or a whole contour grid, in one call), its minima, where a
path starts, the window to draw, and learning rates that suit it. :func:`value_and_grad` uses
the closed-form gradient where one is given (the built-in functions: twice as fast as autograd
on such tiny tensors, and tested against it) and autograd otherwise, so a new function is one
formula and a few numbers.

=============  ================================================  ==============================
name           f(x, y)                                           what it shows
=============  ================================================  ==============================
quadratic      x²/20 + y²  (a long valley along x, κ = 20)       momentum overshooting the
                                                                 valley; SGD zig-zagging
rosenbrock     (1 − x)² + 100 (y − x²)²                          the curved, flat-floored valley
beale          (1.5 − x + xy)² + (2.25 − x + xy²)²               steep walls, a flat basin
               + (2.625 − x + xy³)²
saddle         x² − y²  (no minimum; the saddle point at 0)      escaping a saddle: adaptive
                                                                 methods leave it fastest
himmelblau     (x² + y − 11)² + (x + y² − 7)²                    four equal minima: which one
                                                                 each optimizer falls into
rastrigin      20 + Σ x² − 10 cos 2πx                            many local minima
=============  ================================================  ==============================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = [
    "DEFAULT_FUNCTIONS",
    "FUNCTIONS",
    "TestFunction",
    "learning_rate_family",
    "value_and_grad",
]

Point = tuple[float, float]

# Which suggested learning rate an optimizer takes: plain-gradient methods step by η·g, the
# adaptive ones by about η per coordinate, AdaGrad's steps shrink like 1/√t, and AdaDelta's η
# multiplies a unit-free step that starts at about √ε.
_FAMILY = {
    "sgd": "sgd",
    "momentum": "sgd",
    "nesterov": "sgd",
    "adagrad": "adagrad",
    "rmsprop": "rmsprop",
    "adadelta": "adadelta",
    "lion": "sign",
    "ftrl": "adagrad",  # with power -0.5 its steps shrink as AdaGrad's
    "schedule_free_adamw": "schedule_free",
    "schedule_free_sgd": "schedule_free",
}
# A sign method (Lion) steps by η in every coordinate, whatever the gradient's size: its
# authors take η 3–10 times below AdamW's (Chen et al., 2023, section 5), so a function's
# adaptive rate divided by this, unless it names a ``sign`` rate of its own.
SIGN_RATE_DIVISOR = 3.0
# Schedule-Free answers with x, the average of its iterates, which trails them: its authors
# take rates above AdamW's and SGD's (Defazio et al., 2024), so the adaptive rate times this,
# unless a function names a ``schedule_free`` rate (on the quadratic, measured: at 0.2 x ends
# 0.16-0.77 from the minimum after 400 steps, at 1.0 within 0.05 for all four).
SCHEDULE_FREE_RATE_FACTOR = 5.0


def learning_rate_family(optimizer: str) -> str:
    """``sgd``, ``adagrad``, ``rmsprop``, ``adadelta``, ``sign`` (Lion), ``schedule_free`` or
    ``adaptive`` (the Adam family)."""
    return _FAMILY.get(optimizer, "adaptive")


@dataclass(frozen=True)
class TestFunction:
    """A 2-D function to minimise, and how to show it.

    Attributes:
        name: short name (``rosenbrock``).
        formula: the formula as plain text, for titles.
        fn: ``fn(x, y) -> f`` elementwise on tensors of any (equal) shape.
        minima: the global minima; empty for the saddle.
        start: default start point.
        xlim, ylim: the window drawn.
        steps: default number of steps.
        tolerance: a path has reached a minimum once within this distance of it.
        learning_rates: suggested rate per `learning_rate_family` (``--lr auto``); see
            `suggested_learning_rate`.
        log_levels: contour levels log-spaced (functions ≥ 0 spanning decades).
        saddle_points: critical points to mark that are not minima.
        escape_loss: for a function without minima, a path has "reached" its goal once
            f ≤ this (it has left the saddle).
        grad: ``grad(x, y) -> (∂f/∂x, ∂f/∂y)`` in closed form; None: autograd.
    """

    name: str
    formula: str
    fn: Callable[[Tensor, Tensor], Tensor]
    minima: tuple[Point, ...]
    start: Point
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    steps: int
    tolerance: float
    learning_rates: Mapping[str, float] = field(default_factory=dict)
    log_levels: bool = True
    saddle_points: tuple[Point, ...] = ()
    escape_loss: float | None = None
    grad: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None

    __test__ = False  # not a pytest class, despite the name

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        return self.fn(x, y)

    def value(self, point: Point) -> float:
        """f at one point, as a float."""
        x, y = (torch.tensor(v, dtype=torch.float64) for v in point)
        return float(self.fn(x, y))

    @property
    def minimum_value(self) -> float | None:
        """f at the (global) minima; None without minima."""
        return self.value(self.minima[0]) if self.minima else None

    def suggested_learning_rate(self, optimizer: str, semantics: str = "torch") -> float:
        """A rate that makes ``optimizer`` move visibly and settle here (``--lr auto``).

        `learning_rates` is keyed by `learning_rate_family`, or ``family/semantics`` where the
        conventions' defaults differ enough to need another rate (keras AdaDelta's smaller ε
        starts it about twice slower).
        """
        family = learning_rate_family(optimizer)
        if family == "sign" and "sign" not in self.learning_rates:
            return self.learning_rates["adaptive"] / SIGN_RATE_DIVISOR
        if family == "schedule_free" and "schedule_free" not in self.learning_rates:
            return self.learning_rates["adaptive"] * SCHEDULE_FREE_RATE_FACTOR
        return self.learning_rates.get(f"{family}/{semantics}", self.learning_rates[family])

    def region(self, margin: float = 3.0) -> tuple[tuple[float, float], tuple[float, float]]:
        """The window grown ``margin`` times about its centre: leaving it ends a path."""
        (x0, x1), (y0, y1) = self.xlim, self.ylim
        cx, cy, hx, hy = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
        return (cx - margin * hx, cx + margin * hx), (cy - margin * hy, cy + margin * hy)


def value_and_grad(
    function: TestFunction, points: Tensor, *, autograd: bool = False
) -> tuple[Tensor, Tensor]:
    """f and ∇f at ``points`` of shape ``(..., 2)``: values ``(...)``, gradients ``(..., 2)``.

    The closed form `TestFunction.grad` when there is one (unless ``autograd``), else autograd.
    """
    if function.grad is not None and not autograd:
        x, y = points[..., 0], points[..., 1]
        return function.fn(x, y), torch.stack(function.grad(x, y), dim=-1)
    with torch.enable_grad():
        p = points.detach().requires_grad_(True)
        f = function.fn(p[..., 0], p[..., 1])
        (g,) = torch.autograd.grad(f.sum(), p)
    return f.detach(), g


def _quadratic(x: Tensor, y: Tensor) -> Tensor:
    return x * x / 20 + y * y


def _quadratic_grad(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    return x / 10, 2 * y


def _rosenbrock(x: Tensor, y: Tensor) -> Tensor:
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


def _rosenbrock_grad(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    valley = y - x * x
    return -2 * (1 - x) - 400 * x * valley, 200 * valley


def _beale(x: Tensor, y: Tensor) -> Tensor:
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def _beale_grad(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    y2, y3 = y * y, y**3
    a, b, c = 1.5 - x + x * y, 2.25 - x + x * y2, 2.625 - x + x * y3
    dx = 2 * (a * (y - 1) + b * (y2 - 1) + c * (y3 - 1))
    dy = 2 * x * (a + 2 * b * y + 3 * c * y2)
    return dx, dy


def _saddle(x: Tensor, y: Tensor) -> Tensor:
    return x * x - y * y


def _saddle_grad(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    return 2 * x, -2 * y


def _himmelblau(x: Tensor, y: Tensor) -> Tensor:
    return (x * x + y - 11) ** 2 + (x + y * y - 7) ** 2


def _himmelblau_grad(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    a, b = x * x + y - 11, x + y * y - 7
    return 4 * x * a + 2 * b, 2 * a + 4 * y * b


def _rastrigin(x: Tensor, y: Tensor) -> Tensor:
    two_pi = 2 * math.pi
    return 20 + x * x - 10 * torch.cos(two_pi * x) + y * y - 10 * torch.cos(two_pi * y)


def _rastrigin_grad(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    two_pi = 2 * math.pi
    return 2 * x + 10 * two_pi * torch.sin(two_pi * x), 2 * y + 10 * two_pi * torch.sin(two_pi * y)


FUNCTIONS: dict[str, TestFunction] = {
    f.name: f
    for f in (
        TestFunction(
            name="quadratic",
            formula="x²/20 + y²",
            fn=_quadratic,
            grad=_quadratic_grad,
            minima=((0.0, 0.0),),
            start=(-9.0, 1.5),
            xlim=(-10.0, 10.0),
            ylim=(-3.0, 3.0),
            steps=400,
            tolerance=0.1,
            learning_rates={
                "sgd": 0.4,
                "adaptive": 0.2,
                "rmsprop": 0.05,
                "adagrad": 1.5,
                "adadelta": 10.0,
                "adadelta/keras": 40.0,
            },
        ),
        TestFunction(
            name="rosenbrock",
            formula="(1 − x)² + 100 (y − x²)²",
            fn=_rosenbrock,
            grad=_rosenbrock_grad,
            minima=((1.0, 1.0),),
            start=(-1.2, 1.0),
            xlim=(-2.0, 2.0),
            ylim=(-1.0, 3.0),
            steps=500,
            tolerance=0.05,
            learning_rates={
                "sgd": 0.001,
                "adaptive": 0.1,
                "rmsprop": 0.02,
                "adagrad": 1.0,
                "adadelta": 10.0,
            },
        ),
        TestFunction(
            name="beale",
            formula="(1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²",
            fn=_beale,
            grad=_beale_grad,
            minima=((3.0, 0.5),),
            start=(1.0, 1.5),
            xlim=(-1.0, 4.5),
            ylim=(-1.5, 2.0),
            steps=400,
            tolerance=0.05,
            learning_rates={
                "sgd": 0.005,
                "adaptive": 0.2,
                "rmsprop": 0.02,
                "adagrad": 1.0,
                "adadelta": 10.0,
                "adadelta/keras": 30.0,
            },
        ),
        TestFunction(
            name="saddle",
            formula="x² − y²",
            fn=_saddle,
            grad=_saddle_grad,
            minima=(),
            start=(1.5, 1.0e-3),
            xlim=(-2.0, 2.0),
            ylim=(-2.0, 2.0),
            steps=100,
            tolerance=0.05,
            learning_rates={
                "sgd": 0.05,
                "adaptive": 0.05,
                "rmsprop": 0.01,
                "adagrad": 0.3,
                "adadelta": 10.0,
            },
            log_levels=False,
            saddle_points=((0.0, 0.0),),
            escape_loss=-1.0,
        ),
        TestFunction(
            name="himmelblau",
            formula="(x² + y − 11)² + (x + y² − 7)²",
            fn=_himmelblau,
            grad=_himmelblau_grad,
            minima=(
                (3.0, 2.0),
                (-2.805118, 3.131312),
                (-3.779310, -3.283186),
                (3.584428, -1.848126),
            ),
            start=(-0.5, -0.5),
            xlim=(-5.0, 5.0),
            ylim=(-5.0, 5.0),
            steps=200,
            tolerance=0.05,
            learning_rates={
                "sgd": 0.002,
                "adaptive": 0.05,
                "rmsprop": 0.02,
                "adagrad": 0.3,
                "adadelta": 3.0,
                "adadelta/keras": 10.0,
            },
        ),
        TestFunction(
            name="rastrigin",
            formula="20 + x² − 10 cos 2πx + y² − 10 cos 2πy",
            fn=_rastrigin,
            grad=_rastrigin_grad,
            minima=((0.0, 0.0),),
            start=(-3.3, 2.7),
            xlim=(-5.12, 5.12),
            ylim=(-5.12, 5.12),
            steps=200,
            tolerance=0.05,
            learning_rates={
                "sgd": 0.01,
                "adaptive": 0.2,
                "rmsprop": 0.05,
                "adagrad": 2.0,
                "adadelta": 30.0,
            },
            log_levels=False,
        ),
    )
}
"""Every test function by name."""

DEFAULT_FUNCTIONS = ("quadratic", "rosenbrock", "beale", "saddle", "himmelblau")
"""What ``optsweep trajectories`` draws without ``--functions``."""
