"""The Monitor's run picker: every run the panel knows, in its colour, checked when drawn.

    python -m gui.widgets.run_picker

A checkable ``QListWidget``: unchecking a run hides its curves on every chart and takes it out
of the hover readout and the summary table (``shown_changed(run, shown)``); checking it
overlays it again. Runs are added by the panel as their events arrive, never removed.

Left out: removing a run, renaming it, picking its colour.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QWidget

from remote.display_text import visible

SWATCH = 12  # px


class RunPicker(QListWidget):
    shown_changed = Signal(str, bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("runs")
        self.setIconSize(QSize(SWATCH, SWATCH))
        self.setToolTip("Runs drawn on the charts: uncheck one to hide it")
        self._items: dict[str, QListWidgetItem] = {}
        self.itemChanged.connect(self._item_changed)

    def add_run(self, run: str, colour: QColor) -> None:
        if run in self._items:
            return
        swatch = QPixmap(SWATCH, SWATCH)
        swatch.fill(colour)
        item = QListWidgetItem(QIcon(swatch), visible(run))  # a run id is plain text, shown so
        item.setData(Qt.ItemDataRole.UserRole, run)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        self.blockSignals(True)  # a new run is shown; nobody needs telling
        item.setCheckState(Qt.CheckState.Checked)
        self.addItem(item)
        self.blockSignals(False)
        self._items[run] = item

    @property
    def runs(self) -> list[str]:
        return list(self._items)

    def is_shown(self, run: str) -> bool:
        item = self._items.get(run)
        return item is None or item.checkState() == Qt.CheckState.Checked

    def set_shown(self, run: str, shown: bool) -> None:
        """Check or uncheck ``run`` as a click would (``shown_changed`` follows)."""
        self._items[run].setCheckState(Qt.CheckState.Checked if shown else Qt.CheckState.Unchecked)

    def _item_changed(self, item: QListWidgetItem) -> None:
        self.shown_changed.emit(item.data(Qt.ItemDataRole.UserRole),
                                item.checkState() == Qt.CheckState.Checked)


if __name__ == "__main__":
    import sys

    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv)
    picker = RunPicker()
    for name, colour in (("baseline", "#1f77b4"), ("lr-2x", "#ff7f0e"), ("no-warmup", "#2ca02c")):
        picker.add_run(name, QColor(colour))
    picker.shown_changed.connect(lambda run, shown: print(run, "shown" if shown else "hidden"))
    picker.show()
    sys.exit(app.exec())
