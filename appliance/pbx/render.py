"""Render the Asterisk configuration from switchboard.yaml and the templates.

Two modes:

* ``full`` — Switchboard owns the Asterisk (contained or package runtime): every file in
  the Asterisk etc dir is written from ``asterisk/`` and ``dialplan/``.
* ``system`` — an operator's existing Asterisk (e.g. FreePBX): nothing of theirs is
  overwritten. Our sections go to ``<etc>/switchboard/*.conf`` and one ``#tryinclude``
  line is appended to each of their files; every change is reported.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import jinja2

from appliance.config.base import unsafe_character
from appliance.config.paths import SYSTEM_ETC
from appliance.config.schema import Configuration
from appliance.config.secrets import AMI_SECRET, ARI_SECRET, ensure_secret, secrets_dir
from appliance.config.tls_check import effective_transport, transports_used
from appliance.pbx.certs import ensure_certificates, tls_paths, trusted_bundle

APP_NAME = "switchboard"
TLS_KEYS_DIR = "keys"  # under Asterisk's etc dir: the TLS certificate, key and trusted CAs
ARI_USER = "switchboard"
AMI_USER = "switchboard"
MODULE_DIR = "/usr/lib/x86_64-linux-gnu/asterisk/modules"

# Loaded with autoload=no. Order does not matter; Asterisk resolves declared dependencies,
# the undeclared ones are listed explicitly.
MODULES = [
    # core plumbing
    "res_timing_timerfd.so", "res_sorcery_config.so", "res_sorcery_memory.so",
    "res_sorcery_astdb.so", "res_security_log.so", "pbx_config.so", "func_callerid.so",
    "func_channel.so", "func_strings.so", "app_dial.so", "app_playback.so", "app_echo.so",
    "format_wav.so", "format_pcm.so", "format_gsm.so",
    "app_amd.so",  # answering-machine detection on outbound calls
    # codecs
    "codec_ulaw.so", "codec_alaw.so", "codec_a_mu.so", "codec_g722.so", "codec_resample.so",
    "codec_gsm.so",
    # SIP
    "res_pjproject.so", "res_pjsip.so", "res_pjsip_pubsub.so", "res_pjsip_session.so",
    "chan_pjsip.so", "res_pjsip_authenticator_digest.so",
    "res_pjsip_outbound_authenticator_digest.so", "res_pjsip_endpoint_identifier_ip.so",
    "res_pjsip_endpoint_identifier_user.so", "res_pjsip_registrar.so",
    "res_pjsip_outbound_registration.so", "res_pjsip_sdp_rtp.so", "res_pjsip_nat.so",
    "res_pjsip_caller_id.so", "res_pjsip_rfc3326.so", "res_pjsip_dtmf_info.so",
    "res_pjsip_refer.so", "res_pjsip_diversion.so", "res_pjsip_header_funcs.so",
    "res_pjsip_logger.so", "func_pjsip_endpoint.so",
    # media
    "res_srtp.so", "res_rtp_asterisk.so", "res_rtp_multicast.so", "chan_rtp.so",
    "bridge_simple.so", "bridge_softmix.so", "bridge_native_rtp.so", "bridge_holding.so",
    # ARI
    "res_http_websocket.so", "res_websocket_client.so", "res_stasis.so",
    "res_stasis_answer.so", "res_stasis_playback.so", "res_stasis_recording.so",
    "res_stasis_device_state.so", "res_stasis_snoop.so", "app_stasis.so", "res_ari.so",
    "res_ari_model.so",
    "res_ari_applications.so", "res_ari_asterisk.so", "res_ari_bridges.so",
    "res_ari_channels.so", "res_ari_endpoints.so", "res_ari_events.so",
    "res_ari_playbacks.so", "res_ari_recordings.so", "res_ari_sounds.so",
    "res_ari_device_states.so",
]
# Added when browser calls are on (asterisk.browser_calls): SIP over WebSocket, Opus.
BROWSER_MODULES = ["res_pjsip_transport_websocket.so", "codec_opus_open_source.so"]

FULL_FILES = {
    "asterisk.conf": "asterisk/asterisk.conf.j2",
    "modules.conf": "asterisk/modules.conf.j2",
    "logger.conf": "asterisk/logger.conf.j2",
    "http.conf": "asterisk/http.conf.j2",
    "ari.conf": "asterisk/ari.conf.j2",
    "manager.conf": "asterisk/manager.conf.j2",
    "rtp.conf": "asterisk/rtp.conf.j2",
    "pjsip.conf": "asterisk/pjsip.conf.j2",
    "stasis.conf": "asterisk/stasis.conf.j2",
    "cdr.conf": "asterisk/cdr.conf.j2",
    "cel.conf": "asterisk/cel.conf.j2",
    "features.conf": "asterisk/features.conf.j2",
    "acl.conf": "asterisk/acl.conf.j2",
    "udptl.conf": "asterisk/udptl.conf.j2",
    "pjproject.conf": "asterisk/pjproject.conf.j2",
    "websocket_client.conf": "asterisk/websocket_client.conf.j2",
    "ccss.conf": "asterisk/ccss.conf.j2",
    "indications.conf": "asterisk/indications.conf.j2",
    "extensions.conf": "dialplan/extensions.conf.j2",
    "amd.conf": "asterisk/amd.conf.j2",
    "sorcery.conf": "asterisk/sorcery.conf.j2",
}
# system mode: our file → the operator's file that includes it
SYSTEM_FILES = {
    "ari.conf": "ari.conf",
    "manager.conf": "manager.conf",
    "pjsip.conf": "pjsip.conf",
    "extensions.conf": "extensions.conf",
}


def share_dir() -> Path:
    """Directory holding ``asterisk/``, ``dialplan/`` and ``systemd/``."""
    env = os.environ.get("SWITCHBOARD_SHARE_DIR")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "asterisk").is_dir() and (checkout / "dialplan").is_dir():
        return checkout
    return Path(sys.prefix).parent / "share"


@dataclass
class RenderReport:
    """What a render did to the Asterisk etc dir."""

    changed: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"changed   {p}" for p in self.changed]
        out += [f"unchanged {p}" for p in self.unchanged]
        return out + self.notes


class RenderError(ValueError):
    """A value cannot be written into Asterisk's configuration."""


