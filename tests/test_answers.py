"""Answering from knowledge: which entry a question is about, the clause checks that keep
the model from inventing, and the decisions (say it again, word for word, "I don't know")."""

from __future__ import annotations

import numpy as np
import pytest
import test_dialogue

from agent.answers.guard import FactGuard, Sources, caller_names
from agent.answers.knowledge import Knowledge
from agent.answers.policy import Answerer, Phrases, Plan, Step, nonsense, social
from agent.answers.scope import days_named, narrow
from agent.answers.words import numbers, terms

FACTS = """Opening hours: Monday to Friday 8 am to 6 pm, Saturday 9 am to 1 pm, closed on Sunday.
Address: 12 Oak Street, next to the post office. Parking behind the building.
Insurance: we accept Medicare, Aetna and Blue Cross. We do not accept Medicaid.
"""
FAQ = ((("Are you open on Saturday?", "What are your weekend hours?"),
        "On Saturday we are open from 9 am to 1 pm. On Sunday we are closed."),
       (("Where do I park?", "Is there parking?"),
        "You can park for free behind the building."))
INSTRUCTIONS = "You answer the phone for Oakwood Clinic.\n" + FACTS
SOURCES = Sources.of(INSTRUCTIONS)


@pytest.fixture
def knowledge() -> Knowledge:
    return Knowledge.build(FACTS, FAQ)


def test_words_fold_synonyms_and_read_numbers() -> None:
    assert terms("What time do you close?") == ["hours", "hours"]
    assert terms("Where can I park the car") == ["parking", "car"]
    assert numbers("open 9:00 am till nine thirty, 1,200 dollars") == {9, 30, 1200}
    assert numbers("one moment please") == set()  # "one" is not read as a number


@pytest.mark.parametrize("question", [
    "Are you open on Saturdays?", "What time do you close on Saturday?",
    "what are your hours on the weekend", "Hi, are you guys open saturday morning?"])
def test_saturday_questions_get_the_saturday_answer_word_for_word(knowledge, question) -> None:
    match = knowledge.match(question)
    assert match is not None and match.verbatim, (question, match)
    assert match.entry.answer.startswith("On Saturday")


@pytest.mark.parametrize("question, fact", [
    ("When do you open on Monday?", "Opening hours"),
    ("What's your address?", "Address"),
    ("How do I find you?", "Address"),
    ("Do you take Aetna?", "Insurance"),
    ("Is Medicaid accepted?", "Insurance"),
])
def test_questions_about_free_facts_find_the_fact(knowledge, question, fact) -> None:
    match = knowledge.match(question)
    assert match is not None and match.relevant and not match.verbatim, (question, match)
    assert match.entry.answer.startswith(fact)


@pytest.mark.parametrize("question", [
    "How much does a checkup cost?", "Do you do x-rays?", "Who is the doctor on call tonight?",
    "Can I get a flu shot?", "What's the wifi password?"])
def test_questions_about_nothing_known_match_nothing_relevant(knowledge, question) -> None:
    match = knowledge.match(question)
    assert match is None or not match.relevant, (question, match)


def history(*turns: tuple[str, str]) -> list[dict]:
    out = [{"role": "system", "content": INSTRUCTIONS},
           {"role": "assistant", "content": "Good morning, Oakwood Clinic."}]
    for role, text in turns:
        out.append({"role": role, "content": text})
    return out


@pytest.mark.parametrize("clause, allowed", [
    ("We are open Saturday from 9 am to 1 pm.", True),
    ("We are open Saturday 9:00 am to 1:00 pm.", True),
    ("On Saturday we are open from 10 am to 4 pm.", False),  # invented hours
    ("A visit costs 80 dollars.", False),  # invented price
    ("We accept Blue Cross and Aetna.", True),
    ("We accept Cigna and United Healthcare.", False),  # invented plans
    ("Due to COVID-19 restrictions, please wear a mask.", False),
    ("Oakwood Clinic is next to the post office.", True),
    ("Sure, I can help with that.", True),
    ("Dr. Smith will see you.", False),  # an invented person
])
def test_the_guard_lets_through_only_sourced_facts(clause, allowed) -> None:
    guard = FactGuard(SOURCES, history(("user", "When are you open?")))
    assert guard.allows(clause) is allowed, guard.refused


