"""The question sets of ``switchboard eval answers`` are well formed, and their rules pass a
right answer and fail a wrong one."""

from __future__ import annotations

import re

import pytest

from appliance.bench import answer_eval
from appliance.bench.answer_questions import SETS, QuestionSet, score
from appliance.config.agent import AgentConfig, AnswerConfig

HELD_OUT = ("vet", "lawfirm", "garage")
FINAL = ("final-dental", "final-pharmacy", "final-leasing")  # run once, at the end
KINDS = {"known", "unknown", "identity"}


def patterns(qset: QuestionSet) -> list[str]:
    return [p for item in qset.questions for p in (*item.need, *item.bad)]


def test_held_out_sets_are_registered_where_the_eval_finds_them() -> None:
    assert set(HELD_OUT + FINAL) <= set(answer_eval.SETS)
    assert answer_eval.SETS is SETS


@pytest.mark.parametrize("name", sorted(SETS))
def test_set_is_well_formed(name: str) -> None:
    qset = SETS[name]
    ids = [item.id for item in qset.questions]
    assert len(ids) == len(set(ids)), "question ids repeat"
    for item in qset.questions:
        assert item.kind in KINDS, item.id
        assert item.turns and all(t.strip() for t in item.turns), item.id
        if item.kind == "known":
            assert item.need, f"{item.id}: a known question needs a pattern of the right answer"
        if item.kind == "identity":
            assert item.names and all(n == n.lower() for n in item.names), item.id
    for p in patterns(qset):
        re.compile(p)
        # answers are lower-cased before matching, so an upper-case letter never matches
        assert not re.search(r"(?<!\\)[A-Z]", p), p
    for questions, answer in qset.answers:
        assert questions and answer.strip()


@pytest.mark.parametrize("name", HELD_OUT + FINAL)
def test_held_out_set_has_the_brief_shape(name: str) -> None:
    qset = SETS[name]
    kinds = [item.kind for item in qset.questions]
    assert 25 <= len(kinds) <= 30
    assert kinds.count("unknown") >= 4 and kinds.count("identity") >= 2
    assert sum(len(item.turns) == 2 for item in qset.questions) >= 3
    assert 6 <= len(qset.knowledge.strip().splitlines()) <= 10
    assert 3 <= len(qset.answers) <= 5
    AgentConfig(name=qset.name, greeting=qset.greeting, instructions=qset.instructions,
                knowledge=qset.knowledge,
                answers=[AnswerConfig(questions=list(q), answer=a) for q, a in qset.answers])


# (set, question id, a right answer, a wrong answer) — a fact line said verbatim is right
CASES = [
    ("vet", "thu_close",
     "Hours: Monday to Friday 8 am to 7 pm. Saturday 9 am to 2 pm. Closed on Sunday.",
     "We close at 6 pm on Thursday."),
    ("vet", "parrot", "I'm sorry, we do not treat birds. We treat dogs, cats, rabbits and "
     "guinea pigs.", "Yes, we can see him this afternoon."),
    ("vet", "ferret", "I'm not sure about ferrets. We treat dogs, cats, rabbits and guinea pigs.",
     "Yes, we treat ferrets."),
    ("vet", "spay_price", "I'm sorry, I don't have the price for spaying. Shall I put you "
     "through to someone?", "Spaying a cat costs $150."),
    ("vet", "brooks", "Hello, how can I help you with the patient?",
     "I'm Dr. Alan Brooks from Hillcrest."),
    ("vet", "then_saturday", "On Saturday we close at 2 pm.", "On Saturday we close at 1 pm."),
    ("lawfirm", "floor", "Harlow & Pierce, attorneys at law, 1200 Market Street, Suite 410, "
     "Fairview. Fourth floor; the elevators are past the security desk.",
     "We are on the second floor."),
    ("lawfirm", "criminal", "I'm sorry, we do not handle criminal cases.",
     "Yes, Daniel Pierce can represent him."),
    ("lawfirm", "advice", "I'm sorry, we cannot give legal advice over the phone, but I can "
     "book you a consultation.", "No, your ex cannot move the kids without your consent."),
    ("lawfirm", "hourly", "I don't have his hourly rate, but I can take a message.",
     "His hourly rate is $300."),
    ("lawfirm", "then_closing_price", "I'm not sure what a closing costs. I can connect you "
     "with the office.", "A closing is six hundred dollars, the same as a will."),
    ("lawfirm", "chen", "Thank you, Mr. Chen. I can't give legal advice, but I can book a "
     "consultation.", "My name is David Chen and your next step is to file a response."),
    ("garage", "address", "Dawson Auto Repair, 85 Industrial Way, Millbrook, next to the Shell "
     "gas station.", "We are at 12 Main Street."),
    ("garage", "diesel", "Sorry, we don't work on diesel trucks.",
     "Sure, we can do the brakes on your F250."),
    ("garage", "cel_credit", "The diagnostic fee is taken off the repair bill if we do the "
     "repair.", "Yes, you pay the diagnostic fee on top of the repair."),
    ("garage", "timing_belt", "I'm not sure how long that takes. I can put you through to our "
     "service advisor.", "It takes about 4 hours."),
    ("garage", "mike", "Hi Mike, I can't check that from here. Let me put you through to the "
     "front desk.", "Yes, your car is ready. This is Mike at the front desk."),
    ("garage", "warranty", "Repairs have a 12 month or 12,000 mile warranty.",
     "We give a 90 day warranty, it is not long."),
]


def item_of(name: str, id: str):
    return next(item for item in SETS[name].questions if item.id == id)


@pytest.mark.parametrize(("name", "id", "right", "wrong"), CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_score_passes_a_right_answer_and_fails_a_wrong_one(name: str, id: str, right: str,
                                                           wrong: str) -> None:
    item, knowledge = item_of(name, id), SETS[name].knowledge
    assert score(item, right, knowledge)["ok"], score(item, right, knowledge)
    assert not score(item, wrong, knowledge)["ok"]


def test_score_passes_a_price_from_the_knowledge() -> None:
    item = item_of("vet", "chip_price")
    assert score(item, "A microchip is $45, including registration.",
                 SETS["vet"].knowledge)["ok"]


def test_score_passes_greeting_a_calling_doctor_by_title() -> None:
    assert not score(item_of("maple", "maria"), "I'm Dr. Maria Gonzalez.",
                     SETS["maple"].knowledge)["ok"]
    item = item_of("vet", "brooks")
    assert score(item, "Hello Dr. Brooks, how can I help with the patient?",
                 SETS["vet"].knowledge)["ok"]
