"""Verify a folder of tasks you already have: run every solution on every input in the
sandbox, vote the outputs, pick a golden solution (``voting.py``), and write what was found.

    python -m engine verify-folder PATH [--json OUT] [--jobs N] [--time-limit S]
        [--memory-mb M] [--max-output-mb MB] [--min-tests K] [--trust-answers]

The layout PATH must have (one sub-folder per task; ``task_folder.py`` reads it):

    TASK/statement.md         statement; each sample pair in it is a test of kind "sample"
                              with its known output (a candidate failing one is never golden)
    TASK/inputs/*.txt         test inputs (a name starting with sample, edge, random or stress
                              gives the kind, which weighs the golden pick)
    TASK/tests/NN.in, NN.out  tests as archives ship them; .out answers score the rules, and
                              with --trust-answers they decide like samples
    TASK/expected/*.txt       answers by input name, used only to score the rules
    TASK/solutions/*.py|*.cpp candidates (Python 3 standard library, C++17)
    TASK/checker.py|.cpp      optional: ``checker INPUT OUTPUT ANSWER``, testlib exit codes
                              (0 accepted, 1 wrong answer, 2 presentation error, 3 the
                              checker's failure); a 2-argument checker works too
    TASK/include/**           optional: files for solutions and checker (testlib.h, data)
    TASK/limits.json          optional: {"time_limit_s", "memory_mb", "max_output_mb"} for
                              this task (over the command's flags)

Checker tasks: a checker needs the jury's answer, and we have none but the samples'. So each
clean output is first checked against itself (the checker validates its form and any
construction) and, on sample inputs, against the known output; that picks a provisional
golden solution. Then every output is checked against the provisional golden's output as the
answer. When the checker says a candidate beats that answer (exit 3, testlib's "participant
has a better answer"), the better candidate becomes the reference (at most 3 times); a
checker that still fails, crashes or times out rejects the task ("checker_failed"). Plain
majority voting (the reference rule) gets the self-checks only.

``--json OUT`` writes ``{"tasks": {TASK: {"labels", "votes", "agreement", "golden",
"reason", "verdicts", "samples", "compile_errors", "candidates", "limits"}}}`` (``-``: to
stdout, the summary then goes to stderr). INPUT is the input's stem (``tests/NN`` for an
archive test, ``statement_sample_K`` for a statement sample no input file equals), SOLUTION
the file name. ``votes[INPUT]`` is ``{"counts": {OUTPUT: runs}, "weights": {OUTPUT: vote
weight}, "voters", "tie", "split", "confident", "unusable", "source"}`` (an OUTPUT over 80
characters is named by its start and digest; checker tasks count ``accepted`` and
``rejected`` instead). ``verdicts`` are sandbox statuses: "ok"/"wrong" against the label or
the checker, else how the run failed. ``samples`` = {"in_statement": K, "problems": [...]};
``compile_errors`` = {SOLUTION: the compiler's message}; ``candidates`` = {SOLUTION:
{"eligible", "weight", "exposures", "selection_score", "biggest_input_cpu_s"}}. The summary
lists each task (samples, compile errors), and with expected/ or tests/ answers our rule's
and plain majority voting's accuracy side by side. Exit 0 when the folder was verified
(rejected tasks included), 2 on a bad folder (every problem listed), 1 when the sandbox is
unavailable.

Identical (program, input, limits) runs happen once per invocation (a shared ``cache`` dict
can carry them over calls). Outputs over 1 MiB are kept on disk, not in memory
(``outputs.py``), and compared by digest. Leaves out: interactive tasks, per-test limits.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.schema import VerifyConfig
from engine.verify.outputs import KeptOutput, OutputSpool
from engine.verify.samples import statement_samples
from engine.verify.sandbox import (
    MAX_FILES_BYTES,
    Limits,
    Program,
    RunResult,
    SandboxPool,
    SandboxUnavailable,
)
from engine.verify.task_folder import (
    FolderError,
    TaskFolder,
    input_kind,
    load_folder,
)
from engine.verify.voting import (
    Cell,
    TaskVerdict,
    output_digest,
    plain_majority,
    same_output,
    verify_task,
)

__all__ = [
    "FolderError", "FolderReport", "TaskFolder", "TaskReport", "TaskRuns", "accuracy",
    "add_arguments", "input_kind", "judge", "limits_for", "limits_from", "load_folder",
    "report_json", "run_folder", "run_from_args", "statement_samples", "summary_text",
    "verify_folder",
]

EXIT_BAD_FOLDER = 2
EXIT_NO_SANDBOX = 1
VOTE_KEY_CHARS = 80  # longer outputs are named by a digest in "votes"
CHECKER_FILES = ("input.txt", "output.txt", "answer.txt")
REFERENCE_TRIES = 3  # provisional goldens tried as the checker's answer

# A Python checker that raises is the checker's failure (testlib's 3), not a wrong answer:
# uncaught, Python would exit 1, which means "wrong answer".
CHECKER_PRELUDE = """\
import sys as _sys, traceback as _traceback
_source = {source!r}
try:
    exec(compile(_source, "checker.py", "exec"),
         {{"__name__": "__main__", "__file__": "checker.py"}})
