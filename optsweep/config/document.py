"""The sweep file described from its declarations: the JSON Schema editors check and complete
keys with (``optsweep schema``), and the README's table of every key (``--markdown``).

Nothing here is a second declaration: sections come from `sweep.TOP` and their dataclass
fields, model options from `sections.MODEL_OPTION_KEYS`, block keys from `blocks.BLOCK`,
optimizer parameters from the registry, schedule fields from `optim.schedules`.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from optsweep.catalog import MODEL_TABLE, MODELS
from optsweep.optim import registry
from optsweep.optim.parameters import ParamInfo
from optsweep.optim.schedules import SCHEDULE_FIELDS, SCHEDULE_KINDS
from optsweep.values import fmt

from .blocks import BLOCK, SCHEDULE_KEYS, SCHEDULE_NUMBER
from .schema import Setting, settings
from .sections import MODEL_OPTION_KEYS
from .sweep import TOP

SCHEMA_URL = "https://json-schema.org/draft-07/schema#"


# ───────────────────────────── JSON Schema ─────────────────────────────


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft-07) of a sweep file, for yaml-language-server and the like.

    It checks shapes, names and ranges; what needs more than one key at a time (a grid's
    size, a batch larger than the dataset, cross-parameter rules) only ``optsweep validate``
    says.
    """
    properties: dict[str, Any] = {}
    for key, declared in TOP.items():
        if isinstance(declared, Setting):
            properties[key] = _described(declared)
        else:
            properties[key] = _section(declared)
    properties["model"] = _model()
    properties["schedule"] = {
        "$ref": "#/definitions/schedule",
        "description": _help(TOP["schedule"]),
    }
    values: dict[str, Any] = {}  # a parameter value's schema text -> its reference
    properties["optimizers"] = _optimizers(values)
    return {
        "$schema": SCHEMA_URL,
        "title": "optsweep sweep file",
        "type": "object",
        "required": ["name", "dataset", "optimizers"],
        "properties": properties,
        "additionalProperties": False,
        "definitions": {
            "schedule": _schedule(),
            "range": _range(),
            "values": {str(i): v["value"] for i, v in enumerate(values.values())},
        },
    }


def _help(declared: Setting | type) -> str:
    return declared.help if isinstance(declared, Setting) else ""


def _described(declared: Setting) -> dict[str, Any]:
    return {**declared.kind.json(), "description": declared.help}


def _section(section: type) -> dict[str, Any]:
    keys = settings(section)
    return {
        "type": ["object", "null"],
        "properties": {name: _described(s) for name, (s, _) in keys.items()},
        "additionalProperties": False,
    }


def _model() -> dict[str, Any]:
    per_model = [
        {
            "if": {"properties": {"name": {"const": name}}},
            "then": {
                "properties": {
                    "name": True,
                    **{o: _described(MODEL_OPTION_KEYS[o]) for o in MODEL_TABLE[name].options},
                },
                "additionalProperties": False,
            },
        }
        for name in MODELS
    ]
    mapping = {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"enum": list(MODELS)}},
        "allOf": per_model,
    }
    own = {
        "type": "object",
        "required": ["module"],
        "properties": {
            "module": {"type": "string", "pattern": "^.+:[A-Za-z_][A-Za-z0-9_]*$"},
            "args": {"type": "object"},
        },
        "additionalProperties": False,
    }
    return {"anyOf": [{"enum": list(MODELS)}, mapping, own], "description": _help(TOP["model"])}


def _schedule_value(key: str) -> dict[str, Any]:
    one = SCHEDULE_KEYS.get(key, SCHEDULE_NUMBER).json()
    # a list of values of a one-value key is a grid axis
    return {"anyOf": [one, {"type": "array", "items": one, "minItems": 1}]}


def _schedule() -> dict[str, Any]:
    per_kind = [
        {
            "if": {"properties": {"type": {"const": kind}}},
            "then": {
                "properties": {
                    "type": True,
                    "unit": SCHEDULE_KEYS["unit"].json(),
                    **{k: _schedule_value(k) for k in SCHEDULE_FIELDS[kind]},
                },
                "additionalProperties": False,
            },
        }
        for kind in SCHEDULE_KINDS
    ]
    mapping = {
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"enum": list(SCHEDULE_KINDS)}},
        "allOf": per_kind,
    }
    return {"anyOf": [{"type": "null"}, {"enum": list(SCHEDULE_KINDS)}, mapping]}


