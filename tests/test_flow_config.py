"""Flows in the agent YAML: the example agents build and run; bad flows are named with
file, line and a fix."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest

from agent.flows import FlowRunner
from agent.tools.spec import schema_errors
from appliance.config.base import ConfigError, ConfigIssue
from appliance.config.load import load_configuration
from appliance.daemon_settings import agent_spec

REPO = Path(__file__).resolve().parent.parent
FEATURES = REPO / "appliance" / "examples" / "features"
NOW = datetime(2026, 11, 29, 10, 0)  # a Sunday
SITE = """\
phones:
  - extension: "101"
    secret: inline-pass
  - extension: "102"
    secret: inline-pass-2
routes:
  default_agent: demo
"""
TOOLS = """\
tools:
  - name: book_appointment
    description: Book an appointment.
    parameters:
      type: object
      properties:
        date: {type: string}
        time: {type: string}
      required: [date, time]
      additionalProperties: false
    webhook:
      url: http://127.0.0.1:9000/book
  - name: hangup
    builtin: hangup
    description: End the call.
"""


def spec_of(name: str, tmp_path: Path):
    """An example agent, loaded beside a minimal site and built as the daemon runs it."""
    root = tmp_path / "etc"
    (root / "agents").mkdir(parents=True)
    (root / "secrets").mkdir()
    (root / "secrets" / "appointments.key").write_text("k3y-k3y-k3y\n")
    (root / "secrets" / "appointments.key").chmod(0o600)
    (root / "switchboard.yaml").write_text(SITE.replace("demo", name))
    shutil.copyfile(FEATURES / f"{name}.yaml", root / "agents" / f"{name}.yaml")
    cfg = load_configuration(root)
    return agent_spec(cfg.agents[name], None, root)


def talk(spec, *lines: str):
    """Say ``lines`` to the agent's flows; the last step."""
    flows = FlowRunner(spec.flows, spec.tools, now=lambda: NOW)
    step = None
    for line in lines:
        step = flows.step(line)
        assert step is not None, line
    return step


def test_the_appointments_example_books_with_arguments_its_tool_accepts(tmp_path) -> None:
    spec = spec_of("appointments", tmp_path)
    assert spec.timezone == "America/New_York"
    assert [f.name for f in spec.flows] == ["book", "cancel", "reschedule"]
    assert "Which day would suit you?" in spec.phrases()
    step = talk(spec, "I'd like to book an appointment", "Tuesday.", "2.30 p.m.",
                "It's Maria Gonzalez.", "five five five, two one three, four five six seven",
                "Yes.")
    assert step.call is not None and step.call.name == "book_appointment"
    tool = next(t for t in spec.tools if t.name == "book_appointment")
    assert schema_errors(tool.parameters, step.call.arguments) == []
    assert step.call.arguments == {"date": "2026-12-01", "time": "14:30",
                                   "name": "Maria Gonzalez", "phone": "5552134567"}


def test_the_appointments_example_reschedules_with_a_correction(tmp_path) -> None:
    spec = spec_of("appointments", tmp_path)
    flows = FlowRunner(spec.flows, spec.tools, now=lambda: NOW)
    assert flows.step("I need to reschedule my appointment").say == \
        "May I have the name the appointment is under?"
    flows.step("Maria Gonzalez")
    assert flows.step("It's on Tuesday").say == "And which day would you like instead?"
    assert flows.step("Thursday").say == "At what time?"
    read_back = flows.step("ten thirty").say
    assert read_back == ("So I move the appointment for Maria Gonzalez from Tuesday the 1st "
                         "of December to Thursday the 3rd of December at 10:30 am, is that "
                         "right?")
    assert "Friday the 4th" in flows.step("no, the new day is Friday").say
    step = flows.step("yes")
    tool = next(t for t in spec.tools if t.name == "reschedule_appointment")
    assert schema_errors(tool.parameters, step.call.arguments) == []
    assert step.call.arguments == {"name": "Maria Gonzalez", "old_date": "2026-12-01",
                                   "new_date": "2026-12-04", "new_time": "10:30"}


