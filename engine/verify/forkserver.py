"""The sandbox worker: a small trusted program that runs INSIDE the sandbox and forks one
child per run of untrusted code.

``engine.verify.sandbox`` starts it (inside bubblewrap when available) as

    python -I -S -B forkserver.py --base /tmp [--pidns] [--drop-uid 65534] [--one-shot]
                                  [--seccomp-filter PATH]

and talks to it over its stdin/stdout with frames (see "Protocol" below).

Every run starts clean, by construction. Right after start-up (pre-imports, the RAM files
below) and before it reads any job, the worker forks a **zygote**: a process that never
holds job bytes. Per job the worker writes the source, stdin and the child's job
description (argv, args) into anonymous RAM files (memfd) and the job's extra files into a
fresh private run directory, then sends the zygote a header of numbers and one path (kind,
limits, run dir). The zygote forks the run's child, enforces the CPU and wall limits, reaps
it with ``wait4`` (CPU time, peak RSS), kills everything the run left behind and answers
with raw facts; the worker reads stdout/stderr from the RAM files and answers the host
(``sandbox.py`` turns the facts into a status). So a run's child is a copy of the zygote,
not of the worker: no earlier job's source, input or output sits in its memory, freed or
not, and no other candidate's code (the worker compiles each source once and keeps the
marshalled code; a child gets only its own, through its RAM file, and unmarshals it).

The child locks itself down (setsid, rlimits, scrubbed environment, stdin/stdout/stderr
from the RAM files, uid/gid 65534 when started as root, its own SysV IPC namespace where
the worker may make one (else the zygote removes every SysV object a run leaves), then the
seccomp filter when one is given) and then either ``exec``s its Python code in-process
(pool mode: no interpreter start per run) or ``execve``s a program (one-shot mode, C++
binaries, the compiler).

It imports only the standard library: the engine package is not mounted in the sandbox.
It is not a security boundary by itself: bwrap (namespaces, read-only mounts), the uid drop,
the seccomp filter and the rlimits are. What it leaves out: CPU pinning, per-run cgroups
(the host puts the whole worker into one, see ``cgroups.py``).
"""

from __future__ import annotations

import _thread
import argparse
import atexit
import builtins
import contextlib
import ctypes
import gc
import hashlib
import importlib
import json
import marshal
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

# Modules competitive solutions import all the time: imported once by the worker (before the
# zygote forks), a child finds them in sys.modules instead of reading the stdlib per run.
PREIMPORTED = ("bisect", "collections", "functools", "heapq", "itertools", "math", "operator",
               "re", "string")

PR_SET_PDEATHSIG = 1
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
SECCOMP_MODE_FILTER = 2
BPF_MAXINSNS = 4096
CLONE_NEWIPC = 0x08000000
WORKER_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
EXEC_FAILED_EXIT = 127
CLK_TCK = os.sysconf("SC_CLK_TCK")
THREAD_STACK_BYTES = 8 << 20  # threading.Thread stacks in the pool (glibc's usual default)

_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]
_LIBC.unshare.argtypes = [ctypes.c_int]

# The original stdio objects of the worker: kept referenced so that rebinding sys.stdin & co.
# in a child never garbage-collects (and closes) an fd the solution may reuse.
_ORIGINAL_STDIO = (sys.stdin, sys.stdout, sys.stderr)


# --- Protocol (host <-> worker): a 4-byte length, a JSON header {"blobs": [len, ...], ...},
# then the blobs.
#
# A run job: {"op": "run", "kind": "python" | "exec", "limits": {...}, "source_key" (Python:
# sha256 of the source), "argv" and "copy_exe" (exec), and only when set: "files" (paths of
# the extra files), "import_files" (Python: the run dir and its include/ go on sys.path),
# "args" (Python's sys.argv[1:])}; blobs: the source (b"" for exec), stdin, then one per
# extra file. The reply: raw facts, blobs stdout and stderr. The first frame, "ready", also
# says what holds: "ipc_per_run" (no run sees another's SysV IPC objects: "ipc_mode" "ipc",
# its own IPC namespace, or "sweep", the zygote removes what a run left) and "seccomp" (a
# syscall filter is installed in every run).
#
# Worker -> zygote: the same frames, header only: {"kind", "limits", "rundir"} (numbers and
# a path, never job bytes); the answer: exit_code, signal, cpu_s, wall_s, maxrss_kb, killed.

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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


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


