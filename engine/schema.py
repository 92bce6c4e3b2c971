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
"""

from __future__ import annotations

import copy
import difflib
import functools
import operator
import re
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

# --- Constants

SCHEMA_VERSION: int = 1

STAGE_ORDER: tuple[str, ...] = (
    "seeds", "features", "evolve", "tasks", "solutions", "tests",
    "verify", "curate", "sft", "rl", "eval",
)
# Stages whose work splits into independent shards (the runner's ``--shard I/N``; on Slurm a
# job array when ``resources.nodes`` > 1 and the stage asks for no GPU). Data here, so the
# desktop plans jobs without importing stage modules; each module says how it splits.
SHARDABLE_STAGES: frozenset[str] = frozenset(
    {"features", "evolve", "tasks", "solutions", "tests", "verify"})

# The keys of the JSON the features stage asks for (SYNTHSMITH.md §1): ten feature
# categories plus the one-line summary, which is free text and dropped when trees merge.
FEATURE_CATEGORIES: tuple[str, ...] = (
    "programming_language",
    "problem_domain",
    "algorithmic_paradigm",
    "algorithms",
    "mathematics",
    "problem_solving_strategies",
    "data_structures",
    "coding_techniques",
    "complexity_analysis",
    "optimization_techniques",
    "summary",
)

ASSETS_SCHEME = "assets://"

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
PLACEMENT_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9 ._-]{0,62}[A-Za-z0-9._-])?$"
ENV_VAR_PATTERN = r"^[A-Z_][A-Z0-9_]*$"
# Slurm's --time forms we accept: minutes, HH:MM:SS, D-HH:MM:SS.
TIME_LIMIT_PATTERN = r"^(?:[1-9][0-9]{0,5}|[0-9]{1,4}:[0-5][0-9]:[0-5][0-9]|[0-9]{1,3}-(?:[01]?[0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9])$"
URL_PATTERN = r"^https?://[^\s/?#]+(?:[/?#]\S*)?$"
TEXT_PATTERN = r"^\S(?:.*\S)?$"  # one line, no leading or trailing spaces

# What a user should type when a value does not match a pattern (fix texts use these).
_PATTERN_HINTS: dict[str, str] = {
    NAME_PATTERN: "a name of letters, digits, '.', '_' or '-' that starts with a letter or digit "
    "(at most 64 characters), e.g. generator",
    PLACEMENT_PATTERN: "a cluster profile name of letters, digits, spaces, '.', '_' or '-' "
    "(at most 64 characters), e.g. \"This computer\" or h20-cluster",
    ENV_VAR_PATTERN: "an environment variable name in capitals, digits and '_', "
    "e.g. OPENAI_API_KEY",
    TIME_LIMIT_PATTERN: "a time limit as minutes (90), HH:MM:SS (24:00:00) or "
    "D-HH:MM:SS (7-00:00:00)",
    URL_PATTERN: "an http:// or https:// URL, e.g. http://127.0.0.1:8000/v1",
    TEXT_PATTERN: "non-empty text on one line without leading or trailing spaces",
}

# Values of these keys are never echoed in a problem message.
_SENSITIVE_KEYS = frozenset({"api_key_env"})


# --- Problems and errors


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config: where, what, and what to set instead."""

    key: str  # dotted path, e.g. "rl.group_size" or "seeds.sources.0.path"; "<yaml>" etc.
    message: str  # what is wrong, with the bad value
    fix: str  # what to do, e.g. "set it to a whole number between 1 and 4096"

    def __str__(self) -> str:
        return f"{self.key}: {self.message} -> {self.fix}"


class ConfigError(Exception):
    """A config that cannot be used; ``problems`` lists everything wrong with it at once."""

    def __init__(self, problems: Sequence[ConfigProblem], source: str = "<string>") -> None:
        super().__init__(list(problems), source)
        self.problems: list[ConfigProblem] = list(problems)
        self.source: str = source

    def __str__(self) -> str:
        n = len(self.problems)
        lines = [f"{self.source}: {n} problem{'' if n == 1 else 's'}"]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


def _rule_error(problems: Sequence[tuple[str, str, str]]) -> PydanticCustomError:
    """A validation error carrying our own (relative key, message, fix) triples.

    Raised from validators; ``_problems_from_error`` expands it back into ConfigProblems,
    so one section rule can report several problems, each on its own key.
    """
    items = [{"key": k, "message": m, "fix": f} for k, m, f in problems]
    summary = "; ".join(f"{k or 'value'}: {m}" for k, m, _ in problems)
    return PydanticCustomError("config_rule", "{summary}", {"summary": summary, "problems": items})


# --- Shared field types and helpers

Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)]
Text = Annotated[str, Field(pattern=TEXT_PATTERN, min_length=1, max_length=4096)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]


class _Strict(BaseModel):
    """Config base: unknown keys are errors and assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _llm_field(default: str) -> Any:
    return Field(
        default,
        title="LLM endpoint",
        description="Name of the endpoint in `llms` this stage sends its requests to.",
    )


def _temperature_field(default: float) -> Any:
    return Field(
        default, ge=0.0, le=2.0, title="Temperature",
        description="Sampling temperature of this stage's LLM calls; 0 is greedy.",
    )


def _top_p_field(default: float) -> Any:
    return Field(
        default, gt=0.0, le=1.0, title="Top-p",
        description="Nucleus sampling: keep the smallest set of tokens whose probability "
        "adds up to this; 1 keeps all.",
    )


def _max_tokens_field(default: int) -> Any:
    return Field(
        default, ge=16, le=1_048_576, title="Max tokens",
        description="Longest reply, in tokens, one LLM call may produce (reasoning included); "
        "on an HTTP endpoint each request is cut to what the context leaves after its prompt.",
    )


def _json_retries_field() -> Any:
    return Field(
        2, ge=0, le=10, title="JSON retries",
        description="How many times a request is asked again when its reply is not valid "
        "JSON even after repair.",
    )


def _unique(values: list[Any], what: str) -> list[Any]:
    dupes = sorted({str(v) for v in values if values.count(v) > 1})
    if dupes:
        raise _rule_error([(
            "", f"lists {', '.join(dupes)} more than once",
            f"list each {what} once",
        )])
    return values


# --- LLM endpoints

_SECRET_PREFIXES = (
    "sk-", "sk_", "hf_", "ghp_", "gho_", "ghs_", "github_pat_", "xoxb-", "xoxp-",
    "AIza", "gsk_", "pplx-", "nvapi-", "r8_", "eyJ", "Bearer ",
)
_AWS_KEY = re.compile(r"^(?:AKIA|ASIA)[0-9A-Z]{16}$")


def _looks_like_secret(value: str) -> bool:
    if value.startswith(_SECRET_PREFIXES) or _AWS_KEY.match(value):
        return True
    # Long mixed-case-and-digit tokens are keys, not variable names.
    return len(value) >= 24 and bool(re.search(r"[a-z]", value)) and bool(
        re.search(r"[0-9]", value)) and not re.search(r"\s", value)


class OpenAIEndpoint(_Strict):
    """An OpenAI-compatible HTTP server: vLLM or SGLang on a cluster, or any hosted API."""

    backend: Literal["openai"] = Field(
        "openai", title="Backend",
        description="OpenAI-compatible chat-completions API over HTTP.",
    )
    base_url: str = Field(
        ..., pattern=URL_PATTERN, max_length=2048, title="Base URL",
        description="URL of the API up to and including /v1, e.g. http://gpu-node-3:8000/v1.",
    )
    model: Text = Field(
        ..., title="Model",
        description="Model name the server expects in each request (for vLLM: the served "
        "model name, by default its path or Hugging Face id).",
    )
    api_key_env: str | None = Field(
        None, pattern=ENV_VAR_PATTERN, max_length=128, title="API key variable",
        description="Name of the environment variable that holds the API key on the machine "
        "running the stage (never the key itself); empty for local servers without a key.",
    )
    max_concurrency: int = Field(
        64, ge=1, le=4096, title="Max concurrent requests",
        description="Most requests in flight to this endpoint at once, over all stages.",
    )
    timeout_s: float = Field(
        600.0, ge=1.0, le=86_400.0, title="Request timeout",
        description="Seconds to wait for one reply, from when it is sent, before it counts as "
        "failed; long reasoning replies take minutes. Time waiting for a free slot (see "
        "parallel_slots) does not count.",
    )
    parallel_slots: int | None = Field(
        None, ge=1, le=4096, title="Server parallel slots",
        description="Requests the server works on at once (llama.cpp's --parallel, vLLM's "
        "--max-num-seqs). At most min(this, max_concurrency) requests are sent at once, so "
        "none waits in the server's queue while its timeout runs. Empty: the number the server "
        "reports (llama.cpp's /props total_slots), else max_concurrency.",
    )
    context_length: int | None = Field(
        None, ge=256, le=16_777_216, title="Context length",
        description="Tokens of prompt plus reply the server accepts. Empty: learned from the "
        "server (vLLM's max_model_len in /v1/models, llama.cpp's n_ctx in /props, or the "
        "message of a context-length 400). Each request's max_tokens is cut to what the "
        "context leaves after its prompt.",
    )
    reply_limit_param: Literal["auto", "max_tokens", "max_completion_tokens"] = Field(
        "auto", title="Reply limit parameter",
        description="Request field that carries the reply budget: max_tokens (vLLM, SGLang, "
        "llama.cpp), max_completion_tokens (OpenAI reasoning models), or auto: max_tokens, "
        "switching to max_completion_tokens when the server's 400 asks for it.",
    )
    max_retries: int = Field(
        5, ge=0, le=100, title="Max retries",
        description="Retries, with exponential backoff, after a timeout, a connection error "
        "or an HTTP 429/5xx.",
    )

    @field_validator("api_key_env", mode="before")
    @classmethod
    def _name_not_secret(cls, value: Any) -> Any:
        if isinstance(value, str) and _looks_like_secret(value):
            raise _rule_error([(
                "",
                "looks like an API key itself, not the name of an environment variable "
                "(the value is not shown)",
                "remove the key from the config (and rotate it if the file was shared), "
                "export it on the machine that runs the stage, e.g. "
                "`export OPENAI_API_KEY=...`, and set api_key_env: OPENAI_API_KEY",
            )])
        return value


class VLLMOfflineEndpoint(_Strict):
    """vLLM loaded inside the stage's own process on the GPU nodes it runs on."""

    backend: Literal["vllm"] = Field(
        "vllm", title="Backend", description="vLLM offline engine in the stage's process.",
    )
    model: Text = Field(
        ..., title="Model", description="Local path or Hugging Face id of the model to load.",
    )
    tensor_parallel_size: int = Field(
        1, ge=1, le=64, title="Tensor parallel size",
        description="GPUs one model copy is split over.",
    )
    gpu_memory_utilization: float = Field(
        0.85, ge=0.1, le=0.99, title="GPU memory fraction",
        description="Share of each GPU's memory vLLM may take for weights and KV cache.",
    )
    max_model_len: int | None = Field(
        None, ge=256, le=1_048_576, title="Max model length",
        description="Longest prompt plus reply in tokens; empty uses the model's own limit.",
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", title="Weights dtype",
        description="Number format of the weights; auto follows the model's config.",
    )
    max_num_seqs: int = Field(
        256, ge=1, le=65_536, title="Max sequences per batch",
        description="Most sequences vLLM decodes together in one batch.",
    )


