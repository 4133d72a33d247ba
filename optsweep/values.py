"""How a value is shown to people: one formatter for tables, labels, pictures and messages.

Written as a YAML file writes it, so that what a table shows can be pasted back into a sweep
file: floats in ``%g`` (``0.001``, ``1e-07``), ``true``/``false``, lists in flow style
(``[128, 64]``), and None as ``null`` (or a word the table chooses: ``off``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["fmt"]


def fmt(value: Any, none: str = "null") -> str:
    """``value`` as people read it: ``0.001``, ``true``, ``[128, 64]``, ``null`` (``none``)."""
    if value is None:
        return none
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(fmt(v, none) for v in value) + "]"
    return str(value)
