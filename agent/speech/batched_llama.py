"""llama.cpp serving every call at once: one context, one sequence per conversation, one
worker thread that advances all open requests together in each batch.

A call's next turn starts where its last one ended in the cache (its own sequence), and a
new call starts from the agent's instructions already evaluated for another call (copied
in the cache, not evaluated again). No call waits for another's whole answer: every step
advances each open reply by a token, and a reply still working towards its first clause goes
before the rest of any other (``llm_slots.plan_step``).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import ctypes
import json
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.speech.chat_model import MAX_PAUSE, Message, for_template
from agent.speech.heap import release_file_pages
from agent.speech.llm_slots import (
    SLOTS,
    Placement,
    Progress,
    Slot,
    common_prefix,
    place,
    plan_step,
    release,
)
from agent.speech.priority import lower_thread_priority
from agent.speech.worker import jobs_running, narrow_step, urgent_jobs_running, wide_step

log = logging.getLogger(__name__)
PENALTY_LAST_N = 64  # as llama-cpp-python's own sampling: repeats among the last 64 tokens
IDLE_WAIT = 0.005  # seconds the worker sleeps when every open reply is paused
MAX_HOLD = 0.3  # seconds the rest of answers may wait for other callers' urgent jobs
# Tokens of a step that may take every core: a turn's own words (after the prefill), and
# replies writing a token each. A longer step would hold a transcript for too long.
WIDE_TOKENS = 32
WARM_TIMEOUT = 300.0  # seconds: evaluating an agent's instructions on a very busy box


def runnable_elsewhere() -> int:
    """Threads of the whole machine ready to run now, besides the one asking (Linux)."""
    try:
        with open("/proc/stat", "rb") as stat:
            for line in stat:
                if line.startswith(b"procs_running"):
                    return max(int(line.split()[1]) - 1, 0)
    except (OSError, ValueError):
        pass
    return 0


class ContextFull(RuntimeError):
    """The conversation no longer fits in the model's context."""


@dataclass
class _Request:
    """One generation: its prompt, its sampler, and where its pieces go."""

    tokens: list[int]
    max_tokens: int
    put: Callable[[str | None | BaseException], None]
    sampler: Any  # llama_cpp._internals.LlamaSampler
    pause: threading.Event | None
    arrived: float
    cancelled: threading.Event = field(default_factory=threading.Event)
    slot: Slot | None = None
    pending: list[int] = field(default_factory=list)  # prompt tokens still to evaluate
    next: int | None = None  # the token sampled last, evaluated in the next step
    generated: int = 0
    paused_at: float | None = None  # when the reply first asked to pause (its first clause)
    stable: int | None = None  # a prefill: how many of its tokens the real turn will share
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))

    def progress(self, now: float) -> Progress:
        asking = self.pause is not None and self.pause.is_set()
        if asking and self.paused_at is None:
            self.paused_at = now
        if self.stable is not None:
            return Progress(self.arrived, len(self.pending), urgent=False, background=True)
        return Progress(self.arrived, len(self.pending),
                        urgent=self.pause is None or self.paused_at is None,
                        paused=asking and now - (self.paused_at or now) < MAX_PAUSE)