@pytest.mark.parametrize("clause, allowed", [
    ("We are open Monday to Friday, 8 am to 6 pm.", True),  # "weekdays" names these days
    ("We are closed on Saturday and Sunday.", False),  # the weekend is not in the source
])
def test_weekdays_in_the_source_name_the_days_monday_to_friday(clause, allowed) -> None:
    from agent.answers.guard import Sources

    sources = Sources.of("The office is closed. Opening hours are 8 am to 6 pm on weekdays.")
    guard = FactGuard(sources, [{"role": "user", "content": "When are you open?"}])
    assert guard.allows(clause) is allowed, guard.refused
    weekend = FactGuard(Sources.of("We open at 10 at weekends."), [])
    assert weekend.allows("On Saturday we open at 10.") and not weekend.allows("Monday too.")


def test_the_caller_s_name_and_numbers_may_be_repeated_but_not_taken_on() -> None:
    turns = history(("user", "Hi, my name is Maria Gonzalez and my number is 555 213 4567."))
    assert caller_names(turns) == {"maria", "gonzalez"}
    guard = FactGuard(SOURCES, turns)
    assert guard.allows("Thank you, Maria.")
    assert guard.allows("I have 555 213 4567.")
    for clause in ("I'm your doctor's assistant, Dr. Maria Gonzalez.", "This is Maria.",
                   "My name is Maria Gonzalez."):
        assert not FactGuard(SOURCES, turns).allows(clause), clause
    assert FactGuard(SOURCES, turns).allows("I'm sorry, Maria, I don't know that.")


def test_an_earlier_answer_is_not_repeated_to_a_different_question() -> None:
    answer = "We are open Monday to Friday from 8 am to 6 pm."
    turns = history(("user", "When are you open?"), ("assistant", answer),
                    ("user", "Is there parking near the office?"))
    assert not FactGuard(SOURCES, turns).allows(answer)
    again = history(("user", "When are you open?"), ("assistant", answer),
                    ("user", "Sorry, when are you open?"))
    assert FactGuard(SOURCES, again).allows(answer)


@pytest.mark.parametrize("text, confidence, expected", [
    ("", None, True),
    ("4 4 4 4 4 4", None, True),
    ("the the the the", 0.9, True),
    ("What time do you close?", 0.2, True),
    ("What time do you close?", 0.8, False),
    ("No, no, the number is 555 213", 0.7, False),
    ("Yes.", None, False),
])
def test_words_that_make_no_sense(text, confidence, expected) -> None:
    assert nonsense(text, confidence) is expected


def test_small_talk() -> None:
    assert social("How are you today?") and social("Can you help me?")
    assert not social("Do you take Blue Cross?")
    assert social("Great, thank you, Dubai.")  # a goodbye misheard: still thanks
    assert not social("Thanks. Parking") and not social("Thank you. Aetna?")


def test_two_misses_in_a_row_offer_a_person_and_yes_takes_it(knowledge) -> None:
    answers = Answerer(knowledge, Phrases(), can_transfer=True)
    first = answers.hear("4 4 4 4 4")
    assert first is not None and first.step is Step.MISHEARD
    assert first.say == Phrases().misheard
    second = answers.hear("mumble", confidence=0.1)
    assert second is not None and second.step is Step.OFFER
    assert Phrases().offer_transfer in second.say
    assert answers.hear("Okay, thank you. Goodbye.") is None  # a goodbye is no yes
    answers.hear("mumble", confidence=0.1)
    answers.hear("mumble", confidence=0.1)  # the offer again
    took = answers.hear("Yes, please.")
    assert took is not None and took.step is Step.TRANSFER
    assert answers.hear("Yes, please.") is None  # the offer was used up


def test_a_miss_then_a_good_turn_starts_counting_again(knowledge) -> None:
    answers = Answerer(knowledge, Phrases(), can_transfer=False)
    assert answers.hear("", None).step is Step.MISHEARD
    assert answers.hear("What's your address?", 0.9) is None
    assert answers.hear("", None).step is Step.MISHEARD
    offer = (answers.hear("", None))
    assert offer.step is Step.OFFER and Phrases().offer_transfer not in offer.say


