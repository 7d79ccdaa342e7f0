"""Words an agent expects to hear, favoured while a transcript is decoded.

A pharmacy's callers say drug names, a clinic's say its doctors' names: words a general
speech model hears as something commoner ("omeprazole" as "own purse already"). The agent's
own words (its knowledge, answers, transfer targets, tool values) are given to the decoder as
a list of phrases. While the decoder writes a word, a token that would make the text so far
the start of one of those phrases gets ``boost`` added to its score, if it was already near
the best (within ``window``): the model must have half-heard the word; nothing is made up
from silence. Only words the model does not have as one token of its own are favoured
(names, drugs; not "doctor"), and one begun but left unfinished gives its head start back
in the beam (``Match.refund``). A phrase is matched from the start of a word, across words
("Blue Cross"), ignoring case. Measured with ``switchboard eval stt --words`` (README,
"Speech-to-text accuracy").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

BOOST = 2.5  # added to a favoured token's score (log-odds)
WINDOW = 3.0  # ... when it was at most this far below the best token
MIN_START = 4  # letters a phrase's first token must bring (not "in" for "insulin")
MAX_WORDS = 20000  # an agent's distinct words looked at (a 1 MiB knowledge file has fewer)
MAX_PHRASES = 500  # favoured, of those the model does not know as one token
MAX_CANDIDATES = 16  # tokens looked at per step, best first
LETTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789' ")


def phrase_key(text: str) -> str:
    """A phrase as it is matched: lower case, letters, digits, apostrophes, single spaces."""
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def words_in(texts: Iterable[str]) -> tuple[str, ...]:
    """The distinct words of ``texts`` long enough to be favoured, in order of first use."""
    seen: dict[str, str] = {}
    for text in texts:
        for word in re.findall(r"[A-Za-z][A-Za-z']*[A-Za-z]", text):
            if len(word) >= MIN_START:
                seen.setdefault(word.lower(), word)
            if len(seen) >= MAX_WORDS:
                return tuple(seen.values())
    return tuple(seen.values())


@dataclass(frozen=True)
class Match:
    """Where decoding stands against the phrases: the text of each phrase begun so far."""

    partial: tuple[str, ...] = ()
    first: bool = True  # nothing written yet: a phrase may start without a space
    # What favouring gave the phrase begun and not yet finished, and what the last token
    # took back: a beam that starts a word and leaves it unfinished loses the head start
    # it got ("human" for "Humana"), so it does not win by it.
    pending: float = 0.0
    refund: float = 0.0


class WordBias:
    """Favours tokens that spell one of ``phrases``; built once per agent and token table."""

    def __init__(self, token_texts: list[str], phrases: Iterable[str], boost: float = BOOST,
                 window: float = WINDOW) -> None:
        # a word that is one token of its own is one the model knows well: not favoured
        known = {t.strip() for t in (x.lower() for x in token_texts) if t.startswith(" ")}
        keys = dict.fromkeys(k for k in (phrase_key(p) for p in phrases)
                             if len(k) >= MIN_START and not set(k.split()) <= known)
        self.phrases = tuple(keys)[:MAX_PHRASES]  # the first used, when there are more
        self._whole = frozenset(self.phrases)
        self.boost, self.window = boost, window
        self._prefixes = {k[:n] for k in self.phrases for n in range(1, len(k) + 1)}
        # a token's text as it would be matched: a word's leading space kept, lower case
        self._texts = [t.lower() for t in token_texts]

    def __bool__(self) -> bool:
        return bool(self.phrases)

    def _grow(self, match: Match, token: int) -> tuple[list[str], list[str]]:
        """The phrases begun that ``token`` goes on with, and the one it starts."""
        text = self._texts[token] if token < len(self._texts) else ""
        if not text or not set(text) <= LETTERS:
            return [], []
        going = [joined for joined in (before + text for before in match.partial)
                 if joined in self._prefixes]
        start = text.strip()
        fresh = [start] if ((text.startswith(" ") or match.first) and len(start) >= MIN_START
                            and start in self._prefixes) else []
        return going, fresh

    def adjust(self, logits: np.ndarray, match: Match) -> frozenset[int]:
        """Add ``boost`` (in place) to the near-best tokens that go on with a phrase; returns
        the tokens favoured."""
        top = float(logits.max())
        near = np.flatnonzero(logits >= top - self.window)
        if len(near) > MAX_CANDIDATES:
            near = near[np.argsort(logits[near])[::-1][:MAX_CANDIDATES]]
        favoured = frozenset(int(t) for t in near if any(self._grow(match, int(t))))
        for token in favoured:
            logits[token] += self.boost
        return favoured

    def follow(self, match: Match, token: int, favoured: frozenset[int] = frozenset()) -> Match:
        """The match after ``token`` was written. A phrase written whole keeps what favouring
        gave it; one left unfinished gives it back (``refund``, taken off the hypothesis's
        score by the beam search)."""
        going, fresh = self._grow(match, token)
        gain = self.boost if token in favoured else 0.0
        refund = 0.0 if going else match.pending
        pending = (match.pending if going else 0.0) + gain
        if any(p in self._whole for p in going + fresh):
            pending = 0.0
        return Match(tuple(going + fresh), False, pending, refund)
