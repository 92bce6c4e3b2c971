"""Stage ``solutions``: a long-CoT model writes N candidate solutions per task; keep those
whose answer holds exactly one complete code block that parses (SYNTHSMITH.md §4).

Run it alone (after ``tasks``)::

    python -m engine run --config assets/presets/smoke-cpu.yaml --run-dir /tmp/run1 --stages solutions

or as shards (``--shard I/N``: tasks with ``task_id % N == I``; each shard writes
``data/shards/solutions.<I>of<N>.sqlite``, the last one merges them into the store).

A candidate cut off at ``max_tokens`` is asked again (the same draw) with twice the budget, up
to what the endpoint's context leaves after the prompt, ``solutions.truncation_retries`` times;
one still cut off is rejected ``truncated: ...`` naming the budget or the limit it hit.

A task made from a seed problem (``seeds.as_tasks``) also gets the seed's reference solution as
candidate ``candidates_per_task`` (Python, no reasoning), written with the others.

For every pending task without candidates, ``solutions.candidates_per_task`` requests from
assets/prompts/solutions.md, candidate ``k`` in language ``solutions.languages[k % L]`` with
``sample_index`` k (separately cached, and seeded ``run.seed + k`` where the backend takes a
seed). Each answer goes through ``engine.synth.code_extract.extract_solution``: the code of its
one block, or the reason it has none (``no_code_block``, ``multiple_code_blocks: 2``,
``syntax_error: line 3: ...``, ``unterminated_code_block``, ``truncated: ...``,
``wrong_language: cpp``, ...). A call refused for the request itself (HTTP 400: e.g. a prompt
over the context) becomes a rejected candidate ``llm_http_400: ...``. Every candidate is stored
(``solutions``: code or NULL, status ``ok`` / ``rejected``, the reason) with its reasoning (the
server's ``reasoning_content``, ``<think>`` text and the prose around the code), which the SFT
export puts in ``<think>`` tags.

A task's candidates are written in one transaction, so a task has all of them or none; a
rerun skips tasks with candidates, and answers a killed run received come from the cache. A call
that fails in transport after the client's retries leaves its whole task for the rerun (the
other answers are cached), and the stage fails at the end saying how many.

Summary: ``tasks_with_candidates``, ``candidates``, ``kept``, ``kept_by_language`` and
``rejects`` (by reason code) count what the store holds for the shard's tasks over all
attempts; ``considered``, ``deferred`` and ``this_attempt`` are this attempt's.

Events: progress (tasks), metrics ``synth/solutions_done`` (tasks with candidates),
``synth/candidates_ok_rate``, ``synth/truncated``, ``synth/rejects/<code>``, ``llm/...``; a
``sample`` event (kind ``solution``) with them, at most every 2 s. Tasks stream through the
LLM (``synth_common.run_pipeline_items``) and are written in id order.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from engine.__main__ import run_stage_alone
from engine.context import StageError
from engine.prompts import render_prompt
from engine.stages.shards import shard_stores
from engine.stages.synth_common import (
    Done,
    Pacer,
    SynthTally,
    deferred_error,
    is_transient,
    stream_stage_items,
)
from engine.store import PageCursor, TaskQuery
from engine.synth.code_extract import extract_solution

if TYPE_CHECKING:
    from engine.context import StageContext
    from engine.schema import SolutionsConfig
    from engine.store import StageWriter, Store

STAGE = "solutions"
# Shardable (engine.schema.SHARDABLE_STAGES): the runner's --shard I/N applies: tasks with task_id % N == I
LANGUAGE_NAMES = {"python": ("Python 3", "python"), "cpp": ("C++17", "cpp")}


def solution_messages(statement: str, language: str) -> list[dict[str, str]]:
    name, fence = LANGUAGE_NAMES[language]
    text = render_prompt("solutions", statement=statement.strip(), language=name, fence=fence)
    return [{"role": "user", "content": text}]


def tasks_without_solutions(store: Store, shard_index: int = 0, shard_count: int = 1) -> list[int]:
    """Ids of this shard's pending tasks that have no candidates yet, in id order."""
    ids: list[int] = []
    cursor: PageCursor | None = None
    while True:
        page = store.query_tasks(TaskQuery(status="pending", sort="id", limit=500,
                                           after=cursor, with_total=False))
        ids += [r.id for r in page.rows
                if r.id % shard_count == shard_index and r.n_solutions == 0]
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


def candidate_totals(store: Store, out: StageWriter, i: int, n: int) -> dict:
    """What the store (and, for a shard, its own file) holds for this shard's tasks, over
    all attempts of the stage."""
    per_task = store.solution_tally(i, n)
    if out is not store:
        per_task.update(out.solution_tally(i, n))
    candidates = kept = 0
    by_lang, rejects = Counter(), Counter()
    for rows in per_task.values():
        for lang, status, code, k in rows:
            candidates += k
            if status == "ok":
                kept += k
                by_lang[lang] += k
            else:
                rejects[code] += k
    return {"tasks_with_candidates": len(per_task), "candidates": candidates, "kept": kept,
            "kept_by_language": dict(by_lang), "rejects": dict(rejects)}


def run(ctx: StageContext) -> dict:
    with shard_stores(ctx, STAGE) as (store, out):
        return _run(ctx, ctx.config.solutions, store, out)


