"""The agent definition: agents/<name>.yaml."""

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from agent.answers.policy import Phrases
from appliance.config.agent_outbound import AgentOutboundConfig
from appliance.config.base import (
    ConfigModel,
    Language,
    Name,
    Text,
    WholeNumber,
    invalid,
)
from appliance.config.flows import FlowConfig
from appliance.config.recording import RecordingConfig
from appliance.config.remote_llm import RemoteLLMConfig

# --------------------------------------------------------------------------------------------
# agents/<name>.yaml
# --------------------------------------------------------------------------------------------


class Daemon:
    """The daemon's defaults (agent.settings.AgentSpec), written here because importing the
    daemon's settings pulls in its audio and network stack and made `switchboard check` take
    over a second; tests/test_config.py keeps the two equal."""

    end_silence = 0.4
    quick_end = 0.2
    max_end_silence = 1.0
    turn_threshold = 0.5
    min_speech = 0.15
    max_utterance = 15.0
    barge_in_min_speech = None
    backchannel_max = 1.2
    answer_phrases = Phrases()


class AgentLimits(ConfigModel):
    """Bounds on one call with this agent."""

    max_call_seconds: WholeNumber = Field(
        1800, ge=5, le=86400,
        description="Longest call in seconds; the agent then says goodbye and hangs up. "
        "Default: 1800.",
    )
    silence_timeout: float = Field(
        10.0, ge=2.0, le=300.0,
        description="Seconds the caller may stay silent before the agent reprompts; after a "
        "second such silence it says goodbye and hangs up. Default: 10.",
    )
    reprompt: Text = Field(
        "Are you still there?",
        description="Said after the first silence timeout. Default: \"Are you still there?\"",
    )
    max_turns: WholeNumber = Field(
        50, ge=1, le=1000,
        description="Caller turns before the agent says goodbye and hangs up. Default: 50.",
    )


def _check_tool_name(value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", value):
        raise invalid(f"tool name {value!r} is not a valid name",
                      "use lowercase letters, digits and _ (starting with a letter, at most "
                      "40 characters), e.g. book_appointment")
    return value


ToolName = Annotated[str, AfterValidator(_check_tool_name)]


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise invalid(f"{value!r} is not a known time zone",
                      "write an IANA name such as Europe/Berlin or America/New_York "
                      "(see timedatectl list-timezones)") from None
    return value


TimeZone = Annotated[str, AfterValidator(_check_timezone)]


def _check_url(value: str) -> str:
    host = urlsplit(value).hostname
    if not host:
        raise invalid(f"{value!r} names no host",
                      "write the whole address, e.g. http://127.0.0.1:9000/appointments")
    return value


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _check_headers(value: dict[str, str]) -> dict[str, str]:
    for name, text in value.items():
        if not _TOKEN.fullmatch(name):
            raise invalid(f"header name {name!r} is not a valid HTTP header name",
                          "use letters, digits and - only, e.g. X-Api-Key")
        bad = next((c for c in text if ord(c) < 32 or ord(c) == 127), None)
        if bad is not None:
            raise invalid(f"the value of header {name} contains the control character "
                          f"U+{ord(bad):04X} (a line break would start a new header)",
                          "write the value on one line without control characters")
    return value


class WebhookConfig(ConfigModel):
    """An HTTP endpoint of the business's own system that carries out a tool."""

    url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$"),
                   AfterValidator(_check_url)] = Field(
        description="http:// or https:// URL that receives the arguments as JSON. Required.",
        examples=["http://127.0.0.1:9000/appointments"],
    )
    method: Literal["POST", "GET"] = Field(
        "POST", description="POST sends a JSON body; GET sends query parameters. "
        "Default: POST.")
    headers: Annotated[dict[str, str], AfterValidator(_check_headers)] = Field(
        default_factory=dict, description="Extra HTTP headers. Default: none.")
    timeout: float = Field(1.5, gt=0, le=10, description="Seconds per attempt. Default: 1.5.")
    retries: WholeNumber = Field(1, ge=0, le=3, description="Further attempts after a refused "
                                 "connection or a 5xx answer. Default: 1.")
    secret_file: str | None = Field(
        None, description="File (relative to the config dir) holding the HMAC-SHA256 key; "
        "requests are signed the Standard Webhooks way (webhook-id, webhook-timestamp, "
        "webhook-signature over id.timestamp.body). Default: none (unsigned).")


class DtmfCollect(ConfigModel):
    """Collect keypad digits from the caller into one of the tool's parameters."""

    parameter: str = Field(description="Parameter that receives the digits. Required.")
    prompt: Text = Field("Please enter the number on your keypad, then press hash.",
                         description="Said before collecting. Default: asks for the digits.")
    terminator: Literal["#", "*"] = Field("#", description="Key that ends the entry. "
                                          "Default: #.")
    timeout: float = Field(8.0, ge=1, le=60, description="Seconds without a key press that "
                           "end the entry. Default: 8.")
    max_digits: WholeNumber = Field(16, ge=1, le=64, description="Entry ends after this many "
                                    "digits. Default: 16.")


