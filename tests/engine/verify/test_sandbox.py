"""Adversarial tests of the code sandbox: each attacks one property, in both modes.

    .venv/bin/python -m pytest tests/engine/verify/test_sandbox.py -q

``runner`` runs every test twice: through ``Sandbox.run`` (one-shot: a fresh sandbox and
interpreter per run) and through ``SandboxPool.run`` (fork-server workers). Tests that need
bubblewrap skip with a reason when it is missing (the rest then run "rlimits-only"); the
last chapter checks what the rlimits-only fallback does and does not give. C++ tests compile
(~1.5 s each, cached per module) and are marked slow. Leaves out: kernel exploits, timing
side channels, and non-root operation (the dev machines and CI run as root).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from engine.verify import (
    Limits,
    Program,
    Sandbox,
    SandboxPool,
    SandboxUnavailable,
    check_output,
    normalize_output,
)
from engine.verify.isolation import SANDBOX_UID

REPO = Path(__file__).resolve().parents[3]
SECRET_ENV = "SYNTHSMITH_SANDBOX_TEST_SECRET"
SECRET_VALUE = "hunter2-" + uuid.uuid4().hex
QUICK = Limits(cpu_s=2.0, wall_s=5.0, memory_mb=256)


def world_python() -> str | None:
    return "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else None


# --- Fixtures: one sandbox and one pool per module; every test in both modes

@pytest.fixture(scope="module")
def sandbox(cpp_cache):
    # The secret is in our environment while sandboxes and workers start: none may see it.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(SECRET_ENV, SECRET_VALUE)
        try:
            chosen = Sandbox(cpp_cache_dir=cpp_cache)
        except SandboxUnavailable:  # no bwrap: run what can run, skip what needs it
            try:
                chosen = Sandbox(cpp_cache_dir=cpp_cache, allow_unsandboxed=True,
                                 python=world_python())
            except SandboxUnavailable as exc:
                pytest.skip(f"no sandbox can run here: {exc}")
        yield chosen


@pytest.fixture(scope="module")
def pool(sandbox):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(SECRET_ENV, SECRET_VALUE)
        with SandboxPool(2, sandbox=sandbox) as started:
            yield started


@pytest.fixture
def needs_bwrap(sandbox):
    if sandbox.isolation != "bwrap":
        pytest.skip("bubblewrap is not available here: this property needs its namespaces "
                    "(install the Debian package `bubblewrap`)")


def nobody_pids() -> set[int]:
    """Processes of the sandbox uid that descend from this test process: other sandboxes
    running on the machine at the same time (another test run, a verify stage) are not
    ours to count."""
    me = os.getpid()
    parent: dict[int, int] = {}
    sandboxed = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                status = Path(f"/proc/{name}/status").read_text()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            parent[int(name)] = int(fields.get("PPid", "0").strip() or 0)
            if int(fields.get("Uid", "-1").split()[0]) == SANDBOX_UID:
                sandboxed.add(int(name))

    def ours(pid: int) -> bool:
        try:  # in a cgroup our sandboxes made: ours even if it escaped our process tree
            if f"-{me}-" in Path(f"/proc/{pid}/cgroup").read_text():
                return True
        except OSError:
            pass
        seen = set()
        while pid > 1 and pid not in seen:
            if pid == me:
                return True
            seen.add(pid)
            pid = parent.get(pid, 0)
        return False

    return {pid for pid in sandboxed if ours(pid)}


def py(source: str) -> Program:
    return Program.python(source)


# --- Correct programs pass

def test_a_correct_solution_passes_and_a_wrong_one_is_wrong(runner):
    result = runner(py("a, b = map(int, input().split())\nprint(a + b)\n"), "2 3\n", QUICK)
    assert result.status == "ok", result
    assert result.stdout == b"5\n" and result.exit_code == 0 and result.signal is None
    assert check_output(result, "5  \n\n").status == "ok"
    assert check_output(result, "6\n").status == "wrong"


def test_a_slow_but_correct_program_passes_under_the_limit(runner):
    source = ("import time\nt = time.process_time()\nn = 0\n"
              "while time.process_time() - t < 0.5:\n    n += 1\nprint('done')\n")
    result = runner(py(source), "", Limits(cpu_s=2.0))
    assert result.status == "ok", result
    assert 0.45 <= result.cpu_s < 2.0 and result.text == "done\n"


def test_large_stdin_is_read_completely(runner):
    numbers = list(range(1_000_000, 1_750_000))
    stdin = "\n".join(map(str, numbers)) + "\n"
    assert len(stdin) > 5_000_000
    source = "import sys\nxs = sys.stdin.buffer.read().split()\nprint(len(xs), sum(map(int, xs)))\n"
    result = runner(py(source), stdin, QUICK)
    assert result.status == "ok", result
    assert result.text.split() == [str(len(numbers)), str(sum(numbers))]


def test_a_program_using_half_the_memory_limit_passes(runner):
    source = "x = bytearray(64 << 20)\nfor i in range(0, len(x), 4096):\n    x[i] = 1\nprint('ok')\n"
    result = runner(py(source), "", Limits(cpu_s=2.0, memory_mb=128))
    assert result.status == "ok", result
    assert result.peak_memory_kb > 60_000


# --- Failures get the right status

def test_a_crash_is_a_runtime_error_with_its_traceback_in_stderr(runner):
    result = runner(py("print('before')\nx = 1 / 0\n"), "", QUICK)
    assert result.status == "runtime_error" and result.exit_code == 1
    assert "ZeroDivisionError" in result.stderr and 'solution.py", line 2' in result.stderr
    assert result.stdout == b"before\n"


def test_a_syntax_error_is_a_runtime_error_naming_it(runner):
    result = runner(py("print(1\n"), "", QUICK)
    assert result.status == "runtime_error" and "SyntaxError" in result.stderr


def test_sys_exit_codes_are_reported_as_given(runner):
    assert runner(py("import sys\nsys.exit(3)\n"), "", QUICK).exit_code == 3
    assert runner(py("import sys\nsys.exit(3)\n"), "", QUICK).status == "runtime_error"
    assert runner(py("import sys\nprint(1)\nsys.exit(0)\n"), "", QUICK).status == "ok"


# A generous wall limit in CPU tests: on a loaded machine 1 s of CPU takes longer than 1 s.
CPU_1S = Limits(cpu_s=1.0, wall_s=30.0)


def test_an_infinite_loop_is_killed_at_the_cpu_limit(runner):
    result = runner(py("while True:\n    pass\n"), "", CPU_1S)
    assert result.status == "time_limit" and "cpu" in result.detail, result
    assert 0.9 <= result.cpu_s <= 1.6, result
    assert result.cpu_s * 0.9 <= result.wall_s < 20, result


def test_a_sleeping_program_is_killed_at_the_wall_limit(runner):
    result = runner(py("import time\ntime.sleep(60)\n"), "", Limits(cpu_s=1.0, wall_s=1.5))
    assert result.status == "time_limit" and "wall" in result.detail, result
    assert 1.4 <= result.wall_s < 5.0 and result.cpu_s < 0.5, result


def test_a_memory_bomb_is_stopped_as_memory_limit(runner):
    source = "chunks = []\nwhile True:\n    chunks.append(bytearray(8 << 20))\n"
    result = runner(py(source), "", Limits(cpu_s=5.0, memory_mb=128))
    assert result.status == "memory_limit", result
    assert result.peak_memory_kb < 140 * 1024


def test_a_gigabyte_of_output_is_capped_quickly_without_filling_the_disk(runner):
    free_before = shutil.disk_usage("/tmp").free
    source = "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.write(chunk)\n"
    result = runner(py(source), "", Limits(cpu_s=10.0, output_bytes=1 << 20))
    assert result.status == "output_limit", result
    assert len(result.stdout) <= 1 << 20 and result.stdout_truncated
    assert result.wall_s < 5.0
    assert free_before - shutil.disk_usage("/tmp").free < 100 << 20


# --- Containment: processes, network, filesystem, secrets

@pytest.mark.slow
def test_a_fork_bomb_is_contained_and_leaves_no_process_behind(runner):
    before = nobody_pids()
    source = ("import os\nwhile True:\n    try:\n        os.fork()\n"
              "    except OSError:\n        pass\n")
    result = runner(py(source), "", Limits(cpu_s=1.0, wall_s=3.0, max_processes=16))
    assert result.status in ("time_limit", "runtime_error"), result
    assert result.wall_s < 6.0
    deadline = time.monotonic() + 3
    while nobody_pids() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not nobody_pids() - before, "processes of uid 65534 outlived the run"
    # The machine is fine: we can still start processes.
    assert subprocess.run(["true"], timeout=10).returncode == 0


def _processes_with_arg(arg: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if arg.encode() in argv:
                found.append(int(name))
    return found


def test_daemonized_leftovers_are_killed_after_the_run(runner):
    # The grandchild becomes `sleep 61.<unique digits>`, so other processes of uid 65534
    # on a busy machine cannot be mistaken for it.
    arg = f"61.{uuid.uuid4().int % 10**12}"
    source = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
              "        open('started', 'w').close()\n"
              f"        os.execv('/usr/bin/sleep', ['sleep', '{arg}'])\n    os._exit(0)\n"
              "for _ in range(200):\n    if os.path.exists('started'):\n        break\n"
              "    time.sleep(0.01)\n"
              "print('parent done' if os.path.exists('started') else 'no grandchild')\n")
    result = runner(py(source), "", QUICK)
    assert result.status == "ok" and result.text.strip() == "parent done", result
    deadline = time.monotonic() + 2
    while _processes_with_arg(arg) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _processes_with_arg(arg), "a setsid'd grandchild survived the run"


def test_network_connections_are_refused_inside_but_work_outside(runner, needs_bwrap):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass  # outside the sandbox, the server is reachable
        # Refused either way: socket() itself (the seccomp filter allows only AF_UNIX) or
        # the connection (the sandbox's own network namespace).
        source = ("import socket\ntry:\n    s = socket.socket()\n    s.settimeout(2)\n"
                  f"    s.connect(('127.0.0.1', {port}))\n    print('connected')\n"
                  "except OSError as e:\n    print('refused', type(e).__name__)\n")
        result = runner(py(source), "", QUICK)
    assert result.status == "ok", result
    assert result.text.startswith("refused"), result.text


def _write_attempts(paths: list[str]) -> str:
    return (f"for path in {paths!r}:\n    try:\n        with open(path, 'w') as f:\n"
            "            f.write('escaped')\n        print('WROTE', path)\n"
            "    except OSError as e:\n        print('refused', path, type(e).__name__)\n")


def test_writes_outside_the_run_directory_are_refused(runner, needs_bwrap):
    tag = uuid.uuid4().hex
    paths = [f"/tmp/escape-{tag}", str(REPO / f"escape-{tag}"), f"/etc/escape-{tag}",
             f"/usr/escape-{tag}", f"/escape-{tag}"]
    result = runner(py(_write_attempts(paths)), "", QUICK)
    assert result.status == "ok", result
    assert "WROTE" not in result.text, result.text
    assert result.text.count("refused") == len(paths)
    assert not any(os.path.exists(p) for p in paths)


@pytest.fixture
def ssh_secret():
    """A file in the user's ~/.ssh (made for the test, removed after)."""
    ssh = Path.home() / ".ssh"
    created_dir = not ssh.exists()
    ssh.mkdir(mode=0o700, exist_ok=True)
    secret = ssh / f"synthsmith-sandbox-test-{uuid.uuid4().hex}"
    secret.write_text(SECRET_VALUE)
    secret.chmod(0o600)
    yield secret
    secret.unlink()
    if created_dir:
        ssh.rmdir()


