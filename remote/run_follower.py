"""Follow every run of the registry: statuses, per-stage progress and ETA, events, logs, GPUs.

Qt-free: the Runs panel (gui/panels/runs.py) calls it in its worker, always through
``AppSession.call`` (so the launcher's links are used by one thread at a time, and this object
too), and shows what it returns::

    follower = RunFollower(session.registry, streams=streams)   # remote.run_stream.RunStreams
    first = session.call(follower.load)            # local only: registry + event caches
    result = session.call(follower.poll, PollRequest(selected="smoke-cpu-2026..."))
    result.runs        # RunView per run, newest first: status, stages with progress and ETA
    result.logs        # {(cluster, file): text} of the run whose log view is open
    result.notices     # (level, text, details): each problem once, not at every poll
    streams.publish()  # on the GUI thread: the followed runs' new events to the subscribers

Events go into the run-stream model (``remote.run_stream``), the one place every view reads:
each run's stream gets what the tails bring; a run is *followed* (its events kept for the
subscribers, the Monitor) when it is live or asked for in ``PollRequest.follow``, from its
whole history on. The stages' progress in ``RunView`` is read from the same streams.

One poll: the registry is listed (new launches appear by themselves); each run that is live
(not completed, failed or cancelled), selected, newly followed or showing its logs is
connected (an unknown host key is returned in ``unknown_keys`` for the user, never accepted
here), and the event tail of every cluster it touched is polled; a live run is also
``Launcher.refresh``-ed (jobs polled, the next segment started), but on its own cadence,
at most every ``status_every_s`` (10 s; at once for a waiting run, on Refresh, and when a
stage event says a stage ended), so a slow
``squeue`` costs the charts one delay per 10 s, not one per poll (``remote.stream.EventTail``; the caches live in
``registry.folder(run)/cache-<cluster>``, the same ones ``synthsmith tail`` fills). Because the
registry and the caches are on disk, ``load`` after an app restart shows every run's status
and progress without a single remote command. Each poll also reads what the run folders
opened on this computer gained (``RunStreams.read_folders``).

Progress and ETA (``remote.run_stream.StageProgress``) come from the engine's ``progress``
events (done/total per rank, summed; kept/rejected where the stage says), ``stage`` events and
the LLM client's call count. A stage's status joins its segment's record and its events: a
stage with no event of the current attempt is ``queued`` (next in line: the scheduler's reason
shown), ``waiting`` (behind an earlier stage) or ``not run`` (its segment ended first), and
shows no reason: a segment's failure is the failed stage's. After a resume, a failure older
than the segment's restart (desktop clock vs the cluster's, assumed roughly in step) is the
last attempt's and no longer shown.

GPUs (``remote.gpus``), at most every ``gpu_every_s`` per host or job, for the live runs with
a running segment: a direct host's GPUs (all runs running there share the sample), or the
nodes of a Slurm job whose stage asked for GPUs (``srun --overlap``, only while the engine
says that stage is running). A host without nvidia-smi is said once and not asked again
until ``PollRequest(force=True)`` (Refresh). Samples become ``GpuRound`` records of the run's
stream (their own kind, not engine events: no fake stage, nothing a stall rule could see)
with keys ``gpu/<host>/<index>/util`` (percent) and ``gpu/<host>/<index>/mem_used`` (GiB),
stamped with the desktop's clock; sampling stops with the run.

A run whose poll fails is retried with backoff (5 s doubling to 5 min; Refresh retries at
once), and its error is reported once until it changes. Left out: stage rows for shards
(a sharded stage shows the ranks' summed progress and one status), and ETA across stages.
"""

from __future__ import annotations

import math
import re
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from engine.contracts.events import STAGE_ENDED, Event
from remote.gpus import GpuSample, sample_gpus
from remote.run_registry import RunRecord, RunRegistry, Segment
from remote.run_stream import GpuRound, ProgressBook, RunStream, RunStreams, StageProgress
from remote.session import connect_step
from remote.stream import EventTail, LogTail

TERMINAL = ("completed", "failed", "cancelled")
STATUS_EVERY_S = 10.0  # job status at most this often per run; events every poll
GPU_EVERY_S = 10.0
BACKOFF_S = (5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0)


# ---------------------------------------------------------------------------------------------
# What the panel shows (immutable: made in the worker, read on the GUI thread)


