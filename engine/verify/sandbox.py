"""Run untrusted generated programs (Python, C++) on one input each, under limits.

This is the ONLY place SynthSmith runs LLM-written code: candidate solutions, input
generators and validators. ``Sandbox.run`` is the one-shot path (a fresh sandbox and a
fresh interpreter per run); ``SandboxPool`` keeps pre-started workers (a fork-server inside
the sandbox forks one child per run, no interpreter start) for throughput. Both return a
``RunResult`` dataclass; ``check_output`` compares it with an expected output.

    with SandboxPool() as pool:                       # os.cpu_count() workers
        grid = pool.run_matrix(candidates, inputs, Limits(cpu_s=10, memory_mb=256))
        verdict = check_output(grid[0][0], expected)  # status "ok" or "wrong"

What each run gets, in both modes (details and degradations in ``isolation.py``):
- A fresh run directory (cwd, HOME and TMPDIR; removed afterwards) holding the program's
  files (``Program.files``) and this run's files (``run(..., files=...)``, e.g. a checker's
  input.txt/output.txt/answer.txt), written before the program starts, read-only: files
  0444, the directories made for them 0555, owned by root when the run drops to uid 65534
  (not root: owned by the run's own uid, so the mode bits hold only against accidents). The
  directory itself stays writable: the program may create files there, and may delete or
  replace a top-level file (its own copy, for this run only). Nothing of one run is left
  for the next. A Python program with files runs with the run directory and its
  ``include/`` first on sys.path (``import helper`` works as beside ``solution.py``) and
  PYTHONPATH=<rundir>/include; one without files gets neither (exactly as before). (In the
  pool a file named like a pre-imported module, e.g. collections.py, does not shadow it.)
  Python sees ``sys.argv == ["solution.py", *Program.args]``; C++ ``argv[1:] == args``.
- C++: g++ compiles solution.cpp beside the program's files, with ``-I`` on that directory
  and on its ``include/`` (``#include "testlib.h"`` finds include/testlib.h); the compile
  cache key covers the files (not the per-run ones). A failed compile is a
  ``compile_error`` result whose ``stderr`` holds g++'s message.
- CPU limit (the worker polls the process's CPU time; RLIMIT_CPU backs it up for threads
  and extra processes) and a wall limit (default 2 x cpu + 1 s); at either, the process
  group is killed, then everything the run left in the sandbox.
- Memory: RLIMIT_AS per process (MemoryError in Python, std::bad_alloc in C++), plus, where
  cgroups are writable, a memory limit on the worker's whole tree (OOM kill ->
  ``memory_limit``). Peak memory is ru_maxrss from wait4.
- Statuses come from what the kernel reports, never from the program's stderr: exit code,
  signal, CPU time, output size, the cgroup's OOM counter, and a failed run whose peak
  resident memory reached half the limit is ``memory_limit`` (a program printing
  "MemoryError" and exiting 1 is a ``runtime_error``). When the sandbox itself fails around
  a run (a worker that breaks during setup or cleanup, or dies twice), the run is
  ``internal_error``: a verdict of its own (never a vote), the worker is replaced, and
  ``run_many`` carries on; nothing one run does raises at the caller.
- ``run_many(..., keep=f)`` keeps ``f(result)`` of each run as it ends (a digest, a file):
  host memory then holds only the runs in flight, whatever the batch's size.
- Output: stdout/stderr are RAM files (memfd) capped by RLIMIT_FSIZE, so nothing reaches
  the disk; past ``output_bytes`` the status is ``output_limit``. stdout comes back up to
  the cap, stderr as its last ``stderr_tail_bytes``. stdin is a file holding the input.
- Fork bomb guard: as root (cluster, CI) the code runs as uid/gid 65534 without
  capabilities (RLIMIT_NPROC does not apply to root), RLIMIT_NPROC as a machine-wide
  backstop, a cgroup pids limit where available, and after every run a sweep kills all it
  left (in bwrap: kill(-1) inside the sandbox's pid namespace; otherwise via a subreaper).
- bwrap (required unless ``allow_unsandboxed=True``): no network (own network namespace),
  only /usr and the interpreter mounted, read-only and nosuid, no_new_privs, a private
  size-capped tmpfs /tmp that uid 65534 cannot write to, and a fresh run directory per run
  (cwd, HOME and TMPDIR; the only writable place; removed afterwards); $HOME, ~/.ssh and the
  repository are not mounted; --die-with-parent, --new-session. Environment: PATH, LANG,
  HOME, TMPDIR only (and PYTHONPATH for a Python program with files).
- Seccomp (where libseccomp loads; ``Sandbox.describe()["seccomp"]`` says so, or why not):
  every run's process runs under a syscall filter (``seccomp_filter.py``), installed by the
  worker after the uid drop and before the program starts (compiler included): EPERM for
  the kernel keyring, ptrace and process_vm_*, mount and the new mount API, unshare/setns
  and clone with namespace flags (no new user namespaces), sockets other than AF_UNIX (no
  AF_VSOCK, AF_NETLINK, AF_PACKET, AF_INET), bpf, perf_event_open, userfaultfd, io_uring,
  module/kexec/reboot/swap/quota calls, open_by_handle_at; clone3 gets ENOSYS (glibc falls
  back to clone); a syscall of another ABI (i386, x32) kills the process.
- ``RunResult.isolation`` always says which isolation the run had; ``Sandbox.describe()``
  says what holds on this machine.

What it does NOT cover (the honest threat model):
- The seccomp filter is a deny-list (default allow): the rest of the kernel's syscall
  surface (file systems, pipes, futex, memory management, ioctl on the few devices in
  /dev, syscalls newer than libseccomp's table) stays reachable, so a kernel exploit through
  it escapes. The worker itself is not filtered. Without libseccomp, or with
  ``use_seccomp=False``, there is no filter at all (``describe()`` says so). No
  Landlock/AppArmor either.
- In the pool, the worker (root inside the sandbox, with a few capabilities, no rlimits)
  compiles each Python source itself and caches the marshalled code: CPython's parser and
  compiler see untrusted input outside the locked-down child.
- Each run's child is a fork of the worker's zygote, which never holds job bytes
  (``forkserver.py``): no earlier run's source, input or output is in its memory, freed or
  not. It shares the zygote's str hash seed (set iteration order repeats across runs of one
  worker) and sees the pre-imported modules.
- SysV IPC objects a run leaves are removed before the next run (as root in bwrap the worker
  cannot give each run its own IPC namespace; where it can, it does); /tmp and /dev/shm are
  not writable by the runs. Runs on different workers never overlap in one namespace.
- Threads: the main thread's stack grows up to the memory limit (RLIMIT_STACK unlimited),
  so deep recursion works; threads of exec'd programs (C++, one-shot Python) then get
  glibc's default 2 MiB stack unless they ask for more, pool Python threads 8 MiB.
- Not root (a developer laptop): no uid drop; the code runs as you inside a user namespace
  and can kill its own worker (the run then ends ``internal_error``).
- CPU of extra processes is limited per process, RLIMIT_NPROC is per uid (shared by all
  concurrent runs) when no pids cgroup is available; no limits on disk I/O bandwidth, page
  cache or CPU caches (timing side channels); world-readable files under /usr are readable.
- Without bwrap ("rlimits-only") network and filesystem are NOT isolated. Linux only.
- Python solutions get the standard library only (``-I -S``: no site-packages), plus, for
  a program with files, the run directory and its include/ (``-s -B -S``, PYTHONPATH).

Tests: ``pytest tests/engine/verify/test_sandbox.py`` (adversarial, both modes),
``tests/engine/verify/test_sandbox_files.py`` (files and arguments),
``tests/engine/verify/test_sandbox_batches.py`` (internal errors, statuses, bounded memory),
``test_sandbox_clean_runs.py`` (nothing carries over between runs; correct idioms in both
modes), ``test_seccomp.py`` (the syscall filter);
throughput: ``python tests/bench/sandbox_throughput.py``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import queue
import select
import shlex
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal, TypeVar

from engine.verify.cgroups import Cgroup
from engine.verify.cpp_cache import (
    BINARY_NAME,
    DEFAULT_FLAGS,
    SOURCE_NAME,
    CompiledProgram,
    CppCompileCache,
    file_parts,
    sha256_of_parts,
)
from engine.verify.isolation import (
    DEFAULT_TMPFS_BYTES,
    WORKER_ENV,
    Isolation,
    IsolationPlan,
    SandboxUnavailable,
    plan_isolation,
)

__all__ = [
    "Isolation", "Language", "Limits", "Mode", "Program", "RunResult", "Sandbox",
    "SandboxError", "SandboxPool", "SandboxUnavailable", "Status", "check_files",
    "check_output", "normalize_output", "outputs_match",
]

Status = Literal["ok", "wrong", "runtime_error", "time_limit", "memory_limit", "output_limit",
                 "compile_error", "internal_error"]
Language = Literal["python", "cpp"]
Mode = Literal["one-shot", "pool"]
T = TypeVar("T")


class SandboxError(RuntimeError):
    """The sandbox itself failed (a worker died twice, did not answer): not a verdict."""


# --- Limits, programs, results

@dataclass(frozen=True)
class Limits:
    cpu_s: float = 10.0  # SYNTHSMITH.md §8: 10 s, 256 MB
    wall_s: float | None = None  # None: 2 x cpu_s + 1
    memory_mb: int = 256  # address space per process (RLIMIT_AS)
    output_bytes: int = 32 << 20  # stdout cap; more is output_limit
    file_bytes: int = 64 << 20  # largest file the program may write (RLIMIT_FSIZE)
    max_processes: int = 32  # processes + threads (RLIMIT_NPROC / cgroup pids)
    stderr_tail_bytes: int = 4096

    def __post_init__(self) -> None:
        problems = [f"{name} must be > 0 (got {getattr(self, name)!r})"
                    for name in ("cpu_s", "memory_mb", "output_bytes", "file_bytes",
                                 "max_processes", "stderr_tail_bytes")
                    if not getattr(self, name) > 0]
        if self.wall_s is not None and not self.wall_s > 0:
            problems.append(f"wall_s must be > 0 or None (got {self.wall_s!r})")
        if problems:
            raise ValueError("Limits: " + "; ".join(problems))

    @property
    def wall_limit_s(self) -> float:
        return self.wall_s if self.wall_s is not None else 2 * self.cpu_s + 1

    @property
    def memory_bytes(self) -> int:
        return self.memory_mb << 20

    def wire(self, nproc: int) -> dict[str, float | int]:
        """The limits as the worker applies them."""
        return {
            "cpu_s": self.cpu_s, "wall_s": self.wall_limit_s,
            "memory_bytes": self.memory_bytes, "stack_bytes": self.memory_bytes,
            # +1 byte: a file that reaches cap+1 bytes proves the program wanted more.
            "fsize_bytes": max(self.output_bytes, self.file_bytes) + 1,
            "output_bytes": self.output_bytes, "nproc": nproc, "nofile": 256,
            "stderr_tail_bytes": self.stderr_tail_bytes,
        }


COMPILE_LIMITS = Limits(cpu_s=30, wall_s=90, memory_mb=2048, output_bytes=1 << 20,
                        file_bytes=256 << 20, max_processes=16, stderr_tail_bytes=8192)


# Names the sandbox itself uses in the run and build directories.
RESERVED_NAMES = frozenset({"solution.py", SOURCE_NAME, BINARY_NAME})
MAX_FILES_BYTES = 64 << 20  # per file set: a program's files, or one run's files
MAX_PATH_BYTES = 1024

Files = tuple[tuple[str, bytes], ...]
FilesArg = Mapping[str, bytes | str] | Iterable[tuple[str, bytes | str]]


def check_files(files: FilesArg | None, what: str = "files", *, beside: Files = ()) -> Files:
    """Validate and normalise extra files: ``{path: content}`` or ``(path, content)`` pairs
    -> sorted ``(path, bytes)`` pairs (str content is encoded as UTF-8).

    A path is relative POSIX (``include/testlib.h``): no absolute path, no empty, ``.`` or
    ``..`` component, no NUL, not one of the sandbox's own names (``RESERVED_NAMES``), unique
    (also against ``beside``, and no file where another needs a directory); at most
    ``MAX_FILES_BYTES`` in all. Raises ValueError naming the file and the rule.
    """
    if not files:
        return ()
    items = files.items() if isinstance(files, Mapping) else files
    beside_names = {name for name, _ in beside}
    taken = dict.fromkeys(beside_names, "file")
    for name in beside_names:
        for parent in PurePosixPath(name).parents[:-1]:
            taken[str(parent)] = "directory"
    out: list[tuple[str, bytes]] = []
    total = 0
    for item in items:
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise ValueError(f"{what}: each entry must be a (path, content) pair, got "
                             f"{item!r:.80}")
        name, data = item
        if not isinstance(name, str):
            raise ValueError(f"{what}: path {name!r:.80} must be a str")

        def bad(rule: str, name: str = name) -> ValueError:
            return ValueError(f"{what}: {name!r:.200} {rule}")

        if isinstance(data, str):
            data = data.encode()
        elif isinstance(data, bytes | bytearray | memoryview):
            data = bytes(data)
        else:
            raise bad(f"content must be bytes or str, not {type(data).__name__}")
        if "\0" in name:
            raise bad("contains a NUL character")
        try:
            encoded = name.encode()
        except UnicodeEncodeError:
            raise bad("is not valid UTF-8") from None
        if name.startswith("/"):
            raise bad("is absolute: paths are relative to the run directory")
        parts = name.split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise bad("has an empty, '.' or '..' component: paths must be plain relative "
                      "POSIX paths inside the run directory")
        if len(encoded) > MAX_PATH_BYTES or any(len(p.encode()) > 255 for p in parts):
            raise bad(f"is too long (at most {MAX_PATH_BYTES} bytes, 255 per component)")
        if parts[0] in RESERVED_NAMES:
            raise bad(f"clashes with the sandbox's own {parts[0]!r} "
                      f"(reserved: {', '.join(sorted(RESERVED_NAMES))})")
        if name in beside_names:
            raise bad("clashes with a program file of the same path")
        if taken.get(name) == "file":
            raise bad("is given twice")
        if taken.get(name) == "directory":
            raise bad("is a file where another file needs a directory")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if taken.get(parent) == "file":
                raise bad(f"needs {parent!r} to be a directory, but it is a file")
            taken[parent] = "directory"
        taken[name] = "file"
        total += len(data)
        if total > MAX_FILES_BYTES:
            raise bad(f"takes the {what} over {MAX_FILES_BYTES >> 20} MiB in all")
        out.append((name, data))
    return tuple(sorted(out))


@dataclass(frozen=True)
class Program:
    """A program to run: its source and, optionally, extra files and command-line arguments.

    ``files``: ``(path, content)`` pairs (see ``check_files``; stored sorted by path) present
    at compile time (C++: beside solution.cpp, with ``-I`` on that directory and on its
    ``include/``) and at run time (in the run directory, read-only). ``args``: Python sees
    ``sys.argv == ["solution.py", *args]``, a C++ binary ``argv[1:] == args``.
    """

    language: Language
    source: str
    files: Files = ()
    args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", check_files(self.files, "Program.files"))
        if isinstance(self.args, str):
            raise ValueError(f"Program.args must be a sequence of str, not the str "
                             f"{self.args!r:.80}")
        args = tuple(self.args)
        for arg in args:
            if not isinstance(arg, str) or "\0" in arg:
                raise ValueError(f"Program.args: {arg!r:.80} must be a str without NUL")
        object.__setattr__(self, "args", args)

    @classmethod
    def python(cls, source: str, *, files: FilesArg = (), args: Sequence[str] = ()) -> Program:
        return cls("python", source, files, args)

    @classmethod
    def cpp(cls, source: str, *, files: FilesArg = (), args: Sequence[str] = ()) -> Program:
        return cls("cpp", source, files, args)

    @functools.cached_property
    def source_key(self) -> str:
        """sha256 of the source alone (the worker's Python code cache is keyed by it)."""
        return hashlib.sha256(self.source.encode()).hexdigest()

    @functools.cached_property
    def key(self) -> str:
        """What results, caches and batches are keyed by: ``source_key`` for a plain program,
        else a sha256 over the source, the files and the args."""
        if not self.files and not self.args:
            return self.source_key
        return sha256_of_parts([self.source.encode(), *file_parts(self.files),
                                str(len(self.args)).encode(), *(a.encode() for a in self.args)])


@dataclass(frozen=True)
class RunResult:
    status: Status
    exit_code: int | None  # None when killed by a signal
    signal: int | None
    cpu_s: float
    wall_s: float
    peak_memory_kb: int  # ru_maxrss from wait4
    stdout: bytes  # at most Limits.output_bytes
    stdout_truncated: bool
    stderr: str  # the last Limits.stderr_tail_bytes
    isolation: Isolation
    mode: Mode
    language: Language
    program_key: str
    detail: str = ""  # why this status, in one line
    compile_cache_hit: bool | None = None  # C++ only

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")

    @property
    def passed(self) -> bool:
        return self.status == "ok"


def normalize_output(data: bytes | str) -> str:
    """The comparison form of an output: trailing spaces per line and blank lines at either
    end dropped, CRLF as LF. Equal normalized outputs vote together (SYNTHSMITH.md §6)."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def outputs_match(actual: bytes | str, expected: bytes | str) -> bool:
    return normalize_output(actual) == normalize_output(expected)


def check_output(result: RunResult, expected: bytes | str) -> RunResult:
    """``ok`` -> ``ok`` or ``wrong`` by comparison; any other status is kept as is."""
    if result.status != "ok":
        return result
    if result.stdout_truncated or not outputs_match(result.stdout, expected):
        return dataclasses.replace(result, status="wrong", detail="output differs")
    return result


# --- Classification: raw facts from the worker -> a status

# A run that failed after its resident memory reached this share of the limit ran out of
# memory (RLIMIT_AS refused it more): the kernel's facts, never the program's own words.
MEMORY_NEAR_LIMIT = 0.5


def _classify(raw: dict, stderr: str, limits: Limits, oom_kills: int) -> tuple[Status, str]:
    """A run's status from what the kernel reported (exit status, signal, rusage, the
    cgroup's OOM counter, the worker's limit kills), never from the program's stderr: a
    program printing "MemoryError" and exiting 1 is a runtime error like any other."""
    sig, code, cpu = raw["signal"], raw["exit_code"], raw["cpu_s"]
    try:
        signame = signal.Signals(sig).name if sig else None
    except ValueError:
        signame = f"signal {sig}"

    start_error = raw.get("start_error")
    if start_error:
        if start_error.get("errno") == 12:  # ENOMEM: the binary does not fit the limit
            return "memory_limit", f"could not start: {start_error['error']}"
        return "runtime_error", f"could not start: {start_error['error']}"
    if raw["killed"] == "wall":
        return "time_limit", f"wall limit {limits.wall_limit_s:g} s reached (cpu {cpu:.2f} s)"
    if raw["killed"] == "cpu" or sig == signal.SIGXCPU or cpu > limits.cpu_s:
        return "time_limit", f"cpu limit {limits.cpu_s:g} s reached ({cpu:.2f} s)"
    if raw["stdout_size"] > limits.output_bytes or sig == signal.SIGXFSZ:
        return "output_limit", f"output over {limits.output_bytes} bytes"
    if oom_kills:
        return "memory_limit", "killed by the OOM killer at the cgroup memory limit"
    if code != 0 or sig:
        peak_mb = raw["maxrss_kb"] / 1024
        if peak_mb >= MEMORY_NEAR_LIMIT * limits.memory_mb:
            return "memory_limit", (f"failed ({signame or f'exit code {code}'}) at "
                                    f"{peak_mb:.0f} MB resident of the {limits.memory_mb} MB "
                                    "limit")
        return "runtime_error", f"killed by {signame}" if signame else f"exit code {code}"
    return "ok", ""


# --- Worker processes (forkserver.py) and their protocol

class _WorkerDied(Exception):
    pass


class _WorkerFailed(_WorkerDied):
    """The worker answered that it failed around a run (not the program's doing)."""


def _shell_join_cgroups(procs_files: Sequence[Path]) -> str:
    # Joins the cgroup(s) before exec'ing bwrap, so every process of the sandbox starts
    # inside. (A shell rather than preexec_fn: preexec_fn is unsafe with threads.)
    return " && ".join(f"echo $$ > {shlex.quote(str(p))}" for p in procs_files) + \
        ' && exec "$@"'


class _Worker:
    """One forkserver process (inside bwrap, or not), spoken to over its stdin/stdout."""

    def __init__(self, plan: IsolationPlan, *, one_shot: bool, cpp_cache_dir: Path | None,
                 build_dir: Path | None = None, use_cgroups: bool = True):
        self.plan = plan
        self.cgroup = Cgroup.create("oneshot" if one_shot else "worker") if use_cgroups \
            else None
        self.host_base = None
        if plan.kind == "rlimits-only":
            self.host_base = Path(tempfile.mkdtemp(prefix="synthsmith-sandbox-"))
            os.chmod(self.host_base, 0o711)  # run dirs inside belong to uid 65534
        argv = plan.worker_command(one_shot=one_shot, host_base=self.host_base,
                                   cpp_cache_dir=cpp_cache_dir, build_dir=build_dir)
        if self.cgroup is not None:
            argv = ["/bin/sh", "-c", _shell_join_cgroups(self.cgroup.procs_files), "sh", *argv]
        self._limits_set: tuple[int, int] | None = None
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in _cleanup
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, env=WORKER_ENV, start_new_session=True)
        self.ready: dict | None = None
        self._buffer = bytearray()
        self._poller = select.poll()
        self._poller.register(self.proc.stdout.fileno(), select.POLLIN)
        self._oom_seen = 0

    # --- Frames

    def _send(self, header: dict, blobs: Sequence[bytes]) -> None:
        header = dict(header, blobs=[len(b) for b in blobs])
        raw = json.dumps(header).encode()
        data = memoryview(b"".join([struct.pack(">I", len(raw)), raw, *blobs]))
        try:
            while data:
                data = data[os.write(self.proc.stdin.fileno(), data):]
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise _WorkerDied(f"cannot write to the worker: {exc}") from exc

    def _read_exact(self, n: int, deadline: float) -> bytes:
        # Reads through a buffer: a reply usually arrives in one read.
        while len(self._buffer) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _WorkerDied("the worker did not answer in time")
            if not self._poller.poll(remaining * 1000):
                continue
            chunk = os.read(self.proc.stdout.fileno(), max(n - len(self._buffer), 1 << 16))
            if not chunk:
                raise _WorkerDied("the worker exited")
            self._buffer += chunk
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    def _receive(self, deadline: float) -> tuple[dict, list[bytes]]:
        (length,) = struct.unpack(">I", self._read_exact(4, deadline))
        header = json.loads(self._read_exact(length, deadline))
        return header, [self._read_exact(n, deadline) if n else b"" for n in header["blobs"]]

    def wait_ready(self, timeout: float = 60.0) -> None:
        header, _ = self._receive(time.monotonic() + timeout)
        if not header.get("ready"):
            raise _WorkerDied(f"unexpected first frame {header}")
        self.ready = header

    # --- Jobs

    def run_job(self, header: dict, blobs: Sequence[bytes], limits: Limits,
                ) -> tuple[dict, bytes, bytes]:
        if self.cgroup is not None:
            # The cgroup holds the worker too, and the memfd/tmpfs files are RAM charged to
            # it: leave room for those above the per-process limit.
            wanted = (limits.memory_bytes + 2 * max(limits.output_bytes, limits.file_bytes)
                      + (256 << 20), limits.max_processes + 4)
            if wanted != self._limits_set:
                self.cgroup.set_limits(*wanted)
                self._limits_set = wanted
        if self.ready is None:
            self.wait_ready()
        self._send(header, blobs)
        # The worker enforces the wall limit itself; this deadline only catches a worker
        # that hangs or dies without closing its pipe.
        reply, blobs = self._receive(time.monotonic() + limits.wall_limit_s + 30)
        if "worker_error" in reply:
            # The worker failed around the run (setup, cleanup): the run's own verdict, and
            # this worker is not trusted again.
            raise _WorkerFailed(f"{reply['worker_error']}\n{reply.get('traceback', '')}")
        # The OOM killer sends SIGKILL; only then is the cgroup's counter worth a read.
        killed = reply["signal"] == signal.SIGKILL and not reply["killed"]
        reply["oom_kills"] = self.new_oom_kills() if killed else 0
        stdout, stderr = (blobs + [b"", b""])[:2]
        return reply, stdout, stderr

    def new_oom_kills(self) -> int:
        """OOM kills in this worker's cgroup since the last call."""
        if self.cgroup is None:
            return 0
        total = self.cgroup.oom_kills()
        new, self._oom_seen = total - self._oom_seen, total
        return new

    def log_tail(self, n: int = 2000) -> str:
        with contextlib.suppress(OSError, ValueError):
            self.log.seek(0, os.SEEK_END)
            self.log.seek(max(0, self.log.tell() - n))
            return self.log.read().decode(errors="replace")
        return ""

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self, timeout: float = 5.0) -> None:
        if self.alive:
            with contextlib.suppress(_WorkerDied):
                self._send({"op": "exit"}, [])
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._cleanup()

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # bwrap's session: bwrap and its init
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._cleanup()

    def _cleanup(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout, self.log):
            with contextlib.suppress(OSError, ValueError):
                stream.close()
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None
        if self.host_base is not None:
            shutil.rmtree(self.host_base, ignore_errors=True)
            self.host_base = None


