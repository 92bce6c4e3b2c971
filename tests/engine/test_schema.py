"""engine/schema/: the pipeline-config contract.

Run: .venv/bin/python -m pytest tests/engine/test_schema.py -q
"""

from __future__ import annotations

import textwrap
import traceback
import types
import typing
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field
from pydantic.fields import FieldInfo

from engine import schema
from engine.schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    STAGE_ORDER,
    ConfigError,
    ConfigProblem,
    PipelineConfig,
    apply_overrides,
    config_from_dict,
    dump_config,
    iter_fields,
    load_config,
    migrate,
    parse_config,
)


def problems_of(text: str, overrides: tuple[str, ...] = ()) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text), overrides)
    return info.value.problems


def keys_of(text: str, overrides: tuple[str, ...] = ()) -> list[str]:
    return [p.key for p in problems_of(text, overrides)]


def only_problem(text: str, overrides: tuple[str, ...] = ()) -> ConfigProblem:
    found = problems_of(text, overrides)
    assert len(found) == 1, found
    return found[0]


# --- Every field is described and bounded (an independent checker, not schema's own)


def _constraints(meta: Any) -> dict[str, Any]:
    if isinstance(meta, FieldInfo):
        out: dict[str, Any] = {}
        for m in meta.metadata:
            out.update(_constraints(m))
        return out
    names = ("ge", "gt", "le", "lt", "max_length", "pattern")
    return {n: getattr(meta, n) for n in names if getattr(meta, n, None) is not None}


def _peel(tp: Any) -> tuple[Any, dict[str, Any]]:
    found: dict[str, Any] = {}
    while True:
        if typing.get_origin(tp) is Annotated:
            tp, *meta = typing.get_args(tp)
            for m in meta:
                found.update(_constraints(m))
        elif typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in (
            args := typing.get_args(tp)
        ):
            rest = [a for a in args if a is not type(None)]
            if len(rest) != 1:
                return tp, found
            tp = rest[0]
        else:
            return tp, found


def _is_models(tp: Any) -> bool:
    """A model, or a union of models (the tagged LLM endpoints)."""
    members = typing.get_args(tp) if typing.get_origin(tp) in (
        typing.Union, types.UnionType) else (tp,)
    return all(isinstance(m, type) and issubclass(m, BaseModel) for m in members)


def _type_faults(path: str, ann: Any, given: dict[str, Any]) -> list[str]:
    inner, more = _peel(ann)
    c = {**given, **more}
    origin = typing.get_origin(inner)
    if inner is bool or origin is Literal or _is_models(inner):
        return []
    if inner in (int, float):
        low, high = "ge" in c or "gt" in c, "le" in c or "lt" in c
        return [] if low and high else [f"{path}: number without both a lower and upper bound"]
    if inner is str:
        return [] if "pattern" in c or "max_length" in c else [
            f"{path}: text without a pattern or max_length"]
    if origin in (list, dict):
        faults = [] if "max_length" in c else [f"{path}: {origin.__name__} without max_length"]
        args = typing.get_args(inner)
        if origin is dict:
            faults += _type_faults(f"{path}.<key>", args[0], {})
        return faults + _type_faults(f"{path}.*", args[-1], {})
    return [f"{path}: a type the checker does not know ({inner!r})"]


def field_faults(model_cls: type[BaseModel]) -> list[str]:
    faults = []
    for path, info, ann in iter_fields(model_cls):
        if not (info.title and info.title.strip()):
            faults.append(f"{path}: no title")
        if not (info.description and info.description.strip()):
            faults.append(f"{path}: no description")
        faults += _type_faults(path, ann, _constraints(info))
    return faults


def test_every_field_has_a_title_a_description_and_bounds_or_choices():
    assert field_faults(PipelineConfig) == []


def test_field_checker_flags_fields_without_description_bounds_or_limits():
    class Loose(BaseModel):
        n: int = Field(1, ge=0, title="N", description="A count.")
        s: str = Field("x", title="S", description="Text.")
        items: list[Annotated[float, Field(ge=0)]] = Field(
            default_factory=list, max_length=3, title="L", description="Items.")
        plain: bool = True

    assert field_faults(Loose) == [
        "n: number without both a lower and upper bound",
        "s: text without a pattern or max_length",
        "items.*: number without both a lower and upper bound",
        "plain: no title",
        "plain: no description",
    ]


