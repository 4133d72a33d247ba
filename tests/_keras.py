"""Keras 3 on its torch backend, the oracle for keras semantics (None when not installed)."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported anywhere
try:
    import keras
except ImportError:  # pragma: no cover - keras is a test dependency
    keras = None

# keras on torch calls numpy on tensors without copy=; not ours to fix.
ARRAY_WARNING = "ignore:__array__ implementation:DeprecationWarning"

__all__ = ["ARRAY_WARNING", "keras"]
