"""What a cluster sends is untrusted: fetch, relay listings and poll answers from a compromised
cluster never write outside their destination, never exhaust the desktop, and local records
and caches are private (issue 15, items 1 and 6).

Run: .venv/bin/python -m pytest tests/remote/test_untrusted_remote.py -q

The "compromised cluster" is a real sshd of its own whose ``ForceCommand`` wrapper (written
here) runs every command with a folder of fake tools first on PATH (a ``find`` that lists
hostile names, or never stops) and can answer the tail's poll command with a canned answer;
SFTP goes to the real sftp-server.
"""

from __future__ import annotations

import base64
import os
import stat
import time
from pathlib import Path

import pytest
from fixtures_ssh import start_compromised_sshd, stop_sshd

from remote.errors import LaunchError
from remote.launch import Launcher
from remote.run_registry import RunRecord, RunRegistry, Segment
from remote.runner import LocalRunner
from remote.safe_paths import (
    OutputTooLarge,
    UnsafeRemotePath,
    private_dir,
    run_capped,
    safe_join,
    safe_name,
)
from remote.stream import EventTail, LogTail

WRAPPER = """#!/bin/sh
D={dir}
case "$SSH_ORIGINAL_COMMAND" in
  *sftp-server*) exec {sftp} ;;
  *"command -v base64"*)
    if [ -f "$D/poll.answer" ]; then cat "$D/poll.answer"; exit 0; fi ;;
esac
PATH="$D/bin:$PATH"; export PATH
exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"
"""

FAKE_FIND = """#!/bin/sh
D={dir}
if [ -f "$D/find.endless" ]; then
  yes "$(cat "$D/find.endless")" | tr '\\n' '\\0'; exit 0
fi
cat "$D/find.answer"
"""


# --- a compromised cluster --------------------------------------------------------------------


@pytest.fixture(scope="module")
def evil_sshd(sshd_pair, tmp_path_factory):
    d = tmp_path_factory.mktemp("evil-sshd")
    server = start_compromised_sshd(d, sshd_pair.client_key, WRAPPER)
    find = d / "bin" / "find"
    find.write_text(FAKE_FIND.format(dir=d))
    find.chmod(0o755)
    known = d / "known_hosts"
    known.write_text(f"[127.0.0.1]:{server.port} {server.host_pub}\n")
    try:
        yield {"dir": d, "port": server.port, "known": known, "key": sshd_pair.client_key,
               "user": sshd_pair.user}
    finally:
        stop_sshd(server)


@pytest.fixture
def evil(evil_sshd):
    from remote.ssh import SSHRunner

    d = evil_sshd["dir"]
    for name in ("find.answer", "find.endless", "poll.answer"):
        (d / name).unlink(missing_ok=True)
    (d / "find.answer").write_bytes(b"")
    runner = SSHRunner("127.0.0.1", port=evil_sshd["port"], user=evil_sshd["user"],
                       identity_file=evil_sshd["key"], ssh_config=None,
                       known_hosts=evil_sshd["known"], use_agent=False, name="evil",
                       connect_timeout=10)
    try:
        yield runner, d
    finally:
        runner.close()


class _Profiles:
    def get(self, name):
        return name


def _desktop(tmp_path, runner, run_dir: Path) -> Launcher:
    registry = RunRegistry(tmp_path / "data" / "runs")
    record = RunRecord(run_id="r1", config_path="x.yaml", config_text="", created_at=0.0,
                       segments=[Segment("evil", ["seeds"], status="completed")],
                       clusters={"evil": {"run_dir": str(run_dir)}})
    registry.save(record)
    return Launcher(_Profiles(), registry, runner_factory=lambda p: runner)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


# --- fetch ------------------------------------------------------------------------------------


