"""Beam search over a decoder with a key/value cache, one token a step for every beam.

The ``width`` most likely continuations are kept at each step (by the sum of their tokens'
log-probabilities); a hypothesis that ends, or reaches ``cap`` tokens, is finished, and the
one with the best mean log-probability per token wins. The search goes on while a live
hypothesis could still finish with a better mean than the best finished one (if every
token it has left up to ``cap`` were certain): stopping once ``width`` had finished let a
short transcript that skipped the first words ("555-213-4491") win over the whole one
("My number is 555-213-4491.") before the whole one had ended. With a width of 1 it is
greedy decoding. The rules of what may be written
(speech or no speech, unsure digits, the agent's words) are the ``scores`` function's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from agent.speech.word_bias import Match


@dataclass(frozen=True)
class Hypothesis:
    """A transcript so far: its tokens, each one's probability, and the running score."""

    ids: tuple[int, ...] = ()
    probs: tuple[float, ...] = ()
    score: float = 0.0  # sum of the tokens' log-probabilities
    match: Match = Match()  # against the agent's words

    @property
    def mean(self) -> float:
        return self.score / max(len(self.ids), 1)


# (logits row, hypothesis) -> (log-probabilities, -inf where not allowed; tokens favoured)
Scores = Callable[[np.ndarray, Hypothesis], tuple[np.ndarray, frozenset[int]]]
# (last token of each live hypothesis, the row each came from) -> the next logits, one row each
Step = Callable[[list[int], list[int]], np.ndarray]
# (match, token written, tokens favoured) -> match after it
Follow = Callable[[Match, int, frozenset[int]], Match]


def search(row: np.ndarray, start: Hypothesis, scores: Scores, step: Step, follow: Follow,
           width: int, cap: int, end: int) -> Hypothesis:
    """The best transcript from ``start``, whose next token's logits are ``row``."""
    live, rows = [start], row[None, :]
    done: list[Hypothesis] = []
    while live:
        candidates = []
        for b, hyp in enumerate(live):
            logp, favoured = scores(rows[b], hyp)
            for token in np.argpartition(logp, -width)[-width:]:
                token = int(token)
                if not np.isfinite(logp[token]):
                    continue
                score = hyp.score + float(logp[token])
                if token == end:  # a word favoured but left unfinished gives its head start back
                    candidates.append((score - hyp.match.pending, b, token, 0.0, hyp.match))
                else:
                    match = follow(hyp.match, token, favoured)
                    candidates.append((score - match.refund, b, token,
                                       float(np.exp(logp[token])), match))
        candidates.sort(key=lambda c: -c[0])
        going: list[Hypothesis] = []
        parents: list[int] = []
        for score, b, token, p, match in candidates:
            hyp = live[b]
            if token == end:
                done.append(replace(hyp, score=score))
                continue
            grown = Hypothesis(hyp.ids + (token,), hyp.probs + (p,), score, match)
            if len(grown.ids) >= cap:
                done.append(grown)
            else:
                going.append(grown)
                parents.append(b)
            if len(going) == width:
                break
        if not going or (len(done) >= width and max(h.mean for h in done) >= max(
                h.score / cap for h in going)):
            break
        live, rows = going, step([h.ids[-1] for h in going], parents)
    return max(done or live, key=lambda h: h.mean)
