"""Stage ``verify``: dual verification of every pending task in the sandbox (SYNTHSMITH.md §6).

Run it alone:

    python -m engine run --config assets/presets/smoke-cpu.yaml --run-dir /tmp/run1 --stages verify

or as shards, on one node or many (each process takes the tasks with ``task_id % N == I``):

    python -m engine run --config C --run-dir D --stages verify --shard 0/2 &
    python -m engine run --config C --run-dir D --stages verify --shard 1/2 &

(or ``python -m engine.stages.verify --config ... --run-dir ...``, which adds ``--stages verify``).

For each task with status ``pending``, candidates = its solutions with status ``ok`` and code,
tests = all its tests, plus every sample pair of its statement (``engine.verify.samples``) that
no stored test equals: those run and decide with their known output like any sample (a
candidate failing a sample is never golden) but are not written as tests (``verify_meta``
counts them). Every candidate runs on every test input in a ``SandboxPool``
(``verify.jobs`` workers, 0 = every core this process may use; limits from ``VerifyConfig``;
identical sources run once). ``engine.verify.voting.verify_task`` turns the run matrix into
labels, votes, agreement, tie/split flags, a golden solution and a reject reason. Written back
in ONE transaction per task, so a task is either untouched or fully decided:

- a verdict per (candidate, test): status "ok"/"wrong" against the label (or the sandbox
  status: time_limit, memory_limit, runtime_error, ...; "ok" where the input has no label),
  CPU seconds, peak memory (KB) and ``output_hash`` = sha256[:16] of the output in the form
  it was compared in (``voting.comparison_form``), NULL when the run was not clean;
- each test's ``expected_output`` = its label (NULL when unlabelled) and, in its ``meta``,
  ``verify`` = {votes (class sizes, heaviest first), voters, agreement, tie, split,
  label_source (vote / known / golden), role (selection / holdout / null)};
- the task's status (accepted / rejected), reason, mean agreement and golden solution id,
  and ``verify_meta`` (``TaskDetail.verify_meta``, shown by the Data panel): samples in the
  statement / run as tests / added, each candidate's compiler message, and per candidate
  whether it passed every sample, its vote weight and its CPU time on the largest input.

Outputs over 1 MiB are voted by digest and kept on local disk, not in memory
(``engine.verify.outputs``); a label is stored whole all the same.

Known outputs: a test whose ``expected_output`` was stored before verification (the
statement's samples, a seed's tests) is passed to the vote as known; labels this stage wrote
are never mistaken for known ones (``meta.verify`` marks them). Tasks whose candidates are all
rejected are rejected "no_valid_candidates"; tasks with no solutions or no tests yet stay
pending (counted in the summary) — an upstream stage has not finished them.

Shards (N > 1): the run's store is opened read-only and every write above goes to the shard's
own file ``data/shards/verify.<I>of<N>.sqlite`` (``engine.store.ShardOutbox``, keyed by the
store's task / solution / test ids) instead, one transaction per task as well; the runner
merges the N files into the store after the last shard completes (``engine/runner.py``), so
the store only shows the results then. Unsharded runs write the store directly.

Resuming: decided tasks (accepted/rejected) are skipped, so a killed or interrupted run redoes
only tasks it had not written; a shard also skips tasks decided in its own file. SIGTERM: the stage finishes the current task, writes it and
returns ``{"interrupted": true, ...}``.

Events: a progress event per task (tasks decided; ``ok``: accepted, ``rejected``: rejected), a
``verdict_summary`` sample per task, and metrics per task (step = tasks decided by this
process): ``verify/tests_per_s`` (test inputs verified per second of this run),
``verify/runs_per_s`` (sandbox runs per second), ``verify/accept_rate``, ``verify/agreement``
(mean over decided tasks with an agreement), ``verify/timeouts`` (time_limit runs so far) and
``verify/status/<status>`` (runs per status so far).

Summary returned (lands in state.json; a shard's under ``verify@<I>of<N>``)::

    {"shard": "0/1", "considered": 12, "decided": 12, "accepted": 10, "rejected": 2,
     "reasons": {"low_agreement": 1, "no_valid_candidates": 1}, "already_decided": 0,
     "waiting_for_solutions": 0, "waiting_for_tests": 0, "runs": 480, "cells": 960,
     "statuses": {"ok": 900, "wrong": 40, "time_limit": 20}, "samples": 14,
     "samples_added": 2, "compile_errors": 1, "seconds": 31.2, "isolation": "bwrap",
     "interrupted": false}

Leaves out: checker-judged tasks (the store has no checker column yet; ``verify-folder``
runs checkers) and per-task limits (one ``VerifyConfig`` for all). A multi-rank launch without
``--shard`` is refused rather than verifying every task once per rank.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.__main__ import run_stage_alone
from engine.context import StageError
from engine.schema import VerifyConfig
from engine.stages.shards import shard_stores
from engine.store import (
    PageCursor,
    ShardOutbox,
    Store,
    TaskDetail,
    TaskQuery,
    Verdict,
)
from engine.verify.folder import limits_from
from engine.verify.outputs import KeptOutput, OutputSpool
from engine.verify.samples import parse_samples
from engine.verify.sandbox import Limits, Program, SandboxPool, SandboxUnavailable
from engine.verify.voting import Cell, TaskVerdict, output_digest, verify_task

if TYPE_CHECKING:
    from engine.context import StageContext

# Shardable (engine.schema.SHARDABLE_STAGES): the runner's --shard I/N applies: tasks with task_id % N == I
PAGE = 500
LANGUAGES = ("python", "cpp")


# ---------------------------------------------------------------------------------------------
# Which tasks: pending ones of this shard, in id order


@dataclass
class _Plan:
    todo: list[int] = field(default_factory=list)
    waiting_for_solutions: int = 0
    waiting_for_tests: int = 0


def pending_tasks(store: Store, shard_index: int = 0, shard_count: int = 1) -> _Plan:
    """Ids of this shard's pending tasks that have solutions and tests, and what waits."""
    plan = _Plan()
    cursor: PageCursor | None = None
    while True:
        page = store.query_tasks(TaskQuery(status="pending", sort="id", limit=PAGE,
                                           after=cursor, with_total=False))
        for row in page.rows:
            if row.id % shard_count != shard_index:
                continue
            if row.n_solutions == 0:
                plan.waiting_for_solutions += 1
            elif row.n_tests == 0:
                plan.waiting_for_tests += 1
            else:
                plan.todo.append(row.id)
        if page.next_cursor is None:
            return plan
        cursor = page.next_cursor


