"""What is wrong with a sweep file, said in one line each, and the checks every key shares.

A check returns the value it accepts, or `BAD` after recording one `Problem` in the `Report`
(so a value is reported once, and a section holding a `BAD` is not built). `describe` says how a
value reads in a message; `fmt` how a value is shown in tables and labels.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

KeyPath = tuple[str | int, ...]
"""Where a value sits in the tree: ``("optimizers", 0, "grid", "beta_1")``."""


OVERRIDE_FILE = "--set"
"""What `Problem.file` says for a value that came from a command-line override."""


MAX_INT = 10**9  # no count in a sweep file is larger (images, steps, trials)


MAX_EPOCHS = 100_000


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a sweep, printed as one line ``file:line: key: message``.

    Attributes:
        file: the config file as given on the command line, or ``--set`` for an override.
        line: 1-based line in ``file``; None where there is none (unreadable file, ``--set``).
        key: key path such as ``optimizers[0].grid.beta_1``; "" for the file as a whole.
        message: what is wrong and what would be valid.
    """

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        text = f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"
        return text.replace("\r", "\\r").replace("\n", "\\n")  # one line, whatever the input


class ConfigError(Exception):
    """Every problem found in a sweep file and its overrides; ``str()`` is one line each.

    Attributes:
        problems: the problems, in file order (overrides last).
    """

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class Bad:
    """Stands in for a value already reported as a problem, so it is not reported twice."""

    def __repr__(self) -> str:
        return "<bad>"


BAD = Bad()


class Report:
    """Problems found so far, and the file and line of every key path."""

    def __init__(self, file: str, search: bool = False, lines: bool = True) -> None:
        self.file = file
        self.search = search  # ranges allowed (optsweep search), not only lists
        # a mapping already read (`validate`) has no lines: its problems name the source only
        self.origins: dict[KeyPath, tuple[str, int | None]] = {(): (file, 1 if lines else None)}
        self.problems: list[Problem] = []

    def where(self, path: KeyPath) -> tuple[str, int | None]:
        """File and line of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.origins:
                return self.origins[path[:end]]
        return self.file, None

    def line(self, path: KeyPath) -> int | None:
        """Line of ``path`` (or its nearest ancestor)."""
        return self.where(path)[1]

    def place(self, path: KeyPath) -> str:
        """``line 12``, or ``--set`` for a value from an override, for messages."""
        file, line = self.where(path)
        return f"line {line}" if line is not None else file

    def add(self, path: KeyPath, message: str) -> Bad:
        """Record a problem at ``path``; returns `BAD` for the caller to return."""
        file, line = self.where(path)
        self.problems.append(Problem(file, line, format_path(path), message))
        return BAD

    def add_at(self, file: str, line: int | None, message: str) -> None:
        """Record a problem about the file as a whole."""
        self.problems.append(Problem(file, line, "", message))

    def forget(self, path: KeyPath) -> None:
        """Drop the origins of ``path`` and everything under it (before replacing it)."""
        n = len(path)
        for key in [k for k in self.origins if k[:n] == path and k]:
            del self.origins[key]


def format_path(path: KeyPath) -> str:
    """``("optimizers", 0, "grid", "beta_1")`` -> ``optimizers[0].grid.beta_1``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def describe(value: Any) -> str:
    """How a value reads in a message: ``the string '3'``, ``2.5``, ``true``, ``a list [..]``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, float):
        return _format_float(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        text = json.dumps(value, default=str)
        return f"a list {text if len(text) <= 40 else text[:37] + '...'}"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)


def _format_float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    return repr(value)


def quote_hint(value: Any) -> str:
    """`` (remove the quotes)`` when a string would read as a number."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return ""
        return " (remove the quotes)"
    return ""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``did you mean 'x'? `` for the closest choice, or "". Never a choice that differs
    only in its number: fp64 is not a typo of fp16, nor resnet18 of resnet20 (bf61 is one of
    bf16: the same digits)."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not match or _another_number(word, match[0]):
        return ""
    return f"did you mean '{match[0]}'? "


