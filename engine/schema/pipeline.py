"""``PipelineConfig``: the sections together, and the rules across sections.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import (
    BaseModel,
    Field,
    ValidationInfo,
    model_validator,
)

from engine.schema.common import Name, StrictModel
from engine.schema.constants import SCHEMA_VERSION, STAGE_ORDER
from engine.schema.endpoints import LLMEndpoint, default_llms
from engine.schema.problems import rule_error
from engine.schema.run import RunSection
from engine.schema.stages import (
    CurateConfig,
    EvalConfig,
    EvolveConfig,
    FeaturesConfig,
    RlConfig,
    SeedsConfig,
    SftConfig,
    SolutionsConfig,
    StageBase,
    TasksConfig,
    TestsConfig,
    VerifyConfig,
)

# --- The pipeline config


def _section(cls: type[BaseModel], what: str) -> Any:
    return Field(default_factory=cls, title=what.split(":")[0], description=what)


class PipelineConfig(StrictModel):
    """A whole SynthSmith run: endpoints, then one section per stage in STAGE_ORDER."""

    schema_version: int = Field(
        SCHEMA_VERSION, ge=SCHEMA_VERSION, le=SCHEMA_VERSION, title="Schema version",
        description="Version of this config format; older files are migrated on load.",
    )
    run: RunSection = _section(RunSection, "Run: its name and base random seed.")
    llms: dict[Name, LLMEndpoint] = Field(
        default_factory=default_llms, max_length=32, title="LLM endpoints",
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
        # `unchecked`: sections that failed on their own (see cross_section_problems);
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
            raise rule_error(problems)
        return self


# Stages that call an LLM endpoint named in `llms`.
LLM_STAGES: tuple[str, ...] = tuple(
    name for name in STAGE_ORDER
    if "llm" in PipelineConfig.model_fields[name].annotation.model_fields
)


