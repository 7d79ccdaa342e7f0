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

from agent.speech.priority import lower_thread_priority
from agent.tools.choice import (
    choose,
    known_arguments,
    needs_number,
    spoken_digits,
    transfer_target,
)
from agent.tools.spec import ToolCallRequest, argument_schema

log = logging.getLogger(__name__)
MAX_PAUSE = 0.4  # seconds generation may wait for the first clause's synthesis
ARGUMENTS_TIMEOUT = 2.5  # seconds the model may take to fill in a tool's arguments

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

    def _grammar(self, schema: dict[str, Any]) -> Any:
        """The grammar of a JSON Schema, compiled once."""
        from llama_cpp import LlamaGrammar

        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            self._grammars[key] = LlamaGrammar.from_json_schema(key, verbose=False)
        return self._grammars[key]

    def _arguments(self, tool: Any, utterance: str, schema: dict[str, Any]) -> dict[str, Any]:
        """Arguments for ``tool`` from the caller's words, decoding constrained to its
        schema so only a valid object can come out (blocking)."""
        lower_thread_priority()
        grammar = self._grammar(schema)
        messages = [{"role": "system", "content": f"Fill in the arguments of the tool "
                     f"{tool.name} ({tool.description}) from what the caller said. "
                     "Reply with JSON only."},
                    {"role": "user", "content": utterance}]
        with self._lock:
            out = self._llm.create_chat_completion(messages=messages, grammar=grammar,
                                                   max_tokens=48, temperature=0.0)
        return json.loads(out["choices"][0]["message"]["content"])

    async def respond(self, messages: Sequence[Message], tools: Sequence[Any],
                      pause: threading.Event | None = None) -> AsyncIterator[str | Any]:
        """Speech as text pieces, or one ToolCallRequest when the caller asks for a tool.

        The tool is chosen from the caller's words (``agent.tools.choice``); its arguments come
        from the model with decoding constrained to the tool's schema. Words that are not
        the caller's own (a tool result, keypad input) are answered in speech.
        """
        said = messages[-1]["content"] if messages and messages[-1]["role"] == "user" else ""
        intent = None if said.startswith("(") else choose(said, tools)
        if intent is None and not said.startswith("(") and spoken_digits(said):
            # "What's your order number?" — "4 5 6": the request was in the turn before.
            earlier = [m["content"] for m in messages[:-1] if m["role"] == "user"]
            if earlier and not earlier[-1].startswith("("):
                intent = choose(earlier[-1], tools)
                said = f"{earlier[-1]} {said}"
        if intent is None:
            async for piece in self.stream(messages, pause):
                yield piece
            return
        tool = intent.tool
        if tool.kind == "transfer":
            yield ToolCallRequest(tool.name, {"target": transfer_target(said, tool)})
            return
        schema = argument_schema(tool)
        arguments = {} if not schema.get("properties") else \
            known_arguments(tool, said, schema)
        if arguments is None and not needs_number(schema):
            try:
                arguments = await asyncio.wait_for(
                    asyncio.to_thread(self._arguments, tool, said, schema), ARGUMENTS_TIMEOUT)
            except (TimeoutError, ValueError, KeyError) as exc:
                log.warning("tool %s: no arguments from the model: %s", tool.name,
                            type(exc).__name__)
        if arguments is None:
            # The caller has not said what the tool needs (e.g. the order number): talk,
            # the model asks for it, and the next turn carries it.
            async for piece in self.stream(messages, pause):
                yield piece
            return
        yield ToolCallRequest(tool.name, arguments)

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
