"""``Store``: a run's dataset store, the one writer of ``data/store.sqlite``, and its read
methods (the task table's pages, a task's detail, lineage); merging shard outboxes into it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, get_args

from engine.store.journal import _choose_journal
from engine.store.records import (
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
    _categories_of,
    _dump,
    _json_tree_paths,
    canonical_json,
    fts_query,
    join_feature_path,
    problem_hash,
    split_feature_path,
)
from engine.store.shard_outbox import _MERGED_SHARDS, OUTBOX_VERSION, _file_sha256
from engine.store.tables import (
    _RECORD_ITEM,
    FIRST_SOLUTION,
    MIGRATIONS,
    SCHEMA_VERSION,
    SharedSql,
    _create_v1,
)

# Sort expressions; most have an index whose leading columns are (expr, id).
_SORT_EXPR: dict[str, str] = {
    "id": "t.id",
    "agreement": "ifnull(t.agreement, -1.0)",
    "created_at": "t.created_at",
    "style": "t.style",
    "status": "t.status",
    # No index of their own for these three (a sort scans the filtered rows: fine up to ~1e5).
    "reject_reason": "ifnull(t.reject_reason, '')",
    "n_solutions": "t.n_solutions",
    "n_tests": "t.n_tests",
}




# ---------------------------------------------------------------------------------------------
# The store


class Store(SharedSql):
    """A run's dataset store. Use one ``Store`` from one thread at a time.

    ``Store(path)`` creates the file and schema if missing and migrates an older schema.
    ``readonly=True`` opens an existing store for browsing (no schema changes, no writes).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        readonly: bool = False,
        journal_mode: JournalMode = "auto",
        busy_timeout_s: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if readonly:
            if not self.path.exists():
                raise StoreError(f"no store at {self.path}: run the seeds stage first")
            uri = f"file:{self.path.resolve().as_posix()}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn = conn
        self._depth = 0
        self._changes_at_open = 0
        self._hits_key: tuple[str, int, int] | None = None
        self._hits_n = 0
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA cache_size = -65536")  # 64 MiB page cache for browsing
        if readonly:
            self.journal_mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        else:
            wanted = _choose_journal(self.path, journal_mode)
            self.journal_mode = conn.execute(f"PRAGMA journal_mode = {wanted}").fetchone()[0]
            sync = "NORMAL" if self.journal_mode == "wal" else "FULL"
            conn.execute(f"PRAGMA synchronous = {sync}")
        self._migrate()
        self._changes_at_open = conn.total_changes

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        return self._conn.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this engine's "
                f"{SCHEMA_VERSION}: open it with a newer SynthSmith engine"
            )
        if version == SCHEMA_VERSION:
            return
        if self.readonly:
            raise StoreError(
                f"{self.path} has schema version {version} (this engine uses {SCHEMA_VERSION}): "
                "open it once writable to migrate it"
            )
        if version == 0:
            has_tables = self._conn.execute(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table'"
            ).fetchone()[0]
            if has_tables:
                raise StoreError(f"{self.path} is an SQLite file but not a SynthSmith store")
            _create_v1(self._conn)
            self._conn.execute(f"PRAGMA user_version = {1}")
            version = 1
        while version < SCHEMA_VERSION:
            step = MIGRATIONS.get(version)
            if step is None:
                raise StoreError(f"no migration from schema version {version}")
            with self.transaction():
                step(self._conn)
                self._conn.execute(f"PRAGMA user_version = {version + 1}")
            version += 1

    def close(self) -> None:
        """Close; after a bulk load, refresh the planner statistics first (fast, sampled)."""
        if self._conn is None:
            return
        if not self.readonly and self._conn.total_changes - self._changes_at_open > 5000:
            with contextlib.suppress(sqlite3.Error):
                self.optimize()
        self._conn.close()
        self._conn = None  # type: ignore[assignment]

    def optimize(self) -> None:
        """Refresh query-planner statistics (sampled ANALYZE; takes well under a second)."""
        self._conn.execute("PRAGMA analysis_limit = 2000")
        self._conn.execute("ANALYZE")

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        # Several SELECTs that must see one snapshot (count + page + decoration).
        if self._depth:
            yield self._conn
            return
        self._conn.execute("BEGIN")
        try:
            yield self._conn
        finally:
            self._conn.execute("COMMIT")

    # -- seeds -------------------------------------------------------------------------------

    def add_seeds(self, records: Iterable[SeedRecord]) -> int:
        """Insert seeds, skipping any whose ``source_key`` is stored or whose problem text
        (``problem_hash``) is already there under another key. -> how many were inserted."""
        now = time.time()
        rows = [
            (r.source, r.source_key, r.problem, problem_hash(r.problem), _dump(r.solutions),
             _dump(r.tests), _dump(r.meta), now)
            for r in records
        ]
        with self.transaction():
            before = self._conn.total_changes
            self._conn.executemany(
                "INSERT INTO seeds(source, source_key, problem, problem_hash, solutions, tests,"
                " meta, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                rows,
            )
            return self._conn.total_changes - before

    def existing_seed_keys(self, keys: Iterable[str]) -> set[str]:
        """Which of these source keys are stored already."""
        keys = list(keys)
        found: set[str] = set()
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            found.update(k for (k,) in self._conn.execute(
                f"SELECT source_key FROM seeds WHERE source_key IN ({','.join('?' * len(chunk))})",
                chunk,
            ))
        return found

    def iter_seeds(self, *, after_id: int = 0, batch: int = 500) -> Iterator[Seed]:
        """All seeds with id > ``after_id`` in id order, read ``batch`` at a time."""
        last = after_id
        while True:
            rows = self._conn.execute(
                "SELECT id, source, source_key, problem, solutions, tests, meta FROM seeds"
                " WHERE id > ? ORDER BY id LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                return
            for r in rows:
                yield Seed(r[0], r[1], r[2], r[3], json.loads(r[4]), json.loads(r[5]), json.loads(r[6]))
            last = rows[-1][0]

    # -- features ----------------------------------------------------------------------------

    def add_feature(
        self,
        parts: Sequence[str],
        *,
        origin: FeatureOrigin = "seed",
        created_step: int | None = None,
    ) -> int:
        """Ensure the node ``parts`` (category first) and its ancestors exist. -> the node's id.

        Existing nodes are left as they are (their origin and step record who made them first).
        """
        if origin not in get_args(FeatureOrigin):
            raise ValueError(f"origin={origin!r}: use one of {get_args(FeatureOrigin)}")
        parts = list(parts)
        path = join_feature_path(parts)
        with self.transaction():
            row = self._conn.execute("SELECT id FROM features WHERE path = ?", (path,)).fetchone()
            if row:
                return row[0]
            parent_id = None
            if len(parts) > 1:
                parent_id = self.add_feature(parts[:-1], origin=origin, created_step=created_step)
            cur = self._conn.execute(
                "INSERT INTO features(parent_id, category, name, path, depth, origin, created_step)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (parent_id, parts[0], parts[-1], path, len(parts) - 1, origin, created_step),
            )
            return cur.lastrowid

    def link_seed_features(self, seed_id: int, feature_ids: Iterable[int]) -> int:
        """Record that a seed mentions these features; each new link adds 1 to the feature's
        frequency (re-linking is a no-op). -> new links."""
        new = 0
        with self.transaction():
            for fid in dict.fromkeys(feature_ids):
                cur = self._conn.execute(
                    "INSERT INTO seed_features(seed_id, feature_id) VALUES (?, ?)"
                    " ON CONFLICT DO NOTHING",
                    (seed_id, fid),
                )
                if cur.rowcount:
                    self._conn.execute(
                        "UPDATE features SET frequency = frequency + 1 WHERE id = ?", (fid,)
                    )
                    new += 1
        return new

    def add_evolution_step(
        self, step: int, *, sampled: Any, expansion: Any, n_new_features: int
    ) -> int:
        """Record one evolution step (idempotent on ``step``: a rerun keeps the first). -> id."""
        with self.transaction():
            self._conn.execute(
                "INSERT INTO evolution_steps(step, sampled, expansion, n_new_features, created_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(step) DO NOTHING",
                (step, _dump(sampled), _dump(expansion), n_new_features, time.time()),
            )
            return self._conn.execute(
                "SELECT id FROM evolution_steps WHERE step = ?", (step,)
            ).fetchone()[0]

    def evolution_step_ids(self) -> dict[int, int]:
        """Recorded evolution steps: step number -> row id."""
        return dict(self._conn.execute("SELECT step, id FROM evolution_steps"))

    def add_evolution_round(self, *, step: int, sampled: Any, expansion: Any,
                            new_paths: Sequence[Sequence[str]],
                            sampled_paths: Sequence[Sequence[str]]) -> int:
        """One evolve round in one transaction: its new features (origin ``evolve``,
        ``created_step`` = step; ones that exist already are left as they are), its
        ``evolution_steps`` row, and lineage step -> every feature it sampled. Idempotent on
        ``step``. -> the step's row id."""
        with self.transaction():
            known = self.evolution_step_ids()
            if step in known:
                return known[step]
            made = 0
            for path in new_paths:
                before = self._conn.total_changes
                self.add_feature(path, origin="evolve", created_step=step)
                made += self._conn.total_changes > before
            step_id = self.add_evolution_step(step, sampled=sampled, expansion=expansion,
                                              n_new_features=made)
            for fid in self._feature_ids(sampled_paths):
                self.add_lineage("evolution_step", step_id, "feature", fid, "sampled")
            return step_id

    def add_feature_config(
        self, config: Any, *, shape: Sequence[int], n_leaves: int, rng_seed: int
    ) -> tuple[int, bool]:
        """Store a sampled config, de-duplicated by canonical JSON. -> (id, newly added)."""
        canonical = canonical_json(config)
        with self.transaction():
            cur = self._conn.execute(
                "INSERT INTO feature_configs(canonical, shape, n_leaves, rng_seed, created_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(canonical) DO NOTHING",
                (canonical, ",".join(str(k) for k in shape), n_leaves, rng_seed, time.time()),
            )
            if cur.rowcount:
                return cur.lastrowid, True
            row = self._conn.execute(
                "SELECT id FROM feature_configs WHERE canonical = ?", (canonical,)
            ).fetchone()
            return row[0], False

    # -- tasks, solutions, tests, verdicts ---------------------------------------------------

    def add_task(
        self,
        *,
        style: str,
        title: str,
        statement: str,
        config_id: int | None = None,
        selected_features: Any = None,
        integration_strategy: str = "",
        categories: Iterable[str] | None = None,
        key: str | None = None,
        created_at: float | None = None,
    ) -> int:
        """Add a pending task. With a ``key`` already stored, returns that task's id unchanged.

        ``categories`` default to the top-level keys of ``selected_features`` with a value.
        """
        with self.transaction():
            if key is not None:
                row = self._conn.execute("SELECT id FROM tasks WHERE key = ?", (key,)).fetchone()
                if row:
                    return row[0]
            cur = self._conn.execute(
                "INSERT INTO tasks(key, config_id, style, created_at) VALUES (?, ?, ?, ?)",
                (key, config_id, style, time.time() if created_at is None else created_at),
            )
            task_id = cur.lastrowid
            self._conn.execute(
                "INSERT INTO task_texts(task_id, title, statement, selected_features,"
                " integration_strategy) VALUES (?, ?, ?, ?, ?)",
                (task_id, title, statement, _dump(selected_features or {}), integration_strategy),
            )
            cats = _categories_of(selected_features) if categories is None else categories
            self._conn.executemany(
                "INSERT INTO task_categories(category, task_id) VALUES (?, ?)"
                " ON CONFLICT DO NOTHING",
                [(c, task_id) for c in dict.fromkeys(cats)],
            )
            return task_id

    def add_solution(
        self,
        task_id: int,
        idx: int,
        *,
        code: str | None,
        status: SolutionStatus = "ok",
        reject_reason: str | None = None,
        language: str = "python",
        reasoning: str | None = None,
    ) -> int:
        """Add or replace candidate ``idx`` of a task. -> the solution's id."""
        with self.transaction():
            self._conn.execute(
                "INSERT INTO solutions(task_id, idx, language, code, reasoning, status,"
                " reject_reason, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(task_id, idx) DO UPDATE SET language = excluded.language,"
                " code = excluded.code, reasoning = excluded.reasoning, status = excluded.status,"
                " reject_reason = excluded.reject_reason",
                (task_id, idx, language, code, reasoning, status, reject_reason, time.time()),
            )
            return self._conn.execute(
                "SELECT id FROM solutions WHERE task_id = ? AND idx = ?", (task_id, idx)
            ).fetchone()[0]

    def add_test(
        self,
        task_id: int,
        idx: int,
        *,
        input: str,
        kind: TestKind,
        source: TestSource,
        expected_output: str | None = None,
        weight: float = 1.0,
        meta: Mapping[str, Any] | None = None,
    ) -> int:
        """Add or replace test ``idx`` of a task (verify re-adds it with its label). -> id."""
        with self.transaction():
            self._conn.execute(
                "INSERT INTO tests(task_id, idx, kind, source, input, expected_output, weight,"
                " meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(task_id, idx) DO UPDATE SET kind = excluded.kind,"
                " source = excluded.source, input = excluded.input,"
                " expected_output = excluded.expected_output, weight = excluded.weight,"
                " meta = excluded.meta",
                (task_id, idx, kind, source, input, expected_output, weight, _dump(dict(meta or {}))),
            )
            return self._conn.execute(
                "SELECT id FROM tests WHERE task_id = ? AND idx = ?", (task_id, idx)
            ).fetchone()[0]

    def add_verdicts(self, verdicts: Iterable[Verdict]) -> int:
        """Insert or replace verdicts (one per solution x test). -> rows written."""
        rows = [
            (v.solution_id, v.test_id, v.status, v.time_s, v.memory_kb, v.output_hash)
            for v in verdicts
        ]
        with self.transaction():
            self._conn.executemany(
                "INSERT INTO verdicts(solution_id, test_id, status, time_s, memory_kb, output_hash)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(solution_id, test_id) DO UPDATE SET"
                " status = excluded.status, time_s = excluded.time_s,"
                " memory_kb = excluded.memory_kb, output_hash = excluded.output_hash",
                rows,
            )
        return len(rows)

    def set_task_result(
        self,
        task_id: int,
        status: TaskStatus,
        reason: str | None = None,
        agreement: float | None = None,
        golden_solution_id: int | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        """Record verification's outcome for a task. ``meta``: what verification found out
        (JSON-able; ``TaskDetail.verify_meta``); None leaves the stored one as it is (``{}``
        on a task never given one), so a later stage that only changes the status (curate)
        keeps it; ``{}`` clears it."""
        if status not in get_args(TaskStatus):
            raise ValueError(f"status={status!r}: use one of {get_args(TaskStatus)}")
        meta_json = None if meta is None else _dump(dict(meta))
        with self.transaction():
            cur = self._conn.execute(
                "UPDATE tasks SET status = ?, reject_reason = ?, agreement = ?,"
                " golden_solution_id = ? WHERE id = ?",
                (status, reason, agreement, golden_solution_id, task_id),
            )
            if cur.rowcount == 0:
                raise KeyError(f"no task {task_id}")
            if meta_json is not None:
                self._conn.execute("UPDATE task_texts SET verify_meta = ? WHERE task_id = ?",
                                   (meta_json, task_id))

    def task_id_for_key(self, key: str) -> int | None:
        """The id of the task stored under ``key`` (``add_task(key=...)``), if any."""
        row = self._conn.execute("SELECT id FROM tasks WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def seed_reference(self, task_id: int) -> str | None:
        """The reference solution of the seed a task was made from (``seeds.as_tasks``: the
        lineage ``task -seed_problem-> seed``); None for a synthesized task."""
        row = self._conn.execute(
            f"SELECT {FIRST_SOLUTION} FROM lineage l JOIN seeds ON seeds.id = l.parent_id"
            " WHERE l.child_kind = 'task' AND l.child_id = ? AND l.parent_kind = 'seed'"
            "   AND l.relation = 'seed_problem'", (task_id,)).fetchone()
        return row[0] if row else None

    def add_lineage(
        self, child_kind: NodeKind, child_id: int, parent_kind: NodeKind, parent_id: int,
        relation: str,
    ) -> None:
        """Record that ``child`` was made from ``parent`` (idempotent)."""
        kinds = get_args(NodeKind)
        if child_kind not in kinds or parent_kind not in kinds:
            raise ValueError(f"lineage kinds must be among {kinds}")
        with self.transaction():
            self._conn.execute(
                "INSERT INTO lineage VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
                " relation = excluded.relation",
                (child_kind, child_id, parent_kind, parent_id, relation),
            )

    # -- synthesis steps (features, evolve, tasks, solutions) --------------------------------



    def item_records(self, stage: str, status: ItemStatus | None = None,
                     limit: int = 1000) -> list[dict[str, Any]]:
        """Records of ``stage`` (optionally one status), oldest first, as dicts."""
        sql = ("SELECT item, status, reason, detail, raw, created_at FROM synth_items"
               " WHERE stage = ?" + (" AND status = ?" if status else "")
               + " ORDER BY created_at, item LIMIT ?")
        args = (stage, status, limit) if status else (stage, limit)
        return [{"item": i, "status": st, "reason": r, "detail": json.loads(d), "raw": raw,
                 "created_at": t} for i, st, r, d, raw, t in self._conn.execute(sql, args)]

    def forget_rejected(self, stage: str, wanted: str) -> int:
        """Drop the rejections of ``stage`` whose reason code is ``wanted`` or ends in
        ``_<wanted>`` (``llm_http_400`` matches ``extract_llm_http_400``), so that a rerun
        asks those items again (``python -m engine run --retry-rejected``). For ``solutions``
        the item is a pending task: all its candidates go, and the rerun asks for them anew
        (unchanged requests come back from the response cache). -> items forgotten."""
        def matches(reason: str | None) -> bool:
            code = (reason or "").partition(":")[0].strip()
            return code == wanted or code.endswith("_" + wanted)

        with self.transaction():
            if stage == "solutions":
                rows = self._conn.execute(
                    "SELECT DISTINCT s.task_id, s.reject_reason FROM solutions s JOIN tasks t"
                    " ON t.id = s.task_id WHERE s.status = 'rejected' AND t.status = 'pending'")
                tasks = sorted({t for t, reason in rows if matches(reason)})
                self._conn.executemany("DELETE FROM solutions WHERE task_id = ?",
                                       [(t,) for t in tasks])
                return len(tasks)
            rows = self._conn.execute("SELECT item, reason FROM synth_items WHERE stage = ?"
                                      " AND status = 'rejected'", (stage,)).fetchall()
            items = [item for item, reason in rows if matches(reason)]
            self._conn.executemany("DELETE FROM synth_items WHERE stage = ? AND item = ?",
                                   [(stage, i) for i in items])
            return len(items)

    def item_reasons(self, stage: str | None = None) -> list[tuple[str, str, int]]:
        """(stage, reason code, count) of rejected items, most common first. The code is the
        part of the reason before its first ':' (``select_json`` of ``select_json: truncated``)."""
        sql = ("SELECT stage, CASE WHEN instr(reason, ':') > 0"
               " THEN substr(reason, 1, instr(reason, ':') - 1) ELSE ifnull(reason, '') END AS code,"
               " count(*) AS n FROM synth_items WHERE status = 'rejected'"
               + (" AND stage = ?" if stage else "") + " GROUP BY stage, code"
               " ORDER BY n DESC, stage, code")
        return self._conn.execute(sql, (stage,) if stage else ()).fetchall()

    def add_seed_features(self, seed_id: int, paths: Iterable[Sequence[str]]) -> int:
        """The features a seed mentions (every node path, ancestors included): create the
        nodes and link the seed to each (frequency + 1 per new link). -> new links."""
        with self.transaction():
            ids = [self.add_feature(p, origin="seed") for p in paths]
            return self.link_seed_features(seed_id, ids)

    def feature_rows(self) -> list[tuple[tuple[str, ...], int]]:
        """Every feature node as (path parts, frequency), in path order (parents first).

        Path order, not id order: ids depend on the order writers happened to add nodes (one
        process, or shards merged), the tree a sampler walks must not."""
        return [(tuple(split_feature_path(p)), f) for p, f in self._conn.execute(
            "SELECT path, frequency FROM features ORDER BY path")]

    def add_generated_task(
        self, *, key: str, config: Any, shape: Sequence[int], n_leaves: int, rng_seed: int,
        style: str, title: str, statement: str, selected_features: Any,
        integration_strategy: str, status: TaskStatus = "pending",
        reject_reason: str | None = None,
    ) -> int:
        """A task made from a feature config, in one transaction: the config (de-duplicated),
        the task (idempotent on ``key``), lineage config -> each feature it contains and
        task -> each selected feature, and a rejection (e.g. a hint leak). -> the task id."""
        with self.transaction():
            row = self._conn.execute("SELECT id FROM tasks WHERE key = ?", (key,)).fetchone()
            if row:
                return row[0]
            config_id, _ = self.add_feature_config(config, shape=shape, n_leaves=n_leaves,
                                                   rng_seed=rng_seed)
            task_id = self.add_task(style=style, title=title, statement=statement,
                                    config_id=config_id, selected_features=selected_features,
                                    integration_strategy=integration_strategy, key=key)
            for kind, kid, tree, relation in (("feature_config", config_id, config, "contains"),
                                              ("task", task_id, selected_features, "uses")):
                for fid in self._feature_ids(_json_tree_paths(tree)):
                    self.add_lineage(kind, kid, "feature", fid, relation)
            if status != "pending":
                self.set_task_result(task_id, status, reject_reason)
            return task_id

    def _feature_ids(self, paths: Iterable[Sequence[str]]) -> list[int]:
        out = []
        for p in paths:
            row = self._conn.execute("SELECT id FROM features WHERE path = ?",
                                     (join_feature_path(p),)).fetchone()
            if row:
                out.append(row[0])
        return out

    def task_keys(self, prefix: str) -> set[str]:
        """Keys of tasks whose key starts with ``prefix``."""
        return {k for (k,) in self._conn.execute(
            "SELECT key FROM tasks WHERE key >= ? AND key < ?", (prefix, prefix + "\uffff"))}




    def evolution_new_features(self) -> dict[int, int]:
        """step -> features that evolution round added."""
        return dict(self._conn.execute("SELECT step, n_new_features FROM evolution_steps"))


    # -- shards ------------------------------------------------------------------------------

    def merge_from(self, shard_path: str | os.PathLike[str]) -> dict[str, int]:
        """Fold a shard file (``ShardOutbox``) into this store. -> rows per table.

        One transaction: upserts on natural keys (tests by (task_id, idx), verdicts by
        (solution_id, test_id), task results by task id), plus a ``merged_shards`` row (file
        name, sha256 of its bytes, counts). A file already merged with the same hash is
        skipped (``{"skipped": 1, ...}``); merging it again would change nothing anyway. A
        crash mid-merge leaves the store as it was.
        """
        return _merge_from(self, shard_path)

    def merged_shards(self) -> dict[str, dict[str, Any]]:
        """Shard files merged into this store: name -> {sha256, counts, merged_at}."""
        return _merged_shards(self)

    # -- reading -----------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Rows per table, plus ``tasks/<status>`` for each task status."""
        tables = (
            "seeds", "features", "seed_features", "evolution_steps", "feature_configs",
            "tasks", "solutions", "tests", "verdicts", "lineage", "synth_items",
        )
        with self._read() as conn:
            out = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
            for status in get_args(TaskStatus):
                out[f"tasks/{status}"] = conn.execute(
                    "SELECT count(*) FROM tasks WHERE status = ?", (status,)
                ).fetchone()[0]
        return out

    def reject_reasons(self) -> list[tuple[str, int]]:
        """Distinct reject reasons with their task counts, most common first (for a filter)."""
        return self._conn.execute(
            "SELECT reject_reason, count(*) AS n FROM tasks WHERE reject_reason IS NOT NULL"
            " GROUP BY reject_reason ORDER BY n DESC, reject_reason"
        ).fetchall()

    def get_task(self, task_id: int) -> TaskDetail | None:
        """A task with its solutions, tests and verdicts, or None."""
        with self._read() as conn:
            r = conn.execute(
                "SELECT t.id, t.key, t.config_id, t.style, x.title, x.statement,"
                " x.selected_features, x.integration_strategy, t.status, t.reject_reason,"
                " t.agreement, t.golden_solution_id, t.n_solutions, t.n_tests, t.created_at,"
                " x.verify_meta FROM tasks t JOIN task_texts x ON x.task_id = t.id"
                " WHERE t.id = ?",
                (task_id,),
            ).fetchone()
            if r is None:
                return None
            cats = [c for (c,) in conn.execute(
                "SELECT category FROM task_categories WHERE task_id = ? ORDER BY category",
                (task_id,),
            )]
            sols = [Solution(*s) for s in conn.execute(
                "SELECT id, task_id, idx, language, code, reasoning, status, reject_reason"
                " FROM solutions WHERE task_id = ? ORDER BY idx", (task_id,),
            )]
            tests = [
                Test(*t[:8], json.loads(t[8]))
                for t in conn.execute(
                    "SELECT id, task_id, idx, kind, source, input, expected_output, weight, meta"
                    " FROM tests WHERE task_id = ? ORDER BY idx", (task_id,),
                )
            ]
            verdicts = [Verdict(*v) for v in conn.execute(
                "SELECT v.solution_id, v.test_id, v.status, v.time_s, v.memory_kb, v.output_hash"
                " FROM solutions s JOIN verdicts v ON v.solution_id = s.id"
                " WHERE s.task_id = ? ORDER BY v.solution_id, v.test_id", (task_id,),
            )]
        return TaskDetail(
            id=r[0], key=r[1], config_id=r[2], style=r[3], title=r[4], statement=r[5],
            selected_features=json.loads(r[6]), integration_strategy=r[7], categories=cats,
            status=r[8], reject_reason=r[9], agreement=r[10], golden_solution_id=r[11],
            n_solutions=r[12], n_tests=r[13], created_at=r[14],
            solutions=sols, tests=tests, verdicts=verdicts, verify_meta=json.loads(r[15]),
        )

    def _parents(self, kind: str, node_id: int) -> list[tuple[str, int, str]]:
        conn = self._conn
        out = [
            (pk, pid, rel)
            for pk, pid, rel in conn.execute(
                "SELECT parent_kind, parent_id, relation FROM lineage"
                " WHERE child_kind = ? AND child_id = ?", (kind, node_id),
            )
        ]
        if kind == "task":
            row = conn.execute("SELECT config_id FROM tasks WHERE id = ?", (node_id,)).fetchone()
            if row and row[0] is not None:
                out.append(("feature_config", row[0], "sampled_from"))
        elif kind == "feature":
            out += [
                ("seed", sid, "extracted_from")
                for (sid,) in conn.execute(
                    "SELECT seed_id FROM seed_features WHERE feature_id = ? ORDER BY seed_id",
                    (node_id,),
                )
            ]
            row = conn.execute(
                "SELECT e.id FROM features f JOIN evolution_steps e ON e.step = f.created_step"
                " WHERE f.id = ? AND f.origin = 'evolve'", (node_id,),
            ).fetchone()
            if row:
                out.append(("evolution_step", row[0], "expanded_in"))
        elif kind in ("solution", "test"):
            table = "solutions" if kind == "solution" else "tests"
            row = conn.execute(f"SELECT task_id FROM {table} WHERE id = ?", (node_id,)).fetchone()
            if row:
                out.append(("task", row[0], "made_for"))
        return out

    def lineage_of(self, kind: NodeKind, node_id: int, *, max_edges: int = 2000) -> list[LineageEdge]:
        """Every ancestor edge of a node, nearest first (breadth-first, each node once).

        A task walks to its feature config, the config to its features (explicit edges), each
        feature to the seeds that mention it or the evolution step that made it.
        """
        edges: list[LineageEdge] = []
        seen_edges: set[tuple[str, int, str, int]] = set()
        seen_nodes = {(kind, node_id)}
        frontier = [(kind, node_id)]
        depth = 0
        with self._read():
            while frontier and len(edges) < max_edges:
                depth += 1
                nxt = []
                for ck, cid in frontier:
                    for pk, pid, rel in self._parents(ck, cid):
                        if (ck, cid, pk, pid) in seen_edges:
                            continue
                        seen_edges.add((ck, cid, pk, pid))
                        edges.append(LineageEdge(ck, cid, pk, pid, rel, depth))
                        if (pk, pid) not in seen_nodes:
                            seen_nodes.add((pk, pid))
                            nxt.append((pk, pid))
                        if len(edges) >= max_edges:
                            break
                frontier = nxt
        return edges[:max_edges]

    # -- the task table: filtered, searched, sorted pages ------------------------------------

    def query_tasks(self, q: TaskQuery) -> TaskPage:
        """One page of the task table. Fast at 200k tasks for any filter, search and position."""
        where, params = _filter_sql(q)
        match = fts_query(q.search)
        with self._read() as conn:
            if match is not None:
                n_hits = self._search_hits(conn, match)
                n_tasks = conn.execute("SELECT ifnull(max(id), 0) FROM tasks").fetchone()[0]
                # Few hits: let them drive the loop. Many: walk the filter or sort index and
                # probe the hits (the unary + keeps SQLite from looping over 100k+ hits).
                probe = "+" if n_hits * 4 > n_tasks else ""
                where = f"{where} AND {probe}t.id IN temp.search_hits"
            total = None
            if q.with_total:
                if match is not None and not params:
                    total = n_hits
                elif match is None and q.category is not None and len(params) == 1:
                    total = conn.execute(  # the category index alone answers this one
                        "SELECT count(*) FROM task_categories WHERE category = ?", params
                    ).fetchone()[0]
                else:
                    total = conn.execute(
                        f"SELECT count(*) FROM tasks t WHERE {where}", params
                    ).fetchone()[0]
            ids, has_more = self._page_ids(conn, q, where, params)
            rows = self._decorate(conn, [i for i, _ in ids], match)
        if not rows:
            return TaskPage([], total, None, None)
        cursors = [PageCursor(v, i) for i, v in ids]
        if q.before is not None or q.from_end:
            next_c = cursors[-1] if q.before is not None else None
            prev_c = cursors[0] if has_more else None
        else:
            next_c = cursors[-1] if has_more else None
            prev_c = cursors[0] if (q.after is not None or q.offset > 0) else None
        return TaskPage(rows, total, next_c, prev_c)

    def _search_hits(self, conn: sqlite3.Connection, match: str) -> int:
        """Fill ``temp.search_hits`` with the rowids matching ``match``. -> how many.

        Kept until the search text or the data changes (``data_version`` moves when another
        connection commits, ``total_changes`` when this one writes), so paging through one
        search reads the full-text index once.
        """
        data_version = conn.execute("PRAGMA data_version").fetchone()[0]
        if self._hits_key == (match, data_version, conn.total_changes):
            return self._hits_n
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS search_hits(id INTEGER PRIMARY KEY)")
        conn.execute("DELETE FROM temp.search_hits")
        conn.execute(
            "INSERT INTO temp.search_hits(id) SELECT rowid FROM tasks_fts WHERE tasks_fts MATCH ?",
            (match,),
        )
        self._hits_n = conn.execute("SELECT count(*) FROM temp.search_hits").fetchone()[0]
        self._hits_key = (match, data_version, conn.total_changes)
        return self._hits_n

    def _page_ids(self, conn, q: TaskQuery, where: str, params: list[Any]):
        """-> ([(id, sort value)] in display order, whether more rows lie beyond the page)."""
        expr = _SORT_EXPR[q.sort]
        backwards = q.before is not None or q.from_end
        order = "DESC" if q.descending != backwards else "ASC"  # the way we walk the index
        cond, args = where, list(params)
        cursor = q.before if q.before is not None else q.after
        if cursor is not None:
            op = "<" if order == "DESC" else ">"
            if q.sort == "id":
                cond += f" AND t.id {op} ?"
                args.append(cursor.id)
            else:
                cond += f" AND ({expr}, t.id) {op} (?, ?)"
                args += [cursor.value, cursor.id]
        found = conn.execute(
            f"SELECT t.id, {expr} FROM tasks t WHERE {cond}"
            f" ORDER BY {expr} {order}, t.id {order} LIMIT ? OFFSET ?",
            [*args, q.limit + 1, q.offset],
        ).fetchall()
        has_more = len(found) > q.limit
        found = found[: q.limit]
        if backwards:
            found.reverse()
        return found, has_more

    def _decorate(self, conn, ids: list[int], match: str | None) -> list[TaskRow]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        base = {
            r[0]: r
            for r in conn.execute(
                "SELECT t.id, x.title, t.style, t.status, t.reject_reason, t.agreement,"
                " t.n_solutions, t.n_tests, t.created_at, substr(x.statement, 1, ?)"
                f" FROM tasks t JOIN task_texts x ON x.task_id = t.id WHERE t.id IN ({marks})",
                [SNIPPET_PLAIN_CHARS, *ids],
            )
        }
        snippets: dict[int, str] = {}
        if match is not None:
            snippets = dict(conn.execute(
                f"SELECT rowid, snippet(tasks_fts, 1, ?, ?, '\u2026', 24) FROM tasks_fts"
                f" WHERE tasks_fts MATCH ? AND rowid IN ({marks})",
                [SNIPPET_OPEN, SNIPPET_CLOSE, match, *ids],
            ).fetchall())
        out = []
        for i in ids:
            r = base[i]
            snippet = snippets.get(i) or " ".join(r[9].split())
            out.append(TaskRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], snippet))
        return out


def _filter_sql(q: TaskQuery) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if q.style is not None:
        clauses.append("t.style = ?")
        params.append(q.style)
    if q.status is not None:
        clauses.append("t.status = ?")
        params.append(q.status)
    if q.reject_reason is not None:
        clauses.append("t.reject_reason = ?")
        params.append(q.reject_reason)
    # Written against the sort expression so the agreement index serves the range, too.
    if q.agreement_min is not None:
        clauses.append("ifnull(t.agreement, -1.0) >= ?")
        params.append(q.agreement_min)
    if q.agreement_max is not None:
        clauses.append("t.agreement IS NOT NULL AND ifnull(t.agreement, -1.0) <= ?")
        params.append(q.agreement_max)
    if q.category is not None:
        clauses.append("t.id IN (SELECT task_id FROM task_categories WHERE category = ?)")
        params.append(q.category)
    return (" AND ".join(clauses) or "1"), params




def _merge_from(store: Store, shard_path: str | os.PathLike[str]) -> dict[str, int]:
    path = Path(shard_path)
    if not path.is_file():
        raise StoreError(f"no shard file at {path}")
    digest = _file_sha256(path)
    conn = store._conn
    src = sqlite3.connect(f"file:{path.resolve().as_posix()}?mode=ro", uri=True)
    try:
        version = src.execute("PRAGMA user_version").fetchone()[0]
        if not 1 <= version <= OUTBOX_VERSION:
            raise StoreError(f"{path} is not a shard file of version 1 to {OUTBOX_VERSION}")
        with store.transaction():
            conn.execute(_MERGED_SHARDS)
            row = conn.execute("SELECT sha256 FROM merged_shards WHERE name = ?",
                               (path.name,)).fetchone()
            names = ("seed_features", "evolution_steps", "tasks", "solutions", "synth_items",
                     "tests", "verdicts", "task_results")
            if row is not None and row[0] == digest:
                return {**dict.fromkeys(names, 0), "skipped": 1}
            counts = {**dict.fromkeys(names, 0), "skipped": 0}
            if version >= 2:
                counts.update(_merge_synthesis(store, src))
            # tests first: verdicts reference them by the main store's ids
            for r in src.execute("SELECT task_id, idx, kind, source, input, expected_output,"
                                 " weight, meta FROM tests ORDER BY task_id, idx"):
                conn.execute(
                    "INSERT INTO tests(task_id, idx, kind, source, input, expected_output,"
                    " weight, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT(task_id, idx) DO UPDATE SET kind = excluded.kind,"
                    " source = excluded.source, input = excluded.input,"
                    " expected_output = excluded.expected_output, weight = excluded.weight,"
                    " meta = excluded.meta", r)
                counts["tests"] += 1
            cur = src.execute("SELECT solution_id, test_id, status, time_s, memory_kb,"
                              " output_hash FROM verdicts")
            while batch := cur.fetchmany(5000):
                conn.executemany(
                    "INSERT INTO verdicts(solution_id, test_id, status, time_s, memory_kb,"
                    " output_hash) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(solution_id, test_id)"
                    " DO UPDATE SET status = excluded.status, time_s = excluded.time_s,"
                    " memory_kb = excluded.memory_kb, output_hash = excluded.output_hash", batch)
                counts["verdicts"] += len(batch)
            # A file from before v3 has no meta column: its tasks keep their verify_meta.
            has_meta = "meta" in {c[1] for c in src.execute("PRAGMA table_info(task_results)")}
            for r in src.execute("SELECT task_id, status, reject_reason, agreement,"
                                 " golden_solution_id, " + ("meta" if has_meta else "NULL")
                                 + " FROM task_results"):
                done = conn.execute(
                    "UPDATE tasks SET status = ?, reject_reason = ?, agreement = ?,"
                    " golden_solution_id = ? WHERE id = ?", (*r[1:5], r[0])).rowcount
                if not done:
                    raise StoreError(f"{path} decides task {r[0]}, which is not in "
                                     f"{store.path}: was it made for another run?")
                if r[5] is not None:
                    conn.execute("UPDATE task_texts SET verify_meta = ? WHERE task_id = ?",
                                 (r[5], r[0]))
                counts["task_results"] += 1
            conn.execute(
                "INSERT INTO merged_shards(name, sha256, counts, merged_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET sha256 = excluded.sha256,"
                " counts = excluded.counts, merged_at = excluded.merged_at",
                (path.name, digest, _dump(counts), time.time()))
            return counts
    finally:
        src.close()


def _merge_synthesis(store: Store, src: sqlite3.Connection) -> dict[str, int]:
    """The v2 tables of a shard file, folded in through the store's own write methods."""
    counts = {"seed_features": 0, "evolution_steps": 0, "tasks": 0, "solutions": 0,
              "synth_items": 0}
    by_seed: dict[int, list[list[str]]] = {}
    for seed_id, path in src.execute("SELECT seed_id, path FROM seed_feature_paths"
                                     " ORDER BY seed_id, path"):
        by_seed.setdefault(seed_id, []).append(split_feature_path(path))
    for seed_id, paths in by_seed.items():
        store.add_seed_features(seed_id, paths)
        counts["seed_features"] += len(paths)
    for (args,) in src.execute("SELECT args FROM evolution_rounds ORDER BY step"):
        store.add_evolution_round(**json.loads(args))
        counts["evolution_steps"] += 1
    for (args,) in src.execute("SELECT args FROM generated_tasks ORDER BY rowid"):
        store.add_generated_task(**json.loads(args))
        counts["tasks"] += 1
    for r in src.execute("SELECT task_id, idx, language, code, reasoning, status, reject_reason"
                         " FROM solutions ORDER BY task_id, idx"):
        store.add_solution(r[0], r[1], language=r[2], code=r[3], reasoning=r[4], status=r[5],
                           reject_reason=r[6])
        counts["solutions"] += 1
    rows = src.execute("SELECT stage, item, status, reason, detail, raw, created_at"
                       " FROM synth_items").fetchall()
    store._conn.executemany(_RECORD_ITEM, rows)
    counts["synth_items"] = len(rows)
    return counts


def _merged_shards(store: Store) -> dict[str, dict[str, Any]]:
    has = store._conn.execute(
        "SELECT count(*) FROM sqlite_schema WHERE name = 'merged_shards'").fetchone()[0]
    if not has:
        return {}
    return {name: {"sha256": h, "counts": json.loads(c), "merged_at": at}
            for name, h, c, at in store._conn.execute(
                "SELECT name, sha256, counts, merged_at FROM merged_shards ORDER BY name")}

