"""What the desktop receives from a cluster is untrusted input: paths, names, output sizes.

A cluster is shared infrastructure; a compromised login node (or a job's own log text) can
put anything into a ``find`` listing or a poll answer. Everything that turns remote data into
a local path goes through ``safe_join`` (or ``safe_name`` for a plain file name), and every
remote command whose output the desktop collects goes through ``run_capped`` (a byte cap and
a time cap)::

    local = safe_join(dest, rel)          # UnsafeRemotePath unless it stays inside dest
    name = safe_name(name, "*.jsonl")     # a plain file name matching what we asked for
    private_dir(folder)                   # 0700, whatever the umask
    with private_open(path, "ab") as fh:  # 0600, no symlink followed at the last component
        ...
"""

from __future__ import annotations

import contextlib
import fnmatch
import inspect
import os
import stat
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from remote.errors import RemoteError

MAX_PATH = 1024  # characters in a relative path from a cluster
MAX_NAME = 255  # characters in one component (the usual NAME_MAX)
MAX_DEPTH = 32  # components


class UnsafeRemotePath(RemoteError, ValueError):
    """A path or name from a cluster that would leave its destination, or is malformed."""

    def __init__(self, path: str, why: str) -> None:
        self.path, self.why = path, why
        super().__init__(f"refused a path from the cluster: {path!r} ({why})")


class OutputTooLarge(RemoteError):
    """A remote command's output passed its byte cap (a chatty or compromised cluster)."""


def _bad_char(text: str) -> str | None:
    for ch in text:
        if ch == "\0":
            return "a NUL character"
        cat = unicodedata.category(ch)
        if cat == "Cc":
            return f"a control character U+{ord(ch):04X}"
        if cat in ("Cf", "Zl", "Zp") or ch in "\u2028\u2029":
            return f"an invisible or bidi formatting character U+{ord(ch):04X}"
    return None


def check_relative(rel: str) -> list[str]:
    """The components of a remote-supplied relative path, or ``UnsafeRemotePath``."""
    if not isinstance(rel, str):
        raise UnsafeRemotePath(repr(rel), "not text")
    if not rel:
        raise UnsafeRemotePath(rel, "empty")
    if len(rel) > MAX_PATH:
        raise UnsafeRemotePath(rel[:80] + "...", f"longer than {MAX_PATH} characters")
    bad = _bad_char(rel)
    if bad:
        raise UnsafeRemotePath(rel, f"contains {bad}")
    if "\\" in rel:
        raise UnsafeRemotePath(rel, "contains a backslash")
    if rel.startswith("/"):
        raise UnsafeRemotePath(rel, "absolute")
    if len(rel) >= 2 and rel[1] == ":" and rel[0].isalpha():
        raise UnsafeRemotePath(rel, "a drive-absolute path")
    parts = rel.split("/")
    if len(parts) > MAX_DEPTH:
        raise UnsafeRemotePath(rel, f"deeper than {MAX_DEPTH} folders")
    for part in parts:
        if part == "..":
            raise UnsafeRemotePath(rel, "a '..' component")
        if part in ("", "."):
            raise UnsafeRemotePath(rel, "an empty or '.' component")
        if len(part.encode("utf-8", "surrogatepass")) > MAX_NAME:
            raise UnsafeRemotePath(rel, f"a component longer than {MAX_NAME} bytes")
    return parts


def safe_join(dest: str | os.PathLike[str], rel: str) -> Path:
    """``dest / rel`` for a remote-supplied ``rel``, refused (``UnsafeRemotePath``, naming the
    path and why) unless it is a plain relative path that stays inside ``dest`` once the
    symlinks already present under ``dest`` are resolved."""
    parts = check_relative(rel)
    base = Path(dest)
    local = base.joinpath(*parts)
    root = base.resolve()
    resolved = local.resolve()  # non-strict: follows what exists, keeps the rest
    if resolved != root and root not in resolved.parents:
        raise UnsafeRemotePath(rel, f"leaves {base} through a symlink (to {resolved})")
    if resolved == root:
        raise UnsafeRemotePath(rel, f"names {base} itself")
    return local


