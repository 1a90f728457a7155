"""The desktop window's dialogs: new project from a folder, export, API key, settings.

Every slow step runs in a background job (:mod:`loracap.jobs.background`), so no dialog ever
freezes the window. Errors from the core are shown as their message (a sentence a user can act
on) in an inline label or a message box, never as a traceback.

Message boxes go through the module-level functions :func:`ask_replace`, :func:`show_message`
and :func:`show_export_done`, so tests (and a future non-modal UI) can replace them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PyQt6.QtCore import Qt, QTimer, QUrl, pyqtSlot
from PyQt6.QtGui import QDesktopServices
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
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from loracap.core.errors import LoraCapError, TriggerWordError
from loracap.core.export import (
    ExportFormat,
    ExportPlan,
    ExportResult,
    ReviewFilter,
    default_output,
    plan_export,
)
from loracap.core.keys import (
    AI_STUDIO_URL,
    KEYCHAIN_SOURCE,
    find_api_key,
    keychain_available,
    store_api_key,
)
from loracap.core.prompts import Profile
from loracap.core.trigger import DEFAULT_PREFIX_TEMPLATE, render_prefix, validate_trigger
from loracap.core.trigger import suggest_trigger as _suggest_trigger
from loracap.jobs.background import ExportJob, ModelListJob, ScanJob
from loracap.ui.settings import AppSettings

if TYPE_CHECKING:  # not at run time: SQLAlchemy and Pillow load with the first project or scan
    from loracap.core.project import Project
    from loracap.core.scan import ScannedFile

log = logging.getLogger(__name__)

#: Delay after the last keystroke in a typed folder path before it is scanned, in ms.
FOLDER_TYPING_DELAY_MS = 500

#: Environment variable that a session-only API key is put in (read by ``find_api_key``).
SESSION_KEY_VARIABLE = "GEMINI_API_KEY"

_ERROR_STYLE = "color: #c62828;"
_MAX_LISTED = 2000  # rows shown in the lists of invalid / uncaptioned files


# ---------------------------------------------------------------------------------- seams


def ask_replace(parent: QWidget | None, path: Path) -> bool:
    """Ask whether to replace the existing file ``path``; True for Replace, False for Cancel."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Replace File?")
    box.setText(f"“{path.name}” already exists in {path.parent}.")
    box.setInformativeText("Replace it with the new export? The old file will be lost.")
    replace = box.addButton("Replace", QMessageBox.ButtonRole.DestructiveRole)
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(cancel)
    box.setEscapeButton(cancel)
    box.exec()
    return box.clickedButton() is replace


def show_message(parent: QWidget | None, title: str, text: str, *, error: bool = True) -> None:
    """Show ``text`` (a complete sentence) in a modal message box."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning if error else QMessageBox.Icon.Information)
    box.setWindowTitle(title)
    box.setText(text)
    box.exec()


def open_folder(folder: Path) -> bool:
    """Open ``folder`` in the system's file manager; False when that failed."""
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))


