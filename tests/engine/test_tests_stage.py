"""The tests stage and engine/verify/test_synthesis.py: parsing LLM answers into inputs and
generator programs, running generators (and a validator) in the real sandbox, dedup, caps,
kinds, samples; then verify on top.

Run: .venv/bin/python -m pytest tests/engine/test_tests_stage.py -q

The LLM is the scripted OpenAI-compatible server (tests/openai_stub_server.py, real HTTP on
loopback), answering each prompt by what it asks for: canned direct inputs, a canned
generator program, a canned validator.
"""

from __future__ import annotations

import json

import pytest

from engine.paths import ASSETS_DIR
from engine.rundir import RunDir
from engine.runner import EXIT_OK, run_pipeline
from engine.schema import config_from_dict, dump_config
from engine.store import Store
from engine.verify.sandbox import Sandbox, SandboxUnavailable
from engine.verify.test_synthesis import (
    TestInput,
    input_key,
    parse_direct_inputs,
    parse_program,
    render_prompt,
    sample_tests,
    select_tests,
)

DIRECT = """Here are the inputs.

```input random
3
1 2 3
```

```input edge
1
-7
```

```input
5
3   1 4 1 5
```

```input edge
2
1
```
"""  # the third repeats the statement's sample (other spacing); the last is invalid (1 of 2)

GENERATOR = """```python
import random, sys

seed, kind = sys.stdin.readline().split()
random.seed(int(seed))
n = 200 if kind == "stress" else random.randint(1, 8)
print(n)
print(*[random.randint(-10**9, 10**9) for _ in range(n)])
```"""

VALIDATOR = """```python
import sys

tokens = sys.stdin.read().split()
n = int(tokens[0])
ok = 1 <= n <= 200000 and len(tokens) == n + 1
ok = ok and all(-10**9 <= int(t) <= 10**9 for t in tokens[1:])
sys.exit(0 if ok else 1)
```"""


def answer(body, attempt):
    from openai_stub_server import Reply

    prompt = body["messages"][-1]["content"]
    if "input generator program" in prompt:
        return Reply(text="A generator:\n\n" + GENERATOR)
    if "input validator" in prompt:
        return Reply(text=VALIDATOR)
    return Reply(text=DIRECT)


@pytest.fixture(scope="module")
def _sandbox():
    try:
        Sandbox()
    except SandboxUnavailable as exc:
        pytest.skip(f"the tests stage needs the sandbox (bubblewrap): {exc}")