class ToolConfig(ConfigModel):
    """Something the agent can do: call a webhook, or a built-in action."""

    name: ToolName = Field(description="Name the model uses: lowercase letters, digits and _. "
                           "Required.", examples=["book_appointment"])
    description: Text = Field(description="When to use it, in one sentence for the model. "
                              "Required.")
    builtin: Literal["transfer", "hangup", "send_dtmf"] | None = Field(
        None, description="A built-in action instead of a webhook. Default: none.")
    webhook: WebhookConfig | None = Field(None, description="The webhook that carries out "
                                          "the tool. Default: none.")
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="JSON Schema (type: object) of the arguments. Default: no arguments.")
    wait_phrase: str | None = Field(None, description="Said while the webhook runs. "
                                    "Default: nothing.")
    result_phrase: str | None = Field(
        None, description="Said after a successful webhook, with {field} replaced from its "
        "JSON answer, e.g. \"Your order is {status}.\" Default: none (the model words the "
        "result).")
    failure_phrase: Text = Field(
        "Sorry, I could not do that right now.",
        description="Said when the webhook fails or times out (within 2 s); the call goes on. "
        "Default: a short apology.")
    dtmf: DtmfCollect | None = Field(None, description="Collect one parameter from the "
                                     "keypad. Default: none.")
    targets: dict[str, str] = Field(
        default_factory=dict,
        description="For builtin: transfer — who the caller can be put through to: a label "
        "the model uses mapped to a phone extension or an outside number. Default: none.",
        examples=[{"reception": "101", "sales": "102"}])
    mode: Literal["blind", "attended"] = Field(
        "blind", description="For builtin: transfer — blind hands the call over at once; "
        "attended (phone extensions) calls the target first, announces the caller, and "
        "stays with the caller if nobody answers. Default: blind.")

    @model_validator(mode="after")
    def _one_action(self) -> "ToolConfig":
        if (self.builtin is None) == (self.webhook is None):
            raise invalid("a tool needs exactly one of builtin / webhook",
                          "add webhook: {url: ...} or builtin: transfer|hangup|send_dtmf")
        if self.builtin == "transfer" and not self.targets:
            raise invalid("a transfer tool needs targets",
                          "add targets: {reception: \"101\"} (label: extension or number)")
        if self.parameters.get("type", "object") != "object":
            raise invalid("parameters must be a JSON Schema of type object",
                          "write parameters: {type: object, properties: {...}}")
        if self.dtmf and self.dtmf.parameter not in self.parameters.get("properties", {}):
            raise invalid(f"dtmf.parameter {self.dtmf.parameter!r} is not among the "
                          "parameters' properties", "name one of parameters.properties")
        return self


class AgentModels(ConfigModel):
    """Which models from the model store (`switchboard models list`) the agent uses."""

    stt: Name = Field("moonshine-base-en", description="Speech-to-text (Moonshine ONNX or "
                      "Whisper ggml). Default: moonshine-base-en.")
    llm: Name = Field("smollm2-135m", description="Language model (GGUF). "
                      "Default: smollm2-135m.")
    tts: Name = Field("piper-joe-medium", description="Voice (Piper .onnx). "
                      "Default: piper-joe-medium.")
    turn: Name | None = Field(None, description="Audio end-of-turn model, e.g. smart-turn-v3, "
                              "judging from the voice whether the caller has finished. "
                              "Default: none (judged from the words alone).")
    llm_remote: RemoteLLMConfig | None = Field(
        None, description="The language model on another machine for this agent, instead "
        "of the site's daemon.llm_remote. Default: the site's.")
    local_only: bool = Field(False, description="true: this agent's language model always "
                             "runs on this machine, even when the site has daemon.llm_remote. "
                             "Default: false.")


class TurnConfig(ConfigModel):
    """When the caller's turn is over."""

    end_silence: float = Field(Daemon.end_silence, ge=0.15, le=3.0, description="Seconds "
                               "of silence that end the caller's turn when nothing judges it "
                               f"finished or not. Default: {Daemon.end_silence}.")
    quick_end: float = Field(Daemon.quick_end, ge=0.1, le=3.0, description="Seconds of "
                             "silence that end a turn judged finished (a whole question). "
                             f"Default: {Daemon.quick_end}.")
    max_end_silence: float = Field(Daemon.max_end_silence, ge=0.15, le=5.0,
                                   description="The longest silence a turn judged unfinished "
                                   "(\"my number is 555 …\") waits for the caller to go on. "
                                   f"Default: {Daemon.max_end_silence}.")
    threshold: float = Field(Daemon.turn_threshold, gt=0, lt=1, description="With a turn "
                             "model: the probability from which a turn is finished. "
                             f"Default: {Daemon.turn_threshold}.")
    min_speech: float = Field(Daemon.min_speech, ge=0.05, le=2.0, description="Shortest "
                              "sound, in seconds, that counts as speech. "
                              f"Default: {Daemon.min_speech}.")
    max_utterance: float = Field(Daemon.max_utterance, ge=2.0, le=120.0, description="Longest "
                                 "caller turn in seconds; the agent then answers anyway. "
                                 f"Default: {Daemon.max_utterance:g}.")


