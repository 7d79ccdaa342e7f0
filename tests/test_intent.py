"""Tool choice from the caller's words: scripted requests, right tool or plain talk."""

from __future__ import annotations

import pytest

from agent.tools.choice import choose, known_arguments, spoken_digits, transfer_target
from agent.tools.spec import argument_schema
from agent.tools.webhook import ToolSpec

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


def test_a_tool_result_is_never_taken_for_a_new_request() -> None:
    """Digits inside "(Tool result: …)" must not re-run the tool (it would loop)."""
    import asyncio

    from agent.speech.chat_model import LlamaChatModel

    class Model(LlamaChatModel):
        def __init__(self) -> None:  # no weights: only the decision is under test
            self.streamed = False

        async def stream(self, messages, pause=None, grammar=None):
            self.streamed = True
            yield "It arrives on Friday."

    async def run() -> list:
        model = Model()
        history = [{"role": "user", "content": "Where is my order 456?"},
                   {"role": "user", "content": '(Tool result: {"eta": "2 days", "id": 456})'}]
        return [item async for item in model.respond(history, TOOLS)]

    assert asyncio.run(run()) == ["It arrives on Friday."]


def test_hanging_up_in_plain_words() -> None:
    assert choose("I want to end the call now.", TOOLS).tool.name == "hangup"
