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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

TaskStatus = Literal["pending", "accepted", "rejected"]
SolutionStatus = Literal["ok", "rejected"]
TestKind = Literal["sample", "edge", "random", "stress"]
TestSource = Literal["direct", "generator", "seed"]
FeatureOrigin = Literal["seed", "evolve"]
ItemStatus = Literal["ok", "rejected"]
NodeKind = Literal[
    "seed", "feature", "evolution_step", "feature_config", "task", "solution", "test"
]
SortKey = Literal["id", "agreement", "created_at", "style", "status", "reject_reason",
                  "n_solutions", "n_tests"]
JournalMode = Literal["auto", "wal", "delete"]

SCHEMA_VERSION = 3
MAX_PAGE_SIZE = 500
SNIPPET_OPEN = "\u00ab"  # «  marks a search hit in TaskRow.snippet; the GUI may restyle it
SNIPPET_CLOSE = "\u00bb"  # »
SNIPPET_PLAIN_CHARS = 200
JOURNAL_ENV = "SYNTHSMITH_STORE_JOURNAL"

# File systems where SQLite's WAL (an mmap'ed -shm index shared between processes) is unsafe.
NETWORK_FS_TYPES = frozenset(
    {
        "nfs", "nfs4", "lustre", "gpfs", "cifs", "smb", "smb2", "smb3", "smbfs", "beegfs",
        "ceph", "cephfs", "glusterfs", "9p", "afs", "openafs", "ocfs2", "gfs2", "panfs",
        "pvfs2", "orangefs", "wekafs", "quobyte", "davfs", "ncpfs", "coda", "virtiofs",
        "fuse.sshfs", "fuse.ceph", "fuse.cephfs", "fuse.glusterfs", "fuse.beegfs",
        "fuse.s3fs", "fuse.gcsfuse", "fuse.rclone", "fuse.juicefs", "fuse.davfs",
        "fuse.lizardfs", "fuse.moosefs", "fuse.mfs", "fuse.goofys", "fuse.blobfuse",
    }
)


class StoreError(Exception):
    """A store that cannot be used as asked; the message says why and what to do."""


# ---------------------------------------------------------------------------------------------
# File-system detection


def is_network_fs(fstype: str) -> bool:
    """True for a file-system type (as in /proc/mounts) on which WAL is unsafe."""
    t = fstype.strip().lower()
    if t in NETWORK_FS_TYPES:
        return True
    if t.startswith("nfs"):
        return True  # nfs, nfs4, nfsd variants
    return t.startswith("fuse.") and t[5:] in {x.split(".", 1)[-1] for x in NETWORK_FS_TYPES}


def _unescape_mount(field_: str) -> str:
    # /proc/mounts writes space, tab, newline and backslash as octal escapes (\040 ...).
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field_)


def mount_fstype(path: str | os.PathLike[str], mounts_text: str | None = None) -> str | None:
    """The fstype of the mount that holds ``path`` (longest mount-point prefix), or None."""
    if mounts_text is None:
        try:
            mounts_text = Path("/proc/self/mounts").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
    target = os.path.realpath(os.fspath(path))
    best: tuple[int, str] | None = None
    for line in mounts_text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        mnt, fstype = _unescape_mount(parts[1]), parts[2]
        mnt_norm = mnt.rstrip("/") or "/"
        inside = (
            mnt_norm == "/"
            or target == mnt_norm
            or target.startswith(mnt_norm + "/")
        )
        if inside and (best is None or len(mnt_norm) >= best[0]):
            best = (len(mnt_norm), fstype)
    return best[1] if best else None


def _choose_journal(path: Path, requested: JournalMode) -> str:
    mode = requested
    if mode == "auto":
        env = os.environ.get(JOURNAL_ENV, "auto").strip().lower()
        if env not in ("auto", "wal", "delete"):
            raise StoreError(f"{JOURNAL_ENV}={env!r}: set it to 'wal', 'delete' or 'auto'")
        mode = env  # type: ignore[assignment]
    if mode == "auto":
        fstype = mount_fstype(path.parent)
        return "delete" if fstype is not None and is_network_fs(fstype) else "wal"
    return mode


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


# ---------------------------------------------------------------------------------------------
# Records going in and out


