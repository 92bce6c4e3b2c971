"""Metrics out of the event stream: CSV, TensorBoard and Weights & Biases.

Every metric a stage reports is a ``metric`` event in ``events/<stage>.<rank>.jsonl``
(engine/events.py). This module writes the same numbers where other tools read them, two ways:

- after the fact, from a run dir's event files (on the cluster or on a copy)::

      python -m engine export-metrics RUN_DIR --csv metrics.csv --tensorboard tb/

  (either or both; ``export_run``). The desktop's Monitor writes its "Export CSV…" through
  ``write_metrics_csv`` too, so both files have the same columns, rows and number text;
- live, while the stages run: ``attach_metric_sinks`` (called once per stage by the runner)
  hangs a ``TensorBoardSink`` and, where ``run.metrics.wandb.enabled``, a ``WandbSink`` on the
  stage's ``EventWriter``; every ``ctx.events.metric(...)`` reaches them, no stage knows.

Decisions:

- CSV: one tidy row per value, columns ``run, stage, rank, metric, step, time, value``.
  ``run`` is the run dir's name (the run id) for the CLI and the Monitor's run name, so files
  of several runs concatenate; ``time`` is the event's unix time. Rows are grouped by
  (run, stage, rank as a number, metric), in the order the events were written within a group.
  Numbers are Python's shortest round-trip text, and non-finite values the float words
  ``nan``, ``inf`` and ``-inf`` (pandas, numpy and ``float()`` read them as floats; the event
  files' JSON strings ``"NaN"`` / ``"Infinity"`` would be read as text).
- TensorBoard: one TensorBoard run per writer, ``<dir>/<stage>.<rank>/``, like the event files:
  a live process writes only its own folder (no file shared across nodes), TensorBoard's run
  picker switches ranks and shards on and off, and the tags are the metric keys as they are
  (``sft/loss``): they carry their stage already, TensorBoard groups charts by the part before
  the first ``/`` and draws every rank of one metric on one chart. Each metric event becomes
  one TensorBoard event at its ``step`` with its ``t`` as wall time; NaN and inf are written as
  the float scalars they are. Written with tensorboardX's ``FileWriter`` (protobuf only, no
  torch needed; it imports torch where that is installed). An export replaces the event files
  of each ``<stage>.<rank>/`` it writes, so exporting twice gives the same files, not doubled
  points; other folders in ``<dir>`` are left alone.
- Live TensorBoard is on by default (``run.metrics.tensorboard``), every rank into
  ``<run-dir>/tensorboard/<stage>.<rank>/``, opened at the stage's first metric. Where
  tensorboardX is not installed the stage logs one warning event and goes on.
- W&B is off by default and only on request (``run.metrics.wandb``), from rank 0 only: one W&B
  run per stage (named ``<run-id>/<stage>``, grouped by run id, id derived from the run dir so
  a resumed stage continues it), the run's config as its config, the step as the x axis
  (``step``, a custom step metric, so repeated steps are kept, not dropped). Offline mode (the
  default) writes ``<run-dir>/wandb/offline-run-*`` and needs no network; ``wandb sync`` uploads
  it. The API key is never in the config: wandb reads ``WANDB_API_KEY`` from the environment.
- A sink that fails (a full disk, a lost W&B connection, a missing package) is dropped with one
  warning alert in the stage's event file (engine/events.py); the stage never stops for it.

Left out: other trackers (MLflow, Comet), histograms or text, W&B from ranks other than 0,
and pruning ``<dir>/<stage>.<rank>/`` folders whose event files are gone.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.events import EventReader, MetricEvent, event_files
from engine.rundir import TENSORBOARD, RunDir

if TYPE_CHECKING:
    from engine.events import Event, EventWriter
    from engine.schema import PipelineConfig

CSV_COLUMNS = ("run", "stage", "rank", "metric", "step", "time", "value")
TB_FLUSH_SECS = 10  # a live TensorBoard sees new points within this
_TB_FILE_GLOB = "events.out.tfevents.*"


class MetricsExportError(Exception):
    """An export that cannot be done as asked; the message says what to do."""


# --- series: the points of one (run, stage, rank, metric) -------------------------------------


@dataclass
class MetricSeries:
    """One metric's points from one writer (stage, rank) of one run, in written order."""

    run: str
    stage: str
    rank: int
    metric: str
    steps: list[int] | Sequence[float] = field(default_factory=list)
    times: list[float] | Sequence[float] = field(default_factory=list)
    values: list[float] | Sequence[float] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, int, str]:
        return (self.run, self.stage, self.rank, self.metric)

    def __len__(self) -> int:
        return len(self.values)


