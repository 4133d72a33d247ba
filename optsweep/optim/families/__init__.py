"""One module per optimizer family: its definitions (``OptimizerInfo``), its state, and its
one in-place update, torch imported on first use (``optim.lazy``).

Adding an optimizer: a module here (or an ``OptimizerInfo`` and a kernel in one) and its line
below; ``tests/test_optim_families.py`` then asks for its oracle and wrapper cases.
"""

from __future__ import annotations

from ..parameters import OptimizerInfo
from . import (
    adadelta,
    adafactor,
    adagrad,
    adam,
    adamax,
    ademamix,
    asgd,
    ftrl,
    lamb,
    lion,
    muon,
    nadam,
    prodigy,
    radam,
    rmsprop,
    rprop,
    schedule_free,
    sgd,
    soap,
)

# nadam last: tests/test_config.py expects the list of names in its messages to end in nadamax
FAMILIES = (
    sgd,
    asgd,
    adagrad,
    ftrl,
    rmsprop,
    rprop,
    adadelta,
    adam,
    adamax,
    radam,
    ademamix,
    adafactor,
    lamb,
    lion,
    muon,
    soap,
    prodigy,
    schedule_free,
    nadam,
)

OPTIMIZERS: tuple[OptimizerInfo, ...] = tuple(info for f in FAMILIES for info in f.OPTIMIZERS)

__all__ = ["FAMILIES", "OPTIMIZERS"]
