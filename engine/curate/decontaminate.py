"""Decontamination: flag a task whose statement shares long word n-grams with a benchmark
problem (LiveCodeBench, say), so benchmark text never reaches the training sets.

The benchmark file is JSONL (``.jsonl``, ``.ndjson``, ``.json`` lines; ``.gz`` too), one problem
per line. The problem text is the first of these fields present: ``question_content``
(LiveCodeBench), ``question`` (TACO, APPS), ``problem``. Its id, used in the reject reason
``contaminated:<id>``, is the first of ``question_id`` (LiveCodeBench), ``problem_id``,
``task_id``, ``id``, ``name``; else ``line<N>``. A line that is not a JSON object, or has none of
the text fields, is counted as bad and skipped.

Matching: every word n-gram (``decontam_ngram_size`` words, normalised as in ``word_ngrams``)
of every problem goes into one index. An n-gram that turns up in ``boilerplate_problems`` or
more problems is stock phrasing ("the input is given from standard input in the following
format", "the first line contains a single integer t"): synthetic tasks in the same style repeat
it, so it never counts. A task is contaminated by the problem it shares the most distinct
remaining n-grams with (lowest index on a tie), when that count reaches ``min_matches``.

A problem shorter than the n-gram has no n-gram and cannot match (counted as ``too_short``).
Leaves out: matching solutions or tests against the benchmark (its problems ship without
them), and fuzzy matching of paraphrases (an embedding model would be needed).
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from engine.curate.word_ngrams import WordHasher, ngram_hashes, words_of

TEXT_FIELDS = ("question_content", "question", "problem")
ID_FIELDS = ("question_id", "problem_id", "task_id", "id", "name")
SHOW_BAD = 5  # bad lines kept as examples


@dataclass
class BenchmarkStats:
    problems: int = 0
    bad_lines: int = 0
    too_short: int = 0
    ngrams: int = 0
    boilerplate_ngrams: int = 0
    bad_examples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"problems": self.problems, "bad_lines": self.bad_lines,
                "too_short": self.too_short, "ngrams": self.ngrams,
                "boilerplate_ngrams": self.boilerplate_ngrams,
                "bad_examples": self.bad_examples}


def _problem_of(rec: object, line_no: int) -> tuple[str, str] | str:
    """-> (id, text), or why the line is not a problem."""
    if not isinstance(rec, dict):
        return f"a JSON {type(rec).__name__}, not an object"
    text = next((rec[k] for k in TEXT_FIELDS if isinstance(rec.get(k), str) and rec[k].strip()),
                None)
    if text is None:
        return f"no text in any of {', '.join(TEXT_FIELDS)}"
    pid = next((rec[k] for k in ID_FIELDS if rec.get(k) not in (None, "")), None)
    return (f"line{line_no}" if pid is None else str(pid)).strip() or f"line{line_no}", text


def read_problems(path: Path, stats: BenchmarkStats):
    """Yield (id, text) for each problem in a benchmark JSONL file; bad lines go to ``stats``."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                got = _problem_of(json.loads(raw), line_no)
            except ValueError as e:  # JSONDecodeError and UnicodeDecodeError both
                got = f"invalid JSON: {e}"
            if isinstance(got, str):
                stats.bad_lines += 1
                if len(stats.bad_examples) < SHOW_BAD:
                    stats.bad_examples.append(f"line {line_no}: {got}")
                continue
            yield got


class BenchmarkIndex:
    """The n-grams of a benchmark's problems, minus boilerplate; ``match`` checks one task."""

    def __init__(self, path: Path, *, ngram_size: int, boilerplate_problems: int,
                 hasher: WordHasher) -> None:
        self.path = path
        self.ngram_size = ngram_size
        self.stats = BenchmarkStats()
        self.ids: list[str] = []
        owners: dict[int, list[int]] = {}  # n-gram -> problems holding it (up to the cut-off)
        for pid, text in read_problems(path, self.stats):
            index = len(self.ids)
            self.ids.append(pid)
            grams = ngram_hashes(hasher.hashes(words_of(text)), ngram_size)
            if len(grams) == 0:
                self.stats.too_short += 1
            for g in set(grams.tolist()):
                holders = owners.setdefault(g, [])
                if len(holders) < boilerplate_problems:
                    holders.append(index)
        self.stats.problems = len(self.ids)
        self._owners = {g: tuple(h) for g, h in owners.items() if len(h) < boilerplate_problems}
        self.stats.ngrams = len(self._owners)
        self.stats.boilerplate_ngrams = len(owners) - len(self._owners)
        self._keys = self._owners.keys()

    def match(self, task_ngrams: list[int], min_matches: int = 1) -> str | None:
        """The id of the benchmark problem this task leaks, or None."""
        hits = self._keys & set(task_ngrams)
        if len(hits) < min_matches:
            return None
        per_problem: Counter[int] = Counter()
        for g in hits:
            per_problem.update(self._owners[g])
        count, neg_index = max((c, -i) for i, c in per_problem.items())
        return self.ids[-neg_index] if count >= min_matches else None
