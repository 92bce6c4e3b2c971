"""Shard files (``ShardOutbox``) and ``Store.merge_from``: natural keys, idempotence, the
``merged_shards`` record, and a failed merge leaving the store as it was.

Run: .venv/bin/python -m pytest tests/engine/test_store_merge.py -q

No sandbox: the rows are written through the API, as the verify and tests stages write them.
"""

from __future__ import annotations

import sqlite3

import pytest

from engine.store import ShardOutbox, Store, StoreError, Verdict, shard_file


def main_store(tmp_path):
    store = Store(tmp_path / "store.sqlite")
    ids = []
    for k in range(2):
        tid = store.add_task(style="codeforces", title=f"T{k}", statement="s", key=f"t{k}")
        sols = [store.add_solution(tid, j, code=f"print({j})") for j in range(2)]
        tests = [store.add_test(tid, j, input=f"{j}\n", kind="random", source="direct")
                 for j in range(2)]
        ids.append((tid, sols, tests))
    return store, ids


def fill_outbox(path, tid, sols, tests):
    with ShardOutbox(path) as out:
        with out.transaction():
            out.add_verdicts(Verdict(s, t, "ok", 0.1, 100, "h") for s in sols for t in tests)
            for j in range(2):
                out.add_test(tid, j, input=f"{j}\n", kind="random", source="direct",
                             expected_output=f"out{j}", meta={"verify": {"votes": [2]}})
            out.add_test(tid, 2, input="new\n", kind="edge", source="generator")  # tests stage
            out.set_task_result(tid, "accepted", agreement=1.0, golden_solution_id=sols[0])
        assert out.decided_tasks() == {tid} and out.tasks_with_tests() == {tid}


def test_shard_file_path_names_stage_and_shard(tmp_path):
    assert shard_file(tmp_path, "verify", 1, 4) == tmp_path / "shards" / "verify.1of4.sqlite"


def test_merge_folds_rows_in_by_natural_keys_and_records_the_file(tmp_path):
    store, [(tid, sols, tests), (other, _, _)] = main_store(tmp_path)
    path = shard_file(tmp_path, "verify", 0, 2)
    fill_outbox(path, tid, sols, tests)
    before = store.counts()
    counts = store.merge_from(path)
    assert counts == {"tests": 3, "verdicts": 4, "task_results": 1, "skipped": 0,
                      "seed_features": 0, "evolution_steps": 0, "tasks": 0, "solutions": 0,
                      "synth_items": 0}
    task = store.get_task(tid)
    assert task.status == "accepted" and task.golden_solution_id == sols[0]
    assert [t.expected_output for t in task.tests] == ["out0", "out1", None]
    assert [t.id for t in task.tests[:2]] == tests  # relabelled in place, same ids
    assert task.n_tests == 3 and len(task.verdicts) == 4
    assert store.get_task(other).status == "pending"
    after = store.counts()
    assert after["tests"] == before["tests"] + 1 and after["verdicts"] == 4
    assert list(store.merged_shards()) == ["verify.0of2.sqlite"]


def test_merging_twice_changes_nothing(tmp_path):
    store, [(tid, sols, tests), _] = main_store(tmp_path)
    path = shard_file(tmp_path, "verify", 0, 2)
    fill_outbox(path, tid, sols, tests)
    store.merge_from(path)
    once = (store.counts(), store.get_task(tid))
    assert store.merge_from(path)["skipped"] == 1
    assert (store.counts(), store.get_task(tid)) == once
    store._conn.execute("DELETE FROM merged_shards")  # forget the record: upserts still agree
    assert store.merge_from(path)["skipped"] == 0
    assert (store.counts(), store.get_task(tid)) == once


