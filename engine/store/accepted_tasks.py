"""The store's bulk read API for curation and the exports: accepted tasks a batch at a time.

``Store.get_task`` reads one task at a time with every candidate's reasoning, which at 100k
tasks x 8 long-CoT candidates would read tens of GB; curation needs only the statement, the
golden solution and the labelled tests. So ``TaskReader`` reads just those, a batch at a time,
through its own read-only connection (the curate stage reads the store only through it and
``seed_problems.SeedReader``; the SQL lives here, beside the schema in ``tables``). Every query is
fetched whole before the stage writes, so it never holds a read transaction open against the
store's writer (which matters in rollback-journal mode on network file systems).

A candidate counts as correct when it is usable (status ``ok``, with code) and has an ``ok``
verdict on every labelled test of its task: the verdict statuses are the sandbox outcome after
comparison with the label (``ok``, ``wrong``, ``timeout``, ``memory``, ``error``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ACCEPTED = "t.status = 'accepted' AND t.golden_solution_id IS NOT NULL"


@dataclass(frozen=True, slots=True)
class Candidate:
    """An accepted task as the filters see it (and what ``set_task_result`` must keep)."""

    id: int
    statement: str
    agreement: float | None
    golden_solution_id: int


@dataclass(frozen=True, slots=True)
class SolutionText:
    id: int
    idx: int
    language: str
    code: str | None
    reasoning: str | None


@dataclass
class ExportTask:
    """One kept task with what both exports need."""

    id: int
    key: str | None
    style: str
    title: str
    statement: str
    agreement: float | None
    golden: SolutionText | None
    others: list[SolutionText] = field(default_factory=list)  # other correct ones, by idx
    inputs: list[str] = field(default_factory=list)  # labelled tests, by idx
    outputs: list[str] = field(default_factory=list)
    candidates: int = 0  # usable candidates (status ok, with code)
    correct: int = 0  # of those, how many pass every labelled test

    @property
    def pass_rate(self) -> float | None:
        return self.correct / self.candidates if self.candidates else None


def read_only_connection(store_path: Path) -> sqlite3.Connection:
    """A connection that can only read the store (autocommit: no read transaction lingers)."""
    uri = f"file:{Path(store_path).resolve().as_posix()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


class TaskReader:
    def __init__(self, store_path: Path) -> None:
        self._conn = read_only_connection(store_path)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> TaskReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def count_accepted(self) -> tuple[int, int]:
        """-> (accepted tasks with a golden solution, accepted tasks without one)."""
        with_golden, without = self._conn.execute(
            "SELECT count(golden_solution_id), count(*) - count(golden_solution_id)"
            " FROM tasks WHERE status = 'accepted'"
        ).fetchone()
        return with_golden, without

    def count_reason_prefix(self, prefix: str) -> int:
        """Tasks whose reject reason starts with ``prefix`` (a range, so the index serves it)."""
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        return self._conn.execute(
            "SELECT count(*) FROM tasks WHERE reject_reason >= ? AND reject_reason < ?",
            (prefix, upper),
        ).fetchone()[0]

    def iter_candidates(self, batch: int = 1000) -> Iterator[list[Candidate]]:
        """Accepted tasks with a golden solution, ascending id, ``batch`` at a time."""
        last = 0
        while True:
            rows = self._conn.execute(
                "SELECT t.id, x.statement, t.agreement, t.golden_solution_id FROM tasks t"
                f" JOIN task_texts x ON x.task_id = t.id WHERE {ACCEPTED} AND t.id > ?"
                " ORDER BY t.id LIMIT ?", (last, batch),
            ).fetchall()
            if not rows:
                return
            yield [Candidate(*r) for r in rows]
            last = rows[-1][0]

    def export_batch(self, task_ids: Sequence[int], extra_solutions: int) -> list[ExportTask]:
        """Kept tasks (still accepted) with golden solution, labelled tests and pass counts,
        in the order of ``task_ids``. ``extra_solutions`` > 0 also loads up to that many other
        correct candidates per task."""
        if not task_ids:
            return []
        marks = ",".join("?" * len(task_ids))
        conn = self._conn
        tasks: dict[int, ExportTask] = {}
        golden_of: dict[int, int] = {}
        for r in conn.execute(
            "SELECT t.id, t.key, t.style, x.title, x.statement, t.agreement,"
            " t.golden_solution_id FROM tasks t JOIN task_texts x ON x.task_id = t.id"
            f" WHERE t.id IN ({marks}) AND {ACCEPTED}", task_ids,
        ).fetchall():
            tasks[r[0]] = ExportTask(id=r[0], key=r[1], style=r[2], title=r[3], statement=r[4],
                                     agreement=r[5], golden=None)
            golden_of[r[0]] = r[6]
        for tid, inp, out in conn.execute(
            "SELECT task_id, input, expected_output FROM tests"
            f" WHERE task_id IN ({marks}) AND expected_output IS NOT NULL ORDER BY task_id, idx",
            task_ids,
        ).fetchall():
            if tid in tasks:
                tasks[tid].inputs.append(inp)
                tasks[tid].outputs.append(out)
        # Per usable candidate: how many labelled tests it passed ('ok' verdicts).
        correct_ids: dict[int, list[tuple[int, int]]] = {}
        for tid, sid, idx, passed in conn.execute(
            "SELECT s.task_id, s.id, s.idx, (SELECT count(*) FROM verdicts v"
            "  JOIN tests te ON te.id = v.test_id"
            "  WHERE v.solution_id = s.id AND v.status = 'ok' AND te.expected_output IS NOT NULL)"
            f" FROM solutions s WHERE s.task_id IN ({marks}) AND s.status = 'ok'"
            " AND s.code IS NOT NULL ORDER BY s.task_id, s.idx", task_ids,
        ).fetchall():
            task = tasks.get(tid)
            if task is None:
                continue
            task.candidates += 1
            if task.inputs and passed >= len(task.inputs):
                task.correct += 1
                if sid != golden_of.get(tid):
                    correct_ids.setdefault(tid, []).append((idx, sid))
        wanted = list(golden_of.values())
        if extra_solutions:
            for found in correct_ids.values():
                wanted += [sid for _, sid in sorted(found)[:extra_solutions]]
        texts = self._solutions(wanted)
        for tid, task in tasks.items():
            task.golden = texts.get(golden_of[tid])
            if extra_solutions:
                task.others = [texts[sid] for _, sid in sorted(correct_ids.get(tid, []))
                               [:extra_solutions] if sid in texts]
        return [tasks[t] for t in task_ids if t in tasks]

    def _solutions(self, ids: list[int]) -> dict[int, SolutionText]:
        out: dict[int, SolutionText] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            for r in self._conn.execute(
                "SELECT id, idx, language, code, reasoning FROM solutions"
                f" WHERE id IN ({','.join('?' * len(chunk))})", chunk,
            ).fetchall():
                out[r[0]] = SolutionText(*r)
        return out
