"""Which tool (if any) a caller's words ask for: a planning step before the model answers.

A 135M-parameter model does not choose tools reliably even when decoding is constrained to
valid calls (measured: it answers in words nearly every time). So the decision is made
here, from the words of the tool's name, description, targets and parameters plus a few
built-in cue words for transfer and hang-up; the model then only fills in the arguments,
with decoding constrained to the tool's JSON Schema (``plan``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.speech.chat_model import ChatModel, Message
from agent.tools.spec import ToolCall, ToolSpec, argument_schema

log = logging.getLogger(__name__)
ARGUMENTS_TIMEOUT = 2.5  # seconds the model may take to fill in a tool's arguments

STOP = {"the", "a", "an", "to", "of", "and", "or", "for", "is", "are", "my", "me", "i", "you",
        "your", "it", "in", "on", "at", "be", "can", "could", "would", "please", "with",
        "what", "when", "where", "how", "do", "does", "this", "that", "there", "caller",
        "by", "about", "some", "someone's", "want", "need", "like", "get", "tell", "let",
        "just", "now", "up", "hi", "hello", "yes", "no", "ok", "okay", "call", "end", "look",
        "say", "put", "give", "number", "will", "know", "help", "check", "use", "when's",
        "has", "have", "had", "yet", "much", "many", "any", "from", "out", "which", "who"}
CUES = {
    # asking to be put through, not asking about someone: "Is Dr. Chen in?" is a question
    "transfer": {"person", "human", "someone", "somebody", "agent", "transfer", "through",
                 "connect", "operator", "representative", "speak", "talk"},
    "hangup": {"bye", "goodbye", "hang", "that's all", "thats all", "nothing else",
               "all set", "done", "end the call", "end this call"},
    "send_dtmf": {"press", "dial", "tone", "tones", "keypad"},
}
THRESHOLD = 1.0


@dataclass(frozen=True)
class Intent:
    """The tool the caller's words point to, and how strongly."""

    tool: ToolSpec
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


def _vocabulary(tool: ToolSpec) -> tuple[set[str], set[str]]:
    """(tool words from its own text, built-in cue phrases)."""
    props = (tool.parameters or {}).get("properties", {})
    enums = [str(v) for spec in props.values() for v in spec.get("enum", [])]
    text = " ".join([tool.name.replace("_", " "), tool.description, *tool.targets, *props,
                     *enums])
    return set(words(text)), CUES.get(tool.kind, set())


def choose(utterance: str, tools: Sequence[ToolSpec]) -> Intent | None:
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


def known_arguments(tool: ToolSpec, utterance: str,
                    schema: dict[str, Any]) -> dict[str, Any] | None:
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


def transfer_target(utterance: str, tool: ToolSpec) -> str:
    """The transfer target label the caller's words match best (the first one if none)."""
    said = set(words(utterance))
    labels = list(tool.targets)
    return max(labels, key=lambda label: len(said & set(words(label)))) if labels else ""


async def plan(history: Sequence[Message], tools: Sequence[ToolSpec],
               chat: ChatModel) -> ToolCall | None:
    """The tool call the caller's last words ask for, or None to let the model talk.

    Only the caller's own words choose (a tool result or keypad input never does). Digits
    alone ("4 5 6") complete the request of the caller's turn before them. A transfer
    target comes from the words; numbers the caller said fill number arguments; other
    arguments come from the model, decoding constrained to the tool's schema. None too
    when a number only the caller can give is missing: the model asks for it.
    """
    if not tools or not history or history[-1]["role"] != "user":
        return None
    said = history[-1]["content"]
    intent = choose(said, tools)
    if intent is None and spoken_digits(said):
        # "What's your order number?" — "4 5 6": the request was in the turn before.
        earlier = [m for m in history[:-1] if m["role"] in ("user", "tool", "keypad")]
        if earlier and earlier[-1]["role"] == "user":
            intent = choose(earlier[-1]["content"], tools)
            said = f"{earlier[-1]['content']} {said}"
    if intent is None:
        return None
    tool = intent.tool
    if tool.kind == "transfer":
        return ToolCall(tool.name, {"target": transfer_target(said, tool)})
    schema = argument_schema(tool)
    if not schema.get("properties"):
        return ToolCall(tool.name, {})
    arguments = known_arguments(tool, said, schema)
    if arguments is None and not needs_number(schema):
        arguments = await model_arguments(tool, said, schema, chat)
    return None if arguments is None else ToolCall(tool.name, arguments)


async def model_arguments(tool: ToolSpec, said: str, schema: dict[str, Any],
                          chat: ChatModel) -> dict[str, Any] | None:
    """Arguments for ``tool`` from the caller's words, written by the model with decoding
    constrained to ``schema``; None if it takes too long or gives no JSON object."""
    messages: list[Message] = [
        {"role": "system", "content": f"Fill in the arguments of the tool {tool.name} "
                                      f"({tool.description}) from what the caller said. "
                                      "Reply with JSON only."},
        {"role": "user", "content": said}]
    try:
        async with asyncio.timeout(ARGUMENTS_TIMEOUT):
            text = "".join([piece async for piece in chat.stream(messages, schema=schema)])
        arguments = json.loads(text)
    except (TimeoutError, ValueError) as exc:
        log.warning("tool %s: no arguments from the model: %s", tool.name,
                    type(exc).__name__)
        return None
    return arguments if isinstance(arguments, dict) else None
