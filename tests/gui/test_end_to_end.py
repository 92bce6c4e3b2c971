"""The whole app, end to end, as a user drives it: pick the smoke preset, place it on "This
computer", Launch, watch the Runs panel and the Monitor's charts fill, open a task in the Data
browser — real engine processes, real store, real widgets (offscreen).

The synthesis LLM is the scripted OpenAI-compatible server of tests/openai_stub_server.py (the
only test double: a random model writes no usable task, and no real model can be downloaded
here); SFT, RL and eval run the preset's tiny random model. Screenshots of every panel in this
finished state go to artifacts/screenshots/e2e-*.png (the README uses them).

    .venv/bin/python -m pytest tests/gui/test_end_to_end.py -q
"""

from __future__ import annotations

import pytest
import yaml

from gui.main_window import PANELS, MainWindow
from remote.pipeline_edit import load_pipeline
from remote.profiles import LOCAL

pytest.importorskip("torch")
pytest.importorskip("trl")

RUN_TIMEOUT_MS = 420_000  # the whole smoke pipeline on 2 busy cores, SFT/RL/eval included


def _needs_sandbox() -> None:
    from engine.verify.sandbox import Sandbox, SandboxUnavailable

    try:
        Sandbox()
    except SandboxUnavailable as exc:
        pytest.skip(f"needs the sandbox (bubblewrap): {exc}")


@pytest.mark.slow
def test_smoke_launched_from_the_gui_runs_to_the_end_and_its_tasks_can_be_browsed(
        qtbot, openai_stub, screenshot_dir):
    from synth_responder import SynthResponder

    _needs_sandbox()
    openai_stub.rule = SynthResponder(seed=1)
    window = MainWindow(load_pipeline(), poll_s=0.5,
                        confirm_host_key=lambda *_: pytest.fail("This computer has no host key"))
    qtbot.addWidget(window)
    window.resize(1280, 800)
    window.show()
    qtbot.waitExposed(window)
    pipeline = window.pipeline_panel

    # 1. the smoke preset, every stage on This computer, synthesis pointed at "our" endpoint
    qtbot.waitUntil(lambda: "smoke-cpu" in pipeline.presets() and not pipeline.busy(),
                    timeout=10_000)
    pipeline.load_preset("smoke-cpu")
    qtbot.waitUntil(lambda: pipeline.config() is not None and not pipeline.busy(),
                    timeout=10_000)
    pipeline.place_all(LOCAL)
    data = yaml.safe_load(pipeline.current_text())
    data["llms"] = {name: {"backend": "openai", "base_url": openai_stub.url,
                           "model": "stub-model", "timeout_s": 10.0}
                    for name in ("generator", "solver")}
    assert pipeline.set_text(yaml.safe_dump(data, sort_keys=False), "smoke-on-stub.yaml")
    config = pipeline.config()
    assert config is not None and pipeline.problems() == []
    assert config.llms["generator"].base_url == openai_stub.url
    assert pipeline.launch_button.isEnabled()

    # 2. Launch: the window switches to Runs, which follows the run to its end
    with qtbot.waitSignal(pipeline.launched, timeout=60_000) as launched:
        pipeline.launch_button.click()
    run_id = launched.args[0].run_id
    assert window.sidebar.currentRow() == PANELS.index("Runs")
    runs = window.runs_panel
    qtbot.waitUntil(lambda: run_id in runs.run_ids(), timeout=10_000)

    def finished() -> bool:
        view = runs.run_view(run_id)
        return view is not None and view.status in ("completed", "failed", "cancelled")

    qtbot.waitUntil(finished, timeout=RUN_TIMEOUT_MS)
    view = runs.run_view(run_id)
    assert view.status == "completed", [(s.stage, s.status, s.reason) for s in view.stages
                                        if s.status != "completed"]
    assert [s.status for s in view.stages] == ["completed"] * 11

    # 3. the Monitor's charts filled from the streamed events
    monitor = window.monitor_panel
    qtbot.waitUntil(lambda: {"sft/loss", "rl/reward/mean"} <= set(monitor.keys(run_id)),
                    timeout=30_000)
    monitor.refresh()
    for tab in ("SFT", "RL", "Synthesis"):
        assert monitor.dashboard(tab).has_data, tab
    steps, _times, losses = monitor.series(run_id, "sft/loss")
    assert len(steps) >= 1 and all(v == v for v in losses)  # numbers, no NaN

    # 4. Browse data: the run's store opens in the Data panel; a task shows its statement
    data_panel = window.data_panel
    runs.select_run(run_id)
    runs.browse_selected()
    qtbot.waitUntil(lambda: window.sidebar.currentRow() == PANELS.index("Data"),
                    timeout=10_000)
    qtbot.waitUntil(lambda: data_panel.model.rowCount() > 0, timeout=20_000)
    data_panel.table.selectRow(0)
    qtbot.waitUntil(lambda: bool(data_panel.statement_view.toPlainText().strip()),
                    timeout=20_000)
    assert data_panel.solution_list.count() >= 1
    errors = [n for n in window.notifications.notices() if n.level == "error"]
    assert errors == [], [n.text for n in errors]

    # 5. screenshots of every panel in this state (README)
    for row, name in enumerate(PANELS):
        window.sidebar.setCurrentRow(row)
        if name == "Runs":
            runs.run_item(run_id).setExpanded(True)  # its stages, each with progress
        if name == "Monitor":
            monitor.tabs.setCurrentIndex(list(monitor.tabs.tabText(i) for i in
                                              range(monitor.tabs.count())).index("SFT"))
            monitor.refresh()
        # the Monitor's axes widen to fit their tick labels over a few layout passes
        qtbot.wait(400 if name == "Monitor" else 50)
        assert (window.width(), window.height()) == (1280, 800), name  # nothing grew it
        assert window.grab().save(str(screenshot_dir / f"e2e-{name.lower()}.png"))
    qtbot.waitUntil(lambda: not data_panel.busy() and not runs.busy(), timeout=20_000)
    runs.stop()



