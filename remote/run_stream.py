"""The run-stream model: one ``RunStream`` per run the desktop knows, filled once and read by
every view (Runs, Monitor), so no panel feeds another. Qt-free::

    streams = RunStreams()
    streams.subscribe(lambda run, events: monitor.add_events(events, run=run))
    follower = RunFollower(registry, streams=streams)   # fills it, in the worker
    streams.publish()                                   # on the GUI thread, after each poll
    stream = streams.open_folder("/path/to/runs/r1")    # a run folder on this computer

A ``RunStream`` holds what the events say about a run: its stage states and progress
(``ProgressBook``: status, reason, done/total, kept/rejected, LLM calls, rate, ETA per
stage) for every run, and, once the run is *followed* (live, or opened in the Monitor), its
decoded events. ``publish()`` hands each followed stream's events to every subscriber, in
order, once (the stream's cursor), and then lets them go: the Monitor keeps its numbers, and
a long run's events (rollout samples with their text) do not pile up here. Events are deduped
by (stage, rank, seq) as the engine's readers do, so a re-read history adds nothing twice.

Threads: the follower writes from the worker (``AppSession.call``), views read on the GUI
thread; every access to a stream goes through ``RunStreams.lock``. Subscribers are called on
the thread that calls ``publish()``, outside the lock.

A folder stream (``open_folder``) reads ``events/*.jsonl`` of a run folder on this computer
with ``engine.events.EventReader``; ``read_folders()`` reads what was appended since (a run
of ``python -m engine run`` still going), and the follower calls it at each poll.

Progress and ETA (``StageProgress``): ``done`` counts the items a stage processed, ``ok`` /
``rejected`` what it kept and refused where the stage says (engine/events.py); rate = units
done over the last ``RATE_WINDOW_S`` of progress events (cluster clock), or between the last
two points when fewer fall in that window; ETA = remaining / rate; unknown ("—") without a
total, before two progress points of the current attempt, or when nothing moved. An LLM stage
whose items all wait on their JSON retries (an in-process model answers in waves) reports no
item for minutes; its client's ``llm/requests`` metric (calls made, answered or failed) is
kept as ``calls``, so the view shows that work goes on.

Left out: a subscriber added after others gets only what arrives from then on (the Monitor
subscribes first, when it is built, and gets everything held until then), removing a run.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from engine.contracts.events import Event, EventReader, event_files
from engine.contracts.rundir import RunDir

RATE_WINDOW_S = 300.0  # the rate is that of the last 5 minutes of progress
LLM_CALLS_KEY = "llm/requests"  # engine/llm/base.py: calls made so far, per client
_ENGINE_STATUS = {"started": "running"}  # the engine's word -> ours; the rest are the same



@dataclass(frozen=True)
class GpuRound:
    """One round of the desktop's GPU sampling of a run (remote/run_follower.py): its own
    record kind, not an engine event: it has no stage, never stalls and never ends one.
    ``values``: ``gpu/<host>/<index>/util`` (percent) and ``.../mem_used`` (GiB)."""

    t: float  # when sampled (the desktop's clock)
    step: int  # 0, 1, 2, ... per run
    values: dict[str, float]


Record = Event | GpuRound  # what a stream holds for its subscribers, in arrival order
Subscriber = Callable[[str, list[Record]], None]


# ---------------------------------------------------------------------------------------------
# Progress and ETA of one stage


@dataclass
class StageProgress:
    """What the events say about one stage (all ranks together)."""

    status: str | None = None  # running, completed, failed, skipped, interrupted; None: no event
    reason: str | None = None
    unit: str = ""
    last_t: float | None = None
    status_t: float | None = None  # when its last stage event was written (cluster clock)
    ranks: dict[int, tuple[int, int | None]] = field(default_factory=dict)  # rank -> done, total
    kept: dict[int, tuple[int | None, int | None]] = field(default_factory=dict)  # ok, rejected
    llm_calls: dict[int, int] = field(default_factory=dict)  # rank -> its client's calls
    rank_status: dict[int, str] = field(default_factory=dict)
    points: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=512))

    @property
    def done(self) -> int | None:
        return sum(d for d, _ in self.ranks.values()) if self.ranks else None

    @property
    def total(self) -> int | None:
        totals = [t for _, t in self.ranks.values()]
        return sum(totals) if totals and all(t is not None for t in totals) else None

    @property
    def ok(self) -> int | None:
        return _sum_known([k for k, _ in self.kept.values()], len(self.ranks))

    @property
    def rejected(self) -> int | None:
        return _sum_known([r for _, r in self.kept.values()], len(self.ranks))

    @property
    def calls(self) -> int | None:
        return sum(self.llm_calls.values()) if self.llm_calls else None

    def add(self, e: Event) -> None:
        self.last_t = e.t if self.last_t is None else max(self.last_t, e.t)
        if e.kind == "stage":
            status = _ENGINE_STATUS.get(e.data.status, e.data.status)
            if status == "skipped" and self.rank_status.get(e.rank) == "completed":
                return  # a rerun skipping finished work: still completed
            if status == "running":
                # A new attempt: the old rate says nothing about it, and its LLM client
                # counts its calls from zero.
                self.points.clear()
                self.llm_calls.pop(e.rank, None)
            self.rank_status[e.rank] = status
            self.status = _combine(self.rank_status.values())
            self.status_t = e.t
            summary = e.data.summary or {}
            if e.data.reason or status in ("running", "completed"):
                self.reason = e.data.reason
            if status == "completed" and summary.get("skipped_reason"):
                # Completed with nothing to do (an empty feature tree): say why, or a bar at
                # 0 / 2 looks like a bug.
                self.reason = f"nothing to do: {summary['skipped_reason']}"
        elif e.kind == "progress":
            self.ranks[e.rank] = (e.data.done, e.data.total)
            self.kept[e.rank] = (e.data.ok, e.data.rejected)
            self.unit = e.data.unit
            done = self.done or 0
            if not self.points or e.t >= self.points[-1][0]:
                self.points.append((e.t, done))
        elif e.kind == "metric":
            calls = e.data.get(LLM_CALLS_KEY)
            if calls is not None:
                self.llm_calls[e.rank] = int(calls)

    def rate(self) -> float | None:
        """Units per second over the last RATE_WINDOW_S of progress (or between the last two
        points, when they are further apart); None when unknown or nothing moved."""
        if len(self.points) < 2:
            return None
        t1, d1 = self.points[-1]
        inside = [(t, d) for t, d in self.points if t1 - t <= RATE_WINDOW_S]
        # A slow stage (one item per 10 min) has one point in the window: the last two
        # points still give its rate.
        t0, d0 = inside[0] if len(inside) >= 2 else self.points[-2]
        if t1 - t0 <= 0 or d1 <= d0:
            return None
        return (d1 - d0) / (t1 - t0)

    def eta_s(self) -> float | None:
        """Seconds left at the recent rate, from the last progress event; None when unknown."""
        done, total, rate = self.done, self.total, self.rate()
        if self.status != "running" or total is None or done is None or not rate:
            return None
        return max(0.0, (total - done) / rate)


def _sum_known(values: list[int | None], n: int) -> int | None:
    """The sum when every rank reported the count (a rank without it: unknown)."""
    known = [v for v in values if v is not None]
    return sum(known) if known and len(known) == n else None


def _combine(statuses: Iterable[str]) -> str:
    s = set(statuses)
    for word in ("failed", "running", "interrupted"):
        if word in s:
            return word
    return "completed" if "completed" in s else next(iter(s), "running")


class ProgressBook:
    """Stage -> StageProgress, fed with a run's events in any order of files."""

    def __init__(self) -> None:
        self.stages: dict[str, StageProgress] = {}

    def add(self, events: Iterable[Event]) -> None:
        for e in events:
            if e.kind in ("stage", "progress") or (
                    e.kind == "metric" and LLM_CALLS_KEY in e.data):
                self.stages.setdefault(e.stage, StageProgress()).add(e)

    def get(self, stage: str) -> StageProgress | None:
        return self.stages.get(stage)


