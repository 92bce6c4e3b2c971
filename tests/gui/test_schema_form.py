"""gui/schema_form.py: forms generated from engine/schema/, their values and their problems.

Run: .venv/bin/python -m pytest tests/gui/test_schema_form.py -q

Real forms of the real schema sections; values go through the real validator.
"""

from __future__ import annotations

import copy

import pytest
from PySide6.QtWidgets import QCheckBox, QComboBox, QGroupBox, QLineEdit, QPlainTextEdit

from engine.schema import (
    STAGE_ORDER,
    ConfigError,
    ConfigProblem,
    PipelineConfig,
    config_from_dict,
    iter_fields,
)
from gui.schema_form import PlacementEditor, SchemaForm

DEFAULTS = PipelineConfig().model_dump(mode="json")


def _form(qtbot, stage: str) -> SchemaForm:
    form = SchemaForm(PipelineConfig.model_fields[stage].annotation, stage)
    qtbot.addWidget(form)
    form.load(copy.deepcopy(DEFAULTS[stage]))
    return form


def _editable_paths(stage: str) -> dict[str, tuple[str, bool]]:
    """dotted key -> (description, holds a model) for every field a form shows: list items
    and mapping values are inside their field's YAML text, so they have no row of their own."""
    model = PipelineConfig.model_fields[stage].annotation
    out = {}
    for path, info, _ in iter_fields(model, f"{stage}."):
        if "*" in path or "[" in path:
            continue
        nested = hasattr(info.annotation, "model_fields")
        out[path] = (info.description, nested)
    return out


@pytest.mark.parametrize("stage", STAGE_ORDER)
def test_every_field_of_a_stage_has_a_row_with_its_description_as_tooltip(qtbot, stage):
    form = _form(qtbot, stage)
    expected = _editable_paths(stage)
    assert set(form.editors) | set(form.groups) == set(expected)
    for key, (description, nested) in expected.items():
        widget = form.groups[key] if nested else form.editors[key].widget
        assert widget.toolTip().startswith(description), key


def test_the_run_and_llm_sections_have_rows_too(qtbot):
    run = SchemaForm(PipelineConfig, "", ("schema_version", "run"))
    llms = SchemaForm(PipelineConfig, "", ("llms",))
    qtbot.addWidget(run)
    qtbot.addWidget(llms)
    assert set(run.editors) == {"schema_version", "run.name", "run.seed",
                                "run.metrics.tensorboard", "run.metrics.wandb.enabled",
                                "run.metrics.wandb.project", "run.metrics.wandb.entity",
                                "run.metrics.wandb.mode"}
    assert set(run.groups) == {"run", "run.metrics", "run.metrics.wandb"}
    assert run.editors["run.seed"].widget.toolTip().startswith("Base random seed")
    assert isinstance(llms.editors["llms"].widget, QPlainTextEdit)
    llms.load(DEFAULTS)
    assert "backend: openai" in llms.editors["llms"].widget.toPlainText()


def test_editors_follow_the_field_types(qtbot):
    sft, evolve, seeds = _form(qtbot, "sft"), _form(qtbot, "evolve"), _form(qtbot, "seeds")
    assert isinstance(sft.editors["sft.packing"].widget, QCheckBox)
    assert isinstance(sft.editors["sft.lr"].widget, QLineEdit)
    zero = sft.editors["sft.zero_stage"].widget
    assert isinstance(zero, QComboBox)
    assert [zero.itemData(i) for i in range(zero.count())] == [0, 1, 2, 3]
    assert isinstance(sft.groups["sft.resources"], QGroupBox)
    assert isinstance(sft.editors["sft.placement"], PlacementEditor)
    assert "between 1 and 1024" in sft.editors["sft.resources.nodes"].widget.placeholderText()
    assert evolve.editors["evolve.branching"].widget.text() == "[2, 1, 2, 1]"
    sources = seeds.editors["seeds.sources"].widget
    assert isinstance(sources, QPlainTextEdit)
    assert "assets://seeds/seeds.jsonl" in sources.toPlainText()


