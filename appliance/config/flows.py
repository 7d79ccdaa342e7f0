"""Task flows in agents/<name>.yaml: forms with typed slots that end in a webhook tool; the
schema, and the checks across a flow and the agent's tools."""

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from agent.flows.spec import DEFAULT_PROMPTS, FlowSpec, parse_hours
from appliance.config.base import ConfigIssue, ConfigModel, Text, WholeNumber, invalid
from appliance.config.locator import Locator

_DEFAULTS = FlowSpec(name="defaults")


def _check_identifier(value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", value):
        raise invalid(f"{value!r} is not a valid name",
                      "use lowercase letters, digits and _ (starting with a letter, at most "
                      "40 characters), e.g. phone_number")
    return value


def _check_hours(value: dict[str, str]) -> dict[str, str]:
    fix = ('write day: ranges, e.g. {mon-fri: "08:00-18:00", sat: "9am-1pm", sun: closed}; '
           "days not named are closed")
    for key, ranges in value.items():
        try:
            parse_hours({key: ranges})
        except ValueError as exc:
            raise invalid(f"opening hours do not parse: {exc}", fix, at=key) from None
    try:
        parse_hours(value)
    except ValueError as exc:
        raise invalid(f"opening hours do not parse: {exc}", fix) from None
    return value


Identifier = Annotated[str, AfterValidator(_check_identifier)]
Hours = Annotated[dict[str, str], AfterValidator(_check_hours)]


class SlotConfig(ConfigModel):
    """One value a flow collects from the caller."""

    name: Identifier = Field(description="The slot's name, used in {placeholders} and, "
                             "unless parameter says otherwise, as the tool's argument. "
                             "Required.", examples=["date"])
    type: Literal["date", "time", "phone", "name", "choice", "text"] = Field(
        description="What it holds: date (ISO to the tool), time (HH:MM), phone (digits), "
        "name, choice (one of choices) or text (free words, e.g. a message). Required.")
    prompt: Text | None = Field(None, description="The question that asks for it. Default: "
                                "one per type, e.g. \"" + DEFAULT_PROMPTS["date"] + "\"")
    retry: Text | None = Field(None, description="Said when the answer made no sense. "
                               "Default: \"Sorry, I did not catch that.\" and the prompt.")
    parameter: str | None = Field(None, description="The tool argument it fills. "
                                  "Default: the slot's name.")
    required: bool = Field(True, description="Asked for; false: only kept when the caller "
                           "says it unasked. Default: true.")
    read_back: bool | None = Field(None, description="Part of the read-back before the tool "
                                   "is called. Default: true, except for text.")
    choices: list[str] | dict[str, list[str]] = Field(
        default_factory=list, description="For type choice: the values, or value: [words "
        "callers use for it]. Default: none.",
        examples=[{"dr_smith": ["doctor smith", "smith"], "billing": ["accounts"]}])
    min_digits: WholeNumber = Field(7, ge=1, le=20, description="For type phone: fewest "
                                    "digits. Default: 7.")
    max_digits: WholeNumber = Field(15, ge=1, le=20, description="For type phone: most "
                                    "digits. Default: 15.")
    allow_past: bool = Field(False, description="For type date: dates before today are "
                             "accepted. Default: false.")
    max_days_ahead: WholeNumber | None = Field(None, ge=0, le=3660, description="For type "
                                               "date: how far ahead. Default: no limit.")

    @model_validator(mode="after")
    def _fits_type(self) -> "SlotConfig":
        if self.type == "choice" and not self.choices:
            raise invalid("a choice slot needs choices", "add choices: [first, second]",
                          at="choices")
        if self.type != "choice" and self.choices:
            raise invalid(f"choices only apply to type choice, not {self.type}",
                          "remove choices, or set type: choice", at="choices")
        if self.min_digits > self.max_digits:
            raise invalid("min_digits is above max_digits", "make min_digits the smaller",
                          at="min_digits")
        return self


class FlowConfig(ConfigModel):
    """A form the agent fills in with the caller, reads back, then hands to a tool."""

    name: Identifier = Field(description="The flow's name. Required.", examples=["book"])
    description: str = Field("", description="What it does, in a few words; its words help "
                             "recognise when a caller asks for it. Default: none.")
    cues: list[Text] = Field(default_factory=list, description="Words or phrases that start "
                             "the flow when the caller says them. Default: none (name and "
                             "description only).", examples=[["book", "make an appointment"]])
    tool: str | None = Field(None, description="The webhook tool (from tools) called with the "
                             "slot values. Default: none (the flow only confirms).")
    slots: list[SlotConfig] = Field(min_length=1, description="The values to collect, asked "
                                    "in this order. Required.")
    hours: Hours | None = Field(None, description="When dates and times may be: day or "
                                "days mapped to time ranges, e.g. {mon-fri: \"08:00-18:00\", "
                                "sat: \"9am-1pm\"}; days not named are closed. Default: any.")
    confirm: str | None = Field(None, description="The read-back, with {slot} placeholders, "
                                "e.g. \"So that is {date} at {time} for {name}, is that "
                                "right?\"; \"\" to skip it. Default: built from the slots.")
    done: Text = Field(_DEFAULTS.done, description="Said when the tool succeeded and has no "
                       "result_phrase of its own; {slot} placeholders allowed. Default: \""
                       + _DEFAULTS.done + "\"")
    cancelled: Text = Field(_DEFAULTS.cancelled, description="Said when the caller leaves "
                            "the flow (\"never mind\"). Default: \"" + _DEFAULTS.cancelled
                            + "\"")
    give_up: Text = Field(_DEFAULTS.give_up, description="Said after max_attempts failed "
                          "answers. Default: \"" + _DEFAULTS.give_up + "\"")
    offer_transfer: Text = Field(_DEFAULTS.offer_transfer, description="Said after give_up "
                                 "when the agent has a transfer tool. Default: \""
                                 + _DEFAULTS.offer_transfer + "\"")
    ask_change: Text = Field(_DEFAULTS.ask_change, description="Said when the caller says "
                             "the read-back is wrong without saying what. Default: \""
                             + _DEFAULTS.ask_change + "\"")
    confirm_retry: Text = Field(_DEFAULTS.confirm_retry, description="Said when the answer "
                                "to the read-back is neither yes nor no. Default: \""
                                + _DEFAULTS.confirm_retry + "\"")
    max_attempts: WholeNumber = Field(3, ge=1, le=10, description="Failed answers to one "
                                      "question before the flow gives up. Default: 3.")
    takes_message: bool = Field(False, description="Completing the flow counts as a message "
                                "taken (call records, monitoring). Default: false.")
    recipient: str | None = Field(None, description="With takes_message: the slot naming "
                                  "whom the message is for. Default: none.")


def flow_issues(flows: list[FlowConfig], tools: list[Any], file: Path,
                locator: Locator) -> list[ConfigIssue]:
    """What the schema cannot see: tools, slots and placeholders that do not exist."""
    issues: list[ConfigIssue] = []
    by_name = {tool.name: tool for tool in tools}
    seen: set[str] = set()
    for i, flow in enumerate(flows):
        at = ("flows", i)
        if flow.name in seen:
            issues.append(locator.issue(file, at + ("name",), f'flow name "{flow.name}" is '
                                        "used twice", "give every flow its own name"))
        seen.add(flow.name)
        slots = [slot.name for slot in flow.slots]
        for j, name in enumerate(slots):
            if name in slots[:j]:
                issues.append(locator.issue(file, at + ("slots", j, "name"), f'slot name '
                                            f'"{name}" is used twice in this flow',
                                            "give every slot of a flow its own name"))
        for field_name in ("confirm", "done"):
            for placeholder in re.findall(r"\{(\w+)\}", getattr(flow, field_name) or ""):
                if placeholder not in slots:
                    issues.append(locator.issue(
                        file, at + (field_name,), f"{{{placeholder}}} is not a slot of this "
                        "flow", "use one of: " + ", ".join(f"{{{s}}}" for s in slots)))
        if flow.recipient is not None and flow.recipient not in slots:
            issues.append(locator.issue(file, at + ("recipient",), f'recipient "'
                                        f'{flow.recipient}" is not a slot of this flow',
                                        "name one of: " + ", ".join(slots)))
        if flow.tool is None:
            continue
        tool = by_name.get(flow.tool)
        if tool is None or tool.webhook is None:
            webhooks = [t.name for t in tools if t.webhook is not None]
            what = "does not exist" if tool is None else "is not a webhook tool"
            issues.append(locator.issue(
                file, at + ("tool",), f'tool "{flow.tool}" {what}',
                "declare it under tools: with a webhook" + (
                    f", or use one of: {', '.join(webhooks)}" if webhooks else "")))
            continue
        issues += _argument_issues(flow, tool, file, locator, at)
    return issues


def _argument_issues(flow: FlowConfig, tool: Any, file: Path, locator: Locator,
                     at: tuple) -> list[ConfigIssue]:
    """Each slot fills an argument the tool has; each required argument has a slot."""
    issues: list[ConfigIssue] = []
    schema: dict[str, Any] = tool.parameters or {}
    properties = schema.get("properties", {})
    filled = set()
    for j, slot in enumerate(flow.slots):
        argument = slot.parameter or slot.name
        filled.add(argument)
        if argument not in properties and schema.get("additionalProperties") is False:
            issues.append(locator.issue(
                file, at + ("slots", j, "parameter" if slot.parameter else "name"),
                f'tool "{tool.name}" has no parameter "{argument}"',
                "set parameter: to one of " + ", ".join(properties) if properties else
                f"add {argument} to the tool's parameters"))
    keypad = tool.dtmf.parameter if tool.dtmf else None
    missing = [r for r in schema.get("required", []) if r not in filled and r != keypad]
    if missing:
        issues.append(locator.issue(file, at + ("slots",), f'tool "{tool.name}" requires '
                                    f"{', '.join(missing)}, which no slot fills",
                                    "add a slot for each (or set parameter: on a slot)"))
    return issues