class TransformersEndpoint(_Strict):
    """Hugging Face transformers in-process: slow, for CPU smoke runs and tests."""

    backend: Literal["transformers"] = Field(
        "transformers", title="Backend",
        description="transformers generate() in the stage's process.",
    )
    model: Text = Field(
        ..., title="Model",
        description="Local path or Hugging Face id, or tiny-random for a tiny randomly "
        "initialised model built in memory (no download; smoke runs only).",
    )
    device: Literal["cpu", "cuda", "auto"] = Field(
        "auto", title="Device", description="Where the model runs; auto picks CUDA if present.",
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", title="Weights dtype",
        description="Number format of the weights; auto is float32 on CPU, bfloat16 on GPU.",
    )
    max_new_tokens: int = Field(
        512, ge=1, le=1_048_576, title="Max new tokens",
        description="Upper cap on generated tokens per call; a stage's larger max_tokens is "
        "cut to this.",
    )
    batch_size: int = Field(
        4, ge=1, le=1024, title="Batch size", description="Prompts generated together.",
    )


LLMEndpoint = Annotated[
    OpenAIEndpoint | VLLMOfflineEndpoint | TransformersEndpoint, Field(discriminator="backend")
]


def _default_llms() -> dict[str, Any]:
    # Two local vLLM servers on the default port and the next one: an instruct model for
    # features, evolution and statements, a long-CoT reasoning model for solutions and tests.
    # The model names are examples of the kind; set what your servers serve.
    return {
        "generator": OpenAIEndpoint(
            base_url="http://127.0.0.1:8000/v1", model="Qwen/Qwen3-235B-A22B-Instruct-2507"
        ),
        "solver": OpenAIEndpoint(
            base_url="http://127.0.0.1:8001/v1", model="deepseek-ai/DeepSeek-R1-0528"
        ),
    }


# --- Run and resources


class WandbSettings(_Strict):
    """Weights & Biases: off unless enabled; the API key is never part of the config."""

    enabled: bool = Field(
        False, title="W&B",
        description="Also send each stage's metrics to Weights & Biases, from rank 0 (needs "
        "the wandb package where the stage runs; engine/metrics_export.py). The API key is "
        "read from the WANDB_API_KEY environment variable of the job, never from this config.",
    )
    project: Name = Field(
        "synthsmith", title="W&B project",
        description="Project the runs are logged to; each stage is one W&B run, grouped by "
        "run id.",
    )
    entity: Name | None = Field(
        None, title="W&B entity",
        description="Team or user that owns the project; empty: the API key's default.",
    )
    mode: Literal["offline", "online"] = Field(
        "offline", title="W&B mode",
        description="offline writes <run-dir>/wandb/ with no network (upload it later with "
        "`wandb sync <run-dir>/wandb/offline-run-*`); online sends as it goes (needs network "
        "and WANDB_API_KEY on the compute nodes).",
    )

    @field_validator("project", "entity", mode="before")
    @classmethod
    def _not_a_key(cls, value: Any) -> Any:
        if isinstance(value, str) and _looks_like_secret(value):
            raise _rule_error([(
                "",
                "looks like an API key, not a W&B name (the value is not shown)",
                "remove the key from the config (and rotate it if the file was shared); "
                "export WANDB_API_KEY on the machine that runs the stage instead",
            )])
        return value


class MetricsSection(_Strict):
    """Where each stage's metrics go besides the run's event files."""

    tensorboard: bool = Field(
        True, title="TensorBoard",
        description="Write TensorBoard files into <run-dir>/tensorboard/<stage>.<rank>/ as "
        "metrics arrive (needs tensorboardX where the stage runs; without it one warning and "
        "the run goes on). `python -m engine export-metrics RUN --tensorboard DIR` writes "
        "them from the event files at any time.",
    )
    wandb: WandbSettings = Field(
        default_factory=WandbSettings, title="Weights & Biases",
        description="Weights & Biases logging: off unless enabled.",
    )


class RunSection(_Strict):
    """What the run is called and the seed every random choice derives from."""

    name: Name = Field(
        "synthsmith", title="Run name",
        description="Short name of the run, used in run ids, job names and exports.",
    )
    seed: Seed = Field(
        42, title="Seed",
        description="Base random seed; each stage and item derives its own seed from it, "
        "so reruns sample the same configs, tests and splits.",
    )
    metrics: MetricsSection = Field(
        default_factory=MetricsSection, title="Metrics export",
        description="Where stages also send their metrics: TensorBoard files (on by default) "
        "and Weights & Biases (off by default). A failing export never stops a stage.",
    )


class Resources(_Strict):
    """What a stage asks the scheduler for (ignored where it runs on "This computer")."""

    nodes: int = Field(1, ge=1, le=1024, title="Nodes", description="Machines for the stage.")
    gpus_per_node: int = Field(
        0, ge=0, le=16, title="GPUs per node", description="GPUs on each node; 0 for CPU work.",
    )
    cpus_per_task: int = Field(
        4, ge=1, le=1024, title="CPUs per node",
        description="CPU cores on each node (the sandbox and data loaders use them).",
    )
    mem_gb: int = Field(
        0, ge=0, le=4096, title="Memory",
        description="Memory per node in GB; 0 takes the scheduler's default.",
    )
    time_limit: str = Field(
        "24:00:00", pattern=TIME_LIMIT_PATTERN, max_length=16, title="Time limit",
        description="Wall-clock limit per job as minutes, HH:MM:SS or D-HH:MM:SS; a stage "
        "stopped at the limit saves its work and resumes when requeued.",
    )

    @property
    def world_size(self) -> int:
        """Training processes: one per GPU, or one per node without GPUs."""
        return self.nodes * max(self.gpus_per_node, 1)


def _resources_field(**defaults: Any) -> Any:
    return Field(
        default_factory=lambda: Resources(**defaults), title="Resources",
        description="Nodes, GPUs, CPUs, memory and time the stage asks its cluster for.",
    )


# --- Stage sections


