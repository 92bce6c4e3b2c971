"""``remote.errors.classify``, pinned by exceptions that real sshd, paramiko and the OS raise
here (no hand-written exception strings): each case provokes the failure, then checks the
class, that it says host:port, and that it names the fix."""

from __future__ import annotations

import socket

import paramiko
from fixtures_ssh import free_port, keygen

from remote import hostkeys
from remote.errors import (
    AuthError,
    CommandFailed,
    HostKeyChanged,
    HostUnreachable,
    RemoteError,
    TransientError,
    classify,
    is_file_error,
)
from remote.runner import LocalRunner


def raised(fn) -> BaseException:
    try:
        fn()
    except BaseException as exc:  # noqa: B036 - the exception is the thing under test
        return exc
    raise AssertionError("nothing was raised")


def client(known: paramiko.HostKeys | None = None) -> paramiko.SSHClient:
    c = paramiko.SSHClient()
    if known is not None:
        for name, keys in known.items():
            for key_type, key in keys.items():
                c.get_host_keys().add(name, key_type, key)
    c.set_missing_host_key_policy(paramiko.RejectPolicy())
    return c


def seeded(ssh_env) -> paramiko.HostKeys:
    return hostkeys.load([ssh_env.known_hosts])


def test_closed_port_is_transient():
    port = free_port()
    exc = raised(lambda: client().connect("127.0.0.1", port=port, timeout=2))
    assert isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError)
    err = classify(exc, f"127.0.0.1:{port}")
    assert type(err) is TransientError and err.transient
    assert f"port {port} refused" in str(err) and "rebooting" in str(err)
    plain = raised(lambda: socket.create_connection(("127.0.0.1", port), timeout=2))
    assert isinstance(plain, ConnectionRefusedError)
    assert type(classify(plain, f"127.0.0.1:{port}")) is TransientError


def test_unknown_host_name_is_unreachable():
    exc = raised(lambda: client().connect("nonexistent.invalid", port=22, timeout=2))
    assert isinstance(exc, socket.gaierror)
    err = classify(exc, "nonexistent.invalid:22")
    assert type(err) is HostUnreachable and not err.transient
    assert "nonexistent.invalid:22: no such host" in str(err) and "HostName" in str(err)


def test_refused_key_is_auth_error(ssh_env, tmp_path):
    stranger = keygen(tmp_path / "stranger")
    t = ssh_env.target
    exc = raised(lambda: client(seeded(ssh_env)).connect(
        t.host, port=t.port, username=ssh_env.pair.user, key_filename=str(stranger),
        allow_agent=False, look_for_keys=False, timeout=5))
    assert isinstance(exc, paramiko.AuthenticationException)
    err = classify(exc, f"{t.host}:{t.port}", key_files=[str(stranger)], agent_keys=0)
    assert type(err) is AuthError and not err.transient
    text = str(err)
    assert str(stranger) in text and "agent offered 0 key(s)" in text
    assert "authorized_keys" in text and f"{t.host}:{t.port}" in text


def test_passphrase_key_says_use_the_agent(ssh_env, tmp_path):
    locked = keygen(tmp_path / "locked", passphrase="secret words")
    t = ssh_env.target
    exc = raised(lambda: client(seeded(ssh_env)).connect(
        t.host, port=t.port, username=ssh_env.pair.user, key_filename=str(locked),
        allow_agent=False, look_for_keys=False, timeout=5))
    err = classify(exc, f"{t.host}:{t.port}")
    assert type(err) is AuthError and "ssh-add" in str(err)
    assert "secret words" not in str(err)


def test_changed_host_key(ssh_env, tmp_path):
    t = ssh_env.target
    other = keygen(tmp_path / "other")
    wrong = paramiko.HostKeys()
    wrong.add(f"[{t.host}]:{t.port}", "ssh-ed25519", paramiko.Ed25519Key.from_private_key_file(
        str(other)))
    exc = raised(lambda: client(wrong).connect(
        t.host, port=t.port, username=ssh_env.pair.user, key_filename=str(ssh_env.pair.client_key),
        allow_agent=False, look_for_keys=False, timeout=5))
    assert isinstance(exc, paramiko.BadHostKeyException)
    err = classify(exc, f"{t.host}:{t.port}", known_file="/x/known_hosts")
    assert type(err) is HostKeyChanged and err.port == t.port
    assert err.fingerprint == hostkeys.fingerprint(hostkeys.scan(t.host, t.port, 5))
    assert "ssh-keygen -R" in str(err) and "/x/known_hosts" in str(err)


def test_silent_port_is_transient_timeout():
    # A port that accepts TCP but never speaks SSH (a hung sshd, a wrong service).
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        exc = raised(lambda: client().connect("127.0.0.1", port=port, timeout=1,
                                             banner_timeout=0.3))
    err = classify(exc, f"127.0.0.1:{port}")
    assert type(err) is TransientError, exc


def test_dropped_session_is_transient(ssh_env):
    t = ssh_env.target
    c = client(seeded(ssh_env))
    c.connect(t.host, port=t.port, username=ssh_env.pair.user,
              key_filename=str(ssh_env.pair.client_key), allow_agent=False,
              look_for_keys=False, timeout=5)
    try:
        transport = c.get_transport()
        t.kill_sessions()
        for _ in range(250):  # the client notices the reset within ms; 5 s at most
            if not transport.is_active():
                break
            transport.join(0.02)
        exc = raised(lambda: transport.open_session(timeout=2))
        assert "session not active" in str(exc).lower(), exc
        assert type(classify(exc, f"{t.host}:{t.port}")) is TransientError
    finally:
        c.close()


def test_jump_host_cannot_reach_target_is_transient(ssh_env):
    j = ssh_env.jump
    c = client(seeded(ssh_env))
    c.connect(j.host, port=j.port, username=ssh_env.pair.user,
              key_filename=str(ssh_env.pair.client_key), allow_agent=False,
              look_for_keys=False, timeout=5)
    try:
        closed = free_port()
        exc = raised(lambda: c.get_transport().open_channel(
            "direct-tcpip", ("127.0.0.1", closed), ("127.0.0.1", 0), timeout=5))
        assert isinstance(exc, paramiko.ChannelException)
        err = classify(exc, f"jump -> 127.0.0.1:{closed}")
        assert type(err) is TransientError and "jump host" in str(err)
    finally:
        c.close()


def test_missing_file_is_not_a_link_error(tmp_path):
    exc = raised((tmp_path / "missing").read_bytes)
    assert is_file_error(exc)
    assert not is_file_error(raised(lambda: socket.create_connection(("127.0.0.1", free_port()))))


def test_command_failed_carries_the_real_stderr(tmp_path):
    res = LocalRunner().run(["ls", tmp_path / "nope"])
    exc = raised(res.check)
    assert type(exc) is CommandFailed and not exc.transient
    assert f"exited {res.returncode}" in str(exc) and "nope" in str(exc)
    assert classify(exc, "x") is exc


def test_unknown_exception_is_fatal():
    err = classify(raised(lambda: int("x")), "h:22")
    assert type(err) is RemoteError and not err.transient and "h:22" in str(err)


def test_transient_flag():
    assert TransientError("x").transient and not AuthError("x").transient
