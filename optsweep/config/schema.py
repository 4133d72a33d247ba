"""A key of the sweep file, declared once: its kind (type and bounds), default, help text and
whether it changes what a trial means.

A section is a frozen dataclass whose fields are declared with `setting`::

    epochs: int = setting(3, Integer(1, MAX_EPOCHS), "passes over the training set")

and everything else is read off that declaration: `check_section` validates a mapping into
the dataclass with the file's one-line messages, `meaning_keys` tells the runner and the
search which keys change a trial's result, and `optsweep.config.document` writes the JSON
Schema and the README's key table from it.

Why not pydantic (which typer already installs): importing it and building two small models
takes ~0.18 s here (``python -c 'from pydantic import BaseModel ...'``: 0.24 s against 0.06 s
for ``import yaml``), most of the 0.3 s that ``optsweep validate`` may take; and every message
would be a translation of pydantic's error types back into the ones users already read. A kind
below is a few lines that check, describe and document a value.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .problems import (
    BAD,
    MAX_INT,
    Bad,
    KeyPath,
    Report,
    check_choice,
    check_float,
    check_int,
    check_mapping,
    describe,
    is_int,
    is_number,
    quote_hint,
)

RESULT = "result"
"""The key changes every trial's result: a study refuses a changed value (``--new``)."""
TRIALS = "trials"
"""The key changes which trials there are (seeds: each trial's key holds its seed)."""
NOTHING = "nothing"
"""Where or how a trial runs, not what it computes (device, chunking, logging)."""


class Kind:
    """How a value of a key is checked, described in the README and written in JSON Schema."""

    def check(self, report: Report, path: KeyPath, value: Any) -> Any:
        """The value as the spec holds it, or `BAD` after reporting one problem."""
        raise NotImplementedError

    def valid(self) -> str:
        """The README's *valid* column."""
        raise NotImplementedError

    def json(self) -> dict[str, Any]:
        """The JSON Schema of a value."""
        raise NotImplementedError


@dataclass(frozen=True)
class Integer(Kind):
    """An int from ``minimum`` to ``maximum``; null too when ``nullable``."""

    minimum: int
    maximum: int = MAX_INT
    nullable: bool = False

    def check(self, report: Report, path: KeyPath, value: Any) -> Any:
        return check_int(
            report, path, value, self.minimum, allow_none=self.nullable, maximum=self.maximum
        )

    def valid(self) -> str:
        return f"int ≥ {self.minimum}" + (" or null" if self.nullable else "")

    def json(self) -> dict[str, Any]:
        kind: Any = ["integer", "null"] if self.nullable else "integer"
        return {"type": kind, "minimum": self.minimum, "maximum": self.maximum}


@dataclass(frozen=True)
class Number(Kind):
    """A finite number >= ``minimum``."""

    minimum: float

    def check(self, report: Report, path: KeyPath, value: Any) -> Any:
        return check_float(report, path, value, self.minimum)

    def valid(self) -> str:
        return f"number ≥ {self.minimum:g}"

    def json(self) -> dict[str, Any]:
        return {"type": "number", "minimum": self.minimum}


@dataclass(frozen=True)
class Fraction(Kind):
    """A number from 0 (included) to 1 (excluded)."""

    def check(self, report: Report, path: KeyPath, value: Any) -> Any:
        if value is BAD or (is_number(value) and 0 <= value < 1):
            return value if value is BAD else float(value)
        return report.add(
            path, f"expected a number from 0 to below 1, got {describe(value)}{quote_hint(value)}"
        )

    def valid(self) -> str:
        return "0 ≤ number < 1"

    def json(self) -> dict[str, Any]:
        return {"type": "number", "minimum": 0, "exclusiveMaximum": 1}


@dataclass(frozen=True)
class Flag(Kind):
    """true or false."""

    def check(self, report: Report, path: KeyPath, value: Any) -> Any:
        if value is BAD or isinstance(value, bool):
            return value
        return report.add(path, f"expected true or false, got {describe(value)}")

    def valid(self) -> str:
        return "true, false"

    def json(self) -> dict[str, Any]:
        return {"type": "boolean"}


@dataclass(frozen=True)
class OneOf(Kind):
    """One of some words; ``what`` names it in messages (default: the key's name)."""

    choices: tuple[str, ...]
    what: str = ""

    def check(self, report: Report, path: KeyPath, value: Any) -> Any:
        return check_choice(report, path, value, self.choices, self.what or str(path[-1]))

    def valid(self) -> str:
        return ", ".join(f"`{c}`" for c in self.choices)

    def json(self) -> dict[str, Any]:
        return {"enum": list(self.choices)}


@dataclass(frozen=True)
class Pattern(Kind):
    """A string matching ``regex`` (whole), described as ``text``."""

    regex: str
    text: str
    shown: str

    def check(self, report: Report, path: KeyPath, value: Any) -> Any:
        if value is BAD or (isinstance(value, str) and re.fullmatch(self.regex, value)):
            return value
        return report.add(path, f"expected {self.text}, got {describe(value)}")

    def valid(self) -> str:
        return self.shown

    def json(self) -> dict[str, Any]:
        return {"type": "string", "pattern": f"^(?:{self.regex})$"}


@dataclass(frozen=True)
class Numbers(Kind):
    """A list of numbers (of ints when ``integers``), held as a tuple."""

    integers: bool

    def check(self, report: Report, path: KeyPath, value: Any) -> Any:
        fits = is_int if self.integers else is_number
        if value is BAD or (isinstance(value, list) and all(fits(v) for v in value)):
            return value if value is BAD else tuple(value)
        of = "integers" if self.integers else "numbers"
        return report.add(path, f"expected a list of {of}, got {describe(value)}")

    def valid(self) -> str:
        return f"list of {'ints' if self.integers else 'numbers'}"

    def json(self) -> dict[str, Any]:
        return {"type": "array", "items": {"type": "integer" if self.integers else "number"}}


