"""``verify-folder`` on folders as real archives and hostile ones look (sandboxed).

    .venv/bin/python -m pytest tests/engine/verify/test_verify_folder_archives.py -q

Each test builds its own small folder: statement samples no input file equals, tests/NN.in +
NN.out pairs, limits.json, 3-argument checkers in Python and C++ (with a header from
include/), checkers that crash or hang, compile errors, outputs of several MB, and folders
holding symlinks out, FIFOs and names that are not UTF-8. Needs bubblewrap.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from engine.__main__ import main
from engine.verify import Sandbox, SandboxUnavailable
from engine.verify.task_folder import FolderError, load_folder


@pytest.fixture(scope="module", autouse=True)
def sandbox_here():
    try:
        Sandbox()
    except SandboxUnavailable as exc:
        pytest.skip(f"the sandbox is unavailable here: {exc}")


def write(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text))


def verify(folder: Path, tmp: Path, *extra: str) -> tuple[int, dict]:
    out = tmp / "report.json"
    code = main(["verify-folder", str(folder), "--json", str(out), "--jobs", "2",
                 "--time-limit", "2", *extra])
    return code, (json.loads(out.read_text()) if out.exists() else {})


# --- Statement samples decide, even when no input file equals them

ISQRT_STATEMENT = """\
# Floor of square roots

For each of t numbers n print the largest x with x * x <= n.

## Sample Input 1
```
3
10
16
999999999999999999
```

