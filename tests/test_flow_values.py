"""Slot parsers: spoken dates, times, phone numbers, names, choices and yes/no, written as
a phone transcriber writes them."""

from __future__ import annotations

from datetime import date, time

import pytest

from agent.flows.dates import parse_date, speak_date
from agent.flows.spec import parse_hours
from agent.flows.times import SpokenTime, parse_time, speak_time
from agent.flows.values import (
    is_question,
    parse_choice,
    parse_name,
    parse_phone,
    parse_yes_no,
    speak_phone,
    wants_out,
)
from agent.flows.words import ordinal_suffix, tokens

SUNDAY = date(2026, 11, 29)  # a Sunday; Tuesday is the 1st of December


@pytest.mark.parametrize(("said", "expected"), [
    ("next Tuesday", date(2026, 12, 1)),
    ("Tuesday.", date(2026, 12, 1)),
    ("on tuesday please", date(2026, 12, 1)),
    ("this Friday", date(2026, 12, 4)),
    ("Sunday", date(2026, 12, 6)),  # never today: the next one
    ("Tuesday next week", date(2026, 12, 1)),
    ("a week on Tuesday", date(2026, 12, 8)),
    ("the third", date(2026, 12, 3)),
    ("The 3rd.", date(2026, 12, 3)),
    ("on the 30th", date(2026, 11, 30)),
    ("the twenty first", date(2026, 12, 21)),
    ("the twenty-first", date(2026, 12, 21)),
    ("December 3rd", date(2026, 12, 3)),
    ("December the third", date(2026, 12, 3)),
    ("3rd of December", date(2026, 12, 3)),
    ("the 3 December", date(2026, 12, 3)),
    ("dec 3", date(2026, 12, 3)),
    ("Tuesday the 1st of December", date(2026, 12, 1)),
    ("Tuesday the 8th", date(2026, 12, 8)),
    ("Tuesday the 3rd", date(2027, 8, 3)),  # the 3rd is a Tuesday again in months
    ("March 3rd", date(2027, 3, 3)),  # already past this year: next year's
    ("November 2nd", date(2027, 11, 2)),
    ("May 5th", date(2027, 5, 5)),
    ("December 3rd 2027", date(2027, 12, 3)),
    ("tomorrow", date(2026, 11, 30)),
    ("Tomorrow morning.", date(2026, 11, 30)),
    ("the day after tomorrow", date(2026, 12, 1)),
    ("today", SUNDAY),
    ("in two weeks", date(2026, 12, 13)),
    ("in 3 days", date(2026, 12, 2)),
    ("in a week", date(2026, 12, 6)),
    ("12/3", date(2026, 12, 3)),
    ("2026-12-24", date(2026, 12, 24)),
    ("friday at 2", date(2026, 12, 4)),
    ("Wed.", date(2026, 12, 2)),
    ("Tuesday, December 1st.", date(2026, 12, 1)),
    ("December 1st, 2026", date(2026, 12, 1)),
    ("December first", date(2026, 12, 1)),
    ("At 2.30 p.m. on Tuesday, December 1st.", date(2026, 12, 1)),
    ("Monday or Tuesday", date(2026, 11, 30)),
])
def test_dates(said: str, expected: date) -> None:
    assert parse_date(said, SUNDAY) == expected


@pytest.mark.parametrize("said", ["I may come later", "hello", "what are your hours",
                                  "in December", "the number is 555 213 4567", "",
                                  "at two thirty", "February 30th"])
def test_not_dates(said: str) -> None:
    assert parse_date(said, SUNDAY) is None


def test_a_day_alone_counts_only_when_asked_or_with_the() -> None:
    assert parse_date("3rd", SUNDAY, asked=True) == date(2026, 12, 3)
    assert parse_date("3rd", SUNDAY, asked=False) is None
    assert parse_date("book me the first available", SUNDAY, asked=True) is not None
    assert parse_date("for the 3rd please", SUNDAY, asked=False) == date(2026, 12, 3)
    assert parse_date("first of all I need a doctor", SUNDAY, asked=True) is None