@dataclass(frozen=True)
class StageView:
    stage: str
    cluster: str
    status: str  # waiting, queued, running, completed, skipped, failed, interrupted, cancelled,
    #              not run (its segment ended before it started)
    done: int | None = None  # items processed
    total: int | None = None
    unit: str = ""
    rate: float | None = None  # units per second
    eta_s: float | None = None
    reason: str | None = None
    ok: int | None = None  # of done: kept, where the stage says
    rejected: int | None = None  # of done: refused, where the stage says
    llm_calls: int | None = None  # LLM calls this attempt made (answered or failed), if any

    @property
    def fraction(self) -> float | None:
        """The bar: done / total, full only when all is done and the stage completed (a
        stage that completed with nothing to do at 0 / 2 shows an empty bar)."""
        if self.done is None or self.total is None:
            return None
        if self.total == 0:
            return 1.0 if self.status in ("completed", "skipped") else None
        f = min(1.0, self.done / self.total)
        if f >= 1.0 and self.status not in ("completed", "skipped"):
            return 0.99  # still saving or merging what it made
        return f


@dataclass(frozen=True)
class RunView:
    run_id: str
    created_at: float
    status: str  # the record's: waiting, running, completed, failed, cancelled
    clusters: tuple[str, ...]
    stages: tuple[StageView, ...]
    reason: str | None = None

    @property
    def live(self) -> bool:
        return self.status not in TERMINAL

    @property
    def current(self) -> StageView | None:
        """The first stage that is not finished."""
        return next((s for s in self.stages if s.status not in ("completed", "skipped")), None)

    @property
    def finished_stages(self) -> int:
        return sum(s.status in ("completed", "skipped") for s in self.stages)


def segment_started_at(seg: Segment) -> float | None:
    """When the desktop last (re)started the segment's jobs (its clock), None if never."""
    times = [j.get("submitted_at") for j in seg.jobs if j.get("submitted_at") is not None]
    return min(times) if times else None


def stage_status(seg: Segment, prog: StageProgress | None) -> str:
    """One stage's status from its segment (the desktop's record) and its events."""
    ev = prog.status if prog else None
    if seg.status == "waiting":
        return "waiting"
    if ev in ("failed", "interrupted", "cancelled") and seg.status == "running":
        started = segment_started_at(seg)
        if started is not None and prog.status_t is not None and prog.status_t < started:
            ev = None  # Resumed: that outcome was the last attempt's, this one has not begun
    if ev is None:  # no event of this attempt yet
        return {"running": "queued", "failed": "not run", "cancelled": "not run"}.get(
            seg.status, seg.status)
    if ev == "running" and seg.status in ("failed", "cancelled"):
        return seg.status  # killed before it could say so
    return ev


def run_view(record: RunRecord, book: ProgressBook) -> RunView:
    stages = []
    for seg in record.segments:
        ahead = False  # an earlier stage of this segment has not finished
        for name in seg.stages:
            prog = book.get(name)
            status = stage_status(seg, prog)
            if status == "queued" and ahead:
                status = "waiting"  # behind an earlier stage, not behind the scheduler
            if status == "queued":
                reason = seg.reason  # what the scheduler says the job waits for
            elif status in ("waiting", "not run") or prog is None:
                # It never ran (or not yet in this attempt): no reason of its own. The
                # segment's failure belongs to the stage that failed, not to every row.
                reason = None
            else:
                reason = prog.reason
                if not reason and status in ("failed", "cancelled"):
                    reason = seg.reason  # killed before it could say why
            stages.append(StageView(
                name, seg.cluster, status, prog.done if prog else None,
                prog.total if prog else None, prog.unit if prog else "",
                prog.rate() if prog and status == "running" else None,
                prog.eta_s() if prog and status == "running" else None, reason,
                prog.ok if prog else None, prog.rejected if prog else None,
                prog.calls if prog else None))
            ahead = ahead or status not in ("completed", "skipped")
    failed = next((s for s in stages if s.status == "failed" and s.reason), None)
    current = next((s for s in record.segments if s.status != "completed"), None)
    if failed is not None and record.status == "failed":
        reason = f"{failed.stage}: {failed.reason}"  # the stage's own words, not an exit code
    else:
        reason = current.reason if current is not None else None
    return RunView(record.run_id, record.created_at, record.status,
                   tuple(dict.fromkeys(s.cluster for s in record.segments)), tuple(stages),
                   reason)