def test_answers_known_grounded_unknown_and_free(knowledge) -> None:
    answers = Answerer(knowledge, Phrases(), can_transfer=True)
    known = answers.answer("Are you open on Saturday?")
    assert known.step is Step.KNOWN and known.say.startswith("On Saturday")
    fact = answers.answer("Do you take Aetna?")  # a free fact, said as written
    assert fact.step is Step.FACT and fact.say.startswith("Insurance")
    phrased = Answerer(knowledge, Phrases(), model_phrases=True).answer("Do you take Aetna?")
    assert phrased.step is Step.GROUNDED and phrased.fallback.startswith("Insurance")
    unknown = answers.answer("How much does a checkup cost?")
    assert unknown.step is Step.UNKNOWN and unknown.say.startswith(Phrases().unknown)
    assert answers.offered
    assert answers.answer("Thank you, that's all.").step is Step.GOODBYE
    assert Answerer(Knowledge([]), Phrases()).answer("How much is it?").step is Step.FREE


# -- in a call: fake engines on a virtual clock ---------------------------------------------
dialogue_rig = test_dialogue.rig_factory  # the fixture ``dialogue_rig``: a call's agent side


async def _call(dialogue_rig, said: str, model_answer: str, confidence: float | None = 0.9,
                speech: float = 1.0, **spec_fields):
    spec_fields = {"instructions": INSTRUCTIONS, "knowledge": FACTS, "faq": FAQ} | spec_fields
    from fakes import FakeChat, FakeTranscriber, fake_engines

    from agent.dialogue import Dialogue
    from agent.settings import AgentSpec

    rig = dialogue_rig(model_answer)
    spec = AgentSpec(name="t", greeting="Good morning, Oakwood Clinic.", end_silence=0.4,
                     **spec_fields)
    chat = FakeChat(model_answer)
    engines = fake_engines(spec, FakeTranscriber(said, confidence), chat)
    events: list = []
    rig.conv = Dialogue(spec, engines, rig.playout, rig.clock, rig._spawn,
                        sink=events.append)
    await rig.run(speech, speaking=True)
    await rig.run(3.0, speaking=False)
    kinds = [getattr(e, "kind", None) for e in events]
    return rig, chat, kinds


async def test_a_known_question_is_answered_word_for_word_without_the_model(dialogue_rig):
    rig, chat, kinds = await _call(dialogue_rig, "Hi, are you open on Saturdays?",
                                   "We are open Saturday 10 to 4.")
    assert chat.seen == []  # no model: the written answer, from the phrase cache
    assert rig.conv.records[0].agent_text == FAQ[0][1]
    assert "known" in kinds


async def test_a_question_about_nothing_known_gets_i_dont_know(dialogue_rig):
    rig, chat, kinds = await _call(dialogue_rig, "How much does a checkup cost?",
                                   "A checkup costs 80 dollars.")
    assert chat.seen == []
    assert rig.conv.records[0].agent_text == Phrases().unknown
    assert "unknown" in kinds


async def test_an_invented_fact_is_never_spoken_and_the_matched_fact_is(dialogue_rig):
    rig, chat, kinds = await _call(dialogue_rig, "When do you open on Monday?",
                                   "We open at 10 am on Monday.", model_phrases_facts=True)
    assert len(chat.seen) == 1  # the model was asked, its answer refused
    said = rig.conv.records[0].agent_text
    assert "10" not in said and said.startswith("Opening hours: Monday to Friday 8 am")
    assert "refused" in kinds
    assert {"role": "assistant", "content": said} in rig.conv.history


async def test_a_matched_fact_is_said_as_written_without_the_model(dialogue_rig):
    rig, chat, kinds = await _call(dialogue_rig, "When do you open on Monday?",
                                   "We open at 10 am on Monday.")
    assert chat.seen == []
    assert rig.conv.records[0].agent_text.startswith("Opening hours: Monday to Friday 8 am")


class SlowSynth:
    """A voice that takes 0.15 s (virtual) per clause and notes when it was asked."""

    rate = 8000

    def __init__(self, clock) -> None:
        self.clock, self.asked = clock, []

    async def synthesize(self, text: str, urgent: bool = True):
        from agent.media.audio import AudioChunk

        self.asked.append(self.clock.now())
        await self.clock.sleep_until(self.clock.now() + 0.15)
        yield AudioChunk(np.full(1600, 3000, dtype=np.int16), self.rate)