# ---------------------------------------------------------------------------------------------
# One run's stream


class RunStream:
    """One run: its ``book`` always, its events once ``followed`` (until published)."""

    def __init__(self, run_id: str, folder: Path | None = None) -> None:
        self.run_id = run_id
        self.folder = folder  # a run folder on this computer, or None (a registry run)
        self.store: Path | None = None  # a folder's data/store.sqlite, when it has one
        self.book = ProgressBook()
        self.followed = False
        self.published = 0  # events handed to subscribers so far: the cursor
        self._held: list[Record] = []  # followed, not published yet
        self._last_seq: dict[tuple[str, int], int] = {}
        self._readers: dict[Path, EventReader] = {}

    def add(self, events: Iterable[Event]) -> list[Event]:
        """New events (any order of files): into the book, and held for subscribers when
        followed. -> those that were new (seq beyond what this stream has of their file)."""
        new = self._new(events, self._last_seq)
        self.book.add(new)
        if self.followed:
            self._held += new
        return new

    def follow(self, history: Iterable[Event]) -> None:
        """From now on keep its events for subscribers, starting with its whole ``history``
        (the book already has what it saw of it)."""
        if self.followed:
            self.add(history)
            return
        self.followed = True
        held = self._new(history, {})
        self.book.add(self._new(held, self._last_seq))
        self._held += held

    def add_gpu(self, sample: GpuRound) -> None:
        """A GPU sampling round: held for subscribers when followed (no progress in it)."""
        if self.followed:
            self._held.append(sample)

    def held(self) -> list[Record]:
        """Records not published yet (a copy)."""
        return list(self._held)

    def take(self) -> list[Record]:
        taken, self._held = self._held, []
        self.published += len(taken)
        return taken

    def read_folder(self) -> list[Event]:
        """A folder stream: what its event files gained since the last read."""
        if self.folder is None:
            return []
        events: list[Event] = []
        for path in event_files(RunDir(self.folder).events_dir):
            reader = self._readers.get(path)
            if reader is None:
                reader = self._readers[path] = EventReader(path)
            events += reader.read_new()
        return self.add(events)

    @staticmethod
    def _new(events: Iterable[Event], last_seq: dict[tuple[str, int], int]) -> list[Event]:
        """Events past ``last_seq`` of their file (updated). A batch is in time order across
        files (remote.stream), which a writer's clock stepping back can make differ from seq
        order within one: so the bar is the one from before the batch."""
        before = dict(last_seq)
        seen: set[tuple[str, int, int]] = set()
        out = []
        for e in events:
            key = (e.stage, e.rank)
            if e.seq > before.get(key, -1) and (e.stage, e.rank, e.seq) not in seen:
                seen.add((e.stage, e.rank, e.seq))
                last_seq[key] = max(last_seq.get(key, -1), e.seq)
                out.append(e)
        return out