class StageBase(_Strict):
    """What every stage has: an on/off switch, where it runs, and what it asks for there."""

    enabled: bool = Field(
        True, title="Enabled", description="Run this stage; a disabled stage is skipped.",
    )
    placement: str = Field(
        "This computer", pattern=PLACEMENT_PATTERN, max_length=64, title="Placement",
        description="Cluster profile the stage runs on, or \"This computer\".",
    )
    resources: Resources = _resources_field()

    @field_validator("resources", mode="before")
    @classmethod
    def _over_stage_defaults(cls, value: Any) -> Any:
        # `sft: {resources: {time_limit: ...}}` changes the time limit and keeps the SFT
        # stage's own GPU default, instead of falling back to Resources' CPU defaults.
        if isinstance(value, dict):
            return {**cls.model_fields["resources"].default_factory().model_dump(), **value}
        return value


class SeedSource(_Strict):
    """One file of seed problems, each with a solution."""

    path: Text = Field(
        ..., title="Path",
        description="Seed file: an absolute path, a path relative to the working directory, "
        "or assets://seeds/... for the bundled seeds.",
    )
    format: Literal["auto", "jsonl", "parquet"] = Field(
        "auto", title="Format", description="File format; auto goes by the file extension.",
    )
    layout: Literal["auto", "taco", "plain"] = Field(
        "auto", title="Layout",
        description="Record layout: taco (question, solutions list), plain (problem, "
        "solution), or auto to detect it from the first record.",
    )
    limit: int | None = Field(
        None, ge=1, le=10_000_000, title="Limit",
        description="Read at most this many records from this file; empty reads all.",
    )

    @field_validator("path")
    @classmethod
    def _local_or_assets(cls, value: str) -> str:
        if "://" in value and not value.startswith(ASSETS_SCHEME):
            raise _rule_error([(
                "", f"'{value}' is a URL; seeds are read from files",
                "download the file first and give its path, or use assets://seeds/...",
            )])
        if value.startswith(ASSETS_SCHEME) and ".." in value[len(ASSETS_SCHEME):].split("/"):
            raise _rule_error([(
                "", f"'{value}' climbs out of the assets folder",
                "name a file inside it, e.g. assets://seeds/seeds.jsonl",
            )])
        return value


class SeedsConfig(StageBase):
    """Import seed problems and solutions (TACO-style JSONL/Parquet, or the bundled set)."""

    sources: list[SeedSource] = Field(
        default_factory=lambda: [SeedSource(path="assets://seeds/seeds.jsonl")],
        min_length=1, max_length=64, title="Sources",
        description="Seed files to import, in order; duplicates across files are dropped.",
    )
    max_seeds: int | None = Field(
        None, ge=1, le=10_000_000, title="Max seeds",
        description="Keep at most this many seeds over all sources (the paper used about "
        "10k); empty keeps all.",
    )
    as_tasks: bool = Field(
        False, title="Seed problems as tasks",
        description="Also make each seed with a reference solution and stdin/stdout tests a "
        "task: its tests keep their known outputs and its reference solution joins the "
        "candidates, so verification has real problems to judge. Off for the paper's fully "
        "synthetic recipe; on in the CPU smoke preset, whose random model writes no usable "
        "task.",
    )


class FeaturesConfig(StageBase):
    """An LLM extracts competitive-programming features from each seed (11 categories)."""

    llm: Name = _llm_field("generator")
    # Extraction, not invention: low temperature keeps the JSON consistent.
    temperature: float = _temperature_field(0.2)
    top_p: float = _top_p_field(0.95)
    max_tokens: int = _max_tokens_field(8192)
    json_retries: int = _json_retries_field()
    max_solution_chars: int = Field(
        8000, ge=100, le=1_000_000, title="Max solution length",
        description="Characters of the seed solution shown to the LLM; longer ones are cut.",
    )


class EvolveConfig(StageBase):
    """Grow the feature tree: sample subtrees, expand them in breadth and depth, merge back."""

    llm: Name = _llm_field("generator")
    steps: int = Field(
        100, ge=0, le=100_000, title="Steps",
        description="Evolution rounds; each samples subtrees, expands them and merges the "
        "results before the next round.",
    )
    samples_per_step: int = Field(
        64, ge=1, le=100_000, title="Subtrees per step",
        description="Subtrees sampled and expanded in parallel in one round (100 rounds of 64 "
        "grow ~27k features to roughly the paper's ~177k).",
    )
    branching: list[Annotated[int, Field(ge=1, le=64)]] = Field(
        default_factory=lambda: [2, 1, 2, 1], min_length=1, max_length=8,
        title="Branching per depth",
        description="Children kept per node at each depth when sampling a subtree, from "
        "the root down.",
    )
    sampling: Literal["uniform", "frequency"] = Field(
        "uniform", title="Sampling",
        description="How children are picked: uniformly, or weighted by how many seeds "
        "mention a feature (as in EpiCoder).",
    )
    weight_temperature: float = Field(
        1.0, gt=0.0, le=100.0, title="Weighting temperature",
        description="For frequency sampling: a feature's weight is frequency^(1/T), so a "
        "larger T is closer to uniform.",
    )
    min_new_siblings: int = Field(
        2, ge=1, le=16, title="Min new siblings",
        description="Breadth: new sibling features the LLM must add next to each node.",
    )
    temperature: float = _temperature_field(0.7)
    top_p: float = _top_p_field(0.95)
    max_tokens: int = _max_tokens_field(8192)
    json_retries: int = _json_retries_field()


class StyleWeights(_Strict):
    """Relative odds of each statement style."""

    codeforces: float = Field(
        0.7, ge=0.0, le=1000.0, title="Codeforces",
        description="Weight of Codeforces style: a story, precise I/O, tight constraints, "
        "two or more samples with notes.",
    )
    leetcode: float = Field(
        0.15, ge=0.0, le=1000.0, title="LeetCode",
        description="Weight of LeetCode style: concise, a function signature, "
        "\"Input: nums = [...]\" examples.",
    )
    atcoder: float = Field(
        0.15, ge=0.0, le=1000.0, title="AtCoder",
        description="Weight of AtCoder style: minimal Input/Output/Constraints, numbered "
        "samples.",
    )

    @model_validator(mode="after")
    def _some_weight(self) -> StyleWeights:
        if self.codeforces + self.leetcode + self.atcoder <= 0:
            raise _rule_error([(
                "", "all style weights are 0, so no style can be chosen",
                "give at least one style a positive weight, e.g. codeforces: 0.7",
            )])
        return self


Shape = Annotated[list[Annotated[int, Field(ge=1, le=64)]], Field(min_length=3, max_length=3)]


TASK_STYLES: tuple[str, ...] = tuple(StyleWeights.model_fields)  # codeforces, leetcode, atcoder


class TasksConfig(StageBase):
    """Sample feature configs from the tree and turn each into a hint-free statement."""

    llm: Name = _llm_field("generator")
    num_configs: int = Field(
        1000, ge=1, le=10_000_000, title="Feature configs",
        description="Feature configs to sample; each goes through both generation steps and "
        "yields at most one task.",
    )
    shapes: list[Shape] = Field(
        default_factory=lambda: [[3, 3, 1], [3, 3, 2], [4, 3, 2]], min_length=1,
        max_length=32, title="Config shapes",
        description="(root_k, inner_k, leaf_k) triples: categories taken, then under every "
        "taken feature that many of its inner features and of its leaves, down the tree; one "
        "is drawn per config.",
    )
    min_leaves: int = Field(
        25, ge=1, le=10_000, title="Min leaves",
        description="A sampled config is kept only with at least this many leaf features.",
    )
    style_weights: StyleWeights = Field(
        default_factory=StyleWeights, title="Style weights",
        description="Relative odds of writing a statement in Codeforces, LeetCode or AtCoder "
        "style.",
    )
    hint_leaks: Literal["reject", "keep"] = Field(
        "reject", title="Hint leaks",
        description="What to do with a statement that names an algorithm or data structure "
        "or hints at a complexity: reject the task (the reason names the terms), or keep it; "
        "leaks are counted either way.",
    )
    temperature: float = _temperature_field(0.7)
    top_p: float = _top_p_field(0.8)
    max_tokens: int = _max_tokens_field(32768)
    json_retries: int = _json_retries_field()