# ---------------------------------------------------------------------------------------------
# GPU samples as metric events


def _key_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "host"


def gpu_metrics(samples: Iterable[GpuSample]) -> dict[str, float]:
    """``gpu/<host>/<index>/util`` (percent) and ``.../mem_used`` (GiB); unknown ones left out."""
    out: dict[str, float] = {}
    for s in samples:
        base = f"gpu/{_key_part(s.host)}/{s.index}"
        if s.util_pct is not None and math.isfinite(s.util_pct):
            out[f"{base}/util"] = s.util_pct
        if s.mem_used_gib is not None and math.isfinite(s.mem_used_gib):
            out[f"{base}/mem_used"] = round(s.mem_used_gib, 4)
    return out


# ---------------------------------------------------------------------------------------------
# The follower


@dataclass(frozen=True)
class PollRequest:
    selected: str | None = None  # polled even when finished (late events)
    follow: frozenset[str] = frozenset()  # the Monitor follows these too (besides live runs)
    logs: str | None = None  # the run whose log view is open
    logs_reset: bool = False  # the log view was (re)opened: send all the text it has
    skip_clusters: frozenset[str] = frozenset()  # a host key refused, or being asked about
    force: bool = False  # Refresh: retry runs in backoff, sample GPUs now, re-ask GPU-less hosts


@dataclass
class PollResult:
    runs: list[RunView] = field(default_factory=list)  # newest first
    logs_run: str | None = None
    logs_reset: bool = False  # logs holds the whole text so far (else: what is new)
    logs: dict[tuple[str, str], str] = field(default_factory=dict)  # (cluster, file) -> text
    gpus: dict[str, list[GpuSample]] = field(default_factory=dict)  # run -> its latest sample
    notices: list[tuple[str, str, str]] = field(default_factory=list)  # level, text, details
    unknown_keys: list[str] = field(default_factory=list)  # clusters to connect with the user
    polled: list[str] = field(default_factory=list)  # runs whose events were polled
    refreshed: list[str] = field(default_factory=list)  # runs whose job status was asked too
    took_s: float = 0.0


@dataclass
class _RunState:
    stream: RunStream  # the run's events and progress, shared with every view
    tails: dict[str, EventTail] = field(default_factory=dict)
    log_tails: dict[str, LogTail] = field(default_factory=dict)
    failures: int = 0
    retry_at: float = 0.0
    problem: str | None = None  # the last error reported
    gpu_rounds: int = 0
    gpus_wanted: dict[str, bool] | None = None  # stage -> asks for GPUs (from its config)
    refreshed_at: float = float("-inf")  # when its job status was last asked (clock)


