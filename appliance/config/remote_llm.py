"""``llm_remote``: the language model on another machine (an OpenAI-compatible server), for
the whole site (switchboard.yaml, ``daemon:``) or one agent (agents/<name>.yaml, ``models:``).
"""

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from appliance.config.base import ConfigModel, Text, invalid

EXAMPLE_URL = "http://10.0.0.5:8080/v1"


def _check_remote_url(value: str) -> str:
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise invalid(f"{value!r} is not an http:// or https:// address",
                      f"write the server's API address, e.g. {EXAMPLE_URL}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise invalid(f"{value!r} has a port that is not a number from 1 to 65535",
                      f"write the address with a valid port, e.g. {EXAMPLE_URL}") from None
    if not host:
        raise invalid(f"{value!r} names no host",
                      f"write the whole address with the server's host, e.g. {EXAMPLE_URL}")
    if parts.username is not None or parts.password is not None:
        raise invalid(f"the address {parts.scheme}://…@{host} carries credentials",
                      "remove them from the address and put the key in a file named by "
                      "api_key_file: (e.g. secrets/llm-key)")
    if parts.query or parts.fragment:
        raise invalid(f"{value!r} has a query or fragment",
                      f"write the API base only, e.g. {EXAMPLE_URL}")
    if parts.path.rstrip("/") == "":
        where = f"{host}:{port}" if port else host
        raise invalid(f"{value!r} has no API path",
                      f"add the API base path, usually /v1: {parts.scheme}://{where}/v1")
    return text.rstrip("/")


RemoteUrl = Annotated[str, AfterValidator(_check_remote_url)]


class RemoteLLMConfig(ConfigModel):
    """A language model served by another machine: llama.cpp's llama-server, vLLM or any
    OpenAI-compatible /v1/chat/completions endpoint. Turns go there while it answers; when
    it does not, to the local model (models: llm) until a health check finds it back."""

    url: RemoteUrl = Field(
        description="API base of the server, up to /v1 (http:// or https://). Required.",
        examples=[EXAMPLE_URL])
    model: Text | None = Field(
        None, description="Name of the served model, sent with each request (vLLM needs "
        "it; llama.cpp serves whatever it loaded). Default: none.")
    timeout: float = Field(
        1.5, ge=0.2, le=10, description="Seconds the server may take to send the first "
        "piece of an answer (and each next piece); after that the turn goes to the local "
        "model. Default: 1.5.")
    health_interval: float = Field(
        5.0, ge=0.5, le=300, description="Seconds between health checks (GET <url>/models) "
        "while the server is down. Default: 5.")
    api_key_file: str | None = Field(
        None, description="File (relative to the config dir) holding the API key, sent as "
        "a bearer token. Default: none.")
    local_fallback: bool = Field(
        True, description="Answer with the local model while the server is down; false "
        "does not load the local model (the caller hears the error phrase instead). "
        "Default: true.")


def effective_remote(site: RemoteLLMConfig | None, agent: RemoteLLMConfig | None,
                     local_only: bool = False) -> RemoteLLMConfig | None:
    """The remote model an agent uses: its own, else the site's (none if it is local only)."""
    return None if local_only else agent or site
