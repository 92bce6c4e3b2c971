"""Stage ``evolve``: grow the feature tree by breadth/depth evolution of sampled subtrees
(SYNTHSMITH.md §2).

Run it alone (after ``features``)::

    python -m engine run --config assets/presets/smoke-cpu.yaml --run-dir /tmp/run1 --stages evolve

``evolve.steps`` rounds, one after another. Round ``s`` (numbered from 1) loads the tree from
the store, draws ``evolve.samples_per_step`` subtrees with ``item_rng(run.seed, "evolve", s)``
(``sample_subtree``: ``evolve.branching`` children per depth, uniform or frequency-weighted
with ``evolve.weight_temperature``; the programming-language branch is never sampled), and
asks for each one at once (assets/prompts/evolve.md: at least ``evolve.min_new_siblings`` new
siblings per node, finer features under the leaves). Answers must be JSON objects; the usual
repair and ``json_retries`` apply. An expansion may only add under the categories it was
given (other roots are dropped and counted) and at most ``MAX_NEW_PER_SAMPLE`` nodes. One
that adds nothing under them (``{}``, the subtree sent back unchanged) is empty
(``check_expansion``): asked again like invalid JSON, and if it stays empty recorded in the
round as ``expand_empty: ...``, never as an "ok" expansion. All
expansions of the round are merged into the tree and written in ONE transaction
(``Store.add_evolution_round``): the new features (``created_step`` = s), the round's
``evolution_steps`` row (the sampled subtrees, what came back for each, the count of new
features) and lineage step -> every sampled feature (``sampled``).

Resumption: a round with a row is done. A killed round left nothing in the store, and since
the tree it starts from is unchanged it draws the same subtrees again and gets its answers
from the response cache. A round where a call failed in transport after the client's retries
is not written (a partial round could not be redone the same way): the stage stops there
with a message, and the rerun repeats only the failed calls.

Shards: round ``s`` samples the tree that round ``s - 1`` made, so one chain of rounds is
sequential; the work inside a round is one concurrent batch (the endpoint's
``max_concurrency``). With ``--shard I/N`` the rounds are split into N independent chains:
shard I runs rounds ``s`` with ``s % N == I``, each on the store's tree plus its own earlier
rounds (kept in ``data/shards/evolve.<I>of<N>.sqlite``), and the merge adds every chain's
rounds in step order. The total work is the same ``evolve.steps`` rounds; the chains do not
see each other's additions, so the result differs from one process's (it is reproducible).

Summary: ``rounds`` and ``new_features`` count what the store (and a shard's own file) holds
for this chain's rounds over all attempts; ``this_attempt`` has this attempt's counts, its
dropped nodes and its rejections by reason code (each round's ``expansion`` keeps them all).

Events: progress (rounds), metrics per round ``synth/evolve_new_features``,
``synth/features_total``, ``synth/evolve_off_tree`` (nodes dropped outside the sample's
categories), ``synth/json_fail_rate``, ``synth/rejects/<code>``, ``llm/...``; a ``sample``
event (kind ``evolve``) with the round's first expansion.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from engine.__main__ import run_stage_alone
from engine.context import StageError
from engine.prompts import render_prompt
from engine.stages.shards import shard_stores
from engine.stages.synth_common import SynthTally, ask_json, deferred_error, open_client
from engine.synth.feature_tree import (
    Tree,
    item_rng,
    json_to_tree,
    merge_trees,
    new_paths,
    node_paths,
    normalize_category,
    sample_subtree,
    tree_from_paths,
    tree_to_json,
)

if TYPE_CHECKING:
    from engine.context import StageContext
    from engine.schema import EvolveConfig
    from engine.store import StageWriter, Store

STAGE = "evolve"
# Shardable (engine.schema.SHARDABLE_STAGES): --shard I/N: N independent chains (see the module docstring)
MAX_NEW_PER_SAMPLE = 256  # a runaway answer must not flood the tree


def evolve_messages(subtree: Tree, min_new_siblings: int) -> list[dict[str, str]]:
    text = render_prompt("evolve", subtree=json.dumps(tree_to_json(subtree), indent=2),
                         min_new_siblings=min_new_siblings)
    return [{"role": "user", "content": text}]


def load_tree(store: Store) -> tuple[Tree, dict[tuple[str, ...], int]]:
    rows = store.feature_rows()
    return tree_from_paths(p for p, _ in rows), {p: f for p, f in rows}


def restrict_expansion(expansion: Tree, sample: Tree) -> tuple[Tree, int]:
    """The expansion under the sample's own categories, capped. -> (tree, nodes dropped)."""
    kept: Tree = {}
    dropped = 0
    for key, sub in expansion.items():
        root = normalize_category(key) or key
        if root in sample:
            kept = merge_trees(kept, {root: sub})
        else:
            dropped += 1 + len(node_paths(sub))
    extra = new_paths(sample, kept)
    if len(extra) > MAX_NEW_PER_SAMPLE:
        dropped += len(extra) - MAX_NEW_PER_SAMPLE
        kept = merge_trees(sample, tree_from_paths(extra[:MAX_NEW_PER_SAMPLE]))
    return kept, dropped


