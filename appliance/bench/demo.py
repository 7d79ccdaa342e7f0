"""``switchboard demo``: a real spoken exchange with the default agent, from this machine.

The demo registers nothing: it authenticates as the first configured phone, calls the
agent's extension through Asterisk, listens to the greeting, asks a spoken question
(Piper's voice passed through an 8 kHz G.711 line), listens to the answer, and prints
what it heard (transcribed with the appliance's own speech-to-text) and how long it took.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.media.audio import AudioChunk
from appliance.bench.listening import audio_between, wait_for_speech_then_quiet
from appliance.config.base import ConfigError
from appliance.config.load import load_configuration
from appliance.config.schema import Configuration
from appliance.sipphone import SipError, SipPhone

RATE = 8000
QUESTION = "Hello, what can you help me with today?"


@dataclass
class Exchange:
    """One thing the agent said, as the caller heard it."""

    label: str
    started: float  # seconds after answer
    seconds: float
    text: str


@dataclass
class DemoResult:
    """What the demo caller measured."""

    answered_after: float
    exchanges: list[Exchange] = field(default_factory=list)
    voice_to_voice: float | None = None


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


async def wait_for_agent_app(cfg: Configuration, timeout: float = 60.0) -> bool:
    """Wait until ARI is up and the daemon's Stasis application is registered."""
    from agent.ari import AriClient, AriError
    from appliance.daemon_settings import daemon_settings

    settings = daemon_settings(cfg, speech=False).ari
    deadline = time.monotonic() + timeout
    async with AriClient(settings) as ari:
        while time.monotonic() < deadline:
            try:
                await ari.request("GET", f"applications/{settings.app}")
                return True
            except (TimeoutError, AriError, OSError):
                await asyncio.sleep(0.25)
    return False


async def place_demo_call(cfg: Configuration, number: str, question: str, voice: Path,
                          stt_model: Path, save: Path | None) -> DemoResult:
    """Call ``number`` as the first phone, listen, ask ``question``, listen, hang up."""
    from agent.speech.engines import open_transcriber
    from appliance.bench.phoneline import spoken

    if not cfg.site.phones:
        raise SystemExit("the demo calls as a configured phone: add one under phones:")
    asked_audio = spoken(question, voice)
    stt = open_transcriber(stt_model, threads=2)
    phone_cfg = cfg.site.phones[0]
    server = sip_server(cfg)
    async with SipPhone(server[0], server, username=phone_cfg.extension,
                        password=cfg.secret(phone_cfg), display_name="Switchboard demo") as phone:
        began = time.monotonic()
        dialog = await phone.call(number)
        answered = time.monotonic()
        result = DemoResult(answered_after=answered - began)
        greeting = await wait_for_speech_then_quiet(dialog, answered, quiet=0.8, timeout=15)
        await dialog.play(asked_audio)
        asked = time.monotonic()
        answer = await wait_for_speech_then_quiet(dialog, asked, quiet=1.2, timeout=30)
        await dialog.hangup()
    if save is not None:
        dialog.save_recording(save)
    for label, span in (("agent (greeting)", greeting), ("agent (answer)", answer)):
        if span is None:
            continue
        pcm = audio_between(dialog.received_packets, span[0], span[1])
        text = (await stt.transcribe(AudioChunk(pcm, RATE))).text
        result.exchanges.append(Exchange(label, span[0] - answered, span[1] - span[0], text))
    if answer is not None:
        last_voiced = max((p.sent_at for p in dialog.sent_packets if p.voiced), default=asked)
        result.voice_to_voice = answer[0] - last_voiced
    return result


def run_demo(config_dir: Path, number: str | None = None, question: str | None = None,
             save: Path | None = None, data_dir: Path | None = None) -> int:
    """CLI entry: place the call and print the transcript and the timings."""
    question = question or QUESTION
    from appliance.daemon_settings import model_store
    from appliance.models.store import ModelError

    try:
        cfg = load_configuration(config_dir)
    except ConfigError as err:
        for issue in err.errors:
            print(issue)
        return 1
    try:
        store = model_store(data_dir)
        agent = cfg.agents[cfg.site.routes.default_agent or next(iter(cfg.agents))]
        voice = store.path(agent.models.tts, "tts")
        stt_model = store.path(agent.models.stt, "stt")
    except ModelError as err:
        print(f"demo: {err}")
        return 1
    target = number or demo_target(cfg)
    print(f"calling extension {target} as phone {cfg.site.phones[0].extension} "
          f"via {':'.join(map(str, sip_server(cfg)))} ...", flush=True)
    if not asyncio.run(wait_for_agent_app(cfg)):
        print("the agent daemon is not connected to Asterisk's ARI (waited 60 s): is it "
              "running? See /var/lib/switchboard/log/ or `journalctl -u switchboard`.")
        return 1
    try:
        result = asyncio.run(place_demo_call(cfg, target, question, voice, stt_model, save))
    except (SipError, OSError, TimeoutError) as exc:
        print(f"demo call failed: {exc}\nCheck `switchboard check`, the service logs, and "
              "that the phone's secret file is readable.")
        return 1
    print(f"answered after {result.answered_after * 1000:.0f} ms")
    if not result.exchanges:
        print("heard NO audio from the agent: check that the daemon is running and "
              "connected to ARI")
        return 1
    for ex in result.exchanges:
        if ex.label.endswith("(answer)"):
            print(f"  caller: {question}")
        print(f"  {ex.label} at {ex.started:5.2f}s for {ex.seconds:4.1f}s: {ex.text}")
    if result.voice_to_voice is not None:
        print(f"voice-to-voice: {result.voice_to_voice * 1000:.0f} ms "
              "(caller's last voiced packet → first agent audio at the caller)")
    else:
        print("the agent did not answer the question")
        return 1
    if save:
        print(f"saved what the caller heard to {save}")
    return 0