def test_a_merge_that_fails_leaves_the_store_and_the_record_unchanged(tmp_path):
    store, [(tid, sols, tests), _] = main_store(tmp_path)
    path = shard_file(tmp_path, "verify", 0, 2)
    fill_outbox(path, tid, sols, tests)
    with ShardOutbox(path) as out:
        out.set_task_result(999, "rejected", reason="x")  # a task this store does not have
    before = store.counts()
    with pytest.raises(StoreError, match="task 999"):
        store.merge_from(path)
    assert store.counts() == before and store.merged_shards() == {}
    assert store.get_task(tid).status == "pending"


def test_merge_refuses_a_file_that_is_not_a_shard(tmp_path):
    store, _ = main_store(tmp_path)
    with pytest.raises(StoreError, match="no shard file"):
        store.merge_from(tmp_path / "missing.sqlite")
    bogus = tmp_path / "bogus.sqlite"
    sqlite3.connect(bogus).close()
    with pytest.raises(StoreError, match="not a shard file"):
        store.merge_from(bogus)


META = {"samples": {"in_statement": 2, "as_tests": 2, "added": 1},
        "compile_errors": {"5": "a.cpp:1:1: error: x"},
        "candidates": {"5": {"eligible": True, "weight": 1.0, "exposures": 0,
                             "biggest_input_cpu_s": 0.12}},
        "unusable_tests": 0}


def test_merge_carries_the_verification_meta_and_a_result_without_one_keeps_it(tmp_path):
    store, [(tid, sols, tests), (other, _, _)] = main_store(tmp_path)
    path = shard_file(tmp_path, "verify", 0, 2)
    with ShardOutbox(path) as out:
        out.set_task_result(tid, "accepted", agreement=1.0, golden_solution_id=sols[0],
                            meta=META)
        out.set_task_result(other, "rejected", reason="no_valid_candidates")  # no meta
    store.set_task_result(other, "pending", meta={"unusable_tests": 3})  # an earlier run's
    assert store.merge_from(path)["task_results"] == 2
    assert store.get_task(tid).verify_meta == META
    assert store.get_task(tid).golden_solution_id == sols[0]
    kept = store.get_task(other)
    assert (kept.status, kept.verify_meta) == ("rejected", {"unusable_tests": 3})


def test_a_shard_file_from_before_the_meta_column_still_merges_and_is_upgraded(tmp_path):
    from engine.store.shard_outbox import _OUTBOX_SCHEMA, _OUTBOX_SCHEMA_V2

    store, [(tid, sols, _), _] = main_store(tmp_path)
    store.set_task_result(tid, "pending", meta={"unusable_tests": 1})
    path = shard_file(tmp_path, "verify", 1, 2)
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path, isolation_level=None)  # what the v2 engine wrote
    conn.executescript("BEGIN;" + _OUTBOX_SCHEMA + _OUTBOX_SCHEMA_V2
                       + "PRAGMA user_version = 2; COMMIT;")
    conn.execute("INSERT INTO task_results VALUES (?, 'accepted', NULL, 0.9, ?)",
                 (tid, sols[1]))
    conn.close()
    assert store.merge_from(path)["task_results"] == 1
    task = store.get_task(tid)
    assert (task.status, task.agreement, task.golden_solution_id) == ("accepted", 0.9, sols[1])
    assert task.verify_meta == {"unusable_tests": 1}  # no meta in the file: left as it was
    with ShardOutbox(path) as out:  # a newer engine resumes the shard: column added in place
        assert out._conn.execute("PRAGMA user_version").fetchone()[0] == 3
        assert out.decided_tasks() == {tid}
        out.set_task_result(tid, "rejected", reason="compile_error", meta=META)
    store.merge_from(path)
    assert store.get_task(tid).verify_meta == META


def test_readonly_store_still_opens_after_a_merge(tmp_path):
    store, [(tid, sols, tests), _] = main_store(tmp_path)
    path = shard_file(tmp_path, "verify", 0, 2)
    fill_outbox(path, tid, sols, tests)
    store.merge_from(path)
    store.close()
    with Store(tmp_path / "store.sqlite", readonly=True) as ro:
        assert ro.get_task(tid).status == "accepted"
        assert "verify.0of2.sqlite" in ro.merged_shards()