def test_fetch_refuses_hostile_paths_and_writes_nothing_outside_dest(evil, tmp_path):
    runner, d = evil
    run_dir = tmp_path / "cluster" / "runs" / "r1"
    (run_dir / "exports").mkdir(parents=True)
    (run_dir / "exports" / "good.jsonl").write_bytes(b"good\n")
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("# canary\n")
    (tmp_path / "x").write_text("outside\n")
    before = _tree(home)
    hostile = [f"{run_dir}/exports/../../../../home/.bashrc",
               f"{run_dir}/exports/../../.bashrc", "/etc/x", f"{run_dir}//tmp/x",
               f"{run_dir}/exports/a\nb", f"{run_dir}/exports/\x1b]0;t\x07",
               f"{run_dir}/exports/./x", f"{run_dir}/state.json",
               f"{run_dir}/exports/good.jsonl"]
    (d / "find.answer").write_bytes(b"".join(h.encode() + b"\0" for h in hostile))
    launcher = _desktop(tmp_path, runner, run_dir)
    dest = home / "dest"
    with pytest.raises(LaunchError) as err:
        launcher.fetch("r1", "exports", dest)
    msg = str(err.value)
    for why in ("'..' component", "absolute", "not under", "control character",
                "'.' component", "not one of exports"):
        assert why in msg, (why, msg)
    # The one good file arrived, privately; nothing else changed anywhere.
    assert _tree(dest) == {"exports/good.jsonl": b"good\n"}
    after = _tree(home)
    after.pop("dest/exports/good.jsonl")
    assert after == before
    assert (tmp_path / "x").read_text() == "outside\n"
    assert not Path("/tmp/x").exists() or Path("/tmp/x").stat().st_mtime < time.time() - 60
    assert stat.S_IMODE((dest / "exports" / "good.jsonl").stat().st_mode) == 0o600
    assert stat.S_IMODE((dest / "exports").stat().st_mode) == 0o700
    launcher.close()


