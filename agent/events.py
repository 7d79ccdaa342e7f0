"""What happens in a call — finished turns, tools carried out, events — and ``CallLog``, the
one sink that writes them to the call record and the metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
    """Something that happened in the call: barge_in, dtmf, tool, reprompt, error, …"""

    kind: str
    detail: str = ""


@dataclass(frozen=True)
class ToolUse:
    """A tool was carried out during turn ``turn``."""

    turn: int
    outcome: ToolOutcome


Sink = Callable[[TurnRecord | ToolUse | CallEvent], None]


class CallLog:
    """The one sink of a call: each event goes to the call record and the metrics."""

    def __init__(self, call_id: str, recorder: CallRecorder | None,
                 metrics: Metrics | None) -> None:
        self.call_id = call_id
        self.recorder = recorder
        self.metrics = metrics
        self._media_seen: dict[str, int] = {}  # media counters already on /metrics

    def write(self, method: str, *args: Any) -> None:
        """One write to the call record, if records are kept."""
        if self.recorder is not None:
            getattr(self.recorder, method)(*args)

    def media(self, rtp: dict[str, int], jitter: dict[str, int]) -> None:
        """The media counters so far (live on /metrics during the call)."""
        if self.metrics is not None:
            self.metrics.count_media(self._media_seen, rtp, jitter)

    def __call__(self, event: TurnRecord | ToolUse | CallEvent) -> None:
        now = time.time()
        metrics = self.metrics
        if isinstance(event, TurnRecord):
            if metrics is not None:
                metrics.observe_turn(event.timings.relative_ms())
            self.write("add_turn", self.call_id, event.index, now, event.user_text,
                       event.agent_text, event.stt_confidence, event.interrupted,
                       event.timings.relative_ms())
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
