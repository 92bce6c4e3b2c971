"""How a sandbox worker is started: bubblewrap when it works, plain rlimits only when asked.

``plan_isolation(...)`` looks at the machine once (is ``bwrap`` on PATH and can it create
namespaces here? are we root? which interpreter runs solutions?) and returns an
``IsolationPlan`` whose ``worker_command`` builds the exact argv of a worker
(``forkserver.py``). The plan also says, in words, what holds and what does not
(``IsolationPlan.describe``), so results and the GUI can show it.

bwrap as root (the dev machines, CI): new ipc/pid/net/uts/cgroup namespaces but no user
namespace, so the worker is real root with only the capabilities it needs (setuid/setgid to
drop children to 65534, kill to sweep, chown/dac_override/fowner to make and delete run
dirs); children then run as real uid 65534 with no capabilities. bwrap as a normal user:
``--unshare-all`` (a user namespace too); children cannot change uid, so they run as the
mapped invoking user, which still sees only the sandbox's mounts. Without bwrap
("rlimits-only", only with ``allow_unsandboxed=True``): no namespaces at all; see
``RLIMITS_ONLY_GAPS``.

Seccomp (both kinds): when libseccomp is here (``seccomp_filter.py``) the plan holds the
filter program; ``worker_command`` writes it once per process to a private file (0600 in
a 0700 directory, removed at exit) and starts the worker with ``--seccomp-filter PATH``
(bwrap: the file read-only at ``SECCOMP_IN_SANDBOX``; rlimits-only: the host path); the
worker installs it in every child before untrusted code runs. ``use_seccomp``: None = use
it if available, True = require it (``SandboxUnavailable`` if not), False = never.
Leaves out: Landlock, AppArmor/SELinux profiles.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from engine.verify import seccomp_filter

Isolation = Literal["bwrap", "rlimits-only"]

SANDBOX_UID = 65534  # nobody/nogroup on Debian
FORKSERVER = Path(__file__).with_name("forkserver.py")
# Where things appear inside a bwrap sandbox.
FORKSERVER_IN_SANDBOX = "/opt/synthsmith/forkserver.py"
CPP_CACHE_IN_SANDBOX = "/opt/synthsmith/cpp"
SECCOMP_IN_SANDBOX = "/opt/synthsmith/seccomp.bpf"
BUILD_IN_SANDBOX = "/build"
SANDBOX_TMP = "/tmp"

# The environment of the worker (and so of bwrap): nothing from the caller's environment.
WORKER_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}

# Capabilities the worker keeps as root inside bwrap (all others dropped); children lose
# them at setuid(65534).
WORKER_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_CHOWN", "CAP_DAC_OVERRIDE",
               "CAP_FOWNER")

RLIMITS_ONLY_GAPS = (
    "network is NOT blocked (no network namespace)",
    "filesystem isolation only by permissions: the program sees the whole filesystem and "
    "can write wherever uid 65534 may (e.g. /tmp)",
    "other processes are visible; leftovers are killed through the subreaper, not a pid "
    "namespace",
)

# bwrap's size cap for the sandbox's private /tmp (RAM-backed tmpfs): stdin, stdout/stderr
# files and run directories live there.
DEFAULT_TMPFS_BYTES = 1 << 30

_probe_cache: dict[tuple[str, ...], str | None] = {}


class SandboxUnavailable(RuntimeError):
    """The requested isolation cannot be had here; the message says why and what to do."""


@dataclass(frozen=True)
class IsolationPlan:
    kind: Isolation
    python: str  # interpreter that runs the worker and Python solutions
    privileged: bool  # we are root: children drop to SANDBOX_UID
    bwrap: str | None = None
    tmpfs_bytes: int = DEFAULT_TMPFS_BYTES
    notes: tuple[str, ...] = field(default=())
    # The BPF program the worker installs in every child, or None (then why, in words).
    seccomp_filter: bytes | None = field(default=None, repr=False)
    seccomp: str = "off"

    @property
    def drop_uid(self) -> int | None:
        return SANDBOX_UID if self.privileged else None

    @property
    def run_uid(self) -> int:
        """The real uid untrusted code runs as, seen from the host."""
        return SANDBOX_UID if self.privileged else os.getuid()

    # --- Paths as the worker sees them

    def cpp_path(self, host_binary: Path, cpp_cache_dir: Path) -> str:
        if self.kind == "bwrap":
            return f"{CPP_CACHE_IN_SANDBOX}/{host_binary.relative_to(cpp_cache_dir)}"
        return str(host_binary)

    def build_path(self, host_build_dir: Path) -> str:
        return BUILD_IN_SANDBOX if self.kind == "bwrap" else str(host_build_dir)

    # --- The worker's argv

    def worker_command(self, *, one_shot: bool, host_base: Path | None = None,
                       cpp_cache_dir: Path | None = None,
                       build_dir: Path | None = None) -> list[str]:
        flags = ["--one-shot"] if one_shot else []
        if self.drop_uid is not None:
            flags += ["--drop-uid", str(self.drop_uid)]
        filter_file = None if self.seccomp_filter is None else \
            _seccomp_file(self.seccomp_filter)
        if self.kind == "rlimits-only":
            assert host_base is not None, "rlimits-only workers need a host base directory"
            if filter_file is not None:
                flags += ["--seccomp-filter", filter_file]
            return [self.python, "-I", "-S", "-B", str(FORKSERVER), "--base", str(host_base),
                    *flags]
        argv = [self.bwrap, *self._namespace_args(), *_filesystem_args(self.python),
                "--ro-bind", str(FORKSERVER), FORKSERVER_IN_SANDBOX]
        if filter_file is not None:
            argv += ["--ro-bind", filter_file, SECCOMP_IN_SANDBOX]
            flags += ["--seccomp-filter", SECCOMP_IN_SANDBOX]
        if cpp_cache_dir is not None:
            argv += ["--ro-bind", str(cpp_cache_dir), CPP_CACHE_IN_SANDBOX]
        if build_dir is not None:
            argv += ["--bind", str(build_dir), BUILD_IN_SANDBOX]
        argv += ["--size", str(self.tmpfs_bytes), "--tmpfs", SANDBOX_TMP, "--chdir", SANDBOX_TMP,
                 "--", self.python, "-I", "-S", "-B", FORKSERVER_IN_SANDBOX,
                 "--base", SANDBOX_TMP, "--pidns", *flags]
        return argv

    def _namespace_args(self) -> list[str]:
        return _namespace_args(self.privileged)

    def describe(self) -> dict[str, object]:
        """What holds in this plan, in words (for logs, ``doctor`` and the GUI)."""
        bwrap = self.kind == "bwrap"
        return {
            "isolation": self.kind,
            "uid": self.run_uid,
            "uid_dropped": self.privileged,
            "network": "blocked (own network namespace)" if bwrap else "NOT blocked",
            "filesystem": ("only /usr, the interpreter and a private tmpfs, read-only except "
                           "the run directory" if bwrap else "whole filesystem, by permissions"),
            "processes": ("own pid namespace; everything left is killed after each run"
                          if bwrap else "subreaper sweep after each run"),
            "seccomp": self.seccomp,
            "python": self.python,
            "notes": list(self.notes) + ([] if bwrap else list(RLIMITS_ONLY_GAPS)),
        }


# --- bwrap arguments

def _namespace_args(privileged: bool) -> list[str]:
    if privileged:
        # Real root: no user namespace (so setuid(65534) makes the children really uid 65534,
        # and RLIMIT_NPROC applies), and every capability but the worker's few dropped.
        args = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
                "--unshare-cgroup-try", "--cap-drop", "ALL"]
        for cap in WORKER_CAPS:
            args += ["--cap-add", cap]
    else:
        args = ["--unshare-all"]  # includes a user and a network namespace
    return args + ["--die-with-parent", "--new-session", "--hostname", "sandbox"]


def _filesystem_args(python: str) -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):  # merged /usr: keep the symlink
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    # The dynamic loader's cache, and the alternatives g++ & co. may be reached through.
    for extra in ("/etc/ld.so.cache", "/etc/alternatives"):
        args += ["--ro-bind-try", extra, extra]
    prefix = _python_prefix(python)
    if not prefix.startswith("/usr/"):
        # Mounted at its own path (its libpython is found by absolute path). Its parents
        # (e.g. /root for pyenv) are made as empty dirs, traversable by uid 65534: nothing
        # else of $HOME is visible.
        for parent in reversed(Path(prefix).parents[:-1]):
            args += ["--perms", "0755", "--dir", str(parent)]
        args += ["--ro-bind", prefix, prefix]
    return args + ["--proc", "/proc", "--dev", "/dev"]


def _python_prefix(python: str) -> str:
    return str(Path(os.path.realpath(python)).parent.parent)


# --- The seccomp filter: one private file per process and program

_seccomp_files: dict[str, str] = {}  # sha256 of the program -> host path
_seccomp_lock = threading.Lock()


def _seccomp_file(program: bytes) -> str:
    """The host path of a private file holding ``program``, written once per process.

    0600 in a 0700 directory (the worker reads it as root, or as the invoking user when not
    root, before any child drops its uid); rewritten if something removed it; deleted at
    exit by the process that wrote it (not by a fork of it).
    """
    key = hashlib.sha256(program).hexdigest()
    with _seccomp_lock:
        path = _seccomp_files.get(key)
        if path is not None and os.path.isfile(path):
            return path
        directory = tempfile.mkdtemp(prefix="synthsmith-seccomp-")  # 0700
        path = os.path.join(directory, "seccomp.bpf")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(program)
        _seccomp_files[key] = path
        atexit.register(_remove_seccomp_file, path, os.getpid())
        return path


def _remove_seccomp_file(path: str, owner_pid: int) -> None:
    if os.getpid() != owner_pid:
        return
    with contextlib.suppress(OSError):
        os.unlink(path)
    with contextlib.suppress(OSError):
        os.rmdir(os.path.dirname(path))


def _plan_seccomp(use_seccomp: bool | None) -> tuple[bytes | None, str]:
    """(program or None, what describe() says). Raises SandboxUnavailable if required."""
    if use_seccomp is False:
        return None, "off (use_seccomp=False)"
    try:
        program = seccomp_filter.build_filter()
        info = seccomp_filter.describe()
        reason = None
    except seccomp_filter.SeccompUnavailable as exc:
        program, info, reason = None, None, str(exc)
    if reason is None:
        return program, (f"{len(info['denied'])} syscalls denied "
                         f"(libseccomp {info['libseccomp']})")
    if use_seccomp:
        raise SandboxUnavailable(f"seccomp required but unavailable: {reason}. Pass "
                                 "use_seccomp=None to run without the filter (and say so).")
    return None, f"NOT applied: {reason}"


# --- Choosing a plan

def default_python() -> str:
    """The base interpreter (not the venv's): solutions get the standard library only."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def _probe_bwrap(bwrap: str, python: str, privileged: bool) -> str | None:
    """None if bwrap can start our interpreter here, else the reason it cannot."""
    argv = (bwrap, *_namespace_args(privileged), *_filesystem_args(python),
            "--tmpfs", SANDBOX_TMP, "--", python, "-I", "-S", "-c", "pass")
    if argv not in _probe_cache:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                                 env=WORKER_ENV)
            _probe_cache[argv] = None if out.returncode == 0 else (
                f"bwrap failed (exit {out.returncode}): {out.stderr.strip()[-500:]}")
        except (OSError, subprocess.TimeoutExpired) as exc:
            _probe_cache[argv] = f"bwrap failed to run: {exc}"
    return _probe_cache[argv]