except SystemExit:
    raise
except BaseException:
    _traceback.print_exc()
    _sys.exit(3)
"""


# --- Running: every solution on every input, then the checker on every clean output

@dataclass(frozen=True)
class Run:
    """What is kept of one sandbox run: status, output (whole or spooled), CPU, why."""

    status: str
    out: KeptOutput
    cpu_s: float
    exit_code: int | None
    signal: int | None
    detail: str
    stderr: str  # the last 2000 characters (a compiler's message for compile_error)

    def cell(self, **extra) -> Cell:
        if self.status != "ok":
            return Cell(self.status, cpu_s=self.cpu_s, **extra)
        return self.out.cell(self.status, self.cpu_s, **extra)


def _keep(result: RunResult, spool: OutputSpool, cfg: VerifyConfig) -> Run:
    out = spool.keep(result.stdout, cfg) if result.status == "ok" else KeptOutput("", 0)
    return Run(result.status, out, result.cpu_s, result.exit_code, result.signal,
               result.detail, result.stderr[-2000:])


def _run_all(pool: SandboxPool, jobs: list[tuple], limits: Sequence[Limits], cache: dict,
             spool: OutputSpool, cfg: VerifyConfig) -> list[Run]:
    """(program, stdin, files) jobs, each under its limits -> runs; identical ones once."""
    keys = [(program.key, hashlib.sha256(stdin).hexdigest(),
             hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest(), lim)
            for (program, stdin, files), lim in zip(jobs, limits, strict=True)]
    todo: dict[tuple, tuple[tuple, Limits]] = {}
    for key, job, lim in zip(keys, jobs, limits, strict=True):
        if key not in cache:
            todo.setdefault(key, (job, lim))
    by_limits: dict[Limits, list[tuple]] = {}
    for key, (job, lim) in todo.items():
        by_limits.setdefault(lim, []).append((key, job))
    for lim, items in by_limits.items():
        # Each output is kept (or spooled) as its run ends: only the runs in flight hold a
        # whole output in memory.
        kept = pool.run_many([job for _, job in items], lim,
                             keep=lambda result: _keep(result, spool, cfg))
        cache.update(zip((key for key, _ in items), kept, strict=True))
    return [cache[key] for key in keys]


@dataclass(frozen=True)
class RunStats:
    cells: int  # solution x input pairs, all tasks
    runs: int  # sandbox runs made (after de-duplication and the cache)
    checker_runs: int
    seconds: float


@dataclass
class TaskRuns:
    """One task's matrix: ``cells[solution][input]`` for our rule, ``plain_cells`` for the
    reference rule (they differ only for checker tasks), and per-solution notes."""

    cells: list[list[Cell]]
    plain_cells: list[list[Cell]]
    runs: list[list[Run]]
    compile_errors: dict[int, str] = field(default_factory=dict)
    checker_note: str | None = None  # how the checker's answers were settled


def limits_for(task: TaskFolder, base: Limits) -> Limits:
    """The task's limits.json over the command's limits."""
    own = task.limits
    return replace(base,
                   cpu_s=own.time_limit_s or base.cpu_s,
                   memory_mb=own.memory_mb or base.memory_mb,
                   output_bytes=int(own.max_output_mb * (1 << 20)) if own.max_output_mb
                   else base.output_bytes)


def _checker_limits(limits: Limits) -> Limits:
    # The checker reads whole outputs and may solve the task itself: more room than a run.
    return Limits(cpu_s=max(2 * limits.cpu_s, 10.0), memory_mb=max(limits.memory_mb, 1024),
                  output_bytes=1 << 20, file_bytes=1 << 20)


def _checker_program(task: TaskFolder) -> Program:
    checker = task.checker
    assert checker is not None
    source = checker.source if checker.language == "cpp" else \
        CHECKER_PRELUDE.format(source=checker.source)
    return Program(checker.language, source, files=checker.files, args=CHECKER_FILES)


def _checker_verdict(run: Run) -> tuple[bool | None, str | None, bool]:
    """A checker run -> (accepted, checker error, says the output beats the answer)."""
    if run.status == "ok":
        return True, None, False
    if run.status == "runtime_error" and run.exit_code in (1, 2):
        return False, None, False  # wrong answer / presentation error
    first = next((line for line in reversed(run.stderr.strip().splitlines()) if line.strip()),
                 "")
    if run.status == "runtime_error" and run.exit_code == 3:
        return None, f"checker failure (exit 3){': ' + first[:160] if first else ''}", True
    if run.status == "compile_error":
        return None, f"checker does not compile: {first[:160]}", False
    return None, f"checker {run.status}: {run.detail or first}"[:200], False


def _checker_files(task: TaskFolder, j: int, output: bytes, answer: bytes | None
                   ) -> dict[str, bytes] | Run:
    """A checker run's three files, or (too big for one run) the Run that says so."""
    files = {"input.txt": task.inputs[j], "output.txt": output,
             "answer.txt": output if answer is None else answer}
    size = sum(map(len, files.values()))
    if size > MAX_FILES_BYTES:
        return Run("checker_input_too_big", KeptOutput("", 0), 0.0, None, None,
                   f"input, output and answer take {size >> 20} MiB, over the "
                   f"{MAX_FILES_BYTES >> 20} MiB a checker run is given", "")
    return files


