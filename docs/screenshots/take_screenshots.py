"""The README's screenshots, from a real X server: a finished smoke run on This computer.

    Xvfb :77 -screen 0 1280x720x24 &
    DISPLAY=:77 QT_QPA_PLATFORM=xcb SYNTHSMITH_CONFIG_DIR=/tmp/s/c SYNTHSMITH_DATA_DIR=/tmp/s/d \
        XDG_CONFIG_HOME=/tmp/s/x .venv/bin/python docs/screenshots/take_screenshots.py docs/screenshots

Launches the smoke preset with the CLI (unless a run "smoke-first-run" exists), follows it to
its end, then opens the app at 1280x720 and grabs the screen on each panel. Use throwaway
config and data folders as above: it adds a run to the registry it finds.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from PySide6.QtWidgets import QApplication

from gui.main_window import MainWindow
from gui.qt_guard import pin_singletons
from remote.pipeline_edit import load_pipeline

RUN_ID = "smoke-first-run"


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "gui.cli"]
    if subprocess.run([*cli, "status", RUN_ID], capture_output=True).returncode != 0:
        subprocess.run([*cli, "launch", "assets/presets/smoke-cpu.yaml", "--run-id", RUN_ID],
                       check=True)
        subprocess.run([*cli, "tail", RUN_ID, "--follow"], check=True,
                       stdout=subprocess.DEVNULL)
    pin_singletons()
    app = QApplication(sys.argv[:1])
    window = MainWindow(load_pipeline(None), poll_s=0.5)
    window.resize(1280, 720)
    window.show()

    def spin(seconds: float) -> None:
        end = time.time() + seconds
        while time.time() < end:
            app.processEvents()
            time.sleep(0.02)

    def shot(name: str) -> None:
        spin(0.8)
        app.primaryScreen().grabWindow(0).save(str(out / f"{name}.png"))
        print("saved", name)

    spin(2)
    window.show_panel("Pipeline")
    window.pipeline_panel.graph.stage_selected.emit("verify")
    shot("pipeline")
    runs = window.runs_panel
    window.show_panel("Runs")
    spin(3)
    runs.select_run(RUN_ID)
    runs.run_item(RUN_ID).setExpanded(True)
    spin(3)
    shot("runs")
    runs.follow_selected()
    spin(6)
    window.show_panel("Monitor")
    monitor = window.monitor_panel
    names = [monitor.tabs.tabText(i) for i in range(monitor.tabs.count())]
    for tab in ("Synthesis", "SFT", "RL"):
        monitor.tabs.setCurrentIndex(names.index(tab))
        spin(2)
        shot("monitor" if tab == "SFT" else f"monitor-{tab.lower()}")
    window.notifications_dock.hide()
    window.browse_run_data(RUN_ID)
    spin(4)
    data = window.data_panel
    data.table.selectRow(0)
    spin(3)
    data.tabs.setCurrentIndex([data.tabs.tabText(i) for i in range(data.tabs.count())]
                              .index("Verdicts"))
    shot("data")
    data.show_rollouts()
    spin(4)
    shot("rollouts")
    window.notifications_dock.hide()
    window.show_panel("Clusters")
    spin(1)
    shot("clusters")
    window.close()
    spin(1)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
