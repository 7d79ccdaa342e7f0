"""What the daemon needs to place outbound calls, as plain values (built by the control plane)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.outbound.rules import CallingRules

MACHINE_ACTIONS = ("hangup", "voicemail")


@dataclass(frozen=True)
class TrunkRoute:
    """How to dial out over one trunk."""

    name: str  # the trunk's name; its PJSIP endpoint is ``trunk-<name>``
    caller_id: str = ""  # number presented to the callee ("": the provider's default)
    plus: bool = True  # dial E.164 with the leading + (False: digits only)


@dataclass(frozen=True)
class AgentOutbound:
    """One agent's behaviour on calls it places."""

    detect_machine: bool = True  # run answering-machine detection before the agent speaks
    machine: str = "hangup"  # a machine answered: "hangup" or "voicemail" (leave a message)
    voicemail: str = ""  # the message left after the beep ({variables} filled in)
    disclosure: str = ""  # said before the greeting on every call it places


@dataclass(frozen=True)
class OutboundSettings:
    """Outbound calling: the local API, trunks, rules, per-agent behaviour."""

    token: str  # bearer token of the local API
    api_address: str = "127.0.0.1"
    api_port: int = 9110
    trunks: Mapping[str, TrunkRoute] = field(default_factory=dict)
    default_trunk: str | None = None
    rules: CallingRules = field(default_factory=CallingRules)
    agents: Mapping[str, AgentOutbound] = field(default_factory=dict)
    ring_seconds: int = 30  # how long a callee's phone rings before "no answer"
    amd_context: str = "outbound-amd"  # dialplan context that runs AMD() and comes back
    amd_seconds: float = 3.0  # AMD's total analysis time (rendered into amd.conf)
    beep_wait: float = 20.0  # voicemail: longest wait for the beep after detection

    def agent(self, name: str) -> AgentOutbound:
        return self.agents.get(name, AgentOutbound())