def _check_jobs(task: TaskFolder, grid: list[list[Run]], answers: dict[int, bytes | None],
                spool: OutputSpool) -> list[tuple[tuple[int, int], tuple | Run]]:
    """Checker jobs for every clean cell; ``answers[j]`` None: the output is its own answer."""
    program = _checker_program(task)
    jobs = []
    for c, row in enumerate(grid):
        for j, run in enumerate(row):
            if run.status != "ok":
                continue
            files = _checker_files(task, j, spool.read(run.out), answers.get(j))
            jobs.append(((c, j), files if isinstance(files, Run) else (program, b"", files)))
    return jobs


def _judge_with_checker(pool: SandboxPool, task: TaskFolder, grid: list[list[Run]],
                        limits: Limits, cache: dict, spool: OutputSpool, cfg: VerifyConfig
                        ) -> tuple[list[list[Cell]], list[list[Cell]], int, str]:
    """-> (our cells, plain's cells, checker runs, a note on the reference used)."""
    climits = _checker_limits(limits)
    known = {j: text.encode() for j, text in task.known.items()}
    n, m = len(grid), len(task.inputs)
    runs_made = 0

    def check(answers: dict[int, bytes | None]) -> dict[tuple[int, int], Run]:
        nonlocal runs_made
        jobs = _check_jobs(task, grid, answers, spool)
        runnable = [job for _, job in jobs if not isinstance(job, Run)]
        before = len(cache)
        results = iter(_run_all(pool, runnable, [climits] * len(runnable), cache, spool, cfg))
        runs_made += len(cache) - before
        return {cell: job if isinstance(job, Run) else next(results) for cell, job in jobs}

    def cells_from(checks: dict[tuple[int, int], Run], beaten: set | None = None):
        out = []
        for c in range(n):
            row = []
            for j in range(m):
                run = grid[c][j]
                if run.status != "ok":
                    row.append(run.cell())
                    continue
                accepted, error, beats = _checker_verdict(checks[(c, j)])
                if beats and beaten is not None:
                    beaten.add((c, j))
                row.append(run.cell(accepted=accepted, checker_error=error))
            out.append(row)
        return out

    # One check first: a checker that crashes or hangs would do it on every output, and
    # waiting out its time limit n x m times says nothing more.
    probe = next(((c, j) for c in range(n) for j in range(m) if grid[c][j].status == "ok"),
                 None)
    if probe is not None:
        files = _checker_files(task, probe[1], spool.read(grid[probe[0]][probe[1]].out), None)
        error = None
        if not isinstance(files, Run):
            run = _run_all(pool, [(_checker_program(task), b"", files)], [climits], cache,
                           spool, cfg)[0]
            _, error, _ = _checker_verdict(run)
            runs_made += 1
        if error is not None:
            broken = [[run_.cell(checker_error=error) if run_.status == "ok" else run_.cell()
                       for run_ in row] for row in grid]
            return broken, broken, runs_made, f"the checker failed on its first check: {error}"
    self_checks = check(dict.fromkeys(range(m)))
    plain_cells = cells_from(self_checks)
    first = check({j: known.get(j) for j in range(m)}) if known else self_checks
    cells = cells_from(first)
    provisional = verify_task(cells, task.kinds, cfg, known=task.known, checker=True,
                              seed=task.seed, sizes=task.sizes)
    reference = provisional.chosen
    if reference is None or provisional.reason and \
            provisional.reason.startswith("checker_failed"):
        return cells, plain_cells, runs_made, "no reference: the checker judged the " \
            "outputs against themselves and the samples' answers"
    tried: list[int] = []
    while True:
        tried.append(reference)
        answers = {j: known[j] if j in known else
                   (spool.read(grid[reference][j].out) if grid[reference][j].status == "ok"
                    else None) for j in range(m)}
        beaten: set[tuple[int, int]] = set()
        cells = cells_from(check(answers), beaten)
        better = sorted({c for c, j in beaten if j not in known and c != reference})
        better = [c for c in better if provisional.candidates[c].eligible and c not in tried]
        if not better or len(tried) >= REFERENCE_TRIES:
            break
        reference = better[0]  # its output beats the answer: it becomes the reference
    names = task.solution_names
    return cells, plain_cells, runs_made, (
        f"answers: the outputs of {names[reference]}" +
        (f" (after {', '.join(names[c] for c in tried[:-1])} was beaten)"
         if len(tried) > 1 else ""))