class SolutionsConfig(StageBase):
    """A long-CoT reasoning model writes candidate solutions; keep those with one code block."""

    llm: Name = _llm_field("solver")
    # 8: the paper's plain majority vote labels 91.8/92.1/92.5% of outputs correctly with
    # 4/8/16 candidates, so 8 gets most of 16's accuracy at half the tokens.
    candidates_per_task: int = Field(
        8, ge=1, le=64, title="Candidates per task",
        description="Candidate solutions sampled per task; they vote on test outputs.",
    )
    languages: list[Literal["python", "cpp"]] = Field(
        default_factory=lambda: ["python"], min_length=1, max_length=2, title="Languages",
        description="Languages candidates are asked for, in turn (8 candidates over python "
        "and cpp give 4 of each); cpp needs g++ where verification runs.",
    )
    temperature: float = _temperature_field(0.6)
    top_p: float = _top_p_field(0.95)
    max_tokens: int = _max_tokens_field(32768)
    truncation_retries: int = Field(
        1, ge=0, le=4, title="Truncation retries",
        description="A candidate cut off at max_tokens is asked again with twice the budget, "
        "up to what the endpoint's context leaves after the prompt, this many times; then it "
        "is rejected as truncated with the limit named.",
    )

    @field_validator("languages")
    @classmethod
    def _languages_once(cls, value: list[str]) -> list[str]:
        return _unique(value, "language")


class TestsConfig(StageBase):
    """Test inputs: written directly by the LLM, and produced by LLM-written generators."""

    __test__ = False  # not a pytest class, whatever its name

    llm: Name = _llm_field("solver")
    direct_inputs: int = Field(
        10, ge=0, le=200, title="Direct inputs",
        description="Standard and edge-case inputs the LLM writes out per task.",
    )
    generators: int = Field(
        3, ge=0, le=50, title="Generator programs",
        description="Input generator programs the LLM writes per task; the sandbox runs them.",
    )
    seeds_per_generator: int = Field(
        3, ge=1, le=100, title="Runs per generator",
        description="Times each generator runs, each with a different seed.",
    )
    generator_kinds: list[Literal["random", "edge", "stress"]] = Field(
        default_factory=lambda: ["random", "edge", "stress"], min_length=1, max_length=3,
        title="Generator kinds",
        description="Kinds of generator asked for: random (typical sizes), edge (boundary "
        "values) and stress (largest inputs the constraints allow).",
    )
    max_tests_per_task: int = Field(
        20, ge=1, le=1000, title="Max tests per task",
        description="Cap on distinct inputs kept per task for verification.",
    )
    use_validator: bool = Field(
        False, title="Input validator",
        description="Also ask for an input validator program and drop inputs it rejects.",
    )
    generator_time_limit_s: float = Field(
        10.0, ge=0.1, le=600.0, title="Generator time limit",
        description="Seconds one generator run may take in the sandbox.",
    )
    max_input_kb: int = Field(
        4096, ge=1, le=1_048_576, title="Max input size",
        description="Largest test input kept, in KB; larger generated inputs are dropped.",
    )
    temperature: float = _temperature_field(0.6)
    top_p: float = _top_p_field(0.95)
    max_tokens: int = _max_tokens_field(32768)
    json_retries: int = _json_retries_field()

    @field_validator("generator_kinds")
    @classmethod
    def _kinds_once(cls, value: list[str]) -> list[str]:
        return _unique(value, "kind")

    @model_validator(mode="after")
    def _some_inputs(self) -> TestsConfig:
        if self.direct_inputs == 0 and self.generators == 0:
            raise _rule_error([(
                "generators", "is 0 and so is direct_inputs: no test inputs would be made",
                "set direct_inputs or generators above 0",
            )])
        return self


class KindWeights(_Strict):
    """How much a passed test of each kind counts when the golden solution is chosen."""

    sample: float = Field(
        1.0, ge=0.0, le=100.0, title="Sample", description="Weight of the statement's samples.",
    )
    edge: float = Field(
        2.0, ge=0.0, le=100.0, title="Edge", description="Weight of boundary-value tests.",
    )
    random: float = Field(
        1.0, ge=0.0, le=100.0, title="Random", description="Weight of typical random tests.",
    )
    stress: float = Field(
        2.0, ge=0.0, le=100.0, title="Stress", description="Weight of maximum-size tests.",
    )

    @model_validator(mode="after")
    def _some_weight(self) -> KindWeights:
        if self.sample + self.edge + self.random + self.stress <= 0:
            raise _rule_error([(
                "", "all test kind weights are 0, so no candidate can be scored",
                "give at least one kind a positive weight, e.g. random: 1.0",
            )])
        return self


class VerifyConfig(StageBase):
    """Dual verification: vote test outputs, then pick a golden solution and check it."""

    time_limit_s: float = Field(
        10.0, ge=0.1, le=600.0, title="Time limit", description="Seconds per run of a candidate.",
    )
    memory_mb: int = Field(
        256, ge=16, le=65_536, title="Memory limit", description="Memory per run in MB.",
    )
    max_output_kb: int = Field(
        65_536, ge=1, le=1_048_576, title="Max output",
        description="Output per run in KB (64 MB: real tasks print megabytes). A run past it "
        "ends output_limit, a limit of ours rather than a fault of the program: a test where "
        "most runs hit it is unusable and its task is rejected.",
    )
    jobs: int = Field(
        0, ge=0, le=4096, title="Parallel runs",
        description="Sandboxed runs at once per node; 0 uses every core the stage has.",
    )
    compare: Literal["whitespace", "strip"] = Field(
        "whitespace", title="Output comparison",
        description="How outputs are compared: whitespace (same tokens, any spacing) or strip "
        "(same text after trimming both ends).",
    )
    float_tolerance: float | None = Field(
        None, gt=0.0, le=1.0, title="Float tolerance",
        description="Tokens that parse as numbers match within this absolute or relative "
        "error; empty compares them as text.",
    )
    min_candidates_voting: int = Field(
        2, ge=1, le=64, title="Min voters",
        description="Successful runs (exit 0) an input needs before its majority output "
        "becomes its label.",
    )
    min_agreement: float = Field(
        0.5, ge=0.0, le=1.0, title="Min agreement",
        description="Tasks whose mean agreement (share of voters giving the majority output, "
        "over labelled tests) is below this are rejected.",
    )
    min_labelled_tests: int = Field(
        4, ge=2, le=1000, title="Min labelled tests",
        description="Tasks with fewer labelled tests are rejected.",
    )
    holdout_fraction: float = Field(
        0.5, ge=0.1, le=0.9, title="Hold-out fraction",
        description="Share of labelled tests held out to check the golden solution; the "
        "rest pick it.",
    )
    holdout_min_pass: float = Field(
        1.0, ge=0.0, le=1.0, title="Hold-out pass rate",
        description="Share of held-out tests the golden solution must pass, or the task is "
        "rejected.",
    )
    kind_weights: KindWeights = Field(
        default_factory=KindWeights, title="Test kind weights",
        description="How much a passed test of each kind counts when picking the golden "
        "solution; boundary and stress tests weigh more.",
    )
    exposure_share: float = Field(
        0.66, ge=0.5, le=1.0, title="Confidence share",
        description="An input's output holding at least this share of the weighted vote is "
        "trusted: a candidate that gives another output there (or crashes) is exposed as "
        "buggy and its vote weighs less everywhere, and only trusted labels (and known "
        "outputs) pick and check the golden solution.",
    )
    exposure_discount: float = Field(
        0.5, gt=0.0, le=1.0, title="Exposure discount",
        description="A candidate's vote weight is multiplied by this once per input it is "
        "exposed on; 1 turns weighting off (plain majority voting).",
    )
    sample_fail_discount: float = Field(
        0.1, gt=0.0, le=1.0, title="Sample failure discount",
        description="A candidate's vote weight is multiplied by this once per statement "
        "sample whose known output it does not reproduce.",
    )
    split_ratio: float = Field(
        0.8, gt=0.0, le=1.0, title="Split vote ratio",
        description="An input whose runner-up output has at least this fraction of the "
        "winner's vote weight is flagged split: it only breaks ties when the golden "
        "solution is picked, and takes the golden solution's output as its label.",
    )
    reject_ambiguous_golden: bool = Field(
        True, title="Reject ambiguous golden",
        description="Reject a task when candidates that print different outputs are equally "
        "well supported, so picking one would be a coin flip; off picks the first of them.",
    )


# The RL export's data_source values: ours (judged by engine/train/verl_reward.py), then the
# ones verl's built-in default_compute_score sends to its prime_code scorer (stdin/stdout tests).
RL_DATA_SOURCES = ("synthsmith", "codecontests", "apps", "codeforces", "taco")
RlDataSource = Literal["synthsmith", "codecontests", "apps", "codeforces", "taco"]
LICENSE_PATTERN = r"^[a-z0-9][a-z0-9.+-]*$"  # a Hugging Face licence identifier: mit, cc-by-4.0


