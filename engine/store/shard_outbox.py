"""``ShardOutbox``: what one shard of a shardable stage writes instead of the run's store
(``data/shards/<stage>.<I>of<N>.sqlite``), folded in later by ``Store.merge_from``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol, get_args

from engine.store.journal import _choose_journal
from engine.store.records import (
    ItemStatus,
    JournalMode,
    SolutionStatus,
    StoreError,
    TaskStatus,
    TestKind,
    TestSource,
    Verdict,
    _dump,
    join_feature_path,
)
from engine.store.tables import SharedSql

# ---------------------------------------------------------------------------------------------
# Shard outboxes and the merge

_OUTBOX_SCHEMA = """
CREATE TABLE outbox_meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE verdicts (                    -- keyed by the main store's solution and test ids
    solution_id  INTEGER NOT NULL,
    test_id      INTEGER NOT NULL,
    status       TEXT NOT NULL,
    time_s       REAL,
    memory_kb    INTEGER,
    output_hash  TEXT,
    PRIMARY KEY (solution_id, test_id)
) WITHOUT ROWID;
CREATE TABLE tests (                       -- whole rows, keyed by (main task id, idx)
    task_id          INTEGER NOT NULL,
    idx              INTEGER NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('sample', 'edge', 'random', 'stress')),
    source           TEXT NOT NULL CHECK (source IN ('direct', 'generator', 'seed')),
    input            TEXT NOT NULL,
    expected_output  TEXT,
    weight           REAL NOT NULL DEFAULT 1.0,
    meta             TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (task_id, idx)
) WITHOUT ROWID;
CREATE TABLE task_results (                -- keyed by the main store's task id
    task_id             INTEGER PRIMARY KEY,
    status              TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'rejected')),
    reject_reason       TEXT,
    agreement           REAL,
    golden_solution_id  INTEGER
);
"""
# v3 adds task_results.meta (set_task_result's ``meta``: JSON, NULL = none given). A v1 or v2
# file is upgraded in place when opened for writing; the merge reads a file without the
# column as it is (its tasks keep their verify_meta).
_OUTBOX_TASK_META = "ALTER TABLE task_results ADD COLUMN meta TEXT;"
# v2 adds what the sharded synthesis stages write (features, tasks, solutions). A v1 file
# (verify/tests only) is upgraded in place when opened for writing and merges as it is.
_OUTBOX_SCHEMA_V2 = """
CREATE TABLE synth_items (                 -- as in the store
    stage TEXT NOT NULL, item TEXT NOT NULL, status TEXT NOT NULL, reason TEXT,
    detail TEXT NOT NULL DEFAULT '{}', raw TEXT, created_at REAL NOT NULL,
    PRIMARY KEY (stage, item)
) WITHOUT ROWID;
CREATE TABLE seed_feature_paths (          -- features stage: a seed mentions this node
    seed_id  INTEGER NOT NULL,             -- the main store's seed id
    path     TEXT NOT NULL,                -- join_feature_path(parts)
    PRIMARY KEY (seed_id, path)
) WITHOUT ROWID;
CREATE TABLE solutions (                   -- solutions stage: keyed by (main task id, idx)
    task_id INTEGER NOT NULL, idx INTEGER NOT NULL, language TEXT NOT NULL, code TEXT,
    reasoning TEXT, status TEXT NOT NULL, reject_reason TEXT,
    PRIMARY KEY (task_id, idx)
) WITHOUT ROWID;
CREATE TABLE evolution_rounds (            -- evolve stage: Store.add_evolution_round's arguments
    step  INTEGER PRIMARY KEY,
    args  TEXT NOT NULL                    -- JSON
);
CREATE TABLE generated_tasks (             -- tasks stage: Store.add_generated_task's arguments
    key   TEXT PRIMARY KEY,
    args  TEXT NOT NULL                    -- JSON
);
"""
OUTBOX_VERSION = 3
_MERGED_SHARDS = """
CREATE TABLE IF NOT EXISTS merged_shards (
    name       TEXT PRIMARY KEY,              -- the shard file's name, e.g. verify.0of4.sqlite
    sha256     TEXT NOT NULL,                 -- of the file's bytes when it was merged
    counts     TEXT NOT NULL,                 -- JSON: rows folded in per table
    merged_at  REAL NOT NULL
)
"""


def shard_file(data_dir: str | os.PathLike[str], stage: str, shard_index: int,
               shard_count: int) -> Path:
    """Where shard I of N of ``stage`` writes: ``<data>/shards/<stage>.<I>of<N>.sqlite``."""
    return Path(data_dir) / "shards" / f"{stage}.{shard_index}of{shard_count}.sqlite"


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ShardOutbox(SharedSql):
    """What one shard of a shardable stage writes instead of the run's store.

    A small dedicated schema (not the full store schema): only the rows the shardable stages
    change, keyed by the main store's ids or natural keys — ``verdicts`` (solution_id,
    test_id), ``tests`` (task_id, idx; whole rows, so a new test and a relabelled one look the
    same), ``task_results`` (task_id; since v3 with the verification ``meta``), and since v2
    ``seed_feature_paths``, ``generated_tasks``, ``solutions`` and ``synth_items``. The shard
    reads the run's store opened read-only and writes here; ``Store.merge_from`` folds the file in. It offers the write methods the stages
    use on a ``Store`` (``transaction``, ``add_verdicts``, ``add_test``, ``set_task_result``,
    ``record_item``, ``add_seed_features``, ``add_generated_task``, ``add_solution``), so stage
    code writes to either one the same way.
    """

    def __init__(self, path: str | os.PathLike[str], *, journal_mode: JournalMode = "auto",
                 busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn = conn
        self._depth = 0
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        wanted = _choose_journal(self.path, journal_mode)
        self.journal_mode = conn.execute(f"PRAGMA journal_mode = {wanted}").fetchone()[0]
        conn.execute("PRAGMA synchronous = FULL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        upgrade = {0: _OUTBOX_SCHEMA + _OUTBOX_SCHEMA_V2 + _OUTBOX_TASK_META,
                   1: _OUTBOX_SCHEMA_V2 + _OUTBOX_TASK_META, 2: _OUTBOX_TASK_META}
        if version in upgrade:
            conn.executescript("BEGIN;" + upgrade[version]
                               + f"PRAGMA user_version = {OUTBOX_VERSION}; COMMIT;")
        elif version != OUTBOX_VERSION:
            raise StoreError(f"{self.path} is a shard file of version {version}; this engine "
                             f"writes version {OUTBOX_VERSION}: merge it with that engine")


    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None  # type: ignore[assignment]

    def __enter__(self) -> ShardOutbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_verdicts(self, verdicts: Iterable[Verdict]) -> int:
        rows = [(v.solution_id, v.test_id, v.status, v.time_s, v.memory_kb, v.output_hash)
                for v in verdicts]
        with self.transaction():
            self._conn.executemany("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?, ?)",
                                   rows)
        return len(rows)

    def add_test(self, task_id: int, idx: int, *, input: str, kind: TestKind,
                 source: TestSource, expected_output: str | None = None, weight: float = 1.0,
                 meta: Mapping[str, Any] | None = None) -> None:
        with self.transaction():
            self._conn.execute(
                "INSERT OR REPLACE INTO tests VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (task_id, idx, kind, source, input, expected_output, weight,
                 _dump(dict(meta or {}))))

    def set_task_result(self, task_id: int, status: TaskStatus, reason: str | None = None,
                        agreement: float | None = None,
                        golden_solution_id: int | None = None,
                        meta: Mapping[str, Any] | None = None) -> None:
        if status not in get_args(TaskStatus):
            raise ValueError(f"status={status!r}: use one of {get_args(TaskStatus)}")
        meta_json = None if meta is None else _dump(dict(meta))
        with self.transaction():
            self._conn.execute(
                "INSERT OR REPLACE INTO task_results(task_id, status, reject_reason, agreement,"
                " golden_solution_id, meta) VALUES (?, ?, ?, ?, ?, ?)",
                (task_id, status, reason, agreement, golden_solution_id, meta_json))

    def decided_tasks(self) -> set[int]:
        """Tasks this shard has decided (a rerun skips them)."""
        return {t for (t,) in self._conn.execute(
            "SELECT task_id FROM task_results WHERE status != 'pending'")}

    def tasks_with_tests(self) -> set[int]:
        """Tasks this shard has written tests for (a rerun skips them)."""
        return {t for (t,) in self._conn.execute("SELECT DISTINCT task_id FROM tests")}

    def add_seed_features(self, seed_id: int, paths: Iterable[Sequence[str]]) -> int:
        with self.transaction():
            return self._conn.executemany(
                "INSERT OR IGNORE INTO seed_feature_paths VALUES (?, ?)",
                [(seed_id, join_feature_path(p)) for p in paths]).rowcount

    def add_solution(self, task_id: int, idx: int, *, code: str | None,
                     status: SolutionStatus = "ok", reject_reason: str | None = None,
                     language: str = "python", reasoning: str | None = None) -> None:
        with self.transaction():
            self._conn.execute("INSERT OR REPLACE INTO solutions VALUES (?, ?, ?, ?, ?, ?, ?)",
                               (task_id, idx, language, code, reasoning, status, reject_reason))

    def add_generated_task(self, *, key: str, **args: Any) -> None:
        """Held until the merge, which calls ``Store.add_generated_task`` (no id here)."""
        with self.transaction():
            self._conn.execute("INSERT OR REPLACE INTO generated_tasks VALUES (?, ?)",
                               (key, _dump({"key": key, **args})))

    def add_evolution_round(self, *, step: int, **args: Any) -> None:
        """Held until the merge, which calls ``Store.add_evolution_round``."""
        with self.transaction():
            self._conn.execute("INSERT OR REPLACE INTO evolution_rounds VALUES (?, ?)",
                               (step, _dump({"step": step, **args})))

    def evolution_step_ids(self) -> dict[int, int]:
        """Rounds this shard has made: step -> step (there are no ids before the merge)."""
        return {s: s for (s,) in self._conn.execute("SELECT step FROM evolution_rounds")}

    def evolution_new_features(self) -> dict[int, int]:
        """step -> features this shard's round added."""
        return {step: len(json.loads(args)["new_paths"]) for step, args in self._conn.execute(
            "SELECT step, args FROM evolution_rounds")}

    def evolved_paths(self) -> list[list[str]]:
        """Every feature path this shard's rounds added, in round order."""
        return [p for (args,) in self._conn.execute(
            "SELECT args FROM evolution_rounds ORDER BY step")
            for p in json.loads(args)["new_paths"]]

    def task_keys(self, prefix: str) -> set[str]:
        return {k for (k,) in self._conn.execute(
            "SELECT key FROM generated_tasks WHERE key >= ? AND key < ?",
            (prefix, prefix + "\uffff"))}