def _read_memfd(fd: int) -> bytes:
    return _pread_all(fd, os.fstat(fd).st_size, 0)


# --- Kernel knobs (ctypes): per-run IPC namespace, seccomp

class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _oserror(what: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")


def _unshare(flags: int, what: str) -> None:
    if _LIBC.unshare(flags) != 0:
        raise _oserror(what)


def load_seccomp_filter(path: str) -> bytes:
    """The raw classic-BPF program (``struct sock_filter[]``, 8 bytes each, as libseccomp's
    ``seccomp_export_bpf`` writes it); ValueError if it cannot be one."""
    with open(path, "rb") as f:
        program = f.read()
    if not program or len(program) % 8 or len(program) // 8 > BPF_MAXINSNS:
        raise ValueError(f"{path}: {len(program)} bytes is not a BPF program "
                         f"(1 to {BPF_MAXINSNS} instructions of 8 bytes)")
    return program


class _Seccomp:
    """A filter ready to install: the buffer and sock_fprog are built once, in the worker,
    so a child only makes two prctl calls."""

    def __init__(self, program: bytes) -> None:
        self.buffer = ctypes.create_string_buffer(program, len(program))
        self.fprog = _SockFprog(len(program) // 8, ctypes.addressof(self.buffer))

    def install(self) -> None:
        if _LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise _oserror("prctl(PR_SET_NO_NEW_PRIVS)")
        if _LIBC.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(self.fprog),
                       0, 0) != 0:
            raise _oserror("prctl(PR_SET_SECCOMP)")


def _isolate_ipc_as_root(ipc_mode: str | None) -> None:
    if ipc_mode == "ipc":  # we hold CAP_SYS_ADMIN (bwrap as non-root: a user namespace)
        _unshare(CLONE_NEWIPC, "unshare(CLONE_NEWIPC)")


def _drop_uid(uid: int) -> None:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)  # root's capabilities go with it (no SECBIT_KEEP_CAPS)


