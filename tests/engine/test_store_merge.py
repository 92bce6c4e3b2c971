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


def test_readonly_store_still_opens_after_a_merge(tmp_path):
    store, [(tid, sols, tests), _] = main_store(tmp_path)
    path = shard_file(tmp_path, "verify", 0, 2)
    fill_outbox(path, tid, sols, tests)
    store.merge_from(path)
    store.close()
    with Store(tmp_path / "store.sqlite", readonly=True) as ro:
        assert ro.get_task(tid).status == "accepted"
        assert "verify.0of2.sqlite" in ro.merged_shards()
