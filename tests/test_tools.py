"""Webhook tool calls against a real local HTTP server: signing, retries, deadlines."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from agent.tools.runner import ToolRunner
from agent.tools.spec import ToolCall, ToolSpec, schema_errors
from agent.tools.webhook import (
    AMENDS_HEADER,
    FRESHNESS,
    REQUEST_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    call_webhook,
    encode_body,
    sign,
    verify,
)

SECRET = b"test-secret"
BOOKING = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 40},
        "date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
        "people": {"type": "integer", "minimum": 1, "maximum": 8},
        "seating": {"type": "string", "enum": ["inside", "terrace"]},
    },
    "required": ["name", "date"],
    "additionalProperties": False,
}
GOOD = {"name": "Ada Müller", "date": "2025-03-14", "people": 2}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Server:
    """A local aiohttp app whose single route runs ``handler``; records what it received."""

    handler: Handler | None = None
    requests: list[tuple[web.Request, bytes]] = field(default_factory=list)
    url: str = ""

    async def _route(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request, await request.read()))
        assert self.handler is not None
        return await self.handler(request)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server()
    app = web.Application()
    app.router.add_route("*", "/hook", state._route)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"http://127.0.0.1:{port}/hook"
    yield state
    await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def booking(url: str, **changes: Any) -> ToolSpec:
    fields: dict[str, Any] = {"name": "book_table", "description": "Book a table",
                              "parameters": BOOKING, "url": url, "secret": SECRET}
    return ToolSpec(**(fields | changes))


async def test_success_signed_and_valid(server: Server,
                                        session: aiohttp.ClientSession) -> None:
    async def handler(request: web.Request) -> web.Response:
        body = await request.read()
        if not verify(SECRET, request.headers, body, time.time()):
            return web.json_response({"error": "bad signature"}, status=401)
        arguments = json.loads(body)
        assert schema_errors(BOOKING, arguments) == []
        return web.json_response({"booked": True, "for": arguments["name"]})

    server.handler = handler
    result = await call_webhook(booking(server.url), GOOD, session)
    assert result.ok, result.error
    assert result.data == {"booked": True, "for": "Ada Müller"}
    assert result.attempts == 1 and result.error is None and result.latency < 1
    request, body = server.requests[0]
    assert request.method == "POST"
    assert request.headers["Content-Type"] == "application/json"
    assert body == encode_body(GOOD)
    assert body == b'{"date":"2025-03-14","name":"Ada M\xc3\xbcller","people":2}'
    assert abs(int(request.headers[TIMESTAMP_HEADER]) - time.time()) < 5
    assert len(request.headers[REQUEST_ID_HEADER]) == 4 + 32
    assert request.headers[SIGNATURE_HEADER].startswith("v1,")


async def test_server_errors_are_retried_then_fail_within_deadline(
        server: Server, session: aiohttp.ClientSession) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=500, text="boom")

    server.handler = handler
    start = time.monotonic()
    result = await call_webhook(booking(server.url, retries=3), GOOD, session, deadline=2.0)
    elapsed = time.monotonic() - start
    assert not result.ok and result.error == "http 500"
    assert result.attempts == len(server.requests) == 4  # first try and three retries
    assert elapsed < 2.0
    # the request id is the same on every attempt so the receiver can drop duplicates
    assert len({r.headers[REQUEST_ID_HEADER] for r, _ in server.requests}) == 1


async def test_client_errors_are_not_retried(server: Server,
                                             session: aiohttp.ClientSession) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=404)

    server.handler = handler
    result = await call_webhook(booking(server.url), GOOD, session)
    assert not result.ok and result.error == "http 404" and result.attempts == 1


async def test_slow_server_times_out_within_deadline(server: Server,
                                                     session: aiohttp.ClientSession) -> None:
    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({})

    server.handler = handler
    start = time.monotonic()
    result = await call_webhook(booking(server.url, timeout=5.0), GOOD, session, deadline=1.0)
    elapsed = time.monotonic() - start
    assert not result.ok and result.error == "timeout" and result.attempts == 1
    assert 0.9 < elapsed < 1.2 and 0.9 < result.latency < 1.2

    start = time.monotonic()
    result = await call_webhook(booking(server.url, timeout=0.3), GOOD, session, deadline=2.0)
    assert result.error == "timeout" and 0.25 < time.monotonic() - start < 0.5


async def test_refused_connection_fails_quickly(session: aiohttp.ClientSession) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and is closed now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.monotonic()
    result = await call_webhook(booking(f"http://127.0.0.1:{port}/hook"), GOOD, session)
    assert not result.ok and result.error == "refused"
    assert result.attempts == 2  # one retry after a short backoff
    assert time.monotonic() - start < 0.5


async def test_invalid_json_answer(server: Server, session: aiohttp.ClientSession) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="<html>not json</html>", content_type="text/html")

    server.handler = handler
    result = await call_webhook(booking(server.url), GOOD, session)
    assert not result.ok and result.error == "invalid json" and result.attempts == 1


async def test_empty_answer_is_success_without_data(server: Server,
                                                    session: aiohttp.ClientSession) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=204)

    server.handler = handler
    result = await call_webhook(booking(server.url), GOOD, session)
    assert result.ok and result.data is None


@pytest.mark.parametrize(("arguments", "reason"), [
    ({"date": "2025-03-14"}, "invalid arguments: name: missing"),
    ({"name": "Ada", "date": "14.3.2025"}, "invalid arguments: date: does not match the pattern"),
    ({"name": "Ada", "date": "2025-03-14", "people": 9},
     "invalid arguments: people: above the maximum"),
    ({"name": "Ada", "date": "2025-03-14", "people": True},
     "invalid arguments: people: expected integer"),
    ({"name": "Ada", "date": "2025-03-14", "seating": "roof"},
     "invalid arguments: seating: not one of the allowed values"),
    ({"name": "Ada", "date": "2025-03-14", "card": "4111"},
     "invalid arguments: card: not allowed"),
    ({"name": "", "date": "2025-03-14"}, "invalid arguments: name: too short"),
])
async def test_invalid_arguments_rejected_before_any_request(
        server: Server, session: aiohttp.ClientSession, arguments: dict[str, Any],
        reason: str) -> None:
    result = await call_webhook(booking(server.url), arguments, session)
    assert not result.ok and result.error == reason
    assert result.attempts == 0 and server.requests == []


async def test_get_sends_arguments_as_signed_query(server: Server,
                                                   session: aiohttp.ClientSession) -> None:
    async def handler(request: web.Request) -> web.Response:
        signed = request.query_string.encode()
        assert verify(SECRET, request.headers, signed, time.time())
        return web.json_response({"open": "9-17", "day": request.query["day"]})

    server.handler = handler
    spec = ToolSpec("check_opening_hours", "Opening hours of a day",
                    {"type": "object", "properties": {
                        "day": {"type": "string", "enum": ["monday", "saturday"]},
                        "week": {"type": "integer"}}, "required": ["day"]},
                    url=server.url, method="GET", secret=SECRET,
                    headers={"Authorization": "Bearer abc"})
    result = await call_webhook(spec, {"week": 12, "day": "saturday"}, session)
    assert result.ok, result.error
    assert result.data == {"open": "9-17", "day": "saturday"}
    request, body = server.requests[0]
    assert request.method == "GET" and body == b""
    assert request.query_string == "day=saturday&week=12"
    assert request.headers["Authorization"] == "Bearer abc"


def test_verify_accepts_only_fresh_exact_requests() -> None:
    body = b'{"a":1}'
    now = 1_800_000_000
    headers = {REQUEST_ID_HEADER: "msg_1", TIMESTAMP_HEADER: str(now),
               SIGNATURE_HEADER: sign(SECRET, "msg_1", now, body)}
    assert headers[SIGNATURE_HEADER].startswith("v1,")
    assert verify(SECRET, headers, body, now + 10)
    assert not verify(SECRET, headers, body + b" ", now)  # another body
    assert not verify(b"other", headers, body, now)  # another key
    # replayed later: the same bytes and headers, past the freshness window
    assert not verify(SECRET, headers, body, now + FRESHNESS + 1)
    # re-timestamped to look fresh: the signature covers the timestamp
    assert not verify(SECRET, headers | {TIMESTAMP_HEADER: str(now + 1000)}, body, now + 1000)
    # another id on the same body (to dodge a receiver's duplicate check)
    assert not verify(SECRET, headers | {REQUEST_ID_HEADER: "msg_2"}, body, now)
    assert not verify(SECRET, headers | {SIGNATURE_HEADER: ""}, body, now)
    assert not verify(SECRET, headers | {TIMESTAMP_HEADER: "soon"}, body, now)
    # several signatures (key rotation): any one may match
    rotated = headers | {SIGNATURE_HEADER: "v1,AAAA " + headers[SIGNATURE_HEADER]}
    assert verify(SECRET, rotated, body, now)


async def test_retries_are_signed_afresh_with_the_same_id(
        server: Server, session: aiohttp.ClientSession) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=500, text="boom")

    server.handler = handler
    await call_webhook(booking(server.url, retries=1), GOOD, session, deadline=2.0)
    assert len(server.requests) == 2
    for request, body in server.requests:
        assert verify(SECRET, request.headers, body, time.time())


def test_schema_errors_nested() -> None:
    schema = {"type": "object", "properties": {
        "items": {"type": "array", "minItems": 1, "items": {
            "type": "object", "properties": {"qty": {"type": "number", "minimum": 0}},
            "required": ["qty"]}},
        "gift": {"type": "boolean"}}}
    assert schema_errors(schema, {"items": [{"qty": 1.5}], "gift": False}) == []
    assert schema_errors(schema, {"items": []}) == ["items: too few items"]
    assert schema_errors(schema, {"items": [{"qty": -1}, {}]}) == [
        "items[0].qty: below the minimum", "items[1].qty: missing"]
    assert schema_errors(schema, {"gift": 0}) == ["gift: expected boolean"]
    assert schema_errors(schema, []) == ["arguments: expected object"]


async def test_a_correction_names_the_request_it_replaces(server: Server) -> None:
    async def quiet(_: Any) -> None:
        return None

    async def booked(_: web.Request) -> web.Response:
        return web.json_response({"booked": True})

    server.handler = booked
    tools = ToolRunner({"book_table": booking(server.url)}, control=None,  # type: ignore
                       say=quiet, speak=quiet, collect_digits=quiet)  # type: ignore
    first = await tools.run(ToolCall("book_table", GOOD))
    again = await tools.run(ToolCall("book_table", {**GOOD, "people": 3}, amends=True))
    await tools.close()
    assert first.ok and again.ok
    (one, _), (two, _) = server.requests
    assert AMENDS_HEADER not in one.headers
    assert two.headers[AMENDS_HEADER] == one.headers[REQUEST_ID_HEADER]
