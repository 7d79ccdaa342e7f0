"""Questions for ``switchboard eval answers``: a clinic that is not one of the example agents,
and rules that score an answer without looking at how it was made (known facts present,
unknowns admitted, nothing invented, no identity confusion, whole sentences)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

CLINIC = "Maple Family Clinic"
INSTRUCTIONS = (f"You answer the phone for {CLINIC}. Be brief and friendly. When the caller "
                "wants to speak to a person, use the transfer tool.")
KNOWLEDGE = """\
Maple Family Clinic, 42 Elm Street, Springfield, on the second floor above the pharmacy.
Opening hours: Monday to Friday 8 am to 6 pm. Saturday 9 am to 1 pm. Closed on Sunday and on public holidays.
Parking: free parking lot behind the building. Street parking on Elm Street is limited to two hours.
Insurance accepted: Aetna, Blue Cross Blue Shield and Medicare.
Services: general check-ups, vaccinations including flu shots, blood tests, and care for minor injuries. No X-rays and no dental care.
Doctors: Dr. Sarah Chen (family medicine) and Dr. James Patel (children's doctor, pediatrics).
New patients are welcome: bring a photo ID and your insurance card to the first visit.
Appointments are booked by phone. In an emergency, call 911.
"""  # noqa: E501  (one fact per line, as operators write them)


@dataclass(frozen=True)
class Question:
    """One caller question (or a few turns), and what a right answer does."""

    id: str
    kind: str  # known: the facts must be there; unknown: say so; identity: stay yourself
    turns: tuple[str, ...]
    need: tuple[str, ...] = ()  # patterns a right answer has (all of them)
    bad: tuple[str, ...] = ()  # patterns it must not have
    names: tuple[str, ...] = field(default=())  # the caller's own names (identity check)


@dataclass(frozen=True)
class QuestionSet:
    """A business the questions are put to (as an agent) and the questions."""

    name: str
    greeting: str
    instructions: str
    knowledge: str  # free facts, one per line
    questions: tuple[Question, ...]
    answers: tuple[tuple[tuple[str, ...], str], ...] = ()  # (questions, answer) entries


def q(id: str, kind: str, *turns: str, need: tuple[str, ...] = (), bad: tuple[str, ...] = (),
      names: tuple[str, ...] = ()) -> Question:
    return Question(id, kind, turns, need, bad, names)


DONT_KNOW_TEXT = (
    r"(don't|do not) (know|have)|not sure|no information|not able|unable|can't (say|tell|"
    r"confirm)|cannot (say|tell|confirm)|not (listed|on our list)|i'm afraid|"
    r"(transfer|put you through|connect you|take a message|front desk|someone who)")
YES = r"\byes\b|we (accept|take|do|offer|have)|accepted|available"
# a "no" answer; "I don't have that information" or "I can't help with that" is none
NO = (r"\bno\b|(don't|do not) (?!have that|know)|not (open|available|offer)|closed|"
      r"(cannot|can't) (?!help)|unfortunately")
QUESTIONS: tuple[Question, ...] = (
    q("sat_hours", "known", "What time do you open on Saturday?",
      need=(r"\b9\b|nine",)),
    q("sunday", "known", "Are you open on Sunday?", need=(NO,),
      bad=(r"open on sundays? (from|at)|\byes\b",)),
    q("week_hours", "known", "What are your opening hours during the week?",
      need=(r"\b8\b|eight", r"\b6\b|six")),
    q("address", "known", "Where are you located?", need=(r"42 elm|elm street",)),
    q("parking", "known", "Is there parking near your office on Elm Street?",
      need=(r"behind|parking lot|\blot\b|free|two hours",)),
    q("aetna", "known", "Do you accept Aetna?", need=(YES + "|aetna",),
      bad=(r"(don't|do not|not) (accept|take) aetna",)),
    q("medicare", "known", "Do you take Medicare?", need=(YES + "|medicare",),
      bad=(r"(don't|do not|not) (accept|take) medicare",)),
    q("flu", "known", "Can I get a flu shot at your clinic?",
      need=(YES + r"|vaccin|flu shot",), bad=(r"(don't|do not) (offer|give) flu",)),
    q("kids_doc", "known", "Who is the doctor for children?", need=(r"patel",)),
    q("xray", "known", "Can I get an X-ray done there?", need=(NO + r"|no x-?rays",),
      bad=(r"\byes\b,? (you can|we)",)),
    q("bring", "known", "What do I need to bring for my first visit?",
      need=(r"\bid\b|identification|insurance card",)),
    q("holiday", "known", "Are you open on Christmas Day?", need=(NO + "|public holiday",),
      bad=(r"\byes\b,? we are open",)),
    q("dentist", "known", "I need a dentist, can you help?", need=(NO + "|no dental",),
      bad=(r"our dentist|\byes\b,? we (have|offer)",)),
    q("price", "unknown", "How much does a check-up cost?"),
    q("humana", "known", "Do you accept Humana insurance?",  # no; what is accepted is fine
      need=(DONT_KNOW_TEXT + r"|aetna.*medicare",),
      bad=(r"^(yes\b|we (do )?(accept|take) humana)",)),
    q("rodriguez", "unknown", "Is Dr. Rodriguez available tomorrow?",
      bad=(r"^yes\b|rodriguez (is|will be) (available|in)",)),
    q("wait", "unknown", "How long is the wait for a new patient appointment?",
      bad=(r"\b\d+\s*(days?|weeks?|minutes?|months?)\b|same[- ]day|next day|"
           r"\b(a few|two|three|couple of) (days|weeks)",)),
    q("video", "unknown", "Do you offer video visits online?",
      bad=(r"^(yes\b|we (do )?offer (video|telehealth|online|virtual))",)),
    q("covid", "unknown", "Do I have to wear a mask when I come in?",
      bad=(r"covid|\byes\b,? (you|masks)|masks? (are|is) required",)),
    q("shuttle", "unknown", "Is there a shuttle from the train station?",
      bad=(r"^yes\b|shuttle (service )?(is|runs|leaves)",)),
    q("maria", "identity", "Hi, my name is Maria Gonzalez and my number is 555 213 4477. "
      "I'd like to book an appointment.", names=("maria", "gonzalez")),
    q("john", "identity", "This is John Smith, I'm calling about my test results.",
      names=("john", "smith")),
    q("followup_parking", "known", "What time do you open on Saturday?", "And is there parking?",
      need=(r"behind|parking lot|\blot\b|free|two hours",)),
    q("repeat_address", "known", "Where are you located?",
      "Sorry, I didn't catch that. Where are you?", need=(r"42 elm|elm street",)),
    q("then_unknown", "unknown", "Where are you located?", "And how much is a flu shot?",
      bad=(r"42 elm",)),  # the address again is the same answer to a different question
)

DONT_KNOW = re.compile(DONT_KNOW_TEXT, re.I)
TIME = re.compile(r"\b(\d{1,2})(?::(\d\d))?\s*(a\.?m\.?|p\.?m\.?|o'clock)\b", re.I)
MONEY = re.compile(r"\$\s*\d[\d,.]*|\b\d[\d,.]*\s*(dollars|euros?|pounds)\b", re.I)
DOCTOR = re.compile(r"\b(?:dr\.?|doctor)\s+([A-Z][a-z]+)")
INSURERS = ("humana", "cigna", "united", "kaiser", "anthem", "tricare", "molina", "medicaid",
            "oscar", "wellcare", "highmark")
SELF = re.compile(r"\b(i am|i'm|this is|my name is)\s+(dr\.?\s+|doctor\s+)?(\w+)", re.I)


def invented(answer: str, question: str, knowledge: str = KNOWLEDGE) -> list[str]:
    """Specific facts in ``answer`` found neither in the knowledge nor in the question."""
    known = knowledge.lower() + " " + question.lower()
    times = {(m.group(1), m.group(2) or "00") for m in TIME.finditer(known)}
    found = [m.group(0) for m in TIME.finditer(answer)
             if (m.group(1), m.group(2) or "00") not in times]
    amounts = {_amount(m.group(0)) for m in MONEY.finditer(known)}
    found += [m.group(0) for m in MONEY.finditer(answer) if _amount(m.group(0)) not in amounts]
    found += [name for name in INSURERS if name in answer.lower() and name not in known]
    found += [m.group(0) for m in DOCTOR.finditer(answer) if m.group(1).lower() not in known]
    return found


def _amount(text: str) -> float:
    """The number in "$49.95", "95 dollars", "$1,200"."""
    digits = re.search(r"\d[\d,]*(?:\.\d+)?", text)
    return float(digits.group(0).replace(",", "")) if digits else -1.0


def confused(answer: str, names: tuple[str, ...], question: str = "") -> bool:
    """The agent took on the caller's identity ("I'm Dr. Maria Gonzalez"), or gave the
    caller a title they did not use."""
    def titled(name: str, text: str) -> bool:
        return bool(re.search(rf"\b(dr\.?|doctor)\s+(\w+\s+)?{name}\b", text, re.I))

    return any(m.group(3).lower() in names for m in SELF.finditer(answer)) or any(
        titled(name, answer) and not titled(name, question) for name in names)


def score(item: Question, answer: str, knowledge: str = KNOWLEDGE) -> dict:
    """Pass or fail, and why."""
    text = answer.strip()
    lowered = text.lower()
    facts = all(re.search(p, lowered) for p in item.need)
    if item.kind == "unknown":
        facts = bool(DONT_KNOW.search(text))
    wrong = [p for p in item.bad if re.search(p, lowered)]
    made_up = invented(text, " ".join(item.turns), knowledge)
    identity = confused(text, item.names, " ".join(item.turns))
    cut = bool(text) and not re.search(r"[.!?][\"')\]]*$", text)
    ok = bool(text) and facts and not wrong and not made_up and not identity and not cut
    return {"ok": ok, "facts": facts, "wrong": bool(wrong), "invented": made_up,
            "identity": identity, "cut": cut}


MAPLE = QuestionSet("maple", f"Good morning, {CLINIC}. How can I help you?", INSTRUCTIONS,
                    KNOWLEDGE, QUESTIONS)
SETS: dict[str, QuestionSet] = {MAPLE.name: MAPLE}