class CurateConfig(StageBase):
    """Dedup, decontaminate and export the SFT and RL sets."""

    dedup_threshold: float = Field(
        0.8, ge=0.1, le=1.0, title="Near-duplicate threshold",
        description="Estimated Jaccard similarity (MinHash) of two statements at or above "
        "which the later one is dropped.",
    )
    ngram_size: int = Field(
        5, ge=1, le=32, title="Shingle size",
        description="Words per shingle when comparing statements for near-duplicates.",
    )
    num_perm: int = Field(
        128, ge=16, le=1024, title="MinHash permutations",
        description="Hash functions per MinHash signature; more is more precise and slower.",
    )
    decontaminate_file: Text | None = Field(
        None, title="Benchmark problems",
        description="JSONL of benchmark problems (e.g. LiveCodeBench) whose statements must "
        "not leak into the training sets; empty skips decontamination.",
    )
    decontam_ngram_size: int = Field(
        13, ge=5, le=64, title="Contamination n-gram",
        description="Words per n-gram when matching task statements against benchmark "
        "problems (13, as in common decontamination practice).",
    )
    decontam_min_matches: int = Field(
        1, ge=1, le=10_000, title="Contamination matches",
        description="A task sharing at least this many distinct n-grams with one benchmark "
        "problem is dropped; 1 drops a task on any shared n-gram.",
    )
    decontam_boilerplate_problems: int = Field(
        3, ge=2, le=1_000_000, title="Boilerplate cut-off",
        description="An n-gram found in this many benchmark problems or more is stock "
        "phrasing (\"the first line contains a single integer t\") and never counts.",
    )
    sft_solutions_per_task: int = Field(
        1, ge=1, le=64, title="SFT solutions per task",
        description="Verified solutions exported per task for SFT; the paper found more "
        "unique tasks beat more solutions per task.",
    )
    rl_max_tasks: int = Field(
        0, ge=0, le=10_000_000, title="RL tasks",
        description="Most tasks exported to the RL set (the paper used ~40k); 0 exports all. "
        "Seed problems (include_seed_problems) count too, after the synthesized tasks.",
    )
    include_seed_problems: bool = Field(
        False, title="Include seed problems",
        description="Also export the imported seed problems next to the synthesized tasks: "
        "those with a reference solution go to the SFT set (statement, first solution), those "
        "that also carry stdin/stdout tests to the RL set. They pass the same "
        "decontamination and near-duplicate filters and are never written to the tasks "
        "table. X-Coder's recipe is fully synthetic, so this is off; the CPU smoke preset "
        "turns it on so SFT, RL and eval run although its random model synthesizes nothing.",
    )
    export_formats: list[Literal["jsonl", "parquet"]] = Field(
        default_factory=lambda: ["jsonl", "parquet"], min_length=1, max_length=2,
        title="Export formats",
        description="File formats of the SFT set in exports/ (both load in HF datasets and "
        "TRL); the RL set is always rl.parquet, the one format verl reads.",
    )
    rl_data_source: RlDataSource = Field(
        "synthsmith", title="RL data source",
        description="data_source of every RL row. synthsmith: verl judges with SynthSmith's "
        "sandboxed reward (custom_reward_function = engine/train/verl_reward.py, the rl "
        "stage's rule); codecontests, apps, codeforces or taco: verl's built-in prime_code "
        "scorer also accepts the rows (0..1 pass fraction, run outside our sandbox).",
    )
    rl_val_fraction: float = Field(
        0.02, ge=0.0, le=0.5, title="RL validation share",
        description="Share of RL tasks held out in rl_val.parquet (extra_info.split 'test'), "
        "picked by a seeded hash of each task's key; at least one when there are two or "
        "more RL tasks, never all of them. 0 writes no validation file.",
    )
    rl_val_max_tasks: int = Field(
        500, ge=0, le=1_000_000, title="RL validation tasks",
        description="Most tasks in rl_val.parquet (verl validates on all of them every "
        "test_freq steps); 0 sets no cap.",
    )
    dataset_license: str = Field(
        "other", pattern=LICENSE_PATTERN, max_length=64, title="Dataset licence",
        description="Licence identifier written to exports/README.md for a dataset hub "
        "(e.g. cc-by-4.0, apache-2.0); 'other' until you decide: the terms of the models "
        "that generated the data apply to it.",
    )

    @field_validator("export_formats")
    @classmethod
    def _formats_once(cls, value: list[str]) -> list[str]:
        return _unique(value, "format")


