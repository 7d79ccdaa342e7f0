"""The remote language model and its fallback to the local one, on fakes and virtual time."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from aiohttp import web
from fakes import FakeChat
from prometheus_client import CollectorRegistry, generate_latest

from agent.speech.fallback_chat import FallbackChat, RemoteModels
from agent.speech.remote_chat import (
    RemoteBroken,
    RemoteChatModel,
    RemoteModel,
    RemoteUnavailable,
)
from virtual_time import VirtualClock

SETTINGS = RemoteModel(url="http://10.0.0.5:8080/v1", model="m", timeout=1.5,
                       health_interval=5.0)
HELLO = [{"role": "user", "content": "hello"}]


class FakeRemote:
    """A remote model on the virtual clock: answers, refuses, hangs or breaks off."""

    def __init__(self, clock: VirtualClock, answer: str = "Remote says hi.") -> None:
        self.remote = SETTINGS
        self.clock = clock
        self.answer = answer
        self.mode = "answer"  # answer | refuse | hang | break | slow
        self.delay = 0.0  # seconds before the first piece
        self.healthy = True
        self.probes: list[float] = []
        self.requests = 0

    async def stream(self, messages: Sequence[Any], pause=None,
                     schema: dict[str, Any] | None = None) -> AsyncIterator[str]:
        self.requests += 1
        if self.mode == "refuse":
            raise RemoteUnavailable("ClientConnectorError")
        if self.delay:
            await self.clock.sleep_until(self.clock.now() + self.delay)
        if self.mode == "hang":
            await asyncio.Event().wait()
        words = self.answer.split(" ")
        for i, word in enumerate(words):
            if self.mode == "break" and i == 2:
                await asyncio.Event().wait()  # stalls mid-answer
            yield word + " "
            await asyncio.sleep(0)

    async def probe(self) -> bool:
        self.probes.append(self.clock.now())
        return self.healthy


async def collect(chat: FallbackChat, schema: dict[str, Any] | None = None) -> str:
    return "".join([p async for p in chat.stream(HELLO, schema=schema)])


async def run_with(clock: VirtualClock, coro, step: float = 0.1, limit: float = 60.0):
    """Run ``coro`` while advancing virtual time in steps."""
    task = asyncio.ensure_future(coro)
    spent = 0.0
    while not task.done() and spent < limit:
        for _ in range(10):
            await asyncio.sleep(0)
        if task.done():
            break
        await clock.advance(step)
        spent += step
    return await task


async def test_remote_answers_while_up() -> None:
    clock = VirtualClock()
    remote, local = FakeRemote(clock), FakeChat("Local says hi.")
    chat = FallbackChat(remote, local, clock)
    assert await run_with(clock, collect(chat)) == "Remote says hi. "
    assert not local.seen and chat.up and chat.counts == {"remote": 1}


async def test_refused_turn_goes_local_and_health_check_brings_remote_back() -> None:
    clock = VirtualClock()
    remote, local = FakeRemote(clock), FakeChat("Local says hi.")
    chat = FallbackChat(remote, local, clock)
    remote.mode, remote.healthy = "refuse", False
    assert await run_with(clock, collect(chat)) == "Local says hi. "
    assert not chat.up and chat.counts == {"failed": 1, "local": 1}
    # while down, turns go straight to the local model (no request to the remote)
    assert await run_with(clock, collect(chat)) == "Local says hi. "
    assert remote.requests == 1
    await clock.advance(11)
    assert remote.probes == [5.0, 10.0]  # every health_interval while down
    remote.mode, remote.healthy = "answer", True
    await clock.advance(5)
    assert chat.up and remote.probes[-1] == pytest.approx(15.0)
    await clock.advance(20)
    assert len(remote.probes) == 3  # the health check stops once the remote is up
    assert await run_with(clock, collect(chat)) == "Remote says hi. "
    assert chat.counts == {"failed": 1, "local": 2, "remote": 1}
    await chat.close()


async def test_first_piece_later_than_timeout_goes_local_at_the_timeout() -> None:
    clock = VirtualClock()
    remote, local = FakeRemote(clock), FakeChat("Local says hi.")
    remote.delay = 3.0
    chat = FallbackChat(remote, local, clock)
    task = asyncio.ensure_future(collect(chat))
    for _ in range(10):  # the request starts at 0 s
        await asyncio.sleep(0)
    await clock.advance(1.4)
    assert not task.done() and not local.seen
    await clock.advance(0.2)  # 1.6 s: past the 1.5 s timeout, the local model answers
    for _ in range(20):
        await asyncio.sleep(0)
    assert task.done() and task.result() == "Local says hi. "
    assert chat.counts == {"failed": 1, "local": 1}
    await chat.close()


async def test_a_first_piece_within_the_timeout_stays_remote() -> None:
    clock = VirtualClock()
    remote = FakeRemote(clock)
    remote.delay = 1.4
    chat = FallbackChat(remote, FakeChat(), clock)
    assert await run_with(clock, collect(chat)) == "Remote says hi. "
    assert chat.up


async def test_hanging_remote_times_out() -> None:
    clock = VirtualClock()
    remote, local = FakeRemote(clock), FakeChat("Local.")
    remote.mode = "hang"
    chat = FallbackChat(remote, local, clock)
    assert await run_with(clock, collect(chat)) == "Local. "
    assert clock.now() == pytest.approx(1.5, abs=0.11)
    await chat.close()


async def test_break_mid_answer_ends_the_answer_with_what_was_said() -> None:
    clock = VirtualClock()
    remote, local = FakeRemote(clock, "One two three four."), FakeChat("Local.")
    remote.mode = "break"
    chat = FallbackChat(remote, local, clock)
    assert await run_with(clock, collect(chat)) == "One two "
    assert not local.seen  # the local model does not start the answer again
    assert not chat.up and chat.counts == {"broken": 1}
    assert await run_with(clock, collect(chat)) == "Local. "  # the next turn goes local
    await chat.close()


async def test_json_answer_is_collected_whole_and_a_break_falls_back() -> None:
    clock = VirtualClock()
    remote, local = FakeRemote(clock, '{"a": 1}'), FakeChat('{"b": 2}')
    chat = FallbackChat(remote, local, clock)
    pieces = await run_with(clock, _pieces(chat, {"type": "object"}))
    assert pieces == ['{"a": 1} ']  # one piece: the whole JSON text
    remote.answer, remote.mode = '{"a": 1, "c": 3}', "break"
    assert json.loads(await run_with(clock, collect(chat, {"type": "object"}))) == {"b": 2}
    assert chat.counts == {"remote": 1, "failed": 1, "local": 1}
    await chat.close()


async def _pieces(chat: FallbackChat, schema: dict[str, Any]) -> list[str]:
    return [p async for p in chat.stream(HELLO, schema=schema)]


async def test_no_local_model_raises_so_the_caller_hears_the_error_phrase() -> None:
    clock = VirtualClock()
    remote = FakeRemote(clock)
    remote.mode, remote.healthy = "refuse", False
    chat = FallbackChat(remote, None, clock)
    with pytest.raises(RemoteUnavailable):
        await run_with(clock, collect(chat))
    with pytest.raises(RemoteUnavailable):  # still down: no request, the same error
        await run_with(clock, collect(chat))
    assert remote.requests == 1 and chat.counts == {"failed": 1, "unanswered": 2}
    await chat.close()


async def test_closing_early_closes_the_remote_stream() -> None:
    clock = VirtualClock()
    remote = FakeRemote(clock, "a b c d e f")
    chat = FallbackChat(remote, FakeChat(), clock)
    stream = chat.stream(HELLO)
    assert await anext(stream) == "a "
    await stream.aclose()  # barge-in
    assert chat.up and not chat.counts


async def test_closing_stops_the_health_checks() -> None:
    models = RemoteModels()
    chat = models.chat(SETTINGS, None)
    chat.up = False
    chat._watch()
    await models.close()
    assert chat._probe is not None and chat._probe.cancelled()


def test_a_local_model_that_cannot_load_leaves_the_remote_alone() -> None:
    def broken() -> FakeChat:
        raise FileNotFoundError("language model /models/llm.gguf not found")

    chat = RemoteModels().chat(SETTINGS, broken)  # type: ignore[arg-type]
    assert chat.local is None and chat.up
    unwanted = RemoteModels().chat(dataclasses.replace(SETTINGS, local_fallback=False),
                                   broken)  # type: ignore[arg-type]
    assert unwanted.local is None  # not even loaded


def test_metrics_count_outcomes_by_server() -> None:
    models = RemoteModels()
    chat = models.chat(SETTINGS, lambda: FakeChat())  # type: ignore[arg-type, return-value]
    assert models.chat(SETTINGS, lambda: FakeChat()) is not chat  # another local model
    chat.counts.update({"remote": 3, "failed": 1, "local": 1})
    chat.up = False
    registry = CollectorRegistry()
    registry.register(models)
    text = generate_latest(registry).decode()
    assert ('switchboard_remote_llm_turns_total{outcome="remote",server="10.0.0.5:8080"} 3.0'
            in text)
    assert 'switchboard_remote_llm_up{server="10.0.0.5:8080"} 0.0' in text
    assert SETTINGS.where == "10.0.0.5:8080"
    assert RemoteModel("https://llm.example").where == "llm.example:443"


# -- the HTTP side against a small server of our own (the real server: test_remote_llm) ----

async def test_sse_stream_schema_form_and_bearer_token(unused_tcp_port: int) -> None:
    seen: list[dict[str, Any]] = []
    fail_all = asyncio.Event()

    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        seen.append({"auth": request.headers.get("Authorization"), **body})
        if fail_all.is_set():
            return web.json_response({"error": "out of memory"}, status=500)
        if body.get("response_format", {}).get("type") == "json_schema":
            return web.json_response({"detail": "unsupported"}, status=422)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for piece in ("Hel", "lo", None):
            delta = {"content": piece} if piece else {}
            await response.write(b": ping\r\n\r\n" + b"data: " + json.dumps(
                {"choices": [{"delta": delta}]}).encode() + b"\r\n\r\n")
        await response.write(b"data: [DONE]\r\n\r\n")
        return response

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"data": []})

    async def cut_off(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: {"choices": [{"delta": {"content": "Hel"}}]}\n\n')
        return response  # the server goes away: no finish reason, no [DONE]

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_post("/cut/v1/chat/completions", cut_off)
    app.router.add_get("/v1/models", models)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    base = f"http://127.0.0.1:{unused_tcp_port}/v1"
    model = RemoteChatModel(RemoteModel(base + "/", api_key="k3y-k3y-k3y"))
    broken = RemoteChatModel(RemoteModel(base))
    schema = {"type": "object"}
    try:
        assert await model.probe()
        assert "".join([p async for p in model.stream(HELLO)]) == "Hello"
        assert seen[0]["auth"] == "Bearer k3y-k3y-k3y" and seen[0]["stream"] is True
        assert seen[0]["messages"] == HELLO and "response_format" not in seen[0]
        assert "".join([p async for p in model.stream(HELLO, schema=schema)]) == "Hello"
        assert [s["response_format"]["type"] for s in seen[1:]] == ["json_schema",
                                                                     "json_object"]
        assert seen[2]["response_format"]["schema"] == schema
        [p async for p in model.stream(HELLO, schema=schema)]
        assert seen[3]["response_format"]["type"] == "json_object"  # remembered
        seen.clear()
        fail_all.set()  # a server failing everything: the OpenAI form stays the first choice
        with pytest.raises(RemoteUnavailable, match="HTTP 500"):
            [p async for p in broken.stream(HELLO, schema=schema)]
        assert broken.schema_style == "json_schema" and len(seen) == 2
        cut = RemoteChatModel(RemoteModel(f"http://127.0.0.1:{unused_tcp_port}/cut/v1"))
        pieces: list[str] = []
        with pytest.raises(RemoteBroken, match="EOFError"):
            async for piece in cut.stream(HELLO):
                pieces.append(piece)
        assert pieces == ["Hel"]
        await cut.close()
    finally:
        await model.close()
        await broken.close()
        await runner.cleanup()
    refused = RemoteChatModel(RemoteModel(base))
    with pytest.raises(RemoteUnavailable):
        [p async for p in refused.stream(HELLO)]
    assert not await refused.probe()
    await refused.close()


def test_a_server_that_refuses_at_warm_up_starts_out_down(unused_tcp_port: int) -> None:
    remote = RemoteChatModel(RemoteModel(f"http://127.0.0.1:{unused_tcp_port}/v1"))
    local = FakeChat()
    chat = FallbackChat(remote, local)
    chat.warm(HELLO)  # type: ignore[arg-type]
    assert not chat.up