# ---------------------------------------------------------------------------------------------
# One task: run the matrix, vote, write back


def _known_outputs(task: TaskDetail) -> dict[int, str]:
    """Tests whose output was known before verification (not a label this stage wrote)."""
    return {j: t.expected_output for j, t in enumerate(task.tests)
            if t.expected_output is not None and "verify" not in t.meta}


@dataclass
class TaskTests:
    """What one task is verified on: its stored tests, then statement samples no stored
    test equals (run and voted with their known output, not written to the store)."""

    inputs: list[str]
    kinds: list[str]
    known: dict[int, str]
    stored: int  # the first ``stored`` inputs are the task's tests
    in_statement: int  # sample pairs the statement shows


def task_tests(task: TaskDetail) -> TaskTests:
    inputs = [t.input for t in task.tests]
    kinds = [t.kind for t in task.tests]
    known = _known_outputs(task)
    keys = [" ".join(text.split()) for text in inputs]
    pairs = parse_samples(task.statement or "").pairs
    for sample in pairs:
        key = " ".join(sample.input.split())
        if not key:
            continue
        # A statement's sample is the one answer candidates cannot outvote: it is a test
        # whether or not the tests stage stored it.
        j = next((j for j, k in enumerate(keys) if k == key), None)
        if j is None:
            inputs.append(sample.input.strip("\n") + "\n")
            keys.append(key)
            kinds.append("sample")
            known[len(inputs) - 1] = sample.output
        elif j not in known:
            known[j] = sample.output
            kinds[j] = "sample"
    return TaskTests(inputs, kinds, known, len(task.tests), len(pairs))


@dataclass
class _TaskRuns:
    cells: list[list[Cell]]
    memory_kb: list[list[int | None]]
    runs: int  # sandbox runs made (distinct source x input)
    kept: list[list[KeptOutput | None]] = field(default_factory=list)  # for label texts
    compile_errors: dict[int, str] = field(default_factory=dict)  # candidate -> message


