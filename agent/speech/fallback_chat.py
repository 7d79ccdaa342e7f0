"""The remote language model first, the local one when the remote is down.

A turn goes to the remote model while it is up. If it does not start answering within its
timeout (refused, HTTP error, no first piece in time), the turn is answered by the local
model instead and the remote is marked down; while it is down, turns go straight to the
local model, and a health check every ``health_interval`` seconds marks it up again.

If the remote stops in the middle of a spoken answer (no piece for ``timeout`` seconds,
connection lost), the answer ends there: what was already said stays said and in the
history, nothing is repeated by the local model, and the next turn goes local. A JSON
answer (``schema``) is not spoken: it is collected whole first, so a break falls back to
the local model for the whole answer. Without a local model (``local_fallback: false``,
or it could not be loaded), a turn the remote cannot answer raises ``RemoteUnavailable``
and the caller hears the agent's error phrase.

Logs name the server (host:port) and the kind of failure, never conversation text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Protocol

from agent.clock import Clock, LoopClock
from agent.speech.chat_model import ChatModel, Message
from agent.speech.remote_chat import (
    RemoteBroken,
    RemoteChatModel,
    RemoteModel,
    RemoteUnavailable,
)

log = logging.getLogger(__name__)

# What happened to turns meant for the remote model (the ``outcome`` label in /metrics):
#   remote    answered by the remote model
#   failed    the remote did not start in time or refused; the turn went local
#   broken    the remote stopped in the middle of an answer (the answer ended there)
#   local     answered by the local model (after a failure, or while the remote is down)
#   unanswered  no local model to fall back to: the caller heard the error phrase
OUTCOMES = ("remote", "failed", "broken", "local", "unanswered")


class Remote(Protocol):
    """What the fallback needs of a remote model: a chat model with a health check."""

    remote: RemoteModel

    def stream(self, messages: Sequence[Message], pause: threading.Event | None = None,
               schema: dict[str, Any] | None = None) -> AsyncIterator[str]: ...

    async def probe(self) -> bool: ...


class Deadline(Exception):
    """No piece within the remote model's timeout."""


