"""Forms generated from the pipeline schema: one editor per pydantic field, tooltips from it.

    form = SchemaForm(SftConfig, prefix="sft")       # or (PipelineConfig, include=("run",))
    form.load(data["sft"])                           # plain data, as in a YAML file
    form.changed.connect(lambda key: form.apply_to(data["sft"]))
    form.show_problems(problems)                     # ConfigProblems: red border + tooltip
    form.focus("sft.resources.nodes")

Show the form of every stage alone: ``python -m gui.schema_form [stage]``.

The engine's field-description layer (``engine.schema.fields.field_specs``: the same peeling
and bounds text validation's messages use) gives a ``FieldSpec`` per field, which picks the editor:
bool -> check box, Literal -> combo box, int/float -> line edit, str -> line edit, a nested
model -> a group box with its own rows, and lists, mappings and unions -> YAML text (one line
for lists of plain values, a small box otherwise). The title is the label; the description
(and the bounds) is the tooltip. Hand-made widgets are listed in ``HAND_MADE``: only
``placement`` (the cluster profiles, with their GPU labels).

Numbers are line edits, not spin boxes, on purpose: a spin box clamps what is typed or
loaded to its range, so a file with ``sft.lr: -1`` would be shown, and saved, as a valid
value and the error would vanish. Here the text is what gets validated (by the schema, in the
caller), and every problem stays visible until it is fixed.

The form keeps no config of its own and does no validation: ``apply_to`` writes the editors
into a plain dict (leaving keys it does not know, such as a mistyped key from a file, for the
schema to report), and returns the problems only the form can see (YAML that does not parse).

Left out: per-item editors for lists and mappings (the YAML text stands in), undo.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import yaml
from pydantic import BaseModel
from PySide6.QtCore import Signal
from PySide6.QtGui import QFont, QFontDatabase
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from engine.contracts.config import ConfigError, ConfigProblem, FieldSpec, field_specs, read_yaml

INVALID_STYLE = """
QLineEdit[invalid="true"], QComboBox[invalid="true"], QPlainTextEdit[invalid="true"] {
    border: 2px solid #c62828; }
QCheckBox[invalid="true"] { color: #c62828; }
QGroupBox[invalid="true"] { color: #c62828; font-weight: bold; }
"""

# --- Editors: one small class per kind, each wrapping one widget


def monospace() -> QFont:
    return QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)



class Unparsable(ValueError):
    """Text in an editor that cannot become a value (YAML that does not parse)."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.message, self.fix = message, fix


class _Editor:
    widget: QWidget

    def __init__(self, spec: FieldSpec) -> None:
        self.spec = spec

    def set(self, value: Any) -> None:
        raise NotImplementedError

    def get(self) -> Any:
        raise NotImplementedError

    def on_change(self, callback: Callable[[], None]) -> None:
        raise NotImplementedError


class _BoolEditor(_Editor):
    def __init__(self, spec: FieldSpec) -> None:
        super().__init__(spec)
        self.widget = QCheckBox()

    def set(self, value: Any) -> None:
        self.widget.setChecked(value is True)

    def get(self) -> Any:
        return self.widget.isChecked()

    def on_change(self, callback: Callable[[], None]) -> None:
        self.widget.toggled.connect(lambda _: callback())


class _LineEditor(_Editor):
    """Text and numbers. A number that does not parse goes to the schema as typed, so its
    message ("must be a valid number (got 'abc')") is the schema's own."""

    def __init__(self, spec: FieldSpec) -> None:
        super().__init__(spec)
        self.widget = QLineEdit()
        hint = spec.bounds or ("text" if spec.kind == "text" else "")
        if spec.nullable:
            hint = f"{hint}; empty: none" if hint else "empty: none"
        self.widget.setPlaceholderText(hint)

    def set(self, value: Any) -> None:
        self.widget.setText("" if value is None else str(value))

    def get(self) -> Any:
        text = self.widget.text()
        if text.strip() == "" and self.spec.nullable:
            return None
        if self.spec.kind == "int":
            try:
                return int(text.strip())
            except ValueError:
                return text
        if self.spec.kind == "float":
            try:
                return float(text.strip())
            except ValueError:
                return text
        return text

    def on_change(self, callback: Callable[[], None]) -> None:
        self.widget.textEdited.connect(lambda _: callback())


class _ChoiceEditor(_Editor):
    def __init__(self, spec: FieldSpec) -> None:
        super().__init__(spec)
        self.widget = QComboBox()
        if spec.nullable:
            self.widget.addItem("(none)", None)
        for choice in spec.choices:
            self.widget.addItem(str(choice), choice)

    def set(self, value: Any) -> None:
        index = self.widget.findData(value)
        if index < 0:  # a value from a file that is not a choice: shown, so its error is too
            self.widget.addItem(f"{value} (not a choice)", value)
            index = self.widget.count() - 1
        self.widget.setCurrentIndex(index)

    def get(self) -> Any:
        return self.widget.currentData()

    def on_change(self, callback: Callable[[], None]) -> None:
        self.widget.activated.connect(lambda _: callback())


def read_yaml_value(text: str, key: str) -> Any:
    """YAML text of one field as data (the engine's own YAML rules); empty text is null."""
    if not text.strip():
        return None
    try:
        return read_yaml(text, key)
    except ConfigError as exc:
        p = exc.problems[0]
        raise Unparsable(p.message, p.fix) from None


class _YamlEditor(_Editor):
    """Lists, mappings and unions as YAML text: one line for a list of plain values."""

    def __init__(self, spec: FieldSpec) -> None:
        super().__init__(spec)
        if spec.kind == "yaml_line":
            self.widget = QLineEdit()
            self.widget.setPlaceholderText("YAML, e.g. [1, 2, 3]")
        else:
            self.widget = QPlainTextEdit()
            self.widget.setTabChangesFocus(True)
            self.widget.setMinimumHeight(110)
        self.widget.setFont(monospace())

    def set(self, value: Any) -> None:
        if self.spec.kind == "yaml_line":
            text = yaml.safe_dump(value, default_flow_style=True, width=10_000,
                                  allow_unicode=True).strip()
            self.widget.setText(text.removesuffix("...").strip())  # a scalar's document end
        else:
            self.widget.setPlainText(yaml.safe_dump(value, sort_keys=False, allow_unicode=True,
                                                    default_flow_style=None, width=90))

    def _text(self) -> str:
        w = self.widget
        return w.text() if isinstance(w, QLineEdit) else w.toPlainText()

    def get(self) -> Any:
        return read_yaml_value(self._text(), self.spec.name)

    def on_change(self, callback: Callable[[], None]) -> None:
        if isinstance(self.widget, QLineEdit):
            self.widget.textEdited.connect(lambda _: callback())
        else:
            self.widget.textChanged.connect(callback)


class PlacementEditor(_Editor):
    """The cluster profile a stage runs on, each shown with its scheduler and GPU label."""

    def __init__(self, spec: FieldSpec) -> None:
        super().__init__(spec)
        self.widget = QComboBox()
        self._choices: list[tuple[str, str]] = []
        self._value: Any = None

    def set_profiles(self, choices: Sequence[tuple[str, str]]) -> None:
        """(profile name, label) pairs, e.g. ("h200", "h200 (slurm · H200)")."""
        self._choices = list(choices)
        self.set(self._value)

    def set(self, value: Any) -> None:
        self._value = value
        self.widget.blockSignals(True)
        self.widget.clear()
        for name, label in self._choices:
            self.widget.addItem(label, name)
        if self.widget.findData(value) < 0:  # a profile this computer lacks: keep and show it
            self.widget.addItem(f"{value} (no such profile)", value)
        self.widget.setCurrentIndex(self.widget.findData(value))
        self.widget.blockSignals(False)

    def get(self) -> Any:
        return self.widget.currentData()

    def on_change(self, callback: Callable[[], None]) -> None:
        def changed(_: int) -> None:
            self._value = self.widget.currentData()
            callback()

        self.widget.activated.connect(changed)


_EDITORS: dict[str, type[_Editor]] = {
    "bool": _BoolEditor, "int": _LineEditor, "float": _LineEditor, "text": _LineEditor,
    "choice": _ChoiceEditor, "yaml_line": _YamlEditor, "yaml": _YamlEditor,
}
# The hand-made editors, by field name (the short explicit list).
HAND_MADE: dict[str, type[_Editor]] = {"placement": PlacementEditor}


# --- The form


def _mark(widget: QWidget, invalid: bool) -> None:
    if bool(widget.property("invalid")) == invalid:
        return
    widget.setProperty("invalid", invalid)
    widget.style().unpolish(widget)  # a dynamic property only restyles after a re-polish
    widget.style().polish(widget)


class SchemaForm(QScrollArea):
    """Rows for the fields of one model; keys are dotted from ``prefix`` ("sft.lr")."""

    changed = Signal(str)  # the dotted key of the field the user edited

    def __init__(self, model: type[BaseModel], prefix: str = "",
                 include: Sequence[str] | None = None, *, heading: str = "",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model, self.prefix = model, prefix
        self.specs = field_specs(model, include)
        self.editors: dict[str, _Editor] = {}
        self.groups: dict[str, QGroupBox] = {}
        self._group_tips: dict[str, str] = {}
        self._loading = False
        inner = QWidget()
        inner.setStyleSheet(INVALID_STYLE)
        column = QVBoxLayout(inner)
        if heading:
            head = QLabel(heading)
            head.setWordWrap(True)
            head.setObjectName("form_heading")
            column.addWidget(head)
        column.addLayout(self._rows(self.specs, prefix))
        column.addStretch(1)
        self.setWidget(inner)
        self.setWidgetResizable(True)

    def _key(self, prefix: str, name: str) -> str:
        return f"{prefix}.{name}" if prefix else name

    def _rows(self, specs: Sequence[FieldSpec], prefix: str) -> QFormLayout:
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for spec in specs:
            key = self._key(prefix, spec.name)
            if spec.kind == "group":
                box = QGroupBox(spec.title)
                box.setObjectName(f"group:{key}")
                box.setToolTip(spec.tooltip)
                box.setLayout(self._rows(spec.children, key))
                self.groups[key] = box
                self._group_tips[key] = spec.tooltip
                form.addRow(box)
                continue
            editor = HAND_MADE.get(spec.name, _EDITORS[spec.kind])(spec)
            editor.widget.setObjectName(f"edit:{key}")
            editor.widget.setToolTip(spec.tooltip)
            editor.on_change(lambda k=key: self._edited(k))
            label = QLabel(spec.label)
            label.setToolTip(spec.tooltip)
            label.setBuddy(editor.widget)
            self.editors[key] = editor
            form.addRow(label, editor.widget)
        return form

    def _edited(self, key: str) -> None:
        if not self._loading:
            self.changed.emit(key)

    # -- values

    def load(self, data: Any) -> None:
        """Fill the editors from plain data (a missing key shows the schema default)."""
        self._loading = True
        try:
            self._fill(self.specs, self.model, data if isinstance(data, dict) else {},
                       self.prefix)
        finally:
            self._loading = False

    def _fill(self, specs: Sequence[FieldSpec], model: type[BaseModel], data: dict,
              prefix: str) -> None:
        for spec in specs:
            key = self._key(prefix, spec.name)
            if spec.name in data:
                value = data[spec.name]
            else:
                info = model.model_fields[spec.name]
                # a required field (an endpoint's model) starts empty, not as "PydanticUndefined"
                default = None if info.is_required() else info.get_default(
                    call_default_factory=True)
                value = default.model_dump(mode="json") if isinstance(default, BaseModel) \
                    else default
            if spec.kind == "group":
                assert spec.model is not None
                self._fill(spec.children, spec.model, value if isinstance(value, dict) else {},
                           key)
            else:
                self.editors[key].set(value)

    def apply_to(self, data: dict) -> list[ConfigProblem]:
        """Write every editor into ``data`` (in place); the problems of text that does not
        parse (that field keeps its value in ``data``)."""
        return self._apply(self.specs, data, self.prefix)

    def _apply(self, specs: Sequence[FieldSpec], data: dict, prefix: str) -> list[ConfigProblem]:
        problems = []
        for spec in specs:
            key = self._key(prefix, spec.name)
            if spec.kind == "group":
                if not isinstance(data.get(spec.name), dict):
                    data[spec.name] = {}
                problems += self._apply(spec.children, data[spec.name], key)
                continue
            try:
                data[spec.name] = self.editors[key].get()
            except Unparsable as exc:
                problems.append(ConfigProblem(key, exc.message, exc.fix))
        return problems

    def set_profiles(self, choices: Sequence[tuple[str, str]]) -> None:
        for editor in self.editors.values():
            if isinstance(editor, PlacementEditor):
                editor.set_profiles(choices)

    # -- problems and focus

    def widget_for(self, key: str) -> QWidget | None:
        """The editor (or group box) a problem's dotted key belongs to: the key itself, else
        the nearest field above it ("seeds.sources.0.path" -> the sources editor)."""
        parts = key.split(".")
        while parts:
            k = ".".join(parts)
            if k in self.editors:
                return self.editors[k].widget
            if k in self.groups:
                return self.groups[k]
            parts.pop()
        return None

    def show_problems(self, problems: Iterable[ConfigProblem]) -> None:
        """Mark the editors the problems name (red border, problem in the tooltip); clear the
        rest."""
        by_widget: dict[int, list[ConfigProblem]] = {}
        for p in problems:
            w = self.widget_for(p.key)
            if w is not None:
                by_widget.setdefault(id(w), []).append(p)
        tips = {k: e.spec.tooltip for k, e in self.editors.items()}
        for key, editor in self.editors.items():
            self._show(editor.widget, tips[key], by_widget.get(id(editor.widget), []))
        for key, box in self.groups.items():
            self._show(box, self._group_tips[key], by_widget.get(id(box), []))

    def _show(self, widget: QWidget, tip: str, problems: list[ConfigProblem]) -> None:
        _mark(widget, bool(problems))
        lines = [f"Problem: {p.message} — {p.fix}" for p in problems]
        widget.setToolTip("\n\n".join([tip, *lines]))

    def invalid_keys(self) -> list[str]:
        """Keys of the editors and groups marked invalid now."""
        marked = [k for k, e in self.editors.items() if e.widget.property("invalid")]
        return marked + [k for k, b in self.groups.items() if b.property("invalid")]

    def focus(self, key: str) -> QWidget | None:
        """Scroll to the editor of ``key`` and give it the keyboard focus."""
        widget = self.widget_for(key)
        if isinstance(widget, QGroupBox):  # a rule on a whole group: its first editor
            widget = next((e.widget for e in self.editors.values()
                           if widget.isAncestorOf(e.widget)), widget)
        if widget is not None:
            self.ensureWidgetVisible(widget)
            widget.setFocus()
        return widget


if __name__ == "__main__":
    import sys

    from PySide6.QtWidgets import QApplication

    from engine.contracts.config import STAGE_ORDER, PipelineConfig
    from gui.qt_guard import pin_singletons

    pin_singletons()  # PySide6 6.12 leaks None/True references on Python 3.11
    app = QApplication(sys.argv[:1])
    stage = sys.argv[1] if len(sys.argv) > 1 else "sft"
    if stage not in STAGE_ORDER:
        sys.exit(f"stage is one of {', '.join(STAGE_ORDER)}")
    model = PipelineConfig.model_fields[stage].annotation
    demo = SchemaForm(model, stage, heading=PipelineConfig.model_fields[stage].description or "")
    demo.load(PipelineConfig().model_dump(mode="json")[stage])
    demo.resize(560, 720)
    demo.show()
    sys.exit(app.exec())