@pytest.mark.parametrize("stage", STAGE_ORDER)
def test_loading_then_applying_gives_back_the_same_data(qtbot, stage):
    form = _form(qtbot, stage)
    form.set_profiles([("This computer", "This computer (local · CPU)")])
    out: dict = {}
    assert form.apply_to(out) == []
    assert out == DEFAULTS[stage]


def test_typed_text_reaches_the_schema_as_typed_and_edits_are_signalled(qtbot):
    form = _form(qtbot, "sft")
    edited: list[str] = []
    form.changed.connect(edited.append)
    lr = form.editors["sft.lr"].widget
    lr.selectAll()
    qtbot.keyClicks(lr, "abc")
    assert edited and set(edited) == {"sft.lr"}
    data = {"sft": copy.deepcopy(DEFAULTS["sft"])}
    form.apply_to(data["sft"])
    assert data["sft"]["lr"] == "abc"
    with pytest.raises(ConfigError) as err:
        config_from_dict(data)
    assert [p.key for p in err.value.problems] == ["sft.lr"]
    # loading is not an edit
    edited.clear()
    form.load(DEFAULTS["sft"])
    assert edited == []


def test_an_empty_optional_number_is_null_and_an_empty_required_one_is_an_error(qtbot):
    form = _form(qtbot, "sft")
    out: dict = {}
    form.editors["sft.seed"].widget.setText("")
    form.editors["sft.epochs"].widget.setText("")
    form.apply_to(out)
    assert out["seed"] is None and out["epochs"] == ""
    with pytest.raises(ConfigError) as err:
        config_from_dict({"sft": out})
    assert "sft.epochs" in [p.key for p in err.value.problems]


def test_yaml_that_does_not_parse_is_a_problem_of_its_field_and_keeps_the_value(qtbot):
    form = _form(qtbot, "seeds")
    form.editors["seeds.sources"].widget.setPlainText("- path: [unclosed")
    data = copy.deepcopy(DEFAULTS["seeds"])
    problems = form.apply_to(data)
    assert [p.key for p in problems] == ["seeds.sources"]
    assert "YAML syntax error" in problems[0].message
    assert data["sources"] == DEFAULTS["seeds"]["sources"]


def test_problems_mark_their_field_and_clear_when_gone(qtbot):
    form = _form(qtbot, "seeds")
    problem = ConfigProblem("seeds.sources.0.path", "is a URL", "give a file")
    nodes = ConfigProblem("seeds.resources.nodes", "must be at least 1", "set it to 1")
    form.show_problems([problem, nodes])
    assert sorted(form.invalid_keys()) == ["seeds.resources.nodes", "seeds.sources"]
    sources = form.editors["seeds.sources"].widget
    assert "is a URL — give a file" in sources.toolTip()
    assert sources.toolTip().startswith("Seed files to import")
    form.show_problems([nodes])
    assert form.invalid_keys() == ["seeds.resources.nodes"]
    assert "is a URL" not in sources.toolTip()
    form.show_problems([])
    assert form.invalid_keys() == []


def test_a_rule_on_a_whole_group_marks_the_group(qtbot):
    form = _form(qtbot, "tasks")
    form.show_problems([ConfigProblem("tasks.style_weights", "all weights are 0", "raise one")])
    assert form.invalid_keys() == ["tasks.style_weights"]
    assert form.widget_for("tasks.style_weights.codeforces") is \
        form.editors["tasks.style_weights.codeforces"].widget
    assert form.widget_for("tasks.nothing_like_this") is None


def test_a_loaded_value_outside_the_choices_is_shown_and_kept(qtbot):
    form = _form(qtbot, "sft")
    data = copy.deepcopy(DEFAULTS["sft"]) | {"zero_stage": 7, "placement": "elsewhere"}
    form.set_profiles([("This computer", "This computer (local · CPU)"),
                       ("h200", "h200 (slurm · H200)")])
    form.load(data)
    zero = form.editors["sft.zero_stage"].widget
    assert zero.currentText() == "7 (not a choice)"
    placement = form.editors["sft.placement"].widget
    assert [placement.itemText(i) for i in range(placement.count())] == [
        "This computer (local · CPU)", "h200 (slurm · H200)", "elsewhere (no such profile)"]
    out: dict = {}
    form.apply_to(out)
    assert out["zero_stage"] == 7 and out["placement"] == "elsewhere"
