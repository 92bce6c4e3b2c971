"""The RL reward on the real sandbox: correct, wrong, no-code and timing-out programs, both
reward modes, deterministic test sampling.

Run: .venv/bin/python -m pytest tests/engine/train/test_reward.py -q
Skips when no sandbox (bubblewrap) can start here: rewards never run code outside it.
"""

from __future__ import annotations

import json
import time

import pytest

from engine.train.reward import (
    RewardJudge,
    RewardSpec,
    Rollout,
    parse_ground_truth,
    sample_tests,
)
from engine.verify.sandbox import Sandbox, SandboxPool, SandboxUnavailable

INPUTS = ["1 2\n", "3 4\n", "10 -5\n", "0 0\n"]
OUTPUTS = ["3\n", "7\n", "5", "0  \n"]  # trailing spaces / no newline: compared after strip
RIGHT = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
# Right on the first two tests only.
HALF = "```python\na, b = map(int, input().split())\nprint(a + b if a < 5 and a > 0 else 99)\n```"
WRONG = "```python\nprint(42)\n```"
LOOP = "```python\nwhile True:\n    pass\n```"
CPP = ("```cpp\n#include <iostream>\nint main(){long a,b;std::cin>>a>>b;"
       "std::cout<<a+b<<std::endl;}\n```")


@pytest.fixture(scope="module")
def pool():
    try:
        p = SandboxPool(2)
    except SandboxUnavailable as exc:
        pytest.skip(f"the RL reward needs the sandbox (bubblewrap): {exc}")
    yield p
    p.close()


def rollout(text: str, sample: int = 0) -> Rollout:
    return Rollout(task_id=1, text=text, inputs=INPUTS, outputs=OUTPUTS, step=0, sample=sample)


def test_fraction_mode_scores_right_wrong_no_code_and_timeout(pool):
    spec = RewardSpec(mode="fraction", tests_per_call=4, scale=5.0, no_code_reward=-2.0,
                      time_limit_s=0.5)
    judge = RewardJudge(spec, pool)
    t0 = time.perf_counter()
    right, half, wrong, none, loop = judge.score(
        [rollout(RIGHT), rollout(HALF), rollout(WRONG), rollout("I think the answer is 3."),
         rollout(LOOP)])
    elapsed = time.perf_counter() - t0
    assert (right.reward, right.passed, right.total) == (5.0, 4, 4)
    assert right.statuses == ("ok",) * 4 and right.has_code and right.all_passed
    assert (half.reward, half.passed) == (2.5, 2)
    assert half.statuses == ("ok", "ok", "wrong", "wrong")
    assert (wrong.reward, wrong.passed, wrong.total) == (0.0, 0, 4)
    assert none.reward == -2.0 and none.total == 0 and none.reason == "no_code_block"
    assert loop.reward == 0.0 and loop.timeouts == 4
    assert set(loop.statuses) == {"time_limit"}
    # 4 loops x (0.5 s cpu) on 2 workers: parallel runs finish in about half the serial time.
    assert elapsed < 4 * 0.5 * 2 + 3


def test_all_pass_mode_gives_scale_only_when_every_test_passes(pool):
    spec = RewardSpec(mode="all_pass", tests_per_call=4, scale=1.0, time_limit_s=2.0)
    right, half, none = RewardJudge(spec, pool).score(
        [rollout(RIGHT), rollout(HALF), rollout("```python\n```")])
    assert right.reward == 1.0
    assert half.reward == 0.0 and half.passed == 2
    assert none.reward == spec.no_code_reward and none.reason is not None


def test_cpp_answer_is_judged_as_cpp(pool):
    (r,) = RewardJudge(RewardSpec(tests_per_call=2, time_limit_s=5.0), pool).score(
        [rollout(CPP)])
    assert r.language == "cpp" and r.total == 2 and r.passed == 2, r


def test_tests_sampled_deterministically_per_task_step_sample(pool):
    a = sample_tests(100, 5, seed=1, task_id=3, step=2, sample=0)
    assert a == sample_tests(100, 5, seed=1, task_id=3, step=2, sample=0)
    assert len(set(a)) == 5 and a == sorted(a)
    others = {tuple(sample_tests(100, 5, seed=1, task_id=3, step=s, sample=k))
              for s in range(3) for k in range(3)}
    assert len(others) > 1
    assert sample_tests(3, 10, seed=0, task_id=0, step=0, sample=0) == [0, 1, 2]
    judge = RewardJudge(RewardSpec(tests_per_call=2, time_limit_s=2.0), pool)
    (r,) = judge.score([rollout(RIGHT, sample=1)])
    assert r.total == 2 and r.tests == tuple(sample_tests(4, 2, seed=0, task_id=1, step=0,
                                                          sample=1))


def test_parse_ground_truth():
    assert parse_ground_truth(json.dumps({"inputs": ["1"], "outputs": ["2"]})) == (["1"], ["2"])
    with pytest.raises(ValueError):
        parse_ground_truth('{"inputs": ["1"], "outputs": []}')
    # Rows that are not ours (verl hands the reward any dataset's ground truth): a clear error.
    for bad in ("{not json", '"a string"', "[1, 2]", '{"inputs": "1", "outputs": "2"}'):
        with pytest.raises(ValueError, match=r'ground_truth .*\{"inputs": \[stdin'):
            parse_ground_truth(bad)


def test_a_run_the_sandbox_failed_counts_neither_for_nor_against_the_rollout(pool,
                                                                              monkeypatch):
    # The job for the third input reaches the worker malformed (no limits), so the real
    # worker fails around that run: internal_error, on that test only.
    real = Sandbox._job

    def job(self, program, stdin, *args, **kwargs):
        made = real(self, program, stdin, *args, **kwargs)
        if stdin == INPUTS[2] and isinstance(made, tuple):
            header, blobs, hit = made
            return {k: v for k, v in header.items() if k != "limits"}, blobs, hit
        return made

    monkeypatch.setattr(Sandbox, "_job", job)
    spec = RewardSpec(mode="fraction", tests_per_call=4, scale=5.0)
    (right,) = RewardJudge(spec, pool).score([rollout(RIGHT)])
    assert right.statuses == ("ok", "ok", "internal_error", "ok")
    assert (right.reward, right.passed, right.total) == (5.0, 3, 3)
