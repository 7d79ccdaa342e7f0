"""The daemon's outbound settings from switchboard.yaml and the agents' files."""

from __future__ import annotations

from pathlib import Path

from agent.outbound.rules import CallingRules, DoNotCallList, RetryPolicy, parse_hours
from agent.outbound.settings import AgentOutbound, OutboundSettings, TrunkRoute
from appliance.config.outbound_check import dials_with_plus
from appliance.config.schema import Configuration, resolve_secret_path
from appliance.config.secrets import ensure_secret, secrets_dir

API_TOKEN = "outbound-api.token"
AMD_CONTEXT = "outbound-amd"


def token_path(config_dir: Path) -> Path:
    """The calls API's bearer token: generated once, mode 0600."""
    return secrets_dir(config_dir) / API_TOKEN


def default_trunk(cfg: Configuration) -> str | None:
    """The trunk calls go out over when they name none."""
    out = cfg.site.outbound
    if out is not None and out.default_trunk:
        return out.default_trunk
    return next((t.name for t in cfg.site.trunks if not t.from_front), None)


def outbound_settings(cfg: Configuration, context_prefix: str = "") -> OutboundSettings | None:
    """Settings for the daemon's dialer and API; None when the site has no ``outbound:``."""
    out = cfg.site.outbound
    if out is None:
        return None
    token, _ = ensure_secret(token_path(cfg.config_dir))
    hours = out.calling_hours
    dnc = (resolve_secret_path(cfg.config_dir, out.do_not_call_file)
           if out.do_not_call_file else None)
    rules = CallingRules(
        hours=parse_hours(hours.start, hours.end, list(hours.days)) if hours else None,
        timezone=out.timezone, dnc=DoNotCallList(dnc), max_outbound=out.max_concurrent,
        reserve_inbound=out.reserve_inbound,
        retry=RetryPolicy(busy=out.retries.busy, no_answer=out.retries.no_answer,
                          backoff=out.retries.backoff_seconds, factor=out.retries.factor))
    trunks = {t.name: TrunkRoute(t.name, caller_id=t.caller_id or "", plus=dials_with_plus(t))
              for t in cfg.site.trunks if not t.from_front}
    agents = {name: AgentOutbound(detect_machine=a.outbound.detect_machine,
                                  machine=a.outbound.machine,
                                  voicemail=a.outbound.voicemail_message or "",
                                  disclosure=a.outbound.disclosure or "")
              for name, a in cfg.agents.items()}
    return OutboundSettings(
        token=token, api_address=out.api_address, api_port=out.api_port, trunks=trunks,
        default_trunk=default_trunk(cfg), rules=rules, agents=agents,
        ring_seconds=out.ring_seconds, amd_context=context_prefix + AMD_CONTEXT,
        amd_seconds=out.amd_seconds, beep_wait=out.beep_wait_seconds)
