"""Metrics out of the event stream (engine/metrics_export.py): CSV, TensorBoard, W&B.

    .venv/bin/python -m pytest tests/engine/test_metrics_export.py -q

Real files and real libraries: event files written by ``EventWriter``, the CLI through
``engine.__main__.main``, TensorBoard files read back with tensorboard's own
``EventAccumulator``, and a real ``python -m engine run`` of the seeds stage with the live
TensorBoard and W&B (offline) sinks on.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.__main__ import main
from engine.events import EventWriter, read_events
from engine.metrics_export import (
    CSV_COLUMNS,
    attach_metric_sinks,
    export_run,
    read_run_metrics,
    write_metrics_csv,
)
from engine.rundir import RunDir
from engine.schema import config_from_dict

REPO = Path(__file__).resolve().parents[2]
NAN, INF = float("nan"), float("inf")


def accumulate(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return acc


def make_run(root: Path) -> RunDir:
    """Two stages, two ranks of sft, NaN and +-inf among the values."""
    run = RunDir(root)
    run.create()
    with EventWriter.for_run(run.events_dir, "sft", 0) as w:
        w.stage("started")
        w.metric(0, {"sft/loss": 2.0, "sft/lr": 1e-5})
        w.log("a log line is not a metric")
        w.metric(10, {"sft/loss": 1.5, "sft/lr": 2e-5})
        w.metric(20, {"sft/loss": NAN, "sft/grad_norm": INF})
        w.stage("completed")
    with EventWriter.for_run(run.events_dir, "sft", 1) as w:
        w.metric(0, {"sft/loss": 2.5})
        w.metric(10, {"sft/loss": -INF})
    with EventWriter.for_run(run.events_dir, "rl", 0) as w:
        w.metric(1, {"rl/reward/mean": 0.25, "rl/pass_rate": 0.5})
    return run


def metric_lines(run: RunDir) -> list[tuple[str, int, int, float, dict]]:
    """(stage, rank, step, t, data) of every metric event, as written."""
    out = []
    for path in sorted(run.events_dir.glob("*.jsonl")):
        for e in read_events(path):
            if e.kind == "metric":
                out.append((e.stage, e.rank, e.step, e.t, dict(e.data)))
    return out


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


# --- the CLI: CSV ------------------------------------------------------------------------------


def test_export_metrics_writes_tidy_csv_rows_with_nonfinite_values_as_floats(tmp_path, capsys):
    run = make_run(tmp_path / "run-7")
    out = tmp_path / "m.csv"
    assert main(["export-metrics", str(run.root), "--csv", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "10 values of 6 series from 6 metric events in 3 event file(s)" in printed
    assert f"CSV: 10 rows -> {out}" in printed

    rows = list(csv.DictReader(out.open(newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    # Grouped by (stage, rank, metric), points in written order within a group.
    assert [(r["stage"], r["rank"], r["metric"]) for r in rows] == [
        ("rl", "0", "rl/pass_rate"), ("rl", "0", "rl/reward/mean"),
        ("sft", "0", "sft/grad_norm"),
        ("sft", "0", "sft/loss"), ("sft", "0", "sft/loss"), ("sft", "0", "sft/loss"),
        ("sft", "0", "sft/lr"), ("sft", "0", "sft/lr"),
        ("sft", "1", "sft/loss"), ("sft", "1", "sft/loss")]
    assert {r["run"] for r in rows} == {"run-7"}
    # Every written value comes back, at its step and time, as a float: NaN and inf included.
    want = {(s, str(rank), k, step): (t, v) for s, rank, step, t, data in metric_lines(run)
            for k, v in data.items()}
    got = {(r["stage"], r["rank"], r["metric"], int(r["step"])): (float(r["time"]),
                                                                    float(r["value"]))
           for r in rows}
    assert got.keys() == want.keys()
    for key, (t, v) in want.items():
        assert got[key][0] == t and same(got[key][1], v), key
    text = out.read_text()
    assert ",nan\n" in text and ",inf\n" in text and ",-inf\n" in text
    assert "NaN" not in text and "Infinity" not in text


def test_pandas_reads_the_csv_values_as_floats(tmp_path):
    pd = pytest.importorskip("pandas")
    run = make_run(tmp_path / "r")
    export_run(run.root, csv_path=tmp_path / "m.csv")
    df = pd.read_csv(tmp_path / "m.csv")
    assert list(df.columns) == list(CSV_COLUMNS)
    assert df["value"].dtype == "float64" and df["time"].dtype == "float64"
    assert df["step"].dtype == "int64" and df["rank"].dtype == "int64"
    loss0 = df[(df.stage == "sft") & (df["rank"] == 0) & (df.metric == "sft/loss")]
    assert loss0["value"].iloc[:2].tolist() == [2.0, 1.5] and math.isnan(loss0["value"].iloc[2])
    assert df[df.metric == "sft/grad_norm"]["value"].tolist() == [INF]
    assert df[(df["rank"] == 1)]["value"].tolist() == [2.5, -INF]


# --- the CLI: TensorBoard ----------------------------------------------------------------------


def test_export_metrics_writes_tensorboard_runs_per_stage_and_rank(tmp_path, capsys):
    run = make_run(tmp_path / "r")
    tb = tmp_path / "tb"
    assert main(["export-metrics", str(run.root), "--tensorboard", str(tb)]) == 0
    assert "TensorBoard: 3 run folder(s) (rl.0, sft.0, sft.1)" in capsys.readouterr().out
    assert sorted(p.name for p in tb.iterdir()) == ["rl.0", "sft.0", "sft.1"]

    sft0 = accumulate(tb / "sft.0")
    assert sorted(sft0.Tags()["scalars"]) == ["sft/grad_norm", "sft/loss", "sft/lr"]
    loss = sft0.Scalars("sft/loss")
    assert [s.step for s in loss] == [0, 10, 20]
    assert [s.value for s in loss[:2]] == [2.0, 1.5] and math.isnan(loss[2].value)
    assert [s.value for s in sft0.Scalars("sft/grad_norm")] == [INF]
    assert sft0.Scalars("sft/lr")[1].value == pytest.approx(2e-5)  # float32 in TensorBoard
    # Wall time is the event's own t (to float64), not the export's clock.
    written = [t for stage, rank, _, t, d in metric_lines(run) if (stage, rank) == ("sft", 0)]
    assert [s.wall_time for s in loss] == pytest.approx(written, abs=1e-6)

    sft1 = accumulate(tb / "sft.1").Scalars("sft/loss")
    assert [(s.step, s.value) for s in sft1] == [(0, 2.5), (10, -INF)]
    rl = accumulate(tb / "rl.0")
    assert sorted(rl.Tags()["scalars"]) == ["rl/pass_rate", "rl/reward/mean"]
    assert [(s.step, s.value) for s in rl.Scalars("rl/reward/mean")] == [(1, 0.25)]


def test_exporting_again_replaces_the_output_instead_of_doubling_it(tmp_path):
    run = make_run(tmp_path / "r")
    csv_path, tb = tmp_path / "m.csv", tmp_path / "tb"
    first = export_run(run.root, csv_path, tb)
    csv_before = csv_path.read_bytes()
    (tb / "other-run").mkdir()  # not ours: left alone
    second = export_run(run.root, csv_path, tb)
    assert first["csv"]["rows"] == second["csv"]["rows"] == 10
    assert csv_path.read_bytes() == csv_before
    for folder in ("sft.0", "sft.1", "rl.0"):
        assert len(list((tb / folder).glob("events.out.tfevents.*"))) == 1, folder
    assert [s.step for s in accumulate(tb / "sft.0").Scalars("sft/loss")] == [0, 10, 20]
    assert (tb / "other-run").is_dir()


def test_both_outputs_at_once_and_a_run_that_goes_on_between_exports(tmp_path):
    run = make_run(tmp_path / "r")
    csv_path, tb = tmp_path / "m.csv", tmp_path / "tb"
    assert main(["export-metrics", str(run.root), "--csv", str(csv_path),
                 "--tensorboard", str(tb)]) == 0
    with EventWriter.for_run(run.events_dir, "sft", 1) as w:  # the stage wrote more since
        w.metric(20, {"sft/loss": 0.75})
    assert main(["export-metrics", str(run.root), "--csv", str(csv_path),
                 "--tensorboard", str(tb)]) == 0
    rows = [r for r in csv.DictReader(csv_path.open()) if r["rank"] == "1"]
    assert [r["step"] for r in rows] == ["0", "10", "20"]
    assert [s.step for s in accumulate(tb / "sft.1").Scalars("sft/loss")] == [0, 10, 20]


def test_export_errors_name_the_fix_and_exit_2(tmp_path, capsys):
    out = str(tmp_path / "x.csv")
    assert main(["export-metrics", str(tmp_path / "missing"), "--csv", out]) == 2
    assert "no run dir at" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["export-metrics", str(tmp_path / "empty"), "--csv", out]) == 2
    assert "has no event files (events/*.jsonl)" in capsys.readouterr().err
    quiet = RunDir(tmp_path / "quiet")
    quiet.create()
    with EventWriter.for_run(quiet.events_dir, "seeds", 0) as w:
        w.stage("started")
    assert main(["export-metrics", str(quiet.root), "--csv", out]) == 2
    assert "no metric events in the 1 event file(s)" in capsys.readouterr().err
    assert main(["export-metrics", str(quiet.root)]) == 2
    assert "give --csv PATH, --tensorboard DIR or both" in capsys.readouterr().err
    assert not Path(out).exists()


def test_torn_and_bad_lines_are_skipped_and_counted(tmp_path):
    run = make_run(tmp_path / "r")
    with open(run.event_file("rl", 0), "ab") as fh:
        fh.write(b'{"not": "an event"}\n{"v":1,"seq":9,"t":1.0,"sta')  # bad line + torn tail
    found = read_run_metrics(run.root)
    assert (found.bad_lines, found.points, found.run) == (1, 10, "r")


# --- live sinks on the EventWriter -------------------------------------------------------------


class FlakySink:
    name = "Flaky"

    def __init__(self, fail_at: int) -> None:
        self.fail_at, self.seen, self.closed = fail_at, [], 0

    def metric(self, step, t, values):
        if step == self.fail_at:
            raise OSError("disk full")
        self.seen.append((step, t, dict(values)))

    def close(self):
        self.closed += 1


def test_a_failing_sink_is_dropped_with_one_alert_and_the_stage_goes_on(tmp_path):
    path = tmp_path / "sft.0.jsonl"
    flaky, good = FlakySink(fail_at=1), FlakySink(fail_at=-1)
    with EventWriter(path, "sft", 0) as w:
        w.add_sink(flaky)
        w.add_sink(good)
        for step in range(4):
            w.metric(step, {"sft/loss": 1.0 / (step + 1)})
    events = read_events(path)
    alerts = [e for e in events if e.kind == "alert"]
    assert len(alerts) == 1 and alerts[0].data.code == "metrics_sink"
    assert alerts[0].data.level == "warning"
    assert "metrics to Flaky stopped" in alerts[0].data.message
    assert "OSError: disk full" in alerts[0].data.message
    assert [s for s, _, _ in flaky.seen] == [0] and flaky.closed == 1
    # The event file keeps every metric; the healthy sink got each with the line's own t.
    metrics = [e for e in events if e.kind == "metric"]
    assert [e.step for e in metrics] == [0, 1, 2, 3]
    assert [(s, t) for s, t, _ in good.seen] == [(e.step, e.t) for e in metrics]
    assert good.closed == 1


def test_tensorboard_left_on_without_tensorboardx_logs_one_warning(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("tensorboardX", "wandb")
                        else real(name, *a))
    run = RunDir(tmp_path / "r")
    run.create()
    cfg = config_from_dict({"run": {"metrics": {"wandb": {"enabled": True}}}})
    with EventWriter.for_run(run.events_dir, "sft", 0) as w:
        assert attach_metric_sinks(w, cfg, run, "sft", 0) == []
        w.metric(0, {"sft/loss": 1.0})
    events = read_events(run.event_file("sft", 0))
    logs = [e.data for e in events if e.kind == "log"]
    alerts = [e.data for e in events if e.kind == "alert"]
    assert len(logs) == 1 and logs[0].level == "warning"
    assert "tensorboardX is not installed" in logs[0].message
    assert "run.metrics.tensorboard=false" in logs[0].message
    # W&B was asked for explicitly: an alert, naming the package to install.
    assert len(alerts) == 1 and "pip install wandb" in alerts[0].message
    assert not (run.root / "tensorboard").exists()


def test_the_sinks_follow_the_config_and_wandb_is_rank_0_only(tmp_path):
    run = RunDir(tmp_path / "r")
    run.create()
    off = config_from_dict({"run": {"metrics": {"tensorboard": False}}})
    on = config_from_dict({"run": {"metrics": {"wandb": {"enabled": True}}}})
    with EventWriter.for_run(run.events_dir, "sft", 1) as w:
        assert attach_metric_sinks(w, off, run, "sft", 1) == []
        assert [s.name for s in attach_metric_sinks(w, on, run, "sft", 1)] == ["TensorBoard"]
    defaults = config_from_dict({}).run.metrics
    assert defaults.tensorboard is True and defaults.wandb.enabled is False
    assert defaults.wandb.mode == "offline"


def test_an_api_key_in_the_wandb_settings_is_refused_without_echoing_it():
    from engine.schema import ConfigError

    key = "0123456789abcdef0123456789abcdef01234567"
    with pytest.raises(ConfigError) as err:
        config_from_dict({"run": {"metrics": {"wandb": {"entity": key}}}})
    text = str(err.value)
    assert "run.metrics.wandb.entity" in text and "WANDB_API_KEY" in text and key not in text


# --- live: a real stage run with the sinks on --------------------------------------------------


def _offline_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update({
        # Any attempt to reach a W&B server would fail at once: offline must not try.
        "WANDB_BASE_URL": "http://127.0.0.1:9",
        "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config"),
        "WANDB_CACHE_DIR": str(tmp_path / "wandb-cache"),
        "WANDB_DATA_DIR": str(tmp_path / "wandb-data"),
        "PYTHONPATH": str(REPO),
    })
    return env


@pytest.mark.slow
def test_a_stage_run_writes_tensorboard_and_an_offline_wandb_run_without_network(tmp_path):
    pytest.importorskip("wandb")
    src = tmp_path / "seeds.jsonl"
    src.write_text("".join(json.dumps({"question": f"Q{i}", "solutions": json.dumps(
        [f"print({i})"])}) + "\n" for i in range(3)))
    config = tmp_path / "c.yaml"
    config.write_text("run:\n  metrics:\n    wandb: {enabled: true, project: synthsmith-test}\n"
                      f"seeds:\n  sources:\n    - path: {src}\n")
    run_dir = tmp_path / "run-1"
    env = _offline_env(tmp_path)
    done = subprocess.run([sys.executable, "-m", "engine", "run", "--config", str(config),
                           "--run-dir", str(run_dir), "--stages", "seeds"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    events = read_events(run_dir / "events" / "seeds.0.jsonl")
    assert not [e for e in events if e.kind == "alert"], "a sink failed"
    metric = next(e for e in events if e.kind == "metric")

    # TensorBoard: the stage's metrics, at the event's step and time.
    acc = accumulate(run_dir / "tensorboard" / "seeds.0")
    assert set(metric.data) <= set(acc.Tags()["scalars"])
    imported = acc.Scalars("seeds/imported")
    assert [(s.step, s.value) for s in imported] == [(metric.step, 3.0)]
    assert imported[0].wall_time == pytest.approx(metric.t, abs=1e-6)

    # W&B offline: a local run that `wandb sync` would upload, holding the metric keys.
    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, list((run_dir / "wandb").iterdir())
    data = next(runs[0].glob("run-*.wandb")).read_bytes()
    assert b"seeds/imported" in data and b"synthsmith-test" in data
    wandb_cli = Path(sys.executable).with_name("wandb")
    dry = subprocess.run([str(wandb_cli), "sync", "--dry-run", str(runs[0])], env=env,
                         capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0 and "Would sync 1 run(s)" in dry.stdout + dry.stderr

    # Rebuilt after the fact from the event files, the TensorBoard folder holds the same points.
    tb = tmp_path / "rebuilt"
    export_run(run_dir, tensorboard_dir=tb)
    rebuilt = accumulate(tb / "seeds.0").Scalars("seeds/imported")
    assert [(s.step, s.value, s.wall_time) for s in rebuilt] == [
        (s.step, s.value, s.wall_time) for s in imported]


def test_write_metrics_csv_replaces_the_file_whole(tmp_path):
    from engine.metrics_export import MetricSeries

    path = tmp_path / "m.csv"
    path.write_text("old,content\n" * 100)
    n = write_metrics_csv(path, [MetricSeries("r", "sft", 0, "sft/loss", [1], [2.5], [NAN])])
    assert n == 1
    assert path.read_text() == "run,stage,rank,metric,step,time,value\nr,sft,0,sft/loss,1,2.5,nan\n"
    assert [p.name for p in tmp_path.iterdir()] == ["m.csv"]
