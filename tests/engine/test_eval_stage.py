"""The eval stage: the LiveCodeBench loader, the sandbox judge, avg@k, and the stage end to end.

Run: .venv/bin/python -m pytest tests/engine/test_eval_stage.py -q

The judge tests and the stage runs use the real sandbox and skip, saying why, where it cannot
start. The stage runs twice: with the transformers backend's ``tiny-random`` model (noise:
avg@k 0, but every file and event is written) and with the scripted OpenAI server answering
correct programs for assets/eval/smoke.jsonl through ``eval.model: generator`` (avg@k 1).
"""

from __future__ import annotations

import base64
import csv
import json
import pickle
import zlib

import pytest
from openai_stub_server import Reply

from engine.eval import (
    ProblemFormatError,
    avg_at_k,
    judge_sample,
    load_problems,
    outputs_equal,
    pass_at_1,
    release_files,
    results_equal,
)
from engine.events import EventReader
from engine.paths import resolve_data_path
from engine.rundir import RunDir
from engine.runner import EXIT_OK, EXIT_STAGE_FAILED, run_pipeline
from engine.schema import config_from_dict, dump_config
from engine.stages.eval import eval_messages, read_results, sample_code
from engine.verify.sandbox import Limits, SandboxPool, SandboxUnavailable

SMOKE = resolve_data_path("assets://eval/smoke.jsonl")

STDIN_TESTS = [{"input": "1 2\n", "output": "3\n", "testtype": "stdin"},
               {"input": "10 -4\n", "output": "6", "testtype": "stdin"}]
FN_TESTS = [{"input": "[1, 2, 3]\n2", "output": "[2, 4, 6]", "testtype": "functional"},
            {"input": "[]\n5", "output": "[]", "testtype": "functional"}]


def compress(value: object) -> str:
    return base64.b64encode(zlib.compress(pickle.dumps(value))).decode()


def row(**over: object) -> dict:
    base = {"question_title": "Add", "question_content": "Add two numbers.",
            "question_id": "q1", "platform": "atcoder", "difficulty": "easy",
            "starter_code": "", "public_test_cases": json.dumps(STDIN_TESTS[:1]),
            "private_test_cases": json.dumps(STDIN_TESTS[1:]), "metadata": "{}",
            "contest_id": "c", "contest_date": "2025-01-01T00:00:00"}
    return {**base, **over}


