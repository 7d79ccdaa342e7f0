"""``switchboard doctor``: check the appliance piece by piece and say how to fix what fails.

Each check is a small function returning a ``Check`` (OK, WARN or FAIL, what was found, and
for a failure the fix in a sentence or two). The configuration, secret files, models and the
advertised address are checked from the files; Asterisk over AMI and ARI; the media path by
a loopback test call with the SIP test phone into the default agent, telling "no audio out",
"no audio in" and "wrong codec" apart. The whole run stays within about 15 seconds.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from appliance.ops.ami import AmiError, ami_session
from appliance.ops.doctor_asterisk import (
    AmiFacts,
    ami_facts,
    check_ami,
    check_ari,
    check_daemon,
    check_modules,
    check_reachable,
    check_trunks,
)
from appliance.ops.doctor_call import check_call
from appliance.ops.doctor_check import FAIL, OK, WARN, Check, Site, format_checks
from appliance.ops.doctor_files import (
    check_advertise,
    check_airgap,
    check_configuration,
    check_secrets,
)
from appliance.ops.doctor_models import check_models
from appliance.ops.doctor_tls import check_tls
from appliance.ops.guard import check_brute_force
from appliance.ops.probes import quiet_probe_logs, runtime_of


async def live_checks(site: Site, call: bool = True) -> list[Check]:
    """The checks that talk to Asterisk and the daemon."""
    facts: AmiFacts | None = None
    error = None
    try:
        async with ami_session(site.cfg) as ami:
            facts = await ami_facts(ami, [t.name for t in site.cfg.site.trunks])
    except AmiError as exc:
        error = str(exc)
    modules = await asyncio.to_thread(check_modules, site, facts)
    asterisk_runs = facts is not None or modules.status != WARN
    checks = [check_ami(site, facts, error, asterisk_runs), modules]
    ari = await check_ari(site, asterisk_runs)
    checks.append(ari)
    daemon = await check_daemon(site, ari.status == OK)
    checks.append(daemon)
    checks.append(check_advertise(site.cfg))
    checks += await check_trunks(site, facts)
    checks += check_reachable(site, facts)
    if not call:
        return checks
    if daemon.status == FAIL or ari.status != OK:
        checks.append(Check("test call", WARN, "not run: the agent daemon is not connected "
                            "(see above)"))
    else:
        call_checks = await check_call(site)
        if modules.status == FAIL:
            for check in call_checks:
                if check.status == FAIL:
                    check.detail += "; likely cause: the Asterisk modules not loaded (above)"
        checks += call_checks
    return checks


def run_doctor(config_dir: Path, data_dir: Path, *, call: bool = True,
               asterisk_root: Path | None = None) -> list[Check]:
    """Every check, in order; a broken configuration stops after the file checks."""
    config_check, cfg = check_configuration(config_dir)
    if cfg is not None and cfg.site.front is not None:  # a Kamailio front: no appliance parts
        from appliance.ops.doctor_front import check_front

        return [config_check, *check_front(cfg)]
    checks = [config_check, check_secrets(config_dir, cfg)]
    if cfg is None:
        return checks
    site = Site(config_dir, data_dir, cfg, runtime_of(cfg, data_dir), asterisk_root)
    checks += check_models(cfg, data_dir)
    checks.append(check_brute_force(site.runtime, data_dir, asterisk_root))
    checks.append(check_airgap(cfg))
    tls = check_tls(cfg)
    if tls is not None:
        checks.append(tls)
    checks += asyncio.run(live_checks(site, call))
    return checks


def main(config_dir: Path, data_dir: Path, as_json: bool = False, call: bool = True) -> int:
    """CLI entry: print every check; exit 1 if any failed."""
    quiet_probe_logs()
    began = time.monotonic()
    checks = run_doctor(config_dir, data_dir, call=call)
    if as_json:
        json.dump({"ok": not any(c.status == FAIL for c in checks),
                   "seconds": round(time.monotonic() - began, 1),
                   "checks": [asdict(c) for c in checks]}, sys.stdout, indent=2)
        print()
    else:
        print(format_checks(checks))
    return 1 if any(c.status == FAIL for c in checks) else 0
