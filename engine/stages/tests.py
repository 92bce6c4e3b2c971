"""Stage ``tests``: test inputs for every task that has none yet (SYNTHSMITH.md §5).

Run it alone:

    python -m engine run --config assets/presets/smoke-cpu.yaml --run-dir /tmp/run1 --stages tests

or as shards, on one node or many (each process takes the tasks with ``task_id % N == I``):
``... --stages tests --shard 0/2`` and ``--shard 1/2``. A shard reads the run's store
read-only and writes its tests to its own file ``data/shards/tests.<I>of<N>.sqlite`` (keyed by
(task_id, idx)); the last shard to complete merges the files into the store
(``engine/runner.py``), and a rerun of a shard skips tasks that have tests in its file.

For each pending task without tests, in batches of ``BATCH`` tasks, the endpoint named by
``tests.llm`` is asked (one batch of requests, through the run's response cache):

- once for ``tests.direct_inputs`` direct inputs (prompt assets/prompts/tests_direct.md);
- ``tests.generators`` times for a generator program, the kinds taken in turn from
  ``tests.generator_kinds`` (tests_generator.md); generators of the same kind are separate
  samples (``sample_index``);
- with ``tests.use_validator``, once for a validator (tests_validator.md).

Generators run in the sandbox ``tests.seeds_per_generator`` times each (stdin
``"<SEED> <KIND>"``, ``tests.generator_time_limit_s``, stdout capped at ``tests.max_input_kb``);
the validator drops inputs it rejects; the statement's samples come first with their known
outputs; then de-duplication, the size cap and ``tests.max_tests_per_task``
(``engine/verify/test_synthesis.py`` says how). A task's tests are written in one transaction,
so a task has all its tests or none; a rerun skips tasks that have tests, and repeats no
completed LLM call (the cache). SIGTERM: the current batch is finished and written, then the
stage returns ``{"interrupted": true, ...}``. A task that got no usable input stays without
tests (counted as ``no_inputs``; verify leaves it pending).

A call that fails in transport after the client's retries (endpoint down, dropped connections,
timeouts, 429/5xx) leaves its task unrecorded, not written with the statement's samples alone
(which would make it look done to every rerun): the stage goes on with the other tasks, then
fails naming how many were left (``synth_common.deferred_error``), and a rerun asks only the
calls that failed (the answers that arrived are cached). A call refused for the request itself
(HTTP 400) counts in ``llm_errors`` and the task is made from its other answers.

Events: progress per batch (tasks processed; ``ok``: with tests, ``rejected``: no usable
input), metrics ``tests/per_task`` (mean tests written per task), ``tests/generator_ok_rate``
(share of generator runs that were clean), ``tests/duplicates``, ``tests/invalid`` (rejected
by the validator), ``tests/too_large``, ``tests/unparsed`` (answers without a usable block),
``tests/llm_errors`` and ``tests/deferred`` (tasks left for a rerun).

Summary (``tasks_with_tests`` and ``tests``: what the store holds for the shard's tasks over
all attempts; the rest is this attempt's)::

    {"shard": "0/1", "tasks_with_tests": 12, "tests": 180, "considered": 12, "deferred": 0,
     "this_attempt": {"tasks_with_tests": 12, "tests": 180, "no_inputs": 0,
                      "kinds": {"sample": 12, "edge": 40, ...}, "llm_errors": 0, ...},
     "interrupted": false}

Leaves out: C++ generators.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from engine.__main__ import run_stage_alone
from engine.context import StageError
from engine.stages.shards import shard_stores
from engine.stages.synth_common import deferred_error, is_transient
from engine.store import PageCursor, ShardOutbox, Store, TaskDetail, TaskQuery
from engine.verify.sandbox import Limits, SandboxPool, SandboxUnavailable
from engine.verify.test_synthesis import (
    Generator,
    TestInput,
    direct_messages,
    generator_messages,
    input_key,
    parse_direct_inputs,
    parse_program,
    run_generators,
    sample_tests,
    select_tests,
    validate_inputs,
    validator_messages,
)

if TYPE_CHECKING:
    from engine.context import StageContext
    from engine.schema import TestsConfig
    from engine.store import StageWriter, Store

# Shardable (engine.schema.SHARDABLE_STAGES): the runner's --shard I/N applies: tasks with task_id % N == I
BATCH = 32  # tasks per LLM batch and per stop check


# ---------------------------------------------------------------------------------------------
# Which tasks: pending ones of this shard without tests


def tasks_without_tests(store: Store, shard_index: int = 0, shard_count: int = 1) -> list[int]:
    """Ids of this shard's pending tasks that have no tests yet, in id order."""
    ids: list[int] = []
    cursor: PageCursor | None = None
    while True:
        page = store.query_tasks(TaskQuery(status="pending", sort="id", limit=500,
                                           after=cursor, with_total=False))
        ids += [r.id for r in page.rows if r.id % shard_count == shard_index and r.n_tests == 0]
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


