"""Structured log lines (logfmt) for stdout and journald.

Messages never carry transcripts, digits or caller numbers (the code that logs keeps to
call ids, counts and timings); this only gives every line the same parseable shape.
"""

from __future__ import annotations

import logging
import time


class LogfmtFormatter(logging.Formatter):
    """``ts=… level=… logger=… msg="…"`` plus ``exc="…"`` for tracebacks."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = (f"ts={ts}.{int(record.msecs):03d}Z level={record.levelname.lower()} "
                f"logger={record.name} msg={_quote(record.getMessage())}")
        if record.exc_info:
            line += f" exc={_quote(self.formatException(record.exc_info))}"
        return line


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def setup(verbose: bool = False) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(LogfmtFormatter())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
