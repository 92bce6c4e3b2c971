"""The Pipeline panel: edit a pipeline config in forms made from the schema, launch it.

    panel = PipelinePanel(AppSession())          # starts on the smoke preset, ready to launch
    panel.notice.connect(notifications.post)     # every failure, as a Notice
    panel.launched.connect(runs_panel.add)       # the RunRecord of a launch that went ahead
    clusters.profiles_changed.connect(panel.reload_profiles)
    panel.set_config(config, path)               # or show_problems(problems, path): no I/O

Show it alone: ``python -m gui.panels.pipeline [CONFIG.yaml]`` (profiles and runs from the
user's own config and data dirs).

Top: presets, Open…, Save, Save as…, Diff vs last launch, Preview and Launch; below them the
stage graph (gui/widgets/stage_graph.py), where a click on a stage, or on the Run / LLMs
entries, shows that section's form (gui/schema_form.py) on the left. On the right: the
problems, the preview and the diff. Every edit rebuilds the config's plain data and validates
it with the schema right away (CPU only, well under a millisecond); each problem is listed
with its dotted key, message and fix, marks its field, counts on its stage's badge, and a
click on it opens the stage and puts the cursor in the field. Preview and Launch stay off
while there is a problem. A placement naming no cluster profile on this computer is a problem
too (the schema leaves profiles to the app).

The config logic is Qt-free (remote/pipeline_edit.py). Launch writes the resolved config to ``<data dir>/configs/<run name>-<time>.yaml``, plans it,
connects to every cluster of the plan (``gui.hostkey_flow``: unknown host keys are shown to
the user, never accepted silently), then runs ``Launcher.launch``. Diff compares the config
now with the newest run in the registry (the resolved text it launched). All file, profile,
registry and launcher work runs in the worker; the widgets only show results.

``state()`` / ``restore_state()`` give the config text, its file or preset and whether it has
unsaved edits, for the main window to keep in QSettings.

Unsaved edits are never replaced silently: Open… and a preset picked from the list ask first
(``confirm_discard``, Cancel by default; injectable for tests). ``open_file``/``load_preset``
called from code do not ask.

The LLMs entry is its own editor (gui/widgets/llm_endpoints.py): endpoints by name, a form
per backend; renaming one renames it in the stages that name it.

Left out: per-item editors for the other lists (YAML text stands in), CLI-style overrides, and
launching a subset of the enabled stages.
"""

from __future__ import annotations

import copy
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine.contracts.config import (
    STAGE_ORDER,
    ConfigError,
    ConfigProblem,
    PipelineConfig,
    dump_config,
)
from gui.hostkey_flow import ensure_connected
from gui.notify import Notice
from gui.schema_form import SchemaForm, monospace
from gui.widgets.llm_endpoints import LLMEndpointsForm
from gui.widgets.stage_graph import GraphEntry, StageGraph
from gui.worker import Job, WorkerError, run_in_worker
from remote.pipeline_edit import (
    PRESETS_DIR,
    SMOKE_PRESET,
    LaunchPlan,
    LoadedPipeline,
    Validation,
    config_text,
    diff_against_last_launch,
    drop_unknown_keys,
    editable_data,
    entry_of,
    launch_config,
    list_presets,
    list_profiles,
    placement_label,
    plan_launch,
    preview_config,
    read_text,
    validate,
    write_text,
)
from remote.profiles import LOCAL, ClusterProfile
from remote.run_registry import RunRecord
from remote.session import AppSession

if TYPE_CHECKING:
    from remote.errors import HostKeyUnknown

SOURCE = "Pipeline"  # the Notice source
SECTIONS = ("run", "llms")  # graph entries that are not stages
ENTRIES = (*SECTIONS, *STAGE_ORDER)


# ---------------------------------------------------------------------------------------------
# The panel


def confirm_discard(parent: QWidget | None, origin: str, target: str) -> bool:
    """Ask whether unsaved edits may be replaced by ``target``; Cancel is the default."""
    box = QMessageBox(QMessageBox.Icon.Warning, "Unsaved edits",
                      f"The config shown ({origin}) has edits that are not saved.",
                      QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
                      parent)
    box.setObjectName("discard_dialog")
    box.setInformativeText(f"Opening {target} replaces them. Discard the edits?\n\n"
                           "Cancel keeps them; Save as… writes them to a file first.")
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    return box.exec() == QMessageBox.StandardButton.Discard


