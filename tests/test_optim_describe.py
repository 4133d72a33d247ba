"""The registry views: data first, then the rendered Rich output at a fixed width."""

from __future__ import annotations

import pytest
from rich.cells import cell_len
from rich.console import Console

from optsweep.optim import OPTIMIZERS
from optsweep.optim.describe import (
    optimizer_details,
    parameter_rows,
    registry_rows,
    registry_table,
)


def render(renderable: object, width: int = 160) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_registry_rows_are_the_registry() -> None:
    rows = registry_rows()
    assert [r.name for r in rows] == list(OPTIMIZERS)
    adam = next(r for r in rows if r.name == "adam")
    assert "epsilon=1e-08 / 1e-07" in adam.parameters
    assert "Kingma" in adam.reference
    adagrad = next(r for r in rows if r.name == "adagrad")
    assert "initial_accumulator_value=0 / 0.1" in adagrad.parameters


def test_parameter_rows_show_both_defaults_and_ranges() -> None:
    rows = {r.name: r for r in parameter_rows("rmsprop")}
    assert rows["rho"].aliases == "alpha"
    assert (rows["rho"].torch_default, rows["rho"].keras_default) == ("0.99", "0.9")
    assert rows["rho"].valid == "0 <= rho < 1"
    assert rows["centered"].structural and not rows["rho"].structural
    assert rows["weight_decay"].keras_default == "null"


@pytest.mark.parametrize("width", [80, 160])
def test_registry_table_renders_every_optimizer(width: int) -> None:
    text = render(registry_table(), width)
    assert "…" not in text and max(cell_len(line) for line in text.splitlines()) <= width
    for name in OPTIMIZERS:
        assert name in text
    assert "global_clipnorm" in text


@pytest.mark.parametrize("width", [80, 160])  # a list of blocks, a table
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_details_render(name: str, width: int) -> None:
    text = render(optimizer_details(name), width)
    info = OPTIMIZERS[name]
    assert info.summary in text.replace("\n", " ") or name in text
    assert max(cell_len(line) for line in text.splitlines()) <= width
    assert "…" not in text  # nothing cut
    for param in info.params:
        assert param in text
    assert "torch" in text and "keras" in text


def test_details_of_unknown_optimizer() -> None:
    with pytest.raises(ValueError, match="did you mean 'nadam'"):
        optimizer_details("nadm")
