"""Our eval judge gives LiveCodeBench's verdict on every answer of fixtures/lcb_verdicts.json.

Run: .venv/bin/python -m pytest tests/engine/test_eval_lcb_parity.py -q

The fixture holds LiveCodeBench-format rows, hand-written answers (tricky-but-correct and
wrong) and the verdicts LiveCodeBench's own grader gave them, recorded by
fixtures/record_lcb_verdicts.py (commit and date inside). When ``lcb_runner`` is importable
the grader also runs live on the same rows; otherwise that test skips, saying so.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from engine.eval import judge_sample, parse_problem
from engine.eval.judge import PRELUDE
from engine.verify.sandbox import Limits, SandboxPool, SandboxUnavailable

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "lcb_verdicts.json").read_text())
ANSWERS = FIXTURE["answers"]
PROBLEMS = {r["question_id"]: parse_problem(r) for r in FIXTURE["problems"]}
ROWS = {r["question_id"]: r for r in FIXTURE["problems"]}


@pytest.fixture(scope="module")
def pool():
    try:
        p = SandboxPool(workers=2)
    except SandboxUnavailable as exc:
        pytest.skip(f"the eval judge runs code only in the sandbox (bubblewrap): {exc}")
    with p:
        yield p


def test_prelude_is_livecodebench_import_string():
    assert hashlib.sha256(PRELUDE.encode()).hexdigest() == FIXTURE["lcb_import_string_sha256"]


def test_fixture_has_both_verdicts_for_each_kind_of_problem():
    for kind in (True, False):
        verdicts = {a["lcb"]["passed"] for a in ANSWERS
                    if PROBLEMS[a["question_id"]].functional is kind}
        assert verdicts == {True, False}


@pytest.mark.parametrize("answer", ANSWERS, ids=[f"{a['question_id']}-{a['name']}"
                                                 for a in ANSWERS])
def test_judge_agrees_with_recorded_livecodebench_verdict(pool, answer):
    limits = Limits(cpu_s=float(FIXTURE["timeout_s"]), memory_mb=1024)
    verdict = judge_sample(pool, PROBLEMS[answer["question_id"]], answer["code"], limits)
    assert verdict.passed is answer["lcb"]["passed"], (verdict, answer["lcb"])
    if answer["lcb"]["error_message"] == "Time Limit Exceeded":
        assert verdict.status == "time_limit"


def test_livecodebench_grader_live_agrees_with_the_recording():
    evaluation = pytest.importorskip(
        "lcb_runner.evaluation.compute_code_generation_metrics",
        reason="LiveCodeBench (lcb_runner) is not importable; the recorded verdicts stand in")
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
    from lcb_cases import evaluation_sample

    for answer in ANSWERS:
        res, _ = evaluation.evaluate_generations_by_problem(
            [[answer["code"]], evaluation_sample(ROWS[answer["question_id"]]), False,
             FIXTURE["timeout_s"]])
        passed = bool(res[0]) and all(r is True for r in res[0])
        assert passed is answer["lcb"]["passed"], answer["name"]
