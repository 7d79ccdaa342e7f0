"""Language model: the conversation's ``Message`` and the ``ChatModel`` protocol (llama.cpp
behind it: ``batched_llama``)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, Literal, Protocol, TypedDict

MAX_PAUSE = 0.4  # seconds generation may wait for the first clause's synthesis

Role = Literal["system", "user", "assistant", "tool", "keypad"]
TOOL_RESULT_PREFIX = "Tool result: "
KEYPAD_PREFIX = "The caller pressed these keys on the keypad: "


class Message(TypedDict):
    """One entry of the conversation.

    Besides the usual roles, ``tool`` is a tool's result (JSON, for the model) and
    ``keypad`` the keys the caller pressed (the digits). Only the model adapter turns these
    two into text; a plain dict, so histories go into JSON (call summaries) as they are.
    """

    role: Role
    content: str


def for_template(messages: Iterable[Message]) -> list[dict[str, str]]:
    """The conversation as chat templates know it (system, user, assistant): a tool result
    and keypad input become user lines that say what they are."""
    out = []
    for message in messages:
        role, content = message["role"], message["content"]
        if role == "tool":
            role, content = "user", TOOL_RESULT_PREFIX + content
        elif role == "keypad":
            role, content = "user", KEYPAD_PREFIX + " ".join(content)
        out.append({"role": role, "content": content})
    return out


class ChatModel(Protocol):
    """One method: the conversation so far in, the reply out as a stream of text pieces.

    ``pause``, while set, lets generation wait (the first clause is being synthesized);
    ``schema`` (a JSON Schema) constrains decoding so only a matching JSON text comes out.
    """

    def stream(self, messages: Sequence[Message], pause: threading.Event | None = None,
               schema: dict[str, Any] | None = None) -> AsyncIterator[str]: ...
