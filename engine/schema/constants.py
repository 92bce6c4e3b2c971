"""Names and patterns the config uses everywhere: stage order, shardable stages, feature
categories, the text patterns fields are checked with and the hints shown when one fails.
"""

from __future__ import annotations

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
PATTERN_HINTS: dict[str, str] = {
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
SENSITIVE_KEYS = frozenset({"api_key_env"})


