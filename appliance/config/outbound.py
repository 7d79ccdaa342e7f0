"""Outbound calling in switchboard.yaml (``outbound:``) and in an agent (``outbound:``).

A site with an ``outbound:`` section runs the local API that places calls (``switchboard
dial``, campaigns, ``POST /calls``); the rules here are checked before every dial.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from appliance.config.agent import TimeZone
from appliance.config.base import ConfigModel, IPAddress, Name, Port, Text, WholeNumber

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class CallingHoursConfig(ConfigModel):
    """When calls may be placed, in the callee's local time."""

    start: str = Field("09:00", description="Local time calls may start, HH:MM. "
                       "Default: 09:00.", examples=["09:00"])
    end: str = Field("20:00", description="Local time from which no call starts, HH:MM "
                     "(after start, same day). Default: 20:00.", examples=["20:00"])
    days: list[Day] = Field(default_factory=lambda: list(DAYS[:5]), min_length=1,
                            description="Weekdays calls may be placed, from mon tue wed thu "
                            "fri sat sun. Default: mon to fri.")

    @field_validator("start", "end")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        parts = value.split(":")
        if len(parts) != 2 or not all(p.isdigit() and len(p) == 2 for p in parts) \
                or int(parts[0]) > 23 or int(parts[1]) > 59:
            raise ValueError(f"{value!r} is not a time of day: write HH:MM, e.g. 09:00")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> CallingHoursConfig:
        if self.end <= self.start:
            raise ValueError("calling_hours.end must be after start on the same day")
        return self


class RetryConfig(ConfigModel):
    """Retries of calls that were busy or not answered."""

    busy: WholeNumber = Field(2, ge=0, le=10, description="Retries after a busy signal. "
                              "Default: 2.")
    no_answer: WholeNumber = Field(2, ge=0, le=10, description="Retries after ringing out. "
                                   "Default: 2.")
    backoff_seconds: float = Field(300, ge=1, le=86400, description="Wait before the first "
                                   "retry, seconds. Default: 300.")
    factor: float = Field(2.0, ge=1, le=10, description="Each further retry waits this many "
                          "times longer. Default: 2.")


class OutboundConfig(ConfigModel):
    """Outbound calls: the local API, the default trunk and the calling rules."""

    api_address: IPAddress = Field("127.0.0.1", description="Address the local calls API "
                                   "listens on (POST /calls, bearer token in "
                                   "secrets/outbound-api.token). Default: 127.0.0.1.")
    api_port: Port = Field(9110, description="Port of the local calls API. Default: 9110.")
    default_trunk: Name | None = Field(None, description="Trunk calls go out over when they "
                                       "name none. Default: the first trunk not from a "
                                       "front.")
    ring_seconds: WholeNumber = Field(30, ge=5, le=120, description="How long the callee's "
                                      "phone rings before the call counts as no answer. "
                                      "Default: 30.")
    timezone: TimeZone = Field("UTC", description="The callee's IANA time zone when a call "
                               "or campaign row gives none. Default: UTC.",
                               examples=["America/New_York"])
    calling_hours: CallingHoursConfig | None = Field(
        default_factory=CallingHoursConfig, description="When calls may be placed, in the "
        "callee's time zone; null: any time. Default: 09:00-20:00, Monday to Friday.")
    do_not_call_file: Text | None = Field(
        None, description="File of numbers never to call, one a line (# comments), "
        "relative to the config directory; read again when it changes. Default: none.",
        examples=["do-not-call.txt"])
    max_concurrent: WholeNumber = Field(2, ge=1, le=100, description="Outbound calls in "
                                        "progress at once. Default: 2.")
    reserve_inbound: WholeNumber = Field(1, ge=0, le=100, description="Lines of "
                                         "daemon.max_concurrent_calls no outbound call may "
                                         "take, kept for callers. Default: 1.")
    retries: RetryConfig = Field(default_factory=RetryConfig, description="Retries of busy "
                                 "and unanswered calls. Default: each setting's default.")
    amd_seconds: float = Field(3.0, ge=2, le=10, description="Answering-machine detection "
                               "decides within this many seconds of the answer (AMD's total "
                               "analysis time). Default: 3.")
    beep_wait_seconds: float = Field(20.0, ge=3, le=60, description="Leaving a message: the "
                                     "longest wait for the machine's beep. Default: 20.")