async def _fact_call(dialogue_rig, then_speaking: bool):
    from fakes import FakeChat, FakeTranscriber, fake_engines

    from agent.dialogue import Dialogue
    from agent.settings import AgentSpec

    rig = dialogue_rig("unused")
    spec = AgentSpec(name="t", greeting="Good morning, Oakwood Clinic.", end_silence=0.4,
                     instructions=INSTRUCTIONS, knowledge=FACTS, faq=FAQ)
    synth = SlowSynth(rig.clock)
    engines = fake_engines(spec, FakeTranscriber("When do you open on Monday?"), FakeChat(),
                           synth)
    events: list = []
    rig.conv = Dialogue(spec, engines, rig.playout, rig.clock, rig._spawn, sink=events.append)
    await rig.run(1.0, speaking=True)
    if then_speaking:
        await rig.run(0.16, speaking=False)  # the fact is being voiced, unheard
        await rig.run(0.8, speaking=True)  # not the end of the turn after all
        assert rig.agent_audio_times() == [] and synth.asked
        assert [getattr(e, "kind", None) for e in events].count("known") == 0
    await rig.run(2.0, speaking=False)
    return rig, synth, [getattr(e, "kind", None) for e in events]


async def test_a_fact_is_voiced_while_the_end_of_the_turn_is_confirmed(dialogue_rig):
    rig, synth, kinds = await _fact_call(dialogue_rig, then_speaking=False)
    end_of_speech = 0.96
    first_audio = rig.agent_audio_times()[0]
    assert synth.asked[0] < first_audio - 0.15  # asked for before the turn was confirmed
    assert first_audio >= end_of_speech + 0.2 - 0.021  # heard only once it was
    assert first_audio < end_of_speech + 0.2 + 0.15  # without waiting for the voice then
    assert rig.conv.records[0].agent_text.startswith("Opening hours: Monday to Friday")
    assert kinds.count("known") == 1


async def test_a_fact_voiced_for_a_turn_that_goes_on_is_never_heard(dialogue_rig):
    rig, synth, kinds = await _fact_call(dialogue_rig, then_speaking=True)
    assert len(rig.conv.records) == 1 and kinds.count("known") == 1
    assert [m["role"] for m in rig.conv.history] == ["system", "user", "assistant"]


async def test_a_half_answer_refused_midway_is_followed_by_the_fact(dialogue_rig):
    rig, chat, kinds = await _call(dialogue_rig, "When do you open on Monday?",
                                   "Monday to Friday, from 10 am.", model_phrases_facts=True)
    said = rig.conv.records[0].agent_text
    assert said.startswith("Monday to Friday,") and "10" not in said
    assert said.endswith("Monday to Friday 8 am to 6 pm.")  # the part about Monday


async def test_a_sourced_answer_from_the_model_is_spoken(dialogue_rig):
    rig, chat, kinds = await _call(dialogue_rig, "When do you open on Monday?",
                                   "On Monday we open at 8 am.", model_phrases_facts=True)
    assert rig.conv.records[0].agent_text.strip() == "On Monday we open at 8 am."
    assert "refused" not in kinds


async def test_an_agent_without_knowledge_does_not_invent_facts_either(dialogue_rig):
    plain = {"instructions": "You are the receptionist of a dental clinic.", "knowledge": "",
             "faq": ()}
    rig, chat, kinds = await _call(dialogue_rig, "When do you open on Saturday?",
                                   "We open at 10 am on Saturday.", **plain)
    assert len(chat.seen) == 1 and "refused" in kinds
    assert rig.conv.records[0].agent_text == Phrases().unknown  # not a guess
    # that "I don't know" comes from the phrase cache, nothing synthesized: the turn's first
    # audio out is still its time (the voice-to-voice metric and the bench count it)
    marks = rig.conv.records[0].timings.relative_ms()
    assert "tts_first_audio" not in marks
    assert marks["first_audio_out"] >= marks["first_clause"] >= marks["turn_detected"]
    rig, chat, kinds = await _call(dialogue_rig, "How are you today?",
                                   "I am well, thank you. How can I help?", **plain)
    assert rig.conv.records[0].agent_text == "I am well, thank you. How can I help?"
    assert "refused" not in kinds


