"""The records that go into and come out of a store (seeds, tasks, solutions, tests,
verdicts, pages of the task table), the status and kind names, ``StoreError``, and the small
pure helpers both sides use (feature paths, search text to FTS5, problem hashes).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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

MAX_PAGE_SIZE = 500
SNIPPET_OPEN = "\u00ab"  # «  marks a search hit in TaskRow.snippet; the GUI may restyle it
SNIPPET_CLOSE = "\u00bb"  # »
SNIPPET_PLAIN_CHARS = 200




class StoreError(Exception):
    """A store that cannot be used as asked; the message says why and what to do."""




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


