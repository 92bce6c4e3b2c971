"""Launch a pipeline onto its clusters, follow it, hand it over between clusters, fetch from it.

Qt-free: the app and the headless ``synthsmith`` CLI both drive it::

    launcher = Launcher(ProfileStore(), RunRegistry())
    config = load_config("my.yaml")                    # files are read by the caller
    print(launcher.preview(config))                    # the exact commands / sbatch scripts
    record = launcher.launch(config, source="my.yaml", stages=["seeds", "features"])
    record = launcher.refresh(record.run_id)           # job states; starts the next segment
    launcher.cancel(record.run_id)

Plan: the selected stages (enabled ones in pipeline order, or ``stages``) are cut into
*segments*: runs of consecutive stages with the same placement (``<stage>.placement``, or one
``cluster`` for all). Each cluster a run touches gets the engine bundle (``remote.bundle``,
uploaded only when changed), a run dir ``<workdir>/runs/<run-id>/`` and the config. Before
anything is created, ``preflight`` asks every cluster's engine doctor whether it can run its
stages as configured.

- ``direct`` clusters run a whole segment as ONE detached engine process
  (``python -m engine run --stages a,b,c``): it survives the SSH session and the laptop.
- ``slurm`` clusters get one job per stage, submitted together and chained on the cluster
  with ``--dependency=afterok``, so they too go on without the desktop. A shardable stage
  whose ``resources.nodes`` is N > 1 becomes a job array of N shards.

A later segment on another cluster starts when ``refresh`` sees the earlier one complete: the
artifacts it needs (``state.json``, ``data/store.sqlite``, ``exports/``, ``checkpoints/``)
move first (remote/artifact_copy.py: pulled directly by the destination when it can reach
the source over SSH on its own, else relayed through the desktop; every file checked by
sha256), so a cross-cluster hand-over waits for a desktop that is awake; each segment itself
does not. The local record of each run is remote/run_registry.py's.

Left out: a hand-over that survives a link dropped while ``refresh`` starts the next segment
(refresh is asked again, and may start it twice), and launching a subset of a running run.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from engine.contracts.config import (
    SHARDABLE_STAGES,
    STAGE_ORDER,
    PipelineConfig,
    Resources,
    dump_config,
)
from engine.contracts.rundir import CHECKPOINTS, EXPORTS, STATE, STORE
from remote.artifact_copy import (
    artifact_files,
    direct_copy,
    read_capped,
    relay_download,
    relay_file,
)
from remote.errors import LaunchError, RemoteError
from remote.profiles import ClusterProfile, ProfileError, ProfileStore, check_run_id, runner_for
from remote.quoting import absolute_path
from remote.run_registry import RunRecord, RunRegistry, Segment
from remote.runner import CommandRunner
from remote.safe_paths import UnsafeRemotePath, private_dir, safe_join

REPO_ROOT = Path(__file__).resolve().parents[1]
FETCH_TIMEOUT_S = 6 * 3600.0  # one `fetch`, all files together
STATE_MAX_BYTES = 8 << 20  # state.json read by `status`, at most
STATE_TIMEOUT_S = 60.0


# ---------------------------------------------------------------------------------------------
# Planning


def run_id_for(config: PipelineConfig, now: _dt.datetime | None = None) -> str:
    stamp = (now or _dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", config.run.name)
    slug = re.sub(r"\.{2,}", ".", slug).strip("-._") or "run"  # never a '..' in an id
    return f"{slug[:40]}-{stamp}"


def selected_stages(config: PipelineConfig, stages: Sequence[str] | None) -> list[str]:
    """The stages to launch: ``stages`` in pipeline order, else the enabled ones. (A stage an
    older engine bundle lacks is refused by that engine, naming it.)"""
    if stages:
        unknown = [s for s in stages if s not in STAGE_ORDER]
        if unknown:
            raise LaunchError(f"unknown stage(s) {', '.join(unknown)}; stages are "
                              f"{', '.join(STAGE_ORDER)}")
        chosen = [s for s in STAGE_ORDER if s in stages]
    else:
        chosen = [s for s in STAGE_ORDER if getattr(config, s).enabled]
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

    # -- planning and preview (a config object: files are read at the edges, CLI and panel)

    def plan(self, config: PipelineConfig, *, stages: Sequence[str] | None = None,
             cluster: str | None = None) -> list[Segment]:
        return plan_segments(config, selected_stages(config, stages), cluster, self.profiles)

    def preview(self, config: PipelineConfig, *, stages: Sequence[str] | None = None,
                cluster: str | None = None, run_id: str = "<run-id>") -> str:
        """What a launch would run, cluster by cluster (nothing is sent anywhere)."""
        out = []
        for seg in self.plan(config, stages=stages, cluster=cluster):
            profile = self.profiles.get(seg.cluster)
            paths = self._paths(profile, run_id, "<bundle-hash>")
            out.append(f"# {seg.cluster} ({profile.scheduler}): {', '.join(seg.stages)}")
            sched = _preview_scheduler(profile)
            for job in self._jobs(config, profile, seg, paths):
                out.append(sched.preview(job))
        return "\n\n".join(out) + "\n"

    # -- launch

    def launch(self, config: PipelineConfig, *, source: str = "", stages: Sequence[str] | None = None,
               cluster: str | None = None, run_id: str | None = None,
               preflight: bool = True) -> RunRecord:
        """Start a run of ``config`` (``source``: the file it came from, for the record).
        ``preflight`` (the default): first check, on every cluster it uses, what each of its
        stages needs as configured (``preflight``), and refuse with the fixes before any run
        folder is made or job started."""
        if run_id is not None:
            try:
                check_run_id(run_id, field="--run-id")
            except ProfileError as exc:
                raise LaunchError(str(exc)) from None
        segments = self.plan(config, stages=stages, cluster=cluster)
        record = RunRecord(run_id=run_id or run_id_for(config), config_path=source,
                           config_text=dump_config(config), created_at=_now(),
                           segments=segments)
        record.config = config  # the object itself goes on; the text is what the record keeps
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
        # absolute once the home is known (quoted paths never expand ~); a preview keeps ~
        work = absolute_path(home, profile.workdir) if home else profile.workdir.rstrip("/")
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
        from remote.schedulers import SlurmOptions, StageJob

        default_limit = Resources().time_limit

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
            shardable = stage in SHARDABLE_STAGES
            shards = res.nodes if shardable and res.gpus_per_node == 0 else 1
            if shards > 1:  # an array task per shard, one node each
                res = res.model_copy(update={"nodes": 1})
            jobs.append(StageJob(stage=stage, resources=res, shards=shards,
                                 slurm=slurm_for(res), **common))
        return jobs

    def _start(self, record: RunRecord, k: int) -> None:
        seg = record.segments[k]
        profile = self.profiles.get(seg.cluster)
        config = record.config
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
        listing = artifact_files(src, src_dir)
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
        path = f"{record.clusters[seg.cluster]['run_dir']}/{STATE}"
        where = f"state.json of run {run_id} on {seg.cluster}"
        try:
            data = read_capped(self.runner(seg.cluster), path, STATE_MAX_BYTES,
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
        targets = {"exports": EXPORTS, "checkpoints": CHECKPOINTS, "store": STORE}
        if what not in targets:
            raise LaunchError(f"--what {what!r}: use one of {', '.join(targets)}")
        record = self.registry.load(run_id)
        seg = next((s for s in reversed(record.segments) if s.status != "waiting"),
                   record.segments[0])
        runner = self.runner(seg.cluster)
        run_dir = record.clusters[seg.cluster]["run_dir"]
        deadline = _now() + timeout_s
        listing = artifact_files(runner, run_dir, (targets[what],))
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


def _now() -> float:
    import time

    return time.time()


__all__ = ["LaunchError", "Launcher", "RunRecord", "RunRegistry", "Segment", "plan_segments",
           "selected_stages"]
