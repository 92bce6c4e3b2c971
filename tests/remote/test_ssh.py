"""SSHRunner against real OpenSSH servers on loopback (fixtures_ssh.py): commands, files, jump
hosts, host keys, auth, classification of connect failures, reconnect and keepalive.

The servers run as this user on this machine, so a test checks remote effects straight on
the local file system (markers, inodes) rather than trusting the runner to report them.
"""

from __future__ import annotations

import os
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest
from fixtures_ssh import free_port, keygen, keygen_fingerprint

from remote import hostkeys
from remote.errors import (
    AuthError,
    CommandInterrupted,
    CommandTimeout,
    HostKeyChanged,
    HostKeyUnknown,
    HostUnreachable,
    TransientError,
)
from remote.runner import CommandRunner
from remote.ssh import SSHRunner, accept_host_key


def runner(ssh_env, host: str = "target", **kw) -> SSHRunner:
    kw.setdefault("ssh_config", ssh_env.ssh_config)
    kw.setdefault("retries", 2)
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("use_agent", False)
    kw.setdefault("connect_timeout", 5)
    return SSHRunner(host, **kw)


@pytest.fixture
def target(ssh_env):
    r = runner(ssh_env)
    yield r
    r.close()


def count_connect_attempts(r: SSHRunner, monkeypatch) -> list[int]:
    calls = [0]
    real = r._connect_once

    def counting() -> None:
        calls[0] += 1
        real()

    monkeypatch.setattr(r, "_connect_once", counting)
    return calls


# -- commands ----------------------------------------------------------------------------

def test_run_exit_code_stdout_stderr(target):
    assert isinstance(target, CommandRunner)
    res = target.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (res.returncode, res.stdout, res.stderr) == (3, "out\n", "err\n")
    assert res.where == "target" and res.command == "sh -c 'echo out; echo err >&2; exit 3'"
    assert target.run(["true"]).ok


def test_large_interleaved_output_does_not_deadlock(target):
    # 4 MB on each stream, interleaved: a reader that drains only stdout first would stall
    # the command on a full stderr window.
    script = ("import sys\nfor i in range(64):\n    sys.stdout.write('o' * 65536)\n"
              "    sys.stderr.write('e' * 65536)\n")
    res = target.run(["python3", "-c", script], timeout=60)
    assert res.returncode == 0
    assert len(res.stdout) == 64 * 65536 == len(res.stderr)
    assert set(res.stdout) == {"o"} and set(res.stderr) == {"e"}


def test_env_cwd_and_input(target, tmp_path):
    folder = tmp_path / "work dir"
    folder.mkdir()
    res = target.run(["sh", "-c", 'pwd; printf "%s" "$GREETING"'], cwd=folder,
                     env={"GREETING": "hello world"})
    assert res.stdout == f"{folder}\nhello world"
    big = "line ü\n" * 50_000  # bigger than one SSH window each way
    res = target.run(["cat"], input=big, timeout=30)
    assert res.stdout == big
    # Without input the command still gets EOF on stdin instead of hanging.
    assert target.run(["cat"], timeout=10).stdout == ""


def test_timeout_raises_command_timeout_and_keeps_the_connection(target):
    target.connect()
    start = time.monotonic()
    with pytest.raises(CommandTimeout, match="did not finish within 0.5 s"):
        target.run(["sleep", "5"], timeout=0.5)
    assert time.monotonic() - start < 3
    assert target.run(["true"]).ok and target.connections == 1  # not retried, not dropped


# -- files -------------------------------------------------------------------------------

