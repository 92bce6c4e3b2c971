"""gui/widgets/llm_endpoints.py: the LLMs editor, alone and inside the Pipeline panel.

Run: .venv/bin/python -m pytest tests/gui/test_llm_endpoints.py -q

Real widgets; every config the editor writes is checked with the engine's own schema
(``engine.schema.config_from_dict``), the same check the panel makes.
"""

from __future__ import annotations

import copy

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit, QPushButton

from engine.schema import ConfigError, PipelineConfig, config_from_dict
from gui.widgets.llm_endpoints import LLMEndpointsForm

DEFAULTS = PipelineConfig().model_dump(mode="json")


def problems_of(data: dict) -> list:
    try:
        config_from_dict(copy.deepcopy(data))
    except ConfigError as exc:
        return list(exc.problems)
    return []


@pytest.fixture
def editor(qtbot):
    e = LLMEndpointsForm()
    qtbot.addWidget(e)
    e.resize(800, 500)
    e.show()
    return e


def field(editor: LLMEndpointsForm, key: str) -> QLineEdit:
    widget = editor.widget_for(key)
    assert isinstance(widget, QLineEdit), key
    return widget


def test_the_endpoints_load_by_name_with_a_form_per_backend(editor):
    editor.load(copy.deepcopy(DEFAULTS))
    assert editor.endpoint_names() == ["generator", "solver"]
    url = field(editor, "llms.generator.base_url")
    assert url.text() == "http://127.0.0.1:8000/v1"
    assert url.toolTip().startswith("URL of the API")
    assert editor.page("solver").backend.currentText() == "openai"


def test_an_edit_reaches_the_config_and_says_which_key(editor, qtbot):
    data = copy.deepcopy(DEFAULTS)
    editor.load(data)
    keys: list[str] = []
    editor.changed.connect(keys.append)
    model = field(editor, "llms.solver.model")
    model.clear()
    qtbot.keyClicks(model, "my-reasoner")
    assert keys and keys[-1] == "llms.solver.model"
    assert editor.apply_to(data) == []
    assert config_from_dict(data).llms["solver"].model == "my-reasoner"


def test_an_added_endpoint_lists_what_it_lacks_and_a_problem_focuses_its_field(editor, qtbot):
    data = copy.deepcopy(DEFAULTS)
    editor.load(data)
    editor.new_name.setText("judge")
    qtbot.mouseClick(editor.findChild(QPushButton, "llm_add"), Qt.MouseButton.LeftButton)
    assert editor.endpoint_names() == ["generator", "solver", "judge"]
    assert editor.new_name.text() == ""
    editor.apply_to(data)
    problems = problems_of(data)
    assert [p.key for p in problems] == ["llms.judge.model"]
    editor.show_problems(problems)
    judge = editor.names.item(2)
    assert judge.foreground().color().name() == "#c62828"
    assert "llms.judge.model" in judge.toolTip()
    assert editor.invalid_keys() == ["llms.judge.model"]
    editor.names.setCurrentRow(0)
    widget = editor.focus("llms.judge.model")
    assert editor.names.currentRow() == 2 and widget is field(editor, "llms.judge.model")
    qtbot.keyClicks(widget, "Qwen/Qwen3-8B")
    editor.apply_to(data)
    assert problems_of(data) == []


def test_a_bad_or_taken_name_is_refused_with_the_reason(editor):
    editor.load(copy.deepcopy(DEFAULTS))
    assert not editor.add_endpoint("solver")
    assert "already" in editor.message.text()
    assert not editor.add_endpoint("has space")
    assert "not a usable name" in editor.message.text()
    assert not editor.add_endpoint("")
    assert editor.endpoint_names() == ["generator", "solver"]
    assert not editor.rename("generator", "solver")
    assert editor.endpoint_names() == ["generator", "solver"]


def test_a_new_backend_keeps_the_fields_both_have(editor):
    data = copy.deepcopy(DEFAULTS)
    editor.load(data)
    editor.page("generator").backend.setCurrentText("transformers")
    assert editor.widget_for("llms.generator.base_url") is editor.page("generator").backend
    editor.apply_to(data)
    assert data["llms"]["generator"]["backend"] == "transformers"
    assert data["llms"]["generator"]["model"] == DEFAULTS["llms"]["generator"]["model"]
    assert "base_url" not in data["llms"]["generator"]
    assert problems_of(data) == []


