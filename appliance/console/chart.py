"""Per-turn timings as a small inline SVG chart: one bar per turn, a segment per stage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.timings import STAGES

COLORS = {"turn_detected": "#8c8c8c", "stt_done": "#4c78a8", "llm_first_token": "#f58518",
          "first_clause": "#e45756", "tts_first_audio": "#72b7b2",
          "first_audio_out": "#54a24b"}
LABELS = {"turn_detected": "end of turn", "stt_done": "transcribed",
          "llm_first_token": "first token", "first_clause": "first clause",
          "tts_first_audio": "first audio", "first_audio_out": "heard"}
WIDTH, ROW, LEFT = 560, 18, 54


@dataclass(frozen=True)
class Segment:
    x: float
    width: float
    stage: str
    ms: float
    color: str
    label: str


@dataclass(frozen=True)
class Bar:
    y: float
    turn: int
    total_ms: float
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class Chart:
    bars: tuple[Bar, ...]
    width: int
    height: int
    scale_ms: float
    ticks: tuple[tuple[float, int], ...]  # (x, ms)
    legend: tuple[tuple[str, str], ...]  # (color, label)


def timing_chart(turns: list[dict[str, Any]]) -> Chart | None:
    """From each turn's ``timings`` (ms after the caller stopped); None when none has any."""
    rows = [(t["idx"], t.get("timings") or {}) for t in turns]
    rows = [(i, tm) for i, tm in rows if any(s in tm for s in STAGES[1:])]
    if not rows:
        return None
    longest = max(max(float(v) for v in tm.values()) for _, tm in rows)
    scale = _nice(max(longest, 100.0))
    span = WIDTH - LEFT - 10
    bars = []
    for n, (idx, tm) in enumerate(rows):
        segments, start = [], 0.0
        for stage in STAGES[1:]:
            if stage not in tm:
                continue
            end = max(float(tm[stage]), start)
            segments.append(Segment(LEFT + start / scale * span,
                                    max((end - start) / scale * span, 1.0), stage, end,
                                    COLORS[stage], LABELS[stage]))
            start = end
        bars.append(Bar(8 + n * ROW, idx, start, tuple(segments)))
    ticks = tuple((LEFT + f * span, round(f * scale)) for f in (0, 0.25, 0.5, 0.75, 1))
    height = 8 + len(bars) * ROW + 22
    return Chart(tuple(bars), WIDTH, height, scale, ticks,
                 tuple((COLORS[s], LABELS[s]) for s in STAGES[1:]))


def _nice(ms: float) -> float:
    """A round axis length at or above ``ms``."""
    for step in (100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000):
        if ms <= step * 4:
            return float(-(-ms // step) * step)
    return float(-(-ms // 10000) * 10000)
