"""Tool-use reliability of the language model path: ``python -m appliance.bench.tools OUT.json``.

Scripted caller requests go through the planner (``agent.tools.choice.plan``) and, when it
chooses no tool, ``BatchedLlamaChatModel.stream``, with a front-desk tool set (opening hours,
booking, transfer, hang-up, keypad) and no telephony: what is measured is the decision
(which tool, or speech), whether the call is valid for the tool's schema, whether the
arguments are the ones asked for, and the time until the decision is known (the tool call,
or the first text piece).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.speech.chat_model import ChatModel, Message, Role
from agent.tools.choice import plan
from agent.tools.spec import ToolCall, ToolSpec, argument_schema, schema_errors, tool_prompt

DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
        "today", "tomorrow"]
TOOLS = (
    ToolSpec("check_opening_hours", "Tell the opening hours of the practice on a given day",
             {"type": "object", "properties": {"day": {"type": "string", "enum": DAYS}},
              "required": ["day"], "additionalProperties": False}),
    ToolSpec("book_appointment", "Book an appointment with the doctor",
             {"type": "object", "properties": {
                 "name": {"type": "string", "minLength": 1, "maxLength": 40},
                 "date": {"type": "string", "minLength": 1, "maxLength": 20},
                 "time": {"type": "string", "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9]$"}},
              "required": ["name", "date", "time"], "additionalProperties": False}),
    ToolSpec("transfer", "Put the caller through to a person", kind="transfer",
             parameters={"type": "object", "properties": {
                 "target": {"type": "string", "enum": ["reception", "billing", "doctor"]}},
                 "required": ["target"], "additionalProperties": False},
             targets={"reception": "100", "billing": "200", "doctor": "300"}),
    ToolSpec("hangup", "End the call", kind="hangup"),
    ToolSpec("send_dtmf", "Press keys on the phone keypad", kind="send_dtmf",
             parameters={"type": "object", "properties": {
                 "digits": {"type": "string", "pattern": r"^[0-9*#]{1,20}$"}},
                 "required": ["digits"], "additionalProperties": False}),
)
SYSTEM = ("You are the phone assistant of Green Street Medical Practice. Answer in one or "
          "two short sentences.")


@dataclass(frozen=True)
class Case:
    """One caller turn and what should come of it (``tool`` None: an answer in words)."""

    said: str
    tool: str | None
    arguments: dict[str, Any] = field(default_factory=dict)  # expected (a subset)
    history: tuple[tuple[Role, str], ...] = ()  # earlier (role, content) turns
    role: Role = "user"  # whose words ``said`` is: the caller's, or a tool result


CASES = (
    Case("Are you open on Saturday?", "check_opening_hours", {"day": "saturday"}),
    Case("What time do you close on Monday?", "check_opening_hours", {"day": "monday"}),
    Case("When do you open tomorrow?", "check_opening_hours", {"day": "tomorrow"}),
    Case("Is the practice open on Sunday?", "check_opening_hours", {"day": "sunday"}),
    Case("I'd like to book an appointment for Tuesday at 10 am, my name is John Smith.",
         "book_appointment", {"name": "John Smith", "time": "10:00"}),
    Case("Can I make an appointment on Friday at 3 pm? It's Maria Lopez.",
         "book_appointment", {"name": "Maria Lopez", "time": "15:00"}),
    Case("Book me in for Wednesday at 9:30, name Peter Brown.", "book_appointment",
         {"name": "Peter Brown", "time": "09:30"}),
    Case("Please put me through to a human.", "transfer"),
    Case("Can I speak to someone in billing?", "transfer", {"target": "billing"}),
    Case("Could you connect me with the doctor?", "transfer", {"target": "doctor"}),
    Case("Can I talk to a real person?", "transfer"),
    Case("That's all, goodbye.", "hangup"),
    Case("Thanks, bye!", "hangup"),
    Case("I want to end the call now.", "hangup"),
    Case("Press 1 for me.", "send_dtmf", {"digits": "1"}),
    Case("Please dial extension 204.", "send_dtmf", {"digits": "204"}),
    Case("Hello, how are you?", None),
    Case("What's the weather like?", None),
    Case("Who am I speaking to?", None),
    Case("Can you tell me a joke?", None),
    Case("Thank you very much.", None),
    Case("What is your address?", None),
    Case("Do you treat children?", None),
    Case("How much is a consultation without insurance?", None),
    Case("open 09:00 to 13:00", None, role="tool",
         history=(("user", "Are you open on Saturday?"),)),
)


@dataclass
class Outcome:
    """What one case gave."""

    said: str
    expected: str | None
    got: str | None  # tool name, or None for speech
    arguments: dict[str, Any] | None
    text: str
    valid: bool
    right: bool
    arguments_right: bool | None  # None: no arguments were expected
    decision_s: float
    error: str | None = None


def messages_for(case: Case, tools: Sequence[ToolSpec]) -> list[Message]:
    """The conversation as the reply loop would pass it."""
    system = SYSTEM + "\n\n" + tool_prompt(tools)
    return ([Message(role="system", content=system)]
            + [Message(role=role, content=content) for role, content in case.history]
            + [Message(role=case.role, content=case.said)])


def _matches(expected: dict[str, Any], got: dict[str, Any]) -> bool:
    def same(a: Any, b: Any) -> bool:
        return a.strip().lower() == b.strip().lower() if isinstance(a, str) and \
            isinstance(b, str) else a == b
    return all(name in got and same(value, got[name]) for name, value in expected.items())


async def run_case(chat: ChatModel, case: Case, tools: Sequence[ToolSpec]) -> Outcome:
    """Plan once, then (no tool) let the model answer; time until the decision (the tool
    call, or the first text piece)."""
    by_name = {tool.name: tool for tool in tools}
    messages = messages_for(case, tools)
    start = time.perf_counter()
    decision: float | None = None
    call: ToolCall | None = None
    text = ""
    error = None
    try:
        call = await plan(messages, tools, chat)
        if call is not None:
            decision = time.perf_counter() - start
        else:
            async for piece in chat.stream(messages):
                if decision is None:
                    decision = time.perf_counter() - start
                text += piece
    except Exception as exc:  # a failure is a result here, not the end of the bench
        error = f"{type(exc).__name__}: {exc}"
    if decision is None:
        decision = time.perf_counter() - start
    got = call.name if call else None
    if call is not None:
        tool = by_name.get(call.name)
        valid = tool is not None and not schema_errors(argument_schema(tool), call.arguments)
    else:
        valid = error is None and bool(text.strip())
    right = got == case.tool and error is None
    arguments_right = None
    if case.tool is not None and case.arguments:
        arguments_right = right and call is not None and _matches(case.arguments,
                                                                   call.arguments)
    return Outcome(case.said, case.tool, got, call.arguments if call else None, text.strip(),
                   valid, right, arguments_right, decision, error)


def summarize(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Rates over all cases, tool cases and speech cases; decision latency."""
    def rate(values: Sequence[bool]) -> float | None:
        return round(sum(values) / len(values), 3) if values else None

    tool_cases = [o for o in outcomes if o.expected is not None]
    speech_cases = [o for o in outcomes if o.expected is None]
    calls = [o for o in outcomes if o.got is not None]
    with_arguments = [o for o in tool_cases if o.arguments_right is not None]
    latencies = sorted(o.decision_s for o in outcomes)
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    return {
        "cases": len(outcomes),
        "valid_output_rate": rate([o.valid for o in outcomes]),
        "valid_tool_call_rate": rate([o.valid for o in calls]),
        "right_tool_rate": rate([o.right for o in tool_cases]),
        "right_arguments_rate": rate([bool(o.arguments_right) for o in with_arguments]),
        "right_no_tool_rate": rate([o.right for o in speech_cases]),
        "overall_right_rate": rate([o.right for o in outcomes]),
        "decision_mean_s": round(statistics.fmean(latencies), 3),
        "decision_p95_s": round(p95, 3),
        "errors": sum(o.error is not None for o in outcomes),
    }


