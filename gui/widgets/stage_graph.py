"""The stage graph: the pipeline's stages as boxes in order, joined by arrows; click to pick one.

    graph = StageGraph()
    graph.set_entries([GraphEntry("seeds", "seeds", "This computer (local · CPU)"), ...])
    graph.stage_selected.connect(show_form)          # the entry's name

Show it alone with the default pipeline: ``python -m gui.widgets.stage_graph``.

Each box shows the entry's title, its placement and a red badge with its number of problems;
a disabled stage is drawn grey, the selected entry with a thick blue border. Entries that are
not stages (the run's name and seed, the LLM endpoints) come first, with a dashed border and
no arrows. Boxes flow left to right and wrap into rows to fit the width (two rows at the
main window's default width); an arrow that wraps runs back along the gap between the rows.
Left and Right move the selection.

Custom-painted (one widget, no QGraphicsScene): thirteen boxes do not need a scene graph.
Left out: dragging stages (the order is fixed by the schema), zoom, and showing the data that
flows between stages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import QEvent, QPoint, QPointF, QRect, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPolygonF,
)
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

BOX_W, BOX_H = 118, 54
GAP_X, GAP_Y, MARGIN = 22, 24, 8

# Colours: enabled, disabled (greyed) and pseudo-entry boxes; the selection and the badge.
FILL = QColor("#eef4fb")
FILL_DISABLED = QColor("#e6e6e6")
FILL_SECTION = QColor("#fbfaf3")
BORDER = QColor("#5c7ea8")
BORDER_DISABLED = QColor("#bdbdbd")
TEXT = QColor("#1f2d3d")
TEXT_DISABLED = QColor("#9e9e9e")
SELECTED = QColor("#1565c0")
BADGE = QColor("#c62828")
ARROW = QColor("#7a8a9a")


@dataclass(frozen=True)
class GraphEntry:
    name: str  # what stage_selected emits: a stage name, or "run" / "llms"
    title: str
    subtitle: str = ""  # the placement label, or a short summary
    enabled: bool = True
    errors: int = 0
    is_stage: bool = True


class StageGraph(QWidget):
    stage_selected = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("stage_graph")
        self._entries: list[GraphEntry] = []
        self._selected: str | None = None
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        policy = QSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)

    # -- model

    def set_entries(self, entries: Sequence[GraphEntry]) -> None:
        self._entries = list(entries)
        if self._selected not in self.names():
            self._selected = self._entries[0].name if self._entries else None
        self.updateGeometry()
        self.update()

    def entries(self) -> list[GraphEntry]:
        return list(self._entries)

    def entry(self, name: str) -> GraphEntry:
        return next(e for e in self._entries if e.name == name)

    def names(self) -> list[str]:
        return [e.name for e in self._entries]

    def selected(self) -> str | None:
        return self._selected

    def select(self, name: str) -> None:
        """Select an entry and emit ``stage_selected`` (also when it was selected already,
        so a click always brings its form up)."""
        if name not in self.names():
            raise KeyError(f"no entry {name!r} in the stage graph")
        self._selected = name
        self.update()
        self.stage_selected.emit(name)

    def is_greyed(self, name: str) -> bool:
        return not self.entry(name).enabled

    # -- geometry

    def _per_row(self, width: int) -> int:
        return max(1, (width - 2 * MARGIN + GAP_X) // (BOX_W + GAP_X))

    def heightForWidth(self, width: int) -> int:
        rows = -(-max(len(self._entries), 1) // self._per_row(width))
        return 2 * MARGIN + rows * BOX_H + (rows - 1) * GAP_Y

    def hasHeightForWidth(self) -> bool:
        return True

    def sizeHint(self) -> QSize:
        width = 2 * MARGIN + 7 * BOX_W + 6 * GAP_X
        return QSize(width, self.heightForWidth(width))

    def minimumSizeHint(self) -> QSize:
        # One row's height: the layout asks heightForWidth for the real width, and a minimum
        # of one box per row (13 rows) would force the whole window to be very tall.
        return QSize(BOX_W + 2 * MARGIN, BOX_H + 2 * MARGIN)

    def box_rect(self, name: str) -> QRect:
        """Where the entry's box is drawn (tests click its centre)."""
        i = self.names().index(name)
        per_row = self._per_row(self.width())
        row, col = divmod(i, per_row)
        return QRect(MARGIN + col * (BOX_W + GAP_X), MARGIN + row * (BOX_H + GAP_Y),
                     BOX_W, BOX_H)

    def entry_at(self, pos: QPoint) -> str | None:
        return next((n for n in self.names() if self.box_rect(n).contains(pos)), None)

    # -- input

    def mousePressEvent(self, event: QMouseEvent) -> None:
        name = self.entry_at(event.position().toPoint())
        if name is not None and event.button() == Qt.MouseButton.LeftButton:
            self.setFocus()
            self.select(name)
        super().mousePressEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        step = {Qt.Key.Key_Left: -1, Qt.Key.Key_Right: 1}.get(Qt.Key(event.key()))
        names = self.names()
        if step is None or self._selected is None:
            super().keyPressEvent(event)
            return
        i = min(max(names.index(self._selected) + step, 0), len(names) - 1)
        self.select(names[i])

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip:
            name = self.entry_at(event.pos())
            if name is None:
                QToolTip.hideText()
            else:
                QToolTip.showText(event.globalPos(), self.describe(name), self)
            return True
        return super().event(event)

    def describe(self, name: str) -> str:
        e = self.entry(name)
        state = "" if e.enabled else " (disabled)"
        where = f"\n{e.subtitle}" if e.subtitle else ""
        n = e.errors
        problems = f"\n{n} problem{'' if n == 1 else 's'}" if n else ""
        return f"{e.title}{state}{where}{problems}"

    # -- painting

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        stages = [e.name for e in self._entries if e.is_stage]
        for a, b in zip(stages, stages[1:], strict=False):
            self._arrow(p, self.box_rect(a), self.box_rect(b))
        for e in self._entries:
            self._box(p, e)
        p.end()

    def _arrow(self, p: QPainter, a: QRect, b: QRect) -> None:
        p.setPen(QPen(ARROW, 1.5))
        if a.top() == b.top():  # same row: straight across
            start, end = QPointF(a.right() + 1, a.center().y()), QPointF(b.left(), b.center().y())
            p.drawLine(start, end)
            self._head(p, end, QPointF(1, 0))
            return
        # Wrapped to the next row: down, back along the gap between the rows, down into b.
        mid_y = a.bottom() + GAP_Y / 2
        points = [QPointF(a.center().x(), a.bottom() + 1), QPointF(a.center().x(), mid_y),
                  QPointF(b.center().x(), mid_y), QPointF(b.center().x(), b.top())]
        for s, t in zip(points, points[1:], strict=False):
            p.drawLine(s, t)
        self._head(p, points[-1], QPointF(0, 1))

    def _head(self, p: QPainter, tip: QPointF, direction: QPointF) -> None:
        back = QPointF(tip.x() - 7 * direction.x(), tip.y() - 7 * direction.y())
        side = QPointF(-direction.y() * 4, direction.x() * 4)
        p.setBrush(ARROW)
        p.drawPolygon(QPolygonF([tip, back + side, back - side]))

    def _box(self, p: QPainter, e: GraphEntry) -> None:
        r = self.box_rect(e.name)
        fill = FILL if e.enabled else FILL_DISABLED
        if not e.is_stage:
            fill = FILL_SECTION
        pen = QPen(BORDER if e.enabled else BORDER_DISABLED, 1.2)
        if not e.is_stage:
            pen.setStyle(Qt.PenStyle.DashLine)
        if e.name == self._selected:
            pen = QPen(SELECTED, 3)
        p.setPen(pen)
        p.setBrush(fill)
        p.drawRoundedRect(r.adjusted(1, 1, -1, -1), 6, 6)

        text = TEXT if e.enabled else TEXT_DISABLED
        title_font = QFont(self.font())
        title_font.setBold(True)
        p.setFont(title_font)
        p.setPen(text)
        inner = r.adjusted(8, 5, -8, -5)
        title = e.title if e.enabled else f"{e.title} (off)"
        p.drawText(inner, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop,
                   QFontMetrics(title_font).elidedText(title, Qt.TextElideMode.ElideRight,
                                                       inner.width() - 14))
        small = QFont(self.font())
        small.setPointSizeF(max(self.font().pointSizeF() - 1.5, 6.5))
        p.setFont(small)
        metrics = QFontMetrics(small)
        # One elided line: every box keeps the same size (the tooltip has the whole text).
        sub = metrics.elidedText(e.subtitle, Qt.TextElideMode.ElideRight, inner.width())
        p.drawText(inner, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom, sub)

        if e.errors:
            badge = QRect(r.right() - 20, r.top() - 6, 22, 18)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(BADGE)
            p.drawRoundedRect(badge, 9, 9)
            p.setPen(QColor("white"))
            p.setFont(title_font)
            p.drawText(badge, Qt.AlignmentFlag.AlignCenter, str(min(e.errors, 99)))


if __name__ == "__main__":
    import sys

    from PySide6.QtWidgets import QApplication

    from engine.contracts.config import STAGE_ORDER, PipelineConfig
    from gui.qt_guard import pin_singletons

    pin_singletons()  # PySide6 6.12 leaks None/True references on Python 3.11
    app = QApplication(sys.argv[:1])
    cfg = PipelineConfig()
    demo = StageGraph()
    demo.set_entries([GraphEntry("run", "Run", cfg.run.name, is_stage=False),
                      GraphEntry("llms", "LLMs", ", ".join(cfg.llms), is_stage=False)]
                     + [GraphEntry(s, s, cfg.stage(s).placement, cfg.stage(s).enabled)
                        for s in STAGE_ORDER])
    demo.stage_selected.connect(print)
    demo.resize(1000, demo.heightForWidth(1000))
    demo.show()
    sys.exit(app.exec())
