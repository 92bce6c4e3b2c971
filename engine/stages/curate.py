"""The curate stage: decontaminate and de-duplicate the accepted tasks (and, when asked, the seed
problems), then export the SFT and RL sets to ``<run>/exports/``.

Run it alone on a run dir whose store holds verified tasks::

    python -m engine run --config assets/presets/smoke-cpu.yaml --run-dir runs/smoke --stages curate

Input: the ACCEPTED tasks of the store that have a golden solution (verify's output), in id
order. Accepted tasks without a golden solution are counted, logged and left alone. With
``curate.include_seed_problems`` (off by default: X-Coder's recipe is fully synthetic; the CPU
smoke preset turns it on because its random model synthesizes nothing usable) also the seed
problems the seeds stage imported, in id order after all the tasks: a seed with a reference
solution is checked by both filters below like a task and, when kept, goes to the SFT set; to
the RL set too when it has stdin/stdout tests (``engine/store/seed_problems.py`` says what
counts). Seeds are not tasks: nothing about them is written to the store, they are decided
afresh on every run (from the same kept tasks and seeds, so the same way), and a seed that is
a near duplicate of a kept task (or of an earlier kept seed) is the one left out.

1. Decontamination (when ``curate.decontaminate_file`` is set): a task whose statement shares
   ``decontam_min_matches`` distinct word ``decontam_ngram_size``-grams with one benchmark
   problem is rejected with reason ``contaminated:<benchmark id>``. N-grams found in
   ``decontam_boilerplate_problems`` or more benchmark problems are stock phrasing and do not
   count. File format and matching: ``engine/curate/decontaminate.py``. No file set: skipped,
   with a log line; a file set that does not exist: the stage fails before touching anything.
2. Near duplicates: MinHash (``num_perm``) over word ``ngram_size``-shingles of the statement,
   LSH for candidates; a task whose estimated Jaccard similarity to an already kept task is
   ``dedup_threshold`` or more is rejected with reason ``near_duplicate_of:<kept task id>``,
   the lowest such id. The lowest id of a group is kept (``engine/curate/near_duplicates.py``).
   Contaminated tasks are removed first, so a near duplicate never names one of them. Seeds
   join the same index after the tasks, keyed ``seed:<id>``, so they never remove a task.
3. Exports (formats in ``engine/curate/exports.py``): ``sft.jsonl`` / ``sft.parquet`` (the
   formats in ``export_formats``), rows of ``{query, response}`` (plus the same pair as
   ``messages`` and ``prompt``/``completion`` for TRL and verl: engine/curate/exports.py): the statement, and the
   golden solution's reasoning plus its code in a fenced block; with
   ``sft_solutions_per_task`` > 1 also the task's other correct candidates (status ok, passing
   every labelled test), golden first, then by candidate index. ``rl.parquet`` always: verl's
   columns (data_source, prompt as chat messages, ability, reward_model with the labelled
   tests as JSON ground truth, extra_info), at most ``rl_max_tasks`` tasks (0: all) in id
   order; a kept task with no labelled test is left out of the RL set only. Kept seeds follow
   the tasks in both files: SFT ``{query: problem, response: first solution fenced}`` (no
   reasoning), RL rows with the seed's tests as ground truth and ``extra_info.origin`` =
   ``"seed"`` (``seed_id``, ``seed_key``); ``rl_max_tasks`` counts them after the tasks.
   Every RL row's ``data_source`` is ``rl_data_source`` ("synthsmith": verl judges it with
   ``engine/train/verl_reward.py``; "codecontests" / "apps" / "codeforces" / "taco": verl's
   built-in prime_code scorer takes it too).
4. The validation split: ``rl_val_fraction`` of the RL rows (at most ``rl_val_max_tasks``)
   go to ``rl_val.parquet`` instead of ``rl.parquet``, by a hash of (run.seed, the task's key),
   at least one when there are two rows or more and never all (rule:
   ``engine/curate/exports.py``); ``extra_info.split`` "train" / "test", ``index`` per file.
   With ``rl_val_fraction`` 0 no validation file is written (a stale one is removed).
5. The dataset card ``README.md`` (``engine/curate/dataset_card.py``): hub front matter
   (``dataset_license``, the files as configs and splits), counts, sources, the verification
   rule and thresholds, decontamination, the RL reward and how to use it with verl.

Where removals are recorded: in the store, as ``set_task_result(status="rejected",
reason=...)`` with the task's agreement and golden solution kept, so the data browser filters
them by reject reason (prefixes ``contaminated:`` and ``near_duplicate_of:``) and every later
read of "accepted" tasks already sees the curated set.

Resuming and reruns: removals are written batch by batch; a rerun reads only tasks still
accepted, rebuilds the index of kept ones in the same order and so makes the same decisions
(never rejecting a task twice). Exports are written to temporary files and renamed into
place at the end, so a rerun rewrites the same bytes and an interrupted run leaves the old
files. An SFT file of a format no longer in ``export_formats`` is removed (it would be stale).

Events: ``progress`` (tasks checked, seeds checked, then tasks and seeds exported); metrics
``curate/checked``, ``curate/contaminated``, ``curate/near_duplicates`` (tasks so removed in the
store, earlier runs included), ``curate/kept``, ``curate/seed_problems_kept`` (with seeds), and
at the end ``curate/exported_sft`` / ``curate/exported_rl`` (rows, seeds included; RL counts
both files) / ``curate/exported_rl_val`` (rows in rl_val.parquet); one
``artifact`` (kind ``export``, path relative to the run dir) per file written. When no task is
kept and the seeds carry the whole export: a warning log line and an ``alert`` (level
warning, code ``curate/seeds_only``), since the synthesized part of the run produced nothing.

Summary returned (lands in state.json)::

    {"checked": 1200, "kept": 1100, "contaminated": 40, "near_duplicates": 60,
     "removed_now": {"contaminated": 40, "near_duplicates": 60},
     "accepted_without_golden": 0, "benchmark": {"path": ..., "problems": 880, ...},
     "seed_problems": null,
     "exported_sft": 1100, "exported_rl": 1090, "exported_rl_val": 22, "rl_without_tests": 10,
     "sft_without_code": 0, "exports": {"sft.jsonl": "exports/sft.jsonl", ...,
                                        "README.md": "exports/README.md"},
     "interrupted": false}

With ``include_seed_problems`` ``seed_problems`` holds the seeds' side (``exported_sft`` /
``exported_rl`` above then include their rows)::

    {"checked": 8, "kept": 7, "contaminated": 0, "near_duplicates": 1,
     "without_solution": 0, "without_tests": 1, "exported_sft": 7, "exported_rl": 6}

(``checked``: seeds with a reference solution; ``without_solution``: the others, never
exported; ``without_tests``: kept seeds without stdin/stdout tests, SFT only.)

Fails (``StageError``) when the store is missing, when numpy / datasketch are not installed,
or when nothing is left to export: no accepted task with a golden solution, or every one of
them removed, and no seed problem kept (or ``include_seed_problems`` off; the message then
names that option when some seeds carry a reference solution).

Leaves out: embedding-based (paraphrase) de-duplication; removing synthesized tasks that copy
a seed (seeds only ever lose to tasks); decontaminating solutions; RL ordering by difficulty
(``extra_info.pass_rate`` carries the signal; seeds have none and sort last); more than one
solution per seed; sharding (one process: ~0.5 ms per task on one core for both filters,
~15 s for 20k tasks end to end with short solutions).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.__main__ import run_stage_alone
from engine.context import StageError
from engine.paths import resolve_data_path

if TYPE_CHECKING:
    from engine.context import StageContext
    from engine.schema import CurateConfig
    from engine.store import Store

BATCH = 500
SEED_BATCH = 100  # seeds exported per batch: a TACO seed's tests can run to megabytes
SHOW_EXAMPLES = 5  # removals logged one by one per kind, before the totals
CONTAMINATED = "contaminated:"
NEAR_DUPLICATE = "near_duplicate_of:"
KINDS = {"contaminated": CONTAMINATED, "near_duplicates": NEAR_DUPLICATE}
SEED_KEY = "seed:"  # a seed's key in the near-duplicate index (tasks use their int id)
RL_VAL = "rl_val.parquet"  # the held-out RL tasks (verl's data.val_files)
CARD = "README.md"  # the dataset card, in exports/ beside the files it describes


@dataclass
class _Tally:
    total: int = 0  # accepted tasks with a golden solution when the stage started
    no_golden: int = 0
    checked: int = 0
    kept: list[int] = field(default_factory=list)
    before: dict[str, int] = field(default_factory=dict)  # removed by earlier runs, per kind
    now: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    exported: dict[str, int] = field(default_factory=lambda: {
        "sft": 0, "rl": 0, "rl_val": 0, "rl_without_tests": 0, "sft_without_code": 0})
    benchmark: dict | None = None
    exports: dict[str, str] = field(default_factory=dict)
    seeds: _SeedTally | None = None  # with curate.include_seed_problems only

    def removed(self, kind: str) -> int:
        return self.before[kind] + self.now[kind]

    def metrics(self) -> dict[str, float]:
        seeds = {} if self.seeds is None else {"curate/seed_problems_kept": len(self.seeds.kept)}
        return {"curate/checked": self.checked, "curate/kept": len(self.kept),
                **{f"curate/{k}": self.removed(k) for k in KINDS}, **seeds}

    def summary(self, interrupted: bool = False) -> dict:
        return {"checked": self.checked, "kept": len(self.kept),
                **{k: self.removed(k) for k in KINDS}, "removed_now": dict(self.now),
                "accepted_without_golden": self.no_golden, "benchmark": self.benchmark,
                "seed_problems": None if self.seeds is None else self.seeds.summary(),
                "exported_sft": self.exported["sft"], "exported_rl": self.exported["rl"],
                "exported_rl_val": self.exported["rl_val"],
                "rl_without_tests": self.exported["rl_without_tests"],
                "sft_without_code": self.exported["sft_without_code"],
                "exports": self.exports, "interrupted": interrupted}


@dataclass
class _SeedTally:
    """The seed problems' side: decided afresh on every run, never written to the store."""

    total: int = 0  # seeds in the store
    without_solution: int = 0  # no reference solution: not checked, not exported
    checked: int = 0
    kept: list[int] = field(default_factory=list)
    now: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    without_tests: int = 0  # kept, but no stdin/stdout tests: SFT only
    exported: dict[str, int] = field(default_factory=lambda: {"sft": 0, "rl": 0})

    def summary(self) -> dict:
        return {"checked": self.checked, "kept": len(self.kept), **self.now,
                "without_solution": self.without_solution, "without_tests": self.without_tests,
                "exported_sft": self.exported["sft"], "exported_rl": self.exported["rl"]}


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.curate
    _require_libraries()
    from engine.curate.near_duplicates import NearDuplicateFilter
    from engine.curate.word_ngrams import WordHasher
    from engine.store.accepted_tasks import TaskReader
    from engine.store.seed_problems import SeedReader

    bench_path = _benchmark_path(cfg)
    if not ctx.run.store_path.is_file():
        raise StageError(f"no dataset store at {ctx.run.store_path}: run the stages up to "
                         "verify in this run dir first")
    store = ctx.store()
    tally = _Tally()
    with TaskReader(ctx.run.store_path) as reader, SeedReader(ctx.run.store_path) as seeds:
        tally.total, tally.no_golden = reader.count_accepted()
        n_seeds, with_solution = seeds.count()
        if tally.total == 0 and not cfg.include_seed_problems:
            raise StageError(_no_tasks(store) + _seed_hint(with_solution))
        hasher = WordHasher()  # one cache of word hashes for the benchmark, tasks and seeds
        bench = _load_benchmark(ctx, bench_path, hasher)
        if bench is not None:
            tally.benchmark = {"path": cfg.decontaminate_file, **bench.stats.as_dict()}
        # One index for both: a seed is checked against the kept tasks and the kept seeds.
        dedup = NearDuplicateFilter(cfg.dedup_threshold, cfg.num_perm)
        if not _filter(ctx, store, reader, bench, hasher, dedup, tally):
            return tally.summary(interrupted=True)
        if cfg.include_seed_problems:
            tally.seeds = _SeedTally(total=n_seeds)
            if not _filter_seeds(ctx, seeds, bench, hasher, dedup, tally.seeds):
                return tally.summary(interrupted=True)
        if not tally.kept and not (tally.seeds and tally.seeds.kept):
            raise StageError(_nothing_kept(ctx, store, tally) + _seed_hint(with_solution))
        if not tally.kept:
            _warn_seeds_only(ctx, tally)
        if not _export(ctx, reader, seeds, tally):
            return tally.summary(interrupted=True)
        _write_card(ctx, tally, n_seeds)

    ev = ctx.events
    for name, path in tally.exports.items():
        ev.artifact(name, path, kind="export")
    ev.metric(tally.checked, {**tally.metrics(), "curate/exported_sft": tally.exported["sft"],
                              "curate/exported_rl": tally.exported["rl"],
                              "curate/exported_rl_val": tally.exported["rl_val"]})
    if tally.exported["rl"] == 0:
        ev.alert("the RL export is empty: no kept task has a labelled test", level="warning",
                 code="curate/empty_rl")
    ctx.log.info("exported %d SFT rows and %d RL rows to %s", tally.exported["sft"],
                 tally.exported["rl"], ctx.run.exports_dir)
    return tally.summary()


