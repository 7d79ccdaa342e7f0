"""The Kamailio front (``front:`` in switchboard.yaml): several appliances behind one SIP
dispatcher that probes them with OPTIONS and spreads the carriers' calls over those that
answer. A site with a ``front:`` section is a front machine (``install.sh --role front``);
its other sections are not used there. The checks across fields are in front_check.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field

from appliance.config.base import (
    ConfigModel,
    IPOrNetwork,
    Port,
    SpecificIPAddress,
    WholeNumber,
)


class FrontAppliance(ConfigModel):
    """One appliance the front sends calls to."""

    address: SpecificIPAddress = Field(
        description="IP address of the appliance's SIP transport (its network.bind_address "
        "or the address others reach it at). Required.", examples=["192.0.2.21"],
    )
    port: Port = Field(5060, description="The appliance's SIP port (its network.sip_port). "
                       "Default: 5060.", examples=[5060])
    transport: Literal["udp", "tcp"] = Field(
        "udp", description="SIP transport from the front to the appliance: udp or tcp. "
        "Default: udp.",
    )
    weight: WholeNumber = Field(
        1, ge=1, le=100, description="Share of calls with algorithm: weight (1-100; an "
        "appliance of weight 2 gets twice the calls of one of weight 1). Default: 1.",
    )


class FrontConfig(ConfigModel):
    """Kamailio's dispatcher in front of several appliances."""

    listen_address: SpecificIPAddress = Field(
        description="IP address the front receives the carriers' calls on, and the address "
        "each appliance knows the front by (its trunk with from_front: true). Required.",
        examples=["192.0.2.10"],
    )
    listen_port: Port = Field(
        5060, description="SIP port of the front, UDP and TCP. Default: 5060.",
        examples=[5060],
    )
    algorithm: Literal["round-robin", "weight"] = Field(
        "round-robin", description="How calls are spread: round-robin (each appliance in "
        "turn) or weight (in proportion to each appliance's weight). Default: round-robin.",
    )
    probe_interval: WholeNumber = Field(
        5, ge=1, le=300, description="Seconds between SIP OPTIONS probes of each appliance; "
        "one unanswered probe takes an appliance out, one answered brings it back. "
        "Default: 5.", examples=[5],
    )
    reply_timeout: WholeNumber = Field(
        2, ge=1, le=30, description="Seconds an appliance has to answer a call or a probe "
        "(any reply, even 100 Trying) before the call goes to the next appliance. "
        "Default: 2.", examples=[2],
    )
    carriers: list[IPOrNetwork] = Field(
        min_length=1, description="Addresses or CIDRs of the carriers (trunks) allowed to "
        "send calls. Anything else is refused with 403 and logged to the front's security "
        "log. Required.", examples=[["198.51.100.0/24"]],
    )
    appliances: list[FrontAppliance] = Field(
        min_length=1, max_length=64,
        description="The appliances that answer the calls (1-64). Required.",
    )

    def carrier_networks(self) -> list[str]:
        """The carriers as CIDRs (a single address becomes /32 or /128)."""
        return [str(ipaddress.ip_network(c, strict=False)) for c in self.carriers]
