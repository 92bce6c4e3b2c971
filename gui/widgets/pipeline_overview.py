"""Pipeline panel, read-only: where the config came from, whether it is valid, and its stages.

Show it alone with the bundled smoke preset:

    python -m gui.widgets.pipeline_overview [CONFIG.yaml]

The widget does no I/O. Callers load the file (``gui.app.load_pipeline``) and hand over either
a ``PipelineConfig`` (``set_config``) or the problems that stopped it loading
(``show_problems``: ``ConfigProblem``s with ``key``, ``message`` and ``fix``). The table lists the 11
stages in ``STAGE_ORDER`` with their placement and resources; disabled stages are greyed.

Left out: editing (forms generated from the schema), the stage graph, presets, YAML save and
the preview of launch commands. Those come with the full Pipeline panel.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.schema import STAGE_ORDER, PipelineConfig, Resources

COLUMNS = ("Stage", "Enabled", "Placement", "Resources")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def resources_text(res: Resources) -> str:
    """e.g. ``1 node, 0 GPU, 2 CPU, 00:30:00`` (GPUs and CPUs are per node)."""
    # The schema takes a time limit as minutes, HH:MM:SS or D-HH:MM:SS; say which.
    limit = f"{res.time_limit} min" if res.time_limit.isdigit() else res.time_limit
    return f"{_plural(res.nodes, 'node')}, {res.gpus_per_node} GPU, {res.cpus_per_task} CPU, {limit}"


class PipelineOverview(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        title = QLabel("Pipeline")
        title.setStyleSheet("font-size: 16pt; font-weight: bold;")
        self.source_label = QLabel()
        self.source_label.setObjectName("source")
        self.source_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.validation_label = QLabel()
        self.validation_label.setObjectName("validation")
        self.validation_label.setTextFormat(Qt.TextFormat.PlainText)  # values come from YAML
        self.validation_label.setWordWrap(True)
        self.validation_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("stages")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)

        note = QLabel("Read-only. Editing, presets, YAML save and command preview are not "
                      "built yet.")
        note.setEnabled(False)

        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(self.source_label)
        layout.addWidget(self.validation_label)
        layout.addWidget(self.table, 1)
        layout.addWidget(note)

    def set_config(self, cfg: PipelineConfig, source: Path | str) -> None:
        enabled = cfg.enabled_stages()
        self.source_label.setText(f"Config: {source}")
        self.validation_label.setText(
            f"OK — valid config, {len(enabled)} of {len(STAGE_ORDER)} stages enabled.")
        self.validation_label.setStyleSheet("color: #1b7f3b;")
        self.table.setRowCount(len(STAGE_ORDER))
        for row, name in enumerate(STAGE_ORDER):
            stage = cfg.stage(name)
            cells = (name, "yes" if stage.enabled else "no", stage.placement,
                     resources_text(stage.resources))
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if not stage.enabled:
                    # A disabled item is drawn with the palette's disabled (grey) text colour.
                    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
                self.table.setItem(row, col, item)
        self.table.setVisible(True)

    def show_problems(self, problems: Iterable, source: Path | str) -> None:
        problems = list(problems)
        lines = [f"{p.key}: {p.message} — {p.fix}" for p in problems]
        self.source_label.setText(f"Config: {source}")
        self.validation_label.setText(
            f"{_plural(len(problems), 'problem')} — fix and reopen:\n" + "\n".join(lines))
        self.validation_label.setStyleSheet("color: #b00020;")
        self.table.setRowCount(0)
        self.table.setVisible(False)


if __name__ == "__main__":
    import sys

    from PySide6.QtWidgets import QApplication

    from gui.app import load_pipeline

    app = QApplication(sys.argv[:1])
    loaded = load_pipeline(sys.argv[1] if len(sys.argv) > 1 else None)
    panel = PipelineOverview()
    if loaded.config is not None:
        panel.set_config(loaded.config, loaded.source)
    else:
        panel.show_problems(loaded.problems, loaded.source)
    panel.resize(900, 520)
    panel.show()
    sys.exit(app.exec())
