"""Call records: what each call did, kept in an embedded SQLite database.

The daemon writes through :class:`CallRecorder` (``writer``), the CLI reads with
:class:`CallStore` (``reader``); ``schema`` holds the tables and their migrations and
``outcome`` the post-call assessment (outcome, one-line summary, flags).
"""

from agent.records.outcome import FLAGS, OUTCOMES, Assessment, assess
from agent.records.reader import MIN_PREFIX, CallStore, load_call
from agent.records.schema import (
    DIRECTIONS,
    END_REASONS,
    LOW_CONFIDENCE,
    SCHEMA_VERSION,
    RecordsError,
    open_database,
)
from agent.records.writer import CallRecorder, RecorderStats

__all__ = ["DIRECTIONS", "END_REASONS", "FLAGS", "LOW_CONFIDENCE", "MIN_PREFIX", "OUTCOMES",
           "SCHEMA_VERSION", "Assessment", "CallRecorder", "CallStore", "RecorderStats",
           "RecordsError", "assess", "load_call", "open_database"]
