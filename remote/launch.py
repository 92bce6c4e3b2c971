"""Launch a pipeline onto its clusters, follow it, move artifacts between clusters.

The desktop (the app, or the headless ``synthsmith`` CLI) keeps a local record of each run it
launched; everything here is Qt-free::

    launcher = Launcher(ProfileStore(), RunRegistry())
    print(launcher.preview("my.yaml"))                 # the exact commands / sbatch scripts
    record = launcher.launch("my.yaml", stages=["seeds", "features"])
    record = launcher.refresh(record.run_id)           # job states; starts the next segment
    launcher.cancel(record.run_id)

Plan: the selected stages (enabled ones in pipeline order, or ``stages``) are cut into
*segments*: runs of consecutive stages with the same placement (``<stage>.placement``, or one
``cluster`` for all). Each cluster a run touches gets the engine bundle (``remote.bundle``,
uploaded only when changed), a run dir ``<workdir>/runs/<run-id>/`` and the config.

- ``direct`` clusters run a whole segment as ONE detached engine process
  (``python -m engine run --stages a,b,c``): it survives the SSH session and the laptop.
- ``slurm`` clusters get one job per stage, submitted together and chained on the cluster
  with ``--dependency=afterok``, so they too go on without the desktop. A shardable CPU stage
  whose ``resources.nodes`` is N > 1 becomes a job array of N shards.

A later segment on another cluster starts when ``refresh`` sees the earlier one complete: the
artifacts it needs (``state.json``, ``data/store.sqlite``, ``exports/``, ``checkpoints/``) are
relayed through the desktop (downloaded in resumable chunks to the run's local folder, checked
against the source's sha256, then uploaded atomically), and its jobs are launched. So a
cross-cluster hand-over waits for a desktop that is awake; each segment itself does not.

Local state: ``<data dir>/runs/<run-id>/record.json`` (the plan, job handles, statuses) and the
event cache ``events/`` next to it (``remote.stream``). Data dir: ``$SYNTHSMITH_DATA_DIR``,
else ``$XDG_DATA_HOME/synthsmith/desktop``, else ``~/.local/share/synthsmith/desktop``.

Left out: copying artifacts directly between clusters (they are always relayed through the
desktop), and launching GPU training stages (the engine does not implement them yet; the
engine refuses them, and so does ``plan``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.schema import STAGE_ORDER, PipelineConfig, dump_config, load_config
from remote.errors import RemoteError
from remote.profiles import (
    ClusterProfile,
    ProfileError,
    ProfileStore,
    check_run_id,
    runner_for,
)
from remote.runner import CommandRunner, run_framed
from remote.safe_paths import (
    OutputTooLarge,
    UnsafeRemotePath,
    private_dir,
    private_open,
    run_capped,
    safe_join,
)

DATA_ENV = "SYNTHSMITH_DATA_DIR"
REPO_ROOT = Path(__file__).resolve().parents[1]
RELAY_CHUNK = 8 << 20
ARTIFACTS = ("state.json", "data/store.sqlite", "exports", "checkpoints")
LIST_MAX_BYTES = 16 << 20  # a `find` listing of a run's artifacts, at most
LIST_TIMEOUT_S = 120.0
HASH_TIMEOUT_S = 1800.0  # sha256sum of one (large) artifact
FETCH_TIMEOUT_S = 6 * 3600.0  # one `fetch`, all files together
STATE_MAX_BYTES = 8 << 20  # state.json read by `status`, at most
STATE_TIMEOUT_S = 60.0


class LaunchError(RuntimeError):
    """A launch that cannot go ahead, with what to change."""


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


# ---------------------------------------------------------------------------------------------
# Planning


def run_id_for(config: PipelineConfig, now: _dt.datetime | None = None) -> str:
    stamp = (now or _dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", config.run.name)
    slug = re.sub(r"\.{2,}", ".", slug).strip("-._") or "run"  # never a '..' in an id
    return f"{slug[:40]}-{stamp}"


def selected_stages(config: PipelineConfig, stages: Sequence[str] | None) -> list[str]:
    from engine.stages import IMPLEMENTED

    if stages:
        unknown = [s for s in stages if s not in STAGE_ORDER]
        if unknown:
            raise LaunchError(f"unknown stage(s) {', '.join(unknown)}; stages are "
                              f"{', '.join(STAGE_ORDER)}")
        chosen = [s for s in STAGE_ORDER if s in stages]
    else:
        chosen = [s for s in STAGE_ORDER if getattr(config, s).enabled]
    missing = [s for s in chosen if s not in IMPLEMENTED]
    if missing:
        raise LaunchError(f"stage(s) {', '.join(missing)} are not implemented by this engine "
                          f"version; pick stages with --stages "
                          f"{','.join(s for s in chosen if s in IMPLEMENTED)}")
    if not chosen:
        raise LaunchError("no stage selected: enable one in the config or pass --stages")
    return chosen


def plan_segments(config: PipelineConfig, stages: Sequence[str], cluster: str | None,
                  profiles: ProfileStore) -> list[Segment]:
    known = set(profiles.names())
    segments: list[Segment] = []
    for stage in stages:
        where = cluster or getattr(config, stage).placement
        if where not in known:
            raise LaunchError(f"{stage}.placement is {where!r}, which is no cluster profile "
                              f"(known: {', '.join(sorted(known))}); add it with `synthsmith "
                              "cluster add` or change the placement")
        if segments and segments[-1].cluster == where:
            segments[-1].stages.append(stage)
        else:
            segments.append(Segment(where, [stage]))
    return segments


# ---------------------------------------------------------------------------------------------
# The launcher


RunnerFactory = Callable[[ClusterProfile], CommandRunner]


class Launcher:
    def __init__(self, profiles: ProfileStore, registry: RunRegistry, *,
                 runner_factory: RunnerFactory | None = None,
                 repo_root: Path = REPO_ROOT) -> None:
        self.profiles, self.registry, self.repo_root = profiles, registry, repo_root
        self._factory = runner_factory or runner_for
        self._runners: dict[str, CommandRunner] = {}

    def close(self) -> None:
        for r in self._runners.values():
            r.close()
        self._runners.clear()

    def runner(self, cluster: str) -> CommandRunner:
        if cluster not in self._runners:
            self._runners[cluster] = self._factory(self.profiles.get(cluster))
        return self._runners[cluster]

    def scheduler(self, cluster: str) -> Any:
        from remote.schedulers import scheduler_for

        profile = self.profiles.get(cluster)
        options = {"env": dict(profile.env)} if profile.scheduler == "slurm" else {}
        return scheduler_for(profile.scheduler, self.runner(cluster), **options)

    # -- planning and preview

    def _load(self, config_path: str | os.PathLike[str],
              overrides: Sequence[str]) -> PipelineConfig:
        return load_config(config_path, overrides)

    def plan(self, config_path: str | os.PathLike[str], *, stages: Sequence[str] | None = None,
             cluster: str | None = None, overrides: Sequence[str] = ()) -> list[Segment]:
        config = self._load(config_path, overrides)
        return plan_segments(config, selected_stages(config, stages), cluster, self.profiles)

    def preview(self, config_path: str | os.PathLike[str], *,
                stages: Sequence[str] | None = None, cluster: str | None = None,
                overrides: Sequence[str] = (), run_id: str = "<run-id>") -> str:
        """What a launch would run, cluster by cluster (nothing is sent anywhere)."""
        config = self._load(config_path, overrides)
        out = []
        for seg in plan_segments(config, selected_stages(config, stages), cluster,
                                 self.profiles):
            profile = self.profiles.get(seg.cluster)
            paths = self._paths(profile, run_id, "<bundle-hash>")
            out.append(f"# {seg.cluster} ({profile.scheduler}): {', '.join(seg.stages)}")
            sched = _preview_scheduler(profile)
            for job in self._jobs(config, profile, seg, paths):
                out.append(sched.preview(job))
        return "\n\n".join(out) + "\n"

    # -- launch

    def launch(self, config_path: str | os.PathLike[str], *,
               stages: Sequence[str] | None = None, cluster: str | None = None,
               overrides: Sequence[str] = (), run_id: str | None = None,
               preflight: bool = True) -> RunRecord:
        """Start a run. ``preflight`` (the default): first check, on every cluster it uses,
        what each of its stages needs as configured (``preflight``), and refuse with the
        fixes before any run folder is made or job started."""
        if run_id is not None:
            try:
                check_run_id(run_id, field="--run-id")
            except ProfileError as exc:
                raise LaunchError(str(exc)) from None
        config = self._load(config_path, overrides)
        segments = plan_segments(config, selected_stages(config, stages), cluster, self.profiles)
        record = RunRecord(run_id=run_id or run_id_for(config), config_path=str(config_path),
                           config_text=dump_config(config), created_at=_now(),
                           segments=segments)
        if (self.registry.folder(record.run_id) / "record.json").exists():
            raise LaunchError(f"a run {record.run_id!r} exists already; `synthsmith resume "
                              f"{record.run_id}` continues it")
        clusters = list(dict.fromkeys(s.cluster for s in segments))
        bundles = {name: self._bundle(name) for name in clusters}  # every cluster, before any job
        if preflight:
            problems = self.preflight(config, segments, bundles)
            if problems:
                raise LaunchError(
                    "not launched: the preflight found what would stop these stages (nothing "
                    "was started):\n" + "\n".join(f"  - {p}" for p in problems)
                    + "\nfix them, or launch anyway with --no-preflight")
        for name in clusters:
            self._prepare(record, name, bundles[name])
        self.registry.save(record)
        self._start(record, 0)
        return record

    def preflight(self, config: PipelineConfig, segments: Sequence[Segment],
                  bundles: Mapping[str, Any] | None = None) -> list[str]:
        """What would stop the segments' stages on their clusters, as configured: packages,
        tools, GPUs on a direct-scheduler host, free disk (remote/doctor.py: the engine's
        doctor run there in the stages' own Python). [] when nothing."""
        from remote.doctor import remote_doctor, stage_problems

        out: list[str] = []
        for name in dict.fromkeys(s.cluster for s in segments):
            profile = self.profiles.get(name)
            bundle = (bundles or {}).get(name) or self._bundle(name)
            facts = remote_doctor(self.runner(name), profile, bundle.bundle_dir)
            stages = [st for seg in segments if seg.cluster == name for st in seg.stages]
            found = stage_problems(facts, config, stages, name,
                                   gpus_here=profile.scheduler == "direct")
            out += [p for problems in found.values() for p in problems]
        return out

    def _paths(self, profile: ClusterProfile, run_id: str, digest: str,
               home: str | None = None) -> dict[str, str]:
        work = profile.workdir.rstrip("/")
        if home and (work == "~" or work.startswith("~/")):  # absolute: quoted paths never expand ~
            work = home.rstrip("/") + work[1:]
        return {"run_dir": f"{work}/runs/{run_id}", "bundle": f"{work}/engine/{digest}",
                "config": f"{work}/runs/{run_id}/launch/config.yaml"}

    def _bundle(self, cluster: str) -> Any:
        """The engine bundle on one cluster, uploaded if it changed (remote/bundle.py)."""
        from remote.bundle import sync_bundle

        return sync_bundle(self.runner(cluster), self.profiles.get(cluster).workdir,
                           self.repo_root)

    def _prepare(self, record: RunRecord, cluster: str, report: Any = None) -> None:
        """Engine bundle, run dir and config on one cluster (idempotent)."""
        profile = self.profiles.get(cluster)
        runner = self.runner(cluster)
        report = report or self._bundle(cluster)
        paths = self._paths(profile, record.run_id, report.digest, runner.home())
        paths["bundle"] = report.bundle_dir
        runner.makedirs(paths["run_dir"] + "/launch")
        runner.put_bytes(record.config_text.encode(), paths["config"])
        record.clusters[cluster] = paths

    def _jobs(self, config: PipelineConfig, profile: ClusterProfile, seg: Segment,
              paths: dict[str, str]) -> list[Any]:
        from engine.stages import load_stage
        from remote.schedulers import SlurmOptions, StageJob

        default_limit = type(config.seeds.resources)().time_limit

        def slurm_for(res: Any) -> Any:
            # The profile's default time applies to stages that left theirs at the default.
            time_limit = profile.slurm.default_time if res.time_limit == default_limit else None
            try:
                return SlurmOptions(partition=profile.slurm.partition,
                                    account=profile.slurm.account, qos=profile.slurm.qos,
                                    time_limit=time_limit, extra=tuple(profile.slurm.extra))
            except ValueError as exc:  # a hand-edited profile the form never saw
                raise LaunchError(f"cluster {profile.name!r}: {exc}; fix it with `synthsmith cluster "
                                  "add` (or in Clusters)") from None

        common = {"run_dir": paths["run_dir"], "config_path": paths["config"],
                  "engine_dir": paths["bundle"], "python": profile.python,
                  "prefix": profile.activate, "env": dict(profile.env)}
        if profile.scheduler == "direct":  # one process for the whole segment
            res = getattr(config, seg.stages[0]).resources
            return [StageJob(stage=",".join(seg.stages), resources=res, slurm=slurm_for(res),
                             **common)]
        jobs = []
        for stage in seg.stages:
            res = getattr(config, stage).resources
            shardable = getattr(load_stage(stage), "SHARDABLE", False)
            shards = res.nodes if shardable and res.gpus_per_node == 0 else 1
            if shards > 1:  # an array task per shard, one node each
                res = res.model_copy(update={"nodes": 1})
            jobs.append(StageJob(stage=stage, resources=res, shards=shards,
                                 slurm=slurm_for(res), **common))
        return jobs

    def _start(self, record: RunRecord, k: int) -> None:
        seg = record.segments[k]
        profile = self.profiles.get(seg.cluster)
        config = load_config_text(record.config_text)
        sched = self.scheduler(seg.cluster)
        seg.jobs, previous = [], None
        for job in self._jobs(config, profile, seg, record.clusters[seg.cluster]):
            if previous is not None:  # chain on the cluster itself: no desktop needed
                job = _after(job, previous)
            handle = sched.launch(job)
            seg.jobs.append(asdict(handle))
            previous = handle
        seg.status, seg.reason = "running", None
        self.registry.save(record)

    # -- following

    def refresh(self, run_id: str) -> RunRecord:
        """Poll the current segment's jobs; hand over to the next segment when it is done."""
        from remote.schedulers import JobHandle

        record = self.registry.load(run_id)
        while True:
            k = next((i for i, s in enumerate(record.segments) if s.status != "completed"),
                     None)
            if k is None:
                break
            seg = record.segments[k]
            if seg.status == "waiting":
                self._hand_over(record, k)
                self._start(record, k)
            if seg.status != "running":
                break
            sched = self.scheduler(seg.cluster)
            states = [sched.status(JobHandle(**h)) for h in seg.jobs]
            names = [s.state for s in states]
            if all(n == "completed" for n in names):
                seg.status = "completed"
                self.registry.save(record)
                continue
            bad = next((s for s in states if s.state in ("failed", "cancelled")), None)
            if bad is not None and not any(n in ("running", "pending") for n in names):
                seg.status = bad.state
                seg.reason = bad.reason or f"exit code {bad.exit_code}"
            else:  # say what the jobs wait for (Slurm's reason: Resources, Priority, ...)
                waiting = [f"{h['job_id']} {st.state}" + (f" ({st.reason})" if st.reason else "")
                           for h, st in zip(seg.jobs, states, strict=True)
                           if st.state in ("pending", "unknown")]
                seg.reason = "; ".join(waiting) or None
            self.registry.save(record)
            break
        self.registry.save(record)
        return record

    def _hand_over(self, record: RunRecord, k: int) -> None:
        """Move the artifacts of segment k-1's cluster to segment k's cluster: copied
        directly when the destination can reach the source by SSH on its own, otherwise
        relayed through the desktop. Each file's way is logged in the record."""
        if k == 0:
            return
        src_name, dst_name = record.segments[k - 1].cluster, record.segments[k].cluster
        if src_name == dst_name:
            return
        src, dst = self.runner(src_name), self.runner(dst_name)
        src_profile, dst_profile = self.profiles.get(src_name), self.profiles.get(dst_name)
        src_dir = record.clusters[src_name]["run_dir"]
        dst_dir = record.clusters[dst_name]["run_dir"]
        relay = private_dir(self.registry.private_folder(record.run_id) / "relay")
        moved = []
        listing = _artifact_files(src, src_dir)
        for rel in listing.files:
            local = safe_join(relay, rel)  # checked again: symlinks under relay/ count
            a, b = f"{src_dir}/{rel}", f"{dst_dir}/{rel}"
            how = "direct" if direct_copy(src, src_profile, a, dst, dst_profile, b) else "relay"
            if how == "relay":
                relay_file(src, a, dst, b, local)
            moved.append({"file": rel, "from": src_name, "to": dst_name, "how": how})
        record.handovers += moved
        self.registry.save(record)
        if listing.refused:
            raise LaunchError(f"{src_name} listed artifact paths that were refused, so the "
                              f"hand-over to {dst_name} is incomplete: {listing.describe()}")

    def cancel(self, run_id: str) -> RunRecord:
        from remote.schedulers import JobHandle

        record = self.registry.load(run_id)
        for seg in record.segments:
            if seg.status == "running":
                sched = self.scheduler(seg.cluster)
                for h in seg.jobs:
                    sched.cancel(JobHandle(**h))
                seg.status, seg.reason = "cancelled", "cancelled from the desktop"
            elif seg.status == "waiting":
                seg.status, seg.reason = "cancelled", "cancelled before it started"
        self.registry.save(record)
        return record

    def resume(self, run_id: str) -> RunRecord:
        """Launch the first unfinished segment again; the engine skips finished work."""
        record = self.refresh(run_id)
        seg = record.current()
        if seg is None:
            return record
        if seg.status in ("failed", "cancelled"):
            for later in record.segments:
                if later.status == "cancelled" and later is not seg:
                    later.status = "waiting"
            k = record.segments.index(seg)
            self._prepare(record, seg.cluster)  # a newer engine bundle, if the app changed
            self._hand_over(record, k)
            self._start(record, k)
        return record

    def remote_state(self, run_id: str) -> dict[str, Any]:
        """state.json of the cluster running (or last running) the run; {} when there is
        none yet. The file is the cluster's, so untrusted: at most ``STATE_MAX_BYTES`` are
        read, within ``STATE_TIMEOUT_S``; one that is larger, unreadable, not JSON or not a
        JSON object gives ``{"error": "<what and where, in words>"}`` instead (never an
        exception), so the rest of ``status`` still works."""
        record = self.registry.load(run_id)
        seg = record.current() or record.segments[-1]
        path = record.clusters[seg.cluster]["run_dir"] + "/state.json"
        where = f"state.json of run {run_id} on {seg.cluster}"
        try:
            data = _read_capped(self.runner(seg.cluster), path, STATE_MAX_BYTES,
                                STATE_TIMEOUT_S)
        except RemoteError as exc:
            return {"error": f"{where} could not be read: {exc}"}
        if data is None:
            return {}
        if len(data) > STATE_MAX_BYTES:
            return {"error": f"{where} is larger than {STATE_MAX_BYTES >> 20} MiB, so it was not "
                             "read (a run's state is a few KB: the file is damaged or not ours)"}
        try:
            state = json.loads(data.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            return {"error": f"{where} is not valid JSON ({str(exc)[:120]}); the run may be "
                             "writing it right now: try again, or look at the file there"}
        if not isinstance(state, dict):
            return {"error": f"{where} holds a JSON {type(state).__name__}, not an object"}
        return state

    def fetch(self, run_id: str, what: str, dest: str | os.PathLike[str], *,
              timeout_s: float = FETCH_TIMEOUT_S) -> list[Path]:
        """Copy ``exports``, ``checkpoints`` or ``store`` of a run to ``dest``.

        The cluster's listing is untrusted: a path that is absolute, has ``..``, control
        characters, or is outside what was asked for is refused (``LaunchError`` naming it,
        after the good files are fetched); nothing is written outside ``dest``. Folders it
        creates are 0700, files 0600. The listing has a byte and a time cap, the whole fetch
        ``timeout_s``."""
        targets = {"exports": "exports", "checkpoints": "checkpoints",
                   "store": "data/store.sqlite"}
        if what not in targets:
            raise LaunchError(f"--what {what!r}: use one of {', '.join(targets)}")
        record = self.registry.load(run_id)
        seg = next((s for s in reversed(record.segments) if s.status != "waiting"),
                   record.segments[0])
        runner = self.runner(seg.cluster)
        run_dir = record.clusters[seg.cluster]["run_dir"]
        deadline = _now() + timeout_s
        listing = _artifact_files(runner, run_dir, (targets[what],))
        dest = Path(dest)
        got = []
        for rel in listing.files:
            try:
                local = safe_join(dest, rel)  # symlinks already under dest count too
            except UnsafeRemotePath as exc:
                listing.refused.append((rel, exc.why))
                continue
            relay_download(runner, f"{run_dir}/{rel}", local, deadline=deadline)
            got.append(local)
        if listing.refused:
            raise LaunchError(f"{seg.cluster} listed paths that were refused and not fetched "
                              f"(fetched {len(got)} other file(s) into {dest}): "
                              f"{listing.describe()}")
        if not got:
            raise LaunchError(f"run {run_id} has no {what} yet on {seg.cluster}")
        return got


def _preview_scheduler(profile: ClusterProfile) -> Any:
    """A scheduler for previews only: its runner refuses to send anything."""
    from remote.schedulers import scheduler_for

    options = {"env": dict(profile.env)} if profile.scheduler == "slurm" else {}
    return scheduler_for(profile.scheduler, _NoRunner(profile.name), **options)


class _NoRunner:
    def __init__(self, name: str) -> None:
        self.name = name

    def home(self) -> str:
        return "~"  # previews show ~/ paths as the profile has them

    def __getattr__(self, attr: str) -> Any:
        raise LaunchError("a preview sends nothing to the cluster")


def _after(job: Any, previous: Any) -> Any:
    from dataclasses import replace

    extra = (*job.slurm.extra, f"--dependency=afterok:{previous.job_id}",
             "--kill-on-invalid-dep=yes")
    return replace(job, slurm=replace(job.slurm, extra=extra))


def load_config_text(text: str) -> PipelineConfig:
    from engine.schema import parse_config

    return parse_config(text)


def _now() -> float:
    import time

    return time.time()


# ---------------------------------------------------------------------------------------------
# Relay of files through the desktop


@dataclass
class Listing:
    """The artifact files a cluster listed: ``files`` (relative, checked) and ``refused``
    ((path, why) for each entry that was not a plain path under what we asked for)."""

    files: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)

    def describe(self, limit: int = 10) -> str:
        shown = "; ".join(f"{p!r} ({why})" for p, why in self.refused[:limit])
        more = len(self.refused) - limit
        return shown + (f"; and {more} more" if more > 0 else "")


_LIST_MARK = "@@synthsmith-list"


def _artifact_files(runner: CommandRunner, run_dir: str,
                    which: Sequence[str] = ARTIFACTS) -> Listing:
    """Relative paths of the artifact files under a run dir (folders walked), in one remote
    ``find`` (NUL-separated; capped in bytes and time); missing ones are skipped. What the
    cluster answers is untrusted: each entry must be a plain relative path (``check_relative``)
    equal to or under one of ``which``; others are refused and listed."""
    from remote.safe_paths import check_relative

    paths = [f"{run_dir}/{rel}" for rel in which]
    # Framed: whatever a login banner prints before the mark is not part of the answer.
    script = f'printf "%s\\0" {_LIST_MARK}; exec find "$@" -type f -print0'
    try:  # exits 1 for missing paths: fine
        result = run_capped(runner, ["sh", "-c", script, "sh", *paths],
                            max_bytes=LIST_MAX_BYTES, timeout=LIST_TIMEOUT_S,
                            what=f"listing the artifacts of {run_dir}")
    except OutputTooLarge as exc:
        raise LaunchError(f"{exc}. Nothing was fetched") from None
    prefix = run_dir.rstrip("/") + "/"
    listing = Listing()
    head, mark, body = result.stdout.partition(_LIST_MARK + "\0")
    if not mark:
        raise LaunchError(f"{runner.name}: listing the artifacts of {run_dir} gave no "
                          f"answer (exit {result.returncode}: "
                          f"{(result.stderr or head).strip()[-300:]!r})")
    for entry in body.split("\0"):
        if not entry or entry.endswith((".tmp", ".part")):
            continue
        if not entry.startswith(prefix):
            listing.refused.append((entry, f"not under {prefix}"))
            continue
        rel = entry[len(prefix):]
        try:
            check_relative(rel)
        except UnsafeRemotePath as exc:
            listing.refused.append((rel, exc.why))
            continue
        if not any(rel == w or rel.startswith(w.rstrip("/") + "/") for w in which):
            listing.refused.append((rel, f"not one of {', '.join(which)}"))
            continue
        listing.files.append(rel)
    listing.files = sorted(set(listing.files))
    return listing


COPY_SSH_CONFIG_ENV = "SYNTHSMITH_SSH_CONFIG"  # in a profile's env: its ssh_config for copies


def direct_copy(src: CommandRunner, src_profile: ClusterProfile, src_path: str,
                dst: CommandRunner, dst_profile: ClusterProfile, dst_path: str) -> bool:
    """Let the destination pull the file from the source itself (``scp`` in batch mode: no
    prompt, no password, a known host key required), then check its sha256. False when it
    cannot (no route, no key there, the source is this computer): the caller relays."""
    if src_profile.is_local or dst_profile.is_local:
        return False
    want = _remote_sha256(src, src_path)
    if want is None:
        return False
    where = f"{src_profile.user}@{src_profile.host}" if src_profile.user else src_profile.host
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", "ConnectTimeout=10"]
    if dst_profile.env.get(COPY_SSH_CONFIG_ENV):
        argv += ["-F", dst_profile.env[COPY_SSH_CONFIG_ENV]]
    if src_profile.port:
        argv += ["-p", str(src_profile.port)]
    part = f"{dst_path}.part"
    dst.makedirs(dst_path.rsplit("/", 1)[0])
    from remote.quoting import command_line, quote

    # `ssh host cat -- PATH` on the destination: the source's shell parses the remote
    # command, so PATH is quoted once more for it (one quoting point, applied twice).
    remote_cmd = command_line(["cat", "--", src_path])
    result = dst.run_shell(f"{command_line([*argv, where, remote_cmd])} > {quote(part)}",
                           timeout=3600)
    if not result.ok or _remote_sha256(dst, part) != want:
        dst.run(["rm", "-f", "--", part])
        return False
    return dst.run(["mv", "-f", "--", part, dst_path]).ok


def relay_download(src: CommandRunner, path: str, local: Path, *,
                   deadline: float | None = None) -> None:
    """Download in chunks to ``local`` (resumable: a ``.part`` file grows), then check the
    size and the source's sha256. Folders it creates are 0700, the file 0600; past
    ``deadline`` (a ``time.time()``) it stops with a ``LaunchError``."""
    size = src.size(path)
    if size is None:
        raise FileNotFoundError(f"{src.name}: {path}")
    if not local.parent.exists():
        private_dir(local.parent, fix_existing=False)  # the folders it creates: 0700
    part = local.with_name(local.name + ".part")
    if part.is_symlink():
        part.unlink()
    have = part.stat().st_size if part.exists() else 0
    if have > size:  # the source changed under us: start over
        part.unlink()
        have = 0
    with private_open(part, "ab") as f:
        while have < size:
            if deadline is not None and _now() > deadline:
                raise LaunchError(f"{path} from {src.name}: the fetch ran past its time limit "
                                  f"({have} of {size} bytes; run it again to resume)")
            chunk = src.read_bytes(path, have, min(RELAY_CHUNK, size - have))
            if not chunk:
                break
            f.write(chunk)
            have += len(chunk)
        f.flush()
        os.fsync(f.fileno())
    if have != size:
        raise LaunchError(f"{path} from {src.name} ended early ({have} of {size} bytes); "
                          "run the command again to resume")
    want = _remote_sha256(src, path)
    got = _local_sha256(part)
    if want is not None and got != want:
        part.unlink()
        raise LaunchError(f"{path} from {src.name} arrived corrupted (sha256 {got[:12]} != "
                          f"{want[:12]}); run the command again")
    os.replace(part, local)


def relay_file(src: CommandRunner, src_path: str, dst: CommandRunner, dst_path: str,
               local: Path) -> None:
    if dst.size(dst_path) == src.size(src_path) and \
            _remote_sha256(dst, dst_path) == _remote_sha256(src, src_path):
        return  # already there (a resumed hand-over)
    relay_download(src, src_path, local)
    dst.put_file(local, dst_path)


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _read_capped(runner: CommandRunner, path: str, limit: int, timeout: float) -> bytes | None:
    """At most ``limit + 1`` bytes of a remote file (None when it does not exist), through
    ``head -c`` in a framed command: capped in bytes and time, whatever the cluster does."""
    from remote.quoting import quote_path

    q = quote_path(path)
    script = (f"if [ ! -e {q} ]; then echo missing; exit 0; fi; echo present; "
              f"head -c {limit + 1} -- {q}")
    result = run_framed(runner, script, timeout=timeout, max_bytes=limit + (1 << 20),
                        what=f"reading {path}", idempotent=True)  # a read: safe to ask again
    status, _, body = result.stdout.partition("\n")
    if status == "missing":
        return None
    if status != "present" or not result.ok:
        raise RemoteError(f"exit {result.returncode}: {result.stderr.strip()[-300:]!r}")
    return body.encode("utf-8", "surrogateescape")


def _remote_sha256(runner: CommandRunner, path: str) -> str | None:
    # Framed: a login banner line that starts with 64 hex digits is never taken for it.
    from remote.quoting import command_line

    result = run_framed(runner, command_line(["sha256sum", "--", path]),
                        timeout=HASH_TIMEOUT_S, max_bytes=1 << 16, what="sha256sum")
    if not result.ok:
        return None
    for line in result.stdout.splitlines():
        word = line.split(" ", 1)[0].lstrip("\\")
        if _SHA256.fullmatch(word):
            return word
    return None


def _local_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


__all__ = ["ARTIFACTS", "LaunchError", "Launcher", "Listing", "ProfileError", "RunRecord", "RunRegistry",
           "Segment", "data_dir", "plan_segments", "relay_download", "relay_file",
           "selected_stages"]
