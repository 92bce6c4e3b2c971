"""Extra files and command-line arguments of sandboxed programs, in both modes.

    .venv/bin/python -m pytest tests/engine/verify/test_sandbox_files.py -q

``Program.files`` are there at compile time (C++: beside solution.cpp, ``-I`` on it and on
its include/) and at run time (read-only in the run directory); per-run ``files=`` are
there for one run only; ``Program.args`` reach ``sys.argv`` / ``argv``. ``runner`` runs a
test through ``Sandbox.run`` (one-shot) and ``SandboxPool.run`` (fork-server workers).
C++ tests compile (~1.5 s each) and are marked slow. Leaves out: non-root operation, where
the files are owned by the run's own uid and read-only only by their mode bits.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pytest

from engine.verify import Limits, Program, Sandbox, SandboxPool
from engine.verify.sandbox import MAX_FILES_BYTES

QUICK = Limits(cpu_s=2.0, wall_s=10.0, memory_mb=256)


# --- C++: headers from the program's files, the compile cache key, compiler messages

TESTLIB_MAIN = """#include "testlib.h"
#include "include/testlib.h"
#include <cstdio>
#include <cstring>
int main() {
  char buf[64] = {0};
  FILE* in = std::fopen("input.txt", "r");
  if (in) { std::fgets(buf, sizeof buf, in); std::fclose(in); }
  FILE* header = std::fopen("include/testlib.h", "r");
  std::printf("%s %s %s\\n", GREETING, in ? buf : "no-input", header ? "header" : "no-header");
}
"""


def header(greeting: str, tag: str) -> dict[str, bytes]:
    return {"include/testlib.h":
            f'#pragma once\n// {tag}\n#define GREETING "{greeting}"\n'.encode()}


@pytest.mark.slow
def test_cpp_includes_testlib_from_include_and_the_header_is_in_the_cache_key(runner):
    tag = uuid.uuid4().hex  # new compile keys for each mode
    one = Program.cpp(TESTLIB_MAIN, files=header("one", tag))
    two = Program.cpp(TESTLIB_MAIN, files=header("two", tag))
    first, second = runner(one, "", QUICK), runner(two, "", QUICK)
    assert first.status == "ok" and second.status == "ok", (first, second)
    assert first.text == "one no-input header\n"  # the header is in the run dir too
    assert second.text == "two no-input header\n"  # same source, other header: recompiled
    assert first.compile_cache_hit is False and second.compile_cache_hit is False
    # Per-run files are not part of the compile key: the same binary, another input file.
    third = runner(one, "", QUICK, files={"input.txt": b"per-run"})
    assert third.status == "ok" and third.text == "one per-run header\n", third
    assert third.compile_cache_hit is True


@pytest.mark.slow
def test_cpp_compile_errors_keep_the_compiler_message_naming_the_line(runner, sandbox):
    tag = uuid.uuid4().hex
    source = f"#include \"testlib.h\"\n// {tag}\nint main() {{ return undefined_name; }}\n"
    program = Program.cpp(source, files=header("x", tag))
    result = runner(program, "", QUICK)
    assert result.status == "compile_error", result
    assert "solution.cpp:3:" in result.stderr and "undefined_name" in result.stderr
    compiled = sandbox.compile_cpp(program.source, program.files)
    assert not compiled.ok and "solution.cpp:3:" in compiled.message
    # An error inside a header names the header's line.
    broken = {"include/testlib.h": f"// {tag}\n#define OK 1\nint broken(;\n".encode()}
    result = runner(Program.cpp("#include \"testlib.h\"\nint main() {}\n", files=broken), "",
                    QUICK)
    assert result.status == "compile_error" and "testlib.h:3:" in result.stderr, result


@pytest.mark.slow
def test_a_cpp_binary_sees_its_args(runner):
    source = ('#include <cstdio>\nint main(int argc, char** argv) {\n'
              '  std::printf("%d", argc - 1);\n'
              '  for (int i = 1; i < argc; i++) std::printf("|%s", argv[i]);\n'
              '  std::printf("\\n");\n}\n')
    result = runner(Program.cpp(source, args=("input.txt", "two words", "")), "", QUICK)
    assert result.status == "ok", result
    assert result.text == "3|input.txt|two words|\n"
    assert runner(Program.cpp(source), "", QUICK).text == "0\n"


# --- Python: files, imports, args

def test_python_reads_its_files_imports_helpers_and_sees_its_args(runner):
    blob = bytes(range(256)) * 5
    program = Program.python(
        "import hashlib, sys\nimport helper\nfrom include import util as as_package\n"
        "import util\n"
        "print(sys.argv)\nprint(helper.NAME, util.NAME, as_package.NAME)\n"
        "print(open('data/table.txt').read().strip(), open('input.txt').read().strip())\n"
        "print(hashlib.sha256(open('data/blob.bin', 'rb').read()).hexdigest())\n"
        "print(repr(open('empty.txt').read()))\n",
        files={"helper.py": "NAME = 'helper'\n", "include/util.py": b"NAME = 'util'\n",
               "data/table.txt": b"1 2 3\n", "data/blob.bin": blob, "empty.txt": b""},
        args=["--mode", "check", "a b"])
    result = runner(program, "", QUICK, files=[("input.txt", b"per-run input\n")])
    assert result.status == "ok", result
    assert result.text.splitlines() == [
        "['solution.py', '--mode', 'check', 'a b']", "helper util util",
        "1 2 3 per-run input", hashlib.sha256(blob).hexdigest(), "''"]


def test_python_without_files_or_args_runs_as_before(runner):
    source = ("import os, sys\nprint(repr((sys.argv, os.getcwd() in sys.path, '' in sys.path,\n"
              "            'PYTHONPATH' in os.environ, sorted(os.listdir('.')))))\n")
    result = runner(Program.python(source), "", QUICK, files={"input.txt": b"x"})
    assert result.status == "ok", result
    argv, cwd_on_path, empty_on_path, pythonpath, listing = eval(result.text)
    assert argv == ["solution.py"] and not cwd_on_path and not empty_on_path
    assert not pythonpath and "input.txt" in listing


def test_python_sys_path_has_the_run_dir_and_include_first_when_there_are_files(runner):
    source = "import os, sys\nprint(sys.path[:2] == [os.getcwd(), os.getcwd() + '/include'])\n"
    result = runner(Program.python(source, files={"x.txt": b""}), "", QUICK)
    assert result.status == "ok" and result.text == "True\n", result


# --- Permissions and isolation between runs

WRITE_ATTEMPTS = """import os
for path in ['helper.txt', 'include/testlib.h', 'input.txt', 'include/new.h', 'deep/a/new']:
    try:
        with open(path, 'a') as f:
            f.write('changed')
        print('WROTE', path)
    except OSError as e:
        print('refused', path, type(e).__name__)
