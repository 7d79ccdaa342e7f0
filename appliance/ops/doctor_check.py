"""A doctor check's result (OK, WARN or FAIL, what was found, the fix) and the site it ran on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from appliance.config import paths
from appliance.config.schema import Configuration

OK, WARN, FAIL = "OK", "WARN", "FAIL"


@dataclass
class Check:
    """One line of the doctor's report."""

    name: str
    status: str  # OK, WARN or FAIL
    detail: str = ""
    fix: str = ""


@dataclass
class Site:
    """What the checks share about the installation."""

    config_dir: Path
    data_dir: Path
    cfg: Configuration
    runtime: str
    asterisk_root: Path | None = None

    def rx(self, command: str) -> str:
        """How the operator runs an Asterisk CLI command on this runtime."""
        if self.runtime == "contained":
            root = self.asterisk_root or paths.contained_root(self.data_dir)
            return f"chroot {root} /usr/sbin/asterisk -rx '{command}'"
        return f"asterisk -rx '{command}'"


def format_checks(checks: list[Check]) -> str:
    lines = []
    width = max(len(c.name) for c in checks)
    for c in checks:
        detail = c.detail.replace("\n", "\n" + " " * (width + 8))
        lines.append(f"{c.status:4}  {c.name:{width}}  {detail}")
        if c.fix and c.status != OK:
            lines.append(f"{'':4}  {'':{width}}  fix: {c.fix}")
    failed = sum(c.status == FAIL for c in checks)
    warned = sum(c.status == WARN for c in checks)
    lines.append(f"\n{failed} failure(s), {warned} warning(s)" if failed or warned
                 else "\nall checks passed")
    return "\n".join(lines)
