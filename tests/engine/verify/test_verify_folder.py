"""``python -m engine verify-folder`` end to end on a small generated folder (sandboxed).

    .venv/bin/python -m pytest tests/engine/verify/test_verify_folder.py -q

The folder: "sum" (Python and C++ candidates: right, right with extra whitespace, wrong on
n = 1, crashing, too slow on the stress input; a statement sample; expected/ answers) and
"divisor" (a checker accepting any proper divisor, so right answers differ). Needs
bubblewrap; skips with the reason when the sandbox is unavailable.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from engine.__main__ import main
from engine.verify import Sandbox, SandboxUnavailable
from engine.verify.folder import input_kind, load_folder, statement_samples

STATUSES = {"ok", "wrong", "runtime_error", "time_limit", "memory_limit", "output_limit",
            "compile_error"}

SUM_STATEMENT = """\
# Sum

Print the sum of n integers.

## Sample Input 1
```
3
1 2 3
```

## Sample Output 1
```
6
```
"""

SUM_SOLUTIONS = {
    "a_right.py": """\
        n = int(input())
        print(sum(map(int, input().split())))
        """,
    "b_spaces.py": """\
        n = int(input())
        print("  ", sum(map(int, input().split())), "  \\n\\n")
        """,
    "c_right.cpp": """\
        #include <cstdio>
        int main() { int n; long long s = 0, x; scanf("%d", &n);
          for (int i = 0; i < n; i++) { scanf("%lld", &x); s += x; } printf("%lld\\n", s); }
        """,
    "d_no_edge.cpp": """\
        #include <cstdio>
        int main() { int n; long long s = 0, x; scanf("%d", &n);
          for (int i = 0; i < n; i++) { scanf("%lld", &x); s += x; }
          printf("%lld\\n", n == 1 ? 0 : s); }
        """,
    "e_crash.py": """\
        n = int(input())
        a = list(map(int, input().split()))
        print(a[99] if n == 4 else sum(a))
        """,
    "f_slow.py": """\
        n = int(input())
        a = list(map(int, input().split()))
        while n > 1000:
            pass
        print(sum(a))
        """,
}

SUM_INPUTS = {
    "sample_1": ([1, 2, 3], 6),
    "edge_1": ([5], 5),
    "random_1": ([1, 1, 1, 1], 4),
    "random_2": ([-5, 7], 2),
    "stress_1": (list(range(2000)), sum(range(2000))),
}

DIVISOR_CHECKER = """\
import sys
n = int(open(sys.argv[1]).read())
words = open(sys.argv[2]).read().split()
if len(words) != 1:
    sys.exit(1)
