"""What the data plane needs to know, as plain values (built by the control plane)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from agent.answers.guard import Sources
from agent.answers.knowledge import Knowledge
from agent.answers.policy import Phrases, fixed_texts
from agent.ari import AriSettings
from agent.flows.spec import FlowSpec
from agent.outbound.settings import OutboundSettings
from agent.recording.writer import RecordingSpec
from agent.speech.remote_chat import RemoteModel
from agent.speech.turns import TurnSettings
from agent.speech.word_bias import words_in
from agent.tools.spec import ToolSpec

ANNOUNCEMENT = "I have a caller for you from the phone agent. Connecting you now."


@dataclass(frozen=True)
class ModelPaths:
    """Files of the three models one agent uses."""

    stt: Path
    llm: Path
    tts: Path
    turn: Path | None = None  # audio end-of-turn model (None: judged from the words)
    remote: RemoteModel | None = None  # the language model on another machine (llm: fallback)


@dataclass(frozen=True)
class AgentSpec:
    """One agent as the daemon runs it."""

    name: str
    greeting: str
    language: str = "en"
    max_call_seconds: float = 3600.0
    instructions: str = "You are a friendly telephone assistant."
    models: ModelPaths | None = None  # None: no speech (bundled chime, record only)
    end_silence: float = TurnSettings.end_silence  # when nothing judges the turn complete
    quick_end: float = 0.2  # silence that ends a turn judged complete
    max_end_silence: float = 1.0  # the longest a turn judged unfinished waits
    turn_threshold: float = 0.5  # turn model probability from which a turn is complete
    min_speech: float = TurnSettings.min_speech
    max_utterance: float = TurnSettings.max_utterance
    barge_in: bool = True
    barge_in_min_speech: float | None = None  # None: by the transcriber (barge_in_floor)
    backchannel_max: float = 1.2  # shorter speech over the agent is judged by its words
    error_phrase: str = "Sorry, I am having a problem right now. Please say that again."
    goodbye: str = "Thank you for calling. Goodbye."
    silence_timeout: float = 10.0
    reprompt: str = "Are you still there?"
    max_turns: int = 50
    tools: tuple[ToolSpec, ...] = ()  # one per declared tool
    version: str = ""  # hash of the agent's configuration, for call records
    flows: tuple[FlowSpec, ...] = ()  # task flows: forms filled in with the caller, then a tool
    timezone: str = ""  # IANA zone of the call's local date and time; "": the system's
    knowledge: str = ""  # free facts, one per line (the model phrases answers from them)
    faq: tuple[tuple[tuple[str, ...], str], ...] = ()  # (questions, answer said as written)
    answer_phrases: Phrases = Phrases()  # "I don't know", "say that again" and the offers
    model_phrases_facts: bool = False  # a matched free fact is put in words by the model
    recording: RecordingSpec = RecordingSpec()  # off, on, or announced; format, retention

    @property
    def can_transfer(self) -> bool:
        """A transfer tool with somewhere to go: the agent can offer a person."""
        return any(t.kind == "transfer" and t.targets for t in self.tools)

    @cached_property
    def knowledge_index(self) -> Knowledge:
        """The knowledge, indexed once per agent (not once per call)."""
        return Knowledge.build(self.knowledge, self.faq)

    @cached_property
    def guard_sources(self) -> Sources:
        """What the model's answers may state, read once per agent (not once per turn)."""
        return Sources.of(f"{self.instructions} {self.greeting}")

    @cached_property
    def heard_words(self) -> tuple[str, ...]:
        """Words callers of this agent are likely to say, from what it is set up with: its
        knowledge and answers, instructions and greeting, transfer targets, tools' values,
        flows' cues and choices. The transcriber favours the uncommon ones (names, drugs,
        products) when it half-hears them (``agent.speech.word_bias``)."""
        texts = [self.greeting, self.instructions, self.knowledge]
        texts += [q for questions, answer in self.faq for q in (*questions, answer)]
        for tool in self.tools:
            texts += list(tool.targets)
            texts += [str(v) for prop in tool.parameters.get("properties", {}).values()
                      if isinstance(prop, dict) for v in prop.get("enum", ())]
        for flow in self.flows:
            texts += list(flow.cues)
            texts += [w for slot in flow.slots for label, synonyms in slot.choices.items()
                      for w in (label, *synonyms)]
        return words_in(texts)

    def phrases(self) -> list[str]:
        """Fixed texts the agent may say, synthesized once when it loads."""
        texts = [self.greeting, self.error_phrase, self.goodbye, self.reprompt]
        if self.recording.mode == "announce":
            texts.append(self.recording.notice)
        for tool in self.tools:
            texts += [t for t in (tool.wait_phrase, tool.failure_phrase, tool.dtmf_prompt)
                      if t]
            if tool.kind == "transfer" and tool.mode == "attended":
                texts.append(ANNOUNCEMENT)
        for flow in self.flows:
            texts += flow.phrases()
        texts += fixed_texts(self.answer_phrases, self.knowledge_index, self.can_transfer)
        return list(dict.fromkeys(texts))


@dataclass(frozen=True)
class DaemonSettings:
    """Everything the agent daemon is started with."""

    ari: AriSettings
    agents: Mapping[str, AgentSpec]
    media_address: str = "127.0.0.1"
    media_ports: range = range(40000, 41000)
    record_dir: Path | None = None  # when set, each call's received audio is kept as WAV
    max_concurrent_calls: int = 8
    media_codec: str = "ulaw"  # ExternalMedia leg: "ulaw" (narrowband) or "g722" (wideband)
    records_path: Path | None = None  # SQLite call records (None: not recorded)
    transfer_context: str = "transfer"  # dialplan context that reaches phones and trunks
    retention_days: float = 90.0
    busy_mode: str = "prompt"  # callers beyond max_concurrent_calls: "prompt" or "busy"
    drain_seconds: float = 30.0
    metrics_port: int | None = 9108  # None: no metrics/status endpoint
    outbound: OutboundSettings | None = None  # None: the daemon only answers
    recordings_dir: Path | None = None  # call recordings (agents whose policy is not off)
    recording_key: bytes | None = None  # recordings are sealed with it (None: plain files)