def seed(name: str) -> dict:
    for line in (ASSETS_DIR / "seeds" / "seeds.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec["id"] == name:
            return rec
    raise KeyError(name)


def config(stub, **tests_cfg):
    return config_from_dict({
        "llms": {name: {"backend": "openai", "base_url": stub.url, "model": "stub-model",
                        "timeout_s": 10.0} for name in ("generator", "solver")},
        "tests": {"direct_inputs": 4, "generators": 2, "generator_kinds": ["random", "stress"],
                  "seeds_per_generator": 3, "use_validator": True,
                  "resources": {"cpus_per_task": 2}, **tests_cfg},
        "verify": {"jobs": 2, "min_labelled_tests": 2},
    })


def make_run(tmp_path, n_tasks: int = 1):
    run = RunDir(tmp_path / "run")
    run.create()
    rec = seed("alternating-tally")
    with Store(run.store_path) as store:
        ids = [store.add_task(style="codeforces", title=f"Alternating Tally {k}",
                              statement=rec["problem"], key=f"tally-{k}")
               for k in range(n_tasks)]
    return run, ids, rec


def run_stages(run, cfg, stages) -> int:
    return run_pipeline(cfg, dump_config(cfg), run, stages)


# ---------------------------------------------------------------------------------------------
# Parsing and selection (no sandbox, no LLM)


def test_direct_inputs_are_read_from_input_blocks_with_their_kind():
    found = parse_direct_inputs(DIRECT + "\n```python\nprint(1)\n```\n")
    assert found[0] == ("random", "3\n1 2 3\n")
    assert found[1] == ("edge", "1\n-7\n")
    assert found[2] == ("random", "5\n3   1 4 1 5\n")  # a bare ```input is random
    assert len(found) == 4  # the python block is not an input


def test_the_last_python_block_that_parses_is_the_program():
    text = "```python\nprint(1)\n```\nbetter:\n```python\nprint(2)\n```\n```python\ndef (:\n```"
    assert parse_program(text) == "print(2)\n"
    assert parse_program("no code here") is None
    assert parse_program("```text\nprint(1)\n```") is None


def test_statement_samples_become_sample_tests_with_known_outputs():
    [sample] = sample_tests(seed("alternating-tally")["problem"])
    assert sample.kind == "sample" and sample.input == "5\n3 1 4 1 5\n"
    assert sample.expected_output == "10\n" and sample.meta == {"from": "statement"}


def test_selection_dedups_by_tokens_drops_large_inputs_and_caps_keeping_every_kind():
    made = [TestInput("1 2\n", "sample", "direct", "3\n")]
    made += [TestInput(f"{k}\n", "random", "direct") for k in range(5)]
    made += [TestInput(f"{k} {k}\n", "stress", "generator") for k in range(5)]
    made += [TestInput("1  2\n", "edge", "direct"), TestInput("x" * 100 + "\n", "edge", "direct")]
    picked = select_tests(made, cap=5, max_bytes=50, seen=[input_key("4\n")])
    assert picked.duplicates == 2 and picked.too_large == 1  # "1  2" and the seen "4"
    assert [t.kind for t in picked.kept] == ["sample", "random", "stress", "random", "stress"]
    assert picked.over_cap == 5  # 10 distinct inputs, 5 kept


def test_prompts_are_editable_files_with_the_statement_filled_in():
    text = render_prompt("tests_generator", statement="S {braces} $x", kind="edge",
                         kind_description="boundaries")
    assert "S {braces} $x" in text and "**edge** (boundaries)" in text
    assert "{{" not in text


# ---------------------------------------------------------------------------------------------
# The stage, against the stub server and the real sandbox


def test_stage_writes_samples_direct_and_generated_inputs_deduped_validated_and_tagged(
        tmp_path, openai_stub, _sandbox):
    openai_stub.rule = answer
    run, [tid], rec = make_run(tmp_path)
    assert run_stages(run, config(openai_stub), ["tests"]) == EXIT_OK
    with Store(run.store_path) as store:
        task = store.get_task(tid)
    by_kind: dict[str, list] = {}
    for t in task.tests:
        by_kind.setdefault(t.kind, []).append(t)
    [sample] = by_kind["sample"]
    assert sample.input == "5\n3 1 4 1 5\n" and sample.expected_output == "10\n"
    # direct: "3 / 1 2 3" (random) and "1 / -7" (edge); the sample's twin deduped, the
    # invalid "2 / 1" dropped by the validator
    assert sorted(t.input for t in by_kind["edge"]) == ["1\n-7\n"]
    assert {t.source for t in by_kind["stress"]} == {"generator"}
    gen_random = [t for t in by_kind["random"] if t.source == "generator"]
    assert len(by_kind["stress"]) == 3 and {t.meta["seed"] for t in by_kind["stress"]} == {1, 2, 3}
    assert 1 <= len(gen_random) <= 3  # small random sizes may repeat
    assert [t for t in by_kind["random"] if t.source == "direct"][0].input == "3\n1 2 3\n"
    assert len({input_key(t.input) for t in task.tests}) == len(task.tests)
    assert [t.idx for t in task.tests] == list(range(len(task.tests)))
    assert all(t.expected_output is None for t in task.tests if t.kind != "sample")
    summary = run.read_state().stage("tests").summary
    assert (summary["tasks_with_tests"], summary["tests"]) == (1, len(task.tests))
    attempt = summary["this_attempt"]
    assert attempt["invalid"] == 1 and attempt["duplicates"] >= 1
    assert attempt["generator_runs"] == 6 and attempt["generator_ok"] == 6
    kinds = [r.body["messages"][-1]["content"] for r in openai_stub.chat_requests()]
    assert sum("input generator program" in k for k in kinds) == 2
    assert sum("**stress**" in k for k in kinds) == 1


def test_cap_per_task_keeps_the_sample_first_and_mixes_kinds(tmp_path, openai_stub, _sandbox):
    openai_stub.rule = answer
    run, [tid], _ = make_run(tmp_path)
    assert run_stages(run, config(openai_stub, max_tests_per_task=5), ["tests"]) == EXIT_OK
    with Store(run.store_path) as store:
        task = store.get_task(tid)
    assert len(task.tests) == 5
    assert task.tests[0].kind == "sample"
    # one of each group in turn: direct random, direct edge, generator random, stress
    assert [(t.source, t.kind) for t in task.tests[1:]] == [
        ("direct", "random"), ("direct", "edge"), ("generator", "random"),
        ("generator", "stress")]


def test_rerun_skips_tasks_that_have_tests_and_makes_no_llm_call(tmp_path, openai_stub,
                                                                 _sandbox):
    openai_stub.rule = answer
    run, ids, _ = make_run(tmp_path, n_tasks=2)
    cfg = config(openai_stub)
    assert run_stages(run, cfg, ["tests"]) == EXIT_OK
    with Store(run.store_path) as store:
        before = store.counts()["tests"]
    asked = len(openai_stub.chat_requests())
    run.state_path.unlink()  # as if the stage had been killed before recording completion
    assert run_stages(run, cfg, ["tests"]) == EXIT_OK
    assert run.read_state().stage("tests").summary["considered"] == 0
    assert len(openai_stub.chat_requests()) == asked
    with Store(run.store_path) as store:
        assert store.counts()["tests"] == before


def test_generated_tests_then_verify_label_them_with_the_correct_solutions_outputs(
        tmp_path, openai_stub, _sandbox):
    openai_stub.rule = answer
    run, [tid], rec = make_run(tmp_path)
    with Store(run.store_path) as store:
        for k in range(3):
            store.add_solution(tid, k, code=rec["solution"])
        store.add_solution(tid, 3, code="print(0)\n")
    assert run_stages(run, config(openai_stub), ["tests", "verify"]) == EXIT_OK
    with Store(run.store_path) as store:
        task = store.get_task(tid)
    assert task.status == "accepted", task.reject_reason
    assert task.golden_solution_id in {s.id for s in task.solutions[:3]}
    assert task.tests[0].meta["verify"]["label_source"] == "known"
    for t in task.tests:
        numbers = list(map(int, t.input.split()))[1:]
        assert t.expected_output == str(sum(v if i % 2 == 0 else -v
                                            for i, v in enumerate(numbers)))


def test_sigterm_finishes_the_current_batch_and_a_rerun_does_the_rest(
        tmp_path, openai_stub, _sandbox, monkeypatch):
    import os
    import signal

    from engine.runner import EXIT_INTERRUPTED
    from engine.stages import tests as tests_stage

    openai_stub.rule = answer
    run, ids, _ = make_run(tmp_path, n_tasks=2)
    monkeypatch.setattr(tests_stage, "BATCH", 1)
    real = tests_stage._write

    def write_then_sigterm(*args, **kwargs):
        real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # the runner's handler sets the stop flag

    monkeypatch.setattr(tests_stage, "_write", write_then_sigterm)
    cfg = config(openai_stub)
    assert run_stages(run, cfg, ["tests"]) == EXIT_INTERRUPTED
    with Store(run.store_path) as store:
        assert [bool(store.get_task(t).tests) for t in ids] == [True, False]
    monkeypatch.setattr(tests_stage, "_write", real)
    assert run_stages(run, cfg, ["tests"]) == EXIT_OK
    assert run.read_state().stage("tests").summary["considered"] == 1
    # A clean interrupt is no crash: the rerun's log says so (it said "attempt 1 by pid None
    # did not finish").
    log = run.log_file("tests", 0).read_text()
    assert "resuming tests after attempt 1 was interrupted" in log
    assert "did not finish" not in log
    with Store(run.store_path) as store:
        assert all(store.get_task(t).tests for t in ids)


def test_shards_write_their_own_files_and_the_last_one_merges_what_an_unsharded_run_writes(
        tmp_path, openai_stub, _sandbox):
    from engine.store import ShardOutbox, shard_file

    openai_stub.rule = answer
    cfg = config(openai_stub)
    ref, ref_ids, _ = make_run(tmp_path / "unsharded", n_tasks=2)
    assert run_stages(ref, cfg, ["tests"]) == EXIT_OK
    run, ids, _ = make_run(tmp_path, n_tasks=2)
    first = ids[1] % 2  # the shard of the second task runs first
    assert run_pipeline(cfg, dump_config(cfg), run, ["tests"], shard_index=first,
                        shard_count=2) == EXIT_OK
    with Store(run.store_path) as store:
        assert store.counts()["tests"] == 0  # a shard writes only its own file
    with ShardOutbox(shard_file(run.data_dir, "tests", first, 2)) as out:
        assert out.tasks_with_tests() == {ids[1]}
    # a rerun of that shard finds its task done in its file
    run.state_path.unlink()
    assert run_pipeline(cfg, dump_config(cfg), run, ["tests"], shard_index=first,
                        shard_count=2) == EXIT_OK
    assert run.read_state().stage(f"tests@{first}of2").summary["considered"] == 0
    assert run_pipeline(cfg, dump_config(cfg), run, ["tests"], shard_index=1 - first,
                        shard_count=2) == EXIT_OK
    assert run.read_state().stage("tests").status == "completed"

    def tests_of(r, task_ids):
        with Store(r.store_path) as store:
            return [[(t.idx, t.kind, t.source, t.input, t.expected_output)
                     for t in store.get_task(tid).tests] for tid in task_ids]

    assert tests_of(run, ids) == tests_of(ref, ref_ids)
    assert all(tests_of(run, ids))
