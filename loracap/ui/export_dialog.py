"""File > Export…: the Replicate zip or ``metadata.txt``, written in the background.

Message boxes go through the seams of :mod:`loracap.ui.dialogs`, so tests can replace them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from PyQt6.QtCore import pyqtSlot
from PyQt6.QtWidgets import (
    QAbstractButton,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from loracap.core.errors import LoraCapError
from loracap.core.export import (
    ExportFormat,
    ExportPlan,
    ExportResult,
    ReviewFilter,
    default_output,
    default_review_filter,
    plan_export,
)
from loracap.jobs.background import ExportJob
from loracap.ui import dialogs
from loracap.ui.dialogs import (
    MAX_LISTED,
    message_label,
    plural,
    set_message,
    start_size,
)

if TYPE_CHECKING:  # not at run time: SQLAlchemy and Pillow load with the first project or scan
    from loracap.core.project import Project


log = logging.getLogger(__name__)

#: Starting width of the dialog, in logical pixels.
DIALOG_WIDTH = 560


class ExportDialog(QDialog):
    """File > Export: choose a format and a destination, see what will be written, export.

    The plan (:func:`loracap.core.export.plan_export`) is shown before anything is written:
    the number of images, those without a caption, and the renames and conversions. Missing
    image files disable the export with the core's message. An existing output file is
    replaced only after the user confirms. The export runs in the background with a progress
    bar; on success the dialog closes with :attr:`export_result` set.
    """

    def __init__(self, project: Project, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export Dataset")
        self.project = project
        self._plan: ExportPlan | None = None
        self._plan_error = ""
        self._dest_edited = False
        self._job: ExportJob | None = None
        self._result: ExportResult | None = None

        # -- format
        self.replicate_radio = QRadioButton("&Replicate zip — for Replicate's FLUX LoRA trainer")
        self.replicate_radio.setToolTip(
            "A zip with each image and a .txt caption file of the same name, plus metadata.txt."
        )
        self.metadata_radio = QRadioButton("&metadata.txt — one caption per line")
        self.metadata_radio.setToolTip("A text file with one caption per line, by file name.")
        self.format_group = QButtonGroup(self)
        self.format_group.addButton(self.replicate_radio)
        self.format_group.addButton(self.metadata_radio)
        self.replicate_radio.setChecked(True)
        format_box = QGroupBox("Format")
        format_layout = QVBoxLayout(format_box)
        format_layout.addWidget(self.replicate_radio)
        format_layout.addWidget(self.metadata_radio)

        # -- destination
        self.dest_edit = QLineEdit()
        self.dest_edit.setAccessibleName("Export destination")
        self.dest_edit.setToolTip("The file the export is written to.")
        self.browse_button = QPushButton("&Browse…")
        self.browse_button.setToolTip("Choose where to save the export")
        self.browse_button.setAccessibleName("Browse for the export destination")

        self.review_combo = QComboBox()
        self.review_combo.setAccessibleName("Which images by review mark")
        self.review_combo.setToolTip("Choose images by the review marks (A approve, R reject)")
        for label, value in (("All images", ReviewFilter.ALL),
                             ("Only approved images", ReviewFilter.APPROVED),
                             ("All but rejected images", ReviewFilter.NOT_REJECTED)):
            self.review_combo.addItem(label, value)
        # Images a person rejected stay out unless asked for (once any image is rejected).
        self.review_combo.setCurrentIndex(
            self.review_combo.findData(default_review_filter(project.stats())))

        # -- plan
        self.summary_label = QLabel()
        self.summary_label.setWordWrap(True)
        self.summary_label.setAccessibleName("Export summary")
        self.uncaptioned_label = message_label("Images without a caption")
        self.uncaptioned_list = QListWidget()
        self.uncaptioned_list.setAccessibleName("Images without a caption")
        self.uncaptioned_list.setMaximumHeight(100)
        self.uncaptioned_list.setVisible(False)
        self.allow_uncaptioned = QCheckBox(
            "Export images &without a caption (Replicate captions them itself)"
        )
        self.allow_uncaptioned.setToolTip(
            "Unticked, the export stops until every image has a caption."
        )
        self.allow_uncaptioned.setVisible(False)
        self.changes_label = message_label("Renames and conversions")
        self.changes_list = QListWidget()
        self.changes_list.setAccessibleName("Renames and conversions")
        self.changes_list.setMaximumHeight(100)
        self.changes_list.setVisible(False)
        self.error_label = message_label("Export problem")
        self.reason_label = message_label("Why Export is disabled")

        self.progress_bar = QProgressBar()
        self.progress_bar.setAccessibleName("Export progress")
        self.progress_bar.setVisible(False)

        # -- buttons
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.export_button = QPushButton("&Export")
        self.export_button.setAccessibleName("Export")
        self.export_button.setDefault(True)
        self.buttons.addButton(self.export_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.rejected.connect(self.reject)

        dest_row = QHBoxLayout()
        dest_row.addWidget(self.dest_edit, 1)
        dest_row.addWidget(self.browse_button)
        dest_label = QLabel("&Save to:")
        dest_label.setBuddy(self.dest_edit)
        form = QFormLayout()
        form.addRow(dest_label, dest_row)
        review_label = QLabel("&Images:")
        review_label.setBuddy(self.review_combo)
        form.addRow(review_label, self.review_combo)
        layout = QVBoxLayout(self)
        layout.addWidget(format_box)
        layout.addLayout(form)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.error_label)
        layout.addWidget(self.uncaptioned_label)
        layout.addWidget(self.uncaptioned_list)
        layout.addWidget(self.allow_uncaptioned)
        layout.addWidget(self.changes_label)
        layout.addWidget(self.changes_list)
        layout.addWidget(self.reason_label)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.buttons)
        QWidget.setTabOrder(self.replicate_radio, self.metadata_radio)
        QWidget.setTabOrder(self.metadata_radio, self.dest_edit)
        QWidget.setTabOrder(self.dest_edit, self.browse_button)
        QWidget.setTabOrder(self.browse_button, self.uncaptioned_list)
        QWidget.setTabOrder(self.uncaptioned_list, self.allow_uncaptioned)
        QWidget.setTabOrder(self.allow_uncaptioned, self.changes_list)
        QWidget.setTabOrder(self.changes_list, self.buttons)

        self.format_group.buttonToggled.connect(self._on_format_toggled)
        self.dest_edit.textEdited.connect(self._on_dest_edited)
        self.dest_edit.textChanged.connect(self._update)
        self.browse_button.clicked.connect(self._browse)
        self.allow_uncaptioned.toggled.connect(self._update)
        self.review_combo.currentIndexChanged.connect(lambda _i: self._refresh_plan())
        self.export_button.clicked.connect(self.start_export)

        self.dest_edit.setText(str(default_output(project, self.format)))
        self._refresh_plan()
        start_size(self, DIALOG_WIDTH)

    # -- public

    @property
    def format(self) -> ExportFormat:
        """The chosen export format."""
        if self.metadata_radio.isChecked():
            return ExportFormat.METADATA
        return ExportFormat.REPLICATE

    @property
    def plan(self) -> ExportPlan | None:
        """The export plan shown, or None when it could not be made (see the error label)."""
        return self._plan

    @property
    def export_result(self) -> ExportResult | None:
        """What the export wrote, once it succeeded; else None."""
        return self._result

    @property
    def job(self) -> ExportJob | None:
        """The running (or last) export job."""
        return self._job

    def target_path(self) -> Path | None:
        """The output file: the destination, or the default name inside it when it is a
        folder; None when the destination is empty."""
        text = self.dest_edit.text().strip()
        if not text:
            return None
        path = Path(os.path.abspath(Path(text).expanduser()))
        if path.is_dir():
            path = path / default_output(self.project, self.format).name
        return path

    @property
    def review_filter(self) -> ReviewFilter:
        """Which images the export takes by their review mark."""
        return ReviewFilter(self.review_combo.currentData() or ReviewFilter.ALL)

    @pyqtSlot()
    def start_export(self) -> None:
        """Ask before replacing an existing file, then export in the background."""
        if self._blocker() or self._job is not None and self._job.is_running:
            return
        target = self.target_path()
        if target is None:
            return
        force = False
        if target.exists():
            if not dialogs.ask_replace(self, target):
                return
            force = True
        assert self._plan is not None
        job = ExportJob(self.project, self.format, target, force=force,
                        allow_uncaptioned=self.allow_uncaptioned.isChecked(), parent=self,
                        review=self.review_filter)
        job.progress.connect(self._on_progress)
        job.finished.connect(self._on_finished)
        job.failed.connect(self._on_failed)
        self._job = job
        self.progress_bar.setRange(0, max(1, len(self._plan.entries)))
        self.progress_bar.setValue(0)
        self.progress_bar.setVisible(True)
        self._set_inputs_enabled(False)
        set_message(self.reason_label, f"Exporting to {target}…")
        job.start()

    def reject(self) -> None:
        """Close, except while an export runs (it cannot be stopped halfway)."""
        if self._job is not None and self._job.is_running:
            set_message(self.reason_label, "The export is still running; please wait.")
            return
        super().reject()

    # -- plan

    @pyqtSlot(QAbstractButton, bool)
    def _on_format_toggled(self, _button: QAbstractButton, checked: bool) -> None:
        if not checked:
            return
        if not self._dest_edited:
            self.dest_edit.setText(str(default_output(self.project, self.format)))
        self._refresh_plan()

    @pyqtSlot(str)
    def _on_dest_edited(self, _text: str) -> None:
        self._dest_edited = True

    @pyqtSlot()
    def _browse(self) -> None:
        if self.format is ExportFormat.REPLICATE:
            file_filter = "Zip archives (*.zip)"
        else:
            file_filter = "Text files (*.txt)"
        current = self.dest_edit.text().strip() or str(default_output(self.project, self.format))
        chosen, _selected = QFileDialog.getSaveFileName(self, "Export To", current, file_filter)
        if chosen:
            self._dest_edited = True
            self.dest_edit.setText(chosen)

    def _refresh_plan(self) -> None:
        """Plan the export for the chosen format and show what it will do."""
        try:
            self._plan = plan_export(self.project, allow_uncaptioned=True, fmt=self.format,
                                     review=self.review_filter)
            self._plan_error = ""
        except LoraCapError as exc:
            self._plan = None
            self._plan_error = str(exc)
        plan = self._plan
        set_message(self.error_label, self._plan_error, error=True)
        self.uncaptioned_list.clear()
        self.changes_list.clear()
        if plan is None:
            self.summary_label.setText("")
            self.summary_label.setVisible(False)
            for widget in (self.uncaptioned_label, self.uncaptioned_list, self.allow_uncaptioned,
                           self.changes_label, self.changes_list):
                widget.setVisible(False)
            self._update()
            return

        images = len(plan.entries)
        captioned = images - len(plan.uncaptioned)
        summary = f"{plural(images, 'image')} will be exported"
        summary += f", {captioned} with a caption." if images else "."
        if plan.invalid_skipped:
            skipped = len(plan.invalid_skipped)
            summary += f" {plural(skipped, 'invalid file is', 'invalid files are')} left out."
        if plan.review_skipped:
            left_out = len(plan.review_skipped)
            if self.review_filter is ReviewFilter.NOT_REJECTED:
                summary += (f" {plural(left_out, 'rejected image is', 'rejected images are')} "
                            "left out (Images: All images exports them too).")
            else:
                summary += (f" {plural(left_out, 'image is', 'images are')} left out: not "
                            "marked approved.")
        self.summary_label.setText(summary)
        self.summary_label.setVisible(True)

        count = len(plan.uncaptioned)
        set_message(self.uncaptioned_label,
                     f"{plural(count, 'image has', 'images have')} no caption:" if count else "")
        for path in plan.uncaptioned[:MAX_LISTED]:
            self.uncaptioned_list.addItem(path)
        self.uncaptioned_list.setVisible(bool(count))
        self.allow_uncaptioned.setVisible(bool(count))

        changes = [f"{src} → {name} (renamed: the name is taken)" for src, name in plan.renames]
        changes += [f"{src} → {name} (converted to PNG: trainers do not read this format)"
                    for src, name in plan.conversions]
        set_message(self.changes_label,
                     "These files get another name in the export:" if changes else "")
        for line in changes[:MAX_LISTED]:
            self.changes_list.addItem(line)
        self.changes_list.setVisible(bool(changes))
        self._update()

    def _blocker(self) -> str:
        """Why Export is disabled, or ``""``."""
        if self._plan is None:
            return "Fix the problem above, then open this dialog again."
        if not self._plan.entries:
            return "There are no images to export."
        if self._plan.uncaptioned and not self.allow_uncaptioned.isChecked():
            return (
                f"{plural(len(self._plan.uncaptioned), 'image has', 'images have')} no "
                "caption. Caption them first, or tick “Export images without a caption”."
            )
        if not self.dest_edit.text().strip():
            return "Choose where to save the export."
        return ""

    @pyqtSlot()
    def _update(self) -> None:
        if self._job is not None and self._job.is_running:
            return
        blocker = self._blocker()
        self.export_button.setEnabled(not blocker)
        self.export_button.setToolTip(blocker or "Write the export")
        set_message(self.reason_label, blocker if self._plan is not None else "")

    def _set_inputs_enabled(self, enabled: bool) -> None:
        for widget in (self.replicate_radio, self.metadata_radio, self.dest_edit,
                       self.browse_button, self.allow_uncaptioned, self.export_button):
            widget.setEnabled(enabled)
        close = self.buttons.button(QDialogButtonBox.StandardButton.Close)
        if close is not None:
            close.setEnabled(enabled)

    # -- job

    @pyqtSlot(int, int)
    def _on_progress(self, done: int, total: int) -> None:
        self.progress_bar.setRange(0, max(1, total))
        self.progress_bar.setValue(done)

    @pyqtSlot(object)
    def _on_finished(self, result: ExportResult) -> None:
        self._result = result
        self.progress_bar.setValue(self.progress_bar.maximum())
        set_message(self.reason_label, f"Exported to {result.path}.")
        log.info("Exported %d image(s) to %s", result.images, result.path)
        dialogs.show_export_done(self, result)
        self.accept()

    @pyqtSlot(str)
    def _on_failed(self, message: str) -> None:
        self.progress_bar.setVisible(False)
        self._set_inputs_enabled(True)
        self._update()
        dialogs.show_message(self, "Export Failed", message)