with open('scratch.txt', 'w') as f:
    f.write('mine')
os.mkdir('newdir')
print(open('scratch.txt').read(), open('helper.txt').read(), open('input.txt').read())
"""


def test_program_and_run_files_are_read_only_but_the_cwd_stays_writable(runner):
    program = Program.python(WRITE_ATTEMPTS, files={"helper.txt": b"helper",
                                                    "include/testlib.h": b"//",
                                                    "deep/a/b.txt": b""})
    result = runner(program, "", QUICK, files={"input.txt": b"input"})
    assert result.status == "ok", result
    lines = result.text.splitlines()
    assert "WROTE" not in result.text, result.text
    assert sum(line.startswith("refused") for line in lines) == 5
    assert lines[-1] == "mine helper input"


def test_run_files_of_one_run_are_gone_in_the_next_on_the_same_worker(sandbox):
    secret = f"secret-{uuid.uuid4().hex}.txt"
    first = Program.python(f"import os\nprint(os.path.join(os.getcwd(), {secret!r}))\n"
                           f"print(open({secret!r}).read())\n", files={"mine.txt": b"p"})
    with SandboxPool(1, sandbox=sandbox) as one_worker:  # so both runs share a worker
        for run in (sandbox.run, one_worker.run):
            result = run(first, "", QUICK, files={secret: b"only for run A"})
            assert result.status == "ok", result
            path, content = result.text.splitlines()
            assert content == "only for run A"
            second = Program.python(f"import os\nprint(os.path.exists({path!r}), "
                                    f"sorted(os.listdir('.')))\n")
            result = run(second, "", QUICK)
            exists, listing = result.text.split(" ", 1)
            assert exists == "False" and secret not in listing and "mine.txt" not in listing


# --- Validation

@pytest.mark.parametrize(("name", "rule"), [
    ("../x", "'..' component"),
    ("/etc/passwd", "absolute"),
    ("a/../../b", "'..' component"),
    ("./x", "'.' or '..' component"),
    ("a//b", "empty"),
    ("", "empty"),
    ("x\0y", "NUL"),
    ("solution.py", "clashes with the sandbox's own 'solution.py'"),
    ("solution.cpp", "clashes with the sandbox's own"),
    ("solution/x", "clashes with the sandbox's own 'solution'"),
])
def test_bad_file_names_are_refused_with_the_name_and_the_rule(runner, name, rule):
    with pytest.raises(ValueError, match="Program.files") as raised:
        Program.python("print(1)\n", files={name: b""})
    assert repr(name) in str(raised.value) and rule in str(raised.value)
    with pytest.raises(ValueError, match="run files") as raised:
        runner(Program.python("print(1)\n"), "", QUICK, files={name: b""})
    assert repr(name) in str(raised.value) and rule in str(raised.value)


def test_duplicate_and_clashing_files_are_refused(runner):
    with pytest.raises(ValueError, match="'a.txt' is given twice"):
        Program.python("", files=[("a.txt", b"1"), ("a.txt", b"2")])
    with pytest.raises(ValueError, match="'inc' to be a directory, but it is a file"):
        Program.python("", files=[("inc", b""), ("inc/x.h", b"")])
    with pytest.raises(ValueError, match="'in.txt' clashes with a program file"):
        runner(Program.python("", files={"in.txt": b""}), "", QUICK, files={"in.txt": b""})
    with pytest.raises(ValueError, match="over 64 MiB"):
        Program.python("", files={"a": bytes(MAX_FILES_BYTES), "b": b"x"})
    with pytest.raises(ValueError, match="content must be bytes or str"):
        Program.python("", files={"a": 1})
    with pytest.raises(ValueError, match="Program.args"):
        Program.python("", args="--one-str")
    with pytest.raises(ValueError, match="Program.args"):
        Program.python("", args=["a\0b"])


# --- Keys

def test_the_program_key_covers_files_and_args_and_is_unchanged_without_them(runner):
    source = "print(1)\n"
    plain = Program.python(source)
    assert plain.key == plain.source_key == hashlib.sha256(source.encode()).hexdigest()
    variants = [plain, Program.python(source, files={"a": b"1"}),
                Program.python(source, files={"a": b"2"}),
                Program.python(source, files={"b": b"1"}),
                Program.python(source, args=["x"]), Program.python(source, args=["x", ""]),
                Program.python(source, files={"x": b""}), Program.cpp(source, args=["a"])]
    keys = [p.key for p in variants]
    assert len(set(keys[:-1])) == len(keys) - 1  # (the language is not in the key, as before)
    assert {p.source_key for p in variants} == {plain.key}
    # Files are a set of paths: the order they are given in does not matter.
    ab = Program.python(source, files=[("a", b"1"), ("b", b"2")])
    assert ab == Program.python(source, files={"b": b"2", "a": b"1"})
    assert ab.key == Program.python(source, files={"b": b"2", "a": b"1"}).key
    assert runner(variants[1], "", QUICK).program_key == variants[1].key


def test_run_many_takes_pairs_and_triples(pool):
    program = Program.python("import os\nprint(open('in.txt').read() if os.path.exists('in.txt')"
                             " else 'none')\n")
    results = pool.run_many([(program, ""), (program, "", {"in.txt": b"1"}),
                             (program, "", None), (program, "", [("in.txt", "2")])], QUICK)
    assert [r.text for r in results] == ["none\n", "1\n", "none\n", "2\n"]


@pytest.mark.parametrize("mode", ["one-shot", "pool"])
def test_read_only_file_trees_are_removed_with_the_run_dir(mode):
    # Without bwrap the run dirs are on the host, where we can look for them afterwards.
    if os.geteuid() == 0 and not os.path.exists("/usr/bin/python3"):
        pytest.skip("rlimits-only as root needs an interpreter uid 65534 can run")
    unsandboxed = Sandbox(use_bwrap=False, allow_unsandboxed=True, use_cgroups=False,
                          python="/usr/bin/python3" if os.geteuid() == 0 else None)
    program = Program.python("import os\nos.makedirs('own/dir')\nos.chmod('own', 0o555)\n"
                             "print(os.getcwd())\n", files={"d/e/f.txt": b"", "g.py": b""})
    with SandboxPool(1, sandbox=unsandboxed) as one_worker:
        run = one_worker.run if mode == "pool" else unsandboxed.run
        result = run(program, "", QUICK, files={"h/i.txt": b""})
        assert result.status == "ok", result
        assert not Path(result.text.strip()).exists()
