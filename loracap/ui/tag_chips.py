"""Tag chips under the caption editor: the caption body's tags as removable, draggable chips.

:class:`TagChipsWidget` shows the tags of the current image's caption body (read with
:func:`~loracap.core.tags.split_tags`) as chips that wrap onto several lines, an input with
completion from the project's tag vocabulary, and a row of recently used tags to toggle.

A caption of several lines (a multi-person caption: ``sksA: …``, ``sksB: …``, ``Scene: …``)
has its chips per line: each line's chips start a new row, removing a chip changes only its
line, and a tag typed or toggled goes to the current line (the caption editor's cursor line,
:meth:`TagChipsWidget.set_current_line`), never across a line break.

The widget never writes to a project. Every user action (remove, reorder, add, toggle) computes
the complete new body with the pure functions of :mod:`loracap.core.tags` and emits it through
:attr:`TagChipsWidget.body_changed`; the main window stores it and calls
:meth:`TagChipsWidget.set_caption` again after the save (a no-op when nothing changed).
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from PyQt6.QtCore import (
    QMimeData,
    QModelIndex,
    QPoint,
    QRect,
    QSize,
    QStringListModel,
    Qt,
    pyqtSignal,
)
from PyQt6.QtGui import (
    QDrag,
    QDragEnterEvent,
    QDragLeaveEvent,
    QDragMoveEvent,
    QDropEvent,
    QKeyEvent,
    QMouseEvent,
)
from PyQt6.QtWidgets import (
    QApplication,
    QCompleter,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLayoutItem,
    QLineEdit,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from loracap.core.tags import (
    DEFAULT_SEPARATOR,
    add_tag,
    has_tag,
    join_tags,
    remove_tag,
    split_tags,
)

#: How many recently used tags the "Recent:" row keeps.
MAX_RECENT = 12

#: MIME type of a chip being dragged: the chip's index in the caption, as ASCII digits.
TAG_INDEX_MIME = "application/x-loracap-tag-index"

#: Chip labels longer than this many characters are cut with an ellipsis (tooltip has it all).
CHIP_TEXT_LIMIT = 40

#: Rows shown by the completion popup before it scrolls.
COMPLETER_VISIBLE_ITEMS = 10

_STYLE = """
QFrame#tagChip {
    border: 1px solid palette(mid);
    border-radius: 6px;
    background: palette(button);
}
QFrame#tagChip[dropTarget="true"] {
    border: 2px solid palette(highlight);
}
QFrame#tagChip QLabel {
    color: palette(button-text);
    padding: 0px 0px 0px 4px;
}
QToolButton#removeTag {
    border: none;
    padding: 0px 3px;
    color: palette(button-text);
}
QToolButton#removeTag:hover {
    color: palette(highlighted-text);
    background: palette(highlight);
    border-radius: 4px;
}
QToolButton#recentTag {
    border: 1px dashed palette(mid);
    border-radius: 6px;
    padding: 1px 6px;
}
QToolButton#recentTag:checked {
    border: 1px solid palette(mid);
    background: palette(button);
}
QToolButton#recentTag:hover {
    border: 1px solid palette(highlight);
}
"""


def _separator_core(separator: str) -> str:
    """The separator's non-space part (``","`` for ``", "``), as in :mod:`loracap.core.tags`."""
    return separator.strip() or separator


