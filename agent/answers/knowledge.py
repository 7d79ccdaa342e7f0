"""What an agent knows, and which of it a caller's question is about.

Knowledge comes two ways: question/answer entries (an answer said word for word when a
caller's question matches one of its questions well) and free facts (lines of text the
model may phrase an answer from). Matching is lexical on topic words (stemmed, synonyms
folded, rare words weigh more): predictable, instant, and good enough to tell "asked about
something we know" from "asked about something we do not".
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from agent.answers.scope import days_named
from agent.answers.words import CONCEPTS, terms

_PARTS = re.compile(r"\band\b|\balso\b|[?;]", re.IGNORECASE)
VERBATIM = 0.5  # share of the question an entry must cover to be said word for word
RELEVANT = 0.34  # share below which the question is about nothing the agent knows
MARGIN = 0.15  # a verbatim answer must beat the next entry by this much


@dataclass(frozen=True)
class Entry:
    """One piece of knowledge: an answer, and questions it answers (none for a free fact)."""

    answer: str
    questions: tuple[str, ...] = ()

    @property
    def verbatim(self) -> bool:
        """A question/answer entry: its answer is said word for word."""
        return bool(self.questions)


@dataclass(frozen=True)
class Match:
    """The entry a question is about, and how much of the question it covers (0..1)."""

    entry: Entry
    score: float
    runner_up: float = 0.0

    missing: frozenset[str] = frozenset()  # topics asked (price, hours …) it does not cover

    @property
    def relevant(self) -> bool:
        return self.score >= RELEVANT and not self.missing

    @property
    def verbatim(self) -> bool:
        """Said as written: a question/answer entry matched well and clearly."""
        return self.entry.verbatim and self.strong

    @property
    def strong(self) -> bool:
        """Matched well and clearly, every topic asked covered."""
        return (self.score >= VERBATIM and self.score - self.runner_up >= MARGIN
                and not self.missing)


def facts(text: str) -> list[Entry]:
    """Free facts: one per non-empty line (a very long line is split into sentences)."""
    out = []
    for line in text.splitlines():
        line = line.strip(" -*•\t")
        if not line:
            continue
        parts = re.split(r"(?<=[.!?])\s+(?=[A-Z])", line) if len(line) > 600 else [line]
        out.extend(Entry(p.strip()) for p in parts if p.strip())
    return out


class Knowledge:
    """An agent's entries, indexed by topic word."""

    def __init__(self, entries: list[Entry]) -> None:
        self.entries = entries
        self._terms = [self._entry_terms(e) for e in entries]
        # the days a question/answer entry is about ("Are you open on Saturday?"): it does
        # not answer a question about other days, or about no day in particular
        self._days = [days_named(" ".join(e.questions)) for e in entries]
        count = max(1, len(entries))
        frequency: dict[str, int] = {}
        for found in self._terms:
            for term in found:
                frequency[term] = frequency.get(term, 0) + 1
        self._idf = {t: math.log(1 + count / n) for t, n in frequency.items()}
        self._unseen = math.log(1 + count / 0.5)  # a word no entry has weighs most

    @classmethod
    def build(cls, text: str = "", pairs: tuple[tuple[tuple[str, ...], str], ...] = ()
              ) -> Knowledge:
        """From free text and (questions, answer) pairs."""
        return cls([Entry(answer, tuple(q)) for q, answer in pairs] + facts(text))

    @staticmethod
    def _entry_terms(entry: Entry) -> Counter[str]:
        found = Counter(terms(entry.answer))
        for question in entry.questions:
            found.update(terms(question))
        return found

    def __bool__(self) -> bool:
        return bool(self.entries)

    def weight(self, term: str) -> float:
        return self._idf.get(term, self._unseen)

    def match(self, question: str) -> Match | None:
        """The entry ``question`` is most about; None if it shares no topic word with any."""
        asked = set(terms(question))
        if not asked or not self.entries:
            return None
        total = sum(self.weight(t) for t in asked)
        days = days_named(question)
        # by share of the question covered, then whether the entry is about the days asked
        # (Saturday's answer is not the answer to "when are you open?"), then by how often
        # it names what was asked ("Opening hours … closed" over "… limited to two
        # hours"); on a tie a question/answer entry wins over a free fact
        scored = sorted(((sum(self.weight(t) for t in asked & set(found)) / total,
                          not self._days[i] or bool(self._days[i] & days),
                          sum(found[t] for t in asked), self.entries[i].verbatim, i)
                         for i, found in enumerate(self._terms)), reverse=True)
        best, fits, hits, _, index = scored[0]
        if best <= 0:
            return None
        entry = self.entries[index]
        # the closest rival that would say something else (a free fact on the same topic
        # does not compete with a written answer); one named half as often is no rival
        runner_up = next((s for s, _, h, verbatim, i in scored[1:]
                          if self.entries[i].answer != entry.answer
                          and (verbatim or not entry.verbatim)
                          and not (s == best and 2 * h <= hits)), 0.0)
        if not fits:  # about other days: still the topic, never said as the answer
            runner_up = best
        missing = frozenset(t for t in asked & CONCEPTS if t not in self._terms[index])
        return Match(entry, round(best, 3), round(runner_up, 3), missing)

    def match_parts(self, question: str) -> list[Match]:
        """One match per part of a question that asks two things ("how much is an oil change
        and are you open Saturday?"), when each part matches a different entry; else the
        match of the whole question (or nothing)."""
        parts = [p for p in _PARTS.split(question) if terms(p)]
        if len(parts) > 1:
            found = [self.match(p) for p in parts]
            if all(m is not None and m.relevant for m in found) and \
                    len({m.entry.answer for m in found if m}) == len(found):
                return [m for m in found if m]
        whole = self.match(question)
        return [whole] if whole is not None else []

    def text(self) -> str:
        """Everything known, as text (what the model is told and what facts are checked
        against)."""
        return "\n".join(e.answer if not e.verbatim else f"{e.questions[0]} {e.answer}"
                         for e in self.entries)
