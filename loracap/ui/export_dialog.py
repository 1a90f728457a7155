"""File > Export…: every format a trainer reads, its options, and what will be written.

The plan (:func:`loracap.core.exports.plan_export`) is shown before anything is written: the
number of images, those without a caption, those too small for the trainer, and every rename
and conversion. The export runs in the background with a progress bar. Message boxes go
through the seams of :mod:`loracap.ui.dialogs`, so tests can replace them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from PyQt6.QtCore import Qt, pyqtSlot
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from loracap.core.errors import LoraCapError
from loracap.core.exports import (
    FORMATS,
    Container,
    ExportFormat,
    ExportOptions,
    ExportPlan,
    ExportResult,
    ReviewFilter,
    TrainerFormat,
    default_output,
    default_review_filter,
    export_target,
    is_own_export,
    plan_export,
)
from loracap.core.exports.planner import OutsideImagesError
from loracap.core.prompts import Profile
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
DIALOG_WIDTH = 600

#: Item data role holding a format row's :class:`ExportFormat`.
FORMAT_ROLE = Qt.ItemDataRole.UserRole


def _list(name: str) -> QListWidget:
    widget = QListWidget()
    widget.setAccessibleName(name)
    widget.setMaximumHeight(90)
    widget.setWordWrap(True)
    widget.setVisible(False)
    return widget


class ExportDialog(QDialog):
    """File > Export: choose a format, its options and a destination; see what will be
    written; export.

    Images without a caption and images too small for the chosen trainer disable the export
    until the user ticks the box that exports or leaves them out. An existing export is
    replaced only after the user confirms (never a file or folder that is not an export). On
    success the dialog closes with :attr:`export_result` set.
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

        # -- format: one row each, with the trainer that reads it
        self.format_list = QListWidget()
        self.format_list.setAccessibleName("Export format")
        self.format_list.setWordWrap(True)
        for fmt in FORMATS.values():
            item = QListWidgetItem(f"{fmt.title}\n{fmt.summary}")
            item.setData(FORMAT_ROLE, fmt.name.value)
            item.setToolTip(fmt.summary)
            self.format_list.addItem(item)
        self.format_list.setCurrentRow(0)
        rows = min(len(FORMATS), 5)
        self.format_list.setMinimumHeight(
            rows * (2 * self.format_list.fontMetrics().lineSpacing() + 6))

        # -- destination and images
        self.dest_edit = QLineEdit()
        self.dest_edit.setAccessibleName("Export destination")
        self.dest_edit.setToolTip("The file or folder the export is written to.")
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

        # -- options of the chosen format
        self.placeholder_check = QCheckBox("Write [&trigger] instead of the trigger word")
        self.placeholder_check.setToolTip("The trainer puts its own trigger word where the "
                                          "captions say [trigger] (ai-toolkit, fal).")
        self.repeats_spin = QSpinBox()
        self.repeats_spin.setRange(1, 1000)
        self.repeats_spin.setValue(ExportOptions().repeats)
        self.repeats_spin.setAccessibleName("Repeats")
        self.repeats_spin.setToolTip("How often kohya shows each image per epoch (the number "
                                     "in the folder name, 10_trigger).")
        self.caption_ext_combo = QComboBox()
        self.caption_ext_combo.addItems([".caption", ".txt"])
        self.caption_ext_combo.setAccessibleName("Caption file extension")
        self.caption_ext_combo.setToolTip("kohya's caption_extension: .caption is its default; "
                                          "use .txt if your config says so.")
        self.rename_edit = QLineEdit()
        self.rename_edit.setPlaceholderText("Keep the file names")
        self.rename_edit.setAccessibleName("Rename the images with this prefix")
        self.rename_edit.setToolTip("Name the exported images PREFIX_0001.jpg, PREFIX_0002.png "
                                    "… in file-name order; renames.csv lists the old paths.")

        # -- the plan
        self.summary_label = QLabel()
        self.summary_label.setWordWrap(True)
        self.summary_label.setAccessibleName("Export summary")
        self.uncaptioned_label = message_label("Images without a caption")
        self.uncaptioned_list = _list("Images without a caption")
        self.allow_uncaptioned = QCheckBox(
            "Export images &without a caption (Replicate captions them itself)")
        self.allow_uncaptioned.setToolTip(
            "Unticked, the export stops until every image has a caption.")
        self.allow_uncaptioned.setVisible(False)
        self.untrainable_label = message_label("Images too small for the trainer")
        self.untrainable_list = _list("Images too small for the trainer")
        self.skip_untrainable = QCheckBox("&Leave out the images the trainer cannot use")
        self.skip_untrainable.setToolTip(
            "Unticked, the export stops: these images would break or spoil the training run.")
        self.skip_untrainable.setVisible(False)
        self.allow_outside = QCheckBox("Export images &outside the project folder")
        self.allow_outside.setToolTip(
            "The project file names images that are not in its folder. Tick only if you added "
            "them yourself; each is checked to be an image.")
        self.allow_outside.setVisible(False)
        self.changes_label = message_label("Renames and conversions")
        self.changes_list = _list("Renames and conversions")
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

        self._build_layout()
        self.format_list.currentRowChanged.connect(self._on_format_changed)
        self.dest_edit.textEdited.connect(self._on_dest_edited)
        self.dest_edit.textChanged.connect(self._update)
        self.browse_button.clicked.connect(self._browse)
        self.allow_uncaptioned.toggled.connect(self._update)
        self.skip_untrainable.toggled.connect(self._update)
        self.allow_outside.toggled.connect(lambda _on: self._refresh_plan())
        for signal in (self.review_combo.currentIndexChanged,
                       self.caption_ext_combo.currentIndexChanged,
                       self.repeats_spin.valueChanged):
            signal.connect(lambda _value: self._refresh_plan())
        self.placeholder_check.toggled.connect(lambda _on: self._refresh_plan())
        self.rename_edit.editingFinished.connect(self._refresh_plan)
        self.export_button.clicked.connect(self.start_export)

        self._on_format_changed(0)
        start_size(self, DIALOG_WIDTH)

    def _build_layout(self) -> None:
        dest_row = QHBoxLayout()
        dest_row.addWidget(self.dest_edit, 1)
        dest_row.addWidget(self.browse_button)
        kohya_row = QHBoxLayout()
        kohya_row.addWidget(self.repeats_spin)
        caption_label = QLabel("&Caption files:")
        caption_label.setBuddy(self.caption_ext_combo)
        kohya_row.addWidget(caption_label)
        kohya_row.addWidget(self.caption_ext_combo)
        kohya_row.addStretch(1)
        self._kohya_row = QWidget()
        self._kohya_row.setLayout(kohya_row)
        kohya_row.setContentsMargins(0, 0, 0, 0)
        form = QFormLayout()
        self._form = form
        for text, field in (("&Format:", self.format_list), ("&Save to:", dest_row),
                            ("&Images:", self.review_combo), ("&Repeats:", self._kohya_row),
                            ("", self.placeholder_check), ("Re&name:", self.rename_edit)):
            label = QLabel(text) if text else None
            if label is not None and isinstance(field, QWidget):
                label.setBuddy(field if field is not self._kohya_row else self.repeats_spin)
            if label is not None and field is dest_row:
                label.setBuddy(self.dest_edit)
            form.addRow(label, field) if label is not None else form.addRow(field)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        for widget in (self.summary_label, self.error_label, self.allow_outside,
                       self.uncaptioned_label,
                       self.uncaptioned_list, self.allow_uncaptioned, self.untrainable_label,
                       self.untrainable_list, self.skip_untrainable, self.changes_label,
                       self.changes_list, self.reason_label, self.progress_bar, self.buttons):
            layout.addWidget(widget)

    # -- public

    @property
    def format(self) -> TrainerFormat:
        """The chosen export format."""
        item = self.format_list.currentItem()
        name = item.data(FORMAT_ROLE) if item is not None else ExportFormat.REPLICATE.value
        return FORMATS[ExportFormat(name)]

    def choose_format(self, name: ExportFormat | str) -> None:
        """Select the format called ``name`` in the list."""
        for row in range(self.format_list.count()):
            item = self.format_list.item(row)
            if item is not None and item.data(FORMAT_ROLE) == ExportFormat(name).value:
                self.format_list.setCurrentRow(row)
                return
        raise KeyError(name)

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
        """Where the export goes (see :func:`~loracap.core.exports.export_target`); None when
        the destination is empty."""
        text = self.dest_edit.text().strip()
        if not text:
            return None
        return export_target(self.project, self.format, Path(os.path.expanduser(text)))

    @property
    def review_filter(self) -> ReviewFilter:
        """Which images the export takes by their review mark."""
        return ReviewFilter(self.review_combo.currentData() or ReviewFilter.ALL)

    def options(self, *, preview: bool = False) -> ExportOptions:
        """The chosen options; ``preview`` plans with every image, so the dialog can list the
        uncaptioned and the untrainable ones."""
        fmt = self.format
        return ExportOptions(
            review=self.review_filter,
            allow_uncaptioned=preview or self.allow_uncaptioned.isChecked(),
            skip_untrainable=preview or self.skip_untrainable.isChecked(),
            trigger_placeholder=fmt.supports_placeholder and self.placeholder_check.isChecked(),
            repeats=self.repeats_spin.value(),
            caption_ext=(self.caption_ext_combo.currentText()
                         if "caption_ext" in fmt.options_used else None),
            rename_prefix=self.rename_edit.text().strip() if fmt.writes_images else "",
            allow_outside=self.allow_outside.isChecked(),
        )

    @pyqtSlot()
    def start_export(self) -> None:
        """Ask before replacing an existing export, then export in the background."""
        if self._blocker() or self._job is not None and self._job.is_running:
            return
        target = self.target_path()
        if target is None or self._plan is None:
            return
        force = False
        if os.path.lexists(target):
            if not is_own_export(self.project, target) and not dialogs.ask_replace(self, target):
                return
            force = True
        job = ExportJob(self.project, self.format, target, self.options(), force=force,
                        parent=self)
        job.progress.connect(self._on_progress)
        job.finished.connect(self._on_finished)
        job.failed.connect(self._on_failed)
        self._job = job
        self.progress_bar.setRange(0, max(1, len(self._plan.images)))
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

    @pyqtSlot(int)
    def _on_format_changed(self, _row: int) -> None:
        fmt = self.format
        if not self._dest_edited:
            self.dest_edit.setText(str(default_output(self.project, fmt)))
        self._form.setRowVisible(self._kohya_row, "repeats" in fmt.options_used)
        self._form.setRowVisible(self.placeholder_check, fmt.supports_placeholder)
        self._form.setRowVisible(self.rename_edit, fmt.writes_images)
        self.allow_uncaptioned.setText(
            "Export images &without a caption (Replicate captions them itself)"
            if fmt.name is ExportFormat.REPLICATE else "Export images &without a caption")
        self._refresh_plan()

    @pyqtSlot(str)
    def _on_dest_edited(self, _text: str) -> None:
        self._dest_edited = True

    @pyqtSlot()
    def _browse(self) -> None:
        fmt = self.format
        current = self.dest_edit.text().strip() or str(default_output(self.project, fmt))
        if fmt.container is Container.FOLDER and not current.lower().endswith(".zip"):
            chosen = QFileDialog.getExistingDirectory(self, "Export Into Folder",
                                                      str(Path(current).parent))
            if chosen:
                chosen = str(Path(chosen) / fmt.default_name(self.project.settings.trigger))
        else:
            file_filter = ("Zip archives (*.zip)" if fmt.container is not Container.FILE
                           else "Text files (*.txt)")
            chosen, _selected = QFileDialog.getSaveFileName(self, "Export To", current,
                                                            file_filter)
        if chosen:
            self._dest_edited = True
            self.dest_edit.setText(chosen)

    def _refresh_plan(self) -> None:
        """Plan the export for the chosen format and options and show what it will do."""
        outside = False
        try:
            self._plan = plan_export(self.project, self.format, self.options(preview=True))
            self._plan_error = ""
        except LoraCapError as exc:
            self._plan = None
            self._plan_error = str(exc)
            outside = isinstance(exc, OutsideImagesError)
        self.allow_outside.setVisible(outside or self.allow_outside.isChecked())
        plan = self._plan
        set_message(self.error_label, self._plan_error, error=True)
        for widget in (self.uncaptioned_list, self.untrainable_list, self.changes_list):
            widget.clear()
        if plan is None:
            self.summary_label.setVisible(False)
            for widget in (self.uncaptioned_label, self.uncaptioned_list, self.allow_uncaptioned,
                           self.untrainable_label, self.untrainable_list,
                           self.skip_untrainable, self.changes_label, self.changes_list):
                widget.setVisible(False)
            self._update()
            return
        self.summary_label.setText(self._summary(plan))
        self.summary_label.setVisible(True)

        count = len(plan.uncaptioned)
        set_message(self.uncaptioned_label,
                    f"{plural(count, 'image has', 'images have')} no caption:" if count else "")
        self.uncaptioned_list.addItems(plan.uncaptioned[:MAX_LISTED])
        self.uncaptioned_list.setVisible(bool(count))
        self.allow_uncaptioned.setVisible(bool(count))

        small = plan.untrainable
        set_message(self.untrainable_label,
                    f"{plural(len(small), 'image is', 'images are')} too small for "
                    f"{plan.format.title} (short side under {plan.format.min_short_side} px):"
                    if small else "", error=bool(small))
        self.untrainable_list.addItems(
            [f"{change.path} — {change.reason}" for change in small[:MAX_LISTED]])
        self.untrainable_list.setVisible(bool(small))
        self.skip_untrainable.setVisible(bool(small))

        changes = [f"{c.path} → {c.new_name} (renamed: {c.reason})" for c in plan.renames]
        changes += [f"{c.path} → {c.new_name} (converted: {c.reason})" for c in plan.conversions]
        set_message(self.changes_label, "These files change in the export:" if changes else "")
        self.changes_list.addItems(changes[:MAX_LISTED])
        self.changes_list.setVisible(bool(changes))
        self._update()

    def _summary(self, plan: ExportPlan) -> str:
        images = len(plan.images)
        captioned = sum(bool(image.caption) for image in plan.images)
        if plan.format.writes_images:
            summary = f"{plural(images, 'image')} will be exported, {captioned} with a caption."
        else:
            summary = f"{plural(captioned, 'caption')} will be written."
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
        if self.project.settings.profile == Profile.MULTI_PERSON.value:
            summary += (" Captions with one line per person are kept as lines."
                        if plan.format.keeps_lines else
                        " Captions with one line per person are joined into one line with "
                        "\"; \" (this trainer reads one line).")
        return summary

    def _blocker(self) -> str:
        """Why Export is disabled, or ``""``."""
        if self._plan is None:
            return "Fix the problem above, then open this dialog again."
        if self._plan.uncaptioned and not self.allow_uncaptioned.isChecked():
            return (
                f"{plural(len(self._plan.uncaptioned), 'image has', 'images have')} no "
                "caption. Caption them first, or tick “Export images without a caption”.")
        if self._plan.untrainable and not self.skip_untrainable.isChecked():
            return ("Some images are too small for the trainer: replace them, or tick “Leave "
                    "out the images the trainer cannot use”.")
        if len(self._plan.untrainable) >= len(self._plan.images) + len(self._plan.untrainable):
            return "No image is left to export."
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
        for widget in (self.format_list, self.dest_edit, self.browse_button, self.review_combo,
                       self.allow_uncaptioned, self.skip_untrainable, self.allow_outside,
                       self.placeholder_check,
                       self.repeats_spin, self.caption_ext_combo, self.rename_edit,
                       self.export_button):
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
