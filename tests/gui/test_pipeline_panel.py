"""gui/panels/pipeline.py: edit, validate, open/save, presets, diff, preview and launch.

Run: .venv/bin/python -m pytest tests/gui/test_pipeline_panel.py -q

Real widgets, real files, a real ProfileStore and RunRegistry under tmp_path, the real
Launcher: Preview and Launch on "This computer" run what the app runs (Launch starts the
engine as a detached process and the test follows it to the end). The host-key test uses the
real sshd of tests/remote/fixtures_ssh.py and skips without one.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest
import yaml
from PySide6.QtCore import QPoint, QSettings, Qt, QThreadPool
from PySide6.QtWidgets import QApplication

from engine.paths import ASSETS_DIR
from engine.schema import STAGE_ORDER, dump_config, load_config
from gui.notify import Notice
from gui.panels.pipeline import PipelinePanel
from gui.widgets import stage_graph
from remote.launch import Launcher
from remote.pipeline_edit import LoadedPipeline
from remote.profiles import LOCAL, ClusterProfile, ProfileStore
from remote.run_registry import RunRecord, RunRegistry, Segment
from remote.session import AppSession

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "remote"))
import fixtures_ssh  # noqa: E402

sshd_pair = fixtures_ssh.sshd_pair
ssh_env = fixtures_ssh.ssh_env

SMOKE = ASSETS_DIR / "presets" / "smoke-cpu.yaml"
TIMEOUT = 10_000


@pytest.fixture
def desktop(tmp_path, monkeypatch) -> Path:
    """A fresh desktop: profiles, runs and "This computer"'s work dir all under tmp_path."""
    monkeypatch.setenv("SYNTHSMITH_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("SYNTHSMITH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    return tmp_path


@pytest.fixture
def session(desktop):
    s = AppSession(ProfileStore(), RunRegistry())
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _drain():
    yield
    assert QThreadPool.globalInstance().waitForDone(10_000)
    QApplication.processEvents()


def _panel(qtbot, session, **kwargs) -> tuple[PipelinePanel, list[Notice]]:
    panel = PipelinePanel(session, **kwargs)
    qtbot.addWidget(panel)
    notices: list[Notice] = []
    panel.notice.connect(notices.append)
    _wait(qtbot, panel)
    return panel, notices


def _wait(qtbot, panel: PipelinePanel, timeout: int = TIMEOUT) -> None:
    qtbot.waitUntil(lambda: not panel.busy(), timeout=timeout)


def _shown(qtbot, panel: PipelinePanel) -> None:
    panel.resize(1030, 680)
    panel.show()
    qtbot.waitExposed(panel)
    panel.activateWindow()


def _type(qtbot, panel: PipelinePanel, key: str, text: str) -> None:
    """Replace a line edit's text by typing, as a user does (textEdited fires)."""
    editor = panel.forms[key.split(".")[0]].editors[key].widget
    editor.selectAll()
    qtbot.keyClicks(editor, text)


def _smoke_with(tmp_path: Path, name: str, **sections: dict) -> Path:
    data = yaml.safe_load(SMOKE.read_text())
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _only_seeds(tmp_path: Path) -> Path:
    return _smoke_with(tmp_path, "seeds-only.yaml",
                       **{s: {"enabled": s == "seeds"} for s in STAGE_ORDER})


# ---------------------------------------------------------------------------------------------
# First start, forms and problems


def test_first_start_shows_the_smoke_preset_ready_to_launch_on_this_computer(qtbot, session):
    panel, notices = _panel(qtbot, session)
    config = panel.config()
    assert config is not None and config == load_config(SMOKE)
    assert {config.stage(s).placement for s in config.enabled_stages()} == {LOCAL}
    assert panel.launch_button.isEnabled() and panel.preview_button.isEnabled()
    assert panel.presets() == ["smoke-cpu", "xcoder-7b"]
    assert panel.source_label.text() == "Config: preset smoke-cpu"
    assert "11 of 11 stages enabled" in panel.status_label.text()
    assert notices == []


def test_there_is_a_form_for_every_stage_and_for_the_run_and_llms(qtbot, session):
    panel, _ = _panel(qtbot, session)
    assert panel.graph.names() == ["run", "llms", *STAGE_ORDER]
    for name in panel.graph.names():
        panel.select(name)
        assert panel.current_entry() == name
        form = panel.forms[name]
        assert form.endpoint_names() if name == "llms" else form.editors
    sft_lr = panel.forms["sft"].editors["sft.lr"].widget
    assert sft_lr.toolTip().startswith("Peak learning rate.")
    assert sft_lr.text() == "0.0001"


def test_a_bad_value_is_listed_and_a_click_on_it_focuses_its_field_until_fixed(qtbot, session):
    panel, _ = _panel(qtbot, session)
    _shown(qtbot, panel)
    panel.select("sft")
    _type(qtbot, panel, "sft.lr", "-1")
    assert [p.key for p in panel.problems()] == ["sft.lr"]
    item = panel.problem_list.item(0)
    assert item.text().startswith("sft.lr: must be greater than 0 (got -1.0)")
    assert not panel.launch_button.isEnabled() and not panel.preview_button.isEnabled()
    assert panel.config() is None
    assert panel.graph.entry("sft").errors == 1 and panel.graph.entry("rl").errors == 0
    assert panel.forms["sft"].invalid_keys() == ["sft.lr"]
    assert panel.tabs.tabText(0) == "Problems (1)"

    panel.select("seeds")
    rect = panel.problem_list.visualItemRect(item)
    qtbot.mouseClick(panel.problem_list.viewport(), Qt.MouseButton.LeftButton,
                     pos=rect.center())
    editor = panel.forms["sft"].editors["sft.lr"].widget
    assert panel.current_entry() == "sft"
    qtbot.waitUntil(editor.hasFocus, timeout=2000)

    _type(qtbot, panel, "sft.lr", "0.0005")
    assert panel.problems() == [] and panel.problem_list.count() == 0
    assert panel.forms["sft"].invalid_keys() == []
    assert panel.launch_button.isEnabled()
    assert panel.config().sft.lr == 0.0005
    assert "(modified)" in panel.source_label.text()


def test_llm_endpoints_are_edited_by_name_and_a_rename_reaches_the_stage_forms(qtbot, session):
    panel, _ = _panel(qtbot, session)
    _shown(qtbot, panel)
    panel.select("llms")
    llms = panel.forms["llms"]
    assert llms.endpoint_names() == list(panel.data()["llms"])
    users = [s for s in STAGE_ORDER if panel.data()[s].get("llm") == "generator"]
    assert users
    assert llms.rename("generator", "gen")
    assert [panel.data()[s]["llm"] for s in users] == ["gen"] * len(users)
    assert panel.forms[users[0]].editors[f"{users[0]}.llm"].widget.text() == "gen"
    assert panel.problems() == [] and panel.launch_button.isEnabled()
    assert "(modified)" in panel.source_label.text()

    panel.select("run")
    assert llms.add_endpoint("judge")
    assert [p.key for p in panel.problems()] == ["llms.judge.model"]
    assert panel.graph.entry("llms").errors == 1 and not panel.launch_button.isEnabled()
    item = panel.problem_list.item(0)
    qtbot.mouseClick(panel.problem_list.viewport(), Qt.MouseButton.LeftButton,
                     pos=panel.problem_list.visualItemRect(item).center())
    assert panel.current_entry() == "llms"
    model = llms.widget_for("llms.judge.model")
    qtbot.waitUntil(model.hasFocus, timeout=2000)
    qtbot.keyClicks(model, "Qwen/Qwen3-8B")
    assert panel.problems() == [] and panel.config().llms["judge"].model == "Qwen/Qwen3-8B"


def test_batch_arithmetic_and_a_wrong_choice_are_listed_with_their_keys(qtbot, session):
    panel, _ = _panel(qtbot, session)
    _type(qtbot, panel, "sft.micro_batch_size", "3")  # 4 sequences do not split into 3s
    assert [p.key for p in panel.problems()] == ["sft.global_batch_size"]
    assert "multiple of 3" in panel.problems()[0].fix
    _type(qtbot, panel, "sft.micro_batch_size", "2")
    assert panel.problems() == []

    text = SMOKE.read_text().replace("rollout: transformers", "rollout: warp-drive")
    assert panel.set_text(text)
    assert [p.key for p in panel.problems()] == ["rl.rollout"]
    combo = panel.forms["rl"].editors["rl.rollout"].widget
    assert combo.currentText() == "warp-drive (not a choice)"
    combo.setCurrentIndex(combo.findData("transformers"))
    combo.activated.emit(combo.currentIndex())  # what a user's pick emits
    assert panel.problems() == []


def test_a_stage_naming_an_llm_that_is_not_defined_is_found_across_sections(qtbot, session):
    panel, _ = _panel(qtbot, session)
    _type(qtbot, panel, "features.llm", "genrator")
    problem = panel.problems()[0]
    assert problem.key == "features.llm" and "did you mean generator" in problem.fix
    panel.focus_problem(0)
    assert panel.current_entry() == "features"


def test_a_disabled_stage_is_greyed_and_a_click_on_a_stage_shows_its_form(qtbot, session):
    panel, _ = _panel(qtbot, session)
    _shown(qtbot, panel)
    panel.select("eval")
    qtbot.mouseClick(panel.forms["eval"].editors["eval.enabled"].widget,
                     Qt.MouseButton.LeftButton, pos=QPoint(6, 6))
    assert panel.data()["eval"]["enabled"] is False
    assert panel.graph.is_greyed("eval") and not panel.graph.is_greyed("rl")
    assert panel.config().enabled_stages()[-1] == "rl"

    image = panel.graph.grab().toImage()
    ratio = panel.graph.devicePixelRatioF()

    def fill(name: str):
        r = panel.graph.box_rect(name)
        return image.pixelColor(int((r.right() - 5) * ratio), int(r.center().y() * ratio))

    assert fill("eval") == stage_graph.FILL_DISABLED
    assert fill("rl") == stage_graph.FILL

    centre = panel.graph.box_rect("verify").center()
    qtbot.mouseClick(panel.graph, Qt.MouseButton.LeftButton, pos=centre)
    assert panel.current_entry() == "verify" and panel.graph.selected() == "verify"
    assert panel.stack.currentWidget() is panel.forms["verify"]


def test_unknown_keys_are_listed_and_can_be_removed(qtbot, session):
    panel, notices = _panel(qtbot, session)
    assert panel.set_text(SMOKE.read_text() + "\nsftt: {}\n".replace("sftt", "curation"))
    problem = panel.problems()[0]
    assert problem.key == "curation" and "did you mean 'curate'" in problem.fix
    assert panel.drop_unknown_button.isVisibleTo(panel)
    assert panel.focus_problem(0) is panel.drop_unknown_button
    assert panel.remove_unknown_keys() == ["curation"]
    assert panel.problems() == [] and "curation" in notices[-1].text


# ---------------------------------------------------------------------------------------------
# Placement


def test_the_placement_list_shows_the_profiles_with_their_gpu_labels(qtbot, session):
    session.profiles.add(ClusterProfile(name="h200", host="h200.example", scheduler="slurm",
                                        gpu_type="H200"))
    session.profiles.add(ClusterProfile(name="box", host="box.example"))
    panel, _ = _panel(qtbot, session)
    combo = panel.forms["sft"].editors["sft.placement"].widget
    assert [combo.itemText(i) for i in range(combo.count())] == [
        "This computer (local · CPU)", "h200 (slurm · H200)", "box (direct)"]
    combo.setCurrentIndex(1)
    combo.activated.emit(1)
    assert panel.data()["sft"]["placement"] == "h200"
    assert panel.graph.entry("sft").subtitle == "h200 · H200"

    session.profiles.add(ClusterProfile(name="late", host="late.example", gpu_type="A100"))
    panel.reload_profiles()  # what the Clusters panel's change signal calls
    _wait(qtbot, panel)
    assert combo.itemText(combo.count() - 1) == "late (direct · A100)"
    assert panel.place_all_combo.findData("late") >= 0

    panel.place_all("box")
    data = panel.data()
    assert {data[s]["placement"] for s in STAGE_ORDER} == {"box"}
    assert panel.forms["rl"].editors["rl.placement"].widget.currentText() == "box (direct)"


def test_a_placement_naming_no_profile_is_a_problem_of_enabled_stages_only(qtbot, session):
    panel, _ = _panel(qtbot, session)
    text = SMOKE.read_text().replace("curate:\n", "curate:\n  placement: nowhere\n")
    assert panel.set_text(text)
    assert [p.key for p in panel.problems()] == ["curate.placement"]
    assert "no cluster profile" in panel.problems()[0].message
    assert not panel.launch_button.isEnabled()
    combo = panel.forms["curate"].editors["curate.placement"].widget
    assert combo.currentText() == "nowhere (no such profile)"
    panel.select("curate")
    panel.forms["curate"].editors["curate.enabled"].widget.setChecked(False)
    assert panel.problems() == []


# ---------------------------------------------------------------------------------------------
# Files, presets, state


def test_a_saved_config_loads_with_the_engine_and_equals_the_one_shown(qtbot, session, tmp_path):
    panel, notices = _panel(qtbot, session)
    _type(qtbot, panel, "sft.lr", "0.0003")
    _type(qtbot, panel, "run.name", "edited")
    target = tmp_path / "out" / "edited.yaml"
    panel.save_file(target)
    _wait(qtbot, panel)
    assert load_config(target) == panel.config()
    assert load_config(target).sft.lr == 0.0003
    assert notices[-1].level == "info" and str(target) in notices[-1].text
    assert panel.source_label.text() == f"Config: {target}"

    other, _ = _panel(qtbot, session)
    other.open_file(target)
    _wait(qtbot, other)
    assert other.config() == panel.config()
    assert other.forms["run"].editors["run.name"].widget.text() == "edited"


def test_opening_a_file_with_problems_shows_its_values_and_every_problem(qtbot, session,
                                                                         tmp_path):
    path = _smoke_with(tmp_path, "bad.yaml", sft={"lr": -1}, rl={"mini_batch_size": 3})
    panel, _ = _panel(qtbot, session, pipeline=LoadedPipeline(path, problems=()))
    assert [p.key for p in panel.problems()] == ["sft.lr", "rl.mini_batch_size"]
    assert panel.forms["sft"].editors["sft.lr"].widget.text() == "-1"
    assert panel.graph.entry("rl").errors == 1


def test_a_config_the_app_could_not_load_lists_its_problems_and_cannot_launch(
        qtbot, session, tmp_path):
    from remote.pipeline_edit import load_pipeline

    missing = load_pipeline(tmp_path / "missing.yaml")
    panel, notices = _panel(qtbot, session, pipeline=missing)
    assert [(p.key, p.message) for p in panel.problems()] == [("<file>", "no such file")]
    assert "missing.yaml (did not load)" in panel.source_label.text()
    assert not panel.launch_button.isEnabled() and notices == []
    panel.set_config(load_config(SMOKE), SMOKE)  # what the main window hands over
    assert panel.problems() == [] and panel.launch_button.isEnabled()
    assert panel.source_label.text() == "Config: preset smoke-cpu"


def test_the_presets_are_listed_and_load(qtbot, session):
    panel, _ = _panel(qtbot, session)
    index = panel.presets().index("xcoder-7b")
    panel.preset_combo.activated.emit(index)
    _wait(qtbot, panel)
    assert panel.data()["run"]["name"] == "xcoder-7b"
    assert panel.source_label.text() == "Config: preset xcoder-7b"
    # its placements name clusters this desktop lacks: each is listed, Launch is off
    assert {p.key for p in panel.problems()} >= {"seeds.placement", "sft.placement"}
    assert not panel.launch_button.isEnabled()
    assert panel.state()["preset"] == "xcoder-7b" and panel.state()["source"] == ""


def test_unsaved_edits_are_replaced_only_when_the_user_says_so(qtbot, session, tmp_path,
                                                               monkeypatch):
    asked: list[tuple[str, str]] = []
    answer = {"discard": False}

    def confirm_discard(parent, origin, target):
        asked.append((origin, target))
        return answer["discard"]

    panel, _ = _panel(qtbot, session, confirm_discard=confirm_discard)
    xcoder = panel.presets().index("xcoder-7b")
    panel.preset_combo.activated.emit(panel.presets().index("smoke-cpu"))
    _wait(qtbot, panel)
    assert asked == []  # nothing edited yet: nothing to ask

    _type(qtbot, panel, "rl.max_steps", "5")
    panel.preset_combo.setCurrentIndex(xcoder)  # what a click in the list does before activated
    panel.preset_combo.activated.emit(xcoder)
    _wait(qtbot, panel)
    assert asked == [("preset smoke-cpu", "preset xcoder-7b")]
    assert panel.config().rl.max_steps == 5  # kept
    assert panel.preset_combo.currentText() == "smoke-cpu"  # the list shows what is shown
    assert panel.state()["modified"] is True

    other = tmp_path / "other.yaml"
    other.write_text(SMOKE.read_text().replace("name: smoke-cpu", "name: other", 1))
    monkeypatch.setattr("gui.panels.pipeline.QFileDialog.getOpenFileName",
                        lambda *a, **k: (str(other), ""))
    assert panel.open_dialog() is None  # refused: nothing read
    assert asked[-1] == ("preset smoke-cpu", str(other))
    assert panel.config().rl.max_steps == 5

    answer["discard"] = True
    panel.open_dialog()
    _wait(qtbot, panel)
    assert panel.data()["run"]["name"] == "other" and panel.state()["modified"] is False


def test_state_round_trips_unsaved_edits_and_wins_over_a_late_start_up_load(qtbot, session):
    panel, _ = _panel(qtbot, session)
    _type(qtbot, panel, "rl.max_steps", "5")
    state = panel.state()
    assert state["modified"] is True and "max_steps: 5" in state["text"]

    again = PipelinePanel(session)  # its smoke preset is still being read...
    qtbot.addWidget(again)
    assert again.restore_state(state)  # ...and must not replace the restored config
    _wait(qtbot, again)
    assert again.config() == panel.config() and again.config().rl.max_steps == 5
    assert "(modified)" in again.source_label.text()

    # through QSettings, as the main window keeps it
    settings = QSettings("SynthSmith", "pipeline-test")
    settings.setValue("pipeline/state", again.state() | {"modified": False})
    settings.sync()
    restored = QSettings("SynthSmith", "pipeline-test").value("pipeline/state")
    assert again.restore_state(restored)
    assert again.state()["modified"] is False and again.config().rl.max_steps == 5
    assert not again.restore_state({})  # nothing kept yet: the config shown stays


def test_failures_become_notices_and_change_nothing(qtbot, session, tmp_path):
    panel, notices = _panel(qtbot, session)
    before = panel.data()
    panel.open_file(tmp_path / "missing.yaml")
    _wait(qtbot, panel)
    assert notices[-1].level == "error" and "missing.yaml" in notices[-1].text
    assert "FileNotFoundError" in notices[-1].text and notices[-1].source == "Pipeline"
    assert not panel.set_text("sft: [unclosed")
    assert "YAML syntax error" in notices[-1].text
    assert panel.data() == before


# ---------------------------------------------------------------------------------------------
# Diff, preview, launch


def test_the_diff_against_the_last_launch_names_the_changed_key(qtbot, session):
    panel, _ = _panel(qtbot, session)
    panel.show_diff()
    _wait(qtbot, panel)
    assert "No run has been launched" in panel.diff_view.toPlainText()

    launched = dump_config(load_config(SMOKE, ["sft.lr=0.0005"]))
    session.registry.save(RunRecord("smoke-1", "x.yaml", launched, time.time(),
                                    [Segment(LOCAL, ["seeds"])]))
    panel.diff_button.click()
    _wait(qtbot, panel)
    diff = panel.diff_view.toPlainText()
    assert "--- run smoke-1 (launched)" in diff and "+++ this config" in diff
    assert "-  lr: 0.0005\n+  lr: 0.0001\n" in diff
    assert panel.tabs.currentWidget() is panel.diff_view

    _type(qtbot, panel, "sft.lr", "0.0005")
    panel.show_diff()
    _wait(qtbot, panel)
    assert panel.diff_view.toPlainText() == "No changes since run smoke-1 was launched."


def test_preview_shows_the_engine_command_for_this_computer(qtbot, session):
    panel, _ = _panel(qtbot, session)
    panel.preview_button.click()
    _wait(qtbot, panel)
    text = panel.preview_view.toPlainText()
    assert text.startswith(f"# {LOCAL} (direct): seeds, features")
    assert "-m engine run --config" in text and "--stages seeds,features" in text
    assert not (session.registry.dir).exists()  # a preview launches nothing


def test_launch_runs_the_enabled_stages_on_this_computer(qtbot, session, desktop):
    panel, notices = _panel(qtbot, session, pipeline=LoadedPipeline(_only_seeds(desktop),
                                                                   problems=()))
    assert panel.config().enabled_stages() == ["seeds"]
    with qtbot.waitSignal(panel.launched, timeout=60_000) as signal:
        panel.launch_button.click()
        assert not panel.launch_button.isEnabled()  # one launch at a time
    record = signal.args[0]
    assert isinstance(record, RunRecord)
    assert [(s.cluster, s.stages) for s in record.segments] == [(LOCAL, ["seeds"])]
    assert [r.run_id for r in session.registry.list()] == [record.run_id]
    assert Path(record.config_path).parent == desktop / "data" / "configs"
    assert load_config(record.config_path) == panel.config()
    assert notices[-1].level == "info" and record.run_id in notices[-1].text
    _wait(qtbot, panel)
    assert panel.launch_button.isEnabled()

    deadline = time.monotonic() + 120
    while (state := session.call(Launcher.refresh, record.run_id).status) not in (
            "completed", "failed") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert state == "completed"


def test_launch_refuses_with_the_preflights_fixes_and_starts_nothing(qtbot, session, desktop):
    """Issue 17: what a stage lacks on its cluster stops Launch before anything starts."""
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has a GPU")
    sections = {s: {"enabled": s in ("seeds", "sft")} for s in STAGE_ORDER}
    sections["sft"]["resources"] = {"gpus_per_node": 1, "cpus_per_task": 2}
    path = _smoke_with(desktop, "needs-gpu.yaml", **sections)
    panel, notices = _panel(qtbot, session, pipeline=LoadedPipeline(path, problems=()))
    panel.launch_button.click()
    qtbot.waitUntil(lambda: any(n.level == "error" for n in notices), timeout=60_000)
    _wait(qtbot, panel)
    error = next(n for n in notices if n.level == "error")
    text = error.text + error.details
    assert "preflight" in text and "sft asks for 1 GPU(s) per node" in text, text
    assert session.registry.list() == []  # no run recorded, nothing started
    assert panel.launch_button.isEnabled()


def test_a_launch_stops_when_the_user_refuses_an_unknown_host_key(qtbot, ssh_env, desktop):
    known = desktop / "empty_known_hosts"
    known.write_text("")
    store = ProfileStore()
    store.add(ClusterProfile(name="loop", host="127.0.0.1", port=ssh_env.target.port,
                             user=ssh_env.pair.user, identity_file=str(ssh_env.pair.client_key),
                             use_agent=False, workdir=str(desktop / "remote-work"),
                             python=sys.executable))
    session = AppSession(store, RunRegistry(), ssh_options={
        "known_hosts": str(known), "ssh_config": str(ssh_env.ssh_config)})
    asked = []
    try:
        path = _smoke_with(desktop, "loop.yaml", **{
            s: {"enabled": s == "seeds", "placement": "loop"} for s in STAGE_ORDER})
        panel, notices = _panel(qtbot, session, pipeline=LoadedPipeline(path, problems=()),
                                confirm=lambda owner, key: asked.append(key) or False)
        panel.launch()
        qtbot.waitUntil(lambda: not panel.busy(), timeout=30_000)
        _wait(qtbot, panel)
    finally:
        QThreadPool.globalInstance().waitForDone(10_000)
        session.close()
    assert [(k.host, k.port) for k in asked] == [("127.0.0.1", ssh_env.target.port)]
    assert notices[-1].level == "error" and "was not accepted" in notices[-1].text
    assert session.registry.list() == [] and known.read_text() == ""
    assert not (desktop / "remote-work").exists()


def test_screenshot_of_the_panel(qtbot, session, screenshot_dir):
    session.profiles.add(ClusterProfile(name="h200", host="h200.example", scheduler="slurm",
                                        gpu_type="H200"))
    panel, _ = _panel(qtbot, session)
    _shown(qtbot, panel)
    panel.select("rl")
    combo = panel.forms["rl"].editors["rl.placement"].widget
    combo.setCurrentIndex(combo.findData("h200"))
    combo.activated.emit(combo.currentIndex())
    panel.forms["eval"].editors["eval.enabled"].widget.setChecked(False)
    _type(qtbot, panel, "rl.mini_batch_size", "3")
    assert [p.key for p in panel.problems()] == ["rl.mini_batch_size"]
    QApplication.processEvents()
    path = screenshot_dir / "pipeline.png"
    assert panel.grab().save(str(path))
    assert path.stat().st_size > 10_000
