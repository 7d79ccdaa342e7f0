"""An agent's behaviour on the calls it places (``outbound:`` in agents/<name>.yaml)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from appliance.config.base import ConfigModel, Text


class AgentOutboundConfig(ConfigModel):
    """How an agent behaves on calls it places."""

    detect_machine: bool = Field(True, description="Run answering-machine detection before "
                                 "the agent speaks. Default: true.")
    machine: Literal["hangup", "voicemail"] = Field(
        "hangup", description="When a machine answers: hangup, or voicemail (wait for the "
        "beep, leave voicemail_message, hang up). Default: hangup.")
    voicemail_message: Text | None = Field(
        None, description="The message left on a machine; {name} placeholders take the "
        "call's variables. Required with machine: voicemail.")
    disclosure: Text | None = Field(
        None, description="Said first on every call the agent places (e.g. that the call is "
        "automated or recorded). Default: none.",
        examples=["This is an automated call from Oakwood Pharmacy."])

    @model_validator(mode="after")
    def _message(self) -> AgentOutboundConfig:
        if self.machine == "voicemail" and not self.voicemail_message:
            raise ValueError("machine: voicemail needs a voicemail_message to leave")
        return self
