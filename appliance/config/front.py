"""The Kamailio front (``front:`` in switchboard.yaml): several appliances behind one SIP
dispatcher that probes them with OPTIONS and spreads the carriers' calls over those that
answer. A site with a ``front:`` section is a front machine (``install.sh --role front``);
its other sections are not used there. The checks across fields are ``front_issues``.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from appliance.config.base import (
    ConfigIssue,
    ConfigModel,
    IPOrNetwork,
    Port,
    SpecificIPAddress,
    WholeNumber,
)
from appliance.config.locator import IssueAt

if TYPE_CHECKING:  # schema imports this module for its SiteConfig.front field
    from appliance.config.schema import SiteConfig


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


def _contains(network: str, address: str) -> bool:
    return ipaddress.ip_address(address) in ipaddress.ip_network(network, strict=False)


def front_issues(site: SiteConfig, at: IssueAt) -> list[ConfigIssue]:
    """Problems of the ``front:`` section, and of trunks marked ``from_front``."""
    issues: list[ConfigIssue] = []
    for i, trunk in enumerate(site.trunks):
        if trunk.from_front and trunk.registration is not None:
            issues.append(at(("trunks", i, "registration"),
                             f'trunk "{trunk.name}" is a front (from_front: true), and a '
                             "front takes no registrations",
                             "remove the registration: block; the front is known by its "
                             "address (host, or match)"))
    front = site.front
    if front is None:
        return issues
    seen: dict[tuple[str, int], int] = {}
    for i, app in enumerate(front.appliances):
        key = (app.address, app.port)
        if key in seen:
            issues.append(at(("front", "appliances", i, "address"),
                             f"appliance {app.address}:{app.port} is listed twice "
                             f"(also front.appliances.{seen[key]})",
                             "list each appliance once; give it a higher weight for more "
                             "calls"))
        else:
            seen[key] = i
        if key == (front.listen_address, front.listen_port):
            issues.append(at(("front", "appliances", i, "address"),
                             f"appliance {app.address}:{app.port} is the front itself "
                             "(listen_address and listen_port): calls would loop",
                             "write the address and SIP port of an appliance, or move the "
                             "front to another port"))
        for j, carrier in enumerate(front.carriers):
            if _contains(carrier, app.address):
                issues.append(at(("front", "carriers", j),
                                 f"carrier {carrier} includes the appliance {app.address}: "
                                 "an appliance's own requests would be taken as new calls",
                                 "list only the carriers' signalling addresses, e.g. "
                                 "198.51.100.7 or 198.51.100.0/28"))
    return issues
