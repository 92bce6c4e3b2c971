"""The Monitor's "Export CSV…" is the engine's exporter: byte for byte the CLI's file.

    .venv/bin/python -m pytest tests/gui/test_monitor_csv_export.py -q

A run dir written by ``EventWriter`` (two stages, two ranks, NaN and inf among the values) is
read the way the desktop does (``EventReader`` per file) into a real ``MonitorPanel``; the
button is clicked (the save dialog answered by a monkeypatch), the worker writes the file, and
it must equal what ``python -m engine export-metrics RUN --csv`` writes for the same files.
"""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton

from engine.events import EventReader, EventWriter, event_files
from engine.rundir import RunDir
from gui.panels.monitor import MonitorPanel

REPO = Path(__file__).resolve().parents[2]


def make_run(root: Path) -> RunDir:
    run = RunDir(root)
    run.create()
    with EventWriter.for_run(run.events_dir, "sft", 0) as w0, \
            EventWriter.for_run(run.events_dir, "sft", 1) as w1, \
            EventWriter.for_run(run.events_dir, "rl", 0) as rl:
        w0.stage("started")
        for step in range(5):  # two ranks of one stage write the same key, interleaved
            w0.metric(step, {"sft/loss": 2.0 / (step + 1), "sft/lr": 1e-5})
            w1.metric(step, {"sft/loss": 2.1 / (step + 1)})
        w0.metric(5, {"sft/loss": float("nan"), "sft/grad_norm": float("inf")})
        w1.metric(5, {"sft/loss": float("-inf")})
        rl.metric(1, {"rl/reward/mean": 0.25})
        w0.stage("completed")
    return run


def feed(panel: MonitorPanel, run: RunDir) -> None:
    for path in event_files(run.events_dir):  # as a follower hands them over, file by file
        panel.add_events(EventReader(path).read_new(), run=run.root.name)


def cli_csv(run: RunDir, out: Path) -> bytes:
    done = subprocess.run([sys.executable, "-m", "engine", "export-metrics", str(run.root),
                           "--csv", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return out.read_bytes()


def test_export_csv_button_writes_the_cli_file_for_the_same_events(qtbot, tmp_path, monkeypatch):
    run = make_run(tmp_path / "run-42")
    panel = MonitorPanel()
    qtbot.addWidget(panel)
    feed(panel, run)

    target = tmp_path / "from-monitor.csv"
    monkeypatch.setattr("gui.panels.monitor.QFileDialog.getSaveFileName",
                        lambda *a, **k: (str(target), "CSV (*.csv)"))
    button = next(b for b in panel.findChildren(QPushButton) if b.text() == "Export CSV…")
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: target.exists() and panel._status.text() == "exported",
                    timeout=10_000)

    assert target.read_bytes() == cli_csv(run, tmp_path / "from-cli.csv")
    rows = list(csv.DictReader(target.open(newline="")))
    assert len(rows) == 5 * 3 + 3 + 1
    ranks = {(r["stage"], r["rank"]) for r in rows}
    assert ranks == {("sft", "0"), ("sft", "1"), ("rl", "0")}
    last = {(r["rank"], r["metric"]): float(r["value"]) for r in rows if r["step"] == "5"}
    assert math.isnan(last[("0", "sft/loss")]) and last[("0", "sft/grad_norm")] == math.inf
    assert last[("1", "sft/loss")] == -math.inf


def test_points_added_in_bulk_name_their_writer(qtbot, tmp_path):
    panel = MonitorPanel()
    qtbot.addWidget(panel)
    panel.add_points("r", "rl/kl", [0, 1], [10.0, 11.0], [0.5, 0.25], stage="rl", rank=3)
    panel.add_points("r", "sft/loss", [0], [10.0], [1.0])
    assert panel.export_csv(tmp_path / "m.csv") == 3
    assert (tmp_path / "m.csv").read_text().splitlines() == [
        "run,stage,rank,metric,step,time,value",
        "r,rl,3,rl/kl,0,10.0,0.5", "r,rl,3,rl/kl,1,11.0,0.25",
        "r,sft,0,sft/loss,0,10.0,1.0"]