async def test_speech_that_comes_out_as_no_words_is_asked_again_a_short_sound_ignored(
        dialogue_rig):
    rig, chat, kinds = await _call(dialogue_rig, "", "Anything.", speech=2.0)
    assert rig.conv.records[0].agent_text == Phrases().misheard and "misheard" in kinds
    assert chat.seen == []
    rig, chat, kinds = await _call(dialogue_rig, "", "Anything.", speech=0.5)
    assert rig.conv.records == [] and "misheard" not in kinds  # a cough, a click


async def test_words_that_make_no_sense_are_asked_again_not_answered(dialogue_rig):
    rig, chat, kinds = await _call(dialogue_rig, "One time do you play one half a maze?",
                                   "I'm sorry, I can't play a full maze.", confidence=0.2)
    assert chat.seen == []
    assert rig.conv.records[0].agent_text == Phrases().misheard
    assert "misheard" in kinds
    # the misheard words do not stay in the history the model sees later
    assert not any(m["content"].startswith("One time") for m in rig.conv.history)


def test_with_knowledge_only_small_talk_reaches_the_model(knowledge) -> None:
    answers = Answerer(knowledge, Phrases())
    for said in ("Good morning!", "How are you today?", "ok great thank you so much"):
        assert answers.answer(said).step is Step.FREE, said
    # a statement about something the agent knows nothing about is not guessed at
    assert answers.answer("hi yeah I've got a really bad toothache").step is Step.UNKNOWN


@pytest.mark.parametrize("clause", [
    "We are open Saturday from 9 am to 1 pm.", "We are open Saturday 9:00 am to 1:00 pm.",
    "On Saturday we are open from 10 am to 4 pm.", "A visit costs 80 dollars.",
    "You can come in on Sunday at 10:59 AM.", "A refill takes 2-3 days.",
    "We open at nine on Saturday.", "It takes twenty five minutes.", "Sure, I can help.",
    "In March we have 12 doctors.", "Call 555 0100 to book.",
])
def test_a_clause_refused_early_is_refused_when_whole(clause) -> None:
    """Whatever start of a clause ``refuses_already`` refuses, ``allows`` refuses whole
    (the model is stopped sooner, nothing else changes)."""
    for cut in range(1, len(clause) + 1):
        early = FactGuard(SOURCES, history(("user", "When are you open?")))
        if early.refuses_already(clause[:cut]):
            whole = FactGuard(SOURCES, history(("user", "When are you open?")))
            assert not whole.allows(clause), (clause[:cut], early.refused)
            assert cut < len(clause) or clause[-1] == " "
            break


def test_an_unsourced_number_or_day_is_refused_as_soon_as_it_is_a_whole_word() -> None:
    guard = FactGuard(SOURCES, history(("user", "When are you open?")))
    assert not guard.refuses_already("We open at 1")  # may still become 10 or 1 pm
    assert guard.refuses_already("We open at 10 ") and guard.refused == "number"
    assert FactGuard(SOURCES, history()).refuses_already("We are closed in December ")
    assert not FactGuard(SOURCES, history()).refuses_already("We are open on Saturday ")
    caller = FactGuard(SOURCES, history(("user", "Is 4 pm on Sunday okay?")))
    assert not caller.refuses_already("Yes, 4 pm on Sunday ")  # the caller's own words
    assert not guard.refuses_already("Ask for Dr. Jones ")  # names: the whole clause only


@pytest.mark.parametrize(("clause", "allowed"), [
    ("Sorry, I may have misheard that.", True), ("May I have your name, please?", True),
    ("That may take a moment.", True), ("We are closed in May.", False),
    ("May 5 is a holiday.", False), ("In March we close early.", False),
])
def test_may_and_march_are_months_only_when_written_as_one(clause, allowed) -> None:
    """"may" the word is no unsourced month; "May" inside a sentence or before a number is."""
    guard = FactGuard(SOURCES, history(("user", "Can I ask something?")))
    assert guard.allows(clause) is allowed, guard.refused
    assert FactGuard(SOURCES, history()).refuses_already(clause + " ") is not allowed


