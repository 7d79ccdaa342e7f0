"""Constrained replies: the model either speaks or calls one of the declared tools.

DRAFT
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# -- grammar ---------------------------------------------------------------------------

# One character inside a JSON string, as the model may write it.
_CHAR = r'[^"\\\x00-\x1F\x7F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'
# One character of spoken text: no control characters, no escapes but \" (nothing a
# text-to-speech voice could say is lost, and the model cannot wander into \n\n\n).
_SAY_CHAR = r'[^"\\\x00-\x1F\x7F] | "\\\""'
_INT = r'"-"? ("0" | [1-9] [0-9]{0,14})'
_NUMBER = r'"-"? ("0" | [1-9] [0-9]{0,14}) ("." [0-9]{1,15})? ([eE] [-+]? [0-9]{1,3})?'
_VALUE = r'object | array | string | number | "true" | "false" | "null"'
_OBJECT = r'"{" (string ":" value ("," string ":" value)*)? "}"'
_ARRAY = r'"[" (value ("," value)*)? "]"'


def gbnf_literal(text: str) -> str:
    """``text`` as a GBNF string literal."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char.isprintable() and char != "\x7f":
            out.append(char)
        else:
            out.append(f"\\x{ord(char):02X}" if ord(char) < 0x100 else f"\\u{ord(char):04X}"
                       if ord(char) < 0x10000 else f"\\U{ord(char):08X}")
    return '"' + "".join(out) + '"'


