"""The sandbox's webhook receiver: stands in for the clinic's systems behind webhook tools.

Every request is checked against the Standard Webhooks signature the agent sends, kept (so
a report can show what reached the "calendar"), and answered with the JSON the scenario
file gives for that tool (``webhooks:``), or a plain confirmation.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from agent.tools.webhook import verify

DEFAULT_REPLIES: dict[str, Any] = {
    "book_appointment": {"booked": True, "time": "10:30"},
    "account_balance": {"balance": "42.50", "currency": "dollars"},
}
FALLBACK_REPLY: dict[str, Any] = {"ok": True}


@dataclass
class Received:
    """One request as it arrived."""

    tool: str
    arguments: dict[str, Any]
    signed: bool  # the signature matched the shared key
    at: float


@dataclass
class WebhookReceiver:
    """An aiohttp server on 127.0.0.1:``port``; the path names the tool."""

    port: int
    key: bytes
    replies: dict[str, Any] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        tool = request.match_info["tool"]
        body = await request.read()
        if request.method == "GET":
            payload = request.query_string.encode()
            arguments: dict[str, Any] = dict(request.query)
        else:
            payload = body
            try:
                arguments = json.loads(body or b"{}")
            except ValueError:
                return web.json_response({"error": "invalid json"}, status=400)
        signed = verify(self.key, dict(request.headers), payload, time.time())
        self.received.append(Received(tool, arguments, signed, time.time()))
        if not signed:
            return web.json_response({"error": "bad signature"}, status=401)
        reply = self.replies.get(tool, DEFAULT_REPLIES.get(tool, FALLBACK_REPLY))
        return web.json_response(reply)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tool}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def since(self, at: float) -> list[dict[str, Any]]:
        """Requests received at or after wall time ``at``, as JSON."""
        return [{"tool": r.tool, "arguments": r.arguments, "signed": r.signed}
                for r in self.received if r.at >= at]