def write(tmp_path, *rows: dict, name: str = "p.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# --- the loader


def test_loads_plain_and_compressed_private_tests(tmp_path):
    plain = row()
    packed = row(question_id="q2", private_test_cases=compress(json.dumps(STDIN_TESTS[1:])))
    fn = row(question_id="q3", platform="leetcode", public_test_cases=json.dumps(FN_TESTS),
             private_test_cases=compress(json.dumps([])), metadata='{"fn_name": "double"}')
    a, b, c = load_problems(write(tmp_path, plain, packed, fn))
    assert a.private_tests == b.private_tests and a.private_tests[0].output == "6"
    assert not a.functional and c.fn_name == "double" and len(c.tests) == 2
    assert load_problems(write(tmp_path, plain, packed), max_problems=1)[0].question_id == "q1"


def test_smoke_file_is_livecodebench_format():
    problems = load_problems(SMOKE)
    assert len(problems) == 4
    assert sum(p.functional for p in problems) == 2
    raw = [json.loads(line) for line in SMOKE.read_text().splitlines()]
    assert any(not r["private_test_cases"].startswith("[") for r in raw)  # one compressed
    assert all(isinstance(r["public_test_cases"], str) and isinstance(r["metadata"], str)
               for r in raw)


class Boom:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.parametrize("payload", [
    pickle.dumps(Boom()),
    pickle.dumps([{"input": "1", "output": "1", "testtype": "stdin", "x": {1, 2}}]),
    pickle.dumps(("tuple", "of", "str")),
    b"cos\nsystem\n(S'echo pwned'\ntR.",  # protocol 0 GLOBAL + REDUCE
])
def test_a_pickle_that_is_not_plain_data_is_refused(tmp_path, capsys, payload):
    text = base64.b64encode(zlib.compress(payload)).decode()
    with pytest.raises(ProblemFormatError, match=r"p\.jsonl:1: private_test_cases: .*pickle"):
        load_problems(write(tmp_path, row(private_test_cases=text)))
    assert "pwned" not in capsys.readouterr().out


@pytest.mark.parametrize(("change", "message"), [
    ({"question_id": ""}, "question_id: must be a non-empty string"),
    ({"public_test_cases": "[{"}, "public_test_cases: is not valid JSON"),
    ({"public_test_cases": json.dumps([{"input": "1"}])},
     "public_test_cases: test 0 lacks output, testtype"),
    ({"public_test_cases": json.dumps([{"input": "1", "output": 2, "testtype": "stdin"}])},
     "output must be a string"),
    ({"private_test_cases": "not base64 !!"}, "private_test_cases: is neither a JSON list"),
    ({"private_test_cases": base64.b64encode(b"xx").decode()}, "not zlib data"),
    ({"metadata": "[1]"}, "metadata: must hold a JSON object"),
    ({"metadata": '{"func_name": "1x"}'}, "not a Python identifier"),
    ({"metadata": '{"func_name": "f"}'}, "a stdin test, but metadata names the function 'f'"),
    ({"public_test_cases": "[]", "private_test_cases": "[]"}, "has no tests at all"),
])
def test_bad_rows_say_line_and_field(tmp_path, change, message):
    path = write(tmp_path, row(question_id="ok"), row(**change))
    with pytest.raises(ProblemFormatError) as err:
        load_problems(path)
    assert str(err.value).startswith("p.jsonl:2: ") and message in str(err.value)


def test_missing_field_duplicate_id_and_bad_json(tmp_path):
    r = row()
    del r["metadata"]
    with pytest.raises(ProblemFormatError, match=r"p\.jsonl:1: metadata: missing"):
        load_problems(write(tmp_path, r))
    with pytest.raises(ProblemFormatError, match=r":2: question_id 'q1' is also at p.jsonl:1"):
        load_problems(write(tmp_path, row(), row()))
    (tmp_path / "bad.jsonl").write_text('{"a": 1\n')
    with pytest.raises(ProblemFormatError, match=r"bad\.jsonl:1: not a JSON object"):
        load_problems(tmp_path / "bad.jsonl")
    with pytest.raises(ProblemFormatError, match="no such problems file"):
        load_problems(tmp_path / "absent.jsonl")


def test_parquet_file_loads_like_jsonl_and_jsonl_that_is_not_text_says_so(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [row(), row(question_id="q2", private_test_cases=compress(json.dumps(STDIN_TESTS)))]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "p.parquet")
    got = load_problems(tmp_path / "p.parquet")
    assert got == load_problems(write(tmp_path, *rows))
    (tmp_path / "bin.jsonl").write_bytes((tmp_path / "p.parquet").read_bytes())
    with pytest.raises(ProblemFormatError, match="bin.jsonl: is not UTF-8 JSON lines; if it is a "
                       "Parquet file .* name it \\*.parquet"):
        load_problems(tmp_path / "bin.jsonl")
    pq.write_table(pa.Table.from_pylist([row(metadata="[1]")]), tmp_path / "bad.parquet")
    with pytest.raises(ProblemFormatError, match="bad.parquet:row 1: metadata"):
        load_problems(tmp_path / "bad.parquet")


def test_releases_are_livecodebench_cumulative_file_sets():
    assert release_files("release_v1") == ["test.jsonl"]
    assert release_files("release_v3") == ["test.jsonl", "test2.jsonl", "test3.jsonl"]
    assert release_files("release_latest") == release_files("release_v6")
    assert len(release_files("release_v6")) == 6
    assert release_files("v1") == ["test.jsonl"] and release_files("v5") == ["test5.jsonl"]
    assert release_files("v4_v6") == ["test4.jsonl", "test5.jsonl", "test6.jsonl"]
    for bad in ("release_v7", "v6_v4", "latest"):
        with pytest.raises(ValueError):
            release_files(bad)


def test_release_folder_and_contest_date_window(tmp_path):
    dates = {"test.jsonl": "2023-06-01T00:00:00", "test2.jsonl": "2024-05-01T12:00:00",
             "test3.jsonl": "2024-07-15T00:00:00"}
    for i, (name, date) in enumerate(dates.items()):
        write(tmp_path, row(question_id=f"q{i}", contest_date=date), name=name)
    ids = lambda ps: [p.question_id for p in ps]  # noqa: E731
    assert ids(load_problems(tmp_path, release="release_v2")) == ["q0", "q1"]
    assert ids(load_problems(tmp_path, release="release_v3")) == ["q0", "q1", "q2"]
    assert ids(load_problems(tmp_path, release="v2_v3")) == ["q1", "q2"]
    # LiveCodeBench's window: start <= date <= end, the end day meaning its midnight
    assert ids(load_problems(tmp_path, release="release_v3", start_date="2024-05-01")) == [
        "q1", "q2"]
    assert ids(load_problems(tmp_path, release="release_v3", end_date="2024-05-01")) == ["q0"]
    assert ids(load_problems(tmp_path, release="release_v3", start_date="2024-05-02",
                             end_date="2024-07-15")) == ["q2"]
    with pytest.raises(ProblemFormatError, match="release release_v4 needs test4.jsonl"):
        load_problems(tmp_path, release="release_v4")
    with pytest.raises(ProblemFormatError, match="is a folder; set a release"):
        load_problems(tmp_path)
    with pytest.raises(ProblemFormatError, match="a release chooses files in a folder"):
        load_problems(tmp_path / "test.jsonl", release="release_v1")
    with pytest.raises(ProblemFormatError, match="no problems between 2026-01-01 and the end"):
        load_problems(tmp_path / "test.jsonl", start_date="2026-01-01")
    write(tmp_path, {k: v for k, v in row().items() if k != "contest_date"}, name="nodate.jsonl")
    with pytest.raises(ProblemFormatError, match="nodate.jsonl:1: contest_date: missing, but a "
                       "date window is set"):
        load_problems(tmp_path / "nodate.jsonl", end_date="2025-01-01")


def test_eval_config_checks_release_and_dates():
    cfg = config_from_dict({"eval": {"release": "release_v6", "start_date": "2024-08-01",
                                     "end_date": "2025-05-01"}}).eval
    assert (cfg.release, cfg.start_date, cfg.time_limit_s) == ("release_v6", "2024-08-01", 6.0)
    for bad, words in (({"release": "release_v9"}, "eval.release"),
                       ({"release": "v5_v2"}, "write v2_v5"),
                       ({"start_date": "2024-02-30"}, "not a calendar date"),
                       ({"start_date": "2025-01-01", "end_date": "2024-01-01"},
                        "before start_date")):
        with pytest.raises(Exception, match=words):
            config_from_dict({"eval": bad})


# --- comparison and arithmetic


def test_output_comparisons():
    assert outputs_equal("3  \n\n", "3") and outputs_equal("1.0 2\n", "1 2.00")
    assert not outputs_equal("3", "4") and not outputs_equal("a b", "a  c")
    assert outputs_equal("5e-1\n", "0.50") and not outputs_equal("0.3333", "0.33333")
    assert not outputs_equal("1\n\n2", "1\n2")  # inner blank lines count, as in LiveCodeBench
    assert results_equal((1, 2), [1, 2]) and results_equal(2.0, 2)
    assert not results_equal([(1, 2)], [[1, 2]]) and not results_equal({1, 2}, [1, 2])


def test_avg_at_k_is_the_mean_of_per_problem_pass_at_1():
    scores = [pass_at_1([True, False]), pass_at_1([True, True]), pass_at_1([False, False])]
    assert scores == [0.5, 1.0, 0.0]
    assert avg_at_k(scores) == pytest.approx(0.5)
    assert avg_at_k([]) == 0.0
    with pytest.raises(ValueError):
        pass_at_1([])


def test_sample_code_takes_a_definitions_only_block_for_functional_problems():
    answer = "Here:\n```python\nclass Solution:\n    def f(self):\n        return 1\n```\n"
    assert sample_code(answer, functional=False) is None
    assert "class Solution" in sample_code(answer, functional=True)
    assert sample_code("no code here", functional=True) is None
    text = eval_messages(load_problems(SMOKE)[2])[0]["content"]
    assert "class Solution:" in text and "countPairs" in text and "reads no input" in text


# --- the judge, in the sandbox


@pytest.fixture(scope="module")
def pool():
    try:
        p = SandboxPool(workers=2)
    except SandboxUnavailable as exc:
        pytest.skip(f"the eval judge runs code only in the sandbox (bubblewrap): {exc}")
    with p:
        yield p


LIMITS = Limits(cpu_s=1.0, memory_mb=256)


def problems(tmp_path):
    stdin = row()
    fn = row(question_id="f", platform="leetcode", public_test_cases=json.dumps(FN_TESTS[:1]),
             private_test_cases=compress(json.dumps(FN_TESTS[1:])),
             metadata='{"func_name": "double"}')
    return load_problems(write(tmp_path, stdin, fn))


SLOW = "while True:\n    pass\n"


def test_judge_stdin_problem(pool, tmp_path):
    stdin, _ = problems(tmp_path)
    ok = judge_sample(pool, stdin, "a, b = map(int, input().split())\nprint(a + b)\n", LIMITS)
    assert ok.passed and ok.status == "ok" and ok.tests_run == 2
    wrong = judge_sample(pool, stdin, "a, b = map(int, input().split())\nprint(3)\n", LIMITS)
    # passes the public test, fails the private one: a sample needs ALL tests
    assert not wrong.passed and wrong.status == "wrong" and wrong.tests_run == 2
    assert judge_sample(pool, stdin, None, LIMITS).status == "no_code"
    slow = judge_sample(pool, stdin, SLOW, LIMITS)
    assert slow.status == "time_limit" and slow.tests_run == 1  # stops at the first failure
    assert judge_sample(pool, stdin, "raise ValueError\n", LIMITS).status == "runtime_error"


def test_judge_functional_problem(pool, tmp_path):
    _, fn = problems(tmp_path)
    leetcode = ("class Solution:\n    def double(self, nums: List[int], k: int) -> List[int]:\n"
                "        print('debug output goes to stderr')\n"
                "        return tuple(x * k for x in nums)\n")
    assert judge_sample(pool, fn, leetcode, LIMITS).passed
    top_level = "def double(nums, k):\n    return [x * k for x in nums]\n"
    assert judge_sample(pool, fn, top_level, LIMITS).passed
    wrong = "def double(nums, k):\n    return nums\n"
    assert judge_sample(pool, fn, wrong, LIMITS).status == "wrong"
    absent = "def triple(nums, k):\n    return nums\n"
    assert judge_sample(pool, fn, absent, LIMITS).status == "runtime_error"
    slow = f"def double(nums, k):\n    {SLOW.replace(chr(10), chr(10) + '    ')}"
    assert judge_sample(pool, fn, slow, LIMITS).status == "time_limit"
    reads_stdin = "import sys\nsys.stdin.read()\ndef double(nums, k):\n    return [2 * x for x in nums]\n"
    assert judge_sample(pool, fn, reads_stdin, LIMITS).passed
    assert judge_sample(pool, fn, None, LIMITS).status == "no_code"


# --- the stage end to end


CORRECT = {
    "Sum of Even Numbers": "n = int(input())\nprint(sum(x for x in map(int, input().split()) "
                           "if x % 2 == 0))\n",
    "Longest Run": "s = input().strip()\nbest = cur = 1\nfor i in range(1, len(s)):\n"
                   "    cur = cur + 1 if s[i] == s[i - 1] else 1\n    best = max(best, cur)\n"
                   "print(best)\n",
    "Count Target Pairs": "class Solution:\n    def countPairs(self, nums: List[int], target: "
                          "int) -> int:\n        return sum(1 for i in range(len(nums)) for j in "
                          "range(i + 1, len(nums)) if nums[i] + nums[j] == target)\n",
    "Split by Parity": "class Solution:\n    def splitParity(self, nums):\n"
                       "        return [[x for x in nums if x % 2 == 0], "
                       "[x for x in nums if x % 2]]\n",
}


def eval_config(stub=None, **over):
    base = {"enabled": True, "problems": "assets://eval/smoke.jsonl", "model": "tiny-random",
            "engine": "transformers", "k": 2, "max_tokens": 16, "time_limit_s": 2.0,
            "resources": {"gpus_per_node": 0, "cpus_per_task": 2}}
    data = {"run": {"seed": 3}, "eval": {**base, **over}}
    if stub is not None:
        data["llms"] = {name: {"backend": "openai", "base_url": stub.url, "model": "stub-model",
                               "timeout_s": 10.0, "max_retries": 1}
                        for name in ("generator", "solver")}
    return config_from_dict(data)


def run_eval(run, cfg) -> int:
    return run_pipeline(cfg, dump_config(cfg), run, ["eval"], allow_config_change=True)


def stage_events(run):
    return EventReader(run.events_dir / "eval.0.jsonl").read_new()


def need_sandbox():
    try:
        SandboxPool(workers=1).close()
    except SandboxUnavailable as exc:
        pytest.skip(f"the eval stage runs code only in the sandbox (bubblewrap): {exc}")


def test_stage_with_tiny_random_writes_everything(tmp_path):
    pytest.importorskip("torch")  # the tiny random model runs on transformers
    need_sandbox()
    run = RunDir(tmp_path / "run")
    assert run_eval(run, eval_config()) == EXIT_OK
    out = run.exports_dir / "eval"
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["question_id"] for r in rows] == [p.question_id for p in load_problems(SMOKE)]
    assert all(len(r["passes"]) == 2 and r["pass_at_1"] == 0.0 for r in rows)  # noise
    table = list(csv.DictReader((out / "summary.csv").open()))
    assert table[0] == {"scope": "all", "name": "all", "problems": "4", "samples": "8",
                        "avg_at_k": "0.0"}
    assert {(t["scope"], t["name"]) for t in table} >= {("difficulty", "easy"),
                                                        ("platform", "leetcode")}
    evs = stage_events(run)
    metric: dict = {}
    for e in evs:
        if e.kind == "metric":
            metric.update(e.data)
    assert metric["eval/avg_at_k"] == 0.0 and metric["eval/problems_done"] == 4.0
    assert metric["eval/no_code_rate"] == 1.0 and "eval/pass_at_1/medium" in metric
    assert {e.data.name for e in evs if e.kind == "artifact"} == {
        "eval/results", "eval/summary", "eval/lcb_custom"}
    assert any(e.kind == "progress" and e.data.done == 4 for e in evs)


