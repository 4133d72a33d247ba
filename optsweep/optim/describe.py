"""Rich views of the registry (``optsweep optimizers [NAME]``).

The information is computed as plain data first (:func:`registry_rows`,
:func:`parameter_rows`) and drawn second, so tests check the data without rendering.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from optsweep.values import fmt

from .registry import COMMON_KNOBS, OPTIMIZERS, SEMANTICS, optimizer_info

__all__ = [
    "ParameterRow",
    "RegistryRow",
    "optimizer_details",
    "parameter_rows",
    "registry_rows",
    "registry_table",
]


class RegistryRow(NamedTuple):
    """One optimizer in the overview."""

    name: str
    summary: str
    parameters: str  # own parameters with "torch default / keras default"
    reference: str
    differences: str


class ParameterRow(NamedTuple):
    """One parameter of one optimizer in the detail view."""

    name: str
    aliases: str
    torch_default: str
    keras_default: str
    valid: str
    structural: bool
    doc: str


def _defaults_text(torch_value: Any, keras_value: Any) -> str:
    t, k = fmt(torch_value), fmt(keras_value)
    return t if t == k else f"{t} / {k}"


def registry_rows() -> list[RegistryRow]:
    """The overview as data: each optimizer with its own parameters and defaults."""
    rows = []
    for info in OPTIMIZERS.values():
        params = ", ".join(
            f"{p.name}={_defaults_text(p.default('torch'), p.default('keras'))}"
            for p in info.own_params.values()
        )
        rows.append(RegistryRow(info.name, info.summary, params, info.reference, info.differences))
    return rows


def parameter_rows(name: str) -> list[ParameterRow]:
    """Every parameter of optimizer ``name`` (own, then the common knobs) as data."""
    info = optimizer_info(name)
    return [
        ParameterRow(
            p.name,
            ", ".join(p.aliases),
            fmt(p.default("torch")),
            fmt(p.default("keras")),
            p.valid,
            p.structural,
            p.doc,
        )
        for p in info.params.values()
    ]


# Below this width the parameters are a list, one block each: a 7-column table cuts them.
WIDE_ENOUGH = 140


class RegistryView:
    """All optimizers: parameters with defaults (torch / keras), reference, differences; below
    `WIDE_ENOUGH` columns the differences are left to ``optsweep optimizers NAME``."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        wide = options.max_width >= WIDE_ENOUGH
        table = Table(
            title="optsweep optimizers (defaults: torch / keras when they differ)",
            show_lines=True,
            expand=False,
        )
        table.add_column("optimizer", style="bold cyan", no_wrap=True)
        table.add_column("parameters (torch / keras default)")
        if wide:
            table.add_column("reference")
            table.add_column("torch vs keras")
        for row in registry_rows():
            if wide:
                table.add_row(
                    Text(row.name),
                    Text(f"{row.summary}\n{row.parameters}"),
                    Text(row.reference),
                    Text(row.differences),
                )
            else:
                table.add_row(
                    Text(row.name),
                    Text.assemble(
                        f"{row.summary}. ", (row.reference, "dim"), f"\n{row.parameters}"
                    ),
                )
        shown = "" if wide else " (the rule and torch vs keras)"
        table.caption = (
            "every optimizer also takes " + ", ".join(COMMON_KNOBS) + "; `optsweep optimizers "
            f"NAME` shows one in detail{shown}"
        )
        yield table


def registry_table() -> RegistryView:
    """All optimizers (`RegistryView`)."""
    return RegistryView()


class ParameterView:
    """An optimizer's parameters: a table where the console is `WIDE_ENOUGH`, else one block
    per parameter (its name, aliases, defaults, valid values, batched; its meaning indented
    below), so nothing is cut at 80 columns."""

    def __init__(self, name: str, rows: list[ParameterRow]) -> None:
        self.name, self.rows = name, rows

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.table() if options.max_width >= WIDE_ENOUGH else self.blocks()

    def _name(self, row: ParameterRow) -> Text:
        return Text(row.name, style="bold" if row.name not in COMMON_KNOBS else "")

    def table(self) -> Table:
        params = Table(title=f"{self.name} parameters", show_lines=False)
        for column in ("parameter", "aliases", "torch", "keras", "valid", "batched", "meaning"):
            params.add_column(column, no_wrap=column in ("torch", "keras"), overflow="fold")
        for row in self.rows:
            params.add_row(
                self._name(row),
                Text(row.aliases),
                Text(row.torch_default),
                Text(row.keras_default),
                Text(row.valid),
                Text("no (structural)" if row.structural else "yes"),
                Text(row.doc),
            )
        return params

    def blocks(self) -> Group:
        parts: list[Any] = [
            Text(f"{self.name} parameters (default torch / keras; valid; batched per trial)")
        ]
        for row in self.rows:
            aliases = f" ({row.aliases})" if row.aliases else ""
            batched = "not batched (structural)" if row.structural else "batched"
            facts = f"  {row.torch_default} / {row.keras_default}; {row.valid}; {batched}"
            parts.append(Text.assemble(self._name(row), aliases, (facts, "dim")))
            parts.append(Padding(Text(row.doc), (0, 0, 0, 4)))
        return Group(*parts)


def optimizer_details(name: str) -> Group:
    """One optimizer: summary, update rule per semantics, every parameter, differences."""
    info = optimizer_info(name)
    rules = Table.grid(padding=(0, 2))
    rules.add_column(style="bold")
    rules.add_column()
    for semantics in SEMANTICS:
        rules.add_row(semantics, Text(info.update_rule[semantics]))
    params = ParameterView(name, parameter_rows(name))
    header = Text.assemble((info.name, "bold cyan"), f" — {info.summary}. ", info.reference)
    return Group(
        header,
        Panel(rules, title="update rule", expand=False),
        params,
        Text.assemble(("torch vs keras: ", "bold"), info.differences),
    )