def test_iter_fields_names_nested_fields_list_items_and_union_members():
    paths = [path for path, _, _ in iter_fields(PipelineConfig)]
    assert "sft.resources.gpus_per_node" in paths
    assert "seeds.sources.*.path" in paths
    assert "llms.*[openai].api_key_env" in paths
    assert "llms.*[vllm].gpu_memory_utilization" in paths
    assert "llms.*[transformers].device" in paths
    assert len(paths) == len(set(paths))
    assert paths.index("sft") < paths.index("sft.enabled") < paths.index("rl")


def test_feature_categories_are_the_eleven_of_the_paper():
    assert len(schema.FEATURE_CATEGORIES) == 11
    assert schema.FEATURE_CATEGORIES[0] == "programming_language"
    assert "optimization_techniques" in schema.FEATURE_CATEGORIES


# --- Defaults


def test_default_config_validates_and_equals_an_empty_mapping():
    assert config_from_dict({}) == PipelineConfig()
    assert parse_config("{}") == PipelineConfig()


def test_default_config_enables_every_stage_but_eval_which_needs_a_benchmark_file():
    assert PipelineConfig().enabled_stages() == [s for s in STAGE_ORDER if s != "eval"]
    assert keys_of("eval: {enabled: true}") == ["eval.problems"]


def test_default_numbers_follow_the_paper():
    cfg = PipelineConfig()
    assert (cfg.sft.epochs, cfg.sft.lr, cfg.sft.warmup_ratio, cfg.sft.global_batch_size) == (
        8, 5e-5, 0.03, 128)
    assert (cfg.rl.group_size, cfg.rl.prompts_per_step, cfg.rl.mini_batch_size) == (8, 512, 128)
    assert (cfg.rl.lr, cfg.rl.clip_low, cfg.rl.clip_high, cfg.rl.entropy_coef) == (
        4e-7, 0.2, 0.28, 0.001)
    assert cfg.tasks.shapes == [[3, 3, 1], [3, 3, 2], [4, 3, 2]]
    assert (cfg.tasks.temperature, cfg.tasks.top_p, cfg.tasks.min_leaves) == (0.7, 0.8, 25)
    assert cfg.evolve.branching == [2, 1, 2, 1]


def test_stage_returns_the_section_and_refuses_unknown_names():
    cfg = PipelineConfig()
    assert cfg.stage("rl") is cfg.rl
    assert [cfg.stage(s) for s in STAGE_ORDER]
    with pytest.raises(KeyError):
        cfg.stage("llms")


def test_stage_order_is_the_order_of_the_stage_sections():
    sections = [f for f in PipelineConfig.model_fields if f not in ("schema_version", "run", "llms")]
    assert tuple(sections) == STAGE_ORDER


# --- YAML round trip


def _round_trips(cfg: PipelineConfig) -> None:
    text = dump_config(cfg)
    again = parse_config(text)
    assert again == cfg
    assert dump_config(again) == text


def test_dump_round_trips_the_default_config_both_ways():
    _round_trips(PipelineConfig())


def test_dump_round_trips_a_changed_config_with_small_floats_and_nulls():
    cfg = parse_config("sft: {lr: 1e-5, warmup_ratio: 0.03}\nrl: {lr: 4e-7, max_steps: 7}\n"
                       "verify: {float_tolerance: 1e-9}")
    _round_trips(cfg)
    again = parse_config(dump_config(cfg))
    assert (again.sft.lr, again.rl.lr, again.verify.float_tolerance) == (1e-5, 4e-7, 1e-9)
    assert isinstance(again.sft.lr, float)
    assert again.sft.seed is None and "seed: null" in dump_config(cfg)


def test_dump_has_every_section_in_declaration_order():
    text = dump_config(PipelineConfig())
    top = [line.split(":")[0] for line in text.splitlines() if line and not line[0].isspace()]
    assert top == list(PipelineConfig.model_fields)
    assert "  offload_params: false" in text


def test_dump_quotes_text_that_would_read_back_as_a_number():
    cfg = parse_config("run: {name: '1e5'}")
    assert cfg.run.name == "1e5"
    _round_trips(cfg)


def test_yaml_exponent_without_a_dot_reads_as_a_float():
    # PyYAML alone reads 5e-5 as the string "5e-5".
    assert parse_config("sft: {lr: 5e-5}").sft.lr == 5e-5


# --- Overrides


def test_override_reads_1e_5_as_a_float():
    cfg = parse_config("{}", ["sft.lr=1e-5"])
    assert cfg.sft.lr == 1e-5 and isinstance(cfg.sft.lr, float)
    assert apply_overrides({}, ["sft.lr=1e-5"]) == {"sft": {"lr": 1e-5}}