def run_candidates(pool: SandboxPool, sources: Sequence[tuple[str, str]],
                   inputs: Sequence[str], limits: Limits, spool: OutputSpool | None = None,
                   cfg: VerifyConfig | None = None) -> _TaskRuns:
    """Each (language, code) on each input; identical sources run once. Outputs over 1 MiB
    go to ``spool`` (kept as start + digest in memory)."""
    cfg = cfg or VerifyConfig()
    spool = spool or OutputSpool()
    distinct: dict[tuple[str, str], int] = {}
    for src in sources:
        if src[0] in LANGUAGES:
            distinct.setdefault(src, len(distinct))
    programs = [Program(lang, code) for lang, code in distinct]
    def keep(r):  # as each run ends: only the runs in flight hold a whole output
        return (r.status, spool.keep(r.stdout, cfg) if r.status == "ok" else None, r.cpu_s,
                r.peak_memory_kb, r.stderr if r.status == "compile_error" else "")

    grid = pool.run_matrix(programs, inputs, limits, keep) if programs and inputs else []
    cells, memory, kept, compile_errors = [], [], [], {}
    for k, src in enumerate(sources):
        if src not in distinct:  # a language the sandbox cannot run never votes
            cells.append([Cell("compile_error")] * len(inputs))
            memory.append([None] * len(inputs))
            kept.append([None] * len(inputs))
            compile_errors[k] = f"the sandbox runs {' and '.join(LANGUAGES)}, not {src[0]!r}"
            continue
        row = grid[distinct[src]]
        cells.append([out.cell(status, cpu) if out is not None else Cell(status, cpu_s=cpu)
                      for status, out, cpu, _, _ in row])
        memory.append([mem for _, _, _, mem, _ in row])
        kept.append([out for _, out, _, _, _ in row])
        if row and row[0][0] == "compile_error":
            compile_errors[k] = row[0][4].strip()
    return _TaskRuns(cells, memory, len(programs) * len(inputs), kept, compile_errors)


def _test_meta(verdict: TaskVerdict, j: int) -> dict[str, Any]:
    vote = verdict.inputs[j]
    role = "selection" if j in verdict.selection else "holdout" if j in verdict.holdout \
        else None
    return {"votes": [k.count for k in vote.classes], "voters": vote.voters,
            "agreement": None if vote.agreement is None else round(vote.agreement, 6),
            "tie": vote.tie, "split": vote.split, "confident": vote.confident,
            "unusable": vote.unusable, "label_source": vote.source, "role": role}


def _label_text(verdict: TaskVerdict, j: int, runs: _TaskRuns, tests: TaskTests,
                spool: OutputSpool) -> str | None:
    """The label as the store keeps it: whole, even when it was voted by digest."""
    vote = verdict.inputs[j]
    if vote.label is None or vote.label_digest is None:
        return vote.label
    if vote.source == "known":
        return tests.known[j]
    member = vote.label_members[0]
    out = runs.kept[member][j]
    return spool.read_text(out).strip() if out is not None else vote.label


def verify_meta(task: TaskDetail, candidates: Sequence[int], runs: _TaskRuns,
                verdict: TaskVerdict, tests: TaskTests) -> dict[str, Any]:
    """What the Data panel shows of a task's verification, beyond verdicts and labels."""
    ids = [task.solutions[c].id for c in candidates]
    return {
        "samples": {"in_statement": tests.in_statement,
                    "as_tests": sum(k == "sample" for k in tests.kinds),
                    "added": len(tests.inputs) - tests.stored},
        "compile_errors": {str(ids[k]): message[:4000]
                           for k, message in sorted(runs.compile_errors.items())},
        "candidates": {str(ids[k]): {
            "eligible": score.eligible,
            "samples_passed": f"{sum(verdict.verdicts[k][j] == 'ok' for j in tests.known)}"
                              f"/{len(tests.known)}",
            "weight": round(score.weight, 6),
            "exposures": score.exposures,
            "biggest_input_cpu_s": None if score.biggest_input_cpu_s is None
            else round(score.biggest_input_cpu_s, 4)}
            for k, score in enumerate(verdict.candidates)},
        "unusable_tests": sum(v.unusable for v in verdict.inputs),
    }


def write_result(store: Store | ShardOutbox, task: TaskDetail, candidates: Sequence[int],
                 runs: _TaskRuns, verdict: TaskVerdict, cfg: VerifyConfig, tests: TaskTests,
                 spool: OutputSpool) -> None:
    """Verdicts, labels and the task's outcome, in one transaction (``tests`` and ``spool``
    as ``verify_one`` used them)."""
    with store.transaction():
        store.add_verdicts(
            Verdict(task.solutions[c].id, test.id, verdict.verdicts[k][j],
                    runs.cells[k][j].cpu_s, runs.memory_kb[k][j],
                    _hash(runs.cells[k][j], cfg))
            for k, c in enumerate(candidates) for j, test in enumerate(task.tests))
        for j, test in enumerate(task.tests):
            meta = {**test.meta, "verify": _test_meta(verdict, j)}
            store.add_test(task.id, test.idx, input=test.input, kind=test.kind,
                           source=test.source,
                           expected_output=_label_text(verdict, j, runs, tests, spool),
                           weight=test.weight, meta=meta)
        golden = task.solutions[candidates[verdict.golden]].id \
            if verdict.golden is not None else None
        agreement = verdict.mean_agreement
        store.set_task_result(task.id, "accepted" if verdict.accepted else "rejected",
                              reason=verdict.reason,
                              agreement=None if agreement is None else min(1.0, agreement),
                              golden_solution_id=golden,
                              meta=verify_meta(task, candidates, runs, verdict, tests))


