"""The store's SQL: the schema (made as v1, brought up through every migration), the
SQL both a store and a shard outbox run, and the reference-solution expression over ``seeds``.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, get_args

from engine.store.records import ItemStatus, _dump

SCHEMA_VERSION = 3

# ---------------------------------------------------------------------------------------------
# Schema and migrations

_SCHEMA_V1 = """
CREATE TABLE seeds (
    id          INTEGER PRIMARY KEY,
    source      TEXT NOT NULL,                -- the source path as given in the config
    source_key  TEXT NOT NULL UNIQUE,         -- "<source>:<line or row>": re-import is a no-op
    problem     TEXT NOT NULL,
    problem_hash TEXT NOT NULL UNIQUE,        -- problem_hash(problem): one copy of a problem
    solutions   TEXT NOT NULL DEFAULT '[]',   -- JSON list of code strings
    tests       TEXT NOT NULL DEFAULT '{"inputs":[],"outputs":[]}',  -- JSON, TACO style
    meta        TEXT NOT NULL DEFAULT '{}',   -- JSON: layout, original id, tags, difficulty
    created_at  REAL NOT NULL
);
CREATE INDEX seeds_by_source ON seeds(source);

CREATE TABLE features (
    id            INTEGER PRIMARY KEY,
    parent_id     INTEGER REFERENCES features(id) ON DELETE CASCADE,
    category      TEXT NOT NULL,              -- the root of its branch (one of 11 categories)
    name          TEXT NOT NULL,
    path          TEXT NOT NULL UNIQUE,       -- join_feature_path(parts), e.g. "algorithms/graph"
    depth         INTEGER NOT NULL,           -- 0 for a category root
    frequency     INTEGER NOT NULL DEFAULT 0, -- seeds linked to it (link_seed_features)
    origin        TEXT NOT NULL CHECK (origin IN ('seed', 'evolve')),
    created_step  INTEGER                     -- evolution step that added it; NULL for seeds
);
CREATE INDEX features_by_parent ON features(parent_id);
CREATE INDEX features_by_category ON features(category, depth);

CREATE TABLE seed_features (
    seed_id     INTEGER NOT NULL REFERENCES seeds(id) ON DELETE CASCADE,
    feature_id  INTEGER NOT NULL REFERENCES features(id) ON DELETE CASCADE,
    PRIMARY KEY (seed_id, feature_id)
) WITHOUT ROWID;
CREATE INDEX seed_features_by_feature ON seed_features(feature_id, seed_id);

CREATE TABLE evolution_steps (
    id              INTEGER PRIMARY KEY,
    step            INTEGER NOT NULL UNIQUE,
    sampled         TEXT NOT NULL,            -- JSON subtree given to the LLM
    expansion       TEXT NOT NULL,            -- JSON subtree it returned
    n_new_features  INTEGER NOT NULL DEFAULT 0,
    created_at      REAL NOT NULL
);

CREATE TABLE feature_configs (
    id          INTEGER PRIMARY KEY,
    canonical   TEXT NOT NULL UNIQUE,         -- canonical_json(config tree)
    shape       TEXT NOT NULL,                -- "root_k,inner_k,leaf_k", e.g. "3,3,2"
    n_leaves    INTEGER NOT NULL,
    rng_seed    INTEGER NOT NULL,
    created_at  REAL NOT NULL
);

CREATE TABLE tasks (
    id                  INTEGER PRIMARY KEY,
    key                 TEXT UNIQUE,          -- optional natural key: add_task is idempotent on it
    config_id           INTEGER REFERENCES feature_configs(id) ON DELETE SET NULL,
    style               TEXT NOT NULL,        -- codeforces / leetcode / atcoder
    status              TEXT NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'accepted', 'rejected')),
    reject_reason       TEXT,
    agreement           REAL CHECK (agreement IS NULL OR (agreement >= 0 AND agreement <= 1)),
    golden_solution_id  INTEGER REFERENCES solutions(id) ON DELETE SET NULL,
    n_solutions         INTEGER NOT NULL DEFAULT 0,
    n_tests             INTEGER NOT NULL DEFAULT 0,
    created_at          REAL NOT NULL
);
CREATE INDEX tasks_by_config ON tasks(config_id);
CREATE INDEX tasks_by_style ON tasks(style, id);
CREATE INDEX tasks_by_created ON tasks(created_at, id);
CREATE INDEX tasks_by_agreement ON tasks(ifnull(agreement, -1.0), id);
CREATE INDEX tasks_by_status ON tasks(status, id);
CREATE INDEX tasks_by_status_agreement ON tasks(status, ifnull(agreement, -1.0), id);
CREATE INDEX tasks_by_reason ON tasks(reject_reason, id) WHERE reject_reason IS NOT NULL;