## Sample Output 1
```
3
4
999999999
```
"""
FLOAT_SQRT = "import math\nfor _ in range(int(input())):\n    print(int(math.sqrt(int(input()))))\n"
EXACT_SQRT = "import math\nfor _ in range(int(input())):\n    print(math.isqrt(int(input())))\n"


def test_a_statement_sample_no_input_equals_is_a_test_that_unmasks_a_clone_majority(
        tmp_path, capsys):
    task = tmp_path / "tasks" / "isqrt"
    write(task / "statement.md", ISQRT_STATEMENT)
    for k, n in enumerate((1, 2, 99, 12345, 10**6, 987654321), start=1):
        write(task / "inputs" / f"random_{k}.txt", f"1\n{n}\n")
    for c in range(3):  # identical float clones come first: plain voting picks one
        write(task / "solutions" / f"a{c}_float.py", FLOAT_SQRT)
    write(task / "solutions" / "b_exact.py", EXACT_SQRT)
    write(task / "solutions" / "c_exact.py", EXACT_SQRT + "# the same, commented\n")
    code, report = verify(tmp_path / "tasks", tmp_path)
    assert code == 0
    result = report["tasks"]["isqrt"]
    assert result["golden"] == "b_exact.py" and result["reason"] is None
    assert result["samples"] == {"in_statement": 1, "problems": []}
    assert result["votes"]["statement_sample_1"]["source"] == "known"
    assert result["verdicts"]["a0_float.py"]["statement_sample_1"] == "wrong"
    assert [result["candidates"][f"a{c}_float.py"]["eligible"] for c in range(3)] == \
        [False] * 3
    assert "1 statement samples" in capsys.readouterr().out


def test_a_malformed_sample_block_is_reported_and_verification_goes_on(tmp_path):
    task = tmp_path / "tasks" / "broken"
    write(task / "statement.md", "## Sample Input 1\n```\n3\n```\n\nThe end, no output.\n")
    for k in range(1, 5):
        write(task / "inputs" / f"random_{k}.txt", f"{k}\n")
    write(task / "solutions" / "a.py", "print(int(input()) * 2)\n")
    write(task / "solutions" / "b.py", "x = int(input())\nprint(x + x)\n")
    code, report = verify(tmp_path / "tasks", tmp_path)
    assert code == 0
    result = report["tasks"]["broken"]
    assert result["samples"]["in_statement"] == 0
    assert result["samples"]["problems"], "the lone sample input must be reported"
    assert result["reason"] is None


# --- Archive layout: tests/NN.in + NN.out, limits.json, --trust-answers

def _archive(root: Path, answers: dict[str, str]) -> Path:
    task = root / "tasks" / "double"
    write(task / "statement.md", "Print 2n.\n")
    for name, n in (("01", 1), ("02", 5), ("03", 7), ("04", 20), ("05", 3)):
        write(task / "tests" / f"{name}.in", f"{n}\n")
        if name in answers:
            write(task / "tests" / f"{name}.out", answers[name])
    write(task / "limits.json", '{"time_limit_s": 1.5, "memory_mb": 128}')
    for c in range(3):  # a clone majority that is wrong on n = 20
        write(task / "solutions" / f"a{c}.py", "n = int(input())\nprint(2 * n if n != 20 "
                                               "else 41)\n")
    write(task / "solutions" / "b.py", "print(2 * int(input()))\n")
    write(task / "solutions" / "c.py", "n = int(input())\nprint(n + n)\n")
    return root / "tasks"


def test_archive_tests_score_the_rules_and_decide_only_with_trust_answers(tmp_path, capsys):
    answers = {"01": "2\n", "02": "10\n", "04": "40\n"}
    folder = _archive(tmp_path, answers)
    code, report = verify(folder, tmp_path)
    assert code == 0
    result = report["tasks"]["double"]
    assert set(result["votes"]) == {"tests/01", "tests/02", "tests/03", "tests/04", "tests/05"}
    assert result["votes"]["tests/04"]["source"] != "known"
    assert result["golden"] is None  # 0.6 / 0.4 on tests/04: doubtful, so no golden
    assert result["limits"] == {"time_limit_s": 1.5, "memory_mb": 128}
    assert "against known answers (1 tasks)" in capsys.readouterr().out
    code, trusted = verify(folder, tmp_path, "--trust-answers")
    result = trusted["tasks"]["double"]
    assert result["votes"]["tests/04"]["source"] == "known"
    assert result["golden"] == "b.py" and result["labels"]["tests/04"] == "40"
    # An input without its answer file stays a plain, voted input.
    assert result["votes"]["tests/03"]["source"] == "vote"


def test_help_documents_the_folder_layout(capsys):
    with pytest.raises(SystemExit):
        main(["verify-folder", "--help"])
    text = capsys.readouterr().out
    for piece in ("TASK/tests/NN.in, NN.out", "TASK/limits.json", "TASK/include/",
                  "checker INPUT OUTPUT ANSWER", "--trust-answers", "--max-output-mb",
                  "--min-tests"):
        assert piece in text, piece


def test_an_answer_without_its_input_or_a_bad_limits_file_is_a_clear_error(tmp_path, capsys):
    folder = _archive(tmp_path, {"01": "2\n"})
    write(folder / "double" / "tests" / "09.out", "18\n")
    write(folder / "double" / "limits.json", '{"time_limit_s": -1, "tl": 2}')
    assert main(["verify-folder", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "tests/09.out: no tests/09.in beside it" in err
    assert "time_limit_s must be a positive number (got -1)" in err
    assert "unknown keys ['tl']" in err
    assert "Traceback" not in err


def test_min_tests_and_max_output_flags_are_checked(tmp_path, capsys):
    folder = _archive(tmp_path, {})
    assert main(["verify-folder", str(folder), "--min-tests", "1"]) == 2
    assert main(["verify-folder", str(folder), "--max-output-mb", "0"]) == 2
    err = capsys.readouterr().err
    assert "--min-tests must be between 2 and 1000 (got 1)" in err
    assert "--max-output-mb must be > 0 (got 0.0)" in err
    code, report = verify(folder, tmp_path, "--min-tests", "6")
    assert report["tasks"]["double"]["reason"].startswith("too_few_labelled_tests: 5 < 6")


# --- Checkers as the world writes them

COINS_STATEMENT = """\
Pay n with the fewest coins of values 1, 3 and 4; print the count, then the coins.

## Sample Input 1
```
6
```