def test_rename_follows_into_the_stages_and_remove_leaves_their_problems(editor):
    data = copy.deepcopy(DEFAULTS)
    users = [s for s, v in data.items() if isinstance(v, dict) and v.get("llm") == "generator"]
    assert users  # the default pipeline names it
    editor.load(data)
    renamed: list[tuple[str, str]] = []
    editor.renamed.connect(lambda a, b: renamed.append((a, b)))
    editor.names.item(0).setText("gen")  # what an in-place edit of the list item does
    assert renamed == [("generator", "gen")]
    assert editor.endpoint_names() == ["gen", "solver"]
    assert field(editor, "llms.gen.base_url").text() == "http://127.0.0.1:8000/v1"
    editor.apply_to(data)
    assert all(data[s]["llm"] == "gen" for s in users)
    assert problems_of(data) == []

    editor.names.setCurrentRow(1)
    assert editor.remove_current() == "solver"
    editor.apply_to(data)
    assert "solver" not in data["llms"]
    assert any("'solver', which is not in llms" in p.message for p in problems_of(data))


def test_an_endpoint_the_form_cannot_show_is_kept_as_yaml_and_nothing_is_lost(editor, qtbot):
    data = copy.deepcopy(DEFAULTS)
    data["llms"]["odd"] = {"backend": "tgi", "url": "http://x"}
    editor.load(data)
    text = editor.page("odd").text
    assert text is not None and "backend: tgi" in text.toPlainText()
    again = copy.deepcopy(data)
    assert editor.apply_to(again) == [] and again == data  # written back as it was
    text.setPlainText("backend: [")
    local = editor.apply_to(again)
    assert [p.key for p in local] == ["llms.odd"]
    assert again["llms"]["odd"] == data["llms"]["odd"]  # the last value that parsed stays
    editor.page("odd").backend.setCurrentText("openai")  # and it can become a form
    assert editor.page("odd").form is not None


def test_an_llms_that_is_no_mapping_stays_until_an_endpoint_is_added(editor):
    data = copy.deepcopy(DEFAULTS)
    data["llms"] = ["generator"]
    editor.load(data)
    assert editor.endpoint_names() == [] and "not a mapping" in editor.message.text()
    out = copy.deepcopy(data)
    editor.apply_to(out)
    assert out["llms"] == ["generator"]
    assert editor.add_endpoint("generator")
    editor.apply_to(out)
    assert list(out["llms"]) == ["generator"] and out["llms"]["generator"]["backend"] == "openai"


def test_screenshot_of_the_editor(editor, qtbot, screenshot_dir):
    data = copy.deepcopy(DEFAULTS)
    editor.load(data)
    editor.add_endpoint("judge")
    editor.apply_to(data)
    editor.show_problems(problems_of(data))
    qtbot.waitExposed(editor)
    path = screenshot_dir / "pipeline-llms.png"
    assert editor.grab().save(str(path)) and path.stat().st_size > 1000


def test_test_asks_the_server_the_form_names_and_shows_its_answers(editor, qtbot):
    """Issue 16: endpoints can be tested from the app (a real server process: the stub)."""
    from openai_stub_server import spawn

    with spawn("--props", "--slots", "2", "--max-model-len", "512",
               "--cut-at-max-tokens") as stub:
        data = copy.deepcopy(DEFAULTS)
        editor.load(data)
        field(editor, "llms.generator.base_url").setText(stub.url)
        field(editor, "llms.generator.model").setText("stub-model")
        page = editor.page("generator")
        page.test_button.click()
        qtbot.waitUntil(lambda: page.test_button.isEnabled(), timeout=30_000)
        text = page.test_result.toPlainText()
        assert text.startswith("generator: usable"), text
        assert "512" in text and "stub-model" in text
        field(editor, "llms.generator.model").setText("not-served")
        page.test_button.click()
        qtbot.waitUntil(lambda: page.test_button.isEnabled(), timeout=30_000)
        assert page.test_result.toPlainText().startswith("generator: NOT usable")
