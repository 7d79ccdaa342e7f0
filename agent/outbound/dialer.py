"""Place outbound calls through ARI and hand each answered one to its agent.

A job is one request (a number, an agent, variables); it makes one or more attempts (retries
with back-off for busy and no answer). An attempt originates a channel into our Stasis
application; the app is subscribed to it from creation, so a busy or unanswered callee
arrives as ``ChannelDestroyed`` with its cause. Once answered, answering-machine detection
(Asterisk's AMD() in the ``amd_context`` dialplan) may run first; then the call is served
by an ``OutboundCall`` like any inbound one. The rules are checked before every dial.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agent.ari import AriError, Channel, Event, quietly
from agent.clock import Clock, LoopClock
from agent.outbound.call import OutboundCall, personalize, synthesize_phrases
from agent.outbound.rules import RETRY_OUTCOMES, Refusal, normalize_number
from agent.outbound.settings import OutboundSettings

if TYPE_CHECKING:
    from agent.daemon import Daemon

log = logging.getLogger(__name__)

OUTCOMES = ("person", "machine", "no answer", "busy", "failed", "refused")
BUSY_CAUSES = {17}
NO_ANSWER_CAUSES = {18, 19, 20}
MAX_VARIABLES = 20
ANSWER_GRACE = 15.0  # seconds past the ring time to wait for the channel's fate


@dataclass
class OutboundRequest:
    """One call to place."""

    number: str = field(repr=False)
    agent: str
    trunk: str | None = None  # None: the default trunk
    phone: str | None = None  # a desk phone's extension instead of a number over a trunk
    variables: dict[str, str] = field(default_factory=dict, repr=False)
    timezone: str | None = None  # the callee's IANA zone (None: the rules' default)
    retry: bool = True  # retry busy / no answer with back-off

    def validate(self, settings: OutboundSettings, agents: Any) -> None:
        """Raise ValueError with the fix when the request cannot be placed as written."""
        if self.agent not in agents:
            raise ValueError(f"unknown agent {self.agent!r}")
        if self.phone is None:
            self.number = normalize_number(self.number)
            trunk = self.trunk or settings.default_trunk
            if trunk is None or trunk not in settings.trunks:
                raise ValueError(f"unknown trunk {trunk!r}: use one of "
                                 f"{sorted(settings.trunks)}")
            self.trunk = trunk
        elif not (self.phone.isdigit() and len(self.phone) <= 6):
            raise ValueError("phone must be a desk phone's extension (digits)")
        if len(self.variables) > MAX_VARIABLES:
            raise ValueError(f"at most {MAX_VARIABLES} variables")
        for key, value in self.variables.items():
            if not (key.isidentifier() and key.isascii() and len(key) <= 32):
                raise ValueError(f"variable name {key!r}: letters, digits and _ (32 at most)")
            if len(value) > 200 or any(ord(c) < 32 for c in value):
                raise ValueError(f"variable {key!r}: 200 printable characters at most")


@dataclass
class OutboundJob:
    """A request, its attempts and its outcome (what GET /calls/{id} shows)."""

    id: str
    request: OutboundRequest
    state: str = "queued"  # queued, ringing, detecting, talking, waiting, done
    outcome: str | None = None  # one of OUTCOMES when done
    detail: str = ""  # the refusing rule, the hangup cause, how the call ended
    reason: str = ""  # a refusal in words (no number in it)
    retry_at: float | None = None  # refused for the hours: when they open (wall time)
    attempts: int = 0
    amd: str | None = None  # human, machine, unknown (None: not run)
    amd_seconds: float | None = None  # from the answer to the detector's verdict
    call_id: str | None = None  # the call record of the answered attempt
    next_attempt: float | None = None  # wall time of the next retry
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def public(self) -> dict[str, Any]:
        """The job as data (no number, no variables)."""
        return {"id": self.id, "agent": self.request.agent, "state": self.state,
                "outcome": self.outcome, "detail": self.detail, "reason": self.reason,
                "retry_at": self.retry_at,
                "attempts": self.attempts,
                "amd": self.amd, "amd_seconds": self.amd_seconds, "call_id": self.call_id,
                "next_attempt": self.next_attempt}


@dataclass
class _Attempt:
    job: OutboundJob
    channel_id: str
    stage: str = "ringing"  # ringing → detecting → handed over
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    detected: asyncio.Event = field(default_factory=asyncio.Event)
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    cause: int | None = None
    amd: tuple[str, ...] = ()


class Dialer:
    """Jobs by id; attempts by channel id until a Call owns the channel."""

    def __init__(self, daemon: Daemon, clock: Clock | None = None,
                 wall: Callable[[], float] = time.time) -> None:
        self.daemon = daemon
        self.clock = clock or LoopClock()
        self.wall = wall
        self.jobs: dict[str, OutboundJob] = {}
        self._attempts: dict[str, _Attempt] = {}
        self._tasks: dict[str, asyncio.Task] = {}

    @property
    def settings(self) -> OutboundSettings:
        outbound = self.daemon.settings.outbound
        assert outbound is not None
        return outbound

    # -- counts and rules ------------------------------------------------------------------
    def in_progress(self) -> int:
        """Outbound calls ringing or talking now (a line each)."""
        return sum(1 for j in self.jobs.values() if j.state in ("ringing", "detecting",
                                                                  "talking"))

    def check(self, request: OutboundRequest) -> Refusal | None:
        """The rules, for a dial now."""
        if self.daemon.draining:
            return Refusal("shutdown", "the daemon is stopping")
        if request.phone is not None:  # a desk phone: only the line limits apply
            number, zone = "000", "UTC"
            rules = self.settings.rules
            refusal = rules.check(number, zone, datetime.now(UTC), self.in_progress(),
                                  self._total(), self.daemon.settings.max_concurrent_calls)
            return refusal if refusal is None or refusal.rule == "concurrency" else None
        return self.settings.rules.check(
            request.number, request.timezone, datetime.fromtimestamp(self.wall(), UTC),
            self.in_progress(), self._total(), self.daemon.settings.max_concurrent_calls)

    def channel_ids(self) -> set[str]:
        """Channels being dialled (not yet served by a call)."""
        return set(self._attempts)

    def _total(self) -> int:
        calls = len(self.daemon.active_calls)
        return calls + sum(1 for a in self._attempts.values() if a.stage != "handed over")

    # -- jobs ------------------------------------------------------------------------------
    def submit(self, request: OutboundRequest) -> OutboundJob:
        """Check the rules and start placing the call; a refused job is done at once."""
        job = OutboundJob(uuid.uuid4().hex[:12], request)
        self.jobs[job.id] = job
        refusal = self.check(request)
        if refusal is not None:
            job.reason = refusal.reason
            job.retry_at = refusal.retry_at.timestamp() if refusal.retry_at else None
            self._finish(job, "refused", refusal.rule)
            return job
        job.state = "ringing"  # counts against the limits from now on
        self._tasks[job.id] = self.daemon.spawn(self._run(job), name=f"outbound-{job.id}")
        return job

    def stop_dialling(self) -> None:
        """The daemon is stopping: calls not yet answered are given up (hung up)."""
        for job_id, task in list(self._tasks.items()):
            job = self.jobs[job_id]
            if job.state in ("queued", "ringing", "detecting", "waiting"):
                task.cancel()
                self._finish(job, "failed", "shutdown")

    def _finish(self, job: OutboundJob, outcome: str, detail: str = "") -> None:
        job.state, job.outcome, job.detail = "done", outcome, detail
        job.next_attempt = None
        job.done.set()
        log.info("outbound %s: %s%s after %d attempt(s)", job.id, outcome,
                 f" ({detail})" if detail else "", job.attempts)

    async def _run(self, job: OutboundJob) -> None:
        try:
            await self._attempts_of(job)
        finally:
            self._tasks.pop(job.id, None)

    async def _attempts_of(self, job: OutboundJob) -> None:
        try:
            while True:
                outcome, detail = await self._attempt(job)
                job.attempts += 1
                delay = (self.settings.rules.retry.delay(outcome, job.attempts)
                         if outcome in RETRY_OUTCOMES and job.request.retry else None)
                if delay is None:
                    self._finish(job, outcome, detail)
                    return
                job.state, job.detail = "waiting", outcome
                job.next_attempt = self.wall() + delay
                log.info("outbound %s: %s, retry in %.0fs", job.id, outcome, delay)
                await self.clock.sleep_until(self.clock.now() + delay)
                refusal = self.check(job.request)
                while refusal is not None and refusal.rule == "concurrency":
                    await self.clock.sleep_until(self.clock.now() + 5)
                    refusal = self.check(job.request)
                if refusal is not None:
                    job.reason = refusal.reason
                    self._finish(job, "refused", refusal.rule)
                    return
                job.state = "ringing"
        except Exception as exc:  # noqa: BLE001  (one job never stops the daemon)
            log.warning("outbound %s: failed: %s", job.id, type(exc).__name__)
            self._finish(job, "failed", type(exc).__name__)

    # -- one attempt -----------------------------------------------------------------------
    def _endpoint(self, request: OutboundRequest) -> tuple[str, str]:
        """The PJSIP endpoint to dial and the caller ID to present."""
        if request.phone is not None:
            return f"PJSIP/{request.phone}", ""
        assert request.trunk is not None
        trunk = self.settings.trunks[request.trunk]
        number = request.number if trunk.plus else request.number.lstrip("+")
        return f"PJSIP/{number}@trunk-{trunk.name}", trunk.caller_id

    async def _attempt(self, job: OutboundJob) -> tuple[str, str]:
        """Ring the callee once; serve the call if answered. (outcome, detail)."""
        settings = self.settings
        agent = self.daemon.settings.agents[job.request.agent]
        behaviour = settings.agent(agent.name)
        spec = personalize(agent, job.request.variables, behaviour.disclosure)
        engines = self.daemon.engines.get(agent.name)
        voicemail = None
        if behaviour.machine == "voicemail" and behaviour.voicemail:
            voicemail = personalize(agent, job.request.variables, "",
                                    greeting=behaviour.voicemail).greeting
        if engines is not None:
            engines = await synthesize_phrases(engines, [spec.greeting, voicemail or ""])
        attempt = _Attempt(job, f"sb-out-{uuid.uuid4().hex[:12]}")
        self._attempts[attempt.channel_id] = attempt
        handed = False
        try:
            endpoint, caller_id = self._endpoint(job.request)
            job.state = "ringing"
            try:
                await self.daemon.ari.request("POST", "channels", params={
                    "endpoint": endpoint, "app": self.daemon.settings.ari.app,
                    "appArgs": "outbound", "channelId": attempt.channel_id,
                    "timeout": settings.ring_seconds, "callerId": caller_id or None})
            except AriError as exc:
                return "failed", f"originate {exc.status}"
            if not await self._wait(attempt.answered, attempt,
                                    settings.ring_seconds + ANSWER_GRACE):
                return self._unanswered(attempt)
            amd = "unknown"
            if behaviour.detect_machine:
                job.state, attempt.stage = "detecting", "detecting"
                began = self.clock.now()
                await self.daemon.ari.continue_in_dialplan(attempt.channel_id,
                                                           settings.amd_context, "s")
                if not await self._wait(attempt.detected, attempt, settings.amd_seconds + 5):
                    return "failed", "hung up during detection"
                amd = amd_result(attempt.amd)
                job.amd, job.amd_seconds = amd, round(self.clock.now() - began, 3)
                log.info("outbound %s: answered by %s (detected in %.2fs)", job.id,
                         {"human": "a person", "machine": "a machine"}.get(amd, "unknown"),
                         job.amd_seconds)
            machine = amd == "machine"
            if machine and (behaviour.machine == "hangup" or voicemail is None):
                await quietly(self.daemon.ari.hangup(attempt.channel_id))
                return "machine", "hung up"
            job.state, attempt.stage = "talking", "handed over"
            call = OutboundCall(
                self.daemon.ari, self.daemon.settings, spec, self._channel(attempt),
                self.daemon.register_channel, engines=engines, recorder=self.daemon.recorder,
                metrics=self.daemon.metrics, clock=self.daemon.clock,
                open_endpoint=self.daemon.open_endpoint,
                pacer=getattr(self.daemon, "pacer", None),
                amd=amd if behaviour.detect_machine else None,
                voicemail=voicemail if machine else None,
                beep_wait=settings.beep_wait)
            self._attempts.pop(attempt.channel_id, None)
            handed = True
            job.call_id = call.id
            await call.run()
            return ("machine", "voicemail left") if machine else ("person", call.end_reason)
        finally:
            self._attempts.pop(attempt.channel_id, None)
            if not handed:
                await quietly(self.daemon.ari.hangup(attempt.channel_id))

    def _channel(self, attempt: _Attempt) -> Channel:
        request = attempt.job.request
        caller_id = self._endpoint(request)[1]
        return Channel(attempt.channel_id, "PJSIP/outbound", "Up", caller_number=caller_id,
                       dialed=request.phone or request.number)

    async def _wait(self, event: asyncio.Event, attempt: _Attempt, timeout: float) -> bool:
        """True when ``event`` happened; False when the channel went away or time ran out."""
        happened = asyncio.ensure_future(event.wait())
        gone = asyncio.ensure_future(attempt.gone.wait())
        try:
            await asyncio.wait({happened, gone}, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            happened.cancel()
            gone.cancel()
        return event.is_set() and not attempt.gone.is_set()

    @staticmethod
    def _unanswered(attempt: _Attempt) -> tuple[str, str]:
        cause = attempt.cause
        detail = f"cause {cause}" if cause is not None else "no response"
        if cause in BUSY_CAUSES:
            return "busy", detail
        if cause in NO_ANSWER_CAUSES or cause in (None, 0, 16):
            return "no answer", detail
        return "failed", detail

    # -- events ----------------------------------------------------------------------------
    def handle(self, event: Event) -> bool:
        """Take an event about a channel we are dialling; False if it is not one of ours."""
        if event.channel is None:
            return False
        attempt = self._attempts.get(event.channel.id)
        if attempt is None:
            return False
        if event.type == "StasisStart":
            if attempt.stage == "ringing":
                attempt.answered.set()
            elif attempt.stage == "detecting":
                attempt.amd = event.args[1:]
                attempt.detected.set()
        elif event.type in ("ChannelDestroyed", "ChannelHangupRequest"):
            cause = event.raw.get("cause")
            if isinstance(cause, int) and (attempt.cause is None or event.type ==
                                           "ChannelDestroyed"):
                attempt.cause = cause
            attempt.gone.set()
        elif event.type == "StasisEnd" and attempt.stage == "ringing" \
                and attempt.answered.is_set():
            attempt.gone.set()  # left our application before a call took it
        return True


def amd_result(args: tuple[str, ...]) -> str:
    """AMD()'s AMDSTATUS (the first argument after ``outbound-amd``) in our words."""
    status = args[0].upper() if args else ""
    return {"HUMAN": "human", "MACHINE": "machine"}.get(status, "unknown")
