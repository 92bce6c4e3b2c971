"""The event stream: every record the engine writes for the desktop app to watch, as JSONL.

One JSON object per line, one file per writer process (``events/<stage>.<rank>.jsonl``)::

    {"v":1,"seq":17,"t":1764130000.12,"stage":"sft","rank":0,"kind":"metric","step":40,"data":{"sft/loss":1.23}}

The pydantic models below (``Event``, one envelope per ``kind``) are the contract; ``EventWriter``
writes it, ``EventReader`` / ``parse_lines`` read it, incrementally and from byte offsets, so the
SSH tail in ``remote/`` can resume after a reconnect with no loss and no duplicates.

Reading a file from the shell: the lines are plain JSON, so ``tail -f events/sft.0.jsonl`` or
``jq -c 'select(.kind=="metric") | .data' events/sft.0.jsonl`` work as they are, and
``python -m engine.events FILE_OR_EVENTS_DIR ...`` prints a per-file summary (counts per kind,
seq range, bad lines, last stage status, last metric step).

Decisions a reader of the stream needs to know:

- ``kind`` picks the type of ``data``. A ``metric``'s ``data`` is the values dict itself
  (``{"sft/loss": 1.23}``), keys ``/``-namespaced (``sft/loss``, ``rl/reward/mean``).
- A ``progress``'s ``done`` counts items *processed* (kept, refused, or left for a rerun), out
  of ``total``; where the stage knows, ``ok`` and ``rejected`` say how many were kept and
  refused (both absent otherwise), so "8 / 8" never hides "0 kept, 8 rejected".
- JSON has no NaN or infinity. Non-finite floats are written as the strings ``"NaN"``,
  ``"Infinity"`` and ``"-Infinity"`` (what pydantic's ``ser_json_inf_nan="strings"`` writes too),
  and metric values decode back to ``float``. Inside the free-form dicts (a stage ``summary``, a
  ``sample`` payload) they come back as those strings: nothing there says the value was a float.
- ``seq`` starts at 0 and rises by one per line within a file, also across a resumed stage
  (the writer continues from the last complete line). Readers drop ``seq <= last_seq``, which is
  how duplicates after a reconnect or a re-read disappear.
- A line counts once it ends in ``\\n``. Readers never consume a torn last line (a writer killed
  mid-write, or a write still in flight); they read it once it is complete.
- Strict models, tolerant readers: an unknown ``kind``, an unknown field or a ``v`` other than 1
  fails validation (the contract test catches a writer drifting), but the readers skip such a
  line, count it in ``bad_lines`` and go on, so a live monitor never dies on one bad record
  (or on a newer engine's record kinds).
- Durability: each line is one ``write()`` on an unbuffered file, so it reaches the OS (and so a
  reader on the same host) at once. ``fsync`` runs only on ``stage`` events and on ``close()``:
  the terminal status survives a node crash, per-step metrics do not pay an fsync each (slow
  on NFS/Lustre).

Metric sinks: ``EventWriter.add_sink(sink)`` hands every metric the writer writes (after its
line is written, with the line's ``step`` and ``t``) to a ``MetricSink`` too, e.g. TensorBoard or
W&B (engine/metrics_export.py attaches them from ``run.metrics``, so no stage knows of them).
A sink that raises is closed and dropped, with one ``alert`` warning (code ``metrics_sink``) in
this file: a failing export never stops a stage, and the event file keeps every metric.

Left out: rotation or compaction of event files, cross-host locking (one writer process per
file is the rule, not something enforced), and a live ``--follow`` mode in the CLI (use
``tail -f``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

EVENT_VERSION = 1

StageStatus = Literal["started", "completed", "failed", "skipped", "interrupted"]
STAGE_ENDED = frozenset(get_args(StageStatus)) - {"started"}  # a stage event that ends one
LogLevel = Literal["debug", "info", "warning", "error"]
AlertLevel = Literal["info", "warning", "error"]

# "sft/loss", "rl/reward/mean": at least two non-empty segments, no whitespace.
METRIC_NAME_PATTERN = r"^[^/\s]+(?:/[^/\s]+)+$"
# Stage names become file names (events/<stage>.<rank>.jsonl): keep them path-safe and dot-free.
STAGE_NAME_PATTERN = r"^[A-Za-z0-9_-]+$"

MetricName = Annotated[str, StringConstraints(pattern=METRIC_NAME_PATTERN)]


# --- the records: one envelope per kind ----------------------------------------------------


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="strings")


class StageData(_Record):
    status: StageStatus
    reason: str | None = None
    summary: dict[str, Any] | None = None


class ProgressData(_Record):
    done: int = Field(ge=0, description="items processed so far, whatever came of them")
    total: int | None = Field(default=None, ge=0)
    unit: str = "items"
    # Of ``done``, where the stage knows: kept and refused (the rest: left for a rerun).
    ok: int | None = Field(default=None, ge=0, description="of done: items kept")
    rejected: int | None = Field(default=None, ge=0, description="of done: items refused")


class LogData(_Record):
    level: LogLevel
    message: str


class ArtifactData(_Record):
    name: str
    path: str
    kind: str = Field(description='what it is: "checkpoint", "export", "table", ...')


class SampleData(_Record):
    kind: str = Field(description='what it is: "task", "rollout", "verdict_summary", ...')
    payload: dict[str, Any]


class AlertData(_Record):
    level: AlertLevel
    code: str | None = None
    message: str


class _Envelope(_Record):
    # Field order here is the order on the wire; subclasses override `kind` (and `step`) in place.
    v: Literal[1] = Field(description="event format version (EVENT_VERSION)")
    seq: int = Field(ge=0, description="position in its file: 0, 1, 2, ... no gaps")
    t: float = Field(description="unix time the writer took the record")
    stage: str = Field(min_length=1)
    rank: int = Field(ge=0)
    kind: str
    step: int | None = Field(default=None, ge=0)


class StageEvent(_Envelope):
    kind: Literal["stage"]
    data: StageData


class MetricEvent(_Envelope):
    kind: Literal["metric"]
    step: int = Field(ge=0)
    data: dict[MetricName, float]


class ProgressEvent(_Envelope):
    kind: Literal["progress"]
    data: ProgressData


class LogEvent(_Envelope):
    kind: Literal["log"]
    data: LogData


class ArtifactEvent(_Envelope):
    kind: Literal["artifact"]
    data: ArtifactData


class SampleEvent(_Envelope):
    kind: Literal["sample"]
    data: SampleData


class AlertEvent(_Envelope):
    kind: Literal["alert"]
    data: AlertData


Event = Annotated[
    StageEvent | MetricEvent | ProgressEvent | LogEvent | ArtifactEvent | SampleEvent | AlertEvent,
    Field(discriminator="kind"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
EVENT_KINDS = ("stage", "metric", "progress", "log", "artifact", "sample", "alert")


def parse_event(line: bytes | str) -> Event:
    """One line -> its typed record. Raises pydantic.ValidationError if it breaks the contract."""
    return EVENT_ADAPTER.validate_json(line)


def dump_line(event: Event) -> bytes:
    """A record -> its wire line (with the trailing newline), e.g. for a local cache of a tail."""
    return event.model_dump_json().encode() + b"\n"


# --- writing -------------------------------------------------------------------------------

_STAGE_STATUSES = frozenset(get_args(StageStatus))
_LOG_LEVELS = frozenset(get_args(LogLevel))
_ALERT_LEVELS = frozenset(get_args(AlertLevel))
_METRIC_NAME_RE = re.compile(METRIC_NAME_PATTERN)
_STAGE_NAME_RE = re.compile(STAGE_NAME_PATTERN)
_TAIL_CHUNK = 64 * 1024


class MetricSink(Protocol):
    """Somewhere else metrics go as they are written (``EventWriter.add_sink``)."""

    name: str  # what an alert calls it, e.g. "TensorBoard"

    def metric(self, step: int, t: float, values: Mapping[str, float]) -> None: ...

    def close(self) -> None: ...


def _nonfinite(x: float) -> str:
    return "NaN" if x != x else ("Infinity" if x > 0 else "-Infinity")


def _json_default(obj: Any) -> Any:
    # numpy / torch scalars and paths turn up in summaries and payloads; a metric logger must not
    # crash a training run over them.
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable in an event")


def _strings_for_nonfinite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else _nonfinite(obj)
    if isinstance(obj, Mapping):
        return {k: _strings_for_nonfinite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_strings_for_nonfinite(v) for v in obj]
    if hasattr(obj, "item"):
        return _strings_for_nonfinite(obj.item())
    return obj


def _dumps(obj: Any) -> str:
    try:
        return json.dumps(obj, separators=(",", ":"), allow_nan=False, default=_json_default)
    except ValueError:  # a NaN or inf somewhere: the rare path pays for the walk
        return json.dumps(
            _strings_for_nonfinite(obj),
            separators=(",", ":"),
            allow_nan=False,
            default=_json_default,
        )


def _lines_backwards(fh: Any, end: int) -> Iterable[bytes]:
    """The newline-separated pieces of ``fh[0:end]``, last first, read in chunks from the end.

    The first piece is what follows the last newline: ``b""`` for a file of complete lines.
    """
    pos = end
    carry = b""
    while pos > 0:
        start = max(0, pos - _TAIL_CHUNK)
        fh.seek(start)
        pieces = (fh.read(pos - start) + carry).split(b"\n")
        pos = start
        # pieces[0] may continue into the previous chunk, unless this chunk starts the file
        carry = pieces.pop(0) if pos > 0 else b""
        yield from reversed(pieces)


def _resume_seq(fh: Any) -> int:
    """Cut a torn tail off an event file (open in a+b) and return the seq to continue from.

    A torn tail (bytes after the last newline) is a line whose writer died mid-write. No reader
    ever consumed it (readers take only complete lines), so dropping it loses nothing anyone saw,
    and the next record starts on a clean line instead of being glued to the fragment.
    """
    size = fh.seek(0, os.SEEK_END)
    pieces = iter(_lines_backwards(fh, size))
    torn = next(pieces, b"")
    if torn:
        fh.truncate(size - len(torn))
    for line in pieces:  # the last complete line that carries a seq (skipping garbage)
        try:
            seq = json.loads(line)["seq"]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(seq, int) and seq >= 0:
            return seq + 1
    return 0


class EventWriter:
    """Writes one event file. Thread-safe; one instance (one process) per file.

    Each method writes one complete line with a single ``write()`` on an unbuffered file.
    Lines are formatted directly with ``json.dumps`` (several times faster than a pydantic dump
    per event); the contract tests check that they validate against the models.
    """

    def __init__(self, path: str | os.PathLike[str], stage: str, rank: int = 0) -> None:
        if not _STAGE_NAME_RE.match(stage):
            raise ValueError(f"stage name {stage!r} must match {STAGE_NAME_PATTERN}")
        if not isinstance(rank, int) or rank < 0:
            raise ValueError(f"rank must be an int >= 0, got {rank!r}")
        self.path = Path(path)
        self.stage_name = stage
        self.rank = rank
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as fh:  # creates it if missing, never clobbers
            self._seq = _resume_seq(fh)
        # Unbuffered: each line goes to the OS in the write() that makes it, no flush to forget.
        self._fh: Any = open(self.path, "ab", buffering=0)  # noqa: SIM115 (held until close)
        self._lock = threading.Lock()
        self._prefix = f'{{"v":{EVENT_VERSION},"seq":'
        self._who = f',"stage":{json.dumps(stage)},"rank":{rank},"kind":"'
        self._metric_keys: dict[str, str] = {}  # name -> '"name":', checked once
        self._sinks: list[MetricSink] = []
        self._sink_lock = threading.Lock()

    @classmethod
    def for_run(cls, events_dir: str | os.PathLike[str], stage: str, rank: int = 0) -> EventWriter:
        """The writer for ``events_dir/<stage>.<rank>.jsonl``."""
        return cls(Path(events_dir) / f"{stage}.{rank}.jsonl", stage, rank)

    @property
    def next_seq(self) -> int:
        return self._seq

    # The public methods: one per kind.

    def stage(
        self,
        status: StageStatus,
        reason: str | None = None,
        summary: Mapping[str, Any] | None = None,
    ) -> None:
        if status not in _STAGE_STATUSES:
            raise ValueError(f"stage status {status!r} is not one of {sorted(_STAGE_STATUSES)}")
        data = {
            "status": status,
            "reason": reason,
            "summary": None if summary is None else dict(summary),
        }
        self._write("stage", None, _dumps(data), sync=True)

    def metric(self, step: int, values: Mapping[str, float]) -> None:
        step = _step(step)
        keys = self._metric_keys
        parts = []
        floats: dict[str, float] | None = {} if self._sinks else None
        for name, value in values.items():
            key = keys.get(name)
            if key is None:
                if not isinstance(name, str) or not _METRIC_NAME_RE.match(name):
                    raise ValueError(
                        f"metric name {name!r} must be '/'-namespaced, e.g. 'sft/loss'"
                    )
                key = keys[name] = json.dumps(name) + ":"
            x = float(value)  # also takes numpy and 1-element torch scalars
            parts.append(key + (repr(x) if math.isfinite(x) else f'"{_nonfinite(x)}"'))
            if floats is not None:
                floats[name] = x
        t = self._write("metric", step, "{" + ",".join(parts) + "}")
        if floats is not None:
            self._feed_sinks(step, t, floats)

    def add_sink(self, sink: MetricSink) -> None:
        """Also hand every later metric to ``sink`` (closed with this writer)."""
        with self._sink_lock:
            self._sinks.append(sink)

    def _feed_sinks(self, step: int, t: float, values: dict[str, float]) -> None:
        with self._sink_lock:
            for sink in list(self._sinks):
                try:
                    sink.metric(step, t, values)
                except Exception as e:  # never the stage's problem: drop the sink, say so once
                    self._drop_sink(sink, f"{type(e).__name__}: {e}")

    def _drop_sink(self, sink: MetricSink, why: str) -> None:
        self._sinks.remove(sink)
        with contextlib.suppress(Exception):  # it failed already: its first error is the news
            sink.close()
        self.alert(f"metrics to {sink.name} stopped for this stage: {why}. The event file "
                   "keeps every metric: `python -m engine export-metrics RUN_DIR "
                   "--tensorboard DIR` rebuilds the files later", code="metrics_sink")

    def progress(
        self, done: int, total: int | None = None, unit: str = "items", step: int | None = None,
        *, ok: int | None = None, rejected: int | None = None,
    ) -> None:
        """``done`` counts items processed; ``ok`` / ``rejected`` (optional) say how many of
        them were kept and refused, so a reader never shows refused items as done work."""
        if done < 0 or (total is not None and total < 0):
            raise ValueError(f"progress needs done >= 0 and total >= 0, got {done}/{total}")
        data: dict[str, Any] = {"done": int(done), "total": None if total is None else int(total),
                                "unit": unit}
        for key, n in (("ok", ok), ("rejected", rejected)):
            if n is not None:  # left out when unknown: lines stay as they were
                if n < 0:
                    raise ValueError(f"progress {key} must be >= 0, got {n}")
                data[key] = int(n)
        self._write("progress", None if step is None else _step(step), _dumps(data))

    def log(self, message: str, level: LogLevel = "info") -> None:
        if level not in _LOG_LEVELS:
            raise ValueError(f"log level {level!r} is not one of {sorted(_LOG_LEVELS)}")
        self._write("log", None, _dumps({"level": level, "message": str(message)}))

    def artifact(self, name: str, path: str | os.PathLike[str], kind: str) -> None:
        self._write("artifact", None, _dumps({"name": name, "path": os.fspath(path), "kind": kind}))

    def sample(self, kind: str, payload: Mapping[str, Any], step: int | None = None) -> None:
        data = _dumps({"kind": kind, "payload": dict(payload)})
        self._write("sample", None if step is None else _step(step), data)

    def alert(self, message: str, level: AlertLevel = "warning", code: str | None = None) -> None:
        if level not in _ALERT_LEVELS:
            raise ValueError(f"alert level {level!r} is not one of {sorted(_ALERT_LEVELS)}")
        self._write("alert", None, _dumps({"level": level, "code": code, "message": str(message)}))

    def close(self) -> None:
        with self._sink_lock:
            for sink in list(self._sinks):
                try:
                    sink.close()
                    self._sinks.remove(sink)
                except Exception as e:
                    self._drop_sink(sink, f"closing failed: {type(e).__name__}: {e}")
        with self._lock:
            if self._fh is None:
                return
            try:
                os.fsync(self._fh.fileno())
            finally:
                self._fh.close()
                self._fh = None

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, kind: str, step: int | None, data_json: str, sync: bool = False) -> float:
        """Write one line; returns its ``t``."""
        step_json = "null" if step is None else str(step)
        with self._lock:
            if self._fh is None:
                raise ValueError(f"EventWriter for {self.path} is closed")
            # seq and t are taken under the lock, so both rise together down the file.
            t = time.time()
            line = (
                f'{self._prefix}{self._seq},"t":{t!r}{self._who}{kind}",'
                f'"step":{step_json},"data":{data_json}}}\n'
            ).encode()
            view = memoryview(line)
            while view:  # a regular file takes it in one write; loop only to be correct
                view = view[self._fh.write(view) :]
            self._seq += 1
            if sync:
                os.fsync(self._fh.fileno())
        return t


def _step(step: int) -> int:
    if isinstance(step, bool) or not isinstance(step, int):
        step = int(step)
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return step


class NullEventWriter:
    """Same methods as EventWriter, writes nothing: for ranks that do not report."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def stage(self, *args: object, **kwargs: object) -> None:
        pass

    def metric(self, *args: object, **kwargs: object) -> None:
        pass

    def progress(self, *args: object, **kwargs: object) -> None:
        pass

    def log(self, *args: object, **kwargs: object) -> None:
        pass

    def artifact(self, *args: object, **kwargs: object) -> None:
        pass

    def sample(self, *args: object, **kwargs: object) -> None:
        pass

    def alert(self, *args: object, **kwargs: object) -> None:
        pass

    def add_sink(self, *args: object, **kwargs: object) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> NullEventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


