"""The agent's words favoured while a transcript is decoded: the matching logic on a small
token table, the words an agent gives, and the real model on a word it mishears."""

from __future__ import annotations

import numpy as np
import pytest

from agent.media.audio import AudioChunk
from agent.speech.transcriber import HearsWords, Transcript
from agent.speech.word_bias import BOOST, Match, WordBias, words_in

# a tiny token table: text tokens with a word's leading space, and pieces of words
TABLE = ["<unk>", "<s>", "</s>", " the", " doctor", " Pat", "el", " pat", "io", " medical",
         " Medic", "are", " care", " Ci", "gna", " sig", "nal", " Patel", " in", "s", "ulin"]


def ids(*texts: str) -> list[int]:
    return [TABLE.index(t) for t in texts]


def logits(**scores: float) -> np.ndarray:
    row = np.full(len(TABLE), -20.0)
    for text, score in scores.items():
        row[TABLE.index(text.replace("_", " "))] = score
    return row


def test_words_in_keeps_each_long_enough_word_once_in_order() -> None:
    assert words_in(["Ask for Doctor Patel.", "Dr. patel is in; we take Cigna, not Kim's"]) == (
        "Doctor", "Patel", "take", "Cigna", "Kim's")


def test_a_word_the_model_has_as_one_token_is_not_favoured() -> None:
    bias = WordBias(TABLE, ["doctor", "Medicare", "Cigna", "the"])
    assert bias.phrases == ("medicare", "cigna")  # " doctor" is one token: known well
    assert not WordBias(TABLE, ["doctor"])


def test_a_near_best_token_that_starts_or_goes_on_with_a_word_is_favoured() -> None:
    bias = WordBias(TABLE, ["Medicare"])
    row = logits(_medical=5.0, _Medic=4.0)  # "medical" best, "Medic" 1.0 behind
    favoured = bias.adjust(row, Match())
    assert favoured == {TABLE.index(" Medic")}
    assert row[TABLE.index(" Medic")] == 4.0 + BOOST and int(np.argmax(row)) == ids(" Medic")[0]
    match = bias.follow(Match(), ids(" Medic")[0], favoured)
    assert match.partial == ("medic",) and match.pending == BOOST
    row = logits(_care=3.0, are=2.0)  # "Medic" + "are" spells it; " care" does not go on
    assert bias.adjust(row, match) == {TABLE.index("are")}
    done = bias.follow(match, ids("are")[0])
    assert done.partial == ("medicare",)


def test_nothing_far_from_the_best_or_mid_word_or_too_short_is_favoured() -> None:
    bias = WordBias(TABLE, ["Medicare", "Cigna", "insulin"])
    row = logits(_medical=9.0, _Medic=4.0)  # 5 behind: the model did not half-hear it
    assert bias.adjust(row, Match()) == frozenset() and row[TABLE.index(" Medic")] == 4.0
    # " Ci" is too short to start a word on its own (it would pull "see", "city" ...)
    assert bias.adjust(logits(_sig=3.0, _Ci=2.5), Match()) == frozenset()
    # a word's piece without a leading space does not start a phrase after other words
    after = bias.follow(Match(), ids(" the")[0])
    assert after.partial == () and bias.adjust(logits(are=1.0, _the=1.2), after) == frozenset()
    # the very first token may start one without a space
    assert bias.follow(Match(), ids(" Medic")[0]).partial == ("medic",)


def test_a_broken_match_is_forgotten() -> None:
    bias = WordBias(TABLE, ["Medicare"])
    match = bias.follow(Match(), ids(" Medic")[0])
    match = bias.follow(match, ids(" the")[0])
    assert match.partial == ()