class BargeInConfig(ConfigModel):
    """Whether and when the caller can interrupt the agent."""

    enabled: bool = Field(True, description="The caller can interrupt the agent. Default: true.")
    min_speech: float | None = Field(
        Daemon.barge_in_min_speech, ge=0.05, le=3.0,
        description="Seconds of caller speech during the agent's answer that are judged (or, "
        "with backchannel_max 0, interrupt); shorter sounds are taken for a cough and the "
        "answer goes on. Default: 0.15 with Moonshine, which hears a cough as no words; 0.3 "
        "with Whisper, which makes words of one.")
    backchannel_max: float = Field(Daemon.backchannel_max, ge=0.0, le=3.0,
                                   description="Speech over the agent's answer shorter than "
                                   "this is judged by its words when it ends: 'mm-hm', "
                                   "'yeah', 'okay' let the answer go on, anything else "
                                   "interrupts (0: interrupt at min_speech without judging). "
                                   f"Default: {Daemon.backchannel_max}.")


class AnswerConfig(ConfigModel):
    """A question callers ask, and the answer the agent says to it word for word."""

    questions: list[Text] = Field(
        min_length=1, description="Ways a caller may ask it (a few paraphrases match best). "
        "Required.", examples=[["Are you open on Saturday?", "What are your weekend hours?"]])
    answer: Text = Field(description="What the agent says, as written (recorded once, played "
                         "at once). Required.", examples=["On Saturday we are open 9 to 1."])


class AgentConfig(ConfigModel):
    """One AI agent; the file agents/<name>.yaml. New settings are added as plain fields."""

    name: Name = Field(
        description="Agent name; must equal the file name without .yaml. Required.",
        examples=["demo"],
    )
    description: str | None = Field(
        None, description="Free text for people reading the config. Default: none."
    )
    language: Language = Field(
        "en", description="Language code of the conversation, e.g. en, de, en-GB. Default: en."
    )
    greeting: Text = Field(
        description="First sentence the agent says when it answers. Required.",
        examples=["Hello, how can I help?"],
    )
    limits: AgentLimits = Field(
        default_factory=AgentLimits,
        description="Call limits. Default: each limit's own default.",
    )
    instructions: str = Field(
        "You are a friendly telephone assistant. Answer in one or two short, plain sentences "
        "without lists or symbols.",
        description="What the agent is and how it behaves (the language model's system "
        "prompt). Default: a short, friendly phone assistant.",
    )
    models: AgentModels = Field(
        default_factory=AgentModels,
        description="Models by name from the model store. Default: the bundled set.",
    )
    turn: TurnConfig = Field(default_factory=TurnConfig,
                             description="End-of-turn detection. Default: each setting's own.")
    barge_in: BargeInConfig = Field(default_factory=BargeInConfig,
                                    description="Interruptions. Default: enabled, 0.3 s.")
    knowledge: str | None = Field(
        None, description="Facts the agent answers from (opening hours, prices, directions), "
        "given to the model with the instructions. Default: none.")
    knowledge_file: str | None = Field(
        None, description="A text file with such facts, relative to the config dir. "
        "Default: none.")
    answers: list[AnswerConfig] = Field(
        default_factory=list, description="Questions with fixed answers, said word for word "
        "when a caller's question matches. With knowledge or answers the agent answers only "
        "from them and says when it does not know. Default: none.")
    unknown_phrase: Text = Field(
        Daemon.answer_phrases.unknown, description="Said when the caller asks something "
        "the agent's knowledge does not cover (a person is offered when there is a transfer "
        f"tool). Default: \"{Daemon.answer_phrases.unknown}\"")
    misheard_phrase: Text = Field(
        Daemon.answer_phrases.misheard, description="Said when the caller's words could "
        "not be made out; the second time in a row a person is offered. "
        f"Default: \"{Daemon.answer_phrases.misheard}\"")
    goodbye: Text = Field(
        "Thank you for calling. Goodbye.",
        description="Said before the agent hangs up. Default: \"Thank you for calling. "
        "Goodbye.\"")
    tools: list[ToolConfig] = Field(
        default_factory=list, description="What the agent can do beyond talking. "
        "Default: none.")
    error_phrase: Text = Field(
        "Sorry, I am having a problem right now. Please say that again.",
        description="Said when something fails mid-call, so the caller never hears dead air. "
        "Default: a short apology.",
    )
    flows: list[FlowConfig] = Field(
        default_factory=list, description="Task flows: forms the agent fills in with the "
        "caller (dates, times, numbers, names), reads back, then hands to a webhook tool. "
        "Default: none.")
    timezone: TimeZone | None = Field(
        None, description="IANA time zone of the caller's \"today\" and \"tomorrow\" and of "
        "a flow's opening hours, e.g. Europe/Berlin. Default: the system's.")
    outbound: AgentOutboundConfig = Field(
        default_factory=AgentOutboundConfig, description="How the agent behaves on calls it "
        "places (machine detection, voicemail, disclosure). Default: each setting's default.")
    recording: RecordingConfig = Field(
        default_factory=RecordingConfig, description="Call recordings: policy, format, "
        "retention. Default: off.")


