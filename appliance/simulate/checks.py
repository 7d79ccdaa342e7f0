"""Checks on the outcome of one simulated call, over what the caller heard and the call record.

What the agent said comes from two places: the caller's transcription of the audio it heard
(``heard``) and the daemon's call record (``record``: the text the agent spoke, its tool
calls and events, as ``switchboard transcript --json`` shows them). A fact counts as said
when either has it; "never said", identity and cut-off checks read the record when there is
one (the agent's own words, free of transcription errors), the heard text otherwise.

Patterns are matched case-insensitively on normalised text: number words become digits
("nine" → 9), a.m./p.m. become am/pm, and spaces are collapsed.
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass, field
from typing import Any

from appliance.simulate.scenario import Expect, Scenario

NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
     "eleven", "twelve"))}
CLOSING = re.compile(r"\b(good ?bye|bye|thank(s| you) for calling|have a (good|nice|great|"
                     r"lovely|wonderful) (day|evening|weekend|one)|take care)\b", re.IGNORECASE)
SENTENCE_END = re.compile(r"[.!?…][\"')\]]*\s*$")


@dataclass
class CheckResult:
    """One check: its name (what was expected), whether it passed, and what was found."""

    name: str
    ok: bool
    detail: str = ""


@dataclass
class CallOutcome:
    """What the checks look at, gathered by the call driver."""

    heard: list[str] = field(default_factory=list)  # agent utterances as the caller heard them
    record: dict[str, Any] | None = None  # the daemon's call record (CallStore.transcript)
    turns: int = 0  # caller turns
    hung_up_by: str = "caller"  # "agent", "caller" or "nobody" (the call failed)

    @property
    def spoken(self) -> list[str]:
        """The agent's own words from the record (its answers, not the fixed phrases)."""
        if self.record is None:
            return []
        return [t["agent_text"] for t in self.record.get("turns", []) if t.get("agent_text")]

    @property
    def authoritative(self) -> list[str]:
        """The text "never said" checks read: the record's, else what was heard."""
        return self.spoken if self.record is not None else self.heard


def normalise(text: str) -> str:
    """Lower case, number words as digits, a.m./p.m. as am/pm, one space between words."""
    text = text.lower().replace("’", "'")
    text = re.sub(r"\b([ap])\.\s?m\.?", r"\1m", text)
    text = re.sub(r"\b(" + "|".join(NUMBER_WORDS) + r")\b",
                  lambda m: NUMBER_WORDS[m.group(1)], text)
    return re.sub(r"\s+", " ", text).strip()


def find(pattern: str, texts: list[str]) -> str | None:
    """The first of ``texts`` in which ``pattern`` occurs (normalised), or None."""
    rx = re.compile(pattern, re.IGNORECASE)
    for text in texts:
        if rx.search(normalise(text)) or rx.search(text):
            return text
    return None


def identity_pattern(name: str) -> str:
    """The agent presenting itself under the caller's (first) name: "I'm Maria", "this is
    Maria", "I'm your doctor's assistant, Dr. Maria Gonzalez"."""
    first = re.escape(name.split()[0].lower())
    return (r"\b(i am|i'm|my name is|this is|it's)\s+(dr\.?\s+|doctor\s+)?"
            r"(your\s+[\w']+(\s+[\w']+)?,?\s+(dr\.?\s+)?)?" + first + r"\b")


