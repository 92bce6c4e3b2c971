"""remote/stream.py: live event and log tails with a durable local cache, locally and over SSH.

Run: .venv/bin/python -m pytest tests/remote/test_stream.py -q

Writers are real processes using ``engine.events.EventWriter``. The SSH variants poll through
``SSHRunner`` against the loopback sshd of fixtures_ssh.py, and the main test kills the
server side of the connection many times while events flow: at the end the tail must hold
exactly the events written, none lost, none twice.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.events import EventWriter
from remote.errors import TransientError
from remote.runner import LocalRunner
from remote.stream import EventTail, LogTail, safe_run_id


@pytest.fixture(params=["local", "ssh"])
def transport(request):
    """(runner, ssh_env or None)."""
    if request.param == "local":
        yield LocalRunner(), None
        return
    from remote.ssh import SSHRunner

    env = request.getfixturevalue("ssh_env")
    # Short backoff: the link is killed every 0.2 s in the main test.
    r = SSHRunner("target", ssh_config=env.ssh_config, known_hosts=env.known_hosts,
                  use_agent=False, backoff_s=0.05, retries=10, connect_timeout=5)
    try:
        yield r, env
    finally:
        r.close()


@pytest.fixture
def run_dir(tmp_path) -> Path:
    d = tmp_path / "runs" / "run 'one' $x"
    (d / "events").mkdir(parents=True)
    (d / "logs").mkdir()
    return d


def key(e) -> tuple[str, int]:
    return (f"{e.stage}.{e.rank}.jsonl", e.seq)


WRITER = r"""
import sys, time
from engine.events import EventWriter
events_dir, per_file, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
writers = [EventWriter.for_run(events_dir, s, r) for s, r in (("sft", 0), ("sft", 1), ("verify", 0))]
start = time.monotonic()
batch = 25
for i in range(0, per_file, batch):
    for w in writers:
        for step in range(i, min(i + batch, per_file)):
            w.metric(step, {"sft/loss": 1.0 / (step + 1), "sft/lr": 1e-5})
    # steady rate: sleep until this batch's due time
    due = start + (i + batch) * len(writers) / rate
    time.sleep(max(0.0, due - time.monotonic()))
for w in writers:
    w.close()