def test_a_favoured_start_left_unfinished_gives_its_head_start_back() -> None:
    bias = WordBias(TABLE, ["Medicare"])
    medic = ids(" Medic")[0]
    begun = bias.follow(Match(), medic, frozenset({medic}))
    assert (begun.pending, begun.refund) == (BOOST, 0.0)
    left = bias.follow(begun, ids(" the")[0])  # "Medic the": the word was not Medicare
    assert (left.pending, left.refund) == (0.0, BOOST)
    whole = bias.follow(begun, ids("are")[0], frozenset({ids("are")[0]}))  # "Medicare"
    assert (whole.pending, whole.refund) == (0.0, 0.0)
    unfavoured = bias.follow(bias.follow(Match(), medic), ids(" the")[0])
    assert unfavoured.refund == 0.0  # nothing was given, nothing is taken back


async def test_an_agents_transcriber_passes_its_words_on_every_call() -> None:
    seen = []

    class Inner:
        drafts, tells_noise, worker = True, True, object()

        async def transcribe(self, audio, words=(), draft=None, background=False):
            seen.append((words, draft, background))
            return Transcript("", None, 0.0)

    inner = Inner()
    hears = HearsWords(inner, ("Patel",))
    assert hears.drafts and hears.tells_noise and hears.worker is inner.worker
    audio = AudioChunk(np.zeros(160, np.int16), 8000)
    await hears.transcribe(audio)
    await hears.transcribe(audio, draft=Transcript("x", None, 0.0), background=True)
    assert [w for w, _, _ in seen] == [("Patel",), ("Patel",)] and seen[1][2] is True


def test_an_agent_gives_the_words_it_is_set_up_with() -> None:
    from agent.flows.spec import FlowSpec, SlotSpec
    from agent.settings import AgentSpec
    from agent.tools.spec import ToolSpec

    spec = AgentSpec(
        name="clinic", greeting="Thanks for calling Maple Dental.",
        knowledge="Doctor Alvarez sees children on Tuesdays.\nWe take Cigna and Aetna.",
        faq=((("Do you sell omeprazole?",), "Yes, we stock omeprazole."),),
        tools=(ToolSpec(name="transfer", kind="transfer", targets={"Billing office": "201"}),
               ToolSpec(name="order", parameters={"type": "object", "properties": {
                   "size": {"type": "string", "enum": ["Grande", "Venti"]}}})),
        flows=(FlowSpec(name="book", cues=("appointment",), slots=(SlotSpec(
            name="service", kind="choice", choices={"cleaning": ("hygienist",)}),)),))
    words = set(spec.heard_words)
    assert {"Maple", "Dental", "Alvarez", "Cigna", "Aetna", "omeprazole", "Billing", "office",
            "Grande", "Venti", "appointment", "cleaning", "hygienist"} <= words
    assert "We" not in words and "on" not in words


@pytest.fixture(scope="module")
def flite_billing():
    """"Can I speak to billing, please?" in Flite's awb voice on a clean µ-law line."""
    import shutil

    if shutil.which("flite") is None:
        pytest.skip("needs flite (apt)")
    from agent.media.resample import resample
    from appliance.bench.phone_corpus import VOICES, Speaker, through_line

    voice = next(v for v in VOICES if v.name == "flite-awb")
    spoken = Speaker.say(object.__new__(Speaker), "Can I speak to billing, please?", voice)
    pcm = resample(spoken.pcm, spoken.rate, 8000)
    pcm = np.concatenate([np.zeros(2000, np.int16), pcm, np.zeros(3600, np.int16)])
    return AudioChunk(through_line(pcm, "ulaw", 0.0, np.random.default_rng(1)), 8000)


async def test_the_real_model_hears_a_favoured_word_and_is_unchanged_by_others(
        model_store, flite_billing) -> None:
    from agent.speech.engines import open_transcriber

    stt = open_transcriber(model_store.path("moonshine-base-en", "stt"), threads=1)
    plain = (await stt.transcribe(flite_billing)).text
    clinic = (await stt.transcribe(flite_billing, ("billing", "Medicaid", "Cigna"))).text
    garage = (await stt.transcribe(flite_billing, ("transmission", "Subaru", "alignment",
                                                   "Toyota", "hubcaps"))).text
    assert "billing" not in plain.lower()  # the model alone hears "Billy"
    assert "billing" in clinic.lower()
    assert garage == plain