async def next_within(it: AsyncIterator[str], clock: Clock, deadline: float) -> str:
    """The next piece of ``it``, or ``Deadline`` once ``clock`` passes ``deadline``;
    ``StopAsyncIteration`` at the end."""
    piece = asyncio.ensure_future(anext(it))
    timer = asyncio.ensure_future(clock.sleep_until(deadline))
    try:
        await asyncio.wait({piece, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
        if not piece.done():
            piece.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await timer
    if not piece.done() or piece.cancelled():
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await piece
        raise Deadline
    return piece.result()


class FallbackChat:
    """A ``ChatModel``: the remote model while it answers, else the local one (if any)."""

    def __init__(self, remote: Remote, local: ChatModel | None,
                 clock: Clock | None = None) -> None:
        self.remote = remote
        self.local = local
        self.clock = clock or LoopClock()
        self.settings = remote.remote
        self.up = True
        self.counts: Counter[str] = Counter()
        self._probe: asyncio.Task[None] | None = None

    def warm(self, messages: Sequence[Message]) -> None:
        """Blocking: warm the local model, and ask the remote one to evaluate the prompt
        (a remote that does not answer starts out down)."""
        if self.local is not None:
            self.local.warm(messages)  # type: ignore[attr-defined]
        warm = getattr(self.remote, "warm", None)
        if warm is not None and not warm(messages, max(self.settings.timeout, 5.0)):
            self.up = False

    async def stream(self, messages: Sequence[Message], pause: threading.Event | None = None,
                     schema: dict[str, Any] | None = None) -> AsyncIterator[str]:
        if self.up:
            try:
                async for piece in self._remote(messages, schema):
                    yield piece
                self.counts["remote"] += 1
                return
            except RemoteBroken as exc:
                self._down("broken", exc)
                return  # the answer ends with what was said
            except RemoteUnavailable as exc:
                self._down("failed", exc)
        else:
            self._watch()
        if self.local is None:
            self.counts["unanswered"] += 1
            raise RemoteUnavailable(f"remote language model at {self.settings.where} is down "
                                    "and there is no local model")
        self.counts["local"] += 1
        async for piece in self.local.stream(messages, pause=pause, schema=schema):
            yield piece

    async def _remote(self, messages: Sequence[Message],
                      schema: dict[str, Any] | None) -> AsyncIterator[str]:
        """The remote answer, each piece within the timeout; a JSON answer whole."""
        it = aiter(self.remote.stream(messages, schema=schema))
        timeout = self.settings.timeout
        collected: list[str] = []
        started = False
        try:
            while True:
                try:
                    piece = await next_within(it, self.clock, self.clock.now() + timeout)
                except StopAsyncIteration:
                    break
                except Deadline:
                    kind = RemoteBroken if started else RemoteUnavailable
                    raise kind(f"nothing within {timeout:g} s") from None
                except RemoteBroken as exc:
                    if schema is None:
                        raise
                    raise RemoteUnavailable(str(exc)) from exc
                except (RemoteUnavailable, asyncio.CancelledError):
                    raise
                except Exception as exc:  # a fault of ours or the server's: not fatal
                    kind = RemoteBroken if started and schema is None else RemoteUnavailable
                    raise kind(type(exc).__name__) from exc
                if schema is None:
                    started = True
                    yield piece
                else:
                    collected.append(piece)
            if collected:
                yield "".join(collected)
        finally:
            with contextlib.suppress(Exception):
                await it.aclose()  # type: ignore[attr-defined]

    def _down(self, outcome: str, exc: Exception) -> None:
        self.counts[outcome] += 1
        if self.up:
            log.warning("remote language model at %s is down (%s: %s); turns go to the %s "
                        "until it answers its health check", self.settings.where,
                        type(exc).__name__, str(exc)[:80],
                        "local model" if self.local is not None else "error phrase")
        self.up = False
        self._watch()

    def _watch(self) -> None:
        """Start the health check, unless it runs already (it ends when the remote is up).
        The task belongs to this object and is kept here."""
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._check_health())

    async def _check_health(self) -> None:
        interval = self.settings.health_interval
        while not self.up:
            await self.clock.sleep_until(self.clock.now() + interval)
            if await self.remote.probe():
                self.up = True
                log.info("remote language model at %s answers again; turns go to it",
                         self.settings.where)

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe


class RemoteModels:
    """Every agent's remote-backed model, one per (server, local model), shared by agents
    alike; also a Prometheus collector of their turn counts."""

    def __init__(self) -> None:
        self._chats: dict[tuple[RemoteModel, object], FallbackChat] = {}
        self._lock = threading.Lock()

    def chat(self, remote: RemoteModel, local: Callable[[], ChatModel] | None) -> FallbackChat:
        """The fallback chat for ``remote``; ``local`` loads the local model (None: none)."""
        model = None
        if local is not None and remote.local_fallback:
            try:
                model = local()
            except Exception as exc:  # the remote model can still serve
                log.warning("the local language model could not be loaded (%s): while the "
                            "remote one at %s is down, callers hear the error phrase",
                            type(exc).__name__, remote.where)
        key = (remote, id(model))
        with self._lock:
            if key not in self._chats:
                self._chats[key] = FallbackChat(RemoteChatModel(remote), model)
            return self._chats[key]

    async def close(self) -> None:
        """Stop the health checks and close the connections (the daemon is stopping)."""
        for chat in list(self._chats.values()):
            await chat.close()
            closing = getattr(chat.remote, "close", None)
            if closing is not None:
                await closing()

    def totals(self) -> dict[tuple[str, str], int]:
        """Turn counts by (server, outcome)."""
        out: Counter[tuple[str, str]] = Counter()
        for chat in list(self._chats.values()):
            for outcome, n in chat.counts.items():
                out[(chat.settings.where, outcome)] += n
        return dict(out)

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        turns = CounterMetricFamily(
            "switchboard_remote_llm_turns", "Turns meant for a remote language model, by "
            "outcome: remote, failed, broken, local, unanswered.", labels=["server", "outcome"])
        for (server, outcome), n in sorted(self.totals().items()):
            turns.add_metric([server, outcome], n)
        yield turns
        up = GaugeMetricFamily("switchboard_remote_llm_up",
                               "1 while the remote language model answers.", labels=["server"])
        states: dict[str, bool] = {}
        for chat in list(self._chats.values()):  # down if any agent's model finds it down
            states[chat.settings.where] = states.get(chat.settings.where, True) and chat.up
        for server, state in sorted(states.items()):
            up.add_metric([server], 1.0 if state else 0.0)
        yield up