class SftConfig(StageBase):
    """Full fine-tune on the curated long-CoT solutions (transformers + DeepSpeed)."""

    resources: Resources = _resources_field(gpus_per_node=8, cpus_per_task=16)
    base_model: Text = Field(
        "Qwen/Qwen2.5-Coder-7B-Instruct", title="Base model",
        description="Hugging Face id or local path of the model to fine-tune, or tiny-random "
        "for a tiny randomly initialised model (smoke runs).",
    )
    data: Text = Field(
        "curate", title="Training data",
        description="curate for this run's SFT export, or a JSONL/Parquet file of "
        "{query, response} rows.",
    )
    epochs: int = Field(8, ge=1, le=100, title="Epochs", description="Passes over the data.")
    lr: float = Field(
        5e-5, gt=0.0, le=1.0, title="Learning rate", description="Peak learning rate.",
    )
    lr_scheduler: Literal["cosine", "constant", "linear"] = Field(
        "cosine", title="LR schedule", description="Learning-rate decay after warmup.",
    )
    warmup_ratio: float = Field(
        0.03, ge=0.0, le=0.5, title="Warmup ratio",
        description="Share of all steps spent ramping the learning rate up from 0.",
    )
    weight_decay: float = Field(
        0.1, ge=0.0, le=1.0, title="Weight decay", description="AdamW weight decay.",
    )
    grad_clip: float = Field(
        1.0, ge=0.0, le=100.0, title="Gradient clip",
        description="Largest gradient norm before clipping; 0 turns clipping off.",
    )
    global_batch_size: int = Field(
        128, ge=1, le=1_048_576, title="Global batch",
        description="Sequences (packed rows when packing) per optimizer step over all GPUs.",
    )
    micro_batch_size: int = Field(
        1, ge=1, le=1024, title="Micro-batch per GPU",
        description="Sequences per GPU per forward/backward pass; gradient accumulation "
        "makes up the global batch.",
    )
    max_seq_len: int = Field(
        32768, ge=64, le=1_048_576, title="Max sequence length",
        description="Tokens per training sequence; longer examples are dropped, not cut.",
    )
    packing: bool = Field(
        True, title="Packing",
        description="Pack several examples into one sequence without attending across them.",
    )
    attention: Literal["sdpa", "flex", "flash_attention_2"] = Field(
        "flash_attention_2", title="Attention kernel",
        description="flash_attention_2 on CUDA (as the paper), sdpa anywhere including CPU, "
        "flex with torch's FlexAttention.",
    )
    zero_stage: Literal[0, 1, 2, 3] = Field(
        3, title="ZeRO stage",
        description="DeepSpeed ZeRO stage: 0 off, 1 optimizer state, 2 plus gradients, 3 plus "
        "parameters sharded over GPUs.",
    )
    offload_optimizer: bool = Field(
        False, title="Offload optimizer",
        description="Keep optimizer state in CPU memory (ZeRO 1-3): less GPU memory, slower.",
    )
    offload_params: bool = Field(
        False, title="Offload parameters",
        description="Keep parameters in CPU memory (ZeRO 3 only): less GPU memory, slower.",
    )
    gradient_checkpointing: bool = Field(
        True, title="Gradient checkpointing",
        description="Recompute activations in the backward pass to fit long sequences.",
    )
    bf16: bool = Field(
        True, title="bf16", description="Train in bfloat16 mixed precision (float32 when off).",
    )
    save_every_steps: int = Field(
        500, ge=0, le=10_000_000, title="Checkpoint every",
        description="Optimizer steps between checkpoints; 0 saves only at the end and on "
        "SIGTERM.",
    )
    seed: Seed | None = Field(
        None, title="Seed", description="Training seed; empty uses run.seed.",
    )

    @model_validator(mode="after")
    def _batch_fits_gpus(self) -> SftConfig:
        problems = []
        world = self.resources.world_size
        per_pass = self.micro_batch_size * world
        if self.global_batch_size % per_pass:
            up = -(-self.global_batch_size // per_pass) * per_pass
            problems.append((
                "global_batch_size",
                f"{self.global_batch_size} sequences per step do not split evenly into passes of "
                f"micro_batch_size {self.micro_batch_size} x {world} GPUs "
                f"({self.resources.nodes} node(s) x {max(self.resources.gpus_per_node, 1)}) "
                f"= {per_pass} sequences",
                f"set sft.global_batch_size to a multiple of {per_pass} (e.g. {up}), or change "
                "sft.micro_batch_size or sft.resources",
            ))
        if self.attention == "flash_attention_2" and self.resources.gpus_per_node == 0:
            problems.append((
                "attention", "is flash_attention_2, which needs CUDA GPUs, but "
                "sft.resources.gpus_per_node is 0",
                "set attention: sdpa for a CPU run, or give the stage GPUs",
            ))
        if problems:
            raise _rule_error(problems)
        return self


class RlConfig(StageBase):
    """GRPO on the RL set with sandboxed test rewards and vLLM rollouts."""

    resources: Resources = _resources_field(gpus_per_node=8, cpus_per_task=16)
    model: Text = Field(
        "sft", title="Policy model",
        description="sft for this run's final SFT checkpoint, or a Hugging Face id or path.",
    )
    data: Text = Field(
        "curate", title="RL tasks",
        description="curate for this run's RL export, or a JSONL/Parquet file of tasks "
        "with tests.",
    )
    group_size: int = Field(
        8, ge=2, le=1024, title="Rollouts per prompt",
        description="Responses sampled per prompt; advantages are relative within this group.",
    )
    prompts_per_step: int = Field(
        512, ge=1, le=65_536, title="Prompts per step",
        description="Prompts whose groups are generated for one RL step.",
    )
    mini_batch_size: int = Field(
        128, ge=1, le=65_536, title="Mini-batch (prompts)",
        description="Prompts, with all their responses, per optimizer update (as verl's "
        "ppo_mini_batch_size): 512 / 128 gives 4 updates per step.",
    )
    micro_batch_size: int = Field(
        1, ge=1, le=1024, title="Micro-batch per GPU",
        description="Responses per GPU per forward/backward pass; gradient accumulation "
        "makes up the mini-batch.",
    )
    lr: float = Field(4e-7, gt=0.0, le=1.0, title="Learning rate", description="Actor learning rate.")
    lr_scheduler: Literal["constant", "cosine", "linear"] = Field(
        "constant", title="LR schedule", description="Learning-rate schedule over training.",
    )
    epochs: int = Field(3, ge=1, le=1000, title="Epochs", description="Passes over the RL set.")
    max_steps: int | None = Field(
        None, ge=1, le=10_000_000, title="Max steps",
        description="Stop after this many RL steps; empty runs all epochs.",
    )
    clip_low: float = Field(
        0.2, ge=0.0, le=1.0, title="Clip low",
        description="PPO ratio clip below 1: the ratio is kept above 1 - clip_low.",
    )
    clip_high: float = Field(
        0.28, ge=0.0, le=1.0, title="Clip high",
        description="PPO ratio clip above 1 (clip-higher): the ratio is kept below 1 + clip_high.",
    )
    kl_coef: float = Field(
        0.0, ge=0.0, le=10.0, title="KL coefficient",
        description="Weight of the KL loss to the initial policy; 0 (the paper's 7B) turns "
        "it off and skips the reference model.",
    )
    kl_type: Literal["low_var_kl", "k1", "k2", "k3"] = Field(
        "low_var_kl", title="KL estimator",
        description="KL estimator when kl_coef > 0; the paper's 8B used 0.01 with low_var_kl.",
    )
    entropy_coef: float = Field(
        0.001, ge=0.0, le=1.0, title="Entropy coefficient",
        description="Weight of the entropy bonus in the loss.",
    )
    temperature: float = _temperature_field(1.0)
    top_p: float = _top_p_field(1.0)
    max_prompt_tokens: int = Field(
        4096, ge=16, le=1_048_576, title="Max prompt tokens",
        description="Longer prompts are dropped from the RL set.",
    )
    max_response_tokens: int = Field(
        30000, ge=16, le=1_048_576, title="Max response tokens",
        description="Longest rollout in tokens; longer ones are truncated (paper: ~30k).",
    )
    reward: Literal["fraction", "all_pass"] = Field(
        "fraction", title="Reward",
        description="fraction: reward_scale x share of sampled tests passed; all_pass: "
        "reward_scale only when every sampled test passes, else 0.",
    )
    reward_tests_per_call: int = Field(
        10, ge=1, le=1000, title="Tests per reward",
        description="Tests sampled from the task's tests for each reward.",
    )
    no_code_reward: float = Field(
        -2.0, ge=-100.0, le=100.0, title="No-code reward",
        description="Reward for a response without exactly one parseable code block.",
    )
    reward_scale: float = Field(
        5.0, gt=0.0, le=100.0, title="Reward scale",
        description="Reward for passing every sampled test.",
    )
    curriculum: Literal["easy_to_hard", "none"] = Field(
        "easy_to_hard", title="Curriculum",
        description="Order of tasks: easy_to_hard by verification pass rate, or none (shuffled).",
    )
    drop_zero_variance_groups: bool = Field(
        False, title="Drop zero-variance groups",
        description="Leave out groups whose rollouts all got the same reward (no signal); "
        "the paper kept them.",
    )
    rollout: Literal["vllm_colocated", "vllm_server", "transformers"] = Field(
        "vllm_colocated", title="Rollout engine",
        description="vllm_colocated shares the training GPUs, vllm_server uses separate "
        "vLLM servers, transformers is slow and for CPU smoke runs.",
    )
    vllm_tp: int = Field(
        1, ge=1, le=64, title="vLLM tensor parallel",
        description="GPUs per vLLM rollout engine.",
    )
    vllm_gpu_memory_utilization: float = Field(
        0.85, ge=0.1, le=0.99, title="vLLM GPU memory fraction",
        description="Share of each GPU's memory vLLM may take while generating.",
    )
    judge_time_limit_s: float = Field(
        10.0, ge=0.1, le=600.0, title="Judge time limit",
        description="Seconds per test run when computing rewards.",
    )
    judge_memory_mb: int = Field(
        256, ge=16, le=65_536, title="Judge memory limit",
        description="Memory per test run in MB when computing rewards.",
    )
    save_every_steps: int = Field(
        50, ge=0, le=10_000_000, title="Checkpoint every",
        description="RL steps between checkpoints; 0 saves only at the end and on SIGTERM.",
    )
    seed: Seed | None = Field(
        None, title="Seed", description="Training seed; empty uses run.seed.",
    )

    @model_validator(mode="after")
    def _batches_fit(self) -> RlConfig:
        problems = []
        responses = self.prompts_per_step * self.group_size
        if self.mini_batch_size > self.prompts_per_step:
            problems.append((
                "mini_batch_size",
                f"is {self.mini_batch_size} prompts, more than the {self.prompts_per_step} "
                "prompts of one step",
                f"set rl.mini_batch_size to at most {self.prompts_per_step}, e.g. a divisor "
                f"such as {_largest_divisor(self.prompts_per_step, self.mini_batch_size)}",
            ))
        elif self.prompts_per_step % self.mini_batch_size:
            problems.append((
                "mini_batch_size",
                f"{self.mini_batch_size} prompts does not divide a step's batch of "
                f"{self.prompts_per_step} prompts x {self.group_size} rollouts = {responses} "
                "responses into whole mini-batches",
                f"set rl.mini_batch_size to a divisor of {self.prompts_per_step} (e.g. "
                f"{_largest_divisor(self.prompts_per_step, self.mini_batch_size)}), or change "
                "rl.prompts_per_step",
            ))
        world = self.resources.world_size
        per_pass = self.micro_batch_size * world
        mini_responses = self.mini_batch_size * self.group_size
        if mini_responses % per_pass:
            problems.append((
                "micro_batch_size",
                f"a mini-batch of {self.mini_batch_size} prompts x {self.group_size} = "
                f"{mini_responses} responses does not split into passes of micro_batch_size "
                f"{self.micro_batch_size} x {world} GPUs = {per_pass} responses",
                "choose rl.micro_batch_size, rl.mini_batch_size and rl.resources so that "
                "micro_batch_size x GPUs divides mini_batch_size x group_size",
            ))
        if self.clip_high < self.clip_low:
            problems.append((
                "clip_high", f"is {self.clip_high}, below clip_low {self.clip_low}",
                f"set rl.clip_high to at least {self.clip_low} (the paper: 0.28 with 0.2)",
            ))
        gpus = self.resources.gpus_per_node
        if self.rollout.startswith("vllm") and gpus == 0:
            problems.append((
                "rollout", f"is {self.rollout}, which needs CUDA GPUs, but "
                "rl.resources.gpus_per_node is 0",
                "set rollout: transformers for a CPU run, or give the stage GPUs",
            ))
        elif self.rollout == "vllm_colocated" and gpus % self.vllm_tp:
            problems.append((
                "vllm_tp", f"is {self.vllm_tp}, which does not divide the {gpus} GPUs per node",
                f"set rl.vllm_tp to a divisor of {gpus}",
            ))
        if problems:
            raise _rule_error(problems)
        return self


def _largest_divisor(n: int, at_most: int) -> int:
    return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


class EvalConfig(StageBase):
    """avg@k pass rate on LiveCodeBench-format problems."""

    # Off by default: the benchmark file is not bundled, the user has to supply it.
    enabled: bool = Field(
        False, title="Enabled",
        description="Run this stage; needs a problems file (LiveCodeBench is not bundled).",
    )
    resources: Resources = _resources_field(gpus_per_node=1, cpus_per_task=8)
    problems: Text | None = Field(
        None, title="Problems file",
        description="JSONL or Parquet file of problems with tests in LiveCodeBench format "
        "(or assets://eval/...), or a folder of LiveCodeBench's test*.jsonl files with a "
        "release; required when the stage is enabled.",
    )
    release: str | None = Field(
        None, pattern=r"^(release_(v[1-6]|latest)|v[1-6](_v[1-6])?)$", title="Release",
        description="LiveCodeBench release to take from the problems folder: release_v1.."
        "release_v6 (cumulative), release_latest, vN (that release's new problems) or vN_vM; "
        "empty when problems is one file.",
    )
    start_date: str | None = Field(
        None, pattern=r"^\d{4}-\d{2}-\d{2}$", title="Contest date from",
        description="Keep problems whose contest_date is on or after this day (YYYY-MM-DD), "
        "as LiveCodeBench's --start_date; empty keeps all.",
    )
    end_date: str | None = Field(
        None, pattern=r"^\d{4}-\d{2}-\d{2}$", title="Contest date to",
        description="Keep problems whose contest_date is at or before this day's midnight "
        "(YYYY-MM-DD), as LiveCodeBench's --end_date; empty keeps all.",
    )
    max_problems: int | None = Field(
        None, ge=1, le=1_000_000, title="Max problems",
        description="Evaluate only the first this many problems; empty evaluates all.",
    )
    model: Text = Field(
        "rl", title="Model",
        description="rl or sft for this run's final checkpoint of that stage, or a Hugging "
        "Face id or path.",
    )
    engine: Literal["vllm", "transformers"] = Field(
        "vllm", title="Generation engine",
        description="vLLM on GPUs, or transformers for CPU smoke runs.",
    )
    k: int = Field(
        8, ge=1, le=256, title="Samples per problem (k)",
        description="Samples per problem; the score is avg@k, the mean pass@1 over them.",
    )
    temperature: float = _temperature_field(0.6)
    top_p: float = _top_p_field(0.95)
    max_tokens: int = _max_tokens_field(32768)
    time_limit_s: float = Field(
        6.0, ge=0.1, le=600.0, title="Time limit",
        description="Wall-clock seconds per test call (LiveCodeBench's --timeout, default 6).",
    )
    memory_mb: int = Field(
        1024, ge=16, le=65_536, title="Memory limit",
        description="Memory per test run in MB (LiveCodeBench sets none; this guards the node).",
    )

    @model_validator(mode="after")
    def _needs_problems(self) -> EvalConfig:
        problems = []
        if self.enabled and self.problems is None:
            problems.append((
                "problems", "is empty but the eval stage is enabled",
                "set eval.problems to a LiveCodeBench-format JSONL file, or eval.enabled: false",
            ))
        if self.enabled and self.engine == "vllm" and self.resources.gpus_per_node == 0:
            problems.append((
                "engine", "is vllm, which needs CUDA GPUs, but eval.resources.gpus_per_node is 0",
                "set engine: transformers for a CPU run, or give the stage GPUs",
            ))
        from datetime import date  # only here: the rest of the schema has no dates

        for key in ("start_date", "end_date"):
            value = getattr(self, key)
            try:
                if value is not None:
                    date.fromisoformat(value)
            except ValueError:
                problems.append((key, f"{value!r} is not a calendar date",
                                 f"set eval.{key} to a real day, e.g. 2024-08-01"))
        if self.start_date and self.end_date and self.end_date < self.start_date:
            problems.append(("end_date", f"{self.end_date} is before start_date "
                             f"{self.start_date}", "swap them, or empty one"))
        if self.release and "_v" in self.release[1:] and not self.release.startswith("release"):
            lo, hi = self.release[1], self.release[-1]
            if hi < lo:
                problems.append(("release", f"{self.release} ends before it starts",
                                 f"write v{hi}_v{lo}"))
        if problems:
            raise _rule_error(problems)
        return self


# --- The pipeline config


def _section(cls: type[BaseModel], what: str) -> Any:
    return Field(default_factory=cls, title=what.split(":")[0], description=what)


class PipelineConfig(_Strict):
    """A whole SynthSmith run: endpoints, then one section per stage in STAGE_ORDER."""

    schema_version: int = Field(
        SCHEMA_VERSION, ge=SCHEMA_VERSION, le=SCHEMA_VERSION, title="Schema version",
        description="Version of this config format; older files are migrated on load.",
    )
    run: RunSection = _section(RunSection, "Run: its name and base random seed.")
    llms: dict[Name, LLMEndpoint] = Field(
        default_factory=_default_llms, max_length=32, title="LLM endpoints",
        description="Named LLM endpoints; LLM stages refer to one by name in their llm field.",
    )
    seeds: SeedsConfig = _section(SeedsConfig, "Seeds: import seed problems with solutions.")
    features: FeaturesConfig = _section(
        FeaturesConfig, "Features: extract competitive-programming features from each seed.")
    evolve: EvolveConfig = _section(
        EvolveConfig, "Evolve: grow the feature tree in breadth and depth.")
    tasks: TasksConfig = _section(
        TasksConfig, "Tasks: sample feature configs and write hint-free statements.")
    solutions: SolutionsConfig = _section(
        SolutionsConfig, "Solutions: sample long-CoT candidate solutions per task.")
    tests: TestsConfig = _section(
        TestsConfig, "Tests: make test inputs directly and with generator programs.")
    verify: VerifyConfig = _section(
        VerifyConfig, "Verify: vote outputs, choose and check a golden solution.")
    curate: CurateConfig = _section(
        CurateConfig, "Curate: dedup, decontaminate and export SFT and RL sets.")
    sft: SftConfig = _section(SftConfig, "SFT: full fine-tune on the curated solutions.")
    rl: RlConfig = _section(RlConfig, "RL: GRPO with sandboxed test rewards.")
    eval: EvalConfig = _section(EvalConfig, "Eval: avg@k on LiveCodeBench-format problems.")

    def stage(self, name: str) -> StageBase:
        """The section of stage ``name`` (KeyError for a name not in STAGE_ORDER)."""
        if name not in STAGE_ORDER:
            raise KeyError(f"unknown stage {name!r}; stages are {', '.join(STAGE_ORDER)}")
        return getattr(self, name)

    def enabled_stages(self) -> list[str]:
        """Names of the enabled stages, in STAGE_ORDER."""
        return [name for name in STAGE_ORDER if self.stage(name).enabled]

    @model_validator(mode="after")
    def _check_across_sections(self, info: ValidationInfo) -> PipelineConfig:
        # `unchecked`: sections that failed on their own (see _cross_section_problems);
        # a rule reading one of them is skipped rather than judged on defaults.
        unchecked = set((info.context or {}).get("unchecked", ()))
        problems = []
        if "llms" not in unchecked:
            for name in LLM_STAGES:
                section = getattr(self, name)
                if name in unchecked or not section.enabled or section.llm in self.llms:
                    continue
                defined = ", ".join(self.llms) or "none"
                close = difflib.get_close_matches(section.llm, list(self.llms), n=1)
                hint = f"did you mean {close[0]}? " if close else ""
                problems.append((
                    f"{name}.llm",
                    f"names endpoint '{section.llm}', which is not in llms (defined: {defined})",
                    f"{hint}set it to one of the endpoints in llms, or add llms.{section.llm}",
                ))
        if not unchecked & {"verify", "solutions"} and self.verify.enabled:
            n = self.solutions.candidates_per_task
            if self.verify.min_candidates_voting > n:
                problems.append((
                    "verify.min_candidates_voting",
                    f"is {self.verify.min_candidates_voting}, more than the {n} candidates per "
                    "task that can vote (solutions.candidates_per_task)",
                    f"set it to at most {n}, or raise solutions.candidates_per_task",
                ))
        if problems:
            raise _rule_error(problems)
        return self


# Stages that call an LLM endpoint named in `llms`.
LLM_STAGES: tuple[str, ...] = tuple(
    name for name in STAGE_ORDER
    if "llm" in PipelineConfig.model_fields[name].annotation.model_fields
)


# --- Migrations


def _rename(data: dict, section: str, old: str, new: str) -> None:
    part = data.get(section)
    if isinstance(part, dict) and old in part:
        value = part.pop(old)
        part.setdefault(new, value)  # a file that already has the new key keeps it


def _migrate_0_to_1(data: dict) -> dict:
    # Version 0 named these fields after the libraries rather than the paper.
    _rename(data, "sft", "learning_rate", "lr")
    _rename(data, "rl", "rollouts_per_prompt", "group_size")
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


# --- YAML

# PyYAML follows YAML 1.1, where 1e-5 (no dot) is a string; YAML 1.2 and every user read it
# as a number. Both the loader and the dumper get the wider float rule, so a string such as
# "1e5" is quoted when dumped and reads back as a string.
_FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class _Loader(yaml.SafeLoader):
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


for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))


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
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
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


