"""Evaluation: avg@k on LiveCodeBench-format problems (SYNTHSMITH.md §9).

- ``engine.eval.problems``: ``load_problems(path, max_problems)`` reads and checks a
  LiveCodeBench-format JSONL file (plain or compressed private tests, restricted unpickling).
- ``engine.eval.judge``: ``judge_sample`` runs one sample on all of a problem's tests in the
  sandbox (stdin or function-style through a harness); ``pass_at_1`` / ``avg_at_k``.

The stage that uses them is engine/stages/eval.py. Nothing here imports torch or an LLM
backend.
"""

from __future__ import annotations

from engine.eval.judge import (
    SampleVerdict,
    avg_at_k,
    harness_source,
    judge_sample,
    judge_samples,
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
)

__all__ = [
    "EvalProblem", "ProblemFormatError", "SampleVerdict", "TestCase", "avg_at_k",
    "decode_test_cases", "harness_source", "judge_sample", "judge_samples", "load_problems",
    "outputs_equal", "parse_problem", "pass_at_1", "results_equal",
]
