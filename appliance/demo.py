"""``switchboard demo``: a real SIP call into the default agent, from this machine."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.audio import rms_dbfs
from appliance.config import ConfigError, Configuration, load_configuration
from appliance.sipphone import SipError, SipPhone

RATE = 8000
SILENCE_DBFS = -50.0


@dataclass
class DemoResult:
    """What the demo caller measured."""

    answered_after: float
    first_audio_after: float | None
    heard_seconds: float
    level_dbfs: float
    packets: int


def demo_target(cfg: Configuration) -> str:
    """The extension that reaches the default agent (or any agent)."""
    rules = [r for r in cfg.site.routes.rules if r.extension]
    preferred = [r for r in rules if r.agent == cfg.site.routes.default_agent]
    if not (preferred or rules):
        raise SystemExit("no routes.rules entry with an extension: add one, e.g.\n"
                         "  routes:\n    rules:\n      - extension: \"500\"\n        agent: demo")
    return (preferred or rules)[0].extension


def sip_server(cfg: Configuration) -> tuple[str, int]:
    net = cfg.site.network
    bind = ipaddress.ip_address(net.bind_address)
    host = "127.0.0.1" if bind.is_unspecified else str(bind)
    return host, net.sip_port


async def wait_for_agent_app(cfg: Configuration, timeout: float = 30.0) -> bool:
    """Wait until ARI is up and the daemon's Stasis application is registered."""
    from agent.ari import AriClient, AriError
    from appliance.daemon_settings import daemon_settings

    settings = daemon_settings(cfg).ari
    deadline = time.monotonic() + timeout
    async with AriClient(settings) as ari:
        while time.monotonic() < deadline:
            try:
                await ari.request("GET", f"applications/{settings.app}")
                return True
            except (TimeoutError, AriError, OSError):
                await asyncio.sleep(0.25)
    return False


def first_voiced(packets: list, start: float) -> float | None:
    for arrival, _seq, _ts, pcm in packets:
        if rms_dbfs(pcm) > SILENCE_DBFS:
            return arrival - start
    return None


async def place_demo_call(cfg: Configuration, number: str, seconds: float,
                          save: Path | None, say: np.ndarray | None = None) -> DemoResult:
    """Register as the first configured phone, call ``number``, listen, hang up."""
    if not cfg.site.phones:
        raise SystemExit("the demo calls as a configured phone: add one under phones:")
    phone_cfg = cfg.site.phones[0]
    server = sip_server(cfg)
    local_ip = server[0] if ipaddress.ip_address(server[0]).is_loopback else "127.0.0.1"
    async with SipPhone(local_ip, server, username=phone_cfg.extension,
                        password=cfg.secret(phone_cfg), display_name="Switchboard demo") as phone:
        await phone.register()
        began = time.monotonic()
        dialog = await phone.call(number)
        answered = time.monotonic()
        if say is not None:
            await asyncio.sleep(0.5)
            await dialog.play(say)
        remaining = seconds - (time.monotonic() - answered)
        try:
            await asyncio.wait_for(dialog.wait_remote_hangup(remaining), max(0.1, remaining))
        except TimeoutError:
            await dialog.hangup()
        pcm = dialog.received_pcm()
        if save is not None:
            dialog.save_recording(save)
        voiced = first_voiced(dialog.received_packets, answered)
        await phone.unregister()
    return DemoResult(answered_after=answered - began, first_audio_after=voiced,
                      heard_seconds=len(pcm) / RATE, level_dbfs=rms_dbfs(pcm),
                      packets=len(dialog.received_packets))


def run_demo(config_dir: Path, seconds: float = 6.0, number: str | None = None,
             save: Path | None = None) -> int:
    """CLI entry: place the call and print what was heard."""
    try:
        cfg = load_configuration(config_dir)
    except ConfigError as err:
        for issue in err.errors:
            print(issue)
        return 1
    target = number or demo_target(cfg)
    print(f"calling extension {target} as phone {cfg.site.phones[0].extension} "
          f"via {':'.join(map(str, sip_server(cfg)))} ...")
    if not asyncio.run(wait_for_agent_app(cfg)):
        print("the agent daemon is not connected to Asterisk's ARI (waited 30 s): is it running? "
              "See /var/lib/switchboard/log/ or `journalctl -u switchboard`.")
        return 1
    try:
        result = asyncio.run(place_demo_call(cfg, target, seconds, save))
    except (SipError, OSError, TimeoutError) as exc:
        print(f"demo call failed: {exc}\n"
              "Is Asterisk running and is the agent daemon connected? "
              "Check `switchboard check`, the service logs, and that the phone's secret file "
              "is readable.")
        return 1
    print(f"answered after {result.answered_after * 1000:.0f} ms")
    if result.first_audio_after is None:
        print("heard NO audio from the agent: check that the daemon is running "
              "(`switchboard run`) and connected to ARI")
        return 1
    print(f"first agent audio {result.first_audio_after * 1000:.0f} ms after answer; "
          f"heard {result.heard_seconds:.1f} s in {result.packets} RTP packets, "
          f"level {result.level_dbfs:.1f} dBFS")
    if save:
        print(f"saved what the caller heard to {save}")
    return 0
