"""The synthesis stages — features, evolve, tasks, solutions — end to end through the runner.

Run: .venv/bin/python -m pytest tests/engine/test_synthesis_stages.py -q

The LLM is the scripted OpenAI-compatible server (tests/openai_stub_server.py, real HTTP on
loopback) with ``SynthResponder`` (tests/synth_responder.py) answering each prompt kind with
realistic output, and with faults switched on where a test says so: malformed JSON,
repairable JSON, truncation, hint leaks, answers without code, 429 bursts, 500s.
"""

from __future__ import annotations

import ast
import json
import sqlite3

import pytest
from openai_stub_server import Reply
from synth_responder import SynthResponder

from engine.events import EventReader
from engine.rundir import RunDir
from engine.runner import EXIT_OK, EXIT_STAGE_FAILED, run_pipeline
from engine.schema import config_from_dict, dump_config
from engine.store import Store, split_feature_path

STAGES = ["seeds", "features", "evolve", "tasks", "solutions"]


def config(stub, **sections):
    base = {
        "run": {"seed": 7},
        "llms": {name: {"backend": "openai", "base_url": stub.url, "model": "stub-model",
                        "timeout_s": 10.0, "max_retries": 3}
                 for name in ("generator", "solver")},
        "seeds": {"sources": [{"path": "assets://seeds/seeds.jsonl"}], "max_seeds": 6},
        "features": {"json_retries": 1},
        "evolve": {"steps": 2, "samples_per_step": 3, "json_retries": 1},
        "tasks": {"num_configs": 6, "shapes": [[2, 2, 1], [2, 2, 2]], "min_leaves": 3,
                  "json_retries": 1},
        "solutions": {"candidates_per_task": 3},
    }
    for name, values in sections.items():
        if name == "llms":  # per endpoint: change some fields of one
            for llm, fields in values.items():
                base["llms"][llm] = {**base["llms"][llm], **fields}
        else:
            base[name] = {**base.get(name, {}), **values}
    return config_from_dict(base)


def new_run(tmp_path, name="run") -> RunDir:
    run = RunDir(tmp_path / name)
    run.create()
    return run


def run_stages(run, cfg, stages=STAGES, **kw) -> int:
    return run_pipeline(cfg, dump_config(cfg), run, stages, **kw)


def metrics(run, stage) -> dict[str, float]:
    """The last value of every metric key one stage wrote."""
    out: dict[str, float] = {}
    for ev in EventReader(run.events_dir / f"{stage}.0.jsonl").read_new():
        if ev.kind == "metric":
            out.update(ev.data)
    return out


def events(run, stage, kind):
    return [e for e in EventReader(run.events_dir / f"{stage}.0.jsonl").read_new()
            if e.kind == kind]


def snapshot(store: Store) -> dict:
    """What the synthesis stages made, without ids and times (to compare two runs)."""
    c = store._conn
    return {
        "features": sorted(c.execute("SELECT path, frequency, origin, created_step FROM features")),
        "items": sorted(c.execute("SELECT stage, item, status, reason FROM synth_items")),
        "tasks": sorted(c.execute("SELECT t.key, t.style, t.status, x.title, x.statement"
                                  " FROM tasks t JOIN task_texts x ON x.task_id = t.id")),
        "solutions": sorted(c.execute("SELECT t.key, s.idx, s.language, s.code, s.status,"
                                      " s.reject_reason FROM solutions s"
                                      " JOIN tasks t ON t.id = s.task_id")),
        "steps": sorted(c.execute("SELECT step, n_new_features FROM evolution_steps")),
    }


@pytest.fixture
def synth(openai_stub):
    responder = SynthResponder(seed=1)
    openai_stub.rule = responder
    return openai_stub, responder


# ---------------------------------------------------------------------------------------------
# The whole front half, clean answers