def test_dates_roll_over_the_end_of_the_month_and_year() -> None:
    assert parse_date("the 31st", date(2026, 11, 29)) == date(2026, 12, 31)
    assert parse_date("the 31st", date(2027, 2, 1)) == date(2027, 3, 31)
    assert parse_date("the second", date(2026, 12, 29)) == date(2027, 1, 2)
    assert parse_date("Monday", date(2026, 12, 30)) == date(2027, 1, 4)


def test_dates_are_said_back() -> None:
    assert speak_date(date(2026, 12, 1), SUNDAY) == "Tuesday the 1st of December"
    assert speak_date(date(2027, 1, 22), SUNDAY) == "Friday the 22nd of January 2027"
    assert [ordinal_suffix(d) for d in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "31st"]


@pytest.mark.parametrize(("said", "expected"), [
    ("two thirty", time(14, 30)),
    ("Two thirty.", time(14, 30)),
    ("half past two", time(14, 30)),
    ("2:30 pm", time(14, 30)),
    ("2:30pm", time(14, 30)),
    ("2.30 p.m.", time(14, 30)),
    ("2.30 P.M.", time(14, 30)),
    ("at 2:30 in the afternoon", time(14, 30)),
    ("noon", time(12, 0)),
    ("at midday", time(12, 0)),
    ("12 noon", time(12, 0)),
    ("quarter to three", time(14, 45)),
    ("a quarter past ten", time(10, 15)),
    ("ten past four", time(16, 10)),
    ("twenty five to six", time(17, 35)),
    ("at 2", time(14, 0)),
    ("2pm", time(14, 0)),
    ("2 p.m.", time(14, 0)),
    ("ten o'clock", time(10, 0)),
    ("9 in the morning", time(9, 0)),
    ("nine am", time(9, 0)),
    ("eleven fifteen", time(11, 15)),
    ("two oh five", time(14, 5)),
    ("two forty-five", time(14, 45)),
    ("14:00", time(14, 0)),
    ("9:00 a.m.", time(9, 0)),
    ("2 30 pm", time(14, 30)),
    ("three", time(15, 0)),
    ("8", time(8, 0)),
    ("midnight", time(0, 0)),
    ("quarter to one", time(12, 45)),
    ("how about four thirty", time(16, 30)),
    ("At 2.30 p.m. on Tuesday, December 1st.", time(14, 30)),
    ("14.30", time(14, 30)),
    ("Half past 2.", time(14, 30)),
    ("10 to 3", time(14, 50)),
    ("around 3", time(15, 0)),
    ("2:30 PM", time(14, 30)),
    ("230.", time(14, 30)),  # whisper-tiny-en's "two thirty"
    ("230 PM.", time(14, 30)),
    ("1030", time(10, 30)),
    ("at 1145 am", time(11, 45)),
    ("half pass two.", time(14, 30)),
])
def test_times(said: str, expected: time) -> None:
    spoken = parse_time(said)
    assert spoken is not None, said
    assert spoken.resolve() == expected


@pytest.mark.parametrize("said", ["hello", "five five five two one three four", "Tuesday.",
                                  "the third", "555-213-4567", "", "999", "2575"])
def test_not_times(said: str) -> None:
    assert parse_time(said) is None


def test_a_time_not_asked_for_must_be_unmistakable() -> None:
    assert parse_time("Tuesday at two", asked=False) == SpokenTime(2, 0)
    assert parse_time("two thirty", asked=False) == SpokenTime(2, 30)
    assert parse_time("half past two", asked=False) == SpokenTime(2, 30)
    assert parse_time("I need one appointment", asked=False) is None
    assert parse_time("I need one appointment", asked=True) is not None
    assert parse_time("my number is two one three five five", asked=False) is None
    assert parse_time("230", asked=False) is None and parse_time("2175", asked=True) is None
    assert parse_time("230 pm", asked=False) == SpokenTime(2, 30, "pm")
    assert parse_time("5552134567") is None


def test_morning_or_afternoon_follows_what_is_open() -> None:
    morning_only = parse_hours({"mon-fri": "07:00-12:00"})
    two = parse_time("two")
    assert two is not None and two.resolve() == time(14, 0)
    five = parse_time("five")
    assert five is not None
    assert five.resolve(lambda t: any(s <= t.hour * 60 < e for s, e in morning_only[0])) \
        == time(17, 0)  # neither fits: the more likely one
    seven = parse_time("seven")
    assert seven is not None and seven.resolve() == time(7, 0)
    assert seven.resolve(lambda t: t.hour >= 12) == time(19, 0)


