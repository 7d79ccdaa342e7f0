"""A language model on another machine: an OpenAI-compatible ``/v1/chat/completions``
server (llama.cpp's ``llama-server``, ``python -m llama_cpp.server``, vLLM), streamed (SSE).

Only the HTTP side lives here; when to use the remote model and when the local one is
``agent.speech.fallback_chat``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from agent.speech.chat_model import Message, for_template

log = logging.getLogger(__name__)

# Structured output (a JSON Schema) is asked for the OpenAI way first (vLLM, llama-server);
# a server that refuses that form (llama_cpp.server: 422) is asked the older way, which
# llama-server also understands, and is remembered.
SCHEMA_STYLES = ("json_schema", "json_object")
REFUSED_FORM = {400, 422, 500}  # llama_cpp.server answers 500 to the json_schema form


@dataclass(frozen=True)
class RemoteModel:
    """Where the language model runs when it runs on another machine."""

    url: str  # API base up to /v1, e.g. http://10.0.0.5:8080/v1
    model: str = ""  # the served model's name ("": the server's default)
    timeout: float = 1.5  # seconds to the first piece of an answer (and between pieces)
    api_key: str = ""  # sent as a bearer token ("": none)
    health_interval: float = 5.0  # seconds between health checks while it is down
    local_fallback: bool = True  # answer with the local model while the remote one is down

    @property
    def where(self) -> str:
        """Host and port, for logs and metrics (never the path or credentials)."""
        parts = urlsplit(self.url)
        default = 443 if parts.scheme == "https" else 80
        return f"{parts.hostname}:{parts.port or default}"


class RemoteUnavailable(Exception):
    """The remote model did not start an answer (refused, HTTP error, timeout)."""


class RemoteBroken(Exception):
    """The remote model stopped in the middle of an answer."""


class RemoteChatModel:
    """The ``ChatModel`` of an OpenAI-compatible server, streamed over HTTP(S).

    ``pause`` is not used: generation runs on the other machine and takes no CPU from this
    one's speech synthesis. Deadlines are the caller's (``FallbackChat``), not set here,
    apart from the connection's own.
    """

    def __init__(self, remote: RemoteModel, max_tokens: int = 200,
                 temperature: float = 0.0) -> None:
        self.remote = remote
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.schema_style = SCHEMA_STYLES[0]
        self._base = remote.url.rstrip("/")
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.remote.api_key:
            headers["Authorization"] = f"Bearer {self.remote.api_key}"
        return headers

    def _session(self) -> aiohttp.ClientSession:
        """One session (connection pool) per event loop."""
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.remote.timeout)
            session = self._sessions[loop] = aiohttp.ClientSession(timeout=timeout)
        return session

    async def close(self) -> None:
        session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.close()

    def body(self, messages: Sequence[Message], schema: dict[str, Any] | None,
             stream: bool = True, max_tokens: int | None = None) -> dict[str, Any]:
        """The request: our roles mapped as for a chat template, sampling as the local
        model's (greedy for JSON)."""
        body: dict[str, Any] = {
            "model": self.remote.model or "default", "messages": for_template(messages),
            "stream": stream, "max_tokens": max_tokens or self.max_tokens,
            "temperature": self.temperature if schema is None else 0.0}
        if schema is None:
            body["top_p"] = 0.9
        elif self.schema_style == "json_schema":
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "reply", "strict": True, "schema": schema}}
        else:
            body["response_format"] = {"type": "json_object", "schema": schema}
        return body

    async def stream(self, messages: Sequence[Message], pause: threading.Event | None = None,
                     schema: dict[str, Any] | None = None) -> AsyncIterator[str]:
        session = self._session()
        url = f"{self._base}/chat/completions"
        try:
            response = await session.post(url, json=self.body(messages, schema),
                                          headers=self._headers())
            if (response.status in REFUSED_FORM and schema is not None
                    and self.schema_style == SCHEMA_STYLES[0]):
                response.release()
                self.schema_style = SCHEMA_STYLES[1]
                response = await session.post(url, json=self.body(messages, schema),
                                              headers=self._headers())
                if response.status == 200:  # remembered only when the older form works
                    log.info("remote language model at %s: structured output asked as "
                             "json_object with a schema", self.remote.where)
                else:
                    self.schema_style = SCHEMA_STYLES[0]
        except (aiohttp.ClientError, OSError) as exc:
            raise RemoteUnavailable(type(exc).__name__) from exc
        async with response:
            if response.status != 200:  # its body may quote the request: not logged
                raise RemoteUnavailable(f"HTTP {response.status}")
            started = False
            try:
                async for piece in self._pieces(response):
                    started = True
                    yield piece
            except (aiohttp.ClientError, OSError, ValueError, EOFError) as exc:
                if started:
                    raise RemoteBroken(type(exc).__name__) from exc
                raise RemoteUnavailable(type(exc).__name__) from exc

    @staticmethod
    async def _pieces(response: aiohttp.ClientResponse) -> AsyncIterator[str]:
        """Text pieces of a server-sent event stream of chat completion chunks; a stream
        that ends before ``[DONE]`` or a finish reason was cut off (``EOFError``)."""
        finished = False
        async for raw in response.content:
            line = raw.decode("utf-8").strip()
            if not line.startswith("data:"):
                continue  # blank separators, comments (": ping"), event names
            data = line[5:].strip()
            if data == "[DONE]":
                return
            chunk = json.loads(data)
            if "error" in chunk:
                raise ValueError("error event")
            choice = (chunk.get("choices") or [{}])[0]
            finished = finished or bool(choice.get("finish_reason"))
            piece = (choice.get("delta") or {}).get("content")
            if piece:
                yield piece
        if not finished:
            raise EOFError("the stream ended without a finish reason")

    async def probe(self) -> bool:
        """Is the server answering? ``GET <base>/models`` (llama.cpp and vLLM alike)."""
        try:
            async with self._session().get(
                    f"{self._base}/models", headers=self._headers(),
                    timeout=aiohttp.ClientTimeout(total=self.remote.timeout)) as response:
                return response.status == 200
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False

    def warm(self, messages: Sequence[Message], timeout: float = 10.0) -> bool:
        """Blocking (off the event loop): evaluate ``messages`` once on the server so a
        server that keeps prompt prefixes answers the first turn sooner. False when the
        server cannot be reached or refuses; a server that is only slow counts as up."""
        body = json.dumps(self.body(messages, None, stream=False, max_tokens=1)).encode()
        request = urllib.request.Request(f"{self._base}/chat/completions", data=body,
                                         headers=self._headers(), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read()
                return True
        except urllib.error.URLError as exc:  # refused, unreachable, HTTP error
            log.warning("remote language model at %s did not answer at warm-up: %s",
                        self.remote.where, type(exc.reason).__name__
                        if not isinstance(exc, urllib.error.HTTPError) else f"HTTP {exc.code}")
            return False
        except TimeoutError:  # connected, still working on it
            log.info("remote language model at %s is slow to warm up", self.remote.where)
            return True
        except OSError as exc:
            log.warning("remote language model at %s did not answer at warm-up: %s",
                        self.remote.where, type(exc).__name__)
            return False