def probe_child_setup(drop_uid: int | None, seccomp: _Seccomp | None) -> dict:
    """Try, in a throwaway child, what every run's child will do: which per-run IPC
    namespace works here, and whether the seccomp filter installs."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        result: dict = {"ipc_mode": None}
        with contextlib.suppress(BaseException):
            os.close(r)
            try:
                _unshare(CLONE_NEWIPC, "unshare(CLONE_NEWIPC)")
                result["ipc_mode"] = "ipc"
            except OSError as exc:
                result["ipc_error"] = str(exc)
            if drop_uid is not None:
                _drop_uid(drop_uid)
            if result["ipc_mode"] is None and os.path.exists(SYSV_IPC_LISTS[0]):
                # No CAP_SYS_ADMIN (root in bwrap): the runs share the worker's IPC
                # namespace, and the zygote removes every SysV object a run left (one run
                # at a time per worker, so nothing carries over).
                result["ipc_mode"] = "sweep"
            if seccomp is not None:
                try:
                    seccomp.install()
                    result["seccomp"] = True
                except OSError as exc:
                    result["seccomp"] = False
                    result["seccomp_error"] = str(exc)
            os.write(w, json.dumps(result).encode())
        os._exit(0)
    os.close(w)
    raw = read_exact(r, 1) or b""
    raw += os.read(r, 65536) if raw else b""
    os.close(r)
    os.waitpid(pid, 0)
    try:
        return json.loads(raw)
    except ValueError:
        return {"ipc_mode": None, "ipc_error": "the probe child died",
                "seccomp": False, "seccomp_error": "the probe child died"}


# --- The child: lock down, then run the program (never returns)

def _set_rlimits(limits: dict) -> None:
    cpu = max(1, int(-(-limits["cpu_s"] // 1)))  # whole seconds, rounded up
    # CPU: SIGXCPU at the soft limit, SIGKILL one second later. This is the backstop for
    # extra processes and threads; the zygote checks the main process more precisely.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"],) * 2)
    # The stack: unlimited, so the main thread may recurse as deep as the memory limit
    # (RLIMIT_AS) allows. glibc sizes new threads from this limit: unlimited gives them its
    # architecture default (2 MiB on x86_64) where a limit the size of the whole memory
    # would make every std::thread / threading.Thread ask for all of it and fail. A host
    # that sends a stack limit below the memory limit gets exactly that (threads too).
    stack = limits.get("stack_bytes")
    if stack is None or stack >= limits["memory_bytes"]:
        stack = resource.RLIM_INFINITY
    resource.setrlimit(resource.RLIMIT_STACK, (stack, stack))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["fsize_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_NPROC, (limits["nproc"],) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["nofile"],) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (0, 0))
    resource.setrlimit(resource.RLIMIT_MSGQUEUE, (0, 0))


def _child(header: dict, files: _RunFiles, setup: dict) -> None:
    """Forked by the zygote. Reads its job from the RAM files, locks down, runs."""
    try:
        os.setsid()  # own session and process group, so the group can be killed as one
        job = json.loads(_read_memfd(files.job))
        source = _read_memfd(files.source) if job["kind"] == "python" else b""
        rundir = header["rundir"]
        stdin_fd, out_fd, err_fd = files.stdio
        os.dup2(stdin_fd, 0)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.dup2(files.report, 3)  # close-on-exec: where a start error is written
        os.set_inheritable(3, False)
        os.closerange(4, 65536)
        os.chdir(rundir)
        _set_rlimits(header["limits"])
        _isolate_ipc_as_root(setup["ipc_mode"])
        if setup["drop_uid"] is not None:
            _drop_uid(setup["drop_uid"])
        if job["kind"] == "exec":
            env = dict(WORKER_ENV, HOME=rundir, TMPDIR=rundir)
            if job.get("import_files"):  # one-shot Python: sys.path[0] is the run dir already
                env["PYTHONPATH"] = os.path.join(rundir, "include")
            # The programs we exec expect default dispositions (Python ignores these two).
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
            if setup["seccomp"] is not None:
                setup["seccomp"].install()  # kept across execve
            os.execve(job["argv"][0], job["argv"], env)
        if setup["seccomp"] is not None:
            setup["seccomp"].install()
        os.close(3)  # nothing of the worker's stays open while untrusted Python runs
        _run_python(source, rundir, job)
    except BaseException as exc:  # the program never started: say why, in the report file
        with contextlib.suppress(BaseException):
            err = exc.errno if isinstance(exc, OSError) and exc.errno else 0
            os.write(3, json.dumps({"errno": err, "error": repr(exc)}).encode())
    os._exit(EXEC_FAILED_EXIT)


def _run_python(source: bytes, rundir: str, job: dict) -> None:
    """Run the solution as ``python solution.py`` would, then ``os._exit``."""
    # The worker's environment is already only PATH and LANG (set by the host).
    os.environ["HOME"] = os.environ["TMPDIR"] = rundir
    if job.get("import_files"):
        # As in one-shot mode (`PYTHONPATH=include python -s -S solution.py`): the program's
        # files import like modules beside solution.py.
        include = os.path.join(rundir, "include")
        os.environ["PYTHONPATH"] = include
        sys.path[:0] = [rundir, include]
    sys.argv = ["solution.py", *job.get("args", ())]
    # The interpreter's own stdio objects, never read or written by the worker (it speaks
    # through raw fds), now sit on the run's fds 0-2 after dup2: the same objects, encodings
    # and buffering a fresh `python solution.py` with stdin/stdout on pipes would have.
    sys.stdin, sys.stdout, sys.stderr = _ORIGINAL_STDIO
    main = types.ModuleType("__main__")
    main.__file__ = "solution.py"
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    atexit._clear()  # the worker's own exit handlers are not the solution's
    rc = 0
    compiling = True
    try:
        if job.get("marshal"):  # compiled by the worker (see _compiled)
            code = marshal.loads(source)
        else:  # a source that does not compile: raise its SyntaxError here, as python would
            code = compile(source, "solution.py", "exec", dont_inherit=True)
        del source
        compiling = False
        exec(code, main.__dict__)
    except SystemExit as exc:
        rc = _system_exit_code(exc)
    except BaseException as exc:
        rc = 1
        try:
            # Skip our own frame so the traceback starts in solution.py, as with `python`.
            tb = None if compiling else exc.__traceback__.tb_next
            traceback.print_exception(type(exc), exc, tb)
        except BaseException:
            os.write(2, f"{type(exc).__name__}\n".encode())
    # Then what a normal interpreter exit does (Py_FinalizeEx): join non-daemon threads,
    # run the atexit handlers (their exceptions are printed, the exit code stays), flush.
    with contextlib.suppress(BaseException):
        if "threading" in sys.modules:
            sys.modules["threading"]._shutdown()
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    try:
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


# --- The zygote: forks and watches the runs; never holds job bytes

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


def _sweep_as(uid: int) -> None:
    """kill(-1, SIGKILL) from a throwaway child running as the runs' uid: in our own pid
    namespace that reaches every process of the run at once (atomic with respect to fork:
    nothing escapes by forking faster), and never the worker or the zygote (root)."""
    pid = os.fork()
    if pid == 0:
        try:
            _drop_uid(uid)
            os.kill(-1, signal.SIGKILL)
        except BaseException:
            os._exit(1)
        os._exit(0)
    os.waitpid(pid, 0)


def _kill_leftovers(pidns: bool, drop_uid: int | None, deadline_s: float = 5.0) -> None:
    """Kill and reap every process the run left behind (daemons, fork bombs, setsid'd).

    The zygote is a child subreaper and the run's main process is reaped: whatever is left
    descends from one of our children. None: nothing is left (the common case)."""
    if not _my_children():
        return
    end = time.monotonic() + deadline_s
    if pidns and drop_uid is not None:
        _sweep_as(drop_uid)
    while time.monotonic() < end:
        # Orphans of the run are re-parented to us: kill our children, reap, repeat until
        # none is left (their children come to us next).
        for child in _my_children():
            with contextlib.suppress(OSError):
                os.kill(child, signal.SIGKILL)
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            return
        time.sleep(0.001)


SYSV_IPC_LISTS = ("/proc/sysvipc/shm", "/proc/sysvipc/msg", "/proc/sysvipc/sem")
IPC_RMID = 0


def _sysv_objects() -> list[tuple[int, int]]:
    """(list index, id) of every SysV IPC object in this IPC namespace."""
    found = []
    for k, path in enumerate(SYSV_IPC_LISTS):
        try:
            with open(path) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        found += [(k, int(line.split()[1])) for line in lines if line.strip()]
    return found


def _remove_sysv_objects(drop_uid: int | None) -> None:
    """Remove what a run left in the worker's IPC namespace (shared memory, message queues,
    semaphores), as the runs' uid (their owner): the next run finds nothing. Reading three
    short /proc files is the whole cost when the run left nothing (the common case)."""
    objects = _sysv_objects()
    if not objects:
        return
    pid = os.fork()
    if pid == 0:
        try:
            if drop_uid is not None:
                _drop_uid(drop_uid)
            calls = (_LIBC.shmctl, _LIBC.msgctl, _LIBC.semctl)
            for k, ident in objects:
                calls[k](ident, IPC_RMID, None) if k < 2 else calls[k](ident, 0, IPC_RMID)
        except BaseException:
            os._exit(1)
        os._exit(0)
    os.waitpid(pid, 0)
    left = _sysv_objects()
    if left:
        print(f"forkserver: {len(left)} SysV IPC objects survived the sweep", file=sys.stderr)


def _zygote_run(header: dict, files: _RunFiles, setup: dict, seq: int) -> dict:
    limits = header["limits"]
    if seq % 1000 == 0:  # now and then collect what the zygote froze (see zygote_main)
        gc.unfreeze()
        gc.collect()
    gc.freeze()  # the zygote's objects of this job too (see zygote_main)
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(header, files, setup)
    killed = _wait_with_limits(pid, limits["cpu_s"], limits["wall_s"], start)
    _, status, usage = os.wait4(pid, 0)
    wall = time.monotonic() - start
    _kill_leftovers(setup["pidns"], setup["drop_uid"])
    if setup["ipc_mode"] == "sweep":
        _remove_sysv_objects(setup["drop_uid"])
    return {
        "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "wall_s": wall,
        "maxrss_kb": usage.ru_maxrss,
        "killed": killed,
    }


def zygote_main(cmd_r: int, reply_w: int, files: _RunFiles, setup: dict) -> None:
    """The zygote's loop (never returns). It reads headers only: no source, stdin or output
    ever enters its memory, so the children it forks start clean."""
    try:
        # Orphans of the runs come to us (the flag is not inherited from the worker).
        if _LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            raise _oserror("prctl(PR_SET_CHILD_SUBREAPER)")
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)  # the host's pipes are the worker's alone
        os.dup2(devnull, 1)
        os.close(devnull)
        # Threads of a pool run get glibc's usual 8 MiB, whatever stack limit the worker
        # inherited (set here, in _thread, so that no run pays for importing threading).
        with contextlib.suppress(Exception):
            _thread.stack_size(THREAD_STACK_BYTES)
        # Objects that exist now are never collected in a child: freezing them keeps the
        # children's GC from touching (and so copying) the zygote's pages.
        gc.freeze()
        seq = 0
        while True:
            frame = read_frame(cmd_r)
            if frame is None:
                break
            seq += 1
            try:
                reply = _zygote_run(frame[0], files, setup, seq)
            except Exception as exc:
                reply = {"zygote_error": f"{type(exc).__name__}: {exc}",
                         "traceback": traceback.format_exc()[-4000:]}
            write_frame(reply_w, reply)
    except BaseException:
        with contextlib.suppress(BaseException):
            traceback.print_exc()
        os._exit(1)
    os._exit(0)


# --- The worker: one job at a time

class _RunFiles:
    """The RAM files (memfd; tmpfs, so RLIMIT_FSIZE applies to writes) a run is passed
    through: stdin/stdout/stderr, the source, the child's job (argv, args) and its start-
    error report. Made once, before the zygote forks, and reused from run to run (nothing to
    create or delete per run, nothing another process could open by name): safe because
    every process of a run is dead before the next run starts, and each is truncated."""

    NAMES = ("stdin", "stdout", "stderr", "source", "job", "report")

    def __init__(self) -> None:
        fds = [os.memfd_create(name, os.MFD_CLOEXEC) for name in self.NAMES]
        self.stdio = tuple(fds[:3])
        self.source, self.job, self.report = fds[3:]

    def reset(self, stdin: bytes, source: bytes, job: dict) -> None:
        for fd in (*self.stdio, self.source, self.job, self.report):
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
        _write_all(self.stdio[0], stdin)
        os.lseek(self.stdio[0], 0, os.SEEK_SET)  # the child shares this file offset
        _write_all(self.source, source)
        _write_all(self.job, json.dumps(job).encode())

    def clear(self) -> None:
        """Drop the job's bytes as soon as the worker has read the outputs."""
        for fd in (self.stdio[0], self.source, self.job):
            os.ftruncate(fd, 0)


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
            _write_all(fd, data)
            os.fchmod(fd, 0o444)
        finally:
            os.close(fd)
    for directory in made:  # last: without root's DAC override we could not write into them
        os.chmod(directory, 0o555)


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _retry_writable(dir_fd: int, op) -> None:
    # Read-only directories (the job's files, or the program's own) block removal where the
    # worker has no DAC override (not root): open the directory up and try once more.
    try:
        op()
    except PermissionError:
        os.fchmod(dir_fd, 0o700)
        op()