def show_export_done(parent: QWidget | None, result: ExportResult) -> None:
    """Tell the user where the export went, with an "Open Folder" button."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Information)
    box.setWindowTitle("Export Finished")
    box.setText(f"Exported {result.images} image(s) to {result.path}.")
    box.setInformativeText(export_summary(result))
    open_button = box.addButton("Open Folder", QMessageBox.ButtonRole.ActionRole)
    box.addButton(QMessageBox.StandardButton.Ok)
    box.exec()
    if box.clickedButton() is open_button:
        open_folder(result.path.parent)


def export_summary(result: ExportResult) -> str:
    """One or two plain sentences about what an export wrote (captions, renames, ...)."""
    parts = [f"{result.captions} caption(s) written."]
    if result.uncaptioned:
        parts.append(f"{len(result.uncaptioned)} image(s) have no caption.")
    if result.renames:
        parts.append(f"{len(result.renames)} file(s) were renamed to avoid name clashes.")
    if result.conversions:
        parts.append(f"{len(result.conversions)} image(s) were converted to PNG.")
    return " ".join(parts)


# ---------------------------------------------------------------------------------- helpers


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def _set_message(label: QLabel, text: str, *, error: bool = False) -> None:
    """Show ``text`` in ``label`` (hidden when empty), styled as an error when ``error``."""
    label.setText(text)
    label.setStyleSheet(_ERROR_STYLE if error else "")
    label.setVisible(bool(text))


def _message_label(name: str) -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setAccessibleName(name)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setVisible(False)
    return label


def current_key_source() -> str | None:
    """Where the API key in use comes from (``"OS keychain"``, ``"GEMINI_API_KEY"``, ...), or
    None when there is none (or the keychain cannot be read)."""
    try:
        return find_api_key().source
    except LoraCapError:
        return None


def describe_key_source(source: str | None) -> str:
    """A sentence about the key in use, for the API key and settings dialogs."""
    if source is None:
        return "No API key is set yet."
    if source == KEYCHAIN_SOURCE:
        return "A key from the OS keychain is in use."
    return f"A key from the {source} environment variable is in use."


# ---------------------------------------------------------------------------------- new project


@dataclass(frozen=True)
class NewProjectSpec:
    """What :class:`NewProjectDialog` collected: everything needed to create the project.

    ``files`` holds every file of the scan, valid and invalid (the project lists invalid ones
    with their reasons); ``custom_prompt`` is ``""`` unless ``profile`` is ``Profile.CUSTOM``.
    """

    folder: Path
    project_path: Path
    trigger: str
    profile: Profile
    custom_prompt: str
    files: list[ScannedFile]


class NewProjectDialog(QDialog):
    """File > New Project from Folder: folder, trigger word, caption profile.

    Choosing a folder scans it in the background at once (a previous scan is cancelled) and
    suggests a trigger word from the folder's name. "Create Project" is enabled only when the
    trigger word is valid, the scan has found at least one usable image, a custom prompt is
    written (Custom prompt profile) and the project file does not exist yet. Closing the dialog
    cancels a running scan. After ``exec()`` returns Accepted, :meth:`spec` has the result.
    """

    def __init__(self, folder: Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New Project from Folder")
        self.setMinimumWidth(560)
        self._scan_job: ScanJob | None = None
        self._scan_folder: Path | None = None
        self._scan_state = "idle"  # idle | running | done | failed
        self._files: list[ScannedFile] | None = None
        self._trigger_edited = False
        self._suggestion = ""

        # -- folder
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("The folder that holds the photos")
        self.folder_edit.setAccessibleName("Photo folder")
        self.folder_edit.setToolTip(
            "The folder with the photos of one subject; sub-folders are included."
        )
        self.browse_button = QPushButton("&Browse…")
        self.browse_button.setToolTip("Choose the photo folder")
        self.browse_button.setAccessibleName("Browse for the photo folder")
        self.scan_label = QLabel("Choose the folder that holds the photos.")
        self.scan_label.setWordWrap(True)
        self.scan_label.setAccessibleName("Scan result")
        self.invalid_list = QListWidget()
        self.invalid_list.setAccessibleName("Files that cannot be used")
        self.invalid_list.setToolTip("These files are listed in the project but not exported.")
        self.invalid_list.setMaximumHeight(110)
        self.invalid_list.setVisible(False)
        self._typing_timer = QTimer(self)
        self._typing_timer.setSingleShot(True)
        self._typing_timer.setInterval(FOLDER_TYPING_DELAY_MS)
        self._typing_timer.timeout.connect(self._start_scan)

        # -- trigger word
        self.trigger_edit = QLineEdit()
        self.trigger_edit.setPlaceholderText("e.g. ide_main_hall")
        self.trigger_edit.setAccessibleName("Trigger word")
        self.trigger_edit.setToolTip(
            "The rare word the LoRA learns for your subject. Lowercase letters, digits and "
            "underscores, starting with a letter."
        )
        self.trigger_message = QLabel()
        self.trigger_message.setWordWrap(True)
        self.trigger_message.setAccessibleName("Trigger word check")
        self.use_suggestion_button = QPushButton()
        self.use_suggestion_button.setToolTip("Replace the trigger word with this valid form")
        self.use_suggestion_button.setVisible(False)

        # -- caption profile
        self.profile_combo = QComboBox()
        for profile in Profile:
            self.profile_combo.addItem(profile.label, profile.value)
        self.profile_combo.setAccessibleName("Caption profile")
        self.profile_combo.setToolTip(
            "What the photos show; decides what the captions describe."
        )
        self.prompt_edit = QPlainTextEdit()
        self.prompt_edit.setPlaceholderText(
            "Describe what each caption should say (only for Custom prompt)."
        )
        self.prompt_edit.setAccessibleName("Custom prompt")
        self.prompt_edit.setToolTip("The instructions sent to the model with each photo.")
        self.prompt_edit.setTabChangesFocus(True)
        self.prompt_edit.setMaximumHeight(90)

        # -- project file
        self.project_label = QLabel("—")
        self.project_label.setWordWrap(True)
        self.project_label.setAccessibleName("Project file")
        self.project_label.setToolTip("Where the project is saved: beside the photos.")
        self.project_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.project_message = _message_label("Project file check")

        # -- buttons
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        assert ok is not None
        self.create_button = ok
        self.create_button.setText("Create Project")
        self.create_button.setAccessibleName("Create Project")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        self._build_layout()

        self.browse_button.clicked.connect(self._browse)
        self.folder_edit.textEdited.connect(lambda _text: self._typing_timer.start())
        self.folder_edit.editingFinished.connect(self._start_scan)
        self.trigger_edit.textEdited.connect(self._on_trigger_edited)
        self.trigger_edit.textChanged.connect(self._update)
        self.use_suggestion_button.clicked.connect(self._use_suggestion)
        self.profile_combo.currentIndexChanged.connect(self._update)
        self.prompt_edit.textChanged.connect(self._update)

        self._update()
        if folder is not None:
            self.set_folder(Path(folder))
            self.trigger_edit.setFocus()
        else:
            self.folder_edit.setFocus()

    def _build_layout(self) -> None:
        form = QFormLayout()
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(self.browse_button)
        folder_label = QLabel("Photo &folder:")
        folder_label.setBuddy(self.folder_edit)
        form.addRow(folder_label, folder_row)
        form.addRow("", self.scan_label)
        form.addRow("", self.invalid_list)
        trigger_row = QHBoxLayout()
        trigger_row.addWidget(self.trigger_edit, 1)
        trigger_row.addWidget(self.use_suggestion_button)
        trigger_label = QLabel("&Trigger word:")
        trigger_label.setBuddy(self.trigger_edit)
        form.addRow(trigger_label, trigger_row)
        form.addRow("", self.trigger_message)
        profile_label = QLabel("Caption &profile:")
        profile_label.setBuddy(self.profile_combo)
        form.addRow(profile_label, self.profile_combo)
        prompt_label = QLabel("Custom pro&mpt:")
        prompt_label.setBuddy(self.prompt_edit)
        form.addRow(prompt_label, self.prompt_edit)
        form.addRow("Project file:", self.project_label)
        form.addRow("", self.project_message)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.buttons)
        QWidget.setTabOrder(self.folder_edit, self.browse_button)
        QWidget.setTabOrder(self.browse_button, self.trigger_edit)
        QWidget.setTabOrder(self.trigger_edit, self.use_suggestion_button)
        QWidget.setTabOrder(self.use_suggestion_button, self.profile_combo)
        QWidget.setTabOrder(self.profile_combo, self.prompt_edit)
        QWidget.setTabOrder(self.prompt_edit, self.invalid_list)
        QWidget.setTabOrder(self.invalid_list, self.buttons)

    # -- public

    @property
    def scan_job(self) -> ScanJob | None:
        """The scan of the current folder (running or ended), or None."""
        return self._scan_job

    @property
    def scanned_files(self) -> list[ScannedFile] | None:
        """Files of the finished scan of the current folder; None while scanning or before."""
        return self._files

    def set_folder(self, folder: Path) -> None:
        """Show ``folder`` and scan it (cancelling a scan of another folder)."""
        self.folder_edit.setText(str(folder))
        self._start_scan()

    def spec(self) -> NewProjectSpec:
        """The collected choices; valid once the dialog was accepted.

        Raises RuntimeError when called before the scan finished (a programming error).
        """
        if self._files is None or self._scan_folder is None:
            raise RuntimeError("NewProjectDialog.spec() needs a finished folder scan.")
        from loracap.core.project import default_project_path

        trigger = self.trigger_edit.text()
        profile = self._profile()
        return NewProjectSpec(
            folder=self._scan_folder,
            project_path=default_project_path(self._scan_folder, trigger),
            trigger=trigger,
            profile=profile,
            custom_prompt=self.prompt_edit.toPlainText().strip()
            if profile is Profile.CUSTOM else "",
            files=list(self._files),
        )

    def done(self, result: int) -> None:
        """Accept only when every rule holds (Enter is pressed anywhere); cancel the scan."""
        if result == QDialog.DialogCode.Accepted and self._blocker():
            return
        if self._scan_job is not None:
            self._scan_job.cancel()
        self._typing_timer.stop()
        super().done(result)

    # -- folder and scan

    @pyqtSlot()
    def _browse(self) -> None:
        start = self.folder_edit.text().strip() or str(Path.home())
        chosen = QFileDialog.getExistingDirectory(self, "Choose the Photo Folder", start)
        if chosen:
            self.set_folder(Path(chosen))

    @pyqtSlot()
    def _start_scan(self) -> None:
        self._typing_timer.stop()
        text = self.folder_edit.text().strip()
        folder = Path(os.path.abspath(Path(text).expanduser())) if text else None
        if folder == self._scan_folder and self._scan_state in ("running", "done"):
            return
        self._stop_scan()
        self._scan_folder = folder
        self._files = None
        self.invalid_list.clear()
        self.invalid_list.setVisible(False)
        if folder is None:
            self._scan_state = "idle"
            _set_message(self.scan_label, "Choose the folder that holds the photos.")
            self._update()
            return
        if not self._trigger_edited:
            self.trigger_edit.setText(_suggest_trigger(folder.name))
        job = ScanJob(folder, self)
        job.progress.connect(self._on_scan_progress)
        job.finished.connect(self._on_scan_finished)
        job.failed.connect(self._on_scan_failed)
        self._scan_job = job
        self._scan_state = "running"
        _set_message(self.scan_label, "Scanning…")
        self._update()
        job.start()

    def _stop_scan(self) -> None:
        job, self._scan_job = self._scan_job, None
        if job is None:
            return
        job.progress.disconnect(self._on_scan_progress)
        job.finished.disconnect(self._on_scan_finished)
        job.failed.disconnect(self._on_scan_failed)
        if job.has_ended:
            job.deleteLater()
        else:
            job.cancelled.connect(job.deleteLater)
            job.cancel()

    @pyqtSlot(int, str)
    def _on_scan_progress(self, count: int, _rel_path: str) -> None:
        _set_message(self.scan_label, f"Scanning… {_plural(count, 'file')}")

    @pyqtSlot(object)
    def _on_scan_finished(self, files: list[ScannedFile]) -> None:
        self._files = files
        self._scan_state = "done"
        valid = [f for f in files if f.info.valid]
        invalid = [f for f in files if not f.info.valid]
        if not files:
            _set_message(self.scan_label, "No photos in this folder (JPEG, PNG, WebP or BMP).",
                         error=True)
        elif not valid:
            _set_message(self.scan_label,
                         f"No usable photos in this folder ({len(invalid)} invalid).", error=True)
        else:
            text = _plural(len(valid), "image")
            if invalid:
                text += f", {len(invalid)} invalid"
            imported = sum(1 for f in valid if f.sidecar_caption)
            if imported:
                text += f". {_plural(imported, 'caption')} will be imported from .txt files."
            _set_message(self.scan_label, text)
        for scanned in invalid[:_MAX_LISTED]:
            self.invalid_list.addItem(f"{scanned.rel_path} — {scanned.info.reason}")
        if len(invalid) > _MAX_LISTED:
            self.invalid_list.addItem(f"… and {len(invalid) - _MAX_LISTED} more")
        self.invalid_list.setVisible(bool(invalid))
        self._update()

    @pyqtSlot(str)
    def _on_scan_failed(self, message: str) -> None:
        self._scan_state = "failed"
        _set_message(self.scan_label, message, error=True)
        self._update()

    # -- trigger word, profile, project file

    @pyqtSlot(str)
    def _on_trigger_edited(self, text: str) -> None:
        self._trigger_edited = bool(text)

    @pyqtSlot()
    def _use_suggestion(self) -> None:
        if self._suggestion:
            self._trigger_edited = True
            self.trigger_edit.setText(self._suggestion)
            self.trigger_edit.setFocus()

    def _profile(self) -> Profile:
        return Profile(self.profile_combo.currentData())

    def _project_path(self) -> Path | None:
        trigger = self.trigger_edit.text()
        if self._scan_folder is None or not self._trigger_valid():
            return None
        from loracap.core.project import default_project_path

        return default_project_path(self._scan_folder, trigger)

    def _trigger_valid(self) -> bool:
        try:
            validate_trigger(self.trigger_edit.text())
        except TriggerWordError:
            return False
        return True

    def _blocker(self) -> str:
        """Why "Create Project" is disabled, or ``""`` when it is enabled."""
        if self._scan_state == "running":
            return "Wait until the folder scan has finished."
        if self._files is None:
            return "Choose the folder that holds the photos."
        if not any(f.info.valid for f in self._files):
            return "The folder has no usable photos."
        if not self._trigger_valid():
            return "Enter a valid trigger word."
        if self._profile() is Profile.CUSTOM and not self.prompt_edit.toPlainText().strip():
            return "Write the custom prompt."
        path = self._project_path()
        if path is not None and path.exists():
            return "The project file already exists."
        return ""

    @pyqtSlot()
    def _update(self) -> None:
        text = self.trigger_edit.text()
        self._suggestion = ""
        try:
            validate_trigger(text)
        except TriggerWordError as exc:
            self.trigger_message.setText(str(exc))
            self.trigger_message.setStyleSheet(_ERROR_STYLE)
            if exc.suggestion and exc.suggestion != text:
                self._suggestion = exc.suggestion
        else:
            prefix = render_prefix(DEFAULT_PREFIX_TEMPLATE, text).strip()
            self.trigger_message.setText(f"Captions will start with “{prefix}”.")
            self.trigger_message.setStyleSheet("")
        self.use_suggestion_button.setVisible(bool(self._suggestion))
        self.use_suggestion_button.setText(f"Use {self._suggestion}")
        self.use_suggestion_button.setAccessibleName(f"Use the trigger word {self._suggestion}")

        self.prompt_edit.setEnabled(self._profile() is Profile.CUSTOM)

        path = self._project_path()
        self.project_label.setText(str(path) if path is not None else "—")
        if path is not None and path.exists():
            _set_message(
                self.project_message,
                f"{path.name} already exists in this folder. Open it with File > Open Project, "
                "or choose another trigger word.",
                error=True,
            )
        else:
            _set_message(self.project_message, "")

        blocker = self._blocker()
        self.create_button.setEnabled(not blocker)
        self.create_button.setToolTip(blocker or "Create the project file and open it")


# ---------------------------------------------------------------------------------- export


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
        self.setMinimumWidth(560)
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

        # -- plan
        self.summary_label = QLabel()
        self.summary_label.setWordWrap(True)
        self.summary_label.setAccessibleName("Export summary")
        self.uncaptioned_label = _message_label("Images without a caption")
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
        self.changes_label = _message_label("Renames and conversions")
        self.changes_list = QListWidget()
        self.changes_list.setAccessibleName("Renames and conversions")
        self.changes_list.setMaximumHeight(100)
        self.changes_list.setVisible(False)
        self.error_label = _message_label("Export problem")
        self.reason_label = _message_label("Why Export is disabled")

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
            if not ask_replace(self, target):
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
        _set_message(self.reason_label, f"Exporting to {target}…")
        job.start()

    def reject(self) -> None:
        """Close, except while an export runs (it cannot be stopped halfway)."""
        if self._job is not None and self._job.is_running:
            _set_message(self.reason_label, "The export is still running; please wait.")
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
        _set_message(self.error_label, self._plan_error, error=True)
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
        summary = f"{_plural(images, 'image')} will be exported"
        summary += f", {captioned} with a caption." if images else "."
        if plan.invalid_skipped:
            skipped = len(plan.invalid_skipped)
            summary += f" {_plural(skipped, 'invalid file is', 'invalid files are')} left out."
        if plan.review_skipped:
            summary += (f" {_plural(len(plan.review_skipped), 'image is', 'images are')} left "
                        "out by their review mark.")
        self.summary_label.setText(summary)
        self.summary_label.setVisible(True)

        count = len(plan.uncaptioned)
        _set_message(self.uncaptioned_label,
                     f"{_plural(count, 'image has', 'images have')} no caption:" if count else "")
        for path in plan.uncaptioned[:_MAX_LISTED]:
            self.uncaptioned_list.addItem(path)
        self.uncaptioned_list.setVisible(bool(count))
        self.allow_uncaptioned.setVisible(bool(count))

        changes = [f"{src} → {name} (renamed: the name is taken)" for src, name in plan.renames]
        changes += [f"{src} → {name} (converted to PNG: trainers do not read this format)"
                    for src, name in plan.conversions]
        _set_message(self.changes_label,
                     "These files get another name in the export:" if changes else "")
        for line in changes[:_MAX_LISTED]:
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
                f"{_plural(len(self._plan.uncaptioned), 'image has', 'images have')} no "
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
        _set_message(self.reason_label, blocker if self._plan is not None else "")

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
        _set_message(self.reason_label, f"Exported to {result.path}.")
        log.info("Exported %d image(s) to %s", result.images, result.path)
        show_export_done(self, result)
        self.accept()

    @pyqtSlot(str)
    def _on_failed(self, message: str) -> None:
        self.progress_bar.setVisible(False)
        self._set_inputs_enabled(True)
        self._update()
        show_message(self, "Export Failed", message)


# ---------------------------------------------------------------------------------- API key


class ApiKeyDialog(QDialog):
    """Asks for the Gemini API key and saves it in the OS keychain.

    When the keychain is not available the key can be used for this session only: it is put
    in the process's ``GEMINI_API_KEY`` environment variable and forgotten on quit. The key is
    never written to a file. After acceptance :attr:`saved_to` is ``"keychain"`` or
    ``"session"``.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Gemini API Key")
        self.setMinimumWidth(480)
        self.saved_to: str | None = None
        self._keychain = keychain_available()

        storage = (
            "it is kept in your system's keychain, never in a file."
            if self._keychain else "it is never written to a file."
        )
        self.intro_label = QLabel(
            "Captions are written by Google Gemini, an online AI service. "
            "To use it you need an API key: sign in to Google AI Studio and choose "
            f'<a href="{AI_STUDIO_URL}">Create API key</a>. '
            f"Paste the key below; {storage}"
        )
        self.intro_label.setWordWrap(True)
        self.intro_label.setTextFormat(Qt.TextFormat.RichText)
        self.intro_label.setOpenExternalLinks(True)
        self.intro_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.intro_label.setAccessibleName("About the API key")

        source = current_key_source()
        status = describe_key_source(source) if source is not None else ""
        if source is not None and source != KEYCHAIN_SOURCE and self._keychain:
            status += " It takes precedence over a key saved here."
        self.source_label = _message_label("Key in use")
        _set_message(self.source_label, status)

        self.key_edit = QLineEdit()
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.key_edit.setPlaceholderText("Paste your API key")
        self.key_edit.setAccessibleName("API key")
        self.key_edit.setToolTip("The key from Google AI Studio")
        self.show_button = QPushButton("&Show")
        self.show_button.setCheckable(True)
        self.show_button.setToolTip("Show or hide the key")
        self.show_button.setAccessibleName("Show the key")

        self.keychain_label = _message_label("Keychain not available")
        if not self._keychain:
            _set_message(
                self.keychain_label,
                "The OS keychain is not available on this computer, so the key cannot be "
                "saved. You can use it for this session only; you will need to enter it again "
                "after quitting LoRACap.",
                error=True,
            )
        self.error_label = _message_label("Problem with the key")

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        save = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        assert save is not None
        self.save_button = save
        self.save_button.setText("Save Key" if self._keychain else "Use for This Session")
        self.save_button.setToolTip(
            "Save the key in the OS keychain" if self._keychain
            else "Use the key until LoRACap quits; it is not saved"
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        key_row = QHBoxLayout()
        key_row.addWidget(self.key_edit, 1)
        key_row.addWidget(self.show_button)
        key_label = QLabel("API &key:")
        key_label.setBuddy(self.key_edit)
        form = QFormLayout()
        form.addRow(key_label, key_row)
        layout = QVBoxLayout(self)
        layout.addWidget(self.intro_label)
        layout.addWidget(self.source_label)
        layout.addLayout(form)
        layout.addWidget(self.keychain_label)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)
        QWidget.setTabOrder(self.key_edit, self.show_button)
        QWidget.setTabOrder(self.show_button, self.buttons)

        self.show_button.toggled.connect(self._on_show_toggled)
        self.key_edit.textChanged.connect(self._update)
        self._update()
        self.key_edit.setFocus()

    @property
    def keychain(self) -> bool:
        """True when the key is saved in the OS keychain, False when it is for this session."""
        return self._keychain

    def accept(self) -> None:
        """Save the key (keychain) or put it in this process's environment (session only)."""
        key = self.key_edit.text().strip()
        if not key:
            _set_message(self.error_label, "Paste the key from Google AI Studio first.",
                         error=True)
            return
        if self._keychain:
            try:
                store_api_key(key)
            except LoraCapError as exc:
                _set_message(self.error_label, str(exc), error=True)
                return
            self.saved_to = "keychain"
        else:
            os.environ[SESSION_KEY_VARIABLE] = key
            self.saved_to = "session"
            log.info("Using the Gemini API key for this session only (%s)",
                     SESSION_KEY_VARIABLE)
        super().accept()

    @pyqtSlot(bool)
    def _on_show_toggled(self, shown: bool) -> None:
        self.key_edit.setEchoMode(
            QLineEdit.EchoMode.Normal if shown else QLineEdit.EchoMode.Password
        )
        self.show_button.setText("&Hide" if shown else "&Show")
        self.show_button.setAccessibleName("Hide the key" if shown else "Show the key")

    @pyqtSlot()
    def _update(self) -> None:
        has_key = bool(self.key_edit.text().strip())
        self.save_button.setEnabled(has_key)
        if has_key:
            _set_message(self.error_label, "")


