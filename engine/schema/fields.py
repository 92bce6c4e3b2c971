"""The field-description layer: annotations peeled to their type, bounds and nullability,
the words for a kind and a range, and the walk over every field of the schema. Validation's
error text and the desktop's form generator (gui/schema_form.py) both read fields through it.
"""

from __future__ import annotations

import functools
import operator
import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from engine.schema.constants import PATTERN_HINTS

# --- Peeling annotations


def unwrap(tp: Any) -> tuple[Any, dict[str, Any], bool]:
    """(inner type, constraints, nullable) with Annotated and Optional peeled off."""
    constraints: dict[str, Any] = {}
    nullable = False
    while True:
        if typing.get_origin(tp) is Annotated:
            tp, *meta = typing.get_args(tp)
            for m in meta:
                constraints.update(constraints_of(m))
        elif is_union(tp) and type(None) in typing.get_args(tp):
            nullable = True
            rest = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = functools.reduce(operator.or_, rest)
        else:
            return tp, constraints, nullable


def constraints_of(meta: Any) -> dict[str, Any]:
    if isinstance(meta, FieldInfo):
        out: dict[str, Any] = {}
        for m in meta.metadata:
            out.update(constraints_of(m))
        return out
    names = ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern")
    return {n: getattr(meta, n) for n in names if getattr(meta, n, None) is not None}


def is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def union_members(tp: Any) -> dict[str, type[BaseModel]]:
    """backend tag -> model, for a union of models told apart by a Literal `backend`."""
    members = {}
    for m in typing.get_args(tp) if is_union(tp) else ():
        if is_model(m) and "backend" in m.model_fields:
            members[typing.get_args(m.model_fields["backend"].annotation)[0]] = m
    return members




def number_text(x: Any) -> str:
    return str(x) if isinstance(x, int) else repr(x)


def range_text(c: dict[str, Any]) -> str:
    low = f"at least {number_text(c['ge'])}" if "ge" in c else (
        f"above {number_text(c['gt'])}" if "gt" in c else "")
    high = f"at most {number_text(c['le'])}" if "le" in c else (
        f"below {number_text(c['lt'])}" if "lt" in c else "")
    if "ge" in c and "le" in c:
        return f"between {number_text(c['ge'])} and {number_text(c['le'])}"
    return " and ".join(t for t in (low, high) if t)


def kind_text(ann: Any, extra: dict[str, Any] | None = None) -> str:
    """What a valid value looks like, as a noun phrase: 'a whole number between 1 and 8'."""
    inner, c, nullable = unwrap(ann)
    c = {**c, **(extra or {})}
    tail = ", or null" if nullable else ""
    origin = typing.get_origin(inner)
    if inner is bool:
        text = "true or false"
    elif inner is int:
        text = f"a whole number {range_text(c)}".rstrip()
    elif inner is float:
        text = f"a number {range_text(c)}".rstrip()
    elif origin is Literal:
        text = "one of: " + ", ".join(str(a) for a in typing.get_args(inner))
    elif inner is str:
        if "pattern" in c:
            text = PATTERN_HINTS.get(c["pattern"], f"text matching {c['pattern']}")
        else:
            text = "text"
        if "max_length" in c and "pattern" not in c:
            text += f" of at most {c['max_length']} characters"
    elif origin is list:
        size = f" of {c['min_length']}" if c.get("min_length") == c.get("max_length") else (
            f" of at most {c['max_length']}" if "max_length" in c else "")
        text = f"a list{size} items, each {kind_text(typing.get_args(inner)[0])}"
    elif origin is dict:
        text = "a mapping from names to " + kind_text(typing.get_args(inner)[1])
    elif is_model(inner):
        text = "a mapping with the keys " + ", ".join(inner.model_fields)
    elif union_members(inner):
        text = "an endpoint mapping with backend: " + ", ".join(union_members(inner))
    else:
        text = "a value of the documented form"
    return text + tail




# --- Walking the schema


def nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model class a field of this annotation holds (a section, ``resources``), else None."""
    inner, _, _ = unwrap(annotation)
    return inner if is_model(inner) else None


def iter_fields(
    model_cls: type[BaseModel], prefix: str = ""
) -> Iterator[tuple[str, FieldInfo, Any]]:
    """Every field under ``model_cls`` as (dotted path, FieldInfo, annotation), depth first.

    A field holding a model is yielded, then its fields. ``*`` stands for any list index or
    mapping key (``seeds.sources.*.path``) and ``[tag]`` for one member of a tagged union
    (``llms.*[openai].base_url``).
    """
    for name, info in model_cls.model_fields.items():
        path = f"{prefix}{name}"
        yield path, info, info.annotation
        yield from _iter_nested(info.annotation, path)


def _iter_nested(ann: Any, path: str) -> Iterator[tuple[str, FieldInfo, Any]]:
    inner, _, _ = unwrap(ann)
    if is_model(inner):
        yield from iter_fields(inner, f"{path}.")
    elif typing.get_origin(inner) is list:
        yield from _iter_nested(typing.get_args(inner)[0], f"{path}.*")
    elif typing.get_origin(inner) is dict:
        yield from _iter_nested(typing.get_args(inner)[1], f"{path}.*")
    else:
        for tag, member in union_members(inner).items():
            yield from iter_fields(member, f"{path}[{tag}].")


# --- What a form shows of each field (gui/schema_form.py draws it)


@dataclass(frozen=True)
class FieldSpec:
    """What the form needs to know about one field of a model."""

    name: str
    title: str
    description: str
    kind: str  # bool | int | float | choice | text | yaml_line | yaml | group
    nullable: bool = False
    choices: tuple[Any, ...] = ()  # for "choice"
    bounds: str = ""  # "between 1 and 1024" (range_text), for the tooltip
    model: type[BaseModel] | None = None  # for "group"
    children: tuple[FieldSpec, ...] = field(default=())

    @property
    def unit(self) -> str:
        """The unit the value is in, from the field's name (``time_limit_s`` -> "s")."""
        return unit_of(self.name)

    @property
    def label(self) -> str:
        """The row's label: the title, with the unit where the field has one."""
        return f"{self.title} ({self.unit})" if self.unit else self.title

    @property
    def tooltip(self) -> str:
        extra = []
        if self.bounds:
            extra.append(self.bounds)
        if self.nullable:
            extra.append("may be left empty")
        return self.description + (f" ({'; '.join(extra)})" if extra else "")


# Units by the end of a field's name: shown in the label, not only in the tooltip (a time limit
# "30" next to another "24:00:00" reads as nonsense without them).
_UNIT_SUFFIXES = (("_s", "s"), ("_ms", "ms"), ("_kb", "KB"), ("_mb", "MB"), ("_gb", "GB"),
                  ("_gib", "GiB"), ("_chars", "characters"), ("_tokens", "tokens"),
                  ("_pct", "%"))
_UNIT_NAMES = {"time_limit": "D-HH:MM:SS", "max_tokens": "tokens",
               "max_new_tokens": "tokens"}


def unit_of(name: str) -> str:
    if name in _UNIT_NAMES:
        return _UNIT_NAMES[name]
    return next((unit for end, unit in _UNIT_SUFFIXES if name.endswith(end)), "")


def plain_list(tp: Any) -> bool:
    """A list of scalars, or of lists of scalars: fits on one line as YAML."""
    if typing.get_origin(tp) is not list:
        return False
    item, _, _ = unwrap(typing.get_args(tp)[0])
    return item in (int, float, str, bool) or typing.get_origin(item) is Literal \
        or plain_list(item)


def field_specs(model: type[BaseModel], include: Sequence[str] | None = None) -> list[FieldSpec]:
    """The fields of ``model`` (only ``include``, in that order, when given)."""
    names = list(include) if include is not None else list(model.model_fields)
    specs = []
    for name in names:
        info = model.model_fields[name]
        inner, limits, nullable = unwrap(info.annotation)
        for meta in info.metadata:
            limits = {**constraints_of(meta), **limits}
        common = {"name": name, "title": info.title or name,
                  "description": info.description or "", "nullable": nullable,
                  "bounds": range_text(limits)}
        if inner is bool:
            specs.append(FieldSpec(kind="bool", **common))
        elif inner in (int, float):
            specs.append(FieldSpec(kind=inner.__name__, **common))
        elif typing.get_origin(inner) is Literal:
            specs.append(FieldSpec(kind="choice", choices=typing.get_args(inner), **common))
        elif inner is str:
            specs.append(FieldSpec(kind="text", **common))
        elif is_model(inner):
            specs.append(FieldSpec(kind="group", model=inner,
                                   children=tuple(field_specs(inner)), **common))
        else:
            specs.append(FieldSpec(kind="yaml_line" if plain_list(inner) else "yaml",
                                   **common))
    return specs