def _open_dir(name: str, parent_fd: int) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except PermissionError:  # a directory the run made unreadable (mode 000)
        os.chmod(name, 0o700, dir_fd=parent_fd)
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)


def _empty_dir(fd: int) -> list[str]:
    """Remove every non-directory in the directory ``fd``; return its subdirectories."""
    subdirs = []
    with os.scandir(fd) as entries:
        names = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
    for name, is_dir in names:
        if is_dir:
            subdirs.append(name)
        else:
            _retry_writable(fd, lambda name=name: os.unlink(name, dir_fd=fd))
    return subdirs


def remove_tree(path: str) -> None:
    """Remove a directory tree without recursion, by file descriptors relative to each
    directory (no path grows with the depth: a 1,500-deep chain of 255-byte names is as easy
    as a flat directory), never following a symlink, each directory listed once. Only for
    trees no process changes while we walk them (every process of the run is dead then)."""
    fd = os.open(path, _DIR_FLAGS)
    stack: list[tuple[str, list[str]]] = [("", _empty_dir(fd))]  # (name, subdirs left)
    try:
        while True:
            name, pending = stack[-1]
            if pending:
                sub = pending.pop()
                child = _open_dir(sub, fd)
                os.close(fd)
                fd = child
                stack.append((sub, _empty_dir(fd)))
                continue
            if len(stack) == 1:
                break
            parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = parent
            stack.pop()
            _retry_writable(fd, lambda name=name, fd=fd: os.rmdir(name, dir_fd=fd))
    finally:
        os.close(fd)
    os.rmdir(path)