def check_expansion(sample: Tree):
    """The check for one sample's answer: it must add at least one feature under the
    sample's categories. ``{}`` or the subtree sent back unchanged is an empty expansion,
    asked again (``json_retries``) and, if it stays empty, rejected with this reason."""
    def check(value: Any) -> str | None:
        kept, dropped = restrict_expansion(json_to_tree(value), sample)
        if new_paths(sample, kept):
            return None
        where = (f"its {dropped} node(s) are outside the sampled categories" if dropped
                 else "nothing new under the sampled subtree")
        return f"empty: the expansion adds no feature ({where})"
    return check


def run(ctx: StageContext) -> dict:
    with shard_stores(ctx, STAGE) as (store, out):
        return _run(ctx, ctx.config.evolve, store, out)


def _run(ctx: StageContext, cfg: EvolveConfig, store: Store, out: StageWriter) -> dict:
    from engine.llm import ChatRequest

    ev, log = ctx.events, ctx.log
    i, n = ctx.shard_index, ctx.shard_count
    mine = [s for s in range(1, cfg.steps + 1) if s % n == i]  # this chain's rounds
    recorded = set(store.evolution_step_ids())
    if out is not store:
        recorded |= set(out.evolution_step_ids())
    tally = SynthTally()
    ev.progress(sum(s in recorded for s in mine), len(mine), unit="rounds")
    added = rounds = off_tree = 0
    interrupted = False
    client = None
    try:
        for done_rounds, step in enumerate(mine, 1):
            if step in recorded:
                continue
            if ctx.stop_requested():
                interrupted = True
                break
            tree, freq = load_tree(store)
            if not tree:
                return _nothing_to_do(ctx, store)
            if out is not store:  # this chain's own rounds, not merged yet
                tree = merge_trees(tree, tree_from_paths(out.evolved_paths()))
            rng = item_rng(ctx.config.run.seed, STAGE, step)
            samples = [s for s in (sample_subtree(tree, cfg.branching, rng, frequencies=freq,
                                                  mode=cfg.sampling,
                                                  temperature=cfg.weight_temperature)
                                   for _ in range(cfg.samples_per_step)) if s]
            if client is None:
                client = open_client(ctx, cfg, STAGE)
            # Spaced sample indices: a JSON retry of sample k (index + 1, + 2, ...) must not
            # be the cached answer of sample k + 1 when two samples drew the same subtree.
            reqs = [ChatRequest.for_stage(cfg, evolve_messages(s, cfg.min_new_siblings),
                                          sample_index=k * (cfg.json_retries + 1),
                                          seed=ctx.config.run.seed, tag=f"step:{step}:{k}")
                    for k, s in enumerate(samples)]
            answers = ask_json(client, reqs, retries=cfg.json_retries, tally=tally,
                               checks=[check_expansion(s) for s in samples])
            failed = sum(a.llm_failed for a in answers)
            if failed:
                raise StageError(deferred_error(STAGE, failed, len(answers),
                                                f"expansions of round {step}",
                                                client.stats.errors)
                                 + "; the rounds before it are saved")
            grown, outcomes, step_dropped = tree, [], 0
            for sample, a in zip(samples, answers, strict=True):
                if not a.ok:
                    tally.reject(f"expand_{a.error}")
                    outcomes.append({"ok": False, "reason": f"expand_{a.error}",
                                     "samples": a.samples, "raw": (a.raw or "")[:2000]})
                    continue
                kept, dropped = restrict_expansion(json_to_tree(a.value), sample)
                step_dropped += dropped
                fresh = new_paths(grown, kept)
                grown = merge_trees(grown, kept)
                outcomes.append({"ok": True, "new": len(fresh), "dropped": dropped,
                                 "repairs": list(a.repairs), "samples": a.samples,
                                 "tree": tree_to_json(kept)})
            fresh_paths = new_paths(tree, grown)
            sampled_paths = sorted({p for s in samples for p in node_paths(s)})
            out.add_evolution_round(step=step, sampled=[tree_to_json(s) for s in samples],
                                    expansion=outcomes, new_paths=[list(p) for p in fresh_paths],
                                    sampled_paths=[list(p) for p in sampled_paths])
            rounds += 1
            added += len(fresh_paths)
            off_tree += step_dropped
            total_features = len(node_paths(tree)) + len(fresh_paths)
            ev.progress(done_rounds, len(mine), unit="rounds")
            ev.metric(step, {"synth/evolve_new_features": float(len(fresh_paths)),
                             "synth/features_total": float(total_features),
                             "synth/evolve_off_tree": float(off_tree), **tally.metrics()})
            first = next((o for o in outcomes if o["ok"]), None)
            if first:
                ev.sample(STAGE, {"step": step, "expansion": first["tree"]}, step=step)
            log.info("round %d: %d subtrees, %d new features (%d in the tree)", step,
                     len(samples), len(fresh_paths), total_features)
    finally:
        if client is not None:
            client.close()
    made = store.evolution_new_features()  # every attempt's rounds, not only this one's
    if out is not store:
        made.update(out.evolution_new_features())
    chain = set(mine)
    made = {step: k for step, k in made.items() if step in chain}
    return {"shard": f"{i}/{n}", "rounds": len(made), "rounds_of_this_chain": len(mine),
            "new_features": sum(made.values()),
            "this_attempt": {"rounds": rounds, "new_features": added,
                             "off_tree_dropped": off_tree,
                             "json_fail_rate": tally.metrics()["synth/json_fail_rate"],
                             "rejects": dict(tally.rejects)},
            "interrupted": interrupted}


def _nothing_to_do(ctx: StageContext, store: Store) -> dict:
    """An empty tree (every seed rejected, say, with a smoke run's random model) is reported,
    not an error: later stages then have nothing to do either, and say so."""
    why = empty_tree_reason(store)
    ctx.events.alert(f"evolve: {why}", code="empty_feature_tree")
    ctx.log.warning("nothing to evolve: %s", why)
    return {"rounds": 0, "new_features": 0, "skipped_reason": why, "interrupted": False}


def empty_tree_reason(store: Store) -> str:
    """Why the feature tree is empty, from the features stage's records."""
    reasons = [(code, k) for stage, code, k in store.item_reasons("features")]
    if not reasons:
        return ("the feature tree is empty: run the features stage first "
                "(python -m engine run ... --stages features)")
    top = ", ".join(f"{code} x{k}" for code, k in reasons[:4])
    return (f"the feature tree is empty: the features stage rejected every seed ({top}); "
            "see synth_items in the store for the answers")


def main(argv: Sequence[str] | None = None) -> int:
    """Run this stage alone through the engine CLI (``run ... --stages evolve``)."""
    return run_stage_alone(STAGE, argv)


if __name__ == "__main__":
    sys.exit(main())
