"""Service logs are one parseable logfmt line per event."""

import logging

from appliance.ops.logfmt import LogfmtFormatter


def test_a_line_has_fields_and_quotes_escaped() -> None:
    record = logging.LogRecord("agent.call", logging.INFO, __file__, 1,
                               'call %s: end reason="%s"', ("abc", "x\ny"), None)
    line = LogfmtFormatter().format(record)
    assert line.startswith("ts=") and " level=info logger=agent.call msg=" in line
    assert line.endswith('msg="call abc: end reason=\\"x\\ny\\""')
    assert "\n" not in line