def test_override_creates_missing_sections_and_reads_yaml_values():
    data = apply_overrides({"run": {"name": "a"}}, ["rl.resources.nodes=4", "sft.packing=false",
                                                     "solutions.languages=[python, cpp]"])
    assert data == {"run": {"name": "a"}, "rl": {"resources": {"nodes": 4}},
                    "sft": {"packing": False}, "solutions": {"languages": ["python", "cpp"]}}
    cfg = config_from_dict(data)
    assert cfg.rl.resources.nodes == 4 and cfg.solutions.languages == ["python", "cpp"]


def test_override_indexes_a_list_that_the_file_has():
    text = "seeds: {sources: [{path: a.jsonl}, {path: b.jsonl}]}"
    cfg = parse_config(text, ["seeds.sources.1.limit=5"])
    assert cfg.seeds.sources[1].limit == 5
    assert keys_of(text, ("seeds.sources.2.limit=5",)) == ["seeds.sources.2.limit"]


def test_override_edits_a_default_mapping_or_list_the_file_leaves_out():
    cfg = parse_config("{}", ["llms.generator.max_concurrency=8", "seeds.sources.0.limit=3"])
    assert cfg.llms["generator"].max_concurrency == 8 and "solver" in cfg.llms
    assert cfg.seeds.sources[0].limit == 3


def test_override_without_equals_is_a_problem_on_its_key():
    problem = only_problem("{}", ("sft.lr",))
    assert problem.key == "sft.lr" and "=" in problem.message and "sft.lr=" in problem.fix


def test_override_with_an_empty_key_or_segment_is_a_problem():
    assert keys_of("{}", ("=3", "sft..lr=3")) == ["<override>", "sft..lr"]


def test_override_into_a_plain_value_is_a_problem():
    problem = only_problem("sft: {lr: 0.1}", ("sft.lr.x=1",))
    assert problem.key == "sft.lr.x" and "sft.lr" in problem.message


def test_unknown_key_via_override_is_reported_with_its_dotted_key():
    problem = only_problem("{}", ("rl.groupsize=4",))
    assert problem.key == "rl.groupsize"
    assert "group_size" in problem.fix


def test_override_problems_and_validation_problems_come_together():
    assert keys_of("sft: {epochs: 0}", ("sft.lr",)) == ["sft.lr", "sft.epochs"]


def test_apply_overrides_raises_config_error_and_leaves_its_input_alone():
    raw = {"sft": {"lr": 0.1}}
    assert apply_overrides(raw, ["sft.lr=0.2"]) == {"sft": {"lr": 0.2}}
    assert raw == {"sft": {"lr": 0.1}}
    with pytest.raises(ConfigError) as info:
        apply_overrides(raw, ["nonsense"])
    assert info.value.source == "<overrides>"


# --- All problems at once, each with a key and a fix

FOUR_ERRORS = """
sft:
  lrr: 1e-5           # unknown key: did you mean lr?
  epochs: many        # wrong type
verify:
  memory_mb: 0        # out of range
rl:
  prompts_per_step: 100
  mini_batch_size: 64 # does not divide the batch
"""


def test_four_different_errors_are_reported_together_with_exactly_their_keys():
    assert sorted(keys_of(FOUR_ERRORS)) == sorted(
        ["sft.lrr", "sft.epochs", "verify.memory_mb", "rl.mini_batch_size"])


def test_each_problem_says_what_is_wrong_with_the_value_and_what_to_set():
    found = {p.key: p for p in problems_of(FOUR_ERRORS)}
    assert "'lr'" in found["sft.lrr"].fix
    assert "'many'" in found["sft.epochs"].message
    assert found["sft.epochs"].fix == "set it to a whole number between 1 and 100"
    assert "(got 0)" in found["verify.memory_mb"].message
    assert "between 16 and 65536" in found["verify.memory_mb"].fix
    batch = found["rl.mini_batch_size"]
    assert "100 prompts x 8 rollouts = 800 responses" in batch.message
    assert "divisor of 100" in batch.fix


def test_choices_are_listed_in_the_fix():
    problem = only_problem("sft: {lr_scheduler: cosin}")
    assert problem.key == "sft.lr_scheduler"
    assert problem.fix == "set it to one of: cosine, constant, linear"


def test_list_items_are_reported_by_index():
    assert keys_of("evolve: {branching: [2, 0, 2]}\nseeds: {sources: [{path: a}, {}]}") == [
        "seeds.sources.1.path", "evolve.branching.1"]


