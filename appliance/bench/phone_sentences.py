"""What callers say, as templates filled from seeded choices (the text of the STT evaluation).

Every template is written the way a caller speaks it: digits as words, grouped the way people
group phone numbers. Templates marked held-out are never looked at while tuning the
transcriber; the evaluation reports them apart.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

FIRST = ("Maria", "James", "Priya", "Daniel", "Mei", "Robert", "Fatima", "Kevin", "Sarah",
         "Thomas", "Olga", "Luis", "Aisha", "Peter", "Grace", "Omar")
LAST = ("Gonzalez", "Whitaker", "Patel", "Brennan", "Chen", "Johnson", "Hassan", "Nguyen",
        "Miller", "Becker", "Petrova", "Ramirez", "Okafor", "Lindqvist", "Moreau", "Kowalski")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")
ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
            "ninth", "tenth", "eleventh", "twelfth", "fifteenth", "twentieth",
            "twenty first", "twenty third", "twenty eighth", "thirtieth")
HOURS = ("eight", "nine", "ten", "eleven", "twelve", "one", "two", "three", "four", "five")
MINUTES = ("", " fifteen", " thirty", " forty five")
STREETS = ("Maple Street", "Oak Avenue", "Harbor Road", "Lincoln Boulevard", "Cedar Lane",
           "Pine Street", "Elm Drive", "Riverside Avenue")
CITIES = ("Springfield", "Riverton", "Lakewood", "Fairview", "Georgetown", "Ashland")
INSURERS = ("Blue Cross", "Aetna", "Cigna", "United Healthcare", "Humana", "Medicare",
            "Medicaid", "Kaiser")
DRUGS = ("amoxicillin", "lisinopril", "metformin", "atorvastatin", "ibuprofen", "insulin",
         "albuterol", "omeprazole", "levothyroxine", "prednisone")
STAFF = ("Doctor Patel", "Doctor Alvarez", "Doctor Kim", "the nurse", "billing",
         "the front desk", "Doctor Friedman")
SERVICES = ("a cleaning", "a flu shot", "a checkup", "an x-ray", "blood work",
            "a follow up visit", "a physical")
# What a clinic's or pharmacy's agent would be set up with (its knowledge names its staff,
# the insurers it takes, its services, the drugs it dispenses): the words `eval stt --words`
# gives the transcriber. Callers' names, streets and cities are not among them.
BUSINESS_TEXTS = (*STAFF, *INSURERS, *SERVICES, *DRUGS)


def _number(rng: random.Random, count: int, first_nonzero: bool = True) -> str:
    digits = [rng.randrange(1 if first_nonzero and i == 0 else 0, 10) for i in range(count)]
    return " ".join(DIGITS[d] for d in digits)


def _phone(rng: random.Random) -> str:
    return f"{_number(rng, 3)}, {_number(rng, 3)}, {_number(rng, 4, False)}"


def _house(rng: random.Random) -> str:
    """A house number the way people say it: "four twelve", "twenty two", "eighteen"."""
    tens = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
    teens = ("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
             "seventeen", "eighteen", "nineteen")
    kind = rng.randrange(3)
    if kind == 0:
        return f"{DIGITS[rng.randrange(1, 10)]} {teens[rng.randrange(10)]}"
    if kind == 1:
        return f"{tens[rng.randrange(8)]} {DIGITS[rng.randrange(1, 10)]}"
    return teens[rng.randrange(10)]


def _time(rng: random.Random) -> str:
    return rng.choice(HOURS) + rng.choice(MINUTES)


SLOTS = {
    "first": lambda r: r.choice(FIRST),
    "last": lambda r: r.choice(LAST),
    "phone": _phone,
    "day": lambda r: r.choice(WEEKDAYS),
    "day2": lambda r: r.choice(WEEKDAYS),
    "month": lambda r: r.choice(MONTHS),
    "ordinal": lambda r: r.choice(ORDINALS),
    "time": _time,
    "time2": _time,
    "house": _house,
    "street": lambda r: r.choice(STREETS),
    "city": lambda r: r.choice(CITIES),
    "insurer": lambda r: r.choice(INSURERS),
    "drug": lambda r: r.choice(DRUGS),
    "staff": lambda r: r.choice(STAFF),
    "service": lambda r: r.choice(SERVICES),
    "unit": lambda r: DIGITS[r.randrange(1, 10)],
    "digits4": lambda r: _number(r, 4, False),
    "digits6": lambda r: _number(r, 6, False),
}

# (id, template, held out). Held-out templates cover the same kinds of content in new words.
TEMPLATES: tuple[tuple[str, str, bool], ...] = (
    ("name", "Hi, my name is {first} {last}.", False),
    ("name-spell", "This is {first} {last}, I'm calling about my appointment.", False),
    ("phone", "My number is {phone}.", False),
    ("phone-call", "You can call me back at {phone}.", False),
    ("book", "I'd like to book {service} on {day} morning.", False),
    ("date", "Do you have anything on {month} {ordinal}?", False),
    ("time", "Can I come in at {time} on {day}?", False),
    ("hours", "What time do you close on {day}s?", False),
    ("address", "I live at {house} {street} in {city}.", False),
    ("insurance", "Do you take {insurer} insurance?", False),
    ("drug", "I need a refill of my {drug} prescription.", False),
    ("yes", "Yes, that's right.", False),
    ("no", "No, that's not it.", False),
    ("correct-day", "No, I said {day}, not {day2}.", False),
    ("correct-time", "Sorry, I meant {time}, not {time2}.", False),
    ("transfer", "Can I speak to {staff}, please?", False),
    ("member", "My member ID ends in {digits4}.", False),
    ("cancel", "I need to cancel my appointment on {month} {ordinal}.", False),
    ("birth", "My date of birth is {month} {ordinal}, nineteen eighty {unit}.", False),
    ("pharmacy", "Is my {drug} ready for pickup at the pharmacy?", False),
    ("hold-name", "Sure, it's {first}, {first} {last}.", True),
    ("hold-phone", "The best number to reach me is {phone}, any time after {time}.", True),
    ("hold-resched", "Could we move {service} from {day} to {day2} afternoon?", True),
    ("hold-insurance", "I switched to {insurer} last month, is that a problem?", True),
    ("hold-drug", "The pharmacy said my {drug} needs a new approval from {staff}.", True),
    ("hold-correct", "No, no, the number is {phone}.", True),
    ("hold-address", "Please send the letter to {house} {street}, {city}.", True),
    ("hold-yes", "Okay, yes, please go ahead and book it.", True),
    ("hold-code", "The confirmation code is {digits6}.", True),
    ("hold-when", "Is {staff} in on {day} at {time}?", True),
)


@dataclass(frozen=True)
class Sentence:
    """One filled template: the words a caller says."""

    template: str
    text: str
    held_out: bool


def sentences(count: int, seed: int) -> list[Sentence]:
    """``count`` sentences cycling through every template, slots filled from ``seed``."""
    rng = random.Random(seed)
    order = list(TEMPLATES)
    out: list[Sentence] = []
    while len(out) < count:
        rng.shuffle(order)
        for tid, template, held in order[: count - len(out)]:
            values = {name: fill(rng) for name, fill in SLOTS.items() if "{" + name in template}
            if "day2" in values:
                values["day2"] = rng.choice([d for d in WEEKDAYS if d != values["day"]])
            if "time2" in values:
                values["time2"] = rng.choice([h for h in HOURS if h != values["time"]])
            out.append(Sentence(tid, template.format(**values), held))
    return out
