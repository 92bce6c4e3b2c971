"""Host keys: what the desktop knows about a cluster's identity, and how a user accepts a new one.

The rule (ARCHITECTURE.md §6): a key is trusted only when it is in a known_hosts file, and a
key gets there only because the user accepted its fingerprint. Nothing here adds keys on its
own; there is no AutoAddPolicy anywhere::

    from remote import hostkeys
    key = hostkeys.scan("login.cluster.org", 22, timeout=10)   # no authentication
    print(hostkeys.fingerprint(key))                           # "SHA256:..." like ssh-keygen -lf
    hostkeys.accept_host_key("~/.ssh/known_hosts", "login.cluster.org", 22, key)

``SSHRunner`` reads the files with ``load``, a reader of our own that reads known_hosts as
OpenSSH does (sshd(8), "SSH_KNOWN_HOSTS FILE FORMAT"): hashed ``|1|salt|hash`` names,
comma-separated patterns with ``*``/``?`` wildcards and ``!`` negation, ``[host]:port`` for a
port other than 22, ``#`` comments. A line it cannot use is skipped, never the whole file,
and named in ``KnownHosts.warnings`` (file, line number, why): garbage, an unknown key type,
bad or truncated base64, an unknown marker. ``@revoked`` keys are refused for every host,
even where another line accepts them (``HostKeyRevoked`` names the file and line).
Every hop, jump hosts too, is checked through ``RefuseUnknownHostKey``: an unknown host
raises ``HostKeyUnknown`` carrying the key, so the caller can show the fingerprint and accept
it; a host known with other keys raises ``HostKeyChanged``.
Left out: host certificates (``@cert-authority`` lines are skipped with a warning, so a host
known only through a CA looks unknown), key types paramiko cannot decode (``sk-...``
security keys: skipped with a warning), ``HostKeyAlias``, ``CheckHostIP`` (only the name is
looked up, not the address) and the global ``/etc/ssh/ssh_known_hosts``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from remote.errors import HostKeyChanged, HostKeyRevoked, HostKeyUnknown, classify
from remote.fingerprints import fingerprint

log = logging.getLogger(__name__)


def known_hosts_name(host: str, port: int) -> str:
    """The name OpenSSH files a host under: ``host`` on port 22, ``[host]:port`` otherwise."""
    return host if port == 22 else f"[{host}]:{port}"


@dataclass(frozen=True)
class SkippedLine:
    """A known_hosts line that was not used, and why."""

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass(frozen=True)
class Entry:
    """One usable line: ``marker`` is ``""`` or ``"revoked"``; ``patterns`` as written
    (a hashed name is one pattern ``|1|salt|hash``)."""

    path: str
    line: int
    marker: str
    patterns: tuple[str, ...]
    key: paramiko.PKey

    def matches(self, host: str, port: int) -> bool:
        return match_host(self.patterns, known_hosts_name(host, port))


def _wildcard(pattern: str) -> re.Pattern[str]:
    # Only * and ? are special (not fnmatch's [..]: "[host]:port" is literal).
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                              for c in pattern), re.IGNORECASE | re.DOTALL)


def _hashed_match(pattern: str, name: str) -> bool:
    _, _, salt_b64, hash_b64 = pattern.split("|", 3)
    salt, want = base64.b64decode(salt_b64), base64.b64decode(hash_b64)
    # OpenSSH hashes the lowercased name; a name hashed as typed matches too.
    return any(hmac.compare_digest(hmac.new(salt, n.encode(), hashlib.sha1).digest(), want)
               for n in {name.lower(), name})


def match_host(patterns: Iterable[str], name: str) -> bool:
    """OpenSSH's match_hostname: true when a pattern matches ``name`` (``host`` or
    ``[host]:port``) and no negated ``!pattern`` does; case-insensitive."""
    positive = False
    for pattern in patterns:
        if pattern.startswith("|"):
            positive = positive or _hashed_match(pattern, name)
            continue
        negated = pattern.startswith("!")
        if negated:
            pattern = pattern[1:]
        if _wildcard(pattern).fullmatch(name):
            if negated:
                return False
            positive = True
    return positive


def _check_hashed(field_: str) -> str | None:
    parts = field_.split("|")
    if len(parts) != 4 or parts[0] != "" or parts[1] != "1":
        return f"unsupported hashed host name {field_[:20]!r} (only |1|salt|hash)"
    try:
        salt = base64.b64decode(parts[2], validate=True)
        digest = base64.b64decode(parts[3], validate=True)
    except (binascii.Error, ValueError):
        return "hashed host name is not valid base64"
    if len(salt) != 20 or len(digest) != 20:
        return "hashed host name has a salt or hash of the wrong length"
    return None


def decode_key(key_type: str, key_b64: str) -> paramiko.PKey:
    """The public key of a known_hosts line; ValueError saying why it is unusable."""
    if key_type.endswith("-cert-v01@openssh.com"):
        raise ValueError(f"certificate key type {key_type} is not supported")
    if not any(key_type in cls.identifiers() for cls in paramiko.key_classes):
        raise ValueError(f"unknown or unsupported key type {key_type!r}")
    try:
        blob = base64.b64decode(key_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"the {key_type} key is not valid base64 ({exc})") from None
    try:
        key = paramiko.PKey.from_type_string(key_type, blob)
    except paramiko.UnknownKeyType:
        raise ValueError(f"unknown or unsupported key type {key_type!r}") from None
    except Exception as exc:
        raise ValueError(f"the {key_type} key cannot be decoded ({type(exc).__name__}: "
                         f"{exc})") from None
    # paramiko pads a short blob with zeros: a truncated key would decode to another key.
    if key.asbytes() != blob:
        raise ValueError(f"the {key_type} key data is truncated or malformed")
    if key.get_name() != key_type:
        raise ValueError(f"the line says {key_type} but the key is {key.get_name()}")
    return key


def parse_line(text: str) -> tuple[str, tuple[str, ...], paramiko.PKey] | str | None:
    """One known_hosts line -> ``(marker, patterns, key)``, ``None`` for a blank or comment
    line, or a string saying why the line is unusable."""
    fields = text.split()
    if not fields or fields[0].startswith("#"):
        return None
    marker = ""
    if fields[0].startswith("@"):
        marker = fields.pop(0)[1:]
        if marker == "cert-authority":
            return "@cert-authority line skipped: host certificates are not supported"
        if marker != "revoked":
            return f"unknown marker @{marker}"
    if len(fields) < 3:
        return "not a known_hosts line (expected: host patterns, key type, base64 key)"
    hosts, key_type, key_b64 = fields[0], fields[1], fields[2]
    if key_type.isdigit():
        return "old SSH-1 RSA key format (bits exponent modulus) is not supported"
    if hosts.startswith("|"):
        why = _check_hashed(hosts)
        if why:
            return why
        patterns: tuple[str, ...] = (hosts,)
    else:
        patterns = tuple(p for p in hosts.split(",") if p)
        if not patterns:
            return "no host pattern"
    try:
        key = decode_key(key_type, key_b64)
    except ValueError as exc:
        return str(exc)
    return marker, patterns, key


@dataclass
class KnownHosts:
    """What ``load`` read: ``entries`` (usable lines, ``@revoked`` ones included) and
    ``warnings`` (one ``SkippedLine`` per line that was not used)."""

    entries: list[Entry] = field(default_factory=list)
    warnings: list[SkippedLine] = field(default_factory=list)

    def matching(self, host: str, port: int) -> list[Entry]:
        """The accepting (not ``@revoked``) entries for ``host``:``port``, in file order."""
        return [e for e in self.entries if not e.marker and e.matches(host, port)]

    def lookup(self, host: str, port: int) -> list[paramiko.PKey]:
        """The keys accepted for ``host``:``port`` (revoked ones left out); [] when unknown."""
        return [e.key for e in self.matching(host, port) if not self.is_revoked(e.key)]

    def revocation(self, key: paramiko.PKey) -> Entry | None:
        """The first ``@revoked`` entry that lists ``key`` (for any host), or None."""
        blob = key.asbytes()
        for e in self.entries:
            if e.marker == "revoked" and e.key.asbytes() == blob:
                return e
        return None

    def is_revoked(self, key: paramiko.PKey) -> bool:
        return self.revocation(key) is not None

    def check(self, host: str, port: int, key: paramiko.PKey) -> None:
        """Accept ``key`` for ``host``:``port`` or raise: ``HostKeyRevoked``, ``HostKeyChanged``
        (the host is known with other keys; names the file of its first entry, else
        ``known_file``) or ``HostKeyUnknown``."""
        fp = fingerprint(key)
        revoked = self.revocation(key)
        if revoked is not None:
            raise HostKeyRevoked(host, port, key.get_name(), fp, revoked.path, revoked.line)
        known = self.matching(host, port)
        blob = key.asbytes()
        if any(e.key.asbytes() == blob for e in known):
            return
        if known:
            raise HostKeyChanged(host, port, key.get_name(), fp, known[0].path)
        raise HostKeyUnknown(host, port, key.get_name(), fp, key)

    def key_types(self, host: str, port: int) -> list[str]:
        """The key types known for ``host``:``port``, in file order (no repeats)."""
        return list(dict.fromkeys(k.get_name() for k in self.lookup(host, port)))

    def transport_factory(self, host: str, port: int) -> Callable[..., paramiko.Transport]:
        """For ``SSHClient.connect(transport_factory=...)``: a Transport that asks the server
        for the key types known for this host first (as OpenSSH orders HostKeyAlgorithms),
        so a host known by its RSA key is not offered as "changed" because it also has an
        ed25519 key."""
        known = self.key_types(host, port)

        def factory(sock, **kwargs) -> paramiko.Transport:
            t = paramiko.Transport(sock, **kwargs)
            opts = t.get_security_options()
            first: list[str] = []
            for kt in known:
                names = ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] if kt == "ssh-rsa" else [kt]
                first += [n for n in names if n in opts.key_types and n not in first]
            if first:
                opts.key_types = first + [k for k in opts.key_types if k not in first]
            return t

        return factory

    def as_paramiko(self) -> paramiko.HostKeys:
        """The accepting entries as a ``paramiko.HostKeys`` (for code that seeds a paramiko
        client itself). paramiko compares names exactly: wildcard and negated patterns do not
        work there, and revoked keys are left out."""
        hk = paramiko.HostKeys()
        for e in self.entries:
            if not e.marker and not self.is_revoked(e.key):
                for name in e.patterns:
                    if not name.startswith("!"):
                        hk.add(name, e.key.get_name(), e.key)
        return hk

    def items(self):
        """``as_paramiko().items()``: the mapping view older callers iterate."""
        return self.as_paramiko().items()


def load(paths: Iterable[str | os.PathLike[str]]) -> KnownHosts:
    """Every usable line of the files that exist (a missing file is simply empty: first
    contact). A line that cannot be used is skipped, logged and listed in ``warnings``;
    an unreadable file raises OSError."""
    known = KnownHosts()
    for path in paths:
        full = os.path.expanduser(os.fspath(path))
        if not os.path.isfile(full):
            continue
        with open(full, "rb") as f:
            data = f.read()
        for number, raw in enumerate(data.splitlines(), start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                result: object = "not UTF-8 text"
            else:
                result = parse_line(text)
            if result is None:
                continue
            if isinstance(result, str):
                skipped = SkippedLine(full, number, result)
                known.warnings.append(skipped)
                log.warning("known_hosts line skipped: %s", skipped)
                continue
            marker, patterns, key = result
            known.entries.append(Entry(full, number, marker, patterns, key))
    return known


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
    """The check of every hop. Give it the ``KnownHosts`` (and leave paramiko's own host keys
    empty, so paramiko calls it for every host): it accepts a key that a line lists for the
    host, and otherwise refuses, carrying what the user needs to decide:
    ``HostKeyUnknown.fingerprint`` and ``.key`` for ``accept_host_key``; ``HostKeyChanged``;
    ``HostKeyRevoked``. Without ``known`` it checks paramiko's host keys (the old way)."""

    def __init__(self, host: str, port: int, known_file: str,
                 known: KnownHosts | None = None) -> None:
        self.host, self.port, self.known_file, self.known = host, port, known_file, known

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        if self.known is not None:
            self.known.check(self.host, self.port, key)
            return
        # paramiko sends a host whose entry has another key type to BadHostKeyException
        # itself; this is a second guard so such a host can never be "unknown".
        if client.get_host_keys().lookup(hostname):
            raise HostKeyChanged(self.host, self.port, key.get_name(), fingerprint(key),
                                 self.known_file)
        raise HostKeyUnknown(self.host, self.port, key.get_name(), fingerprint(key), key)
