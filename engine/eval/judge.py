"""Judging eval samples in the sandbox, and the avg@k arithmetic.

    verdicts = judge_samples(pool, problem, [code_or_None, ...], limits)
    passes = [v.passed for v in verdicts]
    score = pass_at_1(passes)        # this problem's mean pass@1 over its k samples
    avg = avg_at_k([score, ...])     # the benchmark number: the mean over problems

A sample is judged the way LiveCodeBench's grader judges it (its ``testing_util.py`` at
commit 28fef95, checked answer by answer against a recorded copy of its verdicts in
tests/engine/fixtures/lcb_verdicts.json), but inside our sandbox (engine/verify/sandbox.py):
one sandboxed process per sample runs ``harness_source``, which executes the candidate and
goes through the tests in order, stopping at the first failure.

- It passes only if it passes EVERY test, public and private. ``SampleVerdict.status`` is
  ``ok`` or the first failure's status (``wrong``, ``runtime_error``, ``time_limit``,
  ``memory_limit``, ``output_limit``), or ``no_code`` for a sample without a program.
- Scope: the candidate runs after ``PRELUDE``, LiveCodeBench's imports (star imports of
  string, re, datetime, collections, heapq, bisect, copy, math, random, statistics,
  itertools, functools, operator, io, sys, json, builtins, typing; the plain modules; and
  ``sys.setrecursionlimit(50000)``); ints print up to 50,000 digits (its
  ``sys.set_int_max_str_digits(50000)``).
- stdin problems: a last ``if __name__ == '__main__':`` block is unwrapped, top-level imports
  stay at module level and everything else becomes the body of one function, called once
  per test (so a top-level variable is a local: ``global x`` inside a helper fails, as
  there). During a call ``sys.stdin`` is a stand-in holding the test's input (``input()``,
  ``readline``, ``read``, ``readlines`` and ``buffer.read`` work; iterating over it does
  not, and ``buffer.readline`` repeats the first line), and ``sys.stdout`` is a StringIO
  (``sys.stdout.buffer`` does not exist); ``exit()`` ends the test normally, ``quit`` is None.
  Output check ``lines_match``: both texts stripped and split on ``\\n``, each line
  stripped; the line counts must agree and each line be equal as text or as a list of
  Decimals (``1.0`` = ``1``, ``1e3`` = ``1000``; no tolerance beyond: ``0.3333`` !=
  ``0.33333``).
- functional problems: the code runs as a module (``__name__`` is not ``__main__``); if its
  text contains ``class Solution`` the function is ``Solution().<fn_name>`` (ONE instance
  for all tests, as there), else the top-level ``<fn_name>``. The arguments are one JSON
  value per input line; a tuple result becomes a list, then ``result == expected`` (Python
  equality: ``2.0 == 2``, no float tolerance).
- Time: each call (and the module's execution before the first) gets ``limits.cpu_s``
  seconds on the wall clock (LiveCodeBench: ``--timeout 6`` via SIGALRM); the whole
  process gets LiveCodeBench's global limit, ``(t + 1) * tests + 5`` s, CPU and wall.

Deliberate divergences: a memory limit (``limits.memory_mb``; LiveCodeBench sets none), the
sandbox's isolation (LiveCodeBench only disables some ``os`` functions), and blank lines in a
functional test's input are skipped (LiveCodeBench's ``json.loads("")`` fails the sample).
The harness is no boundary against a candidate that forges its own report (neither is
LiveCodeBench's in-process grader); the sandbox protects the host, not the score.

Left out: C++ samples (LiveCodeBench is judged in Python) and special judges (problems with
several right answers).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.eval.problems import EvalProblem
from engine.verify.sandbox import Limits, Program, RunResult

__all__ = [
    "PRELUDE", "SampleVerdict", "avg_at_k", "harness_source", "judge_sample", "judge_samples",
    "lines_match", "outputs_equal", "pass_at_1", "results_equal", "run_limits",
]

NO_CODE = "no_code"
RECURSION_LIMIT = 50_000
INT_MAX_STR_DIGITS = 50_000
_STAR_MODULES = ("string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math",
                 "random", "statistics", "itertools", "functools", "operator", "io", "sys",
                 "json", "builtins", "typing")
_PLAIN_MODULES = _STAR_MODULES[:-2]  # builtins and typing are only star-imported
# LiveCodeBench's `import_string`, line for line (the order decides which name wins).
PRELUDE = ("".join(f"from {m} import *\n" for m in _STAR_MODULES)
           + "".join(f"import {m}\n" for m in _PLAIN_MODULES)
           + f"sys.setrecursionlimit({RECURSION_LIMIT})\n")


def lines_match(actual: str, expected: str) -> bool:
    """A stdin problem's output check (module doc); also runs inside the harness."""
    got = [x.strip() for x in actual.strip().split("\n")]
    want = [x.strip() for x in expected.strip().split("\n")]
    if len(got) != len(want):
        return False
    for g, w in zip(got, want, strict=True):
        if g == w:
            continue
        try:
            if [Decimal(t) for t in g.split()] != [Decimal(t) for t in w.split()]:
                return False
        except (InvalidOperation, ValueError):
            return False
    return True


