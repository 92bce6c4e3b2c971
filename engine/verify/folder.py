"""Verify a folder of tasks you already have: run every solution on every input in the
sandbox, vote the outputs, pick a golden solution (``voting.py``), and write what was found.

    python -m engine verify-folder PATH [--json OUT] [--jobs N] [--time-limit S] [--memory-mb M]

PATH holds one sub-folder per task (hidden folders are skipped):

    TASK/statement.md        the statement; its "Sample Input"/"Sample Output" blocks give
                             known outputs to the inputs that equal a sample input
    TASK/inputs/*.txt        one test input per file; a name starting with sample, edge,
                             random or stress gives the test's kind (else random), which sets
                             its weight when the golden solution is picked
    TASK/solutions/*.py|*.cpp  candidate solutions (Python 3 standard library, C++17)
    TASK/checker.py          optional: ``python checker.py INPUT OUTPUT`` exits 0 when OUTPUT
                             is acceptable for INPUT (it runs in the sandbox too); the task
                             then has no labels and the checker says who passes
    TASK/expected/*.txt      optional: known answers, by input name; used only to report
                             label accuracy and golden correctness, never to vote

``--json OUT`` writes ``{"tasks": {TASK: {"labels", "votes", "agreement", "golden",
"reason", "verdicts"}}}`` (``-``: to stdout, the summary then goes to stderr). INPUT is the
input's stem, SOLUTION the file name. ``votes[INPUT]`` is ``{"counts": {OUTPUT: runs},
"weights": {OUTPUT: vote weight}, "voters", "tie", "split", "source"}`` (an OUTPUT over 80
characters is named by its start and digest; checker tasks count ``accepted`` and
``rejected`` instead). ``verdicts`` are sandbox statuses: "ok"/"wrong" against the label or
the checker, else how the run failed ("ok" also where an input has no label). The
thresholds are the ``verify`` section's defaults (engine/schema.py ``VerifyConfig``). The
summary lists each task, and with expected/ answers our rule's and plain majority voting's
accuracy side by side. Exit 0 when the folder was verified (rejected tasks included), 2 on
a bad folder (every problem listed), 1 when the sandbox is unavailable.

Identical (program, input) runs happen once per invocation (a shared ``cache`` dict can
carry them over calls). Leaves out: checkers in other languages, interactive tasks,
per-task limits, and statement sample formats other than headed blocks ("Sample Input 1",
"## Example Output", optionally fenced).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.schema import VerifyConfig
from engine.verify.sandbox import Limits, Program, SandboxPool, SandboxUnavailable
from engine.verify.voting import KINDS, Cell, TaskVerdict, plain_majority, same_output, verify_task

__all__ = [
    "FolderError", "FolderReport", "TaskFolder", "TaskReport", "accuracy", "add_arguments",
    "input_kind", "judge", "load_folder", "report_json", "run_folder", "run_from_args",
    "statement_samples", "summary_text", "verify_folder",
]

EXIT_BAD_FOLDER = 2
EXIT_NO_SANDBOX = 1
LANGUAGES = {".py": "python", ".cpp": "cpp"}
VOTE_KEY_CHARS = 80  # longer outputs are named by a digest in "votes"


class FolderError(ValueError):
    """The folder cannot be verified; ``problems`` lists every reason, each naming a path."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("cannot verify this folder:\n" +
                         "\n".join(f"  - {p}" for p in self.problems))


# --- Reading the folder

@dataclass(frozen=True)
class TaskFolder:
    name: str
    path: Path
    statement: str
    input_names: tuple[str, ...]  # stems, in natural order
    inputs: tuple[bytes, ...]
    kinds: tuple[str, ...]
    solution_names: tuple[str, ...]  # file names, sorted
    solutions: tuple[Program, ...]
    checker: str | None  # checker.py source
    expected: dict[int, str]  # input index -> known answer (accuracy only)
    known: dict[int, str]  # input index -> statement sample output (votes with it)

    @property
    def seed(self) -> int:
        """Seeds the hold-out split: the same task name always splits the same way."""
        return int.from_bytes(hashlib.sha256(self.name.encode()).digest()[:8], "big")


