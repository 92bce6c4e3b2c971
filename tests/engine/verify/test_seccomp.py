"""The sandbox's seccomp filter: what it denies, what it leaves alone, and how it is wired.

    .venv/bin/python -m pytest tests/engine/verify/test_seccomp.py -q

First chapter: the program from ``seccomp_filter.build_filter()`` installed by hand in a
plain forked child on the host (prctl NO_NEW_PRIVS + SECCOMP_MODE_FILTER through ctypes);
the child makes raw syscalls through ``syscall()`` and reports errno over a pipe. A control
child without the filter shows the call is not refused anyway. Second: how ``isolation.py``
hands the filter to the worker (``--seccomp-filter``, ``use_seccomp``, ``describe``).
Third: end to end through ``Sandbox.run`` and ``SandboxPool`` (Python and C++); skipped
with a reason while forkserver.py does not take ``--seccomp-filter``. Leaves out: the
throughput cost (``tests/bench/sandbox_throughput.py``), architectures other than x86_64
for the ABI checks.
"""

from __future__ import annotations

import copy
import ctypes
import dataclasses
import errno
import json
import mmap
import os
import platform
import signal
import stat
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.verify import seccomp_filter
from engine.verify.isolation import (
    FORKSERVER,
    SECCOMP_IN_SANDBOX,
    SandboxUnavailable,
    plan_isolation,
)

try:
    FILTER = seccomp_filter.build_filter()
except seccomp_filter.SeccompUnavailable as exc:  # pragma: no cover - libseccomp missing
    pytest.skip(f"libseccomp unavailable: {exc}", allow_module_level=True)

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.syscall.restype = ctypes.c_long
X86_64 = platform.machine() == "x86_64"

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
AF_UNIX, AF_INET, AF_NETLINK, AF_PACKET, AF_VSOCK = 1, 2, 16, 17, 40
SOCK_STREAM, SOCK_DGRAM, SOCK_RAW = 1, 2, 3
SIGCHLD = 17
CLONE_NEW = seccomp_filter.CLONE_NEW_FLAGS
KEY_SPEC_PROCESS_KEYRING, KEY_SPEC_USER_KEYRING = -2, -4


