"""Loading a configuration directory: every file parsed, validated and checked together.

Schema problems come from the models (translated by appliance.config.errors); problems across
fields and files from appliance.config.check, which this module runs after validation.
"""

import os
import sys
from pathlib import Path

from pydantic import ValidationError

from appliance.config.agent import AgentConfig
from appliance.config.base import (
    _M,
    AGENT_HINT,
    AGENT_SUFFIX,
    AGENTS_DIR,
    CONFIG_DIR_ENV,
    DEFAULT_CONFIG_DIR,
    EXAMPLE_HINT,
    SITE_FILE,
    ConfigError,
    ConfigIssue,
)
from appliance.config.check import semantic_issues
from appliance.config.errors import describe, translate_error
from appliance.config.locator import Locator, parse_yaml
from appliance.config.modelnames import StoreIndex, model_issues
from appliance.config.schema import Configuration, SiteConfig


def default_config_dir() -> Path:
    """$SWITCHBOARD_CONFIG_DIR if set, else /etc/switchboard."""
    env = os.environ.get(CONFIG_DIR_ENV, "").strip()
    return Path(env) if env else DEFAULT_CONFIG_DIR


def load_document(
    file: Path,
    model: type[_M],
    locator: Locator,
    issues: list[ConfigIssue],
    example: str = EXAMPLE_HINT,
) -> _M | None:
    """Parse and validate one file; append every issue; return the model if it validated."""
    parsed = parse_yaml(file)
    locator.add(file, parsed.lines)
    issues.extend(parsed.issues)
    if not parsed.ok:
        return None
    if parsed.empty:
        issues.append(
            ConfigIssue(
                file,
                1,
                "",
                "the file is empty",
                f"write the settings here; {example}",
            )
        )
        return None
    if not isinstance(parsed.data, dict):
        issues.append(
            ConfigIssue(
                file,
                parsed.lines.get((), 1),
                "",
                f"expected key: value settings at the top level, got {describe(parsed.data)}",
                f"start the file with top-level keys ({', '.join(model.model_fields)})",
            )
        )
        return None
    try:
        return model.model_validate(parsed.data)
    except ValidationError as exc:
        found = [
            translate_error(error, model, file, locator) for error in exc.errors(include_url=False)
        ]
        found.sort(key=lambda issue: issue.line if issue.line is not None else 0)
        issues.extend(found)
        return None


def agent_files(config_dir: Path) -> tuple[list[Path], list[ConfigIssue]]:
    """The agents/*.yaml files, plus issues for files that look like misnamed agents."""
    directory = Path(config_dir) / AGENTS_DIR
    if not directory.is_dir():
        return [], []
    files: list[Path] = []
    issues: list[ConfigIssue] = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix == AGENT_SUFFIX:
            files.append(path)
        elif path.suffix == ".yml":
            issues.append(
                ConfigIssue(
                    path,
                    None,
                    "",
                    "agent files must end in .yaml; this one is ignored",
                    f"rename it to {path.stem}{AGENT_SUFFIX}",
                )
            )
    return files, issues


def load_configuration(config_dir: Path, store: StoreIndex | None = None) -> Configuration:
    """Load and fully check a configuration directory; raise ConfigError listing every issue.

    With `store`, the agents' model names are also resolved against that model store.
    """
    config_dir = Path(config_dir)
    if not config_dir.is_dir():
        raise ConfigError(
            [
                ConfigIssue(
                    config_dir,
                    None,
                    "",
                    "configuration directory not found",
                    f"create it, or point --config-dir / ${CONFIG_DIR_ENV} at the right one",
                )
            ]
        )
    issues: list[ConfigIssue] = []
    locator = Locator()

    site_file = config_dir / SITE_FILE
    site: SiteConfig | None = None
    if site_file.is_file():
        site = load_document(site_file, SiteConfig, locator, issues)
    else:
        issues.append(
            ConfigIssue(
                site_file,
                None,
                "",
                "file not found",
                "create it, e.g. by copying the example switchboard.yaml shipped with Switchboard",
            )
        )

    files, file_issues = agent_files(config_dir)
    issues.extend(file_issues)
    agents: dict[str, AgentConfig | None] = {}
    for path in files:
        agents[path.stem] = load_document(path, AgentConfig, locator, issues, AGENT_HINT)

    issues.extend(semantic_issues(config_dir, site, agents, locator))
    if store is not None:
        issues.extend(model_issues(config_dir, agents, locator, store))
    if issues or site is None:
        raise ConfigError(issues)
    loaded = {agent.name: agent for agent in agents.values() if agent is not None}
    return Configuration(config_dir=config_dir, site=site, agents=loaded)


def load_or_report(config_dir: Path) -> Configuration | None:
    """The configuration, or None after printing every issue to stderr (for commands)."""
    try:
        return load_configuration(config_dir)
    except ConfigError as err:
        for issue in err.errors:
            print(issue, file=sys.stderr)
        return None
