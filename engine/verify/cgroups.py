"""Best-effort cgroups for sandbox workers: a memory limit and a process-count limit for a
whole process tree, and a count of OOM kills to classify ``memory_limit`` reliably.

Rlimits are per process (``RLIMIT_AS``) or per uid across the whole machine
(``RLIMIT_NPROC``), so on their own they let a fork bomb of memory hogs use
``processes x memory``, and let one run's fork bomb starve every other run of uid 65534.
A cgroup per worker (one-shot runs get one each) bounds the tree instead.

Supported: cgroup v1 ``memory`` and ``pids`` controllers (as on the dev machines) and cgroup
v2 when our own cgroup delegates ``memory`` and ``pids`` to children. Needs write access to
our cgroup (root, or a delegated subtree). When neither works, ``Cgroup.create`` returns
None and the sandbox says so in ``Sandbox.describe()``; the rlimits and the uid drop still
apply. The v2 path has not been exercised on the dev machine (it runs cgroup v1).
A host process killed with SIGKILL leaves its empty ``synthsmith-*-<pid>-<n>`` cgroup
directories behind (harmless; ``rmdir`` removes them). Leaves out: CPU shares/quotas, I/O
limits, freezing.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
_counter = itertools.count()


def _own_paths() -> dict[str, str]:
    """Our cgroup path per v1 controller ("memory", "pids") or for v2 (key "")."""
    paths: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                paths[name] = path
    return paths


@dataclass
class Cgroup:
    """One cgroup (v1: one directory per controller) holding one worker's process tree."""

    version: str  # "v1" | "v2"
    memory_dir: Path | None
    pids_dir: Path | None

    # --- Creation

    @classmethod
    def create(cls, label: str = "sandbox") -> Cgroup | None:
        name = f"synthsmith-{label}-{os.getpid()}-{next(_counter)}"
        own = _own_paths()
        if (CGROUP_ROOT / "cgroup.controllers").exists():
            return cls._create_v2(name, own.get("", "/"))
        return cls._create_v1(name, own)

    @classmethod
    def _create_v1(cls, name: str, own: dict[str, str]) -> Cgroup | None:
        made: dict[str, Path] = {}
        for controller in ("memory", "pids"):
            parent = CGROUP_ROOT / controller / own.get(controller, "/").lstrip("/")
            if not (parent / "cgroup.procs").exists():
                continue
            try:
                (parent / name).mkdir()
                made[controller] = parent / name
            except OSError:
                continue
        if not made:
            return None
        return cls("v1", made.get("memory"), made.get("pids"))

    @classmethod
    def _create_v2(cls, name: str, own: str) -> Cgroup | None:
        parent = CGROUP_ROOT / own.lstrip("/")
        try:
            enabled = (parent / "cgroup.subtree_control").read_text().split()
            if not {"memory", "pids"} <= set(enabled):
                # Fails when our cgroup holds processes (the "no internal processes" rule):
                # then the caller's environment has to delegate a subtree to us.
                (parent / "cgroup.subtree_control").write_text("+memory +pids")
            path = parent / name
            path.mkdir()
        except OSError:
            return None
        return cls("v2", path, path)

    # --- Use

    @property
    def procs_files(self) -> list[Path]:
        """Files a pid is written to, to put that process (and its future children) in."""
        dirs = {d for d in (self.memory_dir, self.pids_dir) if d is not None}
        return sorted(d / "cgroup.procs" for d in dirs)

    @property
    def controllers(self) -> list[str]:
        return [n for n, d in (("memory", self.memory_dir), ("pids", self.pids_dir)) if d]

    def set_limits(self, memory_bytes: int, pids: int) -> None:
        if self.memory_dir is not None:
            name = "memory.limit_in_bytes" if self.version == "v1" else "memory.max"
            with contextlib.suppress(OSError):  # EBUSY if usage is above the new limit
                (self.memory_dir / name).write_text(str(memory_bytes))
        if self.pids_dir is not None:
            with contextlib.suppress(OSError):
                (self.pids_dir / "pids.max").write_text(str(pids))

    def oom_kills(self) -> int:
        """How many processes the kernel OOM-killed in this cgroup so far."""
        if self.memory_dir is None:
            return 0
        name = "memory.oom_control" if self.version == "v1" else "memory.events"
        with contextlib.suppress(OSError, ValueError):
            for line in (self.memory_dir / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def remove(self) -> None:
        """Delete the cgroup; waits briefly for exiting processes to leave it."""
        for d in {d for d in (self.memory_dir, self.pids_dir) if d is not None}:
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)
