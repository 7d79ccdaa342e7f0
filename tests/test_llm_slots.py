"""Where a batched model evaluates each prompt, and which requests go in the next batch."""

from __future__ import annotations

from agent.speech.llm_slots import (
    PREFILL_CHUNK,
    PROMPT_SHARE,
    SLOTS,
    Progress,
    Slot,
    common_prefix,
    place,
    plan_step,
    release,
)

SYSTEM = [1, 2, 3, 4, 5]


def test_common_prefix() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([1, 2], [1, 2, 3]) == 2


def test_a_conversation_continues_in_its_own_slot_after_its_previous_prompt() -> None:
    own = Slot(0, tokens=SYSTEM + [10, 11, 20, 21], prompt=7, used=1.0)  # prompt + answer
    other = Slot(1, tokens=SYSTEM + [30, 31], prompt=7, used=2.0)
    nxt = SYSTEM + [10, 11, 20, 22, 40]  # the answer was cut where the caller interrupted
    placement = place([own, other], nxt)
    assert placement is not None
    assert placement.slot is own and placement.source is None
    assert placement.keep == 8  # only the part of the answer that was said differently goes


def test_a_new_call_copies_the_instructions_instead_of_cutting_another_call_short() -> None:
    warm = Slot(0, tokens=SYSTEM + [9], prompt=6, used=5.0)
    busy = Slot(1, tokens=SYSTEM + [10, 11], prompt=7, busy=True)
    empty = Slot(2)
    placement = place([warm, busy, empty], SYSTEM + [50, 51])
    assert placement is not None
    assert placement.slot is empty and placement.source in (warm, busy)
    assert placement.keep == len(SYSTEM)
    assert warm.tokens == SYSTEM + [9]  # untouched


def test_the_oldest_idle_slot_is_reused_when_none_is_empty() -> None:
    old = Slot(0, tokens=[7, 7], prompt=2, used=1.0)
    recent = Slot(1, tokens=[8, 8], prompt=2, used=9.0)
    placement = place([old, recent], [1, 2, 3])
    assert placement is not None and placement.slot is old and placement.keep == 0


def test_an_ended_conversations_slot_goes_before_one_of_a_call_in_progress() -> None:
    listening = Slot(0, tokens=SYSTEM + [20, 21, 22], prompt=7, used=1.0)  # idle longest
    ended = Slot(1, tokens=SYSTEM + [30, 31, 32], prompt=7, used=9.0)
    release([listening, ended], SYSTEM + [30, 31, 32, 33])  # that call hung up
    assert ended.used == 0.0 and listening.used == 1.0
    placement = place([listening, ended], SYSTEM + [40, 41])
    assert placement is not None and placement.slot is ended
    assert placement.keep == len(SYSTEM)  # its instructions stay: only the rest goes
    # a conversation that is not the one in the slot releases nothing; a busy slot neither
    busy = Slot(2, tokens=SYSTEM + [50], prompt=6, busy=True, used=3.0)
    release([listening, busy], SYSTEM + [60, 61])
    assert listening.used == 1.0 and busy.used == 3.0


def test_one_token_is_always_left_to_evaluate_and_busy_slots_are_never_given() -> None:
    slot = Slot(0, tokens=[1, 2, 3], prompt=3)
    placement = place([slot], [1, 2, 3])
    assert placement is not None and placement.keep == 2
    assert place([Slot(0, busy=True)], [1, 2]) is None


def test_first_clauses_go_before_the_rest_of_other_replies() -> None:
    requests = [Progress(arrived=0.0, pending=0, urgent=False),  # well into its answer
                Progress(arrived=1.0, pending=30),  # a caller just finished a turn
                Progress(arrived=2.0, pending=0, urgent=True)]  # working on its first clause
    assert plan_step(requests, budget=64) == [(2, 1), (1, 30)]
    requests[1] = Progress(arrived=1.0, pending=0)
    assert sorted(plan_step(requests, budget=64)) == [(0, 1), (1, 1), (2, 1)]


def test_a_first_clause_being_written_is_not_held_behind_a_whole_prompt() -> None:
    """A new turn of 200 tokens beside a reply writing its first clause: one step with all
    of it took ~1.8 s on one core, and the reply waited that long for its next token."""
    writing = Progress(arrived=0.0, pending=0, urgent=True)
    turn = Progress(arrived=1.0, pending=200)
    assert plan_step([writing, turn], budget=256) == [(0, 1), (1, PROMPT_SHARE)]
    assert plan_step([turn], budget=256) == [(0, 200)]  # alone: the whole prompt at once
    rest = Progress(arrived=0.0, pending=0, urgent=False)  # past its first clause
    assert plan_step([rest, turn], budget=256) == [(1, 200)]


def test_the_caller_waiting_longest_is_evaluated_first_within_the_budget() -> None:
    requests = [Progress(arrived=5.0, pending=40), Progress(arrived=1.0, pending=40)]
    assert plan_step(requests, budget=50) == [(1, 40), (0, 10)]


def test_a_paused_reply_is_left_out_and_nothing_runs_when_all_are_paused() -> None:
    requests = [Progress(arrived=0.0, pending=0, paused=True),
                Progress(arrived=1.0, pending=0)]
    assert plan_step(requests, budget=8) == [(1, 1)]
    assert plan_step(requests[:1], budget=8) == []


def test_a_prefill_runs_only_when_nothing_else_is_to_be_done_and_in_small_steps() -> None:
    prefill = Progress(arrived=3.0, pending=30, urgent=False, background=True)
    older = Progress(arrived=1.0, pending=20, urgent=False, background=True)
    turn = Progress(arrived=5.0, pending=12)
    answering = Progress(arrived=0.0, pending=0, urgent=False)
    assert plan_step([prefill, turn], budget=64) == [(1, 12)]  # a turn, though it came later
    assert plan_step([prefill, answering], budget=64) == [(1, 1)]  # the rest of an answer
    assert plan_step([prefill, older], budget=64) == [(0, PREFILL_CHUNK)]  # the newest
    assert plan_step([Progress(0.0, 0, paused=True), prefill], budget=64) == [(1, 8)]


def _converse(slots: list[Slot], calls: int, turns: int) -> int:
    """``calls`` conversations taking turns in the same slots; how many turns found no
    sequence of their own (and evaluated their whole conversation again)."""
    instructions = list(range(50))
    history = {c: instructions + [1000 + c] for c in range(calls)}
    lost = 0
    for turn in range(turns):
        for call in range(calls):
            tokens = history[call] + [2000 + turn, 3000 + call]
            placement = place(slots, tokens)
            assert placement is not None
            if turn and placement.keep < len(history[call]):
                lost += 1
            placement.slot.tokens, placement.slot.prompt = list(tokens), len(tokens)
            placement.slot.used = turn * calls + call + 1.0
            history[call] = tokens + [4000 + turn]  # the reply, evaluated as it was written
            placement.slot.tokens.append(4000 + turn)
    return lost


def test_eleven_calls_keep_their_own_sequences() -> None:
    assert _converse([Slot(i) for i in range(SLOTS)], calls=11, turns=4) == 0
    assert _converse([Slot(i) for i in range(8)], calls=11, turns=4) == 33  # as before
