"""The LLM endpoints editor: the ``llms`` section as a list of named endpoints, one form each.

    editor = LLMEndpointsForm()
    editor.load(config_data)                 # the whole config's plain data (reads "llms")
    editor.changed.connect(lambda key: editor.apply_to(config_data))
    editor.add_endpoint("judge")             # or the name box + Add; Remove; double-click renames
    editor.show_problems(problems)           # "llms.<name>.<field>" keys: field and name marked
    editor.focus("llms.generator.base_url")

The same interface as ``gui.schema_form.SchemaForm`` (``changed``, ``load``, ``apply_to``,
``show_problems``, ``focus``, ``widget_for``, ``invalid_keys``, ``set_profiles``), so the
Pipeline panel treats it as one more form. Left: the endpoint names (a name with a problem is
red, the problem in its tooltip). Right: the chosen endpoint's backend (openai, vllm,
transformers) and a ``SchemaForm`` of that backend's model, keys ``llms.<name>.<field>``.
Changing the backend keeps the fields both backends have (``model``...). Renaming an endpoint
also renames it in every stage's ``llm`` field (``renamed`` says so); removing one leaves the
stages naming it for the schema to list as problems.

Nothing is lost: an endpoint whose value is not a mapping with a known backend (a file's typo)
is shown as YAML text and written back as typed; a whole ``llms`` that is not a mapping stays
as it was until an endpoint is added. The widget does no validation (the schema does, in the
caller) and no I/O. Left out: reordering endpoints, testing an endpoint from here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, get_args

import yaml
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from engine.contracts.config import (
    NAME_PATTERN,
    STAGE_ORDER,
    ConfigProblem,
    LLMEndpoint,
    OpenAIEndpoint,
    TransformersEndpoint,
    VLLMOfflineEndpoint,
)
from gui.schema_form import INVALID_STYLE, SchemaForm, Unparsable, monospace, read_yaml_value

BACKENDS: dict[str, type] = {
    get_args(m.model_fields["backend"].annotation)[0]: m
    for m in (OpenAIEndpoint, VLLMOfflineEndpoint, TransformersEndpoint)
}
assert len(BACKENDS) == len(get_args(get_args(LLMEndpoint)[0]))  # every backend of the schema
INVALID_NAME = QColor("#c62828")


class _Page(QWidget):
    """One endpoint: a backend combo over that backend's form, or YAML text for a value that
    is no mapping with a known backend."""

    def __init__(self, owner: LLMEndpointsForm, name: str, value: Any) -> None:
        super().__init__()
        self.owner, self.name = owner, name
        self.form: SchemaForm | None = None
        self.text: QPlainTextEdit | None = None
        self.backend = QComboBox(objectName=f"backend:{name}")
        self.backend.addItems(list(BACKENDS))
        self.backend.setToolTip("How the stages reach this model: an OpenAI-compatible HTTP "
                                "server, vLLM inside the stage's process, or transformers "
                                "(slow; CPU smoke runs)")
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        top = QFormLayout()
        top.addRow("Backend", self.backend)
        column.addLayout(top)
        self.body = QVBoxLayout()
        column.addLayout(self.body, 1)
        self.set_value(value)
        self.backend.currentTextChanged.connect(self._backend_picked)

    def set_value(self, value: Any) -> None:
        for i in reversed(range(self.body.count())):
            widget = self.body.takeAt(i).widget()
            if widget is not None:
                widget.deleteLater()
        self.form = self.text = None
        self.value = value
        model = BACKENDS.get(value.get("backend")) if isinstance(value, dict) else None
        self.backend.blockSignals(True)
        if model is None:
            self.backend.setCurrentIndex(-1)
            self.text = QPlainTextEdit(objectName=f"edit:llms.{self.name}")
            self.text.setFont(monospace())
            self.text.setPlainText(yaml.safe_dump(value, sort_keys=False, allow_unicode=True))
            self.text.setToolTip("Not an endpoint this app can show as a form: pick a backend "
                                 "above, or fix the YAML")
            self.text.textChanged.connect(lambda: self.owner._edited(f"llms.{self.name}"))
            self.body.addWidget(self.text)
        else:
            self.backend.setCurrentText(value["backend"])
            names = [n for n in model.model_fields if n != "backend"]
            self.form = SchemaForm(model, f"llms.{self.name}", names)
            self.form.load(value)
            self.form.changed.connect(self.owner._edited)
            self.body.addWidget(self.form, 1)
            if value["backend"] == "openai":
                self.body.addWidget(self._test_box())
        self.backend.blockSignals(False)

    def _test_box(self) -> QWidget:
        """Test: the endpoint as the form shows it, from this computer (engine.llm.
        endpoint_check: reachability, model, context length, slots, a 1-token completion,
        latency, whether the key's variable is set; never the key)."""
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)
        self.test_button = QPushButton("Test from this computer",
                                       objectName=f"llm_test:{self.name}")
        self.test_button.setToolTip("Ask the server what the stages will: models, context "
                                    "length, parallel slots and a 1-token completion. A stage "
                                    "on a cluster reaches it from there: `python -m engine "
                                    "check-llm --config FILE NAME` runs the same check on a "
                                    "cluster host.")
        self.test_button.clicked.connect(self.run_test)
        self.test_result = QPlainTextEdit(objectName=f"llm_test_result:{self.name}")
        self.test_result.setReadOnly(True)
        self.test_result.setFont(monospace())
        self.test_result.setMaximumHeight(150)
        self.test_result.setPlaceholderText("Test to see the server's answers here.")
        lay.addWidget(self.test_button)
        lay.addWidget(self.test_result)
        return box

    def run_test(self) -> None:
        from engine.contracts.llm_check import check_endpoint
        from gui.worker import run_in_worker
        from remote.display_text import visible

        data, problems = self.current()
        try:
            endpoint = OpenAIEndpoint.model_validate(data)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            self.test_result.setPlainText(f"Fix the fields first: {exc}")
            return
        if problems:
            self.test_result.setPlainText("Fix the fields first: " + problems[0].message)
            return
        self.test_button.setEnabled(False)
        self.test_result.setPlainText(f"Testing {endpoint.base_url} \u2026")

        def done(report: Any) -> None:
            self.test_button.setEnabled(True)
            verdict = "usable" if report.ok else "NOT usable"
            self.test_result.setPlainText(visible(f"{self.name}: {verdict}\n"
                                                  + "\n".join(report.lines()),
                                                  keep_newlines=True))

        def failed(error: Any) -> None:
            self.test_button.setEnabled(True)
            self.test_result.setPlainText(visible(f"{self.name}: the test failed: "
                                                  f"{error.message}", keep_newlines=True))

        run_in_worker(check_endpoint, endpoint, self.name, timeout_s=60.0, on_done=done,
                      on_failed=failed, owner=self)

    def _backend_picked(self, backend: str) -> None:
        model = BACKENDS[backend]
        old, _ = self.current()
        old = old if isinstance(old, dict) else {}
        kept = {k: v for k, v in old.items() if k in model.model_fields}  # model, timeouts...
        self.set_value({**kept, "backend": backend})
        self.owner._edited(f"llms.{self.name}.backend")

    def current(self) -> tuple[Any, list[ConfigProblem]]:
        """The endpoint as plain data, and the problems only the editor sees: YAML text that
        does not parse (the value is then the last one that did)."""
        if self.text is None:
            assert self.form is not None
            data = dict(self.value)
            return data, self.form.apply_to(data)
        try:
            self.value = read_yaml_value(self.text.toPlainText(), f"llms.{self.name}")
        except Unparsable as exc:
            return self.value, [ConfigProblem(f"llms.{self.name}", exc.message, exc.fix)]
        return self.value, []