# ---------------------------------------------------------------------------------------------
# When nothing, or only seeds, can be exported


def _no_tasks(store: Store) -> str:
    return ("the store has no accepted task with a golden solution "
            f"({store.counts()['tasks']} tasks in all): run verify first, or check its reject "
            "reasons in the data browser")


def _seed_hint(with_solution: int) -> str:
    if with_solution == 0:
        return ""
    return (f"; or set curate.include_seed_problems: true to export the {with_solution} seed "
            "problems that carry a reference solution too")


def _nothing_kept(ctx: StageContext, store: Store, tally: _Tally) -> str:
    """Why neither a task nor a seed is left to export."""
    if tally.total == 0:
        tasks = _no_tasks(store)
    else:
        tasks = (f"all {tally.checked} accepted tasks were removed as contaminated or near "
                 "duplicates: check curate.decontaminate_file and curate.dedup_threshold")
    st = tally.seeds
    if st is None:
        return tasks
    return (f"{tasks}; and no seed problem was kept either ({st.total} seeds: "
            f"{st.without_solution} without a reference solution, {st.now['contaminated']} "
            f"contaminated, {st.now['near_duplicates']} near duplicates)")


def _warn_seeds_only(ctx: StageContext, tally: _Tally) -> None:
    """The synthesized part produced nothing: say so loudly, the exports are seeds only."""
    why = ("no accepted task with a golden solution" if tally.total == 0 else
           f"all {tally.checked} accepted tasks were removed as contaminated or near duplicates")
    message = (f"curate: {why}, so the SFT and RL sets hold only the {len(tally.seeds.kept)} "
               "seed problems (curate.include_seed_problems): the synthesis stages made "
               "nothing usable; see their summaries and reject reasons")
    ctx.log.warning("%s", message)
    ctx.events.alert(message, level="warning", code="curate/seeds_only")


