"""Which clauses of the model's answer are spoken: the answer stops at a repeated clause (a
small model looping), after a few sentences, or at a clause the fact check refuses; a last
sentence left unfinished (the token limit) is dropped, so answers end at a boundary."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from agent.speech.clauses import CLOSERS, ClauseSplitter

MAX_CLAUSES = 8  # a phone answer longer than this is cut (and so is a loop)
MAX_SENTENCES = 3  # answers end at a sentence boundary, after at most this many
SENTENCE_END = (".", "!", "?", "…")
_CODE = re.compile(r"[{}\[\]]|\"\s*:|\b(true|false|null)\b\s*[,}]")


@dataclass
class ClauseGate:
    """Lets clauses through in order until the answer should stop."""

    check: Callable[[str], bool] | None = None  # may this clause be spoken?
    # will the clause being written be refused, whatever follows? (the model stops sooner)
    doomed: Callable[[str], bool] | None = None
    model: bool = True  # the model's words (a fixed text is only cut when it loops)
    refused: bool = False  # ``check`` refused a clause
    _said: set[str] = field(default_factory=set)
    _sentences: int = 0

    def take(self, clause: str, last: bool = False) -> bool:
        """May ``clause`` be spoken? False once the answer should stop."""
        key = " ".join(clause.lower().split())
        if key in self._said or len(self._said) >= MAX_CLAUSES:
            return False
        ends = clause.rstrip(CLOSERS).endswith(SENTENCE_END)
        if self.model:
            if self._sentences >= MAX_SENTENCES or (last and self._sentences and not ends):
                return False
            if _CODE.search(clause):  # a tool's raw JSON read out is no answer
                self.refused = True
                return False
            if self.check is not None and not self.check(clause):
                self.refused = True
                return False
        self._sentences += ends
        self._said.add(key)
        return True

    def dooms(self, unfinished: str) -> bool:
        """The model's clause being written already has what ``check`` refuses."""
        if self.model and self.doomed is not None and unfinished and self.doomed(unfinished):
            self.refused = True
        return self.refused


async def gated(source: AsyncIterator[str], gate: ClauseGate,
                on_piece: Callable[[], None] = lambda: None) -> AsyncIterator[str]:
    """The clauses of ``source`` (text pieces) that ``gate`` lets through; the source is
    closed (generation stops) as soon as the answer stops."""
    splitter = ClauseSplitter(first_comma_chars=12)
    try:
        async for piece in source:
            on_piece()
            for clause in splitter.push(piece):
                if not gate.take(clause):
                    return
                yield clause
            if gate.dooms(splitter.pending):
                return
        tail = splitter.flush()
        for i, clause in enumerate(tail):
            if not gate.take(clause, last=i == len(tail) - 1):
                return
            yield clause
    finally:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()