def run_folder(tasks: Sequence[TaskFolder], pool: SandboxPool, limits: Limits | None = None,
               cache: dict | None = None, *, cfg: VerifyConfig | None = None,
               spool: OutputSpool | None = None) -> tuple[list[TaskRuns], RunStats]:
    """Run everything; -> per task its runs and cells [solution][input], and what it took.

    ``limits`` are the command's (default: the config's); a task's limits.json overrides
    them. Keep ``spool`` open as long as the outputs of big runs are needed.
    """
    cfg = cfg or VerifyConfig()
    cache = {} if cache is None else cache
    spool = spool or OutputSpool()
    base = limits or limits_from(cfg)
    started, before = time.monotonic(), len(cache)
    task_limits = [limits_for(task, base) for task in tasks]
    jobs, job_limits = [], []
    for task, lim in zip(tasks, task_limits, strict=True):
        for program in task.solutions:
            for data in task.inputs:
                jobs.append((program, data, {}))
                job_limits.append(lim)
    flat = iter(_run_all(pool, jobs, job_limits, cache, spool, cfg))
    grids = [[[next(flat) for _ in task.inputs] for _ in task.solutions] for task in tasks]
    after_solutions = len(cache)
    checker_runs = 0
    out = []
    for task, grid, lim in zip(tasks, grids, task_limits, strict=True):
        compile_errors = {c: row[0].stderr.strip() or row[0].detail
                          for c, row in enumerate(grid)
                          if row and row[0].status == "compile_error"}
        if task.checker is None:
            cells = [[run.cell() for run in row] for row in grid]
            out.append(TaskRuns(cells, cells, grid, compile_errors))
            continue
        cells, plain_cells, made, note = _judge_with_checker(pool, task, grid, lim, cache,
                                                             spool, cfg)
        checker_runs += made
        out.append(TaskRuns(cells, plain_cells, grid, compile_errors, note))
    stats = RunStats(len(jobs), after_solutions - before, checker_runs,
                     time.monotonic() - started)
    return out, stats