def test_the_users_ssh_directory_cannot_be_read(runner, ssh_secret):
    source = (f"import os\ntry:\n    print(open({str(ssh_secret)!r}).read())\n"
              "except OSError as e:\n    print('refused file', type(e).__name__)\n"
              f"try:\n    print(os.listdir({str(ssh_secret.parent)!r}))\n"
              "except OSError as e:\n    print('refused dir', type(e).__name__)\n")
    result = runner(py(source), "", QUICK)
    assert result.status == "ok", result
    assert SECRET_VALUE not in result.text + result.stderr
    assert "refused file" in result.text and "refused dir" in result.text


def test_the_environment_is_scrubbed(runner):
    # /proc/self/environ: unreadable after the uid drop in pool mode (not dumpable), which
    # is fine; where readable it must not hold the secret either.
    source = ("import os\nprint(sorted(os.environ))\ntry:\n"
              "    print(open('/proc/self/environ', 'rb').read())\n"
              "except OSError as e:\n    print('unreadable', e)\n")
    result = runner(py(source), "", QUICK)
    assert result.status == "ok", result
    assert SECRET_VALUE not in result.text and SECRET_ENV not in result.text
    names = eval(result.text.splitlines()[0])
    assert set(names) <= {"PATH", "LANG", "HOME", "TMPDIR"}