def _another_number(word: str, choice: str) -> bool:
    def split(text: str) -> tuple[str, list[str]]:
        return re.sub(r"\d", "", text), sorted(re.findall(r"\d", text))

    (letters, digits), (their_letters, their_digits) = split(word), split(choice)
    return letters == their_letters and digits != their_digits


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_int(
    report: Report,
    path: KeyPath,
    value: Any,
    minimum: int,
    *,
    allow_none: bool = False,
    maximum: int = MAX_INT,
) -> int | Bad | None:
    """An int from minimum to maximum (bools and floats rejected), or None when allowed."""
    if value is BAD or (value is None and allow_none):
        return value
    expected = f"an integer >= {minimum}" + (" or null" if allow_none else "")
    if not is_int(value):
        return report.add(path, f"expected {expected}, got {describe(value)}{quote_hint(value)}")
    if value < minimum:
        return report.add(path, f"expected {expected}, got {value}")
    if value > maximum:
        shown = f"{value:,}" if value < 10**30 else f"a {len(str(value))}-digit number"
        return report.add(path, f"expected an integer from {minimum} to {maximum:,}, got {shown}")
    return value


def check_float(report: Report, path: KeyPath, value: Any, minimum: float) -> float | Bad:
    """A finite number >= minimum, returned as float."""
    if value is BAD:
        return BAD
    expected = f"a finite number >= {minimum}"
    if not is_number(value) or not math.isfinite(value) or value < minimum:
        return report.add(path, f"expected {expected}, got {describe(value)}{quote_hint(value)}")
    return float(value)


def check_choice(
    report: Report, path: KeyPath, value: Any, choices: Sequence[str], what: str
) -> str | Bad:
    """One of ``choices`` (strings), with did-you-mean."""
    if value is BAD:
        return BAD
    if isinstance(value, str) and value in choices:
        return value
    if isinstance(value, str):
        return report.add(
            path,
            f"unknown {what} {value!r}; {did_you_mean(value, choices)}valid: {', '.join(choices)}",
        )
    return report.add(path, f"expected {what} ({', '.join(choices)}), got {describe(value)}")


def check_named(
    report: Report,
    path: KeyPath,
    value: Any,
    key: str,
    choices: Sequence[str],
    what: str,
    example: str,
) -> tuple[str, dict[str, Any]] | Bad:
    """A bare name, or a mapping whose ``key`` is one of ``choices`` (``model: mlp`` or
    ``model: {name: mlp, hidden: [64]}``); returns the name and the mapping."""
    if value is BAD:
        return BAD
    if isinstance(value, str):
        name = check_choice(report, path, value, choices, what)
        return BAD if name is BAD else (name, {key: name})
    if not isinstance(value, dict):
        return report.add(
            path,
            f"expected {'an' if what[0] in 'aeiou' else 'a'} {what} name "
            f"({', '.join(choices)}) or a mapping {example}, "
            f"got {describe(value)}",
        )
    if key not in value:
        return report.add(
            (*path, key), f"required key missing; add {key}: one of {', '.join(choices)}"
        )
    name = check_choice(report, (*path, key), value[key], choices, what)
    return BAD if name is BAD else (name, value)


def check_mapping(
    report: Report,
    path: KeyPath,
    value: Any,
    keys: Sequence[str],
    required: Mapping[str, str] | None = None,
    what: str = "a mapping",
) -> dict[str, Any] | Bad:
    """A mapping whose keys are among ``keys``; ``required`` maps key -> example value."""
    if value is BAD:
        return BAD
    if value is None:
        value = {}
    if not isinstance(value, dict):
        return report.add(path, f"expected {what}, got {describe(value)}")
    for key in value:
        if key not in keys:
            report.add(
                (*path, key),
                f"unknown key '{key}'; {did_you_mean(key, keys)}valid keys: {', '.join(keys)}",
            )
    for key, example in (required or {}).items():
        if key not in value:
            report.add((*path, key), f"required key missing; add {key}: {example}")
    return value


def has_bad(value: Any) -> bool:
    """Whether a value already reported as a problem sits anywhere in ``value``."""
    if isinstance(value, dict):
        return any(has_bad(v) for v in value.values())
    if isinstance(value, list):
        return any(has_bad(v) for v in value)
    return value is BAD
