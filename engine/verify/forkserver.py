"""The sandbox worker: a small trusted program that runs INSIDE the sandbox and forks one
child per run of untrusted code.

``engine.verify.sandbox`` starts it (inside bubblewrap when available) as

    python -I -S -B forkserver.py --base /tmp [--pidns] [--drop-uid 65534] [--one-shot]

and talks to it over its stdin/stdout with frames (see "Protocol" below). For each job it
makes a fresh private run directory (holding the job's extra files, read-only), forks a
child that locks itself down (setsid, rlimits, oom_score_adj, scrubbed environment,
stdin/stdout/stderr from files, uid/gid 65534 when started as root) and then either
``exec``s the compiled Python code in-process (pool mode: no interpreter start per run) or
``execve``s a program (one-shot mode, C++ binaries, the compiler). The worker enforces the
CPU and wall limits, reaps the child with ``wait4`` (its rusage gives CPU time and peak
RSS), kills everything the run left behind, and answers with raw facts; ``sandbox.py``
turns those into a status.

It imports only the standard library: the engine package is not mounted in the sandbox.
It is not a security boundary by itself: bwrap (namespaces, read-only mounts), the uid drop
and the rlimits are. What it leaves out: seccomp filtering, CPU pinning, per-run cgroups
(the host puts the whole worker into one, see ``cgroups.py``).
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import ctypes
import gc
import hashlib
import importlib
import json
import os
import resource
import select
import shutil
import signal
import struct
import sys
import time
import traceback
import types

# Modules competitive solutions import all the time: imported once by the worker, a forked
# child finds them in sys.modules instead of reading the stdlib per run.
PREIMPORTED = ("bisect", "collections", "functools", "heapq", "itertools", "math", "operator",
               "re", "string")

PR_SET_CHILD_SUBREAPER = 36
WORKER_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
EXEC_FAILED_EXIT = 127
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The original stdio objects of the worker: kept referenced so that rebinding sys.stdin & co.
# in a child never garbage-collects (and closes) an fd the solution may reuse.
_ORIGINAL_STDIO = (sys.stdin, sys.stdout, sys.stderr)


# --- Protocol: a 4-byte length, a JSON header {"blobs": [len, ...], ...}, then the blobs
#
# A run job: {"op": "run", "kind": "python" | "exec", "limits": {...}, "source_key" (Python:
# sha256 of the source, the code cache's key), "argv" and "copy_exe" (exec), and only when
# set: "files" (paths of the extra files), "import_files" (Python: the run dir and its
# include/ go on sys.path), "args" (Python's sys.argv[1:])}; blobs: the source (b"" for
# exec), stdin, then one per extra file. The reply: raw facts, blobs stdout and stderr.

def read_exact(fd: int, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> tuple[dict, list[bytes]] | None:
    raw = read_exact(fd, 4)
    if raw is None:
        return None
    header_raw = read_exact(fd, struct.unpack(">I", raw)[0])
    if header_raw is None:
        return None
    header = json.loads(header_raw)
    blobs = []
    for length in header.get("blobs", []):
        blob = read_exact(fd, length) if length else b""
        if blob is None:
            return None
        blobs.append(blob)
    return header, blobs


def write_frame(fd: int, header: dict, blobs: list[bytes] = ()) -> None:
    header = dict(header, blobs=[len(b) for b in blobs])
    raw = json.dumps(header).encode()
    data = b"".join([struct.pack(">I", len(raw)), raw, *blobs])
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# --- The child: lock down, then run the program (never returns)

def _set_rlimits(limits: dict) -> None:
    cpu = max(1, int(-(-limits["cpu_s"] // 1)))  # whole seconds, rounded up
    # CPU: SIGXCPU at the soft limit, SIGKILL one second later. This is the backstop for
    # extra processes and threads; the worker checks the main process more precisely.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_STACK, (limits["stack_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["fsize_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_NPROC, (limits["nproc"],) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["nofile"],) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (0, 0))
    resource.setrlimit(resource.RLIMIT_MSGQUEUE, (0, 0))


def _child(job: dict, fds: tuple[int, int, int, int], rundir: str, drop_uid: int | None,
           code: types.CodeType | None, compile_error: BaseException | None) -> None:
    stdin_fd, out_fd, err_fd, report_fd = fds
    try:
        os.setsid()  # own session and process group, so the group can be killed as one
        os.dup2(stdin_fd, 0)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.dup2(report_fd, 3)  # close-on-exec: tells the worker whether exec failed
        os.set_inheritable(3, False)
        os.closerange(4, 65536)
        os.chdir(rundir)
        _set_rlimits(job["limits"])
        if drop_uid is not None:
            os.setgroups([])
            os.setgid(drop_uid)
            os.setuid(drop_uid)  # root's capabilities go with it (no SECBIT_KEEP_CAPS)
        if job["kind"] == "exec":
            env = dict(WORKER_ENV, HOME=rundir, TMPDIR=rundir)
            if job.get("import_files"):  # one-shot Python: sys.path[0] is the run dir already
                env["PYTHONPATH"] = os.path.join(rundir, "include")
            # The programs we exec expect default dispositions (Python ignores these two).
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
            os.execve(job["argv"][0], job["argv"], env)
        os.close(3)  # nothing of the worker's stays open while untrusted Python runs
        _run_python(code, compile_error, rundir, job)
    except BaseException as exc:  # the program never started: say why, on the report fd
        with contextlib.suppress(BaseException):
            err = exc.errno if isinstance(exc, OSError) and exc.errno else 0
            os.write(3, json.dumps({"errno": err, "error": repr(exc)}).encode())
    os._exit(EXEC_FAILED_EXIT)


def _run_python(code: types.CodeType | None, compile_error: BaseException | None,
                rundir: str, job: dict) -> None:
    """Run compiled solution code as ``python solution.py`` would, then ``os._exit``."""
    # The worker's environment is already only PATH and LANG (set by the host).
    os.environ["HOME"] = os.environ["TMPDIR"] = rundir
    if job.get("import_files"):
        # As in one-shot mode (`PYTHONPATH=include python -s -S solution.py`): the program's
        # files import like modules beside solution.py.
        include = os.path.join(rundir, "include")
        os.environ["PYTHONPATH"] = include
        sys.path[:0] = [rundir, include]
    # Forget the worker's state: other candidates' code and this worker's caches must not be
    # reachable from the solution (it could otherwise read them through sys.modules).
    _CODE_CACHE.clear()
    sys.argv = ["solution.py", *job.get("args", ())]
    # The interpreter's own stdio objects, never read or written by the worker (it speaks
    # through raw fds), now sit on the run's fds 0-2 after dup2: the same objects, encodings
    # and buffering a fresh `python solution.py` with stdin/stdout on pipes would have.
    sys.stdin, sys.stdout, sys.stderr = _ORIGINAL_STDIO
    main = types.ModuleType("__main__")
    main.__file__ = "solution.py"
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    rc = 0
    try:
        if compile_error is not None:
            raise compile_error
        exec(code, main.__dict__)
    except SystemExit as exc:
        rc = _system_exit_code(exc)
    except BaseException as exc:
        rc = 1
        try:
            # Skip our own frame so the traceback starts in solution.py, as with `python`.
            tb = None if compile_error is not None else exc.__traceback__.tb_next
            traceback.print_exception(type(exc), exc, tb)
        except BaseException:
            os.write(2, f"{type(exc).__name__}\n".encode())
    try:
        if "threading" in sys.modules:
            sys.modules["threading"]._shutdown()  # join non-daemon threads, like Python does
        sys.stdout.flush()
    except BaseException as exc:
        # CPython exits 120 when flushing stdout fails at shutdown (e.g. EFBIG, EPIPE).
        with contextlib.suppress(BaseException):
            os.write(2, f"Exception ignored flushing sys.stdout: {exc!r}\n".encode())
        rc = rc or 120
    with contextlib.suppress(BaseException):
        sys.stderr.flush()
    os._exit(rc)


def _system_exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    with contextlib.suppress(BaseException):
        print(exc.code, file=sys.stderr)
    return 1


# --- The worker: one job at a time

_CODE_CACHE: dict[str, tuple[types.CodeType | None, BaseException | None]] = {}
_CODE_CACHE_MAX = 256


def _compiled(key: str, source: bytes) -> tuple[types.CodeType | None, BaseException | None,
                                                  bool]:
    if key in _CODE_CACHE:
        return (*_CODE_CACHE[key], True)
    if hashlib.sha256(source).hexdigest() != key:
        raise ValueError("source does not match its key")
    try:
        entry = (compile(source, "solution.py", "exec", dont_inherit=True), None)
    except Exception as exc:  # SyntaxError & co.: raised in the child, as python would
        entry = (None, exc)
    if len(_CODE_CACHE) >= _CODE_CACHE_MAX:
        _CODE_CACHE.pop(next(iter(_CODE_CACHE)))
    _CODE_CACHE[key] = entry
    return (*entry, False)


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def _wait_with_limits(pid: int, cpu_limit: float, wall_limit: float, start: float,
                      ) -> str | None:
    """Wait for the child to exit; kill its group at a limit. Returns "wall"/"cpu"/None."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    poller = select.poll()
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    # The main process cannot use more CPU than the wall time that has passed (threads
    # aside: RLIMIT_CPU catches those), so the first CPU check is due at cpu_limit.
    next_cpu_check = start + cpu_limit
    killed = None
    try:
        while True:
            now = time.monotonic()
            timeout = max(0.0, min(start + wall_limit, next_cpu_check) - now)
            if pidfd is not None:
                if poller.poll(timeout * 1000 + 1):
                    return None
            else:
                if _exited(pid):
                    return None
                time.sleep(min(timeout, 0.005))
            now = time.monotonic()
            if now >= start + wall_limit:
                killed = "wall"
            else:
                cpu = _cpu_seconds(pid)
                if cpu >= cpu_limit:
                    killed = "cpu"
                else:
                    next_cpu_check = now + max(cpu_limit - cpu, 0.01)
            if killed:
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                return killed
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _exited(pid: int) -> bool:
    # Fallback for kernels without pidfd: a zombie's /proc state is "Z".
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except OSError:
        return True


