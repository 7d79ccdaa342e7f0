"""Scenario files: who calls, what they say, how they answer, and what must come of the call.

A file is YAML (see ``appliance/examples/scenarios/``); mistakes are reported with file,
line, field and a fix, the same way as configuration errors.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from appliance.config.base import ConfigError, ConfigIssue, ConfigModel, Name, invalid
from appliance.config.load import load_document
from appliance.config.locator import Locator

SCENARIO_HINT = "see the example scenarios in appliance/examples/scenarios/"
VOICES = ("high", "deep", "espeak-us-m3", "espeak-us-f2", "espeak-gb-m1", "espeak-rp-m4",
          "espeak-scot-f3")
"""Caller voices, none of them the agents' own: ``high`` and ``deep`` are the Piper voice
moved to another pitch and vocal tract length (another person to the ear and to the
transcriber); the ``espeak-*`` voices are hard to understand on a phone line (for callers
who are misheard)."""
FACTS = ("name", "number", "day", "time")


def _check_pattern(value: str) -> str:
    try:
        re.compile(value)
    except re.error as err:
        raise invalid(f"'{value}' is not a valid pattern ({err})",
                      r"write plain words, or escape ( ) [ ] ? * + . with a backslash") from None
    return value


Pattern = Annotated[str, AfterValidator(_check_pattern)]
"""A regular expression, matched case-insensitively anywhere in the text."""


def _check_keys(value: str) -> str:
    if re.fullmatch(r"([0-9*#]|\{\w+\})+", value) and len(value) <= 40:
        return value
    raise invalid(f"'{value}' cannot be pressed on a keypad",
                  "write digits, * and #, or a fact such as {account}#, e.g. 12345678#")


Keys = Annotated[str, AfterValidator(_check_keys)]
"""Keypad digits (0-9 * #), facts allowed as {placeholders}."""


class Caller(ConfigModel):
    """The persona: facts the caller gives when asked, and how they sound."""

    name: str | None = Field(None, description="full name, said when the agent asks for it",
                             examples=["Maria Gonzalez"])
    number: str | None = Field(None, description="phone number, said in groups of digits",
                               examples=["555 213 4477"])
    day: str | None = Field(None, description="preferred day, said when asked which day",
                            examples=["Tuesday"])
    time: str | None = Field(None, description="preferred time, said when asked what time",
                             examples=["ten thirty"])
    facts: dict[str, str] = Field(default_factory=dict,
                                  description="more facts for {placeholders}, e.g. account")
    voice: Literal[VOICES] = "high"  # type: ignore[valid-type]
    noise_db: float | None = Field(None, ge=0, le=40,
                                   description="line noise, signal-to-noise in dB (none: clean)")

    def values(self) -> dict[str, str]:
        """Every fact by name, for {placeholders} in what the caller says."""
        given = {k: v for k in FACTS if (v := getattr(self, k)) is not None}
        return {**self.facts, **given}


class Step(ConfigModel):
    """One thing the caller does; exactly one of say, interrupt, silence, press, hangup."""

    say: str | None = Field(None, description="words, then listen to the whole answer")
    interrupt: str | None = Field(None, description="words said over the answer to the line "
                                  "before, `after` seconds into it")
    after: float = Field(1.0, ge=0, le=10, description="seconds into the answer (interrupt)")
    silence: float | None = Field(None, gt=0, le=60, description="stay silent this long")
    press: Keys | None = Field(None, description="keypad digits, e.g. 12345678#")
    hangup: bool = Field(False, description="hang up now")

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        chosen = [k for k in ("say", "interrupt", "silence", "press") if getattr(self, k)
                  is not None] + (["hangup"] if self.hangup else [])
        if len(chosen) != 1:
            what = " and ".join(chosen) if chosen else "nothing"
            raise invalid(f"a step does one thing; this one has {what}",
                          "write one of say:, interrupt:, silence:, press:, hangup: true "
                          "per '- ' item")
        return self

    @property
    def text(self) -> str | None:
        return self.say if self.say is not None else self.interrupt


class Rule(ConfigModel):
    """How the caller answers: when the agent says something matching, say or press this."""

    when: Pattern = Field(description="pattern in what the agent just said",
                          examples=["account number"])
    say: str | None = None
    press: Keys | None = None
    times: int = Field(1, ge=1, le=5, description="at most this many times in one call")

    @model_validator(mode="after")
    def _one_answer(self) -> Rule:
        if (self.say is None) == (self.press is None):
            raise invalid("a rule answers with exactly one of say: or press:",
                          "write say: <words> or press: <digits>")
        return self


class ToolExpectation(ConfigModel):
    """A tool the agent must call, with patterns its arguments must match."""

    name: str
    arguments: dict[str, Pattern] = Field(default_factory=dict)
    weekday: str | None = Field(None, description="the day the call is for: an argument "
                                "naming it (day: tuesday) or an ISO date falling on it "
                                "(date: 2026-12-01)", examples=["tuesday"])
    last: bool = Field(False, description="only the last call of this tool counts (the "
                       "booking after a correction)")


class Expect(ConfigModel):
    """What must come of the call; every check listed here is reported."""

    said: list[Pattern] = Field(default_factory=list,
                                description="each must appear in what the agent said")
    never_said: list[Pattern] = Field(default_factory=list,
                                      description="none may appear in what the agent said")
    tools: list[ToolExpectation] = Field(default_factory=list)
    never_called: list[str] = Field(default_factory=list, description="tools that must not run")
    transfer: Pattern | None = Field(None, description="put through to this target: its "
                                     "label or extension, in full (a pattern: front desk|billing)",
                                     examples=["billing"])
    events: list[str] = Field(default_factory=list,
                              description="call record events that must occur, e.g. barge_in")
    ended_politely: bool = Field(False, description="the agent's last words close the call "
                                 "politely (goodbye, thank you for calling, ...)")
    max_turns: int | None = Field(None, ge=1, description="the caller needed at most this "
                                  "many turns")


class Scenario(ConfigModel):
    """One simulated call."""

    name: Name
    agent: Name | None = Field(None, description="agent to call (default: the file's agent)")
    goal: str = Field(description="what the caller wants, in words, for the report")
    caller: Caller = Field(default_factory=Caller)
    script: list[Step] = Field(min_length=1)
    rules: list[Rule] = Field(default_factory=list,
                              description="answers to the agent's questions, tried first")
    answers: bool = Field(True, description="built-in answers: name, number, day, read-backs "
                          "and 'anything else?'")
    confirm: list[str] = Field(default_factory=lambda: ["Yes, that's right."],
                               description="replies to read-backs in order; the last repeats")
    expect: Expect = Field(default_factory=Expect)


class ScenarioFile(ConfigModel):
    """A scenario file: defaults for its scenarios, webhook replies, the scenarios."""

    agent: Name | None = Field(None, description="agent the scenarios call by default")
    webhooks: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="sandbox only: the JSON a webhook tool answers with, "
        "by tool name")
    scenarios: list[Scenario] = Field(min_length=1)


