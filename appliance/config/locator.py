"""YAML with line numbers: parse a file into plain data plus a map from field path to line.

The map (a Locator over every file read) lets each problem name the file and line it is on.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from appliance.config.base import ConfigIssue, FieldPath, dotted


class Locator:
    """Maps (file, field path) to the 1-based line where that key or list item is written."""

    def __init__(self) -> None:
        self._lines: dict[Path, dict[FieldPath, int]] = {}

    def add(self, file: Path, lines: dict[FieldPath, int]) -> None:
        """Register the line map of one parsed file."""
        self._lines[file] = dict(lines)

    def has(self, file: Path, path: FieldPath) -> bool:
        """Whether the exact path is written in the file."""
        return tuple(path) in self._lines.get(file, {})

    def line(self, file: Path, path: FieldPath) -> int | None:
        """Line of path, or of its nearest written ancestor (a missing key reports its parent)."""
        lines = self._lines.get(file)
        if not lines:
            return None
        current = tuple(path)
        while True:
            if current in lines:
                return lines[current]
            if not current:
                return None
            current = current[:-1]

    def issue(self, file: Path, path: FieldPath, message: str, fix: str) -> ConfigIssue:
        """Build an issue for a field path, located by this map."""
        return ConfigIssue(file, self.line(file, path), dotted(path), message, fix)


# An issue in one file at a field path: partial(locator.issue, file).
IssueAt = Callable[[FieldPath, str, str], ConfigIssue]

MAX_FILE_BYTES = 1 << 20  # a configuration file is a few kilobytes; 1 MiB is plenty
MAX_VALUES = 20_000  # values after aliases are expanded (an alias bomb stops here)
MAX_DEPTH = 32  # nesting of lists and mappings

_PLAIN_INT_RE = re.compile(r"-?(0|[1-9][0-9]*)")


class _TooLarge(Exception):
    """The document expands beyond what a configuration can reasonably hold."""

    def __init__(self, node: yaml.Node, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.message = message
_INT_TAG = "tag:yaml.org,2002:int"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


@dataclass
class ParsedYaml:
    """A YAML file converted to plain data, with its line map and any issues."""

    data: Any = None
    lines: dict[FieldPath, int] = field(default_factory=dict)
    issues: list[ConfigIssue] = field(default_factory=list)
    empty: bool = False
    ok: bool = True


class _Converter:
    """Turns a composed YAML node tree into Python data while recording key lines."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.lines: dict[FieldPath, int] = {}
        self.issues: list[ConfigIssue] = []
        self._constructor = yaml.SafeLoader("")
        self._active: set[int] = set()
        self._values = 0

    def convert(self, node: yaml.Node, path: FieldPath) -> Any:
        self._values += 1
        if self._values > MAX_VALUES:
            raise _TooLarge(node, f"the file expands to more than {MAX_VALUES} values "
                                  "(aliases repeated inside aliases?)")
        if len(path) > MAX_DEPTH:
            raise _TooLarge(node, f"values are nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if id(node) in self._active:
            self._issue(node, path, "an alias refers to itself", "remove the recursive alias")
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                items = []
                for index, item in enumerate(node.value):
                    self.lines[path + (index,)] = item.start_mark.line + 1
                    items.append(self.convert(item, path + (index,)))
                return items
            return self._mapping(node, path)
        finally:
            self._active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: FieldPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                self._issue(
                    key_node, path, "a key is a list or mapping", "keys must be plain names"
                )
                continue
            key = key_node.value
            if key in first_line:
                self.issues.append(
                    ConfigIssue(
                        self.file,
                        line,
                        dotted(path + (key,)),
                        f'duplicate key "{key}" (first written on line {first_line[key]})',
                        "keep only one of them",
                    )
                )
            else:
                first_line[key] = line
            self.lines[path + (key,)] = line
            result[key] = self.convert(value_node, path + (key,))
        return result

    def _scalar(self, node: yaml.ScalarNode, path: FieldPath) -> Any:
        # Keep the written text for YAML 1.1 surprises: 0101 (octal), +1555… (loses '+'),
        # 1_000, 5:30 (base 60) and dates; the models validate them as text.
        if node.style is None and node.tag == _INT_TAG and not _PLAIN_INT_RE.fullmatch(node.value):
            return node.value
        if node.tag == _TIMESTAMP_TAG:
            return node.value
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            self._issue(
                node,
                path,
                f"unsupported YAML tag {node.tag}: {exc.problem}",
                "remove the !tag; write a plain value",
            )
        except ValueError:
            return node.value
        return None

    def _issue(self, node: yaml.Node, path: FieldPath, message: str, fix: str) -> None:
        self.issues.append(
            ConfigIssue(self.file, node.start_mark.line + 1, dotted(path), message, fix)
        )


def _syntax_issue(file: Path, exc: yaml.MarkedYAMLError) -> ConfigIssue:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    problem = exc.problem or "invalid YAML"
    context = exc.context or ""
    context_line = exc.context_mark.line + 1 if exc.context_mark is not None else None
    opened = f" on line {context_line}" if context_line else ""
    fix = "indent with spaces only and close every bracket and quote"
    if "'\\t'" in problem or "\t" in problem:
        message = "YAML syntax error: a tab character is used here"
        fix = "YAML allows only spaces for indentation; replace the tab with spaces"
    elif "flow sequence" in context:
        message = f"YAML syntax error: {problem}"
        fix = f"close the '[' opened{opened} with ']' (and separate items with commas)"
    elif "flow mapping" in context:
        message = f"YAML syntax error: {problem}"
        fix = f"close the '{{' opened{opened} with '}}' (and separate items with commas)"
    elif "quoted scalar" in context:
        message = f"YAML syntax error: {problem}"
        fix = f"close the quote opened{opened}"
    elif "mapping values are not allowed" in problem:
        message = "YAML syntax error: unexpected ':' in a value"
        fix = "put the value in quotes, or fix the indentation of this line"
    elif "single document" in problem + context:
        message = "YAML syntax error: more than one document ('---') in the file"
        fix = "keep a single document; remove the extra '---'"
    else:
        message = f"YAML syntax error: {problem}"
        if context:
            message += f" ({context}{opened})"
    return ConfigIssue(file, line, "", message, fix)


def parse_yaml(file: Path) -> ParsedYaml:
    """Parse one YAML file into data plus a line map; never raises for bad content, and
    never takes more than a bounded amount of memory (file size, values, nesting)."""
    try:
        size = file.stat().st_size
        if size > MAX_FILE_BYTES:
            issue = ConfigIssue(file, None, "", f"the file is {size} bytes (at most "
                                f"{MAX_FILE_BYTES})", "a configuration file is a few "
                                "kilobytes: put long texts in a knowledge_file")
            return ParsedYaml(issues=[issue], ok=False)
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        issue = ConfigIssue(file, None, "", "the file is not UTF-8 text", "save it as UTF-8")
        return ParsedYaml(issues=[issue], ok=False)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        issue = ConfigIssue(
            file, None, "", f"cannot read the file: {reason}", "check the path and its permissions"
        )
        return ParsedYaml(issues=[issue], ok=False)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        return ParsedYaml(issues=[_syntax_issue(file, exc)], ok=False)
    except yaml.YAMLError as exc:
        issue = ConfigIssue(file, None, "", f"YAML error: {exc}", "fix the YAML syntax")
        return ParsedYaml(issues=[issue], ok=False)
    if node is None:
        return ParsedYaml(empty=True)
    converter = _Converter(file)
    converter.lines[()] = node.start_mark.line + 1
    try:
        data = converter.convert(node, ())
    except _TooLarge as too_large:
        issue = ConfigIssue(file, too_large.node.start_mark.line + 1, "", too_large.message,
                            "write the values out plainly; use aliases only for small, "
                            "repeated settings")
        return ParsedYaml(issues=[issue], ok=False)
    return ParsedYaml(data=data, lines=converter.lines, issues=converter.issues)
