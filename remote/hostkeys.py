"""Host keys: what the desktop knows about a cluster's identity, and how a user accepts a new one.

The rule (ARCHITECTURE.md §6): a key is trusted only when it is in a known_hosts file, and a
key gets there only because the user accepted its fingerprint. Nothing here adds keys on its
own; there is no AutoAddPolicy anywhere::

    from remote import hostkeys
    key = hostkeys.scan("login.cluster.org", 22, timeout=10)   # no authentication
    print(hostkeys.fingerprint(key))                           # "SHA256:..." like ssh-keygen -lf
    hostkeys.accept_host_key("~/.ssh/known_hosts", "login.cluster.org", 22, key)

``SSHRunner`` loads the files with ``load`` (OpenSSH format, hashed ``|1|`` entries included)
and checks every hop, jump hosts too, through ``RefuseUnknownHostKey``: an unknown host raises
``HostKeyUnknown`` carrying the key, so the caller can show the fingerprint and accept it.
Left out: ``@cert-authority`` and ``@revoked`` markers (paramiko skips such lines, so a
host known only through a CA looks unknown), and ``HostKeyAlias``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
from collections.abc import Iterable
from pathlib import Path

import paramiko

from remote.errors import HostKeyChanged, HostKeyUnknown, classify


def known_hosts_name(host: str, port: int) -> str:
    """The name OpenSSH files a host under: ``host`` on port 22, ``[host]:port`` otherwise."""
    return host if port == 22 else f"[{host}]:{port}"


def fingerprint(key: paramiko.PKey) -> str:
    """``SHA256:<base64 without padding>``, the format ``ssh-keygen -lf`` prints."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def load(paths: Iterable[str | os.PathLike[str]]) -> paramiko.HostKeys:
    """All entries of the files that exist (a missing file is simply empty: first contact)."""
    keys = paramiko.HostKeys()
    for path in paths:
        full = os.path.expanduser(os.fspath(path))
        if os.path.isfile(full):
            keys.load(full)
    return keys


def accept_host_key(known_hosts_path: str | os.PathLike[str], host: str, port: int,
                    key: paramiko.PKey, *, hash_name: bool = False) -> str:
    """Append ``key`` for ``host``:``port`` to the file (created 0600, its folder 0700) and
    return the line written. Call it only after the user accepted the fingerprint.
    ``hash_name`` writes the ``|1|`` hashed form (what ``HashKnownHosts yes`` does)."""
    path = Path(os.path.expanduser(os.fspath(known_hosts_path)))
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = known_hosts_name(host, port)
    if hash_name:
        name = paramiko.HostKeys.hash_host(name)
    line = f"{name} {key.get_name()} {key.get_base64()}\n"
    # O_APPEND, not rewrite: other tools (ssh itself) may write the same file concurrently.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="ascii") as f:
        # A file whose last line lacks its newline would glue our entry onto it.
        if path.stat().st_size > 0:
            with open(path, "rb") as r:
                r.seek(-1, os.SEEK_END)
                if r.read(1) != b"\n":
                    f.write("\n")
        f.write(line)
    return line


def scan(host: str, port: int = 22, timeout: float = 10.0,
         sock: socket.socket | paramiko.Channel | None = None) -> paramiko.PKey:
    """The host's key, fetched with a key exchange only (no authentication, nothing run), so a
    CLI or dialog can show its fingerprint before the user accepts it. ``sock``: an open
    channel (through a jump host) instead of a direct TCP connection.
    Raises the classified ``RemoteError`` (HostUnreachable, TransientError...)."""
    where = f"{host}:{port}"
    transport = None
    try:
        if sock is None:
            sock = socket.create_connection((host, port), timeout=timeout)
        transport = paramiko.Transport(sock)
        transport.banner_timeout = timeout
        transport.start_client(timeout=timeout)
        return transport.get_remote_server_key()
    except Exception as exc:
        raise classify(exc, where) from exc
    finally:
        if transport is not None:
            transport.close()
        elif sock is not None:
            sock.close()


class RefuseUnknownHostKey(paramiko.MissingHostKeyPolicy):
    """paramiko calls this when a host has no entry: refuse, carrying what the user needs to
    decide (``HostKeyUnknown.fingerprint`` and ``.key`` for ``accept_host_key``)."""

    def __init__(self, host: str, port: int, known_file: str) -> None:
        self.host, self.port, self.known_file = host, port, known_file

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        # paramiko sends a host whose entry has another key type to BadHostKeyException
        # itself; this is a second guard so such a host can never be "unknown".
        if client.get_host_keys().lookup(hostname):
            raise HostKeyChanged(self.host, self.port, key.get_name(), fingerprint(key),
                                 self.known_file)
        raise HostKeyUnknown(self.host, self.port, key.get_name(), fingerprint(key), key)