def _natural(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def input_kind(stem: str) -> str:
    """The test kind a file name says: sample_1 -> sample, edge-n1 -> edge, else random."""
    low = stem.lower()
    return next((kind for kind in KINDS if low.startswith(kind)), "random")


_SAMPLE_HEADING = re.compile(
    r"^\s*(?:#+\s*|\*\*)?(?:sample|example)s?\s*(?:test\s*)?(input|output)\s*(?:#?\s*\d+)?"
    r"\s*:?\s*(?:\*\*)?\s*$", re.IGNORECASE)
# Codeforces' own layout: a bare "Input" / "Output" line over each sample. Only counted when a
# fenced block follows at once, so the "## Input" section that describes the format is not.
_BARE_HEADING = re.compile(r"^\s*(?:#+\s*|\*\*)?(input|output)\s*:?\s*(?:\*\*)?\s*$",
                           re.IGNORECASE)


def _bare_heading(lines: list[str], i: int) -> re.Match[str] | None:
    found = _BARE_HEADING.match(lines[i])
    if found is None:
        return None
    j = i + 1
    while j < len(lines) and not lines[j].strip():
        j += 1
    return found if j < len(lines) and lines[j].lstrip().startswith("```") else None


def statement_samples(statement: str) -> list[tuple[str, str]]:
    """(input, output) pairs from "Sample Input" / "Sample Output" headed blocks, in order,
    and from bare "Input" / "Output" lines right over a fenced block (Codeforces' layout).

    A block is the fenced code right after its heading, or else the lines up to the next
    blank line or heading.
    """
    lines = statement.splitlines()
    blocks: list[tuple[str, str]] = []  # (input|output, text)
    i = 0
    while i < len(lines):
        found = _SAMPLE_HEADING.match(lines[i]) or _bare_heading(lines, i)
        i += 1
        if not found:
            continue
        while i < len(lines) and not lines[i].strip():
            i += 1
        body: list[str] = []
        if i < len(lines) and lines[i].lstrip().startswith("```"):
            i += 1
            while i < len(lines) and not lines[i].lstrip().startswith("```"):
                body.append(lines[i])
                i += 1
            i += 1
        else:
            while i < len(lines) and lines[i].strip() and not _SAMPLE_HEADING.match(lines[i]):
                body.append(lines[i])
                i += 1
        blocks.append((found.group(1).lower(), "\n".join(body)))
    pairs, pending = [], None
    for which, text in blocks:
        if which == "input":
            pending = text
        elif pending is not None:
            pairs.append((pending, text))
            pending = None
    return pairs


def _read_text(path: Path, problems: list[str]) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot read it ({exc})")
        return None


def _load_task(path: Path, problems: list[str]) -> TaskFolder | None:
    before = len(problems)
    statement_path = path / "statement.md"
    statement = _read_text(statement_path, problems) if statement_path.is_file() else ""
    if not statement_path.is_file():
        problems.append(f"{path}: no statement.md")
    input_paths = sorted((path / "inputs").glob("*.txt"), key=lambda p: _natural(p.stem)) \
        if (path / "inputs").is_dir() else []
    if not input_paths:
        problems.append(f"{path}: no inputs (expected inputs/*.txt)")
    solution_paths = sorted(p for p in (path / "solutions").glob("*")
                            if p.suffix in LANGUAGES and p.is_file()) \
        if (path / "solutions").is_dir() else []
    if not solution_paths:
        problems.append(f"{path}: no solutions (expected solutions/*.py or *.cpp)")
    checker = None
    if (path / "checker.py").exists():
        checker = _read_text(path / "checker.py", problems)
    names = [p.stem for p in input_paths]
    expected: dict[int, str] = {}
    if (path / "expected").is_dir():
        for p in sorted((path / "expected").glob("*.txt")):
            if p.stem not in names:
                problems.append(f"{p}: no input inputs/{p.stem}.txt to compare it with")
                continue
            text = _read_text(p, problems)
            if text is not None:
                expected[names.index(p.stem)] = text
    inputs = [p.read_bytes() for p in input_paths]
    sources = [_read_text(p, problems) for p in solution_paths]
    if len(problems) > before:
        return None
    known: dict[int, str] = {}
    kinds = [input_kind(n) for n in names]
    normalised = [" ".join(data.decode("utf-8", errors="replace").split()) for data in inputs]
    for sample_in, sample_out in statement_samples(statement or ""):
        for j, text in enumerate(normalised):
            if text == " ".join(sample_in.split()) and j not in known:
                known[j] = sample_out
                kinds[j] = "sample"
    programs = tuple(Program(LANGUAGES[p.suffix], s) for p, s in zip(solution_paths, sources,
                                                                       strict=True))
    return TaskFolder(path.name, path, statement or "", tuple(names), tuple(inputs),
                      tuple(kinds), tuple(p.name for p in solution_paths), programs, checker,
                      expected, known)


def load_folder(path: str | Path) -> list[TaskFolder]:
    """Every task sub-folder of ``path``; FolderError lists all that is missing at once."""
    root = Path(path)
    if not root.is_dir():
        raise FolderError([f"{root}: not a folder (give the folder that holds one "
                           "sub-folder per task)"])
    problems: list[str] = []
    tasks = [_load_task(sub, problems) for sub in sorted(root.iterdir(),
                                                         key=lambda p: _natural(p.name))
             if sub.is_dir() and not sub.name.startswith(".")]
    if not tasks and not problems:
        problems.append(f"{root}: no task sub-folders (each holds statement.md, inputs/ "
                        "and solutions/)")
    if problems:
        raise FolderError(problems)
    return [t for t in tasks if t is not None]


# --- Running: every solution on every input, then the checker on every clean output

CHECKER_WRAPPER = '''\
import os, sys
_data = sys.stdin.buffer.read()
_size = int.from_bytes(_data[:8], "big")
with open("input.txt", "wb") as _f:
    _f.write(_data[8:8 + _size])
with open("output.txt", "wb") as _f:
    _f.write(_data[8 + _size:])
sys.argv = ["checker.py", "input.txt", "output.txt"]
sys.stdin = open(os.devnull)
_source = {source!r}
exec(compile(_source, "checker.py", "exec"), {{"__name__": "__main__", "__file__": "checker.py"}})
'''


def _checker_program(source: str) -> Program:
    # The checker reads files named on its command line; the sandbox gives a program only
    # stdin, so a fixed wrapper (cached once per worker) writes both files first.
    return Program.python(CHECKER_WRAPPER.format(source=source))


def _checker_stdin(data: bytes, output: bytes) -> bytes:
    return len(data).to_bytes(8, "big") + data + output


def _run_all(pool: SandboxPool, jobs: list[tuple[Program, bytes]], limits: Limits,
             cache: dict) -> list:
    keys = [(p.key, hashlib.sha256(stdin).hexdigest(), limits) for p, stdin in jobs]
    todo: dict[tuple, tuple[Program, bytes]] = {}
    for key, job in zip(keys, jobs, strict=True):
        if key not in cache:
            todo.setdefault(key, job)
    results = pool.run_many(list(todo.values()), limits)
    cache.update(zip(todo, results, strict=True))
    return [cache[key] for key in keys]


@dataclass(frozen=True)
class RunStats:
    cells: int  # solution x input pairs, all tasks
    runs: int  # sandbox runs made (after de-duplication and the cache)
    checker_runs: int
    seconds: float


def run_folder(tasks: Sequence[TaskFolder], pool: SandboxPool, limits: Limits,
               cache: dict | None = None) -> tuple[list[list[list[Cell]]], RunStats]:
    """Run everything; -> per task its cells [solution][input], and what it took."""
    cache = {} if cache is None else cache
    started, before = time.monotonic(), len(cache)
    jobs = [(program, data) for task in tasks for program in task.solutions
            for data in task.inputs]
    flat = iter(_run_all(pool, jobs, limits, cache))
    results = [[[next(flat) for _ in task.inputs] for _ in task.solutions] for task in tasks]
    after_solutions = len(cache)
    checks: list[tuple[Program, bytes]] = []
    for task, grid in zip(tasks, results, strict=True):
        if task.checker is not None:
            program = _checker_program(task.checker)
            checks += [(program, _checker_stdin(task.inputs[j], run.stdout))
                       for row in grid for j, run in enumerate(row) if run.status == "ok"]
    verdicts = iter(_run_all(pool, checks, limits, cache))
    matrices = []
    for task, grid in zip(tasks, results, strict=True):
        rows = []
        for row in grid:
            cells = []
            for run in row:
                accepted = None
                if task.checker is not None and run.status == "ok":
                    check = next(verdicts)
                    # A checker that exits non-zero rejects; one that is killed says nothing.
                    accepted = True if check.status == "ok" else \
                        False if check.status == "runtime_error" and check.exit_code else None
                cells.append(Cell(run.status, run.text if run.status == "ok" else "",
                                  accepted, run.cpu_s))
            rows.append(cells)
        matrices.append(rows)
    stats = RunStats(len(jobs), after_solutions - before, len(cache) - after_solutions,
                     time.monotonic() - started)
    return matrices, stats


# --- Judging and reporting

@dataclass(frozen=True)
class TaskReport:
    task: TaskFolder
    cells: list[list[Cell]]
    ours: TaskVerdict
    plain: TaskVerdict


@dataclass(frozen=True)
class FolderReport:
    tasks: list[TaskReport]
    stats: RunStats | None
    isolation: str


def judge(tasks: Sequence[TaskFolder], matrices: Sequence[list[list[Cell]]],
          cfg: VerifyConfig) -> list[TaskReport]:
    """Both rules on every task's cells (no runs: change ``cfg`` and judge again)."""
    reports = []
    for task, cells in zip(tasks, matrices, strict=True):
        checker = task.checker is not None
        ours = verify_task(cells, task.kinds, cfg, known=task.known, checker=checker,
                           seed=task.seed)
        plain = plain_majority(cells, cfg, kinds=task.kinds, checker=checker)
        reports.append(TaskReport(task, cells, ours, plain))
    return reports


def verify_folder(path: str | Path, cfg: VerifyConfig | None = None, *,
                  jobs: int | None = None, limits: Limits | None = None,
                  pool: SandboxPool | None = None, cache: dict | None = None) -> FolderReport:
    """Load, run (a pool of ``jobs`` workers unless ``pool`` is given) and judge a folder."""
    cfg = cfg or VerifyConfig()
    tasks = load_folder(path)
    limits = limits or limits_from(cfg)
    own = pool is None
    pool = pool or SandboxPool(workers=jobs or cfg.jobs or os.cpu_count() or 1, limits=limits)
    try:
        matrices, stats = run_folder(tasks, pool, limits, cache)
        isolation = pool.isolation
    finally:
        if own:
            pool.close()
    return FolderReport(judge(tasks, matrices, cfg), stats, isolation)


def limits_from(cfg: VerifyConfig, time_limit_s: float | None = None,
                memory_mb: int | None = None) -> Limits:
    return Limits(cpu_s=time_limit_s or cfg.time_limit_s, memory_mb=memory_mb or cfg.memory_mb,
                  output_bytes=cfg.max_output_kb << 10)


def vote_key(text: str) -> str:
    """How an output is named in "votes": itself, or its start and digest when long."""
    if len(text) <= VOTE_KEY_CHARS:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return f"{text[:40]}... [sha256 {digest}, {len(text)} chars]"


def _task_json(report: TaskReport) -> dict:
    task, verdict = report.task, report.ours
    names, solutions = task.input_names, task.solution_names
    votes: dict[str, dict] = {}
    for name, vote in zip(names, verdict.inputs, strict=True):
        if task.checker is not None:
            counts = {"accepted": vote.accepted or 0, "rejected": vote.rejected or 0}
            weights = None
        else:
            counts = {vote_key(k.text): k.count for k in vote.classes}
            weights = {vote_key(k.text): round(k.weight, 6) for k in vote.classes}
        votes[name] = {"counts": counts, **({"weights": weights} if weights is not None else {}),
                       "voters": vote.voters, "tie": vote.tie, "split": vote.split,
                       "source": vote.source}
    return {
        "labels": {} if task.checker is not None else dict(zip(names, verdict.labels,
                                                               strict=True)),
        "votes": votes,
        "agreement": {name: (None if v.agreement is None else round(v.agreement, 6))
                      for name, v in zip(names, verdict.inputs, strict=True)},
        "golden": solutions[verdict.golden] if verdict.golden is not None else None,
        "reason": verdict.reason,
        "verdicts": {solutions[c]: dict(zip(names, row, strict=True))
                     for c, row in enumerate(verdict.verdicts)},
    }


def report_json(report: FolderReport) -> dict:
    return {"tasks": {r.task.name: _task_json(r) for r in report.tasks}}


def _golden_correct(report: TaskReport, verdict: TaskVerdict, cfg: VerifyConfig,
                    candidate: int | None) -> bool:
    if candidate is None:
        return False
    for j, answer in report.task.expected.items():
        cell = report.cells[candidate][j]
        if cell.status != "ok":
            return False
        if report.task.checker is not None:
            if cell.accepted is not True:
                return False
        elif not same_output(cell.output, answer, cfg):
            return False
    return True


def accuracy(report: FolderReport, cfg: VerifyConfig | None = None) -> dict | None:
    """Label accuracy and golden correctness of both rules over tasks with expected/."""
    cfg = cfg or VerifyConfig()
    graded = [r for r in report.tasks if r.task.expected]
    if not graded:
        return None
    out: dict = {"tasks": len(graded)}
    for rule in ("ours", "plain"):
        labels_right = labels_total = labelled = golden_right = accepted = 0
        chosen_right = 0
        for r in graded:
            verdict: TaskVerdict = getattr(r, rule)
            if r.task.checker is None:
                for j, answer in r.task.expected.items():
                    label = verdict.inputs[j].label
                    labels_total += 1
                    labelled += label is not None
                    labels_right += label is not None and same_output(label, answer, cfg)
            accepted += verdict.golden is not None
            golden_right += _golden_correct(r, verdict, cfg, verdict.golden)
            chosen_right += _golden_correct(r, verdict, cfg, verdict.chosen)
        out[rule] = {
            "label_accuracy": labels_right / labels_total if labels_total else None,
            "label_precision": labels_right / labelled if labelled else None,
            "labels_right": labels_right, "labels_total": labels_total,
            "golden_correct": golden_right / len(graded),
            "golden_precision": golden_right / accepted if accepted else None,
            "chosen_correct": chosen_right / len(graded),
            "accepted": accepted,
        }
    return out


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def summary_text(report: FolderReport, cfg: VerifyConfig | None = None) -> str:
    lines = []
    for r in report.tasks:
        v = r.ours
        labelled = sum(x.label is not None for x in v.inputs) if r.task.checker is None \
            else sum(x.voters > 0 for x in v.inputs)
        golden = r.task.solution_names[v.golden] if v.golden is not None else "-"
        status = "accepted" if v.reason is None else f"rejected ({v.reason})"
        lines.append(f"{r.task.name}: {status}; golden {golden}; "
                     f"{'judged' if r.task.checker else 'labelled'} {labelled}/{len(v.inputs)}"
                     f"; {sum(x.split for x in v.inputs)} split")
    if report.stats is not None:
        s = report.stats
        lines.append(f"runs: {s.runs} solution runs for {s.cells} cells, {s.checker_runs} "
                     f"checker runs, {s.seconds:.1f} s ({report.isolation})")
    acc = accuracy(report, cfg)
    if acc is not None:
        o, p = acc["ours"], acc["plain"]
        lines.append(f"against expected/ ({acc['tasks']} tasks):   ours   | plain majority")
        lines.append(f"  label accuracy        {_pct(o['label_accuracy']):>7} | "
                     f"{_pct(p['label_accuracy']):>7}  ({o['labels_right']}/{o['labels_total']}"
                     f" vs {p['labels_right']}/{p['labels_total']})")
        lines.append(f"  golden fully correct  {_pct(o['golden_correct']):>7} | "
                     f"{_pct(p['golden_correct']):>7}  (ours accepted {o['accepted']}, "
                     f"precision {_pct(o['golden_precision'])})")
    return "\n".join(lines)


# --- Command line (engine/__main__.py adds these arguments to its verify-folder command)

def add_arguments(p: argparse.ArgumentParser) -> None:
    defaults = VerifyConfig()
    p.add_argument("path", help="folder with one sub-folder per task")
    p.add_argument("--json", metavar="OUT", help="write the JSON report here ('-': stdout)")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="sandboxed runs at once (default: every core)")
    p.add_argument("--time-limit", type=float, default=defaults.time_limit_s, metavar="S",
                   help=f"CPU seconds per run (default {defaults.time_limit_s:g})")
    p.add_argument("--memory-mb", type=int, default=defaults.memory_mb, metavar="MB",
                   help=f"memory per run in MB (default {defaults.memory_mb})")


def run_from_args(args: argparse.Namespace) -> int:
    cfg = VerifyConfig()
    problems = []
    if args.jobs is not None and args.jobs < 1:
        problems.append(f"--jobs must be >= 1 (got {args.jobs})")
    if not args.time_limit > 0:
        problems.append(f"--time-limit must be > 0 (got {args.time_limit})")
    if not args.memory_mb > 0:
        problems.append(f"--memory-mb must be > 0 (got {args.memory_mb})")
    if problems:
        print("error: " + "; ".join(problems), file=sys.stderr)
        return EXIT_BAD_FOLDER
    try:
        report = verify_folder(args.path, cfg, jobs=args.jobs,
                               limits=limits_from(cfg, args.time_limit, args.memory_mb))
    except FolderError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_FOLDER
    except SandboxUnavailable as e:
        print(f"error: the sandbox is unavailable: {e}", file=sys.stderr)
        return EXIT_NO_SANDBOX
    data = json.dumps(report_json(report), indent=2, ensure_ascii=False)
    if args.json == "-":
        print(data)
        print(summary_text(report, cfg), file=sys.stderr)
        return 0
    if args.json:
        Path(args.json).write_text(data + "\n", encoding="utf-8")
    print(summary_text(report, cfg))
    return 0