def test_seeds_to_solutions_with_lineage_events_and_reasons(synth, tmp_path):
    stub, responder = synth
    run = new_run(tmp_path)
    assert run_stages(run, config(stub)) == EXIT_OK
    with Store(run.store_path) as store:
        counts = store.counts()
        # features: every seed read, its features linked with frequencies
        items = store.item_records("features")
        assert len(items) == 6 and all(r["status"] == "ok" for r in items)
        assert all(r["detail"]["summary"] for r in items)
        seed_feats = store._conn.execute(
            "SELECT path, frequency FROM features WHERE origin = 'seed'").fetchall()
        assert seed_feats and all(f >= 1 for _, f in seed_feats)
        roots = {split_feature_path(p)[0] for p, _ in seed_feats}
        assert roots <= {"programming_language", "problem_domain", "algorithmic_paradigm",
                         "algorithms", "mathematics", "problem_solving_strategies",
                         "data_structures", "coding_techniques", "complexity_analysis",
                         "optimization_techniques"} and len(roots) >= 3
        # A parent's frequency counts the seeds that mention anything under it.
        for path, freq in seed_feats:
            children = store._conn.execute(
                "SELECT max(f.frequency) FROM features f JOIN features p ON f.parent_id = p.id"
                " WHERE p.path = ?", (path,)).fetchone()[0]
            assert children is None or freq >= children
        # evolve: two rounds, each recorded with new features tied to it
        steps = store._conn.execute(
            "SELECT step, n_new_features FROM evolution_steps ORDER BY step").fetchall()
        assert [s for s, _ in steps] == [1, 2] and all(n > 0 for _, n in steps)
        for step, n_new in steps:
            made = store._conn.execute("SELECT count(*) FROM features WHERE origin = 'evolve'"
                                       " AND created_step = ?", (step,)).fetchone()[0]
            assert made == n_new
        # tasks: statements in the bank's style, configs and lineage down to the seeds
        tasks = store._conn.execute("SELECT id, style, status FROM tasks").fetchall()
        assert len(tasks) >= 4 and all(st == "pending" for _, _, st in tasks)
        task = store.get_task(tasks[0][0])
        assert task.statement and task.integration_strategy and task.selected_features
        kinds = {(e.child_kind, e.parent_kind) for e in store.lineage_of("task", task.id)}
        assert ("task", "feature_config") in kinds and ("feature_config", "feature") in kinds
        assert ("task", "feature") in kinds and ("feature", "seed") in kinds
        # solutions: 3 candidates each, the kept ones parse, reasoning kept
        sols = store._conn.execute("SELECT task_id, idx, code, status, reasoning FROM solutions"
                                   ).fetchall()
        assert len(sols) == 3 * len(tasks)
        for _, _, code, status, reasoning in sols:
            assert status == "ok" and reasoning
            ast.parse(code)
        assert counts["synth_items"] == len(items) + len(tasks)
    # events: progress, synth and llm metrics, samples
    m = metrics(run, "features")
    assert m["synth/seeds_done"] == 6 and m["synth/json_fail_rate"] == 0
    assert m["llm/requests"] == 6 and "llm/requests_per_s" in m and "llm/tokens_per_s" in m
    assert metrics(run, "tasks")["synth/tasks_done"] == len(tasks)
    assert metrics(run, "solutions")["synth/candidates_ok_rate"] == 1.0
    assert events(run, "tasks", "sample") and events(run, "solutions", "sample")
    last = events(run, "solutions", "progress")[-1].data
    assert last.done == last.total == len(tasks)
    assert responder.counts["solution"] == 3 * len(tasks)


def test_a_rerun_makes_no_llm_call_and_changes_nothing(synth, tmp_path):
    stub, _ = synth
    run = new_run(tmp_path)
    cfg = config(stub)
    assert run_stages(run, cfg) == EXIT_OK
    with Store(run.store_path) as store:
        before = snapshot(store)
    n_requests = len(stub.chat_requests())
    # Forget the stages' completion: every stage runs again, finds its work done.
    for stage in STAGES:
        run.update_stage(stage, status="running")
    assert run_stages(run, cfg) == EXIT_OK
    assert len(stub.chat_requests()) == n_requests
    with Store(run.store_path) as store:
        assert snapshot(store) == before


