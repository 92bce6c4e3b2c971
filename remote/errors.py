"""What can go wrong between the desktop and a cluster, sorted by what to do about it.

- ``TransientError``: the link failed (reset, timeout, refused while a host reboots, a
  dropped channel). Retried with backoff by the code that holds the connection.
- Fatal ones, never retried, each with a message that names the problem and the fix:
  ``AuthError`` (key refused, no key, agent empty), ``HostKeyUnknown`` (the user must accept
  the fingerprint), ``HostKeyChanged`` (possible man-in-the-middle: refused loudly),
  ``HostUnreachable`` (no such host name), ``CommandFailed`` (the user's command exited
  non-zero: its output is the answer, a retry would not change it), ``RemoteSetupError``
  (no Python, no engine, full disk: the cluster needs fixing).
"""

from __future__ import annotations

from typing import Any

from remote.fingerprints import fingerprint


class RemoteError(Exception):
    """Base class. ``transient`` says whether a retry may help."""

    transient = False


class TransientError(RemoteError):
    transient = True


class AuthError(RemoteError):
    pass


class HostUnreachable(RemoteError):
    pass


class HostKeyUnknown(RemoteError):
    """The host's key is not in known_hosts. ``fingerprint`` (``SHA256:...``) is what the user
    compares with the cluster's admins before accepting it (``remote.ssh.accept_host_key``)."""

    def __init__(self, host: str, port: int, key_type: str, fingerprint: str, key: Any) -> None:
        self.host, self.port, self.key_type, self.fingerprint, self.key = (
            host, port, key_type, fingerprint, key)
        where = host if port == 22 else f"[{host}]:{port}"
        super().__init__(
            f"the host key of {where} is not known: {key_type} {fingerprint}. Check the "
            "fingerprint with the cluster's admins, then accept it (synthsmith cluster test "
            "asks; the app shows a dialog)")


class HostKeyChanged(RemoteError):
    def __init__(self, host: str, port: int, key_type: str, fingerprint: str,
                 known_file: str) -> None:
        self.host, self.port, self.fingerprint = host, port, fingerprint
        where = host if port == 22 else f"[{host}]:{port}"
        super().__init__(
            f"THE HOST KEY OF {where} HAS CHANGED (now {key_type} {fingerprint}): someone may "
            f"be intercepting the connection, or the host was reinstalled. Nothing was sent. "
            f"If the admins confirm the new key, remove the old entry from {known_file} "
            f"(ssh-keygen -R '{where}') and connect again")


class HostKeyRevoked(RemoteError):
    """The host offered a key that a known_hosts file lists under ``@revoked``: refused even
    when another line accepts it. ``known_file`` and ``line`` name the ``@revoked`` line."""

    def __init__(self, host: str, port: int, key_type: str, fingerprint: str,
                 known_file: str, line: int) -> None:
        self.host, self.port, self.key_type, self.fingerprint = host, port, key_type, fingerprint
        self.known_file, self.line = known_file, line
        where = host if port == 22 else f"[{host}]:{port}"
        super().__init__(
            f"THE HOST KEY OF {where} ({key_type} {fingerprint}) IS REVOKED: {known_file} "
            f"line {line} marks it @revoked, so it is refused. Nothing was sent. Ask the "
            "cluster's admins for the host's new key")


class CommandFailed(RemoteError):
    def __init__(self, result: Any) -> None:
        self.result = result
        tail = (result.stderr or result.stdout or "").strip()[-800:]
        super().__init__(f"{result.where}: `{result.command}` exited {result.returncode}"
                         + (f":\n{tail}" if tail else ""))


class RemoteSetupError(RemoteError):
    pass


class CommandTimeout(TransientError):
    """A command ran past its ``timeout``. Transient (the cluster may just be slow) but never
    retried by the runner: the command may have had effects; the caller decides."""


class CommandInterrupted(TransientError):
    """The connection dropped while a command was running. Never retried by the runner (the
    command may have run in part); the next operation reconnects by itself."""


class LaunchError(RuntimeError):
    """A launch (or a fetch, a hand-over, a run record) that cannot go ahead, with what to
    change. Not a RemoteError: the cause is the plan or the run, not the link."""


_TRANSIENT_SSH_MESSAGES = (
    "ssh session not active", "channel closed", "server connection dropped",
    "error reading ssh protocol banner", "no existing session", "connection reset",
    "socket is closed", "eof during negotiation", "unable to open channel",
)
_FILE_ERRNOS = frozenset({2, 13, 17, 20, 21, 28, 39})  # ENOENT EACCES EEXIST ENOTDIR EISDIR ...