@dataclass(frozen=True, slots=True)
class SeedRecord:
    """One seed to import; ``source_key`` makes a re-import idempotent."""

    source: str
    source_key: str
    problem: str
    solutions: list[str] = field(default_factory=list)
    tests: dict[str, Any] = field(default_factory=lambda: {"inputs": [], "outputs": []})
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Seed:
    id: int
    source: str
    source_key: str
    problem: str
    solutions: list[str]
    tests: dict[str, Any]
    meta: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Verdict:
    solution_id: int
    test_id: int
    status: str
    time_s: float | None = None
    memory_kb: int | None = None
    output_hash: str | None = None


@dataclass(frozen=True, slots=True)
class Solution:
    id: int
    task_id: int
    idx: int
    language: str
    code: str | None
    reasoning: str | None
    status: str
    reject_reason: str | None


@dataclass(frozen=True, slots=True)
class Test:
    id: int
    task_id: int
    idx: int
    kind: str
    source: str
    input: str
    expected_output: str | None
    weight: float
    meta: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TaskDetail:
    """A task with everything the data browser's detail pane shows."""

    id: int
    key: str | None
    config_id: int | None
    style: str
    title: str
    statement: str
    selected_features: Any
    integration_strategy: str
    categories: list[str]
    status: str
    reject_reason: str | None
    agreement: float | None
    golden_solution_id: int | None
    n_solutions: int
    n_tests: int
    created_at: float
    solutions: list[Solution]
    tests: list[Test]
    verdicts: list[Verdict]
    # What verification recorded (Store.set_task_result's ``meta``): free-form JSON; the verify
    # stage writes "samples", "compile_errors", "candidates" (keyed by solution id as a
    # string) and "unusable_tests". Empty until then (and from an engine before schema v3).
    verify_meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LineageEdge:
    child_kind: str
    child_id: int
    parent_kind: str
    parent_id: int
    relation: str
    depth: int  # 1 for a direct parent of the node asked about


@dataclass(frozen=True, slots=True)
class PageCursor:
    """Where a page ended: the sort value and id of its last (or first) row."""

    value: int | float | str
    id: int