_HARNESS = '''\
import ast as _ast
import builtins as _builtins
import io as _io
import json as _json
import os as _os
import signal as _signal
import sys as _sys
from decimal import Decimal, InvalidOperation

_job = _json.loads(_sys.stdin.buffer.read().decode("utf-8"))
_report = _os.fdopen(_os.dup(1), "w", encoding="utf-8")
_os.dup2(2, 1)  # writes that bypass sys.stdout are not output (LiveCodeBench never sees them)
if hasattr(_sys, "set_int_max_str_digits"):
    _sys.set_int_max_str_digits(%(digits)d)
_TIMEOUT = %(timeout)r
_FN_NAME = %(fn_name)r
_CODE = %(code)r
_PRELUDE = %(prelude)r
_at = [0]


%(lines_match)s

def _done(status, detail=""):
    _signal.setitimer(_signal.ITIMER_REAL, 0)
    _report.write(_json.dumps({"status": status, "test": _at[0], "detail": detail[:300]}))
    _report.write("\\n")
    _report.flush()
    _os._exit(0)


def _alarm(signum, frame):
    _done("time_limit", "over %%ss" %% _TIMEOUT)


_signal.signal(_signal.SIGALRM, _alarm)


def _timed(fn, *args):
    _signal.setitimer(_signal.ITIMER_REAL, _TIMEOUT)
    try:
        return fn(*args)
    finally:
        _signal.setitimer(_signal.ITIMER_REAL, 0)


def _short(value):
    text = repr(value)
    return text if len(text) <= 120 else text[:60] + "..." + text[-57:]


class _Lines:
    """The stdin object bound at import time (`from sys import stdin`): reads the current
    test's lines during a call, nothing outside one."""

    text = None

    def _go(self, text):
        self.text, self._it = text, iter(text.split("\\n"))

    def read(self, *args):
        return "" if self.text is None else self.text

    def readline(self, *args):
        return "" if self.text is None else next(self._it)

    def readlines(self, *args):
        return [] if self.text is None else self.text.split("\\n")

    def __getattr__(self, name):
        return getattr(_sys.__stdin__, name)


class _Bytes:
    def __init__(self, text):
        self._data = text.encode("utf-8")

    def read(self, *args):
        return self._data

    def readline(self, *args):
        return self._data.split(b"\\n")[0] + b"\\n"


class _Stdin:
    """sys.stdin during a call."""

    def __init__(self, text):
        self._text, self._io, self.buffer = text, _io.StringIO(text), _Bytes(text)

    def read(self, *args):
        return self._text

    def readline(self, *args):
        return self._io.readline(*args)

    def readlines(self, *args):
        return self._text.split("\\n")

    def __getattr__(self, name):
        return getattr(self._io, name)


def _function_source(code):
    try:
        body = _ast.parse(code).body
    except SyntaxError:
        return code
    last = body[-1] if body else None
    if isinstance(last, _ast.If) and _ast.unparse(last.test).strip() == "__name__ == '__main__'":
        body = body[:-1] + last.body
    imports = [s for s in body if isinstance(s, (_ast.Import, _ast.ImportFrom))]
    fn = _ast.FunctionDef(
        name="wrapped_function", body=[s for s in body if s not in imports],
        args=_ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[],
                            defaults=[]),
        decorator_list=[], returns=None, lineno=1)
    fn.type_params = []
    return (_PRELUDE + "\\n" + _ast.unparse(_ast.Module(body=imports, type_ignores=[])) + "\\n"
            + _ast.unparse(fn))


_lines = _Lines()
_sys.stdin = _lines
_builtins.quit = None  # LiveCodeBench's reliability_guard does this: quit() is an error there
_ns = {"__name__": "__solution__", "__builtins__": _builtins}
try:
    if _FN_NAME is None:
        _timed(exec, compile(_function_source(_CODE), "<solution>", "exec"), _ns)
        _fn = _ns.get("wrapped_function")
    else:
        _timed(exec, compile(_PRELUDE + "\\n\\n" + _CODE, "<solution>", "exec"), _ns)
        _owner = _ns["Solution"]() if "class Solution" in _CODE else None
        _fn = (getattr(_owner, _FN_NAME, None) if _owner is not None else _ns.get(_FN_NAME))
except BaseException as _e:
    _done("runtime_error", "while loading: " + _short(_e))
if _fn is None:
    _done("runtime_error", "no function %%r to call" %% (_FN_NAME or "wrapped_function"))

for _at[0], (_input, _output) in enumerate(_job["tests"]):
    if _FN_NAME is not None:
        try:
            _args = [_json.loads(_line) for _line in _input.split("\\n") if _line.strip()]
            _expected = _json.loads(_output)
        except ValueError as _e:
            _done("runtime_error", "test data is not JSON: " + _short(_e))
        try:
            _got = _timed(_fn, *_args)
            if isinstance(_got, tuple):
                _got = list(_got)
            _same = bool(_got == _expected)
        except BaseException as _e:
            _done("runtime_error", _short(_e))
        if not _same:
            _done("wrong", "got %%s, expected %%s" %% (_short(_got), _short(_expected)))
        continue
    _captured = _io.StringIO()
    _lines._go(_input)
    _sys.stdin, _sys.stdout = _Stdin(_input), _captured
    try:
        _timed(_fn)
    except SystemExit:
        pass
    except BaseException as _e:
        _sys.stdout = _sys.__stdout__
        _done("runtime_error", _short(_e))
    finally:
        _sys.stdin, _sys.stdout, _lines.text = _lines, _sys.__stdout__, None
    if not lines_match(_captured.getvalue(), _output):
        _done("wrong", "output %%s" %% _short(_captured.getvalue()))
_at[0] = len(_job["tests"])
_done("ok")
'''