def test_files_round_trip(target, tmp_path):
    base = tmp_path / "files"
    dest = f"{base}/a b/c'd/x.txt"
    target.put_bytes(b"first", dest)
    inode = os.stat(dest).st_ino
    target.put_bytes(b"second\n", dest, mode=0o600)
    # A new inode and no temp left: written aside, then renamed over the old file.
    assert os.stat(dest).st_ino != inode
    assert Path(dest).read_bytes() == b"second\n"
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    assert target.listdir(f"{base}/a b/c'd") == ["x.txt"]

    data = bytes(range(256)) * 4096  # 1 MiB: the prefetching read path
    local = tmp_path / "local.bin"
    local.write_bytes(data)
    local.chmod(0o750)
    target.put_file(local, f"{base}/up.bin")
    assert stat.S_IMODE(os.stat(f"{base}/up.bin").st_mode) == 0o750
    target.put_file(local, f"{base}/up2.bin", mode=0o640)
    assert stat.S_IMODE(os.stat(f"{base}/up2.bin").st_mode) == 0o640
    target.get_file(f"{base}/up.bin", tmp_path / "back" / "down.bin")
    assert (tmp_path / "back" / "down.bin").read_bytes() == data
    assert sorted(os.listdir(tmp_path / "back")) == ["down.bin"]

    assert target.read_bytes(f"{base}/up.bin") == data
    assert target.read_bytes(f"{base}/up.bin", offset=1000) == data[1000:]
    assert target.read_bytes(f"{base}/up.bin", offset=1000, length=10) == data[1000:1010]
    assert target.read_bytes(f"{base}/up.bin", offset=len(data) + 5) == b""
    assert target.read_bytes(f"{base}/up.bin", offset=0, length=0) == b""
    with pytest.raises(FileNotFoundError):
        target.read_bytes(f"{base}/missing")
    with pytest.raises(FileNotFoundError):
        target.get_file(f"{base}/missing", tmp_path / "nope")
    assert target.size(f"{base}/up.bin") == len(data)
    assert target.size(f"{base}/missing") is None
    assert target.listdir(f"{base}/missing") == []
    assert target.listdir(base) == ["a b", "up.bin", "up2.bin"]


def test_home_paths(target, tmp_path):
    home = target.home()
    assert home == os.path.expanduser("~")  # the servers log in as this user
    sub = f".cache/synthsmith-test-{os.getpid()}-{time.monotonic_ns()}"
    try:
        target.makedirs(f"~/{sub}/a b/deep")
        assert os.path.isdir(f"{home}/{sub}/a b/deep")
        target.makedirs(f"~/{sub}/a b/deep")  # exists: fine
        target.put_bytes(b"x", f"~/{sub}/f.txt")
        assert target.size(f"~/{sub}/f.txt") == 1
        assert target.listdir(f"~/{sub}") == ["a b", "f.txt"]
    finally:
        subprocess.run(["rm", "-rf", f"{home}/{sub}"], check=True)


# -- jump hosts ---------------------------------------------------------------------------

def _goes_through_jump(r: SSHRunner, ssh_env) -> None:
    assert r.run(["true"]).ok
    assert ssh_env.jump.session_pids(), "the jump host carries no connection"
    # Cutting the jump host cuts the target connection: proof the link runs through it.
    ssh_env.jump.kill_sessions()
    deadline = time.monotonic() + 5
    while r.is_connected() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not r.is_connected()
    assert r.run(["echo", "back"]).stdout == "back\n"  # reconnects through the jump again
    assert r.reconnects == 1


def test_jump_host_via_config_alias(ssh_env):
    r = runner(ssh_env, "via-jump")
    assert [h.alias for h in r.jumps] == ["jumpbox"] and r.jumps[0].port == ssh_env.jump.port
    try:
        _goes_through_jump(r, ssh_env)
    finally:
        r.close()


def test_jump_host_via_argument_without_config(ssh_env):
    t, j, pair = ssh_env.target, ssh_env.jump, ssh_env.pair
    r = SSHRunner(t.host, port=t.port, user=pair.user, identity_file=pair.client_key,
                  jump=[f"{pair.user}@{j.host}:{j.port}"], ssh_config=None,
                  known_hosts=ssh_env.known_hosts, use_agent=False, backoff_s=0.01)
    try:
        _goes_through_jump(r, ssh_env)
    finally:
        r.close()


# -- host keys ---------------------------------------------------------------------------

