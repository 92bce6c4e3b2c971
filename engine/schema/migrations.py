"""Upgrading a config written for an older ``schema_version`` before it is validated.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from engine.schema.constants import SCHEMA_VERSION
from engine.schema.problems import ConfigError, ConfigProblem

# --- Migrations


def rename_key(data: dict, section: str, old: str, new: str) -> None:
    part = data.get(section)
    if isinstance(part, dict) and old in part:
        value = part.pop(old)
        part.setdefault(new, value)  # a file that already has the new key keeps it


def _migrate_0_to_1(data: dict) -> dict:
    # Version 0 named these fields after the libraries rather than the paper.
    rename_key(data, "sft", "learning_rate", "lr")
    rename_key(data, "rl", "rollouts_per_prompt", "group_size")
    return data


# from-version -> function that turns a config of that version into the next version.
MIGRATIONS: dict[int, Callable[[dict], dict]] = {0: _migrate_0_to_1}


def migrate(raw: dict) -> dict:
    """Upgrade a raw config dict to SCHEMA_VERSION (a copy; ``raw`` is left alone).

    A missing ``schema_version`` means the current version. A non-integer one is left for
    validation to report. A version newer than this engine raises ConfigError.
    """
    data = copy.deepcopy(raw)
    version = data.get("schema_version", SCHEMA_VERSION)
    if isinstance(version, bool) or not isinstance(version, int):
        return data
    if version > SCHEMA_VERSION:
        raise ConfigError([ConfigProblem(
            "schema_version",
            f"is {version}, but this engine reads versions up to {SCHEMA_VERSION}: the config "
            "was written by a newer SynthSmith",
            "upgrade the engine (update SynthSmith Studio; it uploads the engine with each run)",
        )], "<dict>")
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise ConfigError([ConfigProblem(
                "schema_version", f"is {version}, which this engine cannot migrate from",
                f"set it to {SCHEMA_VERSION} and check the file against a current preset",
            )], "<dict>")
        data = step(data)
        version += 1
        data["schema_version"] = version
    return data