def _json_literal(value: Any) -> str:
    return gbnf_literal(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


class _Rules:
    """GBNF rules under construction; identical bodies share one rule."""

    def __init__(self) -> None:
        self.rules: dict[str, str] = {}
        self._by_body: dict[str, str] = {}

    def add(self, hint: str, body: str) -> str:
        if body in self._by_body:
            return self._by_body[body]
        base = re.sub(r"[^a-zA-Z0-9]+", "-", hint).strip("-").lower() or "r"
        name, index = base, 1
        while name in self.rules or name in ("root",):
            index += 1
            name = f"{base}-{index}"
        self.rules[name] = body
        self._by_body[body] = name
        return name

    def named(self, name: str, body: str) -> str:
        """A rule with a fixed name (the shared primitives)."""
        self.rules.setdefault(name, body)
        self._by_body.setdefault(body, name)
        return name

    def text(self, root: str) -> str:
        return "\n".join([f"root ::= {root}"]
                         + [f"{name} ::= {body}" for name, body in self.rules.items()])

    # primitives
    def char(self) -> str:
        return self.named("char", _CHAR)

    def string(self) -> str:
        self.char()
        return self.named("string", r'"\"" char* "\""')

    def value(self) -> str:
        self.string()
        self.named("number", _NUMBER)
        self.named("object", _OBJECT)
        self.named("array", _ARRAY)
        return self.named("value", _VALUE)


def value_grammar(rules: _Rules, schema: dict[str, Any], hint: str) -> str:
    """A GBNF expression for the compact JSON values ``schema`` allows (or a subset of them).

    Every value the expression admits is valid: where the grammar cannot say exactly
    what the schema does, it says less (an unanchored pattern is taken as anchored), or
    the constraint is left to the validator afterwards (string lengths next to a pattern,
    bounds of non-integers).
    """
    if "const" in schema:
        return _json_literal(schema["const"])
    if "enum" in schema:
        return "(" + " | ".join(_json_literal(v) for v in schema["enum"]) + ")"
    kind = schema.get("type")
    if isinstance(kind, list):
        return "(" + " | ".join(value_grammar(rules, schema | {"type": k}, hint)
                                for k in kind) + ")"
    if kind == "string":
        if "pattern" in schema:
            return rules.add(hint, r'"\"" ' + regex_grammar(schema["pattern"], rules) +
                             r' "\""')
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        if low == 0 and high is None:
            return rules.string()
        rules.char()
        return rules.add(hint, r'"\"" char{' + f"{low},{'' if high is None else high}"
                         + r'} "\""')
    if kind == "integer":
        return rules.add(hint, _integer_grammar(schema))
    if kind == "number":
        return rules.named("number", _NUMBER)
    if kind == "boolean":
        return '("true" | "false")'
    if kind == "null":
        return '"null"'
    if kind == "array":
        item = value_grammar(rules, schema.get("items", {}), hint + "-item")
        low, high = schema.get("minItems", 0), schema.get("maxItems")
        if high == 0:
            return '"[]"'
        more = f"{max(low - 1, 0)},{'' if high is None else high - 1}"
        body = f'{item} ("," {item}){{{more}}}'
        return rules.add(hint, f'"[" {body} "]"' if low else f'"[" ({body})? "]"')
    if kind == "object" or "properties" in schema:
        return object_grammar(rules, schema, hint)
    if not schema:
        return rules.value()
    raise ValueError(f"unsupported schema for {hint}: {json.dumps(schema)[:80]}")


def object_grammar(rules: _Rules, schema: dict[str, Any], hint: str) -> str:
    """Compact JSON objects: required properties in declared order, then optional ones."""
    properties: dict[str, Any] = schema.get("properties", {})
    if not properties:
        if schema.get("additionalProperties", True) is False:
            return '"{}"'
        return rules.value() and rules.named("object", _OBJECT)
    required = [name for name in properties if name in schema.get("required", [])]
    optional = [name for name in properties if name not in required]
    pairs = {name: _json_literal(name) + ' ":" ' + value_grammar(rules, properties[name],
                                                                  f"{hint}-{name}")
             for name in properties}
    if required:
        body = ' "," '.join(pairs[name] for name in required)
        body += "".join(f' ("," {pairs[name]})?' for name in optional)
    else:
        choices = [pairs[first] + "".join(f' ("," {pairs[name]})?'
                                          for name in optional[index + 1:])
                   for index, first in enumerate(optional)]
        body = "(" + " | ".join(choices) + ")?"
    return rules.add(hint, f'"{{" {body} "}}"')


def _integer_grammar(schema: dict[str, Any]) -> str:
    low, high = schema.get("minimum"), schema.get("maximum")
    low = None if low is None else math.ceil(low)
    high = None if high is None else math.floor(high)
    if "exclusiveMinimum" in schema:
        bound = math.floor(schema["exclusiveMinimum"]) + 1
        low = bound if low is None else max(low, bound)
    if "exclusiveMaximum" in schema:
        bound = math.ceil(schema["exclusiveMaximum"]) - 1
        high = bound if high is None else min(high, bound)
    if low is not None and high is not None:
        if low > high:
            raise ValueError("integer range is empty")
        return integer_range(low, high)
    if low is not None and low >= 0:
        return r'("0" | [1-9] [0-9]{0,14})'  # the rest of the bound is left to the validator
    return _INT


def integer_range(low: int, high: int) -> str:
    """GBNF for the decimal integers from ``low`` to ``high`` (no leading zeros, no -0)."""
    choices = []
    if low < 0:
        choices.append('"-" ' + _unsigned_range(max(1, -high) if high < 0 else 1, -low))
    if high >= 0:
        choices.append(_unsigned_range(max(low, 0), high))
    return choices[0] if len(choices) == 1 else "(" + " | ".join(choices) + ")"


def _unsigned_range(low: int, high: int) -> str:
    choices = []
    for digits in range(len(str(low)), len(str(high)) + 1):
        start = max(low, 10 ** (digits - 1) if digits > 1 else 0)
        end = min(high, 10 ** digits - 1)
        choices.append(_same_length_range(str(start), str(end)))
    return choices[0] if len(choices) == 1 else "(" + " | ".join(choices) + ")"


def _same_length_range(low: str, high: str) -> str:
    if low == high:
        return f'"{low}"'
    if len(low) == 1:
        return f"[{low}-{high}]"
    rest = len(low) - 1
    if low[0] == high[0]:
        return f'"{low[0]}" {_same_length_range(low[1:], high[1:])}'
    choices = []
    first_full, last_full = int(low[0]), int(high[0])
    if low[1:] != "0" * rest:
        choices.append(f'"{low[0]}" {_same_length_range(low[1:], "9" * rest)}')
        first_full += 1
    if high[1:] != "9" * rest:
        last_full -= 1
    if first_full <= last_full:
        digit = f'"{first_full}"' if first_full == last_full else f"[{first_full}-{last_full}]"
        choices.append(f"{digit} [0-9]{{{rest}}}")
    if high[1:] != "9" * rest:
        choices.append(f'"{high[0]}" {_same_length_range("0" * rest, high[1:])}')
    return "(" + " | ".join(choices) + ")"


# -- patterns --------------------------------------------------------------------------

_MAX_CODE = 0x10FFFF
_CLASS_ESCAPES: dict[str, list[tuple[int, int]]] = {
    "d": [(0x30, 0x39)],
    "w": [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)],
    "s": [(0x09, 0x0D), (0x20, 0x20)],
}
_CHAR_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v"}