# ---------------------------------------------------------------------------------------------
# Every stream, and who reads them


class RunStreams:
    """Run id -> RunStream, and the subscribers that get the followed ones' events."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._streams: dict[str, RunStream] = {}
        self._subscribers: list[Subscriber] = []

    def stream(self, run_id: str) -> RunStream:
        """The stream of ``run_id``, made empty if new."""
        with self.lock:
            s = self._streams.get(run_id)
            if s is None:
                s = self._streams[run_id] = RunStream(run_id)
            return s

    def get(self, run_id: str) -> RunStream | None:
        with self.lock:
            return self._streams.get(run_id)

    def run_ids(self) -> list[str]:
        with self.lock:
            return list(self._streams)

    def followed(self) -> list[str]:
        with self.lock:
            return [rid for rid, s in self._streams.items() if s.followed]

    def forget(self, run_id: str) -> None:
        with self.lock:
            self._streams.pop(run_id, None)

    # --- folders on this computer

    def open_folder(self, folder: str | Path) -> RunStream:
        """A run folder (its ``events/``) as a followed stream, read now (call it in a worker).
        Its id is the folder's name, made unique among the streams; opening the same folder
        again returns its stream."""
        folder = Path(folder).expanduser().resolve()
        layout = RunDir(folder)
        if not layout.events_dir.is_dir():
            raise FileNotFoundError(
                f"{folder} is not a run folder: it has no events/ folder (a run folder holds "
                "config.yaml, state.json, events/, logs/ and data/)")
        with self.lock:
            for s in self._streams.values():
                if s.folder == folder:
                    return s
            run_id, k = folder.name, 2
            while run_id in self._streams:
                run_id, k = f"{folder.name} ({k})", k + 1
            s = self._streams[run_id] = RunStream(run_id, folder)
            s.store = layout.store_path if layout.store_path.is_file() else None
            s.follow([])
        events: list[Event] = []  # read outside the lock: a big history takes a while
        readers = {p: EventReader(p) for p in event_files(layout.events_dir)}
        for reader in readers.values():
            events += reader.read_new()
        with self.lock:
            s._readers.update(readers)
            s.add(events)
        return s

    def read_folders(self) -> None:
        """Read what every folder stream's files gained (the follower calls it each poll)."""
        with self.lock:
            folders = [s for s in self._streams.values() if s.folder is not None]
        for s in folders:
            with self.lock:
                s.read_folder()

    # --- subscribers

    def subscribe(self, fn: Subscriber) -> None:
        """``fn(run_id, events)`` from the next ``publish()`` on, with every followed stream's
        events not yet published (all of them, for the first subscriber)."""
        with self.lock:
            self._subscribers.append(fn)

    def unsubscribe(self, fn: Subscriber) -> None:
        with self.lock:
            if fn in self._subscribers:
                self._subscribers.remove(fn)

    def publish(self) -> dict[str, int]:
        """Hand every followed stream's new events to the subscribers, in order, once.
        Without subscribers nothing is taken (the first one gets it all). -> run id ->
        events handed over."""
        with self.lock:
            if not self._subscribers:
                return {}
            batches = [(rid, s.take()) for rid, s in self._streams.items() if s.followed]
            subscribers = list(self._subscribers)
        sent = {}
        for rid, events in batches:
            if events:
                for fn in subscribers:
                    fn(rid, events)
                sent[rid] = len(events)
        return sent


__all__ = ["LLM_CALLS_KEY", "RATE_WINDOW_S", "GpuRound", "ProgressBook", "Record", "RunStream",
           "RunStreams", "StageProgress"]
