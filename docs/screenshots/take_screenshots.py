"""The README's screenshots, from a real X server: a finished smoke run on This computer.

    Xvfb :77 -screen 0 1280x720x24 &
    DISPLAY=:77 QT_QPA_PLATFORM=xcb SYNTHSMITH_CONFIG_DIR=/tmp/s/c SYNTHSMITH_DATA_DIR=/tmp/s/d \
        XDG_CONFIG_HOME=/tmp/s/x .venv/bin/python docs/screenshots/take_screenshots.py docs/screenshots

Launches the smoke preset with the CLI (unless a run "smoke-first-run" exists), follows it to
its end, then opens the app at 1280x720 and grabs the screen on each panel. Use throwaway
config and data folders as above: it adds a run to the registry it finds.
"""
import os, subprocess, sys, time
from pathlib import Path
from PySide6.QtWidgets import QApplication
from gui.app import load_pipeline
from gui.qt_guard import pin_singletons
from gui.main_window import MainWindow

out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
py = sys.executable
run_id = "smoke-first-run"
if subprocess.run([py, "-m", "gui.cli", "status", run_id], capture_output=True).returncode != 0:
    subprocess.run([py, "-m", "gui.cli", "launch", "assets/presets/smoke-cpu.yaml", "--run-id", run_id], check=True)
    subprocess.run([py, "-m", "gui.cli", "tail", run_id, "--follow"], check=True, stdout=subprocess.DEVNULL)
pin_singletons()
app = QApplication(sys.argv[:1])
w = MainWindow(load_pipeline(None), poll_s=0.5)
w.resize(1280, 720); w.show()
def spin(sec):
    end = time.time() + sec
    while time.time() < end: app.processEvents(); time.sleep(0.02)
def shot(name):
    spin(0.8); app.primaryScreen().grabWindow(0).save(str(out / f"{name}.png")); print("saved", name)
spin(2)
w.show_panel("Pipeline"); w.pipeline_panel.graph.stage_selected.emit("verify"); shot("pipeline")
runs = w.runs_panel
w.show_panel("Runs"); spin(3); runs.select_run(run_id); runs.run_item(run_id).setExpanded(True); spin(3); shot("runs")
runs.follow_selected(); spin(6); w.show_panel("Monitor")
mon = w.monitor_panel
for tab in ("Synthesis", "SFT", "RL"):
    idx = [mon.tabs.tabText(i) for i in range(mon.tabs.count())].index(tab)
    mon.tabs.setCurrentIndex(idx); spin(2); shot("monitor" if tab == "SFT" else f"monitor-{tab.lower()}")
w.notifications_dock.hide()
w.browse_run_data(run_id); spin(4)
d = w.data_panel
d.table.selectRow(0); spin(3)
d.tabs.setCurrentIndex([d.tabs.tabText(i) for i in range(d.tabs.count())].index("Verdicts")); shot("data")
d.show_rollouts(); spin(4); shot("rollouts")
w.notifications_dock.hide()
w.show_panel("Clusters"); spin(1); shot("clusters")
w.close(); spin(1)
