"""Translate the validated site configuration into the data plane's settings."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from agent.answers.policy import Phrases
from agent.ari import AriSettings
from agent.flows import FlowSpec, SlotSpec, parse_hours
from agent.recording.writer import RecordingSpec
from agent.settings import AgentSpec, DaemonSettings, ModelPaths
from agent.speech.remote_chat import RemoteModel
from agent.tools.spec import ToolSpec, tool_prompt
from appliance.config.agent import AgentConfig, ToolConfig
from appliance.config.flows import FlowConfig, SlotConfig
from appliance.config.paths import data_dir
from appliance.config.remote_llm import RemoteLLMConfig, effective_remote
from appliance.config.schema import Configuration, resolve_secret_path
from appliance.config.secrets import ARI_SECRET, read_secret, secrets_dir
from appliance.models.store import ModelStore
from appliance.outbound.settings import outbound_settings
from appliance.pbx.render import APP_NAME, ARI_USER


def model_store(data: Path | None = None) -> ModelStore:
    return ModelStore((data or data_dir()) / "models")


def tool_spec(tool: ToolConfig, config_dir: Path) -> ToolSpec:
    """One declared tool as the daemon runs it (secrets read from their files)."""
    hook = tool.webhook
    secret = None
    if hook is not None and hook.secret_file:
        secret = resolve_secret_path(config_dir, hook.secret_file).read_bytes().strip()
    return ToolSpec(
        name=tool.name, description=tool.description, parameters=tool.parameters,
        kind=tool.builtin or "webhook",
        url=hook.url if hook else "", method=hook.method if hook else "POST",
        headers=dict(hook.headers) if hook else {}, timeout=hook.timeout if hook else 1.5,
        retries=hook.retries if hook else 0, secret=secret, wait_phrase=tool.wait_phrase,
        failure_phrase=tool.failure_phrase, result_phrase=tool.result_phrase,
        targets=dict(tool.targets), mode=tool.mode,
        dtmf_parameter=tool.dtmf.parameter if tool.dtmf else None,
        dtmf_prompt=tool.dtmf.prompt if tool.dtmf else None,
        dtmf_terminator=tool.dtmf.terminator if tool.dtmf else "#",
        dtmf_timeout=tool.dtmf.timeout if tool.dtmf else 8.0,
        dtmf_max_digits=tool.dtmf.max_digits if tool.dtmf else 16,
    )


def slot_spec(slot: SlotConfig) -> SlotSpec:
    choices = slot.choices if isinstance(slot.choices, dict) else {c: [] for c in slot.choices}
    return SlotSpec(
        name=slot.name, kind=slot.type, prompt=slot.prompt or "", retry=slot.retry or "",
        parameter=slot.parameter or "", required=slot.required,
        read_back=slot.read_back if slot.read_back is not None else slot.type != "text",
        choices={label: tuple(words) for label, words in choices.items()},
        min_digits=slot.min_digits, max_digits=slot.max_digits, allow_past=slot.allow_past,
        max_days_ahead=slot.max_days_ahead)


def flow_spec(flow: FlowConfig) -> FlowSpec:
    """One declared flow as the daemon runs it (opening hours parsed)."""
    return FlowSpec(
        name=flow.name, description=flow.description, cues=tuple(flow.cues),
        slots=tuple(slot_spec(s) for s in flow.slots), tool=flow.tool,
        hours=parse_hours(flow.hours) if flow.hours is not None else None,
        confirm=flow.confirm, done=flow.done, cancelled=flow.cancelled,
        give_up=flow.give_up, offer_transfer=flow.offer_transfer,
        ask_change=flow.ask_change, confirm_retry=flow.confirm_retry,
        max_attempts=flow.max_attempts, takes_message=flow.takes_message,
        recipient=flow.recipient)


GROUNDING = ("Answer only from these facts. When they do not say, say you do not know; never "
             "guess hours, prices, names, insurance or policies. Never use the caller's name "
             "as yours. Answer in one or two short sentences.")


def knowledge_text(agent: AgentConfig, config_dir: Path) -> str:
    """The agent's free facts: ``knowledge`` and the ``knowledge_file``."""
    facts = [agent.knowledge or ""]
    if agent.knowledge_file:
        facts.append(resolve_secret_path(config_dir, agent.knowledge_file).read_text())
    return "\n".join(f.strip() for f in facts if f.strip())


def instructions(agent: AgentConfig, config_dir: Path) -> str:
    """The system prompt: the agent's instructions plus its knowledge."""
    parts = [agent.instructions.strip()]
    known = [knowledge_text(agent, config_dir)] + [
        f"{a.questions[0]} {a.answer}" for a in agent.answers]
    if any(known):
        parts.append("Facts you can rely on:\n" + "\n".join(k for k in known if k)
                     + "\n" + GROUNDING)
    return "\n\n".join(parts)


def remote_model(remote: RemoteLLMConfig, config_dir: Path) -> RemoteModel:
    """A remote language model as the daemon uses it (the API key read from its file)."""
    key = ""
    if remote.api_key_file:
        key = resolve_secret_path(config_dir, remote.api_key_file).read_text().strip()
    return RemoteModel(url=remote.url, model=remote.model or "", timeout=remote.timeout,
                       api_key=key, health_interval=remote.health_interval,
                       local_fallback=remote.local_fallback)


