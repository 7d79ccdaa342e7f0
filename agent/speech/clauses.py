"""Clause splitting for streaming LLM text on its way to TTS.

The first clause should reach TTS as early as possible, but a wrong split ("Dr." /
"Smith") sounds worse than a late one. Each candidate boundary is decided only once the
characters it depends on have arrived, so feeding text one character at a time gives
exactly the clauses that feeding it whole does.
"""

from __future__ import annotations

import re

SENTENCE_END = ".!?…"
PAUSES = ";:,"
CLOSERS = "\"')]}”’»*_`"  # may follow the punctuation before the space
OPENERS = "\"'([{“‘«*_`"  # stripped from a word before looking it up as an abbreviation

ABBREVIATIONS = frozenset({
    "dr", "mr", "mrs", "ms", "st", "prof", "jr", "sr", "mt", "rev", "gen", "capt", "sgt",
    "e.g", "i.e", "etc", "vs", "cf", "al", "approx", "dept", "inc", "ltd", "corp", "fig",
    "ave", "rd", "blvd", "apt",
})
# "e.g", "i.e", "a.m", "U.S", "Ph.D": letter pairs joined by dots
_DOTTED = re.compile(r"(?:[A-Za-z]{1,2}\.)+[A-Za-z]{1,2}")

_RULE = re.compile(r"^\s*([-*_])(?:\s*\1){2,}\s*$")  # --- *** ___
_LINE_MARKUP = re.compile(r"^\s*(?:#{1,6}\s+|[-*•+]\s+|>\s*)")  # heading, bullet, quote
_LINK = re.compile(r"\[([^\]]*)\]\([^)\s]*\)")
_EMPHASIS_UNDERSCORE = re.compile(r"(?<!\w)_+|_+(?!\w)")
_STARS = re.compile(r"\*+")
_EMOJI = re.compile(
    "["
    "\U0001F000-\U0001FAFF"  # pictographs, emoticons, transport, flags, symbols & pictographs
    "\U00002600-\U000027BF"  # miscellaneous symbols, dingbats
    "\U00002B00-\U00002BFF"  # stars, arrows and shapes used as emoji
    "\U0000FE0E\U0000FE0F\U0000200D\U000020E3"  # variation selectors, joiner, keycap
    "\U000E0020-\U000E007F"  # tag characters (subdivision flags)
    "]"
)
_SPACES = re.compile(r"\s+")


def clean(text: str, at_line_start: bool = True) -> str:
    """Remove what TTS would read out but a person would not: markdown marks and emoji.

    ``at_line_start`` says whether ``text`` begins a line (so a leading "- " is a bullet).
    """
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if index > 0 or at_line_start:
            line = "" if _RULE.match(line) else _LINE_MARKUP.sub("", line)
        lines[index] = line if index == 0 or _alnum(line) else ""  # drop decoration lines
    text = " ".join(lines)
    text = _LINK.sub(r"\1", text)
    text = text.replace("`", "")
    text = _STARS.sub(_drop_emphasis_stars, text)
    text = _EMPHASIS_UNDERSCORE.sub("", text)
    text = _EMOJI.sub("", text)
    return _SPACES.sub(" ", text).strip()


def _drop_emphasis_stars(match: re.Match[str]) -> str:
    """Keep a free-standing "*" (the phone key); drop stars attached to words."""
    text, start, end = match.string, match.start(), match.end()
    alone = (start == 0 or text[start - 1].isspace()) and (end == len(text) or text[end].isspace())
    return "*" if alone and end - start == 1 else ""


def _alnum(text: str) -> int:
    return sum(ch.isalnum() for ch in text)


