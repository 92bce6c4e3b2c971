"""The strict base model and the field factories the sections share (temperature, top_p,
max tokens, LLM endpoint names, JSON retries).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
)

from engine.schema.constants import NAME_PATTERN, TEXT_PATTERN
from engine.schema.problems import rule_error

# --- Shared field types and helpers

Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)]
Text = Annotated[str, Field(pattern=TEXT_PATTERN, min_length=1, max_length=4096)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]


class StrictModel(BaseModel):
    """Config base: unknown keys are errors and assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def llm_field(default: str) -> Any:
    return Field(
        default,
        title="LLM endpoint",
        description="Name of the endpoint in `llms` this stage sends its requests to.",
    )


def temperature_field(default: float) -> Any:
    return Field(
        default, ge=0.0, le=2.0, title="Temperature",
        description="Sampling temperature of this stage's LLM calls; 0 is greedy.",
    )


def top_p_field(default: float) -> Any:
    return Field(
        default, gt=0.0, le=1.0, title="Top-p",
        description="Nucleus sampling: keep the smallest set of tokens whose probability "
        "adds up to this; 1 keeps all.",
    )


def max_tokens_field(default: int) -> Any:
    return Field(
        default, ge=16, le=1_048_576, title="Max tokens",
        description="Longest reply, in tokens, one LLM call may produce (reasoning included); "
        "on an HTTP endpoint each request is cut to what the context leaves after its prompt.",
    )


def json_retries_field() -> Any:
    return Field(
        2, ge=0, le=10, title="JSON retries",
        description="How many times a request is asked again when its reply is not valid "
        "JSON even after repair.",
    )


def unique_items(values: list[Any], what: str) -> list[Any]:
    dupes = sorted({str(v) for v in values if values.count(v) > 1})
    if dupes:
        raise rule_error([(
            "", f"lists {', '.join(dupes)} more than once",
            f"list each {what} once",
        )])
    return values