@dataclass(frozen=True, slots=True)
class TaskQuery:
    """Filters, sort and position of one page of the task table.

    Position: ``after`` (next page), ``before`` (previous page), ``from_end`` (last page) or
    ``offset`` (jump to a page number; 0 = first page). At most one of them.
    ``with_total=False`` skips the count of matches (a GUI pages on with the first total).
    """

    style: str | None = None
    status: TaskStatus | None = None
    reject_reason: str | None = None
    agreement_min: float | None = None
    agreement_max: float | None = None
    category: str | None = None
    search: str | None = None
    sort: SortKey = "id"
    descending: bool = False
    limit: int = 100
    after: PageCursor | None = None
    before: PageCursor | None = None
    from_end: bool = False
    offset: int = 0
    with_total: bool = True

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.limit <= MAX_PAGE_SIZE:
            problems.append(f"limit={self.limit}: use 1..{MAX_PAGE_SIZE}")
        if self.sort not in get_args(SortKey):
            problems.append(f"sort={self.sort!r}: use one of {get_args(SortKey)}")
        if self.status is not None and self.status not in get_args(TaskStatus):
            problems.append(f"status={self.status!r}: use one of {get_args(TaskStatus)}")
        for name in ("agreement_min", "agreement_max"):
            v = getattr(self, name)
            if v is not None and not 0.0 <= v <= 1.0:
                problems.append(f"{name}={v}: use a value in [0, 1]")
        if self.offset < 0:
            problems.append(f"offset={self.offset}: use 0 or more")
        positions = [self.after is not None, self.before is not None, self.from_end, self.offset > 0]
        if sum(positions) > 1:
            problems.append("give at most one of after, before, from_end, offset")
        if problems:
            raise ValueError("TaskQuery: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class TaskRow:
    id: int
    title: str
    style: str
    status: str
    reject_reason: str | None
    agreement: float | None
    n_solutions: int
    n_tests: int
    created_at: float
    snippet: str  # search hits wrapped in SNIPPET_OPEN/CLOSE; the statement's start otherwise


@dataclass(frozen=True, slots=True)
class TaskPage:
    rows: list[TaskRow]
    total: int | None  # matches of the filters (all pages); None when with_total=False
    next_cursor: PageCursor | None  # None when no rows follow
    prev_cursor: PageCursor | None  # None when no rows precede


# ---------------------------------------------------------------------------------------------
# Small pure helpers


def canonical_json(obj: Any) -> str:
    """The one JSON spelling of ``obj`` (sorted keys, no spaces) used for de-duplication."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _json_tree_paths(tree: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Node paths of a feature tree in its JSON form (dicts of dicts, lists of names below)."""
    out: list[tuple[str, ...]] = []
    if isinstance(tree, Mapping):
        for name, sub in tree.items():
            out.append((*prefix, str(name)))
            out += _json_tree_paths(sub, (*prefix, str(name)))
    elif isinstance(tree, list):
        for item in tree:
            if isinstance(item, str):
                out.append((*prefix, item))
            else:
                out += _json_tree_paths(item, prefix)
    return out


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


def join_feature_path(parts: Sequence[str]) -> str:
    """``["algorithms", "graph"]`` -> ``"algorithms/graph"``; ``/`` and ``\\`` in a name are
    escaped, so a subtree is the range of paths starting with ``path + "/"``."""
    if not parts or any(not p for p in parts):
        raise ValueError(f"feature path needs non-empty parts, got {list(parts)!r}")
    return "/".join(p.replace("\\", "\\\\").replace("/", "\\/") for p in parts)


def split_feature_path(path: str) -> list[str]:
    parts, cur, i = [], [], 0
    while i < len(path):
        ch = path[i]
        if ch == "\\" and i + 1 < len(path):
            cur.append(path[i + 1])
            i += 2
            continue
        if ch == "/":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


_TERM = re.compile(r'"([^"]*)"?|([^\s"]+)')
_WORDISH = re.compile(r"\w")


def fts_query(text: str | None) -> str | None:
    """User search text -> a safe FTS5 MATCH expression, or None if it holds no words.

    Each bare word and each ``"quoted phrase"`` becomes one FTS5 phrase string; they are ANDed.
    Operators and punctuation (``OR``, ``NOT``, ``*``, ``-``, ``(``) are searched as plain text
    (the tokenizer drops punctuation), so no input can raise an FTS5 syntax error.
    """
    if not text:
        return None
    terms = []
    for m in _TERM.finditer(text):
        term = m.group(1) if m.group(1) is not None else m.group(2)
        if term and _WORDISH.search(term):
            terms.append('"' + term.replace('"', "") + '"')
    return " AND ".join(terms) if terms else None


def problem_hash(problem: str) -> str:
    """Identity of a problem text for de-duplication: case and whitespace do not count."""
    return hashlib.sha256(" ".join(problem.lower().split()).encode()).hexdigest()[:32]


def _categories_of(selected_features: Any) -> list[str]:
    if isinstance(selected_features, Mapping):
        return sorted(str(k) for k, v in selected_features.items() if v not in (None, {}, [], ""))
    return []


def _dump(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


# A seed's reference solution, in SQL over a ``seeds`` row: the first entry of its
# ``solutions`` JSON list that is a string holding more than white space (NULL without one).
FIRST_SOLUTION = ("(SELECT value FROM json_each(seeds.solutions) WHERE type = 'text'"
                  " AND trim(value, ' ' || char(9, 10, 13)) != '' ORDER BY key LIMIT 1)")

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


class Store:
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

    def record_item(self, stage: str, item: str, status: ItemStatus, *, reason: str | None = None,
                    detail: Mapping[str, Any] | None = None, raw: str | None = None) -> None:
        """Record what a synthesis step did with one item (idempotent: the last call wins)."""
        with self.transaction():
            self._conn.execute(_RECORD_ITEM, _item_row(stage, item, status, reason, detail, raw))

    def done_items(self, stage: str) -> set[str]:
        """Items of ``stage`` with a record, done or rejected (a rerun skips them)."""
        return {i for (i,) in self._conn.execute(
            "SELECT item FROM synth_items WHERE stage = ?", (stage,))}

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

    def evolution_new_features(self) -> dict[int, int]:
        """step -> features that evolution round added."""
        return dict(self._conn.execute("SELECT step, n_new_features FROM evolution_steps"))

    def test_counts(self, shard_index: int = 0, shard_count: int = 1) -> dict[int, int]:
        """task id -> tests, for the tasks with tests and ``task_id % shard_count ==
        shard_index``."""
        return dict(self._conn.execute(
            "SELECT task_id, count(*) FROM tests WHERE task_id % ? = ? GROUP BY task_id",
            (shard_count, shard_index)))

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


class ShardOutbox:
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

    transaction = Store.transaction

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

    # Same table and SQL as the store's: the store's own methods.
    record_item = Store.record_item
    done_items = Store.done_items

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

    tasks_with_solutions = Store.tasks_with_solutions
    item_statuses = Store.item_statuses
    solution_tally = Store.solution_tally
    test_counts = Store.test_counts


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

