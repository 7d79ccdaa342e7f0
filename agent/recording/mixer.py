"""Two mono streams laid side by side on the call's clock: caller left, agent right.

The media leg feeds it on its 20 ms tick: the frame it sent toward the caller (always one
per tick) and the caller's audio the jitter buffer released in that tick (none, one or
several chunks). The agent's side is therefore the clock. The caller's side trails it by
the jitter buffer's delay; when it falls further behind (the caller's side sent nothing, or
the call was muted) the gap is filled with silence so later speech stays in place.
"""

from __future__ import annotations

import numpy as np


class StereoMixer:
    """Collects both sides and hands out aligned stereo blocks (int16, shape (n, 2))."""

    def __init__(self, rate: int, max_lag: float = 0.2) -> None:
        self.rate = rate
        self.max_lag = int(max_lag * rate)
        self._caller: list[np.ndarray] = []
        self._agent: list[np.ndarray] = []
        self._caller_len = 0
        self._agent_len = 0
        self.samples = 0  # stereo samples handed out so far

    def caller(self, pcm: np.ndarray) -> None:
        if len(pcm):
            self._caller.append(pcm)
            self._caller_len += len(pcm)

    def agent(self, frame: np.ndarray) -> None:
        """One frame as sent; the caller's side is padded if it trails too far."""
        self._agent.append(frame)
        self._agent_len += len(frame)
        behind = self._agent_len - self._caller_len - self.max_lag
        if behind > 0:
            self.caller(np.zeros(behind, dtype=np.int16))

    @property
    def pending(self) -> int:
        """Agent samples not yet handed out."""
        return self._agent_len

    def take(self) -> np.ndarray:
        """The stereo samples both sides have reached; the rest waits for the next call."""
        n = min(self._caller_len, self._agent_len)
        left, self._caller, self._caller_len = _split(self._caller, n)
        right, self._agent, self._agent_len = _split(self._agent, n)
        self.samples += n
        return np.column_stack((left, right)) if n else np.zeros((0, 2), dtype=np.int16)

    def finish(self) -> np.ndarray:
        """Everything left, the shorter side padded with silence."""
        n = max(self._caller_len, self._agent_len)
        for side, length in ((self.caller, self._caller_len), (self._pad_agent,
                                                               self._agent_len)):
            if length < n:
                side(np.zeros(n - length, dtype=np.int16))
        return self.take()

    def _pad_agent(self, pcm: np.ndarray) -> None:
        self._agent.append(pcm)
        self._agent_len += len(pcm)


def _split(parts: list[np.ndarray], n: int) -> tuple[np.ndarray, list[np.ndarray], int]:
    """The first ``n`` samples of ``parts``, and what remains (as parts and its length)."""
    whole = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
    head, rest = whole[:n].astype(np.int16, copy=False), whole[n:]
    return head, ([rest] if len(rest) else []), len(rest)