## Sample Output 1
```
2
3 3
```
"""
# Greedy takes 4 first: 6 = 4 + 1 + 1, three coins, not optimal.
COINS_GREEDY = """\
n = int(input())
coins = []
for c in (4, 3, 1):
    while n >= c:
        coins.append(c)
        n -= c
print(len(coins))
print(*coins)
"""
COINS_DP = """\
n = int(input())
best = [0] + [None] * n
for v in range(1, n + 1):
    best[v] = min(best[v - c] + 1 for c in (1, 3, 4) if c <= v)
coins = []
while n:
    c = next(c for c in {order} if c <= n and best[n - c] == best[n] - 1)
    coins.append(c)
    n -= c
print(len(coins))
print(*coins)
"""
# Checks the coins pay n, then compares the count with the answer file's (testlib: 3 when
# the contestant beats the jury).
COINS_CHECKER_PY = """\
import sys
n = int(open(sys.argv[1]).read())
words = open(sys.argv[2]).read().split()
jury = int(open(sys.argv[3]).read().split()[0])
try:
    k, coins = int(words[0]), [int(w) for w in words[1:]]
except (ValueError, IndexError):
    sys.exit(2)
if k != len(coins) or sum(coins) != n or any(c not in (1, 3, 4) for c in coins):
    sys.exit(1)