"""


def start_writer(run_dir: Path, per_file: int, rate: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(run_dir / "events"),
                             str(per_file), str(rate)])


def test_every_event_arrives_exactly_once_while_the_link_keeps_dropping(transport, run_dir,
                                                                         tmp_path):
    runner, env = transport
    per_file, rate = 6700, 5000.0  # 20,100 events over ~4 s in 3 files
    tail = EventTail(runner, str(run_dir), tmp_path / "cache", poll_s=0.05)
    got: list = []
    writer = start_writer(run_dir, per_file, rate)
    kills = 0

    def killer() -> None:
        nonlocal kills
        while writer.poll() is None:
            time.sleep(0.2)
            env.target.kill_sessions()
            kills += 1

    k = threading.Thread(target=killer) if env is not None else None
    if k:
        k.start()
    deadline = time.monotonic() + 120
    while (writer.poll() is None or len(got) < 3 * per_file) and time.monotonic() < deadline:
        got += tail.poll()
        time.sleep(tail.poll_s)
    assert writer.wait(timeout=30) == 0
    if k:
        k.join()
    got += tail.poll()

    print(f"kills={kills} reconnects={tail.reconnects} link_errors={tail.link_errors} "
          f"received={len(got)}")  # shown when the test fails
    keys = [key(e) for e in got]
    expected = {(f, s) for f in ("sft.0.jsonl", "sft.1.jsonl", "verify.0.jsonl")
                for s in range(per_file)}
    assert len(keys) == len(set(keys)), "duplicates"
    assert set(keys) == expected, f"missing {len(expected - set(keys))}"
    assert [key(e) for e in tail.history()] == [key(e) for e in sorted(
        got, key=lambda e: (e.t, key(e)[0], e.seq))]
    # each batch is ordered by time; history is one time line
    assert all(a.t <= b.t for a, b in zip(tail.history(), tail.history()[1:], strict=False))
    if env is not None:
        assert kills >= 15
        assert tail.reconnects > 0
    else:
        assert tail.reconnects == 0
    assert tail.offsets == {f: (run_dir / "events" / f).stat().st_size
                            for f in ("sft.0.jsonl", "sft.1.jsonl", "verify.0.jsonl")}


def test_a_torn_last_line_waits_for_the_next_poll(transport, run_dir, tmp_path):
    runner, _ = transport
    with EventWriter.for_run(run_dir / "events", "sft") as w:
        w.metric(0, {"sft/loss": 1.0})
        w.metric(1, {"sft/loss": 0.5})
    path = run_dir / "events" / "sft.0.jsonl"
    line = path.read_bytes().splitlines(keepends=True)[1]
    path.write_bytes(path.read_bytes()[: -len(line)])  # keep the first line only
    tail = EventTail(runner, str(run_dir), tmp_path / "cache")
    assert [e.seq for e in tail.poll()] == [0]
    with open(path, "ab") as fh:
        fh.write(line[:30])
    assert tail.poll() == []
    assert tail.offsets["sft.0.jsonl"] == path.stat().st_size - 30
    with open(path, "ab") as fh:
        fh.write(line[30:])
    assert [(e.seq, e.data) for e in tail.poll()] == [(1, {"sft/loss": 0.5})]
    assert tail.poll() == []


def test_a_restarted_tail_shows_history_at_once_and_continues_without_duplicates(
        transport, run_dir, tmp_path):
    runner, _ = transport
    w = EventWriter.for_run(run_dir / "events", "rl")
    for step in range(100):
        w.metric(step, {"rl/reward/mean": step / 100})
    first = EventTail(runner, str(run_dir), tmp_path / "cache")
    assert len(first.poll()) == 100
    offsets = first.offsets

    for step in range(100, 150):
        w.metric(step, {"rl/reward/mean": step / 100})
    # A reopened window: no remote call is needed to show what was there.
    second = EventTail(runner, str(run_dir), tmp_path / "cache")
    assert second.offsets == offsets
    assert [e.seq for e in second.history()] == list(range(100))
    new = second.poll()
    assert [e.seq for e in new] == list(range(100, 150))
    assert [e.seq for e in second.history()] == list(range(150))
    assert second.poll() == []
    w.close()


def test_a_crash_between_cache_append_and_offset_commit_loses_and_repeats_nothing(
        run_dir, tmp_path):
    runner = LocalRunner()
    w = EventWriter.for_run(run_dir / "events", "sft")
    for step in range(10):
        w.metric(step, {"sft/loss": 1.0})
    tail = EventTail(runner, str(run_dir), tmp_path / "cache")
    assert len(tail.poll()) == 10
    for step in range(10, 20):
        w.metric(step, {"sft/loss": 1.0})
    w.close()
    # The crash: the next lines reached the cache file, the offsets never moved.
    cache_file = tail.cache / "events" / "sft.0.jsonl"
    src = (run_dir / "events" / "sft.0.jsonl").read_bytes()
    with open(cache_file, "ab") as fh:
        fh.write(src[tail.offsets["sft.0.jsonl"]:][:-5])  # and even a torn piece
    again = EventTail(runner, str(run_dir), tmp_path / "cache")
    assert [e.seq for e in again.history()] == list(range(10))
    assert [e.seq for e in again.poll()] == list(range(10, 20))
    assert cache_file.read_bytes() == src  # the cache is the remote file, line for line


class _FlakyRunner(LocalRunner):
    """Fails the next ``fail`` commands the way a dropped link does."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = 0

    def run(self, argv, **kw):
        if self.fail:
            self.fail -= 1
            raise TransientError("this computer: the connection dropped")
        return super().run(argv, **kw)


def test_a_link_error_returns_nothing_and_the_next_poll_catches_up(run_dir, tmp_path):
    runner = _FlakyRunner()
    with EventWriter.for_run(run_dir / "events", "sft") as w:
        for step in range(5):
            w.metric(step, {"sft/loss": 1.0})
    tail = EventTail(runner, str(run_dir), tmp_path / "cache")
    runner.fail = 2
    assert tail.poll() == [] and tail.poll() == []
    assert tail.reconnects == 2 and "dropped" in tail.last_error
    assert [e.seq for e in tail.poll()] == list(range(5))


def test_drain_polls_until_one_goes_through_and_nothing_is_left(run_dir, tmp_path):
    """The last poll after a run ended: a link that drops then (three polls in a row here)
    is polled through with backoff; a file with more than one read's worth is read to the
    end; a link that stays down gives False, and what it misses comes on a later drain."""
    runner = _FlakyRunner()
    with EventWriter.for_run(run_dir / "events", "sft") as w:
        for step in range(50):
            w.metric(step, {"sft/loss": 1.0})
    tail = EventTail(runner, str(run_dir), tmp_path / "cache", poll_s=0.01, read_limit=400)
    runner.fail = 3
    got: list = []
    assert tail.drain(got.extend) is True
    assert [e.seq for e in got] == list(range(50)) and tail.link_errors == 3
    with EventWriter.for_run(run_dir / "events", "sft") as w:
        w.metric(50, {"sft/loss": 1.0})
    runner.fail = 10**6
    start = time.monotonic()
    assert tail.drain(got.extend, timeout_s=0.3) is False
    assert time.monotonic() - start < 3 and "dropped" in tail.last_error
    runner.fail = 0
    assert tail.drain(got.extend) is True
    assert [e.seq for e in got] == list(range(51))