def series_from_events(events: Iterable[Event], run: str) -> list[MetricSeries]:
    """The metric events among ``events`` (of one run, any files) as series, in first-seen order."""
    out: dict[tuple[str, int, str], MetricSeries] = {}
    for e in events:
        if not isinstance(e, MetricEvent):
            continue
        for name, value in e.data.items():
            s = out.get((e.stage, e.rank, name))
            if s is None:
                s = out[(e.stage, e.rank, name)] = MetricSeries(run, e.stage, e.rank, name)
            s.steps.append(e.step)
            s.times.append(e.t)
            s.values.append(value)
    return list(out.values())


@dataclass
class RunMetrics:
    """What ``read_run_metrics`` found in a run dir."""

    run: str
    series: list[MetricSeries]
    files: int
    events: int  # metric events
    bad_lines: int

    @property
    def points(self) -> int:
        return sum(len(s) for s in self.series)


def read_run_metrics(run_dir: str | os.PathLike[str], run: str | None = None) -> RunMetrics:
    """Every metric of a run dir's ``events/*.jsonl``. ``run`` defaults to the dir's name.

    Raises ``MetricsExportError`` when there is no run dir, no event file or no metric event.
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise MetricsExportError(
            f"no run dir at {root}; give the folder that holds events/ (on the cluster "
            "<workdir>/runs/<run-id>), or copy it here first")
    events_dir = RunDir(root).events_dir
    files = event_files(events_dir)
    if not files:
        raise MetricsExportError(
            f"{root} has no event files (events/*.jsonl); is it a run dir? Stages write them "
            "once they start (`python -m engine status --run-dir DIR` shows what ran)")
    name = run or root.resolve().name
    events: list[Event] = []
    bad = 0
    for path in files:
        reader = EventReader(path)
        events.extend(e for e in reader.read_new() if isinstance(e, MetricEvent))
        bad += reader.bad_lines
    if not events:
        raise MetricsExportError(
            f"no metric events in the {len(files)} event file(s) of {events_dir}: no stage "
            "has reported a metric yet; export again once one has")
    return RunMetrics(name, series_from_events(events, name), len(files), len(events), bad)


def _order(series: Iterable[MetricSeries]) -> list[MetricSeries]:
    # Stable: blocks of one key keep their order, so points stay in written order.
    return sorted(series, key=lambda s: s.key)


# --- CSV -----------------------------------------------------------------------------------


def _num(x: float) -> str:
    x = float(x)
    return repr(x) if math.isfinite(x) else ("nan" if x != x else ("inf" if x > 0 else "-inf"))


def _as_list(xs: Sequence[float]) -> Sequence[float]:
    return xs.tolist() if hasattr(xs, "tolist") else xs  # numpy arrays: Python numbers at once


def write_metrics_csv(path: str | os.PathLike[str], series: Iterable[MetricSeries]) -> int:
    """Write ``series`` as tidy rows (``CSV_COLUMNS``, module docstring); returns the row count.

    The file is replaced whole (written beside it, then renamed), never appended to.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    rows = 0
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(CSV_COLUMNS)
            for s in _order(series):
                head = (s.run, s.stage, s.rank, s.metric)
                for step, t, v in zip(*map(_as_list, (s.steps, s.times, s.values)), strict=True):
                    w.writerow((*head, int(step), _num(t), _num(v)))
                    rows += 1
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return rows


# --- TensorBoard ---------------------------------------------------------------------------


def _tensorboard_writer(logdir: Path, flush_secs: int) -> Any:
    try:
        import tensorboardX
    except ImportError as e:
        raise MetricsExportError(
            f"TensorBoard files need the tensorboardX package ({e}); `pip install tensorboardX` "
            "where this runs, or set run.metrics.tensorboard=false") from None
    logdir.mkdir(parents=True, exist_ok=True)
    return tensorboardX.FileWriter(str(logdir), flush_secs=flush_secs)


def _scalars(values: Mapping[str, float]) -> Any:
    from tensorboardX.proto.summary_pb2 import Summary

    return Summary(value=[Summary.Value(tag=k, simple_value=float(v)) for k, v in values.items()])