# ---------------------------------------------------------------------------------------------
# The benchmark index


def _benchmark_path(cfg: CurateConfig) -> Path | None:
    if cfg.decontaminate_file is None:
        return None
    try:
        path = resolve_data_path(cfg.decontaminate_file)
    except ValueError as e:
        raise StageError(f"curate.decontaminate_file: {e}") from None
    if not path.is_file():
        raise StageError(
            f"benchmark file {cfg.decontaminate_file} does not exist (looked at {path}): fix "
            "curate.decontaminate_file, or leave it empty to skip decontamination")
    return path


def _load_benchmark(ctx: StageContext, path: Path | None, hasher: Any) -> Any:
    from engine.curate.decontaminate import BenchmarkIndex

    cfg, ev = ctx.config.curate, ctx.events
    if path is None:
        ev.log("no benchmark file (curate.decontaminate_file): decontamination skipped")
        return None
    bench = BenchmarkIndex(path, ngram_size=cfg.decontam_ngram_size,
                           boilerplate_problems=cfg.decontam_boilerplate_problems, hasher=hasher)
    st = bench.stats
    for example in st.bad_examples:
        ev.log(f"{cfg.decontaminate_file}: skipped {example}", level="warning")
    if st.problems == 0:
        raise StageError(
            f"benchmark file {cfg.decontaminate_file} holds no problems ({st.bad_lines} bad "
            "lines): each JSONL line needs a 'question_content', 'question' or 'problem' text;"
            " fix curate.decontaminate_file")
    ctx.log.info("benchmark %s: %d problems, %d n-grams (%d boilerplate dropped), %d too "
                 "short, %d bad lines", path, st.problems, st.ngrams, st.boilerplate_ngrams,
                 st.too_short, st.bad_lines)
    return bench


