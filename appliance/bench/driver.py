"""The bench's caller: spoken questions and a barge-in over the SIP test phone, level by level."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from appliance.bench.listening import voiced
from appliance.bench.probe import intervals, realtime
from appliance.bench.report import level_result
from appliance.bench.targets import MemorySampler, Target
from appliance.bench.timeline import (
    RATE,
    SPAN_GAP,
    CallRun,
    TurnMark,
    caller_speech,
    trim_silence,
)

BARGE_IN_AFTER = 1.0
"""The caller interrupts this long after the first voiced packet of the answer arrived."""
ANSWER_QUIET = 1.5
"""The answer is over once the agent was quiet this long; then the next question is asked."""
ANSWER_START_TIMEOUT = 45.0
ANSWER_END_TIMEOUT = 60.0

QUESTIONS = (
    "What time do you open on Saturday?",
    "Is my prescription ready to pick up?",
    "Can I get a flu shot without an appointment?",
    "Do you take Blue Cross insurance?",
    "Is there a doctor available tomorrow morning?",
    "How long does a refill usually take?",
    "Where can I park when I come in?",
    "Are you open on public holidays?",
)
BARGE_IN_QUESTION = "Can you tell me all about your services and your opening hours?"
INTERRUPTION = "Sorry, wait, one more thing."

log = logging.getLogger(__name__)


class Listener:
    """Voiced packets of one dialog, updated incrementally so polling stays cheap."""

    def __init__(self, received: list) -> None:
        self.received = received
        self._seen = 0
        self.voiced: list[tuple[float, float]] = []  # (arrival, end) of voiced packets

    def _update(self) -> None:
        new = self.received[self._seen:]
        self._seen += len(new)
        self.voiced += [(p[0], p[0] + len(p[3]) / RATE) for p in new if voiced(p[3])]

    def first_after(self, since: float) -> float | None:
        self._update()
        index = bisect.bisect_left(self.voiced, (since, float("-inf")))
        return self.voiced[index][0] if index < len(self.voiced) else None

    def last_end(self) -> float | None:
        self._update()
        return self.voiced[-1][1] if self.voiced else None

    async def speech(self, since: float, timeout: float) -> float | None:
        """Arrival of the first voiced packet at or after ``since``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            first = self.first_after(since)
            if first is not None:
                return first
            await asyncio.sleep(0.01)
        return None

    async def quiet(self, quiet: float, timeout: float) -> bool:
        """Wait until no voiced audio arrived for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            end = self.last_end()
            if end is None or time.monotonic() - end >= quiet:
                return True
            await asyncio.sleep(0.05)
        return False


@dataclass
class Prompts:
    """The caller's audio: questions, the long question and the interruption (8 kHz)."""

    questions: list[tuple[str, np.ndarray]]
    barge_in: tuple[str, np.ndarray]
    interruption: tuple[str, np.ndarray]


def synthesize_prompts(voice: Path) -> Prompts:
    """All prompts spoken by ``voice`` through a G.711 line, leading/trailing quiet trimmed."""
    from appliance.bench.phoneline import spoken

    def say(text: str) -> tuple[str, np.ndarray]:
        return text, trim_silence(spoken(text, voice))

    return Prompts([say(q) for q in QUESTIONS], say(BARGE_IN_QUESTION), say(INTERRUPTION))


async def _ask(dialog, listener: Listener, kind: str, prompt: tuple[str, np.ndarray]
               ) -> TurnMark:
    first = len(dialog.sent_packets)
    await dialog.play(prompt[1])
    speech = caller_speech(dialog.sent_packets[first:])
    mark = TurnMark(kind, prompt[0], speech[0] if speech else None,
                    speech[1] if speech else None, ended=0.0)
    mark.answer_start = await listener.speech(speech[1] if speech else time.monotonic(),
                                              ANSWER_START_TIMEOUT)
    return mark


async def question_turn(dialog, listener: Listener, prompt: tuple[str, np.ndarray]
                        ) -> TurnMark:
    """Ask, wait for the whole answer (or give up), note when the caller moved on."""
    mark = await _ask(dialog, listener, "question", prompt)
    if mark.answer_start is not None:
        await listener.quiet(ANSWER_QUIET, ANSWER_END_TIMEOUT)
    mark.ended = time.monotonic()
    return mark


async def barge_in_turn(dialog, listener: Listener, prompt: tuple[str, np.ndarray],
                        interruption: tuple[str, np.ndarray]) -> TurnMark:
    """Ask, then talk over the answer ``BARGE_IN_AFTER`` seconds after it started."""
    mark = await _ask(dialog, listener, "barge-in", prompt)
    if mark.answer_start is None:
        mark.barge_note = "no answer"
    else:
        await asyncio.sleep(max(0.0, mark.answer_start + BARGE_IN_AFTER - time.monotonic()))
        end = listener.last_end()
        if end is None or time.monotonic() - end > SPAN_GAP:
            mark.barge_note = f"answer ended before {BARGE_IN_AFTER:.1f} s"
        else:
            first = len(dialog.sent_packets)
            await dialog.play(interruption[1])
            speech = caller_speech(dialog.sent_packets[first:])
            mark.interrupt_at = speech[0] if speech else None
            await asyncio.sleep(1.0)  # the agent's audio must have stopped by now
    mark.ended = time.monotonic()
    return mark


