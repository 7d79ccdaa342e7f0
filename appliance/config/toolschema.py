"""Tool parameter schemas: valid JSON Schema (draft 2020-12, checked with the jsonschema package
against its meta-schema) and limited to the keywords the daemon enforces.

At call time the arguments are constrained twice: llama.cpp's grammar shapes what the model
writes (agent/speech/chat_model.py, `LlamaGrammar.from_json_schema`), and agent/tools/spec.py
`schema_errors` checks the arguments before a webhook is called. A keyword neither of them acts
on would be ignored without a word, so it is rejected here, named, with the supported list.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from appliance.config.base import ConfigIssue, FieldPath, _did_you_mean
from appliance.config.locator import Locator

DRAFT = "https://json-schema.org/draft/2020-12/schema"
NO_ARGUMENTS = {"type": "object", "properties": {}}  # the default; nothing to check

# Keywords checked at call time, by the kind of value they constrain.
CHECKED = (
    "type", "enum", "const",
    "properties", "required", "additionalProperties",
    "items", "minItems", "maxItems",
    "minLength", "maxLength", "pattern", "format",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
)
# Notes for people reading the configuration; nothing at call time depends on them.
NOTES = ("description", "title", "examples", "$comment", "$schema")
SUPPORTED = CHECKED + NOTES
# The formats llama.cpp's grammar writes (nothing checks any other format).
FORMATS = ("date", "time", "date-time", "uuid")
TYPES = ("string", "number", "integer", "boolean", "array", "object", "null")

_WHY_UNSUPPORTED = {
    "default": "the agent does not fill in defaults: a missing argument stays missing",
    "anyOf": "the arguments are not checked against it before the webhook is called",
    "oneOf": "the arguments are not checked against it before the webhook is called",
    "allOf": "the arguments are not checked against it before the webhook is called",
    "$ref": "the arguments are not checked against it before the webhook is called",
    "$defs": "the arguments are not checked against it before the webhook is called",
}

# What each keyword takes, written so the fix is itself valid YAML.
_TAKES = {
    "type": "one of string, number, integer, boolean, array, object, null, e.g. type: string",
    "enum": "a list of the allowed values, e.g. enum: [small, large]",
    "properties": "parameter names, each with its schema, e.g. properties: {name: {type: "
                  "string}}",
    "required": "a list of parameter names, each once, e.g. required: [name]",
    "additionalProperties": "true, false or a schema, e.g. additionalProperties: false",
    "items": "one schema for every item, e.g. items: {type: string}",
    "minItems": "a whole number of 0 or more, e.g. minItems: 1",
    "maxItems": "a whole number of 0 or more, e.g. maxItems: 5",
    "minLength": "a whole number of 0 or more, e.g. minLength: 1",
    "maxLength": "a whole number of 0 or more, e.g. maxLength: 40",
    "pattern": 'a regular expression in quotes, e.g. pattern: "^[0-9]{4}$"',
    "format": "one of date, time, date-time, uuid, e.g. format: date",
    "minimum": "a number, e.g. minimum: 1",
    "maximum": "a number, e.g. maximum: 10",
    "exclusiveMinimum": "a number, e.g. exclusiveMinimum: 0",
    "exclusiveMaximum": "a number, e.g. exclusiveMaximum: 100",
    "description": "text, e.g. description: the caller's full name",
    "title": "text, e.g. title: Name",
    "examples": "a list of example values, e.g. examples: [Anna]",
    "$comment": "text",
}


def parameter_issues(schema: dict[str, Any], file: Path, base: FieldPath,
                     locator: Locator) -> list[ConfigIssue]:
    """Every problem of one tool's `parameters` (at `base` in `file`), one per place."""
    found: dict[FieldPath, tuple[str, str]] = {}
    for path, message, fix in _walk(schema, ()):
        found.setdefault(path, (message, fix))
    for path, message, fix in _meta_problems(schema):
        if not any(path[:len(seen)] == seen for seen in found):
            found.setdefault(path, (message, fix))
    issues = [locator.issue(file, base + path, message, fix)
              for path, (message, fix) in found.items()]
    return sorted(issues, key=lambda issue: issue.line or 0)


def _meta_problems(schema: dict[str, Any]) -> Iterator[tuple[FieldPath, str, str]]:
    """Where the schema breaks the draft 2020-12 meta-schema, in this project's words."""
    from jsonschema import Draft202012Validator  # only configurations with tools pay for it

    declared = schema.get("$schema", DRAFT)
    if declared != DRAFT:
        yield (("$schema",), f"the schema declares {declared!r}; tool parameters are read as "
               f"JSON Schema draft 2020-12", f'remove $schema, or write $schema: "{DRAFT}"')
        return
    meta = Draft202012Validator(Draft202012Validator.META_SCHEMA)
    for error in meta.iter_errors(schema):
        path: FieldPath = tuple(error.absolute_path)
        while path and isinstance(path[-1], int):  # required.1 -> required
            path = path[:-1]
        yield (path, *_meta_message(path, error.instance))


def _meta_message(path: FieldPath, value: Any) -> tuple[str, str]:
    key = str(path[-1]) if path else ""
    if not path or _names_a_parameter(path):
        what = f"the schema of parameter {key}" if path else "parameters"
        return (f"{what} must be a group of key: value lines, got {_shown(value)}",
                f"write e.g. {key or 'parameters'}: {{type: string}}")
    takes = _TAKES.get(key)
    if takes is None:
        return f"{key} is not valid JSON Schema here", "see the tool examples shipped with " \
            "Switchboard (appliance/examples/features)"
    guess = _did_you_mean(value, TYPES) if key == "type" and isinstance(value, str) else None
    hint = f'did you mean "{guess}"? Otherwise ' if guess else ""
    return f"{key} takes {takes.split(', e.g.')[0]}, got {_shown(value)}", f"{hint}write {takes}"