# ---------------------------------------------------------------------------------------------
# Pass 1: decontaminate, then de-duplicate (removals go to the store batch by batch)


def _filter(ctx: StageContext, store: Store, reader: Any, bench: Any, hasher: Any, dedup: Any,
            tally: _Tally) -> bool:
    """Check every accepted task; -> False when a stop request cut the pass short."""
    from engine.curate.word_ngrams import shingles, words_of

    cfg, ev = ctx.config.curate, ctx.events
    if tally.no_golden:
        ev.log(f"{tally.no_golden} accepted tasks have no golden solution: left out of the "
               "exports", level="warning")
    tally.before = {k: reader.count_reason_prefix(prefix) for k, prefix in KINDS.items()}
    rejects: list[tuple[Any, str]] = []  # (task, reason) of the current batch

    def remove(task: Any, kind: str, target: str, message: str) -> None:
        rejects.append((task, KINDS[kind] + target))
        tally.now[kind] += 1
        if tally.now[kind] <= SHOW_EXAMPLES:
            ev.log(message)

    for batch in reader.iter_candidates(BATCH):
        rejects.clear()
        for task in batch:
            word_hashes = hasher.hashes(words_of(task.statement))
            leak = _leak(bench, word_hashes, cfg)
            if leak is not None:
                remove(task, "contaminated", leak,
                       f"task {task.id} is contaminated by benchmark problem {leak}")
                continue
            twin = dedup.check(task.id, shingles(word_hashes, cfg.ngram_size))
            if twin is not None:
                remove(task, "near_duplicates", str(twin),
                       f"task {task.id} is a near duplicate of task {twin}")
                continue
            tally.kept.append(task.id)
        if rejects:
            with store.transaction():
                for task, reason in rejects:  # keep verify's agreement and golden solution
                    store.set_task_result(task.id, "rejected", reason=reason,
                                          agreement=task.agreement,
                                          golden_solution_id=task.golden_solution_id)
        tally.checked += len(batch)
        ev.progress(tally.checked, tally.total, unit="tasks checked")
        ev.metric(tally.checked, tally.metrics())
        if ctx.stop_requested():
            return False
    ctx.log.info("checked %d accepted tasks: kept %d, contaminated %d, near duplicates %d "
                 "(this run)", tally.checked, len(tally.kept), tally.now["contaminated"],
                 tally.now["near_duplicates"])
    return True


