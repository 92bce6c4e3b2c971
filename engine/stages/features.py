"""Stage ``features``: an LLM reads each seed (problem + one solution) and names the
competitive-programming features it uses, in 11 categories; they are merged into the run's
feature tree with frequencies (SYNTHSMITH.md §1).

Run it alone (after ``seeds``)::

    python -m engine run --config assets/presets/smoke-cpu.yaml --run-dir /tmp/run1 --stages features

or as shards (``--shard I/N``: seeds with ``seed_id % N == I``; each shard writes
``data/shards/features.<I>of<N>.sqlite`` and the last one merges them into the store).

For each seed without a record, one request from
assets/prompts/features_extract.md (the seed's first solution cut to
``features.max_solution_chars``). The answer must be a JSON object with at least one of the
categories (``engine.synth.feature_tree.CATEGORIES``); invalid JSON is repaired where that
invents nothing (``engine.synth.json_repair``) and otherwise asked again as a new sample up to
``features.json_retries`` times; so is an answer without a usable feature name
(``check_extraction``: ``no_categories``, ``empty``). The extraction is normalised (``extraction_to_tree``:
canonical category names, lower-case feature names, free text and unknown keys dropped and
counted) and every node of it is linked to the seed, so a feature's ``frequency`` is the number
of seeds that mention it or anything under it. The merge of all seeds is the tree the store
holds: same path, same node; a list item met later as a key simply gains children.

What each seed came to is a ``synth_items`` row (stage ``features``, item ``seed:<id>``):
``ok`` with the summary, repairs and counts, or ``rejected`` with the reason and the answer
(``extract_invalid: ...``, ``extract_truncated: ...``, ``extract_empty: ...``). A seed and
its record are written in one transaction, so a kill loses at most the seeds in flight, whose
received answers are in the response cache: the rerun repeats no completed call and skips recorded
seeds. A call that fails in transport after the client's retries leaves its seed without a
record; the stage then fails at the end with a message saying how many, and a rerun asks only
for those.

Summary: ``ok``, ``rejected`` and ``rejects`` (by reason code) count the store's records over
all attempts (for a shard, of its seeds); ``considered``, ``deferred`` and ``this_attempt``
are this attempt's.

Events: progress (seeds processed, with ``ok`` and ``rejected`` counts), metrics
``synth/seeds_done``, ``synth/features_per_seed``, ``synth/json_fail_rate``,
``synth/json_repaired``, ``synth/rejects/<code>``, and the client's ``llm/...`` metrics, at
most every 2 s; a ``sample`` event (kind ``features``) with them.

Seeds stream through the LLM (``synth_common.run_pipeline_items``): on an HTTP endpoint a
slow answer holds up only its own seed, and records are written in seed order, so a rerun
makes the same ids.

Leaves out: merging near-synonyms ("bfs" vs "breadth-first search" stay two features).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.__main__ import run_stage_alone
from engine.context import StageError
from engine.prompts import render_prompt
from engine.stages.shards import shard_stores
from engine.stages.synth_common import (
    Done,
    JSONAnswer,
    Pacer,
    SynthTally,
    deferred_error,
    item_totals,
    json_round,
    recorded_items,
    stream_stage_items,
)
from engine.store import Seed
from engine.synth.feature_tree import (
    CATEGORIES,
    extraction_to_tree,
    node_paths,
    normalize_category,
)

if TYPE_CHECKING:
    from engine.context import StageContext
    from engine.schema import FeaturesConfig
    from engine.store import StageWriter, Store

STAGE = "features"
# Shardable (engine.schema.SHARDABLE_STAGES): the runner's --shard I/N applies: seeds with seed_id % N == I


def seed_item(seed_id: int) -> str:
    return f"seed:{seed_id}"


def extraction_messages(seed: Seed, max_solution_chars: int) -> list[dict[str, str]]:
    solution = seed.solutions[0] if seed.solutions else "(no solution given)"
    if len(solution) > max_solution_chars:
        solution = solution[:max_solution_chars] + "\n# ... (cut)"
    text = render_prompt("features_extract", problem=seed.problem.strip(),
                         solution=solution.strip())
    return [{"role": "user", "content": text}]


def check_extraction(value: Any) -> str | None:
    """An extraction must name at least one category (else it answered something else) and
    give at least one usable feature name under them (``{"algorithms": {}}`` says nothing)."""
    if not any(normalize_category(k) for k in value):
        keys = ", ".join(map(str, list(value)[:6])) or "none"
        return (f"no_categories: the object has none of the {len(CATEGORIES)} categories "
                f"(keys: {keys})")
    if not node_paths(extraction_to_tree(value)[0]):
        return "empty: no usable feature name in the answer"
    return None


def _todo(store: Store, done: set[str], i: int, n: int) -> list[Seed]:
    return [s for s in store.iter_seeds() if s.id % n == i and seed_item(s.id) not in done]


@dataclass
class _Work:
    seed: Seed
    request: Any
    answer: JSONAnswer = field(default_factory=JSONAnswer)


def run(ctx: StageContext) -> dict:
    with shard_stores(ctx, STAGE) as (store, out):
        return _run(ctx, ctx.config.features, store, out)


def _run(ctx: StageContext, cfg: FeaturesConfig, store: Store, out: StageWriter) -> dict:
    from engine.llm import ChatRequest

    ev, log = ctx.events, ctx.log
    i, n = ctx.shard_index, ctx.shard_count
    done = recorded_items(store, out, STAGE)
    todo = _todo(store, done, i, n)
    log.info("shard %d/%d: %d seeds to read (%d already recorded)", i, n, len(todo), len(done))
    pacer = Pacer(ev, len(todo), "seeds")  # processed; kept / rejected are told apart
    tally = SynthTally()
    count = Counter()
    example: dict | None = None

    def first(w: _Work) -> list[Any]:
        return [w.request]

    def then(w: _Work, results: list[Any]) -> list[Any] | Done:
        retry = json_round(w.answer, w.request, results[0], retries=cfg.json_retries,
                           tally=tally, check=check_extraction)
        return [retry] if retry is not None else Done(None)

    def commit(w: _Work, _: None) -> None:
        nonlocal example
        a, item = w.answer, seed_item(w.seed.id)
        count["seen"] += 1
        if a.llm_failed:
            count["deferred"] += 1
        else:
            tree, report = extraction_to_tree(a.value) if a.ok else ({}, None)
            paths = node_paths(tree)  # not empty when ok: check_extraction saw to that
            if a.error is not None:
                reason = f"extract_{a.error}"
                out.record_item(STAGE, item, "rejected", reason=reason, raw=a.raw,
                                detail={"samples": a.samples})
                tally.reject(reason)
                count["rejected"] += 1
            else:
                detail = {"summary": report.summary, "features": len(paths),
                          "repairs": list(a.repairs), "unknown_keys": report.unknown_keys,
                          "dropped": report.dropped, "samples": a.samples}
                with out.transaction():
                    out.add_seed_features(w.seed.id, paths)
                    out.record_item(STAGE, item, "ok", detail=detail)
                count["ok"] += 1
                count["linked"] += len(paths)
                example = example or {"seed": w.seed.id, "summary": report.summary,
                                      "features": ["/".join(p) for p in paths[:20]]}
        if pacer.tick(count["seen"], lambda: {
                "synth/seeds_done": float(count["ok"]),
                "synth/features_per_seed": count["linked"] / count["ok"] if count["ok"] else 0.0,
                **tally.metrics()}, ok=count["ok"], rejected=count["rejected"]) and example:
            ev.sample("features", example, step=count["seen"])
            example = None

    work = [_Work(s, ChatRequest.for_stage(cfg, extraction_messages(s, cfg.max_solution_chars),
                                           seed=ctx.config.run.seed, tag=seed_item(s.id)))
            for s in todo]
    outcome, errors = stream_stage_items(ctx, cfg, STAGE, work, requests_per_item=1,
                                         first=first, then=then, commit=commit)
    log.info("shard %d/%d: %d seeds read, %d rejected, %d without an answer%s", i, n,
             count["ok"], count["rejected"], count["deferred"],
             ", interrupted" if outcome.interrupted else "")
    mine = None if n == 1 else {seed_item(s.id) for s in store.iter_seeds() if s.id % n == i}
    totals, rejects = item_totals(store, out, STAGE, mine)
    summary = {"shard": f"{i}/{n}", "ok": totals["ok"], "rejected": totals["rejected"],
               "rejects": dict(rejects), "considered": len(todo),
               "deferred": count["deferred"],
               "this_attempt": {"ok": count["ok"], "rejected": count["rejected"],
                                "features_linked": count["linked"],
                                "json_fail_rate": tally.metrics()["synth/json_fail_rate"]},
               "interrupted": outcome.interrupted}
    if count["deferred"] and not outcome.interrupted:
        raise StageError(deferred_error(STAGE, count["deferred"], len(todo), "seeds", errors))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Run this stage alone through the engine CLI (``run ... --stages features``)."""
    return run_stage_alone(STAGE, argv)


if __name__ == "__main__":
    sys.exit(main())