def regex_grammar(pattern: str, rules: _Rules) -> str:
    """GBNF for the JSON string contents (escapes included) that match ``pattern`` whole.

    Supports what tool parameters use: literals, escapes (\\d \\w \\s and their
    negations), classes, ``.``, groups, alternation, ``? * + {n} {n,} {n,m}`` and
    ``^``/``$`` at the ends. Anything else (look-around, back-references, \\b) raises
    ``ValueError`` so that a tool definition fails when it is loaded, not during a call.
    """
    return _RegexConverter(pattern, rules).convert()


class _RegexConverter:
    def __init__(self, pattern: str, rules: _Rules) -> None:
        self.pattern = pattern
        self.rules = rules
        self.pos = 0

    def fail(self, why: str) -> ValueError:
        return ValueError(f"pattern {self.pattern!r}: {why} at {self.pos}")

    def peek(self) -> str:
        return self.pattern[self.pos] if self.pos < len(self.pattern) else ""

    def take(self) -> str:
        char = self.peek()
        if not char:
            raise self.fail("unexpected end")
        self.pos += 1
        return char

    def convert(self) -> str:
        expr = self.alternation()
        if self.pos != len(self.pattern):
            raise self.fail("unbalanced )")
        return expr

    def alternation(self) -> str:
        choices = [self.sequence()]
        while self.peek() == "|":
            self.pos += 1
            choices.append(self.sequence())
        return choices[0] if len(choices) == 1 else "(" + " | ".join(choices) + ")"

    def sequence(self) -> str:
        parts: list[str] = []
        while self.peek() not in ("", "|", ")"):
            atom = self.atom()
            quantifier = self.quantifier()
            if atom and quantifier:
                parts.append(f"({atom}){quantifier}")
            elif atom:
                parts.append(atom)
        return " ".join(parts) if parts else '""'

    def quantifier(self) -> str:
        char = self.peek()
        if char in ("*", "+", "?"):
            self.pos += 1
            result = char
        elif char == "{" and (match := re.match(r"\{(\d+)(,(\d*))?\}",
                                                self.pattern[self.pos:])):
            self.pos += match.end()
            low, comma, high = match.group(1), match.group(2), match.group(3)
            result = "{" + low + ("," + high if comma else "") + "}"
        else:
            return ""
        if self.peek() in ("?", "+"):  # lazy or possessive: the same strings match
            self.pos += 1
        return result

    def atom(self) -> str:
        start = self.pos
        char = self.take()
        if char == "^" and start == 0:
            return ""
        if char == "$" and self.pos == len(self.pattern):
            return ""
        if char in "^$":
            raise self.fail("anchor inside the pattern")
        if char in "*+?":
            raise self.fail("nothing to repeat")
        if char == "(":
            if self.peek() == "?":
                if self.pattern[self.pos:self.pos + 2] != "?:":
                    raise self.fail("only (?:...) groups are supported")
                self.pos += 2
            expr = self.alternation()
            if self.take() != ")":
                raise self.fail("missing )")
            return f"({expr})"
        if char == "[":
            return self.char_set(self.class_ranges())
        if char == ".":
            return self.rules.char()
        if char == "\\":
            escaped = self.take()
            if escaped.lower() in _CLASS_ESCAPES:
                ranges = _CLASS_ESCAPES[escaped.lower()]
                return self.char_set(_complement(ranges) if escaped.isupper() else ranges)
            if escaped.isalnum() and escaped not in _CHAR_ESCAPES:
                raise self.fail(f"unsupported escape \\{escaped}")
            char = _CHAR_ESCAPES.get(escaped, escaped)
            char = json.loads(f'"{char}"') if escaped in _CHAR_ESCAPES else char
        return gbnf_literal(json.dumps(char, ensure_ascii=False)[1:-1])

    def class_ranges(self) -> list[tuple[int, int]]:
        negated = self.peek() == "^"
        if negated:
            self.pos += 1
        ranges: list[tuple[int, int]] = []
        first = True
        while True:
            char = self.take()
            if char == "]" and not first:
                break
            first = False
            if char == "\\":
                escaped = self.take()
                if escaped.lower() in _CLASS_ESCAPES:
                    found = _CLASS_ESCAPES[escaped.lower()]
                    ranges += _complement(found) if escaped.isupper() else found
                    continue
                if escaped.isalnum() and escaped not in _CHAR_ESCAPES:
                    raise self.fail(f"unsupported escape \\{escaped}")
                char = json.loads(f'"{_CHAR_ESCAPES[escaped]}"') \
                    if escaped in _CHAR_ESCAPES else escaped
            low = ord(char)
            if self.peek() == "-" and self.pattern[self.pos + 1:self.pos + 2] not in ("]", ""):
                self.pos += 1
                end = self.take()
                if end == "\\":
                    end = self.take()
                    if end.isalnum():
                        raise self.fail("class escape as range end")
                if ord(end) < low:
                    raise self.fail("bad range")
                ranges.append((low, ord(end)))
            else:
                ranges.append((low, low))
        return _complement(ranges) if negated else ranges

    def char_set(self, ranges: list[tuple[int, int]]) -> str:
        """Characters of ``ranges`` as they appear inside a JSON string."""
        wanted = _normalize(ranges)
        plain = _subtract(wanted, [(0x00, 0x1F), (0x22, 0x22), (0x5C, 0x5C), (0x7F, 0x7F)])
        choices = []
        if plain:
            choices.append("[" + "".join(_class_item(lo, hi) for lo, hi in plain) + "]")
        for code, written in ((0x22, r'"\\\""'), (0x5C, r'"\\\\"')):
            if any(lo <= code <= hi for lo, hi in wanted):
                choices.append(written)
        if not choices:
            raise self.fail("a class no JSON string character can match")
        return choices[0] if len(choices) == 1 else "(" + " | ".join(choices) + ")"


