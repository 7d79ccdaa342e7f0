"""Checks across the fields of the ``front:`` section, and of trunks marked ``from_front``."""

from __future__ import annotations

import ipaddress

from appliance.config.base import ConfigIssue
from appliance.config.locator import IssueAt
from appliance.config.schema import SiteConfig


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
