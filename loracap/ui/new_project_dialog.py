"""File > New Project from Folder: choose the folder, the trigger word and the caption profile.

The folder is scanned in the background (:class:`~loracap.jobs.background.ScanJob`); nothing is
created until the user presses Create Project. The scan summary also says how many of the sidecar
captions to be imported start with another trigger word's prefix (for the trigger word typed);
they are imported as they are, and the dataset check offers to strip it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PyQt6.QtCore import Qt, QTimer, pyqtSlot
from PyQt6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from loracap.core.errors import TriggerWordError
from loracap.core.prompts import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    Profile,
    example_caption_body,
    language_label,
    suggest_profile,
)
from loracap.core.text import no_usable_images_message
from loracap.core.trigger import (
    DEFAULT_PREFIX_TEMPLATE,
    foreign_prefix_note,
    render_prefix,
    validate_trigger,
)
from loracap.core.trigger import suggest_trigger as _suggest_trigger
from loracap.jobs.background import ScanJob
from loracap.ui.dialogs import (
    ERROR_STYLE,
    MAX_LISTED,
    message_label,
    plural,
    set_message,
    start_size,
)

if TYPE_CHECKING:  # not at run time: SQLAlchemy and Pillow load with the first project or scan
    from loracap.core.scan import ScannedFile


log = logging.getLogger(__name__)

#: Starting height of the dialog, in logical pixels: room for a list of invalid files, and
#: less than a 13-inch laptop's 720-768 px screen.
DIALOG_HEIGHT = 520
DIALOG_WIDTH = 560

#: Shown under the empty trigger word field (neutral: nothing was typed wrong yet).
TRIGGER_HINT = ("The word the LoRA learns for your subject: lowercase letters, digits and "
                "underscores, starting with a letter (e.g. ide_main_hall).")

#: Said after the count of imported captions with another trigger word's prefix.
FOREIGN_PREFIX_HINT = "Review > Check Dataset can strip it."

#: Delay after the last keystroke in a typed folder path before it is scanned, in ms.
FOLDER_TYPING_DELAY_MS = 500


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
    #: The caption language's code (:data:`loracap.core.prompts.LANGUAGES`).
    language: str = DEFAULT_LANGUAGE


class NewProjectDialog(QDialog):
    """File > New Project from Folder: folder, trigger word, caption profile.

    Choosing a folder scans it in the background at once (a previous scan is cancelled) and
    suggests a trigger word from the folder's name. "Create Project" is enabled only when the
    trigger word is valid, the scan has found at least one usable image, a custom prompt is
    written (Custom prompt profile) and the project file does not exist yet. Closing the dialog
    cancels a running scan. After ``exec()`` returns Accepted, :meth:`spec` has the result.
    """

    def __init__(self, folder: Path | None = None, parent: QWidget | None = None, *,
                 language: str = DEFAULT_LANGUAGE) -> None:
        super().__init__(parent)
        self.setWindowTitle("New Project from Folder")
        self._scan_job: ScanJob | None = None
        self._scan_folder: Path | None = None
        self._scan_state = "idle"  # idle | running | done | failed
        self._files: list[ScannedFile] | None = None
        self._trigger_edited = False
        self._suggestion = ""
        self._scan_summary = ""  # the finished scan's summary, before the foreign-prefix note

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
        # Whole reasons, wrapped (each also in its row's tooltip), in a box that grows with
        # the dialog.
        self.invalid_list.setWordWrap(True)
        self.invalid_list.setTextElideMode(Qt.TextElideMode.ElideNone)
        self.invalid_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.invalid_list.setMinimumHeight(90)
        self.invalid_list.setAlternatingRowColors(True)
        self.invalid_list.setSizePolicy(QSizePolicy.Policy.Expanding,
                                        QSizePolicy.Policy.Expanding)
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
            example = example_caption_body(profile)
            self.profile_combo.setItemData(
                self.profile_combo.count() - 1,
                f"Captions like: {example}" if example else "Captions follow your own prompt.",
                Qt.ItemDataRole.ToolTipRole)
        self.profile_combo.setAccessibleName("Caption profile")
        self.profile_combo.setToolTip(
            "What the photos show; decides what the captions describe."
        )
        # -- caption language
        self.language_combo = QComboBox()
        self.language_combo.setAccessibleName("Caption language")
        for code in LANGUAGES:
            self.language_combo.addItem(language_label(code), code)
        self.language_combo.setCurrentIndex(max(0, self.language_combo.findData(language)))
        self.language_combo.setToolTip("The language the captions are written in (the trigger "
                                       "word stays as it is). File > Settings… changes it "
                                       "later.")
        self._profile_chosen = False  # the user picked a profile: no more suggestions
        self._last_suggestion: Profile | None = None
        self.profile_note = QLabel()
        self.profile_note.setWordWrap(True)
        self.profile_note.setTextFormat(Qt.TextFormat.PlainText)
        self.profile_note.setAccessibleName("Example caption")
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
        self.project_message = message_label("Project file check")

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
        self.trigger_edit.textChanged.connect(self._show_scan_summary)
        self.use_suggestion_button.clicked.connect(self._use_suggestion)
        self.profile_combo.currentIndexChanged.connect(self._update)
        self.profile_combo.activated.connect(self._on_profile_chosen)
        self.prompt_edit.textChanged.connect(self._update)

        self._update()
        start_size(self, DIALOG_WIDTH, DIALOG_HEIGHT)
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
        form.addRow("", self.profile_note)
        prompt_label = QLabel("Custom pro&mpt:")
        prompt_label.setBuddy(self.prompt_edit)
        form.addRow(prompt_label, self.prompt_edit)
        language_label_widget = QLabel("Caption lan&guage:")
        language_label_widget.setBuddy(self.language_combo)
        form.addRow(language_label_widget, self.language_combo)
        self._form = form
        form.addRow("Project file:", self.project_label)
        form.addRow("", self.project_message)
        # The list of invalid files takes the room the dialog gets when it is made taller.
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        layout = QVBoxLayout(self)
        layout.addLayout(form, 1)
        layout.addWidget(self.buttons)
        QWidget.setTabOrder(self.folder_edit, self.browse_button)
        QWidget.setTabOrder(self.browse_button, self.trigger_edit)
        QWidget.setTabOrder(self.trigger_edit, self.use_suggestion_button)
        QWidget.setTabOrder(self.use_suggestion_button, self.profile_combo)
        QWidget.setTabOrder(self.profile_combo, self.prompt_edit)
        QWidget.setTabOrder(self.prompt_edit, self.language_combo)
        QWidget.setTabOrder(self.language_combo, self.invalid_list)
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
            language=str(self.language_combo.currentData() or DEFAULT_LANGUAGE),
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
        self._scan_summary = ""
        self.invalid_list.clear()
        self.invalid_list.setVisible(False)
        if folder is None:
            self._scan_state = "idle"
            set_message(self.scan_label, "Choose the folder that holds the photos.")
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
        set_message(self.scan_label, "Scanning…")
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
        set_message(self.scan_label, f"Scanning… {plural(count, 'file')}")

    @pyqtSlot(object)
    def _on_scan_finished(self, files: list[ScannedFile]) -> None:
        self._files = files
        self._scan_state = "done"
        valid = [f for f in files if f.info.valid]
        invalid = [f for f in files if not f.info.valid]
        if not valid:  # the same words as `loracap new` on this folder
            set_message(self.scan_label, no_usable_images_message(len(files), len(invalid)),
                        error=True)
        else:
            text = plural(len(valid), "image")
            if invalid:
                text += f", {len(invalid)} invalid"
            imported = sum(1 for f in valid if f.sidecar_caption)
            if imported:
                text += f". {plural(imported, 'caption')} will be imported from .txt files."
            self._scan_summary = text
            self._show_scan_summary()
        for scanned in invalid[:MAX_LISTED]:
            text = f"{scanned.rel_path} — {scanned.info.reason}"
            self.invalid_list.addItem(text)
            item = self.invalid_list.item(self.invalid_list.count() - 1)
            if item is not None:
                item.setToolTip(text)
        if len(invalid) > MAX_LISTED:
            self.invalid_list.addItem(f"… and {len(invalid) - MAX_LISTED} more")
        self.invalid_list.setVisible(bool(invalid))
        self._update()

    @pyqtSlot()
    def _show_scan_summary(self) -> None:
        """The finished scan's summary, plus how many sidecar captions start with another
        trigger word's prefix than the one typed (recomputed as the trigger word changes)."""
        if not self._scan_summary or self._files is None:
            return
        text = self._scan_summary
        if self._trigger_valid():
            note = foreign_prefix_note(
                (f.sidecar_caption for f in self._files if f.info.valid and f.sidecar_caption),
                DEFAULT_PREFIX_TEMPLATE, self.trigger_edit.text())
            if note:
                text += f" {note}; {FOREIGN_PREFIX_HINT}"
        set_message(self.scan_label, text)

    @pyqtSlot(str)
    def _on_scan_failed(self, message: str) -> None:
        self._scan_state = "failed"
        set_message(self.scan_label, message, error=True)
        self._update()

    # -- trigger word, profile, project file

    @pyqtSlot(str)
    def _on_trigger_edited(self, text: str) -> None:
        self._trigger_edited = bool(text)

    @pyqtSlot(int)
    def _on_profile_chosen(self, _index: int) -> None:
        self._profile_chosen = True
        self._update()

    def _suggested_profile(self) -> tuple[Profile | None, str]:
        """The profile the folder name or the trigger word suggests, and which of them."""
        names = [("folder name", self._scan_folder.name if self._scan_folder else ""),
                 ("trigger word", self.trigger_edit.text())]
        for what, name in names:
            if suggest_profile(name) is not None:
                return suggest_profile(name), what
        return None, ""

    def _update_profile(self) -> None:
        """Follow the names' suggestion until the user picks a profile; show an example."""
        suggested, source = self._suggested_profile()
        # Only a new suggestion moves the choice (a new folder or trigger word), never a
        # profile the user picked.
        if suggested is not self._last_suggestion and not self._profile_chosen:
            wanted = suggested or Profile.SPACE
            self.profile_combo.blockSignals(True)
            self.profile_combo.setCurrentIndex(self.profile_combo.findData(wanted.value))
            self.profile_combo.blockSignals(False)
        self._last_suggestion = suggested
        profile = self._profile()
        lines = []
        if suggested is profile and not self._profile_chosen:
            lines.append(f"{profile.label} suggested: the {source} says so.")
        body = example_caption_body(profile)
        if body:
            trigger = self.trigger_edit.text() if self._trigger_valid() else "your_trigger"
            prefix = render_prefix(DEFAULT_PREFIX_TEMPLATE, trigger)
            lines.append(f"Example caption: {prefix}{body}")
        else:
            lines.append("Captions follow your prompt.")
        self.profile_note.setText("\n".join(lines))

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
            return no_usable_images_message(
                len(self._files), sum(not f.info.valid for f in self._files))
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
            if not text:  # nothing typed yet: a hint, not an error
                self.trigger_message.setText(TRIGGER_HINT)
                self.trigger_message.setStyleSheet("")
            else:
                self.trigger_message.setText(str(exc))
                self.trigger_message.setStyleSheet(ERROR_STYLE)
            if exc.suggestion and exc.suggestion != text:
                self._suggestion = exc.suggestion
        else:
            prefix = render_prefix(DEFAULT_PREFIX_TEMPLATE, text).strip()
            self.trigger_message.setText(f"Captions will start with “{prefix}”.")
            self.trigger_message.setStyleSheet("")
        self.use_suggestion_button.setVisible(bool(self._suggestion))
        self.use_suggestion_button.setText(f"Use {self._suggestion}")
        self.use_suggestion_button.setAccessibleName(f"Use the trigger word {self._suggestion}")

        self._update_profile()
        custom = self._profile() is Profile.CUSTOM
        self.prompt_edit.setEnabled(custom)
        self._form.setRowVisible(self.prompt_edit, custom)  # room for the list of files

        path = self._project_path()
        self.project_label.setText(str(path) if path is not None else "—")
        if path is not None and path.exists():
            set_message(
                self.project_message,
                f"{path.name} already exists in this folder. Open it with File > Open Project, "
                "or choose another trigger word.",
                error=True,
            )
        else:
            set_message(self.project_message, "")

        blocker = self._blocker()
        self.create_button.setEnabled(not blocker)
        self.create_button.setToolTip(blocker or "Create the project file and open it")