def test_the_code_runs_as_nobody_without_capabilities(runner, sandbox):
    if os.geteuid() != 0:
        pytest.skip("only root can drop to uid 65534")
    source = ("import os\nprint(os.getuid(), os.getgid(), os.getgroups())\n"
              "print([l for l in open('/proc/self/status') if l.startswith(('Cap', 'NoNew'))])\n")
    result = runner(py(source), "", QUICK)
    assert result.status == "ok", result
    ids, caps = result.text.splitlines()
    assert ids == f"{SANDBOX_UID} {SANDBOX_UID} []"
    for name in ("CapPrm", "CapEff", "CapAmb"):
        assert f"{name}:\\t0000000000000000" in caps, caps


def test_the_run_directory_is_private_writable_and_removed_afterwards(sandbox):
    first = ("import os\nopen('marker', 'w').write('mine')\n"
             "print(os.getcwd(), open('marker').read(), os.environ['TMPDIR'] == os.getcwd())\n")
    with SandboxPool(1, sandbox=sandbox) as one_worker:  # so both runs share a worker
        for run in (sandbox.run, one_worker.run):
            result = run(py(first), "", QUICK)
            assert result.status == "ok", result
            cwd, content, tmpdir_is_cwd = result.text.split()
            assert content == "mine" and tmpdir_is_cwd == "True"
            second = f"import os\nprint(os.path.exists({cwd + '/marker'!r}))\n"
            assert run(py(second), "", QUICK).text == "False\n"
            if sandbox.isolation == "rlimits-only":  # the run dirs are on the host then
                assert not os.path.exists(cwd)


