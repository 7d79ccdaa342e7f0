"""Phone numbers, names, a choice from a list, yes or no, and "never mind", as spoken."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence

from agent.flows.dates import MONTHS, weekday_number
from agent.flows.words import DIGIT_WORDS, has_phrase, tokens
from agent.tools.choice import stem

_REPEATS = {"double": 2, "triple": 3}


def parse_phone(text: str) -> str | None:
    """The digits of the longest spoken number in ``text``: "five five five, two one three",
    "oh" for zero, "double five", "555-213-4567", "1 800"; None if no digits at all."""
    runs: list[str] = []
    run = ""
    repeat = 1
    words = tokens(text.replace("+", " "))
    for i, word in enumerate(words):
        if word == "a" and (i == 0 or run) and i + 1 < len(words) and _is_digit(words[i + 1]):
            # "oh" heard as "a": "A 1 2 3 …" (Whisper), "5 5 5, a one, o, 7 7 8 8" (Moonshine)
            run += "0" * repeat
        elif word.isdigit():
            run += word * repeat
        elif word in DIGIT_WORDS and (word != "o" or run):
            run += str(DIGIT_WORDS[word]) * repeat
        elif word in _REPEATS:
            repeat = _REPEATS[word]
            continue
        elif word == "hundred" and run:
            run += "00"
        elif word == "thousand" and run:
            run += "000"
        elif word in ("and", "dash", "hyphen") and run:
            pass
        else:
            if run:
                runs.append(run)
            run = ""
        repeat = 1
    if run:
        runs.append(run)
    return max(runs, key=len) if runs else None


def _is_digit(word: str) -> bool:
    return word.isdigit() or (word in DIGIT_WORDS and word != "o")


def speak_phone(digits: str) -> str:
    """Digits in groups for reading back: "5 5 5, 2 1 3, 4 5 6 7"."""
    if len(digits) == 10:
        groups = [digits[:3], digits[3:6], digits[6:]]
    else:
        groups = [digits[i:i + 3] for i in range(0, len(digits), 3)]
        if len(groups) > 1 and len(groups[-1]) == 1:
            groups[-2:] = [groups[-2] + groups[-1]]
    return ", ".join(" ".join(group) for group in groups)


_INTROS = ("my name is", "my name's", "the name is", "name is", "this is", "it's", "it is",
           "i'm", "i am", "call me", "you can call me", "surname is",
           "last name is", "first name is")
_EXPLICIT = ("my name is", "my name's", "the name is", "name is", "call me",
             "surname is", "last name is", "first name is")
_NOT_NAMES = {"and", "i", "my", "the", "a", "an", "calling", "from", "here", "please",
              "speaking", "about", "to", "with", "looking", "just", "trying", "wondering",
              "yes", "yeah", "no", "sure", "okay", "ok", "um", "uh", "hi", "hello", "it's",
              "is", "that", "this", "for", "on", "at", "in", "of", "phone", "number", "name",
              "so", "well", "oh", "right", "thanks", "thank", "you", "would", "like", "want",
              "can", "could", "need", "sorry", "spelled", "spell", "that's", "again", "not",
              "but", "actually", "said", "wait", "morning", "afternoon", "good", "hey",
              "ringing", "fine", "there"}
_FILLERS = {"yes", "yeah", "sure", "okay", "ok", "um", "uh", "oh", "well", "so", "hi",
            "hello", "sorry", "it's", "its", "it", "is", "name", "my", "the"}
_TRAILERS = {"please", "thanks", "here", "speaking", "thank", "you"}
_PARTICLES = {"de", "la", "del", "van", "von", "der", "da", "di", "le", "du", "bin"}
_LETTERS = re.compile(r"(?:(?<![\w'])[A-Za-z](?![\w'])[\s,.\-]*){3,}")
_WORD = re.compile(r"[^\W\d_](?:[^\W\d_]|['\-])*")  # letters of any alphabet: González


def _title(word: str) -> str:
    if word.lower() in _PARTICLES:
        return word.lower()
    parts = []
    for part in word.split("-"):
        part = part[:1].upper() + part[1:].lower()
        if len(part) > 2 and part[1] == "'":  # O'Brien, D'Angelo
            part = part[:2] + part[2].upper() + part[3:]
        parts.append(part)
    return "-".join(parts)


def _spelled(text: str) -> str | None:
    """Letters spelled out ("G O N Z A L E Z", "G-O-N-Z") joined into a word, or None."""
    runs = _LETTERS.findall(text)
    if not runs:
        return None
    letters = re.findall(r"[A-Za-z]", max(runs, key=len))
    return "".join(letters).capitalize()


def parse_name(text: str, asked: bool = True) -> str | None:
    """A person's name: "my name is Maria Gonzalez", "it's Gonzalez, G O N Z A L E Z",
    "Maria Gonzalez." (when asked). Without being asked, only after "my name is" or after
    "this is"/"I'm" with a capitalised word; None if there is no name."""
    spelled = _spelled(text)
    plain = _LETTERS.sub(" ", text) if spelled else text
    lowered = plain.lower().replace("\u2019", "'")
    words: list[str] = []
    for intro in sorted(_INTROS, key=len, reverse=True):
        match = re.search(rf"(?:^|[\s,.]){re.escape(intro)}\s+(.*)", lowered)
        if match is None:
            continue
        start = match.start(1)
        candidate = _take(plain[start:], capital=intro not in _EXPLICIT)
        if candidate:
            words = candidate
            break
        if intro in _EXPLICIT:
            break
    if not words and asked:
        words = _whole(plain)
    if spelled:
        return _with_spelling(words, spelled)
    if not words:
        return None
    return " ".join(_title(w) for w in words)


def _take(text: str, capital: bool) -> list[str]:
    """Up to four name words from the start of ``text`` (stops at a non-name word)."""
    out: list[str] = []
    for raw in text.split():
        clean = raw.strip(",.!?;:\"()")
        initial = re.fullmatch(r"[A-Z]\.", raw) is not None  # "A. Khan": an initial goes on
        if not (_name_word(clean) or initial):
            break
        if capital and not clean[0].isupper() and clean.lower() not in _PARTICLES:
            break
        out.append(clean)
        if (raw.endswith((",", ".", "!", "?", ";")) and not initial) or len(out) == 4:
            break
    return out if any(len(w) > 1 for w in out) else []  # initials alone are no name


def _whole(text: str) -> list[str]:
    """The answer as a name (fillers aside): "Maria Gonzalez.", "yes, Maria", "Maria
    Gonzalez, 555 …"; [] when other words follow the name."""
    raw = text.split()
    while raw and raw[0].strip(",.!?;:\"()").lower() in _FILLERS:
        raw = raw[1:]
    out: list[str] = []
    for i, item in enumerate(raw):
        clean = item.strip(",.!?;:\"()")
        if not _name_word(clean) or len(out) == 4:
            rest = [w.strip(",.!?;:\"()").lower() for w in raw[i:]]
            rest = [w for w in rest if w]
            ended = i > 0 and raw[i - 1].endswith((",", ".", ";"))
            if not out or not (ended or all(w in _TRAILERS for w in rest)
                               or rest[0] == "and" or rest[0][:1].isdigit()):
                return []
            return out
        out.append(clean)
    return out


