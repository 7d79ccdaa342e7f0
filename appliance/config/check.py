"""Semantic checks across switchboard.yaml and agents/*.yaml: names, routes, transfers, secrets.

They run on schema-valid models, after loading (appliance.config.load calls semantic_issues).
"""

import difflib
import re
from collections.abc import Mapping
from functools import partial
from pathlib import Path

from appliance.config.agent import AgentConfig
from appliance.config.base import (
    AGENT_SUFFIX,
    AGENTS_DIR,
    SITE_FILE,
    ConfigIssue,
    FieldPath,
    dotted,
    secret_problem,
)
from appliance.config.flows import flow_issues
from appliance.config.front_check import front_issues
from appliance.config.locator import IssueAt, Locator
from appliance.config.outbound_check import outbound_issues
from appliance.config.portplan import port_issues
from appliance.config.recording_check import recording_issues
from appliance.config.schema import SiteConfig, resolve_secret_path
from appliance.config.tls_check import tls_file_issues, tls_issues
from appliance.config.toolschema import NO_ARGUMENTS, parameter_issues


def semantic_issues(
    cfg_dir: Path,
    site: SiteConfig | None,
    agents: Mapping[str, AgentConfig | None],
    locator: Locator,
) -> list[ConfigIssue]:
    """Cross-field and cross-file problems of a schema-valid configuration.

    `agents` maps each agents/<stem>.yaml file stem to its model, or to None when that file had
    errors already reported (it then still counts as existing, so routes to it are not flagged).
    `site` is None when switchboard.yaml itself was invalid; only agent checks run then.
    """
    cfg_dir = Path(cfg_dir)
    issues = _agent_issues(cfg_dir, agents, locator)
    if site is None:
        return issues
    at: IssueAt = partial(locator.issue, cfg_dir / SITE_FILE)
    issues += _trunk_issues(site, at, locator, cfg_dir / SITE_FILE)
    issues += _phone_issues(site, at, locator, cfg_dir / SITE_FILE)
    issues += _route_issues(site, agents, at, locator, cfg_dir / SITE_FILE)
    issues += _transfer_issues(site, agents, cfg_dir, locator)
    issues += _secret_issues(cfg_dir, site, at)
    issues += port_issues(site, at)
    issues += tls_issues(site, at) + tls_file_issues(cfg_dir, site, at)
    issues += front_issues(site, at)
    issues += outbound_issues(cfg_dir, site, at)
    issues += recording_issues(cfg_dir, site, at)
    return issues


def _first_seen(locator: Locator, file: Path, path: FieldPath) -> str:
    line = locator.line(file, path)
    return f"{dotted(path)}, line {line}" if line is not None else dotted(path)


def _agent_issues(
    cfg_dir: Path, agents: Mapping[str, AgentConfig | None], locator: Locator
) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    owner: dict[str, str] = {}
    for stem, agent in agents.items():
        if agent is None:
            continue
        file = cfg_dir / AGENTS_DIR / f"{stem}{AGENT_SUFFIX}"
        if agent.name != stem:
            issues.append(
                locator.issue(
                    file,
                    ("name",),
                    f'agent name "{agent.name}" does not match the file name {file.name}',
                    f"set name: {stem}, or rename the file to {agent.name}{AGENT_SUFFIX}",
                )
            )
        if agent.name in owner:
            issues.append(
                locator.issue(
                    file,
                    ("name",),
                    f'agent name "{agent.name}" is also used by '
                    f"{AGENTS_DIR}/{owner[agent.name]}{AGENT_SUFFIX}",
                    "give every agent its own name, equal to its file name without .yaml",
                )
            )
        else:
            owner[agent.name] = stem
        issues += _agent_file_issues(cfg_dir, agent, file, locator)
    return issues


