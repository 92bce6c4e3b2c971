"""CLI-style overrides (``sft.lr=1e-5``, ``seeds.sources.0.path=...``) applied to raw config data.
"""

from __future__ import annotations

import copy
import functools
import typing
from collections.abc import Sequence
from typing import Any

import yaml

from engine.schema.error_text import resolve_loc, show_value
from engine.schema.fields import unwrap
from engine.schema.pipeline import PipelineConfig
from engine.schema.problems import ConfigError, ConfigProblem
from engine.schema.yaml_io import ConfigLoader

# --- Overrides


def override_problems(raw: dict, overrides: Sequence[str]) -> tuple[dict, list[ConfigProblem]]:
    data = copy.deepcopy(raw)
    problems: list[ConfigProblem] = []
    fix = "write it as KEY=VALUE with a dotted key, e.g. sft.lr=1e-5"
    for override in overrides:
        if not isinstance(override, str) or "=" not in override:
            key = str(override).strip() or "<override>"
            problems.append(ConfigProblem(key, f"override {override!r} has no '='", fix))
            continue
        key, _, text = override.partition("=")
        key = key.strip()
        parts = key.split(".")
        if not key or any(not p.strip() for p in parts):
            problems.append(ConfigProblem(
                key or "<override>", f"override {override!r} has an empty key or key segment", fix,
            ))
            continue
        problem = _set_path(data, parts, _parse_value(text))
        if problem:
            problems.append(ConfigProblem(key, problem, "override a value, or a key inside a "
                                          "section that the file or the schema has"))
    return data, problems


def _parse_value(text: str) -> Any:
    try:
        return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError:
        return text  # not YAML: take it as the string it is


def _set_path(data: dict, parts: list[str], value: Any) -> str | None:
    """Set data[p0][p1]...=value, creating dicts on the way; a message if that is impossible."""
    node: Any = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[:depth]) or "the top level"
        if isinstance(node, dict):
            if last:
                node[part] = value
                return None
            if node.get(part) is None:
                default = _default_container(parts[: depth + 1])
                if default is not None:
                    node[part] = default
                elif parts[depth + 1].isdigit():
                    here = ".".join(parts[: depth + 1])
                    return (f"{here} is not in the config, so its item {parts[depth + 1]} "
                            f"cannot be set; write the list {here} in the file")
                else:
                    node[part] = {}
            node = node[part]
        elif isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                return f"{where} is a list of {len(node)} item(s); '{part}' is not an index in it"
            if last:
                node[int(part)] = value
                return None
            node = node[int(part)]
        else:
            return f"{where} is a value ({show_value(node)}), not a section with keys"
    return None


def _default_container(parts: list[str]) -> Any:
    """The default of a list or mapping field at ``parts`` (as plain data), else None.

    Sections need no such help (pydantic fills their missing keys), but a list or mapping
    given in part would replace the whole default: ``llms.generator.api_key_env=X`` on a
    file without ``llms`` must edit the default endpoint, not define a new, empty one.
    """
    target = resolve_loc(tuple(parts))
    origin = typing.get_origin(unwrap(target.annotation)[0]) if target.annotation else None
    if origin not in (list, dict):
        return None
    node: Any = _default_data()
    for part in parts:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return copy.deepcopy(node)


@functools.cache
def _default_data() -> dict:
    return PipelineConfig().model_dump(mode="json")


def apply_overrides(raw: dict, overrides: Sequence[str]) -> dict:
    """A copy of ``raw`` with each ``a.b.c=VALUE`` applied (VALUE read as YAML).

    Missing sections on the way are created; a list or mapping missing from ``raw`` starts
    as its default, so ``llms.generator.model=...`` and ``seeds.sources.0.limit=5`` edit
    the defaults. A numeric segment indexes a list. Malformed overrides raise ConfigError;
    keys the schema does not know are left for validation to report.
    """
    data, problems = override_problems(raw, overrides)
    if problems:
        raise ConfigError(problems, "<overrides>")
    return data


