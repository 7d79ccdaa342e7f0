"""Carrying out the tools an agent calls: webhooks and the built-ins (transfer, hangup,
keypad tones).

Every failure is spoken: a webhook that times out, answers 500, returns garbage or cannot
be reached gives the caller the tool's failure phrase within two seconds, and the call goes
on. Results of successful webhooks go back to the model as JSON.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from agent.tools.spec import ToolCall, ToolSpec
from agent.tools.webhook import ToolResult, call_webhook

log = logging.getLogger(__name__)
WEBHOOK_DEADLINE = 2.0  # the failure phrase must start within 2 s of the decision


def fill(template: str, data: Any) -> str:
    """``template`` with {field} replaced from a JSON object (missing fields left blank)."""
    values = data if isinstance(data, dict) else {}
    return re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), "")), template)


class CallControl(Protocol):
    """What the call lets tools do to it."""

    async def transfer(self, target: str, attended: bool = False) -> bool: ...

    async def send_dtmf(self, digits: str) -> None: ...


@dataclass
class ToolOutcome:
    """What happened, for the history (what the model sees next) and the call record."""

    name: str
    arguments: dict[str, Any]
    ok: bool
    result: Any = None
    error: str | None = None
    latency_ms: float = 0.0
    ends_call: bool = False  # transfer done or hangup requested: no more answers
    for_model: str = ""  # the tool result as the model will read it
    spoken: str = ""  # the result already said to the caller (result_phrase)


@dataclass
class ToolRunner:
    """Runs one agent's tools for one call."""

    tools: dict[str, ToolSpec]
    control: CallControl
    say: Callable[[str], Awaitable[None]]  # speak a fixed phrase and wait until heard
    speak: Callable[[str], Awaitable[None]]  # synthesize any text now and wait until heard
    collect_digits: Callable[[ToolSpec], Awaitable[str]]
    session_factory: Callable[[], aiohttp.ClientSession] = aiohttp.ClientSession
    _session: aiohttp.ClientSession | None = field(default=None, repr=False)
    _last_ids: dict[str, str] = field(default_factory=dict)  # tool → its last ok webhook-id

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def run(self, call: ToolCall, acting: Callable[[], None] = lambda: None
                  ) -> ToolOutcome:
        """Carry out one call of a declared tool (the planner only chooses those).
        ``acting`` is called once it does what cannot be taken back (a request sent, keys
        asked for, the call handed on): a transfer's wait phrase comes before that, so
        words over it still belong to the caller's turn."""
        name, arguments = call.name, call.arguments
        tool = self.tools[name]
        began = time.monotonic()
        outcome = ToolOutcome(name, dict(arguments), ok=False)
        try:
            if tool.kind == "transfer":
                await self._transfer(tool, outcome, acting)
            elif tool.kind == "hangup":
                acting()
                outcome.ok, outcome.ends_call = True, True
            elif tool.kind == "send_dtmf":
                digits = str(arguments.get("digits", ""))
                acting()
                await self.control.send_dtmf(digits)
                outcome.ok = True
            else:
                acting()
                await self._webhook(tool, outcome, call.amends)
        finally:
            if not outcome.latency_ms:  # webhooks: the request alone, not the phrase after
                outcome.latency_ms = (time.monotonic() - began) * 1000
        log.info("tool %s: %s in %.0f ms", name, "ok" if outcome.ok else outcome.error,
                 outcome.latency_ms)
        outcome.for_model = json.dumps(
            {"tool": name, "ok": outcome.ok, "result": outcome.result} if outcome.ok else
            {"tool": name, "ok": False, "error": outcome.error}, separators=(",", ":"))
        return outcome

    async def _transfer(self, tool: ToolSpec, outcome: ToolOutcome,
                        acting: Callable[[], None]) -> None:
        label = str(outcome.arguments.get("target", ""))
        target = tool.targets.get(label) or next(iter(tool.targets.values()))
        if tool.wait_phrase:
            await self.say(tool.wait_phrase)
        acting()
        outcome.ok = await self.control.transfer(target, attended=tool.mode == "attended")
        outcome.ends_call = outcome.ok
        outcome.result = {"transferred_to": label or target}
        if not outcome.ok:
            outcome.error = "transfer failed"
            await self.say(tool.failure_phrase)

    async def _webhook(self, tool: ToolSpec, outcome: ToolOutcome, amends: bool = False
                       ) -> None:
        if tool.dtmf_parameter:
            outcome.arguments[tool.dtmf_parameter] = await self.collect_digits(tool)
        if self._session is None:
            self._session = self.session_factory()
        waiting = asyncio.ensure_future(self.say(tool.wait_phrase)) if tool.wait_phrase \
            else None
        result: ToolResult = await call_webhook(
            tool, outcome.arguments, self._session, deadline=WEBHOOK_DEADLINE,
            amends=self._last_ids.get(tool.name, "") if amends else "")
        if result.ok:
            self._last_ids[tool.name] = result.request_id
        if waiting is not None:
            await waiting
        outcome.ok, outcome.result, outcome.error = result.ok, result.data, result.error
        outcome.latency_ms = result.latency * 1000
        if not result.ok:
            await self.say(tool.failure_phrase)
        elif tool.result_phrase:
            outcome.spoken = fill(tool.result_phrase, result.data)
            await self.speak(outcome.spoken)
