"""The RL task set: read the RL export (``engine/curate/exports.py`` RL rows), keep the tasks
with tests whose prompt fits, and order them for the curriculum.

    rows = load_rl_rows(path)                                   # parquet or jsonl
    rows, dropped = fit_prompts(rows, tokenizer, max_prompt_tokens)
    rows = order_rows(rows, "easy_to_hard")                     # by pass_rate, high first

A row here is flat, as the GRPO trainer passes dataset columns to reward functions:
``{"prompt": [{"role", "content"}], "ground_truth": "<json>", "task_id": int,
"pass_rate": float | None}``. A seed problem exported by ``curate.include_seed_problems`` has
no task id: its ``task_id`` is minus its seed id (rollout records and views tell them apart).

Leaves out: streaming sets larger than memory (the RL set is ~40k tasks, a few hundred MB).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

__all__ = ["fit_prompts", "flatten_row", "load_rl_rows", "order_rows"]


def flatten_row(row: dict[str, Any]) -> dict[str, Any]:
    """An export row -> the flat training row (prompt, ground_truth, task_id, pass_rate)."""
    extra = row.get("extra_info") or {}
    truth = (row.get("reward_model") or {}).get("ground_truth")
    if truth is None:
        raise ValueError("row has no reward_model.ground_truth")
    if not isinstance(truth, str):
        truth = json.dumps(truth, ensure_ascii=False)
    prompt = row["prompt"]
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    return {"prompt": [{"role": m["role"], "content": m["content"]} for m in prompt],
            "ground_truth": truth,
            "task_id": _task_id(extra),
            "pass_rate": None if extra.get("pass_rate") is None else float(extra["pass_rate"])}


def _task_id(extra: dict[str, Any]) -> int:
    if extra.get("origin") == "seed" and extra.get("seed_id") is not None:
        return -int(extra["seed_id"])
    return int(extra.get("task_id", extra.get("index", 0)) or 0)


def load_rl_rows(path: Path) -> list[dict[str, Any]]:
    """Flat rows of an RL export file (``.parquet`` or ``.jsonl``)."""
    if path.suffix == ".parquet":
        raw = pq.read_table(path).to_pylist()
    else:
        with path.open(encoding="utf-8") as fh:
            raw = [json.loads(line) for line in fh if line.strip()]
    return [flatten_row(r) for r in raw]


def fit_prompts(rows: Sequence[dict[str, Any]], tokenizer: Any, max_prompt_tokens: int,
                ) -> tuple[list[dict[str, Any]], int]:
    """(rows whose chat-templated prompt has at most ``max_prompt_tokens`` tokens, dropped)."""
    kept = []
    for row in rows:
        ids = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True,
                                            tokenize=True)
        if hasattr(ids, "keys"):  # transformers 5 returns a BatchEncoding
            ids = ids["input_ids"]
        if len(ids) <= max_prompt_tokens:
            kept.append(row)
    return kept, len(rows) - len(kept)


def order_rows(rows: Sequence[dict[str, Any]], curriculum: str) -> list[dict[str, Any]]:
    """easy_to_hard: highest pass rate first (unknown pass rates last), ties by task id;
    none: as given (the trainer shuffles)."""
    if curriculum != "easy_to_hard":
        return list(rows)
    return sorted(rows, key=lambda r: (r["pass_rate"] is None, -(r["pass_rate"] or 0.0),
                                       r["task_id"]))
