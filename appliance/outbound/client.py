"""The daemon's local calls API, from the command line (``dial``, campaigns)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from appliance.config.schema import Configuration
from appliance.config.secrets import read_secret
from appliance.outbound.settings import token_path


class ApiUnavailable(RuntimeError):
    """The daemon's calls API did not answer."""


class CallsApi:
    """``POST /calls`` and ``GET /calls/{id}`` with the bearer token."""

    def __init__(self, url: str, token: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    @classmethod
    def from_config(cls, cfg: Configuration) -> CallsApi:
        out = cfg.site.outbound
        if out is None:
            raise ApiUnavailable("outbound calls are off: add an `outbound:` section to "
                                 "switchboard.yaml and restart the daemon")
        path = token_path(cfg.config_dir)
        if not path.is_file():
            raise ApiUnavailable(f"no API token at {path}: start the daemon "
                                 "(`switchboard run`) once with the outbound: section")
        host = f"[{out.api_address}]" if ":" in out.api_address else out.api_address
        return cls(f"http://{host}:{out.api_port}", read_secret(path))

    def _request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                payload = json.loads(exc.read() or b"null")
            except ValueError:
                payload = None
            return exc.code, payload
        except (urllib.error.URLError, OSError) as exc:
            raise ApiUnavailable(f"the daemon's calls API at {self.url} is not answering "
                                 f"({type(exc).__name__}): is `switchboard run` running?"
                                 ) from exc

    def place(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """(HTTP status, the job or an error): 202 placing, 409 refused, 400 bad request."""
        status, payload = self._request("POST", "/calls", body)
        if status == 401:
            raise ApiUnavailable("the calls API refused the token: restart the daemon so it "
                                 "reads secrets/outbound-api.token")
        return status, payload or {}

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The job, or None when the daemon does not know it (restarted since)."""
        status, payload = self._request("GET", f"/calls/{job_id}")
        if status == 404:
            return None
        if status != 200:
            raise ApiUnavailable(f"the calls API answered {status}")
        return payload
