"""The API key dialog and File > Settings… (key, model, speed, upload size, tags).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from PyQt6.QtCore import Qt, pyqtSlot
from PyQt6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from loracap.core.errors import LoraCapError
from loracap.core.keys import (
    AI_STUDIO_URL,
    KEYCHAIN_SOURCE,
    find_api_key,
    keychain_available,
    store_api_key,
)
from loracap.jobs.background import ModelListJob
from loracap.ui.dialogs import (
    current_key_source,
    describe_key_source,
    message_label,
    plural,
    set_message,
    start_size,
)
from loracap.ui.settings import AppSettings
from loracap.ui.widgets import ElidedLabel

if TYPE_CHECKING:  # not at run time: SQLAlchemy and Pillow load with the first project or scan
    from loracap.core.project import Project


log = logging.getLogger(__name__)

#: Environment variable that a session-only API key is put in (read by ``find_api_key``).
SESSION_KEY_VARIABLE = "GEMINI_API_KEY"

#: Starting width of the API key and settings dialogs, in logical pixels.
DIALOG_WIDTH = 480


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
        self.source_label = message_label("Key in use")
        set_message(self.source_label, status)

        self.key_edit = QLineEdit()
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.key_edit.setPlaceholderText("Paste your API key")
        self.key_edit.setAccessibleName("API key")
        self.key_edit.setToolTip("The key from Google AI Studio")
        self.show_button = QPushButton("&Show")
        self.show_button.setCheckable(True)
        self.show_button.setToolTip("Show or hide the key")
        self.show_button.setAccessibleName("Show the key")

        self.keychain_label = message_label("Keychain not available")
        if not self._keychain:
            set_message(
                self.keychain_label,
                "The OS keychain is not available on this computer, so the key cannot be "
                "saved. You can use it for this session only; you will need to enter it again "
                "after quitting LoRACap.",
                error=True,
            )
        self.error_label = message_label("Problem with the key")

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
        start_size(self, DIALOG_WIDTH)
        self.key_edit.setFocus()

    @property
    def keychain(self) -> bool:
        """True when the key is saved in the OS keychain, False when it is for this session."""
        return self._keychain

    def accept(self) -> None:
        """Save the key (keychain) or put it in this process's environment (session only)."""
        key = self.key_edit.text().strip()
        if not key:
            set_message(self.error_label, "Paste the key from Google AI Studio first.",
                         error=True)
            return
        if self._keychain:
            try:
                store_api_key(key)
            except LoraCapError as exc:
                set_message(self.error_label, str(exc), error=True)
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
            set_message(self.error_label, "")


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
        self.settings = settings
        self.project = project
        self._model_job: ModelListJob | None = None
        self._key_dialog: ApiKeyDialog | None = None

        # -- API key
        # One line each (a wrapped label in a form row is cut off when the row is laid out for
        # one line); the dialog is as wide as the key's sentence, a long tag list name is elided.
        self.key_label = QLabel()
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
        self.model_message = message_label("Model list status")

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
        self.tag_list_label = ElidedLabel(mode=Qt.TextElideMode.ElideMiddle, min_chars=20)
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

        self.error_label = message_label("Settings problem")
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
        start_size(self, DIALOG_WIDTH)

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
            set_message(self.model_message, str(exc), error=True)
            return
        job = ModelListJob(key.value, self)
        job.finished.connect(self._on_models)
        job.failed.connect(self._on_models_failed)
        self._model_job = job
        self.refresh_button.setEnabled(False)
        set_message(self.model_message, "Asking Google for the list of models…")
        job.start()

    def accept(self) -> None:
        """Write the settings (and the project's model); stay open if that fails."""
        model = self.model
        if not model:
            set_message(self.error_label, "Enter a model name, e.g. gemini-flash-latest.",
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
                set_message(self.error_label, str(exc), error=True)
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
            set_message(self.error_label, str(exc), error=True)
            return
        set_message(self.error_label, f"Loaded {plural(count, 'tag')} from {path.name}.")
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
                f"{plural(len(tags), 'tag')} from {self.settings.tag_list_source or 'a file'}")
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
            set_message(self.model_message,
                         f"{plural(len(names), 'model')} can write captions.")
        else:
            set_message(self.model_message, "Google returned no models that can write captions.",
                         error=True)

    @pyqtSlot(str)
    def _on_models_failed(self, message: str) -> None:
        self.refresh_button.setEnabled(True)
        set_message(self.model_message, message, error=True)