def _names_a_parameter(path: FieldPath) -> bool:
    """Whether the last part of `path` is a parameter's name (the key under properties),
    not a keyword: keywords and names alternate below each properties."""
    name = False
    for before in path[:-1]:
        name = before == "properties" and not name
    return name


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a group of settings"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    return repr(value) if isinstance(value, str) else str(value)


def _walk(schema: Any, path: FieldPath) -> Iterator[tuple[FieldPath, str, str]]:
    """Keywords the daemon does not act on, and values it cannot use, below `path`."""
    if isinstance(schema, bool):
        yield (path, f"true/false as the schema of {_name(path)} is not supported",
               "write a schema such as {type: string}")
    if not isinstance(schema, dict):  # other values: the meta-schema's complaint says it
        return
    previous: tuple[str, Any] | None = None
    for key, value in schema.items():
        if key not in SUPPORTED:
            yield ((*path, key), *_unsupported(key, value, previous))
        previous = (key, value)
    properties = schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    for name, sub in properties.items():
        yield from _walk(sub, (*path, "properties", name))
    required = schema.get("required")
    if "properties" in schema and not isinstance(schema["properties"], dict):
        required = None  # the meta-schema's complaint about properties comes first
    for name in required if isinstance(required, list) else []:
        if isinstance(name, str) and name not in properties:
            yield ((*path, "required"), f'required names "{name}", which is not among the '
                   "properties (the model would never give it, so every call fails)",
                   _required_fix(name, list(properties)))
    if isinstance(schema.get("items"), dict | bool):
        yield from _walk(schema["items"], (*path, "items"))
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk(schema["additionalProperties"], (*path, "additionalProperties"))
    if isinstance(schema.get("pattern"), str):
        problem = _pattern_problem(schema["pattern"])
        if problem:
            yield ((*path, "pattern"), *problem)
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    choices = schema.get("enum")
    if isinstance(kinds, list) and isinstance(choices, list):
        wrong = [value for value in choices if not any(_is(value, k) for k in kinds)]
        if wrong:
            yield ((*path, "enum"), f"enum value {json.dumps(wrong[0])} is not of type "
                   f"{' or '.join(map(str, kinds))} (the model could choose it, and the check "
                   "before the webhook would refuse it)", "write enum values of that type, "
                   "in quotes for text, or remove type")
    fmt = schema.get("format")
    if isinstance(fmt, str):
        if fmt not in FORMATS:
            guess = _did_you_mean(fmt, FORMATS)
            hint = f'did you mean "{guess}"? ' if guess else ""
            yield ((*path, "format"), f'format "{fmt}" is not checked at call time',
                   f"{hint}use one of {', '.join(FORMATS)}, or a pattern instead")
        elif "pattern" in schema:
            yield ((*path, "format"), "format and pattern together: only the pattern is "
                   "checked at call time", "keep one of them")


def _is(value: Any, kind: Any) -> bool:
    """Whether `value` (from YAML) has JSON Schema type `kind`."""
    if isinstance(value, bool):
        return kind == "boolean"
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    return {"string": isinstance(value, str), "integer": whole,
            "number": isinstance(value, int | float), "null": value is None,
            "array": isinstance(value, list), "object": isinstance(value, dict)}.get(kind, True)


def _required_fix(name: str, properties: list[str]) -> str:
    guess = _did_you_mean(name, properties)
    hint = f'did you mean "{guess}"? Otherwise ' if guess else ""
    return f"{hint}add {name} to properties, or remove it from required"


def _unsupported(key: str, value: Any, previous: tuple[str, Any] | None) -> tuple[str, str]:
    if value is None and " " in key and previous and isinstance(previous[1], str):
        # {description: ISO date, e.g. 2026-12-01}: in a { } group a comma ends the text
        text = f"{previous[1]}, {key}"
        return (f'"{key}" is not supported in tool parameters: it looks like the rest of '
                f"{previous[0]}, cut off by a comma (in {{ }} a comma ends unquoted text)",
                f"put the whole text in quotes: {previous[0]}: {_quoted(text)}")
    why = _WHY_UNSUPPORTED.get(key, "the agent would ignore it at call time")
    guess = _did_you_mean(key, SUPPORTED)
    hint = f'did you mean "{guess}"? Otherwise remove it; ' if guess else "remove it; "
    return (f'"{key}" is not supported in tool parameters: {why}',
            f"{hint}supported: {', '.join(CHECKED)} (and the notes {', '.join(NOTES[:3])})")


def _pattern_problem(pattern: str) -> tuple[str, str] | None:
    """Patterns must be Python regular expressions the grammar can also follow."""
    try:
        re.compile(pattern)
    except re.error as exc:
        return (f"pattern {pattern!r} is not a valid regular expression ({exc.msg} at "
                f"position {exc.pos})", 'fix the expression, e.g. pattern: "^[0-9]{4,12}$"')
    if not (pattern.startswith("^") and pattern.endswith("$")):
        anchored = "^" + pattern.lstrip("^").removesuffix("$") + "$"
        return (f"pattern {pattern!r} must match the whole value: start it with ^ and end it "
                "with $ (the model's grammar needs both)", f"write pattern: {_quoted(anchored)}")
    if "(?" in pattern:
        return (f"pattern {pattern!r} uses a (?...) group, which the model's grammar cannot "
                "follow", "use plain groups ( ... ) and character classes instead")
    return None


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _name(path: FieldPath) -> str:
    return f"parameter {path[-1]}" if _names_a_parameter(path) else \
        ".".join(str(p) for p in path) or "parameters"