async def bench(chat: ChatModel, cases: Sequence[Case] = CASES,
                tools: Sequence[ToolSpec] = TOOLS) -> dict[str, Any]:
    """Run every case once (after one warm-up request) and summarize."""
    await run_case(chat, Case("Hello?", None), tools)  # first evaluation of the prompt
    outcomes = [await run_case(chat, case, tools) for case in cases]
    return {"summary": summarize(outcomes), "cases": [asdict(o) for o in outcomes]}


def default_model_path() -> Path:
    """The default language model in the appliance's model store."""
    from appliance.daemon_settings import model_store
    from appliance.models.defaults import LLM_DEFAULT

    return model_store().path(LLM_DEFAULT.name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.bench.tools",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="where to write the JSON results")
    parser.add_argument("--model", type=Path, help="GGUF file (default: the store's default)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=48,
                        help="limit for spoken answers (the decision comes before it)")
    args = parser.parse_args(argv)

    from agent.speech.batched_llama import BatchedLlamaChatModel

    model = args.model or default_model_path()
    chat = BatchedLlamaChatModel(model, threads=args.threads, max_tokens=args.max_tokens)
    result = asyncio.run(bench(chat))
    result["meta"] = {"model": str(model), "threads": args.threads,
                      "host": platform.node(), "cpus": _cpus(),
                      "at": datetime.now(UTC).isoformat(timespec="seconds")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    summary = result["summary"]
    for key, value in summary.items():
        print(f"{key:24} {value}")
    for case in result["cases"]:
        if not case["right"]:
            print(f"  wrong: {case['said'][:50]!r} expected {case['expected']}, "
                  f"got {case['got']} {case['error'] or ''}")
    return 0


def _cpus() -> int | None:
    import os

    return os.cpu_count()


if __name__ == "__main__":
    sys.exit(main())