# --- reading -------------------------------------------------------------------------------

_READ_CHUNK = 8 * 1024 * 1024


def parse_lines(buf: bytes, last_seq: int = -1) -> tuple[list[Event], int, int, int]:
    """Parse the complete lines at the front of ``buf`` (bytes fetched by a tail, say).

    Returns ``(events, consumed_bytes, new_last_seq, bad)``: ``consumed_bytes`` ends just after
    the last newline (a torn tail is left for the next call), records with ``seq <= last_seq``
    are dropped as duplicates, and ``bad`` counts complete lines that broke the contract
    (skipped). Blank lines are skipped and not counted.
    """
    end = buf.rfind(b"\n")
    if end < 0:
        return [], 0, last_seq, 0
    events: list[Event] = []
    bad = 0
    for line in buf[:end].split(b"\n"):
        if not line.strip():
            continue
        try:
            event = EVENT_ADAPTER.validate_json(line)
        except ValidationError:
            bad += 1
            continue
        if event.seq <= last_seq:
            continue
        last_seq = event.seq
        events.append(event)
    return events, end + 1, last_seq, bad


class EventReader:
    """Reads one event file incrementally, from a byte offset, one complete line at a time.

    Keep ``offset`` and ``last_seq`` to resume later (a reopened window, a new SSH session).
    A missing file reads as empty (the writer has not started yet).
    """

    def __init__(self, path: str | os.PathLike[str], offset: int = 0, last_seq: int = -1) -> None:
        self.path = Path(path)
        self.offset = offset
        self.last_seq = last_seq
        self.bad_lines = 0

    def read_new(self) -> list[Event]:
        """Every complete record appended since the last call, oldest first."""
        try:
            with open(self.path, "rb") as fh:
                return self._read_from(fh)
        except FileNotFoundError:
            return []

    def _read_from(self, fh: Any) -> list[Event]:
        if os.fstat(fh.fileno()).st_size < self.offset:
            # Writers only ever cut bytes past the last newline, which no reader consumed, so a
            # file shorter than our offset was replaced. Start over; seq still drops repeats.
            self.offset = 0
        fh.seek(self.offset)
        events: list[Event] = []
        pending = b""
        while chunk := fh.read(_READ_CHUNK):
            buf = pending + chunk if pending else chunk
            new, used, self.last_seq, bad = parse_lines(buf, self.last_seq)
            events.extend(new)
            self.bad_lines += bad
            self.offset += used
            pending = buf[used:]
        return events


