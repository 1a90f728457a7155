"""Question-answer pairs in the window (issue 14, "Reviewing"): the panel of the current image's
pairs, their counts in the grid, and the commands that generate, answer, export and count them.

:class:`QAEditing` turns what the :class:`~loracap.ui.qa_panel.QAPanel` asks for into project
edits -- each one undo step (:meth:`~loracap.core.project.Project.edit_qa`, ``add_question``,
``delete_qa``) -- and keeps the grid's counts (:meth:`ImageListModel.update_qa_count`) and the
panel up to date. Generating runs on the captioning runner (:meth:`MainWindow.generate_qa`);
"New Answer" (ask again) is one request in the background
(:class:`~loracap.ui.one_request.OneRequest`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from PyQt6.QtCore import QObject
from PyQt6.QtGui import QAction, QKeySequence
from PyQt6.QtWidgets import QInputDialog, QMessageBox

from loracap.core.errors import LoraCapError
from loracap.ui.one_request import OneRequest
from loracap.ui.qa_panel import QAPanel

if TYPE_CHECKING:
    from loracap.core.qa.generate import QAOptions
    from loracap.ui.main_window import MainWindow

log = logging.getLogger(__name__)


class QAEditing(QObject):
    """The window's question-answer pairs: the panel, the commands, the grid's counts."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.panel = QAPanel()
        self._request = OneRequest(window, ended=self.update_actions)
        self.panel.edit_requested.connect(self.edit)
        self.panel.add_requested.connect(lambda _text: self.add_question())
        self.panel.delete_requested.connect(self.delete)
        self.panel.regenerate_requested.connect(self.regenerate)
        self.panel.generate_requested.connect(lambda: self.generate_dialog(current=True))

        def action(text: str, slot: Callable[[], object], keys: str = "",
                   tip: str = "") -> QAction:
            return window.add_action(text, slot, [QKeySequence(keys)] if keys else None, tip)

        self.generate_action = action(
            "&Generate Question-Answer Pairs…", self.generate_dialog, "Ctrl+Shift+G",
            "Ask the vision model for question-answer pairs about the images")
        self.answer_action = action(
            "&Answer Open Questions", self.answer_open,
            tip="Have the vision model answer the questions you wrote")
        self.export_action = action(
            "Export &Question-Answer Pairs…", self.export_dialog,
            tip="Write the pairs for LLaVA, LLaMA-Factory, VQA or Hugging Face")
        self.stats_action = action(
            "Question-Answer &Statistics", self.show_stats,
            tip="How many pairs, how many confirmed, the average score")

    # ------------------------------------------------------------------ showing

    @property
    def busy(self) -> bool:
        """Whether an answer is being written again."""
        return self._request.busy

    def load_counts(self) -> None:
        """Every image's counts into the grid (after opening a project)."""
        project = self.window.project
        if project is None:
            return
        try:
            self.window.model.set_qa_counts(project.qa_counts())
        except LoraCapError as exc:
            log.warning("The question-answer counts cannot be read: %s", exc)

    def show(self, image_id: int | None, file_name: str = "") -> None:
        """Show the pairs of image ``image_id`` (None: no image) and its count in the grid."""
        project = self.window.project
        if image_id is None or project is None:
            self.panel.clear()
            return
        try:
            entries = project.qa_entries(image_id)
            counts = project.qa_counts([image_id])
        except LoraCapError as exc:
            self.window.show_error(str(exc))
            return
        self.panel.show_entries(file_name, entries)
        self.window.model.update_qa_count(image_id, counts.get(image_id))

    def _refresh(self, image_id: int) -> None:
        self.window.refresh_image(image_id)

    def update_actions(self) -> None:
        """Enable what applies: a project open, no batch under way."""
        window = self.window
        has_project = window.project is not None
        runner = window.runner
        idle = not (runner is not None and runner.is_running) and not self.busy
        for action in (self.generate_action, self.answer_action):
            action.setEnabled(has_project and idle)
        for action in (self.export_action, self.stats_action):
            action.setEnabled(has_project)
        self.panel.regenerate_button.setEnabled(
            idle and self.panel.current_entry() is not None)

    # ------------------------------------------------------------------ edits

    def _current(self) -> tuple[int, str] | None:
        record = self.window.current_record()
        return (record.id, record.path) if record is not None else None

    def edit(self, entry_id: int, changes: dict[str, object], label: str) -> None:
        """A person's change of one pair (one undo step)."""
        project = self.window.project
        if project is None:
            return
        try:
            entry = project.edit_qa(entry_id, label=label, **changes)  # type: ignore[arg-type]
        except LoraCapError as exc:
            self.window.statusBar().showMessage(str(exc), 8000)
            return
        self._refresh(entry.image_id)

    def add_question(self) -> None:
        """Ask for a question and add it to the current image (one undo step)."""
        current = self._current()
        project = self.window.project
        if current is None or project is None:
            return
        question, ok = QInputDialog.getText(self.window, "Add a Question",
                                            f"A question about {current[1]}:")
        if not ok or not question.strip():
            return
        try:
            entry = project.add_question(current[0], question)
        except LoraCapError as exc:
            self.window.show_error(str(exc))
            return
        self._refresh(current[0])
        self.panel.select_entry(entry.id)
        self.window.statusBar().showMessage(
            "Question added. Write its answer below, or New Answer asks the model.", 8000)

    def delete(self, entry_ids: list[int]) -> None:
        """Delete pairs (one undo step)."""
        project = self.window.project
        current = self._current()
        if project is None or current is None or not entry_ids:
            return
        count = len(entry_ids)
        try:
            project.delete_qa(entry_ids, f"Delete {count} question-answer pair"
                              + ("s" if count != 1 else ""))
        except LoraCapError as exc:
            self.window.show_error(str(exc))
            return
        self._refresh(current[0])
        self.window.statusBar().showMessage(f"Deleted {count} pair(s). (Undo: Ctrl+Z)", 6000)

    # ------------------------------------------------------------------ the model

    def regenerate(self, entry_id: int) -> None:
        """Ask the model again for one pair's answer; a confirmed answer or one a person wrote
        is replaced only when the user says so."""
        window = self.window
        project = window.project
        if project is None or self.busy or (window.runner is not None
                                            and window.runner.is_running):
            return
        try:
            entry = project.qa_entry(entry_id)
        except LoraCapError as exc:
            window.show_error(str(exc))
            return
        from loracap.core.records import Provenance

        overwrite = False
        if entry.answer and (entry.confirmed or entry.provenance is not Provenance.GENERATED):
            answer = QMessageBox.question(
                window, "Replace this answer?",
                "This answer is confirmed or was written by you. Replace it with a new answer "
                "from the model? (The old one stays in the pair's history.)",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                return
            overwrite = True
        config = window.batch_config_or_ask()
        if config is None:
            return
        from loracap.core.qa.generate import answer_again

        settings = project.settings
        max_side = window.settings.max_side
        self._request.start(
            config, lambda captioner: answer_again(
                project, entry_id, captioner, max_side=max_side, labels=settings.qa_labels,
                schema=settings.qa_schema, language=settings.language,
                overwrite_confirmed=overwrite),
            what="answering again", activity="Asking the model for a new answer…",
            image_id=entry.image_id,
            done="New answer written. (The old one is in the pair's history.)",
            failed="No new answer")
        self.update_actions()

    def wait(self, timeout_ms: int = -1) -> bool:
        """Wait for an answer under way (closing, tests)."""
        return self._request.wait(timeout_ms)

    def generate_dialog(self, *, current: bool = False) -> None:
        """Choose what to generate, then run it as a batch."""
        from loracap.ui.qa_dialogs import QAGenerateDialog

        window = self.window
        project = window.project
        if project is None:
            return
        record = window.current_record()
        selected = window.selected_image_ids()
        dialog = QAGenerateDialog(window, project.settings, selected=len(selected),
                                  current=record.path if record is not None else None)
        if current and record is not None:
            dialog.scopes.buttons()[3].setChecked(True)
        if not dialog.exec() or dialog.options is None:
            return
        ids: tuple[int, ...] = ()
        if dialog.scope == "selected":
            ids = selected
        elif dialog.scope == "current" and record is not None:
            ids = (record.id,)
        window.generate_qa(dialog.options, ids)

    def answer_open(self) -> None:
        """Have the model answer every question without an answer."""
        from dataclasses import replace

        from loracap.core.qa.generate import QAOptions

        project = self.window.project
        if project is None:
            return
        if not project.unanswered_qa():
            self.window.statusBar().showMessage("No question is waiting for an answer.", 6000)
            return
        settings = project.settings
        options: QAOptions = replace(QAOptions(language=settings.language),
                                     labels=tuple(settings.qa_labels),
                                     schema=settings.qa_schema, answer_only=True)
        self.window.generate_qa(options, ())

    def export_dialog(self) -> None:
        """File > Export Question-Answer Pairs…"""
        from loracap.ui.qa_dialogs import QAExportDialog

        project = self.window.project
        if project is None:
            return
        if not project.qa_stats().entries:
            self.window.statusBar().showMessage(
                "This project has no question-answer pairs yet (Captions > Generate "
                "Question-Answer Pairs…).", 8000)
            return
        dialog = QAExportDialog(self.window, project)
        dialog.exec()
        dialog.wait()

    def show_stats(self) -> None:
        """Review > Question-Answer Statistics."""
        project = self.window.project
        if project is None:
            return
        try:
            lines = project.qa_stats().lines(len(project.images()))
        except LoraCapError as exc:
            self.window.show_error(str(exc))
            return
        QMessageBox.information(self.window, "Question-Answer Statistics", "\n".join(lines))
