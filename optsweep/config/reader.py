"""YAML reading with a line for every key path, and ``--set key.path=value`` overrides.

YAML is read by PyYAML's safe loader with these deliberate departures from YAML 1.1, because
each 1.1 rule silently changes what a sweep file means:

- ``1e-3``, ``1E-5``, ``5e+2`` are floats (1.1 reads them as strings), as are ``1.0e3``, ``.5``.
- Only ``true``/``false`` (any case) are booleans; ``yes``/``no``/``on``/``off``/``y``/``n``
  stay strings, so ``amsgrad: no`` is reported ("write true or false") and ``name: no`` is 'no'.
- An integer with a leading zero (``0755``, ``010``) is an **error** (1.1 reads it as octal,
  a reader expects decimal); write ``755``, or ``0o755`` if octal is really meant.
- ``12:30`` (1.1 base 60) and dates stay strings; ``.inf``/``.nan`` are floats but are
  rejected wherever a hyperparameter or a schedule value is expected.
- A key given twice in one mapping is an error naming both lines (1.1 keeps the last one).
- Merge keys (``<<: *defaults``) and anchors work as usual; other tags (``!!python/...``,
  ``!!binary``, ``!!set``...) are rejected.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml

from .problems import (
    BAD,
    OVERRIDE_FILE,
    Bad,
    ConfigError,
    KeyPath,
    Problem,
    Report,
    describe,
    format_path,
)

_MAX_NODES = 200_000  # alias expansion guard ("billion laughs")


_MAX_DEPTH = 64  # nesting a sweep file never needs, checked before PyYAML recurses into it


_TAG = "tag:yaml.org,2002:"


_INT_RE = r"[-+]?(?:[0-9][0-9_]*|0x[0-9a-fA-F_]+|0o[0-7_]+|0b[01_]+)"


_FLOAT_RE = (
    r"[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
)


_LEADING_ZERO = re.compile(r"[-+]?0[0-9]+")


YAML11_BOOLS = frozenset({"yes", "no", "on", "off", "y", "n"})


class _Loader(yaml.SafeLoader):
    """SafeLoader whose implicit types are YAML 1.2-like (see the module docstring)."""

    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, re.Pattern[str]]]]] = {}


for _tag, _regexp, _first in (
    ("bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    ("int", _INT_RE, "-+0123456789"),
    ("float", _FLOAT_RE, "-+0123456789."),
    ("null", r"~|null|Null|NULL|", ["~", "n", "N", ""]),
    ("merge", r"<<", "<"),
):
    _Loader.add_implicit_resolver(_TAG + _tag, re.compile(f"^(?:{_regexp})$"), list(_first))


class _Builder:
    """Turns composed YAML nodes into plain Python values, recording each path's line."""

    def __init__(self, report: Report, file: str, with_lines: bool) -> None:
        self.report = report
        self.file = file
        self.with_lines = with_lines
        self.nodes = 0
        self.stack: set[int] = set()

    def line(self, node: yaml.Node) -> int | None:
        return node.start_mark.line + 1 if self.with_lines else None

    def origin(self, path: KeyPath, node: yaml.Node) -> None:
        self.report.origins[path] = (self.file, self.line(node))

    def problem(self, node: yaml.Node, path: KeyPath, message: str) -> None:
        """A problem at ``node``'s own line (without recording it as ``path``'s origin)."""
        self.report.problems.append(Problem(self.file, self.line(node), format_path(path), message))

    def build(self, node: yaml.Node, path: KeyPath) -> Any:
        self.nodes += 1
        if self.nodes > _MAX_NODES:
            if self.nodes == _MAX_NODES + 1:
                self.report.add(path, f"more than {_MAX_NODES} values (aliases expanding?)")
            return BAD
        if id(node) in self.stack:
            return self.report.add(path, "an alias refers to itself; write the value out")
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        self.stack.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode) and node.tag == _TAG + "seq":
                return [self.item(child, (*path, i)) for i, child in enumerate(node.value)]
            if isinstance(node, yaml.MappingNode) and node.tag == _TAG + "map":
                return self.mapping(node, path)
            return self.report.add(path, f"unsupported YAML tag {_short_tag(node.tag)}")
        finally:
            self.stack.discard(id(node))

    def item(self, node: yaml.Node, path: KeyPath) -> Any:
        self.origin(path, node)
        return self.build(node, path)

    def mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                merged.extend(self.merge_pairs(value_node, path))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(key_node, path, "a key must be a plain name, not a list or mapping")
                continue
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in first_line:
                message = (
                    f"duplicate key '{key}' (first at line {first_line[key]}, again at line "
                    f"{line}); YAML would silently keep the last: keep one"
                )
                self.problem(key_node, (*path, key), message)
                continue
            first_line[key] = line
            self.origin((*path, key), key_node)
            result[key] = self.build(value_node, (*path, key))
        for key_node, value_node in merged:
            key = str(key_node.value)
            if key not in result:
                self.origin((*path, key), key_node)
                result[key] = self.build(value_node, (*path, key))
        return result

    def merge_pairs(self, node: yaml.Node, path: KeyPath) -> list[tuple[yaml.Node, yaml.Node]]:
        """The key/value pairs a ``<<:`` merge brings in (earlier sources win)."""
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        pairs: list[tuple[yaml.Node, yaml.Node]] = []
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                self.problem(source, path, "<< must merge a mapping or a list of mappings")
                continue
            pairs.extend(p for p in source.value if isinstance(p[0], yaml.ScalarNode))
        return pairs

    def scalar(self, node: yaml.ScalarNode, path: KeyPath) -> Any:
        tag, text = node.tag, node.value
        if tag == _TAG + "str":
            return text
        if tag == _TAG + "null":
            return None
        if tag == _TAG + "bool":
            if text.lower() in ("true", "false"):
                return text.lower() == "true"
            return self.report.add(path, f"!!bool accepts true or false, got {text!r}")
        if tag == _TAG + "int":
            return self.integer(text, path)
        if tag == _TAG + "float":
            return self.real(text, path)
        return self.report.add(path, f"unsupported YAML tag {_short_tag(tag)} on {text!r}")

    def integer(self, text: str, path: KeyPath) -> int | Bad:
        digits = text.replace("_", "")
        if _LEADING_ZERO.fullmatch(digits):
            sign = digits[0] if digits[0] in "+-" else ""
            plain = digits.lstrip("+-").lstrip("0") or "0"
            octal = f" or {sign}0o{plain} (octal)" if set(plain) <= set("01234567") else ""
            return self.report.add(
                path,
                f"{text} has a leading zero, which YAML 1.1 reads as octal; write "
                f"{sign}{plain} (decimal){octal}",
            )
        try:
            return int(digits, 0)
        except ValueError:
            return self.report.add(path, f"cannot read {text!r} as an integer")

    def real(self, text: str, path: KeyPath) -> float | Bad:
        lowered = text.replace("_", "").lower()
        specials = {".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf, ".nan": math.nan}
        if lowered in specials:
            return specials[lowered]
        try:
            return float(lowered)
        except ValueError:
            return self.report.add(path, f"cannot read {text!r} as a number")


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_TAG) :] if tag.startswith(_TAG) else tag


