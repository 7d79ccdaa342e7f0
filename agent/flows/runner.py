"""The flow engine: a synchronous decider over the caller's words.

``FlowRunner.step(text)`` returns None when no flow is active or starts (the rest of the
agent answers), else a ``FlowStep``: what to say, which tool to call, whether the flow is
over. A flow asks for its slots in order (values said early are kept), checks each against
its constraints, reads everything back, takes corrections of single slots, and ends in its
tool. "Never mind" leaves it; repeated failures give up politely (offering a transfer when
the agent has one). The tool's outcome comes back through ``tool_done``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from agent.flows import slots as values
from agent.flows.spec import FlowSpec, SlotSpec
from agent.flows.start import choose_flow
from agent.flows.times import SpokenTime
from agent.flows.values import is_question, parse_yes_no, wants_out
from agent.flows.words import tokens
from agent.tools.choice import choose
from agent.tools.spec import ToolCall, ToolSpec

log = logging.getLogger(__name__)
_CORRECTING = {"no", "actually", "said", "sorry", "wait", "change", "not", "instead", "make"}
# how long after a flow's tool ran a correction reopens the flow (by the clock, not by
# turns: words worked on while the caller draws breath are turns too)
AMEND_WINDOW = timedelta(seconds=60)


@dataclass(frozen=True)
class FlowStep:
    """What the flow decided for one caller turn."""

    flow: str
    parts: tuple[str, ...] = ()  # said first, in order (fixed wording: cached phrases)
    call: ToolCall | None = None  # then this tool is carried out; its outcome → tool_done
    done: bool = False  # the flow is over after this step (and its call)
    message_for: str | None = None  # a message was taken, for this person ('' unnamed)

    @property
    def say(self) -> str:
        """Everything the step says."""
        return " ".join(self.parts)


@dataclass
class _Progress:
    """Where one flow stands."""

    flow: FlowSpec
    values: dict[str, Any] = field(default_factory=dict)  # slot name -> date/time/str
    spoken: dict[str, SpokenTime] = field(default_factory=dict)  # times as said
    phase: str = "slot"  # slot | confirm | change | offer
    asking: str = ""  # the slot last asked for
    attempts: int = 0  # failed answers to the current question
    amends: bool = False  # reopened to correct what its tool already got

    def copy(self) -> _Progress:
        return replace(self, values=dict(self.values), spoken=dict(self.spoken))


class FlowRunner:
    """Runs an agent's flows for one call; ``now`` gives the call's local date and time."""

    def __init__(self, flows: Iterable[FlowSpec], tools: Iterable[ToolSpec],
                 now: Callable[[], datetime] = datetime.now) -> None:
        self.flows = tuple(flows)
        self.tools: Mapping[str, ToolSpec] = {t.name: t for t in tools}
        self.now = now
        self.transfer = next((t for t in self.tools.values() if t.kind == "transfer"), None)
        self._flow_tools = [self.tools[f.tool] for f in self.flows if f.tool in self.tools]
        self._p: _Progress | None = None
        self._pending: tuple[FlowSpec, str | None] | None = None  # tool call under way
        self._done: tuple[_Progress, datetime] | None = None  # a finished flow, until
        self._finished: _Progress | None = None  # the flow whose tool is under way
        self._saved: tuple[_Progress | None, Any, Any] = (None, None, None)

    @property
    def active(self) -> str | None:
        """The name of the flow in progress, if any."""
        return self._p.flow.name if self._p is not None else None

    @property
    def tool_names(self) -> set[str]:
        """Tools only flows call: the model should not plan them from loose words."""
        return {t.name for t in self._flow_tools}

    @property
    def dictation(self) -> bool:
        """The caller was just asked for a number or a message: they say it in pieces, with
        pauses ("five five five, … oh one oh, …") — no quick end of turn."""
        p = self._p
        return p is not None and p.phase == "slot" and p.asking != "" and \
            self._slot(p.asking).kind in ("phone", "text")

    @property
    def values(self) -> dict[str, Any]:
        """The values of the flow in progress so far (a copy)."""
        return dict(self._p.values) if self._p is not None else {}

    # -- the decider ---------------------------------------------------------------------
    def step(self, text: str) -> FlowStep | None:
        """Decide on the caller's words; None: no flow wants them."""
        self._saved = (self._p.copy() if self._p is not None else None, self._pending,
                       self._done)
        if self._p is None:
            amended = self._amend(text)
            if amended is not None:
                return amended
            flow = choose_flow(text, self.flows)
            if flow is None:
                return None
            log.info("flow %s started", flow.name)
            self._p, self._done = _Progress(flow), None
            reasons = self._fill(text, asking=None)
            return self._next(reasons)
        p = self._p
        dictating = p.phase == "slot" and self._slot(p.asking).kind == "text"
        if wants_out(text) and not (dictating and len(tokens(text)) > 5):
            return self._end(p.flow.cancelled)  # a message may say "forget it" in passing
        if p.phase == "offer":
            return self._offer(text)
        if p.phase == "confirm":
            return self._confirm(text)
        if p.phase == "change":
            return self._change(text)
        return self._collect(text)

    def tool_done(self, ok: bool, spoken: bool) -> FlowStep:
        """The flow's tool finished: ``ok`` it worked; ``spoken`` its result was said."""
        pending, self._pending = self._pending, None
        if pending is None:
            return FlowStep("", done=True)
        flow, message_for = pending
        finished, self._finished = self._finished, None
        if not ok:
            return FlowStep(flow.name, done=True)  # the tool's failure phrase was said
        if finished is not None:
            self._done = (finished, self.now() + AMEND_WINDOW)
        return FlowStep(flow.name, () if spoken else (flow.done,), done=True,
                        message_for=message_for)

    def rollback(self) -> None:
        """Undo the last step (its turn was dropped before anything was said or done)."""
        self._p, self._pending, self._done = self._saved

    def _amend(self, text: str) -> FlowStep | None:
        """Soon after a flow's tool ran, a correction ("sorry, not Monday, Thursday") reopens
        it with the new value: read back, then the tool again (``amends``). Words with no
        new value leave it as it was."""
        if self._done is None:
            return None
        finished, until = self._done
        if self.now() > until:
            self._done = None
            return None
        if not _CORRECTING & set(tokens(text)):
            return None
        p = self._p = replace(finished.copy(), phase="slot", asking="", attempts=0,
                              amends=True)
        before = dict(p.values)
        reasons = self._fill(text, asking=None, correcting=True)
        if p.values == before and not reasons:
            self._p = None
            return None
        self._done = None
        log.info("flow %s reopened to correct it", p.flow.name)
        return self._next(reasons)

    # -- phases ----------------------------------------------------------------------------
    def _collect(self, text: str) -> FlowStep | None:
        p = self._p
        assert p is not None
        slot = self._slot(p.asking)
        before = dict(p.values)
        reasons = self._fill(text, asking=slot)
        changed = p.values != before
        if not changed and not reasons and slot.kind != "text" and is_question(text) \
                and choose(text, self._flow_tools) is None:
            return None  # a question on the way: the agent answers, the flow waits
        if slot.name not in p.values:
            if not changed or reasons:
                p.attempts += 1
                if p.attempts >= p.flow.max_attempts:
                    return self._give_up()
            if not changed and not reasons:
                return self._say(*slot.retry_parts)
        return self._next(reasons)

    def _confirm(self, text: str) -> FlowStep:
        p = self._p
        assert p is not None
        before = dict(p.values)
        reasons = self._fill(text, asking=None, correcting=True)
        if p.values != before or reasons:
            return self._next(reasons)
        answer = parse_yes_no(text)
        if answer is True:
            return self._finish()
        if answer is False:
            return self._reask(text) or self._to_phase("change", p.flow.ask_change)
        p.attempts += 1
        if p.attempts >= p.flow.max_attempts:
            return self._give_up()
        return self._say(p.flow.confirm_retry)

    def _change(self, text: str) -> FlowStep:
        p = self._p
        assert p is not None
        before = dict(p.values)
        reasons = self._fill(text, asking=None, correcting=True)
        if p.values != before or reasons:
            return self._next(reasons)
        found = self._reask(text)
        if found is not None:
            return found
        if parse_yes_no(text) is True:  # "oh no, it is all right"
            return self._finish()
        p.attempts += 1
        if p.attempts >= p.flow.max_attempts:
            return self._give_up()
        return self._say(p.flow.ask_change)

    def _offer(self, text: str) -> FlowStep | None:
        p = self._p
        assert p is not None
        answer = parse_yes_no(text)
        if answer is True and self.transfer is not None:
            target = next(iter(self.transfer.targets), "")
            self._p = None
            self._pending = (p.flow, None)
            return FlowStep(p.flow.name, call=ToolCall(self.transfer.name, {"target": target}),
                            done=True)
        if answer is False:
            return self._end(p.flow.cancelled)
        self._p = None
        return None

    # -- slots -----------------------------------------------------------------------------
    def _slot(self, name: str) -> SlotSpec:
        assert self._p is not None
        return next(s for s in self._p.flow.slots if s.name == name)

    def _fill(self, text: str, asking: SlotSpec | None, correcting: bool = False) -> list[str]:
        """Take every value the words give; returns why any could not be used."""
        p = self._p
        assert p is not None
        now = self.now()
        today = now.date()
        kinds_taken: set[str] = set()
        reasons: list[str] = []
        found: list[tuple[SlotSpec, Any]] = []
        if asking is not None:
            raw = values.parse(asking, text, today, asked=True)
            if raw is not None:
                found.append((asking, raw))
                kinds_taken.add(asking.kind)
            if asking.kind == "text":
                return self._store(found, now)
        correcting = correcting or bool(_CORRECTING & set(tokens(text)))
        for slot in p.flow.slots:
            if slot is asking or slot.kind in kinds_taken or slot.kind == "text":
                continue
            if slot.name in p.values and not correcting:
                continue
            same_kind = [s for s in p.flow.slots if s.kind == slot.kind]
            if len(same_kind) > 1:  # two dates: the one named, or else the next empty one
                target = values.mentioned(text, same_kind) or (
                    values.holding_day(text, same_kind, p.values) if correcting else next(
                        (s for s in same_kind if s.name not in p.values), None))
                if slot is not target:
                    continue
            raw = values.parse(slot, text, today, asked=False)
            if raw is None:
                continue
            kinds_taken.add(slot.kind)
            if p.values.get(slot.name) != self._settled(slot, raw, now):
                found.append((slot, raw))
        reasons += self._store(found, now)
        return reasons

    def _settled(self, slot: SlotSpec, raw: Any, now: datetime) -> Any:
        """The value as it would be stored (times resolved against the date)."""
        if isinstance(raw, SpokenTime):
            return values.resolve_time(self._p.flow, raw, self._date(), now)  # type: ignore
        return raw

    def _date(self) -> date | None:
        p = self._p
        assert p is not None
        return next((p.values[s.name] for s in p.flow.slots
                     if s.kind == "date" and s.name in p.values), None)

    def _store(self, found: list[tuple[SlotSpec, Any]], now: datetime) -> list[str]:
        """Check and keep the values; a new date re-checks the time said for it."""
        p = self._p
        assert p is not None
        reasons: list[str] = []
        found.sort(key=lambda pair: pair[0].kind != "date")  # dates first: times depend on them
        for slot, raw in found:
            reason = None
            if slot.kind == "date":
                reason = values.check_date(p.flow, slot, raw, now)
            elif slot.kind == "time":
                p.spoken[slot.name] = raw
                raw = values.resolve_time(p.flow, raw, self._date(), now)
                reason = values.check_time(p.flow, raw, self._date(), now)
            elif slot.kind == "phone":
                reason = values.check_phone(slot, raw)
            if reason is not None:
                reasons.append(reason)
                p.values.pop(slot.name, None)
                if slot.kind == "time":
                    p.spoken.pop(slot.name, None)
                continue
            p.values[slot.name] = raw
            if slot.kind == "date":
                reasons += self._recheck_times(now)
        return reasons

    def _recheck_times(self, now: datetime) -> list[str]:
        p = self._p
        assert p is not None
        reasons = []
        for slot in p.flow.slots:
            if slot.kind == "time" and slot.name in p.spoken:
                value = values.resolve_time(p.flow, p.spoken[slot.name], self._date(), now)
                reason = values.check_time(p.flow, value, self._date(), now)
                if reason is None:
                    p.values[slot.name] = value
                else:
                    reasons.append(reason)
                    p.values.pop(slot.name, None)
                    p.spoken.pop(slot.name, None)
        return reasons

    def _reask(self, text: str) -> FlowStep | None:
        """The caller names a slot to change ("no, the time"): ask for it again."""
        p = self._p
        assert p is not None
        slot = values.mentioned(text, p.flow.slots)
        if slot is None:
            return None
        p.values.pop(slot.name, None)
        p.spoken.pop(slot.name, None)
        return self._ask(slot, [])

    # -- what to say next ------------------------------------------------------------------
    def _next(self, reasons: list[str]) -> FlowStep:
        p = self._p
        assert p is not None
        missing = next((s for s in p.flow.slots if s.required and s.name not in p.values), None)
        if missing is not None:
            return self._ask(missing, reasons)
        if p.flow.confirm == "":
            return self._finish()
        p.phase, p.attempts = "confirm", 0
        return self._say(*reasons, self.read_back())

    def _ask(self, slot: SlotSpec, reasons: list[str]) -> FlowStep:
        p = self._p
        assert p is not None
        if p.asking != slot.name or p.phase != "slot":
            p.attempts = 0
        p.phase, p.asking = "slot", slot.name
        return self._say(*reasons, slot.question)

    def read_back(self) -> str:
        """"So that is Tuesday the 1st of December at 2:30 pm for Maria Gonzalez, is that
        right?" — the flow's own template when it has one."""
        p = self._p
        assert p is not None
        return values.read_back(p.flow, p.values, self.now().date())

    def _finish(self) -> FlowStep:
        p = self._p
        assert p is not None
        flow = p.flow
        message_for = None
        if flow.takes_message:
            recipient = next((s for s in flow.slots if s.name == flow.recipient), None)
            message_for = values.speak(recipient, p.values[recipient.name], self.now().date()) \
                if recipient is not None and recipient.name in p.values else ""
        self._p = None
        log.info("flow %s complete", flow.name)
        tool = self.tools.get(flow.tool or "")
        done = values.fill(flow.done, flow, p.values, self.now().date())
        if tool is None:
            return FlowStep(flow.name, (done,), done=True, message_for=message_for)
        self._pending = (replace(flow, done=done), message_for)
        self._finished = p
        return FlowStep(flow.name, call=ToolCall(tool.name, self.arguments(p, tool),
                                                 amends=p.amends), done=True)

    def arguments(self, progress: _Progress, tool: ToolSpec) -> dict[str, Any]:
        """The slot values as the tool's arguments, in the formats its schema asks for."""
        props = (tool.parameters or {}).get("properties", {})
        return {s.argument: values.argument(s, progress.values[s.name],
                                            props.get(s.argument, {}))
                for s in progress.flow.slots if s.name in progress.values}

    def _give_up(self) -> FlowStep:
        p = self._p
        assert p is not None
        log.info("flow %s gave up", p.flow.name)
        if self.transfer is not None:
            p.phase, p.attempts = "offer", 0
            return self._say(p.flow.give_up, p.flow.offer_transfer)
        return self._end(p.flow.give_up)

    def _to_phase(self, phase: str, text: str) -> FlowStep:
        assert self._p is not None
        self._p.phase, self._p.attempts = phase, 0
        return self._say(text)

    def _say(self, *parts: str) -> FlowStep:
        assert self._p is not None
        return FlowStep(self._p.flow.name, parts)

    def _end(self, text: str) -> FlowStep:
        assert self._p is not None
        name = self._p.flow.name
        log.info("flow %s left", name)
        self._p = None
        return FlowStep(name, (text,), done=True)
