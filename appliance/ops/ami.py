"""One short AMI session (panoramisk, loopback, the generated secret) for status and doctor.

It logs in, runs a few actions and closes; it never reconnects, and every failure is one
AmiError in plain words. The queries both commands ask live here too.
"""

from __future__ import annotations

import asyncio
from typing import Any

from appliance.config.schema import Configuration
from appliance.config.secrets import AMI_SECRET, read_secret, secrets_dir
from appliance.ops.probes import LOOPBACK, os_reason
from appliance.pbx.render import AMI_USER

AMI_TIMEOUT = 3.0


class AmiError(Exception):
    """AMI could not be reached, refused the login, or an action failed or timed out."""


def _manager_class() -> type:
    from panoramisk import Manager

    class OneShotManager(Manager):
        """A Manager that never reconnects: a lost connection fails what is pending."""

        def connection_lost(self, exc: Exception | None) -> None:
            self._connected = False
            if self.pinger:
                self.pinger.cancel()
                self.pinger = None
            while self.awaiting_actions:
                action = self.awaiting_actions.popleft()
                if not action.future.done():
                    action.future.set_exception(AmiError("AMI closed the connection"))

    return OneShotManager


class AmiSession:
    """One short AMI login over panoramisk: a few actions, then close."""

    def __init__(self, host: str, port: int, username: str, secret: str,
                 timeout: float = AMI_TIMEOUT) -> None:
        self.host, self.port = host, port
        self.username, self.secret = username, secret
        self.timeout = timeout
        self.manager: Any = None

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    async def __aenter__(self) -> AmiSession:
        from panoramisk.ami_protocol import AMIProtocol

        loop = asyncio.get_running_loop()
        # panoramisk creates futures on construction: build it inside the running loop.
        self.manager = _manager_class()(
            host=self.host, port=self.port, username=self.username, secret=self.secret,
            events="off", loop=loop, ping_delay=3600, ping_interval=3600)
        try:
            transport, protocol = await asyncio.wait_for(
                loop.create_connection(AMIProtocol, self.host, self.port), self.timeout)
        except TimeoutError:
            raise AmiError(f"no answer from AMI at {self.where} within "
                           f"{self.timeout:g} s") from None
        except OSError as exc:
            raise AmiError(f"cannot connect to AMI at {self.where}: {os_reason(exc)}") from None
        done = loop.create_future()
        done.set_result((transport, protocol))
        self.manager.connection_made(done)
        login = self.manager.authenticated_future
        try:
            reply = await asyncio.wait_for(login, self.timeout)
        except (TimeoutError, AmiError):
            self.manager.close()
            raise AmiError(f"AMI at {self.where} did not answer the login") from None
        if not reply.success:
            self.manager.close()
            raise AmiError(f"AMI at {self.where} refused user '{self.username}': "
                           f"{reply.get('Message') or 'authentication failed'}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.manager is not None:
            self.manager.close()

    async def action(self, name: str, **fields: str) -> list[dict[str, Any]]:
        """Send one action; the response first, then any list events (as plain dicts)."""
        try:
            reply = await asyncio.wait_for(
                self.manager.send_action({"Action": name, **fields}), self.timeout)
        except TimeoutError:
            raise AmiError(f"AMI action {name} got no answer within {self.timeout:g} s"
                           ) from None
        messages = reply if isinstance(reply, list) else [reply]
        return [dict(m) for m in messages]

    async def single(self, name: str, **fields: str) -> dict[str, Any]:
        """An action with a single response; AmiError when Asterisk says Error."""
        reply = (await self.action(name, **fields))[0]
        if reply.get("Response") not in ("Success", "Follows"):
            raise AmiError(f"{name}: {reply.get('Message') or reply.get('Response')}")
        return reply

    async def events(self, name: str, event: str, **fields: str) -> list[dict[str, Any]]:
        """The ``event`` events of a list action (empty when Asterisk found nothing)."""
        return [m for m in await self.action(name, **fields) if m.get("Event") == event]

    async def version(self) -> str | None:
        """The Asterisk version (CoreSettings)."""
        return (await self.single("CoreSettings")).get("AsteriskVersion")

    async def module_loaded(self, module: str) -> bool:
        """Whether Asterisk has the module loaded (ModuleCheck)."""
        return (await self.action("ModuleCheck", Module=module))[0].get("Response") == "Success"

    async def registrations(self) -> dict[str, dict[str, Any]]:
        """Outbound registrations by object name (trunk-<name>), with Status and ServerUri."""
        return {str(e.get("ObjectName")): e for e in await self.events(
            "PJSIPShowRegistrationsOutbound", "OutboundRegistrationDetail")}

    async def contact_status(self, endpoint: str) -> dict[str, Any] | None:
        """An endpoint's first contact as Asterisk's OPTIONS pings see it: Status
        (Reachable, Unreachable, Unknown …) and RoundtripUsec; None without one."""
        found = await self.events("PJSIPShowEndpoint", "ContactStatusDetail",
                                  Endpoint=endpoint)
        return found[0] if found else None

    async def endpoints(self) -> dict[str, dict[str, Any]]:
        """PJSIP endpoints by object name, with DeviceState and Contacts."""
        return {str(e.get("ObjectName")): e for e in await self.events(
            "PJSIPShowEndpoints", "EndpointList")}


def ami_session(cfg: Configuration, timeout: float = AMI_TIMEOUT) -> AmiSession:
    """An AMI session with the generated credentials (AmiError if the secret is missing)."""
    path = secrets_dir(cfg.config_dir) / AMI_SECRET
    try:
        secret = read_secret(path)
    except OSError as exc:
        raise AmiError(f"cannot read the AMI secret {path}: {exc.strerror or exc}") from None
    return AmiSession(LOOPBACK, cfg.site.asterisk.ami_port, AMI_USER, secret, timeout)