class TensorBoardSink:
    """Metrics into one TensorBoard run folder (``<dir>/<stage>.<rank>/``), one event each.

    The folder and its event file are made at the first metric (a stage without metrics
    leaves no folder). Used live by the runner and by ``write_tensorboard``.
    """

    name = "TensorBoard"

    def __init__(self, logdir: str | os.PathLike[str], flush_secs: int = TB_FLUSH_SECS) -> None:
        self.logdir = Path(logdir)
        self._flush_secs = flush_secs
        self._writer: Any = None

    def metric(self, step: int, t: float, values: Mapping[str, float]) -> None:
        if self._writer is None:
            self._writer = _tensorboard_writer(self.logdir, self._flush_secs)
        self._writer.add_summary(_scalars(values), global_step=int(step), walltime=float(t))

    def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()


def write_tensorboard(logdir: str | os.PathLike[str],
                      series: Iterable[MetricSeries]) -> dict[str, int]:
    """One TensorBoard run per (stage, rank) under ``logdir``, replacing its event files.

    -> points written per run folder (``{"sft.0": 120, ...}``). Series of several runs
    (``run`` differs) are refused: give each run its own ``logdir``.
    """
    groups: dict[tuple[str, int], list[MetricSeries]] = {}
    runs = set()
    for s in _order(series):
        groups.setdefault((s.stage, s.rank), []).append(s)
        runs.add(s.run)
    if len(runs) > 1:
        raise MetricsExportError(f"series of {len(runs)} runs ({', '.join(sorted(runs))}); "
                                 "write each run's TensorBoard files into a folder of its own")
    root = Path(logdir)
    counts: dict[str, int] = {}
    for (stage, rank), group in sorted(groups.items()):
        folder = root / f"{stage}.{rank}"
        for old in folder.glob(_TB_FILE_GLOB):  # idempotent: an export replaces, never adds
            old.unlink()
        # One TensorBoard event per engine event: the points of one (step, time) together.
        points: dict[tuple[int, float], dict[str, float]] = {}
        for s in group:
            for step, t, v in zip(s.steps, s.times, s.values, strict=True):
                points.setdefault((int(step), float(t)), {})[s.metric] = float(v)
        sink = TensorBoardSink(folder)
        try:
            for (step, t), values in sorted(points.items(), key=lambda kv: kv[0][1]):
                sink.metric(step, t, values)
        finally:
            sink.close()
        counts[f"{stage}.{rank}"] = sum(len(s) for s in group)
    return counts


# --- after the fact: python -m engine export-metrics --------------------------------------


def export_run(run_dir: str | os.PathLike[str], csv_path: str | os.PathLike[str] | None = None,
               tensorboard_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Export a run dir's metrics to a CSV file and/or TensorBoard folder; -> counts."""
    if csv_path is None and tensorboard_dir is None:
        raise MetricsExportError("nothing to write: give --csv PATH, --tensorboard DIR or both")
    if tensorboard_dir is not None and importlib.util.find_spec("tensorboardX") is None:
        raise MetricsExportError("--tensorboard needs the tensorboardX package: "
                                 "`pip install tensorboardX` (or export --csv only)")
    found = read_run_metrics(run_dir)
    out: dict[str, Any] = {"run": found.run, "event_files": found.files,
                           "metric_events": found.events, "series": len(found.series),
                           "points": found.points, "bad_lines": found.bad_lines}
    if csv_path is not None:
        out["csv"] = {"path": str(csv_path), "rows": write_metrics_csv(csv_path, found.series)}
    if tensorboard_dir is not None:
        out["tensorboard"] = {"dir": str(tensorboard_dir),
                              "runs": write_tensorboard(tensorboard_dir, found.series)}
    return out


def main(args: Any) -> int:
    """``python -m engine export-metrics RUN_DIR [--csv PATH] [--tensorboard DIR]``."""
    import sys

    try:
        out = export_run(args.run_dir, args.csv, args.tensorboard)
    except MetricsExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{out['run']}: {out['points']} values of {out['series']} series from "
          f"{out['metric_events']} metric events in {out['event_files']} event file(s)"
          + (f" ({out['bad_lines']} bad lines skipped)" if out["bad_lines"] else ""))
    if "csv" in out:
        print(f"  CSV: {out['csv']['rows']} rows -> {out['csv']['path']}")
    if "tensorboard" in out:
        runs = out["tensorboard"]["runs"]
        print(f"  TensorBoard: {len(runs)} run folder(s) ({', '.join(runs)}) -> "
              f"{out['tensorboard']['dir']}  (view: tensorboard --logdir "
              f"{out['tensorboard']['dir']})")
    return 0