def _clip(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _tool_text(call: dict[str, Any]) -> str:
    args = ", ".join(f"{k}={v}" for k, v in (call.get("arguments") or {}).items())
    return f"{call['name']}({args}){'' if call.get('ok') else ' failed'}"


def _said(expect: Expect, out: CallOutcome) -> list[CheckResult]:
    texts = out.heard + out.spoken
    return [CheckResult(f"said /{p}/", (hit := find(p, texts)) is not None,
                        f"in: {_clip(hit)}" if hit else "not in anything the agent said")
            for p in expect.said]


def _never_said(expect: Expect, out: CallOutcome) -> list[CheckResult]:
    return [CheckResult(f"never said /{p}/", (hit := find(p, out.authoritative)) is None,
                        f"said: {_clip(hit)}" if hit else "")
            for p in expect.never_said]


def _tools(expect: Expect, out: CallOutcome) -> list[CheckResult]:
    results: list[CheckResult] = []
    calls = out.record.get("tool_calls", []) if out.record else []
    made = "; ".join(_tool_text(c) for c in calls) or "no tool was called"
    for want in expect.tools:
        shown = ", ".join(f"{k}~/{v}/" for k, v in want.arguments.items())
        name = f"tool {want.name}({shown})"
        if out.record is None:
            results.append(CheckResult(name, False, "no call record to check"))
            continue
        candidates = [c for c in calls if c["name"] == want.name]
        if want.last:
            candidates = candidates[-1:]
            name += " last"
        if want.weekday:
            name += f" on a {want.weekday.lower()}"
        ok = any(all(re.search(p, _arg_text((c.get("arguments") or {}).get(k)), re.IGNORECASE)
                     for k, p in want.arguments.items())
                 and (not want.weekday or on_weekday(c.get("arguments") or {}, want.weekday))
                 for c in candidates)
        results.append(CheckResult(name, ok, "" if ok else f"called: {made}"))
    for tool in expect.never_called:
        hits = [c for c in calls if c["name"] == tool]
        results.append(CheckResult(f"never called {tool}", not hits,
                                   "; ".join(_tool_text(c) for c in hits)))
    return results


def on_weekday(arguments: dict[str, Any], weekday: str) -> bool:
    """Whether a tool call is for ``weekday``: an argument naming the day, or the first ISO
    date argument (date, new_date, ...) falling on it."""
    want = weekday.strip().lower()
    for value in arguments.values():
        if isinstance(value, str) and value.strip().lower() == want:
            return True
    dates = [v for k, v in arguments.items() if isinstance(v, str) and "date" in k
             and re.fullmatch(r"\d{4}-\d{2}-\d{2}", v.strip())]
    if not dates:
        return False
    new = [v for k, v in arguments.items() if k.startswith("new_") and v in dates]
    try:
        day = datetime.date.fromisoformat((new or dates)[0].strip())
    except ValueError:
        return False
    return day.strftime("%A").lower() == want


def _arg_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _transfer(target: str, out: CallOutcome) -> CheckResult:
    name = f"transferred to {target}"
    if out.record is None:
        return CheckResult(name, False, "no call record to check")
    events = [e["detail"] for e in out.record.get("events", []) if e["kind"] == "transfer"]
    labels = [str((c.get("result") or {}).get("transferred_to", "")) for c in
              out.record.get("tool_calls", []) if c.get("ok") and isinstance(c.get("result"),
                                                                              dict)]
    ok = any(re.fullmatch(target, x.strip(), re.IGNORECASE) for x in events + labels)
    found = ", ".join(sorted(set(events + labels))) or "no transfer"
    return CheckResult(name, ok, "" if ok else f"found: {found}")


def _events(expect: Expect, out: CallOutcome) -> list[CheckResult]:
    kinds = [e["kind"] for e in out.record.get("events", [])] if out.record else []
    seen = ", ".join(sorted(set(kinds))) or "none"
    return [CheckResult(f"event {kind}", kind in kinds, "" if kind in kinds else f"events: {seen}")
            for kind in expect.events]


def _polite(out: CallOutcome) -> CheckResult:
    last = [t for t in (out.heard[-1:] + out.spoken[-1:]) if t]
    ok = any(CLOSING.search(normalise(t)) for t in last)
    detail = "" if ok else (f"last words: {_clip(last[0])}" if last else "the agent said nothing")
    return CheckResult("ended politely", ok, detail)


def _identity(name: str, out: CallOutcome) -> CheckResult:
    hit = find(identity_pattern(name), out.authoritative)
    return CheckResult(f"never speaks as the caller ({name.split()[0]})", hit is None,
                       f"said: {_clip(hit)}" if hit else "")


def _complete(out: CallOutcome) -> CheckResult:
    assert out.record is not None
    cut = [t["agent_text"] for t in out.record.get("turns", [])
           if t.get("agent_text") and not t.get("interrupted")
           and not SENTENCE_END.search(t["agent_text"])]
    return CheckResult("answers end at a sentence boundary", not cut,
                       f"cut: …{cut[0][-60:]}" if cut else "")


def evaluate(scenario: Scenario, out: CallOutcome) -> list[CheckResult]:
    """Every check of the scenario, plus the ones every call gets: the agent never takes on
    the caller's identity, and (with a record) no answer stops mid-sentence."""
    expect = scenario.expect
    results = _said(expect, out) + _never_said(expect, out) + _tools(expect, out)
    if expect.transfer is not None:
        results.append(_transfer(expect.transfer, out))
    results += _events(expect, out)
    if expect.ended_politely:
        results.append(_polite(out))
    if expect.max_turns is not None:
        results.append(CheckResult(f"at most {expect.max_turns} turns",
                                   out.turns <= expect.max_turns, f"took {out.turns}"))
    if scenario.caller.name:
        results.append(_identity(scenario.caller.name, out))
    if out.record is not None:
        results.append(_complete(out))
    return results
