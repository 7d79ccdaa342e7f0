"""The flow engine as a synchronous decider: words in, what to say and which tool to call
out, on a fixed local date and time."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from agent.flows import FlowRunner, FlowSpec, SlotSpec, parse_hours
from agent.flows.runner import AMEND_WINDOW
from agent.flows.start import choose_flow
from agent.tools.spec import ToolSpec

NOW = datetime(2026, 11, 29, 10, 0)  # Sunday morning
BOOK_TOOL = ToolSpec(name="book_appointment", url="http://127.0.0.1:9/book", parameters={
    "type": "object", "additionalProperties": False,
    "required": ["date", "time", "name", "phone"],
    "properties": {"date": {"type": "string", "format": "date"},
                   "time": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
                   "name": {"type": "string"}, "phone": {"type": "string"}}})
MESSAGE_TOOL = ToolSpec(name="take_message", url="http://127.0.0.1:9/msg", parameters={
    "type": "object", "properties": {"for": {"type": "string"}, "message": {"type": "string"},
                                     "phone": {"type": "integer"}}})
TRANSFER = ToolSpec(name="transfer", kind="transfer", targets={"front desk": "101"})
HOURS = parse_hours({"mon-fri": "08:00-18:00", "sat": "09:00-13:00"})
BOOK = FlowSpec(
    name="book", description="Book an appointment.", cues=("book", "make an appointment"),
    tool="book_appointment", hours=HOURS,
    slots=(SlotSpec("date", "date"), SlotSpec("time", "time"), SlotSpec("name", "name"),
           SlotSpec("phone", "phone")),
    confirm="So that is {date} at {time} for {name}, is that right?",
    done="You are booked for {date} at {time}.")
MESSAGE = FlowSpec(
    name="message", description="Take a message for someone.", cues=("message",),
    tool="take_message", takes_message=True, recipient="for",
    slots=(SlotSpec("for", "choice", choices={"dr_smith": ("doctor smith", "smith"),
                                              "billing": ("accounts",)}),
           SlotSpec("message", "text", read_back=False), SlotSpec("name", "name"),
           SlotSpec("phone", "phone")))
RESCHEDULE = FlowSpec(
    name="reschedule", description="Move an appointment to another day.",
    cues=("reschedule", "move my appointment"),
    slots=(SlotSpec("old_date", "date", prompt="Which day is your appointment now?"),
           SlotSpec("new_date", "date", prompt="And which day would you like instead?")),
    done="Done: moved from {old_date} to {new_date}.")


def runner(*flows: FlowSpec, tools=(BOOK_TOOL, MESSAGE_TOOL), now: datetime = NOW
           ) -> FlowRunner:
    return FlowRunner(flows or (BOOK, MESSAGE), tools, now=lambda: now)


def test_no_flow_for_other_words() -> None:
    flows = runner()
    assert flows.step("What are your opening hours?") is None
    assert flows.step("hello there") is None
    assert flows.active is None


def test_a_booking_with_a_correction_ends_in_the_tool_call() -> None:
    flows = runner()
    step = flows.step("Hi, I'd like to book an appointment")
    assert step is not None and step.say == "Which day would suit you?" and not step.done
    assert flows.step("next Tuesday").say == "And at what time?"
    assert flows.step("two thirty").say == "May I have your name, please?"
    assert flows.step("my name is Maria Gonzalez").say == \
        "What is the best number to reach you on?"
    step = flows.step("five five five, two one three, four five six seven")
    assert step.say == ("So that is Tuesday the 1st of December at 2:30 pm for Maria "
                        "Gonzalez, is that right?")
    step = flows.step("No, I said Wednesday")
    assert step.say == ("So that is Wednesday the 2nd of December at 2:30 pm for Maria "
                        "Gonzalez, is that right?")
    step = flows.step("yes")
    assert step.call is not None and step.done and step.say == ""
    assert step.call.name == "book_appointment"
    assert step.call.arguments == {"date": "2026-12-02", "time": "14:30",
                                   "name": "Maria Gonzalez", "phone": "5552134567"}
    assert flows.active is None
    after = flows.tool_done(ok=True, spoken=False)
    assert after.say == "You are booked for Wednesday the 2nd of December at 2:30 pm."
    assert after.done and after.message_for is None


def test_values_said_early_are_kept_and_not_asked_again() -> None:
    flows = runner()
    step = flows.step("Can I book an appointment for Tuesday at 2:30 pm? This is Maria Gonzalez.")
    assert step.say == "What is the best number to reach you on?"
    step = flows.step("555 213 4567")
    assert "Tuesday the 1st of December at 2:30 pm for Maria Gonzalez" in step.say


def test_closed_days_hours_and_the_past_are_refused_with_a_reason() -> None:
    flows = runner()
    flows.step("I want to book an appointment")
    assert flows.step("Sunday").say == "Sorry, we are closed on Sundays. " \
        "Which day would suit you?"
    assert flows.step("the 20th of November 2026").say == \
        "Sorry, that day has already passed. Which day would suit you?"
    assert flows.step("Saturday").say == "And at what time?"
    assert flows.step("4 pm").say == \
        "Sorry, on Saturdays we are open from 9 am to 1 pm. And at what time?"
    # "eleven" alone: the morning fits the opening hours
    assert flows.step("eleven").say == "May I have your name, please?"


def test_a_new_date_rechecks_the_time() -> None:
    flows = runner()
    flows.step("book an appointment on Monday at 5 pm")
    flows.step("Maria")
    flows.step("5552134567")
    step = flows.step("no, make it Saturday")
    assert step.say == "Sorry, on Saturdays we are open from 9 am to 1 pm. And at what time?"
    step = flows.step("ten")
    assert "Saturday the 5th of December at 10 am for Maria" in step.say


def test_morning_or_afternoon_is_chosen_by_the_hours() -> None:
    flows = runner()
    flows.step("book an appointment on Monday")
    flows.step("at 9")  # 9 pm is closed: 9 am
    flows.step("Maria")
    flows.step("5552134567")
    assert flows.step("yes").call.arguments["time"] == "09:00"


def test_no_then_naming_the_slot_asks_it_again() -> None:
    flows = runner()
    flows.step("book an appointment for Tuesday at two")
    flows.step("Maria Gonzalez")
    flows.step("5552134567")
    assert flows.step("No, the number is wrong").say == \
        "What is the best number to reach you on?"
    step = flows.step("five five five two one three four five six eight")
    assert step.say.startswith("So that is Tuesday")
    assert flows.step("yes").call.arguments["phone"] == "5552134568"


def test_no_without_saying_what_asks_what_to_change() -> None:
    flows = runner()
    flows.step("book an appointment for Tuesday at two")
    flows.step("Maria Gonzalez")
    flows.step("5552134567")
    assert flows.step("no").say == "Sorry about that. What should I change?"
    assert flows.step("the time").say == "And at what time?"
    assert flows.step("three").say.startswith("So that is Tuesday the 1st of December at 3 pm")


def test_the_number_corrected_in_one_go() -> None:
    flows = runner()
    flows.step("book an appointment for Tuesday at two")
    flows.step("Maria Gonzalez")
    flows.step("5552134567")
    step = flows.step("no, the number is 555 999 0000")
    assert step.say.startswith("So that is")
    assert flows.step("yes").call.arguments["phone"] == "5559990000"


def test_never_mind_leaves_the_flow() -> None:
    flows = runner()
    flows.step("I'd like to book an appointment")
    step = flows.step("oh, never mind")
    assert step.done and step.call is None and step.say.startswith("All right")
    assert flows.active is None
    assert flows.step("What time do you open?") is None


def test_repeated_failures_give_up_and_offer_a_transfer() -> None:
    flows = runner(BOOK, tools=(BOOK_TOOL, TRANSFER))
    flows.step("book an appointment")
    assert flows.step("blue").say == "Sorry, I did not catch that. Which day would suit you?"
    assert flows.step("green").say.startswith("Sorry, I did not catch that.")
    step = flows.step("purple")
    assert step.say == "Sorry, I am having trouble understanding. " \
        "Would you like me to put you through to someone?"
    step = flows.step("yes please")
    assert step.call is not None and step.call.name == "transfer"
    assert step.call.arguments == {"target": "front desk"} and step.done


def test_giving_up_without_a_transfer_ends_the_flow() -> None:
    flows = runner()
    flows.step("book an appointment")
    for word in ("blue", "green"):
        flows.step(word)
    step = flows.step("purple")
    assert step.done and step.say == "Sorry, I am having trouble understanding."
    assert flows.active is None


def test_a_question_on_the_way_goes_to_the_agent_and_the_flow_waits() -> None:
    flows = runner()
    flows.step("book an appointment")
    assert flows.step("Where are you located?") is None
    assert flows.active == "book"
    assert flows.step("Tuesday").say == "And at what time?"


def test_a_message_for_a_named_person() -> None:
    flows = runner()
    step = flows.step("Can I leave a message for Doctor Smith?")
    assert step.say == "What would you like the message to say?"
    assert flows.step("Please call me back about my results tomorrow at 3.").say == \
        "May I have your name, please?"
    flows.step("It's Maria Gonzalez")
    step = flows.step("oh one two three four five six seven eight")
    assert step.say == ("So that is dr smith for Maria Gonzalez, with the number "
                        "0 1 2, 3 4 5, 6 7 8. Is that right?")
    step = flows.step("yes")
    assert step.call.arguments == {
        "for": "dr_smith", "message": "Please call me back about my results tomorrow at 3.",
        "name": "Maria Gonzalez", "phone": 12345678}
    done = flows.tool_done(ok=True, spoken=True)
    assert done.say == "" and done.message_for == "dr smith"


def test_a_failed_tool_takes_no_message() -> None:
    flows = runner()
    flows.step("I want to leave a message for billing")
    flows.step("The invoice is wrong.")
    flows.step("Maria")
    flows.step("5552134567")
    assert flows.step("yes").call is not None
    done = flows.tool_done(ok=False, spoken=False)
    assert done.done and done.message_for is None and done.say == ""


def test_two_dates_fill_in_order_and_corrections_name_one() -> None:
    flows = runner(RESCHEDULE, tools=())
    step = flows.step("I need to reschedule my appointment on Tuesday")
    assert step.say == "And which day would you like instead?"
    step = flows.step("Thursday")
    assert step.say == "So that is Tuesday the 1st of December, Thursday the 3rd of " \
        "December. Is that right?"
    step = flows.step("no, the new date is Friday")
    assert "Friday the 4th of December" in step.say and "Tuesday" in step.say
    step = flows.step("correct")
    assert step.done and step.call is None
    assert step.say == "Done: moved from Tuesday the 1st of December to Friday the 4th of " \
        "December."


def test_a_correction_naming_the_day_it_replaces_changes_that_slot() -> None:
    flows = runner(RESCHEDULE, tools=())
    flows.step("I need to reschedule my appointment on Monday")
    step = flows.step("Wednesday")
    assert "Monday the 30th of November, Wednesday the 2nd" in step.say
    step = flows.step("No, I said Thursday, not Wednesday.")  # the new day, not the old
    assert step.say == "So that is Monday the 30th of November, Thursday the 3rd of " \
        "December. Is that right?"


def test_a_denied_day_is_not_taken() -> None:
    flows = runner()
    flows.step("I'd like to book an appointment on Monday please")
    step = flows.step("Sorry, I made a mistake. Not Monday, Thursday please.")
    assert step.say == "And at what time?"
    flows.step("eleven")
    flows.step("Peter Novak")
    assert "Thursday the 3rd of December at 11" in flows.step("555 902 3344").say
    assert flows.step("not Monday") is not None and flows.values["date"].day == 3


def test_a_dropped_turn_is_rolled_back() -> None:
    flows = runner()
    flows.step("book an appointment")
    flows.step("Tuesday")
    flows.rollback()  # "Tuesday" was a speculative turn the caller went on from
    assert flows.step("Wednesday at 3").say == "May I have your name, please?"
    flows.step("Maria")
    assert "Wednesday" in flows.step("5552134567").say
    start = runner()
    start.step("book an appointment")
    start.rollback()
    assert start.active is None


def test_today_at_a_time_already_past_is_refused() -> None:
    flows = runner(now=datetime(2026, 11, 30, 15, 0))  # Monday 3 pm
    flows.step("book an appointment for today")
    assert flows.step("2 pm").say == "Sorry, that time has already passed today. " \
        "And at what time?"
    assert flows.step("4 pm").say == "May I have your name, please?"
    late = runner(now=datetime(2026, 11, 30, 18, 30))
    late.step("book an appointment")
    assert late.step("today").say.startswith("Sorry, we are closed for the rest of today.")


def test_the_flow_to_start_is_the_best_match() -> None:
    cancel = FlowSpec(name="cancel", description="Cancel an appointment.", cues=("cancel",))
    flows = (BOOK, cancel, MESSAGE)
    assert choose_flow("I need to cancel my appointment", flows) is cancel
    assert choose_flow("I'd like to make an appointment", flows) is BOOK
    assert choose_flow("can you take a message", flows) is MESSAGE
    assert choose_flow("is there parking near the clinic", flows) is None


@pytest.mark.parametrize("said", ["ok", "I think so", "hmm what"])
def test_an_unclear_confirmation_asks_again(said: str) -> None:
    flows = runner()
    flows.step("book an appointment Tuesday at 2, this is Maria")
    assert flows.step("5552134567").say.startswith("So that is")
    step = flows.step(said)
    if said == "ok":
        assert step.call is not None
    else:
        assert step.say == "Sorry, is that right? Please say yes or no."


def test_weekday_arguments_when_the_tool_lists_weekdays() -> None:
    tool = ToolSpec(name="book", url="http://x/", parameters={
        "type": "object", "properties": {"day": {"type": "string",
                                                 "enum": ["monday", "tuesday"]}}})
    flow = FlowSpec(name="book", cues=("book",), tool="book", confirm="",
                    slots=(SlotSpec("day", "date"),))
    flows = FlowRunner((flow,), (tool,), now=lambda: NOW)
    step = flows.step("book me in on Tuesday")
    assert step.call is not None and step.call.arguments == {"day": "tuesday"}


def test_fixed_phrases_are_listed_for_the_cache() -> None:
    phrases = BOOK.phrases()
    assert "Which day would suit you?" in phrases
    assert "Sorry, I did not catch that." in phrases and "And at what time?" in phrases
    assert not any("{" in p for p in phrases)
    assert "Which would you like: dr smith or billing?" in MESSAGE.phrases()


def test_a_message_may_say_never_mind_in_passing() -> None:
    flows = runner()
    flows.step("I'd like to leave a message for billing")
    step = flows.step("Never mind the first invoice, the second one is wrong.")
    assert step.say == "May I have your name, please?"
    step = flows.step("Forget it.")
    assert step.done and flows.active is None


def test_a_value_said_after_a_self_correction_wins() -> None:
    flows = runner()
    flows.step("book an appointment")
    assert flows.step("Tuesday, no, sorry, Thursday at ten").say == \
        "May I have your name, please?"
    assert str(flows.values["date"]) == "2026-12-03" and str(flows.values["time"]) == "10:00:00"
    flows.step("It's Maria, I mean Mary")
    assert flows.values["name"] == "Mary"


def test_the_local_clock_follows_the_agents_time_zone() -> None:
    from datetime import UTC, timedelta

    from agent.flows import local_clock

    utc = datetime.now(UTC).replace(tzinfo=None)
    tokyo = local_clock("Asia/Tokyo")()
    assert tokyo.tzinfo is None
    assert abs((tokyo - utc) - timedelta(hours=9)) < timedelta(seconds=5)
    assert abs(local_clock("")() - datetime.now()) < timedelta(seconds=5)


def test_a_question_naming_the_flows_tool_stays_in_the_flow() -> None:
    flows = runner()
    flows.step("book an appointment")
    assert flows.tool_names == {"book_appointment", "take_message"}
    # the model must not book from these words: the flow asks again
    step = flows.step("What time can I book the appointment?")
    assert step is not None and step.say.endswith("Which day would suit you?")


def _booked(flows: FlowRunner) -> None:
    flows.step("I'd like to book an appointment on Monday please")
    flows.step("eleven")
    flows.step("Peter Novak")
    flows.step("555 902 3344")
    step = flows.step("yes")
    assert step.call is not None and not step.call.amends
    flows.tool_done(ok=True, spoken=False)


def test_a_correction_just_after_the_tool_ran_reopens_the_flow() -> None:
    flows = runner()
    _booked(flows)
    step = flows.step("Sorry, I made a mistake. Not Monday, Thursday please.")
    assert step is not None and "Thursday the 3rd of December at 11" in step.say
    step = flows.step("yes")
    assert step.call is not None and step.call.amends
    assert step.call.arguments["date"] == "2026-12-03"


@pytest.mark.parametrize("words", [
    ["No, that's all, thank you."],  # no new value: not a correction
    ["What's your address?", "Sorry,", "Not Monday."],  # partial words keep the window open
])
def test_only_a_new_value_reopens_a_finished_flow(words: list[str]) -> None:
    flows = runner()
    _booked(flows)
    assert all(flows.step(said) is None for said in words)
    assert flows.active is None
    assert flows.step("Sorry, not Monday, Thursday please.") is not None  # still in time


def test_a_correction_long_after_the_tool_ran_is_not_taken_for_one() -> None:
    clock = [NOW]
    flows = FlowRunner((BOOK, MESSAGE), (BOOK_TOOL, MESSAGE_TOOL), now=lambda: clock[0])
    _booked(flows)
    clock[0] = NOW + AMEND_WINDOW + timedelta(seconds=1)
    assert flows.step("Sorry, not Monday, Thursday please.") is None
