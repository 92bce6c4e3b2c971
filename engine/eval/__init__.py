"""Evaluation: avg@k on LiveCodeBench-format problems (SYNTHSMITH.md §9).

- ``engine.eval.problems``: ``load_problems(path, max_problems, release=, start_date=,
  end_date=)`` reads and checks LiveCodeBench-format JSONL or Parquet files (plain or
  compressed private tests, restricted unpickling; LiveCodeBench's release files and
  contest-date window).
- ``engine.eval.judge``: ``judge_sample`` runs one sample on all of a problem's tests in the
  sandbox, through a harness that runs it as LiveCodeBench's grader does (its imports,
  recursion limit, stdin stand-in, output check, time limits); ``pass_at_1`` / ``avg_at_k``.

The stage that uses them is engine/stages/eval.py. Nothing here imports torch or an LLM
backend.
"""

from __future__ import annotations

from engine.eval.judge import (
    PRELUDE,
    SampleVerdict,
    avg_at_k,
    harness_source,
    judge_sample,
    judge_samples,
    lines_match,
    outputs_equal,
    pass_at_1,
    results_equal,
)
from engine.eval.problems import (
    EvalProblem,
    ProblemFormatError,
    TestCase,
    decode_test_cases,
    load_problems,
    parse_problem,
    release_files,
)

__all__ = [
    "PRELUDE", "EvalProblem", "ProblemFormatError", "SampleVerdict", "TestCase", "avg_at_k",
    "decode_test_cases", "harness_source", "judge_sample", "judge_samples", "lines_match",
    "load_problems", "outputs_equal", "parse_problem", "pass_at_1", "release_files",
    "results_equal",
]