CREATE TABLE task_texts (
    task_id               INTEGER PRIMARY KEY REFERENCES tasks(id) ON DELETE CASCADE,
    title                 TEXT NOT NULL,
    statement             TEXT NOT NULL,
    selected_features     TEXT NOT NULL DEFAULT '{}',  -- JSON tree
    integration_strategy  TEXT NOT NULL DEFAULT ''
);

CREATE TABLE task_categories (
    category  TEXT NOT NULL,
    task_id   INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    PRIMARY KEY (category, task_id)
) WITHOUT ROWID;
CREATE INDEX task_categories_by_task ON task_categories(task_id);

CREATE VIRTUAL TABLE tasks_fts USING fts5(
    title, statement,
    content = 'task_texts', content_rowid = 'task_id',
    tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER task_texts_ai AFTER INSERT ON task_texts BEGIN
    INSERT INTO tasks_fts(rowid, title, statement) VALUES (new.task_id, new.title, new.statement);
END;
CREATE TRIGGER task_texts_ad AFTER DELETE ON task_texts BEGIN
    INSERT INTO tasks_fts(tasks_fts, rowid, title, statement)
        VALUES ('delete', old.task_id, old.title, old.statement);
END;
CREATE TRIGGER task_texts_au AFTER UPDATE OF title, statement ON task_texts BEGIN
    INSERT INTO tasks_fts(tasks_fts, rowid, title, statement)
        VALUES ('delete', old.task_id, old.title, old.statement);
    INSERT INTO tasks_fts(rowid, title, statement) VALUES (new.task_id, new.title, new.statement);
END;

CREATE TABLE solutions (
    id             INTEGER PRIMARY KEY,
    task_id        INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    idx            INTEGER NOT NULL,
    language       TEXT NOT NULL DEFAULT 'python',
    code           TEXT,                      -- NULL when no usable code block was found
    reasoning      TEXT,
    status         TEXT NOT NULL CHECK (status IN ('ok', 'rejected')),
    reject_reason  TEXT,
    created_at     REAL NOT NULL,
    UNIQUE (task_id, idx)
);
CREATE TRIGGER solutions_ai AFTER INSERT ON solutions BEGIN
    UPDATE tasks SET n_solutions = n_solutions + 1 WHERE id = new.task_id;
END;
CREATE TRIGGER solutions_ad AFTER DELETE ON solutions BEGIN
    UPDATE tasks SET n_solutions = n_solutions - 1 WHERE id = old.task_id;
END;

CREATE TABLE tests (
    id               INTEGER PRIMARY KEY,
    task_id          INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    idx              INTEGER NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('sample', 'edge', 'random', 'stress')),
    source           TEXT NOT NULL CHECK (source IN ('direct', 'generator', 'seed')),
    input            TEXT NOT NULL,
    expected_output  TEXT,                    -- NULL until verification labels it
    weight           REAL NOT NULL DEFAULT 1.0,
    meta             TEXT NOT NULL DEFAULT '{}',  -- JSON: generator seed, votes, split, ...
    UNIQUE (task_id, idx)
);
CREATE TRIGGER tests_ai AFTER INSERT ON tests BEGIN
    UPDATE tasks SET n_tests = n_tests + 1 WHERE id = new.task_id;
END;
CREATE TRIGGER tests_ad AFTER DELETE ON tests BEGIN
    UPDATE tasks SET n_tests = n_tests - 1 WHERE id = old.task_id;
END;