def test_fetch_does_not_follow_a_symlink_out_of_dest(evil, tmp_path):
    runner, d = evil
    run_dir = tmp_path / "cluster" / "runs" / "r1"
    (run_dir / "exports").mkdir(parents=True)
    (run_dir / "exports" / "f.txt").write_bytes(b"payload\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "exports").symlink_to(outside)  # already there, pointing out
    (d / "find.answer").write_bytes(f"{run_dir}/exports/f.txt\0".encode())
    launcher = _desktop(tmp_path, runner, run_dir)
    with pytest.raises(LaunchError, match="symlink"):
        launcher.fetch("r1", "exports", dest)
    assert list(outside.iterdir()) == []
    launcher.close()


def test_an_endless_listing_stops_at_the_cap_with_a_clear_error(evil, tmp_path, monkeypatch):
    import resource

    import remote.artifact_copy as artifact_copy

    runner, d = evil
    run_dir = tmp_path / "cluster" / "runs" / "r1"
    (d / "find.endless").write_text(f"{run_dir}/exports/{'a' * 200}")
    monkeypatch.setattr(artifact_copy, "LIST_MAX_BYTES", 4 << 20)
    launcher = _desktop(tmp_path, runner, run_dir)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    with pytest.raises(LaunchError, match="more than 4194304 bytes"):
        launcher.fetch("r1", "exports", tmp_path / "dest")
    assert time.monotonic() - start < 30
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    assert grown_kib < 200 * 1024  # bounded: nowhere near an endless answer
    assert not (tmp_path / "dest").exists()
    launcher.close()


def test_an_endless_local_command_stops_at_the_cap():
    with pytest.raises(OutputTooLarge, match="more than"):
        run_capped(LocalRunner(), ["yes"], max_bytes=1 << 20, timeout=30, what="yes")


# --- poll answers -------------------------------------------------------------------------------


def _entry(name: str, data: bytes, start: int = 0) -> str:
    b64 = base64.encodebytes(data).decode() if data else ""
    return f"@{start} {len(data)} {start + len(data)} {name}\n{b64}"


def _event(seq: int) -> bytes:
    return (b'{"v":1,"seq":%d,"t":%d.5,"stage":"sft","rank":0,"kind":"metric","step":%d,'
            b'"data":{"sft/a":1.0}}\n' % (seq, seq, seq))


def test_poll_answers_with_bad_names_are_refused_and_the_rest_arrives(evil, tmp_path):
    runner, d = evil
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("# canary\n")
    cache = home / "cache"
    bad = ["../../../.bashrc", str(home / ".bashrc"), "../x.log", "sub/x.log", ".hidden.log",
           "other.txt", "a\x1bb.log", "x\u202e.log"]
    answer = "".join(_entry(n, b"owned\n") for n in bad)
    # A name with a newline: its second half spills into the data, the entry is garbled.
    answer += "@0 6 6 bad\nname.log\n" + base64.encodebytes(b"owned\n").decode()
    answer += _entry("good.log", b"hello\n") + "@end\n"
    (d / "poll.answer").write_text("@banner from a login script\n@begin\n" + answer)
    tail = LogTail(runner, str(tmp_path / "run"), cache)
    assert tail.poll() == {"good.log": "hello\n"}
    refused = {name for name, _ in tail.refused}
    assert set(bad) <= refused and "bad" in refused
    assert (home / ".bashrc").read_text() == "# canary\n"
    files = sorted(p.name for p in tail._files_dir.iterdir())
    assert files == ["good.log"]
    assert not (tail._files_dir.parent / "x.log").exists()
    # Events too: a hostile entry first, then a valid one that still arrives.
    (d / "poll.answer").write_text(_entry("../../evil.jsonl", _event(0))
                                   + _entry("sft.0.jsonl", _event(0)) + "@end\n")
    events = EventTail(runner, str(tmp_path / "run"), cache)
    got = events.poll()
    assert [e.seq for e in got] == [0]
    assert ("../../evil.jsonl" in {n for n, _ in events.refused})
    assert not list(home.rglob("evil.jsonl"))


def test_a_poll_answer_past_its_cap_is_a_clear_error(evil, tmp_path):
    from remote.errors import RemoteSetupError

    runner, d = evil
    (d / "poll.answer").write_text(_entry("big.log", b"x" * 50_000 + b"\n") * 40 + "@end\n")
    tail = LogTail(runner, str(tmp_path / "run"), tmp_path / "cache", read_limit=1000)
    import remote.stream as stream

    old = stream.ANSWER_SLACK
    stream.ANSWER_SLACK = 1000
    try:
        with pytest.raises(RemoteSetupError, match="more than"):
            tail.poll()
    finally:
        stream.ANSWER_SLACK = old


# --- privacy ------------------------------------------------------------------------------------


def test_records_and_caches_are_private_whatever_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        registry = RunRegistry(tmp_path / "data" / "runs")
        registry.save(RunRecord(run_id="r1", config_path="x", config_text="", created_at=0.0,
                                segments=[Segment("here", ["seeds"])]))
        run_dir = tmp_path / "run"
        (run_dir / "logs").mkdir(parents=True)
        (run_dir / "logs" / "a.log").write_text("line\n")
        tail = LogTail(LocalRunner(), str(run_dir), registry.tail_cache("r1", "here"))
        assert tail.poll() == {"a.log": "line\n"}
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(registry.dir) == 0o700
    assert mode(registry.folder("r1")) == 0o700
    assert mode(registry.folder("r1") / "record.json") == 0o600
    for p in tail.cache.rglob("*"):
        assert mode(p) == (0o700 if p.is_dir() else 0o600), p
    assert mode(tail.cache) == 0o700


# --- safe_join ----------------------------------------------------------------------------------

HOSTILE = ["", ".", "..", "../x", "a/../../x", "a/..", "/etc/passwd", "//tmp/x", "a//b", "a/./b",
           "./a", "a/", "a\nb", "a\rb", "a\0b", "a\x1b[2Jb", "a\x7fb", "a\u202eb", "a\u009bb",
           "a\\..\\b", "C:/x", "x" * 300, "a/" * 40 + "b", "é" * 200, "a\u2028b"]


@pytest.mark.parametrize("rel", HOSTILE)
def test_safe_join_refuses_hostile_names(rel, tmp_path):
    with pytest.raises(UnsafeRemotePath) as err:
        safe_join(tmp_path, rel)
    assert "refused a path from the cluster" in str(err.value) and err.value.why


@pytest.mark.parametrize("rel", ["a", "exports/x.jsonl", "données/ü.txt", "a b/c-d_e.f", "..a",
                                 "a..", ".hidden"])
def test_safe_join_keeps_plain_paths_inside(rel, tmp_path):
    got = safe_join(tmp_path, rel)
    assert got == tmp_path.joinpath(*rel.split("/"))
    assert tmp_path.resolve() in got.resolve().parents


def test_safe_join_refuses_an_existing_symlink_out(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "link").symlink_to(tmp_path)
    (dest / "inner").symlink_to(dest)  # a link that stays inside is fine
    with pytest.raises(UnsafeRemotePath, match="symlink"):
        safe_join(dest, "link/x")
    assert safe_join(dest, "inner/x") == dest / "inner" / "x"


def test_safe_name_wants_a_plain_name_of_the_kind_asked_for():
    assert safe_name("sft.0.jsonl", "*.jsonl") == "sft.0.jsonl"
    for name in ("a/b.jsonl", ".x.jsonl", "x.log", "../x.jsonl", "x\n.jsonl"):
        with pytest.raises(UnsafeRemotePath):
            safe_name(name, "*.jsonl")


def test_private_dir_is_0700_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        p = private_dir(tmp_path / "a" / "b")
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o700
    assert stat.S_IMODE(p.parent.stat().st_mode) == 0o700