# ---------------------------------------------------------------------------------------------
# One batch of tasks


def _requests(cfg: TestsConfig, task: TaskDetail) -> list[tuple[str, Any]]:
    """(role, ChatRequest) for one task: "direct", "gen:<index>:<kind>", "validator"."""
    from engine.llm import ChatRequest

    out = []
    if cfg.direct_inputs:
        out.append(("direct", ChatRequest.for_stage(
            cfg, direct_messages(task.statement, cfg.direct_inputs), tag=f"{task.id}:direct")))
    kinds = cfg.generator_kinds
    for g in range(cfg.generators):
        kind = kinds[g % len(kinds)]
        out.append((f"gen:{g}:{kind}", ChatRequest.for_stage(
            cfg, generator_messages(task.statement, kind), sample_index=g // len(kinds),
            tag=f"{task.id}:gen{g}")))
    if cfg.use_validator:
        out.append(("validator", ChatRequest.for_stage(
            cfg, validator_messages(task.statement), tag=f"{task.id}:validator")))
    return out


def _tests_for(task: TaskDetail, answers: list[tuple[str, Any]], pool: SandboxPool,
               cfg: TestsConfig, limits: Limits, tally: Counter) -> list[TestInput]:
    candidates = sample_tests(task.statement)
    generators, validator = [], None
    for role, result in answers:
        if not result.ok:  # refused for the request itself (a 400): asking again won't help
            tally["llm_errors"] += 1
            continue
        if role == "direct":
            found = parse_direct_inputs(result.text)
            tally["unparsed"] += not found
            candidates += [TestInput(data, kind, "direct") for kind, data in found]
        elif role.startswith("gen:"):
            _, index, kind = role.split(":")
            source = parse_program(result.text)
            if source is None:
                tally["unparsed"] += 1
            else:
                generators.append(Generator(source, kind, int(index)))
        elif role == "validator":
            validator = parse_program(result.text)
            tally["unparsed"] += validator is None
    if generators:
        made, statuses = run_generators(pool, generators, cfg.seeds_per_generator, limits)
        tally["generator_runs"] += sum(statuses.values())
        tally["generator_ok"] += statuses["ok"]
        candidates += made
    if validator is not None:
        candidates, dropped = validate_inputs(pool, validator, candidates, limits)
        tally["invalid"] += dropped
    chosen = select_tests(candidates, cfg.max_tests_per_task, cfg.max_input_kb << 10,
                          seen=(input_key(t.input) for t in task.tests))
    tally["duplicates"] += chosen.duplicates
    tally["too_large"] += chosen.too_large
    tally["over_cap"] += chosen.over_cap
    return chosen.kept


def _write(store: Store | ShardOutbox, task: TaskDetail, tests: Sequence[TestInput]) -> None:
    start = max((t.idx for t in task.tests), default=-1) + 1
    with store.transaction():
        for k, t in enumerate(tests):
            store.add_test(task.id, start + k, input=t.input, kind=t.kind, source=t.source,
                           expected_output=t.expected_output, meta=t.meta)


# ---------------------------------------------------------------------------------------------
# The stage


def _open_pool(workers: int, limits: Limits) -> SandboxPool:
    try:
        return SandboxPool(workers=workers, limits=limits)
    except SandboxUnavailable as e:
        raise StageError(f"the tests stage runs generator programs only in the sandbox, which "
                         f"cannot start here: {e}") from None


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.tests
    with shard_stores(ctx, "tests") as (store, out):
        return _run(ctx, cfg, store, out)