def _leak(bench: Any, word_hashes: Any, cfg: CurateConfig) -> str | None:
    """The benchmark problem a text leaks, or None (also without a benchmark)."""
    from engine.curate.word_ngrams import ngram_hashes

    if bench is None:
        return None
    grams = ngram_hashes(word_hashes, cfg.decontam_ngram_size).tolist()
    return bench.match(grams, cfg.decontam_min_matches)


def _filter_seeds(ctx: StageContext, seeds: Any, bench: Any, hasher: Any, dedup: Any,
                  st: _SeedTally) -> bool:
    """Check every seed with a reference solution, after all the tasks, against the same
    benchmark and near-duplicate index; -> False when a stop request cut the pass short.
    Nothing is written: seeds are not tasks, and the same inputs give the same decisions."""
    from engine.curate.word_ngrams import shingles, words_of

    cfg, ev = ctx.config.curate, ctx.events

    def remove(kind: str, message: str) -> None:
        st.now[kind] += 1
        if st.now[kind] <= SHOW_EXAMPLES:
            ev.log(message)

    done = 0
    for batch in seeds.iter_candidates(BATCH):
        for seed in batch:
            if not seed.has_solution:
                st.without_solution += 1
                continue
            st.checked += 1
            word_hashes = hasher.hashes(words_of(seed.problem))
            leak = _leak(bench, word_hashes, cfg)
            if leak is not None:
                remove("contaminated", f"seed {seed.id} ({seed.source_key}) is contaminated by "
                       f"benchmark problem {leak}: left out")
                continue
            # Seeds are keyed "seed:<id>", tasks by their int id; a seed loses to a task.
            twin = dedup.check(f"{SEED_KEY}{seed.id}", shingles(word_hashes, cfg.ngram_size))
            if twin is not None:
                other = twin.replace(SEED_KEY, "seed ") if isinstance(twin, str) else \
                    f"task {twin}"
                remove("near_duplicates", f"seed {seed.id} ({seed.source_key}) is a near "
                       f"duplicate of {other}: left out")
                continue
            st.kept.append(seed.id)
            st.without_tests += not seed.has_tests
        done += len(batch)
        ev.progress(done, st.total, unit="seeds checked")
        if ctx.stop_requested():
            return False
    if st.without_solution:
        ev.log(f"{st.without_solution} seeds have no reference solution: left out of the "
               "exports", level="warning")
    ctx.log.info("checked %d seed problems with a solution: kept %d (%d of them without "
                 "stdin/stdout tests, SFT only), contaminated %d, near duplicates %d",
                 st.checked, len(st.kept), st.without_tests, st.now["contaminated"],
                 st.now["near_duplicates"])
    return True