def test_two_tails_on_one_cache_each_see_every_event(run_dir, tmp_path):
    runner = LocalRunner()
    a = EventTail(runner, str(run_dir), tmp_path / "cache")
    b = EventTail(runner, str(run_dir), tmp_path / "cache")
    w = EventWriter.for_run(run_dir / "events", "sft")
    seen_a, seen_b = [], []
    for step in range(30):
        w.metric(step, {"sft/loss": 1.0})
        (seen_a if step % 2 else seen_b).extend(e.seq for e in (a if step % 2 else b).poll())
        if step % 3 == 0:
            seen_a += [e.seq for e in a.poll()]
            seen_b += [e.seq for e in b.poll()]
    seen_a += [e.seq for e in a.poll()]
    seen_b += [e.seq for e in b.poll()]
    w.close()
    assert seen_a == list(range(30)) and seen_b == list(range(30))


def test_bad_lines_are_skipped_and_a_replaced_file_is_not_read_twice(run_dir, tmp_path):
    runner = LocalRunner()
    path = run_dir / "events" / "sft.0.jsonl"
    with EventWriter(path, "sft") as w:
        w.metric(0, {"sft/loss": 1.0})
    with open(path, "ab") as fh:
        fh.write(b'{"not": "an event"}\n\n')
    with EventWriter(path, "sft") as w:
        w.metric(1, {"sft/loss": 1.0})
    tail = EventTail(runner, str(run_dir), tmp_path / "cache")
    assert [e.seq for e in tail.poll()] == [0, 1]
    assert tail.bad_lines == 1
    # Replaced by a shorter copy (seq 0, then a rewritten seq 1): read again from 0, and seq
    # drops what was seen.
    lines = [ln for ln in path.read_bytes().splitlines(keepends=True) if b'"seq"' in ln]
    path.write_bytes(lines[0])
    w = EventWriter(path, "sft")
    w.metric(1, {"sft/loss": 2.0})
    assert path.stat().st_size < tail.offsets["sft.0.jsonl"]
    assert tail.poll() == []
    w.metric(2, {"sft/loss": 1.0})
    w.close()
    assert [e.seq for e in tail.poll()] == [2]


def test_follow_delivers_batches_until_stopped(run_dir, tmp_path):
    tail = EventTail(LocalRunner(), str(run_dir), tmp_path / "cache", poll_s=0.02)
    batches: list[list] = []
    with EventWriter.for_run(run_dir / "events", "sft") as w:
        for step in range(7):
            w.metric(step, {"sft/loss": 1.0})
    deadline = time.monotonic() + 10
    tail.follow(lambda: sum(map(len, batches)) >= 7 or time.monotonic() > deadline,
                batches.append)
    assert [e.seq for b in batches for e in b] == list(range(7))


def test_a_missing_run_dir_is_empty_not_an_error(transport, tmp_path):
    runner, _ = transport
    tail = EventTail(runner, str(tmp_path / "not yet"), tmp_path / "cache")
    assert tail.poll() == [] and tail.reconnects == 0 and tail.offsets == {}


def test_cache_folders_are_per_cluster_and_run(tmp_path):
    a = safe_run_id("cluster-a", "~/runs/smoke 1")
    assert a.startswith("smoke_1-") and a != safe_run_id("cluster-b", "~/runs/smoke 1")
    assert "/" not in safe_run_id("x", "/a/../../b")


# --- logs ------------------------------------------------------------------------------------


def test_log_tail_takes_complete_lines_and_keeps_history(transport, run_dir, tmp_path):
    runner, _ = transport
    log = run_dir / "logs" / "sft.0.log"
    log.write_bytes(b"step 1\nprogress 10%\rprogress 20%\rhalf a li")
    tail = LogTail(runner, str(run_dir), tmp_path / "cache")
    assert tail.poll() == {"sft.0.log": "step 1\nprogress 10%\rprogress 20%\r"}
    with open(log, "ab") as fh:
        fh.write(b"ne \xff\xfe\n")
    assert tail.poll() == {"sft.0.log": "half a line \ufffd\ufffd\n"}
    assert tail.poll() == {}
    again = LogTail(runner, str(run_dir), tmp_path / "cache")
    assert again.history() == {"sft.0.log": "step 1\nprogress 10%\rprogress 20%\r"
                                             "half a line \ufffd\ufffd\n"}
    assert json.loads((tail.cache / "logs.offsets.json").read_text())["files"]["sft.0.log"][
        "offset"] == log.stat().st_size
