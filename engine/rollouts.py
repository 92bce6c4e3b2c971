"""RL rollout records: every scored rollout of an RL step, kept in the run dir for browsing.

Layout: ``<run>/rollouts/rl/<step:06d>.<rank>.jsonl``, one file per RL step and writer
process (rank), one JSON object per line and per rollout::

    {"v": 1, "step": 3, "rank": 0, "group": 0, "sample": 1, "task_id": 42, "reward": 2.5,
     "advantage": 0.71, "group_mean": 1.25, "group_std": 1.77, "passed": 1, "total": 2,
     "truncated": false, "statuses": ["ok", "wrong"], "code": "print(...)", "language":
     "python", "reason": null, "response_tokens": 37, "text": null}

Write with ``RolloutWriter(rollouts_dir(run_root), rank).write_step(step, records)``; read
with ``read_rollouts(path_or_dir, step=...)``, ``rollout_steps(dir)`` (from the file names
alone), ``groups(records)`` (one summary per prompt group) and ``group_records``. Only the
standard library is used: the data browser's remote queries (engine/store_rpc.py) read these
files on the cluster through a fresh ``python -m engine query`` per request.

Decisions
- One file per step, not one growing JSONL per rank: a step's rollouts are all known at once
  (the reward function scores the whole step), so a file is written whole (temp name + rename)
  and a reader never sees half of it; reading one step costs one small file however long the
  run; and a step that runs again (a resumed run that restarts from a checkpoint older than
  its last recorded step) replaces its file, so nothing is duplicated. Readers still keep one
  record per (step, rank, group, sample), the last one read, as a second line of defence.
- Bounded: at most ``MAX_GROUPS_PER_STEP`` (64) prompt groups per step and rank are kept,
  the first ones of the batch, whatever the config; code is cut at ``MAX_CODE_CHARS`` and the
  raw response (kept only when no code was extracted, to show why) at ``MAX_TEXT_CHARS``.
- ``step`` counts from 1, like the ``rl`` stage's metric events. ``group`` is the prompt's
  index within the step's batch on that rank, ``sample`` the rollout's index in its group.
- Advantages: GRPO's group-relative ones, (r - group mean) / (group std + 1e-4) with the
  sample (n - 1) standard deviation, exactly TRL 1.16's ``scale_rewards="group"``
  (``group_advantages``); the rl stage records the advantages TRL itself computed for the
  batch and falls back to this formula only when they are not available.

Left out: group statistics across ranks (each rank records its own slice; on one process
that is whole groups), token log-probs, and rollouts of other stages (eval keeps its own).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

RECORD_VERSION = 1
ROLLOUTS_DIR = "rollouts"
MAX_GROUPS_PER_STEP = 64
MAX_CODE_CHARS = 20_000
MAX_TEXT_CHARS = 4_000
ADVANTAGE_EPS = 1e-4  # TRL's: advantages / (std + 1e-4)


@dataclass(frozen=True, slots=True)
class RolloutRecord:
    """One scored rollout (see the module docstring for the field meanings)."""

    step: int
    rank: int
    group: int
    sample: int
    task_id: int
    reward: float
    advantage: float
    group_mean: float
    group_std: float
    passed: int
    total: int
    truncated: bool
    statuses: list[str] = field(default_factory=list)
    code: str | None = None
    language: str | None = None
    reason: str | None = None  # why no code was extracted (None when code was found)
    response_tokens: int = 0
    text: str | None = None  # the raw response, only when no code was extracted

    @property
    def key(self) -> tuple[int, int, int, int]:
        return (self.step, self.rank, self.group, self.sample)

    @property
    def all_passed(self) -> bool:
        return self.total > 0 and self.passed == self.total

    def to_json(self) -> str:
        return json.dumps({"v": RECORD_VERSION, **asdict(self)}, ensure_ascii=False)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RolloutRecord:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})


@dataclass(frozen=True, slots=True)
class GroupSummary:
    """One prompt group of a step: its task and how its rollouts did."""

    step: int
    rank: int
    group: int
    task_id: int
    size: int
    reward_mean: float
    reward_std: float
    passed_all: int  # rollouts that passed every sampled test
    all_fail: bool  # no rollout passed any test
    all_pass: bool  # every rollout passed all its tests
    truncated: int


# ---------------------------------------------------------------------------------------------
# Advantages and records of a scored batch


def group_advantages(rewards: Sequence[float]) -> tuple[float, float, list[float]]:
    """(mean, std, advantages) of one group, as TRL's GRPO computes them (sample std)."""
    n = len(rewards)
    if n == 0:
        return 0.0, 0.0, []
    mean = sum(rewards) / n
    std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / (n - 1)) if n > 1 else 0.0
    return mean, std, [(r - mean) / (std + ADVANTAGE_EPS) for r in rewards]


