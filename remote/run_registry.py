"""The runs launched from this computer: their local records, ``<data dir>/runs/<run-id>/``.

    registry = RunRegistry()                      # <data dir>/runs
    record = registry.load("r1-20261208-010203")  # LaunchError names the recent ones
    for record in registry.list(): print(record.run_id, record.status)

A ``RunRecord`` is the plan (``segments``: consecutive stages on one cluster, their job
handles and status), the resolved config that was launched, where each cluster keeps the run,
and the files handed over between clusters. It is saved atomically as ``record.json`` in a
folder private to the user (0700; the record holds paths and job ids, never secrets). The
event and log tails keep their caches beside it (``tail_cache``).

Data dir: ``$SYNTHSMITH_DATA_DIR``, else ``$XDG_DATA_HOME/synthsmith/desktop``, else
``~/.local/share/synthsmith/desktop``.

Left out: pruning old records (delete a run's folder by hand).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.contracts.config import PipelineConfig, parse_config
from remote.errors import LaunchError
from remote.profiles import check_run_id
from remote.safe_paths import private_dir, private_open

DATA_ENV = "SYNTHSMITH_DATA_DIR"


def data_dir() -> Path:
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(base) / "synthsmith" / "desktop"


# ---------------------------------------------------------------------------------------------
# The local record of a run


@dataclass
class Segment:
    cluster: str
    stages: list[str]
    status: str = "waiting"  # waiting, running, completed, failed, cancelled
    jobs: list[dict] = field(default_factory=list)  # JobHandle fields, one per job
    reason: str | None = None


@dataclass
class RunRecord:
    run_id: str
    config_path: str  # as given on the desktop
    config_text: str  # the resolved config that was launched
    created_at: float
    segments: list[Segment]
    clusters: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> run_dir, bundle
    handovers: list[dict] = field(default_factory=list)  # files moved between clusters, and how

    @property
    def status(self) -> str:
        states = [s.status for s in self.segments]
        for bad in ("failed", "cancelled"):
            if bad in states:
                return bad
        if all(s == "completed" for s in states):
            return "completed"
        return "running" if "running" in states or "completed" in states else "waiting"

    def current(self) -> Segment | None:
        return next((s for s in self.segments if s.status != "completed"), None)

    @functools.cached_property
    def config(self) -> PipelineConfig:
        """The launched config: the object the launch was given, or for a record read from
        disk its ``config_text`` parsed once (ConfigError if a newer engine wrote it)."""
        return parse_config(self.config_text, source=f"run {self.run_id}'s record")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        raw = json.loads(text)
        raw["segments"] = [Segment(**s) for s in raw["segments"]]
        return cls(**raw)


class RunRegistry:
    """Runs launched from this desktop: ``<dir>/<run-id>/record.json``."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.dir = Path(directory) if directory is not None else data_dir() / "runs"

    def folder(self, run_id: str) -> Path:
        """The run's local folder; a run id that is not a plain name (``..``, ``/``) is
        refused here too, whoever passes it (CLI, GUI, a stored record)."""
        return self.dir / check_run_id(run_id)

    def private_folder(self, run_id: str) -> Path:
        """The run's folder, created (with the registry's) mode 0700: private to the user."""
        private_dir(self.dir)
        return private_dir(self.folder(run_id))

    def tail_cache(self, run_id: str, cluster: str) -> Path:
        """Where the event and log tails of one cluster of a run keep what they received
        (the app and the CLI share it, so each sees what the other fetched)."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in cluster)
        return self.folder(run_id) / f"cache-{safe}"

    def save(self, record: RunRecord) -> None:
        folder = self.private_folder(record.run_id)
        tmp = folder / f".record.{os.getpid()}.tmp"
        with private_open(tmp, "wb") as fh:
            fh.write(record.to_json().encode("utf-8"))
        os.replace(tmp, folder / "record.json")

    def load(self, run_id: str) -> RunRecord:
        path = self.folder(run_id) / "record.json"
        if not path.exists():
            known = ", ".join(r.run_id for r in self.list()[-5:]) or "none yet"
            raise LaunchError(f"no run {run_id!r} launched from this computer (recent: "
                              f"{known}); `synthsmith runs` lists them")
        return RunRecord.from_json(path.read_text(encoding="utf-8"))

    def list(self) -> list[RunRecord]:
        if not self.dir.exists():
            return []
        out = []
        for p in sorted(self.dir.glob("*/record.json")):
            try:
                out.append(RunRecord.from_json(p.read_text(encoding="utf-8")))
            except (ValueError, TypeError, KeyError):
                continue  # a record from an incompatible version: not ours to guess at
        return sorted(out, key=lambda r: r.created_at)
