"""Checks across ``outbound:`` and the trunks it dials over (presets included)."""

from __future__ import annotations

from pathlib import Path

from appliance.config.base import ConfigIssue
from appliance.config.locator import IssueAt
from appliance.config.schema import SiteConfig, resolve_secret_path


def outbound_issues(cfg_dir: Path, site: SiteConfig, at: IssueAt) -> list[ConfigIssue]:
    """Problems of the ``outbound:`` section."""
    out = site.outbound
    if out is None:
        return []
    issues: list[ConfigIssue] = []
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
