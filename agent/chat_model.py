"""Language model: the ``ChatModel`` protocol and llama.cpp behind it."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from agent.priority import lower_thread_priority
from agent.tooluse import ReplyStreamParser, output_schema

log = logging.getLogger(__name__)
MAX_PAUSE = 0.4  # seconds generation may wait for the first clause's synthesis

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": ...}


class ChatModel(Protocol):
    """One method: the conversation so far in, the reply out as a stream of text pieces."""

    def stream(self, messages: Sequence[Message],
               pause: threading.Event | None = None) -> AsyncIterator[str]: ...


class LlamaChatModel:
    """llama.cpp (llama-cpp-python): one lock per loaded model, tokens produced in a worker
    thread and handed to the event loop as they come. Closing the stream early (barge-in)
    stops generation at the next token."""

    def __init__(self, model_path: Path, threads: int = 2, context: int = 2048,
                 max_tokens: int = 120, temperature: float = 0.0) -> None:
        from llama_cpp import Llama

        if not Path(model_path).is_file():
            raise FileNotFoundError(f"language model {model_path} not found")
        self._llm = Llama(model_path=str(model_path), n_ctx=context, n_threads=threads,
                          n_threads_batch=threads, verbose=False)
        # llama.cpp keeps the last evaluated sequence: the next turn of a conversation (or
        # the next call of the agent warmed last) only evaluates what follows that prefix.
        # (A state cache per prefix was measured: ~50 MB per entry, memory never returned,
        # and slower than re-evaluating a short prompt.)
        self._lock = threading.Lock()
        self.max_tokens = max_tokens
        self.temperature = temperature
        self._grammars: dict[str, Any] = {}

    def warm(self, messages: Sequence[Message]) -> None:
        """Evaluate ``messages`` once so calls starting with them answer sooner (blocking)."""
        with self._lock:
            self._llm.create_chat_completion(messages=list(messages), max_tokens=1,
                                             temperature=0.0)

    def _generate(self, messages: list[Message], put, cancelled: threading.Event,
                  pause: threading.Event | None, grammar: Any = None) -> None:
        lower_thread_priority()
        with self._lock:
            stream = self._llm.create_chat_completion(
                messages=messages, stream=True, max_tokens=self.max_tokens,
                temperature=self.temperature, top_p=0.9, repeat_penalty=1.1,
                grammar=grammar)
            try:
                paused = 0.0
                for chunk in stream:
                    # Give the CPU to speech synthesis of the first clause: the rest of the
                    # answer is not needed before that clause has been played. Bounded, as
                    # other calls may be waiting for this model.
                    while (pause is not None and pause.is_set() and not cancelled.is_set()
                           and paused < MAX_PAUSE):
                        time.sleep(0.005)
                        paused += 0.005
                    if cancelled.is_set():
                        break
                    piece = chunk["choices"][0]["delta"].get("content")
                    if piece:
                        put(piece)
            finally:
                stream.close()

    def _grammar(self, tools: Sequence[Any]) -> Any:
        """The grammar for these tools' reply schema, compiled once."""
        from llama_cpp import LlamaGrammar

        key = json.dumps(output_schema(tools), sort_keys=True)
        if key not in self._grammars:
            self._grammars[key] = LlamaGrammar.from_json_schema(key, verbose=False)
        return self._grammars[key]

    async def respond(self, messages: Sequence[Message], tools: Sequence[Any],
                      pause: threading.Event | None = None) -> AsyncIterator[str | Any]:
        """Like ``stream``, but constrained: spoken text pieces, or one ToolCallRequest.

        The system prompt must already describe the tools (``tooluse.tool_prompt``), so it
        stays the same prefix from turn to turn and call to call (evaluated once).
        """
        grammar = await asyncio.to_thread(self._grammar, tools)
        parser = ReplyStreamParser()
        async for piece in self.stream(messages, pause, grammar=grammar):
            for text in parser.feed(piece):
                yield text
        try:
            call = parser.tool_call()
        except (ValueError, KeyError) as exc:  # cut off by max_tokens mid-JSON
            log.warning("constrained reply unfinished: %s", type(exc).__name__)
            return
        if call is not None:
            yield call

    async def stream(self, messages: Sequence[Message], pause: threading.Event | None = None,
                     grammar: Any = None) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None | BaseException] = asyncio.Queue()
        cancelled = threading.Event()

        def put(item: str | None | BaseException) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            try:
                self._generate(list(messages), put, cancelled, pause, grammar)
            except BaseException as exc:  # handed to the consumer, raised there
                put(exc)
            finally:
                put(None)

        worker = loop.run_in_executor(None, work)
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancelled.set()
            await asyncio.shield(worker)
