"""The rule-based caller: given what the agent just said, decide what to do next.

Pure logic over text, no audio: the call driver hears the agent, transcribes it, asks
:meth:`RuleCaller.next` and carries the action out. Order of preference: the scenario's own
rules, then the built-in answers to questions about the caller's facts and read-backs, then
the next line of the script; once the script is done, "anything else?" gets a goodbye and
anything else ends the call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from appliance.simulate.scenario import Scenario

DIGIT_WORDS = ("oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
BUILTIN_TIMES = 2
"""A built-in answer is given at most this often in one call (a confused agent that keeps
asking must not keep the call going forever)."""

ActionKind = Literal["say", "press", "silence", "hangup"]


@dataclass(frozen=True)
class Interruption:
    """Words said over the agent's answer, ``after`` seconds into it."""

    text: str
    after: float


@dataclass(frozen=True)
class Action:
    """One thing the caller does; ``source`` says why (script, rule, a built-in answer)."""

    kind: ActionKind
    text: str = ""  # say: the words; press: the digits
    seconds: float = 0.0  # silence
    interrupt: Interruption | None = None  # say: then talk over the answer
    source: str = "script"


def spoken_number(number: str) -> str:
    """``"555 213 4477"`` → ``"five five five, two one three, four four seven seven"``; zero
    is said "oh", groups are those written (spaces, dashes, dots)."""
    groups = [g for g in re.split(r"[\s.\-/()]+", number) if g]
    said = [" ".join(DIGIT_WORDS[int(c)] for c in g if c.isdigit()) for g in groups]
    return ", ".join(s for s in said if s)


def _rx(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(alternatives), re.IGNORECASE)


# A read-back or confirmation question.
CONFIRM = _rx(r"\b(is|was) (that|this|it) (right|correct)\b", r"\bdid i get (that|it) right",
              r"\bcorrect\s*\?", r"\bright\s*\?", r"\bcan you confirm\b",
              r"\b(shall|should) i (book|send|cancel|move|go ahead)\b",
              r"\bdo you want me to (book|send|cancel|move)\b")
ASK_NAME = _rx(r"\b(your|the) (full |first |last )?name\b", r"\bwho (am i|is) (speaking|calling)",
               r"\bname,? please\b", r"\bunder what name\b", r"\bwhat name\b")
ASK_NUMBER = _rx(r"\b(phone|telephone|call ?back|contact|mobile) number\b", r"\byour number\b",
                 r"\bnumber (to|where|we|i) (can |could )?(reach|call)",
                 r"\bhow can we reach you\b", r"\bwhat number\b")
ASK_DAY = _rx(r"\b(which|what) day\b", r"\bwhat date\b", r"\bwhen would you like\b",
              r"\bday (would|works|suits)\b", r"\bwhen (is|would be) (good|best|convenient)\b",
              r"\bwhen do you want\b")
ASK_TIME = _rx(r"\b(at )?what time (would|works|suits|is good|do you want)",
               r"\bwhat time\s*[?.]?\s*$", r"\bwhich time\b", r"\bmorning or (the )?afternoon\b")
ANYTHING_ELSE = _rx(r"\banything else\b", r"\bsomething else\b", r"\bhelp (you )?with anything\b",
                    r"\banything more\b", r"\bany other (question|thing)")
GOODBYE = "No, that's all. Thank you, goodbye."


class RuleCaller:
    """One call's caller: the script still to say, and how often each rule has answered."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.facts = scenario.caller.values()
        self._script = list(scenario.script)
        self._used: dict[str, int] = {}
        self._confirmations = 0
        self._said_goodbye = False
        self.turns = 0  # things the caller said or pressed

    @property
    def script_done(self) -> bool:
        return not self._script

    def fill(self, text: str) -> str:
        """``text`` with {placeholders} replaced by the caller's facts (numbers spoken)."""
        values = dict(self.facts)
        if "number" in values:
            values["number"] = spoken_number(values["number"])
        return text.format(**values)

    def first(self) -> Action | None:
        """What the caller does once the greeting is over (the script's first step)."""
        return self._from_script()

    def next(self, agent_said: str) -> Action | None:
        """The caller's reaction to ``agent_said`` (None: hang up)."""
        action = self._rule(agent_said) or self._builtin(agent_said) or self._from_script()
        if action is None and self.scenario.answers and not self._said_goodbye \
                and ANYTHING_ELSE.search(agent_said):
            self._said_goodbye = True
            action = self._count(Action("say", GOODBYE, source="anything else"))
        return action

    def _count(self, action: Action) -> Action:
        if action.kind in ("say", "press"):
            self.turns += 1 + (action.interrupt is not None)
        return action

    def _use(self, key: str, limit: int) -> bool:
        if self._used.get(key, 0) >= limit:
            return False
        self._used[key] = self._used.get(key, 0) + 1
        return True

    def _rule(self, agent_said: str) -> Action | None:
        for i, rule in enumerate(self.scenario.rules):
            if re.search(rule.when, agent_said, re.IGNORECASE) and self._use(f"rule{i}",
                                                                             rule.times):
                if rule.press is not None:
                    return self._count(Action("press", self.fill(rule.press),
                                              source=f"rule {i + 1}"))
                assert rule.say is not None
                return self._count(Action("say", self.fill(rule.say), source=f"rule {i + 1}"))
        return None

    def _builtin(self, agent_said: str) -> Action | None:
        if not self.scenario.answers or not agent_said:
            return None
        if CONFIRM.search(agent_said) and self._use("confirm", BUILTIN_TIMES + 1):
            replies = self.scenario.confirm
            text = replies[min(self._confirmations, len(replies) - 1)]
            self._confirmations += 1
            return self._count(Action("say", self.fill(text), source="read-back"))
        for key, pattern, template in (
                ("name", ASK_NAME, "My name is {name}."),
                ("number", ASK_NUMBER, "My number is {number}."),
                ("day", ASK_DAY, "On {day}."),
                ("time", ASK_TIME, "At {time}.")):
            if key in self.facts and pattern.search(agent_said) \
                    and self._use(key, BUILTIN_TIMES):
                return self._count(Action("say", self.fill(template), source=f"asked {key}"))
        return None

    def _from_script(self) -> Action | None:
        if not self._script:
            return None
        step = self._script.pop(0)
        if step.hangup:
            self._script.clear()
            return Action("hangup")
        if step.silence is not None:
            return Action("silence", seconds=step.silence)
        if step.press is not None:
            return self._count(Action("press", self.fill(step.press)))
        text = self.fill(step.text or "")
        if step.interrupt is not None:  # not after a say (the loader checks): said plainly
            return self._count(Action("say", text))
        follow = self._script[0] if self._script else None
        interruption = None
        if follow is not None and follow.interrupt is not None:
            self._script.pop(0)
            interruption = Interruption(self.fill(follow.interrupt), follow.after)
        return self._count(Action("say", text, interrupt=interruption))