async def run_call(phone, index: int, extension: str, prompts: Prompts, turns: int,
                   barge_in: bool = True, think: Sequence[float] = ()) -> CallRun:
    """Place one call, greet, ask ``turns`` questions (each after ``think[turn]`` seconds, if
    given), interrupt the last answer, hang up."""
    from appliance.sipphone import SipError

    run = CallRun(index, invite_at=time.monotonic())
    try:
        run.dialog = await phone.call(extension, timeout=15)
        run.answered_at = run.dialog.answered_at
        listener = Listener(run.dialog.received_packets)
        run.greeting_at = await listener.speech(run.answered_at, 15)
        if run.greeting_at is not None:
            await listener.quiet(0.8, 20)
        for turn in range(turns):
            if turn < len(think):
                await asyncio.sleep(think[turn])
            prompt = prompts.questions[(index + turn) % len(prompts.questions)]
            run.marks.append(await question_turn(run.dialog, listener, prompt))
        if barge_in:
            run.marks.append(await barge_in_turn(run.dialog, listener, prompts.barge_in,
                                                 prompts.interruption))
        await run.dialog.hangup()
    except (SipError, OSError, TimeoutError) as exc:
        run.error = f"{type(exc).__name__}: {exc}"
        if run.dialog is not None and not run.dialog.ended.is_set():
            with contextlib.suppress(SipError, OSError, TimeoutError):
                await run.dialog.hangup()
    run.ended_at = time.monotonic()
    return run


async def run_level(target: Target, prompts: Prompts, concurrency: int, turns: int,
                    barge_in: bool = True) -> list[CallRun]:
    """``concurrency`` calls started together, each from its own phone."""
    from appliance.sipphone import SipPhone

    async with contextlib.AsyncExitStack() as stack:
        phones = [await stack.enter_async_context(
            SipPhone(target.local_ip, target.server, target.username, target.password,
                     display_name=f"Bench caller {i + 1}")) for i in range(concurrency)]
        return list(await asyncio.gather(*(
            run_call(phone, i, target.extension, prompts, turns, barge_in)
            for i, phone in enumerate(phones))))


def wait_summaries(record_dir: Path, before: set[Path], count: int,
                   timeout: float = 15.0) -> list[dict]:
    """The call records the daemon wrote since ``before`` (waits for ``count`` of them)."""
    deadline = time.monotonic() + timeout
    while True:
        new = sorted(set(record_dir.glob("*.json")) - before)
        if len(new) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    out = []
    for path in new:
        with contextlib.suppress(OSError, ValueError):
            out.append(json.loads(path.read_text()))
    return out


async def warm_up(target: Target, prompts: Prompts) -> CallRun:
    """One unmeasured call with one question: first inferences are slower."""
    runs = await run_level(target, prompts, 1, 1, barge_in=False)
    return runs[0]


def save_call(run: CallRun, base: Path) -> None:
    """What the caller heard (WAV + per-packet timing) and its turn marks, for debugging."""
    if run.dialog is None or run.answered_at is None:
        return
    run.dialog.save_recording(base.with_suffix(".wav"))
    origin = run.answered_at

    def rel(t: float | None) -> float | None:
        return None if t is None else round(t - origin, 4)

    marks = [{**asdict(m), **{k: rel(getattr(m, k)) for k in (
        "caller_start", "caller_end", "ended", "answer_start", "interrupt_at")}}
        for m in run.marks]
    base.with_suffix(".marks.json").write_text(json.dumps(
        {"time_origin": "answer", "greeting_at": rel(run.greeting_at), "marks": marks},
        indent=1) + "\n")


def measure_level(target: Target, label: str, place: Callable[[], Awaitable[list[CallRun]]],
                  sampler: MemorySampler | None, progress: Callable[[str], None]
                  ) -> tuple[list[CallRun], list[dict] | None]:
    """One level: the calls ``place`` makes, and the daemon's records of them."""
    if sampler is not None:
        sampler.label = label
    before = set(target.record_dir.glob("*.json")) if target.record_dir else set()
    runs = asyncio.run(place())
    summaries = None
    if target.record_dir is not None:
        placed = sum(r.answered_at is not None for r in runs)
        summaries = wait_summaries(target.record_dir, before, placed)
    failed = [r.error for r in runs if r.error]
    if failed:
        progress(f"  {len(failed)} call(s) failed: {failed[0]}")
    return runs, summaries


def run_levels(target: Target, prompts: Prompts, levels: Sequence[int], turns: int,
               sampler: MemorySampler | None, progress: Callable[[str], None],
               recordings: Path | None = None) -> list[dict[str, Any]]:
    """Every concurrency level in turn; the daemon's records are matched per level."""
    results = []
    for n in levels:
        progress(f"concurrency {n}: {n} call(s) x {turns} question(s) + barge-in")
        runs, summaries = measure_level(
            target, f"c={n}", lambda n=n: run_level(target, prompts, n, turns), sampler,
            progress)
        if recordings is not None:
            recordings.mkdir(parents=True, exist_ok=True)
            for run in runs:
                save_call(run, recordings / f"c{n}-call{run.index + 1}")
        results.append(level_result(n, runs, summaries, intervals(target.probe),
                                    realtime(target.probe)))
    return results