d = int(words[0])
prime = all(n % k for k in range(2, n))
sys.exit(0 if (d == -1 and prime) or (1 < d < n and n % d == 0) else 1)
"""

DIVISOR_SOLUTIONS = {
    "largest.py": "n = int(input())\nprint(next((d for d in range(n - 1, 1, -1) "
                  "if n % d == 0), -1))\n",
    "smallest.py": "n = int(input())\nprint(next((d for d in range(2, n) if n % d == 0), -1))\n",
    "wrong.py": "n = int(input())\nprint(1)\n",
}


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def build_folder(root: Path) -> Path:
    task = root / "sum"
    write(task / "statement.md", SUM_STATEMENT)
    for name, (values, answer) in SUM_INPUTS.items():
        write(task / "inputs" / f"{name}.txt", f"{len(values)}\n{' '.join(map(str, values))}\n")
        write(task / "expected" / f"{name}.txt", f"{answer}\n")
    for name, source in SUM_SOLUTIONS.items():
        write(task / "solutions" / name, textwrap.dedent(source))
    task = root / "divisor"
    write(task / "statement.md", "Print a divisor d of n with 1 < d < n, or -1 if none.\n")
    write(task / "checker.py", DIVISOR_CHECKER)
    for n in (12, 7, 100, 9, 97):
        write(task / "inputs" / f"{'edge' if n in (7, 97) else 'random'}_{n}.txt", f"{n}\n")
    for name, source in DIVISOR_SOLUTIONS.items():
        write(task / "solutions" / name, source)
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    try:
        Sandbox()
    except SandboxUnavailable as exc:
        pytest.skip(f"the sandbox is unavailable here: {exc}")
    return build_folder(tmp_path_factory.mktemp("tasks"))


def verify(folder: Path, out: Path, *extra: str) -> tuple[int, dict | None]:
    code = main(["verify-folder", str(folder), "--json", str(out), "--time-limit", "1",
                 *extra])
    return code, (json.loads(out.read_text()) if out.exists() else None)


@pytest.fixture(scope="module")
def runs(folder, tmp_path_factory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("out")
    one = verify(folder, out / "jobs1.json", "--jobs", "1")
    two = verify(folder, out / "jobs2.json", "--jobs", "2")
    assert one[0] == two[0] == 0
    return {"1": one[1], "2": two[1]}


# --- The report

def test_the_json_has_exactly_the_shape_the_issue_specifies(runs, folder):
    report = runs["2"]
    assert set(report) == {"tasks"} and set(report["tasks"]) == {"sum", "divisor"}
    for name, task in report["tasks"].items():
        assert set(task) >= {"labels", "votes", "agreement", "golden", "reason", "verdicts",
                             "samples", "compile_errors", "candidates", "limits"}
        inputs = set(task["votes"])
        assert inputs == {p.stem for p in (folder / name / "inputs").glob("*.txt")}
        assert set(task["agreement"]) == inputs
        assert all(isinstance(v, float) or v is None for v in task["agreement"].values())
        for solution, verdicts in task["verdicts"].items():
            assert set(verdicts) == inputs, solution
            assert set(verdicts.values()) <= STATUSES
        assert all(isinstance(task["votes"][i]["tie"], bool) for i in inputs)
    total = report["tasks"]["sum"]
    assert set(total["labels"]) == set(SUM_INPUTS)
    assert set(total["verdicts"]) == set(SUM_SOLUTIONS)
    assert report["tasks"]["divisor"]["labels"] == {}


def test_labels_golden_and_verdicts_of_a_python_and_cpp_task(runs):
    task = runs["2"]["tasks"]["sum"]
    assert task["labels"] == {name: str(answer) for name, (_, answer) in SUM_INPUTS.items()}
    assert task["golden"] == "a_right.py" and task["reason"] is None
    verdicts = task["verdicts"]
    assert set(verdicts["b_spaces.py"].values()) == {"ok"}  # extra whitespace is accepted
    assert set(verdicts["c_right.cpp"].values()) == {"ok"}
    assert verdicts["d_no_edge.cpp"]["edge_1"] == "wrong"
    assert verdicts["e_crash.py"]["random_1"] == "runtime_error"
    assert verdicts["f_slow.py"]["stress_1"] == "time_limit"
    assert task["votes"]["edge_1"]["counts"] == {"5": 5, "0": 1}
    assert task["votes"]["edge_1"]["weights"] == {"5": 4.5, "0": 0.5}
    assert task["votes"]["sample_1"]["source"] == "known"  # read from the statement
    # Vote weight: e_crash (crashed where the others agree) and d_no_edge.cpp (outvoted
    # 5 to 1) are exposed once each and weigh 0.5: agreement 4.5 / 5.
    assert task["agreement"]["edge_1"] == pytest.approx(0.9)


def test_a_checker_task_accepts_different_right_answers(runs):
    task = runs["2"]["tasks"]["divisor"]
    assert task["golden"] == "largest.py" and task["reason"] is None
    assert set(task["verdicts"]["largest.py"].values()) == {"ok"}
    assert set(task["verdicts"]["smallest.py"].values()) == {"ok"}
    assert set(task["verdicts"]["wrong.py"].values()) == {"wrong"}
    assert task["votes"]["random_12"]["counts"] == {"accepted": 2, "rejected": 1}


def without_timings(report: dict) -> dict:
    report = json.loads(json.dumps(report))
    for task in report["tasks"].values():
        for candidate in task["candidates"].values():
            assert candidate.pop("biggest_input_cpu_s") >= 0  # measured, so it varies
    return report


def test_jobs_1_and_jobs_2_give_the_same_json(runs):
    assert without_timings(runs["1"]) == without_timings(runs["2"])


def test_expected_answers_print_accuracy_for_our_rule_and_plain_majority(folder, tmp_path,
                                                                         capsys):
    code, _ = verify(folder, tmp_path / "r.json", "--jobs", "2")
    printed = capsys.readouterr().out
    assert code == 0
    assert "label accuracy" in printed and "golden fully correct" in printed
    assert "ours" in printed and "plain majority" in printed
    line = next(x for x in printed.splitlines() if "label accuracy" in x)
    assert "100.0%" in line and "(5/5 vs 5/5)" in line


# --- Bad folders

def test_a_missing_folder_exits_2_and_says_so(tmp_path, capsys):
    assert main(["verify-folder", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: not a folder" in capsys.readouterr().err


def test_tasks_without_inputs_or_solutions_exit_2_naming_each_folder_and_what_is_missing(
        tmp_path, capsys):
    write(tmp_path / "no-inputs" / "statement.md", "x")
    write(tmp_path / "no-inputs" / "solutions" / "a.py", "print(1)")
    write(tmp_path / "no-solutions" / "statement.md", "x")
    write(tmp_path / "no-solutions" / "inputs" / "a.txt", "1")
    write(tmp_path / "no-solutions" / "solutions" / "notes.txt", "not a solution")
    write(tmp_path / "stray" / "statement.md", "x")
    write(tmp_path / "stray" / "inputs" / "a.txt", "1")
    write(tmp_path / "stray" / "solutions" / "a.py", "print(1)")
    write(tmp_path / "stray" / "expected" / "b.txt", "1")
    assert main(["verify-folder", str(tmp_path), "--jobs", "1"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'no-inputs'}: no inputs (expected inputs/*.txt, tests/NN.in or " \
        "samples in statement.md)" in err
    assert f"{tmp_path / 'no-solutions'}: no solutions (expected solutions/*.py or *.cpp)" \
        in err
    assert "expected/b.txt: no input inputs/b.txt" in err
    assert "Traceback" not in err


def test_a_folder_without_task_folders_exits_2(tmp_path, capsys):
    write(tmp_path / "README.md", "nothing here")
    assert main(["verify-folder", str(tmp_path)]) == 2
    assert "no task sub-folders" in capsys.readouterr().err


# --- Reading tasks (no sandbox)

def test_statement_samples_come_from_headed_blocks_fenced_or_plain():
    plain = "Sample Input\n5\n3 1 4 1 5\n\nSample Output\n10\n\nNote\n3 - 1 = 2."
    assert statement_samples(plain) == [("5\n3 1 4 1 5", "10")]
    fenced = SUM_STATEMENT + "\n### Example input 2:\n```\n1\n7\n```\n### Example output 2:\n" \
        "```\n7\n```\n"
    assert statement_samples(fenced) == [("3\n1 2 3", "6"), ("1\n7", "7")]
    assert statement_samples("Input\nThe first line holds n.\nOutput\nOne number.") == []


def test_bare_input_output_lines_count_only_right_over_a_fenced_block():
    codeforces = ("## Input\n\nThe first line holds n.\n\n## Output\n\nOne number.\n\n"
                  "## Examples\n\nInput\n```\n2\n1 2\n```\nOutput\n```\n3\n```\n\n"
                  "**Input**\n\n```\n1\n5\n```\n\n**Output**\n\n```\n5\n```\n")
    assert statement_samples(codeforces) == [("2\n1 2", "3"), ("1\n5", "5")]
    # AtCoder's "## Input" section shows the format in a fence: it is not a sample, and
    # with no output block after it, it pairs with nothing.
    atcoder = ("## Input\n\nInput is given in the following format:\n\n```\nN\n```\n\n"
               "Sample Input 1\n\n```\n4\n```\n\nSample Output 1\n\n```\n16\n```\n")
    assert statement_samples(atcoder) == [("4", "16")]


def test_input_kinds_come_from_file_names_and_statement_samples(tmp_path):
    assert [input_kind(s) for s in ("sample1", "Edge_n1", "stress-max", "big", "random_3")] \
        == ["sample", "edge", "stress", "random", "random"]
    write(tmp_path / "t" / "statement.md", SUM_STATEMENT)
    write(tmp_path / "t" / "inputs" / "first.txt", "3\n1 2 3\n")
    write(tmp_path / "t" / "inputs" / "edge_2.txt", "1\n1\n")
    write(tmp_path / "t" / "inputs" / "edge_10.txt", "1\n2\n")
    write(tmp_path / "t" / "solutions" / "a.py", "print(1)")
    (task,) = load_folder(tmp_path)
    assert task.input_names == ("edge_2", "edge_10", "first")  # natural order
    assert task.kinds == ("edge", "edge", "sample")
    assert task.known == {2: "6"}