def _remove_rundir(rundir: str) -> None:
    try:
        os.rmdir(rundir)  # the common case: the run left nothing behind
    except FileNotFoundError:
        pass
    except OSError:
        remove_tree(rundir)


def _sweep_dev_shm() -> None:
    """Inside bwrap /dev is the sandbox's own: nothing a run put in /dev/shm (bwrap makes
    it root's, mode 0755, so nothing should be there) is left for the next run."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for name in os.listdir("/dev/shm"):
            path = os.path.join("/dev/shm", name)
            if os.path.isdir(path) and not os.path.islink(path):
                remove_tree(path)
            else:
                os.unlink(path)


class _ZygoteGone(Exception):
    """The zygote died: this worker cannot fork clean runs any more and must be replaced."""


def run_job(job: dict, blobs: list[bytes], state: dict) -> tuple[dict, list[bytes]]:
    limits = job["limits"]
    state["seq"] += 1
    rundir = os.path.join(state["base"], f"run-{state['seq']}")
    drop_uid = state["drop_uid"]
    files: _RunFiles = state["files"]
    source, stdin, *contents = blobs
    os.mkdir(rundir, 0o700)
    try:
        if drop_uid is not None:
            os.chown(rundir, drop_uid, drop_uid)
        if job.get("files"):
            _write_files(rundir, job["files"], contents)
        kind = job["kind"]
        child_job = {"kind": kind, "argv": job.get("argv"), "args": job.get("args", ()),
                     "import_files": bool(job.get("import_files"))}
        if kind == "python" and state["one_shot"]:
            # One-shot mode: a fresh interpreter per run, exactly `python solution.py`.
            path = os.path.join(rundir, "solution.py")
            with open(path, "wb") as f:
                f.write(source)
            os.chmod(path, 0o444)
            # -I (-E -P -s) keeps the run dir off sys.path; a program with files wants it
            # there, and its include/ too (PYTHONPATH, see _child): -s instead of -I, and
            # -B as in the pool's workers (no __pycache__ of its modules in the run dir).
            flags = ["-s", "-B"] if job.get("import_files") else ["-I"]
            child_job.update(kind="exec", argv=[sys.executable, *flags, "-S", "solution.py",
                                                *job.get("args", ())])
            source = b""
        elif kind == "exec" and job.get("copy_exe"):
            # Run a private copy: the solution can neither touch the cache nor see other
            # binaries.
            target = os.path.join(rundir, "solution")
            shutil.copyfile(job["copy_exe"], target)
            os.chmod(target, 0o555)
            child_job["argv"] = [target, *job["argv"][1:]]
        if child_job["kind"] == "python":
            code = _compiled(job["source_key"], source)
            if code is not None:
                source, child_job["marshal"] = code, True
        files.reset(stdin, source if child_job["kind"] == "python" else b"", child_job)
        write_frame(state["cmd_w"], {"kind": child_job["kind"], "limits": limits,
                                     "rundir": rundir})
        frame = read_frame(state["reply_r"])
        if frame is None:
            raise _ZygoteGone("the zygote exited")
        facts = frame[0]
        facts.pop("blobs", None)
        if "zygote_error" in facts:
            raise RuntimeError(f"zygote: {facts['zygote_error']}\n{facts.get('traceback')}")
        report = _read_memfd(files.report)
        out_fd, err_fd = files.stdio[1:]
        stdout_size = os.fstat(out_fd).st_size
        stdout = _pread_all(out_fd, min(stdout_size, limits["output_bytes"]), 0)
        err_size = os.fstat(err_fd).st_size
        tail = min(err_size, limits["stderr_tail_bytes"])
        stderr = _pread_all(err_fd, tail, err_size - tail)
        files.clear()
    finally:
        _cleanup_after_run(rundir, state)
    header = dict(facts, stdout_size=stdout_size,
                  start_error=json.loads(report) if report else None,
                  code_cache_hit=False)  # no code cache any more: each child compiles
    return header, [stdout, stderr]


_CODE_CACHE: dict[str, bytes | None] = {}
_CODE_CACHE_MAX = 256


def _compiled(key: str, source: bytes) -> bytes | None:
    """The solution's code object, marshalled (None: it does not compile). Compiling costs
    a child ~2 ms of page faults in a fresh parser; ``marshal.loads`` of these bytes, which
    the worker made itself, a fraction of that. Only the worker keeps the cache: a child gets
    the bytes of its own code through its RAM file, never another candidate's."""
    if key in _CODE_CACHE:
        return _CODE_CACHE[key]
    if hashlib.sha256(source).hexdigest() != key:
        raise ValueError("source does not match its key")
    try:
        entry = marshal.dumps(compile(source, "solution.py", "exec", dont_inherit=True))
    except Exception:  # SyntaxError & co.: the child compiles and raises it, as python would
        entry = None
    if len(_CODE_CACHE) >= _CODE_CACHE_MAX:
        _CODE_CACHE.pop(next(iter(_CODE_CACHE)))
    _CODE_CACHE[key] = entry
    return entry