@dataclass(frozen=True)
class SampleVerdict:
    """How one sample did on one problem."""

    passed: bool
    status: str  # "ok", "no_code", or the first failing test's status
    tests_run: int  # tests run before the verdict (all of them when it passed)
    detail: str = ""  # the failing test's index and a one-line reason


def harness_source(code: str, fn_name: str | None, timeout_s: float) -> str:
    """The program that runs a candidate on a problem's tests (module doc); its stdin is
    ``{"tests": [[input, output], ...]}`` as JSON, its stdout one JSON report line."""
    return _HARNESS % {"prelude": PRELUDE, "code": code, "fn_name": fn_name,
                       "timeout": float(timeout_s), "digits": INT_MAX_STR_DIGITS,
                       "lines_match": inspect.getsource(lines_match)}


def run_limits(limits: Limits, tests: int) -> Limits:
    """The whole process's limits for ``tests`` tests at ``limits.cpu_s`` per call:
    LiveCodeBench's global timeout ``(t + 1) * tests + 5`` seconds."""
    total = (limits.cpu_s + 1) * tests + 5
    return dataclasses.replace(limits, cpu_s=total, wall_s=total)


def outputs_equal(actual: str, expected: str) -> bool:
    """A stdin problem's output check (``lines_match``)."""
    return lines_match(actual, expected)


def results_equal(actual: Any, expected: Any) -> bool:
    """A functional problem's check on values: a tuple result counts as a list, then ``==``."""
    if isinstance(actual, tuple):
        actual = list(actual)
    return bool(actual == expected)


def _verdict(result: RunResult, tests: int) -> SampleVerdict:
    report = None
    if result.status == "ok" and not result.stdout_truncated:
        try:
            report = json.loads(result.text.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            report = None
    if not isinstance(report, dict) or "status" not in report:
        status = result.status if result.status != "ok" else "runtime_error"
        if result.stdout_truncated:
            status = "output_limit"
        return SampleVerdict(False, status, tests,
                             f"{result.detail or 'no report from the harness'}: "
                             f"{result.stderr[-200:]}"[:300])
    index = int(report.get("test", 0))
    if report["status"] == "ok":
        return SampleVerdict(True, "ok", tests)
    return SampleVerdict(False, str(report["status"]), min(index + 1, tests),
                         f"test {index}: {report.get('detail', '')}"[:300])


def judge_sample(pool: Any, problem: EvalProblem, code: str | None,
                 limits: Limits) -> SampleVerdict:
    """Run one sample on all of the problem's tests in one sandboxed process;
    ``limits.cpu_s`` is the time per test (module doc)."""
    if code is None:
        return SampleVerdict(False, NO_CODE, 0, "no program in the answer")
    program = Program.python(harness_source(code, problem.fn_name, limits.cpu_s))
    job = json.dumps({"tests": [[t.input, t.output] for t in problem.tests]})
    result = pool.run(program, job, run_limits(limits, len(problem.tests)))
    return _verdict(result, len(problem.tests))


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
