"""The SFT and RL export formats, and writers that put a file in place only when it is whole.

SFT rows (``sft.jsonl`` / ``sft.parquet``): the two string columns of the public X-Coder SFT
set (IIGroup/X-Coder-SFT-376k), and the same pair in the shapes the trainers read as they are::

    {"query": "<task statement>",
     "response": "<think>\\n<reasoning>\\n</think>\\n\\n```python\\n<code>\\n```",
     "messages": [{"role": "user", "content": query}, {"role": "assistant", "content": response}],
     "prompt": [{"role": "user", "content": query}],
     "completion": [{"role": "assistant", "content": response}]}

``messages`` is what verl's ``MultiTurnSFTDataset`` and TRL's language-modelling SFT read;
``prompt``/``completion`` (conversational) is TRL's prompt-completion form, which it prefers when
both are there (loss on the completion only). The sft stage reads ``query``/``response``.

``query`` is the statement as stored (the prompt a user sends). ``response`` is the solution's
``reasoning`` (its thinking, stored apart from the extracted ``code``) inside ``<think>`` tags
(left as it is if it already holds a ``<think>`` tag; left out when there is none), a blank
line, then the code in one fenced block tagged with its language (``python``, ``cpp``, ...;
four backticks if the code itself holds three).

A seed problem (``curate.include_seed_problems``) makes the same row from its problem text and
its first reference solution: seeds carry no reasoning, so the response is the fenced block
alone, tagged ``python`` (seeds record no language; TACO's and the bundled set's are Python).

RL rows (``rl.parquet``, and the held-out ``rl_val.parquet``): the columns verl's RLHFDataset
reads, which HF ``datasets`` and TRL load as they are (TRL's GRPO passes the extra columns on
to reward functions)::

    data_source   string   "synthsmith" (curate.rl_data_source)
    prompt        list<struct<role: string, content: string>>   [{"role": "user", "content": statement}]
    ability       string   "code"
    reward_model  struct<style: string, ground_truth: string>
                  style "rule"; ground_truth = JSON text {"inputs": [...], "outputs": [...]}
                  (the labelled tests, stdin / expected stdout, equal lengths, by test idx)
    extra_info    struct<index: int64, split: string, task_id: int64, task_key: string,
                         style: string, title: string, n_tests: int64,
                         agreement: double, pass_rate: double,
                         origin: string, seed_id: int64, seed_key: string>

``index`` is the row's position in its own file and ``split`` names the file: ``"train"``
(rl.parquet) or ``"test"`` (rl_val.parquet, verl's ``data.val_files``), as verl's data
preparation scripts write them.

``data_source`` picks the reward in verl. ``"synthsmith"`` (default) needs our
``compute_score`` (``engine/train/verl_reward.py``: the rl stage's rule, judged in our
sandbox). ``"codecontests"``, ``"apps"``, ``"codeforces"`` or ``"taco"`` are the names verl's
built-in ``default_compute_score`` hands to its ``prime_code`` scorer, which reads this same
ground truth: the TACO/APPS "input_output" layout (no ``fn_name``: stdin/stdout programs); our
``compute_score`` judges those names too. ``pass_rate`` is the share of a task's usable candidates that passed every
labelled test (null without candidates): a difficulty proxy for easy-to-hard ordering.
``origin`` is ``"task"`` for a synthesized task (``seed_id`` / ``seed_key`` null) and ``"seed"``
for a seed problem: then ``seed_id`` is its id in the store's seeds table, ``seed_key`` its
``source_key`` (``<file>:<line>``), the tests are the seed's own, and ``task_id``,
``task_key``, ``style``, ``title``, ``agreement`` and ``pass_rate`` are null (it is not a task
and nothing voted on it). ``data_source`` is the same for both, so one reward
function serves the whole set.

The validation split (``split_rl``): each RL row's key (``task:<task_key>``, else
``task-id:<task_id>``; ``seed:<seed_key>``) hashed with the run's seed gives u in [0, 1); a
row goes to rl_val.parquet when u < ``rl_val_fraction``, so a task's side depends only on the
seed and its key, never on the other tasks. Then, in this order: past ``rl_val_max_tasks``
only the lowest u stay (0: no cap); with two or more rows and none held out, the lowest u is;
if every row was held out, the highest u goes back to training. So with n >= 2 rows there is
at least one of each (verl refuses an empty validation set), with n = 1 the one row trains,
and ``rl_val_fraction`` 0 holds out nothing. ``rl_max_tasks`` caps the rows before the split.

Writers: each file is written to a hidden temporary sibling, fsynced, and renamed over the
target by ``commit()``; ``abort()`` removes the temporary (the dataset card, one text file,
goes through ``engine.rundir.atomic_write_text``, the same way). A reader sees the old file or
the new one, never half of one. Parquet files use zstd and one row group per written batch.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from engine.store.accepted_tasks import ExportTask, SolutionText
from engine.store.seed_problems import SeedProblem

DATA_SOURCE = "synthsmith"
FENCE_LANGUAGE = {"python": "python", "python3": "python", "py": "python", "cpp": "cpp",
                  "c++": "cpp", "cxx": "cpp", "java": "java", "rust": "rust", "go": "go"}

_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
SFT_SCHEMA = pa.schema([("query", pa.string()), ("response", pa.string()),
                        ("messages", _MESSAGES), ("prompt", _MESSAGES),
                        ("completion", _MESSAGES)])
RL_SCHEMA = pa.schema([
    ("data_source", pa.string()),
    ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
    ("ability", pa.string()),
    ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
    ("extra_info", pa.struct([
        ("index", pa.int64()), ("split", pa.string()), ("task_id", pa.int64()),
        ("task_key", pa.string()), ("style", pa.string()), ("title", pa.string()),
        ("n_tests", pa.int64()), ("agreement", pa.float64()), ("pass_rate", pa.float64()),
        ("origin", pa.string()), ("seed_id", pa.int64()), ("seed_key", pa.string()),
    ])),
])


# ---------------------------------------------------------------------------------------------
# Rows


def sft_response(sol: SolutionText) -> str:
    """A solution as an SFT response: reasoning in ``<think>`` tags, then the fenced code."""
    code = (sol.code or "").strip("\n")
    lang = FENCE_LANGUAGE.get(sol.language.strip().lower(), sol.language.strip().lower())
    fence = "````" if "```" in code else "```"
    block = f"{fence}{lang}\n{code}\n{fence}"
    reasoning = (sol.reasoning or "").strip()
    if not reasoning:
        return block
    if "<think>" not in reasoning:
        reasoning = f"<think>\n{reasoning}\n</think>"
    return f"{reasoning}\n\n{block}"


def sft_row(query: str, response: str) -> dict[str, Any]:
    """One SFT row in every shape (module docstring)."""
    user = {"role": "user", "content": query}
    assistant = {"role": "assistant", "content": response}
    return {"query": query, "response": response, "messages": [user, assistant],
            "prompt": [user], "completion": [assistant]}


def sft_rows(task: ExportTask, per_task: int) -> list[dict[str, Any]]:
    """Up to ``per_task`` rows: the golden solution first, then other correct ones by idx."""
    sols = [s for s in [task.golden, *task.others] if s is not None and s.code]
    return [sft_row(task.statement, sft_response(s)) for s in sols[:per_task]]


def rl_row(task: ExportTask, index: int, data_source: str = DATA_SOURCE) -> dict[str, Any]:
    """The verl row of a task that has labelled tests."""
    return _rl_row(data_source, task.statement, task.inputs, task.outputs, {
        "index": index, "split": "train", "task_id": task.id, "task_key": task.key,
        "style": task.style, "title": task.title, "n_tests": len(task.inputs),
        "agreement": task.agreement, "pass_rate": task.pass_rate, "origin": "task",
        "seed_id": None, "seed_key": None})


def seed_sft_row(seed: SeedProblem) -> dict[str, Any]:
    """The SFT row of a seed problem: its text, and its reference solution fenced."""
    sol = SolutionText(id=seed.id, idx=0, language="python", code=seed.solution, reasoning=None)
    return sft_row(seed.problem, sft_response(sol))


def seed_rl_row(seed: SeedProblem, index: int, data_source: str = DATA_SOURCE) -> dict[str, Any]:
    """The verl row of a seed problem that has stdin/stdout tests."""
    return _rl_row(data_source, seed.problem, seed.inputs, seed.outputs, {
        "index": index, "split": "train", "task_id": None, "task_key": None, "style": None,
        "title": None, "n_tests": len(seed.inputs), "agreement": None, "pass_rate": None,
        "origin": "seed", "seed_id": seed.id, "seed_key": seed.source_key})


def _rl_row(data_source: str, statement: str, inputs: list[str], outputs: list[str],
            extra: dict[str, Any]) -> dict[str, Any]:
    truth = {"inputs": inputs, "outputs": outputs}
    return {
        "data_source": data_source,
        "prompt": [{"role": "user", "content": statement}],
        "ability": "code",
        "reward_model": {"style": "rule",
                         "ground_truth": json.dumps(truth, ensure_ascii=False)},
        "extra_info": extra,
    }


# ---------------------------------------------------------------------------------------------
# The held-out validation split


def split_key(extra: dict[str, Any]) -> str:
    """A row's identity for the split: its task key, else task id, else seed key."""
    if extra.get("origin") == "seed":
        return f"seed:{extra.get('seed_key')}"
    if extra.get("task_key"):
        return f"task:{extra['task_key']}"
    return f"task-id:{extra.get('task_id')}"