def config_value(value: object) -> str:
    """Every value written into Asterisk's configuration: a control character (a newline
    would start a new line of configuration) is refused outright, and ``;`` (which starts
    a comment) is escaped, so no value can add to or cut short the file it goes into."""
    text = "" if value is None else str(value)
    bad = unsafe_character(text)
    if bad is not None:
        raise RenderError(f"a value for Asterisk's configuration contains {bad}; "
                          "run `switchboard check` to find it")
    return text.replace(";", "\\;")


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(share_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
        finalize=config_value,
    )


def _is_loopback_or_any(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_loopback or ip.is_unspecified


def _transport_name(protocol: str, full: bool) -> str | None:
    """The transport section an endpoint is pinned to (None: the operator's own, system mode)."""
    return f"transport-{protocol}" if full else None


def _tls_context(cfg: Configuration, mode: str, etc_dir: Path) -> dict:
    """Where Asterisk finds the TLS files render copies into ``<etc>/keys``."""
    keys = (Path("/etc/asterisk") if mode == "full" else etc_dir) / TLS_KEYS_DIR
    return {"cert": keys / "switchboard-sip.crt", "key": keys / "switchboard-sip.key",
            "ca": keys / "switchboard-ca.crt",
            "verify_server": cfg.site.network.tls.verify_server}


def template_context(cfg: Configuration, mode: Literal["full", "system"],
                     etc_dir: Path = Path("/etc/asterisk")) -> dict:
    """Everything the templates need, with secrets resolved."""
    site = cfg.site
    net = site.network
    sdir = secrets_dir(cfg.config_dir)
    ari_password, _ = ensure_secret(sdir / ARI_SECRET)
    ami_secret, _ = ensure_secret(sdir / AMI_SECRET)
    routes = site.routes
    did_agent = {r.did: r.agent for r in routes.rules if r.did}
    full = mode == "full"
    browser_calls = full and site.asterisk.browser_calls
    trunks = []
    for t in site.trunks:
        trunks.append({
            "name": t.name, "host": t.host, "port": t.port, "codecs": t.codecs,
            "transport": _transport_name(t.transport, full), "srtp": t.srtp,
            "uri_params": ";transport=tls" if t.transport == "tls" else "",
            "registration": t.registration, "caller_id": t.caller_id,
            "password": cfg.secret(t.registration) if t.registration else None,
            "match_list": t.identify_match(),
            "did_agents": [(d, did_agent[d]) for d in t.dids if d in did_agent],
            "from_front": t.from_front,
        })
    phones = []
    for p in site.phones:
        transport = effective_transport(site, p.transport)
        phones.append({
            "extension": p.extension, "name": p.name or p.extension, "codecs": p.codecs,
            "password": cfg.secret(p), "transport": _transport_name(transport, full),
            "tls_only": transport == "tls", "srtp": p.srtp,
        })
    advertise = net.advertise_address
    if advertise and (advertise == net.bind_address or _is_loopback_or_any(advertise)):
        advertise = None
    return {
        "full": full,
        # the Asterisk Switchboard starts itself (not the distro's service in /etc/asterisk)
        # logs to its console only, through the relay that takes callers out (logrelay.py)
        "console_relay": full and etc_dir.resolve() != SYSTEM_ETC,
        "app": APP_NAME,
        "context_prefix": "" if mode == "full" else "switchboard-",
        "transports": [
            {"name": _transport_name(proto, True), "protocol": proto,
             "port": net.tls_port if proto == "tls" else net.sip_port}
            for proto in transports_used(site)
        ],
        "tls": _tls_context(cfg, mode, etc_dir) if "tls" in transports_used(site) else None,
        "net": net,
        "advertise": advertise,
        "local_networks": list(net.local_networks or []),
        "ari_port": site.asterisk.ari_port,
        "ami_port": site.asterisk.ami_port,
        "ari_user": ARI_USER,
        "ari_password": ari_password,
        "ari_secret_path": sdir / ARI_SECRET,
        "ami_user": AMI_USER,
        "ami_secret": ami_secret,
        "ami_secret_path": sdir / AMI_SECRET,
        "trunks": trunks,
        "phones": phones,
        "default_agent": routes.default_agent,
        "extension_agents": [(r.extension, r.agent) for r in routes.rules if r.extension],
        "outbound_trunk": next((t.name for t in site.trunks if not t.from_front), None),
        "browser_calls": browser_calls,
        "modules": MODULES + (BROWSER_MODULES if browser_calls else []),
        "moddir": MODULE_DIR,
        "tone_country": "us",
        "amd_ms": round(1000 * (site.outbound.amd_seconds if site.outbound else 3.0)),
    }


def _write_if_changed(path: Path, text: str, report: RenderReport,
                      owner: tuple[int, int] | None) -> None:
    """Write atomically, mode 0640 (the files hold secrets), root-owned and readable by
    Asterisk's group only; an unchanged file gets that owner and mode too (an older
    install may have left it with the package's ids)."""
    if path.exists() and path.read_text() == text:
        st = path.stat()
        if owner is not None and (st.st_uid, st.st_gid) != (0, owner[1]):
            os.chown(path, 0, owner[1])
        if owner is not None and st.st_mode & 0o7777 != 0o640:
            path.chmod(0o640)
        report.unchanged.append(path)
        return
    tmp = path.with_name(path.name + ".switchboard-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        if owner is not None:
            os.fchown(f.fileno(), 0, owner[1])
    os.replace(tmp, path)
    report.changed.append(path)


def _write_tls_files(cfg: Configuration, etc_dir: Path, report: RenderReport,
                     owner: tuple[int, int] | None) -> None:
    """Copy the certificate, key and trusted CAs where Asterisk reads them (0640, readable
    by Asterisk's group only), generating the certificate first when needed."""
    report.notes += ensure_certificates(cfg.config_dir, cfg.site)
    paths = tls_paths(cfg.config_dir, cfg.site)
    keys = etc_dir / TLS_KEYS_DIR
    keys.mkdir(mode=0o750, exist_ok=True)
    if owner is not None:
        os.chown(keys, 0, owner[1])
    for name, data in (("switchboard-sip.crt", paths.cert.read_text()),
                       ("switchboard-sip.key", paths.key.read_text()),
                       ("switchboard-ca.crt", trusted_bundle(cfg).decode())):
        _write_if_changed(keys / name, data, report, owner)


def render(cfg: Configuration, etc_dir: Path, mode: Literal["full", "system"] = "full",
           owner: tuple[int, int] | None = None) -> RenderReport:
    """Write the Asterisk configuration for ``cfg`` into ``etc_dir``.

    ``owner`` is the (uid, gid) Asterisk runs as: files are made readable by that group.
    """
    env = _environment()
    ctx = template_context(cfg, mode, etc_dir)
    report = RenderReport()
    etc_dir.mkdir(parents=True, exist_ok=True)
    if ctx["tls"] is not None:
        _write_tls_files(cfg, etc_dir, report, owner)
    if mode == "full":
        for name, template in FULL_FILES.items():
            _write_if_changed(etc_dir / name, env.get_template(template).render(ctx), report,
                              owner)
        return report
    ours = etc_dir / "switchboard"
    ours.mkdir(exist_ok=True)
    for name in SYSTEM_FILES:
        template = FULL_FILES[name]
        _write_if_changed(ours / name, env.get_template(template).render(ctx), report,
                              owner)
    mod_lines = "".join(f"load = {m}\n" for m in MODULES)
    _write_if_changed(ours / "modules.conf", "; Switchboard's modules\n" + mod_lines, report,
                      owner)
    for name, target in {**SYSTEM_FILES, "modules.conf": "modules.conf"}.items():
        _append_include(etc_dir / target, f"switchboard/{name}", report)
    if cfg.site.asterisk.browser_calls:
        report.notes.append("asterisk.browser_calls is not set up on an existing Asterisk "
                            "(runtime: system): its WebSocket transport, sorcery.conf and "
                            "rtp.conf stay the operator's; the console's Talk page is off")
    report.notes.append(
        "ARI needs Asterisk's HTTP server: check http.conf has enabled=yes, "
        f"bindaddr=127.0.0.1 and bindport={cfg.site.asterisk.ari_port}, then "
        "`asterisk -rx 'core reload'`."
    )
    return report


def _append_include(path: Path, include: str, report: RenderReport) -> None:
    line = f"#tryinclude {include}"
    text = path.read_text() if path.exists() else ""
    if line in text.splitlines():
        return
    with path.open("a") as f:
        f.write(("" if text.endswith("\n") or not text else "\n")
                + f"; added by switchboard render\n{line}\n")
    report.notes.append(f"appended `{line}` to {path}")
