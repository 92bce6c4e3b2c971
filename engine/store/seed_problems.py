"""Bulk reads of the seed problems curation may export (``curate.include_seed_problems``).

The seeds stage imported them into the store's ``seeds`` table (``engine/store/tables.py``): the
problem text, ``solutions`` as a JSON list of code strings, ``tests`` as TACO-style JSON
``{"inputs": [...], "outputs": [...], "fn_name"?: ...}``. Like ``accepted_tasks`` this reads
that table in SQL through its own read-only connection, a batch at a time, and fetches every
query whole before the stage writes.

What counts:

- a seed's reference solution is the first entry of ``solutions`` that is a string holding
  more than white space; a seed without one is ``without_solution`` and never exported;
- its tests are usable when they are stdin/stdout pairs: at least one input, as many outputs as
  inputs, every one a string, and no ``fn_name`` (TACO's function-call tests, which the RL
  judge does not run). Without usable tests a seed still goes to the SFT set, not to RL.

The filter pass reads only the problem text and these two facts (computed by SQLite's JSON
functions, so a TACO seed's hundreds of solutions and megabytes of tests stay on disk); the
export pass loads the first solution and the tests of the kept seeds only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.store.accepted_tasks import read_only_connection
from engine.store.tables import FIRST_SOLUTION

STDIO_TESTS = (
    "(json_extract(seeds.tests, '$.fn_name') IS NULL"
    " AND json_array_length(seeds.tests, '$.inputs') > 0"
    " AND json_array_length(seeds.tests, '$.inputs')"
    "     = json_array_length(seeds.tests, '$.outputs')"
    " AND NOT EXISTS (SELECT 1 FROM json_each(seeds.tests, '$.inputs') WHERE type != 'text')"
    " AND NOT EXISTS (SELECT 1 FROM json_each(seeds.tests, '$.outputs') WHERE type != 'text'))"
)


@dataclass(frozen=True, slots=True)
class SeedCandidate:
    """A seed as the filters see it."""

    id: int
    source_key: str
    problem: str
    has_solution: bool
    has_tests: bool


@dataclass(frozen=True, slots=True)
class SeedProblem:
    """A kept seed with what both exports need."""

    id: int
    source: str
    source_key: str
    problem: str
    solution: str
    inputs: list[str]  # empty without usable tests
    outputs: list[str]


class SeedReader:
    def __init__(self, store_path: Path) -> None:
        self._conn = read_only_connection(store_path)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> SeedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def count(self) -> tuple[int, int]:
        """-> (seeds, seeds with a reference solution)."""
        total, with_solution = self._conn.execute(
            f"SELECT count(*), count({FIRST_SOLUTION}) FROM seeds").fetchone()
        return total, with_solution

    def iter_candidates(self, batch: int = 1000) -> Iterator[list[SeedCandidate]]:
        """Every seed, ascending id, ``batch`` at a time."""
        last = 0
        while True:
            rows = self._conn.execute(
                f"SELECT id, source_key, problem, {FIRST_SOLUTION} IS NOT NULL, {STDIO_TESTS}"
                " FROM seeds WHERE id > ? ORDER BY id LIMIT ?", (last, batch),
            ).fetchall()
            if not rows:
                return
            yield [SeedCandidate(r[0], r[1], r[2], bool(r[3]), bool(r[4])) for r in rows]
            last = rows[-1][0]

    def export_batch(self, seed_ids: Sequence[int]) -> list[SeedProblem]:
        """Seeds with their first solution and usable tests, in the order of ``seed_ids``
        (a seed no longer stored, or without a solution now, is left out)."""
        if not seed_ids:
            return []
        found: dict[int, SeedProblem] = {}
        for sid, source, key, problem, solution, tests in self._conn.execute(
            f"SELECT id, source, source_key, problem, {FIRST_SOLUTION},"
            f" CASE WHEN {STDIO_TESTS} THEN tests END"
            f" FROM seeds WHERE id IN ({','.join('?' * len(seed_ids))})", list(seed_ids),
        ).fetchall():
            if solution is None:
                continue
            truth = {} if tests is None else json.loads(tests)
            found[sid] = SeedProblem(sid, source, key, problem, solution,
                                     list(truth.get("inputs", [])),
                                     list(truth.get("outputs", [])))
        return [found[s] for s in seed_ids if s in found]