CREATE TABLE verdicts (
    solution_id  INTEGER NOT NULL REFERENCES solutions(id) ON DELETE CASCADE,
    test_id      INTEGER NOT NULL REFERENCES tests(id) ON DELETE CASCADE,
    status       TEXT NOT NULL,               -- sandbox outcome: ok, wrong, timeout, memory, error
    time_s       REAL,
    memory_kb    INTEGER,
    output_hash  TEXT,
    PRIMARY KEY (solution_id, test_id)
) WITHOUT ROWID;
CREATE INDEX verdicts_by_test ON verdicts(test_id);

CREATE TABLE lineage (
    child_kind   TEXT NOT NULL,
    child_id     INTEGER NOT NULL,
    parent_kind  TEXT NOT NULL,
    parent_id    INTEGER NOT NULL,
    relation     TEXT NOT NULL,
    PRIMARY KEY (child_kind, child_id, parent_kind, parent_id)
) WITHOUT ROWID;
CREATE INDEX lineage_by_parent ON lineage(parent_kind, parent_id);

CREATE VIEW tasks_full AS
    SELECT t.*, x.title, x.statement, x.selected_features, x.integration_strategy
    FROM tasks t JOIN task_texts x ON x.task_id = t.id;
"""


def _create_v1(conn: sqlite3.Connection) -> None:
    conn.executescript("BEGIN;" + _SCHEMA_V1 + "COMMIT;")


# v2: what each synthesis step did with each item (a seed, an evolution sample, a feature
# config): done or rejected, and why. Resumption reads it (an item with a row is not asked
# again) and the data browser lists the rejections with the answer that caused them.
_SYNTH_ITEMS = """
CREATE TABLE synth_items (
    stage       TEXT NOT NULL,                -- features, evolve, tasks
    item        TEXT NOT NULL,                -- "seed:12", "cfg:<hash>", "draw:7", ...
    status      TEXT NOT NULL CHECK (status IN ('ok', 'rejected')),
    reason      TEXT,                         -- rejected: "<code>: <detail>", e.g. "select_json: truncated"
    detail      TEXT NOT NULL DEFAULT '{}',   -- JSON: repairs, summary, stage-1 roles, ...
    raw         TEXT,                         -- rejected: the answer that failed (first 20k chars)
    created_at  REAL NOT NULL,
    PRIMARY KEY (stage, item)
) WITHOUT ROWID;
CREATE INDEX synth_items_by_status ON synth_items(stage, status, reason);
"""
RAW_KEEP_CHARS = 20_000


def _migrate_v1_to_v2(conn: sqlite3.Connection) -> None:
    for statement in _SYNTH_ITEMS.split(";"):
        if statement.strip():
            conn.execute(statement)


# v3: what verification found out about a task (samples, compile errors, candidates; JSON,
# free-form), for the data browser. In task_texts, not tasks: compile errors can be kilobytes,
# and tasks must stay narrow (see "Design notes"). tasks_full shows it too.
def _migrate_v2_to_v3(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE task_texts ADD COLUMN verify_meta TEXT NOT NULL DEFAULT '{}'")
    conn.execute("DROP VIEW tasks_full")
    conn.execute("CREATE VIEW tasks_full AS SELECT t.*, x.title, x.statement,"
                 " x.selected_features, x.integration_strategy, x.verify_meta"
                 " FROM tasks t JOIN task_texts x ON x.task_id = t.id")


# MIGRATIONS[v] upgrades a store at user_version v to v + 1. Append here when the schema
# changes, bump SCHEMA_VERSION, and add a test that opens a store made by the old version.
# A new store is made as v1 and brought up through every step, so each step is also how a
# new store gets its tables (the v1 CREATE TABLEs stay exactly what the v1 engine made).
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _migrate_v1_to_v2, 2: _migrate_v2_to_v3,
}




_RECORD_ITEM = (
    "INSERT INTO synth_items(stage, item, status, reason, detail, raw, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(stage, item) DO UPDATE SET"
    " status = excluded.status, reason = excluded.reason, detail = excluded.detail,"
    " raw = excluded.raw, created_at = excluded.created_at"
)


def _item_row(stage: str, item: str, status: str, reason: str | None,
              detail: Mapping[str, Any] | None, raw: str | None) -> tuple:
    if status not in get_args(ItemStatus):
        raise ValueError(f"status={status!r}: use one of {get_args(ItemStatus)}")
    return (stage, item, status, reason, _dump(dict(detail or {})),
            None if raw is None else raw[:RAW_KEEP_CHARS], time.time())




# A seed's reference solution, in SQL over a ``seeds`` row: the first entry of its
# ``solutions`` JSON list that is a string holding more than white space (NULL without one).
FIRST_SOLUTION = ("(SELECT value FROM json_each(seeds.solutions) WHERE type = 'text'"
                  " AND trim(value, ' ' || char(9, 10, 13)) != '' ORDER BY key LIMIT 1)")


class SharedSql:
    """What a ``Store`` and a ``ShardOutbox`` both run on their own connection (``_conn``,
    ``_depth``): transactions, synthesis item records, and the tallies a stage's summary
    reads over all its attempts. Both tables exist in either file, with the same columns."""

    _conn: sqlite3.Connection
    _depth: int

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one commit; nests (inner blocks become savepoints)."""
        conn = self._conn
        if self._depth == 0:
            conn.execute("BEGIN IMMEDIATE")
        else:
            conn.execute(f"SAVEPOINT sp{self._depth}")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                conn.execute("ROLLBACK")
            else:
                conn.execute(f"ROLLBACK TO sp{self._depth}")
                conn.execute(f"RELEASE sp{self._depth}")
            raise
        self._depth -= 1
        if self._depth == 0:
            conn.execute("COMMIT")
        else:
            conn.execute(f"RELEASE sp{self._depth}")

    def record_item(self, stage: str, item: str, status: ItemStatus, *, reason: str | None = None,
                    detail: Mapping[str, Any] | None = None, raw: str | None = None) -> None:
        """Record what a synthesis step did with one item (idempotent: the last call wins)."""
        with self.transaction():
            self._conn.execute(_RECORD_ITEM, _item_row(stage, item, status, reason, detail, raw))

    def done_items(self, stage: str) -> set[str]:
        """Items of ``stage`` with a record, done or rejected (a rerun skips them)."""
        return {i for (i,) in self._conn.execute(
            "SELECT item FROM synth_items WHERE stage = ?", (stage,))}

    def tasks_with_solutions(self) -> set[int]:
        return {t for (t,) in self._conn.execute("SELECT DISTINCT task_id FROM solutions")}

    # What the synthesis stages made over all their attempts, for their summaries (a resumed
    # stage's own counts would cover only its last attempt). Same SQL on a ShardOutbox.

    def item_statuses(self, stage: str) -> dict[str, tuple[str, str]]:
        """item -> (status, reason code or "") of every record of ``stage``."""
        return {i: (st, (r or "").partition(":")[0].strip()) for i, st, r in self._conn.execute(
            "SELECT item, status, reason FROM synth_items WHERE stage = ?", (stage,))}

    def solution_tally(self, shard_index: int = 0, shard_count: int = 1
                       ) -> dict[int, list[tuple[str, str, str, int]]]:
        """task id -> [(language, status, reject code or "", candidates)] for the tasks with
        ``task_id % shard_count == shard_index``."""
        out: dict[int, list[tuple[str, str, str, int]]] = {}
        for t, lang, st, code, k in self._conn.execute(
                "SELECT task_id, language, status, CASE WHEN instr(reject_reason, ':') > 0"
                " THEN trim(substr(reject_reason, 1, instr(reject_reason, ':') - 1))"
                " ELSE ifnull(reject_reason, '') END AS code, count(*) FROM solutions"
                " WHERE task_id % ? = ? GROUP BY task_id, language, status, code",
                (shard_count, shard_index)):
            out.setdefault(t, []).append((lang, st, code, k))
        return out

    def test_counts(self, shard_index: int = 0, shard_count: int = 1) -> dict[int, int]:
        """task id -> tests, for the tasks with tests and ``task_id % shard_count ==
        shard_index``."""
        return dict(self._conn.execute(
            "SELECT task_id, count(*) FROM tests WHERE task_id % ? = ? GROUP BY task_id",
            (shard_count, shard_index)))
