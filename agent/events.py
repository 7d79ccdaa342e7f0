"""What happens in a call — finished turns, tools carried out, events — and ``CallLog``, the
one sink that writes them to the call record and the metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.clock import Clock, LoopClock
from agent.metrics import Metrics
from agent.records import CallRecorder
from agent.timings import TurnTimings
from agent.tools.runner import ToolOutcome


@dataclass
class TurnRecord:
    """One exchange, for the call record (text never goes to the log)."""

    index: int
    user_text: str = ""
    agent_text: str = ""
    interrupted: bool = False
    stt_confidence: float | None = None
    timings: TurnTimings = field(default_factory=TurnTimings)


@dataclass(frozen=True)
class CallEvent:
    """Something that happened in the call: barge_in, dtmf, tool, reprompt, error, hangup
    (the caller's; detail: greeting, answer or thinking when they hung up during it), …"""

    kind: str
    detail: str = ""


@dataclass(frozen=True)
class ToolUse:
    """A tool was carried out during turn ``turn``."""

    turn: int
    outcome: ToolOutcome


Sink = Callable[[TurnRecord | ToolUse | CallEvent], None]


class CallLog:
    """The one sink of a call: each event goes to the call record and the metrics.

    Every time in the record is read from the call's one clock and turned into wall-clock
    time from a single reading of both, so the record's times are in the order things
    happened (also on a test's virtual clock).
    """

    def __init__(self, call_id: str, recorder: CallRecorder | None,
                 metrics: Metrics | None, clock: Clock | None = None) -> None:
        self.call_id = call_id
        self.recorder = recorder
        self.metrics = metrics
        self.clock = clock or LoopClock()
        self._anchor: tuple[float, float] | None = None  # (wall, clock) read together
        self._media_seen: dict[str, int] = {}  # media counters already on /metrics

    def wall(self, at: float | None = None) -> float:
        """Wall-clock time of the clock time ``at`` (default: now)."""
        if self._anchor is None:
            self._anchor = (time.time(), self.clock.now())
        wall, clock = self._anchor
        return wall + ((self.clock.now() if at is None else at) - clock)

    def write(self, method: str, *args: Any) -> None:
        """One write to the call record, if records are kept."""
        if self.recorder is not None:
            getattr(self.recorder, method)(*args)

    def media(self, rtp: dict[str, int], jitter: dict[str, int]) -> None:
        """The media counters so far (live on /metrics during the call)."""
        if self.metrics is not None:
            self.metrics.count_media(self._media_seen, rtp, jitter)

    def __call__(self, event: TurnRecord | ToolUse | CallEvent) -> None:
        now = self.wall()
        metrics = self.metrics
        if isinstance(event, TurnRecord):
            if metrics is not None:
                metrics.observe_turn(event.timings.relative_ms())
            stopped = event.timings.marks.get("speech_end")
            started = event.timings.speech_start
            self.write("add_turn", self.call_id, event.index,
                       self.wall(started if started is not None else stopped),
                       event.user_text, event.agent_text, event.stt_confidence,
                       event.interrupted, event.timings.relative_ms(),
                       None if stopped is None else self.wall(stopped))
        elif isinstance(event, ToolUse):
            outcome = event.outcome
            if metrics is not None:
                metrics.tool_calls.labels(outcome.name, "ok" if outcome.ok else "failed").inc()
                if not outcome.ok:
                    metrics.tool_failures.labels(outcome.name).inc()
            self.write("add_tool_call", self.call_id, event.turn, now, outcome.name,
                       outcome.arguments, outcome.ok, outcome.result, outcome.error,
                       outcome.latency_ms)
        else:
            if metrics is not None and event.kind == "barge_in":
                metrics.barge_ins.inc()
            self.write("add_event", self.call_id, now, event.kind, event.detail)