def _elide(text: str, limit: int = CHIP_TEXT_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, the last one an ellipsis, when it is longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tooltip(text: str) -> str:
    """``text`` as a tooltip shown literally (a tag such as ``<b>`` must not turn into HTML)."""
    if "<" in text or "&" in text:
        return f"<qt>{html.escape(text)}</qt>"
    return text


def _button_text(text: str) -> str:
    """``text`` for a button label: ``&`` doubled so it is not read as a mnemonic."""
    return text.replace("&", "&&")


class FlowLayout(QLayout):
    """Lays its items out left to right and wraps them onto new rows when the width runs out.

    Items keep their size hint (clamped to their minimum and maximum); each row is as tall as
    its tallest item, and shorter items are centred vertically in their row. Hidden items take
    no room. The layout has a height for each width, so a parent layout gives it the rows it
    needs.
    """

    def __init__(
        self, parent: QWidget | None = None, *, h_spacing: int = 4, v_spacing: int = 4
    ) -> None:
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self._h_spacing = h_spacing
        self._v_spacing = v_spacing
        self.setContentsMargins(0, 0, 0, 0)

    # -- QLayout's item list ---------------------------------------------------------------

    def addItem(self, item: QLayoutItem | None) -> None:
        if item is not None:
            self._items.append(item)
            self.invalidate()

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:
        if not 0 <= index < len(self._items):
            return None
        item = self._items.pop(index)
        self.invalidate()
        return item

    # -- Geometry --------------------------------------------------------------------------

    def expandingDirections(self) -> Qt.Orientation:
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._place(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect: QRect) -> None:
        super().setGeometry(rect)
        self._place(rect, move=True)

    def sizeHint(self) -> QSize:
        """Everything on one row."""
        width = height = 0
        visible = [item for item in self._items if not item.isEmpty()]
        for item in visible:
            hint = self._item_size(item)
            width += hint.width()
            height = max(height, hint.height())
        width += self._h_spacing * max(0, len(visible) - 1)
        return self._with_margins(QSize(width, height))

    def minimumSize(self) -> QSize:
        """The widest and the tallest item: one item per row fits."""
        size = QSize(0, 0)
        for item in self._items:
            if not item.isEmpty():
                size = size.expandedTo(item.minimumSize())
        return self._with_margins(size)

    def _with_margins(self, size: QSize) -> QSize:
        margins = self.contentsMargins()
        return QSize(size.width() + margins.left() + margins.right(),
                     size.height() + margins.top() + margins.bottom())

    @staticmethod
    def _item_size(item: QLayoutItem) -> QSize:
        return item.sizeHint().expandedTo(item.minimumSize()).boundedTo(item.maximumSize())

    def _rows(self, width: int) -> list[list[tuple[QLayoutItem, QSize]]]:
        """The visible items grouped into rows that fit in ``width`` (at least one per row); a
        widget whose ``starts_line`` is true begins a new row."""
        rows: list[list[tuple[QLayoutItem, QSize]]] = []
        row: list[tuple[QLayoutItem, QSize]] = []
        used = 0
        for item in self._items:
            if item.isEmpty():
                continue
            size = self._item_size(item)
            needed = size.width() if not row else used + self._h_spacing + size.width()
            if row and (needed > width or getattr(item.widget(), "starts_line", False)):
                rows.append(row)
                row, needed = [], size.width()
            row.append((item, size))
            used = needed
        if row:
            rows.append(row)
        return rows

    def _place(self, rect: QRect, *, move: bool) -> int:
        """Lay the items out in ``rect`` (only measure unless ``move``); the height needed."""
        margins = self.contentsMargins()
        inner = rect.adjusted(margins.left(), margins.top(), -margins.right(), -margins.bottom())
        y = inner.y()
        rows = self._rows(max(1, inner.width()))
        for number, row in enumerate(rows):
            row_height = max(size.height() for _item, size in row)
            if number:
                y += self._v_spacing
            x = inner.x()
            for item, size in row:
                if move:
                    width = min(size.width(), max(1, inner.width()))
                    top = y + (row_height - size.height()) // 2
                    item.setGeometry(QRect(x, top, width, size.height()))
                x += size.width() + self._h_spacing
            y += row_height
        return y - rect.y() + margins.bottom()


class _TagChip(QFrame):
    """One tag: its (elided) text and a × button; drag it to reorder.

    Signals: ``remove_clicked(index)`` -- the × button was clicked.
    """

    remove_clicked = pyqtSignal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tagChip")
        self.setCursor(Qt.CursorShape.OpenHandCursor)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.index = -1
        self.tag = ""
        #: Whether the chip is the first of a caption line after the first (a new row).
        self.starts_line = False
        self._press_pos: QPoint | None = None
        self.label = QLabel()
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.remove_button = QToolButton()
        self.remove_button.setObjectName("removeTag")
        self.remove_button.setText("×")
        self.remove_button.setAutoRaise(True)
        self.remove_button.setCursor(Qt.CursorShape.ArrowCursor)
        self.remove_button.clicked.connect(lambda: self.remove_clicked.emit(self.index))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(2, 1, 1, 1)
        layout.setSpacing(0)
        layout.addWidget(self.label)
        layout.addWidget(self.remove_button)

    def set_tag(self, index: int, tag: str) -> None:
        """Show ``tag``, the ``index``-th tag of the caption."""
        self.index = index
        if tag == self.tag:
            return
        self.tag = tag
        self.label.setText(_elide(tag))
        self.setToolTip(_tooltip(tag))
        self.setAccessibleName(tag)
        self.remove_button.setToolTip(_tooltip(f"Remove {tag}"))
        self.remove_button.setAccessibleName(f"Remove {tag}")

    def set_drop_target(self, on: bool) -> None:
        """Outline the chip as the place a dragged chip will land."""
        if bool(self.property("dropTarget")) == on:
            return
        self.setProperty("dropTarget", on)
        style = self.style()
        if style is not None:
            style.unpolish(self)
            style.polish(self)

    def mousePressEvent(self, event: QMouseEvent | None) -> None:
        if event is not None and event.button() == Qt.MouseButton.LeftButton:
            self._press_pos = event.position().toPoint()
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent | None) -> None:
        self._press_pos = None
        super().mouseReleaseEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent | None) -> None:
        if (event is None or self._press_pos is None
                or not event.buttons() & Qt.MouseButton.LeftButton):
            super().mouseMoveEvent(event)
            return
        distance = (event.position().toPoint() - self._press_pos).manhattanLength()
        if distance < QApplication.startDragDistance():
            return
        press_pos, self._press_pos = self._press_pos, None
        mime = QMimeData()
        mime.setData(TAG_INDEX_MIME, str(self.index).encode("ascii"))
        drag = QDrag(self)
        drag.setMimeData(mime)
        drag.setPixmap(self.grab())
        drag.setHotSpot(press_pos)
        drag.exec(Qt.DropAction.MoveAction)