# ---------------------------------------------------------------------------------- settings


class SettingsDialog(QDialog):
    """File > Settings: API key, model, and the captioning limits.

    The model is the open project's (stored in the project file) or, with no project open,
    the default for new projects. "Refresh list" asks Gemini for the models that can caption;
    the field stays editable whatever the answer. On OK the values are written to
    :class:`AppSettings` and, with a project open, to the project.
    """

    def __init__(self, settings: AppSettings, project: Project | None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(480)
        self.settings = settings
        self.project = project
        self._model_job: ModelListJob | None = None
        self._key_dialog: ApiKeyDialog | None = None

        # -- API key
        self.key_label = QLabel()
        self.key_label.setWordWrap(True)
        self.key_label.setAccessibleName("API key status")
        self.change_key_button = QPushButton("&Change…")
        self.change_key_button.setToolTip("Enter or replace the Gemini API key")
        self.change_key_button.setAccessibleName("Change the API key")

        # -- model
        model = project.settings.model if project is not None else settings.default_model
        self.model_combo = QComboBox()
        self.model_combo.setEditable(True)
        self.model_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.model_combo.addItem(model)
        self.model_combo.setCurrentText(model)
        self.model_combo.setAccessibleName("Model")
        self.model_combo.setToolTip(
            "The Gemini model that writes the captions, e.g. gemini-flash-latest. "
            + ("Stored in this project." if project is not None
               else "Used for new projects.")
        )
        self.refresh_button = QPushButton("&Refresh list")
        self.refresh_button.setToolTip("Ask Google which models your key can use")
        self.refresh_button.setAccessibleName("Refresh the model list")
        self.model_message = _message_label("Model list status")

        # -- limits
        self.workers_spin = QSpinBox()
        self.workers_spin.setRange(1, 16)
        self.workers_spin.setValue(settings.workers)
        self.workers_spin.setAccessibleName("Requests at once")
        self.workers_spin.setToolTip("How many images are sent to Gemini at the same time.")
        self.rpm_spin = QSpinBox()
        self.rpm_spin.setRange(1, 1000)
        self.rpm_spin.setValue(settings.rpm)
        self.rpm_spin.setAccessibleName("Requests per minute")
        self.rpm_spin.setToolTip(
            "At most this many requests start per minute. The free tier allows about 10."
        )
        self.max_side_spin = QSpinBox()
        self.max_side_spin.setRange(256, 4096)
        self.max_side_spin.setSingleStep(128)
        self.max_side_spin.setSuffix(" px")
        self.max_side_spin.setValue(settings.max_side)
        self.max_side_spin.setAccessibleName("Upload long side in pixels")
        self.max_side_spin.setToolTip(
            "Photos are shrunk to this long side before they are sent; smaller costs less."
        )

        # -- tag list for autocomplete
        self.tag_list_label = QLabel()
        self.tag_list_label.setWordWrap(True)
        self.tag_list_label.setAccessibleName("Tag list for autocomplete")
        self.load_tags_button = QPushButton("&Load…")
        self.load_tags_button.setToolTip(
            "A text file with one tag per line, or a CSV tag list (e.g. Danbooru's) with the "
            "tag in the first column. Its tags are offered while you type a tag.")
        self.clear_tags_button = QPushButton("Clear")
        self.clear_tags_button.setToolTip("Stop offering the loaded tag list")
        self.separator_edit = QLineEdit(
            project.settings.tag_separator if project is not None else ", ")
        self.separator_edit.setMaximumWidth(80)
        self.separator_edit.setAccessibleName("Tag separator")
        self.separator_edit.setToolTip(
            'What separates tags in this project\'s captions; ", " (comma and space) is what '
            "kohya sd-scripts and most taggers write. Spaces around it are ignored when "
            "splitting.")
        self.separator_edit.setEnabled(project is not None)

        self.error_label = _message_label("Settings problem")
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        key_row = QHBoxLayout()
        key_row.addWidget(self.key_label, 1)
        key_row.addWidget(self.change_key_button)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(self.refresh_button)
        form = QFormLayout()
        form.addRow("API key:", key_row)
        model_label = QLabel("&Model:" if project is not None else "Default &model:")
        model_label.setBuddy(self.model_combo)
        form.addRow(model_label, model_row)
        form.addRow("", self.model_message)
        for text, spin in (("Requests at &once:", self.workers_spin),
                           ("Requests per mi&nute:", self.rpm_spin),
                           ("Upload &long side:", self.max_side_spin)):
            label = QLabel(text)
            label.setBuddy(spin)
            form.addRow(label, spin)
        tags_row = QHBoxLayout()
        tags_row.addWidget(self.tag_list_label, 1)
        tags_row.addWidget(self.load_tags_button)
        tags_row.addWidget(self.clear_tags_button)
        form.addRow("Tag list:", tags_row)
        form.addRow("Tag &separator:", self.separator_edit)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)
        QWidget.setTabOrder(self.change_key_button, self.model_combo)
        QWidget.setTabOrder(self.model_combo, self.refresh_button)
        QWidget.setTabOrder(self.refresh_button, self.workers_spin)
        QWidget.setTabOrder(self.workers_spin, self.rpm_spin)
        QWidget.setTabOrder(self.rpm_spin, self.max_side_spin)
        QWidget.setTabOrder(self.max_side_spin, self.buttons)

        self.change_key_button.clicked.connect(self.change_key)
        self.refresh_button.clicked.connect(self.refresh_models)
        self.model_combo.editTextChanged.connect(self._update)
        self.load_tags_button.clicked.connect(lambda: self.load_tag_list())
        self.clear_tags_button.clicked.connect(self.clear_tag_list)
        self._update_key_status()
        self._update_tag_list()
        self._update()

    @property
    def model(self) -> str:
        """The model name as entered (without a ``models/`` prefix)."""
        return self.model_combo.currentText().strip().removeprefix("models/")

    @property
    def model_job(self) -> ModelListJob | None:
        """The running (or last) model-list request."""
        return self._model_job

    @pyqtSlot()
    def change_key(self) -> None:
        """Open the API key dialog (window-modal; the status updates when it closes)."""
        dialog = ApiKeyDialog(self)
        dialog.finished.connect(self._update_key_status)
        self._key_dialog = dialog
        dialog.open()

    @pyqtSlot()
    def refresh_models(self) -> None:
        """Ask Gemini for the models that can caption (needs an API key)."""
        if self._model_job is not None and self._model_job.is_running:
            return
        try:
            key = find_api_key()
        except LoraCapError as exc:
            _set_message(self.model_message, str(exc), error=True)
            return
        job = ModelListJob(key.value, self)
        job.finished.connect(self._on_models)
        job.failed.connect(self._on_models_failed)
        self._model_job = job
        self.refresh_button.setEnabled(False)
        _set_message(self.model_message, "Asking Google for the list of models…")
        job.start()

    def accept(self) -> None:
        """Write the settings (and the project's model); stay open if that fails."""
        model = self.model
        if not model:
            _set_message(self.error_label, "Enter a model name, e.g. gemini-flash-latest.",
                         error=True)
            return
        if self.project is not None:
            try:
                if self.project.settings.model != model:
                    self.project.update_settings(model=model)
                separator = self.separator_edit.text()
                if self.project.settings.tag_separator != separator:
                    self.project.update_settings(tag_separator=separator)
            except LoraCapError as exc:
                _set_message(self.error_label, str(exc), error=True)
                return
        else:
            self.settings.default_model = model
        self.settings.workers = self.workers_spin.value()
        self.settings.rpm = self.rpm_spin.value()
        self.settings.max_side = self.max_side_spin.value()
        self.settings.sync()
        super().accept()

    @pyqtSlot()
    def load_tag_list(self, path: Path | None = None) -> None:
        """Load a tag list for autocomplete (asks for the file unless ``path`` is given)."""
        if path is None:
            name, _filter = QFileDialog.getOpenFileName(
                self, "Load Tag List", str(Path.home()),
                "Tag lists (*.txt *.csv);;All files (*)")
            if not name:
                return
            path = Path(name)
        try:
            count = self.settings.import_tag_list(path)
        except LoraCapError as exc:
            _set_message(self.error_label, str(exc), error=True)
            return
        _set_message(self.error_label, f"Loaded {_plural(count, 'tag')} from {path.name}.")
        self._update_tag_list()

    @pyqtSlot()
    def clear_tag_list(self) -> None:
        """Stop offering the loaded tag list."""
        self.settings.clear_tag_list()
        self._update_tag_list()

    def _update_tag_list(self) -> None:
        tags = self.settings.user_tags()
        if tags:
            self.tag_list_label.setText(
                f"{_plural(len(tags), 'tag')} from {self.settings.tag_list_source or 'a file'}")
        else:
            self.tag_list_label.setText("None — tags in use in the project are offered")
        self.clear_tags_button.setEnabled(bool(tags))

    @pyqtSlot()
    def _update_key_status(self) -> None:
        self.key_label.setText(describe_key_source(current_key_source()))

    @pyqtSlot()
    def _update(self) -> None:
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        if ok is not None:
            ok.setEnabled(bool(self.model))
            ok.setToolTip("" if self.model else "Enter a model name")

    @pyqtSlot(object)
    def _on_models(self, names: list[str]) -> None:
        self.refresh_button.setEnabled(True)
        current = self.model_combo.currentText()
        self.model_combo.clear()
        self.model_combo.addItems(names)
        self.model_combo.setCurrentText(current)
        if names:
            _set_message(self.model_message,
                         f"{_plural(len(names), 'model')} can write captions.")
        else:
            _set_message(self.model_message, "Google returned no models that can write captions.",
                         error=True)

    @pyqtSlot(str)
    def _on_models_failed(self, message: str) -> None:
        self.refresh_button.setEnabled(True)
        _set_message(self.model_message, message, error=True)


__all__ = [
    "ApiKeyDialog", "ExportDialog", "NewProjectDialog", "NewProjectSpec", "SettingsDialog",
    "ask_replace", "current_key_source", "describe_key_source", "open_folder",
    "show_export_done", "show_message",
]
