"""Stage ``tasks``: sample feature configs from the tree and turn each into a hint-free
problem statement in two LLM steps (SYNTHSMITH.md §3).

Run it alone (after ``features`` / ``evolve``)::

    python -m engine run --config assets/presets/smoke-cpu.yaml --run-dir /tmp/run1 --stages tasks

or as shards (``--shard I/N``: config draws with ``index % N == I``; each shard writes
``data/shards/tasks.<I>of<N>.sqlite``, the last one merges them into the store).

1. Configs: ``sample_configs(tree, tasks.num_configs, tasks.shapes, min_leaves=...,
   seed=run.seed)`` — draw ``i`` uses its own RNG (``item_rng(seed, "config", i, attempt)``),
   is redrawn (up to 20 times) while it has fewer than ``tasks.min_leaves`` leaves or repeats an
   earlier draw, and is skipped (counted, with the reason logged) when no draw works. Every
   shard computes the same list from the same tree; a config's key is ``cfg:<hash of its
   canonical JSON>``, so a rerun recognises what it made even if the tree has grown since.
2. Stage 1 (assets/prompts/tasks_select.md): the LLM notes each leaf's typical use, selects
   features that fit ONE problem and writes an integration strategy; JSON with
   ``feature_roles``, ``selected_features``, ``integration_strategy``. The selection is matched
   back onto the config (same path, or the same name under the same category); features the
   config does not have are dropped, and an answer that keeps none is asked again like
   invalid JSON, then rejected (``select_outside``).
3. Stage 2 (tasks_statement.md + tasks_style_<style>.md): style drawn with
   ``tasks.style_weights`` from ``item_rng(seed, "style", key)``; JSON ``{"title",
   "statement"}``.
4. Hint leaks: ``engine.synth.hints.find_hint_leaks`` over title + statement (the selected
   feature names count as terms too). With ``tasks.hint_leaks: reject`` (default) such a task
   is stored ``rejected`` with ``hint_leak: <terms>`` so the browser shows it and nothing
   downstream uses it; ``keep`` stores it pending. Counted either way.

Both JSON steps go through ``engine.synth.json_repair`` and ``tasks.json_retries`` new
samples. The task, its config, lineage (config -> contained features, task -> selected
features) and the ``synth_items`` record (stage ``tasks``: stage-1 roles, style, repairs) are
written in one transaction; a rejected config gets a record with the reason
(``select_invalid: ...``, ``statement_truncated: ...``, ``select_outside: ...``) and the answer.
Resumption: recorded keys are skipped; answers a killed run received come from the cache. Calls
that fail in transport after retries leave their config unrecorded, and the stage fails at the
end saying how many; the rerun asks only for those.

Summary: ``tasks``, ``rejected`` and ``rejects`` (by reason code) count the store's records
over all attempts (for a shard, of its draws); ``considered``, ``deferred`` and
``this_attempt`` are this attempt's.

Events: progress (configs processed; ``ok``: tasks written, ``rejected``: configs refused),
metrics ``synth/tasks_done``, ``synth/hint_leaks``, ``synth/hint_leak_rate``,
``synth/configs_skipped``, ``synth/json_fail_rate``, ``synth/rejects/<code>``,
``synth/styles/<style>``, ``llm/...``; a ``sample`` event (kind ``task``) with them, at most
every 2 s. Configs stream through both steps (``synth_common.run_pipeline_items``: a config's
statement is asked as soon as its selection is in) and are written in draw order, so task
ids are the same on every run.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.__main__ import run_stage_alone
from engine.context import StageError
from engine.prompts import render_prompt
from engine.schema import TASK_STYLES
from engine.stages.evolve import empty_tree_reason
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
from engine.store import canonical_json
from engine.synth.feature_tree import (
    SampledConfig,
    Tree,
    count_leaves,
    item_rng,
    json_to_tree,
    leaf_paths,
    node_paths,
    normalize_category,
    normalize_name,
    sample_configs,
    tree_from_paths,
    tree_to_json,
)
from engine.synth.hints import find_hint_leaks

if TYPE_CHECKING:
    from engine.context import StageContext
    from engine.schema import TasksConfig
    from engine.store import StageWriter, Store

STAGE = "tasks"
# Shardable (engine.schema.SHARDABLE_STAGES): the runner's --shard I/N applies: config draws with index % N == I
STYLES = TASK_STYLES  # one per style guide in assets/prompts/tasks_style_*.md
STYLE_NAMES = {"codeforces": "Codeforces", "leetcode": "LeetCode", "atcoder": "AtCoder"}
MIN_STATEMENT_CHARS = 120  # shorter "statements" are refusals or fragments
MAX_TITLE_CHARS = 200


def config_key(config: Tree) -> str:
    return "cfg:" + hashlib.sha256(canonical_json(tree_to_json(config)).encode()).hexdigest()[:24]


def choose_style(weights: Any, seed: int, key: str) -> str:
    w = [getattr(weights, s) for s in STYLES]
    return item_rng(seed, "style", key).choices(STYLES, weights=w)[0]


def select_messages(config: Tree) -> list[dict[str, str]]:
    text = render_prompt("tasks_select", features=json.dumps(tree_to_json(config), indent=2))
    return [{"role": "user", "content": text}]


def statement_messages(selected: Tree, strategy: str, style: str) -> list[dict[str, str]]:
    text = render_prompt("tasks_statement",
                         selected_features=json.dumps(tree_to_json(selected), indent=2),
                         integration_strategy=strategy.strip(), style_name=STYLE_NAMES[style],
                         style_guide=render_prompt(f"tasks_style_{style}").strip())
    return [{"role": "user", "content": text}]


def check_select(value: Any) -> str | None:
    sel, strategy = value.get("selected_features"), value.get("integration_strategy")
    if not isinstance(sel, (dict, list)) or not sel:
        return "missing: no selected_features object in the answer"
    if not isinstance(strategy, str) or not strategy.strip():
        return "missing: no integration_strategy text in the answer"
    return None


def check_select_for(config: Tree):
    """``check_select`` plus: the selection names at least one feature the config has (an
    answer about other features is asked again, then rejected as ``select_outside``)."""
    def check(value: Any) -> str | None:
        problem = check_select(value)
        if problem is None and not match_selection(value["selected_features"], config):
            return "outside: none of the selected features is in the config"
        return problem
    return check


def check_statement(value: Any) -> str | None:
    title, statement = value.get("title"), value.get("statement")
    if not isinstance(title, str) or not title.strip():
        return "missing: no title in the answer"
    if len(title) > MAX_TITLE_CHARS:
        return f"bad_title: {len(title)} characters (at most {MAX_TITLE_CHARS})"
    if not isinstance(statement, str) or len(statement.strip()) < MIN_STATEMENT_CHARS:
        n = len(statement.strip()) if isinstance(statement, str) else 0
        return f"too_short: a statement of {n} characters (at least {MIN_STATEMENT_CHARS})"
    return None


def match_selection(selected: Any, config: Tree) -> Tree:
    """The selected features that the config has: by path, else by name (within the same
    category first). A bare list of names is matched by name anywhere in the config."""
    if isinstance(selected, list):
        names = (normalize_name(x) for x in selected if isinstance(x, str))
        chosen = tree_from_paths((name,) for name in names if name)
    else:
        chosen = json_to_tree(selected)
    have = set(node_paths(config))
    in_category: dict[tuple[str, str], tuple[str, ...]] = {}
    anywhere: dict[str, tuple[str, ...]] = {}
    for p in leaf_paths(config) + node_paths(config):  # leaves win a name clash
        in_category.setdefault((p[0], p[-1]), p)
        anywhere.setdefault(p[-1], p)
    kept = []
    for path in leaf_paths(chosen):
        root = normalize_category(path[0]) or path[0]
        path = (root, *path[1:])
        match = path if path in have else in_category.get((root, path[-1]),
                                                          anywhere.get(path[-1]))
        if match:
            kept.append(match)
    return tree_from_paths(kept)


@dataclass
class _Work:
    """One config on its way to a task: step 1 (selection), then step 2 (statement)."""

    config: SampledConfig
    key: str
    request: Any = None
    selection: JSONAnswer = field(default_factory=JSONAnswer)
    statement: JSONAnswer | None = None  # set when step 2 starts
    selected: Tree | None = None
    style: str = ""


def _todo(configs: list, done: set[str], i: int, n: int) -> list:
    return [c for c in configs if c.config is not None and c.index % n == i
            and config_key(c.config) not in done]


def run(ctx: StageContext) -> dict:
    with shard_stores(ctx, STAGE) as (store, out):
        return _run(ctx, ctx.config.tasks, store, out)


def _run(ctx: StageContext, cfg: TasksConfig, store: Store, out: StageWriter) -> dict:
    from engine.llm import ChatRequest

    ev, log = ctx.events, ctx.log
    i, n = ctx.shard_index, ctx.shard_count
    seed = ctx.config.run.seed
    tree = tree_from_paths(p for p, _ in store.feature_rows())
    if not tree:
        why = empty_tree_reason(store)
        ev.alert(f"tasks: {why}", code="empty_feature_tree")
        log.warning("no configs to sample: %s", why)
        return {"shard": f"{i}/{n}", "considered": 0, "tasks": 0, "skipped_reason": why,
                "interrupted": False}
    configs = sample_configs(tree, cfg.num_configs, [tuple(s) for s in cfg.shapes],
                             min_leaves=cfg.min_leaves, seed=seed)
    skipped = [c for c in configs if c.config is None and c.index % n == i]
    for c in skipped[:5]:
        log.warning("config draw %d skipped: %s", c.index, c.reason)
    if skipped:
        ev.log(f"{len(skipped)} of {len(configs)} config draws found no config with at least "
               f"{cfg.min_leaves} leaves that was new (e.g. {skipped[0].reason}); grow the tree "
               "(evolve.steps) or lower tasks.min_leaves", level="warning")
    done = recorded_items(store, out, STAGE)
    todo = _todo(configs, done, i, n)
    total = len(todo)
    log.info("shard %d/%d: %d configs to write up (%d features in the tree)", i, n, total,
             len(node_paths(tree)))
    pacer = Pacer(ev, total, "configs")
    tally, styles, count = SynthTally(), Counter(), Counter()
    example: dict | None = None

    def first(w: _Work) -> list[Any]:
        w.request = ChatRequest.for_stage(cfg, select_messages(w.config.config), seed=seed,
                                          tag=w.key)
        return [w.request]

    def then(w: _Work, results: list[Any]) -> list[Any] | Done:
        if w.statement is None:  # step 1: the selection
            retry = json_round(w.selection, w.request, results[0], retries=cfg.json_retries,
                               tally=tally, check=check_select_for(w.config.config))
            if retry is not None:
                return [retry]
            if not w.selection.ok:
                return Done(None)
            # Not empty: the check refused selections outside the config.
            w.selected = match_selection(w.selection.value["selected_features"], w.config.config)
            w.style = choose_style(cfg.style_weights, seed, w.key)
            w.statement = JSONAnswer()
            w.request = ChatRequest.for_stage(cfg, statement_messages(
                w.selected, w.selection.value["integration_strategy"], w.style), seed=seed,
                tag=w.key)
            return [w.request]
        retry = json_round(w.statement, w.request, results[0], retries=cfg.json_retries,
                           tally=tally, check=check_statement)
        return [retry] if retry is not None else Done(None)

    def commit(w: _Work, _: None) -> None:
        nonlocal example
        count["seen"] += 1
        first_, second = w.selection, w.statement
        c, k = w.config, w.key
        if first_.llm_failed or (second is not None and second.llm_failed):
            count["deferred"] += 1
        elif not first_.ok or second is None:
            _reject(out, tally, k, f"select_{first_.error}", first_.raw, c)
        elif not second.ok:
            _reject(out, tally, k, f"statement_{second.error}", second.raw, c)
        else:
            title, statement = second.value["title"].strip(), second.value["statement"].strip()
            found = find_hint_leaks(f"{title}\n{statement}",
                                    extra_terms=[p[-1] for p in leaf_paths(w.selected)])
            count["leaks"] += bool(found)
            rejected = bool(found) and cfg.hint_leaks == "reject"
            roles = first_.value.get("feature_roles")
            with out.transaction():
                out.add_generated_task(
                    key=k, config=tree_to_json(c.config), shape=list(c.shape),
                    n_leaves=c.n_leaves, rng_seed=c.rng_seed, style=w.style, title=title,
                    statement=statement, selected_features=tree_to_json(w.selected),
                    integration_strategy=first_.value["integration_strategy"].strip(),
                    status="rejected" if rejected else "pending",
                    reject_reason=f"hint_leak: {', '.join(found)}" if rejected else None)
                out.record_item(STAGE, k, "ok", detail={
                    "draw": c.index, "style": w.style, "hint_leaks": found,
                    "feature_roles": roles if isinstance(roles, (dict, list)) else None,
                    "selected_leaves": count_leaves(w.selected), "config_leaves": c.n_leaves,
                    "repairs": list(first_.repairs) + list(second.repairs),
                    "samples": first_.samples + second.samples})
            count["made"] += 1
            styles[w.style] += 1
            example = example or {"title": title, "style": w.style, "hint_leaks": found,
                                  "statement": statement[:800]}
        made = count["made"]
        if pacer.tick(count["seen"], lambda: {
                "synth/tasks_done": float(made), "synth/hint_leaks": float(count["leaks"]),
                "synth/hint_leak_rate": count["leaks"] / made if made else 0.0,
                "synth/configs_skipped": float(len(skipped)),
                **{f"synth/styles/{s}": float(v) for s, v in styles.items()},
                **tally.metrics()}, ok=made, rejected=sum(tally.rejects.values())) and example:
            ev.sample("task", example, step=count["seen"])
            example = None

    work = [_Work(c, config_key(c.config)) for c in todo]
    outcome, errors = stream_stage_items(ctx, cfg, STAGE, work, requests_per_item=1,
                                         first=first, then=then, commit=commit)
    rejected = sum(tally.rejects.values())
    log.info("shard %d/%d: %d tasks written (%d with hint leaks), %d configs rejected, %d "
             "without an answer%s", i, n, count["made"], count["leaks"], rejected,
             count["deferred"], ", interrupted" if outcome.interrupted else "")
    mine = None if n == 1 else {config_key(c.config) for c in configs
                                if c.config is not None and c.index % n == i}
    totals, rejects = item_totals(store, out, STAGE, mine)
    summary = {"shard": f"{i}/{n}", "tasks": totals["ok"], "rejected": totals["rejected"],
               "rejects": dict(rejects), "considered": total, "deferred": count["deferred"],
               "configs_skipped": len(skipped),
               "this_attempt": {"tasks": count["made"], "rejected": rejected,
                                "hint_leaks": count["leaks"], "styles": dict(styles),
                                "json_fail_rate": tally.metrics()["synth/json_fail_rate"]},
               "interrupted": outcome.interrupted}
    if count["deferred"] and not outcome.interrupted:
        raise StageError(deferred_error(STAGE, count["deferred"], total, "configs", errors))
    return summary


def _reject(out: StageWriter, tally: SynthTally, key: str, reason: str, raw: str | None,
            config: Any) -> None:
    out.record_item(STAGE, key, "rejected", reason=reason, raw=raw,
                    detail={"draw": config.index, "config": tree_to_json(config.config)})
    tally.reject(reason)


def main(argv: Sequence[str] | None = None) -> int:
    """Run this stage alone through the engine CLI (``run ... --stages tasks``)."""
    return run_stage_alone(STAGE, argv)


if __name__ == "__main__":
    sys.exit(main())
