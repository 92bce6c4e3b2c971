"""remote/store_client.py: ``RemoteStore`` answers what the local store answers, one remote
command per request, over "This computer" and over real SSH (fixtures_ssh.py).

Run: .venv/bin/python -m pytest tests/remote/test_store_client.py -q -s   (-s prints latency)

The run (tests/sample_run.py) sits in a folder whose name holds spaces, quotes, ``$`` and
non-ASCII text. Over SSH the engine is the bundle ``sync_bundle`` uploads, as a launch does.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from pathlib import Path

import pytest
from sample_run import build_sample_run

from engine.rollouts import group_records, groups, read_rollouts
from engine.store import PageCursor, Store, StoreError, TaskQuery
from engine.store_rpc import CUT_KEY
from remote.bundle import sync_bundle
from remote.errors import RemoteSetupError
from remote.runner import LocalRunner
from remote.ssh import SSHRunner
from remote.store_client import RemoteStore

REPO = Path(__file__).resolve().parents[2]
ODD = "runs/r 'q' $HOME \u00e9"  # a run folder name no shell may split or expand


@pytest.fixture
def run(tmp_path):
    return build_sample_run(tmp_path / ODD)


def same_answers(remote: RemoteStore, store_path: Path, rollouts: Path) -> None:
    """Every read method: the remote answer equals the local store's / rollout files'."""
    with Store(store_path, readonly=True) as s:
        q = TaskQuery(limit=3)
        page = remote.query_tasks(q)
        assert page == s.query_tasks(q) and page.next_cursor is not None
        q2 = TaskQuery(limit=3, after=page.next_cursor, with_total=False)
        assert remote.query_tasks(q2) == s.query_tasks(q2)
        q3 = TaskQuery(search="grid", sort="agreement", descending=True, limit=2,
                       before=PageCursor(0.5, 4))
        assert remote.query_tasks(q3) == s.query_tasks(q3)
        for tid in (1, 2, 999):
            assert remote.get_task(tid) == s.get_task(tid)
        assert remote.lineage_of("task", 1) == s.lineage_of("task", 1)
        assert remote.reject_reasons() == s.reject_reasons()
        golden = remote.golden_solution(1)
        assert golden is not None and golden.id == s.get_task(1).golden_solution_id
    assert remote.rollout_steps() == [1, 2]
    records = read_rollouts(rollouts, step=2)
    assert remote.rollout_groups(2) == groups(records)
    assert remote.rollout_group(2, 0, 0) == group_records(records, 0, 0)


def local_remote(run, **kw) -> RemoteStore:
    kw.setdefault("max_test_chars", None)
    return RemoteStore(LocalRunner(), str(run.store_path), engine_dir=str(REPO),
                       python=sys.executable, **kw)


# ---------------------------------------------------------------------------------------------
# This computer (LocalRunner: the same command strings, run by /bin/sh)


def test_over_this_computer_every_answer_equals_the_local_store(run):
    remote = local_remote(run)
    same_answers(remote, run.store_path, run.rollouts)
    assert remote.calls == 12 and remote.last_seconds > remote.last_server_seconds > 0


def test_tests_arrive_cut_to_max_test_chars_with_their_full_size(run):
    detail = local_remote(run, max_test_chars=100).get_task(1)
    big = detail.tests[1]
    assert len(big.input) == 100 and big.meta[CUT_KEY] == {"input": 6000,
                                                           "expected_output": 3}
    assert local_remote(run, max_test_chars=None).get_task(1).tests[1].meta == {"gen": "random"}


def test_a_home_relative_store_path_is_expanded_on_the_remote_side(run, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    remote = RemoteStore(LocalRunner(), f"~/{ODD}/data/store.sqlite", engine_dir=str(REPO),
                         python=sys.executable)
    assert remote.rollout_steps() == [1, 2] and remote.reject_reasons()
    assert f"{tmp_path}/" in remote.command()


def test_a_missing_store_is_a_store_error_and_its_rollouts_still_answer(run):
    run.store_path.unlink()
    remote = local_remote(run)
    with pytest.raises(StoreError, match="no store at"):
        remote.reject_reasons()
    assert remote.rollout_steps() == [1, 2]


def test_a_missing_python_or_engine_bundle_says_what_to_set(run, tmp_path):
    bad = RemoteStore(LocalRunner(), str(run.store_path), engine_dir=str(REPO),
                      python=str(tmp_path / "no-python"))
    with pytest.raises(RemoteSetupError, match="Python .* was not found.*profile's python"):
        bad.reject_reasons()
    gone = RemoteStore(LocalRunner(), str(run.store_path), engine_dir=str(tmp_path / "nope"),
                       python=sys.executable)
    with pytest.raises(RemoteSetupError, match="no engine bundle at .*nope"):
        gone.reject_reasons()


OLD_MAIN = '''"""An engine from before `query` (its command list, argparse's own refusal)."""
import argparse

p = argparse.ArgumentParser(prog="python -m engine")
sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
for name in ("validate", "run", "merge", "status", "doctor", "verify-folder"):
    sub.add_parser(name)
p.parse_args()
'''


def test_an_engine_that_predates_query_says_to_upload_a_current_bundle(run, tmp_path):
    old = tmp_path / "old-bundle"
    (old / "engine").mkdir(parents=True)
    (old / "engine" / "__init__.py").write_text("")
    (old / "engine" / "__main__.py").write_text(OLD_MAIN)
    remote = RemoteStore(LocalRunner(), str(run.store_path), engine_dir=str(old),
                         python=sys.executable)
    with pytest.raises(RemoteSetupError, match="predates remote browsing.*engine bundle"):
        remote.query_tasks(TaskQuery())


def test_every_call_takes_the_runner_lock(run):
    lock = threading.RLock()
    remote = local_remote(run, lock=lock)
    done = threading.Event()
    t = threading.Thread(target=lambda: (remote.rollout_steps(), done.set()))
    with lock:
        t.start()
        assert not done.wait(1.0), "the call ran while another held the link's lock"
    assert done.wait(30)
    t.join()


# ---------------------------------------------------------------------------------------------
# Real SSH, the uploaded engine bundle


@pytest.fixture
def ssh_runner(ssh_env):
    r = SSHRunner("target", ssh_config=ssh_env.ssh_config, use_agent=False, retries=2,
                  backoff_s=0.01, connect_timeout=5)
    yield r
    r.close()


@pytest.mark.slow
def test_over_ssh_answers_equal_the_local_store_and_a_page_is_one_quick_command(
        run, ssh_runner, tmp_path):
    report = sync_bundle(ssh_runner, str(tmp_path / "cluster"), REPO)
    remote = RemoteStore(ssh_runner, str(run.store_path), engine_dir=report.bundle_dir,
                         python=sys.executable, max_test_chars=None, lock=threading.RLock())
    same_answers(remote, run.store_path, run.rollouts)

    times, server = [], []
    q = TaskQuery(limit=100)
    for _ in range(10):
        t0 = time.perf_counter()
        remote.query_tasks(q)
        times.append(time.perf_counter() - t0)
        server.append(remote.last_server_seconds)
    median = statistics.median(times)
    print(f"\nremote page over SSH: median {median * 1000:.0f} ms, min {min(times) * 1000:.0f} "
          f"ms, max {max(times) * 1000:.0f} ms (query itself {statistics.median(server) * 1000:.1f}"
          " ms)")
    assert median < 5.0  # python start + sqlite open + query; generous for a loaded CI box


@pytest.mark.slow
def test_over_ssh_a_missing_store_and_an_old_engine_are_told_apart(run, ssh_runner, tmp_path):
    report = sync_bundle(ssh_runner, str(tmp_path / "cluster"), REPO)
    missing = RemoteStore(ssh_runner, str(tmp_path / "nowhere" / "data" / "store.sqlite"),
                          engine_dir=report.bundle_dir, python=sys.executable)
    with pytest.raises(StoreError, match="no store at"):
        missing.query_tasks(TaskQuery())
    old = tmp_path / "old-bundle"
    (old / "engine").mkdir(parents=True)
    (old / "engine" / "__init__.py").write_text("")
    (old / "engine" / "__main__.py").write_text(OLD_MAIN)
    stale = RemoteStore(ssh_runner, str(run.store_path), engine_dir=str(old),
                        python=sys.executable)
    with pytest.raises(RemoteSetupError, match="predates remote browsing"):
        stale.reject_reasons()