# --- Overrides


def _override_problems(raw: dict, overrides: Sequence[str]) -> tuple[dict, list[ConfigProblem]]:
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
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
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
            return f"{where} is a value ({_show(node)}), not a section with keys"
    return None


def _default_container(parts: list[str]) -> Any:
    """The default of a list or mapping field at ``parts`` (as plain data), else None.

    Sections need no such help (pydantic fills their missing keys), but a list or mapping
    given in part would replace the whole default: ``llms.generator.api_key_env=X`` on a
    file without ``llms`` must edit the default endpoint, not define a new, empty one.
    """
    target = _resolve_loc(tuple(parts))
    origin = typing.get_origin(_unwrap(target.annotation)[0]) if target.annotation else None
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
    data, problems = _override_problems(raw, overrides)
    if problems:
        raise ConfigError(problems, "<overrides>")
    return data


# --- From pydantic errors to problems


def _unwrap(tp: Any) -> tuple[Any, dict[str, Any], bool]:
    """(inner type, constraints, nullable) with Annotated and Optional peeled off."""
    constraints: dict[str, Any] = {}
    nullable = False
    while True:
        if typing.get_origin(tp) is Annotated:
            tp, *meta = typing.get_args(tp)
            for m in meta:
                constraints.update(_constraints(m))
        elif _is_union(tp) and type(None) in typing.get_args(tp):
            nullable = True
            rest = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = functools.reduce(operator.or_, rest)
        else:
            return tp, constraints, nullable


