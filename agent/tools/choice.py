"""Which tool (if any) a caller's words ask for, decided before the model is asked.

A 135M-parameter model does not choose tools reliably even when decoding is constrained to
valid calls (measured: it answers in words nearly every time). So the decision is made
here, from the words of the tool's name, description, targets and parameters plus a few
built-in cue words for transfer and hang-up; the model then only fills in the arguments,
with decoding constrained to the tool's JSON Schema.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

STOP = {"the", "a", "an", "to", "of", "and", "or", "for", "is", "are", "my", "me", "i", "you",
        "your", "it", "in", "on", "at", "be", "can", "could", "would", "please", "with",
        "what", "when", "where", "how", "do", "does", "this", "that", "there", "caller",
        "by", "about", "some", "someone's", "want", "need", "like", "get", "tell", "let",
        "just", "now", "up", "hi", "hello", "yes", "no", "ok", "okay", "call", "end", "look",
        "say", "put", "give", "number", "will", "know", "help", "check", "use", "when's",
        "has", "have", "had", "yet", "much", "many", "any", "from", "out", "which", "who"}
CUES = {
    "transfer": {"person", "human", "someone", "somebody", "agent", "transfer", "through",
                 "connect", "operator", "representative", "speak", "talk", "staff",
                 "pharmacist", "doctor", "nurse", "reception", "desk"},
    "hangup": {"bye", "goodbye", "hang", "that's all", "thats all", "nothing else",
               "all set", "done", "end the call", "end this call"},
    "send_dtmf": {"press", "dial", "tone", "tones", "keypad"},
}
THRESHOLD = 1.0


@dataclass(frozen=True)
class Intent:
    """The tool the caller's words point to, and how strongly."""

    tool: Any
    score: float


def stem(word: str) -> str:
    """Crude English stem: shipped, shipping, ships → ship."""
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            word = word[: -len(suffix)]
            break
    if len(word) > 3 and word[-1] == word[-2]:  # shipp → ship
        word = word[:-1]
    return word


def words(text: str) -> list[str]:
    """Lower-case content words, stemmed."""
    found = re.findall(r"[a-z']+", text.lower())
    return [stem(w) for w in found if w not in STOP]


def _vocabulary(tool: Any) -> tuple[set[str], set[str]]:
    """(tool words from its own text, built-in cue phrases)."""
    props = (tool.parameters or {}).get("properties", {})
    enums = [str(v) for spec in props.values() for v in spec.get("enum", [])]
    text = " ".join([tool.name.replace("_", " "), tool.description, *tool.targets, *props,
                     *enums])
    return set(words(text)), CUES.get(tool.kind, set())


def choose(utterance: str, tools: Sequence[Any]) -> Intent | None:
    """The best-matching tool if it matches well enough, else None (just talk)."""
    said_set = set(words(utterance))
    lowered = utterance.lower()
    best: Intent | None = None
    for tool in tools:
        own, cues = _vocabulary(tool)
        score = float(len(said_set & own))
        score += sum(1.5 for cue in cues if (" " in cue and cue in lowered)
                     or stem(cue) in said_set)
        if best is None or score > best.score:
            best = Intent(tool, score)
    if best is None or best.score < THRESHOLD:
        return None
    return best


NUMERIC_HINTS = ("number", "id", "account", "code", "order", "reference", "pin", "zip",
                 "digits")
NUMBER_WORDS = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4",
                "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9"}


def spoken_digits(utterance: str) -> str:
    """The digits a caller said, spoken as numerals or words ("four 5 six" → "456")."""
    out = []
    for token in re.findall(r"[a-z]+|\d+", utterance.lower()):
        if token.isdigit():
            out.append(token)
        elif token in NUMBER_WORDS:
            out.append(NUMBER_WORDS[token])
    return "".join(out)


def needs_number(schema: dict[str, Any]) -> bool:
    """Some required argument is a number only the caller can give (order, account …)."""
    props = schema.get("properties", {})
    return any(props.get(n, {}).get("type") == "integer" or any(h in n for h in NUMERIC_HINTS)
               for n in schema.get("required", list(props)))


def known_arguments(tool: Any, utterance: str, schema: dict[str, Any]) -> dict[str, Any] | None:
    """Arguments read straight from the caller's words when every required one is a number
    the caller said (an order or account number); None to let the model fill them in."""
    props = schema.get("properties", {})
    required = schema.get("required", list(props))
    if not required:
        return None
    digits = spoken_digits(utterance)
    found: dict[str, Any] = {}
    for name in required:
        spec = props.get(name, {})
        numeric = spec.get("type") == "integer" or any(h in name for h in NUMERIC_HINTS)
        if not numeric or not digits:
            return None
        found[name] = int(digits) if spec.get("type") == "integer" else digits
    return found


def transfer_target(utterance: str, tool: Any) -> str:
    """The transfer target label the caller's words match best (the first one if none)."""
    said = set(words(utterance))
    labels = list(tool.targets)
    return max(labels, key=lambda label: len(said & set(words(label)))) if labels else ""