def test_times_are_said_back() -> None:
    assert [speak_time(t) for t in (time(14, 30), time(9, 0), time(12, 0), time(0, 0),
                                    time(12, 15), time(0, 5))] == [
        "2:30 pm", "9 am", "noon", "midnight", "12:15 pm", "12:05 am"]


@pytest.mark.parametrize(("said", "digits"), [
    ("five five five, two one three, four five six seven", "5552134567"),
    ("Five-five-five, two-one-three, four-five-six-seven.", "5552134567"),
    ("555-213-4567", "5552134567"),
    ("555 213 4567", "5552134567"),
    ("(555) 213-4567", "5552134567"),
    ("+1 555 213 4567", "15552134567"),
    ("double five five, two one three, four five six seven", "5552134567"),
    ("five five five two one three triple seven", "555213777"),
    ("oh one two three four five six seven", "01234567"),
    ("zero two zero, seven nine four six, oh oh one one", "02079460011"),
    ("my number is 5552134567 thanks", "5552134567"),
    ("it's 555, 213, 4567", "5552134567"),
    ("1 800 five five five one two three four", "18005551234"),
    ("one eight hundred five five five one two three four", "18005551234"),
    ("four five six", "456"),
    ("A 1 2 3 4 5 6 7 8 9", "0123456789"),  # whisper-tiny-en's "oh one two three …"
    ("Double 5 5 2 1 3 4 5 6 7", "5552134567"),
    ("5 5 5, a one, o, 7 7 8 8.", "5550107788"),  # Moonshine's "five five five, oh one oh …"
])
def test_phone_numbers(said: str, digits: str) -> None:
    assert parse_phone(said) == digits


def test_a_phone_number_is_the_longest_run_of_digits() -> None:
    assert parse_phone("on the 3rd at 2:30, my number is 555 213 4567") == "5552134567"
    assert parse_phone("hello there") is None
    assert parse_phone("o k") is None  # "o" counts as zero only inside a number
    # "a" only where a number is being said: before a digit, at the start or after digits
    assert parse_phone("I need a one way ticket, number 555 213 4567") == "5552134567"
    assert parse_phone("555 213 4567 a day") == "5552134567"


def test_phone_numbers_are_read_back_in_groups() -> None:
    assert speak_phone("5552134567") == "5 5 5, 2 1 3, 4 5 6 7"
    assert speak_phone("02079460011") == "0 2 0, 7 9 4, 6 0 0, 1 1"
    assert speak_phone("1234567") == "1 2 3, 4 5 6 7"


@pytest.mark.parametrize(("said", "name"), [
    ("my name is Maria Gonzalez", "Maria Gonzalez"),
    ("My name is Maria Gonzalez.", "Maria Gonzalez"),
    ("my name's maria gonzalez", "Maria Gonzalez"),
    ("Hi, this is Maria Gonzalez calling about an appointment", "Maria Gonzalez"),
    ("It's Gonzalez, G O N Z A L E Z", "Gonzalez"),
    ("It's Gonzales, G-O-N-Z-A-L-E-Z.", "Gonzalez"),
    ("Maria Gonzales, that's G, O, N, Z, A, L, E, Z", "Maria Gonzalez"),
    ("Maria Gonzalez.", "Maria Gonzalez"),
    ("yes, Maria", "Maria"),
    ("Um, it's Maria.", "Maria"),
    ("Maria Gonzalez, 555 213 4567", "Maria Gonzalez"),
    ("Sean O'Brien", "Sean O'Brien"),
    ("mary-jane watson please", "Mary-Jane Watson"),
    ("my name is Maria Gonzalez and my number is 555", "Maria Gonzalez"),
    ("You can call me Al.", "Al"),
    ("Maria de la Cruz", "Maria de la Cruz"),
    ("My name is María González.", "María González"),
    ("zoë o'neill", "Zoë O'Neill"),
])
def test_names(said: str, name: str) -> None:
    assert parse_name(said) == name


