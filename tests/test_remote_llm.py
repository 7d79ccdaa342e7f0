"""The language model on "another machine": a real OpenAI-compatible server
(``python -m llama_cpp.server`` with the default SmolLM2 model) on a loopback port, killed
and restarted under a running ``FallbackChat`` whose local model is the same file."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.speech.batched_llama import BatchedLlamaChatModel
from agent.speech.chat_model import Message
from agent.speech.fallback_chat import FallbackChat
from agent.speech.remote_chat import RemoteChatModel, RemoteModel
from appliance.models.defaults import LLM_DEFAULT, install_default
from appliance.models.store import ModelStore

for extra in ("fastapi", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings"):
    pytest.importorskip(extra, reason="llama_cpp.server needs the test extras")

pytestmark = pytest.mark.llm_server

SYSTEM: Message = {"role": "system", "content": "You are a friendly telephone assistant of "
                   "a dental clinic. Answer in one short sentence."}
DAY_SCHEMA = {"type": "object", "properties": {"day": {"type": "string",
                                                       "enum": ["monday", "tuesday"]}},
              "required": ["day"]}


@pytest.fixture(scope="module")
def llm_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = ModelStore(tmp_path_factory.mktemp("remote-llm") / "models")
    install_default(store, LLM_DEFAULT, lambda message: None)
    return store.path(LLM_DEFAULT.name, "llm")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m llama_cpp.server`` on a loopback port, stopped and started at will."""

    def __init__(self, model: Path, port: int, log: Path) -> None:
        self.model, self.port, self.log = model, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 60.0) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model),
                 "--host", "127.0.0.1", "--port", str(self.port), "--n_threads", "1",
                 "--n_threads_batch", "1",
                 "--n_ctx", "2048", "--verbose", "false"], stdout=out, stderr=out)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("llama_cpp.server exited:\n" + self.log.read_text()[-2000:])
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("llama_cpp.server did not answer:\n" + self.log.read_text()[-2000:])

    def kill(self) -> None:
        """SIGKILL: the machine goes away without closing anything."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture
def server(llm_file: Path, tmp_path: Path) -> Iterator[Server]:
    srv = Server(llm_file, free_port(), tmp_path / "llama-server.log")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


async def turn(chat: FallbackChat, text: str) -> tuple[list[str], float]:
    """The pieces of one answer and the seconds to the first."""
    began = time.monotonic()
    pieces: list[str] = []
    first = 0.0
    async for piece in chat.stream([SYSTEM, {"role": "user", "content": text}]):
        if not pieces:
            first = time.monotonic() - began
        pieces.append(piece)
    return pieces, first


async def test_remote_server_answers_falls_back_when_killed_and_comes_back(
        server: Server, llm_file: Path) -> None:
    settings = RemoteModel(url=server.url, model="smollm2", timeout=5.0, health_interval=0.5)
    remote = RemoteChatModel(settings, max_tokens=40)
    local = BatchedLlamaChatModel(llm_file, threads=1, slots=2, max_tokens=40)
    chat = FallbackChat(remote, local)
    await asyncio.to_thread(chat.warm, [SYSTEM])
    try:
        assert chat.up
        pieces, first = await turn(chat, "When do you open tomorrow?")
        assert len(pieces) > 3 and "".join(pieces).strip(), pieces  # streamed, piece by piece
        assert chat.counts == {"remote": 1}
        print(f"remote: first piece after {first * 1000:.0f} ms")

        said = "".join([p async for p in chat.stream(
            [{"role": "user", "content": "Book me for Tuesday please."}], schema=DAY_SCHEMA)])
        assert json.loads(said)["day"] in ("monday", "tuesday"), said
        assert remote.schema_style == "json_object"  # what llama_cpp.server understands
        assert chat.counts == {"remote": 2}

        server.stop()
        pieces, first = await turn(chat, "Do you take new patients?")
        assert "".join(pieces).strip() and not chat.up
        assert chat.counts == {"remote": 2, "failed": 1, "local": 1}
        print(f"server down: local first piece after {first * 1000:.0f} ms")
        pieces, _ = await turn(chat, "Where are you?")  # straight to the local model
        assert chat.counts == {"remote": 2, "failed": 1, "local": 2}

        server.start()
        began = time.monotonic()
        while not chat.up and time.monotonic() - began < 10:
            await asyncio.sleep(0.1)
        assert chat.up, "the health check did not bring the remote model back"
        print(f"back up {time.monotonic() - began:.2f} s after the server answered")
        pieces, _ = await turn(chat, "Thank you, goodbye.")
        assert "".join(pieces).strip()
        assert chat.counts == {"remote": 3, "failed": 1, "local": 2}

        # killed in the middle of a long answer: the answer ends with what came, no error
        remote.max_tokens = 200
        said: list[str] = []
        async for piece in chat.stream([SYSTEM, {"role": "user", "content":
                                                 "Tell me a long story about teeth."}]):
            said.append(piece)
            if len(said) == 3:
                server.kill()
        assert len(said) >= 3 and not chat.up
        assert chat.counts == {"remote": 3, "failed": 1, "local": 2, "broken": 1}
        print(f"killed mid-answer: {len(said)} pieces kept")
    finally:
        await chat.close()
        await remote.close()
        local.close()