def _yaml_error_message(error: yaml.YAMLError) -> tuple[int | None, str]:
    """Line and one-line text of a PyYAML error."""
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        text = "; ".join(p for p in (error.context, error.problem) if p)
        start = error.context_mark
        if start is not None and mark is not None and start.line != mark.line:
            text += f" (the construct began at line {start.line + 1})"
        if "'\\t'" in text:
            text += "; indent with spaces, not tabs"
        return (mark.line + 1 if mark else None), f"YAML syntax error: {text}"
    return None, f"YAML syntax error: {error}"


def _too_deep(text: str) -> int | None:
    """The line where ``text`` nests deeper than ``_MAX_DEPTH``, or None (read as a stream of
    events, which does not recurse; syntax errors are left to the composer)."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > _MAX_DEPTH:
                    return event.start_mark.line + 1
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        return None
    return None


def _compose(text: str, report: Report, file: str, path: KeyPath, with_lines: bool) -> Any:
    """Parse YAML text into plain values (BAD on a syntax error, already reported)."""
    deep = _too_deep(text)
    if deep is not None:
        message = f"nested more than {_MAX_DEPTH} levels deep; a sweep file needs a few"
        if with_lines:
            report.add_at(file, deep, message)
        else:
            report.add(path, message)
        return BAD
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as error:
        line, message = _yaml_error_message(error)
        if with_lines:
            report.add_at(file, line, message)
        else:
            report.add(path, message)
        return BAD
    if node is None:
        return None
    if with_lines:
        report.origins[path] = (file, node.start_mark.line + 1)
    try:
        return _Builder(report, file, with_lines).build(node, path)
    except RecursionError:  # aliases nesting one another past what the text shows
        return report.add(path, f"values nested more than {_MAX_DEPTH} levels deep (aliases?)")


def read_text(text: str, file: str = "<text>") -> Any:
    """YAML text as plain values, read as a sweep file is.

    Raises:
        ConfigError: the text's problems (syntax, tags, duplicate keys...), one line each.
    """
    report = Report(file)
    value = _compose(text, report, file, (), with_lines=True)
    if report.problems:
        raise ConfigError(report.problems)
    return value


def read(path: Path, report: Report) -> Any:
    """The file's top-level mapping as plain values, or BAD (already reported)."""
    file = report.file
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        report.add_at(file, None, f"cannot read the file: not UTF-8 text ({error.reason})")
        return BAD
    except OSError as error:
        reason = error.strerror or str(error)
        report.add_at(file, None, f"cannot read the file: {reason}")
        return BAD
    tree = _compose(text, report, file, (), with_lines=True)
    if tree is BAD:
        return BAD
    if tree is None:
        report.add_at(
            file, 1, "the file is empty; expected a mapping with name, dataset, optimizers"
        )
        return BAD
    if not isinstance(tree, dict):
        report.add_at(
            file,
            report.line(()),
            f"expected a mapping (name: ..., dataset: ..., optimizers: [...]) at the top "
            f"level, got {describe(tree)}",
        )
        return BAD
    return tree


