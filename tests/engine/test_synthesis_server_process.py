"""The synthesis stages against an OpenAI-compatible server in a process of its own, answering
the way a small real model and a real network did (issue #16).

Run: .venv/bin/python -m pytest tests/engine/test_synthesis_server_process.py -q

The server is tests/synth_responder.py started as a process (``spawn_synth``): the stub
server of tests/openai_stub_server.py with ``SynthResponder`` as its rule, faults switched on
from its command line. Each test reproduces one finding of the issue and checks the fix:

- JSON-looking lines in code blocks (``tree = {}``, ``people = []``, ``data[i]``) were taken
  for the answer: now the JSON outside the code is found, or the answer is a ``no_json``
  rejection after its retries;
- an empty evolve expansion was recorded "ok": now it is asked again, then rejected;
- dropped connections (and an endpoint that is down) in the tests stage left tasks with the
  statement's samples only, and the stage completed: now those tasks stay without tests, the
  stage fails naming how many, and a rerun asks exactly the calls that failed;
- a resumed stage's summary counted only its last attempt; a wrong URL (404) was logged as a
  crash with a traceback; ``llm/`` metrics had zero-rate twins at the same step.

Leaves out what a real model server adds beyond these (tests/real/ runs llama.cpp's server).
"""

from __future__ import annotations

import json
import random
import socket

import pytest
from synth_responder import BANK, render_statement, spawn_synth

from engine.events import EventReader
from engine.rundir import RunDir
from engine.runner import EXIT_OK, EXIT_STAGE_FAILED, run_pipeline
from engine.schema import config_from_dict, dump_config
from engine.store import Store

FRONT = ["seeds", "features", "evolve", "tasks"]


@pytest.fixture
def spawn():
    """``spawn(*args, port=0)``: a synth responder server process, stopped after the test."""
    procs = []

    def start(*args: str, port: int = 0):
        proc = spawn_synth(*args, port=port)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(url: str, **sections):
    base = {
        "run": {"seed": 7},
        # One retry, quickly: a dropped request is dropped again, so its item is deferred.
        "llms": {name: {"backend": "openai", "base_url": url, "model": "stub-model",
                        "timeout_s": 10.0, "max_retries": 1}
                 for name in ("generator", "solver")},
        "seeds": {"sources": [{"path": "assets://seeds/seeds.jsonl"}], "max_seeds": 6},
        "features": {"json_retries": 1},
        "evolve": {"steps": 2, "samples_per_step": 3, "json_retries": 1},
        "tasks": {"num_configs": 6, "shapes": [[2, 2, 1], [2, 2, 2]], "min_leaves": 3,
                  "json_retries": 1},
        "solutions": {"candidates_per_task": 3},
        "tests": {"direct_inputs": 2, "generators": 1, "generator_kinds": ["random"],
                  "seeds_per_generator": 2, "use_validator": True,
                  "resources": {"cpus_per_task": 2}},
    }
    for name, values in sections.items():
        base[name] = {**base[name], **values}
    return config_from_dict(base)


def new_run(tmp_path, name="run") -> RunDir:
    run = RunDir(tmp_path / name)
    run.create()
    return run


def run_stages(run, cfg, stages) -> int:
    return run_pipeline(cfg, dump_config(cfg), run, stages)


def asked(server, heading: str) -> list[dict]:
    """The chat requests the server got whose prompt starts with ``heading``."""
    return [r for r in server.chat_requests()
            if r["body"]["messages"][-1]["content"].startswith(heading)]


def rounds(run) -> list[dict]:
    """Every evolve outcome (one per sampled subtree) of every round in the store."""
    with Store(run.store_path) as store:
        rows = store._conn.execute("SELECT expansion FROM evolution_steps ORDER BY step")
        return [o for (expansion,) in rows for o in json.loads(expansion)]


def llm_metric_steps(run, stage) -> list[tuple[int, float]]:
    return [(e.step, e.data["llm/requests_per_s"])
            for e in EventReader(run.events_dir / f"{stage}.0.jsonl").read_new()
            if e.kind == "metric" and "llm/requests" in e.data]


# ---------------------------------------------------------------------------------------------
# Code is never the answer; an empty expansion is a rejection