def test_two_runs_with_one_seed_make_the_same_data(synth, tmp_path):
    stub, _ = synth
    runs = [new_run(tmp_path, f"run{k}") for k in range(2)]
    snaps = []
    for run in runs:
        assert run_stages(run, config(stub)) == EXIT_OK
        with Store(run.store_path) as store:
            snaps.append(snapshot(store))
    assert snaps[0] == snaps[1]


# ---------------------------------------------------------------------------------------------
# Bad answers: repaired where that invents nothing, otherwise rejected with the reason


def test_malformed_json_is_retried_as_new_samples_then_rejected_with_the_answer(synth, tmp_path):
    stub, responder = synth
    stub.rule = SynthResponder(seed=1, faults={"malformed_json": 1.0})
    run = new_run(tmp_path)
    cfg = config(stub, features={"json_retries": 2})
    assert run_stages(run, cfg, ["seeds", "features", "evolve", "tasks"]) == EXIT_OK
    with Store(run.store_path) as store:
        items = store.item_records("features")
        assert len(items) == 6 and all(r["status"] == "rejected" for r in items)
        assert all(r["reason"].startswith("extract_invalid: ") for r in items)
        assert all(r["raw"] and r["detail"]["samples"] == 3 for r in items)
        assert store.item_reasons("features") == [("features", "extract_invalid", 6)]
        assert store.counts()["features"] == 0
    # one request per sample: 6 seeds x (1 + 2 retries), each a different sample index
    bodies = [r.body for r in stub.chat_requests()]
    assert len(bodies) == 18 and len({(json.dumps(b["messages"]), b["seed"]) for b in bodies}) == 18
    m = metrics(run, "features")
    assert m["synth/json_fail_rate"] == 1.0 and m["synth/rejects/extract_invalid"] == 6
    # Later stages say why they have nothing to do instead of failing.
    for stage in ("evolve", "tasks"):
        alerts = events(run, stage, "alert")
        assert alerts and "rejected every seed (extract_invalid x6)" in alerts[0].data.message


@pytest.mark.parametrize("fault", ["trailing_comma", "prose_json"])
def test_repairable_json_is_repaired_and_the_repair_recorded(synth, tmp_path, fault):
    stub, _ = synth
    stub.rule = SynthResponder(seed=1, faults={fault: 1.0})
    run = new_run(tmp_path)
    assert run_stages(run, config(stub), ["seeds", "features"]) == EXIT_OK
    with Store(run.store_path) as store:
        items = store.item_records("features")
        assert len(items) == 6 and all(r["status"] == "ok" for r in items)
        expected = "trailing_comma" if fault == "trailing_comma" else "surrounding_text"
        assert all(expected in r["detail"]["repairs"] for r in items)
    m = metrics(run, "features")
    assert m["synth/json_repaired"] == 6 and m["synth/json_fail_rate"] == 0


def test_truncated_answers_are_rejected_as_truncated(synth, tmp_path):
    stub, _ = synth
    stub.rule = SynthResponder(seed=1, faults={"truncated": 1.0})
    run = new_run(tmp_path)
    assert run_stages(run, config(stub, features={"json_retries": 0}),
                      ["seeds", "features"]) == EXIT_OK
    with Store(run.store_path) as store:
        reasons = [r["reason"] for r in store.item_records("features")]
    assert len(reasons) == 6 and all(r.startswith("extract_truncated: ") for r in reasons)


