"""The desktop shell: sidebar panels, the read-only Pipeline panel, saved state, the CLI.

    .venv/bin/python -m pytest tests/gui -q

Screenshots of every panel land in artifacts/screenshots/ for a person to look at. No timing
assertions: startup speed is not measured here.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QLabel

import engine
from engine.schema import STAGE_ORDER, ConfigError, load_config
from gui import cli
from gui.app import SMOKE_PRESET, load_pipeline
from gui.main_window import APP_NAME, ORG_NAME, PANELS, MainWindow
from gui.widgets.pipeline_overview import PipelineOverview


@pytest.fixture
def window(qtbot):
    w = MainWindow(load_pipeline())
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    return w


def _column(table, col: int) -> list[str]:
    return [table.item(row, col).text() for row in range(table.rowCount())]


def test_window_opens_and_is_painted(window):
    assert window.isVisible()
    assert window.windowTitle() == "SynthSmith Studio"
    assert window.width() <= 1280 and window.height() <= 800


def test_sidebar_lists_five_panels_in_order_and_switches_the_page(window):
    sidebar = window.sidebar
    assert [sidebar.item(i).text() for i in range(sidebar.count())] == [
        "Clusters", "Pipeline", "Runs", "Monitor", "Data"]
    assert window.stack.count() == 5
    for row in (0, 3, 1, 4, 2):
        sidebar.setCurrentRow(row)
        assert window.stack.currentIndex() == row
    sidebar.setCurrentRow(PANELS.index("Pipeline"))
    assert window.stack.currentWidget() is window.pipeline_overview


def test_unbuilt_panels_say_so_and_offer_no_buttons(window):
    assert window.stack.widget(PANELS.index("Clusters")) is window.clusters_panel
    assert window.stack.widget(PANELS.index("Monitor")) is window.monitor_panel
    assert window.stack.widget(PANELS.index("Data")) is window.data_panel
    for name in ("Runs",):
        page = window.stack.widget(PANELS.index(name))
        assert isinstance(page, QLabel)
        assert page.text().startswith(name) and "Not built yet" in page.text()


def test_pipeline_panel_shows_every_smoke_stage_with_its_placement(qtbot):
    cfg = load_config(SMOKE_PRESET)
    panel = PipelineOverview()
    qtbot.addWidget(panel)
    panel.set_config(cfg, SMOKE_PRESET)

    table = panel.table
    assert table.rowCount() == len(STAGE_ORDER) == 11
    assert _column(table, 0) == list(STAGE_ORDER)
    assert _column(table, 2) == [cfg.stage(name).placement for name in STAGE_ORDER]
    res = cfg.stage(STAGE_ORDER[0]).resources
    assert table.item(0, 3).text().startswith(f"{res.nodes} node")
    assert f"{res.cpus_per_task} CPU, {res.time_limit}" in table.item(0, 3).text()
    assert str(SMOKE_PRESET) in panel.source_label.text()
    assert panel.validation_label.text().startswith("OK")


def test_pipeline_panel_greys_disabled_stages(qtbot, screenshot_dir):
    cfg = load_config(SMOKE_PRESET, ["eval.enabled=false"])
    panel = PipelineOverview()
    qtbot.addWidget(panel)
    panel.set_config(cfg, SMOKE_PRESET)

    for row, name in enumerate(STAGE_ORDER):
        enabled = cfg.stage(name).enabled
        item = panel.table.item(row, 0)
        assert bool(item.flags() & Qt.ItemFlag.ItemIsEnabled) == enabled, name
        assert panel.table.item(row, 1).text() == ("yes" if enabled else "no")
    assert not cfg.stage("eval").enabled
    panel.resize(900, 480)
    assert panel.grab().save(str(screenshot_dir / "pipeline_overview-eval-disabled.png"))


def test_pipeline_panel_lists_every_problem_of_a_bad_config_by_key(qtbot, tmp_path):
    bad = tmp_path / "bad.yaml"
    data = yaml.safe_load(SMOKE_PRESET.read_text())
    data["seeds"]["resources"] = {"nodes": 0}
    data["sft"]["no_such_field"] = 3
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as caught:
        load_config(bad)
    problems = caught.value.problems
    assert {"seeds.resources.nodes", "sft.no_such_field"} <= {p.key for p in problems}

    panel = PipelineOverview()
    qtbot.addWidget(panel)
    panel.show_problems(problems, bad)

    text = panel.validation_label.text()
    for p in problems:
        assert f"{p.key}: {p.message} — {p.fix}" in text
    assert str(bad) in panel.source_label.text()
    assert panel.table.rowCount() == 0 and panel.table.isHidden()


def test_window_opened_with_a_missing_preset_lists_the_problem(qtbot, tmp_path):
    w = MainWindow(load_pipeline(tmp_path / "missing.yaml"))
    qtbot.addWidget(w)
    assert "problem" in w.pipeline_overview.validation_label.text()
    assert "missing.yaml" in w.pipeline_overview.source_label.text()


def test_geometry_and_panel_are_restored_by_a_new_window(qtbot, settings_dir):
    first = MainWindow(load_pipeline())
    qtbot.addWidget(first)
    first.show()
    qtbot.waitExposed(first)
    # The panels' smallest size, or a little above it; it fits the offscreen 800x600 screen.
    size = (max(720, first.minimumSizeHint().width()), max(530, first.minimumSizeHint().height()))
    first.resize(*size)
    first.sidebar.setCurrentRow(PANELS.index("Monitor"))
    first.close()
    assert QSettings(ORG_NAME, APP_NAME).fileName().startswith(str(settings_dir))

    second = MainWindow(load_pipeline())
    qtbot.addWidget(second)
    second.show()
    qtbot.waitExposed(second)
    assert (second.width(), second.height()) == size
    assert second.sidebar.currentRow() == PANELS.index("Monitor")
    assert second.stack.currentIndex() == PANELS.index("Monitor")


def test_screenshot_of_every_panel_is_saved(window, qtbot, screenshot_dir):
    for row, name in enumerate(PANELS):
        window.sidebar.setCurrentRow(row)
        qtbot.wait(10)  # let the new page lay out and paint
        path = screenshot_dir / f"main_window-{name.lower()}.png"
        path.unlink(missing_ok=True)
        assert window.grab().save(str(path))
        assert path.stat().st_size > 0


def test_version_flag_prints_the_engine_version(capsys):
    assert cli.main(["--version"]) == 0
    assert engine.__version__ in capsys.readouterr().out


def test_cli_without_pyside6_names_the_fix(monkeypatch, capsys):
    for name in ("PySide6", "PySide6.QtWidgets"):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import PySide6...` fail
    assert cli.main([]) == 2
    assert "pip install PySide6-Essentials" in capsys.readouterr().err


def test_cli_module_does_not_import_qt():
    code = "import sys, gui.cli; sys.exit('PySide6' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
