"""From pydantic's errors to ``ConfigProblem``s: the dotted key, the value shown, and the fix.
"""

from __future__ import annotations

import difflib
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import (
    BaseModel,
    ValidationError,
)

from engine.schema.constants import SENSITIVE_KEYS
from engine.schema.fields import constraints_of, is_model, kind_text, union_members, unwrap
from engine.schema.pipeline import PipelineConfig
from engine.schema.problems import ConfigProblem


@dataclass
class _Target:
    """What a pydantic error location points at in the schema."""

    key: str
    annotation: Any = None  # None when the location leaves the schema (an unknown key)
    constraints: dict[str, Any] | None = None
    parent: type[BaseModel] | None = None  # model that owns the last segment


def resolve_loc(loc: tuple[Any, ...]) -> _Target:
    parts: list[str] = []
    ann: Any = PipelineConfig
    constraints: dict[str, Any] = {}
    parent = None
    key_ann: Any = None
    for item in loc:
        if ann is None:
            parts.append(str(item))
            continue
        inner, _, _ = unwrap(ann)
        if item == "[key]":
            ann, constraints = key_ann, {}
            continue
        if is_model(inner):
            parent = inner
            info = inner.model_fields.get(str(item))
            ann = info.annotation if info else None
            constraints = constraints_of(info) if info else {}
        elif typing.get_origin(inner) is list:
            ann, constraints = typing.get_args(inner)[0], {}
        elif typing.get_origin(inner) is dict:
            key_ann, ann = typing.get_args(inner)
            constraints = {}
        elif item in union_members(inner):
            ann = union_members(inner)[item]  # a tag pydantic puts in the location
            continue
        else:
            ann = None
        parts.append(str(item))
    if ann is not None:
        inner, more, _ = unwrap(ann)
        constraints = {**constraints, **more}
    return _Target(".".join(parts), ann, constraints, parent)




def show_value(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _join(base: str, key: str) -> str:
    return f"{base}.{key}" if base and key else base or key or "<config>"


def problems_from_error(err: dict[str, Any]) -> list[ConfigProblem]:
    loc = tuple(err["loc"])
    kind = err["type"]
    ctx = err.get("ctx") or {}
    target = resolve_loc(loc)
    leaf = str(loc[-1]) if loc else ""
    shown = "<hidden>" if leaf in SENSITIVE_KEYS else show_value(err.get("input"))

    if kind == "config_rule":
        return [ConfigProblem(_join(target.key, p["key"]), p["message"], p["fix"])
                for p in ctx["problems"]]
    if kind == "extra_forbidden":
        valid = list(target.parent.model_fields) if target.parent else []
        close = difflib.get_close_matches(leaf, valid, n=1, cutoff=0.6)
        where = ".".join(str(x) for x in loc[:-1]) or "the top level"
        fix = (f"did you mean '{close[0]}'? Rename it, or remove it" if close
               else f"remove it; keys allowed here: {', '.join(valid)}")
        return [ConfigProblem(target.key, f"unknown key '{leaf}' in {where}", fix)]
    expected = kind_text(target.annotation, target.constraints)
    if kind == "missing":
        return [ConfigProblem(target.key, "is required but missing", f"add {leaf}: {expected}")]
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        tags = ", ".join(union_members(unwrap(target.annotation)[0]))
        got = f"is {ctx.get('tag')!r}, not a known backend" if "tag" in ctx else "is missing"
        return [ConfigProblem(_join(target.key, "backend"), got, f"set it to one of: {tags}")]
    if loc and loc[-1] == "[key]":
        return [ConfigProblem(target.key, f"'{loc[-2]}' is not a valid name",
                              f"rename it: use {expected}")]
    if kind == "string_pattern_mismatch":
        message = f"has the wrong form (got {shown})"
    else:
        msg = err["msg"]
        for subject in ("Input should", "String should", "List should", "Dictionary should"):
            msg = msg.replace(subject, "must")
        message = f"{msg[:1].lower()}{msg[1:]} (got {shown})"
    if target.annotation is None:
        return [ConfigProblem(target.key, message, "check this key against a preset")]
    return [ConfigProblem(target.key, message, f"set it to {expected}")]


def cross_section_problems(data: dict, err: ValidationError) -> list[ConfigProblem]:
    """Run the across-section rules on the sections that are valid on their own."""
    failed = {str(e["loc"][0]) for e in err.errors() if e["loc"]}
    if not failed:
        return []  # a whole-config error, or the cross rules already ran and failed
    partial = {k: v for k, v in data.items() if k not in failed and k in PipelineConfig.model_fields}
    try:
        PipelineConfig.model_validate(partial, context={"unchecked": failed})
    except ValidationError as again:
        return [p for e in again.errors() if not e["loc"] for p in problems_from_error(e)]
    return []