@pytest.mark.parametrize("policy", ["reject", "keep"])
def test_hint_leaks_are_detected_counted_and_rejected_or_kept(synth, tmp_path, policy):
    stub, _ = synth
    clean = new_run(tmp_path, "clean")
    assert run_stages(clean, config(stub), ["seeds", "features", "evolve"]) == EXIT_OK
    stub.rule = SynthResponder(seed=1, faults={"hint_leak": 1.0})
    run = new_run(tmp_path)
    assert run_stages(run, config(stub, tasks={"hint_leaks": policy}),
                      ["seeds", "features", "evolve", "tasks", "solutions"]) == EXIT_OK
    with Store(run.store_path) as store:
        rows = store._conn.execute("SELECT status, reject_reason, n_solutions FROM tasks"
                                   ).fetchall()
        leaks = [r["detail"]["hint_leaks"] for r in store.item_records("tasks", "ok")]
    assert rows and all(leaks)
    if policy == "reject":
        assert all(st == "rejected" and why.startswith("hint_leak: ") and n == 0
                   for st, why, n in rows)
    else:
        assert all(st == "pending" and why is None and n == 3 for st, why, n in rows)
    m = metrics(run, "tasks")
    assert m["synth/hint_leaks"] == len(rows) and m["synth/hint_leak_rate"] == 1.0


@pytest.mark.parametrize("fault, reason", [
    ("no_code", "no_code_block"),
    ("two_blocks", "multiple_code_blocks: 2"),
    ("syntax_error", "syntax_error: line "),
    ("truncated", "truncated: "),
])
def test_candidates_without_one_parsing_block_are_stored_rejected_with_why(synth, tmp_path,
                                                                           fault, reason):
    stub, _ = synth
    run = new_run(tmp_path)
    cfg = config(stub)
    assert run_stages(run, cfg, ["seeds", "features", "evolve", "tasks"]) == EXIT_OK
    stub.rule = SynthResponder(seed=1, faults={fault: 1.0})
    assert run_stages(run, cfg, ["solutions"]) == EXIT_OK
    with Store(run.store_path) as store:
        sols = store._conn.execute("SELECT code, status, reject_reason, reasoning"
                                   " FROM solutions").fetchall()
    assert sols and all(code is None and st == "rejected" and why.startswith(reason)
                        for code, st, why, _ in sols)
    assert all(reasoning for *_, reasoning in sols)  # the answer is kept for inspection
    assert metrics(run, "solutions")["synth/candidates_ok_rate"] == 0.0


# ---------------------------------------------------------------------------------------------
# The transport: 429 bursts and 500s


def test_a_burst_of_429s_is_ridden_out(synth, tmp_path):
    stub, _ = synth
    stub.enqueue(*[Reply(status=429, headers={"Retry-After": "0"}) for _ in range(8)])
    run = new_run(tmp_path)
    assert run_stages(run, config(stub), ["seeds", "features"]) == EXIT_OK
    with Store(run.store_path) as store:
        assert len(store.done_items("features")) == 6
    m = metrics(run, "features")
    assert m["llm/errors/http_429"] == 8 and m["llm/retries"] >= 8 and m["llm/failed"] == 0


def test_a_call_failing_after_its_retries_fails_the_stage_and_the_rerun_asks_only_for_it(
        synth, tmp_path):
    stub, responder = synth
    broken = {"first": None}

    def rule(body, attempt):
        text = body["messages"][-1]["content"]
        if broken["first"] is None and text.startswith("# Extract"):
            broken["first"] = text
        if text == broken["first"] and broken["first"] is not None and broken.get("on", True):
            return Reply(status=500)
        return responder(body, attempt)

    stub.rule = rule
    run = new_run(tmp_path)
    cfg = config(stub)
    assert run_stages(run, cfg, ["seeds", "features"]) == EXIT_STAGE_FAILED
    state = run.read_state().stages["features"]
    assert state.status == "failed" and "1 of 6 seeds got no answer" in state.reason
    assert "http_500" in state.reason
    with Store(run.store_path) as store:
        assert len(store.done_items("features")) == 5
    broken["on"] = False
    before = len(stub.chat_requests())
    assert run_stages(run, cfg, ["seeds", "features"]) == EXIT_OK
    assert len(stub.chat_requests()) - before == 1  # only the failed call is asked again
    with Store(run.store_path) as store:
        assert len(store.done_items("features")) == 6


# ---------------------------------------------------------------------------------------------
# Shards: the merged result is what one process makes