class LLMEndpointsForm(QWidget):
    """The ``llms`` section; see the module docstring."""

    changed = Signal(str)  # the dotted key the user edited ("llms.judge.model", "llms")
    renamed = Signal(str, str)  # old name, new name

    def __init__(self, heading: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setStyleSheet(INVALID_STYLE)
        self._pages: dict[str, _Page] = {}
        self._raw: Any = None  # an ``llms`` that is not a mapping, kept as it was
        self._renames: list[tuple[str, str]] = []  # not yet applied to the stages
        self._loading = False

        self.names = QListWidget(objectName="llm_names")
        self.names.setToolTip("The endpoints stages can name in their llm field; "
                              "double-click to rename")
        self.names.currentRowChanged.connect(self._show_row)
        self.names.itemChanged.connect(self._item_renamed)
        self.new_name = QLineEdit(objectName="llm_new_name")
        self.new_name.setPlaceholderText("new endpoint name")
        self.new_name.returnPressed.connect(lambda: self.add_endpoint(self.new_name.text()))
        add = QPushButton("Add", objectName="llm_add")
        add.clicked.connect(lambda: self.add_endpoint(self.new_name.text()))
        self.remove_button = QPushButton("Remove", objectName="llm_remove")
        self.remove_button.clicked.connect(self.remove_current)
        self.message = QLabel(objectName="llm_message")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #c62828;")
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(self.names, 1)
        row = QHBoxLayout()
        row.addWidget(self.new_name, 1)
        row.addWidget(add)
        lv.addLayout(row)
        lv.addWidget(self.remove_button)
        lv.addWidget(self.message)

        self.stack = QStackedWidget(objectName="llm_pages")
        self.empty = QLabel("No endpoint yet: type a name and Add.")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.stack.addWidget(self.empty)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(self.stack)
        split.setSizes([180, 420])
        column = QVBoxLayout(self)
        if heading:
            head = QLabel(heading, objectName="form_heading")
            head.setWordWrap(True)
            column.addWidget(head)
        column.addWidget(split, 1)

    # -- values

    def load(self, data: Any) -> None:
        """Show the ``llms`` of a whole config's plain data (no signal)."""
        llms = data.get("llms") if isinstance(data, dict) else None
        self._loading = True
        try:
            for page in self._pages.values():
                self.stack.removeWidget(page)
                page.deleteLater()
            self._pages, self._renames = {}, []
            self._raw = None if isinstance(llms, dict) else llms
            self.names.blockSignals(True)  # no row changes while the list and pages differ
            self.names.clear()
            self.names.blockSignals(False)
            for name, value in (llms.items() if isinstance(llms, dict) else ()):
                self._add_page(str(name), value)
            self.names.setCurrentRow(0 if self._pages else -1)
            self._show_row(self.names.currentRow())
            self.message.setText("" if self._raw is None else
                                 f"llms in this config is not a mapping of endpoints "
                                 f"({type(self._raw).__name__}); it is kept as it is until "
                                 "you add an endpoint here")
        finally:
            self._loading = False

    def apply_to(self, data: dict) -> list[ConfigProblem]:
        """Write the endpoints into ``data["llms"]`` (and pending renames into the stages'
        ``llm`` fields); the problems only this editor can see (YAML that does not parse)."""
        problems: list[ConfigProblem] = []
        if self._raw is not None and not self._pages:
            data["llms"] = self._raw
            return problems
        llms: dict[str, Any] = {}
        for name, page in self._pages.items():
            llms[name], found = page.current()
            problems += found
        data["llms"] = llms
        for before, after in self._renames:
            for stage in STAGE_ORDER:
                section = data.get(stage)
                if isinstance(section, dict) and section.get("llm") == before:
                    section["llm"] = after
        self._renames = []
        return problems

    def endpoint_names(self) -> list[str]:
        return list(self._pages)

    def page(self, name: str) -> _Page:
        return self._pages[name]

    # -- add, remove, rename

    def add_endpoint(self, name: str, backend: str = "openai") -> bool:
        """Add an endpoint (``model`` left for the user; the schema lists it until set)."""
        name = name.strip()
        problem = self._name_problem(name)
        if problem:
            self.message.setText(problem)
            return False
        self.message.setText("")
        self._raw = None
        value: dict[str, Any] = {"backend": backend}
        if backend == "openai":
            value["base_url"] = "http://127.0.0.1:8000/v1"
        self._add_page(name, value)
        self.names.setCurrentRow(self.names.count() - 1)
        self.new_name.clear()
        self._edited(f"llms.{name}")
        return True

    def remove_current(self) -> str | None:
        row = self.names.currentRow()
        if row < 0:
            return None
        name = self.names.item(row).data(Qt.ItemDataRole.UserRole)
        page = self._pages.pop(name)
        self.stack.removeWidget(page)
        page.deleteLater()
        self.names.takeItem(row)
        self._show_row(self.names.currentRow())
        self._edited("llms")
        return name

    def rename(self, old: str, new: str) -> bool:
        new = new.strip()
        if new == old:
            return True
        problem = self._name_problem(new)
        if problem:
            self.message.setText(problem)
            return False
        self.message.setText("")
        page = self._pages[old]
        value, _ = page.current()
        self.stack.removeWidget(page)
        page.deleteLater()
        new_page = _Page(self, new, value)  # a new form: its keys follow the new name
        self.stack.addWidget(new_page)
        self._pages = {(new if n == old else n): (new_page if n == old else p)
                       for n, p in self._pages.items()}  # same order
        item = self.names.item(self._row_of(old))
        self.names.blockSignals(True)
        item.setText(new)
        item.setData(Qt.ItemDataRole.UserRole, new)
        self.names.blockSignals(False)
        self.stack.setCurrentWidget(new_page)
        self._renames.append((old, new))
        self.renamed.emit(old, new)
        self._edited(f"llms.{new}")
        return True

    def _row_of(self, name: str) -> int:
        return next(i for i in range(self.names.count())
                    if self.names.item(i).data(Qt.ItemDataRole.UserRole) == name)

    def _name_problem(self, name: str) -> str:
        if not name:
            return "Type a name for the endpoint first."
        if not re.match(NAME_PATTERN, name):
            return (f"'{name}' is not a usable name: letters, digits, '.', '_' and '-', "
                    "starting with a letter or digit, at most 64")
        if name in self._pages:
            return f"There is an endpoint named '{name}' already: pick another name."
        return ""

    def _add_page(self, name: str, value: Any) -> None:
        page = _Page(self, name, value)
        self._pages[name] = page
        self.stack.addWidget(page)
        item = QListWidgetItem(name)
        item.setData(Qt.ItemDataRole.UserRole, name)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
        self.names.blockSignals(True)
        self.names.addItem(item)
        self.names.blockSignals(False)

    def _item_renamed(self, item: QListWidgetItem) -> None:
        old = item.data(Qt.ItemDataRole.UserRole)
        if item.text() != old and not self.rename(old, item.text()):
            self.names.blockSignals(True)
            item.setText(old)  # refused: the message says why
            self.names.blockSignals(False)

    def _show_row(self, row: int) -> None:
        if row < 0 or row >= self.names.count():
            self.stack.setCurrentWidget(self.empty)
            self.remove_button.setEnabled(False)
            return
        self.remove_button.setEnabled(True)
        self.stack.setCurrentWidget(self._pages[self.names.item(row).data(
            Qt.ItemDataRole.UserRole)])

    def _edited(self, key: str) -> None:
        if not self._loading:
            self.changed.emit(key)

    # -- problems and focus

    def _name_of(self, key: str) -> str | None:
        """The endpoint a dotted key belongs to (names may contain dots: the longest wins)."""
        found = [n for n in self._pages if key == f"llms.{n}" or key.startswith(f"llms.{n}.")]
        return max(found, key=len) if found else None

    def widget_for(self, key: str) -> QWidget | None:
        name = self._name_of(key)
        if name is None:
            return self.names if key.startswith("llms") else None
        page = self._pages[name]
        if page.text is not None:
            return page.text
        if key == f"llms.{name}.backend":
            return page.backend
        assert page.form is not None
        return page.form.widget_for(key) or page.backend

    def show_problems(self, problems: Iterable[ConfigProblem]) -> None:
        by_name: dict[str | None, list[ConfigProblem]] = {}
        for p in problems:
            by_name.setdefault(self._name_of(p.key), []).append(p)
        for i in range(self.names.count()):
            item = self.names.item(i)
            name = item.data(Qt.ItemDataRole.UserRole)
            mine = by_name.get(name, [])
            item.setForeground(QBrush(INVALID_NAME) if mine else QBrush())
            item.setToolTip("\n".join(f"{p.key}: {p.message} — {p.fix}" for p in mine))
            page = self._pages[name]
            if page.form is not None:
                page.form.show_problems(mine)
            elif page.text is not None:
                page.text.setProperty("invalid", bool(mine))
                page.text.style().unpolish(page.text)
                page.text.style().polish(page.text)
        section = by_name.get(None, [])
        if section and self._raw is None:
            self.message.setText("\n".join(f"{p.message} — {p.fix}" for p in section))
        elif self._raw is None:
            self.message.setText("")

    def invalid_keys(self) -> list[str]:
        keys = []
        for name, page in self._pages.items():
            if page.form is not None:
                keys += page.form.invalid_keys()
            elif page.text is not None and page.text.property("invalid"):
                keys.append(f"llms.{name}")
        return keys

    def focus(self, key: str) -> QWidget | None:
        """Show the endpoint of ``key`` and put the cursor in its field."""
        name = self._name_of(key)
        if name is not None:
            self.names.setCurrentRow(self._row_of(name))
            page = self._pages[name]
            if page.form is not None and key not in (f"llms.{name}", f"llms.{name}.backend"):
                return page.form.focus(key)
        widget = self.widget_for(key)
        if widget is not None:
            widget.setFocus()
        return widget

    def ensureWidgetVisible(self, widget: QWidget) -> None:  # noqa: N802 (SchemaForm's name)
        name = next((n for n, p in self._pages.items() if p.isAncestorOf(widget)), None)
        page = self._pages.get(name) if name else None
        if page is not None and page.form is not None:
            page.form.ensureWidgetVisible(widget)

    def set_profiles(self, choices: Sequence[tuple[str, str]]) -> None:
        """Endpoints have no placement: nothing to do (the SchemaForm interface)."""
