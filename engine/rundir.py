"""The run directory on a cluster (or this computer) and its ``state.json``.

Layout (ARCHITECTURE.md §4)::

    <run-dir>/
      config.yaml                  resolved config, written once at launch
      state.json                   per-stage status, replaced atomically (tmp + fsync + rename)
      events/<stage>.<rank>.jsonl  one file per writer process
      logs/<stage>.<rank>.log
      data/store.sqlite            dataset store
      data/cache/                  LLM response cache
      exports/                     SFT / RL sets
      checkpoints/<stage>/

Use: ``RunDir(path).create()``, then ``read_state()`` / ``update_stage(...)``. ``lock()`` keeps
a second engine process off the same run dir (``flock``; on file systems where flock is not
honoured across nodes, the scheduler must not start two launches of one run).

A corrupted ``state.json`` is never overwritten: reading it raises ``RunDirError`` that names
the file and the way out, and the file stays as it was. Leaves out: garbage collection of old
checkpoints (a stage's own business).
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

STATE_VERSION = 1

StageStatus = Literal["pending", "running", "completed", "failed", "interrupted"]


class RunDirError(Exception):
    """A problem with a run directory that the user must act on; the message says how."""


class StageState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: StageStatus = "pending"
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    pid: int | None = None
    host: str | None = None
    reason: str | None = None
    summary: dict[str, Any] | None = None


class RunState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = STATE_VERSION
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
    stages: dict[str, StageState] = Field(default_factory=dict)

    def stage(self, name: str) -> StageState:
        return self.stages.get(name, StageState())


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so a reader sees the old or the new file, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a failed write leaves no hidden half-file behind
        raise
    # The rename is durable only once the directory entry is on disk.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# The run directory's layout, relative to its root, as POSIX strings: the one place each name
# is spelled. ``RunDir`` builds local paths from them; the desktop joins them onto a
# cluster's run dir (``f"{run_dir}/{STORE}"``) for remote reads, copies and fetches.
CONFIG = "config.yaml"
STATE = "state.json"
EVENTS = "events"  # <stage>.<rank>.jsonl (event_file_name)
LOGS = "logs"  # <stage>.<rank>.log
DATA = "data"
STORE = "data/store.sqlite"
CACHE = "data/cache"
EXPORTS = "exports"
CHECKPOINTS = "checkpoints"
ROLLOUTS = "rollouts"
TENSORBOARD = "tensorboard"


def event_file_name(stage: str, rank: int) -> str:
    return f"{stage}.{rank}.jsonl"


def log_file_name(stage: str, rank: int) -> str:
    return f"{stage}.{rank}.log"


class RunDir:
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.config_path = self.root / CONFIG
        self.state_path = self.root / STATE
        self.events_dir = self.root / EVENTS
        self.logs_dir = self.root / LOGS
        self.data_dir = self.root / DATA
        self.store_path = self.root / STORE
        self.cache_dir = self.root / CACHE
        self.exports_dir = self.root / EXPORTS
        self.checkpoints_dir = self.root / CHECKPOINTS
        self._lock_path = self.root / ".lock"

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    def exists(self) -> bool:
        return self.state_path.exists() or self.config_path.exists()

    def create(self) -> None:
        for d in (self.events_dir, self.logs_dir, self.cache_dir, self.exports_dir,
                  self.checkpoints_dir):
            d.mkdir(parents=True, exist_ok=True)

    def event_file(self, stage: str, rank: int) -> Path:
        return self.events_dir / event_file_name(stage, rank)

    def log_file(self, stage: str, rank: int) -> Path:
        return self.logs_dir / log_file_name(stage, rank)

    def checkpoint_dir(self, stage: str) -> Path:
        return self.checkpoints_dir / stage

    # --- config.yaml: written once ---------------------------------------------------------

    def write_config(self, text: str, *, allow_change: bool = False) -> None:
        """Write the resolved config at first launch; on a rerun it must be the same.

        A resumed run with a different config would mix two experiments in one store, so a
        change is refused unless ``allow_change`` (then the old file is kept beside it).
        """
        if self.config_path.exists():
            old = self.config_path.read_text(encoding="utf-8")
            if old == text:
                return
            if _same_config(old, text):
                # Launched by an older engine: the same experiment, written before fields
                # with defaults were added. Kept in today's form so the next check is exact.
                atomic_write_text(self.config_path, text)
                return
            if not allow_change:
                diff = "".join(difflib.unified_diff(
                    old.splitlines(keepends=True), text.splitlines(keepends=True),
                    "config.yaml (launched)", "config (now)", n=0))
                raise RunDirError(
                    f"{self.config_path} was launched with a different config:\n{diff}"
                    "Start a new run dir, or pass --update-config to resume with the new "
                    "config (the old one is kept as config.prev-<time>.yaml).")
            keep = self.root / f"config.prev-{time.strftime('%Y%m%d-%H%M%S')}.yaml"
            os.replace(self.config_path, keep)
        atomic_write_text(self.config_path, text)

    # --- state.json ------------------------------------------------------------------------

    def read_state(self) -> RunState:
        if not self.state_path.exists():
            return RunState()
        raw = self.state_path.read_text(encoding="utf-8")
        hint = (f"The file is left as it was. Move it aside (mv {self.state_path} "
                f"{self.state_path}.bad) and rerun: finished work is kept in the store and "
                "caches, so stages redo only what is missing.")
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as e:
            raise RunDirError(f"{self.state_path} is corrupted (not JSON: {e}). {hint}") from None
        if isinstance(data, dict) and data.get("version", STATE_VERSION) > STATE_VERSION:
            raise RunDirError(f"{self.state_path} was written by a newer engine "
                              f"(version {data['version']}); upgrade the engine.")
        try:
            return RunState.model_validate(data)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "<top>"
            raise RunDirError(f"{self.state_path} is corrupted ({where}: {first['msg']}). "
                              f"{hint}") from None

    def write_state(self, state: RunState) -> None:
        state.updated_at = time.time()
        atomic_write_text(self.state_path, state.model_dump_json(indent=2) + "\n")

    def update_stage(self, stage: str, **changes: Any) -> StageState:
        """Read-modify-write one stage's entry (the caller holds ``lock()``)."""
        state = self.read_state()
        entry = state.stage(stage).model_copy(update=changes)
        StageState.model_validate(entry.model_dump())  # reject a bad status early
        state.stages[stage] = entry
        self.write_state(state)
        return entry

    # --- one engine process per run dir ----------------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
                raise RunDirError(
                    f"another engine process ({holder}) is running {self.root}; wait for it "
                    "or cancel it before starting this run again.") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
            yield
        finally:
            os.close(fd)  # closing releases the flock


def _same_config(old: str, new: str) -> bool:
    """Whether ``old`` (a config.yaml an earlier engine wrote) says what ``new`` says once read
    by today's schema: fields added since then take their defaults, so only a real change of
    a value counts. False when the old text no longer reads."""
    from engine.schema import ConfigError, dump_config, parse_config

    try:
        return dump_config(parse_config(old)) == new
    except ConfigError:
        return False