@pytest.mark.parametrize("said", ["I want to book an appointment", "It's Tuesday", "yes",
                                  "what are your opening hours", "555 213 4567",
                                  "I'd like to speak to someone about my bill please"])
def test_not_names(said: str) -> None:
    assert parse_name(said) is None


def test_a_name_not_asked_for_needs_an_introduction() -> None:
    assert parse_name("Maria Gonzalez.", asked=False) is None
    assert parse_name("Hi, I'm Maria, I'd like to book", asked=False) == "Maria"
    assert parse_name("Hi, I'm looking to book", asked=False) is None
    assert parse_name("my name is maria", asked=False) == "Maria"


def test_choices() -> None:
    people = {"dr_smith": ("doctor smith", "smith"), "dr_patel": ("doctor patel", "patel"),
              "front_desk": ("reception", "front desk")}
    assert parse_choice("a message for Doctor Smith please", people, asked=False) == "dr_smith"
    assert parse_choice("Dr. Patel.", people) == "dr_patel"
    assert parse_choice("for the reception", people) == "front_desk"
    assert parse_choice("the desk", people) == "front_desk"  # a word of it, when asked
    assert parse_choice("the desk", people, asked=False) is None
    assert parse_choice("doctor", people) is None  # two doctors: no single winner
    assert parse_choice("nobody", people) is None


@pytest.mark.parametrize(("said", "answer"), [
    ("yes", True), ("Yes.", True), ("yeah that's right", True), ("That's correct.", True),
    ("yes please", True), ("sounds good", True), ("perfect", True), ("uh huh", True),
    ("go ahead", True), ("no problem", True),
    ("no", False), ("No.", False), ("nope", False), ("no, I said Wednesday", False),
    ("that's not right", False), ("wait, the time is wrong", False),
    ("hmm", None), ("what", None), ("", None),
])
def test_yes_or_no(said: str, answer: bool | None) -> None:
    assert parse_yes_no(said) is answer


def test_leaving_and_asking() -> None:
    assert wants_out("Never mind.") and wants_out("oh, cancel that") and wants_out("forget it")
    assert not wants_out("I want to cancel my appointment")
    assert is_question("What are your opening hours?") and is_question("where are you")
    assert not is_question("Tuesday.")


def test_tokens_as_whisper_writes_them() -> None:
    assert tokens("2.30 p.m. on Tuesday.") == ["2:30", "pm", "on", "tuesday"]
    assert tokens("Five-five-five") == ["five", "five", "five"]
    assert tokens("ten o\u2019clock") == ["ten", "oclock"]


def test_opening_hours_parse_and_refuse() -> None:
    hours = parse_hours({"mon-fri": "08:00-18:00", "sat": "9am-1pm", "sun": "closed"})
    assert hours[0] == ((480, 1080),) and hours[4] == ((480, 1080),)
    assert hours[5] == ((540, 780),) and hours[6] == ()
    split = parse_hours({"weekdays": "8:00-12:00, 13:00-17:30"})
    assert split[2] == ((480, 720), (780, 1050)) and 5 not in split
    assert parse_hours({"fri-mon": "10:00-11:00"}).keys() == {4, 5, 6, 0}
    for bad in ({"mon-fry": "08:00-18:00"}, {"mon": "8-"}, {"mon": "18:00-08:00"},
                {"mon": "25:00-26:00"}, {"mon": "noon-5pm"}, {"mon": "8", "monday": "9-10"}):
        with pytest.raises(ValueError):
            parse_hours(bad)


@pytest.mark.parametrize("said, hour", [("At the leaven.", 11), ("tree thirty", 3),
                                        ("elevan please", 11)])
def test_an_hour_word_misheard_counts_only_when_a_time_was_asked(said, hour) -> None:
    assert parse_time(said, asked=True).hour == hour
    assert parse_time(said, asked=False) is None
    assert parse_time("I'm leaving with my credit card", asked=True) is None


@pytest.mark.parametrize("said, name", [("My name is A. Khan.", "A Khan"),
                                        ("My name is J. R. Smith.", "J R Smith"),
                                        ("My name is A.", None), ("I am A. Okay?", None)])
def test_an_initial_is_part_of_a_name_but_not_a_name_alone(said, name) -> None:
    assert parse_name(said, asked=True) == name
