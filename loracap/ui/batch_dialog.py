"""Edit > Batch Edit…: one edit over many caption bodies, previewed before anything changes.

The dialog computes :class:`~loracap.core.tags.Change` objects with the pure functions of
:mod:`loracap.core.tags` (find/replace, add/remove/rename a tag, prepend/append text) and lists
every caption that would change. It never writes to a project: after ``exec()`` returns
Accepted the window applies :meth:`BatchEditDialog.changes` as one undo step named
:meth:`BatchEditDialog.label`.

The preview is a :class:`QTableView` over a small table model, so tens of thousands of changed
captions cost nothing but the list of changes itself. Typing recomputes the preview after a short
pause (:data:`PREVIEW_DELAY_MS`); choosing a scope, operation or option recomputes it at once.

A find/replace preview runs on the GUI thread but within a time budget
(:data:`~loracap.core.tags.FIND_TIME_BUDGET_S`, see :mod:`loracap.core.tags` for why the
``regex`` engine's timeout rather than a worker): an expression that backtracks for ever shows
"This expression is too slow on these captions; simplify it" in the summary above the empty
preview, Apply stays disabled, and nothing is applied. The dialog remembers the expression (with
its options and scope) that ran out of time, so typing in the replacement field does not spend
the budget again.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import cast

from PyQt6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QStringListModel,
    Qt,
    QTimer,
    pyqtSlot,
)
from PyQt6.QtGui import QFont, QStandardItemModel
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QCompleter,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from loracap.core.errors import InputError
from loracap.core.tags import (
    DEFAULT_SEPARATOR,
    Change,
    ExpressionTooSlowError,
    add_tag,
    append_text,
    apply_batch,
    find_replace_preview,
    prepend_text,
    remove_tag,
    rename_tag,
)

#: Delay after the last keystroke in a field before the preview is recomputed, in ms.
PREVIEW_DELAY_MS = 150

#: Style of the summary when the input cannot be used (a readable red on light and dark themes).
_WARNING_STYLE = "color: #c0392b;"

#: Longest quoted text in an undo label before it is shortened with an ellipsis.
_LABEL_TEXT_MAX = 40

_ModelIndex = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True)
class BatchTarget:
    """One image a batch edit may change: its id, its file name (shown) and its caption body.

    ``body`` is the caption without the trigger prefix, ``""`` when the image has no caption.
    """

    image_id: int
    file_name: str
    body: str


class Operation(StrEnum):
    """What a batch edit does to each caption body."""

    REPLACE = "replace"
    ADD_TAG = "add_tag"
    REMOVE_TAG = "remove_tag"
    RENAME_TAG = "rename_tag"
    PREPEND = "prepend"
    APPEND = "append"

    @property
    def label(self) -> str:
        """The operation's name in the dialog's "Operation" list."""
        return _OPERATION_LABELS[self]


_OPERATION_LABELS: dict[Operation, str] = {
    Operation.REPLACE: "Find and replace",
    Operation.ADD_TAG: "Add tag",
    Operation.REMOVE_TAG: "Remove tag",
    Operation.RENAME_TAG: "Rename tag",
    Operation.PREPEND: "Prepend text",
    Operation.APPEND: "Append text",
}


# ---------------------------------------------------------------------------------- helpers


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def _quoted(text: str) -> str:
    """``text`` in double quotes, shortened with an ellipsis when long (for undo labels)."""
    text = " ".join(text.split()) if "\n" in text else text
    if len(text) > _LABEL_TEXT_MAX:
        text = text[:_LABEL_TEXT_MAX - 1] + "…"
    return f'"{text}"'


def _one_line(body: str) -> str:
    """``body`` for a single-line table cell: each line break shown as a ``↵`` mark."""
    if "\n" not in body and "\r" not in body:
        return body
    return body.replace("\r\n", "\n").replace("\r", "\n").replace("\n", " ↵ ")


def _make_completer(model: QStringListModel, parent: QObject) -> QCompleter:
    """A completer over the tag vocabulary: case-insensitive, matching anywhere in a tag."""
    completer = QCompleter(model, parent)
    completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
    completer.setFilterMode(Qt.MatchFlag.MatchContains)
    completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
    return completer


# ---------------------------------------------------------------------------------- preview


class PreviewModel(QAbstractTableModel):
    """The changes of a batch edit as a read-only table: File, Before, After (, Replacements).

    Before/After hold the whole body on one line (line breaks shown as ``↵``) and the full text
    as a tooltip; an empty body reads "(empty)" in italics. :data:`DIFF_ROLE` gives the index of
    the first character that differs between before and after, for the delegate that keeps the
    change in sight when a cell is too narrow. ``Qt.ItemDataRole.UserRole`` gives the row's
    :class:`Change`.
    """

    FILE, BEFORE, AFTER, COUNT = range(4)
    DIFF_ROLE = Qt.ItemDataRole.UserRole + 1
    _HEADERS = ("File", "Before", "After", "Replacements")
    _EMPTY = "(empty)"

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._changes: list[Change] = []
        self._names: Mapping[int, str] = {}
        self._show_count = True
        self._italic = QFont()
        self._italic.setItalic(True)

    def set_changes(self, changes: Sequence[Change], names: Mapping[int, str], *,
                    show_count: bool) -> None:
        """Show ``changes``; ``names`` maps image ids to file names; ``show_count`` adds the
        Replacements column (find and replace only)."""
        self.beginResetModel()
        self._changes = list(changes)
        self._names = names
        self._show_count = show_count
        self.endResetModel()

    def rowCount(self, parent: _ModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._changes)

    def columnCount(self, parent: _ModelIndex = QModelIndex()) -> int:  # noqa: B008
        if parent.isValid():
            return 0
        return 4 if self._show_count else 3

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return self._HEADERS[section] if 0 <= section < self.columnCount() else None
        return section + 1

    def data(self, index: _ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid() or not 0 <= index.row() < len(self._changes):
            return None
        change = self._changes[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.UserRole:
            return change
        if column == self.FILE:
            if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
                return self._names.get(change.image_id, f"#{change.image_id}")
            return None
        if column == self.COUNT:
            if role == Qt.ItemDataRole.DisplayRole:
                return change.count
            if role == Qt.ItemDataRole.TextAlignmentRole:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            return None
        body = change.before if column == self.BEFORE else change.after
        if role == Qt.ItemDataRole.DisplayRole:
            return _one_line(body) if body else self._EMPTY
        if role == Qt.ItemDataRole.ToolTipRole:
            # Rich text so a long caption wraps; escaped so a caption is never read as markup.
            return f"<qt>{html.escape(body) if body else self._EMPTY}</qt>"
        if role == Qt.ItemDataRole.FontRole:
            return self._italic if not body else None
        if role == self.DIFF_ROLE:
            if not change.before or not change.after:
                return None
            return len(os.path.commonprefix([_one_line(change.before),
                                              _one_line(change.after)]))
        return None

    def flags(self, index: _ModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable


class _ChangeDelegate(QStyledItemDelegate):
    """Elides a too-long Before/After cell so that its first changed character stays visible.

    A cell whose change lies beyond about half its width starts with "…" and some context
    before the change instead of the caption's start; the view then elides the end as usual.
    """

    def initStyleOption(self, option: QStyleOptionViewItem | None,
                        index: QModelIndex) -> None:
        super().initStyleOption(option, index)
        if option is None:
            return
        diff = index.data(PreviewModel.DIFF_ROLE)
        if not isinstance(diff, int) or diff <= 0:
            return
        text = option.text or ""
        metrics = option.fontMetrics
        width = max(1, option.rect.width() - 8)
        if metrics.horizontalAdvance(text) <= width:
            return
        if metrics.horizontalAdvance(text[:diff]) <= width // 2:
            return
        context = max(4, (width // 3) // max(1, metrics.averageCharWidth()))
        start = max(0, diff - context)
        if start > 0:
            option.text = "…" + text[start:]


# ---------------------------------------------------------------------------------- dialog


class BatchEditDialog(QDialog):
    """Edit > Batch Edit…: find/replace, add/remove/rename a tag or prepend/append text over the
    selected images or every image shown in the grid, with a preview of every change.

    ``selected`` and ``shown`` are the candidates of the two scopes. The scope defaults to the
    selected images when two or more are selected, else to the shown ones. ``operation`` and
    ``tag`` pre-fill the dialog (``tag`` goes into the field that operation reads: the find text,
    the tag, the tag to rename, or the text). ``vocabulary`` feeds the tag fields' completers.

    Apply (enabled when at least one caption changes and the input is valid) accepts the dialog;
    :meth:`changes` and :meth:`label` then give what to apply and the undo step's name.
    """

    def __init__(
        self,
        selected: Sequence[BatchTarget],
        shown: Sequence[BatchTarget],
        *,
        separator: str = DEFAULT_SEPARATOR,
        vocabulary: Sequence[str] = (),
        operation: Operation = Operation.REPLACE,
        tag: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Batch Edit")
        self.setMinimumSize(760, 520)
        self._selected = list(selected)
        self._shown = list(shown)
        self._separator = separator
        self._names: dict[int, str] = {t.image_id: t.file_name for t in self._shown}
        self._names.update((t.image_id, t.file_name) for t in self._selected)
        self._changes: list[Change] = []
        self._error = ""
        # (find, regex, match case, scope) of the expression that last ran out of time, and why.
        self._too_slow: tuple[tuple[str, bool, bool, bool], str] | None = None
        self._operation = Operation(operation)
        self._vocabulary = QStringListModel(list(vocabulary), self)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(PREVIEW_DELAY_MS)
        self._timer.timeout.connect(self.refresh_preview)

        # -- scope and operation
        self.scope_combo = QComboBox()
        self.scope_combo.addItem(f"Selected images ({len(self._selected)})", True)
        self.scope_combo.addItem(f"All images shown in the grid ({len(self._shown)})", False)
        self.scope_combo.setAccessibleName("Images to edit")
        self.scope_combo.setToolTip("Which captions the edit looks at.")
        if not self._selected:
            items = cast(QStandardItemModel, self.scope_combo.model())
            item = items.item(0)
            if item is not None:
                item.setEnabled(False)
        self.scope_combo.setCurrentIndex(0 if len(self._selected) >= 2 else 1)

        self.operation_combo = QComboBox()
        for op in Operation:
            self.operation_combo.addItem(op.label, op.value)
        self.operation_combo.setAccessibleName("Operation")
        self.operation_combo.setToolTip("What to do to each caption.")

        # -- find and replace
        self.find_edit = QLineEdit()
        self.find_edit.setPlaceholderText("Text to find")
        self.find_edit.setAccessibleName("Find")
        self.find_edit.setClearButtonEnabled(True)
        self.replace_edit = QLineEdit()
        self.replace_edit.setPlaceholderText("Replacement (may be empty)")
        self.replace_edit.setAccessibleName("Replace with")
        self.replace_edit.setClearButtonEnabled(True)
        self.regex_check = QCheckBox("Regular e&xpression")
        self.regex_check.setToolTip(
            "Find a Python regular expression; the replacement may use groups such as \\1 "
            "or \\g<name>."
        )
        self.case_check = QCheckBox("Match &case")
        self.case_check.setChecked(True)
        self.case_check.setToolTip("Find only text with the same upper and lower case.")
        self._options = QWidget()
        options_row = QHBoxLayout(self._options)
        options_row.setContentsMargins(0, 0, 0, 0)
        options_row.addWidget(self.regex_check)
        options_row.addWidget(self.case_check)
        options_row.addStretch(1)

        # -- add / remove tag
        self.tag_edit = QLineEdit()
        self.tag_edit.setAccessibleName("Tag")
        self.tag_edit.setClearButtonEnabled(True)
        self.tag_edit.setCompleter(_make_completer(self._vocabulary, self))
        self.position_combo = QComboBox()
        self.position_combo.addItem("At the end", False)
        self.position_combo.addItem("At the start", True)
        self.position_combo.setAccessibleName("Where to add the tag")
        self.position_combo.setToolTip("Where the tag goes in captions that do not have it yet.")

        # -- rename tag
        self.rename_from_edit = QLineEdit()
        self.rename_from_edit.setPlaceholderText("The tag as it is now")
        self.rename_from_edit.setAccessibleName("Tag to rename")
        self.rename_from_edit.setClearButtonEnabled(True)
        self.rename_from_edit.setCompleter(_make_completer(self._vocabulary, self))
        self.rename_to_edit = QLineEdit()
        self.rename_to_edit.setPlaceholderText("Its new name")
        self.rename_to_edit.setAccessibleName("New name")
        self.rename_to_edit.setClearButtonEnabled(True)
        self.rename_to_edit.setToolTip(
            "Captions that already have the new tag just lose the old one."
        )
        self.rename_to_edit.setCompleter(_make_completer(self._vocabulary, self))

        # -- prepend / append text
        self.text_edit = QLineEdit()
        self.text_edit.setAccessibleName("Text")
        self.text_edit.setClearButtonEnabled(True)

        # -- summary and preview
        self.summary_label = QLabel()
        self.summary_label.setWordWrap(True)
        self.summary_label.setAccessibleName("Summary of the changes")
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._model = PreviewModel(self)
        self._file_width = 170  # the File column's width, kept when the user resizes it
        self._columns_configured = False
        self.preview_view = QTableView()
        self.preview_view.setModel(self._model)
        self.preview_view.setItemDelegate(_ChangeDelegate(self.preview_view))
        self.preview_view.setAccessibleName("Preview of the changed captions")
        self.preview_view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.preview_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.preview_view.setAlternatingRowColors(True)
        self.preview_view.setWordWrap(False)
        self.preview_view.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.preview_view.setCornerButtonEnabled(False)
        rows = self.preview_view.verticalHeader()
        if rows is not None:
            rows.setVisible(False)
            rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
            rows.setDefaultSectionSize(self.fontMetrics().height() + 8)

        # -- buttons
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        assert ok is not None
        self.apply_button: QPushButton = ok
        self.apply_button.setDefault(True)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        self._build_layout()

        self.scope_combo.currentIndexChanged.connect(self._on_choice_changed)
        self.operation_combo.currentIndexChanged.connect(self._on_operation_index)
        self.position_combo.currentIndexChanged.connect(self._on_choice_changed)
        self.regex_check.toggled.connect(self._on_choice_changed)
        self.case_check.toggled.connect(self._on_choice_changed)
        for edit in (self.find_edit, self.replace_edit, self.tag_edit, self.rename_from_edit,
                     self.rename_to_edit, self.text_edit):
            edit.textChanged.connect(self._schedule)

        if tag:
            self._field_for(self._operation).setText(tag)
        self.operation_combo.blockSignals(True)
        self.operation_combo.setCurrentIndex(list(Operation).index(self._operation))
        self.operation_combo.blockSignals(False)
        self._show_operation_fields()
        self.refresh_preview()
        focus = self._field_for(self._operation)
        if self._operation is Operation.RENAME_TAG and self.rename_from_edit.text():
            focus = self.rename_to_edit
        focus.setFocus()

    def _build_layout(self) -> None:
        form = QFormLayout()
        self._form = form
        scope_label = QLabel("Appl&y to:")
        scope_label.setBuddy(self.scope_combo)
        form.addRow(scope_label, self.scope_combo)
        operation_label = QLabel("&Operation:")
        operation_label.setBuddy(self.operation_combo)
        form.addRow(operation_label, self.operation_combo)
        self._tag_label = QLabel("&Tag to add:")
        self._text_label = QLabel("&Text to prepend:")
        for text, widget in (("&Find:", self.find_edit),
                             ("Replace &with:", self.replace_edit),
                             ("", self._options),
                             (self._tag_label, self.tag_edit),
                             ("&Position:", self.position_combo),
                             ("&Tag:", self.rename_from_edit),
                             ("&New name:", self.rename_to_edit),
                             (self._text_label, self.text_edit)):
            label = text if isinstance(text, QLabel) else QLabel(text)
            if label.text():
                label.setBuddy(widget)
            form.addRow(label, widget)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.preview_view, 1)
        layout.addWidget(self.buttons)
        order: list[QWidget] = [
            self.scope_combo, self.operation_combo, self.find_edit, self.replace_edit,
            self.regex_check, self.case_check, self.tag_edit, self.position_combo,
            self.rename_from_edit, self.rename_to_edit, self.text_edit, self.preview_view,
            self.buttons,
        ]
        for first, second in zip(order, order[1:], strict=False):
            QWidget.setTabOrder(first, second)

    # -- public

    @property
    def operation(self) -> Operation:
        """The chosen operation."""
        return self._operation

    @property
    def scope_is_selected(self) -> bool:
        """True when the edit looks at the selected images, False for all shown images."""
        return bool(self.scope_combo.currentData())

    @property
    def error(self) -> str:
        """Why the input cannot be used (e.g. an invalid regular expression), or ``""``."""
        return self._error

    def changes(self) -> list[Change]:
        """The previewed changes, in target order: exactly what Apply applies."""
        return list(self._changes)

    def label(self) -> str:
        """The undo step's name, e.g. ``Add tag "lamp" to 5 captions``."""
        captions = _plural(len(self._changes), "caption")
        op = self._operation
        if op is Operation.REPLACE:
            return (f"Replace {_quoted(self.find_edit.text())} with "
                    f"{_quoted(self.replace_edit.text())} in {captions}")
        if op is Operation.ADD_TAG:
            return f"Add tag {_quoted(self.tag_edit.text().strip())} to {captions}"
        if op is Operation.REMOVE_TAG:
            return f"Remove tag {_quoted(self.tag_edit.text().strip())} from {captions}"
        if op is Operation.RENAME_TAG:
            return (f"Rename tag {_quoted(self.rename_from_edit.text().strip())} to "
                    f"{_quoted(self.rename_to_edit.text().strip())} in {captions}")
        verb = "Prepend" if op is Operation.PREPEND else "Append"
        return f"{verb} {_quoted(self.text_edit.text().strip())} to {captions}"

    def set_operation(self, op: Operation) -> None:
        """Choose the operation ``op`` and recompute the preview."""
        op = Operation(op)
        self.operation_combo.setCurrentIndex(list(Operation).index(op))
        if self._operation is not op:  # the combo did not emit (same index)
            self._on_operation_index(self.operation_combo.currentIndex())

    def set_scope(self, selected: bool) -> None:
        """Edit the selected images (``True``) or all shown images, and recompute the preview.

        Choosing the selected images while none are selected keeps the shown images.
        """
        if selected and not self._selected:
            selected = False
        self.scope_combo.setCurrentIndex(0 if selected else 1)
        self.refresh_preview()

    def refresh_preview(self) -> None:
        """Recompute the changes from the fields now and show them."""
        self._timer.stop()
        self._changes, self._error, hint = self._compute()
        header = self.preview_view.horizontalHeader()
        if header is not None and self._columns_configured:
            self._file_width = header.sectionSize(PreviewModel.FILE)
        self._model.set_changes(self._changes, self._names,
                                show_count=self._operation is Operation.REPLACE)
        self._configure_columns()
        count = len(self._changes)
        if self._error:
            summary = self._error
        elif hint:
            summary = hint
        elif not count:
            summary = "No caption changes"
        else:
            summary = f"{_plural(count, 'caption')} change{'s' if count == 1 else ''}"
            if self._operation is Operation.REPLACE:
                replacements = sum(change.count for change in self._changes)
                summary += f" · {_plural(replacements, 'replacement')}"
        self.summary_label.setText(summary)
        self.summary_label.setStyleSheet(_WARNING_STYLE if self._error else "")
        self.apply_button.setText(f"Apply to {_plural(count, 'caption')}")
        self.apply_button.setEnabled(count > 0 and not self._error)
        self.apply_button.setToolTip(
            self._error or hint or ("" if count else "No caption would change.")
        )

    def accept(self) -> None:
        """Apply (Enter or the Apply button). When the fields changed since the preview was
        computed and the new preview differs, only the preview is updated, so nothing is
        applied that was not shown; a second Apply accepts."""
        if self._timer.isActive():
            shown = self._changes
            self.refresh_preview()
            if self._changes != shown:
                return
        if not self._changes or self._error:
            return
        super().accept()

    def done(self, result: int) -> None:
        """Close the dialog; a pending preview update is dropped."""
        self._timer.stop()
        super().done(result)

    # -- internals

    def _targets(self) -> list[BatchTarget]:
        return self._selected if self.scope_is_selected else self._shown

    def _field_for(self, op: Operation) -> QLineEdit:
        """The field ``tag`` pre-fills and that gets the focus for ``op``."""
        if op is Operation.REPLACE:
            return self.find_edit
        if op in (Operation.ADD_TAG, Operation.REMOVE_TAG):
            return self.tag_edit
        if op is Operation.RENAME_TAG:
            return self.rename_from_edit
        return self.text_edit

    def _compute(self) -> tuple[list[Change], str, str]:
        """``(changes, error, hint)`` for the current fields; at most one of error/hint set."""
        bodies = {target.image_id: target.body for target in self._targets()}
        op = self._operation
        sep = self._separator
        operation: Callable[[str], str]
        if op is Operation.REPLACE:
            find = self.find_edit.text()
            if not find:
                return [], "", "Type the text to find."
            key = (find, self.regex_check.isChecked(), self.case_check.isChecked(),
                   self.scope_is_selected)
            if self._too_slow is not None and self._too_slow[0] == key:
                return [], self._too_slow[1], ""
            try:
                changes = find_replace_preview(
                    bodies, find, self.replace_edit.text(),
                    regex=self.regex_check.isChecked(),
                    case_sensitive=self.case_check.isChecked(),
                )
            except ExpressionTooSlowError as exc:
                self._too_slow = (key, str(exc))
                return [], str(exc), ""
            except InputError as exc:
                return [], str(exc), ""
            return changes, "", ""
        if op in (Operation.ADD_TAG, Operation.REMOVE_TAG):
            tag = self.tag_edit.text().strip()
            if not tag:
                return [], "", ("Type the tag to add." if op is Operation.ADD_TAG
                                else "Type the tag to remove.")
            if op is Operation.ADD_TAG:
                at_start = bool(self.position_combo.currentData())
                operation = partial(_add, tag=tag, at_start=at_start, separator=sep)
            else:
                operation = partial(_remove, tag=tag, separator=sep)
        elif op is Operation.RENAME_TAG:
            old = self.rename_from_edit.text().strip()
            new = self.rename_to_edit.text().strip()
            if not old:
                return [], "", "Type the tag to rename."
            if not new:
                return [], "", "Type the new name of the tag."
            operation = partial(_rename, old=old, new=new, separator=sep)
        else:
            text = self.text_edit.text().strip()
            if not text:
                return [], "", ("Type the text to prepend." if op is Operation.PREPEND
                                else "Type the text to append.")
            edit = prepend_text if op is Operation.PREPEND else append_text
            operation = partial(_text, edit=edit, text=text, separator=sep)
        try:
            return apply_batch(bodies, operation), "", ""
        except InputError as exc:  # e.g. an empty tag separator in the project
            return [], str(exc), ""

    def _configure_columns(self) -> None:
        header = self.preview_view.horizontalHeader()
        if header is None:
            return
        header.setStretchLastSection(False)
        header.setSectionResizeMode(PreviewModel.FILE, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(PreviewModel.BEFORE, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(PreviewModel.AFTER, QHeaderView.ResizeMode.Stretch)
        if self._model.columnCount() > PreviewModel.COUNT:
            header.setSectionResizeMode(PreviewModel.COUNT, QHeaderView.ResizeMode.Fixed)
            header.resizeSection(
                PreviewModel.COUNT,
                header.fontMetrics().horizontalAdvance("Replacements") + 24,
            )
        header.resizeSection(PreviewModel.FILE, self._file_width)
        self._columns_configured = True

    def _show_operation_fields(self) -> None:
        op = self._operation
        replace = op is Operation.REPLACE
        tag = op in (Operation.ADD_TAG, Operation.REMOVE_TAG)
        rename = op is Operation.RENAME_TAG
        text = op in (Operation.PREPEND, Operation.APPEND)
        for widget, visible in ((self.find_edit, replace), (self.replace_edit, replace),
                                (self._options, replace), (self.tag_edit, tag),
                                (self.position_combo, op is Operation.ADD_TAG),
                                (self.rename_from_edit, rename), (self.rename_to_edit, rename),
                                (self.text_edit, text)):
            self._form.setRowVisible(widget, visible)
        if op is Operation.ADD_TAG:
            self._tag_label.setText("&Tag to add:")
            self.tag_edit.setPlaceholderText("The tag to add where it is missing")
        elif op is Operation.REMOVE_TAG:
            self._tag_label.setText("&Tag to remove:")
            self.tag_edit.setPlaceholderText("The tag to remove wherever it is")
        if op is Operation.PREPEND:
            self._text_label.setText("&Text to prepend:")
            self.text_edit.setPlaceholderText("Text put before each caption")
        elif op is Operation.APPEND:
            self._text_label.setText("&Text to append:")
            self.text_edit.setPlaceholderText("Text put after each caption")

    @pyqtSlot(int)
    def _on_operation_index(self, index: int) -> None:
        data = self.operation_combo.itemData(index)
        if data is None:
            return
        self._operation = Operation(data)
        self._show_operation_fields()
        self.refresh_preview()

    @pyqtSlot()
    def _on_choice_changed(self) -> None:
        self.refresh_preview()

    @pyqtSlot()
    def _schedule(self) -> None:
        self._timer.start()


# Module-level edits for apply_batch: partial() of these is cheaper than a closure per call and
# keeps the keyword arguments of the core functions explicit.


def _add(body: str, *, tag: str, at_start: bool, separator: str) -> str:
    return add_tag(body, tag, at_start=at_start, separator=separator)


def _remove(body: str, *, tag: str, separator: str) -> str:
    return remove_tag(body, tag, separator)


def _rename(body: str, *, old: str, new: str, separator: str) -> str:
    return rename_tag(body, old, new, separator)


def _text(body: str, *, edit: Callable[[str, str, str], str], text: str, separator: str) -> str:
    return edit(body, text, separator)


__all__ = ["PREVIEW_DELAY_MS", "BatchEditDialog", "BatchTarget", "Operation", "PreviewModel"]
