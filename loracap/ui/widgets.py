"""Small widgets shared by the window's panels.

:class:`ElidedLabel` is the rule that keeps the window inside the screen: a one-line label whose
text, however long (a folder path, an error message from the service), never widens its layout.
It shows as much as fits, ending in "…", and the whole text in its tooltip.
"""

from __future__ import annotations

from PyQt6.QtCore import QEvent, QObject, QSize, Qt
from PyQt6.QtGui import QPainter, QPaintEvent, QResizeEvent
from PyQt6.QtWidgets import QLabel, QSizePolicy, QTreeView, QWidget

#: Characters an :class:`ElidedLabel` keeps visible at its smallest (plus the ellipsis).
DEFAULT_MIN_CHARS = 8


class ResponsiveColumns(QObject):
    """Hides a tree view's optional columns while the view is narrower than they need.

    ``optional`` maps a column to the smallest view width (logical pixels) at which it is shown;
    below it the column is hidden, so the columns that stay are wide enough to read (a narrow
    dock shows "File, Kind" whole rather than "File, Kin, Pro" cut off). What a hidden column
    held must be available elsewhere (a detail pane, a tooltip).
    """

    def __init__(self, view: QTreeView, optional: dict[int, int]) -> None:
        super().__init__(view)
        self._view = view
        self._optional = dict(optional)
        view.installEventFilter(self)
        self.update()

    def update(self) -> None:
        """Show or hide the optional columns for the view's current width."""
        width = self._view.width()
        for column, needed in self._optional.items():
            hidden = width < needed
            if self._view.isColumnHidden(column) != hidden:
                self._view.setColumnHidden(column, hidden)

    def eventFilter(self, watched: QObject | None, event: QEvent | None) -> bool:
        if event is not None and event.type() == QEvent.Type.Resize:
            self.update()
        return False


class ElidedLabel(QLabel):
    """A single line of plain text that is elided to the room it gets, never wider.

    ``minimumSizeHint`` is the width of ``min_chars`` characters (or the whole text when it is
    shorter), so a long text cannot push a layout, a dock or the window wider; ``sizeHint`` is
    the whole text, so the label takes the room it needs when there is room. When the text does
    not fit, the visible part ends in "…" (``mode``: where the text is cut, e.g.
    ``Qt.TextElideMode.ElideMiddle`` for paths) and the tooltip shows the whole text, unless a
    tooltip was set with :meth:`setToolTip`, which is then shown below it.
    """

    def __init__(self, text: str = "", parent: QWidget | None = None, *,
                 mode: Qt.TextElideMode = Qt.TextElideMode.ElideRight,
                 min_chars: int = DEFAULT_MIN_CHARS) -> None:
        super().__init__(parent)
        self._mode = mode
        self._min_chars = min_chars
        self._own_tip = ""
        self._elided = False
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setWordWrap(False)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.setText(text)

    @property
    def is_elided(self) -> bool:
        """True when the text does not fit and is shown cut."""
        return self._elided

    def setText(self, text: str | None) -> None:
        super().setText(text or "")
        self._update_elision()
        self.updateGeometry()

    def setToolTip(self, tip: str | None) -> None:
        self._own_tip = tip or ""
        self._apply_tooltip()

    def _apply_tooltip(self) -> None:
        tip = self._own_tip
        if self._elided:
            tip = f"{self.text()}\n\n{tip}" if tip else self.text()
        super().setToolTip(tip)

    def _text_width(self, text: str) -> int:
        return self.fontMetrics().horizontalAdvance(text)

    def _margins(self) -> int:
        margins = self.contentsMargins()
        return margins.left() + margins.right() + 2 * self.margin() + max(0, self.indent())

    def minimumSizeHint(self) -> QSize:
        text = self.text()
        shortest = text if len(text) <= self._min_chars else text[: self._min_chars] + "…"
        hint = super().minimumSizeHint()
        return QSize(self._text_width(shortest) + self._margins(), hint.height())

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        return QSize(self._text_width(self.text()) + self._margins() + 2, hint.height())

    def _visible_text(self) -> str:
        rect = self.contentsRect()
        width = rect.width() - 2 * self.margin() - max(0, self.indent())
        return self.fontMetrics().elidedText(self.text(), self._mode, max(0, width))

    def _update_elision(self) -> None:
        elided = bool(self.text()) and self._visible_text() != self.text()
        if elided != self._elided or elided:
            self._elided = elided
            self._apply_tooltip()

    def resizeEvent(self, event: QResizeEvent | None) -> None:
        super().resizeEvent(event)
        self._update_elision()

    def paintEvent(self, event: QPaintEvent | None) -> None:
        painter = QPainter(self)
        self.drawFrame(painter)
        rect = self.contentsRect().adjusted(self.margin(), self.margin(),
                                            -self.margin(), -self.margin())
        style = self.style()
        if style is None:
            return
        style.drawItemText(painter, rect, int(self.alignment()), self.palette(),
                           self.isEnabled(), self._visible_text(), self.foregroundRole())
