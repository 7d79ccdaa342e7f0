"""Transcribing while the caller is still talking.

Every ``every`` seconds of speech the words so far are transcribed (a *draft*) while the
agent has nothing else to do. When the turn ends, the transcriber gets the latest draft of
that speech and only has to check it in one pass and decode what came after, instead of
every word one by one; with an engine that verifies drafts (``Transcriber.drafts``) the words
are those it would have produced without one (with Moonshine's int8 products, which round a
one-pass check slightly differently, a word may differ on a hard clip: 2 of 45 measured).

Each draft also goes to the language model, when it can take it (``prefill``): the
conversation so far and the draft's words are evaluated while the caller talks, when the
model has nothing else to do, so the turn finds most of its prompt already in the cache.
So does the conversation itself once the agent has spoken (``ahead``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from agent.media.audio import AudioChunk
from agent.speech.chat_model import Message
from agent.speech.transcriber import Transcriber, Transcript
from agent.speech.turns import TurnEnded

log = logging.getLogger(__name__)
DRAFT_EVERY = 0.8  # seconds of speech between drafts
DRAFT_FROM = 1.2  # no draft of shorter speech: it is quick to transcribe anyway


class Drafts:
    """The drafts of the caller's speech in progress (one speech at a time)."""

    def __init__(self, transcriber: Transcriber, spawn: Callable[..., asyncio.Task],
                 every: float = DRAFT_EVERY, first: float = DRAFT_FROM, chat: object = None,
                 history: Sequence[Message] = ()) -> None:
        self.transcriber = transcriber
        self._prefill: Callable[[Sequence[Message]], None] | None = getattr(chat, "prefill",
                                                                             None)
        self._history = history  # the conversation (the dialogue's own list, as it grows)
        self._spawn = spawn
        self.every, self.first = every, first
        self._speech: float | None = None  # start time of the speech the drafts are of
        self._latest: Transcript | None = None
        self._task: asyncio.Task | None = None
        self._next = first
        self.taken = 0  # drafts made during the call

    @property
    def enabled(self) -> bool:
        return bool(getattr(self.transcriber, "drafts", False))

    def offer(self, speech: TurnEnded, audio: Callable[[TurnEnded], AudioChunk]) -> None:
        """The speech in progress so far; a draft is made of it when one is due."""
        if not self.enabled or (self._task is not None and not self._task.done()):
            return
        worker = getattr(self.transcriber, "worker", None)
        if worker is not None and not worker.idle:
            return  # another call's transcript is being made: it goes first, a draft waits
        if speech.start != self._speech:  # new speech: the old drafts are of nothing now
            self._speech, self._latest, self._next = speech.start, None, self.first
        if speech.speech_seconds < self._next:
            return
        self._next = speech.speech_seconds + self.every
        self._task = self._spawn(self._take(speech.start, audio(speech)), name="stt-draft")

    async def _take(self, start: float, audio: AudioChunk) -> None:
        try:
            draft = await self.transcriber.transcribe(audio, draft=self._latest,
                                                      background=True)
        except Exception as err:  # a failed draft costs nothing: the turn is decoded anyway
            log.warning("draft transcription failed: %s", type(err).__name__)
            return
        if start == self._speech:
            self._latest = draft
            self.taken += 1
            if draft.text:
                self._read(draft.text)

    def ahead(self) -> None:
        """The conversation so far (the agent has just spoken) to the language model, when
        it can take it: the caller's next turn then starts from its own words, not from the
        agent's last answer (a cached phrase, 20-30 tokens, was never evaluated; a short
        question gets no draft)."""
        self._read("")

    def _read(self, words: str) -> None:
        """The conversation and the caller's ``words`` so far to the model's prefill."""
        if self._prefill is None:
            return
        try:
            self._prefill([*self._history, Message(role="user", content=words)])
        except Exception as err:  # only a head start: the turn is evaluated anyway
            log.warning("prefill failed: %s", type(err).__name__)

    async def latest(self, start: float) -> Transcript | None:
        """The freshest draft of the speech that began at ``start`` (waiting for one in
        progress), or None."""
        if self._task is not None and not self._task.done() and start == self._speech:
            await asyncio.wait({self._task})
        return self._latest if start == self._speech else None