def test_cross_section_rule_still_runs_while_another_section_is_broken():
    assert keys_of("features: {llm: nope}\nsft: {epochs: x}") == ["sft.epochs", "features.llm"]


def test_cross_section_rule_waits_when_a_section_it_reads_is_broken():
    # llms itself is broken, so whether features.llm exists is not judged yet.
    assert keys_of("llms: {gen: {backend: openai}}\nfeatures: {llm: gen}") == [
        "llms.gen.base_url", "llms.gen.model"]


def test_config_error_text_lists_the_source_count_and_each_problem():
    err = ConfigError([ConfigProblem("rl.group_size", "must be at least 2 (got 1)",
                                     "set it to a whole number between 2 and 1024")], "x.yaml")
    assert str(err) == ("x.yaml: 1 problem\n"
                        "  rl.group_size: must be at least 2 (got 1) -> "
                        "set it to a whole number between 2 and 1024")
    assert str(ConfigError([], "y")).startswith("y: 0 problems")


# --- Malformed input


def test_malformed_yaml_is_one_problem_with_its_line_number():
    problem = only_problem("sft:\n  lr: [1, 2\nrl: {}\n")
    assert problem.key == "<yaml>" and "line " in problem.message


def test_duplicate_yaml_key_is_a_problem_with_its_line():
    problem = only_problem("sft:\n  lr: 0.1\n  lr: 0.2\n")
    assert problem.key == "<yaml>" and "duplicate key 'lr'" in problem.message
    assert "line 3" in problem.message


def test_top_level_list_is_a_problem_not_a_crash():
    problem = only_problem("- sft\n- rl\n")
    assert problem.key == "<config>" and "not a mapping" in problem.message


@pytest.mark.parametrize("text", ["", "   \n", "# only a comment\n"])
def test_empty_config_is_an_error_saying_config_is_empty(text):
    assert only_problem(text).message == "config is empty"