@pytest.mark.slow
def test_first_start_one_click_on_launch_runs_the_whole_smoke_pipeline(qtbot):
    """No setup at all: the window opens on the smoke preset on This computer; one click on
    Launch and every stage completes on the CPU with the preset's tiny random model."""
    _needs_sandbox()
    window = MainWindow(load_pipeline(), poll_s=0.5,
                        confirm_host_key=lambda *_: pytest.fail("This computer has no host key"))
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    pipeline = window.pipeline_panel
    qtbot.waitUntil(lambda: pipeline.launch_button.isEnabled() and not pipeline.busy(),
                    timeout=10_000)
    with qtbot.waitSignal(pipeline.launched, timeout=60_000) as launched:
        pipeline.launch_button.click()
    run_id = launched.args[0].run_id
    runs = window.runs_panel

    def finished() -> bool:
        view = runs.run_view(run_id)
        return view is not None and not view.live

    qtbot.waitUntil(finished, timeout=RUN_TIMEOUT_MS)
    view = runs.run_view(run_id)
    assert [(s.stage, s.status) for s in view.stages] == [
        (s, "completed") for s in ("seeds", "features", "evolve", "tasks", "solutions",
                                   "tests", "verify", "curate", "sft", "rl", "eval")]
    # a finished run says so once, and leaves verified tasks with verdict grids in Data
    qtbot.waitUntil(lambda: any(n.text.startswith(f"Run {run_id} completed") for n in
                                window.notifications.notices() if n.level == "info"),
                    timeout=30_000)
    data = window.data_panel
    runs.browse_data.emit(run_id)
    qtbot.waitUntil(lambda: data.model.rowCount() > 0, timeout=30_000)
    data.status_combo.setCurrentIndex(data.status_combo.findData("accepted"))
    qtbot.waitUntil(lambda: not data.busy() and data.model.rowCount() == 8, timeout=20_000)
    data.table.selectRow(0)
    qtbot.waitUntil(lambda: data.detail is not None and not data.busy(), timeout=20_000)
    assert data.detail.golden_solution_id is not None
    assert data.verdict_table.rowCount() >= 2 and data.verdict_table.columnCount() >= 1
    assert any(data.verdict_table.item(r, 0) is not None
               and data.verdict_table.item(r, 0).text() == "ok"
               for r in range(data.verdict_table.rowCount()))
    qtbot.waitUntil(lambda: not runs.busy() and not data.busy(), timeout=20_000)
    data.close_store()
    qtbot.waitUntil(lambda: not data.busy(), timeout=20_000)
    runs.stop()