def test_the_receptionist_takes_a_message_for_a_named_person(tmp_path) -> None:
    spec = spec_of("receptionist", tmp_path)
    flows = FlowRunner(spec.flows, spec.tools, now=lambda: NOW)
    assert flows.step("Can I leave a message for Doctor Patel?").say == \
        "What would you like the message to say?"
    flows.step("My test results came in, please call me.")
    flows.step("Maria Gonzalez")
    assert flows.step("555 213 4567").say == ("So that is a message for dr patel from Maria "
                                              "Gonzalez, to call back on 5 5 5, 2 1 3, "
                                              "4 5 6 7. Is that right?")
    step = flows.step("yes")
    tool = next(t for t in spec.tools if t.name == "take_message")
    assert schema_errors(tool.parameters, step.call.arguments) == []
    assert flows.tool_done(ok=True, spoken=False).message_for == "dr patel"
    assert flows.step("What are your opening hours?") is None  # not a flow


def test_the_afterhours_agent_takes_a_message(tmp_path) -> None:
    spec = spec_of("afterhours", tmp_path)
    step = talk(spec, "Can you take a message?", "Maria Gonzalez", "555 213 4567",
                "Please call me back about my prescription.", "yes please")
    assert step.call.arguments == {"name": "Maria Gonzalez", "phone": "5552134567",
                                   "message": "Please call me back about my prescription."}


def errors(tmp_path: Path, agent: str) -> list[ConfigIssue]:
    root = tmp_path / "etc"
    (root / "agents").mkdir(parents=True)
    (root / "switchboard.yaml").write_text(SITE)
    (root / "agents" / "demo.yaml").write_text(agent)
    with pytest.raises(ConfigError) as caught:
        load_configuration(root)
    return caught.value.errors


def flow(body: str) -> str:
    return "name: demo\ngreeting: Hello.\nflows:\n  - name: book\n    cues: [book]\n" + body \
        + TOOLS


@pytest.mark.parametrize(("body", "line", "field", "message"), [
    ("    tool: hangup\n    slots:\n      - {name: date, type: date}\n", 6, "flows.0.tool",
     'tool "hangup" is not a webhook tool'),
    ("    tool: book_appointment\n    slots:\n      - {name: date, type: date}\n", 7,
     "flows.0.slots", "requires time, which no slot fills"),
    ("    tool: book_appointment\n    slots:\n      - {name: date, type: date}\n"
     "      - {name: time, type: time}\n      - {name: when, type: date}\n", 10,
     "flows.0.slots.2.name", 'has no parameter "when"'),
    ("    confirm: So {date} at {tme}?\n    slots:\n      - {name: date, type: date}\n", 6,
     "flows.0.confirm", "{tme} is not a slot of this flow"),
    ("    takes_message: true\n    recipient: who\n    slots:\n      - {name: date, "
     "type: date}\n", 7, "flows.0.recipient", 'recipient "who" is not a slot'),
    ("    slots:\n      - {name: date, type: date}\n      - {name: date, type: time}\n", 8,
     "flows.0.slots.1.name", 'slot name "date" is used twice'),
    ("    slots:\n      - {name: who, type: choice}\n", 7, "flows.0.slots.0.choices",
     "a choice slot needs choices"),
    ("    slots:\n      - {name: when, type: date, choices: [a]}\n", 7,
     "flows.0.slots.0.choices", "choices only apply to type choice"),
    ("    slots: []\n", 6, "flows.0.slots", ""),
    ("    hours: {mon: \"18:00-08:00\"}\n    slots:\n      - {name: date, type: date}\n", 6,
     "flows.0.hours.mon", "ends before it starts"),
    ("    slots:\n      - {name: Date, type: date}\n", 7, "flows.0.slots.0.name",
     "not a valid name"),
])
def test_bad_flows_are_named_with_file_and_line(tmp_path, body, line, field, message) -> None:
    found = errors(tmp_path, flow(body))
    assert len(found) == 1, found
    issue = found[0]
    assert (issue.file.name, issue.line, issue.field) == ("demo.yaml", line, field), issue
    assert message in issue.message and issue.fix


def test_a_bad_timezone_is_named(tmp_path) -> None:
    found = errors(tmp_path, "name: demo\ngreeting: Hello.\ntimezone: Mars/Olympus\n")
    assert [(i.line, i.field) for i in found] == [(3, "timezone")]
    assert "IANA" in found[0].fix


def test_two_flows_with_one_name(tmp_path) -> None:
    body = "    slots:\n      - {name: date, type: date}\n  - name: book\n    slots:\n" \
           "      - {name: date, type: date}\n"
    found = errors(tmp_path, flow(body))
    assert [(i.line, i.field) for i in found] == [(8, "flows.1.name")]
