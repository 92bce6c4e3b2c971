"""Contract: the RL rollout records the rl stage writes and the desktop browses
(engine/rollouts.py)."""

from __future__ import annotations

from engine.rollouts import GroupSummary, RolloutRecord

__all__ = ["GroupSummary", "RolloutRecord"]