def test_missing_file_is_a_config_error_with_a_fix(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert info.value.source.endswith("nope.yaml")
    assert info.value.problems[0].key == "<file>" and info.value.problems[0].fix


def test_load_config_reports_problems_under_the_file_name(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("rl: {group_size: 1}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: 1 problem\n  rl.group_size:")


# --- Endpoints and references

SECRET = "sk-proj-Abc123Def456Ghi789Jkl0"


def test_api_key_env_rejects_a_pasted_secret_without_echoing_it():
    text = f"llms: {{gen: {{backend: openai, base_url: 'http://h:8000/v1', model: m, api_key_env: {SECRET}}}}}"
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    (problem,) = info.value.problems
    assert problem.key == "llms.gen.api_key_env"
    assert "environment variable" in problem.message and "OPENAI_API_KEY" in problem.fix
    shown = "".join(traceback.format_exception(info.value))
    assert SECRET not in shown


def test_api_key_env_accepts_a_variable_name_and_rejects_other_forms():
    base = ("llms.generator.api_key_env={}", "llms.solver.api_key_env=OTHER_KEY")
    cfg = parse_config("{}", (base[0].format("MY_API_KEY"), base[1]))
    assert cfg.llms["generator"].api_key_env == "MY_API_KEY"
    problem = only_problem("{}", (base[0].format("my key"), base[1]))
    assert problem.key == "llms.generator.api_key_env" and "my key" not in problem.message


def test_endpoint_backend_must_be_known():
    assert only_problem("llms: {gen: {backend: ollama}}").key == "llms.gen.backend"


def test_llm_reference_to_a_missing_endpoint_is_a_problem_on_stage_llm():
    problem = only_problem("solutions: {llm: solvr}")
    assert problem.key == "solutions.llm"
    assert "'solvr'" in problem.message and "solver" in problem.fix


def test_a_disabled_stage_may_name_a_missing_endpoint():
    assert parse_config("solutions: {llm: gone, enabled: false}").solutions.llm == "gone"


# --- Rules inside a section


def test_rl_mini_batch_larger_than_the_step_is_a_problem():
    problem = only_problem("rl: {prompts_per_step: 64, mini_batch_size: 128}")
    assert problem.key == "rl.mini_batch_size" and "64" in problem.fix


def test_rl_micro_batch_must_split_the_mini_batch_over_gpus():
    problem = only_problem("rl: {mini_batch_size: 1, group_size: 2, resources: {gpus_per_node: 8},"
                           " prompts_per_step: 4}")
    assert problem.key == "rl.micro_batch_size" and "2 responses" in problem.message


def test_rl_clip_high_below_clip_low_is_a_problem():
    assert keys_of("rl: {clip_low: 0.3, clip_high: 0.2}") == ["rl.clip_high"]


def test_rl_group_size_below_two_is_refused():
    assert "between 2 and" in only_problem("rl: {group_size: 1}").fix


def test_sft_global_batch_must_split_over_the_gpus_with_the_numbers_shown():
    problem = only_problem("sft: {global_batch_size: 100, resources: {nodes: 16, gpus_per_node: 8}}")
    assert problem.key == "sft.global_batch_size"
    assert "128 sequences" in problem.message and "multiple of 128" in problem.fix


def test_cuda_only_choices_need_gpus():
    assert keys_of("sft: {resources: {gpus_per_node: 0}}\nrl: {resources: {gpus_per_node: 0}}") == [
        "sft.attention", "rl.rollout"]


def test_all_zero_style_weights_are_a_problem():
    text = "tasks: {style_weights: {codeforces: 0, leetcode: 0, atcoder: 0}}"
    assert keys_of(text) == ["tasks.style_weights"]


def test_a_partial_resources_section_keeps_the_stages_own_defaults():
    cfg = parse_config("sft: {resources: {time_limit: '48:00:00'}}\nseeds: {resources: {nodes: 2}}")
    assert (cfg.sft.resources.gpus_per_node, cfg.sft.resources.time_limit) == (8, "48:00:00")
    assert (cfg.seeds.resources.gpus_per_node, cfg.seeds.resources.nodes) == (0, 2)


def test_shapes_must_be_triples():
    assert keys_of("tasks: {shapes: [[3, 3]]}") == ["tasks.shapes.0"]


def test_a_language_listed_twice_is_a_problem():
    assert keys_of("solutions: {languages: [python, python]}") == ["solutions.languages"]


def test_seed_sources_are_files_not_urls():
    assert keys_of("seeds: {sources: [{path: 'https://x/seeds.jsonl'}]}") == [
        "seeds.sources.0.path"]


def test_time_limit_takes_slurm_forms_only():
    for good in ("90", "24:00:00", "7-00:00:00"):
        assert parse_config(f"sft: {{resources: {{time_limit: '{good}'}}}}")
    assert keys_of("sft: {resources: {time_limit: '1 day'}}") == ["sft.resources.time_limit"]


# --- Migrations


def test_every_older_version_has_a_migration():
    assert all(v in MIGRATIONS for v in range(SCHEMA_VERSION))


def test_migration_from_version_0_renames_learning_rate_to_lr():
    cfg = parse_config("schema_version: 0\nsft: {learning_rate: 2e-5}\nrl: {rollouts_per_prompt: 4}")
    assert cfg.schema_version == SCHEMA_VERSION
    assert cfg.sft.lr == 2e-5 and cfg.rl.group_size == 4


def test_migrate_copies_and_a_missing_version_means_current():
    raw = {"schema_version": 0, "sft": {"learning_rate": 1e-5}}
    assert migrate(raw) == {"schema_version": 1, "sft": {"lr": 1e-5}}
    assert raw == {"schema_version": 0, "sft": {"learning_rate": 1e-5}}
    assert migrate({"sft": {"lr": 1e-5}}) == {"sft": {"lr": 1e-5}}


def test_a_config_from_a_newer_synthsmith_is_refused():
    problem = only_problem(f"schema_version: {SCHEMA_VERSION + 1}")
    assert problem.key == "schema_version"
    assert "newer SynthSmith" in problem.message and "upgrade the engine" in problem.fix


def test_the_field_layer_describes_fields_for_forms_without_qt():
    # One layer for validation's messages and the desktop's forms (engine/schema/fields.py;
    # that the engine never imports Qt is import-linter's contract, tests/test_layering.py).
    from engine.schema import RlConfig
    from engine.schema.fields import field_specs, range_text

    specs = {s.name: s for s in field_specs(RlConfig)}
    group = specs["group_size"]
    field = RlConfig.model_fields["group_size"]
    limits = {k: getattr(m, k) for m in field.metadata for k in ("ge", "le") if hasattr(m, k)}
    assert group.kind == "int" and group.bounds == range_text(limits)
    assert group.bounds.startswith("between ") and group.tooltip.endswith(f"({group.bounds})")
    assert specs["resources"].kind == "group" and specs["resources"].children
    assert specs["reward"].kind == "choice" and set(specs["reward"].choices) == {"fraction",
                                                                               "all_pass"}
    assert specs["judge_time_limit_s"].label.endswith("(s)")
