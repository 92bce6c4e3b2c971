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

RL rows (``rl.parquet``): the columns verl's RLHFDataset reads, which HF ``datasets`` and TRL
load as they are (TRL's GRPO passes the extra columns on to reward functions)::

    data_source   string   "synthsmith"
    prompt        list<struct<role: string, content: string>>   [{"role": "user", "content": statement}]
    ability       string   "code"
    reward_model  struct<style: string, ground_truth: string>
                  style "rule"; ground_truth = JSON text {"inputs": [...], "outputs": [...]}
                  (the labelled tests, stdin / expected stdout, equal lengths, by test idx)
    extra_info    struct<index: int64, split: string, task_id: int64, task_key: string,
                         style: string, title: string, n_tests: int64,
                         agreement: double, pass_rate: double,
                         origin: string, seed_id: int64, seed_key: string>

``ground_truth`` is the TACO/APPS "input_output" layout that verl's own ``prime_code`` scorer
parses too. ``pass_rate`` is the share of a task's usable candidates that passed every
labelled test (null without candidates): a difficulty proxy for easy-to-hard ordering.
``origin`` is ``"task"`` for a synthesized task (``seed_id`` / ``seed_key`` null) and ``"seed"``
for a seed problem: then ``seed_id`` is its id in the store's seeds table, ``seed_key`` its
``source_key`` (``<file>:<line>``), the tests are the seed's own, and ``task_id``,
``task_key``, ``style``, ``title``, ``agreement`` and ``pass_rate`` are null (it is not a task
and nothing voted on it). ``data_source`` stays ``"synthsmith"`` for both, so one reward
function serves the whole set.

Writers: each file is written to a hidden temporary sibling, fsynced, and renamed over the
target by ``commit()``; ``abort()`` removes the temporary. A reader sees the old file or the
new one, never half of one. Parquet files use zstd and one row group per written batch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from engine.curate.accepted_tasks import ExportTask, SolutionText
from engine.curate.seed_problems import SeedProblem

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


def rl_row(task: ExportTask, index: int) -> dict[str, Any]:
    """The verl row of a task that has labelled tests."""
    return _rl_row(task.statement, task.inputs, task.outputs, {
        "index": index, "split": "train", "task_id": task.id, "task_key": task.key,
        "style": task.style, "title": task.title, "n_tests": len(task.inputs),
        "agreement": task.agreement, "pass_rate": task.pass_rate, "origin": "task",
        "seed_id": None, "seed_key": None})


def seed_sft_row(seed: SeedProblem) -> dict[str, Any]:
    """The SFT row of a seed problem: its text, and its reference solution fenced."""
    sol = SolutionText(id=seed.id, idx=0, language="python", code=seed.solution, reasoning=None)
    return sft_row(seed.problem, sft_response(sol))


def seed_rl_row(seed: SeedProblem, index: int) -> dict[str, Any]:
    """The verl row of a seed problem that has stdin/stdout tests."""
    return _rl_row(seed.problem, seed.inputs, seed.outputs, {
        "index": index, "split": "train", "task_id": None, "task_key": None, "style": None,
        "title": None, "n_tests": len(seed.inputs), "agreement": None, "pass_rate": None,
        "origin": "seed", "seed_id": seed.id, "seed_key": seed.source_key})


def _rl_row(statement: str, inputs: list[str], outputs: list[str],
            extra: dict[str, Any]) -> dict[str, Any]:
    truth = {"inputs": inputs, "outputs": outputs}
    return {
        "data_source": DATA_SOURCE,
        "prompt": [{"role": "user", "content": statement}],
        "ability": "code",
        "reward_model": {"style": "rule",
                         "ground_truth": json.dumps(truth, ensure_ascii=False)},
        "extra_info": extra,
    }


# ---------------------------------------------------------------------------------------------
# Writers


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
        dir_fd = os.open(self.path.parent, os.O_RDONLY)  # make the rename itself durable
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def abort(self) -> None:
        try:
            if self._fh is not None:
                self._fh.close()
            else:
                self._pq.close()
        finally:
            self._tmp.unlink(missing_ok=True)