class _TagInput(QLineEdit):
    """The "Add tag…" input; Backspace in an empty input asks to remove the last tag.

    Signals: ``backspace_on_empty()``.
    """

    backspace_on_empty = pyqtSignal()

    def keyPressEvent(self, event: QKeyEvent | None) -> None:
        if (event is not None and event.key() == Qt.Key.Key_Backspace and not self.text()
                and event.modifiers() == Qt.KeyboardModifier.NoModifier):
            self.backspace_on_empty.emit()
            event.accept()
            return
        super().keyPressEvent(event)


class _TagCompleter(QCompleter):
    """Completes the tag being typed after the last separator, not the whole input.

    ``"red lamp, oa"`` looks up ``"oa"``; choosing ``"oak table"`` gives ``"red lamp, oak table"``.
    """

    def __init__(self, model: QStringListModel, parent: QWidget | None = None) -> None:
        super().__init__(model, parent)
        self.separator = DEFAULT_SEPARATOR

    def _split(self, text: str) -> tuple[str, str]:
        """``text`` as (everything before the last tag, the last tag stripped)."""
        core = _separator_core(self.separator)
        cut = text.rfind(core)
        head = text[: cut + len(core)] if cut >= 0 else ""
        tail = text[len(head):]
        head += tail[: len(tail) - len(tail.lstrip())]
        return head, tail.strip()

    def splitPath(self, path: str | None) -> list[str]:
        return [self._split(path or "")[1]]

    def pathFromIndex(self, index: QModelIndex) -> str:
        completion = str(index.data(Qt.ItemDataRole.EditRole) or "")
        widget = self.widget()
        text = widget.text() if isinstance(widget, QLineEdit) else ""
        return self._split(text)[0] + completion


