"""SFT data: {query, response} rows -> tokenized examples -> rows -> a seeded per-epoch plan.

- ``resolve_data_path``: ``data: curate`` is this run's ``exports/sft.jsonl`` or
  ``exports/sft.parquet`` (whichever exists, jsonl first); anything else is a file path.
- ``tokenize_example``: the tokenizer's own chat template renders user = query, assistant =
  response; labels are the token ids from where the rendered prompt (with the generation
  prompt) stops matching the full conversation, IGNORE before. Comparing token lists instead of
  assuming a prefix keeps templates that rewrite earlier turns working.
- ``build_rows``: examples longer than ``max_seq_len`` are dropped (counted), never cut: a cut
  response teaches the model to stop mid-solution. With packing they are grouped first-fit
  decreasing into rows of ``max_seq_len`` tokens; without, one example per row.
- ``Plan``: the order of rows in epoch ``e`` is a permutation seeded by ``(seed, e)``, so the
  position in the epoch (a step number) is all a checkpoint needs to resume the same order.
  An epoch has ``ceil(rows / global_batch)`` steps; the last one is filled up with rows from
  the start of the same order (as DistributedSampler does), so every rank gets equal work.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.train.packing import IGNORE, pack_first_fit

Example = tuple[list[int], list[int]]  # (input_ids, labels)


class SftDataError(Exception):
    """The SFT data cannot be used; the message says what to fix."""


def resolve_data_path(data: str, exports_dir: Path) -> Path:
    if data == "curate":
        for name in ("sft.jsonl", "sft.parquet"):
            if (exports_dir / name).is_file():
                return exports_dir / name
        raise SftDataError(
            f"sft.data is 'curate' but this run has no SFT export ({exports_dir}/sft.jsonl or "
            "sft.parquet): run the curate stage first (--stages curate), or set sft.data to a "
            "JSONL/Parquet file of {query, response} rows")
    path = Path(data).expanduser()
    if not path.is_file():
        raise SftDataError(f"sft.data {data!r} is not a file (resolved to {path.resolve()}): "
                           "give a JSONL or Parquet file of {query, response} rows, or curate")
    return path


def read_rows(path: Path) -> list[dict[str, str]]:
    """The {query, response} rows of a JSONL or Parquet file, checked."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(path, columns=["query", "response"]).to_pylist()
    else:
        rows = []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise SftDataError(f"{path}:{n} is not JSON ({e})") from None
    for n, row in enumerate(rows, 1):
        if not (isinstance(row, dict) and isinstance(row.get("query"), str)
                and isinstance(row.get("response"), str)):
            raise SftDataError(f"{path} row {n} is not a {{query, response}} pair of strings")
    if not rows:
        raise SftDataError(f"{path} holds no rows: nothing to train on")
    return rows


def tokenize_example(tokenizer: Any, query: str, response: str) -> Example:
    """Chat-template one pair; loss only on the assistant's tokens (and its end marker)."""
    user = [{"role": "user", "content": query}]
    prompt_text = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    full_text = tokenizer.apply_chat_template(
        user + [{"role": "assistant", "content": response}], tokenize=False)
    # The template already holds any BOS it wants; adding special tokens would double it.
    prompt = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    ids = tokenizer(full_text, add_special_tokens=False)["input_ids"]
    start = 0
    while start < min(len(prompt), len(ids)) and prompt[start] == ids[start]:
        start += 1
    labels = [IGNORE] * start + ids[start:]
    return list(ids), labels


@dataclass
class Rows:
    examples: list[Example]
    rows: list[list[int]]  # example indices per row
    dropped: int  # examples longer than max_seq_len
    tokens: int  # tokens of the kept examples


def build_rows(examples: Sequence[Example], max_seq_len: int, packing: bool) -> Rows:
    kept = [e for e in examples if len(e[0]) <= max_seq_len]
    lengths = [len(e[0]) for e in kept]
    rows = pack_first_fit(lengths, max_seq_len) if packing else [[i] for i in range(len(kept))]
    return Rows(list(kept), rows, len(examples) - len(kept), sum(lengths))


@dataclass(frozen=True)
class Plan:
    """Which rows each rank sees at each optimizer step; pure arithmetic on (seed, step)."""

    n_rows: int
    global_batch: int
    micro_batch: int
    world_size: int
    epochs: int
    seed: int

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.n_rows / self.global_batch)

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs

    @property
    def accumulation(self) -> int:
        return self.global_batch // (self.micro_batch * self.world_size)

    def epoch_order(self, epoch: int) -> list[int]:
        order = list(range(self.n_rows))
        random.Random(f"{self.seed}:{epoch}").shuffle(order)
        return order

    def step_rows(self, step: int) -> list[int]:
        """The global batch (row indices) of optimizer step ``step`` (0-based)."""
        epoch, k = divmod(step, self.steps_per_epoch)
        order = self.epoch_order(epoch)
        picked = [order[(k * self.global_batch + i) % self.n_rows]
                  for i in range(self.global_batch)]
        return picked

    def micro_batches(self, step: int, rank: int) -> list[list[int]]:
        """This rank's ``accumulation`` micro-batches of step ``step``: rank-strided slices."""
        rows = self.step_rows(step)
        per_pass = self.micro_batch * self.world_size
        out = []
        for a in range(self.accumulation):
            chunk = rows[a * per_pass:(a + 1) * per_pass]
            out.append(chunk[rank * self.micro_batch:(rank + 1) * self.micro_batch])
        return out