def _name_word(word: str) -> bool:
    return bool(word) and _WORD.fullmatch(word) is not None \
        and word.lower() not in _NOT_NAMES and weekday_number(word) is None \
        and word.lower() not in MONTHS


def _with_spelling(words: list[str], spelled: str) -> str:
    """The spelled word replaces the name word it spells (or is the surname)."""
    titled = [_title(w) for w in words]
    if not titled:
        return spelled
    close = difflib.get_close_matches(spelled.lower(), [w.lower() for w in titled], n=1,
                                      cutoff=0.5)
    if close:
        index = [w.lower() for w in titled].index(close[0])
        titled[index] = spelled
    elif len(titled) == 1 and titled[0][0] != spelled[0]:
        titled.append(spelled)
    else:
        titled[-1] = spelled
    return " ".join(titled)


def parse_choice(text: str, choices: Mapping[str, Sequence[str]],
                 asked: bool = True) -> str | None:
    """The choice (label) the words name: a label or one of its synonyms, written in full;
    when asked, the label whose words match best (one winner only)."""
    said = tokens(text)
    for label, synonyms in choices.items():
        for phrase in (label.replace("_", " "), *synonyms):
            if has_phrase(said, " ".join(tokens(phrase))):
                return label
    if not asked:
        return None
    stems = {stem(w) for w in said if len(w) > 2}
    scores = {label: len(stems & {stem(w) for p in (label.replace("_", " "), *synonyms)
                                  for w in tokens(p) if len(w) > 2})
              for label, synonyms in choices.items()}
    best = max(scores.values(), default=0)
    winners = [label for label, score in scores.items() if score == best]
    return winners[0] if best > 0 and len(winners) == 1 else None


_YES = {"yes", "yeah", "yep", "yup", "yea", "correct", "right", "sure", "exactly", "perfect",
        "ok", "okay", "fine", "absolutely", "definitely", "great", "good", "affirmative",
        "uh-huh", "mhm", "certainly", "please"}
# "good bye" is no "good"; thanks for a read-back is taking it ("thank you, goodbye")
_YES_PHRASES = ("good bye", "uh huh", "go ahead", "sounds good", "that's it", "thats it",
                "please do", "no problem", "that works", "all good", "thank you", "thanks")
_NO = {"no", "nope", "nah", "not", "wrong", "incorrect", "negative", "wait", "actually",
       "isn't", "wasn't", "don't", "didn't"}


def parse_yes_no(text: str) -> bool | None:
    """True for yes ("yes", "that's right", "sounds good"), False for no ("no", "that's
    not right", "no, I said Wednesday"), None when it is neither."""
    lowered = " ".join(tokens(text))
    for phrase in _YES_PHRASES:
        lowered = lowered.replace(phrase, "bye" if phrase == "good bye" else "yes")
    words = lowered.split()
    if any(w in _NO for w in words):
        return False
    if any(w in _YES for w in words):
        return True
    return None


EXIT_PHRASES = ("never mind", "nevermind", "cancel that", "cancel this", "forget it",
                "forget about it", "forget that", "stop that", "leave it", "don't bother",
                "do not bother", "i changed my mind", "i've changed my mind", "not anymore",
                "no longer", "skip it", "let's not", "scratch that", "no thanks", "no thank you")


def wants_out(text: str) -> bool:
    """The caller wants to leave the flow: "never mind", "cancel that", "forget it"."""
    lowered = " ".join(tokens(text))
    return any(phrase in lowered for phrase in EXIT_PHRASES)


def is_question(text: str) -> bool:
    """Words that ask something ("what are your hours?") rather than answer."""
    stripped = text.strip()
    first = tokens(stripped)[:1]
    return stripped.endswith("?") or first in (["what"], ["when"], ["where"], ["why"],
                                                ["how"], ["who"], ["do"], ["does"], ["is"],
                                                ["are"], ["can"])