# --- Judging and reporting

@dataclass(frozen=True)
class TaskReport:
    task: TaskFolder
    cells: list[list[Cell]]
    ours: TaskVerdict
    plain: TaskVerdict
    runs: TaskRuns | None = None


@dataclass(frozen=True)
class FolderReport:
    tasks: list[TaskReport]
    stats: RunStats | None
    isolation: str


def judge(tasks: Sequence[TaskFolder], matrices: Sequence[TaskRuns],
          cfg: VerifyConfig) -> list[TaskReport]:
    """Both rules on every task's cells (no runs: change ``cfg`` and judge again)."""
    reports = []
    for task, runs in zip(tasks, matrices, strict=True):
        checker = task.checker is not None
        ours = verify_task(runs.cells, task.kinds, cfg, known=task.known, checker=checker,
                           seed=task.seed, sizes=task.sizes)
        plain = plain_majority(runs.plain_cells, cfg, kinds=task.kinds, checker=checker)
        reports.append(TaskReport(task, runs.cells, ours, plain, runs))
    return reports


def verify_folder(path: str | Path, cfg: VerifyConfig | None = None, *,
                  jobs: int | None = None, limits: Limits | None = None,
                  pool: SandboxPool | None = None, cache: dict | None = None,
                  trust_answers: bool = False) -> FolderReport:
    """Load, run (a pool of ``jobs`` workers unless ``pool`` is given) and judge a folder."""
    cfg = cfg or VerifyConfig()
    tasks = load_folder(path, trust_answers=trust_answers)
    limits = limits or limits_from(cfg)
    own = pool is None
    pool = pool or SandboxPool(workers=jobs or cfg.jobs or os.cpu_count() or 1, limits=limits)
    try:
        with OutputSpool() as spool:
            matrices, stats = run_folder(tasks, pool, limits, cache, cfg=cfg, spool=spool)
            isolation = pool.isolation
            reports = judge(tasks, matrices, cfg)
    finally:
        if own:
            pool.close()
    return FolderReport(reports, stats, isolation)


def limits_from(cfg: VerifyConfig, time_limit_s: float | None = None,
                memory_mb: int | None = None, max_output_mb: float | None = None) -> Limits:
    output = int(max_output_mb * (1 << 20)) if max_output_mb else cfg.max_output_kb << 10
    return Limits(cpu_s=time_limit_s or cfg.time_limit_s, memory_mb=memory_mb or cfg.memory_mb,
                  output_bytes=output, file_bytes=max(64 << 20, output))