# ---------------------------------------------------------------------------------------------
# Pass 2: the exports, written aside and renamed into place together


def _export(ctx: StageContext, reader: Any, seeds: Any, tally: _Tally) -> bool:
    """Write the SFT and RL files of the kept tasks, then the kept seeds; -> False when a stop
    request came first (then the previous files stay as they were)."""
    from engine.curate import exports

    cfg, ev, out = ctx.config.curate, ctx.events, ctx.run.exports_dir
    files: dict[str, Any] = {
        f"sft.{kind}": exports.ExportFile(out / f"sft.{kind}", kind, exports.SFT_SCHEMA)
        for kind in cfg.export_formats}
    rl_file = files["rl.parquet"] = exports.RlSplitWriter(
        out / "rl.parquet", out / RL_VAL if cfg.rl_val_fraction > 0 else None)
    counts, kept = tally.exported, tally.kept
    source = cfg.rl_data_source
    try:
        for start in range(0, len(kept), BATCH):
            tasks = reader.export_batch(kept[start : start + BATCH],
                                        cfg.sft_solutions_per_task - 1)
            sft, rl = [], []
            for task in tasks:
                rows = exports.sft_rows(task, cfg.sft_solutions_per_task)
                counts["sft_without_code"] += not rows
                sft += rows
                if not task.inputs:
                    counts["rl_without_tests"] += 1
                elif cfg.rl_max_tasks == 0 or counts["rl"] + len(rl) < cfg.rl_max_tasks:
                    rl.append(exports.rl_row(task, index=counts["rl"] + len(rl),
                                             data_source=source))
            for f in files.values():
                f.write(rl if f is rl_file else sft)
            counts["sft"] += len(sft)
            counts["rl"] += len(rl)
            done = min(start + BATCH, len(kept))
            ev.progress(done, len(kept), unit="tasks exported")
            if ctx.stop_requested() and done < len(kept):
                for f in files.values():
                    f.abort()
                return False
        st = tally.seeds
        kept_seeds = [] if st is None else st.kept
        for start in range(0, len(kept_seeds), SEED_BATCH):
            sft, rl = [], []
            for seed in seeds.export_batch(kept_seeds[start : start + SEED_BATCH]):
                sft.append(exports.seed_sft_row(seed))
                if seed.inputs and (cfg.rl_max_tasks == 0
                                    or counts["rl"] + len(rl) < cfg.rl_max_tasks):
                    rl.append(exports.seed_rl_row(seed, index=counts["rl"] + len(rl),
                                                  data_source=source))
            for f in files.values():
                f.write(rl if f is rl_file else sft)
            for key, rows in (("sft", sft), ("rl", rl)):
                counts[key] += len(rows)
                st.exported[key] += len(rows)
            done = min(start + SEED_BATCH, len(kept_seeds))
            ev.progress(done, len(kept_seeds), unit="seeds exported")
            if ctx.stop_requested() and done < len(kept_seeds):
                for f in files.values():
                    f.abort()
                return False
        for f in files.values():
            if f is rl_file:
                f.commit(cfg.rl_val_fraction, cfg.rl_val_max_tasks, ctx.config.run.seed)
            else:
                f.commit()
    except BaseException:
        for f in files.values():
            f.abort()
        raise
    counts["rl_val"] = rl_file.val_rows
    stale = [out / f"sft.{fmt}" for fmt in ("jsonl", "parquet") if fmt not in cfg.export_formats]
    if cfg.rl_val_fraction == 0:
        stale.append(out / RL_VAL)
    for path in stale:  # a file of a format or split no longer asked for is stale
        if path.exists():
            path.unlink()
            ev.log(f"removed the stale {path.name} (not asked for by curate.export_formats / "
                   "curate.rl_val_fraction)")
    tally.exports = {name: f.path.relative_to(ctx.run.root).as_posix()
                     for name, f in files.items()}
    if rl_file.val_path is not None:
        tally.exports[RL_VAL] = rl_file.val_path.relative_to(ctx.run.root).as_posix()
        if counts["rl"] >= 1 and counts["rl_val"] == 0:
            ev.log(f"only {counts['rl']} RL task: it trains, and {RL_VAL} is empty (verl needs "
                   "a validation row: export two or more RL tasks)", level="warning")
    return True


def _write_card(ctx: StageContext, tally: _Tally, seeds_in_store: int) -> None:
    """exports/README.md: the dataset card (engine/curate/dataset_card.py), written atomically."""
    from engine.curate import dataset_card
    from engine.rundir import atomic_write_text

    out = ctx.run.exports_dir
    text = dataset_card.render(ctx.config, tally.summary(), seeds_in_store=seeds_in_store,
                               files=sorted(p.name for p in out.iterdir()
                                            if p.name in tally.exports))
    atomic_write_text(out / CARD, text)
    tally.exports[CARD] = (out / CARD).relative_to(ctx.run.root).as_posix()


# ---------------------------------------------------------------------------------------------
# Running it


def _require_libraries() -> None:
    missing = [m for m in ("numpy", "datasketch") if importlib.util.find_spec(m) is None]
    if missing:
        raise StageError(f"the curate stage needs {' and '.join(missing)}: run "
                         "`python -m pip install datasketch` (it brings numpy) in the engine's "
                         "Python environment")


def main(argv: Sequence[str] | None = None) -> int:
    """Run this stage alone through the engine CLI (``run ... --stages curate``)."""
    return run_stage_alone("curate", argv)


if __name__ == "__main__":
    sys.exit(main())