sys.exit(3 if k < jury else 1 if k > jury else 0)
"""
COINS_CHECKER_CPP = """\
#include <fstream>
#include "coins.h"
int main(int argc, char** argv) {
    std::ifstream in(argv[1]), out(argv[2]), ans(argv[3]);
    long long n, k, jury; in >> n; ans >> jury;
    if (!(out >> k)) return 2;
    long long sum = 0, c, count = 0;
    while (out >> c) { if (!valid_coin(c)) return 1; sum += c; ++count; }
    if (count != k || sum != n) return 1;
    return k < jury ? 3 : k > jury ? 1 : 0;
}
"""


def _coins(root: Path, checker: str, name: str = "checker.py") -> Path:
    task = root / "tasks" / "coins"
    write(task / "statement.md", COINS_STATEMENT)
    for k, n in enumerate((1, 2, 5, 7, 10, 12, 18), start=1):
        write(task / "inputs" / f"random_{k}.txt", f"{n}\n")
    write(task / name, checker)
    write(task / "include" / "coins.h", "inline bool valid_coin(long long c) "
                                        "{ return c == 1 || c == 3 || c == 4; }\n")
    write(task / "solutions" / "a_greedy.py", COINS_GREEDY)
    write(task / "solutions" / "b_dp.py", COINS_DP.format(order="(4, 3, 1)"))
    write(task / "solutions" / "c_dp.py", COINS_DP.format(order="(1, 3, 4)"))
    return root / "tasks"


@pytest.mark.parametrize("name, checker", [("checker.py", COINS_CHECKER_PY),
                                           ("checker.cpp", COINS_CHECKER_CPP)])
def test_a_three_argument_checker_gets_the_answer_and_rejects_a_suboptimal_greedy(
        tmp_path, name, checker):
    code, report = verify(_coins(tmp_path, checker, name), tmp_path)
    assert code == 0
    result = report["tasks"]["coins"]
    assert result["golden"] in ("b_dp.py", "c_dp.py") and result["reason"] is None
    assert result["verdicts"]["a_greedy.py"]["statement_sample_1"] == "wrong"
    assert result["candidates"]["a_greedy.py"]["eligible"] is False
    # Different optimal coin lists are all accepted.
    assert set(result["verdicts"]["b_dp.py"].values()) == {"ok"}
    assert set(result["verdicts"]["c_dp.py"].values()) == {"ok"}
    assert result["checker"].startswith("answers: the outputs of ")


def test_a_two_argument_checker_still_works(tmp_path):
    two_args = "import sys\nn = int(open(sys.argv[1]).read())\n" \
               "w = open(sys.argv[2]).read().split()\n" \
               "sys.exit(0 if sum(map(int, w[1:])) == n else 1)\n"
    code, report = verify(_coins(tmp_path, two_args), tmp_path)
    result = report["tasks"]["coins"]
    assert code == 0 and result["reason"] is None
    assert result["verdicts"]["a_greedy.py"]["random_1"] == "ok"  # validity only


@pytest.mark.slow
@pytest.mark.parametrize("checker, why", [
    ("import sys\nraise ValueError('cannot parse')\n", "checker failure (exit 3)"),
    ("while True:\n    pass\n", "checker time_limit"),
    ("import sys\nsys.exit(7)\n", "checker runtime_error"),
])
def test_a_checker_that_crashes_or_hangs_rejects_the_task_as_its_own_fault(
        tmp_path, checker, why):
    folder = _coins(tmp_path, checker)
    (folder / "coins" / "solutions" / "a_greedy.py").unlink()
    code, report = verify(folder, tmp_path, "--time-limit", "0.5")
    result = report["tasks"]["coins"]
    assert code == 0 and result["golden"] is None
    assert result["reason"].startswith("checker_failed: ")
    assert why in result["reason"]


def test_a_compile_error_keeps_the_compilers_message_in_json_and_summary(tmp_path, capsys):
    task = tmp_path / "tasks" / "echo"
    write(task / "statement.md", "Print n.\n")
    for k in range(1, 5):
        write(task / "inputs" / f"random_{k}.txt", f"{k}\n")
    write(task / "solutions" / "a.py", "print(input())\n")
    write(task / "solutions" / "b.py", "print(int(input()))\n")
    write(task / "solutions" / "c.cpp", "int main() { return undeclared_name; }\n")
    code, report = verify(tmp_path / "tasks", tmp_path)
    assert code == 0
    message = report["tasks"]["echo"]["compile_errors"]["c.cpp"]
    assert "undeclared_name" in message and "error" in message
    assert "c.cpp: compile error: " in capsys.readouterr().out


# --- Outputs of several MB

BIG = "n = int(input())\nprint('\\n'.join(str(i * i) for i in range(n)))\n"
FIRST_MIB = ("import sys\ndata = sys.stdin.buffer.read(16)\nn = int(data.split()[0])\n"
             "out = '\\n'.join(str(i * i) for i in range(n)).encode()\n"
             "sys.stdout.buffer.write(out[:1 << 20])\n")


@pytest.mark.slow
def test_outputs_of_megabytes_are_voted_by_digest_and_over_the_cap_make_tests_unusable(
        tmp_path):
    task = tmp_path / "tasks" / "squares"
    write(task / "statement.md", "Print i*i for i < n, one per line.\n")
    for k, n in enumerate((3, 10, 400_000, 350_000), start=1):
        write(task / "inputs" / f"{'stress' if n > 100 else 'random'}_{k}.txt", f"{n}\n")
    for c in range(3):
        write(task / "solutions" / f"a{c}.py", BIG + f"# copy {c}\n")
    write(task / "solutions" / "b_first_mib.py", FIRST_MIB)
    code, report = verify(tmp_path / "tasks", tmp_path)  # default cap: 64 MB
    result = report["tasks"]["squares"]
    assert code == 0 and result["reason"] is None and result["golden"] == "a0.py"
    assert "[sha256 " in result["labels"]["stress_3"]  # named by digest, not printed
    assert result["verdicts"]["b_first_mib.py"]["stress_3"] == "wrong"
    code, capped = verify(tmp_path / "tasks", tmp_path, "--max-output-mb", "1")
    result = capped["tasks"]["squares"]
    assert result["golden"] is None
    assert result["reason"].startswith("unusable_tests: 2 inputs where most runs hit a limit "
                                       "of ours ({'output_limit': 6}")
    assert "--max-output-mb" in result["reason"]
    assert result["votes"]["stress_3"]["unusable"] is True


# --- Folders that try to make verify-folder read what it must not

def _plain_task(root: Path) -> Path:
    task = root / "t"
    write(task / "statement.md", "Echo.\n")
    for k in range(1, 5):
        write(task / "inputs" / f"random_{k}.txt", f"{k}\n")
    write(task / "solutions" / "a.py", "print(input())\n")
    write(task / "solutions" / "b.py", "print(input().strip())\n")
    return task


def test_links_out_fifos_and_devices_are_refused_with_their_reason(tmp_path):
    root = tmp_path / "tasks"
    task = _plain_task(root)
    secret = tmp_path / "secret.txt"
    secret.write_text("root-only label\n")
    os.symlink(secret, task / "inputs" / "random_5.txt")
    os.symlink("/dev/zero", task / "inputs" / "random_6.txt")
    os.mkfifo(task / "inputs" / "random_7.txt")
    inside = task / "inputs" / "random_8.txt"
    os.symlink(task / "inputs" / "random_1.txt", inside)  # a link inside is fine
    with pytest.raises(FolderError) as caught:
        load_folder(root)
    text = "\n".join(caught.value.problems)
    assert "random_5.txt: a symbolic link to" in text and "outside the folder" in text
    assert "random_6.txt: a symbolic link to /dev/zero, outside the folder" in text
    assert "random_7.txt: a FIFO, not a regular file" in text
    assert "random_8" not in text
    assert "root-only label" not in text


def test_a_file_over_the_cap_is_refused(tmp_path):
    task = _plain_task(tmp_path / "tasks")
    write(task / "inputs" / "random_9.txt", "x" * 5000)
    with pytest.raises(FolderError, match=r"random_9.txt: 5000 bytes, over the 0 MB cap"):
        load_folder(tmp_path / "tasks", max_file_bytes=4096)


def test_names_in_any_encoding_are_reported_without_crashing(tmp_path, capsys):
    task = _plain_task(tmp_path / "tasks")
    raw = os.fsencode(task / "inputs") + b"/random_\xff\xfe.txt"
    with open(raw, "wb") as f:
        f.write(b"9\n")
    bad_solution = os.fsencode(task / "solutions") + b"/c_\xe9t\xe9.py"
    with open(bad_solution, "wb") as f:
        f.write(b"print(input())\n")
    code, report = verify(tmp_path / "tasks", tmp_path)
    assert code == 0
    result = report["tasks"]["t"]
    assert "random_\\xff\\xfe" in result["votes"]
    assert "c_\\xe9t\\xe9.py" in result["verdicts"]
    assert "Traceback" not in capsys.readouterr().err


def test_a_candidate_that_beats_the_provisional_answer_becomes_the_reference(tmp_path):
    # No sample shows the optimum, so the greedy (first, and valid on every input) is the
    # provisional golden; the checker says the DP's outputs beat its answers (exit 3).
    folder = _coins(tmp_path, COINS_CHECKER_PY)
    write(folder / "coins" / "statement.md", "Pay n with the fewest coins of 1, 3 and 4.\n")
    code, report = verify(folder, tmp_path)
    result = report["tasks"]["coins"]
    assert code == 0 and result["reason"] is None
    assert result["golden"] in ("b_dp.py", "c_dp.py")
    assert "after a_greedy.py was beaten" in result["checker"]
    assert result["verdicts"]["a_greedy.py"]["random_5"] == "wrong"  # 10 = 4+4+1+1, not 4+3+3


def test_a_candidate_leaving_a_1500_deep_directory_chain_does_not_sink_the_report(tmp_path):
    task = _plain_task(tmp_path / "tasks")
    write(task / "solutions" / "c_deep.py",
          "import os\nfor _ in range(1500):\n    os.mkdir('d')\n    os.chdir('d')\n"
          "os.chdir('/')\nprint(input())\n")
    code, report = verify(tmp_path / "tasks", tmp_path)
    assert code == 0
    result = report["tasks"]["t"]
    assert set(result["verdicts"]["c_deep.py"].values()) == {"ok"}
    assert result["reason"] is None