def _hash(cell: Cell, cfg: VerifyConfig) -> str | None:
    """sha256[:16] of a clean output's comparison form (its digest when spooled)."""
    if cell.status != "ok":
        return None
    return (cell.digest or output_digest(cell.output, cfg))[:16]


def reason_key(reason: str | None) -> str | None:
    """``"low_agreement: mean 0.40 < 0.50"`` -> ``"low_agreement"`` (for counting)."""
    return None if reason is None else reason.split(":", 1)[0]


# ---------------------------------------------------------------------------------------------
# The stage


@dataclass
class _Tally:
    decided: int = 0
    accepted: int = 0
    agreement_sum: float = 0.0
    agreement_n: int = 0
    tests: int = 0
    runs: int = 0
    cells: int = 0
    already_decided: int = 0
    samples: int = 0  # sample tests run (stored or from the statement)
    samples_added: int = 0  # statement samples no stored test equals
    compile_errors: int = 0
    reasons: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)

    def count(self, verdict: TaskVerdict | None, reason: str | None, runs: _TaskRuns | None,
              n_tests: int) -> None:
        self.decided += 1
        self.accepted += reason is None
        if reason is not None:
            self.reasons[reason_key(reason)] += 1
        if verdict is not None and verdict.mean_agreement is not None:
            self.agreement_sum += verdict.mean_agreement
            self.agreement_n += 1
        if runs is not None:
            self.tests += n_tests
            self.runs += runs.runs
            for row in verdict.verdicts if verdict is not None else ():
                self.cells += len(row)
                self.statuses.update(row)

    def metrics(self, seconds: float) -> dict[str, float]:
        out = {
            "verify/tests_per_s": self.tests / seconds if seconds > 0 else 0.0,
            "verify/runs_per_s": self.runs / seconds if seconds > 0 else 0.0,
            "verify/accept_rate": self.accepted / self.decided if self.decided else 0.0,
            "verify/timeouts": float(self.statuses["time_limit"]),
        }
        if self.agreement_n:
            out["verify/agreement"] = self.agreement_sum / self.agreement_n
        out.update({f"verify/status/{s}": float(n) for s, n in sorted(self.statuses.items())})
        return out


def _open_pool(cfg: VerifyConfig, limits: Limits) -> SandboxPool:
    workers = cfg.jobs or len(os.sched_getaffinity(0)) or os.cpu_count() or 1
    try:
        return SandboxPool(workers=workers, limits=limits)
    except SandboxUnavailable as e:
        raise StageError(f"the verify stage runs generated code only in the sandbox, which "
                         f"cannot start here: {e}") from None


def verify_one(pool: SandboxPool, task: TaskDetail, cfg: VerifyConfig, limits: Limits,
               spool: OutputSpool | None = None
               ) -> tuple[list[int], _TaskRuns, TaskVerdict, TaskTests] | None:
    """Run and vote one task; None when it has no candidate to run."""
    candidates = [c for c, s in enumerate(task.solutions) if s.status == "ok" and s.code]
    if not candidates:
        return None
    tests = task_tests(task)
    sources = [(task.solutions[c].language, task.solutions[c].code or "") for c in candidates]
    runs = run_candidates(pool, sources, tests.inputs, limits, spool, cfg)
    verdict = verify_task(runs.cells, tests.kinds, cfg, known=tests.known, seed=task.id,
                          sizes=[len(text.encode()) for text in tests.inputs])
    return candidates, runs, verdict, tests


def run(ctx: StageContext) -> dict:
    cfg: VerifyConfig = ctx.config.verify
    with shard_stores(ctx, "verify") as (store, out):
        return _run(ctx, cfg, store, out)


