"""Per-turn timings: when each stage of the chain first produced something."""

from __future__ import annotations

from dataclasses import dataclass, field

STAGES = ("speech_end", "turn_detected", "stt_done", "llm_first_token", "first_clause",
          "tts_first_audio", "first_audio_out")
LATENCY_STAGES = STAGES[1:]  # measured from the first: the end of the caller's speech


@dataclass
class TurnTimings:
    """Clock times of the first occurrence of each stage in one turn."""

    index: int = 0
    marks: dict[str, float] = field(default_factory=dict)
    speech_start: float | None = None  # when the caller began speaking (not a stage)

    def mark(self, stage: str, when: float) -> None:
        """Record ``stage`` at ``when`` unless it was already recorded."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}")
        self.marks.setdefault(stage, when)

    def has(self, stage: str) -> bool:
        return stage in self.marks

    def relative_ms(self) -> dict[str, float]:
        """Each recorded stage in milliseconds after the end of the caller's speech."""
        origin = self.marks.get("speech_end")
        if origin is None:
            return {}
        return {s: round((self.marks[s] - origin) * 1000, 1) for s in STAGES if s in self.marks}

    def log_line(self) -> str:
        """Numbers only: never any text of the conversation."""
        return " ".join(f"{k}={v:.0f}" for k, v in self.relative_ms().items())
