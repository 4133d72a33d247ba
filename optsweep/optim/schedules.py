"""Learning-rate schedules, stepped per epoch as torch's ``lr_scheduler`` classes are.

The caller computes the rate for an epoch with :func:`learning_rate_at` and passes it
as ``hp["learning_rate"]`` to a rule's ``update``; the rules themselves never see a
schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

ScheduleKind = Literal["constant", "cosine", "cosine_warm_restarts"]
SCHEDULE_KINDS: tuple[str, ...] = ("constant", "cosine", "cosine_warm_restarts")

__all__ = ["SCHEDULE_KINDS", "ScheduleSpec", "learning_rate_at"]


@dataclass(frozen=True)
class ScheduleSpec:
    """A learning-rate schedule over epochs.

    - ``constant``: η_t = η.
    - ``cosine`` (``CosineAnnealingLR``, seed 000):
      η_t = η_min + ½(η − η_min)(1 + cos(π t / T_max)).
    - ``cosine_warm_restarts`` (SGDR, ``CosineAnnealingWarmRestarts``): the same cosine
      within periods T_0, T_0·T_mult, T_0·T_mult², ... restarting at η each period.

    References: Loshchilov & Hutter, 2017 (SGDR).

    Args:
        kind: ``"constant"``, ``"cosine"`` or ``"cosine_warm_restarts"``.
        T_max: cosine half-period in epochs; ``None`` means the run's epochs.
        eta_min: the floor η_min.
        T_0: epochs of the first restart period.
        T_mult: growth factor of the restart periods.
    """

    kind: ScheduleKind = "constant"
    T_max: int | None = None
    eta_min: float = 0.0
    T_0: int = 1
    T_mult: int = 1

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULE_KINDS:
            raise ValueError(
                f"schedule kind = {self.kind!r} is invalid; valid: {', '.join(SCHEDULE_KINDS)}"
            )
        if self.T_max is not None and (not isinstance(self.T_max, int) or self.T_max < 1):
            raise ValueError(f"schedule T_max = {self.T_max!r} is invalid; valid: integer >= 1")
        if not isinstance(self.T_0, int) or self.T_0 < 1:
            raise ValueError(f"schedule T_0 = {self.T_0!r} is invalid; valid: integer >= 1")
        if not isinstance(self.T_mult, int) or self.T_mult < 1:
            raise ValueError(f"schedule T_mult = {self.T_mult!r} is invalid; valid: integer >= 1")
        if not math.isfinite(self.eta_min) or self.eta_min < 0:
            raise ValueError(f"schedule eta_min = {self.eta_min!r} is invalid; valid: >= 0")


def _restart_position(epoch: int, T_0: int, T_mult: int) -> tuple[int, int]:
    """(T_cur, T_i): epochs into the current SGDR period and its length."""
    if T_mult == 1:
        return epoch % T_0, T_0
    start, length = 0, T_0
    while epoch >= start + length:
        start += length
        length *= T_mult
    return epoch - start, length


def learning_rate_at(spec: ScheduleSpec, base_lr: Tensor, epoch: int, epochs: int) -> Tensor:
    """The learning rate for ``epoch`` (counted from 0; epoch 0 gives ``base_lr``).

    Args:
        spec: the schedule.
        base_lr: η, any shape (``(K,)`` for K trials).
        epoch: the epoch about to be trained.
        epochs: the run's epochs (the default ``T_max``).
    """
    if spec.kind == "constant":
        return base_lr
    if spec.kind == "cosine":
        t_cur, t_i = epoch, spec.T_max if spec.T_max is not None else max(epochs, 1)
    else:
        t_cur, t_i = _restart_position(epoch, spec.T_0, spec.T_mult)
    factor = 0.5 * (1.0 + math.cos(math.pi * t_cur / t_i))
    eta_min = torch.as_tensor(spec.eta_min, dtype=base_lr.dtype, device=base_lr.device)
    return eta_min + (base_lr - eta_min) * factor