def read_events(path: str | os.PathLike[str]) -> list[Event]:
    """All complete, valid records of one file (bad lines skipped)."""
    return EventReader(path).read_new()


def event_files(events_dir: str | os.PathLike[str]) -> list[Path]:
    """The ``*.jsonl`` event files of a run's ``events/`` folder, sorted by name."""
    d = Path(events_dir)
    return sorted(d.glob("*.jsonl")) if d.is_dir() else []


def count_events(events_dir: str | os.PathLike[str]) -> dict[str, dict[str, int]]:
    """``{"sft.0": {"metric": 120, "stage": 2, ...}, ...}`` per file (for ``engine status``)."""
    return {
        p.name.removesuffix(".jsonl"): dict(Counter(e.kind for e in read_events(p)))
        for p in event_files(events_dir)
    }


def merge_streams(streams: Iterable[Iterable[Event]]) -> list[Event]:
    """Records from several files in one timeline: by ``t``, ties broken by (stage, rank, seq)."""
    return sorted(
        (e for stream in streams for e in stream), key=lambda e: (e.t, e.stage, e.rank, e.seq)
    )


# --- command line: a summary of event files -------------------------------------------------


def summarize(path: str | os.PathLike[str]) -> dict[str, Any]:
    reader = EventReader(path)
    events = reader.read_new()
    stages = [e for e in events if isinstance(e, StageEvent)]
    metrics = [e for e in events if isinstance(e, MetricEvent)]
    return {
        "file": str(path),
        "events": len(events),
        "bad_lines": reader.bad_lines,
        "seq": [events[0].seq, events[-1].seq] if events else None,
        "kinds": dict(Counter(e.kind for e in events)),
        "last_status": stages[-1].data.status if stages else None,
        "last_metric_step": metrics[-1].step if metrics else None,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print("usage: python -m engine.events FILE_OR_EVENTS_DIR ...  (one JSON summary per file)")
        return 0 if args else 2
    files: list[Path] = []
    for arg in args:
        p = Path(arg)
        files.extend(event_files(p) if p.is_dir() else [p])
    for p in files:
        print(json.dumps(summarize(p)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