def _agent_file_issues(cfg_dir: Path, agent: AgentConfig, file: Path,
                       locator: Locator) -> list[ConfigIssue]:
    """Files an agent refers to, and its tools: unique names, parameter schemas, secrets."""
    issues: list[ConfigIssue] = []
    if agent.knowledge_file:
        problem = _knowledge_file_problem(cfg_dir, agent.knowledge_file)
        if problem:
            issues.append(locator.issue(file, ("knowledge_file",), *problem))
    seen: set[str] = set()
    for i, tool in enumerate(agent.tools):
        if tool.name in seen:
            issues.append(locator.issue(file, ("tools", i, "name"),
                                        f'tool name "{tool.name}" is used twice',
                                        "give every tool of an agent its own name"))
        seen.add(tool.name)
        if tool.parameters != NO_ARGUMENTS:
            issues += parameter_issues(tool.parameters, file, ("tools", i, "parameters"),
                                       locator)
        if tool.webhook and tool.webhook.secret_file:
            problem = _secret_file_problem(resolve_secret_path(cfg_dir,
                                                               tool.webhook.secret_file))
            if problem:
                issues.append(locator.issue(file, ("tools", i, "webhook", "secret_file"),
                                            *problem))
    remote = agent.models.llm_remote
    if remote is not None and remote.api_key_file:
        problem = _secret_file_problem(resolve_secret_path(cfg_dir, remote.api_key_file))
        if problem:
            issues.append(locator.issue(file, ("models", "llm_remote", "api_key_file"),
                                        *problem))
    issues += flow_issues(agent.flows, agent.tools, file, locator)
    return issues


OUTSIDE_NUMBER = re.compile(r"\+?[0-9]{7,15}")  # ASCII digits only (not "１２３…")


def _transfer_issues(site: SiteConfig, agents: Mapping[str, AgentConfig | None],
                     cfg_dir: Path, locator: Locator) -> list[ConfigIssue]:
    """Transfer targets must be a phone of this site, or a number with a trunk to dial it."""
    issues: list[ConfigIssue] = []
    phones = {p.extension for p in site.phones}
    for stem, agent in agents.items():
        if agent is None:
            continue
        file = cfg_dir / AGENTS_DIR / f"{stem}{AGENT_SUFFIX}"
        for i, tool in enumerate(agent.tools):
            for label, target in tool.targets.items():
                outside = OUTSIDE_NUMBER.fullmatch(target) is not None
                if outside and tool.mode == "attended":
                    issues.append(locator.issue(
                        file, ("tools", i, "targets", label),
                        f'attended transfer to the outside number "{target}": only phones '
                        "of this site can be announced to", "use a phone extension, or "
                        "mode: blind for an outside number"))
                    continue
                outbound = any(not t.from_front for t in site.trunks)
                if target in phones or (outside and outbound):
                    continue
                fix = ("use a phone extension from switchboard.yaml (" + ", ".join(
                    sorted(phones)) + ")" if phones else "add the phone to switchboard.yaml")
                if outside:
                    fix = "configure a trunk in switchboard.yaml to reach outside numbers"
                issues.append(locator.issue(file, ("tools", i, "targets", label),
                                            f'transfer target "{target}" is neither a phone '
                                            "nor an outside number reachable over a trunk",
                                            fix))
    return issues