def test_unknown_host_key_then_accept(ssh_env, tmp_path):
    t = ssh_env.target
    known = tmp_path / "ssh" / "known_hosts"  # neither file nor folder exists yet
    r = runner(ssh_env, known_hosts=known)
    with pytest.raises(HostKeyUnknown) as info:
        r.connect()
    e = info.value
    expected = keygen_fingerprint(t.dir / "hostkey.pub")
    assert (e.host, e.port, e.key_type, e.fingerprint) == (t.host, t.port, "ssh-ed25519",
                                                           expected)
    assert expected in str(e) and f"[127.0.0.1]:{t.port}" in str(e)
    assert hostkeys.fingerprint(hostkeys.scan(t.host, t.port, 5)) == expected

    line = accept_host_key(r.known_hosts_file, e.host, e.port, e.key)
    assert line == f"[127.0.0.1]:{t.port} {t.host_pub}\n"
    assert stat.S_IMODE(known.stat().st_mode) == 0o600
    # OpenSSH itself finds the entry we wrote.
    found = subprocess.run(["ssh-keygen", "-F", f"[127.0.0.1]:{t.port}", "-f", str(known)],
                           capture_output=True, text=True)
    assert found.returncode == 0 and t.host_pub in found.stdout
    assert r.run(["echo", "ok"]).stdout == "ok\n"


def test_hashed_known_hosts_entry(ssh_env, tmp_path):
    t = ssh_env.target
    known = tmp_path / "hashed"
    accept_host_key(known, t.host, t.port, hostkeys.scan(t.host, t.port, 5), hash_name=True)
    assert known.read_text().startswith("|1|")
    r = runner(ssh_env, known_hosts=known)
    assert r.run(["true"]).ok
    r.close()


def test_unknown_jump_host_key(ssh_env, tmp_path):
    known = tmp_path / "known"  # knows the target only: the jump host must be refused
    known.write_text(f"[127.0.0.1]:{ssh_env.target.port} {ssh_env.target.host_pub}\n")
    with pytest.raises(HostKeyUnknown) as info:
        runner(ssh_env, "via-jump", known_hosts=known).connect()
    assert info.value.port == ssh_env.jump.port
    assert info.value.fingerprint == keygen_fingerprint(ssh_env.jump.dir / "hostkey.pub")


@pytest.mark.parametrize("key_type", ["ed25519", "ecdsa"])
def test_changed_host_key_refused_and_nothing_runs(ssh_env, tmp_path, key_type):
    t = ssh_env.target
    other = keygen(tmp_path / "otherhost", key_type)
    other_pub = " ".join((tmp_path / "otherhost.pub").read_text().split()[:2])
    ssh_env.known_hosts.write_text(f"[127.0.0.1]:{t.port} {other_pub}\n")
    assert other.exists()
    marker = tmp_path / "marker"
    accepted_before = t.log().count("Accepted publickey")
    r = runner(ssh_env)
    attempts = count_connect_attempts(r, pytest.MonkeyPatch())
    with pytest.raises(HostKeyChanged) as info:
        r.run(["touch", marker])
    assert info.value.fingerprint == keygen_fingerprint(t.dir / "hostkey.pub")
    assert "ssh-keygen -R" in str(info.value) and str(ssh_env.known_hosts) in str(info.value)
    assert not marker.exists() and attempts[0] == 1  # never retried
    assert t.log().count("Accepted publickey") == accepted_before  # no login even


# -- auth and connect failures -----------------------------------------------------------

def test_wrong_key_is_auth_error_not_retried(ssh_env, tmp_path):
    stranger = keygen(tmp_path / "stranger")
    r = runner(ssh_env, identity_file=stranger, backoff_s=2.0)
    start = time.monotonic()
    with pytest.raises(AuthError) as info:
        r.connect()
    assert time.monotonic() - start < 2.0  # one backoff would already take longer
    text = str(info.value)
    assert str(stranger) in text and "authorized_keys" in text
    assert f"127.0.0.1:{ssh_env.target.port}" in text and "agent was not used" in text


def test_missing_identity_file(ssh_env, tmp_path):
    with pytest.raises(AuthError, match="does not exist") as info:
        runner(ssh_env, identity_file=tmp_path / "no_such_key")
    assert str(tmp_path / "no_such_key") in str(info.value)