def test_json_looking_lines_in_code_blocks_are_never_taken_for_the_answer(spawn, tmp_path):
    server = spawn("--fault", "code_json=1", "--fault-kinds", "features,evolve,select,statement")
    run = new_run(tmp_path)
    assert run_stages(run, config(server.url), FRONT) == EXIT_OK
    with Store(run.store_path) as store:
        features = store.item_records("features")
        tasks = store.item_records("tasks")
    # Every answer opened with ```python holding `tree = {}`, `people = []`, `data[i]`, then
    # the JSON in prose: the JSON was found, the code skipped.
    assert len(features) == 6 and all(r["status"] == "ok" for r in features)
    assert all("surrounding_text" in r["detail"]["repairs"] for r in features)
    outcomes = rounds(run)
    assert len(outcomes) == 6 and all(o["ok"] and o["new"] > 0 for o in outcomes)
    assert len(tasks) >= 4 and all(r["status"] == "ok" for r in tasks)
    # One llm/ metric per step, none a zero-rate twin of the one before.
    for stage in ("features", "evolve", "tasks"):
        steps = llm_metric_steps(run, stage)
        assert steps and [s for s, _ in steps] == sorted({s for s, _ in steps}), stage


def test_an_answer_that_is_only_code_is_rejected_after_its_retries(spawn, tmp_path):
    server = spawn("--fault", "code_only=1", "--fault-kinds", "evolve")
    run = new_run(tmp_path)
    cfg = config(server.url, evolve={"steps": 1})
    assert run_stages(run, cfg, FRONT[:3]) == EXIT_OK
    outcomes = rounds(run)
    assert len(outcomes) == 3 and not any(o["ok"] for o in outcomes)
    assert all(o["reason"].startswith("expand_no_json: ") and "(python)" in o["reason"]
               and o["samples"] == 2 for o in outcomes)
    assert len(asked(server, "# Evolve")) == 3 * 2  # every JSON retry was used
    summary = run.read_state().stage("evolve").summary
    assert summary["new_features"] == 0
    assert summary["this_attempt"]["rejects"] == {"expand_no_json": 3}


@pytest.mark.parametrize("rate", [1.0, 0.5])
def test_an_empty_expansion_is_asked_again_then_rejected(spawn, tmp_path, rate):
    server = spawn("--fault", f"empty_expansion={rate}", "--fault-kinds", "evolve")
    run = new_run(tmp_path)
    cfg = config(server.url, evolve={"json_retries": 2})
    assert run_stages(run, cfg, FRONT[:3]) == EXIT_OK
    outcomes = rounds(run)
    assert len(outcomes) == 6
    ok = [o for o in outcomes if o["ok"]]
    assert all(o["new"] > 0 for o in ok)  # no "ok" expansion that added nothing
    rejected = [o for o in outcomes if not o["ok"]]
    assert all(o["reason"].startswith("expand_empty: ") and o["samples"] == 3
               for o in rejected)
    if rate == 1.0:
        assert not ok and len(asked(server, "# Evolve")) == 6 * 3
    else:
        assert any(o["samples"] > 1 for o in ok)  # a retry turned an empty answer into one


# ---------------------------------------------------------------------------------------------
# Transport failures in the tests stage: nothing recorded, the stage fails, a rerun asks again


def bank_tasks(run, n: int = 6) -> list[int]:
    """``n`` pending tasks whose statements come from the responder's bank."""
    rng = random.Random(3)
    with Store(run.store_path) as store:
        return [store.add_task(style="codeforces", key=f"bank-{k}",
                               **dict(zip(("title", "statement"), render_statement(
                                   BANK[k % len(BANK)], "codeforces", rng), strict=True)))
                for k in range(n)]


def kinds_of_tests(run, ids) -> dict[int, list[str]]:
    with Store(run.store_path) as store:
        return {t: [x.kind for x in store.get_task(t).tests] for t in ids}


@pytest.fixture
def _sandbox():
    from engine.verify.sandbox import Sandbox, SandboxUnavailable

    try:
        Sandbox()
    except SandboxUnavailable as exc:
        pytest.skip(f"the tests stage needs the sandbox (bubblewrap): {exc}")


def test_dropped_connections_leave_tasks_untested_fail_the_stage_and_a_rerun_asks_again(
        spawn, tmp_path, _sandbox):
    port = free_port()
    server = spawn("--fault", "drop=0.25", "--fault-kinds", "direct,generator,validator",
                   port=port)
    run = new_run(tmp_path)
    ids = bank_tasks(run)
    cfg = config(server.url)
    assert run_stages(run, cfg, ["tests"]) == EXIT_STAGE_FAILED
    state = run.read_state().stage("tests")
    made = kinds_of_tests(run, ids)
    untested = [t for t, kinds in made.items() if not kinds]
    assert 1 <= len(untested) < len(ids)  # some calls dropped, others answered
    assert f"{len(untested)} of {len(ids)} tasks got no answer" in state.reason
    assert "connection" in state.reason and "rerun the tests stage" in state.reason
    # The answered tasks have generated tests, not just the statement's samples.
    assert all({"random", "edge"} & set(k) for t, k in made.items() if t not in untested)
    dropped = {json.dumps(r["body"], sort_keys=True) for r in server.chat_requests()
               if r["status"] is None}
    assert dropped
    server.stop()
    # The endpoint is back, same URL: the rerun asks exactly the calls that were dropped.
    server = spawn(port=port)
    assert run_stages(run, cfg, ["tests"]) == EXIT_OK
    again = {json.dumps(r["body"], sort_keys=True) for r in server.chat_requests()}
    assert again == dropped and len(server.chat_requests()) == len(dropped)
    made = kinds_of_tests(run, ids)
    assert all({"random", "edge"} & set(kinds) for kinds in made.values())
    summary = run.read_state().stage("tests").summary
    assert summary["tasks_with_tests"] == len(ids)  # the store, over both attempts
    assert summary["this_attempt"]["tasks_with_tests"] == len(untested)


