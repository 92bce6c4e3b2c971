"""The persistent response cache, alone and behind the HTTP client.

    .venv/bin/python -m pytest tests/engine/test_llm_cache.py -q

The kill test runs a batch in a subprocess, SIGKILLs it while the scripted server is still
answering, reruns, and checks from the server's request log that no completed call was sent
again and that the results equal an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.llm import (
    CACHE_FILE,
    ChatRequest,
    ChatResult,
    ResponseCache,
    Usage,
    cache_key,
    make_client,
    run_batch,
)
from engine.schema import OpenAIEndpoint

REPO = Path(__file__).resolve().parents[2]
FAST = {"backoff_base_s": 0.01, "backoff_cap_s": 0.05}


def ask(text: str, **kw) -> ChatRequest:
    return ChatRequest(messages=({"role": "user", "content": text},), max_tokens=64, **kw)


def client_for(stub, cache_dir, **kw):
    ep = OpenAIEndpoint(base_url=stub.url, model="stub-model", timeout_s=5.0, **kw)
    return make_client(ep, cache_dir=cache_dir, **FAST)


# --- the key


def test_the_key_covers_backend_model_messages_params_and_sample_index():
    base = ask("hi", temperature=0.7, top_p=0.9, seed=1)
    k = cache_key("openai", "m", base)
    variants = [
        cache_key("vllm", "m", base),
        cache_key("openai", "m2", base),
        cache_key("openai", "m", ask("hi!", temperature=0.7, top_p=0.9, seed=1)),
        cache_key("openai", "m", ask("hi", temperature=0.6, top_p=0.9, seed=1)),
        cache_key("openai", "m", ask("hi", temperature=0.7, top_p=0.8, seed=1)),
        cache_key("openai", "m", ask("hi", temperature=0.7, top_p=0.9, seed=2)),
        cache_key("openai", "m", ask("hi", temperature=0.7, top_p=0.9, seed=1, stop=("x",))),
        cache_key("openai", "m", ask("hi", temperature=0.7, top_p=0.9, seed=1, sample_index=1)),
    ]
    assert len({k, *variants}) == len(variants) + 1
    # The tag is the caller's label, not part of what decides the answer.
    assert cache_key("openai", "m", ask("hi", temperature=0.7, top_p=0.9, seed=1,
                                        tag="task-3")) == k


# --- the file


def test_a_put_is_visible_to_another_connection_at_once(tmp_path):
    with ResponseCache(tmp_path / CACHE_FILE) as cache:
        cache.put("k1", "openai", "m", ChatResult(text="t", usage=Usage(3, 4)))
        rows = sqlite3.connect(tmp_path / CACHE_FILE).execute(
            "SELECT text, prompt_tokens, completion_tokens FROM responses").fetchall()
    assert rows == [("t", 3, 4)]


def test_failures_are_never_cached(tmp_path):
    with ResponseCache(tmp_path / CACHE_FILE) as cache, pytest.raises(ValueError):
        cache.put("k", "openai", "m", ChatResult(error="timeout", finish_reason="error"))


def test_wal_on_a_local_disk_and_the_rollback_journal_when_asked(tmp_path):
    with ResponseCache(tmp_path / "a.sqlite") as local:
        assert local.journal_mode == "wal"
    with ResponseCache(tmp_path / "b.sqlite", journal="delete") as nfs_like:
        assert nfs_like.journal_mode == "delete"
        mode = nfs_like._conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "delete"


def test_the_network_fs_fallback_uses_the_stores_detection(tmp_path, monkeypatch):
    import engine.llm.cache as cache_mod

    monkeypatch.setattr(cache_mod, "mount_fstype", lambda path: "nfs4")
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        assert cache.journal_mode == "delete"


# --- behind the client


def test_a_second_run_makes_no_http_calls_and_returns_identical_texts(openai_stub, tmp_path):
    reqs = [ask(f"task {i}") for i in range(6)] + [ask("long [[stub truncate]]")]
    first = run_batch(client_for(openai_stub, tmp_path), reqs)
    sent = len(openai_stub.chat_requests())
    client = client_for(openai_stub, tmp_path)
    second = run_batch(client, reqs)
    assert len(openai_stub.chat_requests()) == sent == 7
    assert [r.text for r in second] == [r.text for r in first]
    assert [r.finish_reason for r in second] == [r.finish_reason for r in first]
    assert [r.usage for r in second] == [r.usage for r in first]
    assert all(r.cached and r.attempts == 0 for r in second)
    assert client.stats.cache_hits == 7 and client.stats.calls == 0


def test_each_sample_index_is_its_own_entry(openai_stub, tmp_path):
    reqs = ask("solve it", temperature=0.6, seed=5).with_samples(4)
    first = run_batch(client_for(openai_stub, tmp_path), reqs)
    assert len({r.text for r in first}) == 4  # seeds 5..8 give four different samples
    assert len(ResponseCache.in_dir(tmp_path)) == 4
    run_batch(client_for(openai_stub, tmp_path), reqs)
    assert len(openai_stub.chat_requests()) == 4


def test_failed_calls_are_retried_on_the_next_run(openai_stub, tmp_path):
    reqs = [ask("fine"), ask("bad [[stub status=400]]")]
    run_batch(client_for(openai_stub, tmp_path), reqs)
    again = run_batch(client_for(openai_stub, tmp_path), reqs)
    assert [r.cached for r in again] == [True, False]
    sent = [r.last_user for r in openai_stub.chat_requests()]
    assert sent.count(reqs[1].messages[0]["content"]) == 2


def test_the_cache_file_holds_no_request_and_no_key(openai_stub, tmp_path, monkeypatch):
    monkeypatch.setenv("STUB_API_KEY", "sk-cache-test-0123456789abcdef")
    client = client_for(openai_stub, tmp_path, api_key_env="STUB_API_KEY")
    run_batch(client, [ask("a very distinctive prompt string")])
    client.close()
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"sk-cache-test" not in blob and b"distinctive prompt" not in blob


# --- killed and rerun

CHILD = r"""
import json, sys
from engine.llm import ChatRequest, make_client, run_batch
from engine.schema import OpenAIEndpoint