@dataclass(frozen=True)
class Folder(Kind):
    """A folder's path (relative to the working directory), or null for a default."""

    def check(self, report: Report, path: KeyPath, value: Any) -> Any:
        if value is BAD or value is None or (isinstance(value, str) and value.strip()):
            return value
        return report.add(path, f"expected a folder's path or null, got {describe(value)}")

    def valid(self) -> str:
        return "a path, or null"

    def json(self) -> dict[str, Any]:
        return {"type": ["string", "null"], "minLength": 1}


@dataclass(frozen=True)
class Seeds(Kind):
    """A non-empty list of distinct ints >= 0, held as a tuple."""

    def check(self, report: Report, path: KeyPath, value: Any) -> Any:
        if value is BAD:
            return BAD
        if not isinstance(value, list | tuple):
            example = value if is_int(value) and value >= 0 else 0
            return report.add(
                path,
                f"expected a list of distinct integers >= 0, got {describe(value)}; "
                f"write seeds: [{example}]",
            )
        if not value:
            return report.add(path, "empty list; give at least one seed, e.g. seeds: [0]")
        seeds = [check_int(report, (*path, i), seed, 0) for i, seed in enumerate(value)]
        if BAD in seeds:
            return BAD
        for i, seed in enumerate(seeds):
            if seed in seeds[:i]:
                return report.add(
                    (*path, i), f"seed {seed} is listed twice; seeds must be distinct"
                )
        return tuple(seeds)

    def valid(self) -> str:
        return "list of distinct ints ≥ 0"

    def json(self) -> dict[str, Any]:
        item = {"type": "integer", "minimum": 0, "maximum": MAX_INT}
        return {"type": "array", "items": item, "minItems": 1, "uniqueItems": True}


@dataclass(frozen=True)
class Written(Kind):
    """A key whose value has a shape of its own (model, schedule, optimizers, report.target),
    checked by its section's function; declared here for its help, README row and schema."""

    text: str
    schema: dict[str, Any] = field(default_factory=dict)

    def check(self, report: Report, path: KeyPath, value: Any) -> Any:
        raise TypeError(f"{path} is checked by its own section")

    def valid(self) -> str:
        return self.text

    def json(self) -> dict[str, Any]:
        return dict(self.schema)


@dataclass(frozen=True)
class Setting:
    """A key's declaration.

    Attributes:
        kind: how its value is checked, described and written in JSON Schema.
        help: what it does, in a few words (the README's *meaning* column).
        meaning: `RESULT`, `TRIALS` or `NOTHING`: what changing it changes.
        default_text: the README's *default* column where the value alone does not say it.
        note: said after the valid values in the README (``: the forward pass under…``).
        default: the default of a key declared on its own (a section's field holds its own).
        new: added after studies began recording what their trials mean. Its default must be
            what optsweep did before, so a stored meaning or search fingerprint that lacks it
            reads as that default (`meaning_record`).
    """

    kind: Kind
    help: str
    meaning: str = RESULT
    default_text: str = ""
    note: str = ""
    default: Any = None
    new: bool = False


_SETTING = "optsweep.setting"


def setting(
    default: Any,
    kind: Kind,
    help: str,
    *,
    meaning: str = RESULT,
    default_text: str = "",
    note: str = "",
    new: bool = False,
) -> Any:
    """A dataclass field holding ``default`` (none: `dataclasses.MISSING`) and the key's
    declaration (`Setting`)."""
    declared = Setting(kind, help, meaning, default_text, note, new=new)
    return field(default=default, metadata={_SETTING: declared})


def settings(section: type) -> dict[str, tuple[Setting, Any]]:
    """Each declared key of a section dataclass: its `Setting` and default, in field order."""
    return {
        f.name: (f.metadata[_SETTING], f.default)
        for f in dataclasses.fields(section)
        if _SETTING in f.metadata
    }


def meaning_keys(section: type, meanings: Sequence[str] = (RESULT,)) -> tuple[str, ...]:
    """The section's keys whose declared meaning is one of ``meanings``."""
    return tuple(name for name, (s, _) in settings(section).items() if s.meaning in meanings)


def meaning_record(value: Any, meanings: Sequence[str] = (RESULT,)) -> dict[str, Any]:
    """A section's keys of these ``meanings`` and their values, a `Setting.new` key only where
    it differs from its default: what a study begun before the key existed recorded."""
    record: dict[str, Any] = {}
    for name, (declared, default) in settings(type(value)).items():
        got = getattr(value, name)
        if declared.meaning in meanings and (not declared.new or got != default):
            record[name] = got
    return record


def new_defaults(section: type) -> dict[str, Any]:
    """The `Setting.new` keys of a section that change a result, at their defaults."""
    return {
        name: default
        for name, (declared, default) in settings(section).items()
        if declared.new and declared.meaning == RESULT
    }


def check_section(
    report: Report, path: KeyPath, value: Any, section: type, what: str = "a mapping"
) -> Any:
    """A mapping of the section's declared keys, each checked by its kind, as ``section``;
    `BAD` after reporting every problem found. A missing key takes its default."""
    declared = settings(section)
    mapping = check_mapping(report, path, value, tuple(declared), what=what)
    if mapping is BAD:
        return BAD
    got = {
        name: s.kind.check(report, (*path, name), mapping.get(name, default))
        for name, (s, default) in declared.items()
    }
    if any(isinstance(v, Bad) for v in got.values()):
        return BAD
    return section(**got)
