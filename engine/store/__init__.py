"""The dataset store: one SQLite file per run, ``<run>/data/store.sqlite``.

Everything the pipeline makes lives here: seeds, the feature tree and its evolution steps,
sampled feature configs, tasks, candidate solutions, tests, per-test verdicts and the lineage
that ties a task back to its seeds. Stages write through ``Store``; the GUI's data browser reads
through ``query_tasks`` / ``get_task`` / ``lineage_of``. Only the standard library is used.

Inspect a store by hand::

    sqlite3 runs/<id>/data/store.sqlite
    sqlite> .tables
    sqlite> SELECT status, count(*) FROM tasks GROUP BY status;
    sqlite> SELECT * FROM tasks_full WHERE id = 42;          -- a task with its statement
    sqlite> SELECT t.id, t.title FROM tasks_fts f JOIN task_texts t ON t.task_id = f.rowid
       ...>  WHERE tasks_fts MATCH 'grid' LIMIT 5;

Design notes
- ``tasks`` holds only the short columns the task table shows and filters on; the wide text
  (title, statement, selected features, integration strategy) sits in ``task_texts``. A scan of
  ``tasks`` then touches a few MB, not the statements, so counts and filtered pages stay fast
  at 200k tasks. The view ``tasks_full`` joins the two for reading by hand.
- ``tasks_fts`` is an FTS5 index over ``task_texts`` (external content, kept in sync by
  triggers; porter stemming, so "integer" finds "integers"). User search text is never passed
  to FTS5 as syntax: ``fts_query`` turns it into quoted words and phrases (ANDed), so quotes,
  ``*``, ``-``, ``OR``, ``NEAR`` cannot raise an error; text with no word in it is no search.
  A search's hits are collected once into ``temp.search_hits`` and reused while the search and
  the data stay the same, so paging through one search reads the index once.
- ``task_categories`` (task_id, category) is filled by ``add_task`` from the top-level keys of
  the selected-features tree, for a fast feature-category filter.
- Pages use keyset pagination (``TaskQuery.after`` / ``before`` take a ``PageCursor``: the last
  sort value + id; ``from_end`` gives the last page), so the last page costs what the first
  does; ``offset`` is also supported for page-number jumps. ``TaskPage.total`` is an exact
  count; pass ``with_total=False`` on later pages to skip it. tests/bench/store_query.py
  measures all of this at 200k tasks (every page well under 0.1 s on 2 cores).
- ``close()`` after a bulk write runs a sampled ``ANALYZE`` (~0.3 s at 200k tasks): the
  planner needs it to pick the selective index when filters are skewed.
- ``seeds.problem_hash`` (case- and whitespace-blind) keeps one copy of a problem that turns
  up in two source files.
- ``agreement`` is NULL until verification; it sorts as -1 (before every real value).
- ``n_solutions`` / ``n_tests`` on ``tasks`` are maintained by triggers (rows in ``solutions`` /
  ``tests``; every candidate counts, rejected ones too).
- Lineage: ``lineage_of`` walks explicit ``lineage`` rows plus edges the schema already knows —
  task -> feature_config (``tasks.config_id``), feature -> seed (``seed_features``), feature ->
  evolution_step (an evolved feature's ``created_step``) — so stages never write the same fact
  twice. Config -> feature edges are explicit (``add_lineage``), written by the tasks stage.

Journal mode: WAL where the file system is local; on a network file system (NFS, Lustre, GPFS,
CIFS, BeeGFS, Ceph, sshfs, ...; detected from /proc/self/mounts) WAL's shared-memory index is
unsafe, so the store falls back to ``journal_mode=DELETE``. ``SYNTHSMITH_STORE_JOURNAL=wal|delete``
overrides the detection. ``Store.journal_mode`` says which one is in use.

One writer at a time. Sharded workers (Slurm array tasks, srun ranks) never write the run's
store: they read it read-only and write their own shard file, a ``ShardOutbox`` at
``data/shards/<stage>.<I>of<N>.sqlite`` (``shard_file``). That is a small dedicated schema,
not the store's: only the rows the shardable stages change — ``verdicts`` (solution_id,
test_id), ``tests`` (task_id, idx; whole rows), ``task_results`` (task_id) for tests/verify;
``seed_feature_paths`` (seed_id, path), ``generated_tasks`` (key), ``solutions`` (task_id,
idx) and ``synth_items`` (stage, item) for features/tasks/solutions — keyed by the run's
store's own ids or by natural keys, since shards never create ids. ``Store.merge_from(path)``
folds one file in, in one transaction, through the store's own write methods and upserts on
those keys (features by path, tasks by key, tests by ``(task_id, idx)``), and records it in
``merged_shards`` (file name, sha256 of its bytes, row counts) in the same transaction: a
file merged with the same hash is skipped, merging again would change nothing anyway, and a
crash mid-merge leaves the store as it was. ``merged_shards`` is created by the first merge
(bookkeeping, not dataset schema). Who merges, and when: ``engine/runner.py`` (the last shard
to complete, or ``python -m engine merge``).

Synthesis records (schema v2): ``synth_items`` holds what the features and tasks
stages did with each item (``seed:<id>``, ``cfg:<hash>``): ``ok`` with details (summary,
repairs, stage-1 feature roles), or ``rejected`` with the reason and the answer that caused
it. A rerun skips items with a record; ``item_reasons`` counts rejections by reason code;
``forget_rejected`` drops those of one code so that a rerun asks those items again.

Verification details (schema v3): ``task_texts.verify_meta`` is a JSON object the verify stage
writes with the task's result (``set_task_result(..., meta=...)``: statement samples, compiler
messages, per-candidate weight / eligibility / timing; free-form) and ``get_task`` returns as
``TaskDetail.verify_meta``. It sits with the wide text, not in ``tasks``, because compiler
messages can be kilobytes. A shard carries it in ``task_results.meta`` (shard files v3).

What it leaves out
- Merges of seeds and evolution steps: those stages are not shardable.
- No deletes in the API (tasks are rejected, not removed), but for ``forget_rejected``
  (rejection records, and a pending task's candidates); ``ON DELETE CASCADE`` keeps a hand
  ``DELETE FROM tasks`` consistent.
- RL rollouts: they live next to the store, in ``<run>/rollouts/rl/`` (``engine/rollouts.py``).

The package, by job (``engine.store`` re-exports the public names; import from it):
``records`` (what goes in and comes out, ``StoreError``, pure helpers), ``journal`` (WAL or
DELETE), ``tables`` (schema, migrations, the SQL a store and an outbox share), ``database``
(``Store`` and the merge), ``shard_outbox`` (``ShardOutbox``), and the bulk readers curation
uses (``accepted_tasks.TaskReader``, ``seed_problems.SeedReader``). ``StageWriter`` is what a
shardable stage writes through: a ``Store`` or a ``ShardOutbox``.
"""