def add_arguments(p: Any) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run dir (holds events/)")
    p.add_argument("--csv", metavar="PATH", help="write tidy rows: run,stage,rank,metric,step,"
                   "time,value (replaced if it exists)")
    p.add_argument("--tensorboard", metavar="DIR", help="write one TensorBoard run per "
                   "<stage>.<rank> under DIR (their event files replaced)")


# --- W&B -----------------------------------------------------------------------------------


def wandb_run_id(run_root: Path, stage: str, rank: int) -> str:
    """A W&B run id stable for one (run dir, stage, rank): a rerun resumes the same W&B run."""
    digest = hashlib.sha1(f"{run_root.resolve()}|{stage}|{rank}".encode()).hexdigest()[:10]
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", run_root.resolve().name)[:40].strip("-") or "run"
    return f"{slug}-{stage}-{digest}"


class WandbSink:
    """Metrics of one stage into one W&B run (opened at the first metric, module docstring)."""

    name = "W&B"

    def __init__(self, settings: Any, run_root: Path, stage: str, rank: int,
                 config: Mapping[str, Any] | None = None) -> None:
        self.settings = settings  # engine.schema.WandbSettings
        self.run_root = Path(run_root)
        self.stage, self.rank = stage, rank
        self.config = dict(config or {})
        self._run: Any = None

    def open(self) -> Any:
        import wandb

        run_id = self.run_root.resolve().name
        self._run = wandb.init(
            project=self.settings.project, entity=self.settings.entity or None,
            mode=self.settings.mode, dir=str(self.run_root),
            id=wandb_run_id(self.run_root, self.stage, self.rank), resume="allow",
            name=f"{run_id}/{self.stage}", group=run_id, job_type=self.stage,
            config={"stage": self.stage, "rank": self.rank, "pipeline": self.config},
            reinit="create_new",  # its own Run object: never the user's wandb.run
            # No console capture (the engine's logs are its own), no git probing of the bundle.
            settings=wandb.Settings(silent=True, console="off", disable_git=True,
                                    save_code=False),
        )
        self._run.define_metric("step")
        self._run.define_metric("*", step_metric="step")
        return self._run

    def metric(self, step: int, t: float, values: Mapping[str, float]) -> None:
        if self._run is None:
            self.open()
        self._run.log({**values, "step": int(step)})

    def close(self) -> None:
        if self._run is not None:
            run, self._run = self._run, None
            run.finish()


# --- live: what the runner hangs on each stage's EventWriter --------------------------------


def attach_metric_sinks(events: EventWriter, config: PipelineConfig, run: RunDir, stage: str,
                        rank: int) -> list[Any]:
    """Add the sinks ``config.run.metrics`` asks for to one stage's writer; -> the sinks.

    A sink whose package is missing is not added: a TensorBoard left on by default logs one
    warning event, a W&B the user enabled raises one warning alert. Nothing here raises.
    """
    settings = config.run.metrics
    sinks: list[Any] = []
    if settings.tensorboard:
        if importlib.util.find_spec("tensorboardX") is None:
            events.log("TensorBoard files are not written: tensorboardX is not installed "
                       "here (pip install tensorboardX, or set run.metrics.tensorboard=false); "
                       "`python -m engine export-metrics RUN_DIR --tensorboard DIR` writes them "
                       "from the event files later", level="warning")
        else:
            sinks.append(TensorBoardSink(run.root / TENSORBOARD / f"{stage}.{rank}"))
    wb = settings.wandb
    if wb.enabled and rank == 0:
        if importlib.util.find_spec("wandb") is None:
            events.alert("run.metrics.wandb.enabled is set but the wandb package is not "
                         "installed where this stage runs; `pip install wandb` there (metrics "
                         "stay in the event files)", code="metrics_sink")
        else:
            sinks.append(WandbSink(wb, run.root, stage, rank,
                                   config.model_dump(mode="json")))
    for sink in sinks:
        events.add_sink(sink)
    return sinks


__all__ = ["CSV_COLUMNS", "MetricSeries", "MetricsExportError", "RunMetrics", "TensorBoardSink",
           "WandbSink", "attach_metric_sinks", "export_run", "read_run_metrics",
           "series_from_events", "wandb_run_id", "write_metrics_csv", "write_tensorboard"]