def is_file_error(exc: BaseException) -> bool:
    """An OSError about a path (missing, no permission, disk full): the caller's answer, not
    a link failure, so it passes through unchanged and is never retried."""
    return isinstance(exc, OSError) and getattr(exc, "errno", None) in _FILE_ERRNOS


def classify(exc: BaseException, where: str, *, key_files: tuple[str, ...] | list[str] = (),
             agent_keys: int | None = None, known_file: str = "~/.ssh/known_hosts",
             timeout: float | None = None) -> RemoteError:
    """The ``RemoteError`` for an exception raised while talking to ``where`` (``host:port``,
    or ``name (user@host:port)``). ``key_files`` and ``agent_keys`` (None: agent not used)
    make an auth failure say what was tried; ``known_file`` names the file to fix on a changed
    host key. Unknown exceptions become a plain, non-transient ``RemoteError``."""
    import socket

    import paramiko  # here, not at the top: LocalRunner users import this module too

    if isinstance(exc, RemoteError):
        return exc
    if isinstance(exc, paramiko.BadHostKeyException):
        host, port = exc.hostname, 22
        if host.startswith("[") and "]:" in host:
            host, _, p = host[1:].partition("]:")
            port = int(p)
        elif ":" in where and where.rsplit(":", 1)[1].rstrip(")").isdigit():
            port = int(where.rsplit(":", 1)[1].rstrip(")"))
        return HostKeyChanged(host, port, exc.key.get_name(), fingerprint(exc.key), known_file)
    if isinstance(exc, paramiko.PasswordRequiredException):
        return AuthError(
            f"{where}: a key is protected by a passphrase ({exc}). The app never asks for "
            "passphrases: load the key into your SSH agent (ssh-add <key file>) and try again")
    if isinstance(exc, paramiko.AuthenticationException):
        tried = ", ".join(key_files) if key_files else "no key file"
        agent = ("the SSH agent was not used" if agent_keys is None
                 else f"the SSH agent offered {agent_keys} key(s)")
        return AuthError(
            f"{where}: the server refused every key ({exc}). Tried: {tried}; {agent}. Fix: add "
            "your public key (the .pub file) to ~/.ssh/authorized_keys on the host, or set "
            "IdentityFile for this host in ~/.ssh/config (or the profile's key file)")
    if isinstance(exc, socket.gaierror):
        return HostUnreachable(
            f"{where}: no such host ({exc.strerror or exc}): check HostName in ~/.ssh/config "
            "or the profile's host name")
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        ports = sorted({addr[1] for addr in exc.errors})
        refused = all(isinstance(e, ConnectionRefusedError) or getattr(e, "errno", 0) == 111
                      for e in exc.errors.values())
        why = "refused the connection" if refused else "could not be reached"
        return TransientError(
            f"{where}: port {', '.join(map(str, ports))} {why} ({exc}). The host may be "
            "rebooting or sshd is down; check Port in ~/.ssh/config if this persists")
    if isinstance(exc, ConnectionRefusedError):
        port = where.rsplit(":", 1)[-1]
        return TransientError(
            f"{where}: port {port} refused the connection ({exc}). The host may be rebooting "
            "or sshd is down; check Port in ~/.ssh/config if this persists")
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError since 3.10
        within = f" within {timeout:g} s" if timeout else ""
        return TransientError(
            f"{where}: no answer{within} ({exc or 'timed out'}). The network or the host is "
            "slow or down; check the host name and port, and any VPN")
    if isinstance(exc, paramiko.ChannelException):
        return TransientError(
            f"{where}: the jump host could not open a connection onward ({exc}). The target may "
            "be down, or its HostName/Port are wrong as seen from the jump host")
    if isinstance(exc, EOFError | ConnectionError):
        return TransientError(f"{where}: the connection dropped ({type(exc).__name__}: {exc})")
    if isinstance(exc, paramiko.SSHException):
        text = str(exc).lower()
        if any(m in text for m in _TRANSIENT_SSH_MESSAGES):
            return TransientError(f"{where}: the connection dropped ({exc})")
        return RemoteError(f"{where}: SSH failed: {exc}")
    if isinstance(exc, OSError) and not is_file_error(exc):
        return TransientError(f"{where}: the connection failed ({type(exc).__name__}: {exc})")
    return RemoteError(f"{where}: {type(exc).__name__}: {exc}")