from __future__ import annotations

from engine.store.database import Store
from engine.store.journal import JOURNAL_ENV, NETWORK_FS_TYPES, is_network_fs, mount_fstype
from engine.store.records import (
    MAX_PAGE_SIZE,
    SNIPPET_CLOSE,
    SNIPPET_OPEN,
    SNIPPET_PLAIN_CHARS,
    FeatureOrigin,
    ItemStatus,
    JournalMode,
    LineageEdge,
    NodeKind,
    PageCursor,
    Seed,
    SeedRecord,
    Solution,
    SolutionStatus,
    SortKey,
    StoreError,
    TaskDetail,
    TaskPage,
    TaskQuery,
    TaskRow,
    TaskStatus,
    Test,
    TestKind,
    TestSource,
    Verdict,
    canonical_json,
    fts_query,
    join_feature_path,
    problem_hash,
    split_feature_path,
)
from engine.store.shard_outbox import OUTBOX_VERSION, ShardOutbox, StageWriter, shard_file
from engine.store.tables import (
    FIRST_SOLUTION,
    MIGRATIONS,
    RAW_KEEP_CHARS,
    SCHEMA_VERSION,
    SharedSql,
)

__all__ = [
    "FIRST_SOLUTION",
    "FeatureOrigin",
    "ItemStatus",
    "JOURNAL_ENV",
    "JournalMode",
    "LineageEdge",
    "MAX_PAGE_SIZE",
    "MIGRATIONS",
    "NETWORK_FS_TYPES",
    "NodeKind",
    "OUTBOX_VERSION",
    "PageCursor",
    "RAW_KEEP_CHARS",
    "SCHEMA_VERSION",
    "SNIPPET_CLOSE",
    "SNIPPET_OPEN",
    "SNIPPET_PLAIN_CHARS",
    "Seed",
    "SeedRecord",
    "ShardOutbox",
    "StageWriter",
    "SharedSql",
    "Solution",
    "SolutionStatus",
    "SortKey",
    "Store",
    "StoreError",
    "TaskDetail",
    "TaskPage",
    "TaskQuery",
    "TaskRow",
    "TaskStatus",
    "Test",
    "TestKind",
    "TestSource",
    "Verdict",
    "canonical_json",
    "fts_query",
    "is_network_fs",
    "join_feature_path",
    "mount_fstype",
    "problem_hash",
    "shard_file",
    "split_feature_path",
]