# --- C++: compile, cache, run, limits

CPP_A_PLUS_B = ("#include <iostream>\nint main() { long long a, b; std::cin >> a >> b; "
                "std::cout << a + b << std::endl; }\n")


@pytest.mark.slow
def test_cpp_a_plus_b_compiles_and_runs(runner):
    result = runner(Program.cpp(CPP_A_PLUS_B), "40 2\n", QUICK)
    assert result.status == "ok", result
    assert result.stdout == b"42\n" and result.language == "cpp"


@pytest.mark.slow
def test_a_cpp_compile_error_is_reported_with_the_compiler_message(runner):
    result = runner(Program.cpp("int main() { return undefined_name; }\n"), "", QUICK)
    assert result.status == "compile_error", result
    assert "undefined_name" in result.stderr and "error" in result.stderr


@pytest.mark.slow
def test_the_second_compile_of_the_same_source_hits_the_cache(runner):
    source = f"// {uuid.uuid4().hex}\n{CPP_A_PLUS_B}"
    first = runner(Program.cpp(source), "1 2\n", QUICK)
    second = runner(Program.cpp(source), "3 4\n", QUICK)
    assert first.compile_cache_hit is False and second.compile_cache_hit is True
    assert (first.text, second.text) == ("3\n", "7\n")


@pytest.mark.slow
def test_a_cpp_compile_cannot_read_secrets_through_include(sandbox, ssh_secret):
    result = sandbox.run(Program.cpp(f'#include "{ssh_secret}"\nint main() {{}}\n'), "", QUICK)
    assert result.status == "compile_error"
    assert SECRET_VALUE not in result.stderr