# --- Sandbox: configuration and the one-shot path

class Sandbox:
    """A sandbox configuration and its one-shot runner (fresh sandbox per run).

    ``use_bwrap``: None = use bwrap if it works here, True = require it, False = never.
    Without bwrap, construction raises ``SandboxUnavailable`` unless
    ``allow_unsandboxed=True``; then every result says ``isolation="rlimits-only"``.
    """

    def __init__(self, *, python: str | None = None, cpp_cache_dir: str | Path | None = None,
                 gxx: str = "g++", cxx_flags: Sequence[str] = DEFAULT_FLAGS,
                 use_bwrap: bool | None = None, allow_unsandboxed: bool = False,
                 use_cgroups: bool = True, tmpfs_bytes: int = DEFAULT_TMPFS_BYTES,
                 limits: Limits | None = None, use_seccomp: bool | None = None):
        self.plan = plan_isolation(python=python, use_bwrap=use_bwrap,
                                   allow_unsandboxed=allow_unsandboxed,
                                   tmpfs_bytes=tmpfs_bytes, use_seccomp=use_seccomp)
        self.cpp = CppCompileCache(cpp_cache_dir, gxx=gxx, flags=cxx_flags)
        self.use_cgroups = use_cgroups
        self.limits = limits or Limits()
        self._cgroup_note: str | None = None

    @property
    def isolation(self) -> Isolation:
        return self.plan.kind

    def describe(self) -> dict[str, object]:
        """What is enforced here, in words (isolation, uid, network, cgroups, gaps)."""
        info = self.plan.describe()
        probe = Cgroup.create("probe") if self.use_cgroups else None
        info["cgroup"] = (f"{probe.version}: {', '.join(probe.controllers)}" if probe
                          else "none (rlimits and uid only)")
        if probe is not None:
            probe.remove()
        return info

    def nproc_limit(self, limits: Limits) -> int:
        """RLIMIT_NPROC for a run: precise only inside a user namespace (non-root bwrap).

        Dropped to uid 65534, the count is machine-wide across every concurrent run, so it
        is only a backstop sized for all cores; the cgroup pids limit is the precise one.
        """
        if self.plan.privileged:
            return limits.max_processes * max(8, os.cpu_count() or 1)
        if self.plan.kind == "bwrap":
            return limits.max_processes + 4  # counted per user namespace
        return limits.max_processes + 4096  # counts all the invoking user's processes

    # --- One run

    def run(self, program: Program, stdin: bytes | str = b"",
            limits: Limits | None = None, files: FilesArg | None = None) -> RunResult:
        """Run ``program`` once in a fresh sandbox and a fresh interpreter/binary.

        ``files``: extra files for this run only (e.g. a checker's input.txt, output.txt,
        answer.txt), validated like ``Program.files`` and not clashing with them; written
        read-only into the run directory beside the program's files.
        """
        limits = limits or self.limits
        job = self._job(program, stdin, limits, one_shot=True, files=files)
        if isinstance(job, RunResult):
            return job
        header, blobs, cache_hit = job
        worker = _Worker(self.plan, one_shot=True,
                         cpp_cache_dir=self.cpp.dir if program.language == "cpp" else None,
                         use_cgroups=self.use_cgroups)
        try:
            raw, out, err = worker.run_job(header, blobs, limits)
        except _WorkerDied as exc:
            if worker.new_oom_kills():
                return self._oom_result(program, limits, "one-shot", cache_hit)
            return self._lost_result(program, limits, cache_hit,
                                     f"the one-shot sandbox failed: {exc}; "
                                     f"{worker.log_tail()[-300:]}", "one-shot")
        finally:
            worker.close()
        return self._result(raw, out, err, program, limits, "one-shot", cache_hit)

    # --- Shared by the one-shot path and the pool

    def _job(self, program: Program, stdin: bytes | str, limits: Limits, *, one_shot: bool,
             files: FilesArg | None = None,
             ) -> tuple[dict, list[bytes], bool | None] | RunResult:
        """The worker job for a run, or the final result if there is nothing to run."""
        stdin = stdin.encode() if isinstance(stdin, str) else bytes(stdin)
        header = {"op": "run", "source_key": program.source_key,
                  "limits": limits.wire(self.nproc_limit(limits))}
        # Extra files go as blobs after the source and stdin; their paths in the header.
        extra = (*program.files, *check_files(files, "run files", beside=program.files))
        if extra:
            header["files"] = [name for name, _ in extra]
        contents = [data for _, data in extra]
        if program.language == "python":
            if program.files:
                header["import_files"] = True  # the run dir and its include/ on sys.path
            if program.args:
                header["args"] = list(program.args)
            return (dict(header, kind="python"), [program.source.encode(), stdin, *contents],
                    None)
        if program.language != "cpp":
            raise ValueError(f"unknown language {program.language!r}: 'python' or 'cpp'")
        compiled = self.compile_cpp(program.source, program.files)
        if not compiled.ok:
            return RunResult("compile_error", None, None, 0.0, compiled.compile_s, 0, b"",
                             False, compiled.message[-limits.stderr_tail_bytes:],
                             self.isolation, "one-shot" if one_shot else "pool", "cpp",
                             program.key, "g++ failed", compiled.cache_hit)
        exe = self.plan.cpp_path(compiled.binary, self.cpp.dir)
        return (dict(header, kind="exec", copy_exe=exe, argv=[BINARY_NAME, *program.args]),
                [b"", stdin, *contents], compiled.cache_hit)

    def compile_cpp(self, source: str, files: FilesArg = ()) -> CompiledProgram:
        """Compile (or find in the cache) a C++ source; g++ runs inside the sandbox.

        ``files`` (a program's files) are written beside solution.cpp, and g++ gets ``-I``
        on that directory and on its ``include/``; they are part of the cache key.
        """
        files = check_files(files, "Program.files")
        compile_fn = functools.partial(self._compile_in_sandbox, with_files=bool(files))
        return self.cpp.get(source, compile_fn, files)

    def _compile_in_sandbox(self, build_dir: Path, *, with_files: bool = False,
                            ) -> tuple[bool, str, bool]:
        inside = self.plan.build_path(build_dir)
        includes = ["-I", inside, "-I", f"{inside}/include"] if with_files else []
        argv = [self.cpp.gxx, *self.cpp.flags, *includes, "-o", f"{inside}/{BINARY_NAME}",
                f"{inside}/{SOURCE_NAME}"]
        limits = COMPILE_LIMITS
        header = {"op": "run", "kind": "exec", "argv": argv,
                  "limits": limits.wire(self.nproc_limit(limits))}
        worker = _Worker(self.plan, one_shot=True, cpp_cache_dir=None, build_dir=build_dir,
                         use_cgroups=self.use_cgroups)
        try:
            raw, _, err = worker.run_job(header, [b"", b""], limits)
        except _WorkerDied as exc:
            return False, f"the compiler sandbox failed: {exc}", False
        finally:
            worker.close()
        message = err.decode(errors="replace")
        status, detail = _classify(raw, message, limits, raw["oom_kills"])
        if status == "ok":
            return True, message, True
        if status == "time_limit" or raw.get("start_error"):
            # Not the source's fault for sure (a busy machine, a missing compiler): not cached.
            return False, f"compilation stopped: {detail}\n{message}", False
        return False, message or detail, True

    def _result(self, raw: dict, stdout: bytes, stderr: bytes, program: Program,
                limits: Limits, mode: Mode, cache_hit: bool | None) -> RunResult:
        err = stderr.decode("utf-8", errors="replace")
        status, detail = _classify(raw, err, limits, raw.get("oom_kills", 0))
        return RunResult(status, raw["exit_code"], raw["signal"], raw["cpu_s"], raw["wall_s"],
                         raw["maxrss_kb"], stdout, raw["stdout_size"] > len(stdout), err,
                         self.isolation, mode, program.language, program.key, detail,
                         cache_hit)

    def _oom_result(self, program: Program, limits: Limits, mode: Mode,
                    cache_hit: bool | None) -> RunResult:
        return RunResult("memory_limit", None, signal.SIGKILL, 0.0, 0.0, 0, b"", False, "",
                         self.isolation, mode, program.language, program.key,
                         "the cgroup OOM killer stopped the sandbox worker", cache_hit)

    def _lost_result(self, program: Program, limits: Limits, cache_hit: bool | None,
                     detail: str, mode: Mode = "pool") -> RunResult:
        """A run the sandbox itself failed: ``internal_error``, the run's own verdict (never
        a vote, never an exception at the caller, so one run cannot sink a batch)."""
        return RunResult("internal_error", None, None, 0.0, 0.0, 0, b"", False, "",
                         self.isolation, mode, program.language, program.key, detail[:2000],
                         cache_hit)