def _my_children() -> list[int]:
    me = os.getpid()
    try:
        with open(f"/proc/{me}/task/{me}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:  # kernel without CONFIG_PROC_CHILDREN: scan /proc
        found = []
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    with open(f"/proc/{name}/stat", "rb") as f:
                        if int(f.read().rsplit(b")", 1)[1].split()[1]) == me:
                            found.append(int(name))
                except (OSError, IndexError, ValueError):
                    pass
        return found


def _kill_leftovers(pidns: bool, deadline_s: float = 5.0) -> None:
    """Kill and reap every process the run left behind (daemons, fork bombs, setsid'd)."""
    end = time.monotonic() + deadline_s
    if pidns:
        # In our own pid namespace, kill(-1) reaches every process but us and the namespace's
        # init, atomically with respect to fork: nothing escapes by forking faster.
        with contextlib.suppress(ProcessLookupError):
            os.kill(-1, signal.SIGKILL)
    while time.monotonic() < end:
        if not pidns:
            # We are a child subreaper, so orphans of the run are re-parented to us: kill our
            # children, reap, repeat until none is left (their children come to us next).
            for child in _my_children():
                with contextlib.suppress(OSError):
                    os.kill(child, signal.SIGKILL)
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            return
        time.sleep(0.001)


def _pread_all(fd: int, size: int, offset: int) -> bytes:
    chunks = []
    while size > 0:
        chunk = os.pread(fd, min(size, 1 << 24), offset)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
        offset += len(chunk)
    return b"".join(chunks)


class _StdioFiles:
    """stdin/stdout/stderr of the runs: anonymous RAM files (memfd; tmpfs, so RLIMIT_FSIZE
    applies to writes), reused from run to run: nothing to create or delete per run, and
    nothing another process could open by name. Safe to reuse because every process of a
    run is dead before the next run starts."""

    def __init__(self) -> None:
        self.fds = tuple(os.memfd_create(name, os.MFD_CLOEXEC)
                         for name in ("stdin", "stdout", "stderr"))

    def reset(self, stdin: bytes) -> tuple[int, int, int]:
        for fd in self.fds:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
        view = memoryview(stdin)
        while view:
            view = view[os.write(self.fds[0], view):]
        os.lseek(self.fds[0], 0, os.SEEK_SET)  # the child shares this file offset
        return self.fds


def _write_files(rundir: str, names: list[str], contents: list[bytes]) -> None:
    """Put the job's extra files into the fresh run directory, read-only for the run: files
    0444 and the directories made for them 0555 (owned by the worker: root, when the run
    drops to 65534). The run directory itself stays writable. The host validated the names;
    this checks again that none leaves the run directory."""
    made: dict[str, None] = {}  # in creation order, parents first
    for name, data in zip(names, contents, strict=True):
        parts = name.split("/")
        if name.startswith("/") or any(part in ("", ".", "..") for part in parts):
            raise ValueError(f"bad file name {name!r}")
        for i in range(1, len(parts)):
            directory = os.path.join(rundir, *parts[:i])
            if directory not in made:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(directory, 0o700)
                    made[directory] = None
        fd = os.open(os.path.join(rundir, name),
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o400)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, 0o444)
        finally:
            os.close(fd)
    for directory in made:  # last: without root's DAC override we could not write into them
        os.chmod(directory, 0o555)


