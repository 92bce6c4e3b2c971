"""Contract: the run directory's layout (engine/rundir.py): every name in it, spelled once,
as POSIX strings relative to the run's root (``f"{run_dir}/{STORE}"`` on a cluster), and
``RunDir`` for a run dir on this computer; ``ASSETS_DIR``, the bundled presets and seeds."""

from __future__ import annotations

from engine.paths import ASSETS_DIR
from engine.rundir import (
    CACHE,
    CHECKPOINTS,
    CONFIG,
    DATA,
    EVENTS,
    EXPORTS,
    LOGS,
    ROLLOUTS,
    STATE,
    STORE,
    TENSORBOARD,
    RunDir,
    event_file_name,
    log_file_name,
)

__all__ = ["ASSETS_DIR", "CACHE", "CHECKPOINTS", "CONFIG", "DATA", "EVENTS", "EXPORTS", "LOGS",
           "ROLLOUTS", "STATE", "STORE", "TENSORBOARD", "RunDir", "event_file_name",
           "log_file_name"]
