"""One section per pipeline stage (``seeds`` ... ``eval``): its fields, defaults from the paper,
bounds, and the rules within the section.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from engine.schema.common import (
    Name,
    Seed,
    StrictModel,
    Text,
    json_retries_field,
    llm_field,
    max_tokens_field,
    temperature_field,
    top_p_field,
    unique_items,
)
from engine.schema.constants import ASSETS_SCHEME, PLACEMENT_PATTERN
from engine.schema.problems import rule_error
from engine.schema.run import Resources, resources_field

# --- Stage sections


class StageBase(StrictModel):
    """What every stage has: an on/off switch, where it runs, and what it asks for there."""

    enabled: bool = Field(
        True, title="Enabled", description="Run this stage; a disabled stage is skipped.",
    )
    placement: str = Field(
        "This computer", pattern=PLACEMENT_PATTERN, max_length=64, title="Placement",
        description="Cluster profile the stage runs on, or \"This computer\".",
    )
    resources: Resources = resources_field()

    @field_validator("resources", mode="before")
    @classmethod
    def _over_stage_defaults(cls, value: Any) -> Any:
        # `sft: {resources: {time_limit: ...}}` changes the time limit and keeps the SFT
        # stage's own GPU default, instead of falling back to Resources' CPU defaults.
        if isinstance(value, dict):
            return {**cls.model_fields["resources"].default_factory().model_dump(), **value}
        return value


class SeedSource(StrictModel):
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
            raise rule_error([(
                "", f"'{value}' is a URL; seeds are read from files",
                "download the file first and give its path, or use assets://seeds/...",
            )])
        if value.startswith(ASSETS_SCHEME) and ".." in value[len(ASSETS_SCHEME):].split("/"):
            raise rule_error([(
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

    llm: Name = llm_field("generator")
    # Extraction, not invention: low temperature keeps the JSON consistent.
    temperature: float = temperature_field(0.2)
    top_p: float = top_p_field(0.95)
    max_tokens: int = max_tokens_field(8192)
    json_retries: int = json_retries_field()
    max_solution_chars: int = Field(
        8000, ge=100, le=1_000_000, title="Max solution length",
        description="Characters of the seed solution shown to the LLM; longer ones are cut.",
    )


class EvolveConfig(StageBase):
    """Grow the feature tree: sample subtrees, expand them in breadth and depth, merge back."""

    llm: Name = llm_field("generator")
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
    temperature: float = temperature_field(0.7)
    top_p: float = top_p_field(0.95)
    max_tokens: int = max_tokens_field(8192)
    json_retries: int = json_retries_field()


class StyleWeights(StrictModel):
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
            raise rule_error([(
                "", "all style weights are 0, so no style can be chosen",
                "give at least one style a positive weight, e.g. codeforces: 0.7",
            )])
        return self


Shape = Annotated[list[Annotated[int, Field(ge=1, le=64)]], Field(min_length=3, max_length=3)]


TASK_STYLES: tuple[str, ...] = tuple(StyleWeights.model_fields)  # codeforces, leetcode, atcoder


class TasksConfig(StageBase):
    """Sample feature configs from the tree and turn each into a hint-free statement."""

    llm: Name = llm_field("generator")
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
    temperature: float = temperature_field(0.7)
    top_p: float = top_p_field(0.8)
    max_tokens: int = max_tokens_field(32768)
    json_retries: int = json_retries_field()


class SolutionsConfig(StageBase):
    """A long-CoT reasoning model writes candidate solutions; keep those with one code block."""

    llm: Name = llm_field("solver")
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
    temperature: float = temperature_field(0.6)
    top_p: float = top_p_field(0.95)
    max_tokens: int = max_tokens_field(32768)
    truncation_retries: int = Field(
        1, ge=0, le=4, title="Truncation retries",
        description="A candidate cut off at max_tokens is asked again with twice the budget, "
        "up to what the endpoint's context leaves after the prompt, this many times; then it "
        "is rejected as truncated with the limit named.",
    )

    @field_validator("languages")
    @classmethod
    def _languages_once(cls, value: list[str]) -> list[str]:
        return unique_items(value, "language")


class TestsConfig(StageBase):
    """Test inputs: written directly by the LLM, and produced by LLM-written generators."""

    __test__ = False  # not a pytest class, whatever its name

    llm: Name = llm_field("solver")
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
    temperature: float = temperature_field(0.6)
    top_p: float = top_p_field(0.95)
    max_tokens: int = max_tokens_field(32768)
    json_retries: int = json_retries_field()

    @field_validator("generator_kinds")
    @classmethod
    def _kinds_once(cls, value: list[str]) -> list[str]:
        return unique_items(value, "kind")

    @model_validator(mode="after")
    def _some_inputs(self) -> TestsConfig:
        if self.direct_inputs == 0 and self.generators == 0:
            raise rule_error([(
                "generators", "is 0 and so is direct_inputs: no test inputs would be made",
                "set direct_inputs or generators above 0",
            )])
        return self


class KindWeights(StrictModel):
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
            raise rule_error([(
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
        return unique_items(value, "format")


class SftConfig(StageBase):
    """Full fine-tune on the curated long-CoT solutions (transformers + DeepSpeed)."""

    resources: Resources = resources_field(gpus_per_node=8, cpus_per_task=16)
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
            raise rule_error(problems)
        return self


class RlConfig(StageBase):
    """GRPO on the RL set with sandboxed test rewards and vLLM rollouts."""

    resources: Resources = resources_field(gpus_per_node=8, cpus_per_task=16)
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
    temperature: float = temperature_field(1.0)
    top_p: float = top_p_field(1.0)
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
            raise rule_error(problems)
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
    resources: Resources = resources_field(gpus_per_node=1, cpus_per_task=8)
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
    temperature: float = temperature_field(0.6)
    top_p: float = top_p_field(0.95)
    max_tokens: int = max_tokens_field(32768)
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
            raise rule_error(problems)
        return self