class ClauseSplitter:
    """Turns a stream of text deltas into clauses ready for TTS.

    A clause ends at a sentence end (. ! ? … followed by a space), at ; : or a dash, at
    a line break, or at a comma once the clause has ``comma_chars`` characters. Clauses
    with fewer than ``min_chars`` letters or digits run on into the next one. Text with
    no boundary at all is cut at a space after at most ``max_chars`` characters.
    """

    def __init__(self, min_chars: int = 2, comma_chars: int = 25, max_chars: int = 200,
                 first_comma_chars: int | None = None) -> None:
        if min_chars < 1:
            raise ValueError(f"min_chars must be at least 1, got {min_chars}")
        if max_chars < comma_chars:
            raise ValueError(f"max_chars ({max_chars}) must be at least comma_chars "
                             f"({comma_chars})")
        self.min_chars = min_chars
        self.comma_chars = comma_chars
        # The first clause may end at an earlier comma: it decides how soon audio starts.
        self.first_comma_chars = comma_chars if first_comma_chars is None else first_comma_chars
        self.max_chars = max_chars
        self._emitted = False
        self._buffer = ""
        self._line_start = True

    def push(self, delta: str) -> list[str]:
        """Add streamed text; return the clauses it completed."""
        self._buffer += delta
        return self._drain(final=False)

    @property
    def pending(self) -> str:
        """The clause being written (not finished yet), as it would be spoken; a space at
        its end says its last word is whole."""
        text = clean(self._buffer, self._line_start)
        return text + " " if text and self._buffer[-1:].isspace() else text

    def flush(self) -> list[str]:
        """End of the reply: return everything left and start afresh."""
        out = self._drain(final=True)
        last = clean(self._buffer, self._line_start)
        if _alnum(last):
            out.append(last)
        self._buffer = ""
        self._line_start = True
        self._emitted = False
        return out

    def _drain(self, final: bool) -> list[str]:
        out = []
        while (cut := self._find_cut(self._buffer, final)) is not None:
            clause = clean(self._buffer[:cut], self._line_start)
            self._buffer = self._buffer[cut:]
            self._line_start = False  # later lines start after a "\n" kept in the buffer
            if _alnum(clause):
                out.append(clause)
                self._emitted = True
        return out

    def _find_cut(self, text: str, final: bool) -> int | None:
        """Where the first clause of ``text`` ends, or None if that needs more text."""
        n = len(text)
        i = 0
        while i < min(n, self.max_chars):
            ch = text[i]
            if ch == "\n":
                if self._long_enough(text[:i]):
                    return i
            elif ch in SENTENCE_END or ch in PAUSES:
                end = i + 1
                if ch in SENTENCE_END:
                    while end < n and text[end] in SENTENCE_END:
                        end += 1
                after = end
                while after < n and text[after] in CLOSERS:
                    after += 1
                if after == n and not final:
                    return None
                if after == n or text[after].isspace():
                    verdict = self._ends_clause(text, i, end, after, final)
                    if verdict is None:
                        return None
                    if verdict and self._long_enough(text[:after], comma=ch == ","):
                        return after
                i = end
                continue
            elif ch == "—":
                if self._long_enough(text[:i + 1]):
                    return i + 1
            elif ch == "–" and i > 0 and text[i - 1] == " ":  # a spaced en dash
                if i + 1 == n and not final:
                    return None
                if (i + 1 == n or text[i + 1] == " ") and self._long_enough(text[:i + 1]):
                    return i + 1
            i += 1
        if n > self.max_chars:
            space = max(text.rfind(" ", 0, self.max_chars), text.rfind("\n", 0, self.max_chars))
            return space if space > 0 else self.max_chars
        return None

    def _ends_clause(self, text: str, start: int, end: int, after: int, final: bool
                     ) -> bool | None:
        """Whether punctuation ``text[start:end]`` ends a clause (None: undecided yet)."""
        if text[start:end] != ".":
            return True  # ! ? … ... ; : , (the comma's length rule is applied by the caller)
        word_start = start
        while word_start > 0 and not text[word_start - 1].isspace():
            word_start -= 1
        word = text[word_start:start].lstrip(OPENERS)
        lower = word.lower()
        if lower in ABBREVIATIONS or _DOTTED.fullmatch(word):
            return False
        if len(word) == 1 and word.isupper():
            return False  # an initial: "J. R. R. Tolkien"
        if word.isdigit() and not text[:word_start].strip():
            return False  # a list marker: "1. Open the app"
        if lower == "no":  # "No. 5" is a number; "No. I can't" is a sentence
            nxt = after
            while nxt < len(text) and text[nxt].isspace():
                nxt += 1
            if nxt == len(text):
                return True if final else None
            return not text[nxt].isdigit()
        return True

    def _long_enough(self, raw: str, comma: bool = False) -> bool:
        clause = clean(raw, self._line_start)
        if _alnum(clause) < self.min_chars:
            return False
        needed = self.comma_chars if self._emitted else self.first_comma_chars
        return not comma or len(clause) >= needed