url, cache_dir, out = sys.argv[1:4]
ep = OpenAIEndpoint(base_url=url, model="stub-model", max_concurrency=3, timeout_s=30)
client = make_client(ep, cache_dir=cache_dir)
reqs = [ChatRequest(messages=({"role": "user", "content": f"task {i} [[stub delay=0.25]]"},),
                    temperature=0.7, seed=11) for i in range(18)]
results = run_batch(client, reqs)
json.dump([r.text for r in results], open(out, "w"))
"""


def _run_child(url: str, cache_dir: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", CHILD, url, str(cache_dir), str(out)],
                            env=env, cwd=REPO)


def _cached_rows(cache_dir: Path) -> int:
    path = cache_dir / CACHE_FILE
    if not path.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute("SELECT count(*) FROM responses").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:  # the child is still creating the table
        return 0


@pytest.mark.slow
def test_a_killed_batch_rerun_repeats_no_completed_call_and_matches_a_clean_run(
        openai_stub, tmp_path):
    killed_dir, clean_dir = tmp_path / "killed", tmp_path / "clean"
    child = _run_child(openai_stub.url, killed_dir, tmp_path / "never.json")
    deadline = time.monotonic() + 60
    while _cached_rows(killed_dir) < 6 and time.monotonic() < deadline:
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    done_before = _cached_rows(killed_dir)
    assert 6 <= done_before < 18, "the kill must land mid-batch"

    with ResponseCache.in_dir(killed_dir) as cache:
        keys_before = set(cache.get_many([cache_key(
            "openai", "stub-model",
            ChatRequest(messages=({"role": "user", "content": f"task {i} [[stub delay=0.25]]"},),
                        temperature=0.7, seed=11)) for i in range(18)]))
    assert len(keys_before) == done_before
    log_before = len(openai_stub.chat_requests())

    rerun = _run_child(openai_stub.url, killed_dir, tmp_path / "rerun.json")
    assert rerun.wait(timeout=120) == 0
    resent = openai_stub.chat_requests()[log_before:]
    assert len(resent) == 18 - done_before  # only what had not completed
    resent_keys = {cache_key("openai", "stub-model", ChatRequest(
        messages=tuple(r.body["messages"]), temperature=r.body["temperature"],
        seed=r.body["seed"])) for r in resent}
    assert not resent_keys & keys_before

    clean = _run_child(openai_stub.url, clean_dir, tmp_path / "clean.json")
    assert clean.wait(timeout=120) == 0
    rerun_texts = json.loads((tmp_path / "rerun.json").read_text())
    assert rerun_texts == json.loads((tmp_path / "clean.json").read_text())