_RMTREE_HANDLER = "onexc" if sys.version_info >= (3, 12) else "onerror"


def _remove_rundir(rundir: str) -> None:
    try:
        os.rmdir(rundir)  # the common case: the run left nothing behind
    except OSError:
        shutil.rmtree(rundir, **{_RMTREE_HANDLER: _make_writable_and_retry})


def _make_writable_and_retry(func, path: str, _exc) -> None:
    # Read-only directories (the job's files, or the program's own) block removal where the
    # worker has no DAC override (not root): open them up and try once more.
    with contextlib.suppress(OSError):
        os.chmod(os.path.dirname(path), 0o700)
        func(path)


def run_job(job: dict, blobs: list[bytes], state: dict) -> tuple[dict, list[bytes]]:
    limits = job["limits"]
    state["seq"] += 1
    rundir = os.path.join(state["base"], f"run-{state['seq']}")
    drop_uid = state["drop_uid"]
    source, stdin, *contents = blobs
    os.mkdir(rundir, 0o700)
    if drop_uid is not None:
        os.chown(rundir, drop_uid, drop_uid)
    if job.get("files"):
        _write_files(rundir, job["files"], contents)
    code = compile_error = None
    cache_hit = False
    if job["kind"] == "python":
        if state["one_shot"]:
            # One-shot mode: a fresh interpreter per run, exactly `python solution.py`.
            path = os.path.join(rundir, "solution.py")
            with open(path, "wb") as f:
                f.write(source)
            os.chmod(path, 0o444)
            # -I (-E -P -s) keeps the run dir off sys.path; a program with files wants it
            # there, and its include/ too (PYTHONPATH, see _child): -s instead of -I, and
            # -B as in the pool's workers (no __pycache__ of its modules in the run dir).
            flags = ["-s", "-B"] if job.get("import_files") else ["-I"]
            job = dict(job, kind="exec", argv=[sys.executable, *flags, "-S", "solution.py",
                                               *job.get("args", ())])
        else:
            code, compile_error, cache_hit = _compiled(job["source_key"], source)
    elif job.get("copy_exe"):
        # Run a private copy: the solution can neither touch the cache nor see other binaries.
        target = os.path.join(rundir, "solution")
        shutil.copyfile(job["copy_exe"], target)
        os.chmod(target, 0o555)
        job = dict(job, argv=[target, *job["argv"][1:]])

    stdin_fd, out_fd, err_fd = state["stdio"].reset(stdin)
    report_r, report_w = os.pipe()
    # Objects that exist now are never collected in the child: freezing them keeps the
    # child's GC from touching (and so copying) the worker's pages. Now and then the worker
    # itself collects what it froze, so cyclic garbage does not pile up.
    if state["seq"] % 1000 == 0:
        gc.unfreeze()
        gc.collect()
    gc.freeze()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(report_r)
        _child(job, (stdin_fd, out_fd, err_fd, report_w), rundir, drop_uid, code, compile_error)
    os.close(report_w)
    try:
        killed = _wait_with_limits(pid, limits["cpu_s"], limits["wall_s"], start)
        _, status, usage = os.wait4(pid, 0)
        wall = time.monotonic() - start
        _kill_leftovers(state["pidns"])
        report = os.read(report_r, 65536)
        stdout_size = os.fstat(out_fd).st_size
        stdout = _pread_all(out_fd, min(stdout_size, limits["output_bytes"]), 0)
        err_size = os.fstat(err_fd).st_size
        tail = min(err_size, limits["stderr_tail_bytes"])
        stderr = _pread_all(err_fd, tail, err_size - tail)
    finally:
        os.close(report_r)
        _remove_rundir(rundir)
    header = {
        "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "wall_s": wall,
        "maxrss_kb": usage.ru_maxrss,
        "killed": killed,
        "stdout_size": stdout_size,
        "start_error": json.loads(report) if report else None,
        "code_cache_hit": cache_hit,
    }
    return header, [stdout, stderr]


