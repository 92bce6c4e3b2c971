"""Contract tests for engine/events.py: the JSONL event stream the engine writes and the app tails."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from engine.events import (
    EVENT_ADAPTER,
    EVENT_KINDS,
    EVENT_VERSION,
    AlertEvent,
    ArtifactEvent,
    EventReader,
    EventWriter,
    LogEvent,
    MetricEvent,
    NullEventWriter,
    ProgressEvent,
    SampleEvent,
    StageEvent,
    count_events,
    dump_line,
    main,
    merge_streams,
    parse_event,
    parse_lines,
    read_events,
)

WIRE_KEYS = ["v", "seq", "t", "stage", "rank", "kind", "step", "data"]


def write_one_of_each(w: EventWriter) -> None:
    w.stage("started")
    w.metric(40, {"sft/loss": 1.23, "sft/lr": 1e-5})
    w.progress(3, total=10, unit="tasks", step=7)
    w.log("loaded 3 shards", level="warning")
    w.artifact("ckpt-40", Path("/runs/r1/checkpoints/sft/40"), kind="checkpoint")
    w.sample("rollout", {"prompt": "p", "reward": 0.5, "tests": [1, 0]}, step=40)
    w.alert("reward collapsed", level="error", code="rl.collapse")
    w.stage("completed", reason=None, summary={"steps": 40, "loss": 1.0})


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


# --- records round-trip ------------------------------------------------------------------


def test_every_kind_round_trips_writer_to_file_to_reader_with_typed_fields(tmp_path):
    with EventWriter.for_run(tmp_path, "sft", rank=2) as w:
        write_one_of_each(w)

    events = read_events(tmp_path / "sft.2.jsonl")

    assert [e.kind for e in events] == [
        "stage", "metric", "progress", "log", "artifact", "sample", "alert", "stage"
    ]  # fmt: skip
    assert {e.kind for e in events} == set(EVENT_KINDS)
    assert all(e.v == EVENT_VERSION and e.stage == "sft" and e.rank == 2 for e in events)
    started, metric, progress, log, artifact, sample, alert, done = events
    assert isinstance(started, StageEvent) and started.data.status == "started"
    assert started.data.reason is None and started.data.summary is None
    assert isinstance(metric, MetricEvent) and metric.step == 40
    assert metric.data == {"sft/loss": 1.23, "sft/lr": 1e-5}
    assert isinstance(progress, ProgressEvent) and progress.step == 7
    assert (progress.data.done, progress.data.total, progress.data.unit) == (3, 10, "tasks")
    assert isinstance(log, LogEvent)
    assert (log.data.level, log.data.message) == ("warning", "loaded 3 shards")
    assert isinstance(artifact, ArtifactEvent)
    assert artifact.data.path == "/runs/r1/checkpoints/sft/40"
    assert (artifact.data.name, artifact.data.kind) == ("ckpt-40", "checkpoint")
    assert isinstance(sample, SampleEvent) and sample.step == 40
    assert sample.data.kind == "rollout" and sample.data.payload["tests"] == [1, 0]
    assert isinstance(alert, AlertEvent)
    assert (alert.data.level, alert.data.code) == ("error", "rl.collapse")
    assert alert.data.message == "reward collapsed"
    assert isinstance(done, StageEvent) and done.data.summary == {"steps": 40, "loss": 1.0}
    assert all(e.step is None for e in (started, log, artifact, alert, done))


def test_a_metric_line_has_exactly_the_wire_shape_with_values_directly_as_data(tmp_path):
    path = tmp_path / "sft.0.jsonl"
    with EventWriter(path, "sft") as w:
        w.metric(40, {"sft/loss": 1.23})

    (line,) = lines_of(path)
    raw = json.loads(line)

    assert list(raw) == WIRE_KEYS
    assert {k: raw[k] for k in ("v", "seq", "stage", "rank", "kind", "step", "data")} == {
        "v": 1, "seq": 0, "stage": "sft", "rank": 0, "kind": "metric", "step": 40,
        "data": {"sft/loss": 1.23},
    }  # fmt: skip
    assert isinstance(raw["t"], float)
    assert b" " not in line  # compact separators


def test_every_written_line_validates_against_the_models_and_dumps_back_to_the_same_record(
    tmp_path,
):
    path = tmp_path / "verify.0.jsonl"
    with EventWriter(path, "verify") as w:
        write_one_of_each(w)
        w.metric(1, {"verify/x": float("nan")})

    for line in lines_of(path):
        assert list(json.loads(line)) == WIRE_KEYS
        event = parse_event(line)  # raises if the writer drifted from the contract
        again = parse_event(dump_line(event))
        assert dump_line(again) == dump_line(event)  # (not ==: NaN != NaN)
        assert type(again) is type(event) and again.seq == event.seq
        assert list(json.loads(dump_line(event))) == WIRE_KEYS


def test_nan_and_infinite_metric_values_round_trip_as_floats_via_strings(tmp_path):
    path = tmp_path / "rl.0.jsonl"
    with EventWriter(path, "rl") as w:
        w.metric(1, {"rl/a": float("nan"), "rl/b": float("inf"), "rl/c": float("-inf"), "rl/d": 2})

    (line,) = lines_of(path)
    assert json.loads(line)["data"] == {
        "rl/a": "NaN",
        "rl/b": "Infinity",
        "rl/c": "-Infinity",
        "rl/d": 2.0,
    }
    (event,) = read_events(path)
    values = event.data
    assert all(isinstance(v, float) for v in values.values())
    assert math.isnan(values["rl/a"])
    assert values["rl/b"] == math.inf and values["rl/c"] == -math.inf and values["rl/d"] == 2.0


def test_nan_inside_a_free_form_summary_is_written_as_valid_json(tmp_path):
    path = tmp_path / "eval.0.jsonl"
    with EventWriter(path, "eval") as w:
        w.stage("completed", summary={"pass@1": float("nan"), "per_task": [1.0, float("inf")]})

    (line,) = lines_of(path)
    json.loads(line, parse_constant=lambda c: pytest.fail(f"bare {c} is not JSON"))
    (event,) = read_events(path)
    assert event.data.summary == {"pass@1": "NaN", "per_task": [1.0, "Infinity"]}


def test_writer_rejects_what_the_contract_would_reject_before_writing_anything(tmp_path):
    path = tmp_path / "sft.0.jsonl"
    with EventWriter(path, "sft") as w:
        with pytest.raises(ValueError, match="namespaced"):
            w.metric(1, {"loss": 1.0})
        with pytest.raises(ValueError, match="status"):
            w.stage("done")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="level"):
            w.log("x", level="fatal")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="step"):
            w.metric(-1, {"sft/loss": 1.0})
    assert path.read_bytes() == b""
    with pytest.raises(ValueError, match="stage name"):
        EventWriter.for_run(tmp_path, "../evil")


def test_the_models_reject_unknown_kinds_fields_and_versions():
    good = {"v": 1, "seq": 0, "t": 1.0, "stage": "sft", "rank": 0, "kind": "log", "step": None,
            "data": {"level": "info", "message": "hi"}}  # fmt: skip
    EVENT_ADAPTER.validate_python(good)
    for bad in (
        {**good, "kind": "heartbeat"},
        {**good, "v": 2},
        {**good, "extra": 1},
        {**good, "seq": -1},
        {**good, "kind": "metric", "step": 1, "data": {"loss": 1.0}},  # not namespaced
        {**good, "kind": "metric", "step": None, "data": {"sft/loss": 1.0}},  # metric needs a step
    ):
        with pytest.raises(ValidationError):
            EVENT_ADAPTER.validate_python(bad)


# --- seq ---------------------------------------------------------------------------------


def test_seq_starts_at_zero_and_rises_by_one_per_line(tmp_path):
    path = tmp_path / "sft.0.jsonl"
    with EventWriter(path, "sft") as w:
        write_one_of_each(w)
    assert [json.loads(line)["seq"] for line in lines_of(path)] == list(range(8))


def test_a_reopened_writer_continues_seq_from_the_last_line(tmp_path):
    with EventWriter.for_run(tmp_path, "sft") as w:
        write_one_of_each(w)
    with EventWriter.for_run(tmp_path, "sft") as w:
        assert w.next_seq == 8
        w.stage("started", reason="resumed")

    events = read_events(tmp_path / "sft.0.jsonl")
    assert [e.seq for e in events] == list(range(9))
    assert events[-1].data.reason == "resumed"


def test_a_writer_reopened_after_a_torn_tail_truncates_it_and_continues(tmp_path):
    path = tmp_path / "sft.0.jsonl"
    with EventWriter(path, "sft") as w:
        w.metric(1, {"sft/loss": 1.0})
        w.metric(2, {"sft/loss": 0.9})
    complete = path.read_bytes()
    with open(path, "ab") as f:  # a writer killed mid-line
        f.write(b'{"v":1,"seq":2,"t":1.0,"stage":"sft","rank":0,"kind":"met')

    with EventWriter(path, "sft") as w:
        assert path.read_bytes() == complete
        w.metric(3, {"sft/loss": 0.8})

    events = read_events(path)
    assert [(e.seq, e.step) for e in events] == [(0, 1), (1, 2), (2, 3)]
    assert path.read_bytes().startswith(complete)


def test_resume_finds_the_last_seq_behind_a_long_line_and_a_garbage_line(tmp_path):
    path = tmp_path / "tasks.0.jsonl"
    with EventWriter(path, "tasks") as w:
        for i in range(5):
            w.log(f"line {i}")
        w.sample("task", {"statement": "x" * 300_000})  # longer than one backward-read chunk
    with open(path, "ab") as f:
        f.write(b"not json at all\n" + b"y" * 200_000)  # garbage line, then a long torn tail

    with EventWriter(path, "tasks") as w:
        assert w.next_seq == 6
        w.log("after")

    reader = EventReader(path)
    assert [e.seq for e in reader.read_new()] == list(range(7))
    assert reader.bad_lines == 1


def test_four_threads_writing_a_thousand_events_each_give_seq_0_to_3999_without_gaps(tmp_path):
    path = tmp_path / "verify.0.jsonl"
    w = EventWriter(path, "verify")
    barrier = threading.Barrier(4)

    def work(tid: int) -> None:
        barrier.wait()
        for i in range(1000):
            if i % 2:
                w.metric(i, {f"verify/thread{tid}": float(i)})
            else:
                w.log(f"thread {tid} item {i}")

    threads = [threading.Thread(target=work, args=(tid,)) for tid in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.close()

    lines = lines_of(path)
    assert len(lines) == 4000
    events = [parse_event(line) for line in lines]
    assert [e.seq for e in events] == list(range(4000))
    assert all(a.t <= b.t for a, b in zip(events, events[1:], strict=False))


# --- reading incrementally ---------------------------------------------------------------


def test_reader_resumes_from_its_byte_offset_across_many_appends_and_gets_each_event_once(
    tmp_path,
):
    path = tmp_path / "rl.0.jsonl"
    reader = EventReader(path)
    assert reader.read_new() == []  # the writer has not started yet
    seen: list[int] = []
    with EventWriter(path, "rl") as w:
        for batch in range(20):
            for i in range(batch):
                w.metric(i, {"rl/reward/mean": float(i)})
            seen.extend(e.seq for e in reader.read_new())
            assert reader.offset == path.stat().st_size

    assert seen == list(range(sum(range(20))))
    # A new reader from the saved position sees nothing again; from zero, with last_seq, neither.
    assert EventReader(path, offset=reader.offset, last_seq=reader.last_seq).read_new() == []
    assert EventReader(path, offset=0, last_seq=reader.last_seq).read_new() == []


def test_a_torn_last_line_is_not_returned_until_complete_then_returned_once(tmp_path):
    path = tmp_path / "sft.0.jsonl"
    with EventWriter(path, "sft") as w:
        w.metric(1, {"sft/loss": 1.0})
    line = lines_of(path)[0].replace(b'"seq":0', b'"seq":1').replace(b'"step":1', b'"step":2')
    half = len(line) // 2

    reader = EventReader(path)
    with open(path, "ab") as f:
        f.write(line[:half])
    assert [e.seq for e in reader.read_new()] == [0]
    offset_before = reader.offset
    assert reader.read_new() == []
    assert reader.offset == offset_before

    with open(path, "ab") as f:
        f.write(line[half:] + b"\n")
    (event,) = reader.read_new()
    assert (event.seq, event.step, event.data) == (1, 2, {"sft/loss": 1.0})
    assert reader.read_new() == []
    assert reader.bad_lines == 0


def test_parse_lines_consumes_only_complete_lines():
    line = dump_line(parse_event(_log_line(0)))
    events, used, last, bad = parse_lines(line + line[:10], last_seq=-1)
    assert (len(events), used, last, bad) == (1, len(line), 0, 0)
    assert parse_lines(line[:-1]) == ([], 0, -1, 0)


def test_duplicates_by_seq_are_dropped_when_the_same_bytes_arrive_twice():
    buf = b"".join(_log_line(seq) for seq in range(5))

    first, used, last, _ = parse_lines(buf)
    again, used_again, last_again, bad = parse_lines(buf, last_seq=last)
    overlap, _, last_overlap, _ = parse_lines(buf[len(_log_line(0)) * 3 :] + _log_line(5), last)

    assert [e.seq for e in first] == [0, 1, 2, 3, 4] and last == 4
    assert again == [] and used_again == used and last_again == 4 and bad == 0
    assert [e.seq for e in overlap] == [5] and last_overlap == 5


def test_a_garbage_line_in_the_middle_is_counted_and_the_lines_after_it_are_read(tmp_path):
    path = tmp_path / "sft.0.jsonl"
    unknown_kind = _log_line(2).replace(b'"kind":"log"', b'"kind":"heartbeat"')
    path.write_bytes(
        _log_line(0) + _log_line(1) + b"{oops\n" + unknown_kind + _log_line(3) + _log_line(4)
    )

    reader = EventReader(path)
    assert [e.seq for e in reader.read_new()] == [0, 1, 3, 4]
    assert reader.bad_lines == 2
    assert reader.offset == path.stat().st_size


def test_count_events_reports_kinds_per_writer_file(tmp_path):
    with EventWriter.for_run(tmp_path, "sft", 0) as w:
        write_one_of_each(w)
    with EventWriter.for_run(tmp_path, "sft", 1) as w:
        w.metric(1, {"sft/loss": 2.0})
        w.metric(2, {"sft/loss": 1.0})
    (tmp_path / "notes.txt").write_text("not an event file")

    counts = count_events(tmp_path)

    assert counts == {
        "sft.0": {"stage": 2, "metric": 1, "progress": 1, "log": 1, "artifact": 1, "sample": 1,
                  "alert": 1},
        "sft.1": {"metric": 2},
    }  # fmt: skip
    assert count_events(tmp_path / "missing") == {}


def test_merge_streams_orders_by_time_then_stage_rank_and_seq():
    def ev(stage: str, rank: int, seq: int, t: float):
        return parse_event(_log_line(seq, t=t, stage=stage, rank=rank))

    a = [ev("sft", 0, 0, 1.0), ev("sft", 0, 1, 3.0)]
    b = [ev("sft", 1, 0, 1.0), ev("sft", 1, 1, 2.0)]
    c = [ev("rl", 0, 0, 3.0)]

    merged = merge_streams([a, b, c])

    assert [(e.stage, e.rank, e.seq) for e in merged] == [
        ("sft", 0, 0), ("sft", 1, 0), ("sft", 1, 1), ("rl", 0, 0), ("sft", 0, 1)
    ]  # fmt: skip


def test_null_writer_takes_every_call_and_writes_nothing(tmp_path):
    with NullEventWriter(tmp_path / "x.jsonl", "sft", 3) as w:
        write_one_of_each(w)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_a_closed_writer_refuses_to_write(tmp_path):
    w = EventWriter.for_run(tmp_path, "sft")
    w.close()
    w.close()  # closing twice is fine
    with pytest.raises(ValueError, match="closed"):
        w.log("late")


def test_cli_prints_one_summary_per_event_file(tmp_path, capsys):
    with EventWriter.for_run(tmp_path, "sft") as w:
        write_one_of_each(w)
    with open(tmp_path / "sft.0.jsonl", "ab") as f:
        f.write(b"garbage\n")

    assert main([str(tmp_path)]) == 0

    (summary,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert summary["events"] == 8 and summary["bad_lines"] == 1 and summary["seq"] == [0, 7]
    assert summary["last_status"] == "completed" and summary["last_metric_step"] == 40


def _log_line(seq: int, t: float = 1.0, stage: str = "sft", rank: int = 0) -> bytes:
    record = {"v": 1, "seq": seq, "t": t, "stage": stage, "rank": rank, "kind": "log",
              "step": None, "data": {"level": "info", "message": f"m{seq}"}}  # fmt: skip
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"
