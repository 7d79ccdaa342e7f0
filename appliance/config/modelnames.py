"""Model names in agents/*.yaml resolved against the model store (<data dir>/models).

Only names and roles are read here, from the store's manifest.json (written by
appliance.models.store, which this package does not import); whether the files are intact
and load is `switchboard doctor`'s job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from appliance.config.agent import AgentConfig
from appliance.config.base import AGENT_SUFFIX, AGENTS_DIR, ConfigIssue, _did_you_mean
from appliance.config.locator import Locator

MANIFEST = "manifest.json"
ROLES = ("stt", "llm", "tts", "turn")
WHAT = {"stt": "speech-to-text", "llm": "language", "tts": "voice", "turn": "end-of-turn"}
DEFAULTS_COMMAND = "switchboard models install-defaults"


@dataclass(frozen=True)
class StoreIndex:
    """The models a store holds: name -> role."""

    root: Path
    roles: Mapping[str, str]

    def named(self, role: str) -> list[str]:
        return sorted(name for name, has in self.roles.items() if has == role)


def read_store(root: Path) -> StoreIndex | str:
    """The store's names and roles, or (as text for a warning) why there is none to check."""
    manifest = root / MANIFEST
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        roles = {str(entry["name"]): str(entry["role"]) for entry in data["models"]}
    except FileNotFoundError:
        return (f"there is no model store at {root} yet, so model names were not checked; "
                f"install.sh (or `{DEFAULTS_COMMAND}`) creates it")
    except PermissionError:
        return (f"the model store's {manifest} cannot be read (permission denied), so model "
                "names were not checked; run check as root or as the switchboard user")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return (f"the model store's {manifest} is damaged ({type(exc).__name__}), so model "
                f"names were not checked; `switchboard doctor` says more")
    return StoreIndex(root, roles)


def model_issues(cfg_dir: Path, agents: Mapping[str, AgentConfig | None], locator: Locator,
                 store: StoreIndex) -> list[ConfigIssue]:
    """Each model an agent names must be in the store, with the role it is used in."""
    issues: list[ConfigIssue] = []
    for stem, agent in agents.items():
        if agent is None:
            continue
        file = cfg_dir / AGENTS_DIR / f"{stem}{AGENT_SUFFIX}"
        for role in ROLES:
            name = getattr(agent.models, role)
            if name is None or store.roles.get(name) == role:
                continue
            written = locator.has(file, ("models", role))
            issues.append(locator.issue(file, ("models", role),
                                        *_problem(store, name, role, written)))
    return issues


def _problem(store: StoreIndex, name: str, role: str, written: bool) -> tuple[str, str]:
    present = store.named(role)
    other = store.roles.get(name)
    what = f'{role} model "{name}"' + ("" if written else " (the default)")
    if other is not None:
        message = (f'{what} is a {WHAT[other]} model ({other}) in the store, '
                   f"not a {WHAT[role]} model")
    else:
        everything = ", ".join(sorted(store.roles)) or "none"
        message = (f'{what} is not in the model store {store.root} '
                   f"(present: {everything})")
    load = f"`switchboard models import PATH --name {name}`"
    if not present:
        return message, (f"the store has no {role} model: import one with {load}, or the "
                         f"default set with `{DEFAULTS_COMMAND}`")
    guess = _did_you_mean(name, present) or present[0]
    return message, (f"write {role}: {guess} under models: ({role} models present: "
                     f"{', '.join(present)}), or import the model with {load}")
