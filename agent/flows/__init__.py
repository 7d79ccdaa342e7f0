"""Task flows: forms with typed slots the agent fills in with the caller, then hands to a
tool (booking, cancelling, taking a message)."""

from agent.flows.runner import FlowRunner, FlowStep
from agent.flows.spec import FlowSpec, SlotSpec, parse_hours
from agent.flows.start import choose_flow, local_clock

__all__ = ["FlowRunner", "FlowSpec", "FlowStep", "SlotSpec", "choose_flow", "local_clock",
           "parse_hours"]
