"""Task flows: forms with typed slots the agent fills in with the caller, then hands to a
tool (booking, cancelling, taking a message).

The names below are loaded on first use, so reading a flow's specification (agent.flows.spec,
as `switchboard check` does) does not load the engine and what it needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.flows.runner import FlowRunner, FlowStep
    from agent.flows.spec import FlowSpec, SlotSpec, parse_hours
    from agent.flows.start import choose_flow, local_clock

_HOME = {"FlowRunner": "runner", "FlowStep": "runner", "FlowSpec": "spec", "SlotSpec": "spec",
         "parse_hours": "spec", "choose_flow": "start", "local_clock": "start"}
__all__ = ["FlowRunner", "FlowSpec", "FlowStep", "SlotSpec", "choose_flow", "local_clock",
           "parse_hours"]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"agent.flows.{_HOME[name]}"), name)
