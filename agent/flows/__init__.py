"""Task flows: forms with typed slots the agent fills in with the caller, then hands to a
tool (booking, cancelling, taking a message)."""

from agent.flows.runner import FlowRunner, FlowStep, choose_flow
from agent.flows.spec import FlowSpec, SlotSpec, parse_hours

__all__ = ["FlowRunner", "FlowSpec", "FlowStep", "SlotSpec", "choose_flow", "parse_hours"]
