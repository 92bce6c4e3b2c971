"""Judging eval samples in the sandbox, and the avg@k arithmetic.

    verdicts = judge_samples(pool, problem, [code_or_None, ...], limits)
    passes = [v.passed for v in verdicts]
    score = pass_at_1(passes)        # this problem's mean pass@1 over its k samples
    avg = avg_at_k([score, ...])     # the benchmark number: the mean over problems

How a sample is judged (LiveCodeBench's rules, on our sandbox, engine/verify/sandbox.py):

- It passes only if it passes EVERY test, public and private; the tests run in order and the
  first failure ends its run (a solution that times out on test 3 costs one time limit, not
  one per test). ``SampleVerdict.status`` is ``ok`` or the first failure's status
  (``wrong``, ``runtime_error``, ``time_limit``, ``memory_limit``, ``output_limit``), or
  ``no_code`` for a sample without an extracted program.
- stdin problems: the program gets the input on stdin; its stdout is compared with the
  verify stage's normalisation (``normalize_output``: trailing spaces and blank edge lines
  ignored, CRLF as LF); failing that, line by line where the lines' whitespace-separated
  tokens are all numbers equal as decimals (LiveCodeBench's fallback: ``1.0`` = ``1``).
- functional problems: the candidate runs inside ``harness_source``: it reads the arguments
  (one JSON value per input line) BEFORE the candidate's code runs, executes the code with
  LiveCodeBench's usual imports in scope (``List``, ``defaultdict``, ``heapq``, ...) and stdin
  empty, calls ``Solution().<fn_name>`` (LeetCode style) or a top-level ``<fn_name>``, and
  prints ``json.dumps(result)``. The candidate's own prints go to stderr, so stdout holds
  only the result. Results compare as parsed JSON values (tuples are lists after dumps).

Left out: C++ samples (LiveCodeBench is judged in Python), floating-point tolerance beyond
exact decimal equality, and special judges (problems with several right answers).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.eval.problems import EvalProblem, TestCase
from engine.verify.sandbox import Limits, Program, RunResult, outputs_match

__all__ = [
    "SampleVerdict", "avg_at_k", "harness_source", "judge_sample", "judge_samples",
    "outputs_equal", "pass_at_1", "results_equal",
]

NO_CODE = "no_code"

# What LiveCodeBench puts in scope before a LeetCode-style solution (its `import_string`).
_PRELUDE = (
    "from typing import *\nfrom collections import *\nfrom functools import *\n"
    "from itertools import *\nfrom heapq import *\nfrom bisect import *\nfrom math import *\n"
    "from string import *\nfrom operator import *\n"
    "import math, string, re, heapq, bisect, itertools, collections, functools, random, "
    "operator, copy, sys, json\n"
)

_HARNESS = '''\
import io as _io
import json as _json
import sys as _sys

_args = [_json.loads(_line) for _line in _sys.stdin.read().split("\\n") if _line.strip()]
_out = _sys.stdout
_sys.stdout = _sys.stderr  # the candidate's own prints must not mix with the result
_sys.stdin = _io.StringIO("")
_ns = {"__name__": "__solution__"}
exec(compile(%(prelude)r, "<prelude>", "exec"), _ns)
exec(compile(%(source)r, "<solution>", "exec"), _ns)
_fn_name = %(fn_name)r
_cls = _ns.get("Solution")
if isinstance(_cls, type) and hasattr(_cls, _fn_name):
    _fn = getattr(_cls(), _fn_name)
elif callable(_ns.get(_fn_name)):
    _fn = _ns[_fn_name]
else:
    raise SystemExit("harness: no Solution.%%s method or %%s function" %% (_fn_name, _fn_name))
_result = _fn(*_args)
_out.write(_json.dumps(_result))
_out.write("\\n")
_out.flush()
'''


@dataclass(frozen=True)
class SampleVerdict:
    """How one sample did on one problem."""

    passed: bool
    status: str  # "ok", "no_code", or the first failing test's status
    tests_run: int  # tests run before the verdict (all of them when it passed)
    detail: str = ""  # the failing test's index and the sandbox's one-line reason


def harness_source(code: str, fn_name: str) -> str:
    """The program that runs a function-style candidate on one test (see the module doc)."""
    return _HARNESS % {"prelude": _PRELUDE, "source": code, "fn_name": fn_name}


def _decimal_tokens(line: str) -> list[Decimal] | None:
    try:
        return [Decimal(t) for t in line.split()]
    except InvalidOperation:
        return None


def outputs_equal(actual: str, expected: str) -> bool:
    """A stdin problem's output check (the module doc: normalised text, then decimals)."""
    if outputs_match(actual, expected):
        return True
    a, e = actual.strip().splitlines(), expected.strip().splitlines()
    if len(a) != len(e):
        return False
    for x, y in zip(a, e, strict=True):
        if x.strip() == y.strip():
            continue
        dx, dy = _decimal_tokens(x), _decimal_tokens(y)
        if dx is None or dy is None or dx != dy or not dx:
            return False
    return True


def _as_lists(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_as_lists(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_lists(v) for k, v in value.items()}
    return value


def results_equal(actual: str, expected: str) -> bool:
    """A functional problem's check: both sides parse as JSON and are equal values."""
    try:
        got = json.loads(actual)
        want = json.loads(expected)
    except (json.JSONDecodeError, ValueError):
        return False
    return _as_lists(got) == _as_lists(want)


def _check(problem: EvalProblem, test: TestCase, result: RunResult) -> tuple[str, str]:
    if result.status != "ok":
        return result.status, result.detail
    if result.stdout_truncated:
        return "output_limit", "output cut at the limit"
    same = (results_equal(result.text, test.output) if problem.functional
            else outputs_equal(result.text, test.output))
    return ("ok", "") if same else ("wrong", "output differs")


def judge_sample(pool: Any, problem: EvalProblem, code: str | None,
                 limits: Limits) -> SampleVerdict:
    """Run one sample on the problem's tests in order, stopping at the first failure."""
    if code is None:
        return SampleVerdict(False, NO_CODE, 0, "no program in the answer")
    program = Program.python(harness_source(code, problem.fn_name) if problem.fn_name
                             else code)
    for i, test in enumerate(problem.tests):
        status, detail = _check(problem, test, pool.run(program, test.input, limits))
        if status != "ok":
            return SampleVerdict(False, status, i + 1, f"test {i}: {detail}"[:300])
    return SampleVerdict(True, "ok", len(problem.tests))


def judge_samples(pool: Any, problem: EvalProblem, codes: Sequence[str | None],
                  limits: Limits, executor: ThreadPoolExecutor | None = None
                  ) -> list[SampleVerdict]:
    """``judge_sample`` for each code, in order; concurrently on ``executor`` when given
    (the pool's ``run`` is thread-safe and the sandbox workers do the work)."""
    if executor is None:
        return [judge_sample(pool, problem, c, limits) for c in codes]
    futures = [executor.submit(judge_sample, pool, problem, c, limits) for c in codes]
    return [f.result() for f in futures]


def pass_at_1(passes: Sequence[bool]) -> float:
    """The mean pass@1 of one problem's samples: the share that passed."""
    if not passes:
        raise ValueError("pass@1 of no samples")
    return sum(bool(p) for p in passes) / len(passes)


def avg_at_k(scores: Sequence[float]) -> float:
    """avg@k: the mean over problems of each problem's pass@1 over its k samples (0 if none)."""
    return sum(scores) / len(scores) if scores else 0.0