class TagChipsWidget(QWidget):
    """The current caption body's tags as chips, an "Add tag…" input and recently used tags.

    Signals:

    * ``body_changed(body: str)`` -- the complete new caption body after a user action
      (remove, reorder, add, recent-tag toggle); the window saves it.
    * ``recent_changed(tags: list[str])`` -- the recently used tags, most recent first, after
      they changed; the window keeps them in its settings.
    """

    body_changed = pyqtSignal(str)
    recent_changed = pyqtSignal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._body: str | None = None
        self._separator = DEFAULT_SEPARATOR
        self._tags: list[str] = []
        #: The caption's lines, and for each chip its ``(line, position in the line)``.
        self._lines: list[str] = []
        self._where: list[tuple[int, int]] = []
        self._current_line = -1  # -1: the last line
        self._chips: list[_TagChip] = []
        self._recent: list[str] = []
        self._drop_target: _TagChip | None = None
        self.setAcceptDrops(True)
        self.setStyleSheet(_STYLE)

        self.chip_area = QWidget()
        self.chip_area.setObjectName("tagChipArea")
        self._chip_layout = FlowLayout(self.chip_area)

        self._vocabulary = QStringListModel(self)
        self.completer = _TagCompleter(self._vocabulary, self)
        self.completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        self.completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.completer.setModelSorting(QCompleter.ModelSorting.UnsortedModel)
        self.completer.setMaxVisibleItems(COMPLETER_VISIBLE_ITEMS)

        self.input = _TagInput()
        self.input.setObjectName("tagInput")
        self.input.setPlaceholderText("Add tag…")
        self.input.setAccessibleName("Add tag")
        self.input.setToolTip("Type a tag (or several, separated as in the caption) and press "
                              "Enter; Backspace in the empty field removes the last tag")
        self.input.setClearButtonEnabled(True)
        self.input.setCompleter(self.completer)
        self.input.returnPressed.connect(lambda: self.add_tags_from_text(self.input.text()))
        self.input.backspace_on_empty.connect(self._remove_last_tag)

        self.recent_row = QWidget()
        self.recent_row.setObjectName("recentTags")
        recent_layout = FlowLayout(self.recent_row, h_spacing=2)
        self.recent_label = QLabel("Recent:")
        recent_layout.addWidget(self.recent_label)
        self._recent_buttons: list[QToolButton] = []
        for position in range(MAX_RECENT):
            button = QToolButton()
            button.setObjectName("recentTag")
            button.setCheckable(True)
            button.setAutoRaise(True)
            button.clicked.connect(lambda _checked=False, i=position: self._toggle_recent(i))
            button.hide()
            recent_layout.addWidget(button)
            self._recent_buttons.append(button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.chip_area)
        layout.addWidget(self.input)
        layout.addWidget(self.recent_row)
        self._show(None, DEFAULT_SEPARATOR)

    # -- Showing a caption ------------------------------------------------------------------

    def set_caption(self, body: str | None, *, separator: str = DEFAULT_SEPARATOR) -> None:
        """Show the tags of ``body``, split on ``separator``; ``None``: no (valid) image.

        Never emits :attr:`body_changed`. Showing the body already shown does nothing, so the
        window may call this after every save.
        """
        if body == self._body and separator == self._separator:
            return
        self._show(body, separator)

    def _show(self, body: str | None, separator: str) -> None:
        self._lines = body.split("\n") if body is not None else []
        tags: list[str] = []
        where: list[tuple[int, int]] = []
        for number, line in enumerate(self._lines):
            line_tags = split_tags(line, separator)
            tags.extend(line_tags)
            where.extend((number, position) for position in range(len(line_tags)))
        self._where = where
        self._body = body
        self._separator = separator
        self.completer.separator = separator
        self._show_tags(tags)
        self.input.setEnabled(body is not None)
        self._show_target()
        self._refresh_recent()

    def set_current_line(self, line: int) -> None:
        """Make caption line ``line`` (0-based; the editor's cursor line) the one a typed or
        toggled tag goes to. Only matters for a caption of several lines."""
        if line != self._current_line:
            self._current_line = line
            self._show_target()
            self._refresh_recent()

    def current_line(self) -> int:
        """The caption line a typed or toggled tag goes to (0 for a one-line caption)."""
        if not self._lines:
            return 0
        last = len(self._lines) - 1
        return last if self._current_line < 0 else min(self._current_line, last)

    def _line_name(self, line: int) -> str:
        """How the input names a line: its label before ``:`` (``sksB``), else its number."""
        text = self._lines[line] if 0 <= line < len(self._lines) else ""
        label, colon, _rest = text.partition(":")
        if colon and label.strip() and len(label) <= 32:
            return label.strip()
        return f"line {line + 1}"

    def _show_target(self) -> None:
        """Say in the input which line a tag goes to, when there are several."""
        if len(self._lines) > 1:
            name = self._line_name(self.current_line())
            self.input.setPlaceholderText(f"Add tag to {name}…")
        else:
            self.input.setPlaceholderText("Add tag…")

    def _line_body(self) -> str:
        """The current line's text (the whole body for a one-line caption)."""
        return self._lines[self.current_line()] if self._lines else ""

    def _with_line(self, line: int, text: str) -> str:
        """The body with caption line ``line`` replaced by ``text``."""
        lines = list(self._lines)
        lines[line] = text
        return "\n".join(lines)

    def _show_tags(self, tags: list[str]) -> None:
        """One chip per tag: existing chips are relabelled, missing ones made, extra ones freed."""
        self._tags = tags
        self._set_drop_target(None)
        for index, tag in enumerate(tags):
            if index < len(self._chips):
                chip = self._chips[index]
            else:
                chip = _TagChip()
                chip.remove_clicked.connect(self._remove_at)
                self._chip_layout.addWidget(chip)
                self._chips.append(chip)
            chip.set_tag(index, tag)
            line, position = self._where[index] if index < len(self._where) else (0, index)
            chip.starts_line = line > 0 and position == 0
        self._chip_layout.invalidate()
        while len(self._chips) > len(tags):
            chip = self._chips.pop()
            self._chip_layout.takeAt(len(self._chips))  # the layout holds the chips in order
            chip.hide()
            chip.deleteLater()  # may be the sender of the click being handled
        self.chip_area.setVisible(bool(tags))

    def chip_texts(self) -> list[str]:
        """The full tag of every chip, in order (for tests)."""
        return [chip.tag for chip in self._chips]

    # -- Vocabulary -------------------------------------------------------------------------

    def set_vocabulary(self, project_tags: Sequence[str], user_tags: Sequence[str] = ()) -> None:
        """Offer ``project_tags`` (by frequency) then the ``user_tags`` not among them.

        Blank strings are dropped and every tag is offered once. Built in one go, so a list of
        100,000 tags (a Danbooru tag file) is fine.
        """
        merged = dict.fromkeys(tag for tag in (*project_tags, *user_tags) if tag.strip())
        self._vocabulary.setStringList(list(merged))

    # -- Recent tags ------------------------------------------------------------------------

    def recent_tags(self) -> list[str]:
        """The recently used tags, most recent first."""
        return list(self._recent)

    def set_recent_tags(self, tags: Sequence[str]) -> None:
        """Use ``tags`` (most recent first) as the recent list: stripped, deduplicated, capped at
        :data:`MAX_RECENT`. Does not emit :attr:`recent_changed`."""
        self._recent = self._clean_recent(tags)
        self._refresh_recent()

    @staticmethod
    def _clean_recent(tags: Sequence[str]) -> list[str]:
        cleaned = dict.fromkeys(tag.strip() for tag in tags if tag.strip())
        return list(cleaned)[:MAX_RECENT]

    def _remember(self, tags: Sequence[str]) -> None:
        """Put each of ``tags`` at the front of the recent list, in turn; emit the new list."""
        recent = self._recent
        for tag in tags:
            recent = [tag, *recent]
        recent = self._clean_recent(recent)
        if recent != self._recent:
            self._recent = recent
            self._refresh_recent()
            self.recent_changed.emit(list(recent))

    def _refresh_recent(self) -> None:
        body = self._body
        for position, button in enumerate(self._recent_buttons):
            if position >= len(self._recent):
                button.hide()
                continue
            tag = self._recent[position]
            present = body is not None and has_tag(self._line_body(), tag, self._separator)
            button.setText(_button_text(_elide(tag)))
            button.setChecked(present)
            button.setEnabled(body is not None)
            verb = "Remove {} from the caption" if present else "Add {} to the caption"
            button.setToolTip(_tooltip(verb.format(tag)))
            button.setAccessibleName(tag)
            button.show()
        self.recent_row.setVisible(bool(self._recent))

    def _toggle_recent(self, position: int) -> None:
        if self._body is None or position >= len(self._recent):
            self._refresh_recent()
            return
        tag = self._recent[position]
        line = self.current_line()
        text = self._line_body()
        if has_tag(text, tag, self._separator):
            self._apply(self._with_line(line, remove_tag(text, tag, self._separator)))
            self._refresh_recent()
        else:
            self._apply(self._with_line(line, add_tag(text, tag, separator=self._separator)))
            self._remember([tag])
            self._refresh_recent()

    # -- Editing ----------------------------------------------------------------------------

    def _apply(self, body: str) -> None:
        """Show ``body`` and emit it when it differs from the body shown."""
        if self._body is None or body == self._body:
            return
        self.set_caption(body, separator=self._separator)
        self.body_changed.emit(body)

    def add_tags_from_text(self, text: str) -> None:
        """Add the tags typed in ``text`` (what Enter in the input does).

        ``text`` is split on the separator's non-space part; each tag the caption (its current
        line, for a caption of several lines) lacks is added at its end. Emits
        :attr:`body_changed` once when the body changed, puts the added tags at the front of
        the recent list and clears the input.
        """
        if self._body is None:
            return
        line = self.current_line()
        body = self._line_body()
        added: list[str] = []
        for tag in split_tags(text, self._separator):
            new_body = add_tag(body, tag, separator=self._separator)
            if new_body != body:
                body = new_body
                added.append(tag)
        body = self._with_line(line, body)
        self.input.clear()
        popup = self.completer.popup()
        if popup is not None:
            popup.hide()
        self._apply(body)
        self._remember(added)

    def move_tag(self, from_index: int, to_index: int) -> None:
        """Move the ``from_index``-th tag to position ``to_index`` (what a chip drop does).

        Each line whose tags changed becomes its tags joined with the separator (a chip
        dropped on another line's chip moves to that line). An index out of range for
        ``from_index`` or a move to the same position changes nothing and emits nothing;
        ``to_index`` is clamped to the tags.
        """
        if self._body is None or not 0 <= from_index < len(self._tags):
            return
        to_index = max(0, min(to_index, len(self._tags) - 1))
        if to_index == from_index:
            return
        per_line: list[list[str]] = [[] for _line in self._lines]
        for tag, (line, _position) in zip(self._tags, self._where, strict=True):
            per_line[line].append(tag)
        source, source_position = self._where[from_index]
        target, target_position = self._where[to_index]
        tag = per_line[source].pop(source_position)
        per_line[target].insert(target_position, tag)
        lines = list(self._lines)
        for line in {source, target}:
            lines[line] = join_tags(per_line[line], self._separator)
        self._apply("\n".join(lines))

    def _remove_at(self, index: int) -> None:
        if self._body is not None and 0 <= index < len(self._tags):
            line = self._where[index][0]
            self._apply(self._with_line(
                line, remove_tag(self._lines[line], self._tags[index], self._separator)))

    def _remove_last_tag(self) -> None:
        """Backspace in the empty input: the last tag of the current line."""
        line = self.current_line()
        mine = [index for index, (number, _p) in enumerate(self._where) if number == line]
        if mine:
            self._remove_at(mine[-1])

    # -- Drag and drop ----------------------------------------------------------------------

    @staticmethod
    def _dragged_index(mime: QMimeData | None) -> int | None:
        if mime is None or not mime.hasFormat(TAG_INDEX_MIME):
            return None
        raw = bytes(mime.data(TAG_INDEX_MIME).data()).decode("ascii", "replace").strip()
        return int(raw) if raw.isdigit() else None

    def _chip_at(self, pos: QPoint) -> _TagChip | None:
        """The chip a drop at ``pos`` (widget coordinates) lands on, if any.

        A point past the last chip (to its right on its row, or below it) means the last chip.
        """
        if self._body is None or not self._chips:
            return None
        area_pos = self.chip_area.mapFrom(self, pos)
        for chip in self._chips:
            if chip.geometry().contains(area_pos):
                return chip
        last = self._chips[-1].geometry()
        inside = self.chip_area.rect().contains(area_pos)
        after_last = area_pos.y() > last.bottom() or (
            area_pos.y() >= last.top() and area_pos.x() > last.right())
        return self._chips[-1] if inside and after_last else None

    def _set_drop_target(self, chip: _TagChip | None) -> None:
        if chip is self._drop_target:
            return
        if self._drop_target is not None:
            self._drop_target.set_drop_target(False)
        self._drop_target = chip
        if chip is not None:
            chip.set_drop_target(True)

    def dragEnterEvent(self, event: QDragEnterEvent | None) -> None:
        if event is None:
            return
        # event.source() is not consulted: it crashes for synthetic events (tests, offscreen).
        if self._body is not None and self._dragged_index(event.mimeData()) is not None:
            event.setDropAction(Qt.DropAction.MoveAction)
            event.accept()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent | None) -> None:
        if event is None:
            return
        chip = None
        if self._dragged_index(event.mimeData()) is not None:
            chip = self._chip_at(event.position().toPoint())
        self._set_drop_target(chip)
        if chip is not None:
            event.setDropAction(Qt.DropAction.MoveAction)
            event.accept()
        else:
            event.ignore()

    def dragLeaveEvent(self, event: QDragLeaveEvent | None) -> None:
        self._set_drop_target(None)
        super().dragLeaveEvent(event)

    def dropEvent(self, event: QDropEvent | None) -> None:
        self._set_drop_target(None)
        if event is None:
            return
        index = self._dragged_index(event.mimeData())
        chip = self._chip_at(event.position().toPoint())
        if index is None or chip is None:
            event.ignore()
            return
        event.setDropAction(Qt.DropAction.MoveAction)
        event.accept()
        self.move_tag(index, chip.index)


__all__ = ["MAX_RECENT", "TAG_INDEX_MIME", "FlowLayout", "TagChipsWidget"]