def split_draw(seed: int, key: str) -> float:
    """u in [0, 1) for a row key: the same on every machine and run (not Python's hash)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_rl(keys: Sequence[str], fraction: float, max_val: int, seed: int) -> list[bool]:
    """Which rows (by position) go to the validation file; the rule is in the module docstring."""
    n = len(keys)
    draws = [split_draw(seed, k) for k in keys]
    if fraction <= 0 or n < 2:
        return [False] * n
    by_draw = sorted(range(n), key=lambda i: (draws[i], i))
    held = [i for i in by_draw if draws[i] < fraction]
    if max_val > 0:
        held = held[:max_val]
    if not held:
        held = by_draw[:1]
    if len(held) == n:
        held = held[:-1]
    chosen = set(held)
    return [i in chosen for i in range(n)]


# ---------------------------------------------------------------------------------------------
# Writers


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class ExportFile:
    """One export file, written to a temporary sibling and renamed into place by ``commit``."""

    def __init__(self, path: Path, fmt: Literal["jsonl", "parquet"],
                 schema: pa.Schema | None = None) -> None:
        self.path = Path(path)
        self.fmt = fmt
        self.rows = 0
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "jsonl":
            self._fh: Any = open(self._tmp, "w", encoding="utf-8", newline="\n")  # noqa: SIM115
            self._pq = None
        else:
            if schema is None:
                raise ValueError("a Parquet export needs a schema")
            self._schema = schema
            self._fh = None
            self._pq = pq.ParquetWriter(self._tmp, schema, compression="zstd")

    def write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if self._fh is not None:
            self._fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        else:
            self._pq.write_table(pa.Table.from_pylist(rows, schema=self._schema))
        self.rows += len(rows)

    def commit(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
        else:
            self._pq.close()
            fd = os.open(self._tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(self._tmp, self.path)
        _fsync_dir(self.path.parent)  # make the rename itself durable

    def abort(self) -> None:
        try:
            if self._fh is not None:
                self._fh.close()
            else:
                self._pq.close()
        finally:
            self._tmp.unlink(missing_ok=True)


class RlSplitWriter:
    """The RL rows, written whole to a temporary file, then split by ``commit`` into the
    training file and (``val_path`` set) the validation file, both renamed into place.

    The split needs every row's key (at least one row on each side, a cap on the lowest
    draws), so the rows go to disk once as they come and are read back batch by batch: memory
    holds one batch, however big the tests. ``index`` and ``split`` are rewritten per file.
    """

    def __init__(self, path: Path, val_path: Path | None) -> None:
        self.path, self.val_path = Path(path), val_path
        self.rows = 0  # rows written so far; after commit: rows in the training file
        self.val_rows = 0  # after commit: rows in the validation file
        self._keys: list[str] = []
        self._tmp = self.path.with_name(f".{self.path.name}.all.{os.getpid()}.tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(self._tmp, RL_SCHEMA,
                                                                 compression="zstd")
        self._out: list[ExportFile] = []

    def write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        self._keys += [split_key(r["extra_info"]) for r in rows]
        self._writer.write_table(pa.Table.from_pylist(rows, schema=RL_SCHEMA))
        self.rows += len(rows)

    def commit(self, fraction: float, max_val: int, seed: int) -> None:
        """Split, write both files and rename them into place (the training file last)."""
        held = split_rl(self._keys, fraction if self.val_path else 0.0, max_val, seed)
        self._writer.close()
        self._writer = None
        train = ExportFile(self.path, "parquet", RL_SCHEMA)
        self._out = [train]
        val = None
        if self.val_path is not None:
            val = ExportFile(self.val_path, "parquet", RL_SCHEMA)
            self._out.append(val)
        position = 0
        for batch in pq.ParquetFile(self._tmp).iter_batches(batch_size=100):
            sides: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
            for row in batch.to_pylist():
                sides[held[position]].append(row)
                position += 1
            for is_val, f in ((False, train), (True, val)):
                if f is None:
                    continue
                for k, row in enumerate(sides[is_val]):
                    row["extra_info"] = {**row["extra_info"], "index": f.rows + k,
                                         "split": "test" if is_val else "train"}
                f.write(sides[is_val])
        for f in reversed(self._out):
            f.commit()
        self._tmp.unlink(missing_ok=True)
        self.rows, self.val_rows = train.rows, 0 if val is None else val.rows

    def abort(self) -> None:
        try:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        finally:
            self._tmp.unlink(missing_ok=True)
            for f in self._out:
                if f._tmp.exists():
                    f.abort()
