"""Constrained replies for agents with tools: the model can only say something, or call one
of the declared tools with arguments valid for it.

The output is JSON whose first key decides: ``{"action": "say", "text": "..."}`` or
``{"action": "<tool>", "arguments": {...}}``. A JSON-Schema grammar makes anything else
impossible to generate, which is what makes a 135M-parameter model usable for tool calls.
The text of a "say" answer is streamed out as it is generated, so speech starts before the
JSON is complete.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

SAY = "say"
MAX_SAY_CHARS = 600


@dataclass(frozen=True)
class ToolCallRequest:
    """The model chose to call ``name`` with ``arguments``."""

    name: str
    arguments: dict[str, Any]


def output_schema(tools: Sequence[Any]) -> dict[str, Any]:
    """JSON Schema of every reply the model may produce for these tools."""
    options: list[dict[str, Any]] = [{
        "type": "object",
        "properties": {"action": {"const": SAY},
                       "text": {"type": "string", "maxLength": MAX_SAY_CHARS}},
        "required": ["action", "text"], "additionalProperties": False,
    }]
    for tool in tools:
        params = dict(tool.parameters or {"type": "object", "properties": {}})
        params.setdefault("type", "object")
        if tool.kind == "transfer" and tool.targets:
            params = {"type": "object", "properties": {
                "target": {"type": "string", "enum": sorted(tool.targets)}},
                "required": ["target"], "additionalProperties": False}
        elif getattr(tool, "dtmf_parameter", None):  # collected from the keypad instead
            props = {k: v for k, v in params.get("properties", {}).items()
                     if k != tool.dtmf_parameter}
            params = {**params, "properties": props,
                      "required": [r for r in params.get("required", [])
                                   if r != tool.dtmf_parameter]}
        options.append({
            "type": "object",
            "properties": {"action": {"const": tool.name}, "arguments": params},
            "required": ["action", "arguments"], "additionalProperties": False,
        })
    return {"anyOf": options}


def tool_prompt(tools: Sequence[Any]) -> str:
    """What the model is told about its tools and the reply format (appended to its
    instructions)."""
    lines = ["You talk with a caller on the phone. Reply with JSON only.",
             'To speak to the caller: {"action": "say", "text": "<one or two short sentences>"}',
             "To use a tool: {\"action\": \"<tool name>\", \"arguments\": {...}}",
             "Tools:"]
    for tool in tools:
        if tool.kind == "transfer" and tool.targets:
            args = '{"target": ' + " or ".join(f'"{t}"' for t in sorted(tool.targets)) + "}"
        else:
            props = (tool.parameters or {}).get("properties", {})
            args = "{" + ", ".join(f'"{k}": ...' for k in props
                                   if k != getattr(tool, "dtmf_parameter", None)) + "}"
        lines.append(f"- {tool.name}: {tool.description} Arguments: {args}")
    lines.append("Use a tool only when the caller asks for what it does; otherwise say "
                 "something.")
    return "\n".join(lines)


class ReplyStreamParser:
    """Incremental reader of the constrained JSON: yields the "say" text as it arrives and
    gives the tool call once the JSON is complete."""

    def __init__(self) -> None:
        self.raw = ""
        self._text_start: int | None = None  # index of the first char of the text value
        self._pos = 0  # next raw index to decode inside the text value
        self._done_text = False
        self._escape = ""

    def feed(self, piece: str) -> Iterator[str]:
        """Add generated characters; yield decoded pieces of the spoken text."""
        self.raw += piece
        if self._text_start is None:
            marker = '"text"'
            at = self.raw.find(marker)
            if at < 0 or '"action": "say"' not in self.raw.replace('":"', '": "'):
                return
            colon = self.raw.find('"', self.raw.find(":", at + len(marker)) + 1)
            if colon < 0:
                return
            self._text_start = self._pos = colon + 1
        out = []
        while not self._done_text and self._pos < len(self.raw):
            ch = self.raw[self._pos]
            if self._escape:
                self._escape += ch
                if self._escape.startswith("\\u") and len(self._escape) < 6:
                    self._pos += 1
                    continue
                out.append(json.loads(f'"{self._escape}"'))
                self._escape = ""
            elif ch == "\\":
                self._escape = ch
            elif ch == '"':
                self._done_text = True
            else:
                out.append(ch)
            self._pos += 1
        if out:
            yield "".join(out)

    def tool_call(self) -> ToolCallRequest | None:
        """The tool call, if the complete output is one (None for "say")."""
        data = json.loads(self.raw)
        if data.get("action") == SAY:
            return None
        return ToolCallRequest(str(data["action"]), dict(data.get("arguments") or {}))