def safe_name(name: str, pattern: str | None = None) -> str:
    """A plain file name from a cluster (no folder, no dot file), matching ``pattern`` (a
    shell glob such as ``*.jsonl``: what we asked for), or ``UnsafeRemotePath``."""
    parts = check_relative(name)
    if len(parts) != 1:
        raise UnsafeRemotePath(name, "not a plain file name")
    if name.startswith("."):
        raise UnsafeRemotePath(name, "a hidden name")
    if pattern is not None and not fnmatch.fnmatchcase(name, pattern):
        raise UnsafeRemotePath(name, f"not a {pattern} file")
    return name


# --- private local files ------------------------------------------------------------------------


def private_dir(path: str | os.PathLike[str], *, fix_existing: bool = True) -> Path:
    """Make ``path`` (and missing parents) mode 0700 whatever the umask; an existing ``path``
    is tightened too when ``fix_existing`` (folders this app owns)."""
    path = Path(path)
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for p in reversed(missing):
        with contextlib.suppress(FileExistsError):
            p.mkdir(mode=0o700)
        os.chmod(p, 0o700)
    if fix_existing and path.is_dir() and not path.is_symlink() and \
            stat.S_IMODE(path.stat().st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def private_open(path: str | os.PathLike[str], mode: str = "ab") -> IO[Any]:
    """Open for writing with mode 0600 (created so, and tightened if it existed), refusing a
    symlink at the last component."""
    flags = {"ab": os.O_WRONLY | os.O_APPEND | os.O_CREAT,
             "wb": os.O_WRONLY | os.O_TRUNC | os.O_CREAT,
             "w": os.O_WRONLY | os.O_TRUNC | os.O_CREAT,
             "a+b": os.O_RDWR | os.O_APPEND | os.O_CREAT}[mode]
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o600)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)
        return os.fdopen(fd, mode)
    except BaseException:
        os.close(fd)
        raise


# --- capped remote output -----------------------------------------------------------------------


def _accepts(runner: Any, name: str) -> bool:
    try:
        return name in inspect.signature(runner.run).parameters
    except (TypeError, ValueError):
        return False


def _accepts_max_bytes(runner: Any) -> bool:
    return _accepts(runner, "max_bytes")


def run_capped(runner: Any, argv: Sequence[Any], *, max_bytes: int, timeout: float,
               what: str, idempotent: bool = False) -> Any:
    """``runner.run(argv)`` with a time cap and a byte cap on its output. Runners that take
    ``max_bytes`` (``LocalRunner``, ``SSHRunner``) stop reading at the cap, so memory stays
    bounded; for others the cap is checked afterwards. ``idempotent`` (a command that only
    reads) goes to runners that take it (``remote.runner``). -> RunResult, or
    ``OutputTooLarge``."""
    extra = {"idempotent": True} if idempotent and _accepts(runner, "idempotent") else {}
    if _accepts_max_bytes(runner):
        try:
            result = runner.run(argv, timeout=timeout, max_bytes=max_bytes, **extra)
        except OutputTooLarge as exc:
            raise OutputTooLarge(f"{runner.name}: {what}: {exc}") from None
    else:
        result = runner.run(argv, timeout=timeout, **extra)
    if len(result.stdout) > max_bytes or len(result.stderr) > max_bytes:
        raise OutputTooLarge(f"{runner.name}: {what}: the answer passed {max_bytes} bytes; "
                             "refused (a chatty or compromised cluster?)")
    return result


__all__ = ["MAX_NAME", "MAX_PATH", "OutputTooLarge", "UnsafeRemotePath", "check_relative",
           "private_dir", "private_open", "run_capped", "safe_join", "safe_name"]