def _run(ctx: StageContext, cfg: VerifyConfig, store: Store, out: Store | ShardOutbox) -> dict:
    ev, log = ctx.events, ctx.log
    i, n = ctx.shard_index, ctx.shard_count
    plan = pending_tasks(store, i, n)
    already = 0
    if out is not store:  # a rerun of this shard: skip what its file has decided
        decided = out.decided_tasks()
        already = sum(t in decided for t in plan.todo)
        plan.todo = [t for t in plan.todo if t not in decided]
    total = len(plan.todo)
    log.info("shard %d/%d: %d pending tasks to verify (%d wait for solutions, %d for tests)",
             i, n, total, plan.waiting_for_solutions, plan.waiting_for_tests)
    if plan.waiting_for_solutions or plan.waiting_for_tests:
        ev.log(f"{plan.waiting_for_solutions} pending tasks have no solutions and "
               f"{plan.waiting_for_tests} no tests yet; they stay pending", level="warning")
    ev.progress(0, total, unit="tasks verified")
    tally = _Tally(already_decided=already)
    limits = limits_from(cfg)  # the same limits verify-folder applies
    started = time.monotonic()
    interrupted = False
    isolation = None
    if total:
        with _open_pool(cfg, limits) as pool, OutputSpool() \
                as spool:
            isolation = pool.isolation
            for done, task_id in enumerate(plan.todo, start=1):
                if ctx.stop_requested():
                    interrupted = True
                    break
                task = store.get_task(task_id)
                if task is None or task.status != "pending":
                    tally.already_decided += 1  # decided meanwhile by another process
                    continue
                outcome = verify_one(pool, task, cfg, limits, spool)
                tests = None
                if outcome is None:
                    out.set_task_result(task.id, "rejected", reason="no_valid_candidates")
                    tally.count(None, "no_valid_candidates", None, len(task.tests))
                    verdict = None
                else:
                    candidates, runs, verdict, tests = outcome
                    write_result(out, task, candidates, runs, verdict, cfg, tests, spool)
                    tally.count(verdict, verdict.reason, runs, len(task.tests))
                    tally.samples += sum(k == "sample" for k in tests.kinds)
                    tally.samples_added += len(tests.inputs) - tests.stored
                    tally.compile_errors += len(runs.compile_errors)
                _emit(ev, tally, task, verdict, done, total, time.monotonic() - started,
                      tests, runs if outcome is not None else None)
    seconds = time.monotonic() - started
    log.info("shard %d/%d: decided %d tasks (%d accepted) in %.1f s%s", i, n, tally.decided,
             tally.accepted, seconds, ", interrupted" if interrupted else "")
    return {
        "shard": f"{i}/{n}", "considered": total, "decided": tally.decided,
        "accepted": tally.accepted, "rejected": tally.decided - tally.accepted,
        "reasons": dict(tally.reasons), "already_decided": tally.already_decided,
        "waiting_for_solutions": plan.waiting_for_solutions,
        "waiting_for_tests": plan.waiting_for_tests, "runs": tally.runs, "cells": tally.cells,
        "statuses": dict(tally.statuses), "samples": tally.samples,
        "samples_added": tally.samples_added, "compile_errors": tally.compile_errors,
        "seconds": round(seconds, 3), "isolation": isolation, "interrupted": interrupted,
    }


def _emit(ev: Any, tally: _Tally, task: TaskDetail, verdict: TaskVerdict | None, done: int,
          total: int, seconds: float, tests: TaskTests | None = None,
          runs: _TaskRuns | None = None) -> None:
    ev.progress(done, total, unit="tasks verified", ok=tally.accepted,
                rejected=tally.decided - tally.accepted)
    ev.metric(tally.decided, tally.metrics(seconds))
    ev.sample("verdict_summary", {
        "task_id": task.id, "title": task.title,
        "accepted": verdict is not None and verdict.accepted,
        "reason": verdict.reason if verdict is not None else "no_valid_candidates",
        "agreement": verdict.mean_agreement if verdict is not None else None,
        "golden": verdict.golden if verdict is not None else None,
        "candidates": len(verdict.candidates) if verdict is not None else 0,
        "tests": len(task.tests),
        "labelled": sum(v.label is not None for v in verdict.inputs) if verdict else 0,
        "samples": sum(k == "sample" for k in tests.kinds) if tests else 0,
        "samples_added": len(tests.inputs) - tests.stored if tests else 0,
        "compile_errors": len(runs.compile_errors) if runs else 0,
    }, step=tally.decided)


def main(argv: Sequence[str] | None = None) -> int:
    """Run this stage alone through the engine CLI (``run ... --stages verify``)."""
    return run_stage_alone("verify", argv)


if __name__ == "__main__":
    sys.exit(main())