class StageWriter(Protocol):
    """Where a shardable stage writes (engine/stages/shards.py): the run's ``Store`` when
    unsharded, this shard's ``ShardOutbox`` as shard I of N. Both have these methods with the
    same meaning, so stage code never asks which one it holds."""

    def transaction(self) -> AbstractContextManager[None]: ...

    def record_item(self, stage: str, item: str, status: ItemStatus, *, reason: str | None = None,
                    detail: Mapping[str, Any] | None = None, raw: str | None = None) -> None: ...

    def done_items(self, stage: str) -> set[str]: ...

    def item_statuses(self, stage: str) -> dict[str, tuple[str, str]]: ...

    def add_verdicts(self, verdicts: Iterable[Verdict]) -> int: ...

    def add_test(self, task_id: int, idx: int, *, input: str, kind: TestKind,
                 source: TestSource, expected_output: str | None = None, weight: float = 1.0,
                 meta: Mapping[str, Any] | None = None) -> Any: ...

    def set_task_result(self, task_id: int, status: TaskStatus, reason: str | None = None,
                        agreement: float | None = None, golden_solution_id: int | None = None,
                        meta: Mapping[str, Any] | None = None) -> None: ...

    def add_seed_features(self, seed_id: int, paths: Iterable[Sequence[str]]) -> int: ...

    def add_solution(self, task_id: int, idx: int, *, code: str | None,
                     status: SolutionStatus = "ok", reject_reason: str | None = None,
                     language: str = "python", reasoning: str | None = None) -> Any: ...

    def add_generated_task(self, *, key: str, **args: Any) -> Any: ...

    def add_evolution_round(self, *, step: int, **args: Any) -> Any: ...

    def task_keys(self, prefix: str) -> set[str]: ...

    def tasks_with_solutions(self) -> set[int]: ...

    def solution_tally(self, shard_index: int = 0, shard_count: int = 1
                       ) -> dict[int, list[tuple[str, str, str, int]]]: ...

    def test_counts(self, shard_index: int = 0, shard_count: int = 1) -> dict[int, int]: ...
