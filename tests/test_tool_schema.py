"""Tool parameter schemas in `switchboard check` (appliance.config.toolschema), and why each
supported keyword is supported: the daemon's argument check or its grammar acts on it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.tools.spec import schema_errors
from appliance.config.base import ConfigIssue
from appliance.config.locator import Locator
from appliance.config.toolschema import CHECKED, FORMATS, NOTES, parameter_issues

FILE = Path("/etc/switchboard/agents/demo.yaml")
BASE = ("tools", 0, "parameters")


def issues_of(parameters: dict[str, Any]) -> list[ConfigIssue]:
    return parameter_issues(parameters, FILE, BASE, Locator())


def fields(parameters: dict[str, Any]) -> list[str]:
    return [issue.field.removeprefix("tools.0.parameters.") for issue in issues_of(parameters)]


def one(**schema: Any) -> dict[str, Any]:
    """Parameters with one property `x` of the given schema."""
    return {"type": "object", "properties": {"x": schema}, "required": ["x"]}


# Each keyword the check lets through, with a schema using it and a value breaking it.
VIOLATIONS: dict[str, tuple[dict[str, Any], Any]] = {
    "type": ({"type": "integer"}, "seven"),
    "enum": ({"enum": ["small", "large"]}, "huge"),
    "const": ({"const": "yes"}, "no"),
    "properties": ({"properties": {"n": {"type": "integer"}}}, {"n": "one"}),
    "required": ({"properties": {"n": {}}, "required": ["n"]}, {}),
    "additionalProperties": ({"additionalProperties": False}, {"other": 1}),
    "items": ({"items": {"type": "string"}}, [1]),
    "minItems": ({"minItems": 2}, ["a"]),
    "maxItems": ({"maxItems": 1}, ["a", "b"]),
    "minLength": ({"minLength": 3}, "ab"),
    "maxLength": ({"maxLength": 2}, "abc"),
    "pattern": ({"pattern": "^[0-9]+$"}, "12a"),
    "minimum": ({"minimum": 1}, 0),
    "maximum": ({"maximum": 10}, 11),
    "exclusiveMinimum": ({"exclusiveMinimum": 0}, 0),
    "exclusiveMaximum": ({"exclusiveMaximum": 10}, 10),
}


def gbnf(schema: dict[str, Any]) -> str:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    return json_schema_to_gbnf(json.dumps(schema))


# ------------------------------------------------------------------------------------------
# The supported list is what the daemon acts on
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("keyword", sorted(VIOLATIONS))
def test_each_checked_keyword_is_enforced_before_the_webhook(keyword: str) -> None:
    schema, value = VIOLATIONS[keyword]
    assert keyword in CHECKED
    assert schema_errors(schema, value), keyword
    assert issues_of(one(**schema)) == []


def test_every_checked_keyword_has_a_reason() -> None:
    assert set(CHECKED) == set(VIOLATIONS) | {"format"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_supported_formats_are_written_by_the_grammar(fmt: str) -> None:
    plain = gbnf(one(type="string"))
    assert gbnf(one(type="string", format=fmt)) != plain
    assert issues_of(one(type="string", format=fmt)) == []


@pytest.mark.parametrize("kind, keyword, value, sample", [
    ("integer", "multipleOf", 5, 7),
    ("array", "uniqueItems", True, [1, 1]),
    ("object", "minProperties", 2, {}),
    ("string", "not", {"type": "string"}, "a"),
    ("string", "default", "x", None),
])
def test_rejected_keywords_are_ignored_at_call_time(kind: str, keyword: str, value: Any,
                                                    sample: Any) -> None:
    """Neither the argument check nor the grammar acts on them, so check rejects them."""
    base = {"type": kind}
    if sample is not None:
        assert schema_errors({**base, keyword: value}, sample) == []
    assert gbnf(one(**base, **{keyword: value})) == gbnf(one(**base))
    assert fields(one(**base, **{keyword: value})) == [f"properties.x.{keyword}"]


def test_email_format_is_ignored_by_grammar_and_check() -> None:
    assert gbnf(one(type="string", format="email")) == gbnf(one(type="string"))
    assert schema_errors({"type": "string", "format": "email"}, "not an address") == []
    [issue] = issues_of(one(type="string", format="email"))
    assert issue.message == 'format "email" is not checked at call time'


def test_notes_and_the_2020_12_draft_are_accepted() -> None:
    schema = one(type="string", description="the name", title="Name", examples=["Anna"])
    schema["$comment"] = "for people"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    assert set(NOTES) <= {"description", "title", "examples", "$comment", "$schema"}
    assert issues_of(schema) == []


# ------------------------------------------------------------------------------------------
# What is reported, and where
# ------------------------------------------------------------------------------------------


def test_meta_schema_errors_in_own_words() -> None:
    [issue] = issues_of({"type": "object", "properties": {"x": {"type": "string"}},
                         "required": "x"})
    assert issue.field == "tools.0.parameters.required"
    assert issue.message == "required takes a list of parameter names, each once, got 'x'"
    assert issue.fix == "write a list of parameter names, each once, e.g. required: [name]"
    [issue] = issues_of(one(enum="small"))
    assert issue.message == "enum takes a list of the allowed values, got 'small'"
    [issue] = issues_of({"type": "object", "properties": {"x": {}}, "required": ["x", "x"]})
    assert issue.field == "tools.0.parameters.required"


def test_nested_schemas_are_walked() -> None:
    schema = one(type="array", items={"type": "object", "properties": {
        "when": {"type": "string", "format": "email"}}, "additionalProperties": {
        "type": "string", "oneOf": []}})
    assert fields(schema) == ["properties.x.items.properties.when.format",
                              "properties.x.items.additionalProperties.oneOf"]


def test_a_parameter_named_like_a_keyword() -> None:
    schema = {"type": "object", "properties": {"properties": {"type": "strin"},
                                               "type": 5}}
    found = {issue.field.removeprefix("tools.0.parameters."): issue.message
             for issue in issues_of(schema)}
    assert found.keys() == {"properties.properties.type", "properties.type"}
    assert found["properties.properties.type"].startswith("type takes one of string")
    assert found["properties.type"] == "the schema of parameter type must be a group of " \
        "key: value lines, got 5"


def test_one_issue_per_place() -> None:
    """An unsupported keyword with a wrong value is reported once, as unsupported."""
    [issue] = issues_of(one(type="string", anyOf=5))
    assert issue.field.endswith("properties.x.anyOf")
    assert "not supported" in issue.message


def test_enum_values_must_have_the_type() -> None:
    [issue] = issues_of(one(type="string", enum=["small", 2]))
    assert issue.field.endswith("properties.x.enum")
    assert issue.message.startswith("enum value 2 is not of type string")
    assert schema_errors({"type": "string", "enum": ["small", 2]}, 2)  # refused at call time
    assert issues_of(one(type=["string", "null"], enum=["a", None])) == []
    assert issues_of(one(type="integer", enum=[1, 2.0])) == []
    assert issues_of(one(type="number", enum=[1, 2.5])) == []


def test_properties_as_a_list_is_one_issue() -> None:
    [issue] = issues_of({"type": "object", "properties": ["name"], "required": ["name"]})
    assert issue.field == "tools.0.parameters.properties"
    assert issue.fix == ("write parameter names, each with its schema, e.g. properties: "
                         "{name: {type: string}}")


def test_required_without_properties() -> None:
    [issue] = issues_of({"type": "object", "required": ["name"]})
    assert issue.fix == "add name to properties, or remove it from required"


def test_schema_true_and_other_drafts() -> None:
    assert fields(one(type="array", items=True)) == ["properties.x.items"]
    assert fields({"$schema": "http://json-schema.org/draft-07/schema#",
                   "type": "object"}) == ["$schema"]


@pytest.mark.parametrize("pattern, kind", [
    ("[0-9]{4}", "whole value"),
    ("^[0-9]{4}", "whole value"),
    ("^(?:a|b)$", "(?...) group"),
    ("^([0-9]$", "not a valid regular expression"),
])
def test_patterns_the_grammar_cannot_follow(pattern: str, kind: str) -> None:
    [issue] = issues_of(one(type="string", pattern=pattern))
    assert kind in issue.message


def test_grammar_refuses_what_check_rejects() -> None:
    """The patterns rejected above really break the grammar at call time."""
    for pattern in ("[0-9]{4}", "^(?:a|b)$"):
        with pytest.raises(AssertionError):
            gbnf(one(type="string", pattern=pattern))
    gbnf(one(type="string", pattern="^[0-9]{4}$"))


# ------------------------------------------------------------------------------------------
# The fixes are themselves valid
# ------------------------------------------------------------------------------------------


def applied(schema: dict[str, Any], issue: ConfigIssue) -> dict[str, Any]:
    """`schema` with the fix's first "key: value" (after write, e.g. or quotes:) in place of
    what the issue points at (a key under properties.x)."""
    found = re.search(r'(?:write|e\.g\.|quotes:) ([\w$]+: (?:"[^"]*"|[^\s,]+))', issue.fix)
    assert found, issue.fix
    [(key, value)] = yaml.safe_load("{" + found.group(1) + "}").items()
    place = issue.field.removeprefix("tools.0.parameters.properties.x.")
    target = schema["properties"]["x"]
    target.pop(place)
    target[key] = value
    return schema


@pytest.mark.parametrize("schema", [
    one(type="string", pattern="[0-9]{7,15}"),
    one(type="string", pattern="^[A-Z]{2}"),
    one(type="strin"),
    one(type="string", maxLength="twelve"),
    one(type="array", minItems=-1),
    one(type="string", description="ISO date", **{"e.g. 2026-12-01": None}),
])
def test_suggested_fix_passes(schema: dict[str, Any]) -> None:
    [issue] = issues_of(schema)
    assert issues_of(applied(schema, issue)) == [], issue.fix
