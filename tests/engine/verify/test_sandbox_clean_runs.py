"""Every run starts clean, and correct programs pass the same way in both modes.

    .venv/bin/python -m pytest tests/engine/verify/test_sandbox_clean_runs.py -q

The leak tests plant unique random markers in run A and search for them from run B on the
same worker (a pool of one worker), as an attacker would: B scans its own readable memory
(/proc/self/maps, then every readable anonymous region through ctypes), asks for A's SysV
shared memory segment by key, and looks for A's files under /tmp and /dev/shm. B never holds
a marker itself: it knows a short prefix and the sha256 of each whole marker, so only a
leaked copy can match. A control marker in B's own stdin proves the scan sees the heap.

The seccomp tests start ``forkserver.py`` directly (no bwrap: root drops the runs to uid
65534) with a tiny hand-made classic-BPF filter, so they do not depend on how the host
builds its real filter. C++ tests compile and are marked slow. Leaves out: the kernel
keyring (the seccomp filter's job) and timing side channels.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from engine.verify import Limits, Program, SandboxPool, forkserver

QUICK = Limits(cpu_s=5.0, wall_s=20.0, memory_mb=256)
BIG = Limits(cpu_s=10.0, wall_s=30.0, memory_mb=512)


def world_python() -> str | None:
    return "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else None


@pytest.fixture(scope="module")
def pool(sandbox):
    # One worker: run B always follows run A on the same worker.
    with SandboxPool(1, sandbox=sandbox) as started:
        yield started


@pytest.fixture
def needs_bwrap(sandbox):
    if sandbox.isolation != "bwrap":
        pytest.skip("bubblewrap is not available here (install the package `bubblewrap`)")


def py(source: str) -> Program:
    return Program.python(source)


def marker(tag: str) -> tuple[str, str]:
    """(prefix, whole marker): the prefix alone is harmless, the whole is the secret."""
    prefix = f"MK{tag}{uuid.uuid4().hex[:10]}"
    return prefix, prefix + uuid.uuid4().hex + uuid.uuid4().hex


# --- Memory: nothing of an earlier run in a later run's address space

# Scans every readable private region of its own memory for each (prefix, length, sha256)
# in `targets`: prints the names found. File-backed regions are skipped (reading past the
# end of a file mapping raises SIGBUS; they hold files, not heap).
SCANNER = r'''
import ctypes, hashlib, sys
targets = TARGETS
control = sys.stdin.buffer.read()  # the control marker: must be found
found = set()
with open('/proc/self/maps') as f:
    regions = [line.split() for line in f]
for fields in regions:
    start, end = (int(x, 16) for x in fields[0].split('-'))
    path = fields[5] if len(fields) > 5 else ''
    if 'r' not in fields[1] or path in ('[vvar]', '[vsyscall]', '[vvar_vclock]') or (
            path and not path.startswith('[')):
        continue
    offset = start
    while offset < end:
        size = min(end - offset, 1 << 20)
        try:
            data = ctypes.string_at(offset, size + min(end - offset - size, 256))
        except Exception:
            break
        for name, (prefix, length, digest) in targets.items():
            i = data.find(prefix)
            while i >= 0:
                if hashlib.sha256(data[i:i + length]).hexdigest() == digest:
                    found.add(name)
                i = data.find(prefix, i + 1)
        offset += size
print(sorted(found))
'''


def scanner(targets: dict[str, str], prefixes: dict[str, str]) -> str:
    spec = {name: (prefixes[name].encode(), len(value),
                   hashlib.sha256(value.encode()).hexdigest())
            for name, value in targets.items()}
    return SCANNER.replace("TARGETS", repr(spec))


def test_a_later_run_finds_no_bytes_of_an_earlier_run_in_its_memory(pool, needs_bwrap):
    (p_src, m_src), (p_in, m_in), (p_out, _), (p_ctl, m_ctl) = (
        marker("S"), marker("I"), marker("O"), marker("C"))
    # A's stdout is computed from its stdin at run time: neither its source nor its input
    # holds it.
    m_out = p_out + hashlib.sha256(m_in.encode()).hexdigest() * 2
    planter = (f"import hashlib, sys\nSECRET = {m_src!r}\nkept = [SECRET * 1]\n"
               "data = sys.stdin.read()\nkept.append(data)\n"
               f"out = {p_out!r} + hashlib.sha256(data.strip().encode()).hexdigest() * 2\n"
               "print(out)\n")
    targets = {"source": m_src, "stdin": m_in, "stdout": m_out, "control": m_ctl}
    prefixes = {"source": p_src, "stdin": p_in, "stdout": p_out, "control": p_ctl}
    scan = scanner(targets, prefixes)
    assert not any(m in scan for m in (m_src, m_in, m_out, m_ctl))
    for _ in range(2):  # a few runs, as a batch would have
        first = pool.run(py(planter), m_in + "\n", QUICK)
        assert first.status == "ok" and first.text.strip() == m_out, first
    result = pool.run(py(scan), m_ctl, QUICK)
    assert result.status == "ok", result
    assert result.text.strip() == "['control']", (
        f"run B found an earlier run's data in its memory: {result.text}")


def test_one_shot_runs_find_nothing_of_earlier_runs_either(sandbox):
    (p_in, m_in), (p_ctl, m_ctl) = marker("I"), marker("C")
    assert sandbox.run(py("import sys\nkept = sys.stdin.read()\nprint(len(kept))\n"),
                       m_in, QUICK).status == "ok"
    result = sandbox.run(py(scanner({"stdin": m_in, "control": m_ctl},
                                    {"stdin": p_in, "control": p_ctl})), m_ctl, QUICK)
    assert result.status == "ok" and result.text.strip() == "['control']", result


# --- Kernel state: SysV IPC, POSIX shm, temp files

SHM = r'''
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
KEY = KEYVALUE
if sys.argv[1:] == ['plant']:
    shmid = libc.shmget(KEY, 4096, 0o1000 | 0o666)  # IPC_CREAT
    if shmid < 0:
        print('shmget failed', ctypes.get_errno()); sys.exit(0)
    addr = libc.shmat(shmid, None, 0)
    ctypes.memmove(addr, MARK, len(MARK))
    libc.shmdt(ctypes.c_void_p(addr))
    print('planted')
else:
    shmid = libc.shmget(KEY, 0, 0)
    if shmid < 0:
        print('absent'); sys.exit(0)
    addr = libc.shmat(shmid, None, 0o10000)  # SHM_RDONLY
    print('visible', ctypes.string_at(addr, len(MARK)) == MARK)
'''


def test_sysv_shared_memory_of_one_run_is_gone_in_the_next(pool, needs_bwrap):
    key = 0x5EED0000 + uuid.uuid4().int % 0xFFFF
    mark = uuid.uuid4().hex.encode()
    source = SHM.replace("KEYVALUE", str(key)).replace("MARK", repr(mark))
    planted = pool.run(Program.python(source, args=["plant"]), "", QUICK)
    assert planted.status == "ok" and planted.text == "planted\n", planted
    probe = pool.run(Program.python(source, args=["probe"]), "", QUICK)
    assert probe.status == "ok", probe
    assert probe.text == "absent\n", "run B sees run A's SysV shared memory segment"


def test_the_worker_reports_a_private_ipc_namespace_per_run(pool, needs_bwrap):
    worker = next(iter(pool._all))
    assert worker.ready.get("ipc_per_run") is True, worker.ready


FILES = r'''
import os, sys
for path in PATHS:
    if sys.argv[1:] == ['plant']:
        try:
            with open(path, 'w') as f:
                f.write('left')
            print('wrote', path)
        except OSError as e:
            print('refused', path, type(e).__name__)
    else:
        print('exists' if os.path.exists(path) else 'absent', path)
'''


@pytest.mark.parametrize("mode", ["one-shot", "pool"])
def test_files_in_tmp_or_dev_shm_do_not_reach_the_next_run(sandbox, pool, needs_bwrap, mode):
    run = pool.run if mode == "pool" else sandbox.run
    tag = uuid.uuid4().hex
    paths = [f"/tmp/left-{tag}", f"/dev/shm/left-{tag}", f"/dev/shm/sem.left-{tag}"]
    source = FILES.replace("PATHS", repr(paths))
    planted = run(Program.python(source, args=["plant"]), "", QUICK)
    assert planted.status == "ok", planted
    probe = run(Program.python(source, args=["probe"]), "", QUICK)
    assert probe.status == "ok", probe
    assert probe.text.split("\n")[:-1] == [f"absent {p}" for p in paths], (planted.text,
                                                                           probe.text)


# --- Correct programs pass the same way in both modes

def test_python_threads_work(runner):
    source = ("import threading\nout = []\n"
              "def work(i):\n    out.append(sum(range(i * 1000)))\n"
              "ts = [threading.Thread(target=work, args=(i,)) for i in range(8)]\n"
              "[t.start() for t in ts]\n[t.join() for t in ts]\nprint(len(out))\n")
    result = runner(py(source), "", QUICK)
    assert result.status == "ok" and result.text == "8\n", result


@pytest.mark.slow
def test_cpp_threads_work(runner):
    source = ("#include <thread>\n#include <vector>\n#include <atomic>\n#include <cstdio>\n"
              "int main() { std::atomic<long> n{0}; std::vector<std::thread> ts;\n"
              "  for (int i = 0; i < 8; i++) ts.emplace_back([&n] { for (int j = 0; j < 1000; "
              "j++) n++; });\n  for (auto& t : ts) t.join();\n"
              "  std::printf(\"%ld\\n\", n.load()); }\n")
    result = runner(Program.cpp(source), "", QUICK)
    assert result.status == "ok" and result.text == "8000\n", result


def test_atexit_handlers_run_and_their_output_is_kept(runner):
    source = ("import atexit, sys\n"
              "atexit.register(lambda: print('second handler'))\n"
              "atexit.register(lambda: sys.stdout.write('first handler\\n'))\n"
              "print('main')\n")
    result = runner(py(source), "", QUICK)
    assert result.status == "ok", result
    assert result.text == "main\nfirst handler\nsecond handler\n", result


def test_an_atexit_handler_runs_after_sys_exit_and_keeps_the_exit_code(runner):
    source = ("import atexit, sys\natexit.register(lambda: print('bye'))\n"
              "print('main')\nsys.exit(3)\n")
    result = runner(py(source), "", QUICK)
    assert result.exit_code == 3 and result.text == "main\nbye\n", result


def test_output_without_a_newline_before_sys_exit_0_is_kept(runner):
    source = "import sys\nsys.stdout.write('42')\nprint(7, end='')\nsys.exit(0)\n"
    result = runner(py(source), "", QUICK)
    assert result.status == "ok" and result.text == "427", result


def test_deep_recursion_with_a_raised_recursion_limit_works(runner):
    source = ("import sys\nsys.setrecursionlimit(10**6)\n"
              "def depth(n):\n    return 0 if n == 0 else 1 + depth(n - 1)\n"
              "print(depth(200000))\n")
    result = runner(py(source), "", BIG)
    assert result.status == "ok" and result.text == "200000\n", result


def test_stdin_by_buffer_and_os_read_loops_work(runner):
    stdin = "".join(f"{i}\n" for i in range(100000))
    source = ("import os, sys\nfirst = sys.stdin.buffer.readline()\nchunks = []\n"
              "while True:\n    chunk = os.read(0, 4096)\n    if not chunk:\n        break\n"
              "    chunks.append(chunk)\n"
              "print(int(first), len(b''.join(chunks).split()))\n")
    result = runner(py(source), stdin, QUICK)
    assert result.status == "ok", result
    # sys.stdin.buffer may read ahead past the first line; what os.read gets is the rest.
    first, rest = map(int, result.text.split())
    assert first == 0 and rest <= 99999


# --- Cleanup: what a run leaves cannot break the next one

CHAIN = ("import os\nname = 'd' * 200\nfor _ in range(1500):\n    os.mkdir(name)\n"
         "    os.chdir(name)\n    open('f', 'w').close()\nos.chmod('.', 0o500)\n"
         "print('deep')\n")


@pytest.mark.parametrize("mode", ["one-shot", "pool"])
def test_a_1500_deep_directory_chain_does_not_break_the_next_run(sandbox, pool, mode):
    run = pool.run if mode == "pool" else sandbox.run
    deep = run(py(CHAIN), "", QUICK)
    assert deep.status == "ok" and deep.text == "deep\n", deep
    after = run(py("import os\nprint([n for n in os.listdir('.') if n != 'solution.py'])\n"),
                "", QUICK)
    assert after.status == "ok" and after.text == "[]\n", after


def test_remove_tree_removes_deep_read_only_trees_without_recursion(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(1500):  # paths far past PATH_MAX: only fd-relative calls reach them
            os.mkdir("x" * 200, dir_fd=fd)
            child = os.open("x" * 200, os.O_RDONLY, dir_fd=fd)
            os.close(os.open("f", os.O_WRONLY | os.O_CREAT, 0o400, dir_fd=child))
            os.close(fd)
            fd = child
        os.fchmod(fd, 0o500)
    finally:
        os.close(fd)
    for i in range(300):
        (root / f"file{i}").write_text("x")
    (root / "link").symlink_to(tmp_path)  # never followed
    (tmp_path / "keep").write_text("kept")
    forkserver.remove_tree(str(root))
    assert not root.exists() and (tmp_path / "keep").read_text() == "kept"


# --- The syscall filter: installed in every run, before untrusted code

def _sock_filter(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def deny_getppid_filter() -> bytes:
    """ERRNO(EPERM) for getppid, ALLOW otherwise (x86_64 syscall numbers)."""
    return b"".join([
        _sock_filter(0x20, 0, 0, 4),            # ld [4]: arch
        _sock_filter(0x15, 1, 0, 0xC000003E),   # jeq AUDIT_ARCH_X86_64, skip the kill
        _sock_filter(0x06, 0, 0, 0x80000000),   # ret KILL_PROCESS (other arch)
        _sock_filter(0x20, 0, 0, 0),            # ld [0]: nr
        _sock_filter(0x15, 0, 1, 110),          # jeq __NR_getppid
        _sock_filter(0x06, 0, 0, 0x00050000 | 1),  # ret ERRNO(EPERM)
        _sock_filter(0x06, 0, 0, 0x7FFF0000),   # ret ALLOW
    ])


class DirectWorker:
    """forkserver.py started by hand (no bwrap), spoken to with its own frame functions."""

    def __init__(self, *extra: str, one_shot: bool = False):
        self.base = tempfile.mkdtemp(prefix="synthsmith-fs-test-")
        os.chmod(self.base, 0o711)
        args = [world_python() or sys.executable, "-I", "-S", "-B",
                str(Path(forkserver.__file__)), "--base", self.base, *extra]
        if os.geteuid() == 0:
            args += ["--drop-uid", "65534"]
        if one_shot:
            args.append("--one-shot")
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env={"PATH": "/usr/bin:/bin",
                                                                  "LANG": "C.UTF-8"})
        frame = forkserver.read_frame(self.proc.stdout.fileno())
        assert frame is not None, self.proc.stderr.read().decode()
        self.ready = frame[0]

    def run(self, job: dict, source: bytes = b"", stdin: bytes = b"") -> tuple[dict, bytes]:
        header = {"op": "run", "limits": QUICK.wire(64),
                  "source_key": hashlib.sha256(source).hexdigest(), **job}
        forkserver.write_frame(self.proc.stdin.fileno(), header, [source, stdin])
        frame = forkserver.read_frame(self.proc.stdout.fileno())
        assert frame is not None, self.proc.stderr.read().decode()
        reply, (stdout, stderr) = frame
        return reply, stdout + b"|" + stderr

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            stream.close()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def filter_file(tmp_path) -> Path:
    if platform.machine() != "x86_64":
        pytest.skip("the hand-made filter uses x86_64 syscall numbers")
    path = tmp_path / "filter.bpf"
    path.write_bytes(deny_getppid_filter())
    path.chmod(0o644)
    return path


# getppid() cannot fail, so os.getppid() does not check: a denied call returns -1 (EPERM).
GETPPID = "import os\nprint('denied' if os.getppid() == -1 else 'allowed')\nprint(os.getpid() > 0)\n"


@pytest.mark.parametrize("one_shot", [False, True], ids=["pool", "one-shot"])
def test_the_seccomp_filter_is_installed_in_every_run(filter_file, one_shot):
    worker = DirectWorker("--seccomp-filter", str(filter_file), one_shot=one_shot)
    try:
        assert worker.ready["seccomp"] is True, worker.ready
        for _ in range(1 if one_shot else 2):
            reply, out = worker.run({"kind": "python"}, GETPPID.encode())
            assert reply["exit_code"] == 0 and out == b"denied\nTrue\n|", (reply, out)
    finally:
        worker.close()


def test_an_exec_run_is_filtered_too(filter_file):
    python = world_python()
    if python is None:
        pytest.skip("needs /usr/bin/python3 to exec")
    worker = DirectWorker("--seccomp-filter", str(filter_file))
    try:
        reply, out = worker.run({"kind": "exec", "argv": [python, "-I", "-S", "-c", GETPPID]})
        assert reply["exit_code"] == 0 and out == b"denied\nTrue\n|", (reply, out)
    finally:
        worker.close()


def test_without_a_filter_nothing_is_denied():
    worker = DirectWorker()
    try:
        assert worker.ready["seccomp"] is False
        reply, out = worker.run({"kind": "python"}, GETPPID.encode())
        assert out == b"allowed\nTrue\n|", (reply, out)
    finally:
        worker.close()


def test_a_filter_the_kernel_refuses_means_the_run_does_not_start(tmp_path):
    bad = tmp_path / "bad.bpf"
    bad.write_bytes(_sock_filter(0x20, 0, 0, 0))  # no return instruction: EINVAL
    bad.chmod(0o644)
    worker = DirectWorker("--seccomp-filter", str(bad))
    try:
        assert worker.ready["seccomp"] is False and "seccomp_error" in worker.ready
        reply, out = worker.run({"kind": "python"}, b"print('ran unfiltered')\n")
        assert reply["start_error"] and b"ran unfiltered" not in out, (reply, out)
        assert reply["exit_code"] == forkserver.EXEC_FAILED_EXIT
    finally:
        worker.close()


def test_a_malformed_filter_file_stops_the_worker(tmp_path):
    bad = tmp_path / "bad.bpf"
    bad.write_bytes(b"\0" * 12)  # not a whole number of instructions
    proc = subprocess.run([sys.executable, "-I", "-S", str(Path(forkserver.__file__)),
                           "--base", str(tmp_path), "--seccomp-filter", str(bad)],
                          capture_output=True, timeout=30)
    assert proc.returncode == 2 and b"seccomp" in proc.stderr
    assert proc.stdout == b""  # no ready frame


# --- The same correct idioms get the same verdict and output in both modes

IDIOMS = {
    "threads": ("import threading\nout = []\n"
                "t = threading.Thread(target=lambda: out.append(sum(range(10**5))))\n"
                "t.start(); t.join()\nprint(out[0])\n", "", "4999950000"),
    "thread_with_big_stack": (
        "import sys, threading\nsys.setrecursionlimit(10**6)\nthreading.stack_size(1 << 27)\n"
        "def f(n):\n    return 0 if n == 0 else 1 + f(n - 1)\n"
        "res = []\nt = threading.Thread(target=lambda: res.append(f(50000)))\n"
        "t.start(); t.join()\nprint(res[0])\n", "", "50000"),
    "atexit": ("import atexit\natexit.register(print, 'done')\nprint('main')\n", "",
               "main\ndone"),
    "recursion": ("import sys\nsys.setrecursionlimit(10**6)\n"
                  "def f(n):\n    return 0 if n == 0 else 1 + f(n - 1)\nprint(f(100000))\n",
                  "", "100000"),
    "stdin_buffer": ("import sys\nprint(sum(map(int, sys.stdin.buffer.read().split())))\n",
                     "1 2 3\n4 5\n", "15"),
    "os_read_loop": ("import os\nchunks = []\nwhile True:\n    b = os.read(0, 3)\n"
                     "    if not b:\n        break\n    chunks.append(b)\n"
                     "print(len(b''.join(chunks).split()))\n", "10 20 30 40\n", "4"),
    "unflushed_write": ("import sys\nsys.stdout.write('no newline')\n", "", "no newline"),
    "exit_zero_in_thread_app": ("import sys, threading\n"
                                "threading.Thread(target=print, args=('t',)).start()\n"
                                "sys.exit(0)\n", "", "t"),
}


def test_correct_idioms_get_identical_verdicts_in_one_shot_and_pool_mode(sandbox, pool):
    outcomes = {}
    for mode, run in (("one-shot", sandbox.run), ("pool", pool.run)):
        for name, (source, stdin, _) in IDIOMS.items():
            result = run(py(source), stdin, BIG)
            outcomes[mode, name] = (result.status, result.exit_code, result.text.strip())
    for name, (_, _, expected) in IDIOMS.items():
        assert outcomes["one-shot", name] == outcomes["pool", name], name
        assert outcomes["pool", name] == ("ok", 0, expected), name