class PipelinePanel(QWidget):
    notice = Signal(object)  # a gui.notify.Notice
    launched = Signal(object)  # the RunRecord of a launch that went ahead
    config_changed = Signal(object)  # the valid PipelineConfig now, or None

    def __init__(self, session: AppSession, pipeline: LoadedPipeline | None = None, *,
                 presets_dir: Path = PRESETS_DIR,
                 confirm: Callable[[QWidget, HostKeyUnknown], bool] | None = None,
                 confirm_discard: Callable[[QWidget, str, str], bool] = confirm_discard,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("panel_pipeline")
        self.session, self.presets_dir, self._confirm = session, Path(presets_dir), confirm
        self._confirm_discard = confirm_discard
        self._data: dict = PipelineConfig().model_dump(mode="json")
        self._local: dict[str, list[ConfigProblem]] = {}  # per entry: YAML that does not parse
        self._load_problems: list[ConfigProblem] = []  # of a config that did not load at all
        self._result = Validation(None, [])
        self._path: Path | None = None  # where Save writes; None for a preset or new config
        self._preset: str | None = None
        self._modified = False
        self._profiles: list[ClusterProfile] | None = None
        self._pending = 0
        self._launching = self._previewing = False
        self._load_seq = 0
        self._origin = ""  # what the source label names: a file, a preset, "new config"

        self._build()
        self._show_loaded("defaults (loading…)")
        self.reload_profiles()
        self._run(list_presets, self.presets_dir, on_done=self._presets_listed,
                  failed_text="Could not list the presets")
        self._start(pipeline)

    # -- building ----------------------------------------------------------------------------

    def _button(self, text: str, name: str, slot: Callable[[], Any], tip: str) -> QPushButton:
        button = QPushButton(text, objectName=name)
        button.setToolTip(tip)
        button.clicked.connect(lambda: slot())
        return button

    def _build(self) -> None:
        self.preset_combo = QComboBox(objectName="preset_combo")
        self.preset_combo.setToolTip("Load a bundled preset (replaces the config shown)")
        self.preset_combo.setMinimumWidth(130)
        self.preset_combo.activated.connect(self._preset_picked)
        self.open_button = self._button("Open…", "open_button", self.open_dialog,
                                        "Open a pipeline config (YAML)")
        self.save_button = self._button("Save", "save_button", self.save,
                                        "Save to the file it came from (a preset: Save as…)")
        self.save_as_button = self._button("Save as…", "save_as_button", self.save_as,
                                           "Save to a new YAML file")
        self.diff_button = self._button("Diff vs last launch", "diff_button", self.show_diff,
                                        "Compare with the config of the newest launched run")
        self.preview_button = self._button("Preview", "preview_button", self.preview,
                                           "The exact commands and sbatch scripts, per cluster")
        self.launch_button = self._button("Launch", "launch_button", self.launch,
                                          "Launch the enabled stages where they are placed")
        self.launch_button.setStyleSheet("font-weight: bold;")
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Preset:"))
        bar.addWidget(self.preset_combo)
        for b in (self.open_button, self.save_button, self.save_as_button):
            bar.addWidget(b)
        bar.addStretch(1)
        for b in (self.diff_button, self.preview_button, self.launch_button):
            bar.addWidget(b)

        self.source_label = QLabel(objectName="source_label")
        self.source_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status_label = QLabel(objectName="status_label")
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)
        # One line each, never wrapped (a wrapped "(modified)" pushed the forms out of view);
        # the status gives up width first and keeps its whole text in its tooltip.
        self.status_label.setSizePolicy(QSizePolicy.Policy.Ignored,
                                        QSizePolicy.Policy.Preferred)
        self.status_label.setMinimumWidth(40)
        self.place_all_combo = QComboBox(objectName="place_all_combo")
        self.place_all_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.place_all_button = self._button(
            "Apply", "place_all_button", lambda: self.place_all(
                self.place_all_combo.currentData()),
            "Set the placement of every enabled stage to this cluster")
        info = QHBoxLayout()
        info.addWidget(self.source_label)
        info.addWidget(self.status_label, 1)
        info.addWidget(QLabel("All enabled stages on:"))
        info.addWidget(self.place_all_combo)
        info.addWidget(self.place_all_button)

        self.graph = StageGraph()
        self.graph.stage_selected.connect(self._show_entry)

        self.forms: dict[str, SchemaForm | LLMEndpointsForm] = {}
        self.stack = QStackedWidget(objectName="forms")
        for name in ENTRIES:
            form = self._make_form(name)
            form.setObjectName(f"form:{name}")
            form.changed.connect(lambda _key, n=name: self._edited(n))
            self.forms[name] = form
            self.stack.addWidget(form)

        self.problem_list = QListWidget(objectName="problem_list")
        self.problem_list.setWordWrap(True)
        self.problem_list.itemClicked.connect(self._problem_clicked)
        self.problem_list.itemActivated.connect(self._problem_clicked)
        self.drop_unknown_button = self._button(
            "Remove unknown keys", "drop_unknown_button", self.remove_unknown_keys,
            "Delete the keys the schema does not know (listed as problems above)")
        problems = QWidget()
        pv = QVBoxLayout(problems)
        pv.setContentsMargins(0, 0, 0, 0)
        self.problems_note = QLabel(objectName="problems_note")
        self.problems_note.setWordWrap(True)
        pv.addWidget(self.problems_note)
        pv.addWidget(self.problem_list, 1)
        pv.addWidget(self.drop_unknown_button)
        self.preview_view = self._text_view("preview_view", "Preview shows what Launch would "
                                            "run on each cluster: commands and sbatch scripts.")
        self.diff_view = self._text_view("diff_view", "Diff vs last launch compares this "
                                         "config with the newest run launched from here.")
        self.tabs = QTabWidget(objectName="side_tabs")
        self.tabs.addTab(problems, "Problems")
        self.tabs.addTab(self.preview_view, "Preview")
        self.tabs.addTab(self.diff_view, "Diff")

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.stack)
        split.addWidget(self.tabs)
        split.setSizes([560, 460])
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addLayout(info)
        layout.addWidget(self.graph)
        layout.addWidget(split, 1)

    def _make_form(self, name: str) -> SchemaForm | LLMEndpointsForm:
        if name == "run":
            return SchemaForm(PipelineConfig, "", ("schema_version", "run"),
                              heading="Run: its name and base random seed.")
        if name == "llms":
            return LLMEndpointsForm(heading=(
                "LLM endpoints, by name: each has a backend (openai, vllm or transformers) "
                "and that backend's settings. Stages name one in their llm field."))
        info = PipelineConfig.model_fields[name]
        return SchemaForm(info.annotation, name, heading=info.description or name)

    def _text_view(self, name: str, placeholder: str) -> QPlainTextEdit:
        view = QPlainTextEdit(objectName=name)
        view.setReadOnly(True)
        view.setFont(monospace())
        view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        view.setPlaceholderText(placeholder)
        return view

    # -- workers -----------------------------------------------------------------------------

    def _run(self, fn: Callable[..., Any], *args: Any, on_done: Callable[[Any], None],
             failed_text: str, on_failed: Callable[[WorkerError], None] | None = None) -> Job:
        """run_in_worker, counted for busy(); a failure and a handler that raises both end
        up as a Notice (nothing vanishes)."""
        self._pending += 1

        def done(value: Any) -> None:
            self._pending -= 1
            try:
                on_done(value)
            except Exception as exc:  # a bug in a handler: shown, not lost in Qt's loop
                self.notice.emit(Notice.from_error(f"{failed_text} (showing the result)",
                                                   exc, SOURCE))

        def failed(error: WorkerError) -> None:
            self._pending -= 1
            if on_failed is not None:
                on_failed(error)
            self.notice.emit(Notice.from_error(failed_text, error, SOURCE))

        return run_in_worker(fn, *args, on_done=done, on_failed=failed, owner=self)

    def busy(self) -> bool:
        """Whether a job of the panel is pending (a launch counts until it is done)."""
        return self._pending > 0 or self._launching

    # -- loading -----------------------------------------------------------------------------

    def _start(self, pipeline: LoadedPipeline | None) -> None:
        if pipeline is None:
            self.load_preset(SMOKE_PRESET.stem)
        elif pipeline.config is not None:
            self._load_seq += 1
            self._loaded(dump_config(pipeline.config), Path(pipeline.source))
        else:
            self.show_problems(pipeline.problems, pipeline.source)

    def set_config(self, config: PipelineConfig, source: str | os.PathLike[str]) -> None:
        """Show a config loaded elsewhere (``remote.pipeline_edit.load_pipeline``); no I/O."""
        self._load_seq += 1  # replaces whatever load is still in flight
        self._loaded(dump_config(config), Path(source))

    def show_problems(self, problems: Sequence[ConfigProblem],
                      source: str | os.PathLike[str]) -> None:
        """A config that did not load elsewhere: list its problems (Launch stays off) and,
        when the file is there, read it so its values show with their problems."""
        self._load_seq += 1
        self._data, self._local = PipelineConfig().model_dump(mode="json"), {}
        self._load_problems = list(problems)
        for name, form in self.forms.items():
            form.load(self._data if name in SECTIONS else self._data.get(name))
        self._path, self._preset, self._modified = None, None, False
        self._show_loaded(f"{source} (did not load)")
        if not any(p.key == "<file>" for p in problems):
            self.open_file(source)

    def open_file(self, path: str | os.PathLike[str]) -> Job:
        """Read a YAML config (in the worker) and show it."""
        self._load_seq += 1
        seq, path = self._load_seq, Path(path)
        return self._run(read_text, path, on_done=lambda text: self._read(seq, text, path),
                         failed_text=f"Could not open {path}")

    def load_preset(self, name: str) -> Job:
        """Load ``<presets dir>/<name>.yaml``; Save then asks for a file (presets stay as
        shipped)."""
        return self.open_file(self.presets_dir / f"{name}.yaml")

    def may_replace(self, target: str) -> bool:
        """Whether the config shown may be replaced: no unsaved edits, or the user says so."""
        return not self._modified or self._confirm_discard(self, self._origin, target)

    def _preset_picked(self, index: int) -> None:
        name = self.preset_combo.itemText(index)
        if self.may_replace(f"preset {name}"):
            self.load_preset(name)
        else:  # the list goes back to what is shown
            self.preset_combo.setCurrentIndex(self.preset_combo.findText(self._preset or ""))

    def _read(self, seq: int, text: str, path: Path) -> None:
        if seq == self._load_seq:  # else a newer open, or restore_state, came after it
            self._loaded(text, path)

    def _loaded(self, text: str, path: Path) -> None:
        preset = path.stem if path.parent.resolve() == self.presets_dir.resolve() else None
        if self.set_text(text, str(path)):
            self._path, self._preset, self._modified = (None if preset else path), preset, False
            self._show_loaded(f"preset {preset}" if preset else str(path))

    def set_text(self, text: str, source: str = "<text>") -> bool:
        """Show the config in ``text``; False (and a Notice) when it is no YAML mapping."""
        try:
            data = editable_data(text, source)
        except ConfigError as exc:
            lines = "\n".join(str(p) for p in exc.problems)
            self.notice.emit(Notice("error", f"Could not read {source}: "
                                    f"{exc.problems[0].message}", lines, SOURCE))
            return False
        self._data, self._local, self._load_problems = data, {}, []
        for name, form in self.forms.items():
            form.load(data if name in SECTIONS else data.get(name))
        self._modified = True
        self._revalidate()
        return True

    def _show_loaded(self, origin: str) -> None:
        self._origin = origin
        self._revalidate()

    # -- state for the main window -----------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {"text": self.current_text(), "source": str(self._path or ""),
                "preset": self._preset or "", "modified": self._modified}

    def restore_state(self, state: dict[str, Any]) -> bool:
        """Show a state from ``state()`` (no I/O); False when its text does not read (the
        config shown stays)."""
        if not state.get("text"):
            return False
        self._load_seq += 1  # a load still in flight (the start-up preset) must not win
        if not self.set_text(str(state.get("text", "")), "the saved session"):
            return False
        self._path = Path(state["source"]) if state.get("source") else None
        self._preset = state.get("preset") or None
        # Tolerant: a bool kept in QSettings on its own comes back as "true" / "false".
        self._modified = state.get("modified") in (True, "true", "True", 1, "1")
        where = str(self._path) if self._path else (
            f"preset {self._preset}" if self._preset else "new config")
        self._show_loaded(where)
        return True

    # -- saving ------------------------------------------------------------------------------

    def current_text(self) -> str:
        return config_text(self._data, self._result.config)

    def save_file(self, path: str | os.PathLike[str]) -> Job:
        """Write the config (the resolved dump when valid) to ``path``, in the worker."""
        path, text = Path(path), self.current_text()
        problems = len(self._result.problems)

        def saved(_: Path) -> None:
            self._path, self._preset, self._modified = path, None, False
            self._show_loaded(str(path))
            if problems:
                self.notice.emit(Notice("warning", f"Saved {path} with {problems} "
                                        "problem(s) still in it", source=SOURCE))
            else:
                self.notice.emit(Notice("info", f"Saved {path}", source=SOURCE))

        return self._run(write_text, path, text, on_done=saved,
                         failed_text=f"Could not save {path}")

    def save(self) -> Job | None:
        return self.save_file(self._path) if self._path is not None else self.save_as()

    def save_as(self) -> Job | None:
        start = str(self._path or Path.home() / f"{self._run_name()}.yaml")
        path, _ = QFileDialog.getSaveFileName(self, "Save pipeline config", start,
                                              "YAML files (*.yaml *.yml)")
        return self.save_file(path) if path else None

    def open_dialog(self) -> Job | None:
        start = str(self._path.parent if self._path else Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Open pipeline config", start,
                                              "YAML files (*.yaml *.yml);;All files (*)")
        return self.open_file(path) if path and self.may_replace(path) else None

    def _run_name(self) -> str:
        run = self._data.get("run")
        name = run.get("name") if isinstance(run, dict) else None
        return name if isinstance(name, str) and name else "pipeline"

    # -- editing and validation --------------------------------------------------------------

    def _section(self, stage: str) -> dict:
        if not isinstance(self._data.get(stage), dict):  # `sft: 5` in a file: start afresh
            self._data[stage] = PipelineConfig().model_dump(mode="json")[stage]
        return self._data[stage]

    def _edited(self, entry: str) -> None:
        target = self._data if entry in SECTIONS else self._section(entry)
        self._local[entry] = self.forms[entry].apply_to(target)
        if entry == "llms":  # a renamed endpoint was renamed in the stages' llm fields too
            for stage in STAGE_ORDER:
                shown = self.forms[stage].editors.get(f"{stage}.llm")
                section = self._data.get(stage)
                if shown is not None and isinstance(section, dict) \
                        and shown.get() != section.get("llm"):
                    self.forms[stage].load(section)
        self._modified = True
        self._revalidate()

    def _revalidate(self) -> None:
        names = [p.name for p in self._profiles] if self._profiles is not None else None
        result = validate(self._data, names)
        local = [*self._load_problems, *(p for ps in self._local.values() for p in ps)]
        if local:
            result = Validation(None, [*result.problems, *local])
        before, self._result = self._result.config, result
        self._show_problems()
        self._update_graph()
        self._update_buttons()
        if (before is None) != (result.config is None) or before != result.config:
            self.config_changed.emit(result.config)

    def _show_problems(self) -> None:
        problems = self._result.problems
        self.problem_list.clear()
        for i, p in enumerate(problems):
            item = QListWidgetItem(f"{p.key}: {p.message} — {p.fix}")
            item.setData(Qt.ItemDataRole.UserRole, i)
            item.setToolTip("Click to go to the field")
            self.problem_list.addItem(item)
        for name, form in self.forms.items():
            form.show_problems([p for p in problems if entry_of(p.key) == name])
        self.drop_unknown_button.setVisible(
            any(p.message.startswith("unknown key") for p in problems))
        self.tabs.setTabText(0, f"Problems ({len(problems)})" if problems else "Problems")
        self.problems_note.setText(
            "Every problem, with what to set: click one to go to its field." if problems else
            "No problems: every field is valid." if self._result.config is not None else "")
        modified = " (modified)" if self._modified else ""
        self.source_label.setText(f"Config: {self._origin}{modified}")
        if problems:
            n = len(problems)
            self.status_label.setText(f"{n} problem{'' if n == 1 else 's'}: click one to go "
                                      "to its field.")
            self.status_label.setToolTip(self.status_label.text())
            self.status_label.setStyleSheet("color: #b00020;")
        elif self._result.config is not None:
            enabled = self._result.config.enabled_stages()
            self.status_label.setText(f"Valid: {len(enabled)} of {len(STAGE_ORDER)} stages "
                                      "enabled, ready to launch.")
            self.status_label.setToolTip(self.status_label.text())
            self.status_label.setStyleSheet("color: #1b7f3b;")

    def _profiles_by_name(self) -> dict[str, ClusterProfile]:
        return {p.name: p for p in self._profiles or []}

    def _update_graph(self) -> None:
        counts = Counter(entry_of(p.key) for p in self._result.problems)
        data = self._data
        run = data.get("run") if isinstance(data.get("run"), dict) else {}
        llms = data.get("llms") if isinstance(data.get("llms"), dict) else {}
        profiles = self._profiles_by_name()
        entries = [
            GraphEntry("run", "Run", f"{run.get('name', '?')} · seed {run.get('seed', '?')}",
                       errors=counts["run"], is_stage=False),
            GraphEntry("llms", "LLMs", ", ".join(map(str, llms)) or "none",
                       errors=counts["llms"], is_stage=False),
        ]
        for stage in STAGE_ORDER:
            section = data.get(stage) if isinstance(data.get(stage), dict) else {}
            where = str(section.get("placement", LOCAL))
            gpu = profiles[where].gpu_type if where in profiles else None
            entries.append(GraphEntry(stage, stage, f"{where} · {gpu}" if gpu else where,
                                      enabled=section.get("enabled") is True,
                                      errors=counts[stage]))
        self.graph.set_entries(entries)  # keeps the selection, so the form shown stays

    def _update_buttons(self) -> None:
        valid = self._result.config is not None
        why = "" if valid else " (fix the problems first)"
        self.preview_button.setEnabled(valid and not self._previewing)
        self.launch_button.setEnabled(valid and not self._launching)
        self.preview_button.setToolTip("The exact commands and sbatch scripts, per cluster" + why)
        self.launch_button.setToolTip("Launch the enabled stages where they are placed" + why)
        self.place_all_button.setEnabled(self.place_all_combo.count() > 0)

    # -- selection and problems --------------------------------------------------------------

    def _show_entry(self, name: str) -> None:
        self.stack.setCurrentWidget(self.forms[name])

    def select(self, entry: str) -> None:
        """Show the form of a stage, or of "run" / "llms"."""
        self.graph.select(entry)

    def current_entry(self) -> str:
        return next(n for n, f in self.forms.items() if f is self.stack.currentWidget())

    def problems(self) -> list[ConfigProblem]:
        return list(self._result.problems)

    def config(self) -> PipelineConfig | None:
        """The config shown, when it has no problem."""
        return self._result.config

    def data(self) -> dict:
        """A copy of the config shown, as plain data (valid or not)."""
        return copy.deepcopy(self._data)

    def focus_problem(self, index: int) -> QWidget | None:
        """Open the stage of problem ``index`` and focus its field (what a click does)."""
        problem = self._result.problems[index]
        entry = entry_of(problem.key)
        self.select(entry)
        form = self.forms[entry]
        if problem.message.startswith("unknown key"):
            self.tabs.setCurrentIndex(0)
            self.drop_unknown_button.setFocus()
            return self.drop_unknown_button
        widget = form.focus(problem.key)
        if widget is not None:  # scroll again once a page shown for the first time is laid out
            QTimer.singleShot(0, lambda: form.ensureWidgetVisible(widget))
        return widget

    def _problem_clicked(self, item: QListWidgetItem) -> None:
        self.focus_problem(int(item.data(Qt.ItemDataRole.UserRole)))

    def remove_unknown_keys(self) -> list[str]:
        removed = drop_unknown_keys(self._data)
        if removed:
            self._modified = True
            self.notice.emit(Notice("info", f"Removed unknown keys: {', '.join(removed)}",
                                    source=SOURCE))
        self._revalidate()
        return removed

    # -- profiles and placement --------------------------------------------------------------

    def reload_profiles(self, *_: Any) -> Job:
        """Read the cluster profiles again (connect the Clusters panel's change signal)."""
        return self._run(list_profiles, self.session.profiles, on_done=self._profiles_listed,
                         failed_text="Could not read the cluster profiles")

    def _profiles_listed(self, profiles: list[ClusterProfile]) -> None:
        self._profiles = list(profiles)
        choices = [(p.name, placement_label(p)) for p in self._profiles]
        for form in self.forms.values():
            form.set_profiles(choices)
        current = self.place_all_combo.currentData()
        self.place_all_combo.clear()
        for name, label in choices:
            self.place_all_combo.addItem(label, name)
        self.place_all_combo.setCurrentIndex(max(self.place_all_combo.findData(current), 0))
        self._revalidate()

    def profile_choices(self) -> list[tuple[str, str]]:
        return [(p.name, placement_label(p)) for p in self._profiles or []]

    def place_all(self, cluster: str) -> None:
        """Put every enabled stage on ``cluster``."""
        for stage in STAGE_ORDER:
            section = self._section(stage)
            if section.get("enabled") is True:
                section["placement"] = cluster
                self.forms[stage].load(section)
        self._modified = True
        self._revalidate()

    def _presets_listed(self, paths: list[Path]) -> None:
        self.preset_combo.clear()
        self.preset_combo.addItems([p.stem for p in paths])
        if self._preset is not None:
            self.preset_combo.setCurrentText(self._preset)

    def presets(self) -> list[str]:
        return [self.preset_combo.itemText(i) for i in range(self.preset_combo.count())]

    # -- diff, preview, launch ---------------------------------------------------------------

    def show_diff(self) -> Job:
        self.tabs.setCurrentWidget(self.diff_view)
        self.diff_view.setPlainText("Comparing with the last launched run…")
        return self._run(diff_against_last_launch, self.session.registry, self.current_text(),
                         on_done=self.diff_view.setPlainText,
                         on_failed=lambda e: self.diff_view.setPlainText(f"No diff: {e}"),
                         failed_text="Could not compare with the last launch")

    def preview(self) -> Job | None:
        config = self._result.config
        if config is None or self._previewing:
            return None
        self._previewing = True
        self._update_buttons()
        self.tabs.setCurrentWidget(self.preview_view)
        self.preview_view.setPlainText("Working out the commands…")

        def shown(text: str) -> None:
            self._previewing = False
            self._update_buttons()
            self.preview_view.setPlainText(text)

        def failed(error: WorkerError) -> None:
            self._previewing = False
            self._update_buttons()
            self.preview_view.setPlainText(f"No preview: {error.message}")

        return self._run(preview_config, self.session, config, on_done=shown,
                         on_failed=failed, failed_text="Preview failed")

    def launch(self) -> Job | None:
        """Write, plan, connect (asking about host keys) and launch the config shown."""
        config = self._result.config
        if config is None or self._launching:
            return None
        self._set_launching(True, f"Launching {config.run.name}: writing and planning…")
        folder = self.session.registry.dir.parent / "configs"
        return self._run(plan_launch, self.session, folder, config, on_done=self._planned,
                         on_failed=lambda _: self._set_launching(False),
                         failed_text="Launch failed")

    def _planned(self, plan: LaunchPlan) -> None:
        self.status_label.setText(f"Launching: connecting to {', '.join(plan.clusters)}…")

        def refused(message: str, details: str) -> None:
            self._set_launching(False)
            self.notice.emit(Notice("error", f"Launch stopped: {message}", details, SOURCE))

        ensure_connected(self, self.session, plan.clusters, on_ready=lambda: self._go(plan),
                         on_failed=refused, confirm=self._confirm)

    def _go(self, plan: LaunchPlan) -> None:
        self.status_label.setText("Launching: uploading the engine and starting the jobs…")
        self._run(launch_config, self.session, plan, on_done=self._launch_done,
                  on_failed=lambda _: self._set_launching(False), failed_text="Launch failed")

    def _launch_done(self, record: RunRecord) -> None:
        self._set_launching(False)
        where = "; ".join(f"{s.cluster}: {', '.join(s.stages)}" for s in record.segments)
        self.notice.emit(Notice("info", f"Run {record.run_id} launched ({where})",
                                f"Config: {record.config_path}", SOURCE))
        self.launched.emit(record)

    def _set_launching(self, launching: bool, text: str = "") -> None:
        self._launching = launching
        self._update_buttons()
        if text:
            self.status_label.setText(text)
            self.status_label.setStyleSheet("")
        elif not launching:
            self._show_problems()  # back to what the config says


if __name__ == "__main__":
    import sys

    from PySide6.QtWidgets import QApplication

    from gui.qt_guard import pin_singletons

    pin_singletons()  # PySide6 6.12 leaks None/True references on Python 3.11
    app = QApplication(sys.argv[:1])
    session = AppSession()
    panel = PipelinePanel(session)
    if len(sys.argv) > 1:
        panel.open_file(sys.argv[1])
    panel.notice.connect(lambda n: print(f"[{n.level}] {n.text}"))
    panel.resize(1100, 760)
    panel.show()
    code = app.exec()
    session.close()
    sys.exit(code)
