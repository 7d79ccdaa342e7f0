"""Beam search on a made-up decoder: it finds what greedy decoding misses, is greedy at width
one, keeps each beam's own cache row, and stops at the cap."""

from __future__ import annotations

import numpy as np

from agent.speech.beam import Hypothesis, search
from agent.speech.word_bias import Match

END, A, B, C = 0, 1, 2, 3
V = 4


def lp(**probs: float) -> np.ndarray:
    row = np.full(V, 1e-6)
    for name, p in probs.items():
        row[{"end": END, "a": A, "b": B, "c": C}[name]] = p
    return np.log(row / row.sum())


# what the "decoder" gives after each sequence written so far: the greedy first choice (a)
# leads to an unsure next token; the second (b) to a sure one
TABLE = {
    (): lp(a=0.55, b=0.45),
    (A,): lp(c=0.4, b=0.3, end=0.3),
    (B,): lp(c=0.95, end=0.05),
    (A, C): lp(end=0.9, c=0.1),
    (B, C): lp(end=0.95, c=0.05),
}


def run(width: int, cap: int = 10) -> tuple[Hypothesis, list[list[int]]]:
    written: list[tuple[int, ...]] = [()]  # the sequence each cache row holds
    steps: list[list[int]] = []

    def step(tokens: list[int], parents: list[int]) -> np.ndarray:
        nonlocal written
        steps.append(parents)
        written = [written[p] + (t,) for t, p in zip(tokens, parents, strict=True)]
        return np.stack([TABLE.get(w, lp(end=1.0)) for w in written])

    def scores(row: np.ndarray, hyp: Hypothesis) -> tuple[np.ndarray, frozenset[int]]:
        assert TABLE.get(hyp.ids) is None or np.array_equal(row, TABLE[hyp.ids])  # its own row
        return row, frozenset()

    found = search(TABLE[()], Hypothesis(), scores, step, lambda m, _t, _f: m, width, cap, END)
    return found, steps


def test_a_beam_of_two_finds_the_likelier_sentence_greedy_misses() -> None:
    greedy, _ = run(1)
    assert greedy.ids == (A, C)  # 0.55 * 0.4 * 0.9 = 0.198
    beam, steps = run(2)
    assert beam.ids == (B, C)  # 0.45 * 0.95 * 0.95 = 0.406
    assert np.allclose(beam.probs, (0.45, 0.95), atol=1e-4)
    assert steps[0] == [0, 0]  # both first tokens continue the one start row


def test_the_cap_finishes_a_hypothesis() -> None:
    found, _ = run(2, cap=1)
    assert found.ids in ((A,), (B,)) and len(found.ids) == 1


def test_a_start_with_words_already_kept_goes_on_from_them() -> None:
    def scores(row: np.ndarray, hyp: Hypothesis) -> tuple[np.ndarray, frozenset[int]]:
        return TABLE[hyp.ids] if hyp.ids in TABLE else lp(end=1.0), frozenset()

    start = Hypothesis((B,), (0.45,), float(np.log(0.45)), Match())
    found = search(TABLE[(B,)], start, scores, lambda t, p: np.zeros((len(t), V)),
                   lambda m, _t, _f: m, 2, 10, END)
    assert found.ids == (B, C) and found.probs[0] == 0.45


def test_a_refund_is_taken_off_the_score_of_a_hypothesis() -> None:
    """A hypothesis whose favoured word was left unfinished (a refund) ranks below the
    others: the refund decides which path wins."""
    def follow(match: Match, token: int, _favoured: frozenset[int]) -> Match:
        return Match(refund=5.0) if token == A else match

    def scores(row: np.ndarray, hyp: Hypothesis) -> tuple[np.ndarray, frozenset[int]]:
        return TABLE[hyp.ids] if hyp.ids in TABLE else lp(end=1.0), frozenset()

    found = search(TABLE[()], Hypothesis(), scores,
                   lambda t, p: np.stack([TABLE.get((x,), lp(end=1.0)) for x in t]),
                   follow, 2, 10, END)
    assert found.ids == (B, C)
    losing = search(TABLE[()], Hypothesis(), scores,
                    lambda t, p: np.stack([TABLE.get((x,), lp(end=1.0)) for x in t]),
                    lambda m, t, _f: Match(refund=5.0) if t == B else m, 2, 10, END)
    assert losing.ids[0] == A  # the refund moved to B: A's path wins


def test_a_short_transcript_that_finished_first_does_not_end_the_search() -> None:
    """Two finished hypotheses used to end the search: a transcript that skipped the first
    words (here C alone, like "555-213-4491" without "My number is") won before the whole
    one (A B C) had ended, though the whole one is surer token by token."""
    table = {
        (): lp(a=0.6, c=0.4),
        (A,): lp(b=0.9, end=0.1),
        (A, B): lp(c=0.95, end=0.05),
        (A, B, C): lp(end=0.97, c=0.03),
        (C,): lp(end=0.9, c=0.1),
    }
    written: list[tuple[int, ...]] = [()]

    def step(tokens: list[int], parents: list[int]) -> np.ndarray:
        nonlocal written
        written = [written[p] + (t,) for t, p in zip(tokens, parents, strict=True)]
        return np.stack([table.get(w, lp(end=1.0)) for w in written])

    found = search(table[()], Hypothesis(), lambda row, _h: (row, frozenset()), step,
                   lambda m, _t, _f: m, 2, 10, END)
    assert found.ids == (A, B, C)