def _cleanup_after_run(rundir: str, state: dict) -> None:
    """Never fails: a cleanup problem is logged; the next run gets a new directory anyway."""
    try:
        _remove_rundir(rundir)
    except Exception as exc:
        with contextlib.suppress(Exception):
            print(f"forkserver: could not remove {rundir}: {type(exc).__name__}: {exc}",
                  file=sys.stderr, flush=True)
    if state["pidns"]:
        try:
            _sweep_dev_shm()
        except Exception as exc:
            with contextlib.suppress(Exception):
                print(f"forkserver: could not empty /dev/shm: {type(exc).__name__}: {exc}",
                      file=sys.stderr, flush=True)


# --- Entry point

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="directory for run and work dirs")
    parser.add_argument("--pidns", action="store_true", help="we run in our own pid namespace")
    parser.add_argument("--drop-uid", type=int, default=None, help="uid/gid for the children")
    parser.add_argument("--one-shot", action="store_true", help="one job, fresh interpreter")
    parser.add_argument("--seccomp-filter", default=None,
                        help="raw classic-BPF program installed in every run")
    args = parser.parse_args(argv)
    if args.pidns and os.getpid() > 10:
        # kill(-1) outside a pid namespace would kill every process we may signal: refuse.
        print("forkserver: --pidns given but we are not in a fresh pid namespace",
              file=sys.stderr)
        return 2
    seccomp = None
    if args.seccomp_filter is not None:
        try:
            seccomp = _Seccomp(load_seccomp_filter(args.seccomp_filter))
        except (OSError, ValueError) as exc:
            print(f"forkserver: cannot read the seccomp filter: {exc}", file=sys.stderr)
            return 2
    # Orphans of the worker's own children come back to it (the zygote is one for the runs).
    if _LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
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
    probe = probe_child_setup(args.drop_uid, seccomp)
    setup = {"drop_uid": args.drop_uid, "pidns": args.pidns, "ipc_mode": probe["ipc_mode"],
             "seccomp": seccomp}
    files = _RunFiles()
    cmd_r, cmd_w = os.pipe2(os.O_CLOEXEC)
    reply_r, reply_w = os.pipe2(os.O_CLOEXEC)
    zygote = os.fork()
    if zygote == 0:
        os.close(cmd_w)
        os.close(reply_r)
        zygote_main(cmd_r, reply_w, files, setup)  # never returns
    os.close(cmd_r)
    os.close(reply_w)
    state = {"base": args.base, "drop_uid": args.drop_uid, "files": files,
             "pidns": args.pidns, "one_shot": args.one_shot, "seq": 0,
             "cmd_w": cmd_w, "reply_r": reply_r}
    ready = {"ready": True, "pid": os.getpid(), "uid": os.getuid(),
             "python": sys.version.split()[0], "zygote_pid": zygote,
             "ipc_per_run": probe["ipc_mode"] is not None, "ipc_mode": probe["ipc_mode"],
             "seccomp": bool(seccomp is not None and probe.get("seccomp"))}
    for key in ("ipc_error", "seccomp_error"):
        if probe.get(key) and (key != "ipc_error" or probe["ipc_mode"] is None):
            ready[key] = probe[key]
    write_frame(1, ready)
    try:
        while True:
            frame = read_frame(0)
            if frame is None or frame[0].get("op") == "exit":
                return 0
            header, blobs = frame
            try:
                reply = run_job(header, blobs, state)
            except (_ZygoteGone, BrokenPipeError) as exc:
                # Without a clean process to fork from, this worker is done: the host sees it
                # exit and starts a fresh one.
                print(f"forkserver: the zygote is gone ({exc}); exiting", file=sys.stderr)
                return 3
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
