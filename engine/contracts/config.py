"""Contract: the pipeline config (engine/schema/), what each stage needs as configured
(engine/doctor.py), and the field-description layer the desktop's forms are made from."""

from __future__ import annotations

from engine.doctor import ENDPOINT_NEEDS, INSTALL_HINT, stage_needs
from engine.schema import (
    NAME_PATTERN,
    PLACEMENT_PATTERN,
    SHARDABLE_STAGES,
    STAGE_ORDER,
    TASK_STYLES,
    ConfigError,
    ConfigProblem,
    LLMEndpoint,
    OpenAIEndpoint,
    PipelineConfig,
    Resources,
    TransformersEndpoint,
    VLLMOfflineEndpoint,
    config_from_dict,
    dump_config,
    load_config,
    looks_like_secret,
    migrate,
    nested_model,
    parse_config,
    read_yaml,
)
from engine.schema.fields import FieldSpec, field_specs

__all__ = [
    "ENDPOINT_NEEDS", "INSTALL_HINT", "NAME_PATTERN", "PLACEMENT_PATTERN", "SHARDABLE_STAGES",
    "STAGE_ORDER", "TASK_STYLES", "ConfigError", "ConfigProblem", "FieldSpec", "LLMEndpoint",
    "OpenAIEndpoint", "PipelineConfig", "Resources", "TransformersEndpoint",
    "VLLMOfflineEndpoint", "config_from_dict", "dump_config", "field_specs", "load_config",
    "looks_like_secret", "migrate", "nested_model", "parse_config", "read_yaml", "stage_needs",
]
