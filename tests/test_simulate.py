"""Simulated callers without telephony: scenario files, the rule-based caller, the checks,
the report, the sandbox's configuration and its webhook receiver."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from appliance.config.base import ConfigError
from appliance.simulate.caller import GOODBYE, RuleCaller, spoken_number
from appliance.simulate.checks import CallOutcome, evaluate, identity_pattern, normalise
from appliance.simulate.scenario import load_scenarios, only, select

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "appliance/examples/scenarios"


def scenario_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenarios.yaml"
    path.write_text(text)
    return path


def one(tmp_path: Path, body: str, agent: str = "receptionist"):
    """The single scenario of a file whose scenario item is ``body`` (indented 4)."""
    text = f"agent: {agent}\nscenarios:\n  - name: s\n    goal: test\n" + body
    return load_scenarios(scenario_file(tmp_path, text)).scenarios[0]


def errors(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_scenarios(scenario_file(tmp_path, text))
    return [str(issue) for issue in info.value.errors]


# -- scenario files ----------------------------------------------------------------------

def test_example_scenarios_load_and_cover_every_example_agent() -> None:
    chosen = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        chosen += select(load_scenarios(path), None)
    assert len(chosen) >= 30
    assert {a for a, _sc in chosen} == {"receptionist", "appointments", "afterhours", "balance"}
    names = [sc.name for _a, sc in chosen]
    assert len(names) == len(set(names))


def test_unknown_setting_names_file_line_and_suggests(tmp_path: Path) -> None:
    found = errors(tmp_path, "agent: receptionist\nscenarios:\n  - name: s\n    goal: g\n"
                   "    script:\n      - say: hi\n    expect:\n      sayd: [x]\n")
    assert len(found) == 1
    assert "scenarios.yaml:8: scenarios.0.expect.sayd" in found[0]
    assert 'did you mean "said"' in found[0]


def test_step_with_two_actions_is_refused_at_its_line(tmp_path: Path) -> None:
    found = errors(tmp_path, "agent: a\nscenarios:\n  - name: s\n    goal: g\n    script:\n"
                   "      - say: hi\n      - say: hello\n        press: '1'\n")
    assert len(found) == 1
    assert ":7: scenarios.0.script.1" in found[0] and "say and press" in found[0]


def test_bad_pattern_keys_and_voice_at_their_lines(tmp_path: Path) -> None:
    found = errors(tmp_path, (
        "agent: a\n"
        "scenarios:\n"
        "  - name: s\n"
        "    goal: g\n"
        "    caller: {voice: piper-joe}\n"
        "    script: [{press: '12x'}]\n"
        "    expect:\n"
        "      never_said: ['(unclosed']\n"))
    text = "\n".join(found)
    assert len(found) == 3
    assert ":5: scenarios.0.caller.voice" in text and "use one of: high, deep" in text
    assert ":6: scenarios.0.script.0.press: '12x' cannot be pressed" in text
    assert ":8: scenarios.0.expect.never_said.0: '(unclosed' is not a valid pattern" in text


def test_unknown_fact_misplaced_interruption_and_duplicate_name(tmp_path: Path) -> None:
    """Checks across fields run once the file is valid field by field."""
    found = errors(tmp_path, (
        "agent: a\n"
        "scenarios:\n"
        "  - name: s\n"
        "    goal: g\n"
        "    caller: {name: Ann}\n"
        "    script:\n"
        "      - interrupt: wait\n"
        "      - say: my number is {number}\n"
        "  - name: s\n"
        "    goal: g\n"
        "    script: [{say: hi}]\n"))
    text = "\n".join(found)
    assert len(found) == 3
    assert ":8: scenarios.0.script.1.say: {number} is not one of the caller's facts" in text
    assert "use one of: name" in text
    assert ":7: scenarios.0.script.0.interrupt" in text
    assert ':9: scenarios.1.name: scenario "s" is defined twice' in text


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    found = errors(tmp_path, "agent: a\nscenarios:\n  - name: [unclosed\n")
    assert any("scenarios.yaml:" in f for f in found)


def test_select_by_agent_and_only(tmp_path: Path) -> None:
    doc = load_scenarios(scenario_file(tmp_path, (
        "scenarios:\n"
        "  - {name: a, agent: one, goal: g, script: [{say: hi}]}\n"
        "  - {name: b, goal: g, script: [{say: hi}]}\n")))
    assert [(a, sc.name) for a, sc in select(doc, "two")] == [("two", "b")]
    assert [(a, sc.name) for a, sc in select(doc, "one")] == [("one", "a"), ("one", "b")]
    with pytest.raises(ValueError, match='"b" names no agent'):
        select(doc, None)
    assert [sc.name for _a, sc in only(select(doc, "one"), ["b"])] == ["b"]
    with pytest.raises(ValueError, match="no such scenario: c"):
        only(select(doc, "one"), ["c"])


def test_cli_reports_a_bad_file_and_exits_2(tmp_path: Path) -> None:
    bad = scenario_file(tmp_path, "agent: a\nscenarios:\n  - name: s\n    goal: g\n"
                        "    script: []\n")
    proc = subprocess.run([sys.executable, "-m", "appliance.cli", "simulate", str(bad),
                           "--sandbox"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert f"{bad}:5: scenarios.0.script: must list at least 1 entry" in proc.stderr


# -- the rule-based caller ---------------------------------------------------------------

def test_spoken_number_groups_digits() -> None:
    assert spoken_number("555 213 4477") == "five five five, two one three, four four seven seven"
    assert spoken_number("(030) 90-12") == "oh three oh, nine oh, one two"


def test_script_then_builtin_answers_then_hang_up(tmp_path: Path) -> None:
    sc = one(tmp_path, "    caller: {name: Maria Gonzalez, number: '555 213 4477', day: Tuesday}\n"
             "    script:\n      - say: I'd like an appointment.\n")
    caller = RuleCaller(sc)
    assert caller.first().text == "I'd like an appointment."
    assert caller.next("Sure. Which day would suit you?").text == "On Tuesday."
    assert caller.next("And your full name, please?").text == "My name is Maria Gonzalez."
    said = caller.next("What's the best phone number to reach you?")
    assert said.text == "My number is five five five, two one three, four four seven seven."
    assert said.source == "asked number"
    assert caller.next("You're booked for Tuesday.") is None
    assert caller.turns == 4


def test_read_back_gets_the_corrections_in_order(tmp_path: Path) -> None:
    sc = one(tmp_path, "    confirm: ['No, I said Friday.', 'Yes.']\n"
             "    script: [{say: Wednesday please.}]\n")
    caller = RuleCaller(sc)
    caller.first()
    assert caller.next("Wednesday at ten, is that right?").text == "No, I said Friday."
    assert caller.next("Friday at ten, is that correct?").text == "Yes."
    assert caller.next("So Friday, correct?").text == "Yes."


def test_builtin_answers_stop_after_two_and_need_the_fact(tmp_path: Path) -> None:
    sc = one(tmp_path, "    caller: {name: Ann Lee}\n    script: [{say: hi}, {say: bye}]\n")
    caller = RuleCaller(sc)
    caller.first()
    assert caller.next("What is your name?").source == "asked name"
    assert caller.next("Sorry, your name?").source == "asked name"
    assert caller.next("Your name again?").text == "bye"  # third time: the script goes on
    assert RuleCaller(sc).next("Which day would you like?").text == "hi"  # no day fact


def test_scenario_rules_come_first_and_respect_times(tmp_path: Path) -> None:
    sc = one(tmp_path, "    caller: {name: Ann Lee, facts: {account: '1234'}}\n"
             "    rules:\n      - {when: 'keypad', press: '{account}#', times: 1}\n"
             "      - {when: 'name', say: 'It is {name}.'}\n"
             "    script: [{say: hi}, {say: bye}]\n")
    caller = RuleCaller(sc)
    caller.first()
    press = caller.next("Please enter your account number on the keypad.")
    assert (press.kind, press.text) == ("press", "1234#")
    assert caller.next("Please use the keypad again.").text == "bye"
    assert caller.next("Your name?").text == "It is Ann Lee."  # the rule, not the built-in


def test_interruption_is_joined_to_the_line_before(tmp_path: Path) -> None:
    sc = one(tmp_path, "    script:\n      - say: Tell me everything.\n"
             "      - interrupt: Sorry, just the parking.\n        after: 1.5\n"
             "      - silence: 4\n      - press: '9'\n      - hangup: true\n"
             "      - say: never said\n")
    caller = RuleCaller(sc)
    first = caller.first()
    assert first.text == "Tell me everything."
    assert first.interrupt is not None and first.interrupt.after == 1.5
    kinds = [caller.next(""), caller.next(""), caller.next(""), caller.next("")]
    assert [k.kind if k else None for k in kinds] == ["silence", "press", "hangup", None]
    assert kinds[0].seconds == 4 and kinds[1].text == "9"
    assert caller.turns == 3  # two lines (one over the answer) and one key press


def test_anything_else_gets_a_goodbye_only_when_the_script_is_done(tmp_path: Path) -> None:
    sc = one(tmp_path, "    script: [{say: one}, {say: two}]\n")
    caller = RuleCaller(sc)
    caller.first()
    assert caller.next("Anything else I can help with?").text == "two"
    assert caller.next("Is there anything else?").text == GOODBYE
    assert caller.next("Anything else?") is None


# -- checks ------------------------------------------------------------------------------

def record(turns: list[tuple[str, str]] | None = None, tools: list[dict] | None = None,
           events: list[tuple[str, str]] | None = None) -> dict:
    return {"id": "c1", "end_reason": "caller hangup",
            "turns": [{"user_text": u, "agent_text": a, "interrupted": False}
                      for u, a in (turns or [])],
            "tool_calls": tools or [],
            "events": [{"kind": k, "detail": d, "at": 0.0} for k, d in (events or [])]}


def results(tmp_path: Path, expect: str, outcome: CallOutcome, caller: str = "{}") -> dict:
    sc = one(tmp_path, f"    caller: {caller}\n    script: [{{say: hi}}]\n    expect:\n{expect}")
    return {r.name: r for r in evaluate(sc, outcome)}


def test_normalise_numbers_and_times() -> None:
    assert normalise("We open at Nine A.M. and  close at one p.m.") == \
        "we open at 9 am and close at 1 pm"


def test_said_uses_heard_or_record_never_said_prefers_the_record(tmp_path: Path) -> None:
    out = CallOutcome(heard=["We open at 10 am on Saturday."],  # misheard "nine"
                      record=record([("hours?", "We open at nine a.m. on Saturday.")]))
    found = results(tmp_path, "      said: ['\\b9 ?am']\n      never_said: ['\\b10 ?am']\n", out)
    assert found["said /\\b9 ?am/"].ok
    assert found["never said /\\b10 ?am/"].ok  # the agent's own words are authoritative
    out = CallOutcome(heard=["We open at 10 am."])  # without a record the heard text counts
    found = results(tmp_path, "      never_said: ['\\b10 ?am']\n", out)
    assert not found["never said /\\b10 ?am/"].ok
    assert "said: We open at 10 am." in found["never said /\\b10 ?am/"].detail


def test_tool_arguments_last_call_and_never_called(tmp_path: Path) -> None:
    calls = [{"name": "book_appointment", "arguments": {"day": "monday", "name": "Ann"},
              "ok": True, "result": {}},
             {"name": "book_appointment", "arguments": {"day": "Thursday", "name": "Ann Lee"},
              "ok": True, "result": {}}]
    out = CallOutcome(record=record(tools=calls))
    expect = ("      tools:\n        - {name: book_appointment, arguments: {day: '^thursday$'}}\n"
              "        - {name: book_appointment, arguments: {day: '^monday$'}, last: true}\n"
              "      never_called: [transfer, book_appointment]\n")
    found = results(tmp_path, expect, out)
    assert found["tool book_appointment(day~/^thursday$/)"].ok
    failed = found["tool book_appointment(day~/^monday$/) last"]
    assert not failed.ok and "book_appointment(day=Thursday, name=Ann Lee)" in failed.detail
    assert found["never called transfer"].ok
    assert not found["never called book_appointment"].ok
    assert not results(tmp_path, expect, CallOutcome())[
        "tool book_appointment(day~/^thursday$/)"].ok  # no record: cannot pass


def test_transfer_by_label_or_extension(tmp_path: Path) -> None:
    transfer = {"name": "transfer", "arguments": {"target": "billing"}, "ok": True,
                "result": {"transferred_to": "billing"}}
    out = CallOutcome(record=record(tools=[transfer], events=[("transfer", "102")]))
    assert results(tmp_path, "      transfer: billing\n", out)["transferred to billing"].ok
    assert results(tmp_path, "      transfer: '102'\n", out)["transferred to 102"].ok
    either = "front desk|billing"
    assert results(tmp_path, f"      transfer: {either}\n", out)[f"transferred to {either}"].ok
    assert not results(tmp_path, "      transfer: bill\n", out)["transferred to bill"].ok
    wrong = results(tmp_path, "      transfer: front desk\n", out)["transferred to front desk"]
    assert not wrong.ok and wrong.detail == "found: 102, billing"
    failed = dict(transfer, ok=False)
    out = CallOutcome(record=record(tools=[failed]))
    assert not results(tmp_path, "      transfer: billing\n", out)["transferred to billing"].ok


def test_events_politeness_and_turns(tmp_path: Path) -> None:
    out = CallOutcome(heard=["Hello.", "Thank you for calling, goodbye!"], turns=3,
                      record=record(events=[("barge_in", "")]))
    found = results(tmp_path, "      events: [barge_in, reprompt]\n      ended_politely: true\n"
                    "      max_turns: 2\n", out)
    assert found["event barge_in"].ok and not found["event reprompt"].ok
    assert found["ended politely"].ok
    assert not found["at most 2 turns"].ok and found["at most 2 turns"].detail == "took 3"
    rude = CallOutcome(heard=["Hello.", "Your appointment is on Tuesday."])
    assert not results(tmp_path, "      ended_politely: true\n", rude)["ended politely"].ok


@pytest.mark.parametrize(("said", "confused"), [
    ("I'm your doctor's assistant, Dr. Maria Gonzalez.", True),
    ("Hello, this is Maria from Oakwood Clinic.", True),
    ("My name is Maria.", True),
    ("I'm sorry, Maria, we are closed on Sunday.", False),
    ("Thank you, Maria. Is this Maria Gonzalez?", False),
])
def test_identity_confusion(said: str, confused: bool) -> None:
    import re

    assert bool(re.search(identity_pattern("Maria Gonzalez"), normalise(said))) is confused


def test_every_call_gets_identity_and_sentence_checks(tmp_path: Path) -> None:
    out = CallOutcome(heard=["..."], record=record([
        ("hi", "I'm your doctor's assistant, Dr. Maria Gonzalez."),
        ("hours?", "What's the problem you're facing? What")]))
    found = results(tmp_path, "      said: []\n", out, caller="{name: Maria Gonzalez}")
    assert not found["never speaks as the caller (Maria)"].ok
    cut = found["answers end at a sentence boundary"]
    assert not cut.ok and cut.detail.endswith("facing? What")
    interrupted = record([("hi", "Let me tell you about")])
    interrupted["turns"][0]["interrupted"] = True
    found = results(tmp_path, "      said: []\n", CallOutcome(record=interrupted))
    assert found["answers end at a sentence boundary"].ok  # cut by the caller, not the agent
    assert "answers end at a sentence boundary" not in results(
        tmp_path, "      said: []\n", CallOutcome(heard=["x"]))  # needs the record


# -- report ------------------------------------------------------------------------------

def test_report_counts_and_table(tmp_path: Path) -> None:
    from appliance.simulate.call import CallTrace, Utterance
    from appliance.simulate.checks import CheckResult
    from appliance.simulate.report import build_report, format_report, scenario_result

    sc = one(tmp_path, "    script: [{say: hi}]\n")
    trace = CallTrace(turns=2, hung_up_by="caller", utterances=[
        Utterance("agent", "Hello.", 0.0, 1.0),
        Utterance("caller", "hi", 2.0, 2.5, latency_ms=600.0),
        Utterance("caller", "[keypad 1#]", 4.0, 4.2, latency_ms=3000.0, how="keypad"),
        Utterance("caller", "bye", 6.0, 6.5, latency_ms=800.0)])
    good = scenario_result("receptionist", sc, trace, [CheckResult("said /x/", True)],
                           record(), [])
    bad = scenario_result("receptionist", sc, CallTrace(error="SipError: 486 Busy"),
                          [CheckResult("never said /10 am/", False, "said: 10 am")], None, [])
    assert good["passed"] and good["latency_ms"] == [600.0, 800.0]  # keypad excluded
    assert good["latency_p50_ms"] == 700.0 and good["call_id"] == "c1"
    assert not bad["passed"] and bad["failed"] == ["call completed", "never said /10 am/"]
    report = build_report([good, bad], {"threshold": 0.9})
    summary = report["summary"]
    assert (summary["passed"], summary["task_success"], summary["invented_or_forbidden"]) == \
        (1, 0.5, 1)
    text = format_report(report)
    assert "| s | receptionist | pass | 2 | 700 |  |" in text
    assert "task success 1/2 = 50% (threshold 90%)" in text
    assert "failed: call completed — SipError: 486 Busy" in text


# -- sandbox configuration and webhook receiver ------------------------------------------

def test_sandbox_configuration_of_the_example_agents_is_valid(tmp_path: Path) -> None:
    import yaml

    from appliance.bench.ports import ports
    from appliance.config.load import load_configuration
    from appliance.simulate.target import EXAMPLE_AGENTS, agent_files, write_sandbox_config

    plan = ports()
    files = agent_files(EXAMPLE_AGENTS)
    assert {"receptionist", "appointments", "afterhours", "balance"} <= set(files)
    extensions = write_sandbox_config(tmp_path, files, plan)
    cfg = load_configuration(tmp_path)
    assert set(cfg.agents) == set(files)
    assert {r.extension: r.agent for r in cfg.site.routes.rules} == \
        {ext: agent for agent, ext in extensions.items()}
    hook = yaml.safe_load((tmp_path / "agents/appointments.yaml").read_text())["tools"][0]
    assert hook["webhook"]["url"] == f"http://127.0.0.1:{plan.tool_server}/book_appointment"
    assert hook["webhook"]["timeout"] == 1.5  # the rest of the tool is kept


async def test_webhook_receiver_checks_signatures_and_answers(tmp_path: Path) -> None:
    import socket
    import time

    import aiohttp

    from agent.tools.spec import ToolSpec
    from agent.tools.webhook import call_webhook
    from appliance.simulate.webhooks import WebhookReceiver

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    receiver = WebhookReceiver(port, b"key", {"book": {"booked": True}})
    await receiver.start()
    began = time.time()
    try:
        schema = {"type": "object", "properties": {"day": {"type": "string"}}}
        good = ToolSpec("book", "Book", schema, url=f"http://127.0.0.1:{port}/book",
                        secret=b"key")
        forged = ToolSpec("book", "Book", schema, url=f"http://127.0.0.1:{port}/book",
                          secret=b"other")
        async with aiohttp.ClientSession() as session:
            ok = await call_webhook(good, {"day": "tuesday"}, session)
            refused = await call_webhook(forged, {"day": "friday"}, session)
    finally:
        await receiver.stop()
    assert ok.ok and ok.data == {"booked": True}
    assert not refused.ok and refused.error == "http 401"
    assert receiver.since(began) == [
        {"tool": "book", "arguments": {"day": "tuesday"}, "signed": True},
        {"tool": "book", "arguments": {"day": "friday"}, "signed": False}]


# -- the call driver, over a fake phone line -------------------------------------------------

class FakeLine:
    """A dialog whose agent answers each caller line after ``delay`` seconds with the next
    of ``answers`` (0.3 s of tone), and may hang up while the caller speaks."""

    def __init__(self, answers: list[str], delay: float, hang_up_on: int | None = None) -> None:
        import asyncio
        import time

        self.answered_at = time.monotonic()
        self.received_packets: list = []
        self.sent_packets: list = []
        self.ended = asyncio.Event()
        self.texts: list[str] = []
        self.answers, self.delay, self.hang_up_on = list(answers), delay, hang_up_on
        self.lines = 0
        self.bye = False
        self._speak(self.answered_at, "Hello, how can I help?")

    def _speak(self, at: float, text: str) -> None:
        import numpy as np

        from appliance.sipphone.media import ReceivedPacket

        tone = (8000 * np.sin(np.arange(160) / 3)).astype(np.int16)
        self.received_packets += [ReceivedPacket(at + i * 0.02, i, i * 160, tone)
                                  for i in range(15)]
        self.texts.append(text)

    async def play(self, pcm) -> None:
        import asyncio
        import time

        from appliance.sipphone import SipError
        from appliance.sipphone.media import SentPacket

        if self.ended.is_set():
            raise SipError("cannot play audio: the call has ended")
        self.lines += 1
        if self.lines == self.hang_up_on:
            self.ended.set()
            raise SipError("cannot play audio: the call has ended")
        start = time.monotonic()
        frames = len(pcm) // 160
        self.sent_packets += [SentPacket(start + i * 0.02, i, i * 160, True, True)
                              for i in range(frames)]
        await asyncio.sleep(frames * 0.02)
        if self.answers:
            self._speak(start + frames * 0.02 + self.delay, self.answers.pop(0))

    async def hangup(self) -> None:
        self.bye = True


class FakeStt:
    def __init__(self, line: FakeLine) -> None:
        self.line, self.heard = line, 0

    async def transcribe(self, audio):
        from types import SimpleNamespace

        self.heard += 1
        return SimpleNamespace(text=self.line.texts[self.heard - 1])


class FakeVoice:
    def say(self, text: str, voice: str, noise_db: float | None = None):
        import numpy as np

        return np.ones(1600, dtype=np.int16)  # 0.2 s


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    import appliance.simulate.call as call

    monkeypatch.setattr(call, "QUIET", 0.15)
    monkeypatch.setattr(call, "FINAL_WAIT", 0.2)
    monkeypatch.setattr(call, "LEAD", 0.0)


async def test_call_driver_hears_answers_measures_latency_and_hangs_up(
        tmp_path: Path, quick: None) -> None:
    from appliance.simulate.call import place_call

    sc = one(tmp_path, "    caller: {name: Ann Lee}\n"
             "    script: [{say: 'What are your hours?'}, {say: 'Thanks, bye.'}]\n")
    line = FakeLine(["We open at nine. What is your name?", "My name? Sure.", "Goodbye!"],
                    delay=0.25)
    phone = type("Phone", (), {"call": lambda self, ext, timeout: _ready(line)})()
    trace = await place_call(phone, "601", sc, FakeVoice(), FakeStt(line))
    said = [(u.who, u.text, u.how) for u in trace.utterances]
    assert said == [
        ("agent", "Hello, how can I help?", ""),
        ("caller", "What are your hours?", "script"),
        ("agent", "We open at nine. What is your name?", ""),
        ("caller", "My name is Ann Lee.", "asked name"),
        ("agent", "My name? Sure.", ""),
        ("caller", "Thanks, bye.", "script"),
        ("agent", "Goodbye!", "")]
    assert trace.turns == 3 and trace.hung_up_by == "caller" and line.bye
    assert len(trace.voice_latencies) == 3
    assert all(240 <= v <= 320 for v in trace.voice_latencies), trace.voice_latencies
    assert trace.error is None


async def test_agent_ending_the_call_while_the_caller_speaks_is_no_error(
        tmp_path: Path, quick: None) -> None:
    from appliance.simulate.call import place_call

    sc = one(tmp_path, "    script: [{say: 'Put me through.'}, {say: 'Hello?'}]\n")
    line = FakeLine(["One moment."], delay=0.1, hang_up_on=2)
    phone = type("Phone", (), {"call": lambda self, ext, timeout: _ready(line)})()
    trace = await place_call(phone, "601", sc, FakeVoice(), FakeStt(line))
    assert trace.error is None and trace.hung_up_by == "agent" and not line.bye
    assert [u.text for u in trace.utterances if u.who == "agent"] == [
        "Hello, how can I help?", "One moment."]


async def _ready(line: FakeLine) -> FakeLine:
    return line


def test_recheck_applies_edited_checks_to_an_earlier_result(tmp_path: Path) -> None:
    from appliance.simulate.call import CallTrace, Utterance
    from appliance.simulate.recheck import recheck_all
    from appliance.simulate.report import scenario_result

    before = one(tmp_path, "    script: [{say: hi}]\n    expect:\n      said: [park]\n")
    trace = CallTrace(turns=1, hung_up_by="caller", utterances=[
        Utterance("agent", "Park at the front, call 555-0199.", 0.0, 1.0)])
    rec = record([("parking?", "Park at the front, call 555-0199.")],
                 tools=[{"name": "transfer", "arguments": {"target": "billing"}, "ok": True,
                         "result": {"transferred_to": "billing"}}], events=[("transfer", "102")])
    earlier = scenario_result("receptionist", before, trace,
                              evaluate(before, CallOutcome(trace.heard, rec, 1)), rec, [])
    assert earlier["passed"]
    after = one(tmp_path, "    script: [{say: hi}]\n    expect:\n      said: [behind]\n"
                "      never_said: ['\\d{3}-\\d{4}']\n      transfer: billing\n")
    (result,), missing = recheck_all([("receptionist", after)], {"scenarios": [earlier]})
    assert missing == []
    assert result["failed"] == ["said /behind/", "never said /\\d{3}-\\d{4}/"]
    assert {c["name"]: c["ok"] for c in result["checks"]}["transferred to billing"]


def test_weekday_matches_a_day_argument_or_an_iso_date() -> None:
    from appliance.simulate.checks import on_weekday

    assert on_weekday({"day": "Tuesday", "name": "Ann"}, "tuesday")
    assert on_weekday({"date": "2026-12-01", "time": "10:30"}, "Tuesday")  # a Tuesday
    assert not on_weekday({"date": "2026-12-02"}, "tuesday")
    assert on_weekday({"old_date": "2026-12-01", "new_date": "2026-12-04"}, "friday")
    assert not on_weekday({"date": "next tuesday"}, "tuesday")


def test_time_is_answered_when_asked(tmp_path: Path) -> None:
    sc = one(tmp_path, "    caller: {time: half past ten}\n    script: [{say: hi}]\n")
    caller = RuleCaller(sc)
    caller.first()
    assert caller.next("And at what time?").text == "At half past ten."


def test_questions_heard_without_a_question_mark_are_still_answered(tmp_path: Path) -> None:
    sc = one(tmp_path, "    caller: {name: Omar Haddad, number: '555 010 7788', time: ten}\n"
             "    script:\n      - say: I'd like to leave a message.\n")
    caller = RuleCaller(sc)
    caller.first()
    assert caller.next("and at what time.").text == "At ten."  # Whisper, a short phrase
    said = caller.next("What number can we call you back on?")
    assert said.source == "asked number"
    assert caller.next("You asked what time we open. We open at nine.") is None