# --- SandboxPool: pre-started fork-servers, one per core

class SandboxPool:
    """``workers`` pre-started fork-server sandboxes; ``run`` is thread-safe.

    Each worker is one bwrap sandbox holding a Python interpreter that forks a child per
    run (Python: the code object, compiled once per worker and cached by source hash, is
    exec'd in the child; C++: the cached binary is exec'd). A worker that dies is replaced
    and the run retried once on the new one. Use as a context manager, or call ``close``.
    """

    def __init__(self, workers: int | None = None, *, sandbox: Sandbox | None = None,
                 limits: Limits | None = None, **sandbox_options):
        if sandbox is not None and sandbox_options:
            raise TypeError("pass either sandbox=... or Sandbox options, not both")
        self.sandbox = sandbox or Sandbox(**sandbox_options)
        self.limits = limits or self.sandbox.limits
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1 (got {workers})")
        self.size = workers or os.cpu_count() or 1
        self.sandbox.cpp.dir.mkdir(parents=True, exist_ok=True)  # bound into every worker
        # bwrap --die-with-parent follows the *thread* that started it (PR_SET_PDEATHSIG),
        # so all workers are started from this one long-lived thread.
        self._spawner = concurrent.futures.ThreadPoolExecutor(1, "sandbox-spawner")
        self._dispatch = concurrent.futures.ThreadPoolExecutor(self.size, "sandbox-dispatch")
        self._idle: queue.Queue[_Worker | None] = queue.Queue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.restarts = 0
        self._finalizer = weakref.finalize(self, _kill_workers, self._all)
        started = [self._spawn() for _ in range(self.size)]
        try:
            for worker in started:
                worker.wait_ready()
        except _WorkerDied as exc:
            self.close()
            raise SandboxError(f"a sandbox worker did not start: {exc}\n"
                               f"{started[0].log_tail()}") from exc
        for worker in started:
            self._idle.put(worker)

    @property
    def isolation(self) -> Isolation:
        return self.sandbox.isolation

    def worker_pids(self) -> list[int]:
        """Host pids of the workers' outermost processes (for tests and monitoring)."""
        with self._lock:
            return [w.proc.pid for w in self._all]

    def _spawn(self) -> _Worker:
        worker = self._spawner.submit(_Worker, self.sandbox.plan, one_shot=False,
                                      cpp_cache_dir=self.sandbox.cpp.dir,
                                      use_cgroups=self.sandbox.use_cgroups).result()
        with self._lock:
            self._all.add(worker)
        return worker

    def _retire(self, worker: _Worker) -> None:
        with self._lock:
            self._all.discard(worker)
        worker.kill()

    # --- Runs

    def run(self, program: Program, stdin: bytes | str = b"",
            limits: Limits | None = None, files: FilesArg | None = None) -> RunResult:
        """Run ``program`` on one worker; ``files`` as in ``Sandbox.run`` (this run only)."""
        if self._closed:
            raise SandboxError("the pool is closed")
        limits = limits or self.limits
        job = self.sandbox._job(program, stdin, limits, one_shot=False, files=files)
        if isinstance(job, RunResult):
            return job
        header, blobs, cache_hit = job
        worker = self._idle.get()
        try:
            for attempt in (1, 2):
                if worker is None or not worker.alive:
                    if worker is not None:
                        self._retire(worker)
                    worker = self._spawn()
                    with self._lock:
                        self.restarts += 1
                try:
                    raw, out, err = worker.run_job(header, blobs, limits)
                    return self.sandbox._result(raw, out, err, program, limits, "pool",
                                                cache_hit)
                except _WorkerDied as exc:
                    oom = worker.new_oom_kills()
                    log = worker.log_tail()
                    self._retire(worker)
                    worker = None
                    if oom:
                        return self.sandbox._oom_result(program, limits, "pool", cache_hit)
                    if isinstance(exc, _WorkerFailed):  # not retried: the run happened
                        return self.sandbox._lost_result(
                            program, limits, cache_hit,
                            f"the sandbox worker failed around this run: {exc}")
                    if attempt == 2:
                        # Twice on the same job: a verdict of its own, not a crash of the
                        # caller (in a user namespace the code may signal its worker).
                        return self.sandbox._lost_result(
                            program, limits, cache_hit,
                            f"the sandbox worker died twice during this run: {exc}; "
                            f"{log[-300:]}")
        finally:
            self._idle.put(worker)  # None: the next run starts a fresh worker
        raise AssertionError("unreachable")

    def run_many(self, jobs: Iterable[tuple[Program, bytes | str]
                                      | tuple[Program, bytes | str, FilesArg | None]],
                 limits: Limits | None = None,
                 keep: Callable[[RunResult], T] | None = None) -> list[RunResult] | list[T]:
        """Run (program, stdin) pairs or (program, stdin, run files) triples on all workers;
        results in the order of ``jobs``.

        ``keep`` turns each result into what the caller keeps (a digest, a verdict, the
        output written to a file) as soon as the run ends, on the worker's thread: only the
        runs in flight then hold their whole output, so memory stays bounded however many
        runs and however big their outputs. Without it every result is kept whole.
        """
        jobs = list(jobs)
        results: list = [None] * len(jobs)
        next_index = iter(range(len(jobs)))  # shared; next() on a range iterator is atomic
        def drain() -> None:
            for i in next_index:
                program, stdin, *files = jobs[i]  # files: [] or [run files]
                result = self.run(program, stdin, limits, *files)
                results[i] = result if keep is None else keep(result)
        # One long task per worker rather than one task per job: less thread hand-off.
        futures = [self._dispatch.submit(drain) for _ in range(min(self.size, len(jobs)))]
        for future in futures:
            future.result()
        return results

    def run_matrix(self, programs: Sequence[Program], inputs: Sequence[bytes | str],
                   limits: Limits | None = None,
                   keep: Callable[[RunResult], T] | None = None
                   ) -> list[list[RunResult]] | list[list[T]]:
        """Every program on every input: ``result[i][j]`` is programs[i] on inputs[j]
        (``keep`` as in ``run_many``).

        Each source is passed once; C++ sources compile once (cached), Python sources
        compile once per worker (code objects cached by source hash).
        """
        for program in programs:  # compile C++ up front, in parallel
            if program.language == "cpp":
                self._dispatch.submit(self.sandbox.compile_cpp, program.source, program.files)
        flat = self.run_many([(p, i) for p in programs for i in inputs], limits, keep)
        n = len(inputs)
        return [flat[k * n:(k + 1) * n] for k in range(len(programs))]

    # --- Shutdown

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._dispatch.shutdown(wait=True)
        with self._lock:
            workers = list(self._all)
            self._all.clear()
        for worker in workers:
            worker.close()
        self._spawner.shutdown(wait=True)

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _kill_workers(workers: set[_Worker]) -> None:
    for worker in list(workers):
        worker.kill()
