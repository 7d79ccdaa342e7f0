"""Pydantic validation errors turned into plain advice: file, line, field and the fix."""

import json
import re
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from appliance.config.base import (
    EXAMPLE_HINT,
    ConfigIssue,
    FieldPath,
    _did_you_mean,
    _is_model,
    _unwrap,
    dotted,
)
from appliance.config.locator import Locator


def _model_at(root: type[BaseModel], path: FieldPath) -> Any:
    """The (unwrapped) annotation found at path inside root, or None if it cannot be followed."""
    current: Any = root
    for part in path:
        current = _unwrap(current)
        if isinstance(part, int):
            if get_origin(current) is not list:
                return None
            current = get_args(current)[0]
        elif _is_model(current) and part in current.model_fields:
            current = current.model_fields[part].annotation
        else:
            return None
    return _unwrap(current)


def _field_at(root: type[BaseModel], path: FieldPath) -> FieldInfo | None:
    """The FieldInfo of the nearest named field at or above path (list indexes skipped)."""
    path = tuple(path)
    while path and isinstance(path[-1], int):
        path = path[:-1]
    if not path:
        return None
    parent = _model_at(root, path[:-1])
    if _is_model(parent) and isinstance(path[-1], str):
        return parent.model_fields.get(path[-1])
    return None


_YAML_WORDS = frozenset({"yes", "no", "on", "off", "true", "false", "null", "y", "n"})


def yaml_repr(value: Any) -> str:
    """A value written the way it would appear in YAML flow style."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(yaml_repr(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {yaml_repr(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_./-]*", value)
        plain = plain and value.lower() not in _YAML_WORDS
        return value if plain else json.dumps(value)
    return str(value)


def describe(value: Any) -> str:
    """How a wrong value is named in a message."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping (key: value pairs)"
    return str(value)


def _example(info: FieldInfo | None, fallback: Any) -> str:
    if info is not None and info.examples:
        return yaml_repr(info.examples[0])
    return yaml_repr(fallback)


def _bounds(info: FieldInfo | None, ctx: dict[str, Any]) -> tuple[Any, Any]:
    low = ctx.get("ge", ctx.get("gt"))
    high = ctx.get("le", ctx.get("lt"))
    for meta in info.metadata if info is not None else []:
        low = getattr(meta, "ge", None) if getattr(meta, "ge", None) is not None else low
        high = getattr(meta, "le", None) if getattr(meta, "le", None) is not None else high
    return low, high


def translate_error(error: Any, root: type[BaseModel], file: Path, locator: Locator) -> ConfigIssue:
    """Turn one pydantic error dict into a ConfigIssue with file, line and advice."""
    loc: FieldPath = tuple(error["loc"])
    kind: str = error["type"]
    ctx: dict[str, Any] = error.get("ctx") or {}
    value = error.get("input")
    info = _field_at(root, loc)
    key = str(loc[-1]) if loc else ""

    if kind == "switchboard":
        if ctx.get("at"):
            loc = loc + (ctx["at"],)
        return locator.issue(file, loc, str(ctx["message"]), str(ctx["fix"]))

    if kind == "extra_forbidden":
        parent = _model_at(root, loc[:-1])
        names = list(parent.model_fields) if _is_model(parent) else []
        guess = _did_you_mean(key, names)
        if guess:
            fix = f'did you mean "{guess}"?'
        else:
            fix = f"remove it; settings allowed here: {', '.join(names)}"
        return locator.issue(file, loc, f'unknown setting "{key}"', fix)

    if kind == "missing":
        return ConfigIssue(
            file,
            locator.line(file, loc[:-1]),
            dotted(loc),
            f'required setting "{key}" is missing',
            f"add {key}: {_example(info, '...')}",
        )

    if kind in ("int_type", "int_parsing", "int_from_float"):
        return locator.issue(
            file,
            loc,
            f"expected a whole number, got {describe(value)}",
            f"write a whole number such as {_example(info, 8)}",
        )

    if kind in ("bool_type", "bool_parsing"):
        return locator.issue(
            file, loc, f"expected true or false, got {describe(value)}", "write true or false"
        )

    if kind == "string_type":
        if isinstance(value, bool):
            fix = (
                "YAML reads unquoted yes/no/on/off/true/false as a switch; put the value in "
                'quotes, e.g. "no"'
            )
        elif isinstance(value, list | dict):
            fix = f"write a single value here, e.g. {_example(info, 'text')}"
        else:
            fix = f"put the value in quotes, e.g. {_example(info, 'text')}"
        return locator.issue(file, loc, f"expected text, got {describe(value)}", fix)

    if kind == "list_type":
        example = _example(info, ["..."])
        if not example.startswith("["):
            example = f"[{example}]"
        return locator.issue(
            file,
            loc,
            f"expected a list, got {describe(value)}",
            f"write a list, e.g. {key}: {example}, or one '- item' line per entry",
        )

    if kind in ("dict_type", "model_type", "model_attributes_type"):
        target = _model_at(root, loc)
        names = ", ".join(target.model_fields) if _is_model(target) else "..."
        return locator.issue(
            file,
            loc,
            f"expected a group of settings (key: value lines), got {describe(value)}",
            f"write indented key: value lines here (settings: {names})",
        )

    if kind in ("literal_error", "enum"):
        target = _model_at(root, loc)
        choices = [str(choice) for choice in get_args(target)] if target is not None else []
        if not choices:
            choices = [str(ctx.get("expected", ""))]
        guess = _did_you_mean(str(value), choices) if isinstance(value, str) else None
        hint = f'did you mean "{guess}"? ' if guess else ""
        return locator.issue(
            file,
            loc,
            f"{describe(value)} is not a valid choice",
            f"{hint}use one of: {', '.join(choices)}",
        )

    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        low, high = _bounds(info, ctx)
        what = "a port number" if "port" in key else "a number"
        if low is not None and high is not None:
            fix = f"use {what} from {low} to {high}"
        elif low is not None:
            fix = f"use {what} of at least {low}"
        else:
            fix = f"use {what} of at most {high}"
        return locator.issue(file, loc, f"{describe(value)} is out of range", fix)

    if kind in ("too_short", "string_too_short"):
        minimum = ctx.get("min_length", 1)
        if kind == "too_short":
            what = f"at least {minimum} entr{'y' if minimum == 1 else 'ies'}"
            example = _example(info, ["..."])
            return locator.issue(file, loc, f"must list {what}", f"write e.g. {key}: {example}")
        return locator.issue(
            file, loc, "must not be empty", "write a value, or remove the line to use the default"
        )

    if kind in ("too_long", "string_too_long"):
        maximum = ctx.get("max_length")
        return locator.issue(file, loc, f"is too long (at most {maximum})", "shorten it")

    return locator.issue(file, loc, str(error.get("msg", "invalid value")), EXAMPLE_HINT)