def _trunk_issues(site: SiteConfig, at: IssueAt, locator: Locator, file: Path) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    names: dict[str, int] = {}
    dids: dict[str, tuple[int, int]] = {}
    for i, trunk in enumerate(site.trunks):
        if trunk.name in names:
            first = _first_seen(locator, file, ("trunks", names[trunk.name], "name"))
            issues.append(
                at(
                    ("trunks", i, "name"),
                    f'trunk name "{trunk.name}" is already used ({first})',
                    "give each trunk a unique name",
                )
            )
        else:
            names[trunk.name] = i
        for j, did in enumerate(trunk.dids):
            if did in dids:
                ti, tj = dids[did]
                first = _first_seen(locator, file, ("trunks", ti, "dids", tj))
                issues.append(
                    at(
                        ("trunks", i, "dids", j),
                        f'DID "{did}" is already listed on trunk "{site.trunks[ti].name}" '
                        f"({first})",
                        "list each DID on one trunk only",
                    )
                )
            else:
                dids[did] = (i, j)
        if not trunk.match and not trunk.registers() and not trunk.host_is_ip():
            issues.append(
                at(
                    ("trunks", i, "match"),
                    f'inbound calls from trunk "{trunk.name}" cannot be recognised: host '
                    f"{trunk.host} is a name, and there is neither match nor registration",
                    "add match: [the provider's signalling IPs or CIDRs, e.g. 198.51.100.0/24], "
                    "or a registration: block",
                )
            )
    return issues


def _phone_issues(site: SiteConfig, at: IssueAt, locator: Locator, file: Path) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    seen: dict[str, int] = {}
    for i, phone in enumerate(site.phones):
        if phone.extension in seen:
            first = _first_seen(locator, file, ("phones", seen[phone.extension], "extension"))
            issues.append(
                at(
                    ("phones", i, "extension"),
                    f'extension "{phone.extension}" is already used by another phone ({first})',
                    "give each phone its own extension",
                )
            )
        else:
            seen[phone.extension] = i
    return issues


def _missing_agent(name: str, known: list[str]) -> tuple[str, str]:
    guess = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if guess:
        fix = f'did you mean "{guess[0]}"? (or create {AGENTS_DIR}/{name}{AGENT_SUFFIX})'
    elif known:
        fix = f"create {AGENTS_DIR}/{name}{AGENT_SUFFIX}, or use one of: {', '.join(known)}"
    else:
        fix = f"create {AGENTS_DIR}/{name}{AGENT_SUFFIX} (there are no agents yet)"
    return f'agent "{name}" does not exist', fix


def _route_issues(
    site: SiteConfig,
    agents: Mapping[str, AgentConfig | None],
    at: IssueAt,
    locator: Locator,
    file: Path,
) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    known = sorted(agents)
    routes = site.routes
    if routes.default_agent is not None and routes.default_agent not in agents:
        issues.append(at(("routes", "default_agent"), *_missing_agent(routes.default_agent, known)))

    trunk_dids = {did for trunk in site.trunks for did in trunk.dids}
    phones = {phone.extension: i for i, phone in enumerate(site.phones)}
    did_rules: dict[str, int] = {}
    ext_rules: dict[str, int] = {}
    for i, rule in enumerate(routes.rules):
        base: FieldPath = ("routes", "rules", i)
        if rule.agent not in agents:
            issues.append(at(base + ("agent",), *_missing_agent(rule.agent, known)))
        if rule.did is not None:
            if rule.did in did_rules:
                first = _first_seen(locator, file, ("routes", "rules", did_rules[rule.did], "did"))
                issues.append(
                    at(
                        base + ("did",),
                        f'DID "{rule.did}" already has a rule ({first})',
                        "keep one rule per DID",
                    )
                )
            else:
                did_rules[rule.did] = i
            if rule.did not in trunk_dids:
                issues.append(
                    at(
                        base + ("did",),
                        f'DID "{rule.did}" is not listed on any trunk, so no call can reach it',
                        "add it to the dids: of the trunk that delivers it, or fix the number",
                    )
                )
        if rule.extension is not None:
            if rule.extension in ext_rules:
                first = _first_seen(
                    locator, file, ("routes", "rules", ext_rules[rule.extension], "extension")
                )
                issues.append(
                    at(
                        base + ("extension",),
                        f'extension "{rule.extension}" already has a rule ({first})',
                        "keep one rule per extension",
                    )
                )
            else:
                ext_rules[rule.extension] = i
            if rule.extension in phones:
                first = _first_seen(locator, file, ("phones", phones[rule.extension], "extension"))
                issues.append(
                    at(
                        base + ("extension",),
                        f'extension "{rule.extension}" is also a phone ({first})',
                        "pick an extension no phone uses, e.g. one in the 500s",
                    )
                )
    return issues