# --- Entry point

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="directory for run and work dirs")
    parser.add_argument("--pidns", action="store_true", help="we run in our own pid namespace")
    parser.add_argument("--drop-uid", type=int, default=None, help="uid/gid for the children")
    parser.add_argument("--one-shot", action="store_true", help="one job, fresh interpreter")
    args = parser.parse_args(argv)
    if args.pidns and os.getpid() > 10:
        # kill(-1) outside a pid namespace would kill every process we may signal: refuse.
        print("forkserver: --pidns given but we are not in a fresh pid namespace",
              file=sys.stderr)
        return 2
    # Orphans of a run (daemonized, double-forked) are re-parented to us, so the sweep after
    # each run finds them even without a pid namespace.
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print(f"forkserver: PR_SET_CHILD_SUBREAPER failed (errno {ctypes.get_errno()})",
              file=sys.stderr)
        return 2
    # Inherited by every child: under memory pressure the kernel kills sandboxed code (or
    # this worker, which the host restarts) before anything on the host.
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as f:
        f.write("1000")
    for name in PREIMPORTED:
        importlib.import_module(name)
    os.umask(0o077)
    os.environ.clear()
    os.environ.update(WORKER_ENV)  # the host passes just these; make sure of it
    state = {"base": args.base, "drop_uid": args.drop_uid, "stdio": _StdioFiles(),
             "pidns": args.pidns, "one_shot": args.one_shot, "seq": 0}
    write_frame(1, {"ready": True, "pid": os.getpid(), "uid": os.getuid(),
                    "python": sys.version.split()[0]})
    try:
        while True:
            frame = read_frame(0)
            if frame is None or frame[0].get("op") == "exit":
                return 0
            header, blobs = frame
            try:
                reply = run_job(header, blobs, state)
            except Exception as exc:  # a worker bug or a broken job: report, keep serving
                reply = ({"worker_error": f"{type(exc).__name__}: {exc}",
                          "traceback": traceback.format_exc()[-4000:]}, [])
            write_frame(1, *reply)
            if args.one_shot:
                return 0
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