@dataclass(frozen=True)
class Override:
    """One ``--set key.path=value`` from the command line.

    Attributes:
        path: the key path; list indices are ints (``optimizers[0]`` and ``optimizers.0``
            both give ``("optimizers", 0)``).
        text: the value as typed, parsed with the same YAML rules as the file.
        source: the whole argument, for messages.
        origin: what problems with it name as their file: ``--set``, or the flag that is
            short for it (``--device``).
    """

    path: KeyPath
    text: str
    source: str
    origin: str = OVERRIDE_FILE

    @classmethod
    def of_flag(cls, flag: str, path: str, value: object) -> Override:
        """A flag that sets a key (``--device cuda`` is ``train.device=cuda``); the value
        is quoted, so that a path reads as the string it is."""
        keys = tuple(path.split("."))
        return cls(keys, json.dumps(str(value)), f"{flag} {value}", origin=flag)


_NAME_SEGMENT = re.compile(r"[^.\[\]\s=]+")


def parse_override(text: str) -> Override:
    """Parse ``key.path=value`` (``optimizers[0].grid.learning_rate=[0.1]`` or ``a.0.b=1``).

    The value is kept as text and parsed with the file's YAML rules when applied.
    Raises `ConfigError` (one problem, file ``--set``) when the text is not ``path=value``.
    """
    key, sep, value = text.partition("=")
    path = _parse_key_path(key.strip())
    if not sep or path is None:
        problem = Problem(
            OVERRIDE_FILE,
            None,
            "",
            f"{text!r} is not key.path=value (e.g. train.epochs=2, "
            f"optimizers[0].grid.learning_rate=[0.1])",
        )
        raise ConfigError([problem])
    return Override(path, value.strip(), text)


def _parse_key_path(key: str) -> KeyPath | None:
    """``a.b[0].c`` or ``a.b.0.c`` -> ``("a", "b", 0, "c")``; None if malformed."""
    parts: list[str | int] = []
    pos = 0
    while pos < len(key):
        if key[pos] == "[":
            end = key.find("]", pos)
            if end < 0 or not key[pos + 1 : end].isdigit():
                return None
            parts.append(int(key[pos + 1 : end]))
            pos = end + 1
        else:
            if parts:
                if key[pos] != ".":
                    return None
                pos += 1
            match = _NAME_SEGMENT.match(key, pos)
            if not match:
                return None
            segment = match.group()
            parts.append(int(segment) if segment.isdigit() else segment)
            pos = match.end()
    return tuple(parts) or None


def apply_override(tree: dict[str, Any], override: Override, report: Report) -> None:
    """Set one override in ``tree`` (creating missing mappings), recording it as ``--set``."""
    where: KeyPath = ()
    container: Any = tree
    for i, part in enumerate(override.path):
        last = i == len(override.path) - 1
        if isinstance(container, list):
            if not isinstance(part, int):
                _override_problem(report, override, f"{format_path(where)} is a list: use [N]")
                return
            if part >= len(container):
                valid = f"0..{len(container) - 1}" if container else "it is empty"
                _override_problem(
                    report,
                    override,
                    f"{format_path(where)} has {len(container)} items; index {part} is out of "
                    f"range ({valid})",
                )
                return
            key: str | int = part
            if not last:
                _spell_out(container, key, (*where, key))
        elif isinstance(container, dict):
            key = str(part)
            if not last:
                _spell_out(container, key, (*where, key))
            if not last and not isinstance(container.get(key), dict | list):
                if key in container and container[key] is not None:
                    _override_problem(
                        report,
                        override,
                        f"{format_path((*where, key))} is {describe(container[key])}, "
                        f"not a mapping",
                    )
                    return
                container[key] = {}
                report.origins[(*where, key)] = (override.origin, None)
        else:
            _override_problem(report, override, f"{format_path(where)} is not a mapping")
            return
        where = (*where, key)
        if last:
            report.forget(where)
            report.origins[where] = (override.origin, None)
            container[key] = _compose(
                override.text, report, override.origin, where, with_lines=False
            )
        else:
            container = container[key]


def _spell_out(container: dict[str, Any] | list[Any], key: str | int, path: KeyPath) -> None:
    """A bare name an override reaches into becomes the mapping it is short for:
    ``model: mlp`` is ``{name: mlp}`` (so ``--set model.init=keras`` works), as are
    ``optimizers: [adam]`` entries; ``schedule: cosine`` is ``{type: cosine}``."""
    if path == ("model",) or (len(path) == 2 and path[0] == "optimizers"):
        field_name = "name"
    elif path[-1:] == ("schedule",):
        field_name = "type"
    else:
        return
    value = container.get(key) if isinstance(container, dict) else container[key]
    if isinstance(value, str):
        container[key] = {field_name: value}


def _override_problem(report: Report, override: Override, message: str) -> None:
    report.problems.append(
        Problem(override.origin, None, format_path(override.path), f"{message} ({override.source})")
    )