def _run(ctx: StageContext, cfg: TestsConfig, store: Store, out: StageWriter) -> dict:
    from engine.llm import make_client, run_batch

    ev, log = ctx.events, ctx.log
    i, n = ctx.shard_index, ctx.shard_count
    todo = tasks_without_tests(store, i, n)
    if out is not store:  # a rerun of this shard: skip tasks its file has tests for
        done_here = out.tasks_with_tests()
        todo = [t for t in todo if t not in done_here]
    log.info("shard %d/%d: %d pending tasks without tests", i, n, len(todo))
    ev.progress(0, len(todo), unit="tasks")  # processed: with tests, without, or deferred
    tally: Counter = Counter()
    kinds: Counter = Counter()
    done = with_tests = no_inputs = written = 0
    interrupted = False
    errors: Counter = Counter()
    if todo:
        limits = Limits(cpu_s=cfg.generator_time_limit_s, memory_mb=1024,
                        output_bytes=cfg.max_input_kb << 10)
        workers = cfg.resources.cpus_per_task or len(os.sched_getaffinity(0)) or 1
        cache_name = "llm_responses.sqlite" if n == 1 else f"llm_responses.tests.{i}of{n}.sqlite"
        client = make_client(ctx.config.llms[cfg.llm], name=cfg.llm, cache_dir=ctx.run.cache_dir,
                             cache_name=cache_name, events=ev)
        try:
            with _open_pool(workers, limits) as pool:
                for start in range(0, len(todo), BATCH):
                    if ctx.stop_requested():
                        interrupted = True
                        break
                    tasks = [t for t in (store.get_task(tid) for tid in todo[start:start + BATCH])
                             if t is not None and not t.tests]
                    plan = [(task, _requests(cfg, task)) for task in tasks]
                    results = iter(run_batch(client, [r for _, reqs in plan for _, r in reqs]))
                    for task, reqs in plan:
                        answers = [(role, next(results)) for role, _ in reqs]
                        if any(not r.ok and is_transient(r.error) for _, r in answers):
                            # No answer after the client's retries (endpoint down, dropped
                            # connections): writing the samples alone would make the task
                            # look done, and no rerun would ask again. Leave it unrecorded;
                            # its answers that did arrive are cached.
                            tally["deferred"] += 1
                            continue
                        tests = _tests_for(task, answers, pool, cfg, limits, tally)
                        if not tests:
                            no_inputs += 1
                            ev.log(f"task {task.id}: no usable test input", level="warning")
                            continue
                        _write(out, task, tests)
                        with_tests += 1
                        written += len(tests)
                        kinds.update(t.kind for t in tests)
                    done = min(start + BATCH, len(todo))
                    ev.progress(done, len(todo), unit="tasks", ok=with_tests,
                                rejected=no_inputs)
                    ev.metric(done, _metrics(tally, with_tests, written))
        finally:
            errors = client.stats.errors.copy()
            client.close()
    deferred = tally["deferred"]
    log.info("shard %d/%d: %d tasks got %d tests, %d got none, %d without an answer%s", i, n,
             with_tests, written, no_inputs, deferred, ", interrupted" if interrupted else "")
    per_task = store.test_counts(i, n)
    if out is not store:
        per_task.update(out.test_counts(i, n))
    summary = {"shard": f"{i}/{n}", "tasks_with_tests": len(per_task),
               "tests": sum(per_task.values()), "considered": len(todo),
               "deferred": deferred,
               "this_attempt": {
                   "tasks_with_tests": with_tests, "tests": written, "no_inputs": no_inputs,
                   "kinds": dict(kinds),
                   **{k: tally[k] for k in ("llm_errors", "unparsed", "generator_runs",
                                            "generator_ok", "invalid", "duplicates",
                                            "too_large", "over_cap")}},
               "interrupted": interrupted}
    if deferred and not interrupted:
        raise StageError(deferred_error("tests", deferred, len(todo), "tasks", errors))
    return summary


def _metrics(tally: Counter, with_tests: int, written: int) -> dict[str, float]:
    runs = tally["generator_runs"]
    return {
        "tests/per_task": written / with_tests if with_tests else 0.0,
        "tests/generator_ok_rate": tally["generator_ok"] / runs if runs else 0.0,
        "tests/duplicates": float(tally["duplicates"]),
        "tests/invalid": float(tally["invalid"]),
        "tests/too_large": float(tally["too_large"]),
        "tests/unparsed": float(tally["unparsed"]),
        "tests/llm_errors": float(tally["llm_errors"]),
        "tests/deferred": float(tally["deferred"]),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run this stage alone through the engine CLI (``run ... --stages tests``)."""
    return run_stage_alone("tests", argv)


if __name__ == "__main__":
    sys.exit(main())