def _world_traversable(path: str) -> str | None:
    """None if uid 65534 can reach and run ``path``; else the first blocking component."""
    real = Path(os.path.realpath(path))
    for parent in reversed(real.parents):
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            return str(parent)
    if not os.stat(real).st_mode & stat.S_IXOTH:
        return str(real)
    return None


def plan_isolation(*, python: str | None = None, use_bwrap: bool | None = None,
                   allow_unsandboxed: bool = False,
                   tmpfs_bytes: int = DEFAULT_TMPFS_BYTES,
                   use_seccomp: bool | None = None) -> IsolationPlan:
    """Pick the isolation. Raises SandboxUnavailable rather than degrade silently.

    ``use_seccomp``: None = the syscall filter if libseccomp is here, True = require it,
    False = never.
    """
    python = os.path.realpath(python or default_python())
    privileged = os.geteuid() == 0
    seccomp_program, seccomp_text = _plan_seccomp(use_seccomp)
    seccomp = {"seccomp_filter": seccomp_program, "seccomp": seccomp_text}
    reason = None
    if use_bwrap is not False:
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            reason = "bubblewrap (bwrap) is not installed"
        else:
            reason = _probe_bwrap(bwrap, python, privileged)
            if reason is None:
                notes = () if privileged else (
                    "not root: code runs as the invoking user inside a user namespace "
                    "(no uid drop); RLIMIT_NPROC counts per sandbox",)
                return IsolationPlan("bwrap", python, privileged, bwrap, tmpfs_bytes, notes,
                                     **seccomp)
        if use_bwrap:
            raise SandboxUnavailable(f"{reason}. Install it (apt-get install bubblewrap) or "
                                     "pass use_bwrap=None/False with allow_unsandboxed=True.")
    else:
        reason = "bwrap disabled by use_bwrap=False"
    if not allow_unsandboxed:
        raise SandboxUnavailable(
            f"No sandbox: {reason}. Install bubblewrap (apt-get install bubblewrap), or pass "
            "allow_unsandboxed=True to run with rlimits only (results then say "
            "isolation='rlimits-only': no network or filesystem isolation).")
    if privileged:
        blocked = _world_traversable(python) or _world_traversable(
            os.path.join(_python_prefix(python), "lib"))
        if blocked:
            raise SandboxUnavailable(
                f"rlimits-only: code runs as uid {SANDBOX_UID}, which cannot reach the "
                f"interpreter {python} ({blocked} is not world-accessible). Pass "
                "python='/usr/bin/python3' or install bubblewrap.")
    notes = (f"no bwrap: {reason}",) + (() if privileged else (
        "not root: code runs as the invoking user and can read that user's files "
        "(e.g. ~/.ssh)",))
    return IsolationPlan("rlimits-only", python, privileged, None, tmpfs_bytes, notes,
                         **seccomp)
