"""Language model: the conversation's ``Message``, the ``ChatModel`` protocol, and
llama.cpp behind it."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, TypedDict

from agent.speech.priority import lower_thread_priority

MAX_PAUSE = 0.4  # seconds generation may wait for the first clause's synthesis

Role = Literal["system", "user", "assistant", "tool", "keypad"]
TOOL_RESULT_PREFIX = "Tool result: "
KEYPAD_PREFIX = "The caller pressed these keys on the keypad: "


class Message(TypedDict):
    """One entry of the conversation.

    Besides the usual roles, ``tool`` is a tool's result (JSON, for the model) and
    ``keypad`` the keys the caller pressed (the digits). Only the model adapter turns these
    two into text; a plain dict, so histories go into JSON (call summaries) as they are.
    """

    role: Role
    content: str


def for_template(messages: Iterable[Message]) -> list[dict[str, str]]:
    """The conversation as chat templates know it (system, user, assistant): a tool result
    and keypad input become user lines that say what they are."""
    out = []
    for message in messages:
        role, content = message["role"], message["content"]
        if role == "tool":
            role, content = "user", TOOL_RESULT_PREFIX + content
        elif role == "keypad":
            role, content = "user", KEYPAD_PREFIX + " ".join(content)
        out.append({"role": role, "content": content})
    return out


class ChatModel(Protocol):
    """One method: the conversation so far in, the reply out as a stream of text pieces.

    ``pause``, while set, lets generation wait (the first clause is being synthesized);
    ``schema`` (a JSON Schema) constrains decoding so only a matching JSON text comes out.
    """

    def stream(self, messages: Sequence[Message], pause: threading.Event | None = None,
               schema: dict[str, Any] | None = None) -> AsyncIterator[str]: ...


class LlamaChatModel:
    """llama.cpp (llama-cpp-python): one lock per loaded model, tokens produced in a worker
    thread and handed to the event loop as they come. Closing the stream early (barge-in)
    stops generation at the next token."""

    def __init__(self, model_path: Path, threads: int = 2, context: int = 2048,
                 max_tokens: int = 200, temperature: float = 0.0) -> None:
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
            self._llm.create_chat_completion(messages=for_template(messages), max_tokens=1,
                                             temperature=0.0)

    def _generate(self, messages: list[dict[str, str]], put, cancelled: threading.Event,
                  pause: threading.Event | None, schema: dict[str, Any] | None) -> None:
        lower_thread_priority()
        with self._lock:
            if schema is None:
                grammar, sampling = None, {"temperature": self.temperature, "top_p": 0.9,
                                           "repeat_penalty": 1.1}
            else:  # data, not speech: greedy, and repeated tokens are no fault in JSON
                grammar, sampling = self._grammar(schema), {"temperature": 0.0,
                                                            "repeat_penalty": 1.0}
            stream = self._llm.create_chat_completion(
                messages=messages, stream=True, max_tokens=self.max_tokens,
                grammar=grammar, **sampling)
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
        """The grammar of a JSON Schema, compiled once (called holding the model lock)."""
        from llama_cpp import LlamaGrammar

        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            self._grammars[key] = LlamaGrammar.from_json_schema(key, verbose=False)
        return self._grammars[key]

    async def stream(self, messages: Sequence[Message], pause: threading.Event | None = None,
                     schema: dict[str, Any] | None = None) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None | BaseException] = asyncio.Queue()
        cancelled = threading.Event()

        def put(item: str | None | BaseException) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            try:
                self._generate(for_template(messages), put, cancelled, pause, schema)
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
