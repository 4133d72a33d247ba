"""One formatter for every value shown to people (optsweep.values.fmt)."""

from __future__ import annotations

from typing import Any

import pytest

from optsweep.values import fmt


@pytest.mark.parametrize(
    ("value", "none", "shown"),
    [
        (0.001, "null", "0.001"),
        (1e-07, "null", "1e-07"),
        (0.9999999, "null", "1"),  # %g: six significant digits, as every table
        (3, "null", "3"),
        (True, "null", "true"),
        (False, "null", "false"),
        (None, "null", "null"),
        (None, "off", "off"),
        ("cosine", "null", "cosine"),
        ([128, 64], "null", "[128, 64]"),
        ((128,), "null", "[128]"),
        ([0.9, None, True], "off", "[0.9, off, true]"),
    ],
)
def test_a_value_reads_as_a_sweep_file_writes_it(value: Any, none: str, shown: str) -> None:
    assert fmt(value, none) == shown