def build_step_records(step: int, rank: int, rollouts: Sequence[Any], scores: Sequence[Any],
                       group_size: int, *, response_tokens: Sequence[int] | None = None,
                       advantages: Sequence[float] | None = None,
                       max_groups: int = MAX_GROUPS_PER_STEP) -> list[RolloutRecord]:
    """Records of one scored batch: ``rollouts`` (``engine.train.reward.Rollout``: task_id,
    text, truncated) and ``scores`` (``RolloutReward``) side by side, groups of ``group_size``
    next to each other. ``advantages``: the trainer's own, one per rollout of the batch; the
    group formula otherwise. Only the first ``max_groups`` groups are kept."""
    if len(rollouts) != len(scores):
        raise ValueError(f"{len(rollouts)} rollouts but {len(scores)} scores")
    if advantages is not None and len(advantages) != len(scores):
        advantages = None  # not this batch's: use the formula
    out: list[RolloutRecord] = []
    for g, start in enumerate(range(0, len(scores), group_size)):
        if g >= max_groups:
            break
        group_scores = scores[start:start + group_size]
        mean, std, formula = group_advantages([float(s.reward) for s in group_scores])
        for k, s in enumerate(group_scores):
            i = start + k
            r = rollouts[i]
            code = s.code[:MAX_CODE_CHARS] if s.code is not None else None
            out.append(RolloutRecord(
                step=step, rank=rank, group=g, sample=k, task_id=int(r.task_id),
                reward=float(s.reward),
                advantage=float(advantages[i]) if advantages is not None else formula[k],
                group_mean=mean, group_std=std, passed=int(s.passed), total=int(s.total),
                truncated=bool(r.truncated), statuses=list(s.statuses), code=code,
                language=s.language, reason=s.reason,
                response_tokens=int(response_tokens[i]) if response_tokens is not None else 0,
                text=None if code is not None else (r.text or "")[:MAX_TEXT_CHARS]))
    return out


# ---------------------------------------------------------------------------------------------
# Files


def rollouts_dir(run_root: str | os.PathLike[str], stage: str = "rl") -> Path:
    """``<run>/rollouts/<stage>``: where a run's rollout files are."""
    return Path(run_root) / ROLLOUTS_DIR / stage


def step_file(directory: str | os.PathLike[str], step: int, rank: int) -> Path:
    return Path(directory) / f"{step:06d}.{rank}.jsonl"


def _parse_name(name: str) -> tuple[int, int] | None:
    """(step, rank) of a rollout file name, or None for anything else (temp files)."""
    parts = name.split(".")
    if len(parts) != 3 or parts[2] != "jsonl" or not (parts[0].isdigit() and parts[1].isdigit()):
        return None
    return int(parts[0]), int(parts[1])


class RolloutWriter:
    """Writes the rollout files of one process (rank) into ``directory``."""

    def __init__(self, directory: str | os.PathLike[str], rank: int = 0) -> None:
        self.dir = Path(directory)
        self.rank = rank

    def write_step(self, step: int, records: Iterable[RolloutRecord]) -> Path:
        """Write (or replace) this rank's file of ``step``, whole and atomically."""
        self.dir.mkdir(parents=True, exist_ok=True)
        target = step_file(self.dir, step, self.rank)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for rec in records:
                f.write(rec.to_json() + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        return target


def _folder(path: Path) -> Path:
    """A run dir, its ``rollouts/`` folder or ``rollouts/rl/`` itself -> the files' folder."""
    for sub in (path / ROLLOUTS_DIR / "rl", path / "rl"):
        if sub.is_dir():
            return sub
    return path


def _files(path: str | os.PathLike[str], step: int | None = None,
           rank: int | None = None) -> list[Path]:
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        return []
    found = []
    for f in _folder(p).iterdir():
        parsed = _parse_name(f.name)
        if parsed and (step is None or parsed[0] == step) and (rank is None or parsed[1] == rank):
            found.append((parsed, f))
    return [f for _, f in sorted(found)]


def read_rollouts(path: str | os.PathLike[str], *, step: int | None = None,
                  rank: int | None = None) -> list[RolloutRecord]:
    """Records of a rollout file or folder (optionally one step / rank), sorted by (step,
    rank, group, sample), one per key (the last one read). Unreadable lines are skipped."""
    by_key: dict[tuple[int, int, int, int], RolloutRecord] = {}
    for f in _files(path, step, rank):
        with open(f, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    rec = RolloutRecord.from_dict(json.loads(line))
                except (ValueError, TypeError):
                    continue  # a hand-edited or foreign line: not ours to guess at
                if (step is None or rec.step == step) and (rank is None or rec.rank == rank):
                    by_key[rec.key] = rec
    return [by_key[k] for k in sorted(by_key)]


def rollout_steps(path: str | os.PathLike[str]) -> list[int]:
    """The steps that have rollout files, ascending (file names only: nothing is read)."""
    steps = set()
    for f in _files(path):
        parsed = _parse_name(f.name)
        if parsed:
            steps.add(parsed[0])
    return sorted(steps)


def groups(records: Iterable[RolloutRecord]) -> list[GroupSummary]:
    """One summary per (step, rank, group) of ``records``, in that order."""
    by_group: dict[tuple[int, int, int], list[RolloutRecord]] = {}
    for r in records:
        by_group.setdefault((r.step, r.rank, r.group), []).append(r)
    out = []
    for (step, rank, g), recs in sorted(by_group.items()):
        mean, std, _ = group_advantages([r.reward for r in recs])
        out.append(GroupSummary(
            step=step, rank=rank, group=g, task_id=recs[0].task_id, size=len(recs),
            reward_mean=mean, reward_std=std, passed_all=sum(r.all_passed for r in recs),
            all_fail=all(r.passed == 0 for r in recs), all_pass=all(r.all_passed for r in recs),
            truncated=sum(r.truncated for r in recs)))
    return out


def group_records(records: Iterable[RolloutRecord], rank: int, group: int) -> list[RolloutRecord]:
    """The rollouts of one group, by sample."""
    return sorted((r for r in records if r.rank == rank and r.group == group),
                  key=lambda r: r.sample)


__all__ = ["MAX_GROUPS_PER_STEP", "GroupSummary", "RolloutRecord", "RolloutWriter",
           "build_step_records", "group_advantages", "group_records", "groups", "read_rollouts",
           "rollout_steps", "rollouts_dir", "step_file"]
