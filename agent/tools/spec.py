"""What a tool is: its typed specification, a decision to call it (``ToolCall``), the JSON
Schema of its arguments (to constrain the model's decoding and check what it produced), and
how the agent's instructions describe the tools."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from agent.speech.chat_model import TOOL_RESULT_PREFIX

ToolKind = Literal["webhook", "transfer", "hangup", "send_dtmf"]
HttpMethod = Literal["POST", "GET"]
TransferMode = Literal["blind", "attended"]


def _empty_object() -> dict[str, Any]:
    return {"type": "object", "properties": {}, "additionalProperties": False}


@dataclass(frozen=True)
class ToolSpec:
    """A tool the agent may use: what it is for, its arguments, and how it is carried out.

    ``kind`` says how: a webhook, or one of the built-ins (transfer, hangup, send_dtmf).
    The fields after ``kind`` are grouped by the kinds they serve, as the comments say.
    """

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=_empty_object)  # JSON Schema, object
    kind: ToolKind = "webhook"
    # webhook: where and how the request goes
    url: str = ""
    method: HttpMethod = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 1.5  # seconds per attempt
    retries: int = 1  # further attempts after a refused connection or a 5xx
    secret: bytes | None = field(default=None, repr=False)  # HMAC-SHA256 key
    # webhook and transfer: what the caller hears around it
    wait_phrase: str | None = None  # said while waiting
    failure_phrase: str = "Sorry, I could not do that right now."
    result_phrase: str | None = None  # "Your order is {status}." filled from the JSON answer
    # transfer: label -> extension or outside number; blind or attended
    targets: dict[str, str] = field(default_factory=dict)
    mode: TransferMode = "blind"
    # webhook: keypad entry collected into one parameter instead of asking the model for it
    dtmf_parameter: str | None = None
    dtmf_prompt: str | None = None
    dtmf_terminator: str = "#"
    dtmf_timeout: float = 8.0  # seconds to wait for the next key
    dtmf_max_digits: int = 16

    def __post_init__(self) -> None:
        if self.kind == "transfer" and not self.targets:
            raise ValueError(f"tool {self.name}: a transfer needs at least one target")


@dataclass(frozen=True)
class ToolCall:
    """A decision to call tool ``name`` with ``arguments``."""

    name: str
    arguments: dict[str, Any]
    amends: bool = False  # corrects this tool's last successful call in the same call


def argument_schema(tool: ToolSpec) -> dict[str, Any]:
    """JSON Schema of the arguments the model fills in (keypad parameters left out)."""
    params = dict(tool.parameters or {"type": "object", "properties": {}})
    params.setdefault("type", "object")
    if tool.dtmf_parameter:
        keypad = tool.dtmf_parameter
        params["properties"] = {k: v for k, v in params.get("properties", {}).items()
                                if k != keypad}
        params["required"] = [r for r in params.get("required", []) if r != keypad]
    return params


def tool_prompt(tools: Iterable[ToolSpec]) -> str:
    """Added to the agent's instructions: what it can do, and how results come back."""
    lines = ["Besides talking, you can:"]
    lines += [f"- {tool.description}" for tool in tools]
    lines.append(f"When you used one, its result comes as a line starting with "
                 f"\"{TOOL_RESULT_PREFIX.strip()}\". Tell the caller what it means in one "
                 "short sentence. Never read out JSON.")
    return "\n".join(lines)


# -- arguments -------------------------------------------------------------------------

def schema_errors(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """Why ``value`` does not match ``schema`` (the JSON Schema subset tools use); [] if it does.

    Messages name the offending place, never the value (arguments may hold personal data).
    """
    where = path or "arguments"
    if "const" in schema and value != schema["const"]:
        return [f"{where}: not the allowed value"]
    if "enum" in schema and not any(_same_json(value, v) for v in schema["enum"]):
        return [f"{where}: not one of the allowed values"]
    kind = schema.get("type")
    if kind is not None and not _has_type(value, kind):
        return [f"{where}: expected {kind}"]
    errors: list[str] = []
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{where}: too short")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{where}: too long")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{where}: does not match the pattern")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{where}: below the minimum")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{where}: above the maximum")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            errors.append(f"{where}: not above the minimum")
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            errors.append(f"{where}: not below the maximum")
    elif isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{where}: too few items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{where}: too many items")
        if isinstance(schema.get("items"), dict):
            for index, item in enumerate(value):
                errors += schema_errors(schema["items"], item, f"{where}[{index}]")
    elif isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{_join(path, name)}: missing")
        for name, item in value.items():
            if name in properties:
                errors += schema_errors(properties[name], item, _join(path, name))
            elif schema.get("additionalProperties", True) is False:
                errors.append(f"{_join(path, name)}: not allowed")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += schema_errors(schema["additionalProperties"], item,
                                        _join(path, name))
    return errors


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _has_type(value: Any, kind: str | list[str]) -> bool:
    if isinstance(kind, list):
        return any(_has_type(value, k) for k in kind)
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and math.isfinite(value) and value.is_integer())
    checks: dict[str, Any] = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    if kind not in checks:
        raise ValueError(f"unsupported schema type {kind!r}")
    return checks[kind](value)


def _same_json(a: Any, b: Any) -> bool:
    """Equality as JSON sees it: true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b
