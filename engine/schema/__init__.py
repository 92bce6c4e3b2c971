"""The pipeline config: THE definition of what a SynthSmith run does (pydantic v2).

One ``PipelineConfig`` holds a section per stage (``seeds`` ... ``eval``, in ``STAGE_ORDER``),
the named LLM endpoints the stages call (``llms``) and the run's name and seed. YAML files,
CLI overrides (``sft.lr=1e-5``), the desktop app's forms, generated launch scripts and the
docs all derive from these models: every field carries a title, a description (its tooltip
and CLI help, with the unit) and bounds or a fixed set of choices.

Use it::

    python -m engine validate assets/presets/smoke-cpu.yaml rl.group_size=4

    from engine.schema import load_config, dump_config
    cfg = load_config("assets/presets/xcoder-7b.yaml", ["sft.lr=1e-5"])
    print(dump_config(cfg))          # the full resolved config, every field

Validation reports every problem at once as a ``ConfigError`` whose ``problems`` each name the
exact dotted key (``rl.mini_batch_size``, ``seeds.sources.0.path``), say what is wrong with the
value and what to set instead. Rules come in three kinds:

- per field (types, bounds, choices, patterns, unknown keys with a "did you mean"),
- within one section (RL batch arithmetic, SFT batch vs. GPUs, weights that sum to zero):
  these run as soon as that section's own fields are valid, whatever is wrong elsewhere,
- across sections (an LLM stage names an endpoint missing from ``llms``; verification wants
  more votes than there are candidates): these run on every section that is valid on its
  own, so an error in ``sft`` does not hide a dangling ``features.llm``; a rule whose inputs
  include a broken section waits until that section is fixed.

Defaults follow the paper (shared/SYNTHSMITH.md), and ``PipelineConfig()`` is valid as it
stands: its two endpoints point at vLLM servers on 127.0.0.1:8000 and :8001 (start them, or
change ``llms``), SFT and RL ask for one node of 8 GPUs, and ``eval`` is off because it
needs a benchmark file that is not bundled. An empty file is an error ("config is empty");
``{}`` means every default. A list or mapping given in a file replaces its default whole
(``llms: {a: ...}`` defines only ``a``); a partial ``resources`` keeps the stage's defaults.

``schema_version`` is 1. A file without one is read as the current version; older versions
are upgraded through ``MIGRATIONS`` before validation; a newer one is refused.

Paths may be absolute, relative to the working directory of the stage, or start with
``assets://`` for the folder bundled with the engine (``assets://seeds/seeds.jsonl``);
resolving them is the stages' job, not this module's.

Left out on purpose: API keys (only the NAME of an environment variable that holds one),
extra HTTP headers for endpoints (they would hold secrets too), cluster profiles (a stage's
``placement`` names one; the desktop app owns them, so their existence is not checked here),
and checks that need the file system or the network (whether a seed file exists, whether an
endpoint answers): those belong to ``python -m engine doctor`` and the stages.

The package, by job (``engine.schema`` re-exports every public name; import from it):
``constants`` (stage order, patterns), ``problems`` (ConfigProblem, ConfigError), ``fields``
(the field-description layer that validation's messages and the desktop's forms share),
``common`` (the strict base model, shared field factories), ``endpoints`` (``llms``),
``run`` (the run section, resources), ``stages`` (one section per stage), ``pipeline``
(PipelineConfig, cross-section rules), ``migrations``, ``yaml_io`` (the YAML dialect),
``overrides`` (``key=value``), ``error_text`` (pydantic errors to problems), ``loading``.
"""

from __future__ import annotations

from engine.schema.common import Name, Seed, Text
from engine.schema.constants import (
    ASSETS_SCHEME,
    ENV_VAR_PATTERN,
    FEATURE_CATEGORIES,
    NAME_PATTERN,
    PLACEMENT_PATTERN,
    SCHEMA_VERSION,
    SHARDABLE_STAGES,
    STAGE_ORDER,
    TEXT_PATTERN,
    TIME_LIMIT_PATTERN,
    URL_PATTERN,
)
from engine.schema.endpoints import (
    LLMEndpoint,
    OpenAIEndpoint,
    TransformersEndpoint,
    VLLMOfflineEndpoint,
    looks_like_secret,
)
from engine.schema.fields import iter_fields, nested_model
from engine.schema.loading import config_from_dict, load_config, parse_config
from engine.schema.migrations import MIGRATIONS, migrate
from engine.schema.overrides import apply_overrides
from engine.schema.pipeline import LLM_STAGES, PipelineConfig
from engine.schema.problems import ConfigError, ConfigProblem
from engine.schema.run import MetricsSection, Resources, RunSection, WandbSettings
from engine.schema.stages import (
    LICENSE_PATTERN,
    RL_DATA_SOURCES,
    TASK_STYLES,
    CurateConfig,
    EvalConfig,
    EvolveConfig,
    FeaturesConfig,
    KindWeights,
    RlConfig,
    RlDataSource,
    SeedsConfig,
    SeedSource,
    SftConfig,
    Shape,
    SolutionsConfig,
    StageBase,
    StyleWeights,
    TasksConfig,
    TestsConfig,
    VerifyConfig,
)
from engine.schema.yaml_io import dump_config, read_yaml

__all__ = [
    "ASSETS_SCHEME",
    "ConfigError",
    "ConfigProblem",
    "CurateConfig",
    "ENV_VAR_PATTERN",
    "EvalConfig",
    "EvolveConfig",
    "FEATURE_CATEGORIES",
    "FeaturesConfig",
    "KindWeights",
    "LICENSE_PATTERN",
    "LLMEndpoint",
    "LLM_STAGES",
    "MIGRATIONS",
    "MetricsSection",
    "NAME_PATTERN",
    "Name",
    "OpenAIEndpoint",
    "PLACEMENT_PATTERN",
    "PipelineConfig",
    "RL_DATA_SOURCES",
    "Resources",
    "RlConfig",
    "RlDataSource",
    "RunSection",
    "SCHEMA_VERSION",
    "SHARDABLE_STAGES",
    "STAGE_ORDER",
    "Seed",
    "SeedSource",
    "SeedsConfig",
    "SftConfig",
    "Shape",
    "SolutionsConfig",
    "StageBase",
    "StyleWeights",
    "TASK_STYLES",
    "TEXT_PATTERN",
    "TIME_LIMIT_PATTERN",
    "TasksConfig",
    "TestsConfig",
    "Text",
    "TransformersEndpoint",
    "URL_PATTERN",
    "VLLMOfflineEndpoint",
    "VerifyConfig",
    "WandbSettings",
    "apply_overrides",
    "looks_like_secret",
    "config_from_dict",
    "dump_config",
    "iter_fields",
    "load_config",
    "migrate",
    "nested_model",
    "parse_config",
    "read_yaml",
]
