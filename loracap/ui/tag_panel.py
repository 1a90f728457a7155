"""The "Tags" panel of the main window: every tag of the project with its count.

:class:`TagFrequencyModel` is a two-column table (``Tag``, ``Count``) over a tag -> count map.
The window fills it with :meth:`TagFrequencyModel.set_counts` when a project opens (a model
reset) and then keeps it current with :meth:`TagFrequencyModel.apply_delta`, which takes only
the tags whose count changed: a caption edit in a 5,000-image project costs a few row signals,
never a recount or a reset. Counts are as :class:`~loracap.core.tags.TagCounter` keeps them: the
number of captions that contain the tag.

:class:`TagPanel` shows the model through a :class:`~PyQt6.QtCore.QSortFilterProxyModel`
(sorted by count, highest first, until the user clicks a header; filtered by the text in its
filter box) and turns clicks into ``tag_activated(tag, exclude)``, which the window uses to
filter the image grid. The window puts the panel in a dock widget.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

from PyQt6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QSortFilterProxyModel,
    Qt,
    pyqtSignal,
    pyqtSlot,
)
from PyQt6.QtGui import QAction, QContextMenuEvent, QKeyEvent, QMouseEvent
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QTableView,
    QVBoxLayout,
    QWidget,
)

log = logging.getLogger(__name__)

_Index = QModelIndex | QPersistentModelIndex

TAG_COLUMN = 0
"""The column of the tag text."""

COUNT_COLUMN = 1
"""The column of the number of images with the tag."""

HEADERS: tuple[str, str] = ("Tag", "Count")
"""The column header labels, by column."""

SORT_ROLE: int = Qt.ItemDataRole.UserRole
"""The role the proxy sorts by: the count (an int) in the Count column, the case-folded tag in
the Tag column, so counts sort numerically and tags ignoring case."""

TAG_ROLE: int = Qt.ItemDataRole.UserRole + 1
"""The tag of the row (str), whichever column is asked."""

_SORT = int(SORT_ROLE)
_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)
_ALIGNMENT = int(Qt.ItemDataRole.TextAlignmentRole)

_CLICK_EXCLUDE = "\u2318-click" if sys.platform == "darwin" else "Ctrl-click"


def tag_tooltip(count: int) -> str:
    """The tooltip of a tag row with ``count`` images."""
    if count == 1:
        shown = "1 image has this tag \u2014 click to show it"
    else:
        shown = f"{count} images have this tag \u2014 click to show them"
    return f"{shown}, {_CLICK_EXCLUDE} to show the images without it"


def _rank(counts: Mapping[str, int]) -> Any:
    """Sort key: highest count first, then the tag ignoring case, then exactly."""
    return lambda tag: (-counts[tag], tag.casefold(), tag)


class TagFrequencyModel(QAbstractTableModel):
    """One row per tag with a count above zero; columns ``Tag`` and ``Count``.

    Rows are kept in insertion order (:meth:`set_counts` lays them out by count, highest first;
    tags that appear later are appended); sorting is the proxy's job. Roles: ``DisplayRole``
    the tag (str) or the count (int); :data:`SORT_ROLE` the case-folded tag or the count;
    ``ToolTipRole`` :func:`tag_tooltip`; :data:`TAG_ROLE` the tag in both columns;
    ``TextAlignmentRole`` right-aligned counts. Items are selectable, never editable.

    Signals are the standard model ones: ``modelReset`` from :meth:`set_counts` only; from
    :meth:`apply_delta`, ``dataChanged`` (one row, both columns) per changed count,
    ``rowsRemoved`` per run of adjacent vanished rows and one ``rowsInserted`` for new tags.
    Use from the GUI thread only.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tags: list[str] = []  # row -> tag
        self._counts: dict[str, int] = {}  # tag -> count (> 0)
        self._rows: dict[str, int] = {}  # tag -> row; valid for rows below _stale_from
        self._stale_from = 0

    # ------------------------------------------------------------------ feeding the model

    def set_counts(self, counts: Mapping[str, int]) -> None:
        """Replace every row (a model reset): ``counts`` maps tag -> number of images.

        Tags with a count of 0 or less are left out. Rows are laid out by count, highest first,
        then by tag ignoring case.
        """
        kept = {str(tag): int(count) for tag, count in counts.items() if int(count) > 0}
        order = sorted(kept, key=_rank(kept))
        self.beginResetModel()
        try:
            self._tags = order
            self._counts = kept
            self._rows = {tag: row for row, tag in enumerate(order)}
            self._stale_from = len(order)
        finally:
            self.endResetModel()

    def apply_delta(self, changed: Mapping[str, int]) -> None:
        """Apply new counts for the tags in ``changed`` (tag -> its NEW count, not a difference).

        A count of 0 or less removes the tag's row; a tag not in the model gets a new row at
        the end; any other tag whose count differs gets ``dataChanged`` for its row alone. Costs
        O(len(changed)) plus, when rows are removed, re-indexing the rows after them once.
        Tags not in ``changed`` keep their count; an empty ``changed`` does nothing.
        """
        self._reindex()
        removed: list[int] = []
        added: dict[str, int] = {}
        for tag, value in changed.items():
            count = int(value)
            row = self._rows.get(tag)
            if row is None:
                if count > 0:
                    added[str(tag)] = count
            elif count <= 0:
                removed.append(row)
            elif count != self._counts[tag]:
                self._counts[tag] = count
                self.dataChanged.emit(
                    self.index(row, TAG_COLUMN), self.index(row, COUNT_COLUMN),
                    [Qt.ItemDataRole.DisplayRole, SORT_ROLE, Qt.ItemDataRole.ToolTipRole],
                )
        if removed:
            self._remove_rows(removed)
        if added:
            order = sorted(added, key=_rank(added))
            first = len(self._tags)
            self.beginInsertRows(QModelIndex(), first, first + len(order) - 1)
            try:
                self._reindex()
                self._tags.extend(order)
                self._counts.update(added)
                self._rows.update((tag, first + offset) for offset, tag in enumerate(order))
                self._stale_from = len(self._tags)
            finally:
                self.endInsertRows()

    def _remove_rows(self, rows: list[int]) -> None:
        """Remove ``rows`` (distinct), one ``beginRemoveRows`` per run of adjacent rows, from
        the bottom up so the rows still to remove keep their numbers."""
        rows = sorted(rows, reverse=True)
        start = 0
        while start < len(rows):
            end = start
            while end + 1 < len(rows) and rows[end + 1] == rows[end] - 1:
                end += 1
            first, last = rows[end], rows[start]
            self.beginRemoveRows(QModelIndex(), first, last)
            try:
                for tag in self._tags[first:last + 1]:
                    del self._counts[tag]
                    del self._rows[tag]
                del self._tags[first:last + 1]
                # The rows after the removed ones moved up; row_of() re-indexes them lazily.
                self._stale_from = min(self._stale_from, first)
            finally:
                self.endRemoveRows()
            start = end + 1
        self._reindex()

    def _reindex(self) -> None:
        if self._stale_from < len(self._tags):
            for row in range(self._stale_from, len(self._tags)):
                self._rows[self._tags[row]] = row
        self._stale_from = len(self._tags)

    # ------------------------------------------------------------------ lookups

    def count(self, tag: str) -> int:
        """The number of images with ``tag``; 0 when it is not in the model."""
        return self._counts.get(tag, 0)

    def tags(self) -> list[str]:
        """Every tag, in row order (a copy)."""
        return list(self._tags)

    def counts(self) -> dict[str, int]:
        """A copy of the counts: tag -> number of images (all above zero)."""
        return dict(self._counts)

    def tag_at(self, row: int) -> str:
        """The tag of a source row; raises IndexError outside ``0 .. rowCount()-1``."""
        if not 0 <= row < len(self._tags):
            raise IndexError(f"no row {row} in a model of {len(self._tags)} tags")
        return self._tags[row]

    def row_of(self, tag: str) -> int:
        """The source row of ``tag``, -1 when it is not in the model."""
        self._reindex()
        return self._rows.get(tag, -1)

    # ------------------------------------------------------------------ Qt model interface

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._tags)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(HEADERS)

    def flags(self, index: _Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return (Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled
                | Qt.ItemFlag.ItemNeverHasChildren)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        # Called twice per comparison while the proxy sorts: the sort role is checked first
        # and roles are compared as plain ints.
        if not index.isValid():
            return None
        row, column = index.row(), index.column()
        if not 0 <= row < len(self._tags):
            return None
        tag = self._tags[row]
        if role == _SORT or role == _DISPLAY:
            if column == COUNT_COLUMN:
                return self._counts[tag]
            if column == TAG_COLUMN:
                return tag if role == _DISPLAY else tag.casefold()
            return None
        if column not in (TAG_COLUMN, COUNT_COLUMN):
            return None
        if role == _TOOLTIP:
            return tag_tooltip(self._counts[tag])
        if role == TAG_ROLE:
            return tag
        if role == _ALIGNMENT and column == COUNT_COLUMN:
            return Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(HEADERS):
            if role == Qt.ItemDataRole.DisplayRole:
                return HEADERS[section]
            if role == Qt.ItemDataRole.ToolTipRole:
                return f"Sort by {HEADERS[section].lower()}"
            return None
        return super().headerData(section, orientation, role)


class _TagTableView(QTableView):
    """The panel's table: reports the keyboard modifiers of the click being handled, Enter on
    the current row, and context menu requests (mouse or keyboard) as a proxy row."""

    enter_pressed = pyqtSignal(int, bool)  # proxy row, Ctrl held
    menu_requested = pyqtSignal(int, QPoint)  # proxy row, global position

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._click_modifiers = Qt.KeyboardModifier.NoModifier

    def click_modifiers(self) -> Qt.KeyboardModifier:
        """The modifiers of the mouse release being handled (for slots of ``clicked``)."""
        return self._click_modifiers

    def mouseReleaseEvent(self, event: QMouseEvent | None) -> None:
        if event is None:
            return
        self._click_modifiers = event.modifiers()
        try:
            super().mouseReleaseEvent(event)  # emits clicked()
        finally:
            self._click_modifiers = Qt.KeyboardModifier.NoModifier

    def keyPressEvent(self, event: QKeyEvent | None) -> None:
        if event is None:
            return
        current = self.currentIndex()
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and current.isValid():
            ctrl = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
            self.enter_pressed.emit(current.row(), ctrl)
            event.accept()
            return
        super().keyPressEvent(event)

    def contextMenuEvent(self, event: QContextMenuEvent | None) -> None:
        if event is None:
            return
        if event.reason() == QContextMenuEvent.Reason.Keyboard:
            index = self.currentIndex()
            pos = self.visualRect(index).center() if index.isValid() else QPoint()
        else:
            pos = event.pos()
            index = self.indexAt(pos)
        if not index.isValid():
            event.ignore()
            return
        viewport = self.viewport()
        if viewport is None:
            return
        event.accept()
        self.menu_requested.emit(index.row(), viewport.mapToGlobal(pos))


class TagPanel(QWidget):
    """A filter box, the table of tags and counts, and a summary line ("214 tags").

    Attributes: ``model`` (:class:`TagFrequencyModel`; feed it), ``proxy`` (the sorting and
    filtering :class:`QSortFilterProxyModel`), ``view`` (the ``QTableView``), ``filter_edit``
    and ``summary``. Rows given to the methods below are proxy rows, as the view shows them.

    Signals:

    * ``tag_activated(tag, exclude)`` -- show the images with ``tag`` (``exclude`` False) or
      without it (True): a click on a row (Ctrl-click, Cmd-click on macOS, excludes), Enter on
      the current row (Ctrl+Enter excludes), or the first two context menu entries.
    * ``rename_requested(tag)`` and ``remove_requested(tag)`` -- the context menu entries
      "Rename Tag…" and "Remove Tag from All Images…"; the window asks and does the work.
    """

    tag_activated = pyqtSignal(str, bool)
    rename_requested = pyqtSignal(str)
    remove_requested = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = TagFrequencyModel(self)

        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.proxy.setFilterKeyColumn(TAG_COLUMN)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setDynamicSortFilter(True)  # re-sort and re-filter as counts change

        self.filter_edit = QLineEdit(self)
        self.filter_edit.setPlaceholderText("Filter tags\u2026")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setAccessibleName("Filter tags")
        self.filter_edit.textChanged.connect(self._on_filter_changed)

        self.view = _TagTableView(self)
        self.view.setModel(self.proxy)
        self.view.setAccessibleName("Tags")
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setAlternatingRowColors(True)
        self.view.setWordWrap(False)
        self.view.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.view.setShowGrid(False)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.DefaultContextMenu)
        vertical = self.view.verticalHeader()
        assert vertical is not None
        vertical.hide()
        # Fixed row heights: the view never measures 5,000 rows' contents.
        vertical.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vertical.setDefaultSectionSize(self.view.fontMetrics().height() + 6)
        header = self.view.horizontalHeader()
        assert header is not None
        header.setSectionResizeMode(TAG_COLUMN, QHeaderView.ResizeMode.Stretch)
        # Not ResizeToContents: that would measure rows again on every count change.
        header.setSectionResizeMode(COUNT_COLUMN, QHeaderView.ResizeMode.Interactive)
        metrics = header.fontMetrics()
        header.resizeSection(
            COUNT_COLUMN, max(metrics.horizontalAdvance(HEADERS[COUNT_COLUMN]),
                              metrics.horizontalAdvance("000000")) + 28,
        )
        header.setSortIndicatorShown(True)
        header.setSortIndicator(COUNT_COLUMN, Qt.SortOrder.DescendingOrder)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(COUNT_COLUMN, Qt.SortOrder.DescendingOrder)

        self.view.clicked.connect(self._on_clicked)
        self.view.enter_pressed.connect(self._on_enter)
        self.view.menu_requested.connect(self._on_menu_requested)

        self.summary = QLabel(self)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addWidget(self.filter_edit)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.summary)

        for model in (self.model, self.proxy):
            model.rowsInserted.connect(self._update_summary)
            model.rowsRemoved.connect(self._update_summary)
            model.modelReset.connect(self._update_summary)
            model.layoutChanged.connect(self._update_summary)
        self._update_summary()

    # ------------------------------------------------------------------ public

    def tag_at(self, proxy_row: int) -> str:
        """The tag shown in ``proxy_row``; raises IndexError outside the rows shown."""
        if not 0 <= proxy_row < self.proxy.rowCount():
            raise IndexError(f"no row {proxy_row} among {self.proxy.rowCount()} rows shown")
        source = self.proxy.mapToSource(self.proxy.index(proxy_row, TAG_COLUMN))
        return self.model.tag_at(source.row())

    def activate_row(self, proxy_row: int, exclude: bool) -> None:
        """Emit ``tag_activated`` for the tag in ``proxy_row`` (what a click does).

        Raises IndexError outside the rows shown.
        """
        self.tag_activated.emit(self.tag_at(proxy_row), bool(exclude))

    def context_actions(self, proxy_row: int, parent: QObject | None = None) -> list[QAction]:
        """The context menu entries for ``proxy_row``, in menu order, each bound to that row's
        tag: "Show Images With This Tag", "Show Images Without This Tag", "Rename Tag…",
        "Remove Tag from All Images…". ``parent`` owns the actions (the menu, normally).

        Raises IndexError outside the rows shown.
        """
        tag = self.tag_at(proxy_row)
        entries: list[tuple[str, str, Any]] = [
            ("show_with", "Show Images With This Tag",
             lambda: self.tag_activated.emit(tag, False)),
            ("show_without", "Show Images Without This Tag",
             lambda: self.tag_activated.emit(tag, True)),
            ("rename", "Rename Tag\u2026", lambda: self.rename_requested.emit(tag)),
            ("remove", "Remove Tag from All Images\u2026",
             lambda: self.remove_requested.emit(tag)),
        ]
        actions: list[QAction] = []
        for name, text, slot in entries:
            action = QAction(text, parent)
            action.setObjectName(name)
            action.triggered.connect(slot)
            actions.append(action)
        return actions

    # ------------------------------------------------------------------ slots

    @pyqtSlot(str)
    def _on_filter_changed(self, text: str) -> None:
        self.proxy.setFilterFixedString(text.strip())
        self._update_summary()

    @pyqtSlot(QModelIndex)
    def _on_clicked(self, index: QModelIndex) -> None:
        if not index.isValid():
            return
        exclude = bool(self.view.click_modifiers() & Qt.KeyboardModifier.ControlModifier)
        self.activate_row(index.row(), exclude)

    @pyqtSlot(int, bool)
    def _on_enter(self, proxy_row: int, exclude: bool) -> None:
        if 0 <= proxy_row < self.proxy.rowCount():
            self.activate_row(proxy_row, exclude)

    @pyqtSlot(int, QPoint)
    def _on_menu_requested(self, proxy_row: int, global_pos: QPoint) -> None:
        if not 0 <= proxy_row < self.proxy.rowCount():
            return
        menu = QMenu(self.view)
        for action in self.context_actions(proxy_row, menu):
            menu.addAction(action)
        menu.exec(global_pos)
        menu.deleteLater()

    def _update_summary(self) -> None:
        total = self.model.rowCount()
        noun = "tag" if total == 1 else "tags"
        if self.proxy.filterRegularExpression().pattern():
            text = f"{self.proxy.rowCount()} of {total} {noun}"
        elif total:
            text = f"{total} {noun}"
        else:
            text = "No tags"
        self.summary.setText(text)


__all__ = [
    "COUNT_COLUMN", "HEADERS", "SORT_ROLE", "TAG_COLUMN", "TAG_ROLE", "TagFrequencyModel",
    "TagPanel", "tag_tooltip",
]