@pytest.mark.parametrize("stage", ["features", "tasks", "solutions"])
def test_two_shards_merge_into_what_one_process_makes(synth, tmp_path, stage):
    stub, _ = synth
    cfg = config(stub)
    before = STAGES[:STAGES.index(stage)]
    single, sharded = new_run(tmp_path, "single"), new_run(tmp_path, "sharded")
    assert run_stages(single, cfg) == EXIT_OK
    assert run_stages(sharded, cfg, before) == EXIT_OK
    for i in range(2):
        assert run_stages(sharded, cfg, [stage], shard_index=i, shard_count=2) == EXIT_OK
    assert (sharded.data_dir / "shards" / f"{stage}.0of2.sqlite").exists()
    assert sharded.read_state().stages[stage].status == "completed"
    after = STAGES[STAGES.index(stage) + 1:]
    if after:
        assert run_stages(sharded, cfg, after) == EXIT_OK
    with Store(single.store_path) as a, Store(sharded.store_path) as b:
        sa, sb = snapshot(a), snapshot(b)
    assert sa["features"] == sb["features"] and sa["tasks"] == sb["tasks"]
    assert sa["solutions"] == sb["solutions"] and sa["items"] == sb["items"]


def test_evolve_as_shards_runs_independent_chains_merged_in_step_order(synth, tmp_path):
    stub, _ = synth
    cfg = config(stub, evolve={"steps": 4})
    snaps = []
    for name in ("a", "b"):
        run = new_run(tmp_path, name)
        assert run_stages(run, cfg, ["seeds", "features"]) == EXIT_OK
        for i in (1, 0):  # any order
            assert run_stages(run, cfg, ["evolve"], shard_index=i, shard_count=2) == EXIT_OK
        state = run.read_state().stages
        assert state["evolve"].status == "completed"
        assert state["evolve@1of2"].summary["rounds"] == 2  # rounds 1 and 3
        with Store(run.store_path) as store:
            steps = store._conn.execute("SELECT step, n_new_features FROM evolution_steps"
                                        " ORDER BY step").fetchall()
            assert [s for s, _ in steps] == [1, 2, 3, 4] and all(k > 0 for _, k in steps)
            made = store._conn.execute("SELECT created_step, count(*) FROM features WHERE"
                                       " origin = 'evolve' GROUP BY created_step").fetchall()
            assert made == steps
            step_id = store.evolution_step_ids()[3]
            sampled = store._conn.execute("SELECT count(*) FROM lineage WHERE child_kind ="
                                          " 'evolution_step' AND child_id = ?",
                                          (step_id,)).fetchone()[0]
            assert sampled > 0
            snaps.append(snapshot(store))
        # A later unsharded evolve finds every round done.
        assert run_stages(run, cfg, ["evolve"]) == EXIT_OK
    assert snaps[0] == snaps[1]  # reproducible


# ---------------------------------------------------------------------------------------------
# The response cache carries a killed stage


def test_cached_answers_of_a_killed_batch_are_not_asked_again(synth, tmp_path):
    """A stage killed mid-batch wrote nothing of that batch but its answers are cached."""
    stub, _ = synth
    run = new_run(tmp_path)
    cfg = config(stub)
    assert run_stages(run, cfg, ["seeds", "features"]) == EXIT_OK
    n = len(stub.chat_requests())
    # Drop the stage's records (as if killed after the calls, before the writes).
    with Store(run.store_path) as store, store.transaction():
        store._conn.execute("DELETE FROM synth_items")
        store._conn.execute("DELETE FROM seed_features")
        store._conn.execute("DELETE FROM features")
    run.update_stage("features", status="running")
    assert run_stages(run, cfg, ["seeds", "features"]) == EXIT_OK
    assert len(stub.chat_requests()) == n
    m = metrics(run, "features")
    assert m["llm/cache_hits"] == 6 and m["llm/requests"] == 0
    with sqlite3.connect(run.store_path) as conn:
        assert conn.execute("SELECT count(*) FROM synth_items").fetchone()[0] == 6