def _run(ctx: StageContext, cfg: SolutionsConfig, store: Store, out: StageWriter) -> dict:
    from engine.llm import ChatRequest

    ev, log = ctx.events, ctx.log
    i, n = ctx.shard_index, ctx.shard_count
    todo = tasks_without_solutions(store, i, n)
    if out is not store:  # a rerun of this shard: skip what its file holds
        mine = out.tasks_with_solutions()
        todo = [t for t in todo if t not in mine]
    log.info("shard %d/%d: %d pending tasks without candidates", i, n, len(todo))
    pacer = Pacer(ev, len(todo), "tasks")  # processed: some are left for a rerun
    tally, kept_by_lang, count = SynthTally(), Counter(), Counter()
    k_total, langs = cfg.candidates_per_task, cfg.languages
    example: dict | None = None

    # Per task in flight: its requests, the answers so far, which candidates the last round
    # asked, and how many budget raises it has had.
    asks: dict[int, tuple[list[Any], list[Any], list[int], list[int]]] = {}

    def first(task_id: int) -> list[Any]:
        task = store.get_task(task_id)
        requests = [ChatRequest.for_stage(cfg, solution_messages(task.statement,
                                                                 langs[k % len(langs)]),
                                          sample_index=k, seed=ctx.config.run.seed,
                                          tag=f"{task_id}:{k}") for k in range(k_total)]
        asks[task_id] = (requests, [None] * k_total, list(range(k_total)), [0])
        return list(requests)

    def then(task_id: int, results: list[Any]) -> list[Any] | Done:
        requests, answers, asked, rounds = asks[task_id]
        again = []
        for k, r in zip(asked, results, strict=True):
            answers[k] = r
            if not (r.ok and r.truncated) or rounds[0] >= cfg.truncation_retries:
                continue
            # Cut off: the same draw with twice the budget, up to what the endpoint's
            # context leaves after the prompt (the same budget would be cut again).
            sent = r.max_tokens_sent or requests[k].max_tokens
            limit = r.max_tokens_limit
            if limit is None or sent < limit:
                requests[k] = replace(requests[k], max_tokens=min(2 * sent, limit or 2 * sent))
                again.append(k)
        if again:
            asked[:] = again
            rounds[0] += 1
            return [requests[k] for k in again]
        del asks[task_id]
        return Done(answers)

    def commit(task_id: int, answers: list[Any]) -> None:
        nonlocal example
        count["seen"] += 1
        if any(not r.ok and is_transient(r.error) for r in answers):
            count["deferred"] += 1  # the whole task waits for the rerun; answers are cached
        else:
            rows = []
            for k, r in enumerate(answers):
                lang = langs[k % len(langs)]
                if not r.ok:
                    rows.append((k, lang, None, None,
                                 f"llm_{r.error}: {r.error_detail or 'no detail'}"))
                    continue
                count["truncated"] += r.truncated
                x = extract_solution(r.text, lang, reasoning=r.reasoning, truncated=r.truncated)
                reason = x.reject_reason
                if reason and r.truncated:  # name the budget it was cut at, and the limit
                    sent, limit = r.max_tokens_sent, r.max_tokens_limit
                    reason += (f" (cut at the {limit} tokens the endpoint's context leaves "
                               "after this prompt)" if limit and sent and sent >= limit else
                               f" (cut at max_tokens={sent})" if sent else "")
                rows.append((k, lang, x.code, x.reasoning or None, reason))
            reference = store.seed_reference(task_id)
            if reference is not None:  # seeds.as_tasks: the seed's own solution is a candidate
                # No reasoning: none was written, and the SFT export would train on any text.
                rows.append((k_total, "python", reference, None, None))
            with out.transaction():
                for k, lang, code, reasoning, reason in rows:
                    out.add_solution(task_id, k, code=code, language=lang, reasoning=reasoning,
                                     status="rejected" if reason else "ok", reject_reason=reason)
            for k, lang, code, _, reason in rows:
                if reason:
                    tally.reject(reason)
                else:
                    kept_by_lang[lang] += 1
                    example = example or {"task": task_id, "candidate": k, "language": lang,
                                          "code": code[:1500]}
            count["with_candidates"] += 1
            count["candidates"] += len(rows)
            count["kept"] += sum(reason is None for *_, reason in rows)
        if pacer.tick(count["seen"], lambda: {
                "synth/solutions_done": float(count["with_candidates"]),
                "synth/candidates_ok_rate": count["kept"] / count["candidates"]
                if count["candidates"] else 0.0,
                "synth/truncated": float(count["truncated"]),
                **{f"synth/rejects/{c}": float(v) for c, v in sorted(tally.rejects.items())}}) \
                and example:
            ev.sample("solution", example, step=count["seen"])
            example = None

    outcome, errors = stream_stage_items(ctx, cfg, STAGE, todo, requests_per_item=k_total,
                                         first=first, then=then, commit=commit)
    log.info("shard %d/%d: %d tasks got %d candidates (%d kept), %d without answers%s", i, n,
             count["with_candidates"], count["candidates"], count["kept"], count["deferred"],
             ", interrupted" if outcome.interrupted else "")
    summary = {"shard": f"{i}/{n}", **candidate_totals(store, out, i, n),
               "considered": len(todo), "deferred": count["deferred"],
               "this_attempt": {"tasks_with_candidates": count["with_candidates"],
                                "candidates": count["candidates"], "kept": count["kept"],
                                "kept_by_language": dict(kept_by_lang),
                                "truncated": count["truncated"]},
               "interrupted": outcome.interrupted}
    if count["deferred"] and not outcome.interrupted:
        raise StageError(deferred_error(STAGE, count["deferred"], len(todo), "tasks", errors))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Run this stage alone through the engine CLI (``run ... --stages solutions``)."""
    return run_stage_alone(STAGE, argv)


if __name__ == "__main__":
    sys.exit(main())