def test_closed_port_is_transient_after_retries(ssh_env, monkeypatch):
    port = free_port()
    r = runner(ssh_env, "127.0.0.1", port=port, retries=2, backoff_s=0.01)
    attempts = count_connect_attempts(r, monkeypatch)
    with pytest.raises(TransientError) as info:
        r.run(["true"])
    assert attempts[0] == 3
    assert f"port {port} refused" in str(info.value) and "gave up after 3" in str(info.value)


def test_unknown_host_name_is_unreachable_not_retried(ssh_env, monkeypatch):
    r = runner(ssh_env, "nonexistent.invalid", backoff_s=2.0)
    attempts = count_connect_attempts(r, monkeypatch)
    with pytest.raises(HostUnreachable, match="no such host.*HostName"):
        r.connect()
    assert attempts[0] == 1


# -- dropped connections -----------------------------------------------------------------

def test_reads_reconnect_by_themselves(target, ssh_env, tmp_path):
    (tmp_path / "run").mkdir()
    f = tmp_path / "run" / "events.jsonl"
    f.write_bytes(b"0123456789")
    assert target.size(f) == 10
    for op in (lambda: target.size(f), lambda: target.read_bytes(f, offset=4),
               lambda: target.listdir(tmp_path / "run"), lambda: target.home()):
        assert ssh_env.target.kill_sessions() >= 1
        assert op() in (10, b"456789", ["events.jsonl"], os.path.expanduser("~"))
    assert target.reconnects == 4 and target.connections == 5


# paramiko's prefetch thread dies with EOFError on the dropped link (its own thread, which it
# does not catch); the read itself is what this test is about.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_drop_during_a_read_is_retried(target, ssh_env, tmp_path):
    # A read in flight when the link dies: the wrapper reconnects and reads again.
    data = os.urandom(48 << 20)
    f = tmp_path / "big.bin"
    f.write_bytes(data)
    target.connect()
    killer = threading.Timer(0.05, ssh_env.target.kill_sessions)
    killer.start()
    try:
        assert target.read_bytes(f) == data
    finally:
        killer.join()
    assert target.reconnects == 1


def test_drop_during_run_is_not_retried(target, ssh_env, tmp_path):
    """Decision: a command cut off mid-run raises CommandInterrupted and is not re-run (it may
    have had effects); the next operation reconnects by itself."""
    counter = tmp_path / "ran"
    target.connect()
    killer = threading.Timer(0.5, ssh_env.target.kill_sessions)
    killer.start()
    with pytest.raises(CommandInterrupted, match="not retried"):
        target.run(["sh", "-c", f"echo x >> '{counter}'; sleep 3"])
    killer.join()
    time.sleep(0.3)
    assert counter.read_text() == "x\n"  # ran exactly once
    assert target.run(["true"]).ok and target.reconnects == 1


def test_drop_during_an_idempotent_run_is_retried(target, ssh_env, tmp_path):
    """A read-only command (idempotent=True: a status probe, a poll) cut off mid-run is run
    again on a new connection and answers; the count file shows it really ran twice."""
    counter = tmp_path / "ran"
    target.connect()
    killer = threading.Timer(0.5, ssh_env.target.kill_sessions)
    killer.start()
    # first run: sleeps, and the link dies under it; second run: answers at once
    script = (f"echo x >> '{counter}'; [ \"$(wc -l < '{counter}')\" -gt 1 ] && "
              "echo answered && exit 0; sleep 3")
    result = target.run(["sh", "-c", script], idempotent=True)
    killer.join()
    assert result.ok and result.stdout == "answered\n"
    assert counter.read_text() == "x\nx\n" and target.reconnects == 1


def test_idempotent_run_gives_up_as_transient_not_as_may_have_run(ssh_env, tmp_path):
    # Every attempt is cut while it runs: after the retries it is a plain TransientError (a
    # dead link), not the "may have run in part" of a command with effects.
    r = runner(ssh_env, retries=2)
    stop = threading.Event()

    def keep_killing() -> None:
        while not stop.wait(0.3):
            ssh_env.target.kill_sessions()

    killer = threading.Thread(target=keep_killing)
    killer.start()
    try:
        with pytest.raises(TransientError) as info:
            r.run(["sleep", "5"], idempotent=True)
    finally:
        stop.set()
        killer.join()
        r.close()
    assert not isinstance(info.value, CommandInterrupted)
    assert "gave up after 3 attempts" in str(info.value)
    assert "may have run in part" not in str(info.value)


