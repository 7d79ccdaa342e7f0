"""Checks across ``outbound:`` and the trunks it dials over (presets included)."""

from __future__ import annotations

from pathlib import Path

from appliance.config.base import ConfigIssue
from appliance.config.locator import IssueAt
from appliance.config.presets import facts
from appliance.config.schema import SiteConfig, resolve_secret_path
from appliance.config.trunk import Trunk


def outbound_issues(cfg_dir: Path, site: SiteConfig, at: IssueAt) -> list[ConfigIssue]:
    """Problems of the ``outbound:`` section and of trunks with a provider preset."""
    issues = preset_issues(site, at)
    out = site.outbound
    if out is None:
        return issues
    dialable = [t.name for t in site.trunks if not t.from_front]
    if out.default_trunk is not None and out.default_trunk not in dialable:
        issues.append(at(("outbound", "default_trunk"),
                         f'default_trunk "{out.default_trunk}" is not a trunk calls can go '
                         "out over", f"write one of {dialable}" if dialable else
                         "add a trunk (not from_front) under trunks:"))
    if out.do_not_call_file is not None:
        path = resolve_secret_path(cfg_dir, out.do_not_call_file)
        if not path.is_file():
            issues.append(at(("outbound", "do_not_call_file"),
                             f"the do-not-call list {path} does not exist",
                             "create it (one number a line; it may be empty) or remove "
                             "do_not_call_file"))
    lines = site.daemon.max_concurrent_calls
    if out.reserve_inbound >= lines:
        issues.append(at(("outbound", "reserve_inbound"),
                         f"reserve_inbound ({out.reserve_inbound}) keeps every one of "
                         f"daemon.max_concurrent_calls ({lines}) for callers: no call could "
                         "go out", f"make it smaller than {lines}"))
    return issues


def preset_issues(site: SiteConfig, at: IssueAt) -> list[ConfigIssue]:
    """Trunks held to what their provider documents (``preset:``)."""
    issues: list[ConfigIssue] = []
    for i, trunk in enumerate(site.trunks):
        known = facts(trunk.preset)
        if known is None:
            continue
        where = ("trunks", i)
        if not trunk.host.lower().endswith(known.host_suffixes):
            issues.append(at((*where, "host"), f'host {trunk.host} is not a {known.label} '
                             "address", f"write your trunk's host, e.g. {known.host_example}"))
        if trunk.registers() and not known.registers:
            issues.append(at((*where, "registration"), f"{known.label} takes no "
                             "registration from this appliance",
                             "add calls_only: true under registration: (its credentials "
                             "then answer the provider's challenges on calls), or remove "
                             "registration: and let the provider know this appliance by "
                             "its public IP address (an access control list)"))
        if trunk.transport == "tls" and trunk.port != known.tls_port:
            issues.append(at((*where, "port"), f"{known.label} answers SIP over TLS on port "
                             f"{known.tls_port}, not {trunk.port}",
                             f"write port: {known.tls_port}"))
        for j, codec in enumerate(trunk.codecs):
            if codec not in known.codecs:
                issues.append(at((*where, "codecs", j), f"{codec} is not among the codecs "
                                 f"{known.label} documents", "use "
                                 + ", ".join(known.codecs)))
        numbers = [((*where, "dids", j), did) for j, did in enumerate(trunk.dids)]
        if trunk.caller_id:
            numbers.append(((*where, "caller_id"), trunk.caller_id))
        for path, number in numbers:
            if number.startswith("+") != known.plus:
                fix = (f"write it with the leading +, e.g. +{number}" if known.plus else
                       f"write it as digits without +, e.g. {number.lstrip('+')}")
                issues.append(at(path, f"{known.label} writes numbers in E.164 "
                                 f"{'with' if known.plus else 'without'} the leading +", fix))
    return issues


def dials_with_plus(trunk: Trunk) -> bool:
    """Whether numbers are dialled over ``trunk`` in E.164 with the leading +."""
    known = facts(trunk.preset)
    return known.plus if known is not None else True