def _normalize(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def _complement(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    result, start = [], 0
    for low, high in _normalize(ranges):
        if low > start:
            result.append((start, low - 1))
        start = high + 1
    if start <= _MAX_CODE:
        result.append((start, _MAX_CODE))
    return result


def _subtract(ranges: list[tuple[int, int]],
              removed: list[tuple[int, int]]) -> list[tuple[int, int]]:
    keep = _complement(removed)
    return _normalize([(max(a, c), min(b, d)) for a, b in ranges for c, d in keep
                       if max(a, c) <= min(b, d)])


def _class_item(low: int, high: int) -> str:
    def one(code: int) -> str:
        char = chr(code)
        if char.isascii() and char.isalnum():
            return char
        return f"\\x{code:02X}" if code < 0x100 else f"\\u{code:04X}" if code < 0x10000 \
            else f"\\U{code:08X}"
    return one(low) if low == high else f"{one(low)}-{one(high)}"


def _draft_output_grammar(tools, shape: str) -> str:
    rules = _Rules()
    say = rules.named("say-text", r'"\"" say-char+ "\""')
    rules.named("say-char", _SAY_CHAR)
    choices = []
    for spec in tools:
        args = object_grammar(rules, spec.parameters, f"{spec.name}-args")
        name = _json_literal(spec.name)
        if shape == "say_tool":
            choices.append(rf'"\"tool\":" {name} ",\"arguments\":" {args}')
        elif shape == "action":
            choices.append(rf'"\"action\":" {name} ",\"arguments\":" {args}')
        elif shape == "keyed":
            choices.append(rf'{name} ":" {args}')
    if shape == "action":
        choices.insert(0, rf'"\"action\":\"say\",\"text\":" {say}')
    else:
        choices.insert(0, rf'"\"say\":" {say}')
    return rules.text('"{" (' + " | ".join(choices) + ') "}"')
