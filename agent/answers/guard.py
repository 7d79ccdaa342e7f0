"""Checks on each clause the model writes before it is spoken.

A small model invents: opening hours, prices, insurance plans, people. A clause may only
state numbers and names that have a source — the agent's knowledge and instructions, what
tools returned, or (for numbers, days and the caller's own name) what the caller said. It
may not take on the caller's identity ("I'm Dr. Maria Gonzalez"), and an answer to a new
question may not repeat an earlier answer word for word. A refused clause is never spoken.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from agent.answers.words import numbers, same_words, stem, terms, tokens, wordset
from agent.speech.chat_model import Message

# Capitalised words that are no claim: the pronoun, titles, greetings, polite words.
PLAIN = wordset("""
i i'm i'll i've i'd ok okay yes no hello hi hey thanks thank sorry please sure great
mr mrs ms dr goodbye bye welcome alright
""")
DAYS = wordset("monday tuesday wednesday thursday friday saturday sunday")
WEEKDAYS = wordset("monday tuesday wednesday thursday friday")
# Words in a source that name days without naming them: "on weekdays" sources "Monday".
IMPLIED_DAYS = {"weekday": WEEKDAYS, "weekdays": WEEKDAYS, "weekend": DAYS - WEEKDAYS,
                "weekends": DAYS - WEEKDAYS, "daily": DAYS}
MONTHS = wordset("january february march april may june july august september october "
                   "november december")
# Month names that are everyday words too ("anything else you may need"): a month only with
# a capital inside a sentence ("closed in May"), or before a number ("May 5").
EVERYDAY_MONTHS = wordset("may march")
TITLES = ("dr.", "mr.", "mrs.", "ms.", "st.", "prof.")
_NAME_SAID = re.compile(
    r"\b(?i:my name is|my name's|this is|i am|i'm|it's|call me)\s+"
    r"((?:[A-Z][\w'-]+)(?:\s+[A-Z][\w'-]+){0,2})")
_SELF = re.compile(r"\b(?:i am|i'm|my name is|this is|you're speaking (?:to|with))\s+"
                   r"(?!sorry|glad|happy|afraid|here|able|going|not|so|just|calling)"
                   r"(?:[\w'.,-]+\s+){0,3}?([\w'-]+)\b", re.IGNORECASE)
_TITLED = re.compile(r"\b(?:dr|doctor|mr|mrs|ms|nurse)\.?\s+([\w'-]+)", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z][\w'’-]*")
# A clause that says what the business does, takes or has: "we accept …", "you can pay …",
# "Yes, we do." Its topic words need a source (the caller's own words are none).
_CLAIM = re.compile(
    r"\bwe (?:do |also |don't |do not |can |cannot |can't )?(?:accept|take|offer|have|provide"
    r"|support|sell|carry|deliver|ship|cover|allow|do|can)\b|\byou (?:can|may|could)\b",
    re.IGNORECASE)
_AFFIRM = re.compile(r"^\W*(?:yes|yeah|yep|of course|absolutely|certainly|definitely)\b",
                     re.IGNORECASE)
# Topic words every agent may use in a claim: helping, talking, the call itself.
FREE_TOPICS = frozenset(stem(w) for w in wordset("""
help talk speak ask question questions call calling line hold moment person someone
somebody assist assistance information anything else today again repeat spell number
"""))


def caller_names(history: Sequence[Message]) -> set[str]:
    """Names the caller gave for themselves ("my name is Maria Gonzalez"), lower case."""
    found: set[str] = set()
    for message in history:
        if message["role"] == "user":
            for match in _NAME_SAID.finditer(message["content"]):
                found.update(w.lower() for w in match.group(1).split())
    return found - PLAIN


@dataclass(frozen=True)
class Sources:
    """The words and numbers of what the agent may state (its instructions, knowledge and
    greeting), read once per agent, not once per answer."""

    words: frozenset[str]
    numbers: frozenset[int]
    topics: frozenset[str] = frozenset()  # topic words (stemmed, synonyms folded)

    @classmethod
    def of(cls, text: str) -> Sources:
        words = set(tokens(text))
        for word, days in IMPLIED_DAYS.items():
            if word in words:
                words |= days
        return cls(frozenset(words), frozenset(numbers(text)), frozenset(terms(text)))


@dataclass
class FactGuard:
    """Decides, clause by clause, whether the model's answer may be spoken."""

    sources: Sources  # knowledge, instructions, greeting: what the agent may state
    history: Sequence[Message]  # the call so far (the caller's words, tool results)
    refused: str = ""  # why the last refused clause was refused (for the event, no text)
    _source_words: set[str] = field(init=False)
    _source_numbers: set[int] = field(init=False)
    _names: set[str] = field(init=False)
    _caller_words: set[str] = field(init=False)
    _caller_numbers: set[int] = field(init=False)
    _topics: set[str] = field(init=False)
    _asked: str = field(init=False)
    _said: str = ""

    def __post_init__(self) -> None:
        tool_text = " ".join(m["content"] for m in self.history if m["role"] == "tool")
        caller_text = " ".join(m["content"] for m in self.history
                               if m["role"] in ("user", "keypad"))
        self._source_words = self.sources.words | set(tokens(tool_text))
        self._source_numbers = self.sources.numbers | numbers(tool_text)
        self._names = caller_names(self.history)
        self._caller_words = set(tokens(caller_text))
        self._caller_numbers = numbers(caller_text)
        self._topics = set(self.sources.topics) | set(terms(tool_text)) | FREE_TOPICS
        self._asked = next((m["content"] for m in reversed(self.history)
                            if m["role"] == "user"), "")

    def allows(self, clause: str) -> bool:
        """May ``clause`` (the next part of the answer) be spoken?"""
        reason = (self._unsourced_number(clause) or self._unsourced_name(clause)
                  or self._unsourced_claim(clause) or self._identity(clause)
                  or self._repeat(clause))
        if reason:
            self.refused = reason
            return False
        self._said = f"{self._said} {clause}".strip()
        return True

    def refuses_already(self, unfinished: str) -> bool:
        """The start of a clause (the model still writing it) already holds what ``allows``
        refuses whatever follows: a number written in digits, or a day or month, with no
        source. Only its whole words count (the last may still grow: "1" → "10"); names
        are left to the whole clause (where a clause ends decides whether a capital starts
        a sentence)."""
        whole = unfinished[:unfinished.rfind(" ") + 1]
        reason = self._unsourced_number(whole, spelled=False) or self._unsourced_day(whole)
        if reason:
            self.refused = reason
        return bool(reason)

    def _unsourced_day(self, text: str) -> str:
        for word in _WORD.findall(text):
            low = word.lower().replace("’", "'")
            if low in EVERYDAY_MONTHS and not _names_month(text, word):
                continue
            if (low in DAYS or low in MONTHS) and low not in self._source_words \
                    and low not in self._caller_words:
                return "day"
        return ""

    def _unsourced_number(self, clause: str, spelled: bool = True) -> str:
        extra = numbers(clause, spelled) - self._source_numbers - self._caller_numbers
        return "number" if extra else ""

    def _unsourced_name(self, clause: str) -> str:
        if self._unsourced_day(clause):
            return "day"
        words = _WORD.findall(clause)
        for index, word in enumerate(words):
            low = word.lower().replace("’", "'")
            if low in DAYS or low in MONTHS:  # "May I …" opens a sentence: no name either
                continue
            if not word[0].isupper() or low in PLAIN or low in self._source_words:
                continue
            if low.rstrip("s") in self._source_words or low in self._names:
                continue
            starts = index == 0 or _sentence_start(clause, word)
            after = words[index + 1] if index + 1 < len(words) else ""
            # "Blue Cross" at the start is a name; "On Saturday" is not
            follows = after[:1].isupper() and after.lower() not in DAYS | MONTHS | PLAIN
            if not starts or follows:
                return "name"
        return ""

    def _unsourced_claim(self, clause: str) -> str:
        """What the business does or takes ("Yes, you can pay by card") with no source; a
        bare "Yes, we do." claims what the caller asked about."""
        if not _CLAIM.search(clause):
            return ""
        about = {t for t in terms(_AFFIRM.sub("", clause)) if stem(t) not in FREE_TOPICS}
        if not about and _AFFIRM.match(clause):
            about = set(terms(self._asked))
        return "claim" if about - self._topics else ""

    def _identity(self, clause: str) -> str:
        """The agent speaks of itself with the caller's name, or gives the caller a title."""
        said = {w.lower() for w in _WORD.findall(clause)}
        if not said & self._names:
            return ""
        named = (m.group(1).lower() in self._names
                 for m in (*_TITLED.finditer(clause), *_SELF.finditer(clause)))
        return "identity" if any(named) else ""

    def _repeat(self, clause: str) -> str:
        """The answer so far repeats an earlier answer to a different question."""
        if self._said:
            return ""  # only the opening is compared: a repeat shows at once
        key = _key(clause)
        if len(key.split()) < 4:
            return ""  # "Sure." "You're welcome." may well come again
        pairs, asked = [], ""
        for message in self.history:
            if message["role"] == "user":
                asked = message["content"]
            elif message["role"] == "assistant" and asked:
                pairs.append((asked, message["content"]))
        question = asked
        for earlier, answer in pairs:
            if earlier is not question and _key(answer).startswith(key) \
                    and same_words(earlier, question) < 0.5:
                return "repeat"
        return ""


def _key(text: str) -> str:
    return " ".join(tokens(text))


def _names_month(text: str, word: str) -> bool:
    """``word`` (first occurrence; "May", "march") is the month: capitalised inside a
    sentence, or before a number."""
    at = text.find(word)
    before_number = re.match(r"\s+\d", text[at + len(word):]) is not None
    return word[0].isupper() and (before_number or not _sentence_start(text, word))


def _sentence_start(clause: str, word: str) -> bool:
    """``word`` (first occurrence) begins a sentence inside ``clause``."""
    at = clause.find(word)
    before = clause[:at].rstrip()
    if before.lower().endswith(TITLES):
        return False  # "Dr. Smith": the dot ends a title, not a sentence
    return not before or before[-1] in ".!?:"
