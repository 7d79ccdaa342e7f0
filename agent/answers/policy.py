"""How the agent answers a caller's words: a synchronous decision, tested without models.

In order: words that make no sense are asked again (twice in a row: a transfer or a call
back is offered); a yes to that offer is the transfer; a question matching a
question/answer entry gets that answer word for word; a question about nothing the agent
knows gets "I don't know" (with the offer) instead of a guess; everything else is the
model's, with its clauses checked (``FactGuard``) and the matched fact as the fallback.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from agent.answers.knowledge import Knowledge
from agent.answers.scope import narrow
from agent.answers.words import CONCEPTS, STOP, stem, terms, tokens, wordset

MIN_CONFIDENCE = 0.4  # mean token probability under which words are taken as misheard
MISSES_BEFORE_OFFER = 2

SOCIAL = wordset("help going doing day morning afternoon evening talk speak someone "
                 "person hear great perfect fine good nice wonderful cool awesome appreciate "
                 "welcome sound sounds lovely bye goodbye later cheers fantastic excellent "
                 "understand understood got gotcha bad glad happy lot")
YES = wordset("yes yeah yep yup sure please ok okay alright right certainly "
                "definitely")
NO = wordset("no nope not don't never")


FAREWELL = re.compile(r"\b(good ?bye|bye(-bye)?|that's all|that is all|nothing else|have a "
                      r"(nice|good|great) day)\b", re.IGNORECASE)
# "my name is Maria Gonzalez", "my number is 555 …": about the caller, not a question
INTRODUCTION = re.compile(r"\b(?i:my name is|my name's|this is|i'm|i am)\s+[A-Z][\w'-]*"
                          r"(?:\s+[A-Z][\w'-]*)*|\b(?i:my (?:phone |mobile |cell )?number is)"
                          r"[\s\d().-]+")


def farewell(text: str) -> bool:
    """The caller says goodbye (and asks nothing more)."""
    return bool(FAREWELL.search(text)) and "?" not in text


class Step(enum.Enum):
    KNOWN = "known"  # say the entry's answer as written
    FACT = "fact"  # say the matched free fact as written (synthesized now)
    GROUNDED = "grounded"  # the model answers, checked; the matched fact if refused
    FREE = "free"  # the model answers (checked when the agent has knowledge)
    UNKNOWN = "unknown"  # say that the agent does not know
    MISHEARD = "misheard"  # ask the caller to say it again
    GOODBYE = "goodbye"  # the caller said goodbye: the agent's goodbye, then hang up
    OFFER = "offer"  # missed twice: offer a person (or a call back)
    TRANSFER = "transfer"  # the caller took the offer


@dataclass(frozen=True)
class Phrases:
    """What the agent says when it does not know or did not understand."""

    unknown: str = "I'm sorry, I don't have that information."
    misheard: str = "Sorry, I didn't catch that. Could you say it again?"
    offer_transfer: str = "I can put you through to someone who can help. Would you like that?"
    offer_later: str = "I'm sorry, I can't help with that on this call."
    trouble: str = "I'm sorry, I'm having trouble understanding you."
    anything_else: str = "Is there anything else I can help you with?"


@dataclass(frozen=True)
class Plan:
    step: Step
    say: str = ""  # the words for KNOWN, UNKNOWN, MISHEARD and OFFER
    fallback: str = ""  # GROUNDED: the fact said when the model's answer is refused


def nonsense(text: str, confidence: float | None) -> bool:
    """Words that cannot be answered: no words, a repeated word run, or very unsure."""
    words = tokens(text)
    if not words:
        return True
    if confidence is not None and confidence < MIN_CONFIDENCE:
        return True
    runs = max(len(list(group)) for group in _runs(words))
    return runs >= 3 and len(words) >= 4 and len(set(words)) <= len(words) / 2


def _runs(words: list[str]):
    start = 0
    for i in range(1, len(words) + 1):
        if i == len(words) or words[i] != words[start]:
            yield words[start:i]
            start = i


THANKS = wordset("thank thanks cheers")


def social(text: str) -> bool:
    """Small talk or a request for help in general: nothing to look up. Thanks with one
    stray word ("Great, thank you, Dubai." for a misheard goodbye) is still thanks."""
    words = tokens(text)
    other = [t for t in words if t not in STOP and t not in SOCIAL
             and stem(t) not in SOCIAL and not t.isdigit()]
    return not other or (len(other) == 1 and bool(THANKS & set(words)) and "?" not in text
                         and terms(other[0])[0] not in CONCEPTS)


REFERRING = frozenset(["that", "it", "this", "those", "them", "one", "there"])


def refers(text: str) -> bool:
    """A short question about something said before ("how much is that?")."""
    words = tokens(text)
    return bool(REFERRING.intersection(words)) and len(terms(text)) <= 2


def agrees(text: str) -> bool | None:
    """A yes (True), a no (False), or neither (None)."""
    words = set(tokens(text))
    if words & NO:
        return False
    if words & YES:
        return True
    return None


class Answerer:
    """One call's answering state: misses in a row and an open offer."""

    def __init__(self, knowledge: Knowledge, phrases: Phrases = Phrases(),
                 can_transfer: bool = False, model_phrases: bool = False) -> None:
        self.knowledge = knowledge
        self.model_phrases = model_phrases  # a matched free fact is put in words by the model
        self.phrases = phrases
        self.can_transfer = can_transfer
        self.misses = 0
        self.offered = False
        self._before = ""  # the caller's previous words answered from knowledge

    @property
    def grounded(self) -> bool:
        """The agent has knowledge: it answers from it and nothing else."""
        return bool(self.knowledge)

    def hear(self, text: str, confidence: float | None = None) -> Plan | None:
        """Before anything else: words that make no sense, or a yes to an offer."""
        offered, self.offered = self.offered, False
        if nonsense(text, confidence):
            self.misses += 1
            if self.misses < MISSES_BEFORE_OFFER:
                return Plan(Step.MISHEARD, self.phrases.misheard)
            self.misses = 0
            return self._offer(self.phrases.trouble, Step.OFFER)
        self.misses = 0
        if offered and self.can_transfer and agrees(text) and not farewell(text):
            return Plan(Step.TRANSFER)
        return None

    def answer(self, text: str) -> Plan:
        """How to answer words no tool was asked for."""
        if farewell(text):
            return Plan(Step.GOODBYE)
        if not self.grounded or social(text):  # small talk is the model's
            return Plan(Step.FREE)
        text = INTRODUCTION.sub(" ", text).strip() or text
        asked, before, self._before = text, self._before, text
        if refers(text) and before:  # "and how much is that?": what was asked before
            asked = f"{before} {text}"
        matches = self.knowledge.match_parts(asked)
        if len(matches) > 1:  # two things asked, two facts known
            return Plan(Step.FACT, " ".join(narrow(m.entry.answer, asked) for m in matches))
        match = matches[0] if matches else None
        if match is not None and match.verbatim:
            return Plan(Step.KNOWN, match.entry.answer)
        if match is not None and match.relevant:  # a free fact: the part that was asked
            fact = narrow(match.entry.answer, asked)
            if not self.model_phrases:
                return Plan(Step.FACT, fact)
            return Plan(Step.GROUNDED, fallback=fact)
        # about something, and nothing known about it: no guess
        return self._offer(self.phrases.unknown, Step.UNKNOWN)

    def refused(self, small_talk: bool = False) -> Plan:
        """The model's answer was refused and no fact matched: say so, and offer (or, in
        small talk, just ask what else the caller needs)."""
        if small_talk:
            return Plan(Step.FREE, self.phrases.anything_else)
        return self._offer(self.phrases.unknown, Step.UNKNOWN)

    def _offer(self, opening: str, step: Step = Step.OFFER) -> Plan:
        if self.can_transfer:
            self.offered = True
        return Plan(step, offer_text(self.phrases, opening, step, self.can_transfer))


def offer_text(phrases: Phrases, opening: str, step: Step, can_transfer: bool) -> str:
    """``opening`` followed by the offer of a person (or, without one, a plain apology)."""
    if can_transfer:
        return f"{opening} {phrases.offer_transfer}"
    return opening if step is Step.UNKNOWN else f"{opening} {phrases.offer_later}"


def fixed_texts(phrases: Phrases, knowledge: Knowledge, can_transfer: bool) -> list[str]:
    """Every fixed text answering may say (for the phrase cache)."""
    return [phrases.misheard, phrases.anything_else,
            offer_text(phrases, phrases.unknown, Step.UNKNOWN, can_transfer),
            offer_text(phrases, phrases.trouble, Step.OFFER, can_transfer),
            *(e.answer for e in knowledge.entries if e.verbatim)]