def placeholders(text: str) -> list[str]:
    """Names used as ``{name}`` in ``text`` (raises ValueError on a stray brace)."""
    return [field for _lit, field, _spec, _conv in string.Formatter().parse(text) if field]


def _semantic_issues(doc: ScenarioFile, file: Path, locator: Locator) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    seen: dict[str, int] = {}
    for i, sc in enumerate(doc.scenarios):
        at = ("scenarios", i)
        if sc.name in seen:
            issues.append(locator.issue(file, (*at, "name"), f'scenario "{sc.name}" is defined '
                                        f"twice (also item {seen[sc.name] + 1})",
                                        "give each scenario its own name"))
        seen.setdefault(sc.name, i)
        known = sc.caller.values()
        texts = [((*at, "script", j, "say" if s.say is not None else "interrupt"), s.text)
                 for j, s in enumerate(sc.script)]
        texts += [((*at, "script", j, "press"), s.press) for j, s in enumerate(sc.script)]
        texts += [((*at, "rules", j, "say" if r.say is not None else "press"), r.say or r.press)
                  for j, r in enumerate(sc.rules)]
        for path, text in texts:
            if text is None:
                continue
            try:
                unknown = [p for p in placeholders(text) if p not in known]
            except ValueError:
                issues.append(locator.issue(file, path, "unbalanced { or } in the text",
                                            "write {name} for a fact, or leave braces out"))
                continue
            for name in unknown:
                issues.append(locator.issue(
                    file, path, f"{{{name}}} is not one of the caller's facts",
                    f"add {name}: to caller: (or caller.facts:), or use one of: "
                    f"{', '.join(sorted(known)) or 'none set'}"))
        for j, step in enumerate(sc.script):
            if step.interrupt is not None and (j == 0 or sc.script[j - 1].say is None):
                issues.append(locator.issue(file, (*at, "script", j, "interrupt"),
                                            "an interruption talks over the answer to the "
                                            "line before it, but the step before is no say:",
                                            "put a say: step right before it"))
    return issues


def load_scenarios(file: Path) -> ScenarioFile:
    """Parse, validate and check one scenario file; ConfigError lists every issue."""
    locator = Locator()
    issues: list[ConfigIssue] = []
    doc = load_document(file, ScenarioFile, locator, issues, example=SCENARIO_HINT)
    if doc is not None:
        issues += _semantic_issues(doc, file, locator)
    if issues:
        raise ConfigError(issues)
    assert doc is not None
    return doc


def select(doc: ScenarioFile, agent: str | None) -> list[tuple[str, Scenario]]:
    """(agent, scenario) pairs to run: ``agent`` runs its own and the agent-less scenarios
    (ValueError when a scenario names no agent and none is given)."""
    chosen: list[tuple[str, Scenario]] = []
    for sc in doc.scenarios:
        owner = sc.agent or doc.agent
        if agent is not None and owner not in (None, agent):
            continue
        owner = owner or agent
        if owner is None:
            raise ValueError(f'scenario "{sc.name}" names no agent: add agent: to the '
                             "scenario or the file, or pass --agent NAME")
        chosen.append((owner, sc))
    return chosen


def only(chosen: list[tuple[str, Scenario]], names: list[str]) -> list[tuple[str, Scenario]]:
    """Just the scenarios ``names`` (all when empty); ValueError names what is missing."""
    if not names:
        return chosen
    missing = [n for n in names if n not in {sc.name for _a, sc in chosen}]
    if missing:
        raise ValueError(f"no such scenario: {', '.join(missing)}")
    return [(a, sc) for a, sc in chosen if sc.name in names]