class RunFollower:
    def __init__(self, registry: RunRegistry, *, streams: RunStreams | None = None,
                 gpu_every_s: float = GPU_EVERY_S, status_every_s: float = STATUS_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry
        self.streams = streams if streams is not None else RunStreams()
        self.gpu_every_s = gpu_every_s
        self.status_every_s = status_every_s
        self.clock = clock
        self._runs: dict[str, _RunState] = {}
        self._gpu_last: dict[tuple[str, str | None], float] = {}
        self._gpu_less: dict[str, str] = {}  # direct cluster -> why it has no GPU samples
        self._said: set[str] = set()  # GPU notices given (once a session)

    # --- entry points (through AppSession.call: fn(launcher, ...))

    def load(self, launcher: Any) -> PollResult:
        """Every run from the registry and the local event caches into the streams (live
        runs followed); sends nothing anywhere."""
        start = self.clock()
        result = PollResult()
        records = self._records()
        for rid, record in records.items():
            st = self._state(rid)
            try:
                history = self._history(launcher, rid, record)
            except Exception as exc:  # a profile removed since: the record still shows
                self._report(result, st, rid, "Reading the cached events of", exc)
                continue
            with self.streams.lock:
                if record.status not in TERMINAL:
                    st.stream.follow(history)
                else:
                    st.stream.add(history)
        result.runs = self._views(records)
        result.took_s = self.clock() - start
        return result

    def poll(self, launcher: Any, request: PollRequest) -> PollResult:
        start = now = self.clock()
        result = PollResult(logs_run=request.logs, logs_reset=request.logs_reset)
        if request.force:
            self._gpu_less.clear()
        records = self._records()
        live = {rid for rid, r in records.items() if r.status not in TERMINAL}
        wanted = live | {request.selected, request.logs} | {
            rid for rid in request.follow if not self._state(rid).stream.followed}
        for rid in [r for r in records if r in wanted]:
            st = self._state(rid)
            if now < st.retry_at and not request.force:
                continue
            record = records[rid]
            clusters = _clusters(record)
            if any(c in request.skip_clusters for c in clusters):
                continue
            try:
                unknown = [c for c in clusters if connect_step(launcher, c) is not None]
                if unknown:
                    result.unknown_keys += [c for c in unknown if c not in result.unknown_keys]
                    continue
                new = self._poll_events(launcher, rid, record)
                # Job status (squeue/scontrol, or the pid file) on its own, slower cadence:
                # a slow scheduler must not hold up the events every poll brings. Asked at
                # once when a stage just ended (the segment may be done: start the next).
                ended = any(e.kind == "stage" and e.data.status in STAGE_ENDED for e in new)
                if rid in live and (request.force or ended or record.status == "waiting"
                                    or now - st.refreshed_at >= self.status_every_s):
                    record = records[rid] = launcher.refresh(rid)
                    st.refreshed_at = now
                    result.refreshed.append(rid)
                follow = (rid in live or rid in request.follow) and not st.stream.followed
                history = self._history(launcher, rid, record) if follow else []
                with self.streams.lock:
                    st.stream.add(new)
                    if follow:  # its whole history once, then what is new
                        st.stream.follow(history)
                if rid == request.logs:
                    result.logs = self._poll_logs(launcher, rid, record, request.logs_reset)
            except Exception as exc:
                self._report(result, st, rid, "Following", exc)
                continue
            result.polled.append(rid)
            st.failures, st.retry_at, st.problem = 0, 0.0, None
        self._sample_gpus(launcher, records, request, result)
        self.streams.read_folders()  # run folders opened from this computer
        result.runs = self._views(records)
        result.took_s = self.clock() - start
        return result

    # --- runs and tails

    def _records(self) -> dict[str, RunRecord]:
        records = {r.run_id: r for r in self.registry.list()}
        for gone in set(self._runs) - set(records):  # its folder was removed
            del self._runs[gone]
            self.streams.forget(gone)
        return records

    def _state(self, rid: str) -> _RunState:
        st = self._runs.get(rid)
        if st is None:
            st = self._runs[rid] = _RunState(self.streams.stream(rid))
        return st

    def _views(self, records: dict[str, RunRecord]) -> list[RunView]:
        ordered = sorted(records.values(), key=lambda r: r.created_at, reverse=True)
        with self.streams.lock:
            return [run_view(r, self._state(r.run_id).stream.book) for r in ordered]

    def _tail(self, launcher: Any, rid: str, record: RunRecord, cluster: str,
              kind: type) -> Any:
        st = self._state(rid)
        tails = st.tails if kind is EventTail else st.log_tails
        if cluster not in tails:
            run_dir = record.clusters[cluster]["run_dir"]
            cache = self.registry.tail_cache(rid, cluster)
            tails[cluster] = kind(launcher.runner(cluster), run_dir, cache)
        return tails[cluster]

    def _history(self, launcher: Any, rid: str, record: RunRecord) -> list[Event]:
        events: list[Event] = []
        for cluster in _touched(record):
            events += self._tail(launcher, rid, record, cluster, EventTail).history()
        return events

    def _poll_events(self, launcher: Any, rid: str, record: RunRecord) -> list[Event]:
        events: list[Event] = []
        for cluster in _touched(record):
            events += self._tail(launcher, rid, record, cluster, EventTail).poll()
        return events

    def _poll_logs(self, launcher: Any, rid: str, record: RunRecord,
                   reset: bool) -> dict[tuple[str, str], str]:
        out: dict[tuple[str, str], str] = {}
        for cluster in _touched(record):
            tail = self._tail(launcher, rid, record, cluster, LogTail)
            old = tail.history() if reset else {}
            new = tail.poll()
            for name in sorted(set(old) | set(new)):
                out[(cluster, name)] = old.get(name, "") + new.get(name, "")
        return out

    def _report(self, result: PollResult, st: _RunState, rid: str, what: str,
                exc: BaseException) -> None:
        st.failures += 1
        retry = BACKOFF_S[min(st.failures, len(BACKOFF_S)) - 1]
        st.retry_at = self.clock() + retry
        problem = f"{type(exc).__name__}: {exc}"
        if problem != st.problem:  # said once, until it changes or the run recovers
            st.problem = problem
            result.notices.append(("error", f"{what} run {rid} failed: {problem} (next try in "
                                   f"{retry:g} s, or now with Refresh)", traceback.format_exc()))

    # --- GPUs

    def _sample_gpus(self, launcher: Any, records: dict[str, RunRecord],
                     request: PollRequest, result: PollResult) -> None:
        now = self.clock()
        targets: dict[tuple[str, str | None], list[str]] = {}
        for rid, record in records.items():
            st = self._state(rid)
            seg = next((s for s in record.segments if s.status == "running"), None)
            if record.status in TERMINAL or seg is None:
                continue  # the sampler stops with the run (GPU rounds never stall)
            if seg.cluster in request.skip_clusters or seg.cluster in self._gpu_less:
                continue
            try:
                profile = launcher.profiles.get(seg.cluster)
            except Exception:
                continue  # the poll above reported it
            if profile.scheduler == "slurm":
                for job in seg.jobs:
                    with self.streams.lock:
                        prog = st.stream.book.get(job["stage"])
                    if (job.get("shards", 1) == 1 and prog is not None
                            and prog.status == "running"
                            and self._wants_gpus(st, record, job["stage"])):
                        targets.setdefault((seg.cluster, job["job_id"]), []).append(rid)
            else:
                targets.setdefault((seg.cluster, None), []).append(rid)
        for key, rids in targets.items():
            if not request.force and now - self._gpu_last.get(key, -math.inf) < self.gpu_every_s:
                continue
            self._gpu_last[key] = now
            cluster, job = key
            try:
                env = dict(launcher.profiles.get(cluster).env) if job else None
                report = sample_gpus(launcher.runner(cluster), slurm_job=job, env=env)
            except Exception as exc:
                self._say(result, "warning", f"GPU sampling on {cluster} failed: "
                          f"{type(exc).__name__}: {exc}", traceback.format_exc())
                continue
            for problem in report.problems:
                if job is None or "nvidia-smi" in problem or "srun" in problem:
                    self._say(result, "info", f"{cluster}: {problem}")
            if job is None and not report.samples:
                self._gpu_less[cluster] = "; ".join(report.problems)
                continue
            metrics = gpu_metrics(report.samples)
            for rid in rids:
                st = self._state(rid)
                result.gpus[rid] = list(report.samples)
                if not metrics:
                    continue
                sample = GpuRound(t=max(s.t for s in report.samples), step=st.gpu_rounds,
                                  values=metrics)
                st.gpu_rounds += 1
                with self.streams.lock:
                    st.stream.add_gpu(sample)

    def _wants_gpus(self, st: _RunState, record: RunRecord, stage: str) -> bool:
        if st.gpus_wanted is None:
            try:
                config = record.config
                st.gpus_wanted = {s: getattr(config, s).resources.gpus_per_node > 0
                                  for seg in record.segments for s in seg.stages}
            except Exception:
                st.gpus_wanted = {}
        return st.gpus_wanted.get(stage, False)

    def _say(self, result: PollResult, level: str, text: str, details: str = "") -> None:
        if text not in self._said:
            self._said.add(text)
            result.notices.append((level, text, details))


def _touched(record: RunRecord) -> list[str]:
    """Clusters where the run has (or had) processes: their event files exist there."""
    return list(dict.fromkeys(s.cluster for s in record.segments
                              if s.status != "waiting" and s.cluster in record.clusters))


def _clusters(record: RunRecord) -> list[str]:
    """Clusters a poll of the run may talk to: the touched ones and the next to start."""
    out = _touched(record)
    nxt = record.current()
    if nxt is not None and nxt.cluster not in out and record.status not in TERMINAL:
        out.append(nxt.cluster)
    return out


__all__ = ["GpuRound", "PollRequest", "PollResult", "ProgressBook", "RunFollower", "RunView",
           "StageProgress", "StageView", "gpu_metrics", "run_view", "segment_started_at",
           "stage_status"]
