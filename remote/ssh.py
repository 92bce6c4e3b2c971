"""``SSHRunner``: the ``CommandRunner`` for a cluster, over paramiko (ARCHITECTURE.md §6).

``host`` may be an alias of ``~/.ssh/config``: HostName, User, Port, IdentityFile, ProxyJump
(a chain ``a,b``) and UserKnownHostsFile are honoured, and explicit arguments win::

    runner = SSHRunner("cluster")                      # everything from ~/.ssh/config
    runner = SSHRunner("10.0.0.5", user="ana", identity_file="~/.ssh/id_ed25519",
                       jump=["bastion.example.org"])   # each jump may be an alias too
    try:
        runner.connect()
    except HostKeyUnknown as e:                        # show e.fingerprint; if the user agrees:
        accept_host_key(runner.known_hosts_file, e.host, e.port, e.key)
    runner.run(["python3", "-V"], cwd="~/synthsmith", timeout=30).check()
    runner.put_bytes(b"...", "~/runs/a b/config.yaml")

How it behaves:
- Auth: key files and the SSH agent only, never passwords or passphrases. Default keys
  (~/.ssh/id_*) are tried only when no identity file is given. A jump host without its own
  IdentityFile uses the runner's ``identity_file`` (same key for bastion and cluster is the
  common case); its User and Port come from its own config entry, as with ``ssh -J``.
- Host keys: every hop is checked against the known_hosts files (``remote.hostkeys``); unknown
  raises ``HostKeyUnknown``, different raises ``HostKeyChanged`` before anything is sent.
  Files: an explicit ``known_hosts`` argument, else the config's UserKnownHostsFile, else
  ~/.ssh/known_hosts; ``known_hosts=None`` loads none (every host is unknown).
- Every operation runs through one retry wrapper: transient link failures drop the connection
  and reconnect with exponential backoff + jitter, up to ``retries`` times. Auth, host-key,
  unknown-host and file errors never retry. ``run`` retries only failures before the remote
  command started: a link lost while it runs raises ``CommandInterrupted`` and a command past
  its ``timeout`` raises ``CommandTimeout`` (both ``TransientError``, neither retried, since
  the command may have had effects) -- unless the caller marks it ``idempotent=True`` (a
  status probe, squeue/sacct, a poll: it only reads), which is run again after a drop like a
  read. Reads and atomic writes (temp + rename) retry safely.
- A link that dies during authentication is a ``TransientError``, not a refused key: paramiko
  raises ``AuthenticationException`` ("transport shut down or saw EOF") when the transport
  dies while it waits for the server's answer. Only an answer of the server counts as a
  refusal: a USERAUTH failure, or a DISCONNECT it sends during authentication ("Too many
  authentication failures", MaxAuthTries), which is an ``AuthError`` quoting its reason. No
  answer within ``connect_timeout`` is transient too.
- The login shell: sshd runs each command through the user's login shell; ``$SHELL`` is asked
  once, and for a shell that is not POSIX sh (fish, csh, tcsh) every command is carried to
  ``/bin/sh`` unchanged (``remote.quoting.for_login_shell``).
- Files go over one SFTP session per connection, reopened after a reconnect; ``~/`` is the
  login home (asked once, cached).
Left out: ProxyCommand (refused with a message: use ProxyJump), ptys and streaming stdin,
signals to a timed-out remote command (it may keep running: run long work via a scheduler),
a jump host's own ProxyJump, passwords, Kerberos/GSSAPI, and certificate host keys.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import posixpath
import random
import secrets
import select
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import paramiko

from remote import hostkeys
from remote.errors import (
    AuthError,
    CommandInterrupted,
    CommandTimeout,
    HostKeyChanged,
    RemoteError,
    TransientError,
    classify,
    is_file_error,
)
from remote.hostkeys import accept_host_key, fingerprint
from remote.quoting import Arg, absolute_path, command_line, for_login_shell
from remote.runner import RunResult

__all__ = ["SSHRunner", "accept_host_key", "DEFAULT_KNOWN_HOSTS", "DEFAULT_SSH_CONFIG"]

# paramiko's transport thread logs a dropped link as an ERROR with a traceback; with no
# handler configured, Python's last-resort handler would print that on the CLI's stderr next
# to our own message. An app that configures logging still gets the records.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

DEFAULT_SSH_CONFIG = "~/.ssh/config"
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
_DEFAULT_KEY_NAMES = ("id_rsa", "id_ecdsa", "id_ed25519", "id_dsa")  # what paramiko looks for

T = TypeVar("T")


@dataclass(frozen=True)
class Hop:
    """One SSH connection of the chain: the jump hosts in order, then the target."""

    alias: str
    host: str
    port: int
    user: str
    key_files: tuple[str, ...]  # existing files to offer
    missing_keys: tuple[str, ...]  # IdentityFile entries of the config that do not exist

    @property
    def where(self) -> str:
        base = f"{self.user}@{self.host}:{self.port}"
        return base if self.alias == self.host else f"{self.alias} ({base})"


def _split_spec(spec: str) -> tuple[str | None, str, int | None]:
    """``[user@]host[:port]`` (``[v6]:port`` too) -> (user, host, port)."""
    user = None
    if "@" in spec:
        user, spec = spec.rsplit("@", 1)
    port = None
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif spec.count(":") == 1 and spec.split(":")[1].isdigit():
        host, p = spec.split(":")
        port = int(p)
    else:
        host = spec
    return user, host, port


def _load_config(path: str | os.PathLike[str] | None) -> paramiko.SSHConfig:
    if path is None:
        return paramiko.SSHConfig()
    full = os.path.expanduser(os.fspath(path))
    if not os.path.isfile(full):
        if os.fspath(path) == DEFAULT_SSH_CONFIG:
            return paramiko.SSHConfig()  # no ~/.ssh/config: a normal first setup
        raise RemoteError(f"the SSH config file {full} does not exist: fix the path in the "
                          "profile, or leave it empty to use ~/.ssh/config")
    return paramiko.SSHConfig.from_path(full)


class SSHRunner:
    """Commands and files on one cluster login node (see the module docstring)."""

    def __init__(self, host: str, *, port: int | None = None, user: str | None = None,
                 identity_file: str | os.PathLike[str] | None = None,
                 jump: str | Sequence[str] | None = None,
                 ssh_config: str | os.PathLike[str] | None = DEFAULT_SSH_CONFIG,
                 known_hosts: str | os.PathLike[str] | None = DEFAULT_KNOWN_HOSTS,
                 name: str | None = None, connect_timeout: float = 15.0,
                 keepalive_s: float = 15.0, retries: int = 3, backoff_s: float = 0.5,
                 use_agent: bool = True) -> None:
        self.name = name or host
        self.connect_timeout = connect_timeout
        self.keepalive_s = keepalive_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.use_agent = use_agent
        self.reconnects = 0  # connections re-made after a drop (tests and status bars read it)
        self.connections = 0  # every connection made, the first included

        self._config = _load_config(ssh_config)
        entry = self._config.lookup(host)
        if (entry.get("proxycommand") or "none").lower() != "none":
            raise RemoteError(f"{host}: ProxyCommand in the SSH config is not supported; use "
                              "ProxyJump (ssh -J) instead")
        self._explicit_key = (os.path.expanduser(os.fspath(identity_file))
                              if identity_file is not None else None)
        if self._explicit_key is not None and not os.path.isfile(self._explicit_key):
            raise AuthError(f"{host}: the identity file {self._explicit_key} does not exist: "
                            "fix the key file path in the profile (or IdentityFile)")
        self.target = self._hop(host, port=port, user=user, explicit_key=self._explicit_key)

        if jump is None:
            proxy = entry.get("proxyjump") or ""
            specs = [] if proxy.lower() == "none" else [s for s in proxy.split(",") if s]
        elif isinstance(jump, str):
            specs = [s.strip() for s in jump.split(",") if s.strip()]
        else:
            specs = list(jump)
        self.jumps = [self._hop(s, fallback_key=self._explicit_key) for s in specs]

        if known_hosts is not None and os.fspath(known_hosts) != DEFAULT_KNOWN_HOSTS:
            files = [os.path.expanduser(os.fspath(known_hosts))]
        elif known_hosts is None:
            files = []
        else:
            from_config = (entry.get("userknownhostsfile") or "").split()
            files = [os.path.expanduser(f) for f in from_config] or [
                os.path.expanduser(DEFAULT_KNOWN_HOSTS)]
        self.known_hosts_files = files
        # Where a CLI appends an accepted key: the first file, as OpenSSH does.
        self.known_hosts_file = files[0] if files else os.path.expanduser(DEFAULT_KNOWN_HOSTS)
        # known_hosts lines skipped at the last connect (bad, @cert-authority, unknown type):
        # shown by `cluster test` and the Clusters panel, not only logged.
        self.known_hosts_warnings: list[str] = []

        self._lock = threading.RLock()
        self._clients: list[paramiko.SSHClient] = []
        self._transport: paramiko.Transport | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._home: str | None = None
        self._login_shell: str | None = None  # $SHELL on the cluster, asked once
        self._closed_by_user = False

    def __repr__(self) -> str:
        via = f" via {','.join(h.alias for h in self.jumps)}" if self.jumps else ""
        return f"SSHRunner({self.name!r}: {self.target.where}{via})"

    # -- configuration -------------------------------------------------------------------

    def _hop(self, spec: str, *, port: int | None = None, user: str | None = None,
             explicit_key: str | None = None, fallback_key: str | None = None) -> Hop:
        spec_user, alias, spec_port = _split_spec(spec)
        entry = self._config.lookup(alias)
        config_keys = [os.path.expanduser(k) for k in entry.get("identityfile", [])]
        if explicit_key is not None:
            keys, missing = [explicit_key], []
        else:
            keys = [k for k in config_keys if os.path.isfile(k)]
            missing = [k for k in config_keys if not os.path.isfile(k)]
            if not keys and fallback_key is not None:
                keys = [fallback_key]
        return Hop(alias=alias, host=entry.get("hostname", alias),
                   port=int(port or spec_port or entry.get("port", 22)),
                   user=user or spec_user or entry.get("user") or getpass.getuser(),
                   key_files=tuple(keys), missing_keys=tuple(missing))

    # -- connection ----------------------------------------------------------------------

    def connect(self) -> None:
        """Connect (no-op when connected), retrying transient failures; raises the classified
        ``RemoteError``: AuthError, HostKeyUnknown, HostKeyChanged, HostUnreachable,
        TransientError after the retries."""
        self._call(lambda: None)

    def is_connected(self) -> bool:
        t = self._transport
        return t is not None and t.is_active()

    def close(self) -> None:
        with self._lock:
            self._closed_by_user = True
            self._drop()

    def _agent_key_count(self) -> int | None:
        if not self.use_agent:
            return None
        try:
            agent = paramiko.Agent()
            try:
                return len(agent.get_keys())
            finally:
                agent.close()
        except Exception:
            return 0

    def _tried_keys(self, hop: Hop) -> list[str]:
        tried = list(hop.key_files)
        if not hop.key_files:  # look_for_keys: name the defaults that exist
            ssh_dir = Path.home() / ".ssh"
            tried = [str(ssh_dir / n) for n in _DEFAULT_KEY_NAMES if (ssh_dir / n).exists()]
            tried = tried or ["no key in ~/.ssh"]
        tried += [f"{k} (missing)" for k in hop.missing_keys]
        return tried

    def _connect_hop(self, hop: Hop, sock: paramiko.Channel | None) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        try:  # our reader, not paramiko's: a bad line is skipped, not the whole file
            known = hostkeys.load(self.known_hosts_files)  # a missing file: first contact
        except Exception as exc:
            raise RemoteError(f"{hop.where}: cannot read the known_hosts files "
                              f"{self.known_hosts_files}: {exc}") from exc
        self.known_hosts_warnings = [str(w) for w in known.warnings]
        client.set_missing_host_key_policy(
            hostkeys.RefuseUnknownHostKey(hop.host, hop.port, self.known_hosts_file, known))
        try:
            if sock is None:  # our own socket: with TCP_NODELAY, a channel opens in ~0.5 ms, not ~40
                sock = socket.create_connection((hop.host, hop.port), timeout=self.connect_timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.connect(
                hop.host, port=hop.port, username=hop.user,
                key_filename=list(hop.key_files) or None, allow_agent=self.use_agent,
                look_for_keys=not hop.key_files, timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout, auth_timeout=self.connect_timeout,
                channel_timeout=self.connect_timeout, sock=sock, passphrase=None,
                transport_factory=_noting_disconnects(
                    known.transport_factory(hop.host, hop.port)))
        except BaseException as exc:
            # Looked at before close(), which ends the transport whatever killed it.
            in_auth = _auth_failure(exc, client.get_transport(), hop.where,
                                    self.connect_timeout)
            client.close()
            if isinstance(exc, paramiko.BadHostKeyException):
                raise HostKeyChanged(hop.host, hop.port, exc.key.get_name(),
                                     fingerprint(exc.key), self.known_hosts_file) from exc
            if in_auth is not None:
                raise in_auth from exc
            if isinstance(exc, paramiko.AuthenticationException):
                raise classify(exc, hop.where, key_files=self._tried_keys(hop),
                               agent_keys=self._agent_key_count()) from exc
            if isinstance(exc, Exception):
                raise classify(exc, hop.where, timeout=self.connect_timeout) from exc
            raise
        transport = client.get_transport()
        assert transport is not None
        if self.keepalive_s:
            # A login node behind NAT or a firewall drops idle links; the keepalive keeps the
            # event tail's connection open between polls.
            transport.set_keepalive(max(1, round(self.keepalive_s)))
        return client

    def _connect_once(self) -> None:
        clients: list[paramiko.SSHClient] = []
        sock: paramiko.Channel | None = None
        try:
            hops = [*self.jumps, self.target]
            for i, hop in enumerate(hops):
                if i > 0:
                    prev = clients[-1].get_transport()
                    assert prev is not None
                    try:
                        sock = prev.open_channel("direct-tcpip", (hop.host, hop.port),
                                                 ("127.0.0.1", 0), timeout=self.connect_timeout)
                    except Exception as exc:
                        raise classify(exc, f"{hops[i - 1].where} -> {hop.where}",
                                       timeout=self.connect_timeout) from exc
                clients.append(self._connect_hop(hop, sock))
        except BaseException:
            for c in reversed(clients):
                c.close()
            raise
        self._clients = clients
        self._transport = clients[-1].get_transport()
        if self.connections and not self._closed_by_user:
            self.reconnects += 1
        self.connections += 1
        self._closed_by_user = False

    def _ensure_connected(self) -> None:
        with self._lock:
            if self._transport is not None and self._transport.is_active():
                return
            self._drop()
            self._connect_once()

    def _drop(self) -> None:
        """Forget the connection (quietly: it is usually already dead)."""
        with self._lock:
            sftp, clients = self._sftp, self._clients
            self._sftp, self._clients, self._transport = None, [], None
            for closer in [sftp, *reversed(clients)]:
                if closer is None:
                    continue
                with contextlib.suppress(Exception):
                    closer.close()

    def _call(self, op: Callable[[], T], *, may_retry: Callable[[], bool] = lambda: True) -> T:
        """Run ``op`` on a live connection; reconnect and retry transient failures (a
        ``CommandInterrupted`` included) while ``may_retry()`` says the operation can safely
        run again. A ``CommandTimeout`` is never retried: the link is fine, the command slow."""
        attempt = 0
        while True:
            try:
                self._ensure_connected()
                return op()
            except Exception as exc:
                if is_file_error(exc) or isinstance(exc, ValueError):
                    raise  # the answer about a path or an argument, not a link failure
                err = classify(exc, self.target.where, timeout=self.connect_timeout)
                if not err.transient or isinstance(err, CommandTimeout):
                    raise err from (None if err is exc else exc)  # the link itself is fine
                self._drop()
                # may_retry() decides for a command interrupted by the drop: False unless
                # the caller said it is idempotent (run_shell).
                if not may_retry():
                    raise err from (None if err is exc else exc)
                if attempt >= self.retries:
                    raise TransientError(f"{err} (gave up after {attempt + 1} attempts)") from exc
                time.sleep(self.backoff_s * 2 ** attempt + random.uniform(0, self.backoff_s))
                attempt += 1

    def _live_transport(self) -> paramiko.Transport:
        t = self._transport
        if t is None or not t.is_active():
            raise TransientError(f"{self.target.where}: the connection dropped")
        return t

    def _sftp_client(self) -> paramiko.SFTPClient:
        with self._lock:
            if self._sftp is None:
                self._sftp = paramiko.SFTPClient.from_transport(self._live_transport())
                if self._sftp is None:
                    raise TransientError(f"{self.target.where}: could not open SFTP")
            return self._sftp

    # -- commands ------------------------------------------------------------------------

    def run(self, argv: Sequence[Arg], *, cwd: Arg | None = None,
            env: Mapping[str, Arg] | None = None, timeout: float | None = None,
            input: str | None = None, max_bytes: int | None = None,
            idempotent: bool = False) -> RunResult:
        return self.run_shell(command_line(argv, cwd=cwd, env=env), timeout=timeout, input=input,
                              max_bytes=max_bytes, idempotent=idempotent)

    def run_shell(self, command: str, *, timeout: float | None = None,
                  input: str | None = None, max_bytes: int | None = None,
                  idempotent: bool = False) -> RunResult:
        """``max_bytes``: stop reading and raise ``OutputTooLarge`` once stdout or stderr
        passes it (memory stays bounded whatever the remote sends). ``idempotent``: the
        command only reads, so a link lost while it runs reconnects and runs it again (up to
        ``retries`` times) instead of raising ``CommandInterrupted``."""
        started = False
        wire = for_login_shell(command, self.login_shell())

        def op() -> RunResult:
            nonlocal started
            start = time.monotonic()
            channel = self._live_transport().open_session(timeout=self.connect_timeout)
            try:
                channel.exec_command(wire)
                started = True  # from here on the command may have had effects: no retry
                return self._collect(channel, command, start, timeout, input, max_bytes)
            finally:
                channel.close()

        try:
            return self._call(op, may_retry=lambda: idempotent or not started)
        except TransientError as exc:
            if idempotent:
                raise  # retried already; "may have run in part" means nothing for a read
            if started and not isinstance(exc, CommandTimeout):
                raise CommandInterrupted(
                    f"{self.target.where}: the connection dropped while `{command}` was "
                    "running; not retried because it may have run in part. Check its effects "
                    "before running it again") from exc
            raise

    def _collect(self, channel: paramiko.Channel, command: str, start: float,
                 timeout: float | None, input: str | None,
                 max_bytes: int | None = None) -> RunResult:
        # stdin from a thread: a command that writes a lot before reading its input would
        # otherwise block on a full window while we block sending.
        def feed() -> None:
            try:
                if input:
                    channel.sendall(input.encode("utf-8"))
                channel.shutdown_write()  # EOF, so a command reading stdin ends
            except Exception:
                pass  # the command exited without reading it all; its exit status tells

        feeder = threading.Thread(target=feed, daemon=True, name=f"ssh-stdin {self.name}")
        feeder.start()
        out, err = bytearray(), bytearray()
        deadline = None if timeout is None else start + timeout
        # Read both streams as data arrives (select on the channel wakes for either), so a
        # command filling stderr while we wait on stdout cannot deadlock.
        cap = max_bytes if max_bytes is not None else float("inf")
        while True:
            while channel.recv_ready() and len(out) <= cap:
                out += channel.recv(1 << 16)
            while channel.recv_stderr_ready() and len(err) <= cap:
                err += channel.recv_stderr(1 << 16)
            # sshd may send exit-status before the last output (the child exits with data
            # still in its pipe): done only at EOF (or a closed channel) plus the status.
            if channel.exit_status_ready() and (channel.eof_received or channel.closed):
                while channel.recv_ready() and len(out) <= cap:
                    out += channel.recv(1 << 16)
                while channel.recv_stderr_ready() and len(err) <= cap:
                    err += channel.recv_stderr(1 << 16)
                if len(out) <= cap and len(err) <= cap:
                    break
            if len(out) > cap or len(err) > cap:
                from remote.safe_paths import OutputTooLarge

                raise OutputTooLarge(
                    f"{self.target.where}: `{command[:200]}` sent more than {max_bytes} bytes; "
                    "stopped reading (a chatty or compromised cluster?)")
            wait = 1.0
            if deadline is not None:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    raise CommandTimeout(
                        f"{self.target.where}: `{command}` did not finish within {timeout:g} s "
                        "(the remote process may still be running)")
                wait = min(wait, 1.0)
            select.select([channel], [], [], wait)
        status = channel.recv_exit_status()
        if status == -1 and not (self._transport and self._transport.is_active()):
            # No exit status and a dead link: the connection died under the command. Whether
            # that may be retried is run_shell's call (idempotent or not), and so is the text.
            raise CommandInterrupted(
                f"{self.target.where}: the connection dropped while `{command}` was running")
        feeder.join(timeout=1.0)
        # -1 on a live link: killed by a signal (sshd sends exit-signal, which paramiko
        # does not report).
        return RunResult(command, status, out.decode("utf-8", "replace"),
                         err.decode("utf-8", "replace"), time.monotonic() - start, self.name)

    # -- files ---------------------------------------------------------------------------

    def login_shell(self) -> str:
        """The user's login shell on the cluster (``$SHELL``, asked once per runner): sshd
        runs every command through it, so a non-POSIX one (fish, csh) gets our sh strings
        carried to /bin/sh (``remote.quoting.for_login_shell``). "" when it did not say."""
        if self._login_shell is None:
            def ask() -> str:
                channel = self._live_transport().open_session(timeout=self.connect_timeout)
                try:
                    channel.exec_command('echo "$SHELL"')  # the same in sh, fish and csh
                    result = self._collect(channel, "echo $SHELL", time.monotonic(),
                                           self.connect_timeout, None, 64 * 1024)
                finally:
                    channel.close()
                # the last line: a login banner may come first
                lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
                return lines[-1] if lines and lines[-1].startswith("/") else ""

            self._login_shell = self._call(ask)
        return self._login_shell

    def home(self) -> str:
        if self._home is None:
            # SFTP starts in the login home, the same ``~`` the remote shell expands.
            self._home = self._call(lambda: self._sftp_client().normalize("."))
        return self._home

    def _path(self, path: str | os.PathLike[str]) -> str:
        text = os.fspath(path)
        return absolute_path(self.home(), text) if text == "~" or text.startswith("~/") else text

    def _makedirs(self, sftp: paramiko.SFTPClient, path: str) -> None:
        path = path.rstrip("/") or "/"
        try:
            sftp.stat(path)
            return
        except FileNotFoundError:
            pass
        parent = posixpath.dirname(path)
        if parent and parent != path:
            self._makedirs(sftp, parent)
        try:
            sftp.mkdir(path)
        except OSError:
            sftp.stat(path)  # made meanwhile by someone else is fine; anything else raises

    def makedirs(self, path: str) -> None:
        full = self._path(path)
        self._call(lambda: self._makedirs(self._sftp_client(), full))

    def _atomic_put(self, path: str, write: Callable[[paramiko.SFTPClient, str], None],
                    mode: int) -> None:
        target = self._path(path)
        folder, base = posixpath.split(target)

        def op() -> None:
            sftp = self._sftp_client()
            if folder:
                self._makedirs(sftp, folder)
            # A fresh name per attempt: a half-written temp of a failed try never clashes,
            # and readers only ever see the old or the whole new file.
            tmp = posixpath.join(folder, f".{base}.{secrets.token_hex(6)}.tmp")
            try:
                write(sftp, tmp)
                sftp.chmod(tmp, mode)
                sftp.posix_rename(tmp, target)
            except BaseException:
                with contextlib.suppress(Exception):
                    sftp.remove(tmp)
                raise

        self._call(op)

    def put_bytes(self, data: bytes, path: str, *, mode: int = 0o644) -> None:
        def write(sftp: paramiko.SFTPClient, tmp: str) -> None:
            with sftp.open(tmp, "wb") as f:
                f.set_pipelined(True)
                f.write(data)

        self._atomic_put(path, write, mode)

    def put_file(self, local: str | os.PathLike[str], path: str, *,
                 mode: int | None = None) -> None:
        local_mode = os.stat(local).st_mode & 0o777
        self._atomic_put(path, lambda sftp, tmp: sftp.put(os.fspath(local), tmp, confirm=True),
                         local_mode if mode is None else mode)

    def get_file(self, path: str, local: str | os.PathLike[str]) -> None:
        remote = self._path(path)
        dest = Path(local)
        dest.parent.mkdir(parents=True, exist_ok=True)

        def op() -> None:
            tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.tmp")
            try:
                self._sftp_client().get(remote, os.fspath(tmp))
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)

        self._call(op)

    def read_bytes(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        remote = self._path(path)

        def op() -> bytes:
            with self._sftp_client().open(remote, "rb") as f:
                size = f.stat().st_size
                end = size if length is None else min(size, offset + length)
                if offset >= end:
                    return b""
                f.seek(offset)
                if end - offset > 256 * 1024:
                    f.prefetch(end)  # many requests in flight instead of one round trip each
                # In pieces: paramiko's read(n) grows a bytes buffer by +=, quadratic for a
                # read of many MB (64 MB took 30 s in one call, 2 s in 1 MB pieces).
                out = bytearray()
                while len(out) < end - offset:
                    piece = f.read(min(1 << 20, end - offset - len(out)))
                    if not piece:
                        break  # truncated meanwhile
                    out += piece
                return bytes(out)

        return self._call(op)

    def size(self, path: str) -> int | None:
        remote = self._path(path)

        def op() -> int | None:
            try:
                return self._sftp_client().stat(remote).st_size
            except FileNotFoundError:
                return None

        return self._call(op)

    def listdir(self, path: str) -> list[str]:
        remote = self._path(path)

        def op() -> list[str]:
            try:
                return sorted(self._sftp_client().listdir(remote))
            except FileNotFoundError:
                return []

        return self._call(op)


def _noting_disconnects(factory: Callable[..., paramiko.Transport]
                        ) -> Callable[..., paramiko.Transport]:
    """``factory``'s transports, each remembering the DISCONNECT message the server sends
    (``synthsmith_disconnect`` = (code, text)): it tells a server that ended the login on
    purpose from a link that died, which paramiko reports with the same exception."""

    def make(sock, **kwargs) -> paramiko.Transport:
        t = factory(sock, **kwargs)
        parse = getattr(t, "_parse_disconnect", None)
        if parse is None:  # a paramiko without it: every death in auth reads as a dead link
            return t

        def note(m: paramiko.Message) -> None:
            start = m.packet.tell()
            try:
                t.synthsmith_disconnect = (m.get_int(), m.get_text())  # type: ignore[attr-defined]
            except Exception:
                t.synthsmith_disconnect = (0, "")  # type: ignore[attr-defined]
            m.packet.seek(start)  # paramiko's own handler reads it again (and logs it)
            parse(m)

        t._parse_disconnect = note  # type: ignore[method-assign]
        return t

    return make


def _auth_failure(exc: BaseException, transport: paramiko.Transport | None, where: str,
                  timeout: float) -> RemoteError | None:
    """The error for a login that failed after authentication began but without the server
    refusing a key: the link died under it (transient), or the server hung up with a reason
    (an ``AuthError`` quoting it). None when authentication had not begun or the server
    answered with a plain refusal (the caller's "refused every key" message fits then)."""
    if transport is None or getattr(transport, "auth_handler", None) is None:
        return None  # failed before authentication (banner, key exchange, host key)
    if not isinstance(exc, paramiko.SSHException):
        return None
    said = getattr(transport, "synthsmith_disconnect", None)
    if said is not None:
        code, text = said
        return AuthError(
            f"{where}: the server closed the connection during authentication (code {code}: "
            f"{text or 'no reason given'}). With \"Too many authentication failures\" it "
            "stopped after MaxAuthTries keys: set IdentityFile for this host in ~/.ssh/config "
            "(or the profile's key file) so the right key is offered first")
    if not transport.is_active():
        # paramiko's "Authentication failed: transport shut down or saw EOF", or "No existing
        # session" for the keys it tried after that: no key was refused, the link is gone.
        return TransientError(
            f"{where}: the connection dropped during authentication ({exc}); no key was "
            "refused, the link went away")
    if isinstance(exc, paramiko.AuthenticationException) and "timeout" in str(exc).lower():
        return TransientError(
            f"{where}: the server did not answer the login within {timeout:g} s ({exc}); the "
            "link or the host is slow")
    return None


def scan_host_key(host: str, port: int = 22, timeout: float = 10.0) -> paramiko.PKey:
    """``remote.hostkeys.scan`` under the name a CLI looks for next to ``SSHRunner``."""
    return hostkeys.scan(host, port, timeout)