def agent_spec(agent: AgentConfig, store: ModelStore | None,
               config_dir: Path = Path("."), site_remote: RemoteLLMConfig | None = None
               ) -> AgentSpec:
    """The daemon's view of one agent; model names resolved to files (ModelError if absent)."""
    models = None
    if store is not None:
        remote = effective_remote(site_remote, agent.models.llm_remote, agent.models.local_only)
        models = ModelPaths(stt=store.path(agent.models.stt, "stt"),
                            llm=store.path(agent.models.llm, "llm"),
                            tts=store.path(agent.models.tts, "tts"),
                            turn=store.path(agent.models.turn, "turn")
                            if agent.models.turn else None,
                            remote=remote_model(remote, config_dir) if remote else None)
    tools = tuple(tool_spec(t, config_dir) for t in agent.tools)
    prompt = instructions(agent, config_dir)
    if tools:
        prompt += "\n\n" + tool_prompt(tools)
    version = hashlib.sha256(json.dumps(agent.model_dump(), sort_keys=True).encode()
                             ).hexdigest()[:12]
    return AgentSpec(
        name=agent.name, greeting=agent.greeting, language=agent.language,
        max_call_seconds=agent.limits.max_call_seconds,
        instructions=prompt,
        models=models, end_silence=agent.turn.end_silence, min_speech=agent.turn.min_speech,
        quick_end=agent.turn.quick_end, max_end_silence=agent.turn.max_end_silence,
        turn_threshold=agent.turn.threshold,
        max_utterance=agent.turn.max_utterance, barge_in=agent.barge_in.enabled,
        barge_in_min_speech=agent.barge_in.min_speech,
        backchannel_max=agent.barge_in.backchannel_max, error_phrase=agent.error_phrase,
        knowledge=knowledge_text(agent, config_dir),
        faq=tuple((tuple(a.questions), a.answer) for a in agent.answers),
        answer_phrases=Phrases(unknown=agent.unknown_phrase, misheard=agent.misheard_phrase),
        goodbye=agent.goodbye, silence_timeout=agent.limits.silence_timeout,
        reprompt=agent.limits.reprompt, max_turns=agent.limits.max_turns,
        tools=tools,
        version=version,
        flows=tuple(flow_spec(f) for f in agent.flows), timezone=agent.timezone or "",
        recording=RecordingSpec(mode=agent.recording.mode, notice=agent.recording.notice,
                                format=agent.recording.format,
                                retention_days=agent.recording.retention_days),
    )


def transfer_context(cfg: Configuration) -> str:
    """The dialplan context transfers go to (prefixed on an operator's own Asterisk)."""
    from appliance.config.paths import recorded_runtime

    runtime = recorded_runtime(data_dir()) or cfg.site.asterisk.runtime
    return "switchboard-transfer" if runtime == "system" else "transfer"


def daemon_settings(cfg: Configuration, record_dir: Path | None = None,
                    data: Path | None = None, speech: bool = True) -> DaemonSettings:
    """Settings for ``agent.daemon.Daemon`` from ``cfg``."""
    site = cfg.site
    ari = AriSettings(
        url=f"http://127.0.0.1:{site.asterisk.ari_port}",
        username=ARI_USER,
        password=read_secret(secrets_dir(cfg.config_dir) / ARI_SECRET),
        app=APP_NAME,
    )
    store = model_store(data) if speech else None
    agents = {name: agent_spec(a, store, cfg.config_dir, site.daemon.llm_remote)
              for name, a in cfg.agents.items()}
    d = site.daemon
    return DaemonSettings(
        ari=ari,
        agents=agents,
        media_address=d.media_address,
        media_ports=range(d.media_port_start, d.media_port_end + 1),
        record_dir=record_dir,
        max_concurrent_calls=d.max_concurrent_calls,
        media_codec=d.media_codec,
        records_path=(data or data_dir()) / "calls.db",
        transfer_context=transfer_context(cfg),
        retention_days=d.retention_days,
        busy_mode=d.busy_mode,
        drain_seconds=d.drain_seconds,
        metrics_port=d.metrics_port,
        outbound=outbound_settings(cfg, "switchboard-" if transfer_context(cfg).startswith(
            "switchboard-") else ""),
        recordings_dir=recordings_dir(cfg, data),
        recording_key=recording_key(cfg),
    )


def recordings_dir(cfg: Configuration, data: Path | None = None) -> Path:
    """Where the calls' recordings are kept."""
    directory = cfg.site.daemon.recordings.directory
    if directory:
        return resolve_secret_path(cfg.config_dir, directory)
    return (data or data_dir()) / "recordings"


def recording_key(cfg: Configuration) -> bytes | None:
    """The key recordings are sealed with (None: none configured); SealedError if unusable."""
    from agent.recording.sealed import read_key

    key_file = cfg.site.daemon.recordings.key_file
    return read_key(resolve_secret_path(cfg.config_dir, key_file)) if key_file else None
