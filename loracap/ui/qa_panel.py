"""The question-answer pairs of the current image, shown in a dock of the main window (issue 14,
"Reviewing").

The panel shows what it is given (:meth:`QAPanel.show_entries`) and never reads or writes the
project: every change a person makes is a signal the window turns into an undoable edit
(:mod:`loracap.ui.qa_editing`), after which it calls ``show_entries`` again.

Keys while the list has focus: Enter or C confirms the selected pair (or takes the mark back),
0-5 score it, Delete removes it. The question and answer are edited in place below the list;
they are saved when the field loses focus or on Ctrl+Enter.
"""

from __future__ import annotations

from collections.abc import Sequence

from PyQt6.QtCore import QEvent, QObject, Qt, pyqtSignal
from PyQt6.QtGui import QKeyEvent, QPalette
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from loracap.core.qa.records import QAEntry
from loracap.ui.widgets import ElidedLabel

#: Columns of :attr:`QAPanel.tree`.
COL_STATE, COL_QUESTION, COL_ANSWER = range(3)
#: Item data role holding a row's entry id.
ENTRY_ID_ROLE = Qt.ItemDataRole.UserRole

NO_IMAGE_TEXT = "Select an image to see its question-answer pairs."
NO_ENTRIES_TEXT = ("This image has no question-answer pairs yet. Add a question, or generate "
                   "pairs with the vision model.")

#: What the score box shows for "not scored".
UNSCORED = "–"


def state_text(entry: QAEntry) -> str:
    """The first column: confirmed (✓), score (★n) and invalid (⚠) at a glance."""
    parts = ["✓" if entry.confirmed else "·"]
    if entry.score is not None:
        parts.append(f"★{entry.score}")
    if not entry.valid:
        parts.append("⚠")
    return " ".join(parts)


def tags_from_text(text: str) -> tuple[str, ...]:
    """The tags typed in the tags field: comma-separated, stripped, each once, in order."""
    return tuple(dict.fromkeys(tag.strip() for tag in text.split(",") if tag.strip()))


class _Keys(QObject):
    """The list's keys: Enter/C confirm, 0-5 score, Delete remove."""

    def __init__(self, panel: QAPanel) -> None:
        super().__init__(panel)
        self._panel = panel

    _KEYS = frozenset({Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_C, Qt.Key.Key_Delete,
                       *(Qt.Key(Qt.Key.Key_0 + n) for n in range(6))})

    def eventFilter(self, watched: QObject | None, event: QEvent | None) -> bool:
        if event is None or event.type() not in (QEvent.Type.KeyPress,
                                                 QEvent.Type.ShortcutOverride):
            return False
        assert isinstance(event, QKeyEvent)
        if event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
            return False
        key = event.key()
        if event.type() == QEvent.Type.ShortcutOverride:
            # These keys are the panel's while its list has focus, not the window's
            # shortcuts (1-5 rate the image, C…).
            if key in self._KEYS:
                event.accept()
                return True
            return False
        panel = self._panel
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_C):
            panel.toggle_confirmed()
            return True
        if Qt.Key.Key_0 <= key <= Qt.Key.Key_5:
            panel.set_score(key - Qt.Key.Key_0)
            return True
        if key == Qt.Key.Key_Delete:
            panel.delete_selected()
            return True
        return False


class _SaveOnFocusOut(QObject):
    """Saves a text field when it loses focus, or on Ctrl+Enter."""

    def __init__(self, panel: QAPanel) -> None:
        super().__init__(panel)
        self._panel = panel

    def eventFilter(self, watched: QObject | None, event: QEvent | None) -> bool:
        if event is None:
            return False
        if event.type() == QEvent.Type.FocusOut:
            self._panel.save_texts()
        elif event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and \
                    event.modifiers() & Qt.KeyboardModifier.ControlModifier:
                self._panel.save_texts()
                return True
        return False


