"""The local HTTP API for placing calls: ``POST /calls``, ``GET /calls/{id}``, ``GET /calls``.

Loopback by default; every request carries ``Authorization: Bearer <token>`` (the token
is a generated secret file, mode 0600, that the control plane reads). Answers never hold
numbers or variables: a job is its id, agent, state and outcome.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from aiohttp import web

from agent.outbound.dialer import Dialer, OutboundRequest

log = logging.getLogger(__name__)
MAX_BODY = 16 * 1024


class OutboundApi:
    """Serves the dialer over HTTP on ``address:port``."""

    def __init__(self, dialer: Dialer, token: str, address: str, port: int) -> None:
        self.dialer = dialer
        self.token = token
        self.address = address
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._auth])
        app.router.add_post("/calls", self._place)
        app.router.add_get("/calls", self._list)
        app.router.add_get("/calls/{id}", self._show)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.address, self.port).start()
        except OSError as exc:
            log.error("outbound API not started on %s:%d: %s", self.address, self.port, exc)
        else:
            log.info("outbound API on %s:%d", self.address, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        given = request.headers.get("Authorization", "")
        expected = f"Bearer {self.token}"
        if not self.token or not hmac.compare_digest(given.encode(), expected.encode()):
            return _json({"error": "missing or wrong bearer token"}, 401)
        return await handler(request)

    async def _place(self, request: web.Request) -> web.Response:
        if self.dialer.daemon.settings.outbound is None:  # a reload removed the section
            return _json({"error": "outbound calls are off in this configuration"}, 503)
        try:
            body = await request.json()
            call = parse_request(body)
            settings = self.dialer.settings
            call.validate(settings, self.dialer.daemon.settings.agents)
        except (ValueError, TypeError) as exc:
            return _json({"error": str(exc)}, 400)
        job = self.dialer.submit(call)
        return _json(job.public(), 409 if job.outcome == "refused" else 202)

    async def _show(self, request: web.Request) -> web.Response:
        job = self.dialer.jobs.get(request.match_info["id"])
        if job is None:
            return _json({"error": "no such call"}, 404)
        return _json(job.public())

    async def _list(self, request: web.Request) -> web.Response:
        return _json({"calls": [j.public() for j in self.dialer.jobs.values()]})


def parse_request(body: Any) -> OutboundRequest:
    """A request body as an OutboundRequest (ValueError says which field is wrong)."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    unknown = set(body) - {"number", "phone", "agent", "trunk", "variables", "timezone",
                           "retry"}
    if unknown:
        raise ValueError(f"unknown field(s): {sorted(unknown)}")
    if ("number" in body) == ("phone" in body):
        raise ValueError("give exactly one of number / phone")
    variables = body.get("variables") or {}
    if not isinstance(variables, dict) or not all(isinstance(v, str | int | float)
                                                   for v in variables.values()):
        raise ValueError("variables must be an object of names to text")
    for name in ("number", "phone", "agent", "trunk", "timezone"):
        if name in body and body[name] is not None and not isinstance(body[name], str):
            raise ValueError(f"{name} must be text")
    if not isinstance(body.get("agent"), str):
        raise ValueError("agent is required")
    return OutboundRequest(
        number=body.get("number") or "", agent=body["agent"], trunk=body.get("trunk"),
        phone=body.get("phone"), variables={str(k): str(v) for k, v in variables.items()},
        timezone=body.get("timezone"), retry=bool(body.get("retry", True)))


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json")
