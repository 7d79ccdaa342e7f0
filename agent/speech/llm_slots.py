"""Sequences of a batched language model: where a prompt is evaluated, and who goes next.

One llama.cpp context holds several sequences (slots) in one key-value cache. Each prompt is
placed in an idle slot, starting after the longest prefix already evaluated anywhere: its own
call's last turn (the usual case), or another call's copy of the same agent's instructions.
Every step of the worker then advances some of the open requests together in one batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

# Prompt tokens of a prefill per step: a turn that arrives meanwhile waits for one such
# batch at most (~8-10 ms a token on one core here).
PREFILL_CHUNK = 8
# Sequences in the cache: a call keeps its own while it lasts. With 8, at 11 calls in
# progress (bench --load, offered 6) a call's sequence was often taken by another, and its
# next turn evaluated its whole conversation again (60-150 tokens, ~9 ms each on one
# core): 12 turns in 121. With 16, none (p95 to the first token 1.7-2.9 s -> 0.74 s).
# The cache's size (its tokens) is the same either way; so is the memory.
SLOTS = 16
# Prompt tokens per step while another reply is writing its first clause: that reply gets
# one token a step, and a step takes as long as its prompt tokens (~9 ms each on one core
# here). A whole new turn in one step (up to the batch, 256) had held first clauses for
# 1-2.6 s under load; 32 per step is also what a core evaluates most cheaply per token.
PROMPT_SHARE = 32


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@dataclass
class Slot:
    """One sequence of the cache: the tokens it holds, and whether a request is using it."""

    seq: int
    tokens: list[int] = field(default_factory=list)  # evaluated, in order
    prompt: int = 0  # how many of them were the last prompt placed here (the rest: its answer)
    busy: bool = False
    used: float = 0.0  # when it was last given to a request (the oldest idle one goes first)


@dataclass(frozen=True)
class Placement:
    """Evaluate a prompt in ``slot`` after its first ``keep`` tokens; when ``source`` is set,
    those tokens are copied from that slot first (a cache copy, not an evaluation)."""

    slot: Slot
    keep: int
    source: Slot | None = None


def place(slots: Sequence[Slot], tokens: Sequence[int]) -> Placement | None:
    """The idle slot for ``tokens`` and the longest cached prefix to start from (None: every
    slot is busy). At least one token is always left to evaluate, for its next-token scores.

    A conversation's next turn starts with its whole previous prompt: it continues in its
    own slot (dropping only the tail of its own last answer). Anything else goes to the slot
    worth least (empty, else idle longest), with the longest matching start copied in, so
    that no other conversation's cache is cut short.
    """
    idle = [s for s in slots if not s.busy]
    if not idle:
        return None
    limit = max(len(tokens) - 1, 0)
    continuing = [s for s in idle
                  if s.prompt and common_prefix(s.tokens, tokens) >= s.prompt]
    if continuing:
        own = max(continuing, key=lambda s: s.prompt)
        return Placement(own, min(common_prefix(own.tokens, tokens), limit))
    best = max(slots, key=lambda s: common_prefix(s.tokens, tokens))
    keep = min(common_prefix(best.tokens, tokens), limit)
    target = min(idle, key=lambda s: (len(s.tokens) > 0, s.used))
    if keep and best is not target:
        return Placement(target, keep, source=best)
    return Placement(target, keep)


def release(slots: Sequence[Slot], tokens: Sequence[int]) -> None:
    """The idle slots holding the conversation ``tokens`` (its last prompt, at least) are
    the first non-empty ones ``place`` gives away."""
    for slot in slots:
        if not slot.busy and slot.prompt and common_prefix(slot.tokens, tokens) >= slot.prompt:
            slot.used = 0.0


@dataclass
class Progress:
    """What the scheduler needs to know of one open request."""

    arrived: float  # when its caller's turn reached the model (earliest first)
    pending: int  # prompt tokens not yet evaluated
    urgent: bool = True  # its reply's first clause has not been handed over yet
    paused: bool = False  # waiting, briefly, while its first clause is synthesized
    background: bool = False  # a prefill: evaluated only when nothing else is to be done


def plan_step(requests: Sequence[Progress], budget: int) -> list[tuple[int, int]]:
    """(request index, tokens) to evaluate together in the next batch of ``budget`` tokens.

    A reply still working towards its first clause goes first: one token for each that is
    generating, then prompt tokens for the turns waiting longest (at most ``PROMPT_SHARE``
    while such a reply is in the step, so it keeps coming a token at a time). The rest of
    any reply (past its first clause, already ahead of what the caller is hearing) waits
    while a prompt is being evaluated, and otherwise advances a token a step with everyone
    else.
    """
    step: list[tuple[int, int]] = []
    generating = [i for i, r in enumerate(requests) if not r.pending and not r.paused]
    step += [(i, 1) for i in generating if requests[i].urgent]
    room = min(budget - len(step), PROMPT_SHARE) if step else budget
    prompting = sorted((i for i, r in enumerate(requests) if r.pending and not r.background),
                       key=lambda i: requests[i].arrived)
    for i in prompting:
        if room <= 0:
            break
        n = min(requests[i].pending, room)
        step.append((i, n))
        room -= n
    if not prompting:
        step += [(i, 1) for i in generating if not requests[i].urgent][:max(room, 0)]
    if not step and not any(r.pending and not r.background for r in requests):
        # the words of a caller still speaking, ahead of their turn (prefill): newest first
        for i in sorted((i for i, r in enumerate(requests) if r.pending and r.background),
                        key=lambda i: -requests[i].arrived)[:1]:
            step.append((i, min(requests[i].pending, budget, PREFILL_CHUNK)))
    return step