class QAPanel(QWidget):
    """The pairs of one image: a list, the selected pair's fields, and buttons.

    Signals (the window acts on them):

    * ``edit_requested(entry_id, changes, label)`` -- ``changes`` maps field names of
      :meth:`loracap.core.project.Project.edit_qa` (``question``, ``answer``, ``confirmed``,
      ``score``, ``tags``, ``note``) to new values; ``label`` names the undo step.
    * ``add_requested(question)`` -- Add Question with the text typed.
    * ``delete_requested(entry_ids)``
    * ``regenerate_requested(entry_id)`` -- New Answer (ask the model again).
    * ``generate_requested()`` -- Generate Pairs for This Image.
    """

    edit_requested = pyqtSignal(int, dict, str)
    add_requested = pyqtSignal(str)
    delete_requested = pyqtSignal(list)
    regenerate_requested = pyqtSignal(int)
    generate_requested = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._entries: dict[int, QAEntry] = {}
        self._filling = False

        self.title = ElidedLabel(mode=Qt.TextElideMode.ElideMiddle, min_chars=12)
        self.title.setObjectName("qaTitle")
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.placeholder = QLabel()
        self.placeholder.setWordWrap(True)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        palette = self.placeholder.palette()
        palette.setColor(QPalette.ColorRole.WindowText,
                         palette.color(QPalette.ColorRole.PlaceholderText))
        self.placeholder.setPalette(palette)

        self.tree = QTreeWidget()
        self.tree.setObjectName("qaList")
        self.tree.setAccessibleName("Question-answer pairs")
        self.tree.setColumnCount(3)
        self.tree.setHeaderLabels(["", "Question", "Answer"])
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.tree.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        header = self.tree.header()
        assert header is not None
        header.setStretchLastSection(True)
        header.setSectionResizeMode(COL_STATE, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COL_QUESTION, QHeaderView.ResizeMode.Stretch)
        self.tree.itemSelectionChanged.connect(self._on_selection_changed)
        self.tree.installEventFilter(_Keys(self))

        self.question = QLineEdit()
        self.question.setObjectName("qaQuestion")
        self.question.setPlaceholderText("Question")
        self.answer = QPlainTextEdit()
        self.answer.setObjectName("qaAnswer")
        self.answer.setPlaceholderText("Answer (none yet: New Answer asks the model)")
        self.answer.setTabChangesFocus(True)
        self.answer.setMinimumHeight(48)
        saver = _SaveOnFocusOut(self)
        self.question.installEventFilter(saver)
        self.answer.installEventFilter(saver)
        self.invalid = QLabel()
        self.invalid.setObjectName("qaInvalid")
        self.invalid.setWordWrap(True)
        self.invalid.setStyleSheet("color: #b3261e;")
        self.confirmed = QCheckBox("Confirmed")
        self.confirmed.setToolTip("A person checked this answer (Enter or C in the list)")
        self.confirmed.clicked.connect(lambda checked: self._emit_one(
            {"confirmed": checked}, "Confirm a pair" if checked else "Unconfirm a pair"))
        self.score = QComboBox()
        self.score.setAccessibleName("Score")
        self.score.setToolTip("How good the answer is, 0 (wrong) to 5 (perfect); keys 0-5 in "
                              "the list")
        self.score.addItems([UNSCORED, *map(str, range(6))])
        self.score.activated.connect(self._on_score_chosen)
        self.tags = QLineEdit()
        self.tags.setPlaceholderText("Tags, comma-separated")
        self.tags.editingFinished.connect(self._on_tags)
        self.note = QLineEdit()
        self.note.setPlaceholderText("Note")
        self.note.editingFinished.connect(self._on_note)

        self.regenerate_button = QPushButton("New Answer")
        self.regenerate_button.setToolTip("Ask the model again for this pair's answer (the old "
                                           "one stays in the pair's history)")
        self.regenerate_button.clicked.connect(self._on_regenerate)
        marks = QHBoxLayout()
        marks.addWidget(self.confirmed)
        marks.addWidget(QLabel("Score"))
        marks.addWidget(self.score)
        marks.addStretch(1)
        marks.addWidget(self.regenerate_button)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Tags", self.tags)
        form.addRow("Note", self.note)
        self._fields = QWidget()
        fields = QVBoxLayout(self._fields)
        fields.setContentsMargins(0, 0, 0, 0)
        fields.addWidget(self.question)
        fields.addWidget(self.answer, 1)
        fields.addWidget(self.invalid)
        fields.addLayout(marks)
        fields.addLayout(form)

        self.add_button = QPushButton("Add…")
        self.add_button.setToolTip("Add a question of your own (the model can answer it)")
        self.add_button.clicked.connect(self._on_add)
        self.delete_button = QPushButton("Delete")
        self.delete_button.setToolTip("Delete the selected pairs (Delete; Undo brings them back)")
        self.delete_button.clicked.connect(self.delete_selected)
        self.generate_button = QPushButton("Generate…")
        self.generate_button.setToolTip("Ask the model for new pairs about this image")
        self.generate_button.clicked.connect(self.generate_requested.emit)
        buttons = QHBoxLayout()
        for button in (self.add_button, self.delete_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.generate_button)

        self._splitter = QSplitter(Qt.Orientation.Vertical)
        self._splitter.addWidget(self.tree)
        self._splitter.addWidget(self._fields)
        self._splitter.setChildrenCollapsible(False)
        self._splitter.setStretchFactor(0, 3)
        self._splitter.setStretchFactor(1, 2)

        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.placeholder, 1)
        layout.addWidget(self._splitter, 1)
        layout.addLayout(buttons)
        self.clear()

    # ------------------------------------------------------------------ showing

    def clear(self) -> None:
        """No image: a hint, nothing to edit."""
        self._entries = {}
        self.title.setText("Questions & Answers")
        self.tree.clear()
        self._show_placeholder(NO_IMAGE_TEXT)
        for button in (self.add_button, self.generate_button):
            button.setEnabled(False)
        self._on_selection_changed()

    def show_entries(self, file_name: str, entries: Sequence[QAEntry]) -> None:
        """Show ``entries`` (oldest first) of the image ``file_name``; the selection is kept
        by entry id where it still exists."""
        selected = set(self.selected_ids())
        self._entries = {entry.id: entry for entry in entries}
        confirmed = sum(entry.confirmed for entry in entries)
        count = len(entries)
        self.title.setText(f"{file_name} · {count} pair{'s' if count != 1 else ''}"
                           + (f" · {confirmed} confirmed" if count else ""))
        for button in (self.add_button, self.generate_button):
            button.setEnabled(True)
        self._filling = True
        self.tree.blockSignals(True)
        try:
            self.tree.clear()
            for entry in entries:
                item = QTreeWidgetItem([state_text(entry), entry.question,
                                        " ".join(entry.answer.split()) or "(no answer yet)"])
                item.setData(COL_STATE, ENTRY_ID_ROLE, entry.id)
                item.setToolTip(COL_QUESTION, entry.question)
                item.setToolTip(COL_ANSWER, entry.answer or "No answer yet")
                item.setToolTip(COL_STATE, _state_tooltip(entry))
                self.tree.addTopLevelItem(item)
                item.setSelected(entry.id in selected)
        finally:
            self.tree.blockSignals(False)
            self._filling = False
        if entries:
            self.placeholder.hide()
            self._splitter.show()
            if not self.tree.selectedItems():
                self.tree.setCurrentItem(self.tree.topLevelItem(0))
        else:
            self._show_placeholder(NO_ENTRIES_TEXT)
        self._on_selection_changed()

    def _show_placeholder(self, text: str) -> None:
        self.placeholder.setText(text)
        self.placeholder.show()
        self._splitter.hide()

    def selected_ids(self) -> list[int]:
        """The ids of the selected pairs, in list order."""
        return [int(item.data(COL_STATE, ENTRY_ID_ROLE)) for item in self.tree.selectedItems()]

    def current_entry(self) -> QAEntry | None:
        """The selected pair when exactly one is selected."""
        ids = self.selected_ids()
        return self._entries.get(ids[0]) if len(ids) == 1 else None

    def _on_selection_changed(self) -> None:
        entry = self.current_entry()
        ids = self.selected_ids()
        self._filling = True
        try:
            self.question.setText(entry.question if entry else "")
            self.answer.setPlainText(entry.answer if entry else "")
            self.confirmed.setChecked(bool(entry and entry.confirmed))
            self.score.setCurrentIndex(0 if entry is None or entry.score is None
                                       else entry.score + 1)
            self.tags.setText(", ".join(entry.tags) if entry else "")
            self.note.setText(entry.note if entry else "")
            self.invalid.setText(f"⚠ Invalid, never exported: {entry.invalid_reason}"
                                 if entry is not None and not entry.valid else "")
            self.invalid.setVisible(entry is not None and not entry.valid)
        finally:
            self._filling = False
        for widget in (self.question, self.answer, self.confirmed, self.score, self.tags,
                       self.note):
            widget.setEnabled(entry is not None)
        self.delete_button.setEnabled(bool(ids))
        self.regenerate_button.setEnabled(entry is not None)

    # ------------------------------------------------------------------ edits

    def _emit_one(self, changes: dict[str, object], label: str) -> None:
        entry = self.current_entry()
        if entry is not None and not self._filling:
            self.edit_requested.emit(entry.id, changes, label)

    def save_texts(self) -> None:
        """Save the question and answer fields when they differ from the pair's."""
        entry = self.current_entry()
        if entry is None or self._filling:
            return
        changes: dict[str, object] = {}
        question = " ".join(self.question.text().split())
        answer = self.answer.toPlainText().strip()
        if question and question != entry.question:
            changes["question"] = question
        if answer != entry.answer:
            changes["answer"] = answer
        if changes:
            label = "Edit a question" if "question" in changes and len(changes) == 1 \
                else "Edit an answer"
            self.edit_requested.emit(entry.id, changes, label)

    def toggle_confirmed(self) -> None:
        """Confirm the selected pairs (or take the mark back when all are confirmed)."""
        ids = self.selected_ids()
        if not ids:
            return
        every = all(self._entries[i].confirmed for i in ids if i in self._entries)
        for entry_id in ids:
            self.edit_requested.emit(entry_id, {"confirmed": not every},
                                     "Unconfirm a pair" if every else "Confirm a pair")

    def set_score(self, score: int | None) -> None:
        """Score the selected pairs (None: no score)."""
        for entry_id in self.selected_ids():
            self.edit_requested.emit(entry_id, {"score": score},
                                     "Clear a score" if score is None else f"Score {score}")

    def _on_score_chosen(self, index: int) -> None:
        if not self._filling:
            self.set_score(None if index == 0 else index - 1)

    def _on_tags(self) -> None:
        entry = self.current_entry()
        if entry is not None and tags_from_text(self.tags.text()) != entry.tags:
            self._emit_one({"tags": tags_from_text(self.tags.text())}, "Tag a pair")

    def _on_note(self) -> None:
        entry = self.current_entry()
        if entry is not None and self.note.text() != entry.note:
            self._emit_one({"note": self.note.text()}, "Note on a pair")

    def delete_selected(self) -> None:
        """Ask to delete the selected pairs."""
        ids = self.selected_ids()
        if ids:
            self.delete_requested.emit(ids)

    def _on_add(self) -> None:
        self.add_requested.emit("")

    def _on_regenerate(self) -> None:
        entry = self.current_entry()
        if entry is not None:
            self.regenerate_requested.emit(entry.id)

    def select_entry(self, entry_id: int) -> None:
        """Select the pair ``entry_id`` (e.g. one just added) and put the cursor in its
        question."""
        for row in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(row)
            if item is not None and item.data(COL_STATE, ENTRY_ID_ROLE) == entry_id:
                self.tree.setCurrentItem(item)
                return


def _state_tooltip(entry: QAEntry) -> str:
    parts = ["Confirmed" if entry.confirmed else "Not confirmed",
             "not scored" if entry.score is None else f"score {entry.score} of 5"]
    if entry.model:
        parts.append(f"written by {entry.model}")
    if not entry.valid:
        parts.append(f"invalid: {entry.invalid_reason}")
    return "; ".join(parts)
