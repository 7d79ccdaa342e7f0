"""What the model needs for tools: the tool call value, the argument schema that constrains
its decoding, and how its instructions describe the tools and their results."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ToolCallRequest:
    """A decision to call ``name`` with ``arguments``."""

    name: str
    arguments: dict[str, Any]


def argument_schema(tool: Any) -> dict[str, Any]:
    """JSON Schema of the arguments the model fills in (keypad parameters left out)."""
    params = dict(tool.parameters or {"type": "object", "properties": {}})
    params.setdefault("type", "object")
    keypad = getattr(tool, "dtmf_parameter", None)
    if keypad:
        params["properties"] = {k: v for k, v in params.get("properties", {}).items()
                                if k != keypad}
        params["required"] = [r for r in params.get("required", []) if r != keypad]
    return params


def tool_prompt(tools: Any) -> str:
    """Added to the agent's instructions: what it can do, and how results come back."""
    lines = ["Besides talking, you can:"]
    lines += [f"- {tool.description}" for tool in tools]
    lines.append("When you used one, its result comes as (Tool result: ...). Tell the caller "
                 "what it means in one short sentence. Never read out JSON.")
    return "\n".join(lines)
