"""Reading a config: from a dict, from YAML text or from a file, with overrides; every
problem at once as a ``ConfigError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import (
    ValidationError,
)

from engine.schema.error_text import cross_section_problems, problems_from_error, show_value
from engine.schema.migrations import migrate
from engine.schema.overrides import override_problems
from engine.schema.pipeline import PipelineConfig
from engine.schema.problems import ConfigError, ConfigProblem
from engine.schema.yaml_io import read_yaml

# --- Loading


def config_from_dict(
    raw: dict, overrides: Sequence[str] = (), source: str = "<dict>"
) -> PipelineConfig:
    """Migrate, override and validate a raw config; ConfigError lists every problem."""
    if not isinstance(raw, dict):
        raise ConfigError([ConfigProblem(
            "<config>", f"the top level is {show_value(raw)}, not a mapping of sections",
            "write the config as `section: {key: value}` mappings, e.g. `sft:` then "
            "indented `lr: 5e-5`",
        )], source)
    try:
        data = migrate(raw)
    except ConfigError as exc:
        raise ConfigError(exc.problems, source) from None
    data, problems = override_problems(data, overrides)
    try:
        cfg = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            problems += problems_from_error(err)
        problems += cross_section_problems(data, exc)
    # `from None`: the pydantic error echoes input values (which may hold a pasted secret).
    if problems:
        raise ConfigError(problems, source) from None
    return cfg


def parse_config(
    text: str, overrides: Sequence[str] = (), source: str = "<string>"
) -> PipelineConfig:
    """Read a config from YAML text; an empty text or a non-mapping is a ConfigError."""
    return config_from_dict(read_yaml(text, source), overrides, source)


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> PipelineConfig:
    """Read a config from a YAML file; a missing or unreadable file is a ConfigError."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(
            "<file>", "no such file",
            "check the path (relative paths start at the current directory); presets live "
            "in assets/presets/",
        )], source) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem(
            "<file>", f"cannot read it: {exc}", "give a readable UTF-8 YAML file",
        )], source) from None
    return parse_config(text, overrides, source)


