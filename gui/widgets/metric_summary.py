"""The Monitor's summary table: last, min and max of each metric of a tab, per shown run.

    python -m gui.widgets.metric_summary

A read-only ``QTableWidget`` handed ``SummaryRow``s by the panel (it computes nothing and
reads nothing). Min and max are over finite readings (a NaN loss is a gap, not a minimum);
"last" is the last reading as it came, NaN included, at its step. When the rows are the same
metrics and runs as last time only changed texts are set, so a refresh twice a second costs
the cells that changed.

Left out: sorting (rows follow the charts' order), copying a selection as CSV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from gui.charts import format_value
from remote.display_text import visible

COLUMNS = ("Metric", "Run", "Last", "Min", "Max", "At step")
_NUMERIC = frozenset({2, 3, 4, 5})


@dataclass(frozen=True)
class SummaryRow:
    key: str
    title: str
    run: str
    colour: QColor
    last: float
    vmin: float  # inf when no finite reading yet
    vmax: float
    step: float


class MetricSummary(QTableWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setObjectName("summary")
        self.setHorizontalHeaderLabels(COLUMNS)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(20)
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in range(1, len(COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self._shown: list[tuple[str, str]] = []

    def set_rows(self, rows: list[SummaryRow]) -> None:
        ids = [(r.key, r.run) for r in rows]
        if ids != self._shown:
            self.setRowCount(0)
            self.setRowCount(len(rows))
            self._shown = ids
        for i, row in enumerate(rows):
            texts = (visible(row.title), visible(row.run), format_value(row.last),
                     format_value(row.vmin) if math.isfinite(row.vmin) else "—",
                     format_value(row.vmax) if math.isfinite(row.vmax) else "—",
                     f"{row.step:.0f}")
            for col, text in enumerate(texts):
                item = self.item(i, col)
                if item is None:
                    item = QTableWidgetItem(text)
                    if col in _NUMERIC:
                        item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                              | Qt.AlignmentFlag.AlignVCenter)
                    if col == 0:
                        item.setToolTip(visible(row.key))
                    if col == 1:
                        item.setForeground(row.colour)
                    self.setItem(i, col, item)
                elif item.text() != text:
                    item.setText(text)

    def cell_texts(self) -> list[list[str]]:
        """Every row's texts, top to bottom (what a reader sees)."""
        return [[self.item(r, c).text() for c in range(self.columnCount())]
                for r in range(self.rowCount())]


if __name__ == "__main__":
    import sys

    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv)
    table = MetricSummary()
    table.set_rows([
        SummaryRow("sft/loss", "SFT loss", "baseline", QColor("#1f77b4"), 0.4123, 0.3981, 2.93,
                   299),
        SummaryRow("sft/lr", "SFT learning rate", "baseline", QColor("#1f77b4"), 1e-5, 0.0, 1e-5,
                   299),
    ])
    table.resize(600, 160)
    table.show()
    sys.exit(app.exec())