def nr(name: str) -> int:
    number = seccomp_filter._lib().seccomp_syscall_resolve_name(name.encode())
    assert number >= 0, name
    return number


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def install(program: bytes) -> None:
    """What the worker does in each child before untrusted code runs."""
    if LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    prog = SockFprog(len(program) // 8, program)
    if LIBC.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP")


def raw(name: str, *args: int | bytes | None) -> int:
    """The raw syscall's errno (0 on success); a forked clone child exits at once."""
    me = os.getpid()
    conv = [ctypes.c_long(a) if isinstance(a, int) else ctypes.c_char_p(a) for a in args]
    ctypes.set_errno(0)
    ret = LIBC.syscall(ctypes.c_long(nr(name)), *conv)
    if ret == 0 and os.getpid() != me:  # a clone that succeeded: we are its child
        os._exit(0)
    if ret < 0:
        return ctypes.get_errno()
    if name in ("clone",) and ret > 0:
        os.waitpid(ret, 0)
    if name in ("socket",):
        os.close(ret)
    return 0


def in_child(fn: Callable[[], object], *, program: bytes | None = FILTER,
             timeout: float = 60) -> tuple[int, object]:
    """Run ``fn`` in a forked child (under ``program`` unless None): (wait status, result)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 0
        try:
            os.close(r)
            if program is not None:
                install(program)
            payload = {"ok": fn()}
        except BaseException:  # noqa: BLE001 - reported to the parent
            payload, code = {"error": traceback.format_exc()}, 1
        try:
            os.write(w, json.dumps(payload).encode())
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    with os.fdopen(r, "rb") as pipe:
        while chunk := pipe.read(65536):
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    data = json.loads(b"".join(chunks) or b"{}")
    assert "error" not in data, data["error"]
    return status, data.get("ok")


# --- The calls under test: name -> zero-argument function returning errno

DENIED_CALLS: dict[str, Callable[[], int]] = {
    "socket(AF_VSOCK)": lambda: raw("socket", AF_VSOCK, SOCK_STREAM, 0),
    "socket(AF_NETLINK)": lambda: raw("socket", AF_NETLINK, SOCK_RAW, 0),
    "socket(AF_PACKET)": lambda: raw("socket", AF_PACKET, SOCK_RAW, 0),
    "socket(AF_INET)": lambda: raw("socket", AF_INET, SOCK_DGRAM, 0),
    # AF_UNIX in the low 32 bits but not in the 64-bit register: still refused.
    "socket(AF_UNIX | 1<<32)": lambda: raw("socket", AF_UNIX | 1 << 32, SOCK_STREAM, 0),
    "socketpair(AF_INET)": lambda: raw("socketpair", AF_INET, SOCK_STREAM, 0, None),
    "add_key": lambda: raw("add_key", b"user", b"synthsmith", b"v", 1,
                           KEY_SPEC_PROCESS_KEYRING),
    "keyctl": lambda: raw("keyctl", 0, KEY_SPEC_USER_KEYRING, 0),  # GET_KEYRING_ID
    "request_key": lambda: raw("request_key", b"user", b"synthsmith", None, 0),
    "ptrace(PTRACE_TRACEME)": lambda: raw("ptrace", 0, 0, 0, 0),
    "process_vm_readv": lambda: raw("process_vm_readv", os.getppid(), None, 0, None, 0, 0),
    "unshare(CLONE_NEWUSER)": lambda: raw("unshare", CLONE_NEW["CLONE_NEWUSER"]),
    "unshare(CLONE_NEWNS)": lambda: raw("unshare", CLONE_NEW["CLONE_NEWNS"]),
    "setns": lambda: raw("setns", -1, 0),
    "mount": lambda: raw("mount", b"none", b"/tmp", b"tmpfs", 0, None),
    "umount2": lambda: raw("umount2", b"/tmp", 0),
    "chroot": lambda: raw("chroot", b"/"),
    "bpf": lambda: raw("bpf", 0, None, 0),
    "perf_event_open": lambda: raw("perf_event_open", None, 0, -1, -1, 0),
    "userfaultfd": lambda: raw("userfaultfd", 0),
    "io_uring_setup": lambda: raw("io_uring_setup", 1, None),
    "open_by_handle_at": lambda: raw("open_by_handle_at", -1, None, 0),
    "init_module": lambda: raw("init_module", None, 0, b""),
    **{f"clone({flag}|SIGCHLD)": (lambda v=value: raw("clone", v | SIGCHLD, 0, 0, 0, 0))
       for flag, value in CLONE_NEW.items()},
}


def test_filter_is_a_bpf_program_and_describe_lists_the_policy():
    assert len(FILTER) % 8 == 0 and 8 < len(FILTER) // 8 <= 4096  # BPF_MAXINSNS
    info = seccomp_filter.describe()
    assert info["libseccomp"].startswith("2.")
    assert info["default"] == "allow" and info["bad_arch"] == "kill process"
    must = {"add_key", "keyctl", "request_key", "ptrace", "process_vm_readv",
            "process_vm_writev", "mount", "umount2", "pivot_root", "chroot", "unshare",
            "setns", "clone", "socket", "socketpair", "bpf", "perf_event_open", "userfaultfd",
            "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
            "reboot", "swapon", "swapoff", "acct", "quotactl", "name_to_handle_at",
            "open_by_handle_at", "io_uring_setup"}
    if X86_64:
        must |= {"iopl", "ioperm"}
    assert must <= set(info["denied"])
    assert info["enosys"] == ["clone3"]
    assert info["rules"] >= len(must)
    assert seccomp_filter.build_filter() is FILTER  # built once per process


@pytest.mark.parametrize("call", sorted(DENIED_CALLS))
def test_denied_call_gets_eperm(call):
    status, err = in_child(DENIED_CALLS[call])
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    assert err == errno.EPERM, f"{call}: {errno.errorcode.get(err, err)}, expected EPERM"


@pytest.mark.parametrize("call", ["socket(AF_NETLINK)", "socket(AF_INET)", "bpf", "setns",
                                  "keyctl", "io_uring_setup", "userfaultfd"])
def test_without_the_filter_the_call_is_not_eperm(call):
    """Control: the EPERM above comes from the filter, not from this machine."""
    _, err = in_child(DENIED_CALLS[call], program=None)
    assert err != errno.EPERM, f"{call} is refused even without the filter"


def test_clone3_gets_enosys_and_threads_fall_back_to_clone():
    def probe():
        import threading
        got = raw("clone3", None, 0)
        box = []
        t = threading.Thread(target=lambda: box.append(sum(range(1000))))
        t.start()
        t.join()
        return [got, box]
    _, (err, box) = in_child(probe)
    assert err == errno.ENOSYS
    assert box == [499500]
    _, (err, _) = in_child(probe, program=None)
    assert err != errno.ENOSYS


def test_allowed_calls_still_work(tmp_path):
    data = tmp_path / "data.txt"
    data.write_text("hello seccomp\n")
    os.chmod(tmp_path, 0o755)

    def probe():
        import socket
        import subprocess
        import threading
        out = {}
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        a.sendall(b"ping")
        out["socketpair"] = b.recv(4).decode()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.close()
        r, w = os.pipe()
        os.write(w, b"pipe")
        out["pipe"] = os.read(r, 4).decode()
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        out["fork"] = os.WEXITSTATUS(os.waitpid(pid, 0)[1])
        results = []
        threads = [threading.Thread(target=lambda i=i: results.append(i * i)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out["threads"] = sorted(results)
        out["file"] = Path(str(data)).read_text()
        m = mmap.mmap(-1, 1 << 20)
        m[:5] = b"mmap!"
        out["mmap"] = m[:5].decode()
        out["subprocess"] = subprocess.run(["/bin/echo", "spawned"], capture_output=True,
                                           text=True).stdout
        out["getpid"] = os.getpid() > 0
        return out
    status, out = in_child(probe)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert out == {"socketpair": "ping", "pipe": "pipe", "fork": 7,
                   "threads": [i * i for i in range(8)], "file": "hello seccomp\n",
                   "mmap": "mmap!", "subprocess": "spawned\n", "getpid": True}


@pytest.mark.skipif(not X86_64, reason="x32 is an x86_64 ABI")
def test_x32_syscall_kills_the_process():
    x32_getpid = 0x40000000 | nr("getpid")
    status, _ = in_child(lambda: LIBC.syscall(ctypes.c_long(x32_getpid)))
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS, status


@pytest.mark.skipif(not X86_64, reason="int 0x80 is the i386 ABI on x86_64")
def test_i386_syscall_kills_the_process():
    # mov eax, 20 (i386 getpid); int 0x80; ret
    code = b"\xb8\x14\x00\x00\x00\xcd\x80\xc3"

    def call_int80():
        page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE
                         | mmap.PROT_EXEC)
        page.write(code)
        address = ctypes.addressof(ctypes.c_char.from_buffer(page))
        return ctypes.CFUNCTYPE(ctypes.c_int)(address)()

    status, ret = in_child(call_int80, program=None)
    if not (os.WIFEXITED(status) and ret and ret > 0):
        pytest.skip(f"no i386 emulation in this kernel (status {status}, got {ret})")
    status, _ = in_child(call_int80)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS, status


def test_syscall_cost_under_the_filter():
    """A cheap allowed syscall under the filter costs well under a microsecond more."""
    def loop():
        import time
        getppid = nr("getppid")
        start = time.perf_counter()
        for _ in range(200_000):
            LIBC.syscall(getppid)
        return (time.perf_counter() - start) / 200_000
    _, bare = in_child(loop, program=None)
    _, filtered = in_child(loop)
    print(f"getppid via ctypes: {bare * 1e9:.0f} ns bare, {filtered * 1e9:.0f} ns filtered")
    assert filtered - bare < 1e-6


# --- How isolation.py hands the filter to the worker

def test_plan_passes_the_filter_file_to_the_worker(tmp_path):
    plan = plan_isolation(use_bwrap=False, allow_unsandboxed=True, python="/usr/bin/python3")
    assert plan.seccomp_filter == FILTER
    argv = plan.worker_command(one_shot=True, host_base=tmp_path)
    path = argv[argv.index("--seccomp-filter") + 1]
    assert Path(path).read_bytes() == FILTER
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid()
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    # Once per process: the next worker gets the same file; a removed file is rewritten.
    assert plan.worker_command(one_shot=False, host_base=tmp_path).count(path) == 1
    os.unlink(path)
    again = plan.worker_command(one_shot=True, host_base=tmp_path)
    assert Path(again[again.index("--seccomp-filter") + 1]).read_bytes() == FILTER
    assert plan.describe()["seccomp"] == (
        f"{len(seccomp_filter.describe()['denied'])} syscalls denied "
        f"(libseccomp {seccomp_filter.libseccomp_version()})")


def test_plan_bwrap_binds_the_filter_read_only():
    try:
        plan = plan_isolation(use_bwrap=True, use_seccomp=True)
    except SandboxUnavailable as exc:
        pytest.skip(f"no bwrap: {exc}")
    argv = plan.worker_command(one_shot=False)
    i = argv.index(SECCOMP_IN_SANDBOX)
    assert argv[i - 2] == "--ro-bind" and Path(argv[i - 1]).read_bytes() == FILTER
    assert argv[argv.index("--seccomp-filter") + 1] == SECCOMP_IN_SANDBOX
    assert argv.index("--seccomp-filter") > argv.index("--")  # the worker's, not bwrap's


def test_use_seccomp_false_and_true(tmp_path, monkeypatch):
    plan = plan_isolation(use_bwrap=False, allow_unsandboxed=True, python="/usr/bin/python3",
                          use_seccomp=False)
    assert plan.seccomp_filter is None
    assert plan.describe()["seccomp"] == "off (use_seccomp=False)"
    assert "--seccomp-filter" not in plan.worker_command(one_shot=True, host_base=tmp_path)

    def missing():
        raise seccomp_filter.SeccompUnavailable("libseccomp is not installed")
    monkeypatch.setattr(seccomp_filter, "build_filter", missing)
    with pytest.raises(SandboxUnavailable, match="libseccomp is not installed"):
        plan_isolation(use_bwrap=False, allow_unsandboxed=True, python="/usr/bin/python3",
                       use_seccomp=True)
    plan = plan_isolation(use_bwrap=False, allow_unsandboxed=True, python="/usr/bin/python3")
    assert plan.seccomp_filter is None
    assert plan.describe()["seccomp"] == "NOT applied: libseccomp is not installed"


def test_lib_missing_raises_seccomp_unavailable(monkeypatch):
    monkeypatch.setattr(seccomp_filter, "_lib", lambda: (_ for _ in ()).throw(
        seccomp_filter.SeccompUnavailable("gone")))
    seccomp_filter._build.cache_clear()
    try:
        with pytest.raises(seccomp_filter.SeccompUnavailable):
            seccomp_filter._build()
    finally:
        monkeypatch.undo()
        seccomp_filter._build.cache_clear()
        assert seccomp_filter.build_filter() == FILTER


# --- End to end: the worker installs the filter in every child


PY_PROBE = r"""
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR = json.loads(sys.stdin.read())
def call(name, *args):
    conv = [ctypes.c_long(a) if isinstance(a, int) else ctypes.c_char_p(a) for a in args]
    ctypes.set_errno(0)
    me = os.getpid()
    ret = libc.syscall(ctypes.c_long(NR[name]), *conv)
    if ret == 0 and os.getpid() != me:
        os._exit(0)
    return ctypes.get_errno() if ret < 0 else 0
out = {
    "socket(AF_VSOCK)": call("socket", 40, 1, 0),
    "socket(AF_NETLINK)": call("socket", 16, 3, 0),
    "socket(AF_PACKET)": call("socket", 17, 3, 0),
    "add_key": call("add_key", b"user", b"synthsmith", b"v", 1, -2),
    "keyctl": call("keyctl", 0, -4, 0),
    "request_key": call("request_key", b"user", b"synthsmith", None, 0),
    "ptrace": call("ptrace", 0, 0, 0, 0),
    "unshare(CLONE_NEWUSER)": call("unshare", 0x10000000),
    "clone(CLONE_NEWUSER)": call("clone", 0x10000000 | 17, 0, 0, 0, 0),
    "mount": call("mount", b"none", b"/tmp", b"tmpfs", 0, None),
    "bpf": call("bpf", 0, None, 0),
    "io_uring_setup": call("io_uring_setup", 1, None),
    "clone3": call("clone3", None, 0),
}
print(json.dumps(out))
"""

EXPECTED = {name: errno.EPERM for name in (
    "socket(AF_VSOCK)", "socket(AF_NETLINK)", "socket(AF_PACKET)", "add_key", "keyctl",
    "request_key", "ptrace", "unshare(CLONE_NEWUSER)", "clone(CLONE_NEWUSER)", "mount", "bpf",
    "io_uring_setup")} | {"clone3": errno.ENOSYS}
NUMBERS = json.dumps({name: nr(name) for name in (
    "socket", "add_key", "keyctl", "request_key", "ptrace", "unshare", "clone", "mount", "bpf",
    "io_uring_setup", "clone3")})

CPP_PROBE = r"""
#include <cerrno>
#include <cstdio>
#include <sched.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>
static int err(long r) { return r < 0 ? errno : 0; }
int main() {
    errno = 0;
    int vsock = err(socket(40, SOCK_STREAM, 0));
    int netlink = err(socket(16, SOCK_RAW, 0));
    int keyctl = err(syscall(SYS_keyctl, 0, -4, 0));
    int userns = err(unshare(CLONE_NEWUSER));
    int clone3 = err(syscall(SYS_clone3, nullptr, 0));
    int sv[2];
    int pair = err(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    // A thread with a small explicit stack (std::thread's default is RLIMIT_STACK): glibc
    // tries clone3, gets ENOSYS, falls back to clone.
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1 << 20);
    pthread_t thread;
    static long from_thread = 0;
    int made = pthread_create(&thread, &attr, [](void*) -> void* { from_thread = 7; return nullptr; }, nullptr);
    if (made == 0) pthread_join(thread, nullptr);
    pid_t child = fork();  // glibc's fork: clone without namespace flags
    if (child == 0) _exit(5);
    int status = 0;
    waitpid(child, &status, 0);
    long a, b;
    if (scanf("%ld %ld", &a, &b) != 2) return 3;
    printf("%d %d %d %d %d %d %d %ld %d %ld\n", vsock, netlink, keyctl, userns, clone3, pair,
           made, from_thread, WEXITSTATUS(status), a + b);
}
"""

ORDINARY_PY = r"""
import sys, threading
sys.setrecursionlimit(100000)
def depth(n):
    return 0 if n == 0 else 1 + depth(n - 1)
data = sys.stdin.buffer.read().split()
box = []
t = threading.Thread(target=lambda: box.append(sum(map(int, data))))
t.start(); t.join()
print(box[0], depth(20000))
"""


ORDINARY_NO_THREADS = r"""
import sys
sys.setrecursionlimit(100000)
def depth(n):
    return 0 if n == 0 else 1 + depth(n - 1)
data = sys.stdin.buffer.read().split()
print(sum(map(int, data)), depth(20000))
"""

ORDINARY_CPP = r"""
#include <iostream>
#include <thread>
#include <vector>
int main() {
    long a, b;
    std::cin >> a >> b;
    std::vector<long> part(2);
    std::thread t([&] { part[0] = a; });
    std::thread u([&] { part[1] = b; });
    t.join(); u.join();
    std::cout << part[0] + part[1] << std::endl;
}
"""


def _ordinary():
    from engine.verify import Program
    return {
        "python_threads_recursion": lambda: (Program.python(ORDINARY_PY), "1 2 3 4\n",
                                             "10 20000\n"),
        "python_recursion_stdin": lambda: (Program.python(ORDINARY_NO_THREADS), "1 2 3 4\n",
                                           "10 20000\n"),
        "cpp_std_thread": lambda: (Program.cpp(ORDINARY_CPP), "40 2\n", "42\n"),
    }


ORDINARY = _ordinary()


@pytest.fixture(scope="module")
def e2e_sandbox(tmp_path_factory):
    from engine.verify import Sandbox
    try:
        sandbox = Sandbox(cpp_cache_dir=tmp_path_factory.mktemp("cpp"))
    except SandboxUnavailable:
        sandbox = Sandbox(cpp_cache_dir=tmp_path_factory.mktemp("cpp"), allow_unsandboxed=True,
                          python="/usr/bin/python3")
    if sandbox.plan.seccomp_filter is None:
        pytest.skip(f"no filter: {sandbox.plan.seccomp}")
    return sandbox


@pytest.fixture(scope="module")
def e2e_pool(e2e_sandbox):
    from engine.verify import SandboxPool
    with SandboxPool(2, sandbox=e2e_sandbox) as pool:
        yield pool


@pytest.fixture(scope="module")
def e2e_sandbox_off(e2e_sandbox):
    """The same sandbox without the filter: the control."""
    sandbox = copy.copy(e2e_sandbox)
    sandbox.plan = dataclasses.replace(e2e_sandbox.plan, seccomp_filter=None, seccomp="off")
    return sandbox


@pytest.fixture(scope="module")
def e2e_pool_off(e2e_sandbox_off):
    from engine.verify import SandboxPool
    with SandboxPool(1, sandbox=e2e_sandbox_off) as pool:
        yield pool


@pytest.fixture(params=["one-shot", "pool"])
def e2e_run(request):
    if request.param == "pool":
        return request.getfixturevalue("e2e_pool").run
    return request.getfixturevalue("e2e_sandbox").run


@pytest.fixture
def e2e_run_off(request, e2e_run):
    pool = request.node.callspec.params["e2e_run"] == "pool"
    return request.getfixturevalue("e2e_pool_off" if pool else "e2e_sandbox_off").run


def test_sandbox_describe_reports_the_filter(e2e_sandbox):
    assert e2e_sandbox.describe()["seccomp"].endswith(
        f"syscalls denied (libseccomp {seccomp_filter.libseccomp_version()})")


def test_python_run_gets_eperm_for_denied_calls(e2e_run):
    from engine.verify import Limits, Program
    result = e2e_run(Program.python(PY_PROBE), NUMBERS, Limits(cpu_s=5, memory_mb=256))
    assert result.status == "ok", (result.status, result.detail, result.stderr)
    got = json.loads(result.text)
    wrong = {k: errno.errorcode.get(v, v) for k, v in got.items() if v != EXPECTED[k]}
    assert not wrong, f"not refused as expected: {wrong}"


@pytest.mark.parametrize("name", sorted(ORDINARY))
def test_ordinary_solution_is_unaffected(e2e_run, e2e_run_off, name):
    """Same verdict and output with and without the filter; ok where the control is ok."""
    from engine.verify import Limits
    program, stdin, expected = ORDINARY[name]()
    limits = Limits(cpu_s=5, memory_mb=256)
    on, off = e2e_run(program, stdin, limits), e2e_run_off(program, stdin, limits)
    assert (on.status, on.text) == (off.status, off.text), (on.stderr, off.stderr)
    if off.status == "ok":
        assert on.text == expected
    else:  # a sandbox limitation without seccomp (issue 14 item 4): not ours to judge here
        pytest.xfail(f"{name} fails without the filter too: {off.status} {off.stderr[-200:]}")


@pytest.mark.slow
def test_cpp_run_gets_eperm_and_threads_and_fork_work(e2e_run):
    from engine.verify import Limits, Program
    result = e2e_run(Program.cpp(CPP_PROBE), "40 2\n", Limits(cpu_s=5, memory_mb=256))
    assert result.status == "ok", (result.status, result.detail, result.stderr)
    expected = [errno.EPERM] * 4 + [errno.ENOSYS, 0, 0, 7, 5, 42]
    assert result.text.split() == [str(x) for x in expected], result.text


def test_filter_off_by_plan_lets_the_calls_through(e2e_sandbox, e2e_sandbox_off):
    """Control for the end-to-end tests: the same probe, same sandbox, no filter."""
    from engine.verify import Limits, Program
    result = e2e_sandbox_off.run(Program.python(PY_PROBE), NUMBERS, Limits(cpu_s=5, memory_mb=256))
    assert result.status == "ok", (result.status, result.detail, result.stderr)
    got = json.loads(result.text)
    assert got["clone3"] != errno.ENOSYS
    assert got["keyctl"] != errno.EPERM
    if e2e_sandbox.isolation == "bwrap":  # own network namespace: netlink works there
        assert got["socket(AF_NETLINK)"] != errno.EPERM


def test_forkserver_path_is_the_worker():
    assert FORKSERVER.name == "forkserver.py" and FORKSERVER.exists()
