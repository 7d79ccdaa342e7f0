"""Words as the answering rules compare them: lower case, stemmed, synonyms folded together,
numbers as digits."""

from __future__ import annotations

import re


def wordset(text: str) -> frozenset[str]:
    """The words of ``text`` as a set."""
    return frozenset(text.split())


# Words that carry no topic: asked about nothing in particular.
STOP = wordset("""
a about after again all also am an and any anybody anyone anything are as ask at be been
before being but by can could did do does doing don't for from get got had has have having
he her here hey hi him his hello how i i'd i'll i'm i've if in into is it it's its just
know like look let let's me might more most much my need no not now of off oh ok okay on
one or our out please really right say see she should so some something sure tell than
thank thanks that that's the their them then there there's these they this those to today
too uh um up us very wanna want was we we're well were what what's when which
where while who why will wish with wonder wondering would yeah yes you you're your yours
guy guys folks take come go make during until till since near there's didn't catch sorry
""")

# Words that say the same thing for a caller's question, folded into one.
SYNONYMS: dict[str, str] = {}
for _canonical, _words in {
    "hours": "hour hours open opens opened opening close closes closing closed time times "
             "late early morning mornings afternoon afternoons evening evenings tonight "
             "shut",
    "weekday": "week weekday weekdays monday mondays tuesday tuesdays wednesday wednesdays "
               "thursday thursdays friday fridays",
    "weekend": "weekend weekends saturday saturdays sunday sundays",
    "address": "address located location find directions direction street road "
               "avenue",
    "parking": "park parking parked garage",  # not "lot": "thanks a lot"
    "insurance": "insurance insurer insured plan plans coverage cover covered accept "
                 "accepted",
    "price": "price prices cost costs fee fees charge charges pay paying payment dollars "
             "expensive cheap",
    "wait": "wait waiting queue",
    "phone": "phone telephone fax",
    "appointment": "appointment appointments booking book booked schedule visit",
}.items():
    for _word in _words.split():
        SYNONYMS.setdefault(_word, _canonical)

NUMBER_WORDS = {
    "zero": 0, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000,
}  # "one" is left out: "one moment", "which one" are not numbers
_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?|\d+")


def stem(word: str) -> str:
    """Crude English stem: closes, closing, closed → clos."""
    for suffix in ("ings", "ing", "ies", "ied", "es", "ed", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            word = word[: -len(suffix)] + ("y" if suffix in ("ies", "ied") else "")
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "ls":
        word = word[:-1]  # shipp → ship
    return word.rstrip("e") if len(word) > 3 else word


def tokens(text: str) -> list[str]:
    """Lower-case words and digit runs, in order ("where's", "mom's": "where", "mom")."""
    return [t[:-2] if t.endswith("'s") else t
            for t in _TOKEN.findall(text.lower().replace("’", "'"))]


# topics a matched entry must cover to answer the question (days need not: "Monday to
# Friday" answers "Thursday?")
CONCEPTS = frozenset(SYNONYMS.values()) - {"weekday", "weekend"}


def terms(text: str) -> list[str]:
    """The topic words of ``text``: stop words out, synonyms folded, the rest stemmed
    ("where are you?" alone asks for the address)."""
    words = tokens(text.lower().replace("how much", "price"))
    out = [SYNONYMS.get(t) or SYNONYMS.get(stem(t)) or stem(t)
           for t in words if t not in STOP and not t.isdigit()]
    if "where" in words and not CONCEPTS.intersection(out):
        out.append("address")  # "where's your office?" asks for the address
    return out


def numbers(text: str, spelled: bool = True) -> set[int]:
    """The numbers in ``text``, written as digits or (``spelled``) words ("nine thirty" →
    {9, 30})."""
    found: set[int] = set()
    text = re.sub(r"(?<=\d):00\b", "", text.replace(",", ""))  # 9:00 am is 9 am
    for token in tokens(text):
        if token.isdigit():
            found.add(int(token))
        elif spelled and token in NUMBER_WORDS:
            found.add(NUMBER_WORDS[token])
    return found


def same_words(a: str, b: str) -> float:
    """How much two texts share their topic words (0..1, Jaccard)."""
    left, right = set(terms(a)), set(terms(b))
    if not left or not right:
        return 1.0 if left == right else 0.0
    return len(left & right) / len(left | right)