@pytest.fixture
def proxied(ssh_env, tmp_path):
    """(LinkProxy in front of the target sshd, known_hosts naming the proxy's port)."""
    from link_proxy import LinkProxy

    proxy = LinkProxy(ssh_env.target.port)
    known = tmp_path / "proxy_known_hosts"
    known.write_text(f"[127.0.0.1]:{proxy.port} {ssh_env.target.host_pub}\n")
    yield proxy, known
    proxy.close()


def proxied_runner(ssh_env, proxied, **kw) -> SSHRunner:
    proxy, known = proxied
    return runner(ssh_env, "127.0.0.1", port=proxy.port, ssh_config=None, known_hosts=known,
                  user=ssh_env.pair.user, identity_file=ssh_env.pair.client_key, **kw)


def test_a_link_cut_during_authentication_is_transient_not_a_refused_key(ssh_env, proxied):
    """paramiko reports a transport that died while it waited for the login verdict as
    AuthenticationException; that is a dead link (retried), never "refused every key"."""
    import paramiko

    proxy, _ = proxied
    proxy.cut_during_auth()
    r = proxied_runner(ssh_env, proxied, retries=0)
    with pytest.raises(TransientError) as info:
        r.connect()
    assert proxy.auth_cuts == 1
    causes, e = [], info.value
    while e is not None:
        causes.append(e)
        e = e.__cause__
    assert any(isinstance(c, paramiko.AuthenticationException) for c in causes)  # the trap
    text = str(info.value)
    assert "during authentication" in text and "no key was refused" in text
    assert "refused every key" not in text and "authorized_keys" not in text
    # With retries, the same cut is ridden out: the next login goes through.
    proxy.cut_during_auth()
    r = proxied_runner(ssh_env, proxied, retries=2)
    assert r.run(["echo", "in"]).stdout == "in\n"
    assert proxy.auth_cuts == 2 and proxy.connections == 3  # cut, then cut + through
    r.close()


def test_no_answer_to_the_login_is_transient_not_a_refused_key(ssh_env, proxied):
    # The link goes silent after the handshake: paramiko's "Authentication timeout."
    proxy, _ = proxied
    proxy.hold_logins = True
    r = proxied_runner(ssh_env, proxied, retries=0, connect_timeout=1)
    with pytest.raises(TransientError) as info:
        r.connect()
    assert "did not answer the login within 1 s" in str(info.value)
    assert "refused every key" not in str(info.value)


def test_a_server_that_hangs_up_on_too_many_keys_is_an_auth_error(ssh_env, tmp_path):
    """sshd ends the login with a DISCONNECT after MaxAuthTries (6) refused keys; paramiko
    then says "No existing session" for the next key, which reads like a dead link. The
    server's own reason makes it an AuthError, not retried."""
    keys = [keygen(tmp_path / f"stranger{i}") for i in range(7)]
    cfg = tmp_path / "ssh_config"
    t = ssh_env.target
    cfg.write_text(f"Host many\n  HostName 127.0.0.1\n  Port {t.port}\n"
                   f"  User {ssh_env.pair.user}\n"
                   + "".join(f"  IdentityFile {k}\n" for k in keys)
                   + f"  UserKnownHostsFile {ssh_env.known_hosts}\n")
    r = runner(ssh_env, "many", ssh_config=cfg, backoff_s=2.0)
    start = time.monotonic()
    with pytest.raises(AuthError) as info:
        r.connect()
    assert time.monotonic() - start < 2.0  # not retried
    assert "Too many authentication failures" in str(info.value)
    assert "IdentityFile" in str(info.value)


def test_keepalive_is_sent(ssh_env, monkeypatch):
    r = runner(ssh_env, keepalive_s=1)
    r.connect()
    sent: list[str] = []
    transport = r._transport
    real = transport.global_request
    monkeypatch.setattr(transport, "global_request",
                        lambda kind, *a, **kw: (sent.append(kind), real(kind, *a, **kw))[1])
    time.sleep(1.6)
    r.close()
    assert "keepalive@lag.net" in sent