def test_an_endpoint_that_is_down_fails_the_tests_stage_with_no_tests_recorded(
        spawn, tmp_path, _sandbox):
    port = free_port()  # nothing listens there yet
    run = new_run(tmp_path)
    ids = bank_tasks(run, 3)
    cfg = config(f"http://127.0.0.1:{port}/v1")
    assert run_stages(run, cfg, ["tests"]) == EXIT_STAGE_FAILED
    reason = run.read_state().stage("tests").reason
    assert reason.startswith("3 of 3 tasks got no answer") and "connection" in reason
    assert kinds_of_tests(run, ids) == {t: [] for t in ids}  # not even the samples
    server = spawn(port=port)
    assert run_stages(run, cfg, ["tests"]) == EXIT_OK
    assert len(server.chat_requests()) == 3 * 3  # direct + generator + validator per task
    assert all("sample" in kinds and len(kinds) > 1
               for kinds in kinds_of_tests(run, ids).values())


# ---------------------------------------------------------------------------------------------
# Summaries and errors that tell the truth


def test_a_resumed_solutions_stage_sums_up_every_attempt_from_the_store(spawn, tmp_path):
    port = free_port()
    server = spawn("--fault", "drop=0.3", "--fault-kinds", "solution", port=port)
    run = new_run(tmp_path)
    cfg = config(server.url)
    assert run_stages(run, cfg, FRONT) == EXIT_OK
    assert run_stages(run, cfg, ["solutions"]) == EXIT_STAGE_FAILED
    with Store(run.store_path) as store:
        n_tasks = store.counts()["tasks"]
        first = store.counts()["solutions"]
    assert 0 < first < 3 * n_tasks
    server.stop()
    spawn(port=port)
    assert run_stages(run, cfg, ["solutions"]) == EXIT_OK
    with Store(run.store_path) as store:
        rows = store._conn.execute("SELECT status FROM solutions").fetchall()
    summary = run.read_state().stage("solutions").summary
    assert summary["candidates"] == len(rows) == 3 * n_tasks
    assert summary["kept"] == sum(st == "ok" for (st,) in rows)
    assert summary["tasks_with_candidates"] == n_tasks
    assert summary["this_attempt"]["candidates"] == 3 * n_tasks - first


def test_a_wrong_url_is_a_configuration_error_without_a_traceback(spawn, tmp_path):
    server = spawn()
    run = new_run(tmp_path)
    cfg = config(server.url.replace("/v1", "/wrong/v1"))
    assert run_stages(run, cfg, ["seeds", "features"]) == EXIT_STAGE_FAILED
    reason = run.read_state().stage("features").reason
    assert reason.startswith("LLM configuration error: endpoint 'generator'")
    assert "no such route or model" in reason and "base_url" in reason
    log = run.log_file("features", 0).read_text()
    assert "Traceback" not in log and "crashed" not in log


# ---------------------------------------------------------------------------------------------
# A candidate cut off at max_tokens is asked again with a larger budget, or named truncated


@pytest.mark.parametrize("retries", [0, 3])
def test_a_cut_off_candidate_is_asked_again_with_twice_the_budget(spawn, tmp_path, retries):
    server = spawn("--cut-at-max-tokens")
    run = new_run(tmp_path)
    cfg = config(server.url, solutions={"candidates_per_task": 2, "max_tokens": 16,
                                        "truncation_retries": retries})
    assert run_stages(run, cfg, FRONT) == EXIT_OK
    assert run_stages(run, cfg, ["solutions"]) == EXIT_OK
    budgets = sorted({r["body"]["max_tokens"] for r in asked(server, "# Solve")})
    with Store(run.store_path) as store:
        rows = store._conn.execute("SELECT status, reject_reason FROM solutions").fetchall()
    assert rows
    if retries == 0:
        assert budgets == [16]
        assert all(st == "rejected" and why.startswith("truncated") and
                   "(cut at max_tokens=16)" in why for st, why in rows), rows[:3]
    else:
        assert budgets[:2] == [16, 32] and max(budgets) <= 128, budgets
        assert sum(st == "ok" for st, _ in rows) > 0, rows[:3]  # the larger budget fit
