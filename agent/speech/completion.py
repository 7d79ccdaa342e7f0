"""Is the caller's turn finished? Cheap signals that end a turn early or make it wait.

The words so far (the speculative transcript) say "not finished" when they stop on a word
that cannot end a sentence ("and", "my", "is", …) or in the middle of a phone number. An
audio turn model (``TurnModel``) may add its own judgement from the sound of the voice.
"""

from __future__ import annotations

import re
from typing import Protocol

from agent.media.audio import AudioChunk

# Words a sentence does not end on: conjunctions, articles, possessives, prepositions,
# copulas, fillers. ("I'm done." or "That's it." end on other words.)
UNFINISHED_ENDINGS = frozenset({
    "and", "or", "but", "so", "because", "the", "a", "an", "my", "your", "our", "their",
    "his", "her", "its", "is", "are", "was", "were", "am", "be", "to", "for", "of", "with",
    "at", "on", "in", "from", "into", "by", "about", "than", "as", "if", "then", "that",
    "which", "who", "whose", "when", "where", "um", "uh", "er", "erm", "like", "i", "i'm",
    "we", "you", "he", "she", "they", "it's", "there's", "let's", "please", "also",
})
# ... but a verb's particle ends one: "Where can I park when I come in?", "Can I stop by?"
PARTICLE_VERBS = frozenset({
    "come", "came", "coming", "check", "checked", "sign", "signed", "log", "logged", "drop",
    "dropped", "stop", "stopped", "pop", "walk", "get", "go", "going", "hold", "bring",
    "send", "fill", "hand", "turn", "plug", "pass", "swing", "call", "calling", "move",
})
NUMBER_WORDS = re.compile(r"\b(number|phone|cell|mobile|digits|zip|postcode|code)\b", re.I)
PHONE_DIGITS = 10  # a phone number read out in groups is complete at ten digits


class TurnModel(Protocol):
    """An audio end-of-turn model: the probability that the speech so far is a whole turn."""

    def complete(self, audio: AudioChunk) -> float: ...


def looks_unfinished(text: str) -> bool:
    """The words stop where a sentence cannot end."""
    stripped = text.strip()
    if stripped.endswith(("...", "…", ",", "-")):
        return True
    words = re.findall(r"[\w'’]+", stripped.lower())
    if not words:
        return False
    if words[-1] == "please" and re.search(r",\s*please\W*$", stripped, re.I):
        return False  # "Could you repeat that, please?" ends; "Could you please" does not
    if words[-1] in UNFINISHED_ENDINGS:
        return not (words[-1] in ("in", "on", "by") and len(words) > 1
                    and words[-2] in PARTICLE_VERBS)
    digits = sum(len(w) for w in words if w.isdigit())
    return bool(NUMBER_WORDS.search(stripped)) and words[-1].isdigit() and \
        0 < digits < PHONE_DIGITS


# What a listener says to keep the speaker going, not to take the floor (and what the
# transcriber makes of "mm-hm": letters, "um").
BACKCHANNEL = frozenset(re.findall(r"\S+", """
mm mmm mhm mhmm mmhm mmhmm hm hmm uh huh uhhuh um ah aha oh yeah yep yes okay ok right sure
alright i see got it cool fine good great m h k gotcha exactly true nice wow indeed totally
"""))
# A yes to a question is an answer, not a backchannel.
ANSWERS = frozenset(re.findall(r"\S+", "yeah yep yes okay ok right sure alright fine good great "
                                       "exactly"))


def backchannel(text: str, agent_asks: bool) -> bool:
    """Short words over the agent that do not take the floor: "mm-hm", "yeah", "okay", a
    cough that came out as no words. Over a question a "yes" is an answer, not one."""
    words = re.findall(r"[a-z']+", text.lower().replace("-", " "))
    if not set(words) <= BACKCHANNEL:
        return False
    return not (agent_asks and ANSWERS & set(words))
