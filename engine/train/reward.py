"""The RL reward: run a rollout's code on sampled tests in the sandbox (SYNTHSMITH.md §8).

    spec = RewardSpec(mode="fraction", tests_per_call=10, no_code_reward=-2.0, scale=5.0)
    with RewardJudge(spec) as judge:                       # one SandboxPool, all cores
        scores = judge.score([Rollout(task_id=7, text=answer, inputs=[...], outputs=[...],
                                      step=3, sample=0), ...])
        scores[0].reward, scores[0].passed, scores[0].total, scores[0].statuses

Per rollout:
- ``extract_solution`` on the text (Python; a reply whose only block is C++ is judged as C++).
  No single parseable block -> ``no_code_reward`` (-2 by default) and the reject reason.
- Else up to ``tests_per_call`` of the task's tests, sampled without replacement with a seed
  derived from (seed, task, step, sample) so a rerun of a step judges the same tests; each runs
  with stdin = the input under ``Limits(cpu_s=time_limit_s, memory_mb=memory_mb)``. A test
  passes when the run is clean (status ok, stdout not cut) and its output equals the expected
  one in ``engine.verify.voting.comparison_form`` (verify's ``compare`` setting: "strip" or
  "whitespace"), the same normalisation verification labelled the tests with.
- ``fraction``: reward = scale x passed / total; ``all_pass``: scale if every sampled test
  passed, else 0.

All runs of one ``score`` call (every rollout of a step x its tests) go to the pool at once
(``SandboxPool.run_many``), so they spread over all workers. ``RewardJudge`` raises
``SandboxUnavailable`` when no sandbox can start here: rewards never run code outside it.

Leaves out: checker-judged tasks (the RL export only holds tasks with labelled outputs), float
tolerance, partial credit per test, and languages other than Python and C++.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.synth.code_extract import extract_solution, reason_code
from engine.verify.sandbox import Limits, Program, RunResult, SandboxPool
from engine.verify.voting import comparison_form

__all__ = ["RewardJudge", "RewardSpec", "Rollout", "RolloutReward", "parse_ground_truth",
           "sample_tests"]

RewardMode = Literal["fraction", "all_pass"]


@dataclass(frozen=True)
class RewardSpec:
    """How a rollout is scored (the ``rl`` config's reward fields)."""

    mode: RewardMode = "fraction"
    tests_per_call: int = 10
    no_code_reward: float = -2.0
    scale: float = 5.0
    time_limit_s: float = 10.0
    memory_mb: int = 256
    compare: str = "strip"  # verify.compare: "strip" or "whitespace"
    seed: int = 0

    @classmethod
    def from_config(cls, rl: Any, *, compare: str = "strip", seed: int = 0) -> RewardSpec:
        """The spec of an ``RlConfig`` (``compare`` from the verify config, ``seed`` resolved)."""
        return cls(mode=rl.reward, tests_per_call=rl.reward_tests_per_call,
                   no_code_reward=rl.no_code_reward, scale=rl.reward_scale,
                   time_limit_s=rl.judge_time_limit_s, memory_mb=rl.judge_memory_mb,
                   compare=compare, seed=seed)

    @property
    def limits(self) -> Limits:
        return Limits(cpu_s=self.time_limit_s, memory_mb=self.memory_mb)


@dataclass(frozen=True)
class Rollout:
    """One response to judge, with its task's tests (stdin / expected stdout, by index)."""

    task_id: int
    text: str
    inputs: Sequence[str]
    outputs: Sequence[str]
    step: int = 0
    sample: int = 0  # the rollout's index within its group
    truncated: bool = False  # generation hit max tokens: extraction says "truncated: ..."


@dataclass(frozen=True)
class RolloutReward:
    reward: float
    passed: int
    total: int  # tests run (0 without code)
    statuses: tuple[str, ...]  # per test run: "ok" (passed), "wrong", "time_limit", ...
    timeouts: int
    reason: str | None  # extraction reject reason; None when code was found
    code: str | None
    language: str | None
    tests: tuple[int, ...] = ()  # indices of the sampled tests

    @property
    def has_code(self) -> bool:
        return self.reason is None

    @property
    def all_passed(self) -> bool:
        return self.total > 0 and self.passed == self.total

    def to_dict(self) -> dict[str, Any]:
        return {"reward": self.reward, "passed": self.passed, "total": self.total,
                "statuses": list(self.statuses), "timeouts": self.timeouts,
                "reason": self.reason, "language": self.language, "tests": list(self.tests)}


def parse_ground_truth(text: str | dict) -> tuple[list[str], list[str]]:
    """(inputs, outputs) of an RL row's ``reward_model.ground_truth`` JSON; a ValueError that
    names the expected shape for anything else (a row of another dataset, a hand-edited file)."""
    shape = ('expected the JSON object {"inputs": [stdin, ...], "outputs": [stdout, ...]} '
             "that SynthSmith's curate stage writes")
    try:
        truth = json.loads(text) if isinstance(text, (str, bytes)) else text
    except ValueError as exc:
        raise ValueError(f"ground_truth is not JSON ({exc}); {shape}") from None
    if not isinstance(truth, dict) or not all(
            isinstance(truth.get(k, []), list) for k in ("inputs", "outputs")):
        raise ValueError(f"ground_truth is a {type(truth).__name__} of another shape; {shape}")
    inputs, outputs = list(truth.get("inputs") or []), list(truth.get("outputs") or [])
    if len(inputs) != len(outputs):
        raise ValueError(f"ground truth has {len(inputs)} inputs but {len(outputs)} outputs")
    return [str(x) for x in inputs], [str(x) for x in outputs]


def sample_tests(n_tests: int, k: int, *, seed: int, task_id: int, step: int,
                 sample: int) -> list[int]:
    """Up to ``k`` test indices of ``n_tests``, sorted; the same for the same arguments.

    The seed is a hash of all four numbers (not Python's ``hash``, which is salted per process),
    so every rank and every rerun picks the same tests for a rollout.
    """
    if n_tests <= k:
        return list(range(n_tests))
    digest = hashlib.sha256(f"{seed}:{task_id}:{step}:{sample}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    return sorted(rng.sample(range(n_tests), k))


def _extract(text: str, truncated: bool) -> tuple[str | None, str | None, str]:
    """(code, reason, language): Python first; a reply written only in C++ is judged as C++."""
    ex = extract_solution(text, "python", truncated=truncated)
    if not ex.ok and reason_code(ex.reject_reason or "") == "wrong_language":
        cpp = extract_solution(text, "cpp", truncated=truncated)
        if cpp.ok:
            return cpp.code, None, "cpp"
    return ex.code, ex.reject_reason, "python"


@dataclass
class _Plan:
    code: str | None
    reason: str | None
    language: str
    tests: list[int] = field(default_factory=list)
    first_job: int = 0


class RewardJudge:
    """Scores batches of rollouts on one ``SandboxPool`` (started here unless one is given)."""

    def __init__(self, spec: RewardSpec, pool: SandboxPool | None = None,
                 workers: int | None = None) -> None:
        self.spec = spec
        self._own_pool = pool is None
        # SandboxUnavailable propagates: the caller decides (the stage fails, tests skip).
        self.pool = pool or SandboxPool(workers, limits=spec.limits)
        self.last_seconds = 0.0  # wall time of the last score() call

    def score(self, rollouts: Sequence[Rollout]) -> list[RolloutReward]:
        """Rewards in the order of ``rollouts``; every sandbox run of the batch in parallel."""
        t0 = time.perf_counter()
        spec = self.spec
        plans: list[_Plan] = []
        jobs: list[tuple[Program, str]] = []
        for r in rollouts:
            code, reason, language = _extract(r.text, r.truncated)
            plan = _Plan(code, reason, language, first_job=len(jobs))
            if code is not None:
                plan.tests = sample_tests(len(r.inputs), spec.tests_per_call, seed=spec.seed,
                                          task_id=r.task_id, step=r.step, sample=r.sample)
                program = Program(language, code)  # type: ignore[arg-type]
                jobs += [(program, r.inputs[j]) for j in plan.tests]
            plans.append(plan)
        results = self.pool.run_many(jobs, spec.limits) if jobs else []
        out = [self._reward(r, p, results[p.first_job:p.first_job + len(p.tests)])
               for r, p in zip(rollouts, plans, strict=True)]
        self.last_seconds = time.perf_counter() - t0
        return out

    def _reward(self, rollout: Rollout, plan: _Plan, runs: Sequence[RunResult]) -> RolloutReward:
        spec = self.spec
        if plan.code is None:
            return RolloutReward(spec.no_code_reward, 0, 0, (), 0, plan.reason, None,
                                 plan.language)
        statuses = []
        for j, run in zip(plan.tests, runs, strict=True):
            status: str = run.status
            if status == "ok" and (run.stdout_truncated or comparison_form(
                    run.text, spec.compare) != comparison_form(rollout.outputs[j], spec.compare)):
                status = "wrong"
            statuses.append(status)
        # A run the sandbox itself failed (internal_error) says nothing about the rollout:
        # it counts neither for nor against it.
        total = sum(s != "internal_error" for s in statuses)
        passed = sum(s == "ok" for s in statuses)
        if spec.mode == "all_pass":
            reward = spec.scale if total and passed == total else 0.0
        else:
            reward = spec.scale * passed / total if total else 0.0
        return RolloutReward(reward, passed, total, tuple(statuses),
                             sum(s == "time_limit" for s in statuses), None, plan.code,
                             plan.language, tuple(plan.tests))

    def close(self) -> None:
        if self._own_pool:
            self.pool.close()

    def __enter__(self) -> RewardJudge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
