"""The YAML dialect of config files: safe loading with YAML 1.2 floats and clear errors,
and the dump that writes every resolved field in schema order.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from engine.schema.pipeline import PipelineConfig
from engine.schema.problems import ConfigError, ConfigProblem

# --- YAML

# PyYAML follows YAML 1.1, where 1e-5 (no dot) is a string; YAML 1.2 and every user read it
# as a number. Both the loader and the dumper get the wider float rule, so a string such as
# "1e5" is quoted when dumped and reads back as a string.
FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class ConfigLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable key: the base class reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found duplicate key {key!r}", key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


class _Dumper(yaml.SafeDumper):
    pass


for _cls in (ConfigLoader, _Dumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", FLOAT_RE, list("-+0123456789."))


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    # Short lists of scalars read best inline: `branching: [2, 1, 2, 1]`.
    flow = bool(data) and not any(isinstance(x, (dict, list)) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def read_yaml(text: str, source: str) -> Any:
    """The raw data of a config's YAML text (``source`` names it in problems); a syntax error
    or an empty text is a ``ConfigError`` with where and how to fix it. The desktop's editor
    validates what it reads with ``config_from_dict``."""
    try:
        data = yaml.load(text, Loader=ConfigLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown place"
        what = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigProblem(
            "<yaml>", f"YAML syntax error at {where}: {what}",
            f"fix the YAML at {where} (check indentation, colons and quotes)",
        )], source) from None
    if data is None:
        raise ConfigError([ConfigProblem(
            "<config>", "config is empty",
            "write the sections to set (start from a file in assets/presets/), or {} to take "
            "every default",
        )], source)
    return data


def dump_config(cfg: PipelineConfig) -> str:
    """YAML text of every field of ``cfg``, in declaration order; parse_config reads it back."""
    return yaml.dump(
        cfg.model_dump(mode="json"), Dumper=_Dumper, sort_keys=False, allow_unicode=True,
        default_flow_style=False, width=100,
    )


