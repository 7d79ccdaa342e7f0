"""Tool choice from the caller's words: scripted requests, right tool or plain talk."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from agent.speech.chat_model import Message, for_template
from agent.tools import choice
from agent.tools.choice import choose, known_arguments, plan, spoken_digits, transfer_target
from agent.tools.spec import ToolCall, ToolSpec, argument_schema, tool_prompt

TOOLS = (
    ToolSpec(name="transfer", kind="transfer",
             description="Put the caller through to a person at the front desk.",
             targets={"front desk": "102", "billing": "103"}),
    ToolSpec(name="order_status", url="http://x",
             description="Look up the delivery status of an order by its order number.",
             parameters={"type": "object", "properties": {"order_number": {"type": "string"}},
                         "required": ["order_number"]}),
    ToolSpec(name="account_balance", url="http://x", dtmf_parameter="account",
             description="Tell the caller the balance of their account.",
             parameters={"type": "object", "properties": {"account": {"type": "string"}},
                         "required": ["account"]}),
    ToolSpec(name="hangup", kind="hangup",
             description="End the call when the caller says goodbye."),
)
REQUESTS = [
    ("Please put me through to a person at the front desk.", "transfer"),
    ("I have a question about my bill, can I talk to billing?", "transfer"),
    ("Can I speak to the pharmacist please?", "transfer"),
    ("I'd like to talk to a human.", "transfer"),
    ("Transfer me to someone.", "transfer"),
    ("What is the delivery status of my order 4 5 6?", "order_status"),
    ("Where is my order number 1234?", "order_status"),
    ("Has my order shipped yet?", "order_status"),
    ("Can you check the status of order 789?", "order_status"),
    ("When will my order arrive?", "order_status"),
    ("What is my account balance?", "account_balance"),
    ("How much money is in my account?", "account_balance"),
    ("Can you tell me my balance?", "account_balance"),
    ("That's all, thank you, goodbye.", "hangup"),
    ("OK bye now.", "hangup"),
    ("Thanks, that's all I needed.", "hangup"),
    ("What time do you open on Saturday?", None),
    ("Do you sell vitamins?", None),
    ("Where can I park?", None),
    ("Is the flu shot available today?", None),
    ("Do you take insurance?", None),
    ("Are you open on Sunday?", None),
    ("Can I call you back later?", None),
    ("What are your prices for a blood test?", None),
]


@pytest.mark.parametrize(("said", "tool"), REQUESTS)
def test_scripted_requests_choose_the_right_tool(said: str, tool: str | None) -> None:
    intent = choose(said, TOOLS)
    assert (intent.tool.name if intent else None) == tool


def test_transfer_target_follows_the_words() -> None:
    assert transfer_target("I need billing please", TOOLS[0]) == "billing"
    assert transfer_target("put me through", TOOLS[0]) == "front desk"


def test_numbers_are_read_from_the_words() -> None:
    assert spoken_digits("order four 5 six, please") == "456"
    schema = argument_schema(TOOLS[1])
    assert known_arguments(TOOLS[1], "my order 1 2 3", schema) == {"order_number": "123"}
    assert known_arguments(TOOLS[1], "has my order shipped", schema) is None
    assert argument_schema(TOOLS[2])["properties"] == {}  # the keypad fills it


class Model:
    """A ChatModel that writes ``text`` in two pieces, or never finishes (``text`` None)."""

    def __init__(self, text: str | None = None) -> None:
        self.text = text
        self.asked: list[tuple[list[Message], dict[str, Any] | None]] = []
        self.closed = False

    async def stream(self, messages: Sequence[Message], pause=None,
                     schema: dict[str, Any] | None = None) -> AsyncIterator[str]:
        self.asked.append((list(messages), schema))
        try:
            if self.text is None:
                await asyncio.Event().wait()
            else:
                half = len(self.text) // 2
                yield self.text[:half]
                yield self.text[half:]
        finally:
            self.closed = True


def user(text: str) -> Message:
    return Message(role="user", content=text)


async def test_a_tool_result_is_never_taken_for_a_new_request() -> None:
    """Digits in a tool result must not re-run the tool (it would loop)."""
    model = Model("{}")
    history = [user("Where is my order 456?"),
               Message(role="tool", content='{"eta": "2 days", "id": 456}')]
    assert await plan(history, TOOLS, model) is None
    assert model.asked == []


async def test_keypad_input_is_never_taken_for_a_new_request() -> None:
    history = [user("What is my account balance?"), Message(role="keypad", content="1234")]
    assert await plan(history, TOOLS, Model("{}")) is None


async def test_digits_complete_the_request_of_the_turn_before() -> None:
    history = [user("Where is my order?"),
               Message(role="assistant", content="What is your order number?"),
               user("4 5 6")]
    assert await plan(history, TOOLS, Model()) == ToolCall("order_status",
                                                           {"order_number": "456"})
    after_result = [user("Where is my order?"), Message(role="tool", content="{}"),
                    Message(role="assistant", content="It has shipped."), user("4 5 6")]
    assert await plan(after_result, TOOLS, Model()) is None


async def test_a_missing_number_lets_the_model_ask_for_it() -> None:
    model = Model('{"order_number": "1"}')
    assert await plan([user("Has my order shipped yet?")], TOOLS, model) is None
    assert model.asked == []  # the number is the caller's to give, not the model's


async def test_transfer_and_hangup_need_no_model() -> None:
    model = Model()
    assert await plan([user("Can I talk to billing?")], TOOLS, model) == \
        ToolCall("transfer", {"target": "billing"})
    assert await plan([user("OK bye now.")], TOOLS, model) == ToolCall("hangup", {})
    assert await plan([user("Do you sell vitamins?")], TOOLS, model) is None
    assert model.asked == []


HOURS = ToolSpec(name="opening_hours", url="http://x",
                 description="Tell the opening hours of the shop on a given day.",
                 parameters={"type": "object", "required": ["day"], "properties": {
                     "day": {"type": "string", "enum": ["monday", "saturday"]}}})


async def test_other_arguments_come_from_the_model_under_the_schema() -> None:
    model = Model('{"day": "saturday"}')
    call = await plan([user("Are you open on Saturday?")], (HOURS,), model)
    assert call == ToolCall("opening_hours", {"day": "saturday"})
    [(messages, schema)] = model.asked
    assert schema == argument_schema(HOURS)
    assert messages[-1] == user("Are you open on Saturday?")


@pytest.mark.parametrize("text", ["not json", '["saturday"]'])
async def test_no_json_object_from_the_model_means_no_call(text: str) -> None:
    assert await plan([user("Are you open on Saturday?")], (HOURS,), Model(text)) is None


async def test_a_slow_model_is_given_up_on_and_stopped(monkeypatch) -> None:
    monkeypatch.setattr(choice, "ARGUMENTS_TIMEOUT", 0.05)
    model = Model(None)
    assert await plan([user("Are you open on Saturday?")], (HOURS,), model) is None
    assert model.closed


def test_only_the_adapter_turns_tool_results_and_keys_into_text() -> None:
    history = [Message(role="system", content="Be brief."), user("Balance?"),
               Message(role="keypad", content="123#"),
               Message(role="tool", content=json.dumps({"ok": True}))]
    assert for_template(history) == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Balance?"},
        {"role": "user", "content": "The caller pressed these keys on the keypad: 1 2 3 #"},
        {"role": "user", "content": 'Tool result: {"ok": true}'}]
    assert '"Tool result:"' in tool_prompt(TOOLS)


def test_hanging_up_in_plain_words() -> None:
    assert choose("I want to end the call now.", TOOLS).tool.name == "hangup"


async def test_the_tool_bench_measures_the_planner() -> None:
    from appliance.bench import tools as toolbench

    billing = toolbench.Case("Can I speak to someone in billing?", "transfer",
                             {"target": "billing"})
    outcome = await toolbench.run_case(Model("Hello."), billing, toolbench.TOOLS)
    assert outcome.right and outcome.valid and outcome.arguments_right
    assert outcome.arguments == {"target": "billing"}
    result = toolbench.CASES[-1]  # a tool result: answered in words
    assert result.role == "tool"
    outcome = await toolbench.run_case(Model("We open at nine."), result, toolbench.TOOLS)
    assert outcome.right and outcome.got is None and outcome.text == "We open at nine."


def test_a_transfer_without_targets_is_refused() -> None:
    with pytest.raises(ValueError, match="target"):
        ToolSpec(name="transfer", kind="transfer")


def test_asking_about_staff_is_not_asking_to_be_put_through() -> None:
    from agent.tools.choice import choose
    from agent.tools.spec import ToolSpec

    transfer = ToolSpec(name="transfer", kind="transfer", description="Put the caller "
                        "through to a person.", targets={"front desk": "101"})
    for question in ("Can you tell me about your staff?", "Is Dr. Chen a family doctor?",
                     "Does a nurse do the vaccinations?"):
        assert choose(question, [transfer]) is None, question
    for request in ("Can I talk to the pharmacist?", "Put me through to the front desk.",
                    "I'd like to speak to a nurse."):
        assert choose(request, [transfer]) is not None, request
