"""Language model: the ``ChatModel`` protocol and llama.cpp behind it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Protocol

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
                 max_tokens: int = 120, temperature: float = 0.0,
                 cache_bytes: int = 512 << 20) -> None:
        from llama_cpp import Llama, LlamaRAMCache

        if not Path(model_path).is_file():
            raise FileNotFoundError(f"language model {model_path} not found")
        self._llm = Llama(model_path=str(model_path), n_ctx=context, n_threads=threads,
                          n_threads_batch=threads, verbose=False)
        # Keep the evaluated state of recent conversations: a new turn (or a new call of the
        # same agent) only evaluates what follows the longest prefix already seen.
        self._llm.set_cache(LlamaRAMCache(capacity_bytes=cache_bytes))
        self._lock = threading.Lock()
        self.max_tokens = max_tokens
        self.temperature = temperature

    def warm(self, messages: Sequence[Message]) -> None:
        """Evaluate ``messages`` once so calls starting with them answer sooner (blocking)."""
        with self._lock:
            self._llm.create_chat_completion(messages=list(messages), max_tokens=1,
                                             temperature=0.0)

    def _generate(self, messages: list[Message], put, cancelled: threading.Event,
                  pause: threading.Event | None) -> None:
        with self._lock:
            stream = self._llm.create_chat_completion(
                messages=messages, stream=True, max_tokens=self.max_tokens,
                temperature=self.temperature, top_p=0.9, repeat_penalty=1.1)
            try:
                for chunk in stream:
                    # Give the CPU to speech synthesis of the first clause: the rest of
                    # the answer is not needed before that clause has been played.
                    while pause is not None and pause.is_set() and not cancelled.is_set():
                        time.sleep(0.005)
                    if cancelled.is_set():
                        break
                    piece = chunk["choices"][0]["delta"].get("content")
                    if piece:
                        put(piece)
            finally:
                stream.close()

    async def stream(self, messages: Sequence[Message],
                     pause: threading.Event | None = None) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None | BaseException] = asyncio.Queue()
        cancelled = threading.Event()

        def put(item: str | None | BaseException) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            try:
                self._generate(list(messages), put, cancelled, pause)
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