@pytest.mark.slow
def test_a_cpp_infinite_loop_is_killed_at_the_cpu_limit(runner):
    source = "int main() { volatile unsigned long n = 0; for (;;) n++; }\n"
    result = runner(Program.cpp(source), "", CPU_1S)
    assert result.status == "time_limit" and "cpu" in result.detail, result
    assert 0.9 <= result.cpu_s <= 1.6, result


@pytest.mark.slow
def test_a_cpp_memory_bomb_is_stopped_as_memory_limit(runner):
    source = ("#include <vector>\n#include <cstring>\nint main() { std::vector<char*> v;\n"
              "  for (;;) { char* p = new char[1 << 23]; std::memset(p, 1, 1 << 23); "
              "v.push_back(p); } }\n")
    result = runner(Program.cpp(source), "", Limits(cpu_s=5.0, memory_mb=128))
    assert result.status == "memory_limit", result


# --- The pool: batches, restarts

def test_run_matrix_runs_every_program_on_every_input(pool):
    programs = [py("print(int(input()) * 2)\n"), py("print(int(input()) + 1)\n")]
    grid = pool.run_matrix(programs, ["1\n", "2\n", "3\n"], QUICK)
    assert [[r.text for r in row] for row in grid] == [["2\n", "4\n", "6\n"],
                                                       ["2\n", "3\n", "4\n"]]
    assert all(r.program_key == programs[i].key for i, row in enumerate(grid) for r in row)


def test_a_dead_worker_is_replaced_and_runs_go_on(sandbox):
    with SandboxPool(1, sandbox=sandbox) as pool:
        assert pool.run(py("print(1)\n"), "", QUICK).text == "1\n"
        (pid,) = pool.worker_pids()
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
        assert pool.run(py("print(2)\n"), "", QUICK).text == "2\n"
        assert pool.restarts == 1 and pool.worker_pids() != [pid]


def test_outputs_compare_after_whitespace_normalisation():
    assert normalize_output(b"1 2  \r\n3\n\n") == normalize_output("1 2\n3")
    assert normalize_output("1 2\n3") != normalize_output("1  2\n3")


def test_limits_report_every_bad_field_at_once():
    with pytest.raises(ValueError, match="cpu_s.*memory_mb"):
        Limits(cpu_s=0, memory_mb=-1)


# --- Without bwrap: refused unless asked, and then honest about what it lacks

def test_without_bwrap_the_sandbox_refuses_to_run_unless_allowed():
    with pytest.raises(SandboxUnavailable, match="allow_unsandboxed"):
        Sandbox(use_bwrap=False)


@pytest.fixture(scope="module")
def unsandboxed():
    if os.geteuid() == 0 and world_python() is None:
        pytest.skip("rlimits-only as root needs an interpreter uid 65534 can run")
    return Sandbox(use_bwrap=False, allow_unsandboxed=True, python=world_python())


def test_rlimits_only_results_and_description_say_so(unsandboxed):
    result = unsandboxed.run(py("print('hi')\n"), "", QUICK)
    assert result.status == "ok" and result.isolation == "rlimits-only"
    assert "NOT blocked" in unsandboxed.describe()["network"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["one-shot", "pool"])
def test_rlimits_only_still_contains_fork_bombs_and_guards_root_files(unsandboxed, mode,
                                                                      ssh_secret):
    if os.geteuid() != 0:
        pytest.skip("without root there is no uid drop: the code runs as you")
    with SandboxPool(1, sandbox=unsandboxed) as pool:
        run = pool.run if mode == "pool" else unsandboxed.run
        before = nobody_pids()
        bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
        result = run(py(bomb), "", Limits(cpu_s=1.0, wall_s=2.0, max_processes=16))
        assert result.status in ("time_limit", "runtime_error")
        time.sleep(0.3)
        assert not nobody_pids() - before
        tag = uuid.uuid4().hex
        paths = [str(REPO / f"escape-{tag}"), f"/etc/escape-{tag}", str(ssh_secret)]
        result = run(py(_write_attempts(paths)), "", QUICK)
        assert "WROTE" not in result.text and result.text.count("refused") == 3
        assert ssh_secret.read_text() == SECRET_VALUE