def vote_key(text: str, digest: str | None = None, size: int | None = None) -> str:
    """How an output is named in "votes": itself, or its start and digest when long."""
    if len(text) <= VOTE_KEY_CHARS and digest is None:
        return text
    digest = (digest or hashlib.sha256(text.encode()).hexdigest())[:12]
    return f"{text[:40]}... [sha256 {digest}, {size or len(text)} chars]"


def _class_key(cls) -> str:
    return vote_key(cls.text, cls.digest)


def _task_json(report: TaskReport) -> dict:
    task, verdict = report.task, report.ours
    names, solutions = task.input_names, task.solution_names
    votes: dict[str, dict] = {}
    for name, vote in zip(names, verdict.inputs, strict=True):
        if task.checker is not None:
            counts = {"accepted": vote.accepted or 0, "rejected": vote.rejected or 0}
            weights = None
        else:
            counts = {_class_key(k): k.count for k in vote.classes}
            weights = {_class_key(k): round(k.weight, 6) for k in vote.classes}
        votes[name] = {"counts": counts, **({"weights": weights} if weights is not None else {}),
                       "voters": vote.voters, "tie": vote.tie, "split": vote.split,
                       "confident": vote.confident, "unusable": vote.unusable,
                       "source": vote.source}
    runs = report.runs
    labels = {} if task.checker is not None else {
        name: (None if v.label is None else
               vote_key(v.label, v.label_digest) if v.label_digest else v.label)
        for name, v in zip(names, verdict.inputs, strict=True)}
    return {
        "labels": labels,
        "votes": votes,
        "agreement": {name: (None if v.agreement is None else round(v.agreement, 6))
                      for name, v in zip(names, verdict.inputs, strict=True)},
        "golden": solutions[verdict.golden] if verdict.golden is not None else None,
        "reason": verdict.reason,
        "verdicts": {solutions[c]: dict(zip(names, row, strict=True))
                     for c, row in enumerate(verdict.verdicts)},
        "samples": {"in_statement": task.samples, "problems": list(task.sample_problems)},
        "compile_errors": {solutions[c]: message for c, message in
                           sorted((runs.compile_errors if runs else {}).items())},
        "candidates": {solutions[c]: {
            "eligible": score.eligible, "weight": round(score.weight, 6),
            "exposures": score.exposures,
            "selection_score": None if score.selection_score is None
            else round(score.selection_score, 6),
            "biggest_input_cpu_s": None if score.biggest_input_cpu_s is None
            else round(score.biggest_input_cpu_s, 4)}
            for c, score in enumerate(verdict.candidates)},
        "limits": {k: v for k, v in vars(task.limits).items() if v is not None},
        **({"checker": runs.checker_note} if runs and runs.checker_note else {}),
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
        elif cell.digest is not None:
            if cell.digest != output_digest(answer, cfg):
                return False
        elif not same_output(cell.output, answer, cfg):
            return False
    return True


def _label_right(vote, answer: str, cfg: VerifyConfig) -> bool:
    if vote.label is None:
        return False
    if vote.label_digest is not None:
        return vote.label_digest == output_digest(answer, cfg)
    return same_output(vote.label, answer, cfg)


def accuracy(report: FolderReport, cfg: VerifyConfig | None = None) -> dict | None:
    """Label accuracy and golden correctness of both rules over tasks with answers."""
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
                    vote = verdict.inputs[j]
                    labels_total += 1
                    labelled += vote.label is not None
                    labels_right += _label_right(vote, answer, cfg)
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


def _first_line(message: str) -> str:
    line = next((line for line in message.splitlines() if "error" in line.lower()),
                message.strip().splitlines()[0] if message.strip() else "")
    return line.strip()[:160]


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
                     f"; {r.task.samples} statement samples; "
                     f"{sum(x.split for x in v.inputs)} split")
        for problem in r.task.sample_problems:
            lines.append(f"  statement: {problem}")
        for c, message in sorted((r.runs.compile_errors if r.runs else {}).items()):
            lines.append(f"  {r.task.solution_names[c]}: compile error: "
                         f"{_first_line(message)}")
    if report.stats is not None:
        s = report.stats
        lines.append(f"runs: {s.runs} solution runs for {s.cells} cells, {s.checker_runs} "
                     f"checker runs, {s.seconds:.1f} s ({report.isolation})")
    acc = accuracy(report, cfg)
    if acc is not None:
        o, p = acc["ours"], acc["plain"]
        lines.append(f"against known answers ({acc['tasks']} tasks):   ours   | plain majority")
        lines.append(f"  label accuracy        {_pct(o['label_accuracy']):>7} | "
                     f"{_pct(p['label_accuracy']):>7}  ({o['labels_right']}/{o['labels_total']}"
                     f" vs {p['labels_right']}/{p['labels_total']})")
        lines.append(f"  golden fully correct  {_pct(o['golden_correct']):>7} | "
                     f"{_pct(p['golden_correct']):>7}  (ours accepted {o['accepted']}, "
                     f"precision {_pct(o['golden_precision'])})")
    return "\n".join(lines)