async def test_the_model_stops_at_the_first_refused_word_not_the_clause_end() -> None:
    from agent.answers.clauses import ClauseGate, gated

    pieces = ["We", "open", "at", "10", "am", "on", "Saturdays", "and", "close", "late."]
    given: list[str] = []

    async def model():
        for piece in pieces:
            given.append(piece)
            yield piece + " "

    guard = FactGuard(SOURCES, history(("user", "When are you open?")))
    gate = ClauseGate(guard.allows, guard.refuses_already)
    assert [c async for c in gated(model(), gate)] == []
    assert gate.refused and len(given) == 4  # "10" and the space after it: no further


def test_a_tool_result_read_out_as_json_is_refused() -> None:
    from agent.answers.clauses import ClauseGate

    gate = ClauseGate()
    assert gate.take("Your balance is 42 dollars.")
    assert not gate.take('{"ok": true, "result": {"balance": "42.50"}}') and gate.refused


def test_goodbyes_thanks_and_introductions(knowledge) -> None:
    answers = Answerer(knowledge, Phrases())
    for said in ("Thanks bye", "Okay, goodbye.", "Oh, I found what I needed. Thank you. Goodbye."):
        assert answers.answer(said).step is Step.GOODBYE, said
    assert answers.answer("Thanks a lot.").step is Step.FREE  # a lot is no parking lot
    # the caller's name and number are about them, not a question about the clinic
    plan = answers.answer("Hello, my name is Maria Gonzalez and my number is 555-213-4477. "
                          "Are you open on Saturday?")
    assert plan.step is Step.KNOWN and plan.say.startswith("On Saturday"), plan
    week = answers.answer("Hi, what are your opening hours during the week?")
    assert week.step is Step.FACT and week.say.startswith("Opening hours"), week


@pytest.mark.parametrize("clause, allowed", [
    ("Yes, you can pay your bill with a credit card.", False),  # nothing says so
    ("We accept all major credit cards.", False),
    ("Yes, we do.", False),  # a bare yes claims what was asked
    ("Of course, we can do that for you.", False),
    ("You can reach us any time.", False),
    ("You can ask me about your balance.", True),  # the agent's own topic
    ("Yes, I can help you check your balance.", True),  # no claim about the business
    ("Of course! What would you like to know?", True),
    ("Please enter your account number.", True),
])
def test_a_claim_about_what_the_business_takes_or_does_needs_a_source(clause, allowed) -> None:
    sources = Sources.of("When the caller asks about their balance, use account_balance. "
                         "account_balance: Look up the balance of the caller's account.")
    guard = FactGuard(sources, [{"role": "user", "content": "Can I pay my bill by card?"}])
    assert guard.allows(clause) is allowed, guard.refused
    clinic = FactGuard(SOURCES, history(("user", "Do you take Aetna?")))
    assert clinic.allows("Yes, we accept Aetna.") and clinic.allows("Yes, we do.")


@pytest.mark.parametrize("question, said", [
    ("What are your opening hours during the week?",
     "Opening hours: Monday to Friday 8 am to 6 pm."),
    ("What time do you open on Tuesdays?", "Opening hours: Monday to Friday 8 am to 6 pm."),
    ("When are you open?", FACTS.splitlines()[0]),  # no day asked: the whole fact, not
    ("What are your opening hours?", FACTS.splitlines()[0]),  # the Saturday answer
    ("Where are you on Monday?", FACTS.splitlines()[1]),  # its parts name no days
])
def test_a_fact_is_cut_to_the_days_the_question_asks_about(knowledge, question, said) -> None:
    assert Answerer(knowledge).answer(question) == Plan(Step.FACT, said)


def test_an_answer_about_some_days_answers_only_questions_about_those(knowledge) -> None:
    saturday = FAQ[0][1]
    for question in ("Are you open this weekend?", "What are your hours on Sunday?"):
        assert Answerer(knowledge).answer(question) == Plan(Step.KNOWN, saturday), question
    assert Answerer(knowledge).answer("Are you open on Tuesday?").say != saturday


def test_day_ranges_and_groups() -> None:
    assert days_named("Mon-Fri, and Sat to Sun") == frozenset(range(7))
    assert days_named("Mondays through Thursdays") == frozenset(range(4))
    assert days_named("we sat in the sun on the weekend") == frozenset({5, 6})
    assert days_named("during the week") == frozenset(range(5))
    assert narrow("Hours: 9 to 5.", "on Monday?") == "Hours: 9 to 5."