def test_stage_with_scripted_server_scores_and_resumes(openai_stub, tmp_path):
    need_sandbox()

    def rule(body, attempt):
        prompt = body["messages"][-1]["content"]
        for title, code in CORRECT.items():
            if f"Problem: {title}" in prompt:
                # sample 1 of "Longest Run" is wrong: pass@1 0.5 there
                if title == "Longest Run" and body.get("seed") == 4:
                    code = "print(1)\n"
                return Reply(text=f"Thinking done.\n\n```python\n{code}```\n")
        return None

    openai_stub.rule = rule
    run = RunDir(tmp_path / "run")
    cfg = eval_config(openai_stub, model="generator")
    assert run_eval(run, cfg) == EXIT_OK
    rows = {json.loads(x)["question_id"]: json.loads(x)
            for x in (run.exports_dir / "eval" / "results.jsonl").read_text().splitlines()}
    assert rows["smoke_longest_run"]["passes"] == [True, False]
    assert rows["smoke_longest_run"]["code"] == [CORRECT["Longest Run"], "print(1)\n"]
    custom = json.loads((run.exports_dir / "eval" / "lcb_custom.json").read_text())
    assert [c["question_id"] for c in custom] == list(rows)  # LiveCodeBench's input shape
    assert custom[1] == {"question_id": "smoke_longest_run",
                         "code_list": [CORRECT["Longest Run"], "print(1)\n"]}
    assert all(r["pass_at_1"] == 1.0 for q, r in rows.items() if q != "smoke_longest_run")
    state = json.loads((run.root / "state.json").read_text())
    summary = state["stages"]["eval"]["summary"]
    assert summary["avg_at_k"] == pytest.approx(3.5 / 4)
    assert summary["by_difficulty"]["medium"] == 0.5
    samples = [e for e in stage_events(run) if e.kind == "sample"]
    assert samples and samples[0].data.payload["passed"] is True

    # Resume: drop the last problem's row and mark the stage pending again; only that
    # problem is judged again, and its answers come from the cache (no new requests).
    path = run.exports_dir / "eval" / "results.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n{\"torn")
    run.update_stage("eval", status="pending")
    sent = len(openai_stub.chat_requests())
    assert run_eval(run, cfg) == EXIT_OK
    assert len(openai_stub.chat_requests()) == sent
    assert path.read_text().splitlines() == lines

    # Rows from before code was kept are still read back (and give "" in lcb_custom.json).
    legacy = [{k: v for k, v in json.loads(x).items() if k != "code"} for x in lines]
    path.write_text("".join(json.dumps(r) + "\n" for r in legacy))
    assert set(read_results(path, 2, "generator")) == set(rows)
    run.update_stage("eval", status="pending")
    assert run_eval(run, cfg) == EXIT_OK
    assert len(openai_stub.chat_requests()) == sent
    custom = json.loads((run.exports_dir / "eval" / "lcb_custom.json").read_text())
    assert custom[0]["code_list"] == ["", ""]


def test_stage_fails_clearly_without_checkpoint_or_with_bad_file(tmp_path):
    run = RunDir(tmp_path / "run")
    assert run_eval(run, eval_config(model="rl")) == EXIT_STAGE_FAILED
    assert "no rl checkpoint at" in (run.events_dir / "eval.0.jsonl").read_text()
    bad = write(tmp_path, row(metadata="[1]"))
    run2 = RunDir(tmp_path / "run2")
    assert run_eval(run2, eval_config(problems=str(bad))) == EXIT_STAGE_FAILED
    text = (run2.events_dir / "eval.0.jsonl").read_text()
    assert "p.jsonl:1: metadata" in text