def test_solutions_killed_mid_way_resume_with_nothing_lost_or_duplicated(openai_stub, tmp_path):
    """SIGKILL the engine process while the solutions stage is half done; the rerun finishes
    with exactly what an uninterrupted run makes, every task with all its candidates or none,
    and asks only for the answers the killed process had not cached."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from engine.llm import CACHE_FILE

    responder = SynthResponder(seed=1)
    openai_stub.rule = responder
    cfg = config(openai_stub, tasks={"num_configs": 24}, llms={"solver": {"max_concurrency": 2}})
    reference, run = new_run(tmp_path, "reference"), new_run(tmp_path)
    for r in (reference, run):
        assert run_stages(r, cfg, STAGES[:-1]) == EXIT_OK
    with Store(run.store_path) as store:
        n_tasks = store.counts()["tasks"]
    assert n_tasks >= 20

    def cached(r=run) -> int:
        with sqlite3.connect(r.cache_dir / CACHE_FILE) as conn:
            return conn.execute("SELECT count(*) FROM responses").fetchone()[0]

    cached_before = cached()
    assert run_stages(reference, cfg, ["solutions"]) == EXIT_OK
    # Distinct solution calls (two tasks with one statement share their calls).
    distinct = cached(reference) - cached_before
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text(dump_config(cfg))

    def slow(body, attempt):  # slow answers: the kill lands mid-way
        time.sleep(0.03)
        return responder(body, attempt)

    openai_stub.rule = slow
    repo = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "-m", "engine", "run", "--config", str(cfg_file), "--run-dir",
           str(run.root), "--stages", "solutions"]
    proc = subprocess.Popen(cmd, cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with sqlite3.connect(run.store_path) as conn:
            written = conn.execute("SELECT count(*) FROM solutions").fetchone()[0]
        if written >= 3 * (n_tasks // 2):
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    with sqlite3.connect(run.store_path) as conn:
        per_task = conn.execute("SELECT count(*) FROM solutions GROUP BY task_id").fetchall()
    assert n_tasks // 2 <= len(per_task) < n_tasks and set(per_task) == {(3,)}
    answers_cached = cached() - cached_before
    assert answers_cached < distinct
    # Requests the killed process sent may still sit in the server's socket buffers: let the
    # server drain them before counting what the rerun asks.
    seen, quiet_since = -1, time.monotonic()
    while time.monotonic() - quiet_since < 0.5:
        if len(openai_stub.chat_requests()) != seen:
            seen, quiet_since = len(openai_stub.chat_requests()), time.monotonic()
        time.sleep(0.05)
    openai_stub.reset()
    openai_stub.rule = responder
    result = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(openai_stub.chat_requests()) == distinct - answers_cached
    with Store(run.store_path) as a, Store(reference.store_path) as b:
        assert snapshot(a) == snapshot(b)
        per_task = a._conn.execute("SELECT count(*) FROM solutions GROUP BY task_id").fetchall()
    assert per_task == [(3,)] * n_tasks


# ---------------------------------------------------------------------------------------------
# The smoke preset: the transformers backend with a tiny random-init model (noise)


@pytest.mark.slow
def test_the_smoke_preset_survives_a_random_model_and_reports_what_it_rejected(tmp_path):
    from engine.paths import ASSETS_DIR
    from engine.schema import load_config

    cfg = load_config(ASSETS_DIR / "presets" / "smoke-cpu.yaml",
                      ["features.json_retries=0", "evolve.json_retries=0",
                       "tasks.json_retries=0", "seeds.max_seeds=3", "evolve.steps=1",
                       "tasks.num_configs=2", "solutions.candidates_per_task=2",
                       "seeds.as_tasks=false"])
    run = new_run(tmp_path)
    assert run_stages(run, cfg, ["seeds", "features"]) == EXIT_OK
    with Store(run.store_path) as store:
        reasons = [r["reason"] for r in store.item_records("features")]
        assert len(reasons) == 3 and all(r.startswith("extract_") for r in reasons)
        assert store.counts()["features"] == 0
        # Give the later stages something to work on: a small tree and one task.
        seed_id = next(store.iter_seeds()).id
        store.add_seed_features(seed_id, [("algorithms",), ("algorithms", "graph"),
                                          ("algorithms", "graph", "shortest paths"),
                                          ("algorithms", "graph", "trees"),
                                          ("data_structures",), ("data_structures", "stack")])
        task_id = store.add_task(style="atcoder", title="Sum", key="by-hand",
                                 statement="Read n and n integers; print their sum.")
    assert run_stages(run, cfg, ["evolve", "tasks", "solutions"]) == EXIT_OK
    state = run.read_state().stages
    assert state["evolve"].summary["rounds"] == 1
    assert sum(state["evolve"].summary["this_attempt"]["rejects"].values()) >= 1
    assert state["tasks"].summary["tasks"] == 0 and state["tasks"].summary["rejected"] == 2
    assert state["solutions"].summary["candidates"] == 2
    assert state["solutions"].summary["kept"] == 0
    with Store(run.store_path) as store:
        assert [r["reason"].split(":")[0] for r in store.item_records("tasks")] != []
        sols = store._conn.execute("SELECT status, reject_reason, reasoning FROM solutions"
                                   " WHERE task_id = ?", (task_id,)).fetchall()
    assert len(sols) == 2 and all(st == "rejected" and why for st, why, _ in sols)
    m = metrics(run, "solutions")
    assert m["synth/candidates_ok_rate"] == 0.0 and m["llm/requests"] == 2


def test_a_slow_answer_times_out_and_is_asked_again(synth, tmp_path):
    stub, responder = synth
    slow_once: dict[str, int] = {}

    def rule(body, attempt):
        reply = responder(body, attempt)
        text = body["messages"][-1]["content"]
        if text.startswith("# Extract") and not slow_once:
            slow_once[text] = attempt
        if text in slow_once and attempt == 0:
            reply.delay_s = 3.0  # far over the client's timeout
        return reply

    stub.rule = rule
    run = new_run(tmp_path)
    cfg = config(stub, llms={"generator": {"timeout_s": 1.0}})
    assert run_stages(run, cfg, ["seeds", "features"]) == EXIT_OK
    with Store(run.store_path) as store:
        assert len(store.done_items("features")) == 6
    m = metrics(run, "features")
    assert m["llm/errors/timeout"] == 1 and m["llm/retries"] == 1 and m["llm/failed"] == 0


@pytest.mark.slow
def test_synthesised_tasks_go_through_tests_verify_and_curate_to_exports(synth, tmp_path):
    """Seeds to SFT/RL exports on the scripted model: the statements' samples become tests,
    candidates are judged in the sandbox, curate exports the accepted tasks with reasoning."""
    from engine.verify.sandbox import Sandbox, SandboxUnavailable

    try:
        Sandbox()
    except SandboxUnavailable as exc:
        pytest.skip(f"verify needs the sandbox (bubblewrap): {exc}")
    stub, _ = synth
    cfg = config(stub, solutions={"candidates_per_task": 4},
                 tests={"direct_inputs": 2, "generators": 1, "seeds_per_generator": 2,
                        "max_tests_per_task": 6, "resources": {"cpus_per_task": 2}},
                 verify={"jobs": 2, "min_labelled_tests": 2, "min_candidates_voting": 2},
                 curate={"export_formats": ["jsonl"]})
    run = new_run(tmp_path)
    assert run_stages(run, cfg, [*STAGES, "tests", "verify", "curate"]) == EXIT_OK
    with Store(run.store_path) as store:
        n_tasks = store.counts()["tasks"]
        samples = store._conn.execute("SELECT count(DISTINCT task_id) FROM tests"
                                      " WHERE kind = 'sample'").fetchone()[0]
        accepted = store.counts()["tasks/accepted"]
    assert samples == n_tasks  # every style's samples were found
    assert accepted >= n_tasks - 1
    rows = [json.loads(line) for line in (run.root / "exports" / "sft.jsonl").read_text()
            .splitlines()]
    assert len(rows) == accepted
    assert all(r["response"].startswith("<think>") and "```python" in r["response"]
               for r in rows)