class BatchedLlamaChatModel:
    """A ``ChatModel`` for every call of the process, over one llama.cpp context."""

    def __init__(self, model_path: Path, threads: int = 1, slots: int = SLOTS,
                 context: int = 4096, sequence_context: int = 2048, max_tokens: int = 200,
                 temperature: float = 0.0, batch: int = 256, micro_batch: int = 128,
                 flash_attention: bool = True) -> None:
        import llama_cpp
        from llama_cpp import _internals, _logger
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        if not Path(model_path).is_file():
            raise FileNotFoundError(f"language model {model_path} not found")
        self._llama_cpp, self._internals = llama_cpp, _internals
        _logger.set_verbose(False)  # llama.cpp's own log: errors only
        params = llama_cpp.llama_model_default_params()
        self._model = _internals.LlamaModel(path_model=str(model_path), params=params,
                                            verbose=False)
        release_file_pages(Path(model_path))  # the weights it copied are not read from there
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = context
        cparams.n_batch, cparams.n_ubatch = batch, micro_batch  # compute buffers scale with it
        cparams.n_seq_max = slots
        cparams.kv_unified = True  # sequences share the agent's instructions in the cache
        cparams.n_threads = cparams.n_threads_batch = threads
        self.threads, self._threads_now = threads, threads
        self.cores = len(os.sched_getaffinity(0))
        cparams.no_perf = True
        # Flash attention skips the cache cells of other calls' sequences instead of
        # multiplying through them: with 16 conversations of 200 tokens in the cache, a token
        # took 37 ms without it and 20 ms with it (17 ms with one conversation either way).
        cparams.flash_attn_type = (llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attention
                                   else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED)
        self._ctx = _internals.LlamaContext(model=self._model, params=cparams, verbose=False)
        self._batch = llama_cpp.llama_batch_init(batch, 0, 1)
        self.batch_size = batch
        self.sequence_context = min(sequence_context, context)
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.slots = [Slot(seq) for seq in range(slots)]
        eos = self._model.token_eos()
        bos = self._model.token_bos()
        self._format = Jinja2ChatFormatter(
            template=self._model.metadata()["tokenizer.chat_template"],
            eos_token=self._model.token_get_text(eos) if eos != -1 else "",
            bos_token=self._model.token_get_text(bos) if bos != -1 else "",
            stop_token_ids=[eos])
        self._grammars: dict[str, Any] = {}
        self._waiting: list[_Request] = []  # arrived, not yet placed in a slot
        self._open: list[_Request] = []  # the worker's own list
        self._ended: list[list[int]] = []  # conversations over: their slots go first
        self._cond = threading.Condition()
        self._closed = False
        self._held = 0.0  # seconds the rest of answers has waited for urgent jobs
        self.steps = 0  # batches decoded (for tests and metrics)
        self.evaluated = 0  # prompt tokens evaluated (those found in the cache are not)
        self._worker = threading.Thread(target=self._run, name="llm-worker", daemon=True)
        self._worker.start()

    # -- the ChatModel interface ------------------------------------------------------------
    def warm(self, messages: Sequence[Message]) -> None:
        """Evaluate ``messages`` once so calls starting with them answer sooner (blocking)."""
        done = threading.Event()
        failure: list[BaseException] = []

        def put(item: str | None | BaseException) -> None:
            if isinstance(item, BaseException):
                failure.append(item)
            if item is None:
                done.set()

        self._submit(self._request(messages, put, None, None, max_tokens=1))
        if not done.wait(WARM_TIMEOUT):
            raise TimeoutError("the language model did not answer while warming up")
        if failure:
            raise failure[0]

    def prefill(self, messages: Sequence[Message]) -> None:
        """Evaluate ``messages`` (the conversation and the words of a caller still speaking)
        when the model has nothing else to do, so that the turn, when it comes, finds most
        of its prompt in the cache. Last words still empty: the conversation so far, up to
        where the caller's words will go. Returns at once; a newer prefill or any turn
        replaces it."""
        *history, last = messages
        tokens = self._tokens(messages)
        # the part a turn with other last words still shares: up to where those words begin
        other = {"role": last["role"], "content": "" if last["content"] else "Hello."}
        stable = common_prefix(self._tokens([*history, other]), tokens)
        if not last["content"]:
            tokens = tokens[:stable]
        if len(tokens) >= self.sequence_context:
            return
        self._submit(_Request(tokens, 0, lambda item: None, None, None, time.monotonic(),
                              stable=stable))

    def forget(self, messages: Sequence[Message]) -> None:
        """The conversation is over (its call ended): the slot that holds it is the first to
        go to a new conversation, before the slot of a call still in progress (which would
        otherwise, idle longest while its caller listens, lose its whole conversation and
        evaluate it again on its next turn)."""
        tokens = self._tokens(messages)
        with self._cond:
            self._ended.append(tokens)
            self._cond.notify()

    async def stream(self, messages: Sequence[Message], pause: threading.Event | None = None,
                     schema: dict[str, Any] | None = None) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None | BaseException] = asyncio.Queue()

        def put(item: str | None | BaseException) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
                loop.call_soon_threadsafe(queue.put_nowait, item)

        request = self._request(messages, put, pause, schema, self.max_tokens)
        self._submit(request)
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            request.cancelled.set()
            with self._cond:
                self._cond.notify()

    def close(self) -> None:
        """Stop the worker (open requests end with an error)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._worker.join(timeout=5)

    # -- requests ---------------------------------------------------------------------------
    def _tokens(self, messages: Sequence[Message]) -> list[int]:
        prompt = self._format(messages=for_template(messages)).prompt
        return self._model.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    def _request(self, messages: Sequence[Message], put, pause: threading.Event | None,
                 schema: dict[str, Any] | None, max_tokens: int) -> _Request:
        tokens = self._tokens(messages)
        if len(tokens) >= self.sequence_context:
            raise ContextFull(f"prompt of {len(tokens)} tokens does not fit a context of "
                              f"{self.sequence_context}")
        max_tokens = min(max_tokens, self.sequence_context - len(tokens))
        return _Request(tokens, max_tokens, put, self._sampler(schema), pause,
                        arrived=time.monotonic())

    def _sampler(self, schema: dict[str, Any] | None) -> Any:
        """The sampling chain of llama-cpp-python's chat completion with our settings."""
        sampler = self._internals.LlamaSampler()
        if schema is None:  # speech: a light repeat penalty
            temperature, repeat = self.temperature, 1.1
        else:  # data, not speech: greedy, and repeated tokens are no fault in JSON
            temperature, repeat = 0.0, 1.0
        sampler.add_penalties(n_vocab=self._model.n_vocab(), penalty_last_n=PENALTY_LAST_N,
                              penalty_repeat=repeat, penalty_freq=0.0, penalty_present=0.0)
        if schema is not None:
            sampler.add_grammar(self._model, self._grammar(schema))
        if temperature <= 0.0:
            sampler.add_greedy()
        else:
            sampler.add_top_k(40)
            sampler.add_top_p(0.9, 1)
            sampler.add_min_p(0.05, 1)
            sampler.add_temp(temperature)
            sampler.add_dist(int(time.monotonic_ns() & 0x7FFFFFFF))
        return sampler

    def _grammar(self, schema: dict[str, Any]) -> Any:
        from llama_cpp import LlamaGrammar

        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            self._grammars[key] = LlamaGrammar.from_json_schema(key, verbose=False)
        return self._grammars[key]

    def _submit(self, request: _Request) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("the language model is closed")
            self._waiting.append(request)
            self._cond.notify()

    # -- the worker -------------------------------------------------------------------------
    def _run(self) -> None:
        lower_thread_priority()
        while True:
            with self._cond:
                while not self._closed and not self._waiting and not self._open \
                        and not self._ended:
                    self._cond.wait()
                if self._closed:
                    break
                waiting, self._waiting = self._waiting, []
                ended, self._ended = self._ended, []
            for tokens in ended:
                release(self.slots, tokens)
            self._waiting_back(self._admit(waiting))
            self._drop_cancelled()
            if self._open:
                try:
                    self._step()
                except Exception as exc:  # one failed batch ends the requests in it
                    log.exception("language model step failed")
                    for request in list(self._open):
                        self._finish(request, exc)
        for request in self._open + self._waiting:
            request.put(RuntimeError("the language model is closed"))
            request.put(None)

    def _waiting_back(self, unplaced: list[_Request]) -> None:
        if unplaced:
            with self._cond:
                self._waiting[:0] = unplaced

    def _admit(self, waiting: list[_Request]) -> list[_Request]:
        """Place what can be placed (oldest first); return the rest. A prefill gives way to
        any other request, and to a newer prefill (its slot may be the one they need)."""
        if waiting:
            for request in [r for r in self._open if r.stable is not None]:
                self._finish(request)
            newest = max((r for r in waiting if r.stable is not None), default=None,
                         key=lambda r: r.arrived)
            waiting = [r for r in waiting if r.stable is None or
                       (r is newest and all(w.stable is not None for w in waiting))]
        unplaced = []
        for request in sorted(waiting, key=lambda r: r.arrived):
            if request.cancelled.is_set():
                request.put(None)
                continue
            placement = place(self.slots, request.tokens)
            if placement is None:
                unplaced.append(request)
                continue
            self._prepare(request, placement)
            self._open.append(request)
        return unplaced

    def _prepare(self, request: _Request, placement: Placement) -> None:
        mem, slot = self._ctx.memory, placement.slot
        llama_cpp = self._llama_cpp
        if placement.source is not None:
            llama_cpp.llama_memory_seq_rm(mem, slot.seq, -1, -1)
            llama_cpp.llama_memory_seq_cp(mem, placement.source.seq, slot.seq, 0,
                                          placement.keep)
        else:
            llama_cpp.llama_memory_seq_rm(mem, slot.seq, placement.keep, -1)
        slot.tokens = list(request.tokens[:placement.keep])
        # a prefill's slot is continued by the turn it prepares, which shares its stable part
        slot.prompt = len(request.tokens) if request.stable is None else request.stable
        slot.busy, slot.used = True, time.monotonic()
        request.slot = slot
        request.pending = list(request.tokens[placement.keep:])

    def _drop_cancelled(self) -> None:
        for request in [r for r in self._open if r.cancelled.is_set()]:
            self._finish(request)

    def _finish(self, request: _Request, error: BaseException | None = None) -> None:
        if request in self._open:
            self._open.remove(request)
        if request.slot is not None:
            request.slot.busy = False
        if error is not None:
            request.put(error)
        request.put(None)

    def _step(self) -> None:
        """Evaluate one batch: a token for each generating reply, prompt tokens for others."""
        now = time.monotonic()
        progress = [r.progress(now) for r in self._open]
        step = plan_step(progress, self.batch_size)
        if (step and self._held < MAX_HOLD and urgent_jobs_running()
                and not any(progress[i].urgent for i, _ in step)):
            # Only the rest of answers to write (ahead of what their callers hear): a job a
            # caller is waiting for (a transcript, a first clause's voice) has the cores
            # first, for a while.
            self._held += IDLE_WAIT
            step = []
        else:
            self._held = 0.0
        if not step:  # every open reply is paused, or can wait
            time.sleep(IDLE_WAIT)
            return
        batch, n = self._batch, 0
        sampled: list[tuple[_Request, int]] = []
        taken: list[tuple[_Request, list[int], bool]] = []  # to undo a batch that failed
        for index, count in step:
            request = self._open[index]
            assert request.slot is not None
            if request.pending:
                tokens, request.pending = request.pending[:count], request.pending[count:]
                self.evaluated += len(tokens)
            else:
                assert request.next is not None
                tokens, request.next = [request.next], None
            taken.append((request, tokens, request.generated > 0))
            for k, token in enumerate(tokens):
                batch.token[n] = token
                batch.pos[n] = len(request.slot.tokens) + k
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = request.slot.seq
                batch.logits[n] = (not request.pending and k == len(tokens) - 1
                                   and request.stable is None)
                if batch.logits[n]:
                    sampled.append((request, n))
                n += 1
            request.slot.tokens.extend(tokens)
        batch.n_tokens = n
        wide = self._share_cores(n, background=all(r.stable is not None for r, _, _ in taken))
        try:
            failed = self._llama_cpp.llama_decode(self._ctx.ctx, batch) != 0
        finally:
            if wide:
                narrow_step()
        if failed:
            self._undo(taken)
            self._make_room(taken)
            return
        self.steps += 1
        for request, index in sampled:
            self._sample(request, index)
        for request, _, _ in taken:
            if request.stable is not None and not request.pending:
                self._finish(request)  # prefilled: the cache holds it for the turn

    def _share_cores(self, tokens: int, background: bool = False) -> bool:
        """Use the cores the other engines (and other processes) leave: llama.cpp's threads
        meet at a spinning barrier after each operation, so one more thread than there are
        free cores costs far more than it brings (see ``engines.ThreadPlan``). A step on
        more than one core holds the other engines' jobs until it ends (``wide_step``), so
        only a step of at most ``WIDE_TOKENS`` gets them; a prefill (nobody waits for it
        yet) gets one core: the call's media keeps the other. Whether the step is wide."""
        if self.threads == 1:
            return False
        # one other thread ready to run is tolerated: the event loop, the pacer, Asterisk
        # (short bursts, at a higher priority than the model's threads)
        busy = max(jobs_running(), runnable_elsewhere() - 1)
        threads = 1 if background or tokens > WIDE_TOKENS else \
            max(1, min(self.threads, self.cores - busy))
        wide = threads > 1 and wide_step()
        threads = threads if wide else 1
        if threads != self._threads_now:
            self._llama_cpp.llama_set_n_threads(self._ctx.ctx, threads, threads)
            self._threads_now = threads
        return wide

    def _undo(self, taken: list[tuple[_Request, list[int], bool]]) -> None:
        """Put back what a batch that could not be evaluated took."""
        for request, tokens, was_next in taken:
            assert request.slot is not None
            del request.slot.tokens[len(request.slot.tokens) - len(tokens):]
            self._llama_cpp.llama_memory_seq_rm(self._ctx.memory, request.slot.seq,
                                                len(request.slot.tokens), -1)
            if was_next:
                request.next = tokens[0]
            else:
                request.pending[:0] = tokens

    def _make_room(self, taken: list[tuple[_Request, list[int], bool]]) -> None:
        """The cache is full: empty the idle slots (the batch is tried again next step);
        with none to empty, the newest request in the batch ends with an error (its call
        says the error phrase)."""
        idle = [s for s in self.slots if not s.busy and s.tokens]
        for slot in idle:
            self._llama_cpp.llama_memory_seq_rm(self._ctx.memory, slot.seq, -1, -1)
            slot.tokens, slot.prompt = [], 0
        if not idle:
            newest = max((r for r, _, _ in taken), key=lambda r: r.arrived)
            self._finish(newest, ContextFull("the language model's context is full"))

    def _sample(self, request: _Request, index: int) -> None:
        token = self._llama_cpp.llama_sampler_sample(request.sampler.sampler, self._ctx.ctx,
                                                     index)
        request.generated += 1
        if self._llama_cpp.llama_vocab_is_eog(self._model.vocab, token):
            self._flush(request)
            return self._finish(request)
        piece = request.decoder.decode(self._piece(token))
        if piece:
            request.put(piece)
        if request.generated >= request.max_tokens:
            self._flush(request)
            return self._finish(request)
        request.next = token  # evaluated in the next step, with the others

    def _piece(self, token: int) -> bytes:
        """The bytes of one token (part of a character, possibly)."""
        buffer = (ctypes.c_char * 64)()
        n = self._llama_cpp.llama_token_to_piece(self._model.vocab, token, buffer, 64, 0,
                                                 False)
        return bytes(buffer[:max(n, 0)])

    @staticmethod
    def _flush(request: _Request) -> None:
        rest = request.decoder.decode(b"", final=True)
        if rest:
            request.put(rest)
