"""torch, imported where an update first runs rather than where ``optsweep.optim`` is imported.

Each optimizer family keeps its definition (names, parameters, ranges, rule text) and its
update code in one module. The command line reads the definitions without training, and
importing torch costs ~2 s, so the update code takes torch from here: the first attribute
looked up (``torch.sqrt``) imports the real module, and every lookup after that is an
ordinary attribute of this object.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["torch"]


class _LazyModule:
    """A module imported on its first attribute lookup; attributes are kept once looked up."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(importlib.import_module(self._name), attribute)
        setattr(self, attribute, value)
        return value


if TYPE_CHECKING:
    import torch
else:
    torch = _LazyModule("torch")
