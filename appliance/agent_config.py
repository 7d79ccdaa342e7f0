"""The agent definition: agents/<name>.yaml."""

from pydantic import Field

from appliance.config_base import (
    ConfigModel,
    Language,
    Name,
    Text,
    WholeNumber,
)

# --------------------------------------------------------------------------------------------
# agents/<name>.yaml
# --------------------------------------------------------------------------------------------


class AgentLimits(ConfigModel):
    """Bounds on one call with this agent."""

    max_call_seconds: WholeNumber = Field(
        1800, ge=5, le=86400,
        description="Longest call in seconds; the agent then hangs up. Default: 1800.",
    )


class AgentModels(ConfigModel):
    """Which models from the model store (`switchboard models list`) the agent uses."""

    stt: Name = Field("whisper-tiny-en", description="Speech-to-text (Whisper, ggml). "
                      "Default: whisper-tiny-en.")
    llm: Name = Field("smollm2-135m", description="Language model (GGUF). "
                      "Default: smollm2-135m.")
    tts: Name = Field("piper-joe-medium", description="Voice (Piper .onnx). "
                      "Default: piper-joe-medium.")


class TurnConfig(ConfigModel):
    """When the caller's turn is over."""

    end_silence: float = Field(0.45, ge=0.15, le=3.0, description="Seconds of silence that "
                               "end the caller's turn. Default: 0.45.")
    min_speech: float = Field(0.15, ge=0.05, le=2.0, description="Shortest sound, in seconds, "
                              "that counts as speech. Default: 0.15.")
    max_utterance: float = Field(15.0, ge=2.0, le=120.0, description="Longest caller turn in "
                                 "seconds; the agent then answers anyway. Default: 15.")


class BargeInConfig(ConfigModel):
    """Whether and when the caller can interrupt the agent."""

    enabled: bool = Field(True, description="The caller can interrupt the agent. Default: true.")
    min_speech: float = Field(0.3, ge=0.05, le=3.0, description="Seconds of caller speech "
                              "during the agent's answer that count as an interruption (a "
                              "cough should not). Default: 0.3.")


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
    error_phrase: Text = Field(
        "Sorry, I am having a problem right now. Please say that again.",
        description="Said when something fails mid-call, so the caller never hears dead air. "
        "Default: a short apology.",
    )