# --- Command line (engine/__main__.py adds these arguments to its verify-folder command)

FOLDER_HELP = __doc__[__doc__.index("    TASK/statement.md"):__doc__.index("\nChecker tasks:")]


def add_arguments(p: argparse.ArgumentParser) -> None:
    defaults = VerifyConfig()
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = "folder layout:\n" + FOLDER_HELP
    p.add_argument("path", help="folder with one sub-folder per task")
    p.add_argument("--json", metavar="OUT", help="write the JSON report here ('-': stdout)")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="sandboxed runs at once (default: every core)")
    p.add_argument("--time-limit", type=float, default=defaults.time_limit_s, metavar="S",
                   help=f"CPU seconds per run (default {defaults.time_limit_s:g}; a task's "
                   "limits.json wins)")
    p.add_argument("--memory-mb", type=int, default=defaults.memory_mb, metavar="MB",
                   help=f"memory per run in MB (default {defaults.memory_mb})")
    p.add_argument("--max-output-mb", type=float, default=defaults.max_output_kb / 1024,
                   metavar="MB", help="output per run in MB; more is our limit, not the "
                   f"solution's fault (default {defaults.max_output_kb / 1024:g})")
    p.add_argument("--min-tests", type=int, default=defaults.min_labelled_tests, metavar="K",
                   help="reject tasks with fewer labelled (and confident) tests "
                   f"(default {defaults.min_labelled_tests})")
    p.add_argument("--trust-answers", action="store_true",
                   help="tests/NN.out answers decide like statement samples (else they only "
                   "score the rules)")


def run_from_args(args: argparse.Namespace) -> int:
    problems = []
    if args.jobs is not None and args.jobs < 1:
        problems.append(f"--jobs must be >= 1 (got {args.jobs})")
    if not args.time_limit > 0:
        problems.append(f"--time-limit must be > 0 (got {args.time_limit})")
    if not args.memory_mb > 0:
        problems.append(f"--memory-mb must be > 0 (got {args.memory_mb})")
    if not args.max_output_mb > 0:
        problems.append(f"--max-output-mb must be > 0 (got {args.max_output_mb})")
    if not 2 <= args.min_tests <= 1000:
        problems.append(f"--min-tests must be between 2 and 1000 (got {args.min_tests})")
    if problems:
        print("error: " + "; ".join(problems), file=sys.stderr)
        return EXIT_BAD_FOLDER
    cfg = VerifyConfig(min_labelled_tests=args.min_tests)
    try:
        report = verify_folder(args.path, cfg, jobs=args.jobs,
                               limits=limits_from(cfg, args.time_limit, args.memory_mb,
                                                  args.max_output_mb),
                               trust_answers=args.trust_answers)
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