MAX_KNOWLEDGE_BYTES = 1 << 20


def _knowledge_file_problem(cfg_dir: Path, name: str) -> tuple[str, str] | None:
    """A knowledge file must be UTF-8 text in a regular file; a relative path stays inside
    the configuration directory (an absolute path is the operator's explicit choice)."""
    path = resolve_secret_path(cfg_dir, name)
    if not Path(name).is_absolute() and not path.resolve().is_relative_to(cfg_dir.resolve()):
        return (f"knowledge file {name} lies outside the configuration directory",
                "move it into the configuration directory, or give its absolute path")
    if not path.exists():
        return (f"knowledge file {path} does not exist",
                "create it, or fix the path (relative paths start at the configuration "
                "directory)")
    if not path.is_file():
        return f"knowledge file {path} is not a regular file", "point knowledge_file at a file"
    if path.stat().st_size > MAX_KNOWLEDGE_BYTES:
        return (f"knowledge file {path} is larger than 1 MiB",
                "keep the facts callers ask about; split long documents")
    try:
        path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return (f"knowledge file {path} is not UTF-8 text (byte {exc.start})",
                "save it as UTF-8, e.g. iconv -f latin1 -t utf-8")
    except OSError as exc:
        return f"knowledge file {path} cannot be read: {exc.strerror}", "check the file"
    return None


def _secret_file_problem(path: Path) -> tuple[str, str] | None:
    if path.is_symlink():
        return (f"secret file {path} is a symbolic link",
                "put the secret itself in that file (a link could point anywhere)")
    if not path.exists():
        return (
            f"secret file {path} does not exist",
            (
                "create it containing only the secret, or fix the path (relative paths start "
                "at the configuration directory)"
            ),
        )
    if not path.is_file():
        return f"secret file {path} is not a regular file", "point secret_file at a file"
    try:
        text = path.read_text(encoding="utf-8")
    except PermissionError:
        return (
            f"secret file {path} cannot be read (permission denied)",
            (
                "make it readable by the user running Switchboard (e.g. chgrp switchboard, "
                "chmod 640)"
            ),
        )
    except UnicodeDecodeError:
        return f"secret file {path} is not UTF-8 text", "write the secret as plain text"
    except OSError as exc:
        return f"secret file {path} cannot be read: {exc.strerror}", "check the file"
    mode = path.stat().st_mode
    if mode & 0o007:
        return (f"secret file {path} can be read or written by every user on this machine "
                f"(mode {mode & 0o777:o})", f"chmod 640 {path}")
    if not text.strip():
        return f"secret file {path} is empty", "write the secret into it"
    problem = secret_problem(text.strip())
    if problem is not None:
        return (f"the secret in {path} {problem}",
                "write one line of 8-128 visible characters without spaces into it")
    return None


def _secret_issues(cfg_dir: Path, site: SiteConfig, at: IssueAt) -> list[ConfigIssue]:
    refs: list[tuple[FieldPath, str | None]] = []
    for i, trunk in enumerate(site.trunks):
        if trunk.registration is not None:
            refs.append(
                (("trunks", i, "registration", "secret_file"), trunk.registration.secret_file)
            )
    for i, phone in enumerate(site.phones):
        refs.append((("phones", i, "secret_file"), phone.secret_file))
    if site.daemon.llm_remote is not None:
        refs.append((("daemon", "llm_remote", "api_key_file"),
                     site.daemon.llm_remote.api_key_file))
    issues: list[ConfigIssue] = []
    for path, secret_file in refs:
        if secret_file is None:
            continue
        problem = _secret_file_problem(resolve_secret_path(cfg_dir, secret_file))
        if problem is not None:
            issues.append(at(path, *problem))
    return issues