def _parameter(info: ParamInfo) -> dict[str, Any]:
    """One value of an optimizer parameter."""
    if info.kind == "bool":
        one: dict[str, Any] = {"type": "boolean"}
    else:
        one = {"type": "integer" if info.kind == "int" else "number"}
        if info.low is not None:
            one["exclusiveMinimum" if info.low_open else "minimum"] = info.low
        if info.high is not None:
            one["exclusiveMaximum" if info.high_open else "maximum"] = info.high
    if info.optional:
        one = {"anyOf": [one, {"type": "null"}]}
    return {**one, "description": f"{info.doc} (valid: {info.valid})"}


def _range() -> dict[str, Any]:
    """A search range ``{low, high, log, step}`` (``optsweep search`` only)."""
    return {
        "type": "object",
        "required": ["low", "high"],
        "properties": {
            "low": {"type": "number"},
            "high": {"type": "number"},
            "log": {"type": "boolean"},
            "step": {"type": "number", "exclusiveMinimum": 0},
        },
        "additionalProperties": False,
    }


def _optimizer(name: str, values: dict[str, Any]) -> dict[str, Any]:
    """An optimizer's block: its block keys, then each parameter under every name it takes.
    A parameter's value schema goes into ``values`` once (the knobs every optimizer has are
    the same schema), referred to by ``#/definitions/values/N``."""
    info = registry.OPTIMIZERS[name]
    fixed: dict[str, Any] = {}
    for written, canonical in registry.written_names(name).items():
        one = [_parameter(info.params[c]) for c in canonical]
        value = (
            one[0]
            if len(one) == 1  # else betas: [beta_1, beta_2]
            else {"type": "array", "items": one, "minItems": 2, "maxItems": 2}
        )
        text = json.dumps(value, sort_keys=True)
        values.setdefault(text, {"$ref": f"#/definitions/values/{len(values)}", "value": value})
        fixed[written] = {"$ref": values[text]["$ref"]}
    grid = {
        written: {
            "anyOf": [
                {"type": "array", "items": value, "minItems": 1},
                {"$ref": "#/definitions/range"},
            ]
        }
        for written, value in fixed.items()
    }
    return {
        "properties": {
            "name": True,
            "semantics": _described(BLOCK["semantics"]),
            "schedule": {"$ref": "#/definitions/schedule"},
            "grid": {"type": "object", "properties": grid, "additionalProperties": False},
            **fixed,
        },
        "additionalProperties": False,
    }


def _optimizers(values: dict[str, Any]) -> dict[str, Any]:
    names = list(registry.OPTIMIZERS)
    per_optimizer = [
        {"if": {"properties": {"name": {"const": n}}}, "then": _optimizer(n, values)} for n in names
    ]
    block = {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"enum": names, "description": BLOCK["name"].help}},
        "allOf": per_optimizer,
    }
    return {
        "type": "array",
        "minItems": 1,
        "items": {"anyOf": [{"enum": names}, block]},
        "description": _help(TOP["optimizers"]),
    }


# ───────────────────────────── the README's table ─────────────────────────────


def markdown_table() -> str:
    """The README's *Every key* table, one row per key, from the declarations."""
    rows = ["| key | meaning | default | valid |", "| --- | --- | --- | --- |"]
    for key, declared in TOP.items():
        if isinstance(declared, Setting):
            rows.append(_row(key, declared, declared.default))
        else:
            rows += [_row(f"{key}.{n}", s, d) for n, (s, d) in settings(declared).items()]
        if key == "model":
            rows += [
                _row(f"model.{o}", s, dataclasses.MISSING) for o, s in MODEL_OPTION_KEYS.items()
            ]
        if key == "optimizers":
            for name, s in BLOCK.items():
                written = "grid.<parameter>" if name == "grid" else name
                rows.append(_row(f"optimizers[i].{written}", s, s.default))
                if name == "semantics":
                    rows.append(_PARAMETER_ROW)
    return "\n".join(rows)


_PARAMETER_ROW = (
    "| `optimizers[i].<parameter>` | a fixed value for every grid point of the block | the "
    "semantics' default | see below |"
)


def _row(key: str, declared: Setting, default: Any) -> str:
    shown = declared.default_text or _shown(default)  # every key without a default says so
    valid = declared.kind.valid() + (f": {declared.note}" if declared.note else "")
    cells = [f"`{key}`", declared.help, shown, valid]
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _shown(value: Any) -> str:
    """A default as the README writes it: a word in code style, any other value as `fmt`."""
    return f"`{value}`" if isinstance(value, str) else fmt(value)