def _constraints(meta: Any) -> dict[str, Any]:
    if isinstance(meta, FieldInfo):
        out: dict[str, Any] = {}
        for m in meta.metadata:
            out.update(_constraints(m))
        return out
    names = ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern")
    return {n: getattr(meta, n) for n in names if getattr(meta, n, None) is not None}


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _union_members(tp: Any) -> dict[str, type[BaseModel]]:
    """backend tag -> model, for a union of models told apart by a Literal `backend`."""
    members = {}
    for m in typing.get_args(tp) if _is_union(tp) else ():
        if _is_model(m) and "backend" in m.model_fields:
            members[typing.get_args(m.model_fields["backend"].annotation)[0]] = m
    return members


@dataclass
class _Target:
    """What a pydantic error location points at in the schema."""

    key: str
    annotation: Any = None  # None when the location leaves the schema (an unknown key)
    constraints: dict[str, Any] | None = None
    parent: type[BaseModel] | None = None  # model that owns the last segment


def _resolve_loc(loc: tuple[Any, ...]) -> _Target:
    parts: list[str] = []
    ann: Any = PipelineConfig
    constraints: dict[str, Any] = {}
    parent = None
    key_ann: Any = None
    for item in loc:
        if ann is None:
            parts.append(str(item))
            continue
        inner, _, _ = _unwrap(ann)
        if item == "[key]":
            ann, constraints = key_ann, {}
            continue
        if _is_model(inner):
            parent = inner
            info = inner.model_fields.get(str(item))
            ann = info.annotation if info else None
            constraints = _constraints(info) if info else {}
        elif typing.get_origin(inner) is list:
            ann, constraints = typing.get_args(inner)[0], {}
        elif typing.get_origin(inner) is dict:
            key_ann, ann = typing.get_args(inner)
            constraints = {}
        elif item in _union_members(inner):
            ann = _union_members(inner)[item]  # a tag pydantic puts in the location
            continue
        else:
            ann = None
        parts.append(str(item))
    if ann is not None:
        inner, more, _ = _unwrap(ann)
        constraints = {**constraints, **more}
    return _Target(".".join(parts), ann, constraints, parent)


def _num(x: Any) -> str:
    return str(x) if isinstance(x, int) else repr(x)


def _range_text(c: dict[str, Any]) -> str:
    low = f"at least {_num(c['ge'])}" if "ge" in c else (
        f"above {_num(c['gt'])}" if "gt" in c else "")
    high = f"at most {_num(c['le'])}" if "le" in c else (
        f"below {_num(c['lt'])}" if "lt" in c else "")
    if "ge" in c and "le" in c:
        return f"between {_num(c['ge'])} and {_num(c['le'])}"
    return " and ".join(t for t in (low, high) if t)


def _kind_text(ann: Any, extra: dict[str, Any] | None = None) -> str:
    """What a valid value looks like, as a noun phrase: 'a whole number between 1 and 8'."""
    inner, c, nullable = _unwrap(ann)
    c = {**c, **(extra or {})}
    tail = ", or null" if nullable else ""
    origin = typing.get_origin(inner)
    if inner is bool:
        text = "true or false"
    elif inner is int:
        text = f"a whole number {_range_text(c)}".rstrip()
    elif inner is float:
        text = f"a number {_range_text(c)}".rstrip()
    elif origin is Literal:
        text = "one of: " + ", ".join(str(a) for a in typing.get_args(inner))
    elif inner is str:
        if "pattern" in c:
            text = _PATTERN_HINTS.get(c["pattern"], f"text matching {c['pattern']}")
        else:
            text = "text"
        if "max_length" in c and "pattern" not in c:
            text += f" of at most {c['max_length']} characters"
    elif origin is list:
        size = f" of {c['min_length']}" if c.get("min_length") == c.get("max_length") else (
            f" of at most {c['max_length']}" if "max_length" in c else "")
        text = f"a list{size} items, each {_kind_text(typing.get_args(inner)[0])}"
    elif origin is dict:
        text = "a mapping from names to " + _kind_text(typing.get_args(inner)[1])
    elif _is_model(inner):
        text = "a mapping with the keys " + ", ".join(inner.model_fields)
    elif _union_members(inner):
        text = "an endpoint mapping with backend: " + ", ".join(_union_members(inner))
    else:
        text = "a value of the documented form"
    return text + tail


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _join(base: str, key: str) -> str:
    return f"{base}.{key}" if base and key else base or key or "<config>"


def _problems_from_error(err: dict[str, Any]) -> list[ConfigProblem]:
    loc = tuple(err["loc"])
    kind = err["type"]
    ctx = err.get("ctx") or {}
    target = _resolve_loc(loc)
    leaf = str(loc[-1]) if loc else ""
    shown = "<hidden>" if leaf in _SENSITIVE_KEYS else _show(err.get("input"))

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
    expected = _kind_text(target.annotation, target.constraints)
    if kind == "missing":
        return [ConfigProblem(target.key, "is required but missing", f"add {leaf}: {expected}")]
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        tags = ", ".join(_union_members(_unwrap(target.annotation)[0]))
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


def _cross_section_problems(data: dict, err: ValidationError) -> list[ConfigProblem]:
    """Run the across-section rules on the sections that are valid on their own."""
    failed = {str(e["loc"][0]) for e in err.errors() if e["loc"]}
    if not failed:
        return []  # a whole-config error, or the cross rules already ran and failed
    partial = {k: v for k, v in data.items() if k not in failed and k in PipelineConfig.model_fields}
    try:
        PipelineConfig.model_validate(partial, context={"unchecked": failed})
    except ValidationError as again:
        return [p for e in again.errors() if not e["loc"] for p in _problems_from_error(e)]
    return []


# --- Loading


def config_from_dict(
    raw: dict, overrides: Sequence[str] = (), source: str = "<dict>"
) -> PipelineConfig:
    """Migrate, override and validate a raw config; ConfigError lists every problem."""
    if not isinstance(raw, dict):
        raise ConfigError([ConfigProblem(
            "<config>", f"the top level is {_show(raw)}, not a mapping of sections",
            "write the config as `section: {key: value}` mappings, e.g. `sft:` then "
            "indented `lr: 5e-5`",
        )], source)
    try:
        data = migrate(raw)
    except ConfigError as exc:
        raise ConfigError(exc.problems, source) from None
    data, problems = _override_problems(data, overrides)
    try:
        cfg = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            problems += _problems_from_error(err)
        problems += _cross_section_problems(data, exc)
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


# --- Walking the schema


def nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model class a field of this annotation holds (a section, ``resources``), else None."""
    inner, _, _ = _unwrap(annotation)
    return inner if _is_model(inner) else None


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
    inner, _, _ = _unwrap(ann)
    if _is_model(inner):
        yield from iter_fields(inner, f"{path}.")
    elif typing.get_origin(inner) is list:
        yield from _iter_nested(typing.get_args(inner)[0], f"{path}.*")
    elif typing.get_origin(inner) is dict:
        yield from _iter_nested(typing.get_args(inner)[1], f"{path}.*")
    else:
        for tag, member in _union_members(inner).items():
            yield from iter_fields(member, f"{path}[{tag}].")
